//! `smtpd_sasl_type = dovecot`: the client side of Dovecot's authentication protocol
//! (version 1.1, doc/wiki "Authentication Protocol"; Postfix's xsasl_dovecot_server.c),
//! over a unix socket (`smtpd_sasl_path = private/auth`, relative to queue_directory, or
//! an absolute path) or TCP (`inet:host:port`).
//!
//! The protocol, as Tern speaks it:
//! ```text
//! C: VERSION\t1\t1            C: CPID\t<our pid>
//! S: VERSION\t1\t2  MECH\tPLAIN\tplaintext  MECH\tLOGIN\tplaintext  SPID\t..  CUID\t..
//!    COOKIE\t..  DONE
//! C: AUTH\t<id>\tPLAIN\tservice=smtp\tnologin\tlip=<server ip>\trip=<client ip>[\tsecured]
//!    [\tresp=<base64>]
//! S: CONT\t<id>\t<base64 challenge> | OK\t<id>\tuser=<name> | FAIL\t<id>[\tuser=..][\treason=..]
//! C: CONT\t<id>\t<base64 response>
//! ```
//!
//! Connections: one smtpd process of Postfix keeps one connection and uses it for its
//! sessions one after the other. Tern's smtpd serves many sessions at once, so each
//! exchange takes a connection for itself from a small pool of idle ones (or opens one)
//! and gives it back when Dovecot has answered OK or FAIL; request ids still grow per
//! [`Dovecot`] (one per settings load), as Postfix's do per process. A connection that
//! failed, timed out or was left in the middle of an exchange is closed, never reused. A
//! pooled connection that Dovecot has closed meanwhile is noticed on the first write or
//! read, and the request is sent once more on a fresh connection (Postfix retries once
//! after a failed write).
//!
//! Trust: Dovecot is the system's own auth server, but its lines are still read with
//! bounds: [`MAX_LINE`] bytes a line, [`MAX_LINES`] lines a handshake or reply, and
//! [`AUTH_TIMEOUT`] for each (Postfix's AUTH_TIMEOUT). Nothing it sends can panic.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use super::base64;
use super::options::Mechanism;
use super::{Outcome, Warn};

/// Postfix's AUTH_TIMEOUT: every connect, write and reply is bounded by it.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest line read from Dovecot (a challenge of a large mechanism fits easily).
pub const MAX_LINE: usize = 64 * 1024;

/// The most lines read for one handshake or one reply.
pub const MAX_LINES: usize = 1000;

/// Idle connections kept for later exchanges.
const POOL: usize = 16;

/// Where the auth server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Inet { host: String, port: u16 },
}

impl Target {
    /// `inet:host:port` (`[v6]:port` too), `unix:/path`, or a path; relative paths are
    /// joined to `base` (queue_directory, smtpd's working directory in Postfix).
    pub fn parse(value: &str, base: &std::path::Path) -> Result<Target, String> {
        if let Some(rest) = value.strip_prefix("inet:") {
            let (host, port) = rest.rsplit_once(':').ok_or_else(|| value.to_owned())?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port.parse::<u16>().map_err(|_| value.to_owned())?;
            if host.is_empty() {
                return Err(value.to_owned());
            }
            return Ok(Target::Inet {
                host: host.to_owned(),
                port,
            });
        }
        let path = value.strip_prefix("unix:").unwrap_or(value);
        if path.is_empty() {
            return Err(value.to_owned());
        }
        Ok(Target::Unix(base.join(path)))
    }
}

/// The client of one Dovecot auth service.
pub struct Dovecot {
    /// smtpd_sasl_path as written, for warnings.
    path: String,
    target: Target,
    idle: Mutex<Vec<Conn>>,
    /// The MECH lines of the last handshake.
    mechanisms: Mutex<Option<Vec<Mechanism>>>,
    next_id: AtomicU32,
    warn: Warn,
}

impl Dovecot {
    pub fn new(path: &str, target: Target, warn: Warn) -> Dovecot {
        Dovecot {
            path: path.to_owned(),
            target,
            idle: Mutex::new(Vec::new()),
            mechanisms: Mutex::new(None),
            next_id: AtomicU32::new(0),
            warn,
        }
    }

