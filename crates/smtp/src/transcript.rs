//! SMTP transcripts: a small text format for client input and expected replies,
//! replayed against [`Session`] with no sockets (tests/transcripts.rs) and, by the
//! same files, against a live server over loopback (tests/postfix_side_by_side.rs against
//! Debian's Postfix, crates/daemon/tests/transcripts_vs_tern.rs against Tern).
//!
//! Format, one item per line:
//! - `# ...` and empty lines are comments.
//! - `! name = value` sets a main.cf parameter for the state-machine replay
//!   ([`apply_setting`]); a live peer must be configured the same way. Parameters
//!   that only shape policy ([`POLICY_ONLY`]) are left to the live peer.
//! - `C: text` is client input: `text` followed by CRLF.
//! - `C~ text` is raw client input without the CRLF; in both, `\r`, `\n`, `\t`, `\0`,
//!   `\\` and `\xHH` are escapes (for bare LFs, NULs and BDAT payloads).
//! - `S: line` is one expected reply line as sent, without CRLF. A `*` at its end
//!   matches any rest (queue ids). Each `C` item is sent whole, then the replies up
//!   to the next `C` are expected.
//! - A `C` item before any `S` line is an early talker's input: it is sent at once
//!   on connect, before the greeting is read, and the greeting (or what replaces it)
//!   is the first line of that item's replies ([`Transcript::talks_first`]).
//! - `S! line` is an expected reply line that the server's policy decides (relay and
//!   recipient restrictions, local recipients, VRFY, ETRN). A live peer is compared
//!   with it like `S:`; the state-machine replay answers the group's
//!   [`Step::Decide`]s with the group's `S!` lines in order (2xx/3xx: accept;
//!   otherwise: reject with that reply) and accepts any decision beyond them, so a
//!   group that has an `S!` line marks every decided reply in it.
//! - `S| line` is a line of the group's other legal answer, for dialogs whose
//!   replies depend on timing that Postfix does not control either (an early talker
//!   whose input arrives after smtpd's one check gets the 220): a live server may
//!   answer the group with its `S:`/`S!` lines or with its `S|` lines. The
//!   state-machine replay, which has no timing, must give the `S:`/`S!` lines.
//! - `L: ehlo=1 ... commands=N` is the per-command statistics of the session's
//!   `disconnect from <client>` log line (copied from Postfix's mail log).
//!
//! # Security
//! Transcripts are test input written by us; parsing reports errors, never panics.

use crate::data::{BdatReader, DataReader, DataStep};
use crate::line::{BareLfPolicy, LineAssembler, Overlong};
use crate::reply::DiscardSet;
use crate::session::{MessageOutcome, Session, SessionConfig, Step, Verdict};

/// One transcript item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Client(Vec<u8>),
    Server(String),
    /// An `S!` line: expected, and the policy verdict of the state-machine replay.
    Policy(String),
    /// An `S|` line: the group's other legal answer, from a live server.
    Alternative(String),
    Log(String),
}

/// A parsed transcript file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub settings: Vec<(String, String)>,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("unknown or bad setting {name} = {value}")]
    Setting { name: String, value: String },
}

