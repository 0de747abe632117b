//! The delivery side of the queue manager: the [`Transport`] trait every delivery agent
//! sits behind, the [`Notices`] hook for non-delivery and delay notices, and the agents
//! built into the daemon: discard(8), error(8) (and its `retry` service), and the
//! stand-in for a transport that master.cf does not define or Tern cannot run yet.
//!
//! discard(8) and error(8) take their reason from the next hop (`discard:text`,
//! `error:5.1.1 text`): a leading enhanced status code replaces the agent's default
//! (2.0.0 for discard, 5.0.0 for error, 4.0.0 for the `retry` service), as Postfix's
//! dsn_split(); their relay is `none`.
//!
//! Trust: requests come from the queue manager; addresses in them came from the network
//! and are only copied into outcomes here.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tern_delivery::request::{Delivered, DeliveryRequest, Outcome};

use tern_queue::{Envelope, QueueId};

use super::schedule::HopFailure;

/// A boxed future, as the trait objects return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A delivery agent, as the queue manager sees it: one request in, one outcome per
/// recipient out (a recipient without an outcome is taken as deferred).
pub trait Transport: Send + Sync {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>>;

    /// [`Transport::deliver`] with what a network agent knows of each recipient's
    /// session ([`SessionStats`]: `delays=` c/d and `conn_use=`); agents without
    /// sessions keep this default, which has none.
    fn deliver_with_stats(
        &self,
        req: DeliveryRequest,
    ) -> BoxFuture<(Vec<Outcome>, Vec<SessionStats>)> {
        let outcomes = self.deliver(req);
        Box::pin(async move { (outcomes.await, Vec::new()) })
    }
}

/// One recipient's session, as smtp(8) and lmtp(8) report it with their outcome
/// (Postfix's msg_stats: conn_setup_done, deliver_done, reuse_count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// [`Outcome::index`].
    pub index: u32,
    /// `delays=` c: from the hand-off to the agent to the end of the handshake (DNS,
    /// connect, greeting, EHLO, TLS) or the cached connection's RSET probe.
    pub conn_setup: std::time::Duration,
    /// `delays=` d: the rest, to the end of the delivery.
    pub transmission: std::time::Duration,
    /// `conn_use=`: the connection's uses counting this one (1: a new connection).
    pub conn_use: u32,
    /// The recipient was relayed to a server that offers DSN, which now answers for
    /// NOTIFY=SUCCESS: the queue manager sends no success notice (smtp(8) clears the
    /// recipient's SUCCESS bit).
    pub success_notice_passed_on: bool,
    /// The recipient was deferred by a failure of the server as a whole (greeting,
    /// HELO, lost connection, timeout, TLS required): Postfix's smtp(8) reports it as
    /// the destination's hop status, and qmgr throttles the destination (lower
    /// concurrency; after enough failed cohorts, a dead destination whose other mail
    /// waits: qmgr::schedule, HopFailure).
    pub throttle: bool,
}

/// What the queue manager does for a dead destination's waiting recipients
/// (qmgr_defer_todo): each deferred with the status that killed the destination,
/// `delivery temporarily suspended: ...`, relay `none`.
pub struct Suspended(pub HopFailure);

impl Transport for Suspended {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>> {
        let hop = self.0.clone();
        Box::pin(async move {
            every(&req, |()| Delivered::Deferred {
                dsn: hop.dsn.clone(),
                text: hop.text.clone(),
            })
        })
    }
}

/// Why a notice is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// Recipients bounced in this pass (`sender non-delivery notification`).
    Bounce,
    /// The message expired: its deferred recipients are returned to the sender.
    Expired,
    /// delay_warning_time passed (`sender delay notification`).
    DelayWarning,
    /// Recipients with NOTIFY=SUCCESS were delivered (`sender delivery status
    /// notification`).
    Success,
    /// A `sendmail -bv` probe was answered for every recipient (`sender delivery status
    /// notification`, the "Mail Delivery Status Report").
    Verify,
}

/// One recipient in a notice, with the last result the agent gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecipient {
    pub index: u32,
    /// The address delivery was tried for (after the resolver's rewriting).
    pub address: String,
    /// The recipient as the queue file holds it (shown as the original recipient when
    /// it differs).
    pub orig_address: String,
    /// DSN ORCPT, as given.
    pub orcpt: Option<String>,
    /// DSN NOTIFY bits (tern_queue::Notify).
    pub notify: u8,
    pub dsn: String,
    pub text: String,
}

/// A notice the bounce service must send about one message.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub queue_id: String,
    /// The queue file (in active/), which stays in place until the hook returns.
    pub queue_file: PathBuf,
    pub envelope: Envelope,
    pub recipients: Vec<NoticeRecipient>,
    /// Who gets the notice instead of the envelope's sender: an `owner-` alias
    /// (local(8)'s bounce_one). The report still names the original sender
    /// (`X-Postfix-Sender:`).
    pub to: Option<String>,
    /// Where the ids of the notices made go, for the queue manager to take in once the
    /// message's pass has ended (its file removed or deferred), as Postfix's qmgr takes a
    /// bounce in only after it is done with the message; `None`: at once.
    pub made: Option<Arc<Mutex<Vec<QueueId>>>>,
}

/// Where notices go (bounce(8)'s part). On `Err` the queue manager keeps the message and
/// tries again later, as Postfix does when the bounce service fails.
pub trait Notices: Send + Sync {
    fn notify(&self, notice: Notice) -> BoxFuture<Result<(), String>>;
}

/// discard(8): every recipient `sent`, with the next hop as the reason.
pub struct Discard;

