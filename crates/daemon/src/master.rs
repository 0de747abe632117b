//! The master: start-up, the listeners, signals and the pid file.
//!
//! Start-up, in this order: read main.cf and master.cf; take the lock on
//! `$queue_directory/pid/master.pid` (another running instance holds it: Postfix's
//! `master -t` test); create the queue directories with postfix-files' owners and modes
//! and the data directory; open the mail log; recover the queue (tern_queue::recover:
//! temporary files of unfinished messages removed, damaged files moved to corrupt/);
//! bind every listener; start the delivery helper's supervisor (`tern-delivery`, which
//! keeps root: [`crate::agents`]) when master.cf has a qmgr and a local, virtual or pipe
//! service; then, when started by root, drop to mail_owner (setgid, then setuid) before
//! any byte is read from the network; then write the pid into the locked
//! file (so a pid in a locked file means "accepting mail") and serve.
//!
//! Signals (the daemon's side of `postfix stop`, `abort`, `reload`):
//! - SIGHUP (`postfix reload`): read main.cf and master.cf again, as Postfix's master
//!   does: a new `inet` service starts listening, a removed one stops accepting (its open
//!   sessions finish), a changed address is a removal plus an addition, and new sessions
//!   of every service get its new settings and process limit while open sessions keep
//!   theirs; an unchanged address keeps its socket ([`listeners`]). Two limits, logged
//!   when met: a port below 1024 cannot be added once the daemon has dropped root (the
//!   reload keeps the old listeners and says `stop and start Postfix`), and, as in
//!   Postfix, a changed inet_interfaces is ignored until a restart.
//! - SIGTERM, SIGINT: graceful stop: stop accepting, let open sessions finish for up to
//!   [`STOP_GRACE`], then exit. No message is lost: the 250 is sent only after the
//!   commit, and a message whose commit had not finished was not acknowledged.
//! - SIGQUIT: abort: exit at once (the same guarantee holds).
//!
//! Security: root privileges are used for binding, for the directories' owners and for
//! starting the delivery helper (a separate single-threaded process that the daemon
//! talks to over a socket) only; they are given up for good before the first byte is read (Postfix's master keeps them
//! to bind again on reload; Tern does not, hence the first limit above).

mod listeners;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Group, Uid, User};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use tern_config::config::{Config, ConfigError};
use tern_maillog::{Ident, Line, LogConfig, Logger, MaillogError};
use tern_queue::{Committer, Owners, QueueName, RecoveryEvent, ReplayEvent};

use crate::settings::{self, DaemonSettings, SettingsError};
use crate::smtpd::Shared;

use listeners::Listeners;

/// How long a graceful stop waits for open sessions.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The pid file, relative to queue_directory.
pub const PID_FILE: &str = "pid/master.pid";

/// How the daemon is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration directory (absolute).
    pub config_dir: PathBuf,
    /// Started in the background by `postfix start`: once up, let go of the standard
    /// error stream inherited from the starting command (later messages go to the mail
    /// log), so that a caller reading its output (`postfix start 2>&1 | cat`) sees it end.
    pub detach: bool,
}

