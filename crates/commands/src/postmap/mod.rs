//! `postmap`: build, query, list and edit Postfix lookup tables, with postmap(1)'s flags,
//! messages and exit codes. `postalias` runs the same code with the aliases(5) reader
//! ([`Flavor::Postalias`]).
//!
//! Flow: parse flags (one mode of build, `-q`, `-d`, `-s`; conflicts refused with Postfix's
//! text), read main.cf for `default_database_type` (`-c dir`, `MAIL_CONFIG`), then act on
//! each `[type:]name` in turn. Queries open tables lazily and stop at the first table that
//! has the key, so a later table that cannot be opened does not matter, as in Postfix.
//!
//! Security: runs with the caller's rights. XXX: Postfix, run as root, drops to the source
//! file's owner before building (unless `-o`); Tern does not change its uid yet.

mod build;
mod query;

use std::io::Write;
use std::path::PathBuf;

use tern_config::config::Config;
use tern_maps::indexed::Duplicates;
use tern_maps::{OpenFlags, Warn};

use crate::fatal;
use crate::getopt::{Opt, getopt};
use crate::msg::{Fatal, Msg};
use crate::vstream::ChunkedOut;

/// Which command this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Postmap,
    Postalias,
}

impl Flavor {
    /// The flags getopt accepts.
    fn spec(self) -> &'static str {
        match self {
            Flavor::Postmap => "bc:d:fFhimnNopq:rsuUvw",
            Flavor::Postalias => "c:d:finNopq:rsuvw",
        }
    }

    fn usage(self) -> Fatal {
        match self {
            Flavor::Postmap => fatal!(
                "usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file..."
            ),
            Flavor::Postalias => fatal!(
                "usage: postalias [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file..."
            ),
        }
    }

    /// The separator between key and value in `-q -` and `-s` output.
    fn separator(self) -> &'static str {
        match self {
            Flavor::Postmap => "\t",
            Flavor::Postalias => ":\t",
        }
    }
}

/// What the run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Build,
    Query(String),
    Delete(String),
    Sequence,
}

/// Parsed flags.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub flavor: Flavor,
    pub mode: Mode,
    pub config_dir: Option<PathBuf>,
    pub fold: bool,
    /// `-N` (Some(true)) or `-n` (Some(false)); `None`: the table type's own default.
    pub nul: Option<bool>,
    pub duplicates: Duplicates,
    pub incremental: bool,
    pub inherit_mode: bool,
    /// `-h`: query header lines of a message on stdin.
    pub headers: bool,
    /// `-b`: query body lines of a message on stdin.
    pub body: bool,
    /// `-F`: values are base64 (decoded on output).
    pub base64: bool,
}

/// `postmap`'s entry point; returns the exit status.
pub fn main() -> i32 {
    run(Flavor::Postmap, &crate::args())
}

/// Runs `flavor` with `args` (without argv\[0\]); returns the exit status.
pub fn run(flavor: Flavor, args: &[String]) -> i32 {
    let msg = Msg::from_args_basename();
    let mut out = ChunkedOut::new(raw_stdout());
    match run_with(flavor, args, &msg, &mut out) {
        Ok(status) => {
            let _ = out.flush();
            status
        }
        Err(f) => {
            out.discard();
            msg.fatal(&f)
        }
    }
}

/// Standard output without Rust's line buffering under [`ChunkedOut`], which already buffers
/// as Postfix's VSTREAM does: std's line writer would split each 4096-byte chunk at its last
/// newline into two writes (11,340 system calls for 1M `-q -` answers where Postfix makes
/// 5,731). A duplicate of descriptor 1 writes each chunk whole, as Postfix does.
fn raw_stdout() -> Box<dyn Write> {
    use std::os::fd::AsFd;
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        // Descriptor 1 closed: std's stdout reports the errors as before.
        Err(_) => Box::new(std::io::stdout().lock()),
    }
}

