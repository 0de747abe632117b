//! The address lookup orders of virtual(5), canonical(5), relocated(5), transport(5) and
//! aliases(5) (global/mail_addr_find.c, mail_addr_map.c; trivial-rewrite's transport.c;
//! local(8)'s alias lookup).
//!
//! virtual(5), canonical(5), relocated(5) (mail_addr_find's default strategy), for
//! `user+foo@domain`: `user+foo@domain`, `user@domain`; then, only when `domain` is
//! `$myorigin`, in `$mydestination` or an interface address, `user+foo` and `user`; then
//! `@domain`. Everything after the whole address is a partial key.
//!
//! transport(5): `user+foo@domain`, `user@domain`, then `domain` and its parents
//! (`.domain` forms unless `transport_maps` is in parent_domain_matches_subdomains, which
//! it is not by default), then `*` (a full key).
//!
//! aliases(5): the local part `user+foo`, then `user`.
//!
//! When a key without the extension matched, the extension is "unmatched" and, with
//! propagate_unmatched_extensions, is put back into every address of the result
//! (`user+foo@domain` -> `other+foo@example`).
//!
//! XXX: Postfix first queries the quoted (external) form of a local part that needs RFC
//! 5322 quoting (`"a b"@x`), then the unquoted form; we query the given form only.
//! XXX: results are split at commas; Postfix parses them as RFC 822 address lists and
//! qualifies bare names with `@$myorigin` (the caller's job here).

use super::{Extension, KeyKind, Probe, Search};
use crate::MapError;

/// The parameter name that decides the domain style of transport tables.
pub const TRANSPORT_PARENT_STYLE_NAME: &str = "transport_maps";

/// Which lookups mail_addr_find() makes (its MA_FIND_* flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strategy {
    /// `user+foo@domain`.
    pub full: bool,
    /// `user@domain` (and `user` for local domains) when there is an extension.
    pub noext: bool,
    /// `user+foo`, `user` when the domain is local.
    pub localpart_if_local: bool,
    /// `user+foo@`, `user@` when the domain is local.
    pub localpart_at_if_local: bool,
    /// `@domain`.
    pub at_domain: bool,
    /// `domain` and its parents: `Some(true)` parents match subdomains (`example.com`),
    /// `Some(false)` dot-parents (`.example.com`).
    pub domain: Option<bool>,
    /// `user+foo@`, `user@` whatever the domain.
    pub localpart_at: bool,
}

impl Strategy {
    /// MA_FIND_DEFAULT: virtual(5), canonical(5), relocated(5).
    pub const DEFAULT: Strategy = Strategy {
        full: true,
        noext: true,
        localpart_if_local: true,
        localpart_at_if_local: false,
        at_domain: true,
        domain: None,
        localpart_at: false,
    };

    /// transport(5), before the `*` fallback.
    pub fn transport(parent_style: bool) -> Strategy {
        Strategy {
            full: true,
            noext: true,
            localpart_if_local: false,
            localpart_at_if_local: false,
            at_domain: false,
            domain: Some(parent_style),
            localpart_at: false,
        }
    }
}

/// What an address lookup found: the value, and the extension that the matching key did
/// not contain (with its delimiter, `+foo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub key: String,
    pub unmatched_extension: Option<String>,
}

/// One step of mail_addr_find: the probe and whether it is the unextended form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub probe: Probe,
    pub unextended: bool,
}

/// The lookups mail_addr_find() makes for `address` with `strategy`. `is_local(domain)`
/// says whether the domain is `$myorigin`, in `$mydestination`, or an interface address.
pub fn find_steps(
    address: &str,
    ext: &Extension,
    strategy: Strategy,
    is_local: &dyn Fn(&str) -> bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let step = |key: String, kind: KeyKind, unextended: bool| Step {
        probe: Probe { key, kind },
        unextended,
    };
    let stripped = if strategy.noext {
        ext.strip(address)
    } else {
        None
    };
    if strategy.full {
        steps.push(step(address.to_owned(), KeyKind::Full, false));
    }
    if let Some((bare, _)) = &stripped {
        steps.push(step(bare.clone(), KeyKind::Partial, true));
    }
    let at = address.rfind('@');
    let local_forms = |with_at: bool, steps: &mut Vec<Step>| {
        let Some(at) = at else { return };
        let cut = if with_at { at + 1 } else { at };
        steps.push(step(address[..cut].to_owned(), KeyKind::Partial, false));
        if let Some((bare, _)) = &stripped
            && let Some(bare_at) = bare.rfind('@')
        {
            let cut = if with_at { bare_at + 1 } else { bare_at };
            steps.push(step(bare[..cut].to_owned(), KeyKind::Partial, true));
        }
    };
    if let Some(at) = at
        && (strategy.localpart_if_local || strategy.localpart_at_if_local)
        && is_local(&address[at + 1..])
    {
        if strategy.localpart_if_local {
            local_forms(false, &mut steps);
        }
        if strategy.localpart_at_if_local {
            local_forms(true, &mut steps);
        }
    }
    if let Some(at) = at {
        if strategy.at_domain {
            steps.push(step(address[at..].to_owned(), KeyKind::Partial, false));
        }
        if let Some(parent_style) = strategy.domain {
            let domain = &address[at + 1..];
            // mail_addr_find makes no exception for numeric domains.
            let mut name = domain;
            while !name.is_empty() {
                steps.push(step(name.to_owned(), KeyKind::Partial, false));
                let Some(dot) = name.bytes().skip(1).position(|b| b == b'.') else {
                    break;
                };
                let next = &name[dot + 1..];
                name = if parent_style { &next[1..] } else { next };
            }
        }
    }
    if strategy.localpart_at {
        local_forms(true, &mut steps);
    }
    steps
}

