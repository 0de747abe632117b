//! master.cf output in postconf: `-M`, `-F` and `-P`, with `-x` expanding `$name` in the
//! values. The formats are the config engine's (`mastercf::format`); this module picks the
//! listing, expands, and prints the warnings after the output as Postfix does.

use std::cell::RefCell;
use std::io::Write;

use tern_config::config::Config;
use tern_config::mastercf::{self as format, Service, ShowOptions};

use super::mode::{FOLD_LINE, HIDE_NAME, HIDE_VALUE, MASTER_FLD, MASTER_PARAM, SHOW_EVAL};
use super::params::expand_fatal;
use super::{Invocation, write_out};
use crate::msg::{Fatal, Msg};

pub(crate) fn show(
    msg: &Msg,
    inv: &Invocation,
    config: &Config,
    out: &mut dyn Write,
) -> Result<(), Fatal> {
    let m = inv.mode;
    let opts = ShowOptions {
        fold: m & FOLD_LINE != 0,
        hide_name: m & HIDE_NAME != 0,
        hide_value: m & HIDE_VALUE != 0,
    };
    // The first expansion error ends the run, as Postfix's fatal does.
    let failure: RefCell<Option<Fatal>> = RefCell::new(None);
    let eval = |service: &Service, value: &str| -> String {
        if m & SHOW_EVAL == 0 || failure.borrow().is_some() {
            return value.to_owned();
        }
        // Postfix expands in the entry's own -o name space first, then main.cf's.
        match config.expand(value, Some(service)) {
            Ok(expanded) => expanded.text,
            Err(err) => {
                *failure.borrow_mut() = Some(expand_fatal(msg, &err));
                value.to_owned()
            }
        }
    };
    let cf = &config.master;
    let listing = if m & MASTER_FLD != 0 {
        format::show_fields_with(cf, &inv.operands, opts, &eval)
    } else if m & MASTER_PARAM != 0 {
        format::show_params_with(cf, &inv.operands, opts, &eval)
    } else {
        format::show_entries_with(cf, &inv.operands, opts.fold, &eval)
    }?;
    if let Some(fatal) = failure.into_inner() {
        return Err(fatal);
    }
    write_out(out, &listing.text)?;
    for warning in &listing.warnings {
        msg.warn(warning);
    }
    Ok(())
}
