//! Tern's queue files (docs/queue-format.md) as Postfix's postcat shows Postfix's: the
//! envelope in Postfix's record names and order, the content line by line, the
//! extracted segment and the end marker.
//!
//! Tern's file holds less than Postfix's, and some of it differently (the postcat row
//! of docs/compat.md):
//! - `message_size` is made from the End record: content size, the offset of the first
//!   content record, the recipient count, the DSN bits (qmgr flags) and SMTPUTF8;
//! - `create_time` is the arrival time (Tern writes one time);
//! - `log_ident` is the file's name when it is a queue id (Tern's id is the name);
//! - the `log_*` attributes are the client's own (Tern has no XCLIENT or XFORWARD, so
//!   Postfix's log and client attributes are always equal), and `log_message_origin`
//!   and `client_address_type` are made from them;
//! - no `rewrite_context`, `reverse_client_name`, `server_address`, `server_port`,
//!   `sender_fullname`: Tern does not keep them;
//! - a recipient whose last status is final (sent, bounced) is a `done_recipient`, as
//!   Postfix's queue manager marks it; other status records are not shown;
//! - offsets are those of Tern's records; a text line's offset is where the line starts.
//!
//! Security: a file named on the command line may be anything. The record reader
//! bounds every record ([`tern_queue::record`]); a line longer than [`MAX_LINE`] is cut
//! into pieces as Postfix's records cut long lines; a bad record ends the output with
//! Postfix's `record read error`.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use tern_queue::record::{Fields, ReadError, RecordReader, RecordType};
use tern_queue::{MessageFlags, QueueFile};

use super::printer::{Flow, Marker, Printer, Rec, code, local_asctime};

/// The longest content line shown as one line; longer ones go out in pieces (Postfix's
/// REC_TYPE_CONT records, of `line_length_limit` bytes there).
pub const MAX_LINE: usize = 64 * 1024;

/// Why a file could not be shown to the end.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// Writing the output failed.
    #[error("write error: {0}")]
    Write(#[from] io::Error),
    /// A record is bad: the warning to print before Postfix's `record read error`.
    #[error("{0}")]
    Record(String),
}

/// The envelope records before the first recipient, kept to print them in Postfix's
/// order.
#[derive(Default)]
struct Head {
    arrival: Option<(u64, u64)>,
    sender: Option<(u64, String)>,
    client: Vec<(u64, String, String)>,
    envid: Option<(u64, String)>,
    ret: Option<(u64, u8)>,
    flags: Option<(u64, u32)>,
}

/// The client attributes in the order Postfix's smtpd sends them to cleanup, and the
/// stored attribute each is made from when Tern does not keep it.
const CLIENT_ORDER: [(&str, Option<&str>); 15] = [
    ("log_client_name", Some("client_name")),
    ("log_client_address", Some("client_address")),
    ("log_client_port", Some("client_port")),
    ("log_message_origin", None),
    ("log_helo_name", Some("helo_name")),
    ("log_protocol_name", Some("protocol_name")),
    ("client_name", None),
    ("reverse_client_name", None),
    ("client_address", None),
    ("client_port", None),
    ("server_address", None),
    ("server_port", None),
    ("helo_name", None),
    ("protocol_name", None),
    ("client_address_type", None),
];