/// mail_addr_find(): the first answer of [`find_steps`].
pub fn find(
    table: &(impl Search + ?Sized),
    address: &str,
    ext: &Extension,
    strategy: Strategy,
    is_local: &dyn Fn(&str) -> bool,
) -> Result<Option<Found>, MapError> {
    let extension = ext.strip(address).map(|(_, e)| e);
    for step in find_steps(address, ext, strategy, is_local) {
        if let Some(value) = table.find(&step.probe.key, step.probe.kind)? {
            return Ok(Some(Found {
                value,
                key: step.probe.key,
                unmatched_extension: if step.unextended { extension } else { None },
            }));
        }
    }
    Ok(None)
}

/// virtual(5) and canonical(5) (mail_addr_map): the addresses an address maps to. A result
/// `@other` keeps the original local part (`user+foo@domain` -> `user+foo@other`, or
/// `user@other` when `user@domain` matched); with `propagate` (the table's class is in
/// propagate_unmatched_extensions) an unmatched extension goes into every address.
pub fn map_address(
    table: &(impl Search + ?Sized),
    address: &str,
    ext: &Extension,
    is_local: &dyn Fn(&str) -> bool,
    propagate: bool,
) -> Result<Option<Vec<String>>, MapError> {
    let Some(found) = find(table, address, ext, Strategy::DEFAULT, is_local)? else {
        return Ok(None);
    };
    let mut value = found.value;
    if value.starts_with('@') {
        let local = address.rfind('@').map_or(address, |at| &address[..at]);
        let local = match &found.unmatched_extension {
            Some(e) => local.strip_suffix(e.as_str()).unwrap_or(local),
            None => local,
        };
        value = format!("{local}{value}");
    }
    let extension = if propagate {
        found.unmatched_extension.as_deref()
    } else {
        None
    };
    let addresses = value
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match extension {
            None => a.to_owned(),
            Some(e) => match a.rfind('@') {
                Some(at) => format!("{}{e}{}", &a[..at], &a[at..]),
                None => format!("{a}{e}"),
            },
        })
        .collect();
    Ok(Some(addresses))
}

