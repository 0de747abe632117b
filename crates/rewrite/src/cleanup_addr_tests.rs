//! cleanup's address rewriting end to end over main.cf text: envelope sender and
//! recipients, virtual expansion, header addresses, per class.

use std::sync::{Arc, Mutex};

use super::*;
use crate::tests::{config_from, resolver_from};

const BASE: &str = "compatibility_level = 3.6\nmyhostname = mx.example.com\n\
    mydomain = example.com\nmyorigin = $mydomain\n\
    mydestination = $myhostname, localhost, $mydomain\nrecipient_delimiter = +\n";

fn rewriter(extra: &str) -> (CleanupRewriter, Arc<Mutex<Vec<String>>>) {
    let text = format!("{BASE}{extra}");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let warn: Warn = Arc::new(move |m: &str| sink.lock().expect("lock").push(m.to_owned()));
    let r = CleanupRewriter::from_config(&config_from(&text), Arc::new(resolver_from(&text)), warn)
        .expect("rewriter");
    (r, seen)
}

#[test]
fn envelope() {
    // (main.cf, sender in, sender out, recipient in, recipients out)
    let cases: &[(&str, &str, &str, &str, &[&str])] = &[
        (
            "",
            "alice",
            "alice@example.com",
            "bob",
            &["bob@example.com"],
        ),
        ("", "MAILER-DAEMON", "", "b@x.test", &["b@x.test"]),
        (
            "",
            "mailer-daemon@EXAMPLE.com",
            "",
            "b@x.test",
            &["b@x.test"],
        ),
        (
            "",
            "MAILER-DAEMON@other.test",
            "MAILER-DAEMON@other.test",
            "",
            &["MAILER-DAEMON@example.com"],
        ),
        (
            "canonical_maps = inline:{alice=Alice.Smith@example.com, bob@x.test=robert@y.test}\n",
            "alice@example.com",
            "Alice.Smith@example.com",
            "bob@x.test",
            &["robert@y.test"],
        ),
        (
            "sender_canonical_maps = inline:{alice=a@s.test}\n\
             recipient_canonical_maps = inline:{alice=a@r.test}\n",
            "alice",
            "a@s.test",
            "alice",
            &["a@r.test"],
        ),
        (
            "canonical_maps = inline:{alice=a@c.test}\ncanonical_classes = envelope_recipient\n",
            "alice",
            "alice@example.com",
            "alice",
            &["a@c.test"],
        ),
        (
            "masquerade_domains = example.com\n",
            "u@host.example.com",
            "u@example.com",
            "v@host.example.com",
            &["v@host.example.com"],
        ),
        (
            "masquerade_domains = example.com\nmasquerade_classes = envelope_recipient\n",
            "u@host.example.com",
            "u@host.example.com",
            "v@host.example.com",
            &["v@example.com"],
        ),
        (
            "virtual_alias_maps = inline:{ {team@example.com = a@x.test, b@y.test}, \
             a@x.test=c@z.test }\n",
            "s@x.test",
            "s@x.test",
            "team",
            &["c@z.test", "b@y.test"],
        ),
        (
            "virtual_alias_maps = inline:{ @v.test=@w.test }\n",
            "s@x.test",
            "s@x.test",
            "u+ext@v.test",
            &["u+ext@w.test"],
        ),
    ];
    for (extra, sender, sender_out, rcpt, rcpts_out) in cases {
        let (r, _) = rewriter(extra);
        assert_eq!(
            r.sender(sender, "Q").as_deref(),
            Ok(*sender_out),
            "{extra} {sender}"
        );
        let rewritten = r.recipient(rcpt, "Q").expect("recipient");
        let expanded = r.expand(&rewritten, "Q").expect("expand");
        assert_eq!(expanded, *rcpts_out, "{extra} {rcpt}");
    }
}

#[test]
fn headers() {
    use HeaderRole::{Recipient, Sender};
    // (main.cf, role, context, address, result)
    let cases: &[(&str, HeaderRole, Context, &str, Option<&str>)] = &[
        (
            "",
            Sender,
            Context::Local,
            "alice",
            Some("alice@example.com"),
        ),
        ("", Sender, Context::Local, "alice@example.com", None),
        ("", Recipient, Context::Remote, "alice", None),
        (
            "remote_header_rewrite_domain = domain.invalid\n",
            Recipient,
            Context::Remote,
            "alice",
            Some("alice@domain.invalid"),
        ),
        (
            "canonical_maps = inline:{alice@example.com=A@example.com}\n",
            Recipient,
            Context::Local,
            "alice",
            Some("A@example.com"),
        ),
        (
            "canonical_maps = inline:{alice@example.com=A@example.com}\n\
             canonical_classes = envelope_sender\n",
            Recipient,
            Context::Local,
            "alice@example.com",
            None,
        ),
        (
            "masquerade_domains = example.com\n",
            Recipient,
            Context::Local,
            "u@h.example.com",
            Some("u@example.com"),
        ),
        (
            "masquerade_domains = example.com\nmasquerade_exceptions = u\n",
            Sender,
            Context::Local,
            "u@h.example.com",
            None,
        ),
        // Virtual aliases are never applied to headers.
        (
            "virtual_alias_maps = inline:{a@x.test=b@y.test}\n",
            Recipient,
            Context::Local,
            "a@x.test",
            None,
        ),
    ];
    for (extra, role, ctx, address, want) in cases {
        let (r, _) = rewriter(extra);
        let got = r.header_address(*role, *ctx, address, "Q").expect("header");
        assert_eq!(got.as_deref(), *want, "{extra} {address}");
    }
}

#[test]
fn setup_errors() {
    let cases = [
        (
            "sender_canonical_classes = envelope_recipient\n",
            "unknown canonical_classes value \"envelope_recipient\" in \"envelope_recipient\"",
        ),
        (
            "masquerade_classes = nonsense\n",
            "unknown masquerade_classes value \"nonsense\" in \"nonsense\"",
        ),
    ];
    for (extra, want) in cases {
        let text = format!("{BASE}{extra}");
        let err = CleanupRewriter::from_config(
            &config_from(&text),
            Arc::new(resolver_from(&text)),
            tern_maps::no_warnings(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn faults_warn() {
    let (r, seen) =
        rewriter("virtual_alias_maps = inline:{a@x.test=b@x.test, b@x.test=a@x.test}\n");
    assert_eq!(r.expand("a@x.test", "QID"), Err(Fault::Expansion));
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "QID: unreasonable virtual_alias_maps map nesting for a@x.test -- message not \
          accepted, try again later"
        ]
    );
}
