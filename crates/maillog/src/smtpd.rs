//! smtpd(8)'s session lines, as Postfix 3.7 logs them (smtpd/smtpd.c, smtpd_check.c).
//!
//! ```text
//! connect from localhost[127.0.0.1]
//! A1B2C3D4E00: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=carol@example
//! NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 554 5.7.1 <v@remote.test>: Relay access
//!     denied; from=<s@example.org> to=<v@remote.test> proto=ESMTP helo=<client.example.org>
//! lost connection after MAIL from localhost[127.0.0.1]
//! disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6
//! ```
//!
//! The `disconnect` counters ([`CommandCounts`]) list only the commands the client used, in
//! the order of smtpd's command table (helo, ehlo, xclient, xforward, starttls, auth, mail,
//! rcpt, data, bdat, rset, noop, vrfy, etrn, quit, unknown), as `ok` or `ok/total` when
//! some failed; `commands=` sums them and is `0/0` when the client sent nothing.
//!
//! Trust: client names, HELO names and addresses come from the network. The caller passes
//! them already made printable (Postfix's `printable()` and `info_log_address_format`);
//! lines are cut at [`crate::line::MAX_TEXT`] bytes.

use std::fmt::{self, Write as _};

use crate::line::Line;

/// A client as smtpd names it: `NAME[ADDR]` (`unknown[192.0.2.1]` when the name did not
/// verify; an IPv6 address is written without brackets of its own: `name[2001:db8::1]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client<'a> {
    /// The verified host name, or `unknown`.
    pub name: &'a str,
    /// The address, as text.
    pub addr: &'a str,
}

impl fmt::Display for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.name, self.addr)
    }
}

/// The commands smtpd counts, in the order it prints them: the SMTP crate's verb table (one
/// table for the parser, the session counters and the log).
pub use tern_smtp::command::Verb as Command;

/// Per-session command counters for the `disconnect from` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandCounts {
    ok: [u32; 16],
    total: [u32; 16],
}

impl CommandCounts {
    /// Counts one command; `ok` when smtpd answered it with success (2xx, or 3xx for
    /// DATA and AUTH's continuation).
    pub fn record(&mut self, command: Command, ok: bool) {
        let i = command.index();
        self.total[i] = self.total[i].saturating_add(1);
        if ok {
            self.ok[i] = self.ok[i].saturating_add(1);
        }
    }

    /// ` ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6`, with its leading space.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let (mut all_ok, mut all_total) = (0u32, 0u32);
        for command in Command::ALL {
            let i = command.index();
            if self.total[i] == 0 {
                continue;
            }
            let name = command.log_name();
            // Writing to a String cannot fail.
            let _ = write!(out, " {name}={}", self.ok[i]);
            if self.ok[i] != self.total[i] {
                let _ = write!(out, "/{}", self.total[i]);
            }
            all_ok = all_ok.saturating_add(self.ok[i]);
            all_total = all_total.saturating_add(self.total[i]);
        }
        let _ = write!(out, " commands={all_ok}");
        if all_ok != all_total || all_total == 0 {
            let _ = write!(out, "/{all_total}");
        }
        out
    }
}

/// `connect from NAME[ADDR]`.
pub fn connect(client: Client<'_>) -> Line {
    Line::info(format!("connect from {client}"))
}

/// tls_log_summary() on the server side (smtpd_tls_loglevel >= 1): `Anonymous TLS
/// connection established from NAME[ADDR]: TLSv1.3 with cipher ...`, built by the TLS
/// code from the session's facts.
pub fn tls_established(summary: &str) -> Line {
    Line::info(summary.to_owned())
}

/// tls_server_start(): `SSL_accept error from NAME[ADDR]: WHY` (`-1` with a TLS
/// library error, errno's text, or `lost connection`).
pub fn tls_accept_error(namaddr: &str, why: &str) -> Line {
    Line::info(format!("SSL_accept error from {namaddr}: {why}"))
}

