//! The SMTP client's SASL authentication (Postfix's smtp_sasl_glue.c and
//! smtp_sasl_proto.c with the mechanisms a relay needs): credentials from
//! smtp_sasl_password_maps, the server's EHLO `AUTH` list under
//! smtp_sasl_mechanism_filter, the mechanism chosen under smtp_sasl_security_options /
//! smtp_sasl_tls_security_options / smtp_sasl_tls_verified_security_options, and the AUTH
//! exchange for PLAIN and LOGIN as a sans-IO state machine that the session drives
//! (`session::auth`).
//!
//! Postfix hands the exchange to Cyrus SASL; Tern speaks the two plaintext mechanisms
//! itself (RFC 4616 PLAIN, and LOGIN as every MTA speaks it). Cyrus's other client
//! mechanisms (CRAM-MD5, DIGEST-MD5, SCRAM, GSSAPI...) are not offered: a server that
//! offers only those gets Cyrus's "no mechanism available".
//!
//! Password lookup (smtp_sasl_passwd_lookup()): with smtp_sender_dependent_authentication
//! (smtp only), the sender first (mail_addr_find(): the address, then without its
//! extension, then `@domain`), then the server's host name (the MX name, or the address of
//! a `[literal]`), then the next-hop destination as written (`[mail.isp.example]:587`).
//! The value is `username:password` (the password may contain colons).
//!
//! Security: the credentials never reach the log (the [`Credentials`] Debug hides the
//! password; no failure text quotes what the client sent, unlike Postfix's "non-empty
//! initial challenge" text, which quotes the deferred response). Server replies are
//! untrusted: challenges are never decoded (LOGIN's prompts are answered in order, as
//! Cyrus's LOGIN client does) and the exchange ends after [`MAX_STEPS`] challenges.

use std::fmt;

use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_config::params::{ParamError, Params};
use tern_maps::{Map, MapError, OpenFlags};

/// Postfix's bound on server challenges in one exchange ("authentication protocol loop").
pub const MAX_STEPS: usize = 100;

/// RFC 5321 4.5.3.1.4 / RFC 4954 4: an AUTH command with its initial response must fit in
/// 512 octets; otherwise the response waits for the server's empty challenge.
const COMMAND_LIMIT: usize = 512;

/// Why the SASL side of a transport cannot start (fatal in Postfix's smtp(8)).
#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    #[error("{0}")]
    Param(#[from] ParamError),
    /// smtp_sasl_initialize(): auth is on but there is no table.
    #[error("specify a password table via the `{0}' configuration parameter")]
    NoTable(String),
    #[error("{0}")]
    Table(#[from] MapError),
}

/// The settings of one transport (prefix `smtp` or `lmtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub prefix: String,
    /// `<prefix>_sasl_auth_enable`.
    pub enable: bool,
    /// `<prefix>_sasl_password_maps`.
    pub password_maps: String,
    /// `smtp_sender_dependent_authentication` (smtp only).
    pub sender_dependent: bool,
    /// `<prefix>_sasl_security_options`.
    pub security_options: Vec<String>,
    /// `<prefix>_sasl_tls_security_options` (TLS without a matched certificate).
    pub tls_security_options: Vec<String>,
    /// `<prefix>_sasl_tls_verified_security_options` (TLS with a matched certificate).
    pub tls_verified_security_options: Vec<String>,
    /// `<prefix>_sasl_mechanism_filter` (empty: every mechanism).
    pub mechanism_filter: Vec<String>,
    /// `<prefix>_sasl_auth_soft_bounce`: a 5xx reply to AUTH defers (4xx) instead of
    /// bouncing.
    pub auth_soft_bounce: bool,
    /// `<prefix>_send_dummy_mail_auth`: `AUTH=<>` on MAIL FROM in authenticated sessions.
    pub send_dummy_mail_auth: bool,
    /// recipient_delimiter, for the sender's extension.
    pub recipient_delimiter: String,
}

