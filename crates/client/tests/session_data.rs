//! The client session against a scripted server: DATA, the content on the wire (dot
//! stuffing, long lines, 8BITMIME downgrade), the end of data, timeouts and hang-ups
//! around it, and QUIT.

mod session_common;

use std::time::Duration;

use tern_client::session::{Encoding, Protocol};
use tern_testkit::peers::{Step, expect, send};

use session_common::*;

/// The reply to DATA and to the final dot, and a server that hangs up after the dot.
#[tokio::test]
async fn replies_after_data() {
    check_all(vec![
        Case::new(
            "data_rejected_bounces_accepted_recipients",
            then(
                then(
                    up_to_data(EHLO_PLAIN),
                    [send("554 5.5.1 Error: no valid recipients")],
                ),
                rset_and_quit(),
            ),
            "bounced",
            "5.5.1",
            "host mx.example.com[127.0.0.1] said: 554 5.5.1 Error: no valid recipients (in reply to DATA command)",
        ),
        Case::new(
            "end_of_data_rejected",
            then(
                up_to_data(EHLO_PLAIN),
                [
                    send("354 go ahead"),
                    Step::ReadData,
                    send("451 4.3.0 Error: queue file write error"),
                    expect("QUIT"),
                    send("221 bye"),
                ],
            ),
            "deferred",
            "4.3.0",
            "host mx.example.com[127.0.0.1] said: 451 4.3.0 Error: queue file write error (in reply to end of DATA command)",
        ),
        Case::new(
            "drop_after_the_dot",
            then(pipelined_to_the_dot(), [Step::Close]),
            "kept",
            "4.4.2",
            "lost connection with mx.example.com[127.0.0.1] while sending end of data -- message may be sent more than once",
        )
        .attempt(attempt(false)),
    ])
    .await;
}

/// A server that stops answering at DATA, while it should read the content, or after
/// the dot.
#[tokio::test]
async fn timeouts_around_the_content() {
    check_all(vec![
        Case::new(
            "hang_at_data_times_out",
            then(
                up_to_data(EHLO_PLAIN),
                [Step::Sleep(Duration::from_secs(1))],
            ),
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while sending DATA command",
        )
        .settings(|s| s.data_init_timeout = Duration::from_millis(300))
        .throttles(true)
        .cut_short(),
        Case::new(
            "hang_after_the_dot_times_out",
            then(
                up_to_data(EHLO_PLAIN),
                [
                    send("354 go ahead"),
                    Step::ReadData,
                    Step::Sleep(Duration::from_secs(1)),
                ],
            ),
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while sending end of data -- message may be sent more than once",
        )
        .settings(|s| s.data_done_timeout = Duration::from_millis(300))
        .cut_short(),
        Case::new(
            "server_stops_reading_the_content",
            then(
                up_to_data(EHLO_PLAIN),
                [send("354 go ahead"), Step::Sleep(Duration::from_secs(3))],
            ),
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while sending message body",
        )
        .settings(|s| s.data_xfer_timeout = Duration::from_millis(500))
        .message(|m| set_content(m, big_content(), Encoding::SevenBit))
        .throttles(true),
    ])
    .await;
}

/// A pipelining server that accepts MAIL, RCPT and DATA at once and reads the content.
fn pipelined_to_the_dot() -> Vec<Step> {
    let mut script = greet_and_ehlo(EHLO_PIPELINING);
    script.extend(pipelined(
        "MAIL FROM:",
        &["RCPT TO:"],
        "250 ok\r\n250 ok\r\n354 go ahead\r\n",
    ));
    then(script, [Step::ReadData])
}

/// The script of a server without pipelining that accepts a@example.com and reads the
/// content: `ehlo` is its EHLO reply, `queued` its reply to the final dot.
fn accepting(ehlo: &str, queued: &str) -> Vec<Step> {
    then(
        up_to_data(ehlo),
        [send("354 go"), Step::ReadData, send(queued), expect("QUIT")],
    )
}

#[tokio::test]
async fn long_content_lines_are_broken() {
    let content = format!("Subject: x\n\n{}\n", "y".repeat(2500));
    let mut msg = message(&["a@example.com"]);
    set_content(&mut msg, leak(content.into_bytes()), Encoding::SevenBit);
    let script = accepting(EHLO_PLAIN, "250 ok");
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
        set_content(&mut msg, EIGHT, Encoding::EightBit);
        let script = accepting(
            "250-mx.example.com\r\n250 SIZE 100000\r\n",
            "250 2.0.0 Ok: queued as 8B",
        );
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
    let script = then(
        pipelined_to_the_dot(),
        [
            expect("QUIT"),
            send("250 2.0.0 Ok: queued as Q1"),
            // No reply to QUIT: a client that waited would hang here for 30s.
            Step::Sleep(Duration::from_secs(3)),
        ],
    );
    let msg = message(&["a@example.com"]);
    let p = play(script, HOST, &s, &msg, &attempt(true)).await;
    assert!(p.took < Duration::from_secs(2), "waited for the QUIT reply");
    assert_eq!(
        summary(&p.result),
        vec![one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as Q1")]
    );
    assert_eq!(p.transcript.error, None);
}

#[tokio::test]
async fn server_rejects_and_closes_during_a_large_content() {
    let mut msg = message(&["a@example.com"]);
    set_content(&mut msg, big_content(), Encoding::SevenBit);
    let script = then(
        up_to_data(EHLO_PLAIN),
        [
            send("354 go ahead"),
            send("554 5.7.1 Message rejected: too big for me"),
            Step::Close,
        ],
    );
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
