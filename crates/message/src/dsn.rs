//! Delivery status notifications as Postfix 3.7's bounce(8) composes them: non-delivery
//! notices, delay warnings, success (NOTIFY=SUCCESS) and verify reports, and their postmaster
//! copies, as RFC 3464 multipart/report messages.
//!
//! The flow mirrors bounce(8) (src/bounce/bounce_notify_service.c, bounce_warn_service.c,
//! bounce_trace_service.c, bounce_notify_util.c):
//! 1. [`addressees`] decides who gets a notice from the kind, the original sender and
//!    notify_classes (the sender, a postmaster copy, a double bounce, or nobody);
//! 2. [`compose`] writes one notice: the headers post_mail(3) and bounce(8) write, plus the
//!    Message-Id: cleanup(8) adds, the boiler-plate text of the built-in template
//!    ([`template`]), one human-readable line per recipient, the message/delivery-status part
//!    and the original message (whole or headers, per RET and bounce_size_limit).
//!
//! The output is the notice's content as Postfix's queue holds it: LF-terminated lines,
//! headers qualified as cleanup qualifies them for internal mail (`MAILER-DAEMON` and an
//! address without a domain get `@$myorigin`). Passing it through cleanup once more changes
//! nothing: Date: and Message-Id: are present and the addresses are qualified.
//!
//! Sans-IO: the caller passes the clock ([`NewMessage`]), the new queue id, the settings, the
//! per-recipient results (what Postfix keeps in its bounce, defer and trace logs) and a reader
//! over the original content; nothing here opens files or reads the time.
//!
//! Not done (Postfix does): custom bounce templates (bounce_template_file), threaded bounces
//! (enable_threaded_bounces: References:/In-Reply-To:), canonical and masquerade rewriting of
//! the notice's From:/To: (cleanup's job), VERP notices, IDNA-to-UTF-8 of $myhostname in the
//! boiler-plate text.
//!
//! # Security
//! The original content, the sender, the recipients, the ENVID and the remote servers'
//! replies all come from the network. The per-recipient fields are made printable as
//! bounce(8)'s log reader makes them (control characters and invalid UTF-8 become `?`), so no
//! line break can be smuggled into the notice's headers or delivery-status fields. The
//! original content is copied as stored (it is inside its own MIME part), never parsed beyond
//! the header/body split, and read one line at a time.

mod plan;
pub mod template;
mod text;

use std::io::{BufRead, Write};

pub use plan::{Addressee, Audience, NotifyClasses, Skipped, addressees};

use crate::address::quote_822_local_bytes;
use crate::header::header_name_len;
use crate::trace::{Timestamp, mail_date, message_id};
use text::{is_utf8_address, mail_name_atom, printable, quote_822_local_7bit, same_address, wrap};

/// The kind of notice: the template and the delivery log it reports (bounce(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Non-delivery (failure_template; the bounce log, or the defer log when mail expires).
    Failure,
    /// Delay warning (delay_template; the defer log).
    Delay,
    /// NOTIFY=SUCCESS report: delivered, relayed, expanded (success_template; the trace log).
    Success,
    /// `sendmail -v` / `-bv` report (verify_template; the trace log).
    Verify,
}

/// RFC 3461 RET: how much of the original a notice returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// The whole message (message/rfc822).
    Full,
    /// The headers only (text/rfc822-headers).
    Hdrs,
}

/// The original's content encoding as the queue manager hands it to bounce(8)
/// (MAIL_ATTR_ENCODING): what cleanup found or BODY= declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// Not known (no BODY=, nothing 8-bit seen).
    Unknown,
    /// BODY=7BIT.
    SevenBit,
    /// BODY=8BITMIME or 8-bit content.
    EightBit,
}

