//! The queue manager's scheduler, without I/O: the messages of the active queue with
//! each recipient's state, the delivery requests cut from them under the transports'
//! and destinations' limits, the end of a message's pass (remove, defer with Postfix's
//! backoff, expire, warn), and the deferred queue's times. Time is a parameter (seconds
//! since the epoch), never read here, so tests run days of retries in milliseconds.
//!
//! The rules, from Postfix 3.7's qmgr(8) and its sources:
//! - A delivery request holds the pending recipients of one message that go to one
//!   transport and next hop, at most `<transport>_destination_recipient_limit` of them
//!   (default_destination_recipient_limit, 50; local's is 1). With a limit of 1 the
//!   "destination" whose concurrency is counted is the recipient itself, as Postfix's
//!   per-recipient queues (qmgr(8): "transport_destination_recipient_limit").
//! - At most `maxproc` (master.cf; `-` is default_process_limit, 100; 0 is no limit)
//!   requests of one transport run at once, and at most the destination's window of one
//!   destination. The window starts at initial_destination_concurrency (5) and moves
//!   between 1 and `<transport>_destination_concurrency_limit`
//!   (default_destination_concurrency_limit, 20) with Postfix's default feedback of
//!   1/window (qmgr_queue.c, qmgr_queue_unthrottle/throttle): a request that ends
//!   without a failure of the destination itself adds 1/window while the window is in
//!   use (under in-flight + initial_destination_concurrency), and a window's worth moves
//!   it up by one; a request whose agent reports the destination failed (the agent's
//!   *hop status*, [`HopFailure`]: a connection refused, a greeting refused, a lost
//!   session) takes the window down by one at once and then by one per window's worth.
//! - Each such failure also adds 1/window to the destination's failed cohorts; when they
//!   reach `<transport>_destination_concurrency_failed_cohort_limit`
//!   (default_destination_concurrency_failed_cohort_limit, 1; 0 never) the destination
//!   is *dead*: for minimal_backoff_time no request goes to it, and every recipient
//!   waiting for it (or arriving meanwhile) is deferred at once with the agent's status
//!   and `delivery temporarily suspended: ` before its text (qmgr_deliver.c,
//!   qmgr_defer_todo). Then the window starts again at initial_destination_concurrency.
//!   Any request that ends without a hop failure clears the failed cohorts.
//! - `<transport>_destination_rate_delay` (default_destination_rate_delay, 0: off): a
//!   window of one, and a pause of that many seconds after each delivery to the
//!   destination before the next starts.
//! - When a message has no recipient pending or in flight, its pass ends
//!   (qmgr_active.c, qmgr_active_done_25_generic / _3_generic): with recipients left to
//!   retry, it expires if `now >= arrival + maximal_queue_lifetime`
//!   (bounce_queue_lifetime for the null sender, never more than maximal_queue_lifetime),
//!   which returns those recipients to the sender; else a delay warning is due once
//!   `now >= arrival + delay_warning_time - 1` (0 turns warnings off); and the message
//!   waits in deferred/ for `now - arrival` seconds, but at least minimal_backoff_time
//!   and at most maximal_backoff_time (the minimum wins when the two cross). So the wait
//!   doubles from one attempt to the next, up to the maximum.
//! - The deferred queue is scanned every queue_run_delay; a message is taken when its
//!   time is at most one second ahead (qmgr_active_feed). A flush (`postqueue -f`) takes
//!   every deferred message whatever its time.
//!
//! Trust: the caller's inputs (resolved recipients, outcomes); nothing here reads the
//! network or a file.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Seconds since the epoch.
pub type Time = u64;

/// The queue manager's time parameters, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub queue_run_delay: u64,
    pub minimal_backoff_time: u64,
    pub maximal_backoff_time: u64,
    pub maximal_queue_lifetime: u64,
    pub bounce_queue_lifetime: u64,
    /// 0: no delay warnings.
    pub delay_warning_time: u64,
}

