//! The per-verb rules of [`Session`]: state checks first, then argument syntax, in
//! Postfix 3.7 smtpd's order (which decides which error a client sees when a command
//! is wrong in two ways), then a [`Decision`] for the driver's policy.

use crate::command::{Command, Request, Verb, parse_bdat, parse_vrfy};
use crate::params::{MailFrom, ParseOptions, RcptTo, extract_address, valid_domain};
use crate::replies as r;
use crate::reply::{EhloKeyword, Reply};
use crate::session::{Awaiting, Bdat, Decision, Send, Session, Step};

/// How a verb went when it did not fail.
pub(crate) enum Outcome {
    /// Ask the driver.
    Decide(Decision),
    /// Done; send this positive reply.
    Done(Reply),
}

/// A verb's result; `Err` is the reply for a failed command.
pub(crate) type VerbResult = Result<Outcome, Reply>;

impl Session {
    pub(crate) fn helo(&mut self, req: &Request, opts: ParseOptions) -> VerbResult {
        let (Command::Helo(name) | Command::Ehlo(name)) =
            Command::from_request(req, &opts).map_err(|e| e.reply)?
        else {
            return Err(self.local_error());
        };
        let esmtp = req.verb == Verb::Ehlo;
        if self.cfg.decide_helo {
            return Ok(Outcome::Decide(Decision::Helo { name, esmtp }));
        }
        Ok(Outcome::Done(self.helo_accepted(name, esmtp)))
    }

    pub(crate) fn helo_accepted(&mut self, name: String, esmtp: bool) -> Reply {
        self.mail_reset();
        // Postfix keeps proto=ESMTP once EHLO was seen (smtpd.c, helo_cmd).
        self.esmtp |= esmtp;
        self.helo_name = Some(name);
        if esmtp {
            let mut features = self.cfg.ehlo.clone();
            features.starttls &= !self.tls_active;
            // smtpd.c: with smtpd_tls_auth_only SASL is activated only under TLS.
            if (self.cfg.tls_auth_only && !self.tls_active) || self.auth_hidden {
                features.auth_mechanisms = None;
            }
            features.reply()
        } else {
            r::helo(&self.cfg.myhostname)
        }
    }

    pub(crate) fn mail(&mut self, req: &Request, opts: ParseOptions) -> VerbResult {
        if self.cfg.helo_required && self.helo_name.is_none() {
            return Err(r::reply(r::NEED_HELO));
        }
        if self.sender.is_some() {
            return Err(r::reply(r::NESTED_MAIL));
        }
        if self.bdat != Bdat::None {
            return Err(r::reply(r::MAIL_AFTER_BDAT));
        }
        let m = MailFrom::parse(&req.args, &opts).map_err(|e| e.reply)?;
        let limit = self.cfg.ehlo.message_size_limit;
        if limit > 0 && m.size.is_some_and(|s| s > limit) {
            return Err(r::reply(r::SIZE_FIXED_LIMIT));
        }
        Ok(Outcome::Decide(Decision::Mail(m)))
    }

    pub(crate) fn rcpt(&mut self, req: &Request, opts: ParseOptions) -> VerbResult {
        if self.sender.is_none() {
            return Err(r::reply(r::NEED_MAIL));
        }
        if self.bdat != Bdat::None {
            return Err(r::reply(r::RCPT_AFTER_BDAT));
        }
        let rcpt = RcptTo::parse(&req.args, &opts).map_err(|e| e.reply)?;
        if self.cfg.recipient_limit > 0 && self.rcpt_count >= self.cfg.recipient_limit {
            // Postfix counts this 452 as a success until the overshoot limit.
            self.rcpt_overshoot += 1;
            if self.rcpt_overshoot <= self.cfg.recipient_overshoot_limit {
                return Ok(Outcome::Done(r::reply(r::TOO_MANY_RCPTS)));
            }
            return Err(r::reply(r::TOO_MANY_RCPTS));
        }
        Ok(Outcome::Decide(Decision::Rcpt(rcpt)))
    }

