//! Shared by the local_e2e tests: an instance with a private mail spool, `hash:` aliases
//! built with Tern's postalias, throw-away users (tern-t-*), sending with smtplib, the
//! queue files and mail readers (s-nail, mutt, Python's email package).

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tern_queue::{QueueFile, QueueId, QueueLayout, QueueName};
use tern_testkit::tern::Tern;

#[path = "../deliver_util/mod.rs"]
mod deliver_util;

pub use deliver_util::{TestUser, check_binaries, delivery_lines, snail_headers, wait_for};

/// The domain of the instance (myhostname, in mydestination).
pub const DOMAIN: &str = "mx.example.test";

/// master.cf: the listener, qmgr, Debian's local line, and its smtp/relay lines (the
/// smtp client: a test that forwards mail off the machine points relayhost at a loopback
/// port).
pub fn master_cf(port: u16) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         qmgr unix n - n 300 1 qmgr\n\
         local unix - n n - - local\n\
         smtp unix - - y - - smtp\n\
         relay unix - - y - - smtp\n"
    )
}

/// An instance being set up: its directory, a spool with /var/mail's rights, a scratch
/// directory anyone may write.
pub struct Instance {
    pub t: Tern,
    pub spool: PathBuf,
    pub scratch: PathBuf,
}

impl Instance {
    /// `aliases` in aliases(5) form (built with Tern's postalias into `hash:`), `extra`
    /// appended to main.cf. Not started.
    pub fn new(aliases: &str, extra: &str) -> Instance {
        Instance::with_services(aliases, extra, "")
    }

    /// As [`Instance::new`], with `services` (master.cf lines) added.
    pub fn with_services(aliases: &str, extra: &str, services: &str) -> Instance {
        check_binaries();
        let t = Tern::configure("").expect("configure");
        let root = t.dir.path();
        let spool = root.join("mail");
        std::fs::create_dir(&spool).expect("spool");
        let mail = nix::unistd::Group::from_name("mail")
            .expect("getgrnam")
            .expect("group mail");
        nix::unistd::chown(&spool, Some(nix::unistd::Uid::from_raw(0)), Some(mail.gid))
            .expect("chown");
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o2775)).expect("chmod");
        let scratch = root.join("scratch");
        std::fs::create_dir(&scratch).expect("scratch");
        std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let conf = t.config_dir();
        let aliases_path = conf.join("aliases");
        std::fs::write(&aliases_path, format!("postmaster: root\n{aliases}")).expect("aliases");
        // The testkit's texthash: aliases line gives way to hash: (no override warning).
        let main: String = std::fs::read_to_string(conf.join("main.cf"))
            .expect("main.cf")
            .lines()
            .filter(|l| !l.starts_with("alias_maps ="))
            .flat_map(|l| [l, "\n"])
            .collect();
        let main = main
            + &format!(
                "alias_maps = hash:{a}\nalias_database = hash:{a}\n\
                 mail_spool_directory = {s}\n{extra}\n",
                a = aliases_path.display(),
                s = spool.display()
            );
        std::fs::write(conf.join("main.cf"), main).expect("main.cf");
        t.write_master_cf(&(master_cf(t.port) + services))
            .expect("master.cf");
        let postalias = tern_testkit::tern::postfix_binary()
            .expect("postfix binary")
            .with_file_name("postalias");
        let out = Command::new(&postalias)
            .arg("-c")
            .arg(&conf)
            .arg(format!("hash:{}", aliases_path.display()))
            .output()
            .expect("postalias");
        assert!(
            out.status.success(),
            "postalias: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Instance { t, spool, scratch }
    }

    pub fn launch(&mut self) {
        self.t.launch().expect("launch");
    }

    pub fn log(&self) -> String {
        self.t.log()
    }

    /// Waits for `needle` in the log `count` times (at most 30 s).
    pub fn wait(&self, needle: &str, count: usize) -> String {
        wait_for(|| self.t.log(), needle, count)
    }

    /// The spool mailbox of `user`.
    pub fn mbox(&self, user: &str) -> PathBuf {
        self.spool.join(user)
    }
}

/// A user's address at the instance's domain.
pub fn at(local: &str) -> String {
    format!("{local}@{DOMAIN}")
}

