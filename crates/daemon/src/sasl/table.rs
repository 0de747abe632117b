//! `smtpd_sasl_type = tern`: Tern's built-in SASL server for machines without Dovecot. A
//! file of salted password hashes (docs/sasl.md; managed with `tern-saslpasswd`), and the
//! PLAIN (RFC 4616) and LOGIN exchanges, which behave towards the client and the log as
//! Postfix does with Dovecot behind it (the same challenges, replies and reasons).
//!
//! The file: one `user:$pbkdf2-sha256$ITERATIONS$SALT$HASH` line per user (SALT and HASH in
//! base64, HASH the 32-byte PBKDF2-HMAC-SHA256 of the password), `#` comments and empty
//! lines. It is read again when its modification time, size or inode change (checked at
//! each AUTH, not per message), so `tern-saslpasswd` needs no reload.
//!
//! Trust: the file is the administrator's; a bad line is warned about and skipped. The
//! client's responses are untrusted: they are decoded and compared, never logged (the
//! user name reaches the log as Postfix logs it, made printable). The hash check takes the
//! same time for unknown users (a dummy hash is checked) and compares in constant time
//! (aws-lc-rs's pbkdf2::verify). PBKDF2 runs on tokio's blocking pool.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::pbkdf2;

use super::base64;
use super::{Outcome, Warn};

/// The scheme name in the file.
pub const SCHEME: &str = "pbkdf2-sha256";
/// Iterations for new hashes (OWASP's 2023 advice for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// The most iterations a file line may ask for (a bad line must not stall smtpd).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salt bytes of new hashes.
pub const SALT_LEN: usize = 16;
/// PBKDF2 output bytes (SHA-256's size).
pub const HASH_LEN: usize = 32;
/// The longest user name.
pub const MAX_USERNAME: usize = 255;

/// LOGIN's challenges, as Dovecot (and Cyrus) send them: `Username:`, `Password:`.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// One user's password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Hash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    derived: [u8; HASH_LEN],
}

impl Hash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &[u8], iterations: u32) -> Result<Hash, String> {
        let iterations = check_iterations(iterations)?;
        let mut salt = vec![0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| "no random numbers".to_owned())?;
        let mut hash = [0u8; HASH_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password,
            &mut hash,
        );
        Ok(Hash {
            iterations,
            salt,
            derived: hash,
        })
    }

    /// Parses `$pbkdf2-sha256$ITERATIONS$SALT$HASH`.
    pub fn parse(text: &str) -> Result<Hash, String> {
        let fields: Vec<&str> = text.split('$').collect();
        let ["", scheme, iterations, salt, hash] = fields[..] else {
            return Err("expected $pbkdf2-sha256$ITERATIONS$SALT$HASH".to_owned());
        };
        if scheme != SCHEME {
            return Err(format!("unknown scheme {scheme:?}"));
        }
        let iterations = iterations
            .parse::<u32>()
            .map_err(|_| format!("bad iteration count {iterations:?}"))
            .and_then(check_iterations)?;
        let salt = base64::decode(salt).ok_or("bad salt")?;
        if !(8..=64).contains(&salt.len()) {
            return Err("salt must have 8 to 64 bytes".to_owned());
        }
        let hash = base64::decode(hash)
            .and_then(|h| <[u8; HASH_LEN]>::try_from(h).ok())
            .ok_or("bad hash")?;
        Ok(Hash {
            iterations,
            salt,
            derived: hash,
        })
    }

    /// Whether `password` is this hash's (constant-time comparison).
    pub fn verify(&self, password: &[u8]) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password,
            &self.derived,
        )
        .is_ok()
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "${SCHEME}${}${}${}",
            self.iterations,
            base64::encode(&self.salt),
            base64::encode(&self.derived)
        )
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({SCHEME}, {} iterations)", self.iterations)
    }
}

fn check_iterations(n: u32) -> Result<NonZeroU32, String> {
    NonZeroU32::new(n)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or_else(|| format!("iteration count must be 1 to {MAX_ITERATIONS}"))
}

/// Whether `name` may be a user of the file: 1 to 255 bytes, no `:`, no white space or
/// control characters.
pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME
        && !name
            .chars()
            .any(|c| c == ':' || c.is_whitespace() || c.is_control())
}

