//! main.cf `content_filter` end to end, as FILTER_README's "simple SMTP-based after-queue
//! content filter" sets it up, side by side with Debian's Postfix 3.7.11:
//!
//! ```text
//! main.cf:   content_filter = scan:[127.0.0.1]:FILTER_PORT
//! master.cf: scan unix - - n - 10 smtp
//!            127.0.0.1:BACK_PORT inet n - n - 10 smtpd -o content_filter=
//!              -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks
//!              -o smtpd_recipient_restrictions=permit_mynetworks,reject
//! ```
//!
//! The filter is a Python aiosmtpd server (not ours) that adds `X-Content-Filter: checked`
//! and sends the message back to BACK_PORT with smtplib. Mail from an SMTP client and from
//! `sendmail` (pickup) goes through the filter once, then into the mailbox; the
//! re-injected copy is not filtered again (the listener's `-o content_filter=`). Each
//! server's log shows the hop to the filter (`relay=127.0.0.1[127.0.0.1]:FILTER_PORT`,
//! the filter's 250) and the local delivery of the copy; the delivered messages' header
//! names, in order, are the same for both servers.
//!
//! Needs root, python3-aiosmtpd, Debian's postfix, and `cargo build -p tern-commands
//! --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use deliver_util::{TestUser, configure_with_spool, master_cf, run_with_input, tern_program};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::smtplib_send;
use tern_testkit::support::wait_until;
use tern_testkit::tern::free_port;

const DOMAIN: &str = "mx.example.test";

/// The content filter: an aiosmtpd server on `port` that re-injects each message, with one
/// header more, to 127.0.0.1:`back`. It says READY once listening; it stops when its
/// stdin closes.
const FILTER: &str = r#"
import sys, smtplib
from aiosmtpd.controller import Controller

port, back = int(sys.argv[1]), int(sys.argv[2])

class Handler:
    async def handle_DATA(self, server, session, envelope):
        content = b"X-Content-Filter: checked\r\n" + envelope.original_content
        try:
            with smtplib.SMTP("127.0.0.1", back, timeout=30) as s:
                s.sendmail(envelope.mail_from, envelope.rcpt_tos, content)
        except Exception as e:
            text = str(e).replace("\r", " ").replace("\n", " ")
            return "451 4.3.0 re-injection failed: " + text
        return "250 2.0.0 Ok: filtered"

c = Controller(Handler(), hostname="127.0.0.1", port=port, decode_data=False)
try:
    c.start()
except Exception:
    sys.exit(1)
print("READY", flush=True)
sys.stdin.read()
c.stop()
"#;

/// A running filter; stopped on drop.
struct Filter {
    port: u16,
    child: Child,
}

impl Filter {
    /// Starts the filter on a free port (another is tried if that one is taken first).
    fn start(back: u16) -> Filter {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port().unwrap();
            let mut child = Command::new("/usr/bin/python3")
                .arg("-c")
                .arg(FILTER)
                .arg(port.to_string())
                .arg(back.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("/usr/bin/python3");
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            if line.trim() == "READY" {
                return Filter { port, child };
            }
            let _ = child.kill();
            let _ = child.wait();
            last = format!("the filter did not start on port {port} (python3-aiosmtpd?)");
        }
        panic!("{last}");
    }
}

impl Drop for Filter {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// main.cf lines common to both servers.
fn main_cf(filter: u16) -> String {
    format!("content_filter = scan:[127.0.0.1]:{filter}\n")
}

/// master.cf lines common to both servers: the filter's transport, the re-injection
/// listener.
fn master_cf_filter(back: u16) -> String {
    format!(
        "scan unix - - n - 10 smtp\n\
         127.0.0.1:{back} inet n - n - 10 smtpd\n  \
         -o content_filter=\n  \
         -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks\n  \
         -o smtpd_recipient_restrictions=permit_mynetworks,reject\n  \
         -o mynetworks=127.0.0.0/8\n"
    )
}

/// One message by SMTP, one by sendmail; returns the SMTP one's queue id.
fn send_both(port: u16, sendmail: &Path, conf: &Path, to: &str) -> String {
    let id = smtplib_send(
        port,
        "sender@example.org",
        &[to],
        "Subject: by smtp\r\nFrom: sender@example.org\r\n\r\nhello\r\n",
    );
    let conf = conf.display().to_string();
    let (code, err) = run_with_input(
        sendmail,
        &["-C", &conf, "-f", "local@example.org", to],
        b"Subject: by sendmail\nFrom: local@example.org\n\nhello\n",
    );
    assert_eq!(code, 0, "sendmail: {err}");
    id
}

/// The messages of an mbox file.
fn messages(mbox: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(mbox).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("From ") {
            out.push(String::new());
        }
        if let Some(m) = out.last_mut() {
            m.push_str(line);
            m.push('\n');
        }
    }
    out
}

