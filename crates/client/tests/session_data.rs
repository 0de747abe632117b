//! The client session against a scripted server: DATA, the content on the wire (dot
//! stuffing, long lines, 8BITMIME downgrade), the end of data, timeouts and hang-ups
//! around it, and QUIT.

mod session_common;

use std::time::Duration;

use tern_client::session::{Attempt, Encoding, Protocol, connect_tcp, deliver};
use tern_testkit::peers::{ScriptedServer, Step, expect, send};

use session_common::*;

#[tokio::test]
async fn data_rejected_bounces_accepted_recipients() {
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:<a@example.com>"),
        send("250 ok"),
        expect("DATA"),
        send("554 5.5.1 Error: no valid recipients"),
        expect("RSET"),
        send("250 ok"),
        expect("QUIT"),
        send("221 bye"),
    ]);
    let (r, t) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com"]),
        true,
    )
    .await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "bounced",
            "5.5.1",
            "host mx.example.com[127.0.0.1] said: 554 5.5.1 Error: no valid recipients (in reply to DATA command)"
        )]
    );
}

#[tokio::test]
async fn end_of_data_rejected() {
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        send("354 go ahead"),
        Step::ReadData,
        send("451 4.3.0 Error: queue file write error"),
        expect("QUIT"),
        send("221 bye"),
    ]);
    let (r, t) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com"]),
        true,
    )
    .await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "deferred",
            "4.3.0",
            "host mx.example.com[127.0.0.1] said: 451 4.3.0 Error: queue file write error (in reply to end of DATA command)"
        )]
    );
}

#[tokio::test]
async fn hang_at_data_times_out() {
    let mut s = settings(Protocol::Smtp);
    s.data_init_timeout = Duration::from_millis(300);
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        Step::Sleep(Duration::from_secs(1)),
    ]);
    let (r, _) = run(script, &s, &message(&["a@example.com"]), true).await;
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while sending DATA command"
        )]
    );
    assert!(r.throttle);
}

#[tokio::test]
async fn hang_after_the_dot_times_out() {
    let mut s = settings(Protocol::Smtp);
    s.data_done_timeout = Duration::from_millis(300);
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        send("354 go ahead"),
        Step::ReadData,
        Step::Sleep(Duration::from_secs(1)),
    ]);
    let (r, _) = run(script, &s, &message(&["a@example.com"]), true).await;
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while sending end of data -- message may be sent more than once"
        )]
    );
}

#[tokio::test]
async fn drop_after_the_dot() {
    let mut script = greet_and_ehlo(EHLO_PIPELINING);
    script.extend([
        expect("MAIL FROM:"),
        expect("RCPT TO:"),
        expect("DATA"),
        Step::Send("250 ok\r\n250 ok\r\n354 go ahead\r\n".into()),
        Step::ReadData,
        Step::Close,
    ]);
    let (r, t) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com"]),
        false,
    )
    .await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "kept",
            "4.4.2",
            "lost connection with mx.example.com[127.0.0.1] while sending end of data -- message may be sent more than once"
        )]
    );
}

#[tokio::test]
async fn long_content_lines_are_broken() {
    let content = format!("Subject: x\n\n{}\n", "y".repeat(2500));
    let mut msg = message(&["a@example.com"]);
    msg.content = Box::leak(content.into_bytes().into_boxed_slice());
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        send("354 go"),
        Step::ReadData,
        send("250 ok"),
        expect("QUIT"),
    ]);
    let (_, t) = run(script, &settings(Protocol::Smtp), &msg, true).await;
    let want = format!(
        "Subject: x\r\n\r\n{}\r\n {}\r\n {}\r\n.\r\n",
        "y".repeat(998),
        "y".repeat(997),
        "y".repeat(505)
    );
    assert_eq!(t.data, vec![want.into_bytes()]);
}

