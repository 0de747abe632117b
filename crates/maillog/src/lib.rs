//! The mail log: Postfix's exact line shapes, written to `maillog_file` or syslog.
//!
//! The mail log is a public interface: pflogsumm, log exporters and administrators' scripts
//! parse it. Every line Tern logs is therefore built here, by one typed function per line
//! shape, and golden tests (`tests/golden/`, captured from Debian's Postfix 3.7.11) hold the
//! shapes to Postfix's. Call sites never format log text themselves.
//!
//! - [`anvil`]: anvil(8)'s `statistics: max ... rate` lines.
//! - [`line`]: [`Line`] (a severity and a text) and [`Severity`].
//! - [`smtpd`]: smtpd(8)'s session lines (`connect from`, `disconnect from ... commands=`,
//!   `lost connection after`, `QUEUEID: client=`, `NOQUEUE: reject:`), with
//!   [`smtpd::CommandCounts`] keeping the per-command counters.
//! - [`queue`]: pickup, cleanup, qmgr and bounce lines (`message-id=`, `(queue active)`,
//!   `removed`, `status=expired`, `sender non-delivery notification`).
//! - [`delivery`]: the delivery agents' `to=<...>, relay=..., delay=..., delays=..., dsn=...,
//!   status=...` line, and [`delay`] its number formatting.
//! - [`sasl`]: smtpd's SASL warnings (`SASL PLAIN authentication failed: ...`).
//! - [`master`]: master(8) and postfix-script lines (`daemon started`, `terminating on signal`).
//! - [`postsuper`]: postsuper(1)'s per-message lines (`removed`, `placed on hold`) and totals.
//! - [`prefix`]: the `MMM dd HH:MM:SS host syslog_name/program[pid]: ` prefix and the syslog
//!   datagram header.
//! - [`writer`]: the `maillog_file` writer (with the `maillog_file_prefixes` check) and the
//!   syslog client, behind one shared [`Logger`].
//!
//! Trust: the texts handed in (client names, addresses, HELO names, replies) may come from
//! the network. They are logged as given: the caller has already made them printable, as
//! Postfix's smtpd does with `printable()` on everything it logs. A line is cut at 2000
//! bytes of text, as Postfix cuts it, so a hostile peer cannot make one line unbounded.

pub mod anvil;
pub mod delay;
pub mod delivery;
pub mod line;
mod localtime;
pub mod master;
pub mod postsuper;
pub mod prefix;
pub mod queue;
pub mod sasl;
pub mod smtpd;
pub mod syslog;
pub mod writer;

pub use line::{Line, Severity};
pub use prefix::{Ident, Timestamp};
pub use writer::{LogConfig, Logger, MaillogError};
