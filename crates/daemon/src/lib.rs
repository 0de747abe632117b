//! The mail system daemon (being built).
