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
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use super::command::{self, Features};
use super::connection::{Connection, Options, Start, Stream};
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
/// check for a mail loop. The session ends with QUIT, in plaintext.
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
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Start::Fresh(Box::new(io));
    run(start, settings, peer, msg, attempt, &Options::default())
        .await
        .0
}

/// One session with the caller's [`Options`]: from a new stream or a kept connection,
/// with STARTTLS when `opts.tls` asks for it, and without QUIT at a clean end when
/// `opts.keep` (the connection comes back for the next message).
///
/// Every recipient of `msg` gets exactly one result.
pub async fn run(
    start: Start,
    settings: &Settings,
    peer: &Peer,
    msg: &Message<'_>,
    attempt: &Attempt,
    opts: &Options<'_>,
) -> (SessionResult, Option<Connection>) {
    let (wire, features, cached) = match start {
        Start::Fresh(io) => (Wire::new(io), Features::default(), None),
        Start::Cached(c) => (c.wire, c.features, Some((c.reuse_count, c.born))),
    };
    let mut s = Session {
        wire,
        settings,
        peer,
        namaddr: peer.namaddr(),
        msg,
        attempt,
        opts,
        t: Tracker::new(
            msg.recipients.len(),
            attempt.final_server,
            settings.soft_bounce,
        ),
        features,
        broken: false,
        clean_end: false,
        tls_log: Vec::new(),
        retry_plaintext: false,
        handshake_done: None,
        hellos: 0,
    };
    let ready = if cached.is_some() {
        s.handshake_done = Some(Instant::now());
        s.check_smtputf8().await
    } else {
        s.helo().await
    };
    if ready.is_ok() {
        s.handshake_done.get_or_insert_with(Instant::now);
        s.xfer().await;
    }
    // Every recipient has an outcome by now (each failure path marks all unmarked
    // recipients); a hole would be a bug in this module, so fill it loudly as deferred.
    let hole = fake("4.3.0");
    let todo: Vec<usize> = s.t.unmarked().collect();
    if !todo.is_empty() {
        s.t.bulk_fail(None, &hole, "internal error: no result".into(), false);
    }
    let kept = (opts.keep && s.clean_end && !s.broken).then(|| {
        let (reuse_count, born) = cached.unwrap_or((0, Instant::now()));
        Connection {
            wire: s.wire,
            features: s.features.clone(),
            peer: peer.clone(),
            reuse_count,
            born,
        }
    });
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
    let result = SessionResult {
        relay: peer.relay(),
        recipients,
        throttle: s.t.throttle,
        features: s.features,
        tls_log: s.tls_log,
        retry_plaintext: s.retry_plaintext,
        handshake_done: s.handshake_done,
    };
    (result, kept)
}

/// The session is over; its failure is recorded.
pub(super) struct Stop;

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

pub(super) struct Session<'a> {
    pub(super) wire: Wire<Stream>,
    pub(super) settings: &'a Settings,
    pub(super) peer: &'a Peer,
    pub(super) namaddr: String,
    msg: &'a Message<'a>,
    attempt: &'a Attempt,
    pub(super) opts: &'a Options<'a>,
    pub(super) t: Tracker,
    pub(super) features: Features,
    /// The stream failed or the server said 421: the connection cannot be kept.
    pub(super) broken: bool,
    /// The transaction ended with every reply read (end of data, or RSET after an
    /// aborted transaction): the connection may be kept.
    clean_end: bool,
    /// TLS lines to log (info and warnings), in order.
    pub(super) tls_log: Vec<crate::tls::LogLine>,
    /// A `may` handshake failure left the recipients for a plaintext retry.
    pub(super) retry_plaintext: bool,
    /// When the handshake (greeting, EHLO, TLS, AUTH) ended.
    handshake_done: Option<Instant>,
    /// EHLO/HELO/LHLO exchanges so far: a second one is STARTTLS's, over TLS.
    pub(super) hellos: u32,
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
    /// A probe (`sendmail -bv`): each accepted recipient's RCPT reply.
    accepted: Vec<(usize, Reply)>,
    /// The connection broke while the content was being sent.
    lost_in_data: bool,
    /// The server did not answer RSET with 2xx.
    rset_rejected: bool,
}