    /// Dovecot's mechanisms, from the last handshake; connects (and keeps the connection
    /// for an exchange) when there was none. The error is the warning already logged.
    pub async fn mechanisms(&self) -> Result<Vec<Mechanism>, String> {
        if let Some(m) = lock(&self.mechanisms).clone() {
            return Ok(m);
        }
        let conn = self.connect().await?;
        self.put_back(conn);
        Ok(lock(&self.mechanisms).clone().unwrap_or_default())
    }

    /// The mechanisms known without I/O (after a first [`Dovecot::mechanisms`]).
    pub fn cached_mechanisms(&self) -> Option<Vec<Mechanism>> {
        lock(&self.mechanisms).clone()
    }

    /// Opens a connection and reads the handshake (xsasl_dovecot_server_connect()).
    async fn connect(&self) -> Result<Conn, String> {
        let warn = |text: String| {
            (self.warn)(&text);
            text
        };
        let stream: Box<dyn Io> = match tokio::time::timeout(AUTH_TIMEOUT, self.open()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(warn(format!(
                    "SASL: Connect to Dovecot auth socket '{}' failed: {}",
                    self.path,
                    strerror(&e)
                )));
            }
            Err(_) => {
                return Err(warn(format!(
                    "SASL: Connect to Dovecot auth socket '{}' failed: {}",
                    self.path,
                    nix::errno::Errno::ETIMEDOUT.desc()
                )));
            }
        };
        let mut conn = Conn {
            stream: BufReader::new(stream),
        };
        let hello = format!("VERSION\t1\t1\nCPID\t{}\n", std::process::id());
        if let Err(e) = conn.write(hello.as_bytes()).await {
            return Err(warn(format!(
                "SASL: Couldn't send handshake: {}",
                strerror(&e)
            )));
        }
        let deadline = Instant::now() + AUTH_TIMEOUT;
        let mut handshake = Handshake::default();
        for _ in 0..MAX_LINES {
            let Some(line) = conn.read_line(deadline).await.ok().flatten() else {
                break;
            };
            match handshake.feed(&line) {
                Ok(false) => {}
                Ok(true) => {
                    *lock(&self.mechanisms) = Some(handshake.mechanisms);
                    return Ok(conn);
                }
                Err(text) => return Err(warn(text)),
            }
        }
        // Postfix gives up silently here; say why.
        Err(warn(format!(
            "SASL: Dovecot auth socket '{}' closed the handshake before DONE",
            self.path
        )))
    }

    async fn open(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match &self.target {
            Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            Target::Inet { host, port } => {
                Box::new(tokio::net::TcpStream::connect((host.as_str(), *port)).await?)
            }
        })
    }

    fn take_idle(&self) -> Option<Conn> {
        lock(&self.idle).pop()
    }

    fn put_back(&self, conn: Conn) {
        let mut idle = lock(&self.idle);
        if idle.len() < POOL {
            idle.push(conn);
        }
    }
}

/// What the exchange knows of the session (AUTH's `lip=`, `rip=`, `secured`).
pub struct Request {
    pub service: String,
    pub mechanism: String,
    pub local_ip: String,
    pub remote_ip: String,
    pub secured: bool,
}

/// One AUTH exchange with Dovecot.
pub struct DovecotExchange {
    request: Request,
    conn: Option<Conn>,
    id: u32,
    started: bool,
}

impl DovecotExchange {
    pub fn new(request: Request) -> DovecotExchange {
        DovecotExchange {
            request,
            conn: None,
            id: 0,
            started: false,
        }
    }

    /// Forgets the connection (the client gave up in the middle of the exchange).
    pub fn abort(&mut self) {
        self.conn = None;
    }

    /// The first call sends AUTH with the initial response, the others CONT.
    pub async fn step(&mut self, server: &Dovecot, response: Option<&str>) -> Outcome {
        if self.started {
            self.next(server, response.unwrap_or_default()).await
        } else {
            self.started = true;
            self.first(server, response).await
        }
    }

