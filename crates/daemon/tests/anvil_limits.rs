//! anvil(8)'s limits end to end (crate::anvil): a real Tern daemon and Debian's Postfix
//! with the same main.cf limits, clients on 127.0.0.x (each address its own anvil key,
//! mynetworks = 127.0.0.1/32 so that they are limited), the same dialog against both,
//! and the replies compared; Tern's warnings checked in its log.
//!
//! Needs root, Debian's postfix and `target/<profile>/postfix` (`cargo build -p
//! tern-commands --bin postfix`); fails when any is missing.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tern_testkit::postfix::{PostfixInstance, connect_from};
use tern_testkit::smtp::read_reply;
use tern_testkit::tern::Tern;

/// The count and event limits (one daemon of each kind for these).
const EVENT_LIMITS: &str = "mynetworks = 127.0.0.1/32\n\
    smtpd_client_connection_count_limit = 2\n\
    smtpd_client_message_rate_limit = 2\n\
    smtpd_client_recipient_rate_limit = 2\n\
    smtpd_client_event_limit_exceptions = 127.0.0.1/32 127.0.0.17\n";

/// The connection rate limit.
const RATE_LIMIT: &str = "mynetworks = 127.0.0.1/32\n\
    smtpd_client_connection_rate_limit = 3\n";

/// One client connection.
struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    /// Connects from 127.0.0.`host` and reads the greeting (or the refusal).
    fn open(host: u8, server: SocketAddr) -> (Client, String) {
        let s = connect_from(Ipv4Addr::new(127, 0, 0, host), server).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut r = BufReader::new(s);
        let greeting = read_reply(&mut r).expect("greeting");
        (Client { r }, greeting)
    }

    /// Sends one command and returns the reply's first line without its CRLF.
    fn cmd(&mut self, line: &str) -> String {
        self.r
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let reply = read_reply(&mut self.r).expect("reply");
        reply.lines().last().unwrap_or_default().to_owned()
    }

    /// Whether the server has closed the connection (EOF within the read time-out).
    fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.r.read_line(&mut line), Ok(0))
    }
}

fn first_line(reply: &str) -> String {
    reply.lines().next().unwrap_or_default().to_owned()
}

/// The dialogs of the count, message-rate, recipient-rate and exception cases: the
/// replies, in order.
fn event_dialogs(server: SocketAddr) -> Vec<String> {
    let mut out = Vec::new();
    // Count limit 2: the third concurrent connection is refused, then closed.
    let (mut c1, g1) = Client::open(3, server);
    let (_c2, g2) = Client::open(3, server);
    let (mut c3, g3) = Client::open(3, server);
    out.extend([g1, g2, g3].iter().map(|g| first_line(g)));
    out.push(format!("closed after refusal: {}", c3.closed()));
    // One ends: the count drops and a new one is let in.
    out.push(c1.cmd("QUIT"));
    drop(c1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let g4 = loop {
        // Postfix's smtpd tells anvil of the disconnect after QUIT's reply: retry briefly.
        let (mut c4, g4) = Client::open(3, server);
        if g4.starts_with("220 ") || Instant::now() > deadline {
            c4.cmd("QUIT");
            break g4;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    out.push(first_line(&g4));
    // Message rate 2: the third MAIL in the time unit gets 450.
    let (mut m, _) = Client::open(5, server);
    out.push(m.cmd("EHLO client.example"));
    for _ in 0..3 {
        out.push(m.cmd("MAIL FROM:<a@example.org>"));
        out.push(m.cmd("RSET"));
    }
    out.push(m.cmd("QUIT"));
    // Recipient rate 2: the third RCPT gets 450, and so does a VRFY.
    let (mut r, _) = Client::open(6, server);
    out.push(r.cmd("HELO client.example"));
    out.push(r.cmd("MAIL FROM:<a@example.org>"));
    for _ in 0..3 {
        out.push(r.cmd("RCPT TO:<postmaster@mx.example.test>"));
    }
    // VRFY counts as a recipient too (smtpd.c vrfy_cmd()).
    out.push(r.cmd("VRFY postmaster"));
    out.push(r.cmd("QUIT"));
    // An exception: never limited.
    let mut held = Vec::new();
    for _ in 0..3 {
        let (c, g) = Client::open(17, server);
        out.push(first_line(&g));
        held.push(c);
    }
    let e = &mut held[0];
    out.push(e.cmd("HELO client.example"));
    for _ in 0..3 {
        out.push(e.cmd("MAIL FROM:<a@example.org>"));
        out.push(e.cmd("RSET"));
    }
    out
}

/// The connection-rate dialog: four connections in a row from one client.
fn rate_dialogs(server: SocketAddr) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let (mut c, g) = Client::open(4, server);
        out.push(first_line(&g));
        out.push(c.cmd("QUIT"));
    }
    let (mut c, g) = Client::open(4, server);
    out.push(first_line(&g));
    out.push(format!("closed after refusal: {}", c.closed()));
    out
}

/// The smtpd log texts about clients 127.0.0.`hosts` (after `smtpd[PID]: `), the
/// service port made `PORT` and queue ids `QID`, sorted (sessions run side by side).
fn session_lines(log: &str, hosts: &[u8], port: u16) -> Vec<String> {
    let mut out: Vec<String> = log
        .lines()
        .filter(|l| l.contains("/smtpd["))
        .filter(|l| hosts.iter().any(|h| l.contains(&format!("[127.0.0.{h}]"))))
        .filter_map(|l| {
            l.split_once("]: ")
                .map(|(_, t)| t.replace(&port.to_string(), "PORT"))
        })
        .map(|t| match t.split_once(": client=") {
            Some((_, rest)) => format!("QID: client={rest}"),
            None => t,
        })
        .collect();
    out.sort();
    out
}

fn tern_addr(t: &Tern) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], t.port))
}

