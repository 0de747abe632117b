//! smtp(8) in the daemon routing by MX through dnsmasq (TERN_DNS_SERVER on the daemon):
//! the best MX dead, the next one gets the mail; a null MX bounces; no MX falls back to
//! the A record; a DNS server that never answers defers, never bounces. The MX hosts
//! resolve to 127.0.0.x, and smtp_tcp_port is the peer's port. Needs `cargo build -p
//! tern-commands`, root, Debian's Postfix (smtp-sink) and dnsmasq.

mod relay_util;

use relay_util::{Instance, lines, raw_lines};
use tern_testkit::dns::{Dnsmasq, FakeAnswer, FakeDns};
use tern_testkit::peers::smtp_sink;
use tern_testkit::support::smtplib_send;

fn records() -> Vec<String> {
    [
        "--local=/test/",
        "--mx-host=mx.test,mx1.mx.test,10",
        "--mx-host=mx.test,mx2.mx.test,20",
        "--host-record=mx1.mx.test,127.0.0.2",
        "--host-record=mx2.mx.test,127.0.0.1",
        "--host-record=amx.test,127.0.0.1",
        "--mx-host=null.test,.,0",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn mx_routing_through_dnsmasq() {
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let recs = records();
    let dns =
        Dnsmasq::start(&recs.iter().map(String::as_str).collect::<Vec<_>>()).expect("dnsmasq");
    let tern = Instance::start(
        &format!("smtp_tcp_port = {}", sink.port),
        "",
        &[("TERN_DNS_SERVER", dns.addr().to_string())],
    );
    let port = sink.port;

    // The best MX refuses connections: the next preference gets the mail.
    let id = smtplib_send(tern.t.port, "", &["u@mx.test"], "Subject: mx\r\n\r\nx\r\n");
    let log = tern.wait(&format!("{id}: removed"), 1);
    let refused = format!(": connect to mx1.mx.test[127.0.0.2]:{port}: Connection refused");
    assert!(
        raw_lines(&log, "postfix/smtp[")
            .iter()
            .any(|l| l.ends_with(&refused)),
        "{log}"
    );
    assert_eq!(
        lines(&log, "postfix/smtp", &id),
        vec![format!(
            "QID: to=<u@mx.test>, relay=mx2.mx.test[127.0.0.1]:{port}, delay=N, delays=N, \
             dsn=2.0.0, status=sent (250 2.0.0 Ok)"
        )],
        "{log}"
    );

    // No MX record: the domain's own address.
    let id = smtplib_send(tern.t.port, "", &["u@amx.test"], "Subject: a\r\n\r\nx\r\n");
    let log = tern.wait(&format!("{id}: removed"), 1);
    assert_eq!(
        lines(&log, "postfix/smtp", &id),
        vec![format!(
            "QID: to=<u@amx.test>, relay=amx.test[127.0.0.1]:{port}, delay=N, delays=N, \
             dsn=2.0.0, status=sent (250 2.0.0 Ok)"
        )],
        "{log}"
    );

    // A null MX (RFC 7505) bounces, with no connection.
    let id = smtplib_send(tern.t.port, "", &["u@null.test"], "Subject: n\r\n\r\nx\r\n");
    let log = tern.wait(&format!("{id}: removed"), 1);
    assert_eq!(
        lines(&log, "postfix/smtp", &id),
        vec![
            "QID: to=<u@null.test>, relay=none, delay=N, delays=N, dsn=5.1.0, \
             status=bounced (Domain null.test does not accept mail (nullMX))"
                .to_owned()
        ],
        "{log}"
    );

    // A name dnsmasq does not know: "host not found" bounces too (5.4.4).
    let id = smtplib_send(
        tern.t.port,
        "",
        &["u@nowhere.test"],
        "Subject: n\r\n\r\nx\r\n",
    );
    let log = tern.wait(&format!("{id}: removed"), 1);
    let got = lines(&log, "postfix/smtp", &id);
    assert_eq!(got.len(), 1, "{log}");
    assert!(
        got[0].contains("relay=none, ") && got[0].contains("status=bounced ("),
        "{log}"
    );
    assert!(dns.queries_for("mx.test") > 0);
}

#[test]
fn dns_timeout_defers() {
    let dns = FakeDns::start(FakeAnswer::Silent).expect("fake dns");
    let tern = Instance::start("", "", &[("TERN_DNS_SERVER", dns.addr().to_string())]);
    let id = smtplib_send(tern.t.port, "", &["u@slow.test"], "Subject: s\r\n\r\nx\r\n");
    let log = tern.wait(&format!("{id}: to=<u@slow.test>"), 1);
    let got = lines(&log, "postfix/smtp", &id);
    assert_eq!(got.len(), 1, "{log}");
    assert!(
        got[0].starts_with("QID: to=<u@slow.test>, relay=none, delay=N, delays=N, dsn=4.4.3, status=deferred (Host or domain name not found. Name service error for name=slow.test type=MX: "),
        "{log}"
    );
}
