//! The engine against Postfix's documented answers, stage by stage, without a socket.

use std::path::Path;

use tern_config::config::Config;
use tern_config::host::HostInfo;
use tern_config::maincf::MainCf;
use tern_config::mastercf::MasterCf;
use tern_maillog::{Ident, Logger};

use super::*;

fn restrictions(main: &str) -> Restrictions {
    let main = MainCf::parse(main.as_bytes(), "main.cf").expect("main.cf");
    let master =
        MasterCf::parse(b"smtp inet n - n - - smtpd\n".as_slice(), "master.cf").expect("master.cf");
    let config = Config::new(
        Path::new("/nonexistent"),
        main,
        master,
        HostInfo::from_hostname("mx.example.com"),
    );
    Restrictions::from_config(&config, None).expect("policy")
}

/// One session's commands: `H name` HELO, `M addr` MAIL, `R addr` RCPT, `D` DATA; the
/// answer of the last one.
fn run(r: &Restrictions, client: &str, script: &[&str]) -> Option<String> {
    let logger = Logger::memory("mx.example.com");
    let ident = Ident::new("postfix", "smtpd");
    let ip: IpAddr = client.parse().expect("ip");
    let mut st = State::new(ip, 1234, "unknown", "unknown");
    st.name_status = 5;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut last = None;
    for step in script {
        let (verb, arg) = step.split_once(' ').unwrap_or((step, ""));
        let mut c = Checker {
            r,
            st: &mut st,
            logger: &logger,
            ident: &ident,
        };
        last = rt.block_on(async {
            match verb {
                "H" => {
                    let out = if c.r.setup().delay_reject {
                        None
                    } else {
                        c.helo(Some(arg.to_owned())).await
                    };
                    c.st.helo = Some(arg.to_owned());
                    out
                }
                "M" => {
                    c.st.mail_reset();
                    let out = if c.r.setup().delay_reject {
                        None
                    } else {
                        c.mail(Some(arg.to_owned())).await
                    };
                    c.st.sender = Some(arg.to_owned());
                    out
                }
                "R" => {
                    let out = c.rcpt(arg).await;
                    if out.is_none() {
                        c.st.rcpt_count += 1;
                    }
                    out
                }
                "D" => c.data().await,
                "A" => {
                    c.st.sasl_username = Some(arg.to_owned());
                    None
                }
                _ => panic!("bad step {step}"),
            }
        });
    }
    last
}

const BASE: &str = "compatibility_level = 3.6\nmynetworks = 127.0.0.0/8 [::1]/128\n\
                    relay_domains = relay.net\nmydestination = mx.example.com, localhost\n\
                    local_recipient_maps = inline:{a=x}\n";

#[test]
fn relay_and_recipient_decisions() {
    let unknown_b = "550 5.1.1 <b@localhost>: Recipient address rejected: User unknown in local \
                     recipient table";
    let strict =
        format!("{BASE}smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination\n");
    let odd = format!(
        "{BASE}smtpd_relay_restrictions = permit_mynetworks check_foo reject_unauth_destination\n"
    );
    let cases: Vec<(String, &str, &str, Option<&str>)> = vec![
        (BASE.into(), "127.0.0.1", "a@elsewhere.org", None),
        (BASE.into(), "::1", "a@elsewhere.org", None),
        (BASE.into(), "192.0.2.1", "a@localhost", None),
        (BASE.into(), "192.0.2.1", "a@relay.net", None),
        (
            BASE.into(),
            "192.0.2.1",
            "a@elsewhere.org",
            Some("454 4.7.1 <a@elsewhere.org>: Relay access denied"),
        ),
        (
            strict,
            "192.0.2.1",
            "a@elsewhere.org",
            Some("554 5.7.1 <a@elsewhere.org>: Relay access denied"),
        ),
        (
            odd,
            "192.0.2.1",
            "a@elsewhere.org",
            Some("451 4.3.5 Server configuration error"),
        ),
        (BASE.into(), "192.0.2.1", "b@localhost", Some(unknown_b)),
        (BASE.into(), "127.0.0.1", "b@localhost", Some(unknown_b)),
        (
            format!("{BASE}smtpd_recipient_restrictions = permit\n"),
            "127.0.0.1",
            "b@localhost",
            Some(unknown_b),
        ),
        (
            format!("{BASE}smtpd_reject_unlisted_recipient = no\n"),
            "192.0.2.1",
            "b@localhost",
            None,
        ),
        (
            format!(
                "{BASE}smtpd_reject_unlisted_recipient = no\n\
                 smtpd_recipient_restrictions = reject_unlisted_recipient\n"
            ),
            "192.0.2.1",
            "b@localhost",
            Some(unknown_b),
        ),
        (
            format!("{BASE}smtpd_recipient_restrictions = reject_unlisted_recipient check_foo\n"),
            "192.0.2.1",
            "a@localhost",
            Some("451 4.3.5 Server configuration error"),
        ),
        (
            format!("{BASE}relay_recipient_maps = inline:{{r@relay.net=x}}\n"),
            "192.0.2.1",
            "x@relay.net",
            Some(
                "550 5.1.1 <x@relay.net>: Recipient address rejected: User unknown in relay \
                 recipient table",
            ),
        ),
        (
            format!("{BASE}relay_recipient_maps = inline:{{r@relay.net=x}}\n"),
            "192.0.2.1",
            "r@relay.net",
            None,
        ),
        // postmaster needs no domain and passes every list.
        (
            format!("{BASE}smtpd_recipient_restrictions = reject\n"),
            "192.0.2.1",
            "postmaster",
            None,
        ),
    ];
    for (main, client, rcpt, want) in cases {
        let r = restrictions(&main);
        let got = run(
            &r,
            client,
            &["H h.example", "M s@example.org", &format!("R {rcpt}")],
        );
        assert_eq!(got.as_deref(), want, "{client} {rcpt}\n{main}");
    }
}