/// One line of the file: `Ok(None)` for comments and empty lines.
pub fn parse_line(line: &str) -> Result<Option<(String, Hash)>, String> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let (user, hash) = line.split_once(':').ok_or("expected user:hash")?;
    if !valid_username(user) {
        return Err(format!("bad user name {user:?}"));
    }
    Ok(Some((user.to_owned(), Hash::parse(hash.trim())?)))
}

/// The file's text with `user`'s line replaced by `entry`, added at the end, or removed
/// (`entry` None); comments and other lines stay. The flag says whether `user` was there.
pub fn update(text: &str, user: &str, entry: Option<&Hash>) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + 128);
    let mut found = false;
    for line in text.lines() {
        let is_user = line.split_once(':').is_some_and(|(u, _)| u == user)
            && !line.trim_start().starts_with('#');
        if is_user {
            if !found && let Some(hash) = entry {
                let _ = writeln!(out, "{user}:{hash}");
            }
            found = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !found && let Some(hash) = entry {
        let _ = writeln!(out, "{user}:{hash}");
    }
    (out, found)
}

/// The users of the file, read again when it changes.
pub struct Table {
    path: PathBuf,
    loaded: Mutex<Loaded>,
    warn: Warn,
}

#[derive(Default)]
struct Loaded {
    stamp: Option<Stamp>,
    users: Arc<HashMap<String, Hash>>,
}

/// What says that the file changed: modification time, size, inode, device.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp(i64, i64, u64, u64, u64);

impl Table {
    pub fn new(path: &Path, warn: Warn) -> Table {
        Table {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded::default()),
            warn,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The users, from memory when the file did not change. The error (the file cannot
    /// be read) is also warned about.
    pub fn users(&self) -> Result<Arc<HashMap<String, Hash>>, String> {
        use std::os::unix::fs::MetadataExt;
        let fail = |e: std::io::Error| {
            let text = format!(
                "SASL: cannot read {}: {}",
                self.path.display(),
                super::dovecot::strerror(&e)
            );
            (self.warn)(&text);
            text
        };
        let meta = std::fs::metadata(&self.path).map_err(fail)?;
        let stamp = Stamp(
            meta.mtime(),
            meta.mtime_nsec(),
            meta.size(),
            meta.ino(),
            meta.dev(),
        );
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.stamp == Some(stamp) {
            return Ok(loaded.users.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(fail)?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(Some((user, hash))) => {
                    users.insert(user, hash);
                }
                Ok(None) => {}
                Err(e) => (self.warn)(&format!(
                    "{}, line {}: {e}: skipped",
                    self.path.display(),
                    n + 1
                )),
            }
        }
        loaded.stamp = Some(stamp);
        loaded.users = Arc::new(users);
        Ok(loaded.users.clone())
    }

    /// Checks a password on the blocking pool. `Err` when the file cannot be read.
    pub async fn check(&self, user: &str, password: Vec<u8>) -> Result<bool, String> {
        let users = self.users()?;
        let hash = users.get(user).cloned();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy().clone());
        let ok = tokio::task::spawn_blocking(move || hash.verify(&password))
            .await
            .unwrap_or(false);
        Ok(known && ok)
    }
}

/// The hash checked for unknown users, so that they take as long as known ones.
fn dummy() -> &'static Hash {
    static DUMMY: OnceLock<Hash> = OnceLock::new();
    DUMMY.get_or_init(|| Hash {
        iterations: NonZeroU32::MIN.saturating_add(DEFAULT_ITERATIONS - 1),
        salt: vec![0x5a; SALT_LEN],
        derived: [0; HASH_LEN],
    })
}

/// The mechanisms of the built-in server, with Dovecot's properties for them.
pub const MECHANISMS: &[&str] = &["PLAIN", "LOGIN"];

/// One PLAIN or LOGIN exchange (sans-IO): what the client sent, what to do next.
pub struct TableExchange {
    login: bool,
    state: State,
}

enum State {
    Start,
    PlainResponse,
    LoginUser,
    LoginPassword(String),
    Done,
}

/// The next move of a [`TableExchange`].
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Challenge(String),
    Check { user: String, password: Vec<u8> },
    Fail(Outcome),
}

