//! `postconf -e`, `-X` and `-#`: edits of main.cf that keep every byte they need not change.
//!
//! The argument checks and the text edit are the config engine's (`maincf::parse_edit_args`,
//! `maincf::edit_main`); this module reads the file, prints the warnings, and writes the new
//! text to `main.cf.tmp` beside the original, flushed to disk and renamed over it, so a reader
//! sees either the old file or the new one.

use std::fs;
use std::io::Write;

use tern_config::maincf::{self, errno_text};

use super::Invocation;
use super::mode::{COMMENT_OUT, EDIT_CONF};
use crate::fatal;
use crate::msg::{Fatal, Msg};

pub(crate) fn edit_main(msg: &Msg, inv: &Invocation) -> Result<(), Fatal> {
    let (op, warnings) = maincf::parse_edit_args(
        inv.mode & EDIT_CONF != 0,
        inv.mode & COMMENT_OUT != 0,
        &inv.operands,
    )?;
    for warning in warnings {
        msg.warn(warning);
    }
    let path = inv.dir.join("main.cf");
    let display = path.to_string_lossy().into_owned();
    let tmp = inv.dir.join("main.cf.tmp");
    let text = fs::read(&path)
        .map_err(|err| fatal!("open {display} for reading: {}", errno_text(&err)))?;
    let edited = maincf::edit_main(&text, &op, &display);
    for warning in &edited.warnings {
        msg.warn(warning);
    }
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&edited.text)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|err| {
        let _ = fs::remove_file(&tmp);
        fatal!("close {display}.tmp: {}", errno_text(&err))
    })
}
