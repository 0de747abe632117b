//! Running a delivery command with a user's rights: Postfix's pipe_command(3), shared by
//! local(8)'s `|command` and mailbox_command and by pipe(8).
//!
//! The child gets the user's uid and gid (std's `Command::uid/gid`, which also drops the
//! supplementary groups), its own process group (so a time-out kills its offspring too),
//! the message on stdin, stdout and stderr on one pipe, and exactly the environment the
//! caller composed ([`environment`]). A command without shell magic characters is run
//! directly, split at spaces; any other through `/bin/sh -c` (exec_command(3)), or through
//! local_command_shell when that is set.
//!
//! The result maps as Postfix maps it: exit 0 is success; a signal defers (`Command died
//! with signal N`); output that starts with an enhanced status code (`5.1.1 text`) gives
//! that status and text; a sysexits.h code gives its status and text (`EX_TEMPFAIL` 75:
//! `4.3.0 temporary failure`; 64: `5.3.0 command line usage error`), other codes bounce
//! (`Command died with status N`); running out of time bounces (`Command time limit
//! exceeded`). Up to 4096 bytes of output are kept for the reason, tabs and newlines as
//! spaces, other unprintable bytes as `_`.
//!
//! Security: the command and its output are untrusted. Root is refused here as well as by
//! the callers: a command never runs with uid or gid 0. Every wait is bounded by the time
//! limit (plus a short grace period to collect output after a kill).

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How much command output Postfix keeps for the reason (VSTREAM_BUFSIZE).
pub const OUTPUT_LIMIT: usize = 4096;

/// Characters that let a command run without a shell (exec_command.c), besides space/tab.
const NO_SHELL_CHARS: &str =
    "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A command line (local(8)): run directly when it has no shell magic, else with
    /// `shell` (local_command_shell, split at spaces, the command appended) or `/bin/sh -c`.
    Line { command: String, shell: String },
    /// An argument vector (pipe(8) argv=), run with execvp.
    Argv(Vec<String>),
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: Program,
    pub uid: u32,
    pub gid: u32,
    /// The whole environment of the child.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub time_limit: Duration,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

/// The verdict, as pipe_command() returns it (PIPE_STAT_*), with the DSN status and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandResult {
    /// Success; the (translated) output, which pipe(8) shows in its reason.
    Ok {
        output: String,
    },
    Defer {
        dsn: String,
        text: String,
    },
    Bounce {
        dsn: String,
        text: String,
    },
}

/// Why a command could not be started (fork/exec trouble): Postfix defers with `4.3.0`.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("privileged user or group id {0}")]
    Privileged(u32),
    #[error("Delivery failed: {0}")]
    Io(#[from] io::Error),
}

/// A feeder writes the message to the command's stdin; it runs on its own thread, so a
/// command that never reads cannot block the agent past the time limit.
pub type Feeder = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// Runs `spec` with `feed` writing its stdin; `shown` is the command as messages quote it.
pub fn run(spec: &CommandSpec, shown: &str, feed: Feeder) -> CommandResult {
    match spawn_and_wait(spec, feed) {
        Ok((exit, output, write_error)) => evaluate(exit, &output, shown, write_error),
        Err(e) => CommandResult::Defer {
            dsn: "4.3.0".into(),
            text: format!("system resource problem: {e}"),
        },
    }
}

