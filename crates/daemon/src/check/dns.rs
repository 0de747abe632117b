//! The DNS lookups behind the restrictions (smtpd_check.c v3.7.11): reject_unknown_helo_hostname
//! and reject_unknown_{sender,recipient}_domain ([`DnsChecks::host`],
//! [`DnsChecks::mailhost`]), reject_rbl_client and reject_rhsbl_* with their reply
//! templates ([`DnsChecks::rbl_addr`], [`DnsChecks::rbl_domain`]), and the server lists of
//! check_*_{mx,ns,a}_access ([`DnsChecks::servers`]).
//!
//! The queries go through tern_client's [`DnsClient`] (resolv.conf's servers, or the one
//! server `TERN_DNS_SERVER=IP:PORT` names), each bounded by [`QUERY_TIMEOUT`]; a query cut
//! short is a temporary failure (glibc's TRY_AGAIN), never a "not found".
//!
//! Postfix's rules kept here:
//! - dns_lookup_l() over several types returns the status of highest precedence (OK >
//!   policy > retry > malformed > fail > null MX > not found), so a time-out on one type
//!   and NXDOMAIN on another is a temporary failure.
//! - An RBL lookup that fails other than "not found" lets the client pass, with
//!   `warning: QUERY: RBL lookup error: TEXT` ([`RblOutcome`]).
//! - The RBL reply is `$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using
//!   $rbl_domain${rbl_reason?; $rbl_reason}` (default_rbl_reply) unless rbl_reply_maps has
//!   a template for the RBL domain; looked-up values pass smtpd_expansion_filter (other
//!   characters become `_`).
//!
//! XXX: smtpd_dns_reply_filter is not applied (no [`HostLookup::PolicyDropped`] yet);
//! check_server_access() looks up server addresses with the DNS (A, AAAA) where Postfix
//! uses getaddrinfo(3) (which also reads /etc/hosts). RBL answers are kept for a minute
//! per settings load, where Postfix's smtpd keeps them for its process's life.
//!
//! # Security
//! DNS answers are untrusted: names in them are checked by tern_client (valid_hostname),
//! TXT text is cut at 500 bytes with unprintable bytes made spaces (as dns_get_rr()), and
//! values put into a reply template pass the expansion filter.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::rr::{RData, RecordType};
use tern_client::nexthop::dns::{self as client, DnsClient, Failed, Status};
use tern_config::config::Config;
use tern_config::expand::{Lookup, Mode};
use tern_config::mastercf::Service;
use tern_maps::Map;

use crate::relay::PolicyError;

pub(crate) mod rbl;
#[cfg(test)]
mod tests;

pub use rbl::{RblContext, ReplyPattern};

/// The most one DNS query may take (glibc's resolver: 5 s per try, 2 tries).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The most server addresses check_server_access() looks at (dns_rr_list_limit's 100):
/// past it Postfix warns `check_server_access: TYPE server address count limit (100)
/// exceeded for CLASS NAME -- ignoring the remainder` and answers dunno.
pub const SERVER_ADDRESS_LIMIT: usize = 100;

/// What a name lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLookup {
    Found,
    /// No such name, or no records: a permanent reject (`Host not found`, `Domain not
    /// found`).
    NotFound,
    /// Only malformed names in the reply (`Malformed DNS server reply`).
    Malformed,
    /// No answer in time, SERVFAIL, ...: 450 (`Host not found` / `Domain not found`).
    TempFail,
    /// A null MX (RFC 7505): mailhost only; 550 5.7.27 / 556 5.1.10.
    NullMx,
    /// smtpd_dns_reply_filter dropped every record: dunno with Postfix's warning.
    PolicyDropped,
}

/// Which server records check_*_{mx,ns,a}_access look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Mx,
    Ns,
    A,
}

impl ServerKind {
    /// dns_strtype()'s name.
    pub fn type_name(self) -> &'static str {
        match self {
            ServerKind::Mx => "MX",
            ServerKind::Ns => "NS",
            ServerKind::A => "A",
        }
    }
}

