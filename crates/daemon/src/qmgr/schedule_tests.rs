//! The scheduler with a fake clock: Postfix's backoff sequence, expiry, warnings, limits.

use super::*;

fn rcpt(index: u32, transport: &str, nexthop: &str, address: &str) -> Rcpt {
    Rcpt {
        index,
        transport: transport.to_owned(),
        nexthop: nexthop.to_owned(),
        address: address.to_owned(),
    }
}

fn message(id: &str, arrival: Time, null_sender: bool, recipients: Vec<Rcpt>) -> NewMessage {
    NewMessage {
        id: id.to_owned(),
        arrival,
        null_sender,
        warned: false,
        recipients,
    }
}

fn sched(policy: Policy) -> Scheduler {
    Scheduler::new(policy, Limits::default(), HashMap::new())
}

/// Runs one message whose every attempt is deferred, with deferred queue scans every
/// queue_run_delay from time 0 (qmgr started with the message), until it expires or
/// `max_attempts` pass. Returns the attempt times and the pass ends.
fn retry_until_end(policy: Policy, null_sender: bool, max_attempts: usize) -> (Vec<Time>, PassEnd) {
    let mut s = sched(policy);
    let one = || vec![rcpt(0, "smtp", "far.test", "u@far.test")];
    let mut attempts = Vec::new();
    let mut now = 0;
    let mut end = s.add(message("Q", 0, null_sender, one()), now);
    assert!(end.is_none());
    for _ in 0..max_attempts {
        let d = s.dispatch(0);
        assert_eq!(d.len(), 1);
        attempts.push(now);
        end = s.complete(d[0].job, &[(0, Fate::Deferred)], None, now);
        let e = end.clone().expect("the pass ends with its only request");
        match e.next {
            Next::Remove => return (attempts, e),
            Next::Defer(at) => s.add_deferred("Q", at),
        }
        // Scans every queue_run_delay until the message is due.
        let mut taken = Vec::new();
        for _ in 0..1_000_000 {
            now += policy.queue_run_delay;
            taken = s.due(now);
            if !taken.is_empty() {
                break;
            }
        }
        assert_eq!(taken, vec!["Q".to_owned()]);
        assert!(s.add(message("Q", 0, null_sender, one()), now).is_none());
    }
    (attempts, end.expect("at least one attempt"))
}

#[test]
fn backoff_doubles_up_to_the_maximum_with_postfix_defaults() {
    let (attempts, _) = retry_until_end(Policy::default(), false, 10);
    // minimal_backoff_time 300s, maximal 4000s, scans every 300s: the wait since arrival
    // doubles (300, 600, 1200, 2400, 4800), then 4000s rounded up to the next scan.
    assert_eq!(
        attempts,
        [0, 300, 600, 1200, 2400, 4800, 9000, 13200, 17400, 21600]
    );
}

#[test]
fn expiry_after_maximal_queue_lifetime() {
    let (attempts, end) = retry_until_end(Policy::default(), false, 1000);
    // The first pass that ends at or after 5 days: 4800 + 4200 k >= 432000.
    assert_eq!(*attempts.last().expect("attempts"), 433_200);
    assert_eq!(attempts.len(), 108);
    assert_eq!(end.expired, Some(vec![0]));
    assert_eq!(end.next, Next::Remove);
}

#[test]
fn null_sender_expires_after_bounce_queue_lifetime() {
    let policy = Policy {
        bounce_queue_lifetime: 3600,
        ..Policy::default()
    };
    let (attempts, end) = retry_until_end(policy, true, 1000);
    assert_eq!(attempts, [0, 300, 600, 1200, 2400, 4800]);
    assert!(end.expired.is_some());
    // bounce_queue_lifetime never exceeds maximal_queue_lifetime.
    let policy = Policy {
        bounce_queue_lifetime: 86_400,
        maximal_queue_lifetime: 600,
        ..Policy::default()
    };
    let (attempts, _) = retry_until_end(policy, true, 1000);
    assert_eq!(attempts, [0, 300, 600]);
}

#[test]
fn zero_lifetime_returns_after_one_attempt() {
    let policy = Policy {
        maximal_queue_lifetime: 0,
        ..Policy::default()
    };
    let (attempts, end) = retry_until_end(policy, false, 10);
    assert_eq!(attempts, [0]);
    assert_eq!(end.expired, Some(vec![0]));
}

