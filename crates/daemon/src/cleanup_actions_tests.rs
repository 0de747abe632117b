//! The access actions at the Message level: where the file goes, what it holds.

use std::net::{IpAddr, Ipv4Addr};

use tern_queue::{ATTR_FILTER, ATTR_REDIRECT, Committer, QueueFile};

use super::*;

fn client() -> ClientInfo {
    ClientInfo {
        name: "localhost".into(),
        reverse_name: "localhost".into(),
        name_status: crate::peername::NameStatus::Ok,
        reverse_name_status: crate::peername::NameStatus::Ok,
        addr: "127.0.0.1".into(),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 54321,
        helo: Some("client.example".into()),
        protocol: "ESMTP".into(),
        local: true,
    }
}

fn sender() -> MailFrom {
    MailFrom {
        address: "alice@example.com".into(),
        raw: "<alice@example.com>".into(),
        size: None,
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
        auth: None,
    }
}

fn rcpt(a: &str) -> RcptTo {
    RcptTo {
        address: a.into(),
        raw: format!("<{a}>"),
        notify: None,
        orcpt: None,
    }
}

/// A committed file: its queue, what it holds, its content.
type Committed = (QueueName, QueueFile, Vec<u8>);

/// One message through `Message` with `before` set before start() and `after` before
/// finish(); the committed file's queue and contents, or `None` when discarded.
struct Run {
    layout: QueueLayout,
    _dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = QueueLayout::new(dir.path().join("queue"));
        layout.create(None).unwrap();
        Self { layout, _dir: dir }
    }

    fn message(
        &self,
        before: &AccessActions,
        after: &AccessActions,
        content: &[&[u8]],
    ) -> (String, Option<Committed>, Vec<LogEvent>) {
        let settings = Settings::default();
        let mut m = Message::create(&self.layout, IdForm::Short, &settings).unwrap();
        m.add_recipient(&rcpt("plain@example.com"));
        m.add_recipient(&rcpt("other@example.com"));
        m.set_actions(before);
        m.start(&sender(), &client(), "Postfix", "").unwrap();
        for line in content {
            m.record(line, RecordKind::Norm).unwrap();
        }
        m.set_actions(after);
        let id = m.id().to_owned();
        let (pending, logs) = m.finish().unwrap();
        let Some(pending) = pending else {
            return (id, None, logs);
        };
        let queue = pending.queue();
        let c = Committer::start().unwrap();
        let qid = c.commit(pending).unwrap();
        let path = self.layout.path(queue, &qid);
        let qf = QueueFile::open(&path).unwrap();
        let mut body = Vec::new();
        qf.copy_content(&mut std::fs::File::open(&path).unwrap(), &mut body)
            .unwrap();
        (id, Some((queue, qf, body)), logs)
    }
}

const CONTENT: &[&[u8]] = &[
    b"Subject: hi",
    b"Message-Id: <m1@example.com>",
    b"",
    b"body",
];

#[test]
fn hold_and_discard_decide_where_the_file_goes() {
    let hold = AccessActions {
        hold: true,
        ..AccessActions::default()
    };
    let discard = AccessActions {
        discard: true,
        ..AccessActions::default()
    };
    let none = AccessActions::default();
    // (before start, before finish) -> queue (None: discarded), message-id logged
    let table: &[(&AccessActions, &AccessActions, Option<QueueName>, bool)] = &[
        (&none, &none, Some(QueueName::Incoming), true),
        (&hold, &none, Some(QueueName::Hold), true),
        // From smtpd_end_of_data_restrictions.
        (&none, &hold, Some(QueueName::Hold), true),
        // Debian's Postfix logs no message-id= for a message discarded at RCPT.
        (&discard, &none, None, false),
        // Discarded at the end: cleanup had logged the message-id already.
        (&none, &discard, None, true),
        // DISCARD wins over HOLD (cleanup_api.c).
        (&hold, &discard, None, true),
    ];
    let run = Run::new();
    for (i, &(before, after, want, logged)) in table.iter().enumerate() {
        let (id, got, logs) = run.message(before, after, CONTENT);
        assert_eq!(got.as_ref().map(|g| g.0), want, "row {i}");
        assert_eq!(!logs.is_empty(), logged, "row {i}: {logs:?}");
        if got.is_none() {
            // Nothing of a discarded message is left in any queue.
            for q in [QueueName::Incoming, QueueName::Hold] {
                let n = std::fs::read_dir(run.layout.dir(q))
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.file_name().to_string_lossy().contains(&id))
                    })
                    .count();
                assert_eq!(n, 0, "row {i}: {id} in {q:?}");
            }
        }
    }
}

