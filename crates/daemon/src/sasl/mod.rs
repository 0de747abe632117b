//! smtpd's SASL server (RFC 4954 AUTH), as Postfix's smtpd_sasl_glue.c and
//! smtpd_sasl_proto.c with the xsasl back ends: `smtpd_sasl_type = dovecot` (Dovecot's
//! auth protocol, [`dovecot`]) and `smtpd_sasl_type = tern`, a built-in table of salted
//! password hashes ([`table`], docs/sasl.md). smtpd drives it:
//!
//! 1. [`SaslServer::from_config`] once per service and settings load (`None` when
//!    `smtpd_sasl_auth_enable = no`);
//! 2. [`SaslServer::mechanisms`] when the session starts (Postfix's smtpd_sasl_activate(),
//!    right after the greeting, and again after STARTTLS), for the EHLO `AUTH` line
//!    ([`SaslServer::ehlo_lines`]); an error is Postfix's `fatal:` (see there);
//! 3. for AUTH: [`SaslServer::start`], then [`Exchange::step`] with the initial response
//!    and with each line the client sends after a `334` challenge, until
//!    [`SaslStep::Success`], [`SaslStep::Failure`] or [`SaslStep::Aborted`].
//!
//! The checks before the exchange (HELO first, MAIL transaction, already authenticated,
//! syntax, smtpd_tls_auth_only) and the response size limit are smtpd's; their replies are
//! the constants below, each as Debian's Postfix 3.7.11 sends it.
//!
//! # Security
//! Everything the client sends is untrusted: the mechanism name is checked against the
//! offered list before it reaches Dovecot (and cannot add protocol fields), responses are
//! checked for base64's alphabet (Dovecot) or decoded ([`table`]), and no response or
//! password reaches the log. An exchange has at most [`MAX_STEPS`] challenges. I/O with
//! Dovecot is bounded in size and time ([`dovecot::AUTH_TIMEOUT`]).

pub mod base64;
pub mod dovecot;
pub mod options;
pub mod table;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tern_config::config::Config;
use tern_config::mastercf::Service;

use crate::relay::PolicyError;
use dovecot::{Dovecot, DovecotExchange, Target, printable};
use options::{Mechanism, MechanismFilter, Props};
use table::{Action, Table, TableExchange};

/// Where warnings go (the smtpd log); standard error until the caller sets one.
pub type Warn = tern_maps::Warn;

/// `503 5.5.1 Error: authentication not enabled` (AUTH with SASL off for the session).
pub const NOT_ENABLED: &str = "503 5.5.1 Error: authentication not enabled";
/// AUTH before HELO/EHLO with smtpd_helo_required.
pub const HELO_FIRST: &str = "503 5.5.1 Error: send HELO/EHLO first";
/// AUTH inside a MAIL transaction.
pub const IN_TRANSACTION: &str = "503 5.5.1 Error: MAIL transaction in progress";
/// AUTH before STARTTLS with smtpd_tls_auth_only (RFC 4954 4).
pub const ENCRYPTION_REQUIRED: &str =
    "504 5.5.4 Encryption required for requested authentication mechanism";
/// AUTH after a successful AUTH.
pub const ALREADY_AUTHENTICATED: &str = "503 5.5.1 Error: already authenticated";
/// AUTH without a mechanism, or with more than one argument after it.
pub const SYNTAX: &str = "501 5.5.4 Syntax: AUTH mechanism";
/// A response longer than smtpd_sasl_response_limit.
pub const RESPONSE_LIMIT_EXCEEDED: &str = "500 5.5.6 SASL response limit exceeded";
/// `*` in answer to a challenge (RFC 4954 4).
pub const ABORTED: &str = "501 5.7.0 Authentication aborted";
/// RFC 4954 6.
pub const SUCCESSFUL: &str = "235 2.7.0 Authentication successful";
/// AUTH=<addr> given twice on MAIL FROM.
pub const MULTIPLE_AUTH_OPTIONS: &str = "503 5.5.4 Error: multiple AUTH= options";
/// Postfix's fatal when the back end offers no usable mechanism (smtpd_sasl_activate()).
pub const NO_MECHANISMS: &str = "no SASL authentication mechanisms";
/// The reason Postfix logs and replies when the back end gave none.
pub const REASON_UNAVAILABLE: &str = "(reason unavailable)";
/// The most challenges in one exchange.
pub const MAX_STEPS: usize = 100;

/// The built-in type's failure delay, as Dovecot's `auth_failure_delay` default: every
/// wrong password costs the client 2 s.
const FAILURE_DELAY: Duration = Duration::from_secs(2);

