//! Postfix's list syntax: elements separated by commas and/or whitespace, `{ ... }` groups one
//! element that may hold spaces, `type:table` and `/file/name` elements kept whole.

/// Why a list did not parse; `Display` gives Postfix's message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("placeholder")]
    Placeholder,
}

/// Splits a list value into its elements.
pub fn split(text: &str) -> Result<Vec<String>, ListError> {
    let _ = text;
    unimplemented!()
}