impl Default for Policy {
    /// Postfix 3.7's defaults.
    fn default() -> Self {
        Self {
            queue_run_delay: 300,
            minimal_backoff_time: 300,
            maximal_backoff_time: 4000,
            maximal_queue_lifetime: 5 * 86_400,
            bounce_queue_lifetime: 5 * 86_400,
            delay_warning_time: 0,
        }
    }
}

/// The limits of one transport (0 means no limit, as in Postfix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// master.cf maxproc.
    pub process_limit: usize,
    /// `<transport>_destination_concurrency_limit`.
    pub destination_concurrency: usize,
    /// initial_destination_concurrency.
    pub initial_concurrency: usize,
    /// `<transport>_destination_recipient_limit`.
    pub recipient_limit: usize,
    /// `<transport>_destination_concurrency_failed_cohort_limit` (0: never dead).
    pub failed_cohort_limit: usize,
    /// `<transport>_destination_rate_delay`, seconds (0: off).
    pub rate_delay: u64,
}

impl Default for Limits {
    /// Postfix's defaults for a transport without settings of its own.
    fn default() -> Self {
        Self {
            process_limit: 100,
            destination_concurrency: 20,
            initial_concurrency: 5,
            recipient_limit: 50,
            failed_cohort_limit: 1,
            rate_delay: 0,
        }
    }
}

/// A delivery agent's report that the destination itself failed (Postfix's hop status,
/// deliver_request's `hop_status`): the status and text that apply to the whole
/// destination, e.g. `4.4.1` `connect to mx.example.com[192.0.2.1]:25: Connection
/// refused`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopFailure {
    pub dsn: String,
    pub text: String,
}

/// The text Postfix puts before a dead destination's status (qmgr_deliver.c).
pub const SUSPENDED: &str = "delivery temporarily suspended: ";

/// A recipient of a message entering the active queue, already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    /// The recipient's index in the queue file.
    pub index: u32,
    pub transport: String,
    pub nexthop: String,
    /// The address to deliver to.
    pub address: String,
}

/// A message entering the active queue: only its recipients still to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: String,
    pub arrival: Time,
    /// Whether the envelope sender is the null sender `<>` (bounce_queue_lifetime).
    pub null_sender: bool,
    /// Whether a delay warning was sent already.
    pub warned: bool,
    pub recipients: Vec<Rcpt>,
}

/// One delivery request to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub job: u64,
    pub queue_id: String,
    pub transport: String,
    pub nexthop: String,
    /// Queue file indexes of the recipients.
    pub recipients: Vec<u32>,
    /// Set when the destination is dead: no agent is to run; the recipients are
    /// deferred with this status and text (which begins with [`SUSPENDED`]), logged by
    /// the queue manager with relay `none`.
    pub suspended: Option<HopFailure>,
}

/// What became of one recipient of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Sent,
    Deferred,
    Bounced,
}

/// The end of a message's pass through the active queue: what the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassEnd {
    pub id: String,
    /// Recipients that bounced in this pass (the notices hook returns them).
    pub bounced: Vec<u32>,
    /// Set when the message expired: its deferred recipients, now returned to the
    /// sender (`status=expired, returned to sender`).
    pub expired: Option<Vec<u32>>,
    /// Set when a delay warning is due: the deferred recipients.
    pub delay_warning: Option<Vec<u32>>,
    pub next: Next,
}

/// Where a message goes after its pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Every recipient is done: remove the queue file.
    Remove,
    /// To deferred/, due at this time.
    Defer(Time),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    InFlight,
    Done(Fate),
}

#[derive(Debug)]
struct RcptState {
    rcpt: Rcpt,
    state: State,
    /// The job that holds it while in flight.
    job: u64,
    /// The fate of this pass (cleared when the message enters the active queue).
    fate: Option<Fate>,
}

