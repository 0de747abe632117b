//! pickup(8): mail that local users submit with `sendmail` (through `postdrop`) waits in
//! `maildrop/` until pickup takes it through cleanup into incoming/ and tells the queue
//! manager.
//!
//! As Postfix's pickup: it scans maildrop/ when `postdrop` sends a wake-up to the
//! `public/pickup` socket and, in any case, every wakeup interval (the master.cf `pickup`
//! line's wakeup column, 60 s by default), so mail submitted while the daemon was down
//! is taken at start. Each finished file (mode 0444: see [`tern_queue::maildrop`]) is
//! read, given a new queue id, a `Received: by HOST (Postfix, from userid UID)` header
//! and cleanup's work (canonical and virtual alias mapping of the envelope, the missing
//! From:/Date:/Message-Id: headers with the sender's full name), committed, and then
//! removed from maildrop/. The log line is Postfix's: `pickup[PID]: QUEUEID: uid=UID
//! from=<SENDER>`.
//!
//! A crash between the commit and the removal delivers the message twice (Postfix has
//! the same window); a message is never lost.
//!
//! # Security
//! Runs as mail_owner. A maildrop file is written by any local user (through postdrop,
//! or by hand by a member of the postdrop group) and is untrusted: it is opened without
//! following a symlink, must be a regular file with one link, its owner's uid is what
//! the log names, its envelope is parsed with limits ([`tern_queue::maildrop`]), and
//! its content is bounded by message_size_limit. A malformed file is removed with a
//! warning, as Postfix's pickup does with malformed records. Wake-ups carry no
//! information: a connection is read for at most 100 bytes and one second.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;
use tokio::sync::Notify;

use tern_config::config::Config;
use tern_maillog::{Ident, Line, Logger};
use tern_message::trace::pickup_received;
use tern_queue::maildrop::{Envelope, READY_MODE};
use tern_queue::{MessageFlags, QueueName};
use tern_rewrite::CleanupRewriter;

use crate::qmgr::QmgrHandle;
use crate::submit::{NewEnvelope, NewRecipient, Submitter};

/// The most maildrop files taken in one scan before the scan starts again (each is
/// committed on its own; this only bounds one pass's listing).
const SCAN_LIMIT: usize = 10_000;

/// What pickup needs.
pub struct Pickup {
    submitter: Submitter,
    qmgr: QmgrHandle,
    maildrop: PathBuf,
    logger: Arc<Logger>,
    ident: Ident,
    myhostname: String,
    mail_name: String,
    /// message_size_limit (0: none).
    size_limit: u64,
    /// content_filter in pickup's name space (main.cf, or master.cf `-o` on the pickup
    /// service): pickup.c sends it to cleanup with every message. Empty: none.
    content_filter: String,
    /// header_checks and body_checks (cleanup's, for mail from outside).
    content_checks: Option<Arc<crate::content_checks::ContentChecks>>,
    /// delay_logging_resolution_limit, for the bounce lines of a rejected message.
    delay_resolution: u32,
    wakeup: Duration,
    wake: Notify,
}

/// Whether master.cf has a `pickup` service, and its wakeup interval.
pub fn wanted(config: &Config) -> Option<Duration> {
    let svc = service(config)?;
    let secs = svc
        .wakeup
        .trim_end_matches('?')
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .unwrap_or(60);
    Some(Duration::from_secs(secs))
}

/// master.cf's pickup service.
fn service(config: &Config) -> Option<&tern_config::mastercf::Service> {
    config.master.services.iter().find(|s| {
        s.command.rsplit('/').next() == Some("pickup") && (s.kind == "unix" || s.kind == "fifo")
    })
}

impl Pickup {
    /// Builds pickup from the configuration and the queue manager's submission.
    pub fn new(
        config: &Config,
        qmgr: &QmgrHandle,
        logger: &Arc<Logger>,
        wakeup: Duration,
    ) -> Result<Pickup, String> {
        let get = |name: &str| -> Result<String, String> {
            Ok(config
                .expanded(name)
                .map_err(|e| e.to_string())?
                .unwrap_or_default())
        };
        let content_filter = {
            let scope = service(config);
            let raw = config
                .lookup_value("content_filter", scope)
                .unwrap_or_default();
            config.expand(&raw, scope).map_err(|e| e.to_string())?.text
        };
        let content_checks =
            crate::content_checks::ContentChecks::from_config(config, service(config))
                .map_err(|e| e.to_string())?;
        let base = qmgr.submitter();
        let warn_logger = Arc::clone(logger);
        let syslog_name = get("syslog_name")?;
        let warn_ident = Ident::new(&syslog_name, "cleanup");
        let warn: tern_maps::Warn =
            Arc::new(move |t: &str| warn_logger.log(&warn_ident, &Line::warning(t)));
        // Mail from pickup gets cleanup's full address mapping (canonical, masquerade,
        // virtual aliases), as Postfix's cleanup gives it to every external submission.
        let rewriter = CleanupRewriter::new(
            tern_rewrite::CleanupSettings::from_config(config).map_err(|e| e.to_string())?,
            Arc::clone(&base.resolver),
            warn,
        )
        .map_err(|e| e.to_string())?;
        Ok(Pickup {
            submitter: Submitter {
                layout: base.layout.clone(),
                id_form: base.id_form,
                committer: Arc::clone(&base.committer),
                logger: Arc::clone(&base.logger),
                cleanup_ident: base.cleanup_ident.clone(),
                cleanup: base.cleanup.clone(),
                resolver: Arc::clone(&base.resolver),
                rewriter: Some(Arc::new(rewriter)),
            },
            qmgr: qmgr.clone(),
            maildrop: base.layout.dir(QueueName::Maildrop),
            logger: Arc::clone(logger),
            ident: Ident::new(&syslog_name, "pickup"),
            myhostname: get("myhostname")?,
            mail_name: get("mail_name")?,
            size_limit: get("message_size_limit")?.parse().unwrap_or(10_240_000),
            content_filter,
            content_checks,
            delay_resolution: get("delay_logging_resolution_limit")?
                .trim()
                .parse()
                .unwrap_or(2),
            wakeup,
            wake: Notify::new(),
        })
    }

