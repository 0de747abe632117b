//! cleanup's address rewriting side by side with Debian's Postfix 3.7, both as real
//! daemons: the same main.cf lines and map files, the same SMTP transactions sent to each.
//! Postfix holds each message (`smtpd_end_of_data_restrictions = check_client_access
//! static:HOLD`) and `postcat -q` shows its envelope sender, recipients (with their
//! original recipient and DSN ORCPT) and headers; Tern's daemon (started by testkit's
//! [`Tern`], with no queue manager; the same HOLD puts each message in `hold/`) writes a
//! queue file that tern_queue::QueueFile reads. RCPT and end-of-data replies are compared,
//! and the cleanup warnings of a refused message.
//!
//! Needs root, Debian's postfix and `target/<profile>/postfix` (`cargo build -p
//! tern-commands --bin postfix`); fails, never skips, without them.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tern_queue::QueueFile;
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::tern::Tern;

/// One SMTP transaction: sender, recipients, header lines (a body line follows).
struct Case {
    name: &'static str,
    sender: &'static str,
    rcpts: &'static [&'static str],
    headers: &'static [&'static str],
}

const MAPS: &[(&str, &str)] = &[
    (
        "canonical",
        "alice@example.test Alice.Smith@example.test\n\
         @oldco.test @newco.test\n\
         multi@example.test m1@example.test, m2@example.test\n",
    ),
    (
        "sender_canonical",
        "sendonly@example.test s.only@example.test\n",
    ),
    (
        "recipient_canonical",
        "rcptonly@example.test r.only@example.test\n",
    ),
    (
        "virtual",
        "team@valias.test a@remote.test, b@remote.test, team2@valias.test\n\
         team2@valias.test c@remote.test, a@remote.test\n\
         self@valias.test self@valias.test, other@remote.test\n\
         @catch.test @elsewhere.test\n\
         bare@valias.test bob\n\
         info@example.test x@remote.test\n",
    ),
    (
        "relocated",
        "gone@example.test gone@new.test\n@moved.test new address unknown\n",
    ),
];

fn main_cf(maps: &Path, extra: &str) -> String {
    let m = maps.display();
    format!(
        "myorigin = $mydomain\n\
         mydestination = $myhostname, localhost, $mydomain\n\
         local_recipient_maps =\n\
         recipient_delimiter = +\n\
         smtpd_end_of_data_restrictions = check_client_access static:HOLD\n\
         canonical_maps = texthash:{m}/canonical\n\
         sender_canonical_maps = texthash:{m}/sender_canonical\n\
         recipient_canonical_maps = texthash:{m}/recipient_canonical\n\
         virtual_alias_domains = valias.test\n\
         virtual_alias_maps = texthash:{m}/virtual\n\
         relocated_maps = texthash:{m}/relocated\n\
         masquerade_domains = !keep.example.test, example.test\n\
         masquerade_exceptions = root\n\
         {extra}"
    )
}

