//! flush(8), the fast flush service: per-destination logs of deferred mail for the
//! domains in fast_flush_domains (default `$relay_domains`), and delivery on request of
//! what a destination has waiting: SMTP `ETRN domain`, `postqueue -s site` (`sendmail
//! -qRsite`), `postqueue -i queue_id` (`sendmail -qIid`).
//!
//! As Postfix's flush.c: a log is `$queue_directory/flush/NAME`, NAME the destination
//! with every character but letters and digits made `_`, lower case; it holds one queue
//! id per line, appended when the queue manager defers a recipient of that domain
//! (`add`); `send_site` moves each listed message that is still in deferred/ to
//! incoming/ (with the time stamp of now) and tells the queue manager, then empties the
//! log; `send_file` does that for one message. The answers are Postfix's FLUSH_STAT_*
//! codes: 0 done, 3 bad request, 4 not eligible (the domain is not in
//! fast_flush_domains), -1 failure.
//!
//! The `public/flush` socket speaks Postfix's attribute protocol (flush_clnt.c): the
//! server greets with `protocol=queue_flush_protocol`, the client sends `request=...`
//! and its attributes, the server answers `status=N`.
//!
//! # Security
//! Runs as mail_owner. A request comes from a local command (public/ is reachable by
//! the set-gid group only) or from ETRN (a domain the session machine checked); the
//! log name is made of letters, digits and `_` only, queue ids are checked as Postfix's
//! mail_queue_id_ok before any path is made of them, a log is read line by line with a
//! cap on ids, and every socket read is bounded in size and time.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use tern_queue::{QueueId, QueueLayout, QueueName};

use crate::etrn::{Answer, FastFlush};

/// Postfix's FLUSH_STAT_* codes.
pub const FLUSH_STAT_FAIL: i64 = -1;
pub const FLUSH_STAT_OK: i64 = 0;
pub const FLUSH_STAT_BAD: i64 = 3;
pub const FLUSH_STAT_DENY: i64 = 4;

/// The most queue ids taken from one log (duplicates dropped).
const MAX_IDS: usize = 100_000;
/// The most bytes of one attribute name or value read from a client.
const MAX_ATTR: usize = 1024;
/// How long one request may take on the socket.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The service: fast_flush_domains, the queue, and how to tell the queue manager of a
/// message moved into incoming/.
pub struct FlushService {
    domains: FastFlush,
    layout: QueueLayout,
    new_mail: Arc<dyn Fn(&QueueId) + Send + Sync>,
}

impl FlushService {
    pub fn new(
        domains: FastFlush,
        layout: QueueLayout,
        new_mail: Arc<dyn Fn(&QueueId) + Send + Sync>,
    ) -> Self {
        Self {
            domains,
            layout,
            new_mail,
        }
    }

    /// flush_add(): notes that message `id` waits for `site`, when `site` is eligible.
    pub fn add(&self, site: &str, id: &QueueId) -> i64 {
        if self.domains.answer(site) != Answer::Unavailable {
            return FLUSH_STAT_DENY;
        }
        let Some(path) = self.log_path(site) else {
            return FLUSH_STAT_DENY;
        };
        let appended = (|| -> io::Result<()> {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode_0600()
                .open(&path)?;
            let mut locked =
                Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
            writeln!(locked, "{}", id.as_str())
        })();
        match appended {
            Ok(()) => FLUSH_STAT_OK,
            Err(_) => FLUSH_STAT_FAIL,
        }
    }

