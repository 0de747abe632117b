//! What qmgr makes of a delivery agent's outcomes: status records (one append per
//! request), the per-recipient log lines, and the new messages for forwarded addresses
//! (local(8)'s alias and `.forward` results for other transports).

use super::{
    Arc, Delays, Delivered, Delivery, DeliveryRequest, DeliveryStatus, Duration, Fate, ForwardMsg,
    Ident, Line, Logger, Mutex, NewRecipient, Outcome, QueueId, RequestRecipient, Services, Status,
    StatusLog, StatusUpdate, SystemTime, UNIX_EPOCH, dlog,
};

/// What the per-recipient log lines need.
pub(super) struct LogCtx {
    pub(super) logger: Arc<Logger>,
    pub(super) ident: Ident,
    pub(super) delay_resolution: u32,
    pub(super) arrival: SystemTime,
    pub(super) active_at: SystemTime,
    pub(super) services: Arc<Services>,
}

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
    outcomes: Vec<Outcome>,
    log: &Arc<Mutex<StatusLog>>,
    ctx: &LogCtx,
    handoff: SystemTime,
    done: SystemTime,
) -> Vec<(u32, Fate, String, String)> {
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
    let forwarded = forward(req, &matched, ctx).await;
    let mut results = Vec::new();
    let mut lines = Vec::new();
    let mut updates = Vec::new();
    for (r, o) in matched {
        let line = |to: &str, orig: Option<&str>, status, dsn: &str, text: &str| {
            dlog::delivery(&Delivery {
                queue_id: &req.queue_id,
                to,
                orig_to: orig,
                relay: &o.relay,
                conn_use: 0,
                delays,
                delay_resolution: ctx.delay_resolution,
                dsn,
                status,
                reason: text,
            })
        };
        let mut failed_forward = None;
        for e in &o.expanded {
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
            lines.push((
                e.pid,
                line(&e.address, Some(&e.orig_to), status, &dsn, &text),
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
        // An agent answers `Sent` with no text and no expansion for a recipient that
        // was a duplicate of another in the same request: nothing to log. A recipient
        // with expanded results was logged by them (a deferred one included: its line
        // is the agent's, not a second one of the queue manager's).
        let duplicate = o.expanded.is_empty() && fate == Fate::Sent && text.is_empty();
        if !duplicate && (o.expanded.is_empty() || forward_failed) {
            lines.push((
                None,
                line(&r.address, Some(&r.orig_rcpt), status_of(fate), &dsn, &text),
            ));
        }
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
        results.push((r.index, fate, dsn, text));
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
        results.push((r.index, Fate::Deferred, dsn, text));
    }
    let log = Arc::clone(log);
    let appended = tokio::task::spawn_blocking(move || {
        log.lock()
            .map_err(|e| e.to_string())?
            .append(&updates)
            .map_err(|e| e.to_string())
    })
    .await;
    match appended {
        Ok(Ok(())) => {
            for (pid, line) in lines {
                match pid {
                    Some(pid) => ctx.logger.log_pid(&ctx.ident, pid, &line),
                    None => ctx.logger.log(&ctx.ident, &line),
                }
            }
        }
        failed => {
            // Without the records the results would be lost at a crash: retry them all.
            let why = match failed {
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
                Ok(Ok(())) => String::new(),
            };
            ctx.logger.log(
                &ctx.ident,
                &Line::warning(format!("{}: status update: {why}", req.queue_id)),
            );
            for r in &mut results {
                r.1 = Fate::Deferred;
            }
        }
    }
    results
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