/// Why the daemon cannot run; `Display` is the text after `fatal: `.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Queue(#[from] tern_queue::Error),
    #[error("{0}")]
    Log(#[from] MaillogError),
    #[error("{0}")]
    Qmgr(#[from] crate::qmgr::QmgrError),
    #[error("the Postfix mail system is already running")]
    AlreadyRunning,
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// inet_listen.c's text.
    #[error("bind {} port {}: {}", .addr.ip(), .addr.port(), listeners::strerror(.source))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("file {dir}/main.cf: parameter mail_owner: unknown user name value: {name}")]
    NoMailOwner { dir: String, name: String },
    #[error("cannot drop privileges to {name}: {source}")]
    Privileges { name: String, source: nix::Error },
}

/// Loads the configuration the daemon uses (config_directory recorded as given).
pub fn load_config(dir: &Path) -> Result<Config, ConfigError> {
    let mut config = Config::load(dir)?;
    config.set("config_directory", &dir.display().to_string());
    Ok(config)
}

/// Runs the mail system in the foreground until a stop signal.
pub fn run(opts: &Options) -> Result<(), DaemonError> {
    let config = load_config(&opts.config_dir)?;
    let s = settings::load(&config)?;
    let owner = if Uid::current().is_root() {
        Some(mail_owner(&s)?)
    } else {
        None
    };
    make_dir(s.layout.root())?;
    let pid_path = s.queue_directory.join(PID_FILE);
    make_dir(&s.queue_directory.join("pid"))?;
    let mut pid_lock = lock_pid_file(&pid_path)?;
    s.layout.create(owner.as_ref().map(|u| {
        Owners {
            root_uid: 0,
            mail_owner_uid: u.uid.as_raw(),
            setgid_gid: Group::from_name("postdrop")
                .ok()
                .flatten()
                .map_or(u.gid.as_raw(), |g| g.gid.as_raw()),
        }
    }))?;
    make_dir(&s.data_directory)?;
    if let Some(u) = &owner {
        nix::unistd::chown(&s.data_directory, Some(u.uid), Some(u.gid)).map_err(|e| {
            DaemonError::Io {
                what: "chown",
                path: s.data_directory.clone(),
                source: e.into(),
            }
        })?;
    }
    let logger = Arc::new(Logger::open(&LogConfig {
        maillog_file: &s.maillog_file,
        maillog_file_prefixes: &s.maillog_file_prefixes,
        syslog_facility: &s.syslog_facility,
        myhostname: &s.myhostname,
        config_directory: &s.config_directory.display().to_string(),
    })?);
    let master_ident = Ident::new(&s.syslog_name, "master");
    crate::relay::attach_logger(Arc::clone(&logger), Ident::new(&s.syslog_name, "smtpd"));
    let mut bound = BTreeMap::new();
    for addr in s.listeners.iter().flat_map(|l| &l.addrs) {
        // A second service on one address fails here, "Address already in use".
        let sock = listeners::bind(*addr).map_err(|source| DaemonError::Bind {
            addr: *addr,
            source,
        })?;
        bound.insert(*addr, sock);
    }
    // The delivery helper keeps the ids the daemon has now (root, when started by root):
    // it must start before the drop. Without it, local/virtual/pipe mail waits.
    let helper = if crate::qmgr::enabled(&config) && crate::agents::wanted(&config) {
        match crate::agents::Helper::start(&opts.config_dir, opts.detach) {
            Ok(h) => Some(Arc::new(h)),
            Err(e) => {
                logger.log(
                    &master_ident,
                    &Line::warning(format!("cannot start the delivery helper: {e}")),
                );
                None
            }
        }
    } else {
        None
    };
    if let Some(u) = &owner {
        drop_privileges(u)?;
    }
    // Recovery runs as mail_owner, the owner of the queues: what it writes back is
    // theirs. The journal first: it may restore files that recovery then checks.
    for event in tern_queue::replay(&s.layout)? {
        logger.log(&master_ident, &replay_line(&event));
    }
    for event in tern_queue::recover(&s.layout, &QueueName::MESSAGE_QUEUES)? {
        logger.log(&master_ident, &recovery_line(&event));
    }
    // showq(8) (crate::showq): public/showq is bound as mail_owner, who owns public/.
    let showq = crate::showq::bind(&config, &s.layout)?;
    let pid = std::process::id();
    let write = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{pid:>10}")?;
        f.sync_all()
    };
    write(&mut pid_lock).map_err(|source| DaemonError::Io {
        what: "write",
        path: pid_path.clone(),
        source,
    })?;
    if opts.detach {
        detach_stderr();
    }
    logger.log(
        &master_ident,
        &tern_maillog::master::daemon_started(
            &s.mail_version,
            &s.config_directory.display().to_string(),
        ),
    );
    let committer = Arc::new(Committer::start_journaled(&s.layout)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(session_threads())
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Io {
            what: "start runtime",
            path: opts.config_dir.clone(),
            source,
        })?;
    // The queue manager starts after recovery, when master.cf has a qmgr service (as
    // Postfix's master runs one only then), on a runtime of its own: one thread, which
    // the kernel schedules beside the sessions' threads. On the sessions' runtime its
    // every step waited behind the sessions' (with 20 SMTP sessions busy, one user's
    // Maildir deliveries ran at half their speed: each delivery's end waited its turn).
    let qmgr_runtime = if crate::qmgr::enabled(&config) {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("qmgr")
                .enable_all()
                .build()
                .map_err(|source| DaemonError::Io {
                    what: "start runtime",
                    path: opts.config_dir.clone(),
                    source,
                })?,
        )
    } else {
        None
    };
    let qmgr = match &qmgr_runtime {
        Some(rt) => {
            let _guard = rt.enter();
            Some(crate::qmgr::start(
                &config,
                s.layout.clone(),
                Arc::clone(&logger),
                Arc::clone(&committer),
                helper.as_ref(),
            )?)
        }
        None => None,
    };
    if let Some(bound) = showq {
        crate::showq::start(bound, runtime.handle(), &logger);
    }
    let shared = Arc::new(Shared {
        logger: Arc::clone(&logger),
        committer,
        layout: s.layout.clone(),
        id_form: s.id_form,
        cleanup_ident: Ident::new(&s.syslog_name, "cleanup"),
        qmgr,
    });
    // The sockets local commands use (public/qmgr, public/pickup) and pickup.
    if let Some(q) = &shared.qmgr {
        let _guard = runtime.enter();
        crate::public::start(&config, &s.layout, q, &logger, &master_ident);
    }
    let result = runtime.block_on(serve(opts, s, bound, shared, master_ident, helper));
    runtime.shutdown_timeout(Duration::from_secs(5));
    if let Some(rt) = qmgr_runtime {
        rt.shutdown_timeout(Duration::from_secs(5));
    }
    logger.flush();
    // The lock goes with the process; the file stays, as Postfix leaves it.
    drop(pid_lock);
    result
}

