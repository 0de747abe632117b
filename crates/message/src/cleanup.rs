//! The header work of Postfix's cleanup(8) on a message's primary headers, sans-IO.
//!
//! The daemon feeds each field from [`crate::split::HeaderSplitter`] (the smtpd or pickup
//! Received: header first, as those programs send it) to [`HeaderCleanup::header`], writes
//! what comes back, and at the end of the headers calls [`HeaderCleanup::end_of_headers`] for
//! the headers cleanup adds. What it does, as cleanup_message.c does and as Debian's Postfix
//! 3.7.11 was seen to do (tests/reference/delivered.mbox):
//! - counts Received: headers, its own included; at hopcount_limit the message is rejected
//!   with `554 5.4.0 Error: too many hops` (49 foreign Received: + smtpd's = 50 is refused);
//! - drops message_drop_headers (default Bcc, Content-Length, Resent-Bcc, Return-Path), after
//!   noting that they were present;
//! - cuts each field to header_size_limit ([`crate::header::output_cut`]);
//! - when the rewrite context is set (local_header_rewrite_clients matched, or a local
//!   submission, or remote_header_rewrite_domain is not empty) or always_add_missing_headers
//!   = yes, appends after the last header, in this order: `Message-Id:`, `Date:`, `From:`,
//!   and undisclosed_recipients_header (empty by default) when no To/Cc/Resent-To/Resent-Cc;
//!   `Resent-` versions when any Resent- header was present;
//! - reports the `message-id=` values cleanup logs.
//!
//! # Security
//! Field text is the sender's. Addresses are parsed with a token limit; nothing here panics
//! on any field, and memory is bounded by the fields the splitter already bounded.

use crate::address::{parse_address_list, phrase, quote_822_local, quote_822_local_bytes};
use crate::header::{HeaderField, HeaderKind, KnownHeader, fold_address_lines, output_cut};
use crate::trace::{Timestamp, mail_date, message_id};

/// cleanup's settings that bear on headers (main.cf names; defaults in [`Default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// myhostname.
    pub myhostname: String,
    /// hopcount_limit (50).
    pub hopcount_limit: usize,
    /// header_size_limit (102400).
    pub header_size_limit: usize,
    /// header_address_token_limit (10240).
    pub header_address_token_limit: usize,
    /// always_add_missing_headers (no).
    pub always_add_missing_headers: bool,
    /// undisclosed_recipients_header (empty: add nothing).
    pub undisclosed_recipients_header: String,
    /// enable_long_queue_ids (no).
    pub enable_long_queue_ids: bool,
    /// message_drop_headers, lower case.
    pub message_drop_headers: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            myhostname: "localhost".to_owned(),
            hopcount_limit: 50,
            header_size_limit: 102_400,
            header_address_token_limit: 10_240,
            always_add_missing_headers: false,
            undisclosed_recipients_header: String::new(),
            enable_long_queue_ids: false,
            message_drop_headers: ["bcc", "content-length", "resent-bcc", "return-path"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

/// Postfix's header rewriting context (the rewrite_context attribute smtpd and pickup send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteContext {
    /// Local submission, or a client matching local_header_rewrite_clients.
    Local,
    /// Any other client, when remote_header_rewrite_domain is not empty.
    Remote,
}

/// The context cleanup works in: `is_local` is "submitted by sendmail/pickup, or the
/// client matched local_header_rewrite_clients" (default permit_inet_interfaces: a client
/// connecting from one of the server's own addresses is local); a remote client gets a
/// context only when remote_header_rewrite_domain is set (cleanup_envelope.c).
pub fn rewrite_context(
    is_local: bool,
    remote_header_rewrite_domain: &str,
) -> Option<RewriteContext> {
    if is_local {
        Some(RewriteContext::Local)
    } else if remote_header_rewrite_domain.is_empty() {
        None
    } else {
        Some(RewriteContext::Remote)
    }
}

/// What cleanup knows of the envelope when it works on headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The envelope sender in internal form; empty for the null sender.
    pub sender: String,
    /// The sender's full name (sendmail -F, NAME, or the passwd gecos): local submissions.
    pub full_name: Option<String>,
    /// The queue id.
    pub queue_id: String,
    /// The queue file's creation time (seconds): the Message-Id's time stamp.
    pub queue_time: i64,
    /// The arrival time with the local zone: the Date: header.
    pub arrival: Timestamp,
    /// The rewrite context, see [`rewrite_context`].
    pub rewrite_context: Option<RewriteContext>,
}

