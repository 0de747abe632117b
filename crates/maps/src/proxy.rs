//! placeholder: `proxy:` tables (being built).

use crate::{Map, MapError, OpenFlags};

/// Opens a `proxy:` table named `name`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let _ = (name, flags);
    Err(MapError::Config(
        "unsupported dictionary type: proxy".to_owned(),
    ))
}
