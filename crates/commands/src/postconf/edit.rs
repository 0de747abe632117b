//! `postconf -e`, `-X` and `-#`: edits of main.cf that keep every byte they need not change.
//!
//! The new text is written to `main.cf.tmp` beside the original, flushed to disk and renamed
//! over it, so a reader sees either the old file or the new one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;

use tern_config::maincf::{self, MainCf};

use super::mode::{COMMENT_OUT, EDIT_CONF};
use super::{Invocation, split_nameval};
use crate::fatal;
use crate::msg::{Fatal, Msg};

pub(crate) fn edit_main(msg: &Msg, inv: &Invocation) -> Result<(), Fatal> {
    let mut requests: Vec<(String, Option<String>)> = Vec::new();
    for arg in &inv.operands {
        if arg.contains('\n') {
            return Err(fatal!("-e, -X, or -# accepts no multi-line input"));
        }
        let cp = arg.trim_start_matches([' ', '\t', '\r', '\n', '\x0b', '\x0c']);
        if cp.starts_with('#') {
            return Err(fatal!("-e, -X, or -# accepts no comment input"));
        }
        let (name, value) = if inv.mode & EDIT_CONF != 0 {
            let (n, v) = split_nameval(cp).map_err(|err| fatal!("{err}: \"{cp}\""))?;
            (n, Some(v))
        } else {
            if cp.is_empty() {
                return Err(fatal!("-X or -# requires non-blank parameter names"));
            }
            if cp.contains('=') {
                return Err(fatal!("-X or -# requires parameter names without value"));
            }
            (
                cp.trim_end_matches([' ', '\t', '\r', '\n']).to_owned(),
                None,
            )
        };
        if let Some(pos) = requests.iter().position(|(n, _)| *n == name) {
            let (_, earlier) = requests.remove(pos);
            msg.warn(format!(
                "ignoring earlier request: '{name} = {}'",
                earlier.unwrap_or_else(|| "(null)".to_owned())
            ));
        }
        requests.push((name, value));
    }

    let path = inv.dir.join("main.cf");
    let display = path.to_string_lossy().into_owned();
    let tmp = inv.dir.join("main.cf.tmp");
    let text = fs::read(&path).map_err(|err| {
        let _ = fs::remove_file(&tmp);
        fatal!(
            "open {display} for reading: {}",
            crate::msg::errno_text(&err)
        )
    })?;

    // Postfix warns once for each edited name that main.cf defines more than once.
    if let Ok(parsed) = MainCf::parse(&text, &display) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for def in &parsed.definitions {
            *counts.entry(def.name.as_str()).or_default() += 1;
        }
        for (name, _) in &requests {
            if counts.get(name.as_str()).copied().unwrap_or(0) > 1 {
                msg.warn(format!("{display}: multiple entries for \"{name}\""));
            }
        }
    }

    let names: Vec<String> = requests.iter().map(|(n, _)| n.clone()).collect();
    let new_text = if inv.mode & EDIT_CONF != 0 {
        let pairs: Vec<(String, String)> = requests
            .into_iter()
            .map(|(n, v)| (n, v.unwrap_or_default()))
            .collect();
        maincf::edit_set(&text, &pairs)
    } else if inv.mode & COMMENT_OUT != 0 {
        maincf::edit_comment_out(&text, &names)
    } else {
        maincf::edit_remove(&text, &names)
    };

    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&new_text)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|err| {
        let _ = fs::remove_file(&tmp);
        fatal!("close {display}.tmp: {}", crate::msg::errno_text(&err))
    })
}
