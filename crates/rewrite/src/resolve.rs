//! Resolving a recipient to (transport, nexthop, recipient) and its address class, as
//! trivial-rewrite(8)'s resolver does (resolve.c, transport.c; ADDRESS_CLASS_README).
//!
//! First every local domain is stripped (`user@a@mx` with `mx` local is `user@a`), `%` and
//! `!` are turned into `@` when allowed, and the address is canonicalised again; a quoted
//! local part is opened when resolve_dequoted_address is on. Then the recipient domain picks
//! the class, in Postfix's order: local (mydestination, or an `[address]` of this host per
//! inet_interfaces / proxy_interfaces), virtual alias (virtual_alias_domains), virtual
//! mailbox (virtual_mailbox_domains), relay (relay_domains), default. Each class has its
//! transport (`local_transport`, ...); a `transport:nexthop` value gives the nexthop, else it
//! is the recipient domain, or relayhost for the relay and default classes. transport(5)
//! then overrides, except for virtual alias domains (their addresses must be aliased away:
//! "User unknown in virtual alias table"). relocated(5) comes last.
//!
//! Trust: addresses come from the network; the resolver never panics and is bounded (at
//! most the address length plus 100 rounds, as Postfix gives up). Table lookup errors are
//! [`LookupError`]: the caller defers, never treats them as "not found".

use std::net::IpAddr;

use tern_maps::query::{Extension, Maps};
use tern_maps::{Map, MapError, Warn};

use crate::address::{self, Addr, Context, Local, Origin};
use crate::matchlist::MatchList;
use crate::settings::{Settings, SetupError};

/// Postfix's address classes (RESOLVE_CLASS_*), in the order the resolver tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Local,
    VirtualAlias,
    VirtualMailbox,
    Relay,
    Default,
}

impl Class {
    /// RESOLVE_CLASS_FINAL: the mail ends here (local, virtual alias, virtual mailbox).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Class::Local | Class::VirtualAlias | Class::VirtualMailbox
        )
    }
}

/// The resolver's flags besides the class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// RESOLVE_FLAG_ROUTED: the local part still holds `@`, `!` or `%` (`user@a@b`,
    /// `user%a@b`, `a!user@b`), whatever this host's swap_bangpath / allow_percent_hack.
    pub routed: bool,
    /// RESOLVE_FLAG_ERROR: a malformed recipient domain (`user@`, `[bad]`, a bare IP with
    /// resolve_numeric_domain off), or a recipient that starts with `-` (allow_min_user).
    pub error: bool,
}

/// What a recipient resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub class: Class,
    /// The master.cf service (`local`, `smtp`, `error`, ...); empty when `flags.error`.
    pub transport: String,
    /// Transport-specific: a domain, `[host]:port`, a socket, or for `error` the reason.
    pub nexthop: String,
    /// The recipient after local domains and routing were stripped, internal form.
    pub recipient: String,
    pub flags: Flags,
}

/// A table lookup failed, or the configuration is unusable for this address: the caller
/// defers (smtpd: `451 4.3.0 <addr>: Temporary lookup failure`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LookupError(pub String);

/// The addresses of this host that make `user@[address]` local: inet_interfaces and
/// proxy_interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    pub own: Vec<IpAddr>,
    pub proxy: Vec<IpAddr>,
}

