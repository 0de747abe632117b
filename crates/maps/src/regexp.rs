//! placeholder: `regexp:` tables (being built).

use crate::{Map, MapError, OpenFlags};

/// Opens a `regexp:` table named `name`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let _ = (name, flags);
    Err(MapError::Config(
        "unsupported dictionary type: regexp".to_owned(),
    ))
}
