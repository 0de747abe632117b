//! cleanup's part of a message received by smtpd: the queue file from its first accepted
//! recipient to its durable commit.
//!
//! As in Postfix, the queue file (and so the queue id) exists from the first accepted
//! RCPT on (smtpd logs `QUEUEID: client=...` then); the envelope is written when the
//! content starts, smtpd's `Received:` header first (smtpd.c puts it before the client's
//! content, [`tern_message::trace::smtpd_received`]), then the content as records, each
//! line ending in LF (the queue's internal form, which postcat and the delivery agents
//! read).
//!
//! The header section goes through cleanup's header library
//! ([`tern_message::split::HeaderSplitter`] and [`tern_message::cleanup::HeaderCleanup`]):
//! the hop count (hopcount_limit: `554 5.4.0 Error: too many hops`), message_drop_headers,
//! header_size_limit, and the Message-Id:, Date: and From: cleanup adds for clients in
//! local_header_rewrite_clients (cleanup(8): "Add ... Message-Id: ... headers when not
//! present"); the `message-id=` values cleanup logs come from it too. The body is written
//! as it arrives, never held in memory.
//!
//! Address rewriting ([`tern_rewrite::CleanupRewriter`], when the message is created with
//! one: [`Message::create_with`]) happens as in cleanup_addr.c and cleanup_message.c:
//! the envelope sender and each recipient are rewritten (trivial-rewrite in the local
//! context, canonical maps, masquerading), each recipient is expanded through
//! virtual_alias_maps into one Recipient record per address (duplicates dropped with
//! Postfix's key), and the addresses of sender and recipient headers are rewritten in the
//! header context (local clients; remote ones only with remote_header_rewrite_domain).
//! A recipient without a DSN ORCPT gets `rfc822;ADDRESS` with the address as the client
//! sent it, as Postfix's smtpd does. Every Recipient record carries its original
//! recipient (Postfix's REC_TYPE_ORCP, [`Recipient::original`]): the RCPT TO address as
//! the client gave it, shared by all the addresses an alias expands to. The Received:
//! header's `for <addr>` names the recipient as the client sent it.
//!
//! The actions of smtpd's access restrictions ([`AccessActions`], smtpd_check.c's
//! check_table_result(): HOLD, DISCARD, FILTER, REDIRECT, BCC, PREPEND) come through
//! [`Message::set_actions`] and are carried out as cleanup does with the records smtpd
//! sends it (cleanup_api.c, cleanup_extracted.c): PREPEND headers go above the
//! Received: header; a DISCARDed message is read to its end and dropped (no queue file,
//! no `message-id=` log line, every error forgiven: smtpd still answers `250 2.0.0 Ok:
//! queued as ID`); a HOLD message is committed into hold/ instead of incoming/; FILTER
//! and REDIRECT become named attributes after the content ([`tern_queue::ATTR_FILTER`],
//! [`tern_queue::ATTR_REDIRECT`]) that the queue manager acts on; each BCC address is a
//! recipient after the content, rewritten as any recipient.
//!
//! A lookup problem or an expansion limit refuses the message at its end, as cleanup
//! reports its status only then ([`FinishError::Rewrite`], answered as smtpd.c does);
//! the warning has gone to the mail log under the cleanup ident ([`CleanupLog`]).
//!
//! # Security
//! The content comes from the network. It is written as records of bounded size (the
//! line assembler caps each line at line_length_limit); a header field is held in memory
//! up to header_size_limit only. Nothing here panics on any input.

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tern_maillog::{Ident, Line, Logger};
use tern_message::cleanup::{
    AddressRole, CleanupError, Envelope as HeaderEnvelope, HeaderCheck, HeaderCleanup, Hooks,
    LogEvent, RewriteContext, Settings, rewrite_context,
};
use tern_message::header::HeaderField;

use crate::content_checks::{Act, ContentChecks, LogContext, MessageChecks};
use tern_message::split::{FirstLine, HeaderSplitter, HeadersEnd, Step, smtpd_first_line};
use tern_message::trace::{self, ClientAddr, Protocol, ReceivedBy, SmtpdSession};
use tern_queue::{
    Envelope, Error as QueueError, IdForm, MessageFlags, Notify, PendingFile, QueueLayout,
    QueueName, QueueWriter, Recipient, Timestamp,
};
use tern_rewrite::canonical::Fault;
use tern_rewrite::{CleanupRewriter, Context, HeaderRole};
use tern_smtp::data::RecordKind;
use tern_smtp::params::{Body, MailFrom, RcptTo};

