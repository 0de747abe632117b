//! The daemon's side of the delivery helper: qmgr's [`Transport`]s for the master.cf
//! services whose command is `local`, `virtual` or `pipe`, each a pool of connections to
//! `tern-delivery worker` processes (tern_delivery::helper).
//!
//! [`Helper::start`] runs the supervisor before the daemon drops root (master.rs); later
//! the pools ask it for workers as they need them, up to each service's process limit
//! (master.cf maxproc, `-` = default_process_limit). A worker serves one request at a
//! time and goes back to its pool's idle list; an idle worker that has died (its socket
//! reads end-of-file) is dropped and a new one started. A worker that dies or misbehaves
//! during a request makes the request's recipients defer with `4.3.0 unknown mail
//! transport error` and qmgr's warnings (`private/local socket: premature disconnect`),
//! as Postfix's qmgr does when an agent dies. After `postfix reload` ([`Helper::reload`])
//! no old worker is used again, so the next requests see the new main.cf and master.cf.
//!
//! The worker's reply holds one [`Outcome`] per recipient with its log lines
//! (`Outcome::expanded`, the worker's pid) and the agent's warnings, which are logged here
//! under the service's name (`postfix/local`).
//!
//! # Security
//! Runs as mail_owner. The replies come from root processes that read untrusted mail;
//! they are decoded by tern_delivery::wire (bounded, never panicking), and a malformed
//! one only defers the request.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

use tern_config::config::Config;
use tern_delivery::helper::client::{Control, helper_path};
use tern_delivery::request::{Delivered, DeliveryRequest, Outcome, Reply};
use tern_delivery::wire::{self, Frame};
use tern_maillog::{Ident, Line, Logger};

use crate::qmgr::config::QmgrSettings;
use crate::qmgr::transports::{BoxFuture, Transport, UNAVAILABLE};

/// The master.cf commands the helper runs.
pub const COMMANDS: [&str; 3] = ["local", "virtual", "pipe"];

/// How long one request may take before the daemon gives up on its worker. The agents
/// bound their own work (command_time_limit, the lock retries); this catches a worker
/// that hangs.
const REQUEST_LIMIT: Duration = Duration::from_hours(1);

/// Whether master.cf has a service the helper runs.
pub fn wanted(config: &Config) -> bool {
    config
        .master
        .services
        .iter()
        .any(|s| s.kind == "unix" && COMMANDS.contains(&command_name(&s.command)))
}

fn command_name(command: &str) -> &str {
    command.rsplit('/').next().unwrap_or_default()
}

/// The running supervisor.
#[derive(Debug)]
pub struct Helper {
    control: Arc<Control>,
    /// Bumped by `postfix reload`: workers of an older generation are not used again.
    generation: AtomicU64,
}

impl Helper {
    /// Starts `tern-delivery supervisor -c CONFIG_DIR` from next to the running
    /// executable. Call it before dropping root: the supervisor keeps the ids it starts
    /// with. `quiet` sends its standard error to /dev/null (a daemon that detaches).
    pub fn start(config_dir: &Path, quiet: bool) -> io::Result<Helper> {
        let exe = helper_path()?;
        let stderr = if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        };
        Ok(Helper {
            control: Arc::new(Control::start(&exe, config_dir, stderr)?),
            generation: AtomicU64::new(0),
        })
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.control.pid()
    }

    /// After `postfix reload`: new requests go to new workers, which read the new
    /// configuration.
    pub fn reload(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    async fn spawn(&self) -> io::Result<Conn> {
        let control = Arc::clone(&self.control);
        let generation = self.generation();
        let (pid, sock) = tokio::task::spawn_blocking(move || control.spawn_worker())
            .await
            .map_err(io::Error::other)??;
        sock.set_nonblocking(true)?;
        Ok(Conn {
            pid,
            generation,
            sock: UnixStream::from_std(sock)?,
            buf: Vec::new(),
        })
    }
}

/// The helper's transports for qmgr, by master.cf command name (`local`, `virtual`,
/// `pipe`), each with a pool per master.cf service of that command.
pub fn transports(
    helper: &Arc<Helper>,
    settings: &QmgrSettings,
    logger: &Arc<Logger>,
) -> HashMap<String, Arc<dyn Transport>> {
    let mut out: HashMap<String, Arc<dyn Transport>> = HashMap::new();
    for command in COMMANDS {
        let mut pools = HashMap::new();
        for (name, info) in &settings.services {
            if info.command != command {
                continue;
            }
            let limit = settings
                .limits
                .get(name)
                .map_or(settings.default_limits.process_limit, |l| l.process_limit);
            // maxproc 0 is "no limit" in master.cf.
            let limit = if limit == 0 { 1000 } else { limit };
            pools.insert(
                name.clone(),
                Arc::new(Pool {
                    idle: Mutex::new(Vec::new()),
                    slots: Arc::new(Semaphore::new(limit)),
                    ident: Ident::new(&info.syslog_name, command),
                }),
            );
        }
        if pools.is_empty() {
            continue;
        }
        out.insert(
            command.to_owned(),
            Arc::new(AgentTransport {
                helper: Arc::clone(helper),
                pools,
                logger: Arc::clone(logger),
                qmgr_ident: Ident::new(&settings.syslog_name, "qmgr"),
            }),
        );
    }
    out
}

/// One agent command's transport: its services' pools.
struct AgentTransport {
    helper: Arc<Helper>,
    pools: HashMap<String, Arc<Pool>>,
    logger: Arc<Logger>,
    qmgr_ident: Ident,
}

