//! Queue targets (crates/queue): Tern's queue file (docs/queue-format.md), commit-journal
//! segment and maildrop file readers, and (feature `postcat`) postcat's reader of both.
//!
//! Every queue-file record carries a CRC-32, which random mutation almost never gets
//! right; so each input is read twice: as it is (the framing and checksum checks), and
//! with every record's checksum recomputed (the payload parsers behind them).
//!
//! Security: queue files may be damaged by a crash or a disk, and `postcat` reads any
//! file named on its command line: reading must give an error, never a panic.

use std::io::Cursor;

use tern_queue::QueueFile;
use tern_queue::maildrop::Envelope;
use tern_queue::record::{self, FRAMING, HEADER_LEN, RecordReader};

/// `data` with each record's checksum made right, as far as the length fields frame
/// whole records.
pub(crate) fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = HEADER_LEN;
    // Bounded: each pass moves `at` forward by at least FRAMING bytes.
    while let Some(head) = out.get(at..at + 5) {
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let body_end = at + 5 + len;
        if body_end + 4 > out.len() {
            break;
        }
        let crc = record::crc32(&out[at..body_end]);
        out[body_end..body_end + 4].copy_from_slice(&crc.to_be_bytes());
        at = body_end + 4;
        debug_assert!(at >= HEADER_LEN + FRAMING);
    }
    out
}

/// Reads one queue file image every way the queue and its tools do.
fn read_queue_file(bytes: &[u8]) {
    if let Ok(qf) = QueueFile::read(Cursor::new(bytes)) {
        let _ = qf.pending().count();
        let _ = qf.envelope.attribute("client_address");
        let mut out = Vec::new();
        let _ = qf.copy_content(&mut Cursor::new(bytes), &mut out);
        assert!(out.len() as u64 <= bytes.len() as u64);
    }
    if let Ok(mut reader) = RecordReader::new(Cursor::new(bytes)) {
        let mut buf = Vec::new();
        // Bounded: each record takes at least FRAMING bytes.
        for _ in 0..=bytes.len() / FRAMING {
            match reader.next(&mut buf) {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
}

/// A queue file: arbitrary bytes, then the same with checksums fixed.
pub fn queuefile(data: &[u8]) {
    read_queue_file(data);
    read_queue_file(&fix_checksums(data));
}

/// Reads one journal segment image as replay does, and each record's queue file.
fn read_segment(data: &[u8]) -> usize {
    let Some((_, records)) = tern_queue::journal::parse_records(data) else {
        return 0;
    };
    for r in &records {
        assert!(
            tern_queue::QueueId::parse(r.id).is_ok(),
            "record id {:?}",
            r.id
        );
        read_queue_file(r.content);
    }
    records.len()
}

/// `data` with each record's sequence number set to the segment's and its salted
/// checksum made right (docs/queue-format.md, "The commit journal"), as far as the
/// length fields frame whole records.
pub(crate) fn fix_journal(data: &[u8]) -> Vec<u8> {
    const HEAD: usize = 12;
    let mut out = data.to_vec();
    let (Some(seq), Some(salt)) = (data.get(16..24), data.get(24..32)) else {
        return out;
    };
    let mut summed = Vec::new();
    let mut at = 32usize;
    // Bounded: each pass moves `at` forward by at least HEAD + 10 bytes.
    while let Some(head) = out.get(at..at + HEAD) {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let end = at + HEAD + len;
        if len < 10 || end > out.len() {
            break;
        }
        out[at + HEAD..at + HEAD + 8].copy_from_slice(seq);
        summed.clear();
        summed.extend_from_slice(salt);
        summed.extend_from_slice(&out[at + HEAD..end]);
        let crc = record::crc32(&summed);
        out[at + 8..at + HEAD].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    out
}

/// A commit-journal segment (what replay reads at start-up after a crash): arbitrary
/// bytes, then the same with sequence numbers and checksums fixed. Checked beyond "no
/// panic": every record returned names a valid queue id.
pub fn journal(data: &[u8]) {
    read_segment(data);
    read_segment(&fix_journal(data));
}

/// The number of records a segment image holds once fixed (for the seed test).
pub fn journal_records(data: &[u8]) -> usize {
    read_segment(&fix_journal(data))
}

/// A maildrop file (what postdrop writes and pickup reads). Checked beyond "no panic":
/// an envelope that reads is written back as an envelope that reads the same.
pub fn maildrop(data: &[u8]) {
    let Ok(env) = Envelope::read(&mut Cursor::new(data)) else {
        return;
    };
    let mut out = Vec::new();
    if env.write(&mut out).is_ok() {
        let again = Envelope::read(&mut Cursor::new(&out));
        assert_eq!(
            again.ok().as_ref(),
            Some(&env),
            "maildrop envelope round trip"
        );
    }
}

/// postcat's reader and printer over a queue file or maildrop file. Byte 0 picks the
/// flags (`-e -h -b -o -d`); the rest is the file, shown as it is and with checksums
/// fixed.
#[cfg(feature = "postcat")]
pub fn postcat(data: &[u8]) {
    use tern_commands::postcat::printer::{Flags, Printer};
    use tern_commands::postcat::{Kind, kind, maildrop, queuefile};

    let Some((&bits, file)) = data.split_first() else {
        return;
    };
    let flags = Flags {
        envelope: bits & 1 != 0,
        header: bits & 2 != 0,
        body: bits & 4 != 0,
        offsets: bits & 8 != 0,
        decimal: bits & 16 != 0,
        verbose: bits & 32 != 0,
    }
    .with_default_parts();
    for bytes in [file.to_vec(), fix_checksums(file)] {
        let mut out = Vec::new();
        let Ok(mut p) = Printer::new(&mut out, flags, "fuzz", 0) else {
            return;
        };
        let mut input = Cursor::new(&bytes);
        let head = &bytes[..bytes.len().min(16)];
        let _ = match kind(head) {
            Kind::Maildrop => maildrop::show(&mut input, 0, &mut p),
            _ => queuefile::show(&mut input, Some("4ABCDEF"), &mut p),
        };
    }
}
