//! bounce(8)'s part of the queue manager: the [`Notices`] implementation that turns a
//! message's bounced, expired, delayed or NOTIFY=SUCCESS recipients into new messages
//! (RFC 3464 reports composed by [`tern_message::dsn`]) and queues them through
//! [`crate::submit`] with the null sender (or double_bounce_sender for a postmaster copy).
//!
//! For each notice: [`addressees`] decides who gets it (the sender, a postmaster copy per
//! notify_classes, 2bounce_notice_recipient for a bounce of a bounce, nobody for a
//! double bounce); for each addressee a queue file is created (its id goes into the
//! notice's Received: and Message-Id:), the report is composed from the original's queue
//! file (content read through its content segments, never whole in memory unless
//! returned), committed, logged as Postfix's bounce(8) logs it
//! (`QUEUEID: sender non-delivery notification: NEWID`, and the postmaster, delay and
//! delivery status variants) and handed to the queue manager as new mail.
//!
//! # Guarantees (crash safety)
//! - A notice is committed (durable in incoming/, or in a synced commit-journal segment)
//!   before [`Notices::notify`] returns `Ok`; the queue manager appends the `Bounced`
//!   status records of the recipients it reports only after that (runner.rs). A crash
//!   between the two leaves the recipients pending: they are tried again and bounce again,
//!   so a notice may be sent twice, never lost.
//! - A failed sender notice (or the postmaster notice of a bounce of a bounce, its only
//!   notice) is an `Err`: the queue manager keeps the message and tries later. A failed
//!   postmaster *copy* is only a warning (`QUEUEID: postmaster notice failed while
//!   bouncing to SENDER`), as in bounce_notify_service.c.
//! - Delay warnings: once sent, the queue manager records a marker in the queue file
//!   ([`delay_mark`]: a `Pending` Status record with the text [`DELAY_MARK`], followed by
//!   a copy of the recipient's last record, which keeps its state). [`delay_warned`]
//!   finds it after a restart, so a warning is not repeated, and a crash before the
//!   marker reached the disk repeats the warning at most once.
//! - Success notices (NOTIFY=SUCCESS) are sent after the `Sent` records were appended (the
//!   delivery is what must not be repeated); a crash in between loses the success notice.
//!   XXX: Postfix keeps them in its trace log first; Tern has no trace log yet.
//!
//! Not done (Postfix does): Remote-MTA and the remote server's Diagnostic-Code (there is no
//! smtp client yet; every report says `X-Postfix; <reason>`); the `relayed` action;
//! threaded bounces; bounce templates.
//!
//! # Security
//! The original's content, sender, recipients and the agents' texts came from the
//! network; the composer makes the per-recipient fields printable and copies the content
//! inside its own MIME part (see [`tern_message::dsn`]). The queue file is read with
//! tern_queue's checking reader. This runs as mail_owner.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use tern_maillog::queue::Notification;
use tern_maillog::{Ident, Line, Logger};
use tern_message::dsn::{
    Action, Addressee, Audience, BodyEncoding, Kind, NewMessage, Original, RecipientReport,
    Reporter, Ret, Skipped, addressees, compose_to_vec,
};
use tern_queue::record::{Fields, RecordReader, RecordType, header};
use tern_queue::{DeliveryStatus, DsnRet, MessageFlags, QueueFile, QueueId, StatusUpdate};

use crate::qmgr::transports::{BoxFuture, Notice, NoticeKind, NoticeRecipient, Notices};
use crate::submit::{
    ContentReader, NewEnvelope, NewRecipient, Submitter, local_timestamp, unix_now,
};

/// The text of the Status record that marks a delay warning as sent.
pub const DELAY_MARK: &str = "delay notice sent";

/// Called with the id of each notice once it is committed (the queue manager's new mail).
pub type NewMail = Arc<dyn Fn(&QueueId) + Send + Sync>;

/// The bounce service. Cheap to clone.
#[derive(Clone)]
pub struct Bounces {
    inner: Arc<Inner>,
}

struct Inner {
    reporter: Reporter,
    submitter: Arc<Submitter>,
    logger: Arc<Logger>,
    /// `syslog_name/bounce`.
    ident: Ident,
    new_mail: NewMail,
}

impl Bounces {
    /// A bounce service that reports as `reporter` says, queues through `submitter`,
    /// logs under `ident` (`syslog_name/bounce`) and tells `new_mail` of each notice.
    pub fn new(
        reporter: Reporter,
        submitter: Arc<Submitter>,
        logger: Arc<Logger>,
        ident: Ident,
        new_mail: NewMail,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                reporter,
                submitter,
                logger,
                ident,
                new_mail,
            }),
        }
    }

    /// Sends the notices of `n` now, on the calling thread (blocking).
    pub fn send(&self, n: &Notice) -> Result<(), String> {
        self.inner.send(n)
    }
}

