//! Postfix queue ids: making them, checking them, and the hashed directory they live in.
//!
//! A queue id names a queue file and appears in every log line about the message
//! (`C954098E5B8: from=<...>`), so Tern makes them exactly as Postfix 3.7 does:
//!
//! - **Short form** (the default, `enable_long_queue_ids = no`): the microseconds of the
//!   time of creation as exactly five upper-case hexadecimal digits, followed by the file's
//!   inode number in upper-case hexadecimal without padding: `C9540` + `98E5B8` =
//!   `C954098E5B8`. The inode makes the id unique among the files that exist at the same
//!   time (the file system never gives two live files one inode), so the id is taken from
//!   the inode of the already created file; the microseconds make a reused inode unlikely
//!   to give a reused id. Short ids do repeat over time.
//! - **Long form** (`enable_long_queue_ids = yes`): the seconds in base 52 (at least six
//!   characters), the microseconds in base 52 (exactly four), the separator `z`, then the
//!   inode in base 51: `4jb7hF` + `40Rl` + `z` + `1SWT6`. The alphabet is the digits and
//!   the letters without vowels (`0-9 B-Z b-z` less `AEIOUaeiou`); the inode's base 51
//!   leaves out `z`, so the last `z` of an id always is the separator. Long ids do not
//!   repeat.
//!
//! Postfix accepts as a queue file name any non-empty string of at most 255 letters,
//! digits and underscores, because the fast flush logs in `flush/` are named after
//! destinations (`example_com`); [`QueueId::parse`] keeps that rule.
//!
//! Hashing (`hash_queue_names`, `hash_queue_depth`): a file of a hashed queue lives
//! `depth` directory levels down, one level per leading character of the id (`deferred/C/
//! C954098E5B8` at depth 1). For a long id the characters are those of the five hex
//! digits of its microseconds, so both forms spread over the same 16 subdirectories
//! (`4jb7hF40Rlz1SWT6` lives in `deferred/8/`). See postconf(5), hash_queue_depth.
//!
//! Security: `parse` is the gate for names read from directories and from the command
//! line (`postsuper -d ID`); an accepted id never contains `/` or `.`, so it cannot name a
//! path outside its queue.

use std::fmt;

use thiserror::Error;

/// Postfix's "safe" alphabet: digits, then upper- and lower-case consonants.
const SAFE_CHARS: &[u8; 52] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";
/// The longest queue file name Postfix accepts (VALID_HOSTNAME_LEN, RFC 1035).
pub const MAX_ID_LEN: usize = 255;
/// Width of the microseconds in a short id.
const SHORT_USEC_WIDTH: usize = 5;
/// Minimum width of the seconds in a long id.
const LONG_SEC_WIDTH: usize = 6;
/// Exact width of the microseconds in a long id.
const LONG_USEC_WIDTH: usize = 4;
/// The separator between time and inode in a long id.
const LONG_SEPARATOR: u8 = b'z';

/// A queue file name that Postfix would accept: 1 to 255 of `[A-Za-z0-9_]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(String);

/// Why a string is not a queue id.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("empty queue id")]
    Empty,
    #[error("queue id longer than {MAX_ID_LEN} characters")]
    TooLong,
    #[error("queue id contains {0:?}: only letters, digits and '_' are allowed")]
    BadChar(char),
}

/// Which of Postfix's two id forms a [`QueueId`] has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    /// Hex microseconds and hex inode (`C954098E5B8`).
    Short,
    /// Base-52 time, `z`, base-51 inode (`4jb7hF40Rlz1SWT6`).
    Long,
}

