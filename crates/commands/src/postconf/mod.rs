//! `postconf`: show and edit main.cf and master.cf, with Postfix's flags, output and exit codes.
//!
//! The flow follows Postfix's postconf: read main.cf (unless `-d`), apply `-o` overrides, know
//! the built-in, service-implied and user-defined names, then show or edit; warn about unused
//! and undefined names at the end. Option conflicts are refused with Postfix's messages.
//!
//! Security: postconf runs with the caller's rights and trusts nothing in the files it reads;
//! edits are written to a temporary file beside main.cf and renamed over it.

mod edit;
mod master;
mod params;

use std::io::Write;
use std::path::{Path, PathBuf};

use tern_config::config::{self, Config};
use tern_config::host::HostInfo;
use tern_config::maincf::{self, MainCf};
use tern_config::mastercf::{MasterCf, MasterCfError};

use crate::fatal;
use crate::getopt::{Opt, getopt};
use crate::msg::{Fatal, Msg};
use crate::vstream::ChunkedOut;

/// The mode bits, Postfix's PCF_* flags.
pub(crate) mod mode {
    pub const SHOW_NONDEF: u32 = 1 << 0; // -n
    pub const SHOW_DEFS: u32 = 1 << 1; // -d
    pub const EDIT_CONF: u32 = 1 << 2; // -e
    pub const SHOW_EVAL: u32 = 1 << 3; // -x
    pub const HIDE_NAME: u32 = 1 << 4; // -h
    pub const HIDE_VALUE: u32 = 1 << 5; // -H
    pub const FOLD_LINE: u32 = 1 << 6; // -f
    pub const MASTER_ENTRY: u32 = 1 << 7; // -M
    pub const MASTER_FLD: u32 = 1 << 8; // -F
    pub const MASTER_PARAM: u32 = 1 << 9; // -P
    pub const MAIN_PARAM: u32 = 1 << 10; // -p
    pub const EDIT_EXCL: u32 = 1 << 11; // -X
    pub const COMMENT_OUT: u32 = 1 << 12; // -#
    pub const SHOW_MAPS: u32 = 1 << 13; // -m
    pub const SHOW_LOCKS: u32 = 1 << 14; // -l
    pub const MAIN_OVER: u32 = 1 << 15; // -o
    pub const PARAM_CLASS: u32 = 1 << 16; // -C
    pub const SHOW_SASL_SERV: u32 = 1 << 17; // -a
    pub const SHOW_SASL_CLNT: u32 = 1 << 18; // -A
    pub const EXP_DSN_TEMPL: u32 = 1 << 19; // -b
    pub const DUMP_DSN_TEMPL: u32 = 1 << 20; // -t
    pub const SHOW_TLS: u32 = 1 << 21; // -T
}
#[allow(clippy::wildcard_imports)] // the PCF_* flag set, used throughout
use mode::*;

/// Option names for conflict messages, in Postfix's order (str_name_mask order).
const OPTION_NAMES: &[(&str, u32)] = &[
    ("-a", SHOW_SASL_SERV),
    ("-A", SHOW_SASL_CLNT),
    ("-b", EXP_DSN_TEMPL),
    ("-C", PARAM_CLASS),
    ("-d", SHOW_DEFS),
    ("-e", EDIT_CONF),
    ("-f", FOLD_LINE),
    ("-F", MASTER_FLD),
    ("-h", HIDE_NAME),
    ("-H", HIDE_VALUE),
    ("-l", SHOW_LOCKS),
    ("-m", SHOW_MAPS),
    ("-M", MASTER_ENTRY),
    ("-n", SHOW_NONDEF),
    ("-o", MAIN_OVER),
    ("-p", MAIN_PARAM),
    ("-P", MASTER_PARAM),
    ("-t", DUMP_DSN_TEMPL),
    ("-T", SHOW_TLS),
    ("-x", SHOW_EVAL),
    ("-X", EDIT_EXCL),
    ("-#", COMMENT_OUT),
];

/// Groups of options of which at most one may be given (Postfix's pcf_incompat_options).
const EXCLUSIVE: &[u32] = &[
    SHOW_SASL_SERV
        | SHOW_SASL_CLNT
        | EXP_DSN_TEMPL
        | SHOW_LOCKS
        | SHOW_MAPS
        | DUMP_DSN_TEMPL
        | MAIN_PARAM
        | MASTER_ENTRY
        | MASTER_FLD
        | MASTER_PARAM
        | SHOW_TLS,
    SHOW_DEFS | EDIT_CONF | SHOW_NONDEF | COMMENT_OUT | EDIT_EXCL,
    FOLD_LINE | EDIT_CONF | COMMENT_OUT | EDIT_EXCL,
    SHOW_EVAL | EDIT_CONF | COMMENT_OUT | EDIT_EXCL,
    MAIN_OVER | SHOW_DEFS | EDIT_CONF | COMMENT_OUT | EDIT_EXCL,
    HIDE_NAME | EDIT_CONF | COMMENT_OUT | EDIT_EXCL | HIDE_VALUE,
];

