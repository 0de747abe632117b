//! The framing of Tern's queue files: the file header, the record types, and a record
//! reader that classifies every byte string as complete records, an incomplete tail, or
//! corruption. docs/queue-format.md describes the format for people; this module is its
//! single source of truth for code.
//!
//! A file is the 12-byte header (`MAGIC`, version, reserved) followed by records:
//!
//! ```text
//! type: u8 | length: u32 BE | payload: length bytes | crc32(type|length|payload): u32 BE
//! ```
//!
//! Security: the reader takes bytes from disk that may be truncated, torn by a crash, or
//! garbage. It never panics, never allocates more than [`MAX_PAYLOAD`] for one record
//! whatever a length field says, and reports the offset of the first bad byte.

use std::io::{self, Read};

use thiserror::Error;

/// The first eight bytes of every queue file. The `\r\n` and `\x1a` catch text-mode
/// mangling; the high-bit first byte keeps the file from passing for text.
pub const MAGIC: [u8; 8] = *b"\x89TQF\r\n\x1a\n";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Header length: magic, version (u16 BE), reserved (u16, zero).
pub const HEADER_LEN: usize = 12;
/// The largest payload of one record; content is cut into records of at most
/// [`CONTENT_CHUNK`].
pub const MAX_PAYLOAD: usize = 1 << 20;
/// The size of the content records the writer makes.
pub const CONTENT_CHUNK: usize = 64 * 1024;
/// Bytes of framing around a payload: type, length, crc.
pub const FRAMING: usize = 9;

/// The record types: one table for the writer, the reader and the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// Arrival time: seconds (u64), microseconds (u32).
    Arrival = b'A',
    /// Envelope sender: UTF-8, empty for the null sender `<>`.
    Sender = b'S',
    /// Recipient: address (str16), ORCPT (str16, empty if none), NOTIFY bits (u8).
    Recipient = b'R',
    /// A client attribute: name (str16), value (the rest).
    Client = b'C',
    /// DSN ENVID (RFC 3461 4.4), xtext-decoded.
    DsnEnvid = b'E',
    /// DSN RET (RFC 3461 4.3): 1 FULL, 2 HDRS.
    DsnRet = b'T',
    /// Message flags (u32).
    Flags = b'F',
    /// A piece of the message content, in order.
    Content = b'M',
    /// End of the message: record count (u32), recipient count (u32), content size (u64).
    End = b'X',
    /// A delivery status, appended after End: recipient index (u32), status (u8), time
    /// (u64 seconds), DSN status (str16), diagnostic (the rest).
    Status = b'D',
}

impl RecordType {
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'A' => Self::Arrival,
            b'S' => Self::Sender,
            b'R' => Self::Recipient,
            b'C' => Self::Client,
            b'E' => Self::DsnEnvid,
            b'T' => Self::DsnRet,
            b'F' => Self::Flags,
            b'M' => Self::Content,
            b'X' => Self::End,
            b'D' => Self::Status,
            _ => return None,
        })
    }
}

/// Why bytes are not a complete queue file.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The bytes end before the End record: a file written in part (by a writer that
    /// died, or cut short). Never a message with some recipients missing.
    #[error("incomplete queue file: ends at byte {len} before the end record")]
    Incomplete { len: u64 },
    /// The bytes are there but wrong.
    #[error("corrupt queue file at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

impl ReadError {
    pub(crate) fn corrupt(offset: u64, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            offset,
            reason: reason.into(),
        }
    }
}

/// The header of a new file.
pub fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_be_bytes());
    h
}