/// `535 5.7.8 Error: authentication failed: REASON` (RFC 4954 6).
pub fn failed_reply(reason: &str) -> String {
    format!("535 5.7.8 Error: authentication failed: {reason}")
}

/// `454 4.7.0 Temporary authentication failure: REASON` (RFC 4954 6).
pub fn temporary_reply(reason: &str) -> String {
    format!("454 4.7.0 Temporary authentication failure: {reason}")
}

/// The Received: header comment of smtpd_sasl_authenticated_header = yes:
/// `(Authenticated sender: USER)`, the name sanitized as smtpd's comment_sanitize() (only
/// printable ASCII, no backslash, parentheses balanced).
pub fn authenticated_sender_comment(username: &str) -> String {
    let mut out = String::with_capacity(username.len() + 24);
    out.push_str("(Authenticated sender: ");
    let mut open = 0usize;
    for c in username.chars() {
        match c {
            '(' => {
                open += 1;
                out.push(c);
            }
            ')' if open > 0 => {
                open -= 1;
                out.push(c);
            }
            ')' | '\\' => out.push('?'),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.extend(std::iter::repeat_n(')', open));
    out.push(')');
    out
}

/// Which back end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslType {
    Dovecot,
    Tern,
}

/// The SASL settings of one smtpd service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub sasl_type: SaslType,
    /// smtpd_sasl_path as written.
    pub path: String,
    /// smtpd_sasl_service (Dovecot's `service=`).
    pub service: String,
    pub security_options: Props,
    pub tls_security_options: Props,
    pub filter: MechanismFilter,
    /// smtpd_sasl_response_limit.
    pub response_limit: usize,
    /// broken_sasl_auth_clients: also announce `AUTH=...`.
    pub broken_clients: bool,
    /// smtpd_sasl_authenticated_header.
    pub authenticated_header: bool,
}

/// One smtpd service's SASL server; shared by its sessions.
#[derive(Clone)]
pub struct SaslServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SaslServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslServer")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: Settings,
    backend: Backend,
    warn: WarnSlot,
    /// smtpd_sasl_exceptions_networks (a namadr list, as mynetworks); `None` when empty.
    exceptions: Option<tern_rewrite::matchlist::MatchList>,
}

/// The warning hook, replaceable after the back ends were made.
type WarnSlot = Arc<std::sync::RwLock<Warn>>;

enum Backend {
    Dovecot(Dovecot),
    Table(Table),
}

/// The session facts the exchange needs.
#[derive(Clone, Debug)]
pub struct SaslClient {
    pub addr: IpAddr,
    pub name: String,
    pub local_addr: Option<SocketAddr>,
    pub tls: bool,
}

/// What smtpd does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslStep {
    /// Send `334 TEXT` (TEXT is base64 already; empty for PLAIN's empty challenge:
    /// `334 `), then read the client's line.
    Challenge(String),
    /// Reply [`SUCCESSFUL`]; the session is authenticated as `username`.
    Success { username: String },
    /// Reply `reply`; log `warning: NAME[ADDR]: SASL METHOD authentication failed:
    /// REASON, sasl_username=USER` (tern_maillog::sasl::authentication_failed), where
    /// USER is `username` or `(unavailable)`.
    Failure {
        reply: String,
        reason: String,
        username: Option<String>,
    },
    /// The client sent `*`: reply [`ABORTED`], log `warning: NAME[ADDR]: SASL METHOD
    /// authentication aborted`.
    Aborted,
}

/// AUTH refused before any exchange: the mechanism is not offered. Postfix's Dovecot
/// back end answers `535 5.7.8 Error: authentication failed: Invalid authentication
/// mechanism` and logs it like any failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reply}")]
pub struct Refusal {
    pub reply: String,
    pub reason: String,
}

/// One AUTH exchange.
pub struct Exchange {
    inner: Arc<Inner>,
    kind: Kind,
    steps: usize,
    done: bool,
}

enum Kind {
    Dovecot(DovecotExchange),
    Table(TableExchange),
}

/// A back end's answer, before it becomes a [`SaslStep`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    More(String),
    Done(String),
    Fail {
        reason: String,
        username: Option<String>,
        temporary: bool,
    },
}

impl Outcome {
    pub fn fail(reason: &str, username: Option<String>) -> Outcome {
        Outcome::Fail {
            reason: reason.to_owned(),
            username,
            temporary: false,
        }
    }

    pub fn temp(reason: &str, username: Option<String>) -> Outcome {
        Outcome::Fail {
            reason: reason.to_owned(),
            username,
            temporary: true,
        }
    }
}

