//! The orders in which Postfix looks an address, domain or host up in its tables, as the
//! manual pages define them: access(5) ([`access`]), virtual(5), canonical(5),
//! relocated(5), transport(5) and aliases(5) ([`address`]).
//!
//! Each order is a pure function over a [`Search`]: one table (`&dyn Map`, as smtpd(8)
//! searches one access table at a time) or a list of tables ([`Maps`], as Postfix's
//! maps_find() searches `virtual_alias_maps` and friends: in order, first hit wins, a lookup
//! error stops the search).
//!
//! Full and partial keys: a partial key (`user@`, `@domain`, `domain`, a bare local part, a
//! parent network) is looked up only in fixed-string tables, never in `regexp:`, `pcre:` or
//! `cidr:` tables, which see only whole addresses (mail_addr_find(3), smtpd_check.c); see
//! [`KeyKind`] and [`is_fixed`].
//!
//! Case: these functions pass keys as given; fixed-string tables fold them to lower case
//! themselves ([`crate::open`]), the whole key, local part included, as Postfix does.
//!
//! Trust: addresses come from the network and may be anything; no function here fails on
//! any input. What is local (`mydestination`, ...) is the caller's knowledge, passed in.

pub mod access;
pub mod address;

use crate::{Map, MapError, Warn};

/// Whether a key is a whole address or host (looked up in every table) or a part of one
/// (looked up only in fixed-string tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Full,
    Partial,
}

/// One lookup of an order: the key and which tables see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub key: String,
    pub kind: KeyKind,
}

impl Probe {
    fn full(key: impl Into<String>) -> Probe {
        Probe {
            key: key.into(),
            kind: KeyKind::Full,
        }
    }

    fn partial(key: impl Into<String>) -> Probe {
        Probe {
            key: key.into(),
            kind: KeyKind::Partial,
        }
    }
}

/// Something keys are looked up in: one table or a list of tables.
pub trait Search {
    /// Looks `key` up in the tables that see keys of `kind`.
    fn find(&self, key: &str, kind: KeyKind) -> Result<Option<String>, MapError>;
}

/// One table, as smtpd(8) uses an access table: a partial key skips a pattern table; any
/// answer, even an empty one, is an answer.
impl Search for dyn Map + '_ {
    fn find(&self, key: &str, kind: KeyKind) -> Result<Option<String>, MapError> {
        if kind == KeyKind::Partial && !is_fixed(self) {
            return Ok(None);
        }
        self.lookup(key)
    }
}

/// A list of tables searched as Postfix's maps_find() does (global/maps.c): an empty key is
/// not looked up; the first table that has the key answers; a lookup error stops the
/// search with a warning; an empty answer is a configuration error with two warnings.
pub struct Maps<'a> {
    /// The parameter the list comes from (`virtual_alias_maps`), for warnings.
    pub title: String,
    pub maps: Vec<&'a dyn Map>,
    pub warn: Warn,
}

impl std::fmt::Debug for Maps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maps")
            .field("title", &self.title)
            .field("maps", &self.maps)
            .finish_non_exhaustive()
    }
}

impl<'a> Maps<'a> {
    pub fn new(title: &str, maps: impl IntoIterator<Item = &'a dyn Map>, warn: Warn) -> Self {
        Maps {
            title: title.to_owned(),
            maps: maps.into_iter().collect(),
            warn,
        }
    }
}

impl Search for Maps<'_> {
    fn find(&self, key: &str, kind: KeyKind) -> Result<Option<String>, MapError> {
        if key.is_empty() {
            return Ok(None);
        }
        for map in &self.maps {
            match map.find(key, kind) {
                Ok(Some(value)) if value.is_empty() => {
                    let first = format!(
                        "{} lookup of {key} returns an empty string result",
                        self.title
                    );
                    (self.warn)(&first);
                    (self.warn)(&format!(
                        "{} should return NO RESULT in case of NOT FOUND",
                        self.title
                    ));
                    return Err(MapError::Config(first));
                }
                Ok(Some(value)) => return Ok(Some(value)),
                Ok(None) => {}
                Err(err) => {
                    (self.warn)(&format!("{} lookup error for \"{key}\"", map.spec()));
                    return Err(err);
                }
            }
        }
        Ok(None)
    }
}

