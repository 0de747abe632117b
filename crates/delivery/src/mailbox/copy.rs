//! mail_copy(3): a message as it goes into a mailbox file, a Maildir file or a `/file`
//! destination, with the envelope lines in front.
//!
//! In order (global/mail_copy.c): `From SENDER  DATE` (two spaces; `MAILER-DAEMON` for the
//! null sender; DATE as asctime(3) gives the local time of the delivery, `%.24s`), then
//! `Return-Path: <SENDER>`, `X-Original-To: ADDR` (left out when the original recipient is
//! empty), `Delivered-To: ADDR`; addresses are in quote_822_local(3) form. Then the message
//! lines, each with a `>` in front when it starts with `From ` (MAIL_COPY_QUOTE), a line
//! end after a last line that had none, and a blank line at the end (MAIL_COPY_BLANK) so that
//! the next `From ` line starts a new message.
//!
//! Sans-IO apart from the `Write`/`BufRead` it is given: no clock (the date is passed in),
//! no files. The content is the message as the queue keeps it: LF-terminated lines
//! (docs/queue-format.md).

use std::io::{self, BufRead, Write};

use tern_message::address::quote_822_local;

use super::CopyInfo;

/// Which parts mail_copy(3) writes (its MAIL_COPY_* flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFlags {
    /// MAIL_COPY_FROM: the `From ` line.
    pub from_line: bool,
    /// MAIL_COPY_QUOTE: `>From ` for body lines that start with `From `.
    pub quote_from: bool,
    /// MAIL_COPY_BLANK: an empty line after the message.
    pub blank_line: bool,
}

impl CopyFlags {
    /// MAIL_COPY_MBOX: a mailbox file.
    pub const MBOX: CopyFlags = CopyFlags {
        from_line: true,
        quote_from: true,
        blank_line: true,
    };
    /// A Maildir file: the headers only (MAIL_COPY_TOFILE | RETURN_PATH | ORIG_RCPT |
    /// DELIVERED).
    pub const MAILDIR: CopyFlags = CopyFlags {
        from_line: false,
        quote_from: false,
        blank_line: false,
    };
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the queue file failed: `error reading message: %m`.
    #[error("error reading message: {}", super::strerror(.0))]
    Read(io::Error),
    /// Writing the destination failed: `error writing message: %m`.
    #[error("error writing message: {}", super::strerror(.0))]
    Write(io::Error),
}

/// The date of a `From ` line: asctime(3) without its newline, `Fri Nov 27 00:11:38 2026`
/// (the day of month space-padded), for `unix` seconds shifted by `utc_offset` seconds.
pub fn asctime(unix: i64, utc_offset: i32) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = unix + i64::from(utc_offset);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday; both indexes are in range by rem_euclid and the month
    // algorithm's 1..=12.
    let weekday = usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0);
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{} {month_name} {day:>2} {:02}:{:02}:{:02} {year}",
        DAYS[weekday],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
    )
}

/// Howard Hinnant's days-to-civil algorithm (public domain): (year, month 1..=12, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The lines before the message: `From `, `Return-Path:`, `X-Original-To:`,
/// `Delivered-To:`, each with `\n`. `date` is [`asctime`]'s text.
pub fn envelope_lines(info: &CopyInfo<'_>, flags: CopyFlags, date: &str) -> Vec<u8> {
    let mut out = Vec::new();
    // quote_822_local("") would be `""`; mail_copy writes `<>` and `MAILER-DAEMON`.
    let sender = if info.sender.is_empty() {
        String::new()
    } else {
        quote_822_local(info.sender)
    };
    if flags.from_line {
        let who = if info.sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            sender.as_str()
        };
        out.extend_from_slice(format!("From {who}  {date}\n").as_bytes());
    }
    if info.return_path {
        out.extend_from_slice(format!("Return-Path: <{sender}>\n").as_bytes());
    }
    // mail_copy.c: "An empty original recipient record almost certainly means that
    // original recipient processing was disabled."
    if let Some(orig) = info.original_to.filter(|o| !o.is_empty()) {
        out.extend_from_slice(format!("X-Original-To: {}\n", quote_822_local(orig)).as_bytes());
    }
    if let Some(delivered) = info.delivered_to {
        out.extend_from_slice(format!("Delivered-To: {}\n", quote_822_local(delivered)).as_bytes());
    }
    out
}

