//! What comes before a record's text: the `maillog_file` line prefix and the syslog header.
//!
//! `maillog_file` lines, as Postfix 3.7's postlogd writes them (util/msg_logger.c):
//!
//! ```text
//! Nov 26 20:40:05 mx postfix/submission/smtpd[1553]: connect from localhost[127.0.0.1]
//! ```
//!
//! that is `strftime("%b %d %H:%M:%S")` in local time (C locale, day zero-padded), the
//! first label of `myhostname`, the ident, `[pid]: `, then the text. Postfix 3.7 does not
//! use an ISO 8601 stamp here (checked on the live file of Debian's 3.7.11).
//!
//! Syslog datagrams, as glibc's syslog(3) sends them for Postfix (captured from /dev/log):
//!
//! ```text
//! <22>Nov 26 20:41:05 postfix/smtpd[3268]: connect from localhost[127.0.0.1]
//! ```
//!
//! with `<facility * 8 + priority>`, the same time stamp, no host name, no newline.
//!
//! The ident is `syslog_name/program` (global/mail_task.c): `postfix/smtpd`, or
//! `postfix/submission/smtpd` when master.cf sets `-o syslog_name=postfix/submission`.
//!
//! Trust: all inputs come from configuration and our own clock.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::line::Line;

/// The `syslog_name/program` tag of a log line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    /// `syslog_name` (default `postfix`, or master.cf's `-o syslog_name=...`) and the
    /// program's name (`smtpd`, `cleanup`, `qmgr`, ...). As Postfix does, only the last
    /// path component of `program` is kept.
    pub fn new(syslog_name: &str, program: &str) -> Self {
        let program = match program.rsplit_once('/') {
            Some((_, last)) if !last.is_empty() => last,
            _ => program,
        };
        Self(format!("{syslog_name}/{program}"))
    }

    /// A tag given whole (`postlog -t TAG`), as it is.
    pub fn from_tag(tag: &str) -> Self {
        Self(tag.to_owned())
    }

    /// The tag as written: `postfix/submission/smtpd`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A wall-clock time broken down for the `MMM dd HH:MM:SS` stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=60.
    pub second: u8,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Timestamp {
    /// The time `unix_seconds` shown at `utc_offset` seconds east of UTC.
    pub fn from_unix(unix_seconds: i64, utc_offset: i32) -> Self {
        let local = unix_seconds + i64::from(utc_offset);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (_, month, day) = civil_from_days(days);
        // All casts below are of values bounded by the arithmetic above (< 86_400, <= 31).
        Self {
            month,
            day,
            hour: u8::try_from(secs / 3600).unwrap_or(0),
            minute: u8::try_from(secs % 3600 / 60).unwrap_or(0),
            second: u8::try_from(secs % 60).unwrap_or(0),
        }
    }

    /// Now, in the local time zone (see [`crate::writer::local_utc_offset`]).
    pub fn now() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2));
        Self::from_unix(now, crate::writer::local_utc_offset(now))
    }
}

/// `Nov 26 20:40:05` (day zero-padded, as `%d` pads it).
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let month = MONTHS[usize::from(self.month.clamp(1, 12) - 1)];
        write!(
            f,
            "{month} {:02} {:02}:{:02}:{:02}",
            self.day, self.hour, self.minute, self.second
        )
    }
}

/// One `maillog_file` line without its newline:
/// `STAMP HOST IDENT[PID]: TEXT`, with only the first label of `myhostname`.
pub fn file_line(
    stamp: Timestamp,
    myhostname: &str,
    ident: &Ident,
    pid: u32,
    line: &Line,
) -> String {
    let host = myhostname.split('.').next().unwrap_or(myhostname);
    let mut out = String::with_capacity(64 + line.text().len());
    // Writing to a String cannot fail.
    let _ = write!(out, "{stamp} {host} {ident}[{pid}]: {line}");
    out
}

/// One syslog datagram: `<PRI>STAMP IDENT[PID]: TEXT`, PRI being `facility * 8 + level`
/// (RFC 3164 section 4.1.1; `facility` is the code from [`crate::writer::facility_code`]).
pub fn syslog_datagram(
    facility: u8,
    stamp: Timestamp,
    ident: &Ident,
    pid: u32,
    line: &Line,
) -> String {
    let pri = u16::from(facility) * 8 + u16::from(line.severity().syslog_priority());
    let mut out = String::with_capacity(64 + line.text().len());
    // Writing to a String cannot fail.
    let _ = write!(out, "<{pri}>{stamp} {ident}[{pid}]: {line}");
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction.
    (
        year,
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents() {
        let cases = [
            ("postfix", "smtpd", "postfix/smtpd"),
            ("postfix/submission", "smtpd", "postfix/submission/smtpd"),
            ("postfix", "/usr/lib/postfix/sbin/qmgr", "postfix/qmgr"),
            ("postfix", "postfix-script", "postfix/postfix-script"),
        ];
        for (name, program, want) in cases {
            assert_eq!(Ident::new(name, program).as_str(), want);
        }
    }

    #[test]
    fn stamps() {
        let cases = [
            (0, 0, "Jan 01 00:00:00"),
            (1_795_725_605, 0, "Nov 26 20:40:05"),
            (1_795_725_605, 3600, "Nov 26 21:40:05"),
            (951_782_400, 0, "Feb 29 00:00:00"),
            (1_704_067_199, 0, "Dec 31 23:59:59"),
            (1_704_067_199, -86_400, "Dec 30 23:59:59"),
        ];
        for (unix, offset, want) in cases {
            assert_eq!(
                Timestamp::from_unix(unix, offset).to_string(),
                want,
                "{unix}"
            );
        }
    }

    #[test]
    fn file_line_and_datagram() {
        let stamp = Timestamp {
            month: 11,
            day: 5,
            hour: 7,
            minute: 8,
            second: 9,
        };
        let ident = Ident::new("postfix/submission", "smtpd");
        let line = Line::warning("x");
        assert_eq!(
            file_line(stamp, "mx.example.test", &ident, 42, &line),
            "Nov 05 07:08:09 mx postfix/submission/smtpd[42]: warning: x"
        );
        assert_eq!(
            syslog_datagram(2, stamp, &ident, 42, &line),
            "<20>Nov 05 07:08:09 postfix/submission/smtpd[42]: warning: x"
        );
    }
}