impl SaslServer {
    /// The server of `service` (`None`: main.cf alone); `None` when
    /// smtpd_sasl_auth_enable = no. Bad settings are errors, as Postfix's fatals at
    /// smtpd start-up (`unsupported SASL server implementation: cyrus` for the default
    /// type, which Tern does not have).
    pub fn from_config(
        config: &Config,
        service: Option<&Service>,
    ) -> Result<Option<Self>, PolicyError> {
        let get = |name: &str| -> Result<String, PolicyError> {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            if config.is_raw(name) {
                return Ok(raw);
            }
            Ok(config.expand(&raw, service)?.text)
        };
        let bad = |name: &str, value: &str| PolicyError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let boolean = |name: &str| -> Result<bool, PolicyError> {
            let v = get(name)?;
            match v.trim().to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(true),
                "no" | "false" => Ok(false),
                _ => Err(bad(name, &v)),
            }
        };
        if !boolean("smtpd_sasl_auth_enable")? {
            return Ok(None);
        }
        let type_name = get("smtpd_sasl_type")?;
        let sasl_type = match type_name.trim() {
            "dovecot" => SaslType::Dovecot,
            "tern" => SaslType::Tern,
            _ => return Err(bad("smtpd_sasl_type", &type_name)),
        };
        let options = |name: &str| -> Result<Props, PolicyError> {
            let v = get(name)?;
            options::parse_security_options(&v).map_err(|_| bad(name, &v))
        };
        let filter_value = get("smtpd_sasl_mechanism_filter")?;
        let limit = get("smtpd_sasl_response_limit")?;
        let settings = Settings {
            sasl_type,
            path: get("smtpd_sasl_path")?.trim().to_owned(),
            service: get("smtpd_sasl_service")?.trim().to_owned(),
            security_options: options("smtpd_sasl_security_options")?,
            tls_security_options: options("smtpd_sasl_tls_security_options")?,
            filter: MechanismFilter::parse(&filter_value)
                .map_err(|_| bad("smtpd_sasl_mechanism_filter", &filter_value))?,
            response_limit: limit
                .trim()
                .parse()
                .map_err(|_| bad("smtpd_sasl_response_limit", &limit))?,
            broken_clients: boolean("broken_sasl_auth_clients")?,
            authenticated_header: boolean("smtpd_sasl_authenticated_header")?,
        };
        let name = "smtpd_sasl_exceptions_networks";
        let value = get(name)?;
        let exceptions = if value.trim().is_empty() {
            None
        } else {
            let parents = get("parent_domain_matches_subdomains")?;
            Some(crate::relay::namadr_list(name, &value, &parents)?)
        };
        let base = |name: &str| -> Result<PathBuf, PolicyError> { Ok(PathBuf::from(get(name)?)) };
        let stderr: Warn = Arc::new(|text: &str| eprintln!("warning: {text}"));
        let warn: WarnSlot = Arc::new(std::sync::RwLock::new(stderr));
        let backend = match sasl_type {
            SaslType::Dovecot => {
                let target = Target::parse(&settings.path, &base("queue_directory")?)
                    .map_err(|v| bad("smtpd_sasl_path", &v))?;
                Backend::Dovecot(Dovecot::new(&settings.path, target, forward(&warn)))
            }
            SaslType::Tern => {
                let path = table_path(&settings.path, &base("config_directory")?);
                Backend::Table(Table::new(&path, forward(&warn)))
            }
        };
        Ok(Some(SaslServer {
            inner: Arc::new(Inner {
                settings,
                backend,
                warn,
                exceptions,
            }),
        }))
    }

    /// Sends warnings (Dovecot unreachable, a bad password file line) to `warn`, e.g.
    /// smtpd's logger.
    pub fn set_warn(&self, warn: Warn) {
        *self
            .inner
            .warn
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = warn;
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Whether EHLO keeps AUTH from this client: it matches smtpd_sasl_exceptions_networks
    /// (smtpd.c sasl_client_exception(); a table error counts as a match, as the list's
    /// error flag does there).
    pub fn hides_auth_from(&self, name: &str, addr: IpAddr) -> bool {
        self.inner
            .exceptions
            .as_ref()
            .is_some_and(|list| list.match_namadr(name, addr).unwrap_or(true))
    }

    /// The mechanisms to offer (`PLAIN LOGIN`) under smtpd_sasl_security_options, or
    /// smtpd_sasl_tls_security_options with TLS, then smtpd_sasl_mechanism_filter.
    ///
    /// The error is the text of Postfix's `fatal:` (the warnings before it are logged
    /// already, e.g. `SASL: Connect to Dovecot auth socket 'private/auth' failed: No such
    /// file or directory`): [`NO_MECHANISMS`], or `smtpd_sasl_mechanism_filter discards
    /// all mechanisms in 'LIST'`. Postfix's smtpd dies there, before its queued greeting
    /// is flushed: the client sees the connection close without a reply, and master logs
    /// `warning: process /usr/lib/postfix/sbin/smtpd pid N exit status 1` and `bad command
    /// startup -- throttling`. Tern should log the fatal and close the session the same
    /// way.
    pub async fn mechanisms(&self, tls: bool) -> Result<String, String> {
        let all = self.backend_mechanisms().await?;
        let s = &self.inner.settings;
        let props = if tls {
            s.tls_security_options
        } else {
            s.security_options
        };
        let secure: Vec<&Mechanism> = options::by_security(&all, props);
        if secure.is_empty() {
            return Err(NO_MECHANISMS.to_owned());
        }
        let names: Vec<&str> = secure.iter().map(|m| m.name.as_str()).collect();
        let kept: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| s.filter.allows(n))
            .collect();
        if kept.is_empty() {
            return Err(format!(
                "smtpd_sasl_mechanism_filter discards all mechanisms in '{}'",
                names.join(" ")
            ));
        }
        Ok(kept.join(" "))
    }

    /// The EHLO lines: `AUTH PLAIN LOGIN`, and `AUTH=PLAIN LOGIN` with
    /// broken_sasl_auth_clients = yes (for Outlook Express 4 and the like).
    pub fn ehlo_lines(&self, mechanisms: &str) -> Vec<String> {
        let mut lines = vec![format!("AUTH {mechanisms}")];
        if self.inner.settings.broken_clients {
            lines.push(format!("AUTH={mechanisms}"));
        }
        lines
    }

    /// Starts an exchange with `mechanism` (any case). The list is the one
    /// [`SaslServer::mechanisms`] gave for this session's TLS state.
    pub fn start(&self, mechanism: &str, client: &SaslClient) -> Result<Exchange, Refusal> {
        let offered = self.offered_now(client.tls);
        if !offered.iter().any(|m| m.eq_ignore_ascii_case(mechanism)) {
            let reason = "Invalid authentication mechanism";
            return Err(Refusal {
                reply: failed_reply(reason),
                reason: reason.to_owned(),
            });
        }
        let kind = match &self.inner.backend {
            Backend::Dovecot(_) => Kind::Dovecot(DovecotExchange::new(dovecot::Request {
                service: self.inner.settings.service.clone(),
                mechanism: mechanism.to_owned(),
                local_ip: client
                    .local_addr
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default(),
                remote_ip: client.addr.to_string(),
                secured: client.tls,
            })),
            Backend::Table(_) => Kind::Table(TableExchange::new(mechanism)),
        };
        Ok(Exchange {
            inner: self.inner.clone(),
            kind,
            steps: 0,
            done: false,
        })
    }

    async fn backend_mechanisms(&self) -> Result<Vec<Mechanism>, String> {
        match &self.inner.backend {
            Backend::Dovecot(d) => d.mechanisms().await.map_err(|_| NO_MECHANISMS.to_owned()),
            Backend::Table(_) => Ok(table_mechanisms()),
        }
    }

    /// The offered list without I/O (Dovecot's from its last handshake).
    fn offered_now(&self, tls: bool) -> Vec<String> {
        let all = match &self.inner.backend {
            Backend::Dovecot(d) => d.cached_mechanisms().unwrap_or_default(),
            Backend::Table(_) => table_mechanisms(),
        };
        let s = &self.inner.settings;
        let props = if tls {
            s.tls_security_options
        } else {
            s.security_options
        };
        options::by_security(&all, props)
            .into_iter()
            .filter(|m| s.filter.allows(&m.name))
            .map(|m| m.name.clone())
            .collect()
    }
}

