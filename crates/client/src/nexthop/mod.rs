//! Next-hop resolution for smtp(8) and lmtp(8): from a delivery request's next hop to the
//! ordered list of addresses to try, or a failure in Postfix's words (smtp_connect.c,
//! smtp_connect_inet(); smtp_addr.c, smtp_domain_addr() and smtp_host_addr()).
//!
//! - [`parse`]: the next hop's text: sites, hosts, ports, `[]`, LMTP's `unix:`/`inet:`,
//!   and the relayhost-or-domain choice.
//! - [`dns`]: the lookups (MX, A/AAAA, getaddrinfo) with Postfix's statuses and texts, and
//!   [`DnsClient`], the shared DNS client (resolv.conf's servers or `TERN_DNS_SERVER`).
//! - [`order`]: shuffle, preference sort, IPv4/IPv6 balance, finding this machine.
//! - [`config`]: [`Settings::from_config`], the smtp_*/lmtp_* parameters.
//!
//! The flow for one site ([`resolve`]): a site in `[]`, any LMTP site, or DNS turned off:
//! the host's addresses (smtp_host_addr()). Otherwise the MX records (smtp_domain_addr()):
//! sorted by preference, each target's addresses looked up in turn, this machine's MX
//! level and worse ones dropped (or "loops back to myself" when it is the best), the
//! addresses shuffled (smtp_randomize_addresses) and sorted by preference and
//! smtp_address_preference, balanced between IPv4 and IPv6, and cut at
//! smtp_mx_address_limit. No MX records: the domain's own addresses (RFC 5321 5.1). A null
//! MX (RFC 7505): a permanent failure.
//!
//! What the caller supplies: the [`Settings`] from main.cf (or master.cf -o), this
//! machine's addresses (inet_interfaces and proxy_interfaces, expanded), a [`DnsClient`]
//! and a random source. It gets back a [`Resolution`]: the targets or a [`Failure`] (DSN
//! and text for `status=... (TEXT)`), the warnings Postfix would log (without `warning: `),
//! and whether the next sites (fallback relays) may be tried. Logging, connecting, the
//! session limits (smtp_mx_session_limit) and the connection cache are the caller's.
//!
//! # Security
//! The DNS answers and the next hop are untrusted; see [`dns`] and [`parse`]. Lists are
//! bounded (dns_rr_list_limit, smtp_mx_address_limit) and every lookup is bounded in time.

pub mod config;
pub mod dns;
pub mod order;
pub mod parse;

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::proto::rr::RecordType;

pub use config::ConfigError;
pub use dns::{DNS_SERVER_ENV, DnsClient, QueryError};
pub use order::Rng;
pub use parse::{ParseError, Protocol, Site, Sites, pick_nexthop, sites};

use dns::Status;

/// smtp_address_preference: which family goes first among equal MX preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPreference {
    /// `any` (Postfix's default): the shuffle decides.
    #[default]
    Any,
    Ipv4,
    Ipv6,
}

impl AddressPreference {
    /// The parameter's value (`any`, `ipv4`, `ipv6`); None for anything else (Postfix:
    /// `fatal: bad smtp_address_preference value`).
    pub fn parse(value: &str) -> Option<AddressPreference> {
        match value.trim().to_ascii_lowercase().as_str() {
            "any" => Some(AddressPreference::Any),
            "ipv4" => Some(AddressPreference::Ipv4),
            "ipv6" => Some(AddressPreference::Ipv6),
            _ => None,
        }
    }
}

/// The address families inet_protocols enables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetProtocols {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl InetProtocols {
    /// `all`, `ipv4`, `ipv6`, `ipv4, ipv6`; None for an unknown word.
    pub fn parse(value: &str) -> Option<InetProtocols> {
        let mut p = InetProtocols {
            ipv4: false,
            ipv6: false,
        };
        for word in value.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
            match word.to_ascii_lowercase().as_str() {
                "" => {}
                "all" => {
                    p.ipv4 = true;
                    p.ipv6 = true;
                }
                "ipv4" => p.ipv4 = true,
                "ipv6" => p.ipv6 = true,
                _ => return None,
            }
        }
        Some(p)
    }

    /// inet_proto_info()'s dns_atype_list: A before AAAA.
    fn record_types(self) -> Vec<RecordType> {
        let mut t = Vec::new();
        if self.ipv4 {
            t.push(RecordType::A);
        }
        if self.ipv6 {
            t.push(RecordType::AAAA);
        }
        t
    }

    fn allows(self, addr: IpAddr) -> bool {
        if addr.is_ipv4() { self.ipv4 } else { self.ipv6 }
    }
}

