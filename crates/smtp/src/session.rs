//! The smtpd session state machine: command sequence rules, error limits and the
//! per-command counters, as Postfix 3.7's smtpd applies them (smtpd.c, smtpd_proto).
//!
//! The driver feeds each command line ([`Session::command`]) and acts on the
//! returned [`Step`]. Policy is not decided here: where Postfix would consult
//! smtpd_*_restrictions, access maps, cleanup or SASL, the session returns
//! [`Step::Decide`] and waits for [`Session::decide`]. Message content is read by the
//! driver with [`crate::data::DataReader`] / [`crate::data::BdatReader`] and its end
//! reported with [`Session::message_done`] / [`Session::chunk_done`].
//!
//! Rules kept from Postfix (each verified live against 3.7.11 where marked in the
//! transcripts): MAIL before HELO is allowed unless smtpd_helo_required; RCPT needs
//! MAIL; DATA without MAIL is `503 5.5.1 Error: need RCPT command`, with MAIL but no
//! accepted RCPT `554 5.5.1 Error: no valid recipients`; beyond
//! smtpd_recipient_limit each RCPT gets `452 4.5.3 Error: too many recipients`, which
//! counts as a success until smtpd_recipient_overshoot_limit is passed; every failed
//! command adds one error, and at smtpd_hard_error_limit the session ends with
//! `421 4.7.0 <myhostname> Error: too many errors` before reading another command;
//! from smtpd_soft_error_limit on, the driver delays each reply
//! (smtpd_error_sleep_time); a message received whole forgives earlier errors; any
//! 421 or 521 reply ends the session.
//!
//! # Security
//! Command lines are untrusted; they go through [`crate::command`] (never panics).
//! The session holds no message content and a bounded amount of state.

use crate::command::{Request, Verb};
use crate::data::{DataError, DataSummary};
use crate::line::{BareLfPolicy, Line, LineEnd};
use crate::params::{MailFrom, ParseOptions, RcptTo};
pub use crate::replies as r;
use crate::reply::{EhloFeatures, EhloKeyword, Reply};
pub use crate::session_stats::CommandStats;
use crate::session_verbs::Outcome;

/// Settings from main.cf that shape the protocol (policy lives in the driver).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub myhostname: String,
    /// smtpd_banner, expanded.
    pub banner: String,
    /// EHLO keywords, message_size_limit, smtputf8_enable, TLS and AUTH offers.
    pub ehlo: EhloFeatures,
    pub helo_required: bool,
    /// Ask the driver about HELO/EHLO (smtpd_delay_reject = no with HELO restrictions).
    pub decide_helo: bool,
    pub recipient_limit: usize,
    pub recipient_overshoot_limit: usize,
    pub soft_error_limit: u32,
    pub hard_error_limit: u32,
    pub junk_command_limit: u32,
    /// smtpd_forbid_bare_newline for this client (exclusions applied by the driver).
    pub bare_lf: BareLfPolicy,
    pub bare_lf_reject_code: u16,
    pub strict_rfc821_envelopes: bool,
    /// The driver checks MAIL FROM and RCPT TO domains (smtpd_check_addr()); the parser
    /// checks only the RFC 5321 syntax.
    pub domains_by_driver: bool,
    /// smtpd_forbidden_commands (its default also refuses any command word that
    /// starts with a non-letter, the `regexp:{{/^[^A-Z]/ Bogus}}` entry).
    pub forbidden_commands: Vec<String>,
    pub forbid_non_letter_commands: bool,
    /// smtpd_forbid_unauth_pipelining: hang up on RFC 2920 violations
    /// ([`crate::pipelining`]).
    pub forbid_unauth_pipelining: bool,
    /// smtpd_tls_security_level = encrypt (or wrapper mode): before STARTTLS, every
    /// command but HELO, EHLO, XCLIENT, STARTTLS, NOOP and QUIT gets `530 5.7.0 Must
    /// issue a STARTTLS command first` (smtpd.c, SMTPD_CMD_FLAG_PRE_TLS).
    pub tls_required: bool,
    /// smtpd_tls_auth_only: AUTH is neither offered in EHLO nor accepted before TLS.
    pub tls_auth_only: bool,
    /// STARTTLS is offered but the server's TLS engine could not be set up: it is
    /// answered `454 4.7.0 TLS not available due to local problem` (RFC 3207 4).
    pub tls_unavailable: bool,
}