impl Settings {
    /// Reads the settings for `prefix` with `service`'s `-o` overrides.
    pub fn from_config(
        config: &Config,
        service: Option<&Service>,
        prefix: &str,
    ) -> Result<Self, ParamError> {
        let p = Params::new(config, service);
        let name = |s: &str| format!("{prefix}_{s}");
        let list = |n: &str| -> Result<Vec<String>, ParamError> {
            Ok(p.text(n)?
                .split([',', ' ', '\t', '\r', '\n'])
                .filter(|w| !w.is_empty())
                .map(str::to_ascii_lowercase)
                .collect())
        };
        Ok(Self {
            prefix: prefix.to_owned(),
            enable: p.bool(&name("sasl_auth_enable"))?,
            password_maps: p.text(&name("sasl_password_maps"))?,
            sender_dependent: prefix == "smtp" && p.bool("smtp_sender_dependent_authentication")?,
            security_options: list(&name("sasl_security_options"))?,
            tls_security_options: list(&name("sasl_tls_security_options"))?,
            tls_verified_security_options: list(&name("sasl_tls_verified_security_options"))?,
            mechanism_filter: list(&name("sasl_mechanism_filter"))?,
            auth_soft_bounce: p.bool(&name("sasl_auth_soft_bounce"))?,
            send_dummy_mail_auth: p.bool(&name("send_dummy_mail_auth"))?,
            recipient_delimiter: p.text("recipient_delimiter")?,
        })
    }
}

/// A username and password for one server.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    /// Never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The mechanisms Tern speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }

    fn from_name(name: &str) -> Option<Mechanism> {
        [Mechanism::Plain, Mechanism::Login]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// The connection's protection, which picks the security options (smtp_sasl_helo_login()).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// No TLS: `<prefix>_sasl_security_options`.
    Plaintext,
    /// TLS without a matched server certificate: `<prefix>_sasl_tls_security_options`.
    Tls,
    /// TLS with a matched certificate: `<prefix>_sasl_tls_verified_security_options`.
    TlsVerified,
}

/// The client's SASL side of one transport: settings and the open password tables.
pub struct SaslClient {
    settings: Settings,
    tables: Vec<Box<dyn Map>>,
}

