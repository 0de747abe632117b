//! Next-hop resolution (tern_client::nexthop) when this machine is among the servers
//! ("loops back to myself", smtp_find_self() and smtp_truncate_self() in Postfix 3.7's
//! smtp_addr.c), `[host]` next hops that skip the MX lookup, LMTP next hops, the native
//! (getaddrinfo) host lookup, and the fallback-relay rules of smtp_connect.c. The loop
//! texts and DSNs were checked against Debian's Postfix 3.7.11 with the same records. Runs a
//! dnsmasq on a loopback port (Debian's `dnsmasq-base`; fails when it is missing).

use std::net::IpAddr;
use std::time::Duration;

use tern_client::nexthop::{
    DnsClient, HostLookup, Protocol, Resolution, Rng, Settings, Site, Sites, config_problem,
    resolve, sites,
};
use tern_testkit::dns::Dnsmasq;

const RECORDS: &[&str] = &[
    "--local=/test/",
    // NXDOMAIN for localhost, which only /etc/hosts knows (the native lookup).
    "--local=/localhost/",
    "--mx-host=multi.test,mx1.multi.test,10",
    "--mx-host=multi.test,mx2.multi.test,20",
    "--mx-host=multi.test,mx2b.multi.test,20",
    "--mx-host=multi.test,mx3.multi.test,30",
    "--host-record=mx1.multi.test,127.0.1.1",
    "--host-record=mx2.multi.test,127.0.1.2",
    "--host-record=mx2b.multi.test,127.0.1.22",
    "--host-record=mx3.multi.test,127.0.1.3",
    // The domain has an address of its own too (used by [multi.test] and LMTP).
    "--host-record=multi.test,127.0.1.99",
    // The best MX has no address; the next one is this machine.
    "--mx-host=prim.test,gone.prim.test,10",
    "--mx-host=prim.test,me.prim.test,20",
    "--host-record=me.prim.test,127.0.4.2",
    // No MX, and the domain's address is this machine's.
    "--host-record=self.test,127.0.8.1",
    // A relay host.
    "--host-record=relay.test,127.0.7.1",
];

fn dns() -> Dnsmasq {
    Dnsmasq::start(RECORDS).expect("dnsmasq (Debian's dnsmasq-base) must be installed")
}

fn settings() -> Settings {
    Settings {
        query_timeout: Duration::from_secs(5),
        randomize_addresses: false,
        ..Settings::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn inet_sites(nexthop: &str, fallback: &str, protocol: Protocol) -> Vec<Site> {
    let mut w = Vec::new();
    let def = protocol.default_service();
    match sites(nexthop, fallback, protocol, def, "lmtp=24, smtp=25", &mut w).expect("sites") {
        Sites::Inet(list) => list,
        Sites::Unix(p) => panic!("unix: {}", p.display()),
    }
}

async fn run(c: &DnsClient, text: &str, protocol: Protocol, local: &[IpAddr]) -> Resolution {
    let site = inet_sites(text, "", protocol).remove(0);
    resolve(c, &site, protocol, &settings(), local, &mut Rng::seeded(1)).await
}

fn hosts(r: &Resolution) -> Vec<String> {
    r.targets
        .as_ref()
        .unwrap_or_else(|f| panic!("failure: {f:?}"))
        .iter()
        .map(|t| format!("{}[{}]:{}", t.host, t.addr, t.port))
        .collect()
}

fn fail(r: &Resolution) -> (String, String) {
    let f = r.targets.as_ref().expect_err("a failure");
    (f.dsn.clone(), f.text.clone())
}

#[tokio::test]
async fn best_mx_is_myself() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "multi.test", Protocol::Smtp, &[ip("127.0.1.1")]).await;
    assert_eq!(
        fail(&r),
        (
            "5.4.6".into(),
            "mail for multi.test loops back to myself".into()
        )
    );
    assert!(r.i_am_mx && r.final_nexthop());
    // Not on port 25: no loop detection (smtp_connect.c).
    let r = run(&c, "multi.test:2525", Protocol::Smtp, &[ip("127.0.1.1")]).await;
    assert_eq!(hosts(&r)[0], "mx1.multi.test[127.0.1.1]:2525");
}

#[tokio::test]
async fn domain_without_mx_is_myself() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "self.test", Protocol::Smtp, &[ip("127.0.8.1")]).await;
    assert_eq!(
        fail(&r),
        (
            "5.4.6".into(),
            "mail for self.test loops back to myself".into()
        )
    );
    assert!(!r.i_am_mx && r.final_nexthop());
}

#[tokio::test]
async fn backup_mx_truncates() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    // This machine is one of the two preference-20 hosts: that level and worse go.
    for me in ["127.0.1.2", "127.0.1.22"] {
        let r = run(&c, "multi.test", Protocol::Smtp, &[ip("192.0.2.1"), ip(me)]).await;
        assert_eq!(hosts(&r), vec!["mx1.multi.test[127.0.1.1]:25"], "{me}");
        assert!(r.i_am_mx && r.final_nexthop());
    }
    let r = run(&c, "multi.test", Protocol::Smtp, &[ip("127.0.1.3")]).await;
    let mut got = hosts(&r);
    // The two of preference 20 come in the DNS answer's order.
    got[1..].sort();
    assert_eq!(
        got,
        vec![
            "mx1.multi.test[127.0.1.1]:25",
            "mx2.multi.test[127.0.1.2]:25",
            "mx2b.multi.test[127.0.1.22]:25",
        ]
    );
    // Not an MX host: everything, and the fallback relays may follow.
    let r = run(&c, "multi.test", Protocol::Smtp, &[ip("127.0.0.1")]).await;
    assert_eq!(hosts(&r).len(), 4);
    assert!(!r.i_am_mx && !r.final_nexthop());
}

