//! The delivery helper's wire format: framed, versioned, length-bounded binary messages
//! between the daemon, the supervisor and the workers (crate::helper).
//!
//! A frame is a 6-byte header, `VERSION` (1 byte), the kind (1 byte) and the payload
//! length (4 bytes, big-endian, at most [`MAX_PAYLOAD`]), then the payload. Inside it:
//! integers big-endian; strings and byte strings as a 4-byte length and the bytes
//! (strings must be UTF-8); an optional value as a 0/1 byte and the value; a list as a
//! 4-byte count and the items. A payload must be used up exactly.
//!
//! ```text
//! daemon -> supervisor   Spawn                     supervisor -> daemon  Spawned(pid) + fd
//!                                                                        SpawnFailed(text)
//! daemon -> worker       Request(DeliveryRequest)  worker -> daemon      Reply(Reply)
//!                        Reload
//! ```
//!
//! # Security
//! Each side reads frames from a less or differently trusted process (a worker runs as
//! root and reads what the mail_owner daemon sends). Every length is checked against what
//! is left before anything is allocated, so a malformed or hostile frame is a
//! [`WireError`], never a panic or an unbounded allocation.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::request::{
    Agent, Delivered, DeliveryRequest, ExpandedOutcome, Forward, Outcome, Reply, RequestRecipient,
};

/// The format's version; a frame of any other is refused.
pub const VERSION: u8 = 1;

/// The largest payload accepted (a request or a reply for thousands of recipients fits).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// The header's size.
pub const HEADER: usize = 6;

/// One message on a helper socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// daemon -> supervisor: start a worker and send me its socket.
    Spawn,
    /// supervisor -> daemon: the worker's pid (its socket travels with this frame).
    Spawned(u32),
    /// supervisor -> daemon: no worker (the reason).
    SpawnFailed(String),
    /// daemon -> worker: deliver.
    Request(DeliveryRequest),
    /// worker -> daemon: what became of a request.
    Reply(Reply),
    /// daemon -> worker: read main.cf and master.cf again before the next request.
    Reload,
}

/// Why a frame does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unsupported helper protocol version {0}")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("frame too large: {0} bytes")]
    TooLarge(usize),
    #[error("truncated frame")]
    Truncated,
    #[error("invalid {0} tag {1}")]
    Tag(&'static str, u8),
    #[error("invalid UTF-8 in a string")]
    Utf8,
    #[error("{0} bytes left over after the frame's payload")]
    Trailing(usize),
}

/// The bytes of `frame`, header included.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut p = Enc(Vec::new());
    let kind = match frame {
        Frame::Spawn => 1,
        Frame::Spawned(pid) => {
            p.u32(*pid);
            2
        }
        Frame::SpawnFailed(text) => {
            p.str(text);
            3
        }
        Frame::Request(r) => {
            p.request(r);
            4
        }
        Frame::Reply(r) => {
            p.reply(r);
            5
        }
        Frame::Reload => 6,
    };
    let mut out = Vec::with_capacity(HEADER + p.0.len());
    out.push(VERSION);
    out.push(kind);
    // A frame larger than 4 GiB cannot be made from a request the queue manager sends.
    out.extend_from_slice(&u32::try_from(p.0.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&p.0);
    out
}

/// Decodes one frame from the start of `buf`: `Ok(None)` when more bytes are needed,
/// else the frame and the number of bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(len) = payload_len(buf)? else {
        return Ok(None);
    };
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let frame = decode_payload(buf[1], &buf[HEADER..HEADER + len])?;
    Ok(Some((frame, HEADER + len)))
}

/// The payload length a header announces (`None`: the header is not complete), checked
/// against the version and [`MAX_PAYLOAD`].
pub fn payload_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    if buf[0] != VERSION {
        return Err(WireError::Version(buf[0]));
    }
    if !(1..=6).contains(&buf[1]) {
        return Err(WireError::Kind(buf[1]));
    }
    let len = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(WireError::TooLarge(len));
    }
    Ok(Some(len))
}

/// Reads one frame from a blocking stream; `Ok(None)` at a clean end of stream (before
/// any byte of a frame).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut header = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = r.read(&mut header[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                WireError::Truncated,
            ));
        }
        got += n;
    }
    let len = payload_len(&header)
        .map_err(invalid)?
        .ok_or_else(|| invalid(WireError::Truncated))?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    decode_payload(header[1], &payload)
        .map(Some)
        .map_err(invalid)
}

