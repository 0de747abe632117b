//! smtpd_reject_footer side by side with Debian's Postfix 3.7.11: the same footer (two
//! lines, `$client_address` and `$server_name` expanded) on every 4xx/5xx reply of the
//! same dialog from a client outside mynetworks, and none on the 2xx replies.
//!
//! Needs root, Debian's postfix, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tern_testkit::postfix::{OUTSIDE_CLIENT, PostfixInstance, connect_from};
use tern_testkit::smtp::read_reply;
use tern_testkit::tern::Tern;

const MAIN: &str = "mynetworks = 127.0.0.1/32\n\
    smtpd_reject_footer = For help quote $client_address to postmaster@$server_name.\\n\
    Thank you.\n";

/// Each command's whole reply (lines joined with `|`).
fn dialog(port: u16) -> Vec<String> {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = connect_from(OUTSIDE_CLIENT, server).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let join = |reply: String| reply.trim_end().replace("\r\n", "|");
    let mut out = vec![join(read_reply(&mut r).expect("greeting"))];
    for c in [
        "EHLO client.example",
        "MAIL FROM:<a@example.org>",
        "RCPT TO:<u@remote.example>",
        "BOGUS",
        "QUIT",
    ] {
        w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        out.push(join(read_reply(&mut r).expect("reply")));
    }
    out
}

#[test]
fn reject_footer_equals_postfix() {
    let pf = PostfixInstance::start(MAIN).expect("Debian's Postfix");
    let want = dialog(pf.port());
    let mut t = Tern::configure(MAIN).expect("tern");
    t.launch()
        .unwrap_or_else(|e| panic!("launch: {e}\n{}", t.log()));
    let got = dialog(t.port);
    assert_eq!(want[2..], got[2..], "Postfix, Tern");
    assert_eq!(
        got[3],
        "454-4.7.1 <u@remote.example>: Relay access denied|\
         454-4.7.1 For help quote 127.0.0.2 to postmaster@mx.example.test.|\
         454 4.7.1 Thank you."
    );
    assert!(!got[2].contains("For help"), "{got:?}");
}
