//! canonical(5) as cleanup(8) applies it: the one-to-one address mapping of
//! canonical_maps, sender_canonical_maps and recipient_canonical_maps
//! (cleanup_map11.c), the class lists that say where each applies
//! (canonical_classes, sender_canonical_classes, recipient_canonical_classes), and
//! mail_addr_map(3), the lookup-and-canonicalise step that virtual(5) shares.
//!
//! A lookup follows mail_addr_find()'s order ([`tern_maps::query::address::find`]):
//! `user+ext@domain`, `user@domain`, then `user+ext` and `user` when the domain is
//! `$myorigin` or local, then `@domain`. A result `@other` keeps the original local part
//! (without the unmatched extension); every address of a result is canonicalised in the
//! local context (`bob` becomes `bob@$myorigin`), then, when the table's class is in
//! propagate_unmatched_extensions, the unmatched extension goes back in before the `@`.
//!
//! cleanup_map11_external() maps again while the result changes, up to 10 times; a
//! result that equals its input (case-insensitively) ends the loop; after 10 rounds it
//! warns `unreasonable ... map nesting` and keeps the last result (the message is not
//! refused). A multi-valued entry is used by its first address, with a warning. A lookup
//! error refuses the message ("queue file write error").
//!
//! XXX: Postfix looks up the RFC 5322 quoted form of a local part that needs quoting
//! (`"a b"@x`); we look up the internal form.
//!
//! Trust: addresses come from the network, tables from the administrator; nothing here
//! panics on any input.

use tern_maps::MapError;
use tern_maps::query::address::{Strategy, find};
use tern_maps::query::{Extension, Search};

use crate::settings::SetupError;

/// cleanup_map11.c: the most rounds of one-to-one mapping.
pub const MAX_RECURSION: usize = 10;

/// Where a rewriting applies (CLEANUP_CANON_FLAG_* / CLEANUP_MASQ_FLAG_*).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Classes {
    pub envelope_sender: bool,
    pub envelope_recipient: bool,
    pub header_sender: bool,
    pub header_recipient: bool,
}

/// The class names, in name_mask() table order.
pub const ALL_CLASSES: [&str; 4] = [
    "envelope_sender",
    "envelope_recipient",
    "header_sender",
    "header_recipient",
];

impl Classes {
    /// name_mask(): the names of `value` (separated by commas and blanks), each of which
    /// must be one of `allowed`; `context` is the parameter name Postfix's fatal message
    /// shows.
    pub fn parse(context: &str, value: &str, allowed: &[&str]) -> Result<Classes, SetupError> {
        let mut classes = Classes::default();
        for name in value
            .split([',', ' ', '\t', '\r', '\n'])
            .filter(|n| !n.is_empty())
        {
            if !allowed.contains(&name) {
                return Err(SetupError::UnknownName {
                    context: context.to_owned(),
                    name: name.to_owned(),
                    value: value.to_owned(),
                });
            }
            match name {
                "envelope_sender" => classes.envelope_sender = true,
                "envelope_recipient" => classes.envelope_recipient = true,
                "header_sender" => classes.header_sender = true,
                _ => classes.header_recipient = true,
            }
        }
        Ok(classes)
    }
}

/// What a table lookup needs besides the table: the extension rules, what is local,
/// canonicalisation in the local context, and whether unmatched extensions propagate.
pub struct Lookup<'a> {
    pub table: &'a dyn Search,
    /// The parameter name (`canonical_maps`), for warnings.
    pub title: &'a str,
    pub ext: &'a Extension,
    /// `$myorigin`, or local per resolve_local().
    pub is_local: &'a dyn Fn(&str) -> bool,
    /// trivial-rewrite in the local context (canon_addr_external()).
    pub canon: &'a dyn Fn(&str) -> String,
    pub propagate: bool,
}

/// Why cleanup cannot accept the message (its CLEANUP_STAT_* bits and reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// CLEANUP_STAT_WRITE: a table lookup failed (`451 4.3.0 Error: queue file write
    /// error`).
    #[error("table lookup problem")]
    Lookup,
    /// CLEANUP_STAT_DEFER with reason `4.6.0 Alias expansion error` (`451 4.6.0 Alias
    /// expansion error`).
    #[error("4.6.0 Alias expansion error")]
    Expansion,
}