impl Notices for Bounces {
    fn notify(&self, notice: Notice) -> BoxFuture<Result<(), String>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.send(&notice))
                .await
                .map_err(|e| e.to_string())?
        })
    }
}

impl Inner {
    fn send(&self, n: &Notice) -> Result<(), String> {
        let kind = match n.kind {
            NoticeKind::Bounce | NoticeKind::Expired => Kind::Failure,
            NoticeKind::DelayWarning => Kind::Delay,
            NoticeKind::Success => Kind::Success,
            NoticeKind::Verify => Kind::Verify,
        };
        let ret = n.envelope.dsn_ret.map(|r| match r {
            DsnRet::Full => Ret::Full,
            DsnRet::Hdrs => Ret::Hdrs,
        });
        let to = n.to.as_deref().unwrap_or(&n.envelope.sender);
        let list = match addressees(kind, to, ret, &self.reporter) {
            Ok(list) => list,
            Err(skipped) => {
                self.skipped(n, kind, &skipped);
                return Ok(());
            }
        };
        let reports: Vec<RecipientReport> = n.recipients.iter().map(|r| report(r, kind)).collect();
        for (i, a) in list.iter().enumerate() {
            match self.one(n, a, &reports) {
                Ok(Some(new_id)) => {
                    let what = notification(kind, a.audience);
                    self.logger.log(
                        &self.ident,
                        &tern_maillog::queue::notification(&n.queue_id, what, new_id.as_str()),
                    );
                    match &n.made {
                        Some(made) => made
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(new_id),
                        None => (self.new_mail)(&new_id),
                    }
                }
                // No recipient asked for this notice: cancelled, as Postfix does.
                Ok(None) => {}
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    // bounce_notify_service.c: the postmaster copy is not critical.
                    self.warn(format!("{}: {e}", n.queue_id));
                    self.warn(format!(
                        "{}: postmaster notice failed while bouncing to {to}",
                        n.queue_id
                    ));
                }
            }
        }
        Ok(())
    }

    /// Composes and queues the notice for one addressee; `None` when it lists nobody.
    fn one(
        &self,
        n: &Notice,
        a: &Addressee,
        reports: &[RecipientReport],
    ) -> Result<Option<QueueId>, String> {
        let qf = QueueFile::open(&n.queue_file).map_err(|e| e.to_string())?;
        let file = File::open(&n.queue_file)
            .map_err(|e| format!("open {}: {e}", n.queue_file.display()))?;
        let flags = n.envelope.flags.0;
        let original = Original {
            queue_id: &n.queue_id,
            sender: &n.envelope.sender,
            arrival: i64::try_from(n.envelope.arrival.sec).unwrap_or(0),
            envid: n.envelope.dsn_envid.as_deref(),
            encoding: if flags & MessageFlags::BODY_8BITMIME != 0 {
                BodyEncoding::EightBit
            } else {
                BodyEncoding::Unknown
            },
            smtputf8: flags & MessageFlags::SMTPUTF8 != 0,
            size: wire_size(&qf, &n.queue_file, self.reporter.bounce_size_limit)
                .map_err(|e| format!("read {}: {e}", n.queue_file.display()))?,
        };
        let mut content = BufReader::new(ContentReader::new(file, &qf.segments));
        let draft = self.submitter.create().map_err(|e| e.to_string())?;
        let zone = |t: i64| local_timestamp(t);
        let new = NewMessage {
            queue_id: draft.id().as_str(),
            now: unix_now(),
            zone: &zone,
        };
        let composed = compose_to_vec(
            a,
            &original,
            reports,
            Some(&mut content),
            &self.reporter,
            &new,
        )
        .map_err(|e| e.to_string())?;
        let Some((text, c)) = composed else {
            return Ok(None);
        };
        let env = NewEnvelope {
            sender: a.envelope_sender.clone(),
            recipients: vec![NewRecipient {
                address: a.recipient.clone(),
                orcpt: None,
                notify: 0,
                original: String::new(),
            }],
            flags: if c.smtputf8 {
                MessageFlags::SMTPUTF8
            } else {
                0
            },
            dsn_envid: None,
            dsn_ret: None,
            full_name: None,
            filter: None,
        };
        draft
            .finish(&env, &mut Cursor::new(text))
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// What bounce(8) logs when no notice is due.
    fn skipped(&self, n: &Notice, kind: Kind, why: &Skipped) {
        let trace = matches!(kind, Kind::Success | Kind::Verify);
        match (why, trace) {
            (Skipped::DoubleBounce, false) => self.warn(format!(
                "{}: undeliverable postmaster notification discarded",
                n.queue_id
            )),
            (Skipped::DoubleBounce, true) => self.logger.log(
                &self.ident,
                &tern_maillog::queue::trace_not_sent(&n.queue_id, true),
            ),
            (Skipped::SingleBounceNotNotified, true) => self.logger.log(
                &self.ident,
                &tern_maillog::queue::trace_not_sent(&n.queue_id, false),
            ),
            (Skipped::SingleBounceNotNotified, false) => {}
        }
    }

    fn warn(&self, text: String) {
        self.logger.log(&self.ident, &Line::warning(text));
    }
}

