//! DNS servers for tests, on loopback ports: [`Dnsmasq`] (Debian's `dnsmasq-base`) with
//! the records a test gives, and [`FakeDns`], a UDP socket that answers every query with
//! one response code (SERVFAIL, REFUSED) or never answers (a time-out). Point Tern at one
//! with `TERN_DNS_SERVER=IP:PORT` (the [`Dnsmasq::addr`]), or hand the address to the
//! code under test. Both stop on drop. Test-only.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::tern::free_port;

/// How long dnsmasq may take to listen.
const START_WAIT: Duration = Duration::from_secs(30);

/// A dnsmasq on 127.0.0.1:port that answers from its command line only (no resolv.conf,
/// no /etc/hosts, no upstream), logging its queries; stopped on drop.
///
/// Useful record options (dnsmasq(8)): `--local=/test/` (NXDOMAIN for every other name
/// under `test`), `--host-record=NAME,IPv4[,IPv6]`, `--mx-host=DOMAIN,TARGET,PREF`
/// (`TARGET` `.` and preference 0: a null MX), `--address=/NAME/IP`,
/// `--ptr-record=ARPA,NAME`.
pub struct Dnsmasq {
    port: u16,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (dnsmasq options); fails when dnsmasq is missing or
    /// does not listen within 30 s.
    pub fn start(records: &[&str]) -> Result<Dnsmasq, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("dnsmasq.log");
        let port = free_port()?;
        let child = Command::new("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--port={port}"))
            .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file",
            ])
            .args([
                "--log-queries",
                &format!("--log-facility={}", log.display()),
            ])
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dnsmasq is needed (Debian's dnsmasq-base): {e}"))?;
        let mut dns = Dnsmasq {
            port,
            log,
            child,
            _dir: dir,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = dns.child.try_wait() {
                return Err(format!("dnsmasq exited: {status}"));
            }
            if start.elapsed() > START_WAIT {
                return Err("dnsmasq does not listen".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(dns)
    }

    /// The server's address (`127.0.0.1:port`), the value for `TERN_DNS_SERVER`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The query log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// How many queries dnsmasq has logged for `name` (any type).
    pub fn queries_for(&self, name: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let needle = format!(" {name} ");
        log.lines()
            .filter(|l| l.contains("query[") && l.contains(&needle))
            .count()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a [`FakeDns`] does with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeAnswer {
    /// Answers with this response code (2 SERVFAIL, 5 REFUSED, ...) and no records.
    Rcode(u8),
    /// Reads the query and never answers.
    Silent,
}

/// A UDP "DNS server" on 127.0.0.1 that answers every query the same way; stopped on drop.
pub struct FakeDns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    /// Binds a loopback UDP port and serves `answer` until dropped.
    pub fn start(answer: FakeAnswer) -> Result<FakeDns, String> {
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let addr = sock.local_addr().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let FakeAnswer::Rcode(rcode) = answer else {
                    continue;
                };
                if let Some(reply) = error_reply(&buf[..n], rcode) {
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        Ok(FakeDns {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The query turned into a reply with `rcode`: same id and question, QR and RA set, no
/// records (RFC 1035 4.1.1). None for a packet too short to be a query.
fn error_reply(query: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut reply = query.to_vec();
    // QR=1, opcode and RD kept; RA=1, rcode.
    reply[2] |= 0x80;
    reply[3] = 0x80 | (rcode & 0x0f);
    // One question, no answers, authority or additional records (drops an EDNS OPT).
    reply[4..6].copy_from_slice(&1u16.to_be_bytes());
    reply[6..12].fill(0);
    // Keep the header and the first question only.
    let mut pos = 12;
    while let Some(&len) = reply.get(pos) {
        pos += 1 + usize::from(len);
        if len == 0 {
            break;
        }
    }
    reply.truncate((pos + 4).min(reply.len()));
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies() {
        // id 0x1234, RD, one question `a.test IN A`, one additional (EDNS) record.
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
        q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
        let r = error_reply(&q, 2).expect("reply");
        assert_eq!(&r[..4], &[0x12, 0x34, 0x81, 0x82]);
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[12..], b"\x01a\x04test\x00\x00\x01\x00\x01");
        assert_eq!(error_reply(&q[..5], 2), None);
    }
}
