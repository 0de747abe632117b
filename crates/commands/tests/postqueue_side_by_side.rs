//! `postqueue -p`, `postqueue -j` and `mailq` of Tern next to Debian's Postfix 3.7: the
//! same three messages (two recipients; the null sender; a long address) submitted by
//! SMTP to each, held deferred by a dead relayhost (`[127.0.0.1]:1`), then listed. Queue
//! ids, times and sizes are masked, and messages are compared in sorted order (showq lists
//! a queue in directory order). Also the command line errors next to Debian's.
//!
//! Needs root, Debian's Postfix and `cargo build -p tern-commands` (the `postfix`,
//! `postqueue` and `mailq` binaries); fails, never skips, without them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_for};
use tern_testkit::tern::{Tern, postfix_binary};

const RELAY: &str = "relayhost = [127.0.0.1]:1\n";
const LONG: &str =
    "a-rather-long-local-part-that-goes-on-and-on.and-on-again@long-subdomain.example.net";

fn tern_bin(name: &str) -> PathBuf {
    let p = postfix_binary()
        .expect("postfix binary")
        .with_file_name(name);
    assert!(
        p.is_file(),
        "{} missing: cargo build -p tern-commands",
        p.display()
    );
    p
}

fn run(prog: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(prog).args(args).output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn submit(port: u16) {
    let data = "Subject: test\r\n\r\nhello\r\n";
    smtplib_send(
        port,
        "alice@example.com",
        &["bob@example.net", "carol@example.net"],
        data,
    );
    smtplib_send(port, "", &["dave@example.net"], data);
    smtplib_send(port, "alice@example.com", &[LONG], data);
}

/// The `-p` listing with ids, sizes and times masked, its messages sorted, and the
/// reasons without Postfix's dead-destination prefix (Tern has no such throttling yet).
fn mask_compat(text: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default().to_owned();
    let mut cur = String::new();
    let mut summary = String::new();
    for line in lines {
        if line.starts_with("-- ") {
            summary = line
                .split_once(" Kbytes")
                .map_or(line.to_owned(), |(_, r)| format!("-- N Kbytes{r}"));
        } else if line.is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with(' ') {
            let t = line.trim_start();
            let t = t.replace("(delivery temporarily suspended: ", "(");
            // A reason line keeps only its text; a recipient its column.
            if t.starts_with('(') {
                let _ = writeln!(cur, "REASON {t}");
            } else {
                let _ = writeln!(cur, "{}{t}", " ".repeat(line.len() - t.len()));
            }
        } else {
            let id = line.split(' ').next().unwrap_or_default();
            let marks: String = id.chars().filter(|c| "*!#".contains(*c)).collect();
            // id, size, 20 columns of time, sender
            let sender = line.get(41..).unwrap_or_default();
            let _ = writeln!(cur, "ID{marks} SIZE TIME {sender}");
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks.sort();
    format!("{head}\n{}\n{summary}\n", blocks.join("\n"))
}

/// `-j` lines with queue_id, arrival_time and message_size masked, sorted.
fn mask_json(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut l = l.replace("delivery temporarily suspended: ", "");
            for (key, quoted) in [
                ("\"queue_id\": ", true),
                ("\"arrival_time\": ", false),
                ("\"message_size\": ", false),
            ] {
                if let Some(start) = l.find(key) {
                    let from = start + key.len();
                    let end = if quoted {
                        from + 1 + l[from + 1..].find('"').expect("closing quote") + 1
                    } else {
                        from + l[from..].find(',').expect("comma")
                    };
                    l.replace_range(from..end, "X");
                }
            }
            l
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn listings_match_postfix() {
    let pf = PostfixInstance::start(RELAY).expect("Debian Postfix instance");
    let mut tern = Tern::configure(RELAY).expect("Tern instance");
    tern.write_master_cf(&format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         qmgr unix n - n 300 1 qmgr\n\
         showq unix n - n - - showq\n\
         smtp unix - - n - - smtp\n\
         relay unix - - n - - smtp\n",
        tern.port
    ))
    .expect("master.cf");
    tern.launch().expect("start Tern");
    submit(pf.port());
    submit(tern.port);
    let pf_log = wait_for(|| pf.maillog(), "status=deferred", 4);
    let tern_log = wait_for(|| tern.log(), "status=deferred", 4);
    assert!(pf_log.matches("status=deferred").count() >= 4, "{pf_log}");
    assert!(
        tern_log.matches("status=deferred").count() >= 4,
        "{tern_log}"
    );

    let pf_dir = pf.dir().display().to_string();
    let tern_dir = tern.config_dir().display().to_string();
    let postqueue = tern_bin("postqueue");
    let mailq = tern_bin("mailq");

    let (pc, pp, pe) = run(Path::new("/usr/sbin/postqueue"), &["-c", &pf_dir, "-p"]);
    let (tc, tp, te) = run(&postqueue, &["-c", &tern_dir, "-p"]);
    assert_eq!((pc, tc), (0, 0), "postfix: {pe}\ntern: {te}");
    assert_eq!(te, "", "no warning: the service answers");
    assert_eq!(
        mask_compat(&tp),
        mask_compat(&pp),
        "tern:\n{tp}\npostfix:\n{pp}"
    );
    assert!(tp.contains(&format!(" {LONG}\n")), "{tp}");
    assert!(
        tp.contains("(connect to 127.0.0.1[127.0.0.1]:1: Connection refused)"),
        "{tp}"
    );
    assert!(
        tp.contains("  MAILER-DAEMON\n") && tp.ends_with(" in 3 Requests.\n"),
        "{tp}"
    );

    let (_, mp, _) = run(Path::new("/usr/sbin/sendmail"), &["-bp", "-C", &pf_dir]);
    let (mc, mt, me) = run(&mailq, &["-C", &tern_dir]);
    assert_eq!(mc, 0, "{me}");
    assert_eq!(mask_compat(&mt), mask_compat(&mp));
    assert_eq!(mt, tp, "mailq is postqueue -p");

    let (_, pj, _) = run(Path::new("/usr/sbin/postqueue"), &["-c", &pf_dir, "-j"]);
    let (jc, tj, je) = run(&postqueue, &["-c", &tern_dir, "-j"]);
    assert_eq!(jc, 0, "{je}");
    assert_eq!(
        mask_json(&tj),
        mask_json(&pj),
        "tern:\n{tj}\npostfix:\n{pj}"
    );

    // Debian's postqueue reads Tern's service: the protocol is Postfix's.
    let (dc, dp, de) = run(Path::new("/usr/sbin/postqueue"), &["-c", &tern_dir, "-p"]);
    assert_eq!(dc, 0, "{de}");
    assert_eq!(mask_compat(&dp), mask_compat(&tp));

    // The daemon down: root reads the queue itself, with Postfix's warning.
    tern.stop(std::time::Duration::from_secs(10));
    let (dc, dp, de) = run(&postqueue, &["-c", &tern_dir, "-p"]);
    assert_eq!(dc, 0, "{de}");
    assert!(
        de.starts_with(
            "postqueue: warning: Mail system is down -- accessing queue directly \
             (Connect to the Postfix showq service: "
        ),
        "{de}"
    );
    assert_eq!(mask_compat(&dp), mask_compat(&tp));
}

#[test]
fn command_line_errors_match_postfix() {
    let postqueue = tern_bin("postqueue");
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing").display().to_string();
    let cases: [&[&str]; 9] = [
        &[],
        &["-x"],
        &["-p", "-j"],
        &["-p", "extra"],
        &["-c"],
        &["-c", &missing, "-p"],
        &["-c", &missing],
        &["-i", "bad.id"],
        &["-s", "bad..site"],
    ];
    for args in cases {
        let want = run(Path::new("/usr/sbin/postqueue"), args);
        let got = run(&postqueue, args);
        assert_eq!(got, want, "postqueue {args:?}");
    }
}
