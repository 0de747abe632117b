//! `check_sasl_access type:table` (smtpd_check.c check_sasl_access()) side by side with
//! Debian's Postfix 3.7.11, both using Debian's Dovecot for SASL: the SASL login name is
//! looked up as given once the client authenticated; the table's answer acts as any
//! access(5) result (here a 5NN text, a 4NN, OK and DUNNO), and an unauthenticated
//! client is not looked up. Each server's replies to the same sessions, and its reject
//! log lines, are equal.
//!
//! Needs root, Debian's postfix, dovecot-core and python3, and `cargo build -p
//! tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

use std::path::Path;

use tern_testkit::dovecot::Dovecot;
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::python;
use tern_testkit::tern::Tern;

const USERS: &[(&str, &str)] = &[
    ("alice", "a-pw"),
    ("bob", "b-pw"),
    ("carol", "c-pw"),
    ("dave", "d-pw"),
];

/// The access table: alice refused with a text, bob deferred, carol allowed (the
/// sender list ends with a reject that she skips), dave not listed.
const TABLE: &str = "alice 550 5.7.1 alice may not send\n\
                     bob 450 4.7.1 bob must wait\n\
                     carol OK\n";

/// main.cf lines for both servers.
fn main_cf(dovecot: &Dovecot, table: &Path, senders: &Path) -> String {
    format!(
        "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n\
         smtpd_sender_restrictions = check_sasl_access texthash:{}, \
         check_sender_access texthash:{}\n",
        dovecot.auth_socket_path().display(),
        table.display(),
        senders.display()
    )
}

/// One session per user (and one without AUTH): the replies to AUTH, MAIL and RCPT.
fn sessions(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    let mut users: Vec<Option<(&str, &str)>> = USERS.iter().copied().map(Some).collect();
    users.push(None);
    for user in users {
        let auth = match user {
            Some((u, p)) => format!(
                "code, text = s.docmd('AUTH', 'PLAIN ' + base64.b64encode(b'\\0{u}\\0{p}').decode())\n\
                 out.append('%d %s' % (code, text.decode()))\n"
            ),
            None => String::new(),
        };
        let script = format!(
            r#"
import smtplib, base64
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
out = []
{auth}
for cmd, arg in (("MAIL", "FROM:<nobody@example.org> AUTH=<nobody@example.org>"), ("RCPT", "TO:<root@mx.example.test>")):
    code, text = s.docmd(cmd, arg)
    out.append("%d %s" % (code, text.decode()))
s.quit()
print(" | ".join(out))
"#
        );
        out.push(format!(
            "{}: {}",
            user.map_or("-", |u| u.0),
            python(&script).trim()
        ));
    }
    out
}

/// The `reject:` lines of a log, from `reject:` on.
fn rejects(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find("reject: ").map(|i| l[i..].to_owned()))
        .collect()
}

#[test]
fn check_sasl_access_side_by_side() {
    let dovecot = Dovecot::start_auth(USERS).expect("Debian's Dovecot");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sasl_access");
    std::fs::write(&table, TABLE).unwrap();
    let senders = dir.path().join("senders");
    std::fs::write(&senders, "nobody@example.org REJECT no such sender\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let main = main_cf(&dovecot, &table, &senders);

    let pf = PostfixInstance::start(&main).expect("Debian's Postfix");
    let postfix = sessions(pf.port());

    let mut t = Tern::configure(&main).expect("tern");
    t.launch()
        .unwrap_or_else(|e| panic!("launch: {e}\n{}", t.log()));
    let tern = sessions(t.port);

    assert_eq!(
        postfix,
        tern,
        "Postfix log:\n{}\nTern log:\n{}",
        pf.maillog(),
        t.log()
    );
    // What the sessions show: the table acts for alice, bob and carol; dave and the
    // unauthenticated client fall through to the sender check.
    let rcpt = |who: &str| -> String {
        tern.iter()
            .find(|l| l.starts_with(&format!("{who}: ")))
            .and_then(|l| l.rsplit(" | ").next())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        rcpt("alice"),
        "550 5.7.1 <alice>: SASL login name rejected: alice may not send"
    );
    assert_eq!(
        rcpt("bob"),
        "450 4.7.1 <bob>: SASL login name rejected: bob must wait"
    );
    assert!(rcpt("carol").starts_with("250 "), "{tern:?}");
    for who in ["dave", "-"] {
        assert!(
            rcpt(who).contains("<nobody@example.org>: Sender address rejected: no such sender"),
            "{tern:?}"
        );
    }
    // Tern's log lines come as the sessions end: wait for the last one.
    let want = rejects(&pf.maillog());
    assert_eq!(want.len(), 4, "{}", pf.maillog());
    let start = std::time::Instant::now();
    while rejects(&t.log()).len() < want.len() && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(want, rejects(&t.log()));
    // The accepted transaction's `client=` line, with MAIL FROM's AUTH= as sasl_sender=.
    let client = |log: &str| -> Vec<String> {
        log.lines()
            .filter_map(|l| l.find(": client=").map(|i| l[i..].to_owned()))
            .collect()
    };
    let want = client(&pf.maillog());
    assert_eq!(
        want,
        [
            ": client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=carol, \
          sasl_sender=<nobody@example.org>"
        ],
        "{}",
        pf.maillog()
    );
    assert_eq!(want, client(&t.log()));
}
