//! check_policy_service end to end with Debian's postgrey: a private postgrey
//! (`--delay=2`, its own database) answers a Tern daemon whose
//! `smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination,
//! check_policy_service inet:127.0.0.1:PORT`. A client outside mynetworks gets postgrey's
//! greylisting reply at its first RCPT; after the delay the same triple is accepted, and
//! the message reaches the mailbox with postgrey's PREPENDed X-Greylist header. The
//! replies are compared with Debian's Postfix asking the same postgrey; and, side by side
//! with Debian's Postfix, the requests sent to a recording policy server (RCPT, DATA,
//! END-OF-MESSAGE) and the warnings and replies when the server fails.
//! Needs root, the postgrey package, Debian's postfix, and
//! `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use deliver_util::{TestUser, configure, spool, wait_for};
use tern_testkit::postfix::{OUTSIDE_CLIENT, PostfixInstance, connect_from};
use tern_testkit::postgrey::Postgrey;
use tern_testkit::smtp::read_reply;

/// postgrey's greylisting delay.
const DELAY_SECS: u32 = 2;
const DELAY: Duration = Duration::from_secs(DELAY_SECS as u64);

/// A client session from [`OUTSIDE_CLIENT`] (outside mynetworks).
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = connect_from(OUTSIDE_CLIENT, addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut client = Client {
            reader: BufReader::new(stream),
        };
        let greeting = read_reply(&mut client.reader).unwrap();
        assert!(greeting.starts_with("220 "), "{greeting}");
        client
    }

    fn command(&mut self, line: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        read_reply(&mut self.reader).unwrap()
    }

    /// EHLO, MAIL FROM and RCPT TO; the RCPT reply.
    fn rcpt(&mut self, sender: &str, recipient: &str) -> String {
        let ehlo = self.command("EHLO client.example");
        assert!(ehlo.starts_with("250"), "{ehlo}");
        let mail = self.command(&format!("MAIL FROM:<{sender}>"));
        assert!(mail.starts_with("250 "), "{mail}");
        self.command(&format!("RCPT TO:<{recipient}>"))
    }
}

/// The restrictions under test.
fn restrictions(postgrey: &Postgrey) -> String {
    format!(
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, \
         check_policy_service {}\n",
        postgrey.service()
    )
}

/// Postfix's reply to postgrey's `DEFER_IF_PERMIT 4.2.0 Greylisted, see ...` action at
/// RCPT (smtpd_check.c check_table_result(): the DSN of the text, `<%s>: %s rejected: %s`).
fn greylisted(recipient: &str) -> String {
    let domain = recipient.rsplit('@').next().unwrap();
    format!(
        "450 4.2.0 <{recipient}>: Recipient address rejected: Greylisted, see \
         http://postgrey.schweikert.ch/help/{domain}.html\r\n"
    )
}

/// A Tern instance asking `postgrey`, with mynetworks = 127.0.0.1/32 (as the Postfix
/// reference has) and `extra` in main.cf; started.
fn tern(postgrey: &Postgrey, extra: &str) -> tern_testkit::tern::Tern {
    let mut t = configure("");
    let main_cf = t.config_dir().join("main.cf");
    let text = std::fs::read_to_string(&main_cf)
        .unwrap()
        .replace("mynetworks = 127.0.0.0/8\n", "mynetworks = 127.0.0.1/32\n");
    std::fs::write(&main_cf, text + &restrictions(postgrey) + extra).unwrap();
    t.launch().expect("launch");
    t
}

