//! `postsuper` of Tern next to Debian's Postfix 3.7: the same six messages submitted by
//! SMTP to each and held in deferred/ by a dead relayhost (`[127.0.0.1]:1`), then the
//! same operations on both (delete one, hold two, release one, ids on standard input,
//! requeue the deferred queue, delete it): standard error, exit codes, what each queue
//! holds afterwards and postsuper's log lines are compared, queue ids and pids masked.
//! Also the bad input cases (unknown flag, `../x`, unknown queue, a user other than
//! root), and a requeued message that is really delivered once the relay works.
//!
//! Needs root, Debian's Postfix and smtp-sink, and `cargo build -p tern-commands`;
//! fails, never skips, without them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tern_testkit::peers::smtp_sink;
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_for};
use tern_testkit::tern::{Tern, postfix_binary};

/// One operation: its arguments and standard input, made from a side's queue ids.
type Step = fn(&[String]) -> (Vec<String>, String);

const RELAY: &str = "relayhost = [127.0.0.1]:1\n";
const DEBIAN: &str = "/usr/sbin/postsuper";
/// The message queues compared.
const QUEUES: [&str; 5] = ["maildrop", "incoming", "active", "deferred", "hold"];

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

/// Runs `prog args` with `input` on standard input: (exit code, stderr).
fn run(prog: &Path, args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The queue ids in each message queue (hashed subdirectories included), sorted.
fn queues(queue_dir: &Path) -> BTreeMap<&'static str, Vec<String>> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    QUEUES
        .iter()
        .map(|q| {
            let mut ids = Vec::new();
            walk(&queue_dir.join(q), &mut ids);
            ids.sort();
            (*q, ids)
        })
        .collect()
}

fn counts(queue_dir: &Path) -> BTreeMap<&'static str, usize> {
    queues(queue_dir)
        .into_iter()
        .map(|(q, ids)| (q, ids.len()))
        .collect()
}

