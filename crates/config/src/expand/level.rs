//! Compatibility levels (`compatibility_level`, the `<level` comparisons): `major`,
//! `major.minor` or `major.minor.patch`, compared number by number, so `3.10` is above
//! `3.6` and `3` equals `3.0`.
//!
//! Postfix reads each number with C's strtol, so each may have leading blanks and a sign
//! (` 3` and `+3.0` are accepted, `-1` is not: a level is never negative). The minor and patch
//! numbers are at most 1023, the major number at most `i64::MAX >> 20`. Anything else is
//! malformed: `malformed compatibility level syntax: "TEXT"`.

use std::cmp::Ordering;

use crate::maincf::is_space;

const MINOR_BITS: u32 = 10;
const PATCH_BITS: u32 = 10;
const MINOR_MAX: i64 = (1 << MINOR_BITS) - 1;
const PATCH_MAX: i64 = (1 << PATCH_BITS) - 1;
const MAJOR_MAX: i64 = i64::MAX >> (MINOR_BITS + PATCH_BITS);

/// Compares two compatibility levels; `None` if either is malformed.
pub fn compare_levels(a: &str, b: &str) -> Option<Ordering> {
    Some(parse_level(a)?.cmp(&parse_level(b)?))
}

/// A compatibility level as one comparable number, as Postfix encodes it; `None` if malformed.
pub fn parse_level(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let (major, rest) = strtol(bytes)?;
    if !(0..=MAJOR_MAX).contains(&major) {
        return None;
    }
    let mut level = major << (MINOR_BITS + PATCH_BITS);
    let Some(rest) = after_dot(rest)? else {
        return Some(level);
    };
    let (minor, rest) = strtol(rest)?;
    if !(0..=MINOR_MAX).contains(&minor) {
        return None;
    }
    level |= minor << PATCH_BITS;
    let Some(rest) = after_dot(rest)? else {
        return Some(level);
    };
    let (patch, rest) = strtol(rest)?;
    if !rest.is_empty() || !(0..=PATCH_MAX).contains(&patch) {
        return None;
    }
    Some(level | patch)
}

/// After a number: `Some(None)` at the end, `Some(Some(rest))` after a `.`, `None` otherwise.
#[allow(clippy::option_option)] // outer: malformed; inner: end of text
fn after_dot(rest: &[u8]) -> Option<Option<&[u8]>> {
    match rest.split_first() {
        None => Some(None),
        Some((b'.', tail)) => Some(Some(tail)),
        Some(_) => None,
    }
}

/// C's strtol in base 10: leading blanks, a sign, digits. `None` when there are no digits or
/// the number does not fit (ERANGE).
fn strtol(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let mut at = bytes
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(bytes.len());
    let negative = match bytes.get(at) {
        Some(b'-') => {
            at += 1;
            true
        }
        Some(b'+') => {
            at += 1;
            false
        }
        _ => false,
    };
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let mut value: i64 = 0;
    for &d in &bytes[at..at + digits] {
        let d = i64::from(d - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(d)?
        } else {
            value.checked_add(d)?
        };
    }
    Some((value, &bytes[at + digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_table() {
        // (a, b, ordering) as Debian's postconf evaluates `${{a} <level {b}}` and friends.
        let cases: &[(&str, &str, Option<Ordering>)] = &[
            ("3.6", "3.10", Some(Ordering::Less)),
            ("3.6", "3.6.0", Some(Ordering::Equal)),
            ("2", "3.6", Some(Ordering::Less)),
            ("3.6.1", "3.6", Some(Ordering::Greater)),
            ("3", "3.0", Some(Ordering::Equal)),
            (" 3", "+3.0", Some(Ordering::Equal)),
            ("1", "1", Some(Ordering::Equal)),
            ("0", "1", Some(Ordering::Less)),
            ("3.x", "3.6", None),
            ("", "3.6", None),
            ("3.6.", "3", None),
            ("3..6", "3", None),
            ("-1", "1", None),
            ("3.1024", "3", None),
            ("3.6.1.2", "3", None),
            ("3 ", "3", None),
            ("99999999999999999999", "1", None),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_levels(a, b), *want, "{a} vs {b}");
        }
    }
}
