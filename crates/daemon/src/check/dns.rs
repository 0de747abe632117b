//! DNS lookups for the restrictions (being written).