/// smtp_host_lookup: `dns`, `native`, or both (DNS first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLookup {
    pub dns: bool,
    pub native: bool,
}

impl HostLookup {
    /// `dns`, `native`, `dns, native`; None for an unknown word or an empty list.
    pub fn parse(value: &str) -> Option<HostLookup> {
        let mut h = HostLookup {
            dns: false,
            native: false,
        };
        for word in value.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
            match word.to_ascii_lowercase().as_str() {
                "" => {}
                "dns" => h.dns = true,
                "native" => h.native = true,
                _ => return None,
            }
        }
        (h.dns || h.native).then_some(h)
    }
}

/// The parameters next-hop resolution reads (smtp_* or lmtp_* alike), with Postfix 3.7's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// inet_protocols (default `all`).
    pub inet_protocols: InetProtocols,
    /// smtp_address_preference (default `any`).
    pub address_preference: AddressPreference,
    /// smtp_host_lookup (default `dns`).
    pub host_lookup: HostLookup,
    /// False when disable_dns_lookups = yes or smtp_dns_support_level = disabled: no MX
    /// lookups, and host lookups use the native service only.
    pub dns_enabled: bool,
    /// smtp_mx_address_limit (default 5; 0: no limit).
    pub mx_address_limit: usize,
    /// smtp_balance_inet_protocols (default yes).
    pub balance_inet_protocols: bool,
    /// smtp_randomize_addresses (default yes).
    pub randomize_addresses: bool,
    /// smtp_ignore_mx_lookup_error (default no).
    pub ignore_mx_lookup_error: bool,
    /// smtp_defer_if_no_mx_address_found (default no).
    pub defer_if_no_mx_address_found: bool,
    /// The most time one DNS query may take (the C library's resolv.conf default is 5 s a
    /// try, 2 tries).
    pub query_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            inet_protocols: InetProtocols {
                ipv4: true,
                ipv6: true,
            },
            address_preference: AddressPreference::Any,
            host_lookup: HostLookup {
                dns: true,
                native: false,
            },
            dns_enabled: true,
            mx_address_limit: 5,
            balance_inet_protocols: true,
            randomize_addresses: true,
            ignore_mx_lookup_error: false,
            defer_if_no_mx_address_found: false,
            query_timeout: Duration::from_secs(10),
        }
    }
}

/// One address to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server's name: the MX record's target, or the host of a `[host]` / no-MX site
    /// (Postfix's `relay=NAME[IP]:PORT`).
    pub host: String,
    pub addr: IpAddr,
    pub port: u16,
    /// The MX preference (0 without MX records).
    pub pref: u32,
}

/// A site that cannot be used: the DSN (`5.4.4`) and the text of `status=... (TEXT)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub dsn: String,
    pub text: String,
}

impl Failure {
    fn new(dsn: &str, text: impl Into<String>) -> Failure {
        Failure {
            dsn: dsn.to_owned(),
            text: text.into(),
        }
    }

    /// A 4.x.x status: defer, not bounce.
    pub fn is_soft(&self) -> bool {
        self.dsn.starts_with('4')
    }

    /// SMTP_HAS_LOOP_DSN: mail loops back to this machine (5.4.6).
    pub fn is_loop(&self) -> bool {
        self.dsn == "5.4.6"
    }
}

/// The outcome for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The addresses in the order to try them, or why there are none.
    pub targets: Result<Vec<Target>, Failure>,
    /// Postfix's warnings on the way, without `warning: `.
    pub warnings: Vec<String>,
    /// This machine is one of the site's MX hosts (smtp_connect.c: "If we're MX host,
    /// don't connect to non-MX backups").
    pub i_am_mx: bool,
}

