//! virtual(5) alias expansion as cleanup(8) does it (cleanup_map1n.c), and the duplicate
//! filter it writes recipients through (cleanup_out_recipient.c).
//!
//! Expansion rewrites a list of addresses in place, starting with the recipient: the
//! address at the current position is looked up ([`crate::canonical::mail_addr_map`]);
//! the first address of a result replaces it and is looked up again, the others go to the
//! end of the list and are expanded when their turn comes. An address that a lookup
//! mapped to itself (case-insensitively) is remembered and never expanded again, so
//! `a@x -> a@x, b@x` delivers to both and stops. Limits (each refuses the message with
//! `451 4.6.0 Alias expansion error` and a warning that names the recipient):
//! - more than virtual_alias_expansion_limit addresses in the list:
//!   `unreasonable virtual_alias_maps map expansion size for ADDR`;
//! - virtual_alias_recursion_limit rounds at one position:
//!   `unreasonable virtual_alias_maps map nesting for ADDR`;
//! - a result address longer than virtual_alias_address_length_limit:
//!   `unreasonable virtual_alias_maps result ADDR...`;
//! - a lookup error: `virtual_alias_maps map lookup problem for ADDR` (that one is a
//!   "queue file write error").
//!
//! Trust: addresses come from the network, tables from the administrator; every loop is
//! bounded by the limits above.

use std::collections::HashSet;

use crate::canonical::{Fault, Lookup, mail_addr_map};

/// The three expansion limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub recursion: usize,
    pub expansion: usize,
    pub address_length: usize,
}

impl Default for Limits {
    /// Postfix's defaults: 1000 each.
    fn default() -> Self {
        Limits {
            recursion: 1000,
            expansion: 1000,
            address_length: 1000,
        }
    }
}

