//! Shared by access_side_by_side and open_relay: one main.cf configuration started as a
//! private Debian Postfix and as a Tern daemon (the same restriction lines and table
//! files for both), and sessions sent to each from a chosen 127.0.0.x source address,
//! compared on replies and on the `NOQUEUE: reject: ...` log lines.
//!
//! Needs root, Debian's postfix and postmap, and `target/<profile>/postfix`; fails, never
//! skips, without them.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use tern_testkit::access::{converse, disconnects, normalize_reply, restriction_lines};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::tern::Tern;

/// The lines every configuration starts from (both servers): mynetworks holds
/// 127.0.0.0-127.0.0.3, so that client 1 is inside and 9 outside.
pub const BASE: &str = "mydomain = example.test\n\
    myorigin = $myhostname\n\
    mydestination = $myhostname, localhost\n\
    mynetworks = 127.0.0.0/30\n";

/// One main.cf configuration: lines (where `{dir}` is the directory of the table files),
/// table files, and the tables to build with Debian's postmap (hash:).
pub struct Config {
    pub name: &'static str,
    pub main_cf: &'static str,
    pub files: &'static [(&'static str, &'static str)],
    pub postmap: &'static [&'static str],
}

/// One session: the configuration's name, the last byte of the client address
/// (127.0.0.N), and the commands separated by `|` (a `\n` inside a command pipelines).
pub type Case = (&'static str, u8, &'static str);

/// What one server said in one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub replies: Vec<String>,
    pub log: Vec<String>,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.replies {
            writeln!(f, "      {r}")?;
        }
        for l in &self.log {
            writeln!(f, "      log: {l}")?;
        }
        Ok(())
    }
}

/// A running server of either kind.
pub enum Server {
    Postfix(PostfixInstance),
    Tern(Tern),
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Postfix(p) => p.addr(),
            Server::Tern(t) => SocketAddr::from((Ipv4Addr::LOCALHOST, t.port)),
        }
    }

    pub fn log(&self) -> String {
        match self {
            Server::Postfix(p) => p.maillog(),
            Server::Tern(t) => t.log(),
        }
    }

    /// The queue directory (Postfix's `queue/`, Tern's `spool/`).
    pub fn queue_dir(&self) -> PathBuf {
        match self {
            Server::Postfix(p) => p.dir().join("queue"),
            Server::Tern(t) => t.queue_dir(),
        }
    }

    /// Files in the message queues (incoming, active, deferred, hold, maildrop).
    pub fn queued_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for q in [
            "incoming", "active", "deferred", "hold", "maildrop", "corrupt",
        ] {
            collect_files(&self.queue_dir().join(q), &mut out, 0);
        }
        out
    }

    /// Runs one session and takes its replies and restriction log lines.
    pub fn ask(&self, client: u8, commands: &[&str]) -> Answer {
        let before_log = self.log();
        let before = disconnects(&before_log);
        let local = Ipv4Addr::new(127, 0, 0, client);
        let replies = match converse(local, self.addr(), commands) {
            Ok(r) => r
                .iter()
                .enumerate()
                .map(|(i, r)| normalize_reply(i, r))
                .collect(),
            Err(e) => vec![format!("session error: {e}")],
        };
        let segment = tern_testkit::access::session_log(|| self.log(), before_log.len(), before);
        Answer {
            replies,
            log: restriction_lines(&segment),
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth < 4 {
            collect_files(&p, out, depth + 1);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

/// The table files of a configuration, in a directory Postfix's unprivileged smtpd can
/// read.
pub struct Tables {
    pub dir: tempfile::TempDir,
}

impl Tables {
    /// The files of `config`, indexed with `postmap` (each server reads the tables its
    /// own postmap builds: Tern's `hash:` is not Berkeley DB, see the README).
    pub fn write(config: &Config, postmap: &Path) -> Tables {
        let dir = tempfile::Builder::new()
            .prefix("access-maps.")
            .tempdir_in("/tmp")
            .expect("temp dir");
        set_mode(dir.path(), 0o755);
        for (name, text) in config.files {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("table file");
            set_mode(&path, 0o644);
        }
        for name in config.postmap {
            let path = dir.path().join(name);
            let out = Command::new(postmap)
                .arg(format!("hash:{}", path.display()))
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", postmap.display()));
            assert!(
                out.status.success(),
                "postmap {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Tables { dir }
    }

    /// The configuration's main.cf lines (after [`BASE`]) with `{dir}` filled in.
    pub fn main_cf(&self, config: &Config) -> String {
        let text = format!("{BASE}{}", config.main_cf);
        text.replace("{dir}", &self.dir.path().display().to_string())
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Starts Debian's Postfix with `main_cf` (panics, with its log, when it cannot).
pub fn start_postfix(main_cf: &str) -> Server {
    Server::Postfix(PostfixInstance::start(main_cf).unwrap_or_else(|e| {
        panic!("Debian's Postfix did not start (install postfix; run as root): {e}")
    }))
}

/// Starts a Tern daemon with `main_cf` (appended to testkit's defaults, so each name
/// given here wins).
pub fn start_tern(main_cf: &str) -> Server {
    let mut t = Tern::configure(main_cf).expect("configure Tern");
    if let Err(e) = t.launch() {
        panic!("Tern did not start: {e}\nlog:\n{}", t.log());
    }
    Server::Tern(t)
}

/// Runs every case of `config` against both servers; returns one report per case that
/// differs (and the number of cases run).
pub fn compare_config(config: &Config, cases: &[Case]) -> (usize, Vec<String>) {
    let tables = Tables::write(config, Path::new("/usr/sbin/postmap"));
    let main_cf = tables.main_cf(config);
    let tern_postmap = tern_testkit::tern::postfix_binary()
        .expect("target/<profile>/postfix")
        .with_file_name("postmap");
    let tern_tables = Tables::write(config, &tern_postmap);
    let postfix = start_postfix(&main_cf);
    let tern = start_tern(&tern_tables.main_cf(config));
    let mut diffs = Vec::new();
    let mut run = 0;
    for (name, client, commands) in cases.iter().filter(|c| c.0 == config.name) {
        run += 1;
        let commands: Vec<&str> = commands.split('|').collect();
        let want = postfix.ask(*client, &commands);
        let got = tern.ask(*client, &commands);
        let show = std::env::var_os("ACCESS_SBS_SHOW").is_some();
        if want != got || show {
            let mut report = String::new();
            let _ = writeln!(
                report,
                "config {name}, client 127.0.0.{client}, commands {commands:?}"
            );
            let _ = write!(report, "    postfix:\n{want}    tern:\n{got}");
            if want == got {
                eprintln!("same: {report}");
            } else {
                diffs.push(report);
            }
        }
    }
    if std::env::var_os("ACCESS_SBS_SHOW").is_some() {
        eprintln!("== {} main.cf:\n{main_cf}", config.name);
    }
    (run, diffs)
}