#[test]
fn content_filter_is_replaced_by_a_filter_action() {
    let table: &[(&str, Option<&str>, Option<&str>)] = &[
        ("", None, None),
        (
            "smtp:[127.0.0.1]:10025",
            None,
            Some("smtp:[127.0.0.1]:10025"),
        ),
        ("smtp:[127.0.0.1]:10025", Some("sink:"), Some("sink:")),
        ("", Some("sink:"), Some("sink:")),
    ];
    let run = Run::new();
    for &(content_filter, action, want) in table {
        let before = AccessActions::with_content_filter(content_filter);
        let after = AccessActions {
            filter: action.map(str::to_owned),
            ..AccessActions::default()
        };
        let (_, got, _) = run.message(&before, &after, CONTENT);
        let (_, qf, _) = got.unwrap();
        assert_eq!(qf.envelope.attribute(ATTR_FILTER), want, "{content_filter}");
    }
}

#[test]
fn a_discarded_message_forgives_errors() {
    // 51 Received: headers: over hopcount_limit, yet answered as queued.
    let hops: Vec<Vec<u8>> = (0..51)
        .map(|i| format!("Received: from h{i}").into_bytes())
        .collect();
    let mut content: Vec<&[u8]> = hops.iter().map(Vec::as_slice).collect();
    content.extend_from_slice(&[b"", b"x"]);
    let discard = AccessActions {
        discard: true,
        ..AccessActions::default()
    };
    let run = Run::new();
    let (_, got, _) = run.message(&AccessActions::default(), &discard, &content);
    assert!(got.is_none());
}

#[test]
fn filter_redirect_bcc_and_prepend_are_written() {
    let before = AccessActions {
        filter: Some("first:x".into()),
        bcc: vec!["carol@example.com".into()],
        prepend: vec!["X-Tag: yes".into(), "X-Second: 2".into()],
        ..AccessActions::default()
    };
    // The whole set again, with more: nothing is taken twice; PREPEND is no longer
    // taken; the last FILTER wins.
    let after = AccessActions {
        filter: Some("sink:[127.0.0.1]:2599".into()),
        redirect: Some("bob@example.com".into()),
        bcc: vec!["carol@example.com".into(), "dave@example.com".into()],
        prepend: vec!["X-Tag: yes".into(), "X-Late: no".into()],
        ..AccessActions::default()
    };
    let run = Run::new();
    let (_, got, _) = run.message(&before, &after, CONTENT);
    let (queue, qf, body) = got.unwrap();
    assert_eq!(queue, QueueName::Incoming);
    let env = &qf.envelope;
    assert_eq!(env.attribute(ATTR_FILTER), Some("sink:[127.0.0.1]:2599"));
    assert_eq!(env.attribute(ATTR_REDIRECT), Some("bob@example.com"));
    let rcpts: Vec<(&str, Option<&str>, u8, &str)> = env
        .recipients
        .iter()
        .map(|r| (&*r.address, r.orcpt.as_deref(), r.notify.0, &*r.original))
        .collect();
    assert_eq!(
        rcpts,
        [
            ("plain@example.com", None, 0, "plain@example.com"),
            ("other@example.com", None, 0, "other@example.com"),
            // As Debian's Postfix 3.7 writes BCC recipients (postcat).
            (
                "carol@example.com",
                Some("rfc822;carol@example.com"),
                0,
                "carol@example.com"
            ),
            (
                "dave@example.com",
                Some("rfc822;dave@example.com"),
                Notify::NEVER,
                "dave@example.com"
            ),
        ]
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.starts_with(
            "X-Tag: yes\nX-Second: 2\nReceived: from client.example (localhost [127.0.0.1])\n"
        ),
        "{text}"
    );
    assert!(!text.contains("X-Late"), "{text}");
}