/// cleanup_map1n_internal(): the addresses `address` expands to, in order.
pub fn expand(
    l: &Lookup<'_>,
    address: &str,
    limits: Limits,
    queue_id: &str,
    warn: &dyn Fn(&str),
) -> Result<Vec<String>, Fault> {
    let mut list = vec![address.to_owned()];
    // been_here_init(0, BH_FLAG_FOLD): no size limit, case-folded.
    let mut to_self: HashSet<String> = HashSet::new();
    let title = l.title;
    let mut arg = 0;
    while arg < list.len() {
        if list.len() > limits.expansion {
            warn(&format!(
                "{queue_id}: unreasonable {title} map expansion size for {address} -- message \
                 not accepted, try again later"
            ));
            return Err(Fault::Expansion);
        }
        let mut count = 0;
        loop {
            if to_self.contains(&list[arg].to_lowercase()) {
                break;
            }
            if count >= limits.recursion {
                warn(&format!(
                    "{queue_id}: unreasonable {title} map nesting for {address} -- message not \
                     accepted, try again later"
                ));
                return Err(Fault::Expansion);
            }
            count += 1;
            match mail_addr_map(l, &list[arg], warn) {
                Ok(Some(result)) => {
                    let lhs = list[arg].to_lowercase();
                    for (i, new) in result.into_iter().enumerate() {
                        if new.len() > limits.address_length {
                            let head: String = new.chars().take(300).collect();
                            warn(&format!(
                                "{queue_id}: unreasonable {title} result {head}... -- message \
                                 not accepted, try again later"
                            ));
                            return Err(Fault::Expansion);
                        }
                        if new.to_lowercase() == lhs {
                            to_self.insert(lhs.clone());
                        }
                        if i == 0 {
                            list[arg] = new;
                        } else {
                            list.push(new);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    warn(&format!(
                        "{queue_id}: {title} map lookup problem for {address} -- message not \
                         accepted, try again later"
                    ));
                    return Err(Fault::Lookup);
                }
            }
        }
        arg += 1;
    }
    Ok(list)
}

/// The duplicate filter of one message (been_here with duplicate_filter_limit): with
/// enable_original_recipient a recipient is a duplicate only when its DSN ORCPT, NOTIFY,
/// original recipient and address are all the same (case-sensitive); without it, when
/// the address alone is. Once the filter holds `limit` entries (0: no limit) it stops
/// remembering, so later duplicates are written.
#[derive(Debug, Default)]
pub struct Dedup {
    seen: HashSet<String>,
    limit: usize,
    original: bool,
}

impl Dedup {
    pub fn new(limit: usize, enable_original_recipient: bool) -> Dedup {
        Dedup {
            seen: HashSet::new(),
            limit,
            original: enable_original_recipient,
        }
    }

    /// Whether this recipient is new (and so is written).
    pub fn first(&mut self, dsn_orcpt: &str, notify: u8, original: &str, address: &str) -> bool {
        let key = if self.original {
            format!("{dsn_orcpt}\n{notify}\n{original}\n{address}")
        } else {
            address.to_owned()
        };
        if self.seen.contains(&key) {
            return false;
        }
        if self.limit == 0 || self.seen.len() < self.limit {
            self.seen.insert(key);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_maps::OpenFlags;
    use tern_maps::query::Extension;

    fn canon(a: &str) -> String {
        if a.is_empty() || a.contains('@') {
            a.to_owned()
        } else {
            format!("{a}@origin.test")
        }
    }

    fn run(spec: &str, address: &str, limits: Limits) -> (Result<Vec<String>, Fault>, Vec<String>) {
        let table = tern_maps::open(spec, &OpenFlags::default()).expect("table");
        let table = tern_maps::query::Maps::new("t", [table.as_ref()], tern_maps::no_warnings());
        let ext = Extension::new("+");
        let l = Lookup {
            table: &table,
            title: "virtual_alias_maps",
            ext: &ext,
            is_local: &|d| d == "origin.test",
            canon: &canon,
            propagate: true,
        };
        let warnings = std::cell::RefCell::new(Vec::new());
        let r = expand(&l, address, limits, "QID", &|w| {
            warnings.borrow_mut().push(w.to_owned());
        });
        (r, warnings.into_inner())
    }

    #[test]
    fn expansion() {
        let d = Limits::default();
        // (table, address, result)
        let cases: &[(&str, &str, &[&str])] = &[
            ("inline:{a@x=b@y}", "a@x", &["b@y"]),
            ("inline:{a@x=b@y}", "z@x", &["z@x"]),
            ("inline:{ {a@x=b@y, c@z} }", "a@x", &["b@y", "c@z"]),
            // Nested: depth first at each position, additions expanded in turn.
            (
                "inline:{ {a@x=b@x, c@x}, b@x=d@x, {c@x=e@x, f@x} }",
                "a@x",
                &["d@x", "e@x", "f@x"],
            ),
            // An address that maps to itself stops there.
            ("inline:{ {a@x=a@x, b@y} }", "a@x", &["a@x", "b@y"]),
            ("inline:{ {a@x=A@X, b@y} }", "a@x", &["A@X", "b@y"]),
            // Bare names get @$myorigin; extensions propagate.
            ("inline:{a@x=bob}", "a+e@x", &["bob+e@origin.test"]),
            ("inline:{@x=@y}", "a+e@x", &["a+e@y"]),
            // The same address twice is kept twice here (the duplicate filter drops it).
            ("inline:{ {a@x=b@y, b@y} }", "a@x", &["b@y", "b@y"]),
        ];
        for (spec, address, want) in cases {
            let (got, w) = run(spec, address, d);
            assert_eq!(
                got,
                Ok(want.iter().map(|s| (*s).to_owned()).collect()),
                "{spec}"
            );
            assert!(w.is_empty(), "{spec}: {w:?}");
        }
    }

    #[test]
    fn limits() {
        let nest = "inline:{a@x=b@x, b@x=a@x}";
        let (got, w) = run(nest, "a@x", Limits::default());
        assert_eq!(got, Err(Fault::Expansion));
        assert_eq!(
            w,
            [
                "QID: unreasonable virtual_alias_maps map nesting for a@x -- message not accepted, \
              try again later"
            ]
        );
        let wide = "inline:{ {a@x=b@x, c@x, d@x} }";
        let small = Limits {
            expansion: 2,
            ..Limits::default()
        };
        let (got, w) = run(wide, "a@x", small);
        assert_eq!(got, Err(Fault::Expansion));
        assert_eq!(
            w,
            [
                "QID: unreasonable virtual_alias_maps map expansion size for a@x -- message not \
              accepted, try again later"
            ]
        );
        let (got, _) = run(
            wide,
            "a@x",
            Limits {
                expansion: 3,
                ..Limits::default()
            },
        );
        assert_eq!(got.map(|v| v.len()), Ok(3));
        let short = Limits {
            address_length: 3,
            ..Limits::default()
        };
        let (got, w) = run("inline:{a@x=long@x}", "a@x", short);
        assert_eq!(got, Err(Fault::Expansion));
        assert_eq!(
            w,
            [
                "QID: unreasonable virtual_alias_maps result long@x... -- message not accepted, \
              try again later"
            ]
        );
        let (got, w) = run("fail:x", "a@x", Limits::default());
        assert_eq!(got, Err(Fault::Lookup));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn duplicates() {
        let mut d = Dedup::new(1000, true);
        assert!(d.first("", 0, "a@x", "c@x"));
        assert!(!d.first("", 0, "a@x", "c@x"));
        assert!(d.first("", 0, "b@x", "c@x"));
        let mut d = Dedup::new(1000, false);
        assert!(d.first("", 0, "a@x", "c@x"));
        assert!(!d.first("", 0, "b@x", "c@x"));
        assert!(d.first("", 0, "b@x", "C@x"));
        let mut d = Dedup::new(1, false);
        assert!(d.first("", 0, "", "a@x"));
        assert!(d.first("", 0, "", "b@x"));
        assert!(d.first("", 0, "", "b@x"));
        assert!(!d.first("", 0, "", "a@x"));
    }
}
