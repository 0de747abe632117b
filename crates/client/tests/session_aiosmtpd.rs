//! The client session against aiosmtpd (Debian's python3-aiosmtpd), which records the raw
//! MAIL and RCPT arguments and the content: the DSN and SMTPUTF8 parameters, and the
//! content's exact bytes after dot-unstuffing.

mod session_common;

use std::time::Duration;

use tern_client::session::{Encoding, Message, Outcome, Protocol, Recipient, SessionResult};
use tern_queue::file::{DsnRet, Notify};
use tern_testkit::peers::aiosmtpd_recorder;

use session_common::{attempt, deliver_tcp, settings_within};

const CONTENT: &[u8] =
    b"Subject: caf\xc3\xa9\nFrom: s\xc3\xa9nder@example.org\n\n.\n..two\n.three\nend.\n\nlast\n";

fn message() -> Message<'static> {
    Message {
        sender: "s\u{e9}nder@example.org".into(),
        recipients: vec![
            Recipient {
                index: 3,
                address: "one@example.com".into(),
                orcpt: Some("rfc822;Orig=One@example.com".into()),
                original: String::new(),
                notify: Notify(Notify::SUCCESS | Notify::FAILURE),
            },
            Recipient {
                index: 5,
                address: "two@example.com".into(),
                orcpt: None,
                original: "alias@example.com".into(),
                notify: Notify(Notify::NEVER),
            },
            Recipient {
                index: 7,
                address: "three@example.com".into(),
                orcpt: None,
                original: String::new(),
                notify: Notify(0),
            },
        ],
        envid: Some("env+id=1".into()),
        ret: Some(DsnRet::Hdrs),
        size: CONTENT.len() as u64,
        content: CONTENT,
        encoding: Encoding::EightBit,
        smtputf8_requested: true,
        smtputf8_required: true,
        verify: false,
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The recorder's lines for the first message, once it is written.
fn recorded(path: &std::path::Path) -> Vec<String> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains("\n\n") {
            return text
                .split("\n\n")
                .next()
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("aiosmtpd recorded nothing in {}", path.display());
}

async fn send_to(dsn: bool) -> (Vec<String>, Vec<u8>, SessionResult) {
    let server = aiosmtpd_recorder(dsn).expect("aiosmtpd");
    let s = settings_within(Protocol::Smtp, Duration::from_secs(10));
    let r = deliver_tcp(
        "aio.example.com",
        server.port,
        &s,
        &message(),
        &attempt(true),
    )
    .await;
    let mut lines = recorded(&server.record);
    let content = lines
        .pop()
        .and_then(|l| l.strip_prefix("CONTENT ").map(unhex))
        .expect("content line");
    (lines, content, r)
}

fn wire_content() -> Vec<u8> {
    // LF lines as CRLF lines; the server removed the stuffed dots again.
    let mut want = Vec::new();
    for line in CONTENT.split_inclusive(|&c| c == b'\n') {
        want.extend_from_slice(&line[..line.len() - 1]);
        want.extend_from_slice(b"\r\n");
    }
    want
}

#[tokio::test]
async fn dsn_and_smtputf8_parameters_and_content() {
    let (lines, content, r) = send_to(true).await;
    let size = CONTENT.len();
    assert_eq!(
        lines,
        vec![
            format!(
                "MAIL FROM:<s\u{e9}nder@example.org> SIZE={size} BODY=8BITMIME ENVID=env+2Bid+3D1 RET=HDRS SMTPUTF8"
            ),
            "RCPT TO:<one@example.com> ORCPT=rfc822;Orig+3DOne@example.com NOTIFY=SUCCESS,FAILURE"
                .to_owned(),
            "RCPT TO:<two@example.com> ORCPT=rfc822;alias@example.com NOTIFY=NEVER".to_owned(),
            "RCPT TO:<three@example.com>".to_owned(),
        ]
    );
    assert_eq!(
        String::from_utf8_lossy(&content),
        String::from_utf8_lossy(&wire_content())
    );
    assert_eq!(content, wire_content());
    let idx: Vec<u32> = r.recipients.iter().map(|r| r.index).collect();
    assert_eq!(idx, vec![3, 5, 7]);
    for rr in &r.recipients {
        match &rr.outcome {
            Outcome::Sent {
                status,
                success_notice_passed_on,
                ..
            } => {
                assert_eq!(status.text, "250 2.0.0 Ok: queued as RECORDED");
                assert_eq!(status.mta.as_deref(), Some("aio.example.com"));
                assert!(success_notice_passed_on);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn no_dsn_parameters_without_the_extension() {
    let (lines, content, r) = send_to(false).await;
    let size = CONTENT.len();
    assert_eq!(
        lines,
        vec![
            format!("MAIL FROM:<s\u{e9}nder@example.org> SIZE={size} BODY=8BITMIME SMTPUTF8"),
            "RCPT TO:<one@example.com>".to_owned(),
            "RCPT TO:<two@example.com>".to_owned(),
            "RCPT TO:<three@example.com>".to_owned(),
        ]
    );
    assert_eq!(content, wire_content());
    assert!(!r.features.dsn && r.features.smtputf8);
    assert!(r.recipients.iter().all(|r| matches!(
        r.outcome,
        Outcome::Sent {
            success_notice_passed_on: false,
            ..
        }
    )));
}
