//! Shared by the deliver_* tests: throw-away users, a Tern instance with qmgr and the
//! agents of Debian's master.cf, sending with smtplib, waiting for log lines and
//! checking their shape.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Re-exported: local_e2e_util takes it from here; not every test that includes this
/// module uses it.
#[allow(unused_imports)]
pub use tern_testkit::support::wait_for;
use tern_testkit::support::{constant_fields, smtplib_send};
use tern_testkit::tern::Tern;

/// useradd and userdel lock the password files: one at a time.
static USERS: Mutex<()> = Mutex::new(());

/// A user made for one test (named `tern-t-*`), removed on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<PathBuf>,
}

impl TestUser {
    /// `useradd` with a group of the same name; `home`: made with the user (`-m`).
    pub fn new(name: &str, home: Option<&Path>) -> TestUser {
        assert!(name.starts_with("tern-t-"));
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the delivery tests need root"
        );
        let _g = USERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A user left over by a run that crashed.
        let _ = Command::new("userdel").arg(name).output();
        let _ = Command::new("groupdel").arg(name).output();
        let mut cmd = Command::new("useradd");
        cmd.args(["-U", "-s", "/bin/sh"]);
        match home {
            Some(h) => {
                cmd.arg("-m").arg("-d").arg(h);
            }
            None => {
                cmd.args(["-M", "-d", "/nonexistent"]);
            }
        }
        let out = cmd.arg(name).output().expect("useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let u = nix::unistd::User::from_name(name)
            .expect("getpwnam")
            .expect("the new user");
        TestUser {
            name: name.to_owned(),
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: home.map(Path::to_owned),
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _g = USERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// master.cf: the listener, qmgr, and Debian's local and virtual lines.
pub fn master_cf(port: u16) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         qmgr unix n - n 300 1 qmgr\n\
         local unix - n n - - local\n\
         virtual unix - n n - - virtual\n"
    )
}

/// The binaries the daemon needs next to each other.
pub fn check_binaries() {
    let postfix = tern_testkit::tern::postfix_binary().expect("postfix binary");
    let helper = postfix.with_file_name("tern-delivery");
    assert!(
        helper.is_file(),
        "{} missing: run `cargo build -p tern-commands --bins` first",
        helper.display()
    );
}

/// An instance with `extra` in main.cf and the agents in master.cf, not started.
pub fn configure(extra: &str) -> Tern {
    check_binaries();
    let t = Tern::configure(extra).expect("configure");
    t.write_master_cf(&master_cf(t.port)).expect("master.cf");
    t
}

/// [`configure`] with a mail spool of its own (`mail_spool_directory`, a 1777 directory
/// `mail` in the instance's directory); returns the instance and the spool.
pub fn configure_with_spool(extra: &str) -> (Tern, PathBuf) {
    let t = configure(extra);
    let mail = spool(t.dir.path(), "mail");
    let main_cf = t.config_dir().join("main.cf");
    let text = std::fs::read_to_string(&main_cf).expect("main.cf");
    std::fs::write(
        &main_cf,
        text + &format!("mail_spool_directory = {}\n", mail.display()),
    )
    .expect("main.cf");
    (t, mail)
}

/// Runs `program` with `args` and `input` on its standard input (a sendmail submission);
/// returns its exit code and standard error.
pub fn run_with_input(program: &Path, args: &[&str], input: &[u8]) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sendmail -C conf [args] to` with a message of `subject`; panics unless it exits 0.
pub fn sendmail_subject(program: &Path, conf: &Path, args: &[&str], to: &str, subject: &str) {
    let conf = conf.display().to_string();
    let mut all = vec!["-C", conf.as_str()];
    all.extend_from_slice(args);
    all.push(to);
    let (code, err) = run_with_input(
        program,
        &all,
        format!("Subject: {subject}\n\nbody\n").as_bytes(),
    );
    assert_eq!(code, 0, "{} {all:?}: {err}", program.display());
}

/// Sends one message with smtplib; returns the queue id from the 250 reply.
pub fn send(port: u16, to: &str, subject: &str) -> String {
    let data = format!(
        "Subject: {subject}\r\nFrom: sender@example.org\r\n\r\nhello\r\nFrom the start\r\n"
    );
    smtplib_send(port, "sender@example.org", &[to], &data)
}

/// The delivery lines of `program` (`postfix/local`) about queue id `id`, each as
/// `program[PID]: QID: ...` with the pid, the id and the delays made constant, and the
/// pids seen.
pub fn delivery_lines(log: &str, program: &str, id: &str) -> (Vec<String>, Vec<u32>) {
    let mut lines = Vec::new();
    let mut pids = Vec::new();
    for line in log.lines() {
        let Some((head, text)) = line.split_once("]: ") else {
            continue;
        };
        let Some((prog, pid)) = head.rsplit(' ').next().and_then(|p| p.split_once('[')) else {
            continue;
        };
        if prog != program || !text.starts_with(&format!("{id}: to=<")) {
            continue;
        }
        let text = constant_fields(&text.replacen(id, "QID", 1), &["delay=", "delays="]);
        pids.push(pid.parse().expect("pid"));
        lines.push(format!("{prog}[PID]: {text}"));
    }
    (lines, pids)
}

/// The daemon's pid from the pid file.
pub fn daemon_pid(t: &Tern) -> u32 {
    let text = std::fs::read_to_string(t.queue_dir().join("pid/master.pid")).expect("pid");
    text.trim().parse().expect("pid number")
}

/// The children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The delivery helper's worker processes of the daemon `pid`.
pub fn workers(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for c in children(pid) {
        let cmdline = std::fs::read(format!("/proc/{c}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("supervisor") {
            out.extend(children(c));
        }
    }
    out
}

/// The process's real uid (from /proc).
pub fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("Uid: line")
}

/// `s-nail -N -H -f FILE`: the header summary of a mailbox (s-nail must be installed).
pub fn snail_headers(mbox: &Path) -> String {
    let out = Command::new("s-nail")
        .args(["-N", "-H", "-f"])
        .arg(mbox)
        .env("MAILRC", "/dev/null")
        .output()
        .expect("s-nail is needed (apt-get install s-nail)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Tern's program `name` (sendmail, postqueue, ...), next to its `postfix`.
pub fn tern_program(name: &str) -> PathBuf {
    tern_testkit::tern::postfix_binary()
        .expect("postfix binary")
        .with_file_name(name)
}

/// A spool directory `dir/name` anyone may create a mailbox or Maildir in (1777).
pub fn spool(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::create_dir(&p).expect("spool directory");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    p
}
