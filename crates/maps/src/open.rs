//! Opening a table by its `type:name`, as Postfix's dict_open() does: the type picks the
//! backend; fixed-string tables see keys folded to lower case unless the caller asks not to
//! (`postmap -f`), pattern tables (`regexp:`, `pcre:`, `cidr:`) see the key as given.

use crate::{Map, MapError, MapSpec, Warn};

/// How to open a table.
#[derive(Clone)]
pub struct OpenFlags {
    /// Fold keys to lower case in fixed-string tables (Postfix's DICT_FLAG_FOLD_FIX); on by
    /// default, off with `postmap -f`.
    pub fold_fix: bool,
    /// Where warnings go.
    pub warn: Warn,
}

impl std::fmt::Debug for OpenFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFlags")
            .field("fold_fix", &self.fold_fix)
            .finish_non_exhaustive()
    }
}

impl Default for OpenFlags {
    fn default() -> Self {
        OpenFlags {
            fold_fix: true,
            warn: crate::no_warnings(),
        }
    }
}

/// The table types Tern opens, in Postfix's `postconf -m` order.
pub const TYPES: &[&str] = &[
    "btree", "cdb", "cidr", "fail", "hash", "inline", "lmdb", "nis", "pcre", "proxy", "regexp",
    "static", "texthash", "unionmap", "unix",
];

/// Whether a type's keys are fixed strings (folded unless `fold_fix` is off).
fn is_fixed(kind: &str) -> bool {
    matches!(
        kind,
        "btree" | "cdb" | "hash" | "inline" | "lmdb" | "nis" | "texthash" | "unix"
    )
}

/// Opens `type:name`.
pub fn open(spec: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let parsed = MapSpec::parse(spec)?;
    let name = parsed.name.as_str();
    let map: Box<dyn Map> = match parsed.kind.as_str() {
        "hash" | "btree" | "lmdb" | "cdb" => crate::indexed::open(&parsed.kind, name, flags)?,
        "texthash" => crate::texthash::open(name, flags)?,
        "inline" => crate::inline::open(name, flags)?,
        "static" => crate::static_map::open(name, flags)?,
        "fail" => crate::fail::open(name, flags)?,
        "unionmap" => crate::unionmap::open(name, flags)?,
        "unix" => crate::unix::open(name, flags)?,
        "proxy" => crate::proxy::open(name, flags)?,
        "nis" => crate::nis::open(name, flags)?,
        "regexp" => crate::regexp::open(name, flags)?,
        "pcre" => crate::pcre::open(name, flags)?,
        "cidr" => crate::cidr::open(name, flags)?,
        other => {
            return Err(MapError::Config(format!(
                "unsupported dictionary type: {other}"
            )));
        }
    };
    if flags.fold_fix && is_fixed(&parsed.kind) {
        Ok(Box::new(Folded(map)))
    } else {
        Ok(map)
    }
}

/// A fixed-string table whose keys are looked up in lower case.
#[derive(Debug)]
struct Folded(Box<dyn Map>);

impl Map for Folded {
    fn spec(&self) -> &str {
        self.0.spec()
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        // Most keys are lower case already: fold (and allocate) only when needed.
        if key.is_ascii() && !key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.0.lookup(key)
        } else {
            self.0.lookup(&key.to_lowercase())
        }
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        self.0.sequence()
    }

    fn owner(&self) -> crate::Owner {
        self.0.owner()
    }
}
