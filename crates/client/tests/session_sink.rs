//! The client session against Postfix's smtp-sink (Debian's postfix package): a plain
//! message, and many recipients sent with PIPELINING in several batches.

mod session_common;

use std::time::Duration;

use tern_client::session::{Message, Outcome, Protocol, SessionResult};
use tern_testkit::peers::{Peer, smtp_sink};

use session_common::{attempt, deliver_tcp, message_from, settings_within};

/// A running smtp-sink and the result of one session with it for `msg`.
async fn send_to_sink(msg: &Message<'_>) -> (Peer, SessionResult) {
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let s = settings_within(Protocol::Smtp, Duration::from_secs(10));
    let r = deliver_tcp("sink.example.com", sink.port, &s, msg, &attempt(true)).await;
    (sink, r)
}

/// Reads the dump until it holds `count` recipient lines (smtp-sink writes it after the
/// reply to the final dot).
fn wait_for_dump(path: &std::path::Path, count: usize) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.matches("X-Rcpt-Args:").count() >= count {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn plain_message() {
    let content: &[u8] = b"Subject: plain\nFrom: sender@example.org\n\nbody line\n.leading dot\n";
    let (sink, r) = send_to_sink(&message_from(0, &["rcpt@example.com"], content)).await;
    assert_eq!(
        r.relay,
        format!("sink.example.com[127.0.0.1]:{}", sink.port)
    );
    assert!(r.features.pipelining && r.features.dsn && r.features.eightbitmime);
    assert_eq!(r.recipients.len(), 1);
    match &r.recipients[0].outcome {
        Outcome::Sent { status, .. } => {
            assert_eq!(status.dsn, "2.0.0");
            assert!(status.text.starts_with("250 2.0.0 Ok"), "{}", status.text);
        }
        other => panic!("not sent: {other:?}"),
    }
    let dump = wait_for_dump(&sink.record, 1);
    assert!(dump.contains("X-Helo-Args: client.example.org\n"), "{dump}");
    assert!(
        dump.contains("X-Mail-Args: <sender@example.org> BODY=7BIT\n"),
        "{dump}"
    );
    assert!(dump.contains("X-Rcpt-Args: <rcpt@example.com>\n"), "{dump}");
    assert!(
        dump.contains("Subject: plain\nFrom: sender@example.org\n\nbody line\n"),
        "{dump}"
    );
}

#[tokio::test]
async fn many_recipients_with_pipelining() {
    // About 9 KB of RCPT commands: more than one 4096-byte pipelining batch.
    let rcpts: Vec<String> = (0..300)
        .map(|i| format!("user{i:03}@example.com"))
        .collect();
    let (sink, r) = send_to_sink(&message_from(0, &rcpts, b"Subject: many\n\nhi\n")).await;
    assert_eq!(r.recipients.len(), 300);
    for (i, rr) in r.recipients.iter().enumerate() {
        assert_eq!(rr.index as usize, i);
        assert!(
            matches!(rr.outcome, Outcome::Sent { .. }),
            "{i}: {:?}",
            rr.outcome
        );
    }
    let dump = wait_for_dump(&sink.record, 300);
    let got: Vec<&str> = dump
        .lines()
        .filter_map(|l| l.strip_prefix("X-Rcpt-Args: "))
        .collect();
    let want: Vec<String> = rcpts.iter().map(|a| format!("<{a}>")).collect();
    assert_eq!(got, want);
}