impl SessionConfig {
    /// Postfix 3.7's defaults for a host called `myhostname`.
    pub fn new(myhostname: &str) -> Self {
        Self {
            myhostname: myhostname.to_string(),
            banner: format!("{myhostname} ESMTP Postfix"),
            ehlo: EhloFeatures::new(myhostname),
            helo_required: false,
            decide_helo: false,
            recipient_limit: 1000,
            recipient_overshoot_limit: 1000,
            soft_error_limit: 10,
            hard_error_limit: 20,
            junk_command_limit: 100,
            bare_lf: BareLfPolicy::No,
            bare_lf_reject_code: 550,
            strict_rfc821_envelopes: false,
            domains_by_driver: false,
            forbidden_commands: vec!["CONNECT".into(), "GET".into(), "POST".into()],
            forbid_non_letter_commands: true,
            forbid_unauth_pipelining: false,
            tls_required: false,
            tls_auth_only: false,
            tls_unavailable: false,
        }
    }
}

/// Replies to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub replies: Vec<Reply>,
    /// Hang up after sending.
    pub close: bool,
    /// Sleep smtpd_error_sleep_time before sending (soft error limit reached).
    pub delay: bool,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the replies; then read the next command, or hang up.
    Send(Send),
    /// A policy question; answer with [`Session::decide`].
    Decide(Decision),
    /// Send the 354 and read content with a DataReader until its end; then
    /// [`Session::message_done`].
    ReadData(Send),
    /// Read exactly `size` payload bytes into the BdatReader; then
    /// [`Session::chunk_done`].
    ReadChunk { size: u64, last: bool },
    /// Read and drop `size` payload bytes, then send.
    SkipChunk { size: u64, then: Send },
    /// Send the 220 and start the TLS handshake; then [`Session::tls_started`].
    StartTls(Send),
    /// The session has ended; read nothing more.
    Closed,
}

/// A question for the driver's policy code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Helo {
        name: String,
        esmtp: bool,
    },
    /// smtpd_sender_restrictions, rate limits, queue space (the address syntax and
    /// SIZE against message_size_limit are already checked).
    Mail(MailFrom),
    /// smtpd_relay/recipient_restrictions (syntax and recipient limit checked).
    Rcpt(RcptTo),
    /// smtpd_data_restrictions (before DATA's 354 or the first BDAT chunk).
    Data,
    Vrfy {
        address: String,
        smtputf8: bool,
    },
    Etrn(String),
    /// Run the SASL exchange (reading its lines itself); Accept = authenticated.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

/// The driver's answer to a [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with Postfix's positive reply for the command.
    Accept,
    /// Refuse with this reply (a 421 or 521 also ends the session).
    Reject(Reply),
}

/// How the driver's end of a message went (cleanup and the queue commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    Queued { queue_id: String },
    Rejected(Reply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bdat {
    None,
    Ok,
    Error,
}

/// What the driver owes the session before the next command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Awaiting {
    Decision(Verb, Decision),
    Data,
    Chunk { size: u64, last: bool },
}

