//! The LMTP session against scripted servers (TCP and a UNIX-domain socket): one reply
//! per accepted recipient after the final dot (RFC 2033 4.2).

mod session_common;

use std::time::Duration;

use tern_client::session::{Outcome, Protocol, deliver};
use tern_testkit::peers::{Step, expect, send};

use session_common::*;

#[tokio::test]
async fn lmtp_one_reply_per_accepted_recipient() {
    let mut script = vec![
        send("220 lmtp.example.com LMTP"),
        expect("LHLO client.example.org"),
        Step::Send("250-lmtp.example.com\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".into()),
    ];
    script.extend(pipelined(
        "MAIL FROM:<sender@example.org>",
        &[
            "RCPT TO:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "RCPT TO:<c@example.com>",
        ],
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@example.com>: User unknown\r\n\
         250 2.1.5 Ok\r\n354 go\r\n",
    ));
    script.extend([
        Step::ReadData,
        expect("QUIT"),
        Step::Send(
            "250 2.0.0 <a@example.com> Saved\r\n452 4.2.2 <c@example.com> Mailbox full\r\n221 bye\r\n"
                .into(),
        ),
    ]);
    let msg = message(&["a@example.com", "b@example.com", "c@example.com"]);
    let (r, t) = run(script, &settings(Protocol::Lmtp), &msg, true).await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![
            one(10, "sent", "2.0.0", "250 2.0.0 <a@example.com> Saved"),
            one(
                11,
                "bounced",
                "5.1.1",
                "host mx.example.com[127.0.0.1] said: 550 5.1.1 <b@example.com>: User unknown (in reply to RCPT TO command)"
            ),
            one(
                12,
                "deferred",
                "4.2.2",
                "host mx.example.com[127.0.0.1] said: 452 4.2.2 <c@example.com> Mailbox full (in reply to end of DATA command)"
            ),
        ]
    );
}

#[tokio::test]
async fn lmtp_over_a_unix_socket() {
    use std::io::{BufRead, BufReader, Write};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lmtp.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut w = stream.try_clone().expect("clone");
        let mut r = BufReader::new(stream);
        let mut seen = Vec::new();
        let mut line = String::new();
        w.write_all(b"220 lmtp ready\r\n").expect("greet");
        for reply in [
            "250-lmtp\r\n250 ENHANCEDSTATUSCODES\r\n",
            "250 2.1.0 ok\r\n",
            "250 2.1.5 ok\r\n",
            "354 go\r\n",
        ] {
            line.clear();
            r.read_line(&mut line).expect("command");
            seen.push(line.trim_end().to_owned());
            w.write_all(reply.as_bytes()).expect("reply");
        }
        for _ in 0..100 {
            line.clear();
            if r.read_line(&mut line).expect("data") == 0 || line == ".\r\n" {
                break;
            }
        }
        w.write_all(b"250 2.0.0 <a@example.com> delivered\r\n")
            .expect("dot reply");
        line.clear();
        let _ = r.read_line(&mut line);
        seen.push(line.trim_end().to_owned());
        let _ = w.write_all(b"221 bye\r\n");
        seen
    });
    let mut s = settings(Protocol::Lmtp);
    s.final_delivery = true;
    let (stream, peer) = tern_client::session::connect_unix("myhost.example.org", &path, None)
        .await
        .expect("connect");
    let r = deliver(
        stream,
        &s,
        &peer,
        &message(&["a@example.com"]),
        &attempt(true),
    )
    .await;
    assert_eq!(r.relay, format!("myhost.example.org[{}]", path.display()));
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "sent",
            "2.0.0",
            "250 2.0.0 <a@example.com> delivered"
        )]
    );
    assert!(matches!(
        r.recipients[0].outcome,
        Outcome::Sent {
            action: tern_client::session::DsnAction::Delivered,
            ..
        }
    ));
    let seen = server.join().expect("server");
    assert_eq!(
        seen,
        vec![
            "LHLO client.example.org",
            "MAIL FROM:<sender@example.org>",
            "RCPT TO:<a@example.com>",
            "DATA",
            "QUIT"
        ]
    );
}
