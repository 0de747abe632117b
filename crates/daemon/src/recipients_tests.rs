//! Recipient validation: the key forms, the class dispatch, the reply texts and codes.

use std::path::Path;

use tern_config::config::Config;
use tern_config::host::HostInfo;
use tern_config::maincf::MainCf;
use tern_config::mastercf::MasterCf;

use super::*;

const BASE: &str = "compatibility_level = 3.6\nmyhostname = mx.example.com\n\
                    mydestination = $myhostname, localhost\nrecipient_delimiter = +\n\
                    alias_maps =\nlocal_recipient_maps = inline:{root=x, alice=x}\n\
                    virtual_alias_domains = valias.test\n\
                    virtual_alias_maps = inline:{a@valias.test=root}\n\
                    virtual_mailbox_domains = vmbox.test\n\
                    virtual_mailbox_maps = inline:{c@vmbox.test=x}\n\
                    relay_domains = relay.test\n\
                    relay_recipient_maps = inline:{e@relay.test=x}\n";

fn config(extra: &str) -> Config {
    let text = format!("{BASE}{extra}");
    let main = MainCf::parse(text.as_bytes(), "main.cf").expect("main.cf");
    let master =
        MasterCf::parse(b"smtp inet n - n - - smtpd\n".as_slice(), "master.cf").expect("master.cf");
    Config::new(
        Path::new("/nonexistent"),
        main,
        master,
        HostInfo::from_hostname("mx.example.com"),
    )
}

