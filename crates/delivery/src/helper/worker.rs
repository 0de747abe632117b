//! `tern-delivery worker`: serves delivery requests one at a time on its socket
//! (standard input) until the daemon closes it (see the [module doc](super)).
//!
//! Kept across requests: the configuration, the resolver, and per transport the local(8)
//! settings with their open alias_maps and mailbox writers, the virtual(8) tables, the
//! pipe(8) entries; a [`Frame::Reload`] drops them all (the daemon also simply starts
//! new workers after `postfix reload`).
//!
//! Each request goes to the agent of its kind: local(8) ([`crate::local::deliver`] with
//! [`RealMailboxes`]), virtual(8) ([`VirtualAgent`]) or pipe(8) ([`crate::pipe`]). The
//! reply carries one [`Outcome`] per recipient, each with its log lines
//! ([`ExpandedOutcome`], this worker's pid), and the warnings the agent would log. A
//! configuration problem defers the whole request (`4.3.5 mail system configuration
//! error`) with the reason as a warning, as a Postfix agent that fails to start makes
//! qmgr defer.
//!
//! # Security
//! See the [module doc](super): the request's transport must be a master.cf service of
//! the agent's kind, and the queue file is checked ([`check_queue_file`]) before any agent
//! reads it. This process must stay single-threaded ([`crate::privs`]).

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tern_config::config::Config;
use tern_maps::Map;
use tern_message::trace::Timestamp;
use tern_rewrite::Resolver;

use super::HelperError;
use crate::local::message::Message;
use crate::local::real::RealMailboxes;
use crate::local::{self, Env, LocalOutcome, LocalSettings};
use crate::pipe::{self, PipeService};
use crate::privs;
use crate::request::{Agent, Delivered, DeliveryRequest, ExpandedOutcome, Outcome, Reply};
use crate::virtual_agent::{VirtualAgent, VirtualRecipient, VirtualSettings};
use crate::wire::{self, Frame};

/// Runs a worker until its socket closes.
pub fn run(config_dir: &Path) -> Result<(), HelperError> {
    let sock = UnixStream::from(
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(HelperError::io("worker socket"))?,
    );
    privs::assert_single_threaded().map_err(HelperError::io("start"))?;
    crate::mailbox::set_local_offset(tern_maillog::writer::local_utc_offset);
    let mut worker = Worker::new(config_dir);
    let mut input = BufReader::new(&sock);
    loop {
        match wire::read_frame(&mut input) {
            Ok(None) => return Ok(()),
            Err(e) if daemon_gone(&e) => return Ok(()),
            Err(e) => return Err(HelperError::io("worker socket")(e)),
            Ok(Some(Frame::Request(req))) => {
                let reply = worker.serve(&req);
                match wire::write_frame(&mut &sock, &Frame::Reply(reply)) {
                    Ok(()) => {}
                    // The daemon died during the delivery (a crash, `postfix abort`):
                    // the delivery stands, and qmgr repeats it after a restart.
                    Err(e) if daemon_gone(&e) => return Ok(()),
                    Err(e) => return Err(HelperError::io("worker socket")(e)),
                }
            }
            Ok(Some(Frame::Reload)) => worker = Worker::new(config_dir),
            Ok(Some(_)) => return Err(HelperError::Unexpected("worker")),
        }
    }
}

/// Whether a socket error means that the daemon's end is closed: the daemon exited or
/// was killed, which ends the worker as the end of its socket does.
fn daemon_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    )
}

/// A worker's state: the configuration (or why it did not load) and what it opened.
pub struct Worker {
    config: Result<Config, String>,
    resolver: Option<Resolver>,
    local: HashMap<String, LocalState>,
    virtuals: HashMap<String, VirtualAgent>,
    pipes: HashMap<String, PipeService>,
    warnings: Arc<Mutex<Vec<String>>>,
    /// What [`check_queue_file`] needs, found at the first request.
    queue: Option<QueueCheck>,
    /// This process's environment (it never changes it).
    process_env: Vec<(String, String)>,
}

struct LocalState {
    settings: LocalSettings,
    alias_maps: Vec<Box<dyn Map>>,
    mailboxes: RealMailboxes,
    default_privs: (u32, u32),
}

/// The queue directory a request's queue file must lie in, and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCheck {
    /// queue_directory as written (requests name files below it this way).
    pub dir: PathBuf,
    /// Its canonical form (no symlinks), resolved once.
    pub real_dir: PathBuf,
    /// mail_owner's uid when this process runs as root (it then checks that the daemon
    /// wrote the file), else `None`.
    pub owner: Option<u32>,
}

