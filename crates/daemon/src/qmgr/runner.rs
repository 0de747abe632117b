//! The queue manager's driver: one tokio task that owns the [`Scheduler`], takes new
//! mail from smtpd's commits through a channel, runs the deferred queue every
//! queue_run_delay, moves and reads queue files, resolves recipients, runs delivery
//! requests on their transports, appends the status records and logs Postfix's lines.
//!
//! Start-up, as Postfix's qmgr after a restart: files left in active/ go back to
//! incoming/ (a delivery that was running may be repeated, never lost); then incoming/ is
//! taken in, and deferred/ is read with each file's modification time as the time of its
//! next attempt (qmgr_active_defer writes it there).
//!
//! The commit journal (docs/queue-format.md): smtpd's client is answered once the
//! file's journal record is synced, before the file has its name; `Committer::barrier()`
//! waits for those names before a batch of new mail is taken from incoming/. The files
//! are moved without waiting for the journal's segments to retire: replay after a crash
//! finds a file in whatever queue it was moved to, so a move never doubles a message.
//!
//! File and resolver work runs on blocking threads; the task itself only schedules.
//!
//! # Security
//! The queue files were written by cleanup from network input: they are read with
//! tern_queue's checking reader, and a file that does not read is moved to corrupt/.
//! Addresses go to the log as stored (cleanup kept them printable). This runs as
//! mail_owner.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use tern_delivery::request::{Agent, Delivered, DeliveryRequest, Outcome, RequestRecipient};
use tern_maillog::delay::Delays;
use tern_maillog::delivery::{self as dlog, Delivery, Status};
use tern_maillog::{Ident, Line, Logger};
use tern_queue::{
    Committer, DeliveryStatus, Envelope, QueueId, QueueLayout, QueueName, StatusLog, StatusUpdate,
};
use tern_rewrite::Resolver;

use super::config::QmgrSettings;
use super::notices;
use super::schedule::{
    Dispatch, Fate, HopFailure, NewMessage, Next, PassEnd, Rcpt, SUSPENDED, Scheduler, Time,
};
use super::transports::{
    DOUBLE_BOUNCE, DoubleBounceDiscard, Notice, NoticeKind, NoticeRecipient, Notices, Suspended,
    Transport, Unavailable,
};
use crate::flush::FlushService;
use crate::submit::{Forward as ForwardMsg, NewRecipient, Submitter};

mod record;

use record::{Failed, LogCtx, RcptResult, record};

/// What the queue manager needs from the rest of the daemon.
pub struct Deps {
    pub logger: Arc<Logger>,
    pub committer: Arc<Committer>,
    pub layout: QueueLayout,
    pub resolver: Arc<Resolver>,
    /// Delivery agents by master.cf command name (`discard`, `error`, `local`, ...). A
    /// service whose command has none here defers with `mail transport unavailable`.
    pub transports: HashMap<String, Arc<dyn Transport>>,
    /// fast_flush_domains, for the flush service ([`crate::flush`]).
    pub flush_domains: Option<crate::etrn::FastFlush>,
}

/// How the rest of the daemon talks to the queue manager. Cheap to clone.
#[derive(Clone)]
pub struct QmgrHandle {
    tx: mpsc::UnboundedSender<Command>,
    submitter: Arc<Submitter>,
    flush: Option<Arc<FlushService>>,
    /// The bounce service (pickup bounces a message header_checks rejected).
    bounces: notices::Bounces,
}

impl std::fmt::Debug for QmgrHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QmgrHandle").finish_non_exhaustive()
    }
}

impl QmgrHandle {
    /// A message was committed to incoming/ (smtpd, pickup, bounce).
    pub fn new_mail(&self, id: &QueueId) {
        let _ = self.tx.send(Command::New(id.clone()));
    }

    /// `postqueue -f`: every deferred message is due now.
    pub fn flush(&self) {
        let _ = self.tx.send(Command::Flush);
    }

    /// The queue manager's internal submission (queue layout, commit, cleanup's header
    /// settings), for pickup.
    pub fn submitter(&self) -> &Arc<Submitter> {
        &self.submitter
    }

    /// The bounce service.
    pub fn bounces(&self) -> &notices::Bounces {
        &self.bounces
    }

    /// The fast flush service (ETRN, `postqueue -s`/`-i`).
    pub fn flush_service(&self) -> Option<&Arc<FlushService>> {
        self.flush.as_ref()
    }
}

#[derive(Debug)]
enum Command {
    New(QueueId),
    Flush,
}

