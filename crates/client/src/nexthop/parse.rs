//! Next-hop text, as smtp(8) and lmtp(8) read it (smtp_connect.c, smtp_parse_destination();
//! util/host_port.c): the list of sites to try (the next hop, then smtp_fallback_relay), each
//! site's host, TCP port and whether the MX records are looked up, and LMTP's `unix:` and
//! `inet:` forms.
//!
//! Where the next hop comes from (relayhost, transport_maps, the recipient domain) is the
//! caller's: [`pick_nexthop`] is the relayhost-or-domain rule, and a transport_maps value
//! such as `smtp:[mx.example.com]:587` reaches this module without its `smtp:` transport
//! part (the resolver splits it off, as trivial-rewrite does). Postfix's smtp(8) itself
//! strips no prefix: "We don't add support for "unix:" or "inet:" prefixes in SMTP
//! destinations, because that would break compatibility with existing Postfix
//! configurations that have a host with such a name" (smtp_connect.c).
//!
//! # Security
//! The next hop may come from a table that a user controls (transport_maps,
//! sender_dependent_relayhost_maps): it is parsed without panics, and hosts must pass
//! valid_hostname() or be a numeric address, as host_port() requires.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

/// Which client this is: the protocol decides MX lookups, loop detection and the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// smtp(8): MX lookups unless the host is in `[]`; loop detection on port 25.
    Smtp,
    /// lmtp(8): host addresses only; `unix:/path` and `inet:host:port` next hops.
    Lmtp,
}

impl Protocol {
    /// The default of smtp_tcp_port / lmtp_tcp_port (postconf(5)).
    pub fn default_service(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "24",
        }
    }

    /// The fallback relay parameter's name, as warnings show it.
    pub fn fallback_param(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp_fallback_relay",
            Protocol::Lmtp => "lmtp_fallback_relay",
        }
    }
}

/// One TCP site: a next hop or a fallback relay, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The site as written (`[mx.example.com]:587`), which Postfix logs as the destination.
    pub text: String,
    /// The host or domain, without `[]` or `ipv6:` (`mx.example.com`, `2001:db8::1`).
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The host was written in `[]`: no MX lookup.
    pub bracketed: bool,
    /// The site comes from smtp_fallback_relay, not from the next hop.
    pub fallback: bool,
}

/// What the client connects to for one delivery request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sites {
    /// LMTP's `unix:/path`: one UNIX-domain socket, no fallback.
    Unix(PathBuf),
    /// The TCP sites in order: the next hop's (a list since Postfix 3.5), then the
    /// fallback relays.
    Inet(Vec<Site>),
}

/// A next hop that smtp(8) refuses. Postfix ends the delivery agent with `fatal: TEXT`
/// (msg_fatal); the texts are Postfix's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// host_port()'s complaint: `missing "]"`, `garbage after "]"`, `malformed IPv6
    /// address`, `missing host information`, `valid hostname or network address required`,
    /// `garbage after numerical service`.
    #[error("{problem} in server description: {destination}")]
    Syntax {
        problem: &'static str,
        destination: String,
    },
    /// A port of 0 or above 65535.
    #[error("bad network port: {service} for destination: {destination}")]
    BadPort {
        service: String,
        destination: String,
    },
    /// A service name that neither known_tcp_ports nor /etc/services lists.
    #[error("unknown service: {service}/tcp")]
    UnknownService { service: String },
    /// A next hop of separators only (Postfix panics: `null destination`).
    #[error("null destination: \"{0}\"")]
    Empty(String),
}

/// The next hop when no transport_maps entry names one: relayhost if set, else the
/// recipient's domain (postconf(5), relayhost; trivial-rewrite's default).
pub fn pick_nexthop(relayhost: &str, recipient_domain: &str) -> String {
    let relay = relayhost.trim();
    if relay.is_empty() {
        recipient_domain.to_owned()
    } else {
        relay.to_owned()
    }
}

