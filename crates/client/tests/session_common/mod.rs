//! Shared by the session_* tests: settings with short timeouts, test messages, runners
//! that hold a session against a [`ScriptedServer`] or any loopback peer, the scripts'
//! common openings, summaries of the results, and [`Case`], one row of a table of
//! scripted conversations that each end in a known result for every recipient.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tern_client::session::{
    Attempt, Encoding, Message, Outcome, Protocol, Recipient, SessionResult, Settings, connect_tcp,
    deliver,
};
use tern_queue::file::Notify;
use tern_testkit::peers::{ScriptedServer, Step, Transcript, expect, send};

/// The host name the scripted server is connected under, as the result texts name it.
pub const HOST: &str = "mx.example.com";

/// Settings for `protocol` with 5 s timeouts: room for a loopback peer, short enough for
/// the tests that hang.
pub fn settings(protocol: Protocol) -> Settings {
    settings_within(protocol, Duration::from_secs(5))
}

/// Settings with every timeout `t` and the defaults Postfix's smtp(8) has otherwise (but
/// skip_quit_response off, so that the scripts see QUIT answered).
pub fn settings_within(protocol: Protocol, t: Duration) -> Settings {
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

/// [`CONTENT`] from sender@example.org to `rcpts`, numbered from 10.
pub fn message(rcpts: &[&str]) -> Message<'static> {
    message_from(10, rcpts, CONTENT)
}

/// A 7-bit `content` from sender@example.org to `rcpts`, numbered from `first_index`,
/// without DSN parameters.
pub fn message_from(
    first_index: u32,
    rcpts: &[impl AsRef<str>],
    content: &'static [u8],
) -> Message<'static> {
    Message {
        sender: "sender@example.org".into(),
        recipients: rcpts
            .iter()
            .zip(first_index..)
            .map(|(a, index)| Recipient {
                index,
                address: a.as_ref().to_owned(),
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
        verify: false,
    }
}

/// Gives `msg` another content (and its size) in `encoding`.
pub fn set_content(msg: &mut Message<'static>, content: &'static [u8], encoding: Encoding) {
    msg.content = content;
    msg.size = content.len() as u64;
    msg.encoding = encoding;
}

/// `bytes` for as long as the test runs (a [`Message`] borrows its content).
pub fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

/// 8 MB of 65-byte lines: more than the socket buffers hold, so the client is still
/// writing when a server stops reading or hangs up.
pub fn big_content() -> &'static [u8] {
    leak(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
            .repeat(128 * 1024)
            .into_bytes(),
    )
}

/// One attempt, to the last server (`final_server`) or not, without the loop check.
pub fn attempt(final_server: bool) -> Attempt {
    Attempt {
        final_server,
        loop_check: None,
    }
}

/// Connects to 127.0.0.1:`port` under the name `host` and holds one session.
pub async fn deliver_tcp(
    host: &str,
    port: u16,
    settings: &Settings,
    msg: &Message<'_>,
    attempt: &Attempt,
) -> SessionResult {
    let (stream, peer) = connect_tcp(
        host,
        ([127, 0, 0, 1], port).into(),
        settings.connect_timeout,
    )
    .await
    .expect("connect to the test server");
    tokio::time::timeout(
        Duration::from_mins(1),
        deliver(stream, settings, &peer, msg, attempt),
    )
    .await
    .expect("the session ends")
}

/// A session held against a scripted server.
pub struct Played {
    pub result: SessionResult,
    pub transcript: Transcript,
    /// From the connect to the end of the session (not the end of the script).
    pub took: Duration,
}

/// Holds a session with a [`ScriptedServer`] playing `script`, connected under `host`.
pub async fn play(
    script: Vec<Step>,
    host: &str,
    settings: &Settings,
    msg: &Message<'_>,
    attempt: &Attempt,
) -> Played {
    let server = ScriptedServer::start(script);
    let started = Instant::now();
    let result = deliver_tcp(host, server.port, settings, msg, attempt).await;
    let took = started.elapsed();
    let transcript = tokio::task::spawn_blocking(move || server.finish())
        .await
        .expect("server thread");
    Played {
        result,
        transcript,
        took,
    }
}

/// [`play`] under [`HOST`], without the loop check.
pub async fn run(
    script: Vec<Step>,
    settings: &Settings,
    msg: &Message<'_>,
    final_server: bool,
) -> (SessionResult, Transcript) {
    run_attempt(script, settings, msg, &attempt(final_server)).await
}

/// [`play`] under [`HOST`].
pub async fn run_attempt(
    script: Vec<Step>,
    settings: &Settings,
    msg: &Message<'_>,
    attempt: &Attempt,
) -> (SessionResult, Transcript) {
    let p = play(script, HOST, settings, msg, attempt).await;
    (p.result, p.transcript)
}

/// A recipient's result: (index, kind, dsn, text).
pub type Summary = (u32, &'static str, String, String);

/// "sent", "deferred", "bounced" or "kept".
pub fn kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Sent { .. } => "sent",
        Outcome::Deferred(_) => "deferred",
        Outcome::Bounced(_) => "bounced",
        Outcome::Kept(_) => "kept",
    }
}

