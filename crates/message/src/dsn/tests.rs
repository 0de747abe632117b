//! Table-driven tests of [`super::compose`]: the edge cases around the shapes the golden test
//! (tests/dsn_golden.rs) checked against Debian's Postfix.

use super::*;

const HOST: &str = "mx.example.test";
const NOW: i64 = 1_795_738_546; // Fri, 27 Nov 2026 00:15:46 UTC
const ARRIVAL: i64 = NOW - 11;

fn rcpt(addr: &str, notify: u8) -> RecipientReport {
    RecipientReport {
        address: addr.to_owned(),
        orig_addr: addr.to_owned(),
        dsn_orcpt: format!("rfc822;{addr}"),
        notify,
        status: "5.1.1".to_owned(),
        action: Action::Failed,
        reason: format!("unknown user: \"{}\"", addr.split('@').next().unwrap_or("")),
        diagnostic: None,
        remote_mta: None,
    }
}

const CONTENT: &[u8] = b"Received: from client.example\n\tby mx.example.test\nSubject: hi\n\
                         X-Folded: a\n b\n\nbody line\nSecond: not a header\n";

struct Run {
    kind: Kind,
    audience: Audience,
    sender: &'static str,
    ret: Ret,
    smtputf8: bool,
    encoding: BodyEncoding,
    rcpts: Vec<RecipientReport>,
    content: Option<&'static [u8]>,
    size: u64,
    reporter: Reporter,
}

impl Run {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            audience: Audience::Sender,
            sender: "sender@example.org",
            ret: Ret::Full,
            smtputf8: false,
            encoding: BodyEncoding::Unknown,
            rcpts: vec![rcpt("nouser@mx.example.test", 0)],
            content: Some(CONTENT),
            size: 200,
            reporter: Reporter::new(HOST),
        }
    }

    fn compose(&self) -> Option<(String, Composed)> {
        let addressee = Addressee {
            kind: self.kind,
            audience: self.audience,
            envelope_sender: String::new(),
            recipient: if self.sender.is_empty() {
                "postmaster".into()
            } else {
                self.sender.into()
            },
            ret: self.ret,
        };
        let original = Original {
            queue_id: "B886798E820",
            sender: self.sender,
            arrival: ARRIVAL,
            envid: None,
            encoding: self.encoding,
            smtputf8: self.smtputf8,
            size: self.size,
        };
        let zone = |t: i64| Timestamp::utc(t);
        let new = NewMessage {
            queue_id: "DCA4798E449",
            now: NOW,
            zone: &zone,
        };
        let mut content = self.content;
        let reader = content.as_mut().map(|c| c as &mut dyn BufRead);
        compose_to_vec(
            &addressee,
            &original,
            &self.rcpts,
            reader,
            &self.reporter,
            &new,
        )
        .unwrap()
        .map(|(v, c)| (String::from_utf8_lossy(&v).into_owned(), c))
    }
}