impl Transcript {
    pub fn parse(text: &str) -> Result<Self, TranscriptError> {
        let mut t = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let bad = |reason: &str| TranscriptError::Syntax {
                line: i + 1,
                reason: reason.into(),
            };
            if raw.trim().is_empty() || raw.starts_with('#') {
                continue;
            }
            if let Some(rest) = raw.strip_prefix("! ") {
                let (name, value) = rest
                    .split_once('=')
                    .ok_or_else(|| bad("want ! name = value"))?;
                t.settings
                    .push((name.trim().to_string(), value.trim().to_string()));
            } else if raw == "C:" {
                t.items.push(Item::Client(b"\r\n".to_vec()));
            } else if let Some(rest) = raw.strip_prefix("C: ") {
                let mut bytes = unescape(rest).ok_or_else(|| bad("bad escape"))?;
                bytes.extend_from_slice(b"\r\n");
                t.items.push(Item::Client(bytes));
            } else if let Some(rest) = raw.strip_prefix("C~ ") {
                t.items.push(Item::Client(
                    unescape(rest).ok_or_else(|| bad("bad escape"))?,
                ));
            } else if let Some(rest) = raw.strip_prefix("L: ") {
                t.items.push(Item::Log(rest.to_string()));
            } else if let Some(rest) = raw.strip_prefix("S: ") {
                t.items.push(Item::Server(rest.to_string()));
            } else if let Some(rest) = raw.strip_prefix("S| ") {
                t.items.push(Item::Alternative(rest.to_string()));
            } else if let Some(rest) = raw.strip_prefix("S! ") {
                crate::reply::Reply::parse(rest).map_err(|_| bad("S! wants a reply"))?;
                t.items.push(Item::Policy(rest.to_string()));
            } else {
                return Err(bad("want #, !, C:, C~, S:, S!, S| or L:"));
            }
        }
        Ok(t)
    }

    /// Whether the client speaks before the greeting: the first item is client input
    /// (Postfix's smtpd checks for such input once, right after the connection is
    /// handed to it: smtpd.c, smtpd_proto()).
    pub fn talks_first(&self) -> bool {
        matches!(self.items.first(), Some(Item::Client(_)))
    }

    /// The session configuration for this transcript, from `myhostname`'s defaults.
    pub fn config(&self) -> Result<SessionConfig, TranscriptError> {
        let host = self
            .settings
            .iter()
            .find(|(n, _)| n == "myhostname")
            .map_or("mx.example.test", |(_, v)| v.as_str());
        let mut cfg = SessionConfig::new(host);
        for (name, value) in &self.settings {
            apply_setting(&mut cfg, name, value)?;
        }
        Ok(cfg)
    }
}

/// Whether a reply line matches an expected `S:` line (`*` at the end: any rest).
pub fn line_matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix('*') {
        Some(prefix) => actual.starts_with(prefix),
        None => expected == actual,
    }
}

/// main.cf parameters that shape only the server's policy answers, which the
/// state-machine replay takes from `S!` lines instead; [`apply_setting`] ignores them.
pub const POLICY_ONLY: &[&str] = &[
    "mynetworks",
    "mydestination",
    "relay_domains",
    "local_recipient_maps",
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_etrn_restrictions",
    "smtpd_reject_unlisted_recipient",
    "smtpd_reject_unlisted_sender",
    "smtpd_error_sleep_time",
    "fast_flush_domains",
];

/// Applies one main.cf setting that shapes the protocol.
pub fn apply_setting(
    cfg: &mut SessionConfig,
    name: &str,
    value: &str,
) -> Result<(), TranscriptError> {
    let bad = || TranscriptError::Setting {
        name: name.into(),
        value: value.into(),
    };
    let yes = || match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(bad()),
    };
    let num = || value.parse::<u64>().map_err(|_| bad());
    let int = || value.parse::<u32>().map_err(|_| bad());
    match name {
        "myhostname" => {
            cfg.myhostname = value.into();
            cfg.banner = format!("{value} ESMTP Postfix");
            cfg.ehlo.hostname = value.into();
        }
        "smtpd_helo_required" => cfg.helo_required = yes()?,
        "smtpd_recipient_limit" => {
            cfg.recipient_limit = usize::try_from(num()?).map_err(|_| bad())?;
        }
        "smtpd_soft_error_limit" => cfg.soft_error_limit = int()?,
        "smtpd_hard_error_limit" => cfg.hard_error_limit = int()?,
        "smtpd_forbid_bare_newline" => cfg.bare_lf = BareLfPolicy::parse(value).ok_or_else(bad)?,
        "smtpd_forbid_bare_newline_reject_code" => {
            cfg.bare_lf_reject_code = value.parse().map_err(|_| bad())?;
        }
        "message_size_limit" => cfg.ehlo.message_size_limit = num()?,
        "smtpd_discard_ehlo_keywords" => cfg.ehlo.discard = DiscardSet::parse(value),
        "disable_vrfy_command" => cfg.ehlo.vrfy_enabled = !yes()?,
        "strict_rfc821_envelopes" => cfg.strict_rfc821_envelopes = yes()?,
        "smtpd_forbid_unauth_pipelining" => cfg.forbid_unauth_pipelining = yes()?,
        "smtputf8_enable" => cfg.ehlo.smtputf8 = yes()?,
        _ if POLICY_ONLY.contains(&name) => {}
        _ => return Err(bad()),
    }
    Ok(())
}

/// The result of [`replay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Per client item, the reply lines it produced (the greeting first, alone).
    pub groups: Vec<Vec<String>>,
    /// The log line statistics at the end, without the leading space.
    pub stats: String,
}

