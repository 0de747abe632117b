//! Tern's queue and maildrop files rendered in Postfix's layout: whole outputs for
//! files made with the queue crate's writers.

use std::io::Cursor;

use tern_queue::file::encode_status;
use tern_queue::{
    DeliveryStatus, DsnRet, Envelope, MessageFlags, Notify, QueueWriter, Recipient, StatusUpdate,
    Timestamp,
};

use super::printer::{Flags, Printer, local_asctime};
use super::queuefile::ShowError;
use super::{Kind, kind, maildrop, queuefile};

fn flags(s: &str) -> Flags {
    Flags {
        envelope: s.contains('e'),
        header: s.contains('h'),
        body: s.contains('b'),
        offsets: s.contains('o'),
        decimal: s.contains('d'),
        verbose: s.contains('v'),
    }
    .with_default_parts()
}

fn queue_file(extracted: bool, status: Option<DeliveryStatus>) -> Vec<u8> {
    let mut bob = Recipient::new("bob@example.net");
    bob.original = "Bob@example.net".into();
    bob.orcpt = Some("rfc822;Bob@example.net".into());
    bob.notify = Notify(Notify::SUCCESS | Notify::FAILURE);
    let env = Envelope {
        arrival: Timestamp { sec: 1000, usec: 5 },
        sender: "alice@example.com".into(),
        recipients: vec![bob],
        client: vec![
            ("client_name".into(), "localhost".into()),
            ("client_address".into(), "127.0.0.1".into()),
            ("client_port".into(), "4711".into()),
            ("helo_name".into(), "client.example".into()),
            ("protocol_name".into(), "ESMTP".into()),
            ("x_tern".into(), "1".into()),
        ],
        dsn_envid: Some("abc+x".into()),
        dsn_ret: Some(DsnRet::Hdrs),
        flags: MessageFlags(
            MessageFlags::BODY_8BITMIME
                | if extracted {
                    MessageFlags::EXTRACTED
                } else {
                    0
                },
        ),
    };
    let mut w = QueueWriter::new(Vec::new(), &env).expect("write");
    w.content(b"Subject: hi\nX-Long: a\n b\n\nbody\n")
        .expect("write");
    if extracted {
        w.extracted_recipient(&Recipient::new("carol@example.net"))
            .expect("write");
    }
    let mut out = w.finish().expect("write");
    if let Some(status) = status {
        out.extend(encode_status(&[StatusUpdate {
            recipient: 0,
            status,
            time: 1001,
            dsn: "2.0.0".into(),
            diagnostic: "ok".into(),
        }]));
    }
    out
}

