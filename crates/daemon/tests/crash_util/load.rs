//! The load of a crash round: SMTP sessions that record what they were doing (sending the
//! content, waiting for the reply to the end of data) and the tag and queue id of every
//! message that got its 250, beside Postfix's smtp-source for untracked volume.
//!
//! Trusts nothing the daemon says beyond the reply codes: a broken session is the kill,
//! and the message it carried is then neither acknowledged nor counted.

use std::fmt::Write as _;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Rng;

/// The local user every tracked message and every bounce notice goes to.
pub const DOMAIN: &str = "mx.example.test";
/// How many unknown local parts the bouncing recipients use (each is its own destination
/// of the local transport, so several bounces run at once).
pub const BOUNCERS: usize = 4;
/// Bodies of large messages: between these sizes (they widen the windows of DATA, of the
/// queue file's fsync and of the Maildir write).
const LARGE: (usize, usize) = (400_000, 2_500_000);
/// One message in this many is large.
const LARGE_ONE_IN: usize = 8;

/// A message whose 250 a client read.
#[derive(Debug, Clone)]
pub struct Acked {
    pub tag: String,
    pub id: String,
    /// Whether it went to the user (a delivered copy is its outcome).
    pub to_user: bool,
    /// Whether it went to an unknown user (a bounce notice is its outcome).
    pub to_bouncer: bool,
    pub size: usize,
}

/// What the sessions of one round share with the test.
#[derive(Default)]
pub struct Load {
    pub stop: AtomicBool,
    /// Sessions writing a message's content.
    pub in_data: AtomicUsize,
    /// Sessions that sent the final dot and wait for the reply (the queue commit).
    pub awaiting: AtomicUsize,
    /// Of those, the ones with a large message.
    pub awaiting_large: AtomicUsize,
    pub acked: Mutex<Vec<Acked>>,
    /// Transactions cut by a kill (their messages may or may not be queued).
    pub broken: AtomicUsize,
    /// Transactions refused (never expected: counted to fail the round).
    pub refused: Mutex<Vec<String>>,
}

/// Counts a session in a phase for as long as the value lives.
struct InPhase<'a>(&'a AtomicUsize);

impl<'a> InPhase<'a> {
    fn enter(c: &'a AtomicUsize) -> InPhase<'a> {
        c.fetch_add(1, Ordering::SeqCst);
        InPhase(c)
    }
}

impl Drop for InPhase<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The recipients of a round.
#[derive(Clone)]
pub struct Rcpts {
    pub user: String,
}

impl Rcpts {
    pub fn user_addr(&self) -> String {
        format!("{}@{DOMAIN}", self.user)
    }

