//! End-to-end: real daemons in temp directories on loopback, real clients (Python's
//! smtplib, swaks, raw sockets). Needs `target/<profile>/postfix` (`cargo build -p
//! tern-commands --bin postfix`).

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tern_queue::{QueueFile, QueueLayout, QueueName};
use tern_testkit::support::python;
use tern_testkit::tern::Tern;

fn incoming(t: &Tern) -> Vec<tern_queue::QueueEntry> {
    tern_queue::scan(&QueueLayout::new(t.queue_dir()), QueueName::Incoming)
        .expect("scan")
        .entries
}

/// incoming/ once it holds `n` files (at most 10 s): a journaled file gets its name just
/// after its 250 (docs/queue-format.md), so a look right after the reply may miss it.
fn incoming_n(t: &Tern, n: usize) -> Vec<tern_queue::QueueEntry> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = incoming(t);
        if entries.len() >= n || Instant::now() > end {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads one (possibly multi-line) reply.
fn reply(r: &mut BufReader<TcpStream>) -> String {
    tern_testkit::smtp::read_reply(r).expect("read")
}

fn connect(t: &Tern) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(t.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let r = BufReader::new(s.try_clone().expect("clone"));
    (s, r)
}

fn wait_log(t: &Tern, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let log = t.log();
        if log.contains(needle) || start.elapsed() > Duration::from_secs(10) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn smtplib_8bitmime_and_smtputf8() {
    let t = Tern::start("").expect("start");
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
assert s.has_extn("8bitmime") and s.has_extn("smtputf8") and s.has_extn("pipelining")
msg = "From: a@example.org\r\nSubject: caf\u00e9\r\n\r\nh\u00e9llo\r\n.dot\r\n".encode()
r = s.sendmail("a@example.org", ["root@localhost"], msg, mail_options=["BODY=8BITMIME"])
assert r == {{}}, r
r = s.sendmail("j\u00f6rg@example.org", ["root@localhost", "postmaster@localhost"], msg,
               mail_options=["SMTPUTF8", "BODY=8BITMIME"])
print(s.noop())
s.quit()
"#,
        port = t.port
    );
    python(&script);
    let entries = incoming_n(&t, 2);
    assert_eq!(entries.len(), 2);
    let mut contents = Vec::new();
    for e in &entries {
        let f = QueueFile::open(&e.path).expect("queue file");
        let mut body = Vec::new();
        let mut src = std::fs::File::open(&e.path).expect("open");
        f.copy_content(&mut src, &mut body).expect("content");
        contents.push((f, String::from_utf8(body).expect("utf8")));
    }
    contents.sort_by_key(|(f, _)| f.envelope.recipients.len());
    let (f1, c1) = &contents[0];
    assert_eq!(f1.envelope.sender, "a@example.org");
    assert!(c1.starts_with("Received: from client.example (localhost [127.0.0.1])\n\tby mx.example.test (Postfix) with ESMTP id "), "{c1}");
    assert!(c1.contains("\n\tfor <root@localhost>; "), "{c1}");
    assert!(c1.contains("Subject: caf\u{e9}\n"), "{c1}");
    assert!(c1.contains("\nh\u{e9}llo\n.dot\n"), "{c1}");
    assert!(c1.contains("Message-Id: <"), "{c1}");
    let (f2, c2) = &contents[1];
    assert_eq!(f2.envelope.sender, "j\u{f6}rg@example.org");
    assert!(c2.contains(" with UTF8SMTP id "), "{c2}");
    let log = wait_log(&t, "disconnect from");
    for needle in [
        "postfix/master[",
        "daemon started -- version 3.7.11",
        "postfix/smtpd[",
        "connect from localhost[127.0.0.1]",
        ": client=localhost[127.0.0.1]",
        "postfix/cleanup[",
        ": message-id=<",
        "disconnect from localhost[127.0.0.1] ehlo=1 mail=2 rcpt=3 data=2 noop=1 quit=1 commands=10",
    ] {
        assert!(log.contains(needle), "{needle} not in\n{log}");
    }
}

#[test]
fn relay_denied_and_pipelining_and_bdat() {
    let t = Tern::start("mynetworks = 192.0.2.0/24").expect("start");
    let (mut s, mut r) = connect(&t);
    assert!(reply(&mut r).starts_with("220 mx.example.test ESMTP Postfix"));
    // RFC 2920: the whole transaction in one write.
    s.write_all(
        b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\n\
          RCPT TO:<root@localhost>\r\nDATA\r\n",
    )
    .expect("write");
    let ehlo = reply(&mut r);
    assert!(
        ehlo.contains("250-PIPELINING") && ehlo.contains("250 CHUNKING"),
        "{ehlo}"
    );
    assert_eq!(reply(&mut r), "250 2.1.0 Ok\r\n");
    assert_eq!(
        reply(&mut r),
        "454 4.7.1 <x@elsewhere.example>: Relay access denied\r\n"
    );
    assert_eq!(reply(&mut r), "250 2.1.5 Ok\r\n");
    assert!(reply(&mut r).starts_with("354 "));
    s.write_all(b"Subject: one\r\n\r\nbody\r\n.\r\n")
        .expect("write");
    let queued = reply(&mut r);
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    // BDAT (RFC 3030) in two chunks, the command and its payload in one write.
    s.write_all(
        b"MAIL FROM:<b@example.org>\r\nRCPT TO:<root@localhost>\r\nBDAT 14\r\nSubject: two\r\n",
    )
    .expect("write");
    assert_eq!(reply(&mut r), "250 2.1.0 Ok\r\n");
    assert_eq!(reply(&mut r), "250 2.1.5 Ok\r\n");
    assert_eq!(reply(&mut r), "250 2.0.0 Ok: 14 bytes\r\n");
    s.write_all(b"BDAT 8 LAST\r\n\r\nbody\r\n").expect("write");
    let queued = reply(&mut r);
    assert!(
        queued.starts_with("250 2.0.0 Ok: 22 bytes queued as "),
        "{queued}"
    );
    s.write_all(b"QUIT\r\n").expect("write");
    assert_eq!(reply(&mut r), "221 2.0.0 Bye\r\n");
    assert_eq!(incoming_n(&t, 2).len(), 2);
    let log = wait_log(&t, "disconnect from");
    assert!(
        log.contains(
            "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 454 4.7.1 <x@elsewhere.example>: \
             Relay access denied; from=<a@example.org> to=<x@elsewhere.example> proto=ESMTP \
             helo=<c.example>"
        ),
        "{log}"
    );
}

#[test]
fn swaks_pipeline() {
    let t = Tern::start("").expect("start");
    let out = Command::new("swaks")
        .args([
            "--server",
            &t.addr(),
            "--to",
            "root@localhost",
            "--pipeline",
        ])
        .output()
        .expect("swaks");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("<** "), "{text}");
    assert!(text.contains("250 2.0.0 Ok: queued as "), "{text}");
    assert_eq!(incoming_n(&t, 1).len(), 1);
}