/// The most content bytes kept before a write to the queue file.
const FLUSH_AT: usize = 64 * 1024;

/// Who sent the message, for the Received: header and the envelope.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The verified hostname or `unknown` ([`crate::peername`]).
    pub name: String,
    /// The PTR name, verified or not, or `unknown`.
    pub reverse_name: String,
    /// Postfix's name_status and reverse_name_status (for reject_unknown_*_hostname).
    pub name_status: crate::peername::NameStatus,
    pub reverse_name_status: crate::peername::NameStatus,
    pub addr: String,
    pub ip: IpAddr,
    pub port: u16,
    pub helo: Option<String>,
    /// `SMTP`, `ESMTP`, `UTF8SMTP`.
    pub protocol: String,
    /// The client is in local_header_rewrite_clients.
    pub local: bool,
}

/// What the access restrictions decided for this message (smtpd_check.c
/// check_table_result()). smtpd keeps one per mail transaction and hands it to
/// [`Message::set_actions`]; pickup may hand one too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessActions {
    /// HOLD: the message goes into hold/ (released by `postsuper -H`).
    pub hold: bool,
    /// DISCARD: answered as queued, then dropped.
    pub discard: bool,
    /// FILTER `transport:nexthop`: every recipient goes there (the last one wins).
    pub filter: Option<String>,
    /// REDIRECT `user@domain`: the one recipient in place of all (the last one wins).
    pub redirect: Option<String>,
    /// BCC `user@domain`: extra recipients.
    pub bcc: Vec<String>,
    /// PREPEND `header: text`: header lines above smtpd's Received: header.
    pub prepend: Vec<String>,
}

impl From<&crate::check::Saved> for AccessActions {
    /// What the restriction engine remembered for the transaction (smtpd's saved_*).
    fn from(s: &crate::check::Saved) -> Self {
        Self {
            hold: s.hold,
            discard: s.discard,
            filter: s.filter.clone(),
            redirect: s.redirect.clone(),
            bcc: s.bcc.clone(),
            prepend: s.prepend.clone(),
        }
    }
}

impl AccessActions {
    /// The actions a mail transaction starts with under main.cf's (or a master.cf
    /// `-o`) content_filter: smtpd.c, pickup.c and qmqpd.c send it to cleanup before
    /// anything else, so a FILTER action of the access tables, which comes later,
    /// replaces it (qmgr takes the last filter record). Empty: no filter.
    pub fn with_content_filter(content_filter: &str) -> Self {
        Self {
            filter: (!content_filter.is_empty()).then(|| content_filter.to_owned()),
            ..Self::default()
        }
    }
}

/// Why the message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// cleanup refused the content (the reply is [`CleanupError::reply`]).
    #[error("{0}")]
    Cleanup(CleanupError),
    /// cleanup's address rewriting refused the message (its warning is logged already);
    /// the reply is [`FinishError::rewrite_reply`].
    #[error("{0}")]
    Rewrite(Fault),
    /// header_checks or body_checks refused the message (REJECT, or a table that could
    /// not be read): smtpd logs `logs` and answers `reply`.
    #[error("{reply}")]
    Checks { reply: String, logs: Vec<LogEvent> },
}

impl FinishError {
    /// smtpd.c's reply to cleanup's status for a rewriting fault: a table lookup problem
    /// is CLEANUP_STAT_WRITE (`451 4.3.0 Error: queue file write error`, the
    /// cleanup_stat_map entry); an alias expansion limit is CLEANUP_STAT_DEFER with the
    /// reason `4.6.0 Alias expansion error`, which smtpd puts after the code as it is.
    pub fn rewrite_reply(fault: &Fault) -> &'static str {
        match fault {
            Fault::Lookup => "451 4.3.0 Error: queue file write error",
            Fault::Expansion => "451 4.6.0 Alias expansion error",
        }
    }
}

/// Where cleanup's warnings go: the mail log under `syslog_name/cleanup` once a session
/// has attached it, standard error before (table problems found while the settings are
/// loaded, as Postfix's cleanup would write them before it logs anywhere). One per
/// settings load, shared by its rewriters.
#[derive(Debug, Default)]
pub struct CleanupLog(OnceLock<(Arc<Logger>, Ident)>);