impl TableExchange {
    /// `mechanism` is PLAIN or LOGIN (any case).
    pub fn new(mechanism: &str) -> TableExchange {
        TableExchange {
            login: mechanism.eq_ignore_ascii_case("LOGIN"),
            state: State::Start,
        }
    }

    /// The client's response (`None` for an AUTH without initial response).
    pub fn step(&mut self, response: Option<&str>) -> Action {
        let initial = matches!(self.state, State::Start);
        let decoded = match response {
            None => None,
            // RFC 4954 4: "=" is an empty initial response.
            Some("=") if initial => Some(Vec::new()),
            Some(r) => {
                let Some(d) = base64::decode(r) else {
                    self.state = State::Done;
                    let which = if initial { "initial" } else { "continued" };
                    return Action::Fail(Outcome::fail(
                        &format!("Invalid base64 data in {which} response"),
                        None,
                    ));
                };
                Some(d)
            }
        };
        match (std::mem::replace(&mut self.state, State::Done), decoded) {
            (State::Start, None) if self.login => {
                self.state = State::LoginUser;
                Action::Challenge(LOGIN_USERNAME.to_owned())
            }
            (State::Start, None) => {
                self.state = State::PlainResponse;
                Action::Challenge(String::new())
            }
            (State::Start | State::LoginUser, Some(user)) if self.login => {
                self.state = State::LoginPassword(String::from_utf8_lossy(&user).into_owned());
                Action::Challenge(LOGIN_PASSWORD.to_owned())
            }
            (State::Start | State::PlainResponse, Some(message)) => plain(&message),
            (State::LoginPassword(user), password) => Action::Check {
                user,
                password: password.unwrap_or_default(),
            },
            _ => Action::Fail(Outcome::fail("", None)),
        }
    }
}

