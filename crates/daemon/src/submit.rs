//! Internal submission: a new message the mail system makes itself (a bounce or delay
//! notice, a message forwarded by local(8)) written to incoming/ and committed durably,
//! as Postfix's bounce(8) and local(8) hand such mail to cleanup(8) through post_mail(3)
//! and forward.c.
//!
//! The flow: [`Submitter::create`] makes the queue file (its id is fixed at once: a
//! notice names it in its Received: and Message-Id: headers), then [`Draft::finish`]
//! writes the envelope, passes the content through cleanup's header work and commits the
//! file through the daemon's [`Committer`]. The caller then tells the queue manager of the
//! new id. Nothing is logged or handed on before the commit returned, so a crash before
//! it leaves at most a temporary file that start-up recovery removes.
//!
//! What cleanup(8) does with internally generated mail (CLEANUP_FLAG_MASK_INTERNAL) and is
//! done here:
//! - the envelope sender and each recipient are canonicalised in the local context
//!   (trivial-rewrite's append_at_myorigin: `postmaster` becomes `postmaster@$myorigin`),
//!   and, when a [`CleanupRewriter`] is given, through canonical and virtual alias maps
//!   (one recipient may become several, duplicates dropped);
//! - the primary headers go through [`HeaderCleanup`] in the local rewrite context (no
//!   client attributes: cleanup treats the mail as local): hop count, message_drop_headers,
//!   header_size_limit, and the missing Message-Id:, Date: and From: it adds;
//! - `NEWID: message-id=<...>` is logged under `syslog_name/cleanup`, as Postfix's
//!   cleanup logs it for every bounce and forwarded message.
//!
//! Not done (Postfix does): header and body checks do not apply to internal mail in
//! Postfix either (int_filt_classes is empty by default); canonical rewriting of header
//! addresses of internal mail.
//!
//! # Security
//! The content may be a stranger's message (a forwarded message, or the original inside a
//! bounce). It is read one line at a time; a header field is held only up to
//! header_size_limit ([`HeaderSplitter`]), the body is written as it is read in pieces of
//! at most [`FLUSH_AT`] bytes. Nothing here panics on any input. This runs as mail_owner.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tern_maillog::{Ident, Logger};

use crate::cleanup::RewriteHooks;
use crate::content_checks::MessageChecks;
use tern_message::cleanup::{
    CleanupError, Envelope as HeaderEnvelope, HeaderCleanup, RewriteContext, Settings,
};
use tern_message::split::{HeaderSplitter, HeadersEnd, Step};
use tern_message::trace;
use tern_queue::file::Segment;
use tern_queue::{
    Committer, DsnRet, Envelope, IdForm, MessageFlags, Notify, PendingFile, QueueId, QueueLayout,
    QueueName, QueueWriter, Recipient, Timestamp,
};
use tern_rewrite::{CleanupRewriter, Context, Resolver};

/// The most content bytes kept before a write to the queue file.
const FLUSH_AT: usize = 64 * 1024;
/// The longest content line read at once; a longer one is passed on in pieces, as
/// Postfix's record reader cuts lines at line_length_limit.
const MAX_LINE: usize = 64 * 1024;

/// Why a new message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    Queue(#[from] tern_queue::Error),
    #[error("queue file write: {0}")]
    Io(#[from] io::Error),
    /// Address rewriting could not look up a table (try again later).
    #[error("{0}")]
    Rewrite(String),
    /// cleanup refused the content (too many hops, ...).
    #[error("{0}")]
    Cleanup(CleanupError),
    /// Every recipient was dropped (the message would have none).
    #[error("no recipients")]
    NoRecipients,
}

/// One recipient of a new message, with its DSN attributes (RFC 3461).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecipient {
    pub address: String,
    /// ORCPT as stored (`rfc822;user@example.com`).
    pub orcpt: Option<String>,
    /// NOTIFY bits (tern_queue::Notify).
    pub notify: u8,
    /// The original recipient to record (`X-Original-To:`, `orig_to=`): the address as
    /// the submitter gave it, before cleanup's rewriting (pickup); empty: none.
    pub original: String,
}