#[test]
fn status_stop_and_graceful_end() {
    let mut t = Tern::start("").expect("start");
    let (code, err) = t.postfix(&["status"]).expect("status");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("postfix/postfix-script: the Postfix mail system is running: PID: "));
    let (code, err) = t.postfix(&["start"]).expect("start");
    assert_eq!(code, 1);
    assert!(
        err.contains("postfix/postfix-script: fatal: the Postfix mail system is already running"),
        "{err}"
    );
    let (code, err) = t.postfix(&["reload"]).expect("reload");
    assert_eq!(code, 0, "{err}");
    assert!(wait_log(&t, "reload -- version").contains("reload -- version 3.7.11"));
    assert!(t.stop(Duration::from_secs(15)));
    let (code, err) = t.postfix(&["status"]).expect("status");
    assert_eq!(code, 1);
    assert!(
        err.contains("the Postfix mail system is not running"),
        "{err}"
    );
    let (code, err) = t.postfix(&["stop"]).expect("stop");
    assert_eq!(code, 1);
    assert!(err.contains("postfix/postfix-script: fatal: the Postfix mail system is not running"));
    assert!(t.log().contains("terminating on signal 15"));
}

/// 2,000 messages from 20 concurrent sessions; SIGKILL right after the last 250; all
/// 2,000 are in the queue after a restart.
#[test]
#[allow(clippy::many_single_char_names)]
fn durability_under_sigkill() {
    const SESSIONS: usize = 20;
    const PER_SESSION: usize = 100;
    let mut t = Tern::start("").expect("start");
    let acked = Arc::new(AtomicUsize::new(0));
    let addr = t.addr();
    let threads: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let addr = addr.clone();
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                let s = TcpStream::connect(&addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_mins(1)))
                    .expect("timeout");
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                assert!(reply(&mut r).starts_with("220"));
                w.write_all(b"EHLO load.example\r\n").expect("write");
                reply(&mut r);
                for i in 0..PER_SESSION {
                    let msg = format!(
                        "MAIL FROM:<s{n}@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\n"
                    );
                    w.write_all(msg.as_bytes()).expect("write");
                    assert!(reply(&mut r).starts_with("250"));
                    assert!(reply(&mut r).starts_with("250"));
                    assert!(reply(&mut r).starts_with("354"));
                    let body = format!("Subject: {n}/{i}\r\n\r\n{}\r\n.\r\n", "x".repeat(500));
                    w.write_all(body.as_bytes()).expect("write");
                    let q = reply(&mut r);
                    assert!(q.starts_with("250 2.0.0 Ok: queued as "), "{q}");
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("session thread");
    }
    t.kill();
    assert_eq!(acked.load(Ordering::SeqCst), SESSIONS * PER_SESSION);
    t.launch().expect("restart");
    let entries = incoming(&t);
    assert_eq!(entries.len(), SESSIONS * PER_SESSION);
    for e in entries.iter().take(50) {
        QueueFile::open(&e.path).expect("complete queue file");
    }
}
