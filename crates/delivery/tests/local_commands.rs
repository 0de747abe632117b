//! local(8) with real processes: `|command` aliases with their rights and environment,
//! command_time_limit, exit codes, `:include:`, `.forward`, loop detection, unknown users.
//! Needs root (useradd, uid switching).
#![allow(clippy::unwrap_used)]

#[path = "local_support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{MESSAGE, Setup, USER, env_pairs, test_user, tmp_dir};
use tern_delivery::local::{Entry, Final};
use tern_delivery::request::Delivered;

fn only(entries: &[Entry]) -> &Final {
    assert_eq!(entries.len(), 1, "{entries:#?}");
    &entries[0].result
}

fn sent(text: &str) -> Final {
    Final::Done(Delivered::Sent {
        dsn: "2.0.0".into(),
        text: text.into(),
    })
}

use tern_testkit::support::DEBIAN_LOCAL_COMMAND_ENV as DEBIAN_ENV_NAMES;

#[test]
fn command_alias_rights_and_environment() {
    let tmp = tmp_dir(0o777);
    let out = tmp.path().join("env.out");
    let msg = tmp.path().join("msg.out");
    let aliases = format!(
        "envtest: \"|env > {o}; id -u >> {o}; id -g >> {o}; cat > {m}\"\n",
        o = out.display(),
        m = msg.display()
    );
    let s = Setup::new(&aliases, "", "");
    let req = s.request("A1", "snd@example.org", &["envtest@host.example"], MESSAGE);
    let (res, _) = s.deliver(&req);
    let cmd = aliases
        .trim_end()
        .trim_start_matches("envtest: \"|")
        .trim_end_matches('"');
    assert_eq!(
        *only(&res[0].entries),
        sent(&format!("delivered to command: {cmd}"))
    );
    assert_eq!(
        res[0].result,
        Delivered::Sent {
            dsn: "2.0.0".into(),
            text: String::new()
        }
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    assert_eq!(lines[n - 2], nobody.uid.to_string(), "uid: default_privs");
    assert_eq!(lines[n - 1], nobody.gid.to_string(), "gid: default_privs");
    let env = env_pairs(&text);
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, DEBIAN_ENV_NAMES, "{text}");
    let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("USER"), "envtest");
    assert_eq!(get("LOGNAME"), "envtest");
    assert_eq!(get("LOCAL"), "envtest");
    assert_eq!(get("DOMAIN"), "host.example");
    assert_eq!(get("RECIPIENT"), "envtest@host.example");
    assert_eq!(get("ORIGINAL_RECIPIENT"), "envtest@host.example");
    assert_eq!(get("SENDER"), "snd@example.org");
    assert_eq!(get("PATH"), "/usr/bin:/bin");
    assert_eq!(get("LANG"), "C", "import_environment LANG=C");
    assert_eq!(get("CLIENT_ADDRESS"), "127.0.0.1");
    assert_eq!(get("CLIENT_PROTOCOL"), "ESMTP");
    assert_eq!(get("PWD"), s.dir().join("queue").display().to_string());
    let copy = std::fs::read_to_string(&msg).unwrap();
    assert_eq!(
        copy,
        format!(
            "From snd@example.org  Fri Nov 27 00:12:21 2026\nReturn-Path: <snd@example.org>\n\
             X-Original-To: envtest@host.example\nDelivered-To: envtest@host.example\n{MESSAGE}"
        )
    );
}

#[test]
fn command_as_alias_owner_with_extension() {
    let (uid, gid, home) = test_user();
    let tmp = tmp_dir(0o777);
    let out = tmp.path().join("env.out");
    let aliases = format!(
        "owned: \"|env > {o}; id -u >> {o}; id -g >> {o}\"\n",
        o = out.display()
    );
    let s = Setup::new(&aliases, "", "");
    nix::unistd::chown(
        &s.dir().join("aliases"),
        Some(nix::unistd::Uid::from_raw(uid)),
        None,
    )
    .unwrap();
    let req = s.request("A2", "", &["Owned+Tag@host.example"], MESSAGE);
    let (res, _) = s.deliver(&req);
    assert!(
        matches!(only(&res[0].entries), Final::Done(Delivered::Sent { .. })),
        "{res:#?}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[lines.len() - 2], uid.to_string());
    assert_eq!(lines[lines.len() - 1], gid.to_string());
    let env = env_pairs(&text);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|p| p.1.clone());
    assert_eq!(get("HOME"), Some(home.display().to_string()));
    assert_eq!(get("SHELL").as_deref(), Some("/bin/sh"));
    assert_eq!(get("EXTENSION").as_deref(), Some("tag"));
    assert_eq!(get("LOCAL").as_deref(), Some("owned+tag"));
    assert_eq!(get("USER").as_deref(), Some("owned"));
    assert_eq!(get("RECIPIENT").as_deref(), Some("Owned+Tag@host.example"));
    assert_eq!(get("SENDER").as_deref(), Some(""));
}

#[test]
fn exit_codes_and_time_limit() {
    let aliases = "ex64: \"|echo 'bad\tthing'; echo second; exit 64\"\nex75: \"|exit 75\"\n\
                   dsnout: \"|echo 5.1.7 no such box; exit 1\"\nsleeper: \"|sleep 30\"\n";
    let s = Setup::new(aliases, "command_time_limit = 1s\n", "");
    let req = s.request(
        "A3",
        "snd@example.org",
        &[
            "ex64@host.example",
            "ex75@host.example",
            "dsnout@host.example",
            "sleeper@host.example",
        ],
        MESSAGE,
    );
    let start = Instant::now();
    let (res, _) = s.deliver(&req);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let want = [
        Delivered::Bounced {
            dsn: "5.3.0".into(),
            text: "command line usage error. Command output: bad thing second ".into(),
        },
        Delivered::Deferred {
            dsn: "4.3.0".into(),
            text: "temporary failure".into(),
        },
        Delivered::Bounced {
            dsn: "5.1.7".into(),
            text: "no such box ".into(),
        },
        Delivered::Bounced {
            dsn: "5.3.0".into(),
            text: "Command time limit exceeded: \"sleep 30\"".into(),
        },
    ];
    for (r, w) in res.iter().zip(want) {
        assert_eq!(*only(&r.entries), Final::Done(w.clone()));
        assert_eq!(r.result, w);
    }
}