impl QueueCheck {
    /// Resolves `dir` and notes `owner`.
    pub fn new(dir: &Path, owner: Option<u32>) -> Result<QueueCheck, String> {
        let real_dir = dir
            .canonicalize()
            .map_err(|e| format!("queue_directory: {}", crate::mailbox::strerror(&e)))?;
        Ok(QueueCheck {
            dir: dir.to_owned(),
            real_dir,
            owner,
        })
    }
}

impl Worker {
    /// Loads main.cf and master.cf from `config_dir` (an error is kept and reported with
    /// each request).
    pub fn new(config_dir: &Path) -> Worker {
        let config = Config::load(config_dir)
            .map(|mut c| {
                c.set("config_directory", &config_dir.display().to_string());
                c
            })
            .map_err(|e| e.to_string());
        Worker {
            config,
            resolver: None,
            local: HashMap::new(),
            virtuals: HashMap::new(),
            pipes: HashMap::new(),
            warnings: Arc::new(Mutex::new(Vec::new())),
            queue: None,
            process_env: std::env::vars().collect(),
        }
    }

    /// Delivers one request.
    pub fn serve(&mut self, req: &DeliveryRequest) -> Reply {
        let pid = std::process::id();
        let outcomes = match self.check(req) {
            Ok(()) => match req.agent {
                Agent::Local => self.local(req),
                Agent::Virtual => self.virtual_agent(req),
                Agent::Pipe => self.pipe(req),
            },
            Err(why) => Err(why),
        };
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(why) => {
                self.warn(why);
                defer_all(req, "4.3.5", "mail system configuration error")
            }
        };
        let outcomes = outcomes
            .into_iter()
            .map(|o| with_lines(o, req, pid))
            .collect();
        let warnings =
            std::mem::take(&mut *self.warnings.lock().unwrap_or_else(PoisonError::into_inner));
        Reply {
            pid,
            outcomes,
            warnings,
        }
    }

    fn warn(&self, text: String) {
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }

    fn warn_sink(&self) -> tern_maps::Warn {
        let w = Arc::clone(&self.warnings);
        Arc::new(move |t: &str| {
            w.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(t.to_owned());
        })
    }

    fn config(&self) -> Result<&Config, String> {
        self.config.as_ref().map_err(Clone::clone)
    }

    /// The transport is a master.cf service of the request's agent, and the queue file
    /// may be read.
    fn check(&mut self, req: &DeliveryRequest) -> Result<(), String> {
        let config = self.config()?;
        let want = match req.agent {
            Agent::Local => "local",
            Agent::Virtual => "virtual",
            Agent::Pipe => "pipe",
        };
        let found = config
            .master
            .services
            .iter()
            .find(|s| s.name == req.transport && s.kind == "unix")
            .map(|s| s.command.rsplit('/').next().unwrap_or_default().to_owned());
        if found.as_deref() != Some(want) {
            return Err(format!(
                "{}: transport {} is not a master.cf {want} service",
                req.queue_id, req.transport
            ));
        }
        if self.queue.is_none() {
            self.queue = Some(queue_check(config)?);
        }
        let Some(queue) = &self.queue else {
            return Err("queue check state missing".to_owned());
        };
        check_queue_file(&req.queue_file, queue).map_err(|e| {
            format!(
                "{}: queue file {}: {e}",
                req.queue_id,
                req.queue_file.display()
            )
        })
    }

    fn local(&mut self, req: &DeliveryRequest) -> Result<Vec<Outcome>, String> {
        let warn = self.warn_sink();
        let config = self.config.as_ref().map_err(Clone::clone)?;
        if self.resolver.is_none() {
            self.resolver =
                Some(Resolver::from_config(config, warn.clone()).map_err(|e| e.to_string())?);
        }
        if !self.local.contains_key(&req.transport) {
            let settings =
                LocalSettings::from_config(config, &req.transport).map_err(|e| e.to_string())?;
            let alias_maps = local::open_alias_maps(&settings, &warn).map_err(|e| e.to_string())?;
            let mailboxes =
                RealMailboxes::from_config(config, &req.transport).map_err(|e| e.to_string())?;
            // A fatal start-up error in Postfix's local(8): the request is deferred as
            // a configuration error, with the reason as a warning.
            let default_privs = local::default_privs(&settings).map_err(|e| e.to_string())?;
            self.local.insert(
                req.transport.clone(),
                LocalState {
                    settings,
                    alias_maps,
                    mailboxes,
                    default_privs,
                },
            );
        }
        let (Some(resolver), Some(state)) =
            (self.resolver.as_ref(), self.local.get_mut(&req.transport))
        else {
            return Err("local(8) state missing".to_owned());
        };
        let LocalState {
            settings,
            alias_maps,
            mailboxes,
            default_privs,
        } = state;
        let mut env = Env {
            settings,
            resolver,
            mailboxes,
            process_env: self.process_env.clone(),
            default_privs: *default_privs,
            now: now(),
            warn,
        };
        let outs = local::deliver(req, &mut env, alias_maps);
        let mut warnings = mailboxes.take_warnings();
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&mut warnings);
        Ok(outs
            .into_iter()
            .map(|o| local_outcome(o, &req.transport))
            .collect())
    }

    fn virtual_agent(&mut self, req: &DeliveryRequest) -> Result<Vec<Outcome>, String> {
        let config = self.config.as_ref().map_err(Clone::clone)?;
        if !self.virtuals.contains_key(&req.transport) {
            let overrides: HashMap<String, String> = config
                .master
                .services
                .iter()
                .find(|s| s.name == req.transport)
                .map(|s| s.overrides.iter().cloned().collect())
                .unwrap_or_default();
            let settings =
                VirtualSettings::from_config(config, &overrides).map_err(|e| e.to_string())?;
            let agent = VirtualAgent::open(settings).map_err(|e| e.to_string())?;
            self.virtuals.insert(req.transport.clone(), agent);
        }
        let Some(agent) = self.virtuals.get(&req.transport) else {
            return Err("virtual(8) state missing".to_owned());
        };
        let message = match Message::open(&req.queue_file) {
            Ok(m) => m,
            Err(e) => {
                return Ok(defer_all(
                    req,
                    "4.3.0",
                    &format!("cannot read queue file: {e}"),
                ));
            }
        };
        let mut warnings = Vec::new();
        let mut out = Vec::new();
        for r in &req.recipients {
            let result = match message.reader() {
                Ok(mut content) => agent.deliver(
                    VirtualRecipient {
                        address: &r.address,
                        orig_rcpt: &r.orig_rcpt,
                        verify: req.verify,
                    },
                    &req.sender,
                    &mut content,
                    &mut |w: &str| warnings.push(w.to_owned()),
                ),
                Err(e) => Delivered::Deferred {
                    dsn: "4.3.0".into(),
                    text: format!("cannot read queue file: {e}"),
                },
            };
            out.push(Outcome {
                index: r.index,
                result,
                relay: req.transport.clone(),
                expanded: Vec::new(),
            });
        }
        self.warnings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(&mut warnings);
        Ok(out)
    }

    fn pipe(&mut self, req: &DeliveryRequest) -> Result<Vec<Outcome>, String> {
        let config = self.config.as_ref().map_err(Clone::clone)?;
        if !self.pipes.contains_key(&req.transport) {
            let svc =
                PipeService::from_service(config, &req.transport).map_err(|e| e.to_string())?;
            self.pipes.insert(req.transport.clone(), svc);
        }
        let Some(svc) = self.pipes.get(&req.transport) else {
            return Err("pipe(8) state missing".to_owned());
        };
        Ok(pipe::deliver(req, svc, &self.process_env, &now()))
    }
}

