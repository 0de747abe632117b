//! Shared by the relay_* tests: a Tern instance with qmgr and the smtp/lmtp transports in
//! master.cf, started with extra environment (TERN_DNS_SERVER) and stopped on drop; the
//! log lines of one queue id; a counting TCP relay in front of a peer. Needs
//! `target/<profile>/postfix` (`cargo build -p tern-commands`), root, Debian's Postfix
//! tools (smtp-sink), dnsmasq and python3-aiosmtpd; tests fail, never skip, without them.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tern_testkit::support::{constant_fields, program_and_text};
use tern_testkit::tern::{Tern, postfix_binary};

/// The transports of every relay test, after the smtpd line.
pub const SERVICES: &str = "qmgr unix n - n 300 1 qmgr\n\
     smtp unix - - n - - smtp\n\
     relay unix - - n - - smtp\n\
     lmtp unix - - n - - lmtp\n\
     error unix - - n - - error\n\
     discard unix - - n - - discard\n";

/// A running instance, stopped (SIGKILL to its own child) on drop.
pub struct Instance {
    pub t: Tern,
    child: Child,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// main.cf gets `main`; master.cf the smtpd line, [`SERVICES`] and `extra_services`;
    /// the daemon runs with `env`.
    pub fn start(main: &str, extra_services: &str, env: &[(&str, String)]) -> Instance {
        let t = Tern::configure(main).expect("configure");
        t.write_master_cf(&format!(
            "127.0.0.1:{} inet n - n - - smtpd\n{SERVICES}{extra_services}",
            t.port
        ))
        .expect("master.cf");
        let mut cmd = Command::new(postfix_binary().expect("postfix binary"));
        cmd.arg("-c")
            .arg(t.config_dir())
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start postfix");
        let mut i = Instance { t, child };
        let start = Instant::now();
        loop {
            assert!(
                i.child.try_wait().expect("wait").is_none(),
                "postfix start-fg exited:\n{}",
                i.t.log()
            );
            if TcpStream::connect(("127.0.0.1", i.t.port)).is_ok() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no listener");
            std::thread::sleep(Duration::from_millis(50));
        }
        i
    }

    pub fn log(&self) -> String {
        self.t.log()
    }

    /// Waits for `needle` `count` times in the log; returns the log.
    pub fn wait(&self, needle: &str, count: usize) -> String {
        tern_testkit::support::wait_for(|| self.t.log(), needle, count)
    }
}

/// The lines about queue id `id` of `program` (`postfix/smtp`), with the id made `QID`
/// and the delays `N`.
pub fn lines(log: &str, program: &str, id: &str) -> Vec<String> {
    log.lines()
        .filter_map(program_and_text)
        .filter(|(p, t)| *p == program && t.starts_with(&format!("{id}: ")))
        .map(|(_, t)| constant_fields(&t.replacen(id, "QID", 1), &["delay=", "delays="]))
        .collect()
}

/// The full lines (with `program[pid]`) that contain `needle`.
pub fn raw_lines<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// A TCP relay on 127.0.0.1 that forwards each connection to `target` and counts them.
pub struct Counter {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Counter {
    pub fn start(target: u16) -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s) = (Arc::clone(&accepted), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        n.fetch_add(1, Ordering::SeqCst);
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(("127.0.0.1", target)) {
                            pipe(client, server);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Counter {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways until either side closes (each direction on its own thread; reads
/// time out after 60 s so no thread outlives a test by much).
fn pipe(a: TcpStream, b: TcpStream) {
    for (mut from, mut to) in [
        (a.try_clone().expect("clone"), b.try_clone().expect("clone")),
        (b, a),
    ] {
        let _ = from.set_read_timeout(Some(Duration::from_mins(1)));
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}

/// Waits up to 20 s for `path` to contain `needle`; returns the text (whatever it holds
/// then).
pub fn wait_file(path: &std::path::Path, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || start.elapsed() > Duration::from_secs(20) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
