//! qmgr: the queue manager (Postfix's qmgr(8)) inside the daemon.
pub mod config;
pub mod schedule;
pub mod transports;
