//! The DNS side of the restrictions (crate::check::dns::DnsChecks) against a DNS server
//! on a loopback port: dnsmasq (Debian's `dnsmasq-base`) with the records below, and
//! tern_testkit's FakeDns for time-outs and SERVFAIL. The expectations are Postfix's
//! (smtpd_check.c v3.7.11: reject_unknown_hostname, reject_unknown_mailhost,
//! find_dnsxl_addr, rbl_reject_reply, check_server_access). Fails when dnsmasq is
//! missing.
//!
//! The last tests run a real Tern daemon (`target/<profile>/postfix`, `cargo build -p
//! tern-commands --bin postfix`) with `TERN_DNS_SERVER` naming the dnsmasq, and clients
//! on 127.0.0.x: reject_rbl_client, reject_unknown_sender_domain, and a sender domain
//! whose lookups time out (450).

use std::io::{BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tern_config::config::Config;
use tern_config::host::HostInfo;
use tern_config::maincf::MainCf;
use tern_config::mastercf::MasterCf;
use tern_daemon::check::dns::{
    DnsChecks, HostLookup, RblContext, Server, ServerKind, ServerList, ServerLookup,
};
use tern_testkit::dns::{Dnsmasq, FakeAnswer, FakeDns};
use tern_testkit::postfix::connect_from;
use tern_testkit::smtp::read_reply;
use tern_testkit::tern::{Tern, postfix_binary};

const RECORDS: &[&str] = &[
    "--local=/test/",
    // reject_rbl_client rbl.test: 192.0.2.7 listed as 127.0.0.2 with a reason,
    // 192.0.2.8 as 127.0.0.5, 192.0.2.9 as 127.0.0.3 without TXT; 192.0.2.10 not.
    "--address=/7.2.0.192.rbl.test/127.0.0.2",
    "--txt-record=7.2.0.192.rbl.test,Listed; see http://rbl.test/?ip=192.0.2.7",
    "--address=/8.2.0.192.rbl.test/127.0.0.5",
    "--address=/9.2.0.192.rbl.test/127.0.0.3",
    // reject_rhsbl_sender dbl.test: bad.example listed.
    "--address=/bad.example.dbl.test/127.0.1.2",
    "--txt-record=bad.example.dbl.test,spam domain",
    // Hosts and mail domains.
    "--host-record=aonly.test,192.0.2.50",
    "--mx-host=mxonly.test,mail.test,10",
    "--host-record=mail.test,192.0.2.51",
    "--mx-host=nullmx.test,.,0",
    "--mx-host=mxd.test,mx1.test,10",
    "--mx-host=mxd.test,mx2.test,20",
    "--host-record=mx1.test,192.0.2.60",
];

fn checks(main: &str) -> DnsChecks {
    let main = format!("myhostname = mx.example.test\ninet_protocols = ipv4\n{main}");
    let main = MainCf::parse(main.as_bytes(), "main.cf").expect("main.cf");
    let master = MasterCf::parse(b"", "master.cf").expect("master.cf");
    let config = Config::new(
        Path::new("/etc/postfix"),
        main,
        master,
        HostInfo::from_hostname("mx.example.test"),
    );
    DnsChecks::from_config(&config, None).expect("dns checks")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn ctx() -> RblContext<'static> {
    RblContext {
        class: "Client host",
        what: "",
        client_name: "unknown",
        client_address: "192.0.2.7",
        reverse_client_name: "unknown",
        helo_name: "client.example",
        sender: "a@bad.example",
        recipient: "",
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

#[test]
fn rbl_client_lists() {
    let dns = Dnsmasq::start(RECORDS).expect("dnsmasq");
    let c = checks("").with_server(dns.addr());
    let rt = rt();
    let cx = ctx();
    let listed = rt.block_on(c.rbl_addr("rbl.test", ip("192.0.2.7"), &cx));
    assert_eq!(
        listed,
        Some((
            554,
            "5.7.1".to_owned(),
            "Service unavailable; Client host [192.0.2.7] blocked using rbl.test; \
             Listed; see http://rbl.test/?ip=192.0.2.7"
                .to_owned()
        ))
    );
    // The answer is reused (Postfix's per-process RBL cache): no new queries.
    let asked = dns.queries_for("7.2.0.192.rbl.test");
    assert!(asked >= 2, "{asked}");
    let again = rt.block_on(c.rbl_addr("rbl.test=127.0.0.2", ip("192.0.2.7"), &cx));
    assert_eq!(again, listed);
    assert_eq!(dns.queries_for("7.2.0.192.rbl.test"), asked);
    // Filtered by the reply address: =127.0.0.2 and a range.
    let cases = [
        ("rbl.test=127.0.0.2", "192.0.2.7", true),
        ("rbl.test=127.0.0.2", "192.0.2.8", false),
        ("rbl.test=127.0.0.[2..4]", "192.0.2.9", true),
        ("rbl.test=127.0.0.[2..4]", "192.0.2.8", false),
        ("rbl.test", "192.0.2.10", false),
    ];
    for (rbl, addr, want) in cases {
        let got = rt.block_on(c.rbl_addr(rbl, ip(addr), &cx));
        assert_eq!(got.is_some(), want, "{rbl} {addr}: {got:?}");
    }
    // No TXT: the reason part is left out; $rbl_domain loses the pattern.
    let got = rt.block_on(c.rbl_addr("rbl.test=127.0.0.[2..4]", ip("192.0.2.9"), &cx));
    assert_eq!(
        got.map(|r| r.2).as_deref(),
        Some("Service unavailable; Client host [192.0.2.9] blocked using rbl.test")
    );
    // A reply template of rbl_reply_maps, with smtpd's names.
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("rbl_reply");
    std::fs::write(
        &table,
        "rbl.test 450 4.7.9 $client_address via $rbl_domain: $rbl_reason \
         (helo $helo_name, from $sender_domain)\n",
    )
    .expect("table");
    let c =
        checks(&format!("rbl_reply_maps = texthash:{}\n", table.display())).with_server(dns.addr());
    let got = rt.block_on(c.rbl_addr("rbl.test", ip("192.0.2.7"), &cx));
    assert_eq!(
        got,
        Some((
            450,
            "4.7.9".to_owned(),
            "192.0.2.7 via rbl.test: Listed; see http://rbl.test/?ip=192.0.2.7 \
             (helo client.example, from bad.example)"
                .to_owned()
        ))
    );
}

#[test]
fn rhsbl_domains() {
    let dns = Dnsmasq::start(RECORDS).expect("dnsmasq");
    let c = checks("").with_server(dns.addr());
    let rt = rt();
    let cx = RblContext {
        class: "Sender address",
        ..ctx()
    };
    let got = rt.block_on(c.rbl_domain("dbl.test", "a@bad.example", &cx));
    assert_eq!(
        got,
        Some((
            554,
            "5.7.1".to_owned(),
            "Service unavailable; Sender address [a@bad.example] blocked using dbl.test; \
             spam domain"
                .to_owned()
        ))
    );
    for what in ["a@good.example", "a@[192.0.2.1]", "a@host.123", ""] {
        assert_eq!(
            rt.block_on(c.rbl_domain("dbl.test", what, &cx)),
            None,
            "{what}"
        );
    }
}

#[test]
fn hosts_and_mail_domains() {
    let dns = Dnsmasq::start(RECORDS).expect("dnsmasq");
    let c = checks("").with_server(dns.addr());
    let rt = rt();
    let cases = [
        ("aonly.test", HostLookup::Found, HostLookup::Found),
        ("mxonly.test", HostLookup::Found, HostLookup::Found),
        ("nullmx.test", HostLookup::Found, HostLookup::NullMx),
        ("nx.test", HostLookup::NotFound, HostLookup::NotFound),
    ];
    for (name, host, mailhost) in cases {
        assert_eq!(rt.block_on(c.host(name)), host, "host {name}");
        assert_eq!(rt.block_on(c.mailhost(name)), mailhost, "mailhost {name}");
    }
}

#[test]
fn server_lists() {
    let dns = Dnsmasq::start(RECORDS).expect("dnsmasq");
    let c = checks("").with_server(dns.addr());
    let rt = rt();
    let server = |host: &str, addrs: Result<Vec<IpAddr>, &str>| Server {
        host: host.to_owned(),
        numeric: false,
        addrs: addrs.map_err(str::to_owned),
    };
    // In the order of the answer (check_server_access() does not sort).
    let ServerLookup::Servers(mut list) =
        rt.block_on(c.server_lookup("u@mxd.test", ServerKind::Mx))
    else {
        panic!("servers");
    };
    list.sort_by(|a, b| a.host.cmp(&b.host));
    assert_eq!(
        list,
        vec![
            server("mx1.test", Ok(vec![ip("192.0.2.60")])),
            server("mx2.test", Err("Name or service not known")),
        ]
    );
    // No MX: the domain is its own server; a null MX is dunno.
    assert_eq!(
        rt.block_on(c.server_lookup("aonly.test", ServerKind::Mx)),
        ServerLookup::Servers(vec![server("aonly.test", Ok(vec![ip("192.0.2.50")]))])
    );
    assert_eq!(
        rt.block_on(c.server_lookup("u@nullmx.test", ServerKind::Mx)),
        ServerLookup::Dunno(None)
    );
    assert_eq!(
        rt.block_on(c.server_lookup("u@[192.0.2.9]", ServerKind::A)),
        ServerLookup::Literal(ip("192.0.2.9"))
    );
    assert_eq!(
        rt.block_on(c.server_lookup("u@[192.0.2.9]", ServerKind::Ns)),
        ServerLookup::Dunno(None)
    );
    // The engine's view: hosts with their addresses.
    let ServerList::Hosts(mut hosts) = rt.block_on(c.servers("u@mxd.test", ServerKind::Mx)) else {
        panic!("hosts");
    };
    hosts.sort();
    assert_eq!(
        hosts,
        vec![
            ("mx1.test".to_owned(), vec![ip("192.0.2.60")]),
            ("mx2.test".to_owned(), vec![])
        ]
    );
    assert_eq!(
        list[1].lookup_warning(ServerKind::Mx, "Sender address", "u@mxd.test"),
        Some(
            "Unable to look up MX host mx2.test for Sender address u@mxd.test: \
             Name or service not known"
                .to_owned()
        )
    );
}

/// A server that never answers: every lookup is a temporary failure within the bound,
/// and an RBL lets the client pass with Postfix's warning.
#[test]
fn timeouts_are_temporary() {
    let fake = FakeDns::start(FakeAnswer::Silent).expect("fake dns");
    let c = checks("")
        .with_server(fake.addr())
        .with_timeout(Duration::from_secs(1));
    let rt = rt();
    let start = Instant::now();
    assert_eq!(rt.block_on(c.host("aonly.test")), HostLookup::TempFail);
    assert_eq!(rt.block_on(c.mailhost("aonly.test")), HostLookup::TempFail);
    let out = rt.block_on(c.rbl_addr_outcome("rbl.test", ip("192.0.2.7"), &ctx()));
    assert_eq!(out.reply, None);
    assert_eq!(
        out.warnings,
        vec![
            "7.2.0.192.rbl.test: RBL lookup error: Host or domain name not found. \
             Name service error for name=7.2.0.192.rbl.test type=A: Host not found, try again"
                .to_owned()
        ]
    );
    // A soft failure is reused too, without a second warning or wait.
    let again = Instant::now();
    let out = rt.block_on(c.rbl_addr_outcome("rbl.test", ip("192.0.2.7"), &ctx()));
    assert_eq!((out.reply, out.warnings.len()), (None, 0));
    assert!(again.elapsed() < Duration::from_millis(500));
    assert_eq!(
        rt.block_on(c.server_lookup("u@mxd.test", ServerKind::Mx)),
        ServerLookup::Dunno(Some(
            "Unable to look up MX host for mxd.test: Host not found, try again".to_owned()
        ))
    );
    assert_eq!(
        rt.block_on(c.servers("u@mxd.test", ServerKind::Mx)),
        ServerList::TempFail
    );
    // 3 + 3 + 1 + 2 queries of at most a second each.
    assert!(start.elapsed() < Duration::from_secs(20));
    let servfail = FakeDns::start(FakeAnswer::Rcode(2)).expect("fake dns");
    let c = checks("").with_server(servfail.addr());
    assert_eq!(rt.block_on(c.mailhost("x.test")), HostLookup::TempFail);
    let _: SocketAddr = servfail.addr();
}

/// A Tern daemon started with `TERN_DNS_SERVER=dns`; stopped (SIGTERM, then SIGKILL) on
/// drop.
struct Daemon {
    tern: Tern,
    child: Child,
}

impl Daemon {
    fn start(extra: &str, dns: SocketAddr) -> Daemon {
        let tern = Tern::configure(extra).expect("configure");
        let child = Command::new(postfix_binary().expect("postfix binary"))
            .arg("-c")
            .arg(tern.config_dir())
            .arg("start-fg")
            .env("TERN_DNS_SERVER", dns.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start postfix");
        let mut me = Daemon { tern, child };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("postfix start-fg exited: {status}");
            }
            if TcpStream::connect(("127.0.0.1", me.tern.port)).is_ok() {
                return me;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no listener");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A session from 127.0.0.`host`: the reply to each command (last line, no CRLF).
    fn dialog(&self, host: u8, commands: &[&str]) -> Vec<String> {
        let server = SocketAddr::from(([127, 0, 0, 1], self.tern.port));
        let s = connect_from(Ipv4Addr::new(127, 0, 0, host), server).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(90)))
            .expect("timeout");
        let mut w = s.try_clone().expect("clone");
        let mut r = BufReader::new(s);
        let mut out = vec![read_reply(&mut r).expect("greeting").trim_end().to_owned()];
        for c in commands {
            w.write_all(format!("{c}\r\n").as_bytes()).expect("write");
            let reply = read_reply(&mut r).expect("reply");
            out.push(reply.lines().last().unwrap_or_default().to_owned());
        }
        out
    }

    /// EHLO, MAIL FROM:<a@example.org>, RCPT TO:<to> from 127.0.0.`host`: RCPT's reply.
    fn rcpt(&self, host: u8, to: &str) -> String {
        let rcpt = format!("RCPT TO:<{to}>");
        let cmds = [
            "EHLO client.example",
            "MAIL FROM:<a@example.org>",
            &rcpt,
            "QUIT",
        ];
        self.dialog(host, &cmds)[3].clone()
    }

    fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.tern.log();
            if log.contains(needle) || start.elapsed() > Duration::from_secs(15) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's DNS: 127.0.0.2 listed in rbl.test; slow.test forwarded to a server that
/// never answers.
fn daemon_dns(silent: SocketAddr) -> Dnsmasq {
    let forward = format!("--server=/slow.test/{}#{}", silent.ip(), silent.port());
    let mut records: Vec<&str> = vec![
        "--local=/test/",
        "--local=/127.in-addr.arpa/",
        "--address=/2.0.0.127.rbl.test/127.0.0.2",
        "--txt-record=2.0.0.127.rbl.test,Listed for testing",
        "--host-record=good.test,192.0.2.80",
    ];
    records.push(&forward);
    Dnsmasq::start(&records).expect("dnsmasq")
}

const DAEMON_CONF: &str = "mynetworks = 127.0.0.1/32\n\
    smtpd_client_restrictions = reject_rbl_client rbl.test\n\
    smtpd_sender_restrictions = reject_unknown_sender_domain\n\
    unknown_address_reject_code = 550\n";

fn transaction(sender: &str) -> Vec<String> {
    vec![
        "EHLO client.example".to_owned(),
        format!("MAIL FROM:<{sender}>"),
        "RCPT TO:<postmaster@mx.example.test>".to_owned(),
        "QUIT".to_owned(),
    ]
}

#[test]
fn daemon_rbl_and_unknown_sender_domain() {
    let silent = FakeDns::start(FakeAnswer::Silent).expect("fake dns");
    let dns = daemon_dns(silent.addr());
    let d = Daemon::start(DAEMON_CONF, dns.addr());
    let t = transaction("a@good.test");
    let cmds: Vec<&str> = t.iter().map(String::as_str).collect();
    // Listed: the client restriction answers at RCPT (smtpd_delay_reject = yes).
    let got = d.dialog(2, &cmds);
    assert_eq!(
        got[3],
        "554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using rbl.test; \
         Listed for testing",
        "{got:#?}"
    );
    let log = d.wait_log("blocked using rbl.test");
    assert!(
        log.contains(
            "NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 Service unavailable; \
             Client host [127.0.0.2] blocked using rbl.test; Listed for testing; \
             from=<a@good.test> to=<postmaster@mx.example.test> proto=ESMTP helo=<client.example>"
        ),
        "{log}"
    );
    // Not listed, a sender domain that exists: accepted.
    let got = d.dialog(3, &cmds);
    assert!(got[3].starts_with("250 "), "{got:#?}");
    // A sender domain that does not exist: unknown_address_reject_code.
    let t = transaction("a@nx.test");
    let cmds: Vec<&str> = t.iter().map(String::as_str).collect();
    let got = d.dialog(3, &cmds);
    assert_eq!(
        got[3], "550 5.1.8 <a@nx.test>: Sender address rejected: Domain not found",
        "{got:#?}"
    );
}

#[test]
fn daemon_dns_timeout_defers() {
    let silent = FakeDns::start(FakeAnswer::Silent).expect("fake dns");
    let dns = daemon_dns(silent.addr());
    let d = Daemon::start(DAEMON_CONF, dns.addr());
    let t = transaction("a@slow.test");
    let cmds: Vec<&str> = t.iter().map(String::as_str).collect();
    let start = Instant::now();
    let got = d.dialog(3, &cmds);
    // reject_unknown_sender_domain's temporary failure: 450 whatever the reject code.
    assert_eq!(
        got[3], "450 4.1.8 <a@slow.test>: Sender address rejected: Domain not found",
        "{got:#?}"
    );
    assert!(start.elapsed() < Duration::from_mins(1));
}

/// permit_mx_backup (smtpd_check.c permit_mx_backup()) through a daemon whose
/// inet_interfaces is loopback-only and mydestination holds mx.example.test, for a client
/// outside mynetworks: a domain whose backup MX is this host (by name, or by an address
/// of this host) is accepted; a domain whose primary MX is this host, one without this
/// host among its MX hosts, one without MX records, and one whose primary MX is outside
/// permit_mx_backup_networks are relay access denied; an MX lookup that times out turns
/// the reject into Postfix's 450 4.4.4.
#[test]
fn daemon_permit_mx_backup() {
    let silent = FakeDns::start(FakeAnswer::Silent).expect("fake dns");
    let forward = format!(
        "--server=/slow.test/{}#{}",
        silent.addr().ip(),
        silent.addr().port()
    );
    let dns = Dnsmasq::start(&[
        "--local=/test/",
        "--local=/127.in-addr.arpa/",
        "--mx-host=backup.test,primary.test,10",
        "--mx-host=backup.test,mx.example.test,20",
        "--mx-host=byaddr.test,primary.test,10",
        "--mx-host=byaddr.test,self.test,20",
        "--host-record=self.test,127.0.0.1",
        "--host-record=primary.test,192.0.2.5",
        "--mx-host=primary-me.test,mx.example.test,10",
        "--mx-host=primary-me.test,primary.test,20",
        "--mx-host=notme.test,primary.test,10",
        "--mx-host=notme.test,other.test,20",
        "--host-record=other.test,192.0.2.99",
        "--host-record=nomx.test,192.0.2.98",
        "--mx-host=outside.test,far.test,10",
        "--mx-host=outside.test,mx.example.test,20",
        "--host-record=far.test,198.51.100.7",
        &forward,
    ])
    .expect("dnsmasq");
    let d = Daemon::start(
        "mynetworks = 127.0.0.1/32\n\
         inet_interfaces = loopback-only\n\
         permit_mx_backup_networks = 192.0.2.0/28\n\
         smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination\n",
        dns.addr(),
    );
    let rcpt = |to: &str| d.rcpt(3, &format!("u@{to}"));
    for to in ["backup.test", "byaddr.test"] {
        assert!(rcpt(to).starts_with("250 2.1.5 "), "{to}: {}", rcpt(to));
    }
    for to in ["primary-me.test", "notme.test", "nomx.test", "outside.test"] {
        assert_eq!(
            rcpt(to),
            format!("554 5.7.1 <u@{to}>: Relay access denied"),
            "{to}"
        );
    }
    let start = Instant::now();
    assert_eq!(
        rcpt("slow.test"),
        "450 4.4.4 <u@slow.test>: Recipient address rejected: Unable to look up mail \
         exchanger information: Host not found, try again"
    );
    assert!(start.elapsed() < Duration::from_mins(1));
}

/// permit_dnswl_client and permit_rhswl_client (smtpd_check.c permit_dnswl_addr(),
/// permit_dnswl_domain()) through a daemon: a client listed in the allow list passes a
/// deny list that lists it too, but never for a recipient that is not an authorised
/// destination ("don't allowlist unauthorized recipients"); a client named in the
/// RHSWL (by its verified name) passes as well; an allow list that does not answer
/// turns the deny list's reject into Postfix's `450 4.7.1 <ADDR>: Client host rejected:
/// Service unavailable`.
#[test]
fn daemon_dnswl_and_rhswl() {
    let silent = FakeDns::start(FakeAnswer::Silent).expect("fake dns");
    let forward = format!(
        "--server=/slow.test/{}#{}",
        silent.addr().ip(),
        silent.addr().port()
    );
    let dns = Dnsmasq::start(&[
        "--local=/test/",
        "--local=/127.in-addr.arpa/",
        "--address=/2.0.0.127.rbl.test/127.0.0.2",
        "--address=/4.0.0.127.rbl.test/127.0.0.2",
        "--address=/5.0.0.127.rbl.test/127.0.0.2",
        "--address=/6.0.0.127.rbl.test/127.0.0.2",
        "--address=/2.0.0.127.wl.test/127.0.5.1",
        "--ptr-record=5.0.0.127.in-addr.arpa,good-client.test",
        "--host-record=good-client.test,127.0.0.5",
        "--address=/good-client.test.rhswl.test/127.0.5.1",
        &forward,
    ])
    .expect("dnsmasq");
    let d = Daemon::start(
        "mynetworks = 127.0.0.1/32\n\
         smtpd_client_restrictions = permit_dnswl_client wl.test, \
         permit_rhswl_client rhswl.test, permit_dnswl_client wl.slow.test, \
         reject_rbl_client rbl.test\n",
        dns.addr(),
    );
    let rcpt = |host: u8, to: &str| d.rcpt(host, to);
    let local = "postmaster@mx.example.test";
    let blocked = |ip: &str| {
        format!("554 5.7.1 Service unavailable; Client host [{ip}] blocked using rbl.test")
    };
    // Allow-listed by address: passes the deny list, for a local recipient only.
    assert!(
        rcpt(2, local).starts_with("250 2.1.5 "),
        "{}",
        rcpt(2, local)
    );
    assert_eq!(rcpt(2, "u@remote.example"), blocked("127.0.0.2"));
    // Allow-listed by name.
    assert!(
        rcpt(5, local).starts_with("250 2.1.5 "),
        "{}",
        rcpt(5, local)
    );
    // Listed only in the deny list, and the last allow list does not answer: deferred.
    let start = Instant::now();
    assert_eq!(
        rcpt(4, local),
        "450 4.7.1 <127.0.0.4>: Client host rejected: Service unavailable"
    );
    assert!(start.elapsed() < Duration::from_mins(1));
    let log = d.wait_log("RBL lookup error");
    assert!(
        log.contains("warning: 4.0.0.127.wl.slow.test: RBL lookup error: "),
        "{log}"
    );
}