/// RFC 3464 2.3.3 Action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `failed`.
    Failed,
    /// `delayed`.
    Delayed,
    /// `delivered`.
    Delivered,
    /// `relayed`.
    Relayed,
    /// `expanded`.
    Expanded,
    /// `deliverable` (a `sendmail -bv` report; Postfix's own, not RFC 3464).
    Deliverable,
    /// `undeliverable` (likewise).
    Undeliverable,
}

impl Action {
    /// The RFC 3464 keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Delayed => "delayed",
            Self::Delivered => "delivered",
            Self::Relayed => "relayed",
            Self::Expanded => "expanded",
            Self::Deliverable => "deliverable",
            Self::Undeliverable => "undeliverable",
        }
    }
}

/// header_from_format (postconf(5)): the shape of the notice's From: header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromFormat {
    /// `Mail Delivery System <MAILER-DAEMON@host>` (the default since Postfix 3.3).
    Standard,
    /// `MAILER-DAEMON@host (Mail Delivery System)`.
    Obsolete,
}

/// RFC 3461 NOTIFY bits as Postfix stores them (dsn_mask.h).
pub mod notify {
    /// NOTIFY=NEVER.
    pub const NEVER: u8 = 1;
    /// NOTIFY=SUCCESS.
    pub const SUCCESS: u8 = 2;
    /// NOTIFY=FAILURE.
    pub const FAILURE: u8 = 4;
    /// NOTIFY=DELAY.
    pub const DELAY: u8 = 8;
}

/// One recipient's result: a record of Postfix's bounce, defer or trace log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The final recipient, in internal (unquoted) form; empty for `<>`.
    pub address: String,
    /// The recipient before aliasing or rewriting (Postfix's original recipient, `orig_to=`);
    /// empty when unknown. Shown only when it differs from `address`.
    pub orig_addr: String,
    /// The RFC 3461 ORCPT as stored (`rfc822;user@example.com`); empty for none.
    pub dsn_orcpt: String,
    /// NOTIFY bits ([`notify`]); 0 when the client gave none.
    pub notify: u8,
    /// The enhanced status code, `5.1.1`; empty: `5.0.0` (`4.0.0` in a delay warning).
    pub status: String,
    /// The action; for a [`Kind::Failure`] notice Postfix always says `failed`.
    pub action: Action,
    /// The human-readable reason: `unknown user: "nouser"`, `host mx[192.0.2.1] said: ...`.
    pub reason: String,
    /// The RFC 3464 diagnostic type and text (`smtp`, `550 5.1.1 <u@x>: unknown`) when a
    /// remote server replied; else the Diagnostic-Code is `X-$mail_name; <reason>`.
    pub diagnostic: Option<(String, String)>,
    /// The RFC 3464 Remote-MTA type and name (`dns`, `mx.example.com`).
    pub remote_mta: Option<(String, String)>,
}

/// What bounce(8) reads from the original's queue file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original<'a> {
    /// The original's queue id.
    pub queue_id: &'a str,
    /// The envelope sender in internal form; empty for the null sender.
    pub sender: &'a str,
    /// Arrival time (seconds since the epoch); 0 or less when unknown (no Arrival-Date).
    pub arrival: i64,
    /// RFC 3461 ENVID, as stored.
    pub envid: Option<&'a str>,
    /// The content encoding.
    pub encoding: BodyEncoding,
    /// SMTPUTF8 was requested: the notice becomes message/global-delivery-status with a
    /// message/global(-headers) part, and the notice itself is SMTPUTF8.
    pub smtputf8: bool,
    /// The content size as Postfix's SIZE record and mailq give it: the content's bytes with
    /// every line end counted as two (CRLF). bounce_size_limit is compared with it.
    pub size: u64,
}

