//! What the client says, sans-IO: the server's features from its EHLO/LHLO reply, and the
//! MAIL FROM and RCPT TO commands with the ESMTP parameters Postfix adds when (and only
//! when) the server offers the extension (smtp_proto.c, smtp_helo() and smtp_loop()).
//!
//! Trust: the EHLO reply is the server's (any keyword may be missing, repeated or
//! malformed; a bad SIZE value is ignored, as Postfix warns and ignores it). The envelope
//! comes from our own queue file.

use std::fmt::Write as _;

use tern_message::address::quote_822_local;
use tern_queue::file::{DsnRet, Notify};

use super::reply::Reply;
use super::{Encoding, Message, Recipient};

/// The ESMTP features a server offered (Postfix's SMTP_FEATURE_* bits of one session).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// EHLO (or LHLO) was accepted.
    pub esmtp: bool,
    pub pipelining: bool,
    /// SIZE was offered.
    pub size: bool,
    /// The SIZE limit, when the server gave one (0 means none).
    pub size_limit: u64,
    pub eightbitmime: bool,
    pub dsn: bool,
    pub smtputf8: bool,
    /// STARTTLS was offered (noted for the TLS layer; not acted on here).
    pub starttls: bool,
    /// AUTH was offered: the mechanisms of every AUTH line, in order, without
    /// duplicates (`AUTH=LOGIN`, the old draft's form, counts too). The session clears
    /// it when it will not authenticate (Postfix's SMTP_FEATURE_AUTH).
    pub auth: Option<Vec<String>>,
    /// The first word of the EHLO reply: the name the server gave itself.
    pub helo: Option<String>,
}