/// mail_addr_map(): the addresses (internal form) that `address` maps to, or `None`.
/// A result with no address at all is a lookup error, with Postfix's warning.
pub fn mail_addr_map(
    l: &Lookup<'_>,
    address: &str,
    warn: &dyn Fn(&str),
) -> Result<Option<Vec<String>>, MapError> {
    let Some(found) = find(l.table, address, l.ext, Strategy::DEFAULT, l.is_local)? else {
        return Ok(None);
    };
    let extension = found.unmatched_extension.as_deref();
    let mut value = found.value.clone();
    if value.starts_with('@') {
        let local = address.rfind('@').map_or(address, |at| &address[..at]);
        let local = extension
            .and_then(|e| local.strip_suffix(e))
            .unwrap_or(local);
        value = format!("{}{value}", quote_local(local));
    }
    let propagate = if l.propagate { extension } else { None };
    let addresses: Vec<String> = crunch(&value)
        .into_iter()
        .map(|a| {
            let canonical = (l.canon)(&a);
            match propagate {
                None => canonical,
                Some(e) => match canonical.rfind('@') {
                    Some(at) => format!("{}{e}{}", &canonical[..at], &canonical[at..]),
                    None => format!("{canonical}{e}"),
                },
            }
        })
        .collect();
    if addresses.is_empty() {
        let text = format!(
            "{} lookup of {address} returns non-address result \"{}\"",
            l.title, found.value
        );
        warn(&text);
        return Err(MapError::Retry(text));
    }
    Ok(Some(addresses))
}

/// cleanup_map11_internal(): maps `address` until it no longer changes. Returns the new
/// address and whether it changed.
pub fn map11(
    l: &Lookup<'_>,
    address: &str,
    queue_id: &str,
    warn: &dyn Fn(&str),
) -> Result<(String, bool), Fault> {
    let mut addr = address.to_owned();
    let mut changed = false;
    for _ in 0..MAX_RECURSION {
        match mail_addr_map(l, &addr, warn) {
            Ok(Some(new)) => {
                if new.len() > 1 {
                    warn(&format!(
                        "{queue_id}: multi-valued {} entry for {addr}",
                        l.title
                    ));
                }
                let first = new.into_iter().next().unwrap_or_default();
                changed |= first != addr;
                let to_self = first.to_lowercase() == addr.to_lowercase();
                addr = first;
                if to_self {
                    return Ok((addr, changed));
                }
            }
            Ok(None) => return Ok((addr, changed)),
            Err(_) => {
                warn(&format!(
                    "{queue_id}: {} map lookup problem for {addr} -- message not accepted, \
                     try again later",
                    l.title
                ));
                return Err(Fault::Lookup);
            }
        }
    }
    warn(&format!(
        "{queue_id}: unreasonable {} map nesting for {addr} -- message not accepted, try \
         again later",
        l.title
    ));
    Ok((addr, changed))
}

/// mail_addr_crunch(): the addresses of an RFC 822 address list, internal form. Groups'
/// names, display names and comments are dropped; `<>` and an empty value are the null
/// address.
pub fn crunch(value: &str) -> Vec<String> {
    let value = value.trim();
    if value.is_empty() || value == "<>" {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    for item in split_list(value) {
        let item = strip_comments(&item);
        let item = item.trim();
        // A group name ends at ':'; the group's end ';' is dropped.
        let item = match item.find(':') {
            Some(c) if !item.starts_with('"') && !item.starts_with('@') => &item[c + 1..],
            _ => item,
        };
        let item = item.trim().trim_end_matches(';').trim();
        let inner = match (item.rfind('<'), item.rfind('>')) {
            (Some(open), Some(close)) if open < close => &item[open + 1..close],
            _ => item,
        };
        let inner = inner.trim();
        if inner.is_empty() {
            continue;
        }
        out.push(unquote_local(inner));
    }
    out
}

/// Splits at commas outside quotes, comments and angle brackets.
fn split_list(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut depth, mut angle, mut escaped) = (false, 0usize, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            '<' if !quoted && depth == 0 => angle = true,
            '>' if !quoted && depth == 0 => angle = false,
            ',' if !quoted && depth == 0 && !angle => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    items
}

fn strip_comments(item: &str) -> String {
    let mut out = String::new();
    let (mut quoted, mut depth, mut escaped) = (false, 0usize, false);
    for c in item.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
                continue;
            }
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                continue;
            }
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                continue;
            }
            _ => {}
        }
        if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// unquote_822_local(): `"a b"@x` is `a b@x` inside.
pub fn unquote_local(address: &str) -> String {
    let (local, domain) = match address.rfind('@') {
        Some(at) if !address[at..].contains('"') => address.split_at(at),
        _ => (address, ""),
    };
    if !local.contains('"') {
        return address.to_owned();
    }
    let mut out = String::new();
    let mut escaped = false;
    for c in local.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c != '"' {
            out.push(c);
        }
    }
    out + domain
}