/// Starts the queue manager on the current tokio runtime, with the bounce service
/// ([`notices::Bounces`]) and internal submission ([`Submitter`]: notices and forwarded
/// mail) built from `settings.notices` and `deps`.
pub fn start(settings: QmgrSettings, mut deps: Deps) -> QmgrHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let submitter = Arc::new(Submitter {
        layout: deps.layout.clone(),
        id_form: settings.notices.id_form,
        committer: Arc::clone(&deps.committer),
        logger: Arc::clone(&deps.logger),
        cleanup_ident: Ident::new(&settings.syslog_name, "cleanup"),
        cleanup: settings.notices.cleanup.clone(),
        resolver: Arc::clone(&deps.resolver),
        // XXX: canonical and virtual alias rewriting of internal mail needs a
        // CleanupRewriter, which the daemon does not build yet.
        rewriter: None,
    });
    let handle_submitter = Arc::clone(&submitter);
    let new_mail_tx = tx.clone();
    let new_mail: notices::NewMail = Arc::new(move |id: &QueueId| {
        let _ = new_mail_tx.send(Command::New(id.clone()));
    });
    let bounces = notices::Bounces::new(
        settings.notices.reporter.clone(),
        Arc::clone(&submitter),
        Arc::clone(&deps.logger),
        Ident::new(&settings.syslog_name, "bounce"),
        Arc::clone(&new_mail),
    );
    let handle_bounces = bounces.clone();
    let flush_tx = tx.clone();
    let handle_flush = deps.flush_domains.take().map(|domains| {
        Arc::new(FlushService::new(
            domains,
            deps.layout.clone(),
            Arc::new(move |id: &QueueId| {
                let _ = flush_tx.send(Command::New(id.clone()));
            }),
        ))
    });
    let services = Arc::new(Services {
        notices: Arc::new(bounces),
        submitter,
        mail_name: settings.notices.reporter.mail_name.clone(),
        double_bounce_sender: settings.notices.reporter.double_bounce_sender.clone(),
        filter: settings.filter.clone(),
        delay_warnings: settings.policy.delay_warning_time > 0,
        new_mail,
        flush: handle_flush.clone(),
    });
    let sched = Scheduler::new(
        settings.policy,
        settings.default_limits,
        settings.limits.clone(),
    );
    let runner = Runner {
        qmgr_ident: Ident::new(&settings.syslog_name, "qmgr"),
        s: Arc::new(settings),
        deps: Arc::new(deps),
        services,
        sched,
        active: HashMap::new(),
        warned: HashSet::new(),
        events: ev_tx,
    };
    tokio::spawn(runner.run(rx, ev_rx));
    QmgrHandle {
        tx,
        submitter: handle_submitter,
        flush: handle_flush,
        bounces: handle_bounces,
    }
}

/// The bounce service and internal submission, shared with the tasks.
struct Services {
    notices: Arc<dyn Notices>,
    submitter: Arc<Submitter>,
    mail_name: String,
    double_bounce_sender: String,
    /// default_filter_nexthop and myhostname, for FILTER.
    filter: super::actions::FilterSettings,
    /// delay_warning_time is set: look for the "warning sent" mark when loading.
    delay_warnings: bool,
    /// Tells the queue manager of a message it made (a notice, a forwarded message).
    new_mail: notices::NewMail,
    /// Per-destination logs of deferred mail (fast_flush_domains).
    flush: Option<Arc<FlushService>>,
}

/// A message in the active queue.
struct Active {
    id: QueueId,
    path: PathBuf,
    envelope: Envelope,
    log: Arc<Mutex<StatusLog>>,
    /// When it entered the active queue (`delays=a/...`).
    entered: SystemTime,
    /// The resolved address of each recipient of this pass, by index.
    addresses: HashMap<u32, String>,
    /// The last result of each recipient in this pass: (dsn, text).
    results: HashMap<u32, (String, String)>,
    /// Recipients delivered in this pass that asked for NOTIFY=SUCCESS.
    success: Vec<u32>,
    /// The expanded addresses that bounced, by recipient (record.rs's [`Failed`]).
    failed: HashMap<u32, Vec<Failed>>,
    /// A `sendmail -bv` probe's results, in the order they were logged (Postfix's trace
    /// log): the lines of its report.
    traced: Vec<(u32, Failed)>,
}

/// The agents (master.cf commands) that answer a probe without delivering it.
const VERIFY_AGENTS: &[&str] = &[
    "local", "virtual", "pipe", "error", "discard", "smtp", "lmtp",
];

/// A `sendmail -bv` probe (tern_queue::MessageFlags::VERIFY).
fn is_verify(env: &Envelope) -> bool {
    env.flags.0 & tern_queue::MessageFlags::VERIFY != 0
}

enum Event {
    Loaded(Box<Loaded>),
    Delivered {
        job: u64,
        results: Vec<RcptResult>,
        /// The agent's report that the destination itself failed.
        hop: Option<HopFailure>,
    },
    Deferred {
        id: String,
        at: Time,
    },
    /// What deferred/ holds (id, next try time), read every queue_run_delay and at a
    /// flush: files put there from outside (postsuper -H, an admin's mv) join the
    /// schedule; with `now`, they are due at once.
    Rescanned {
        found: Vec<(String, Time)>,
        now: bool,
        /// What incoming/ holds: a file the queue manager could not take when it was
        /// told about it (incoming/ unwritable for a while: qmgr_scan.c scans incoming/
        /// at each queue run too) is taken now.
        incoming: Vec<String>,
    },
}

