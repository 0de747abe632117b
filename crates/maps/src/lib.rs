//! Lookup tables: Postfix's `type:name` maps, with Postfix's semantics.
//!
//! Every part of Tern that looks something up (aliases, access maps, transport, virtual,
//! canonical, relocated) goes through [`Map`]. A lookup answers found, not found, or a
//! lookup error; a lookup error is a temporary failure and is never taken for "not found".
//!
//! - [`spec`]: parsing `type:name` (with `inline:{...}` and `unionmap:{...}`).
//! - [`open`]: opening a table by its spec, with Postfix's key folding.
//! - [`source`]: the source-file format that `postmap` and `texthash:` read.
//! - [`aliases`]: the aliases(5) format that `postalias` reads.
//! - [`query`]: the query orders that access(5), virtual(5), canonical(5), aliases(5),
//!   transport(5) and relocated(5) define.
//! - [`indexed`]: the files `postmap` builds (`hash:`, `btree:`, `lmdb:`, `cdb:`).
//! - one module per other table type.
//!
//! Trust: table contents are data; a table file may be hostile (truncated, changed while
//! read) and gives an error, never a panic. Who may use `:include:`, commands and files is
//! decided by the table's owner, as local(8) does ([`Map::owner`]).

pub mod aliases;
pub mod cidr;
pub mod fail;
pub mod indexed;
pub mod inline;
pub mod nis;
pub mod open;
pub mod pattern;
pub mod pcre;
pub mod proxy;
pub mod query;
pub mod regexp;
pub mod source;
pub mod spec;
pub mod static_map;
pub mod texthash;
pub mod unionmap;
pub mod unix;

use std::sync::Arc;

pub use open::{OpenFlags, open};
pub use spec::MapSpec;

/// Why a lookup or an open failed. `Display` gives Postfix's message text (after
/// `NAME: warning: ` or `NAME: fatal: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// A temporary failure (I/O error, unreachable service): the caller defers, never treats
    /// it as "not found". The text is complete, naming the table (`table fail:x: query
    /// error: Application error`, `error reading lmdb:/x: ...`).
    #[error("{0}")]
    Retry(String),
    /// The table is misconfigured or unusable (unsupported type, unreadable file, bad
    /// syntax that Postfix treats as fatal).
    #[error("{0}")]
    Config(String),
}

/// Where warnings go (bad table lines, a NIS domain that is not set, ...): the caller prints
/// them with its program name, or logs them.
pub type Warn = Arc<dyn Fn(&str) + Send + Sync>;

/// A warning sink that drops everything (for tests and callers that do not care).
pub fn no_warnings() -> Warn {
    Arc::new(|_| {})
}

/// Who owns a table, which decides what its results may do (local(8): aliases from a table
/// owned by root may run commands as the default user; others run as the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Owned by root (or built in: `inline:`, `static:`).
    Trusted,
    /// Owned by this uid.
    User(u32),
    /// Unknown (a network table).
    Unknown,
}

/// One open lookup table.
pub trait Map: Send + Sync + std::fmt::Debug {
    /// The table's `type:name`, as Postfix names it in messages.
    fn spec(&self) -> &str;

    /// Looks `key` up. `Ok(None)` is "not found"; `Err` is a lookup error.
    fn lookup(&self, key: &str) -> Result<Option<String>, MapError>;

    /// Every entry, in the table's own order (`postmap -s`). Tables that cannot list their
    /// entries say so with a `Config` error, as Postfix does.
    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(MapError::Config(format!(
            "table {}: sequence operation is not supported",
            self.spec()
        )))
    }

    /// Who owns the table.
    fn owner(&self) -> Owner {
        Owner::Trusted
    }
}