/// (name, run, lines that must appear, lines that must not appear)
type Case = (&'static str, Run, Vec<&'static str>, Vec<&'static str>);

fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();

    v.push((
        "failure to sender, full",
        Run::new(Kind::Failure),
        vec![
            "Received: by mx.example.test (Postfix)",
            "\tid DCA4798E449; Fri, 27 Nov 2026 00:15:46 +0000 (UTC)",
            "Date: Fri, 27 Nov 2026 00:15:46 +0000 (UTC)",
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>",
            "Subject: Undelivered Mail Returned to Sender",
            "To: sender@example.org",
            "Auto-Submitted: auto-replied",
            "\tboundary=\"B886798E820.1795738546/mx.example.test\"",
            "Message-Id: <20261127001546.DCA4798E449@mx.example.test>",
            "This is the mail system at host mx.example.test.",
            "<nouser@mx.example.test>: unknown user: \"nouser\"",
            "X-Postfix-Sender: rfc822; sender@example.org",
            "Arrival-Date: Fri, 27 Nov 2026 00:15:35 +0000 (UTC)",
            "Original-Recipient: rfc822;nouser@mx.example.test",
            "Diagnostic-Code: X-Postfix; unknown user: \"nouser\"",
            "Content-Description: Undelivered Message",
            "Content-Type: message/rfc822",
            "Return-Path: <sender@example.org>",
            "body line",
            "Second: not a header",
            "--B886798E820.1795738546/mx.example.test--",
        ],
        vec!["Will-Retry-Until:", "Original-Envelope-Id:"],
    ));

    let mut r = Run::new(Kind::Failure);
    r.ret = Ret::Hdrs;
    v.push((
        "RET=HDRS stops at the first non-header line",
        r,
        vec![
            "Content-Description: Undelivered Message Headers",
            "Content-Type: text/rfc822-headers",
            "X-Folded: a",
            " b",
        ],
        vec!["body line", "Second: not a header"],
    ));

    let mut r = Run::new(Kind::Failure);
    r.reporter.bounce_size_limit = 100;
    v.push((
        "bounce_size_limit cuts to headers",
        r,
        vec!["Content-Description: Undelivered Message Headers"],
        vec!["body line"],
    ));

    let mut r = Run::new(Kind::Failure);
    r.reporter.bounce_size_limit = 0;
    r.size = 10_000_000;
    v.push((
        "bounce_size_limit 0: no limit",
        r,
        vec!["body line"],
        vec![],
    ));

    let mut r = Run::new(Kind::Failure);
    r.sender = "";
    r.audience = Audience::Postmaster;
    v.push((
        "null sender: double bounce to postmaster",
        r,
        vec![
            "Subject: Postmaster Copy: Undelivered Mail",
            "To: postmaster@mx.example.test",
            "Auto-Submitted: auto-generated",
            "X-Postfix-Sender: rfc822; MAILER-DAEMON@mx.example.test",
            "Return-Path: <MAILER-DAEMON@mx.example.test>",
        ],
        vec!["This is the mail system at host mx.example.test."],
    ));

    let mut r = Run::new(Kind::Failure);
    r.rcpts = vec![
        rcpt("a@mx.example.test", notify::FAILURE),
        rcpt("b@mx.example.test", notify::SUCCESS),
        rcpt("c@mx.example.test", 0),
    ];
    r.rcpts[2].orig_addr = "alias@mx.example.test".into();
    r.rcpts[2].dsn_orcpt = String::new();
    v.push((
        "several recipients, NOTIFY filter, expanded from",
        r,
        vec![
            "<a@mx.example.test>: unknown user: \"a\"",
            "<c@mx.example.test> (expanded from <alias@mx.example.test>): unknown user: \"c\"",
            "Final-Recipient: rfc822; c@mx.example.test",
            "Original-Recipient: rfc822; alias@mx.example.test",
        ],
        vec!["<b@mx.example.test>: unknown user: \"b\""],
    ));

    let mut r = Run::new(Kind::Failure);
    r.rcpts[0].diagnostic = Some((
        "smtp".into(),
        "550 5.1.1 <nouser@mx.example.test>: Recipient address rejected: User unknown in \
         local recipient table"
            .into(),
    ));
    r.rcpts[0].remote_mta = Some(("dns".into(), "mx.example.com".into()));
    r.rcpts[0].reason = "host mx.example.com[192.0.2.1] said: 550 5.1.1 \
                         <nouser@mx.example.test>: Recipient address rejected: User unknown in \
                         local recipient table (in reply to RCPT TO command)"
        .into();
    r.rcpts[0].action = Action::Delayed; // a failure notice always says failed
    v.push((
        "remote MTA, smtp diagnostic, wrapped",
        r,
        vec![
            "<nouser@mx.example.test>: host mx.example.com[192.0.2.1] said: 550 5.1.1",
            "    <nouser@mx.example.test>: Recipient address rejected: User unknown in local",
            "    recipient table (in reply to RCPT TO command)",
            "Remote-MTA: dns; mx.example.com",
            "Diagnostic-Code: smtp; 550 5.1.1 <nouser@mx.example.test>: Recipient address",
            "    rejected: User unknown in local recipient table",
            "Action: failed",
        ],
        vec![],
    ));

    let mut r = Run::new(Kind::Delay);
    r.ret = Ret::Hdrs;
    r.rcpts[0].action = Action::Delayed;
    r.rcpts[0].status = "4.4.1".into();
    r.reporter.delay_warning_time = 4 * 3600;
    v.push((
        "delay warning",
        r,
        vec![
            "Subject: Delayed Mail (still being retried)",
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
            "Your message could not be delivered for more than 4 hour(s).",
            "It will be retried until it is 5 day(s) old.",
            "Action: delayed",
            "Status: 4.4.1",
            "Will-Retry-Until: Wed,  2 Dec 2026 00:15:35 +0000 (UTC)",
            "Content-Description: Undelivered Message Headers",
        ],
        vec![],
    ));

    let mut r = Run::new(Kind::Success);
    r.ret = Ret::Hdrs;
    r.rcpts[0].action = Action::Delivered;
    r.rcpts[0].status = "2.0.0".into();
    r.rcpts[0].reason = "delivered to mailbox".into();
    v.push((
        "success",
        r,
        vec![
            "Subject: Successful Mail Delivery Report",
            "Your message was successfully delivered to the destination(s)",
            "Action: delivered",
            "Content-Description: Message Headers",
        ],
        vec!["Will-Retry-Until:"],
    ));

    let mut r = Run::new(Kind::Failure);
    r.smtputf8 = true;
    r.sender = "jos\u{e9}@example.org";
    r.rcpts = vec![rcpt("\u{fc}ser@mx.example.test", 0)];
    v.push((
        "SMTPUTF8: global types, utf-8 addresses",
        r,
        vec![
            "Content-Type: message/global-delivery-status",
            "Content-Type: message/global",
            "Final-Recipient: utf-8; \u{fc}ser@mx.example.test",
            "<\u{fc}ser@mx.example.test>: unknown user: \"\u{fc}ser\"",
        ],
        vec!["Content-Type: message/rfc822"],
    ));

    let mut r = Run::new(Kind::Failure);
    r.reporter.smtputf8_enable = false;
    r.encoding = BodyEncoding::SevenBit;
    r.rcpts[0].reason = "caf\u{e9}\ttab".into();
    v.push((
        "smtputf8_enable=no, 7bit: no 8bit parts, 8-bit text masked",
        r,
        vec![
            "Content-Transfer-Encoding: 7bit",
            "Content-Type: text/plain; charset=us-ascii",
            "<nouser@mx.example.test>: caf???tab",
        ],
        vec!["Content-Transfer-Encoding: 8bit"],
    ));

    let mut r = Run::new(Kind::Failure);
    r.reporter.smtputf8_enable = false;
    r.encoding = BodyEncoding::Unknown;
    v.push((
        "smtputf8_enable=no, no encoding: no Content-Transfer-Encoding at all",
        r,
        vec!["Content-Type: text/plain; charset=us-ascii"],
        vec![
            "Content-Transfer-Encoding: 7bit",
            "Content-Transfer-Encoding: 8bit",
        ],
    ));

    let mut r = Run::new(Kind::Failure);
    r.reporter.header_from_format = FromFormat::Obsolete;
    r.sender = "john smith@example.org";
    v.push((
        "obsolete From:, quoted addresses",
        r,
        vec![
            "From: MAILER-DAEMON@mx.example.test (Mail Delivery System)",
            "To: \"john smith\"@example.org",
            "X-Postfix-Sender: rfc822; \"john smith\"@example.org",
        ],
        vec![],
    ));

    let mut r = Run::new(Kind::Failure);
    r.content = None;
    v.push((
        "original unavailable",
        r,
        vec![
            "\t--- Undelivered message unavailable ---",
            "Content-Description: Undelivered Message",
        ],
        vec!["Return-Path:"],
    ));

    let mut r = Run::new(Kind::Failure);
    r.rcpts = vec![];
    v.push((
        "log missing",
        r,
        vec!["\t--- Delivery report unavailable ---"],
        vec!["Final-Recipient:"],
    ));
    v
}