/// Who an address in a header belongs to, for the rewriting hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRole {
    /// From:, Sender:, Reply-To:, Return-Path: ... (canonical_classes header_sender).
    Sender,
    /// To:, Cc:, Bcc: ... (header_recipient).
    Recipient,
}

/// What header_checks decided about a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderCheck {
    /// Go on with the field.
    Keep,
    /// Remove it (IGNORE).
    Drop,
    /// Replace it (REPLACE).
    Replace(HeaderField),
    /// Write this header first, then go on with the field (PREPEND).
    Prepend(HeaderField),
}

/// Where header_checks and canonical/virtual/masquerade rewriting will plug in. The
/// defaults do nothing.
pub trait Hooks {
    /// header_checks on a primary header field, before anything else looks at it.
    fn header_check(&mut self, _field: &HeaderField) -> HeaderCheck {
        HeaderCheck::Keep
    }

    /// The log lines header_checks made since the last call (cleanup logs them in
    /// order with `message-id=`).
    fn take_log_lines(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Rewrites one address (internal form) of a sender or recipient header in the given
    /// context; returns the new address, or `None` to leave it.
    fn rewrite_address(
        &mut self,
        _role: AddressRole,
        _context: RewriteContext,
        _address: &[u8],
    ) -> Option<Vec<u8>> {
        None
    }
}

/// Hooks that do nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// Why cleanup refuses the message; each knows the reply smtpd gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CleanupError {
    /// hopcount_limit reached (logged `warning: QUEUEID: message rejected: hopcount exceeded`).
    #[error("message rejected: hopcount exceeded")]
    TooManyHops,
    /// No Received: header at the end of the headers (the MTA must have sent its own).
    #[error("message rejected: no Received: header")]
    NoReceived,
}

impl CleanupError {
    /// The SMTP reply: code, enhanced status, text (global/cleanup_strerror.c).
    pub fn reply(&self) -> (u16, &'static str, &'static str) {
        match self {
            CleanupError::TooManyHops => (554, "5.4.0", "Error: too many hops"),
            CleanupError::NoReceived => (451, "4.3.0", "Error: internal protocol error"),
        }
    }
}

/// A line for the mail log (the maillog crate formats it: `QUEUEID: message-id=VALUE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// `message-id=VALUE` (the field's value, leading blanks skipped, or `<>` when none).
    MessageId(Vec<u8>),
    /// `resent-message-id=VALUE`.
    ResentMessageId(Vec<u8>),
    /// A line made elsewhere (header_checks' `QUEUEID: reject: header ...`, or
    /// `warning: ...`), logged as it is.
    Line(String),
}

/// The header state of one message.
#[derive(Debug)]
pub struct HeaderCleanup<'s, H: Hooks> {
    settings: &'s Settings,
    envelope: Envelope,
    hooks: H,
    hops: usize,
    seen: Vec<HeaderKind>,
    resent: bool,
    logs: Vec<LogEvent>,
}

impl<'s, H: Hooks> HeaderCleanup<'s, H> {
    /// Starts the header work of one message.
    pub fn new(settings: &'s Settings, envelope: Envelope, hooks: H) -> Self {
        Self {
            settings,
            envelope,
            hooks,
            hops: 0,
            seen: Vec::new(),
            resent: false,
            logs: Vec::new(),
        }
    }

    /// Takes one primary header field; returns the text to write (`\n` between lines, no
    /// final newline), or `None` when the field is dropped.
    pub fn header(&mut self, field: HeaderField) -> Result<Option<Vec<u8>>, CleanupError> {
        let mut known = field.known();
        // Postfix counts Received: before header_checks can drop it.
        if known.is_some_and(|k| k.kind == HeaderKind::Received) {
            self.hops += 1;
        }
        let check = self.hooks.header_check(&field);
        self.logs
            .extend(self.hooks.take_log_lines().into_iter().map(LogEvent::Line));
        let mut prepend = None;
        let field = match check {
            HeaderCheck::Keep => field,
            HeaderCheck::Drop => return Ok(None),
            HeaderCheck::Replace(f) => {
                known = f.known();
                f
            }
            HeaderCheck::Prepend(p) => {
                prepend = Some(self.cut(p.as_bytes()));
                field
            }
        };
        let out = self.after_checks(&field, known)?;
        Ok(match (prepend, out) {
            (Some(mut p), Some(text)) => {
                p.push(b'\n');
                p.extend_from_slice(&text);
                Some(p)
            }
            (Some(p), None) => Some(p),
            (None, out) => out,
        })
    }

