//! The registry side by side with Debian's Postfix: `/usr/sbin/postconf -d` on an empty
//! configuration must print exactly our names and default texts, and a master.cf with
//! delivery services must add exactly our service-implied parameters.
//!
//! These tests need Debian's postfix package; they fail (not skip) without it, because a
//! silent skip would let the table drift from the reference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use tern_config::host::{self, HostInfo};
use tern_config::registry::{self, DefaultValue, HostDefault};

const POSTCONF: &str = "/usr/sbin/postconf";

/// A configuration directory with the given main.cf and master.cf, removed on drop.
struct ConfDir(PathBuf);

impl ConfDir {
    fn new(main_cf: &str, master_cf: &str) -> ConfDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tern-registry-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        std::fs::write(dir.join("main.cf"), main_cf).expect("write main.cf");
        std::fs::write(dir.join("master.cf"), master_cf).expect("write master.cf");
        ConfDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ConfDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `postconf -c dir args...` as name -> value, failing loudly when postconf is missing.
fn postconf(dir: &Path, args: &[&str]) -> BTreeMap<String, String> {
    assert!(
        Path::new(POSTCONF).exists(),
        "{POSTCONF} is missing: install Debian's postfix package to run these tests"
    );
    let out = Command::new(POSTCONF)
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .expect("run postconf");
    assert!(
        out.status.success(),
        "postconf failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "postconf warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("postconf output is UTF-8");
    text.lines()
        .map(|line| {
            let (name, value) = line.split_once(" =").expect("name = value line");
            (
                name.to_string(),
                value.strip_prefix(' ').unwrap_or(value).to_string(),
            )
        })
        .collect()
}

#[test]
fn defaults_match_debian() {
    let dir = ConfDir::new("", "");
    let debian = postconf(dir.path(), &["-d"]);
    let mut problems = Vec::new();
    for name in debian.keys() {
        if registry::lookup(name).is_none() {
            problems.push(format!("{name}: in Debian, not in the registry"));
        }
    }
    let host = HostInfo::detect();
    for p in registry::all() {
        let Some(theirs) = debian.get(p.name) else {
            problems.push(format!("{}: in the registry, not in Debian", p.name));
            continue;
        };
        let ours = match p.default {
            DefaultValue::Text(text) => text.to_string(),
            DefaultValue::Host(HostDefault::MyHostname) => host.myhostname.clone(),
            DefaultValue::Host(HostDefault::MyDomain) => host.mydomain.clone(),
            // postconf -d uses the default style: subnet at compatibility level 0.
            DefaultValue::Host(HostDefault::MyNetworks) => host::mynetworks("subnet", "all"),
            // Another process, another id and name: only the form can agree.
            DefaultValue::Host(HostDefault::ProcessId) => {
                assert!(theirs.parse::<u32>().is_ok(), "process_id = {theirs}");
                continue;
            }
            DefaultValue::Host(HostDefault::ProcessName) => {
                assert_eq!(theirs, "postconf");
                continue;
            }
        };
        // A default changed on purpose must still differ from exactly Postfix's text.
        if let Some((_, postfix)) = registry::SAFER_DEFAULTS.iter().find(|(n, _)| *n == p.name) {
            if theirs != postfix {
                problems.push(format!("{}: Debian now says {theirs:?}", p.name));
            }
            continue;
        }
        if &ours != theirs {
            problems.push(format!("{}: ours {ours:?}, Debian {theirs:?}", p.name));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(registry::all().len(), debian.len());
}

#[test]
fn legacy_names_match_debian() {
    let dir = ConfDir::new("", "");
    let debian = postconf(dir.path(), &["-d"]);
    let mut args = vec!["-d"];
    args.extend(registry::LEGACY);
    let legacy = postconf(dir.path(), &args);
    for name in registry::LEGACY {
        assert!(
            !debian.contains_key(*name),
            "{name} is listed by postconf -d"
        );
        assert_eq!(legacy.get(*name).map(String::as_str), Some(""), "{name}");
    }
}

#[test]
fn mynetworks_follows_main_cf_like_debian() {
    // Without -d, postconf computes mynetworks from main.cf's style, protocols and
    // interfaces.
    let cases: &[(&str, &str, &str)] = &[
        ("host", "all", "all"),
        ("class", "all", "all"),
        ("subnet", "ipv4", "all"),
        ("subnet", "ipv6", "all"),
        ("host", "all", "loopback-only"),
        ("subnet", "all", "127.0.0.1"),
    ];
    for &(style, protocols, interfaces) in cases {
        let main_cf = format!(
            "mynetworks_style = {style}\ninet_protocols = {protocols}\n\
             inet_interfaces = {interfaces}\n"
        );
        let dir = ConfDir::new(&main_cf, "");
        let debian = postconf(dir.path(), &["mynetworks"]);
        let ours = host::mynetworks_for(style, protocols, interfaces).expect("valid values");
        assert_eq!(Some(&ours), debian.get("mynetworks"), "{main_cf}");
    }
}

#[test]
fn service_params_match_debian() {
    let services: &[(&str, &str, &str)] = &[
        ("relay", "unix", "smtp"),
        ("foo", "unix", "pipe flags=R user=nobody argv=/bin/true"),
        ("bar", "unix", "local"),
        ("baz", "unix", "virtual"),
        ("qux", "unix", "lmtp"),
        ("err", "unix", "error"),
        ("2525", "inet", "smtpd"),
        ("local", "unix", "local"),
        ("sp", "unix", "spawn"),
        ("127.0.0.1:10025", "inet", "smtp"),
        ("x", "unix", "/usr/lib/postfix/sbin/smtp"),
    ];
    let mut master_cf = String::new();
    for (service, kind, command) in services {
        master_cf.push_str(&[service, kind, "-", "-", "n", "-", "-", command].join(" "));
        master_cf.push('\n');
    }
    let empty = ConfDir::new("", "");
    let dir = ConfDir::new("", &master_cf);
    let before = postconf(empty.path(), &["-d"]);
    let after = postconf(dir.path(), &["-d"]);

    let theirs: BTreeMap<String, String> = after
        .into_iter()
        .filter(|(name, _)| !before.contains_key(name))
        .collect();
    let ours: BTreeMap<String, String> = services
        .iter()
        .flat_map(|(service, _, command)| registry::service_params(service, command))
        .collect();
    assert_eq!(ours, theirs);
    // Built-ins keep their own defaults.
    assert_eq!(
        before
            .get("local_destination_concurrency_limit")
            .map(String::as_str),
        Some("2")
    );
}