/// Replays the client items against a [`Session`] whose driver accepts every policy
/// decision and queues every message as `QUEUEID`.
pub fn replay(t: &Transcript) -> Result<Replayed, TranscriptError> {
    let cfg = t.config()?;
    let line_limit = crate::line::DEFAULT_LINE_LIMIT;
    let mut driver = Driver {
        lines: LineAssembler::new(line_limit, cfg.bare_lf),
        data: None,
        chunk: None,
        bdat: None,
        out: Vec::new(),
        session: Session::new(cfg),
        line_limit,
        verdicts: std::collections::VecDeque::new(),
    };
    let mut all = Vec::new();
    if t.talks_first() {
        // No greeting group: the greeting is the first reply of the early input's
        // group, or is replaced by the 554 of smtpd_forbid_unauth_pipelining.
        all.push(Vec::new());
    } else {
        all.push(split(&driver.session.greeting().to_wire(true)));
    }
    for (i, item) in t.items.iter().enumerate() {
        if let Item::Client(bytes) = item {
            driver.verdicts = group_verdicts(&t.items[i + 1..])?;
            if !driver.session.is_closed() {
                driver.lines.push(bytes);
                if i == 0 && t.talks_first() {
                    driver.greet_early();
                }
                driver.run();
            }
            all.push(std::mem::take(&mut driver.out));
        }
    }
    let stats = driver.session.stats().log_suffix().trim_start().to_string();
    Ok(Replayed { groups: all, stats })
}