    /// Adds a log event in order (body_checks' lines, which the caller makes).
    pub fn push_log(&mut self, event: LogEvent) {
        self.logs.push(event);
    }

    /// The field once header_checks let it through.
    fn after_checks(
        &mut self,
        field: &HeaderField,
        known: Option<&'static KnownHeader>,
    ) -> Result<Option<Vec<u8>>, CleanupError> {
        let Some(k) = known.filter(|k| !k.mime) else {
            return Ok(Some(self.cut(field.as_bytes())));
        };
        self.seen.push(k.kind);
        match k.kind {
            HeaderKind::MessageId => self
                .logs
                .push(LogEvent::MessageId(field.trimmed_value().to_vec())),
            HeaderKind::ResentMessageId => {
                self.logs
                    .push(LogEvent::ResentMessageId(field.trimmed_value().to_vec()));
            }
            HeaderKind::Received if self.hops >= self.settings.hopcount_limit => {
                return Err(CleanupError::TooManyHops);
            }
            _ => {}
        }
        self.resent |= k.resent;
        if self.dropped(k) {
            return Ok(None);
        }
        let text = match (self.envelope.rewrite_context, k.sender || k.recipient) {
            (Some(ctx), true) => self.rewrite(ctx, k, field),
            _ => None,
        };
        Ok(Some(self.cut(text.as_deref().unwrap_or(field.as_bytes()))))
    }

    /// Ends the primary headers: returns the headers cleanup adds, in order.
    pub fn end_of_headers(&mut self) -> Result<Vec<Vec<u8>>, CleanupError> {
        if self.hops < 1 {
            return Err(CleanupError::NoReceived);
        }
        let s = self.settings;
        let add = self.envelope.rewrite_context.is_some() || s.always_add_missing_headers;
        let rs = if self.resent { "Resent-" } else { "" };
        let mut out = Vec::new();
        let id_kind = if self.resent {
            HeaderKind::ResentMessageId
        } else {
            HeaderKind::MessageId
        };
        if add && !self.saw(id_kind) {
            let id = message_id(
                self.envelope.queue_time,
                &self.envelope.queue_id,
                &s.myhostname,
                s.enable_long_queue_ids,
            );
            out.push(format!("{rs}Message-Id: <{id}>").into_bytes());
            let value = format!("<{id}>").into_bytes();
            self.logs.push(if self.resent {
                LogEvent::ResentMessageId(value)
            } else {
                LogEvent::MessageId(value)
            });
            self.seen.push(id_kind);
        }
        if !self.saw(HeaderKind::MessageId) {
            self.logs.push(LogEvent::MessageId(b"<>".to_vec()));
        }
        let date_kind = if self.resent {
            HeaderKind::ResentDate
        } else {
            HeaderKind::Date
        };
        if add && !self.saw(date_kind) {
            out.push(format!("{rs}Date: {}", mail_date(&self.envelope.arrival)).into_bytes());
        }
        let from_kind = if self.resent {
            HeaderKind::ResentFrom
        } else {
            HeaderKind::From
        };
        if add && !self.saw(from_kind) {
            out.push(self.missing_from(rs));
        }
        let visible = [
            HeaderKind::To,
            HeaderKind::ResentTo,
            HeaderKind::Cc,
            HeaderKind::ResentCc,
        ];
        if add
            && !visible.iter().any(|k| self.saw(*k))
            && !s.undisclosed_recipients_header.is_empty()
        {
            // Postfix warns about a text that is not "name: value" and adds nothing.
            if HeaderField::parse(s.undisclosed_recipients_header.as_bytes()).is_some() {
                out.push(s.undisclosed_recipients_header.clone().into_bytes());
            }
        }
        Ok(out)
    }

    /// The log lines collected so far (message-id=...), drained.
    pub fn take_logs(&mut self) -> Vec<LogEvent> {
        std::mem::take(&mut self.logs)
    }

    /// The number of Received: headers seen.
    pub fn hop_count(&self) -> usize {
        self.hops
    }

    /// The hooks, e.g. to read what they collected.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The hooks, to change them.
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    fn saw(&self, kind: HeaderKind) -> bool {
        self.seen.contains(&kind)
    }

