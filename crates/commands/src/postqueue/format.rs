//! The two listings postqueue prints from the showq stream, byte for byte as Postfix 3.7:
//! `-p` (postqueue/showq_compat.c, the Sendmail `mailq` layout) and `-j`
//! (postqueue/showq_json.c, one JSON object per message).
//!
//! Both read events from [`Decoder`] and write as they go: nothing accumulates but the
//! previous recipient's reason (for `-p`) and the totals.

use std::fmt::Write as _;
use std::io::{BufRead, Write};

use tern_daemon::showq::proto::{Decoder, Event, Message, ProtoError};

/// Why a listing stopped: the stream (Postfix: `malformed showq server response`,
/// EX_SOFTWARE) or standard output (`output write error: %m`, EX_IOERR).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Proto(#[from] ProtoError),
    #[error("output write error: {}", tern_config::text::errno_text(.0))]
    Output(std::io::Error),
}

/// `postqueue -p`. `long_ids` is enable_long_queue_ids, which picks the column widths.
pub fn compat<R: BufRead>(
    d: &mut Decoder<R>,
    long_ids: bool,
    tz: &dyn Fn(i64) -> i32,
    out: &mut dyn Write,
) -> Result<(), ListError> {
    let mut files: u64 = 0;
    let mut total: u64 = 0;
    let mut reason = String::new();
    loop {
        let event = d.next_event()?;
        let text = match event {
            None | Some(Event::End) => break,
            Some(Event::Message(m)) => {
                let mut s = String::new();
                if files > 0 {
                    s.push('\n');
                } else {
                    s.push_str(&headings(long_ids));
                }
                files += 1;
                total = total.saturating_add(m.message_size);
                reason.clear();
                s.push_str(&sender_line(&m, long_ids, tz));
                s
            }
            Some(Event::Recipient(r)) => {
                let mut s = String::new();
                // showq_message: a reason line only when it differs from the previous
                // recipient's; "reason unavailable" when a reason is followed by none.
                if r.reason != reason {
                    reason.clone_from(&r.reason);
                    s.push_str(&reason_line(&reason));
                }
                s.push_str(&recipient_line(&r.address, long_ids));
                s
            }
            Some(Event::EndMessage) => {
                // Each message is flushed as a whole, as showq_compat does.
                out.flush().map_err(output_error)?;
                continue;
            }
        };
        out.write_all(text.as_bytes()).map_err(output_error)?;
    }
    out.write_all(summary(files, total).as_bytes())
        .and_then(|()| out.flush())
        .map_err(output_error)
}

/// `postqueue -j`.
pub fn json<R: BufRead>(d: &mut Decoder<R>, out: &mut dyn Write) -> Result<(), ListError> {
    let mut line = String::new();
    let mut count = 0;
    loop {
        match d.next_event()? {
            None | Some(Event::End) => break,
            Some(Event::Message(m)) => {
                line = format!(
                    "{{\"queue_name\": \"{}\", \"queue_id\": \"{}\", \"arrival_time\": {}, \
                     \"message_size\": {}, \"forced_expire\": {}, \"sender\": \"{}\", \
                     \"recipients\": [",
                    json_quote(&m.queue_name),
                    json_quote(&m.queue_id),
                    m.arrival_time,
                    m.message_size,
                    m.forced_expire,
                    json_quote(&m.sender),
                );
                count = 0;
            }
            Some(Event::Recipient(r)) => {
                if count > 0 {
                    line.push_str(", ");
                }
                count += 1;
                let _ = write!(line, "{{\"address\": \"{}\"", json_quote(&r.address));
                if !r.reason.is_empty() {
                    let _ = write!(line, ", \"delay_reason\": \"{}\"", json_quote(&r.reason));
                }
                line.push('}');
                // Bound the line being built: write what is done (Postfix streams too).
                if line.len() > 64 * 1024 {
                    out.write_all(line.as_bytes()).map_err(output_error)?;
                    line.clear();
                }
            }
            Some(Event::EndMessage) => {
                line.push_str("]}\n");
                out.write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(output_error)?;
                line.clear();
            }
        }
    }
    out.flush().map_err(output_error)
}

/// A reader that stopped reading is not an error (`mailq | head`).
fn output_error(e: std::io::Error) -> ListError {
    ListError::Output(e)
}

/// The column headings (S_HEADINGS / L_HEADINGS in S_STRING_FORMAT / L_STRING_FORMAT).
pub fn headings(long_ids: bool) -> String {
    if long_ids {
        format!(
            "{:<17} {:>8} {:<19} {}\n",
            "----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------"
        )
    } else {
        format!(
            "{:<11} {:>7} {:<20} {}\n",
            "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------"
        )
    }
}

