//! The parameters trivial-rewrite(8) and smtpd(8)'s relay checks read, taken from a
//! [`Config`] once and expanded, so that the resolver never consults the configuration again.
//!
//! Defaults come from the configuration engine, which already evaluates the
//! compatibility_level-dependent ones (`append_dot_mydomain`, `relay_domains`,
//! `mynetworks_style`, `smtputf8_enable`, `smtpd_relay_restrictions`).
//!
//! Trust: main.cf is the administrator's; a value Postfix would refuse (a boolean that is
//! neither `yes` nor `no`, a reply code that is not a number) is an error with Postfix's text.

use tern_config::config::{Config, ConfigError};

/// Why the settings or the tables behind them could not be set up; `Display` gives Postfix's
/// fatal text where it has one.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// get_mail_conf_bool(): `bad boolean configuration: name = value`.
    #[error("bad boolean configuration: {name} = {value}")]
    BadBool { name: String, value: String },
    /// get_mail_conf_int(): `bad numerical configuration: name = value`.
    #[error("bad numerical configuration: {name} = {value}")]
    BadInt { name: String, value: String },
    /// A list parameter whose braces do not balance (`name: missing '}' in ...`).
    #[error("{name}: {source}")]
    List {
        name: String,
        source: tern_config::list::ListError,
    },
    /// A `!` with nothing after it in a match list.
    #[error("{0}: no pattern after '!'")]
    EmptyNegation(String),
    /// name_mask(): a class list names something its table does not hold (`unknown
    /// canonical_classes value "x" in "x"`; Postfix names canonical_classes for the
    /// sender and recipient lists too).
    #[error("unknown {context} value \"{name}\" in \"{value}\"")]
    UnknownName {
        context: String,
        name: String,
        value: String,
    },
    /// A table named in a parameter could not be opened.
    #[error("{name}: {source}")]
    Map {
        name: String,
        source: tern_maps::MapError,
    },
}

/// Every parameter the resolver, the rewriter and the relay policy use, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The configuration directory, for messages that name main.cf.
    pub config_directory: String,
    pub myhostname: String,
    pub mydomain: String,
    pub myorigin: String,
    pub mydestination: String,
    pub inet_interfaces: String,
    pub inet_protocols: String,
    pub proxy_interfaces: String,
    pub relay_domains: String,
    pub virtual_alias_domains: String,
    pub virtual_mailbox_domains: String,
    pub local_transport: String,
    pub virtual_transport: String,
    pub relay_transport: String,
    pub default_transport: String,
    pub relayhost: String,
    pub transport_maps: String,
    pub relocated_maps: String,
    /// sender_dependent_relayhost_maps / sender_dependent_default_transport_maps, and
    /// the keys the null sender is looked up with.
    pub sender_dependent_relayhost_maps: String,
    pub sender_dependent_default_transport_maps: String,
    pub empty_address_relayhost_maps_lookup_key: String,
    pub empty_address_default_transport_maps_lookup_key: String,
    pub recipient_delimiter: String,
    pub owner_request_special: bool,
    pub double_bounce_sender: String,
    pub append_at_myorigin: bool,
    pub append_dot_mydomain: bool,
    pub swap_bangpath: bool,
    pub allow_percent_hack: bool,
    pub resolve_dequoted_address: bool,
    pub resolve_null_domain: bool,
    pub resolve_numeric_domain: bool,
    pub remote_header_rewrite_domain: String,
    pub empty_address_recipient: String,
    pub show_user_unknown_table_name: bool,
    pub allow_min_user: bool,
    pub smtputf8_enable: bool,
    pub allow_untrusted_routing: bool,
    pub mynetworks: String,
    pub mynetworks_style: String,
    /// The parameter names listed in parent_domain_matches_subdomains.
    pub parent_domain_matches_subdomains: Vec<String>,
    pub smtpd_relay_restrictions: String,
    pub relay_domains_reject_code: u16,
    pub reject_code: u16,
    pub defer_code: u16,
}

