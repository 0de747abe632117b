//! The writers: `maillog_file` (prefix check, append, rotation, no interleaving across
//! threads, no symlinks) and syslog over a datagram socket.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tern_maillog::{Ident, LogConfig, Logger, MaillogError, master, queue, smtpd};

fn config<'a>(file: &'a str, prefixes: &'a str) -> LogConfig<'a> {
    LogConfig {
        maillog_file: file,
        maillog_file_prefixes: prefixes,
        syslog_facility: "mail",
        myhostname: "mx.example.test",
        config_directory: "/etc/postfix",
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("log file")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn refuses_a_path_outside_the_prefixes() {
    let err = Logger::open(&config("/tmp/elsewhere/maillog", "/var, /dev/stdout")).unwrap_err();
    assert!(matches!(err, MaillogError::PrefixMismatch { .. }));
    // Postfix: "postfix: fatal: maillog_file value '...' does not match any prefix in
    // maillog_file_prefixes" (seen on Debian's 3.7.11).
    assert_eq!(
        err.to_string(),
        "maillog_file value '/tmp/elsewhere/maillog' does not match any prefix in maillog_file_prefixes"
    );
}

#[test]
fn refuses_an_unknown_facility() {
    let mut cfg = config("", "/var");
    cfg.syslog_facility = "mial";
    let err = Logger::open(&cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file /etc/postfix/main.cf: parameter syslog_facility: unrecognized value: mial"
    );
}

#[test]
fn appends_and_reopens_after_rotation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maillog");
    std::fs::write(&path, "earlier line\n").expect("seed");
    let path_text = path.to_str().expect("UTF-8");
    let logger =
        Logger::open(&config(path_text, dir.path().to_str().expect("UTF-8"))).expect("open");
    let ident = Ident::new("postfix", "master");
    logger.log(&ident, &master::daemon_started("3.7.11", "/etc/postfix"));

    // logrotate: rename, then the daemon is told to reopen.
    let rotated = dir.path().join("maillog.1");
    std::fs::rename(&path, &rotated).expect("rename");
    logger.log(&ident, &master::reload("3.7.11", "/etc/postfix"));
    logger.reopen().expect("reopen");
    logger.log(&ident, &master::terminating(15));
    // Lines are written by the logger's writer thread; flush() waits for them.
    logger.flush();

    let old = read_lines(&rotated);
    assert_eq!(old.len(), 3, "{old:?}");
    assert_eq!(old[0], "earlier line");
    let pid = std::process::id();
    assert!(old[1].ends_with(&format!(
        " mx postfix/master[{pid}]: daemon started -- version 3.7.11, configuration /etc/postfix"
    )));
    assert!(old[2].ends_with("reload -- version 3.7.11, configuration /etc/postfix"));
    let new = read_lines(&path);
    assert_eq!(new.len(), 1);
    assert!(new[0].ends_with(": terminating on signal 15"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o644 & !umask_guess());
}

/// The usual umask leaves 0644 alone; a stricter one may only remove bits.
fn umask_guess() -> u32 {
    let dir = tempfile::tempdir().expect("temp dir");
    let probe = dir.path().join("probe");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&probe)
        .expect("probe");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&probe).expect("stat").permissions(),
    );
    0o666 & !mode
}

#[test]
fn refuses_a_symlink() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("target");
    std::fs::write(&target, "").expect("target");
    let link = dir.path().join("maillog");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let err = Logger::open(&config(link.to_str().expect("UTF-8"), "/")).unwrap_err();
    assert!(err.to_string().starts_with("open logfile '"), "{err}");
}

#[test]
fn threads_never_interleave_lines() {
    const THREADS: usize = 8;
    const LINES: usize = 500;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maillog");
    let logger = Arc::new(
        Logger::open(&config(
            path.to_str().expect("UTF-8"),
            dir.path().to_str().expect("UTF-8"),
        ))
        .expect("open"),
    );
    // Long lines (past the writer thread's pending bound) and short ones (gathered into
    // batches) from every thread at once.
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let logger = Arc::clone(&logger);
            std::thread::spawn(move || {
                let ident = Ident::new("postfix", "qmgr");
                let pad = if t % 2 == 0 { 900 } else { 10 };
                for i in 0..LINES {
                    let id = format!("{t:X}Z{i:04}Z{}", "F".repeat(pad));
                    logger.log(&ident, &queue::removed(&id));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    logger.flush();
    let lines = read_lines(&path);
    assert_eq!(lines.len(), THREADS * LINES);
    // Whole lines, and each thread's lines in the order it logged them.
    let mut next = [0usize; THREADS];
    for line in lines {
        let id = line
            .rsplit(' ')
            .nth(1)
            .and_then(|w| w.strip_suffix(':'))
            .unwrap_or_else(|| panic!("{line}"));
        let mut parts = id.split('Z');
        let t = usize::from_str_radix(parts.next().expect("thread"), 16).expect("thread");
        let i: usize = parts.next().expect("seq").parse().expect("seq");
        let pad = parts.next().expect("pad");
        assert_eq!(pad.len(), if t % 2 == 0 { 900 } else { 10 }, "{line}");
        assert_eq!(i, next[t], "thread {t} out of order: {line}");
        next[t] += 1;
    }
}

#[test]
fn syslog_datagrams_carry_facility_and_level() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("log");
    let server = UnixDatagram::bind(&socket_path).expect("bind");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let facility = tern_maillog::syslog::facility_code("local3").expect("local3");
    let logger = Logger::syslog_at(&socket_path, facility, "mx.example.test");
    let client = smtpd::Client {
        name: "unknown",
        addr: "192.0.2.1",
    };
    let ident = Ident::new("postfix/submission", "smtpd");
    logger.log(&ident, &smtpd::connect(client));
    logger.log(
        &ident,
        &smtpd::sasl_authentication_failed(client, "LOGIN", "authentication failure", None),
    );

    let mut buf = [0u8; 4096];
    let pid = std::process::id();
    let n = server.recv(&mut buf).expect("datagram");
    let first = std::str::from_utf8(&buf[..n]).expect("UTF-8");
    // local3 = 19; 19 * 8 + info (6) = 158; no host name, no newline.
    assert!(first.starts_with("<158>"), "{first}");
    assert!(first.ends_with(&format!(
        " postfix/submission/smtpd[{pid}]: connect from unknown[192.0.2.1]"
    )));
    let n = server.recv(&mut buf).expect("datagram");
    let second = std::str::from_utf8(&buf[..n]).expect("UTF-8");
    assert!(second.starts_with("<156>"), "{second}");
    assert!(second.ends_with(
        ": warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: authentication failure"
    ));
}
