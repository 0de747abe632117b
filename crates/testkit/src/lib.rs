//! Test support shared by the crates' integration tests: a private Debian Postfix instance
//! on a loopback port (the reference), a Tern instance in a temp directory, a private Dovecot
//! LMTP server, a test certificate authority, and helpers to wait for a port, run Python
//! scripts and wait for log lines.
//! A private postgrey (policy service) too.
//! Test-only: nothing here runs in production.

pub mod access;
pub mod dns;
pub mod dovecot;
pub mod peers;
pub mod ports;
pub mod postfix;
pub mod postgrey;
pub mod replay;
pub mod smtp;
pub mod support;
pub mod tern;
pub mod tlscerts;
