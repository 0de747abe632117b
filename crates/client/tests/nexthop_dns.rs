//! Next-hop resolution (tern_client::nexthop) against real DNS answers: a dnsmasq on a
//! loopback port (Debian's `dnsmasq-base`; the test fails when it is missing) with MX,
//! A and AAAA records, and fake servers that answer SERVFAIL or never answer. The
//! expected texts and DSN codes are those of Postfix 3.7's smtp_addr.c and dns_lookup.c,
//! checked against Debian's Postfix 3.7.11 (its smtp(8) in a mount namespace whose
//! resolv.conf named a dnsmasq with the same records on 127.0.0.1:53): NXDOMAIN, null MX,
//! REFUSED, the malformed and numeric MX warnings, and the MX hosts without addresses.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tern_client::nexthop::{
    AddressPreference, DnsClient, Failure, InetProtocols, Protocol, Resolution, Rng, Settings,
    Site, Sites, resolve, sites,
};
use tern_testkit::dns::{Dnsmasq, FakeAnswer, FakeDns};

/// The zone: everything under `test` answers from these records or NXDOMAIN.
const RECORDS: &[&str] = &[
    "--local=/test/",
    // Three preferences, listed out of order.
    "--mx-host=multi.test,mx3.multi.test,30",
    "--mx-host=multi.test,mx1.multi.test,10",
    "--mx-host=multi.test,mx2.multi.test,20",
    "--host-record=mx1.multi.test,127.0.1.1",
    "--host-record=mx2.multi.test,127.0.1.2",
    "--host-record=mx3.multi.test,127.0.1.3",
    // Two equal preferences.
    "--mx-host=eq.test,a.eq.test,10",
    "--mx-host=eq.test,b.eq.test,10",
    "--host-record=a.eq.test,127.0.2.1",
    "--host-record=b.eq.test,127.0.2.2",
    // No MX: the domain's own address.
    "--host-record=nomx.test,127.0.3.1",
    // Null MX (RFC 7505).
    "--mx-host=null.test,.,0",
    // One MX host with an IPv4 and an IPv6 address.
    "--mx-host=dual.test,mx.dual.test,10",
    "--host-record=mx.dual.test,127.0.5.1,::5:1",
    // Seven MX hosts of one preference.
    "--mx-host=many.test,m1.many.test,10",
    "--mx-host=many.test,m2.many.test,10",
    "--mx-host=many.test,m3.many.test,10",
    "--mx-host=many.test,m4.many.test,10",
    "--mx-host=many.test,m5.many.test,10",
    "--mx-host=many.test,m6.many.test,10",
    "--mx-host=many.test,m7.many.test,10",
    "--host-record=m1.many.test,127.0.6.1",
    "--host-record=m2.many.test,127.0.6.2",
    "--host-record=m3.many.test,127.0.6.3",
    "--host-record=m4.many.test,127.0.6.4",
    "--host-record=m5.many.test,127.0.6.5",
    "--host-record=m6.many.test,127.0.6.6",
    "--host-record=m7.many.test,127.0.6.7",
    // A malformed MX target, and a numeric one.
    "--mx-host=bad.test,-bad.bad.test,10",
    "--mx-host=num.test,192.0.2.7,10",
    // MX hosts without addresses.
    "--mx-host=noaddr.test,gone1.noaddr.test,10",
    "--mx-host=noaddr.test,gone2.noaddr.test,20",
];

/// How many times a random order is drawn before giving up on seeing both.
const SHUFFLE_TRIES: usize = 200;

fn dns() -> Dnsmasq {
    Dnsmasq::start(RECORDS).expect("dnsmasq (Debian's dnsmasq-base) must be installed")
}

fn site(text: &str) -> Site {
    let mut w = Vec::new();
    match sites(text, "", Protocol::Smtp, "smtp", "smtp=25", &mut w).expect(text) {
        Sites::Inet(mut list) => list.remove(0),
        Sites::Unix(_) => panic!("unix site"),
    }
}