    /// Serves wake-ups on `listener` (public/pickup) and scans maildrop/ at start, on
    /// each wake-up and every wakeup interval. Runs until the runtime stops.
    pub fn spawn(self: Arc<Self>, listener: Option<UnixListener>) {
        if let Some(listener) = listener {
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let me = Arc::clone(&me);
                    tokio::spawn(async move {
                        // A trigger is a few bytes (postqueue -f ends them with a NUL and
                        // waits for the close); one read, then the connection is closed.
                        let mut buf = [0u8; 100];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), conn.read(&mut buf)).await;
                        me.wake.notify_one();
                    });
                }
            });
        }
        tokio::spawn(async move {
            loop {
                let me = Arc::clone(&self);
                let _ = tokio::task::spawn_blocking(move || me.scan()).await;
                let _ = tokio::time::timeout(self.wakeup, self.wake.notified()).await;
            }
        });
    }

    /// One pass over maildrop/: every finished file, oldest name first.
    fn scan(&self) {
        let Ok(dir) = std::fs::read_dir(&self.maildrop) else {
            return;
        };
        let mut names: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .take(SCAN_LIMIT)
            .collect();
        names.sort();
        for path in names {
            self.take(&path);
        }
    }

    /// Takes one maildrop file: queue it, then remove it. A file that is not finished
    /// yet is left alone.
    fn take(&self, path: &Path) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.warn(format!("open input file maildrop/{name}: {e}"));
                self.remove(path);
                return;
            }
        };
        let Ok(st) = file.metadata() else { return };
        if !st.is_file() || st.nlink() != 1 {
            self.warn(format!("maildrop/{name}: not a regular file -- removed"));
            self.remove(path);
            return;
        }
        if st.permissions().mode() & 0o777 != READY_MODE {
            // Still being written by postdrop (or its writer died: postsuper -p).
            return;
        }
        let uid = st.uid();
        let mtime = crate::cleanup::local_timestamp(st.mtime());
        match self.queue(file, uid, &mtime) {
            Ok(()) => self.remove(path),
            Err(Failure::Malformed(why)) => {
                self.warn(format!("uid={uid}: maildrop/{name}: {why} -- removed"));
                self.remove(path);
            }
            // A temporary problem (a full disk): the file stays for the next pass.
            Err(Failure::Temporary(why)) => {
                self.warn(format!("maildrop/{name}: {why}"));
            }
        }
    }

    fn queue(
        &self,
        file: File,
        uid: u32,
        mtime: &tern_message::trace::Timestamp,
    ) -> Result<(), Failure> {
        let mut input = BufReader::new(file);
        let env = Envelope::read(&mut input).map_err(|e| Failure::Malformed(e.to_string()))?;
        if env.recipients.is_empty() {
            return Err(Failure::Malformed("no recipients".into()));
        }
        let mut draft = self
            .submitter
            .create()
            .map_err(|e| Failure::Temporary(e.to_string()))?;
        let id = draft.id().clone();
        if let Some(c) = &self.content_checks {
            // cleanup_act_log()'s context for local mail: `from local`, the sender and
            // the last recipient in their canonical form, no proto= or helo=.
            let canon = |a: &str| {
                self.submitter
                    .resolver
                    .rewrite(tern_rewrite::Context::Local, a)
            };
            draft.set_checks(crate::content_checks::MessageChecks::new(
                Arc::clone(c),
                crate::content_checks::LogContext {
                    queue_id: id.as_str().to_owned(),
                    origin: "local".to_owned(),
                    sender: Some(canon(&env.sender)),
                    recipient: env.recipients.last().map(|r| canon(r)),
                    protocol: None,
                    helo: None,
                },
            ));
        }
        self.logger.log(
            &self.ident,
            &tern_maillog::queue::pickup(id.as_str(), uid, &env.sender),
        );
        let received = pickup_received(&self.myhostname, &self.mail_name, uid, id.as_str(), mtime);
        let new = NewEnvelope {
            sender: env.sender.clone(),
            recipients: env
                .recipients
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    // A recipient's own NOTIFY (sendmail -bs) wins over sendmail -N.
                    let dsn = env.dsn(i);
                    NewRecipient {
                        address: r.clone(),
                        orcpt: dsn.orcpt,
                        notify: if dsn.notify != 0 {
                            dsn.notify
                        } else {
                            env.notify
                        },
                        original: r.clone(),
                    }
                })
                .collect(),
            flags: if env.eight_bit {
                MessageFlags::BODY_8BITMIME
            } else {
                0
            } | if env.verify { MessageFlags::VERIFY } else { 0 }
                | if env.smtputf8 {
                    MessageFlags::SMTPUTF8
                } else {
                    0
                },
            dsn_envid: env.envid.clone(),
            dsn_ret: env.ret,
            full_name: env.full_name.clone(),
            filter: (!self.content_filter.is_empty()).then(|| self.content_filter.clone()),
        };
        // One byte over the limit is enough to know.
        let limit = if self.size_limit == 0 {
            u64::MAX
        } else {
            self.size_limit + 1
        };
        let mut body = input.take(limit);
        let mut content = Read::chain(Cursor::new(format!("{received}\n").into_bytes()), &mut body);
        let result = draft.finish_checked(&new, &mut content);
        if body.limit() == 0 {
            return Err(Failure::Malformed("message file too big".into()));
        }
        match result {
            Ok(crate::submit::Finished::Queued(id)) => {
                self.qmgr.new_mail(&id);
                Ok(())
            }
            Ok(crate::submit::Finished::Held(_) | crate::submit::Finished::Discarded) => Ok(()),
            Ok(crate::submit::Finished::Rejected {
                id,
                path,
                envelope,
                reason,
            }) => self.bounce_rejected(&id, &path, envelope, &reason),
            Err(crate::submit::SubmitError::Io(e)) => Err(Failure::Temporary(e.to_string())),
            Err(crate::submit::SubmitError::Queue(e)) => Err(Failure::Temporary(e.to_string())),
            Err(crate::submit::SubmitError::Rewrite(e)) => Err(Failure::Temporary(e)),
            Err(e) => Err(Failure::Malformed(e.to_string())),
        }
    }

    /// cleanup_bounce(): a local submission that header_checks or body_checks rejected
    /// is returned to its sender. Each recipient is logged `status=bounced (TEXT)` under
    /// cleanup's name, the bounce service sends the non-delivery notice, and the file
    /// (held for the notice to quote) is removed.
    fn bounce_rejected(
        &self,
        id: &tern_queue::QueueId,
        path: &Path,
        envelope: tern_queue::Envelope,
        reason: &str,
    ) -> Result<(), Failure> {
        let (dsn, text) = reason.split_once(' ').unwrap_or((reason, ""));
        let arrived = std::time::UNIX_EPOCH
            + std::time::Duration::new(envelope.arrival.sec, envelope.arrival.usec * 1000);
        let since = std::time::SystemTime::now()
            .duration_since(arrived)
            .unwrap_or_default();
        let delays = tern_maillog::delay::Delays {
            total: since,
            before_qmgr: since,
            ..tern_maillog::delay::Delays::default()
        };
        let recipients: Vec<_> = envelope
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| crate::qmgr::transports::NoticeRecipient {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                address: r.address.clone(),
                orig_address: r.original.clone(),
                orcpt: r.orcpt.clone(),
                notify: r.notify.0,
                dsn: dsn.to_owned(),
                text: text.to_owned(),
            })
            .collect();
        for r in &recipients {
            let line = tern_maillog::delivery::delivery(&tern_maillog::delivery::Delivery {
                queue_id: id.as_str(),
                to: &r.address,
                orig_to: Some(&r.orig_address),
                relay: "none",
                conn_use: 0,
                delays,
                delay_resolution: self.delay_resolution,
                dsn,
                status: tern_maillog::delivery::Status::Bounced,
                reason: text,
            });
            self.logger.log(&self.submitter.cleanup_ident, &line);
        }
        let notice = crate::qmgr::transports::Notice {
            kind: crate::qmgr::transports::NoticeKind::Bounce,
            queue_id: id.as_str().to_owned(),
            queue_file: path.to_owned(),
            envelope,
            recipients,
            to: None,
            made: None,
        };
        let sent = self.qmgr.bounces().send(&notice);
        let _ = std::fs::remove_file(path);
        sent.map_err(Failure::Temporary)
    }

    fn remove(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            self.warn(format!("remove {}: {e}", path.display()));
        }
    }

    fn warn(&self, text: String) {
        self.logger.log(&self.ident, &Line::warning(text));
    }
}

/// Why a file was not queued.
enum Failure {
    /// The file is bad: it goes.
    Malformed(String),
    /// Try again later: it stays.
    Temporary(String),
}
