//! Side by side with Debian's Postfix: the same scripted server conversation is held
//! once by Postfix's smtp(8) (a private instance relaying to the script with relayhost)
//! and once by Tern's session; the `dsn=` and `status=... (TEXT)` of each recipient in
//! Postfix's log must equal Tern's results. Needs root and Debian's postfix.

mod session_common;

use std::time::Duration;

use tern_client::session::{Encoding, Outcome, Protocol, Settings};
use tern_testkit::peers::{ScriptedServer, Step, expect, send};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_for};

use session_common::*;

const RCPTS: [&str; 3] = ["a@example.com", "b@example.com", "c@example.com"];

/// (recipient, dsn, status, text) as Postfix logs them: `to=<a>, ... dsn=X, status=Y (T)`.
fn postfix_statuses(
    script: Vec<Step>,
    rcpts: &[&str],
    extra: &str,
) -> Vec<(String, String, String, String)> {
    let server = ScriptedServer::start(script);
    let pf = PostfixInstance::start(&format!(
        "relayhost = [127.0.0.1]:{}\nsmtp_connect_timeout = 5s\n{extra}",
        server.port
    ))
    .expect("private Postfix");
    smtplib_send(
        pf.port(),
        "sender@example.org",
        rcpts,
        "Subject: t\r\n\r\nhello\r\n",
    );
    let log = wait_for(|| pf.maillog(), " status=", rcpts.len());
    let mut out: Vec<_> = log
        .lines()
        .filter(|l| l.contains("postfix/smtp[") && l.contains(" status="))
        .map(|l| {
            let field = |name: &str| {
                let start = l.find(name).map_or(l.len(), |p| p + name.len());
                let rest = &l[start..];
                rest[..rest.find([',', ' ']).unwrap_or(rest.len())].to_owned()
            };
            let to = field("to=<").trim_end_matches('>').to_owned();
            let text = l
                .find(" (")
                .map(|p| {
                    l[p + 2..]
                        .strip_suffix(')')
                        .unwrap_or(&l[p + 2..])
                        .to_owned()
                })
                .unwrap_or_default();
            (to, field("dsn="), field("status="), text)
        })
        .collect();
    out.sort();
    drop(server);
    out
}

