//! `fail:name`: a table whose every lookup is a lookup error (postconf(5), "fail";
//! util/dict_fail.c), for testing how callers handle an unavailable table. The name is only
//! a label for messages.
//!
//! Postfix reports the failure as its caller sees it: postmap says
//! `table fail:NAME: query error: Application error` (the errno text of "no system error"),
//! and `sequence error` for `postmap -s`; those are the texts of our `Retry` errors.
//!
//! Trust: nothing is read.

use crate::{Map, MapError, OpenFlags};

/// Opens `fail:NAME`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let _ = flags;
    if name.is_empty() {
        return Err(MapError::Config(
            "open dictionary: expecting \"type:name\" form instead of \"fail:\"".to_owned(),
        ));
    }
    Ok(Box::new(FailMap {
        spec: format!("fail:{name}"),
    }))
}

/// A `fail:` table.
#[derive(Debug, Clone)]
pub struct FailMap {
    spec: String,
}

impl Map for FailMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, _key: &str) -> Result<Option<String>, MapError> {
        Err(query_error(&self.spec))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(MapError::Retry(format!(
            "table {}: sequence error: {APPLICATION_ERROR}",
            self.spec
        )))
    }
}

/// What Postfix prints for `%m` when the failure set no errno.
pub const APPLICATION_ERROR: &str = "Application error";

/// The error of a lookup that failed with no system error, as postmap words it.
pub fn query_error(spec: &str) -> MapError {
    MapError::Retry(format!("table {spec}: query error: {APPLICATION_ERROR}"))
}

/// Postfix's fatal message for a table type that cannot list its entries (util/dict_alloc.c),
/// e.g. `static:`, `unix:`, `unionmap:`, `nis:`.
pub fn no_sequence(spec: &str) -> MapError {
    MapError::Config(format!("table {spec}: sequence operation is not supported"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_fails() {
        let map = open("oops", &OpenFlags::default()).unwrap();
        let cases: &[(Result<(), MapError>, &str)] = &[
            (
                map.lookup("a").map(|_| ()),
                "table fail:oops: query error: Application error",
            ),
            (
                map.sequence().map(|_| ()),
                "table fail:oops: sequence error: Application error",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, &Err(MapError::Retry((*want).to_owned())));
        }
        assert!(open("", &OpenFlags::default()).is_err());
    }
}
