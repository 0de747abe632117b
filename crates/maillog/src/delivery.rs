//! The delivery agents' per-recipient record (global/log_adhoc.c):
//!
//! ```text
//! QUEUEID: to=<alice@mx.example.test>, orig_to=<bob@mx.example.test>, relay=local,
//!     delay=0.01, delays=0.01/0.01/0/0, dsn=2.0.0, status=sent (delivered to mailbox)
//! QUEUEID: to=<far@remote.test>, relay=none, delay=35, delays=35/0.01/0/0, dsn=4.4.1,
//!     status=deferred (connect to 127.0.0.1[127.0.0.1]:1: Connection refused)
//! ```
//!
//! `orig_to=` appears only when the original recipient differs (ignoring case) from the
//! final one; `conn_use=N` only when a cached connection was used again. pflogsumm counts
//! deliveries, deferrals and bounces from `status=`.
//!
//! Trust: addresses and reasons may come from the network (a remote server's reply); the
//! caller passes them already made printable.

use std::fmt::Write as _;

use crate::delay::Delays;
use crate::line::Line;

/// The outcome of one delivery attempt for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `sent`: delivered (or relayed).
    Sent,
    /// `deferred`: temporary failure, tried again later.
    Deferred,
    /// `bounced`: permanent failure, returned to the sender.
    Bounced,
    /// `expired`: given up after `maximal_queue_lifetime`.
    Expired,
    /// `undeliverable` / `deliverable`: address verification probes (`sendmail -bv`).
    Undeliverable,
    Deliverable,
}

impl Status {
    /// The word after `status=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Deferred => "deferred",
            Self::Bounced => "bounced",
            Self::Expired => "expired",
            Self::Undeliverable => "undeliverable",
            Self::Deliverable => "deliverable",
        }
    }
}

/// One recipient's delivery record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The message's queue id.
    pub queue_id: &'a str,
    /// The recipient as delivered.
    pub to: &'a str,
    /// The recipient as first given (before aliases, virtual, canonical); logged only
    /// when it differs ignoring case. Empty or `None` means none.
    pub orig_to: Option<&'a str>,
    /// `local`, `none`, `mx.example.net[192.0.2.1]:25`, `private/dovecot-lmtp`, ...
    pub relay: &'a str,
    /// How many times the connection was used, counting this time; `conn_use=` is printed
    /// when it is 2 or more.
    pub conn_use: u32,
    /// The delays of this attempt.
    pub delays: Delays,
    /// `delay_logging_resolution_limit` (0..=6, default 2).
    pub delay_resolution: u32,
    /// The enhanced status code, `2.0.0`.
    pub dsn: &'a str,
    /// The outcome.
    pub status: Status,
    /// The text in parentheses: `delivered to mailbox`, `250 2.0.0 Ok: queued as X`,
    /// `unknown user: "ghost"`, a remote server's reply.
    pub reason: &'a str,
}

/// `QUEUEID: to=<...>[, orig_to=<...>], relay=R[, conn_use=N], delay=..., delays=a/b/c/d,
/// dsn=X.Y.Z, status=S (REASON)`.
pub fn delivery(d: &Delivery<'_>) -> Line {
    let mut out = format!("{}: to=<{}>", d.queue_id, d.to);
    if let Some(orig) = d.orig_to {
        // Postfix compares with strcasecmp_utf8(): case does not count, in UTF-8 too.
        if !orig.is_empty() && orig.to_lowercase() != d.to.to_lowercase() {
            let _ = write!(out, ", orig_to=<{orig}>");
        }
    }
    let _ = write!(out, ", relay={}", d.relay);
    if d.conn_use > 1 {
        let _ = write!(out, ", conn_use={}", d.conn_use);
    }
    let _ = write!(
        out,
        ", {}, dsn={}, status={} ({})",
        d.delays.render(d.delay_resolution),
        d.dsn,
        d.status.as_str(),
        d.reason
    );
    Line::info(out)
}

/// An info record of smtp(8) or lmtp(8) beside the per-recipient ones, text as
/// Postfix's msg_info() gives it: `connect to mx.example.net[192.0.2.1]:25: Connection
/// refused` (a server skipped), `QUEUEID: host mx.example.net[192.0.2.1] said: 450 ...`
/// (recipients left for the next server), `Trusted TLS connection established to ...`.
pub fn client_info(text: impl Into<String>) -> Line {
    Line::info(text.into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn base() -> Delivery<'static> {
        Delivery {
            queue_id: "Q",
            to: "alice@example.test",
            orig_to: None,
            relay: "local",
            conn_use: 0,
            delays: Delays::default(),
            delay_resolution: 2,
            dsn: "2.0.0",
            status: Status::Sent,
            reason: "delivered to mailbox",
        }
    }

    #[test]
    fn shapes() {
        let plain = base();
        let aliased = Delivery {
            orig_to: Some("bob@example.test"),
            ..base()
        };
        let same_but_case = Delivery {
            orig_to: Some("Alice@Example.TEST"),
            ..base()
        };
        let reused = Delivery {
            relay: "mx.example.net[192.0.2.1]:25",
            conn_use: 2,
            delays: Delays {
                total: Duration::from_millis(1200),
                before_qmgr: Duration::from_millis(100),
                in_qmgr: Duration::ZERO,
                conn_setup: Duration::ZERO,
                transmission: Duration::from_millis(1100),
            },
            reason: "250 2.0.0 Ok: queued as 4XyZ",
            ..base()
        };
        let bounced = Delivery {
            dsn: "5.1.1",
            status: Status::Bounced,
            reason: "unknown user: \"ghost\"",
            ..base()
        };
        let cases = [
            (
                plain,
                "Q: to=<alice@example.test>, relay=local, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)",
            ),
            (
                aliased,
                "Q: to=<alice@example.test>, orig_to=<bob@example.test>, relay=local, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)",
            ),
            (
                same_but_case,
                "Q: to=<alice@example.test>, relay=local, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)",
            ),
            (
                reused,
                "Q: to=<alice@example.test>, relay=mx.example.net[192.0.2.1]:25, conn_use=2, delay=1.2, delays=0.1/0/0/1.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4XyZ)",
            ),
            (
                bounced,
                "Q: to=<alice@example.test>, relay=local, delay=0, delays=0/0/0/0, dsn=5.1.1, status=bounced (unknown user: \"ghost\")",
            ),
        ];
        for (d, want) in cases {
            assert_eq!(delivery(&d).to_string(), want);
        }
    }
}
