//! Sans-IO RFC 5322 message handling for Tern: what Postfix's cleanup(8) does to a message's
//! headers on the way into the queue, and the pieces it needs.
//!
//! - [`split`]: a streaming split of message records into header fields and body lines, with
//!   header_size_limit and cleanup's tolerance (no separator, a non-header first line);
//! - [`header`]: one field, case-insensitive names, unfold/fold, the output cut, cleanup's
//!   table of known headers;
//! - [`address`]: the RFC 5322 address-list tokenizer and parser, and Postfix's
//!   internal/external address forms (quote_822_local);
//! - [`trace`]: the Received: headers of smtpd and pickup, mail_date, the Message-Id;
//! - [`dsn`]: bounce(8)'s delivery status notifications (RFC 3464 multipart/report);
//! - [`cleanup`]: cleanup's header work (hop count, dropped headers, missing headers, the
//!   logged message-id) with hooks for header_checks and address rewriting.
//!
//! Nothing here does I/O or reads a clock: the daemon passes times in and writes the output.
//! All formats were checked against Debian's Postfix 3.7.11; the evidence is in
//! `tests/reference/` (the instance script, the client script, the delivered mailbox).

pub mod address;
pub mod cleanup;
pub mod dsn;
pub mod header;
pub mod split;
pub mod trace;
