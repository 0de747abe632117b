//! `postcat` of Tern next to Debian's Postfix 3.7: the same three messages (two
//! recipients with a folded header and a body with an empty line; the null sender; DSN
//! RET, ENVID, BODY=8BITMIME, NOTIFY and ORCPT) submitted by SMTP with Python's smtplib
//! to each, held in deferred/ by a dead relayhost (`[127.0.0.1]:1`), then shown with
//! `postcat -q ID` and `-h`, `-b`, `-e`, `-bh`. Queue ids, the hash directory, digits
//! (times, ports, sizes) are masked; `message_size` is compared by its shape. What
//! remains different is [`POSTFIX_ONLY`] (docs/compat.md, postcat row). Also bad input:
//! Tern's messages and exit codes equal to Debian's.
//!
//! Needs root, Debian's Postfix and `cargo build -p tern-commands` (the `postfix` and
//! `postcat` binaries); fails, never skips, without them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::wait_for;
use tern_testkit::tern::{Tern, postfix_binary};

const RELAY: &str = "relayhost = [127.0.0.1]:1\n";

/// Attributes Postfix's smtpd and cleanup write that Tern's queue file does not keep.
const POSTFIX_ONLY: [&str; 4] = [
    "named_attribute: rewrite_context=",
    "named_attribute: reverse_client_name=",
    "named_attribute: server_address=",
    "named_attribute: server_port=",
];

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

/// Runs `prog` as argv\[0\] `postcat` (Postfix's messages start with argv\[0\]).
fn run(prog: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(prog)
        .arg0("postcat")
        .args(args)
        .current_dir("/")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends the three messages; returns their queue ids in order.
fn submit(port: u16) -> Vec<String> {
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
def send(frm, to, data, mo=(), ro=()):
    code, text = s.mail(frm, list(mo))
    assert code == 250, text
    for r in to:
        code, text = s.rcpt(r, list(ro))
        assert code == 250, (r, code, text)
    code, text = s.data(data.encode())
    assert code == 250, text
    print(text.decode().rsplit(" ", 1)[1])
send("alice@example.com", ["bob@example.net", "carol@example.net"],
     "Subject: two\r\nX-Long: a\r\n b\r\n\r\nhello\r\n\r\nworld\r\n")
send("", ["dave@example.net"], "Subject: null\r\n\r\nbody\r\n")
send("alice@example.com", ["bob@example.net"], "Subject: dsn\r\n\r\nbody\r\n",
     ["RET=HDRS", "ENVID=abc+2Bx", "BODY=8BITMIME"],
     ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Bx@example.net"])
s.quit()
"#
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("/usr/bin/python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The output with `id`, the hash directory and digits masked, Postfix's extra
/// attributes dropped and `message_size` reduced to its shape.
fn mask(text: &str, id: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if POSTFIX_ONLY.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        if let Some(v) = line.strip_prefix("message_size: ") {
            let fields: Vec<&str> = v.split(' ').filter(|f| !f.is_empty()).collect();
            assert_eq!(fields.len(), 6, "{line}");
            assert_eq!(v.len(), 6 * 15 + 5, "six fields of 15: {line:?}");
            out.push_str("message_size: SHAPE\n");
            continue;
        }
        let mut l = line.replace(id, "ID");
        if let Some(at) = l.find("deferred/") {
            l.replace_range(at + 9..at + 10, "H");
        }
        let mut masked = String::new();
        let mut in_digits = false;
        for c in l.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    masked.push('N');
                }
                in_digits = true;
            } else {
                masked.push(c);
                in_digits = false;
            }
        }
        out.push_str(&masked);
        out.push('\n');
    }
    out
}