/// The sites of one delivery request: `nexthop` (split at commas and spaces), then
/// `fallback_relay` (smtp_fallback_relay / lmtp_fallback_relay) as smtp_connect_inet()
/// appends them. `default_service` is smtp_tcp_port or lmtp_tcp_port; `known_tcp_ports`
/// is that parameter's value. Warnings come back in `warnings` (without `warning: `).
pub fn sites(
    nexthop: &str,
    fallback_relay: &str,
    protocol: Protocol,
    default_service: &str,
    known_tcp_ports: &str,
    warnings: &mut Vec<String>,
) -> Result<Sites, ParseError> {
    let mut rest = nexthop;
    if protocol == Protocol::Lmtp {
        if let Some(path) = nexthop.strip_prefix("unix:") {
            if !fallback_relay.trim().is_empty() {
                warnings.push(format!(
                    "ignoring \"{} = {}\" setting for non-TCP connections",
                    protocol.fallback_param(),
                    fallback_relay
                ));
            }
            return Ok(Sites::Unix(PathBuf::from(path)));
        }
        rest = nexthop.strip_prefix("inet:").unwrap_or(nexthop);
    }
    let primary: Vec<&str> = split_list(rest).collect();
    if primary.is_empty() {
        return Err(ParseError::Empty(nexthop.to_owned()));
    }
    let mut out = Vec::new();
    for (text, fallback) in primary
        .into_iter()
        .map(|s| (s, false))
        .chain(split_list(fallback_relay).map(|s| (s, true)))
    {
        let (host, port, bracketed) = parse_site(text, default_service, known_tcp_ports)?;
        out.push(Site {
            text: text.to_owned(),
            host,
            port,
            bracketed,
            fallback,
        });
    }
    Ok(Sites::Inet(out))
}

/// One site: host, port, and whether it was in `[]` (host_port() and
/// smtp_parse_destination()).
pub fn parse_site(
    site: &str,
    default_service: &str,
    known_tcp_ports: &str,
) -> Result<(String, u16, bool), ParseError> {
    let syntax = |problem| ParseError::Syntax {
        problem,
        destination: site.to_owned(),
    };
    let (host, service, bracketed) = if let Some(inner) = site.strip_prefix('[') {
        let (v6, inner) = match inner.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("ipv6:") => (true, &inner[5..]),
            _ => (false, inner),
        };
        let Some((host, after)) = inner.split_once(']') else {
            return Err(syntax("missing \"]\""));
        };
        let service = if after.is_empty() {
            default_service
        } else {
            let Some(s) = after.strip_prefix(':') else {
                return Err(syntax("garbage after \"]\""));
            };
            if s.is_empty() { default_service } else { s }
        };
        if v6 && host.parse::<Ipv6Addr>().is_err() {
            return Err(syntax("malformed IPv6 address"));
        }
        (host, service, true)
    } else if let Some((host, service)) = site.rsplit_once(':') {
        let service = if service.is_empty() {
            default_service
        } else {
            service
        };
        (host, service, false)
    } else {
        (site, default_service, false)
    };
    if host.is_empty() {
        return Err(syntax("missing host information"));
    }
    if service.is_empty() {
        return Err(syntax("missing service information"));
    }
    if valid_hostname(host, false).is_err() && host.parse::<IpAddr>().is_err() {
        return Err(syntax("valid hostname or network address required"));
    }
    if service != default_service
        && service.starts_with(|c: char| c.is_ascii_digit())
        && !service.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(syntax("garbage after numerical service"));
    }
    let port = service_port(service, site, known_tcp_ports)?;
    Ok((host.to_owned(), port, bracketed))
}

/// A service name or number to a TCP port: known_tcp_ports first (Postfix 3.6
/// known_tcp_ports.c, filter_known_tcp_port()), then /etc/services (getservbyname(3)).
pub fn service_port(
    service: &str,
    destination: &str,
    known_tcp_ports: &str,
) -> Result<u16, ParseError> {
    let service = known_port(service, known_tcp_ports).unwrap_or_else(|| service.to_owned());
    if !service.is_empty() && service.bytes().all(|b| b.is_ascii_digit()) {
        return match service.parse::<u32>() {
            Ok(n) if n > 0 && n < 65536 => Ok(u16::try_from(n).unwrap_or(0)),
            _ => Err(ParseError::BadPort {
                service,
                destination: destination.to_owned(),
            }),
        };
    }
    let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
    services_port(&services, &service).ok_or(ParseError::UnknownService { service })
}

/// known_tcp_ports (`lmtp=24, smtp=25, smtps=submissions=465, submission=587`): the port
/// for a name, as text.
fn known_port(service: &str, known_tcp_ports: &str) -> Option<String> {
    split_list(known_tcp_ports).find_map(|assoc| {
        let mut parts: Vec<&str> = assoc.split('=').map(str::trim).collect();
        let port = parts.pop()?;
        parts.contains(&service).then(|| port.to_owned())
    })
}

/// services(5): `name port/proto [aliases...]`, TCP only.
fn services_port(text: &str, service: &str) -> Option<u16> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let name = fields.next()?;
        let (port, proto) = fields.next()?.split_once('/')?;
        let aliases: Vec<&str> = fields.collect();
        (proto == "tcp" && (name == service || aliases.contains(&service)))
            .then(|| port.parse().ok())
            .flatten()
    })
}

/// Postfix's CHARS_COMMA_SP list splitting.
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
}