    fn dropped(&self, k: &KnownHeader) -> bool {
        self.settings
            .message_drop_headers
            .iter()
            .any(|d| d.eq_ignore_ascii_case(k.name))
    }

    fn cut(&self, text: &[u8]) -> Vec<u8> {
        output_cut(text, self.settings.header_size_limit).to_vec()
    }

    /// Runs the address hooks over the field; returns the re-folded text if any address
    /// changed (cleanup_rewrite_sender/recip: an unchanged field is written as it came).
    fn rewrite(
        &mut self,
        ctx: RewriteContext,
        k: &KnownHeader,
        field: &HeaderField,
    ) -> Option<Vec<u8>> {
        let role = if k.sender {
            AddressRole::Sender
        } else {
            AddressRole::Recipient
        };
        let mut list =
            parse_address_list(field.raw_value(), self.settings.header_address_token_limit);
        let mut changed = false;
        for m in list.mailboxes_mut() {
            if let Some(new) = self.hooks.rewrite_address(role, ctx, &m.internal()) {
                let fresh = parse_address_list(&quote_822_local_bytes(&new), 64);
                if let Some(n) = fresh.mailboxes().next() {
                    m.local.clone_from(&n.local);
                    m.domain.clone_from(&n.domain);
                    m.route.clone_from(&n.route);
                    changed = true;
                }
            }
        }
        if !changed {
            return None;
        }
        let mut text = field.name().to_vec();
        text.extend_from_slice(b": ");
        text.extend_from_slice(&list.to_header_lines());
        Some(fold_address_lines(&text))
    }

    /// `From: sender`, `From: Full Name <sender>` (quoted when the name has specials or
    /// `%!`), or `From: MAILER-DAEMON` for the null sender (cleanup_message.c, confirmed
    /// live for all three).
    fn missing_from(&self, rs: &str) -> Vec<u8> {
        let sender = &self.envelope.sender;
        let addr = quote_822_local(if sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            sender
        });
        let mut v = format!("{rs}From: ").into_bytes();
        match self
            .envelope
            .full_name
            .as_deref()
            .filter(|n| !n.is_empty() && !sender.is_empty())
        {
            Some(name) => {
                let name = name.replace(['\r', '\n'], " ");
                // Without specials the name is re-tokenized: runs of blanks become one space.
                let words: Vec<&str> = name.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
                let name = if phrase(name.as_bytes()).first() == Some(&b'"') {
                    name.clone()
                } else {
                    words.join(" ")
                };
                if !name.is_empty() {
                    v.extend_from_slice(&phrase(name.as_bytes()));
                    v.push(b' ');
                }
                v.push(b'<');
                v.extend_from_slice(addr.as_bytes());
                v.push(b'>');
            }
            None => v.extend_from_slice(addr.as_bytes()),
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::{HeaderSplitter, HeadersEnd};

    const T: i64 = 1_795_726_156; // Thu, 26 Nov 2026 20:49:16 UTC

    fn envelope(sender: &str, full_name: Option<&str>, ctx: Option<RewriteContext>) -> Envelope {
        Envelope {
            sender: sender.to_owned(),
            full_name: full_name.map(str::to_owned),
            queue_id: "QID".to_owned(),
            queue_time: T,
            arrival: Timestamp::utc(T),
            rewrite_context: ctx,
        }
    }

    /// Runs a message through the splitter and cleanup like the daemon will; returns the
    /// header section as delivered (Received: first) or the error.
    fn run(settings: &Settings, env: Envelope, lines: &[&str]) -> Result<String, CleanupError> {
        let mut c = HeaderCleanup::new(settings, env, NoHooks);
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut split = HeaderSplitter::new(settings.header_size_limit);
        let received = "Received: from client.example.org (localhost [127.0.0.1])";
        let mut all = vec![received];
        all.extend_from_slice(lines);
        let mut ended = false;
        let steps: Vec<_> = all.iter().map(|l| split.push(l.as_bytes(), true)).collect();
        for step in steps.into_iter().chain(std::iter::once(split.finish())) {
            if let Some(f) = step.header {
                out.extend(c.header(f)?);
            }
            if let Some(end) = step.end
                && !ended
            {
                ended = true;
                out.extend(c.end_of_headers()?);
                if end == HeadersEnd::InsertedSeparator {
                    out.push(Vec::new());
                }
            }
            if let Some((b, _)) = step.body {
                out.push(b.to_vec());
            }
        }
        Ok(out
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned() + "\n")
            .collect())
    }