struct Loaded {
    id: QueueId,
    path: PathBuf,
    envelope: Envelope,
    log: StatusLog,
    size: u64,
    recipients: Vec<Rcpt>,
    /// The file holds the mark of a delay warning sent.
    warned: bool,
}

struct Runner {
    s: Arc<QmgrSettings>,
    deps: Arc<Deps>,
    services: Arc<Services>,
    qmgr_ident: Ident,
    sched: Scheduler,
    active: HashMap<String, Active>,
    warned: HashSet<String>,
    events: mpsc::UnboundedSender<Event>,
}

fn now_secs() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Runner {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut ev_rx: mpsc::UnboundedReceiver<Event>,
    ) {
        self.startup().await;
        let period = Duration::from_secs(self.sched.policy().queue_run_delay.max(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            // A dead destination's wait or a rate delay that ends: dispatch then.
            let wake = self.sched.next_wakeup(now_secs()).map(|at| {
                let secs = at.saturating_sub(now_secs());
                tokio::time::Instant::now() + Duration::from_secs(secs)
            });
            tokio::select! {
                () = sleep_until_some(wake) => self.dispatch(),
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let mut new = Vec::new();
                    let mut flush = false;
                    let mut next = Some(cmd);
                    // Take every command waiting: one barrier for the batch.
                    while let Some(c) = next {
                        match c {
                            Command::New(id) => new.push(id),
                            Command::Flush => flush = true,
                        }
                        next = rx.try_recv().ok();
                    }
                    if !new.is_empty() {
                        self.load(new, QueueName::Incoming);
                    }
                    if flush {
                        let ids = self.sched.flush();
                        self.load_ids(ids, QueueName::Deferred);
                        self.rescan(true);
                    }
                }
                ev = ev_rx.recv() => {
                    // The runner holds a sender: the channel never closes first.
                    if let Some(ev) = ev {
                        self.event(ev);
                    }
                }
                _ = ticker.tick() => {
                    let ids = self.sched.due(now_secs());
                    self.load_ids(ids, QueueName::Deferred);
                    self.rescan(false);
                }
            }
        }
    }

    /// active/ back to incoming/, then incoming/ in, deferred/ read.
    async fn startup(&mut self) {
        let layout = self.deps.layout.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            let mut warnings = Vec::new();
            let mut moved_back = 0usize;
            if let Ok(listing) = tern_queue::scan(&layout, QueueName::Active) {
                for e in listing.entries {
                    match tern_queue::scan::move_file(
                        &layout,
                        &e.id,
                        QueueName::Active,
                        QueueName::Incoming,
                    ) {
                        Ok(_) => moved_back += 1,
                        Err(err) => warnings.push(err.to_string()),
                    }
                }
            }
            let incoming: Vec<QueueId> = tern_queue::scan(&layout, QueueName::Incoming)
                .map(|l| l.entries.into_iter().map(|e| e.id).collect())
                .unwrap_or_default();
            let mut deferred = Vec::new();
            if let Ok(listing) = tern_queue::scan(&layout, QueueName::Deferred) {
                for e in listing.entries {
                    match tern_queue::moves::wake_time(&e.path) {
                        Ok(t) => deferred.push((e.id, t)),
                        Err(err) => warnings.push(err.to_string()),
                    }
                }
            }
            let _ = moved_back;
            (incoming, deferred, warnings)
        })
        .await;
        let Ok((incoming, deferred, warnings)) = scanned else {
            return;
        };
        for w in warnings {
            self.warn(&w);
        }
        for (id, t) in deferred {
            self.sched.add_deferred(id.as_str(), t);
        }
        if !incoming.is_empty() {
            self.load(incoming, QueueName::Incoming);
        }
        // Postfix's qmgr scans the deferred queue at start-up too.
        let ids = self.sched.due(now_secs());
        self.load_ids(ids, QueueName::Deferred);
    }

    /// Reads deferred/ (and incoming/) on a blocking thread; the listing comes back as
    /// [`Event::Rescanned`]. Postfix's qmgr scans deferred/ every queue_run_delay; Tern's
    /// knows the messages it deferred itself, and this finds the others.
    fn rescan(&self, now: bool) {
        let layout = self.deps.layout.clone();
        let events = self.events.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(listing) = tern_queue::scan(&layout, QueueName::Deferred) else {
                return;
            };
            let found = listing
                .entries
                .into_iter()
                .filter_map(|e| {
                    tern_queue::moves::wake_time(&e.path)
                        .ok()
                        .map(|t| (e.id.as_str().to_owned(), t))
                })
                .collect();
            let incoming = tern_queue::scan(&layout, QueueName::Incoming)
                .map(|l| {
                    l.entries
                        .into_iter()
                        .map(|e| e.id.as_str().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let _ = events.send(Event::Rescanned {
                found,
                now,
                incoming,
            });
        });
    }

    fn load_ids(&mut self, ids: Vec<String>, from: QueueName) {
        let ids: Vec<QueueId> = ids
            .into_iter()
            .filter_map(|i| QueueId::parse(&i).ok())
            .collect();
        if !ids.is_empty() {
            self.load(ids, from);
        }
    }

    /// Moves `ids` from `from` to active/ and reads them, on a blocking thread; each
    /// comes back as an [`Event::Loaded`].
    fn load(&mut self, ids: Vec<QueueId>, from: QueueName) {
        let ids: Vec<QueueId> = ids
            .into_iter()
            .filter(|id| !self.active.contains_key(id.as_str()))
            .collect();
        let deps = Arc::clone(&self.deps);
        let services = Arc::clone(&self.services);
        let events = self.events.clone();
        let logger = Arc::clone(&self.deps.logger);
        let ident = self.qmgr_ident.clone();
        tokio::task::spawn_blocking(move || {
            if from == QueueName::Incoming {
                deps.committer.barrier();
            }
            for id in ids {
                match load_one(&deps, &services, &id, from) {
                    Ok(Some(l)) => {
                        let _ = events.send(Event::Loaded(Box::new(l)));
                    }
                    Ok(None) => {}
                    Err(text) => logger.log(&ident, &Line::warning(text)),
                }
            }
        });
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Loaded(l) => self.loaded(*l),
            Event::Delivered { job, results, hop } => {
                let mut fates = Vec::with_capacity(results.len());
                if let Some(a) = self
                    .sched
                    .job_queue_id(job)
                    .and_then(|id| self.active.get_mut(id))
                {
                    for (index, fate, dsn, text, failed, passed_on) in results {
                        let notify = a
                            .envelope
                            .recipients
                            .get(index as usize)
                            .map_or(0, |r| r.notify.0);
                        // forward.c: a forwarded recipient's success is reported by the
                        // new message, not here.
                        // smtp(8): a server that offers DSN reports success itself.
                        if fate == Fate::Sent
                            && notify & tern_queue::Notify::SUCCESS != 0
                            && !text.starts_with("forwarded as ")
                            && !passed_on
                        {
                            a.success.push(index);
                        }
                        a.results.insert(index, (dsn, text));
                        if failed.is_empty() {
                            a.failed.remove(&index);
                        } else {
                            a.failed.insert(index, failed);
                        }
                        fates.push((index, fate));
                    }
                    if is_verify(&a.envelope) {
                        a.success.clear();
                        for (index, failed) in std::mem::take(&mut a.failed) {
                            a.traced.extend(failed.into_iter().map(|f| (index, f)));
                        }
                    }
                }
                if let Some(end) = self.sched.complete(job, &fates, hop.as_ref(), now_secs()) {
                    self.pass_end(end);
                }
                self.dispatch();
            }
            Event::Deferred { id, at } => self.sched.add_deferred(&id, at),
            Event::Rescanned {
                found,
                now,
                incoming,
            } => {
                // A file told about but not yet moved is loaded twice at worst: the
                // second rename finds nothing (load_one).
                self.load_ids(incoming, QueueName::Incoming);
                let mut due = Vec::new();
                for (id, at) in found {
                    if self.active.contains_key(id.as_str()) || self.sched.is_deferred(&id) {
                        continue;
                    }
                    if now {
                        due.push(id);
                    } else {
                        self.sched.add_deferred(&id, at);
                    }
                }
                self.load_ids(due, QueueName::Deferred);
            }
        }
    }

    fn loaded(&mut self, l: Loaded) {
        let now = SystemTime::now();
        self.deps.logger.log(
            &self.qmgr_ident,
            &tern_maillog::queue::queue_active(
                l.id.as_str(),
                &l.envelope.sender,
                l.size,
                l.envelope.recipients.len(),
            ),
        );
        let id = l.id.as_str().to_owned();
        let msg = NewMessage {
            id: id.clone(),
            arrival: l.envelope.arrival.sec,
            null_sender: l.envelope.sender.is_empty(),
            warned: l.warned || self.warned.contains(&id),
            recipients: l.recipients.clone(),
        };
        self.active.insert(
            id.clone(),
            Active {
                id: l.id,
                path: l.path,
                envelope: l.envelope,
                log: Arc::new(Mutex::new(l.log)),
                entered: now,
                addresses: l
                    .recipients
                    .iter()
                    .map(|r| (r.index, r.address.clone()))
                    .collect(),
                results: HashMap::new(),
                success: Vec::new(),
                failed: HashMap::new(),
                traced: Vec::new(),
            },
        );
        if let Some(end) = self.sched.add(msg, now_secs()) {
            self.pass_end(end);
        }
        self.dispatch();
    }

    fn dispatch(&mut self) {
        for d in self.sched.dispatch(now_secs()) {
            self.run_request(&d);
        }
    }

    fn run_request(&self, d: &Dispatch) {
        let Some(a) = self.active.get(&d.queue_id) else {
            return;
        };
        let service = self.s.services.get(&d.transport);
        // error(8) and its retry service are Postfix's own: qmgr reaches them even when
        // master.cf lost their lines (they are how qmgr reports resolver trouble).
        let command = match (service, d.transport.as_str()) {
            (Some(s), _) => s.command.clone(),
            (None, "error" | "retry") => "error".to_owned(),
            (None, _) => String::new(),
        };
        let builtin = self.deps.transports.get(&command).cloned().or_else(|| {
            // The queue manager discards mail to double_bounce_sender itself.
            (d.transport == DOUBLE_BOUNCE).then(|| Arc::new(DoubleBounceDiscard) as _)
        });
        let (transport, ident): (Arc<dyn Transport>, Ident) = match builtin {
            // A dead destination: the queue manager defers its mail itself.
            _ if d.suspended.is_some() => (
                Arc::new(Suspended(d.suspended.clone().unwrap_or_else(|| {
                    HopFailure {
                        dsn: "4.0.0".to_owned(),
                        text: SUSPENDED.to_owned(),
                    }
                }))),
                self.qmgr_ident.clone(),
            ),
            Some(t) if d.transport == DOUBLE_BOUNCE => (t, self.qmgr_ident.clone()),
            // A probe goes only to the agents that know verify mode (they deliver
            // nothing); any other would deliver it, so its recipients there are
            // answered as an unreachable transport's.
            Some(_) if is_verify(&a.envelope) && !VERIFY_AGENTS.contains(&command.as_str()) => {
                (Arc::new(Unavailable), self.qmgr_ident.clone())
            }
            Some(t) => {
                let name = service.map_or(self.s.syslog_name.as_str(), |s| &s.syslog_name);
                (t, Ident::new(name, &command))
            }
            None => (Arc::new(Unavailable), self.qmgr_ident.clone()),
        };
        let env = &a.envelope;
        let recipients = d
            .recipients
            .iter()
            .filter_map(|&i| {
                let r = env.recipients.get(i as usize)?;
                let address = a.addresses.get(&i).cloned().unwrap_or_default();
                Some(RequestRecipient {
                    index: i,
                    // The address as the client gave it (cleanup's original-recipient
                    // record); files from before that record: the queued address.
                    orig_rcpt: if r.original.is_empty() {
                        r.address.clone()
                    } else {
                        r.original.clone()
                    },
                    address,
                    dsn_orcpt: r.orcpt.clone(),
                    notify: r.notify.0,
                })
            })
            .collect();
        let req = DeliveryRequest {
            agent: agent_of(&command),
            transport: d.transport.clone(),
            nexthop: d.nexthop.clone(),
            queue_id: d.queue_id.clone(),
            queue_file: a.path.clone(),
            sender: env.sender.clone(),
            arrival: env.arrival.sec,
            envid: env.dsn_envid.clone(),
            recipients,
            verify: is_verify(env),
        };
        let ctx = LogCtx {
            logger: Arc::clone(&self.deps.logger),
            ident,
            delay_resolution: self.s.delay_resolution,
            arrival: UNIX_EPOCH
                + Duration::new(env.arrival.sec, env.arrival.usec.saturating_mul(1000)),
            active_at: a.entered,
            services: Arc::clone(&self.services),
            settings: Arc::clone(&self.s),
            deps: Arc::clone(&self.deps),
        };
        let log = Arc::clone(&a.log);
        let events = self.events.clone();
        let job = d.job;
        tokio::spawn(async move {
            let handoff = SystemTime::now();
            let mut want: Vec<RequestRecipient> = req.recipients.clone();
            let (outcomes, stats) = transport.deliver_with_stats(req.clone()).await;
            let hop = hop_failure(&outcomes, &stats);
            let done = SystemTime::now();
            let delivered = (outcomes, stats);
            let results = record(&req, &mut want, delivered, &log, &ctx, handoff, done).await;
            let _ = events.send(Event::Delivered { job, results, hop });
        });
    }

    fn pass_end(&mut self, end: PassEnd) {
        let Some(a) = self.active.remove(&end.id) else {
            return;
        };
        let deps = Arc::clone(&self.deps);
        let services = Arc::clone(&self.services);
        let events = self.events.clone();
        let qmgr = self.qmgr_ident.clone();
        if end.delay_warning.is_some() {
            self.warned.insert(end.id.clone());
        }
        if end.next == Next::Remove {
            self.warned.remove(&end.id);
        }
        let min_backoff = self.sched.policy().minimal_backoff_time;
        tokio::spawn(async move {
            // The notices made in this pass are taken in after it (below).
            let made: Arc<Mutex<Vec<QueueId>>> = Arc::default();
            let notice = |kind, list: &[u32]| Notice {
                kind,
                queue_id: a.id.as_str().to_owned(),
                queue_file: a.path.clone(),
                envelope: a.envelope.clone(),
                recipients: list
                    .iter()
                    .filter_map(|&i| {
                        let r = a.envelope.recipients.get(i as usize)?;
                        let (dsn, text) = a.results.get(&i).cloned().unwrap_or_default();
                        Some(NoticeRecipient {
                            index: i,
                            address: a.addresses.get(&i).cloned().unwrap_or_default(),
                            orig_address: r.address.clone(),
                            orcpt: r.orcpt.clone(),
                            notify: r.notify.0,
                            dsn,
                            text,
                        })
                    })
                    .collect(),
                to: None,
                made: Some(Arc::clone(&made)),
            };
            let mut ok = true;
            if is_verify(&a.envelope) && !a.traced.is_empty() {
                // bounce_trace_service.c: the report to the sender, one entry per final
                // address. The Original-Recipient is cleanup's ORCPT when the client gave
                // none (cleanup_addr.c: `rfc822;` and the canonical address).
                let n = Notice {
                    recipients: a
                        .traced
                        .iter()
                        .map(|(i, f)| {
                            let r = a.envelope.recipients.get(*i as usize);
                            NoticeRecipient {
                                index: *i,
                                address: f.address.clone(),
                                orig_address: f.orig_to.clone(),
                                orcpt: r.and_then(|r| {
                                    r.orcpt.clone().or_else(|| {
                                        (!r.address.is_empty())
                                            .then(|| format!("rfc822;{}", r.address))
                                    })
                                }),
                                notify: 0,
                                dsn: f.dsn.clone(),
                                text: f.text.clone(),
                            }
                        })
                        .collect(),
                    ..notice(NoticeKind::Verify, &[])
                };
                ok &= notify(&deps, &services, &qmgr, n).await;
            }
            // Each notice is committed before the records that end its recipients are
            // appended (notices.rs, Guarantees): a crash repeats a notice, never loses one.
            if !end.bounced.is_empty() {
                let (owners, to_sender) =
                    bounce_notices(&a, notice(NoticeKind::Bounce, &end.bounced));
                // bounce_one: each failure with an owner- alias is a notice to the
                // owner; a recipient whose failures all went to owners is ended by them.
                for n in owners {
                    let updates = final_updates(&n);
                    ok &= notify(&deps, &services, &qmgr, n).await && append(&a.log, updates).await;
                }
                if let Some(n) = to_sender {
                    let updates = final_updates(&n);
                    ok &= notify(&deps, &services, &qmgr, n).await && append(&a.log, updates).await;
                }
            }
            if let Some(expired) = &end.expired {
                deps.logger.log(
                    &qmgr,
                    &tern_maillog::queue::expired(
                        a.id.as_str(),
                        &a.envelope.sender,
                        tern_maillog::queue::Expiry::Expired,
                    ),
                );
                let n = notice(NoticeKind::Expired, expired);
                let updates = final_updates(&n);
                ok &= notify(&deps, &services, &qmgr, n).await && append(&a.log, updates).await;
            }
            if let Some(list) = &end.delay_warning {
                let n = notice(NoticeKind::DelayWarning, list);
                let mark = n
                    .recipients
                    .first()
                    .map(|r| notices::delay_mark(r, now_secs()));
                if notify(&deps, &services, &qmgr, n).await
                    && let Some(mark) = mark
                {
                    // A lost mark repeats the warning once after a restart.
                    let _ = append(&a.log, mark.to_vec()).await;
                }
            }
            if !a.success.is_empty() {
                // XXX: after the Sent records: a crash here loses the success notice.
                let n = notice(NoticeKind::Success, &a.success);
                let _ = notify(&deps, &services, &qmgr, n).await;
            }
            let next = match end.next {
                Next::Remove if ok => Next::Remove,
                // A notice that could not be sent keeps the message for another pass.
                Next::Remove => Next::Defer(now_secs() + min_backoff),
                other @ Next::Defer(_) => other,
            };
            let id = a.id.clone();
            let layout = deps.layout.clone();
            let committer = Arc::clone(&deps.committer);
            let moved = tokio::task::spawn_blocking(move || match next {
                Next::Remove => {
                    // Before the file goes: its journal record, if still live, must not
                    // bring it back after a crash. A note that cannot be written risks
                    // a second delivery after a crash, never a loss: the file goes.
                    let _ = committer.note_removal(&id);
                    tern_queue::moves::remove_file(&layout, &id, QueueName::Active).map(|_| None)
                }
                Next::Defer(at) => tern_queue::moves::defer_file(
                    &layout,
                    &id,
                    QueueName::Active,
                    QueueName::Deferred,
                    at,
                )
                .map(|_| Some(at)),
            })
            .await;
            match moved {
                Ok(Ok(None)) => deps
                    .logger
                    .log(&qmgr, &tern_maillog::queue::removed(a.id.as_str())),
                Ok(Ok(Some(at))) => {
                    let _ = events.send(Event::Deferred {
                        id: a.id.as_str().to_owned(),
                        at,
                    });
                }
                Ok(Err(e)) => deps.logger.log(&qmgr, &Line::warning(e.to_string())),
                Err(e) => deps.logger.log(&qmgr, &Line::warning(e.to_string())),
            }
            let made = std::mem::take(
                &mut *made
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            for id in &made {
                (services.new_mail)(id);
            }
        });
    }

    fn warn(&self, text: &str) {
        self.deps
            .logger
            .log(&self.qmgr_ident, &Line::warning(text.to_owned()));
    }
}

