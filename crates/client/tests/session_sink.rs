//! The client session against Postfix's smtp-sink (Debian's postfix package): a plain
//! message, and many recipients sent with PIPELINING in several batches.

use std::time::Duration;

use tern_client::session::{
    Attempt, Encoding, Message, Outcome, Protocol, Recipient, Settings, connect_tcp, deliver,
};
use tern_queue::file::Notify;
use tern_testkit::peers::smtp_sink;

fn settings() -> Settings {
    let t = Duration::from_secs(10);
    Settings {
        protocol: Protocol::Smtp,
        myhostname: "client.example.org".into(),
        helo_name: "client.example.org".into(),
        connect_timeout: Some(t),
        helo_timeout: t,
        mail_timeout: t,
        rcpt_timeout: t,
        data_init_timeout: t,
        data_xfer_timeout: t,
        data_done_timeout: t,
        rset_timeout: t,
        quit_timeout: t,
        skip_5xx_greeting: true,
        output_line_limit: 998,
        reply_line_limit: 2048,
        disable_mime_output_conversion: false,
        never_send_ehlo: false,
        always_send_ehlo: true,
        skip_quit_response: false,
        soft_bounce: false,
        final_delivery: false,
    }
}

fn message(rcpts: &[String], content: &'static [u8]) -> Message<'static> {
    Message {
        sender: "sender@example.org".into(),
        recipients: rcpts
            .iter()
            .enumerate()
            .map(|(i, a)| Recipient {
                index: u32::try_from(i).expect("recipient count"),
                address: a.clone(),
                orcpt: None,
                original: String::new(),
                notify: Notify(0),
            })
            .collect(),
        envid: None,
        ret: None,
        size: content.len() as u64,
        content,
        encoding: Encoding::SevenBit,
        smtputf8_requested: false,
        smtputf8_required: false,
    }
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
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let addr = ([127, 0, 0, 1], sink.port).into();
    let s = settings();
    let (stream, peer) = connect_tcp("sink.example.com", addr, s.connect_timeout)
        .await
        .expect("connect");
    let content: &[u8] = b"Subject: plain\nFrom: sender@example.org\n\nbody line\n.leading dot\n";
    let msg = message(&["rcpt@example.com".to_owned()], content);
    let r = deliver(
        stream,
        &s,
        &peer,
        &msg,
        &Attempt {
            final_server: true,
            loop_check: None,
        },
    )
    .await;
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
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let addr = ([127, 0, 0, 1], sink.port).into();
    let s = settings();
    let (stream, peer) = connect_tcp("sink.example.com", addr, s.connect_timeout)
        .await
        .expect("connect");
    // About 9 KB of RCPT commands: more than one 4096-byte pipelining batch.
    let rcpts: Vec<String> = (0..300)
        .map(|i| format!("user{i:03}@example.com"))
        .collect();
    let msg = message(&rcpts, b"Subject: many\n\nhi\n");
    let r = deliver(
        stream,
        &s,
        &peer,
        &msg,
        &Attempt {
            final_server: true,
            loop_check: None,
        },
    )
    .await;
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
