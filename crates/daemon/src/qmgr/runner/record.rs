//! What qmgr makes of a delivery agent's outcomes: status records (one append per
//! request), the per-recipient log lines, the new messages for forwarded addresses
//! (local(8)'s alias and `.forward` results for other transports), and the addresses
//! local(8) passes to another transport (mailbox_transport, fallback_transport:
//! [`Delivered::Pass`]), delivered here through that transport before anything is
//! recorded, as local(8)'s deliver_pass waits for the other agent.

use tern_delivery::request::ExpandedOutcome;

use super::{
    Arc, Delays, Delivered, Delivery, DeliveryRequest, DeliveryStatus, Deps, Duration, Fate,
    ForwardMsg, Ident, Line, Logger, Mutex, NewRecipient, Outcome, QmgrSettings, QueueId,
    RequestRecipient, Services, Status, StatusLog, StatusUpdate, SystemTime, Transport, UNIX_EPOCH,
    Unavailable, agent_of, dlog,
};
use crate::qmgr::transports::SessionStats;

/// What the per-recipient log lines need.
pub(super) struct LogCtx {
    pub(super) logger: Arc<Logger>,
    pub(super) ident: Ident,
    pub(super) delay_resolution: u32,
    pub(super) arrival: SystemTime,
    pub(super) active_at: SystemTime,
    pub(super) services: Arc<Services>,
    /// The transports by master.cf service, for local(8)'s passes.
    pub(super) settings: Arc<QmgrSettings>,
    pub(super) deps: Arc<Deps>,
}

/// An expanded address (alias or `.forward` result) that bounced: the notice reports
/// it rather than the queue file's recipient, as Postfix's local(8) calls bounce_append
/// (or bounce_one, for an `owner-` alias) with the expanded address.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    pub(super) address: String,
    /// The original recipient (`orig_to`); empty: the queue file's recipient.
    pub(super) orig_to: String,
    pub(super) dsn: String,
    pub(super) text: String,
    /// The `owner-` alias that gets the notice instead of the sender.
    pub(super) owner: Option<String>,
}

/// A recipient's result in a request: index, fate, dsn, text, its expanded addresses
/// that bounced (empty: report the recipient itself), and whether the next server took
/// over NOTIFY=SUCCESS (smtp(8) to a server that offers DSN: no success notice here).
///
/// For a `sendmail -bv` probe ([`DeliveryRequest::verify`]) the fate is always `Sent`
/// (Postfix's sent/defer/bounce_append with DEL_REQ_FLAG_USR_VRFY end the recipient
/// with a trace record) and the list holds every final address with its result, its
/// text already `delivery via RELAY: TEXT` (trace.c), in the order they were logged:
/// the lines of the "Mail Delivery Status Report".
pub(super) type RcptResult = (u32, Fate, String, String, Vec<Failed>, bool);

/// Another program's log line for one expanded entry: its ident and `relay=`.
type LineOwner = Option<(Ident, String)>;
/// The entries (outcome, entry) of one pass request: its transport and next hop.
type PassGroup = (String, String, Vec<(usize, usize)>);

