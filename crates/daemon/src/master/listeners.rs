//! The master's listening sockets and the services they feed, and how `postfix reload`
//! changes them, as Postfix's master does on SIGHUP (master_conf.c, master_refresh()):
//! a service new in master.cf starts listening, one gone from it stops accepting (its
//! open sessions finish normally), one whose settings changed keeps its socket and gives
//! the new settings (`-o` overrides, main.cf, the maxproc column) to new sessions only.
//! A changed address or port is a removal plus an addition.
//!
//! Unlike Postfix, which closes and reopens a service whose master.cf name changed, a
//! socket is kept by its address: an address that stays in master.cf, under any service
//! name, keeps listening without a moment's gap, and its connections waiting in the
//! kernel's queue are not lost.
//!
//! A reload binds every new address before it changes anything. When one cannot be bound
//! (an address in use; a port below 1024 once the daemon has given up root, which
//! Postfix's master never does) the whole listener change is dropped and logged: the old
//! sockets stay, and the existing services still take their new settings. See
//! [`Listeners::reload`].
//!
//! Security: the sockets are bound by the master alone, before any byte is read; what
//! arrives on them is smtpd's to judge ([`crate::smtpd`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use tern_maillog::Line;

use crate::settings::{Listener, SmtpdSettings};
use crate::smtpd::{self, Shared};

/// One master.cf service as its sessions see it: the settings and the process limit of
/// new sessions, the number of open ones.
pub(super) struct Service {
    /// master.cf's first column, as written: the identity of a service across reloads.
    name: String,
    settings: RwLock<Arc<SmtpdSettings>>,
    /// The maxproc column (0: no limit).
    limit: AtomicUsize,
    active: AtomicUsize,
    /// Woken when a session ends or the limit changes.
    room: Notify,
}

impl Service {
    fn new(l: &Listener) -> Arc<Service> {
        Arc::new(Service {
            name: l.service.clone(),
            settings: RwLock::new(Arc::clone(&l.smtpd)),
            limit: AtomicUsize::new(l.process_limit),
            active: AtomicUsize::new(0),
            room: Notify::new(),
        })
    }

    /// New sessions get `l`'s settings and limit; open ones keep theirs.
    fn update(&self, l: &Listener) {
        // A TLS engine that cannot be rebuilt as mail_owner stays (SmtpdTls::
        // keeping_engine_of).
        let running = self.settings();
        let next = match l.smtpd.tls.keeping_engine_of(&running.tls) {
            Some(tls) => {
                let mut s = (*l.smtpd).clone();
                s.tls = Arc::new(tls);
                s.session.tls_unavailable = false;
                Arc::new(s)
            }
            None => Arc::clone(&l.smtpd),
        };
        match self.settings.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        self.limit.store(l.process_limit, Ordering::SeqCst);
        self.room.notify_waiters();
    }

    fn settings(&self) -> Arc<SmtpdSettings> {
        match self.settings.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Waits until the service has room for one more session (process_limit).
    async fn enter(self: &Arc<Self>) -> Seat {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so that a session ending in between is seen.
            notified.as_mut().enable();
            let limit = self.limit.load(Ordering::SeqCst);
            let entered = self
                .active
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (limit == 0 || n < limit).then_some(n + 1)
                })
                .is_ok();
            if entered {
                return Seat(Arc::clone(self));
            }
            notified.await;
        }
    }
}

/// One open session of a service; leaving frees its place.
struct Seat(Arc<Service>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.room.notify_waiters();
    }
}

/// Every listening socket, by address, and the services they feed.
pub(super) struct Listeners {
    services: Vec<Arc<Service>>,
    sockets: BTreeMap<SocketAddr, Socket>,
    shared: Arc<Shared>,
    /// Held by every accept loop and session: the graceful stop waits for them all.
    track: mpsc::Sender<()>,
}

struct Socket {
    /// The master's own descriptor: the socket stays open while its accept loop is
    /// replaced (a service renamed), and is closed when dropped here.
    sock: std::net::TcpListener,
    service: Arc<Service>,
    task: JoinHandle<()>,
}