#[derive(Debug)]
struct Msg {
    arrival: Time,
    null_sender: bool,
    warned: bool,
    rcpts: Vec<RcptState>,
    jobs: usize,
}

#[derive(Debug)]
struct Job {
    queue_id: String,
    transport: String,
    dest: String,
    /// A dead destination's deferral: no agent ran, and it counts for nothing.
    suspended: bool,
}

/// A destination queue: transport, next hop, and the destination proper (the next hop,
/// or the address when the transport takes one recipient per request).
type DestKey = (String, String, String);

/// A destination's concurrency window (qmgr_queue.c).
#[derive(Debug, Clone)]
struct Window {
    size: usize,
    /// Positive feedback gathered towards the next step up (qmgr_queue.c `success`).
    success: f64,
    /// Negative feedback left before the next step down (qmgr_queue.c `failure`).
    failure: f64,
    /// Failed cohorts (qmgr_queue.c `fail_cohorts`).
    fail_cohorts: f64,
    in_flight: usize,
    /// Dead until this time, with the status its waiting recipients get.
    dead: Option<(Time, HopFailure)>,
    /// With a rate delay: no request before this time.
    next_at: Time,
}

/// The scheduler. See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    policy: Policy,
    limits: HashMap<String, Limits>,
    default_limits: Limits,
    /// Active messages in the order they entered (round robin starts from the oldest).
    messages: BTreeMap<u64, String>,
    by_id: HashMap<String, (u64, Msg)>,
    seq: u64,
    jobs: HashMap<u64, Job>,
    next_job: u64,
    procs: HashMap<String, usize>,
    windows: HashMap<(String, String), Window>,
    /// Per destination (transport, nexthop, destination key), the active messages with
    /// recipients pending for it, oldest first (qmgr_queue.c's per-destination queues):
    /// a dispatch looks only at destinations, and at a destination's oldest messages, so
    /// its cost does not grow with a backlog waiting behind a full window. Entries of
    /// messages that left are dropped when met.
    queues: BTreeMap<DestKey, VecDeque<u64>>,
    deferred: BTreeSet<(Time, String)>,
    deferred_at: HashMap<String, Time>,
}