impl QueueId {
    /// Accepts a name by Postfix's rule (mail_queue_id_ok): letters, digits, `_`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '_') {
            return Err(IdError::BadChar(c));
        }
        Ok(Self(s.to_owned()))
    }

    /// The short id of a file created at `usec` microseconds past the second, with inode
    /// number `inode`.
    pub fn short(usec: u32, inode: u64) -> Self {
        // The microseconds are below 1,000,000 = 0xF4240, so five digits always suffice;
        // `% 1_000_000` keeps a caller's out-of-range value from widening the field.
        Self(format!("{:05X}{inode:X}", usec % 1_000_000))
    }

    /// The long id of a file created at `sec`.`usec` with inode number `inode`.
    pub fn long(sec: u64, usec: u32, inode: u64) -> Self {
        let mut s = encode(sec, 52, LONG_SEC_WIDTH);
        s.push_str(&encode(u64::from(usec % 1_000_000), 52, LONG_USEC_WIDTH));
        s.push(char::from(LONG_SEPARATOR));
        s.push_str(&encode(inode, 51, 0));
        Self(s)
    }

    /// The id of a new file, in the form `form`.
    pub fn new(form: IdForm, sec: u64, usec: u32, inode: u64) -> Self {
        match form {
            IdForm::Short => Self::short(usec, inode),
            IdForm::Long => Self::long(sec, usec, inode),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Long if the last `z` stands after at least ten characters (Postfix's test), else
    /// short. Flush log names are classified as short; they are never hashed by id form.
    pub fn form(&self) -> IdForm {
        if self.long_separator().is_some() {
            IdForm::Long
        } else {
            IdForm::Short
        }
    }

    /// The inode number encoded in the id, if it decodes.
    pub fn inode(&self) -> Option<u64> {
        if let Some(z) = self.long_separator() {
            return decode(&self.0.as_bytes()[z + 1..], 51);
        }
        let tail = self.0.get(SHORT_USEC_WIDTH..)?;
        if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(tail, 16).ok()
    }

    /// The characters a hashed queue uses to pick subdirectories: the id itself for a
    /// short id, the five hex digits of the microseconds for a long one (0 if they do not
    /// decode, as Postfix does).
    pub fn hash_key(&self) -> String {
        match self.long_separator() {
            Some(z) => {
                let usec = decode(&self.0.as_bytes()[z - LONG_USEC_WIDTH..z], 52).unwrap_or(0);
                format!("{usec:05X}")
            }
            None => self.0.clone(),
        }
    }

    /// The relative subdirectory path for `depth` levels of hashing, `"C/"` for depth 1,
    /// `"C/9/"` for depth 2; `""` for depth 0. A key shorter than `depth` is padded with
    /// `_` levels, as Postfix's dir_forest does.
    pub fn hash_dir(&self, depth: usize) -> String {
        let key = self.hash_key();
        let mut chars = key.chars();
        let mut out = String::with_capacity(depth * 2);
        for _ in 0..depth {
            out.push(chars.next().unwrap_or('_'));
            out.push('/');
        }
        out
    }

    fn long_separator(&self) -> Option<usize> {
        let z = self.0.bytes().rposition(|b| b == LONG_SEPARATOR)?;
        (z >= LONG_SEC_WIDTH + LONG_USEC_WIDTH).then_some(z)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({})", self.0)
    }
}

impl std::str::FromStr for QueueId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl AsRef<str> for QueueId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `value` in the first `base` characters of the safe alphabet, left-padded with `0` to
/// `width`.
fn encode(mut value: u64, base: u64, width: usize) -> String {
    let mut digits = Vec::new();
    while value != 0 {
        // The remainder is below `base` <= 52, the alphabet's length.
        digits.push(SAFE_CHARS[usize::try_from(value % base).unwrap_or(0)]);
        value /= base;
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

/// The inverse of [`encode`]; `None` for an empty string, a character outside the base,
/// or overflow.
fn decode(s: &[u8], base: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        let digit = SAFE_CHARS.iter().position(|&c| c == b)? as u64;
        if digit >= base {
            return None;
        }
        acc.checked_mul(base)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Seen on Debian 12's Postfix 3.7.11 (`mailq`, `stat -c %i`, the file's directory).
    const SEEN: &[(&str, IdForm, u64, &str)] = &[
        ("C954098E5B8", IdForm::Short, 10_020_280, "C/"),
        ("C535498E5B5", IdForm::Short, 10_020_277, "C/"),
        ("C75BE98E5B3", IdForm::Short, 10_020_275, "C/"),
        ("4jb7hF40Rlz1SWT6", IdForm::Long, 10_020_333, "8/"),
        ("4jb7hF45Mlz1SWT1", IdForm::Long, 10_020_328, "8/"),
    ];

    #[test]
    fn ids_seen_on_debian() {
        for &(text, form, inode, dir) in SEEN {
            let id = QueueId::parse(text).unwrap();
            assert_eq!(id.form(), form, "{text}");
            assert_eq!(id.inode(), Some(inode), "{text}");
            assert_eq!(id.hash_dir(1), dir, "{text}");
            assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn making_ids_as_debian_does() {
        // C954098E5B8: usec 0xC9540, inode 10020280.
        assert_eq!(QueueId::short(0xC9540, 10_020_280).as_str(), "C954098E5B8");
        // Small values keep the five-digit microsecond field.
        assert_eq!(QueueId::short(5, 0x1F).as_str(), "000051F");
        // 4jb7hF40Rlz1SWT6: the seconds and microseconds decode to a time whose hex
        // microseconds start with 8 (the directory Postfix chose).
        let sec = decode(b"4jb7hF", 52).unwrap();
        let usec = u32::try_from(decode(b"40Rl", 52).unwrap()).unwrap();
        assert_eq!(
            QueueId::long(sec, usec, 10_020_333).as_str(),
            "4jb7hF40Rlz1SWT6"
        );
        assert_eq!(format!("{usec:05X}").chars().next(), Some('8'));
        assert_eq!(QueueId::long(0, 0, 0).as_str(), "0000000000z");
    }

    #[test]
    fn validity() {
        let table: &[(&str, Result<(), IdError>)] = &[
            ("C954098E5B8", Ok(())),
            ("example_com", Ok(())),
            ("", Err(IdError::Empty)),
            ("../etc", Err(IdError::BadChar('.'))),
            ("a/b", Err(IdError::BadChar('/'))),
            ("12345.678", Err(IdError::BadChar('.'))),
            ("ab-c", Err(IdError::BadChar('-'))),
            ("é", Err(IdError::BadChar('é'))),
        ];
        for (text, want) in table {
            assert_eq!(QueueId::parse(text).map(drop), *want, "{text:?}");
        }
        assert_eq!(QueueId::parse(&"a".repeat(255)).map(drop), Ok(()));
        assert_eq!(
            QueueId::parse(&"a".repeat(256)).map(drop),
            Err(IdError::TooLong)
        );
    }

    #[test]
    fn hashing_depths() {
        let id = QueueId::parse("C954098E5B8").unwrap();
        assert_eq!(id.hash_dir(0), "");
        assert_eq!(id.hash_dir(2), "C/9/");
        let short = QueueId::parse("AB").unwrap();
        assert_eq!(short.hash_dir(3), "A/B/_/");
        let long = QueueId::parse("4jb7hF45Mlz1SWT1").unwrap();
        assert!(long.hash_key().starts_with('8'));
        assert_eq!(long.hash_key().len(), 5);
    }

    proptest! {
        #[test]
        fn made_ids_parse_and_decode(sec in 0u64..(1 << 40), usec in 0u32..1_000_000,
                                     inode in any::<u64>()) {
            let s = QueueId::short(usec, inode);
            prop_assert_eq!(QueueId::parse(s.as_str()).unwrap().form(), IdForm::Short);
            prop_assert_eq!(s.inode(), Some(inode));
            prop_assert_eq!(&s.hash_key()[..5], &format!("{usec:05X}")[..]);
            let l = QueueId::long(sec, usec, inode);
            prop_assert_eq!(QueueId::parse(l.as_str()).unwrap().form(), IdForm::Long);
            prop_assert_eq!(l.inode(), Some(inode));
            prop_assert_eq!(l.hash_key(), format!("{usec:05X}"));
        }

        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            if let Ok(id) = QueueId::parse(&s) {
                let _ = (id.form(), id.inode(), id.hash_dir(3));
                prop_assert!(!id.as_str().contains('/') && !id.as_str().contains('.'));
            }
        }
    }
}
