//! The trace texts Postfix writes into a message: the `Received:` headers of smtpd(8) and
//! pickup(8), the RFC 5322 date of mail_date(3), and the Message-Id cleanup(8) makes up.
//!
//! Sans-IO: times are passed in as a [`Timestamp`] (seconds since the epoch plus the local
//! UTC offset and zone abbreviation the driver read from the clock and the time zone
//! database). Every format here was compared byte for byte with Debian's Postfix 3.7.11
//! (tests/reference/delivered.mbox, made by tests/reference/send.py).
//!
//! # Security
//! The HELO name and the client name come from the network; smtpd has already checked them
//! (they contain no line breaks) before they reach this module, and nothing here parses them.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::address::quote_822_local;

/// A moment with the local time zone's view of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since 1970-01-01 00:00:00 UTC.
    pub unix: i64,
    /// Local time minus UTC, in minutes (e.g. -210 for Newfoundland standard time).
    pub utc_offset_minutes: i32,
    /// The zone abbreviation strftime's `%Z` gives (`UTC`, `NST`, `CET`).
    pub zone: String,
}

impl Timestamp {
    /// A UTC timestamp, zone name `UTC` (as on a host whose zone is UTC).
    pub fn utc(unix: i64) -> Self {
        Self {
            unix,
            utc_offset_minutes: 0,
            zone: "UTC".to_owned(),
        }
    }
}

/// The date as Postfix's mail_date(3) writes it: `Thu, 26 Nov 2026 20:47:43 +0000 (UTC)`,
/// with the day of month space-padded (`%e`: `Thu,  5 Nov ...`), the local time, the offset
/// and the zone name in parentheses. RFC 5322 3.3 allows the folding white space and the
/// trailing comment.
pub fn mail_date(t: &Timestamp) -> String {
    let local = t.unix + i64::from(t.utc_offset_minutes) * 60;
    let c = Civil::from_unix(local);
    let off = t.utc_offset_minutes;
    // XXX: Postfix prints the hours with "%+03d" of off / 60 and the minutes of |off| % 60,
    // so an offset between -00:59 and -00:01 comes out with a "+" sign. Kept for fidelity;
    // no zone in use today has such an offset.
    let hours = off / 60;
    let sign = if hours < 0 { '-' } else { '+' };
    format!(
        "{}, {:>2} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02} ({})",
        WEEKDAYS[c.weekday],
        c.day,
        MONTHS[c.month - 1],
        c.year,
        c.hour,
        c.minute,
        c.second,
        hours.unsigned_abs(),
        off.unsigned_abs() % 60,
        t.zone
    )
}

/// The Message-Id cleanup adds when there is none (cleanup_message.c), without the angle
/// brackets: `YYYYMMDDhhmmss.QUEUEID@MYHOSTNAME` with the queue file's creation time in UTC,
/// or `QUEUEID@MYHOSTNAME` when enable_long_queue_ids = yes (long ids are unique alone).
pub fn message_id(
    queue_time_unix: i64,
    queue_id: &str,
    myhostname: &str,
    long_queue_ids: bool,
) -> String {
    if long_queue_ids {
        return format!("{queue_id}@{myhostname}");
    }
    let c = Civil::from_unix(queue_time_unix);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}.{queue_id}@{myhostname}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The SMTP protocol as smtpd records it after `with` (RFC 3848).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HELO, or no greeting at all.
    Smtp,
    /// EHLO.
    Esmtp,
}

/// How the client reached smtpd, for its Received: header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpdSession<'a> {
    /// The HELO/EHLO argument, if the client sent one.
    pub helo: Option<&'a str>,
    /// The verified client host name, or `unknown`.
    pub client_name: &'a str,
    /// The client address.
    pub client_addr: ClientAddr,
    /// HELO or EHLO.
    pub protocol: Protocol,
    /// The session is under TLS (adds `S` to `ESMTP`).
    pub tls: bool,
    /// The client authenticated (adds `A` to `ESMTP`).
    pub authenticated: bool,
    /// MAIL FROM carried SMTPUTF8: the protocol is written `UTF8SMTP`.
    pub smtputf8: bool,
}

/// The client address as the Received: header shows it in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAddr {
    /// An IP address: IPv6 is written `IPv6:...` (RFC 5321 4.1.3 address literal).
    Ip(IpAddr),
    /// No address known (smtpd's `unknown`).
    Unknown,
}

impl ClientAddr {
    /// The text smtpd puts between the brackets (smtpd_peer.c's rfc_addr).
    pub fn rfc_addr(&self) -> String {
        match self {
            ClientAddr::Ip(IpAddr::V4(a)) => a.to_string(),
            ClientAddr::Ip(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                // smtpd turns a v4-mapped peer into the plain IPv4 form.
                Some(v4) => v4.to_string(),
                None => format!("IPv6:{a}"),
            },
            ClientAddr::Unknown => "unknown".to_owned(),
        }
    }
}

