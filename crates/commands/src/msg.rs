//! Postfix-style diagnostics: `NAME: warning: TEXT` and `NAME: fatal: TEXT` on standard error,
//! where NAME is the program's `argv[0]` as Postfix's msg_vstream prints it.

use std::fmt;
use std::io::Write;

/// A fatal error: the text after `NAME: fatal: `. Commands return it up to `main`, which
/// prints it and exits with status 1, as Postfix's msg_fatal() does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Fatal {
    fn from(err: E) -> Self {
        Fatal(err.to_string())
    }
}

/// Builds a [`Fatal`] from format arguments.
#[macro_export]
macro_rules! fatal {
    ($($arg:tt)*) => { $crate::msg::Fatal(format!($($arg)*)) };
}

/// The message writer of one program run.
#[derive(Debug, Clone)]
pub struct Msg {
    prog: String,
    /// Valid UTF-8 is shown as it is (programs with Postfix's UTF-8 support on).
    utf8: bool,
}

impl Msg {
    /// Uses `argv[0]` as the prefix, as Postfix does.
    pub fn from_args() -> Msg {
        let prog = std::env::args_os().next().map_or_else(
            || "postconf".to_owned(),
            |a| a.to_string_lossy().into_owned(),
        );
        Msg { prog, utf8: false }
    }

    /// As [`Msg::from_args`] without the directory part of argv\[0\]: postmap and
    /// postalias print `postmap: fatal: ...` however they were run (postconf keeps the
    /// path), and, with their UTF-8 support on, show valid UTF-8 as it is.
    pub fn from_args_basename() -> Msg {
        let prog = Msg::from_args().prog;
        let base = prog.rsplit('/').find(|p| !p.is_empty()).unwrap_or(&prog);
        Msg {
            utf8: true,
            ..Msg::new(base)
        }
    }

    pub fn new(prog: &str) -> Msg {
        Msg {
            prog: prog.to_owned(),
            utf8: false,
        }
    }

    pub fn prog(&self) -> &str {
        &self.prog
    }

    /// `NAME: warning: TEXT`.
    pub fn warn(&self, text: impl fmt::Display) {
        self.line("warning", &text);
    }

    /// `NAME: error: TEXT` (msg_error: reported, the program goes on).
    pub fn line_error(&self, text: impl fmt::Display) {
        self.line("error", &text);
    }

    /// `NAME: fatal: TEXT`, returning the exit status to use (1).
    pub fn fatal(&self, fatal: &Fatal) -> i32 {
        self.line("fatal", fatal);
        1
    }

    fn line(&self, level: &str, text: &dyn fmt::Display) {
        // Postfix's message layer shows non-printable bytes as `?`.
        let bytes = text.to_string();
        let text = if self.utf8 {
            tern_config::text::printable_utf8(bytes.as_bytes())
        } else {
            tern_config::text::printable(bytes.as_bytes())
        };
        let _ = writeln!(std::io::stderr(), "{}: {level}: {text}", self.prog);
    }
}
