//! `postfix check` end to end: Tern's binary on configurations in temp directories, and,
//! where Debian's Postfix is installed and we run as root, the same directory checked by
//! Debian's `postfix -c DIR check` with the messages compared.
//!
//! Each test builds DIR/conf (main.cf, master.cf), DIR/queue and DIR/data, with main.cf
//! pointing queue_directory and data_directory there, so nothing outside the temp directory
//! is looked at except the shared program directories. Debian's postfix prints its messages
//! only to a terminal, so it is run under `script(1)`.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Group, Uid, User, chown};

const TERN: &str = env!("CARGO_BIN_EXE_postfix");
const DEBIAN: &str = "/usr/sbin/postfix";

/// A master.cf with the services Postfix needs (postlog included).
const MASTER_CF: &str = "\
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// A temp Postfix layout.
struct Instance {
    _tmp: tempfile::TempDir,
    base: PathBuf,
}

impl Instance {
    /// A configuration that passes: root-owned config and queue directories, a data
    /// directory owned by mail_owner. `extra` is appended to main.cf.
    fn new(extra: &str) -> Instance {
        let tmp = tempfile::Builder::new()
            .prefix("tern-pfck.")
            .tempdir()
            .expect("tempdir");
        let base = tmp.path().to_path_buf();
        // Postfix's mail_owner must be able to traverse to its directories.
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).expect("chmod");
        for d in ["conf", "queue", "data"] {
            fs::create_dir(base.join(d)).expect("mkdir");
            fs::set_permissions(base.join(d), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        if let Some(owner) = User::from_name("postfix").ok().flatten()
            && Uid::effective().is_root()
        {
            chown(&base.join("data"), Some(owner.uid), None).expect("chown");
            fs::set_permissions(base.join("data"), fs::Permissions::from_mode(0o700))
                .expect("chmod");
        }
        let b = base.display();
        let mut main = format!("queue_directory = {b}/queue\ndata_directory = {b}/data\n");
        // Never define a name twice: Postfix warns about that from every process.
        if !extra.contains("compatibility_level") {
            main.push_str("compatibility_level = 3.6\n");
        }
        // The machine's own /etc/aliases.db (Debian's Berkeley DB) is not this instance's.
        if !extra.contains("alias_maps") {
            let _ = writeln!(
                main,
                "alias_maps = hash:{b}/conf/aliases\nalias_database = hash:{b}/conf/aliases"
            );
        }
        // Without Debian's Postfix, point the program directories somewhere that exists.
        for (name, default) in [
            ("command_directory", "/usr/sbin"),
            ("daemon_directory", "/usr/lib/postfix/sbin"),
            ("meta_directory", "/etc/postfix"),
            ("shlib_directory", "/usr/lib/postfix"),
        ] {
            if !Path::new(default).is_dir() {
                let _ = writeln!(main, "{name} = {b}/conf");
            }
        }
        main.push_str(extra);
        let inst = Instance { _tmp: tmp, base };
        inst.write("main.cf", &main);
        inst.write("master.cf", MASTER_CF);
        inst
    }

    fn conf(&self) -> PathBuf {
        self.base.join("conf")
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.conf().join(name);
        fs::write(&path, text).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    /// Tern's `postfix -c DIR check`: (exit status, stderr, stdout).
    fn tern(&self) -> (i32, String, String) {
        let out = Command::new(TERN)
            .arg("-c")
            .arg(self.conf())
            .arg("check")
            .env_remove("MAIL_CONFIG")
            .output()
            .expect("run tern postfix");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Debian's `postfix -c DIR check` on a pseudo-terminal: (exit status, output), or
    /// `None` when it cannot run here.
    fn debian(&self) -> Option<(i32, String)> {
        if !Uid::effective().is_root() || !Path::new(DEBIAN).exists() {
            return None;
        }
        let cmd = format!("{DEBIAN} -c {} check", self.conf().display());
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("MAIL_CONFIG")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        Some((out.status.code().unwrap_or(-1), text))
    }
}

/// Whether the accounts of a default Postfix install exist and we are root, so that a
/// default configuration can pass.
fn postfix_accounts() -> bool {
    let ok = Uid::effective().is_root()
        && User::from_name("postfix").ok().flatten().is_some()
        && Group::from_name("postdrop").ok().flatten().is_some()
        && User::from_name("nobody").ok().flatten().is_some();
    // A test that needs a peer fails when it is missing: .ci/run installs Debian's Postfix
    // (which creates these accounts) and runs as root.
    assert!(
        ok,
        "needs root and the postfix, nobody users and postdrop group (run .ci/run)"
    );
    ok
}

/// Runs both and checks Tern's output against Debian's (Debian's last `keep` lines when it
/// prints more, e.g. the warnings of the postconf runs in its post-install step).
fn same_as_debian(inst: &Instance, tern: &(i32, String, String), keep: Option<usize>) {
    let Some((status, text)) = inst.debian() else {
        panic!("Debian's /usr/sbin/postfix is needed for the comparison (run .ci/run)");
    };
    let text = match keep {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(n)..];
            tail.iter().fold(String::new(), |mut acc, l| {
                let _ = writeln!(acc, "{l}");
                acc
            })
        }
        None => text,
    };
    assert_eq!((tern.0, tern.1.as_str()), (status, text.as_str()));
}

#[test]
fn good_config_passes_silently() {
    if !postfix_accounts() {
        return;
    }
    let inst = Instance::new("");
    let got = inst.tern();
    assert_eq!(got, (0, String::new(), String::new()));
    same_as_debian(&inst, &got, None);
}

#[test]
fn group_writable_main_cf_warns() {
    if !postfix_accounts() {
        return;
    }
    let inst = Instance::new("");
    let main = inst.conf().join("main.cf");
    fs::set_permissions(&main, fs::Permissions::from_mode(0o664)).expect("chmod");
    let got = inst.tern();
    let want = format!(
        "postfix/postfix-script: warning: group or other writable: {}/./main.cf\n",
        inst.conf().display()
    );
    assert_eq!((got.0, got.1.as_str()), (0, want.as_str()));
    same_as_debian(&inst, &got, None);
}

#[test]
fn foreign_owned_files_warn() {
    if !postfix_accounts() {
        return;
    }
    let inst = Instance::new("");
    let nobody = User::from_name("nobody").ok().flatten().expect("nobody");
    chown(&inst.conf().join("master.cf"), Some(nobody.uid), None).expect("chown");
    fs::write(inst.base.join("data/stray"), "").expect("write");
    let got = inst.tern();
    let (c, b) = (inst.conf(), inst.base.display());
    let want = format!(
        "postfix/postfix-script: warning: not owned by root: {}/./master.cf\n\
         postfix/postfix-script: warning: not owned by postfix: {b}/data/./stray\n",
        c.display()
    );
    assert_eq!((got.0, got.1.as_str()), (0, want.as_str()));
    same_as_debian(&inst, &got, None);
}

#[test]
fn missing_master_cf_is_fatal() {
    let inst = Instance::new("");
    fs::remove_file(inst.conf().join("master.cf")).expect("rm");
    let got = inst.tern();
    if !postfix_accounts() {
        // The account checks come first and may fail on this host.
        assert_eq!(got.0, 1);
        return;
    }
    let want = format!(
        "postfix/postfix-script: fatal: no {}/master.cf file found\n",
        inst.conf().display()
    );
    assert_eq!((got.0, got.1.as_str()), (1, want.as_str()));
    same_as_debian(&inst, &got, Some(1));
}

#[test]
fn bad_accounts_are_fatal() {
    let cases: &[(&str, &str)] = &[
        (
            "mail_owner = tern-no-such-user\n",
            "parameter mail_owner: unknown user name value: tern-no-such-user",
        ),
        (
            "mail_owner = root\n",
            "parameter mail_owner: user root has privileged user ID",
        ),
        (
            "setgid_group = tern-no-such-group\n",
            "parameter setgid_group: unknown group name: tern-no-such-group",
        ),
    ];
    for (extra, text) in cases {
        let inst = Instance::new(extra);
        let got = inst.tern();
        if !postfix_accounts() && !text.contains("mail_owner") {
            continue;
        }
        let want = format!(
            "postfix: fatal: file {}/main.cf: {text}\n",
            inst.conf().display()
        );
        assert_eq!((got.0, got.1.as_str()), (1, want.as_str()), "{extra}");
        same_as_debian(&inst, &got, None);
    }
}

#[test]
fn bad_values_are_fatal() {
    let cases: &[(&str, &str)] = &[
        (
            "disable_dns_lookups = maybe\n",
            "bad boolean configuration: disable_dns_lookups = maybe",
        ),
        (
            "line_length_limit = 10\n",
            "invalid line_length_limit parameter value 10 < 512",
        ),
        (
            "message_size_limit = 1k\n",
            "bad numerical configuration: message_size_limit = 1k",
        ),
        (
            "ipc_timeout = 10x\n",
            "parameter ipc_timeout: bad time value or unit: 10x",
        ),
        ("ipc_timeout = 0\n", "invalid ipc_timeout: 0 (min 1)"),
        (
            "delay = 20\nin_flow_delay = ${delay}s\n",
            "invalid in_flow_delay: 20 (max 10)",
        ),
        (
            "compatibility_level = 3.6 x\n",
            "malformed compatibility level syntax: \"3.6 x\"",
        ),
    ];
    for (extra, text) in cases {
        let inst = Instance::new(extra);
        let got = inst.tern();
        let want = format!("postfix: fatal: {text}\n");
        assert_eq!((got.0, got.1.as_str()), (1, want.as_str()), "{extra}");
    }
    // Debian on one of them (each Debian run takes a while).
    let inst = Instance::new(cases[3].0);
    let got = inst.tern();
    same_as_debian(&inst, &got, None);
}

#[test]
fn bad_main_cf_syntax_is_fatal() {
    let inst = Instance::new("this is not an assignment\n");
    let got = inst.tern();
    let path = inst.conf().join("main.cf");
    let lines = fs::read_to_string(&path).expect("read").lines().count();
    let want = format!(
        "postfix: fatal: {}, line {lines}: missing '=' after attribute name: \
         \"this is not an assignment\"\n",
        path.display()
    );
    assert_eq!((got.0, got.1.as_str()), (1, want.as_str()));
    same_as_debian(&inst, &got, None);
}

#[test]
fn usage_and_unknown_commands() {
    let inst = Instance::new("");
    let conf = inst.conf();
    let conf = conf.to_str().expect("utf-8 temp path");
    let usage = "Usage: postfix start (or stop, reload, abort, flush, check, status, \
                 set-permissions, upgrade-configuration, logrotate)";
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["-x", "check"],
            1,
            "postfix: invalid option -- 'x'\n\
             postfix: fatal: usage: postfix [-c config_dir] [-Dv] command\n"
                .to_owned(),
        ),
        (
            vec!["-c", "relative", "check"],
            1,
            "postfix: fatal: -c requires absolute pathname\n".to_owned(),
        ),
        (
            vec!["-c", "/nonexistent-tern-dir", "check"],
            1,
            "postfix: fatal: open /nonexistent-tern-dir/main.cf: No such file or directory\n"
                .to_owned(),
        ),
    ];
    let mut cases = cases;
    if postfix_accounts() {
        cases.push((
            vec!["-c", conf, "bogus"],
            1,
            format!("postfix/postfix-script: fatal: unknown command: 'bogus'. {usage}\n"),
        ));
        cases.push((
            vec!["-c", conf],
            1,
            format!("postfix/postfix-script: fatal: unknown command: ''. {usage}\n"),
        ));
    }
    for (args, status, want) in &cases {
        let out = Command::new(TERN)
            .args(args)
            .env_remove("MAIL_CONFIG")
            .output()
            .expect("run");
        let got = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_eq!(got, (*status, want.clone()), "{args:?}");
    }
}