/// Waits (bounded) until the log holds `needle`.
fn wait_log(log: impl Fn() -> String, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let text = log();
        if text.contains(needle) || start.elapsed() > Duration::from_secs(10) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn count_message_recipient_limits_and_exceptions() {
    let tern = Tern::start(EVENT_LIMITS).expect("tern");
    let postfix = PostfixInstance::start(EVENT_LIMITS).expect("postfix");
    let ours = event_dialogs(tern_addr(&tern));
    let theirs = event_dialogs(postfix.addr());
    let want_421 = "421 4.7.0 mx.example.test Error: too many connections from 127.0.0.3";
    assert_eq!(ours[2], want_421, "{ours:#?}");
    assert!(ours.contains(&"450 4.7.1 Error: too much mail from 127.0.0.5".to_owned()));
    assert!(ours.contains(&"450 4.7.1 Error: too many recipients from 127.0.0.6".to_owned()));
    let greeting = |s: &String| s.starts_with("220 ");
    assert_eq!(
        ours.iter().rev().take(10).filter(|s| greeting(s)).count(),
        3
    );
    // Postfix's greeting names its mail_name the same way; compare everything.
    assert_eq!(ours, theirs);

    let service = format!("127.0.0.1:{}", tern.port);
    let log = wait_log(|| tern.log(), "Recipient address rate limit exceeded");
    for (head, host) in [
        ("Connection concurrency limit exceeded: 3 from ", 3),
        ("Message delivery request rate limit exceeded: 3 from ", 5),
        ("Recipient address rate limit exceeded: 3 from ", 6),
    ] {
        let tail = format!("[127.0.0.{host}] for service {service}");
        let found = log
            .lines()
            .any(|l| l.contains(&format!("warning: {head}")) && l.ends_with(&tail));
        assert!(found, "no warning {head}...{tail} in:\n{log}");
    }
    // Postfix logs the same warnings (its service name is master.cf's, the same shape).
    let plog = wait_log(
        || postfix.maillog(),
        "Recipient address rate limit exceeded",
    );
    for needle in [
        "Connection concurrency limit exceeded: 3 from ",
        "Message delivery request rate limit exceeded: 3 from ",
        "Recipient address rate limit exceeded: 3 from ",
    ] {
        assert!(
            plog.contains(needle),
            "{needle} not in Postfix's log:\n{plog}"
        );
        assert!(log.contains(needle), "{needle} not in Tern's log:\n{log}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        session_lines(&tern.log(), &[3, 5, 6, 17], tern.port),
        session_lines(&postfix.maillog(), &[3, 5, 6, 17], postfix.port())
    );
}

#[test]
fn connection_rate_limit() {
    let tern = Tern::start(RATE_LIMIT).expect("tern");
    let postfix = PostfixInstance::start(RATE_LIMIT).expect("postfix");
    let ours = rate_dialogs(tern_addr(&tern));
    let theirs = rate_dialogs(postfix.addr());
    assert_eq!(
        ours[6], "421 4.7.0 mx.example.test Error: too many connections from 127.0.0.4",
        "{ours:#?}"
    );
    assert_eq!(ours, theirs);
    let log = wait_log(|| tern.log(), "Connection rate limit exceeded");
    wait_log(|| postfix.maillog(), "Connection rate limit exceeded");
    // Let the last disconnect lines be written.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        session_lines(&tern.log(), &[4], tern.port),
        session_lines(&postfix.maillog(), &[4], postfix.port())
    );
    assert!(
        log.lines().any(
            |l| l.contains("warning: Connection rate limit exceeded: 4 from ")
                && l.contains(&format!("[127.0.0.4] for service 127.0.0.1:{}", tern.port))
        ),
        "{log}"
    );
}
