//! Side by side with Debian's Postfix: the same scripted server conversation is held
//! once by Postfix's smtp(8) (a private instance relaying to the script with relayhost)
//! and once by Tern's session; the `dsn=` and `status=... (TEXT)` of each recipient in
//! Postfix's log must equal Tern's results. Needs root and Debian's postfix.

mod session_common;

use std::time::Duration;

use tern_client::session::{Attempt, Outcome, Protocol, Settings, connect_tcp, deliver};
use tern_testkit::peers::{ScriptedServer, Step, expect, send};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_for};

use session_common::{message, settings};

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
    let server = ScriptedServer::start(script);
    let addr = ([127, 0, 0, 1], server.port).into();
    let mut s = settings(Protocol::Smtp);
    s.skip_quit_response = true;
    tune(&mut s);
    let (stream, peer) = connect_tcp("127.0.0.1", addr, s.connect_timeout)
        .await
        .expect("connect");
    let msg = message(rcpts);
    let attempt = Attempt {
        final_server: true,
        loop_check: None,
    };
    let r = deliver(stream, &s, &peer, &msg, &attempt).await;
    let mut out: Vec<_> = r
        .recipients
        .iter()
        .map(|rr| {
            let kind = match rr.outcome {
                Outcome::Sent { .. } => "sent",
                Outcome::Deferred(_) => "deferred",
                Outcome::Bounced(_) => "bounced",
                Outcome::Kept(_) => "kept",
            };
            let st = rr.outcome.status();
            let to = rcpts[(rr.index - 10) as usize].to_owned();
            (to, st.dsn.clone(), kind.to_owned(), st.text.clone())
        })
        .collect();
    out.sort();
    let _ = tokio::task::spawn_blocking(move || server.finish()).await;
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

fn mixed_rcpts() -> Vec<Step> {
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        Step::Send("250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n".into()),
        expect("MAIL FROM:"),
        expect("RCPT TO:<a@example.com>"),
        expect("RCPT TO:<b@example.com>"),
        expect("RCPT TO:<c@example.com>"),
        expect("DATA"),
        Step::Send(
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
             550-5.1.1 <b@example.com>: Recipient address rejected:\r\n\
             550 5.1.1 User unknown in virtual mailbox table\r\n\
             450 4.2.0 <c@example.com>: Recipient address rejected: Greylisted\r\n\
             354 End data with <CR><LF>.<CR><LF>\r\n"
                .into(),
        ),
        Step::ReadData,
        expect("QUIT"),
        send("250 2.0.0 Ok: queued as 4Z9"),
        Step::Sleep(Duration::from_millis(500)),
    ]
}

fn greeting_421() -> Vec<Step> {
    vec![
        send("421 4.3.2 mx.example.com Service not available"),
        expect("QUIT"),
        Step::Sleep(Duration::from_millis(500)),
    ]
}

fn drop_after_dot() -> Vec<Step> {
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        Step::Send("250-mx.example.com\r\n250 PIPELINING\r\n".into()),
        expect("MAIL FROM:"),
        expect("RCPT TO:"),
        expect("RCPT TO:"),
        expect("RCPT TO:"),
        expect("DATA"),
        Step::Send("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n".into()),
        Step::ReadData,
        Step::Close,
    ]
}

fn data_rejected() -> Vec<Step> {
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        Step::Send("250-mx.example.com\r\n250 SIZE 100000\r\n".into()),
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
        expect("QUIT"),
        Step::Sleep(Duration::from_millis(500)),
    ]
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
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        send("502 5.5.2 Error: command not recognized"),
        expect("HELO "),
        send("550 5.7.1 no thanks"),
        expect("QUIT"),
        Step::Sleep(Duration::from_millis(500)),
    ]
}

fn mail_rejected() -> Vec<Step> {
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        Step::Send("250-mx.example.com\r\n250 DSN\r\n".into()),
        expect("MAIL FROM:"),
        send("452 4.3.1 Insufficient system storage"),
        expect("RSET"),
        send("250 ok"),
        expect("QUIT"),
        Step::Sleep(Duration::from_millis(500)),
    ]
}

fn huge_reply() -> Vec<Step> {
    let huge = "x".repeat(100 * 1024);
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        Step::Send("250-mx.example.com\r\n250 PIPELINING\r\n".into()),
        expect("MAIL FROM:"),
        expect("RCPT TO:"),
        expect("RCPT TO:"),
        expect("RCPT TO:"),
        expect("DATA"),
        Step::Send(format!(
            "250 ok\r\n250 ok\r\n550 5.1.1 {huge}\r\n250-{huge}\r\n250 ok\r\n354 go\r\n"
        )),
        Step::ReadData,
        expect("QUIT"),
        send(&format!("250 2.0.0 {huge}")),
        Step::Sleep(Duration::from_millis(500)),
    ]
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
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        Step::Send("250-mx.example.com\r\n250 PIPELINING\r\n".into()),
        expect("MAIL FROM:"),
        expect("RCPT TO:"),
        expect("RCPT TO:"),
        expect("RCPT TO:"),
        expect("DATA"),
        Step::Send("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n".into()),
        Step::ReadData,
        Step::Sleep(Duration::from_secs(3)),
    ]
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
    vec![
        send("220 mx.example.com ESMTP"),
        expect("EHLO "),
        Step::Send("250-mx.example.com\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n".into()),
        expect("MAIL FROM:"),
        expect("RCPT TO:"),
        expect("DATA"),
        Step::Send("250 ok\r\n250 ok\r\n354 go\r\n".into()),
        Step::ReadData,
        expect("QUIT"),
        send("250 2.0.0 Ok: queued as DG"),
        Step::Sleep(Duration::from_millis(500)),
    ]
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
    let content: &'static [u8] = Box::leak(
        EIGHT_BIT
            .replace("\r\n", "\n")
            .into_bytes()
            .into_boxed_slice(),
    );
    let server = ScriptedServer::start(downgrade_script());
    let addr = ([127, 0, 0, 1], server.port).into();
    let mut s = settings(Protocol::Smtp);
    s.skip_quit_response = true;
    let (stream, peer) = connect_tcp("127.0.0.1", addr, s.connect_timeout)
        .await
        .expect("connect");
    let mut msg = message(&["a@example.com"]);
    msg.content = content;
    msg.size = content.len() as u64;
    msg.encoding = tern_client::session::Encoding::EightBit;
    let attempt = Attempt {
        final_server: true,
        loop_check: None,
    };
    let r = deliver(stream, &s, &peer, &msg, &attempt).await;
    assert!(
        matches!(r.recipients[0].outcome, Outcome::Sent { .. }),
        "{r:?}"
    );
    let t = tokio::task::spawn_blocking(move || server.finish())
        .await
        .expect("server");
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
