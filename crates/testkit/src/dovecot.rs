//! A private Dovecot LMTP server (Debian's `dovecot-core` and `dovecot-lmtpd`) on a loopback
//! port and a unix socket: the peer that Tern's lmtp(8) client is tested against, and
//! that Debian's Postfix lmtp(8) proves (crates/testkit/tests/lmtp_dovecot_postfix.rs).
//!
//! [`Dovecot::start`] writes a dovecot.conf into a temp directory and runs
//! `dovecot -F -c CONF` (foreground, so the child is the master and its pid is ours). The
//! configuration keeps everything inside that directory: `base_dir` (every socket Dovecot
//! makes, auth's included), `state_dir`, `log_path`, and the mail homes. Only
//! `protocols = lmtp` runs (no imap, no pop3, no login processes), with `ssl = no`, an
//! `inet_listener` on `127.0.0.1:PORT` and the `unix_listener` `BASE_DIR/lmtp` (mode 0666,
//! so that Postfix's lmtp(8), running as `postfix`, may connect).
//!
//! Users: LMTP looks recipients up in the userdb only (Dovecot's LMTP server documentation,
//! "lmtp_proxy" aside), under the name `auth_username_format = %Lu` makes of the RCPT
//! address: the whole address, lowercased, without the `+detail` (`recipient_delimiter =
//! +`). [`Dovecot::start`] uses a static userdb that takes every name;
//! [`Dovecot::start_with_users`] a passwd-file that lists some, so that others get
//! Dovecot's per-recipient `550 5.1.1 <x> User doesn't exist: x`. Every user's home is
//! `DIR/home/USER` and its mail `~/Maildir` (`mail_location = maildir:~/Maildir`), written
//! as [`MAIL_OWNER`] (`nobody:nogroup`): Dovecot refuses to store mail as root, and
//! `nobody` is on every Debian system, so no test has to create a user. Messages go to
//! INBOX whatever the detail (`lmtp_save_to_detail_mailbox = no`, the default).
//!
//! SASL: [`Dovecot::start_auth`] also serves Dovecot's auth protocol on
//! [`Dovecot::auth_socket_path`] (`BASE_DIR/auth-postfix`, mode 0666), the socket a
//! Postfix smtpd with `smtpd_sasl_type = dovecot` asks, with PLAIN and LOGIN over
//! plaintext (`disable_plaintext_auth = no`) and a passwd-file passdb of the given logins
//! (`{PLAIN}` passwords): the peer that Tern's SMTP client authenticates to.
//!
//! It trusts Debian's Dovecot (`/usr/sbin/dovecot`, `/usr/lib/dovecot/lmtp`) and needs
//! root (the master switches to `nobody` and to Dovecot's own `dovecot`/`dovenull` users);
//! without either, `start` returns an error and the tests fail, never skip. Dropping the
//! instance sends SIGTERM to the master, waits a bounded time, then SIGKILLs whatever of
//! it (master or children) is left, by pid.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid};

/// The user (and its group, `nogroup`) that owns every delivered Maildir file.
pub const MAIL_OWNER: &str = "nobody";

/// How long `start` waits for the LHLO reply.
const READY_WAIT: Duration = Duration::from_secs(20);

/// How long drop waits after SIGTERM before SIGKILL (Dovecot's master takes a second or
/// two to reap its log process).
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How long [`Dovecot::wait_for_messages`] waits.
const MAIL_WAIT: Duration = Duration::from_secs(30);

/// A running private Dovecot LMTP server; stopped on drop.
pub struct Dovecot {
    dir: tempfile::TempDir,
    master: Child,
    port: u16,
}

impl Dovecot {
    /// Starts a server whose userdb takes every recipient.
    pub fn start() -> Result<Self, String> {
        Self::launch(None)
    }

    /// Starts a server that knows only `users` (Dovecot user names: whole addresses,
    /// lowercase, no detail, e.g. `bob@lmtp.test`); other recipients get 550 5.1.1.
    pub fn start_with_users(users: &[&str]) -> Result<Self, String> {
        Self::launch(Some(users))
    }

    /// Starts a server that also authenticates `logins` (user name, password) with PLAIN
    /// and LOGIN on [`Dovecot::auth_socket_path`]; its userdb takes every recipient.
    pub fn start_auth(logins: &[(&str, &str)]) -> Result<Self, String> {
        Self::launch_with(None, Some(logins))
    }

