//! cleanup's part of a message received by smtpd: the queue file from its first accepted
//! recipient to its durable commit.
//!
//! As in Postfix, the queue file (and so the queue id) exists from the first accepted
//! RCPT on (smtpd logs `QUEUEID: client=...` then); the envelope is written when the
//! content starts, the `Received:` header first (smtpd.c puts it before the client's
//! content), then the content as records, each line ending in LF (the queue's internal
//! form, which postcat and the delivery agents read); a header section without
//! `Message-ID:` gets one (cleanup(8): "Add ... Message-Id: ... headers when not
//! present"), and cleanup logs `QUEUEID: message-id=...`.
//!
//! XXX: Date: and From: for local clients, header folding and the other header rewrites
//! belong to crates/message (cleanup's header library), which is being written.
//!
//! # Security
//! The content comes from the network. It is written as records of bounded size (the
//! line assembler caps each line at line_length_limit); only header names are looked
//! at here, case-insensitively, and values are logged as given (smtpd already replaced
//! nothing: the log writer cuts lines at 2000 bytes).

use std::fmt::Write as _;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use tern_queue::{
    Envelope, Error as QueueError, IdForm, MessageFlags, PendingFile, QueueLayout, QueueName,
    QueueWriter, Recipient, Timestamp,
};
use tern_smtp::data::RecordKind;
use tern_smtp::params::{Body, MailFrom, RcptTo};

/// The most content bytes kept before a write to the queue file.
const FLUSH_AT: usize = 64 * 1024;

/// Who sent the message, for the Received: header and the envelope.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub helo: Option<String>,
    /// `SMTP`, `ESMTP`, `UTF8SMTP`.
    pub protocol: String,
}

/// Where the header section is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Headers,
    Body,
}

/// One message being received.
pub struct Message {
    pending: Option<PendingFile>,
    writer: Option<QueueWriter<PendingFile>>,
    id: String,
    recipients: Vec<Recipient>,
    buf: Vec<u8>,
    part: Part,
    /// The previous record ended without its line end (a line split at the limit).
    in_line: bool,
    msgid: Option<String>,
    myhostname: String,
    arrival: Timestamp,
}

