//! Mailboxes: mbox and Maildir writers, locking and safe opening (to be written).
