//! Shared helpers for the unit tests: settings and resolvers built from main.cf text, as
//! the configuration engine reads it, on the host `mx.example.com`.

use tern_config::config::Config;
use tern_config::host::HostInfo;
use tern_config::maincf::MainCf;
use tern_config::mastercf::MasterCf;

use crate::{Interfaces, Resolver, Settings};

pub(crate) fn config_from(main_cf: &str) -> Config {
    let main = MainCf::parse(main_cf.as_bytes(), "main.cf").expect("main.cf parses");
    Config::new(
        std::path::Path::new("/etc/postfix"),
        main,
        MasterCf::default(),
        HostInfo::from_hostname("mx.example.com"),
    )
}

pub(crate) fn settings_from(main_cf: &str) -> Settings {
    Settings::from_config(&config_from(main_cf)).expect("settings")
}

/// A resolver whose own addresses are 127.0.0.1, ::1 and 192.0.2.25, with 198.51.100.1 as
/// a proxy interface.
pub(crate) fn resolver_from(main_cf: &str) -> Resolver {
    let interfaces = Interfaces {
        own: ["127.0.0.1", "::1", "192.0.2.25"]
            .iter()
            .map(|a| a.parse().expect("test address"))
            .collect(),
        proxy: vec!["198.51.100.1".parse().expect("test address")],
    };
    Resolver::new(settings_from(main_cf), interfaces, tern_maps::no_warnings()).expect("resolver")
}

use crate::Class::{Default, Local, Relay, VirtualAlias, VirtualMailbox};
use crate::{Class, Client, Decision};

const SITE: &str = "compatibility_level = 3.6\n\
    mydestination = $myhostname, localhost.$mydomain, localhost\n\
    virtual_alias_domains = alias.example\n\
    virtual_mailbox_domains = mbox.example\n\
    relay_domains = relay.example\n\
    mynetworks = 127.0.0.0/8 [::1]/128\n";

/// (address, class, transport, nexthop, recipient, routed, error)
type Row = (
    &'static str,
    Class,
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
);

fn check(resolver: &Resolver, rows: &[Row]) {
    for &(input, class, transport, nexthop, recipient, routed, error) in rows {
        let got = resolver.resolve(input).expect("no lookup error");
        assert_eq!(
            (got.class, got.transport.as_str(), got.nexthop.as_str()),
            (class, transport, nexthop),
            "{input}"
        );
        assert_eq!(got.recipient, recipient, "{input}: recipient");
        assert_eq!(
            (got.flags.routed, got.flags.error),
            (routed, error),
            "{input}: flags"
        );
    }
}

#[test]
fn address_classes_in_postfix_order() {
    let r = resolver_from(SITE);
    check(
        &r,
        &[
            (
                "user@mx.example.com",
                Local,
                "local",
                "mx.example.com",
                "user@mx.example.com",
                false,
                false,
            ),
            (
                "User@LOCALHOST",
                Local,
                "local",
                "mx.example.com",
                "User@LOCALHOST",
                false,
                false,
            ),
            (
                "user@localhost.",
                Local,
                "local",
                "mx.example.com",
                "user@localhost",
                false,
                false,
            ),
            (
                "user",
                Local,
                "local",
                "mx.example.com",
                "user@mx.example.com",
                false,
                false,
            ),
            (
                "user@[127.0.0.1]",
                Local,
                "local",
                "mx.example.com",
                "user@[127.0.0.1]",
                false,
                false,
            ),
            (
                "user@[198.51.100.1]",
                Local,
                "local",
                "mx.example.com",
                "user@[198.51.100.1]",
                false,
                false,
            ),
            (
                "user@[IPv6:::1]",
                Local,
                "local",
                "mx.example.com",
                "user@[IPv6:::1]",
                false,
                false,
            ),
            (
                "user@[192.0.2.99]",
                Default,
                "smtp",
                "[192.0.2.99]",
                "user@[192.0.2.99]",
                false,
                false,
            ),
            (
                "user@alias.example",
                VirtualAlias,
                "error",
                "5.1.1 User unknown in virtual alias table",
                "user@alias.example",
                false,
                false,
            ),
            (
                "user@mbox.example",
                VirtualMailbox,
                "virtual",
                "mbox.example",
                "user@mbox.example",
                false,
                false,
            ),
            (
                "user@relay.example",
                Relay,
                "relay",
                "relay.example",
                "user@relay.example",
                false,
                false,
            ),
            (
                "user@sub.relay.example",
                Relay,
                "relay",
                "sub.relay.example",
                "user@sub.relay.example",
                false,
                false,
            ),
            (
                "user@sub.alias.example",
                Default,
                "smtp",
                "sub.alias.example",
                "user@sub.alias.example",
                false,
                false,
            ),
            (
                "user@example.org",
                Default,
                "smtp",
                "example.org",
                "user@example.org",
                false,
                false,
            ),
            (
                "",
                Local,
                "local",
                "mx.example.com",
                "MAILER-DAEMON@mx.example.com",
                false,
                false,
            ),
            (
                "@localhost",
                Local,
                "local",
                "mx.example.com",
                "MAILER-DAEMON@localhost",
                false,
                false,
            ),
        ],
    );
}