/// A client outside mynetworks is greylisted twice, accepted after
/// the delay, and its message delivered to `user`'s mailbox; returns the mailbox.
fn greylist_and_deliver(user: &str) -> String {
    let user = TestUser::new(user, None);
    let postgrey = Postgrey::start(DELAY_SECS).expect("postgrey");
    let spool_root = tempfile::Builder::new()
        .prefix("tern-grey")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(spool_root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mail = spool(spool_root.path(), "mail");
    let t = tern(
        &postgrey,
        &format!("mail_spool_directory = {}\n", mail.display()),
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", t.port).parse().unwrap();
    let to = format!("{}@mx.example.test", user.name);
    let from = "sender@example.org";

    let mut first = Client::connect(addr);
    assert_eq!(first.rcpt(from, &to), greylisted(&to), "{}", postgrey.log());
    first.command("QUIT");
    // Too early: still greylisted.
    let mut early = Client::connect(addr);
    assert_eq!(early.rcpt(from, &to), greylisted(&to));
    early.command("QUIT");

    std::thread::sleep(DELAY + Duration::from_secs(1));
    let mut again = Client::connect(addr);
    let rcpt = again.rcpt(from, &to);
    assert_eq!(rcpt, "250 2.1.5 Ok\r\n", "{}", postgrey.log());
    let data = again.command("DATA");
    assert!(data.starts_with("354 "), "{data}");
    let queued =
        again.command("Subject: greylisting\r\nFrom: sender@example.org\r\n\r\nhello\r\n.");
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    let id = queued.trim_end().rsplit(' ').next().unwrap().to_owned();
    again.command("QUIT");

    let log = wait_for(|| t.log(), &format!("{id}: removed"), 1);
    assert!(log.contains("status=sent (delivered to mailbox)"), "{log}");
    let mbox = std::fs::read_to_string(mail.join(&user.name)).expect("mailbox");
    // postgrey saw the triple three times: greylisted twice (`reason=new` or, a second
    // later, `early-retry`), then passed.
    let seen = postgrey.log();
    assert_eq!(seen.matches("action=greylist, ").count(), 2, "{seen}");
    assert!(seen.contains("reason=triplet found"), "{seen}");
    mbox
}

#[test]
fn greylisted_then_accepted_and_delivered() {
    let mbox = greylist_and_deliver("tern-t-grey");
    assert!(mbox.contains("\nSubject: greylisting\n"), "{mbox}");
    assert!(mbox.contains("\nhello\n"), "{mbox}");
}

/// postgrey's answer when it lets a triple pass is `PREPEND X-Greylist: delayed N
/// seconds by postgrey-1.37 at HOST; DATE`; Postfix adds that header to the message.
#[test]
fn postgrey_prepend_reaches_the_mailbox() {
    let mbox = greylist_and_deliver("tern-t-greyhdr");
    assert!(mbox.contains("\nX-Greylist: delayed "), "{mbox}");
}

#[test]
fn greylisting_replies_equal_postfixs() {
    let user = TestUser::new("tern-t-greyref", None);
    let postgrey = Postgrey::start(DELAY_SECS).expect("postgrey");
    let reference = PostfixInstance::start(&restrictions(&postgrey)).expect("postfix");
    let t = tern(&postgrey, "");
    let tern: SocketAddr = format!("127.0.0.1:{}", t.port).parse().unwrap();
    let to = format!("{}@mx.example.test", user.name);
    // One sender each: postgrey's triples are (client subnet, sender, recipient).
    let mut replies = Vec::new();
    for (addr, from) in [
        (reference.addr(), "ref@example.org"),
        (tern, "tern@example.org"),
    ] {
        let mut c = Client::connect(addr);
        replies.push(c.rcpt(from, &to));
        c.command("QUIT");
    }
    assert_eq!(replies[0], greylisted(&to), "{}", reference.maillog());
    assert_eq!(replies[1], replies[0]);
    std::thread::sleep(DELAY + Duration::from_secs(1));
    let mut later = Vec::new();
    for (addr, from) in [
        (reference.addr(), "ref@example.org"),
        (tern, "tern@example.org"),
    ] {
        let mut c = Client::connect(addr);
        later.push(c.rcpt(from, &to));
        c.command("QUIT");
    }
    assert_eq!(later[0], "250 2.1.5 Ok\r\n");
    assert_eq!(later[1], later[0]);
}

/// A policy server on 127.0.0.1 that answers DUNNO and records every request; it stops
/// accepting after a minute.
fn recording_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>) {
    fake_server(Some(b"action=DUNNO\n\n"))
}

/// A policy server that answers `reply` to every request (`None`: never answers) and
/// records the requests; it stops accepting after a minute.
fn fake_server(
    reply: Option<&'static [u8]>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>) {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let shared = seen.clone();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_mins(1) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let shared = shared.clone();
            std::thread::spawn(move || {
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_mins(1)))
                    .unwrap();
                let mut reader = BufReader::new(stream);
                let mut request = Vec::new();
                for _ in 0..10_000 {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end_matches('\n').to_owned();
                    if !line.is_empty() {
                        request.push(line);
                        continue;
                    }
                    shared.lock().unwrap().push(std::mem::take(&mut request));
                    if let Some(reply) = reply
                        && reader.get_mut().write_all(reply).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// The requests of one session (RCPT, DATA, END-OF-MESSAGE) with the values that differ
/// between two servers by nature (ports, queue ids, instance) made constant.
fn session_requests(
    addr: SocketAddr,
    seen: &std::sync::Mutex<Vec<Vec<String>>>,
    to: &str,
) -> Vec<Vec<String>> {
    seen.lock().unwrap().clear();
    let mut c = Client::connect(addr);
    assert!(c.rcpt("sender@example.org", to).starts_with("250 "));
    assert!(c.command("DATA").starts_with("354 "));
    let queued = c.command("Subject: policy\r\n\r\nhello\r\n.");
    assert!(queued.starts_with("250 "), "{queued}");
    c.command("QUIT");
    let requests = seen.lock().unwrap().clone();
    requests
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|attr| match attr.split_once('=') {
                    Some((
                        name @ ("client_port" | "server_port" | "queue_id" | "instance"),
                        value,
                    )) if !value.is_empty() => format!("{name}=X"),
                    _ => attr,
                })
                .collect()
        })
        .collect()
}

