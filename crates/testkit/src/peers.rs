//! Servers for testing an SMTP/LMTP client: a scripted (and hostile) server on a std
//! thread, Postfix's smtp-sink, and an aiosmtpd server that records each envelope with
//! its raw MAIL/RCPT parameters and content. Test-only.
//!
//! Every peer listens on 127.0.0.1 only; every read has a timeout and every loop a bound,
//! so a client that misbehaves fails its test instead of hanging it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One step of a scripted server's conversation.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes as they are (include the CRLF).
    Send(String),
    /// Send these bytes one at a time, pausing between them.
    Trickle(String, Duration),
    /// Read one line and check that it starts with this text (ASCII case ignored).
    Expect(String),
    /// Read the message content up to and including the line ".", keeping its bytes.
    ReadData,
    /// Keep the connection open without a word for this long, then go on.
    Sleep(Duration),
    /// Close the connection (the script ends).
    Close,
}

/// Shorthand for [`Step::Send`] of one reply line: `send("250 ok")` sends `250 ok\r\n`.
pub fn send(line: &str) -> Step {
    Step::Send(format!("{line}\r\n"))
}

/// Shorthand for [`Step::Expect`].
pub fn expect(prefix: &str) -> Step {
    Step::Expect(prefix.to_owned())
}

/// What a scripted server saw.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    /// The client's command lines, without CRLF.
    pub lines: Vec<String>,
    /// The raw bytes of each message content read by [`Step::ReadData`], final dot line
    /// included.
    pub data: Vec<Vec<u8>>,
    /// The first step that did not go as scripted.
    pub error: Option<String>,
}

/// A server on 127.0.0.1 that plays one script for one connection.
pub struct ScriptedServer {
    pub port: u16,
    thread: JoinHandle<Transcript>,
}

impl ScriptedServer {
    /// Listens on a free port and plays `script` to the first client.
    pub fn start(script: Vec<Step>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let thread = std::thread::spawn(move || play(&listener, &script));
        ScriptedServer { port, thread }
    }

    /// Waits for the script to end and returns what the client said.
    pub fn finish(self) -> Transcript {
        self.thread.join().expect("scripted server thread")
    }
}

