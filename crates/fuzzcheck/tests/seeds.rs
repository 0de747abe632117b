//! Makes the binary seed files of fuzz/corpus/ with Tern's own writers: queue files
//! (with status records), maildrop files, and `hash:`, `btree:`, `cdb:` and `lmdb:`
//! tables. Not part of the normal run (it rewrites committed files); run it after a
//! format change with `cargo test -p tern-fuzzcheck --test seeds -- --ignored`.
//! The text seeds are copies of real files and test inputs (fuzz/README.md).

use std::path::{Path, PathBuf};

use tern_maps::indexed::{self, CreateOptions, Duplicates};
use tern_queue::file::{
    DeliveryStatus, DsnRet, Envelope, MessageFlags, Notify, QueueWriter, Recipient, StatusUpdate,
    Timestamp, encode_status,
};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    dir
}

fn envelope(recipients: usize, smtputf8: bool) -> Envelope {
    Envelope {
        arrival: Timestamp {
            sec: 1_795_725_571,
            usec: 824_640,
        },
        sender: "sender@example.test".into(),
        recipients: (0..recipients)
            .map(|i| Recipient {
                address: format!("user{i}@example.test"),
                orcpt: (i % 2 == 1).then(|| format!("rfc822;User{i}@Example.test")),
                notify: Notify(if i % 2 == 1 {
                    Notify::SUCCESS | Notify::FAILURE
                } else {
                    0
                }),
                original: format!("User{i}@Example.test"),
                last: None,
            })
            .collect(),
        client: vec![
            ("client_name".into(), "localhost".into()),
            ("client_address".into(), "127.0.0.1".into()),
            ("client_port".into(), "40000".into()),
            ("helo_name".into(), "client.example.test".into()),
            ("protocol_name".into(), "ESMTP".into()),
        ],
        dsn_envid: smtputf8.then(|| "QQ314159".into()),
        dsn_ret: smtputf8.then_some(DsnRet::Hdrs),
        flags: MessageFlags(if smtputf8 { MessageFlags::SMTPUTF8 } else { 0 }),
    }
}

const MESSAGE: &[u8] = b"Received: from client.example.test (localhost [127.0.0.1])\n\
\tby mx.example.test (Postfix) with ESMTP id 4ABCDEF\n\
\tfor <user0@example.test>; Thu, 26 Nov 2026 20:47:43 +0000 (UTC)\n\
From: Sender <sender@example.test>\nTo: user0@example.test\nSubject: seed\n\
Message-Id: <seed@example.test>\n\nbody line\n.dot line\n\nlast line\n";