/// Shows the queue file `input`. `id`: its queue id, when its name is one.
pub fn show<F: Read + Seek>(
    input: &mut F,
    id: Option<&str>,
    p: &mut Printer<'_>,
) -> Result<(), ShowError> {
    // First pass: the whole file, for the End record's counts and the recipients' last
    // status (status records follow End). A file that does not read whole is still
    // shown as far as it goes, as Postfix's postcat does.
    let whole = QueueFile::read(BufReader::with_capacity(128 * 1024, &mut *input)).ok();
    input.seek(SeekFrom::Start(0))?;
    let mut reader = RecordReader::new(BufReader::with_capacity(128 * 1024, input))
        .map_err(|e| ShowError::Record(e.to_string()))?;
    let mut buf = Vec::new();
    let mut head = Head::default();
    let mut head_done = false;
    let mut recipients = 0usize;
    let mut line = Line::default();
    let mut content_seen = false;
    let mut extracted_marked = false;
    let eight_bit = |h: &Head| {
        h.flags
            .is_some_and(|(_, f)| f & MessageFlags::BODY_8BITMIME != 0)
    };
    loop {
        let rec = match reader.next(&mut buf) {
            Ok(Some(rec)) => rec,
            // Ends on a record boundary before End: Postfix's postcat stops there too.
            Ok(None) => return Ok(()),
            Err(ReadError::Io(e)) => return Err(ShowError::Record(format!("read error: {e}"))),
            Err(e) => return Err(ShowError::Record(e.to_string())),
        };
        let offset = rec.offset;
        let is_head = matches!(
            rec.kind,
            RecordType::Arrival
                | RecordType::Sender
                | RecordType::Client
                | RecordType::DsnEnvid
                | RecordType::DsnRet
                | RecordType::Flags
        );
        if is_head && !head_done {
            keep(&mut head, rec.kind, offset, &buf);
            continue;
        }
        if !head_done {
            head_done = true;
            if print_head(&head, whole.as_ref(), id, p)? == Flow::Stop {
                return Ok(());
            }
        }
        let flow = match rec.kind {
            RecordType::Recipient => {
                let done = whole.as_ref().is_some_and(|q| {
                    q.envelope
                        .recipients
                        .get(recipients)
                        .is_some_and(|r| r.status().is_final())
                });
                recipients += 1;
                if content_seen && !extracted_marked {
                    // Recipients after the content: extracted from the header.
                    extracted_marked = true;
                    if line.flush(p)? == Flow::Stop
                        || p.feed(&Rec::Marker {
                            offset,
                            marker: Marker::Extracted,
                        })? == Flow::Stop
                    {
                        return Ok(());
                    }
                }
                recipient(offset, &buf, done, p)?
            }
            RecordType::Content => {
                if !content_seen {
                    content_seen = true;
                    if p.feed(&Rec::Marker {
                        offset,
                        marker: Marker::Contents,
                    })? == Flow::Stop
                    {
                        return Ok(());
                    }
                }
                // The payload starts after the type byte and the length.
                line.push(offset + 5, &buf, p)?
            }
            RecordType::End => {
                if !content_seen
                    && p.feed(&Rec::Marker {
                        offset,
                        marker: Marker::Contents,
                    })? == Flow::Stop
                {
                    return Ok(());
                }
                if !extracted_marked
                    && (line.flush(p)? == Flow::Stop
                        || p.feed(&Rec::Marker {
                            offset,
                            marker: Marker::Extracted,
                        })? == Flow::Stop)
                {
                    return Ok(());
                }
                if eight_bit(&head) {
                    // cleanup repeats the body type in the extracted segment.
                    if p.feed(&field(offset, "encoding=8bit"))? == Flow::Stop {
                        return Ok(());
                    }
                }
                p.feed(&Rec::Marker {
                    offset,
                    marker: Marker::End,
                })?;
                return Ok(());
            }
            // The queue actions cleanup writes after the content (tern_queue::ATTR_FILTER,
            // ATTR_REDIRECT), shown where Postfix's postcat shows its REC_TYPE_FILT and
            // REC_TYPE_RDR: `content_filter:` and `redirect_to:` in the extracted part.
            RecordType::Client => {
                let mut f = Fields(&buf);
                let shown = match (f.str16(), f.rest_str()) {
                    (Some(tern_queue::ATTR_FILTER), Some(v)) => {
                        Some((code::FILT, "content_filter", v))
                    }
                    (Some(tern_queue::ATTR_REDIRECT), Some(v)) => {
                        Some((code::RDR, "redirect_to", v))
                    }
                    _ => None,
                };
                let Some((code, name, value)) = shown else {
                    continue;
                };
                if !extracted_marked {
                    extracted_marked = true;
                    if line.flush(p)? == Flow::Stop
                        || p.feed(&Rec::Marker {
                            offset,
                            marker: Marker::Extracted,
                        })? == Flow::Stop
                    {
                        return Ok(());
                    }
                }
                p.feed(&Rec::Field {
                    offset,
                    code,
                    name,
                    value,
                })?
            }
            // Status records come after End, which stops the output; envelope
            // records after the head are out of order, and the reader refuses them.
            _ => Flow::Continue,
        };
        if flow == Flow::Stop {
            return Ok(());
        }
    }
}