impl Features {
    /// The keywords of an EHLO/LHLO reply (RFC 5321 4.1.1.1). The first line names the
    /// server; each later line is `keyword [params]`, keywords in any case.
    pub fn from_ehlo(reply: &Reply) -> Features {
        let mut f = Features {
            esmtp: true,
            ..Features::default()
        };
        let mut n = 0;
        for line in reply.text.split('\n') {
            // mystrtok(&words, "- ") skips the code and its separator.
            let rest = line.get(4..).unwrap_or_default();
            let mut words = rest.split([' ', '\t', '=']).filter(|w| !w.is_empty());
            // A line without a keyword is skipped and not counted (smtp_helo()).
            let Some(word) = words.next() else { continue };
            n += 1;
            if n == 1 {
                f.helo = Some(word.to_owned());
                continue;
            }
            match word.to_ascii_uppercase().as_str() {
                "8BITMIME" => f.eightbitmime = true,
                "PIPELINING" => f.pipelining = true,
                "SIZE" => {
                    f.size = true;
                    if let Some(limit) = words.next() {
                        // "bad EHLO SIZE limit" is a warning in Postfix; the limit stays 0.
                        if let Ok(v) = limit.parse::<u64>() {
                            f.size_limit = v;
                        }
                    }
                }
                "STARTTLS" => f.starttls = true,
                "DSN" => f.dsn = true,
                "SMTPUTF8" => f.smtputf8 = true,
                "AUTH" => {
                    // smtp_sasl_helo_auth(): several AUTH lines make one list.
                    let list = f.auth.get_or_insert_with(Vec::new);
                    for mech in words {
                        if !list.iter().any(|m| m.eq_ignore_ascii_case(mech)) {
                            list.push(mech.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        // smtp_helo(): a server with SMTPUTF8 but not 8BITMIME is assumed to take 8-bit
        // content ("offers SMTPUTF8 support, but not 8BITMIME").
        if f.smtputf8 {
            f.eightbitmime = true;
        }
        f
    }
}

/// Whether the greeting announces ESMTP: a word "ESMTP" anywhere after the code, on any
/// line of the greeting (smtp_helo() tokenizes the whole reply text).
pub fn greeting_says_esmtp(greeting: &Reply) -> bool {
    let is_delim = |c: char| matches!(c, '-' | ' ' | '\t' | '\n');
    let text = greeting.text.trim_start_matches(is_delim);
    // The first token (the code) ends at any of "- \t\n"; the rest split on blanks.
    let rest = text.find(is_delim).map_or("", |p| &text[p + 1..]);
    rest.split([' ', '\t', '\n'])
        .any(|w| w.eq_ignore_ascii_case("ESMTP"))
}

/// SMTP_MIME_DOWNGRADE: 8-bit content for a server without 8BITMIME would be converted
/// to 7 bits (unless disable_mime_output_conversion).
pub fn mime_downgrade(features: &Features, msg: &Message<'_>, disable_conversion: bool) -> bool {
    !disable_conversion && !features.eightbitmime && msg.encoding != Encoding::SevenBit
}

/// `MAIL FROM:<sender>` with SIZE=, BODY=, ENVID=, RET= and SMTPUTF8 as Postfix adds them.
pub fn mail_from(features: &Features, msg: &Message<'_>, downgrading: bool) -> String {
    let mut cmd = format!("MAIL FROM:<{}>", quote_821(&msg.sender));
    // Postfix does not announce SIZE when it will MIME-downgrade (the size changes).
    if features.size && !downgrading {
        let _ = write!(cmd, " SIZE={}", msg.size);
    }
    if features.eightbitmime {
        match msg.encoding {
            Encoding::EightBit => cmd.push_str(" BODY=8BITMIME"),
            Encoding::SevenBit => cmd.push_str(" BODY=7BIT"),
            Encoding::Unspecified => {}
        }
    }
    if features.dsn {
        if let Some(envid) = msg.envid.as_deref().filter(|e| !e.is_empty()) {
            cmd.push_str(" ENVID=");
            cmd.push_str(&xtext(envid, b"+="));
        }
        match msg.ret {
            Some(DsnRet::Full) => cmd.push_str(" RET=FULL"),
            Some(DsnRet::Hdrs) => cmd.push_str(" RET=HDRS"),
            None => {}
        }
    }
    if features.smtputf8 && msg.smtputf8_requested {
        cmd.push_str(" SMTPUTF8");
    }
    cmd
}

/// `RCPT TO:<address>` with ORCPT= and NOTIFY= when the server offers DSN.
pub fn rcpt_to(features: &Features, msg: &Message<'_>, rcpt: &Recipient) -> String {
    let mut cmd = format!("RCPT TO:<{}>", quote_821(&rcpt.address));
    if !features.dsn {
        return cmd;
    }
    let mut orcpt = rcpt.orcpt.clone().unwrap_or_default();
    if orcpt.is_empty() && !rcpt.original.is_empty() {
        // No ORCPT from the client: Postfix sends the original recipient address.
        let quoted = quote_822_local(&rcpt.original);
        let kind = if msg.smtputf8_requested && !quoted.is_ascii() {
            "utf-8"
        } else {
            "rfc822"
        };
        orcpt = format!("{kind};{quoted}");
    }
    if !orcpt.is_empty() {
        let is_utf8 = orcpt
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("utf-8;"));
        if is_utf8 {
            // RFC 6533 unitext (Postfix drops ORCPT that is not valid UTF-8; a Rust
            // string always is).
            let _ = write!(cmd, " ORCPT={}", uxtext(&orcpt, b"+="));
        } else {
            let _ = write!(cmd, " ORCPT={}", xtext(&orcpt, b"="));
        }
    }
    if rcpt.notify.0 != 0 {
        let _ = write!(cmd, " NOTIFY={}", notify_text(rcpt.notify));
    }
    cmd
}

/// NOTIFY's keywords in Postfix's order (dsn_notify_str()).
pub fn notify_text(notify: Notify) -> String {
    [
        (Notify::NEVER, "NEVER"),
        (Notify::SUCCESS, "SUCCESS"),
        (Notify::FAILURE, "FAILURE"),
        (Notify::DELAY, "DELAY"),
    ]
    .iter()
    .filter(|(bit, _)| notify.0 & bit != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// An envelope address for MAIL FROM / RCPT TO: the local part quoted when it is not a
/// dot-string (smtp_quote_821_address(), smtp_quote_rfc821_envelope = yes). `<>` stays
/// empty.
fn quote_821(addr: &str) -> String {
    if addr.is_empty() {
        return String::new();
    }
    quote_822_local(addr)
}

/// RFC 3461 4 xtext (Postfix's xtext_quote()): `+`, controls, space, 8-bit bytes and
/// `special` as `+XX`.
pub fn xtext(text: &str, special: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &c in text.as_bytes() {
        if c != b'+' && c > 32 && c < 127 && !special.contains(&c) {
            out.push(char::from(c));
        } else {
            let _ = write!(out, "+{c:02X}");
        }
    }
    out
}

/// RFC 6533 unitext (Postfix's uxtext_quote()): `\`, controls, space, `special` and every
/// non-ASCII character as `\x{HEX}`. `text` is a Rust string, so it is valid UTF-8.
pub fn uxtext(text: &str, special: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        let plain = u8::try_from(ch)
            .is_ok_and(|c| c != b'\\' && c > 32 && c < 127 && !special.contains(&c));
        if plain {
            out.push(ch);
        } else {
            let _ = write!(out, "\\x{{{:02X}}}", u32::from(ch));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::reply::ReplyBuilder;

    fn reply(lines: &[&str]) -> Reply {
        let mut b = ReplyBuilder::new(2048);
        let mut r = None;
        for l in lines {
            r = b.push(l.as_bytes());
        }
        r.expect("complete reply")
    }

    #[test]
    fn ehlo_keywords() {
        let f = Features::from_ehlo(&reply(&[
            "250-mx.example.com hello",
            "250-pipelining",
            "250-SIZE 10240000",
            "250-STARTTLS",
            "250-DSN",
            "250-AUTH PLAIN LOGIN",
            "250-AUTH=login CRAM-MD5",
            "250 8BITMIME",
        ]));
        assert_eq!(
            f,
            Features {
                esmtp: true,
                pipelining: true,
                size: true,
                size_limit: 10_240_000,
                eightbitmime: true,
                dsn: true,
                smtputf8: false,
                starttls: true,
                helo: Some("mx.example.com".into()),
                auth: Some(vec!["PLAIN".into(), "LOGIN".into(), "CRAM-MD5".into()]),
            }
        );
        // An AUTH line without mechanisms is still an offer (Postfix warns of it).
        let f = Features::from_ehlo(&reply(&["250-x", "250 AUTH"]));
        assert_eq!(f.auth, Some(Vec::new()));
        let f = Features::from_ehlo(&reply(&["250-x", "250-SIZE=abc", "250 SMTPUTF8"]));
        assert!(f.size && f.size_limit == 0 && f.smtputf8 && f.eightbitmime);
        let f = Features::from_ehlo(&reply(&["250 x"]));
        assert!(!f.pipelining && !f.size && !f.dsn);
        // The first line is the server's name, never a keyword; a line without a word
        // does not count as the first.
        let f = Features::from_ehlo(&reply(&["250 PIPELINING"]));
        assert!(!f.pipelining);
        let f = Features::from_ehlo(&reply(&["250-", "250-mx.example.com", "250 DSN"]));
        assert_eq!((f.helo.as_deref(), f.dsn), (Some("mx.example.com"), true));
    }

    #[test]
    fn greeting_esmtp() {
        for (line, want) in [
            ("220 mx.example.com ESMTP Postfix", true),
            ("220 mx.example.com esmtp", true),
            ("220 mx.example.com SMTP ready", false),
            ("220", false),
        ] {
            assert_eq!(greeting_says_esmtp(&reply(&[line])), want, "{line}");
        }
        assert!(greeting_says_esmtp(&reply(&[
            "220-mx.example.com",
            "220 ESMTP ready"
        ])));
        assert!(greeting_says_esmtp(&reply(&["220-ESMTP", "220 ready"])));
    }

    fn msg(sender: &str) -> Message<'static> {
        Message {
            sender: sender.into(),
            recipients: vec![],
            envid: Some("id+1=2".into()),
            ret: Some(DsnRet::Hdrs),
            size: 1234,
            content: b"",
            encoding: Encoding::EightBit,
            smtputf8_requested: true,
            smtputf8_required: false,
            verify: false,
        }
    }

    #[test]
    fn mail_from_parameters() {
        let all = Features {
            esmtp: true,
            size: true,
            eightbitmime: true,
            dsn: true,
            smtputf8: true,
            ..Features::default()
        };
        let none = Features {
            esmtp: true,
            ..Features::default()
        };
        let m = msg("a b@example.com");
        for (f, downgrading, want) in [
            (
                &all,
                false,
                "MAIL FROM:<\"a b\"@example.com> SIZE=1234 BODY=8BITMIME ENVID=id+2B1+3D2 RET=HDRS SMTPUTF8",
            ),
            (&none, false, "MAIL FROM:<\"a b\"@example.com>"),
            (
                &Features {
                    size: true,
                    ..none.clone()
                },
                true,
                "MAIL FROM:<\"a b\"@example.com>",
            ),
        ] {
            assert_eq!(mail_from(f, &m, downgrading), want);
        }
        assert_eq!(mail_from(&none, &msg(""), false), "MAIL FROM:<>");
    }

    #[test]
    fn rcpt_to_parameters() {
        let dsn = Features {
            esmtp: true,
            dsn: true,
            ..Features::default()
        };
        let m = msg("s@example.com");
        let r = |orcpt: Option<&str>, original: &str, notify: u8| Recipient {
            index: 0,
            address: "u@example.com".into(),
            orcpt: orcpt.map(str::to_owned),
            original: original.into(),
            notify: Notify(notify),
        };
        for (f, rc, want) in [
            (&dsn, r(None, "", 0), "RCPT TO:<u@example.com>"),
            (
                &dsn,
                r(Some("rfc822;a=b@x"), "", Notify::SUCCESS | Notify::FAILURE),
                "RCPT TO:<u@example.com> ORCPT=rfc822;a+3Db@x NOTIFY=SUCCESS,FAILURE",
            ),
            (
                &dsn,
                r(None, "o@x", Notify::NEVER),
                "RCPT TO:<u@example.com> ORCPT=rfc822;o@x NOTIFY=NEVER",
            ),
            (
                &dsn,
                r(None, "\u{e9}@x", 0),
                "RCPT TO:<u@example.com> ORCPT=utf-8;\\x{E9}@x",
            ),
            (
                &Features::default(),
                r(Some("rfc822;o@x"), "", Notify::DELAY),
                "RCPT TO:<u@example.com>",
            ),
        ] {
            assert_eq!(rcpt_to(f, &m, &rc), want);
        }
    }

    #[test]
    fn xtext_forms() {
        for (text, special, want) in [
            ("a+b=c", &b"+="[..], "a+2Bb+3Dc"),
            ("a b\u{e9}", &b""[..], "a+20b+C3+A9"),
            ("rfc822;x=y", &b"="[..], "rfc822;x+3Dy"),
        ] {
            assert_eq!(xtext(text, special), want);
        }
        assert_eq!(
            uxtext("utf-8;\u{e9}\\=", b"+="),
            "utf-8;\\x{E9}\\x{5C}\\x{3D}"
        );
    }
}