    /// The auth socket for Postfix's smtpd (`smtpd_sasl_type = dovecot`,
    /// `smtpd_sasl_path` = this path); only with [`Dovecot::start_auth`].
    pub fn auth_socket_path(&self) -> PathBuf {
        self.dir().join("run/auth-postfix")
    }

    /// The LMTP TCP address (127.0.0.1:PORT).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The LMTP TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The LMTP unix socket (`BASE_DIR/lmtp`, mode 0666).
    pub fn socket_path(&self) -> PathBuf {
        self.dir().join("run/lmtp")
    }

    /// The temp directory: dovecot.conf, run/ (base_dir), state/, home/, dovecot.log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.master.id()
    }

    /// Dovecot's log so far (`log_path`; lmtp logs `saved mail to INBOX` per recipient),
    /// followed by what the master wrote to standard error (configuration errors).
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir().join("dovecot.log")).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir().join("stderr")).unwrap_or_default();
        if err.is_empty() {
            log
        } else {
            format!("{log}--- stderr:\n{err}")
        }
    }

    /// The Maildir of Dovecot user `user` (it exists once a message was delivered).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir().join("home").join(user).join("Maildir")
    }

    /// The messages delivered to `user`'s INBOX (`new/` and `cur/`), oldest first (by the
    /// time and microseconds at the head of Dovecot's Maildir file names), each as stored:
    /// LF line ends, Dovecot's Return-Path and Delivered-To headers on top.
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let md = self.maildir(user);
        let mut files: Vec<((u64, u64), PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(md.join(sub)).ok())
            .flat_map(|rd| rd.flatten().map(|e| e.path()))
            .map(|p| (maildir_time(&p), p))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read(p).ok())
            .collect()
    }

    /// Waits until `user` has at least `count` messages, at most 30 s; returns them (the
    /// caller's assertions then say what is missing).
    pub fn wait_for_messages(&self, user: &str, count: usize) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let got = self.messages(user);
            if got.len() >= count || start.elapsed() > MAIL_WAIT {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(users: Option<&[&str]>) -> Result<Self, String> {
        Self::launch_with(users, None)
    }

    fn launch_with(
        users: Option<&[&str]>,
        logins: Option<&[(&str, &str)]>,
    ) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("a private Dovecot needs root".into());
        }
        for need in ["/usr/sbin/dovecot", "/usr/lib/dovecot/lmtp"] {
            if !Path::new(need).exists() {
                return Err(format!(
                    "{need} is missing: apt-get install dovecot-core dovecot-lmtpd"
                ));
            }
        }
        let owner = nix::unistd::User::from_name(MAIL_OWNER)
            .ok()
            .flatten()
            .ok_or("no user nobody")?;
        let dir = tempfile::Builder::new()
            .prefix("dovecot.")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let d = dir.path().to_path_buf();
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        // nobody walks to its home, postfix to the socket: the tree must be searchable.
        set_mode(&d, 0o755).map_err(|e| io("chmod dir", e))?;
        std::fs::create_dir(d.join("state")).map_err(|e| io("state", e))?;
        std::fs::create_dir(d.join("home")).map_err(|e| io("home", e))?;
        nix::unistd::chown(&d.join("home"), Some(owner.uid), Some(owner.gid))
            .map_err(|e| format!("chown home: {e}"))?;
        let userdb = match users {
            None => format!(
                "userdb {{\n  driver = static\n  args = uid={} gid={} home={}/home/%u\n}}\n",
                owner.uid,
                owner.gid,
                d.display()
            ),
            Some(users) => {
                let file = d.join("users");
                std::fs::write(&file, passwd_file(users, owner.uid, owner.gid, &d)?)
                    .map_err(|e| io("users", e))?;
                format!(
                    "userdb {{\n  driver = passwd-file\n  args = {}\n}}\n",
                    file.display()
                )
            }
        };
        let auth = match logins {
            None => String::new(),
            Some(logins) => {
                let file = d.join("passdb");
                std::fs::write(&file, passdb_file(logins)?).map_err(|e| io("passdb", e))?;
                auth_conf(&file)
            }
        };
        let port = free_port().map_err(|e| io("free port", e))?;
        let conf = d.join("dovecot.conf");
        std::fs::write(&conf, dovecot_conf(&d, port, &userdb, &auth))
            .map_err(|e| io("dovecot.conf", e))?;
        let stderr = File::create(d.join("stderr")).map_err(|e| io("stderr", e))?;
        let master = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("/usr/sbin/dovecot: {e}"))?;
        let mut dovecot = Self { dir, master, port };
        dovecot.wait_until_ready()?;
        Ok(dovecot)
    }

    /// Connects until `LHLO` gets a 250 reply on TCP and the unix sockets exist; fails at
    /// once if the master exits (a configuration error, shown from its standard error).
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.master.try_wait() {
                return Err(format!("dovecot exited ({status}):\n{}", self.log()));
            }
            let auth_ready =
                !self.dir().join("passdb").exists() || self.auth_socket_path().exists();
            if self.socket_path().exists() && auth_ready && lhlo(self.addr()).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "Dovecot in {} did not answer LHLO on port {} within {READY_WAIT:?}; log:\n{}",
            self.dir().display(),
            self.port,
            self.log()
        ))
    }

    /// The pids of the master's children, from /proc (field 4 of stat is the parent).
    fn children(&self) -> Vec<i32> {
        let Ok(master) = i32::try_from(self.master.id()) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                let ppid = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse::<i32>()
                    .ok()?;
                (ppid == master).then_some(pid)
            })
            .collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let children = self.children();
        if let Ok(pid) = i32::try_from(self.master.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_WAIT;
        let alive = |p: i32| kill(Pid::from_raw(p), None).is_ok();
        loop {
            let master_done = !matches!(self.master.try_wait(), Ok(None));
            if master_done && !children.iter().any(|&p| alive(p)) {
                break;
            }
            if Instant::now() >= deadline {
                let _ = self.master.kill();
                for &p in &children {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
                let _ = self.master.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One LMTP greeting and LHLO exchange (RFC 2033 4.1); `Ok` on a final 250 line.
pub fn lhlo(addr: SocketAddr) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let greeting = reply(&mut r)?;
    if !greeting.starts_with("220 ") {
        return Err(format!("greeting {greeting:?}"));
    }
    w.write_all(b"LHLO tern.test\r\n")
        .map_err(|e| e.to_string())?;
    let last = reply(&mut r)?;
    let _ = w.write_all(b"QUIT\r\n");
    if last.starts_with("250 ") {
        Ok(())
    } else {
        Err(format!("LHLO reply {last:?}"))
    }
}

/// Reads a (multi-line) reply; returns its last line. At most 100 lines.
fn reply(r: &mut impl BufRead) -> Result<String, String> {
    for _ in 0..100 {
        let mut line = String::new();
        let n = r
            .by_ref()
            .take(4096)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.trim_end().to_owned());
        }
    }
    Err("reply longer than 100 lines".into())
}

/// The dovecot.conf of an instance in `dir` listening on `port`, with `userdb` (a whole
/// `userdb { }` block) and `auth` ([`auth_conf`], or empty: no logins). Everything Dovecot
/// writes stays under `dir`.
fn dovecot_conf(dir: &Path, port: u16, userdb: &str, auth: &str) -> String {
    let passdb = if auth.is_empty() {
        "# LMTP asks the userdb only, but the auth process will not start without a passdb.
passdb {
  driver = static
  args = nopassword=y
}
"
    } else {
        auth
    };
    let d = dir.display();
    let mut c = String::new();
    let _ = write!(
        c,
        "# A private Dovecot LMTP server for Tern's tests (crates/testkit/src/dovecot.rs).
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
instance_name = tern-test-{port}
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:~/Maildir
{passdb}{userdb}service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"
    );
    c
}

/// The auth settings of [`Dovecot::start_auth`]: PLAIN and LOGIN without TLS, the
/// passwd-file `passdb` at `file`, and the `auth-postfix` listener for Postfix's smtpd.
fn auth_conf(file: &Path) -> String {
    format!(
        "auth_mechanisms = plain login
disable_plaintext_auth = no
passdb {{
  driver = passwd-file
  args = {}
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
",
        file.display()
    )
}

/// passwd-file passdb lines (`user:{{PLAIN}}password::::::`) for `logins`; a field with
/// `:` or a line break would break the file and is refused.
fn passdb_file(logins: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::new();
    for (user, pass) in logins {
        let bad = |f: &str| f.is_empty() || f.contains([':', '\n', '\r']);
        if bad(user) || bad(pass) {
            return Err(format!("login {user:?} cannot go into a passwd-file"));
        }
        let _ = writeln!(out, "{user}:{{PLAIN}}{pass}::::::");
    }
    Ok(out)
}

/// passwd-file userdb lines (`user::uid:gid::home::`, Dovecot's passwd-file format) for
/// `users`; a name with `:` or a line break would break the file and is refused.
fn passwd_file(users: &[&str], uid: Uid, gid: Gid, dir: &Path) -> Result<String, String> {
    let mut out = String::new();
    for u in users {
        if u.is_empty() || u.contains([':', '\n', '\r', '/']) {
            return Err(format!("user name {u:?} cannot go into a passwd-file"));
        }
        let _ = writeln!(out, "{u}::{uid}:{gid}::{}/home/{u}::", dir.display());
    }
    Ok(out)
}

/// The (seconds, microseconds) at the head of a Dovecot Maildir file name
/// (`1795749635.M137681P22991.host,S=168,W=176`); (0, 0) for other names.
fn maildir_time(path: &Path) -> (u64, u64) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut parts = name.split('.');
    let secs = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let micros = parts
        .next()
        .and_then(|p| p.strip_prefix('M'))
        .and_then(|p| p.split('P').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    (secs, micros)
}

fn free_port() -> std::io::Result<u16> {
    crate::ports::free_port().map_err(std::io::Error::other)
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_names_sort_by_time() {
        let cases: &[(&str, (u64, u64))] = &[
            (
                "1795749635.M137681P22991.vm,S=168,W=176",
                (1_795_749_635, 137_681),
            ),
            ("1795749635.M99P22991.vm,S=168", (1_795_749_635, 99)),
            ("1795749635.M5P1.vm:2,S", (1_795_749_635, 5)),
            ("dovecot-uidlist", (0, 0)),
        ];
        for (name, want) in cases {
            assert_eq!(maildir_time(Path::new(name)), *want, "{name}");
        }
    }

    #[test]
    fn conf_keeps_everything_in_the_temp_dir() {
        let c = dovecot_conf(Path::new("/tmp/d"), 2400, "userdb {\n}\n", "");
        for want in [
            "base_dir = /tmp/d/run\n",
            "state_dir = /tmp/d/state\n",
            "log_path = /tmp/d/dovecot.log\n",
            "protocols = lmtp\n",
            "ssl = no\n",
            "    address = 127.0.0.1\n    port = 2400\n",
            "userdb {\n}\nservice lmtp {\n",
            "  driver = static\n  args = nopassword=y\n",
        ] {
            assert!(c.contains(want), "{want:?} in\n{c}");
        }
        let auth = auth_conf(Path::new("/tmp/d/passdb"));
        let c = dovecot_conf(Path::new("/tmp/d"), 2400, "userdb {\n}\n", &auth);
        for want in [
            "auth_mechanisms = plain login\n",
            "  driver = passwd-file\n  args = /tmp/d/passdb\n",
            "  unix_listener auth-postfix {\n    mode = 0666\n",
        ] {
            assert!(c.contains(want), "{want:?} in\n{c}");
        }
        assert!(!c.contains("nopassword"), "{c}");
        assert_eq!(
            passdb_file(&[("tern", "s3cret")]).unwrap(),
            "tern:{PLAIN}s3cret::::::\n"
        );
        assert!(passdb_file(&[("a:b", "x")]).is_err());
    }

    #[test]
    fn passwd_file_lines_and_refusals() {
        let (uid, gid) = (Uid::from_raw(65534), Gid::from_raw(65534));
        let got = passwd_file(&["bob@a.test"], uid, gid, Path::new("/d")).unwrap();
        assert_eq!(got, "bob@a.test::65534:65534::/d/home/bob@a.test::\n");
        for bad in ["", "a:b", "a\nb", "../x"] {
            assert!(
                passwd_file(&[bad], uid, gid, Path::new("/d")).is_err(),
                "{bad:?}"
            );
        }
    }
}