impl fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SaslClient {
    /// Opens the password tables when authentication is on (smtp_sasl_initialize()): a
    /// table that cannot be opened, or none at all, is an error (fatal in Postfix).
    pub fn new(settings: Settings) -> Result<Self, SaslError> {
        let mut tables = Vec::new();
        if settings.enable {
            let specs = tern_config::list::split(&settings.password_maps)
                .map_err(|e| MapError::Config(e.to_string()))?;
            if specs.is_empty() {
                return Err(SaslError::NoTable(format!(
                    "{}_sasl_password_maps",
                    settings.prefix
                )));
            }
            for spec in specs {
                tables.push(tern_maps::open(&spec, &OpenFlags::default())?);
            }
        }
        Ok(Self { settings, tables })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// smtp_sasl_auth_enable is on.
    pub fn enabled(&self) -> bool {
        self.settings.enable
    }

    /// The password tables' parameter, as Postfix's lookup-error warning names it.
    pub fn table_title(&self) -> String {
        format!("{}_sasl_password_maps", self.settings.prefix)
    }

    /// The credentials for this server, if any: `sender` (empty: the null sender),
    /// `host` the server's name as the MX record (or the next hop) gives it, `dest` the
    /// next-hop destination as written. An error is a table lookup error: Postfix
    /// defers the message (`QUEUEID: smtp_sasl_password_maps lookup error`).
    pub fn credentials(
        &self,
        sender: &str,
        host: &str,
        dest: &str,
    ) -> Result<Option<Credentials>, MapError> {
        if self.tables.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        if self.settings.sender_dependent && !sender.is_empty() {
            keys.extend(sender_keys(sender, &self.settings.recipient_delimiter));
        }
        keys.push(host.to_owned());
        keys.push(dest.to_owned());
        for key in keys {
            // maps_find(): the first table with the key wins.
            for table in &self.tables {
                if let Some(value) = table.lookup(&key)? {
                    let (user, pass) = value.split_once(':').unwrap_or((&value, ""));
                    return Ok(Some(Credentials {
                        username: user.to_owned(),
                        password: pass.to_owned(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// sasl_mech_filter(): the words of the server's EHLO `AUTH` line that
    /// smtp_sasl_mechanism_filter keeps, in the server's order.
    pub fn filter(&self, offered: &[String]) -> Vec<String> {
        let filter = &self.settings.mechanism_filter;
        offered
            .iter()
            .filter(|m| filter.is_empty() || filter_matches(filter, m))
            .cloned()
            .collect()
    }

    /// The mechanism to use among `offered` (after [`SaslClient::filter`]) on `channel`,
    /// as Cyrus's sasl_client_start() picks it: a security option that PLAIN and LOGIN
    /// do not meet (`noplaintext`, `noactive`, `nodictionary`, `mutual_auth`) rules
    /// both out (`noanonymous` is always met); of equal strength, the first offered wins.
    /// `None` is Cyrus's "no mechanism available".
    pub fn choose(&self, offered: &[String], channel: Channel) -> Option<Mechanism> {
        let options = match channel {
            Channel::Plaintext => &self.settings.security_options,
            Channel::Tls => &self.settings.tls_security_options,
            Channel::TlsVerified => &self.settings.tls_verified_security_options,
        };
        if options.iter().any(|o| {
            matches!(
                o.as_str(),
                "noplaintext" | "noactive" | "nodictionary" | "mutual_auth"
            )
        }) {
            return None;
        }
        offered.iter().find_map(|o| Mechanism::from_name(o))
    }
}

/// Where an AUTH exchange stands: the session sends [`Exchange::start`]'s line, then
/// hands each reply to [`Exchange::reply`] until it says done or failed
/// (smtp_sasl_authenticate()).
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    creds: Credentials,
    /// PLAIN's response, held back because `AUTH PLAIN <response>` would not fit in 512
    /// octets: it answers the server's (empty) first challenge.
    deferred: Option<String>,
    /// Challenges answered so far.
    steps: usize,
    /// The mechanism has sent everything it has (Cyrus's doneflag).
    done: bool,
}

/// What the session does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this line (without CRLF).
    Send(String),
    /// Authenticated (2xx).
    Done,
    /// The server ended the exchange with this (non-2xx, non-3xx) reply.
    Refused,
    /// The client gave up (no reply from the server to quote).
    Error(ExchangeError),
}

/// Why the client gave up an exchange; the session words it with the server's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeError {
    /// More than [`MAX_STEPS`] challenges (4.3.0 "authentication protocol loop").
    Loop,
    /// A non-empty first challenge where the held-back PLAIN response was due.
    NonEmptyInitialChallenge,
    /// A challenge after the mechanism was done: Cyrus's SASL_FAIL, "generic failure".
    GenericFailure,
}

impl Exchange {
    pub fn new(mechanism: Mechanism, creds: Credentials) -> Self {
        Self {
            mechanism,
            creds,
            deferred: None,
            steps: 0,
            done: false,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The AUTH command: PLAIN with its initial response (RFC 4954 4) when the command
    /// fits in 512 octets, LOGIN alone (Cyrus's LOGIN client has no initial response).
    pub fn start(&mut self) -> String {
        let name = self.mechanism.name();
        match self.mechanism {
            Mechanism::Plain => {
                let mut msg = Vec::new();
                msg.push(0);
                msg.extend_from_slice(self.creds.username.as_bytes());
                msg.push(0);
                msg.extend_from_slice(self.creds.password.as_bytes());
                let response = base64(&msg);
                self.done = true;
                if name.len() + response.len() + 8 <= COMMAND_LIMIT {
                    format!("AUTH {name} {response}")
                } else {
                    self.deferred = Some(response);
                    format!("AUTH {name}")
                }
            }
            Mechanism::Login => format!("AUTH {name}"),
        }
    }

    /// The server's reply to the last line sent: its code and, for a 3xx, the challenge
    /// (the text after the code; not decoded).
    pub fn reply(&mut self, code: u16, challenge: &str) -> Step {
        match code / 100 {
            2 => return Step::Done,
            3 => {}
            _ => return Step::Refused,
        }
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Step::Error(ExchangeError::Loop);
        }
        if let Some(response) = self.deferred.take() {
            if !challenge.trim().is_empty() {
                return Step::Error(ExchangeError::NonEmptyInitialChallenge);
            }
            return Step::Send(response);
        }
        if self.done {
            return Step::Error(ExchangeError::GenericFailure);
        }
        // LOGIN: the first prompt gets the username, the second the password.
        if self.steps == 1 {
            Step::Send(base64(self.creds.username.as_bytes()))
        } else {
            self.done = true;
            Step::Send(base64(self.creds.password.as_bytes()))
        }
    }
}

/// string_list_match() on one mechanism name: the first entry that matches decides, a
/// `!` entry negatively; no match is no.
fn filter_matches(filter: &[String], mech: &str) -> bool {
    for entry in filter {
        let (negated, word) = match entry.strip_prefix('!') {
            Some(w) => (true, w),
            None => (false, entry.as_str()),
        };
        if word.eq_ignore_ascii_case(mech) {
            return !negated;
        }
    }
    false
}

/// The lookup keys of a sender (mail_addr_find's default order, without the local-part
/// key that applies to local domains only).
fn sender_keys(sender: &str, delimiters: &str) -> Vec<String> {
    let mut keys = vec![sender.to_owned()];
    if let Some((local, domain)) = sender.rsplit_once('@') {
        if !delimiters.is_empty()
            && let Some(pos) = local.find(|c| delimiters.contains(c))
        {
            keys.push(format!("{}@{domain}", &local[..pos]));
        }
        keys.push(format!("@{domain}"));
    }
    keys
}

/// Base64 (RFC 4648, with padding).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            prefix: "smtp".into(),
            enable: true,
            password_maps: "inline:{ [relay.example]:587=relayuser:p:w, mx1.example=mxuser:pw, \
                 alice@example.org=alice:apw, @example.net=net:npw }"
                .into(),
            sender_dependent: true,
            security_options: vec!["noanonymous".into()],
            tls_security_options: vec!["noanonymous".into()],
            tls_verified_security_options: vec!["noanonymous".into()],
            mechanism_filter: Vec::new(),
            auth_soft_bounce: true,
            send_dummy_mail_auth: false,
            recipient_delimiter: "+".into(),
        }
    }

    fn client() -> SaslClient {
        SaslClient::new(settings()).unwrap()
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn base64_vectors() {
        // RFC 4648 section 10.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn lookup_order() {
        let c = client();
        let who = |sender, host, dest| {
            c.credentials(sender, host, dest)
                .unwrap()
                .map(|cr| (cr.username, cr.password))
        };
        // Sender first (with its extension stripped, then its domain), then host, then
        // the next hop as written; the password keeps its colons.
        assert_eq!(
            who("alice+list@example.org", "mx1.example", "x"),
            Some(("alice".into(), "apw".into()))
        );
        assert_eq!(
            who("bob@example.net", "mx1.example", "x"),
            Some(("net".into(), "npw".into()))
        );
        assert_eq!(
            who("bob@other.test", "mx1.example", "[relay.example]:587"),
            Some(("mxuser".into(), "pw".into()))
        );
        assert_eq!(
            who("", "smtp.relay.example", "[relay.example]:587"),
            Some(("relayuser".into(), "p:w".into()))
        );
        assert_eq!(who("", "nowhere", "none"), None);
    }

    #[test]
    fn tables_are_required_when_enabled() {
        let mut s = settings();
        s.password_maps = String::new();
        let e = SaslClient::new(s.clone()).unwrap_err().to_string();
        assert_eq!(
            e,
            "specify a password table via the `smtp_sasl_password_maps' configuration parameter"
        );
        s.enable = false;
        let off = SaslClient::new(s).unwrap();
        assert_eq!(off.credentials("", "h", "d").unwrap(), None);
    }

    #[test]
    fn mechanism_choice() {
        let mut c = client();
        // (offered, channel, chosen): of equal strength, the server's first.
        let plain = Channel::Plaintext;
        for (offered, channel, want) in [
            (
                &["LOGIN", "PLAIN", "CRAM-MD5"][..],
                plain,
                Some(Mechanism::Login),
            ),
            (
                &["CRAM-MD5", "plain", "LOGIN"][..],
                plain,
                Some(Mechanism::Plain),
            ),
            (&["login"][..], plain, Some(Mechanism::Login)),
            (&["CRAM-MD5", "DIGEST-MD5"][..], plain, None),
            (&[][..], plain, None),
        ] {
            assert_eq!(c.choose(&words(offered), channel), want, "{offered:?}");
        }
        // Postfix's default security options forbid plaintext mechanisms without TLS.
        c.settings.security_options = words(&["noplaintext", "noanonymous"]);
        let offered = words(&["PLAIN", "LOGIN"]);
        assert_eq!(c.choose(&offered, Channel::Plaintext), None);
        assert_eq!(c.choose(&offered, Channel::Tls), Some(Mechanism::Plain));
        c.settings.tls_verified_security_options = words(&["nodictionary"]);
        assert_eq!(c.choose(&offered, Channel::TlsVerified), None);
    }

    #[test]
    fn mechanism_filter() {
        let mut c = client();
        let offered = words(&["CRAM-MD5", "PLAIN", "LOGIN"]);
        for (filter, want) in [
            (&[][..], &["CRAM-MD5", "PLAIN", "LOGIN"][..]),
            (&["login", "cram-md5"][..], &["CRAM-MD5", "LOGIN"][..]),
            (&["!plain", "plain", "login"][..], &["LOGIN"][..]),
            (&["gssapi"][..], &[][..]),
        ] {
            c.settings.mechanism_filter = words(filter);
            assert_eq!(c.filter(&offered), words(want), "{filter:?}");
        }
    }

    #[test]
    fn exchanges() {
        let creds = Credentials {
            username: "tim".into(),
            password: "tanstaaftanstaaf".into(),
        };
        let mut plain = Exchange::new(Mechanism::Plain, creds.clone());
        // RFC 4616's example response for authcid "tim".
        assert_eq!(plain.start(), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
        assert_eq!(plain.reply(235, ""), Step::Done);
        let mut again = Exchange::new(Mechanism::Plain, creds.clone());
        again.start();
        assert_eq!(
            again.reply(334, ""),
            Step::Error(ExchangeError::GenericFailure)
        );
        let mut login = Exchange::new(Mechanism::Login, creds);
        assert_eq!(login.start(), "AUTH LOGIN");
        assert_eq!(login.reply(334, "VXNlcm5hbWU6"), Step::Send("dGlt".into()));
        assert_eq!(
            login.reply(334, "UGFzc3dvcmQ6"),
            Step::Send("dGFuc3RhYWZ0YW5zdGFhZg==".into())
        );
        assert_eq!(
            login.reply(334, ""),
            Step::Error(ExchangeError::GenericFailure)
        );
        assert_eq!(login.reply(535, ""), Step::Refused);
        assert!(
            !format!(
                "{:?}",
                Credentials {
                    username: "u".into(),
                    password: "secret".into()
                }
            )
            .contains("secret")
        );
    }

    #[test]
    fn long_plain_response_waits_for_an_empty_challenge() {
        let creds = Credentials {
            username: "u".repeat(200),
            password: "p".repeat(200),
        };
        let mut x = Exchange::new(Mechanism::Plain, creds.clone());
        assert_eq!(x.start(), "AUTH PLAIN");
        match x.reply(334, "") {
            Step::Send(r) => assert!(r.len() > 500),
            other => panic!("{other:?}"),
        }
        assert_eq!(x.reply(235, ""), Step::Done);
        let mut y = Exchange::new(Mechanism::Plain, creds);
        y.start();
        assert_eq!(
            y.reply(334, "c29tZXRoaW5n"),
            Step::Error(ExchangeError::NonEmptyInitialChallenge)
        );
    }
}
