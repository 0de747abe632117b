//! Shared by the resource fault tests: small file systems mounted for a test, an SMTP
//! client that tells a 250 from a temporary refusal, filling a file system to a chosen
//! free space, Tern's queue commands, and waiting on conditions with a bound.
//!
//! Everything here runs as root (mount(8), chmod of the daemon's directories) and talks
//! to the daemon on loopback only.

#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tern_testkit::tern::Tern;

/// The start of smtpd's reply to a queued message.
pub const QUEUED: &str = "250 2.0.0 Ok: queued as ";

/// A tmpfs mounted for the life of the value (`umount -l` on drop, so a panic leaves no
/// mount behind).
pub struct Mount(pub PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` (mount(8)'s `size=`) at `dir` with `mode`, owned by
    /// `uid`:`gid`.
    pub fn tmpfs(dir: &Path, size: &str, mode: u32, uid: u32, gid: u32) -> Mount {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode={mode:o},uid={uid},gid={gid}"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "the resource fault tests need root to mount a tmpfs at {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount(dir.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Free bytes for an unprivileged writer on the file system of `path`.
pub fn free_bytes(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).expect("statvfs");
    st.blocks_available() * st.fragment_size()
}

/// Writes `file` (on the file system of its directory) so that about `leave` bytes stay
/// free; returns its size. The file is written in 64 KiB pieces as root, which a tmpfs
/// does not reserve blocks against.
pub fn fill_leaving(file: &Path, leave: u64) -> u64 {
    let dir = file.parent().expect("a directory");
    let free = free_bytes(dir);
    assert!(free > leave, "{} has only {free} bytes free", dir.display());
    let size = free - leave;
    let mut f = std::fs::File::create(file).expect("ballast");
    let chunk = vec![b'b'; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        // n <= 64 KiB.
        f.write_all(&chunk[..usize::try_from(n).unwrap_or(0)])
            .expect("write ballast");
        left -= n;
    }
    size
}

/// The outcome of one transaction.
#[derive(Debug, Clone)]
pub enum Sent {
    Queued(String),
    /// The reply that refused it (at MAIL, RCPT, DATA or the end of data).
    Refused(String),
}

/// One SMTP session on loopback.
pub struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    /// Connects, reads the greeting and says EHLO; `Err` with what went wrong.
    pub fn connect(addr: &str) -> Result<Client, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let w = s.try_clone().map_err(|e| e.to_string())?;
        let mut c = Client {
            w,
            r: BufReader::new(s),
        };
        let greeting = c.reply()?;
        if !greeting.starts_with("220") {
            return Err(format!("greeting: {greeting}"));
        }
        let ehlo = c.command("EHLO faults.example")?;
        if !ehlo.starts_with("250") {
            return Err(format!("EHLO: {ehlo}"));
        }
        Ok(c)
    }

    /// Reads one (possibly multi-line) reply.
    pub fn reply(&mut self) -> Result<String, String> {
        let all = tern_testkit::smtp::read_reply(&mut self.r).map_err(|e| e.to_string())?;
        let last = all.lines().last().unwrap_or("");
        if all.is_empty() || last.as_bytes().get(3) == Some(&b'-') {
            return Err("connection closed".to_owned());
        }
        Ok(all)
    }

    /// Sends one command line; its reply.
    pub fn command(&mut self, line: &str) -> Result<String, String> {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        self.reply()
    }

    /// One message from `from` to `to` with `subject` and `size` body bytes.
    pub fn send(
        &mut self,
        from: &str,
        to: &str,
        subject: &str,
        size: usize,
    ) -> Result<Sent, String> {
        for cmd in [
            format!("MAIL FROM:<{from}>"),
            format!("RCPT TO:<{to}>"),
            "DATA".to_owned(),
        ] {
            let rep = self.command(&cmd)?;
            if !rep.starts_with('2') && !rep.starts_with('3') {
                let rset = self.command("RSET")?;
                if !rset.starts_with("250") {
                    return Err(format!("RSET: {rset}"));
                }
                return Ok(Sent::Refused(rep));
            }
        }
        self.content(from, subject, size)
    }

    /// The content of a message whose DATA was answered with 354; the end-of-data reply.
    pub fn content(&mut self, from: &str, subject: &str, size: usize) -> Result<Sent, String> {
        let line = "y".repeat(76);
        let mut body = format!("Subject: {subject}\r\nFrom: <{from}>\r\n\r\n");
        while body.len() < size {
            body.push_str(&line);
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        self.w
            .write_all(body.as_bytes())
            .map_err(|e| e.to_string())?;
        let rep = self.reply()?;
        Ok(match rep.strip_prefix(QUEUED) {
            Some(id) => Sent::Queued(id.trim().to_owned()),
            None => Sent::Refused(rep),
        })
    }

    pub fn quit(mut self) {
        let _ = self.command("QUIT");
    }
}

/// Sends one message in a session of its own; panics unless it is queued.
pub fn send_ok(t: &Tern, from: &str, to: &str, subject: &str) -> String {
    let mut c = Client::connect(&t.addr()).expect("connect");
    let sent = c.send(from, to, subject, 200).expect("session");
    c.quit();
    match sent {
        Sent::Queued(id) => id,
        Sent::Refused(r) => panic!("{subject}: refused: {r}"),
    }
}

/// Whether `reply` is one of the temporary storage errors Postfix's smtpd gives (cleanup's
/// write error, or the free space check at MAIL FROM).
pub fn storage_error(reply: &str) -> bool {
    reply.starts_with("451 4.3.0 Error: queue file write error")
        || reply.starts_with("452 4.3.1 Insufficient system storage")
}

/// Runs one of Tern's commands (`postqueue`, `postsuper`, ...) beside the `postfix`
/// binary with `-c CONF`; its exit code and output (stdout then stderr).
pub fn tool(t: &Tern, name: &str, args: &[&str]) -> (i32, String) {
    let bin = tern_testkit::tern::postfix_binary()
        .expect("postfix binary")
        .with_file_name(name);
    let out = Command::new(&bin)
        .arg("-c")
        .arg(t.config_dir())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Appends `text` to the instance's main.cf.
pub fn append_main_cf(t: &Tern, text: &str) {
    let path = t.config_dir().join("main.cf");
    let mut main = std::fs::read_to_string(&path).expect("main.cf");
    main.push_str(text);
    main.push('\n');
    std::fs::write(&path, main).expect("main.cf");
}

#[allow(unused_imports)] // not every test binary that has this module waits
pub use tern_testkit::support::wait_until;

/// How many messages of an mbox carry `Subject: ` followed by `prefix`.
pub fn mbox_count(mbox: &Path, prefix: &str) -> usize {
    let text = std::fs::read(mbox).unwrap_or_default();
    String::from_utf8_lossy(&text)
        .matches(&format!("\nSubject: {prefix}"))
        .count()
}

/// The subjects of the messages in a Maildir's new/ (and cur/).
pub fn maildir_subjects(maildir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(rd) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(s) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
                out.push(s.to_owned());
            }
        }
    }
    out
}

/// The queue ids the log says were delivered (`status=sent`).
pub fn sent_ids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" status=sent "))
        .filter_map(|l| {
            let (_, rest) = l.split_once("]: ")?;
            Some(rest.split(':').next()?.to_owned())
        })
        .collect()
}

/// The lines of the log that contain `needle`.
pub fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// A minimal SMTP server on a loopback port that accepts every message (the far end of
/// a relayhost): it counts the messages it took, by the `Subject:` of each.
pub struct Sink {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    subjects: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    /// Listens on `port` (127.0.0.1) until dropped.
    pub fn start(port: u16) -> Sink {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("sink bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let subjects = Arc::new(Mutex::new(Vec::new()));
        let (st, su) = (Arc::clone(&stop), Arc::clone(&subjects));
        let thread = std::thread::spawn(move || {
            // Bounded: the test drops the sink within minutes; one hour is the backstop.
            let start = Instant::now();
            while !st.load(Ordering::SeqCst) && start.elapsed() < Duration::from_hours(1) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = sink_session(s, &su);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Sink {
            port,
            stop,
            subjects,
            thread: Some(thread),
        }
    }

    pub fn subjects(&self) -> Vec<String> {
        self.subjects.lock().expect("lock").clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One SMTP session of the sink: 250 to everything, the subjects of the messages.
fn sink_session(s: TcpStream, out: &std::sync::Mutex<Vec<String>>) -> std::io::Result<()> {
    use std::io::BufRead;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    w.write_all(b"220 sink.example ESMTP\r\n")?;
    let mut line = String::new();
    for _ in 0..10_000 {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => w.write_all(b"250-sink.example\r\n250 8BITMIME\r\n")?,
            "DATA" => {
                w.write_all(b"354 go ahead\r\n")?;
                let mut subject = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    if subject.is_empty()
                        && let Some(s) = line.strip_prefix("Subject: ")
                    {
                        s.trim().clone_into(&mut subject);
                    }
                }
                out.lock().expect("lock").push(subject);
                w.write_all(b"250 2.0.0 taken\r\n")?;
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => w.write_all(b"250 ok\r\n")?,
        }
    }
    Ok(())
}
