//! The SMTP client's SASL authentication (Postfix's smtp_sasl_glue.c with the
//! mechanisms a relay needs): credentials from smtp_sasl_password_maps, the mechanism
//! chosen from what the server offers under smtp_sasl_security_options /
//! smtp_sasl_tls_security_options and smtp_sasl_mechanism_filter, and the AUTH
//! exchange for PLAIN and LOGIN as a sans-IO state machine that the session drives.
//!
//! Postfix hands the exchange to Cyrus SASL; Tern speaks the two plaintext mechanisms
//! itself (RFC 4616 PLAIN, and LOGIN as every MTA speaks it). Cyrus's other client
//! mechanisms (CRAM-MD5, DIGEST-MD5, GSSAPI...) are not offered: a server that offers
//! only those gets Postfix's "no mechanism available" deferral.
//!
//! Password lookup (smtp_sasl_passwd_lookup): with smtp_sender_dependent_authentication,
//! the sender first (the address, then without its extension, then `@domain`), then the
//! server's host name (the MX name), then the next-hop destination as written
//! (`[mail.isp.example]:587`). The value is `username:password` (the password may
//! contain colons).
//!
//! Security: the credentials never reach the log. Server replies are untrusted: a 334
//! challenge is only decoded for LOGIN's prompts and never echoed.

use std::fmt;

use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_maps::{Map, MapError, OpenFlags};

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
    /// `<prefix>_sasl_tls_security_options` (applies once TLS is on).
    pub tls_security_options: Vec<String>,
    /// `<prefix>_sasl_mechanism_filter` (empty: every mechanism).
    pub mechanism_filter: Vec<String>,
    /// recipient_delimiter, for the sender's extension.
    pub recipient_delimiter: String,
}

impl Settings {
    /// Reads the settings for `prefix` with `service`'s `-o` overrides.
    pub fn from_config(config: &Config, service: Option<&Service>, prefix: &str) -> Self {
        let get = |name: &str| -> String {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            config.expand(&raw, service).map(|e| e.text).unwrap_or(raw)
        };
        let list = |name: &str| -> Vec<String> {
            get(name)
                .split([',', ' ', '\t', '\n'])
                .filter(|w| !w.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        };
        let yes = |name: &str| {
            matches!(
                get(name).trim().to_ascii_lowercase().as_str(),
                "yes" | "true" | "1"
            )
        };
        Self {
            prefix: prefix.to_owned(),
            enable: yes(&format!("{prefix}_sasl_auth_enable")),
            password_maps: get(&format!("{prefix}_sasl_password_maps")),
            sender_dependent: prefix == "smtp" && yes("smtp_sender_dependent_authentication"),
            security_options: list(&format!("{prefix}_sasl_security_options")),
            tls_security_options: list(&format!("{prefix}_sasl_tls_security_options")),
            mechanism_filter: list(&format!("{prefix}_sasl_mechanism_filter")),
            recipient_delimiter: get("recipient_delimiter"),
        }
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
}

/// The client's SASL side of one transport: settings and the open password table.
pub struct SaslClient {
    settings: Settings,
    table: Option<Box<dyn Map>>,
}

impl SaslClient {
    /// Opens the password table when authentication is on. A table that cannot be
    /// opened is an error (fatal in Postfix).
    pub fn new(settings: Settings) -> Result<Self, MapError> {
        let table = if settings.enable && !settings.password_maps.trim().is_empty() {
            Some(tern_maps::open(
                &settings.password_maps,
                &OpenFlags::default(),
            )?)
        } else {
            None
        };
        Ok(Self { settings, table })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
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
        let Some(table) = &self.table else {
            return Ok(None);
        };
        let mut keys = Vec::new();
        if self.settings.sender_dependent && !sender.is_empty() {
            keys.extend(sender_keys(sender, &self.settings.recipient_delimiter));
        }
        keys.push(host.to_owned());
        keys.push(dest.to_owned());
        for key in keys {
            if let Some(value) = table.lookup(&key)? {
                let (user, pass) = value.split_once(':').unwrap_or((&value, ""));
                return Ok(Some(Credentials {
                    username: user.to_owned(),
                    password: pass.to_owned(),
                }));
            }
        }
        Ok(None)
    }

    /// The mechanism to use among those the server offered (the words of its EHLO
    /// `AUTH` line), or why there is none: Postfix's `no mechanism available` when the
    /// security options rule out what is offered (`noplaintext` forbids PLAIN and
    /// LOGIN; `noanonymous` is always met here).
    pub fn choose(&self, offered: &[String], tls_active: bool) -> Option<Mechanism> {
        let options = if tls_active {
            &self.settings.tls_security_options
        } else {
            &self.settings.security_options
        };
        if options.iter().any(|o| o == "noplaintext") {
            return None;
        }
        let allowed = |m: Mechanism| {
            let name = m.name().to_ascii_lowercase();
            self.settings.mechanism_filter.is_empty()
                || self.settings.mechanism_filter.contains(&name)
        };
        // The server's order does not matter: PLAIN is one round trip, LOGIN two.
        [Mechanism::Plain, Mechanism::Login]
            .into_iter()
            .find(|&m| allowed(m) && offered.iter().any(|o| o.eq_ignore_ascii_case(m.name())))
    }
}

/// Where an AUTH exchange stands: the session sends [`Exchange::start`]'s line, then
/// hands each reply to [`Exchange::reply`] until it says done or failed.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    creds: Credentials,
    /// LOGIN: the username has been sent.
    sent_user: bool,
}

/// What the session does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this line (without CRLF).
    Send(String),
    /// Authenticated (235).
    Done,
    /// Refused: the server's reply (`535 5.7.8 Error: authentication failed`).
    Failed,
}

