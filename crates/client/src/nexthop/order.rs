//! The order of the addresses to try, as smtp_addr.c arranges them: the random shuffle
//! (smtp_randomize_addresses, dns_rr_shuffle()), the sort by MX preference with the
//! smtp_address_preference tie-break (dns_rr_compare_pref_any/_ipv4/_ipv6), the IPv4/IPv6
//! balance within smtp_mx_address_limit (smtp_balance_inet_proto()), and the search for
//! this machine among the MX hosts (smtp_find_self(), smtp_truncate_self()).
//!
//! Pure functions on lists; the random source is passed in, so that tests can fix it.
//! Trusts nothing about the lists: any length, any preferences, any mix of families.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use super::{AddressPreference, Target};

/// A small random source, seeded from std's per-process random hasher keys (RandomState),
/// as Postfix's myrand() is seeded once per process. Not for secrets: it only spreads load
/// over equal-preference MX hosts (RFC 5321 5.1).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from RandomState and the clock.
    pub fn new() -> Rng {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        h.write_u128(now);
        Rng::seeded(h.finish())
    }

    /// A generator with a fixed seed (tests).
    pub fn seeded(seed: u64) -> Rng {
        // xorshift64* must not start at zero.
        Rng(seed | 1)
    }

    /// A number in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        // xorshift64* (Vigna): plenty for picking among a handful of MX hosts.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(x % n64).unwrap_or(0)
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

/// dns_rr_shuffle(): every permutation equally likely (Fisher-Yates).
pub fn shuffle<T>(list: &mut [T], rng: &mut Rng) {
    let len = list.len();
    for i in 0..len.saturating_sub(1) {
        let r = i + rng.below(len - i);
        list.swap(i, r);
    }
}

/// dns_rr_sort() with the comparison smtp_address_preference picks: by preference, then
/// (ipv4/ipv6) the preferred family first. Stable, as Debian's glibc qsort() is (a merge
/// sort), so that the shuffle decides among equals.
pub fn sort(list: &mut [Target], pref: AddressPreference) {
    list.sort_by_key(|t| {
        let family_rank = match (pref, t.addr) {
            (AddressPreference::Ipv4, IpAddr::V6(_)) | (AddressPreference::Ipv6, IpAddr::V4(_)) => {
                1
            }
            _ => 0,
        };
        (t.pref, family_rank)
    });
}

/// smtp_balance_inet_proto(): when both families are present and the list is longer than
/// `limit`, keep as many of each family as Postfix does (so that a destination with many
/// IPv6 addresses stays reachable over IPv4), in the same relative order.
pub fn balance(list: Vec<Target>, limit: usize) -> Vec<Target> {
    // dns_rr_list_limit (100) caps the limit, as in Postfix.
    let limit = limit.min(DNS_RR_LIST_LIMIT);
    let v4 = list.iter().filter(|t| t.addr.is_ipv4()).count();
    let v6 = list.len() - v4;
    if v4 == 0 || v6 == 0 || v4 + v6 <= limit {
        return list;
    }
    let (mut v4_target, mut v6_target) = if v6 <= limit / 2 {
        (limit - v6, v6)
    } else if v4 <= limit / 2 {
        (v4, limit - v4)
    } else {
        // Both over half: the first address's family gets the odd one.
        let first_v4 = usize::from(list.first().is_some_and(|t| t.addr.is_ipv4()));
        let v4t = usize::midpoint(limit, first_v4);
        (v4t, limit - v4t)
    };
    list.into_iter()
        .filter(|t| {
            let left = if t.addr.is_ipv4() {
                &mut v4_target
            } else {
                &mut v6_target
            };
            if *left > 0 {
                *left -= 1;
                true
            } else {
                false
            }
        })
        .collect()
}

/// Postfix's var_dns_rr_list_limit: the most records one lookup list holds.
pub const DNS_RR_LIST_LIMIT: usize = 100;