#[test]
fn include_file_and_restrictions() {
    let tmp = tmp_dir(0o755);
    let inc = tmp.path().join("list.inc");
    std::fs::write(
        &inc,
        "# members\nalice@remote.example, bob\n\"|cat > /dev/null\"\n",
    )
    .unwrap();
    let aliases = format!("list: :include:{}\n", inc.display());
    let s = Setup::new(&aliases, "", "");
    let req = s.request("A4", "snd@example.org", &["list@host.example"], MESSAGE);
    let (res, _) = s.deliver(&req);
    let e = &res[0].entries;
    assert_eq!(e.len(), 3, "{e:#?}");
    // Every address in an :include: file is forwarded (recipient.c), local ones too.
    for (entry, addr) in e.iter().zip(["alice@remote.example", "bob@host.example"]) {
        assert_eq!(entry.address, addr);
        match &entry.result {
            Final::Done(Delivered::Forward(f)) => {
                assert_eq!(f.recipients, [addr]);
                assert_eq!(f.sender, "snd@example.org");
                assert_eq!(f.prepend, ["Delivered-To: list@host.example"]);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        e[2].result,
        Final::Done(Delivered::Bounced {
            dsn: "5.7.1".into(),
            text: "mail to command is restricted".into()
        })
    );
    // With include allowed, the command runs.
    let s = Setup::new(
        &aliases,
        "allow_mail_to_commands = alias, forward, include\n",
        "",
    );
    let req = s.request("A5", "snd@example.org", &["list@host.example"], MESSAGE);
    let (res, _) = s.deliver(&req);
    assert_eq!(
        res[0].entries[2].result,
        sent("delivered to command: cat > /dev/null")
    );
}

#[test]
fn dot_forward_runs_as_user() {
    let (uid, _, home) = test_user();
    let tmp = tmp_dir(0o777);
    let out = tmp.path().join("fwd.out");
    let forward = home.join(".forward");
    std::fs::write(
        &forward,
        format!(
            "\"|id -u > {o}; echo $EXTENSION >> {o}\"\n",
            o = out.display()
        ),
    )
    .unwrap();
    nix::unistd::chown(&forward, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
    let s = Setup::new("", "", "");
    let req = s.request(
        "A6",
        "snd@example.org",
        &[&format!("{USER}+x@host.example")],
        MESSAGE,
    );
    let (res, rec) = s.deliver(&req);
    std::fs::remove_file(&forward).unwrap();
    assert!(
        matches!(only(&res[0].entries), Final::Done(Delivered::Sent { .. })),
        "{res:#?}"
    );
    assert!(rec.calls.is_empty(), "no mailbox delivery: {:?}", rec.calls);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, format!("{uid}\nx\n"));
}

#[test]
fn mailbox_loop_and_unknown() {
    let (uid, gid, _) = test_user();
    let s = Setup::new("postmaster: tern-t-local\nfar: x@remote.example\n", "", "");
    let looping = format!("Delivered-To: {USER}@host.example\n{MESSAGE}");
    let req = s.request(
        "A7",
        "snd@example.org",
        &[&format!("{USER}@host.example")],
        &looping,
    );
    let (res, _) = s.deliver(&req);
    assert_eq!(
        res[0].result,
        Delivered::Bounced {
            dsn: "5.4.6".into(),
            text: format!("mail forwarding loop for {USER}@host.example")
        }
    );
    let req = s.request(
        "A8",
        "snd@example.org",
        &[
            "nosuch@host.example",
            "postmaster@host.example",
            "far@host.example",
        ],
        MESSAGE,
    );
    let (res, rec) = s.deliver(&req);
    assert_eq!(
        res[0].result,
        Delivered::Bounced {
            dsn: "5.1.1".into(),
            text: "unknown user: \"nosuch\"".into()
        }
    );
    assert_eq!(*only(&res[1].entries), sent("delivered to mailbox"));
    assert_eq!(res[1].entries[0].address, format!("{USER}@host.example"));
    assert_eq!(res[1].entries[0].orig_to, "postmaster@host.example");
    assert_eq!(rec.calls.len(), 1);
    let call = &rec.calls[0];
    assert_eq!(call.1, s.dir().join("spool").join(USER));
    assert_eq!((call.2.uid, call.2.gid), (uid, gid));
    assert_eq!(
        call.3.as_deref(),
        Some("postmaster@host.example"),
        "frozen Delivered-To"
    );
    match only(&res[2].entries) {
        Final::Done(Delivered::Forward(f)) => assert_eq!(f.recipients, ["x@remote.example"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mailbox_transport_is_passed_on() {
    test_user();
    let s = Setup::new("", "mailbox_transport = lmtp:unix:/run/lmtp\n", "");
    let req = s.request("A9", "", &[&format!("{USER}@host.example")], MESSAGE);
    let (res, _) = s.deliver(&req);
    assert_eq!(
        *only(&res[0].entries),
        Final::Pass {
            transport: "lmtp".into(),
            nexthop: "unix:/run/lmtp".into()
        }
    );
}