    pub(crate) fn data(&mut self, req: &Request) -> VerbResult {
        if self.bdat != Bdat::None {
            return Err(r::reply(r::DATA_AFTER_BDAT));
        }
        if self.rcpt_count == 0 {
            // With pipelining a client sends DATA before it knows that every RCPT
            // failed; Postfix then says 554, and 503 only without MAIL.
            return Err(r::reply(if self.sender.is_none() {
                r::NEED_RCPT
            } else {
                r::NO_VALID_RCPT
            }));
        }
        if !req.args.is_empty() {
            return Err(r::reply("501 5.5.4 Syntax: DATA"));
        }
        Ok(Outcome::Decide(Decision::Data))
    }

    pub(crate) fn bdat(&mut self, req: &Request) -> Step {
        if self.cfg.ehlo.discard.contains(EhloKeyword::Chunking) {
            return self.error(r::reply(r::BDAT_NOT_IMPLEMENTED));
        }
        let (size, last) = match parse_bdat(&req.args) {
            Ok(v) => v,
            Err(e) => return self.error(e.reply),
        };
        if size == 0 && !last {
            return self.skip_chunk(size, last, r::reply(r::NULL_BDAT));
        }
        if self.bdat == Bdat::Error {
            return self.skip_chunk(size, last, r::bdat_discarded(size));
        }
        if self.bdat == Bdat::None {
            if self.rcpt_count == 0 {
                let text = if self.sender.is_none() {
                    r::NEED_RCPT
                } else {
                    r::NO_VALID_RCPT
                };
                return self.skip_chunk(size, last, r::reply(text));
            }
            self.chunk_after_decision = Some((size, last));
            self.awaiting = Some(Awaiting::Decision(Verb::Bdat, Decision::Data));
            return Step::Decide(Decision::Data);
        }
        self.read_chunk(size, last)
    }

    /// After the state and policy checks: the size check, then read the chunk.
    pub(crate) fn read_chunk(&mut self, size: u64, last: bool) -> Step {
        let limit = self.cfg.ehlo.message_size_limit;
        if limit > 0 && self.bdat_size > limit.saturating_sub(size) {
            return self.skip_chunk(size, last, r::reply(r::CHUNK_TOO_BIG));
        }
        if self.bdat == Bdat::None {
            self.bdat_size = 0;
        }
        self.bdat = Bdat::Ok;
        self.awaiting = Some(Awaiting::Chunk { size, last });
        Step::ReadChunk { size, last }
    }

    /// Postfix's skip_bdat(): drop the payload, reply, and either end the transaction
    /// (LAST) or drop every later chunk until LAST or RSET.
    pub(crate) fn skip_chunk(&mut self, size: u64, last: bool, reply: Reply) -> Step {
        if last {
            self.mail_reset();
        } else {
            self.bdat = Bdat::Error;
        }
        match self.error(reply) {
            Step::Send(then) => Step::SkipChunk { size, then },
            other => other,
        }
    }

    pub(crate) fn vrfy(&mut self, req: &Request, opts: ParseOptions) -> VerbResult {
        if !self.cfg.ehlo.vrfy_enabled {
            return Err(r::reply(r::VRFY_DISABLED));
        }
        let (address, smtputf8) = parse_vrfy(&req.args, &opts).map_err(|e| e.reply)?;
        let first = req.args.first().map_or("", |t| t.text.as_str());
        if extract_address(first, false, opts.strict_rfc821).is_none() {
            return Err(r::reply("501 5.1.3 Bad recipient address syntax"));
        }
        Ok(Outcome::Decide(Decision::Vrfy { address, smtputf8 }))
    }

    pub(crate) fn etrn(&mut self, req: &Request) -> VerbResult {
        if self.cfg.helo_required && self.helo_name.is_none() {
            return Err(r::reply(r::ETRN_NEED_HELO));
        }
        if self.sender.is_some() {
            return Err(r::reply(r::ETRN_IN_MAIL));
        }
        if req.args.len() != 1 {
            return Err(r::reply("500 Syntax: ETRN domain"));
        }
        let arg = &req.args[0].text;
        let domain = arg.strip_prefix(['@', '#']).unwrap_or(arg);
        // smtpd.c etrn_cmd(): a host name, or (beyond RFC 1985) an address literal.
        if !valid_etrn_domain(domain) {
            return Err(r::reply("501 Error: invalid parameter syntax"));
        }
        Ok(Outcome::Decide(Decision::Etrn(domain.to_string())))
    }