    pub fn bouncer(i: usize) -> String {
        format!("crash-nouser{i}@{DOMAIN}")
    }
}

/// One session thread: messages until `load.stop`, `max` acknowledged or `deadline`,
/// reconnecting after the daemon dies (each attempt has its own tag).
pub fn sender(
    addr: &str,
    tag_prefix: &str,
    rcpts: &Rcpts,
    load: &Load,
    max: usize,
    deadline: Instant,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let mut attempt = 0usize;
    let mut acked = 0usize;
    // Bounded: every pass either sends a message, or sleeps 20 ms, until the deadline.
    while !load.stop.load(Ordering::SeqCst) && Instant::now() < deadline && acked < max {
        let Ok(mut s) = Session::connect(addr) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        while !load.stop.load(Ordering::SeqCst) && Instant::now() < deadline && acked < max {
            attempt += 1;
            let tag = format!("{tag_prefix}-a{attempt}");
            let kind = rng.below(100);
            let (to_user, to_bouncer) = match kind {
                0..60 => (true, false),
                60..85 => (false, true),
                _ => (true, true),
            };
            let size = if rng.below(LARGE_ONE_IN) == 0 {
                LARGE.0 + rng.below(LARGE.1 - LARGE.0)
            } else {
                300 + rng.below(8000)
            };
            let mut to = Vec::new();
            if to_user {
                to.push(rcpts.user_addr());
            }
            if to_bouncer {
                to.push(Rcpts::bouncer(rng.below(BOUNCERS)));
            }
            match s.send(&rcpts.user_addr(), &to, &tag, size, load) {
                Ok(Ok(id)) => {
                    acked += 1;
                    load.acked.lock().expect("lock").push(Acked {
                        tag,
                        id,
                        to_user,
                        to_bouncer,
                        size,
                    });
                }
                Ok(Err(reply)) => load
                    .refused
                    .lock()
                    .expect("lock")
                    .push(format!("{tag}: {reply}")),
                Err(_) => {
                    load.broken.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
    }
}

/// One SMTP session (EHLO done).
struct Session {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Session {
    fn connect(addr: &str) -> std::io::Result<Session> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        let w = s.try_clone()?;
        let mut c = Session {
            r: BufReader::new(s),
            w,
        };
        if !c.reply()?.starts_with("220 ") {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        c.w.write_all(b"EHLO crash.example\r\n")?;
        if !c.reply()?.starts_with("250") {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        Ok(c)
    }

    /// One transaction; `Ok(Ok(queue id))` for a 250, `Ok(Err(reply))` for a refusal,
    /// `Err` when the session broke.
    fn send(
        &mut self,
        from: &str,
        to: &[String],
        tag: &str,
        size: usize,
        load: &Load,
    ) -> std::io::Result<Result<String, String>> {
        let mut cmds = format!("MAIL FROM:<{from}>\r\n");
        for t in to {
            let _ = write!(cmds, "RCPT TO:<{t}>\r\n");
        }
        cmds.push_str("DATA\r\n");
        // RFC 2920: the server announced PIPELINING; the replies come in order.
        self.w.write_all(cmds.as_bytes())?;
        let mut refused = None;
        for _ in 0..=to.len() {
            let r = self.reply()?;
            if !r.starts_with("250") && refused.is_none() {
                refused = Some(r);
            }
        }
        let data = self.reply()?;
        if !data.starts_with("354") {
            return Ok(Err(refused.unwrap_or(data)));
        }
        {
            let _phase = InPhase::enter(&load.in_data);
            let head = format!(
                "From: <{from}>\r\nTo: {}\r\nSubject: crash {tag}\r\n\
                 Message-ID: <{tag}@crash.example>\r\nX-Crash-Tag: {tag}\r\n\r\n",
                to.join(", ")
            );
            self.w.write_all(head.as_bytes())?;
            let line = format!("{tag} {}\r\n", "x".repeat(70));
            let lines = size / line.len() + 1;
            let chunk = line.repeat(lines.min(800));
            let mut left = lines;
            // Bounded by `lines`: each pass writes up to 800 of them.
            while left > 0 {
                let n = left.min(800);
                self.w.write_all(&chunk.as_bytes()[..n * line.len()])?;
                left -= n;
            }
        }
        let _waiting = InPhase::enter(&load.awaiting);
        let _large = (size >= LARGE.0).then(|| InPhase::enter(&load.awaiting_large));
        self.w.write_all(b".\r\n")?;
        let end = self.reply()?;
        if let Some(r) = refused {
            return Ok(Err(r));
        }
        match end.trim_end().rsplit_once("queued as ") {
            Some((_, id)) if end.starts_with("250") => Ok(Ok(id.trim().to_owned())),
            _ => Ok(Err(end)),
        }
    }

    /// One reply; the end of the stream or a cut multi-line reply is an error.
    fn reply(&mut self) -> std::io::Result<String> {
        let all = tern_testkit::smtp::read_reply(&mut self.r)?;
        let last = all.lines().last().unwrap_or("");
        if all.is_empty() || last.as_bytes().get(3) == Some(&b'-') {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(all)
    }
}

/// Postfix's smtp-source (Debian's /usr/sbin/smtp-source): `sessions` sessions sending
/// `messages` messages of `size` bytes from the user to `to`. It cannot say which got a
/// 250; its messages are volume, accounted by queue file, not by message. Started by the
/// test, so the test may end it by its pid.
pub fn smtp_source(addr: &str, from: &str, to: &str, messages: usize, size: usize) -> Child {
    Command::new("/usr/sbin/smtp-source")
        .args([
            "-s",
            "2",
            "-m",
            &messages.to_string(),
            "-l",
            &size.to_string(),
        ])
        .args(["-f", from, "-t", to, "-M", "source.example"])
        .arg(addr)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/sbin/smtp-source (Debian's postfix package) is needed")
}

/// Waits at most `limit` for `child` to end, then kills it; returns whether it ended by
/// itself with status 0.
pub fn finish(mut child: Child, limit: Duration) -> bool {
    let start = Instant::now();
    // Bounded by `limit`.
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