impl Session<'_> {
    fn line_limit(&self) -> usize {
        self.settings.reply_line_limit
    }

    /// smtp_stream_except(): "lost connection with X while ..." / "conversation with X
    /// timed out while ...", 4.4.2, all remaining recipients, throttled.
    pub(super) fn stream_except(&mut self, err: WireError, doing: &str) {
        self.broken = true;
        let text = match err {
            WireError::Eof => format!("lost connection with {} while {doing}", self.namaddr),
            WireError::Timeout => {
                format!("conversation with {} timed out while {doing}", self.namaddr)
            }
        };
        self.t.bulk_fail(None, &fake("4.4.2"), text, true);
    }

    /// "host X refused to talk to me: REPLY", a site failure.
    pub(super) fn refused(&mut self, reply: &Reply) {
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
    pub(super) async fn chat(
        &mut self,
        cmd: &str,
        limit: Duration,
        doing: &str,
    ) -> Result<Reply, Stop> {
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
    pub(super) async fn quit(&mut self) {
        let limit = self.settings.quit_timeout;
        self.wire.queue(b"QUIT\r\n");
        if self.wire.flush(limit).await.is_ok() && !self.settings.skip_quit_response {
            let _ = self.wire.read_reply(self.line_limit(), limit).await;
        }
    }

    /// smtp_helo(): the greeting, EHLO/HELO/LHLO, the loop check and STARTTLS.
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
        let mut esmtp = command::greeting_says_esmtp(&greeting);
        if self.settings.always_send_ehlo {
            esmtp = true;
        }
        if self.settings.never_send_ehlo {
            esmtp = false;
        }
        self.hello(esmtp).await?;
        // Computed first: no borrow of the EHLO name lives across the awaits below.
        let own_name = self
            .features
            .helo
            .as_ref()
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.settings.myhostname));
        let looped = self
            .attempt
            .loop_check
            .as_ref()
            .filter(|_| own_name)
            .map(|check| {
                let dsn = if check.best_mx { "5.4.6" } else { "4.4.6" };
                (
                    dsn,
                    format!("mail for {} loops back to myself", check.nexthop),
                )
            });
        if let Some((dsn, text)) = looped {
            // smtp_helo(): the server replied to EHLO with our own name.
            self.t.bulk_fail(None, &fake(dsn), text, true);
            self.quit().await;
            return Err(Stop);
        }
        if let Some(tls) = self.opts.tls.as_ref() {
            self.starttls(tls).await?;
        }
        self.check_smtputf8().await?;
        match self.opts.sasl.as_ref() {
            // smtp_helo()'s last step: smtp_sasl_helo_login().
            Some(sasl) if sasl.client.enabled() => self.auth(sasl).await,
            // SMTP_FEATURE_AUTH is set only with smtp_sasl_auth_enable.
            _ => {
                self.features.auth = None;
                Ok(())
            }
        }
    }

    /// EHLO (falling back to HELO) or LHLO; sets the features. `esmtp`: try EHLO first
    /// (SMTP only).
    pub(super) async fn hello(&mut self, esmtp: bool) -> Result<(), Stop> {
        let limit = self.settings.helo_timeout;
        let name = self.settings.helo_name.clone();
        self.hellos += 1;
        let reply = match self.settings.protocol {
            Protocol::Smtp => {
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
                    return Ok(());
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
        Ok(())
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
            // Postfix ends this (uncached) session without QUIT; no transaction began,
            // so a cached one stays usable.
            self.clean_end = true;
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
        let mut mail = command::mail_from(&self.features, self.msg, downgrading);
        // "We authenticate the local MTA only, but not the sender" (smtp_proto.c): the
        // feature stays set only when this session authenticated.
        let dummy_auth = self
            .opts
            .sasl
            .as_ref()
            .is_some_and(|s| s.client.settings().send_dummy_mail_auth);
        if dummy_auth && self.features.auth.is_some() {
            mail.push_str(" AUTH=<>");
        }
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
        if self.msg.verify {
            // smtp_proto.c in address verification mode: the RCPT replies are the
            // answer; no DATA, the transaction is reset (and the session ended).
            self.catch_up(txn).await?;
            let host = self.peer.name.clone();
            for (i, reply) in std::mem::take(&mut txn.accepted) {
                if !self.t.is_marked(i) {
                    self.t.done(i, &host, &reply, DsnAction::Relayed, false);
                }
            }
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
        // A kept connection gets no QUIT (smtp_proto.c: "When connection caching is
        // enabled, the QUIT state is suppressed").
        let keep = self.opts.keep;
        if pipelining && !keep {
            self.send_quit(txn);
        }
        self.catch_up(txn).await?;
        if keep {
            self.clean_end = true;
        } else if !pipelining {
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
    /// A kept connection gets RSET alone, and stays usable when RSET is answered with
    /// 2xx (Postfix's ABORT->LAST and CANT_RSET_THIS_SESSION).
    async fn abort(&mut self, txn: &mut Txn) -> Result<(), Stop> {
        self.send(txn, "RSET", Cmd::Rset);
        if !self.features.pipelining || self.opts.keep {
            self.catch_up(txn).await?;
        }
        if self.opts.keep {
            self.clean_end = !txn.rset_rejected;
            return Ok(());
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
        self.broken = true;
        match cmd {
            Cmd::Rset | Cmd::Quit => {}
            Cmd::Dot if txn.lost_in_data => self.stream_except(err, "sending message body"),
            _ => self.stream_except(err, cmd.doing()),
        }
        Stop
    }

    fn on_reply(&mut self, txn: &mut Txn, cmd: Cmd, n: usize, reply: &Reply) {
        let host = self.peer.name.clone();
        // A server that says 421 is closing the connection (RFC 5321 3.8).
        if reply.code == 421 {
            self.broken = true;
        }
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
                    if self.msg.verify {
                        txn.accepted.push((i, reply.clone()));
                    }
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
            Cmd::Rset => txn.rset_rejected |= reply.class() != 2,
            Cmd::Quit => {}
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
        // A position, not an iterator with closures: the future stays Send for any
        // lifetime (rustc cannot prove that of closure-typed iterators held across an
        // await).
        let mut pos = 0;
        let mut piece = Vec::with_capacity(CONTENT_PIECE + 1024);
        let mut converted = Vec::new();
        // Bounded: each round consumes at least one line, or ends.
        loop {
            piece.clear();
            let mut more = true;
            while piece.len() < CONTENT_PIECE {
                let Some(line) = next_line(content, &mut pos) else {
                    more = false;
                    break;
                };
                match downgrader.as_mut() {
                    Some(d) => {
                        converted.clear();
                        d.line(line, &mut converted);
                        if pos >= content.len() {
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
                        self.broken = true;
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
/// The next LF-terminated line of `content` from `*pos`, without its LF.
fn next_line<'c>(content: &'c [u8], pos: &mut usize) -> Option<&'c [u8]> {
    let rest = content.get(*pos..).filter(|r| !r.is_empty())?;
    let (line, used) = match rest.iter().position(|&c| c == b'\n') {
        Some(p) => (&rest[..p], p + 1),
        None => (rest, rest.len()),
    };
    *pos += used;
    Some(line)
}

/// The session's future must be Send for the daemon's multi-threaded runtime.
#[allow(dead_code)]
fn assert_send(
    settings: &'static Settings,
    peer: &'static Peer,
    msg: &'static Message<'static>,
    attempt: &'static Attempt,
    opts: &'static Options<'static>,
) {
    fn is_send<T: Send>(_: T) {}
    let io = Box::new(tokio::io::duplex(1).0);
    is_send(run(Start::Fresh(io), settings, peer, msg, attempt, opts));
}
