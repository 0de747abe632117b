//! Small helpers the integration tests share: running a Python script (smtplib, the email
//! package) and taking its output, waiting a bounded time for log lines, and killing a
//! daemon a test started when the test fails before stopping it. Test-only; the scripts
//! and logs come from the tests themselves, so failures panic with what went wrong.

use std::process::Command;
use std::time::{Duration, Instant};

/// How long [`wait_for`] waits for its lines.
pub const LOG_WAIT: Duration = Duration::from_secs(30);

/// Runs `python3 -c script`; returns its standard output. Panics, showing the script's
/// standard error, when python3 is missing or the script fails (an `assert` in it).
pub fn python(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `log()` holds `needle` `count` times, at most [`LOG_WAIT`], polling every
/// 50 ms; returns the last text read (the caller's checks then say what is missing).
pub fn wait_for(log: impl Fn() -> String, needle: &str, count: usize) -> String {
    let start = Instant::now();
    loop {
        let text = log();
        if text.matches(needle).count() >= count || start.elapsed() > LOG_WAIT {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills process `.0` with SIGKILL on drop: a daemon `postfix start` left running when
/// a test fails before its stop.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(self.0.to_string())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_output_and_wait_for() {
        assert_eq!(python("print('a b')"), "a b\n");
        let text = wait_for(|| "x: removed\nx: removed\n".to_owned(), "removed", 2);
        assert_eq!(text.matches("removed").count(), 2);
    }
}
