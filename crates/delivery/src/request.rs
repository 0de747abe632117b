//! What the daemon asks of a delivery agent, and what it gets back.
//!
//! One [`DeliveryRequest`] carries one message (by its queue file, which the agent reads
//! itself) and the recipients that go to one transport and next hop; the agent answers
//! with one [`Outcome`] per recipient, in any order. The daemon turns outcomes into status
//! records in the queue file, log lines (`status=sent (delivered to mailbox)`) and
//! bounces; the agent never writes the queue or the log.
//!
//! Security: the daemon is less trusted than the helper that runs this crate as root. A
//! request names a queue file; the agent checks that it lies inside queue_directory
//! before it reads it, and takes nothing else from the request as a path.

use std::path::PathBuf;

/// Which agent program a master.cf transport runs (its `command` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// local(8)
    Local,
    /// virtual(8)
    Virtual,
    /// pipe(8)
    Pipe,
}

/// One message to some of its recipients, through one transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRequest {
    pub agent: Agent,
    /// The master.cf service name (`local`, `virtual`, `maildrop`, ...): its `-o`
    /// overrides apply, and pipe(8) reads its `flags=`, `user=` and `argv=` from there.
    pub transport: String,
    /// The next hop the resolver gave (a domain for local/virtual; pipe's `${nexthop}`).
    pub nexthop: String,
    pub queue_id: String,
    /// The queue file (in `active/`).
    pub queue_file: PathBuf,
    /// The envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Arrival time, seconds since the epoch.
    pub arrival: u64,
    /// RFC 3461 ENVID, if any.
    pub envid: Option<String>,
    pub recipients: Vec<RequestRecipient>,
    /// `sendmail -bv` (Postfix's DEL_REQ_FLAG_USR_VRFY): verify only. The agent expands
    /// and resolves as usual but writes nothing, runs nothing and sends nothing; each
    /// final destination is answered `Sent` with the text Postfix's agents give in this
    /// mode (`delivers to mailbox`, `delivers to command: CMD`, `forwards to ADDR`), a
    /// failure as usual. The queue manager logs them `deliverable` / `undeliverable`.
    pub verify: bool,
}

/// One recipient of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestRecipient {
    /// The recipient's index in the queue file (status records name it).
    pub index: u32,
    /// The address to deliver to (after rewriting).
    pub address: String,
    /// The original recipient, as the client gave it before aliasing/rewriting
    /// (X-Original-To:, `${original_recipient}`, and `orig_to=` in the log when it
    /// differs from `address`); empty when unknown.
    pub orig_rcpt: String,
    /// DSN ORCPT as given (`rfc822;user@example.com`), if any.
    pub dsn_orcpt: Option<String>,
    /// DSN NOTIFY bits (tern_queue::Notify).
    pub notify: u8,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// [`RequestRecipient::index`].
    pub index: u32,
    pub result: Delivered,
    /// `relay=` in the log line (`local`, `virtual`, `maildrop`, ...).
    pub relay: String,
    /// The log lines of this recipient, when the agent knows better than the queue
    /// manager: one per final address of an alias or `.forward` expansion that the agent
    /// delivered itself (Postfix logs one line per final address, with `orig_to=`). The
    /// delivery helper fills it for every recipient (one entry when there was no
    /// expansion), with its worker's pid. Empty: log one line from `result`.
    pub expanded: Vec<ExpandedOutcome>,
}

/// A final address reached by expansion, and what became of it: one log line
/// (`postfix/local[PID]: QUEUEID: to=<address>, orig_to=<orig_to>, relay=..., status=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandedOutcome {
    pub address: String,
    /// `orig_to=`; empty: none (the same as `address`, or dropped after an owner- alias).
    pub orig_to: String,
    pub result: Delivered,
    /// The process that delivered it (`local[PID]`); `None`: the daemon itself.
    pub pid: Option<u32>,
    /// Who gets a failure notice for this address instead of the sender: the
    /// `owner-NAME` alias of the alias it was expanded from (local(8)'s bounce_one to
    /// the owner); `None`: the message's sender.
    pub notify: Option<String>,
}

/// A delivery helper worker's answer to one [`DeliveryRequest`] (crate::wire carries it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// The worker's process id, for the log lines' `program[PID]`.
    pub pid: u32,
    pub outcomes: Vec<Outcome>,
    /// Warnings the agent would log (`warning: ...` texts without the prefix), in order.
    pub warnings: Vec<String>,
}

/// The result of a delivery attempt (the DSN status and the text after `status=... (`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Done: `dsn` is 2.x.x; `text` e.g. `delivered to mailbox`, `delivered to maildir`,
    /// `delivered to command: /usr/bin/procmail`, `delivered to file: /tmp/x`.
    Sent { dsn: String, text: String },
    /// Try again later: 4.x.x.
    Deferred { dsn: String, text: String },
    /// Failed for good: 5.x.x (a non-delivery report follows).
    Bounced { dsn: String, text: String },
    /// Hand these addresses to cleanup as a new message (local(8)'s forwarding of alias
    /// and `.forward` results that are not its own to deliver): the daemon queues them
    /// and logs `status=sent (forwarded as NEWID)`.
    Forward(Forward),
    /// Deliver this address through another transport (local(8)'s deliver_pass for
    /// mailbox_transport(_maps) and fallback_transport(_maps)): the queue manager sends
    /// it to `transport` (a master.cf service) and `nexthop` with this message, and that
    /// delivery's result (logged by that transport) stands for this one.
    Pass { transport: String, nexthop: String },
}

/// A new message for addresses found by expansion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forward {
    /// The new envelope sender (the original one, or `owner-alias`'s address).
    pub sender: String,
    /// The addresses, each with the original recipient to carry along.
    pub recipients: Vec<String>,
    /// Header lines to put before the message (`Delivered-To: user@domain`), without the
    /// line ending.
    pub prepend: Vec<String>,
}