fn settings() -> Settings {
    Settings {
        query_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

async fn run(client: &DnsClient, text: &str, s: &Settings, local: &[IpAddr]) -> Resolution {
    let mut rng = Rng::new();
    resolve(client, &site(text), Protocol::Smtp, s, local, &mut rng).await
}

/// (host, address, port, preference) of each target.
fn shape(r: &Resolution) -> Vec<(String, String, u16, u32)> {
    r.targets
        .as_ref()
        .unwrap_or_else(|f| panic!("failure: {f:?}"))
        .iter()
        .map(|t| (t.host.clone(), t.addr.to_string(), t.port, t.pref))
        .collect()
}

fn failure(r: &Resolution) -> &Failure {
    r.targets.as_ref().expect_err("a failure")
}

fn row(host: &str, addr: &str, port: u16, pref: u32) -> (String, String, u16, u32) {
    (host.to_owned(), addr.to_owned(), port, pref)
}

#[tokio::test]
async fn mx_preferences_in_order() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "multi.test", &settings(), &[]).await;
    assert_eq!(
        shape(&r),
        vec![
            row("mx1.multi.test", "127.0.1.1", 25, 10),
            row("mx2.multi.test", "127.0.1.2", 25, 20),
            row("mx3.multi.test", "127.0.1.3", 25, 30),
        ]
    );
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert!(!r.i_am_mx && !r.final_nexthop());
    // A port keeps the MX lookup.
    let r = run(&c, "multi.test:2525", &settings(), &[]).await;
    assert_eq!(shape(&r)[0], row("mx1.multi.test", "127.0.1.1", 2525, 10));
}

#[tokio::test]
async fn equal_preferences_are_shuffled() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let mut seen = HashSet::new();
    for _ in 0..SHUFFLE_TRIES {
        let r = run(&c, "eq.test", &settings(), &[]).await;
        let order: Vec<String> = shape(&r).into_iter().map(|t| t.0).collect();
        assert_eq!(order.len(), 2);
        seen.insert(order);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "both orders of equal-preference MX hosts: {seen:?}"
    );
    // smtp_randomize_addresses = no: the order of the answer, every time.
    let fixed = Settings {
        randomize_addresses: false,
        ..settings()
    };
    let first = shape(&run(&c, "eq.test", &fixed, &[]).await);
    for _ in 0..10 {
        assert_eq!(shape(&run(&c, "eq.test", &fixed, &[]).await), first);
    }
}

#[tokio::test]
async fn no_mx_uses_the_domain_address() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "nomx.test", &settings(), &[]).await;
    assert_eq!(shape(&r), vec![row("nomx.test", "127.0.3.1", 25, 0)]);
}

#[tokio::test]
async fn null_mx_bounces() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "null.test", &settings(), &[]).await;
    let f = failure(&r);
    assert_eq!(f.dsn, "5.1.0");
    assert_eq!(f.text, "Domain null.test does not accept mail (nullMX)");
    assert!(!f.is_soft());
}

#[tokio::test]
async fn nxdomain_bounces() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    // No MX (NXDOMAIN), then A and AAAA: the last lookup's text (dns_lookup_v()).
    let r = run(&c, "nx.test", &settings(), &[]).await;
    let f = failure(&r);
    assert_eq!(f.dsn, "5.4.4");
    assert_eq!(
        f.text,
        "Host or domain name not found. Name service error for name=nx.test type=AAAA: Host not found"
    );
    let v4 = Settings {
        inet_protocols: InetProtocols::parse("ipv4").expect("ipv4"),
        ..settings()
    };
    let r = run(&c, "nx.test", &v4, &[]).await;
    assert_eq!(
        failure(&r).text,
        "Host or domain name not found. Name service error for name=nx.test type=A: Host not found"
    );
}

