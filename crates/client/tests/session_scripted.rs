//! The client session against a scripted, sometimes hostile server on 127.0.0.1: the
//! greeting, EHLO/HELO and the envelope; each test checks every recipient's result and
//! Postfix's text for it.

mod session_common;

use std::time::Duration;

use tern_client::session::{Attempt, LoopCheck};
use tern_testkit::peers::{Step, expect, send};

use session_common::*;

#[tokio::test]
async fn greeting_421_defers_or_keeps_and_quits() {
    for final_server in [true, false] {
        let script = vec![
            send("421 4.3.2 Service not available, closing channel"),
            expect("QUIT"),
            send("221 bye"),
        ];
        let (r, _) = Case::new(
            "greeting_421_defers_or_keeps_and_quits",
            script,
            if final_server { "deferred" } else { "kept" },
            "4.3.2",
            "host mx.example.com[127.0.0.1] refused to talk to me: 421 4.3.2 Service not available, closing channel",
        )
        .attempt(attempt(final_server))
        .throttles(final_server)
        .check()
        .await;
        assert_eq!(r.try_next_server(), !final_server);
        assert!(port_of(&r).starts_with("mx.example.com[127.0.0.1]:"));
    }
}

/// The greeting and the EHLO or HELO exchange.
#[tokio::test]
async fn greeting_and_ehlo_results() {
    let go_away = || vec![send("554 5.7.1 go away"), expect("QUIT"), send("221 bye")];
    let refused = "host mx.example.com[127.0.0.1] refused to talk to me: 554 5.7.1 go away";
    let no_thanks = "host mx.example.com[127.0.0.1] refused to talk to me: 550 5.7.1 no thanks";
    let mut cases = vec![
        Case::new(
            "greeting_5xx with skip",
            go_away(),
            "deferred",
            "4.7.1",
            refused,
        )
        .settings(|s| s.skip_5xx_greeting = true),
        Case::new(
            "greeting_5xx without skip",
            go_away(),
            "bounced",
            "5.7.1",
            refused,
        )
        .settings(|s| s.skip_5xx_greeting = false),
        Case::new(
            "greeting_timeout",
            vec![Step::Sleep(Duration::from_secs(1))],
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while receiving the initial server greeting",
        )
        .settings(|s| s.helo_timeout = Duration::from_millis(300))
        .throttles(true)
        .cut_short(),
        Case::many(
            "ehlo_5xx_falls_back_to_helo_and_helo_5xx_bounces",
            vec![
                send("220 mx.example.com ESMTP"),
                expect("EHLO client.example.org"),
                send("502 5.5.2 Error: command not recognized"),
                expect("HELO client.example.org"),
                send("550 5.7.1 no thanks"),
                expect("QUIT"),
                send("221 bye"),
            ],
            &["a@example.com", "b@example.com"],
            vec![
                one(10, "bounced", "5.7.1", no_thanks),
                one(11, "bounced", "5.7.1", no_thanks),
            ],
        ),
        Case::new(
            "ehlo_421_refuses",
            vec![
                send("220 mx.example.com ESMTP"),
                expect("EHLO"),
                send("421 4.7.0 mx.example.com closing connection"),
                expect("QUIT"),
            ],
            "deferred",
            "4.7.0",
            "host mx.example.com[127.0.0.1] refused to talk to me: 421 4.7.0 mx.example.com closing connection",
        )
        .cut_short(),
        Case::new(
            "helo_when_greeting_lacks_esmtp_and_always_send_ehlo_is_off",
            vec![
                send("220 mx.example.com SMTP"),
                expect("HELO client.example.org"),
                send("250 mx.example.com"),
                expect("MAIL FROM:<sender@example.org>"),
                send("250 ok"),
                expect("RCPT TO:<a@example.com>"),
                send("250 ok"),
                expect("DATA"),
                send("354 go"),
                Step::ReadData,
                send("250 2.0.0 Ok: queued as 4Z9"),
                expect("QUIT"),
                send("221 bye"),
            ],
            "sent",
            "2.0.0",
            "250 2.0.0 Ok: queued as 4Z9",
        )
        .settings(|s| s.always_send_ehlo = false),
    ];
    // An EHLO reply with my own name: a loop (smtp_helo.c), a bounce only when this is
    // the best MX.
    for (best_mx, kind, dsn) in [(true, "bounced", "5.4.6"), (false, "deferred", "4.4.6")] {
        let loop_check = Some(LoopCheck {
            nexthop: "example.com".into(),
            best_mx,
        });
        cases.push(
            Case::new(
                "ehlo_reply_with_my_own_name_is_a_loop",
                vec![
                    send("220 client.example.org ESMTP"),
                    expect("EHLO client.example.org"),
                    Step::Send("250-CLIENT.example.org\r\n250 PIPELINING\r\n".into()),
                    expect("QUIT"),
                    send("221 bye"),
                ],
                kind,
                dsn,
                "mail for example.com loops back to myself",
            )
            .attempt(Attempt {
                final_server: true,
                loop_check,
            }),
        );
    }
    check_all(cases).await;
}

