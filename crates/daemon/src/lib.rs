//! Tern's mail system daemon: the master (configuration, listeners, signals, the pid
//! file) and, in one tokio runtime, every smtpd session, cleanup and the durable queue
//! commit.
//!
//! - [`settings`]: main.cf and master.cf turned into listener and smtpd settings
//!   (`-o` overrides applied per service).
//! - [`relay`]: what access control is built from, per service (the resolver, recipient
//!   tables, fast_flush_domains and the restriction setup).
//! - [`check`]: smtpd's access control (smtpd_check.c): restriction lists, access(5)
//!   results, DNS checks and the policy service.
//! - [`anvil`]: connection and rate limits per client (anvil(8)).
//! - [`recipients`]: reject_unlisted_recipient (local_recipient_maps and the other
//!   recipient tables), for RCPT TO and VRFY.
//! - [`etrn`]: ETRN and fast_flush_domains.
//! - [`peername`]: the client's hostname (PTR, then forward confirmation), as smtpd_peer.c.
//! - [`smtpd`]: the socket driver of the sans-IO `tern_smtp::Session`.
//! - [`cleanup`]: the queue file of one message: Received:, cleanup's header work (tern_message), commit.
//! - [`submit`]: new messages the mail system makes itself (notices, forwarded mail).
//! - [`agents`]: qmgr's transports for local, virtual and pipe, through the privileged
//!   delivery helper (`tern-delivery`).
//! - [`master`]: start-up (queue directories, recovery, binding, dropping privileges),
//!   signals (reload, graceful stop, abort) and the pid file.
//! - [`control`]: what the `postfix` command does to a running daemon (status, stop, ...).
//! - [`sasl`]: the SASL server of AUTH (Dovecot's auth protocol, or the built-in table).
//! - [`showq`]: the queue listing service of `postqueue -p`, `-j` and `mailq`.
//!
//! Trust: the configuration files and the queue directory are trusted as the system's
//! own; everything that comes from the network is not (see [`smtpd`]'s Security section).

pub mod agents;
pub mod anvil;
pub mod check;
pub mod cleanup;
pub mod content_checks;
pub mod control;
pub mod etrn;
pub mod flush;
pub mod master;
pub mod outbound;
pub mod peername;
pub mod pickup;
pub mod public;
pub mod qmgr;
pub mod recipients;
pub mod reject_footer;
pub mod relay;
pub mod sasl;
pub mod settings;
pub mod showq;
pub mod smtpd;
pub mod submit;

pub use master::{DaemonError, Options, run};
