//! DNS lists (smtpd_check.c: rbl_pagein, find_dnsxl_addr, find_dnsxl_domain,
//! rbl_match_addr, rbl_reject_reply): the query name, the A lookup and its reply pattern
//! (`=127.0.0.2`, `=127.0.0.[2..4]`, ip_match(3)), the TXT reason and the reply.
//!
//! # Security
//! The client address, sender and recipient domains come from the network; a domain that
//! is not a valid host name, or ends in a numeric label, is not looked up (Postfix's
//! "No IP queries" guard). TXT text is cut at 500 bytes.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::PoisonError;

use hickory_resolver::proto::rr::{RData, RecordType};
use tern_client::nexthop::dns::{self as client, Status};

use super::{DnsChecks, RblOutcome};

/// rbl_pagein()'s limit on the concatenated TXT text.
const RBL_TXT_LIMIT: usize = 500;

/// How long an RBL answer is reused. Postfix's smtpd keeps its ctable of 100 answers
/// for the life of the process (max_idle 100 s, max_use 100 sessions); the client
/// restrictions run again at each RCPT with smtpd_delay_reject, so without it every
/// recipient would cost two queries (or a time-out).
const RBL_CACHE_TTL: std::time::Duration = std::time::Duration::from_mins(1);

/// The most answers kept.
pub(super) const RBL_CACHE_SIZE: usize = 1000;

/// A listing: the A records and the TXT text.
pub(super) type Listing = (Vec<IpAddr>, String);

/// The RBL answers of one settings load: query -> (when, listing or soft failure).
pub(super) type RblCache = std::sync::Mutex<
    std::collections::HashMap<String, (std::time::Instant, Result<Option<Listing>, ()>)>,
>;

/// What rbl_reject_reply() expands besides the RBL's own names.
#[derive(Debug, Clone, Copy, Default)]
pub struct RblContext<'a> {
    /// `$rbl_class`: "Client host", "Sender address", "Recipient address", "Helo
    /// command", "Reverse client host", "Unverified Client host" (smtpd.h's
    /// SMTPD_NAME_*).
    pub class: &'a str,
    /// `$rbl_what` is given to the call; this field is kept for callers' convenience.
    pub what: &'a str,
    pub client_name: &'a str,
    pub client_address: &'a str,
    pub reverse_client_name: &'a str,
    /// Empty before HELO.
    pub helo_name: &'a str,
    /// Empty when not known yet; `<>` for the null sender.
    pub sender: &'a str,
    /// Empty when not known yet.
    pub recipient: &'a str,
}

/// smtpd_expand_addr(): `sender`, `sender_name`, `sender_domain` (and the same for
/// recipient) of `addr`; None for an unknown suffix.
pub(crate) fn expand_addr(addr: &str, suffix: &str) -> Option<String> {
    let null = addr.is_empty() || addr == "<>";
    let out = match suffix {
        "" if addr.is_empty() => String::new(),
        "" => addr.to_owned(),
        "_name" if null => if addr.is_empty() { "" } else { "<>" }.to_owned(),
        "_name" => addr.rsplit_once('@').map_or(addr, |(l, _)| l).to_owned(),
        "_domain" if null => String::new(),
        "_domain" => addr.rsplit_once('@').map_or("", |(_, d)| d).to_owned(),
        _ => return None,
    };
    Some(out)
}

/// An ip_match(3) pattern: per octet a number or `[a..b;c]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyPattern {
    octets: Vec<Vec<(u8, u8)>>,
}

impl ReplyPattern {
    /// Parses `127.0.0.2` or `127.0.0.[2..4;10]`; the error is ip_match_parse()'s
    /// complaint (fatal to Postfix: `RBL reply error: ...`).
    pub fn parse(text: &str) -> Result<ReplyPattern, String> {
        let mut octets = Vec::new();
        let mut rest = text;
        for i in 0..4 {
            let (part, after) = if let Some(inner) = rest.strip_prefix('[') {
                let end = inner
                    .find(']')
                    .ok_or_else(|| format!("missing \"]\" character in \"{text}\""))?;
                (&rest[..end + 2], &inner[end + 1..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            octets.push(
                parse_octet(part)
                    .ok_or_else(|| format!("bad address octet \"{part}\" in \"{text}\""))?,
            );
            rest = after;
            if i < 3 {
                rest = rest
                    .strip_prefix('.')
                    .ok_or_else(|| format!("need four octets in \"{text}\""))?;
            }
        }
        if !rest.is_empty() {
            return Err(format!("garbage after address in \"{text}\""));
        }
        Ok(ReplyPattern { octets })
    }

    /// ip_match_execute(): every octet of `addr` in its set.
    pub fn matches(&self, addr: std::net::Ipv4Addr) -> bool {
        addr.octets()
            .iter()
            .zip(&self.octets)
            .all(|(b, set)| set.iter().any(|&(lo, hi)| (lo..=hi).contains(b)))
    }
}

fn parse_octet(part: &str) -> Option<Vec<(u8, u8)>> {
    let num = |s: &str| -> Option<u8> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if let Some(inner) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
        let mut set = Vec::new();
        for item in inner.split(';') {
            if let Some((lo, hi)) = item.split_once("..") {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo > hi {
                    return None;
                }
                set.push((lo, hi));
            } else {
                let v = num(item)?;
                set.push((v, v));
            }
        }
        return Some(set);
    }
    num(part).map(|v| vec![(v, v)])
}

/// The reversed address: `4.3.2.1` for IPv4, 32 nibbles for IPv6.
pub(super) fn reversed(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::new();
            for b in v6.octets().iter().rev() {
                let _ = write!(out, "{:x}.{:x}.", b & 0xf, b >> 4);
            }
            out.pop();
            out
        }
    }
}