#[tokio::test]
async fn servfail_refused_and_timeout_defer() {
    let quick = Settings {
        query_timeout: Duration::from_secs(1),
        ..settings()
    };
    let want = "Host or domain name not found. Name service error for name=example.test type=MX: Host not found, try again";
    // SERVFAIL, REFUSED (Postfix with a dnsmasq that has no upstream), no answer.
    for answer in [
        FakeAnswer::Rcode(2),
        FakeAnswer::Rcode(5),
        FakeAnswer::Silent,
    ] {
        let fake = FakeDns::start(answer).expect("fake dns");
        let c = DnsClient::new(Some(fake.addr()));
        let start = Instant::now();
        let r = run(&c, "example.test", &quick, &[]).await;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{answer:?} took too long"
        );
        let f = failure(&r);
        assert_eq!(
            (f.dsn.as_str(), f.text.as_str()),
            ("4.4.3", want),
            "{answer:?}"
        );
        assert!(f.is_soft());
        // A [host] looks up addresses only; they fail the same way.
        let r = run(&c, "[mx.example.test]", &quick, &[]).await;
        let f = failure(&r);
        assert_eq!(f.dsn, "4.4.3", "{answer:?}");
        assert_eq!(
            f.text,
            "Host or domain name not found. Name service error for name=mx.example.test type=AAAA: Host not found, try again"
        );
    }
}

#[tokio::test]
async fn address_preference() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    for (pref, first) in [
        (AddressPreference::Ipv4, "127.0.5.1"),
        (AddressPreference::Ipv6, "::5:1"),
    ] {
        let s = Settings {
            address_preference: pref,
            ..settings()
        };
        for _ in 0..10 {
            let r = run(&c, "dual.test", &s, &[]).await;
            let addrs: Vec<String> = shape(&r).into_iter().map(|t| t.1).collect();
            assert_eq!(addrs.len(), 2);
            assert_eq!(addrs[0], first, "{pref:?}");
        }
    }
    // any: the shuffle decides.
    let mut seen = HashSet::new();
    for _ in 0..SHUFFLE_TRIES {
        let r = run(&c, "dual.test", &settings(), &[]).await;
        seen.insert(shape(&r)[0].1.clone());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // inet_protocols = ipv4: no AAAA.
    let v4 = Settings {
        inet_protocols: InetProtocols::parse("ipv4").expect("ipv4"),
        ..settings()
    };
    let r = run(&c, "dual.test", &v4, &[]).await;
    assert_eq!(shape(&r), vec![row("mx.dual.test", "127.0.5.1", 25, 10)]);
}

#[tokio::test]
async fn mx_address_limit() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    for (limit, want) in [(5, 5), (3, 3), (0, 7), (10, 7)] {
        let s = Settings {
            mx_address_limit: limit,
            ..settings()
        };
        let r = run(&c, "many.test", &s, &[]).await;
        let got = shape(&r);
        assert_eq!(got.len(), want, "limit {limit}");
        let distinct: HashSet<_> = got.iter().map(|t| t.1.clone()).collect();
        assert_eq!(distinct.len(), want);
    }
}

#[tokio::test]
async fn malformed_and_numeric_mx() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "bad.test", &settings(), &[]).await;
    let f = failure(&r);
    assert_eq!(f.dsn, "5.4.4");
    assert_eq!(
        f.text,
        "Name service error for name=bad.test type=MX: Malformed or unexpected name server reply"
    );
    assert_eq!(
        r.warnings,
        vec![
            "valid_hostname: misplaced hyphen: -bad.bad.test",
            "malformed domain name in resource data of MX record for bad.test: -bad.bad.test",
        ]
    );
    let r = run(&c, "num.test", &settings(), &[]).await;
    assert_eq!(shape(&r), vec![row("192.0.2.7", "192.0.2.7", 25, 10)]);
    assert_eq!(
        r.warnings,
        vec!["numeric domain name in resource data of MX record for num.test: 192.0.2.7"]
    );
}

#[tokio::test]
async fn mx_hosts_without_addresses() {
    let d = dns();
    let c = DnsClient::new(Some(d.addr()));
    let r = run(&c, "noaddr.test", &settings(), &[]).await;
    let f = failure(&r);
    assert_eq!(f.dsn, "5.4.4");
    assert_eq!(
        f.text,
        "Host or domain name not found. Name service error for name=gone2.noaddr.test type=AAAA: Host not found"
    );
    assert_eq!(
        r.warnings,
        vec!["no MX host for noaddr.test has a valid address record"]
    );
    // smtp_defer_if_no_mx_address_found = yes: the same text, deferred.
    let defer = Settings {
        defer_if_no_mx_address_found: true,
        ..settings()
    };
    let r = run(&c, "noaddr.test", &defer, &[]).await;
    assert_eq!(failure(&r).dsn, "4.4.4");
}