impl Exchange {
    /// The client's response: the AUTH command's initial response first (`None` when
    /// there was none; `=` is an empty one, RFC 4954 4), then each line after a
    /// challenge. `*` after a challenge aborts.
    pub async fn step(&mut self, response: Option<&str>) -> SaslStep {
        if self.done {
            return to_step(Outcome::fail("", None));
        }
        if self.steps > 0 && response == Some("*") {
            self.done = true;
            if let Kind::Dovecot(x) = &mut self.kind {
                // Dovecot still waits for this request: the connection is not reused.
                x.abort();
            }
            return SaslStep::Aborted;
        }
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.done = true;
            return to_step(Outcome::fail("", None));
        }
        let outcome = match (&mut self.kind, &self.inner.backend) {
            (Kind::Dovecot(x), Backend::Dovecot(d)) => x.step(d, response).await,
            (Kind::Table(x), Backend::Table(t)) => table_step(x, t, response).await,
            // An exchange is made by its server's back end.
            _ => Outcome::temp("", None),
        };
        if !matches!(outcome, Outcome::More(_)) {
            self.done = true;
        }
        to_step(outcome)
    }
}

async fn table_step(x: &mut TableExchange, t: &Table, response: Option<&str>) -> Outcome {
    match x.step(response) {
        Action::Challenge(c) => Outcome::More(c),
        Action::Fail(outcome) => outcome,
        Action::Check { user, password } => match t.check(&user, password).await {
            Ok(true) => Outcome::Done(user),
            Ok(false) => {
                tokio::time::sleep(FAILURE_DELAY).await;
                Outcome::fail("", Some(printable(&user)))
            }
            Err(_) => Outcome::temp("", Some(printable(&user))),
        },
    }
}

