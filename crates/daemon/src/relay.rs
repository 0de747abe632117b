//! The relay policy at RCPT TO: smtpd_relay_restrictions, then
//! smtpd_recipient_restrictions (postconf(5): "Access restrictions for mail relay
//! control ... evaluated before smtpd_recipient_restrictions").
//!
//! A minimal evaluator until trivial-rewrite's address classes (crates/rewrite) land:
//! `permit_mynetworks` (mynetworks as CIDR blocks and addresses), `reject_unauth_destination`
//! and `defer_unauth_destination` (the recipient's domain must be in mydestination,
//! relay_domains, virtual_alias_domains or virtual_mailbox_domains; an address without a
//! domain is local), `permit`, `reject`, `defer`. `permit_sasl_authenticated` never permits
//! (Tern has no SASL yet). Other restrictions are skipped. XXX: lookup tables in the
//! domain lists (`hash:...`) are skipped too.
//!
//! # Security
//! The recipient address and the client address come from the network; they are only
//! compared, never interpreted further.

use std::net::IpAddr;

use tern_smtp::Reply;

use crate::settings::SettingsError;

/// The decision about one recipient; `None` accepts it.
pub trait RelayPolicy: Send + Sync {
    fn check_recipient(&self, client: IpAddr, recipient: &str) -> Option<Reply>;
}

/// One restriction of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Restriction {
    PermitMynetworks,
    PermitSasl,
    RejectUnauth,
    DeferUnauth,
    Permit,
    Reject,
    Defer,
    Other(String),
}

/// The restriction lists and the tables they consult.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    lists: Vec<Vec<Restriction>>,
    mynetworks: Vec<(IpAddr, u8)>,
    local_domains: Vec<String>,
    relay_domains: Vec<String>,
}

impl Restrictions {
    /// Reads the lists with `get` (expanded parameter values).
    pub fn from_params(
        get: &dyn Fn(&str) -> Result<String, SettingsError>,
    ) -> Result<Self, SettingsError> {
        let mut lists = Vec::new();
        for name in ["smtpd_relay_restrictions", "smtpd_recipient_restrictions"] {
            lists.push(
                words(&get(name)?)
                    .iter()
                    .map(|w| parse_restriction(w))
                    .collect(),
            );
        }
        let mut local_domains = words(&get("mydestination")?);
        for name in ["virtual_alias_domains", "virtual_mailbox_domains"] {
            local_domains.extend(words(&get(name)?));
        }
        Ok(Self {
            lists,
            mynetworks: words(&get("mynetworks")?)
                .iter()
                .filter_map(|w| parse_cidr(w))
                .collect(),
            local_domains: lowercase(local_domains),
            relay_domains: lowercase(words(&get("relay_domains")?)),
        })
    }

    fn in_mynetworks(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        self.mynetworks
            .iter()
            .any(|&(net, bits)| cidr_contains(net, bits, client))
    }