/// rbl_reject_reply()'s check and split of the expanded template: (code, dsn, text) and
/// the warning when the template does not give a 4xx/5xx code.
pub(super) fn split_reply(text: &str, class: &str) -> ((u16, String, String), Option<String>) {
    let b = text.as_bytes();
    let ok = b.len() >= 4
        && (b[0] == b'4' || b[0] == b'5')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3] == b' ';
    if !ok {
        let warning = format!("rbl response code configuration error: {text}");
        let reply = (450, "4.7.1".to_owned(), "Service unavailable".to_owned());
        return (reply, Some(warning));
    }
    let code: u16 = text[..3].parse().unwrap_or(450);
    let rest = text[4..].trim_start();
    let (dsn, rest) = match dsn_prefix(rest) {
        Some(len) => (&rest[..len], rest[len..].trim_start()),
        None => ("4.7.1", rest),
    };
    let mut dsn = dsn_fix(dsn, class);
    // smtpd_check_reject(): the DSN class follows the reply code.
    dsn.replace_range(..1, &text[..1]);
    let text = if rest.is_empty() {
        "Service unavailable".to_owned()
    } else {
        rest.to_owned()
    };
    ((code, dsn, text), None)
}

/// dsn_valid(): the length of a leading `[245].N{1,3}.N{1,3}` followed by a space or
/// the end.
fn dsn_prefix(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    if !matches!(b.first(), Some(b'2' | b'4' | b'5')) || b.get(1) != Some(&b'.') {
        return None;
    }
    let mut i = 2;
    for part in 0..2 {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            i += 1;
        }
        if i == start || (i < b.len() && b[i].is_ascii_digit()) {
            return None;
        }
        if part == 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    match b.get(i) {
        None | Some(b' ') => Some(i),
        _ => None,
    }
}

/// smtpd_dsn_fix.c's table: (micro code, as sender, as recipient).
const DSN_MAP: [(&str, &str, &str); 8] = [
    ("1", "4.1.7", "4.1.1"),
    ("2", "4.1.8", "4.1.2"),
    ("3", "4.1.7", "4.1.3"),
    ("4", "4.1.7", "4.1.4"),
    ("5", "4.1.0", "4.1.5"),
    ("6", "4.1.7", "4.1.6"),
    ("7", "4.1.7", "4.1.3"),
    ("8", "4.1.8", "4.1.2"),
];

/// smtpd_dsn_fix(): an address DSN (`X.1.Y`) made right for what is rejected.
fn dsn_fix(dsn: &str, class: &str) -> String {
    let Some(micro) = dsn.get(1..).and_then(|d| d.strip_prefix(".1.")) else {
        return dsn.to_owned();
    };
    let row = DSN_MAP.iter().find(|(m, _, _)| *m == micro);
    let fixed = match class {
        "Sender address" => row.map_or("4.1.0", |r| r.1),
        "Recipient address" => row.map_or("4.1.0", |r| r.2),
        _ => "4.0.0",
    };
    fixed.to_owned()
}