#[test]
fn routing_is_stripped_and_flagged() {
    let r = resolver_from(SITE);
    check(
        &r,
        &[
            // A local domain is stripped, then the percent hack and bang paths apply.
            (
                "user%example.org@localhost",
                Default,
                "smtp",
                "example.org",
                "user@example.org",
                false,
                false,
            ),
            (
                "example.org!user@localhost",
                Default,
                "smtp",
                "example.org",
                "user@example.org",
                false,
                false,
            ),
            (
                "user%relay.example",
                Relay,
                "relay",
                "relay.example",
                "user@relay.example",
                false,
                false,
            ),
            (
                "user@example.org@localhost",
                Default,
                "smtp",
                "example.org",
                "user@example.org",
                false,
                false,
            ),
            // Routing left in a remote address is flagged.
            (
                "user@example.org@relay.example",
                Relay,
                "relay",
                "relay.example",
                "user@example.org@relay.example",
                true,
                false,
            ),
            (
                "user%example.org@relay.example",
                Relay,
                "relay",
                "relay.example",
                "user%example.org@relay.example",
                true,
                false,
            ),
            (
                "a!user@relay.example",
                Relay,
                "relay",
                "relay.example",
                "a!user@relay.example",
                true,
                false,
            ),
            (
                "user@localhost@localhost",
                Local,
                "local",
                "mx.example.com",
                "user@localhost",
                false,
                false,
            ),
        ],
    );
    let off = resolver_from(&format!(
        "{SITE}allow_percent_hack = no\nswap_bangpath = no\n"
    ));
    check(
        &off,
        &[
            (
                "user%example.org@localhost",
                Local,
                "local",
                "mx.example.com",
                "user%example.org@localhost",
                true,
                false,
            ),
            (
                "a!user@localhost",
                Local,
                "local",
                "mx.example.com",
                "a!user@localhost",
                true,
                false,
            ),
        ],
    );
}

#[test]
fn malformed_domains_are_errors() {
    let r = resolver_from(SITE);
    check(
        &r,
        &[
            ("user@", Default, "", "", "user@", false, true),
            (
                "user@[300.1.1.1]",
                Default,
                "",
                "",
                "user@[300.1.1.1]",
                false,
                true,
            ),
            (
                "user@192.0.2.1",
                Default,
                "",
                "",
                "user@192.0.2.1",
                false,
                true,
            ),
            (
                "user@bad_dom~ain",
                Default,
                "",
                "",
                "user@bad_dom~ain",
                false,
                true,
            ),
            (
                "-user@example.org",
                Default,
                "smtp",
                "example.org",
                "-user@example.org",
                false,
                true,
            ),
        ],
    );
    let numeric = resolver_from(&format!(
        "{SITE}resolve_numeric_domain = yes\nresolve_null_domain = yes\n"
    ));
    check(
        &numeric,
        &[
            (
                "user@192.0.2.1",
                Default,
                "smtp",
                "[192.0.2.1]",
                "user@[192.0.2.1]",
                false,
                false,
            ),
            (
                "user@127.0.0.1",
                Local,
                "local",
                "mx.example.com",
                "user@[127.0.0.1]",
                false,
                false,
            ),
            (
                "user@",
                Local,
                "local",
                "mx.example.com",
                "user@mx.example.com",
                false,
                false,
            ),
        ],
    );
}