/// (index, kind, dsn, text) of each recipient, in order.
pub fn summary(r: &SessionResult) -> Vec<Summary> {
    r.recipients
        .iter()
        .map(|r| {
            let s = r.outcome.status();
            (r.index, kind(&r.outcome), s.dsn.clone(), s.text.clone())
        })
        .collect()
}

pub fn one(index: u32, kind: &'static str, dsn: &str, text: &str) -> Summary {
    (index, kind, dsn.to_owned(), text.to_owned())
}

pub const EHLO_PIPELINING: &str =
    "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n";
pub const EHLO_PLAIN: &str = "250-mx.example.com\r\n250 8BITMIME\r\n";

/// The greeting, `EHLO client.example.org` and the `ehlo` reply (CRLF lines).
pub fn greet_and_ehlo(ehlo: &str) -> Vec<Step> {
    greeting("EHLO client.example.org", ehlo)
}

/// The greeting, an EHLO or LHLO command starting with `command`, and the `ehlo` reply.
pub fn greeting(command: &str, ehlo: &str) -> Vec<Step> {
    vec![
        send("220 mx.example.com ESMTP"),
        expect(command),
        Step::Send(ehlo.to_owned()),
    ]
}

/// [`greet_and_ehlo`], MAIL and RCPT each answered `250 ok` in turn (no pipelining), up to
/// the DATA command.
pub fn up_to_data(ehlo: &str) -> Vec<Step> {
    let mut script = greet_and_ehlo(ehlo);
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:<a@example.com>"),
        send("250 ok"),
        expect("DATA"),
    ]);
    script
}

/// MAIL FROM starting with `mail`, one RCPT TO per `rcpts` prefix and DATA, read as one
/// pipelined group before `replies` (CRLF lines) answer them all at once.
pub fn pipelined(mail: &str, rcpts: &[&str], replies: &str) -> Vec<Step> {
    let mut script = vec![expect(mail)];
    script.extend(rcpts.iter().map(|r| expect(r)));
    script.extend([expect("DATA"), Step::Send(replies.to_owned())]);
    script
}

/// The end of a failed transaction: RSET and QUIT, both answered.
pub fn rset_and_quit() -> [Step; 4] {
    [
        expect("RSET"),
        send("250 ok"),
        expect("QUIT"),
        send("221 bye"),
    ]
}

/// `script` followed by `rest`.
pub fn then(mut script: Vec<Step>, rest: impl IntoIterator<Item = Step>) -> Vec<Step> {
    script.extend(rest);
    script
}

pub fn port_of(r: &SessionResult) -> String {
    r.relay.clone()
}

/// One scripted conversation and what it must end in: a row of a test table. By default
/// an SMTP session with 5 s timeouts for [`message`] to a@example.com (index 10), to the
/// last server, whose script runs as written.
pub struct Case {
    name: &'static str,
    script: Vec<Step>,
    settings: Settings,
    msg: Message<'static>,
    attempt: Attempt,
    want: Vec<Summary>,
    throttle: Option<bool>,
    clean: bool,
}

impl Case {
    /// a@example.com ends in `kind` with `dsn` and `text`.
    pub fn new(
        name: &'static str,
        script: Vec<Step>,
        kind: &'static str,
        dsn: &str,
        text: &str,
    ) -> Case {
        Case::many(
            name,
            script,
            &["a@example.com"],
            vec![one(10, kind, dsn, text)],
        )
    }

    /// [`message`] to `rcpts`, whose results are `want`, in order.
    pub fn many(name: &'static str, script: Vec<Step>, rcpts: &[&str], want: Vec<Summary>) -> Case {
        Case {
            name,
            script,
            settings: settings(Protocol::Smtp),
            msg: message(rcpts),
            attempt: attempt(true),
            want,
            throttle: None,
            clean: true,
        }
    }

    pub fn settings(mut self, tune: impl FnOnce(&mut Settings)) -> Case {
        tune(&mut self.settings);
        self
    }

    pub fn message(mut self, tune: impl FnOnce(&mut Message<'static>)) -> Case {
        tune(&mut self.msg);
        self
    }

    pub fn attempt(mut self, attempt: Attempt) -> Case {
        self.attempt = attempt;
        self
    }

    /// The result must (or must not) throttle the destination.
    pub fn throttles(mut self, throttle: bool) -> Case {
        self.throttle = Some(throttle);
        self
    }

    /// The script need not run to its end (the client gives up first).
    pub fn cut_short(mut self) -> Case {
        self.clean = false;
        self
    }

    /// Holds the session and checks the results; returns them for further checks.
    pub async fn check(self) -> (SessionResult, Transcript) {
        let name = self.name;
        let (r, t) = run_attempt(self.script, &self.settings, &self.msg, &self.attempt).await;
        if self.clean {
            assert_eq!(t.error, None, "{name}");
        }
        assert_eq!(summary(&r), self.want, "{name}");
        if let Some(throttle) = self.throttle {
            assert_eq!(r.throttle, throttle, "{name}: throttle");
        }
        (r, t)
    }
}

/// Checks every case, one after the other.
pub async fn check_all(cases: Vec<Case>) {
    for case in cases {
        case.check().await;
    }
}