#[test]
fn stages_and_access_results() {
    let access = "smtpd_restriction_classes = strict\nstrict = reject_non_fqdn_sender, permit\n";
    let cases: Vec<(String, &str, Vec<&str>, Option<&str>)> = vec![
        // Delayed client reject, at RCPT.
        (
            format!(
                "{BASE}smtpd_client_restrictions = check_client_access inline:{{ {{192.0.2.1=REJECT go away}} }}\n"
            ),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            Some("554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: go away"),
        ),
        // Without delay: at HELO.
        (
            format!(
                "{BASE}smtpd_delay_reject = no\nsmtpd_helo_restrictions = reject_invalid_helo_hostname\n"
            ),
            "192.0.2.1",
            vec!["H bad..name"],
            Some("501 5.5.2 <bad..name>: Helo command rejected: Invalid name"),
        ),
        (
            format!("{BASE}smtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n"),
            "192.0.2.1",
            vec!["H shortname", "M s@example.org", "R a@localhost"],
            Some("504 5.5.2 <shortname>: Helo command rejected: need fully-qualified hostname"),
        ),
        (
            format!("{BASE}smtpd_sender_restrictions = reject_non_fqdn_sender\n"),
            "192.0.2.1",
            vec!["H h", "M joe@local", "R a@localhost"],
            Some("504 5.5.2 <joe@local>: Sender address rejected: need fully-qualified address"),
        ),
        (
            format!(
                "{BASE}smtpd_recipient_restrictions = check_recipient_access inline:{{ {{a@localhost=450 4.2.0 later}} }}, permit\n"
            ),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            Some("450 4.2.0 <a@localhost>: Recipient address rejected: later"),
        ),
        // A DSN in an address class is fixed for the sender.
        (
            format!(
                "{BASE}smtpd_sender_restrictions = check_sender_access inline:{{ {{s@example.org=REJECT 5.1.1 no}} }}\n"
            ),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            Some("554 5.1.7 <s@example.org>: Sender address rejected: no"),
        ),
        // A restriction class from a table result.
        (
            format!(
                "{BASE}{access}smtpd_sender_restrictions = check_sender_access inline:{{local=strict}}\n"
            ),
            "192.0.2.1",
            vec!["H h", "M joe@local", "R a@localhost"],
            Some("504 5.5.2 <joe@local>: Sender address rejected: need fully-qualified address"),
        ),
        // DEFER_IF_PERMIT turns a later permit into a deferral.
        (
            format!(
                "{BASE}smtpd_recipient_restrictions = check_recipient_access inline:{{ {{a@localhost=DEFER_IF_PERMIT wait}} }}, permit\n"
            ),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            Some("450 4.7.1 <a@localhost>: Recipient address rejected: wait"),
        ),
        // DEFER_IF_REJECT turns a later reject into a deferral.
        (
            format!(
                "{BASE}smtpd_recipient_restrictions = check_recipient_access inline:{{ {{a@localhost=DEFER_IF_REJECT maybe}} }}, reject\n"
            ),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            Some("450 4.7.1 <a@localhost>: Recipient address rejected: maybe"),
        ),
        // warn_if_reject logs and goes on.
        (
            format!("{BASE}smtpd_recipient_restrictions = warn_if_reject reject, permit\n"),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            None,
        ),
        // The null sender's key.
        (
            format!("{BASE}smtpd_sender_restrictions = check_sender_access inline:{{<>=REJECT}}\n"),
            "192.0.2.1",
            vec!["H h", "M ", "R a@localhost"],
            Some("554 5.7.1 <>: Sender address rejected: Access denied"),
        ),
        (
            format!("{BASE}smtpd_data_restrictions = reject_multi_recipient_bounce\n"),
            "192.0.2.1",
            vec!["H h", "M ", "R a@localhost", "R postmaster", "D"],
            Some("550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"),
        ),
        (
            format!("{BASE}smtpd_data_restrictions = reject_multi_recipient_bounce\n"),
            "192.0.2.1",
            vec!["H h", "M ", "R a@localhost", "D"],
            None,
        ),
        (
            format!(
                "{BASE}smtpd_recipient_restrictions = check_recipient_access inline:{{a@localhost=inline:{{x=y}}}}\n"
            ),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            Some("451 4.3.5 Server configuration error"),
        ),
        (
            format!("{BASE}soft_bounce = yes\nsmtpd_recipient_restrictions = reject\n"),
            "192.0.2.1",
            vec!["H h", "M s@example.org", "R a@localhost"],
            Some("454 4.7.1 <a@localhost>: Recipient address rejected: Access denied"),
        ),
    ];
    for (main, client, script, want) in cases {
        let r = restrictions(&main);
        let got = run(&r, client, &script);
        assert_eq!(got.as_deref(), want, "{script:?}\n{main}");
    }
}

