//! The lookups behind next-hop resolution, with Postfix's outcomes and texts
//! (dns/dns_lookup.c, dns_strerror.c; smtp_addr.c's native branch): MX records, A/AAAA
//! records in inet_protocols order, and the C library's getaddrinfo(3) for
//! smtp_host_lookup = native.
//!
//! [`DnsClient`] asks hickory's name-server pool directly (no cache, no search domains, no
//! /etc/hosts: Postfix's dns_lookup() asks the DNS only), the servers of /etc/resolv.conf,
//! or the one server that [`DNS_SERVER_ENV`] names (tests run dnsmasq on a loopback port).
//! Every query ends after the time the caller gives (a query cut short is a temporary
//! failure, as glibc's res_send() time-out is TRY_AGAIN).
//!
//! How glibc's resolver turns answers into h_errno, which Postfix maps to its statuses:
//! NXDOMAIN -> HOST_NOT_FOUND (`Host not found`); NOERROR without records of the type ->
//! NO_DATA (`Host found but no data record of requested type`); SERVFAIL, REFUSED, NOTIMP,
//! no answer -> TRY_AGAIN (`Host not found, try again`; res_send() moves on to the next
//! server and finally fails); any other response code -> NO_RECOVERY (`Non-recoverable
//! error`).
//!
//! # Security
//! Answers are untrusted. Names in MX records go through Postfix's valid_rr_name()
//! (valid_hostname() with a warning, numeric names passed with a warning); an MX record
//! with the root as target is a null MX (RFC 7505) whatever its preference, as Postfix
//! reads it. Nothing here panics on an answer.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer, RetryDnsHandle};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::system_conf::read_system_conf;
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

use super::parse::valid_hostname;

/// The environment variable that names the one DNS server to ask (`IP:PORT`), for tests
/// (the same variable as the daemon's client-name lookups).
pub const DNS_SERVER_ENV: &str = "TERN_DNS_SERVER";

/// One query's failure, in the C resolver's terms (h_errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// HOST_NOT_FOUND: NXDOMAIN.
    #[error("Host not found")]
    HostNotFound,
    /// NO_DATA: the name exists without records of the type.
    #[error("Host found but no data record of requested type")]
    NoData,
    /// TRY_AGAIN: SERVFAIL, REFUSED, no answer in time, no server reachable.
    #[error("Host not found, try again")]
    TryAgain,
    /// NO_RECOVERY: another response code, or no resolver configuration.
    #[error("Non-recoverable error")]
    NoRecovery,
}

/// A DNS client: hickory's name-server pool for resolv.conf's servers or the test server.
/// Share one per process (it holds the sockets); cheap to query concurrently.
pub struct DnsClient {
    server: Option<SocketAddr>,
    /// Built on first use, inside the runtime; None when resolv.conf cannot be read.
    pool: OnceLock<Option<Pool>>,
}

struct Pool {
    handle: RetryDnsHandle<NameServerPool<TokioRuntimeProvider>>,
    options: DnsRequestOptions,
}

impl std::fmt::Debug for DnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsClient")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl DnsClient {
    /// resolv.conf's servers, or the one server [`DNS_SERVER_ENV`] names.
    pub fn from_env() -> DnsClient {
        let server = std::env::var(DNS_SERVER_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok());
        DnsClient::new(server)
    }

    /// `server` (UDP, then TCP on truncation), or resolv.conf's servers when None.
    pub fn new(server: Option<SocketAddr>) -> DnsClient {
        DnsClient {
            server,
            pool: OnceLock::new(),
        }
    }

    /// One question: the answer section's records of `rtype` (never empty), within `bound`.
    /// `name` is taken as absolute.
    pub async fn query(
        &self,
        name: &str,
        rtype: RecordType,
        bound: Duration,
    ) -> Result<Vec<RData>, QueryError> {
        let pool = self
            .pool
            .get_or_init(|| build_pool(self.server))
            .as_ref()
            .ok_or(QueryError::NoRecovery)?;
        let mut qname = Name::from_ascii(name).map_err(|_| QueryError::HostNotFound)?;
        qname.set_fqdn(true);
        let lookup = pool
            .handle
            .lookup(Query::query(qname, rtype), pool.options)
            .first_answer();
        let response = match tokio::time::timeout(bound, lookup).await {
            Err(_) => return Err(QueryError::TryAgain),
            Ok(r) => r.map_err(|e| query_error(&e))?,
        };
        match response.metadata.response_code {
            ResponseCode::NoError => {}
            code => return Err(rcode_error(code)),
        }
        let records: Vec<RData> = response
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.clone())
            .collect();
        if records.is_empty() {
            return Err(QueryError::NoData);
        }
        Ok(records)
    }
}

