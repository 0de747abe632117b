//! What smtpd's access control is built from, per service and settings load (at start and
//! at each `postfix reload`, never per session): trivial-rewrite's library
//! ([`tern_rewrite::Resolver`]: mydestination, relay_domains, mynetworks, with the
//! service's `-o` overrides applied), the recipient tables of reject_unlisted_recipient,
//! fast_flush_domains, and the restriction lists and tables of [`crate::check`], which
//! evaluates them.
//!
//! Postfix refuses to run without a restriction that can refuse relaying, and so does Tern
//! ([`PolicyError::NoRelayLimit`]).
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

/// A namadr match list (mynetworks style) for parameter `name` = `value`; whether a
/// domain matches its subdomains comes from parent_domain_matches_subdomains (`parents`),
/// as namadr_list_init() with match_parent_style() has it.
pub fn namadr_list(
    name: &str,
    value: &str,
    parents: &str,
) -> Result<tern_rewrite::matchlist::MatchList, PolicyError> {
    let style = tern_config::list::split(parents)
        .unwrap_or_default()
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name));
    let flags = tern_maps::OpenFlags::default();
    let open = |spec: &str| tern_maps::open(spec, &flags);
    Ok(tern_rewrite::matchlist::MatchList::parse(
        name, value, style, &open,
    )?)
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
    /// The restriction lists, classes and tables (smtpd_check_init()).
    setup: crate::check::Setup,
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
        // smtpd_check_init(): the lists as the engine parsed them.
        let setup = crate::check::Setup::from_config(config, service)?;
        if !setup.has_required(&setup.lists.relay, RELAY_REQUIRED)
            && !setup.has_required(&setup.lists.recipient, RELAY_REQUIRED)
        {
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
            setup,
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

    /// The restriction lists and tables.
    pub fn setup(&self) -> &crate::check::Setup {
        &self.setup
    }

    /// reject_unlisted_recipient's tables.
    pub fn recipient_maps(&self) -> &RecipientMaps {
        &self.recipients
    }

    /// smtpd_reject_unlisted_recipient: the implicit check after the lists.
    pub fn recipients_implicit(&self) -> bool {
        self.recipients.implicit()
    }

    /// permit_inet_interfaces: the client is one of this host's addresses.
    pub fn is_own_address(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        self.own_addrs.contains(&addr)
    }
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
