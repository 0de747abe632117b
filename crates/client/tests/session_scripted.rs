//! The client session against a scripted, sometimes hostile server on 127.0.0.1: the
//! greeting, EHLO/HELO and the envelope; each test checks every recipient's result and
//! Postfix's text for it.

mod session_common;

use std::time::Duration;

use tern_client::session::{Attempt, LoopCheck, Protocol};
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
        let (r, t) = run(
            script,
            &settings(Protocol::Smtp),
            &message(&["a@example.com"]),
            final_server,
        )
        .await;
        assert_eq!(t.error, None);
        let text = "host mx.example.com[127.0.0.1] refused to talk to me: 421 4.3.2 Service not available, closing channel";
        let kind = if final_server { "deferred" } else { "kept" };
        assert_eq!(summary(&r), vec![one(10, kind, "4.3.2", text)]);
        assert_eq!(r.try_next_server(), !final_server);
        assert_eq!(r.throttle, final_server);
        assert!(port_of(&r).starts_with("mx.example.com[127.0.0.1]:"));
    }
}

#[tokio::test]
async fn greeting_5xx_with_and_without_skip() {
    for (skip, kind, dsn) in [(true, "deferred", "4.7.1"), (false, "bounced", "5.7.1")] {
        let script = vec![send("554 5.7.1 go away"), expect("QUIT"), send("221 bye")];
        let mut s = settings(Protocol::Smtp);
        s.skip_5xx_greeting = skip;
        let (r, t) = run(script, &s, &message(&["a@example.com"]), true).await;
        assert_eq!(t.error, None);
        assert_eq!(
            summary(&r),
            vec![one(
                10,
                kind,
                dsn,
                "host mx.example.com[127.0.0.1] refused to talk to me: 554 5.7.1 go away"
            )]
        );
    }
}

#[tokio::test]
async fn greeting_timeout() {
    let mut s = settings(Protocol::Smtp);
    s.helo_timeout = Duration::from_millis(300);
    let script = vec![Step::Sleep(Duration::from_secs(1))];
    let (r, _) = run(script, &s, &message(&["a@example.com"]), true).await;
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "deferred",
            "4.4.2",
            "conversation with mx.example.com[127.0.0.1] timed out while receiving the initial server greeting"
        )]
    );
    assert!(r.throttle);
}

#[tokio::test]
async fn ehlo_5xx_falls_back_to_helo_and_helo_5xx_bounces() {
    let script = vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO client.example.org"),
        send("502 5.5.2 Error: command not recognized"),
        expect("HELO client.example.org"),
        send("550 5.7.1 no thanks"),
        expect("QUIT"),
        send("221 bye"),
    ];
    let (r, t) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com", "b@example.com"]),
        true,
    )
    .await;
    assert_eq!(t.error, None);
    let text = "host mx.example.com[127.0.0.1] refused to talk to me: 550 5.7.1 no thanks";
    assert_eq!(
        summary(&r),
        vec![
            one(10, "bounced", "5.7.1", text),
            one(11, "bounced", "5.7.1", text)
        ]
    );
}

#[tokio::test]
async fn ehlo_421_refuses() {
    let script = vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO"),
        send("421 4.7.0 mx.example.com closing connection"),
        expect("QUIT"),
    ];
    let (r, _) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com"]),
        true,
    )
    .await;
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "deferred",
            "4.7.0",
            "host mx.example.com[127.0.0.1] refused to talk to me: 421 4.7.0 mx.example.com closing connection"
        )]
    );
}

#[tokio::test]
async fn helo_when_greeting_lacks_esmtp_and_always_send_ehlo_is_off() {
    let mut s = settings(Protocol::Smtp);
    s.always_send_ehlo = false;
    let script = vec![
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
    ];
    let (r, t) = run(script, &s, &message(&["a@example.com"]), true).await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as 4Z9")]
    );
}

#[tokio::test]
async fn mail_from_rejected_defers_all_then_rset_quit() {
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:<sender@example.org> BODY=7BIT"),
        send("452 4.3.1 Insufficient system storage"),
        expect("RSET"),
        send("250 ok"),
        expect("QUIT"),
        send("221 bye"),
    ]);
    let (r, t) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com", "b@example.com"]),
        true,
    )
    .await;
    assert_eq!(t.error, None);
    let text = "host mx.example.com[127.0.0.1] said: 452 4.3.1 Insufficient system storage (in reply to MAIL FROM command)";
    assert_eq!(
        summary(&r),
        vec![
            one(10, "deferred", "4.3.1", text),
            one(11, "deferred", "4.3.1", text)
        ]
    );
    assert!(!r.throttle, "a message failure does not throttle the site");
}

/// The server reads MAIL, every RCPT and DATA before it answers: only a pipelining
/// client gets through.
fn mixed_rcpt_script() -> Vec<Step> {
    let mut script = greet_and_ehlo(EHLO_PIPELINING);
    script.extend([
        expect("MAIL FROM:<sender@example.org> SIZE=30 BODY=7BIT"),
        expect("RCPT TO:<a@example.com>"),
        expect("RCPT TO:<b@example.com>"),
        expect("RCPT TO:<c@example.com>"),
        expect("DATA"),
        Step::Send(
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
             550 5.1.1 <b@example.com>: Recipient address rejected: User unknown\r\n\
             450 4.2.0 <c@example.com>: Recipient address rejected: Greylisted\r\n\
             354 End data with <CR><LF>.<CR><LF>\r\n"
                .into(),
        ),
        Step::ReadData,
        expect("QUIT"),
        send("250 2.0.0 Ok: queued as 4Z9"),
        send("221 2.0.0 Bye"),
    ]);
    script
}

