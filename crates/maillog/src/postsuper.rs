//! The lines of postsuper(1), under the ident `postfix/postsuper`:
//!
//! ```text
//! postfix/postsuper[4242]: 4C1F4A2E3D: removed
//! postfix/postsuper[4242]: 4C1F4A2E3D: placed on hold
//! postfix/postsuper[4242]: 4C1F4A2E3D: released from hold
//! postfix/postsuper[4242]: 4C1F4A2E3D: requeued
//! postfix/postsuper[4242]: 4C1F4A2E3D: expired
//! postfix/postsuper[4242]: Deleted: 3 messages
//! postfix/postsuper[4242]: Placed on hold: 1 message
//! ```
//!
//! Postfix writes the same texts to standard error (`postsuper: Deleted: 3 messages`), so
//! the command takes [`Line::text`] for both. The counts are postsuper.c's `%d message%s`:
//! plural for every number but 1, zero included.
//!
//! Trust: queue ids come from the queue directory or the command line, checked by the
//! caller as mail_queue_id_ok() checks them (letters, digits, `_`).

use crate::line::Line;

/// What postsuper did to one message named by its queue id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `-d`: `removed`.
    Removed,
    /// `-h`: `placed on hold`.
    PlacedOnHold,
    /// `-H` (and `-f`): `released from hold`.
    Released,
    /// `-r`: `requeued`.
    Requeued,
    /// `-e` (and `-f`): `expired`.
    Expired,
}

impl Action {
    fn text(self) -> &'static str {
        match self {
            Action::Removed => "removed",
            Action::PlacedOnHold => "placed on hold",
            Action::Released => "released from hold",
            Action::Requeued => "requeued",
            Action::Expired => "expired",
        }
    }
}

/// `QUEUEID: removed` and the other per-message lines.
pub fn message(queue_id: &str, action: Action) -> Line {
    Line::info(format!("{queue_id}: {}", action.text()))
}

/// The totals postsuper reports at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Total {
    Requeued,
    Deleted,
    ForceExpired,
    PlacedOnHold,
    Released,
    /// `-s`: `Renamed to match inode number`.
    Renamed,
}

/// `Deleted: 3 messages`, `Placed on hold: 1 message`, ...
pub fn total(which: Total, count: u64) -> Line {
    let label = match which {
        Total::Requeued => "Requeued",
        Total::Deleted => "Deleted",
        Total::ForceExpired => "Force-expired",
        Total::PlacedOnHold => "Placed on hold",
        Total::Released => "Released from hold",
        Total::Renamed => "Renamed to match inode number",
    };
    let s = if count == 1 { "" } else { "s" };
    Line::info(format!("{label}: {count} message{s}"))
}

/// `-v`: an info line of postsuper's verbose output (`removed file deferred/A/AB12`).
pub fn verbose(text: impl Into<String>) -> Line {
    Line::info(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_postfix() {
        let table = [
            (
                message("4C1F4A2E3D", Action::Removed),
                "4C1F4A2E3D: removed",
            ),
            (
                message("4C1F4A2E3D", Action::PlacedOnHold),
                "4C1F4A2E3D: placed on hold",
            ),
            (
                message("4C1F4A2E3D", Action::Released),
                "4C1F4A2E3D: released from hold",
            ),
            (message("A", Action::Requeued), "A: requeued"),
            (message("A", Action::Expired), "A: expired"),
            (total(Total::Deleted, 3), "Deleted: 3 messages"),
            (total(Total::Deleted, 0), "Deleted: 0 messages"),
            (total(Total::PlacedOnHold, 1), "Placed on hold: 1 message"),
            (total(Total::Released, 1), "Released from hold: 1 message"),
            (total(Total::Requeued, 2), "Requeued: 2 messages"),
            (total(Total::ForceExpired, 1), "Force-expired: 1 message"),
            (
                total(Total::Renamed, 4),
                "Renamed to match inode number: 4 messages",
            ),
        ];
        for (line, want) in table {
            assert_eq!(line.text(), want);
        }
    }
}