    /// flush_send_site(): every message the site's log names goes to incoming/.
    pub fn send_site(&self, site: &str) -> i64 {
        match self.domains.answer(site) {
            Answer::Deny => return FLUSH_STAT_DENY,
            Answer::Unavailable => {}
        }
        let Some(path) = self.log_path(site) else {
            return FLUSH_STAT_DENY;
        };
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            // No log: nothing is queued for the site.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return FLUSH_STAT_OK,
            Err(_) => return FLUSH_STAT_FAIL,
        };
        let Ok(locked) = Flock::lock(file, FlockArg::LockExclusive) else {
            return FLUSH_STAT_FAIL;
        };
        let mut seen = HashSet::new();
        for line in BufReader::new(&*locked).lines() {
            let Ok(line) = line else { break };
            if seen.len() >= MAX_IDS {
                break;
            }
            if let Ok(id) = QueueId::parse(line.trim())
                && seen.insert(id.as_str().to_owned())
            {
                self.requeue(&id);
            }
        }
        if locked.set_len(0).is_err() {
            return FLUSH_STAT_FAIL;
        }
        FLUSH_STAT_OK
    }

    /// flush_send_file(): one message, if it is deferred.
    pub fn send_file(&self, id: &str) -> i64 {
        let Ok(id) = QueueId::parse(id) else {
            return FLUSH_STAT_BAD;
        };
        self.requeue(&id);
        FLUSH_STAT_OK
    }

    /// deferred/ID to incoming/ID with the time stamp of now, and the queue manager
    /// told; a message not in deferred/ (delivered, active, held) is left alone.
    fn requeue(&self, id: &QueueId) {
        let from = self.layout.path(QueueName::Deferred, id);
        if !from.is_file() {
            return;
        }
        let now = nix::sys::time::TimeSpec::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let _ = nix::sys::stat::utimensat(
            None,
            &from,
            &now,
            &now,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        );
        if tern_queue::scan::move_file_unsynced(
            &self.layout,
            id,
            QueueName::Deferred,
            QueueName::Incoming,
        )
        .is_ok()
        {
            (self.new_mail)(id);
        }
    }

    /// flush/NAME for `site` (flush_site_to_path); `None` for an empty name.
    fn log_path(&self, site: &str) -> Option<PathBuf> {
        let name: String = site
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if name.is_empty() || name.len() > 255 {
            return None;
        }
        Some(self.layout.root().join("flush").join(name))
    }

    /// Serves `public/flush`.
    pub fn serve(self: Arc<Self>, listener: UnixListener) {
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let me = Arc::clone(&self);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(IO_TIMEOUT, me.session(conn)).await;
                });
            }
        });
    }

    async fn session(self: Arc<Self>, mut conn: tokio::net::UnixStream) -> io::Result<()> {
        conn.write_all(b"protocol\0queue_flush_protocol\0\0")
            .await?;
        let attrs = read_attrs(&mut conn).await?;
        let get = |name: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let me = Arc::clone(&self);
        let status = match get("request").as_deref() {
            Some("send_site") => match get("site") {
                Some(site) => blocking(move || me.send_site(&site)).await,
                None => FLUSH_STAT_BAD,
            },
            Some("send_file") => match get("queue_id") {
                Some(id) => blocking(move || me.send_file(&id)).await,
                None => FLUSH_STAT_BAD,
            },
            Some("add") => match (get("site"), get("queue_id")) {
                (Some(site), Some(id)) => match QueueId::parse(&id) {
                    Ok(id) => blocking(move || me.add(&site, &id)).await,
                    Err(_) => FLUSH_STAT_BAD,
                },
                _ => FLUSH_STAT_BAD,
            },
            // refresh and purge: Tern's logs are emptied at each send; nothing to do.
            Some("refresh" | "purge") => FLUSH_STAT_OK,
            _ => FLUSH_STAT_BAD,
        };
        conn.write_all(format!("status\0{status}\0\0").as_bytes())
            .await
    }
}

async fn blocking(f: impl FnOnce() -> i64 + Send + 'static) -> i64 {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(FLUSH_STAT_FAIL)
}

/// One attribute list (attr_scan0): NUL-terminated name and value pairs up to an empty
/// name; at most 16 pairs of [`MAX_ATTR`] bytes.
async fn read_attrs(conn: &mut tokio::net::UnixStream) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for _ in 0..16 {
        let name = read_string(conn).await?;
        if name.is_empty() {
            return Ok(out);
        }
        let value = read_string(conn).await?;
        out.push((name, value));
    }
    Err(io::Error::other("too many attributes"))
}

async fn read_string(conn: &mut tokio::net::UnixStream) -> io::Result<String> {
    let mut out = Vec::new();
    loop {
        let b = conn.read_u8().await?;
        if b == 0 {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        if out.len() >= MAX_ATTR {
            return Err(io::Error::other("attribute too long"));
        }
        out.push(b);
    }
}

/// OpenOptions with mode 0600 for new files.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn service(dir: &std::path::Path, domains: &str) -> (FlushService, Arc<Mutex<Vec<String>>>) {
        let layout = QueueLayout::new(dir);
        layout.create(None).unwrap();
        let told = Arc::new(Mutex::new(Vec::new()));
        let t = Arc::clone(&told);
        let f = FastFlush::new(domains, true, &tern_maps::no_warnings()).unwrap();
        (
            FlushService::new(
                f,
                layout,
                Arc::new(move |id: &QueueId| t.lock().unwrap().push(id.as_str().to_owned())),
            ),
            told,
        )
    }

    #[test]
    fn add_then_send_site_moves_deferred_mail() {
        let dir = tempfile::tempdir().unwrap();
        let (s, told) = service(dir.path(), "example.com");
        let id = QueueId::parse("ABCDEF123").unwrap();
        let deferred = s.layout.path(QueueName::Deferred, &id);
        std::fs::create_dir_all(deferred.parent().unwrap()).unwrap();
        std::fs::write(&deferred, "x").unwrap();
        assert_eq!(s.add("Example.COM", &id), FLUSH_STAT_OK);
        assert_eq!(s.add("example.com", &id), FLUSH_STAT_OK);
        assert_eq!(s.add("other.org", &id), FLUSH_STAT_DENY);
        assert!(dir.path().join("flush/example_com").is_file());
        assert_eq!(s.send_site("other.org"), FLUSH_STAT_DENY);
        assert_eq!(s.send_site("example.com"), FLUSH_STAT_OK);
        assert!(!deferred.exists());
        assert!(s.layout.path(QueueName::Incoming, &id).is_file());
        assert_eq!(*told.lock().unwrap(), vec!["ABCDEF123".to_owned()]);
        assert_eq!(
            std::fs::metadata(dir.path().join("flush/example_com"))
                .unwrap()
                .len(),
            0
        );
        // Nothing left: a second send is a no-op.
        assert_eq!(s.send_site("example.com"), FLUSH_STAT_OK);
        assert_eq!(told.lock().unwrap().len(), 1);
    }

    #[test]
    fn send_file_checks_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let (s, told) = service(dir.path(), "");
        assert_eq!(s.send_file("../etc/passwd"), FLUSH_STAT_BAD);
        assert_eq!(s.send_file("ABC123"), FLUSH_STAT_OK);
        assert!(told.lock().unwrap().is_empty());
    }
}
