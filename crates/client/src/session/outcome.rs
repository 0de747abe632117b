//! The result of one session, one entry per recipient, and the rules that decide it
//! (smtp_trouble.c and smtp_rcpt.c).
//!
//! Postfix's final-server rule: a soft failure (4.x.x, or 5.x.x under soft_bounce) at a
//! server that is not the last one to try leaves the recipient for the next server
//! ([`Outcome::Kept`], logged by Postfix only as an info line with the reason); at the
//! last server it is deferred. A hard failure bounces wherever it happens.

use super::command::Features;
use super::reply::Reply;

/// What the caller needs to log (`status=... (text)`) and to write a DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The enhanced status code (RFC 3463).
    pub dsn: String,
    /// The text inside `status=sent (...)`, `status=deferred (...)` and the bounce.
    pub text: String,
    /// The server's host name for the DSN's Remote-MTA (`dns; mx.example.com`); `None`
    /// when the failure is ours (Postfix's DSN_BY_LOCAL_MTA) or a lost connection.
    pub mta: Option<String>,
    /// The server's reply, on one line, for the DSN's Diagnostic-Code (`smtp; 550 ...`).
    pub reply: Option<String>,
}

/// DSN action of a delivered recipient (RFC 3464 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    /// Handed to another MTA (SMTP, and LMTP without flags=X).
    Relayed,
    /// Final delivery: LMTP to a server without DSN, master.cf flags=X.
    Delivered,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `status=sent`: the text is the server's reply, e.g. `250 2.0.0 Ok: queued as 4Z9`.
    Sent {
        status: Status,
        action: DsnAction,
        /// The server offered DSN, so it (not we) answers NOTIFY=SUCCESS: Postfix clears
        /// the recipient's SUCCESS bit and sends no success notice itself.
        success_notice_passed_on: bool,
    },
    /// `status=deferred`.
    Deferred(Status),
    /// `status=bounced`.
    Bounced(Status),
    /// A soft failure at a server that was not the last: try the next one. Postfix logs
    /// `QUEUEID: TEXT` (info) and nothing per recipient.
    Kept(Status),
}

impl Outcome {
    /// The status, whatever the outcome.
    pub fn status(&self) -> &Status {
        match self {
            Outcome::Sent { status, .. }
            | Outcome::Deferred(status)
            | Outcome::Bounced(status)
            | Outcome::Kept(status) => status,
        }
    }
}

/// One recipient's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptResult {
    /// The recipient's queue index, as the caller gave it in [`super::Recipient::index`].
    pub index: u32,
    pub outcome: Outcome,
}

/// The result of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionResult {
    /// The `relay=` value: `mx.example.com[192.0.2.1]:25`.
    pub relay: String,
    /// One entry per recipient, in the order given.
    pub recipients: Vec<RcptResult>,
    /// The session failed at the site level (greeting, HELO, lost connection, timeout)
    /// and recipients were deferred here: Postfix throttles the destination (its
    /// hop_status), so the queue manager should defer the rest of the destination's mail.
    pub throttle: bool,
    /// The features the server offered (empty when the greeting failed).
    pub features: Features,
    /// smtp(8)'s own lines to log under the transport's name (`info`/`warning`), in
    /// order: STARTTLS's (`Host offered STARTTLS`, verification details, the TLS
    /// summary) and SASL's warnings (no supported AUTH mechanisms, a password table
    /// lookup error).
    pub tls_log: Vec<crate::tls::LogLine>,
    /// A `may` handshake failure left the recipients ([`Outcome::Kept`]) for a retry of
    /// the same server in plaintext (Postfix's RETRY_AS_PLAINTEXT).
    pub retry_plaintext: bool,
    /// When the handshake (greeting, EHLO, STARTTLS) ended; the mail transaction began
    /// then (`delays=` c/d). `None`: it never ended.
    pub handshake_done: Option<std::time::Instant>,
}

impl SessionResult {
    /// Whether some recipients are left for the next server (only when this one was not
    /// the last to try).
    pub fn try_next_server(&self) -> bool {
        self.recipients
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Kept(_)))
    }
}

/// Records outcomes as the session goes; a recipient with an outcome is "marked" and
/// takes no later one (SMTP_RCPT_ISMARKED).
pub(crate) struct Tracker {
    final_server: bool,
    soft_bounce: bool,
    pub(crate) slots: Vec<Option<Outcome>>,
    pub(crate) throttle: bool,
}

/// Who a failure is attributed to: the server (its host name) or us.
pub(crate) type Mta<'a> = Option<&'a str>;

impl Tracker {
    pub(crate) fn new(count: usize, final_server: bool, soft_bounce: bool) -> Self {
        Self {
            final_server,
            soft_bounce,
            slots: vec![None; count],
            throttle: false,
        }
    }

    /// RETRY_AS_PLAINTEXT: this server is no longer the last one to try, so soft
    /// failures leave the recipients for the next attempt.
    pub(crate) fn not_final(&mut self) {
        self.final_server = false;
    }

    pub(crate) fn is_marked(&self, i: usize) -> bool {
        self.slots[i].is_some()
    }

