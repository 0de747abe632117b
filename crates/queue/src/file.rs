//! Queue files: the envelope and content of one message, written once, then followed by
//! appended per-recipient delivery status records.
//!
//! Order of records (docs/queue-format.md): the envelope (Arrival and Sender exactly once;
//! Recipient, Client, DsnEnvid, DsnRet, Flags), then Content records, then Recipient
//! records extracted from the content (`sendmail -t`), then End, then any number of
//! Status records. A file without its End record is incomplete and is never taken for a
//! message: recipients are all written before End, so a cut file can not pass for a
//! message with fewer recipients.
//!
//! Status records are appended after a delivery attempt ([`StatusLog::append`]: one
//! write, one fdatasync). A status record torn by a crash is detected by its checksum and
//! cut off ([`QueueFile::torn_tail`]); the recipient then keeps its earlier status and is
//! tried again, so a crash may repeat a delivery but never loses one.
//!
//! Security: [`QueueFile::read`] takes files that may be cut short or damaged; it never
//! panics and holds no content in memory, only the envelope and content offsets.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::Error;
use crate::record::{
    CONTENT_CHUNK, FRAMING, Fields, HEADER_LEN, ReadError, RecordReader, RecordType, header,
    put_record, put_str16,
};

/// A time as seconds and microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub sec: u64,
    pub usec: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            sec: d.as_secs(),
            usec: d.subsec_micros(),
        }
    }
}

/// DSN NOTIFY (RFC 3461 4.1) as bits, with Postfix's values (DSN_NOTIFY_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify(pub u8);

impl Notify {
    pub const NEVER: u8 = 1;
    pub const SUCCESS: u8 = 2;
    pub const FAILURE: u8 = 4;
    pub const DELAY: u8 = 8;
}

/// DSN RET (RFC 3461 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnRet {
    Full = 1,
    Hdrs = 2,
}

/// Message flags; the daemon defines the bits it needs, unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageFlags(pub u32);

impl MessageFlags {
    /// MAIL FROM ... SMTPUTF8 (RFC 6531).
    pub const SMTPUTF8: u32 = 1;
    /// MAIL FROM ... BODY=8BITMIME (RFC 6152).
    pub const BODY_8BITMIME: u32 = 2;
    /// Sent by `sendmail -t`: the extracted recipients follow the content.
    pub const EXTRACTED: u32 = 4;
    /// `sendmail -bv`: a probe to verify its recipients, never delivered (Postfix's
    /// trace flags DEL_REQ_FLAG_USR_VRFY | DEL_REQ_FLAG_RECORD): each recipient is
    /// answered `deliverable` or `undeliverable` in one attempt, and the sender gets a
    /// "Mail Delivery Status Report" instead of a bounce.
    pub const VERIFY: u32 = 8;
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryStatus {
    /// Not yet tried, or tried and lost to a crash.
    #[default]
    Pending = 0,
    /// Delivered (`status=sent`).
    Sent = 1,
    /// Temporarily failed; to be retried (`status=deferred`).
    Deferred = 2,
    /// Permanently failed, bounced or expired (`status=bounced`).
    Bounced = 3,
}

impl DeliveryStatus {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Pending,
            1 => Self::Sent,
            2 => Self::Deferred,
            3 => Self::Bounced,
            _ => return None,
        })
    }

    /// Whether the recipient needs no more delivery attempts.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Sent | Self::Bounced)
    }
}

/// One recipient of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipient {
    pub address: String,
    /// DSN ORCPT (RFC 3461 4.2), as given: `rfc822;user@example.com`.
    pub orcpt: Option<String>,
    pub notify: Notify,
    /// Postfix's original recipient (the REC_TYPE_ORCP record cleanup writes before each
    /// recipient): the address as the client gave it, before canonical mapping and
    /// virtual aliasing; delivery logs it as `orig_to=` and local(8) writes it into
    /// `X-Original-To:`. Empty when unknown (a file written before this field existed).
    pub original: String,
    /// The last status recorded for this recipient (`None`: never tried).
    pub last: Option<StatusUpdate>,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            ..Self::default()
        }
    }

    pub fn status(&self) -> DeliveryStatus {
        self.last
            .as_ref()
            .map_or(DeliveryStatus::Pending, |s| s.status)
    }
}

