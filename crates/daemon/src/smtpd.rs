//! smtpd: the socket driver of one client session. Bytes from the socket go into the
//! sans-IO `tern_smtp` line assembler and session; the session's steps are carried out
//! here: replies written, policy questions answered ([`crate::relay`]), message content
//! streamed into the queue file ([`crate::cleanup`]), and the `250 Ok: queued as ID` sent
//! only once the queue's group commit says the file and its directory entry are on disk.
//!
//! Replies are collected while complete commands are buffered and written when the
//! driver needs more input (RFC 2920 3.1: the server may batch replies to pipelined
//! commands), or before a delay.
//!
//! # Security
//! Everything read from the socket is untrusted. Lines are capped at line_length_limit
//! by the assembler, each read waits at most smtpd_timeout, message content is written
//! to disk as it arrives (never held whole in memory) and capped by message_size_limit,
//! and the session ends after smtpd_hard_error_limit errors. This code runs as
//! mail_owner (never root) when the daemon was started by root.
//!
//! TLS ([`tls`]): after `220 2.0.0 Ready to start TLS` any input the client sent behind
//! STARTTLS is discarded unread (the plaintext injection of CVE-2011-0411: it must not be
//! taken as commands sent under TLS), the handshake is bounded by smtpd_starttls_timeout,
//! and the session state is reset (RFC 3207 4.2). A failed handshake ends the session.
//! In wrapper mode the handshake comes before the greeting.

#[path = "smtpd_tls.rs"]
pub mod tls;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, PoisonError};

use nix::sys::socket::{MsgFlags, recv};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use tern_maillog::smtpd::{self as log, Client, CommandCounts, EndReason, Stage, Transaction};
use tern_maillog::{Ident, Logger};
use tern_queue::{Committer, IdForm, QueueLayout};
use tern_smtp::command::Verb;
use tern_smtp::data::{BdatReader, DataReader, DataStep, DataSummary};
use tern_smtp::line::Overlong;
use tern_smtp::params::extract_address;
use tern_smtp::session::{Decision, MessageOutcome, Send, Verdict};
use tern_smtp::{LineAssembler, Reply, Session, Step};

use crate::check::{Checker, State as CheckState};
use crate::cleanup::{AccessActions, ClientInfo, FinishError, Message};
use crate::settings::SmtpdSettings;

/// What every session shares.
pub struct Shared {
    pub logger: Arc<Logger>,
    pub committer: Arc<Committer>,
    pub layout: QueueLayout,
    pub id_form: IdForm,
    /// `syslog_name/cleanup`.
    pub cleanup_ident: Ident,
    /// The queue manager, told of each committed message (none in tests without one).
    pub qmgr: Option<crate::qmgr::QmgrHandle>,
}

/// The reply when the queue file cannot be written or committed (smtpd.c).
const WRITE_ERROR: &str = "451 4.3.0 Error: queue file write error";
/// The reply when the queue file system is short of space (smtpd(8): queue_minfree).
const NO_SPACE: &str = "452 4.3.1 Insufficient system storage";
/// The most bytes one read takes.
const READ_SIZE: usize = 16 * 1024;

thread_local! {
    /// The read buffer of each runtime thread: a session holds none while it waits (an
    /// idle session costs only its state), and a read does not zero a fresh buffer.
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_SIZE].into_boxed_slice());
}
/// A bound on the passes of the input loop between reads.
const MAX_PASSES: usize = 1_000_000;

/// Runs one session to its end.
pub async fn serve(stream: TcpStream, peer: SocketAddr, s: Arc<SmtpdSettings>, sh: Arc<Shared>) {
    // Replies are gathered and written once per batch of commands (RFC 2920), so Nagle's
    // algorithm only adds waits: after a TLS 1.3 handshake the session tickets and the
    // next reply are two small writes, and the second would wait for the client's delayed
    // ACK (~40 ms per connection; measured with bench/tls-bench.sh).
    let _ = stream.set_nodelay(true);
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer.ip(), std::net::IpAddr::V4),
        v4 @ std::net::IpAddr::V4(_) => v4,
    };
    // smtpd_peer.c: the client's name is found (and its warnings logged) before the
    // greeting; see crate::peername.
    let found = s.resolver.peer_name(ip, s.peername_lookup).await;
    for w in &found.warnings {
        let line = tern_maillog::Line::warning(w.clone());
        sh.logger.log(&Ident::new(&s.syslog_name, "smtpd"), &line);
    }
    let local = s.restrictions.is_local_header_client(ip);
    // cleanup's warnings of this settings load go to the mail log from now on.
    s.cleanup_log.attach(&sh.logger, &sh.cleanup_ident);
    // The driver borrows cleanup's settings from this Arc for the whole session.
    let settings = Arc::clone(&s);
    let mut chk = CheckState::new(ip, peer.port(), &found.name, &found.reverse_name);
    chk.name_status = u16::from(found.name_status.code());
    chk.reverse_name_status = u16::from(found.reverse_name_status.code());
    chk.service.clone_from(&s.service_name);
    let local_addr = stream.local_addr().ok();
    if let Some(local) = local_addr {
        chk.server_addr = local.ip().to_string();
        chk.server_port = local.port();
    }
    let mut d = Driver {
        chk,
        local_addr,
        access_denied: None,
        cleanup: &settings.cleanup,
        ident: Ident::new(&s.syslog_name, "smtpd"),
        session: Session::new(s.session.clone()),
        lines: LineAssembler::new(s.line_length_limit, s.session.bare_lf),
        data: None,
        chunk: None,
        bdat: None,
        msg: None,
        out: Vec::new(),
        closing: false,
        stage: Stage::Connect,
        client: ClientInfo {
            name: found.name,
            reverse_name: found.reverse_name,
            name_status: found.name_status,
            reverse_name_status: found.reverse_name_status,
            addr: ip.to_string(),
            ip,
            local,
            port: peer.port(),
            helo: None,
            protocol: "SMTP".to_owned(),
        },
        tls: None,
        tls_buf: Vec::new(),
        end: None,
        s,
        sh,
        stream: Conn::Plain(stream),
    };
    // smtpd_sasl_exceptions_networks: no AUTH in EHLO for these clients.
    if let Some(sasl) = &d.s.sasl {
        let hidden = sasl.hides_auth_from(&d.client.name, d.client.ip);
        d.session.set_auth_hidden(hidden);
    }
    // EHLO's AUTH line comes from the SASL back end (wrapper mode: after the handshake).
    if !d.s.tls.wrappermode {
        d.refresh_auth_mechanisms().await;
    }
    d.run().await;
}

