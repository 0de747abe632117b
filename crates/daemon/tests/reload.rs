//! `postfix reload` and master.cf's listeners, end to end: real daemons in temp
//! directories on loopback, raw-socket SMTP clients. A reload adds and removes `inet`
//! services as Postfix's master does, keeps unchanged sockets and open sessions, applies
//! new settings and process limits to new sessions, and says so in Postfix's words when
//! it cannot bind (a port below 1024 after the daemon gave up root). Needs root and
//! `target/<profile>/postfix` (`cargo build -p tern-commands --bin postfix`).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tern_queue::{QueueLayout, QueueName};
use tern_testkit::tern::{Tern, free_port};

/// One client session on a raw socket.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let r = BufReader::new(s.try_clone()?);
        Ok(Client { w: s, r })
    }

    /// Connects and returns the greeting.
    fn greeted(port: u16) -> (Client, String) {
        let mut c = Client::connect(port).expect("connect");
        let g = c.reply();
        assert!(g.starts_with("220 "), "{g}");
        (c, g)
    }

    /// Reads one (possibly multi-line) reply; empty at end of stream.
    fn reply(&mut self) -> String {
        tern_testkit::smtp::read_reply(&mut self.r).unwrap_or_default()
    }

    fn cmd(&mut self, line: &str) -> String {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        self.reply()
    }

    /// EHLO, MAIL and RCPT: a transaction waiting for DATA.
    fn begin(&mut self) {
        assert!(self.cmd("EHLO client.example").starts_with("250"));
        assert!(self.cmd("MAIL FROM:<a@example.org>").starts_with("250"));
        assert!(self.cmd("RCPT TO:<root@localhost>").starts_with("250"));
    }

    /// DATA, a short message, QUIT; returns the reply to the end of data.
    fn finish(&mut self) -> String {
        assert!(self.cmd("DATA").starts_with("354"));
        let queued = self.cmd("Subject: reload\r\n\r\nbody\r\n.");
        assert!(self.cmd("QUIT").starts_with("221"));
        queued
    }
}

/// master.cf's smtpd line for 127.0.0.1:port.
fn smtpd(port: u16, maxproc: &str, args: &str) -> String {
    format!("127.0.0.1:{port} inet n - n - {maxproc} smtpd {args}\n")
}

fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect(("127.0.0.1", port)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// The files in incoming/, once there is one (at most 10 s): a journaled file gets its
/// name just after its 250 (docs/queue-format.md).
fn incoming(t: &Tern) -> usize {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = tern_queue::scan(&QueueLayout::new(t.queue_dir()), QueueName::Incoming)
            .expect("scan")
            .entries
            .len();
        if n > 0 || std::time::Instant::now() > end {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Starts an instance whose master.cf is `services` (the first on `t.port`).
fn start_with(services: impl Fn(u16) -> String) -> Tern {
    let mut t = Tern::configure("").expect("configure");
    t.write_master_cf(&services(t.port)).expect("master.cf");
    t.launch().expect("launch");
    t
}

#[test]
fn reload_adds_a_listener() {
    let t = Tern::start("").expect("start");
    let p2 = free_port().expect("port");
    assert!(refused(p2));
    t.write_master_cf(&format!(
        "{}{}",
        smtpd(t.port, "-", ""),
        smtpd(p2, "-", "-o smtpd_banner=second.example")
    ))
    .expect("master.cf");
    let log = t.reload().expect("reload");
    assert!(
        !log.contains("warning:") && !log.contains("error:"),
        "{log}"
    );
    let (mut c, g) = Client::greeted(p2);
    assert_eq!(g, "220 second.example\r\n");
    c.begin();
    assert!(c.finish().starts_with("250 2.0.0 Ok: queued as "));
    let (_, g) = Client::greeted(t.port);
    assert_eq!(g, "220 mx.example.test ESMTP Postfix\r\n");
    assert_eq!(incoming(&t), 1);
}

/// A service removed from master.cf stops accepting; a session open on it finishes its
/// message after the reload.
#[test]
fn reload_removes_a_listener_and_open_sessions_finish() {
    let p2 = free_port().expect("port");
    let t = start_with(|p| format!("{}{}", smtpd(p, "-", ""), smtpd(p2, "-", "")));
    let (mut open, _) = Client::greeted(p2);
    open.begin();
    t.write_master_cf(&smtpd(t.port, "-", ""))
        .expect("master.cf");
    t.reload().expect("reload");
    assert!(refused(p2), "{p2} still accepts");
    let queued = open.finish();
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    assert_eq!(incoming(&t), 1);
    Client::greeted(t.port);
}

/// A changed port is a removal plus an addition; the service's `-o` settings move along.
#[test]
fn reload_changes_a_port() {
    let (p2, p3) = (free_port().expect("port"), free_port().expect("port"));
    let banner = "-o smtpd_banner=moved.example";
    let t = start_with(|p| format!("{}{}", smtpd(p, "-", ""), smtpd(p2, "-", banner)));
    Client::greeted(p2);
    t.write_master_cf(&format!(
        "{}{}",
        smtpd(t.port, "-", ""),
        smtpd(p3, "-", banner)
    ))
    .expect("master.cf");
    t.reload().expect("reload");
    assert!(refused(p2));
    let (mut c, g) = Client::greeted(p3);
    assert_eq!(g, "220 moved.example\r\n");
    c.begin();
    assert!(c.finish().starts_with("250 "));
}

/// An unchanged listener keeps its socket through reloads that change other services:
/// clients connecting all the while are all greeted.
#[test]
fn unchanged_listener_never_drops_a_connection() {
    let t = Tern::start("").expect("start");
    let port = t.port;
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let clients = std::thread::spawn(move || {
        let mut greeted = 0;
        let start = Instant::now();
        while !flag.load(Ordering::SeqCst) && start.elapsed() < Duration::from_mins(1) {
            let mut c = Client::connect(port).expect("connect during reload");
            let g = c.reply();
            assert!(g.starts_with("220 "), "greeting during reload: {g:?}");
            c.cmd("QUIT");
            greeted += 1;
        }
        greeted
    });
    for round in 0..6 {
        let extra = if round % 2 == 0 {
            smtpd(free_port().expect("port"), "-", "")
        } else {
            String::new()
        };
        t.write_master_cf(&format!("{}{extra}", smtpd(port, "-", "")))
            .expect("master.cf");
        t.reload().expect("reload");
    }
    done.store(true, Ordering::SeqCst);
    let greeted = clients.join().expect("client thread");
    assert!(greeted > 0);
}

/// main.cf changes reach new sessions; the open one keeps what it started with. As in
/// Postfix, a changed inet_interfaces is ignored until a restart, with its warnings.
#[test]
fn reload_applies_settings_to_new_sessions() {
    let t = Tern::start("").expect("start");
    let (mut open, g) = Client::greeted(t.port);
    assert_eq!(g, "220 mx.example.test ESMTP Postfix\r\n");
    let main = t.config_dir().join("main.cf");
    let mut text = std::fs::read_to_string(&main).expect("main.cf");
    text.push_str("smtpd_banner = $myhostname ESMTP reloaded\ninet_interfaces = 127.0.0.1\n");
    std::fs::write(&main, text).expect("main.cf");
    let log = t.reload().expect("reload");
    let (_, g) = Client::greeted(t.port);
    assert_eq!(g, "220 mx.example.test ESMTP reloaded\r\n");
    open.begin();
    assert!(open.finish().starts_with("250 "));
    let ignored = format!(
        "postfix/master[{}]: warning: service 127.0.0.1:{}: ignoring inet_interfaces change",
        pid(&t),
        t.port
    );
    for needle in [
        ignored.as_str(),
        "warning: to change inet_interfaces, stop and start Postfix",
        "reload -- version 3.7.11, configuration ",
    ] {
        assert!(log.contains(needle), "{needle} not in\n{log}");
    }
}

/// A parameter that master watches (master_vars.c: inet_protocols; also queue_directory,
/// which `postfix reload` itself cannot reach: it looks for the pid file in the new
/// directory, as Postfix's does) keeps its start-up value across a reload, with Postfix's
/// three warnings.
#[test]
fn reload_ignores_watched_parameters() {
    let t = Tern::start("").expect("start");
    let main = t.config_dir().join("main.cf");
    let mut text = std::fs::read_to_string(&main).expect("main.cf");
    text.push_str("inet_protocols = all\n");
    std::fs::write(&main, text).expect("main.cf");
    let log = t.reload().expect("reload");
    for needle in [
        "warning: ignoring inet_protocols parameter value change",
        "warning: old value: \"ipv4\", new value: \"all\"",
        "warning: to change inet_protocols, stop and start Postfix",
    ] {
        assert!(log.contains(needle), "{needle} not in\n{log}");
    }
    let (mut c, _) = Client::greeted(t.port);
    c.begin();
    assert!(c.finish().starts_with("250 "));
}

/// A lower maxproc holds new clients at the greeting; a higher one by reload lets the
/// waiting client in.
#[test]
fn reload_changes_process_limit() {
    let t = start_with(|p| smtpd(p, "1", ""));
    let (_first, _) = Client::greeted(t.port);
    let mut second = Client::connect(t.port).expect("connect");
    second
        .w
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut line = String::new();
    let early = second.r.read_line(&mut line);
    assert!(early.is_err(), "greeted beyond process_limit 1: {line:?}");
    second
        .w
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    t.write_master_cf(&smtpd(t.port, "2", ""))
        .expect("master.cf");
    t.reload().expect("reload");
    let g = second.reply();
    assert!(g.starts_with("220 "), "{g:?}");
    second.begin();
    assert!(second.finish().starts_with("250 "));
}

/// The daemon gave up root: a reload that adds a port below 1024 keeps the old
/// listeners (the new unprivileged one too) and says why; a restart binds it.
#[test]
fn privileged_port_needs_a_restart() {
    assert!(nix::unistd::Uid::effective().is_root(), "needs root");
    let low = (600..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024");
    let high = free_port().expect("port");
    let mut t = Tern::start("").expect("start");
    t.write_master_cf(&format!(
        "{}{}{}",
        smtpd(t.port, "-", ""),
        smtpd(high, "-", ""),
        smtpd(low, "-", "")
    ))
    .expect("master.cf");
    let log = t.reload().expect("reload");
    let pid = pid(&t);
    for needle in [
        format!("postfix/master[{pid}]: error: bind 127.0.0.1 port {low}: Permission denied"),
        format!(
            "postfix/master[{pid}]: warning: ignoring master.cf listener changes, keeping the old listeners"
        ),
        format!("postfix/master[{pid}]: warning: to listen on port {low}, stop and start Postfix"),
        format!("postfix/master[{pid}]: reload -- version 3.7.11"),
    ] {
        assert!(log.contains(&needle), "{needle} not in\n{log}");
    }
    assert!(refused(high) && refused(low));
    Client::greeted(t.port);
    assert!(t.stop(Duration::from_secs(15)));
    t.launch().expect("restart");
    Client::greeted(low);
    Client::greeted(high);
}

/// The daemon's pid, from the pid file.
fn pid(t: &Tern) -> u32 {
    std::fs::read_to_string(t.queue_dir().join("pid/master.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}