/// The message's first line: id with its marks (`*` active, `!` hold, `#` forced to
/// expire), size, arrival time (asctime(3), cut to 20 or 19 characters), sender.
pub fn sender_line(m: &Message, long_ids: bool, tz: &dyn Fn(i64) -> i32) -> String {
    let mut id = m.queue_id.clone();
    match m.queue_name.as_str() {
        "active" => id.push('*'),
        "hold" => id.push('!'),
        _ => {}
    }
    if m.forced_expire {
        id.push('#');
    }
    let when = asctime(m.arrival_time, tz(m.arrival_time));
    if long_ids {
        format!("{id:<17} {:>8} {:.19} {}\n", m.message_size, when, m.sender)
    } else {
        format!("{id:<11} {:>7} {:.20} {}\n", m.message_size, when, m.sender)
    }
}

/// `(reason)` right-aligned so that it ends in column 78 (76 minus its length in
/// spaces; none when longer: the line is not wrapped).
pub fn reason_line(reason: &str) -> String {
    let shown = if reason.is_empty() {
        "reason unavailable"
    } else {
        reason
    };
    // printf's %*s counts bytes; so does Postfix's strlen.
    let pad = 76usize.saturating_sub(shown.len());
    format!("{:pad$}({shown})\n", "")
}

/// A recipient, under the sender: the three empty columns, then the address.
pub fn recipient_line(address: &str, long_ids: bool) -> String {
    if long_ids {
        format!("{:<17} {:>8} {:<19} {address}\n", "", "", "")
    } else {
        format!("{:<11} {:>7} {:<20} {address}\n", "", "", "")
    }
}

/// `Mail queue is empty`, or `-- N Kbytes in M Request(s).` after a blank line.
pub fn summary(files: u64, total_size: u64) -> String {
    if files == 0 {
        "Mail queue is empty\n".to_owned()
    } else {
        format!(
            "\n-- {} Kbytes in {files} Request{}.\n",
            total_size / 1024,
            if files == 1 { "" } else { "s" }
        )
    }
}

/// asctime(localtime(t)) without its newline (`Fri Nov 27 06:06:42 2026`, the day of
/// the month padded with a space); `offset` is the local offset from UTC in seconds.
/// The one From_-line formatter of the delivery crate.
pub use tern_delivery::mailbox::copy::asctime;