/// Sends one message with smtplib from `from` to `to`, with `headers` (CRLF-terminated
/// lines) before a Subject; returns the queue id from the 250 reply.
pub fn send(port: u16, from: &str, to: &str, headers: &str, subject: &str) -> String {
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
s.mail({from:?})
code, text = s.rcpt({to:?})
assert code == 250, (code, text)
body = {headers:?}.encode() + b"Subject: {subject}\r\nFrom: <{from}>\r\n\r\nhello\r\n"
code, text = s.data(body)
assert code == 250, text
print(text.decode().rsplit(" ", 1)[1])
s.quit()
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The reply to `RCPT TO:<to>` (code and text) after a MAIL FROM.
pub fn rcpt_reply(port: u16, to: &str) -> (u16, String) {
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
s.mail("sender@example.org")
code, text = s.rcpt({to:?})
print(code, text.decode())
s.quit()
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (code, rest) = text.split_once(' ').expect("code");
    (code.parse().expect("code"), rest.to_owned())
}

/// The id after `needle` in the log (`status=sent (forwarded as NEWID)`).
pub fn id_after(log: &str, needle: &str) -> String {
    let at = log
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in\n{log}"));
    log[at + needle.len()..]
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Where the queue file of `id` is now (waits up to 10 s for it to appear in one of
/// `queues`), and the file.
pub fn queue_file(t: &Tern, id: &str, queues: &[QueueName]) -> (QueueName, PathBuf, QueueFile) {
    let layout = QueueLayout::new(t.queue_dir());
    let qid = QueueId::parse(id).expect("id");
    let start = Instant::now();
    loop {
        for &q in queues {
            let path = layout.path(q, &qid);
            if let Ok(qf) = QueueFile::open(&path) {
                return (q, path, qf);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{id} not in {queues:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The message content of a queue file.
pub fn content(path: &Path, qf: &QueueFile) -> String {
    let mut out = Vec::new();
    let mut f = std::fs::File::open(path).expect("open");
    qf.copy_content(&mut f, &mut out).expect("copy");
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `script` with Python 3, `input` on its stdin; its standard output.
pub fn python(script: &str, input: &[u8]) -> String {
    tern_testkit::support::python_with_input(script, input)
}

/// The messages of an mbox as Python's mailbox module reads them: for each, the facts
/// the tests check (one `key value` per line, messages separated by `--`), including
/// a non-delivery report's parts.
pub fn mbox_facts(mbox: &Path) -> String {
    let script = format!(
        r#"
import mailbox
from email import policy
for m in mailbox.mbox({path:?}, factory=None):
    print("--")
    for k in ("From", "To", "Subject", "Delivered-To", "X-Original-To", "Return-Path"):
        for v in m.get_all(k) or []:
            print(k, v)
    print("type", m.get_content_type(), m.get_param("report-type"))
    if m.get_content_type() == "multipart/report":
        parts = m.get_payload()
        print("parts", [p.get_content_type() for p in parts])
        for block in parts[1].get_payload():
            for k in ("Reporting-MTA", "Final-Recipient", "Original-Recipient", "Action", "Status", "Diagnostic-Code"):
                if block[k] is not None:
                    print(k, block[k])
        print("text", parts[0].get_payload(decode=True).decode(errors="replace").replace("\n", "|"))
"#,
        path = mbox.display().to_string()
    );
    python(&script, b"")
}

/// mutt's view of message 1 of a folder (mutt needs a terminal: script(1)); mutt pipes
/// the message to a file and quits.
pub fn mutt_first_message(folder: &Path, scratch: &Path) -> String {
    let out = scratch.join("mutt-out");
    let _ = std::fs::remove_file(&out);
    let cmd = format!(
        "mutt -n -F /dev/null -R -f {} -e 'set wait_key=no' -e 'push q' -e 'push \"|cat > {}\\n\"'",
        folder.display(),
        out.display()
    );
    let status = Command::new("timeout")
        .args(["30", "script", "-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("mutt (apt-get install mutt) and script (bsdutils)");
    std::fs::read_to_string(&out).unwrap_or_else(|e| {
        panic!(
            "mutt wrote no message ({e}); {}\n{}",
            status.status,
            String::from_utf8_lossy(&status.stdout)
        )
    })
}

/// `s-nail -e -f FILE`: whether s-nail sees mail there.
pub fn snail_has_mail(mbox: &Path) -> bool {
    Command::new("s-nail")
        .args(["-e", "-f"])
        .arg(mbox)
        .env("MAILRC", "/dev/null")
        .status()
        .expect("s-nail")
        .success()
}