/// Copies the envelope lines and the message to `dst`; returns the bytes written. Does not
/// flush or sync `dst` (the caller owns the file).
pub fn copy(
    dst: &mut dyn Write,
    info: &CopyInfo<'_>,
    flags: CopyFlags,
    date: &str,
    content: &mut dyn BufRead,
) -> Result<u64, CopyError> {
    let head = envelope_lines(info, flags, date);
    dst.write_all(&head).map_err(CopyError::Write)?;
    let mut written = head.len() as u64;
    let mut line = Vec::with_capacity(1024);
    let mut ended = true;
    loop {
        line.clear();
        let n = content
            .read_until(b'\n', &mut line)
            .map_err(CopyError::Read)?;
        if n == 0 {
            break;
        }
        if flags.quote_from && line.starts_with(b"From ") {
            dst.write_all(b">").map_err(CopyError::Write)?;
            written += 1;
        }
        dst.write_all(&line).map_err(CopyError::Write)?;
        written += line.len() as u64;
        ended = line.ends_with(b"\n");
    }
    // mail_copy.c: a last line that was not terminated gets its line end ...
    if !ended {
        dst.write_all(b"\n").map_err(CopyError::Write)?;
        written += 1;
    }
    // ... and the mbox form ends in a blank line "so that the next ugly From_ can be found
    // by mail reading software".
    if flags.blank_line {
        dst.write_all(b"\n").map_err(CopyError::Write)?;
        written += 1;
    }
    Ok(written)
}

/// A writer that fails with `EFBIG` once the file would grow past `limit` bytes, as a write
/// past RLIMIT_FSIZE does: Postfix enforces mailbox_size_limit and virtual_mailbox_limit by
/// setting the process's file size limit (set_file_limit(3)). `start` is the file's size
/// before the delivery; `limit` 0 means no limit.
pub struct Limited<W> {
    pub inner: W,
    pub start: u64,
    pub written: u64,
    pub limit: u64,
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.limit > 0 && self.start + self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::from_raw_os_error(
                nix::errno::Errno::EFBIG as i32,
            ));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>(sender: &'a str, orig: Option<&'a str>) -> CopyInfo<'a> {
        CopyInfo {
            sender,
            arrival: 0,
            delivered_to: Some("u@example.test"),
            original_to: orig,
            return_path: true,
        }
    }

    #[test]
    fn asctime_forms() {
        let table: &[(i64, i32, &str)] = &[
            (0, 0, "Thu Jan  1 00:00:00 1970"),
            (1_795_738_298, 0, "Fri Nov 27 00:11:38 2026"),
            (1_795_738_298, 3600, "Fri Nov 27 01:11:38 2026"),
            (951_782_400, 0, "Tue Feb 29 00:00:00 2000"),
            (1_795_738_298, -3600, "Thu Nov 26 23:11:38 2026"),
        ];
        for (t, off, want) in table {
            assert_eq!(asctime(*t, *off), *want);
        }
    }

    #[test]
    fn mbox_copies() {
        let date = "Fri Nov 27 00:11:38 2026";
        let table: &[(&str, Option<&str>, &str, &str)] = &[
            (
                "a@b",
                Some("x@y"),
                "Subject: s\n\nFrom me\n>From you\nFrom\nline\n",
                "From a@b  DATE\nReturn-Path: <a@b>\nX-Original-To: x@y\n\
                 Delivered-To: u@example.test\nSubject: s\n\n>From me\n>From you\nFrom\nline\n\n",
            ),
            (
                "",
                Some(""),
                "Subject: s\n\nno end",
                "From MAILER-DAEMON  DATE\nReturn-Path: <>\nDelivered-To: u@example.test\n\
                 Subject: s\n\nno end\n\n",
            ),
            (
                "john smith@b",
                None,
                "\n",
                "From \"john smith\"@b  DATE\nReturn-Path: <\"john smith\"@b>\n\
                 Delivered-To: u@example.test\n\n\n",
            ),
        ];
        for (sender, orig, content, want) in table {
            let mut out = Vec::new();
            let n = copy(
                &mut out,
                &info(sender, *orig),
                CopyFlags::MBOX,
                date,
                &mut content.as_bytes(),
            )
            .unwrap();
            let want = want.replace("DATE", date);
            assert_eq!(String::from_utf8(out).unwrap(), want);
            assert_eq!(n, want.len() as u64);
        }
    }

    #[test]
    fn maildir_copy_has_no_from_line_and_no_quoting() {
        let mut out = Vec::new();
        copy(
            &mut out,
            &info("a@b", Some("x@y")),
            CopyFlags::MAILDIR,
            "",
            &mut &b"S: x\n\nFrom me\n"[..],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Return-Path: <a@b>\nX-Original-To: x@y\nDelivered-To: u@example.test\n\
             S: x\n\nFrom me\n"
        );
    }

    #[test]
    fn limit_gives_efbig() {
        let mut w = Limited {
            inner: Vec::new(),
            start: 90,
            written: 0,
            limit: 100,
        };
        assert!(w.write_all(b"0123456789").is_ok());
        let e = w.write_all(b"x").unwrap_err();
        assert_eq!(super::super::strerror(&e), "File too large");
        assert_eq!(
            CopyError::Write(e).to_string(),
            "error writing message: File too large"
        );
    }
}