    async fn first(&mut self, server: &Dovecot, initial: Option<&str>) -> Outcome {
        if let Some(resp) = initial
            && !base64::is_valid_charset(resp)
        {
            return Outcome::fail("Invalid base64 data in initial response", None);
        }
        for attempt in 0..2 {
            let (mut conn, pooled) = match server.take_idle() {
                Some(c) if attempt == 0 => (c, true),
                _ => match server.connect().await {
                    Ok(c) => (c, false),
                    // The warning is logged; Postfix's reply buffer is still empty.
                    Err(_) => return Outcome::temp("", None),
                },
            };
            self.id = server
                .next_id
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            let line = auth_line(self.id, &self.request, initial);
            if conn.write(line.as_bytes()).await.is_err() {
                if attempt == 1 {
                    return Outcome::temp("Can't connect to authentication server", None);
                }
                continue;
            }
            match read_reply(&mut conn, self.id, &server.warn).await {
                // A pooled connection closed by Dovecot: once more on a fresh one.
                Err(Lost::Closed) if pooled => {}
                reply => return self.finish(server, conn, reply.ok()),
            }
        }
        Outcome::temp("Connection lost to authentication server", None)
    }

    async fn next(&mut self, server: &Dovecot, response: &str) -> Outcome {
        if !base64::is_valid_charset(response) {
            self.conn = None;
            return Outcome::fail("Invalid base64 data in continued response", None);
        }
        let Some(mut conn) = self.conn.take() else {
            return Outcome::temp("Connection lost to authentication server", None);
        };
        let line = format!("CONT\t{}\t{response}\n", self.id);
        if conn.write(line.as_bytes()).await.is_err() {
            return Outcome::temp("Connection lost to authentication server", None);
        }
        let reply = read_reply(&mut conn, self.id, &server.warn).await;
        self.finish(server, conn, reply.ok())
    }

    /// Keeps the connection for a CONT, pools it after OK or FAIL, closes it otherwise.
    fn finish(&mut self, server: &Dovecot, conn: Conn, reply: Option<Outcome>) -> Outcome {
        match reply {
            Some(outcome @ Outcome::More(_)) => {
                self.conn = Some(conn);
                outcome
            }
            Some(outcome) => {
                server.put_back(conn);
                outcome
            }
            None => Outcome::temp("Connection lost to authentication server", None),
        }
    }
}

/// `AUTH\tID\tMECH\tservice=smtp\tnologin\tlip=..\trip=..[\tsecured][\tresp=..]`.
fn auth_line(id: u32, r: &Request, initial: Option<&str>) -> String {
    let mut line = format!(
        "AUTH\t{id}\t{}\tservice={}\tnologin\tlip={}\trip={}",
        tab_free(&r.mechanism),
        tab_free(&r.service),
        r.local_ip,
        r.remote_ip
    );
    if r.secured {
        line.push_str("\tsecured");
    }
    if let Some(resp) = initial {
        line.push_str("\tresp=");
        line.push_str(resp);
    }
    line.push('\n');
    line
}

