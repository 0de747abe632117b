//! The access(5) lookup orders of smtpd(8)'s check_*_access restrictions
//! (smtpd/smtpd_check.c: check_mail_access, check_domain_access, check_addr_access).
//!
//! access(5), EMAIL ADDRESS PATTERNS: `user@domain`, then `domain` and its parents, then
//! `user@`; with an extension (`user+foo@domain`): `user+foo@domain`, `user@domain`,
//! `domain`, `user+foo@`, `user@`.
//!
//! access(5), domain parents: with `smtpd_access_maps` in parent_domain_matches_subdomains
//! (the default), `domain.tld` also matches subdomains and the lookups are
//! `sub.domain.tld`, `domain.tld`, `tld`; without it, only `.domain.tld` matches subdomains
//! and the lookups are `sub.domain.tld`, `.domain.tld`, `.tld`. A numeric host name (an IP
//! address) gets no parent lookups.
//!
//! access(5), HOST NAME/ADDRESS PATTERNS: `1.2.3.4`, `1.2.3`, `1.2`, `1`; IPv6 addresses
//! drop their last `:`-separated part each time (`2001:db8::1`, `2001:db8:`, `2001:db8`,
//! `2001`).
//!
//! Trust: addresses and names come from SMTP clients; none makes these functions fail.

use super::{Extension, Probe, Search, first_hit};
use crate::MapError;

/// The parameter name that decides the domain style of access tables.
pub const PARENT_STYLE_NAME: &str = "smtpd_access_maps";

/// Whether `name` is listed in parent_domain_matches_subdomains (`list`, the parameter's
/// value split at commas and white space, or already split).
pub fn parent_matches_subdomains(list: &[String], name: &str) -> bool {
    list.iter()
        .flat_map(|v| v.split(crate::inline::syntax::COMMA_SP))
        .any(|entry| entry.eq_ignore_ascii_case(name))
}

/// The lookups for a (resolved, fully qualified) mail address. An address without `@`
/// gets none: smtpd warns "no @domain in address" and does not look it up.
pub fn address_probes(address: &str, ext: &Extension, parent_style: bool) -> Vec<Probe> {
    let Some(at) = address.rfind('@') else {
        return Vec::new();
    };
    let domain = &address[at + 1..];
    let bare = ext.strip(address).map(|(bare, _)| bare);
    let mut probes = vec![Probe::full(address)];
    if let Some(bare) = &bare {
        probes.push(Probe::partial(bare.clone()));
    }
    probes.extend(domain_probes(domain, super::KeyKind::Partial, parent_style));
    probes.push(Probe::partial(&address[..=at]));
    if let Some(bare) = &bare
        && let Some(bare_at) = bare.rfind('@')
    {
        probes.push(Probe::partial(&bare[..=bare_at]));
    }
    probes
}

/// The lookups for a domain or host name: the name itself with `first` (a client or HELO
/// name is a full key, the domain of an address a partial one), then its parents, which are
/// partial keys. An IP address gets no parents.
pub fn domain_probes(domain: &str, first: super::KeyKind, parent_style: bool) -> Vec<Probe> {
    let mut probes = Vec::new();
    if domain.is_empty() {
        return probes;
    }
    probes.push(Probe {
        key: domain.to_owned(),
        kind: first,
    });
    if is_host_address(domain) {
        return probes;
    }
    let mut name = domain;
    // check_domain_access: the next parent starts at the next dot after the first
    // character; with parent style the dot is dropped.
    while let Some(dot) = name.bytes().skip(1).position(|b| b == b'.') {
        // `dot` counts from the second byte; a '.' is always a character boundary.
        let next = &name[dot + 1..];
        name = if parent_style { &next[1..] } else { next };
        if name.is_empty() {
            break;
        }
        probes.push(Probe::partial(name));
    }
    probes
}

/// The lookups for an IP address: the address (a full key), then each shorter prefix that
/// drops the last `.` part (IPv4) or `:` part (IPv6), as check_addr_access does with
/// split_at_right(). For an IPv6 address ending in `::` parts this includes the prefixes
/// that end in `:` and, last, the empty key when the address starts with `:`.
pub fn ip_probes(address: &str) -> Vec<Probe> {
    let delim = if address.contains(':') { ':' } else { '.' };
    let mut probes = vec![Probe::full(address)];
    let mut rest = address;
    while let Some(at) = rest.rfind(delim) {
        rest = &rest[..at];
        probes.push(Probe::partial(rest));
    }
    probes
}