/// `disconnect from NAME[ADDR] ehlo=1 ... commands=N`.
pub fn disconnect(client: Client<'_>, counts: &CommandCounts) -> Line {
    Line::info(format!("disconnect from {client}{}", counts.render()))
}

/// Why a session ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `timeout` (smtpd_timeout ran out).
    Timeout,
    /// `lost connection` (the client went away without QUIT).
    LostConnection,
    /// `too many errors` (smtpd_hard_error_limit).
    TooManyErrors,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::LostConnection => "lost connection",
            Self::TooManyErrors => "too many errors",
        }
    }
}

/// Where in the session something happened: smtpd's `state->where`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `CONNECT`: before or at the greeting.
    Connect,
    /// After a command.
    Command(Command),
    /// Inside the message content after DATA, with the bytes received so far.
    DataContent(u64),
    /// Inside BDAT content, with the bytes received so far.
    BdatContent(u64),
    /// `END-OF-MESSAGE`: at the final dot or the last BDAT.
    EndOfMessage,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect => f.write_str("CONNECT"),
            Self::Command(command) => f.write_str(command.verb()),
            Self::DataContent(_) => f.write_str("DATA content"),
            Self::BdatContent(_) => f.write_str("BDAT content"),
            Self::EndOfMessage => f.write_str("END-OF-MESSAGE"),
        }
    }
}

impl From<Command> for Stage {
    fn from(command: Command) -> Self {
        Self::Command(command)
    }
}

/// `lost connection after MAIL from NAME[ADDR]`, `timeout after DATA (1234 bytes) from ...`.
///
/// `None` for a lost connection at END-OF-MESSAGE: Postfix does not log clients that drop
/// the connection after the message was taken without sending QUIT.
pub fn session_end(reason: EndReason, stage: Stage, client: Client<'_>) -> Option<Line> {
    let reason = reason.as_str();
    let text = match stage {
        Stage::DataContent(bytes) => format!("{reason} after DATA ({bytes} bytes) from {client}"),
        Stage::BdatContent(bytes) => format!("{reason} after BDAT ({bytes} bytes) from {client}"),
        Stage::EndOfMessage if reason == "lost connection" => return None,
        _ => format!("{reason} after {stage} from {client}"),
    };
    Some(Line::info(text))
}

/// SASL details for the `client=` line, when the client authenticated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sasl<'a> {
    /// `sasl_method=PLAIN`.
    pub method: Option<&'a str>,
    /// `sasl_username=carol@example.com`.
    pub username: Option<&'a str>,
    /// `sasl_sender=` (the AUTH= parameter of MAIL FROM).
    pub sender: Option<&'a str>,
}

/// `QUEUEID: client=NAME[ADDR]` and its `, sasl_method=M, sasl_username=U, sasl_sender=S`
/// parts: logged when the queue file is created (at the first accepted RCPT).
pub fn client(queue_id: &str, client: Client<'_>, sasl: Sasl<'_>) -> Line {
    let mut text = format!("{queue_id}: client={client}");
    for (name, value) in [
        ("sasl_method", sasl.method),
        ("sasl_username", sasl.username),
        ("sasl_sender", sasl.sender),
    ] {
        if let Some(value) = value {
            let _ = write!(text, ", {name}={value}");
        }
    }
    Line::info(text)
}

/// What smtpd knows of the transaction when it rejects (smtpd_check.c `log_whatsup`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transaction<'a> {
    /// The queue id, once the queue file exists; `NOQUEUE` is printed without one.
    pub queue_id: Option<&'a str>,
    /// The MAIL FROM address (empty for the null sender `<>`).
    pub sender: Option<&'a str>,
    /// The RCPT TO address of the command being rejected.
    pub recipient: Option<&'a str>,
    /// `SMTP` or `ESMTP`.
    pub protocol: Option<&'a str>,
    /// The HELO/EHLO argument.
    pub helo: Option<&'a str>,
}

/// `NOQUEUE: reject: RCPT from NAME[ADDR]: 554 5.7.1 <x@y>: Relay access denied;
/// from=<a@b> to=<x@y> proto=ESMTP helo=<h>`. `reply` is the full SMTP reply text as sent.
pub fn reject(stage: Stage, client: Client<'_>, reply: &str, tx: Transaction<'_>) -> Line {
    whatsup("reject", stage, client, reply, tx)
}

