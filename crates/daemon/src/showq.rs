//! showq(8): the mail queue listing behind `postqueue -p`, `postqueue -j`, `mailq` and
//! `sendmail -bp`.
//!
//! As Postfix: the daemon listens on `$queue_directory/public/<service>` (`public/showq`)
//! when master.cf has a `unix` service whose command is `showq`; `public/` is
//! mail_owner:setgid_group 0710 (docs/queue-format.md), so only mail_owner and the
//! set-gid `postqueue` reach the socket, which is mode 0666. A connection gets the
//! listing of showq.c, in its order of queues: maildrop, active, incoming, deferred,
//! hold, in Postfix's attribute protocol ([`proto`]); the client sends nothing.
//!
//! For each complete queue file (mode 0700, mail_open_ok's MAIL_QUEUE_STAT_READY; files
//! still being written are skipped): queue, id, arrival time, content size, the
//! `postsuper -e` mark (MAIL_QUEUE_STAT_EXPIRE, the group execute bit), the sender
//! (quote_822_local, printable; `<>` shown as `empty_address_recipient`), then the
//! recipients not yet done. Postfix takes the deferred recipients and their reasons from
//! the defer log first and then the queue file's other recipients with no reason; Tern
//! keeps both in the queue file's status records, so the recipients whose last status is
//! deferred come first, with its diagnostic as the reason, then those never tried.
//! Recipients already delivered or bounced are not shown.
//!
//! [`list`] is the same listing without a socket: `postqueue` run by root reads the queue
//! itself when the daemon is down (Postfix runs `showq -S` in stand-alone mode then).
//!
//! Security: no input is read from the client. Queue files are the system's own but may
//! be half-written or damaged: a file that does not read is skipped with a warning. Each
//! connection runs on a blocking thread with a write timeout, and at most the service's
//! process limit of them at once; a client that stops reading is dropped.

pub mod proto;

use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tern_config::config::Config;
use tern_maillog::{Ident, Line, Logger};
use tern_message::address::quote_822_local;
use tern_queue::{DeliveryStatus, QueueFile, QueueLayout, QueueName};

use crate::master::DaemonError;
use proto::{Message, RecipientLine};

/// showq.c's order of queues.
pub const QUEUES: [QueueName; 5] = [
    QueueName::Maildrop,
    QueueName::Active,
    QueueName::Incoming,
    QueueName::Deferred,
    QueueName::Hold,
];

/// How long one write to a client may block (Postfix's ipc_timeout is an hour; a
/// listing is written in small pieces, so a minute per piece is generous).
const WRITE_TIMEOUT: Duration = Duration::from_mins(1);

/// MAIL_QUEUE_STAT_EXPIRE (S_IXGRP): set by `postsuper -e`.
const STAT_EXPIRE: u32 = 0o010;

/// The master.cf process limit used when the column says `-` and default_process_limit
/// does not parse.
const DEFAULT_LIMIT: usize = 100;

/// What the listing needs from main.cf.
#[derive(Debug, Clone)]
pub struct ListSettings {
    /// empty_address_recipient: what the null sender is shown as.
    pub empty_address_recipient: String,
}

impl ListSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            empty_address_recipient: config
                .expanded("empty_address_recipient")
                .ok()
                .flatten()
                .unwrap_or_else(|| "MAILER-DAEMON".to_owned()),
        }
    }
}

/// The bound showq sockets, not yet served.
pub struct Bound {
    sockets: Vec<(PathBuf, UnixListener, usize)>,
    settings: ListSettings,
    layout: QueueLayout,
    ident: Ident,
}