/// Each major mode and the modifiers it accepts (Postfix's pcf_compat_options).
const COMPATIBLE: &[(u32, u32)] = &[
    (SHOW_SASL_SERV, 0),
    (SHOW_SASL_CLNT, 0),
    (EXP_DSN_TEMPL, 0),
    (SHOW_LOCKS, 0),
    (SHOW_MAPS, 0),
    (SHOW_TLS, 0),
    (DUMP_DSN_TEMPL, 0),
    (
        MAIN_PARAM,
        EDIT_CONF
            | EDIT_EXCL
            | COMMENT_OUT
            | FOLD_LINE
            | HIDE_NAME
            | PARAM_CLASS
            | SHOW_EVAL
            | SHOW_DEFS
            | SHOW_NONDEF
            | MAIN_OVER
            | HIDE_VALUE,
    ),
    (
        MASTER_ENTRY,
        EDIT_CONF | EDIT_EXCL | COMMENT_OUT | FOLD_LINE | MAIN_OVER | SHOW_EVAL,
    ),
    (
        MASTER_FLD,
        EDIT_CONF | FOLD_LINE | HIDE_NAME | MAIN_OVER | SHOW_EVAL | HIDE_VALUE,
    ),
    (
        MASTER_PARAM,
        EDIT_CONF | EDIT_EXCL | FOLD_LINE | HIDE_NAME | MAIN_OVER | SHOW_EVAL | HIDE_VALUE,
    ),
    (PARAM_CLASS, MAIN_PARAM | SHOW_DEFS | SHOW_NONDEF),
];

/// Parameter classes for `-C`.
pub(crate) mod class {
    pub const BUILTIN: u32 = 1;
    pub const SERVICE: u32 = 2;
    pub const USER: u32 = 4;
    pub const ALL: u32 = 7;
}

/// The table types Tern opens (printed by `-m`): the lookup-table layer's list.
pub use tern_maps::open::TYPES as TABLE_TYPES;

/// The lock methods Tern supports (printed by `-l`), in Postfix's order.
pub const LOCK_TYPES: &[&str] = &["flock", "fcntl", "dotlock"];

/// One run's parsed command line.
pub(crate) struct Invocation {
    pub mode: u32,
    pub param_class: u32,
    pub dir: PathBuf,
    pub dir_given: bool,
    pub overrides: Vec<String>,
    pub operands: Vec<String>,
}

/// Runs postconf with the process's arguments; returns the exit status.
pub fn main() -> i32 {
    let msg = Msg::from_args();
    let args: Vec<String> = crate::args();
    match run(&msg, &args) {
        Ok(()) => 0,
        Err(fatal) => msg.fatal(&fatal),
    }
}

/// Runs postconf with `args` (without argv\[0\]).
pub fn run(msg: &Msg, args: &[String]) -> Result<(), Fatal> {
    let inv = parse_args(msg, args)?;
    let mut out = ChunkedOut::new(std::io::stdout().lock());
    let result = dispatch(msg, &inv, &mut out);
    match result {
        Ok(()) => out.flush().map_err(|err| fatal!("write error: {err}")),
        Err(fatal) => {
            out.discard();
            Err(fatal)
        }
    }
}

fn usage(msg: &Msg) -> Fatal {
    fatal!(
        "usage: {} [-a (server SASL types)] [-A (client SASL types)] [-b (bounce templates)] \
         [-c config_dir] [-c param_class] [-d (parameter defaults)] [-e (edit configuration)] \
         [-f (fold lines)] [-F (master.cf fields)] [-h (no names)] [-H (no values)] \
         [-l (lock types)] [-m (map types)] [-M (master.cf)] [-n (non-default parameters)] \
         [-o name=value (override parameter value)] [-p (main.cf, default)] \
         [-P (master.cf parameters)] [-t (bounce templates)] \
         [-T compile-version|run-version|public-key-algorithms] [-v (verbose)] \
         [-x (expand parameter values)] [-X (exclude)] [-# (comment-out)] [name...]",
        msg.prog()
    )
}

