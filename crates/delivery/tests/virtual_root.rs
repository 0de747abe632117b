//! virtual(8) as root: Maildir and mailbox deliveries with ids from virtual_uid_maps and
//! virtual_gid_maps (`static:`), unknown users, virtual_minimum_uid and
//! virtual_mailbox_limit, settings from main.cf and `-o` overrides.
//!
//! `harness = false`: uid switching needs a single-threaded process (crate::privs).

mod mailbox_util;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use mailbox_util::{TestUser, chmod, need_root, open_tempdir};
use tern_config::config::Config;
use tern_delivery::request::Delivered;
use tern_delivery::virtual_agent::{VirtualRecipient, deliver_one};

fn main() {
    mailbox_util::run(&[("virtual_maildir_mbox_unknown_and_limits", virtual_cases)]);
}

const MESSAGE: &str = "Subject: virtual\n\nFrom here\nbody\n";

fn virtual_cases() -> Result<(), String> {
    need_root()?;
    let tmp = open_tempdir()?;
    let user = TestUser::create("vm1", tmp.path())?;
    let base = tmp.path().join("vmail");
    std::fs::create_dir(&base).map_err(|e| e.to_string())?;
    nix::unistd::chown(
        &base,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .map_err(|e| e.to_string())?;
    chmod(&base, 0o700)?;
    let conf = tmp.path().join("conf");
    std::fs::create_dir(&conf).map_err(|e| e.to_string())?;
    std::fs::write(
        conf.join("vmailbox"),
        "a@v.test v.test/a/\nb@v.test v.test/b\n@w.test v.test/catchall\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        conf.join("main.cf"),
        format!(
            "virtual_mailbox_base = {}\nvirtual_mailbox_maps = texthash:{}/vmailbox\n\
             virtual_uid_maps = static:{}\nvirtual_gid_maps = static:{}\n\
             virtual_minimum_uid = 100\nrecipient_delimiter = +\n",
            base.display(),
            conf.display(),
            user.uid,
            user.gid
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(conf.join("master.cf"), "").map_err(|e| e.to_string())?;
    let config = Config::load(&conf).map_err(|e| format!("config: {e}"))?;
    let none = HashMap::new();
    let mut warnings = Vec::new();
    let mut deliver = |to: &str, overrides: &HashMap<String, String>| {
        deliver_one(
            &config,
            overrides,
            VirtualRecipient {
                address: to,
                orig_rcpt: "",
                verify: false,
            },
            "s@example.test",
            &mut MESSAGE.as_bytes(),
            &mut |w| warnings.push(w.to_owned()),
        )
        .map_err(|e| format!("{e}"))
    };
    let sent = |text: &str| Delivered::Sent {
        dsn: "2.0.0".into(),
        text: text.into(),
    };
    let table: Vec<(&str, HashMap<String, String>, Delivered)> = vec![
        ("A@v.test", none.clone(), sent("delivered to maildir")),
        ("a+ext@v.test", none.clone(), sent("delivered to maildir")),
        ("b@v.test", none.clone(), sent("delivered to mailbox")),
        ("x@w.test", none.clone(), sent("delivered to mailbox")),
        (
            "c@v.test",
            none.clone(),
            Delivered::Bounced {
                dsn: "5.1.1".into(),
                text: "unknown user: \"c@v.test\"".into(),
            },
        ),
        (
            "a@v.test",
            HashMap::from([("virtual_minimum_uid".to_owned(), (user.uid + 1).to_string())]),
            Delivered::Deferred {
                dsn: "4.3.5".into(),
                text: "mail system configuration error".into(),
            },
        ),
        (
            "a@v.test",
            HashMap::from([("virtual_mailbox_limit".to_owned(), "20".to_owned())]),
            Delivered::Bounced {
                dsn: "5.2.2".into(),
                text: "maildir delivery failed: error writing message: File too large".into(),
            },
        ),
        (
            "b@v.test",
            HashMap::from([("virtual_mailbox_limit".to_owned(), "20".to_owned())]),
            Delivered::Bounced {
                dsn: "5.2.2".into(),
                text: format!(
                    "delivery failed to mailbox {}/v.test/b: error writing message: File too large",
                    base.display()
                ),
            },
        ),
    ];
    for (to, overrides, want) in &table {
        let got = deliver(to, overrides)?;
        if &got != want {
            return Err(format!("{to} {overrides:?}: {got:?}, want {want:?}"));
        }
    }
    let bad_uid = format!(
        "recipient a@v.test: bad uid {} in virtual_uid_maps",
        user.uid
    );
    if !warnings.contains(&bad_uid) {
        return Err(format!("warnings: {warnings:?}"));
    }
    // The files belong to the virtual user, mode 0600.
    let new = base.join("v.test/a/new");
    let files: Vec<_> = std::fs::read_dir(&new)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    if files.len() != 2 {
        return Err(format!("{} files in {}", files.len(), new.display()));
    }
    let text = std::fs::read_to_string(&files[0]).map_err(|e| e.to_string())?;
    if !text.starts_with("Return-Path: <s@example.test>\nX-Original-To: ") {
        return Err(text);
    }
    for p in [
        files[0].clone(),
        base.join("v.test/b"),
        base.join("v.test/catchall"),
    ] {
        let st = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if (st.uid(), st.gid(), st.mode() & 0o777) != (user.uid, user.gid, 0o600) {
            return Err(format!(
                "{}: {}:{} {:o}",
                p.display(),
                st.uid(),
                st.gid(),
                st.mode()
            ));
        }
    }
    let mbox = std::fs::read_to_string(base.join("v.test/b")).map_err(|e| e.to_string())?;
    if !mbox.contains("\nDelivered-To: b@v.test\nSubject: virtual\n\n>From here\nbody\n\n") {
        return Err(mbox);
    }
    Ok(())
}
