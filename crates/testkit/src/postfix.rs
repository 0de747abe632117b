//! A private Debian Postfix instance (being built).