/// relocated(5): the "new location" text for an address, if any.
pub fn relocated(
    table: &(impl Search + ?Sized),
    address: &str,
    ext: &Extension,
    is_local: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, MapError> {
    Ok(find(table, address, ext, Strategy::DEFAULT, is_local)?.map(|f| f.value))
}

/// transport(5): the `transport:nexthop` entry for a recipient, falling back to `*`.
/// The null address is never looked up (trivial-rewrite warns
/// "transport_lookup: null address - skipping table lookup").
pub fn transport(
    table: &(impl Search + ?Sized),
    address: &str,
    ext: &Extension,
    parent_style: bool,
) -> Result<Option<String>, MapError> {
    if address.is_empty() {
        return Ok(None);
    }
    let strategy = Strategy::transport(parent_style);
    if let Some(found) = find(table, address, ext, strategy, &|_| false)? {
        return Ok(Some(found.value));
    }
    table.find("*", KeyKind::Full)
}

/// aliases(5) as local(8) searches alias_maps: the local part (lower-cased, as local(8)
/// does), then without its extension. Both are full keys.
pub fn alias(
    table: &(impl Search + ?Sized),
    local: &str,
    ext: &Extension,
) -> Result<Option<Found>, MapError> {
    let local = local.to_lowercase();
    if let Some(value) = table.find(&local, KeyKind::Full)? {
        return Ok(Some(Found {
            value,
            key: local,
            unmatched_extension: None,
        }));
    }
    let Some((user, extension)) = ext.split_local(&local) else {
        return Ok(None);
    };
    Ok(table.find(user, KeyKind::Full)?.map(|value| Found {
        value,
        key: user.to_owned(),
        unmatched_extension: Some(extension.to_owned()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Map, OpenFlags};

    type AliasCase<'a> = (&'a str, Option<(&'a str, Option<&'a str>)>);

    fn keys(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s.probe.kind {
                KeyKind::Full => s.probe.key.clone(),
                KeyKind::Partial => format!("~{}", s.probe.key),
            })
            .collect()
    }

    fn local(domain: &str) -> bool {
        domain.eq_ignore_ascii_case("local.test")
    }

    #[test]
    fn orders() {
        let plus = Extension::new("+");
        let d = Strategy::DEFAULT;
        // (address, strategy, lookups; ~ marks a partial key)
        let cases: &[(&str, Strategy, &[&str])] = &[
            ("u@remote.test", d, &["u@remote.test", "~@remote.test"]),
            (
                "u+x@remote.test",
                d,
                &["u+x@remote.test", "~u@remote.test", "~@remote.test"],
            ),
            (
                "u+x@local.test",
                d,
                &[
                    "u+x@local.test",
                    "~u@local.test",
                    "~u+x",
                    "~u",
                    "~@local.test",
                ],
            ),
            ("u", d, &["u"]),
            (
                "u+x@a.b.test",
                Strategy::transport(false),
                &[
                    "u+x@a.b.test",
                    "~u@a.b.test",
                    "~a.b.test",
                    "~.b.test",
                    "~.test",
                ],
            ),
            (
                "u@a.b.test",
                Strategy::transport(true),
                &["u@a.b.test", "~a.b.test", "~b.test", "~test"],
            ),
        ];
        for (address, strategy, want) in cases {
            assert_eq!(
                keys(&find_steps(address, &plus, *strategy, &local)),
                *want,
                "{address}"
            );
        }
        let many = Extension::new("+-");
        assert_eq!(
            keys(&find_steps("u-x@remote.test", &many, d, &local)),
            ["u-x@remote.test", "~u@remote.test", "~@remote.test"]
        );
    }

    #[test]
    fn virtual_results() {
        let table = crate::open(
            "inline:{ u@local.test=real@x.test, @remote.test=@elsewhere.test, \
             u=one@a.test;two@b.test, {list@local.test = a@x.test, b@y.test} }",
            &OpenFlags::default(),
        )
        .unwrap();
        let table: &dyn Map = table.as_ref();
        let plus = Extension::new("+");
        // (address, propagate, result)
        let cases: &[(&str, bool, Option<&[&str]>)] = &[
            ("u@local.test", true, Some(&["real@x.test"])),
            ("u+ext@local.test", true, Some(&["real+ext@x.test"])),
            ("u+ext@local.test", false, Some(&["real@x.test"])),
            (
                "who+ext@remote.test",
                true,
                Some(&["who+ext@elsewhere.test"]),
            ),
            (
                "list+e@local.test",
                true,
                Some(&["a+e@x.test", "b+e@y.test"]),
            ),
            ("nobody@local.test", true, None),
            ("U@LOCAL.TEST", true, Some(&["real@x.test"])),
        ];
        for (address, propagate, want) in cases {
            let got = map_address(table, address, &plus, &local, *propagate).unwrap();
            let want = want.map(|w| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
            assert_eq!(got, want, "{address}");
        }
    }

    #[test]
    fn transport_aliases_relocated() {
        let open = |s: &str| crate::open(s, &OpenFlags::default()).unwrap();
        let plus = Extension::new("+");
        let t = open("inline:{.example.com=relay:[a], b.test=smtp:[b], *=error:no}");
        let t: &dyn Map = t.as_ref();
        let cases = [
            ("u@x.example.com", false, "relay:[a]"),
            ("u@example.com", false, "error:no"),
            ("u@b.test", false, "smtp:[b]"),
            ("u@c.b.test", true, "smtp:[b]"),
            ("u@c.b.test", false, "error:no"),
        ];
        for (address, style, want) in cases {
            let got = transport(t, address, &plus, style).unwrap();
            assert_eq!(got.as_deref(), Some(want), "{address}");
        }
        assert_eq!(transport(t, "", &plus, false).unwrap(), None);

        let a = open("inline:{root=admin, user+x=special}");
        let a: &dyn Map = a.as_ref();
        let cases: &[AliasCase<'_>] = &[
            ("Root", Some(("admin", None))),
            ("root+y", Some(("admin", Some("+y")))),
            ("user+x", Some(("special", None))),
            ("user", None),
        ];
        for (local_part, want) in cases {
            let got = alias(a, local_part, &plus).unwrap();
            let got = got
                .as_ref()
                .map(|f| (f.value.as_str(), f.unmatched_extension.as_deref()));
            assert_eq!(got, *want, "{local_part}");
        }

        let r = open("inline:{u@old.test=u@new.test, @gone.test=nowhere, u=local}");
        let r: &dyn Map = r.as_ref();
        let is_local = |d: &str| d == "old.test";
        let cases = [
            ("u@old.test", Some("u@new.test")),
            ("u@gone.test", Some("nowhere")),
            ("v@old.test", None),
        ];
        for (address, want) in cases {
            assert_eq!(
                relocated(r, address, &plus, &is_local).unwrap().as_deref(),
                want,
                "{address}"
            );
        }
    }
}