#[test]
fn backoff_table() {
    let s = sched(Policy::default());
    // (arrival, now, backoff): the time in queue, bounded by min and max.
    for (arrival, now, want) in [
        (0, 0, 300),
        (0, 299, 300),
        (0, 301, 301),
        (0, 3999, 3999),
        (0, 4000, 4000),
        (0, 100_000, 4000),
        (500, 100, 300), // a clock that went back
    ] {
        assert_eq!(s.backoff(arrival, now), want, "{arrival} {now}");
    }
    // The minimum wins when the two cross, as qmgr_active_done_3_generic checks it last.
    let s = sched(Policy {
        minimal_backoff_time: 1000,
        maximal_backoff_time: 10,
        ..Policy::default()
    });
    assert_eq!(s.backoff(0, 50_000), 1000);
}

#[test]
fn delay_warning_once() {
    let policy = Policy {
        delay_warning_time: 4 * 3600,
        ..Policy::default()
    };
    let mut s = sched(policy);
    let one = || vec![rcpt(0, "smtp", "far.test", "u@far.test")];
    let mut warned = false;
    let mut warnings = Vec::new();
    let mut now = 0;
    for _ in 0..20 {
        let mut m = message("Q", 0, false, one());
        m.warned = warned;
        assert!(s.add(m, now).is_none());
        let d = s.dispatch(0);
        let end = s
            .complete(d[0].job, &[(0, Fate::Deferred)], None, now)
            .expect("end");
        if end.delay_warning.is_some() {
            warnings.push(now);
            warned = true;
        }
        let Next::Defer(at) = end.next else {
            panic!("not deferred")
        };
        now = at;
    }
    // Attempts at 0, 300, 600, 1200, 2400, 4800, 8800, 12800, 16800: the first pass at
    // or after 4h - 1s warns, and no later one.
    assert_eq!(warnings, [16_800]);
}

#[test]
fn pass_end_lists_fates() {
    let mut s = sched(Policy::default());
    let m = message(
        "Q",
        0,
        false,
        vec![
            rcpt(0, "discard", "a.test", "x@a.test"),
            rcpt(1, "error", "gone", "y@b.test"),
            rcpt(2, "smtp", "c.test", "z@c.test"),
        ],
    );
    assert!(s.add(m, 10).is_none());
    let d = s.dispatch(0);
    assert_eq!(d.len(), 3);
    assert!(s.complete(d[0].job, &[(0, Fate::Sent)], None, 10).is_none());
    assert!(
        s.complete(d[1].job, &[(1, Fate::Bounced)], None, 10)
            .is_none()
    );
    // A recipient the agent did not answer for counts as deferred.
    let end = s.complete(d[2].job, &[], None, 10).expect("end");
    assert_eq!(end.bounced, vec![1]);
    assert_eq!(end.next, Next::Defer(310));
    assert!(!s.is_active("Q"));

    // All final: remove.
    let m = message(
        "R",
        0,
        false,
        vec![rcpt(0, "discard", "a.test", "x@a.test")],
    );
    assert!(s.add(m, 10).is_none());
    let d = s.dispatch(0);
    let end = s
        .complete(d[0].job, &[(0, Fate::Sent)], None, 10)
        .expect("end");
    assert_eq!(end.next, Next::Remove);
    assert!(end.bounced.is_empty());

    // Nothing left to deliver: the pass ends at once.
    let end = s.add(message("S", 0, false, vec![]), 10).expect("end");
    assert_eq!(end.next, Next::Remove);
}

#[test]
fn recipient_limit_cuts_requests() {
    let mut s = sched(Policy::default());
    let rcpts = (0..120)
        .map(|i| rcpt(i, "smtp", "far.test", &format!("u{i}@far.test")))
        .collect();
    s.add(message("Q", 0, false, rcpts), 0);
    let d = s.dispatch(0);
    let sizes: Vec<usize> = d.iter().map(|d| d.recipients.len()).collect();
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(d[1].recipients[0], 50);
}