/// showq_json.c's json_quote: `\b \f \n \r \t` short, other controls `\u00XX`,
/// `"` and `\` escaped, the rest as is.
pub fn json_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_daemon::showq::Entry;
    use tern_daemon::showq::proto::{self, RecipientLine};

    fn utc(_: i64) -> i32 {
        0
    }

    fn stream(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        proto::encode_greeting(&mut out);
        for e in entries {
            e.encode(&mut out);
        }
        proto::encode_end(&mut out);
        out
    }

    fn entry(queue: &str, id: &str, size: u64, sender: &str, rcpts: &[(&str, &str)]) -> Entry {
        Entry {
            message: Message {
                queue_name: queue.into(),
                queue_id: id.into(),
                arrival_time: 1_700_000_000,
                message_size: size,
                forced_expire: false,
                sender: sender.into(),
            },
            recipients: rcpts
                .iter()
                .map(|(a, r)| RecipientLine {
                    address: (*a).into(),
                    reason: (*r).into(),
                })
                .collect(),
        }
    }

    fn compat_text(entries: &[Entry], long: bool) -> String {
        let bytes = stream(entries);
        let mut out = Vec::new();
        compat(&mut Decoder::new(&bytes[..]), long, &utc, &mut out).expect("lists");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn empty_queue() {
        assert_eq!(compat_text(&[], false), "Mail queue is empty\n");
        let bytes = stream(&[]);
        let mut out = Vec::new();
        json(&mut Decoder::new(&bytes[..]), &mut out).expect("lists");
        assert!(out.is_empty());
    }

    #[test]
    fn compat_layout() {
        let long_reason = "x".repeat(90);
        let got = compat_text(
            &[
                entry(
                    "deferred",
                    "4C1D2E3F4A",
                    2048,
                    "sender@example.com",
                    &[
                        (
                            "a@example.com",
                            "connect to 127.0.0.1[127.0.0.1]:1: Connection refused",
                        ),
                        (
                            "b@example.com",
                            "connect to 127.0.0.1[127.0.0.1]:1: Connection refused",
                        ),
                        ("c@example.com", ""),
                        ("d@example.com", &long_reason),
                    ],
                ),
                entry(
                    "active",
                    "ABC",
                    100,
                    "MAILER-DAEMON",
                    &[("e@example.com", "")],
                ),
                entry("hold", "DEF", 10, "s@x", &[]),
            ],
            false,
        );
        let ind = " ".repeat(41);
        let refused = "connect to 127.0.0.1[127.0.0.1]:1: Connection refused";
        let want = [
            "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------".to_owned(),
            "4C1D2E3F4A     2048 Tue Nov 14 22:13:20  sender@example.com".to_owned(),
            format!("{}({refused})", " ".repeat(76 - refused.len())),
            format!("{ind}a@example.com"),
            format!("{ind}b@example.com"),
            format!("{}(reason unavailable)", " ".repeat(76 - 18)),
            format!("{ind}c@example.com"),
            format!("({long_reason})"),
            format!("{ind}d@example.com"),
            String::new(),
            "ABC*            100 Tue Nov 14 22:13:20  MAILER-DAEMON".to_owned(),
            format!("{ind}e@example.com"),
            String::new(),
            "DEF!             10 Tue Nov 14 22:13:20  s@x".to_owned(),
            String::new(),
            "-- 2 Kbytes in 3 Requests.\n".to_owned(),
        ]
        .join("\n");
        assert_eq!(got, want);
    }

    #[test]
    fn long_id_layout() {
        let got = compat_text(
            &[entry(
                "incoming",
                "4jb7hF40Rlz1SWT6",
                1023,
                "a@b",
                &[("c@d", "")],
            )],
            true,
        );
        let want = [
            "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------".to_owned(),
            "4jb7hF40Rlz1SWT6      1023 Tue Nov 14 22:13:20 a@b".to_owned(),
            format!("{}c@d", " ".repeat(47)),
            String::new(),
            "-- 0 Kbytes in 1 Request.\n".to_owned(),
        ]
        .join("\n");
        assert_eq!(got, want);
    }

    #[test]
    fn json_layout() {
        let mut e = entry(
            "deferred",
            "ABC",
            5,
            "",
            &[("a\"b@x", "why\tnot"), ("c@x", "")],
        );
        e.message.forced_expire = true;
        let bytes = stream(&[e]);
        let mut out = Vec::new();
        json(&mut Decoder::new(&bytes[..]), &mut out).expect("lists");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "{\"queue_name\": \"deferred\", \"queue_id\": \"ABC\", \"arrival_time\": 1700000000, \
\"message_size\": 5, \"forced_expire\": true, \"sender\": \"\", \"recipients\": \
[{\"address\": \"a\\\"b@x\", \"delay_reason\": \"why?not\"}, {\"address\": \"c@x\"}]}\n"
        );
    }

    #[test]
    fn quoting_and_times() {
        let table = [
            ("plain", "plain"),
            ("a\"b\\c", "a\\\"b\\\\c"),
            ("\u{1}\u{7f}\n", "\\u0001\\u007F\\n"),
        ];
        for (input, want) in table {
            assert_eq!(json_quote(input), want, "{input:?}");
        }
        let times = [
            (0, 0, "Thu Jan  1 00:00:00 1970"),
            (1_700_000_000, 0, "Tue Nov 14 22:13:20 2023"),
            (1_700_000_000, 3600, "Tue Nov 14 23:13:20 2023"),
            (951_782_400, 0, "Tue Feb 29 00:00:00 2000"),
        ];
        for (t, off, want) in times {
            assert_eq!(asctime(t, off), want, "{t}");
        }
    }

    #[test]
    fn summary_lines() {
        let table = [
            (0, 0, "Mail queue is empty\n"),
            (1, 1023, "\n-- 0 Kbytes in 1 Request.\n"),
            (2, 4096, "\n-- 4 Kbytes in 2 Requests.\n"),
        ];
        for (files, size, want) in table {
            assert_eq!(summary(files, size), want);
        }
    }

    #[test]
    fn malformed_stream_is_an_error() {
        let mut bytes = stream(&[entry("active", "A", 1, "s", &[("r", "")])]);
        bytes.truncate(bytes.len() - 3);
        let mut out = Vec::new();
        let err =
            compat(&mut Decoder::new(&bytes[..]), false, &utc, &mut out).expect_err("truncated");
        assert_eq!(err.to_string(), "malformed showq server response");
    }
}
