//! Tern's command-line programs, each a thin `main` over the libraries: Postfix's names,
//! flags, messages and exit codes.
//!
//! - [`msg`]: `prog: warning: ...` and `prog: fatal: ...` on standard error.
//! - [`getopt`]: POSIX getopt, as Postfix's commands parse their flags.
//! - [`postconf`]: the `postconf` command.
//! - [`postfix`]: the `postfix` control command.
//! - [`postmap`]: the `postmap` command (and `postalias`'s engine).
//! - [`postalias`]: the `postalias` and `newaliases` commands.
//! - [`vstream`]: standard output buffered as Postfix buffers it.

pub mod getopt;
pub mod msg;
pub mod postalias;
pub mod postconf;
pub mod postfix;
pub mod postmap;
pub mod vstream;

use std::os::unix::ffi::OsStrExt;

/// The command's arguments without argv\[0\], as text. Postfix takes bytes; an argument
/// that is not UTF-8 is converted with U+FFFD here (never a panic), and
/// [`non_utf8_args`] gives its bytes, so that a command can answer as Postfix does.
pub fn args() -> Vec<String> {
    std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The arguments that are not UTF-8: each as [`args`] shows it, and its bytes.
pub fn non_utf8_args() -> Vec<(String, Vec<u8>)> {
    std::env::args_os()
        .skip(1)
        .filter(|a| a.to_str().is_none())
        .map(|a| (a.to_string_lossy().into_owned(), a.as_bytes().to_vec()))
        .collect()
}
