//! The session driver: greeting, EHLO/HELO/LHLO, then MAIL, RCPT, DATA, the content and
//! QUIT, with PIPELINING when offered, as smtp_helo() and smtp_loop() in smtp_proto.c.
//!
//! Pipelining follows Postfix: MAIL, the RCPTs and DATA go out in batches of at most
//! 4096 bytes (VSTREAM_BUFSIZE) and the replies are read in order before the content;
//! QUIT goes out with the final dot. Without PIPELINING each command waits for its reply.
//!
//! Security: see [`super::wire`]; no server reply can make this code panic, loop without
//! a bound or hold more than a few line_length_limit's worth of text.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::command::{self, Features};
use super::content::ContentEncoder;
use super::downgrade::Downgrader;
use super::outcome::{DsnAction, SessionResult, Tracker};
use super::reply::{Reply, fake};
use super::wire::{Wire, WireError};
use super::{Attempt, Message, Peer, Protocol, Settings};

/// Postfix's PIPELINING_BUFSIZE: the most command bytes sent before reading replies.
const PIPELINING_BUFSIZE: usize = 4096;

/// The content is encoded and sent in pieces of about this size.
const CONTENT_PIECE: usize = 64 * 1024;

/// Runs one session over `io` (already connected, e.g. by [`super::connect_tcp`]) with
/// `peer` for the texts; `attempt` says whether this is the last server to try (soft
/// failures are then deferrals rather than [`super::Outcome::Kept`]) and whether to
/// check for a mail loop.
///
/// Every recipient of `msg` gets exactly one result.
pub async fn deliver<S>(
    io: S,
    settings: &Settings,
    peer: &Peer,
    msg: &Message<'_>,
    attempt: &Attempt,
) -> SessionResult
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut s = Session {
        wire: Wire::new(io),
        settings,
        peer,
        namaddr: peer.namaddr(),
        msg,
        attempt,
        t: Tracker::new(
            msg.recipients.len(),
            attempt.final_server,
            settings.soft_bounce,
        ),
        features: Features::default(),
    };
    if s.helo().await.is_ok() {
        s.xfer().await;
    }
    // Every recipient has an outcome by now (each failure path marks all unmarked
    // recipients); a hole would be a bug in this module, so fill it loudly as deferred.
    let hole = fake("4.3.0");
    let todo: Vec<usize> = s.t.unmarked().collect();
    if !todo.is_empty() {
        s.t.bulk_fail(None, &hole, "internal error: no result".into(), false);
    }
    let recipients = msg
        .recipients
        .iter()
        .zip(s.t.slots)
        .filter_map(|(r, o)| {
            o.map(|outcome| super::RcptResult {
                index: r.index,
                outcome,
            })
        })
        .collect();
    SessionResult {
        relay: peer.relay(),
        recipients,
        throttle: s.t.throttle,
        features: s.features,
    }
}

/// The session is over; its failure is recorded.
struct Stop;

/// A command whose reply is awaited (Postfix's recv_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Mail,
    Rcpt(usize),
    Data,
    Dot,
    Rset,
    Quit,
}

impl Cmd {
    /// xfer_states[]: "... while %s".
    fn doing(self) -> &'static str {
        match self {
            Cmd::Mail => "sending MAIL FROM",
            Cmd::Rcpt(_) => "sending RCPT TO",
            Cmd::Data => "sending DATA command",
            Cmd::Dot => "sending end of data -- message may be sent more than once",
            Cmd::Rset => "sending final RSET",
            Cmd::Quit => "sending QUIT",
        }
    }

    /// xfer_request[]: "(in reply to %s)".
    fn request(self) -> &'static str {
        match self {
            Cmd::Mail => "MAIL FROM command",
            Cmd::Rcpt(_) => "RCPT TO command",
            Cmd::Data => "DATA command",
            Cmd::Dot => "end of DATA command",
            Cmd::Rset => "final RSET command",
            Cmd::Quit => "QUIT command",
        }
    }
}

struct Session<'a, S> {
    wire: Wire<S>,
    settings: &'a Settings,
    peer: &'a Peer,
    namaddr: String,
    msg: &'a Message<'a>,
    attempt: &'a Attempt,
    t: Tracker,
    features: Features,
}