/// What the Received: header says about this server and the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedBy<'a> {
    /// myhostname.
    pub myhostname: &'a str,
    /// mail_name (`Postfix`).
    pub mail_name: &'a str,
    /// The queue id; `None` for smtpd without a cleanup stream (a proxy), which omits `id`.
    pub queue_id: Option<&'a str>,
    /// The recipient, set only when the transaction has exactly one (the `for` clause).
    pub single_recipient: Option<&'a str>,
    /// When the transaction started.
    pub arrival: &'a Timestamp,
}

/// The Received: header smtpd prepends, in cleanup's form (lines joined by `\n`, no final
/// newline), e.g.
/// ```text
/// Received: from client.example.org (localhost [127.0.0.1])
/// <TAB>by mx.example.test (Postfix) with ESMTP id 4377C990091
/// <TAB>for <alice@mx.example.test>; Thu, 26 Nov 2026 20:49:16 +0000 (UTC)
/// ```
/// (`<TAB>` is a tab.) With several recipients the id line ends in `;` and the date has a
/// line of its own.
/// smtpd_tls_received_header and smtpd_sasl_authenticated_header (both off by default) add
/// lines this function does not write yet.
pub fn smtpd_received(s: &SmtpdSession<'_>, by: &ReceivedBy<'_>) -> String {
    let mut h = format!(
        "Received: from {} ({} [{}])\n\tby {} ({}) with {}",
        s.helo.unwrap_or(s.client_name),
        s.client_name,
        s.client_addr.rfc_addr(),
        by.myhostname,
        by.mail_name,
        with_protocol(s)
    );
    if let Some(id) = by.queue_id {
        let _ = write!(h, " id {id}");
    }
    let date = mail_date(by.arrival);
    match by.single_recipient {
        Some(rcpt) => {
            let _ = write!(h, "\n\tfor <{}>; {date}", quote_822_local(rcpt));
        }
        None => {
            let _ = write!(h, ";\n\t{date}");
        }
    }
    h
}

/// The word after `with`: `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`, `ESMTPSA`, `UTF8SMTP`...
/// RFC 3848's `S` and `A` are added only to ESMTP (smtpd.c checks the protocol, not the
/// UTF8SMTP spelling, so `UTF8SMTPS` and `UTF8SMTPSA` occur).
pub fn with_protocol(s: &SmtpdSession<'_>) -> String {
    let esmtp = s.protocol == Protocol::Esmtp;
    let mut p = String::from(match (s.smtputf8, s.protocol) {
        (true, _) => "UTF8SMTP",
        (false, Protocol::Esmtp) => "ESMTP",
        (false, Protocol::Smtp) => "SMTP",
    });
    if esmtp && s.tls {
        p.push('S');
    }
    if esmtp && s.authenticated {
        p.push('A');
    }
    p
}

