//! The lines that follow a message through the queue: pickup, cleanup, qmgr and bounce.
//!
//! ```text
//! postfix/pickup:  A1B2C3D4E04: uid=0 from=<alice@mx.example.test>
//! postfix/cleanup: A1B2C3D4E00: message-id=<20261126204005.001552@host.example>
//! postfix/qmgr:    A1B2C3D4E00: from=<sender@example.org>, size=452, nrcpt=1 (queue active)
//! postfix/qmgr:    A1B2C3D4E06: from=<alice@mx.example.test>, status=expired, returned to sender
//! postfix/bounce:  A1B2C3D4E04: sender non-delivery notification: A1B2C3D4E05
//! postfix/qmgr:    A1B2C3D4E00: removed
//! ```
//!
//! pflogsumm counts a message as received on its `client=` (smtpd) or `uid= from=` (pickup)
//! line, takes the size from the `(queue active)` line and counts bounces on the
//! notification line, so these shapes are load-bearing.
//!
//! Trust: the sender and the Message-ID come from the message's sender. The caller passes
//! them already made printable; Postfix logs the Message-ID header value as it stands.

use crate::line::Line;

/// pickup: `QUEUEID: uid=UID from=<SENDER>` for mail submitted with sendmail/postdrop.
pub fn pickup(queue_id: &str, uid: u32, sender: &str) -> Line {
    Line::info(format!("{queue_id}: uid={uid} from=<{sender}>"))
}

/// cleanup: `QUEUEID: message-id=VALUE`, the header's value as it stands (usually
/// `<...>`, but Postfix does not add brackets; `<>` when the message has none and cleanup
/// adds none).
pub fn message_id(queue_id: &str, header_value: &str) -> Line {
    Line::info(format!("{queue_id}: message-id={header_value}"))
}

/// cleanup's header_checks / body_checks action (cleanup_act_log()): `QUEUEID: ACTION:
/// header TEXT from ORIGIN; from=<S> to=<R> proto=P helo=<H>: TEXT`, composed by the
/// caller (tern_daemon::content_checks).
pub fn content_check(line: &str) -> Line {
    Line::info(line.to_owned())
}

/// cleanup: `QUEUEID: resent-message-id=VALUE`.
pub fn resent_message_id(queue_id: &str, header_value: &str) -> Line {
    Line::info(format!("{queue_id}: resent-message-id={header_value}"))
}

/// qmgr: `QUEUEID: from=<SENDER>, size=N, nrcpt=N (queue active)`, when a message enters
/// the active queue. `size` is the message size Postfix records (content plus headers it
/// added); `nrcpt` counts the recipients in the queue file.
pub fn queue_active(queue_id: &str, sender: &str, size: u64, nrcpt: usize) -> Line {
    Line::info(format!(
        "{queue_id}: from=<{sender}>, size={size}, nrcpt={nrcpt} (queue active)"
    ))
}

/// qmgr: `QUEUEID: removed`, when the queue file is deleted after the last recipient.
pub fn removed(queue_id: &str) -> Line {
    Line::info(format!("{queue_id}: removed"))
}

/// How a message ran out of time in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `expired`: older than `maximal_queue_lifetime` (or `bounce_queue_lifetime` for a
    /// bounce).
    Expired,
    /// `force-expired`: `postsuper -e` / `-f` asked for it.
    ForceExpired,
}

/// qmgr: `QUEUEID: from=<SENDER>, status=expired, returned to sender`.
pub fn expired(queue_id: &str, sender: &str, how: Expiry) -> Line {
    let status = match how {
        Expiry::Expired => "expired",
        Expiry::ForceExpired => "force-expired",
    };
    Line::info(format!(
        "{queue_id}: from=<{sender}>, status={status}, returned to sender"
    ))
}

/// The notices the bounce daemon sends, each logged with the id of the new message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notification {
    /// A bounce to the sender.
    SenderNonDelivery,
    /// The copy to the postmaster (`notify_classes = bounce`).
    PostmasterNonDelivery,
    /// A delay warning to the sender (`delay_warning_time`).
    SenderDelay,
    /// The delay warning to the postmaster (`notify_classes = delay`).
    PostmasterDelay,
    /// A success DSN (NOTIFY=SUCCESS) or a `sendmail -bv` / `-v` report.
    SenderDeliveryStatus,
}

/// bounce: `QUEUEID: sender non-delivery notification: NEWQUEUEID`.
pub fn notification(queue_id: &str, kind: Notification, new_queue_id: &str) -> Line {
    let what = match kind {
        Notification::SenderNonDelivery => "sender non-delivery notification",
        Notification::PostmasterNonDelivery => "postmaster non-delivery notification",
        Notification::SenderDelay => "sender delay notification",
        Notification::PostmasterDelay => "postmaster delay notification",
        Notification::SenderDeliveryStatus => "sender delivery status notification",
    };
    Line::info(format!("{queue_id}: {what}: {new_queue_id}"))
}

/// bounce: `QUEUEID: not sending trace/success notification for double-bounce message`
/// (`double`), or `... for single-bounce message`: a NOTIFY=SUCCESS report about a notice
/// that is not sent (bounce_trace_service.c).
pub fn trace_not_sent(queue_id: &str, double: bool) -> Line {
    let which = if double { "double" } else { "single" };
    Line::info(format!(
        "{queue_id}: not sending trace/success notification for {which}-bounce message"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cases = [
            (pickup("Q", 0, "a@b"), "Q: uid=0 from=<a@b>"),
            (message_id("Q", "<x@y>"), "Q: message-id=<x@y>"),
            (message_id("Q", "<>"), "Q: message-id=<>"),
            (
                resent_message_id("Q", "<r@y>"),
                "Q: resent-message-id=<r@y>",
            ),
            (
                queue_active("Q", "", 2138, 1),
                "Q: from=<>, size=2138, nrcpt=1 (queue active)",
            ),
            (removed("Q"), "Q: removed"),
            (
                expired("Q", "a@b", Expiry::Expired),
                "Q: from=<a@b>, status=expired, returned to sender",
            ),
            (
                expired("Q", "a@b", Expiry::ForceExpired),
                "Q: from=<a@b>, status=force-expired, returned to sender",
            ),
            (
                notification("Q", Notification::SenderNonDelivery, "R"),
                "Q: sender non-delivery notification: R",
            ),
            (
                notification("Q", Notification::PostmasterDelay, "R"),
                "Q: postmaster delay notification: R",
            ),
            (
                notification("Q", Notification::SenderDeliveryStatus, "R"),
                "Q: sender delivery status notification: R",
            ),
            (
                trace_not_sent("Q", true),
                "Q: not sending trace/success notification for double-bounce message",
            ),
            (
                trace_not_sent("Q", false),
                "Q: not sending trace/success notification for single-bounce message",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.to_string(), want);
        }
    }
}
