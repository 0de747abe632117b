//! The client session against a scripted, sometimes hostile server on 127.0.0.1: each test
//! plays a conversation and checks every recipient's result and Postfix's text for it.

use std::time::Duration;

use tern_client::session::{
    Attempt, Encoding, LoopCheck, Message, Outcome, Protocol, Recipient, SessionResult, Settings,
    connect_tcp, deliver,
};
use tern_queue::file::Notify;
use tern_testkit::peers::{ScriptedServer, Step, Transcript, expect, send};

fn settings(protocol: Protocol) -> Settings {
    let t = Duration::from_secs(5);
    Settings {
        protocol,
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

const CONTENT: &[u8] = b"Subject: test\n\nhello\n.\n..dots\n";

fn message(rcpts: &[&str]) -> Message<'static> {
    Message {
        sender: "sender@example.org".into(),
        recipients: rcpts
            .iter()
            .enumerate()
            .map(|(i, a)| Recipient {
                index: u32::try_from(i).expect("few recipients") + 10,
                address: (*a).to_owned(),
                orcpt: None,
                original: String::new(),
                notify: Notify(0),
            })
            .collect(),
        envid: None,
        ret: None,
        size: CONTENT.len() as u64,
        content: CONTENT,
        encoding: Encoding::SevenBit,
        smtputf8_requested: false,
        smtputf8_required: false,
    }
}

async fn run(
    script: Vec<Step>,
    settings: &Settings,
    msg: &Message<'_>,
    final_server: bool,
) -> (SessionResult, Transcript) {
    let attempt = Attempt {
        final_server,
        loop_check: None,
    };
    run_attempt(script, settings, msg, &attempt).await
}

async fn run_attempt(
    script: Vec<Step>,
    settings: &Settings,
    msg: &Message<'_>,
    attempt: &Attempt,
) -> (SessionResult, Transcript) {
    let server = ScriptedServer::start(script);
    let addr = ([127, 0, 0, 1], server.port).into();
    let (stream, peer) = connect_tcp("mx.example.com", addr, settings.connect_timeout)
        .await
        .expect("connect to the scripted server");
    let result = tokio::time::timeout(
        Duration::from_mins(1),
        deliver(stream, settings, &peer, msg, attempt),
    )
    .await
    .expect("the session ends");
    let transcript = tokio::task::spawn_blocking(move || server.finish())
        .await
        .expect("server thread");
    (result, transcript)
}

/// (kind, dsn, text) of each recipient, in order.
fn summary(r: &SessionResult) -> Vec<(u32, &'static str, String, String)> {
    r.recipients
        .iter()
        .map(|r| {
            let kind = match &r.outcome {
                Outcome::Sent { .. } => "sent",
                Outcome::Deferred(_) => "deferred",
                Outcome::Bounced(_) => "bounced",
                Outcome::Kept(_) => "kept",
            };
            let s = r.outcome.status();
            (r.index, kind, s.dsn.clone(), s.text.clone())
        })
        .collect()
}

fn one(
    index: u32,
    kind: &'static str,
    dsn: &str,
    text: &str,
) -> (u32, &'static str, String, String) {
    (index, kind, dsn.to_owned(), text.to_owned())
}

const EHLO_PIPELINING: &str =
    "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n";
const EHLO_PLAIN: &str = "250-mx.example.com\r\n250 8BITMIME\r\n";

fn greet_and_ehlo(ehlo: &str) -> Vec<Step> {
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO client.example.org"),
        Step::Send(ehlo.to_owned()),
    ]
}

fn port_of(r: &SessionResult) -> String {
    r.relay.clone()
}

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
async fn lmtp_one_reply_per_accepted_recipient() {
    let script = vec![
        send("220 lmtp.example.com LMTP"),
        expect("LHLO client.example.org"),
        Step::Send("250-lmtp.example.com\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".into()),
        expect("MAIL FROM:<sender@example.org>"),
        expect("RCPT TO:<a@example.com>"),
        expect("RCPT TO:<b@example.com>"),
        expect("RCPT TO:<c@example.com>"),
        expect("DATA"),
        Step::Send(
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@example.com>: User unknown\r\n\
             250 2.1.5 Ok\r\n354 go\r\n"
                .into(),
        ),
        Step::ReadData,
        expect("QUIT"),
        Step::Send(
            "250 2.0.0 <a@example.com> Saved\r\n452 4.2.2 <c@example.com> Mailbox full\r\n221 bye\r\n"
                .into(),
        ),
    ];
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
    let msg = message(&["a@example.com"]);
    let attempt = Attempt {
        final_server: true,
        loop_check: None,
    };
    let r = deliver(stream, &s, &peer, &msg, &attempt).await;
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
