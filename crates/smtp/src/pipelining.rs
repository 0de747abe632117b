//! RFC 2920 command pipelining rules as Postfix 3.7's smtpd enforces them (smtpd.c,
//! smtpd_flag_ill_pipelining()): a client may send commands ahead of the replies only
//! after EHLO, and never after a command that must end a group (RFC 2920 3.1: EHLO,
//! DATA, VRFY, EXPN, TURN, QUIT, NOOP; Postfix's table marks HELO, EHLO, DATA, NOOP and
//! VRFY). Input that is waiting when such a command is read, or before the greeting is
//! sent, is a violation: Postfix logs `improper command pipelining after CMD from
//! CLIENT: TEXT` once per session and remembers it for reject_unauth_pipelining; with
//! smtpd_forbid_unauth_pipelining = yes it answers `554 5.5.0 Error: SMTP protocol
//! synchronization` and hangs up (the command is counted, and not as a success).
//!
//! The driver tells the session what input is already buffered behind the command
//! ([`Session::command_ahead`], [`Session::early_input`]); the session says what to log
//! ([`Session::take_improper_pipelining`]).
//!
//! # Security
//! The input shown in the log is untrusted: at most [`SHOWN`] bytes of it are kept,
//! escaped as Postfix's escape() does, so no control character reaches the log.

use std::fmt::Write as _;

use crate::command::Verb;
use crate::reply::Reply;
use crate::session::{Send, Session};

/// The most bytes of the waiting input that the log line shows (smtpd.c: 100).
pub const SHOWN: usize = 100;

/// `554 5.5.0 Error: SMTP protocol synchronization`.
pub const SYNC_ERROR: &str = "554 5.5.0 Error: SMTP protocol synchronization";

/// A pipelining violation, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImproperPipelining {
    /// Postfix's `state->where`: the command, or `None` before the greeting (where
    /// Postfix logs `CONNECT`).
    pub after: Option<Verb>,
    /// The first bytes that were waiting (at most [`SHOWN`]).
    pub input: Vec<u8>,
}

impl ImproperPipelining {
    /// The log text: `improper command pipelining after CMD from CLIENT: TEXT`, where
    /// `client` is `name[addr]`.
    pub fn log_text(&self, client: &str) -> String {
        format!(
            "improper command pipelining after {} from {client}: {}",
            self.after.map_or("CONNECT", Verb::verb),
            self.escaped_input()
        )
    }

    /// The waiting input as the log shows it ([`escape`]).
    pub fn escaped_input(&self) -> String {
        escape(&self.input)
    }
}

/// Postfix's escape() (util/unescape.c): printable ASCII as is (backslash doubled),
/// C escapes for the usual controls, `\ooo` for any other byte.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out
}

/// SMTPD_CMD_FLAG_LAST in smtpd.c's command table: the commands that must end a group.
fn must_be_last(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Helo | Verb::Ehlo | Verb::Data | Verb::Noop | Verb::Vrfy
    )
}

impl Session {
    /// Before the greeting: `ahead` is what the client sent already. Returns the 554
    /// to send instead of the greeting when smtpd_forbid_unauth_pipelining is on.
    pub fn early_input(&mut self, ahead: &[u8]) -> Option<Send> {
        if !self.flag_pipelining(None, ahead) || !self.cfg.forbid_unauth_pipelining {
            return None;
        }
        Some(self.send_parts(vec![Reply::canned(SYNC_ERROR)], true))
    }

    /// Whether this session broke the pipelining rules (reject_unauth_pipelining).
    pub fn improper_pipelining(&self) -> bool {
        self.ill_pipelining
    }

    /// The violation to log, once.
    pub fn take_improper_pipelining(&mut self) -> Option<ImproperPipelining> {
        self.pipelining_log.take()
    }

    /// The check smtpd_proto() makes before it runs a known command: `ahead` is the
    /// input already waiting behind it. Returns the 554 that ends the session when
    /// smtpd_forbid_unauth_pipelining is on.
    pub(crate) fn check_pipelining(&mut self, verb: Verb, ahead: &[u8]) -> Option<Send> {
        if self.esmtp && !must_be_last(verb) {
            return None;
        }
        if !self.flag_pipelining(Some(verb), ahead) || !self.cfg.forbid_unauth_pipelining {
            return None;
        }
        Some(self.send_parts(vec![Reply::canned(SYNC_ERROR)], true))
    }