#[test]
fn sender_login_maps() {
    let main = format!(
        "{BASE}smtpd_sasl_auth_enable = yes\n\
         smtpd_sender_login_maps = inline:{{ {{joe@example.org=joe, admin}} }}\n"
    );
    let with = |list: &str| format!("{main}smtpd_sender_restrictions = {list}\n");
    let cases: Vec<(String, Vec<&str>, Option<&str>)> = vec![
        // Logged in as an owner.
        (
            with("reject_sender_login_mismatch"),
            vec!["A admin", "M joe@example.org", "R a@localhost"],
            None,
        ),
        // Logged in, not an owner.
        (
            with("reject_sender_login_mismatch"),
            vec!["A eve", "M joe@example.org", "R a@localhost"],
            Some("553 5.7.1 <joe@example.org>: Sender address rejected: not owned by user eve"),
        ),
        // Logged in, the address has no owner: only the "known" variant lets it pass.
        (
            with("reject_authenticated_sender_login_mismatch"),
            vec!["A eve", "M other@example.org", "R a@localhost"],
            Some("553 5.7.1 <other@example.org>: Sender address rejected: not owned by user eve"),
        ),
        (
            with("reject_known_sender_login_mismatch"),
            vec!["A eve", "M other@example.org", "R a@localhost"],
            None,
        ),
        // Not logged in, the address has an owner.
        (
            with("reject_sender_login_mismatch"),
            vec!["M joe@example.org", "R a@localhost"],
            Some("553 5.7.1 <joe@example.org>: Sender address rejected: not logged in"),
        ),
        (
            with("reject_authenticated_sender_login_mismatch"),
            vec!["M joe@example.org", "R a@localhost"],
            None,
        ),
        // Without smtpd_sasl_auth_enable the restriction is ignored (with a warning).
        (
            format!(
                "{BASE}smtpd_sender_login_maps = inline:{{joe@example.org=joe}}\nsmtpd_sender_restrictions = reject_sender_login_mismatch\n"
            ),
            vec!["M joe@example.org", "R a@localhost"],
            None,
        ),
    ];
    for (main, script, want) in cases {
        let r = restrictions(&main);
        let got = run(&r, "192.0.2.1", &script);
        assert_eq!(got.as_deref(), want, "{script:?}\n{main}");
    }
}

/// smtpd_check_init()'s has_required(): a `permit` ends the search (what follows never
/// runs, so the server would be an open relay: refused, as Postfix refuses to start);
/// restriction classes are looked into; the restriction after warn_if_reject only warns.
#[test]
fn a_relay_limit_is_required() {
    let base = "compatibility_level = 3.6\nsmtpd_recipient_restrictions =\n";
    let try_with = |relay: &str| {
        let main = MainCf::parse(
            format!("{base}smtpd_relay_restrictions = {relay}\nsmtpd_restriction_classes = strict\nstrict = reject_unauth_destination\n").as_bytes(),
            "main.cf",
        )
        .expect("main.cf");
        let master = MasterCf::parse(b"smtp inet n - n - - smtpd\n".as_slice(), "master.cf")
            .expect("master.cf");
        let config = Config::new(
            Path::new("/nonexistent"),
            main,
            master,
            HostInfo::from_hostname("mx.example.com"),
        );
        Restrictions::from_config(&config, None).is_ok()
    };
    assert!(try_with("permit_mynetworks, reject_unauth_destination"));
    assert!(try_with("permit_mynetworks, strict"));
    assert!(!try_with("permit, reject_unauth_destination"));
    assert!(!try_with("warn_if_reject reject_unauth_destination"));
    assert!(!try_with("permit_mynetworks"));
}