/// One client session.
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) cfg: SessionConfig,
    pub(crate) helo_name: Option<String>,
    pub(crate) esmtp: bool,
    pub(crate) tls_active: bool,
    pub(crate) authenticated: bool,
    pub(crate) sender: Option<MailFrom>,
    pub(crate) rcpt_count: usize,
    pub(crate) rcpt_overshoot: usize,
    pub(crate) bdat: Bdat,
    /// Bytes of BDAT content so far (Postfix's act_size).
    pub(crate) bdat_size: u64,
    /// The BDAT chunk waiting for the Data decision.
    pub(crate) chunk_after_decision: Option<(u64, bool)>,
    pub(crate) awaiting: Option<Awaiting>,
    pub(crate) error_count: u32,
    pub(crate) junk_commands: u32,
    pub(crate) stats: CommandStats,
    pub(crate) closed: bool,
    /// Postfix's SMTPD_FLAG_ILL_PIPELINING.
    pub(crate) ill_pipelining: bool,
    /// The violation not yet taken for the log.
    pub(crate) pipelining_log: Option<crate::pipelining::ImproperPipelining>,
    /// EHLO does not offer AUTH to this client (smtpd_sasl_exceptions_networks); the AUTH
    /// command still works, as in Postfix.
    pub(crate) auth_hidden: bool,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            cfg,
            helo_name: None,
            esmtp: false,
            tls_active: false,
            authenticated: false,
            sender: None,
            rcpt_count: 0,
            rcpt_overshoot: 0,
            bdat: Bdat::None,
            bdat_size: 0,
            chunk_after_decision: None,
            awaiting: None,
            error_count: 0,
            junk_commands: 0,
            stats: CommandStats::default(),
            closed: false,
            ill_pipelining: false,
            pipelining_log: None,
            auth_hidden: false,
        }
    }

    /// The 220 greeting (connection-level policy, such as a 554 for a blocked client,
    /// is the driver's).
    pub fn greeting(&self) -> Reply {
        r::greeting(&self.cfg.banner)
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn helo_name(&self) -> Option<&str> {
        self.helo_name.as_deref()
    }

    /// `ESMTP` once EHLO was seen, `SMTP` otherwise (proto= in log lines).
    pub fn protocol(&self) -> &'static str {
        if self.esmtp { "ESMTP" } else { "SMTP" }
    }

    pub fn sender(&self) -> Option<&MailFrom> {
        self.sender.as_ref()
    }

    pub fn recipient_count(&self) -> usize {
        self.rcpt_count
    }

    pub fn error_count(&self) -> u32 {
        self.error_count
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The counters of the `disconnect from` log line.
    pub fn stats(&self) -> &CommandStats {
        &self.stats
    }

    /// The parse options in force (EHLO discards and settings).
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            smtputf8: self.cfg.ehlo.smtputf8
                && !self.cfg.ehlo.discard.contains(EhloKeyword::SmtpUtf8),
            dsn: !self.cfg.ehlo.discard.contains(EhloKeyword::Dsn),
            strict_rfc821: self.cfg.strict_rfc821_envelopes,
            domains_by_driver: self.cfg.domains_by_driver,
        }
    }

    /// Handles one command line from the line assembler (command mode), with no
    /// input waiting behind it.
    pub fn command(&mut self, line: &Line) -> Step {
        self.command_ahead(line, &[])
    }

    /// Handles one command line; `ahead` is the client input already received after
    /// it, for the pipelining rules ([`crate::pipelining`]).
    pub fn command_ahead(&mut self, line: &Line, ahead: &[u8]) -> Step {
        if self.closed {
            return Step::Closed;
        }
        if self.awaiting.is_some() {
            // The driver skipped a decide/message_done/chunk_done call.
            return self.send(vec![self.local_error()], true);
        }
        if self.cfg.bare_lf == BareLfPolicy::Reject && line.end == LineEnd::BareLf {
            // Not counted as a command (verified live: `ehlo=1 commands=1`).
            let reply = r::bare_lf(self.cfg.bare_lf_reject_code, &self.cfg.myhostname);
            return self.send(vec![reply], true);
        }
        let opts = self.parse_options();
        let req = match Request::parse(&line.text, opts.smtputf8) {
            Ok(req) => req,
            // Neither counts as a command; both are errors.
            Err(e) => return self.error(e.reply()),
        };
        self.stats.count_total(req.verb);
        let verb = req.verb;
        // smtpd_proto(): with TLS enforced, after the unknown-command check and before
        // the pipelining check; an error, not a command success.
        if self.cfg.tls_required && !self.tls_active && !pre_tls(verb) {
            return self.error(r::reply(r::MUST_STARTTLS));
        }
        // smtpd_proto(): after the unknown-command checks, before the command runs.
        if verb != Verb::Unknown
            && let Some(send) = self.check_pipelining(verb, ahead)
        {
            return Step::Send(send);
        }
        let result = match verb {
            Verb::Helo | Verb::Ehlo => self.helo(&req, opts),
            Verb::Mail => self.mail(&req, opts),
            Verb::Rcpt => self.rcpt(&req, opts),
            Verb::Data => self.data(&req),
            Verb::Bdat => return self.bdat(&req),
            Verb::Rset => {
                if req.args.is_empty() {
                    self.mail_reset();
                    Ok(Outcome::Done(r::reply(r::OK)))
                } else {
                    Err(r::reply("501 5.5.4 Syntax: RSET"))
                }
            }
            // Postfix 3.7 ignores NOOP arguments (verified live).
            Verb::Noop => Ok(Outcome::Done(r::reply(r::OK))),
            Verb::Quit => {
                self.stats.count_ok(verb);
                return self.send(vec![r::reply(r::BYE)], true);
            }
            Verb::Vrfy => self.vrfy(&req, opts),
            Verb::Etrn => self.etrn(&req),
            Verb::StartTls => return self.starttls(&req),
            Verb::Auth => self.auth(&req),
            Verb::Xclient | Verb::Xforward => self.xclient(&req),
            Verb::Unknown => {
                if self.forbidden(&req.word) {
                    return self.send(vec![r::reply(r::BREAK_RULES)], true);
                }
                Err(r::reply(r::NOT_RECOGNIZED))
            }
        };
        match result {
            Err(reply) => self.error(reply),
            Ok(Outcome::Decide(decision)) => {
                self.awaiting = Some(Awaiting::Decision(verb, decision.clone()));
                Step::Decide(decision)
            }
            Ok(Outcome::Done(reply)) => self.success(verb, reply),
        }
    }

    /// The SASL mechanisms EHLO offers (`None`: no AUTH); the driver learns them from
    /// its back end and again after STARTTLS (smtpd_sasl_tls_security_options).
    pub fn set_auth_mechanisms(&mut self, mechanisms: Option<String>) {
        self.cfg.ehlo.auth_mechanisms = mechanisms;
    }

    /// Leaves AUTH out of the EHLO reply for this client (smtpd_sasl_exceptions_networks:
    /// smtpd.c's sasl_client_exception()); the AUTH command is still accepted.
    pub fn set_auth_hidden(&mut self, hidden: bool) {
        self.auth_hidden = hidden;
    }

    /// Refuses a command without looking at it (the driver's access_denied state after
    /// the client restrictions refused the client): one more error, as any failed command.
    pub fn refuse(&mut self, reply: Reply) -> Step {
        self.error(reply)
    }

    /// The driver's answer to the last [`Step::Decide`].
    pub fn decide(&mut self, verdict: Verdict) -> Step {
        let Some(Awaiting::Decision(verb, decision)) = self.awaiting.take() else {
            return self.send(vec![self.local_error()], true);
        };
        if let Verdict::Reject(reply) = verdict {
            if let (Decision::Data, Some((size, last))) =
                (&decision, self.chunk_after_decision.take())
            {
                return self.skip_chunk(size, last, reply);
            }
            return self.error(reply);
        }
        let reply = match decision {
            Decision::Helo { name, esmtp } => self.helo_accepted(name, esmtp),
            Decision::Mail(m) => {
                self.sender = Some(m);
                r::reply(r::MAIL_OK)
            }
            Decision::Rcpt(_) => {
                self.rcpt_count += 1;
                r::reply(r::RCPT_OK)
            }
            Decision::Data => {
                if let Some((size, last)) = self.chunk_after_decision.take() {
                    return self.read_chunk(size, last);
                }
                self.awaiting = Some(Awaiting::Data);
                let send = self.send_parts(vec![r::reply(r::START_DATA)], false);
                return Step::ReadData(send);
            }
            Decision::Vrfy { address, .. } => r::vrfy(&address),
            Decision::Etrn(_) => r::reply(r::ETRN_OK),
            Decision::Auth { .. } => {
                self.authenticated = true;
                r::reply(r::AUTH_OK)
            }
        };
        self.success(verb, reply)
    }

    /// After DATA's content ended (the DataReader returned End): `summary` from the
    /// reader, `outcome` from cleanup and the queue commit (ignored when the reader
    /// found an error: the message must not be queued then).
    pub fn message_done(&mut self, summary: DataSummary, outcome: MessageOutcome) -> Step {
        if self.awaiting.take() != Some(Awaiting::Data) {
            return self.send(vec![self.local_error()], true);
        }
        self.end_of_message(Verb::Data, summary, outcome, None)
    }

    /// After a BDAT chunk was read whole. `outcome` is required for the LAST chunk
    /// (and ignored otherwise).
    pub fn chunk_done(&mut self, summary: DataSummary, outcome: Option<MessageOutcome>) -> Step {
        let Some(Awaiting::Chunk { size, last }) = self.awaiting.take() else {
            return self.send(vec![self.local_error()], true);
        };
        self.bdat_size = summary.size;
        if last {
            let outcome = outcome.unwrap_or_else(|| MessageOutcome::Rejected(self.local_error()));
            return self.end_of_message(Verb::Bdat, summary, outcome, Some(summary.size));
        }
        if let Some(e) = summary.error {
            let reply = self.data_error_reply(e);
            self.mail_reset();
            self.bdat = Bdat::Error;
            return self.error(reply);
        }
        self.success(Verb::Bdat, r::bdat_chunk(size))
    }

    /// Whether TLS is on (after STARTTLS, or from the start in wrapper mode).
    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// After the TLS handshake: RFC 3207 4.2, the server "MUST discard any knowledge
    /// obtained from the client, such as the argument to the EHLO command": the client
    /// must start over with EHLO, and no transaction survives (smtpd.c starttls_cmd():
    /// helo_reset(), mail_reset(), rcpt_reset()).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.helo_name = None;
        self.mail_reset();
    }

    fn end_of_message(
        &mut self,
        verb: Verb,
        summary: DataSummary,
        outcome: MessageOutcome,
        bdat_size: Option<u64>,
    ) -> Step {
        let result = match (summary.error, outcome) {
            (Some(e), _) => Err(self.data_error_reply(e)),
            (None, MessageOutcome::Rejected(reply)) => Err(reply),
            (None, MessageOutcome::Queued { queue_id }) => Ok(match bdat_size {
                Some(n) => r::bdat_queued(n, &queue_id),
                None => r::queued(&queue_id),
            }),
        };
        self.mail_reset();
        match result {
            Ok(reply) => {
                // smtpd.c: forgive earlier client errors once a message got through.
                self.error_count = 0;
                self.junk_commands = 0;
                self.success(verb, reply)
            }
            Err(reply) => self.error(reply),
        }
    }

    fn data_error_reply(&self, e: DataError) -> Reply {
        e.reply(&self.cfg.myhostname, self.cfg.bare_lf_reject_code)
    }
}

