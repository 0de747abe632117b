//! Round trips, truncation at every length, torn status tails, garbage.

#![allow(clippy::cast_possible_truncation)] // test data sizes are small

use proptest::prelude::*;

use super::*;

fn sample() -> Envelope {
    Envelope {
        arrival: Timestamp {
            sec: 1_795_725_571,
            usec: 824_640,
        },
        sender: "a@b.example".into(),
        recipients: vec![
            Recipient::new("user1@remote.example"),
            Recipient {
                address: "user2@remote.example".into(),
                orcpt: Some("rfc822;User2@remote.example".into()),
                notify: Notify(Notify::SUCCESS | Notify::FAILURE),
                original: "User2@Remote.example".into(),
                last: None,
            },
        ],
        client: vec![
            ("client_name".into(), "localhost".into()),
            ("client_address".into(), "127.0.0.1".into()),
            ("helo_name".into(), "client.example".into()),
        ],
        dsn_envid: Some("QQ314159".into()),
        dsn_ret: Some(DsnRet::Hdrs),
        flags: MessageFlags(MessageFlags::SMTPUTF8),
    }
}

fn write(env: &Envelope, content: &[u8]) -> Vec<u8> {
    let mut w = QueueWriter::new(Vec::new(), env).unwrap();
    w.content(content).unwrap();
    w.finish().unwrap()
}

fn content_of(qf: &QueueFile, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    qf.copy_content(&mut io::Cursor::new(bytes), &mut out)
        .unwrap();
    out
}

#[test]
fn round_trip() {
    let table: &[(&str, usize)] = &[("empty body", 0), ("small", 100), ("chunks", 200_000)];
    for &(name, size) in table {
        let env = sample();
        let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let bytes = write(&env, &content);
        let qf = QueueFile::read(&bytes[..]).unwrap();
        assert_eq!(qf.envelope, env, "{name}");
        assert_eq!(qf.content_len, size as u64, "{name}");
        assert_eq!(content_of(&qf, &bytes), content, "{name}");
        assert_eq!(qf.end_offset, bytes.len() as u64, "{name}");
        assert_eq!(qf.torn_tail, None, "{name}");
    }
}

#[test]
fn null_sender_and_extracted_recipients() {
    let mut env = sample();
    env.sender = String::new();
    env.dsn_envid = None;
    env.dsn_ret = None;
    let mut w = QueueWriter::new(Vec::new(), &env).unwrap();
    w.content(b"To: x@y.example\r\n\r\nhi\r\n").unwrap();
    w.extracted_recipient(&Recipient::new("x@y.example"))
        .unwrap();
    let bytes = w.finish().unwrap();
    let qf = QueueFile::read(&bytes[..]).unwrap();
    assert_eq!(qf.envelope.sender, "");
    assert_eq!(qf.envelope.recipients.len(), 3);
    assert_eq!(qf.envelope.recipients[2].address, "x@y.example");
}

/// The crash test of the format: every prefix of a file, with or without status records,
/// is either incomplete or the whole message with all its recipients.
#[test]
fn truncated_at_every_length() {
    let env = sample();
    let mut bytes = write(&env, &[b'x'; 3000]);
    let end = bytes.len();
    let updates = [
        StatusUpdate {
            recipient: 0,
            status: DeliveryStatus::Sent,
            time: 1,
            dsn: "2.0.0".into(),
            diagnostic: "250 ok".into(),
        },
        StatusUpdate {
            recipient: 1,
            status: DeliveryStatus::Deferred,
            time: 2,
            dsn: "4.4.1".into(),
            diagnostic: "connect refused".into(),
        },
    ];
    bytes.extend_from_slice(&encode_status(&updates[..1]));
    let first_status_end = bytes.len();
    bytes.extend_from_slice(&encode_status(&updates[1..]));
    for len in 0..=bytes.len() {
        match QueueFile::read(&bytes[..len]) {
            Err(ReadError::Incomplete { .. }) => assert!(len < end, "len {len}"),
            Err(e) => panic!("len {len}: {e}"),
            Ok(qf) => {
                assert!(len >= end, "len {len} read as a message");
                assert_eq!(qf.envelope.recipients.len(), 2, "len {len}");
                let s0 = qf.envelope.recipients[0].status();
                let s1 = qf.envelope.recipients[1].status();
                let want = if len == bytes.len() {
                    (DeliveryStatus::Sent, DeliveryStatus::Deferred, None)
                } else if len >= first_status_end {
                    (
                        DeliveryStatus::Sent,
                        DeliveryStatus::Pending,
                        Some(first_status_end),
                    )
                } else {
                    (DeliveryStatus::Pending, DeliveryStatus::Pending, Some(end))
                };
                let torn = qf.torn_tail.map(|t| t.valid_len as usize);
                let torn_want = if len == end || len == first_status_end {
                    None
                } else {
                    want.2
                };
                assert_eq!((s0, s1, torn), (want.0, want.1, torn_want), "len {len}");
            }
        }
    }
}

