//! The client's hostname (crate::peername) end to end: a DNS server on a loopback port
//! (dnsmasq, Debian's `dnsmasq-base`) with PTR and A records for 127.0.0.x, a Tern instance
//! pointed at it through `TERN_DNS_SERVER`, and clients whose sockets are bound to
//! 127.0.0.x. The expected log lines are those of Debian's Postfix 3.7 with the same
//! records (checked by hand: its smtpd in a mount namespace whose resolv.conf named the
//! same dnsmasq on port 53). Needs `target/<profile>/postfix` (`cargo build -p
//! tern-commands --bin postfix`) and dnsmasq; fails when either is missing.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tern_queue::{QueueLayout, QueueName};
use tern_testkit::dns::Dnsmasq;
use tern_testkit::tern::{Tern, postfix_binary};

/// The records: (client address, what its PTR and A records say).
const DNSMASQ_RECORDS: &[&str] = &[
    // Answer only from these records, NXDOMAIN for anything else under them.
    "--local=/test/",
    "--local=/127.in-addr.arpa/",
    // 127.0.0.3: confirmed.
    "--host-record=good.test,127.0.0.3",
    // 127.0.0.4: the name's address is another.
    "--ptr-record=4.0.0.127.in-addr.arpa,forged.test",
    "--host-record=forged.test,127.0.0.99",
    // 127.0.0.5: the name does not exist.
    "--ptr-record=5.0.0.127.in-addr.arpa,nxname.test",
    // 127.0.0.6: no PTR at all.
    // 127.0.0.7: the name has an IPv6 address only.
    "--ptr-record=7.0.0.127.in-addr.arpa,v6only.test",
    "--host-record=v6only.test,::7",
    // 127.0.0.8: one of the name's two addresses.
    "--ptr-record=8.0.0.127.in-addr.arpa,multi.test",
    "--host-record=multi.test,127.0.0.9",
    "--host-record=multi.test,127.0.0.8",
    // 127.0.0.11: a numeric name.
    "--ptr-record=11.0.0.127.in-addr.arpa,1.2.3.4",
    // 127.0.0.12: a name the C library refuses (leading hyphen).
    "--ptr-record=12.0.0.127.in-addr.arpa,-lead.test",
    "--host-record=-lead.test,127.0.0.12",
];

/// How long the DNS server and the daemon may take to start.
const START_WAIT: Duration = Duration::from_secs(30);

/// A Tern instance started with `TERN_DNS_SERVER=dns`, stopped on drop.
struct Instance {
    tern: Tern,
    child: Child,
}