/// Appends one framed record to `out`. Panics if `payload` is longer than
/// [`MAX_PAYLOAD`]: callers cut content into chunks and envelope fields are bounded by
/// the writer.
pub fn put_record(out: &mut Vec<u8>, t: RecordType, payload: &[u8]) {
    assert!(
        payload.len() <= MAX_PAYLOAD,
        "record payload over MAX_PAYLOAD"
    );
    let start = out.len();
    out.push(t as u8);
    // The assert above keeps the length within u32.
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Reads records one at a time from a queue file.
pub struct RecordReader<R> {
    inner: R,
    offset: u64,
}

/// One record read: its type, the offset of its first byte, the payload in the caller's
/// buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    pub kind: RecordType,
    pub offset: u64,
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<Self, ReadError> {
        let mut h = [0u8; HEADER_LEN];
        let n = read_full(&mut inner, &mut h)?;
        // A short header whose bytes agree with the magic is a file cut short; anything
        // else is not ours.
        let agree = h[..n.min(8)] == MAGIC[..n.min(8)];
        if !agree {
            return Err(ReadError::corrupt(0, "not a Tern queue file (bad magic)"));
        }
        if n < HEADER_LEN {
            return Err(ReadError::Incomplete { len: n as u64 });
        }
        let version = u16::from_be_bytes([h[8], h[9]]);
        if version != VERSION {
            return Err(ReadError::corrupt(
                8,
                format!("unsupported format version {version}"),
            ));
        }
        Ok(Self {
            inner,
            offset: HEADER_LEN as u64,
        })
    }

    /// The offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record, its payload in `buf`; `None` at end of input on a record
    /// boundary.
    pub fn next(&mut self, buf: &mut Vec<u8>) -> Result<Option<RecordHead>, ReadError> {
        let start = self.offset;
        let mut head = [0u8; 5];
        let n = read_full(&mut self.inner, &mut head)?;
        if n == 0 {
            return Ok(None);
        }
        if n < head.len() {
            return Err(ReadError::Incomplete {
                len: start + n as u64,
            });
        }
        let Some(kind) = RecordType::from_byte(head[0]) else {
            return Err(ReadError::corrupt(
                start,
                format!("unknown record type {:#04x}", head[0]),
            ));
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(ReadError::corrupt(
                start,
                format!("record length {len} too large"),
            ));
        }
        buf.clear();
        buf.resize(len, 0);
        let n = read_full(&mut self.inner, buf)?;
        if n < len {
            return Err(ReadError::Incomplete {
                len: start + 5 + n as u64,
            });
        }
        let mut crc_bytes = [0u8; 4];
        let n = read_full(&mut self.inner, &mut crc_bytes)?;
        if n < 4 {
            return Err(ReadError::Incomplete {
                len: start + 5 + len as u64 + n as u64,
            });
        }
        let want = u32::from_be_bytes(crc_bytes);
        let got = crc32_update(crc32_update(!0, &head), buf) ^ !0;
        if want != got {
            return Err(ReadError::corrupt(start, "record checksum mismatch"));
        }
        self.offset = start + (FRAMING + len) as u64;
        Ok(Some(RecordHead {
            kind,
            offset: start,
        }))
    }
}

/// Reads until `buf` is full or end of input; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A cursor over a payload's fields; every getter returns `None` past the end.
pub struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }
    /// A string with a u16 length prefix.
    pub fn str16(&mut self) -> Option<&'a str> {
        let n = usize::from(self.u16()?);
        std::str::from_utf8(self.bytes(n)?).ok()
    }
    /// The rest, as a string.
    pub fn rest_str(&mut self) -> Option<&'a str> {
        let s = std::str::from_utf8(self.0).ok()?;
        self.0 = &[];
        Some(s)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends a string with a u16 length prefix; strings are cut at 65,535 bytes (callers
/// bound addresses far below that: RFC 5321 4.5.3.1.3 allows 256 octets for a path).
pub fn put_str16(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    // `end` is at most u16::MAX.
    out.extend_from_slice(&u16::try_from(end).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// CRC-32 (IEEE 802.3, the polynomial of zlib and PNG).
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(!0, data) ^ !0
}

/// Slicing-by-8 (Intel's method): eight bytes per step through eight tables, four times
/// the speed of the byte-wise loop; every queue file record and journal record is summed.
pub(crate) fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// `CRC_TABLES[0]` is the byte-wise table; `[k][i]` is `[k-1][i]` advanced by one zero
/// byte.
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)] // i < 256
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_value() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // Every length and alignment against the plain byte-wise definition.
        let bytewise = |data: &[u8]| {
            let mut crc = !0u32;
            for &b in data {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        0xEDB8_8320 ^ (crc >> 1)
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        };
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(
                    crc32(&data[start..end]),
                    bytewise(&data[start..end]),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn records_round_trip_and_classify() {
        let mut f = header().to_vec();
        put_record(&mut f, RecordType::Sender, b"a@b");
        put_record(&mut f, RecordType::Flags, &7u32.to_be_bytes());
        let mut r = RecordReader::new(&f[..]).unwrap();
        let mut buf = Vec::new();
        let h = r.next(&mut buf).unwrap().unwrap();
        assert_eq!(
            (h.kind, h.offset, &buf[..]),
            (RecordType::Sender, 12, &b"a@b"[..])
        );
        assert_eq!(r.next(&mut buf).unwrap().unwrap().kind, RecordType::Flags);
        assert!(r.next(&mut buf).unwrap().is_none());

        let table: &[(&[u8], &str)] = &[
            (b"", "incomplete"),
            (b"\x89TQ", "incomplete"),
            (b"GARBAGE!", "corrupt"),
            (b"\x89TQF\r\n\x1a\n\x00\x02\x00\x00", "corrupt"),
        ];
        for (bytes, want) in table {
            let got = match RecordReader::new(*bytes) {
                Err(ReadError::Incomplete { .. }) => "incomplete",
                Err(ReadError::Corrupt { .. }) => "corrupt",
                _ => "other",
            };
            assert_eq!(got, *want, "{bytes:?}");
        }
        // A flipped payload bit is corruption, not truncation.
        let mut bad = f.clone();
        bad[HEADER_LEN + 6] ^= 1;
        let mut r = RecordReader::new(&bad[..]).unwrap();
        assert!(matches!(
            r.next(&mut buf),
            Err(ReadError::Corrupt { offset: 12, .. })
        ));
    }
}