#[test]
fn damaged_files_are_corrupt() {
    let bytes = write(&sample(), b"hello\r\n");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", {
            let mut b = bytes.clone();
            b[1] = b'X';
            b
        }),
        ("flipped envelope bit", {
            let mut b = bytes.clone();
            b[30] ^= 0x40;
            b
        }),
        ("two End records", {
            let mut b = bytes.clone();
            let end_rec = b[b.len() - (FRAMING + 16)..].to_vec();
            b.extend_from_slice(&end_rec);
            b.extend_from_slice(&end_rec);
            b
        }),
    ];
    for (name, b) in cases {
        match QueueFile::read(&b[..]) {
            Err(ReadError::Corrupt { .. }) => {}
            // A second End after the first is a damaged status tail, not a new message.
            Ok(qf) if name == "two End records" => assert!(qf.torn_tail.is_some()),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A record out of order: Sender after content.
    let mut b = header().to_vec();
    let mut p = Vec::new();
    p.extend_from_slice(&1u64.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    put_record(&mut b, RecordType::Arrival, &p);
    put_record(&mut b, RecordType::Sender, b"");
    put_record(&mut b, RecordType::Content, b"x");
    put_record(&mut b, RecordType::Flags, &[0, 0, 0, 0]);
    assert!(matches!(
        QueueFile::read(&b[..]),
        Err(ReadError::Corrupt { .. })
    ));
}

#[test]
fn status_log_appends_and_cuts_torn_tails() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("C954098E5B8");
    std::fs::write(&path, write(&sample(), b"body\r\n")).unwrap();
    let (mut log, qf, torn) = StatusLog::open(&path).unwrap();
    assert!(torn.is_none());
    assert_eq!(qf.pending().count(), 2);
    let u = StatusUpdate {
        recipient: 1,
        status: DeliveryStatus::Bounced,
        time: 9,
        dsn: "5.1.1".into(),
        diagnostic: "user unknown".into(),
    };
    log.append(std::slice::from_ref(&u)).unwrap();
    let bad = StatusUpdate {
        recipient: 2,
        ..u.clone()
    };
    assert!(log.append(&[bad]).is_err());
    drop(log);
    // A torn append: half a record.
    let rec = encode_status(&[StatusUpdate {
        recipient: 0,
        ..u.clone()
    }]);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&rec[..rec.len() / 2]).unwrap();
    drop(f);
    let (mut log, qf, torn) = StatusLog::open(&path).unwrap();
    assert!(torn.unwrap().incomplete);
    assert_eq!(qf.envelope.recipients[1].last.as_ref(), Some(&u));
    assert_eq!(qf.envelope.recipients[0].status(), DeliveryStatus::Pending);
    log.append(&[StatusUpdate {
        recipient: 0,
        status: DeliveryStatus::Sent,
        ..u.clone()
    }])
    .unwrap();
    let qf = QueueFile::open(&path).unwrap();
    assert!(qf.torn_tail.is_none());
    assert_eq!(qf.pending().count(), 0);
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = QueueFile::read(&bytes[..]);
        let mut with_header = header().to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = QueueFile::read(&with_header[..]);
    }

    #[test]
    fn mutated_files_never_panic_nor_lose_recipients(
        pos in 0usize..400, val in any::<u8>(), cut in 0usize..400
    ) {
        let good = write(&sample(), b"Subject: x\r\n\r\nbody\r\n");
        let mut b = good.clone();
        let pos = pos % b.len();
        b[pos] = val;
        b.truncate(b.len() - cut % b.len());
        if let Ok(qf) = QueueFile::read(&b[..]) {
            // Whatever survives the checksums is the whole envelope.
            prop_assert_eq!(qf.envelope.recipients.len(), 2);
        }
    }

    #[test]
    fn round_trip_any_envelope(
        sender in "[ -~]{0,40}",
        rcpts in proptest::collection::vec(("[ -~]{1,40}", proptest::option::of("[ -~]{1,20}"), 0u8..16), 1..5),
        content in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let env = Envelope {
            sender,
            recipients: rcpts.into_iter().map(|(a, o, n)| Recipient {
                original: a.to_uppercase(), address: a, orcpt: o, notify: Notify(n),
                last: None }).collect(),
            ..sample()
        };
        let bytes = write(&env, &content);
        let qf = QueueFile::read(&bytes[..]).unwrap();
        prop_assert_eq!(&qf.envelope, &env);
        prop_assert_eq!(content_of(&qf, &bytes), content);
    }
}

