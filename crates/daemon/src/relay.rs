//! The relay policy at RCPT TO: smtpd_relay_restrictions, then
//! smtpd_recipient_restrictions (postconf(5): "Access restrictions for mail relay
//! control ... evaluated before smtpd_recipient_restrictions"), evaluated by trivial-rewrite's
//! library ([`tern_rewrite::Resolver`]) with the service's `-o` overrides applied.
//!
//! The [`Resolver`] is built once per settings load (at start and at each `postfix reload`),
//! never per session: it opens the tables mydestination, relay_domains and mynetworks name.
//!
//! A restriction the library does not implement yet is answered as Postfix answers an
//! unknown one (smtpd_check.c: `warning: unknown smtpd restriction: "NAME"` and
//! `451 4.3.5 Server configuration error`), every time it is reached, as Postfix does: a
//! misconfiguration must stay visible in the log, and mail waits rather than being let
//! through.
//!
//! # Security
//! The recipient address and the client address come from the network; the library only
//! compares and resolves them, and a table lookup error is a 451, never a permit.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_maillog::{Ident, Line, Logger};
use tern_rewrite::{Client, Decision, Resolver, Settings as RewriteSettings};
use tern_smtp::Reply;

/// Where the resolver's warnings go once the daemon's logger exists.
static WARN_LOG: OnceLock<(Arc<Logger>, Ident)> = OnceLock::new();

/// Sends the policy's warnings (table errors, unknown restrictions) to the mail log as
/// `smtpd` warnings; before this is called they go to standard error.
pub fn attach_logger(logger: Arc<Logger>, ident: Ident) {
    let _ = WARN_LOG.set((logger, ident));
}

fn warn(text: &str) {
    match WARN_LOG.get() {
        Some((logger, ident)) => logger.log(ident, &Line::warning(text.to_owned())),
        None => eprintln!("warning: {text}"),
    }
}

/// The decision about one recipient; `None` accepts it.
pub trait RelayPolicy: Send + Sync {
    fn check_recipient(&self, client: IpAddr, recipient: &str) -> Option<Reply>;
}

/// Why the policy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Setup(#[from] tern_rewrite::SetupError),
    #[error("{0}")]
    Expand(#[from] tern_config::expand::ExpandError),
    #[error("parameter {name}: bad value: {value}")]
    BadValue { name: String, value: String },
    /// Neither restriction list can refuse relaying: Postfix refuses to run rather than be
    /// an open relay (smtpd_check.c), and so does Tern.
    #[error(
        "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at \
         least one working instance of: reject_unauth_destination, defer_unauth_destination, \
         reject, defer, defer_if_permit or check_relay_domains"
    )]
    NoRelayLimit,
}

/// Restrictions of which at least one must appear in the relay or recipient list.
const RELAY_REQUIRED: &[&str] = &[
    "reject_unauth_destination",
    "defer_unauth_destination",
    "reject",
    "defer",
    "defer_if_permit",
    "check_relay_domains",
];

/// The restriction lists and the resolver they consult.
#[derive(Debug)]
pub struct Restrictions {
    resolver: Resolver,
    recipient_list: Vec<String>,
    /// local_header_rewrite_clients, split.
    local_header_clients: Vec<String>,
    /// inet_interfaces' addresses, for permit_inet_interfaces.
    own_addrs: Vec<IpAddr>,
}

/// The parameters a master.cf `-o` may change for one service that the policy reads.
const SERVICE_PARAMS: [&str; 9] = [
    "smtpd_relay_restrictions",
    "mynetworks",
    "mynetworks_style",
    "relay_domains",
    "mydestination",
    "relay_domains_reject_code",
    "reject_code",
    "defer_code",
    "allow_untrusted_routing",
];

impl Restrictions {
    /// Builds the policy of one service (`None`: main.cf alone).
    pub fn from_config(config: &Config, service: Option<&Service>) -> Result<Self, PolicyError> {
        let get = |name: &str| -> Result<String, PolicyError> {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            if config.is_raw(name) {
                return Ok(raw);
            }
            Ok(config.expand(&raw, service)?.text)
        };
        let mut settings = RewriteSettings::from_config(config)?;
        for name in SERVICE_PARAMS {
            let value = get(name)?;
            let bad = || PolicyError::BadValue {
                name: name.to_owned(),
                value: value.clone(),
            };
            let code = || value.trim().parse::<u16>().map_err(|_| bad());
            match name {
                "smtpd_relay_restrictions" => settings.smtpd_relay_restrictions.clone_from(&value),
                "mynetworks" => settings.mynetworks.clone_from(&value),
                "mynetworks_style" => settings.mynetworks_style.clone_from(&value),
                "relay_domains" => settings.relay_domains.clone_from(&value),
                "mydestination" => settings.mydestination.clone_from(&value),
                "relay_domains_reject_code" => settings.relay_domains_reject_code = code()?,
                "reject_code" => settings.reject_code = code()?,
                "defer_code" => settings.defer_code = code()?,
                _ => {
                    settings.allow_untrusted_routing =
                        match value.trim().to_ascii_lowercase().as_str() {
                            "yes" | "true" => true,
                            "no" | "false" => false,
                            _ => return Err(bad()),
                        };
                }
            }
        }
        let recipient = get("smtpd_recipient_restrictions")?;
        let recipient_restrictions =
            tern_config::list::split(&recipient).map_err(|_| PolicyError::BadValue {
                name: "smtpd_recipient_restrictions".to_owned(),
                value: recipient.clone(),
            })?;
        let relay_list =
            tern_config::list::split(&settings.smtpd_relay_restrictions).unwrap_or_default();
        let limits = |list: &[String]| list.iter().any(|r| RELAY_REQUIRED.contains(&r.as_str()));
        if !limits(&relay_list) && !limits(&recipient_restrictions) {
            return Err(PolicyError::NoRelayLimit);
        }
        let local = get("local_header_rewrite_clients")?;
        let local_header_clients =
            tern_config::list::split(&local).map_err(|_| PolicyError::BadValue {
                name: "local_header_rewrite_clients".to_owned(),
                value: local.clone(),
            })?;
        let interfaces = tern_rewrite::Interfaces::detect(&settings);
        let own_addrs = interfaces.own.clone();
        let resolver = Resolver::new(settings, interfaces, Arc::new(warn))?;
        Ok(Self {
            resolver,
            recipient_list: recipient_restrictions,
            local_header_clients,
            own_addrs,
        })
    }

