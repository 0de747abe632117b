//! The client's hostname, found as Postfix's smtpd finds it (smtpd_peer.c,
//! smtpd_peer_sockaddr_to_hostname()): the address->name lookup (PTR), then the
//! name->address lookup of that name in the client's address family, which must list the
//! client's address ("forward-confirmed" reverse DNS). The outcome is the name that smtpd
//! logs everywhere (`connect from NAME[IP]`, `client=NAME[IP]`, the Received: header,
//! `NOQUEUE: reject: RCPT from NAME[IP]`), the unverified reverse_name, and Postfix's
//! name_status / reverse_name_status codes (2 ok, 4 temporary failure, 5 permanent
//! failure, 6 forged) that reject_unknown_client_hostname and
//! reject_unknown_reverse_client_hostname read later.
//!
//! Postfix goes through the C library (getnameinfo(3), getaddrinfo(3)); Debian's looks in
//! /etc/hosts first and then asks the DNS servers of /etc/resolv.conf (nsswitch.conf's
//! `hosts: files dns`). Tern does the same in two parts: [`Hosts`] is glibc's `files`
//! source (the first name of the first line that lists the address; every address of
//! every line that lists the name), and hickory-resolver asks the DNS. What the C
//! library would have said is kept where Postfix shows it: the getaddrinfo(3) error text
//! (`Name or service not known`, `No address associated with hostname`, `Temporary
//! failure in name resolution`) in `warning: hostname X does not resolve to address Y: ...`,
//! and glibc's check of PTR names (labels of letters, digits, `-` and `_`, not starting with
//! `-`), which makes a bad name fail silently before Postfix's own valid_hostname() sees it.
//!
//! The outcomes, with Postfix 3.7's log lines (all logged before `connect from`):
//! - smtpd_peername_lookup = no: `unknown`, both statuses 5, no lookup.
//! - no PTR (or a PTR name glibc refuses): `unknown`, both statuses 5 (4 when the failure
//!   was temporary), nothing logged.
//! - a numeric PTR name: `warning: numeric hostname: 1.2.3.4`, then as no PTR.
//! - a PTR name that valid_hostname() refuses: `warning: valid_hostname: ...`, then as no PTR.
//! - the name's lookup fails: `warning: hostname X does not resolve to address Y: ERROR`,
//!   `unknown`, name_status 4 for a temporary failure, else 6; reverse_name X, status 2.
//! - the name's addresses do not include the client's: `warning: hostname X does not
//!   resolve to address Y`, `unknown`, name_status 6; reverse_name X, status 2.
//! - otherwise the verified name, both statuses 2.
//!
//! Postfix 2.9 and later never log `Y: address not listed for hostname X` or `Y: hostname
//! X verification failed` (RELEASE_NOTES-2.9, [Incompat 20110219]): those were replaced by
//! the `does not resolve to address` line.
//!
//! Time: the C library waits as resolv.conf says (5 s a try, 2 tries, per server); here the
//! two lookups of one client together end after [`LOOKUP_BOUND`] (10 s), and a lookup cut
//! short counts as a temporary failure (`Temporary failure in name resolution`). The
//! lookups are async: a slow DNS server holds up only its own client's greeting.
//!
//! Tests: the environment variable [`DNS_SERVER_ENV`] (`TERN_DNS_SERVER=127.0.0.1:5353`),
//! read when the configuration is loaded, points the DNS part at one server (UDP and TCP on
//! that address and port) instead of resolv.conf's, so that tests can run a DNS server on a
//! loopback port. It is not a main.cf parameter and `postconf` does not show it; /etc/hosts
//! is still read first.
//!
//! # Security
//! The DNS answers are untrusted: the client controls its PTR records. A name enters the
//! log and the headers only when its own A/AAAA records list the client's address, after
//! glibc's character check and Postfix's valid_hostname() (no numeric names, which could
//! pass for an address in access checks; labels of at most 63 bytes, names of at most 255).
//! Nothing here panics on any answer.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tern_client::nexthop::{DnsClient, QueryError};
use tokio::time::{Instant, timeout_at};