/// State of the mail transaction (smtp_loop()'s locals).
#[derive(Default)]
struct Txn {
    outstanding: VecDeque<Cmd>,
    mail_rejected: bool,
    /// Accepted recipients; -1 once DATA failed.
    nrcpt: i64,
    /// LMTP: the accepted recipients, in order, for the replies after the dot.
    survivors: Vec<usize>,
    /// The connection broke while the content was being sent.
    lost_in_data: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    fn line_limit(&self) -> usize {
        self.settings.reply_line_limit
    }

    /// smtp_stream_except(): "lost connection with X while ..." / "conversation with X
    /// timed out while ...", 4.4.2, all remaining recipients, throttled.
    fn stream_except(&mut self, err: WireError, doing: &str) {
        let text = match err {
            WireError::Eof => format!("lost connection with {} while {doing}", self.namaddr),
            WireError::Timeout => {
                format!("conversation with {} timed out while {doing}", self.namaddr)
            }
        };
        self.t.bulk_fail(None, &fake("4.4.2"), text, true);
    }

    /// "host X refused to talk to me: REPLY", a site failure.
    fn refused(&mut self, reply: &Reply) {
        let text = format!(
            "host {} refused to talk to me: {}",
            self.namaddr,
            reply.flat()
        );
        self.t.bulk_fail(Some(&self.peer.name), reply, text, true);
    }

    /// "host X said: REPLY (in reply to CMD)".
    fn said(&self, reply: &Reply, cmd: Cmd) -> String {
        format!(
            "host {} said: {} (in reply to {})",
            self.namaddr,
            reply.flat(),
            cmd.request()
        )
    }

    /// Sends one command and reads its reply (the handshake's smtp_chat_cmd() +
    /// smtp_chat_resp()).
    async fn chat(&mut self, cmd: &str, limit: Duration, doing: &str) -> Result<Reply, Stop> {
        self.wire.queue(format!("{cmd}\r\n").as_bytes());
        let r = match self.wire.flush(limit).await {
            Ok(()) => self.wire.read_reply(self.line_limit(), limit).await,
            Err(e) => Err(e),
        };
        r.map_err(|e| {
            self.stream_except(e, doing);
            Stop
        })
    }

    /// smtp_quit() after a failed handshake: QUIT, its reply read unless
    /// smtp_skip_quit_response, errors ignored.
    async fn quit(&mut self) {
        let limit = self.settings.quit_timeout;
        self.wire.queue(b"QUIT\r\n");
        if self.wire.flush(limit).await.is_ok() && !self.settings.skip_quit_response {
            let _ = self.wire.read_reply(self.line_limit(), limit).await;
        }
    }