/// The same shape with `discard`, `hold`, `filter`, `redirect` and the other access(5)
/// actions that smtpd logs (`NOQUEUE: hold: RCPT from ...: <x@y>: Recipient address
/// triggers HOLD action; from=...`).
pub fn action(
    action: AccessAction,
    stage: Stage,
    client: Client<'_>,
    text: &str,
    tx: Transaction<'_>,
) -> Line {
    whatsup(action.as_str(), stage, client, text, tx)
}

/// access(5) actions that smtpd logs in the reject shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessAction {
    Discard,
    Hold,
    Filter,
    Redirect,
    Warn,
}

impl AccessAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Discard => "discard",
            Self::Hold => "hold",
            Self::Filter => "filter",
            Self::Redirect => "redirect",
            Self::Warn => "warn",
        }
    }
}

/// log_whatsup() with any word (`reject`, `reject_warning`, `warn`, `info`, `permit`,
/// `hold`, `discard`, `filter`, `redirect`, `bcc`): `QUEUEID: WHAT: STAGE from NAME[ADDR]:
/// TEXT; from=<...> to=<...> proto=... helo=<...>`.
pub fn whatsup(
    what: &str,
    stage: Stage,
    client: Client<'_>,
    text: &str,
    tx: Transaction<'_>,
) -> Line {
    let id = tx.queue_id.unwrap_or("NOQUEUE");
    let mut out = format!("{id}: {what}: {stage} from {client}: {text};");
    if let Some(sender) = tx.sender {
        let _ = write!(out, " from=<{sender}>");
    }
    if let Some(recipient) = tx.recipient {
        let _ = write!(out, " to=<{recipient}>");
    }
    if let Some(protocol) = tx.protocol {
        let _ = write!(out, " proto={protocol}");
    }
    if let Some(helo) = tx.helo {
        let _ = write!(out, " helo=<{helo}>");
    }
    Line::info(out)
}

/// `improper command pipelining after HELO from NAME[ADDR]: NOOP\r\nQUIT\r\n`; `pending`
/// is what was read ahead, already escaped (`\r\n` as four characters). `after` is the
/// command, or [`Stage::Connect`] for input that came before the greeting (smtpd.c
/// logs its `state->where`, `CONNECT` then).
pub fn improper_pipelining(after: impl Into<Stage>, client: Client<'_>, pending: &str) -> Line {
    let after = after.into();
    Line::info(format!(
        "improper command pipelining after {after} from {client}: {pending}"
    ))
}