/// The outcome of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// Index of the recipient in [`Envelope::recipients`].
    pub recipient: u32,
    pub status: DeliveryStatus,
    pub time: u64,
    /// Enhanced status code (RFC 3463): `2.0.0`, `4.4.1`.
    pub dsn: String,
    /// The text that goes into the log's parentheses and the bounce.
    pub diagnostic: String,
}

/// Everything about a message but its content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub arrival: Timestamp,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Client attributes, in order (`client_name`, `client_address`, `helo_name`,
    /// `protocol`, `sasl_username`, ...), as Postfix's attribute records.
    pub client: Vec<(String, String)>,
    /// DSN ENVID (RFC 3461 4.4).
    pub dsn_envid: Option<String>,
    pub dsn_ret: Option<DsnRet>,
    pub flags: MessageFlags,
}

/// The named attribute of a FILTER action or of main.cf's content_filter
/// (`transport:nexthop`, Postfix's REC_TYPE_FILT, which postcat shows as
/// `content_filter:`): the queue manager sends every recipient there.
pub const ATTR_FILTER: &str = "content_filter";
/// The named attribute of a REDIRECT action (Postfix's REC_TYPE_RDR, postcat's
/// `redirect_to:`): the queue manager delivers the message once, to this address.
pub const ATTR_REDIRECT: &str = "redirect_to";

impl Envelope {
    /// The last value of the named attribute `name` (a later record overrides an
    /// earlier one, as qmgr reads REC_TYPE_FILT and REC_TYPE_RDR).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.client
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes a queue file: header and envelope on creation, then content, then the End
/// record. The writer only formats; durability is [`crate::commit`]'s job.
pub struct QueueWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    records: u32,
    recipients: u32,
    content_len: u64,
}

impl<W: Write> QueueWriter<W> {
    /// Writes the header and `env` (its recipients' `last` status is not written: a new
    /// message has none).
    pub fn new(out: W, env: &Envelope) -> io::Result<Self> {
        let mut w = Self {
            out,
            buf: header().to_vec(),
            records: 0,
            recipients: 0,
            content_len: 0,
        };
        let mut p = Vec::with_capacity(16);
        p.extend_from_slice(&env.arrival.sec.to_be_bytes());
        p.extend_from_slice(&env.arrival.usec.to_be_bytes());
        w.record(RecordType::Arrival, &p);
        w.record(RecordType::Sender, env.sender.as_bytes());
        for (name, value) in &env.client {
            p.clear();
            put_str16(&mut p, name);
            p.extend_from_slice(value.as_bytes());
            w.record(RecordType::Client, &p);
        }
        if let Some(e) = &env.dsn_envid {
            w.record(RecordType::DsnEnvid, e.as_bytes());
        }
        if let Some(r) = env.dsn_ret {
            w.record(RecordType::DsnRet, &[r as u8]);
        }
        w.record(RecordType::Flags, &env.flags.0.to_be_bytes());
        for r in &env.recipients {
            w.recipient(r);
        }
        w.flush_buf()?;
        Ok(w)
    }