async fn tern_statuses(
    script: Vec<Step>,
    rcpts: &[&str],
    tune: fn(&mut Settings),
) -> Vec<(String, String, String, String)> {
    let mut s = settings(Protocol::Smtp);
    s.skip_quit_response = true;
    tune(&mut s);
    let p = play(script, "127.0.0.1", &s, &message(rcpts), &attempt(true)).await;
    let mut out: Vec<_> = p
        .result
        .recipients
        .iter()
        .map(|rr| {
            let st = rr.outcome.status();
            let to = rcpts[(rr.index - 10) as usize].to_owned();
            (
                to,
                st.dsn.clone(),
                kind(&rr.outcome).to_owned(),
                st.text.clone(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn compare(script: fn() -> Vec<Step>) {
    compare_with(script, "", |_| {}).await;
}

/// `extra` main.cf lines for Postfix and `tune` for Tern's settings must say the same.
async fn compare_with(script: fn() -> Vec<Step>, extra: &'static str, tune: fn(&mut Settings)) {
    let want = tokio::task::spawn_blocking(move || postfix_statuses(script(), &RCPTS, extra))
        .await
        .expect("postfix side");
    assert_eq!(want.len(), RCPTS.len(), "Postfix logged {want:?}");
    let mut got = tern_statuses(script(), &RCPTS, tune).await;
    for (g, w) in got.iter_mut().zip(&want) {
        // Postfix's logger cuts each record at 2000 characters (msg_logger.c,
        // MSG_LOGGER_RECLEN): a longer text can only be compared up to the cut.
        if w.3.len() > 1800 && g.3.len() > w.3.len() {
            g.3.truncate(w.3.len());
        }
    }
    assert_eq!(got, want);
}

/// The greeting, any EHLO and the `ehlo` reply.
fn greet(ehlo: &str) -> Vec<Step> {
    greeting("EHLO ", ehlo)
}

/// A pipelining server that reads MAIL, the three RCPTs and DATA, answers with
/// `replies`, and reads the content.
fn three_rcpts_pipelined(rcpts: [&str; 3], replies: &str) -> Vec<Step> {
    let mut script = greet("250-mx.example.com\r\n250 PIPELINING\r\n");
    script.extend(pipelined("MAIL FROM:", &rcpts, replies));
    then(script, [Step::ReadData])
}

/// [`three_rcpts_pipelined`] that accepts all and wants the content.
fn all_accepted() -> Vec<Step> {
    three_rcpts_pipelined(
        ["RCPT TO:"; 3],
        "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
    )
}

/// QUIT, then a pause before the script ends, so that Postfix has the time to log.
fn quit_and_pause(quit_reply: Option<&str>) -> Vec<Step> {
    let mut steps = vec![expect("QUIT")];
    steps.extend(quit_reply.map(send));
    steps.push(Step::Sleep(Duration::from_millis(500)));
    steps
}

fn mixed_rcpts() -> Vec<Step> {
    let mut script = greet("250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    script.extend(pipelined(
        "MAIL FROM:",
        &[
            "RCPT TO:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "RCPT TO:<c@example.com>",
        ],
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
         550-5.1.1 <b@example.com>: Recipient address rejected:\r\n\
         550 5.1.1 User unknown in virtual mailbox table\r\n\
         450 4.2.0 <c@example.com>: Recipient address rejected: Greylisted\r\n\
         354 End data with <CR><LF>.<CR><LF>\r\n",
    ));
    script.push(Step::ReadData);
    then(script, quit_and_pause(Some("250 2.0.0 Ok: queued as 4Z9")))
}

fn greeting_421() -> Vec<Step> {
    then(
        vec![send("421 4.3.2 mx.example.com Service not available")],
        quit_and_pause(None),
    )
}

fn drop_after_dot() -> Vec<Step> {
    then(all_accepted(), [Step::Close])
}

fn data_rejected() -> Vec<Step> {
    let mut script = greet("250-mx.example.com\r\n250 SIZE 100000\r\n");
    script.extend([
        expect("MAIL FROM:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("RCPT TO:"),
        send("550 5.7.1 no"),
        expect("RCPT TO:"),
        send("250 ok"),
        expect("DATA"),
        send("554 5.7.1 Transaction failed"),
        expect("RSET"),
        send("250 ok"),
    ]);
    then(script, quit_and_pause(None))
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_mixed_recipients() {
    compare(mixed_rcpts).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_a_421_greeting() {
    compare(greeting_421).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_a_drop_after_the_dot() {
    compare(drop_after_dot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_a_rejected_data() {
    compare(data_rejected).await;
}

fn helo_rejected() -> Vec<Step> {
    let script = vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        send("502 5.5.2 Error: command not recognized"),
        expect("HELO "),
        send("550 5.7.1 no thanks"),
    ];
    then(script, quit_and_pause(None))
}

fn mail_rejected() -> Vec<Step> {
    let mut script = greet("250-mx.example.com\r\n250 DSN\r\n");
    script.extend([
        expect("MAIL FROM:"),
        send("452 4.3.1 Insufficient system storage"),
        expect("RSET"),
        send("250 ok"),
    ]);
    then(script, quit_and_pause(None))
}

fn huge_reply() -> Vec<Step> {
    let huge = "x".repeat(100 * 1024);
    let script = three_rcpts_pipelined(
        ["RCPT TO:"; 3],
        &format!("250 ok\r\n250 ok\r\n550 5.1.1 {huge}\r\n250-{huge}\r\n250 ok\r\n354 go\r\n"),
    );
    then(script, quit_and_pause(Some(&format!("250 2.0.0 {huge}"))))
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_a_rejected_helo() {
    compare(helo_rejected).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_a_rejected_mail_from() {
    compare(mail_rejected).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_100_kb_replies() {
    compare(huge_reply).await;
}

fn hang_after_dot() -> Vec<Step> {
    then(all_accepted(), [Step::Sleep(Duration::from_secs(3))])
}

fn silent_server() -> Vec<Step> {
    vec![Step::Sleep(Duration::from_secs(3))]
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_a_hang_after_the_dot() {
    compare_with(hang_after_dot, "smtp_data_done_timeout = 1s\n", |s| {
        s.data_done_timeout = Duration::from_secs(1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn same_texts_as_postfix_for_a_silent_server() {
    compare_with(silent_server, "smtp_helo_timeout = 1s\n", |s| {
        s.helo_timeout = Duration::from_secs(1);
    })
    .await;
}

/// An 8-bit MIME message: a leaf with long lines, `=`, trailing blanks; a nested
/// message/rfc822 with an 8-bit body; a 7-bit part; an 8-bit part without a CTE header.
const EIGHT_BIT: &str = "Subject: downgrade\r\n\
From: sender@example.org\r\n\
To: a@example.com\r\n\
Date: Fri, 27 Nov 2026 03:00:00 +0000\r\n\
Message-Id: <dg@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed;\r\n\tboundary=\"=_b1\"\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
preamble\r\n\
--=_b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
caf\u{e9} = cr\u{e8}me br\u{fb}l\u{e9}e, na\u{ef}ve fa\u{e7}ade, \u{e9}t\u{e9} \u{e0} la plage, tr\u{e8}s long line here \u{e9}\u{e9}\u{e9} \r\n\
tab\tend\t\r\n\
.leading dot \u{e9}\r\n\
--=_b1\r\n\
Content-Type: message/rfc822\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Subject: inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
inner \u{e9}\r\n\
--=_b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
seven bit\r\n\
--=_b1\r\n\
\r\n\
no CTE \u{e9}\r\n\
--=_b1--\r\n\
epilogue\r\n";

/// The raw DATA from "Subject: downgrade" on (Postfix adds Received: above it).
fn from_subject(data: &[u8]) -> Vec<u8> {
    let start = data
        .windows(18)
        .position(|w| w == b"Subject: downgrade")
        .unwrap_or(0);
    data[start..].to_vec()
}

fn downgrade_script() -> Vec<Step> {
    let mut script = greet("250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n");
    script.extend(pipelined(
        "MAIL FROM:",
        &["RCPT TO:"],
        "250 ok\r\n250 ok\r\n354 go\r\n",
    ));
    script.push(Step::ReadData);
    then(script, quit_and_pause(Some("250 2.0.0 Ok: queued as DG")))
}

#[tokio::test(flavor = "multi_thread")]
async fn same_8bitmime_downgrade_as_postfix() {
    // Postfix's side: submitted with BODY=8BITMIME, relayed to a server without 8BITMIME.
    let postfix_data = tokio::task::spawn_blocking(|| {
        let server = ScriptedServer::start(downgrade_script());
        let pf = PostfixInstance::start(&format!(
            "relayhost = [127.0.0.1]:{}\nsmtp_connect_timeout = 5s\n",
            server.port
        ))
        .expect("private Postfix");
        let script = format!(
            r#"
import smtplib, sys
data = sys.stdin.buffer.read()
s = smtplib.SMTP("127.0.0.1", {}, timeout=30)
s.sendmail("sender@example.org", ["a@example.com"], data, mail_options=["BODY=8BITMIME"])
s.quit()
"#,
            pf.port()
        );
        tern_testkit::support::python_with_input(&script, EIGHT_BIT.as_bytes());
        let log = wait_for(|| pf.maillog(), " status=", 1);
        assert!(log.contains("status=sent"), "{log}");
        let t = server.finish();
        assert_eq!(t.error, None);
        assert!(
            t.lines[1].starts_with("MAIL FROM:<sender@example.org>"),
            "{:?}",
            t.lines
        );
        (t.lines[1].clone(), t.data[0].clone())
    })
    .await
    .expect("postfix side");

    // Tern's side: the same content as the queue file holds it (LF lines).
    let content = leak(EIGHT_BIT.replace("\r\n", "\n").into_bytes());
    let mut s = settings(Protocol::Smtp);
    s.skip_quit_response = true;
    let mut msg = message(&["a@example.com"]);
    set_content(&mut msg, content, Encoding::EightBit);
    let p = play(downgrade_script(), "127.0.0.1", &s, &msg, &attempt(true)).await;
    assert!(
        matches!(p.result.recipients[0].outcome, Outcome::Sent { .. }),
        "{:?}",
        p.result
    );
    let t = p.transcript;
    assert_eq!(t.error, None);
    // Neither announces SIZE when it downgrades.
    assert_eq!(t.lines[1], postfix_data.0);
    let ours = String::from_utf8_lossy(&t.data[0]).into_owned();
    for converted in [
        "Content-Transfer-Encoding: 7bit\r\n",
        "Content-Transfer-Encoding: quoted-printable\r\n",
        "caf=C3=A9 =3D ",
        "no CTE \u{e9}\r\n",
    ] {
        assert!(ours.contains(converted), "{converted:?} not in {ours}");
    }
    assert_eq!(
        String::from_utf8_lossy(&from_subject(&t.data[0])),
        String::from_utf8_lossy(&from_subject(&postfix_data.1))
    );
}