impl Resolution {
    /// SMTP_MISC_FLAG_FINAL_NEXTHOP: the sites after this one (fallback relays) must not be
    /// tried, because this machine is an MX host or the mail loops.
    pub fn final_nexthop(&self) -> bool {
        self.i_am_mx || self.targets.as_ref().is_err_and(Failure::is_loop)
    }
}

/// Resolves one site (see the module documentation). `local` lists this machine's
/// addresses (inet_interfaces and proxy_interfaces); loops are looked for only with SMTP
/// on port 25, as Postfix does.
pub async fn resolve(
    dns: &DnsClient,
    site: &Site,
    protocol: Protocol,
    settings: &Settings,
    local: &[IpAddr],
    rng: &mut Rng,
) -> Resolution {
    let mut run = Run {
        dns,
        settings,
        local,
        rng,
        loop_detect: protocol == Protocol::Smtp && site.port == 25,
        warnings: Vec::new(),
        i_am_mx: false,
    };
    let targets = if !settings.inet_protocols.ipv4 && !settings.inet_protocols.ipv6 {
        Err(Failure::new("4.4.4", "all network protocols are disabled"))
    } else if protocol == Protocol::Smtp && settings.dns_enabled && !site.bracketed {
        run.domain_addr(&site.host).await
    } else {
        run.host_addr(&site.host).await
    };
    let targets = targets.map(|mut list| {
        if settings.mx_address_limit > 0 {
            list.truncate(settings.mx_address_limit);
        }
        for t in &mut list {
            t.port = site.port;
        }
        list
    });
    Resolution {
        targets,
        warnings: run.warnings,
        i_am_mx: run.i_am_mx,
    }
}

/// smtp_connect_inet()'s last word when a site's failure was permanent: a fallback relay
/// or the relayhost that fails is a configuration problem, so the mail is deferred (4.3.5,
/// the text kept) and a warning logged. `first_site` is the first site's text; `relayhost`
/// the parameter's value. Returns the warning, if any.
pub fn config_problem(
    failure: &mut Failure,
    site: &Site,
    first_site: &str,
    relayhost: &str,
    protocol: Protocol,
) -> Option<String> {
    if failure.is_soft() {
        return None;
    }
    let param = if site.fallback {
        protocol.fallback_param()
    } else if protocol == Protocol::Smtp && first_site == relayhost.trim() {
        "relayhost"
    } else {
        return None;
    };
    "4.3.5".clone_into(&mut failure.dsn);
    Some(format!("{param} configuration problem"))
}

/// The state of one resolution: Postfix's DSN_BUF `why` and the flags.
struct Run<'a> {
    dns: &'a DnsClient,
    settings: &'a Settings,
    local: &'a [IpAddr],
    rng: &'a mut Rng,
    loop_detect: bool,
    warnings: Vec<String>,
    i_am_mx: bool,
}

/// Postfix's `why`: the last failure's text, and a status where a soft one stays soft.
#[derive(Debug, Default)]
struct Why {
    dsn: Option<&'static str>,
    text: String,
}

impl Why {
    fn soft(&self) -> bool {
        self.dsn.is_some_and(|d| d.starts_with('4'))
    }

    /// The status for a failure that is soft when `soft_dsn`, hard when `hard_dsn`,
    /// unless an earlier one was soft.
    fn pick(&self, soft_dsn: &'static str, hard_dsn: &'static str) -> &'static str {
        if self.soft() { soft_dsn } else { hard_dsn }
    }

    fn into_failure(self) -> Failure {
        match self.dsn {
            Some(dsn) => Failure::new(dsn, self.text),
            None => Failure::new("4.3.0", "server unavailable or unable to receive mail"),
        }
    }
}