fn keep(head: &mut Head, kind: RecordType, offset: u64, buf: &[u8]) {
    let mut f = Fields(buf);
    match kind {
        RecordType::Arrival => head.arrival = f.u64().map(|s| (offset, s)),
        RecordType::Sender => {
            head.sender = Some((offset, String::from_utf8_lossy(buf).into_owned()));
        }
        RecordType::Client => {
            if let (Some(name), Some(value)) = (f.str16(), f.rest_str()) {
                head.client
                    .push((offset, name.to_owned(), value.to_owned()));
            }
        }
        RecordType::DsnEnvid => {
            head.envid = Some((offset, String::from_utf8_lossy(buf).into_owned()));
        }
        RecordType::DsnRet => head.ret = f.u8().map(|r| (offset, r)),
        RecordType::Flags => head.flags = f.u32().map(|v| (offset, v)),
        _ => {}
    }
}

fn field(offset: u64, value: &str) -> Rec<'_> {
    Rec::Field {
        offset,
        code: code::ATTR,
        name: "named_attribute",
        value,
    }
}

/// The envelope before the recipients, in the order of Postfix's cleanup.
fn print_head(
    head: &Head,
    whole: Option<&QueueFile>,
    id: Option<&str>,
    p: &mut Printer<'_>,
) -> io::Result<Flow> {
    let mut lines: Vec<(u64, u8, &str, String)> = Vec::new();
    let attr = |offset, v: String| (offset, code::ATTR, "named_attribute", v);
    if let Some(q) = whole {
        let env = &q.envelope;
        let data_offset = q.segments.first().map_or(q.end_offset, |s| s.offset);
        let dsn = env
            .recipients
            .iter()
            .fold(0u32, |acc, r| acc | (u32::from(r.notify.0) << 1));
        let utf8 = u32::from(env.flags.0 & MessageFlags::SMTPUTF8 != 0);
        lines.push((
            0,
            code::SIZE,
            "message_size",
            format!(
                "{:15} {data_offset:15} {:15} {dsn:15} {:15} {utf8:15}",
                q.content_len,
                env.recipients.len(),
                q.content_len
            ),
        ));
    }
    if let Some((offset, sec)) = head.arrival {
        let when = local_asctime(sec);
        lines.push((offset, code::TIME, "message_arrival_time", when.clone()));
        lines.push((offset, code::ATTR, "create_time", when));
        if let Some(id) = id {
            lines.push(attr(offset, format!("log_ident={id}")));
        }
    }
    if let Some((offset, envid)) = &head.envid {
        lines.push(attr(*offset, format!("envelope_id={envid}")));
    }
    if let Some((offset, ret)) = head.ret {
        lines.push(attr(offset, format!("ret_flags={ret}")));
    }
    if let Some((offset, sender)) = &head.sender {
        lines.push((*offset, code::FROM, "sender", sender.clone()));
    }
    if let Some((offset, flags)) = head.flags
        && flags & MessageFlags::BODY_8BITMIME != 0
    {
        lines.push(attr(offset, "encoding=8bit".to_owned()));
    }
    let stored = |name: &str| {
        head.client
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(o, _, v)| (*o, v.clone()))
    };
    for (name, from) in CLIENT_ORDER {
        let value = stored(name).or_else(|| match (name, from) {
            (_, Some(from)) => stored(from),
            ("log_message_origin", _) => {
                let (o, n) = stored("client_name")?;
                let (_, a) = stored("client_address")?;
                Some((o, format!("{n}[{a}]")))
            }
            ("client_address_type", _) => {
                let (o, a) = stored("client_address")?;
                // AF_INET and AF_INET6 as Linux numbers them.
                Some((o, if a.contains(':') { "10" } else { "2" }.to_owned()))
            }
            _ => None,
        });
        if let Some((offset, v)) = value {
            lines.push(attr(offset, format!("{name}={v}")));
        }
    }
    for (offset, name, value) in &head.client {
        if !CLIENT_ORDER.iter().any(|(n, _)| n == name) {
            lines.push(attr(*offset, format!("{name}={value}")));
        }
    }
    for (offset, code, name, value) in &lines {
        let rec = Rec::Field {
            offset: *offset,
            code: *code,
            name,
            value,
        };
        if p.feed(&rec)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// One recipient record as cleanup writes it: NOTIFY, ORCPT, the original recipient,
/// the recipient (done or to do).
fn recipient(offset: u64, buf: &[u8], done: bool, p: &mut Printer<'_>) -> io::Result<Flow> {
    let mut f = Fields(buf);
    let address = f.str16().unwrap_or_default();
    let orcpt = f.str16().unwrap_or_default();
    let notify = f.u8().unwrap_or(0);
    let original = f.str16().unwrap_or_default();
    let mut lines: Vec<(u8, &str, String)> = Vec::new();
    if notify != 0 {
        lines.push((
            code::ATTR,
            "named_attribute",
            format!("notify_flags={notify}"),
        ));
    }
    if !orcpt.is_empty() {
        lines.push((
            code::ATTR,
            "named_attribute",
            format!("dsn_orig_rcpt={orcpt}"),
        ));
    }
    if !original.is_empty() {
        lines.push((code::ORCP, "original_recipient", original.to_owned()));
    }
    if done {
        lines.push((code::DONE, "done_recipient", address.to_owned()));
    } else {
        lines.push((code::RCPT, "recipient", address.to_owned()));
    }
    for (code, name, value) in &lines {
        let rec = Rec::Field {
            offset,
            code: *code,
            name,
            value,
        };
        if p.feed(&rec)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// The content cut into lines across records.
#[derive(Default)]
pub struct Line {
    buf: Vec<u8>,
    /// The file offset of the first byte in `buf`.
    start: u64,
}

impl Line {
    /// Takes the content bytes at file offset `offset`; prints each line completed.
    pub fn push(&mut self, offset: u64, mut data: &[u8], p: &mut Printer<'_>) -> io::Result<Flow> {
        let mut at = offset;
        while !data.is_empty() {
            if self.buf.is_empty() {
                self.start = at;
            }
            let (piece, rest, complete) = match data.iter().position(|&b| b == b'\n') {
                Some(n) => (&data[..n], &data[n + 1..], true),
                None => (data, &data[data.len()..], false),
            };
            let room = MAX_LINE - self.buf.len();
            if piece.len() > room {
                // Too long for one line: out goes a piece, continued.
                self.buf.extend_from_slice(&piece[..room]);
                at += room as u64;
                data = &data[room..];
                if self.emit(true, p)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                continue;
            }
            self.buf.extend_from_slice(piece);
            at += (piece.len() + usize::from(complete)) as u64;
            data = rest;
            if complete && self.emit(false, p)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// Prints a last line that had no newline.
    pub fn flush(&mut self, p: &mut Printer<'_>) -> io::Result<Flow> {
        if self.buf.is_empty() {
            return Ok(Flow::Continue);
        }
        self.emit(false, p)
    }

    fn emit(&mut self, more: bool, p: &mut Printer<'_>) -> io::Result<Flow> {
        let flow = p.feed(&Rec::Text {
            offset: self.start,
            line: &self.buf,
            more,
        })?;
        self.buf.clear();
        Ok(flow)
    }
}