/// The envelope of a new message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewEnvelope {
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<NewRecipient>,
    /// tern_queue::MessageFlags bits (SMTPUTF8, BODY=8BITMIME).
    pub flags: u32,
    pub dsn_envid: Option<String>,
    pub dsn_ret: Option<DsnRet>,
    /// The sender's full name, for a From: header that cleanup adds (sendmail -F).
    pub full_name: Option<String>,
    /// content_filter `transport:nexthop` (pickup's): written as the queue file's
    /// [`tern_queue::ATTR_FILTER`]. Internal mail (bounces, forwarding) has none.
    pub filter: Option<String>,
}

/// What internal submission needs from the daemon. Cheap to share.
pub struct Submitter {
    pub layout: QueueLayout,
    pub id_form: IdForm,
    pub committer: Arc<Committer>,
    pub logger: Arc<Logger>,
    /// `syslog_name/cleanup`.
    pub cleanup_ident: Ident,
    /// cleanup's header settings.
    pub cleanup: Settings,
    /// Canonicalisation of the envelope addresses (trivial-rewrite, local context).
    pub resolver: Arc<Resolver>,
    /// cleanup's canonical and virtual alias rewriting, when the daemon has it.
    pub rewriter: Option<Arc<CleanupRewriter>>,
}

/// A new queue file in incoming/ whose id is fixed; dropped without [`Draft::finish`],
/// it vanishes (or is left under a temporary name that recovery removes).
pub struct Draft<'a> {
    sub: &'a Submitter,
    pending: PendingFile,
    arrival: Timestamp,
    /// header_checks and body_checks (pickup's mail; [`Draft::set_checks`]).
    checks: Option<MessageChecks>,
}

/// What became of a message that header_checks or body_checks looked at
/// ([`Draft::finish_checked`]).
#[derive(Debug)]
pub enum Finished {
    /// Committed into incoming/ for the queue manager.
    Queued(QueueId),
    /// Committed into hold/ (HOLD).
    Held(QueueId),
    /// Dropped (DISCARD): nothing committed.
    Discarded,
    /// Refused (REJECT): committed into hold/ so that a non-delivery notice can quote
    /// it; the caller bounces it and removes the file. `reason` is `D.D.D text`.
    Rejected {
        id: QueueId,
        path: std::path::PathBuf,
        envelope: Envelope,
        reason: String,
    },
}

impl Submitter {
    /// Creates the queue file (blocking file system work).
    pub fn create(&self) -> Result<Draft<'_>, SubmitError> {
        let pending = PendingFile::create(&self.layout, QueueName::Incoming, self.id_form)?;
        Ok(Draft {
            sub: self,
            pending,
            arrival: Timestamp::now(),
            checks: None,
        })
    }

    /// The envelope as cleanup writes it: sender and recipients rewritten, each
    /// recipient expanded (virtual aliases) and duplicates dropped.
    fn rewrite(&self, id: &str, env: &NewEnvelope) -> Result<(String, Vec<Recipient>), String> {
        let canon = |a: &str| {
            if a.is_empty() {
                String::new()
            } else {
                self.resolver.rewrite(Context::Local, a)
            }
        };
        // cleanup_addr.c: a recipient without a DSN ORCPT gets one made of its address
        // after canonical rewriting (before virtual aliasing), `utf-8;` when it is not
        // ASCII and SMTPUTF8 was requested.
        let utf8 = env.flags & MessageFlags::SMTPUTF8 != 0;
        let made_orcpt = |r: &NewRecipient, clean: &str| -> NewRecipient {
            let mut r = r.clone();
            if r.orcpt.is_none() && !clean.is_empty() {
                let kind = if utf8 && !clean.is_ascii() {
                    "utf-8"
                } else {
                    "rfc822"
                };
                r.orcpt = Some(format!("{kind};{clean}"));
            }
            r
        };
        let Some(rw) = &self.rewriter else {
            let mut out: Vec<Recipient> = Vec::new();
            for r in &env.recipients {
                let address = canon(&r.address);
                let r = made_orcpt(r, &address);
                // cleanup drops exact duplicates (same address, ORCPT and NOTIFY).
                if out
                    .iter()
                    .any(|o| o.address == address && o.orcpt == r.orcpt && o.notify.0 == r.notify)
                {
                    continue;
                }
                out.push(to_recipient(address, &r));
            }
            return Ok((canon(&env.sender), out));
        };
        let sender = if env.sender.is_empty() {
            String::new()
        } else {
            rw.sender(&env.sender, id).map_err(|f| f.to_string())?
        };
        let mut dedup = rw.dedup();
        let mut out = Vec::new();
        let bcc = |out: &mut Vec<Recipient>,
                   dedup: &mut tern_rewrite::virtual_alias::Dedup,
                   found: Result<Option<String>, tern_rewrite::canonical::Fault>|
         -> Result<(), String> {
            if let Some(b) = found.map_err(|f| f.to_string())? {
                out.extend(crate::cleanup::auto_bcc(rw, dedup, &b, id).map_err(|f| f.to_string())?);
            }
            Ok(())
        };
        // Automatic BCC (pickup's mail comes from outside): sender_bcc_maps after the
        // sender, recipient_bcc_maps after each recipient, always_bcc last.
        bcc(&mut out, &mut dedup, rw.sender_bcc(&sender, id))?;
        for r in &env.recipients {
            let clean = rw.recipient(&r.address, id).map_err(|f| f.to_string())?;
            let r = made_orcpt(r, &clean);
            let dsn_orcpt = r.orcpt.clone().unwrap_or_default();
            for address in rw.expand(&clean, id).map_err(|f| f.to_string())? {
                if dedup.first(&dsn_orcpt, r.notify, &r.address, &address) {
                    out.push(to_recipient(address, &r));
                }
            }
            bcc(&mut out, &mut dedup, rw.recipient_bcc(&clean, id))?;
        }
        if !out.is_empty() {
            bcc(&mut out, &mut dedup, Ok(rw.always_bcc().map(str::to_owned)))?;
        }
        Ok((sender, out))
    }
}