fn run_with(flavor: Flavor, args: &[String], msg: &Msg, out: &mut dyn Write) -> Result<i32, Fatal> {
    let (opts, files) = parse_args(flavor, args, msg)?;
    if files.is_empty() {
        return Err(flavor.usage());
    }
    let config = Config::load_for_command(opts.config_dir.as_deref())?;
    let default_type = config
        .expanded("default_database_type")?
        .unwrap_or_else(|| "hash".to_owned());
    let printer = msg.clone();
    let warn: Warn = std::sync::Arc::new(move |w: &str| printer.warn(w));
    let flags = OpenFlags {
        fold_fix: opts.fold,
        warn: warn.clone(),
    };
    let specs: Vec<(String, String)> = files
        .iter()
        .map(|f| match f.split_once(':') {
            Some((kind, name)) => (kind.to_owned(), name.to_owned()),
            None => (default_type.clone(), f.clone()),
        })
        .collect();
    match &opts.mode {
        Mode::Query(key) if key == "-" => query::query_stdin(&opts, &specs, &flags, out),
        Mode::Query(key) => query::query_one(&opts, &specs, &flags, key, out),
        Mode::Sequence => query::sequence(&opts, &specs, &flags, out),
        Mode::Delete(key) => build::delete(&opts, &specs, key, &warn),
        Mode::Build => {
            for (kind, name) in &specs {
                build::build(&opts, &config, kind, name, &warn)?;
            }
            Ok(0)
        }
    }
}

/// Parses the flags, refusing conflicts with Postfix's messages.
fn parse_args(flavor: Flavor, args: &[String], msg: &Msg) -> Result<(Options, Vec<String>), Fatal> {
    let (parsed, files) = getopt(args, flavor.spec()).map_err(|e| {
        // glibc prints its own complaint before the usage message.
        let _ = writeln!(std::io::stderr(), "{}: {e}", msg.prog());
        flavor.usage()
    })?;
    let mut opts = Options {
        flavor,
        mode: Mode::Build,
        config_dir: None,
        fold: true,
        nul: None,
        duplicates: Duplicates::Warn,
        incremental: false,
        inherit_mode: true,
        headers: false,
        body: false,
        base64: false,
    };
    let mut mime = false;
    for opt in parsed {
        match opt {
            Opt::WithArg('c', dir) => opts.config_dir = Some(PathBuf::from(dir)),
            Opt::WithArg('d', key) => {
                if opts.mode != Mode::Build {
                    return Err(fatal!("specify only one of -s -q or -d"));
                }
                opts.mode = Mode::Delete(key);
            }
            Opt::WithArg('q', key) => {
                if opts.mode != Mode::Build {
                    return Err(fatal!("specify only one of -s -q or -d"));
                }
                opts.mode = Mode::Query(key);
            }
            Opt::Flag('s') => {
                if opts.mode != Mode::Build {
                    return Err(fatal!("specify only one of -s or -q or -d"));
                }
                opts.mode = Mode::Sequence;
            }
            Opt::Flag('b') => opts.body = true,
            Opt::Flag('h') => opts.headers = true,
            Opt::Flag('m') => mime = true,
            Opt::Flag('f') => opts.fold = false,
            Opt::Flag('F') => opts.base64 = true,
            Opt::Flag('i') => opts.incremental = true,
            Opt::Flag('n') => opts.nul = Some(false),
            Opt::Flag('N') => opts.nul = Some(true),
            Opt::Flag('p') => opts.inherit_mode = false,
            Opt::Flag('r') => opts.duplicates = Duplicates::Replace,
            Opt::Flag('w') => opts.duplicates = Duplicates::Ignore,
            // -o (keep root), -u/-U (UTF-8 checks), -v (verbose): accepted, no effect here.
            _ => {}
        }
    }
    if (opts.headers || opts.body || mime) && opts.mode != Mode::Query("-".to_owned()) {
        return Err(fatal!("specify -b -h or -m only with \"-q -\""));
    }
    Ok((opts, files))
}