fn to_step(outcome: Outcome) -> SaslStep {
    match outcome {
        Outcome::More(c) => SaslStep::Challenge(c),
        Outcome::Done(username) => SaslStep::Success { username },
        Outcome::Fail {
            reason,
            username,
            temporary,
        } => {
            let reason = if reason.is_empty() {
                REASON_UNAVAILABLE.to_owned()
            } else {
                reason
            };
            SaslStep::Failure {
                reply: if temporary {
                    temporary_reply(&reason)
                } else {
                    failed_reply(&reason)
                },
                reason,
                username,
            }
        }
    }
}

fn table_mechanisms() -> Vec<Mechanism> {
    table::MECHANISMS
        .iter()
        .map(|name| Mechanism {
            name: (*name).to_owned(),
            props: Props::PLAINTEXT,
        })
        .collect()
}

/// The password file of the built-in type: smtpd_sasl_path when it names one (relative
/// to config_directory), `$config_directory/sasl_users` when it is left at Postfix's
/// default (`smtpd`, Cyrus's application name).
pub fn table_path(path: &str, config_directory: &std::path::Path) -> PathBuf {
    if path.is_empty() || path == "smtpd" {
        config_directory.join("sasl_users")
    } else {
        config_directory.join(path)
    }
}

/// A back end's warning hook: whatever [`SaslServer::set_warn`] set last.
fn forward(slot: &WarnSlot) -> Warn {
    let slot = slot.clone();
    Arc::new(move |text: &str| {
        let warn = slot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        warn(text);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(
            to_step(Outcome::fail("", Some("tern".into()))),
            SaslStep::Failure {
                reply: "535 5.7.8 Error: authentication failed: (reason unavailable)".into(),
                reason: "(reason unavailable)".into(),
                username: Some("tern".into()),
            }
        );
        assert_eq!(
            to_step(Outcome::temp(
                "Connection lost to authentication server",
                None
            )),
            SaslStep::Failure {
                reply: "454 4.7.0 Temporary authentication failure: Connection lost to \
                        authentication server"
                    .into(),
                reason: "Connection lost to authentication server".into(),
                username: None,
            }
        );
        assert_eq!(
            to_step(Outcome::More("UGFzc3dvcmQ6".into())),
            SaslStep::Challenge("UGFzc3dvcmQ6".into())
        );
    }

    #[test]
    fn shared_across_sessions() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<SaslServer>();
        send::<Exchange>();
    }

    #[test]
    fn authenticated_sender_comments() {
        let cases: &[(&str, &str)] = &[
            ("tern", "(Authenticated sender: tern)"),
            ("a(b", "(Authenticated sender: a(b))"),
            ("a)b", "(Authenticated sender: a?b)"),
            ("a\\b\u{e9}", "(Authenticated sender: a?b?)"),
        ];
        for (user, want) in cases {
            assert_eq!(authenticated_sender_comment(user), *want, "{user}");
        }
    }

    #[test]
    fn table_paths() {
        let etc = std::path::Path::new("/etc/postfix");
        let cases: &[(&str, &str)] = &[
            ("smtpd", "/etc/postfix/sasl_users"),
            ("", "/etc/postfix/sasl_users"),
            ("/etc/tern/users", "/etc/tern/users"),
            ("sasl/users", "/etc/postfix/sasl/users"),
        ];
        for (path, want) in cases {
            assert_eq!(table_path(path, etc), PathBuf::from(want), "{path}");
        }
    }
}