const LOCAL_CASES: &[Case] = &[
    Case {
        name: "canonical sender and header From",
        sender: "alice",
        rcpts: &["bob@example.test"],
        headers: &["From: alice", "To: bob"],
    },
    Case {
        name: "canonical with an extension in a local domain",
        sender: "alice+foo@example.test",
        rcpts: &["alice+bar@example.test"],
        headers: &["From: Alice <alice+foo@example.test>"],
    },
    Case {
        name: "masquerading of sender and headers, not envelope recipients",
        sender: "u@host.example.test",
        rcpts: &["v@host.example.test"],
        headers: &[
            "From: u@host.example.test",
            "To: v@host.example.test",
            "Cc: w@a.b.example.test",
        ],
    },
    Case {
        name: "masquerade exceptions and ! domains",
        sender: "root@host.example.test",
        rcpts: &["x@a.keep.example.test"],
        headers: &[
            "From: root@host.example.test",
            "To: x@a.keep.example.test, y@keep.example.test",
        ],
    },
    Case {
        name: "canonical @domain with extensions",
        sender: "someone+tag@oldco.test",
        rcpts: &["who+ext@oldco.test"],
        headers: &["Reply-To: someone+tag@oldco.test", "To: who@oldco.test"],
    },
    Case {
        name: "virtual 1:n with nesting and duplicates",
        sender: "s@remote.test",
        rcpts: &["team@valias.test"],
        headers: &["To: team@valias.test"],
    },
    Case {
        name: "virtual self-mapping",
        sender: "s@remote.test",
        rcpts: &["self@valias.test"],
        headers: &[],
    },
    Case {
        name: "virtual catch-all with an extension",
        sender: "s@remote.test",
        rcpts: &["u+x@catch.test"],
        headers: &[],
    },
    Case {
        name: "virtual to a bare name",
        sender: "s@remote.test",
        rcpts: &["bare@valias.test", "info@example.test"],
        headers: &[],
    },
    Case {
        name: "sender- and recipient-only canonical maps",
        sender: "sendonly@example.test",
        rcpts: &["rcptonly@example.test", "sendonly@example.test"],
        headers: &[
            "From: sendonly",
            "Sender: rcptonly",
            "To: rcptonly, sendonly",
        ],
    },
    Case {
        name: "multi-valued canonical entry",
        sender: "s@remote.test",
        rcpts: &["multi@example.test"],
        headers: &["To: multi"],
    },
    Case {
        name: "MAILER-DAEMON sender is the null sender",
        sender: "MAILER-DAEMON@example.test",
        rcpts: &["bob@example.test"],
        headers: &[],
    },
    Case {
        name: "the same recipient twice, and one reached two ways",
        sender: "s@remote.test",
        rcpts: &[
            "x@remote.test",
            "x@remote.test",
            "a@remote.test",
            "team@valias.test",
        ],
        headers: &[],
    },
    Case {
        name: "unqualified addresses",
        sender: "carol",
        rcpts: &["bob"],
        headers: &[
            "From: carol (Carol)",
            "To: Bob Smith <bob>, dave",
            "Errors-To: carol",
            "Resent-From: erin",
        ],
    },
    Case {
        name: "header-only addresses and Bcc",
        sender: "s@remote.test",
        rcpts: &["bob@example.test"],
        headers: &[
            "From: s@remote.test",
            "Cc: alice, someone@oldco.test",
            "Bcc: alice",
        ],
    },
];

const REMOTE_CASES: &[Case] = &[
    Case {
        name: "remote client: headers completed with remote_header_rewrite_domain",
        sender: "alice@example.test",
        rcpts: &["bob@example.test"],
        headers: &["From: alice", "To: bob, who@oldco.test"],
    },
    Case {
        name: "remote client: canonical classes",
        sender: "alice@example.test",
        rcpts: &["alice@example.test"],
        headers: &["From: alice@example.test", "To: alice@example.test"],
    },
];

/// RCPT addresses whose replies are compared.
const RCPT_REPLIES: &[&str] = &[
    "gone@example.test",
    "anyone@moved.test",
    "nobody@valias.test",
    "team@valias.test",
    "gone+x@example.test",
];

/// What a side queued: sender, recipients (with original recipient and DSN ORCPT),
/// headers.
#[derive(Debug, PartialEq, Eq)]
struct Queued {
    sender: String,
    recipients: Vec<String>,
    headers: Vec<String>,
}

/// The replies to one transaction.
#[derive(Debug)]
struct Sent {
    rcpts: Vec<String>,
    /// The reply to the end of the content.
    end: String,
    /// The queue id of a 250 reply.
    id: Option<String>,
}

fn content(case: &Case) -> String {
    let mut c = String::new();
    for h in case.headers {
        c.push_str(h);
        c.push_str("\r\n");
    }
    c.push_str("Subject: test\r\n\r\nbody\r\n");
    c
}

fn reply(r: &mut impl BufRead) -> String {
    tern_testkit::smtp::read_reply(r).expect("reply")
}

/// Sends `case` to the smtpd at `to` from the address `from`.
fn send(to: SocketAddr, from: Ipv4Addr, case: &Case) -> Sent {
    let stream = tern_testkit::postfix::connect_from(from, to).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    reply(&mut r);
    let mut say = |line: &str, r: &mut BufReader<TcpStream>| {
        w.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        reply(r)
    };
    say("EHLO client.test", &mut r);
    let m = say(&format!("MAIL FROM:<{}>", case.sender), &mut r);
    assert!(m.starts_with("250"), "{}: {m}", case.name);
    let rcpts: Vec<String> = case
        .rcpts
        .iter()
        .map(|a| say(&format!("RCPT TO:<{a}>"), &mut r))
        .collect();
    let d = say("DATA", &mut r);
    assert!(d.starts_with("354"), "{}: {d}", case.name);
    let end = say(&format!("{}.", content(case)), &mut r);
    let id = end
        .starts_with("250")
        .then(|| end.trim().rsplit(' ').next().unwrap_or_default().to_owned());
    say("QUIT", &mut r);
    Sent {
        rcpts,
        end: end.trim().to_owned(),
        id,
    }
}