fn parse_args(msg: &Msg, args: &[String]) -> Result<Invocation, Fatal> {
    let (opts, operands) = match getopt(args, "aAbc:C:deEfFhHlmMno:pPtT:vxX#") {
        Ok(parsed) => parsed,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "{}: {err}", msg.prog());
            return Err(usage(msg));
        }
    };
    let mut mode = 0;
    let mut param_class = class::ALL;
    let mut cli_dir = None;
    let mut overrides = Vec::new();
    for opt in opts {
        match opt {
            Opt::WithArg('c', dir) => cli_dir = Some(PathBuf::from(dir)),
            Opt::WithArg('C', list) => param_class = parse_class(&list)?,
            Opt::WithArg('o', nv) => {
                mode |= MAIN_OVER;
                overrides.push(nv);
            }
            Opt::WithArg('T', _) => {
                if mode & SHOW_TLS != 0 {
                    return Err(fatal!("At most one -T <mode> option may be specified"));
                }
                mode |= SHOW_TLS;
            }
            Opt::Flag(c) => {
                mode |= match c {
                    'a' => SHOW_SASL_SERV,
                    'A' => SHOW_SASL_CLNT,
                    'b' | 't' => {
                        if mode & (EXP_DSN_TEMPL | DUMP_DSN_TEMPL) != 0 {
                            return Err(fatal!("specify one of -b and -t"));
                        }
                        if c == 'b' {
                            EXP_DSN_TEMPL
                        } else {
                            DUMP_DSN_TEMPL
                        }
                    }
                    'd' => SHOW_DEFS,
                    'e' => EDIT_CONF,
                    'f' => FOLD_LINE,
                    'F' => MASTER_FLD,
                    '#' => COMMENT_OUT,
                    'h' => HIDE_NAME,
                    'H' => HIDE_VALUE,
                    'l' => SHOW_LOCKS,
                    'm' => SHOW_MAPS,
                    'M' => MASTER_ENTRY,
                    'n' => SHOW_NONDEF,
                    'p' => MAIN_PARAM,
                    'P' => MASTER_PARAM,
                    'x' => SHOW_EVAL,
                    'X' => EDIT_EXCL,
                    // -v (verbose) and -E are accepted and have no effect here.
                    _ => 0,
                };
            }
            Opt::WithArg(..) => return Err(usage(msg)),
        }
    }
    if mode & EXCLUSIVE[0] == 0 {
        mode |= MAIN_PARAM;
    }
    let main_or_master = MAIN_PARAM | MASTER_ENTRY | MASTER_FLD | MASTER_PARAM;
    if mode & main_or_master != 0 && operands.first().is_some_and(|a| a.contains('=')) {
        mode |= EDIT_CONF;
    }
    check_exclusive(mode)?;
    check_compatible(mode)?;
    if mode & EDIT_CONF != 0 && operands.is_empty() {
        return Err(fatal!("-e requires name=value argument"));
    }
    let (dir, dir_given) = config::config_directory(cli_dir.as_deref());
    Ok(Invocation {
        mode,
        param_class,
        dir,
        dir_given,
        overrides,
        operands,
    })
}

fn parse_class(list: &str) -> Result<u32, Fatal> {
    let mut mask = 0;
    for word in list
        .split([',', ' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        mask |= match word.to_ascii_lowercase().as_str() {
            "builtin" => class::BUILTIN,
            "service" => class::SERVICE,
            "user" => class::USER,
            "all" => class::ALL,
            _ => return Err(fatal!("unknown -C option value \"{word}\" in \"{list}\"")),
        };
    }
    Ok(mask)
}

