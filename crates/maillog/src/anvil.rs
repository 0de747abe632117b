//! anvil(8)'s statistics lines (anvil.c's anvil_status_dump()), logged every
//! anvil_status_update_time:
//!
//! - `statistics: max connection rate 3/60s for (smtp:127.0.0.1) at Nov 27 08:40:12`
//! - `statistics: max connection count 2 for (smtp:127.0.0.1) at Nov 27 08:40:12`
//! - `statistics: max message rate ...`, `max recipient rate ...`, `max newtls rate ...`,
//!   `max auth rate ...`
//! - `statistics: max cache size 1 at Nov 27 08:40:12`
//!
//! The time is ctime(3)'s `%.15s` after the weekday: the day of the month padded with a
//! space, not a zero. Trust: the ident (`service:address`) is the daemon's own text.

use crate::Line;
use crate::prefix::Timestamp;

/// `Nov  7 08:40:12`: ctime(3)'s month, space-padded day and time.
fn ctime15(at: Timestamp) -> String {
    // Timestamp pads the day with a zero (`%d`); ctime pads it with a space.
    let text = at.to_string();
    match text.split_once(' ') {
        Some((month, rest)) if rest.starts_with('0') => format!("{month}  {}", &rest[1..]),
        _ => text,
    }
}

/// `statistics: max WHAT rate N/Ts for (IDENT) at TIME` (WHAT: connection, message,
/// recipient, newtls, auth).
pub fn max_rate(what: &str, value: u32, unit_secs: u64, ident: &str, at: Timestamp) -> Line {
    Line::info(format!(
        "statistics: max {what} rate {value}/{unit_secs}s for ({ident}) at {}",
        ctime15(at)
    ))
}

/// `statistics: max connection count N for (IDENT) at TIME`.
pub fn max_count(value: u32, ident: &str, at: Timestamp) -> Line {
    Line::info(format!(
        "statistics: max connection count {value} for ({ident}) at {}",
        ctime15(at)
    ))
}

/// `statistics: max cache size N at TIME`.
pub fn max_cache_size(value: usize, at: Timestamp) -> Line {
    Line::info(format!(
        "statistics: max cache size {value} at {}",
        ctime15(at)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let at = Timestamp {
            month: 11,
            day: 7,
            hour: 8,
            minute: 40,
            second: 12,
        };
        let late = Timestamp { day: 27, ..at };
        let cases = [
            (
                max_rate("connection", 3, 60, "smtp:127.0.0.1", at),
                "statistics: max connection rate 3/60s for (smtp:127.0.0.1) at Nov  7 08:40:12",
            ),
            (
                max_count(2, "smtp:127.0.0.1", late),
                "statistics: max connection count 2 for (smtp:127.0.0.1) at Nov 27 08:40:12",
            ),
            (
                max_cache_size(1, late),
                "statistics: max cache size 1 at Nov 27 08:40:12",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.text(), want);
        }
    }
}
