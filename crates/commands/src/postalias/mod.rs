//! `postalias` and `newaliases`: build and query aliases(5) tables.
//!
//! `postalias` is postmap's engine with the aliases(5) reader, its own flag set and usage
//! text, `key:<TAB>value` output, and the `@`, `YP_LAST_MODIFIED` and `YP_MASTER_NAME`
//! entries added to every table it builds. `newaliases` builds every table named in
//! `alias_database`, as Postfix's `sendmail -bi` does.

use std::path::PathBuf;

use tern_config::config::Config;

use crate::fatal;
use crate::getopt::{Opt, getopt};
use crate::msg::{Fatal, Msg};
use crate::postmap::{self, Flavor};

/// `postalias`'s entry point; returns the exit status.
pub fn main() -> i32 {
    postmap::run(Flavor::Postalias, &crate::args())
}

/// `newaliases`'s entry point: `postalias` over each table of `alias_database`.
pub fn newaliases() -> i32 {
    let msg = Msg::from_args_basename();
    match tables(&crate::args()) {
        Ok((_, tables)) if tables.is_empty() => 0,
        Ok((dir, tables)) => {
            let mut args = Vec::new();
            if let Some(dir) = dir {
                args.push("-c".to_owned());
                args.push(dir.to_string_lossy().into_owned());
            }
            args.extend(tables);
            postmap::run(Flavor::Postalias, &args)
        }
        Err(f) => msg.fatal(&f),
    }
}

/// The configuration directory given with `-C`/`-c` and the tables of `alias_database`.
fn tables(args: &[String]) -> Result<(Option<PathBuf>, Vec<String>), Fatal> {
    let (opts, _) = getopt(args, "C:c:v").map_err(|e| fatal!("{e}"))?;
    let mut cli = None;
    for opt in opts {
        if let Opt::WithArg('C' | 'c', dir) = opt {
            cli = Some(PathBuf::from(dir));
        }
    }
    let config = Config::load_for_command(cli.as_deref())?;
    let list = config.expanded("alias_database")?.unwrap_or_default();
    let tables = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((cli, tables))
}