    /// Appends message content (header and body, as cleanup made them).
    pub fn content(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(CONTENT_CHUNK);
            self.record(RecordType::Content, &data[..n]);
            self.content_len += n as u64;
            data = &data[n..];
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Adds a recipient after the content (extracted from headers by `sendmail -t`).
    pub fn extracted_recipient(&mut self, r: &Recipient) -> io::Result<()> {
        self.recipient(r);
        self.flush_buf()
    }

    /// Adds a named attribute after the content (a Client record): the queue actions of
    /// [`ATTR_FILTER`] and [`ATTR_REDIRECT`], which smtpd's access restrictions may
    /// decide only at the end of the message, as Postfix's cleanup writes its
    /// REC_TYPE_FILT and REC_TYPE_RDR records in the extracted segment.
    pub fn attribute(&mut self, name: &str, value: &str) -> io::Result<()> {
        let mut p = Vec::with_capacity(name.len() + value.len() + 2);
        put_str16(&mut p, name);
        p.extend_from_slice(value.as_bytes());
        self.record(RecordType::Client, &p);
        self.flush_buf()
    }

    /// Writes the End record and returns the output (not flushed to disk).
    pub fn finish(mut self) -> io::Result<W> {
        let mut p = Vec::with_capacity(16);
        p.extend_from_slice(&self.records.to_be_bytes());
        p.extend_from_slice(&self.recipients.to_be_bytes());
        p.extend_from_slice(&self.content_len.to_be_bytes());
        self.record(RecordType::End, &p);
        self.flush_buf()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn recipient(&mut self, r: &Recipient) {
        let mut p = Vec::with_capacity(r.address.len() + 8);
        put_str16(&mut p, &r.address);
        put_str16(&mut p, r.orcpt.as_deref().unwrap_or(""));
        p.push(r.notify.0);
        // A trailing field: readers of the first layout stop at NOTIFY (see the reader).
        put_str16(&mut p, &r.original);
        self.record(RecordType::Recipient, &p);
        self.recipients += 1;
    }

    fn record(&mut self, t: RecordType, payload: &[u8]) {
        // Envelope fields are bounded by the SMTP layer far below MAX_PAYLOAD (1 MiB);
        // XXX: a longer one is cut rather than failing the message.
        let payload = &payload[..payload.len().min(crate::record::MAX_PAYLOAD)];
        put_record(&mut self.buf, t, payload);
        self.records += 1;
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Encodes status records, ready to append.
pub fn encode_status(updates: &[StatusUpdate]) -> Vec<u8> {
    let mut out = Vec::new();
    for u in updates {
        let mut p = Vec::with_capacity(32 + u.diagnostic.len());
        p.extend_from_slice(&u.recipient.to_be_bytes());
        p.push(u.status as u8);
        p.extend_from_slice(&u.time.to_be_bytes());
        put_str16(&mut p, &u.dsn);
        p.extend_from_slice(u.diagnostic.as_bytes());
        put_record(&mut out, RecordType::Status, &p);
    }
    out
}

/// A part of the content: `len` bytes at `offset` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub len: u32,
}

/// Bytes after the last good status record that do not make a record: a status append
/// torn by a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where the good part of the file ends.
    pub valid_len: u64,
    /// Why the rest is not a record (incomplete, or which check failed).
    pub incomplete: bool,
}

/// A complete queue file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFile {
    pub envelope: Envelope,
    /// Content size in bytes (the size `mailq` shows is computed from this).
    pub content_len: u64,
    pub segments: Vec<Segment>,
    /// The offset just past the End record: status records start here.
    pub end_offset: u64,
    /// The offset past the last good status record.
    pub valid_len: u64,
    pub torn_tail: Option<TornTail>,
}

impl QueueFile {
    /// Reads and checks a whole queue file; see [`ReadError`] for how a bad one is
    /// classified.
    pub fn read(input: impl Read) -> Result<Self, ReadError> {
        Parser::default().run(input)
    }

    /// Reads the file at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Self::read(BufReader::with_capacity(128 * 1024, f)).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })
    }

    /// Copies the content out of `src` (the file this was read from) into `dst`.
    pub fn copy_content(
        &self,
        src: &mut (impl Read + Seek),
        dst: &mut impl Write,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; CONTENT_CHUNK];
        for s in &self.segments {
            src.seek(SeekFrom::Start(s.offset))?;
            // Our writer makes records of at most CONTENT_CHUNK bytes, but a damaged or
            // hostile file may hold any up to MAX_PAYLOAD: copy in pieces.
            let mut left = s.len as usize;
            while left > 0 {
                let chunk = &mut buf[..left.min(CONTENT_CHUNK)];
                src.read_exact(chunk)?;
                dst.write_all(chunk)?;
                left -= chunk.len();
            }
        }
        Ok(())
    }

    /// Recipients that still need delivery.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &Recipient)> {
        self.envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.status().is_final())
    }
}

/// Appends status records to a committed queue file.
pub struct StatusLog {
    file: File,
    recipients: u32,
}