fn to_recipient(address: String, r: &NewRecipient) -> Recipient {
    let mut out = Recipient::new(address);
    out.orcpt.clone_from(&r.orcpt);
    out.notify = Notify(r.notify);
    out.original.clone_from(&r.original);
    out
}

impl Draft<'_> {
    /// The new message's queue id.
    pub fn id(&self) -> &QueueId {
        self.pending.id()
    }

    /// Applies header_checks and body_checks to this message ([`Self::finish_checked`]).
    pub fn set_checks(&mut self, checks: MessageChecks) {
        self.checks = Some(checks);
    }

    /// Writes the envelope and `content` (LF-terminated lines: headers, empty line,
    /// body) through cleanup's header work, logs `message-id=`, and commits the file.
    /// Blocking; returns once the file is durable.
    pub fn finish(
        self,
        env: &NewEnvelope,
        content: &mut dyn BufRead,
    ) -> Result<QueueId, SubmitError> {
        // Only pickup sets checks; internal mail always comes back queued.
        match self.finish_checked(env, content)? {
            Finished::Queued(id) | Finished::Held(id) | Finished::Rejected { id, .. } => Ok(id),
            Finished::Discarded => Err(SubmitError::NoRecipients),
        }
    }

    /// [`Self::finish`] with what header_checks and body_checks decided.
    pub fn finish_checked(
        mut self,
        env: &NewEnvelope,
        content: &mut dyn BufRead,
    ) -> Result<Finished, SubmitError> {
        let checks = self.checks.take();
        let sub = self.sub;
        let id = self.pending.id().as_str().to_owned();
        let (sender, recipients) = sub.rewrite(&id, env).map_err(SubmitError::Rewrite)?;
        if recipients.is_empty() {
            return Err(SubmitError::NoRecipients);
        }
        let envelope = Envelope {
            arrival: self.arrival,
            sender: sender.clone(),
            recipients,
            client: Vec::new(),
            dsn_envid: env.dsn_envid.clone(),
            dsn_ret: env.dsn_ret,
            flags: MessageFlags(env.flags),
        };
        let queue_time = i64::try_from(self.arrival.sec).unwrap_or(0);
        let mut w = ContentWriter {
            writer: QueueWriter::new(self.pending, &envelope)?,
            buf: Vec::with_capacity(FLUSH_AT),
            headers: HeaderCleanup::new(
                &sub.cleanup,
                HeaderEnvelope {
                    sender,
                    full_name: env.full_name.clone(),
                    queue_id: id.clone(),
                    queue_time,
                    arrival: local_timestamp(queue_time),
                    rewrite_context: Some(RewriteContext::Local),
                },
                RewriteHooks {
                    rewriter: sub.rewriter.clone(),
                    queue_id: id.clone(),
                    fault: None,
                    checks,
                },
            ),
            splitter: HeaderSplitter::new(sub.cleanup.header_size_limit),
            error: None,
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = io::Read::take(&mut *content, MAX_LINE as u64).read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            let complete = line.last() == Some(&b'\n');
            if complete {
                line.pop();
            }
            let step = w.splitter.push(&line, complete || n < MAX_LINE);
            w.apply(step)?;
            if w.error.is_some() {
                break;
            }
        }
        if w.error.is_none() {
            let step = w.splitter.finish();
            w.apply(step)?;
            // A MIME part header still being read when the content ended.
            let rest = w
                .headers
                .hooks_mut()
                .checks
                .as_mut()
                .map(MessageChecks::finish)
                .unwrap_or_default();
            for (piece, complete) in rest {
                w.body_piece(&piece, complete);
            }
        }
        if let Some(e) = w.error.take() {
            return Err(SubmitError::Cleanup(e));
        }
        if let Some(fault) = w.headers.hooks().fault.as_ref() {
            return Err(SubmitError::Rewrite(fault.to_string()));
        }
        let decided = w.headers.hooks_mut().checks.take().map(|c| c.decided);
        for event in w.headers.take_logs() {
            let line = crate::content_checks::log_line(&id, event);
            sub.logger.log(&sub.cleanup_ident, &line);
        }
        let d = decided.unwrap_or_default();
        if d.lookup_error {
            // The warning is logged; the maildrop file waits for the next try.
            return Err(SubmitError::Rewrite("table lookup problem".to_owned()));
        }
        if d.discard && d.reject.is_none() {
            return Ok(Finished::Discarded);
        }
        let mut writer = w.writer;
        writer.content(&w.buf)?;
        // cleanup_extracted.c: REC_TYPE_FILT and REC_TYPE_RDR after the content, then
        // the BCC recipients of header/body checks.
        if let Some(f) = d.filter.as_ref().or(env.filter.as_ref()) {
            writer.attribute(tern_queue::ATTR_FILTER, f)?;
        }
        if let Some(r) = &d.redirect {
            writer.attribute(tern_queue::ATTR_REDIRECT, r)?;
        }
        if let (Some(rw), false) = (&sub.rewriter, d.bcc.is_empty()) {
            let mut dedup = rw.dedup();
            for b in &d.bcc {
                let bcc = crate::cleanup::auto_bcc(rw, &mut dedup, b, &id)
                    .map_err(|f| SubmitError::Rewrite(f.to_string()))?;
                for r in bcc {
                    writer.extracted_recipient(&r)?;
                }
            }
        }
        let mut pending = writer.finish()?;
        let held = d.hold || d.reject.is_some();
        if held {
            pending.set_queue(&sub.layout, QueueName::Hold);
        }
        let qid = sub.committer.commit(pending)?;
        Ok(match d.reject {
            Some(reason) => Finished::Rejected {
                path: sub.layout.path(QueueName::Hold, &qid),
                id: qid,
                envelope,
                reason,
            },
            None if held => Finished::Held(qid),
            None => Finished::Queued(qid),
        })
    }
}

