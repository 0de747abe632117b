//! `postfix start`, `start-fg`, `stop`, `abort`, `reload` and `status`: postfix-script's
//! texts and exit codes, over the daemon in crates/daemon.
//!
//! - `start-fg` runs the daemon in this process until it is stopped.
//! - `start` runs `postfix -c DIR start-fg` in the background (its own process group,
//!   standard input and output closed) and waits until the daemon holds the pid file's
//!   lock with its pid written, which it does once it listens: Postfix's `master -w`.
//! - `stop` sends SIGTERM (graceful: open sessions may finish, see tern_daemon::master)
//!   and waits; `abort` sends SIGQUIT; `reload` SIGHUP.
//!
//! Security: the command trusts main.cf and the pid file as the administrator's.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tern_daemon::control::{self, Signal};

use super::{Check, Failure};
use crate::fatal;
use crate::msg::Msg;

/// Set in the environment of the background daemon that `postfix start` runs, so that it
/// does not print postfix-script's messages a second time.
const CHILD_ENV: &str = "TERN_START_CHILD";

/// How long `postfix start` waits for the daemon to listen.
const START_WAIT: Duration = Duration::from_secs(30);

/// Creates the queue and data directories a first start needs.
pub(super) fn create_missing(check: &Check) -> Result<(), Failure> {
    for name in ["queue_directory", "data_directory"] {
        let dir = check.value(name);
        if !dir.is_empty() && !Path::new(&dir).exists() {
            std::fs::create_dir_all(&dir).map_err(|e| fatal!("mkdir {dir}: {e}"))?;
            if name == "data_directory" && nix::unistd::getuid().is_root() {
                // postfix-files: data_directory belongs to mail_owner.
                let o = &check.owners.mail_owner;
                nix::unistd::chown(
                    Path::new(&dir),
                    Some(nix::unistd::Uid::from_raw(o.uid)),
                    Some(nix::unistd::Gid::from_raw(o.gid)),
                )
                .map_err(|e| fatal!("chown {dir}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Runs one of the control commands.
pub(super) fn run(check: &Check, script: &Msg, dir: &Path, command: &str) -> Result<(), Failure> {
    let queue = PathBuf::from(check.value("queue_directory"));
    let info = |text: &str| eprintln!("{}: {text}", script.prog());
    let running = control::running(&queue);
    let not_running = || Failure::Script("the Postfix mail system is not running".to_owned());
    match command {
        "status" => {
            if let Some(pid) = running {
                info(&format!("the Postfix mail system is running: PID: {pid}"));
                Ok(())
            } else {
                info("the Postfix mail system is not running");
                Err(Failure::Exit(1))
            }
        }
        "start" | "start-fg" => {
            if running.is_some() {
                return Err(Failure::Script(
                    "the Postfix mail system is already running".to_owned(),
                ));
            }
            let child = std::env::var_os(CHILD_ENV).is_some();
            if !child {
                check.check_fatal()?;
                for warning in check.check_warn() {
                    script.warn(warning);
                }
                info("starting the Postfix mail system");
            }
            if command == "start-fg" {
                let opts = tern_daemon::Options {
                    config_dir: dir.to_path_buf(),
                    detach: child,
                };
                return tern_daemon::run(&opts).map_err(|e| Failure::Postfix(fatal!("{e}")));
            }
            start_background(dir, &queue)
        }
        "stop" => {
            let pid = running.ok_or_else(not_running)?;
            info("stopping the Postfix mail system");
            signal(pid, Signal::Stop)?;
            let grace = tern_daemon::master::STOP_GRACE.as_secs() + 5;
            for _ in 0..grace {
                if control::wait_stopped(&queue, Duration::from_secs(1)) {
                    return Ok(());
                }
                info("waiting for the Postfix mail system to terminate");
            }
            script.warn("stopping the Postfix mail system with force");
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(format!("-{pid}"))
                .status();
            Ok(())
        }
        "abort" => {
            let pid = running.ok_or_else(not_running)?;
            info("aborting the Postfix mail system");
            signal(pid, Signal::Abort)
        }
        "reload" => {
            let pid = running.ok_or_else(not_running)?;
            info("refreshing the Postfix mail system");
            signal(pid, Signal::Reload)
        }
        _ => Ok(()),
    }
}

fn signal(pid: u32, sig: Signal) -> Result<(), Failure> {
    control::send(pid, sig).map_err(|e| Failure::Postfix(fatal!("{e}")))
}

/// `postfix start`: the daemon in the background; returns once it listens.
fn start_background(dir: &Path, queue: &Path) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(|e| fatal!("cannot find myself: {e}"))?;
    let mut child = Command::new(exe)
        .arg("-c")
        .arg(dir)
        .arg("start-fg")
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Start-up errors still reach the terminal; later ones go to the mail log.
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| fatal!("cannot start the mail system: {e}"))?;
    let start = Instant::now();
    while start.elapsed() < START_WAIT {
        if control::running(queue) == Some(child.id()) {
            return Ok(());
        }
        if let Ok(Some(_)) = child.try_wait() {
            return Err(Failure::Script("mail system startup failed".to_owned()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Failure::Script("mail system startup failed".to_owned()))
}