/// queue_directory and mail_owner's uid (when this process runs as root), from the
/// configuration.
fn queue_check(config: &Config) -> Result<QueueCheck, String> {
    let queue_dir = config
        .expanded("queue_directory")
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let owner = if privs::privileged() {
        let name = config
            .expanded("mail_owner")
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let user = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .ok_or_else(|| format!("unknown mail_owner user: {name}"))?;
        Some(user.uid.as_raw())
    } else {
        None
    };
    QueueCheck::new(Path::new(&queue_dir), owner)
}

/// Checks that `path` is a queue file this worker may read: inside the queue directory
/// with no `..`, reached without a symlink in any component (the directory's canonical
/// form was resolved once; each component below it is lstat()ed: a directory, then the
/// file), a regular file, and, when an owner is given, owned by that uid (mail_owner:
/// the daemon writes every queue file). A daemon that lost its integrity can name only
/// its own files this way, never a file of root's.
///
/// XXX: the agents open the file again by name afterwards; a daemon that swaps the file
/// in between still meets the owner check only if it owns the new file too.
pub fn check_queue_file(path: &Path, queue: &QueueCheck) -> Result<(), String> {
    // queue_directory itself may be written with `..` (`${config_directory}/../var/...`);
    // the part below it may not.
    let rel = match path.strip_prefix(&queue.dir) {
        Ok(rel)
            if path.is_absolute()
                && rel.components().next().is_some()
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))) =>
        {
            rel
        }
        _ => return Err("not inside queue_directory".to_owned()),
    };
    let mut at = queue.real_dir.clone();
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        at.push(part);
        let st = std::fs::symlink_metadata(&at).map_err(|e| crate::mailbox::strerror(&e))?;
        if st.file_type().is_symlink() {
            return Err("reached through a symbolic link".to_owned());
        }
        if parts.peek().is_some() {
            if !st.is_dir() {
                return Err(crate::mailbox::strerror(&io::Error::from(
                    io::ErrorKind::NotADirectory,
                )));
            }
            continue;
        }
        if !st.is_file() {
            return Err("not a regular file".to_owned());
        }
        if let Some(uid) = queue.owner
            && st.uid() != uid
        {
            return Err(format!("owned by uid {}, not by mail_owner", st.uid()));
        }
    }
    Ok(())
}