#[test]
fn transports_relayhost_and_transport_maps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let map = dir.path().join("transport");
    std::fs::write(
        &map,
        "special@example.org  smtp:[special.example]:2525\n\
         example.net          :[gw.example]\n\
         .sub.example.net     lmtp:\n\
         relay.example        error:\n\
         bounce.example       error:5.1.2 no such domain\n\
         user+ext@example.com relay\n\
         *                    smtp:[fallback.example]\n",
    )
    .expect("write");
    let main = format!(
        "{SITE}relayhost = [smarthost.example]:587\nlocal_transport = local\n\
         transport_maps = texthash:{}\nrecipient_delimiter = +\n",
        map.display()
    );
    let r = resolver_from(&main);
    check(
        &r,
        &[
            (
                "special@example.org",
                Default,
                "smtp",
                "[special.example]:2525",
                "special@example.org",
                false,
                false,
            ),
            (
                "other@example.org",
                Default,
                "smtp",
                "[fallback.example]",
                "other@example.org",
                false,
                false,
            ),
            (
                "x@example.net",
                Default,
                "smtp",
                "[gw.example]",
                "x@example.net",
                false,
                false,
            ),
            (
                "x@a.sub.example.net",
                Default,
                "lmtp",
                "a.sub.example.net",
                "x@a.sub.example.net",
                false,
                false,
            ),
            (
                "x@sub.example.net",
                Default,
                "smtp",
                "[fallback.example]",
                "x@sub.example.net",
                false,
                false,
            ),
            (
                "x@relay.example",
                Relay,
                "error",
                "Address is undeliverable",
                "x@relay.example",
                false,
                false,
            ),
            (
                "x@bounce.example",
                Default,
                "error",
                "5.1.2 no such domain",
                "x@bounce.example",
                false,
                false,
            ),
            (
                "user+ext@example.com",
                Default,
                "relay",
                "example.com",
                "user+ext@example.com",
                false,
                false,
            ),
            // The virtual alias class is never overridden.
            (
                "x@alias.example",
                VirtualAlias,
                "error",
                "5.1.1 User unknown in virtual alias table",
                "x@alias.example",
                false,
                false,
            ),
            // local_transport without a nexthop keeps the domain; the wildcard applies too.
            (
                "x@localhost",
                Local,
                "smtp",
                "[fallback.example]",
                "x@localhost",
                false,
                false,
            ),
        ],
    );
    let plain = resolver_from(&format!("{SITE}relayhost = [smarthost.example]:587\n"));
    check(
        &plain,
        &[
            (
                "x@example.org",
                Default,
                "smtp",
                "[smarthost.example]:587",
                "x@example.org",
                false,
                false,
            ),
            (
                "x@relay.example",
                Relay,
                "relay",
                "[smarthost.example]:587",
                "x@relay.example",
                false,
                false,
            ),
            (
                "x@mbox.example",
                VirtualMailbox,
                "virtual",
                "mbox.example",
                "x@mbox.example",
                false,
                false,
            ),
        ],
    );
}

#[test]
fn compatibility_level_defaults() {
    // Level 0: relay_domains = $mydestination, append_dot_mydomain = yes.
    let r = resolver_from("compatibility_level = 0\n");
    assert_eq!(
        r.settings.relay_domains,
        "mx.example.com, localhost.example.com, localhost"
    );
    assert!(r.settings.append_dot_mydomain);
    assert_eq!(r.settings.mynetworks_style, "subnet");
    assert_eq!(
        r.resolve("user@sub.localhost").expect("ok").class,
        Class::Relay
    );
    assert_eq!(
        r.rewrite(crate::Context::Local, "user@host"),
        "user@host.example.com"
    );
    let new = resolver_from("compatibility_level = 3.6\n");
    assert_eq!(new.settings.relay_domains, "");
    assert_eq!(new.settings.mynetworks_style, "host");
    assert_eq!(
        new.settings.smtpd_relay_restrictions,
        "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
    );
    assert_eq!(
        new.resolve("user@sub.localhost").expect("ok").class,
        Class::Default
    );
}

#[test]
fn relay_policy() {
    let r = resolver_from(SITE);
    let inside = Client::from_addr("127.0.0.1".parse().expect("ip"));
    let outside = Client::from_addr("192.0.2.7".parse().expect("ip"));
    let reject = |code: u16, dsn: &str, rcpt: &str| {
        Decision::Reject(crate::Reply {
            code,
            dsn: dsn.to_owned(),
            text: format!("<{rcpt}>: Relay access denied"),
        })
    };
    for (client, rcpt, want) in [
        (&inside, "a@example.org", Decision::Permit),
        (
            &outside,
            "a@example.org",
            reject(454, "4.7.1", "a@example.org"),
        ),
        (&outside, "a@localhost", Decision::Dunno),
        (&outside, "a@alias.example", Decision::Dunno),
        (&outside, "a@mbox.example", Decision::Dunno),
        (&outside, "a@sub.relay.example", Decision::Dunno),
        (&outside, "a", Decision::Dunno),
        (
            &outside,
            "a@example.org@relay.example",
            reject(454, "4.7.1", "a@example.org@relay.example"),
        ),
        (
            &outside,
            "a%example.org@relay.example",
            reject(454, "4.7.1", "a%example.org@relay.example"),
        ),
        (
            &outside,
            "a%example.org@localhost",
            reject(454, "4.7.1", "a%example.org@localhost"),
        ),
        (
            &outside,
            "a!b@localhost",
            reject(454, "4.7.1", "a!b@localhost"),
        ),
        (&outside, "a%relay.example@localhost", Decision::Dunno),
    ] {
        assert_eq!(
            r.relay_restrictions(client, rcpt),
            want,
            "{} {rcpt}",
            client.addr
        );
    }
    assert_eq!(
        r.reject_unauth_destination("a@example.org"),
        reject(554, "5.7.1", "a@example.org")
    );
    let authed = Client {
        sasl_authenticated: true,
        ..outside
    };
    assert_eq!(
        r.relay_restrictions(&authed, "a@example.org"),
        Decision::Permit
    );
    let names = |list: &str| -> Vec<String> { list.split(' ').map(str::to_owned).collect() };
    assert_eq!(
        r.evaluate(&names("check_client_access reject"), &outside, "a@x.org"),
        Decision::Unsupported("check_client_access".to_owned())
    );
    assert_eq!(
        r.evaluate(&names("permit_mynetworks reject"), &outside, "a@x.org"),
        Decision::Reject(crate::Reply {
            code: 554,
            dsn: "5.7.1".to_owned(),
            text: "<a@x.org>: Recipient address rejected: Access denied".to_owned()
        })
    );
    assert_eq!(
        r.evaluate(&names("defer"), &outside, "a@x.org").clone(),
        Decision::Reject(crate::Reply {
            code: 450,
            dsn: "4.3.2".to_owned(),
            text: "<a@x.org>: Recipient address rejected: Try again later".to_owned()
        })
    );
    let routed = resolver_from(&format!("{SITE}allow_untrusted_routing = yes\n"));
    assert_eq!(
        routed.relay_restrictions(&outside, "a@example.org@relay.example"),
        Decision::Dunno
    );
}