/// Why a reload keeps the old listeners.
#[derive(Debug)]
pub(super) struct BindFailure {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

impl Listeners {
    /// Starts an accept loop on each socket bound at start-up.
    pub(super) fn start(
        listeners: &[Listener],
        bound: BTreeMap<SocketAddr, std::net::TcpListener>,
        shared: Arc<Shared>,
        track: mpsc::Sender<()>,
    ) -> std::io::Result<Listeners> {
        let mut me = Listeners {
            services: listeners.iter().map(Service::new).collect(),
            sockets: BTreeMap::new(),
            shared,
            track,
        };
        for (addr, sock) in bound {
            let Some(service) = me.owner_of(listeners, addr) else {
                continue;
            };
            me.open(addr, sock, service)?;
        }
        Ok(me)
    }

    /// Applies a reloaded master.cf: see the module documentation. On a bind failure the
    /// sockets stay as they were and the failures are returned, after the services that
    /// are still in master.cf got their new settings.
    pub(super) async fn reload(&mut self, listeners: &[Listener]) -> Vec<BindFailure> {
        let current: BTreeMap<SocketAddr, String> = self
            .sockets
            .iter()
            .map(|(a, s)| (*a, s.service.name.clone()))
            .collect();
        let wanted: Vec<(SocketAddr, String)> = listeners
            .iter()
            .flat_map(|l| l.addrs.iter().map(|a| (*a, l.service.clone())))
            .collect();
        let plan = match diff(&current, &wanted) {
            Ok(plan) => plan,
            Err(addr) => {
                self.update_services(listeners, false);
                return vec![BindFailure {
                    addr,
                    source: std::io::ErrorKind::AddrInUse.into(),
                }];
            }
        };
        // Bind everything new first: a failure leaves the old set untouched.
        let mut fresh = Vec::new();
        let mut failures = Vec::new();
        for (addr, _) in &plan.add {
            match bind(*addr) {
                Ok(sock) => fresh.push((*addr, sock)),
                Err(source) => failures.push(BindFailure {
                    addr: *addr,
                    source,
                }),
            }
        }
        if !failures.is_empty() {
            drop(fresh);
            self.update_services(listeners, false);
            return failures;
        }
        self.update_services(listeners, true);
        let mut ended = Vec::new();
        for addr in &plan.remove {
            if let Some(s) = self.sockets.remove(addr) {
                s.task.abort();
                ended.push(s.task);
                // s.sock is closed here; the aborted loop closes its own descriptor.
            }
        }
        for (addr, name) in &plan.rehome {
            let Some(service) = self.service(name) else {
                continue;
            };
            if let Some(s) = self.sockets.remove(addr) {
                s.task.abort();
                ended.push(s.task);
                if let Err(source) = self.open(*addr, s.sock, service) {
                    failures.push(BindFailure {
                        addr: *addr,
                        source,
                    });
                }
            }
        }
        for (addr, sock) in fresh {
            let Some(service) = self.owner_of(listeners, addr) else {
                continue;
            };
            if let Err(source) = self.open(addr, sock, service) {
                failures.push(BindFailure { addr, source });
            }
        }
        // Once the log says "reload", a removed address refuses connections: wait until
        // the aborted loops have let go of their descriptors.
        for task in ended {
            let _ = task.await;
        }
        failures
    }

    /// Stops accepting everywhere (a graceful stop); open sessions go on.
    pub(super) async fn close_all(&mut self) {
        let sockets = std::mem::take(&mut self.sockets);
        let mut ended = Vec::new();
        for (_, s) in sockets {
            s.task.abort();
            ended.push(s.task);
        }
        for task in ended {
            let _ = task.await;
        }
    }

    /// Gives each service still in master.cf its new settings. With `replace`, the
    /// service list becomes master.cf's (new services added, removed ones let go; their
    /// open sessions keep their own reference).
    fn update_services(&mut self, listeners: &[Listener], replace: bool) {
        let mut next = Vec::new();
        for l in listeners {
            if let Some(s) = self.service(&l.service) {
                s.update(l);
                next.push(s);
            } else if replace {
                next.push(Service::new(l));
            }
        }
        if replace {
            self.services = next;
        }
    }

    fn service(&self, name: &str) -> Option<Arc<Service>> {
        self.services.iter().find(|s| s.name == name).cloned()
    }

    /// The service that master.cf gives `addr` to.
    fn owner_of(&self, listeners: &[Listener], addr: SocketAddr) -> Option<Arc<Service>> {
        let l = listeners.iter().find(|l| l.addrs.contains(&addr))?;
        self.service(&l.service)
    }