    const R: &str = "Received: from client.example.org (localhost [127.0.0.1])\n";
    const ADDED: &str = "Message-Id: <20261126204916.QID@mx.example.test>\nDate: Thu, 26 Nov 2026 20:49:16 +0000 (UTC)\n";

    #[test]
    fn added_headers_as_seen_live() {
        let s = Settings {
            myhostname: "mx.example.test".to_owned(),
            ..Settings::default()
        };
        let aa = Settings {
            always_add_missing_headers: true,
            undisclosed_recipients_header: "To: undisclosed-recipients:;".to_owned(),
            ..s.clone()
        };
        let local = Some(RewriteContext::Local);
        let sender = "sender@example.org";
        let from = "From: sender@example.org\n";
        let cases: Vec<(&Settings, Envelope, &[&str], String)> = vec![
            // c01: no headers, local client: added, and an empty line before the body.
            (
                &s,
                envelope(sender, None, local),
                &["hello world", "", "body"],
                format!("{R}{ADDED}{from}\nhello world\n\nbody\n"),
            ),
            // c03: nothing missing.
            (
                &s,
                envelope(sender, None, local),
                &[
                    "From: S <s@x>",
                    "To: a@b",
                    "Date: x",
                    "Message-ID: <abc@example.org>",
                    "",
                    "b",
                ],
                format!("{R}From: S <s@x>\nTo: a@b\nDate: x\nMessage-ID: <abc@example.org>\n\nb\n"),
            ),
            // c05: remote client, no remote_header_rewrite_domain: nothing added.
            (
                &s,
                envelope(sender, None, None),
                &["Subject: remote", "", "body"],
                format!("{R}Subject: remote\n\nbody\n"),
            ),
            // c24: remote, no headers at all: still the inserted separator.
            (
                &s,
                envelope(sender, None, None),
                &["hello remote"],
                format!("{R}\nhello remote\n"),
            ),
            // c06: remote with remote_header_rewrite_domain.
            (
                &s,
                envelope(sender, None, rewrite_context(false, "rw.example.test")),
                &["Subject: rw", "", "body"],
                format!("{R}Subject: rw\n{ADDED}{from}\nbody\n"),
            ),
            // c07: remote with always_add_missing_headers and undisclosed_recipients_header.
            (
                &aa,
                envelope(sender, None, None),
                &["Subject: always", "", "body"],
                format!("{R}Subject: always\n{ADDED}{from}To: undisclosed-recipients:;\n\nbody\n"),
            ),
            // c31: a Cc: is a visible recipient header.
            (
                &aa,
                envelope(sender, None, local),
                &["Cc: someone@example.org", ""],
                format!("{R}Cc: someone@example.org\n{ADDED}{from}\n"),
            ),
            // c23: an empty To: still counts.
            (
                &s,
                envelope(sender, None, local),
                &["To:", ""],
                format!("{R}To:\n{ADDED}{from}\n"),
            ),
            // c13: the null sender.
            (
                &s,
                envelope("", None, local),
                &[""],
                format!("{R}{ADDED}From: MAILER-DAEMON\n\n"),
            ),
            // c14: a quoted local part.
            (
                &s,
                envelope("john smith@example.org", None, local),
                &[""],
                format!("{R}{ADDED}From: \"john smith\"@example.org\n\n"),
            ),
            // sm1..sm4 (sendmail -F): full names.
            (
                &s,
                envelope(sender, Some("John Q. Public"), local),
                &[""],
                format!("{R}{ADDED}From: \"John Q. Public\" <sender@example.org>\n\n"),
            ),
            (
                &s,
                envelope(sender, Some("John   Smith"), local),
                &[""],
                format!("{R}{ADDED}From: John Smith <sender@example.org>\n\n"),
            ),
            (
                &s,
                envelope("root@mx.example.test", Some("Odd \"q\" (c)"), local),
                &[""],
                format!("{R}{ADDED}From: \"Odd \\\"q\\\" (c)\" <root@mx.example.test>\n\n"),
            ),
            // c19: an existing message-id in lower case counts; Date and From are added.
            (
                &s,
                envelope(sender, None, local),
                &["message-id:   <lower@example.org>", ""],
                format!(
                    "{R}message-id:   <lower@example.org>\nDate: Thu, 26 Nov 2026 20:49:16 +0000 (UTC)\n{from}\n"
                ),
            ),
            // c20: no separator and no body.
            (
                &s,
                envelope(sender, None, local),
                &["Subject: nosep"],
                format!("{R}Subject: nosep\n{ADDED}{from}"),
            ),
            // message_drop_headers (from header_opts.c / postconf -d).
            (
                &s,
                envelope(sender, None, None),
                &[
                    "Bcc: x@y",
                    "Return-Path: <a@b>",
                    "Content-Length: 5",
                    "X: y",
                    "",
                ],
                format!("{R}X: y\n\n"),
            ),
            // A Resent- header makes cleanup add the Resent- versions.
            (
                &s,
                envelope(sender, None, local),
                &["Resent-To: x@y", ""],
                format!(
                    "{R}Resent-To: x@y\nResent-Message-Id: <20261126204916.QID@mx.example.test>\nResent-Date: Thu, 26 Nov 2026 20:49:16 +0000 (UTC)\nResent-From: sender@example.org\n\n"
                ),
            ),
        ];
        for (n, (settings, env, lines, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                run(settings, env, lines).unwrap(),
                want,
                "case {n}: {lines:?}"
            );
        }
    }