    /// Whether cleanup rewrites this client's headers in the local context (and adds the
    /// missing Message-Id:, Date: and From:): local_header_rewrite_clients, default
    /// `permit_inet_interfaces` (postconf(5): "the client IP address matches
    /// $inet_interfaces").
    ///
    /// XXX: table lookups (`hash:...`, `check_address_map`) in the list are not consulted
    /// yet; `static:all` is.
    pub fn is_local_header_client(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.local_header_clients
            .iter()
            .any(|name| match name.to_ascii_lowercase().as_str() {
                "permit_inet_interfaces" => self.own_addrs.contains(&addr),
                "permit_mynetworks" => {
                    self.resolver
                        .permit_mynetworks(&Client::from_addr(addr), "")
                        == Decision::Permit
                }
                "static:all" => true,
                _ => false,
            })
    }

    /// The resolver, for the other per-client decisions (local_header_rewrite_clients).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    fn decide(&self, client: IpAddr, recipient: &str) -> Decision {
        let client = Client::from_addr(client);
        match self.resolver.relay_restrictions(&client, recipient) {
            Decision::Dunno | Decision::Permit => {}
            other => return other,
        }
        self.resolver
            .evaluate(&self.recipient_list, &client, recipient)
    }
}

impl RelayPolicy for Restrictions {
    fn check_recipient(&self, client: IpAddr, recipient: &str) -> Option<Reply> {
        let text = match self.decide(client, recipient) {
            Decision::Permit | Decision::Dunno => return None,
            Decision::Reject(r) | Decision::TempFail(r) => r.to_string(),
            Decision::Unsupported(name) => {
                warn(&format!("unknown smtpd restriction: \"{name}\""));
                "451 4.3.5 Server configuration error".to_owned()
            }
        };
        // The library's replies are well formed; a text that is not still must not let
        // the recipient through.
        Some(Reply::parse(&text).unwrap_or_else(|_| server_error()))
    }
}

fn server_error() -> Reply {
    Reply::new(451, None, ["4.3.5 Server configuration error"])
        .unwrap_or_else(|_| unreachable!("a literal reply"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tern_config::host::HostInfo;
    use tern_config::maincf::MainCf;
    use tern_config::mastercf::MasterCf;

    use super::*;

    fn policy(main: &str) -> Restrictions {
        let main = MainCf::parse(main.as_bytes(), "main.cf").expect("main.cf");
        let master = MasterCf::parse(b"smtp inet n - n - - smtpd\n".as_slice(), "master.cf")
            .expect("master.cf");
        let config = Config::new(
            Path::new("/nonexistent"),
            main,
            master,
            HostInfo::from_hostname("mx.example.com"),
        );
        Restrictions::from_config(&config, None).expect("policy")
    }

    #[test]
    fn decisions() {
        let base = "compatibility_level = 3.6\nmynetworks = 127.0.0.0/8 [::1]/128\n\
                    relay_domains = relay.net\n\
                    mydestination = mx.example.com, localhost\n";
        let strict = format!(
            "{base}smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination\n"
        );
        let odd = format!(
            "{base}smtpd_relay_restrictions = permit_mynetworks check_foo reject_unauth_destination\n"
        );
        for (main, client, rcpt, want) in [
            (base.to_owned(), "127.0.0.1", "a@elsewhere.org", None),
            (base.to_owned(), "::1", "a@elsewhere.org", None),
            (base.to_owned(), "192.0.2.1", "a@localhost", None),
            (base.to_owned(), "192.0.2.1", "a@relay.net", None),
            (
                base.to_owned(),
                "192.0.2.1",
                "a@elsewhere.org",
                Some("454 4.7.1 <a@elsewhere.org>: Relay access denied"),
            ),
            (
                strict,
                "192.0.2.1",
                "a@elsewhere.org",
                Some("554 5.7.1 <a@elsewhere.org>: Relay access denied"),
            ),
            (
                odd,
                "192.0.2.1",
                "a@elsewhere.org",
                Some("451 4.3.5 Server configuration error"),
            ),
        ] {
            let p = policy(&main);
            let got = p.check_recipient(client.parse().expect("ip"), rcpt);
            assert_eq!(
                got.map(|r| r.to_string()).as_deref(),
                want,
                "{client} {rcpt}"
            );
        }
    }
}
