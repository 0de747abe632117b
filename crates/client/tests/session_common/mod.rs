//! Shared by the session_* tests: settings with short timeouts, a test message, a runner
//! that plays a script on a [`ScriptedServer`] and summaries of the results.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use tern_client::session::{
    Attempt, Encoding, Message, Outcome, Protocol, Recipient, SessionResult, Settings, connect_tcp,
    deliver,
};
use tern_queue::file::Notify;
use tern_testkit::peers::{ScriptedServer, Step, Transcript, expect, send};

pub fn settings(protocol: Protocol) -> Settings {
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

pub const CONTENT: &[u8] = b"Subject: test\n\nhello\n.\n..dots\n";

pub fn message(rcpts: &[&str]) -> Message<'static> {
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

pub async fn run(
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

pub async fn run_attempt(
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
pub fn summary(r: &SessionResult) -> Vec<(u32, &'static str, String, String)> {
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

pub fn one(
    index: u32,
    kind: &'static str,
    dsn: &str,
    text: &str,
) -> (u32, &'static str, String, String) {
    (index, kind, dsn.to_owned(), text.to_owned())
}

pub const EHLO_PIPELINING: &str =
    "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n";
pub const EHLO_PLAIN: &str = "250-mx.example.com\r\n250 8BITMIME\r\n";

pub fn greet_and_ehlo(ehlo: &str) -> Vec<Step> {
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO client.example.org"),
        Step::Send(ehlo.to_owned()),
    ]
}

pub fn port_of(r: &SessionResult) -> String {
    r.relay.clone()
}