    /// Whether mail to `recipient` may be accepted from anyone.
    fn authorized(&self, recipient: &str) -> bool {
        let Some((_, domain)) = recipient.rsplit_once('@') else {
            return true;
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let exact = |d: &String| *d == domain;
        // parent_domain_matches_subdomains lists relay_domains: `example.com` covers
        // its subdomains there; `.example.com` covers subdomains in either list.
        let sub = |d: &String| {
            let d = d.trim_start_matches('.');
            domain.ends_with(&format!(".{d}"))
        };
        self.local_domains
            .iter()
            .any(|d| exact(d) || (d.starts_with('.') && sub(d)))
            || self.relay_domains.iter().any(|d| exact(d) || sub(d))
    }
}

impl RelayPolicy for Restrictions {
    fn check_recipient(&self, client: IpAddr, recipient: &str) -> Option<Reply> {
        let reply = |text: String| Reply::parse(&text).ok();
        for list in &self.lists {
            for r in list {
                match r {
                    Restriction::PermitMynetworks if self.in_mynetworks(client) => break,
                    Restriction::Permit => break,
                    Restriction::RejectUnauth if !self.authorized(recipient) => {
                        return reply(format!("554 5.7.1 <{recipient}>: Relay access denied"));
                    }
                    Restriction::DeferUnauth if !self.authorized(recipient) => {
                        return reply(format!("454 4.7.1 <{recipient}>: Relay access denied"));
                    }
                    Restriction::Reject => {
                        return reply(format!(
                            "554 5.7.1 <{recipient}>: Recipient address rejected: Access denied"
                        ));
                    }
                    Restriction::Defer => {
                        return reply(format!(
                            "450 4.7.1 <{recipient}>: Recipient address rejected: Access denied"
                        ));
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

fn parse_restriction(word: &str) -> Restriction {
    match word.to_ascii_lowercase().as_str() {
        "permit_mynetworks" => Restriction::PermitMynetworks,
        "permit_sasl_authenticated" => Restriction::PermitSasl,
        "reject_unauth_destination" => Restriction::RejectUnauth,
        "defer_unauth_destination" => Restriction::DeferUnauth,
        "permit" => Restriction::Permit,
        "reject" => Restriction::Reject,
        "defer" => Restriction::Defer,
        other => Restriction::Other(other.to_owned()),
    }
}

/// A Postfix list: commas and/or whitespace.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn lowercase(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .filter(|d| !d.contains(':'))
        .map(|d| d.to_ascii_lowercase())
        .collect()
}

/// `127.0.0.0/8`, `[::1]/128`, `[::ffff:127.0.0.0]/104`, `192.0.2.7`.
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

/// IPv4-mapped IPv6 client addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(relay: &str, mynetworks: &str, relay_domains: &str) -> Restrictions {
        let (relay, mynetworks, relay_domains) = (
            relay.to_owned(),
            mynetworks.to_owned(),
            relay_domains.to_owned(),
        );
        Restrictions::from_params(&|n| {
            Ok(match n {
                "smtpd_relay_restrictions" => relay.clone(),
                "mynetworks" => mynetworks.clone(),
                "mydestination" => "mx.example.com, localhost".to_owned(),
                "relay_domains" => relay_domains.clone(),
                _ => String::new(),
            })
        })
        .expect("policy")
    }

    #[test]
    fn decisions() {
        let std = "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination";
        let strict = "permit_mynetworks reject_unauth_destination";
        let nets = "127.0.0.0/8 [::1]/128";
        for (list, client, rcpt, want) in [
            (std, "127.0.0.1", "a@elsewhere.org", None),
            (std, "::ffff:127.0.0.5", "a@elsewhere.org", None),
            (std, "::1", "a@elsewhere.org", None),
            (std, "192.0.2.1", "a@localhost", None),
            (std, "192.0.2.1", "a@MX.example.com.", None),
            (std, "192.0.2.1", "postmaster", None),
            (std, "192.0.2.1", "a@relay.net", None),
            (std, "192.0.2.1", "a@sub.relay.net", None),
            (
                std,
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
        ] {
            let p = policy(list, nets, "relay.net");
            let got = p.check_recipient(client.parse().expect("ip"), rcpt);
            assert_eq!(
                got.map(|r| r.to_string()).as_deref(),
                want,
                "{client} {rcpt}"
            );
        }
    }

    #[test]
    fn cidrs() {
        for (text, want) in [
            ("127.0.0.0/8", Some(("127.0.0.0", 8))),
            ("[::1]/128", Some(("::1", 128))),
            ("192.0.2.7", Some(("192.0.2.7", 32))),
            ("10.0.0.0/33", None),
            ("hash:/etc/x", None),
        ] {
            let want = want.map(|(a, b)| (a.parse().expect("ip"), b));
            assert_eq!(parse_cidr(text), want, "{text}");
        }
    }
}
