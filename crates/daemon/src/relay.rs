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

use crate::etrn::FastFlush;
use crate::recipients::{self, RecipientMaps};

/// Where the resolver's warnings go once the daemon's logger exists.
static WARN_LOG: OnceLock<(Arc<Logger>, Ident)> = OnceLock::new();

/// Sends the policy's warnings (table errors, unknown restrictions) to the mail log as
/// `smtpd` warnings; before this is called they go to standard error.
pub fn attach_logger(logger: Arc<Logger>, ident: Ident) {
    let _ = WARN_LOG.set((logger, ident));
}

pub(crate) fn warn(text: &str) {
    match WARN_LOG.get() {
        Some((logger, ident)) => logger.log(ident, &Line::warning(text.to_owned())),
        None => eprintln!("warning: {text}"),
    }
}

/// Postfix's `error:` lines (a table that cannot be opened), like [`warn`].
pub(crate) fn error(text: &str) {
    match WARN_LOG.get() {
        Some((logger, ident)) => logger.log(ident, &Line::error(text.to_owned())),
        None => eprintln!("error: {text}"),
    }
}

/// The decision about one recipient; `None` accepts it.
pub trait RelayPolicy: Send + Sync {
    /// `improper_pipelining`: the session broke RFC 2920's rules
    /// (tern_smtp::pipelining), for reject_unauth_pipelining.
    fn check_recipient(
        &self,
        client: IpAddr,
        recipient: &str,
        improper_pipelining: bool,
    ) -> Option<Reply>;
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
    relay_list: Vec<String>,
    recipient_list: Vec<String>,
    /// reject_unlisted_recipient's tables.
    recipients: RecipientMaps,
    /// fast_flush_domains, for ETRN.
    fast_flush: FastFlush,
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
        let flush_style = settings.parent_style("fast_flush_domains");
        let resolver = Resolver::new(settings, interfaces, Arc::new(warn))?;
        let warn_fn: tern_maps::Warn = Arc::new(warn);
        let recipients = RecipientMaps::open(recipient_params(config, service)?, &warn_fn, &error);
        let fast_flush = FastFlush::new(&get("fast_flush_domains")?, flush_style, &warn_fn)?;
        Ok(Self {
            resolver,
            relay_list,
            recipient_list: recipient_restrictions,
            recipients,
            fast_flush,
            local_header_clients,
            own_addrs,
        })
    }

    /// fast_flush_domains, for ETRN.
    pub fn fast_flush(&self) -> &FastFlush {
        &self.fast_flush
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

    /// smtpd_check_rcpt(): smtpd_relay_restrictions, then smtpd_recipient_restrictions
    /// (the first reject ends it; a permit only ends its own list), then the implicit
    /// reject_unlisted_recipient unless a list already ran it for this recipient.
    fn decide(&self, client: IpAddr, recipient: &str, pipelining: bool) -> Decision {
        let client = Client::from_addr(client);
        let mut checked = false;
        for list in [&self.relay_list, &self.recipient_list] {
            match self.evaluate(list, &client, recipient, pipelining, &mut checked) {
                Decision::Dunno | Decision::Permit => {}
                other => return other,
            }
        }
        if self.recipients.implicit() && !checked {
            return self.unlisted(recipient);
        }
        Decision::Dunno
    }

    /// One restriction list; `reject_unlisted_recipient` (and its old name
    /// `check_recipient_maps`) and `reject_unauth_pipelining` are handled here, the rest
    /// by the resolver's library.
    fn evaluate(
        &self,
        list: &[String],
        client: &Client<'_>,
        recipient: &str,
        pipelining: bool,
        checked: &mut bool,
    ) -> Decision {
        let mut rest = list;
        while !rest.is_empty() {
            let split = rest
                .iter()
                .position(|name| is_unlisted_check(name) || is_pipelining_check(name));
            let (segment, marker) = match split {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            if !segment.is_empty() {
                match self.resolver.evaluate(segment, client, recipient) {
                    Decision::Dunno => {}
                    other => return other,
                }
            }
            if !marker {
                break;
            }
            let name = &rest[segment.len()];
            rest = &rest[segment.len() + 1..];
            if is_pipelining_check(name) {
                if pipelining {
                    return Decision::Reject(unauth_pipelining(recipient, "Recipient address"));
                }
                continue;
            }
            // check_recipient_rcpt_maps(): once per recipient.
            if !*checked {
                *checked = true;
                match self.unlisted(recipient) {
                    Decision::Dunno => {}
                    other => return other,
                }
            }
        }
        Decision::Dunno
    }

    fn unlisted(&self, recipient: &str) -> Decision {
        let warn: tern_maps::Warn = Arc::new(warn);
        self.recipients.check(&self.resolver, recipient, &warn)
    }
}

impl RelayPolicy for Restrictions {
    fn check_recipient(
        &self,
        client: IpAddr,
        recipient: &str,
        improper_pipelining: bool,
    ) -> Option<Reply> {
        let text = match self.decide(client, recipient, improper_pipelining) {
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

/// reject_unauth_pipelining (smtpd_check.c): refuse when the client sent commands ahead
/// where RFC 2920 does not allow it (the session's flag, tern_smtp::pipelining).
fn is_pipelining_check(name: &str) -> bool {
    name.eq_ignore_ascii_case("reject_unauth_pipelining")
}

/// reject_unauth_pipelining's reply: `503 5.5.0 <NAME>: CLASS rejected: Improper use of
/// SMTP command pipelining` (MAIL_ERROR_PROTOCOL, smtpd_check.c).
fn unauth_pipelining(name: &str, class: &str) -> tern_rewrite::relay::Reply {
    tern_rewrite::relay::Reply {
        code: 503,
        dsn: "5.5.0".to_owned(),
        text: format!("<{name}>: {class} rejected: Improper use of SMTP command pipelining"),
    }
}

/// reject_unlisted_recipient and the name Postfix keeps for it.
fn is_unlisted_check(name: &str) -> bool {
    name.eq_ignore_ascii_case("reject_unlisted_recipient")
        || name.eq_ignore_ascii_case("check_recipient_maps")
}

/// The recipient-validation parameters of one service.
pub(crate) fn recipient_params(
    config: &Config,
    service: Option<&Service>,
) -> Result<recipients::Params, PolicyError> {
    let get = |name: &str, service: Option<&Service>| -> Result<String, PolicyError> {
        let raw = config.lookup_value(name, service).unwrap_or_default();
        if config.is_raw(name) {
            return Ok(raw);
        }
        Ok(config.expand(&raw, service)?.text.trim().to_owned())
    };
    let text = |name: &str| get(name, service);
    let bad = |name: &str, value: &str| PolicyError::BadValue {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let flag = |name: &str| -> Result<bool, PolicyError> {
        let v = text(name)?;
        match v.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(bad(name, &v)),
        }
    };
    let code = |name: &str| -> Result<u16, PolicyError> {
        let v = text(name)?;
        v.parse().map_err(|_| bad(name, &v))
    };
    let overrides = text("receive_override_options")?;
    Ok(recipients::Params {
        smtpd_reject_unlisted_recipient: flag("smtpd_reject_unlisted_recipient")?,
        no_unknown_recipient_checks: tern_config::list::split(&overrides)
            .unwrap_or_default()
            .iter()
            .any(|o| o.eq_ignore_ascii_case("no_unknown_recipient_checks")),
        local_recipient_maps: text("local_recipient_maps")?,
        virtual_alias_maps: text("virtual_alias_maps")?,
        virtual_mailbox_maps: text("virtual_mailbox_maps")?,
        relay_recipient_maps: text("relay_recipient_maps")?,
        canonical_maps: text("canonical_maps")?,
        recipient_canonical_maps: text("recipient_canonical_maps")?,
        unknown_local_recipient_reject_code: code("unknown_local_recipient_reject_code")?,
        unknown_virtual_alias_reject_code: code("unknown_virtual_alias_reject_code")?,
        unknown_virtual_mailbox_reject_code: code("unknown_virtual_mailbox_reject_code")?,
        unknown_relay_recipient_reject_code: code("unknown_relay_recipient_reject_code")?,
        show_user_unknown_table_name: flag("show_user_unknown_table_name")?,
        // proxymap(8) is a service of its own: main.cf's value, no -o overrides.
        proxy_read_maps: get("proxy_read_maps", None)?,
    })
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

    const UNKNOWN_B: &str = "550 5.1.1 <b@localhost>: Recipient address rejected: User unknown in local recipient table";

    #[test]
    fn decisions() {
        let base = "compatibility_level = 3.6\nmynetworks = 127.0.0.0/8 [::1]/128\n\
                    relay_domains = relay.net\n\
                    mydestination = mx.example.com, localhost\n\
                    local_recipient_maps = inline:{a=x}\n";
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
            // reject_unlisted_recipient: after both lists, for every client.
            (base.to_owned(), "192.0.2.1", "b@localhost", Some(UNKNOWN_B)),
            (base.to_owned(), "127.0.0.1", "b@localhost", Some(UNKNOWN_B)),
            (
                format!("{base}smtpd_recipient_restrictions = permit\n"),
                "127.0.0.1",
                "b@localhost",
                Some(UNKNOWN_B),
            ),
            (
                format!("{base}smtpd_reject_unlisted_recipient = no\n"),
                "192.0.2.1",
                "b@localhost",
                None,
            ),
            // An explicit reject_unlisted_recipient works with the implicit one off, where
            // the list names it, and runs once.
            (
                format!(
                    "{base}smtpd_reject_unlisted_recipient = no\n\
                     smtpd_recipient_restrictions = reject_unlisted_recipient\n"
                ),
                "192.0.2.1",
                "b@localhost",
                Some(UNKNOWN_B),
            ),
            (
                format!(
                    "{base}smtpd_recipient_restrictions = reject_unlisted_recipient check_foo\n"
                ),
                "192.0.2.1",
                "b@localhost",
                Some(UNKNOWN_B),
            ),
            (
                format!(
                    "{base}smtpd_recipient_restrictions = reject_unlisted_recipient check_foo\n"
                ),
                "192.0.2.1",
                "a@localhost",
                Some("451 4.3.5 Server configuration error"),
            ),
            (
                format!("{base}smtpd_recipient_restrictions = permit reject_unlisted_recipient\n"),
                "192.0.2.1",
                "b@localhost",
                Some(UNKNOWN_B),
            ),
            // Relay control comes first; then the relay class's own table.
            (
                format!("{base}relay_recipient_maps = inline:{{r@relay.net=x}}\n"),
                "192.0.2.1",
                "x@relay.net",
                Some(
                    "550 5.1.1 <x@relay.net>: Recipient address rejected: User unknown in relay \
                     recipient table",
                ),
            ),
            (
                format!("{base}relay_recipient_maps = inline:{{r@relay.net=x}}\n"),
                "192.0.2.1",
                "r@relay.net",
                None,
            ),
        ] {
            let p = policy(&main);
            let got = p.check_recipient(client.parse().expect("ip"), rcpt, false);
            assert_eq!(
                got.map(|r| r.to_string()).as_deref(),
                want,
                "{client} {rcpt}"
            );
        }
    }
}
