//! Shared set-up for the local(8) and pipe(8) tests (included with `#[path]`): a
//! configuration directory with main.cf, master.cf and a queue directory, queue files,
//! and a system user `tern-t-local` (created with useradd; the tests run as root).
#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tern_config::config::Config;
use tern_delivery::local::mailboxes::Recorder;
use tern_delivery::local::{self, Env, LocalOutcome, LocalSettings};
use tern_delivery::request::{Agent, DeliveryRequest, RequestRecipient};
use tern_message::trace::Timestamp;
use tern_queue::file::{Envelope, QueueWriter, Recipient};
use tern_rewrite::Resolver;

pub const USER: &str = "tern-t-local";

/// A temporary directory in /tmp with `mode`: 0o777 where a command run as another user
/// writes its output file.
pub fn tmp_dir(mode: u32) -> tempfile::TempDir {
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    tmp
}

/// The test user (uid, gid, home), created once.
pub fn test_user() -> (u32, u32, PathBuf) {
    static ONCE: OnceLock<(u32, u32, PathBuf)> = OnceLock::new();
    ONCE.get_or_init(|| {
        assert!(nix::unistd::geteuid().is_root(), "these tests need root");
        if nix::unistd::User::from_name(USER).unwrap().is_none() {
            let out = Command::new("useradd")
                .args(["-m", "-d", "/home/tern-t-local", "-s", "/bin/sh", USER])
                .output()
                .expect("useradd");
            assert!(
                out.status.success() || nix::unistd::User::from_name(USER).unwrap().is_some(),
                "useradd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let u = nix::unistd::User::from_name(USER).unwrap().unwrap();
        std::fs::create_dir_all(&u.dir).unwrap();
        nix::unistd::chown(&u.dir, Some(u.uid), Some(u.gid)).unwrap();
        (u.uid.as_raw(), u.gid.as_raw(), u.dir)
    })
    .clone()
}

/// A private configuration: `dir/main.cf`, `dir/master.cf`, `dir/queue/active/`, the
/// alias file `dir/aliases` (texthash).
pub struct Setup {
    pub tmp: tempfile::TempDir,
    pub config: Config,
}

impl Setup {
    pub fn new(aliases: &str, main_extra: &str, master_extra: &str) -> Setup {
        let tmp = tempfile::Builder::new()
            .prefix("tern-local.")
            .tempdir_in("/tmp")
            .unwrap();
        let d = tmp.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(d.join("queue/active")).unwrap();
        std::fs::create_dir_all(d.join("spool")).unwrap();
        // texthash: tables are `key value`; the tests write aliases(5) `key: value`.
        let table: String = aliases
            .lines()
            .map(|l| match l.split_once(':') {
                Some((k, v)) if !k.contains(' ') => format!("{k} {}\n", v.trim()),
                _ => format!("{l}\n"),
            })
            .collect();
        std::fs::write(d.join("aliases"), table).unwrap();
        let main = format!(
            "queue_directory = {q}\nmail_spool_directory = {s}\nmyhostname = host.example\n\
             mydomain = example\nmydestination = host.example, localhost\n\
             alias_maps = texthash:{a}\nrecipient_delimiter = +\ninet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\ncompatibility_level = 3.6\n{main_extra}",
            q = d.join("queue").display(),
            s = d.join("spool").display(),
            a = d.join("aliases").display(),
        );
        std::fs::write(d.join("main.cf"), main).unwrap();
        let master = format!(
            "smtp inet n - n - - smtpd\nlocal unix - n n - - local\n\
             smtp unix - - n - - smtp\n{master_extra}"
        );
        std::fs::write(d.join("master.cf"), master).unwrap();
        let config = Config::load(d).unwrap();
        Setup { tmp, config }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes a queue file with `content` (LF lines) and returns its path.
    pub fn queue_file(&self, id: &str, sender: &str, rcpts: &[&str], content: &str) -> PathBuf {
        let path = self.dir().join("queue/active").join(id);
        let env = Envelope {
            sender: sender.into(),
            recipients: rcpts.iter().map(|r| Recipient::new(*r)).collect(),
            client: vec![
                ("client_name".into(), "localhost".into()),
                ("client_address".into(), "127.0.0.1".into()),
                ("helo_name".into(), "vm".into()),
                ("protocol_name".into(), "ESMTP".into()),
            ],
            ..Envelope::default()
        };
        let f = std::fs::File::create(&path).unwrap();
        let mut w = QueueWriter::new(f, &env).unwrap();
        w.content(content.as_bytes()).unwrap();
        w.finish().unwrap();
        path
    }

    pub fn request(
        &self,
        id: &str,
        sender: &str,
        rcpts: &[&str],
        content: &str,
    ) -> DeliveryRequest {
        let queue_file = self.queue_file(id, sender, rcpts, content);
        DeliveryRequest {
            agent: Agent::Local,
            transport: "local".into(),
            nexthop: "host.example".into(),
            queue_id: id.into(),
            queue_file,
            sender: sender.into(),
            arrival: 1_795_738_341,
            envid: None,
            recipients: rcpts
                .iter()
                .enumerate()
                .map(|(i, r)| RequestRecipient {
                    index: u32::try_from(i).unwrap(),
                    address: (*r).into(),
                    ..RequestRecipient::default()
                })
                .collect(),
            verify: false,
        }
    }

    /// Runs local(8) over `request` with a recording mailbox writer.
    pub fn deliver(&self, request: &DeliveryRequest) -> (Vec<LocalOutcome>, Recorder) {
        let settings = LocalSettings::from_config(&self.config, "local").unwrap();
        let resolver = Resolver::from_config(&self.config, tern_maps::no_warnings()).unwrap();
        let mut rec = Recorder::default();
        let warn = tern_maps::no_warnings();
        let maps = local::open_alias_maps(&settings, &warn).unwrap();
        let mut env = Env {
            settings: &settings,
            resolver: &resolver,
            mailboxes: &mut rec,
            process_env: vec![
                ("MAIL_CONFIG".into(), self.dir().display().to_string()),
                ("LANG".into(), "en_US.UTF-8".into()),
                ("SECRET".into(), "no".into()),
            ],
            default_privs: local::default_privs(&settings).unwrap(),
            now: Timestamp::utc(1_795_738_341),
            warn,
        };
        let out = local::deliver(request, &mut env, &maps);
        (out, rec)
    }
}

pub const MESSAGE: &str = "Subject: test\nFrom: s@example.org\n\nbody line\nFrom the body\n";

/// `NAME=value` lines of an `env` dump, as pairs sorted by name.
pub fn env_pairs(text: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    v.sort();
    v
}