#[tokio::test]
async fn rcpt_accepted_rejected_and_greylisted_with_pipelining() {
    for final_server in [true, false] {
        let msg = message(&["a@example.com", "b@example.com", "c@example.com"]);
        let (r, t) = run(
            mixed_rcpt_script(),
            &settings(Protocol::Smtp),
            &msg,
            final_server,
        )
        .await;
        assert_eq!(t.error, None);
        assert_eq!(
            t.data,
            vec![b"Subject: test\r\n\r\nhello\r\n..\r\n...dots\r\n.\r\n".to_vec()]
        );
        let greylisted = "host mx.example.com[127.0.0.1] said: 450 4.2.0 <c@example.com>: Recipient address rejected: Greylisted (in reply to RCPT TO command)";
        assert_eq!(
            summary(&r),
            vec![
                one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as 4Z9"),
                one(
                    11,
                    "bounced",
                    "5.1.1",
                    "host mx.example.com[127.0.0.1] said: 550 5.1.1 <b@example.com>: Recipient address rejected: User unknown (in reply to RCPT TO command)"
                ),
                one(
                    12,
                    if final_server { "deferred" } else { "kept" },
                    "4.2.0",
                    greylisted
                ),
            ]
        );
        assert_eq!(r.try_next_server(), !final_server);
        assert!(!r.throttle);
        assert!(r.features.pipelining);
    }
}

#[tokio::test]
async fn all_rcpts_rejected_without_pipelining_sends_no_data() {
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:<a@example.com>"),
        send("550 5.1.1 no such user"),
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
            "5.1.1",
            "host mx.example.com[127.0.0.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)"
        )]
    );
}

#[tokio::test]
async fn slow_trickle_of_replies_within_the_timeout() {
    let mut s = settings(Protocol::Smtp);
    // Each byte comes well within the timeout, the whole replies do not.
    s.helo_timeout = Duration::from_millis(400);
    s.mail_timeout = Duration::from_millis(400);
    let pause = Duration::from_millis(20);
    let script = vec![
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
    ];
    let (r, t) = run(script, &s, &message(&["a@example.com"]), true).await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as SLOW")]
    );
}

#[tokio::test]
async fn huge_reply_lines_are_cut_at_line_length_limit() {
    let huge = "x".repeat(100 * 1024);
    let script = vec![
        send(&format!("220 mx.example.com ESMTP {huge}")),
        expect("EHLO"),
        Step::Send(EHLO_PLAIN.into()),
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send(&format!("550 5.1.1 {huge}")),
        expect("RSET"),
        send("250 ok"),
        expect("QUIT"),
        send("221 bye"),
    ];
    let (r, t) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com"]),
        true,
    )
    .await;
    assert_eq!(t.error, None);
    let kept = format!("550 5.1.1 {}", &huge[..2048 - 10]);
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "bounced",
            "5.1.1",
            &format!("host mx.example.com[127.0.0.1] said: {kept} (in reply to RCPT TO command)")
        )]
    );
}

#[tokio::test]
async fn smtputf8_required_but_not_offered() {
    let mut msg = message(&["a@example.com"]);
    msg.smtputf8_requested = true;
    msg.smtputf8_required = true;
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([expect("QUIT"), send("221 bye")]);
    let (r, t) = run(script, &settings(Protocol::Smtp), &msg, false).await;
    assert_eq!(t.error, None);
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "bounced",
            "5.6.7",
            "SMTPUTF8 is required, but was not offered by host mx.example.com[127.0.0.1]"
        )]
    );
}

#[tokio::test]
async fn message_larger_than_the_servers_size() {
    let script = greet_and_ehlo("250-mx.example.com\r\n250 SIZE 10\r\n");
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
            "5.3.4",
            "message size 30 exceeds size limit 10 of server mx.example.com[127.0.0.1]"
        )]
    );
}

#[tokio::test]
async fn protocol_error_when_data_gets_250() {
    let mut script = greet_and_ehlo(EHLO_PLAIN);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        send("250 2.0.0 what?"),
        expect("RSET"),
        send("250 ok"),
        expect("QUIT"),
    ]);
    let (r, _) = run(
        script,
        &settings(Protocol::Smtp),
        &message(&["a@example.com"]),
        true,
    )
    .await;
    assert_eq!(
        summary(&r),
        vec![one(
            10,
            "bounced",
            "5.5.0",
            "Protocol error: host mx.example.com[127.0.0.1] said: 250 2.0.0 what? (in reply to DATA command)"
        )]
    );
}

#[tokio::test]
async fn ehlo_reply_with_my_own_name_is_a_loop() {
    for (best_mx, kind, dsn) in [(true, "bounced", "5.4.6"), (false, "deferred", "4.4.6")] {
        let script = vec![
            send("220 client.example.org ESMTP"),
            expect("EHLO client.example.org"),
            Step::Send("250-CLIENT.example.org\r\n250 PIPELINING\r\n".into()),
            expect("QUIT"),
            send("221 bye"),
        ];
        let attempt = Attempt {
            final_server: true,
            loop_check: Some(LoopCheck {
                nexthop: "example.com".into(),
                best_mx,
            }),
        };
        let (r, t) = run_attempt(
            script,
            &settings(Protocol::Smtp),
            &message(&["a@example.com"]),
            &attempt,
        )
        .await;
        assert_eq!(t.error, None);
        assert_eq!(
            summary(&r),
            vec![one(
                10,
                kind,
                dsn,
                "mail for example.com loops back to myself"
            )]
        );
    }
}