/// One server of check_server_access(), in Postfix's order of checks: its name (looked up
/// in the table as a domain unless [`ServerKind::A`] or `numeric`), then its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    /// The record names an address: only that address is looked up, as a client address.
    pub numeric: bool,
    /// The server's addresses in the families of inet_protocols, or why there are none
    /// (getaddrinfo's text). For MX and NS, Postfix then warns `Unable to look up TYPE
    /// host HOST for CLASS NAME: TEXT` (see [`Server::lookup_warning`]) and goes on.
    pub addrs: Result<Vec<IpAddr>, String>,
}

impl Server {
    /// The warning for a server whose addresses cannot be found (none for type A).
    pub fn lookup_warning(
        &self,
        kind: ServerKind,
        reply_class: &str,
        reply_name: &str,
    ) -> Option<String> {
        let Err(why) = &self.addrs else { return None };
        (kind != ServerKind::A).then(|| {
            format!(
                "Unable to look up {} host {} for {reply_class} {reply_name}: {why}",
                kind.type_name(),
                self.host
            )
        })
    }
}

/// What check_server_access() checks, with Postfix's warnings ([`DnsChecks::server_lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLookup {
    /// The servers, in order.
    Servers(Vec<Server>),
    /// `[address]`: that address alone (check_addr_access()).
    Literal(IpAddr),
    /// Nothing to check (dunno); the warning Postfix logs, if any
    /// (`Unable to look up MX host for example.com: Host not found, try again`).
    Dunno(Option<String>),
}

/// The server hosts of a name as the engine walks them ([`DnsChecks::servers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerList {
    /// Host names with their addresses, in Postfix's order (no addresses when they
    /// cannot be found; [`DnsChecks::server_lookup`] has the warning).
    Hosts(Vec<(String, Vec<IpAddr>)>),
    /// Nothing to look up (also an address literal: the engine checks it itself).
    Dunno,
    /// The MX or NS lookup failed for a while: Postfix warns and answers dunno.
    TempFail,
}

/// The DNS side of the restrictions, built once per settings load.
pub struct DnsChecks {
    dns: Arc<DnsClient>,
    timeout: Duration,
    /// inet_protocols' address types, A before AAAA.
    addr_types: Vec<RecordType>,
    rbl_reply_maps: Vec<Box<dyn Map>>,
    default_rbl_reply: String,
    rbl_code: u16,
    myhostname: String,
    /// smtpd_expansion_filter: the bytes allowed in expanded values.
    filter: Vec<u8>,
    /// RBL answers, shared by the sessions of this load.
    rbl_cache: rbl::RblCache,
}