/// Postfix's valid_hostname() (util/valid_hostname.c): `Err` holds the complaint that
/// DO_GRIPE logs (without `warning: `). `wildcard` is DO_WILDCARD (`*` as the first label).
pub fn valid_hostname(name: &str, wildcard: bool) -> Result<(), String> {
    const ME: &str = "valid_hostname";
    // RFC 1035 2.3.4.
    const LABEL_LEN: usize = 63;
    const NAME_LEN: usize = 255;
    let shown: String = name.chars().take(100).collect();
    if name.is_empty() {
        return Err(format!("{ME}: empty hostname"));
    }
    let bytes = name.as_bytes();
    let (mut label_len, mut labels, mut non_numeric) = (0usize, 0usize, false);
    for (i, &ch) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        if ch.is_ascii_alphanumeric() || ch == b'_' {
            if label_len == 0 {
                labels += 1;
            }
            label_len += 1;
            if label_len > LABEL_LEN {
                return Err(format!("{ME}: hostname label too long: {shown}"));
            }
            non_numeric |= !ch.is_ascii_digit();
        } else if wildcard && ch == b'*' {
            if label_len > 0 || labels > 0 || next.is_some_and(|n| n != b'.') {
                return Err(format!("{ME}: '*' can be the first label only: {shown}"));
            }
            labels += 1;
            label_len += 1;
            non_numeric = true;
        } else if ch == b'.' {
            if label_len == 0 || next.is_none() {
                return Err(format!("{ME}: misplaced delimiter: {shown}"));
            }
            label_len = 0;
        } else if ch == b'-' {
            non_numeric = true;
            label_len += 1;
            if label_len == 1 || next.is_none() || next == Some(b'.') {
                return Err(format!("{ME}: misplaced hyphen: {shown}"));
            }
        } else {
            return Err(format!("{ME}: invalid character {ch}(decimal): {shown}"));
        }
    }
    if !non_numeric {
        return Err(format!("{ME}: numeric hostname: {shown}"));
    }
    if bytes.len() > NAME_LEN {
        return Err(format!("{ME}: bad length {} for {shown}...", bytes.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &str = "lmtp=24, smtp=25, smtps=submissions=465, submission=587";

    #[test]
    fn site_table() {
        // (site, default service, host, port, bracketed)
        let cases: &[(&str, &str, &str, u16, bool)] = &[
            ("example.com", "smtp", "example.com", 25, false),
            ("example.com:2525", "smtp", "example.com", 2525, false),
            ("example.com:", "smtp", "example.com", 25, false),
            ("[mx.example.com]", "smtp", "mx.example.com", 25, true),
            ("[mx.example.com]:587", "smtp", "mx.example.com", 587, true),
            (
                "[mx.example.com]:submission",
                "smtp",
                "mx.example.com",
                587,
                true,
            ),
            (
                "[mx.example.com]:smtps",
                "smtp",
                "mx.example.com",
                465,
                true,
            ),
            ("[mx.example.com]:", "smtp", "mx.example.com", 25, true),
            ("[192.0.2.1]", "smtp", "192.0.2.1", 25, true),
            ("[192.0.2.1]:26", "smtp", "192.0.2.1", 26, true),
            ("[ipv6:2001:db8::1]", "smtp", "2001:db8::1", 25, true),
            ("[IPv6:2001:db8::1]:24", "smtp", "2001:db8::1", 24, true),
            ("192.0.2.1", "smtp", "192.0.2.1", 25, false),
            ("lmtp.example.com", "24", "lmtp.example.com", 24, false),
            ("lmtp.example.com:lmtp", "24", "lmtp.example.com", 24, false),
        ];
        for (site, def, host, port, br) in cases {
            let got = parse_site(site, def, KNOWN).expect(site);
            assert_eq!(got, ((*host).to_owned(), *port, *br), "{site}");
        }
    }

    #[test]
    fn site_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "[mx.example.com",
                "missing \"]\" in server description: [mx.example.com",
            ),
            (
                "[mx.example.com]x",
                "garbage after \"]\" in server description: [mx.example.com]x",
            ),
            (
                "[ipv6:zz::1]",
                "malformed IPv6 address in server description: [ipv6:zz::1]",
            ),
            ("[]", "missing host information in server description: []"),
            (":25", "missing host information in server description: :25"),
            (
                "bad_host!:25",
                "valid hostname or network address required in server description: bad_host!:25",
            ),
            (
                "mx.example.com:25x",
                "garbage after numerical service in server description: mx.example.com:25x",
            ),
            (
                "mx.example.com:0",
                "bad network port: 0 for destination: mx.example.com:0",
            ),
            (
                "mx.example.com:65536",
                "bad network port: 65536 for destination: mx.example.com:65536",
            ),
            (
                "mx.example.com:nosuchservice",
                "unknown service: nosuchservice/tcp",
            ),
        ];
        for (site, want) in cases {
            let err = parse_site(site, "smtp", KNOWN).expect_err(site);
            assert_eq!(err.to_string(), *want, "{site}");
        }
    }

    #[test]
    fn site_lists() {
        let mut w = Vec::new();
        let got = sites(
            "a.example, [b.example]:26",
            "fb1.example [fb2.example]",
            Protocol::Smtp,
            "smtp",
            KNOWN,
            &mut w,
        )
        .expect("sites");
        let Sites::Inet(list) = got else {
            panic!("not inet")
        };
        let shape: Vec<(&str, &str, u16, bool, bool)> = list
            .iter()
            .map(|s| {
                (
                    s.text.as_str(),
                    s.host.as_str(),
                    s.port,
                    s.bracketed,
                    s.fallback,
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a.example", "a.example", 25, false, false),
                ("[b.example]:26", "b.example", 26, true, false),
                ("fb1.example", "fb1.example", 25, false, true),
                ("[fb2.example]", "fb2.example", 25, true, true),
            ]
        );
        assert!(w.is_empty());
        assert_eq!(
            sites(" , ", "", Protocol::Smtp, "smtp", KNOWN, &mut w).expect_err("empty"),
            ParseError::Empty(" , ".to_owned())
        );
    }

    #[test]
    fn lmtp_forms() {
        let mut w = Vec::new();
        assert_eq!(
            sites(
                "unix:/var/run/lmtp",
                "",
                Protocol::Lmtp,
                "24",
                KNOWN,
                &mut w
            ),
            Ok(Sites::Unix(PathBuf::from("/var/run/lmtp")))
        );
        assert!(w.is_empty());
        let _ = sites("unix:/s", "[fb]", Protocol::Lmtp, "24", KNOWN, &mut w);
        assert_eq!(
            w,
            vec!["ignoring \"lmtp_fallback_relay = [fb]\" setting for non-TCP connections"]
        );
        let Ok(Sites::Inet(list)) = sites(
            "inet:lmtp.example:2003",
            "",
            Protocol::Lmtp,
            "24",
            KNOWN,
            &mut w,
        ) else {
            panic!("inet")
        };
        assert_eq!(
            (list[0].host.as_str(), list[0].port),
            ("lmtp.example", 2003)
        );
        let Ok(Sites::Inet(list)) =
            sites("inet:[127.0.0.1]", "", Protocol::Lmtp, "24", KNOWN, &mut w)
        else {
            panic!("inet")
        };
        assert_eq!((list[0].host.as_str(), list[0].port), ("127.0.0.1", 24));
        // smtp(8) strips no prefix: "inet" is the host and "x" an unknown service.
        assert_eq!(
            sites("inet:x", "", Protocol::Smtp, "smtp", KNOWN, &mut w),
            Err(ParseError::UnknownService {
                service: "x".to_owned()
            })
        );
    }

    #[test]
    fn nexthop_choice() {
        for (relay, domain, want) in [
            ("", "example.com", "example.com"),
            ("  ", "example.com", "example.com"),
            ("[relay.example]:587", "example.com", "[relay.example]:587"),
        ] {
            assert_eq!(pick_nexthop(relay, domain), want);
        }
    }

    #[test]
    fn services_file() {
        let text = "# c\nsmtp\t\t25/tcp\t\tmail\nfoo 99/udp\nsubmission 587/tcp\n";
        assert_eq!(services_port(text, "mail"), Some(25));
        assert_eq!(services_port(text, "submission"), Some(587));
        assert_eq!(services_port(text, "foo"), None);
    }

    #[test]
    fn hostname_checks() {
        for (name, wild, want) in [
            ("mail.example.com", false, Ok(())),
            ("*.example.com", true, Ok(())),
            (
                "*.example.com",
                false,
                Err("valid_hostname: invalid character 42(decimal): *.example.com"),
            ),
            (
                "a.*.com",
                true,
                Err("valid_hostname: '*' can be the first label only: a.*.com"),
            ),
            (
                "a..b",
                false,
                Err("valid_hostname: misplaced delimiter: a..b"),
            ),
            ("a-.b", false, Err("valid_hostname: misplaced hyphen: a-.b")),
            ("1234", false, Err("valid_hostname: numeric hostname: 1234")),
            ("", false, Err("valid_hostname: empty hostname")),
        ] {
            assert_eq!(
                valid_hostname(name, wild),
                want.map_err(str::to_owned),
                "{name}"
            );
        }
    }
}