/// Binds `public/<name>` for each `unix` service of master.cf whose command is `showq`
/// (none: `Ok(None)`). Called as mail_owner, the owner of `public/`: the socket is then
/// mail_owner's, its group the directory's (setgid_group, by the directory's set-gid
/// bit), and its mode 0666, as Postfix's master makes public sockets. A socket left by
/// an earlier run is replaced.
pub fn bind(config: &Config, layout: &QueueLayout) -> Result<Option<Bound>, DaemonError> {
    let default_limit = config
        .expanded("default_process_limit")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_LIMIT);
    let mut sockets = Vec::new();
    for svc in &config.master.services {
        if svc.kind != "unix" || svc.command.rsplit('/').next() != Some("showq") {
            continue;
        }
        let path = layout.dir(QueueName::Public).join(&svc.name);
        let io = |what, source| DaemonError::Io {
            what,
            path: path.clone(),
            source,
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io("remove", e)),
            _ => {}
        }
        let listener = UnixListener::bind(&path).map_err(|e| io("bind", e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| io("chmod", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io("listen", e))?;
        // maxproc 0 means no limit in master.cf.
        let limit = match svc.maxproc.parse::<usize>() {
            Ok(0) => usize::MAX >> 4,
            Ok(n) => n,
            Err(_) => default_limit,
        };
        sockets.push((path, listener, limit.max(1)));
    }
    if sockets.is_empty() {
        return Ok(None);
    }
    let syslog_name = config
        .expanded("syslog_name")
        .ok()
        .flatten()
        .unwrap_or_else(|| "postfix".to_owned());
    Ok(Some(Bound {
        sockets,
        settings: ListSettings::from_config(config),
        layout: layout.clone(),
        ident: Ident::new(&syslog_name, "showq"),
    }))
}

/// Serves the bound sockets on `runtime` until it shuts down.
pub fn start(bound: Bound, runtime: &tokio::runtime::Handle, logger: &Arc<Logger>) {
    let _guard = runtime.enter();
    let settings = Arc::new(bound.settings);
    for (path, listener, limit) in bound.sockets {
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                logger.log(
                    &bound.ident,
                    &Line::warning(format!("listen {}: {e}", path.display())),
                );
                continue;
            }
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(limit));
        let (settings, layout, logger, ident) = (
            Arc::clone(&settings),
            bound.layout.clone(),
            Arc::clone(logger),
            bound.ident.clone(),
        );
        runtime.spawn(async move {
            loop {
                // A slot first: past the process limit, clients wait in the backlog.
                let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        logger.log(&ident, &Line::warning(format!("accept: {e}")));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (settings, layout, logger, ident) = (
                    Arc::clone(&settings),
                    layout.clone(),
                    Arc::clone(&logger),
                    ident.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    serve(stream, &layout, &settings, &logger, &ident);
                });
            }
        });
    }
}

/// One client: the whole listing, then close.
fn serve(
    stream: tokio::net::UnixStream,
    layout: &QueueLayout,
    settings: &ListSettings,
    logger: &Logger,
    ident: &Ident,
) {
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let prepared: io::Result<UnixStream> = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
        .map(|()| stream);
    let Ok(mut stream) = prepared else {
        return;
    };
    let mut buf = Vec::with_capacity(8192);
    proto::encode_greeting(&mut buf);
    let warn = |text: String| logger.log(ident, &Line::warning(text));
    let result = list(layout, settings, &warn, |entry| {
        entry.encode(&mut buf);
        // One write per few kilobytes, as Postfix's VSTREAM buffers.
        if buf.len() >= 4096 {
            stream.write_all(&buf)?;
            buf.clear();
        }
        Ok(())
    })
    .and_then(|()| {
        proto::encode_end(&mut buf);
        stream.write_all(&buf)
    });
    // A client that went away (EPIPE) is normal: `mailq | head`.
    if let Err(e) = result
        && !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        )
    {
        warn(format!("write to client: {e}"));
    }
}

/// One message of the listing with its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub message: Message,
    pub recipients: Vec<RecipientLine>,
}

impl Entry {
    /// The entry in the wire format, terminator included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        proto::encode_message(out, &self.message);
        for r in &self.recipients {
            proto::encode_recipient(out, r);
        }
        proto::encode_end(out);
    }
}