/// Turns outcomes into status records (one append), log lines and fates.
///
/// Forwarded addresses (local(8)'s [`Delivered::Forward`], as an outcome or among its
/// expanded results) are queued as new messages first, one per sender and prepended
/// header lines, as forward.c does; the recipient is recorded as sent only after that,
/// so a crash repeats a forward, never loses one. A bounced recipient gets no record
/// here: its `Bounced` record follows its notice at the end of the pass.
pub(super) async fn record(
    req: &DeliveryRequest,
    want: &mut Vec<RequestRecipient>,
    (outcomes, stats): (Vec<Outcome>, Vec<SessionStats>),
    log: &Arc<Mutex<StatusLog>>,
    ctx: &LogCtx,
    handoff: SystemTime,
    done: SystemTime,
) -> Vec<RcptResult> {
    let since = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
    let delays = Delays {
        total: since(ctx.arrival, done),
        before_qmgr: since(ctx.arrival, ctx.active_at),
        in_qmgr: since(ctx.active_at, handoff),
        conn_setup: Duration::ZERO,
        transmission: since(handoff, done),
    };
    let time = done.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut matched = Vec::new();
    for o in outcomes {
        let Some(pos) = want.iter().position(|r| r.index == o.index) else {
            continue; // not one of ours, or answered twice
        };
        matched.push((want.swap_remove(pos), o));
    }
    let owners = pass_on(req, &mut matched, ctx).await;
    let forwarded = forward(req, &matched, ctx).await;
    let mut results = Vec::new();
    let mut lines: Vec<(Option<Ident>, Option<u32>, Line)> = Vec::new();
    let mut updates = Vec::new();
    // sent.c / defer.c / bounce.c with DEL_REQ_FLAG_USR_VRFY: the log says
    // `deliverable` for what would be sent, `undeliverable` for the rest.
    let shown = |s: Status| match (req.verify, s) {
        (false, s) => s,
        (true, Status::Sent) => Status::Deliverable,
        (true, _) => Status::Undeliverable,
    };
    let traced = |address: &str, orig_to: &str, dsn: &str, text: &str, relay: &str| Failed {
        address: address.to_owned(),
        orig_to: orig_to.to_owned(),
        dsn: dsn.to_owned(),
        text: format!("delivery via {relay}: {text}"),
        owner: None,
    };
    for ((r, o), owner) in matched.into_iter().zip(owners) {
        let mut trace = Vec::new();
        // smtp(8)/lmtp(8) time their own sessions (delays= c/d) and count connection
        // reuse (conn_use=).
        let stat = stats.iter().find(|s| s.index == r.index);
        let delays = match stat {
            Some(s) => Delays {
                conn_setup: s.conn_setup,
                transmission: s.transmission,
                ..delays
            },
            None => delays,
        };
        let conn_use = stat.map_or(0, |s| s.conn_use);
        let line = |to: &str, orig: Option<&str>, status, dsn: &str, text: &str, relay: &str| {
            dlog::delivery(&Delivery {
                queue_id: &req.queue_id,
                to,
                orig_to: orig,
                relay,
                conn_use,
                delays,
                delay_resolution: ctx.delay_resolution,
                dsn,
                status,
                reason: text,
            })
        };
        let mut failed_forward = None;
        let failed: Vec<Failed> = o
            .expanded
            .iter()
            .filter_map(|e| match &e.result {
                Delivered::Bounced { dsn, text } => Some(Failed {
                    address: e.address.clone(),
                    orig_to: e.orig_to.clone(),
                    dsn: dsn.clone(),
                    text: text.clone(),
                    owner: e.notify.clone(),
                }),
                _ => None,
            })
            .collect();
        for (e, who) in o.expanded.iter().zip(&owner) {
            let (status, dsn, text) = match lookup(&forwarded, &e.result) {
                Some(Ok(id)) => (Status::Sent, "2.0.0".to_owned(), forwarded_as(id)),
                Some(Err(err)) => {
                    failed_forward = Some(err.clone());
                    continue;
                }
                None => {
                    let (fate, dsn, text) = simple(&e.result);
                    (status_of(fate), dsn, text)
                }
            };
            let (ident, relay) = match who {
                Some((ident, relay)) => (Some(ident.clone()), relay.as_str()),
                None => (None, o.relay.as_str()),
            };
            if req.verify {
                trace.push(traced(&e.address, &e.orig_to, &dsn, &text, relay));
            }
            lines.push((
                ident,
                e.pid,
                line(
                    &e.address,
                    Some(&e.orig_to),
                    shown(status),
                    &dsn,
                    &text,
                    relay,
                ),
            ));
        }
        let (fate, dsn, text) = match lookup(&forwarded, &o.result) {
            Some(Ok(id)) => (Fate::Sent, "2.0.0".to_owned(), forwarded_as(id)),
            Some(Err(err)) => {
                failed_forward = Some(err.clone());
                (Fate::Deferred, String::new(), String::new())
            }
            None => simple(&o.result),
        };
        let forward_failed = failed_forward.is_some();
        let (fate, dsn, text) = match failed_forward {
            // XXX: Postfix's local(8) leaves the recipient for a later attempt without a
            // line of its own; Tern logs the deferral.
            Some(err) => (
                Fate::Deferred,
                "4.3.0".to_owned(),
                format!("cannot forward: {err}"),
            ),
            None => (fate, dsn, text),
        };
        // Some expanded addresses delivered, others bounced: the recipient is done, and
        // the bounced ones still get their notice (local(8)'s bounce_append for each;
        // the queue manager's bounce log then yields the notice at the end of the pass).
        // Its `Bounced` record follows that notice. XXX: a member that bounced while
        // another was deferred bounces again at the retry, and is reported then.
        let (fate, dsn, text) = match failed.first() {
            Some(f) if fate == Fate::Sent => (Fate::Bounced, f.dsn.clone(), f.text.clone()),
            _ => (fate, dsn, text),
        };
        // An agent answers `Sent` with no text and no expansion for a recipient that
        // was a duplicate of another in the same request: nothing to log. A recipient
        // with expanded results was logged by them (a deferred one included: its line
        // is the agent's, not a second one of the queue manager's).
        let duplicate = o.expanded.is_empty() && fate == Fate::Sent && text.is_empty();
        if !duplicate && (o.expanded.is_empty() || forward_failed) {
            if req.verify {
                trace.push(traced(&r.address, &r.orig_rcpt, &dsn, &text, &o.relay));
            }
            lines.push((
                None,
                None,
                line(
                    &r.address,
                    Some(&r.orig_rcpt),
                    shown(status_of(fate)),
                    &dsn,
                    &text,
                    &o.relay,
                ),
            ));
        }
        // A probe's recipient is done after one attempt, whatever it found.
        let (fate, failed) = if req.verify {
            (Fate::Sent, trace)
        } else {
            (fate, failed)
        };
        if fate != Fate::Bounced {
            updates.push(StatusUpdate {
                recipient: r.index,
                status: match fate {
                    Fate::Sent => DeliveryStatus::Sent,
                    _ => DeliveryStatus::Deferred,
                },
                time,
                dsn: dsn.clone(),
                diagnostic: text.clone(),
            });
        }
        let failed = if fate == Fate::Bounced || req.verify {
            failed
        } else {
            Vec::new()
        };
        let passed_on = stat.is_some_and(|s| s.success_notice_passed_on);
        results.push((r.index, fate, dsn, text, failed, passed_on));
    }
    // Recipients the agent did not answer for: deferred, as Postfix's qmgr does when an
    // agent dies mid-request.
    for r in want.drain(..) {
        let (dsn, text) = (
            "4.3.0".to_owned(),
            "delivery agent gave no result".to_owned(),
        );
        updates.push(StatusUpdate {
            recipient: r.index,
            status: DeliveryStatus::Deferred,
            time,
            dsn: dsn.clone(),
            diagnostic: text.clone(),
        });
        results.push((r.index, Fate::Deferred, dsn, text, Vec::new(), false));
    }
    // Without a sync (StatusLog::append_unsynced): a record lost to a system crash costs
    // a repeated delivery, never a message; a crash of the daemon loses none. A write to
    // the page cache, made here: the queue manager has a runtime of its own, and a
    // hand-off to a blocking thread cost more than the write (two thread wake-ups).
    let appended = log
        .lock()
        .map_err(|e| e.to_string())
        .and_then(|mut l| l.append_unsynced(&updates).map_err(|e| e.to_string()));
    match appended {
        Ok(()) => {
            for (ident, pid, line) in lines {
                let ident = ident.as_ref().unwrap_or(&ctx.ident);
                match pid {
                    Some(pid) => ctx.logger.log_pid(ident, pid, &line),
                    None => ctx.logger.log(ident, &line),
                }
            }
        }
        failed => {
            // Without the records the results would be lost at a crash: retry them all.
            let why = failed.err().unwrap_or_default();
            ctx.logger.log(
                &ctx.ident,
                &Line::warning(format!("{}: status update: {why}", req.queue_id)),
            );
            for r in &mut results {
                r.1 = Fate::Deferred;
            }
        }
    }
    flush_add(req, &results, ctx);
    results
}