/// The Received: header pickup(8) writes for local submissions (sendmail, postdrop):
/// ```text
/// Received: by mx.example.test (Postfix, from userid 0)
/// <TAB>id 65D84990343; Thu, 26 Nov 2026 20:49:26 +0000 (UTC)
/// ```
/// (`<TAB>` is a tab.) `mtime` is the maildrop file's modification time.
pub fn pickup_received(
    myhostname: &str,
    mail_name: &str,
    uid: u32,
    queue_id: &str,
    mtime: &Timestamp,
) -> String {
    format!(
        "Received: by {myhostname} ({mail_name}, from userid {uid})\n\tid {queue_id}; {}",
        mail_date(mtime)
    )
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down time (proleptic Gregorian, as gmtime(3)).
struct Civil {
    year: i64,
    month: usize,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
}

impl Civil {
    // Howard Hinnant's days-to-civil algorithm (public domain,
    // http://howardhinnant.github.io/date_algorithms.html).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn from_unix(t: i64) -> Self {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
        let year = yoe + era * 400 + i64::from(month <= 2);
        // 1970-01-01 was a Thursday.
        let weekday = (days + 4).rem_euclid(7) as usize;
        Self {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-26 20:49:16 UTC, the time of case c01 in tests/reference/delivered.mbox.
    const C01: i64 = 1_795_726_156;

    #[test]
    fn dates() {
        let cases: &[(i64, i32, &str, &str)] = &[
            (C01, 0, "UTC", "Thu, 26 Nov 2026 20:49:16 +0000 (UTC)"),
            // Live with TZ=America/St_Johns: "Thu, 26 Nov 2026 17:20:17 -0330 (NST)".
            (
                C01 + 61,
                -210,
                "NST",
                "Thu, 26 Nov 2026 17:20:17 -0330 (NST)",
            ),
            (0, 0, "UTC", "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)"),
            (
                951_782_400,
                60,
                "CET",
                "Tue, 29 Feb 2000 01:00:00 +0100 (CET)",
            ),
            (C01, 330, "IST", "Fri, 27 Nov 2026 02:19:16 +0530 (IST)"),
            (C01, -30, "XXX", "Thu, 26 Nov 2026 20:19:16 +0030 (XXX)"),
        ];
        for (unix, off, zone, want) in cases {
            let t = Timestamp {
                unix: *unix,
                utc_offset_minutes: *off,
                zone: (*zone).to_owned(),
            };
            assert_eq!(mail_date(&t), *want);
        }
    }

    #[test]
    fn message_ids() {
        // Live: Message-Id: <20261126205017.B33439900C2@mx.example.test>, in UTC even when
        // the Date: header is in NST.
        assert_eq!(
            message_id(C01 + 61, "B33439900C2", "mx.example.test", false),
            "20261126205017.B33439900C2@mx.example.test"
        );
        assert_eq!(
            message_id(C01, "4fXyZ1abcdz", "mx.example.test", true),
            "4fXyZ1abcdz@mx.example.test"
        );
    }

    fn session(helo: Option<&'static str>, protocol: Protocol) -> SmtpdSession<'static> {
        SmtpdSession {
            helo,
            client_name: "localhost",
            client_addr: ClientAddr::Ip("127.0.0.1".parse().unwrap()),
            protocol,
            tls: false,
            authenticated: false,
            smtputf8: false,
        }
    }

    // Expected texts copied from tests/reference/delivered.mbox (cases named in comments).
    #[test]
    fn smtpd_received_headers() {
        let t = Timestamp::utc(C01);
        let one = ReceivedBy {
            myhostname: "mx.example.test",
            mail_name: "Postfix",
            queue_id: Some("4377C990091"),
            single_recipient: Some("alice@mx.example.test"),
            arrival: &t,
        };
        let tail = "\tby mx.example.test (Postfix) with";
        let date = "Thu, 26 Nov 2026 20:49:16 +0000 (UTC)";
        let ehlo = session(Some("client.example.org"), Protocol::Esmtp);
        let cases: Vec<(SmtpdSession<'_>, ReceivedBy<'_>, String)> = vec![
            // c01
            (
                ehlo.clone(),
                one.clone(),
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} ESMTP id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            // c04: two recipients.
            (
                ehlo.clone(),
                ReceivedBy {
                    single_recipient: None,
                    ..one.clone()
                },
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} ESMTP id 4377C990091;\n\t{date}"
                ),
            ),
            // c08: no HELO at all.
            (
                session(None, Protocol::Smtp),
                one.clone(),
                format!(
                    "Received: from localhost (localhost [127.0.0.1])\n{tail} SMTP id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            // c09: HELO.
            (
                session(Some("client.example.org"), Protocol::Smtp),
                one.clone(),
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} SMTP id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            // c10, c11, c12: ESMTPS, ESMTPA, ESMTPSA.
            (
                SmtpdSession {
                    tls: true,
                    ..ehlo.clone()
                },
                one.clone(),
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} ESMTPS id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            (
                SmtpdSession {
                    authenticated: true,
                    ..ehlo.clone()
                },
                one.clone(),
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} ESMTPA id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            (
                SmtpdSession {
                    tls: true,
                    authenticated: true,
                    ..ehlo.clone()
                },
                one.clone(),
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} ESMTPSA id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            // c33: SMTPUTF8.
            (
                SmtpdSession {
                    smtputf8: true,
                    ..ehlo.clone()
                },
                one.clone(),
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} UTF8SMTP id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            // c14: a quoted local part in the for clause.
            (
                ehlo.clone(),
                ReceivedBy {
                    single_recipient: Some("john smith@mx.example.test"),
                    ..one.clone()
                },
                format!(
                    "Received: from client.example.org (localhost [127.0.0.1])\n{tail} ESMTP id 4377C990091\n\tfor <\"john smith\"@mx.example.test>; {date}"
                ),
            ),
            // c25: an address-literal HELO.
            (
                session(Some("[127.0.0.1]"), Protocol::Esmtp),
                one.clone(),
                format!(
                    "Received: from [127.0.0.1] (localhost [127.0.0.1])\n{tail} ESMTP id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
            // From smtpd.c and smtpd_peer.c (loopback-only rule: not seen live): an IPv6 client
            // without a name.
            (
                SmtpdSession {
                    client_name: "unknown",
                    client_addr: ClientAddr::Ip("2001:db8::1".parse().unwrap()),
                    ..ehlo.clone()
                },
                one.clone(),
                format!(
                    "Received: from client.example.org (unknown [IPv6:2001:db8::1])\n{tail} ESMTP id 4377C990091\n\tfor <alice@mx.example.test>; {date}"
                ),
            ),
        ];
        for (s, by, want) in cases {
            assert_eq!(smtpd_received(&s, &by), want);
        }
    }

    #[test]
    fn pickup_received_header() {
        // Live (sendmail -C DIR as root): the sm1 case.
        let t = Timestamp::utc(C01 + 10);
        assert_eq!(
            pickup_received("mx.example.test", "Postfix", 0, "65D84990343", &t),
            "Received: by mx.example.test (Postfix, from userid 0)\n\tid 65D84990343; Thu, 26 Nov 2026 20:49:26 +0000 (UTC)"
        );
    }
}