/// The reporting host's settings (main.cf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// myhostname: Reporting-MTA, the boundary, the double-bounce and MAILER-DAEMON addresses.
    pub myhostname: String,
    /// mydomain (for templates that name it).
    pub mydomain: String,
    /// myorigin: what cleanup appends to the unqualified addresses of the notice's headers.
    pub myorigin: String,
    /// mail_name: the Received: header and the `X-<mail_name>-` fields.
    pub mail_name: String,
    /// bounce_size_limit: a larger original is returned as headers only; 0: no limit.
    pub bounce_size_limit: u64,
    /// smtputf8_enable: 8bit MIME parts with charset utf-8, UTF-8 kept by printable().
    pub smtputf8_enable: bool,
    /// header_from_format.
    pub header_from_format: FromFormat,
    /// delay_warning_time, seconds (for the delay template text).
    pub delay_warning_time: u64,
    /// maximal_queue_lifetime, seconds (the template text and Will-Retry-Until).
    pub maximal_queue_lifetime: u64,
    /// notify_classes.
    pub notify_classes: NotifyClasses,
    /// bounce_notice_recipient.
    pub bounce_notice_recipient: String,
    /// 2bounce_notice_recipient.
    pub bounce_2_notice_recipient: String,
    /// delay_notice_recipient.
    pub delay_notice_recipient: String,
    /// double_bounce_sender (local part).
    pub double_bounce_sender: String,
    /// enable_long_queue_ids (the Message-Id: shape).
    pub enable_long_queue_ids: bool,
}

impl Reporter {
    /// Postfix 3.7's defaults (compatibility_level 3.6) for a host named `myhostname`, with
    /// mydomain its parent domain and myorigin equal to it.
    pub fn new(myhostname: &str) -> Self {
        let mydomain = myhostname
            .split_once('.')
            .map_or("localdomain", |(_, d)| d)
            .to_owned();
        Self {
            myhostname: myhostname.to_owned(),
            mydomain,
            myorigin: myhostname.to_owned(),
            mail_name: "Postfix".to_owned(),
            bounce_size_limit: 50000,
            smtputf8_enable: true,
            header_from_format: FromFormat::Standard,
            delay_warning_time: 0,
            maximal_queue_lifetime: 5 * 86400,
            notify_classes: NotifyClasses::default(),
            bounce_notice_recipient: "postmaster".to_owned(),
            bounce_2_notice_recipient: "postmaster".to_owned(),
            delay_notice_recipient: "postmaster".to_owned(),
            double_bounce_sender: "double-bounce".to_owned(),
            enable_long_queue_ids: false,
        }
    }
}

/// The notice's own identity and clock.
pub struct NewMessage<'a> {
    /// The notice's queue id (the Received: header and the Message-Id:).
    pub queue_id: &'a str,
    /// Now, seconds since the epoch: Date:, Received:, Message-Id:, and the boundary.
    pub now: i64,
    /// The local time zone: the time at a moment, for mail_date (Date:, Arrival-Date:,
    /// Will-Retry-Until:).
    pub zone: &'a dyn Fn(i64) -> Timestamp,
}

/// What the original returned in the notice turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// The whole message.
    Full,
    /// The headers (RET=HDRS, a postmaster copy, or bounce_size_limit).
    Headers,
    /// No content reader: `--- Undelivered message unavailable ---`.
    Unavailable,
}

/// About a composed notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// How many recipients it reports.
    pub reported: usize,
    /// What of the original it returns.
    pub returned: Returned,
    /// The notice must be queued with SMTPUTF8 (the original requested it).
    pub smtputf8: bool,
    /// The MIME boundary used.
    pub boundary: String,
}