/// The check's reply for `rcpt` under BASE plus `extra`; `None` when it is known.
fn check(extra: &str, rcpt: &str) -> Option<String> {
    let config = config(extra);
    let warn = tern_maps::no_warnings();
    let resolver = Resolver::from_config(&config, warn.clone()).expect("resolver");
    let params = crate::relay::recipient_params(&config, None).expect("params");
    let maps = RecipientMaps::open(params, &warn, &|_| {});
    match maps.check(&resolver, rcpt, &warn) {
        Decision::Dunno => None,
        Decision::Reject(r) | Decision::TempFail(r) => Some(r.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn unknown(rcpt: &str, table: &str) -> String {
    format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in {table}")
}

#[test]
fn key_forms_and_classes() {
    let local = "local recipient table";
    let cases: &[(&str, &str, Option<String>)] = &[
        // Local class: the local part alone matches, with and without the extension.
        ("", "root@mx.example.com", None),
        ("", "root", None),
        ("", "ROOT@MX.EXAMPLE.COM", None),
        ("", "alice+list@localhost", None),
        ("", "root@[127.0.0.1]", None),
        (
            "",
            "bob@mx.example.com",
            Some(unknown("bob@mx.example.com", local)),
        ),
        ("", "bob", Some(unknown("bob", local))),
        (
            "",
            "bob+root@localhost",
            Some(unknown("bob+root@localhost", local)),
        ),
        // Always known in a local domain.
        ("", "postmaster@localhost", None),
        ("", "Postmaster@mx.example.com", None),
        ("", "MAILER-DAEMON@localhost", None),
        ("", "double-bounce@localhost", None),
        ("", "postmaster", None),
        // The full address and @domain forms.
        (
            "local_recipient_maps = inline:{bob@localhost=x}\n",
            "bob@localhost",
            None,
        ),
        (
            "local_recipient_maps = inline:{@localhost=x}\n",
            "anyone@localhost",
            None,
        ),
        (
            "local_recipient_maps = inline:{bob@localhost=x}\n",
            "bob+x@localhost",
            None,
        ),
        // An empty local_recipient_maps turns the local check off.
        ("local_recipient_maps =\n", "bob@localhost", None),
        (
            "show_user_unknown_table_name = no\n",
            "bob@localhost",
            Some("550 5.1.1 <bob@localhost>: Recipient address rejected: User unknown".into()),
        ),
        (
            "unknown_local_recipient_reject_code = 450\n",
            "bob@localhost",
            Some(
                "450 4.1.1 <bob@localhost>: Recipient address rejected: User unknown in local \
                 recipient table"
                    .into(),
            ),
        ),
        // Canonical and virtual alias entries make any class known.
        (
            "canonical_maps = inline:{zed@localhost=root}\n",
            "zed@localhost",
            None,
        ),
        (
            "recipient_canonical_maps = inline:{@localhost=root}\n",
            "zed@localhost",
            None,
        ),
        // Virtual alias class: known by virtual_alias_maps, else the resolver's error.
        ("", "a@valias.test", None),
        (
            "",
            "b@valias.test",
            Some(unknown("b@valias.test", "virtual alias table")),
        ),
        (
            "unknown_virtual_alias_reject_code = 551\n",
            "b@valias.test",
            Some(
                "551 5.1.1 <b@valias.test>: Recipient address rejected: User unknown in \
                 virtual alias table"
                    .into(),
            ),
        ),
        // Virtual mailbox class.
        ("", "c@vmbox.test", None),
        (
            "",
            "d@vmbox.test",
            Some(unknown("d@vmbox.test", "virtual mailbox table")),
        ),
        ("virtual_mailbox_maps =\n", "d@vmbox.test", None),
        // Relay class.
        ("", "e@relay.test", None),
        (
            "",
            "f@relay.test",
            Some(unknown("f@relay.test", "relay recipient table")),
        ),
        ("relay_recipient_maps =\n", "f@relay.test", None),
        // The default class is not checked.
        ("", "g@elsewhere.org", None),
        // The error and retry transports.
        (
            "transport_maps = inline:{gone@localhost=error:gone}\n",
            "gone@localhost",
            Some("550 5.1.1 <gone@localhost>: Recipient address rejected: gone".into()),
        ),
        (
            "transport_maps = inline:{later@localhost=retry:later}\n",
            "later@localhost",
            Some("450 4.1.1 <later@localhost>: Recipient address rejected: later".into()),
        ),
        // Lookup errors defer; they are never "not found".
        (
            "local_recipient_maps = fail:x\n",
            "bob@localhost",
            Some("451 4.3.0 <bob@localhost>: Temporary lookup failure".into()),
        ),
        (
            "local_recipient_maps = hash:/nonexistent/aliases\n",
            "root@localhost",
            Some("451 4.3.0 <root@localhost>: Temporary lookup failure".into()),
        ),
        (
            "local_recipient_maps = nosuchtype:x\n",
            "root",
            Some("451 4.3.0 <root>: Temporary lookup failure".into()),
        ),
        // receive_override_options = no_unknown_recipient_checks.
        (
            "receive_override_options = no_unknown_recipient_checks\n",
            "bob@localhost",
            None,
        ),
    ];
    for (extra, rcpt, want) in cases {
        assert_eq!(check(extra, rcpt), *want, "{extra}{rcpt}");
    }
}

#[test]
fn surrogate_warns_on_each_lookup() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&seen);
    let warn: tern_maps::Warn = Arc::new(move |t: &str| sink.lock().expect("lock").push(t.into()));
    let errors = Mutex::new(Vec::<String>::new());
    let config = config("local_recipient_maps = nosuchtype:x\n");
    let resolver = Resolver::from_config(&config, tern_maps::no_warnings()).expect("resolver");
    let params = crate::relay::recipient_params(&config, None).expect("params");
    let maps = RecipientMaps::open(params, &warn, &|t| {
        errors.lock().expect("lock").push(t.into());
    });
    assert_eq!(
        *errors.lock().expect("lock"),
        vec!["unsupported dictionary type: nosuchtype".to_owned()]
    );
    let _ = maps.check(&resolver, "bob@localhost", &warn);
    let seen = seen.lock().expect("lock");
    assert!(
        seen.iter()
            .any(|w| w == "nosuchtype:x is unavailable. unsupported dictionary type: nosuchtype"),
        "{seen:?}"
    );
}

#[test]
fn status_helpers() {
    for (default, text, want) in [
        ("5.1.1", "5.1.6 User has moved", ("5.1.6", "User has moved")),
        ("5.1.1", "User unknown", ("5.1.1", "User unknown")),
        ("4.1.1", "4.7.1 try later", ("4.7.1", "try later")),
        ("5.1.1", "9.1.1 x", ("5.1.1", "9.1.1 x")),
        ("5.1.1", "5.1 x", ("5.1.1", "5.1 x")),
    ] {
        let got = dsn_split(default, text);
        assert_eq!((got.0.as_str(), got.1.as_str()), want, "{text}");
    }
    for (dsn, want) in [
        ("5.1.1", "5.1.1"),
        ("5.1.6", "5.1.6"),
        ("5.1.7", "5.1.3"),
        ("5.1.8", "5.1.2"),
        ("5.1.9", "5.1.0"),
        ("5.7.1", "5.7.1"),
    ] {
        assert_eq!(
            crate::check::dsn_fix(dsn, "Recipient address"),
            want,
            "{dsn}"
        );
    }
    for (address, want) in [
        ("postmaster@x", true),
        ("POSTMASTER@x", true),
        ("postmaster", false),
        ("postmasters@x", false),
        ("mailer-daemon@x", true),
        ("double-bounce@x", true),
        ("root@x", false),
    ] {
        assert_eq!(is_always_known(address, "double-bounce"), want, "{address}");
    }
    let long = "r".repeat(600);
    let r = reply(550, "5.1.1", &format!("<{long}>: x"));
    assert_eq!(r.to_string().len(), REPLY_MAX);
    let r = reply(250, "2.0.0", "odd");
    assert_eq!(r.to_string(), "450 4.7.1 Service unavailable");
    let r = reply(450, "5.1.1", "a\tb");
    assert_eq!(r.to_string(), "450 4.1.1 a b");
}

#[test]
fn relocated() {
    // relocated(5) through the resolver (error transport, 5.1.6), as smtpd_check.c's
    // check_rcpt_maps() answers; an address canonical_maps knows still passes.
    let extra = "relocated_maps = inline:{gone@mx.example.com=new@else.test, \
                 @moved.test=elsewhere, root=admin@else.test}\n\
                 canonical_maps = inline:{alice@mx.example.com=x@y.test}\n\
                 relay_domains = relay.test, moved.test\n";
    let cases: &[(&str, Option<&str>)] = &[
        (
            "gone@mx.example.com",
            Some(
                "550 5.1.6 <gone@mx.example.com>: Recipient address rejected: User has moved \
                 to new@else.test",
            ),
        ),
        (
            "gone+x@mx.example.com",
            Some(
                "550 5.1.6 <gone+x@mx.example.com>: Recipient address rejected: User has \
                 moved to new@else.test",
            ),
        ),
        (
            "who@moved.test",
            Some(
                "550 5.1.6 <who@moved.test>: Recipient address rejected: User has moved to \
                 elsewhere",
            ),
        ),
        (
            "root",
            Some("550 5.1.6 <root>: Recipient address rejected: User has moved to admin@else.test"),
        ),
        ("alice@mx.example.com", None),
    ];
    for (rcpt, want) in cases {
        assert_eq!(check(extra, rcpt).as_deref(), *want, "{rcpt}");
    }
}