impl Scheduler {
    pub fn new(policy: Policy, default_limits: Limits, limits: HashMap<String, Limits>) -> Self {
        Self {
            policy,
            limits,
            default_limits,
            messages: BTreeMap::new(),
            by_id: HashMap::new(),
            seq: 0,
            jobs: HashMap::new(),
            next_job: 1,
            procs: HashMap::new(),
            windows: HashMap::new(),
            queues: BTreeMap::new(),
            deferred: BTreeSet::new(),
            deferred_at: HashMap::new(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The limits of `transport`.
    pub fn limits(&self, transport: &str) -> Limits {
        self.limits
            .get(transport)
            .copied()
            .unwrap_or(self.default_limits)
    }

    /// How many messages are in the active queue.
    pub fn active(&self) -> usize {
        self.by_id.len()
    }

    /// Whether `id` is in the active queue.
    pub fn is_active(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// How many messages wait in the deferred queue.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// A message enters the active queue. A message with no recipient left ends its
    /// pass at once (a crash came between the last status record and the removal).
    pub fn add(&mut self, m: NewMessage, now: Time) -> Option<PassEnd> {
        self.forget_deferred(&m.id);
        let msg = Msg {
            arrival: m.arrival,
            null_sender: m.null_sender,
            warned: m.warned,
            rcpts: m
                .recipients
                .into_iter()
                .map(|rcpt| RcptState {
                    rcpt,
                    state: State::Pending,
                    job: 0,
                    fate: None,
                })
                .collect(),
            jobs: 0,
        };
        self.seq += 1;
        let mut keys: Vec<DestKey> = msg.rcpts.iter().map(|r| self.dest_key(&r.rcpt)).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            self.queues.entry(key).or_default().push_back(self.seq);
        }
        self.messages.insert(self.seq, m.id.clone());
        self.by_id.insert(m.id.clone(), (self.seq, msg));
        self.maybe_end(&m.id, now)
    }

    /// The destination a recipient is queued for: per address when the transport's
    /// recipient limit is 1 (Postfix's per-recipient destinations), else per next hop.
    fn dest_key(&self, r: &Rcpt) -> DestKey {
        let dest = if self.limits(&r.transport).recipient_limit == 1 {
            r.address.to_ascii_lowercase()
        } else {
            r.nexthop.to_ascii_lowercase()
        };
        (r.transport.clone(), r.nexthop.clone(), dest)
    }

    /// The delivery requests that may start now: per destination, its oldest messages
    /// first, while the transport's process limit and the destination's window allow.
    pub fn dispatch(&mut self, now: Time) -> Vec<Dispatch> {
        let mut out = Vec::new();
        let keys: Vec<DestKey> = self.queues.keys().cloned().collect();
        for key in keys {
            self.dispatch_destination(&key, now, &mut out);
        }
        out
    }

    fn dispatch_destination(&mut self, key: &DestKey, now: Time, out: &mut Vec<Dispatch>) {
        let (transport, nexthop, dest) = key;
        let limits = self.limits(transport);
        let mut per_request = if limits.recipient_limit == 0 {
            usize::MAX
        } else {
            limits.recipient_limit
        };
        let initial = self.initial_size(transport);
        let stepped_back = now.saturating_add(self.policy.minimal_backoff_time);
        let w = self.window_mut(transport, dest);
        let suspended = match &w.dead {
            // The wait is over (or the clock stepped back over it): another chance.
            Some((until, _)) if now >= *until || *until > stepped_back => {
                revive(w, initial);
                None
            }
            Some((_, hop)) => Some(hop.clone()),
            None => None,
        };
        if suspended.is_some() {
            per_request = usize::MAX;
        }
        loop {
            let procs = self.procs.get(transport).copied().unwrap_or(0);
            if suspended.is_none() {
                if limits.process_limit != 0 && procs >= limits.process_limit {
                    return;
                }
                let w = self.window_mut(transport, dest);
                let size = if limits.rate_delay > 0 { 1 } else { w.size };
                if size != 0 && w.in_flight >= size {
                    return;
                }
                // (A next_at further ahead than the delay predates a step back.)
                if limits.rate_delay > 0 && now < w.next_at && w.next_at <= now + limits.rate_delay
                {
                    return;
                }
            }
            let Some(&seq) = self.queues.get(key).and_then(VecDeque::front) else {
                self.queues.remove(key);
                return;
            };
            let Some(id) = self.messages.get(&seq).cloned() else {
                // The message left the active queue.
                self.pop_queue(key);
                continue;
            };
            let chunk: Vec<usize> = {
                let Some((_, msg)) = self.by_id.get(&id) else {
                    self.pop_queue(key);
                    continue;
                };
                msg.rcpts
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.state == State::Pending && self.is_for(&r.rcpt, key))
                    .map(|(i, _)| i)
                    .take(per_request)
                    .collect()
            };
            if chunk.is_empty() {
                self.pop_queue(key);
                continue;
            }
            let job = self.next_job;
            self.next_job += 1;
            if suspended.is_none() {
                *self.procs.entry(transport.clone()).or_insert(0) += 1;
                self.window_mut(transport, dest).in_flight += 1;
            }
            let Some((_, msg)) = self.by_id.get_mut(&id) else {
                return;
            };
            msg.jobs += 1;
            let mut recipients = Vec::with_capacity(chunk.len());
            for &i in &chunk {
                let r = &mut msg.rcpts[i];
                r.state = State::InFlight;
                r.job = job;
                recipients.push(r.rcpt.index);
            }
            self.jobs.insert(
                job,
                Job {
                    queue_id: id.clone(),
                    transport: transport.clone(),
                    dest: dest.clone(),
                    suspended: suspended.is_some(),
                },
            );
            out.push(Dispatch {
                job,
                queue_id: id,
                transport: transport.clone(),
                nexthop: nexthop.clone(),
                recipients,
                suspended: suspended.clone(),
            });
        }
    }

    /// Whether `r` is queued for `key` (as [`Scheduler::dest_key`], without allocating).
    fn is_for(&self, r: &Rcpt, key: &DestKey) -> bool {
        let dest = if self.limits(&r.transport).recipient_limit == 1 {
            &r.address
        } else {
            &r.nexthop
        };
        r.transport == key.0 && r.nexthop == key.1 && dest.eq_ignore_ascii_case(&key.2)
    }

    fn pop_queue(&mut self, key: &DestKey) {
        if let Some(q) = self.queues.get_mut(key) {
            q.pop_front();
            if q.is_empty() {
                self.queues.remove(key);
            }
        }
    }

    /// A request finished with these fates (by queue file index); a recipient of the
    /// request without a fate is taken as deferred (an agent that lost track of it).
    /// `hop` is the agent's report that the destination itself failed. Returns the
    /// message's pass end when this was its last work.
    pub fn complete(
        &mut self,
        job: u64,
        fates: &[(u32, Fate)],
        hop: Option<&HopFailure>,
        now: Time,
    ) -> Option<PassEnd> {
        let j = self.jobs.remove(&job)?;
        if !j.suspended
            && let Some(p) = self.procs.get_mut(&j.transport)
        {
            *p = p.saturating_sub(1);
        }
        let limits = self.limits(&j.transport);
        let (_, msg) = self.by_id.get_mut(&j.queue_id)?;
        msg.jobs = msg.jobs.saturating_sub(1);
        for r in msg.rcpts.iter_mut().filter(|r| r.job == job) {
            if r.state != State::InFlight {
                continue;
            }
            let fate = fates
                .iter()
                .find(|(i, _)| *i == r.rcpt.index)
                .map_or(Fate::Deferred, |(_, f)| *f);
            r.state = State::Done(fate);
            r.fate = Some(fate);
        }
        if !j.suspended {
            let initial = self.initial_size(&j.transport);
            let min_backoff = self.policy.minimal_backoff_time;
            let w = self.window_mut(&j.transport, &j.dest);
            match hop {
                Some(h) => throttle(w, &limits, h, now + min_backoff),
                None => unthrottle(w, &limits, initial),
            }
            w.in_flight = w.in_flight.saturating_sub(1);
            if limits.rate_delay > 0 {
                w.next_at = now + limits.rate_delay;
            }
        }
        self.maybe_end(&j.queue_id, now)
    }

    /// The earliest time a destination with mail waiting opens again (a dead one's
    /// wait ends, a rate delay passes), when there is one: the caller dispatches then.
    pub fn next_wakeup(&self, now: Time) -> Option<Time> {
        self.queues
            .keys()
            .filter_map(|(transport, _, dest)| {
                let w = self.windows.get(&(transport.clone(), dest.clone()))?;
                // Never further ahead than the wait itself: a time beyond that was set
                // before the wall clock stepped back.
                let at = match &w.dead {
                    Some((until, _)) => (*until).min(now + self.policy.minimal_backoff_time),
                    None if self.limits(transport).rate_delay > 0 => {
                        w.next_at.min(now + self.limits(transport).rate_delay)
                    }
                    None => return None,
                };
                (at > now).then_some(at)
            })
            .min()
    }

    /// Whether a destination is dead now (for tests and the log).
    pub fn is_dead(&self, transport: &str, dest: &str) -> bool {
        self.windows
            .get(&(transport.to_owned(), dest.to_owned()))
            .is_some_and(|w| w.dead.is_some())
    }

    /// The message a running request belongs to.
    pub fn job_queue_id(&self, job: u64) -> Option<&str> {
        self.jobs.get(&job).map(|j| j.queue_id.as_str())
    }

    /// The current window of a destination (for tests and the log).
    pub fn window_size(&self, transport: &str, dest: &str) -> Option<usize> {
        self.windows
            .get(&(transport.to_owned(), dest.to_owned()))
            .map(|w| w.size)
    }

    /// A message was moved to deferred/ (after its pass), or found there at start-up,
    /// due at `at`.
    pub fn add_deferred(&mut self, id: &str, at: Time) {
        self.forget_deferred(id);
        self.deferred.insert((at, id.to_owned()));
        self.deferred_at.insert(id.to_owned(), at);
    }

    /// Whether `id` waits in the deferred set.
    pub fn is_deferred(&self, id: &str) -> bool {
        self.deferred_at.contains_key(id)
    }

    /// A deferred queue scan at `now`: the messages due (at most a second ahead), taken
    /// out of the deferred set, oldest time first. A time further ahead than any backoff
    /// can set was set before the wall clock stepped back: that message is due now too,
    /// so that a step back delays no retry by the size of the step. (Postfix's
    /// qmgr_active_feed() skips it until the clock catches up.)
    pub fn due(&mut self, now: Time) -> Vec<String> {
        let limit = now.saturating_add(1);
        let stepped = now.saturating_add(self.longest_wait()).saturating_add(1);
        let taken: Vec<(Time, String)> = self
            .deferred
            .iter()
            .take_while(|(t, _)| *t <= limit)
            .chain(
                self.deferred
                    .range((stepped.max(limit) + 1, String::new())..),
            )
            .cloned()
            .collect();
        for (t, id) in &taken {
            self.deferred.remove(&(*t, id.clone()));
            self.deferred_at.remove(id);
        }
        taken.into_iter().map(|(_, id)| id).collect()
    }

    /// `postqueue -f`: every deferred message, whatever its time.
    pub fn flush(&mut self) -> Vec<String> {
        self.deferred_at.clear();
        std::mem::take(&mut self.deferred)
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }

    /// The backoff after a pass that ends at `now` for a message that arrived at
    /// `arrival` (qmgr_active_done_3_generic).
    pub fn backoff(&self, arrival: Time, now: Time) -> u64 {
        let p = &self.policy;
        now.saturating_sub(arrival)
            .min(p.maximal_backoff_time)
            .max(p.minimal_backoff_time)
    }

    /// The longest wait the scheduler itself sets (a backoff or a dead destination's
    /// suspension): a time further ahead than this means the clock stepped back.
    fn longest_wait(&self) -> u64 {
        self.policy
            .maximal_backoff_time
            .max(self.policy.minimal_backoff_time)
    }

    fn forget_deferred(&mut self, id: &str) {
        if let Some(t) = self.deferred_at.remove(id) {
            self.deferred.remove(&(t, id.to_owned()));
        }
    }

    /// A new window's size: initial_destination_concurrency, within the limit.
    fn initial_size(&self, transport: &str) -> usize {
        let limits = self.limits(transport);
        let mut size = limits.initial_concurrency.max(1);
        if limits.destination_concurrency != 0 {
            size = size.min(limits.destination_concurrency);
        }
        size
    }

    fn window_mut(&mut self, transport: &str, dest: &str) -> &mut Window {
        let size = self.initial_size(transport);
        self.windows
            .entry((transport.to_owned(), dest.to_owned()))
            .or_insert_with(|| Window {
                size,
                success: 0.0,
                failure: 0.0,
                fail_cohorts: 0.0,
                in_flight: 0,
                dead: None,
                next_at: 0,
            })
    }

    /// Ends the pass of `id` when nothing is pending or in flight.
    fn maybe_end(&mut self, id: &str, now: Time) -> Option<PassEnd> {
        let (_, msg) = self.by_id.get(id)?;
        if msg.jobs > 0 || msg.rcpts.iter().any(|r| !matches!(r.state, State::Done(_))) {
            return None;
        }
        let (seq, msg) = self.by_id.remove(id)?;
        self.messages.remove(&seq);
        let of = |f: Fate| -> Vec<u32> {
            msg.rcpts
                .iter()
                .filter(|r| r.fate == Some(f))
                .map(|r| r.rcpt.index)
                .collect()
        };
        let bounced = of(Fate::Bounced);
        let deferred = of(Fate::Deferred);
        let p = &self.policy;
        if deferred.is_empty() {
            return Some(PassEnd {
                id: id.to_owned(),
                bounced,
                expired: None,
                delay_warning: None,
                next: Next::Remove,
            });
        }
        let lifetime = if msg.null_sender {
            p.bounce_queue_lifetime.min(p.maximal_queue_lifetime)
        } else {
            p.maximal_queue_lifetime
        };
        if now >= msg.arrival.saturating_add(lifetime) {
            return Some(PassEnd {
                id: id.to_owned(),
                bounced,
                expired: Some(deferred),
                delay_warning: None,
                next: Next::Remove,
            });
        }
        let warn = p.delay_warning_time > 0
            && !msg.warned
            && now
                >= msg
                    .arrival
                    .saturating_add(p.delay_warning_time)
                    .saturating_sub(1);
        let at = now.saturating_add(self.backoff(msg.arrival, now));
        Some(PassEnd {
            id: id.to_owned(),
            bounced,
            expired: None,
            delay_warning: warn.then_some(deferred),
            next: Next::Defer(at),
        })
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;

/// qmgr_queue_unthrottle(): a request ended without a failure of the destination.
fn unthrottle(w: &mut Window, limits: &Limits, initial: usize) {
    if w.dead.is_some() {
        revive(w, initial);
        return;
    }
    let cap = limits.destination_concurrency;
    // Grow only a window that is in use (busy + the initial concurrency's margin).
    if (cap == 0 || cap > w.size) && w.size < w.in_flight + limits.initial_concurrency {
        let feedback = 1.0 / as_f64(w.size.max(1));
        w.success += feedback;
        // At most a few steps: the loop ends as `success` falls by one per step.
        for _ in 0..4 {
            if w.success + feedback / 2.0 < 1.0 {
                break;
            }
            w.size += 1;
            w.success -= 1.0;
            w.failure = 0.0;
        }
        if cap > 0 && w.size > cap {
            w.size = cap;
        }
    }
    w.fail_cohorts = 0.0;
}

/// qmgr_queue_throttle(): the agent reported that the destination failed.
fn throttle(w: &mut Window, limits: &Limits, hop: &HopFailure, dead_until: Time) {
    if w.dead.is_some() {
        return;
    }
    let size = as_f64(w.size.max(1));
    let dead = limits.failed_cohort_limit > 0 && {
        w.fail_cohorts += 1.0 / size;
        w.fail_cohorts >= as_f64(limits.failed_cohort_limit)
    };
    if w.size > 1 {
        let feedback = 1.0 / size;
        w.failure -= feedback;
        for _ in 0..4 {
            if w.failure - feedback / 2.0 >= 0.0 || w.size <= 1 {
                break;
            }
            w.size -= 1;
            w.success = 0.0;
            w.failure += 1.0;
        }
    }
    if dead {
        let text = if hop.text.starts_with(SUSPENDED) {
            hop.text.clone()
        } else {
            format!("{SUSPENDED}{}", hop.text)
        };
        w.dead = Some((
            dead_until,
            HopFailure {
                dsn: hop.dsn.clone(),
                text,
            },
        ));
    }
}

/// A dead destination's wait is over, or a delivery to it worked: start again.
fn revive(w: &mut Window, initial: usize) {
    w.dead = None;
    w.size = initial;
    w.success = 0.0;
    w.failure = 0.0;
    w.fail_cohorts = 0.0;
}

/// A count as a float, exactly (windows and limits are far below 2^32).
fn as_f64(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}