/// MAIL and RCPT refused, replies that trickle in or are too long, and the checks the
/// client makes itself before it sends MAIL.
#[tokio::test]
async fn envelope_results() {
    let storage = "host mx.example.com[127.0.0.1] said: 452 4.3.1 Insufficient system storage (in reply to MAIL FROM command)";
    let huge = "x".repeat(100 * 1024);
    let pause = Duration::from_millis(20);
    check_all(vec![
        Case::many(
            "mail_from_rejected_defers_all_then_rset_quit",
            then(
                then(
                    greet_and_ehlo(EHLO_PLAIN),
                    [
                        expect("MAIL FROM:<sender@example.org> BODY=7BIT"),
                        send("452 4.3.1 Insufficient system storage"),
                    ],
                ),
                rset_and_quit(),
            ),
            &["a@example.com", "b@example.com"],
            vec![
                one(10, "deferred", "4.3.1", storage),
                one(11, "deferred", "4.3.1", storage),
            ],
        )
        // A message failure does not throttle the site.
        .throttles(false),
        Case::new(
            "all_rcpts_rejected_without_pipelining_sends_no_data",
            rcpt_rejected("220 mx.example.com ESMTP", "550 5.1.1 no such user"),
            "bounced",
            "5.1.1",
            "host mx.example.com[127.0.0.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)",
        ),
        // Each byte comes well within the timeout, the whole replies do not.
        Case::new(
            "slow_trickle_of_replies_within_the_timeout",
            vec![
                Step::Trickle("220 mx.example.com ESMTP\r\n".into(), pause),
                expect("EHLO"),
                Step::Trickle(EHLO_PLAIN.into(), pause),
                expect("MAIL FROM:"),
                Step::Trickle("250 2.1.0 Ok\r\n".into(), pause),
                expect("RCPT TO:"),
                send("250 ok"),
                expect("DATA"),
                send("354 go"),
                Step::ReadData,
                Step::Trickle("250 2.0.0 Ok: queued as SLOW\r\n".into(), pause),
                expect("QUIT"),
                send("221 bye"),
            ],
            "sent",
            "2.0.0",
            "250 2.0.0 Ok: queued as SLOW",
        )
        .settings(|s| {
            s.helo_timeout = Duration::from_millis(400);
            s.mail_timeout = Duration::from_millis(400);
        }),
        Case::new(
            "huge_reply_lines_are_cut_at_line_length_limit",
            rcpt_rejected(
                &format!("220 mx.example.com ESMTP {huge}"),
                &format!("550 5.1.1 {huge}"),
            ),
            "bounced",
            "5.1.1",
            &format!(
                "host mx.example.com[127.0.0.1] said: 550 5.1.1 {} (in reply to RCPT TO command)",
                &huge[..2048 - 10]
            ),
        ),
        Case::new(
            "smtputf8_required_but_not_offered",
            then(greet_and_ehlo(EHLO_PLAIN), [expect("QUIT"), send("221 bye")]),
            "bounced",
            "5.6.7",
            "SMTPUTF8 is required, but was not offered by host mx.example.com[127.0.0.1]",
        )
        .message(|m| {
            m.smtputf8_requested = true;
            m.smtputf8_required = true;
        })
        .attempt(attempt(false)),
        Case::new(
            "message_larger_than_the_servers_size",
            greet_and_ehlo("250-mx.example.com\r\n250 SIZE 10\r\n"),
            "bounced",
            "5.3.4",
            "message size 30 exceeds size limit 10 of server mx.example.com[127.0.0.1]",
        ),
        Case::new(
            "protocol_error_when_data_gets_250",
            then(
                up_to_data(EHLO_PLAIN),
                [
                    send("250 2.0.0 what?"),
                    expect("RSET"),
                    send("250 ok"),
                    expect("QUIT"),
                ],
            ),
            "bounced",
            "5.5.0",
            "Protocol error: host mx.example.com[127.0.0.1] said: 250 2.0.0 what? (in reply to DATA command)",
        )
        .cut_short(),
    ])
    .await;
}