impl DnsChecks {
    /// [`DnsChecks::pagein`] through the cache: a failure's warning only when the lookup
    /// was made now (Postfix warns in rbl_pagein(), not on a cache hit).
    async fn cached_pagein(&self, query: &str) -> Result<Option<Listing>, Option<String>> {
        let now = std::time::Instant::now();
        {
            let cache = self
                .rbl_cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((at, r)) = cache.get(query)
                && now.duration_since(*at) < RBL_CACHE_TTL
            {
                return r.clone().map_err(|()| None);
            }
        }
        let r = self.pagein(query).await;
        let mut cache = self
            .rbl_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= RBL_CACHE_SIZE {
            cache.retain(|_, (at, _)| now.duration_since(*at) < RBL_CACHE_TTL);
            if cache.len() >= RBL_CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(query.to_owned(), (now, r.clone().map_err(|_| ())));
        r.map_err(Some)
    }

    /// rbl_pagein(): the A records of `query` and its TXT text; Err(warning) when the
    /// lookup fails other than "not found", Ok(None) when not listed.
    async fn pagein(&self, query: &str) -> Result<Option<Listing>, String> {
        let addrs =
            match client::lookup_addrs(&self.dns, query, &[RecordType::A], self.timeout).await {
                Ok(a) => a,
                Err(f) if f.status == Status::NotFound => return Ok(None),
                Err(f) => return Err(format!("{query}: RBL lookup error: {}", f.text)),
            };
        let mut txt = String::new();
        if let Ok(records) = self.dns.query(query, RecordType::TXT, self.timeout).await {
            let n = records.len();
            for (i, r) in records.iter().enumerate() {
                let RData::TXT(t) = r else { continue };
                // dns_get_rr(): the first character-string, unprintable bytes as spaces.
                let first = t.txt_data.first().map_or(&[][..], |d| &d[..]);
                let left = RBL_TXT_LIMIT.saturating_sub(txt.len());
                txt.extend(first.iter().take(left).map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        char::from(b)
                    } else {
                        ' '
                    }
                }));
                if i + 1 < n && RBL_TXT_LIMIT.saturating_sub(txt.len()) > 3 {
                    txt.push_str(" / ");
                }
                if txt.len() >= RBL_TXT_LIMIT {
                    break;
                }
            }
        }
        Ok(Some((addrs, txt)))
    }

    /// The lookup of `query` (the reply pattern after `=` in `rbl`), then the reply.
    async fn listed(&self, rbl: &str, query: &str, what: &str, ctx: &RblContext<'_>) -> RblOutcome {
        let pattern = match rbl.split_once('=') {
            Some((_, p)) => match ReplyPattern::parse(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    return RblOutcome {
                        reply: None,
                        soft: false,
                        warnings: vec![format!("RBL reply error: {e}")],
                    };
                }
            },
            None => None,
        };
        match self.cached_pagein(query).await {
            Err(warning) => RblOutcome {
                reply: None,
                soft: true,
                warnings: warning.into_iter().collect(),
            },
            Ok(None) => RblOutcome::default(),
            Ok(Some((addrs, txt))) => {
                let hit = pattern.is_none_or(|p| {
                    addrs
                        .iter()
                        .any(|a| matches!(a, IpAddr::V4(v4) if p.matches(*v4)))
                });
                if !hit {
                    return RblOutcome::default();
                }
                let (reply, warnings) = self.reject_reply(rbl, what, &txt, ctx);
                RblOutcome {
                    reply: Some(reply),
                    soft: false,
                    warnings,
                }
            }
        }
    }

    /// reject_rbl_client: find_dnsxl_addr() and rbl_reject_reply(), with the warning.
    pub async fn rbl_addr_outcome(
        &self,
        rbl: &str,
        addr: IpAddr,
        ctx: &RblContext<'_>,
    ) -> RblOutcome {
        let domain = rbl.split_once('=').map_or(rbl, |(d, _)| d);
        let query = format!("{}.{domain}", reversed(addr));
        let what = tern_rewrite::matchlist::addr_text(addr);
        self.listed(rbl, &query, &what, ctx).await
    }

    /// reject_rhsbl_*: find_dnsxl_domain() and rbl_reject_reply(), with the warning.
    pub async fn rbl_domain_outcome(
        &self,
        rbl: &str,
        what: &str,
        ctx: &RblContext<'_>,
    ) -> RblOutcome {
        let domain = match what.rsplit_once('@') {
            Some((_, d)) if d.starts_with('[') => return RblOutcome::default(),
            Some((_, d)) => d,
            None => what,
        };
        // "skip both RHSBL and RHSWL queries for names ending in a numerical suffix".
        let last = domain.rsplit('.').next().unwrap_or(domain);
        if domain.is_empty()
            || last.bytes().all(|b| b.is_ascii_digit())
            || tern_client::nexthop::parse::valid_hostname(domain, false).is_err()
        {
            return RblOutcome::default();
        }
        let rbl_domain = rbl.split_once('=').map_or(rbl, |(d, _)| d);
        let query = format!("{domain}.{rbl_domain}");
        self.listed(rbl, &query, what, ctx).await
    }
}
