//! qmgr: the queue manager (Postfix's qmgr(8)) inside the daemon.
//!
//! - [`schedule`]: the scheduler, pure (time is a parameter): recipients grouped into
//!   delivery requests under the transports' and destinations' limits, the end of a
//!   message's pass, Postfix's backoff, expiry and delay warnings.
//! - [`runner`]: the tokio task that drives it: new mail from smtpd's commits through
//!   [`QmgrHandle::new_mail`], the deferred queue every queue_run_delay, file moves,
//!   resolving, status records and log lines; [`QmgrHandle::flush`] is `postqueue -f`.
//! - [`transports`]: the [`Transport`] trait, the [`Notices`] hook, and the built-in
//!   discard(8), error(8) and "mail transport unavailable" agents.
//! - [`actions`]: a message's REDIRECT and FILTER, which override the resolver.
//! - [`config`]: the settings from main.cf and master.cf.
//!
//! How the daemon starts it: [`start`] with the loaded configuration, after queue
//! recovery, on the daemon's runtime; smtpd calls [`QmgrHandle::new_mail`] once a commit
//! succeeded. [`runner::Deps::transports`] holds the agents by master.cf command name:
//! the built-in ones and the delivery helper's ([`crate::agents`]).
//!
//! Trust: see [`runner`]'s Security section; this runs as mail_owner.

pub mod actions;
pub mod config;
pub mod notices;
pub mod runner;
pub mod schedule;
pub mod transports;

use std::collections::HashMap;
use std::sync::Arc;

use tern_config::config::Config;
use tern_maillog::Logger;
use tern_queue::{Committer, QueueLayout};

pub use runner::{Deps, QmgrHandle};
pub use transports::{Notice, NoticeKind, Notices, Transport};

/// Why the queue manager cannot start.
#[derive(Debug, thiserror::Error)]
pub enum QmgrError {
    #[error("{0}")]
    Settings(#[from] crate::settings::SettingsError),
    #[error("{0}")]
    Resolver(#[from] tern_rewrite::SetupError),
}

/// Whether master.cf runs a queue manager (a `qmgr` or `oqmgr` service): without one,
/// as with Postfix, mail stays in incoming/.
pub fn enabled(config: &Config) -> bool {
    config.master.services.iter().any(|s| {
        matches!(
            s.command.rsplit('/').next().unwrap_or_default(),
            "qmgr" | "oqmgr"
        )
    })
}

/// The agents the daemon runs itself, by master.cf command name.
pub fn builtin_transports() -> HashMap<String, Arc<dyn Transport>> {
    let mut m: HashMap<String, Arc<dyn Transport>> = HashMap::new();
    m.insert("discard".to_owned(), Arc::new(transports::Discard));
    m.insert("error".to_owned(), Arc::new(transports::ErrorAgent));
    m
}

/// Starts the queue manager on the current tokio runtime with the built-in transports,
/// smtp(8) and lmtp(8) ([`crate::outbound`]), the delivery helper's (local, virtual, pipe: [`crate::agents`]) when it runs, and the
/// bounce service ([`notices::Bounces`]).
pub fn start(
    config: &Config,
    layout: QueueLayout,
    logger: Arc<Logger>,
    committer: Arc<Committer>,
    helper: Option<&Arc<crate::agents::Helper>>,
) -> Result<QmgrHandle, QmgrError> {
    let settings = config::load(config)?;
    let warn: tern_maps::Warn = Arc::new(crate::relay::warn);
    let resolver = Arc::new(tern_rewrite::Resolver::from_config(config, warn)?);
    // fast_flush_domains for the flush service; a list that does not parse leaves the
    // service out (ETRN then answers as Postfix's does without one).
    let flush_domains = tern_rewrite::Settings::from_config(config)
        .ok()
        .and_then(|rw| {
            let value = config.expanded("fast_flush_domains").ok().flatten()?;
            crate::etrn::FastFlush::new(
                &value,
                rw.parent_style("fast_flush_domains"),
                &(Arc::new(crate::relay::warn) as tern_maps::Warn),
            )
            .ok()
        });
    let mut transports = builtin_transports();
    transports.extend(crate::outbound::transports(config, &logger));
    if let Some(h) = helper {
        transports.extend(crate::agents::transports(h, &settings, &logger));
    }
    Ok(runner::start(
        settings,
        Deps {
            logger,
            committer,
            layout,
            resolver,
            transports,
            flush_domains,
        },
    ))
}
