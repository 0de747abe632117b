//! A Tern instance in a temp directory (the shape of KumoMTA's integration-test `kumod.rs`
//! helper): writes main.cf and master.cf into a fresh directory, starts the real
//! `postfix` binary with `start-fg` on a free 127.0.0.1 port, waits for the 220 greeting,
//! and stops it on drop.
//!
//! The binary is `target/<profile>/postfix`, next to the test executable's `deps/`
//! directory; `TERN_POSTFIX` names another. Started by root, the daemon drops to
//! mail_owner (`postfix`), so the temp directory is made world-searchable.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Postfix test instance's aliases (`postmaster: root`), in texthash:'s form.
pub const ALIASES: &str = "postmaster root\n";

/// How long start-up may take.
const START_WAIT: Duration = Duration::from_secs(30);

/// A running instance.
pub struct Tern {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Tern {
    /// Starts an instance whose main.cf gets `extra` appended to the defaults below.
    pub fn start(extra: &str) -> Result<Tern, String> {
        let mut t = Tern::configure(extra)?;
        t.launch()?;
        Ok(t)
    }

    /// Writes an instance's files as [`Tern::start`] does, without starting it (for a
    /// test that starts it its own way; nothing then stops it on drop).
    pub fn configure(extra: &str) -> Result<Tern, String> {
        let dir = tempfile::Builder::new()
            .prefix("tern-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let port = free_port()?;
        let root = dir.path().display().to_string();
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(&conf).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.path().join("log")).map_err(|e| e.to_string())?;
        // The aliases the Postfix instance has (postfix.rs), so that local_recipient_maps
        // (`proxy:unix:passwd.byname $alias_maps`) knows the same users. texthash: needs no
        // postalias run and answers as the hash: table postalias builds; it reads postmap's
        // `key value` form, not aliases(5)'s `key: value`.
        std::fs::write(conf.join("aliases"), ALIASES).map_err(|e| e.to_string())?;
        let main = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {root}/spool\n\
             data_directory = {root}/data\n\
             command_directory = {root}\n\
             daemon_directory = {root}\n\
             meta_directory = {root}/conf\n\
             shlib_directory = no\n\
             maillog_file = {root}/log/mail.log\n\
             maillog_file_prefixes = {root}/log\n\
             myhostname = mx.example.test\n\
             mynetworks = 127.0.0.0/8\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             alias_maps = texthash:{root}/conf/aliases\n\
             {extra}\n"
        );
        std::fs::write(conf.join("main.cf"), main).map_err(|e| e.to_string())?;
        let master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             postlog unix-dgram n - n - 1 postlogd\n"
        );
        std::fs::write(conf.join("master.cf"), master).map_err(|e| e.to_string())?;
        Ok(Tern {
            dir,
            port,
            child: None,
        })
    }

    /// Replaces master.cf with `services` plus the postlog line that `postfix start`
    /// requires (Postfix 3.7's postfix-script). The first listener is still expected on
    /// [`Tern::port`] by [`Tern::launch`].
    pub fn write_master_cf(&self, services: &str) -> Result<(), String> {
        let text = format!("{services}postlog unix-dgram n - n - 1 postlogd\n");
        std::fs::write(self.config_dir().join("master.cf"), text).map_err(|e| e.to_string())
    }

    /// Runs `postfix reload` and waits until the daemon logs that the reload is done
    /// (master's `reload -- version ...` line, written once the new listeners are in
    /// place); returns the log.
    pub fn reload(&self) -> Result<String, String> {
        const DONE: &str = "reload -- version ";
        let before = self.log().matches(DONE).count();
        let (code, err) = self.postfix(&["reload"])?;
        if code != 0 {
            return Err(format!("postfix reload: exit {code}: {err}"));
        }
        let start = Instant::now();
        while start.elapsed() < START_WAIT {
            let log = self.log();
            if log.matches(DONE).count() > before {
                return Ok(log);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no reload line in the log:\n{}", self.log()))
    }

    /// (Re)starts the daemon process and waits for its greeting.
    pub fn launch(&mut self) -> Result<(), String> {
        let child = Command::new(postfix_binary()?)
            .arg("-c")
            .arg(self.config_dir())
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start postfix: {e}"))?;
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < START_WAIT {
            if let Some(c) = &mut self.child
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("postfix start-fg exited: {status}"));
            }
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .map_err(|e| e.to_string())?;
                let mut line = String::new();
                let _ = BufReader::new(s).read_line(&mut line);
                if line.starts_with("220 ") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("no greeting from the daemon".to_owned())
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log/mail.log")
    }

    /// The mail log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (graceful stop), and wait at most `limit`; SIGKILL after that.
    pub fn stop(&mut self, limit: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Runs `postfix -c CONF args...`; returns the exit code and standard error.
    pub fn postfix(&self, args: &[&str]) -> Result<(i32, String), String> {
        let out = Command::new(postfix_binary()?)
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Runs `postfix -c CONF command` from the instance's directory under `setpriv` as
    /// user `uid` and group `gid` (names or numbers) with no supplementary groups: the
    /// daemon started by an ordinary user. Returns the exit code and standard error.
    pub fn postfix_as(&self, uid: &str, gid: &str, command: &str) -> Result<(i32, String), String> {
        let out = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(postfix_binary()?)
            .arg("-c")
            .arg(self.config_dir())
            .arg(command)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("setpriv: {e}"))?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_secs(5));
        }
    }
}

/// The `postfix` binary of this build (see the module documentation).
pub fn postfix_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TERN_POSTFIX") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/test-binary -> target/<profile>/postfix
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?;
    let bin = profile_dir.join("postfix");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} missing: run `cargo build -p tern-commands --bin postfix` first",
            bin.display()
        ))
    }
}

/// A port that was free a moment ago on 127.0.0.1 (see [`crate::ports`]).
pub fn free_port() -> Result<u16, String> {
    crate::ports::free_port()
}