/// quote_822_local() for a local part alone: quoted when it is not a dot-string.
fn quote_local(local: &str) -> String {
    const SPECIALS: &str = "()<>@,;:\\\".[] \t";
    let plain = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c == '.' || !(SPECIALS.contains(c) || c.is_control()));
    if plain {
        local.to_owned()
    } else {
        let mut out = String::from("\"");
        for c in local.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_maps::OpenFlags;

    fn canon(a: &str) -> String {
        if a.is_empty() || a.contains('@') {
            a.to_owned()
        } else {
            format!("{a}@origin.test")
        }
    }

    fn local(d: &str) -> bool {
        d == "origin.test"
    }

    fn run(
        spec: &str,
        address: &str,
        propagate: bool,
    ) -> (Result<(String, bool), Fault>, Vec<String>) {
        let table = tern_maps::open(spec, &OpenFlags::default()).expect("table");
        let table = tern_maps::query::Maps::new("t", [table.as_ref()], tern_maps::no_warnings());
        let ext = Extension::new("+");
        let l = Lookup {
            table: &table,
            title: "canonical_maps",
            ext: &ext,
            is_local: &local,
            canon: &canon,
            propagate,
        };
        let warnings = std::cell::RefCell::new(Vec::new());
        let r = map11(&l, address, "QID", &|w| {
            warnings.borrow_mut().push(w.to_owned());
        });
        (r, warnings.into_inner())
    }

    #[test]
    fn one_to_one() {
        type Case<'a> = (&'a str, &'a str, bool, &'a str, bool, &'a [&'a str]);
        // (table, address, propagate, result, changed, warnings)
        let cases: &[Case<'_>] = &[
            ("inline:{a@x=b@y}", "a@x", true, "b@y", true, &[]),
            ("inline:{a@x=b@y}", "A@X", true, "b@y", true, &[]),
            ("inline:{a@x=b@y}", "c@x", true, "c@x", false, &[]),
            // Bare results are qualified with $myorigin.
            (
                "inline:{a@x=bob}",
                "a@x",
                true,
                "bob@origin.test",
                true,
                &[],
            ),
            // The local part alone matches for local domains only.
            ("inline:{a=b@y}", "a@origin.test", true, "b@y", true, &[]),
            ("inline:{a=b@y}", "a@x", true, "a@x", false, &[]),
            // Extensions: propagated, or dropped.
            ("inline:{a@x=b@y}", "a+e@x", true, "b+e@y", true, &[]),
            ("inline:{a@x=b@y}", "a+e@x", false, "b@y", true, &[]),
            ("inline:{@x=@y}", "a+e@x", true, "a+e@y", true, &[]),
            ("inline:{@x=@y}", "a+e@x", false, "a+e@y", true, &[]),
            // Chains are followed; a self-mapping stops.
            ("inline:{a@x=b@x, b@x=c@x}", "a@x", true, "c@x", true, &[]),
            ("inline:{a@x=A@x}", "a@x", true, "A@x", true, &[]),
            (
                "inline:{ {a@x=b@y, c@z} }",
                "a@x",
                true,
                "b@y",
                true,
                &["QID: multi-valued canonical_maps entry for a@x"],
            ),
            (
                "inline:{a@x=b@x, b@x=a@x}",
                "a@x",
                true,
                "a@x",
                true,
                &[
                    "QID: unreasonable canonical_maps map nesting for a@x -- message not \
                   accepted, try again later",
                ],
            ),
        ];
        for (spec, address, propagate, want, changed, warnings) in cases {
            let (got, w) = run(spec, address, *propagate);
            assert_eq!(got, Ok(((*want).to_owned(), *changed)), "{spec} {address}");
            assert_eq!(w, *warnings, "{spec} {address}");
        }
        let (got, w) = run("fail:x", "a@x", true);
        assert_eq!(got, Err(Fault::Lookup));
        assert_eq!(
            w,
            [
                "QID: canonical_maps map lookup problem for a@x -- message not accepted, try \
              again later"
            ]
        );
    }

    #[test]
    fn classes() {
        let c = Classes::parse(
            "canonical_classes",
            "envelope_sender, header_recipient",
            &ALL_CLASSES,
        )
        .expect("parse");
        assert!(c.envelope_sender && c.header_recipient);
        assert!(!c.envelope_recipient && !c.header_sender);
        let err = Classes::parse(
            "canonical_classes",
            "envelope_recipient",
            &["envelope_sender", "header_sender"],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown canonical_classes value \"envelope_recipient\" in \"envelope_recipient\""
        );
    }

    #[test]
    fn crunching() {
        let cases: &[(&str, &[&str])] = &[
            ("a@x, b@y", &["a@x", "b@y"]),
            ("Bob <b@y> (c), \"q r\"@z", &["b@y", "q r@z"]),
            ("<>", &[""]),
            ("", &[""]),
            ("list: a@x, b@y;", &["a@x", "b@y"]),
        ];
        for (value, want) in cases {
            assert_eq!(crunch(value), *want, "{value}");
        }
    }
}
