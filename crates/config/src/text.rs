//! Message text as Postfix prints it: shared by every part that builds a warning or fatal.

/// Text as Postfix's logging shows it: every byte that is not printable ASCII becomes `?`
/// (Postfix's msg layer does this to every warning and fatal line it prints, e.g. the `\r` of
/// a CRLF line in `missing '=' after attribute name: "b?"`, and `ö` as `??`).
///
/// XXX: Postfix keeps valid UTF-8 when its SMTPUTF8 support is on; we always replace.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// The C library's text for an I/O error, as Postfix's `%m` prints it ("No such file or
/// directory"), without Rust's " (os error N)" suffix.
pub fn errno_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_replaces_each_byte() {
        assert_eq!(printable(b"a\tb\r\xc3\xb6~"), "a?b???~");
        assert_eq!(printable("b\r\u{e9}".as_bytes()), "b???");
    }

    #[test]
    fn errno_text_is_the_c_library_text() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(errno_text(&err), "No such file or directory");
    }
}
