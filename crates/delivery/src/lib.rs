//! The delivery agents that act with a user's rights: local(8), virtual(8) and pipe(8).
//!
//! This crate runs in Tern's delivery helper, the one process that keeps root when Tern
//! is started as root (docs/architecture.md). The daemon (as mail_owner) decides *what* to
//! deliver; it sends a [`request::DeliveryRequest`] naming the queue file and the
//! recipients, and gets one [`request::Outcome`] per recipient back. Everything that
//! opens a user's file or runs a user's command happens here, with that user's rights
//! ([`privs`]).
//!
//! - [`request`]: the request and outcome types, the daemon's interface.
//! - [`privs`]: switching the effective uid/gid for one delivery and back.
//! - [`mailbox`]: mbox (`From ` line, `>From ` quoting, fcntl and dotlock locking, roll
//!   back on failure) and Maildir (tmp, then new, unique names); safe opening.
//! - [`local`]: local(8): aliases, `.forward`, `:include:`, `|command`, `/file`, the
//!   mailbox, `mailbox_command`, `luser_relay`, loop detection.
//! - [`virtual_agent`]: virtual(8): virtual_mailbox_maps, uid/gid maps, the mailbox base.
//! - [`pipe`]: pipe(8): `argv=` with `${sender}`, `${recipient}`, ... and its flags.
//! - [`wire`]: the helper's framed binary codec of requests and replies.
//! - [`helper`]: the `tern-delivery` processes: the supervisor that starts workers and
//!   the worker that runs the agents; the daemon's client of the supervisor.
//!
//! Trust: the message and the alias, `.forward` and `:include:` contents are not
//! trusted; a user's files are opened only with that user's rights, never following a
//! symlink where Postfix would refuse one.

pub mod helper;
pub mod local;
pub mod mailbox;
pub mod pipe;
pub mod privs;
pub mod request;
pub mod virtual_agent;
pub mod wire;
