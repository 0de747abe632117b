//! The built-in bounce templates of Postfix 3.7 (bounce(5); src/bounce/bounce_templates.c):
//! for each kind of notice, the From: texts, the subjects and the boiler-plate text, and the
//! `$name` expansion of that text.
//!
//! Custom templates (bounce_template_file) are not supported yet; the texts below are the
//! strings every Postfix user sees, reproduced exactly.

use super::Kind;
use super::text::printable;

/// One template: what bounce_template.h calls a BOUNCE_TEMPLATE, minus the parsing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The `charset` of the text/plain part (`us-ascii` for the built-ins).
    pub charset: &'static str,
    /// `From:` with header_from_format = obsolete.
    pub obs_from: &'static str,
    /// `From:` with header_from_format = standard (the 3.7 default).
    pub std_from: &'static str,
    /// `Subject:` of the notice to the sender.
    pub subject: &'static str,
    /// `Subject:` of a postmaster copy, where the template has one.
    pub postmaster_subject: Option<&'static str>,
    /// The boiler-plate lines, before `$name` expansion.
    pub text: &'static [&'static str],
}

const OBS_FROM: &str = "MAILER-DAEMON (Mail Delivery System)";
const STD_FROM: &str = "Mail Delivery System <MAILER-DAEMON>";

const FAILURE: Template = Template {
    charset: "us-ascii",
    obs_from: OBS_FROM,
    std_from: STD_FROM,
    subject: "Undelivered Mail Returned to Sender",
    postmaster_subject: Some("Postmaster Copy: Undelivered Mail"),
    text: &[
        "This is the mail system at host $myhostname.",
        "",
        "I'm sorry to have to inform you that your message could not",
        "be delivered to one or more recipients. It's attached below.",
        "",
        "For further assistance, please send mail to postmaster.",
        "",
        "If you do so, please include this problem report. You can",
        "delete your own text from the attached returned message.",
        "",
        "                   The mail system",
    ],
};

const DELAY: Template = Template {
    charset: "us-ascii",
    obs_from: OBS_FROM,
    std_from: STD_FROM,
    subject: "Delayed Mail (still being retried)",
    postmaster_subject: Some("Postmaster Warning: Delayed Mail"),
    text: &[
        "This is the mail system at host $myhostname.",
        "",
        "####################################################################",
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
        "####################################################################",
        "",
        "Your message could not be delivered for more than $delay_warning_time_hours hour(s).",
        "It will be retried until it is $maximal_queue_lifetime_days day(s) old.",
        "",
        "For further assistance, please send mail to postmaster.",
        "",
        "If you do so, please include this problem report. You can",
        "delete your own text from the attached returned message.",
        "",
        "                   The mail system",
    ],
};

const SUCCESS: Template = Template {
    charset: "us-ascii",
    obs_from: OBS_FROM,
    std_from: STD_FROM,
    subject: "Successful Mail Delivery Report",
    postmaster_subject: None,
    text: &[
        "This is the mail system at host $myhostname.",
        "",
        "Your message was successfully delivered to the destination(s)",
        "listed below. If the message was delivered to mailbox you will",
        "receive no further notifications. Otherwise you may still receive",
        "notifications of mail delivery errors from other systems.",
        "",
        "                   The mail system",
    ],
};

const VERIFY: Template = Template {
    charset: "us-ascii",
    obs_from: OBS_FROM,
    std_from: STD_FROM,
    subject: "Mail Delivery Status Report",
    postmaster_subject: None,
    text: &[
        "This is the mail system at host $myhostname.",
        "",
        "Enclosed is the mail delivery report that you requested.",
        "",
        "                   The mail system",
    ],
};

/// The built-in template of a kind of notice.
pub fn builtin(kind: Kind) -> &'static Template {
    match kind {
        Kind::Failure => &FAILURE,
        Kind::Delay => &DELAY,
        Kind::Success => &SUCCESS,
        Kind::Verify => &VERIFY,
    }
}

