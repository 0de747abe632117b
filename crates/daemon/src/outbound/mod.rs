//! smtp(8) and lmtp(8) inside the daemon: the queue manager's transports for the master.cf
//! services whose command is `smtp` (`smtp`, `relay`, any `relay2 unix - - n - - smtp -o
//! ...`) or `lmtp`, built on tern_client.
//!
//! - [`settings`]: one service's parameters, read at start-up and again at `postfix
//!   reload` (SIGHUP, as the delivery helper's workers are renewed then).
//! - [`message`]: the message from the queue file (content, BODY=, SMTPUTF8, DSN).
//! - `walk`: one delivery request: the next hop's sites, their addresses, the sessions
//!   (smtp_connect.c's smtp_connect_inet() and smtp_connect_local()), one outcome per
//!   recipient.
//! - [`cache`]: kept connections (smtp_connection_cache_on_demand).
//!
//! The queue manager logs each recipient's line (`postfix/smtp[PID]: QUEUEID:
//! to=<...>, relay=mx.example.com[192.0.2.1]:25, conn_use=2, delay=..., delays=a/b/c/d,
//! dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)`) from the outcomes and the
//! [`SessionStats`]; this module logs smtp(8)'s other lines itself under the service's
//! name: connect failures, recipients left for the next server, TLS lines, warnings.
//!
//! # Security
//! Runs as mail_owner in the daemon, never as root. Everything a server or the DNS
//! sends is untrusted: tern_client bounds every read (line and reply caps), every wait
//! (the smtp_*_timeout parameters, DNS query limits) and every list
//! (smtp_mx_address_limit, smtp_mx_session_limit); nothing from the network can make
//! this code panic. The queue file is the system's own.

pub mod cache;
pub mod message;
pub mod settings;
mod walk;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use tern_client::nexthop::DnsClient;
use tern_config::config::Config;
use tern_delivery::request::{Delivered, DeliveryRequest, Outcome};
use tern_maillog::{Ident, Line, Logger};

use crate::qmgr::transports::{BoxFuture, SessionStats, Transport, UNAVAILABLE};
use cache::Cache;
use settings::ServiceSettings;

/// The master.cf commands run here.
pub const COMMANDS: [&str; 2] = ["smtp", "lmtp"];

/// The transports for qmgr, by master.cf command name (`smtp`, `lmtp`), each serving
/// every service of that command. Call it on the daemon's runtime: a task listens for
/// SIGHUP (`postfix reload`) and reads the settings again.
pub fn transports(config: &Config, logger: &Arc<Logger>) -> HashMap<String, Arc<dyn Transport>> {
    let shared = Arc::new(Shared {
        logger: Arc::clone(logger),
        dns: DnsClient::from_env(),
        cache: Arc::new(Cache::default()),
    });
    let mut out: HashMap<String, Arc<dyn Transport>> = HashMap::new();
    for command in COMMANDS {
        let t = Arc::new(Outbound {
            command,
            services: RwLock::new(services(config, command, &shared.logger)),
            shared: Arc::clone(&shared),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            reload_on_hup(Arc::downgrade(&t), config.dir.clone());
        }
        out.insert(command.to_owned(), t);
    }
    out
}

/// What every service of a command shares: the log, the DNS client, the cache.
pub(crate) struct Shared {
    pub(crate) logger: Arc<Logger>,
    pub(crate) dns: DnsClient,
    pub(crate) cache: Arc<Cache>,
}

/// One command's transport.
pub struct Outbound {
    command: &'static str,
    services: RwLock<HashMap<String, Arc<Service>>>,
    shared: Arc<Shared>,
}

/// One master.cf service: its settings (or why they are unusable) and log name.
pub(crate) struct Service {
    pub(crate) settings: Result<ServiceSettings, String>,
    /// `syslog_name/smtp` (the service's -o syslog_name or main.cf's).
    pub(crate) ident: Ident,
}

impl Outbound {
    /// Reads the settings again (after `postfix reload`); deliveries under way keep the
    /// settings they started with.
    pub fn reload(&self, config: &Config) {
        let fresh = services(config, self.command, &self.shared.logger);
        *self
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
    }
}

impl Transport for Outbound {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>> {
        let f = self.deliver_with_stats(req);
        Box::pin(async move { f.await.0 })
    }

    fn deliver_with_stats(
        &self,
        req: DeliveryRequest,
    ) -> BoxFuture<(Vec<Outcome>, Vec<SessionStats>)> {
        let svc = self
            .services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&req.transport)
            .cloned();
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let Some(svc) = svc else {
                return (defer_all(&req, "4.3.0", UNAVAILABLE), Vec::new());
            };
            match &svc.settings {
                Ok(s) => walk::deliver(s, &shared, &svc.ident, &req).await,
                Err(e) => {
                    // Postfix's smtp(8) would end with a fatal error on such a setting;
                    // qmgr then defers the mail.
                    shared.logger.log(&svc.ident, &Line::fatal(e.clone()));
                    (
                        defer_all(&req, "4.3.0", "unknown mail transport error"),
                        Vec::new(),
                    )
                }
            }
        })
    }
}

/// Every service of `command` in master.cf, with its settings.
fn services(config: &Config, command: &str, logger: &Logger) -> HashMap<String, Arc<Service>> {
    let mut out = HashMap::new();
    for svc in config.master.services.iter().filter(|s| s.kind == "unix") {
        if svc.command.rsplit('/').next() != Some(command) {
            continue;
        }
        let syslog_name = config
            .lookup_value("syslog_name", Some(svc))
            .and_then(|v| config.expand(&v, Some(svc)).ok().map(|e| e.text))
            .unwrap_or_else(|| "postfix".to_owned());
        let ident = Ident::new(&syslog_name, command);
        let settings = ServiceSettings::load(config, svc).map_err(|e| e.to_string());
        if let Ok(s) = &settings {
            for note in &s.notes {
                let line = if note.warning {
                    Line::warning(note.text.clone())
                } else {
                    tern_maillog::delivery::client_info(note.text.clone())
                };
                logger.log(&ident, &line);
            }
        }
        out.insert(svc.name.clone(), Arc::new(Service { settings, ident }));
    }
    out
}

/// Reads the configuration again at each SIGHUP, as `postfix reload` asks.
fn reload_on_hup(t: std::sync::Weak<Outbound>, dir: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(t) = t.upgrade() else { return };
            match crate::master::load_config(&dir) {
                Ok(config) => t.reload(&config),
                Err(e) => t.shared.logger.log(
                    &Ident::new("postfix", t.command),
                    &Line::warning(format!("reload: {e}")),
                ),
            }
        }
    });
}

/// Every recipient deferred with `dsn` and `text`, relay none.
fn defer_all(req: &DeliveryRequest, dsn: &str, text: &str) -> Vec<Outcome> {
    req.recipients
        .iter()
        .map(|r| Outcome {
            index: r.index,
            result: Delivered::Deferred {
                dsn: dsn.to_owned(),
                text: text.to_owned(),
            },
            relay: "none".to_owned(),
            expanded: Vec::new(),
        })
        .collect()
}