fn show_queue(data: Vec<u8>, f: &str) -> Result<String, String> {
    let mut out = Vec::new();
    let mut p = Printer::new(&mut out, flags(f), "deferred/A/ABC", 0).expect("write");
    match queuefile::show(&mut Cursor::new(data), Some("ABC"), &mut p) {
        Ok(()) => Ok(String::from_utf8(out).expect("utf-8")),
        Err(ShowError::Record(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

fn envelope_text(done: bool) -> String {
    let t = local_asctime(1000);
    format!(
        "*** ENVELOPE RECORDS deferred/A/ABC ***\n\
         message_size: {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}\n\
         message_arrival_time: {t}\n\
         create_time: {t}\n\
         named_attribute: log_ident=ABC\n\
         named_attribute: envelope_id=abc+x\n\
         named_attribute: ret_flags=2\n\
         sender: alice@example.com\n\
         named_attribute: encoding=8bit\n\
         named_attribute: log_client_name=localhost\n\
         named_attribute: log_client_address=127.0.0.1\n\
         named_attribute: log_client_port=4711\n\
         named_attribute: log_message_origin=localhost[127.0.0.1]\n\
         named_attribute: log_helo_name=client.example\n\
         named_attribute: log_protocol_name=ESMTP\n\
         named_attribute: client_name=localhost\n\
         named_attribute: client_address=127.0.0.1\n\
         named_attribute: client_port=4711\n\
         named_attribute: helo_name=client.example\n\
         named_attribute: protocol_name=ESMTP\n\
         named_attribute: client_address_type=2\n\
         named_attribute: x_tern=1\n\
         named_attribute: notify_flags=6\n\
         named_attribute: dsn_orig_rcpt=rfc822;Bob@example.net\n\
         original_recipient: Bob@example.net\n\
         {}: bob@example.net\n",
        31,
        "N",
        1,
        12,
        31,
        0,
        if done { "done_recipient" } else { "recipient" }
    )
}

/// The data offset depends on the envelope's encoding: not compared.
fn mask_size(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("message_size: ") {
            Some(v) => {
                let f: Vec<&str> = v.split_whitespace().collect();
                format!("message_size: {:>15} {:>15} {}\n", f[0], "N", &v[32..])
            }
            None => format!("{l}\n"),
        })
        .collect()
}

#[test]
fn whole_file() {
    let got = show_queue(queue_file(false, None), "").expect("shown");
    let want = format!(
        "{}*** MESSAGE CONTENTS deferred/A/ABC ***\nSubject: hi\nX-Long: a\n b\n\nbody\n\
         *** HEADER EXTRACTED deferred/A/ABC ***\nnamed_attribute: encoding=8bit\n\
         *** MESSAGE FILE END deferred/A/ABC ***\n",
        envelope_text(false)
    );
    assert_eq!(mask_size(&got), want);
}

#[test]
fn parts() {
    let cases: &[(&str, &str)] = &[
        ("h", "Subject: hi\nX-Long: a\n b\n"),
        ("b", "\nbody\n"),
        ("bh", "Subject: hi\nX-Long: a\n b\n\nbody\n"),
    ];
    for (f, want) in cases {
        assert_eq!(
            show_queue(queue_file(false, None), f).expect("shown"),
            *want,
            "{f}"
        );
    }
}

#[test]
fn final_status_is_a_done_recipient() {
    for (status, done) in [
        (DeliveryStatus::Sent, true),
        (DeliveryStatus::Bounced, true),
        (DeliveryStatus::Deferred, false),
    ] {
        let got = show_queue(queue_file(false, Some(status)), "e").expect("shown");
        assert!(mask_size(&got).starts_with(&envelope_text(done)), "{got}");
        assert_eq!(
            got.contains("done_recipient: bob@example.net\n"),
            done,
            "{status:?}"
        );
    }
}

#[test]
fn extracted_recipients_follow_the_marker() {
    let got = show_queue(queue_file(true, None), "e").expect("shown");
    assert!(
        got.ends_with(
            "*** MESSAGE CONTENTS deferred/A/ABC ***\n\
             *** HEADER EXTRACTED deferred/A/ABC ***\n\
             recipient: carol@example.net\n\
             named_attribute: encoding=8bit\n\
             *** MESSAGE FILE END deferred/A/ABC ***\n"
        ),
        "{got}"
    );
}

#[test]
fn offsets_point_at_records_and_lines() {
    let data = queue_file(false, None);
    let got = show_queue(data.clone(), "ho").expect("shown");
    let first = got.lines().next().expect("a line");
    let offset: usize = first[..9].trim().parse().expect("offset");
    assert!(data[offset..].starts_with(b"Subject: hi\n"), "{first}");
    let second = got.lines().nth(1).expect("a line");
    let offset: usize = second[..9].trim().parse().expect("offset");
    assert!(data[offset..].starts_with(b"X-Long: a\n"), "{second}");
}

#[test]
fn cut_files() {
    let data = queue_file(false, None);
    // Cut inside the content: what is there is shown, then Postfix's read error.
    let cut = data[..data.len() - 30].to_vec();
    let err = show_queue(cut, "").expect_err("cut");
    assert!(err.starts_with("incomplete queue file"), "{err}");
    let mut bad = data.clone();
    let n = bad.len();
    bad[n - 10] ^= 0xff;
    let err = show_queue(bad, "").expect_err("corrupt");
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn maildrop_files() {
    let env = tern_queue::maildrop::Envelope {
        sender: String::new(),
        full_name: Some("Jane Doe".into()),
        notify: 10,
        ret: Some(DsnRet::Hdrs),
        envid: Some("envid1".into()),
        eight_bit: true,
        verify: false,
        smtputf8: false,
        recipients: vec!["carol@example.net".into(), "dan".into()],
        rcpt_dsn: Vec::new(),
    };
    let mut data = Vec::new();
    env.write(&mut data).expect("write");
    data.extend_from_slice(b"Subject: local\n\nhi\n");
    assert_eq!(kind(&data[..16]), Kind::Maildrop);
    let mut out = Vec::new();
    let mut p = Printer::new(&mut out, flags(""), "maildrop/ABC", 0).expect("write");
    maildrop::show(&mut Cursor::new(data), 1000, &mut p).expect("shown");
    let t = local_asctime(1000);
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        format!(
            "*** ENVELOPE RECORDS maildrop/ABC ***\n\
             message_arrival_time: {t}\n\
             named_attribute: envelope_id=envid1\n\
             named_attribute: ret_flags=2\n\
             named_attribute: rewrite_context=local\n\
             sender_fullname: Jane Doe\n\
             sender: \n\
             named_attribute: encoding=8bit\n\
             named_attribute: notify_flags=10\n\
             recipient: carol@example.net\n\
             named_attribute: notify_flags=10\n\
             recipient: dan\n\
             *** MESSAGE CONTENTS maildrop/ABC ***\n\
             Subject: local\n\n\
             hi\n\
             *** HEADER EXTRACTED maildrop/ABC ***\n\
             *** MESSAGE FILE END maildrop/ABC ***\n"
        )
    );
}

/// The queue actions after the content, where Postfix's postcat shows its FILT and RDR
/// records (seen with Debian's Postfix: `redirect_to: bob@example.com` right after
/// `*** HEADER EXTRACTED ... ***`, before the BCC recipient).
#[test]
fn filter_and_redirect_are_shown_in_the_extracted_part() {
    let env = Envelope {
        arrival: Timestamp { sec: 1000, usec: 5 },
        sender: "alice@example.com".into(),
        recipients: vec![Recipient::new("bob@example.net")],
        ..Envelope::default()
    };
    let mut w = QueueWriter::new(Vec::new(), &env).expect("write");
    w.content(b"Subject: hi\n\nbody\n").expect("write");
    w.attribute(tern_queue::ATTR_FILTER, "smtp:[127.0.0.1]:10025")
        .expect("write");
    w.attribute(tern_queue::ATTR_REDIRECT, "bob@example.com")
        .expect("write");
    w.extracted_recipient(&Recipient::new("carol@example.com"))
        .expect("write");
    let got = show_queue(w.finish().expect("write"), "e").expect("shown");
    assert!(
        got.ends_with(
            "*** MESSAGE CONTENTS deferred/A/ABC ***\n\
             *** HEADER EXTRACTED deferred/A/ABC ***\n\
             content_filter: smtp:[127.0.0.1]:10025\n\
             redirect_to: bob@example.com\n\
             recipient: carol@example.com\n\
             *** MESSAGE FILE END deferred/A/ABC ***\n"
        ),
        "{got}"
    );
}