/// Every recipient deferred with `dsn` and `text`.
fn defer_all(req: &DeliveryRequest, dsn: &str, text: &str) -> Vec<Outcome> {
    req.recipients
        .iter()
        .map(|r| Outcome {
            index: r.index,
            result: Delivered::Deferred {
                dsn: dsn.to_owned(),
                text: text.to_owned(),
            },
            relay: req.transport.clone(),
            expanded: Vec::new(),
        })
        .collect()
}

/// local(8)'s outcome as the daemon's: one log line per final destination; a
/// destination for mailbox_transport or fallback_transport (deliver_pass) is passed on
/// by the queue manager.
fn local_outcome(o: LocalOutcome, relay: &str) -> Outcome {
    o.into_outcome(relay)
}

/// Every outcome gets its log lines with this worker's pid: the expansion's entries, or
/// one line for the recipient itself.
fn with_lines(mut o: Outcome, req: &DeliveryRequest, pid: u32) -> Outcome {
    if o.expanded.is_empty()
        && !matches!(&o.result, Delivered::Sent { text, .. } if text.is_empty())
        && let Some(r) = req.recipients.iter().find(|r| r.index == o.index)
    {
        o.expanded.push(ExpandedOutcome {
            address: r.address.clone(),
            orig_to: r.orig_rcpt.clone(),
            result: o.result.clone(),
            pid: None,
            notify: None,
        });
    }
    for e in &mut o.expanded {
        e.pid = Some(pid);
    }
    o
}