impl std::fmt::Debug for DnsChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsChecks")
            .field("dns", &self.dns)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DnsChecks {
    /// Reads rbl_reply_maps (opened now), default_rbl_reply, maps_rbl_reject_code,
    /// smtpd_expansion_filter, myhostname and inet_protocols in `service`'s name space.
    pub fn from_config(config: &Config, service: Option<&Service>) -> Result<Self, PolicyError> {
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
        let code_text = get("maps_rbl_reject_code")?;
        let rbl_code = code_text
            .trim()
            .parse()
            .map_err(|_| bad("maps_rbl_reject_code", &code_text))?;
        let maps_text = get("rbl_reply_maps")?;
        let flags = tern_maps::OpenFlags::default();
        let mut rbl_reply_maps = Vec::new();
        for spec in
            tern_config::list::split(&maps_text).map_err(|_| bad("rbl_reply_maps", &maps_text))?
        {
            let map = tern_maps::open(&spec, &flags)
                .map_err(|e| bad("rbl_reply_maps", &format!("{spec}: {e}")))?;
            rbl_reply_maps.push(map);
        }
        let protocols = get("inet_protocols")?.to_ascii_lowercase();
        let addr_types = match protocols.as_str() {
            "all" => vec![RecordType::A, RecordType::AAAA],
            p => {
                let mut t = Vec::new();
                if p.contains("ipv4") {
                    t.push(RecordType::A);
                }
                if p.contains("ipv6") {
                    t.push(RecordType::AAAA);
                }
                t
            }
        };
        // smtpd_expansion_filter is not in every registry: Postfix's default then.
        let filter = config
            .lookup_value("smtpd_expansion_filter", service)
            .map_or_else(default_filter, |v| unescape(&v));
        Ok(DnsChecks {
            dns: Arc::new(DnsClient::from_env()),
            timeout: QUERY_TIMEOUT,
            addr_types,
            rbl_reply_maps,
            default_rbl_reply: get("default_rbl_reply")?,
            rbl_code,
            myhostname: get("myhostname")?,
            filter,
            rbl_cache: rbl::RblCache::default(),
        })
    }

    /// The same checks asking `server` alone (tests; the daemon reads `TERN_DNS_SERVER`).
    #[must_use]
    pub fn with_server(mut self, server: std::net::SocketAddr) -> Self {
        self.dns = Arc::new(DnsClient::new(Some(server)));
        self.rbl_cache = rbl::RblCache::default();
        self
    }

    /// The same checks with another time bound per query (tests).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One type: the records' status as dns_lookup() gives it (OK, or the failure).
    async fn status_of(&self, name: &str, rtype: RecordType) -> Result<(), Status> {
        if rtype == RecordType::MX {
            let mut warnings = Vec::new();
            return client::lookup_mx(&self.dns, name, self.timeout, &mut warnings)
                .await
                .map(|_| ())
                .map_err(|f| f.status);
        }
        client::lookup_addrs(&self.dns, name, &[rtype], self.timeout)
            .await
            .map(|_| ())
            .map_err(|f| f.status)
    }

    /// dns_lookup_l(): the types in order, stopping as `stop` says; the result of highest
    /// precedence (the last of equal ones).
    async fn lookup_l(
        &self,
        name: &str,
        types: &[RecordType],
        stop: impl Fn(Result<(), Status>, RecordType) -> bool,
    ) -> Result<(), Status> {
        let mut best: Option<Result<(), Status>> = None;
        for &rtype in types {
            let r = self.status_of(name, rtype).await;
            if r.is_ok() || stop(r, rtype) {
                return r;
            }
            if best.is_none_or(|b| rank(r) >= rank(b)) {
                best = Some(r);
            }
        }
        best.unwrap_or(Err(Status::NotFound))
    }

    /// reject_unknown_helo_hostname: A, AAAA, then MX; found at the first with records.
    /// A null MX counts as found ("Allow MTA names to have nullMX records").
    pub async fn host(&self, name: &str) -> HostLookup {
        let types = [RecordType::A, RecordType::AAAA, RecordType::MX];
        match self.lookup_l(name, &types, |_, _| false).await {
            Ok(()) | Err(Status::NullMx) => HostLookup::Found,
            Err(s) => lookup_outcome(s),
        }
    }

    /// reject_unknown_sender_domain / reject_unknown_recipient_domain: MX, then A and
    /// AAAA; a null MX or a malformed MX reply ends the search.
    pub async fn mailhost(&self, name: &str) -> HostLookup {
        let types = [RecordType::MX, RecordType::A, RecordType::AAAA];
        let stop = |r: Result<(), Status>, _| matches!(r, Err(Status::Inval | Status::NullMx));
        match self.lookup_l(name, &types, stop).await {
            Ok(()) => HostLookup::Found,
            Err(Status::NullMx) => HostLookup::NullMx,
            Err(s) => lookup_outcome(s),
        }
    }

    /// check_server_access()'s hosts for `name` (an address or a domain), as the engine
    /// walks them.
    pub async fn servers(&self, name: &str, kind: ServerKind) -> ServerList {
        match self.server_lookup(name, kind).await {
            ServerLookup::Servers(list) => ServerList::Hosts(
                list.into_iter()
                    .map(|s| (s.host, s.addrs.unwrap_or_default()))
                    .collect(),
            ),
            ServerLookup::Dunno(Some(w)) if w.ends_with(", try again") => ServerList::TempFail,
            ServerLookup::Literal(_) | ServerLookup::Dunno(_) => ServerList::Dunno,
        }
    }

    /// check_server_access()'s list for `name` (an address or a domain), with the
    /// warnings Postfix logs.
    pub async fn server_lookup(&self, name: &str, kind: ServerKind) -> ServerLookup {
        let domain = name.rsplit_once('@').map_or(name, |(_, d)| d);
        if let Some(inner) = domain.strip_prefix('[') {
            // "Treat an address literal as its own MX server"; no NS equivalent.
            if kind == ServerKind::Ns {
                return ServerLookup::Dunno(None);
            }
            let bare = inner.strip_suffix(']').unwrap_or("");
            let bare = bare.strip_prefix("IPv6:").unwrap_or(bare);
            return match bare.parse::<IpAddr>() {
                Ok(ip) => ServerLookup::Literal(ip),
                Err(_) => ServerLookup::Dunno(None),
            };
        }
        let hosts = match kind {
            ServerKind::A => vec![domain.to_owned()],
            ServerKind::Mx => match self.server_names(domain, RecordType::MX).await {
                Ok(h) => h,
                Err(Status::NullMx) => return ServerLookup::Dunno(None),
                Err(Status::NotFound) => vec![domain.to_owned()],
                Err(s) => return ServerLookup::Dunno(Some(unable(kind, domain, s))),
            },
            ServerKind::Ns => {
                let mut at = domain;
                loop {
                    match self.server_names(at, RecordType::NS).await {
                        Ok(h) => break h,
                        Err(Status::NotFound) => {}
                        Err(s) => return ServerLookup::Dunno(Some(unable(kind, at, s))),
                    }
                    // The parent domain, while one with a label is left.
                    match at.split_once('.') {
                        Some((_, parent)) if !parent.is_empty() => at = parent,
                        _ => {
                            return ServerLookup::Dunno(Some(unable(kind, name, Status::NotFound)));
                        }
                    }
                }
            }
        };
        let mut servers = Vec::new();
        for host in hosts {
            if let Ok(ip) = host.parse::<IpAddr>() {
                servers.push(Server {
                    host,
                    numeric: true,
                    addrs: Ok(vec![ip]),
                });
                continue;
            }
            let addrs = client::lookup_addrs(&self.dns, &host, &self.addr_types, self.timeout)
                .await
                .map_err(|f| gai_text(&f));
            servers.push(Server {
                host,
                numeric: false,
                addrs,
            });
        }
        ServerLookup::Servers(servers)
    }

    /// dns_lookup(domain, T_MX): the MX records (preference and host), for
    /// permit_mx_backup.
    pub async fn mx_records(&self, domain: &str) -> Result<Vec<client::Mx>, Status> {
        let mut warnings = Vec::new();
        client::lookup_mx(&self.dns, domain, self.timeout, &mut warnings)
            .await
            .map_err(|f| f.status)
    }

    /// The addresses of `host` of inet_protocols' families (A before AAAA); the
    /// failure as getaddrinfo's text (gai_strerror()) and the DNS status.
    pub async fn host_addrs(&self, host: &str) -> Result<Vec<IpAddr>, (String, Status)> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        client::lookup_addrs(&self.dns, host, &self.addr_types, self.timeout)
            .await
            .map_err(|f| (gai_text(&f), f.status))
    }

    /// The MX or NS host names of `domain`.
    async fn server_names(&self, domain: &str, rtype: RecordType) -> Result<Vec<String>, Status> {
        if rtype == RecordType::MX {
            let mut warnings = Vec::new();
            return client::lookup_mx(&self.dns, domain, self.timeout, &mut warnings)
                .await
                .map(|mx| mx.into_iter().map(|m| m.host).collect())
                .map_err(|f| f.status);
        }
        if domain.parse::<IpAddr>().is_ok()
            || tern_client::nexthop::parse::valid_hostname(domain, true).is_err()
        {
            return Err(Status::NotFound);
        }
        match self.dns.query(domain, rtype, self.timeout).await {
            Ok(records) => Ok(records
                .iter()
                .filter_map(|r| match r {
                    RData::NS(ns) => Some(ns.0.to_ascii().trim_end_matches('.').to_owned()),
                    _ => None,
                })
                .collect()),
            Err(e) => Err(match e {
                client::QueryError::HostNotFound | client::QueryError::NoData => Status::NotFound,
                client::QueryError::TryAgain => Status::Retry,
                client::QueryError::NoRecovery => Status::Fail,
            }),
        }
    }
}