fn play(listener: &TcpListener, script: &[Step]) -> Transcript {
    let mut t = Transcript::default();
    let stream = match accept_within(listener, Duration::from_secs(20)) {
        Ok(s) => s,
        Err(e) => {
            t.error = Some(format!("accept: {e}"));
            return t;
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    for step in script {
        let r = match step {
            Step::Send(text) => writer.write_all(text.as_bytes()).map_err(|e| e.to_string()),
            Step::Trickle(text, pause) => text.as_bytes().iter().try_for_each(|b| {
                std::thread::sleep(*pause);
                writer.write_all(&[*b]).map_err(|e| e.to_string())
            }),
            Step::Expect(prefix) => read_line(&mut reader).and_then(|line| {
                let ok = line
                    .get(..prefix.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(prefix));
                t.lines.push(line.clone());
                if ok {
                    Ok(())
                } else {
                    Err(format!("expected {prefix:?}, got {line:?}"))
                }
            }),
            Step::ReadData => read_data(&mut reader).map(|d| t.data.push(d)),
            Step::Sleep(d) => {
                std::thread::sleep(*d);
                Ok(())
            }
            Step::Close => break,
        };
        if let Err(e) = r {
            t.error = Some(format!("{step:?}: {e}"));
            break;
        }
    }
    t
}

fn accept_within(listener: &TcpListener, limit: Duration) -> std::io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && start.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = Vec::new();
    let n = r
        .take(100_000)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("client closed the connection".into());
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn read_data(r: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    for _ in 0..1_000_000 {
        let mut line = Vec::new();
        let n = r
            .take(1_000_000)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("client closed the connection in DATA".into());
        }
        data.extend_from_slice(&line);
        if line == b".\r\n" {
            return Ok(data);
        }
    }
    Err("too many lines".into())
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on 127.0.0.1:{port}"))
}

fn free_port() -> u16 {
    crate::ports::free_port().expect("free port")
}

/// A running child process, killed on drop.
pub struct Peer {
    pub port: u16,
    child: Child,
    /// Where the peer records what it received.
    pub record: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Postfix's smtp-sink (`/usr/sbin/smtp-sink`, Debian's postfix package) on a free port,
/// with PIPELINING and 8BITMIME, appending every message with its envelope to
/// [`Peer::record`] (`-D`). Needs root (it runs `-u postfix`).
pub fn smtp_sink(extra_args: &[&str]) -> Result<Peer, String> {
    let bin = Path::new("/usr/sbin/smtp-sink");
    if !bin.is_file() {
        return Err("/usr/sbin/smtp-sink missing: apt-get install postfix".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let record = dir.path().join("dump");
    // smtp-sink writes the dump as user postfix, into this directory.
    let chown = Command::new("chown")
        .arg("postfix")
        .arg(dir.path())
        .status();
    if !chown.is_ok_and(|s| s.success()) {
        return Err("chown postfix on the dump directory failed (run as root)".into());
    }
    // The port is free when chosen, but a test running beside may take it before
    // smtp-sink binds it; smtp-sink then exits at once, and a port that answers could be
    // the other test's server: the sink must still run once the port answers.
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(bin)
            .arg("-u")
            .arg("postfix")
            .arg("-D")
            .arg(&record)
            .args(extra_args)
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("smtp-sink: {e}"))?;
        let up = wait_for_port(port, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
        if up.is_ok() && matches!(child.try_wait(), Ok(None)) {
            return Ok(Peer {
                port,
                child,
                record,
                _dir: dir,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        last = up
            .err()
            .unwrap_or_else(|| format!("smtp-sink exited (port {port})"));
    }
    Err(last)
}

/// An aiosmtpd server (Debian's python3-aiosmtpd, run with /usr/bin/python3) on a free
/// port that offers SIZE, 8BITMIME, SMTPUTF8 and (with `dsn`) DSN, accepts every
/// parameter, and appends each message to [`Peer::record`] as lines: `MAIL FROM:<a>
/// SIZE=1`, one `RCPT TO:<b> NOTIFY=...` per recipient (the raw arguments), `CONTENT `
/// and the content in hex (as received: dot-unstuffed, CRLF kept), then an empty line.
pub fn aiosmtpd_recorder(dsn: bool) -> Result<Peer, String> {
    let python = Path::new("/usr/bin/python3");
    if !python.is_file() {
        return Err("/usr/bin/python3 missing".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let record = dir.path().join("envelopes.jsonl");
    // The port is free when chosen, but another test may take it before Python binds
    // it (tests run in parallel): the server says READY only once its own listener is
    // up, and a server that could not bind exits, so the next port is tried. (Waiting
    // for the port to answer could find another test's server there.)
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(python)
            .arg("-c")
            .arg(AIOSMTPD_RECORDER)
            .arg(port.to_string())
            .arg(&record)
            .arg(if dsn { "dsn" } else { "nodsn" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() == "READY" {
            return Ok(Peer {
                port,
                child,
                record,
                _dir: dir,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        last = format!("aiosmtpd did not start on port {port} (is python3-aiosmtpd installed?)");
    }
    Err(last)
}

const AIOSMTPD_RECORDER: &str = r#"
import sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

port, record, dsn = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "dsn"
DSN_PARAMS = ("ENVID", "RET", "NOTIFY", "ORCPT")

class RecordingSMTP(SMTP):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.raw_mail = None
        self.raw_rcpts = []
    def _getparams(self, params):
        got = super()._getparams(params)
        if got is not None and dsn:
            for k in DSN_PARAMS:
                got.pop(k, None)
        return got
    async def smtp_MAIL(self, arg):
        self.raw_mail = arg
        self.raw_rcpts = []
        return await super().smtp_MAIL(arg)
    async def smtp_RCPT(self, arg):
        self.raw_rcpts.append(arg)
        return await super().smtp_RCPT(arg)

class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if dsn:
            responses.insert(1, "250-DSN")
        return responses
    async def handle_DATA(self, server, session, envelope):
        lines = ["MAIL " + server.raw_mail]
        lines += ["RCPT " + r for r in server.raw_rcpts]
        lines.append("CONTENT " + envelope.original_content.hex())
        with open(record, "a") as f:
            f.write("\n".join(lines) + "\n\n")
        return "250 2.0.0 Ok: queued as RECORDED"

class RecordingController(Controller):
    def factory(self):
        return RecordingSMTP(self.handler, enable_SMTPUTF8=True, decode_data=False,
                             hostname="aiosmtpd.example")

c = RecordingController(Handler(), hostname="127.0.0.1", port=port)
c.start()
print("READY", flush=True)
# Run until the test closes stdin (or kills us).
sys.stdin.read()
c.stop()
"#;