/// The name-server pool: resolv.conf's servers and options, or the one test server.
fn build_pool(server: Option<SocketAddr>) -> Option<Pool> {
    let (config, options) = match server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            (
                ResolverConfig::from_name_servers(vec![ns]),
                ResolverOpts::default(),
            )
        }
        None => read_system_conf().ok()?,
    };
    let mut request = DnsRequestOptions::default();
    request.recursion_desired = options.recursion_desired;
    request.use_edns = options.edns0;
    let attempts = options.attempts;
    let cx = Arc::new(PoolContext::new(options, TlsConfig::new().ok()?));
    let (_, _, servers) = config.into_parts();
    let pool = NameServerPool::from_config(servers, cx, TokioRuntimeProvider::default());
    Some(Pool {
        handle: RetryDnsHandle::new(pool, attempts),
        options: request,
    })
}

/// glibc's res_nquery() mapping of a response code.
fn rcode_error(code: ResponseCode) -> QueryError {
    match code {
        ResponseCode::NXDomain => QueryError::HostNotFound,
        // res_send() tries the next server after these, and fails when none is left.
        ResponseCode::ServFail | ResponseCode::Refused | ResponseCode::NotImp => {
            QueryError::TryAgain
        }
        _ => QueryError::NoRecovery,
    }
}

/// A hickory error as h_errno.
fn query_error(e: &NetError) -> QueryError {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NoError => QueryError::NoData,
            code => rcode_error(code),
        },
        NetError::Dns(DnsError::ResponseCode(code)) => rcode_error(*code),
        // Time-outs, network errors.
        _ => QueryError::TryAgain,
    }
}

/// Postfix's dns_lookup() statuses, in its order of precedence (dns.h: a higher one wins
/// when A and AAAA are both looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// DNS_NOTFOUND: no such name or no records of the type.
    NotFound,
    /// DNS_NULLMX: the domain has a null MX.
    NullMx,
    /// DNS_FAIL: a lookup that will not succeed on retry.
    Fail,
    /// DNS_INVAL: a reply with only malformed names.
    Inval,
    /// DNS_RETRY: a temporary failure.
    Retry,
}

/// A failed dns_lookup(): the status and the reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub status: Status,
    pub text: String,
}

/// Record type names as dns_strtype() prints them.
fn type_name(rtype: RecordType) -> &'static str {
    match rtype {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::MX => "MX",
        _ => "other",
    }
}

/// dns_lookup_x()'s checks before asking: numeric and invalid names are "not found".
fn check_name(name: &str) -> Result<(), Failed> {
    if name.parse::<IpAddr>().is_ok() || valid_hostname(name, true).is_err() {
        return Err(Failed {
            status: Status::NotFound,
            text: format!("Name service error for {name}: invalid host or domain name"),
        });
    }
    Ok(())
}

/// dns_query()'s failure text and status for h_errno.
fn failed(name: &str, rtype: RecordType, e: QueryError) -> Failed {
    let status = match e {
        QueryError::HostNotFound | QueryError::NoData => Status::NotFound,
        QueryError::TryAgain => Status::Retry,
        QueryError::NoRecovery => Status::Fail,
    };
    Failed {
        status,
        text: format!(
            "Host or domain name not found. Name service error for name={name} type={}: {e}",
            type_name(rtype)
        ),
    }
}

/// An MX record: preference and target, as the record names it (no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub pref: u32,
    pub host: String,
}

/// dns_lookup(name, T_MX): the MX records in answer order; warnings about malformed or
/// numeric targets go to `warnings` (valid_rr_name()'s texts).
pub async fn lookup_mx(
    dns: &DnsClient,
    name: &str,
    bound: Duration,
    warnings: &mut Vec<String>,
) -> Result<Vec<Mx>, Failed> {
    check_name(name)?;
    let records = dns
        .query(name, RecordType::MX, bound)
        .await
        .map_err(|e| failed(name, RecordType::MX, e))?;
    let mut out = Vec::new();
    let mut malformed = false;
    for rdata in &records {
        let RData::MX(mx) = rdata else { continue };
        if mx.exchange.is_root() {
            // dns_get_rr(): "Don't even think of returning an invalid hostname".
            return Err(Failed {
                status: Status::NullMx,
                text: format!("Domain {name} does not accept mail (nullMX)"),
            });
        }
        let host = presentation(&mx.exchange);
        if host.parse::<IpAddr>().is_ok() {
            warnings.push(format!(
                "numeric domain name in resource data of MX record for {name}: {host}"
            ));
        } else if let Err(gripe) = valid_hostname(&host, true) {
            warnings.push(gripe);
            warnings.push(format!(
                "malformed domain name in resource data of MX record for {name}: {}",
                host.chars().take(100).collect::<String>()
            ));
            malformed = true;
            continue;
        }
        out.push(Mx {
            pref: u32::from(mx.preference),
            host,
        });
    }
    if out.is_empty() {
        return Err(if malformed {
            Failed {
                status: Status::Inval,
                text: format!(
                    "Name service error for name={name} type=MX: \
                     Malformed or unexpected name server reply"
                ),
            }
        } else {
            failed(name, RecordType::MX, QueryError::NoData)
        });
    }
    Ok(out)
}

