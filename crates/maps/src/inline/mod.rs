//! `inline:{ key=value, { key = value with spaces }, ... }`: a table written in the
//! parameter value itself (postconf(5), "inline" under DATABASE_README's table types;
//! util/dict_inline.c).
//!
//! The whole name must be one `{...}` group with no space outside the braces. Inside it,
//! entries are separated by commas or white space; an entry that holds spaces is wrapped in
//! its own braces, and is then `key = value` with optional spaces around `=`. A bare entry
//! is `key=value` (no spaces, but `a={b c}` gives the value `{b c}`). A later entry for the
//! same key replaces the earlier one, silently. Keys are folded to lower case unless the
//! caller turned folding off (`postmap -f`).
//!
//! Trust: the text comes from main.cf or the command line; a bad table is a `Config` error
//! with Postfix's message, which Postfix makes fatal.

pub mod htable;
pub(crate) mod syntax;

use crate::{Map, MapError, OpenFlags};

/// Opens `inline:NAME`, NAME being the `{...}` text.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    Ok(Box::new(InlineMap::parse(name, flags.fold_fix)?))
}

/// An `inline:` table: its entries in the order they were first given.
#[derive(Debug, Clone)]
pub struct InlineMap {
    spec: String,
    fold: bool,
    entries: Vec<(String, String)>,
}

impl InlineMap {
    /// Parses the `{...}` name; Postfix's messages for a bad one.
    pub fn parse(name: &str, fold: bool) -> Result<InlineMap, MapError> {
        let spec = format!("inline:{name}");
        let complaint = |what: &str| {
            MapError::Config(format!(
                "{what}: \"{spec}\"; need \"inline:{{name=value...}}\""
            ))
        };
        let Some(body) = syntax::whole_group(name) else {
            return Err(complaint("bad syntax"));
        };
        let mut map = InlineMap {
            spec: spec.clone(),
            fold,
            entries: Vec::new(),
        };
        for token in syntax::tokens(body, syntax::COMMA_SP) {
            let pair = if token.starts_with('{') {
                syntax::strip_group(token).map_err(|err| complaint(&err))?
            } else {
                token
            };
            let (key, value) = syntax::split_name_value(pair).map_err(complaint)?;
            map.insert(key, value);
        }
        if map.entries.is_empty() {
            return Err(complaint("empty table"));
        }
        Ok(map)
    }

    fn insert(&mut self, key: &str, value: &str) {
        let key = self.fold_key(key);
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => value.clone_into(&mut entry.1),
            None => self.entries.push((key, value.to_owned())),
        }
    }

    fn fold_key(&self, key: &str) -> String {
        if self.fold {
            key.to_lowercase()
        } else {
            key.to_owned()
        }
    }
}

impl Map for InlineMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        let key = self.fold_key(key);
        Ok(self
            .entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }

    /// In the order Postfix's hash table lists them with `NORANDOMIZE` set (see
    /// [`htable`]); Postfix's own order changes from run to run.
    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        let keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
        Ok(htable::listing_order(&keys)
            .into_iter()
            .filter_map(|i| self.entries.get(i).cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str) -> Result<InlineMap, String> {
        InlineMap::parse(name, true).map_err(|e| e.to_string())
    }

    #[test]
    fn lookups() {
        // (table, key, answer), each checked against Debian's `postmap -q`.
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("{a=b, c=d}", "a", Some("b")),
            ("{a=b, c=d}", "A", Some("b")),
            ("{a=b, c=d}", "x", None),
            ("{ {a = b c} , c=d }", "a", Some("b c")),
            ("{ {\"a b\" = c } }", "\"a b\"", Some("c")),
            ("{ a={b c} }", "a", Some("{b c}")),
            ("{ a={b, c}, d=e }", "a", Some("{b, c}")),
            ("{a=}", "a", Some("")),
            ("{a=b,a=c}", "a", Some("c")),
            ("{=b}", "", Some("b")),
            ("{ a\\=b=c }", "a\\=b", Some("c")),
            ("{\ta=b\t}", "a", Some("b")),
            ("{\na=b\n}", "a", Some("b")),
            ("{ a=\"b }", "a", Some("\"b")),
        ];
        for (name, key, want) in cases {
            let map = parse(name).unwrap();
            assert_eq!(map.lookup(key).unwrap().as_deref(), *want, "{name} {key}");
        }
    }

    #[test]
    fn errors() {
        let need = "need \"inline:{name=value...}\"";
        let cases: &[(&str, &str)] = &[
            ("{ a = b , c=d }", "missing '=' after attribute name"),
            ("{}", "bad syntax"),
            ("{ }", "empty table"),
            ("{ , }", "empty table"),
            ("a=b", "bad syntax"),
            ("{a=b", "bad syntax"),
            ("{a=b}x", "bad syntax"),
            ("{a=b}}", "bad syntax"),
            (" {a=b}", "bad syntax"),
            ("{a=b} ", "bad syntax"),
            ("{a}", "missing '=' after attribute name"),
            ("{ {a=b}x }", "syntax error after '}' in \"{a=b}x\""),
            (
                "{ {a=b c}, {} }",
                "no key found; expected format: key = value",
            ),
            ("{ \"a=b }", "unbalanced '\"'"),
        ];
        for (name, what) in cases {
            assert_eq!(
                parse(name).unwrap_err(),
                format!("{what}: \"inline:{name}\"; {need}"),
                "{name}"
            );
        }
    }

    #[test]
    fn folding_and_sequence() {
        let map = InlineMap::parse("{ A=b }", false).unwrap();
        assert_eq!(map.lookup("A").unwrap().as_deref(), Some("b"));
        assert_eq!(map.lookup("a").unwrap(), None);
        assert_eq!(map.sequence().unwrap(), vec![("A".into(), "b".into())]);
        let map = parse("{ A=b }").unwrap();
        assert_eq!(map.sequence().unwrap(), vec![("a".into(), "b".into())]);
        let map = parse("{a=b, c=d, e=f, g=h}").unwrap();
        let keys: Vec<String> = map.sequence().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(keys, ["g", "e", "c", "a"]);
    }
}
