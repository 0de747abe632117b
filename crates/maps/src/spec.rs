//! `type:name` as Postfix writes table references: the type up to the first `:`, the name
//! after it (a path, a NIS map name, or `{...}` for `inline:` and `unionmap:`).

use crate::MapError;

/// A parsed table reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSpec {
    pub kind: String,
    pub name: String,
}

impl MapSpec {
    /// Parses `type:name`; Postfix's message when there is no `:`.
    pub fn parse(text: &str) -> Result<MapSpec, MapError> {
        match text.split_once(':') {
            Some((kind, name)) if !kind.is_empty() => Ok(MapSpec {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(MapError::Config(format!(
                "open dictionary: expecting \"type:name\" form instead of \"{text}\""
            ))),
        }
    }

    /// `type:name` again.
    pub fn text(&self) -> String {
        format!("{}:{}", self.kind, self.name)
    }
}

/// The body of a `{ ... }` name (`inline:`, `unionmap:`): the text between the braces,
/// trimmed; Postfix's message when the braces are missing or unbalanced.
pub fn braced_body<'a>(kind: &str, name: &'a str) -> Result<&'a str, MapError> {
    let trimmed = name.trim();
    if trimmed.starts_with('{') && trimmed.ends_with('}') && trimmed.len() >= 2 {
        Ok(trimmed[1..trimmed.len() - 1].trim())
    } else {
        Err(MapError::Config(format!(
            "{kind}:{name}: bad syntax: \"{kind}:{name}\"; need \"{kind}:{{...}}\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_type_and_name() {
        let s = MapSpec::parse("hash:/etc/postfix/virtual").unwrap();
        assert_eq!(
            (s.kind.as_str(), s.name.as_str()),
            ("hash", "/etc/postfix/virtual")
        );
        let s = MapSpec::parse("inline:{a=b, c=d}").unwrap();
        assert_eq!(s.name, "{a=b, c=d}");
        assert!(MapSpec::parse("/etc/aliases").is_err());
        assert!(MapSpec::parse(":x").is_err());
    }
}