impl CleanupLog {
    /// Sends later warnings to `logger` as `ident`; the first call wins.
    pub fn attach(&self, logger: &Arc<Logger>, ident: &Ident) {
        if self.0.get().is_none() {
            let _ = self.0.set((Arc::clone(logger), ident.clone()));
        }
    }

    /// Postfix's msg_warn(): `warning: TEXT`.
    pub fn warn(&self, text: &str) {
        match self.0.get() {
            Some((logger, ident)) => logger.log(ident, &Line::warning(text.to_owned())),
            None => eprintln!("warning: {text}"),
        }
    }
}

/// One message being received.
pub struct Message<'s> {
    pending: Option<PendingFile>,
    writer: Option<QueueWriter<PendingFile>>,
    id: String,
    /// The recipients as the client gave them (RCPT TO order).
    recipients: Vec<Recipient>,
    buf: Vec<u8>,
    settings: &'s Settings,
    rewriter: Option<Arc<CleanupRewriter>>,
    /// Why address rewriting refused the message.
    fault: Option<Fault>,
    splitter: HeaderSplitter,
    headers: Option<HeaderCleanup<'s, RewriteHooks>>,
    error: Option<CleanupError>,
    /// smtpd's first-line handling still applies (receive_data_message in smtpd.c).
    first_line: bool,
    /// The last body record did not end its line.
    in_line: bool,
    queue_time: i64,
    arrival: Timestamp,
    /// The access actions so far ([`Message::set_actions`]).
    actions: AccessActions,
    /// The session is under TLS (`ESMTPS`), and smtpd_tls_received_header's lines
    /// ([`Message::set_tls`]).
    tls: bool,
    tls_clause: Option<String>,
    /// The SASL login of the session (`ESMTPA`), and whether Received: names it
    /// (smtpd_sasl_authenticated_header) ([`Message::set_sasl`]).
    sasl_username: Option<String>,
    sasl_header: bool,
    /// start() has run: PREPEND is no longer taken.
    started: bool,
    /// For a message on HOLD: where hold/ is.
    layout: QueueLayout,
    /// header_checks and body_checks ([`Message::set_content_checks`]).
    content_checks: Option<Arc<ContentChecks>>,
}

impl<'s> Message<'s> {
    /// Creates the queue file in `incoming/` (its id is fixed now); no address rewriting.
    pub fn create(
        layout: &QueueLayout,
        form: IdForm,
        settings: &'s Settings,
    ) -> Result<Self, QueueError> {
        Self::create_with(layout, form, settings, None)
    }