/// dns_lookup_rv()'s precedence: OK above every failure, then retry > malformed > fail >
/// null MX > not found (dns.h's values).
fn rank(r: Result<(), Status>) -> u8 {
    match r {
        Ok(()) => 9,
        Err(Status::Retry) => 5,
        Err(Status::Inval) => 4,
        Err(Status::Fail) => 3,
        Err(Status::NullMx) => 2,
        Err(Status::NotFound) => 1,
    }
}

fn lookup_outcome(s: Status) -> HostLookup {
    match s {
        Status::Retry => HostLookup::TempFail,
        Status::Inval => HostLookup::Malformed,
        Status::NullMx => HostLookup::NullMx,
        Status::NotFound | Status::Fail => HostLookup::NotFound,
    }
}

/// `Unable to look up MX host for DOMAIN: TEXT` (dns_strerror(h_errno)).
fn unable(kind: ServerKind, domain: &str, s: Status) -> String {
    format!(
        "Unable to look up {} host for {domain}: {}",
        kind.type_name(),
        dns_text(s)
    )
}

/// dns_strerror(h_errno) for a lookup's status.
pub fn dns_text(s: Status) -> &'static str {
    match s {
        Status::NotFound | Status::NullMx => "Host not found",
        Status::Retry => "Host not found, try again",
        Status::Fail | Status::Inval => "Non-recoverable error",
    }
}