#[test]
fn mail_config_is_honoured() {
    let inst = Instance::new("mail_owner = tern-no-such-user\n");
    let out = Command::new(TERN)
        .arg("check")
        .env("MAIL_CONFIG", inst.conf())
        .output()
        .expect("run");
    let want = format!(
        "postfix: fatal: file {}/main.cf: parameter mail_owner: unknown user name value: \
         tern-no-such-user\n",
        inst.conf().display()
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), want);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_data_directory_is_fatal() {
    if !postfix_accounts() {
        return;
    }
    let inst = Instance::new("");
    fs::remove_dir(inst.base.join("data")).expect("rmdir");
    let got = inst.tern();
    let want = format!(
        "postfix/postfix-script: fatal: no Postfix data directory {}/data!\n",
        inst.base.display()
    );
    assert_eq!((got.0, got.1.as_str()), (1, want.as_str()));
}

/// Beyond Postfix: a Berkeley DB table left by Postfix and a stale indexed table are named,
/// each with the command that rebuilds it.
#[test]
fn berkeley_and_stale_tables_are_named() {
    if !postfix_accounts() {
        return;
    }
    // The conf directory's path is known once the instance exists: settings name it with a
    // placeholder that is filled in afterwards.
    let inst = Instance::new(
        "alias_maps = hash:@CONF@/aliases\nalias_database = hash:@CONF@/aliases\n\
         smtpd_client_restrictions = check_client_access lmdb:@CONF@/access\n",
    );
    let conf = inst.conf();
    let c = conf.display().to_string();
    let main = fs::read_to_string(conf.join("main.cf")).expect("main.cf");
    inst.write("main.cf", &main.replace("@CONF@", &c));
    inst.write("aliases", "postmaster: root\n");
    inst.write("access", "example.com REJECT\n");
    // Debian's postalias writes a Berkeley DB hash file.
    let status = Command::new("/usr/sbin/postalias")
        .arg(format!("hash:{c}/aliases"))
        .status()
        .expect("Debian's postalias runs (run .ci/run to install it)");
    assert!(status.success());
    // Tern's postmap builds the lmdb table; the source is newer than the built file.
    let status = Command::new(env!("CARGO_BIN_EXE_postmap"))
        .arg(format!("lmdb:{c}/access"))
        .status()
        .expect("postmap runs");
    assert!(status.success());
    let old = std::time::SystemTime::now() - std::time::Duration::from_hours(1);
    fs::File::options()
        .write(true)
        .open(conf.join("access.lmdb"))
        .and_then(|f| f.set_modified(old))
        .expect("age the indexed file");
    let (status, stderr, _) = inst.tern();
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "postfix/postfix-script: warning: {c}/aliases.db is a Berkeley DB file made by \
             Postfix, which Tern does not read: rebuild it with \"postalias hash:{c}/aliases\""
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "postfix/postfix-script: warning: database {c}/access.lmdb is older than source \
             file {c}/access: rebuild it with \"postmap lmdb:{c}/access\""
        )),
        "{stderr}"
    );
}