impl Interfaces {
    /// Asks the kernel and the system resolver, as own_inet_addr(3) does: `all` is every
    /// interface address, `loopback-only` the loopback ones, else the listed addresses and
    /// host names; inet_protocols filters the families.
    pub fn detect(settings: &Settings) -> Interfaces {
        let (v4, v6) = protocols(&settings.inet_protocols);
        let keep = |a: &IpAddr| if a.is_ipv4() { v4 } else { v6 };
        let system: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
            .map(|addrs| {
                addrs
                    .filter_map(|i| i.address)
                    .filter_map(|s| {
                        s.as_sockaddr_in()
                            .map(|a| IpAddr::V4(a.ip()))
                            .or_else(|| s.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let own = match settings.inet_interfaces.trim() {
            "all" => system,
            "loopback-only" => system.into_iter().filter(IpAddr::is_loopback).collect(),
            list => hosts(list),
        };
        Interfaces {
            own: own.into_iter().filter(keep).collect(),
            proxy: hosts(&settings.proxy_interfaces)
                .into_iter()
                .filter(keep)
                .collect(),
        }
    }
}

/// The resolver and rewriter: settings plus the opened tables and lists.
pub struct Resolver {
    pub settings: Settings,
    pub(crate) interfaces: Interfaces,
    mydestination: MatchList,
    virtual_alias_domains: MatchList,
    virtual_mailbox_domains: MatchList,
    relay_domains: MatchList,
    transport_maps: Vec<Box<dyn Map>>,
    relocated_maps: Vec<Box<dyn Map>>,
    sender_relayhost_maps: Vec<Box<dyn Map>>,
    sender_transport_maps: Vec<Box<dyn Map>>,
    pub(crate) mynetworks: MatchList,
    pub(crate) warn: Warn,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("settings", &self.settings)
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Opens the tables and files the settings name. `warn` receives Postfix's warnings
    /// (without the `trivial-rewrite: warning: ` prefix).
    pub fn new(
        settings: Settings,
        interfaces: Interfaces,
        warn: Warn,
    ) -> Result<Resolver, SetupError> {
        let flags = tern_maps::OpenFlags {
            fold_fix: true,
            warn: warn.clone(),
        };
        let open = |spec: &str| tern_maps::open(spec, &flags);
        let list = |name: &str, value: &str| {
            MatchList::parse(name, value, settings.parent_style(name), &open)
        };
        let maps = |name: &str, value: &str| open_maps(name, value, &flags);
        Ok(Resolver {
            mydestination: list("mydestination", &settings.mydestination)?,
            virtual_alias_domains: list("virtual_alias_domains", &settings.virtual_alias_domains)?,
            virtual_mailbox_domains: list(
                "virtual_mailbox_domains",
                &settings.virtual_mailbox_domains,
            )?,
            relay_domains: list("relay_domains", &settings.relay_domains)?,
            transport_maps: maps("transport_maps", &settings.transport_maps)?,
            relocated_maps: maps("relocated_maps", &settings.relocated_maps)?,
            sender_relayhost_maps: maps(
                "sender_dependent_relayhost_maps",
                &settings.sender_dependent_relayhost_maps,
            )?,
            sender_transport_maps: maps(
                "sender_dependent_default_transport_maps",
                &settings.sender_dependent_default_transport_maps,
            )?,
            mynetworks: list("mynetworks", &settings.mynetworks)?,
            settings,
            interfaces,
            warn,
        })
    }

    /// Canonicalises an address in internal form (see [`crate::address`]).
    pub fn rewrite(&self, context: Context, address: &str) -> String {
        address::rewrite(&self.settings, context, address)
    }

    /// resolve_local(3): whether `domain` is this host: in mydestination, or an address
    /// literal of inet_interfaces / proxy_interfaces. One trailing dot is ignored.
    pub fn is_local(&self, domain: &str) -> Result<bool, LookupError> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if domain.is_empty() || domain.ends_with('.') {
            return Ok(false);
        }
        if self.mydestination.match_string(domain).map_err(lookup)? {
            return Ok(true);
        }
        Ok(domain
            .strip_prefix('[')
            .and_then(|d| d.strip_suffix(']'))
            .and_then(address::mailhost_addr)
            .is_some_and(|ip| {
                let ip = ip.to_canonical();
                self.interfaces.own.contains(&ip) || self.interfaces.proxy.contains(&ip)
            }))
    }

    /// own_inet_addr(3) / proxy_inet_addr(3): whether `ip` is one of this host's
    /// addresses (inet_interfaces or proxy_interfaces).
    pub fn is_own_addr(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.interfaces.own.contains(&ip) || self.interfaces.proxy.contains(&ip)
    }

    /// The class of a domain alone (resolve_class()), in the resolver's order.
    pub fn class_of(&self, domain: &str) -> Result<Class, LookupError> {
        if self.is_local(domain)? {
            Ok(Class::Local)
        } else if self
            .virtual_alias_domains
            .match_string(domain)
            .map_err(lookup)?
        {
            Ok(Class::VirtualAlias)
        } else if self
            .virtual_mailbox_domains
            .match_string(domain)
            .map_err(lookup)?
        {
            Ok(Class::VirtualMailbox)
        } else if self.relay_domains.match_hostname(domain).map_err(lookup)? {
            Ok(Class::Relay)
        } else {
            Ok(Class::Default)
        }
    }

    /// Resolves a recipient in internal form (resolve_clnt(3) as qmgr(8) uses it; smtpd
    /// rewrites in the local context first, see [`crate::relay`]).
    pub fn resolve(&self, address: &str) -> Result<Resolved, LookupError> {
        self.resolve_from(None, address)
    }

    /// [`Self::resolve`] for a message from `sender` (internal form; empty for the null
    /// sender): sender_dependent_default_transport_maps and
    /// sender_dependent_relayhost_maps apply to off-host recipients, as resolve.c does
    /// when qmgr(8) asks with the sender.
    pub fn resolve_from(
        &self,
        sender: Option<&str>,
        address: &str,
    ) -> Result<Resolved, LookupError> {
        let s = &self.settings;
        let (recipient, remote) = self.strip_local(address)?;
        let mut recipient = recipient;
        let at = recipient.rfind('@').map_or(0, |at| at + 1);
        let mut domain = recipient[at..].to_owned();
        let mut local_class = !remote;
        let mut flags = Flags::default();
        if domain.starts_with('[') {
            flags.error = !address::valid_mailhost_literal(&domain);
        } else if !address::valid_hostname(&domain, s.smtputf8_enable) {
            if s.resolve_numeric_domain && address::valid_hostaddr(&domain) {
                domain = format!("[{domain}]");
                recipient = format!("{}{domain}", &recipient[..at]);
                if self.is_local(&domain)? {
                    local_class = true;
                }
            } else {
                flags.error = true;
            }
        }
        if flags.error {
            return Ok(Resolved {
                class: Class::Default,
                transport: String::new(),
                nexthop: String::new(),
                recipient,
                flags,
            });
        }
        // Routing operators in the local part, even those this host does not honour: the
        // next MX host may (resolve.c, to keep backup MX hosts off black lists).
        let first = recipient
            .find(['@', '!', '%'])
            .map_or(recipient.len(), |i| i + 1);
        flags.routed = recipient.get(first..) != Some(domain.as_str());

        let (class, channel, blame, mut nexthop) =
            self.class_route(&domain, local_class, sender)?;
        let mut transport = channel.clone();
        if let Some((name, hop)) = channel.split_once(':') {
            name.clone_into(&mut transport);
            if !hop.is_empty() {
                hop.clone_into(&mut nexthop);
            }
        }
        if transport.is_empty() {
            let why = format!(
                "file {}/main.cf: parameter {blame}: null transport is not allowed",
                s.config_directory
            );
            (self.warn)(&why);
            return Err(LookupError(why));
        }
        if class != Class::VirtualAlias && !self.transport_maps.is_empty() {
            let table = Maps::new(
                "transport_maps",
                self.transport_maps.iter().map(AsRef::as_ref),
                self.warn.clone(),
            );
            let entry = tern_maps::query::address::transport(
                &table,
                &recipient,
                &self.extension(),
                s.parent_style("transport_maps"),
            )
            .map_err(|err| self.failure("transport_maps", &err))?;
            if let Some(entry) = entry {
                update_entry(&entry, &domain, &mut transport, &mut nexthop);
            }
        }
        if !self.relocated_maps.is_empty() {
            let table = Maps::new(
                "relocated_maps",
                self.relocated_maps.iter().map(AsRef::as_ref),
                self.warn.clone(),
            );
            let is_local = |d: &str| d == s.myorigin || self.is_local(d).unwrap_or(false);
            let moved = tern_maps::query::address::relocated(
                &table,
                &recipient,
                &self.extension(),
                &is_local,
            )
            .map_err(|err| self.failure("relocated_maps", &err))?;
            if let Some(newloc) = moved {
                "error".clone_into(&mut transport);
                // 5.1.6 is the closest match, as Postfix says.
                nexthop = format!("5.1.6 User has moved to {newloc}");
            }
        }
        // A recipient that starts with `-` could pass for an option of a pipe command.
        if !s.allow_min_user && recipient.starts_with('-') {
            flags.error = true;
        }
        Ok(Resolved {
            class,
            transport,
            nexthop,
            recipient,
            flags,
        })
    }

    /// The resolver loop: strips local domains and routing until the domain is remote or
    /// none is left; returns the recipient and whether its domain is remote.
    fn strip_local(&self, address: &str) -> Result<(String, bool), LookupError> {
        let s = &self.settings;
        let origin = Origin::of(s, Context::Local);
        let mut addr = Addr::parse(address);
        let mut saved: Option<String> = None;
        let limit = address.len() + 100;
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > limit {
                let why = format!("resolve_addr: <{address}>: giving up after {rounds} iterations");
                (self.warn)(&why);
                return Err(LookupError(why));
            }
            if addr.domain.is_some() {
                address::strip_trailing_dot(&mut addr);
            }
            if s.resolve_null_domain && addr.domain.as_deref() == Some("") {
                addr.domain = None;
            }
            if let Some(domain) = addr.domain.take() {
                if !domain.is_empty() && !self.is_local(&domain)? {
                    addr.domain = Some(domain);
                    return Ok((addr.internal(), true));
                }
                saved = Some(domain);
            }
            let routing = |text: &str| {
                (s.swap_bangpath && text.contains('!'))
                    || (s.allow_percent_hack && text.contains('%'))
            };
            match &addr.local {
                Local::Plain(text) if routing(text) => {
                    address::rewrite_addr(s, &origin, &mut addr);
                    continue;
                }
                // Crack a quoted local part open to find routing in it: technically wrong,
                // but it stops user@domain@domain relaying through a Sendmail MX.
                Local::Quoted(text)
                    if s.resolve_dequoted_address && (text.contains('@') || routing(text)) =>
                {
                    let mut text = text.clone();
                    addr = if text.contains('@') {
                        Addr::parse(&text)
                    } else if s.allow_percent_hack
                        && let Some(at) = text.rfind('%')
                    {
                        text.replace_range(at..=at, "@");
                        Addr::parse(&text)
                    } else {
                        Addr {
                            local: Local::Plain(text),
                            domain: None,
                        }
                    };
                    address::rewrite_addr(s, &origin, &mut addr);
                    continue;
                }
                _ => {}
            }
            // An empty local part is the local MAILER-DAEMON (empty_address_recipient),
            // resolved again in case it has a domain.
            if addr.local.text().is_empty() {
                addr = Addr::parse(&s.empty_address_recipient);
                continue;
            }
            if saved.is_none() {
                addr.domain = Some(s.myhostname.clone());
                continue;
            }
            addr.domain = saved;
            return Ok((addr.internal(), false));
        }
    }

    /// The class of the recipient domain, its main.cf transport (with the parameter to
    /// blame) and the nexthop before a `transport:nexthop` override.
    fn class_route(
        &self,
        domain: &str,
        local: bool,
        sender: Option<&str>,
    ) -> Result<(Class, String, &'static str, String), LookupError> {
        let s = &self.settings;
        if local {
            return Ok((
                Class::Local,
                s.local_transport.clone(),
                "local_transport",
                domain.to_owned(),
            ));
        }
        if self
            .virtual_alias_domains
            .match_string(domain)
            .map_err(lookup)?
        {
            let table = if s.show_user_unknown_table_name {
                " in virtual alias table"
            } else {
                ""
            };
            return Ok((
                Class::VirtualAlias,
                "error".to_owned(),
                "virtual_alias_domains",
                format!("5.1.1 User unknown{table}"),
            ));
        }
        if self
            .virtual_mailbox_domains
            .match_string(domain)
            .map_err(lookup)?
        {
            return Ok((
                Class::VirtualMailbox,
                s.virtual_transport.clone(),
                "virtual_transport",
                domain.to_owned(),
            ));
        }
        let (class, channel, blame) =
            if self.relay_domains.match_hostname(domain).map_err(lookup)? {
                (Class::Relay, s.relay_transport.clone(), "relay_transport")
            } else {
                (
                    Class::Default,
                    s.default_transport.clone(),
                    "default_transport",
                )
            };
        let (mut channel, mut blame) = (channel, blame);
        if class == Class::Default
            && let Some(sender) = sender
            && let Some(xport) = self.sender_lookup(
                "sender_dependent_default_transport_maps",
                &self.sender_transport_maps,
                sender,
                &s.empty_address_default_transport_maps_lookup_key,
            )?
            && !xport.eq_ignore_ascii_case("DUNNO")
        {
            channel = xport;
            blame = "sender_dependent_default_transport_maps";
        }
        // "With off-host delivery, sender-dependent or global relayhost override the
        // recipient domain."
        let relay = match sender {
            Some(sender) => self
                .sender_lookup(
                    "sender_dependent_relayhost_maps",
                    &self.sender_relayhost_maps,
                    sender,
                    &s.empty_address_relayhost_maps_lookup_key,
                )?
                .filter(|r| !r.eq_ignore_ascii_case("DUNNO")),
            None => None,
        };
        let nexthop = match relay {
            Some(r) => r,
            None if !s.relayhost.is_empty() => s.relayhost.clone(),
            None => domain.to_owned(),
        };
        Ok((class, channel, blame, nexthop))
    }

    /// mail_addr_find() of the sender (or `null_key` for the null sender) in a
    /// sender-dependent table; an empty result is ignored with Postfix's warning.
    fn sender_lookup(
        &self,
        name: &str,
        tables: &[Box<dyn Map>],
        sender: &str,
        null_key: &str,
    ) -> Result<Option<String>, LookupError> {
        if tables.is_empty() {
            return Ok(None);
        }
        let key = if sender.is_empty() { null_key } else { sender };
        let table = Maps::new(name, tables.iter().map(AsRef::as_ref), self.warn.clone());
        let s = &self.settings;
        let is_local = |d: &str| d == s.myorigin || self.is_local(d).unwrap_or(false);
        let found = tern_maps::query::address::find(
            &table,
            key,
            &self.extension(),
            tern_maps::query::address::Strategy::DEFAULT,
            &is_local,
        )
        .map_err(|err| self.failure(name, &err))?;
        match found {
            Some(f) if f.value.is_empty() => {
                (self.warn)(&format!("{name}: ignoring null lookup result for {key}"));
                Ok(None)
            }
            Some(f) => Ok(Some(f.value)),
            None => Ok(None),
        }
    }

    pub(crate) fn extension(&self) -> Extension {
        Extension {
            delimiters: self.settings.recipient_delimiter.clone(),
            owner_request_special: self.settings.owner_request_special,
            double_bounce_sender: self.settings.double_bounce_sender.clone(),
        }
    }

    fn failure(&self, name: &str, err: &MapError) -> LookupError {
        (self.warn)(&format!("{name} lookup failure"));
        LookupError(format!("{name} lookup failure: {err}"))
    }
}

/// transport(5)'s update rule: `:nexthop` keeps the transport; `transport` alone resets
/// the nexthop to the recipient domain (for `error` and `retry`: "Address is
/// undeliverable"); `transport:nexthop` sets both.
fn update_entry(entry: &str, domain: &str, transport: &mut String, nexthop: &mut String) {
    let (channel, hop) = entry.split_once(':').unwrap_or((entry, ""));
    if channel.is_empty() {
        if !hop.is_empty() {
            hop.clone_into(nexthop);
        }
        return;
    }
    channel.clone_into(transport);
    if !hop.is_empty() {
        hop.clone_into(nexthop);
    } else if channel != "error" && channel != "retry" {
        domain.clone_into(nexthop);
    } else {
        "Address is undeliverable".clone_into(nexthop);
    }
}

#[allow(clippy::needless_pass_by_value)] // used as map_err(lookup)
fn lookup(err: MapError) -> LookupError {
    LookupError(err.to_string())
}

/// inet_protocols: which families are on (`all`, `ipv4`, `ipv6`, a list).
fn protocols(value: &str) -> (bool, bool) {
    let mut v4 = false;
    let mut v6 = false;
    for word in value.split([' ', ',', '\t']).filter(|w| !w.is_empty()) {
        match word.to_ascii_lowercase().as_str() {
            "all" => (v4, v6) = (true, true),
            "ipv4" => v4 = true,
            "ipv6" => v6 = true,
            _ => {}
        }
    }
    (v4, v6)
}

/// Addresses of an inet_interfaces / proxy_interfaces list: literals, `[literals]`, and
/// host names through the system resolver.
fn hosts(list: &str) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for host in list.split([' ', ',', '\t']).filter(|h| !h.is_empty()) {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            out.push(ip.to_canonical());
        } else if let Ok(found) = (bare, 0).to_socket_addrs() {
            out.extend(found.map(|a| a.ip().to_canonical()));
        }
    }
    out
}

/// The tables a list parameter names (`alias_maps = hash:/etc/aliases, ...`), opened with
/// `flags`; a bad list or a table that cannot be opened is a [`SetupError`] naming the
/// parameter.
pub(crate) fn open_maps(
    name: &str,
    value: &str,
    flags: &tern_maps::OpenFlags,
) -> Result<Vec<Box<dyn Map>>, SetupError> {
    let specs = tern_config::list::split(value).map_err(|source| SetupError::List {
        name: name.to_owned(),
        source,
    })?;
    specs
        .iter()
        .map(|spec| {
            tern_maps::open(spec, flags).map_err(|source| SetupError::Map {
                name: name.to_owned(),
                source,
            })
        })
        .collect()
}