/// Waits (at most 60 s) until `queue_dir`'s queues hold `want` messages.
fn wait_counts(queue_dir: &Path, want: &[(&'static str, usize)]) -> BTreeMap<&'static str, usize> {
    let want: BTreeMap<&str, usize> = QUEUES
        .iter()
        .map(|q| {
            let n = want.iter().find(|(w, _)| w == q).map_or(0, |(_, n)| *n);
            (*q, n)
        })
        .collect();
    let start = Instant::now();
    loop {
        let got = counts(queue_dir);
        if got == want || start.elapsed() > Duration::from_mins(1) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Queue ids (a word of at least 6 letters and digits followed by `:`) masked.
fn mask(text: &str, ids: &[String]) -> String {
    let mut out = text.to_owned();
    for (n, id) in ids.iter().enumerate() {
        out = out.replace(id.as_str(), &format!("ID{n}"));
    }
    out
}

/// postsuper's lines of a mail log, without time, host and pid.
fn postsuper_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let at = l.find("/postsuper[")?;
            let rest = &l[at..];
            let text = &rest[rest.find("]: ")? + 3..];
            Some(format!("postsuper: {text}"))
        })
        .collect()
}

struct Side {
    prog: PathBuf,
    config: String,
    queue_dir: PathBuf,
}

impl Side {
    fn postsuper(&self, args: &[&str], input: &str) -> (i32, String) {
        let mut all = vec!["-c", self.config.as_str()];
        all.extend_from_slice(args);
        run(&self.prog, &all, input)
    }

    fn deferred(&self) -> Vec<String> {
        queues(&self.queue_dir)
            .remove("deferred")
            .unwrap_or_default()
    }
}

fn start_tern(relay: &str) -> Tern {
    let mut tern = Tern::configure(relay).expect("Tern instance");
    tern.write_master_cf(&format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         pickup unix n - n 60 1 pickup\n\
         qmgr unix n - n 300 1 qmgr\n\
         showq unix n - n - - showq\n\
         smtp unix - - n - - smtp\n\
         relay unix - - n - - smtp\n",
        tern.port
    ))
    .expect("master.cf");
    tern.launch().expect("start Tern");
    tern
}

#[test]
fn operations_match_postfix() {
    let pf = PostfixInstance::start(RELAY).expect("Debian Postfix instance");
    let tern = start_tern(RELAY);
    let data = "Subject: test\r\n\r\nhello\r\n";
    for port in [pf.port(), tern.port] {
        for n in 0..6 {
            smtplib_send(
                port,
                "alice@example.com",
                &[&format!("rcpt{n}@example.net")],
                data,
            );
        }
    }
    let pf_side = Side {
        prog: PathBuf::from(DEBIAN),
        config: pf.dir().display().to_string(),
        queue_dir: pf.dir().join("queue"),
    };
    let tern_side = Side {
        prog: tern_bin("postsuper"),
        config: tern.config_dir().display().to_string(),
        queue_dir: tern.queue_dir(),
    };
    for side in [&pf_side, &tern_side] {
        let got = wait_counts(&side.queue_dir, &[("deferred", 6)]);
        assert_eq!(got["deferred"], 6, "{}: {got:?}", side.config);
    }
    let pf_ids = pf_side.deferred();
    let tern_ids = tern_side.deferred();

    // The operations, with each side's own ids.
    let steps: Vec<(&str, Step)> = vec![
        ("delete one", |ids| {
            (vec!["-d".into(), ids[0].clone()], String::new())
        }),
        ("hold two", |ids| {
            (
                vec!["-h".into(), ids[1].clone(), "-h".into(), ids[2].clone()],
                String::new(),
            )
        }),
        ("release one", |ids| {
            (vec!["-H".into(), ids[1].clone()], String::new())
        }),
        ("delete from stdin", |ids| {
            (
                vec!["-d".into(), "-".into()],
                format!("{}\n../x\n{}\n", ids[3], ids[0]),
            )
        }),
        ("hold again, release both forms", |ids| {
            (
                vec!["-h".into(), ids[4].clone(), "-H".into(), "ALL".into()],
                String::new(),
            )
        }),
    ];
    for (what, step) in &steps {
        let (pa, pin) = step(&pf_ids);
        let (ta, tin) = step(&tern_ids);
        let pa: Vec<&str> = pa.iter().map(String::as_str).collect();
        let ta: Vec<&str> = ta.iter().map(String::as_str).collect();
        let (pc, pe) = pf_side.postsuper(&pa, &pin);
        let (tc, te) = tern_side.postsuper(&ta, &tin);
        assert_eq!(
            (tc, mask(&te, &tern_ids)),
            (pc, mask(&pe, &pf_ids)),
            "{what}"
        );
        let pq = queues(&pf_side.queue_dir);
        let tq = queues(&tern_side.queue_dir);
        let pq: Vec<String> = pq.values().map(|v| mask(&v.join(","), &pf_ids)).collect();
        let tq: Vec<String> = tq.values().map(|v| mask(&v.join(","), &tern_ids)).collect();
        assert_eq!(tq, pq, "queues after {what}");
    }
    // Hold one more for the end, then requeue the deferred queue.
    for (side, ids) in [(&pf_side, &pf_ids), (&tern_side, &tern_ids)] {
        let (c, e) = side.postsuper(&["-h", &ids[5]], "");
        assert_eq!(
            (c, mask(&e, ids)),
            (
                0,
                "postsuper: ID5: placed on hold\npostsuper: Placed on hold: 1 message\n".into()
            )
        );
    }
    let (pc, pe) = pf_side.postsuper(&["-r", "ALL", "deferred"], "");
    let (tc, te) = tern_side.postsuper(&["-r", "ALL", "deferred"], "");
    assert_eq!((tc, te.as_str()), (pc, pe.as_str()), "requeue");
    assert_eq!(te, "postsuper: Requeued: 3 messages\n");
    // Postfix's pickup waits for its next wakeup: postqueue -f wakes it.
    let flushed = Command::new("/usr/sbin/postqueue")
        .args(["-c", &pf_side.config, "-f"])
        .status()
        .expect("postqueue -f");
    assert!(flushed.success());
    for side in [&pf_side, &tern_side] {
        let got = wait_counts(&side.queue_dir, &[("deferred", 3), ("hold", 1)]);
        assert_eq!(
            got,
            BTreeMap::from([
                ("active", 0),
                ("deferred", 3),
                ("hold", 1),
                ("incoming", 0),
                ("maildrop", 0)
            ]),
            "{}",
            side.config
        );
    }
    // New queue ids: the requeued messages went through pickup and cleanup.
    assert!(tern_side.deferred().iter().all(|id| !tern_ids.contains(id)));
    let (pc, pe) = pf_side.postsuper(&["-d", "ALL", "deferred"], "");
    let (tc, te) = tern_side.postsuper(&["-d", "ALL", "deferred"], "");
    assert_eq!((tc, te.as_str()), (pc, pe.as_str()), "delete ALL deferred");
    assert_eq!(te, "postsuper: Deleted: 3 messages\n");
    assert_eq!(counts(&tern_side.queue_dir), counts(&pf_side.queue_dir));

    // The log lines, ids masked.
    let pf_log = wait_for(|| pf.maillog(), "Deleted: 3 messages", 1);
    let tern_log = wait_for(|| tern.log(), "Deleted: 3 messages", 1);
    let pl: Vec<String> = postsuper_lines(&pf_log)
        .iter()
        .map(|l| mask(l, &pf_ids))
        .collect();
    let tl: Vec<String> = postsuper_lines(&tern_log)
        .iter()
        .map(|l| mask(l, &tern_ids))
        .collect();
    assert_eq!(tl, pl, "tern log:\n{tern_log}");
    assert!(tl.contains(&"postsuper: ID0: removed".to_owned()), "{tl:?}");
    // Tern's pickup took the requeued files (its log line names mail_owner's uid).
    let owner = nix::unistd::User::from_name("postfix")
        .unwrap()
        .unwrap()
        .uid;
    assert!(
        tern_log.contains(&format!(": uid={owner} from=<alice@example.com>")),
        "{tern_log}"
    );
}

#[test]
fn bad_input_matches_postfix() {
    let pf = PostfixInstance::start(RELAY).expect("Debian Postfix instance");
    let tern = start_tern(RELAY);
    std::fs::write(tern.queue_dir().join("x"), "bystander").expect("bystander");
    let pf_dir = pf.dir().display().to_string();
    let tern_dir = tern.config_dir().display().to_string();
    let ours = tern_bin("postsuper");
    let cases: [&[&str]; 9] = [
        &["-x"],
        &["-d", "../x"],
        &["-d", "../x", "-h", "a/b", "-H", "", "-r", "x.y"],
        &["-d", "ABCDEF", "nosuch"],
        &["-d", "ALL", "corrupt"],
        &["-H", "ABCDEF", "nosuch"],
        &["-h", "ABCDEF", "deferred", "hold"],
        &["-c", "relative", "-d", "X"],
        &["-d"],
    ];
    for args in cases {
        let with = |dir: &str| -> Vec<String> {
            let mut v = vec!["-c".to_owned(), dir.to_owned()];
            v.extend(args.iter().map(|s| (*s).to_owned()));
            v
        };
        let (pa, ta) = (with(&pf_dir), with(&tern_dir));
        let pa: Vec<&str> = pa.iter().map(String::as_str).collect();
        let ta: Vec<&str> = ta.iter().map(String::as_str).collect();
        let want = run(Path::new(DEBIAN), &pa, "");
        let got = run(&ours, &ta, "");
        assert_eq!(got, want, "postsuper {args:?}");
    }
    // Nothing outside the queue was touched by `../x` (hold/../x is the queue
    // directory's own `x`).
    assert!(
        tern.queue_dir().join("x").exists(),
        "a bystander was removed"
    );
    // A user other than root, before any flag is looked at.
    for args in [&["-d", "ALL"][..], &["-x"][..]] {
        let as_nobody = |prog: &Path| {
            let mut all = vec!["--reuid=65534", "--regid=65534", "--clear-groups"];
            let p = prog.display().to_string();
            let mut full: Vec<String> = all.drain(..).map(String::from).collect();
            full.push(p);
            full.extend(args.iter().map(|s| (*s).to_owned()));
            let full: Vec<&str> = full.iter().map(String::as_str).collect();
            run(Path::new("/usr/bin/setpriv"), &full, "")
        };
        let want = as_nobody(Path::new(DEBIAN));
        let got = as_nobody(&ours);
        assert_eq!(
            want,
            (
                1,
                "postsuper: fatal: use of this command is reserved for the superuser\n".into()
            )
        );
        assert_eq!(got, want, "as nobody: {args:?}");
    }
}

#[test]
fn requeued_message_is_delivered_when_the_relay_works() {
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let mut tern = start_tern(RELAY);
    smtplib_send(
        tern.port,
        "alice@example.com",
        &["bob@example.net"],
        "Subject: requeue me\r\n\r\nhello\r\n",
    );
    let got = wait_counts(&tern.queue_dir(), &[("deferred", 1)]);
    assert_eq!(got["deferred"], 1, "{}", tern.log());
    // The relay works now: a new relayhost, and a restart so the daemon reads it
    // (the deferred message's next try is minutes away).
    assert!(tern.stop(Duration::from_secs(10)), "stop");
    let main = tern.config_dir().join("main.cf");
    let text = std::fs::read_to_string(&main).expect("main.cf");
    let text = text.replace(
        "relayhost = [127.0.0.1]:1",
        &format!("relayhost = [127.0.0.1]:{}", sink.port),
    );
    std::fs::write(&main, text).expect("main.cf");
    tern.launch().expect("restart Tern");
    let (code, err) = run(
        &tern_bin("postsuper"),
        &["-c", &tern.config_dir().display().to_string(), "-r", "ALL"],
        "",
    );
    assert_eq!(
        (code, err.as_str()),
        (0, "postsuper: Requeued: 1 message\n")
    );
    let log = wait_for(|| tern.log(), "status=sent", 1);
    assert!(log.contains("status=sent"), "{log}");
    assert!(
        log.contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", sink.port)),
        "{log}"
    );
    let dump = std::fs::read_to_string(&sink.record).unwrap_or_default();
    assert!(dump.contains("Subject: requeue me"), "{dump}");
    assert_eq!(
        counts(&tern.queue_dir()).values().sum::<usize>(),
        0,
        "{}",
        tern.log()
    );
    tern.stop(Duration::from_secs(10));
}
