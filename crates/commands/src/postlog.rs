//! `postlog`: a line into the mail log from a script (Postfix's postlog(1)):
//! `postlog [-c config_dir] [-i] [-p priority] [-t tag] [-v] [text...]`. The text is the
//! arguments joined by spaces, or else each line of standard input; the tag
//! `$syslog_name/postlog` unless `-t` gives one (made printable); the priority `info`
//! (default), `warn`/`warning`, `error`/`err`, `fatal`/`crit` or `panic` puts Postfix's
//! `warning: `, `error: `, ... before the text. The line goes where the daemon's go
//! (maillog_file, or syslog), with this process's pid (`-i` is accepted: Postfix 3.4 and
//! later always include it); when standard error is a terminal it is shown there too
//! (`TAG: TEXT`). A bad priority is `fatal: bad severity: "X"` (logged, exit 1); even a
//! `fatal` or `panic` line from the user exits 0, after the second Postfix waits. A bad
//! priority or flag is logged where the default configuration logs (Postfix checks them
//! before `-c` takes effect).
//!
//! # Security
//! The tag and text are the user's: Tern's log writer makes every line printable, and
//! the tag is made printable here, as Postfix's postlog does.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_config::config::Config;
use tern_maillog::{Ident, Line, LogConfig, Logger};

use crate::getopt::{Opt, getopt};

/// How one line is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Info,
    Warning,
    Error,
    Fatal,
    Panic,
}

fn level_map(name: &str) -> Option<Level> {
    Some(match name.to_ascii_lowercase().as_str() {
        "info" => Level::Info,
        "warn" | "warning" => Level::Warning,
        "error" | "err" => Level::Error,
        "fatal" | "crit" => Level::Fatal,
        "panic" => Level::Panic,
        _ => return None,
    })
}

fn line(level: Level, text: &str) -> Line {
    match level {
        Level::Info => Line::from_user(text),
        Level::Warning => Line::warning(text),
        Level::Error => Line::error(text),
        Level::Fatal => Line::fatal(text),
        Level::Panic => Line::panic(text),
    }
}

/// The `warning: ` (etc.) that stderr's copy shows.
fn label(level: Level) -> &'static str {
    match level {
        Level::Info => "",
        Level::Warning => "warning: ",
        Level::Error => "error: ",
        Level::Fatal => "fatal: ",
        Level::Panic => "panic: ",
    }
}

/// `postlog`.
pub fn main() -> i32 {
    let args = crate::args();
    let tty = io::stderr().is_terminal();
    let (opts, text) = match getopt(&args, "c:ip:t:v") {
        Ok(parsed) => parsed,
        Err(e) => {
            // glibc's complaint; the usage line goes to the log (and to a terminal).
            let _ = writeln!(io::stderr(), "postlog: {e}");
            let usage = "usage: postlog [-c config_dir] [-i] [-p priority] [-t tag] [-v] [text]";
            if let Some((log, ident)) = open_log(None, None) {
                log.log(&ident, &Line::fatal(usage));
                log.flush();
            }
            if tty {
                let _ = writeln!(io::stderr(), "postlog: fatal: {usage}");
            }
            return 1;
        }
    };
    let mut dir = None;
    let mut priority = None;
    let mut tag = None;
    for opt in opts {
        match opt {
            Opt::WithArg('c', d) => dir = Some(PathBuf::from(d)),
            Opt::WithArg('p', p) => priority = Some(p),
            Opt::WithArg('t', t) => tag = Some(tern_config::text::printable(t.as_bytes())),
            _ => {}
        }
    }
    // Postfix's postlog checks the priority while it reads its flags, when its log is
    // still the default configuration's (before `-c` takes effect): a bad one is logged
    // there.
    let level = match priority.as_deref().map(level_map) {
        None => Level::Info,
        Some(Some(l)) => l,
        Some(None) => {
            let text = format!("bad severity: \"{}\"", priority.unwrap_or_default());
            if let Some((log, ident)) = open_log(None, None) {
                log.log(&ident, &Line::fatal(&text));
                log.flush();
            }
            if tty {
                let _ = writeln!(io::stderr(), "postlog: fatal: {text}");
            }
            return 1;
        }
    };
    let Some((log, ident)) = open_log(dir.as_deref(), tag.as_deref()) else {
        let _ = writeln!(io::stderr(), "postlog: fatal: cannot open the mail log");
        return 1;
    };
    let put = |text: &str| {
        log.log(&ident, &line(level, text));
        if tty {
            let _ = writeln!(io::stderr(), "{ident}: {}{text}", label(level));
        }
    };
    if text.is_empty() {
        for l in io::stdin().lock().split(b'\n') {
            let Ok(l) = l else { break };
            put(&String::from_utf8_lossy(&l));
        }
    } else {
        put(&text.join(" "));
    }
    log.flush();
    if matches!(level, Level::Fatal | Level::Panic) {
        // "Consistency with msg(3) functions": Postfix's msg_fatal sleeps before it exits.
        std::thread::sleep(Duration::from_secs(1));
    }
    0
}

/// The mail log of the configuration in `dir` (or the default), and the tag.
fn open_log(dir: Option<&Path>, tag: Option<&str>) -> Option<(Logger, Ident)> {
    let config = Config::load_for_command(dir).ok()?;
    let get = |name: &str| config.expanded(name).ok().flatten().unwrap_or_default();
    let log = Logger::open(&LogConfig {
        maillog_file: &get("maillog_file"),
        maillog_file_prefixes: &get("maillog_file_prefixes"),
        syslog_facility: &get("syslog_facility"),
        myhostname: &get("myhostname"),
        config_directory: &get("config_directory"),
    })
    .ok()?;
    let ident = match tag {
        Some(t) => Ident::from_tag(t),
        None => Ident::new(&get("syslog_name"), "postlog"),
    };
    Some((log, ident))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        let table = [
            ("info", Some(Level::Info)),
            ("WARN", Some(Level::Warning)),
            ("warning", Some(Level::Warning)),
            ("err", Some(Level::Error)),
            ("crit", Some(Level::Fatal)),
            ("panic", Some(Level::Panic)),
            ("notice", None),
        ];
        for (name, want) in table {
            assert_eq!(level_map(name), want, "{name}");
        }
    }
}