/// defer.c's flush_add(): each deferred recipient's domain is told to the fast flush
/// service, which keeps the queue id for an eligible one (on a blocking thread; the
/// service takes a file lock).
fn flush_add(req: &DeliveryRequest, results: &[RcptResult], ctx: &LogCtx) {
    let Some(flush) = &ctx.services.flush else {
        return;
    };
    // Every delivery passes here: nothing more is done unless something was deferred.
    if !results.iter().any(|r| r.1 == Fate::Deferred) {
        return;
    }
    let Ok(id) = QueueId::parse(&req.queue_id) else {
        return;
    };
    let mut sites: Vec<String> = results
        .iter()
        .filter(|r| r.1 == Fate::Deferred)
        .filter_map(|r| req.recipients.iter().find(|x| x.index == r.0))
        .filter_map(|x| {
            x.address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
        })
        .collect();
    sites.sort();
    sites.dedup();
    if sites.is_empty() {
        return;
    }
    let flush = Arc::clone(flush);
    tokio::task::spawn_blocking(move || {
        for site in sites {
            flush.add(&site, &id);
        }
    });
}

/// The text of a forwarded recipient's line (forward.c).
fn forwarded_as(id: &QueueId) -> String {
    format!("forwarded as {id}")
}

/// A plain (not forwarded) result as fate, dsn and text.
fn simple(d: &Delivered) -> (Fate, String, String) {
    match d {
        Delivered::Sent { dsn, text } => (Fate::Sent, dsn.clone(), text.clone()),
        Delivered::Deferred { dsn, text } => (Fate::Deferred, dsn.clone(), text.clone()),
        Delivered::Bounced { dsn, text } => (Fate::Bounced, dsn.clone(), text.clone()),
        // Only reached when the forward was not submitted (no group): wait.
        Delivered::Forward(_) => (
            Fate::Deferred,
            "4.3.0".to_owned(),
            "cannot forward".to_owned(),
        ),
        // A pass that was not made (one agent passing to another that passes again).
        Delivered::Pass { .. } => (
            Fate::Deferred,
            "4.3.5".to_owned(),
            "mail system configuration error".to_owned(),
        ),
    }
}

