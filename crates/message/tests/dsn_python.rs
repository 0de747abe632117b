//! Python's `email` package reads Tern's notices as RFC 3464 reports: multipart/report, a
//! delivery-status part whose per-recipient Action, Status and Diagnostic-Code are the ones
//! composed, and the returned message. python3 must be installed (the test fails without it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use tern_message::dsn::{
    self, Action, Addressee, Audience, BodyEncoding, Kind, Original, RecipientReport, Ret,
};
use tern_message::trace::Timestamp;

const SCRIPT: &str = r#"
import email, email.policy, json, sys
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
out = {"type": msg.get_content_type(), "report_type": msg.get_param("report-type"),
       "subject": msg["Subject"], "parts": [], "recipients": [], "per_message": {}}
for part in msg.get_payload():
    out["parts"].append(part.get_content_type())
    if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
        blocks = part.get_payload()
        if isinstance(blocks, str):
            import email.parser
            blocks = [email.message_from_string(b) for b in blocks.strip().split("\n\n")]
        out["per_message"] = dict(blocks[0].items())
        for b in blocks[1:]:
            out["recipients"].append({k: " ".join(v.split()) for k, v in b.items()})
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()[0]
        out["returned_subject"] = inner["Subject"]
print(json.dumps(out))
"#;

fn rcpt(addr: &str, status: &str, reason: &str) -> RecipientReport {
    RecipientReport {
        address: addr.into(),
        orig_addr: addr.into(),
        dsn_orcpt: format!("rfc822;{addr}"),
        notify: 0,
        status: status.into(),
        action: Action::Failed,
        reason: reason.into(),
        diagnostic: None,
        remote_mta: None,
    }
}

fn python(notice: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    child.stdin.take().unwrap().write_all(notice).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn compose(kind: Kind, rcpts: &[RecipientReport], ret: Ret) -> Vec<u8> {
    let reporter = dsn::Reporter::new("mx.example.test");
    let addressee = Addressee {
        kind,
        audience: Audience::Sender,
        envelope_sender: String::new(),
        recipient: "sender@example.org".into(),
        ret,
    };
    let original = Original {
        queue_id: "B886798E820",
        sender: "sender@example.org",
        arrival: 1_795_738_535,
        envid: Some("env-42"),
        encoding: BodyEncoding::EightBit,
        smtputf8: false,
        size: 120,
    };
    let zone = |t: i64| Timestamp::utc(t);
    let new = dsn::NewMessage {
        queue_id: "DCA4798E449",
        now: 1_795_738_546,
        zone: &zone,
    };
    let mut content: &[u8] =
        b"From: sender@example.org\nSubject: the original\n\ncaf\xc3\xa9 body\n";
    dsn::compose_to_vec(
        &addressee,
        &original,
        rcpts,
        Some(&mut content),
        &reporter,
        &new,
    )
    .unwrap()
    .unwrap()
    .0
}

#[test]
fn python_reads_a_failure_notice() {
    let mut remote = rcpt(
        "far@example.com",
        "5.7.1",
        "host mx.example.com[192.0.2.1] said: 554 5.7.1 <far@example.com>: Relay access \
         denied (in reply to RCPT TO command)",
    );
    remote.diagnostic = Some((
        "smtp".into(),
        "554 5.7.1 <far@example.com>: Relay access denied, and a long text that must be \
         folded over two lines"
            .into(),
    ));
    remote.remote_mta = Some(("dns".into(), "mx.example.com".into()));
    let rcpts = [
        rcpt(
            "nouser@mx.example.test",
            "5.1.1",
            "unknown user: \"nouser\"",
        ),
        remote,
    ];
    let json = python(&compose(Kind::Failure, &rcpts, Ret::Full));
    for want in [
        r#""type": "multipart/report""#,
        r#""report_type": "delivery-status""#,
        r#""subject": "Undelivered Mail Returned to Sender""#,
        r#""parts": ["text/plain", "message/delivery-status", "message/rfc822"]"#,
        r#""Reporting-MTA": "dns; mx.example.test""#,
        r#""Original-Envelope-Id": "env-42""#,
        r#""Final-Recipient": "rfc822; nouser@mx.example.test""#,
        r#""Action": "failed", "Status": "5.1.1", "Diagnostic-Code": "X-Postfix; unknown user: \"nouser\"""#,
        r#""Status": "5.7.1""#,
        r#""Remote-MTA": "dns; mx.example.com""#,
        r#""Diagnostic-Code": "smtp; 554 5.7.1 <far@example.com>: Relay access denied, and a long text that must be folded over two lines""#,
        r#""returned_subject": "the original""#,
    ] {
        assert!(json.contains(want), "no {want} in {json}");
    }
}

#[test]
fn python_reads_a_delay_warning() {
    let mut r = rcpt(
        "slow@example.com",
        "4.4.1",
        "connect to example.com: timed out",
    );
    r.action = Action::Delayed;
    let json = python(&compose(Kind::Delay, &[r], Ret::Hdrs));
    for want in [
        r#""type": "multipart/report""#,
        r#""subject": "Delayed Mail (still being retried)""#,
        r#""parts": ["text/plain", "message/delivery-status", "text/rfc822-headers"]"#,
        r#""Action": "delayed", "Status": "4.4.1""#,
        r#""Will-Retry-Until": "Wed, 2 Dec 2026 00:15:35 +0000 (UTC)""#,
    ] {
        assert!(json.contains(want), "no {want} in {json}");
    }
}
