//! Tern's configuration engine: `main.cf` and `master.cf` as Postfix reads them.
//!
//! This crate is sans-IO except for [`host`] (which asks the kernel for the host name and the
//! interface addresses) and the `load` helpers that read a file. It trusts nothing in the files
//! it parses: every hostile input ends in a typed error, never a panic.
//!
//! - [`maincf`]: the `main.cf` lexer (comments, continuation lines, `name = value`) and the
//!   text-to-text edits behind `postconf -e`, `-X` and `-#`.
//! - [`expand`]: `$name` expansion with Postfix's conditional and comparison forms.
//! - [`list`]: Postfix's list syntax (commas and/or whitespace, `{ }` grouping).
//! - [`mastercf`]: the `master.cf` service table and its `-o` overrides.
//! - [`registry`]: the one table of every parameter Tern knows, with Postfix's default text.
//! - [`host`]: defaults derived from the host (`myhostname`, `mydomain`, `mynetworks`).
//! - [`text`]: message text as Postfix prints it.
//! - [`config`]: the three put together: the value of a parameter as a Postfix program sees it.

pub mod config;
pub mod expand;
pub mod host;
pub mod list;
pub mod maincf;
pub mod mastercf;
pub mod params;
pub mod registry;
pub mod text;