/// The values a template line may name.
pub(crate) struct Vars<'a> {
    pub myhostname: &'a str,
    pub mydomain: &'a str,
    pub mail_name: &'a str,
    /// Seconds.
    pub delay_warning_time: u64,
    /// Seconds.
    pub maximal_queue_lifetime: u64,
    /// util_utf8_enable, for the printable() of expanded values.
    pub utf8: bool,
}

/// One template line with `$name` and `${name}` expanded as bounce_template.c does:
/// `$delay_warning_time_<unit>` and `$maximal_queue_lifetime_<unit>` divided into seconds,
/// minutes, hours, days or weeks (integer division), other names from the settings, and each
/// value made printable with `_` (mac_expand's MAC_EXP_FLAG_PRINTABLE). `$$` is a `$`. A name
/// this module does not know expands to nothing: Postfix would look it up in main.cf, and the
/// built-in templates name none.
///
/// XXX: with smtputf8_enable Postfix shows an IDNA (`xn--`) $myhostname in UTF-8; Tern shows it
/// as configured.
pub(crate) fn expand(line: &str, vars: &Vars<'_>) -> Vec<u8> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            out.push(b'$');
            i += 2;
            continue;
        }
        let (name, next) = if matches!(b.get(i + 1), Some(b'{' | b'(')) {
            let close = if b[i + 1] == b'{' { b'}' } else { b')' };
            match b[i + 2..].iter().position(|&c| c == close) {
                Some(p) => (&line[i + 2..i + 2 + p], i + 3 + p),
                None => (&line[i + 2..], b.len()),
            }
        } else {
            let len = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            (&line[i + 1..=i + len], i + 1 + len)
        };
        let value = lookup(name, vars);
        out.extend_from_slice(&printable(value.as_bytes(), vars.utf8, b'_'));
        i = next;
    }
    out
}

fn lookup(name: &str, vars: &Vars<'_>) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("seconds", 1),
        ("minutes", 60),
        ("hours", 3600),
        ("days", 86400),
        ("weeks", 7 * 86400),
    ];
    for (param, value) in [
        ("delay_warning_time", vars.delay_warning_time),
        ("maximal_queue_lifetime", vars.maximal_queue_lifetime),
    ] {
        if let Some(unit) = name
            .strip_prefix(param)
            .and_then(|rest| rest.strip_prefix('_'))
            && let Some((_, div)) = UNITS.iter().find(|(u, _)| *u == unit)
        {
            return (value / div).to_string();
        }
    }
    match name {
        "myhostname" => vars.myhostname.to_owned(),
        "mydomain" => vars.mydomain.to_owned(),
        "mail_name" => vars.mail_name.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_table() {
        let vars = Vars {
            myhostname: "mx.example.test",
            mydomain: "example.test",
            mail_name: "Postfix",
            delay_warning_time: 4 * 3600,
            maximal_queue_lifetime: 5 * 86400,
            utf8: true,
        };
        let cases = [
            (
                "This is the mail system at host $myhostname.",
                "This is the mail system at host mx.example.test.",
            ),
            (
                "more than $delay_warning_time_hours hour(s)",
                "more than 4 hour(s)",
            ),
            (
                "until $maximal_queue_lifetime_days day(s)",
                "until 5 day(s)",
            ),
            ("${maximal_queue_lifetime_weeks}w", "0w"),
            ("$(mail_name) $$5", "Postfix $5"),
            ("no vars", "no vars"),
        ];
        for (line, want) in cases {
            assert_eq!(String::from_utf8(expand(line, &vars)).unwrap(), want);
        }
    }

    #[test]
    fn subjects() {
        assert_eq!(
            builtin(Kind::Failure).subject,
            "Undelivered Mail Returned to Sender"
        );
        assert_eq!(
            builtin(Kind::Delay).postmaster_subject,
            Some("Postmaster Warning: Delayed Mail")
        );
        assert_eq!(builtin(Kind::Success).postmaster_subject, None);
    }
}