/// The most time both lookups of one client take together.
pub const LOOKUP_BOUND: Duration = Duration::from_secs(10);

/// The environment variable that names the one DNS server to ask (`IP:PORT`), for tests.
pub use tern_client::nexthop::DNS_SERVER_ENV;

/// Postfix's name for a client whose name is not known or not verified (smtpd.h,
/// CLIENT_NAME_UNKNOWN).
pub const UNKNOWN: &str = "unknown";

/// What a name means (smtpd.h: SMTPD_PEER_CODE_OK, _TEMP, _PERM, _FORGED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameStatus {
    /// The lookups succeeded (and, for the verified name, matched).
    Ok,
    /// A lookup failed in a way that may pass (reject_unknown_* answer 450).
    Temporary,
    /// A lookup failed for good, or the lookup was turned off.
    Permanent,
    /// The name's addresses do not include the client's, or the name does not resolve.
    Forged,
}

impl NameStatus {
    /// Postfix's number for the status (2, 4, 5, 6).
    pub fn code(self) -> u8 {
        match self {
            NameStatus::Ok => 2,
            NameStatus::Temporary => 4,
            NameStatus::Permanent => 5,
            NameStatus::Forged => 6,
        }
    }
}

/// The outcome of the lookups for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerName {
    /// The verified name, or `unknown`.
    pub name: String,
    pub name_status: NameStatus,
    /// The PTR name even when it was not verified, or `unknown`.
    pub reverse_name: String,
    pub reverse_name_status: NameStatus,
    /// The warnings Postfix logs on the way (without `warning: `), in order.
    pub warnings: Vec<String>,
}

/// A failed lookup, as the C library reports it (glibc's gai_strerror(3) texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// EAI_NONAME: the name does not exist (NXDOMAIN), or glibc refused the answer.
    #[error("Name or service not known")]
    NoName,
    /// EAI_NODATA: the name exists without addresses of the family asked for.
    #[error("No address associated with hostname")]
    NoData,
    /// EAI_AGAIN: no answer in time, SERVFAIL, REFUSED, no server reachable.
    #[error("Temporary failure in name resolution")]
    Again,
}

impl LookupError {
    /// smtpd_peer.c's TEMP_AI_ERROR().
    pub fn is_temporary(self) -> bool {
        self == LookupError::Again
    }
}

impl PeerName {
    /// `unknown` with both statuses `status` (lookups off, or no usable PTR name).
    pub fn unknown(status: NameStatus, warnings: Vec<String>) -> PeerName {
        PeerName {
            name: UNKNOWN.to_owned(),
            name_status: status,
            reverse_name: UNKNOWN.to_owned(),
            reverse_name_status: status,
            warnings,
        }
    }
}

/// The sans-IO rules: what the reverse lookup's answer means. `from_dns` applies glibc's
/// check of PTR names (names from /etc/hosts skip it, as in glibc). Returns the name to
/// confirm, or the final outcome.
pub fn judge_reverse(
    answer: Result<String, LookupError>,
    from_dns: bool,
) -> Result<String, PeerName> {
    let raw = match answer {
        Ok(n) => n,
        Err(e) => {
            let status = if e.is_temporary() {
                NameStatus::Temporary
            } else {
                NameStatus::Permanent
            };
            return Err(PeerName::unknown(status, Vec::new()));
        }
    };
    if from_dns && !glibc_hostname_ok(&raw) {
        return Err(PeerName::unknown(NameStatus::Permanent, Vec::new()));
    }
    // The C library returns names without the root's trailing dot.
    let name = raw.strip_suffix('.').unwrap_or(&raw).to_owned();
    // myaddrinfo.c, sockaddr_to_hostname(): numeric names are refused, then
    // valid_hostname() with its complaints.
    if name.parse::<IpAddr>().is_ok() {
        let warnings = vec![format!("numeric hostname: {name}")];
        return Err(PeerName::unknown(NameStatus::Permanent, warnings));
    }
    if let Err(complaint) = valid_hostname(&name) {
        return Err(PeerName::unknown(NameStatus::Permanent, vec![complaint]));
    }
    Ok(name)
}

