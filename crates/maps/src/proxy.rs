//! `proxy:type:name`: a table read through proxymap(8) (global/dict_proxy.c,
//! proxymap/proxymap.c). Tern has no separate proxymap process: the inner table is opened
//! here, with the same flags, and answers directly.
//!
//! What proxymap adds is a gate: it serves only tables listed as `proxy:type:name` in
//! `proxy_read_maps` ([`open_checked`]). A refused table is fatal for the client, and
//! proxymap logs how to fix it; we send those two warnings through `flags.warn`, since they
//! are the only place the operator learns which parameter to change.
//!
//! Trust: the inner table is trusted as [`crate::open`] trusts it; the approved list comes
//! from main.cf.

use crate::{Map, MapError, OpenFlags, Owner};

const PREFIX: &str = "proxy:";

/// Opens `proxy:NAME` without the `proxy_read_maps` check (for programs that do not go
/// through proxymap, e.g. `postmap -q`).
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let inner = inner_name(name)?;
    Ok(Box::new(ProxyMap {
        spec: format!("{PREFIX}{name}"),
        inner: crate::open(inner, flags)?,
    }))
}

/// Opens `proxy:NAME` as a proxymap client does: refused, with Postfix's fatal message,
/// unless `proxy:NAME` (after removing repeated `proxy:` prefixes) is listed in
/// `proxy_read_maps`. Each element of `proxy_read_maps` may hold several entries separated
/// by commas or white space (the parameter's value, already `$name`-expanded).
pub fn open_checked(
    name: &str,
    flags: &OpenFlags,
    proxy_read_maps: &[String],
) -> Result<Box<dyn Map>, MapError> {
    let inner = inner_name(name)?;
    if !approved(proxy_read_maps).any(|listed| listed == inner) {
        for line in refusal_warnings(inner) {
            (flags.warn)(&line);
        }
        return Err(MapError::Config(format!(
            "proxymap service is not configured for table \"{name}\""
        )));
    }
    open(name, flags)
}

/// proxymap's two warnings for a table that is not approved.
pub fn refusal_warnings(inner: &str) -> [String; 2] {
    [
        format!("request for unapproved table: \"{inner}\""),
        format!(
            "to approve this table for read-only access, list proxy:{inner} in main.cf:proxy_read_maps"
        ),
    ]
}

/// The tables proxymap approves: each `proxy:type:name` entry, prefixes removed, split at
/// commas and white space only (proxymap does not keep `{...}` together here, so an
/// `inline:{a=b, c=d}` behind `proxy:` can never be approved).
fn approved(proxy_read_maps: &[String]) -> impl Iterator<Item = &str> {
    proxy_read_maps
        .iter()
        .flat_map(|v| v.split(crate::inline::syntax::COMMA_SP))
        .filter(|entry| entry.starts_with(PREFIX))
        .map(strip_prefixes)
        .filter(|entry| entry.contains(':'))
}

/// The table proxymap opens for `proxy:NAME`: NAME without further `proxy:` prefixes; an
/// inner name without a `:` is the "invalid request" proxymap answers.
fn inner_name(name: &str) -> Result<&str, MapError> {
    if name.is_empty() {
        return Err(MapError::Config(
            "open dictionary: expecting \"type:name\" form instead of \"proxy:\"".to_owned(),
        ));
    }
    let inner = strip_prefixes(name);
    if inner.contains(':') {
        Ok(inner)
    } else {
        Err(MapError::Config(format!(
            "proxymap open failed for table \"{name}\": invalid request"
        )))
    }
}

fn strip_prefixes(mut name: &str) -> &str {
    while let Some(rest) = name.strip_prefix(PREFIX) {
        name = rest;
    }
    name
}

/// A `proxy:` table.
#[derive(Debug)]
pub struct ProxyMap {
    spec: String,
    inner: Box<dyn Map>,
}

impl ProxyMap {
    /// The table behind the proxy.
    pub fn inner(&self) -> &dyn Map {
        self.inner.as_ref()
    }
}

impl Map for ProxyMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        self.inner.lookup(key)
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        self.inner.sequence()
    }

    fn owner(&self) -> Owner {
        self.inner.owner()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn pass_through() {
        let flags = OpenFlags::default();
        let map = open("inline:{a=b}", &flags).unwrap();
        assert_eq!(map.spec(), "proxy:inline:{a=b}");
        assert_eq!(map.lookup("A").unwrap().as_deref(), Some("b"));
        let map = open("proxy:static:x", &flags).unwrap();
        assert_eq!(map.lookup("k").unwrap().as_deref(), Some("x"));
        assert_eq!(
            open("x", &flags).unwrap_err().to_string(),
            "proxymap open failed for table \"x\": invalid request"
        );
    }

    #[test]
    fn gate() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        let flags = OpenFlags {
            warn: Arc::new(move |m: &str| sink.lock().unwrap().push(m.to_owned())),
            ..OpenFlags::default()
        };
        let listed = vec![
            "proxy:unix:passwd.byname, hash:/etc/aliases".to_owned(),
            "proxy:proxy:static:ok".to_owned(),
        ];
        // (name, approved?)
        let cases = [
            ("unix:passwd.byname", true),
            ("static:ok", true),
            ("proxy:static:ok", true),
            ("hash:/etc/aliases", false),
            ("unix:group.byname", false),
        ];
        for (name, ok) in cases {
            let got = open_checked(name, &flags, &listed);
            assert_eq!(got.is_ok(), ok, "{name}");
        }
        let err = open_checked("proxy:static:no", &flags, &listed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proxymap service is not configured for table \"proxy:static:no\""
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.last().map(String::as_str),
            Some(
                "to approve this table for read-only access, list proxy:static:no in main.cf:proxy_read_maps"
            )
        );
        assert_eq!(
            seen[seen.len() - 2],
            "request for unapproved table: \"static:no\""
        );
    }
}