#[test]
fn lookup_errors_defer() {
    let r = resolver_from(&format!("{SITE}transport_maps = fail:broken\n"));
    assert!(r.resolve("a@example.org").is_err());
    let outside = Client::from_addr("192.0.2.7".parse().expect("ip"));
    assert_eq!(
        r.relay_restrictions(&outside, "a@example.org"),
        Decision::TempFail(crate::Reply {
            code: 451,
            dsn: "4.3.0".to_owned(),
            text: "<a@example.org>: Temporary lookup failure".to_owned()
        })
    );
    let nets = resolver_from("compatibility_level = 3.6\nmynetworks = /nonexistent/nets\n");
    assert!(matches!(
        nets.relay_restrictions(&outside, "a@x.org"),
        Decision::TempFail(_)
    ));
}

proptest::proptest! {
    #[test]
    fn resolve_is_total(input in "[a-z@!%.\\[\\]:\" -]{0,24}") {
        let r = resolver_from(SITE);
        let _ = r.resolve(&input);
        let _ = r.relay_restrictions(&Client::from_addr("192.0.2.7".parse().expect("ip")), &input);
    }
}

/// sender_dependent_default_transport_maps and sender_dependent_relayhost_maps (resolve.c):
/// for off-host recipients only; `DUNNO` keeps the global setting; the null sender is
/// looked up as `<>`; a recipient's transport(5) entry still wins.
#[test]
fn sender_dependent_routes() {
    let r = resolver_from(&format!(
        "{SITE}relayhost = [gw.example]\n\
         sender_dependent_default_transport_maps = inline:{{a@s.example=slow, <>=bounces}}\n\
         sender_dependent_relayhost_maps = inline:{{@s.example=[alt.example], b@s.example=DUNNO}}\n\
         transport_maps = inline:{{pinned.example=smtp:[pin.example]}}\n"
    ));
    let route = |sender: &str, rcpt: &str| {
        let x = r.resolve_from(Some(sender), rcpt).expect("resolve");
        (x.transport, x.nexthop)
    };
    let pair = |t: &str, n: &str| (t.to_owned(), n.to_owned());
    assert_eq!(
        route("a@s.example", "u@far.example"),
        pair("slow", "[alt.example]")
    );
    assert_eq!(
        route("b@s.example", "u@far.example"),
        pair("smtp", "[gw.example]")
    );
    assert_eq!(
        route("c@other.example", "u@far.example"),
        pair("smtp", "[gw.example]")
    );
    assert_eq!(route("", "u@far.example"), pair("bounces", "[gw.example]"));
    // relay_domains: the relayhost override, not the default transport one.
    assert_eq!(
        route("a@s.example", "u@relay.example"),
        pair("relay", "[alt.example]")
    );
    // Local and transport(5) recipients are not touched.
    assert_eq!(
        route("a@s.example", "u@pinned.example"),
        pair("smtp", "[pin.example]")
    );
    assert_eq!(
        r.resolve_from(Some("a@s.example"), "root@localhost")
            .unwrap()
            .transport,
        "local"
    );
    // Without the sender, as smtpd asks: the global settings.
    let x = r.resolve("u@far.example").unwrap();
    assert_eq!((x.transport, x.nexthop), pair("smtp", "[gw.example]"));
}