/// The sans-IO rules: the outcome once the name's addresses (of the client's family) are
/// known (smtpd_peer.c: "Reject the hostname if it does not list the peer address").
pub fn judge_forward(ip: IpAddr, name: &str, answer: Result<Vec<IpAddr>, LookupError>) -> PeerName {
    let mut out = PeerName {
        name: name.to_owned(),
        name_status: NameStatus::Ok,
        reverse_name: name.to_owned(),
        reverse_name_status: NameStatus::Ok,
        warnings: Vec::new(),
    };
    match answer {
        Err(e) => {
            out.warnings.push(format!(
                "hostname {name} does not resolve to address {ip}: {e}"
            ));
            UNKNOWN.clone_into(&mut out.name);
            out.name_status = if e.is_temporary() {
                NameStatus::Temporary
            } else {
                NameStatus::Forged
            };
        }
        Ok(addrs) if !addrs.contains(&ip) => {
            out.warnings
                .push(format!("hostname {name} does not resolve to address {ip}"));
            UNKNOWN.clone_into(&mut out.name);
            out.name_status = NameStatus::Forged;
        }
        Ok(_) => {}
    }
    out
}

/// Postfix's valid_hostname() with DO_GRIPE (util/valid_hostname.c): the complaint it
/// logs (without `warning: `) when the name is refused (no wildcard label).
pub fn valid_hostname(name: &str) -> Result<(), String> {
    tern_client::nexthop::parse::valid_hostname(name, false)
}