#[test]
fn process_limit_and_per_recipient_destinations() {
    let mut limits = HashMap::new();
    limits.insert(
        "local".to_owned(),
        Limits {
            process_limit: 2,
            destination_concurrency: 2,
            initial_concurrency: 5,
            recipient_limit: 1,
            ..Limits::default()
        },
    );
    let mut s = Scheduler::new(Policy::default(), Limits::default(), limits);
    let rcpts = (0..3)
        .map(|i| rcpt(i, "local", "mx.test", &format!("u{i}@mx.test")))
        .collect();
    s.add(message("Q", 0, false, rcpts), 0);
    let d = s.dispatch(0);
    assert_eq!(d.len(), 2, "maxproc 2");
    assert!(d.iter().all(|d| d.recipients.len() == 1));
    assert!(s.dispatch(0).is_empty());
    assert!(s.complete(d[0].job, &[(0, Fate::Sent)], None, 0).is_none());
    let d2 = s.dispatch(0);
    assert_eq!(d2.len(), 1);
    assert_eq!(d2[0].recipients, vec![2]);
    // Each recipient is its own destination, with the window of the concurrency limit.
    assert_eq!(s.window_size("local", "u0@mx.test"), Some(2));
}

#[test]
fn destination_window_starts_small_and_grows() {
    let mut s = sched(Policy::default());
    for i in 0..40 {
        s.add(
            message(
                &format!("Q{i}"),
                0,
                false,
                vec![rcpt(0, "smtp", "far.test", "u@far.test")],
            ),
            0,
        );
    }
    let d = s.dispatch(0);
    assert_eq!(d.len(), 5, "initial_destination_concurrency");
    // Five successes add 5 * 1/5: the window grows by one.
    for x in &d {
        s.complete(x.job, &[(0, Fate::Sent)], None, 0);
    }
    assert_eq!(s.window_size("smtp", "far.test"), Some(6));
    let d = s.dispatch(0);
    assert_eq!(d.len(), 6);
    // A deferral that is not the destination's failure (a full mailbox, a 4xx to one
    // recipient) is no failure of the destination: the window does not shrink. (Nor
    // does it grow here: the last completions leave it less used than its size less
    // initial_destination_concurrency, and an unused window gets no positive feedback.)
    for x in &d {
        s.complete(x.job, &[(0, Fate::Deferred)], None, 0);
    }
    assert_eq!(s.window_size("smtp", "far.test"), Some(6));
}

fn hop() -> HopFailure {
    HopFailure {
        dsn: "4.4.1".into(),
        text: "connect to mx.far.test[192.0.2.1]:25: Connection refused".into(),
    }
}

fn to_far(s: &mut Scheduler, id: &str, now: Time) {
    s.add(
        message(
            id,
            now,
            false,
            vec![rcpt(0, "smtp", "far.test", "u@far.test")],
        ),
        now,
    );
}

#[test]
fn a_failing_destination_shrinks_then_dies_then_comes_back() {
    let policy = Policy::default();
    let mut s = sched(policy);
    for i in 0..20 {
        to_far(&mut s, &format!("Q{i}"), 0);
    }
    let d = s.dispatch(0);
    assert_eq!(d.len(), 5);
    // The first hop failure takes the window down at once (qmgr_queue_throttle).
    s.complete(d[0].job, &[(0, Fate::Deferred)], Some(&hop()), 10);
    assert_eq!(s.window_size("smtp", "far.test"), Some(4));
    assert!(!s.is_dead("smtp", "far.test"));
    // A window's worth of failures is one failed cohort: the limit (1) kills it.
    for x in &d[1..] {
        s.complete(x.job, &[(0, Fate::Deferred)], Some(&hop()), 10);
    }
    assert!(s.is_dead("smtp", "far.test"));
    // Everything waiting for it is deferred by the queue manager, no agent runs.
    let d = s.dispatch(11);
    assert_eq!(d.len(), 15);
    let reason = d[0].suspended.clone().expect("suspended");
    assert_eq!(reason.dsn, "4.4.1");
    assert_eq!(
        reason.text,
        "delivery temporarily suspended: connect to mx.far.test[192.0.2.1]:25: Connection refused"
    );
    for x in &d {
        s.complete(x.job, &[(0, Fate::Deferred)], None, 11);
    }
    // Mail arriving meanwhile waits in vain too; the wake-up is minimal_backoff_time on.
    to_far(&mut s, "N1", 12);
    assert_eq!(s.next_wakeup(12), Some(10 + policy.minimal_backoff_time));
    let d = s.dispatch(12);
    assert!(d[0].suspended.is_some());
    s.complete(d[0].job, &[(0, Fate::Deferred)], None, 12);
    // After the wait the destination starts again at the initial window.
    to_far(&mut s, "N2", 400);
    let d = s.dispatch(10 + policy.minimal_backoff_time);
    assert_eq!(d.len(), 1);
    assert!(d[0].suspended.is_none());
    assert!(!s.is_dead("smtp", "far.test"));
    assert_eq!(s.window_size("smtp", "far.test"), Some(5));
}