struct Chunk {
    left: u64,
    keep: bool,
    then: Option<Send>,
}

struct Driver<'s> {
    /// What the access restrictions know and remember of this session.
    chk: CheckState,
    /// The address the client connected to (Dovecot's `lip=`).
    local_addr: Option<SocketAddr>,
    /// smtpd_delay_reject = no and the client restrictions refused the client: every
    /// command but QUIT gets `503 5.7.0 Error: access denied for NAME[ADDR]`.
    access_denied: Option<String>,
    cleanup: &'s tern_message::cleanup::Settings,
    ident: Ident,
    session: Session,
    lines: LineAssembler,
    data: Option<DataReader>,
    chunk: Option<Chunk>,
    bdat: Option<BdatReader>,
    msg: Option<Message<'s>>,
    out: Vec<u8>,
    closing: bool,
    stage: Stage,
    client: ClientInfo,
    s: Arc<SmtpdSettings>,
    sh: Arc<Shared>,
    stream: Conn,
    /// What the TLS handshake established, once TLS is on.
    tls: Option<tls::Established>,
    /// The read buffer under TLS (the plaintext path reads into READ_BUF).
    tls_buf: Vec<u8>,
    /// Why the session must end now (a failed TLS handshake).
    end: Option<EndReason>,
}

/// The client connection: plaintext, or TLS after STARTTLS or in wrapper mode.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Between the two, or after a failed handshake.
    Gone,
}

/// What one wait for input gave.
enum Input {
    Data,
    Nothing,
    Eof,
    Timeout,
}

