//! The replayer: drives one dialog's steps over loopback against a live server (Debian's
//! Postfix or Tern) from a chosen 127.0.0.0/8 source address, and checks each step's
//! reply class as it goes. Every read is bounded ([`REPLY_WAIT`] per expected reply,
//! [`SILENCE_WAIT`] for "no reply"), every write too ([`WRITE_WAIT`]), so a silent or
//! stuck server fails the dialog, never hangs the suite.
//!
//! TLS (`T: starttls`) is a rustls client that trusts the run's test CA.
//!
//! Test-only: the servers are the test's own peers; their replies are untrusted bytes and
//! are only compared.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Dialog, Expect, Step, Who, reply_matches};

/// How long one expected reply may take (smtpd_timeout is 3s in the suite, so a timeout
/// reply comes well within this).
pub const REPLY_WAIT: Duration = Duration::from_secs(10);
/// How long "no reply" waits to see that nothing comes.
pub const SILENCE_WAIT: Duration = Duration::from_millis(700);
/// How long one write may block (a server that stopped reading).
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// How much of a reply is kept for the report.
const SHOW: usize = 120;

/// What one replay saw.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// One entry per expectation: what came (a reply's last line, `closed`, `nothing`).
    pub seen: Vec<String>,
    /// Mismatches, one message each.
    pub errors: Vec<String>,
    /// When each entry of `seen` came, from the connect (for the report).
    pub at: Vec<Duration>,
    pub elapsed: Duration,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// What a read of one reply found.
enum Got {
    Reply(String),
    Closed,
    Nothing,
}

/// Replays `d` against `server` (which is `who`) from `local`; `tls` is the client
/// configuration for `T: starttls`.
pub fn replay(
    d: &Dialog,
    who: Who,
    local: Ipv4Addr,
    server: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Replay {
    let start = Instant::now();
    let mut out = Replay::default();
    let stream = match tern_testkit::postfix::connect_from(local, server) {
        Ok(s) => s,
        Err(e) => {
            out.errors.push(format!("connect from {local}: {e}"));
            return out;
        }
    };
    let _ = stream.set_write_timeout(Some(WRITE_WAIT));
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut conn = Some(Conn::Plain(stream));
    let mut pending: Vec<u8> = Vec::new();
    let mut closed = false;
    for (i, step) in d.steps.iter().enumerate() {
        let Some(c) = conn.as_mut() else { break };
        match step {
            Step::Send(bytes) => {
                // A server that closed or stopped reading: the next expectation says so.
                let _ = c.write_all(bytes).and_then(|()| c.flush());
            }
            Step::Dribble { ms, bytes } => {
                for b in bytes {
                    if c.write_all(&[*b]).and_then(|()| c.flush()).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(*ms));
                }
            }
            Step::Pause(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            Step::Tls => {
                let Some(Conn::Plain(s)) = conn.take() else {
                    out.errors.push(format!("step {i}: TLS twice"));
                    break;
                };
                match handshake(s, tls) {
                    Ok(t) => conn = Some(Conn::Tls(Box::new(t))),
                    Err(e) => {
                        out.errors.push(format!("step {i}: TLS handshake: {e}"));
                        break;
                    }
                }
                // Plaintext read before the handshake was injected: it must be gone.
                if !pending.is_empty() {
                    out.errors.push(format!(
                        "step {i}: plaintext after the 220 to STARTTLS: {:?}",
                        String::from_utf8_lossy(&pending)
                    ));
                    pending.clear();
                }
            }
            Step::Expect { who: w, want } => {
                if !w.applies(who) {
                    continue;
                }
                let wait = if matches!(want, Expect::Nothing) {
                    SILENCE_WAIT
                } else {
                    REPLY_WAIT
                };
                let got = if closed {
                    Got::Closed
                } else {
                    read_reply(c, &mut pending, wait)
                };
                if matches!(got, Got::Closed) {
                    closed = true;
                }
                let (seen, ok) = judge(want, &got);
                if !ok {
                    out.errors
                        .push(format!("step {i}: want {want:?}, got {seen}"));
                }
                out.seen.push(seen);
                out.at.push(start.elapsed());
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}

fn judge(want: &Expect, got: &Got) -> (String, bool) {
    let seen = match got {
        Got::Reply(l) => l.chars().take(SHOW).collect(),
        Got::Closed => "closed".to_owned(),
        Got::Nothing => "nothing".to_owned(),
    };
    let ok = match (want, got) {
        (Expect::Nothing, Got::Nothing) | (Expect::Closed, Got::Closed) => true,
        (Expect::Reply { or_closed, .. }, Got::Closed) => *or_closed,
        (Expect::Reply { patterns, .. }, Got::Reply(l)) => {
            patterns.iter().any(|p| reply_matches(p, l))
        }
        _ => false,
    };
    (seen, ok)
}

/// Reads one whole reply (to the line whose fourth byte is not `-`); its last line.
fn read_reply(c: &mut Conn, pending: &mut Vec<u8>, wait: Duration) -> Got {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 8192];
    loop {
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if text.as_bytes().get(3) != Some(&b'-') {
                return Got::Reply(text);
            }
        }
        if Instant::now() >= deadline {
            return Got::Nothing;
        }
        match c.read(&mut buf) {
            Ok(0) => return Got::Closed,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Got::Closed,
        }
    }
}

/// The TLS handshake on `s`, bounded by [`REPLY_WAIT`].
fn handshake(
    s: TcpStream,
    cfg: &Arc<rustls::ClientConfig>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let name =
        rustls_pki_types::ServerName::try_from("mx.example.test").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
    let mut t = rustls::StreamOwned::new(conn, s);
    let deadline = Instant::now() + REPLY_WAIT;
    while t.conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err("timed out".into());
        }
        match t.conn.complete_io(&mut t.sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(t)
}

/// A rustls client configuration that trusts the CA in `ca_pem`.
pub fn tls_client(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
        roots.add(c.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}
