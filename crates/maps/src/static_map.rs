//! placeholder: `static:` tables (being built).

use crate::{Map, MapError, OpenFlags};

/// Opens a `static:` table named `name`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let _ = (name, flags);
    Err(MapError::Config(
        "unsupported dictionary type: static".to_owned(),
    ))
}