    pub(crate) fn starttls(&mut self, req: &Request) -> Step {
        let reply = if !req.args.is_empty() {
            r::reply("501 5.5.4 Syntax: STARTTLS")
        } else if self.tls_active {
            r::reply(r::TLS_ACTIVE)
        } else if !self.cfg.ehlo.starttls || self.cfg.ehlo.discard.contains(EhloKeyword::StartTls) {
            r::reply(r::NOT_IMPLEMENTED)
        } else if self.cfg.tls_unavailable {
            r::reply("454 4.7.0 TLS not available due to local problem")
        } else {
            self.stats.count_ok(Verb::StartTls);
            return Step::StartTls(self.send_parts(vec![r::reply(r::TLS_READY)], false));
        };
        self.error(reply)
    }

    pub(crate) fn auth(&mut self, req: &Request) -> VerbResult {
        if self.cfg.helo_required && self.helo_name.is_none() {
            return Err(r::reply(r::NEED_HELO));
        }
        if self.cfg.ehlo.auth_mechanisms.is_none()
            || (self.cfg.tls_auth_only && !self.tls_active)
            || self.cfg.ehlo.discard.contains(EhloKeyword::Auth)
        {
            return Err(r::reply(r::AUTH_NOT_ENABLED));
        }
        if self.sender.is_some() {
            return Err(r::reply(r::AUTH_IN_MAIL));
        }
        if self.authenticated {
            return Err(r::reply(r::AUTH_DONE));
        }
        if req.args.is_empty() || req.args.len() > 2 {
            return Err(r::reply(r::AUTH_SYNTAX));
        }
        Ok(Outcome::Decide(Decision::Auth {
            mechanism: req.args[0].text.clone(),
            initial: req.args.get(1).map(|t| t.text.clone()),
        }))
    }

    /// XCLIENT and XFORWARD (smtpd_authorized_xclient_hosts and
    /// smtpd_authorized_xforward_hosts are empty by default: refused after the
    /// transaction and syntax checks).
    pub(crate) fn xclient(&mut self, req: &Request) -> VerbResult {
        if self.sender.is_some() {
            return Err(r::reply(r::AUTH_IN_MAIL));
        }
        if req.args.is_empty() {
            return Err(r::reply(&format!(
                "501 5.5.4 Syntax: {} attribute=value...",
                req.verb.log_name().to_uppercase()
            )));
        }
        Err(r::reply(r::XCLIENT_DENIED))
    }

    /// smtpd_forbidden_commands, and Postfix's is_header() test: a client that sends
    /// `Subject: ...` or `GET / HTTP/1.0` as a command is not speaking SMTP.
    pub(crate) fn forbidden(&self, word: &str) -> bool {
        is_header(word)
            || self
                .cfg
                .forbidden_commands
                .iter()
                .any(|c| c.eq_ignore_ascii_case(word))
            || (self.cfg.forbid_non_letter_commands
                && !word.bytes().next().is_some_and(|b| b.is_ascii_alphabetic()))
    }

    /// Ends the mail transaction (Postfix's mail_reset + rcpt_reset).
    pub(crate) fn mail_reset(&mut self) {
        self.sender = None;
        self.rcpt_count = 0;
        self.rcpt_overshoot = 0;
        self.bdat = Bdat::None;
        self.bdat_size = 0;
    }

    /// A command succeeded with `reply`.
    pub(crate) fn success(&mut self, verb: Verb, reply: Reply) -> Step {
        self.stats.count_ok(verb);
        if matches!(
            verb,
            Verb::Helo | Verb::Ehlo | Verb::Rset | Verb::Noop | Verb::Vrfy | Verb::Etrn
        ) {
            // SMTPD_CMD_FLAG_LIMIT: past smtpd_junk_command_limit these count as errors.
            // smtpd.c tests `junk_cmds++ > limit`: the count before this command, so
            // the first error is the (limit + 2)th such command (EHLO included).
            let before = self.junk_commands;
            self.junk_commands += 1;
            if before > self.cfg.junk_command_limit {
                return self.error_counted(reply);
            }
        }
        let close = reply.closes_session();
        self.send(vec![reply], close)
    }

    /// A command failed with `reply`: one more error.
    pub(crate) fn error(&mut self, reply: Reply) -> Step {
        self.error_counted(reply)
    }

