//! The mail queue: queue ids, queue files, durable commit, scanning and recovery.