    /// Sets the flag and the log record on the first violation; true if this was one.
    fn flag_pipelining(&mut self, after: Option<Verb>, ahead: &[u8]) -> bool {
        if self.ill_pipelining || ahead.is_empty() {
            return false;
        }
        self.ill_pipelining = true;
        self.pipelining_log = Some(ImproperPipelining {
            after,
            input: ahead[..ahead.len().min(SHOWN)].to_vec(),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{SessionConfig, Step};

    use crate::line::crlf_line as line;

    fn replies(step: Step) -> Vec<String> {
        match step {
            Step::Send(s) | Step::ReadData(s) => {
                s.replies.iter().map(ToString::to_string).collect()
            }
            Step::Decide(_) => vec!["decide".into()],
            other => vec![format!("{other:?}")],
        }
    }

    #[test]
    fn escape_like_postfix() {
        assert_eq!(
            escape(b"MAIL FROM:<a@b>\r\n\\\x00\xff"),
            "MAIL FROM:<a@b>\\r\\n\\\\\\000\\377"
        );
    }

    /// (forbid, after EHLO, command, input ahead, replies, logged `after`)
    type Case<'a> = (bool, bool, &'a str, &'a str, &'a [&'a str], Option<&'a str>);

    #[test]
    fn which_commands_are_checked() {
        let table: &[Case<'_>] = &[
            (true, false, "HELO x", "MAIL", &[SYNC_ERROR], Some("HELO")),
            (true, false, "EHLO x", "MAIL", &[SYNC_ERROR], Some("EHLO")),
            (true, false, "RSET", "NOOP", &[SYNC_ERROR], Some("RSET")),
            (true, true, "RSET", "NOOP", &["250 2.0.0 Ok"], None),
            (true, true, "NOOP", "NOOP", &[SYNC_ERROR], Some("NOOP")),
            (true, true, "MAIL FROM:<a@b>", "RCPT", &["decide"], None),
            (
                true,
                false,
                "BOGUS",
                "NOOP",
                &["500 5.5.2 Error: command not recognized"],
                None,
            ),
            (true, true, "NOOP", "", &["250 2.0.0 Ok"], None),
            (false, true, "NOOP", "QUIT", &["250 2.0.0 Ok"], Some("NOOP")),
        ];
        for &(forbid, ehlo, cmd, ahead, want, after) in table {
            let mut cfg = SessionConfig::new("mx");
            cfg.forbid_unauth_pipelining = forbid;
            let mut s = Session::new(cfg);
            if ehlo {
                s.command(&line("EHLO c"));
            }
            let got = replies(s.command_ahead(&line(cmd), ahead.as_bytes()));
            assert_eq!(got, want, "{cmd} / {ahead}");
            assert_eq!(
                s.take_improper_pipelining()
                    .and_then(|p| p.after)
                    .map(Verb::verb),
                after,
                "{cmd} / {ahead}"
            );
            assert_eq!(s.is_closed(), want == [SYNC_ERROR]);
        }
    }

    #[test]
    fn once_per_session_and_before_the_greeting() {
        let mut s = Session::new(SessionConfig::new("mx"));
        assert_eq!(s.early_input(b"EHLO x\r\n"), None);
        let p = s.take_improper_pipelining().unwrap();
        assert_eq!(
            p.log_text("unknown[127.0.0.2]"),
            "improper command pipelining after CONNECT from unknown[127.0.0.2]: EHLO x\\r\\n"
        );
        assert!(s.improper_pipelining());
        s.command_ahead(&line("HELO x"), b"NOOP\r\n");
        assert_eq!(s.take_improper_pipelining(), None);

        let mut cfg = SessionConfig::new("mx");
        cfg.forbid_unauth_pipelining = true;
        let mut s = Session::new(cfg);
        let send = s.early_input(&[b'x'; 300]).unwrap();
        assert_eq!(send.replies[0].to_string(), SYNC_ERROR);
        assert!(send.close);
        assert_eq!(s.take_improper_pipelining().unwrap().input.len(), SHOWN);
    }
}