#[tokio::test]
async fn primary_relay_not_found() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "prim.test", Protocol::Smtp, &[ip("127.0.4.2")]).await;
    assert_eq!(
        fail(&r),
        (
            "4.4.4".into(),
            "unable to find primary relay for prim.test".into()
        )
    );
    assert!(r.i_am_mx);
}

#[tokio::test]
async fn bracketed_host_skips_mx() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "[multi.test]", Protocol::Smtp, &[]).await;
    assert_eq!(hosts(&r), vec!["multi.test[127.0.1.99]:25"]);
    let r = run(&c, "[mx2.multi.test]:587", Protocol::Smtp, &[]).await;
    assert_eq!(hosts(&r), vec!["mx2.multi.test[127.0.1.2]:587"]);
    let log = std::fs::read_to_string(d.log_path()).expect("dnsmasq log");
    assert!(
        !log.contains("query[MX]"),
        "an MX lookup for a [host]:\n{log}"
    );
    // Numeric forms need no lookup at all.
    let r = run(&c, "[192.0.2.1]", Protocol::Smtp, &[]).await;
    assert_eq!(hosts(&r), vec!["192.0.2.1[192.0.2.1]:25"]);
    let r = run(&c, "[ipv6:2001:db8::1]:2525", Protocol::Smtp, &[]).await;
    assert_eq!(hosts(&r), vec!["2001:db8::1[2001:db8::1]:2525"]);
    // A [host] that is this machine.
    let r = run(&c, "[mx1.multi.test]", Protocol::Smtp, &[ip("127.0.1.1")]).await;
    assert_eq!(
        fail(&r),
        (
            "5.4.6".into(),
            "mail for mx1.multi.test loops back to myself".into()
        )
    );
    assert!(!r.i_am_mx && r.final_nexthop());
}

#[tokio::test]
async fn lmtp_looks_up_hosts_only() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "inet:multi.test", Protocol::Lmtp, &[ip("127.0.1.99")]).await;
    // No MX lookup, the LMTP port, and no loop detection.
    assert_eq!(hosts(&r), vec!["multi.test[127.0.1.99]:24"]);
    let r = run(&c, "multi.test:2003", Protocol::Lmtp, &[]).await;
    assert_eq!(hosts(&r), vec!["multi.test[127.0.1.99]:2003"]);
}

#[tokio::test]
async fn native_lookup() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let native = Settings {
        host_lookup: HostLookup::parse("native").expect("native"),
        ..settings()
    };
    let site = inet_sites("[localhost]", "", Protocol::Smtp).remove(0);
    let r = resolve(&c, &site, Protocol::Smtp, &native, &[], &mut Rng::seeded(1)).await;
    assert!(
        hosts(&r).contains(&"localhost[127.0.0.1]:25".to_owned()),
        "{r:?}"
    );
    let r = resolve(
        &c,
        &site,
        Protocol::Smtp,
        &native,
        &[ip("127.0.0.1")],
        &mut Rng::seeded(1),
    )
    .await;
    assert_eq!(fail(&r).0, "5.4.6");
    // dns, native: a name the DNS does not know (NXDOMAIN), found by the native service.
    let both = Settings {
        host_lookup: HostLookup::parse("dns, native").expect("both"),
        ..settings()
    };
    let r = resolve(&c, &site, Protocol::Smtp, &both, &[], &mut Rng::seeded(1)).await;
    assert!(
        hosts(&r).contains(&"localhost[127.0.0.1]:25".to_owned()),
        "{r:?}"
    );
    // (A name neither knows would send getaddrinfo(3) to resolv.conf's servers, off
    // loopback: not tested here.)
}

#[tokio::test]
async fn fallback_relays_follow_the_nexthop() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let list = inet_sites("nx.test", "[relay.test]", Protocol::Smtp);
    assert_eq!(list.len(), 2);
    let mut rng = Rng::seeded(1);
    let first = resolve(&c, &list[0], Protocol::Smtp, &settings(), &[], &mut rng).await;
    assert_eq!(fail(&first).0, "5.4.4");
    assert!(!first.final_nexthop(), "the fallback relay is tried next");
    let second = resolve(&c, &list[1], Protocol::Smtp, &settings(), &[], &mut rng).await;
    assert_eq!(hosts(&second), vec!["relay.test[127.0.7.1]:25"]);
    // A fallback relay that does not resolve: a configuration problem, deferred.
    let list = inet_sites("nx.test", "[nxrelay.test]", Protocol::Smtp);
    let r = resolve(&c, &list[1], Protocol::Smtp, &settings(), &[], &mut rng).await;
    let mut f = r.targets.expect_err("failure");
    let warning = config_problem(&mut f, &list[1], &list[0].text, "", Protocol::Smtp);
    assert_eq!(
        warning.as_deref(),
        Some("smtp_fallback_relay configuration problem")
    );
    assert_eq!(f.dsn, "4.3.5");
    // A relayhost that does not resolve: the same.
    let list = inet_sites("[nxrelay.test]", "", Protocol::Smtp);
    let r = resolve(&c, &list[0], Protocol::Smtp, &settings(), &[], &mut rng).await;
    let mut f = r.targets.expect_err("failure");
    let warning = config_problem(
        &mut f,
        &list[0],
        &list[0].text,
        "[nxrelay.test]",
        Protocol::Smtp,
    );
    assert_eq!(warning.as_deref(), Some("relayhost configuration problem"));
    assert_eq!(f.dsn, "4.3.5");
}
