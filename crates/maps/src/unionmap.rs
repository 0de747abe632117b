//! `unionmap:{type:name, type:name, ...}`: looks a key up in every table and joins all the
//! values found with commas, in table order (postconf(5), "unionmap"; util/dict_union.c).
//! A lookup error in any table is the union's lookup error; a key found nowhere is not
//! found. The union cannot list its entries.
//!
//! The first table decides whether the union is a fixed-string or a pattern table (which
//! partial address keys it sees, [`crate::query`]); the least trusted table decides its
//! owner.
//!
//! Trust: the member tables are opened with [`crate::open`] and trusted as much as that.

use crate::inline::syntax;
use crate::{Map, MapError, OpenFlags, Owner};

/// Opens `unionmap:NAME`, NAME being the `{...}` list of tables.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let bad = || {
        MapError::Config(format!(
            "bad syntax: \"unionmap:{name}\"; need \"unionmap:{{type:name...}}\""
        ))
    };
    let body = syntax::whole_group(name).ok_or_else(bad)?;
    let members = syntax::tokens(body, syntax::COMMA_SP);
    if members.is_empty() {
        return Err(bad());
    }
    let mut maps = Vec::with_capacity(members.len());
    for member in members {
        if !member.contains(':') {
            return Err(bad());
        }
        maps.push(crate::open(member, flags)?);
    }
    Ok(Box::new(UnionMap {
        spec: format!("unionmap:{name}"),
        maps,
    }))
}

/// A `unionmap:` table.
#[derive(Debug)]
pub struct UnionMap {
    spec: String,
    maps: Vec<Box<dyn Map>>,
}

impl Map for UnionMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        let mut joined = String::new();
        let mut found = false;
        for map in &self.maps {
            match map.lookup(key) {
                Ok(Some(value)) => {
                    // dict_union.c adds a comma only after a non-empty result so far, so
                    // an empty value at the front vanishes.
                    if !joined.is_empty() {
                        joined.push(',');
                    }
                    joined.push_str(&value);
                    found = true;
                }
                Ok(None) => {}
                Err(err) => return Err(self.rename(err)),
            }
        }
        Ok((found && !joined.is_empty()).then_some(joined))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(crate::fail::no_sequence(&self.spec))
    }

    fn owner(&self) -> Owner {
        self.maps
            .iter()
            .map(|m| m.owner())
            .reduce(least_trusted)
            .unwrap_or(Owner::Trusted)
    }
}

impl UnionMap {
    /// The member tables, in order.
    pub fn members(&self) -> impl Iterator<Item = &dyn Map> {
        self.maps.iter().map(AsRef::as_ref)
    }

    /// A member's lookup error as postmap reports it for the union: the union's name with
    /// the member's reason.
    fn rename(&self, err: MapError) -> MapError {
        match err {
            MapError::Retry(text) => {
                let reason = text
                    .split_once(": query error: ")
                    .map_or(text.as_str(), |(_, reason)| reason);
                MapError::Retry(format!("table {}: query error: {reason}", self.spec))
            }
            config @ MapError::Config(_) => config,
        }
    }
}

/// DICT_OWNER_AGGREGATE_UPDATE: trusted < one user < unknown; two different users make
/// the owner unknown.
fn least_trusted(a: Owner, b: Owner) -> Owner {
    match (a, b) {
        (Owner::Unknown, _) | (_, Owner::Unknown) => Owner::Unknown,
        (Owner::Trusted, other) | (other, Owner::Trusted) => other,
        (Owner::User(x), Owner::User(y)) if x == y => Owner::User(x),
        (Owner::User(_), Owner::User(_)) => Owner::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str, key: &str, fold: bool) -> Result<Option<String>, String> {
        let flags = OpenFlags {
            fold_fix: fold,
            ..OpenFlags::default()
        };
        open(name, &flags)
            .and_then(|m| m.lookup(key))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn lookups() {
        // Each checked against Debian's `postmap -q`.
        type Case<'a> = (&'a str, &'a str, bool, Result<Option<&'a str>, &'a str>);
        let cases: &[Case<'_>] = &[
            ("{inline:{a=1}, static:2}", "a", true, Ok(Some("1,2"))),
            ("{inline:{a=1}, static:2}", "b", true, Ok(Some("2"))),
            ("{inline:{b=1}, inline:{c=1}}", "a", true, Ok(None)),
            ("{inline:{a=1} static:{2 3}}", "a", true, Ok(Some("1,2 3"))),
            ("{inline:{a=1},static:X}", "A", true, Ok(Some("1,X"))),
            ("{inline:{a=1},static:X}", "A", false, Ok(Some("X"))),
            ("{inline:{a=}, static:x}", "a", true, Ok(Some("x"))),
            (
                "{inline:{a=1}, fail:x}",
                "a",
                true,
                Err("table unionmap:{inline:{a=1}, fail:x}: query error: Application error"),
            ),
            (
                "{}",
                "a",
                true,
                Err("bad syntax: \"unionmap:{}\"; need \"unionmap:{type:name...}\""),
            ),
            (
                "{ }",
                "a",
                true,
                Err("bad syntax: \"unionmap:{ }\"; need \"unionmap:{type:name...}\""),
            ),
            (
                "x",
                "a",
                true,
                Err("bad syntax: \"unionmap:x\"; need \"unionmap:{type:name...}\""),
            ),
            (
                "{inline:{a=1},nocolon}",
                "a",
                true,
                Err(
                    "bad syntax: \"unionmap:{inline:{a=1},nocolon}\"; need \"unionmap:{type:name...}\"",
                ),
            ),
            (
                "{inline:{a=1},bogus:x}",
                "a",
                true,
                Err("unsupported dictionary type: bogus"),
            ),
        ];
        for (name, key, fold, want) in cases {
            let want = want.map(|v| v.map(str::to_owned)).map_err(str::to_owned);
            assert_eq!(lookup(name, key, *fold), want, "{name} {key}");
        }
    }

    #[test]
    fn owners() {
        use Owner::{Trusted, Unknown, User};
        let cases = [
            (Trusted, Trusted, Trusted),
            (Trusted, User(5), User(5)),
            (User(5), User(5), User(5)),
            (User(5), User(6), Unknown),
            (Unknown, Trusted, Unknown),
        ];
        for (a, b, want) in cases {
            assert_eq!(least_trusted(a, b), want);
        }
    }
}