impl Settings {
    /// Reads and expands every parameter once.
    pub fn from_config(config: &Config) -> Result<Settings, SetupError> {
        let text = |name: &str| -> Result<String, SetupError> {
            Ok(config.expanded(name)?.unwrap_or_default())
        };
        let flag = |name: &str| -> Result<bool, SetupError> { parse_bool(name, &text(name)?) };
        let code = |name: &str| -> Result<u16, SetupError> {
            let value = text(name)?;
            value.trim().parse().map_err(|_| SetupError::BadInt {
                name: name.to_owned(),
                value,
            })
        };
        let parents = text("parent_domain_matches_subdomains")?;
        let parent_domain_matches_subdomains =
            tern_config::list::split(&parents).map_err(|source| SetupError::List {
                name: "parent_domain_matches_subdomains".to_owned(),
                source,
            })?;
        Ok(Settings {
            config_directory: config.dir.display().to_string(),
            myhostname: text("myhostname")?,
            mydomain: text("mydomain")?,
            myorigin: text("myorigin")?,
            mydestination: text("mydestination")?,
            inet_interfaces: text("inet_interfaces")?,
            inet_protocols: text("inet_protocols")?,
            proxy_interfaces: text("proxy_interfaces")?,
            relay_domains: text("relay_domains")?,
            virtual_alias_domains: text("virtual_alias_domains")?,
            virtual_mailbox_domains: text("virtual_mailbox_domains")?,
            local_transport: text("local_transport")?,
            virtual_transport: text("virtual_transport")?,
            relay_transport: text("relay_transport")?,
            default_transport: text("default_transport")?,
            relayhost: text("relayhost")?,
            transport_maps: text("transport_maps")?,
            relocated_maps: text("relocated_maps")?,
            sender_dependent_relayhost_maps: text("sender_dependent_relayhost_maps")?,
            sender_dependent_default_transport_maps: text(
                "sender_dependent_default_transport_maps",
            )?,
            empty_address_relayhost_maps_lookup_key: text(
                "empty_address_relayhost_maps_lookup_key",
            )?,
            empty_address_default_transport_maps_lookup_key: text(
                "empty_address_default_transport_maps_lookup_key",
            )?,
            recipient_delimiter: text("recipient_delimiter")?,
            owner_request_special: flag("owner_request_special")?,
            double_bounce_sender: text("double_bounce_sender")?,
            append_at_myorigin: flag("append_at_myorigin")?,
            append_dot_mydomain: flag("append_dot_mydomain")?,
            swap_bangpath: flag("swap_bangpath")?,
            allow_percent_hack: flag("allow_percent_hack")?,
            resolve_dequoted_address: flag("resolve_dequoted_address")?,
            resolve_null_domain: flag("resolve_null_domain")?,
            resolve_numeric_domain: flag("resolve_numeric_domain")?,
            remote_header_rewrite_domain: text("remote_header_rewrite_domain")?,
            empty_address_recipient: text("empty_address_recipient")?,
            show_user_unknown_table_name: flag("show_user_unknown_table_name")?,
            allow_min_user: flag("allow_min_user")?,
            smtputf8_enable: flag("smtputf8_enable")?,
            allow_untrusted_routing: flag("allow_untrusted_routing")?,
            mynetworks: text("mynetworks")?,
            mynetworks_style: text("mynetworks_style")?,
            parent_domain_matches_subdomains,
            smtpd_relay_restrictions: text("smtpd_relay_restrictions")?,
            relay_domains_reject_code: code("relay_domains_reject_code")?,
            reject_code: code("reject_code")?,
            defer_code: code("defer_code")?,
        })
    }

    /// Whether a parameter's domain patterns match subdomains (`example.com` matches
    /// `x.example.com`), per parent_domain_matches_subdomains; otherwise only `.example.com`
    /// does (match_parent_style(3)).
    pub fn parent_style(&self, name: &str) -> bool {
        self.parent_domain_matches_subdomains
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Postfix's booleans: `yes` or `no`, in any case.
fn parse_bool(name: &str, value: &str) -> Result<bool, SetupError> {
    if value.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(SetupError::BadBool {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The parameters cleanup(8)'s address rewriting reads (cleanup_init.c), expanded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupSettings {
    pub canonical_maps: String,
    pub sender_canonical_maps: String,
    pub recipient_canonical_maps: String,
    pub canonical_classes: String,
    pub sender_canonical_classes: String,
    pub recipient_canonical_classes: String,
    pub masquerade_domains: String,
    pub masquerade_exceptions: String,
    pub masquerade_classes: String,
    pub virtual_alias_maps: String,
    pub virtual_alias_recursion_limit: usize,
    pub virtual_alias_expansion_limit: usize,
    pub virtual_alias_address_length_limit: usize,
    pub propagate_unmatched_extensions: String,
    pub enable_original_recipient: bool,
    pub duplicate_filter_limit: usize,
    /// always_bcc: one more recipient of every message from outside.
    pub always_bcc: String,
    /// sender_bcc_maps / recipient_bcc_maps: a BCC recipient per sender or recipient.
    pub sender_bcc_maps: String,
    pub recipient_bcc_maps: String,
}

impl CleanupSettings {
    /// Reads and expands every parameter once.
    pub fn from_config(config: &Config) -> Result<CleanupSettings, SetupError> {
        let text = |name: &str| -> Result<String, SetupError> {
            Ok(config.expanded(name)?.unwrap_or_default())
        };
        let flag = |name: &str| -> Result<bool, SetupError> { parse_bool(name, &text(name)?) };
        // get_mail_conf_int() with a minimum of 1 (cleanup_init.c) or 0.
        let number = |name: &str, min: usize| -> Result<usize, SetupError> {
            let value = text(name)?;
            match value.trim().parse::<usize>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(SetupError::BadInt {
                    name: name.to_owned(),
                    value,
                }),
            }
        };
        Ok(CleanupSettings {
            canonical_maps: text("canonical_maps")?,
            sender_canonical_maps: text("sender_canonical_maps")?,
            recipient_canonical_maps: text("recipient_canonical_maps")?,
            canonical_classes: text("canonical_classes")?,
            sender_canonical_classes: text("sender_canonical_classes")?,
            recipient_canonical_classes: text("recipient_canonical_classes")?,
            masquerade_domains: text("masquerade_domains")?,
            masquerade_exceptions: text("masquerade_exceptions")?,
            masquerade_classes: text("masquerade_classes")?,
            virtual_alias_maps: text("virtual_alias_maps")?,
            virtual_alias_recursion_limit: number("virtual_alias_recursion_limit", 1)?,
            virtual_alias_expansion_limit: number("virtual_alias_expansion_limit", 1)?,
            virtual_alias_address_length_limit: number("virtual_alias_address_length_limit", 1)?,
            propagate_unmatched_extensions: text("propagate_unmatched_extensions")?,
            enable_original_recipient: flag("enable_original_recipient")?,
            duplicate_filter_limit: number("duplicate_filter_limit", 0)?,
            always_bcc: text("always_bcc")?,
            sender_bcc_maps: text("sender_bcc_maps")?,
            recipient_bcc_maps: text("recipient_bcc_maps")?,
        })
    }
}