async fn serve(
    opts: &Options,
    s: DaemonSettings,
    bound: BTreeMap<SocketAddr, std::net::TcpListener>,
    shared: Arc<Shared>,
    ident: Ident,
    helper: Option<Arc<crate::agents::Helper>>,
) -> Result<(), DaemonError> {
    let io = |what, source| DaemonError::Io {
        what,
        path: opts.config_dir.clone(),
        source,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(|e| io("signal", e))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| io("signal", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| io("signal", e))?;
    let mut quit = signal(SignalKind::quit()).map_err(|e| io("signal", e))?;
    let (track_tx, mut track_rx) = mpsc::channel::<()>(1);
    let mut listeners = Listeners::start(&s.listeners, bound, Arc::clone(&shared), track_tx)
        .map_err(|e| io("listen", e))?;
    let signo = loop {
        tokio::select! {
            _ = hup.recv() => {
                reload(opts, &s, &mut listeners, &shared.logger, &ident).await;
                // New delivery workers read the new main.cf and master.cf.
                if let Some(h) = &helper {
                    h.reload();
                }
            }
            _ = term.recv() => break 15,
            _ = int.recv() => break 2,
            _ = quit.recv() => {
                shared.logger.log(&ident, &tern_maillog::master::terminating(3));
                return Ok(());
            }
        }
    };
    shared
        .logger
        .log(&ident, &tern_maillog::master::terminating(signo));
    listeners.close_all().await;
    drop(listeners);
    // recv() returns None once every session has ended.
    let _ = tokio::time::timeout(STOP_GRACE, track_rx.recv()).await;
    Ok(())
}

/// SIGHUP: see the module documentation. `started` holds the settings of start-up (the
/// inet_interfaces that stays in force until a restart).
async fn reload(
    opts: &Options,
    started: &DaemonSettings,
    listeners: &mut Listeners,
    logger: &Logger,
    ident: &Ident,
) {
    let loaded = load_config(&opts.config_dir)
        .map_err(DaemonError::from)
        .and_then(|mut c| {
            let s = settings::load(&c)?;
            // master_watch.c: these keep their start-up values until a restart.
            let mut changed = false;
            for ((name, old), (_, new)) in started.watched.iter().zip(&s.watched) {
                if old != new {
                    for text in [
                        format!("ignoring {name} parameter value change"),
                        format!("old value: \"{old}\", new value: \"{new}\""),
                        format!("to change {name}, stop and start Postfix"),
                    ] {
                        logger.log(ident, &Line::warning(text));
                    }
                    c.set(name, old);
                    changed = true;
                }
            }
            let s = if changed { settings::load(&c)? } else { s };
            if s.inet_interfaces == started.inet_interfaces {
                return Ok(s);
            }
            // master_ent.c: listeners inherited by child processes cannot be moved, so
            // Postfix ignores the change, once per inet service, until a restart.
            for svc in c.master.services.iter().filter(|v| v.kind == "inet") {
                logger.log(
                    ident,
                    &Line::warning(format!(
                        "service {}: ignoring inet_interfaces change",
                        svc.name
                    )),
                );
                logger.log(
                    ident,
                    &Line::warning("to change inet_interfaces, stop and start Postfix"),
                );
            }
            c.set("inet_interfaces", &started.inet_interfaces);
            Ok(settings::load(&c)?)
        });
    let s = match loaded {
        Ok(s) => s,
        Err(e) => {
            // Keep running with the old settings, as master does on a bad reload.
            logger.log(ident, &Line::warning(format!("reload failed: {e}")));
            return;
        }
    };
    let failures = listeners.reload(&s.listeners).await;
    for line in listeners::failure_lines(&failures, Uid::effective().is_root()) {
        logger.log(ident, &line);
    }
    logger.log(
        ident,
        &tern_maillog::master::reload(&s.mail_version, &s.config_directory.display().to_string()),
    );
}

/// Points standard error at /dev/null (best effort: a failure keeps the old stream).
/// The runtime's worker threads: one per core but one. The sessions are light on CPU
/// and heavy on system calls; the core left over is for the threads outside the runtime
/// (the queue commit with its fdatasyncs, the journal's segment maker) and the delivery
/// agents. Measured on 2 cores (docs/BENCHMARKS.md): one worker accepts ~8% more mail
/// than two, with ~10% less CPU per message (fewer wake-ups across threads).
fn session_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

fn detach_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 2);
    }
}