/// Splits a bounce notice by who gets each failure: the recipients with expanded
/// addresses that bounced (alias, `.forward`) are reported by those addresses, each
/// with its recipient's original (`(expanded from <...>)`, Final-Recipient the expanded
/// address, as local(8)'s bounce_append reports them). A failure of an address with an
/// `owner-` alias is its own notice to the owner (local(8)'s bounce_one: one recipient
/// per notice; the report still names the message's sender); the rest go in the
/// sender's notice (`None` when nothing is left for it).
fn bounce_notices(a: &Active, n: Notice) -> (Vec<Notice>, Option<Notice>) {
    let mut owners: Vec<Notice> = Vec::new();
    let mut rest = Vec::new();
    for r in &n.recipients {
        let Some(failed) = a.failed.get(&r.index) else {
            rest.push(r.clone());
            continue;
        };
        for f in failed {
            // The recipient itself (no expansion) keeps its own original. An expanded
            // address shows the recipient's original (orig_to); none when local(8)
            // dropped it (below an alias with an owner-, alias.c: no orig_addr, no
            // ORCPT, ENVID or RET either).
            let dropped = f.orig_to.is_empty() && f.address != r.address;
            let orig_address = if f.address == r.address {
                r.orig_address.clone()
            } else if dropped {
                f.address.clone()
            } else {
                f.orig_to.clone()
            };
            let nr = NoticeRecipient {
                address: f.address.clone(),
                orig_address,
                orcpt: if dropped { None } else { r.orcpt.clone() },
                dsn: f.dsn.clone(),
                text: f.text.clone(),
                ..r.clone()
            };
            let Some(owner) = &f.owner else {
                rest.push(nr);
                continue;
            };
            let mut envelope = n.envelope.clone();
            if dropped {
                envelope.dsn_envid = None;
                envelope.dsn_ret = None;
            }
            owners.push(Notice {
                envelope,
                recipients: vec![nr],
                to: Some(owner.clone()),
                ..n.clone()
            });
        }
    }
    let to_sender = (!rest.is_empty()).then_some(Notice {
        recipients: rest,
        ..n
    });
    (owners, to_sender)
}

