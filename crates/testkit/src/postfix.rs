//! A private Debian Postfix instance on a loopback port: the reference that Tern's
//! replies, log lines and mailboxes are compared with.
//!
//! [`PostfixInstance::start`] follows /work/shared/POSTFIX-REFERENCE.md: a temp
//! directory holding main.cf, master.cf (Debian's services, chroot `n`, smtpd on
//! `127.0.0.1:PORT`), the queue, data and spool directories and the mail log; then
//! `postfix -c DIR start`, and a bounded wait for the 220 greeting. Dropping the
//! instance runs `postfix -c DIR stop` and ends, by pid, whatever of it is left.
//!
//! It trusts Debian's Postfix (`/usr/sbin/postfix`, `/etc/postfix/master.cf`) and
//! needs root; without either, `start` returns an error, and tests fail, never skip.
//! Clients that must be outside `mynetworks = 127.0.0.1/32` connect from
//! [`OUTSIDE_CLIENT`] with [`connect_from`].

use std::fmt::Write as _;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
use nix::unistd::Pid;

/// The host name every instance announces (the transcripts' default).
pub const MYHOSTNAME: &str = "mx.example.test";

/// A loopback client address outside the instances' `mynetworks`.
pub const OUTSIDE_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How long `start` waits for the greeting.
const GREETING_WAIT: Duration = Duration::from_secs(20);

/// A running private Postfix; stopped on drop.
pub struct PostfixInstance {
    dir: tempfile::TempDir,
    port: u16,
}

impl PostfixInstance {
    /// Starts an instance whose main.cf is the defaults below plus `main_cf_extra`
    /// (`name = value` lines; a name given there replaces the default of that name,
    /// as Postfix 3.7 must never see a name twice).
    pub fn start(main_cf_extra: &str) -> Result<Self, String> {
        Self::start_with(main_cf_extra, "")
    }

    /// [`Self::start`] with `master_cf_extra` (whole master.cf lines) after Debian's
    /// services: a content filter's transport and re-injection listener, for example.
    pub fn start_with(main_cf_extra: &str, master_cf_extra: &str) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("a private Debian Postfix needs root".into());
        }
        for need in [
            "/usr/sbin/postfix",
            "/usr/sbin/postalias",
            "/etc/postfix/master.cf",
        ] {
            if !Path::new(need).exists() {
                return Err(format!("{need} is missing: install Debian's postfix"));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("pfref.")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temp dir: {e}"))?;
        let d = dir.path().to_path_buf();
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        set_mode(&d, 0o755).map_err(|e| io("chmod dir", e))?;
        for sub in ["queue", "data", "spool"] {
            std::fs::create_dir(d.join(sub)).map_err(|e| io(sub, e))?;
        }
        let postfix_user = nix::unistd::User::from_name("postfix")
            .ok()
            .flatten()
            .ok_or("no postfix user: install Debian's postfix")?;
        nix::unistd::chown(&d.join("data"), Some(postfix_user.uid), None)
            .map_err(|e| format!("chown data: {e}"))?;
        set_mode(&d.join("data"), 0o700).map_err(|e| io("chmod data", e))?;
        set_mode(&d.join("spool"), 0o1777).map_err(|e| io("chmod spool", e))?;

        let port = free_port().map_err(|e| io("free port", e))?;
        std::fs::write(d.join("main.cf"), main_cf(&d, main_cf_extra))
            .map_err(|e| io("main.cf", e))?;
        let debian = std::fs::read_to_string("/etc/postfix/master.cf")
            .map_err(|e| io("/etc/postfix/master.cf", e))?;
        let master = private_master_cf(&debian, port) + master_cf_extra;
        std::fs::write(d.join("master.cf"), master).map_err(|e| io("master.cf", e))?;
        std::fs::write(d.join("aliases"), "postmaster: root\n").map_err(|e| io("aliases", e))?;
        let inst = Self { dir, port };
        let dir_arg = d.display().to_string();
        inst.run(
            "/usr/sbin/postalias",
            &["-c", &dir_arg, &format!("hash:{dir_arg}/aliases")],
        )?;
        inst.run("/usr/sbin/postfix", &["-c", &dir_arg, "start"])?;
        inst.wait_for_greeting()?;
        Ok(inst)
    }

    /// The loopback port its smtpd listens on (at 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The smtpd address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The configuration directory (main.cf, master.cf, queue/, maillog).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The mail log so far (empty if not yet written).
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir().join("maillog")).unwrap_or_default()
    }

    fn run(&self, prog: &str, args: &[&str]) -> Result<(), String> {
        let out = Command::new(prog)
            .args(args)
            .output()
            .map_err(|e| format!("{prog}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{prog} {args:?}: {}\n{}{}\nmaillog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.maillog()
        ))
    }

    /// Connects until a 220 line arrives; bounded by [`GREETING_WAIT`].
    fn wait_for_greeting(&self) -> Result<(), String> {
        let deadline = Instant::now() + GREETING_WAIT;
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 512];
                if let Ok(n) = s.read(&mut buf)
                    && buf[..n].starts_with(b"220 ")
                {
                    let _ = std::io::Write::write_all(&mut s, b"QUIT\r\n");
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "Postfix in {} did not greet on port {} within {GREETING_WAIT:?}; maillog:\n{}",
            self.dir().display(),
            self.port,
            self.maillog()
        ))
    }

    /// The master's pid and its children's, from the pid file and /proc.
    fn pids(&self) -> Vec<i32> {
        let file = self.dir().join("queue/pid/master.pid");
        let Some(master) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return Vec::new();
        };
        let mut pids = vec![master];
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // Field 4 (after the parenthesised command name) is the parent pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(master) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for PostfixInstance {
    fn drop(&mut self) {
        let pids = self.pids();
        let dir_arg = self.dir().display().to_string();
        let _ = Command::new("/usr/sbin/postfix")
            .args(["-c", &dir_arg, "stop"])
            .output();
        let deadline = Instant::now() + Duration::from_secs(5);
        let alive = |p: i32| kill(Pid::from_raw(p), None).is_ok();
        while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in pids {
            if alive(p) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }
}

