//! Small helpers the integration tests share: running a Python script (smtplib, the email
//! package) and taking its output, waiting a bounded time for log lines, taking log lines
//! apart to compare their shape, and killing a daemon a test started when the test fails
//! before stopping it. Test-only; the scripts
//! and logs come from the tests themselves, so failures panic with what went wrong.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`wait_for`] waits for its lines.
pub const LOG_WAIT: Duration = Duration::from_secs(30);

/// Runs `python3 -c script`; returns its standard output. Panics, showing the script's
/// standard error, when python3 is missing or the script fails (an `assert` in it).
pub fn python(script: &str) -> String {
    python_with_input(script, b"")
}

/// [`python`] with `input` on the script's standard input (a message for the email
/// package). Scripts that print more than a pipe holds must read all their input first.
pub fn python_with_input(script: &str, input: &[u8]) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends one message with Python's smtplib to `127.0.0.1:port` (EHLO client.example, MAIL
/// FROM `from`, RCPT TO each of `to`, DATA `data`); asserts the 250 replies to RCPT and to
/// the end of data, and returns the queue id from the last (`250 2.0.0 Ok: queued as ID`).
/// `data` is ASCII: it reaches Python as a string literal in Rust's escapes.
pub fn smtplib_send(port: u16, from: &str, to: &[&str], data: &str) -> String {
    assert!(
        data.bytes()
            .all(|b| b.is_ascii_graphic() || b" \r\n\t".contains(&b)),
        "smtplib_send takes ASCII data"
    );
    let rcpts = to
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
s.mail({from:?})
for r in [{rcpts}]:
    code, text = s.rcpt(r)
    assert code == 250, (r, code, text)
code, text = s.data({data:?}.encode())
assert code == 250, text
print(text.decode().rsplit(" ", 1)[1])
s.quit()
"#
    );
    python(&script).trim().to_owned()
}

/// Polls `cond` every 50 ms for at most `limit`; whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// The program (`postfix/qmgr`, without its `[pid]`) and the text after `]: ` of a log
/// line as Postfix's maillog_file writes it (`Nov 27 01:02:03 host postfix/qmgr[42]: ...`);
/// `None` for a line without `]: `.
pub fn program_and_text(line: &str) -> Option<(&str, &str)> {
    let (head, text) = line.split_once("]: ")?;
    let program = head
        .rsplit(' ')
        .next()
        .and_then(|p| p.split('[').next())
        .unwrap_or_default();
    Some((program, text))
}

/// `text` with each of its `, `-separated fields that starts with one of `keys` (`delay=`)
/// made `keyN` (`delay=N`): the figures that differ from run to run.
pub fn constant_fields(text: &str, keys: &[&str]) -> String {
    let words: Vec<String> = text
        .split(", ")
        .map(|w| match keys.iter().find(|k| w.starts_with(*k)) {
            Some(key) => format!("{key}N"),
            None => w.to_owned(),
        })
        .collect();
    words.join(", ")
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

/// The environment names Debian's Postfix 3.7.11 local(8) gives a command aliased in a
/// root-owned table, for a message received over ESMTP from 127.0.0.1 (captured from a
/// private instance with `|env > FILE`). PWD comes from sh.
pub const DEBIAN_LOCAL_COMMAND_ENV: &[&str] = &[
    "CLIENT_ADDRESS",
    "CLIENT_HELO",
    "CLIENT_HOSTNAME",
    "CLIENT_PROTOCOL",
    "DOMAIN",
    "LANG",
    "LOCAL",
    "LOGNAME",
    "MAIL_CONFIG",
    "ORIGINAL_RECIPIENT",
    "PATH",
    "PWD",
    "RECIPIENT",
    "SENDER",
    "USER",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_output_and_wait_for() {
        assert_eq!(python("print('a b')"), "a b\n");
        let echo = "import sys\nprint(sys.stdin.read().upper())";
        assert_eq!(python_with_input(echo, b"x"), "X\n");
        let text = wait_for(|| "x: removed\nx: removed\n".to_owned(), "removed", 2);
        assert_eq!(text.matches("removed").count(), 2);
    }

    #[test]
    fn log_line_parts() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                "Nov 27 01:02:03 mx postfix/qmgr[42]: ABC: removed",
                Some(("postfix/qmgr", "ABC: removed")),
            ),
            ("postfix/local[7]: x", Some(("postfix/local", "x"))),
            ("no program here", None),
        ];
        for (line, want) in cases {
            assert_eq!(program_and_text(line), *want, "{line}");
        }
        assert_eq!(
            constant_fields(
                "to=<a@b>, delay=0.1, delays=0/0/0/0, dsn=2.0.0, size=12",
                &["delay=", "delays=", "size="]
            ),
            "to=<a@b>, delay=N, delays=N, dsn=2.0.0, size=N"
        );
    }
}