/// The verdicts of the `S!` lines up to the next client item.
fn group_verdicts(rest: &[Item]) -> Result<std::collections::VecDeque<Verdict>, TranscriptError> {
    let mut out = std::collections::VecDeque::new();
    for item in rest {
        match item {
            Item::Client(_) => break,
            Item::Policy(line) if line.starts_with(['2', '3']) => out.push_back(Verdict::Accept),
            Item::Policy(line) => {
                let reply =
                    crate::reply::Reply::parse(line).map_err(|e| TranscriptError::Syntax {
                        line: 0,
                        reason: format!("S! {line}: {e}"),
                    })?;
                out.push_back(Verdict::Reject(reply));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn split(wire: &str) -> Vec<String> {
    wire.split_terminator("\r\n").map(str::to_string).collect()
}

/// A chunk being read: bytes left, and whether they are kept or dropped.
struct Chunk {
    left: u64,
    keep: bool,
    then: Option<crate::session::Send>,
}

/// The sans-IO driver of the replay: the same loop a socket driver runs.
struct Driver {
    session: Session,
    lines: LineAssembler,
    data: Option<DataReader>,
    chunk: Option<Chunk>,
    bdat: Option<BdatReader>,
    out: Vec<String>,
    line_limit: usize,
    /// This group's `S!` verdicts, in order; beyond them, accept.
    verdicts: std::collections::VecDeque<Verdict>,
}

impl Driver {
    /// The greeting of a session whose client spoke first: the input is waiting, as
    /// the socket driver's peek would see it (Session::early_input).
    fn greet_early(&mut self) {
        if let Some(send) = self.session.early_input(self.lines.buffered()) {
            self.emit(&send);
        } else {
            let greeting = self.session.greeting();
            self.out.extend(split(&greeting.to_wire(true)));
        }
    }

    fn run(&mut self) {
        // Bounded: every pass consumes input or returns.
        for _ in 0..100_000 {
            if self.session.is_closed() && self.chunk.is_none() {
                return;
            }
            if let Some(chunk) = &mut self.chunk {
                let max = usize::try_from(chunk.left).unwrap_or(usize::MAX);
                let bytes = self.lines.take_raw(max);
                if bytes.is_empty() && chunk.left > 0 {
                    return;
                }
                chunk.left -= bytes.len() as u64;
                if let (true, Some(b)) = (chunk.keep, &mut self.bdat) {
                    b.feed(&bytes, &mut |_, _| {});
                }
                if chunk.left > 0 {
                    return;
                }
                let chunk = self.chunk.take();
                let step = if let Some(send) = chunk.and_then(|c| c.then) {
                    Step::Send(send)
                } else {
                    let Some(b) = &self.bdat else { return };
                    let summary = b.summary();
                    let done = b.is_done();
                    let outcome = done.then(|| MessageOutcome::Queued {
                        queue_id: "QUEUEID".into(),
                    });
                    if done {
                        self.bdat = None;
                    }
                    self.session.chunk_done(summary, outcome)
                };
                self.step(step);
                continue;
            }
            let Some(line) = self.lines.next_line() else {
                return;
            };
            if let Some(reader) = &mut self.data {
                if reader.line(&line) == DataStep::End {
                    let summary = reader.finish();
                    self.data = None;
                    self.lines.set_overlong(Overlong::Skip);
                    let outcome = MessageOutcome::Queued {
                        queue_id: "QUEUEID".into(),
                    };
                    let step = self.session.message_done(summary, outcome);
                    self.step(step);
                }
                continue;
            }
            // What followed the command in the same write is the input waiting behind
            // it (RFC 2920 checks, crate::pipelining).
            let step = self.session.command_ahead(&line, self.lines.buffered());
            self.step(step);
        }
    }

    fn step(&mut self, mut step: Step) {
        loop {
            match step {
                Step::Send(send) => {
                    self.emit(&send);
                    return;
                }
                Step::Decide(_) => {
                    let verdict = self.verdicts.pop_front().unwrap_or(Verdict::Accept);
                    step = self.session.decide(verdict);
                }
                Step::ReadData(send) => {
                    self.emit(&send);
                    let cfg = self.session.config();
                    self.data = Some(DataReader::new(cfg.bare_lf, cfg.ehlo.message_size_limit));
                    self.lines.set_overlong(Overlong::Split);
                    return;
                }
                Step::ReadChunk { size, last } => {
                    let cfg = self.session.config();
                    let reader = self.bdat.get_or_insert_with(|| {
                        BdatReader::new(cfg.bare_lf, self.line_limit, cfg.ehlo.message_size_limit)
                    });
                    reader.start_chunk(size, last);
                    self.chunk = Some(Chunk {
                        left: size,
                        keep: true,
                        then: None,
                    });
                    return;
                }
                Step::SkipChunk { size, then } => {
                    self.bdat = None;
                    self.chunk = Some(Chunk {
                        left: size,
                        keep: false,
                        then: Some(then),
                    });
                    return;
                }
                Step::StartTls(send) => {
                    self.emit(&send);
                    self.session.tls_started();
                    return;
                }
                Step::Closed => return,
            }
        }
    }

    fn emit(&mut self, send: &crate::session::Send) {
        for reply in &send.replies {
            self.out.extend(split(&reply.to_wire(true)));
        }
    }
}

fn unescape(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1)?;
        i += 2;
        match c {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = text.get(i..i + 2)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_format() {
        let t = Transcript::parse(
            "# c\n! smtpd_recipient_limit = 3\nC: NOOP\nC~ a\\nb\\x00\nS: 250 *\n",
        )
        .unwrap();
        assert_eq!(
            t.settings,
            vec![("smtpd_recipient_limit".into(), "3".into())]
        );
        assert_eq!(
            t.items,
            vec![
                Item::Client(b"NOOP\r\n".to_vec()),
                Item::Client(b"a\nb\0".to_vec()),
                Item::Server("250 *".into())
            ]
        );
        assert!(line_matches(
            "250 2.0.0 Ok: queued as *",
            "250 2.0.0 Ok: queued as ABC"
        ));
        assert!(!line_matches("250 2.0.0 Ok", "250 2.0.0 Ok: x"));
        assert!(Transcript::parse("X: y").is_err());
        assert_eq!(
            Transcript::parse("S| 220 x\n").unwrap().items,
            vec![Item::Alternative("220 x".into())]
        );
        assert_eq!(t.config().unwrap().recipient_limit, 3);
    }

    #[test]
    fn early_talker() {
        // (forbid_unauth_pipelining, replies to the early HELO, stats)
        let table: &[(&str, &[&str], &str)] = &[
            (
                "no",
                &["220 mx ESMTP Postfix", "250 mx"],
                "helo=1 commands=1",
            ),
            ("yes", &[crate::pipelining::SYNC_ERROR], "commands=0/0"),
        ];
        for &(forbid, want, stats) in table {
            let text = format!(
                "! myhostname = mx\n! smtpd_forbid_unauth_pipelining = {forbid}\nC: HELO c\n"
            );
            let t = Transcript::parse(&text).unwrap();
            assert!(t.talks_first());
            let r = replay(&t).unwrap();
            assert_eq!(
                r.groups,
                vec![
                    Vec::<String>::new(),
                    want.iter().map(ToString::to_string).collect()
                ]
            );
            assert_eq!(r.stats, stats, "{forbid}");
        }
        assert!(
            !Transcript::parse("S: 220 x\nC: QUIT\n")
                .unwrap()
                .talks_first()
        );
    }
}