/// The `Bounced` records of the recipients a failure notice reported (one per
/// recipient, however many of its expanded addresses the notice lists).
fn final_updates(n: &Notice) -> Vec<StatusUpdate> {
    let mut seen = HashSet::new();
    n.recipients
        .iter()
        .filter(|r| seen.insert(r.index))
        .map(|r| StatusUpdate {
            recipient: r.index,
            status: DeliveryStatus::Bounced,
            time: now_secs(),
            dsn: r.dsn.clone(),
            diagnostic: r.text.clone(),
        })
        .collect()
}

/// Appends status records on a blocking thread; false when they may not be on disk.
async fn append(log: &Arc<Mutex<StatusLog>>, updates: Vec<StatusUpdate>) -> bool {
    let log = Arc::clone(log);
    let appended = tokio::task::spawn_blocking(move || {
        log.lock()
            .map_err(|e| e.to_string())?
            .append(&updates)
            .map_err(|e| e.to_string())
    })
    .await;
    matches!(appended, Ok(Ok(())))
}

async fn notify(deps: &Deps, services: &Services, qmgr: &Ident, n: Notice) -> bool {
    let id = n.queue_id.clone();
    match services.notices.notify(n).await {
        Ok(()) => true,
        Err(e) => {
            deps.logger
                .log(qmgr, &Line::warning(format!("{id}: notice failed: {e}")));
            false
        }
    }
}