/// The workers of one master.cf service.
struct Pool {
    idle: Mutex<Vec<Conn>>,
    /// One permit per process (maxproc).
    slots: Arc<Semaphore>,
    /// `syslog_name/command`, for the agent's warnings.
    ident: Ident,
}

impl Pool {
    /// An idle worker of the current generation that is still alive.
    fn take(&self, generation: u64) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(c) = idle.pop() {
            if c.generation == generation && c.alive() {
                return Some(c);
            }
        }
        None
    }

    fn put(&self, conn: Conn, generation: u64) {
        if conn.generation == generation {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

impl Transport for AgentTransport {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>> {
        let pool = self.pools.get(&req.transport).cloned();
        let helper = Arc::clone(&self.helper);
        let logger = Arc::clone(&self.logger);
        let qmgr = self.qmgr_ident.clone();
        Box::pin(async move {
            let Some(pool) = pool else {
                return defer_all(&req, UNAVAILABLE);
            };
            let Ok(_slot) = Arc::clone(&pool.slots).acquire_owned().await else {
                return defer_all(&req, UNAVAILABLE);
            };
            let generation = helper.generation();
            let mut conn = match pool.take(generation) {
                Some(c) => c,
                None => match helper.spawn().await {
                    Ok(c) => c,
                    Err(e) => {
                        logger.log(
                            &qmgr,
                            &Line::warning(format!(
                                "connect to transport private/{}: {e}",
                                req.transport
                            )),
                        );
                        return defer_all(&req, UNAVAILABLE);
                    }
                },
            };
            match tokio::time::timeout(REQUEST_LIMIT, conn.call(&req)).await {
                Ok(Ok(reply)) => {
                    for w in &reply.warnings {
                        logger.log(&pool.ident, &Line::warning(w.clone()));
                    }
                    pool.put(conn, generation);
                    reply.outcomes
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                            "malformed response".to_owned()
                        }
                        Ok(Err(_)) => "premature disconnect".to_owned(),
                        _ => "timeout".to_owned(),
                    };
                    for text in [
                        format!("private/{} socket: {why}", req.transport),
                        format!(
                            "transport {} failure -- see a previous warning/fatal/panic \
                             logfile record for the problem description",
                            req.transport
                        ),
                    ] {
                        logger.log(&qmgr, &Line::warning(text));
                    }
                    defer_all(&req, "unknown mail transport error")
                }
            }
        })
    }
}

/// Every recipient deferred with 4.3.0 and `text` (qmgr_deliver.c).
fn defer_all(req: &DeliveryRequest, text: &str) -> Vec<Outcome> {
    req.recipients
        .iter()
        .map(|r| Outcome {
            index: r.index,
            result: Delivered::Deferred {
                dsn: "4.3.0".to_owned(),
                text: text.to_owned(),
            },
            relay: "none".to_owned(),
            expanded: Vec::new(),
        })
        .collect()
}

/// A connection to one worker.
struct Conn {
    pid: u32,
    generation: u64,
    sock: UnixStream,
    /// Bytes read but not yet decoded.
    buf: Vec<u8>,
}

impl Conn {
    /// Whether the worker is there: its socket has neither ended nor anything unasked
    /// to read (asked of the kernel, not of the runtime's cached readiness).
    fn alive(&self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            recv(
                self.sock.as_raw_fd(),
                &mut b,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
            ),
            Err(Errno::EAGAIN)
        )
    }

    /// Sends a request and reads the reply.
    async fn call(&mut self, req: &DeliveryRequest) -> io::Result<Reply> {
        self.sock
            .write_all(&wire::encode(&Frame::Request(req.clone())))
            .await?;
        loop {
            if let Some((frame, used)) = wire::decode(&self.buf).map_err(wire::invalid)? {
                self.buf.drain(..used);
                return match frame {
                    Frame::Reply(mut r) => {
                        // The supervisor's word for the pid, not the worker's.
                        r.pid = self.pid;
                        for o in &mut r.outcomes {
                            for e in &mut o.expanded {
                                if e.pid.is_some() {
                                    e.pid = Some(self.pid);
                                }
                            }
                        }
                        Ok(r)
                    }
                    _ => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "unexpected frame from a delivery worker",
                    )),
                };
            }
            if self.sock.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_the_helper_runs() {
        for (cmd, want) in [
            ("local", "local"),
            ("/usr/lib/postfix/sbin/virtual", "virtual"),
            ("pipe", "pipe"),
            ("smtp", "smtp"),
        ] {
            assert_eq!(command_name(cmd), want);
        }
    }

    #[test]
    fn deferred_when_unavailable() {
        let req = DeliveryRequest {
            agent: tern_delivery::request::Agent::Local,
            transport: "local".into(),
            nexthop: "x".into(),
            queue_id: "Q".into(),
            queue_file: "/q/active/Q".into(),
            sender: String::new(),
            arrival: 0,
            envid: None,
            recipients: vec![tern_delivery::request::RequestRecipient {
                index: 4,
                address: "a@x".into(),
                ..Default::default()
            }],
            verify: false,
        };
        let out = defer_all(&req, "unknown mail transport error");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].index, 4);
        assert_eq!(
            out[0].result,
            Delivered::Deferred {
                dsn: "4.3.0".into(),
                text: "unknown mail transport error".into()
            }
        );
    }
}