/// RFC 4616 2: `[authzid] NUL authcid NUL passwd`. An authzid other than the authcid is
/// refused (no proxy authorization).
fn plain(message: &[u8]) -> Action {
    let parts: Vec<&[u8]> = message.split(|&b| b == 0).collect();
    let [authzid, authcid, password] = parts[..] else {
        return Action::Fail(Outcome::fail("", None));
    };
    let user = String::from_utf8_lossy(authcid).into_owned();
    if authcid.is_empty() || (!authzid.is_empty() && authzid != authcid) {
        return Action::Fail(Outcome::fail("", Some(user)));
    }
    Action::Check {
        user,
        password: password.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_verify() {
        let h = Hash::new(b"s3cret", 1000).expect("hash");
        let text = h.to_string();
        assert!(text.starts_with("$pbkdf2-sha256$1000$"), "{text}");
        let back = Hash::parse(&text).expect("parse");
        assert_eq!(back, h);
        assert!(back.verify(b"s3cret"));
        assert!(!back.verify(b"s3cret "));
        assert!(!back.verify(b""));
        assert_ne!(Hash::new(b"s3cret", 1000).expect("hash").salt, h.salt);
        assert_eq!(format!("{h:?}"), "Hash(pbkdf2-sha256, 1000 iterations)");
    }

    #[test]
    fn pbkdf2_hmac_sha256_vectors() {
        // PBKDF2-HMAC-SHA256, P = "password", S = "salt", dkLen = 32 (the published
        // vectors that extend RFC 6070 to SHA-256).
        let cases: &[(u32, &str)] = &[
            (
                1,
                "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
            ),
            (
                2,
                "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
            ),
            (
                4096,
                "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
            ),
        ];
        for (iterations, hex) in cases {
            let mut hash = [0u8; HASH_LEN];
            for (i, byte) in hash.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
            }
            let h = Hash {
                iterations: check_iterations(*iterations).expect("count"),
                salt: b"salt".to_vec(),
                derived: hash,
            };
            assert!(h.verify(b"password"), "{iterations}");
            assert!(!h.verify(b"passwore"), "{iterations}");
        }
    }

    #[test]
    fn file_lines() {
        let good = Hash::new(b"x", 1).expect("hash").to_string();
        let cases: Vec<(String, Result<bool, ()>)> = vec![
            (String::new(), Ok(false)),
            ("# comment".into(), Ok(false)),
            ("   ".into(), Ok(false)),
            (format!("alice@example.org:{good}"), Ok(true)),
            (format!("alice:{good}\r"), Ok(true)),
            (format!("al ice:{good}"), Err(())),
            (format!(":{good}"), Err(())),
            ("alice".into(), Err(())),
            ("alice:$pbkdf2-sha256$0$c2FsdHNhbHQ=$AA==".into(), Err(())),
            ("alice:$md5$1$c2FsdHNhbHQ=$AA==".into(), Err(())),
            (
                "alice:$pbkdf2-sha256$99999999$c2FsdHNhbHQ=$AA==".into(),
                Err(()),
            ),
            ("alice:$pbkdf2-sha256$1$c2FsdA==$AA==".into(), Err(())),
        ];
        for (line, want) in cases {
            let got = parse_line(&line).map(|e| e.is_some()).map_err(|_| ());
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn updates_keep_other_lines() {
        let a = Hash::new(b"a", 1).expect("hash");
        let b = Hash::new(b"b", 1).expect("hash");
        let text = format!("# users\nalice:{a}\nbob:{a}\n");
        let (out, found) = update(&text, "alice", Some(&b));
        assert!(found);
        assert_eq!(out, format!("# users\nalice:{b}\nbob:{a}\n"));
        let (out, found) = update(&text, "carol", Some(&b));
        assert!(!found);
        assert_eq!(out, format!("{text}carol:{b}\n"));
        let (out, found) = update(&text, "bob", None);
        assert!(found);
        assert_eq!(out, format!("# users\nalice:{a}\n"));
        let (out, found) = update(&text, "#", None);
        assert!(!found);
        assert_eq!(out, text);
    }

    #[test]
    fn exchanges() {
        use Action::{Challenge, Check, Fail};
        let check = |user: &str, password: &str| Check {
            user: user.into(),
            password: password.into(),
        };
        let cases: Vec<(&str, Vec<Option<&str>>, Action)> = vec![
            (
                "PLAIN",
                vec![Some("AHRlcm4AczNjcmV0")],
                check("tern", "s3cret"),
            ),
            (
                "plain",
                vec![None, Some("AHRlcm4AczNjcmV0")],
                check("tern", "s3cret"),
            ),
            (
                "PLAIN",
                vec![Some("dGVybgB0ZXJuAHgAeQ==")],
                Fail(Outcome::fail("", None)),
            ),
            (
                "PLAIN",
                vec![Some("b3RoZXIAdGVybgBz")],
                Fail(Outcome::fail("", Some("tern".into()))),
            ),
            ("PLAIN", vec![Some("=")], Fail(Outcome::fail("", None))),
            (
                "PLAIN",
                vec![Some("!!!!")],
                Fail(Outcome::fail(
                    "Invalid base64 data in initial response",
                    None,
                )),
            ),
            (
                "PLAIN",
                vec![None, Some("AHR")],
                Fail(Outcome::fail(
                    "Invalid base64 data in continued response",
                    None,
                )),
            ),
            (
                "LOGIN",
                vec![None, Some("dGVybg=="), Some("czNjcmV0")],
                check("tern", "s3cret"),
            ),
            (
                "LOGIN",
                vec![Some("dGVybg=="), Some("czNjcmV0")],
                check("tern", "s3cret"),
            ),
            ("LOGIN", vec![Some("dGVybg=="), Some("")], check("tern", "")),
        ];
        for (mech, steps, want) in cases {
            let mut x = TableExchange::new(mech);
            let mut last = None;
            for (i, s) in steps.iter().enumerate() {
                let got = x.step(*s);
                if i + 1 < steps.len() {
                    assert!(matches!(got, Challenge(_)), "{mech} {steps:?}: {got:?}");
                }
                last = Some(got);
            }
            assert_eq!(last, Some(want), "{mech} {steps:?}");
        }
        let mut x = TableExchange::new("LOGIN");
        assert_eq!(x.step(None), Challenge(LOGIN_USERNAME.into()));
        assert_eq!(x.step(Some("dGVybg==")), Challenge(LOGIN_PASSWORD.into()));
        let mut x = TableExchange::new("PLAIN");
        assert_eq!(x.step(None), Challenge(String::new()));
    }
}