/// A mechanism name comes from the client: it must not add protocol fields or lines.
fn tab_free(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Why no reply came.
enum Lost {
    /// The connection was closed before any line: a pooled connection that Dovecot
    /// closed while idle, worth one more try on a fresh one.
    Closed,
    /// Closed later, broken, too long a line, too many lines, or no answer in time.
    Broken,
}

/// Reads lines until the reply to `id` (xsasl_dovecot_handle_reply()).
async fn read_reply(conn: &mut Conn, id: u32, warn: &Warn) -> Result<Outcome, Lost> {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    for n in 0..MAX_LINES {
        let line = match conn.read_line(deadline).await {
            Ok(Some(line)) => line,
            Ok(None) if n == 0 => return Err(Lost::Closed),
            Ok(None) | Err(_) => return Err(Lost::Broken),
        };
        match parse_reply(&line, id) {
            Parsed::Reply(outcome) => return Ok(outcome),
            Parsed::Warn(text, outcome) => {
                warn(text);
                if let Some(outcome) = outcome {
                    return Ok(outcome);
                }
            }
            Parsed::Ignore => {}
        }
    }
    Err(Lost::Broken)
}

/// What one reply line means for request `id`.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Reply(Outcome),
    /// A warning to log, and the outcome when the line was still the answer.
    Warn(&'static str, Option<Outcome>),
    /// Another request's reply, or a command the client does not know.
    Ignore,
}

/// Parses one line of Dovecot's answer to request `id`.
pub fn parse_reply(line: &str, id: u32) -> Parsed {
    let mut fields = line.split('\t');
    let command = fields.next().unwrap_or_default();
    if !matches!(command, "OK" | "CONT" | "FAIL") {
        return Parsed::Ignore;
    }
    let Some(got) = fields.next() else {
        return Parsed::Warn("SASL: Protocol error", None);
    };
    if got.parse::<u32>().ok() != Some(id) {
        return Parsed::Ignore;
    }
    let rest: Vec<&str> = fields.collect();
    let backend = || Some(Outcome::fail("Authentication backend error", None));
    match command {
        "CONT" => match rest.first() {
            Some(data) => Parsed::Reply(Outcome::More((*data).to_owned())),
            None => Parsed::Warn("missing Dovecot server CONT reply field", backend()),
        },
        "OK" => match field(&rest, "user=") {
            Some(user) => Parsed::Reply(Outcome::Done(printable(user))),
            None => Parsed::Warn("missing Dovecot server OK username field", backend()),
        },
        _ => Parsed::Reply(Outcome::fail(
            &field(&rest, "reason=").map(printable).unwrap_or_default(),
            field(&rest, "user=").map(printable),
        )),
    }
}

fn field<'a>(fields: &[&'a str], name: &str) -> Option<&'a str> {
    fields.iter().rev().find_map(|f| f.strip_prefix(name))
}

/// Postfix's printable(s, '?') for names and reasons that reach the log and replies.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The handshake of one connection (xsasl_dovecot_server_connect()'s loop).
#[derive(Default)]
struct Handshake {
    mechanisms: Vec<Mechanism>,
    saw_mech: bool,
}

impl Handshake {
    /// `Ok(true)` at DONE; the error is Postfix's warning.
    fn feed(&mut self, line: &str) -> Result<bool, String> {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.first().copied().unwrap_or_default() {
            "VERSION" => {
                let major = fields.get(1).and_then(|v| v.parse::<u32>().ok());
                let minor = fields.get(2).and_then(|v| v.parse::<u32>().ok());
                match (major, minor) {
                    (Some(1), Some(_)) => {}
                    (Some(major), Some(_)) => {
                        return Err(format!("SASL: Protocol version mismatch ({major} vs. 1)"));
                    }
                    _ => return Err("SASL: Protocol version error".to_owned()),
                }
            }
            "MECH" if fields.len() > 1 => {
                self.saw_mech = true;
                if let Some(m) = Mechanism::from_dovecot(&fields[1..])
                    && !m.props.contains(super::options::Props::PRIVATE)
                {
                    self.mechanisms.push(m);
                }
            }
            "SPID" if !self.saw_mech => {
                return Err(
                    "SASL: Connected to wrong auth socket (auth-master instead of \
                            auth-client)"
                        .to_owned(),
                );
            }
            "DONE" => return Ok(true),
            _ => {}
        }
        Ok(false)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

struct Conn {
    stream: BufReader<Box<dyn Io>>,
}

impl Conn {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stream = self.stream.get_mut();
        match tokio::time::timeout(AUTH_TIMEOUT, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// One line without its LF; `None` at end of input. Longer lines are an error.
    async fn read_line(&mut self, deadline: Instant) -> std::io::Result<Option<String>> {
        let mut buf = Vec::new();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        let mut limited = (&mut self.stream).take(limit);
        let read = limited.read_until(b'\n', &mut buf);
        match tokio::time::timeout_at(deadline, read).await {
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            Ok(Err(e)) => Err(e),
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(_)) if buf.last() != Some(&b'\n') => {
                if buf.len() > MAX_LINE {
                    Err(std::io::ErrorKind::InvalidData.into())
                } else {
                    // A last line without LF: the connection ended.
                    Ok(None)
                }
            }
            Ok(Ok(_)) => {
                buf.pop();
                Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
            }
        }
    }
}

/// The C library's text for an I/O error, as Postfix's `%m` prints it.
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these short locks cannot leave the data inconsistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        let cases: &[(&str, Parsed)] = &[
            (
                "OK\t7\tuser=tern",
                Parsed::Reply(Outcome::Done("tern".into())),
            ),
            (
                "CONT\t7\tUGFzc3dvcmQ6",
                Parsed::Reply(Outcome::More("UGFzc3dvcmQ6".into())),
            ),
            (
                "FAIL\t7\tuser=tern",
                Parsed::Reply(Outcome::fail("", Some("tern".into()))),
            ),
            (
                "FAIL\t7\treason=Password expired\tuser=t\x01x",
                Parsed::Reply(Outcome::fail("Password expired", Some("t?x".into()))),
            ),
            ("OK\t8\tuser=tern", Parsed::Ignore),
            ("SPID\t7", Parsed::Ignore),
            ("OK", Parsed::Warn("SASL: Protocol error", None)),
            (
                "OK\t7\tnologin",
                Parsed::Warn(
                    "missing Dovecot server OK username field",
                    Some(Outcome::fail("Authentication backend error", None)),
                ),
            ),
            (
                "CONT\t7",
                Parsed::Warn(
                    "missing Dovecot server CONT reply field",
                    Some(Outcome::fail("Authentication backend error", None)),
                ),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&parse_reply(line, 7), want, "{line:?}");
        }
    }

