//! virtual(8): deliveries to virtual mailboxes (to be written).