/// Commands allowed before STARTTLS when TLS is required (smtpd.c's
/// SMTPD_CMD_FLAG_PRE_TLS); an unknown command gets its own 500 first.
fn pre_tls(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Helo
            | Verb::Ehlo
            | Verb::Xclient
            | Verb::StartTls
            | Verb::Noop
            | Verb::Quit
            | Verb::Unknown
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DataError;

    use crate::line::crlf_line as line;

    /// Runs a command, answering decisions with `verdict`; returns the reply texts.
    fn run(s: &mut Session, cmd: &str, verdict: &Verdict) -> Vec<String> {
        let mut step = s.command(&line(cmd));
        loop {
            match step {
                Step::Decide(_) => step = s.decide(verdict.clone()),
                Step::Send(send) | Step::ReadData(send) | Step::StartTls(send) => {
                    return send.replies.iter().map(ToString::to_string).collect();
                }
                Step::SkipChunk { then, size } => {
                    let mut v: Vec<String> = then.replies.iter().map(ToString::to_string).collect();
                    v.insert(0, format!("skip {size}"));
                    return v;
                }
                Step::ReadChunk { size, last } => return vec![format!("read {size} {last}")],
                Step::Closed => return vec!["closed".into()],
            }
        }
    }

    fn accept(s: &mut Session, cmd: &str) -> Vec<String> {
        run(s, cmd, &Verdict::Accept)
    }

    #[test]
    fn helo_required() {
        let mut cfg = SessionConfig::new("mx");
        cfg.helo_required = true;
        let mut s = Session::new(cfg);
        assert_eq!(
            accept(&mut s, "MAIL FROM:<a@b>"),
            ["503 5.5.1 Error: send HELO/EHLO first"]
        );
        assert_eq!(
            accept(&mut s, "ETRN x"),
            ["503 Error: send HELO/EHLO first"]
        );
        assert_eq!(accept(&mut s, "HELO c"), ["250 mx"]);
        assert_eq!(accept(&mut s, "MAIL FROM:<a@b>"), ["250 2.1.0 Ok"]);
        assert_eq!(s.protocol(), "SMTP");
    }

    #[test]
    fn rejected_recipients_then_data() {
        let mut s = Session::new(SessionConfig::new("mx"));
        accept(&mut s, "MAIL FROM:<a@b>");
        let deny = Verdict::Reject(Reply::parse("554 5.7.1 <x@y>: Relay access denied").unwrap());
        assert_eq!(
            run(&mut s, "RCPT TO:<x@y>", &deny),
            ["554 5.7.1 <x@y>: Relay access denied"]
        );
        assert_eq!(
            accept(&mut s, "DATA"),
            ["554 5.5.1 Error: no valid recipients"]
        );
        assert_eq!(s.error_count(), 2);
        assert_eq!(
            s.stats().log_suffix(),
            " mail=1 rcpt=0/1 data=0/1 commands=1/3"
        );
    }

    #[test]
    fn message_forgives_errors_and_reports_data_errors() {
        let mut s = Session::new(SessionConfig::new("mx"));
        accept(&mut s, "BOGUS");
        accept(&mut s, "MAIL FROM:<a@b>");
        accept(&mut s, "RCPT TO:<c@d>");
        assert_eq!(
            accept(&mut s, "DATA"),
            ["354 End data with <CR><LF>.<CR><LF>"]
        );
        let ok = DataSummary {
            size: 10,
            error: None,
        };
        let queued = MessageOutcome::Queued {
            queue_id: "ABC".into(),
        };
        let Step::Send(send) = s.message_done(ok, queued.clone()) else {
            panic!()
        };
        assert_eq!(send.replies[0].to_string(), "250 2.0.0 Ok: queued as ABC");
        assert_eq!(s.error_count(), 0);
        accept(&mut s, "MAIL FROM:<a@b>");
        accept(&mut s, "RCPT TO:<c@d>");
        accept(&mut s, "DATA");
        let bad = DataSummary {
            size: 10,
            error: Some(DataError::BareLf),
        };
        let Step::Send(send) = s.message_done(bad, queued) else {
            panic!()
        };
        assert_eq!(
            send.replies[0].to_string(),
            "550 5.5.2 mx Error: bare <LF> received"
        );
        assert_eq!(s.error_count(), 1);
        assert!(s.sender().is_none());
    }

    #[test]
    fn bdat_zero_last_after_discarded_last() {
        // Postfix 3.7.11's smtpd crashes here (signal 11, seen live); we answer 503.
        let mut s = Session::new(SessionConfig::new("mx"));
        accept(&mut s, "MAIL FROM:<a@b>");
        accept(&mut s, "RCPT TO:<c@d>");
        assert_eq!(
            accept(&mut s, "BDAT 0"),
            ["skip 0", "551 5.7.1 Null BDAT request"]
        );
        assert_eq!(
            accept(&mut s, "BDAT 2 LAST"),
            ["skip 2", "551 5.0.0 Discarded 2 bytes after earlier error"]
        );
        assert_eq!(
            accept(&mut s, "BDAT 0 LAST"),
            ["skip 0", "503 5.5.1 Error: need RCPT command"]
        );
    }

    #[test]
    fn bdat_chunks_and_size_limit() {
        let mut cfg = SessionConfig::new("mx");
        cfg.ehlo.message_size_limit = 10;
        let mut s = Session::new(cfg);
        accept(&mut s, "MAIL FROM:<a@b>");
        accept(&mut s, "RCPT TO:<c@d>");
        assert_eq!(accept(&mut s, "BDAT 6"), ["read 6 false"]);
        let Step::Send(send) = s.chunk_done(
            DataSummary {
                size: 6,
                error: None,
            },
            None,
        ) else {
            panic!()
        };
        assert_eq!(send.replies[0].to_string(), "250 2.0.0 Ok: 6 bytes");
        assert_eq!(
            accept(&mut s, "BDAT 5 LAST"),
            ["skip 5", "552 5.3.4 Chunk exceeds message size limit"]
        );
        assert_eq!(
            accept(&mut s, "MAIL FROM:<a@b> SIZE=11"),
            ["552 5.3.4 Message size exceeds fixed limit"]
        );
    }

    #[test]
    fn recipient_overshoot_and_hard_limit() {
        let mut cfg = SessionConfig::new("mx");
        cfg.recipient_limit = 1;
        cfg.recipient_overshoot_limit = 1;
        cfg.hard_error_limit = 2;
        let mut s = Session::new(cfg);
        accept(&mut s, "MAIL FROM:<a@b>");
        assert_eq!(accept(&mut s, "RCPT TO:<c@d>"), ["250 2.1.5 Ok"]);
        assert_eq!(
            accept(&mut s, "RCPT TO:<c@d>"),
            ["452 4.5.3 Error: too many recipients"]
        );
        assert_eq!(s.error_count(), 0);
        assert_eq!(
            accept(&mut s, "RCPT TO:<c@d>"),
            ["452 4.5.3 Error: too many recipients"]
        );
        assert_eq!(
            accept(&mut s, "RCPT TO:<c@d>"),
            [
                "452 4.5.3 Error: too many recipients",
                "421 4.7.0 mx Error: too many errors"
            ]
        );
        assert!(s.is_closed());
        assert_eq!(s.command(&line("NOOP")), Step::Closed);
    }

    #[test]
    fn starttls_auth_and_discarded_keywords() {
        let mut cfg = SessionConfig::new("mx");
        cfg.ehlo.starttls = true;
        cfg.ehlo.auth_mechanisms = Some("PLAIN".into());
        cfg.ehlo.discard = crate::reply::DiscardSet::parse("enhancedstatuscodes");
        let mut s = Session::new(cfg);
        assert!(accept(&mut s, "EHLO c")[0].contains("250-STARTTLS"));
        assert_eq!(accept(&mut s, "STARTTLS"), ["220 2.0.0 Ready to start TLS"]);
        s.tls_started();
        assert_eq!(
            accept(&mut s, "STARTTLS"),
            ["554 5.5.1 Error: TLS already active"]
        );
        assert!(!accept(&mut s, "EHLO c")[0].contains("STARTTLS"));
        assert_eq!(accept(&mut s, "AUTH"), ["501 5.5.4 Syntax: AUTH mechanism"]);
        assert_eq!(
            accept(&mut s, "AUTH PLAIN AGFAYg=="),
            ["235 2.7.0 Authentication successful"]
        );
        assert_eq!(
            accept(&mut s, "AUTH PLAIN"),
            ["503 5.5.1 Error: already authenticated"]
        );
    }

    #[test]
    fn tls_required_and_auth_only() {
        let mut cfg = SessionConfig::new("mx");
        cfg.ehlo.starttls = true;
        cfg.ehlo.auth_mechanisms = Some("PLAIN LOGIN".into());
        cfg.tls_required = true;
        cfg.tls_auth_only = true;
        let mut s = Session::new(cfg);
        let must = ["530 5.7.0 Must issue a STARTTLS command first"];
        let ehlo = accept(&mut s, "EHLO c").join("\n");
        assert!(
            ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
            "{ehlo}"
        );
        let cases: &[(&str, &[&str])] = &[
            ("MAIL FROM:<a@b>", &must),
            ("AUTH PLAIN AGFAYg==", &must),
            ("RSET", &must),
            ("VRFY a", &must),
            ("NOOP", &["250 2.0.0 Ok"]),
            ("BOGUS", &["500 5.5.2 Error: command not recognized"]),
            ("STARTTLS", &["220 2.0.0 Ready to start TLS"]),
        ];
        for (cmd, want) in cases {
            assert_eq!(accept(&mut s, cmd), *want, "{cmd}");
        }
        s.tls_started();
        assert!(s.helo_name().is_none());
        let ehlo = accept(&mut s, "EHLO c").join("\n");
        assert!(
            !ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"),
            "{ehlo}"
        );
        assert_eq!(accept(&mut s, "MAIL FROM:<a@b>"), ["250 2.1.0 Ok"]);
    }

    #[test]
    fn driver_misuse_ends_the_session() {
        let mut s = Session::new(SessionConfig::new("mx"));
        assert!(matches!(
            s.command(&line("MAIL FROM:<a@b>")),
            Step::Decide(Decision::Mail(_))
        ));
        let Step::Send(send) = s.command(&line("NOOP")) else {
            panic!()
        };
        assert_eq!(
            send.replies[0].to_string(),
            "421 4.3.0 mx Server local error"
        );
        assert!(send.close);
    }
}