/// check_mail_access: the first answer for a mail address, with the probe that found it.
pub fn find_address(
    table: &(impl Search + ?Sized),
    address: &str,
    ext: &Extension,
    parent_style: bool,
) -> Result<Option<(Probe, String)>, MapError> {
    first_hit(table, &address_probes(address, ext, parent_style))
}

/// check_namadr_access: the host name and its parents, then the address and its
/// prefixes; the name and the address are full keys.
pub fn find_client(
    table: &(impl Search + ?Sized),
    name: &str,
    address: &str,
    parent_style: bool,
) -> Result<Option<(Probe, String)>, MapError> {
    let mut probes = domain_probes(name, super::KeyKind::Full, parent_style);
    probes.extend(ip_probes(address));
    first_hit(table, &probes)
}

/// valid_hostaddr(): an IPv4 dotted quad or an IPv6 address (no brackets).
fn is_host_address(name: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::KeyKind::{Full, Partial};
    use super::*;
    use crate::{Map, OpenFlags};

    fn keys(probes: &[Probe]) -> Vec<String> {
        probes
            .iter()
            .map(|p| match p.kind {
                Full => p.key.clone(),
                Partial => format!("~{}", p.key),
            })
            .collect()
    }

    #[test]
    fn address_orders() {
        let plus = Extension::new("+");
        // (address, parent style, lookups; ~ marks a partial key)
        let cases: &[(&str, bool, &[&str])] = &[
            (
                "user@sub.example.com",
                true,
                &[
                    "user@sub.example.com",
                    "~sub.example.com",
                    "~example.com",
                    "~com",
                    "~user@",
                ],
            ),
            (
                "user@sub.example.com",
                false,
                &[
                    "user@sub.example.com",
                    "~sub.example.com",
                    "~.example.com",
                    "~.com",
                    "~user@",
                ],
            ),
            (
                "user+foo@example.com",
                true,
                &[
                    "user+foo@example.com",
                    "~user@example.com",
                    "~example.com",
                    "~com",
                    "~user+foo@",
                    "~user@",
                ],
            ),
            // valid_hostaddr() refuses the brackets, so smtpd tries "parents" of a literal.
            (
                "user@[1.2.3.4]",
                true,
                &[
                    "user@[1.2.3.4]",
                    "~[1.2.3.4]",
                    "~2.3.4]",
                    "~3.4]",
                    "~4]",
                    "~user@",
                ],
            ),
            (
                "user@1.2.3.4",
                true,
                &["user@1.2.3.4", "~1.2.3.4", "~user@"],
            ),
            ("user", true, &[]),
            (
                "@example.com",
                true,
                &["@example.com", "~example.com", "~com", "~@"],
            ),
        ];
        for (address, style, want) in cases {
            assert_eq!(
                keys(&address_probes(address, &plus, *style)),
                *want,
                "{address}"
            );
        }
    }

    #[test]
    fn host_orders() {
        let cases: &[(&str, &[&str])] = &[
            ("1.2.3.4", &["1.2.3.4", "~1.2.3", "~1.2", "~1"]),
            (
                "2001:db8::1",
                &["2001:db8::1", "~2001:db8:", "~2001:db8", "~2001"],
            ),
            ("::1", &["::1", "~:", "~"]),
        ];
        for (address, want) in cases {
            assert_eq!(keys(&ip_probes(address)), *want, "{address}");
        }
        assert_eq!(
            keys(&domain_probes("mail.example.com", Full, true)),
            ["mail.example.com", "~example.com", "~com"]
        );
        assert_eq!(
            keys(&domain_probes("example.com.", Full, true)),
            ["example.com.", "~com."]
        );
    }

    #[test]
    fn first_answer_wins() {
        let open = |s: &str| crate::open(s, &OpenFlags::default()).unwrap();
        let table = open("inline:{example.com=REJECT, user@=OK, 1.2.3=DUNNO}");
        let table: &dyn Map = table.as_ref();
        let plus = Extension::new("+");
        let hit = find_address(table, "User@Sub.Example.COM", &plus, true).unwrap();
        assert_eq!(
            hit.map(|(p, v)| (p.key, v)),
            Some(("Example.COM".into(), "REJECT".into()))
        );
        let hit = find_address(table, "user@other.org", &plus, false).unwrap();
        assert_eq!(hit.map(|(_, v)| v).as_deref(), Some("OK"));
        let hit = find_client(table, "unknown", "1.2.3.4", true).unwrap();
        assert_eq!(hit.map(|(_, v)| v).as_deref(), Some("DUNNO"));
        let style = vec!["debug_peer_list, smtpd_access_maps".to_owned()];
        assert!(parent_matches_subdomains(&style, PARENT_STYLE_NAME));
        assert!(!parent_matches_subdomains(&style, "transport_maps"));
    }
}