/// getaddrinfo(3)'s text for a failed address lookup (gai_strerror()).
fn gai_text(f: &Failed) -> String {
    match f.status {
        Status::Retry => "Temporary failure in name resolution",
        Status::NotFound
            if f.text
                .ends_with(": Host found but no data record of requested type") =>
        {
            "No address associated with hostname"
        }
        Status::NotFound | Status::NullMx => "Name or service not known",
        Status::Fail | Status::Inval => "Non-recoverable failure in name resolution",
    }
    .to_owned()
}

/// smtpd_expansion_filter's default: tab, space and the printable ASCII characters.
fn default_filter() -> Vec<u8> {
    let mut f = vec![b'\t'];
    f.extend(0x20u8..=0x7e);
    f
}

/// Postfix's escape(): `\t`, `\n`, `\\`, octal `\NNN`; other text as is.
fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        match b[i] {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                let mut n = 0;
                while n < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(u8::try_from(v & 0xff).unwrap_or(b'_'));
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Lookup for the reply template: the RBL names, then smtpd_expand_lookup()'s.
struct TemplateLookup<'a> {
    checks: &'a DnsChecks,
    ctx: &'a RblContext<'a>,
    domain: &'a str,
    what: &'a str,
    txt: &'a str,
}

impl Lookup for TemplateLookup<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        let ctx = self.ctx;
        let value = match name {
            "rbl_code" => self.checks.rbl_code.to_string(),
            "rbl_domain" => self.domain.to_owned(),
            "rbl_reason" | "rbl_txt" => self.txt.to_owned(),
            "rbl_what" => self.what.to_owned(),
            "rbl_class" => ctx.class.to_owned(),
            "server_name" => self.checks.myhostname.clone(),
            "client" => format!("{}[{}]", ctx.client_name, ctx.client_address),
            "client_address" => ctx.client_address.to_owned(),
            "client_name" => ctx.client_name.to_owned(),
            "reverse_client_name" => ctx.reverse_client_name.to_owned(),
            "helo_name" => ctx.helo_name.to_owned(),
            n => {
                if let Some(suffix) = n.strip_prefix("sender") {
                    rbl::expand_addr(ctx.sender, suffix)?
                } else if let Some(suffix) = n.strip_prefix("recipient") {
                    rbl::expand_addr(ctx.recipient, suffix)?
                } else {
                    return None;
                }
            }
        };
        // mac_expand(): characters outside the filter become '_'.
        Some(
            value
                .chars()
                .map(|c| {
                    let ok = u8::try_from(c).is_ok_and(|b| self.checks.filter.contains(&b));
                    if ok { c } else { '_' }
                })
                .collect(),
        )
    }
}