/// The request's agent field. XXX: tern_delivery's `Agent` names only the helper's
/// agents; the daemon's own (discard, error) and remote ones get `Local`, which their
/// transports ignore.
fn agent_of(command: &str) -> Agent {
    match command {
        "virtual" => Agent::Virtual,
        "pipe" => Agent::Pipe,
        _ => Agent::Local,
    }
}

/// Moves one message to active/, reads it and resolves its pending recipients. `None`
/// when the file is gone (removed by postsuper, or taken already).
fn load_one(
    deps: &Deps,
    services: &Services,
    id: &QueueId,
    from: QueueName,
) -> Result<Option<Loaded>, String> {
    let layout = &deps.layout;
    let path = match tern_queue::scan::move_file_unsynced(layout, id, from, QueueName::Active) {
        Ok(path) => path,
        // Gone meanwhile (postsuper -d, or loaded twice): nothing to do.
        Err(tern_queue::Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => {
            return Err(format!(
                "{id}: rename from {} to active: {e}",
                from.as_str()
            ));
        }
    };
    let (log, qf, _torn) = match StatusLog::open(&path) {
        Ok(x) => x,
        Err(tern_queue::Error::Read { source, .. }) => {
            // qmgr_active_corrupt: keep the file for a human to look at.
            let entry = tern_queue::QueueEntry {
                id: id.clone(),
                path: path.clone(),
            };
            let _ = tern_queue::scan::move_to_corrupt(layout, &entry);
            return Err(format!(
                "saving corrupt file \"{id}\" from queue \"active\" to queue \"corrupt\": {source}"
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let pending: Vec<(u32, &str)> = qf
        .pending()
        .map(|(i, r)| (u32::try_from(i).unwrap_or(u32::MAX), r.address.as_str()))
        .collect();
    // REDIRECT and FILTER override the resolver (module actions).
    let recipients = super::actions::recipients(
        &qf.envelope,
        &pending,
        is_verify(&qf.envelope),
        &services.filter,
        |index, address| {
            resolve(
                &deps.resolver,
                &services.double_bounce_sender,
                &qf.envelope.sender,
                index,
                address,
            )
        },
        |address| {
            tern_rewrite::address::rewrite(
                &deps.resolver.settings,
                tern_rewrite::Context::Local,
                address,
            )
        },
    );
    // Only a message that may be warned about needs the look at its status records.
    let warned = services.delay_warnings
        && notices::delay_warned(&path, &qf).map_err(|e| format!("{id}: read: {e}"))?;
    Ok(Some(Loaded {
        id: id.clone(),
        path,
        size: qf.content_len,
        envelope: qf.envelope,
        log,
        recipients,
        warned,
    }))
}

/// One recipient's transport and next hop (qmgr_message_resolve): a null address
/// bounces, a malformed domain bounces, a table that fails defers, and a local address
/// whose local part is double_bounce_sender is discarded by qmgr itself.
/// The recipient's transport and next hop; `sender` (the message's envelope sender)
/// picks sender_dependent_relayhost_maps and sender_dependent_default_transport_maps.
fn resolve(
    resolver: &Resolver,
    double_bounce: &str,
    sender: &str,
    index: u32,
    address: &str,
) -> Rcpt {
    let error = |transport: &str, text: &str| Rcpt {
        index,
        transport: transport.to_owned(),
        nexthop: text.to_owned(),
        address: address.to_owned(),
    };
    if address.is_empty() {
        return error("error", "5.1.3 null recipient address");
    }
    match resolver.resolve_from(Some(sender), address) {
        Ok(r) if r.flags.error => error("error", "5.1.3 bad address syntax"),
        Ok(r)
            if r.class == tern_rewrite::Class::Local && {
                let local = r
                    .recipient
                    .rsplit_once('@')
                    .map_or(&*r.recipient, |(l, _)| l);
                local.eq_ignore_ascii_case(double_bounce)
            } =>
        {
            Rcpt {
                index,
                transport: DOUBLE_BOUNCE.to_owned(),
                nexthop: String::new(),
                address: r.recipient,
            }
        }
        Ok(r) => Rcpt {
            index,
            transport: r.transport,
            nexthop: r.nexthop,
            address: r.recipient,
        },
        Err(_) => error("retry", "4.3.0 address resolver failure"),
    }
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The agent's hop status: the status of a recipient deferred by a failure of the
/// server as a whole (SessionStats::throttle), if any.
fn hop_failure(
    outcomes: &[Outcome],
    stats: &[super::transports::SessionStats],
) -> Option<HopFailure> {
    stats.iter().filter(|s| s.throttle).find_map(|s| {
        outcomes
            .iter()
            .find(|o| o.index == s.index)
            .and_then(|o| match &o.result {
                Delivered::Deferred { dsn, text } => Some(HopFailure {
                    dsn: dsn.clone(),
                    text: text.clone(),
                }),
                _ => None,
            })
    })
}