fn status_of(fate: Fate) -> Status {
    match fate {
        Fate::Sent => Status::Sent,
        Fate::Deferred => Status::Deferred,
        Fate::Bounced => Status::Bounced,
    }
}

/// One forwarded message: its sender and prepended lines (the grouping key).
type ForwardKey = (String, Vec<String>);
/// The forwarded messages of a request and what became of each.
type Forwarded = Vec<(ForwardKey, Result<QueueId, String>)>;

fn lookup<'a>(done: &'a Forwarded, d: &Delivered) -> Option<&'a Result<QueueId, String>> {
    let Delivered::Forward(f) = d else {
        return None;
    };
    done.iter()
        .find(|((sender, prepend), _)| *sender == f.sender && *prepend == f.prepend)
        .map(|(_, r)| r)
}

/// Queues the forwarded addresses of a request's outcomes, one message per sender and
/// prepended lines (forward.c's table by Delivered-To and sender), each address with
/// its original recipient's ORCPT and NOTIFY.
async fn forward(
    req: &DeliveryRequest,
    matched: &[(RequestRecipient, Outcome)],
    ctx: &LogCtx,
) -> Forwarded {
    let mut groups: Vec<(ForwardKey, Vec<NewRecipient>)> = Vec::new();
    for (r, o) in matched {
        let all = std::iter::once(&o.result).chain(o.expanded.iter().map(|e| &e.result));
        for d in all {
            let Delivered::Forward(f) = d else { continue };
            let key = (f.sender.clone(), f.prepend.clone());
            let pos = if let Some(p) = groups.iter().position(|(k, _)| *k == key) {
                p
            } else {
                groups.push((key, Vec::new()));
                groups.len() - 1
            };
            groups[pos]
                .1
                .extend(f.recipients.iter().map(|a| NewRecipient {
                    address: a.clone(),
                    orcpt: r.dsn_orcpt.clone(),
                    notify: r.notify,
                    original: String::new(),
                }));
        }
    }
    if groups.is_empty() {
        return Vec::new();
    }
    let services = Arc::clone(&ctx.services);
    let path = req.queue_file.clone();
    let done = tokio::task::spawn_blocking(move || {
        groups
            .into_iter()
            .map(|(key, recipients)| {
                let result = services
                    .submitter
                    .forward(&ForwardMsg {
                        queue_file: &path,
                        sender: &key.0,
                        recipients,
                        prepend: &key.1,
                        mail_name: &services.mail_name,
                    })
                    .map_err(|e| e.to_string());
                (key, result)
            })
            .collect::<Forwarded>()
    })
    .await;
    let done = done.unwrap_or_default();
    for (_, r) in &done {
        match r {
            Ok(id) => {
                (ctx.services.new_mail)(id);
            }
            Err(e) => ctx.logger.log(
                &ctx.ident,
                &Line::warning(format!("{}: forward: {e}", req.queue_id)),
            ),
        }
    }
    done
}

