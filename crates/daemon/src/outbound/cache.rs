//! The connection cache of the smtp/lmtp transports (Postfix's scache(8) with
//! smtp_connection_cache_on_demand and smtp_connection_cache_destinations): connections
//! that ended a transaction cleanly wait here, idle, keyed by service, next hop and
//! server address, until the next delivery to that next hop or address takes them or
//! smtp_connection_cache_time_limit passes (then they are closed without QUIT, as
//! scache(8) closes them).
//!
//! On demand (qmgr_entry.c): a destination's connections are kept while its deliveries
//! are concurrent or come back to back (one ended within the last second); Postfix
//! starts keeping them only once they come back to back (see [`Cache::begin`]). A
//! connection is always taken when one is here.
//!
//! Trust: the entries are our own; the bounds: [`MAX_IDLE`] connections in all, the
//! demand table pruned of quiet destinations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tern_client::session::Connection;

/// The most idle connections kept at once; the oldest goes first.
pub const MAX_IDLE: usize = 1000;

/// Postfix's BACK_TO_BACK_DELIVERY(): the last delivery ended within a second.
const BACK_TO_BACK: Duration = Duration::from_secs(1);

/// Demand entries kept before quiet ones are pruned.
const MAX_DEMAND: usize = 1000;

/// The cache, shared by a command's services.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    idle: Vec<Idle>,
    demand: HashMap<(String, String), Demand>,
}

struct Idle {
    id: u64,
    service: String,
    nexthop: String,
    endpoint: String,
    conn: Connection,
}

#[derive(Default)]
struct Demand {
    busy: usize,
    last_done: Option<Instant>,
    store: bool,
}

impl Demand {
    fn back_to_back(&self, now: Instant) -> bool {
        self.last_done
            .is_some_and(|t| now.saturating_duration_since(t) <= BACK_TO_BACK)
    }
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A delivery to `nexthop` begins; whether its connection may be kept
    /// (DEL_REQ_FLAG_CONN_STORE). Pair with [`Cache::end`].
    pub fn begin(&self, service: &str, nexthop: &str) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.demand.len() >= MAX_DEMAND {
            inner
                .demand
                .retain(|_, d| d.busy > 0 || d.back_to_back(now));
        }
        let d = inner
            .demand
            .entry((service.to_owned(), nexthop.to_owned()))
            .or_default();
        // qmgr_entry_select() turns caching on once deliveries are back to back and off
        // once they are neither concurrent nor back to back. Tern also turns it on for
        // a delivery that starts while another to the destination runs: Postfix's first
        // burst to a destination (its initial concurrency) opened a connection each and
        // closed them all, to open them again for the deliveries that followed.
        d.store = d.busy > 0 || d.back_to_back(now);
        d.busy += 1;
        d.store
    }

    /// The delivery [`Cache::begin`] announced has ended.
    pub fn end(&self, service: &str, nexthop: &str) {
        let mut inner = self.lock();
        if let Some(d) = inner
            .demand
            .get_mut(&(service.to_owned(), nexthop.to_owned()))
        {
            d.busy = d.busy.saturating_sub(1);
            d.last_done = Some(Instant::now());
        }
    }

    /// An idle connection of `service` kept under `nexthop` (any server), else one to
    /// `endpoint`; the most recently kept first. The caller probes it before use.
    pub fn take(
        &self,
        service: &str,
        nexthop: Option<&str>,
        endpoint: Option<&str>,
    ) -> Option<Connection> {
        let mut inner = self.lock();
        let pos = inner.idle.iter().rposition(|i| {
            i.service == service
                && (nexthop.is_some_and(|n| n == i.nexthop)
                    || endpoint.is_some_and(|e| e == i.endpoint))
        })?;
        Some(inner.idle.remove(pos).conn)
    }

    /// Keeps `conn` for at most `idle_limit`.
    pub fn put(
        self: &Arc<Self>,
        service: &str,
        nexthop: &str,
        endpoint: &str,
        conn: Connection,
        idle_limit: Duration,
    ) {
        let id = {
            let mut inner = self.lock();
            inner.next_id += 1;
            let id = inner.next_id;
            if inner.idle.len() >= MAX_IDLE {
                inner.idle.remove(0);
            }
            inner.idle.push(Idle {
                id,
                service: service.to_owned(),
                nexthop: nexthop.to_owned(),
                endpoint: endpoint.to_owned(),
                conn,
            });
            id
        };
        let weak: Weak<Cache> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(idle_limit).await;
            if let Some(cache) = weak.upgrade() {
                // Dropped outside the lock: closing a socket is a system call.
                let gone = {
                    let mut inner = cache.lock();
                    inner
                        .idle
                        .iter()
                        .position(|i| i.id == id)
                        .map(|p| inner.idle.remove(p))
                };
                drop(gone);
            }
        });
    }

    /// Idle connections now.
    pub fn idle_count(&self) -> usize {
        self.lock().idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_demand_keeps_concurrent_and_back_to_back_deliveries() {
        let c = Cache::default();
        // A lone first delivery: not kept.
        assert!(!c.begin("smtp", "a.example"));
        // A second one while the first runs: kept (Postfix waits for back to back).
        assert!(c.begin("smtp", "a.example"));
        c.end("smtp", "a.example");
        c.end("smtp", "a.example");
        // Back to back: on.
        assert!(c.begin("smtp", "a.example"));
        c.end("smtp", "a.example");
        // Another destination has its own state.
        assert!(!c.begin("smtp", "b.example"));
        assert!(!c.begin("relay", "a.example"));
    }
}
