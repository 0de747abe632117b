//! Bounce notices for addresses reached by alias expansion, end to end (smtplib ->
//! smtpd -> qmgr -> local(8) -> bounce notice -> local(8) into an mbox, read with Python's
//! mailbox and email packages): the notice names the expanded address that failed
//! (`Final-Recipient: rfc822; expanded@domain`, `<expanded@domain> (expanded from
//! <original@domain>): reason`) as Postfix's local(8) reports it with bounce_append, and
//! a failure of an address with an `owner-NAME` alias goes to that owner instead of the
//! sender (local(8)'s bounce_one). Real users (tern-t-*, removed after), `hash:` aliases
//! built by Tern's postalias.
//! Needs root, Python 3 and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

#[allow(unused_imports)] // the shared helpers, not all of them used here
mod local_e2e_util;

use local_e2e_util::{Instance, TestUser, at, delivery_lines, mbox_facts, send};

/// The `text` fact of the mbox (the notice's first part, lines joined by `|`).
fn notice_text(facts: &str) -> String {
    facts
        .lines()
        .find_map(|l| l.strip_prefix("text "))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_failed_alias_member_is_reported_as_expanded_from_the_recipient() {
    let sender = TestUser::new("tern-t-xs", None);
    let member = TestUser::new("tern-t-xm", None);
    // tern-al-x expands to a user (delivered) and to tern-al-y, whose command fails for
    // good (exit 67, EX_NOUSER): only tern-al-y is reported.
    let mut i = Instance::new(
        &format!(
            "tern-al-x: tern-al-y, {}\ntern-al-y: \"|exit 67\"\n",
            member.name
        ),
        "",
    );
    i.launch();
    let from = at(&sender.name);
    let id = send(i.t.port, &from, &at("tern-al-x"), "", "partly");
    let log = i.wait("sender non-delivery notification: ", 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "to=<{}>, orig_to=<{}>",
            at("tern-al-y"),
            at("tern-al-x")
        )) && l.contains("status=bounced")),
        "{log}"
    );
    i.wait(&format!("{id}: removed"), 1);
    let facts = i.wait_facts(&sender.name);
    let expanded = at("tern-al-y");
    let original = at("tern-al-x");
    for want in [
        "type multipart/report delivery-status".to_owned(),
        format!("Final-Recipient rfc822; {expanded}"),
        "Action failed".to_owned(),
        format!("To {from}"),
    ] {
        assert!(facts.contains(&want), "{want:?} in\n{facts}\n{log}");
    }
    assert!(
        !facts.contains(&format!("Final-Recipient rfc822; {original}")),
        "{facts}"
    );
    let text = notice_text(&facts);
    assert!(
        text.contains(&format!("<{expanded}> (expanded from <{original}>): ")),
        "{text}"
    );
    // The delivered member got the message; the sender has one notice only.
    assert!(
        std::fs::read_to_string(i.mbox(&member.name))
            .unwrap()
            .contains("Subject: partly")
    );
    assert_eq!(facts.matches("--\n").count(), 1, "{facts}");
}

#[test]
fn a_failure_under_an_owner_alias_goes_to_the_owner_not_the_sender() {
    let sender = TestUser::new("tern-t-os", None);
    let owner = TestUser::new("tern-t-oo", None);
    let mut i = Instance::new(
        &format!(
            "tern-al-o: tern-al-p\ntern-al-p: \"|exit 67\"\nowner-tern-al-p: {}\n",
            owner.name
        ),
        "",
    );
    i.launch();
    let from = at(&sender.name);
    let id = send(i.t.port, &from, &at("tern-al-o"), "", "owned");
    let log = i.wait("sender non-delivery notification: ", 1);
    let log2 = i.wait(&format!("{id}: removed"), 1);
    let facts = i.wait_facts(&owner.name);
    let expanded = at("tern-al-p");
    for want in [
        "type multipart/report delivery-status".to_owned(),
        format!("Final-Recipient rfc822; {expanded}"),
        "Action failed".to_owned(),
        format!("To {}", at("owner-tern-al-p")),
    ] {
        assert!(facts.contains(&want), "{want:?} in\n{facts}\n{log}");
    }
    // alias.c drops the original recipient below an alias with an owner-: the text
    // line has no `(expanded from <...>)` (bounce_notify_util.c prints it only with one).
    let text = notice_text(&facts);
    assert!(text.contains(&format!("<{expanded}>: ")), "{text}\n{log2}");
    assert!(!text.contains("(expanded from"), "{text}");
    // bounce_one: the report still names the message's sender.
    let raw = std::fs::read_to_string(i.mbox(&owner.name)).unwrap();
    assert!(
        raw.contains(&format!("X-Postfix-Sender: rfc822; {from}\n")),
        "{raw}"
    );
    // The sender gets nothing: the one notice was the owner's.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let log = i.log();
    assert_eq!(
        log.matches("sender non-delivery notification: ").count(),
        1,
        "{log}\n{log2}"
    );
    assert!(!i.mbox(&sender.name).exists(), "{log}");
}

/// The mbox facts of `user` once a message is there (at most 30 s).
trait WaitFacts {
    fn wait_facts(&self, user: &str) -> String;
}

impl WaitFacts for Instance {
    fn wait_facts(&self, user: &str) -> String {
        let path = self.mbox(user);
        let start = std::time::Instant::now();
        loop {
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                let facts = mbox_facts(&path);
                if facts.contains("type multipart/report") {
                    return facts;
                }
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "no notice in {}\n{}",
                path.display(),
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