#[test]
fn queue_files_match_postfix() {
    let pf = PostfixInstance::start(RELAY).expect("Debian Postfix instance");
    let mut tern = Tern::configure(RELAY).expect("Tern instance");
    tern.write_master_cf(&format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         qmgr unix n - n 300 1 qmgr\n\
         smtp unix - - n - - smtp\n\
         relay unix - - n - - smtp\n",
        tern.port
    ))
    .expect("master.cf");
    tern.launch().expect("start Tern");
    let pf_ids = submit(pf.port());
    let tern_ids = submit(tern.port);
    assert_eq!((pf_ids.len(), tern_ids.len()), (3, 3));
    let pf_log = wait_for(|| pf.maillog(), "status=deferred", 4);
    let tern_log = wait_for(|| tern.log(), "status=deferred", 4);
    assert!(pf_log.matches("status=deferred").count() >= 4, "{pf_log}");
    assert!(
        tern_log.matches("status=deferred").count() >= 4,
        "{tern_log}"
    );

    let pf_dir = pf.dir().display().to_string();
    let tern_dir = tern.config_dir().display().to_string();
    let postcat = tern_bin("postcat");
    let debian = Path::new("/usr/sbin/postcat");
    for (pid, tid) in pf_ids.iter().zip(&tern_ids) {
        for flags in ["-q", "-hq", "-bq", "-eq", "-bhq"] {
            let (pc, pout, perr) = run(debian, &["-c", &pf_dir, flags, pid]);
            let (tc, tout, terr) = run(&postcat, &["-c", &tern_dir, flags, tid]);
            assert_eq!((tc, terr.as_str()), (pc, perr.as_str()), "postcat {flags}");
            assert_eq!(
                mask(&tout, tid),
                mask(&pout, pid),
                "postcat {flags}\ntern:\n{tout}\npostfix:\n{pout}"
            );
            if flags == "-q" {
                assert!(tout.starts_with("*** ENVELOPE RECORDS deferred/"), "{tout}");
                assert!(tout.contains(&format!("named_attribute: log_ident={tid}\n")));
            }
        }
        // -o and -d: the same lines, each with an offset and a record type.
        let (_, pout, _) = run(debian, &["-c", &pf_dir, "-od", "-q", pid]);
        let (tc, tout, _) = run(&postcat, &["-c", &tern_dir, "-od", "-q", tid]);
        assert_eq!(tc, 0);
        let strip = |t: &str| -> String {
            t.lines()
                .map(|l| l.get(14..).map_or(l.to_owned(), |rest| format!("{rest}\n")))
                .collect()
        };
        let types = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| {
                    !POSTFIX_ONLY
                        .iter()
                        .any(|p| l.get(14..).unwrap_or("").starts_with(p))
                })
                .map(|l| l.get(10..13).unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(mask(&strip(&tout), tid), mask(&strip(&pout), pid));
        assert_eq!(types(&tout), types(&pout), "record types");
    }

    // Tern's files are not Postfix's, and the other way round: each says so.
    let tern_file = tern
        .queue_dir()
        .join("deferred")
        .read_dir()
        .expect("deferred/")
        .flatten()
        .flat_map(|d| d.path().read_dir().into_iter().flatten().flatten())
        .next()
        .expect("a Tern queue file")
        .path();
    let tern_file = tern_file.display().to_string();
    let (c, out, err) = run(debian, &["-c", &pf_dir, &tern_file]);
    assert_eq!((c, out.as_str()), (0, ""), "{err}");
    assert_eq!(
        err,
        format!("postcat: warning: {tern_file}: input is not a valid queue file\n")
    );

    // Bad input, with each instance's configuration.
    let missing = pf.dir().join("missing").display().to_string();
    // A first byte that is no Postfix record type (Postfix tries to read a file that
    // starts with one, such as main.cf's `c`; Tern refuses all but its own formats).
    let not_queue = pf.dir().join("not-a-queue-file");
    std::fs::write(&not_queue, "hello world\n").expect("write");
    let not_queue = not_queue.display().to_string();
    let cases: [&[&str]; 10] = [
        &["-x"],
        &["-n", "-q", "ABC"],
        &["-q", "NOSUCH1"],
        &["-q", "../../../etc/passwd"],
        &["-q", "a/b"],
        &["-q", ""],
        &["-s", "abc"],
        &[&not_queue],
        &[&missing],
        &["-q", "NOSUCH1", "../x"],
    ];
    for args in cases {
        let mut pargs = vec!["-c", &pf_dir];
        pargs.extend_from_slice(args);
        let mut targs = vec!["-c", &tern_dir];
        targs.extend_from_slice(args);
        let want = run(debian, &pargs);
        let got = run(&postcat, &targs);
        assert_eq!(got, want, "postcat {args:?}");
    }
    let (c, _, err) = run(&postcat, &["-c", &missing, "-q", "ABC"]);
    let (pc, _, perr) = run(debian, &["-c", &missing, "-q", "ABC"]);
    assert_eq!((c, err), (pc, perr), "missing configuration directory");
}