fn spawn_and_wait(
    spec: &CommandSpec,
    feed: Feeder,
) -> Result<(Exit, Vec<u8>, Option<io::Error>), SpawnError> {
    if spec.uid == 0 {
        return Err(SpawnError::Privileged(spec.uid));
    }
    if spec.gid == 0 {
        return Err(SpawnError::Privileged(spec.gid));
    }
    let mut cmd = match &spec.program {
        Program::Argv(argv) => {
            let mut c = Command::new(argv.first().map_or("", String::as_str));
            c.args(argv.iter().skip(1));
            c
        }
        Program::Line { command, shell } => line_command(command, shell),
    };
    let (out_r, out_w) = std::io::pipe()?;
    let out_w2 = out_w.try_clone()?;
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(out_w2))
        .uid(spec.uid)
        .gid(spec.gid)
        .process_group(0);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        // exec_command(3): a plain command that is not found (a shell built-in such as
        // `exit 75`) goes to the shell after all.
        Err(e) if e.kind() == io::ErrorKind::NotFound => match &spec.program {
            Program::Line { command, shell }
                if shell.trim().is_empty()
                    && !command
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .contains('/') =>
            {
                let mut retry = CommandSpec {
                    program: Program::Line {
                        command: command.clone(),
                        shell: "/bin/sh -c".into(),
                    },
                    ..spec.clone()
                };
                retry.env.clone_from(&spec.env);
                return spawn_and_wait(&retry, feed);
            }
            _ => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    // The Command keeps the write ends of the output pipe; drop it so that EOF comes when
    // the command and its offspring are done.
    drop(cmd);
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let deadline = Instant::now() + spec.time_limit;

    let stdin = child.stdin.take();
    let (wtx, wrx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = match stdin {
            Some(mut s) => feed(&mut s).and_then(|()| s.flush()),
            None => Ok(()),
        };
        let _ = wtx.send(result);
    });
    let (otx, orx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut r = out_r;
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if otx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut exit = None;
    while exit.is_none() {
        if let Some(status) = child.try_wait()? {
            exit = Some(match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                (None, None) => Exit::Code(-1),
            });
        } else if Instant::now() >= deadline {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            exit = Some(Exit::TimedOut);
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let exit = exit.unwrap_or(Exit::TimedOut);
    // Offspring may still hold the output pipe: collect what comes until the deadline
    // (a short grace period after a kill), then kill the group for good.
    let mut output = Vec::new();
    let collect_until = deadline.max(Instant::now()) + Duration::from_millis(200);
    loop {
        let left = collect_until.saturating_duration_since(Instant::now());
        match orx.recv_timeout(left) {
            Ok(chunk) => {
                let room = OUTPUT_LIMIT.saturating_sub(output.len());
                output.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = killpg(pgid, Signal::SIGKILL);
                break;
            }
        }
    }
    let write_error = match wrx.recv_timeout(Duration::from_millis(200)) {
        Ok(Err(e)) => Some(e),
        _ => None,
    };
    Ok((exit, output, write_error))
}

/// exec_command(3): a command of plain characters runs directly, split at spaces and tabs;
/// any other through the shell.
fn line_command(command: &str, shell: &str) -> Command {
    if !shell.trim().is_empty() {
        let mut words = shell.split_ascii_whitespace();
        let mut c = Command::new(words.next().unwrap_or("/bin/sh"));
        c.args(words).arg(command);
        return c;
    }
    let plain = command
        .chars()
        .all(|c| c == ' ' || c == '\t' || NO_SHELL_CHARS.contains(c));
    if plain && !command.trim().is_empty() {
        let mut words = command.split([' ', '\t']).filter(|w| !w.is_empty());
        let mut c = Command::new(words.next().unwrap_or_default());
        c.args(words);
        return c;
    }
    let mut c = Command::new("/bin/sh");
    c.arg0("sh").arg("-c").arg(command);
    c
}

/// Command output as Postfix quotes it: tabs and newlines become spaces, other
/// unprintable bytes `_` (translit + printable).
pub fn printable_output(raw: &[u8]) -> String {
    raw.iter()
        .map(|&b| match b {
            b'\t' | b'\n' => ' ',
            0x20..=0x7e => char::from(b),
            _ => '_',
        })
        .collect()
}

/// The sysexits.h table (sys_exits.c): code, DSN status, text.
pub const SYSEXITS: &[(i32, &str, &str)] = &[
    (64, "5.3.0", "command line usage error"),
    (65, "5.6.0", "data format error"),
    (66, "5.3.0", "cannot open input"),
    (67, "5.1.1", "user unknown"),
    (68, "5.1.2", "host name unknown"),
    (69, "5.3.0", "service unavailable"),
    (70, "5.3.0", "internal software error"),
    (71, "4.3.0", "system resource problem"),
    (72, "5.3.0", "critical OS file missing"),
    (73, "5.2.0", "can't create user output file"),
    (74, "5.3.0", "input/output error"),
    (75, "4.3.0", "temporary failure"),
    (76, "5.5.0", "remote error in protocol"),
    (77, "5.7.0", "permission denied"),
    (78, "5.3.5", "local configuration error"),
];

/// Whether `text` starts with an enhanced status code and a space (dsn_valid()).
fn leading_dsn(text: &str) -> Option<(&str, &str)> {
    let (code, rest) = text.split_once(' ')?;
    let mut parts = code.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let ok = parts.next().is_none()
        && matches!(class, "2" | "4" | "5")
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject
            .bytes()
            .chain(detail.bytes())
            .all(|b| b.is_ascii_digit());
    ok.then_some((code, rest.trim_start()))
}

/// The verdict for a finished command (pipe_command()'s tail): pure, so it is tested by
/// table.
pub fn evaluate(
    exit: Exit,
    raw_output: &[u8],
    shown: &str,
    write_error: Option<io::Error>,
) -> CommandResult {
    let out = printable_output(raw_output);
    let with_output = |head: String| {
        if out.is_empty() {
            head
        } else {
            format!("{head}. Command output: {out}")
        }
    };
    match exit {
        Exit::TimedOut => CommandResult::Bounce {
            dsn: "5.3.0".into(),
            text: with_output(format!("Command time limit exceeded: \"{shown}\"")),
        },
        Exit::Signal(sig) => CommandResult::Defer {
            dsn: "4.3.0".into(),
            text: with_output(format!("Command died with signal {sig}: \"{shown}\"")),
        },
        Exit::Code(0) => match write_error {
            Some(e) if e.kind() != io::ErrorKind::BrokenPipe => CommandResult::Bounce {
                dsn: "5.3.0".into(),
                text: format!("Command failed: {e}: \"{shown}\""),
            },
            _ => CommandResult::Ok { output: out },
        },
        Exit::Code(code) => {
            if let Some((dsn, text)) = leading_dsn(&out) {
                let text = text.to_owned();
                return if dsn.starts_with('4') {
                    CommandResult::Defer {
                        dsn: dsn.into(),
                        text,
                    }
                } else {
                    CommandResult::Bounce {
                        dsn: dsn.into(),
                        text,
                    }
                };
            }
            match SYSEXITS.iter().find(|(c, _, _)| *c == code) {
                Some((_, dsn, text)) => {
                    let text = with_output((*text).to_owned());
                    if dsn.starts_with('4') {
                        CommandResult::Defer {
                            dsn: (*dsn).into(),
                            text,
                        }
                    } else {
                        CommandResult::Bounce {
                            dsn: (*dsn).into(),
                            text,
                        }
                    }
                }
                None => CommandResult::Bounce {
                    dsn: "5.3.0".into(),
                    text: with_output(format!("Command died with status {code}: \"{shown}\"")),
                },
            }
        }
    }
}

/// The child's environment (pipe_command + clean_env): the names of export_environment
/// taken from the agent's environment as import_environment left it (a `NAME=value` entry
/// in either list sets the value), then `PATH=/usr/bin:/bin` (_PATH_DEFPATH), then
/// `vars` (local(8)'s HOME, LOGNAME, ...; pipe(8) has none).
pub fn environment(
    process_env: &[(String, String)],
    import: &[String],
    export: &[String],
    vars: &[(String, String)],
) -> Vec<(String, String)> {
    let pick = |list: &[String], from: &[(String, String)]| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for item in list {
            let found = match item.split_once('=') {
                Some((k, v)) => Some((k.to_owned(), v.to_owned())),
                None => from
                    .iter()
                    .find(|(k, _)| k == item)
                    .map(|(k, v)| (k.clone(), v.clone())),
            };
            if let Some((k, v)) = found {
                out.retain(|(n, _)| *n != k);
                out.push((k, v));
            }
        }
        out
    };
    let imported = pick(import, process_env);
    let mut env = pick(export, &imported);
    for (k, v) in
        std::iter::once(("PATH".to_owned(), "/usr/bin:/bin".to_owned())).chain(vars.iter().cloned())
    {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_mapping() {
        type Case<'a> = (Exit, &'a [u8], Option<(&'a str, &'a str)>, &'a str);
        // (exit, output, Some((dsn, text)) for failures / None for success, success output)
        let cases: &[Case<'_>] = &[
            (Exit::Code(0), b"", None, ""),
            (Exit::Code(0), b"fine\n", None, "fine "),
            (
                Exit::Code(64),
                b"bad\tthing\nsecond\n",
                Some((
                    "5.3.0",
                    "command line usage error. Command output: bad thing second ",
                )),
                "",
            ),
            (
                Exit::Code(75),
                b"",
                Some(("4.3.0", "temporary failure")),
                "",
            ),
            (Exit::Code(67), b"", Some(("5.1.1", "user unknown")), ""),
            (
                Exit::Code(1),
                b"oops\n",
                Some((
                    "5.3.0",
                    "Command died with status 1: \"echo oops; exit 1\". Command output: oops ",
                )),
                "",
            ),
            (
                Exit::Code(1),
                b"5.1.7 no such box\n",
                Some(("5.1.7", "no such box ")),
                "",
            ),
            (Exit::Code(1), b"4.2.2 full\n", Some(("4.2.2", "full ")), ""),
            (
                Exit::TimedOut,
                b"",
                Some((
                    "5.3.0",
                    "Command time limit exceeded: \"echo oops; exit 1\"",
                )),
                "",
            ),
            (
                Exit::Signal(9),
                b"x\x01",
                Some((
                    "4.3.0",
                    "Command died with signal 9: \"echo oops; exit 1\". Command output: x_",
                )),
                "",
            ),
        ];
        for (exit, out, want, ok_out) in cases {
            let got = evaluate(*exit, out, "echo oops; exit 1", None);
            match (want, got) {
                (None, CommandResult::Ok { output }) => assert_eq!(output, *ok_out),
                (Some((dsn, text)), CommandResult::Defer { dsn: d, text: t }) => {
                    assert!(dsn.starts_with('4'), "{exit:?}");
                    assert_eq!((d.as_str(), t.as_str()), (*dsn, *text));
                }
                (Some((dsn, text)), CommandResult::Bounce { dsn: d, text: t }) => {
                    assert!(dsn.starts_with('5'), "{exit:?}");
                    assert_eq!((d.as_str(), t.as_str()), (*dsn, *text));
                }
                (w, g) => panic!("{exit:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn environments() {
        let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
        };
        let l = |v: &[&str]| -> Vec<String> { v.iter().map(|x| (*x).into()).collect() };
        let process = s(&[
            ("MAIL_CONFIG", "/etc/postfix"),
            ("TZ", "UTC"),
            ("LANG", "en_US.UTF-8"),
            ("SECRET", "x"),
        ]);
        let import = l(&["MAIL_CONFIG", "TZ", "LANG=C", "DISPLAY"]);
        let export = l(&["TZ", "MAIL_CONFIG", "LANG"]);
        let env = environment(&process, &import, &export, &s(&[("USER", "u")]));
        assert_eq!(
            env,
            s(&[
                ("TZ", "UTC"),
                ("MAIL_CONFIG", "/etc/postfix"),
                ("LANG", "C"),
                ("PATH", "/usr/bin:/bin"),
                ("USER", "u"),
            ])
        );
        let env = environment(&process, &import, &l(&["FOO=bar", "SECRET"]), &[]);
        assert_eq!(env, s(&[("FOO", "bar"), ("PATH", "/usr/bin:/bin")]));
    }

    #[test]
    fn shell_or_not() {
        let argv = |c: &Command| -> Vec<String> {
            std::iter::once(c.get_program())
                .chain(c.get_args())
                .map(|s| s.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            argv(&line_command("/usr/bin/procmail -a x", "")),
            ["/usr/bin/procmail", "-a", "x"]
        );
        assert_eq!(
            argv(&line_command("env > /tmp/x", "")),
            ["/bin/sh", "-c", "env > /tmp/x"]
        );
        assert_eq!(
            argv(&line_command("foo", "/bin/bash -c")),
            ["/bin/bash", "-c", "foo"]
        );
    }
}