#[test]
fn rate_delay_sends_one_at_a_time_with_pauses() {
    let limits = Limits {
        rate_delay: 30,
        ..Limits::default()
    };
    let mut s = Scheduler::new(Policy::default(), limits, HashMap::new());
    for i in 0..3 {
        to_far(&mut s, &format!("Q{i}"), 0);
    }
    let d = s.dispatch(0);
    assert_eq!(d.len(), 1, "a window of one");
    s.complete(d[0].job, &[(0, Fate::Sent)], None, 5);
    assert!(
        s.dispatch(20).is_empty(),
        "the pause runs from the end of a delivery"
    );
    assert_eq!(s.next_wakeup(20), Some(35));
    assert_eq!(s.dispatch(35).len(), 1);
}

#[test]
fn due_and_flush() {
    let mut s = sched(Policy::default());
    s.add_deferred("A", 100);
    s.add_deferred("B", 200);
    s.add_deferred("C", 300);
    assert!(s.due(98).is_empty());
    // A second ahead is due (qmgr_active_feed skips only mtime > now + 1).
    assert_eq!(s.due(99), ["A"]);
    assert_eq!(s.deferred(), 2);
    let mut all = s.flush();
    all.sort();
    assert_eq!(all, ["B", "C"]);
    assert!(s.due(1_000_000).is_empty());
    // Entering the active queue takes a message out of the deferred set.
    s.add_deferred("D", 100);
    s.add(message("D", 0, false, vec![rcpt(0, "smtp", "x", "u@x")]), 0);
    assert!(s.due(1_000).is_empty());
}

/// The wall clock stepped back: a deferred time further ahead than the longest backoff
/// is due at once (not after the size of the step), one within the backoff waits.
#[test]
fn due_after_the_clock_stepped_back() {
    let mut s = sched(Policy::default());
    let max = Policy::default().maximal_backoff_time;
    s.add_deferred("soon", 10_000 + 300);
    s.add_deferred("stepped", 10_000 + max + 3_600);
    assert_eq!(s.due(10_000), ["stepped"]);
    assert!(s.due(10_000).is_empty());
    assert_eq!(s.due(10_300), ["soon"]);
}

/// A backlog behind one destination's full window neither starves another destination
/// nor is walked by every dispatch: a message for a second destination that arrives
/// after 10,000 for the first goes out in the very next dispatch, and each completion
/// lets exactly one more request of the backlog out.
#[test]
fn backlog_behind_a_full_window_does_not_starve_others() {
    let mut s = sched(Policy::default());
    for i in 0..10_000 {
        let id = format!("A{i}");
        let r = vec![rcpt(0, "local", "here.test", "u@here.test")];
        assert!(s.add(message(&id, 0, false, r), 0).is_none());
    }
    let first = s.dispatch(0);
    // initial_destination_concurrency requests to the busy destination, no more.
    assert_eq!(first.len(), Limits::default().initial_concurrency);
    assert!(first.iter().all(|d| d.nexthop == "here.test"));
    let other = vec![rcpt(0, "local", "there.test", "v@there.test")];
    assert!(s.add(message("B", 0, false, other), 0).is_none());
    let next = s.dispatch(0);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].queue_id, "B");
    // Oldest first at the busy destination: each completion lets the next one out.
    for (n, d) in first.iter().enumerate() {
        assert!(s.complete(d.job, &[(0, Fate::Sent)], None, 0).is_some());
        let more = s.dispatch(0);
        assert!(!more.is_empty(), "completion {n} let nothing out");
        assert!(more.iter().all(|m| m.nexthop == "here.test"));
    }
}