/// What Tern's smtpd sends a policy server equals what Debian's Postfix sends, at RCPT,
/// DATA and END-OF-MESSAGE.
#[test]
fn requests_equal_postfixs() {
    let user = TestUser::new("tern-t-polreq", None);
    let (port, seen) = recording_server();
    let service = format!("inet:127.0.0.1:{port}");
    let lists = format!(
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, \
         check_policy_service {service}\n\
         smtpd_data_restrictions = check_policy_service {service}\n\
         smtpd_end_of_data_restrictions = check_policy_service {service}\n"
    );
    let to = format!("{}@mx.example.test", user.name);
    let reference = PostfixInstance::start(&lists).expect("postfix");
    let want = session_requests(reference.addr(), &seen, &to);
    assert_eq!(want.len(), 3, "{want:?}");
    let mut t = configure("");
    let main_cf = t.config_dir().join("main.cf");
    let text = std::fs::read_to_string(&main_cf)
        .unwrap()
        .replace("mynetworks = 127.0.0.0/8\n", "mynetworks = 127.0.0.1/32\n");
    std::fs::write(&main_cf, text + &lists).unwrap();
    t.launch().expect("launch");
    let tern: SocketAddr = format!("127.0.0.1:{}", t.port).parse().unwrap();
    let got = session_requests(tern, &seen, &to);
    // Every differing attribute, by request.
    let diffs: Vec<String> = got
        .iter()
        .zip(&want)
        .flat_map(|(g, w)| {
            g.iter()
                .zip(w)
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("{}: tern {a:?}, postfix {b:?}", w[1]))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(diffs, Vec::<String>::new());
    assert_eq!(got, want);
}

/// The smtpd warnings in a mail log, without their prefix, with the policy server's port
/// made constant.
fn smtpd_warnings(log: &str, port: u16) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("/smtpd["))
        .filter_map(|l| l.split_once(": warning: ").map(|(_, w)| w.to_owned()))
        .map(|w| w.replace(&port.to_string(), "PORT"))
        .collect()
}

/// A failing policy server: the RCPT reply (the default action) and the warnings of
/// attr_clnt.c/auto_clnt.c/attr_scan_plain.c equal Debian's Postfix's, for a server that
/// is down, one that never answers, replies without `action`, and the `{ ... }` form.
#[test]
fn failure_warnings_equal_postfixs() {
    let user = TestUser::new("tern-t-polfail", None);
    let to = format!("{}@mx.example.test", user.name);
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = fake_server(None).0;
    let empty = fake_server(Some(b"\n")).0;
    let no_value = fake_server(Some(b"foo=bar\naction\n\n")).0;
    let cut = fake_server(Some(b"action=DUN")).0;
    let plain = |port: u16| (port, format!("inet:127.0.0.1:{port}"));
    let cases = [
        plain(down),
        plain(silent),
        plain(empty),
        plain(no_value),
        plain(cut),
        // Postfix 3.0's per-service form: its own try limit and default action.
        (
            down,
            format!("{{ inet:127.0.0.1:{down}, try_limit=1, default_action=DUNNO }}"),
        ),
    ];
    for (port, server) in cases {
        let lists = format!(
            "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination, \
             check_policy_service {server}\n\
             smtpd_policy_service_timeout = 1s\n"
        );
        let reference = PostfixInstance::start(&lists).expect("postfix");
        let mut c = Client::connect(reference.addr());
        let want_reply = c.rcpt("sender@example.org", &to);
        c.command("QUIT");
        let want = wait_log(|| reference.maillog(), port);

        let mut t = configure("");
        let main_cf = t.config_dir().join("main.cf");
        let text = std::fs::read_to_string(&main_cf)
            .unwrap()
            .replace("mynetworks = 127.0.0.0/8\n", "mynetworks = 127.0.0.1/32\n");
        std::fs::write(&main_cf, text + &lists).unwrap();
        t.launch().expect("launch");
        let tern: SocketAddr = format!("127.0.0.1:{}", t.port).parse().unwrap();
        let mut c = Client::connect(tern);
        let got_reply = c.rcpt("sender@example.org", &to);
        c.command("QUIT");
        let got = wait_log(|| t.log(), port);
        assert_eq!(got_reply, want_reply, "{server}");
        assert_eq!(got, want, "{server}");
    }
}

/// The smtpd warnings once a "problem talking" line is in and nothing more came for
/// 300 ms (the log is written after the reply by Tern's log thread); at most 10 s.
fn wait_log(log: impl Fn() -> String, port: u16) -> Vec<String> {
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let warnings = smtpd_warnings(&log(), port);
        let done = warnings == last && warnings.iter().any(|w| w.starts_with("problem talking"));
        if done || start.elapsed() > Duration::from_secs(10) {
            return warnings;
        }
        last = warnings;
    }
}