/// glibc's check of a PTR answer's name (resolv/res_hnok.c, binary_hnok(): letters, digits,
/// `-` and `_` in every label, and no `-` at the start of the name). A name that fails it
/// makes getnameinfo(3) fail without a word, so Postfix never sees it.
fn glibc_hostname_ok(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.starts_with('-')
        && name.split('.').all(|label| {
            label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// glibc's `files` source: /etc/hosts (hosts(5)).
#[derive(Debug, Default, Clone)]
pub struct Hosts {
    lines: Vec<(IpAddr, Vec<String>)>,
}

impl Hosts {
    /// Parses hosts(5) text; lines that do not start with an address are skipped.
    pub fn parse(text: &str) -> Hosts {
        let mut lines = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            let names: Vec<String> = fields.map(str::to_owned).collect();
            if !names.is_empty() {
                lines.push((addr, names));
            }
        }
        Hosts { lines }
    }

    /// gethostbyaddr(3) from the file: the first name of the first line with `ip`.
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.lines
            .iter()
            .find(|(a, _)| *a == ip)
            .and_then(|(_, names)| names.first())
            .map(String::as_str)
    }

    /// getaddrinfo(3) from the file: the addresses of `name` in `ip`'s family, from every
    /// line that lists it (Debian's host.conf has `multi on`); case does not matter.
    pub fn addrs_of(&self, name: &str, family_of: IpAddr) -> Vec<IpAddr> {
        self.lines
            .iter()
            .filter(|(a, names)| {
                a.is_ipv4() == family_of.is_ipv4()
                    && names.iter().any(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|(a, _)| *a)
            .collect()
    }
}

/// How long a look at /etc/hosts stays good.
const HOSTS_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The client-name resolver: /etc/hosts, then the DNS (see the module documentation).
pub struct Resolver {
    /// The one DNS server to ask, from [`DNS_SERVER_ENV`]; None: resolv.conf's.
    dns_server: Option<SocketAddr>,
    hosts_path: PathBuf,
    /// /etc/hosts as last read, and the (inode, size, mtime) it was read at: a connection
    /// costs one stat of the file, not an open, read and parse (the C library reads it
    /// on every lookup; a changed file is read again at once, so the answers are the same).
    hosts: Mutex<Option<(HostsStamp, Arc<Hosts>)>>,
    /// When /etc/hosts was last looked at: it is looked at again only [`HOSTS_RECHECK`]
    /// later (one stat per second, not one per connection).
    hosts_checked: Mutex<Option<std::time::Instant>>,
    /// The DNS part: hickory's name-server pool, as smtp(8)'s next-hop lookups use it.
    dns: DnsClient,
}

/// What identifies one version of /etc/hosts.
type HostsStamp = (u64, u64, Option<std::time::SystemTime>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("dns_server", &self.dns_server)
            .field("hosts_path", &self.hosts_path)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// /etc/hosts and resolv.conf, or the server that [`DNS_SERVER_ENV`] names.
    pub fn from_env() -> Resolver {
        let server = std::env::var(DNS_SERVER_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok());
        Resolver::new(server)
    }

    /// /etc/hosts, then `dns_server` (None: resolv.conf's servers).
    pub fn new(dns_server: Option<SocketAddr>) -> Resolver {
        Resolver {
            dns_server,
            hosts_path: PathBuf::from("/etc/hosts"),
            hosts: Mutex::new(None),
            hosts_checked: Mutex::new(None),
            dns: DnsClient::new(dns_server),
        }
    }

    /// smtpd_peer_sockaddr_to_hostname(): the client's name; `lookup` is
    /// smtpd_peername_lookup.
    pub async fn peer_name(&self, ip: IpAddr, lookup: bool) -> PeerName {
        if !lookup {
            return PeerName::unknown(NameStatus::Permanent, Vec::new());
        }
        let deadline = Instant::now() + LOOKUP_BOUND;
        let hosts = self.hosts_file();
        let (answer, from_dns) = if let Some(n) = hosts.name_of(ip) {
            (Ok(n.to_owned()), false)
        } else {
            let r = timeout_at(deadline, self.ptr(ip)).await;
            (r.unwrap_or(Err(LookupError::Again)), true)
        };
        let name = match judge_reverse(answer, from_dns) {
            Ok(n) => n,
            Err(done) => return done,
        };
        let from_file = hosts.addrs_of(&name, ip);
        let addrs = if from_file.is_empty() {
            timeout_at(deadline, self.addrs(&name, ip))
                .await
                .unwrap_or(Err(LookupError::Again))
        } else {
            Ok(from_file)
        };
        judge_forward(ip, &name, addrs)
    }

    /// /etc/hosts, parsed; read again when it changed. A blocking stat at most once per
    /// [`HOSTS_RECHECK`] (and, after a change, a read) of a small local file: not worth a
    /// thread hop. (The C library reads the file on every lookup; a change is seen here
    /// within a second.)
    fn hosts_file(&self) -> Arc<Hosts> {
        use std::os::unix::fs::MetadataExt;
        {
            let mut checked = self
                .hosts_checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fresh = checked.is_some_and(|t| t.elapsed() < HOSTS_RECHECK);
            if fresh
                && let Some((_, hosts)) = self
                    .hosts
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
            {
                return Arc::clone(hosts);
            }
            *checked = Some(std::time::Instant::now());
        }
        let stamp = std::fs::metadata(&self.hosts_path)
            .ok()
            .map(|m| (m.ino(), m.len(), m.modified().ok()));
        let mut cache = self
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (Some(stamp), Some((cached, hosts))) = (stamp, cache.as_ref())
            && stamp == *cached
        {
            return Arc::clone(hosts);
        }
        let hosts = Arc::new(
            std::fs::read_to_string(&self.hosts_path)
                .map(|t| Hosts::parse(&t))
                .unwrap_or_default(),
        );
        *cache = stamp.map(|st| (st, Arc::clone(&hosts)));
        hosts
    }

    /// The first PTR name of `ip`, as DNS text (with its trailing dot).
    async fn ptr(&self, ip: IpAddr) -> Result<String, LookupError> {
        let mut arpa = Name::from(ip);
        arpa.set_fqdn(true);
        let answers = self.query(arpa, RecordType::PTR).await?;
        answers
            .iter()
            .find_map(|data| match data {
                RData::PTR(p) => Some(p.0.to_ascii()),
                _ => None,
            })
            .ok_or(LookupError::NoData)
    }

    /// The addresses of `name` in `ip`'s family (A or AAAA; a recursive server's answer
    /// holds the CNAME chain and the addresses at its end).
    async fn addrs(&self, name: &str, ip: IpAddr) -> Result<Vec<IpAddr>, LookupError> {
        // XXX: the name is looked up as absolute; the C library would also try
        // resolv.conf's search domains for a name that does not exist as given.
        let mut fqdn = Name::from_ascii(name).map_err(|_| LookupError::NoName)?;
        fqdn.set_fqdn(true);
        let rtype = if ip.is_ipv4() {
            RecordType::A
        } else {
            RecordType::AAAA
        };
        let addrs: Vec<IpAddr> = self
            .query(fqdn, rtype)
            .await?
            .iter()
            .filter_map(RData::ip_addr)
            .filter(|a| a.is_ipv4() == ip.is_ipv4())
            .collect();
        if addrs.is_empty() {
            return Err(LookupError::NoData);
        }
        Ok(addrs)
    }

    /// One question to the DNS: the answer section's records of `rtype` (tern_client's
    /// DnsClient: hickory's name-server pool, not hickory's `Resolver`, which answers every
    /// 127.0.0.0/8 PTR and `localhost` query itself where the C library asks the DNS, so
    /// that Postfix logs `unknown[127.0.0.2]`; no cache, as the C library keeps none). The
    /// whole lookup is bounded by [`LOOKUP_BOUND`] around it.
    async fn query(&self, name: Name, rtype: RecordType) -> Result<Vec<RData>, LookupError> {
        self.dns
            .query(&name.to_ascii(), rtype, LOOKUP_BOUND)
            .await
            .map_err(|e| match e {
                QueryError::HostNotFound => LookupError::NoName,
                QueryError::NoData => LookupError::NoData,
                QueryError::TryAgain | QueryError::NoRecovery => LookupError::Again,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    #[allow(clippy::type_complexity)] // a test table
    fn reverse_answers() {
        use LookupError::{Again, NoData, NoName};
        use NameStatus::{Permanent, Temporary};
        // (answer, from DNS, name to confirm or (status, warning))
        let cases: &[(
            Result<&str, LookupError>,
            bool,
            Result<&str, (NameStatus, &str)>,
        )] = &[
            (Ok("mail.example.com."), true, Ok("mail.example.com")),
            (Ok("localhost"), false, Ok("localhost")),
            (Ok("bad_name.test."), true, Ok("bad_name.test")),
            (Err(NoName), true, Err((Permanent, ""))),
            (Err(NoData), true, Err((Permanent, ""))),
            (Err(Again), true, Err((Temporary, ""))),
            (
                Ok("1.2.3.4."),
                true,
                Err((Permanent, "numeric hostname: 1.2.3.4")),
            ),
            // glibc refuses these silently.
            (Ok("-lead.test."), true, Err((Permanent, ""))),
            (Ok("x.y\\032z.test."), true, Err((Permanent, ""))),
            // glibc lets them through; valid_hostname() complains.
            (
                Ok("a.-b.test."),
                true,
                Err((Permanent, "valid_hostname: misplaced hyphen: a.-b.test")),
            ),
            (
                Ok("123.456"),
                true,
                Err((Permanent, "valid_hostname: numeric hostname: 123.456")),
            ),
            (
                Ok("a b"),
                false,
                Err((
                    Permanent,
                    "valid_hostname: invalid character 32(decimal): a b",
                )),
            ),
        ];
        for (answer, dns, want) in cases {
            let got = judge_reverse(answer.map(str::to_owned), *dns);
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, *w),
                (Err(p), Err((status, warning))) => {
                    assert_eq!(p.name, "unknown");
                    assert_eq!(p.reverse_name, "unknown");
                    assert_eq!(p.name_status, *status, "{answer:?}");
                    assert_eq!(p.reverse_name_status, *status);
                    let w: Vec<String> = if warning.is_empty() {
                        vec![]
                    } else {
                        vec![(*warning).to_owned()]
                    };
                    assert_eq!(p.warnings, w, "{answer:?}");
                }
                (got, want) => panic!("{answer:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // a test table
    fn forward_answers() {
        use LookupError::{Again, NoData, NoName};
        use NameStatus::{Forged, Temporary};
        let v4 = ip("127.0.0.3");
        let cases: &[(Result<Vec<IpAddr>, LookupError>, &str, NameStatus, &str)] = &[
            (Ok(vec![ip("127.0.0.9"), v4]), "h.test", NameStatus::Ok, ""),
            (
                Ok(vec![ip("127.0.0.99")]),
                "unknown",
                Forged,
                "hostname h.test does not resolve to address 127.0.0.3",
            ),
            (
                Err(NoName),
                "unknown",
                Forged,
                "hostname h.test does not resolve to address 127.0.0.3: Name or service not known",
            ),
            (
                Err(NoData),
                "unknown",
                Forged,
                "hostname h.test does not resolve to address 127.0.0.3: No address associated with hostname",
            ),
            (
                Err(Again),
                "unknown",
                Temporary,
                "hostname h.test does not resolve to address 127.0.0.3: Temporary failure in name resolution",
            ),
        ];
        for (answer, name, status, warning) in cases {
            let p = judge_forward(v4, "h.test", answer.clone());
            assert_eq!(p.name, *name, "{answer:?}");
            assert_eq!(p.name_status, *status, "{answer:?}");
            assert_eq!(p.reverse_name, "h.test");
            assert_eq!(p.reverse_name_status, NameStatus::Ok);
            let w: Vec<String> = if warning.is_empty() {
                vec![]
            } else {
                vec![(*warning).to_owned()]
            };
            assert_eq!(p.warnings, w);
        }
    }

    #[test]
    fn status_codes() {
        for (s, code) in [
            (NameStatus::Ok, 2),
            (NameStatus::Temporary, 4),
            (NameStatus::Permanent, 5),
            (NameStatus::Forged, 6),
        ] {
            assert_eq!(s.code(), code);
        }
    }

    #[test]
    fn hosts_file() {
        let h = Hosts::parse(
            "# comment\n127.0.0.1 localhost runsc vm\n127.0.0.1 other\n\
             ::1 localhost ip6-localhost # trailing\n192.0.2.1\n\
             192.0.2.5 Mail.Example.com mail\n192.0.2.6 mail.example.com\nbogus line\n",
        );
        assert_eq!(h.name_of(ip("127.0.0.1")), Some("localhost"));
        assert_eq!(h.name_of(ip("::1")), Some("localhost"));
        assert_eq!(h.name_of(ip("192.0.2.1")), None);
        assert_eq!(h.name_of(ip("192.0.2.5")), Some("Mail.Example.com"));
        assert_eq!(
            h.addrs_of("localhost", ip("127.0.0.2")),
            vec![ip("127.0.0.1")]
        );
        assert_eq!(h.addrs_of("localhost", ip("::2")), vec![ip("::1")]);
        assert_eq!(
            h.addrs_of("mail.example.com", ip("192.0.2.9")),
            vec![ip("192.0.2.5"), ip("192.0.2.6")]
        );
        assert!(h.addrs_of("nothere", ip("192.0.2.9")).is_empty());
    }

    #[test]
    fn hostname_checks() {
        for (name, want) in [
            ("mail.example.com", Ok(())),
            ("under_score.test", Ok(())),
            ("", Err("valid_hostname: empty hostname".to_owned())),
            (
                "a..b",
                Err("valid_hostname: misplaced delimiter: a..b".to_owned()),
            ),
            (
                "a.",
                Err("valid_hostname: misplaced delimiter: a.".to_owned()),
            ),
            (
                "a-.b",
                Err("valid_hostname: misplaced hyphen: a-.b".to_owned()),
            ),
            (
                "1234",
                Err("valid_hostname: numeric hostname: 1234".to_owned()),
            ),
        ] {
            assert_eq!(valid_hostname(name), want, "{name}");
        }
        let long = "a".repeat(64);
        assert_eq!(
            valid_hostname(&long),
            Err(format!("valid_hostname: hostname label too long: {long}"))
        );
        let name = vec!["abc"; 65].join(".");
        assert_eq!(
            valid_hostname(&name),
            Err(format!(
                "valid_hostname: bad length 259 for {}...",
                &name[..100]
            ))
        );
    }
}
