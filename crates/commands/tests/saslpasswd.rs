//! `tern-saslpasswd`: adds, replaces and deletes users of the built-in SASL password file,
//! writes it atomically with root:<mail_owner's group> 0640 (or keeps an existing file's
//! owner and mode), finds it through main.cf, and refuses bad input with exit 1. Runs as
//! root (the tests of this crate do).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use tern_daemon::sasl::table::{Hash, parse_line};

const BIN: &str = env!("CARGO_BIN_EXE_tern-saslpasswd");

/// Runs the command with `stdin`; returns (exit status, stderr).
fn run(args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tern-saslpasswd");
    // The command may exit before it reads (bad arguments): a broken pipe is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The (user, hash) entries of a file.
fn entries(file: &Path) -> Vec<(String, Hash)> {
    std::fs::read_to_string(file)
        .expect("file")
        .lines()
        .filter_map(|l| parse_line(l).expect("good line"))
        .collect()
}

fn config_dir(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("main.cf"),
        format!("mail_owner = nobody\n{extra}"),
    )
    .expect("main.cf");
    std::fs::write(dir.path().join("master.cf"), "").expect("master.cf");
    dir
}

#[test]
fn add_replace_delete() {
    assert!(nix::unistd::geteuid().is_root(), "the test needs root");
    let dir = config_dir("");
    let d = dir.path().to_str().expect("utf-8");
    let file = dir.path().join("sasl_users");

    // The default file, a new one: root, nobody's group, 0640.
    assert_eq!(
        run(&["-c", d, "-i", "1000", "alice@example.org"], "s3cret\n"),
        (0, String::new())
    );
    let meta = std::fs::metadata(&file).expect("made");
    let nogroup = nix::unistd::User::from_name("nobody")
        .expect("passwd")
        .expect("nobody")
        .gid
        .as_raw();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, nogroup, 0o640)
    );
    let e = entries(&file);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, "alice@example.org");
    assert!(e[0].1.verify(b"s3cret"));
    assert!(
        std::fs::read_to_string(&file)
            .expect("file")
            .contains("alice@example.org:$pbkdf2-sha256$1000$")
    );

    // A second user; the default iteration count.
    assert_eq!(run(&["-c", d, "bob"], "pw2\r\n").0, 0);
    let e = entries(&file);
    assert_eq!(e.len(), 2);
    assert!(e[1].1.verify(b"pw2"));
    assert!(format!("{:?}", e[1].1).contains("600000 iterations"));

    // Replace: same place, new hash; an administrator's mode is kept.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(
        run(&["-c", d, "-i", "1000", "alice@example.org"], "n3w\n").0,
        0
    );
    let e = entries(&file);
    assert_eq!(e[0].0, "alice@example.org");
    assert!(e[0].1.verify(b"n3w"));
    assert!(!e[0].1.verify(b"s3cret"));
    assert_eq!(
        std::fs::metadata(&file).expect("file").mode() & 0o7777,
        0o600
    );

    // Delete.
    assert_eq!(run(&["-c", d, "-d", "alice@example.org"], "").0, 0);
    let e = entries(&file);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, "bob");
    let (code, err) = run(&["-c", d, "-d", "carol"], "");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "tern-saslpasswd: fatal: {}: no such user: carol\n",
            file.display()
        )
    );
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
}

#[test]
fn finds_the_file_through_main_cf() {
    let dir = config_dir("smtpd_sasl_type = tern\nsmtpd_sasl_path = users/smtp\n");
    std::fs::create_dir(dir.path().join("users")).expect("mkdir");
    let d = dir.path().to_str().expect("utf-8");
    assert_eq!(run(&["-c", d, "-i", "1", "tern"], "x\n").0, 0);
    assert_eq!(entries(&dir.path().join("users/smtp")).len(), 1);

    let other = dir.path().join("elsewhere");
    let f = other.to_str().expect("utf-8");
    assert_eq!(run(&["-c", d, "-f", f, "-i", "1", "tern"], "x\n").0, 0);
    assert_eq!(entries(&other).len(), 1);
}

#[test]
fn refusals() {
    let dir = config_dir("");
    let d = dir.path().to_str().expect("utf-8");
    let usage = "tern-saslpasswd: fatal: usage: tern-saslpasswd [-c config_dir] [-f file] \
                 [-i iterations] [-d] user\n";
    let cases: &[(&[&str], &str, &str)] = &[
        (&["-c", d], "x\n", usage),
        (&["-c", d, "a", "b"], "x\n", usage),
        (
            &["-c", d, "tern"],
            "\n",
            "tern-saslpasswd: fatal: empty password\n",
        ),
        (
            &["-c", d, "tern"],
            "",
            "tern-saslpasswd: fatal: empty password\n",
        ),
        (
            &["-c", d, "a:b"],
            "x\n",
            "tern-saslpasswd: fatal: bad user name: a:b (1 to 255 bytes, no ':', white space \
             or control characters)\n",
        ),
        (
            &["-c", d, "-i", "0", "tern"],
            "x\n",
            "tern-saslpasswd: fatal: bad iteration count: 0\n",
        ),
    ];
    for (args, stdin, want) in cases {
        assert_eq!(run(args, stdin), (1, (*want).to_owned()), "{args:?}");
    }
    assert!(!dir.path().join("sasl_users").exists());
    let (code, err) = run(&["-x"], "");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("tern-saslpasswd: fatal: invalid option -- 'x'"),
        "{err}"
    );
}