impl Exchange {
    pub fn new(mechanism: Mechanism, creds: Credentials) -> Self {
        Self {
            mechanism,
            creds,
            sent_user: false,
        }
    }

    /// The AUTH command (PLAIN sends its response at once, RFC 4954's initial response).
    pub fn start(&self) -> String {
        match self.mechanism {
            Mechanism::Plain => {
                let mut msg = Vec::new();
                msg.push(0);
                msg.extend_from_slice(self.creds.username.as_bytes());
                msg.push(0);
                msg.extend_from_slice(self.creds.password.as_bytes());
                format!("AUTH PLAIN {}", base64(&msg))
            }
            Mechanism::Login => "AUTH LOGIN".to_owned(),
        }
    }

    /// The server's reply code to the last line sent.
    pub fn reply(&mut self, code: u16) -> Step {
        match (code, self.mechanism) {
            (235, _) => Step::Done,
            (334, Mechanism::Login) if !self.sent_user => {
                self.sent_user = true;
                Step::Send(base64(self.creds.username.as_bytes()))
            }
            (334, Mechanism::Login) => Step::Send(base64(self.creds.password.as_bytes())),
            // PLAIN's server asking again: an empty response ends it (RFC 4954 4).
            (334, Mechanism::Plain) => Step::Send("*".to_owned()),
            _ => Step::Failed,
        }
    }
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

    fn client(extra: &str) -> SaslClient {
        let settings = Settings {
            prefix: "smtp".into(),
            enable: true,
            password_maps: format!(
                "inline:{{ [relay.example]:587=relayuser:p:w, mx1.example=mxuser:pw, \
                 alice@example.org=alice:apw, @example.net=net:npw {extra} }}"
            ),
            sender_dependent: true,
            security_options: vec!["noanonymous".into()],
            tls_security_options: vec!["noanonymous".into()],
            mechanism_filter: Vec::new(),
            recipient_delimiter: "+".into(),
        };
        SaslClient::new(settings).unwrap()
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
        let c = client("");
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
    fn mechanism_choice() {
        let mut c = client("");
        let offered: Vec<String> = ["LOGIN", "PLAIN", "CRAM-MD5"].map(String::from).to_vec();
        assert_eq!(c.choose(&offered, false), Some(Mechanism::Plain));
        assert_eq!(
            c.choose(&["login".to_owned()], false),
            Some(Mechanism::Login)
        );
        assert_eq!(c.choose(&["CRAM-MD5".to_owned()], false), None);
        // Postfix's default security options forbid plaintext mechanisms without TLS.
        c.settings.security_options = vec!["noplaintext".into(), "noanonymous".into()];
        assert_eq!(c.choose(&offered, false), None);
        assert_eq!(c.choose(&offered, true), Some(Mechanism::Plain));
        c.settings.mechanism_filter = vec!["login".into()];
        assert_eq!(c.choose(&offered, true), Some(Mechanism::Login));
    }

    #[test]
    fn exchanges() {
        let creds = Credentials {
            username: "tim".into(),
            password: "tanstaaftanstaaf".into(),
        };
        let plain = Exchange::new(Mechanism::Plain, creds.clone());
        // RFC 4616's example response for authcid "tim".
        assert_eq!(plain.start(), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
        let mut login = Exchange::new(Mechanism::Login, creds);
        assert_eq!(login.start(), "AUTH LOGIN");
        assert_eq!(login.reply(334), Step::Send("dGlt".into()));
        assert_eq!(
            login.reply(334),
            Step::Send("dGFuc3RhYWZ0YW5zdGFhZg==".into())
        );
        assert_eq!(login.reply(235), Step::Done);
        let mut bad = Exchange::new(
            Mechanism::Plain,
            Credentials {
                username: "u".into(),
                password: "p".into(),
            },
        );
        assert_eq!(bad.reply(535), Step::Failed);
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
}