impl Transport for Discard {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>> {
        let (dsn, text) = dsn_split("2.0.0", &req.nexthop);
        Box::pin(async move {
            every(&req, |()| Delivered::Sent {
                dsn: dsn.clone(),
                text: text.clone(),
            })
        })
    }
}

/// error(8): every recipient bounced with the next hop as the reason; run as the
/// `retry` service, deferred instead (error.c).
pub struct ErrorAgent;

impl Transport for ErrorAgent {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>> {
        let retry = req.transport == "retry";
        let (dsn, text) = dsn_split(if retry { "4.0.0" } else { "5.0.0" }, &req.nexthop);
        Box::pin(async move {
            every(&req, |()| {
                let (dsn, text) = (dsn.clone(), text.clone());
                if retry {
                    Delivered::Deferred { dsn, text }
                } else {
                    Delivered::Bounced { dsn, text }
                }
            })
        })
    }
}

/// What qmgr does with a transport it cannot reach: every recipient deferred with
/// `4.3.0 mail transport unavailable` (qmgr_deliver.c).
pub struct Unavailable;

/// The reason [`Unavailable`] gives.
pub const UNAVAILABLE: &str = "mail transport unavailable";

impl Transport for Unavailable {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>> {
        Box::pin(async move {
            every(&req, |()| Delivered::Deferred {
                dsn: "4.3.0".to_owned(),
                text: UNAVAILABLE.to_owned(),
            })
        })
    }
}

/// The name under which the queue manager schedules mail to the local
/// double_bounce_sender address (a space: never a master.cf service name).
pub const DOUBLE_BOUNCE: &str = "double bounce";

/// qmgr_message.c: mail to the local double_bounce_sender address is discarded by the
/// queue manager itself (`status=sent (undeliverable postmaster notification
/// discarded)`, relay none), so that a notice about a notice never loops and the system
/// needs no local delivery agent for it.
pub struct DoubleBounceDiscard;

impl Transport for DoubleBounceDiscard {
    fn deliver(&self, req: DeliveryRequest) -> BoxFuture<Vec<Outcome>> {
        Box::pin(async move {
            every(&req, |()| Delivered::Sent {
                dsn: "2.0.0".to_owned(),
                text: "undeliverable postmaster notification discarded".to_owned(),
            })
        })
    }
}

fn every(req: &DeliveryRequest, mut result: impl FnMut(()) -> Delivered) -> Vec<Outcome> {
    req.recipients
        .iter()
        .map(|r| Outcome {
            index: r.index,
            result: result(()),
            relay: "none".to_owned(),
            expanded: Vec::new(),
        })
        .collect()
}

/// Postfix's dsn_split(): a leading `X.Y.Z` (class 2, 4 or 5) and white space give the
/// status, the rest the text; otherwise `default` and the whole text.
pub fn dsn_split(default: &str, text: &str) -> (String, String) {
    let word_end = text.find([' ', '\t']).unwrap_or(text.len());
    let (word, rest) = text.split_at(word_end);
    if is_dsn(word) {
        return (word.to_owned(), rest.trim_start().to_owned());
    }
    (default.to_owned(), text.to_owned())
}

/// `[245].DIGITS{1,3}.DIGITS{1,3}` (dsn_valid()).
fn is_dsn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use tern_delivery::request::{Agent, RequestRecipient};

    use super::*;

    #[test]
    fn dsn_split_table() {
        for (default, text, want) in [
            ("5.0.0", "gone", ("5.0.0", "gone")),
            ("5.0.0", "5.1.1 no such user", ("5.1.1", "no such user")),
            ("5.0.0", "4.7.1  try later", ("4.7.1", "try later")),
            ("2.0.0", "discard.test", ("2.0.0", "discard.test")),
            ("5.0.0", "5.1 short", ("5.0.0", "5.1 short")),
            ("5.0.0", "3.1.1 x", ("5.0.0", "3.1.1 x")),
            ("5.0.0", "", ("5.0.0", "")),
        ] {
            let (d, t) = dsn_split(default, text);
            assert_eq!((d.as_str(), t.as_str()), want, "{text}");
        }
    }

    fn req(transport: &str, nexthop: &str) -> DeliveryRequest {
        DeliveryRequest {
            agent: Agent::Local,
            transport: transport.to_owned(),
            nexthop: nexthop.to_owned(),
            queue_id: "Q".to_owned(),
            queue_file: PathBuf::from("/q/active/Q"),
            sender: String::new(),
            arrival: 0,
            envid: None,
            recipients: vec![RequestRecipient {
                index: 3,
                address: "a@b".to_owned(),
                ..RequestRecipient::default()
            }],
            verify: false,
        }
    }

    #[tokio::test]
    async fn builtin_agents() {
        let cases: [(&dyn Transport, &str, &str, Delivered); 4] = [
            (
                &Discard,
                "discard",
                "discard.test",
                Delivered::Sent {
                    dsn: "2.0.0".into(),
                    text: "discard.test".into(),
                },
            ),
            (
                &ErrorAgent,
                "error",
                "gone",
                Delivered::Bounced {
                    dsn: "5.0.0".into(),
                    text: "gone".into(),
                },
            ),
            (
                &ErrorAgent,
                "retry",
                "4.4.1 later",
                Delivered::Deferred {
                    dsn: "4.4.1".into(),
                    text: "later".into(),
                },
            ),
            (
                &Unavailable,
                "smtp",
                "x.test",
                Delivered::Deferred {
                    dsn: "4.3.0".into(),
                    text: UNAVAILABLE.into(),
                },
            ),
        ];
        for (t, transport, nexthop, want) in cases {
            let out = t.deliver(req(transport, nexthop)).await;
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].index, 3);
            assert_eq!(out[0].relay, "none");
            assert_eq!(out[0].result, want, "{transport}");
        }
    }
}