/// Errors of [`compose`]: the reader or the writer failed.
#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    /// Reading the original's content.
    #[error("read original content of {queue_id}: {source}")]
    Read {
        /// The original's queue id.
        queue_id: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the notice.
    #[error("write notice: {0}")]
    Write(#[from] std::io::Error),
}

/// Composes one notice into `out` as LF-terminated lines. Returns `None`, having written
/// nothing, when no recipient applies (a sender notice lists only recipients whose NOTIFY asks
/// for this kind or that gave none; Postfix then cancels the notice). An empty `recipients`
/// stands for a missing log: a failure notice then says `--- Delivery report unavailable ---`
/// (as Postfix does), other kinds are not sent.
///
/// `content` reads the original as the queue stores it (headers, blank line, body; LF line
/// ends); `None` when it is gone (`--- Undelivered message unavailable ---`).
#[allow(clippy::too_many_arguments)]
pub fn compose(
    addressee: &Addressee,
    original: &Original<'_>,
    recipients: &[RecipientReport],
    content: Option<&mut dyn BufRead>,
    r: &Reporter,
    new: &NewMessage<'_>,
    out: &mut dyn Write,
) -> Result<Option<Composed>, DsnError> {
    let kind = addressee.kind;
    let tmpl = template::builtin(kind);
    let postmaster_copy = addressee.audience == Audience::Postmaster;
    let filter = match (addressee.audience, kind) {
        (Audience::Sender, Kind::Failure) => notify::FAILURE,
        (Audience::Sender, Kind::Delay) => notify::DELAY,
        _ => 0xff,
    };
    let utf8 = r.smtputf8_enable;
    let entries: Vec<Entry> = recipients
        .iter()
        .filter(|rc| {
            let n = if notify_ok(rc.notify) { rc.notify } else { 0 };
            n == 0 || n & filter != 0
        })
        .map(|rc| Entry::from_report(rc, kind, utf8))
        .collect();
    let log_missing = recipients.is_empty();
    if entries.is_empty() && !(log_missing && kind == Kind::Failure) {
        return Ok(None);
    }

    // bounce_mail_alloc(): the MIME encoding of the notice. With smtputf8_enable it is always
    // 8bit (Postfix fixes of 20140708/20140718: addresses and $myhostname may be 8-bit).
    let mime_encoding = if utf8 {
        Some("8bit")
    } else {
        match original.encoding {
            BodyEncoding::EightBit => Some("8bit"),
            BodyEncoding::SevenBit => Some("7bit"),
            BodyEncoding::Unknown => None,
        }
    };
    let not_7bit = mime_encoding.is_some_and(|e| e != "7bit");
    let atom = mail_name_atom(&r.mail_name);
    let boundary = format!("{}.{}/{}", original.queue_id, new.now, r.myhostname);
    let sender_addr = if original.sender.is_empty() {
        format!("MAILER-DAEMON@{}", r.myhostname).into_bytes()
    } else {
        original.sender.as_bytes().to_vec()
    };
    let sender_q = quote_822_local_7bit(&sender_addr);
    let addr_type = |a: &[u8]| {
        if original.smtputf8 && is_utf8_address(a) {
            "utf-8"
        } else {
            "rfc822"
        }
    };

    let mut w = Lines::default();
    // post_mail_init(): Received: and Date:.
    let date = mail_date(&(new.zone)(new.now));
    w.line(format!("Received: by {} ({})", r.myhostname, r.mail_name));
    w.line(format!("\tid {}; {date}", new.queue_id));
    w.line(format!("Date: {date}"));
    // bounce_template_headers(): From:, Subject:, To:, qualified as cleanup does.
    let from = match r.header_from_format {
        FromFormat::Standard => tmpl.std_from,
        FromFormat::Obsolete => tmpl.obs_from,
    };
    w.line(format!(
        "From: {}",
        from.replace("MAILER-DAEMON", &format!("MAILER-DAEMON@{}", r.myorigin))
    ));
    let subject = match tmpl.postmaster_subject {
        Some(s) if postmaster_copy => s,
        _ => tmpl.subject,
    };
    w.line(format!("Subject: {subject}"));
    let mut to = quote_822_local_bytes(addressee.recipient.as_bytes());
    if !to.contains(&b'@') {
        to.push(b'@');
        to.extend_from_slice(r.myorigin.as_bytes());
    }
    w.bytes(b"To: ", &to);
    // RFC 3834 5: a postmaster copy is not a reply to anyone.
    w.line(format!(
        "Auto-Submitted: {}",
        if postmaster_copy {
            "auto-generated"
        } else {
            "auto-replied"
        }
    ));
    w.line("MIME-Version: 1.0");
    w.line("Content-Type: multipart/report; report-type=delivery-status;");
    w.line(format!("\tboundary=\"{boundary}\""));
    if let Some(enc) = mime_encoding {
        // A 7bit original gets the template's encoding (7bit for the built-ins).
        w.line(format!("Content-Transfer-Encoding: {enc}"));
    }
    // cleanup(8) appends the Message-Id: it finds missing.
    w.line(format!(
        "Message-Id: <{}>",
        message_id(
            new.now,
            new.queue_id,
            &r.myhostname,
            r.enable_long_queue_ids
        )
    ));
    w.line("");
    w.line("This is a MIME-encapsulated message.");

    // The human-readable part.
    w.line("");
    w.line(format!("--{boundary}"));
    w.line("Content-Description: Notification");
    let charset = if tmpl.charset.eq_ignore_ascii_case("us-ascii") && not_7bit {
        "utf-8"
    } else {
        tmpl.charset
    };
    w.line(format!("Content-Type: text/plain; charset={charset}"));
    if not_7bit {
        w.line("Content-Transfer-Encoding: 8bit");
    }
    w.line("");
    if !postmaster_copy {
        let vars = template::Vars {
            myhostname: &r.myhostname,
            mydomain: &r.mydomain,
            mail_name: &r.mail_name,
            delay_warning_time: r.delay_warning_time,
            maximal_queue_lifetime: r.maximal_queue_lifetime,
            utf8,
        };
        for line in tmpl.text {
            w.bytes(b"", &template::expand(line, &vars));
        }
    }
    if entries.is_empty() {
        w.line("");
        w.line("\t--- Delivery report unavailable ---");
    }
    for e in &entries {
        w.line("");
        let mut text = b"<".to_vec();
        text.extend_from_slice(&e.address);
        text.push(b'>');
        if let Some(orig) = &e.orig_addr {
            text.extend_from_slice(b" (expanded from <");
            text.extend_from_slice(orig);
            text.extend_from_slice(b">)");
        }
        text.extend_from_slice(b": ");
        text.extend_from_slice(&e.reason);
        w.wrapped(&text);
    }

    // The machine-readable part (RFC 3464 2.2, 2.3).
    w.line("");
    w.line(format!("--{boundary}"));
    w.line("Content-Description: Delivery report");
    // RFC 6533 6.1: message/global-delivery-status only when the original asked for SMTPUTF8.
    w.line(format!(
        "Content-Type: message/{}delivery-status",
        if original.smtputf8 { "global-" } else { "" }
    ));
    if not_7bit && original.smtputf8 {
        w.line("Content-Transfer-Encoding: 8bit");
    }
    w.line("");
    w.line(format!("Reporting-MTA: dns; {}", r.myhostname));
    if let Some(envid) = original.envid.filter(|e| !e.is_empty()) {
        w.line(format!("Original-Envelope-Id: {envid}"));
    }
    w.line(format!("X-{atom}-Queue-ID: {}", original.queue_id));
    let mut sender_field = format!("X-{atom}-Sender: {}; ", addr_type(&sender_q)).into_bytes();
    sender_field.extend_from_slice(&sender_q);
    w.bytes(b"", &sender_field);
    if original.arrival > 0 {
        w.line(format!(
            "Arrival-Date: {}",
            mail_date(&(new.zone)(original.arrival))
        ));
    }
    for e in &entries {
        w.line("");
        let mut f = format!("Final-Recipient: {}; ", addr_type(&e.address)).into_bytes();
        f.extend_from_slice(&e.address);
        w.bytes(b"", &f);
        // RFC 3464 2.3.1 says to omit Original-Recipient without an ORCPT; Postfix shows the
        // pre-alias address there too, as its own ORCPT relayed downstream would.
        if !e.dsn_orcpt.is_empty() {
            w.bytes(b"Original-Recipient: ", &e.dsn_orcpt);
        } else if let Some(orig) = &e.orig_addr {
            let mut f = format!("Original-Recipient: {}; ", addr_type(orig)).into_bytes();
            f.extend_from_slice(orig);
            w.bytes(b"", &f);
        }
        let action = if kind == Kind::Failure {
            b"failed".as_slice()
        } else {
            &e.action
        };
        w.bytes(b"Action: ", action);
        w.bytes(b"Status: ", &e.status);
        if let Some((mtype, mname)) = &e.remote_mta {
            w.wrapped(&[b"Remote-MTA: ", &mtype[..], b"; ", &mname[..]].concat());
        }
        if let Some((dtype, dtext)) = &e.diagnostic {
            w.wrapped(&[b"Diagnostic-Code: ", &dtype[..], b"; ", &dtext[..]].concat());
        } else {
            let head = format!("Diagnostic-Code: X-{atom}; ");
            w.wrapped(&[head.as_bytes(), &e.reason[..]].concat());
        }
        if kind == Kind::Delay {
            let until = original
                .arrival
                .saturating_add(i64::try_from(r.maximal_queue_lifetime).unwrap_or(i64::MAX));
            w.line(format!(
                "Will-Retry-Until: {}",
                mail_date(&(new.zone)(until))
            ));
        }
    }
    out.write_all(&w.buf)?;

    // The original (bounce_original()): when truncating, send the headers only, so that the
    // MIME structure stays whole.
    let mut returned = match addressee.ret {
        Ret::Full => Returned::Full,
        Ret::Hdrs => Returned::Headers,
    };
    if r.bounce_size_limit > 0
        && content.is_some()
        && (original.size == 0 || original.size > r.bounce_size_limit)
    {
        returned = Returned::Headers;
    }
    let mut w = Lines::default();
    w.line("");
    w.line(format!("--{boundary}"));
    let undelivered = matches!(kind, Kind::Failure | Kind::Delay);
    w.line(format!(
        "Content-Description: {}{}",
        if undelivered { "Undelivered " } else { "" },
        if returned == Returned::Headers {
            "Message Headers"
        } else {
            "Message"
        }
    ));
    let ctype = match (original.smtputf8, returned == Returned::Headers) {
        (true, true) => "message/global-headers",
        (true, false) => "message/global",
        (false, true) => "text/rfc822-headers",
        (false, false) => "message/rfc822",
    };
    w.line(format!("Content-Type: {ctype}"));
    if not_7bit {
        w.line("Content-Transfer-Encoding: 8bit");
    }
    w.line("");
    let Some(content) = content else {
        w.line("\t--- Undelivered message unavailable ---");
        out.write_all(&w.buf)?;
        return Ok(Some(Composed {
            reported: entries.len().max(1),
            returned: Returned::Unavailable,
            smtputf8: original.smtputf8,
            boundary,
        }));
    };
    // Postfix prepends the Return-Path: that cleanup removed from the original.
    w.bytes(b"Return-Path: <", &[&sender_q[..], b">"].concat());
    out.write_all(&w.buf)?;
    copy_original(
        content,
        returned == Returned::Headers,
        original.queue_id,
        out,
    )?;
    out.write_all(format!("\n--{boundary}--\n").as_bytes())?;
    Ok(Some(Composed {
        reported: entries.len().max(1),
        returned,
        smtputf8: original.smtputf8,
        boundary,
    }))
}

/// [`compose`] into a new buffer.
#[allow(clippy::too_many_arguments)]
pub fn compose_to_vec(
    addressee: &Addressee,
    original: &Original<'_>,
    recipients: &[RecipientReport],
    content: Option<&mut dyn BufRead>,
    r: &Reporter,
    new: &NewMessage<'_>,
) -> Result<Option<(Vec<u8>, Composed)>, DsnError> {
    let mut buf = Vec::new();
    Ok(compose(addressee, original, recipients, content, r, new, &mut buf)?.map(|c| (buf, c)))
}

/// One recipient as bounce(8) reads it back from its log: addresses quoted, fields made
/// printable, the defaults for missing fields filled in.
struct Entry {
    address: Vec<u8>,
    orig_addr: Option<Vec<u8>>,
    dsn_orcpt: Vec<u8>,
    status: Vec<u8>,
    action: Vec<u8>,
    reason: Vec<u8>,
    diagnostic: Option<(Vec<u8>, Vec<u8>)>,
    remote_mta: Option<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    fn from_report(rc: &RecipientReport, kind: Kind, utf8: bool) -> Self {
        let p = |b: &[u8]| printable(b, utf8, b'?');
        let or = |v: &str, dflt: &str| p(if v.is_empty() { dflt } else { v }.as_bytes());
        // bounce_append_service.c writes `recipient=<>` for the null address and the original
        // recipient only when it differs (case-insensitively) from the final one.
        let address = if rc.address.is_empty() {
            p(b"<>")
        } else {
            p(&quote_822_local_bytes(rc.address.as_bytes()))
        };
        let orig_addr = (!rc.orig_addr.is_empty()
            && !same_address(rc.address.as_bytes(), rc.orig_addr.as_bytes(), utf8))
        .then(|| p(&quote_822_local_bytes(rc.orig_addr.as_bytes())));
        let pair = |x: &Option<(String, String)>| {
            x.as_ref()
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .map(|(a, b)| (p(a.as_bytes()), p(b.as_bytes())))
        };
        // The defer log's default status is 4.0.0, the others' 5.0.0 (bounce_log_open()).
        let compat_status = if kind == Kind::Delay {
            "4.0.0"
        } else {
            "5.0.0"
        };
        Self {
            address,
            orig_addr,
            dsn_orcpt: p(rc.dsn_orcpt.as_bytes()),
            status: or(&rc.status, compat_status),
            action: p(rc.action.as_str().as_bytes()),
            reason: or(&rc.reason, "(description unavailable)"),
            diagnostic: pair(&rc.diagnostic),
            remote_mta: pair(&rc.remote_mta),
        }
    }
}

/// DSN_NOTIFY_OK: NEVER alone, or a non-empty set of SUCCESS, FAILURE, DELAY. The bounce log
/// reader ignores other values (the recipient then counts as having no NOTIFY).
fn notify_ok(n: u8) -> bool {
    let any = notify::SUCCESS | notify::FAILURE | notify::DELAY;
    n == notify::NEVER || (n != 0 && n & !any == 0)
}

/// Copies the original: every line, or (headers only) the lines up to the first one that is
/// neither a header nor a continuation, as bounce_original()'s IS_HEADER loop does.
fn copy_original(
    content: &mut dyn BufRead,
    headers_only: bool,
    queue_id: &str,
    out: &mut dyn Write,
) -> Result<(), DsnError> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = content
            .read_until(b'\n', &mut line)
            .map_err(|source| DsnError::Read {
                queue_id: queue_id.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        let is_header = matches!(line[0], b' ' | b'\t') || header_name_len(&line).is_some();
        if headers_only && !is_header {
            return Ok(());
        }
        out.write_all(&line)?;
    }
}

/// A buffer of LF-terminated lines.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn line(&mut self, s: impl AsRef<str>) {
        self.buf.extend_from_slice(s.as_ref().as_bytes());
        self.buf.push(b'\n');
    }

    fn bytes(&mut self, head: &[u8], tail: &[u8]) {
        self.buf.extend_from_slice(head);
        self.buf.extend_from_slice(tail);
        self.buf.push(b'\n');
    }

    /// bounce_print_wrap(): 79 columns, later lines indented by four.
    fn wrapped(&mut self, text: &[u8]) {
        for l in wrap(text) {
            self.bytes(b"", &l);
        }
    }
}

#[cfg(test)]
mod tests;