/// Reads a held message with postcat.
fn postcat(pf: &PostfixInstance, id: &str) -> Queued {
    let dir = pf.dir().display().to_string();
    let mut text = String::new();
    for _ in 0..100 {
        let out = Command::new("/usr/sbin/postcat")
            .args(["-c", &dir, "-q", id])
            .output()
            .expect("postcat");
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("MESSAGE FILE END") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut q = Queued {
        sender: String::new(),
        recipients: Vec::new(),
        headers: Vec::new(),
    };
    let mut in_content = false;
    let mut in_headers = true;
    let mut orcpt = String::new();
    let mut original = String::new();
    for line in text.lines() {
        if line.starts_with("*** MESSAGE CONTENTS") {
            in_content = true;
            continue;
        }
        if line.starts_with("*** ") {
            in_content = false;
            continue;
        }
        if in_content {
            if line.is_empty() {
                in_headers = false;
            }
            if in_headers {
                q.headers.push(line.to_owned());
            }
        } else if let Some(s) = line.strip_prefix("sender: ") {
            s.clone_into(&mut q.sender);
        } else if line == "sender: " || line == "sender:" {
            q.sender.clear();
        } else if let Some(o) = line.strip_prefix("named_attribute: dsn_orig_rcpt=") {
            o.clone_into(&mut orcpt);
        } else if let Some(o) = line.strip_prefix("original_recipient: ") {
            o.clone_into(&mut original);
        } else if let Some(r) = line.strip_prefix("recipient: ") {
            q.recipients.push(format!(
                "{r} original={} orcpt={}",
                std::mem::take(&mut original),
                std::mem::take(&mut orcpt)
            ));
        }
    }
    q.headers = comparable(&q.headers);
    q
}

/// Reads the queue file Tern's daemon committed to `hold/` (the HOLD of main_cf()).
fn tern_queued(t: &Tern, id: &str) -> Queued {
    let path = t.queue_dir().join("hold").join(id);
    let qf = QueueFile::open(&path).expect("queue file");
    let mut body = Vec::new();
    let mut f = std::fs::File::open(&path).expect("open");
    qf.copy_content(&mut f, &mut body).expect("content");
    let text = String::from_utf8_lossy(&body).into_owned();
    let headers: Vec<String> = text
        .lines()
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Queued {
        sender: qf.envelope.sender.clone(),
        recipients: qf
            .envelope
            .recipients
            .iter()
            .map(|r| {
                format!(
                    "{} original={} orcpt={}",
                    r.address,
                    r.original,
                    r.orcpt.clone().unwrap_or_default()
                )
            })
            .collect(),
        headers: comparable(&headers),
    }
}

/// The header lines minus those either side stamps itself (Received:, Message-Id:,
/// Date:), continuation lines joined to their field.
fn comparable(lines: &[String]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push('\n');
                last.push_str(l);
            }
        } else {
            fields.push(l.clone());
        }
    }
    fields
        .into_iter()
        .filter(|f| {
            let lower = f.to_ascii_lowercase();
            ![
                "received:",
                "message-id:",
                "date:",
                "resent-message-id:",
                "resent-date:",
            ]
            .iter()
            .any(|p| lower.starts_with(p))
        })
        .collect()
}

/// cleanup's warnings in a mail log, the queue ids in them replaced by `QUEUEID`.
fn cleanup_warnings(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("/cleanup[") || l.contains("/cleanup:"))
        .filter_map(|l| l.split_once(" warning: ").map(|(_, w)| w))
        .map(|w| match w.split_once(": ") {
            Some((id, rest)) if id.chars().all(|c| c.is_ascii_alphanumeric()) => {
                format!("QUEUEID: {rest}")
            }
            _ => w.to_owned(),
        })
        .collect()
}