/// Tries `probes` in order; the first answer wins and comes back with the probe that found
/// it; a lookup error stops the search.
pub fn first_hit(
    table: &(impl Search + ?Sized),
    probes: &[Probe],
) -> Result<Option<(Probe, String)>, MapError> {
    for probe in probes {
        if let Some(value) = table.find(&probe.key, probe.kind)? {
            return Ok(Some((probe.clone(), value)));
        }
    }
    Ok(None)
}

/// Whether a table matches fixed strings (Postfix's DICT_FLAG_FIXED) and so sees partial
/// keys. Decided by type, from the table's `type:name`: pattern tables are `regexp:`,
/// `pcre:`, `cidr:` and `fail:` (dict_fail.c marks itself a pattern table); `proxy:` is its
/// inner table; `unionmap:` is its first member (dict_union.c).
pub fn is_fixed(map: &dyn Map) -> bool {
    spec_is_fixed(map.spec())
}

fn spec_is_fixed(spec: &str) -> bool {
    let (kind, name) = spec.split_once(':').unwrap_or((spec, ""));
    match kind {
        "regexp" | "pcre" | "cidr" | "fail" | "tcp" | "socketmap" | "randmap" => false,
        "proxy" => spec_is_fixed(name),
        "unionmap" | "pipemap" => crate::inline::syntax::whole_group(name)
            .and_then(|body| {
                crate::inline::syntax::tokens(body, crate::inline::syntax::COMMA_SP)
                    .first()
                    .map(|first| spec_is_fixed(first))
            })
            .unwrap_or(true),
        _ => true,
    }
}

/// How an address extension is recognized: `recipient_delimiter` (each character is a
/// delimiter), and the local parts Postfix never splits (global/split_addr.c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// recipient_delimiter; empty: no extensions.
    pub delimiters: String,
    /// owner_request_special: with `-` among the delimiters, `owner-foo` and `foo-request`
    /// are not split.
    pub owner_request_special: bool,
    /// double_bounce_sender, never split.
    pub double_bounce_sender: String,
}

impl Extension {
    /// `recipient_delimiter = delimiters` with the other parameters at their defaults.
    pub fn new(delimiters: &str) -> Extension {
        Extension {
            delimiters: delimiters.to_owned(),
            owner_request_special: true,
            double_bounce_sender: "double-bounce".to_owned(),
        }
    }