#[test]
#[ignore = "rewrites the committed binary seeds"]
fn make_binary_seeds() {
    // Queue files: a plain one, one with status records after End, an empty body.
    let plain = {
        let mut w = QueueWriter::new(Vec::new(), &envelope(1, false)).expect("writer");
        w.content(MESSAGE).expect("content");
        w.finish().expect("finish")
    };
    let with_status = {
        let mut w = QueueWriter::new(Vec::new(), &envelope(3, true)).expect("writer");
        w.content(MESSAGE).expect("content");
        w.attribute("content_filter", "smtp:[127.0.0.1]:10025")
            .expect("attribute");
        let mut bytes = w.finish().expect("finish");
        bytes.extend(encode_status(&[
            StatusUpdate {
                recipient: 0,
                status: DeliveryStatus::Sent,
                time: 1_795_725_580,
                dsn: "2.0.0".into(),
                diagnostic: "delivered to mailbox".into(),
            },
            StatusUpdate {
                recipient: 2,
                status: DeliveryStatus::Deferred,
                time: 1_795_725_581,
                dsn: "4.4.1".into(),
                diagnostic: "connect to example.test[192.0.2.1]:25: Connection refused".into(),
            },
        ]));
        bytes
    };
    let empty = QueueWriter::new(Vec::new(), &envelope(1, false))
        .expect("writer")
        .finish()
        .expect("finish");
    for (name, bytes) in [
        ("plain.tqf", &plain),
        ("status.tqf", &with_status),
        ("empty-body.tqf", &empty),
    ] {
        std::fs::write(corpus("queuefile").join(name), bytes).expect("write");
        // postcat's target takes a flags byte first (0: the default -ehb).
        let mut flagged = vec![0u8];
        flagged.extend_from_slice(bytes);
        std::fs::write(corpus("postcat").join(name), flagged).expect("write");
    }

    // Maildrop files, as postdrop writes them.
    let drop = tern_queue::maildrop::Envelope {
        sender: "user".into(),
        full_name: Some("A User".into()),
        notify: 0,
        ret: None,
        envid: Some("ENV1".into()),
        eight_bit: true,
        verify: false,
        smtputf8: false,
        recipients: vec!["root".into(), "other@example.test".into()],
        rcpt_dsn: vec![tern_queue::maildrop::RcptDsn {
            notify: 6,
            orcpt: Some("rfc822;root@example.test".into()),
        }],
    };
    let mut bytes = Vec::new();
    drop.write(&mut bytes).expect("maildrop write");
    bytes.extend_from_slice(b"Subject: dropped\n\nbody\n");
    std::fs::write(corpus("maildrop").join("postdrop.txt"), &bytes).expect("write");
    let mut flagged = vec![0u8];
    flagged.extend_from_slice(&bytes);
    std::fs::write(corpus("postcat").join("maildrop.txt"), flagged).expect("write");

    // Indexed tables from a small source, each type in each NUL form.
    let scratch = std::env::temp_dir().join(format!("tern-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let entries = [
        ("root", "admin@example.test"),
        ("postmaster", "root"),
        ("example.com", "OK"),
        ("192.0.2", "REJECT"),
        ("long", &"x".repeat(5000)),
    ];
    for (kind, target) in [
        ("cdb", "cdb"),
        ("lmdb", "lmdb"),
        ("hash", "hashdb"),
        ("btree", "hashdb"),
    ] {
        for nul in [true, false] {
            let name = scratch.join(format!("{kind}-{nul}")).display().to_string();
            let opts = CreateOptions {
                duplicates: Duplicates::Warn,
                nul_terminated: nul,
                mode: 0o644,
            };
            let mut w = indexed::create(kind, &name, opts).expect("create");
            for (k, v) in entries {
                w.put(k, v).expect("put");
            }
            w.finish().expect("finish");
            let file = indexed::file_path(kind, &name);
            let out =
                corpus(target).join(format!("tern-{kind}-{}", if nul { "nul" } else { "nonul" }));
            std::fs::copy(&file, out).expect("copy");
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The delivery helper's frames, as the daemon, the supervisor and the workers write
/// them: `cargo test -p tern-fuzzcheck --test seeds -- --ignored make_wire_seeds`.
#[test]
#[ignore = "rewrites the committed wire seeds"]
fn make_wire_seeds() {
    use tern_delivery::request::{
        Agent, Delivered, DeliveryRequest, ExpandedOutcome, Forward, Outcome, Reply,
        RequestRecipient,
    };
    use tern_delivery::wire::{Frame, encode};
    let request = DeliveryRequest {
        agent: Agent::Local,
        transport: "local".into(),
        nexthop: "mx.example.test".into(),
        queue_id: "4ABCD123".into(),
        queue_file: "/var/spool/postfix/active/4ABCD123".into(),
        sender: "sender@example.test".into(),
        arrival: 1_795_725_571,
        envid: Some("e1".into()),
        recipients: vec![
            RequestRecipient {
                index: 0,
                address: "alice@mx.example.test".into(),
                orig_rcpt: "Alice@mx.example.test".into(),
                dsn_orcpt: Some("rfc822;Alice@mx.example.test".into()),
                notify: 3,
            },
            RequestRecipient {
                index: 1,
                address: "list@mx.example.test".into(),
                ..RequestRecipient::default()
            },
        ],
        verify: false,
    };
    let reply = Reply {
        pid: 4242,
        outcomes: vec![
            Outcome {
                index: 0,
                result: Delivered::Sent {
                    dsn: "2.0.0".into(),
                    text: "delivered to maildir".into(),
                },
                relay: "local".into(),
                expanded: Vec::new(),
            },
            Outcome {
                index: 1,
                result: Delivered::Deferred {
                    dsn: "4.3.0".into(),
                    text: "cannot update mailbox".into(),
                },
                relay: "local".into(),
                expanded: vec![ExpandedOutcome {
                    address: "bob@mx.example.test".into(),
                    orig_to: "list@mx.example.test".into(),
                    result: Delivered::Forward(Forward {
                        sender: "owner-list@mx.example.test".into(),
                        recipients: vec!["far@remote.example".into()],
                        prepend: vec!["Delivered-To: list@mx.example.test".into()],
                    }),
                    pid: Some(4242),
                    notify: None,
                }],
            },
        ],
        warnings: vec!["a warning".into()],
    };
    let dir = corpus("wire");
    let stream: Vec<u8> = [Frame::Spawn, Frame::Spawned(77), Frame::Reload]
        .iter()
        .flat_map(encode)
        .collect();
    for (name, bytes) in [
        ("request", encode(&Frame::Request(request))),
        ("reply", encode(&Frame::Reply(reply))),
        (
            "spawn-failed",
            encode(&Frame::SpawnFailed(
                "fork: Resource temporarily unavailable".into(),
            )),
        ),
        ("control-stream", stream),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write");
    }
}
