//! Postfix's user access lists for local commands (user_acl.c check_user_acl_byuid):
//! `authorized_submit_users` (sendmail, postdrop), `authorized_mailq_users` (postqueue
//! -p, -j, mailq) and `authorized_flush_users` (postqueue -f, -i, -s). A list of login
//! names, `!name`, and tables keyed by login name; a uid without a password entry is
//! `unknown`. A list that starts with `static:` (the default, `static:anyone`) lets
//! everyone through without a lookup, as Postfix's shortcut does.

use std::sync::Arc;

use tern_config::config::Config;
use tern_maps::OpenFlags;
use tern_rewrite::matchlist::MatchList;

use crate::fatal;
use crate::msg::Fatal;

/// `Ok(Some(name))` when the user with `uid` is not in the list `param`; the name is
/// what Postfix's messages show (`User NAME(UID) is not allowed to ...`).
pub fn denied(config: &Config, param: &str, uid: u32) -> Result<Option<String>, Fatal> {
    let value = config.expanded(param)?.unwrap_or_default();
    if value.trim_start().starts_with("static:") {
        return Ok(None);
    }
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| "unknown".to_owned(), |u| u.name);
    let flags = OpenFlags {
        fold_fix: true,
        warn: Arc::new(|_: &str| {}),
    };
    let open = |spec: &str| tern_maps::open(spec, &flags);
    let list = MatchList::parse(param, &value, false, &open).map_err(|e| fatal!("{e}"))?;
    match list.match_string(&name) {
        Ok(true) => Ok(None),
        Ok(false) => Ok(Some(name)),
        Err(e) => Err(fatal!("{param}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(line: &str) -> Config {
        Config::from_texts(
            std::path::Path::new("/nonexistent"),
            line,
            "",
            "mx.example.test",
        )
        .unwrap()
    }

    #[test]
    fn lists() {
        let root = 0;
        let table = [
            ("", None),
            ("authorized_submit_users = static:anyone", None),
            ("authorized_submit_users = root", None),
            (
                "authorized_submit_users = !root, static:anyone",
                Some("root"),
            ),
            ("authorized_submit_users = nobody", Some("root")),
            ("authorized_submit_users =", Some("root")),
        ];
        for (line, want) in table {
            let got = denied(&config(line), "authorized_submit_users", root).unwrap();
            assert_eq!(got.as_deref(), want, "{line}");
        }
    }
}