/// Walks the queues in showq's order and hands each message to `each`; an error of
/// `each` (a client gone) stops the walk. Files that cannot be read are reported to
/// `warn` and skipped; a file that went away between the directory scan and the open
/// (delivered, moved) is skipped silently.
pub fn list(
    layout: &QueueLayout,
    settings: &ListSettings,
    warn: &dyn Fn(String),
    mut each: impl FnMut(&Entry) -> io::Result<()>,
) -> io::Result<()> {
    for q in QUEUES {
        let listing = match tern_queue::scan(layout, q) {
            Ok(l) => l,
            Err(e) => {
                warn(format!("{e}"));
                continue;
            }
        };
        for e in listing.entries {
            let meta = match std::fs::symlink_metadata(&e.path) {
                Ok(m) => m,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    warn(format!("{}: {err}", e.path.display()));
                    continue;
                }
            };
            // A maildrop file is Tern's own format, finished at mode 0444.
            if q == QueueName::Maildrop {
                if meta.is_file()
                    && meta.mode() & 0o777 == tern_queue::maildrop::READY_MODE
                    && let Some(entry) = maildrop_entry(&e.path, e.id.as_str(), &meta, settings)
                {
                    each(&entry)?;
                }
                continue;
            }
            // mail_open_ok: a regular file whose owner bits are rwx (complete).
            if !meta.is_file() || meta.mode() & 0o700 != 0o700 {
                continue;
            }
            let qf = match QueueFile::open(&e.path) {
                Ok(qf) => qf,
                Err(tern_queue::Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Err(err) => {
                    warn(format!("{} {}: {err}", q.as_str(), e.id));
                    continue;
                }
            };
            let mtime = meta.mtime();
            let entry = entry_of(
                q,
                e.id.as_str(),
                &qf,
                mtime,
                meta.mode() & STAT_EXPIRE != 0,
                settings,
            );
            each(&entry)?;
        }
    }
    Ok(())
}

/// The listing entry of one queue file (pure: tested below).
pub fn entry_of(
    q: QueueName,
    id: &str,
    qf: &QueueFile,
    mtime: i64,
    forced_expire: bool,
    settings: &ListSettings,
) -> Entry {
    let env = &qf.envelope;
    let sender = if env.sender.is_empty() {
        settings.empty_address_recipient.as_str()
    } else {
        env.sender.as_str()
    };
    let arrival = i64::try_from(env.arrival.sec).unwrap_or(0);
    let message = Message {
        queue_name: q.as_str().to_owned(),
        queue_id: id.to_owned(),
        arrival_time: if arrival > 0 { arrival } else { mtime },
        message_size: qf.content_len,
        forced_expire,
        sender: shown(sender),
    };
    let deferred = env
        .recipients
        .iter()
        .filter(|r| r.status() == DeliveryStatus::Deferred)
        .map(|r| RecipientLine {
            address: shown(&r.address),
            reason: bounded(r.last.as_ref().map_or("", |s| s.diagnostic.as_str())),
        });
    let untried = env
        .recipients
        .iter()
        .filter(|r| r.status() == DeliveryStatus::Pending)
        .map(|r| RecipientLine {
            address: shown(if r.address.is_empty() {
                &settings.empty_address_recipient
            } else {
                &r.address
            }),
            reason: String::new(),
        });
    Entry {
        message,
        recipients: deferred.chain(untried).collect(),
    }
}