#[test]
fn compose_table() {
    for (name, run, present, absent) in cases() {
        let (text, _) = run.compose().unwrap_or_else(|| panic!("{name}: no notice"));
        let lines: Vec<&str> = text.lines().collect();
        for want in present {
            assert!(lines.contains(&want), "{name}: no line {want:?} in\n{text}");
        }
        for not in absent {
            assert!(
                !lines.iter().any(|l| l.starts_with(not)),
                "{name}: unexpected {not:?} in\n{text}"
            );
        }
        assert!(text.ends_with("--\n"), "{name}");
        assert!(!text.contains('\r'), "{name}");
    }
}

#[test]
fn no_applicable_recipient_cancels() {
    let mut r = Run::new(Kind::Failure);
    r.rcpts = vec![rcpt("a@x", notify::SUCCESS), rcpt("b@x", notify::NEVER)];
    assert!(r.compose().is_none());
    // A postmaster copy lists them all.
    r.audience = Audience::Postmaster;
    assert_eq!(r.compose().unwrap().1.reported, 2);
    // A delay warning goes to NOTIFY=DELAY recipients only.
    let mut r = Run::new(Kind::Delay);
    r.rcpts = vec![rcpt("a@x", notify::FAILURE)];
    assert!(r.compose().is_none());
    r.rcpts = vec![rcpt("a@x", notify::DELAY | notify::FAILURE)];
    assert!(r.compose().is_some());
    // No log: only the failure notice is still sent.
    let mut r = Run::new(Kind::Success);
    r.rcpts = vec![];
    assert!(r.compose().is_none());
}

#[test]
fn returned_and_header_injection() {
    let mut r = Run::new(Kind::Failure);
    r.reporter.bounce_size_limit = 100;
    assert_eq!(r.compose().unwrap().1.returned, Returned::Headers);
    r.content = None;
    assert_eq!(r.compose().unwrap().1.returned, Returned::Unavailable);
    // A line break in a remote reply cannot start a new header or MIME part.
    let mut r = Run::new(Kind::Failure);
    r.rcpts[0].diagnostic = Some(("smtp".into(), "550 no\n--B886798E820\nX: y".into()));
    let (text, _) = r.compose().unwrap();
    assert!(text.contains("Diagnostic-Code: smtp; 550 no?--B886798E820?X: y\n"));
}