/// Waits (at most 10 s) until `log()` holds `n` cleanup warnings; returns them.
fn warnings_when(log: impl Fn() -> String, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let w = cleanup_warnings(&log());
        if w.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return w;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The two instances of one configuration.
struct Pair {
    pf: PostfixInstance,
    tern: Tern,
    _maps: tempfile::TempDir,
}

fn start(extra: &str) -> Pair {
    let maps = tempfile::Builder::new()
        .prefix("e3maps.")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(
        maps.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    for (name, text) in MAPS {
        std::fs::write(maps.path().join(name), text).expect("map");
    }
    let main = main_cf(maps.path(), extra);
    let pf = PostfixInstance::start(&main).expect("postfix");
    let tern = Tern::start(&main).expect("tern");
    Pair {
        pf,
        tern,
        _maps: maps,
    }
}

fn run(extra: &str, from: Ipv4Addr, cases: &[Case], rcpt_checks: &[&str]) {
    let p = start(extra);
    let tern_addr: SocketAddr = p.tern.addr().parse().expect("address");
    let mut failures = Vec::new();
    for case in cases {
        let pf_sent = send(p.pf.addr(), from, case);
        let tern_sent = send(tern_addr, from, case);
        let (Some(pf_id), Some(tern_id)) = (&pf_sent.id, &tern_sent.id) else {
            failures.push(format!(
                "{}: not queued: postfix {pf_sent:?}, tern {tern_sent:?}",
                case.name
            ));
            continue;
        };
        let want = postcat(&p.pf, pf_id);
        let got = tern_queued(&p.tern, tern_id);
        // postcat shows an original_recipient record before every recipient.
        assert!(
            want.recipients.iter().all(|r| !r.contains(" original= ")),
            "{}: {want:?}",
            case.name
        );
        let codes = |s: &Sent| {
            s.rcpts
                .iter()
                .map(|r| r[..3].to_owned())
                .collect::<Vec<_>>()
        };
        if want != got || codes(&pf_sent) != codes(&tern_sent) {
            failures.push(format!(
                "{}:\n postfix {:?}\n  {want:#?}\n tern {:?}\n  {got:#?}",
                case.name, pf_sent.rcpts, tern_sent.rcpts
            ));
        }
    }
    for rcpt in rcpt_checks {
        let case = Case {
            name: "rcpt",
            sender: "s@remote.test",
            rcpts: &[],
            headers: &[],
        };
        let mut replies = Vec::new();
        for to in [p.pf.addr(), tern_addr] {
            let s = tern_testkit::postfix::connect_from(from, to).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let mut w = s.try_clone().expect("clone");
            let mut r = BufReader::new(s);
            reply(&mut r);
            for line in [
                "EHLO client.test".to_owned(),
                format!("MAIL FROM:<{}>", case.sender),
            ] {
                w.write_all(format!("{line}\r\n").as_bytes())
                    .expect("write");
                reply(&mut r);
            }
            w.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
                .expect("write");
            replies.push(reply(&mut r).trim().to_owned());
            let _ = w.write_all(b"QUIT\r\n");
        }
        if replies[0] != replies[1] {
            failures.push(format!(
                "RCPT {rcpt}: postfix {:?}, tern {:?}",
                replies[0], replies[1]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn local_client_rewriting_matches_postfix() {
    run("", Ipv4Addr::LOCALHOST, LOCAL_CASES, RCPT_REPLIES);
}

#[test]
fn remote_client_rewriting_matches_postfix() {
    run(
        "local_header_rewrite_clients =\n\
         remote_header_rewrite_domain = domain.invalid\n\
         canonical_classes = envelope_recipient, header_recipient\n",
        Ipv4Addr::LOCALHOST,
        REMOTE_CASES,
        &[],
    );
}

/// receive_override_options = no_address_mappings: trivial-rewrite only, no canonical
/// maps, masquerading or virtual aliasing.
#[test]
fn no_address_mappings_matches_postfix() {
    run(
        "receive_override_options = no_address_mappings\n",
        Ipv4Addr::LOCALHOST,
        &LOCAL_CASES[..6],
        &[],
    );
}

/// A virtual alias expansion over virtual_alias_expansion_limit: the message is refused
/// at the end of the content with Postfix's reply, and cleanup's warning is the same.
#[test]
fn expansion_limit_matches_postfix() {
    let p = start("virtual_alias_expansion_limit = 2\n");
    let tern_addr: SocketAddr = p.tern.addr().parse().expect("address");
    let case = Case {
        name: "over the expansion limit",
        sender: "s@remote.test",
        rcpts: &["team@valias.test"],
        headers: &[],
    };
    let pf_sent = send(p.pf.addr(), Ipv4Addr::LOCALHOST, &case);
    let tern_sent = send(tern_addr, Ipv4Addr::LOCALHOST, &case);
    assert_eq!(
        pf_sent.end, "451 4.6.0 Alias expansion error",
        "{pf_sent:?}"
    );
    assert_eq!(tern_sent.end, pf_sent.end, "{tern_sent:?}");
    assert_eq!(tern_sent.rcpts, pf_sent.rcpts);
    let want = warnings_when(|| p.pf.maillog(), 1);
    let got = warnings_when(|| p.tern.log(), 1);
    assert!(!want.is_empty(), "postfix logged no cleanup warning");
    assert_eq!(got, want);
}