    /// smtp_helo(): the greeting and EHLO/HELO/LHLO.
    async fn helo(&mut self) -> Result<(), Stop> {
        let limit = self.settings.helo_timeout;
        let greeting = match self.wire.read_reply(self.line_limit(), limit).await {
            Ok(r) => r,
            Err(e) => {
                self.stream_except(e, "receiving the initial server greeting");
                return Err(Stop);
            }
        };
        if greeting.class() != 2 {
            let mut r = greeting;
            // smtp_skip_5xx_greeting: a 5xx greeting often means "busy" (postconf(5)).
            if r.class() == 5 && self.settings.skip_5xx_greeting {
                r.dsn.replace_range(..1, "4");
            }
            self.refused(&r);
            self.quit().await;
            return Err(Stop);
        }
        let name = self.settings.helo_name.clone();
        let reply = match self.settings.protocol {
            Protocol::Smtp => {
                let mut esmtp = command::greeting_says_esmtp(&greeting);
                if self.settings.always_send_ehlo {
                    esmtp = true;
                }
                if self.settings.never_send_ehlo {
                    esmtp = false;
                }
                let mut ehlo_reply = None;
                if esmtp {
                    let r = self
                        .chat(
                            &format!("EHLO {name}"),
                            limit,
                            "performing the EHLO handshake",
                        )
                        .await?;
                    if r.class() == 2 {
                        ehlo_reply = Some(r);
                    } else if r.code == 421 {
                        self.refused(&r);
                        self.quit().await;
                        return Err(Stop);
                    }
                }
                if let Some(r) = ehlo_reply {
                    r
                } else {
                    let r = self
                        .chat(
                            &format!("HELO {name}"),
                            limit,
                            "performing the HELO handshake",
                        )
                        .await?;
                    if r.class() != 2 {
                        self.refused(&r);
                        self.quit().await;
                        return Err(Stop);
                    }
                    self.features = Features::default();
                    return self.check_smtputf8().await;
                }
            }
            Protocol::Lmtp => {
                let r = self
                    .chat(
                        &format!("LHLO {name}"),
                        limit,
                        "performing the LHLO handshake",
                    )
                    .await?;
                if r.class() != 2 {
                    self.refused(&r);
                    self.quit().await;
                    return Err(Stop);
                }
                r
            }
        };
        self.features = Features::from_ehlo(&reply);
        if let Some(check) = &self.attempt.loop_check
            && self
                .features
                .helo
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.settings.myhostname))
        {
            // smtp_helo(): the server replied to EHLO with our own name.
            let dsn = if check.best_mx { "5.4.6" } else { "4.4.6" };
            let text = format!("mail for {} loops back to myself", check.nexthop);
            self.t.bulk_fail(None, &fake(dsn), text, true);
            self.quit().await;
            return Err(Stop);
        }
        self.check_smtputf8().await
    }

    /// Mail that needs SMTPUTF8 bounces at a server without it (RFC 6531 3.4).
    async fn check_smtputf8(&mut self) -> Result<(), Stop> {
        if self.msg.smtputf8_required && !self.features.smtputf8 {
            let text = format!(
                "SMTPUTF8 is required, but was not offered by host {}",
                self.namaddr
            );
            self.t.bulk_fail(None, &fake("5.6.7"), text, false);
            self.quit().await;
            return Err(Stop);
        }
        Ok(())
    }

    /// smtp_xfer() and smtp_loop(): the mail transaction and QUIT.
    async fn xfer(&mut self) {
        if self.msg.recipients.is_empty() {
            self.quit().await;
            return;
        }
        let limit = self.features.size_limit;
        if limit > 0 && limit < self.msg.size {
            let text = format!(
                "message size {} exceeds size limit {limit} of server {}",
                self.msg.size, self.namaddr
            );
            self.t.bulk_fail(None, &fake("5.3.4"), text, false);
            // Postfix ends this (uncached) session without QUIT.
            return;
        }
        let mut txn = Txn::default();
        let _ = self.transaction(&mut txn).await;
    }

    async fn transaction(&mut self, txn: &mut Txn) -> Result<(), Stop> {
        let pipelining = self.features.pipelining;
        let downgrading = command::mime_downgrade(
            &self.features,
            self.msg,
            self.settings.disable_mime_output_conversion,
        );
        let mail = command::mail_from(&self.features, self.msg, downgrading);
        self.send(txn, &mail, Cmd::Mail);
        if !pipelining {
            self.catch_up(txn).await?;
        }
        for i in 0..self.msg.recipients.len() {
            if txn.mail_rejected {
                return self.abort(txn).await;
            }
            let rcpt = command::rcpt_to(&self.features, self.msg, &self.msg.recipients[i]);
            if pipelining && self.wire.pending() + rcpt.len() + 2 > PIPELINING_BUFSIZE {
                self.catch_up(txn).await?;
                if txn.mail_rejected {
                    return self.abort(txn).await;
                }
            }
            self.send(txn, &rcpt, Cmd::Rcpt(i));
            if !pipelining {
                self.catch_up(txn).await?;
            }
        }
        if !pipelining || self.wire.pending() + 6 > PIPELINING_BUFSIZE {
            self.catch_up(txn).await?;
        }
        if txn.outstanding.is_empty() && (txn.mail_rejected || txn.nrcpt == 0) {
            return self.abort(txn).await;
        }
        self.send(txn, "DATA", Cmd::Data);
        // The dot is a wait state: every reply so far is read before the content.
        self.catch_up(txn).await?;
        if txn.nrcpt < 0 {
            return self.abort(txn).await;
        }
        if txn.nrcpt > 0 {
            self.send_content(txn, downgrading).await?;
        }
        if txn.lost_in_data {
            // The server may still have said why before it hung up.
            txn.outstanding.push_back(Cmd::Dot);
            return self.catch_up(txn).await;
        }
        self.send(txn, ".", Cmd::Dot);
        if pipelining {
            self.send_quit(txn);
        }
        self.catch_up(txn).await?;
        if !pipelining {
            self.send_quit(txn);
            self.catch_up(txn).await?;
        }
        Ok(())
    }

    /// QUIT; its reply is awaited unless smtp_skip_quit_response.
    fn send_quit(&mut self, txn: &mut Txn) {
        self.wire.queue(b"QUIT\r\n");
        if !self.settings.skip_quit_response {
            txn.outstanding.push_back(Cmd::Quit);
        }
    }

    fn send(&mut self, txn: &mut Txn, cmd: &str, what: Cmd) {
        self.wire.queue(cmd.as_bytes());
        self.wire.queue(b"\r\n");
        txn.outstanding.push_back(what);
    }

    /// RSET and QUIT after a failed transaction; their replies are read and ignored.
    async fn abort(&mut self, txn: &mut Txn) -> Result<(), Stop> {
        self.send(txn, "RSET", Cmd::Rset);
        if !self.features.pipelining {
            self.catch_up(txn).await?;
        }
        self.send_quit(txn);
        self.catch_up(txn).await
    }

    fn timeout_for(&self, cmd: Cmd) -> Duration {
        let s = self.settings;
        match cmd {
            Cmd::Mail => s.mail_timeout,
            Cmd::Rcpt(_) => s.rcpt_timeout,
            Cmd::Data => s.data_init_timeout,
            Cmd::Dot => s.data_done_timeout,
            Cmd::Rset => s.rset_timeout,
            Cmd::Quit => s.quit_timeout,
        }
    }

    /// Sends what is queued and reads the reply of every outstanding command, in order.
    async fn catch_up(&mut self, txn: &mut Txn) -> Result<(), Stop> {
        let first = txn.outstanding.front().copied();
        if self.wire.pending() > 0 {
            let limit = first.map_or(self.settings.quit_timeout, |c| self.timeout_for(c));
            if let Err(e) = self.wire.flush(limit).await {
                // Only QUIT was left to send: nothing to report.
                return Err(match first {
                    Some(first) => self.read_failed(txn, first, e),
                    None => Stop,
                });
            }
        }
        while let Some(&cmd) = txn.outstanding.front() {
            // LMTP: one reply per accepted recipient after the dot.
            let replies = match (cmd, self.settings.protocol) {
                (Cmd::Dot, Protocol::Lmtp) if txn.nrcpt > 0 => txn.survivors.len(),
                _ => 1,
            };
            for n in 0..replies {
                let reply = match self
                    .wire
                    .read_reply(self.line_limit(), self.timeout_for(cmd))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => return Err(self.read_failed(txn, cmd, e)),
                };
                self.on_reply(txn, cmd, n, &reply);
            }
            txn.outstanding.pop_front();
        }
        Ok(())
    }

    /// A read or write failed while `cmd`'s reply was awaited. Failures after the
    /// end-of-data reply (RSET, QUIT) are not reported (Postfix's SENDING_MAIL).
    fn read_failed(&mut self, txn: &mut Txn, cmd: Cmd, err: WireError) -> Stop {
        txn.outstanding.clear();
        match cmd {
            Cmd::Rset | Cmd::Quit => {}
            Cmd::Dot if txn.lost_in_data => self.stream_except(err, "sending message body"),
            _ => self.stream_except(err, cmd.doing()),
        }
        Stop
    }

    fn on_reply(&mut self, txn: &mut Txn, cmd: Cmd, n: usize, reply: &Reply) {
        let host = self.peer.name.clone();
        match cmd {
            Cmd::Mail => {
                if reply.class() != 2 {
                    let text = self.said(reply, cmd);
                    self.t.bulk_fail(Some(&host), reply, text, false);
                    txn.mail_rejected = true;
                }
            }
            Cmd::Rcpt(i) => {
                if txn.mail_rejected || self.t.is_marked(i) {
                    return;
                }
                if reply.class() == 2 {
                    txn.nrcpt += 1;
                    txn.survivors.push(i);
                } else {
                    let text = self.said(reply, cmd);
                    self.t.rcpt_fail(i, Some(&host), reply, text);
                }
            }
            Cmd::Data => {
                if reply.class() != 3 {
                    if txn.nrcpt > 0 {
                        let text = self.said(reply, cmd);
                        self.t.bulk_fail(Some(&host), reply, text, false);
                    }
                    txn.nrcpt = -1;
                }
            }
            Cmd::Dot => self.on_dot_reply(txn, n, reply, &host),
            Cmd::Rset | Cmd::Quit => {}
        }
    }

    fn on_dot_reply(&mut self, txn: &mut Txn, n: usize, reply: &Reply, host: &str) {
        if txn.nrcpt <= 0 {
            return;
        }
        let dsn = self.features.dsn;
        let action =
            if self.settings.protocol == Protocol::Lmtp && !dsn && self.settings.final_delivery {
                DsnAction::Delivered
            } else {
                DsnAction::Relayed
            };
        match self.settings.protocol {
            Protocol::Smtp => {
                if reply.class() == 2 {
                    let todo: Vec<usize> = self.t.unmarked().collect();
                    for i in todo {
                        self.t.done(i, host, reply, action, dsn);
                    }
                } else {
                    let text = self.said(reply, Cmd::Dot);
                    self.t.bulk_fail(Some(host), reply, text, false);
                }
            }
            Protocol::Lmtp => {
                let Some(&i) = txn.survivors.get(n) else {
                    return;
                };
                if reply.class() == 2 {
                    self.t.done(i, host, reply, action, dsn);
                } else {
                    let text = self.said(reply, Cmd::Dot);
                    self.t.rcpt_fail(i, Some(host), reply, text);
                }
            }
        }
    }

    /// The content, dot-stuffed (and MIME-downgraded when `downgrading`), in pieces under
    /// smtp_data_xfer_timeout. A timeout ends the session; a lost connection is noted so
    /// the caller reads any last reply.
    async fn send_content(&mut self, txn: &mut Txn, downgrading: bool) -> Result<(), Stop> {
        let enc = ContentEncoder::new(self.settings.output_line_limit);
        let mut downgrader = downgrading.then(Downgrader::new);
        let limit = self.settings.data_xfer_timeout;
        let content = self.msg.content;
        let mut lines = content
            .split_inclusive(|&c| c == b'\n')
            .map(|l| l.strip_suffix(b"\n").unwrap_or(l))
            .peekable();
        let mut piece = Vec::with_capacity(CONTENT_PIECE + 1024);
        let mut converted = Vec::new();
        // Bounded: each round consumes at least one line, or ends.
        loop {
            piece.clear();
            let mut more = true;
            while piece.len() < CONTENT_PIECE {
                let Some(line) = lines.next() else {
                    more = false;
                    break;
                };
                match downgrader.as_mut() {
                    Some(d) => {
                        converted.clear();
                        d.line(line, &mut converted);
                        if lines.peek().is_none() {
                            d.finish(&mut converted);
                        }
                        for l in &converted {
                            enc.line(l, &mut piece);
                        }
                    }
                    None => enc.line(line, &mut piece),
                }
            }
            if !piece.is_empty() {
                self.wire.queue(&piece);
                match self.wire.flush(limit).await {
                    Ok(()) => {}
                    Err(WireError::Eof) => {
                        txn.lost_in_data = true;
                        return Ok(());
                    }
                    Err(WireError::Timeout) => {
                        txn.outstanding.clear();
                        self.stream_except(WireError::Timeout, "sending message body");
                        return Err(Stop);
                    }
                }
            }
            if !more {
                return Ok(());
            }
        }
    }
}