/// A name as the C library's dn_expand() (ns_name_ntop()) writes it: no trailing dot,
/// `"` `.` `;` `\` `(` `)` `@` `$` escaped with a backslash, other unprintable bytes as
/// `\DDD`. (hickory's own text form escapes more, e.g. a leading hyphen.)
fn presentation(name: &Name) -> String {
    let mut out = String::new();
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        for &b in label {
            match b {
                b'"' | b'.' | b';' | b'\\' | b'(' | b')' | b'@' | b'$' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x21..=0x7e => out.push(char::from(b)),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
    }
    out
}

/// dns_lookup_v(name, inet_protocols' types): the addresses of every type in order (A
/// before AAAA); when none is found, the failure of highest precedence (the last one of
/// equal precedence, whose text Postfix keeps).
pub async fn lookup_addrs(
    dns: &DnsClient,
    name: &str,
    types: &[RecordType],
    bound: Duration,
) -> Result<Vec<IpAddr>, Failed> {
    check_name(name)?;
    let mut addrs = Vec::new();
    let mut worst: Option<Failed> = None;
    for &rtype in types {
        match dns.query(name, rtype, bound).await {
            Ok(records) => addrs.extend(records.iter().filter_map(RData::ip_addr)),
            Err(e) => {
                let f = failed(name, rtype, e);
                if worst.as_ref().is_none_or(|w| f.status >= w.status) {
                    worst = Some(f);
                }
            }
        }
    }
    if addrs.is_empty() {
        // types is never empty here (the caller checks inet_protocols), but be safe.
        return Err(worst.unwrap_or_else(|| failed(name, RecordType::A, QueryError::NoData)));
    }
    Ok(addrs)
}

/// getaddrinfo(3)'s failures, as Postfix classifies them (smtp_addr.c: RETRY_AI_ERROR,
/// DSN_NOHOST) with gai_strerror()'s text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeError {
    /// EAI_AGAIN, EAI_MEMORY, EAI_SYSTEM: worth a retry.
    pub retry: bool,
    /// EAI_AGAIN, EAI_NODATA, EAI_NONAME: the host is not found (x.4.4, else x.3.0).
    pub no_host: bool,
    pub text: String,
}

/// smtp_host_lookup = native: getaddrinfo(3) through tokio (which also reads /etc/hosts),
/// within `bound`.
pub async fn lookup_native(host: &str, bound: Duration) -> Result<Vec<IpAddr>, NativeError> {
    let again = || NativeError {
        retry: true,
        no_host: true,
        text: "Temporary failure in name resolution".to_owned(),
    };
    match tokio::time::timeout(bound, tokio::net::lookup_host((host, 0u16))).await {
        Err(_) => Err(again()),
        Ok(Ok(it)) => Ok(it.map(|sa| sa.ip()).collect()),
        Ok(Err(e)) => {
            // std reports "failed to lookup address information: <gai_strerror text>".
            let msg = e.to_string();
            let text = msg
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&msg)
                .to_owned();
            let again_text = text.contains("Temporary failure");
            let no_host = again_text
                || text.contains("Name or service not known")
                || text.contains("No address associated");
            Err(NativeError {
                retry: again_text || text.contains("Memory") || text.contains("System error"),
                no_host,
                text,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let cases = [
            (QueryError::HostNotFound, Status::NotFound, "Host not found"),
            (
                QueryError::NoData,
                Status::NotFound,
                "Host found but no data record of requested type",
            ),
            (
                QueryError::TryAgain,
                Status::Retry,
                "Host not found, try again",
            ),
            (
                QueryError::NoRecovery,
                Status::Fail,
                "Non-recoverable error",
            ),
        ];
        for (e, status, text) in cases {
            let f = failed("example.com", RecordType::MX, e);
            assert_eq!(f.status, status);
            assert_eq!(
                f.text,
                format!(
                    "Host or domain name not found. Name service error for name=example.com type=MX: {text}"
                )
            );
        }
        for name in ["192.0.2.1", "bad..name", "x!y"] {
            let f = check_name(name).expect_err(name);
            assert_eq!(f.status, Status::NotFound);
            assert_eq!(
                f.text,
                format!("Name service error for {name}: invalid host or domain name")
            );
        }
    }

    #[test]
    fn presentation_form() {
        for (labels, want) in [
            (vec![&b"-bad"[..], b"test"], "-bad.test"),
            (vec![&b"a.b"[..], b"test"], "a\\.b.test"),
            (vec![&b"sp ace"[..], b"t"], "sp\\032ace.t"),
            (vec![&b"x!y"[..]], "x!y"),
        ] {
            let name = Name::from_labels(labels).expect("name");
            assert_eq!(presentation(&name), want);
        }
    }

    #[test]
    fn rcodes() {
        for (code, want) in [
            (ResponseCode::NXDomain, QueryError::HostNotFound),
            (ResponseCode::ServFail, QueryError::TryAgain),
            (ResponseCode::Refused, QueryError::TryAgain),
            (ResponseCode::FormErr, QueryError::NoRecovery),
        ] {
            assert_eq!(rcode_error(code), want, "{code:?}");
        }
        assert!(Status::Retry > Status::Inval && Status::Inval > Status::Fail);
        assert!(Status::Fail > Status::NullMx && Status::NullMx > Status::NotFound);
    }
}
