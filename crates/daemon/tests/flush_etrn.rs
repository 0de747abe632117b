//! The fast flush service through the daemon: mail deferred for a domain in
//! fast_flush_domains is logged under `flush/`, and `postqueue -s site`, SMTP `ETRN
//! site` (Python's smtplib) and `postqueue -i queue_id` each have it tried again at once;
//! a domain outside the list gets Postfix's `459 <domain>: service unavailable`.
//!
//! Needs root, python3 and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::process::Command;

use deliver_util::{configure, master_cf, tern_program as program, wait_for};
use tern_testkit::support::{python, smtplib_send};

/// Waits (at most 10 s) until the message `id` is in deferred/ again: its deferral is
/// logged before the file moves there from active/, and a flush takes only deferred
/// files.
fn wait_deferred(t: &tern_testkit::tern::Tern, id: &str) {
    let dir = t.queue_dir().join("deferred");
    let present = || {
        std::fs::read_dir(&dir).is_ok_and(|d| {
            d.flatten()
                .any(|h| h.path().join(id).is_file() || h.path().ends_with(id))
        })
    };
    for _ in 0..200 {
        if present() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{id} not in deferred/:\n{}", t.log());
}

fn deferrals(log: &str) -> usize {
    log.matches("to=<a@dead.example>").count()
}

#[test]
fn site_flush_etrn_and_queue_id_flush() {
    let mut t = configure(
        "relay_domains = dead.example\nfast_flush_domains = $relay_domains\n\
         transport_maps = inline:{ dead.example=smtp:[127.0.0.1]:1 }\n\
         minimal_backoff_time = 1h\nmaximal_backoff_time = 2h\nqueue_run_delay = 1h\n",
    );
    t.write_master_cf(&format!(
        "{}smtp unix - - n - - smtp\nflush unix n - n 1000? 0 flush\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().unwrap();
    let id = smtplib_send(
        t.port,
        "s@example.org",
        &["a@dead.example"],
        "Subject: for a dead site\r\n\r\nx\r\n",
    );
    wait_for(|| t.log(), "status=deferred", 1);
    // The site's log names the message.
    let flush_log = t.queue_dir().join("flush/dead_example");
    let listed = || std::fs::read_to_string(&flush_log).unwrap_or_default();
    // The service writes the log on a blocking thread just after the status record.
    for _ in 0..100 {
        if listed().contains(&id) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(listed().contains(&id), "{}", listed());
    let conf = t.config_dir().display().to_string();
    let postqueue = program("postqueue");
    let run = |args: &[&str]| {
        let out = Command::new(&postqueue)
            .args(["-c", &conf])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    wait_deferred(&t, &id);
    run(&["-s", "dead.example"]);
    wait_for(|| t.log(), "status=deferred", 2);
    let etrn = |site: &str| {
        python(&format!(
            r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
code, text = s.docmd("ETRN", "{site}")
print(code, text.decode())
s.quit()
"#,
            port = t.port
        ))
    };
    wait_deferred(&t, &id);
    assert_eq!(etrn("dead.example").trim(), "250 Queuing started");
    wait_for(|| t.log(), "status=deferred", 3);
    wait_deferred(&t, &id);
    run(&["-i", &id]);
    wait_for(|| t.log(), "status=deferred", 4);
    assert_eq!(
        etrn("other.example").trim(),
        "459 <other.example>: service unavailable"
    );
    let log = wait_for(|| t.log(), "reject: ETRN other.example... from", 1);
    assert!(deferrals(&log) >= 4, "{log}");
}
