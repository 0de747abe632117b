//! `qshape` side by side: Debian's qshape (Perl, reading Postfix's queue files) on a
//! private Debian Postfix and Tern's qshape on Tern's queue, after the same messages were
//! held by the same access table (check_sender_access ... HOLD). For each set of options
//! the heading line is equal and the domain lines are the same lines (qshape orders lines
//! of equal totals and lengths in Perl's hash order, so they are compared as sets).
//!
//! Needs root, Debian's postfix (its /usr/sbin/qshape), python3, and `cargo build -p
//! tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

use std::path::Path;
use std::process::Command;

use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::smtplib_send;
use tern_testkit::tern::{Tern, postfix_binary};

/// (sender, recipients) of each message.
const MESSAGES: &[(&str, &[&str])] = &[
    (
        "hold@example.org",
        &["a@one.example", "b@one.example", "c@mail.two.example"],
    ),
    (
        "hold@example.org",
        &[
            "d@x.mail.two.example",
            "e@y.mail.two.example",
            "f@z.mail.two.example",
        ],
    ),
    ("", &["g@one.example"]),
    ("Hold@Example.ORG", &["h@UPPER.Example"]),
];

const OPTION_SETS: &[&[&str]] = &[
    &[],
    &["-s"],
    &["-p", "-m", "1"],
    &["-b", "3", "-t", "1"],
    &["-l", "-b", "4"],
    &["-w", "120"],
];

fn main_cf(table: &Path) -> String {
    format!(
        "smtpd_sender_restrictions = check_sender_access texthash:{}\n",
        table.display()
    )
}

fn send_all(port: u16) {
    for (from, to) in MESSAGES {
        smtplib_send(
            port,
            from,
            to,
            "Subject: held\r\nFrom: someone@example.org\r\n\r\nheld\r\n",
        );
    }
}

fn qshape(program: &Path, args: &[&str], queue: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .arg(queue)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The heading line, then the other lines sorted.
fn shape(text: &str) -> (String, Vec<String>) {
    let mut lines = text.lines().map(str::to_owned);
    let head = lines.next().unwrap_or_default();
    let mut rest: Vec<String> = lines.collect();
    rest.sort();
    (head, rest)
}

#[test]
fn qshape_equals_debians() {
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let table = dir.path().join("senders");
    std::fs::write(&table, "hold@example.org HOLD\n<> HOLD\n").unwrap();

    let pf = PostfixInstance::start(&main_cf(&table)).expect("Debian's Postfix");
    send_all(pf.port());
    let pf_hold = pf.dir().join("queue").join("hold");

    let mut t = Tern::configure(&main_cf(&table)).expect("tern");
    t.launch()
        .unwrap_or_else(|e| panic!("launch: {e}\n{}", t.log()));
    send_all(t.port);
    let tern_hold = t.queue_dir().join("hold");

    let ours = postfix_binary().unwrap().with_file_name("qshape");
    for args in OPTION_SETS {
        let want = qshape(Path::new("/usr/sbin/qshape"), args, &pf_hold);
        let got = qshape(&ours, args, &tern_hold);
        assert_eq!(
            shape(&want),
            shape(&got),
            "qshape {args:?}\nDebian's:\n{want}\nTern's:\n{got}"
        );
    }
    // The same counts through -c and a queue name under queue_directory.
    let conf = t.config_dir().display().to_string();
    let by_name = qshape(&ours, &["-c", &conf], Path::new("hold"));
    assert_eq!(shape(&by_name), shape(&qshape(&ours, &[], &tern_hold)));
    assert!(by_name.contains("TOTAL  8  8 "), "{by_name}");
}