fn replay_line(e: &ReplayEvent) -> Line {
    match e {
        ReplayEvent::Restored { id, path } => Line::warning(format!(
            "queue recovery: {id}: restored {} from the commit journal",
            path.display()
        )),
        ReplayEvent::Repaired { id, path } => Line::warning(format!(
            "queue recovery: {id}: rewrote incomplete {} from the commit journal",
            path.display()
        )),
        ReplayEvent::BadSegment { path } => Line::warning(format!(
            "queue recovery: removed unfinished journal segment {}",
            path.display()
        )),
        ReplayEvent::Replayed { segments, records } => Line::warning(format!(
            "queue recovery: replayed {segments} journal segment(s), {records} record(s)"
        )),
    }
}

fn recovery_line(e: &RecoveryEvent) -> Line {
    Line::warning(match e {
        RecoveryEvent::RemovedTemporary { path } => {
            format!("queue recovery: removed unfinished file {}", path.display())
        }
        RecoveryEvent::MovedToCorrupt { id, to, reason, .. } => {
            format!("queue recovery: {id}: moved to {}: {reason}", to.display())
        }
        RecoveryEvent::CutTornTail { id, .. } => {
            format!("queue recovery: {id}: cut a torn status record")
        }
        RecoveryEvent::Unknown { path } => {
            format!(
                "queue recovery: unknown file {} left in place",
                path.display()
            )
        }
    })
}

fn mail_owner(s: &DaemonSettings) -> Result<User, DaemonError> {
    User::from_name(&s.mail_owner)
        .ok()
        .flatten()
        .ok_or_else(|| DaemonError::NoMailOwner {
            dir: s.config_directory.display().to_string(),
            name: s.mail_owner.clone(),
        })
}

/// setgroups, setgid, setuid: in that order, so that no group of root's is kept.
fn drop_privileges(u: &User) -> Result<(), DaemonError> {
    let err = |source| DaemonError::Privileges {
        name: u.name.clone(),
        source,
    };
    nix::unistd::setgroups(&[u.gid]).map_err(err)?;
    nix::unistd::setgid(u.gid).map_err(err)?;
    nix::unistd::setuid(u.uid).map_err(err)?;
    // Paranoia, as Postfix's set_ugid(): regaining root must fail now.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || Gid::current() != u.gid {
        return Err(err(nix::Error::EPERM));
    }
    Ok(())
}

fn make_dir(p: &Path) -> Result<(), DaemonError> {
    std::fs::create_dir_all(p).map_err(|source| DaemonError::Io {
        what: "create directory",
        path: p.to_path_buf(),
        source,
    })
}

/// Opens and locks the pid file; a lock held elsewhere means a running instance.
fn lock_pid_file(path: &Path) -> Result<Flock<File>, DaemonError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|source| DaemonError::Io {
            what: "open",
            path: path.to_path_buf(),
            source,
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| DaemonError::AlreadyRunning)
}