/// A server without pipelining that greets with `greeting`, rejects a@example.com with
/// `reply` and wants no DATA.
fn rcpt_rejected(greeting: &str, reply: &str) -> Vec<Step> {
    let script = vec![
        send(greeting),
        expect("EHLO client.example.org"),
        Step::Send(EHLO_PLAIN.into()),
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:<a@example.com>"),
        send(reply),
    ];
    then(script, rset_and_quit())
}

/// The server reads MAIL, every RCPT and DATA before it answers: only a pipelining
/// client gets through.
fn mixed_rcpt_script() -> Vec<Step> {
    let mut script = greet_and_ehlo(EHLO_PIPELINING);
    script.extend(pipelined(
        "MAIL FROM:<sender@example.org> SIZE=30 BODY=7BIT",
        &[
            "RCPT TO:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "RCPT TO:<c@example.com>",
        ],
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
         550 5.1.1 <b@example.com>: Recipient address rejected: User unknown\r\n\
         450 4.2.0 <c@example.com>: Recipient address rejected: Greylisted\r\n\
         354 End data with <CR><LF>.<CR><LF>\r\n",
    ));
    then(
        script,
        [
            Step::ReadData,
            expect("QUIT"),
            send("250 2.0.0 Ok: queued as 4Z9"),
            send("221 2.0.0 Bye"),
        ],
    )
}

#[tokio::test]
async fn rcpt_accepted_rejected_and_greylisted_with_pipelining() {
    let sent = one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as 4Z9");
    let unknown = one(
        11,
        "bounced",
        "5.1.1",
        "host mx.example.com[127.0.0.1] said: 550 5.1.1 <b@example.com>: Recipient address rejected: User unknown (in reply to RCPT TO command)",
    );
    let greylisted = "host mx.example.com[127.0.0.1] said: 450 4.2.0 <c@example.com>: Recipient address rejected: Greylisted (in reply to RCPT TO command)";
    for final_server in [true, false] {
        let kind = if final_server { "deferred" } else { "kept" };
        let want = vec![
            sent.clone(),
            unknown.clone(),
            one(12, kind, "4.2.0", greylisted),
        ];
        let (r, t) = Case::many(
            "rcpt_accepted_rejected_and_greylisted_with_pipelining",
            mixed_rcpt_script(),
            &["a@example.com", "b@example.com", "c@example.com"],
            want,
        )
        .attempt(attempt(final_server))
        .throttles(false)
        .check()
        .await;
        assert_eq!(
            t.data,
            vec![b"Subject: test\r\n\r\nhello\r\n..\r\n...dots\r\n.\r\n".to_vec()]
        );
        assert_eq!(r.try_next_server(), !final_server);
        assert!(r.features.pipelining);
    }
}