/// smtp_find_self(): the preference of the first address (in MX preference order) that is
/// one of this machine's (inet_interfaces and proxy_interfaces, as the caller lists them).
pub fn find_self(list: &[Target], local: &[IpAddr]) -> Option<u32> {
    list.iter()
        .find(|t| local.contains(&t.addr))
        .map(|t| t.pref)
}

/// smtp_truncate_self(): drop the first address with preference `pref` and everything
/// after it (the list is in preference order: this machine's MX level and all worse ones).
pub fn truncate_self(list: &mut Vec<Target>, pref: u32) {
    if let Some(i) = list.iter().position(|t| t.pref == pref) {
        list.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pref: u32, addr: &str) -> Target {
        Target {
            host: format!("h{pref}"),
            addr: addr.parse().expect("addr"),
            port: 25,
            pref,
        }
    }

    fn addrs(list: &[Target]) -> Vec<String> {
        list.iter().map(|t| t.addr.to_string()).collect()
    }

    #[test]
    fn sort_by_preference_and_family() {
        let list = vec![
            t(20, "::2"),
            t(10, "192.0.2.1"),
            t(10, "::1"),
            t(20, "192.0.2.2"),
        ];
        let cases = [
            (
                AddressPreference::Any,
                vec!["192.0.2.1", "::1", "::2", "192.0.2.2"],
            ),
            (
                AddressPreference::Ipv4,
                vec!["192.0.2.1", "::1", "192.0.2.2", "::2"],
            ),
            (
                AddressPreference::Ipv6,
                vec!["::1", "192.0.2.1", "::2", "192.0.2.2"],
            ),
        ];
        for (pref, want) in cases {
            let mut l = list.clone();
            sort(&mut l, pref);
            assert_eq!(addrs(&l), want, "{pref:?}");
        }
    }

    #[test]
    fn shuffle_reaches_every_order() {
        let base = vec![t(10, "192.0.2.1"), t(10, "192.0.2.2"), t(10, "192.0.2.3")];
        let mut seen = std::collections::HashSet::new();
        let mut rng = Rng::seeded(7);
        for _ in 0..200 {
            let mut l = base.clone();
            shuffle(&mut l, &mut rng);
            seen.insert(addrs(&l));
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn balance_table() {
        // (v4 count, v6 count, first is v4, limit, kept v4, kept v6)
        let cases = [
            (3, 3, true, 10, 3, 3),
            (8, 1, true, 5, 4, 1),
            (1, 8, false, 5, 1, 4),
            (4, 4, true, 5, 3, 2),
            (4, 4, false, 5, 2, 3),
            (0, 8, false, 5, 0, 8),
        ];
        for (v4, v6, first_v4, limit, k4, k6) in cases {
            let mut list = Vec::new();
            let (a, b) = if first_v4 { (v4, v6) } else { (v6, v4) };
            for i in 0..a {
                list.push(if first_v4 {
                    t(10, &format!("192.0.2.{i}"))
                } else {
                    t(10, &format!("::{i}"))
                });
            }
            for i in 0..b {
                list.push(if first_v4 {
                    t(10, &format!("::{i}"))
                } else {
                    t(10, &format!("192.0.2.{i}"))
                });
            }
            let out = balance(list, limit);
            let o4 = out.iter().filter(|t| t.addr.is_ipv4()).count();
            assert_eq!(
                (o4, out.len() - o4),
                (k4, k6),
                "{v4} {v6} {first_v4} {limit}"
            );
        }
    }

    #[test]
    fn self_truncation() {
        let list = vec![
            t(10, "192.0.2.1"),
            t(20, "192.0.2.2"),
            t(20, "192.0.2.9"),
            t(30, "192.0.2.3"),
        ];
        let me: Vec<IpAddr> = vec!["192.0.2.9".parse().expect("a")];
        assert_eq!(find_self(&list, &me), Some(20));
        let mut l = list.clone();
        truncate_self(&mut l, 20);
        assert_eq!(addrs(&l), vec!["192.0.2.1"]);
        assert_eq!(find_self(&list, &[]), None);
        let mut l = list;
        truncate_self(&mut l, 10);
        assert!(l.is_empty());
    }
}