impl Instance {
    fn start(extra: &str, dns: SocketAddr) -> Instance {
        let tern = Tern::configure(extra).expect("configure");
        let child = Command::new(postfix_binary().expect("postfix binary"))
            .arg("-c")
            .arg(tern.config_dir())
            .arg("start-fg")
            .env("TERN_DNS_SERVER", dns.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start postfix");
        let mut me = Instance { tern, child };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("postfix start-fg exited: {status}");
            }
            if TcpStream::connect(me.tern.addr()).is_ok() {
                return me;
            }
            assert!(start.elapsed() < START_WAIT, "the daemon does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the log has `needle` (at most 15 s), and returns the log.
    fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.tern.log();
            if log.contains(needle) || start.elapsed() > Duration::from_secs(15) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one (possibly multi-line) reply.
fn reply(r: &mut BufReader<TcpStream>) -> String {
    tern_testkit::smtp::read_reply(r).expect("read")
}

/// Connects from `from` (a 127.0.0.0/8 address); returns the greeting and the stream.
fn connect_from(t: &Tern, from: &str) -> (String, TcpStream, BufReader<TcpStream>) {
    // std cannot bind before connecting; tokio's socket can, on a small runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(format!("{from}:0").parse().expect("addr"))
        .expect("bind the client address");
    let stream = rt
        .block_on(sock.connect(SocketAddr::from(([127, 0, 0, 1], t.port))))
        .expect("connect")
        .into_std()
        .expect("std socket");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut r = BufReader::new(stream.try_clone().expect("clone"));
    let greeting = reply(&mut r);
    (greeting, stream, r)
}

/// HELO, MAIL, a RCPT that reject_unlisted_recipient refuses, QUIT.
fn rejected_rcpt(t: &Tern, from: &str) -> String {
    let (greeting, mut s, mut r) = connect_from(t, from);
    assert!(greeting.starts_with("220 "), "{from}: {greeting}");
    for (cmd, want) in [
        ("HELO client.example\r\n", "250"),
        ("MAIL FROM:<a@example.org>\r\n", "250"),
        ("RCPT TO:<nosuchuser@localhost>\r\n", "550"),
        ("QUIT\r\n", "221"),
    ] {
        s.write_all(cmd.as_bytes()).expect("write");
        let got = reply(&mut r);
        assert!(got.starts_with(want), "{from}: {cmd:?} -> {got}");
    }
    greeting
}

/// A whole message; returns the queue file's bytes.
fn deliver(t: &Tern, from: &str) -> Vec<u8> {
    let (_, mut s, mut r) = connect_from(t, from);
    let mut queued = String::new();
    for (cmd, want) in [
        ("HELO client.example\r\n", "250"),
        ("MAIL FROM:<a@example.org>\r\n", "250"),
        ("RCPT TO:<root@localhost>\r\n", "250"),
        ("DATA\r\n", "354"),
        ("Subject: hi\r\n\r\nhello\r\n.\r\n", "250"),
        ("QUIT\r\n", "221"),
    ] {
        s.write_all(cmd.as_bytes()).expect("write");
        let got = reply(&mut r);
        assert!(got.starts_with(want), "{from}: {cmd:?} -> {got}");
        if got.contains("queued as ") {
            queued = got;
        }
    }
    // The message's own file (named just after its 250: docs/queue-format.md).
    let id = queued
        .trim_end()
        .rsplit(' ')
        .next()
        .expect("queue id")
        .to_owned();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listing =
            tern_queue::scan(&QueueLayout::new(t.queue_dir()), QueueName::Incoming).expect("scan");
        if let Some(entry) = listing.entries.iter().find(|e| e.id.as_str() == id) {
            return std::fs::read(&entry.path).expect("queue file");
        }
        assert!(std::time::Instant::now() < end, "{id} not in incoming/");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The index of the first log line that contains `needle`.
fn line_of(log: &str, needle: &str) -> usize {
    log.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
}

#[test]
fn names_as_postfix_finds_them() {
    let dns = Dnsmasq::start(DNSMASQ_RECORDS).expect("dnsmasq");
    let server = dns.addr();
    let i = Instance::start("", server);
    let t = &i.tern;

    // /etc/hosts first (Debian's maps 127.0.0.1 to localhost): no DNS query for it.
    rejected_rcpt(t, "127.0.0.1");
    // Confirmed names, one of them with a message.
    let qf = deliver(t, "127.0.0.3");
    rejected_rcpt(t, "127.0.0.8");
    // Unverified and absent names.
    for from in [
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
        "127.0.0.7",
        "127.0.0.11",
        "127.0.0.12",
    ] {
        rejected_rcpt(t, from);
    }
    let log = i.wait_log("disconnect from unknown[127.0.0.12]");

    // The verified names, everywhere smtpd names the client.
    for line in [
        "postfix/smtpd[",
        "connect from localhost[127.0.0.1]",
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1",
        "connect from good.test[127.0.0.3]",
        "client=good.test[127.0.0.3]",
        "disconnect from good.test[127.0.0.3]",
        "connect from multi.test[127.0.0.8]",
        "NOQUEUE: reject: RCPT from multi.test[127.0.0.8]: 550 5.1.1",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    let received = b"Received: from client.example (good.test [127.0.0.3])";
    assert!(
        qf.windows(received.len()).any(|w| w == received),
        "no Received: header with the name in {}",
        String::from_utf8_lossy(&qf)
    );

    // Unverified: Postfix's warning comes before `connect from`, the name is unknown.
    for (addr, warning) in [
        (
            "127.0.0.4",
            Some("warning: hostname forged.test does not resolve to address 127.0.0.4"),
        ),
        (
            "127.0.0.5",
            Some(
                "warning: hostname nxname.test does not resolve to address 127.0.0.5: \
                 Name or service not known",
            ),
        ),
        ("127.0.0.6", None),
        (
            "127.0.0.7",
            Some(
                "warning: hostname v6only.test does not resolve to address 127.0.0.7: \
                 No address associated with hostname",
            ),
        ),
        ("127.0.0.11", Some("warning: numeric hostname: 1.2.3.4")),
        ("127.0.0.12", None),
    ] {
        let connect = line_of(&log, &format!("connect from unknown[{addr}]"));
        let reject = line_of(
            &log,
            &format!("NOQUEUE: reject: RCPT from unknown[{addr}]: 550"),
        );
        assert!(connect < reject);
        if let Some(w) = warning {
            let at = line_of(&log, w);
            assert!(
                at + 1 == connect,
                "{w:?} is not just before connect:\n{log}"
            );
            let full = log.lines().nth(at).expect("line");
            assert!(
                full.contains(" postfix/smtpd[") && full.ends_with(w),
                "{full}"
            );
        }
    }
    // Only those warnings: a missing PTR and a refused name are silent.
    assert_eq!(log.matches("warning:").count(), 4, "{log}");
    assert_eq!(dns.queries_for("1.0.0.127.in-addr.arpa"), 0);
    assert!(dns.queries_for("3.0.0.127.in-addr.arpa") > 0);
}

#[test]
fn lookup_off() {
    let dns = Dnsmasq::start(DNSMASQ_RECORDS).expect("dnsmasq");
    let server = dns.addr();
    let i = Instance::start("smtpd_peername_lookup = no", server);
    let t = &i.tern;
    rejected_rcpt(t, "127.0.0.1");
    rejected_rcpt(t, "127.0.0.3");
    rejected_rcpt(t, "127.0.0.4");
    let log = i.wait_log("disconnect from unknown[127.0.0.4]");
    for line in [
        // Even /etc/hosts is not read.
        "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.1.1",
        "connect from unknown[127.0.0.3]",
        "NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 550 5.1.1",
        "connect from unknown[127.0.0.4]",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    assert!(!log.contains("warning:"), "{log}");
    assert_eq!(dns.queries_for("3.0.0.127.in-addr.arpa"), 0);
    assert_eq!(dns.queries_for("4.0.0.127.in-addr.arpa"), 0);
    assert!(!log.contains("localhost[127.0.0.1]"), "{log}");
}

#[test]
fn silent_dns_server_is_bounded() {
    // A UDP socket that never answers, and nothing on its TCP port.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let server = silent.local_addr().expect("addr");
    let i = Instance::start("", server);
    let start = Instant::now();
    let greeting = rejected_rcpt(&i.tern, "127.0.0.3");
    let waited = start.elapsed();
    assert!(greeting.starts_with("220 "));
    // crate::peername::LOOKUP_BOUND is 10 s; the greeting waits for the lookup.
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    let log = i.wait_log("disconnect from unknown[127.0.0.3]");
    assert!(log.contains("connect from unknown[127.0.0.3]"), "{log}");
    assert!(!log.contains("warning:"), "{log}");
}