/// Writes one frame to a blocking stream.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> io::Result<()> {
    w.write_all(&encode(frame))?;
    w.flush()
}

/// A [`WireError`] as an I/O error (`InvalidData`).
pub fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn decode_payload(kind: u8, payload: &[u8]) -> Result<Frame, WireError> {
    let mut d = Dec(payload);
    let frame = match kind {
        1 => Frame::Spawn,
        2 => Frame::Spawned(d.u32()?),
        3 => Frame::SpawnFailed(d.str()?),
        4 => Frame::Request(d.request()?),
        5 => Frame::Reply(d.reply()?),
        6 => Frame::Reload,
        k => return Err(WireError::Kind(k)),
    };
    if !d.0.is_empty() {
        return Err(WireError::Trailing(d.0.len()));
    }
    Ok(frame)
}

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        for s in v {
            self.str(s);
        }
    }
    fn request(&mut self, r: &DeliveryRequest) {
        self.u8(match r.agent {
            Agent::Local => 0,
            Agent::Virtual => 1,
            Agent::Pipe => 2,
        });
        self.str(&r.transport);
        self.str(&r.nexthop);
        self.str(&r.queue_id);
        self.bytes(r.queue_file.as_os_str().as_bytes());
        self.str(&r.sender);
        self.u64(r.arrival);
        self.opt_str(r.envid.as_deref());
        self.len(r.recipients.len());
        for rc in &r.recipients {
            self.u32(rc.index);
            self.str(&rc.address);
            self.str(&rc.orig_rcpt);
            self.opt_str(rc.dsn_orcpt.as_deref());
            self.u8(rc.notify);
        }
        self.u8(u8::from(r.verify));
    }
    fn delivered(&mut self, d: &Delivered) {
        match d {
            Delivered::Sent { dsn, text } => self.dsn_text(0, dsn, text),
            Delivered::Deferred { dsn, text } => self.dsn_text(1, dsn, text),
            Delivered::Bounced { dsn, text } => self.dsn_text(2, dsn, text),
            Delivered::Forward(f) => {
                self.u8(3);
                self.str(&f.sender);
                self.strs(&f.recipients);
                self.strs(&f.prepend);
            }
            Delivered::Pass { transport, nexthop } => {
                self.u8(4);
                self.str(transport);
                self.str(nexthop);
            }
        }
    }
    fn dsn_text(&mut self, tag: u8, dsn: &str, text: &str) {
        self.u8(tag);
        self.str(dsn);
        self.str(text);
    }
    fn reply(&mut self, r: &Reply) {
        self.u32(r.pid);
        self.len(r.outcomes.len());
        for o in &r.outcomes {
            self.u32(o.index);
            self.delivered(&o.result);
            self.str(&o.relay);
            self.len(o.expanded.len());
            for e in &o.expanded {
                self.str(&e.address);
                self.str(&e.orig_to);
                self.delivered(&e.result);
                match e.pid {
                    None => self.u8(0),
                    Some(p) => {
                        self.u8(1);
                        self.u32(p);
                    }
                }
                match &e.notify {
                    None => self.u8(0),
                    Some(n) => {
                        self.u8(1);
                        self.str(n);
                    }
                }
            }
        }
        self.strs(&r.warnings);
    }
}