impl Driver<'_> {
    fn log_client(&self) -> Client<'_> {
        Client {
            name: &self.client.name,
            addr: &self.client.addr,
        }
    }

    async fn run(&mut self) {
        self.sh
            .logger
            .log(&self.ident, &log::connect(self.log_client()));
        // smtpd.c: input that came before the greeting is a pipelining violation (an
        // early talker); with smtpd_forbid_unauth_pipelining it gets the 554 instead.
        // Checked once, as smtpd_proto() does, after the client's name and the
        // `connect from` line: a client that writes at once after connect is seen.
        self.s.tls.log_warnings(&self.sh.logger, &self.ident);
        if self.s.tls.wrappermode {
            // smtpd_proto(): in wrapper mode TLS comes first, before any SMTP.
            if self.s.tls.engine.is_none() {
                self.warn(&format!(
                    "Wrapper-mode request dropped from {}[{}] for service {}. TLS context initialization failed. For details see earlier warnings in your logs.",
                    self.client.name, self.client.addr, self.s.service_name
                ));
                let line = log::disconnect(self.log_client(), &counts(&self.session));
                self.sh.logger.log(&self.ident, &line);
                return;
            }
            if !self.start_tls().await {
                let stage = self.current_stage();
                if let Some(line) =
                    log::session_end(EndReason::LostConnection, stage, self.log_client())
                {
                    self.sh.logger.log(&self.ident, &line);
                }
                let line = log::disconnect(self.log_client(), &counts(&self.session));
                self.sh.logger.log(&self.ident, &line);
                return;
            }
        }
        // The early-talker check peeks at the socket: plaintext only.
        let early = match self.stream {
            Conn::Plain(_) => self.peek_early(),
            _ => Vec::new(),
        };
        let early = self.session.early_input(&early);
        self.log_pipelining();
        // anvil(8): the connection count and rate, after the early-talker check (smtpd.c);
        // the guard gives the connection back when the session ends.
        let mut anvil_guard = None;
        if let Some(send) = early {
            self.send(&send).await;
        } else if let Some(refused) = self.anvil_connect(&mut anvil_guard) {
            self.reply(&refused);
            self.closing = true;
        } else if let Some(denied) = self.connect_check().await {
            // smtpd_proto(): the client restrictions' reply instead of the greeting.
            self.reply(&reply_of(&denied));
            self.access_denied = Some(denied);
        } else {
            let greeting = self.session.greeting();
            self.reply(&greeting);
        }
        let end = loop {
            self.process().await;
            if let Some(reason) = self.end.take() {
                break Some(reason);
            }
            if self.flush().await.is_err() {
                break Some(EndReason::LostConnection);
            }
            if self.closing || self.session.is_closed() && self.chunk.is_none() {
                break None;
            }
            match self.wait_input().await {
                Input::Timeout => {
                    let text = format!(
                        "421 4.4.2 {} Error: timeout exceeded",
                        self.s.session.myhostname
                    );
                    if let Ok(r) = Reply::parse(&text) {
                        self.reply(&r);
                    }
                    let _ = self.flush().await;
                    break Some(EndReason::Timeout);
                }
                Input::Eof => break Some(EndReason::LostConnection),
                Input::Data | Input::Nothing => {}
            }
        };
        // Dropping an unfinished message removes its temporary file.
        self.msg = None;
        if let Some(reason) = end {
            let stage = self.current_stage();
            if let Some(line) = log::session_end(reason, stage, self.log_client()) {
                self.sh.logger.log(&self.ident, &line);
            }
        }
        let counts = counts(&self.session);
        let line = log::disconnect(self.log_client(), &counts);
        self.sh.logger.log(&self.ident, &line);
        // The stream is closed when the session ends (dropped): close sends the FIN, as
        // Postfix's smtpd does; a shutdown() first would only cost a system call.
    }

    /// Waits up to smtpd_timeout for input and takes what arrived.
    async fn wait_input(&mut self) -> Input {
        let limit = self.s.timeout;
        match &mut self.stream {
            Conn::Plain(stream) => {
                // Wait for input without holding a read buffer: an idle session then
                // costs only its state, not READ_SIZE bytes (thousands of idle sessions).
                match timeout(limit, stream.readable()).await {
                    Err(_) => Input::Timeout,
                    Ok(Err(_)) => Input::Eof,
                    Ok(Ok(())) => {
                        // The thread's buffer, used only across this non-async read.
                        let read = READ_BUF.with_borrow_mut(|buf| {
                            let n = self.read_drained(buf)?;
                            self.lines.push(&buf[..n]);
                            Ok::<_, std::io::Error>(n)
                        });
                        match read {
                            Ok(0) => Input::Eof,
                            Ok(_) => Input::Data,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Input::Nothing,
                            Err(_) => Input::Eof,
                        }
                    }
                }
            }
            Conn::Tls(tls) => {
                if self.tls_buf.len() != READ_SIZE {
                    self.tls_buf = vec![0u8; READ_SIZE];
                }
                match timeout(limit, tls.read(&mut self.tls_buf)).await {
                    Err(_) => Input::Timeout,
                    Ok(Ok(0) | Err(_)) => Input::Eof,
                    Ok(Ok(n)) => {
                        self.lines.push(&self.tls_buf[..n]);
                        Input::Data
                    }
                }
            }
            Conn::Gone => Input::Eof,
        }
    }

    /// The TLS handshake on the connection (after STARTTLS's 220, or first thing in
    /// wrapper mode); false when it failed (logged; the session must end).
    async fn start_tls(&mut self) -> bool {
        let Some(engine) = self.s.tls.engine.clone() else {
            return false;
        };
        let Conn::Plain(stream) = std::mem::replace(&mut self.stream, Conn::Gone) else {
            return false;
        };
        // RFC 3207 5 / CVE-2011-0411: nothing read before the handshake is a command.
        self.lines = LineAssembler::new(self.s.line_length_limit, self.s.session.bare_lf);
        let namaddr = format!("{}[{}]", self.client.name, self.client.addr);
        match engine.accept(stream, self.s.tls.timeout).await {
            Ok((tls, est)) => {
                if self.s.tls.loglevel.summary {
                    let line = tern_maillog::smtpd::tls_established(&est.summary(&namaddr));
                    self.sh.logger.log(&self.ident, &line);
                }
                self.stream = Conn::Tls(Box::new(tls));
                self.session.tls_started();
                self.chk.tls = true;
                self.chk.tls_ask_ccert = self.s.tls.ask_ccert;
                self.chk
                    .relay_clientcerts
                    .clone_from(&self.s.tls.relay_clientcerts);
                self.chk.ccert = est.peer.as_ref().map(|p| crate::check::CcertFacts {
                    cn: p.cn.clone(),
                    issuer_cn: p.issuer_cn.clone(),
                    cert_fprint: p.cert_fprint.clone(),
                    pkey_fprint: p.pkey_fprint.clone(),
                    trusted: p.trusted,
                });
                self.chk.helo = None;
                self.msg = None;
                self.chk.mail_reset();
                let reused = est.reused;
                self.tls = Some(est);
                // A new (not resumed) TLS session counts toward the client's rate.
                if !reused
                    && let Some(refused) = crate::anvil::after_new_tls(
                        &self.s.anvil,
                        &self.client.name,
                        self.client.ip,
                    )
                {
                    self.warn(&refused.warning);
                    self.reply(&reply_of(&refused.reply));
                    let _ = self.flush().await;
                    return false;
                }
                self.refresh_auth_mechanisms().await;
                true
            }
            Err(e) => {
                let line = tern_maillog::smtpd::tls_accept_error(&namaddr, e.accept_text());
                self.sh.logger.log(&self.ident, &line);
                if let tls::HandshakeError::Library(text) = &e {
                    self.warn(&format!("TLS library problem: {text}"));
                }
                false
            }
        }
    }

    /// What the client sent before the greeting, left in the socket: a real
    /// non-blocking peek (on a duplicate of the descriptor, which shares its
    /// O_NONBLOCK), as a freshly registered tokio socket does not know yet that it is
    /// readable.
    fn peek_early(&self) -> Vec<u8> {
        let Conn::Plain(stream) = &self.stream else {
            return Vec::new();
        };
        let mut buf = [0u8; tern_smtp::pipelining::SHOWN];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        recv(stream.as_raw_fd(), &mut buf, flags).map_or(Vec::new(), |n| buf[..n].to_vec())
    }

    /// Reads what the socket holds. A read that does not fill the buffer leaves the
    /// socket empty in all likelihood (the client waits for the reply to what it sent),
    /// so the socket's readiness is forgotten with it: the next wait goes to the reactor
    /// at once instead of first paying for a read that fails with EAGAIN (a system call
    /// per command). As tokio's own poll_read does: the read runs inside `try_io`, whose
    /// readiness snapshot is taken before the read, and tokio clears readiness only if no
    /// event came after that snapshot, so input that arrives after the read sets it again.
    fn read_drained(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Conn::Plain(stream) = &self.stream else {
            return Err(std::io::ErrorKind::WouldBlock.into());
        };
        let fd = stream.as_raw_fd();
        let mut got = None;
        let r = stream.try_io(Interest::READABLE, || {
            let n = recv(fd, buf, MsgFlags::MSG_DONTWAIT).map_err(std::io::Error::from)?;
            got = Some(n);
            if n > 0 && n < buf.len() {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match got {
            Some(n) => Ok(n),
            None => r,
        }
    }

    /// Takes what the socket already holds, without waiting (Postfix's peekfd()).
    fn read_ahead(&mut self) {
        match &mut self.stream {
            Conn::Plain(stream) => READ_BUF.with_borrow_mut(|buf| {
                if let Ok(n) = stream.try_read(buf) {
                    self.lines.push(&buf[..n]);
                }
            }),
            Conn::Tls(tls) => {
                // One poll with a waker that does nothing: what rustls already holds
                // or the socket has now, without waiting.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let mut buf = [0u8; 4096];
                let mut rb = tokio::io::ReadBuf::new(&mut buf);
                let pinned = std::pin::Pin::new(tls.as_mut());
                if let std::task::Poll::Ready(Ok(())) =
                    tokio::io::AsyncRead::poll_read(pinned, &mut cx, &mut rb)
                {
                    self.lines.push(rb.filled());
                }
            }
            Conn::Gone => {}
        }
    }

    /// `improper command pipelining after CMD from CLIENT: TEXT`, once per session.
    fn log_pipelining(&mut self) {
        let Some(p) = self.session.take_improper_pipelining() else {
            return;
        };
        // smtpd.c logs its `state->where`: CONNECT before the greeting.
        let after = p.after.map_or(Stage::Connect, Stage::Command);
        let line = log::improper_pipelining(after, self.log_client(), &p.escaped_input());
        self.sh.logger.log(&self.ident, &line);
    }

    fn current_stage(&self) -> Stage {
        if let Some(r) = &self.data {
            return Stage::DataContent(r.finish().size);
        }
        if self.chunk.is_some() {
            return Stage::BdatContent(self.bdat.as_ref().map_or(0, |b| b.summary().size));
        }
        self.stage
    }

    fn reply(&mut self, r: &Reply) {
        let footed = if self.s.reject_footer.is_set() && r.code() >= 400 {
            let facts = crate::reject_footer::FooterFacts {
                server_name: &self.s.cleanup.myhostname,
                client_name: &self.client.name,
                client_address: &self.client.addr,
                client_port: self.client.port,
                reverse_client_name: &self.client.reverse_name,
                helo_name: self.session.helo_name().unwrap_or(""),
                sender: self.chk.sender.as_deref().unwrap_or(""),
                recipient: self.chk.recipient.as_deref().unwrap_or(""),
            };
            self.s.reject_footer.apply(r, &facts)
        } else {
            None
        };
        self.out
            .extend_from_slice(footed.as_ref().unwrap_or(r).to_wire(true).as_bytes());
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        match &mut self.stream {
            Conn::Plain(stream) => stream.write_all(&out).await,
            Conn::Tls(tls) => {
                tls.write_all(&out).await?;
                tls.flush().await
            }
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Handles all complete input that is buffered.
    async fn process(&mut self) {
        for _ in 0..MAX_PASSES {
            if self.closing || (self.session.is_closed() && self.chunk.is_none()) {
                return;
            }
            if self.chunk.is_some() {
                if !self.chunk_bytes().await {
                    return;
                }
                continue;
            }
            let Some(line) = self.lines.next_line() else {
                return;
            };
            if let Some(reader) = &mut self.data {
                match reader.line(&line) {
                    DataStep::Store(text, kind) => {
                        if let Some(m) = &mut self.msg
                            && m.record(text, kind).is_err()
                        {
                            self.msg = None;
                        }
                    }
                    DataStep::Skip => {}
                    DataStep::End => {
                        let summary = reader.finish();
                        self.data = None;
                        self.lines.set_overlong(Overlong::Skip);
                        self.stage = Stage::EndOfMessage;
                        let outcome = self.finish_message(summary).await;
                        let step = self.session.message_done(summary, outcome);
                        self.step(step).await;
                    }
                }
                continue;
            }
            self.stage = Stage::Command(command_of(&line.text));
            if let Some(denied) = &self.access_denied
                && command_of(&line.text) != Verb::Quit
            {
                // smtpd_proto(): after the client restrictions refused the client (with
                // smtpd_delay_reject = no) only QUIT is served; a 421 is repeated.
                let text = if denied.starts_with("421") {
                    denied.clone()
                } else {
                    format!(
                        "503 5.7.0 Error: access denied for {}[{}]",
                        self.client.name, self.client.addr
                    )
                };
                let step = self.session.refuse(reply_of(&text));
                self.step(step).await;
                continue;
            }
            // RFC 2920: what the client sent behind this command (Postfix peeks at its
            // buffer, then at the socket).
            if self.lines.buffered().is_empty() && !self.session.improper_pipelining() {
                self.read_ahead();
            }
            let step = self.session.command_ahead(&line, self.lines.buffered());
            self.log_pipelining();
            self.step(step).await;
            if self.session.sender().is_none() && self.data.is_none() && self.chunk.is_none() {
                // RSET, HELO, or the end of a transaction: no message is open.
                self.msg = None;
                if self.chk.sender.is_some() {
                    self.chk.mail_reset();
                }
            }
        }
    }

    /// Moves buffered BDAT payload into the reader; false when more input is needed.
    async fn chunk_bytes(&mut self) -> bool {
        let Some(chunk) = &mut self.chunk else {
            return true;
        };
        let max = usize::try_from(chunk.left).unwrap_or(usize::MAX);
        let bytes = self.lines.take_raw(max);
        if bytes.is_empty() && chunk.left > 0 {
            return false;
        }
        chunk.left -= bytes.len() as u64;
        if let (true, Some(b)) = (chunk.keep, &mut self.bdat) {
            let mut failed = false;
            let msg = &mut self.msg;
            b.feed(&bytes, &mut |text, kind| {
                if let Some(m) = msg.as_mut() {
                    failed |= m.record(text, kind).is_err();
                }
            });
            if failed {
                self.msg = None;
            }
        }
        if chunk.left > 0 {
            return false;
        }
        let chunk = self.chunk.take();
        let step = if let Some(send) = chunk.and_then(|c| c.then) {
            Step::Send(send)
        } else {
            let Some(b) = &self.bdat else { return true };
            let summary = b.summary();
            let done = b.is_done();
            let outcome = if done {
                self.bdat = None;
                self.stage = Stage::EndOfMessage;
                Some(self.finish_message(summary).await)
            } else {
                None
            };
            self.session.chunk_done(summary, outcome)
        };
        self.step(step).await;
        true
    }

    async fn step(&mut self, mut step: Step) {
        for _ in 0..16 {
            match step {
                Step::Send(send) => {
                    self.send(&send).await;
                    return;
                }
                Step::Decide(decision) => {
                    let verdict = self.decide(decision).await;
                    step = self.session.decide(verdict);
                }
                Step::ReadData(send) => {
                    self.send(&send).await;
                    let cfg = self.session.config();
                    self.data = Some(DataReader::new(cfg.bare_lf, cfg.ehlo.message_size_limit));
                    self.lines.set_overlong(Overlong::Split);
                    self.start_message();
                    return;
                }
                Step::ReadChunk { size, last } => {
                    if self.bdat.is_none() {
                        self.start_message();
                    }
                    let cfg = self.session.config();
                    let limit = self.s.line_length_limit;
                    let reader = self.bdat.get_or_insert_with(|| {
                        BdatReader::new(cfg.bare_lf, limit, cfg.ehlo.message_size_limit)
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
                    self.msg = None;
                    self.chunk = Some(Chunk {
                        left: size,
                        keep: false,
                        then: Some(then),
                    });
                    return;
                }
                Step::StartTls(send) => {
                    // smtpd_client_new_tls_session_rate_limit: refused before the 220.
                    if let Some(refused) =
                        crate::anvil::before_tls(&self.s.anvil, &self.client.name, self.client.ip)
                    {
                        self.warn(&refused.warning);
                        step = self.session.refuse(reply_of(&refused.reply));
                        continue;
                    }
                    // starttls_cmd(): the 220, flushed before the switch; then the
                    // handshake, which ends the session when it fails.
                    self.send(&send).await;
                    if self.flush().await.is_err() {
                        self.end = Some(EndReason::LostConnection);
                        return;
                    }
                    if !self.start_tls().await {
                        self.end = Some(EndReason::LostConnection);
                        self.closing = true;
                    }
                    return;
                }
                Step::Closed => return,
            }
        }
    }

    async fn send(&mut self, send: &Send) {
        if send.delay {
            // smtpd_soft_error_limit: Postfix sleeps before it answers.
            let _ = self.flush().await;
            sleep(self.s.error_sleep).await;
        }
        for r in &send.replies {
            self.reply(r);
        }
        if send.close {
            if self.session.error_count() >= self.s.session.hard_error_limit {
                let stage = self.stage;
                if let Some(line) =
                    log::session_end(EndReason::TooManyErrors, stage, self.log_client())
                {
                    self.sh.logger.log(&self.ident, &line);
                }
            }
            self.closing = true;
        }
    }

    /// Brings the restrictions' view of the session up to date.
    fn sync_check_state(&mut self, stage: Stage) {
        let c = &mut self.chk;
        c.stage = stage;
        c.helo = self.session.helo_name().map(str::to_owned);
        self.session.protocol().clone_into(&mut c.protocol);
        c.ill_pipelining = self.session.improper_pipelining();
        c.queue_id = self.msg.as_ref().map(|m| m.id().to_owned());
        c.rcpt_count = self.session.recipient_count();
    }

    fn checker(&mut self) -> Checker<'_> {
        Checker {
            r: &self.s.restrictions,
            st: &mut self.chk,
            logger: &self.sh.logger,
            ident: &self.ident,
        }
    }

    /// smtpd_delay_reject = no: the client restrictions at connect.
    async fn connect_check(&mut self) -> Option<String> {
        let setup = self.s.restrictions.setup();
        if setup.delay_reject || setup.lists.client.is_empty() {
            return None;
        }
        self.sync_check_state(Stage::Connect);
        self.checker().client().await
    }

    async fn decide(&mut self, decision: Decision) -> Verdict {
        // anvil(8): the message and recipient rates (smtpd.c mail_cmd(), rcpt_cmd(),
        // vrfy_cmd()).
        if let Some(reply) = self.anvil_rate(&decision) {
            return Verdict::Reject(reply);
        }
        match decision {
            Decision::Helo { name, .. } => {
                let verb = self.stage_verb(Verb::Helo);
                self.sync_check_state(Stage::Command(verb));
                match self.checker().helo(Some(name)).await {
                    Some(e) => Verdict::Reject(reply_of(&e)),
                    None => Verdict::Accept,
                }
            }
            Decision::Rcpt(rcpt) => {
                let utf8 = self.chk.smtputf8;
                if !self.address_ok(&rcpt.address, utf8) {
                    return Verdict::Reject(reply_of("501 5.1.3 Bad recipient address syntax"));
                }
                self.sync_check_state(Stage::Command(Verb::Rcpt));
                if let Some(e) = self.checker().rcpt(&rcpt.address).await {
                    return Verdict::Reject(reply_of(&e));
                }
                if self.msg.is_none() {
                    let rewriter = Some(Arc::clone(&self.s.rewriter));
                    match Message::create_with(
                        &self.sh.layout,
                        self.sh.id_form,
                        self.cleanup,
                        rewriter,
                    ) {
                        Ok(mut m) => {
                            m.set_actions(&AccessActions::with_content_filter(
                                &self.s.content_filter,
                            ));
                            if let Some(c) = &self.s.content_checks {
                                m.set_content_checks(Arc::clone(c));
                            }
                            let sasl = log::Sasl {
                                method: self.chk.sasl_method.as_deref(),
                                username: self.chk.sasl_username.as_deref(),
                                sender: self.chk.sasl_sender.as_deref(),
                            };
                            let line = log::client(m.id(), self.log_client(), sasl);
                            self.sh.logger.log(&self.ident, &line);
                            self.msg = Some(m);
                        }
                        Err(e) => {
                            self.sh.logger.log(
                                &self.ident,
                                &tern_maillog::Line::warning(format!("queue file: {e}")),
                            );
                            return Verdict::Reject(reply_of(WRITE_ERROR));
                        }
                    }
                }
                if let Some(m) = &mut self.msg {
                    m.add_recipient(&rcpt);
                }
                // smtpd.c rcpt_cmd(): the first accepted recipient is the one the log
                // names at DATA and end-of-data.
                if self.chk.recipient.is_none() {
                    self.chk.recipient = Some(rcpt.address.clone());
                }
                Verdict::Accept
            }
            Decision::Mail(mail) => {
                if let Some(free) = self.queue_space_short() {
                    // Postfix logs the reject (no sender yet) and then the warning.
                    let reply = reply_of(NO_SPACE);
                    let tx = Transaction {
                        queue_id: None,
                        sender: None,
                        recipient: None,
                        protocol: Some(self.session.protocol()),
                        helo: self.session.helo_name(),
                    };
                    let line = log::reject(
                        Stage::Command(tern_maillog::smtpd::Command::Mail),
                        self.log_client(),
                        &reply.to_string(),
                        tx,
                    );
                    self.sh.logger.log(&self.ident, &line);
                    self.warn(&format!(
                        "not enough free space in mail queue: {free} bytes < 1.5*message size limit"
                    ));
                    return Verdict::Reject(reply);
                }
                if !self.address_ok(&mail.address, mail.smtputf8) {
                    return Verdict::Reject(reply_of("501 5.1.7 Bad sender address syntax"));
                }
                self.sync_check_state(Stage::Command(Verb::Mail));
                self.chk.mail_reset();
                self.chk.sasl_sender = mail
                    .auth
                    .as_deref()
                    .filter(|a| *a != "<>")
                    .map(crate::sasl::dovecot::printable);
                self.chk.smtputf8 = mail.smtputf8;
                self.chk.message_size = mail.size.unwrap_or(0);
                if !self.s.restrictions.setup().delay_reject
                    && let Some(e) = self.checker().mail(Some(mail.address.clone())).await
                {
                    // smtpd.c mail_cmd(): "XXX Reset access map side effects."
                    self.chk.mail_reset();
                    return Verdict::Reject(reply_of(&e));
                }
                self.chk.sender = Some(mail.address);
                Verdict::Accept
            }
            // smtpd.c vrfy_cmd(): the recipient restrictions on the unquoted address.
            Decision::Vrfy { address, .. } => {
                let internal = extract_address(&address, false, false).unwrap_or(address);
                self.sync_check_state(Stage::Command(Verb::Vrfy));
                match self.checker().rcpt(&internal).await {
                    Some(e) => Verdict::Reject(reply_of(&e)),
                    None => Verdict::Accept,
                }
            }
            Decision::Etrn(domain) => {
                self.sync_check_state(Stage::Command(Verb::Etrn));
                if let Some(e) = self.checker().etrn(&domain).await {
                    return Verdict::Reject(reply_of(&e));
                }
                self.etrn(&domain)
            }
            Decision::Data => {
                if self.msg.is_none() {
                    return Verdict::Reject(reply_of(WRITE_ERROR));
                }
                let verb = self.stage_verb(Verb::Data);
                self.sync_check_state(Stage::Command(verb));
                match self.checker().data().await {
                    Some(e) => Verdict::Reject(reply_of(&e)),
                    None => Verdict::Accept,
                }
            }
            Decision::Auth { mechanism, initial } => self.authenticate(&mechanism, initial).await,
        }
    }

    /// smtpd_check_addr(): the address as trivial-rewrite sees it (a resolver error, or a
    /// non-ASCII domain without SMTPUTF8, is bad syntax).
    fn address_ok(&self, address: &str, smtputf8: bool) -> bool {
        self.s
            .restrictions
            .resolver()
            .check_addr(address, smtputf8)
            .unwrap_or(false)
    }

    /// The SASL mechanisms EHLO offers, from the back end (again after STARTTLS, with
    /// smtpd_sasl_tls_security_options); none when it offers nothing or cannot be asked.
    async fn refresh_auth_mechanisms(&mut self) {
        let Some(sasl) = self.s.sasl.clone() else {
            return;
        };
        let offered = match sasl.mechanisms(self.chk.tls).await {
            Ok(m) if !m.trim().is_empty() => Some(m),
            Ok(_) => {
                self.sh.logger.log(
                    &self.ident,
                    &tern_maillog::sasl::backend_warning(crate::sasl::NO_MECHANISMS),
                );
                None
            }
            Err(warning) => {
                self.warn(&warning);
                None
            }
        };
        self.session.set_auth_mechanisms(offered);
    }

    /// AUTH (RFC 4954; smtpd_sasl_proto.c): the exchange with the SASL back end, reading
    /// the client's responses here; Accept when authenticated.
    async fn authenticate(&mut self, mechanism: &str, initial: Option<String>) -> Verdict {
        let Some(sasl) = self.s.sasl.clone() else {
            return Verdict::Reject(reply_of(crate::sasl::NOT_ENABLED));
        };
        // smtpd_client_auth_rate_limit (smtpd.c auth_cmd()).
        if let Some(refused) =
            crate::anvil::on_auth(&self.s.anvil, &self.client.name, self.client.ip)
        {
            self.warn(&refused.warning);
            return Verdict::Reject(reply_of(&refused.reply));
        }
        let client = crate::sasl::SaslClient {
            addr: self.client.ip,
            name: self.client.name.clone(),
            local_addr: self.local_addr,
            tls: self.chk.tls,
        };
        let method = mechanism.to_ascii_uppercase();
        let mut exchange = match sasl.start(mechanism, &client) {
            Ok(x) => x,
            Err(refusal) => {
                let line = tern_maillog::sasl::authentication_failed(
                    self.log_client(),
                    &method,
                    &refusal.reason,
                    None,
                );
                self.sh.logger.log(&self.ident, &line);
                return Verdict::Reject(reply_of(&refusal.reply));
            }
        };
        let mut response = initial;
        for _ in 0..crate::sasl::MAX_STEPS {
            match exchange.step(response.as_deref()).await {
                crate::sasl::SaslStep::Challenge(text) => {
                    let out = format!("334 {text}\r\n");
                    self.out.extend_from_slice(out.as_bytes());
                    // smtpd_sasl_glue.c: the response is read with
                    // smtpd_sasl_response_limit, not line_length_limit; a longer one
                    // (its rest skipped) ends the exchange with 500 5.5.6.
                    let normal = self.lines.limit();
                    self.lines.set_limit(sasl.settings().response_limit);
                    let line = self.read_response().await;
                    self.lines.set_limit(normal);
                    let Some(line) = line else {
                        return Verdict::Reject(reply_of(crate::sasl::ABORTED));
                    };
                    if line.end == tern_smtp::line::LineEnd::Cut {
                        return Verdict::Reject(reply_of(crate::sasl::RESPONSE_LIMIT_EXCEEDED));
                    }
                    response = Some(String::from_utf8_lossy(&line.text).into_owned());
                }
                crate::sasl::SaslStep::Success { username } => {
                    self.chk.sasl_username = Some(username);
                    self.chk.sasl_method = Some(method);
                    return Verdict::Accept;
                }
                crate::sasl::SaslStep::Failure {
                    reply,
                    reason,
                    username,
                } => {
                    let line = tern_maillog::sasl::authentication_failed(
                        self.log_client(),
                        &method,
                        &reason,
                        username.as_deref(),
                    );
                    self.sh.logger.log(&self.ident, &line);
                    return Verdict::Reject(reply_of(&reply));
                }
                crate::sasl::SaslStep::Aborted => {
                    let line =
                        tern_maillog::sasl::authentication_aborted(self.log_client(), &method);
                    self.sh.logger.log(&self.ident, &line);
                    return Verdict::Reject(reply_of(crate::sasl::ABORTED));
                }
            }
        }
        Verdict::Reject(reply_of(crate::sasl::ABORTED))
    }

    /// One line of the client during AUTH (the pending `334` written first); None when
    /// the client went away or timed out (the session then ends).
    async fn read_response(&mut self) -> Option<tern_smtp::line::Line> {
        for _ in 0..MAX_PASSES {
            if let Some(line) = self.lines.next_line() {
                return Some(line);
            }
            if self.flush().await.is_err() {
                self.end = Some(EndReason::LostConnection);
                return None;
            }
            match self.wait_input().await {
                Input::Timeout => {
                    let text = format!(
                        "421 4.4.2 {} Error: timeout exceeded",
                        self.s.session.myhostname
                    );
                    self.reply(&reply_of(&text));
                    let _ = self.flush().await;
                    self.end = Some(EndReason::Timeout);
                    return None;
                }
                Input::Eof => {
                    self.end = Some(EndReason::LostConnection);
                    return None;
                }
                Input::Data | Input::Nothing => {}
            }
        }
        None
    }

    /// The command being decided, as the log names it (HELO or EHLO, DATA or BDAT).
    fn stage_verb(&self, default: Verb) -> Verb {
        match self.stage {
            Stage::Command(v) if v != Verb::Unknown => v,
            _ => default,
        }
    }

    /// ETRN once the restrictions let it through: fast_flush_domains and the flush service.
    fn etrn(&mut self, domain: &str) -> Verdict {
        let answer = self.s.restrictions.fast_flush().answer(domain);
        let client = format!("{}[{}]", self.client.name, self.client.addr);
        let service = self
            .sh
            .qmgr
            .as_ref()
            .and_then(|q| q.flush_service().cloned());
        if let (crate::etrn::Answer::Unavailable, Some(flush)) = (&answer, service) {
            // smtpd.c etrn_cmd(): flush_send_site() and its status. A few file
            // moves: done in place, this worker thread lent to it.
            let status = tokio::task::block_in_place(|| flush.send_site(domain));
            match status {
                crate::flush::FLUSH_STAT_OK => return Verdict::Accept,
                crate::flush::FLUSH_STAT_BAD => {
                    let cut: String = domain.chars().take(100).collect();
                    self.warn(&format!("bad ETRN {cut}... request from {client}"));
                    return Verdict::Reject(reply_of("458 Unable to queue messages"));
                }
                crate::flush::FLUSH_STAT_DENY => {
                    let (reply, warning) =
                        crate::etrn::Answer::Deny.reply_and_warning(domain, &client);
                    self.warn(&warning);
                    return Verdict::Reject(reply_of(&reply));
                }
                _ => {}
            }
        }
        let (reply, warning) = answer.reply_and_warning(domain, &client);
        self.warn(&warning);
        Verdict::Reject(reply_of(&reply))
    }

    /// smtpd_end_of_data_restrictions, at the end of the content.
    async fn eod_check(&mut self) -> Option<Reply> {
        if self.s.restrictions.setup().lists.eod.is_empty() {
            return None;
        }
        self.sync_check_state(Stage::EndOfMessage);
        self.checker().eod().await.map(|e| reply_of(&e))
    }

    /// Writes the envelope and Received: header when the content starts.
    fn start_message(&mut self) {
        let Some(sender) = self.session.sender().cloned() else {
            return;
        };
        self.client.helo = self.session.helo_name().map(str::to_owned);

        self.client.protocol = if sender.smtputf8 && self.session.protocol() == "ESMTP" {
            "UTF8SMTP".to_owned()
        } else {
            self.session.protocol().to_owned()
        };
        // The access actions so far go to cleanup before the content (smtpd.c sends
        // REC_TYPE_FLGS before REC_TYPE_MESG): PREPEND headers go above Received:, and
        // a DISCARDed message is not even looked at.
        if let Some(m) = &mut self.msg {
            m.set_actions(&AccessActions::from(&self.chk.saved));
            let clause = self
                .tls
                .as_ref()
                .filter(|_| self.s.tls.received_header)
                .map(|t| t.received_clause(self.s.tls.ask_ccert));
            m.set_tls(self.tls.is_some(), clause);
            let header = self
                .s
                .sasl
                .as_ref()
                .is_some_and(|x| x.settings().authenticated_header);
            m.set_sasl(self.chk.sasl_username.clone(), header);
        }
        if let Some(m) = &mut self.msg
            && m.start(
                &sender,
                &self.client,
                &self.s.mail_name,
                &self.s.remote_header_rewrite_domain,
            )
            .is_err()
        {
            self.msg = None;
        }
    }

    /// The end of the content: smtpd_end_of_data_restrictions (when the content arrived
    /// whole), then cleanup and the queue commit.
    async fn finish_message(&mut self, summary: DataSummary) -> MessageOutcome {
        // The policy service's `size` at END-OF-MESSAGE is the size received.
        self.chk.message_size = summary.size;
        if summary.error.is_none()
            && self.msg.is_some()
            && let Some(reply) = self.eod_check().await
        {
            // The queue file is dropped (removed) unfinished.
            self.msg = None;
            return MessageOutcome::Rejected(reply);
        }
        self.commit(summary).await
    }

    /// cleanup and the queue commit at the end of the content.
    async fn commit(&mut self, summary: DataSummary) -> MessageOutcome {
        let msg = self.msg.take();
        if summary.error.is_some() {
            // The session answers with the reader's error; the file is dropped.
            return MessageOutcome::Rejected(reply_of(WRITE_ERROR));
        }
        let Some(mut msg) = msg else {
            return MessageOutcome::Rejected(reply_of(WRITE_ERROR));
        };
        // smtpd.c sends cleanup the access actions again at the end of the message,
        // with what smtpd_end_of_data_restrictions added.
        msg.set_actions(&AccessActions::from(&self.chk.saved));
        let id = msg.id().to_owned();
        let (pending, logs) = match msg.finish() {
            Ok(done) => done,
            Err(FinishError::Io(e)) => {
                self.warn(&format!("{id}: queue file write error: {e}"));
                return MessageOutcome::Rejected(reply_of(WRITE_ERROR));
            }
            Err(FinishError::Cleanup(e)) => {
                // cleanup_message.c: `warning: QUEUEID: message rejected: hopcount exceeded`.
                let line = tern_maillog::Line::warning(format!("{id}: {e}"));
                self.sh.logger.log(&self.sh.cleanup_ident, &line);
                let (code, dsn, text) = e.reply();
                return MessageOutcome::Rejected(reply_of(&format!("{code} {dsn} {text}")));
            }
            Err(FinishError::Checks { reply, logs }) => {
                // cleanup logged `QUEUEID: reject: header ...` (or its lookup warning).
                for event in logs {
                    let line = crate::content_checks::log_line(&id, event);
                    self.sh.logger.log(&self.sh.cleanup_ident, &line);
                }
                return MessageOutcome::Rejected(reply_of(&reply));
            }
            Err(FinishError::Rewrite(fault)) => {
                // cleanup logged its warning (`QUEUEID: unreasonable virtual_alias_maps
                // map expansion size for ...`); smtpd.c logs nothing more.
                return MessageOutcome::Rejected(reply_of(FinishError::rewrite_reply(&fault)));
            }
        };
        for event in logs {
            let line = crate::content_checks::log_line(&id, event);
            self.sh.logger.log(&self.sh.cleanup_ident, &line);
        }
        let Some(pending) = pending else {
            // DISCARD (smtpd_check.c logged `discard: ...` when it decided): cleanup
            // reports success and queues nothing, and smtpd.c answers as for any
            // queued message: `250 2.0.0 Ok: queued as ID`.
            return MessageOutcome::Queued { queue_id: id };
        };
        // A message on HOLD goes into hold/, where the queue manager does not look.
        let held = pending.queue() == tern_queue::QueueName::Hold;
        let committer = Arc::clone(&self.sh.committer);
        let result = if committer.journals(&pending) {
            // The journal path: the last write of the file goes to the page cache from
            // this task (as the mail log's writes do) and the commit thread completes
            // the future; no blocking thread is woken per message.
            let (tx, rx) = tokio::sync::oneshot::channel();
            committer.submit(
                pending,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            rx.await.map_err(|e| e.to_string())
        } else {
            // A large file is fdatasynced on its own: not on a runtime thread.
            tokio::task::spawn_blocking(move || committer.commit(pending))
                .await
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(Ok(qid)) => {
                if let Some(q) = self.sh.qmgr.as_ref().filter(|_| !held) {
                    q.new_mail(&qid);
                }
                MessageOutcome::Queued {
                    queue_id: qid.as_str().to_owned(),
                }
            }
            Ok(Err(e)) => {
                self.warn(&format!("{id}: commit: {e}"));
                MessageOutcome::Rejected(reply_of(WRITE_ERROR))
            }
            Err(e) => {
                self.warn(&format!("{id}: commit task: {e}"));
                MessageOutcome::Rejected(reply_of(WRITE_ERROR))
            }
        }
    }

    /// The queue space check at MAIL (smtpd(8), queue_minfree): refuse when the space
    /// free to unprivileged users on the queue file system is at most queue_minfree, or
    /// less than 1.5 times message_size_limit, so that a message that is accepted can be
    /// written; Postfix answers a full disk this way before any write fails. Returns the
    /// free bytes when short. A failing statvfs lets the transaction go on (the write
    /// error path still answers 451 4.3.0).
    ///
    /// The file system is asked at most once per [`SPACE_RECHECK`] while it has plenty of
    /// room (four times what the check needs, and [`SPACE_PLENTY`]): a statvfs per MAIL
    /// is a system call per message, and in that time no SMTP traffic fills the
    /// difference (1 GiB in 100 ms is 80 Gbit/s). Otherwise it is asked every time. (Were it filled anyway, the write error answers 451 4.3.0:
    /// never a 250 for a message not on disk.)
    fn queue_space_short(&self) -> Option<u64> {
        let root = self.sh.layout.root();
        let mut last = LAST_SPACE.lock().unwrap_or_else(PoisonError::into_inner);
        let (free_bytes, checked) = match last.as_ref() {
            Some(l) if l.dir == root && l.at.elapsed() < SPACE_RECHECK && l.plenty => {
                (l.free_bytes, false)
            }
            _ => {
                let st = nix::sys::statvfs::statvfs(root).ok()?;
                let bsize = st.fragment_size().max(1);
                (st.blocks_available().saturating_mul(bsize), true)
            }
        };
        let need = self
            .s
            .queue_minfree
            .max(self.s.session.ehlo.message_size_limit.saturating_mul(3) / 2);
        // free <= queue_minfree, or free <= 1.5 x message_size_limit (smtpd_check.c).
        let short = free_bytes <= need;
        if checked {
            *last = Some(SpaceCheck {
                dir: root.to_owned(),
                at: std::time::Instant::now(),
                free_bytes,
                plenty: free_bytes / 4 > need && free_bytes > SPACE_PLENTY,
            });
        }
        short.then_some(free_bytes)
    }

    /// anvil(8) before the greeting: the 421 when the client is over a connection limit.
    fn anvil_connect(&mut self, guard: &mut Option<crate::anvil::ConnGuard>) -> Option<Reply> {
        let limits = &self.s.anvil;
        crate::anvil::start_statistics(&self.sh.logger, &self.s.syslog_name, limits.status_update);
        let (g, refused) = crate::anvil::on_connect(limits, &self.client.name, self.client.ip);
        *guard = Some(g);
        let refused = refused?;
        self.warn(&refused.warning);
        Some(reply_of(&refused.reply))
    }

    /// anvil(8) at MAIL, RCPT and VRFY: the 450 when the client is over a rate limit.
    fn anvil_rate(&self, decision: &Decision) -> Option<Reply> {
        let (limits, name) = (&self.s.anvil, self.client.name.as_str());
        let refused = match decision {
            Decision::Mail(_) => crate::anvil::on_mail(limits, name, self.client.ip)?,
            // vrfy_cmd() counts VRFY as a recipient, with RCPT's reply.
            Decision::Rcpt(_) | Decision::Vrfy { .. } => {
                crate::anvil::on_rcpt(limits, name, self.client.ip)?
            }
            _ => return None,
        };
        self.warn(&refused.warning);
        Some(reply_of(&refused.reply))
    }

    fn warn(&self, text: &str) {
        self.sh
            .logger
            .log(&self.ident, &tern_maillog::Line::warning(text.to_owned()));
    }
}

/// How long a statvfs of the queue file system stays good while it shows plenty of room.
const SPACE_RECHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Free space above which a look at the queue file system is reused for a while.
const SPACE_PLENTY: u64 = 1 << 30;

/// The last look at the queue file system's free space (one daemon, one queue).
struct SpaceCheck {
    dir: std::path::PathBuf,
    at: std::time::Instant,
    free_bytes: u64,
    plenty: bool,
}

static LAST_SPACE: std::sync::Mutex<Option<SpaceCheck>> = std::sync::Mutex::new(None);

/// A reply from a literal that is known to parse.
fn reply_of(text: &str) -> Reply {
    // Only called with literals (this module's and cleanup's), which are well formed;
    // the fallback keeps a bad literal from panicking on the network path.
    Reply::parse(text).unwrap_or_else(|_| {
        Reply::new(451, None, ["Error: internal"]).unwrap_or_else(|_| unreachable!())
    })
}

/// The command word of a line, as the log names the stage.
fn command_of(text: &[u8]) -> Verb {
    let end = text
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(text.len());
    Verb::from_word(&text[..end])
}

/// The session's counters for the `disconnect from` line.
fn counts(session: &Session) -> CommandCounts {
    let mut c = CommandCounts::default();
    for verb in Verb::ALL {
        let (ok, total) = session.stats().get(verb);
        for i in 0..total {
            c.record(verb, i < ok);
        }
    }
    c
}