impl DnsChecks {
    /// rbl_reject_reply(): the template for `rbl` (rbl_reply_maps, else
    /// default_rbl_reply) expanded, as (code, dsn, text), with Postfix's warning when a
    /// template is bad (then the generic `450 4.7.1 Service unavailable`, or the default
    /// template in place of a bad one from the table).
    fn reject_reply(
        &self,
        rbl: &str,
        what: &str,
        txt: &str,
        ctx: &RblContext<'_>,
    ) -> ((u16, String, String), Vec<String>) {
        let domain = rbl.split_once('=').map_or(rbl, |(d, _)| d);
        let lookup = TemplateLookup {
            checks: self,
            ctx,
            domain,
            what,
            txt,
        };
        let mut warnings = Vec::new();
        let custom = self
            .rbl_reply_maps
            .iter()
            .find_map(|m| m.lookup(rbl).ok().flatten());
        let mut expanded = None;
        if let Some(t) = custom {
            match tern_config::expand::expand(&t, &lookup, Mode::Once) {
                Ok(e) => expanded = Some(e.text),
                Err(_) => warnings.push(format!(
                    "rbl_reject_reply: bad rbl reply template for domain {rbl}: {t}"
                )),
            }
        }
        let expanded = expanded.unwrap_or_else(|| {
            tern_config::expand::expand(&self.default_rbl_reply, &lookup, Mode::Once)
                .map(|e| e.text)
                .unwrap_or_default()
        });
        let (reply, warning) = rbl::split_reply(&expanded, ctx.class);
        warnings.extend(warning);
        (reply, warnings)
    }

    /// reject_rbl_client RBL[=PATTERN]: the reply when `addr` is listed.
    /// [`DnsChecks::rbl_addr_outcome`] has the warnings too.
    pub async fn rbl_addr(
        &self,
        rbl: &str,
        addr: IpAddr,
        ctx: &RblContext<'_>,
    ) -> Option<(u16, String, String)> {
        self.rbl_addr_outcome(rbl, addr, ctx).await.reply
    }

    /// reject_rhsbl_*: the reply when the domain of `domain` (an address or a name) is
    /// listed. [`DnsChecks::rbl_domain_outcome`] has the warnings too.
    pub async fn rbl_domain(
        &self,
        rbl: &str,
        domain: &str,
        ctx: &RblContext<'_>,
    ) -> Option<(u16, String, String)> {
        self.rbl_domain_outcome(rbl, domain, ctx).await.reply
    }
}

/// An RBL lookup's result with the warnings Postfix logs: a DNS failure (`QUERY: RBL lookup error: TEXT`; the client then passes), a
/// bad reply template (`rbl response code configuration error: TEXT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RblOutcome {
    pub reply: Option<(u16, String, String)>,
    /// The lookup failed other than "not found" (dnsxl_stat_soft): an allow list then
    /// defers a later reject.
    pub soft: bool,
    pub warnings: Vec<String>,
}
