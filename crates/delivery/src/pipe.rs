//! pipe(8): deliveries to an external command per master.cf argv= (to be written).