/// One recipient as the bounce, defer or trace log holds it.
fn report(r: &NoticeRecipient, kind: Kind) -> RecipientReport {
    RecipientReport {
        address: r.address.clone(),
        orig_addr: r.orig_address.clone(),
        dsn_orcpt: r.orcpt.clone().unwrap_or_default(),
        notify: r.notify,
        status: r.dsn.clone(),
        action: match kind {
            Kind::Failure => Action::Failed,
            Kind::Delay => Action::Delayed,
            Kind::Success => Action::Delivered,
            // sent.c / defer.c / bounce.c with DEL_REQ_FLAG_USR_VRFY.
            Kind::Verify if r.dsn.starts_with('2') => Action::Deliverable,
            Kind::Verify => Action::Undeliverable,
        },
        reason: r.text.clone(),
        diagnostic: None,
        remote_mta: None,
    }
}

/// The log line's words for a notice (bounce_notify_service.c, bounce_warn_service.c,
/// bounce_trace_service.c).
fn notification(kind: Kind, audience: Audience) -> Notification {
    match (kind, audience) {
        (Kind::Failure, Audience::Sender) => Notification::SenderNonDelivery,
        (Kind::Failure, _) => Notification::PostmasterNonDelivery,
        (Kind::Delay, Audience::Sender) => Notification::SenderDelay,
        (Kind::Delay, _) => Notification::PostmasterDelay,
        (Kind::Success | Kind::Verify, _) => Notification::SenderDeliveryStatus,
    }
}

/// The original's size as Postfix counts it (every line end as CRLF), exactly only where
/// it matters: near bounce_size_limit, where the LF count decides full or headers.
fn wire_size(qf: &QueueFile, path: &Path, limit: u64) -> io::Result<u64> {
    let len = qf.content_len;
    if limit == 0 || len > limit || len.saturating_mul(2) <= limit {
        return Ok(len);
    }
    let mut r = ContentReader::new(File::open(path)?, &qf.segments);
    let mut buf = vec![0u8; 64 * 1024];
    let mut lfs = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(len + lfs);
        }
        #[allow(clippy::naive_bytecount)] // no new dependency for one count
        let found = buf[..n].iter().filter(|&&b| b == b'\n').count();
        lfs += found as u64;
    }
}

/// The Status records that mark a delay warning as sent for a message: a `Pending`
/// record with [`DELAY_MARK`], then the recipient's last record again, so that its state
/// (the last record) does not change.
pub fn delay_mark(r: &NoticeRecipient, time: u64) -> [StatusUpdate; 2] {
    [
        StatusUpdate {
            recipient: r.index,
            status: DeliveryStatus::Pending,
            time,
            dsn: String::new(),
            diagnostic: DELAY_MARK.to_owned(),
        },
        StatusUpdate {
            recipient: r.index,
            status: DeliveryStatus::Deferred,
            time,
            dsn: r.dsn.clone(),
            diagnostic: r.text.clone(),
        },
    ]
}

/// Whether the queue file at `path` (read as `qf`) holds a [`delay_mark`]. Reads only the
/// Status records after End.
pub fn delay_warned(path: &Path, qf: &QueueFile) -> io::Result<bool> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(qf.end_offset))?;
    let status_part = file.take(qf.valid_len.saturating_sub(qf.end_offset));
    let Ok(mut r) = RecordReader::new(Cursor::new(header()).chain(status_part)) else {
        return Ok(false);
    };
    let mut buf = Vec::new();
    while let Ok(Some(h)) = r.next(&mut buf) {
        if h.kind != RecordType::Status {
            break;
        }
        let mut f = Fields(&buf);
        let marked = f.u32().is_some()
            && f.u8() == Some(DeliveryStatus::Pending as u8)
            && f.u64().is_some()
            && f.str16().is_some()
            && f.rest_str() == Some(DELAY_MARK);
        if marked {
            return Ok(true);
        }
    }
    Ok(false)
}
