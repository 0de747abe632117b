//! Tern's command-line programs, each a thin `main` over the libraries: Postfix's names,
//! flags, messages and exit codes.
//!
//! - [`msg`]: `prog: warning: ...` and `prog: fatal: ...` on standard error.
//! - [`getopt`]: POSIX getopt, as Postfix's commands parse their flags.
//! - [`postconf`]: the `postconf` command.
//! - [`postfix`]: the `postfix` control command.
//! - [`postmap`]: the `postmap` command (and `postalias`'s engine).
//! - [`postalias`]: the `postalias` and `newaliases` commands.
//! - [`postcat`]: the `postcat` command (queue files in Postfix's layout).
//! - [`postqueue`]: the `postqueue` and `mailq` commands (the listing of `sendmail -bp`).
//! - [`postsuper`]: the `postsuper` command (queue maintenance for root).
//! - [`vstream`]: standard output buffered as Postfix buffers it.

pub mod acl;
pub mod getopt;
pub mod msg;
pub mod postalias;
pub mod postcat;
pub mod postconf;
pub mod postdrop;
pub mod postfix;
pub mod postlog;
pub mod postmap;
pub mod postqueue;
pub mod postsuper;
pub mod qshape;
pub mod sendmail;
pub mod vstream;

use std::os::unix::ffi::OsStrExt;

/// The command's arguments without argv\[0\], as text. Postfix takes bytes; in an
/// argument that is not UTF-8 each byte that is not part of a valid sequence becomes `?`
/// (what Postfix prints for it), never a panic, and [`non_utf8_args`] gives the
/// argument's bytes, so that a command can answer as Postfix does.
pub fn args() -> Vec<String> {
    std::env::args_os()
        .skip(1)
        .map(|a| text_of(a.as_bytes()))
        .collect()
}

/// The arguments that are not UTF-8: each as [`args`] shows it, and its bytes.
pub fn non_utf8_args() -> Vec<(String, Vec<u8>)> {
    std::env::args_os()
        .skip(1)
        .filter(|a| a.to_str().is_none())
        .map(|a| (text_of(a.as_bytes()), a.as_bytes().to_vec()))
        .collect()
}

/// `bytes` as text, each byte outside a valid UTF-8 sequence shown as `?`.
fn text_of(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|_| '?'));
    }
    out
}