    /// Splits a local part at its first delimiter: `(user, "+foo")`, the extension keeping
    /// its delimiter. `None` when there is no delimiter, when the local part starts with
    /// one, and for postmaster, MAILER-DAEMON, the double-bounce sender, and (with `-` a
    /// delimiter and owner_request_special on) owner-* and *-request.
    pub fn split_local<'a>(&self, local: &'a str) -> Option<(&'a str, &'a str)> {
        if self.delimiters.is_empty()
            || local.eq_ignore_ascii_case("postmaster")
            || local.eq_ignore_ascii_case("MAILER-DAEMON")
            || local.to_lowercase() == self.double_bounce_sender.to_lowercase()
        {
            return None;
        }
        if self.owner_request_special && self.delimiters.contains('-') {
            let lower = local.to_ascii_lowercase();
            if lower.starts_with("owner-") || (local.len() > 8 && lower.ends_with("-request")) {
                return None;
            }
        }
        let at = local.find(|c| self.delimiters.contains(c))?;
        (at > 0).then(|| local.split_at(at))
    }

    /// An address without its extension: `(user@domain, "+foo")`, as strip_addr() does
    /// (the local part is everything before the last `@`).
    pub fn strip(&self, address: &str) -> Option<(String, String)> {
        let (local, domain) = match address.rfind('@') {
            Some(at) => address.split_at(at),
            None => (address, ""),
        };
        let (user, ext) = self.split_local(local)?;
        Some((format!("{user}{domain}"), ext.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::OpenFlags;

    #[test]
    fn extensions() {
        type Case<'a> = (&'a Extension, &'a str, Option<(&'a str, &'a str)>);
        let plus = Extension::new("+");
        let many = Extension::new("+-");
        // (delimiters, address, stripped)
        let cases: &[Case<'_>] = &[
            (
                &plus,
                "user+foo@example.com",
                Some(("user@example.com", "+foo")),
            ),
            (&plus, "user+foo+bar@x", Some(("user@x", "+foo+bar"))),
            (&plus, "user@x", None),
            (&plus, "+foo@x", None),
            (&plus, "user+@x", Some(("user@x", "+"))),
            (&plus, "user+foo", Some(("user", "+foo"))),
            // strip_addr() splits at the last '@' only.
            (&plus, "a@b+c@x", Some(("a@b@x", "+c"))),
            (&many, "user-foo@x", Some(("user@x", "-foo"))),
            (&many, "user+a-b@x", Some(("user@x", "+a-b"))),
            (&many, "owner-list@x", None),
            (&many, "list-request@x", None),
            (&plus, "owner+x@x", Some(("owner@x", "+x"))),
            // Only the whole local part "postmaster" is protected.
            (&plus, "postmaster+x@x", Some(("postmaster@x", "+x"))),
            (&plus, "postmaster@x", None),
            (&plus, "MAILER-DAEMON@x", None),
            (&Extension::new(""), "user+foo@x", None),
        ];
        for (ext, address, want) in cases {
            let got = ext.strip(address);
            let want = want.map(|(a, e)| (a.to_owned(), e.to_owned()));
            assert_eq!(got, want, "{address}");
        }
    }

    #[test]
    fn fixed_and_pattern_tables() {
        let cases = [
            ("hash:/etc/aliases", true),
            ("inline:{a=b}", true),
            ("regexp:/x", false),
            ("pcre:/x", false),
            ("cidr:/x", false),
            ("fail:x", false),
            ("proxy:hash:/x", true),
            ("proxy:pcre:/x", false),
            ("unionmap:{pcre:/x, hash:/y}", false),
            ("unionmap:{hash:/y, pcre:/x}", true),
        ];
        for (spec, want) in cases {
            assert_eq!(spec_is_fixed(spec), want, "{spec}");
        }
    }

    #[test]
    fn maps_find_semantics() {
        let open = |s: &str| crate::open(s, &OpenFlags::default()).unwrap();
        let a = open("inline:{a=1, e=}");
        let b = open("inline:{a=2, b=2}");
        let f = open("fail:x");
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        let warn: Warn = Arc::new(move |m: &str| sink.lock().unwrap().push(m.to_owned()));
        let maps = Maps::new("test_maps", [a.as_ref(), b.as_ref(), f.as_ref()], warn);
        assert_eq!(maps.find("a", KeyKind::Full).unwrap().as_deref(), Some("1"));
        assert_eq!(maps.find("B", KeyKind::Full).unwrap().as_deref(), Some("2"));
        assert_eq!(maps.find("", KeyKind::Full).unwrap(), None);
        // The fail: table is a pattern table: partial keys never reach it.
        assert_eq!(maps.find("zz", KeyKind::Partial).unwrap(), None);
        assert!(maps.find("zz", KeyKind::Full).is_err());
        assert!(matches!(
            maps.find("e", KeyKind::Full),
            Err(MapError::Config(_))
        ));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "fail:x lookup error for \"zz\"",
                "test_maps lookup of e returns an empty string result",
                "test_maps should return NO RESULT in case of NOT FOUND",
            ]
        );
    }
}