/// The agent of master.cf service `name` and the ident of its log lines, as the queue
/// manager picks them for a request (an unknown service or agent: `Unavailable`, logged
/// by qmgr).
fn transport_for(ctx: &LogCtx, name: &str) -> (Arc<dyn Transport>, Ident, String) {
    let service = ctx.settings.services.get(name);
    let command = service.map(|s| s.command.clone()).unwrap_or_default();
    match ctx.deps.transports.get(&command) {
        Some(t) => {
            let syslog = service.map_or(ctx.settings.syslog_name.as_str(), |s| &s.syslog_name);
            (Arc::clone(t), Ident::new(syslog, &command), command)
        }
        None => (
            Arc::new(Unavailable),
            Ident::new(&ctx.settings.syslog_name, "qmgr"),
            command,
        ),
    }
}

/// Delivers the [`Delivered::Pass`] entries of `matched` through their transports
/// (deliver_pass(3)), one request per transport and next hop (a recipient appears once
/// in a request: a second pass of the same recipient goes in another), and puts each
/// result in the place of its pass, with the other transport's log lines. The
/// recipient's result is then recomputed from its entries, as local(8)'s summary does.
/// Returns, per outcome and entry, whose log line it is (`None`: the outcome's agent).
async fn pass_on(
    req: &DeliveryRequest,
    matched: &mut [(RequestRecipient, Outcome)],
    ctx: &LogCtx,
) -> Vec<Vec<LineOwner>> {
    // An outcome that is a pass without entries stands for its recipient.
    for (r, o) in matched.iter_mut() {
        if o.expanded.is_empty() && matches!(o.result, Delivered::Pass { .. }) {
            o.expanded.push(ExpandedOutcome {
                address: r.address.clone(),
                orig_to: r.orig_rcpt.clone(),
                result: o.result.clone(),
                pid: None,
                notify: None,
            });
        }
    }
    // (transport, nexthop, [(outcome, entry)]) with distinct recipients per request.
    let mut groups: Vec<PassGroup> = Vec::new();
    for (oi, (r, o)) in matched.iter().enumerate() {
        for (ei, e) in o.expanded.iter().enumerate() {
            let Delivered::Pass { transport, nexthop } = &e.result else {
                continue;
            };
            let fits = |g: &PassGroup| {
                g.0 == *transport
                    && g.1 == *nexthop
                    && !g.2.iter().any(|&(o2, _)| matched[o2].0.index == r.index)
            };
            match groups.iter_mut().find(|g| fits(g)) {
                Some(g) => g.2.push((oi, ei)),
                None => groups.push((transport.clone(), nexthop.clone(), vec![(oi, ei)])),
            }
        }
    }
    let mut owners: Vec<Vec<LineOwner>> = matched
        .iter()
        .map(|(_, o)| vec![None; o.expanded.len()])
        .collect();
    if groups.is_empty() {
        return owners;
    }
    // The replacements of each pass entry: (outcome, entry) -> entries and their owner.
    let mut done: Vec<((usize, usize), Vec<ExpandedOutcome>, LineOwner)> = Vec::new();
    for (transport, nexthop, members) in groups {
        let (agent, ident, command) = transport_for(ctx, &transport);
        // A probe is passed only to an agent that knows verify mode (runner.rs).
        let (agent, ident): (Arc<dyn Transport>, Ident) =
            if req.verify && !super::VERIFY_AGENTS.contains(&command.as_str()) {
                (
                    Arc::new(Unavailable),
                    Ident::new(&ctx.settings.syslog_name, "qmgr"),
                )
            } else {
                (agent, ident)
            };
        let recipients: Vec<RequestRecipient> = members
            .iter()
            .map(|&(oi, ei)| {
                let (r, o) = &matched[oi];
                let e = &o.expanded[ei];
                RequestRecipient {
                    index: r.index,
                    address: e.address.clone(),
                    orig_rcpt: if e.orig_to.is_empty() {
                        r.orig_rcpt.clone()
                    } else {
                        e.orig_to.clone()
                    },
                    dsn_orcpt: r.dsn_orcpt.clone(),
                    notify: r.notify,
                }
            })
            .collect();
        let sub = DeliveryRequest {
            agent: agent_of(&command),
            transport,
            nexthop,
            recipients: recipients.clone(),
            ..req.clone()
        };
        let outcomes = agent.deliver(sub).await;
        for (&(oi, ei), rr) in members.iter().zip(&recipients) {
            let (entries, relay) = match outcomes.iter().find(|o| o.index == rr.index) {
                Some(o) if o.expanded.is_empty() => (
                    vec![ExpandedOutcome {
                        address: rr.address.clone(),
                        orig_to: rr.orig_rcpt.clone(),
                        result: o.result.clone(),
                        pid: None,
                        notify: None,
                    }],
                    o.relay.clone(),
                ),
                Some(o) => (o.expanded.clone(), o.relay.clone()),
                // As for a request: no answer is a deferral.
                None => (
                    vec![ExpandedOutcome {
                        address: rr.address.clone(),
                        orig_to: rr.orig_rcpt.clone(),
                        result: Delivered::Deferred {
                            dsn: "4.3.0".to_owned(),
                            text: "delivery agent gave no result".to_owned(),
                        },
                        pid: None,
                        notify: None,
                    }],
                    "none".to_owned(),
                ),
            };
            // The passed address keeps its owner- alias: a failure of the other
            // transport is still the owner's to hear of.
            let owner = &matched[oi].1.expanded[ei].notify;
            let entries = entries
                .into_iter()
                .map(|mut e| {
                    if e.notify.is_none() {
                        e.notify.clone_from(owner);
                    }
                    e
                })
                .collect();
            done.push(((oi, ei), entries, Some((ident.clone(), relay))));
        }
    }
    for (oi, (_, o)) in matched.iter_mut().enumerate() {
        if !done.iter().any(|((o2, _), _, _)| *o2 == oi) {
            continue;
        }
        let old = std::mem::take(&mut o.expanded);
        let mut who = Vec::new();
        for (ei, e) in old.into_iter().enumerate() {
            if let Some(p) = done.iter().position(|(at, _, _)| *at == (oi, ei)) {
                let (_, entries, owner) = done.swap_remove(p);
                who.extend(std::iter::repeat_n(owner, entries.len()));
                o.expanded.extend(entries);
            } else {
                who.push(None);
                o.expanded.push(e);
            }
        }
        owners[oi] = who;
        o.result = summary(&o.expanded);
    }
    owners
}

/// A recipient's result from its entries (local(8)'s summary): the first deferral, else
/// the first bounce when all bounced, else its one entry's result, else sent.
fn summary(entries: &[ExpandedOutcome]) -> Delivered {
    if let Some(e) = entries
        .iter()
        .find(|e| matches!(e.result, Delivered::Deferred { .. }))
    {
        return e.result.clone();
    }
    match entries {
        [one] => one.result.clone(),
        [first, ..]
            if entries
                .iter()
                .all(|e| matches!(e.result, Delivered::Bounced { .. })) =>
        {
            first.result.clone()
        }
        _ => Delivered::Sent {
            dsn: "2.0.0".to_owned(),
            text: String::new(),
        },
    }
}