/// A file with one Recipient record of `payload`, and a matching End.
fn with_recipient_payload(payload: &[u8]) -> Vec<u8> {
    let mut b = header().to_vec();
    let mut p = Vec::new();
    p.extend_from_slice(&1u64.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    put_record(&mut b, RecordType::Arrival, &p);
    put_record(&mut b, RecordType::Sender, b"s@example");
    put_record(&mut b, RecordType::Recipient, payload);
    let mut end = Vec::new();
    end.extend_from_slice(&3u32.to_be_bytes());
    end.extend_from_slice(&1u32.to_be_bytes());
    end.extend_from_slice(&0u64.to_be_bytes());
    put_record(&mut b, RecordType::End, &end);
    b
}

/// A content record longer than the writer's chunks (any up to MAX_PAYLOAD reads) made
/// copy_content panic: it sliced its 64 KiB buffer by the record's length (seen while
/// writing the queuefile fuzz target; fuzz/corpus/queuefile/long-content-record).
#[test]
fn content_records_longer_than_a_chunk_copy_whole() {
    for len in [CONTENT_CHUNK, CONTENT_CHUNK + 1, 3 * CONTENT_CHUNK + 7] {
        let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut b = header().to_vec();
        let mut p = Vec::new();
        p.extend_from_slice(&1u64.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        put_record(&mut b, RecordType::Arrival, &p);
        put_record(&mut b, RecordType::Sender, b"s@example");
        put_record(&mut b, RecordType::Content, &content);
        let mut end = Vec::new();
        end.extend_from_slice(&3u32.to_be_bytes());
        end.extend_from_slice(&0u32.to_be_bytes());
        end.extend_from_slice(&(len as u64).to_be_bytes());
        put_record(&mut b, RecordType::End, &end);
        let qf = QueueFile::read(&b[..]).unwrap();
        assert_eq!(content_of(&qf, &b), content, "{len}");
    }
}

#[test]
fn recipient_original_field_is_optional() {
    let base = {
        let mut p = Vec::new();
        put_str16(&mut p, "a@example");
        put_str16(&mut p, "");
        p.push(Notify::FAILURE);
        p
    };
    let plus = |extra: &[u8]| [base.as_slice(), extra].concat();
    // (name, payload, the original read, or None for a corrupt file)
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("first layout, no original", base.clone(), Some("")),
        ("empty original", plus(&[0, 0]), Some("")),
        ("original", plus(b"\x00\x04A@ex"), Some("A@ex")),
        ("original cut short", plus(b"\x00\x09A@ex"), None),
        ("one stray byte", plus(&[7]), None),
        ("bytes after the original", plus(b"\x00\x01Ax"), None),
    ];
    for (name, payload, want) in cases {
        let got = QueueFile::read(&with_recipient_payload(&payload)[..]);
        match (want, got) {
            (Some(w), Ok(qf)) => {
                let r = &qf.envelope.recipients[0];
                assert_eq!(r.original, w, "{name}");
                assert_eq!(r.address, "a@example", "{name}");
                assert_eq!(r.notify, Notify(Notify::FAILURE), "{name}");
            }
            (None, Err(ReadError::Corrupt { .. })) => {}
            (w, got) => panic!("{name}: want {w:?}, got {got:?}"),
        }
    }
}

/// The actions smtpd's access restrictions decide at the end of a message are named
/// attributes after the content; the last of a name wins; they are never taken after End.
#[test]
fn attributes_after_the_content() {
    type Row<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, Option<&'a str>);
    let table: &[Row<'_>] = &[
        (&[], None, None),
        (
            &[(ATTR_FILTER, "smtp:[127.0.0.1]:10025")],
            Some("smtp:[127.0.0.1]:10025"),
            None,
        ),
        (
            &[
                (ATTR_FILTER, "a:"),
                (ATTR_REDIRECT, "bob@example.com"),
                (ATTR_FILTER, "b:c"),
            ],
            Some("b:c"),
            Some("bob@example.com"),
        ),
    ];
    for (attrs, filter, redirect) in table {
        let env = sample();
        let mut w = QueueWriter::new(Vec::new(), &env).unwrap();
        w.content(b"Subject: x\n\nbody\n").unwrap();
        for (n, v) in *attrs {
            w.attribute(n, v).unwrap();
        }
        let bytes = w.finish().unwrap();
        let qf = QueueFile::read(&bytes[..]).unwrap();
        assert_eq!(qf.envelope.attribute(ATTR_FILTER), *filter, "{attrs:?}");
        assert_eq!(qf.envelope.attribute(ATTR_REDIRECT), *redirect, "{attrs:?}");
        assert_eq!(content_of(&qf, &bytes), b"Subject: x\n\nbody\n");
    }
    // A Client record after End is a torn tail, not an attribute.
    let mut bytes = write(&sample(), b"x\n");
    let mut p = Vec::new();
    crate::record::put_str16(&mut p, ATTR_FILTER);
    p.extend_from_slice(b"a:b");
    crate::record::put_record(&mut bytes, RecordType::Client, &p);
    let qf = QueueFile::read(&bytes[..]).unwrap();
    assert_eq!(qf.envelope.attribute(ATTR_FILTER), None);
    assert!(qf.torn_tail.is_some());
}
