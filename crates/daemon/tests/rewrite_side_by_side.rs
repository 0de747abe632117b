//! cleanup's address rewriting side by side with Debian's Postfix 3.7: the same main.cf
//! and map files, the same SMTP transactions. Postfix holds each message
//! (`smtpd_end_of_data_restrictions = check_client_access static:HOLD`) and `postcat -q`
//! shows its envelope sender, recipients and headers; Tern's cleanup (the code smtpd
//! runs) writes a queue file that tern_queue::QueueFile reads. RCPT replies for
//! relocated_maps and virtual alias domains are compared with Tern's recipient policy.
//!
//! Needs root and Debian's postfix; fails, never skips, without them.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tern_config::config::Config;
use tern_daemon::cleanup::{ClientInfo, Message};
use tern_daemon::peername::NameStatus;
use tern_daemon::relay::{RelayPolicy, Restrictions};
use tern_queue::{IdForm, QueueFile, QueueLayout};
use tern_rewrite::{CleanupRewriter, Resolver};
use tern_smtp::data::RecordKind;
use tern_smtp::params::{MailFrom, RcptTo};
use tern_testkit::postfix::PostfixInstance;

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

/// What both sides queued: sender, recipients (with DSN ORCPT), headers compared.
#[derive(Debug, PartialEq, Eq)]
struct Queued {
    sender: String,
    recipients: Vec<String>,
    headers: Vec<String>,
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

/// Sends `case` to Postfix from `from`; returns the RCPT replies and the queue id.
fn send_postfix(pf: &PostfixInstance, from: Ipv4Addr, case: &Case) -> (Vec<String>, String) {
    let stream = tern_testkit::postfix::connect_from(from, pf.addr()).expect("connect");
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
    let id = end.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(end.starts_with("250"), "{}: {end}", case.name);
    say("QUIT", &mut r);
    (rcpts, id)
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
        } else if let Some(r) = line.strip_prefix("recipient: ") {
            q.recipients
                .push(format!("{r} orcpt={}", std::mem::take(&mut orcpt)));
        }
    }
    q.headers = comparable(&q.headers);
    q
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

/// Runs `case` through Tern's cleanup with `config`; returns what it queued.
fn tern_cleanup(
    config: &Config,
    policy: &Restrictions,
    rewriter: &Arc<CleanupRewriter>,
    queue: &Path,
    local: bool,
    case: &Case,
) -> (Vec<String>, Queued) {
    let layout = QueueLayout::new(queue);
    layout.create(None).expect("queue dirs");
    let settings = tern_message::cleanup::Settings {
        myhostname: config
            .expanded("myhostname")
            .expect("x")
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut m = Message::create_with(&layout, IdForm::Short, &settings, Some(rewriter.clone()))
        .expect("create");
    let client_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut replies = Vec::new();
    for a in case.rcpts {
        if let Some(r) = policy.check_recipient(client_ip, a, false) {
            replies.push(r.to_string());
        } else {
            replies.push("250 2.1.5 Ok".to_owned());
            m.add_recipient(&RcptTo {
                address: (*a).to_owned(),
                raw: format!("<{a}>"),
                notify: None,
                orcpt: None,
            });
        }
    }
    let sender = MailFrom {
        address: case.sender.to_owned(),
        raw: format!("<{}>", case.sender),
        size: None,
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
        auth: None,
    };
    let client = ClientInfo {
        name: "localhost".into(),
        reverse_name: "localhost".into(),
        name_status: NameStatus::Ok,
        reverse_name_status: NameStatus::Ok,
        addr: "127.0.0.1".into(),
        ip: client_ip,
        port: 1025,
        helo: Some("client.test".into()),
        protocol: "ESMTP".into(),
        local,
    };
    let rhrd = config
        .expanded("remote_header_rewrite_domain")
        .expect("x")
        .unwrap_or_default();
    m.start(&sender, &client, "Postfix", &rhrd).expect("start");
    for line in content(case).split_terminator("\r\n") {
        m.record(line.as_bytes(), RecordKind::Norm).expect("record");
    }
    let (pending, _) = m.finish().expect("finish");
    let path = pending.target().to_owned();
    pending.commit().expect("commit");
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
    let q = Queued {
        sender: qf.envelope.sender.clone(),
        recipients: qf
            .envelope
            .recipients
            .iter()
            .map(|r| {
                format!(
                    "{} orcpt={}",
                    r.address,
                    r.orcpt.clone().unwrap_or_default()
                )
            })
            .collect(),
        headers: comparable(&headers),
    };
    (replies, q)
}

fn run(extra: &str, from: Ipv4Addr, local: bool, cases: &[Case], rcpt_checks: &[&str]) {
    let maps = tempfile::Builder::new()
        .prefix("d2maps.")
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
    let pf = PostfixInstance::start(&main_cf(maps.path(), extra)).expect("postfix");
    let mut config = Config::load(pf.dir()).expect("config");
    config.set("alias_maps", "");
    let warn = tern_maps::no_warnings();
    let resolver = Arc::new(Resolver::from_config(&config, warn.clone()).expect("resolver"));
    let rewriter =
        Arc::new(CleanupRewriter::from_config(&config, resolver, warn).expect("rewriter"));
    let policy = Restrictions::from_config(&config, None).expect("policy");
    let queue = tempfile::tempdir().expect("queue");
    let mut failures = Vec::new();
    for case in cases {
        let (pf_replies, id) = send_postfix(&pf, from, case);
        let want = postcat(&pf, &id);
        let (tern_replies, got) =
            tern_cleanup(&config, &policy, &rewriter, queue.path(), local, case);
        let pf_codes: Vec<&str> = pf_replies.iter().map(|r| &r[..3]).collect();
        let tern_codes: Vec<&str> = tern_replies.iter().map(|r| &r[..3]).collect();
        if want != got || pf_codes != tern_codes {
            failures.push(format!(
                "{}:\n postfix {pf_replies:?}\n  {want:#?}\n tern {tern_replies:?}\n  {got:#?}",
                case.name
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
        let _ = case.name;
        let s = tern_testkit::postfix::connect_from(from, pf.addr()).expect("connect");
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
        let pf_reply = reply(&mut r).trim().to_owned();
        let _ = w.write_all(b"QUIT\r\n");
        let tern_reply = policy
            .check_recipient(IpAddr::V4(Ipv4Addr::LOCALHOST), rcpt, false)
            .map_or_else(|| "250 2.1.5 Ok".to_owned(), |r| r.to_string());
        if pf_reply != tern_reply.trim() {
            failures.push(format!(
                "RCPT {rcpt}: postfix {pf_reply:?}, tern {tern_reply:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn local_client_rewriting_matches_postfix() {
    run("", Ipv4Addr::LOCALHOST, true, LOCAL_CASES, RCPT_REPLIES);
}

#[test]
fn remote_client_rewriting_matches_postfix() {
    run(
        "local_header_rewrite_clients =\n\
         remote_header_rewrite_domain = domain.invalid\n\
         canonical_classes = envelope_recipient, header_recipient\n",
        Ipv4Addr::LOCALHOST,
        false,
        REMOTE_CASES,
        &[],
    );
}