/// The listing entry of a maildrop file: its sender and recipients (none tried yet),
/// the file's time as the arrival, the content's size; `None` when it does not parse.
fn maildrop_entry(
    path: &std::path::Path,
    id: &str,
    meta: &std::fs::Metadata,
    settings: &ListSettings,
) -> Option<Entry> {
    let file = std::fs::File::open(path).ok()?;
    let mut input = io::BufReader::new(file);
    let env = tern_queue::maildrop::Envelope::read(&mut input).ok()?;
    let header = io::Seek::stream_position(&mut input).ok()?;
    let sender = if env.sender.is_empty() {
        settings.empty_address_recipient.as_str()
    } else {
        env.sender.as_str()
    };
    Some(Entry {
        message: Message {
            queue_name: QueueName::Maildrop.as_str().to_owned(),
            queue_id: id.to_owned(),
            arrival_time: meta.mtime(),
            message_size: meta.len().saturating_sub(header),
            forced_expire: false,
            sender: shown(sender),
        },
        recipients: env
            .recipients
            .iter()
            .map(|r| RecipientLine {
                address: shown(r),
                reason: String::new(),
            })
            .collect(),
    })
}

/// An address as showq sends it: quote_822_local, then printable (UTF-8 kept).
fn shown(addr: &str) -> String {
    bounded(&tern_config::text::printable_utf8(
        quote_822_local(addr).as_bytes(),
    ))
}

/// A value cut to what a client accepts ([`proto::MAX_STRING`]), and made printable.
fn bounded(s: &str) -> String {
    let s = tern_config::text::printable_utf8(s.as_bytes());
    if s.len() < proto::MAX_STRING {
        return s;
    }
    let mut end = proto::MAX_STRING - 1;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_queue::{Envelope, Recipient, StatusUpdate, Timestamp};

    fn file(sender: &str, rcpts: &[(&str, Option<(DeliveryStatus, &str)>)]) -> QueueFile {
        let recipients = rcpts
            .iter()
            .enumerate()
            .map(|(i, (a, st))| Recipient {
                last: st.map(|(status, why)| StatusUpdate {
                    recipient: u32::try_from(i).expect("few"),
                    status,
                    time: 1,
                    dsn: "4.4.1".into(),
                    diagnostic: why.into(),
                }),
                ..Recipient::new(*a)
            })
            .collect();
        QueueFile {
            envelope: Envelope {
                arrival: Timestamp {
                    sec: 1_700_000_000,
                    usec: 0,
                },
                sender: sender.into(),
                recipients,
                ..Envelope::default()
            },
            content_len: 1234,
            segments: Vec::new(),
            end_offset: 0,
            valid_len: 0,
            torn_tail: None,
        }
    }

    fn settings() -> ListSettings {
        ListSettings {
            empty_address_recipient: "MAILER-DAEMON".into(),
        }
    }

    #[test]
    fn recipients_done_are_left_out_and_deferred_come_first() {
        use DeliveryStatus::{Bounced, Deferred, Sent};
        let qf = file(
            "",
            &[
                ("new@example.com", None),
                ("sent@example.com", Some((Sent, "250 ok"))),
                (
                    "late@example.com",
                    Some((Deferred, "connect to x: Connection refused")),
                ),
                ("gone@example.com", Some((Bounced, "550 no"))),
                ("first last@example.com", None),
            ],
        );
        let e = entry_of(QueueName::Deferred, "ABC", &qf, 5, false, &settings());
        assert_eq!(e.message.sender, "MAILER-DAEMON");
        assert_eq!(e.message.arrival_time, 1_700_000_000);
        assert_eq!(e.message.message_size, 1234);
        let got: Vec<(&str, &str)> = e
            .recipients
            .iter()
            .map(|r| (r.address.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("late@example.com", "connect to x: Connection refused"),
                ("new@example.com", ""),
                ("\"first last\"@example.com", ""),
            ]
        );
    }

    #[test]
    fn long_values_are_cut_for_the_client() {
        let long = "x".repeat(proto::MAX_STRING + 10);
        assert_eq!(bounded(&long).len(), proto::MAX_STRING - 1);
        assert_eq!(bounded("a\nb"), "a?b");
    }

    #[test]
    fn listing_of_an_empty_queue_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = QueueLayout::new(dir.path());
        let mut n = 0;
        list(&layout, &settings(), &|w| panic!("{w}"), |_| {
            n += 1;
            Ok(())
        })
        .expect("lists");
        assert_eq!(n, 0);
    }
}