impl Message {
    /// Creates the queue file in `incoming/` (its id is fixed now).
    pub fn create(
        layout: &QueueLayout,
        form: IdForm,
        myhostname: &str,
    ) -> Result<Self, QueueError> {
        let pending = PendingFile::create(layout, QueueName::Incoming, form)?;
        Ok(Self {
            id: pending.id().as_str().to_owned(),
            pending: Some(pending),
            writer: None,
            recipients: Vec::new(),
            buf: Vec::new(),
            part: Part::Headers,
            in_line: false,
            msgid: None,
            myhostname: myhostname.to_owned(),
            arrival: Timestamp::now(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn add_recipient(&mut self, rcpt: &RcptTo) {
        let mut r = Recipient::new(rcpt.address.clone());
        r.orcpt = rcpt
            .orcpt
            .as_ref()
            .map(|o| format!("{};{}", o.addr_type, o.address));
        self.recipients.push(r);
    }

    /// Writes the envelope and the Received: header; content follows.
    pub fn start(
        &mut self,
        sender: &MailFrom,
        client: &ClientInfo,
        mail_name: &str,
    ) -> io::Result<()> {
        let Some(pending) = self.pending.take() else {
            return Err(io::Error::other("queue file already started"));
        };
        let mut flags = 0;
        if sender.smtputf8 {
            flags |= MessageFlags::SMTPUTF8;
        }
        if sender.body == Some(Body::EightBitMime) {
            flags |= MessageFlags::BODY_8BITMIME;
        }
        let mut attrs = vec![
            ("client_name".to_owned(), client.name.clone()),
            ("client_address".to_owned(), client.addr.clone()),
            ("client_port".to_owned(), client.port.to_string()),
        ];
        if let Some(h) = &client.helo {
            attrs.push(("helo_name".to_owned(), h.clone()));
        }
        attrs.push(("protocol_name".to_owned(), client.protocol.clone()));
        let env = Envelope {
            arrival: self.arrival,
            sender: sender.address.clone(),
            recipients: self.recipients.clone(),
            client: attrs,
            dsn_envid: sender.envid.clone(),
            dsn_ret: None,
            flags: MessageFlags(flags),
        };
        self.writer = Some(QueueWriter::new(pending, &env)?);
        let received = received_header(
            client,
            &self.myhostname,
            mail_name,
            &self.id,
            (self.recipients.len() == 1).then(|| self.recipients[0].address.as_str()),
            unix_now(),
        );
        self.buf.extend_from_slice(received.as_bytes());
        Ok(())
    }

    /// One content record from the DATA or BDAT reader.
    pub fn record(&mut self, text: &[u8], kind: RecordKind) -> io::Result<()> {
        if self.part == Part::Headers && !self.in_line {
            self.header_line(text);
        }
        self.buf.extend_from_slice(text);
        if kind == RecordKind::Norm {
            self.buf.push(b'\n');
        }
        self.in_line = kind == RecordKind::Cont;
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Ends the content; returns the file ready for the commit and the Message-ID value
    /// for cleanup's log line.
    pub fn finish(mut self) -> io::Result<(PendingFile, String)> {
        if self.in_line {
            self.buf.push(b'\n');
        }
        if self.part == Part::Headers {
            // The content ended inside the header section.
            self.add_message_id();
        }
        self.flush()?;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("queue file not started"))?;
        let pending = writer.finish()?;
        Ok((pending, self.msgid.unwrap_or_default()))
    }

    fn header_line(&mut self, text: &[u8]) {
        if text.is_empty() {
            self.add_message_id();
            self.part = Part::Body;
            return;
        }
        let is_header = text
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|i| i > 0 && text[..i].iter().all(u8::is_ascii_graphic));
        if !is_header && !matches!(text[0], b' ' | b'\t') {
            // RFC 5322 2.2: the first line that is no header field starts the body;
            // cleanup then puts a blank line before it (Postfix does too).
            self.add_message_id();
            self.buf.push(b'\n');
            self.part = Part::Body;
            return;
        }
        let name = b"message-id:";
        if self.msgid.is_none()
            && text.len() >= name.len()
            && text[..name.len()].eq_ignore_ascii_case(name)
        {
            let value = String::from_utf8_lossy(&text[name.len()..]);
            self.msgid = Some(value.trim().to_owned());
        }
    }

    fn add_message_id(&mut self) {
        if self.msgid.is_some() {
            return;
        }
        // cleanup_message.c: <YYYYMMDDHHMMSS.QUEUEID@myhostname>.
        let (y, mo, d, h, mi, s) = civil(unix_now());
        let id = format!(
            "<{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}.{}@{}>",
            self.id, self.myhostname
        );
        self.buf
            .extend_from_slice(format!("Message-Id: {id}\n").as_bytes());
        self.msgid = Some(id);
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(w) = &mut self.writer {
            w.content(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// smtpd's Received: header (smtpd.c): `for <rcpt>` only with a single recipient.
pub fn received_header(
    client: &ClientInfo,
    myhostname: &str,
    mail_name: &str,
    queue_id: &str,
    single_rcpt: Option<&str>,
    now: i64,
) -> String {
    let helo = client.helo.as_deref().unwrap_or(&client.name);
    let addr = if client.addr.contains(':') {
        format!("IPv6:{}", client.addr)
    } else {
        client.addr.clone()
    };
    let date = mail_date(now);
    let mut h = format!(
        "Received: from {helo} ({} [{addr}])\n\tby {myhostname} ({mail_name}) with {} id {queue_id}",
        client.name, client.protocol
    );
    match single_rcpt {
        Some(r) => {
            let _ = write!(h, "\n\tfor <{r}>; {date}\n");
        }
        None => {
            let _ = write!(h, ";\n\t{date}\n");
        }
    }
    h
}

/// RFC 5322 3.3 date-time as Postfix's mail_date() writes it:
/// `Thu, 26 Nov 2026 20:53:35 +0000 (UTC)`.
pub fn mail_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let offset = i64::from(tern_maillog::writer::local_utc_offset(unix));
    let local = unix + offset;
    let (y, mo, d, h, mi, s) = civil(local);
    let wday = DAYS[usize::try_from(local.div_euclid(86_400).rem_euclid(7)).unwrap_or(0)];
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.abs();
    // XXX: the zone name in parentheses is printed for UTC only (no tz database here).
    let zone = if offset == 0 { " (UTC)" } else { "" };
    format!(
        "{wday}, {d} {} {y} {h:02}:{mi:02}:{s:02} {sign}{:02}{:02}{zone}",
        MONTHS[usize::try_from(mo - 1).unwrap_or(0)],
        off / 3600,
        off % 3600 / 60
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Year, month, day, hour, minute, second of a Unix time (the days-from-civil
/// algorithm of Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms").
#[allow(clippy::many_single_char_names)] // the names of the published algorithm
fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        for (t, want) in [
            (0, (1970, 1, 1, 0, 0, 0)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (1_795_726_415, (2026, 11, 26, 20, 53, 35)),
        ] {
            assert_eq!(civil(t), want, "{t}");
        }
    }

    #[test]
    fn received() {
        let c = ClientInfo {
            name: "localhost".into(),
            addr: "127.0.0.1".into(),
            port: 4000,
            helo: Some("client.example".into()),
            protocol: "ESMTP".into(),
        };
        let h = received_header(&c, "mx.example.com", "Postfix", "4ABC", Some("a@b"), 0);
        assert!(h.starts_with(
            "Received: from client.example (localhost [127.0.0.1])\n\tby mx.example.com \
             (Postfix) with ESMTP id 4ABC\n\tfor <a@b>; "
        ));
        let h = received_header(&c, "mx", "Postfix", "4ABC", None, 0);
        assert!(h.contains("id 4ABC;\n\t"), "{h}");
    }
}
