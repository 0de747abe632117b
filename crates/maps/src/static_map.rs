//! `static:value`: every lookup finds `value` (postconf(5), "static"; util/dict_static.c).
//!
//! The value is the whole name, spaces included (`static:foo bar`); `static:{ value }`
//! strips the braces and the white space inside them, which is how a value with spaces is
//! written inside a list of tables. The table cannot list its entries.
//!
//! Trust: the text comes from main.cf or the command line; nothing is read.

use crate::inline::syntax;
use crate::{Map, MapError, OpenFlags};

/// Opens `static:NAME`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let _ = flags;
    Ok(Box::new(StaticMap::parse(name)?))
}

/// A `static:` table.
#[derive(Debug, Clone)]
pub struct StaticMap {
    spec: String,
    value: String,
}

impl StaticMap {
    /// Parses the name; Postfix's message for unbalanced braces.
    pub fn parse(name: &str) -> Result<StaticMap, MapError> {
        if name.is_empty() {
            return Err(MapError::Config(
                "open dictionary: expecting \"type:name\" form instead of \"static:\"".to_owned(),
            ));
        }
        let value = if name.starts_with('{') {
            syntax::strip_group(name)
                .map_err(|err| MapError::Config(format!("bad static:name syntax: {err}")))?
        } else {
            name
        };
        Ok(StaticMap {
            spec: format!("static:{name}"),
            value: value.to_owned(),
        })
    }
}

impl Map for StaticMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, _key: &str) -> Result<Option<String>, MapError> {
        Ok(Some(self.value.clone()))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(crate::fail::no_sequence(&self.spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_errors() {
        // (name, answer or message), each checked against Debian's `postmap -q a static:...`.
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("foo", Ok("foo")),
            ("foo bar", Ok("foo bar")),
            (" foo", Ok(" foo")),
            ("{ foo bar }", Ok("foo bar")),
            ("{}", Ok("")),
            (
                "{ foo bar } x",
                Err("bad static:name syntax: syntax error after '}' in \"{ foo bar } x\""),
            ),
            (
                "{ foo bar ",
                Err("bad static:name syntax: missing '}' in \"{ foo bar \""),
            ),
            (
                "",
                Err("open dictionary: expecting \"type:name\" form instead of \"static:\""),
            ),
        ];
        for (name, want) in cases {
            let got = StaticMap::parse(name)
                .map(|m| m.lookup("a").unwrap().unwrap())
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                want.map(str::to_owned).map_err(str::to_owned),
                "{name:?}"
            );
        }
        let map = StaticMap::parse("foo").unwrap();
        assert_eq!(
            map.sequence().unwrap_err().to_string(),
            "table static:foo: sequence operation is not supported"
        );
    }
}
