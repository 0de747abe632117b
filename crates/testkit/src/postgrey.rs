//! A private postgrey (Debian's `postgrey` package, /usr/sbin/postgrey) on a free
//! loopback port: its own database directory in a temp dir, a short greylisting delay,
//! no system service involved. Killed by pid on drop.
//!
//! Started by root it keeps root's rights (`--user=root --group=root`), so that the temp
//! directory needs no ownership change. Without the package `start` returns an error and
//! the test fails, never skips.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::peers::wait_for_port;

/// A running postgrey; killed on drop.
pub struct Postgrey {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Postgrey {
    /// Starts postgrey with `--delay=delay_secs` on 127.0.0.1 and waits for its port.
    pub fn start(delay_secs: u32) -> Result<Postgrey, String> {
        let bin = Path::new("/usr/sbin/postgrey");
        if !bin.is_file() {
            return Err("/usr/sbin/postgrey is missing: apt-get install postgrey".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("postgrey.")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let port = crate::tern::free_port()?;
        let log = std::fs::File::create(dir.path().join("postgrey.log"))
            .map_err(|e| format!("postgrey.log: {e}"))?;
        let err = log.try_clone().map_err(|e| format!("postgrey.log: {e}"))?;
        let child = Command::new(bin)
            .arg(format!("--inet=127.0.0.1:{port}"))
            .arg(format!("--dbdir={}", dir.path().display()))
            .arg(format!("--delay={delay_secs}"))
            .args(["--user=root", "--group=root"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("postgrey: {e}"))?;
        let postgrey = Postgrey { port, child, dir };
        wait_for_port(port, Duration::from_secs(20))
            .map_err(|e| format!("{e}\n{}", postgrey.log()))?;
        Ok(postgrey)
    }

    /// The `inet:127.0.0.1:PORT` text for check_policy_service.
    pub fn service(&self) -> String {
        format!("inet:127.0.0.1:{}", self.port)
    }

    /// postgrey's own log (its standard output and error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgrey.log")).unwrap_or_default()
    }
}

impl Drop for Postgrey {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