/// A TCP connection to `peer` from the chosen local address (bound before connect,
/// so that Postfix sees that client address).
pub fn connect_from(local: Ipv4Addr, peer: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(peer) = peer else {
        return Err(std::io::Error::other("IPv4 peers only"));
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(local, 0)),
    )?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(peer),
    )?;
    Ok(TcpStream::from(fd))
}

/// The main.cf text: the defaults, each replaced by an `extra` line of the same name.
fn main_cf(dir: &Path, extra: &str) -> String {
    let d = dir.display();
    let mut params: Vec<(String, String)> = [
        ("compatibility_level", "3.6".to_string()),
        ("queue_directory", format!("{d}/queue")),
        ("data_directory", format!("{d}/data")),
        ("mail_spool_directory", format!("{d}/spool")),
        ("maillog_file", format!("{d}/maillog")),
        ("maillog_file_prefixes", format!("{d}")),
        ("daemon_directory", "/usr/lib/postfix/sbin".into()),
        ("shlib_directory", "/usr/lib/postfix".into()),
        ("meta_directory", "/etc/postfix".into()),
        ("inet_interfaces", "127.0.0.1".into()),
        ("inet_protocols", "ipv4".into()),
        ("myhostname", MYHOSTNAME.into()),
        ("mydomain", "example.test".into()),
        ("mydestination", "$myhostname, localhost".into()),
        ("mynetworks", "127.0.0.1/32".into()),
        ("alias_maps", format!("hash:{d}/aliases")),
        ("alias_database", format!("hash:{d}/aliases")),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    for line in extra.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some(p) => p.1 = value,
            None => params.push((name, value)),
        }
    }
    let mut out = String::new();
    for (n, v) in &params {
        let _ = writeln!(out, "{n} = {v}");
    }
    out
}

/// Debian's master.cf (`debian`, the text of /etc/postfix/master.cf) with chroot `n`
/// everywhere and smtpd on `127.0.0.1:PORT` in place of the `smtp inet` service (and that
/// service's `-o` lines): the master.cf of a private instance run from a temp directory.
pub fn private_master_cf(debian: &str, port: u16) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in debian.lines() {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        skipping = false;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || fields.len() < 8 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if fields[0] == "smtp" && fields[1] == "inet" {
            let _ = writeln!(out, "127.0.0.1:{port} inet n - n - - smtpd");
            skipping = true;
            continue;
        }
        let mut f: Vec<String> = fields.iter().map(|s| (*s).to_string()).collect();
        f[4] = "n".into();
        out.push_str(&f.join(" "));
        out.push('\n');
    }
    out
}

fn free_port() -> std::io::Result<u16> {
    crate::ports::free_port().map_err(std::io::Error::other)
}

fn set_mode(p: &PathBuf, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_cf_replaces_defaults_and_appends_new_names() {
        let text = main_cf(Path::new("/x"), "mynetworks = 10.0.0.0/8\n# c\nfoo = bar\n");
        assert_eq!(text.matches("mynetworks").count(), 1);
        assert!(text.contains("mynetworks = 10.0.0.0/8\n"));
        assert!(text.ends_with("foo = bar\n"));
        assert!(text.contains("maillog_file_prefixes = /x\n"));
    }

    #[test]
    fn master_cf_rewrites_smtp_and_chroot() {
        let debian = "# c\nsmtp      inet  n       -       y       -       -       smtpd\n  -o x=y\npickup    unix  n       -       y       60      1       pickup\n  -o a=b\n";
        let got = private_master_cf(debian, 2525);
        assert_eq!(
            got,
            "# c\n127.0.0.1:2525 inet n - n - - smtpd\npickup unix n - n 60 1 pickup\n  -o a=b\n"
        );
    }
}