    #[test]
    fn handshake_lines() {
        let mut h = Handshake::default();
        for line in [
            "VERSION\t1\t2",
            "MECH\tPLAIN\tplaintext",
            "MECH\tLOGIN\tplaintext",
            "MECH\tX-INTERNAL\tprivate",
            "SPID\t123",
            "CUID\t1",
            "COOKIE\tabc",
        ] {
            assert_eq!(h.feed(line), Ok(false), "{line}");
        }
        assert_eq!(h.feed("DONE"), Ok(true));
        let names: Vec<&str> = h.mechanisms.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["PLAIN", "LOGIN"]);

        let errors: &[(&[&str], &str)] = &[
            (
                &["VERSION\t2\t0"],
                "SASL: Protocol version mismatch (2 vs. 1)",
            ),
            (&["VERSION\tx"], "SASL: Protocol version error"),
            (
                &["VERSION\t1\t1", "SPID\t1"],
                "SASL: Connected to wrong auth socket (auth-master instead of auth-client)",
            ),
        ];
        for (lines, want) in errors {
            let mut h = Handshake::default();
            let got = lines.iter().map(|l| h.feed(l)).find(Result::is_err);
            assert_eq!(got, Some(Err((*want).to_owned())), "{lines:?}");
        }
    }

    #[test]
    fn auth_lines_and_targets() {
        let r = Request {
            service: "smtp".into(),
            mechanism: "PLAIN".into(),
            local_ip: "127.0.0.1".into(),
            remote_ip: "192.0.2.1".into(),
            secured: true,
        };
        assert_eq!(
            auth_line(3, &r, Some("AHQAcA==")),
            "AUTH\t3\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1\tsecured\t\
             resp=AHQAcA==\n"
        );
        let r = Request {
            secured: false,
            mechanism: "LO\tGIN".into(),
            ..r
        };
        assert_eq!(
            auth_line(4, &r, None),
            "AUTH\t4\tLO?GIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1\n"
        );
        let base = std::path::Path::new("/var/spool/postfix");
        let cases: &[(&str, Result<Target, String>)] = &[
            (
                "private/auth",
                Ok(Target::Unix("/var/spool/postfix/private/auth".into())),
            ),
            (
                "/run/dovecot/auth",
                Ok(Target::Unix("/run/dovecot/auth".into())),
            ),
            ("unix:/run/a", Ok(Target::Unix("/run/a".into()))),
            (
                "inet:127.0.0.1:12345",
                Ok(Target::Inet {
                    host: "127.0.0.1".into(),
                    port: 12345,
                }),
            ),
            (
                "inet:[::1]:12345",
                Ok(Target::Inet {
                    host: "::1".into(),
                    port: 12345,
                }),
            ),
            ("inet:host", Err("inet:host".into())),
            ("inet::25", Err("inet::25".into())),
        ];
        for (value, want) in cases {
            assert_eq!(&Target::parse(value, base), want, "{value}");
        }
    }
}
