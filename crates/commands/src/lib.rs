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