/// The content side of [`Draft::finish`].
struct ContentWriter<'s> {
    writer: QueueWriter<PendingFile>,
    buf: Vec<u8>,
    headers: HeaderCleanup<'s, RewriteHooks>,
    splitter: HeaderSplitter,
    error: Option<CleanupError>,
}

impl ContentWriter<'_> {
    /// One step of the header splitter, as cleanup.rs applies it.
    fn apply(&mut self, step: Step<'_>) -> io::Result<()> {
        if let Some(field) = step.header {
            match self.headers.header(field) {
                Ok(Some(text)) => self.put_line(&text),
                Ok(None) => {}
                Err(e) => {
                    self.error = Some(e);
                    return Ok(());
                }
            }
        }
        if let Some(end) = step.end {
            match self.headers.end_of_headers() {
                Ok(added) => {
                    for h in added {
                        self.put_line(&h);
                    }
                }
                Err(e) => {
                    self.error = Some(e);
                    return Ok(());
                }
            }
            if end == HeadersEnd::InsertedSeparator {
                // RFC 5322 2.1: the empty line between headers and body.
                self.buf.push(b'\n');
            }
        }
        if let Some((text, complete)) = step.body {
            let checked = self.headers.hooks_mut().checks.as_mut().map(|c| {
                let out = c.body_record(text, complete);
                (out, c.take_logs())
            });
            let out = match checked {
                None => None,
                Some((out, logs)) => {
                    for l in logs {
                        self.headers
                            .push_log(tern_message::cleanup::LogEvent::Line(l));
                    }
                    out
                }
            };
            match out {
                None => self.body_piece(text, complete),
                Some(out) => {
                    for (piece, complete) in out {
                        self.body_piece(&piece, complete);
                    }
                }
            }
        }
        if self.buf.len() >= FLUSH_AT {
            self.writer.content(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn put_line(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
        self.buf.push(b'\n');
    }

    fn body_piece(&mut self, text: &[u8], complete: bool) {
        self.buf.extend_from_slice(text);
        if complete {
            self.buf.push(b'\n');
        }
    }
}

/// Reads the content of a queue file through its content records.
pub struct ContentReader {
    file: File,
    segments: Vec<(u64, u64)>,
    next: usize,
    left: u64,
}

impl ContentReader {
    /// Reads the content of `file`, a queue file whose content records are `segments`.
    pub fn new(file: File, segments: &[Segment]) -> Self {
        Self {
            file,
            segments: segments
                .iter()
                .map(|s| (s.offset, u64::from(s.len)))
                .collect(),
            next: 0,
            left: 0,
        }
    }
}

impl Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            let Some(&(offset, len)) = self.segments.get(self.next) else {
                return Ok(0);
            };
            self.file.seek(SeekFrom::Start(offset))?;
            self.left = len;
            self.next += 1;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// One forwarded message: local(8)'s alias or .forward results that go elsewhere
/// (forward.c): the original's content after forward.c's Received: header and the
/// `prepend` lines (Delivered-To:), to `recipients` (each with its original recipient's
/// ORCPT and NOTIFY), from `sender`, with the original's ENVID, RET and SMTPUTF8.
pub struct Forward<'a> {
    /// The original's queue file (in active/).
    pub queue_file: &'a Path,
    pub sender: &'a str,
    pub recipients: Vec<NewRecipient>,
    pub prepend: &'a [String],
    /// mail_name, for the Received: header.
    pub mail_name: &'a str,
}

impl Submitter {
    /// Queues one forwarded message (blocking); returns its id.
    pub fn forward(&self, f: &Forward<'_>) -> Result<QueueId, SubmitError> {
        let qf = tern_queue::QueueFile::open(f.queue_file)?;
        let file = File::open(f.queue_file).map_err(|e| tern_queue::Error::Io {
            op: "open",
            path: f.queue_file.to_owned(),
            source: e,
        })?;
        let draft = self.create()?;
        let mut head = forward_received(
            &self.cleanup.myhostname,
            f.mail_name,
            draft.id().as_str(),
            unix_now(),
        );
        for line in f.prepend {
            head.push_str(line);
            head.push('\n');
        }
        let env = NewEnvelope {
            sender: f.sender.to_owned(),
            recipients: f.recipients.clone(),
            // forward.c passes SMTPUTF8 on; BODY= is found again by cleanup.
            flags: qf.envelope.flags.0 & MessageFlags::SMTPUTF8,
            dsn_envid: qf.envelope.dsn_envid.clone(),
            dsn_ret: qf.envelope.dsn_ret,
            full_name: None,
            filter: None,
        };
        let body = io::BufReader::new(ContentReader::new(file, &qf.segments));
        draft.finish(&env, &mut io::Cursor::new(head.into_bytes()).chain(body))
    }
}

pub(crate) use crate::cleanup::local_timestamp;

/// Now, seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The Received: header forward.c writes first in a forwarded message:
/// `Received: by HOST (MAIL_NAME)` and `<TAB>id NEWID; DATE` (two lines).
pub fn forward_received(myhostname: &str, mail_name: &str, new_id: &str, now: i64) -> String {
    format!(
        "Received: by {myhostname} ({mail_name})\n\tid {new_id}; {}\n",
        trace::mail_date(&local_timestamp(now))
    )
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tern_queue::QueueFile;

    use super::*;

    fn submitter(dir: &std::path::Path) -> Submitter {
        let layout = QueueLayout::new(dir);
        layout.create(None).expect("queue dirs");
        Submitter {
            layout,
            id_form: IdForm::Short,
            committer: Arc::new(Committer::start().expect("committer")),
            logger: Arc::new(Logger::memory("mx.example.test")),
            cleanup_ident: Ident::new("postfix", "cleanup"),
            cleanup: Settings {
                myhostname: "mx.example.test".into(),
                ..Settings::default()
            },
            resolver: Arc::new(test_resolver()),
            rewriter: None,
        }
    }

    pub(crate) fn test_config(extra: &str) -> tern_config::config::Config {
        use tern_config::host::HostInfo;
        use tern_config::maincf::MainCf;
        use tern_config::mastercf::MasterCf;
        let main = format!("compatibility_level = 3.6\nmyhostname = mx.example.test\n{extra}\n");
        tern_config::config::Config::new(
            std::path::Path::new("/nonexistent"),
            MainCf::parse(main.as_bytes(), "main.cf").expect("main.cf"),
            MasterCf::parse(b"smtp inet n - n - - smtpd\n".as_slice(), "master.cf")
                .expect("master.cf"),
            HostInfo::from_hostname("mx.example.test"),
        )
    }

    pub(crate) fn test_resolver() -> Resolver {
        Resolver::from_config(&test_config(""), tern_maps::no_warnings()).expect("resolver")
    }

    #[test]
    fn internal_message_is_committed_with_cleanup_headers() {
        let dir = tempfile::tempdir().expect("tmp");
        let sub = submitter(dir.path());
        let draft = sub.create().expect("create");
        let id = draft.id().clone();
        let env = NewEnvelope {
            sender: String::new(),
            recipients: vec![
                NewRecipient {
                    address: "postmaster".into(),
                    orcpt: Some("rfc822;postmaster".into()),
                    notify: 0,
                    original: String::new(),
                },
                NewRecipient {
                    address: "postmaster".into(),
                    orcpt: Some("rfc822;postmaster".into()),
                    notify: 0,
                    original: String::new(),
                },
            ],
            flags: MessageFlags::SMTPUTF8,
            ..NewEnvelope::default()
        };
        let content = format!(
            "{}Subject: hi\nBcc: hidden@x\n\nbody line\nlast",
            forward_received("mx.example.test", "Postfix", id.as_str(), 0)
        );
        let got = draft
            .finish(&env, &mut Cursor::new(content.as_bytes()))
            .expect("finish");
        assert_eq!(got, id);
        let path = sub.layout.path(QueueName::Incoming, &id);
        let qf = QueueFile::open(&path).expect("read");
        assert_eq!(qf.envelope.sender, "");
        assert_eq!(qf.envelope.recipients.len(), 1, "duplicates dropped");
        assert_eq!(
            qf.envelope.recipients[0].address,
            "postmaster@mx.example.test"
        );
        assert_eq!(qf.envelope.flags.0, MessageFlags::SMTPUTF8);
        let mut out = Vec::new();
        qf.copy_content(&mut std::fs::File::open(&path).expect("open"), &mut out)
            .expect("copy");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with("Received: by mx.example.test (Postfix)\n\tid "),
            "{text}"
        );
        assert!(text.contains("\nSubject: hi\nMessage-Id: <"), "{text}");
        assert!(!text.contains("Bcc:"), "{text}");
        assert!(text.ends_with("\n\nbody line\nlast\n"), "{text}");
        let logged = sub.logger.captured();
        assert!(
            logged
                .iter()
                .any(|l| l.contains("postfix/cleanup[")
                    && l.contains(&format!("{id}: message-id=<"))),
            "{logged:?}"
        );
    }
}