/// `warning: NAME[ADDR]: SASL PLAIN authentication failed: REASON, sasl_username=U`.
pub fn sasl_authentication_failed(
    client: Client<'_>,
    method: &str,
    reason: &str,
    username: Option<&str>,
) -> Line {
    let mut text = format!("{client}: SASL {method} authentication failed: {reason}");
    if let Some(username) = username {
        let _ = write!(text, ", sasl_username={username}");
    }
    Line::warning(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Client<'static> = Client {
        name: "localhost",
        addr: "127.0.0.1",
    };

    #[test]
    fn command_counts() {
        use Command::*;
        let cases: &[(&[(Command, bool)], &str)] = &[
            (&[], " commands=0/0"),
            (&[(Ehlo, true)], " ehlo=1 commands=1"),
            (
                &[
                    (Ehlo, true),
                    (Mail, true),
                    (Rcpt, true),
                    (Rcpt, false),
                    (Data, true),
                    (Quit, true),
                ],
                " ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6",
            ),
            (&[(Rcpt, false)], " rcpt=0/1 commands=0/1"),
            (
                &[
                    (Quit, true),
                    (Unknown, false),
                    (Noop, true),
                    (Rset, true),
                    (Helo, true),
                ],
                " helo=1 rset=1 noop=1 quit=1 unknown=0/1 commands=4/5",
            ),
            (
                &[(Auth, true), (Ehlo, true), (StartTls, true), (Ehlo, true)],
                " ehlo=2 starttls=1 auth=1 commands=4",
            ),
        ];
        for (seq, want) in cases {
            let mut counts = CommandCounts::default();
            for (command, ok) in *seq {
                counts.record(*command, *ok);
            }
            assert_eq!(counts.render(), *want);
        }
    }

    #[test]
    fn session_ends() {
        let cases = [
            (
                EndReason::LostConnection,
                Stage::Command(Command::Mail),
                Some("lost connection after MAIL from localhost[127.0.0.1]"),
            ),
            (
                EndReason::Timeout,
                Stage::Command(Command::Ehlo),
                Some("timeout after EHLO from localhost[127.0.0.1]"),
            ),
            (
                EndReason::Timeout,
                Stage::Connect,
                Some("timeout after CONNECT from localhost[127.0.0.1]"),
            ),
            (
                EndReason::LostConnection,
                Stage::DataContent(1234),
                Some("lost connection after DATA (1234 bytes) from localhost[127.0.0.1]"),
            ),
            (
                EndReason::Timeout,
                Stage::BdatContent(7),
                Some("timeout after BDAT (7 bytes) from localhost[127.0.0.1]"),
            ),
            (
                EndReason::TooManyErrors,
                Stage::Command(Command::Unknown),
                Some("too many errors after UNKNOWN from localhost[127.0.0.1]"),
            ),
            (
                EndReason::Timeout,
                Stage::EndOfMessage,
                Some("timeout after END-OF-MESSAGE from localhost[127.0.0.1]"),
            ),
            (EndReason::LostConnection, Stage::EndOfMessage, None),
        ];
        for (reason, stage, want) in cases {
            assert_eq!(
                session_end(reason, stage, C)
                    .map(|l| l.to_string())
                    .as_deref(),
                want
            );
        }
    }

    #[test]
    fn client_lines() {
        let cases = [
            (Sasl::default(), "Q1: client=localhost[127.0.0.1]"),
            (
                Sasl {
                    method: Some("PLAIN"),
                    username: Some("carol"),
                    sender: None,
                },
                "Q1: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=carol",
            ),
            (
                Sasl {
                    method: Some("LOGIN"),
                    username: Some("u"),
                    sender: Some("s@x"),
                },
                "Q1: client=localhost[127.0.0.1], sasl_method=LOGIN, sasl_username=u, sasl_sender=s@x",
            ),
        ];
        for (sasl, want) in cases {
            assert_eq!(client("Q1", C, sasl).to_string(), want);
        }
    }

    #[test]
    fn improper_pipelining_lines() {
        let cases = [
            (
                Command::Helo.into(),
                "improper command pipelining after HELO from localhost[127.0.0.1]: NOOP\\r\\n",
            ),
            (
                Stage::Connect,
                "improper command pipelining after CONNECT from localhost[127.0.0.1]: NOOP\\r\\n",
            ),
        ];
        for (after, want) in cases {
            assert_eq!(
                improper_pipelining(after, C, "NOOP\\r\\n").to_string(),
                want
            );
        }
    }

    #[test]
    fn reject_with_partial_context() {
        let tx = Transaction {
            helo: Some("h"),
            ..Transaction::default()
        };
        assert_eq!(
            reject(Stage::Connect, C, "554 5.7.1 Service unavailable", tx).to_string(),
            "NOQUEUE: reject: CONNECT from localhost[127.0.0.1]: 554 5.7.1 Service unavailable; helo=<h>"
        );
        let tx = Transaction {
            queue_id: Some("Q1"),
            sender: Some(""),
            ..Transaction::default()
        };
        assert_eq!(
            action(
                AccessAction::Hold,
                Stage::EndOfMessage,
                C,
                "<x>: triggers HOLD action",
                tx
            )
            .to_string(),
            "Q1: hold: END-OF-MESSAGE from localhost[127.0.0.1]: <x>: triggers HOLD action; from=<>"
        );
    }
}
