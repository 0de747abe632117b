//! Side by side with Debian's Postfix 3.7: the same main.cf, the same addresses, asked of a
//! private Postfix instance (its trivial-rewrite(8) over the `private/rewrite` socket, its
//! smtpd(8) over SMTP from 127.0.0.1 and 127.0.0.2) and of this crate; the answers must be
//! equal. Needs root and the postfix package (/work/shared/POSTFIX-REFERENCE.md); fails,
//! never skips, without them.

use std::io::Write;
use std::process::{Command, Stdio};

use tern_config::config::Config;
use tern_config::host::HostInfo;
use tern_config::maincf::MainCf;
use tern_config::mastercf::MasterCf;
use tern_rewrite::{Class, Client, Context, Decision, Resolver};

const QUERIES: &[&str] = &[
    "resolve user@mx.example.com",
    "resolve User@LOCALHOST.",
    "resolve user",
    "resolve ",
    "resolve @localhost",
    "resolve user@[127.0.0.1]",
    "resolve user@[192.0.2.99]",
    "resolve user@alias.example",
    "resolve user@mbox.example",
    "resolve user@relay.example",
    "resolve user@sub.relay.example",
    "resolve user@example.org",
    "resolve user%example.org@localhost",
    "resolve example.org!user@localhost",
    "resolve a!b!c",
    "resolve user@example.org@localhost",
    "resolve user@example.org@relay.example",
    "resolve user%example.org@relay.example",
    "resolve a!user@relay.example",
    "resolve user@localhost@localhost",
    "resolve user@",
    "resolve user@[300.1.1.1]",
    "resolve user@192.0.2.1",
    "resolve -user@example.org",
    "resolve special@example.net",
    "resolve x@example.net",
    "resolve x@a.sub.example.net",
    "resolve x@bounce.example",
    "resolve user+ext@example.com",
    "resolve x@relay2.example",
    "rewrite local user",
    "rewrite local user@host",
    "rewrite local a!b!c",
    "rewrite local user%other.org",
    "rewrite local a%b%c.org",
    "rewrite local user@host.",
    "rewrite remote user",
    "rcpt 127.0.0.1 a@example.org",
    "rcpt 127.0.0.2 a@example.org",
    "rcpt 127.0.0.2 a@relay.example",
    "rcpt 127.0.0.2 a@sub.relay.example",
    "rcpt 127.0.0.2 a@mbox.example",
    "rcpt 127.0.0.2 a@example.org@relay.example",
    "rcpt 127.0.0.2 a%example.org@relay.example",
    "rcpt 127.0.0.2 a%relay.example@mx.example.com",
];

fn main_cf(dir: &std::path::Path) -> String {
    let transport = dir.join("transport");
    std::fs::write(
        &transport,
        "special@example.net  smtp:[special.example]:2525\n\
         example.net          :[gw.example]\n\
         .sub.example.net     lmtp:\n\
         bounce.example       error:5.1.2 no such domain\n\
         user+ext@example.com relay\n\
         relay2.example       error:\n",
    )
    .expect("write transport");
    format!(
        "inet_interfaces = 127.0.0.1\nmyhostname = mx.example.com\nmydomain = example.com\n\
         mydestination = $myhostname, localhost\nmynetworks = 127.0.0.1/32\n\
         compatibility_level = 3.6\nvirtual_alias_domains = alias.example\n\
         virtual_mailbox_domains = mbox.example\nrelay_domains = relay.example\n\
         smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
         recipient_delimiter = +\ntransport_maps = texthash:{}\n",
        transport.display()
    )
}

fn ours(r: &Resolver, query: &str) -> String {
    let (verb, rest) = query.split_once(' ').unwrap_or((query, ""));
    match verb {
        "resolve" => {
            let got = r.resolve(rest).expect("no lookup error");
            let class = match got.class {
                Class::Local => 1 << 8,
                Class::VirtualAlias => 1 << 9,
                Class::VirtualMailbox => 1 << 10,
                Class::Relay => 1 << 11,
                Class::Default => 1 << 12,
            };
            let flags =
                class | (u32::from(got.flags.routed) << 1) | (u32::from(got.flags.error) << 2);
            let (transport, nexthop) = if got.transport.is_empty() {
                (
                    "CHANNEL NOT UPDATED".to_owned(),
                    "NEXTHOP NOT UPDATED".to_owned(),
                )
            } else {
                (got.transport, got.nexthop)
            };
            format!("{transport}\t{nexthop}\t{}\t{flags}", got.recipient)
        }
        "rewrite" => {
            let (context, addr) = rest.split_once(' ').unwrap_or((rest, ""));
            let context = if context == "local" {
                Context::Local
            } else {
                Context::Remote
            };
            r.rewrite(context, addr)
        }
        "rcpt" => {
            let (ip, addr) = rest.split_once(' ').expect("rcpt IP ADDRESS");
            let client = Client::from_addr(ip.parse().expect("client address"));
            match r.relay_restrictions(&client, addr) {
                Decision::Permit | Decision::Dunno => "250 2.1.5 Ok".to_owned(),
                Decision::Reject(reply) | Decision::TempFail(reply) => reply.to_string(),
                Decision::Unsupported(name) => format!("unsupported {name}"),
            }
        }
        other => panic!("unknown query {other}"),
    }
}

#[test]
fn resolve_rewrite_and_relay_match_postfix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = main_cf(dir.path());
    let extra = dir.path().join("extra.cf");
    std::fs::write(&extra, &text).expect("write extra");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/postfix_oracle.py"
    );
    let mut child = Command::new("timeout")
        .args(["180", "python3", script])
        .arg(&extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 and timeout run");
    let mut input = QUERIES.join("\n");
    input.push('\n');
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write queries");
    let out = child.wait_with_output().expect("oracle finishes");
    assert!(
        out.status.success(),
        "the Postfix oracle failed (root and postfix needed)"
    );
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        theirs.len(),
        QUERIES.len(),
        "one answer per query: {theirs:?}"
    );

    let main = MainCf::parse(text.as_bytes(), "main.cf").expect("main.cf");
    let config = Config::new(
        dir.path(),
        main,
        MasterCf::default(),
        HostInfo::from_hostname("mx.example.com"),
    );
    let resolver = Resolver::from_config(&config, tern_maps::no_warnings()).expect("resolver");
    let mut diffs = Vec::new();
    for (query, want) in QUERIES.iter().zip(&theirs) {
        let got = ours(&resolver, query);
        if &got != want {
            diffs.push(format!("{query}\n  postfix: {want}\n  tern:    {got}"));
        }
    }
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));
}