struct Dec<'a>(&'a [u8]);

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?).map_err(|_| WireError::Utf8)
    }
    fn opt_str(&mut self) -> Result<Option<String>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            t => Err(WireError::Tag("option", t)),
        }
    }
    /// A list count, checked against what is left (each item takes at least `min` bytes)
    /// so that a hostile count cannot make a huge allocation.
    fn count(&mut self, min: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.0.len() {
            return Err(WireError::Truncated);
        }
        Ok(n)
    }
    fn strs(&mut self) -> Result<Vec<String>, WireError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.str()).collect()
    }
    fn request(&mut self) -> Result<DeliveryRequest, WireError> {
        let agent = match self.u8()? {
            0 => Agent::Local,
            1 => Agent::Virtual,
            2 => Agent::Pipe,
            t => return Err(WireError::Tag("agent", t)),
        };
        let transport = self.str()?;
        let nexthop = self.str()?;
        let queue_id = self.str()?;
        let queue_file = PathBuf::from(OsString::from_vec(self.bytes()?));
        let sender = self.str()?;
        let arrival = self.u64()?;
        let envid = self.opt_str()?;
        let n = self.count(14)?;
        let mut recipients = Vec::with_capacity(n);
        for _ in 0..n {
            recipients.push(RequestRecipient {
                index: self.u32()?,
                address: self.str()?,
                orig_rcpt: self.str()?,
                dsn_orcpt: self.opt_str()?,
                notify: self.u8()?,
            });
        }
        let verify = match self.u8()? {
            0 => false,
            1 => true,
            t => return Err(WireError::Tag("verify", t)),
        };
        Ok(DeliveryRequest {
            agent,
            transport,
            nexthop,
            queue_id,
            queue_file,
            sender,
            arrival,
            envid,
            recipients,
            verify,
        })
    }
    fn delivered(&mut self) -> Result<Delivered, WireError> {
        let tag = self.u8()?;
        Ok(match tag {
            0..=2 => {
                let dsn = self.str()?;
                let text = self.str()?;
                match tag {
                    0 => Delivered::Sent { dsn, text },
                    1 => Delivered::Deferred { dsn, text },
                    _ => Delivered::Bounced { dsn, text },
                }
            }
            3 => Delivered::Forward(Forward {
                sender: self.str()?,
                recipients: self.strs()?,
                prepend: self.strs()?,
            }),
            4 => Delivered::Pass {
                transport: self.str()?,
                nexthop: self.str()?,
            },
            t => return Err(WireError::Tag("result", t)),
        })
    }
    fn reply(&mut self) -> Result<Reply, WireError> {
        let pid = self.u32()?;
        let n = self.count(13)?;
        let mut outcomes = Vec::with_capacity(n);
        for _ in 0..n {
            let index = self.u32()?;
            let result = self.delivered()?;
            let relay = self.str()?;
            let m = self.count(14)?;
            let mut expanded = Vec::with_capacity(m);
            for _ in 0..m {
                let address = self.str()?;
                let orig_to = self.str()?;
                let result = self.delivered()?;
                let pid = match self.u8()? {
                    0 => None,
                    1 => Some(self.u32()?),
                    t => return Err(WireError::Tag("pid", t)),
                };
                let notify = match self.u8()? {
                    0 => None,
                    1 => Some(self.str()?),
                    t => return Err(WireError::Tag("notify", t)),
                };
                expanded.push(ExpandedOutcome {
                    address,
                    orig_to,
                    result,
                    pid,
                    notify,
                });
            }
            outcomes.push(Outcome {
                index,
                result,
                relay,
                expanded,
            });
        }
        let warnings = self.strs()?;
        Ok(Reply {
            pid,
            outcomes,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> DeliveryRequest {
        DeliveryRequest {
            agent: Agent::Virtual,
            transport: "virtual".into(),
            nexthop: "v.example".into(),
            queue_id: "4ABCD123".into(),
            queue_file: PathBuf::from("/var/spool/postfix/active/4ABCD123"),
            sender: String::new(),
            arrival: 1_700_000_000,
            envid: Some("e1".into()),
            recipients: vec![
                RequestRecipient {
                    index: 0,
                    address: "a@v.example".into(),
                    orig_rcpt: String::new(),
                    dsn_orcpt: Some("rfc822;a@v.example".into()),
                    notify: 3,
                },
                RequestRecipient {
                    index: 7,
                    address: "b@v.example".into(),
                    orig_rcpt: "B@V.example".into(),
                    dsn_orcpt: None,
                    notify: 0,
                },
            ],
            verify: true,
        }
    }

    fn reply() -> Reply {
        Reply {
            pid: 4242,
            outcomes: vec![
                Outcome {
                    index: 0,
                    result: Delivered::Sent {
                        dsn: "2.0.0".into(),
                        text: "delivered to mailbox".into(),
                    },
                    relay: "local".into(),
                    expanded: vec![ExpandedOutcome {
                        address: "u@x".into(),
                        orig_to: "root@x".into(),
                        result: Delivered::Forward(Forward {
                            sender: "owner-l@x".into(),
                            recipients: vec!["far@y".into()],
                            prepend: vec!["Delivered-To: l@x".into()],
                        }),
                        pid: Some(4242),
                        notify: Some("owner-l@x".into()),
                    }],
                },
                Outcome {
                    index: 2,
                    result: Delivered::Pass {
                        transport: "dovecot".into(),
                        nexthop: "x".into(),
                    },
                    relay: "local".into(),
                    expanded: Vec::new(),
                },
                Outcome {
                    index: 1,
                    result: Delivered::Bounced {
                        dsn: "5.1.1".into(),
                        text: "unknown user: \"z\"".into(),
                    },
                    relay: "local".into(),
                    expanded: Vec::new(),
                },
            ],
            warnings: vec!["w1".into()],
        }
    }

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Spawn,
            Frame::Spawned(17),
            Frame::SpawnFailed("no".into()),
            Frame::Request(request()),
            Frame::Reply(reply()),
            Frame::Reply(Reply::default()),
            Frame::Reload,
        ]
    }

    #[test]
    fn round_trip() {
        for f in frames() {
            let bytes = encode(&f);
            assert_eq!(decode(&bytes).unwrap(), Some((f.clone(), bytes.len())));
            assert_eq!(
                read_frame(&mut bytes.as_slice()).unwrap(),
                Some(f.clone()),
                "{f:?}"
            );
        }
    }

    #[test]
    fn every_truncation_needs_more_or_fails() {
        for f in frames() {
            let bytes = encode(&f);
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "{f:?} cut at {cut}");
                let r = read_frame(&mut &bytes[..cut]);
                if cut == 0 {
                    assert!(matches!(r, Ok(None)));
                } else {
                    assert!(r.is_err(), "{f:?} cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn malformed_frames() {
        let good = encode(&Frame::Request(request()));
        let mut short_payload = good.clone();
        // The header claims 3 bytes fewer: the payload is cut inside a field.
        let len = u32::try_from(good.len() - HEADER - 3).unwrap();
        short_payload[2..6].copy_from_slice(&len.to_be_bytes());
        short_payload.truncate(good.len() - 3);
        let mut trailing = encode(&Frame::Spawned(1));
        trailing[5] += 1;
        trailing.push(0);
        let mut bad_utf8 = encode(&Frame::SpawnFailed("ab".into()));
        let n = bad_utf8.len();
        bad_utf8[n - 1] = 0xff;
        let mut bad_agent = good.clone();
        bad_agent[HEADER] = 9;
        let mut huge_count = encode(&Frame::Reply(Reply::default()));
        // pid, then the outcome count: claim four billion outcomes in a tiny frame.
        huge_count[HEADER + 4..HEADER + 8].copy_from_slice(&u32::MAX.to_be_bytes());
        let table: Vec<(Vec<u8>, WireError)> = vec![
            (vec![2, 1, 0, 0, 0, 0], WireError::Version(2)),
            (vec![1, 0, 0, 0, 0, 0], WireError::Kind(0)),
            (vec![1, 99, 0, 0, 0, 0], WireError::Kind(99)),
            (
                vec![1, 4, 0xff, 0xff, 0xff, 0xff],
                WireError::TooLarge(0xffff_ffff),
            ),
            (short_payload, WireError::Truncated),
            (trailing, WireError::Trailing(1)),
            (bad_utf8, WireError::Utf8),
            (bad_agent, WireError::Tag("agent", 9)),
            (huge_count, WireError::Truncated),
            (vec![1, 2, 0, 0, 0, 0], WireError::Truncated),
        ];
        for (bytes, want) in table {
            assert_eq!(decode(&bytes), Err(want.clone()), "{bytes:?}");
            let err = read_frame(&mut bytes.as_slice()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{want:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A fixed pseudo-random sequence: headers that pass, payloads of noise.
        let mut x: u32 = 0x1234_5678;
        for round in 0u32..2000 {
            let kind = u8::try_from(round % 6 + 1).unwrap();
            let mut bytes = vec![VERSION, kind];
            let len = round % 64;
            bytes.extend_from_slice(&len.to_be_bytes());
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes.push(x.to_be_bytes()[3]);
            }
            let _ = decode(&bytes);
            let _ = read_frame(&mut bytes.as_slice());
        }
    }
}