impl StatusLog {
    /// Opens a queue file for status appends, first cutting off a torn status tail (so
    /// that new records are not hidden behind it). Returns the file as read and the tail
    /// that was cut, for the caller to log.
    pub fn open(path: &Path) -> Result<(Self, QueueFile, Option<TornTail>), Error> {
        // One open serves the read and the appends (the appends go to the end: see
        // append_unsynced).
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        let qf =
            QueueFile::read(BufReader::with_capacity(128 * 1024, &file)).map_err(|source| {
                Error::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let torn = qf.torn_tail;
        if torn.is_some() {
            file.set_len(qf.valid_len)
                .map_err(|e| Error::io("truncate", path, e))?;
            file.sync_data().map_err(|e| Error::io("fsync", path, e))?;
        }
        let recipients = u32::try_from(qf.envelope.recipients.len()).unwrap_or(u32::MAX);
        Ok((Self { file, recipients }, qf, torn))
    }

    /// Appends `updates` durably: one write, one fdatasync.
    pub fn append(&mut self, updates: &[StatusUpdate]) -> io::Result<()> {
        self.append_unsynced(updates)?;
        self.file.sync_data()
    }

    /// Appends `updates` with one write and no sync: they survive a crash of the
    /// process (the kernel has them), not necessarily one of the system. For results
    /// whose loss costs at most a repeated delivery: Postfix marks a recipient done with
    /// a plain write too (deliver_completed), and an unsynced record is never the only
    /// copy of a message.
    pub fn append_unsynced(&mut self, updates: &[StatusUpdate]) -> io::Result<()> {
        if let Some(u) = updates.iter().find(|u| u.recipient >= self.recipients) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "no recipient {} (the message has {})",
                    u.recipient, self.recipients
                ),
            ));
        }
        self.file.seek(SeekFrom::End(0))?;
        self.file.write_all(&encode_status(updates))
    }
}

/// Where the parser is in the file.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum Stage {
    #[default]
    Envelope,
    Content,
    Ended,
}

#[derive(Default)]
struct Parser {
    env: Envelope,
    stage: Stage,
    have_arrival: bool,
    have_sender: bool,
    records: u32,
    content_len: u64,
    segments: Vec<Segment>,
}

impl Parser {
    fn run(mut self, input: impl Read) -> Result<QueueFile, ReadError> {
        let mut r = RecordReader::new(input)?;
        let mut buf = Vec::new();
        let mut end_offset = 0;
        loop {
            let next = r.next(&mut buf);
            if self.stage == Stage::Ended {
                // After End: status records until the end or a torn tail.
                let valid_len = r.offset();
                let torn = match next {
                    Ok(None) => None,
                    Ok(Some(h)) if h.kind == RecordType::Status => {
                        match self.status(h.offset, &buf) {
                            Ok(()) => continue,
                            Err(_) => Some(TornTail {
                                valid_len: h.offset,
                                incomplete: false,
                            }),
                        }
                    }
                    Ok(Some(h)) => Some(TornTail {
                        valid_len: h.offset,
                        incomplete: false,
                    }),
                    Err(ReadError::Incomplete { .. }) => Some(TornTail {
                        valid_len,
                        incomplete: true,
                    }),
                    Err(ReadError::Corrupt { .. }) => Some(TornTail {
                        valid_len,
                        incomplete: false,
                    }),
                    Err(e @ ReadError::Io(_)) => return Err(e),
                };
                let valid_len = torn.map_or(r.offset(), |t| t.valid_len);
                return Ok(QueueFile {
                    envelope: self.env,
                    content_len: self.content_len,
                    segments: self.segments,
                    end_offset,
                    valid_len,
                    torn_tail: torn,
                });
            }
            let Some(h) = next? else {
                return Err(ReadError::Incomplete { len: r.offset() });
            };
            self.record(h.kind, h.offset, &buf)?;
            if self.stage == Stage::Ended {
                end_offset = r.offset();
            }
        }
    }