/// The header names of a message, in order (continuation lines skipped).
fn header_names(msg: &str) -> Vec<String> {
    msg.lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
        .collect()
}

/// What one server did: the delivered messages (subject -> header names) and its log.
struct Outcome {
    headers: Vec<(String, Vec<String>)>,
    log: String,
}

/// Waits for both messages in `mbox`, checks each went through the filter once, and
/// checks `log` for the hop to the filter of the SMTP message `id`.
fn check(
    who: &str,
    mbox: &Path,
    log: impl Fn() -> String,
    id: &str,
    filter: u16,
    to: &str,
) -> Outcome {
    let both = wait_until(Duration::from_mins(1), || messages(mbox).len() >= 2);
    let msgs = messages(mbox);
    assert!(both && msgs.len() == 2, "{who}: {msgs:?}\n{}", log());
    let mut headers = Vec::new();
    for m in &msgs {
        assert_eq!(
            m.matches("\nX-Content-Filter: checked\n").count(),
            1,
            "{who}: filtered once:\n{m}"
        );
        let subject = m
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned();
        headers.push((subject, header_names(m)));
    }
    headers.sort();
    let log = log();
    let hop = format!("{id}: to=<{to}>, relay=127.0.0.1[127.0.0.1]:{filter}, delay=");
    let line = log
        .lines()
        .find(|l| l.contains(&hop))
        .unwrap_or_else(|| panic!("{who}: no line with {hop:?}:\n{log}"));
    assert!(
        line.contains("postfix/smtp[")
            && line.contains(", dsn=2.0.0, status=sent (250 2.0.0 Ok: filtered)"),
        "{who}: {line}"
    );
    // The SMTP message and the sendmail one each went to the filter, and each copy
    // that came back was delivered into the mailbox.
    let to_filter = log
        .lines()
        .filter(|l| l.contains(&format!("relay=127.0.0.1[127.0.0.1]:{filter},")))
        .count();
    let local = log
        .lines()
        .filter(|l| l.contains("postfix/local[") && l.contains(&format!("to=<{to}>, relay=local,")))
        .count();
    assert_eq!((to_filter, local), (2, 2), "{who}:\n{log}");
    Outcome { headers, log }
}

#[test]
fn content_filter_side_by_side() {
    let user = TestUser::new("tern-t-cf", None);
    let to = format!("{}@{DOMAIN}", user.name);

    // Debian's Postfix.
    let pf_back = free_port().unwrap();
    let pf_filter = Filter::start(pf_back);
    let pf = PostfixInstance::start_with(&main_cf(pf_filter.port), &master_cf_filter(pf_back))
        .expect("Debian's Postfix");
    let id = send_both(pf.port(), Path::new("/usr/sbin/sendmail"), pf.dir(), &to);
    let mbox = pf.dir().join("spool").join(&user.name);
    let postfix = check("Postfix", &mbox, || pf.maillog(), &id, pf_filter.port, &to);

    // Tern, the same settings.
    let back = free_port().unwrap();
    let filter = Filter::start(back);
    let (mut t, mail) = configure_with_spool(&main_cf(filter.port));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n{}",
        master_cf(t.port),
        master_cf_filter(back)
    ))
    .unwrap();
    t.launch().expect("launch");
    let id = send_both(t.port, &tern_program("sendmail"), &t.config_dir(), &to);
    let tern = check(
        "Tern",
        &mail.join(&user.name),
        || t.log(),
        &id,
        filter.port,
        &to,
    );

    assert_eq!(
        postfix.headers, tern.headers,
        "header names differ (Postfix, Tern)\nPostfix log:\n{}\nTern log:\n{}",
        postfix.log, tern.log
    );
}