#[tokio::test]
async fn eight_bit_to_a_server_without_8bitmime() {
    const EIGHT: &[u8] = b"Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n.\n";
    for (disable, mail, data) in [
        (
            false,
            "MAIL FROM:<sender@example.org>",
            &b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n..\r\n.\r\n"[..],
        ),
        (
            true,
            "MAIL FROM:<sender@example.org> SIZE=92",
            b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n..\r\n.\r\n",
        ),
    ] {
        let mut s = settings(Protocol::Smtp);
        s.disable_mime_output_conversion = disable;
        let mut msg = message(&["a@example.com"]);
        msg.content = EIGHT;
        msg.size = EIGHT.len() as u64;
        msg.encoding = Encoding::EightBit;
        let mut script = greet_and_ehlo("250-mx.example.com\r\n250 SIZE 100000\r\n");
        script.extend([
            expect("MAIL FROM:"),
            send("250 ok"),
            expect("RCPT TO:"),
            send("250 ok"),
            expect("DATA"),
            send("354 go"),
            Step::ReadData,
            send("250 2.0.0 Ok: queued as 8B"),
            expect("QUIT"),
        ]);
        let (r, t) = run(script, &s, &msg, true).await;
        assert_eq!(t.error, None);
        assert_eq!(t.lines[1], mail, "disable_mime_output_conversion = {disable}");
        assert_eq!(
            String::from_utf8_lossy(&t.data[0]),
            String::from_utf8_lossy(data),
            "disable_mime_output_conversion = {disable}"
        );
        assert_eq!(summary(&r), vec![one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as 8B")]);
    }
}

#[tokio::test]
async fn quit_reply_not_awaited_with_skip_quit_response() {
    let mut s = settings(Protocol::Smtp);
    s.skip_quit_response = true;
    s.quit_timeout = Duration::from_secs(30);
    let mut script = greet_and_ehlo(EHLO_PIPELINING);
    script.extend([
        expect("MAIL FROM:"),
        expect("RCPT TO:"),
        expect("DATA"),
        Step::Send("250 ok\r\n250 ok\r\n354 go ahead\r\n".into()),
        Step::ReadData,
        expect("QUIT"),
        send("250 2.0.0 Ok: queued as Q1"),
        // No reply to QUIT: a client that waited would hang here for 30s.
        Step::Sleep(Duration::from_secs(3)),
    ]);
    let started = std::time::Instant::now();
    let server = ScriptedServer::start(script);
    let addr = ([127, 0, 0, 1], server.port).into();
    let (stream, peer) = connect_tcp("mx.example.com", addr, None)
        .await
        .expect("connect");
    let msg = message(&["a@example.com"]);
    let attempt = Attempt {
        final_server: true,
        loop_check: None,
    };
    let r = deliver(stream, &s, &peer, &msg, &attempt).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for the QUIT reply"
    );
    assert_eq!(
        summary(&r),
        vec![one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as Q1")]
    );
    let t = tokio::task::spawn_blocking(move || server.finish())
        .await
        .expect("server");
    assert_eq!(t.error, None);
}

#[tokio::test]
async fn server_rejects_and_closes_during_a_large_content() {
    // 8 MB: more than the socket buffers hold, so the client is still writing when the
    // server hangs up.
    let big: &'static [u8] = Box::leak(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
            .repeat(128 * 1024)
            .into_bytes()
            .into_boxed_slice(),
    );
    let mut msg = message(&["a@example.com"]);
    msg.content = big;
    msg.size = big.len() as u64;
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        send("354 go ahead"),
        send("554 5.7.1 Message rejected: too big for me"),
        Step::Close,
    ]);
    let (r, t) = run(script, &settings(Protocol::Smtp), &msg, true).await;
    assert_eq!(t.error, None);
    // Whether the reply survives the reset depends on timing; both are Postfix's texts.
    let said = one(
        10,
        "bounced",
        "5.7.1",
        "host mx.example.com[127.0.0.1] said: 554 5.7.1 Message rejected: too big for me (in reply to end of DATA command)",
    );
    let lost = one(
        10,
        "deferred",
        "4.4.2",
        "lost connection with mx.example.com[127.0.0.1] while sending message body",
    );
    let got = summary(&r);
    assert!(
        got == vec![said.clone()] || got == vec![lost.clone()],
        "{got:?}"
    );
}

#[tokio::test]
async fn server_stops_reading_the_content() {
    let big: &'static [u8] = Box::leak(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
            .repeat(128 * 1024)
            .into_bytes()
            .into_boxed_slice(),
    );
    let mut s = settings(Protocol::Smtp);
    s.data_xfer_timeout = Duration::from_millis(500);
    let mut msg = message(&["a@example.com"]);
    msg.content = big;
    msg.size = big.len() as u64;
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        send("354 go ahead"),
        Step::Sleep(Duration::from_secs(3)),
    ]);
    let (r, t) = run(script, &s, &msg, true).await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while sending message body"
        )]
    );
    assert!(r.throttle);
}