    fn error_counted(&mut self, reply: Reply) -> Step {
        let delay = self.error_count >= self.cfg.soft_error_limit;
        self.error_count += 1;
        let mut close = reply.closes_session();
        let mut replies = vec![reply];
        if !close && self.error_count >= self.cfg.hard_error_limit {
            // Postfix checks this before reading the next command.
            replies.push(r::too_many_errors(&self.cfg.myhostname));
            close = true;
        }
        self.closed |= close;
        Step::Send(Send {
            replies,
            close,
            delay,
        })
    }

    pub(crate) fn send(&mut self, replies: Vec<Reply>, close: bool) -> Step {
        Step::Send(self.send_parts(replies, close))
    }

    pub(crate) fn send_parts(&mut self, replies: Vec<Reply>, close: bool) -> Send {
        self.closed |= close;
        Send {
            replies,
            close,
            delay: self.error_count >= self.cfg.soft_error_limit,
        }
    }

    /// `421 4.3.0 <myhostname> Server local error`, for a driver that broke this
    /// API's call order.
    pub(crate) fn local_error(&self) -> Reply {
        r::reply(&format!(
            "421 4.3.0 {} Server local error",
            self.cfg.myhostname
        ))
    }
}

/// What etrn_cmd() accepts: Postfix's valid_hostname() (ASCII only, no trailing dot) or
/// valid_mailhost_literal() (`[1.2.3.4]`, `[IPv6:...]`).
fn valid_etrn_domain(domain: &str) -> bool {
    if domain.starts_with('[') {
        return valid_domain(domain);
    }
    domain.is_ascii() && !domain.ends_with('.') && valid_domain(domain)
}

/// Postfix's is_header(): a header label (printable ASCII, optional blanks) and `:`.
fn is_header(word: &str) -> bool {
    let mut label = 0;
    let mut blanks = false;
    for b in word.bytes() {
        match b {
            b':' => return label > 0,
            b' ' | b'\t' if label > 0 => blanks = true,
            0x21..=0x7e if !blanks => label += 1,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionConfig;

    use crate::line::crlf_line as line;

    #[test]
    fn etrn_domains() {
        for (domain, ok) in [
            ("x", true),
            ("mx.example.test", true),
            ("a_b.example", true),
            ("[127.0.0.1]", true),
            ("[IPv6:::1]", true),
            ("example.test.", false),
            ("a..b", false),
            ("-a.b", false),
            ("1.2.3.4", false),
            ("[1.2.3]", false),
            ("d\u{fc}.example", false),
            ("a/b", false),
        ] {
            assert_eq!(valid_etrn_domain(domain), ok, "{domain}");
        }
    }

    #[test]
    fn etrn_syntax_before_the_decision() {
        let mut s = Session::new(SessionConfig::new("mx"));
        let step = s.command(&line("ETRN @a..b"));
        let Step::Send(send) = step else {
            panic!("{step:?}")
        };
        assert_eq!(
            send.replies[0].to_string(),
            "501 Error: invalid parameter syntax"
        );
        let step = s.command(&line("ETRN #x.test"));
        assert_eq!(step, Step::Decide(Decision::Etrn("x.test".to_owned())));
    }

    /// smtpd.c's `junk_cmds++ > var_smtpd_junk_cmd_limit` with the hard error limit 20:
    /// after EHLO, Postfix 3.7.11 answers 120 NOOPs with 250 and then says 421 (checked
    /// live by crates/daemon/tests/hostile/dialogs.txt, many-noops-one-write).
    #[test]
    fn junk_commands_count_as_errors_past_the_limit() {
        for (limit, noops_answered) in [(100u32, 120usize), (0, 20), (5, 25)] {
            let mut cfg = SessionConfig::new("mx");
            cfg.junk_command_limit = limit;
            let mut s = Session::new(cfg);
            let _ = s.command(&line("EHLO c"));
            let mut answered = 0;
            for _ in 0..200 {
                let Step::Send(send) = s.command(&line("NOOP")) else {
                    panic!("NOOP is answered")
                };
                answered += 1;
                if send.close {
                    assert!(send.replies[1].to_string().starts_with("421 4.7.0"));
                    break;
                }
            }
            assert_eq!(answered, noops_answered, "limit {limit}");
        }
    }
}