    #[test]
    fn hop_limit() {
        let s = Settings {
            hopcount_limit: 3,
            ..Settings::default()
        };
        // c29 live with hopcount_limit = 3: one foreign Received: passes, two are refused.
        let one = ["Received: from h0", "Subject: x", ""];
        assert!(run(&s, envelope("a@b", None, None), &one).is_ok());
        let two = ["Received: from h0", "Received: from h1", "Subject: x", ""];
        let err = run(&s, envelope("a@b", None, None), &two).unwrap_err();
        assert_eq!(err, CleanupError::TooManyHops);
        assert_eq!(err.reply(), (554, "5.4.0", "Error: too many hops"));
    }

    #[test]
    fn no_received_is_refused() {
        let s = Settings::default();
        let mut c = HeaderCleanup::new(&s, envelope("a@b", None, None), NoHooks);
        assert_eq!(c.end_of_headers(), Err(CleanupError::NoReceived));
    }

    #[test]
    fn message_id_logs() {
        let s = Settings {
            myhostname: "mx.example.test".to_owned(),
            ..Settings::default()
        };
        let mut c = HeaderCleanup::new(
            &s,
            envelope("a@b", None, Some(RewriteContext::Local)),
            NoHooks,
        );
        c.header(HeaderField::parse(b"Received: x").unwrap())
            .unwrap();
        c.end_of_headers().unwrap();
        assert_eq!(
            c.take_logs(),
            [LogEvent::MessageId(
                b"<20261126204916.QID@mx.example.test>".to_vec()
            )]
        );
        // Remote, not added: cleanup logs message-id=<>.
        let mut c = HeaderCleanup::new(&s, envelope("a@b", None, None), NoHooks);
        c.header(HeaderField::parse(b"Received: x").unwrap())
            .unwrap();
        c.end_of_headers().unwrap();
        assert_eq!(c.take_logs(), [LogEvent::MessageId(b"<>".to_vec())]);
    }

    struct Upper;
    impl Hooks for Upper {
        fn rewrite_address(
            &mut self,
            role: AddressRole,
            _: RewriteContext,
            a: &[u8],
        ) -> Option<Vec<u8>> {
            (role == AddressRole::Recipient).then(|| a.to_ascii_uppercase())
        }
        fn header_check(&mut self, f: &HeaderField) -> HeaderCheck {
            if f.is("X-Spam") {
                HeaderCheck::Drop
            } else {
                HeaderCheck::Keep
            }
        }
    }

    #[test]
    fn hooks_run() {
        let s = Settings::default();
        let mut c = HeaderCleanup::new(
            &s,
            envelope("a@b", None, Some(RewriteContext::Local)),
            Upper,
        );
        let to = c
            .header(HeaderField::parse(b"To: Al <al@x>, \"b c\"@y").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(to, b"To: Al <AL@X>, \"B C\"@Y");
        let from = c
            .header(HeaderField::parse(b"From: me@x").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(from, b"From: me@x");
        assert_eq!(
            c.header(HeaderField::parse(b"X-Spam: yes").unwrap())
                .unwrap(),
            None
        );
    }
}