    /// Creates the queue file in `incoming/`, with cleanup's address rewriting.
    pub fn create_with(
        layout: &QueueLayout,
        form: IdForm,
        settings: &'s Settings,
        rewriter: Option<Arc<CleanupRewriter>>,
    ) -> Result<Self, QueueError> {
        let pending = PendingFile::create(layout, QueueName::Incoming, form)?;
        Ok(Self {
            id: pending.id().as_str().to_owned(),
            pending: Some(pending),
            writer: None,
            recipients: Vec::new(),
            buf: Vec::new(),
            settings,
            rewriter,
            fault: None,
            splitter: HeaderSplitter::new(settings.header_size_limit),
            headers: None,
            error: None,
            first_line: true,
            in_line: false,
            queue_time: unix_now(),
            arrival: Timestamp::now(),
            actions: AccessActions::default(),
            tls: false,
            tls_clause: None,
            sasl_username: None,
            sasl_header: false,
            started: false,
            layout: layout.clone(),
            content_checks: None,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn add_recipient(&mut self, rcpt: &RcptTo) {
        let mut r = Recipient::new(rcpt.address.clone());
        // cleanup_envelope.c: the original recipient is the address smtpd sent, before
        // any rewriting (smtpd sends no REC_TYPE_ORCP of its own).
        r.original.clone_from(&rcpt.address);
        r.orcpt = rcpt
            .orcpt
            .as_ref()
            .map(|o| format!("{};{}", o.addr_type, o.address));
        if let Some(n) = rcpt.notify {
            let mut bits = 0;
            for (on, bit) in [
                (n.never, Notify::NEVER),
                (n.success, Notify::SUCCESS),
                (n.failure, Notify::FAILURE),
                (n.delay, Notify::DELAY),
            ] {
                if on {
                    bits |= bit;
                }
            }
            r.notify = Notify(bits);
        }
        self.recipients.push(r);
    }

    /// Takes the access actions decided so far for this message: before [`Self::start`]
    /// (the PREPEND headers go above Received:) and again before [`Self::finish`],
    /// with what smtpd_end_of_data_restrictions added (PREPEND is no longer taken
    /// then, as smtpd_check.c refuses it at that stage). `actions` may be the whole
    /// set so far or only the new ones: flags are kept once set, a later FILTER or
    /// REDIRECT replaces an earlier one (smtpd.c keeps the last), and BCC addresses and
    /// PREPEND lines already taken are not taken twice.
    /// TLS facts for the Received: header: whether the session is under TLS (`ESMTPS`),
    /// and smtpd_tls_received_header's `(using TLSv1.3 with cipher ...)` lines, each
    /// starting with a TAB, which smtpd.c writes after the `Received: from` line.
    pub fn set_tls(&mut self, tls: bool, clause: Option<String>) {
        self.tls = tls;
        self.tls_clause = clause;
    }

    /// The SASL login for the Received: header: `with ESMTPA` (RFC 3848) and, with
    /// smtpd_sasl_authenticated_header, `(Authenticated sender: USER)` before `by`.
    pub fn set_sasl(&mut self, username: Option<String>, header: bool) {
        self.sasl_username = username;
        self.sasl_header = header;
    }

    /// header_checks and body_checks for this message (before [`Self::start`]).
    pub fn set_content_checks(&mut self, checks: Arc<ContentChecks>) {
        self.content_checks = Some(checks);
    }

    pub fn set_actions(&mut self, actions: &AccessActions) {
        let a = &mut self.actions;
        a.hold |= actions.hold;
        a.discard |= actions.discard;
        if actions.filter.is_some() {
            a.filter.clone_from(&actions.filter);
        }
        if actions.redirect.is_some() {
            a.redirect.clone_from(&actions.redirect);
        }
        for b in &actions.bcc {
            if !a.bcc.contains(b) {
                a.bcc.push(b.clone());
            }
        }
        if !self.started {
            // The whole list so far, or only new lines.
            let new = actions
                .prepend
                .strip_prefix(a.prepend.as_slice())
                .unwrap_or(&actions.prepend);
            a.prepend.extend_from_slice(new);
        }
    }

    /// The access actions taken so far.
    pub fn actions(&self) -> &AccessActions {
        &self.actions
    }

    /// Writes the envelope and the Received: header; content follows.
    pub fn start(
        &mut self,
        sender: &MailFrom,
        client: &ClientInfo,
        mail_name: &str,
        remote_header_rewrite_domain: &str,
    ) -> io::Result<()> {
        let Some(pending) = self.pending.take() else {
            return Err(io::Error::other("queue file already started"));
        };
        self.started = true;
        if self.actions.discard {
            // cleanup_api.c: CLEANUP_OUT_OK() is false from now on; the content is read
            // and dropped, and no header is looked at (no `message-id=` line).
            drop(pending);
            return Ok(());
        }
        let mut flags = 0;
        if sender.smtputf8 {
            flags |= MessageFlags::SMTPUTF8;
        }
        if sender.body == Some(Body::EightBitMime) {
            flags |= MessageFlags::BODY_8BITMIME;
        }
        let mut attrs = vec![
            ("client_name".to_owned(), client.name.clone()),
            ("client_address".to_owned(), client.addr.clone()),
            ("client_port".to_owned(), client.port.to_string()),
        ];
        if let Some(h) = &client.helo {
            attrs.push(("helo_name".to_owned(), h.clone()));
        }
        attrs.push(("protocol_name".to_owned(), client.protocol.clone()));
        let (envelope_sender, recipients) = match self.rewrite_envelope(&sender.address) {
            Ok(done) => done,
            Err(fault) => {
                self.fault = Some(fault);
                (sender.address.clone(), self.recipients.clone())
            }
        };
        let env = Envelope {
            arrival: self.arrival,
            sender: envelope_sender.clone(),
            recipients,
            client: attrs,
            dsn_envid: sender.envid.clone(),
            dsn_ret: sender.ret.map(|r| match r {
                tern_smtp::params::Ret::Full => tern_queue::DsnRet::Full,
                tern_smtp::params::Ret::Hdrs => tern_queue::DsnRet::Hdrs,
            }),
            flags: MessageFlags(flags),
        };
        self.writer = Some(QueueWriter::new(pending, &env)?);
        let now = local_timestamp(unix_now());
        let session = SmtpdSession {
            helo: client.helo.as_deref(),
            client_name: &client.name,
            client_addr: ClientAddr::Ip(client.ip),
            protocol: if client.protocol == "SMTP" {
                Protocol::Smtp
            } else {
                Protocol::Esmtp
            },
            tls: self.tls,
            authenticated: self.sasl_username.is_some(),
            smtputf8: client.protocol.starts_with("UTF8"),
        };
        let by = ReceivedBy {
            myhostname: &self.settings.myhostname,
            mail_name,
            queue_id: Some(&self.id),
            single_recipient: (self.recipients.len() == 1)
                .then(|| self.recipients[0].address.as_str()),
            arrival: &now,
        };
        let mut received = trace::smtpd_received(&session, &by);
        // smtpd.c: the TLS lines, then the SASL comment, between `from` and `by`.
        let mut between = String::new();
        if let Some(clause) = &self.tls_clause {
            between.push('\n');
            between.push_str(clause);
        }
        if let (true, Some(user)) = (self.sasl_header, &self.sasl_username) {
            between.push_str("\n\t");
            between.push_str(&crate::sasl::authenticated_sender_comment(user));
        }
        if !between.is_empty()
            && let Some(at) = received.find('\n')
        {
            received.insert_str(at, &between);
        }
        let mut headers = HeaderCleanup::new(
            self.settings,
            HeaderEnvelope {
                sender: envelope_sender,
                full_name: None,
                queue_id: self.id.clone(),
                queue_time: self.queue_time,
                arrival: local_timestamp(self.queue_time),
                rewrite_context: rewrite_context(client.local, remote_header_rewrite_domain),
            },
            RewriteHooks {
                rewriter: self.rewriter.clone(),
                queue_id: self.id.clone(),
                fault: None,
                checks: self.content_checks.clone().map(|c| {
                    MessageChecks::new(
                        c,
                        LogContext {
                            queue_id: self.id.clone(),
                            origin: format!("{}[{}]", client.name, client.addr),
                            sender: Some(sender.address.clone()),
                            recipient: self.recipients.last().map(|r| r.address.clone()),
                            protocol: Some(client.protocol.clone()),
                            helo: client.helo.clone(),
                        },
                    )
                }),
            },
        );
        // smtpd.c: the PREPEND headers, then smtpd's own Received:, all as content that
        // cleanup takes as headers.
        let prepend = std::mem::take(&mut self.actions.prepend);
        for line in prepend
            .iter()
            .map(String::as_bytes)
            .chain([received.as_bytes()])
        {
            match HeaderField::parse(line).map(|f| headers.header(f)) {
                Some(Ok(Some(text))) => self.put_line(&text),
                Some(Ok(None)) | None => {}
                Some(Err(e)) => self.error = Some(e),
            }
        }
        self.actions.prepend = prepend;
        self.headers = Some(headers);
        Ok(())
    }

    /// One content record from the DATA or BDAT reader.
    pub fn record(&mut self, text: &[u8], kind: RecordKind) -> io::Result<()> {
        if self.error.is_some() || self.actions.discard {
            // cleanup has refused the message; the rest is read and dropped.
            return Ok(());
        }
        let complete = kind == RecordKind::Norm;
        if self.first_line && !self.splitter.in_body() {
            match smtpd_first_line(text) {
                FirstLine::MailboxLine(h) => {
                    self.split(&h, true);
                    return self.maybe_flush();
                }
                FirstLine::InsertBlank => self.split(b"", true),
                FirstLine::AsIs => {}
            }
            self.first_line = false;
        }
        self.split(text, complete);
        self.maybe_flush()
    }

    /// Ends the content; returns the file ready for the commit (in hold/ for a message
    /// on HOLD: [`PendingFile::queue`]) and cleanup's log events (`message-id=...`).
    /// A DISCARDed message has no file (`None`) and no error: cleanup_api.c reports
    /// success for it whatever happened, and removes its queue file.
    pub fn finish(mut self) -> Result<(Option<PendingFile>, Vec<LogEvent>), FinishError> {
        if self.error.is_none() && !self.actions.discard {
            let step = self.splitter.finish();
            self.apply(step);
            // A MIME part header still being read when the content ended.
            let rest = self
                .headers
                .as_mut()
                .and_then(|h| h.hooks_mut().checks.as_mut().map(MessageChecks::finish))
                .unwrap_or_default();
            for (piece, complete) in rest {
                self.body_piece(&piece, complete);
            }
        }
        let decided = self
            .headers
            .as_mut()
            .and_then(|h| h.hooks_mut().checks.take())
            .map(|c| c.decided);
        let logs = self
            .headers
            .as_mut()
            .map(HeaderCleanup::take_logs)
            .unwrap_or_default();
        if let Some(d) = decided {
            if d.lookup_error {
                return Err(FinishError::Checks {
                    reply: "451 4.3.0 Error: queue file write error".to_owned(),
                    logs,
                });
            }
            if let Some(reason) = d.reject {
                // smtpd.c: CLEANUP_STAT_DEFER (a 4.x.x reason) is 451, CONT 550.
                let code = if reason.starts_with('4') { 451 } else { 550 };
                return Err(FinishError::Checks {
                    reply: format!("{code} {reason}"),
                    logs,
                });
            }
            let a = &mut self.actions;
            a.hold |= d.hold;
            a.discard |= d.discard;
            if d.filter.is_some() {
                a.filter = d.filter;
            }
            if d.redirect.is_some() {
                a.redirect = d.redirect;
            }
            for b in d.bcc {
                if !a.bcc.contains(&b) {
                    a.bcc.push(b);
                }
            }
        }
        if self.actions.discard {
            // The file (if start() made one) is removed by its drop: never committed.
            return Ok((None, logs));
        }
        if let Some(e) = self.error.take() {
            return Err(FinishError::Cleanup(e));
        }
        let fault = self
            .fault
            .take()
            .or_else(|| self.headers.as_mut().and_then(|h| h.hooks().fault.clone()));
        if let Some(fault) = fault {
            return Err(FinishError::Rewrite(fault));
        }
        if self.in_line {
            self.buf.push(b'\n');
        }
        self.flush()?;
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| io::Error::other("queue file not started"))?;
        // cleanup_extracted.c: REC_TYPE_FILT and REC_TYPE_RDR, then the BCC recipients,
        // after the content.
        if let Some(f) = &self.actions.filter {
            writer.attribute(tern_queue::ATTR_FILTER, f)?;
        }
        if let Some(r) = &self.actions.redirect {
            writer.attribute(tern_queue::ATTR_REDIRECT, r)?;
        }
        for r in self.bcc_recipients().map_err(FinishError::Rewrite)? {
            writer.extracted_recipient(&r)?;
        }
        let mut pending = writer.finish()?;
        if self.actions.hold {
            // cleanup_api.c: renamed into hold/ before it is finished, so that the
            // queue manager never sees it.
            pending.set_queue(&self.layout, QueueName::Hold);
        }
        Ok((Some(pending), logs))
    }

    /// The BCC recipients as cleanup writes them: each address rewritten and expanded
    /// as a recipient of RCPT TO (cleanup_addr_recipient()), its ORCPT `rfc822;ADDRESS`
    /// and its original recipient the address itself (as Debian's Postfix 3.7 writes
    /// them, seen with postcat). NOTIFY: smtpd.c sends each BCC's NOTIFY=NEVER record
    /// after its recipient record, and cleanup applies a NOTIFY record to the recipient
    /// that follows it; so the first BCC address has no NOTIFY of its own and each later
    /// one gets NEVER (Postfix 3.7.11, postcat: no notify record for a single BCC).
    fn bcc_recipients(&self) -> Result<Vec<Recipient>, Fault> {
        let mut out = Vec::new();
        let id = &self.id;
        let mut dedup = self.rewriter.as_ref().map(|rw| rw.dedup());
        // cleanup_extracted.c: always_bcc first, when the message has a recipient.
        if let (Some(rw), Some(d)) = (&self.rewriter, dedup.as_mut())
            && let Some(bcc) = rw.always_bcc()
            && !self.recipients.is_empty()
        {
            out.extend(auto_bcc(rw, d, bcc, id)?);
        }
        for (i, given) in self.actions.bcc.iter().enumerate() {
            let notify = if i == 0 { 0 } else { Notify::NEVER };
            let orcpt = format!("rfc822;{given}");
            let expanded = match &self.rewriter {
                Some(rw) => rw.expand(&rw.recipient(given, id)?, id)?,
                None => vec![given.clone()],
            };
            for address in expanded {
                if dedup
                    .as_mut()
                    .is_none_or(|d| d.first(&orcpt, notify, given, &address))
                {
                    let mut r = Recipient::new(address);
                    r.orcpt = Some(orcpt.clone());
                    r.notify = Notify(notify);
                    r.original.clone_from(given);
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// cleanup_addr_sender() and cleanup_addr_recipient() + cleanup_out_recipient():
    /// the envelope sender and the recipient records as they go into the queue file.
    fn rewrite_envelope(&self, sender: &str) -> Result<(String, Vec<Recipient>), Fault> {
        let Some(rw) = &self.rewriter else {
            return Ok((sender.to_owned(), self.recipients.clone()));
        };
        let id = &self.id;
        let sender = rw.sender(sender, id)?;
        let mut dedup = rw.dedup();
        let mut out = Vec::new();
        // cleanup_addr_sender(): sender_bcc_maps, right after the sender.
        if let Some(bcc) = rw.sender_bcc(&sender, id)? {
            out.extend(auto_bcc(rw, &mut dedup, &bcc, id)?);
        }
        for given in &self.recipients {
            let clean = rw.recipient(&given.address, id)?;
            // smtpd(8) sends an ORCPT of its own when the client gave none: the address
            // as the client sent it (seen live in postcat's dsn_orig_rcpt).
            let orcpt = given.orcpt.clone().or_else(|| {
                (!given.address.is_empty()).then(|| format!("rfc822;{}", given.address))
            });
            let expanded = rw.expand(&clean, id)?;
            let mut notify = given.notify.0;
            // cleanup_out_recipient.c: NOTIFY=SUCCESS is answered with an "expanded" DSN
            // for an alias and not passed on to the addresses it expands to.
            // XXX: the "expanded" success notice itself is not sent yet.
            if rw.has_virtual_alias_maps()
                && notify & Notify::SUCCESS != 0
                && (expanded.len() > 1 || expanded[0] != clean)
            {
                notify = if notify == Notify::SUCCESS {
                    Notify::NEVER
                } else {
                    notify & !Notify::SUCCESS
                };
            }
            let dsn_orcpt = orcpt.clone().unwrap_or_default();
            for address in expanded {
                if dedup.first(&dsn_orcpt, notify, &given.address, &address) {
                    let mut r = Recipient::new(address);
                    r.orcpt.clone_from(&orcpt);
                    r.notify = Notify(notify);
                    // cleanup_out_recipient.c writes the alias's original before each
                    // address it expands to.
                    r.original.clone_from(&given.address);
                    out.push(r);
                }
            }
            // cleanup_addr_recipient(): recipient_bcc_maps, after the recipient.
            if let Some(bcc) = rw.recipient_bcc(&clean, id)? {
                out.extend(auto_bcc(rw, &mut dedup, &bcc, id)?);
            }
        }
        Ok((sender, out))
    }

    fn split(&mut self, text: &[u8], complete: bool) {
        let step = self.splitter.push(text, complete);
        self.apply(step);
    }

    fn apply(&mut self, step: Step<'_>) {
        let Some(headers) = self.headers.as_mut() else {
            return;
        };
        if let Some(field) = step.header {
            match headers.header(field) {
                Ok(Some(text)) => self.put_line(&text),
                Ok(None) => {}
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
        if let Some(end) = step.end {
            let Some(headers) = self.headers.as_mut() else {
                return;
            };
            match headers.end_of_headers() {
                Ok(added) => {
                    for h in added {
                        self.put_line(&h);
                    }
                }
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
            if end == HeadersEnd::InsertedSeparator {
                // RFC 5322 2.1: cleanup puts the empty line the client left out.
                self.buf.push(b'\n');
            }
        }
        if let Some((text, complete)) = step.body {
            let checked = self.headers.as_mut().and_then(|h| {
                let c = h.hooks_mut().checks.as_mut()?;
                let out = c.body_record(text, complete);
                let logs = c.take_logs();
                for l in logs {
                    h.push_log(LogEvent::Line(l));
                }
                out
            });
            match checked {
                None => self.body_piece(text, complete),
                Some(out) => {
                    for (piece, complete) in out {
                        self.body_piece(&piece, complete);
                    }
                }
            }
        }
    }

    /// One body record into the file.
    fn body_piece(&mut self, text: &[u8], complete: bool) {
        self.buf.extend_from_slice(text);
        if complete {
            self.buf.push(b'\n');
        }
        self.in_line = !complete;
    }

    fn put_line(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
        self.buf.push(b'\n');
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(w) = &mut self.writer {
            w.content(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// cleanup_addr_bcc(): an automatic BCC recipient (always_bcc, sender_bcc_maps,
/// recipient_bcc_maps) rewritten as a recipient in the local context and expanded, its
/// original recipient itself, no DSN ORCPT or NOTIFY of its own. Also used by
/// [`crate::submit`] for pickup's mail.
pub(crate) fn auto_bcc(
    rw: &CleanupRewriter,
    dedup: &mut tern_rewrite::virtual_alias::Dedup,
    bcc: &str,
    id: &str,
) -> Result<Vec<Recipient>, Fault> {
    let clean = rw.recipient(bcc, id)?;
    let mut out = Vec::new();
    for address in rw.expand(&clean, id)? {
        if dedup.first("", 0, &clean, &address) {
            let mut r = Recipient::new(address);
            r.original.clone_from(&clean);
            out.push(r);
        }
    }
    Ok(out)
}

/// cleanup's header address rewriting, plugged into the header library (also used by
/// internal submission, [`crate::submit`]).
#[derive(Debug)]
pub(crate) struct RewriteHooks {
    pub(crate) rewriter: Option<Arc<CleanupRewriter>>,
    pub(crate) queue_id: String,
    /// The first lookup problem; the message is refused at its end.
    pub(crate) fault: Option<Fault>,
    /// header_checks and body_checks of this message.
    pub(crate) checks: Option<MessageChecks>,
}

impl Hooks for RewriteHooks {
    fn header_check(&mut self, field: &HeaderField) -> HeaderCheck {
        let Some(c) = self.checks.as_mut() else {
            return HeaderCheck::Keep;
        };
        match c.header(&String::from_utf8_lossy(field.as_bytes())) {
            Act::Keep => HeaderCheck::Keep,
            Act::Drop => HeaderCheck::Drop,
            Act::Replace(t) => {
                HeaderField::parse(t.as_bytes()).map_or(HeaderCheck::Keep, HeaderCheck::Replace)
            }
            Act::Prepend(t) => {
                HeaderField::parse(t.as_bytes()).map_or(HeaderCheck::Keep, HeaderCheck::Prepend)
            }
        }
    }

    fn take_log_lines(&mut self) -> Vec<String> {
        self.checks
            .as_mut()
            .map(MessageChecks::take_logs)
            .unwrap_or_default()
    }

    fn rewrite_address(
        &mut self,
        role: AddressRole,
        context: RewriteContext,
        address: &[u8],
    ) -> Option<Vec<u8>> {
        let rw = self.rewriter.as_ref()?;
        // An address that is not UTF-8 is left as it came.
        let address = std::str::from_utf8(address).ok()?;
        let role = match role {
            AddressRole::Sender => HeaderRole::Sender,
            AddressRole::Recipient => HeaderRole::Recipient,
        };
        let context = match context {
            RewriteContext::Local => Context::Local,
            RewriteContext::Remote => Context::Remote,
        };
        match rw.header_address(role, context, address, &self.queue_id) {
            Ok(new) => new.map(String::into_bytes),
            Err(fault) => {
                self.fault.get_or_insert(fault);
                None
            }
        }
    }
}

/// A time with this host's zone, for the Received: and Date: headers (and the dates of
/// the notices and forwarded mail that submit.rs makes).
pub(crate) fn local_timestamp(unix: i64) -> trace::Timestamp {
    let offset = tern_maillog::writer::local_utc_offset(unix);
    let minutes = offset / 60;
    // XXX: the zone abbreviation (strftime's %Z) needs the tz database's names; a host
    // off UTC gets its numeric offset in the parentheses instead.
    let zone = if offset == 0 {
        "UTC".to_owned()
    } else {
        format!(
            "{}{:02}{:02}",
            if minutes < 0 { '-' } else { '+' },
            minutes.unsigned_abs() / 60,
            minutes.unsigned_abs() % 60
        )
    };
    trace::Timestamp {
        unix,
        utc_offset_minutes: minutes,
        zone,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

#[cfg(test)]
#[path = "cleanup_actions_tests.rs"]
mod actions_tests;