    fn open(
        &mut self,
        addr: SocketAddr,
        sock: std::net::TcpListener,
        service: Arc<Service>,
    ) -> std::io::Result<()> {
        let listener = TcpListener::from_std(sock.try_clone()?)?;
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&service),
            Arc::clone(&self.shared),
            self.track.clone(),
        ));
        self.sockets.insert(
            addr,
            Socket {
                sock,
                service,
                task,
            },
        );
        Ok(())
    }
}

/// Binds one listening socket, non-blocking for tokio, with a listen queue of SOMAXCONN
/// (the kernel caps it at net.core.somaxconn). std's bind listens with 128: a burst of
/// 1,000 connects then overflows the queue and each dropped SYN waits a second for its
/// retry. Postfix's master asks for the larger of the service's process limit and
/// default_process_limit; one Tern process serves every session, so the queue is sized
/// for the connection bursts it can take, not for a process count.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let sock = std::net::TcpListener::bind(addr)?;
    nix::sys::socket::listen(&sock, nix::sys::socket::Backlog::MAXCONN)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// strerror(3)'s text of an error, as Postfix's `%m` prints it (std appends "(os error N)").
pub(super) fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_owned(),
        None if e.kind() == std::io::ErrorKind::AddrInUse => {
            nix::errno::Errno::EADDRINUSE.desc().to_owned()
        }
        None => e.to_string(),
    }
}

/// The log lines of a reload that kept the old listeners.
pub(super) fn failure_lines(failures: &[BindFailure], root: bool) -> Vec<Line> {
    let mut lines: Vec<Line> = failures
        .iter()
        .map(|f| {
            // inet_listen.c's text, an error here rather than fatal: the daemon goes on.
            Line::error(format!(
                "bind {} port {}: {}",
                f.addr.ip(),
                f.addr.port(),
                strerror(&f.source)
            ))
        })
        .collect();
    if failures.is_empty() {
        return lines;
    }
    lines.push(Line::warning(
        "ignoring master.cf listener changes, keeping the old listeners",
    ));
    // The daemon gave up root after start-up (master.rs); Postfix's master keeps it for
    // exactly this. A restart binds as root again.
    for f in failures {
        if !root && f.addr.port() < 1024 && f.source.kind() == std::io::ErrorKind::PermissionDenied
        {
            lines.push(Line::warning(format!(
                "to listen on port {}, stop and start Postfix",
                f.addr.port()
            )));
        }
    }
    lines
}

/// What a reload does to the sockets.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Addresses that stay with the same service.
    keep: Vec<SocketAddr>,
    /// Addresses that stay open but now belong to another service (by name).
    rehome: Vec<(SocketAddr, String)>,
    /// Addresses to bind, with their service.
    add: Vec<(SocketAddr, String)>,
    /// Addresses to close.
    remove: Vec<SocketAddr>,
}

/// Compares the open sockets with master.cf's; `Err` names an address that two services
/// claim (the second bind would fail with "Address already in use").
fn diff(
    current: &BTreeMap<SocketAddr, String>,
    wanted: &[(SocketAddr, String)],
) -> Result<Plan, SocketAddr> {
    let mut plan = Plan::default();
    let mut seen = std::collections::BTreeSet::new();
    for (addr, name) in wanted {
        if !seen.insert(*addr) {
            return Err(*addr);
        }
        match current.get(addr) {
            Some(old) if old == name => plan.keep.push(*addr),
            Some(_) => plan.rehome.push((*addr, name.clone())),
            None => plan.add.push((*addr, name.clone())),
        }
    }
    plan.remove = current
        .keys()
        .filter(|a| !seen.contains(a))
        .copied()
        .collect();
    Ok(plan)
}

/// How often a failing accept loop logs its error.
const ACCEPT_ERROR_EVERY: Duration = Duration::from_secs(10);

async fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
    shared: Arc<Shared>,
    track: mpsc::Sender<()>,
) {
    // When the last accept error was logged: one line per ACCEPT_ERROR_EVERY while
    // they go on, not one per retry.
    let mut logged: Option<std::time::Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and the like: say so (single_server.c: `error: accept
                // connection: %m`), and back off briefly instead of spinning.
                if logged.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_EVERY) {
                    logged = Some(std::time::Instant::now());
                    let s = service.settings();
                    let line =
                        tern_maillog::Line::error(format!("accept connection: {}", strerror(&e)));
                    shared
                        .logger
                        .log(&tern_maillog::Ident::new(&s.syslog_name, "smtpd"), &line);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // process_limit: like a busy Postfix smtpd pool, a full service leaves the client
        // waiting for its greeting (this one accepted, the next ones in the kernel's
        // listen queue). Accepting first keeps one busy address of a service from
        // holding up its others.
        let seat = service.enter().await;
        let settings = service.settings();
        let shared = Arc::clone(&shared);
        let track = track.clone();
        tokio::spawn(async move {
            smtpd::serve(stream, peer, settings, shared).await;
            drop(seat);
            drop(track);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn plans() {
        type Case = (
            &'static [(u16, &'static str)],
            &'static [(u16, &'static str)],
            Result<Plan, u16>,
        );
        let s = |v: &[(u16, &str)]| -> Vec<(SocketAddr, String)> {
            v.iter().map(|(p, n)| (a(*p), (*n).to_owned())).collect()
        };
        let cases: [Case; 6] = [
            // Nothing changed.
            (
                &[(25, "smtp")],
                &[(25, "smtp")],
                Ok(Plan {
                    keep: vec![a(25)],
                    ..Plan::default()
                }),
            ),
            // A service added.
            (
                &[(25, "smtp")],
                &[(25, "smtp"), (587, "submission")],
                Ok(Plan {
                    keep: vec![a(25)],
                    add: vec![(a(587), "submission".into())],
                    ..Plan::default()
                }),
            ),
            // A service removed.
            (
                &[(25, "smtp"), (587, "submission")],
                &[(25, "smtp")],
                Ok(Plan {
                    keep: vec![a(25)],
                    remove: vec![a(587)],
                    ..Plan::default()
                }),
            ),
            // A port changed: a removal plus an addition.
            (
                &[(2525, "127.0.0.1:2525")],
                &[(2526, "127.0.0.1:2526")],
                Ok(Plan {
                    add: vec![(a(2526), "127.0.0.1:2526".into())],
                    remove: vec![a(2525)],
                    ..Plan::default()
                }),
            ),
            // The same address under another name keeps its socket.
            (
                &[(25, "smtp")],
                &[(25, "127.0.0.1:25")],
                Ok(Plan {
                    rehome: vec![(a(25), "127.0.0.1:25".into())],
                    ..Plan::default()
                }),
            ),
            // Two services on one address.
            (
                &[(25, "smtp")],
                &[(25, "smtp"), (25, "127.0.0.1:25")],
                Err(25),
            ),
        ];
        for (current, wanted, want) in cases {
            let current: BTreeMap<_, _> = s(current).into_iter().collect();
            let got = diff(&current, &s(wanted)).map_err(|e| e.port());
            assert_eq!(got, want, "{current:?} -> {wanted:?}");
        }
    }

    #[test]
    fn failure_texts() {
        let f = |port, kind: std::io::ErrorKind| BindFailure {
            addr: a(port),
            source: kind.into(),
        };
        let denied = || std::io::Error::from_raw_os_error(nix::libc::EACCES);
        let texts = |fs: &[BindFailure], root| -> Vec<String> {
            failure_lines(fs, root)
                .iter()
                .map(|l| format!("{}: {}", l.severity().label().unwrap_or("info"), l.text()))
                .collect()
        };
        assert!(texts(&[], false).is_empty());
        assert_eq!(
            texts(
                &[BindFailure {
                    addr: a(25),
                    source: denied()
                }],
                false
            ),
            [
                "error: bind 127.0.0.1 port 25: Permission denied",
                "warning: ignoring master.cf listener changes, keeping the old listeners",
                "warning: to listen on port 25, stop and start Postfix",
            ]
        );
        assert_eq!(
            texts(&[f(2525, std::io::ErrorKind::AddrInUse)], false),
            [
                "error: bind 127.0.0.1 port 2525: Address already in use",
                "warning: ignoring master.cf listener changes, keeping the old listeners",
            ]
        );
        let v6 = BindFailure {
            addr: "[::1]:25".parse().expect("addr"),
            source: denied(),
        };
        assert_eq!(
            texts(&[v6], true)[0],
            "error: bind ::1 port 25: Permission denied"
        );
    }
}
