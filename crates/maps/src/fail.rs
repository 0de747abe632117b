//! placeholder: `fail:` tables (being built).

use crate::{Map, MapError, OpenFlags};

/// Opens a `fail:` table named `name`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let _ = (name, flags);
    Err(MapError::Config(
        "unsupported dictionary type: fail".to_owned(),
    ))
}