impl Run<'_> {
    /// smtp_domain_addr(): MX hosts, their addresses, this machine among them.
    async fn domain_addr(&mut self, name: &str) -> Result<Vec<Target>, Failure> {
        let bound = self.settings.query_timeout;
        let mx = match dns::lookup_mx(self.dns, name, bound, &mut self.warnings).await {
            Ok(mx) => mx,
            Err(f) => {
                let dsn = match f.status {
                    Status::NotFound => return self.host_addr(name).await,
                    Status::NullMx => return Err(Failure::new("5.1.0", f.text)),
                    Status::Retry => "4.4.3",
                    Status::Inval => "5.4.4",
                    Status::Fail => "5.4.3",
                };
                if self.settings.ignore_mx_lookup_error {
                    return self.host_addr(name).await;
                }
                return Err(Failure::new(dsn, f.text));
            }
        };
        let mut mx = mx;
        mx.truncate(order::DNS_RR_LIST_LIMIT);
        mx.sort_by_key(|m| m.pref);
        let best_pref = mx.first().map(|m| m.pref);
        let mut why = Why::default();
        let mut list = Vec::new();
        for m in &mx {
            self.addr_one(&mut list, &m.host, m.pref, &mut why).await;
            if list.len() >= order::DNS_RR_LIST_LIMIT {
                break;
            }
        }
        if list.is_empty() {
            if self.settings.defer_if_no_mx_address_found && !why.soft() {
                why.dsn = Some(match why.dsn {
                    Some(d) => soften(d),
                    None => "4.4.4",
                });
            }
            self.warnings
                .push(format!("no MX host for {name} has a valid address record"));
            return Err(why.into_failure());
        }
        let best_found = list.first().map(|t| t.pref);
        if self.loop_detect
            && let Some(self_pref) = order::find_self(&list, self.local)
        {
            self.i_am_mx = true;
            order::truncate_self(&mut list, self_pref);
            if list.is_empty() {
                return Err(if best_pref == best_found {
                    Failure::new("5.4.6", format!("mail for {name} loops back to myself"))
                } else {
                    Failure::new("4.4.4", format!("unable to find primary relay for {name}"))
                });
            }
        }
        if list.len() > 1 {
            self.arrange(&mut list, true);
        }
        Ok(list)
    }

    /// smtp_host_addr(): the addresses of one host (numeric, DNS, native).
    async fn host_addr(&mut self, host: &str) -> Result<Vec<Target>, Failure> {
        let mut why = Why::default();
        let mut list = Vec::new();
        self.addr_one(&mut list, host, 0, &mut why).await;
        if list.is_empty() {
            return Err(why.into_failure());
        }
        if self.loop_detect && order::find_self(&list, self.local).is_some() {
            return Err(Failure::new(
                "5.4.6",
                format!("mail for {host} loops back to myself"),
            ));
        }
        if list.len() > 1 {
            let both = self.settings.inet_protocols.ipv4 && self.settings.inet_protocols.ipv6;
            self.arrange(&mut list, both);
        }
        Ok(list)
    }

    /// Shuffle, sort (when asked), balance: the tail of smtp_domain_addr() and
    /// smtp_host_addr().
    fn arrange(&mut self, list: &mut Vec<Target>, sort: bool) {
        if self.settings.randomize_addresses {
            order::shuffle(list, self.rng);
        }
        if sort {
            order::sort(list, self.settings.address_preference);
        }
        if self.settings.mx_address_limit > 0 && self.settings.balance_inet_protocols {
            *list = order::balance(std::mem::take(list), self.settings.mx_address_limit);
        }
    }

    /// smtp_addr_one(): appends `host`'s addresses with preference `pref`, or records why
    /// there are none.
    async fn addr_one(&mut self, list: &mut Vec<Target>, host: &str, pref: u32, why: &mut Why) {
        let protocols = self.settings.inet_protocols;
        let push = |list: &mut Vec<Target>, addr: IpAddr| {
            if list.len() < order::DNS_RR_LIST_LIMIT {
                list.push(Target {
                    host: host.to_owned(),
                    addr,
                    port: 0,
                    pref,
                });
            }
        };
        // A numeric name is an address.
        if let Ok(addr) = host.parse::<IpAddr>()
            && protocols.allows(addr)
        {
            push(list, addr);
            return;
        }
        let (use_dns, use_native) = if self.settings.dns_enabled {
            (
                self.settings.host_lookup.dns,
                self.settings.host_lookup.native,
            )
        } else {
            (false, true)
        };
        if use_dns {
            let types = protocols.record_types();
            match dns::lookup_addrs(self.dns, host, &types, self.settings.query_timeout).await {
                Ok(addrs) => {
                    for a in addrs {
                        push(list, a);
                    }
                    return;
                }
                Err(f) => {
                    why.dsn = Some(match f.status {
                        Status::Retry => "4.4.3",
                        Status::Fail => why.pick("4.4.3", "5.4.3"),
                        Status::Inval | Status::NotFound | Status::NullMx => {
                            why.pick("4.4.4", "5.4.4")
                        }
                    });
                    why.text = f.text;
                    // Only "not found" may be helped by the native service.
                    if f.status != Status::NotFound {
                        return;
                    }
                }
            }
        }
        if use_native {
            match dns::lookup_native(host, self.settings.query_timeout).await {
                Err(e) => {
                    why.dsn = Some(match (why.soft() || e.retry, e.no_host) {
                        (true, true) => "4.4.4",
                        (true, false) => "4.3.0",
                        (false, true) => "5.4.4",
                        (false, false) => "5.3.0",
                    });
                    why.text = format!("unable to look up host {host}: {}", e.text);
                }
                Ok(addrs) => {
                    let mut found = 0;
                    for a in addrs.into_iter().filter(|a| protocols.allows(*a)) {
                        found += 1;
                        push(list, a);
                    }
                    if found == 0 {
                        why.dsn = Some(why.pick("4.4.4", "5.4.4"));
                        why.text = format!("{host}: host not found");
                    }
                }
            }
        }
    }
}