    /// Recipients without an outcome.
    pub(crate) fn unmarked(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| self.slots[i].is_none())
    }

    /// smtp_rcpt_done(): the server took the recipient.
    pub(crate) fn done(
        &mut self,
        i: usize,
        mta: &str,
        reply: &Reply,
        action: DsnAction,
        dsn: bool,
    ) {
        let flat = reply.flat();
        self.slots[i] = Some(Outcome::Sent {
            status: Status {
                dsn: reply.dsn.clone(),
                text: flat.clone(),
                mta: Some(mta.to_owned()),
                reply: Some(flat),
            },
            action,
            success_notice_passed_on: dsn,
        });
    }

    /// smtp_rcpt_fail(): one recipient failed.
    pub(crate) fn rcpt_fail(&mut self, i: usize, mta: Mta<'_>, reply: &Reply, text: String) {
        let status = fill_dsn(mta, reply, text);
        self.slots[i] = Some(self.classify(status).0);
    }

    /// smtp_misc_fail() / smtp_bulk_fail(): every recipient still without an outcome
    /// fails the same way. `throttle` for site failures (smtp_site_fail(),
    /// smtp_stream_except()), not for message failures (smtp_mesg_fail()).
    pub(crate) fn bulk_fail(&mut self, mta: Mta<'_>, reply: &Reply, text: String, throttle: bool) {
        let status = fill_dsn(mta, reply, text);
        let todo: Vec<usize> = self.unmarked().collect();
        for i in todo {
            let (outcome, deferred) = self.classify(status.clone());
            self.throttle |= throttle && deferred;
            self.slots[i] = Some(outcome);
        }
    }

    /// The final-server rule, then bounce(8)'s soft_bounce; whether it is a deferral.
    fn classify(&self, status: Status) -> (Outcome, bool) {
        let soft = status.dsn.starts_with('4');
        let soft_bounce = status.dsn.starts_with('5') && self.soft_bounce;
        if (soft || soft_bounce) && !self.final_server {
            return (Outcome::Kept(status), false);
        }
        if soft {
            return (Outcome::Deferred(status), true);
        }
        if self.soft_bounce {
            // bounce_append() with soft_bounce: deferred, class 4.
            let mut status = status;
            status.dsn.replace_range(..1, "4");
            return (Outcome::Deferred(status), true);
        }
        (Outcome::Bounced(status), false)
    }
}

/// vsmtp_fill_dsn(): a server reply whose status is not 4.x.x or 5.x.x (a 2xx or 3xx
/// where a failure was expected) is a protocol error, 5.5.0.
fn fill_dsn(mta: Mta<'_>, reply: &Reply, text: String) -> Status {
    let mut dsn = reply.dsn.clone();
    let mut text = text;
    if mta.is_some() && !dsn.starts_with(['4', '5']) {
        text.insert_str(0, "Protocol error: ");
        "5.5.0".clone_into(&mut dsn);
    }
    let server_reply = (!reply.text.is_empty()).then(|| reply.flat());
    Status {
        dsn,
        text,
        mta: mta.map(str::to_owned),
        reply: server_reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::reply::fake;

    fn kind(o: Option<&Outcome>) -> (&'static str, String) {
        match o {
            Some(Outcome::Sent { status, .. }) => ("sent", status.dsn.clone()),
            Some(Outcome::Deferred(s)) => ("deferred", s.dsn.clone()),
            Some(Outcome::Bounced(s)) => ("bounced", s.dsn.clone()),
            Some(Outcome::Kept(s)) => ("kept", s.dsn.clone()),
            None => ("none", String::new()),
        }
    }

    #[test]
    fn final_server_and_soft_bounce() {
        // (dsn, final server, soft_bounce, mta) -> outcome, dsn, throttled
        for (dsn, fin, sb, mta, want, want_dsn, thr) in [
            ("4.1.1", true, false, Some("mx"), "deferred", "4.1.1", true),
            ("4.1.1", false, false, Some("mx"), "kept", "4.1.1", false),
            ("5.1.1", false, false, Some("mx"), "bounced", "5.1.1", false),
            ("5.1.1", false, true, Some("mx"), "kept", "5.1.1", false),
            ("5.1.1", true, true, Some("mx"), "deferred", "4.1.1", true),
            ("2.0.0", true, false, Some("mx"), "bounced", "5.5.0", false),
            ("2.0.0", true, false, None, "bounced", "2.0.0", false),
        ] {
            let mut t = Tracker::new(2, fin, sb);
            t.bulk_fail(mta, &fake(dsn), "why".into(), true);
            assert_eq!(
                kind(t.slots[0].as_ref()),
                (want, want_dsn.to_owned()),
                "{dsn} {fin} {sb}"
            );
            assert_eq!(t.throttle, thr, "{dsn} {fin} {sb}");
        }
    }

    #[test]
    fn protocol_error_prefix_and_marks() {
        let mut t = Tracker::new(3, true, false);
        t.rcpt_fail(1, Some("mx"), &fake("5.1.1"), "host said no".into());
        t.bulk_fail(
            Some("mx"),
            &fake("2.0.0"),
            "host said: 250 ok".into(),
            false,
        );
        assert_eq!(
            t.slots[1]
                .as_ref()
                .map(|o| o.status().text.clone())
                .as_deref(),
            Some("host said no")
        );
        let s = t.slots[0]
            .as_ref()
            .map(|o| o.status().clone())
            .expect("marked");
        assert_eq!(
            (s.dsn.as_str(), s.text.as_str()),
            ("5.5.0", "Protocol error: host said: 250 ok")
        );
        assert!(t.is_marked(2) && !t.throttle);
    }
}