fn option_names(bits: u32) -> String {
    OPTION_NAMES
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_exclusive(mode: u32) -> Result<(), Fatal> {
    for group in EXCLUSIVE {
        let set = group & mode;
        if set.count_ones() > 1 {
            return Err(fatal!("specify one of {}", option_names(set)));
        }
    }
    Ok(())
}

fn check_compatible(mode: u32) -> Result<(), Fatal> {
    for (major, allowed) in COMPATIBLE {
        if mode & major != 0 {
            let excess = mode & !(major | allowed);
            if excess != 0 {
                return Err(fatal!(
                    "with option {}, do not specify {}",
                    option_names(*major),
                    option_names(excess)
                ));
            }
        }
    }
    Ok(())
}

fn dispatch(msg: &Msg, inv: &Invocation, out: &mut dyn Write) -> Result<(), Fatal> {
    let m = inv.mode;
    if m & (EXP_DSN_TEMPL | DUMP_DSN_TEMPL) != 0 {
        return Err(fatal!(
            "bounce templates (-b, -t) are not supported by Tern yet"
        ));
    }
    if m & SHOW_MAPS != 0 {
        for t in TABLE_TYPES {
            write_out(out, &format!("{t}\n"))?;
        }
        return Ok(());
    }
    if m & SHOW_LOCKS != 0 {
        for t in LOCK_TYPES {
            write_out(out, &format!("{t}\n"))?;
        }
        return Ok(());
    }
    if m & (MASTER_ENTRY | MASTER_FLD | MASTER_PARAM) != 0
        && m & (EDIT_CONF | EDIT_EXCL | COMMENT_OUT) == 0
    {
        let master = read_master(msg, &inv.dir, true)?;
        let mut config = load_main(msg, inv, master)?;
        let scan = params::register_user(msg, &mut config)?;
        master::show(msg, inv, &config, out)?;
        params::flag_unused_master(msg, &config, &scan);
        return Ok(());
    }
    if m & (SHOW_SASL_SERV | SHOW_SASL_CLNT) != 0 {
        // Tern's SASL is built in (the secure-submission work); no plug-in types yet.
        return Ok(());
    }
    if m & SHOW_TLS != 0 {
        return Err(fatal!("-T is not supported by Tern yet"));
    }
    if m & (EDIT_CONF | COMMENT_OUT | EDIT_EXCL) != 0 {
        if inv.operands.is_empty() {
            return Err(fatal!("missing service argument"));
        }
        if m & (MASTER_ENTRY | MASTER_FLD | MASTER_PARAM) != 0 {
            return Err(fatal!(
                "editing master.cf (-Me, -Fe, -Pe, -MX, -M#) is not supported by Tern yet"
            ));
        }
        return edit::edit_main(msg, inv);
    }
    // Show main.cf parameters.
    let master = read_master(msg, &inv.dir, false)?;
    let mut config = if m & SHOW_DEFS != 0 {
        let mut config = Config::new(&inv.dir, MainCf::default(), master, HostInfo::detect());
        config.set_defaults_only(true);
        config
    } else {
        load_main(msg, inv, master)?
    };
    config.set_process_name(&process_name(msg));
    let scan = if m & SHOW_DEFS == 0 {
        Some(params::register_user(msg, &mut config)?)
    } else {
        None
    };
    params::show(msg, inv, &config, out)?;
    if let Some(scan) = scan {
        params::flag_unused_main(msg, &config, out);
        params::flag_unused_master(msg, &config, &scan);
    }
    Ok(())
}

fn process_name(msg: &Msg) -> String {
    Path::new(msg.prog()).file_name().map_or_else(
        || "postconf".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads master.cf, printing its warnings as Postfix does while reading. A file that cannot
/// be opened is fatal when `must_open`, else a warning (the table is then empty); a bad entry
/// is always fatal.
fn read_master(msg: &Msg, dir: &Path, must_open: bool) -> Result<MasterCf, Fatal> {
    let mut warnings = Vec::new();
    let result = MasterCf::load_with(dir, &mut warnings);
    for warning in &warnings {
        msg.warn(warning);
    }
    match result {
        Ok(master) => Ok(master),
        Err(err @ MasterCfError::Open { .. }) if !must_open => {
            msg.warn(&err);
            Ok(MasterCf::default())
        }
        Err(err) => Err(err.into()),
    }
}

/// Reads main.cf, records `config_directory` when it was named, applies `-o` overrides.
fn load_main(msg: &Msg, inv: &Invocation, master: MasterCf) -> Result<Config, Fatal> {
    let main = match MainCf::load(&inv.dir) {
        Ok(main) => main,
        Err(err) => {
            for warning in err.warnings() {
                msg.warn(warning);
            }
            return Err(err.into());
        }
    };
    for warning in &main.warnings {
        msg.warn(warning);
    }
    let mut config = Config::new(&inv.dir, main, master, HostInfo::detect());
    config.set_process_name(&process_name(msg));
    if inv.dir_given {
        config.set("config_directory", &inv.dir.to_string_lossy());
    }
    for nv in &inv.overrides {
        let (name, value) = maincf::split_nameval(nv.as_bytes())
            .map_err(|err| fatal!("invalid parameter override: {nv}: {err}"))?;
        config.set(
            &String::from_utf8_lossy(name),
            &String::from_utf8_lossy(value),
        );
    }
    Ok(config)
}

pub(crate) fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Fatal> {
    out.write_all(text.as_bytes())
        .map_err(|err| fatal!("write error: {err}"))
}
