//! `nis:mapname`: NIS (YP) maps (postconf(5), "nis"; util/dict_nis.c).
//!
//! Tern speaks no NIS. Postfix, on a host whose NIS domain is not set (Debian's default,
//! and the reason the classic `alias_maps = hash:/etc/aliases, nis:mail.aliases` works
//! there), warns once per process when the first `nis:` table is opened and then answers
//! every lookup "not found". We do the same on every host.
//!
//! Trust: nothing is read.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Map, MapError, OpenFlags};

/// Postfix's warning, after `NAME: warning: `.
pub const DISABLED: &str = "dict_nis_init: NIS domain name not set - NIS lookups disabled";

/// dict_nis_init() runs once per process.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Opens `nis:NAME`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    if name.is_empty() {
        return Err(MapError::Config(
            "open dictionary: expecting \"type:name\" form instead of \"nis:\"".to_owned(),
        ));
    }
    // XXX: no NIS client; always the "domain not set" case.
    if !WARNED.swap(true, Ordering::Relaxed) {
        (flags.warn)(DISABLED);
    }
    Ok(Box::new(NisMap {
        spec: format!("nis:{name}"),
    }))
}

/// A `nis:` table with NIS disabled.
#[derive(Debug, Clone)]
pub struct NisMap {
    spec: String,
}

impl Map for NisMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, _key: &str) -> Result<Option<String>, MapError> {
        Ok(None)
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(crate::fail::no_sequence(&self.spec))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn warns_once_and_finds_nothing() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        let flags = OpenFlags {
            warn: Arc::new(move |m: &str| sink.lock().unwrap().push(m.to_owned())),
            ..OpenFlags::default()
        };
        let map = open("mail.aliases", &flags).unwrap();
        let again = open("other", &flags).unwrap();
        assert_eq!(map.lookup("root").unwrap(), None);
        assert_eq!(again.lookup("root").unwrap(), None);
        assert_eq!(*seen.lock().unwrap(), vec![DISABLED.to_owned()]);
        assert_eq!(map.spec(), "nis:mail.aliases");
    }
}