/// Now, with the local time zone's offset.
fn now() -> Timestamp {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let offset = tern_maillog::writer::local_utc_offset(unix);
    let mut t = Timestamp::utc(unix);
    if offset != 0 {
        t.utc_offset_minutes = offset / 60;
        t.zone = String::new();
    }
    t
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn queue_file_checks() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("spool");
        std::fs::create_dir_all(q.join("active")).unwrap();
        std::fs::write(q.join("active/A1"), "x").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        symlink(dir.path().join("secret"), q.join("active/L1")).unwrap();
        symlink(dir.path(), q.join("link")).unwrap();
        std::fs::create_dir(q.join("active/D1")).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let table: &[(PathBuf, Option<u32>, Option<&str>)] = &[
            (q.join("active/A1"), Some(me), None),
            (q.join("active/A1"), Some(me + 1), Some("not by mail_owner")),
            (q.join("active/../../secret"), None, Some("not inside")),
            (dir.path().join("secret"), None, Some("not inside")),
            (PathBuf::from("spool/active/A1"), None, Some("not inside")),
            (q.join("active/L1"), None, Some("symbolic link")),
            (q.join("link/secret"), None, Some("symbolic link")),
            (q.join("active/D1"), None, Some("not a regular file")),
            (q.join("active/none"), None, Some("No such file")),
            (q.join("active/A1/x"), None, Some("ot a directory")),
            (q.clone(), None, Some("not inside")),
        ];
        // queue_directory as the default configuration writes it, with `..` in it.
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        let dotted = dir.path().join("conf/../spool");
        let dotted_check = QueueCheck::new(&dotted, Some(me)).unwrap();
        assert!(check_queue_file(&dotted.join("active/A1"), &dotted_check).is_ok());
        // A queue_directory reached through a symlink is resolved once, at the start.
        symlink(&q, dir.path().join("spool-link")).unwrap();
        let linked = dir.path().join("spool-link");
        let linked_check = QueueCheck::new(&linked, Some(me)).unwrap();
        assert_eq!(linked_check.real_dir, q.canonicalize().unwrap());
        assert!(check_queue_file(&linked.join("active/A1"), &linked_check).is_ok());
        assert!(QueueCheck::new(&dir.path().join("none"), None).is_err());
        for (path, owner, want) in table {
            let got = check_queue_file(path, &QueueCheck::new(&q, *owner).unwrap());
            match want {
                None => assert!(got.is_ok(), "{path:?}: {got:?}"),
                Some(w) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(w)),
                    "{path:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn local_entries_become_log_lines() {
        use crate::local::{Entry, Final};
        let sent = |text: &str| Delivered::Sent {
            dsn: "2.0.0".into(),
            text: text.into(),
        };
        let entry = |address: &str, orig: &str, result: Final| Entry {
            address: address.into(),
            orig_to: orig.into(),
            result,
            notify: None,
        };
        let req = DeliveryRequest {
            agent: Agent::Local,
            transport: "local".into(),
            nexthop: "x".into(),
            queue_id: "Q".into(),
            queue_file: PathBuf::from("/q/active/Q"),
            sender: String::new(),
            arrival: 0,
            envid: None,
            recipients: vec![crate::request::RequestRecipient {
                index: 0,
                address: "root@x".into(),
                ..Default::default()
            }],
            verify: false,
        };
        // root -> alice, bob: two lines with orig_to, the recipient's summary as result.
        let two = LocalOutcome {
            index: 0,
            result: sent(""),
            entries: vec![
                entry(
                    "alice@x",
                    "root@x",
                    Final::Done(sent("delivered to mailbox")),
                ),
                entry(
                    "bob@x",
                    "root@x",
                    Final::Pass {
                        transport: "lmtp".into(),
                        nexthop: "x".into(),
                    },
                ),
            ],
        };
        let o = with_lines(local_outcome(two, "local"), &req, 77);
        assert_eq!(o.expanded.len(), 2);
        assert_eq!(o.expanded[0].orig_to, "root@x");
        assert_eq!(o.expanded[0].pid, Some(77));
        assert!(matches!(o.result, Delivered::Pass { .. }), "{o:?}");
        // One destination: its result (with its text) is the recipient's.
        let one = LocalOutcome {
            index: 0,
            result: sent(""),
            entries: vec![entry(
                "root@x",
                "",
                Final::Done(sent("delivered to mailbox")),
            )],
        };
        let o = with_lines(local_outcome(one, "local"), &req, 77);
        assert_eq!(o.result, sent("delivered to mailbox"));
        assert_eq!(o.relay, "local");
        // Nothing at all (a duplicate): no line.
        let none = LocalOutcome {
            index: 0,
            result: sent(""),
            entries: vec![],
        };
        let o = with_lines(local_outcome(none, "local"), &req, 77);
        assert!(o.expanded.is_empty());
    }

    #[test]
    fn a_bad_configuration_defers_with_a_warning() {
        let mut w = Worker::new(Path::new("/nonexistent/tern-config"));
        let req = DeliveryRequest {
            agent: Agent::Local,
            transport: "local".into(),
            nexthop: "x".into(),
            queue_id: "Q1".into(),
            queue_file: PathBuf::from("/q/active/Q1"),
            sender: String::new(),
            arrival: 0,
            envid: None,
            recipients: vec![crate::request::RequestRecipient {
                index: 2,
                address: "u@x".into(),
                ..Default::default()
            }],
            verify: false,
        };
        let reply = w.serve(&req);
        assert_eq!(reply.pid, std::process::id());
        assert_eq!(reply.outcomes.len(), 1);
        let o = &reply.outcomes[0];
        assert_eq!(o.index, 2);
        assert!(matches!(&o.result, Delivered::Deferred { dsn, .. } if dsn == "4.3.5"));
        assert_eq!(o.expanded.len(), 1);
        assert_eq!(o.expanded[0].pid, Some(std::process::id()));
        assert_eq!(reply.warnings.len(), 1, "{:?}", reply.warnings);
    }
}
