//! Shared by the mailbox and virtual(8) tests: a minimal sequential test runner (these
//! tests switch user ids, which needs a single-threaded process, and libtest runs every
//! test on a thread of its own, so their targets use `harness = false`), throw-away system
//! users (`tern-t-*`, made with useradd and removed after), and checks for the programs the
//! tests read mailboxes with.
#![allow(dead_code, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub type Case = (&'static str, fn() -> Result<(), String>);

/// Runs the cases whose names contain every non-flag argument (cargo test's filter);
/// prints libtest-like lines and `N passed, N failed`; exits 1 on a failure.
pub fn run(cases: &[Case]) {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in cases {
            println!("{name}: test");
        }
        return;
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if !filters.iter().all(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        match case() {
            Ok(()) => {
                passed += 1;
                println!(
                    "test {name} ... ok ({:.1}s)",
                    started.elapsed().as_secs_f32()
                );
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n    {}", e.replace('\n', "\n    "));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Fails unless running as root (the tests make users and switch ids).
pub fn need_root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err("these tests need root (they create users with useradd and switch ids)".into())
    }
}

/// Fails with an install hint unless `prog` is on PATH.
pub fn need_program(prog: &str, package: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()));
    if found {
        Ok(())
    } else {
        Err(format!(
            "{prog} is missing: the CI must install the Debian package {package}"
        ))
    }
}

/// A system user that exists while this value lives.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl TestUser {
    /// Creates `tern-t-SUFFIX` with its own group and a home directory (0700) under `base`.
    pub fn create(suffix: &str, base: &Path) -> Result<TestUser, String> {
        let name = format!("tern-t-{suffix}");
        // A user left over from an interrupted run goes first.
        let _ = Command::new("userdel").arg("-f").arg(&name).output();
        let _ = Command::new("groupdel").arg(&name).output();
        let home = base.join(&name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("useradd")
                .args(["-m", "-U", "-s", "/usr/sbin/nologin", "-d"])
                .arg(&home)
                .arg(&name)
                .output()
                .map_err(|e| format!("useradd: {e} (install Debian's passwd package)"))?;
            if out.status.success() {
                break;
            }
            // Exit 1 and 10 are "cannot lock /etc/passwd or /etc/group": another test
            // binary is adding a user at the same time.
            if Instant::now() > deadline || !matches!(out.status.code(), Some(1 | 10)) {
                return Err(format!(
                    "useradd {name}: {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let user = nix::unistd::User::from_name(&name)
            .map_err(|e| format!("getpwnam {name}: {e}"))?
            .ok_or(format!("{name} missing after useradd"))?;
        Ok(TestUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home,
        })
    }

    pub fn owner(&self) -> tern_delivery::mailbox::Owner {
        tern_delivery::mailbox::Owner {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .arg("-f")
            .arg("-r")
            .arg(&self.name)
            .output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A temp dir the tests' users can reach (mode 0755).
pub fn open_tempdir() -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("tern-mbox.")
        .tempdir_in("/tmp")
        .map_err(|e| format!("tempdir: {e}"))?;
    chmod(dir.path(), 0o755)?;
    Ok(dir)
}

/// A directory with Debian's /var/mail ownership and mode: root:mail 2775.
pub fn debian_spool(parent: &Path) -> Result<PathBuf, String> {
    let spool = parent.join("mail");
    std::fs::create_dir(&spool).map_err(|e| format!("mkdir spool: {e}"))?;
    let mail = nix::unistd::Group::from_name("mail")
        .ok()
        .flatten()
        .ok_or("no group mail")?;
    nix::unistd::chown(&spool, Some(nix::unistd::Uid::from_raw(0)), Some(mail.gid))
        .map_err(|e| format!("chown spool: {e}"))?;
    chmod(&spool, 0o2775)?;
    Ok(spool)
}

pub fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// Runs a command; its stdout, or an error with its stderr.
pub fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// mutt's view of message 1 of a Maildir (or mbox): mutt needs a terminal, so it runs
/// under script(1); it pipes the message to a file and quits (mutt's `push` puts keys in
/// front, hence the reverse order).
pub fn mutt_first_message(folder: &Path, scratch: &Path) -> Result<String, String> {
    need_program("mutt", "mutt")?;
    need_program("script", "bsdutils")?;
    let out = scratch.join("mutt-out");
    let _ = std::fs::remove_file(&out);
    let cmd = format!(
        "mutt -n -F /dev/null -R -f {} -e 'set wait_key=no' -e 'push q' -e 'push \"|cat > {}\\n\"'",
        folder.display(),
        out.display()
    );
    let status = Command::new("timeout")
        .args(["30", "script", "-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("script: {e}"))?;
    std::fs::read_to_string(&out).map_err(|e| {
        format!(
            "mutt wrote no message ({e}); {}\n{}",
            status.status,
            String::from_utf8_lossy(&status.stdout)
        )
    })
}
