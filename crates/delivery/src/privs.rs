//! Effective uid/gid switching for one delivery (to be written).