/// SMTP_SET_SOFT_DSN: the same status with a 4.
fn soften(dsn: &'static str) -> &'static str {
    match dsn {
        "5.4.3" => "4.4.3",
        "5.3.0" => "4.3.0",
        d if d.starts_with('4') => d,
        _ => "4.4.4",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_values() {
        assert_eq!(
            AddressPreference::parse("IPv6"),
            Some(AddressPreference::Ipv6)
        );
        assert_eq!(AddressPreference::parse("both"), None);
        for (v, want) in [
            ("all", Some((true, true))),
            ("ipv4", Some((true, false))),
            ("ipv6", Some((false, true))),
            ("ipv4, ipv6", Some((true, true))),
            ("", Some((false, false))),
            ("ipx", None),
        ] {
            assert_eq!(
                InetProtocols::parse(v).map(|p| (p.ipv4, p.ipv6)),
                want,
                "{v}"
            );
        }
        for (v, want) in [
            ("dns", Some((true, false))),
            ("native", Some((false, true))),
            ("dns, native", Some((true, true))),
            ("", None),
            ("nis", None),
        ] {
            assert_eq!(HostLookup::parse(v).map(|h| (h.dns, h.native)), want, "{v}");
        }
    }

    #[test]
    fn config_problems() {
        let site = |fallback| Site {
            text: "[relay.example]".to_owned(),
            host: "relay.example".to_owned(),
            port: 25,
            bracketed: true,
            fallback,
        };
        // (failure dsn, fallback site, relayhost, new dsn, warning)
        let cases = [
            (
                "5.4.4",
                true,
                "",
                "4.3.5",
                Some("smtp_fallback_relay configuration problem"),
            ),
            (
                "5.4.4",
                false,
                "[relay.example]",
                "4.3.5",
                Some("relayhost configuration problem"),
            ),
            ("5.4.4", false, "", "5.4.4", None),
            ("4.4.3", true, "", "4.4.3", None),
        ];
        for (dsn, fb, relay, want, warning) in cases {
            let mut f = Failure::new(dsn, "text");
            let w = config_problem(&mut f, &site(fb), "[relay.example]", relay, Protocol::Smtp);
            assert_eq!((f.dsn.as_str(), w.as_deref()), (want, warning));
            assert_eq!(f.text, "text");
        }
    }

    #[test]
    fn final_nexthop() {
        let r = |targets, i_am_mx| Resolution {
            targets,
            warnings: vec![],
            i_am_mx,
        };
        assert!(r(Err(Failure::new("5.4.6", "loops")), false).final_nexthop());
        assert!(r(Ok(vec![]), true).final_nexthop());
        assert!(!r(Err(Failure::new("5.4.4", "nx")), false).final_nexthop());
        assert_eq!(soften("5.4.4"), "4.4.4");
        assert_eq!(soften("5.4.3"), "4.4.3");
    }
}