    fn record(&mut self, kind: RecordType, at: u64, p: &[u8]) -> Result<(), ReadError> {
        let bad = |what: &str| ReadError::corrupt(at, format!("malformed {what} record"));
        let mut f = Fields(p);
        // Named attributes may follow the content too: the actions that smtpd's access
        // restrictions decide at the end of the message (ATTR_FILTER, ATTR_REDIRECT).
        let envelope_only = !matches!(
            kind,
            RecordType::Content
                | RecordType::End
                | RecordType::Recipient
                | RecordType::Status
                | RecordType::Client
        );
        if envelope_only && self.stage != Stage::Envelope {
            return Err(ReadError::corrupt(
                at,
                format!("{kind:?} record after the content"),
            ));
        }
        match kind {
            RecordType::Arrival => {
                let (sec, usec) = (f.u64().ok_or_else(|| bad("arrival"))?, f.u32());
                let usec = usec
                    .filter(|u| *u < 1_000_000)
                    .ok_or_else(|| bad("arrival"))?;
                if self.have_arrival || !f.is_empty() {
                    return Err(bad("arrival"));
                }
                self.have_arrival = true;
                self.env.arrival = Timestamp { sec, usec };
            }
            RecordType::Sender => {
                if self.have_sender {
                    return Err(ReadError::corrupt(at, "second sender record"));
                }
                self.have_sender = true;
                f.rest_str()
                    .ok_or_else(|| bad("sender"))?
                    .clone_into(&mut self.env.sender);
            }
            RecordType::Recipient => {
                let address = f.str16().ok_or_else(|| bad("recipient"))?.to_owned();
                let orcpt = f.str16().ok_or_else(|| bad("recipient"))?;
                let notify = f.u8().ok_or_else(|| bad("recipient"))?;
                // The original recipient came later: a record without it has none.
                let original = if f.is_empty() {
                    String::new()
                } else {
                    f.str16()
                        .filter(|_| f.is_empty())
                        .ok_or_else(|| bad("recipient"))?
                        .to_owned()
                };
                let orcpt = (!orcpt.is_empty()).then(|| orcpt.to_owned());
                self.env.recipients.push(Recipient {
                    address,
                    orcpt,
                    notify: Notify(notify),
                    original,
                    last: None,
                });
            }
            RecordType::Client => {
                let name = f.str16().ok_or_else(|| bad("client"))?.to_owned();
                let value = f.rest_str().ok_or_else(|| bad("client"))?.to_owned();
                self.env.client.push((name, value));
            }
            RecordType::DsnEnvid => {
                self.env.dsn_envid = Some(f.rest_str().ok_or_else(|| bad("envid"))?.to_owned());
            }
            RecordType::DsnRet => {
                self.env.dsn_ret = Some(match p {
                    [1] => DsnRet::Full,
                    [2] => DsnRet::Hdrs,
                    _ => return Err(bad("DSN RET")),
                });
            }
            RecordType::Flags => {
                let v = f
                    .u32()
                    .filter(|_| f.is_empty())
                    .ok_or_else(|| bad("flags"))?;
                self.env.flags = MessageFlags(v);
            }
            RecordType::Content => {
                if !(self.have_arrival && self.have_sender) {
                    return Err(ReadError::corrupt(at, "content before arrival and sender"));
                }
                if self.stage == Stage::Envelope {
                    self.stage = Stage::Content;
                }
                // Payloads are at most MAX_PAYLOAD (1 MiB), so the length fits u32.
                let len = u32::try_from(p.len()).unwrap_or(u32::MAX);
                self.segments.push(Segment {
                    offset: at + 5,
                    len,
                });
                self.content_len += u64::from(len);
            }
            RecordType::End => {
                let (records, rcpts, size) = (f.u32(), f.u32(), f.u64());
                let (Some(records), Some(rcpts), Some(size)) = (records, rcpts, size) else {
                    return Err(bad("end"));
                };
                let ok = f.is_empty()
                    && records == self.records
                    && rcpts as usize == self.env.recipients.len()
                    && size == self.content_len
                    && self.have_arrival
                    && self.have_sender;
                if !ok {
                    return Err(ReadError::corrupt(at, "end record does not match the file"));
                }
                self.stage = Stage::Ended;
            }
            RecordType::Status => {
                return Err(ReadError::corrupt(
                    at,
                    "status record before the end record",
                ));
            }
        }
        self.records += 1;
        Ok(())
    }

    fn status(&mut self, at: u64, p: &[u8]) -> Result<(), ReadError> {
        let bad = || ReadError::corrupt(at, "malformed status record");
        let mut f = Fields(p);
        let recipient = f.u32().ok_or_else(bad)?;
        let status = f.u8().and_then(DeliveryStatus::from_byte).ok_or_else(bad)?;
        let time = f.u64().ok_or_else(bad)?;
        let dsn = f.str16().ok_or_else(bad)?.to_owned();
        let diagnostic = f.rest_str().ok_or_else(bad)?.to_owned();
        let r = self
            .env
            .recipients
            .get_mut(recipient as usize)
            .ok_or_else(bad)?;
        r.last = Some(StatusUpdate {
            recipient,
            status,
            time,
            dsn,
            diagnostic,
        });
        Ok(())
    }
}

/// The file offset of the first record (after the header).
pub const FIRST_RECORD: u64 = HEADER_LEN as u64;
/// Framing bytes around each record's payload.
pub const RECORD_OVERHEAD: u64 = FRAMING as u64;

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
