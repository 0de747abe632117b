//! The maildrop file: what `sendmail` hands to `postdrop`, what `postdrop` writes into
//! `maildrop/`, and what the daemon's pickup reads back (Postfix's sendmail -> postdrop
//! -> maildrop -> pickup -> cleanup path, with a format of Tern's own).
//!
//! The format is text, so that an admin can read a stuck file with `cat`:
//!
//! ```text
//! TERN-MAILDROP 1
//! sender user            (the envelope sender; `sender` alone: the null sender)
//! fullname Jane Doe      (sendmail -F, or the user's GECOS name)
//! notify 6               (DSN NOTIFY bits, tern_queue::Notify)
//! ret full|hdrs          (DSN RET)
//! envid xyz              (DSN ENVID)
//! body 8bitmime|7bit     (sendmail -B)
//! verify                 (sendmail -bv: a probe, see MessageFlags::VERIFY)
//! rcpt user@example.com  (one line per recipient, in order)
//!                        (an empty line ends the envelope)
//! Subject: hello         (the message: LF-terminated lines, as sendmail read them)
//! ```
//!
//! The envelope comes first because postdrop and pickup must know it before the
//! content; values never hold a newline or a NUL (sendmail refuses such arguments).
//! The content is copied as it is, NUL bytes and long lines included.
//!
//! A finished file has mode 0444 (Postfix's postdrop uses the same mode); postdrop
//! writes it with 0600 and changes the mode after its fsync, so pickup can tell a file
//! that is still being written (or whose writer died) from a finished one.
//!
//! # Security
//! `postdrop` runs set-gid with a local user's input, and pickup reads files that any
//! local user made through postdrop: [`Envelope::read`] trusts nothing. The header line
//! and each envelope line are read with a length cap ([`MAX_LINE`]), the number of
//! recipients is capped ([`MAX_RECIPIENTS`]), an unknown keyword or a malformed value is
//! an error, and nothing panics on any input.

use std::io::{self, BufRead, Write};

use crate::file::DsnRet;

/// The first line of every maildrop file.
pub const MAGIC: &str = "TERN-MAILDROP 1";
/// The longest envelope line accepted (an address is at most a few hundred bytes; a
/// full name or ENVID less).
pub const MAX_LINE: usize = 4096;
/// The most recipients one submission may name.
pub const MAX_RECIPIENTS: usize = 10_000;
/// The mode of a finished maildrop file.
pub const READY_MODE: u32 = 0o444;

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MaildropError {
    #[error("not a maildrop file")]
    Magic,
    #[error("envelope line too long")]
    LineTooLong,
    #[error("too many recipients (limit {MAX_RECIPIENTS})")]
    TooManyRecipients,
    #[error("unexpected end of file in the envelope")]
    Truncated,
    #[error("malformed envelope line: {0}")]
    Malformed(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The envelope of one submission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The envelope sender as given (`-f`, or the login name); empty: the null sender.
    pub sender: String,
    /// The sender's full name for a From: header cleanup adds.
    pub full_name: Option<String>,
    /// DSN NOTIFY bits (0: none given).
    pub notify: u8,
    pub ret: Option<DsnRet>,
    pub envid: Option<String>,
    /// `-B 8BITMIME`: true; `-B 7BIT` or nothing: false.
    pub eight_bit: bool,
    /// `sendmail -bv`: verify the recipients and report, deliver nothing.
    pub verify: bool,
    /// MAIL FROM ... SMTPUTF8 (`sendmail -bs`).
    pub smtputf8: bool,
    pub recipients: Vec<String>,
    /// Each recipient's own DSN attributes, by index (shorter than `recipients` or
    /// empty: none; a recipient's NOTIFY 0 means the envelope's `notify`).
    pub rcpt_dsn: Vec<RcptDsn>,
}

/// One recipient's DSN attributes (RFC 3461 RCPT TO NOTIFY= and ORCPT=).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptDsn {
    /// NOTIFY bits; 0: none of its own.
    pub notify: u8,
    /// ORCPT as stored: `rfc822;user@example.com`.
    pub orcpt: Option<String>,
}

impl Envelope {
    /// Recipient `i`'s DSN attributes (the default when it has none).
    pub fn dsn(&self, i: usize) -> RcptDsn {
        self.rcpt_dsn.get(i).cloned().unwrap_or_default()
    }
}

impl Envelope {
    /// Writes the magic line and the envelope, ending with the empty line. Fails when a
    /// value holds a newline, carriage return or NUL (it would change the meaning of the
    /// file).
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut text = format!("{MAGIC}\n");
        let mut put = |key: &str, value: &str| -> io::Result<()> {
            if value.contains(['\n', '\r', '\0']) || value.len() + key.len() + 2 > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad {key} value"),
                ));
            }
            text.push_str(key);
            if !value.is_empty() {
                text.push(' ');
                text.push_str(value);
            }
            text.push('\n');
            Ok(())
        };
        put("sender", &self.sender)?;
        if let Some(name) = &self.full_name {
            put("fullname", name)?;
        }
        if self.notify != 0 {
            put("notify", &self.notify.to_string())?;
        }
        if let Some(ret) = self.ret {
            put(
                "ret",
                match ret {
                    DsnRet::Full => "full",
                    DsnRet::Hdrs => "hdrs",
                },
            )?;
        }
        if let Some(envid) = &self.envid {
            put("envid", envid)?;
        }
        if self.eight_bit {
            put("body", "8bitmime")?;
        }
        if self.verify {
            put("verify", "")?;
        }
        if self.smtputf8 {
            put("smtputf8", "")?;
        }
        for (i, r) in self.recipients.iter().enumerate() {
            let dsn = self.dsn(i);
            if dsn.notify != 0 {
                put("rcpt-notify", &dsn.notify.to_string())?;
            }
            if let Some(orcpt) = &dsn.orcpt {
                put("rcpt-orcpt", orcpt)?;
            }
            put("rcpt", r)?;
        }
        text.push('\n');
        out.write_all(text.as_bytes())
    }

    /// Reads the magic line and the envelope up to and including the empty line; the
    /// reader is then at the first content byte.
    pub fn read(input: &mut impl BufRead) -> Result<Envelope, MaildropError> {
        let mut line = Vec::new();
        let mut next = |line: &mut Vec<u8>| -> Result<String, MaildropError> {
            line.clear();
            let n = io::Read::take(&mut *input, MAX_LINE as u64 + 1).read_until(b'\n', line)?;
            if n == 0 {
                return Err(MaildropError::Truncated);
            }
            if line.last() != Some(&b'\n') {
                return Err(if n > MAX_LINE {
                    MaildropError::LineTooLong
                } else {
                    MaildropError::Truncated
                });
            }
            line.pop();
            String::from_utf8(std::mem::take(line))
                .map_err(|_| MaildropError::Malformed("not UTF-8".into()))
        };
        if next(&mut line)? != MAGIC {
            return Err(MaildropError::Magic);
        }
        let mut env = Envelope::default();
        let mut seen_sender = false;
        // rcpt-notify / rcpt-orcpt seen for the next rcpt line.
        let mut pending = RcptDsn::default();
        loop {
            let text = next(&mut line)?;
            if text.is_empty() {
                break;
            }
            if text.contains(['\r', '\0']) {
                return Err(MaildropError::Malformed(printable(&text)));
            }
            let (key, value) = text.split_once(' ').unwrap_or((text.as_str(), ""));
            match key {
                "sender" if !seen_sender => {
                    value.clone_into(&mut env.sender);
                    seen_sender = true;
                }
                "fullname" => env.full_name = Some(value.to_owned()),
                "notify" => {
                    env.notify = value
                        .parse()
                        .map_err(|_| MaildropError::Malformed(printable(&text)))?;
                }
                "ret" => {
                    env.ret = Some(match value {
                        "full" => DsnRet::Full,
                        "hdrs" => DsnRet::Hdrs,
                        _ => return Err(MaildropError::Malformed(printable(&text))),
                    });
                }
                "envid" => env.envid = Some(value.to_owned()),
                "body" => {
                    env.eight_bit = match value {
                        "8bitmime" => true,
                        "7bit" => false,
                        _ => return Err(MaildropError::Malformed(printable(&text))),
                    };
                }
                "verify" if value.is_empty() => env.verify = true,
                "smtputf8" if value.is_empty() => env.smtputf8 = true,
                "rcpt-notify" => {
                    pending.notify = value
                        .parse()
                        .map_err(|_| MaildropError::Malformed(printable(&text)))?;
                }
                "rcpt-orcpt" => pending.orcpt = Some(value.to_owned()),
                "rcpt" => {
                    if env.recipients.len() >= MAX_RECIPIENTS {
                        return Err(MaildropError::TooManyRecipients);
                    }
                    env.recipients.push(value.to_owned());
                    env.rcpt_dsn.push(std::mem::take(&mut pending));
                }
                _ => return Err(MaildropError::Malformed(printable(&text))),
            }
        }
        if !seen_sender {
            return Err(MaildropError::Malformed("no sender line".into()));
        }
        if pending != RcptDsn::default() {
            return Err(MaildropError::Malformed(
                "recipient attributes without a recipient".into(),
            ));
        }
        // No recipient with attributes of its own: the short form.
        if env.rcpt_dsn.iter().all(|d| *d == RcptDsn::default()) {
            env.rcpt_dsn.clear();
        }
        Ok(env)
    }
}

/// `text` with control characters replaced, at most 100 characters, for an error text.
fn printable(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Envelope {
        Envelope {
            sender: "jane".into(),
            full_name: Some("Jane Doe".into()),
            notify: 6,
            ret: Some(DsnRet::Hdrs),
            envid: Some("E1".into()),
            eight_bit: true,
            verify: true,
            smtputf8: true,
            recipients: vec!["a@example.com".into(), "b".into()],
            rcpt_dsn: vec![
                RcptDsn {
                    notify: 2,
                    orcpt: Some("rfc822;orig@example.com".into()),
                },
                RcptDsn::default(),
            ],
        }
    }

    #[test]
    fn round_trip_leaves_the_content() {
        for env in [full(), Envelope::default()] {
            let mut bytes = Vec::new();
            env.write(&mut bytes).unwrap();
            bytes.extend_from_slice(b"Subject: x\n\nbody\0\n");
            let mut input = &bytes[..];
            assert_eq!(Envelope::read(&mut input).unwrap(), env);
            assert_eq!(input, b"Subject: x\n\nbody\0\n");
        }
    }

    #[test]
    fn bad_files_are_refused() {
        let long = format!("{MAGIC}\nsender {}\n\n", "x".repeat(MAX_LINE));
        let many = format!(
            "{MAGIC}\nsender\n{}\n",
            "rcpt a\n".repeat(MAX_RECIPIENTS + 1)
        );
        let table: &[(&str, &str)] = &[
            ("", "unexpected end"),
            ("TERN-MAILDROP 2\n", "not a maildrop"),
            (&format!("{MAGIC}\nsender a\n"), "unexpected end"),
            (&format!("{MAGIC}\nsender a"), "unexpected end"),
            (&format!("{MAGIC}\nrcpt a\n\n"), "no sender"),
            (&format!("{MAGIC}\nsender a\nbogus 1\n\n"), "malformed"),
            (&format!("{MAGIC}\nsender a\nsender b\n\n"), "malformed"),
            (&format!("{MAGIC}\nsender a\nnotify x\n\n"), "malformed"),
            (&format!("{MAGIC}\nsender a\nret some\n\n"), "malformed"),
            (&format!("{MAGIC}\nsender a\nverify 1\n\n"), "malformed"),
            (&format!("{MAGIC}\nsender a\r\n\n"), "malformed"),
            (
                &format!("{MAGIC}\nsender a\nrcpt-notify 2\n\n"),
                "without a recipient",
            ),
            (
                &format!("{MAGIC}\nsender a\nrcpt-notify x\nrcpt b\n\n"),
                "malformed",
            ),
            (&long, "too long"),
            (&many, "too many"),
        ];
        for (input, want) in table {
            let err = Envelope::read(&mut input.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{input:.60?}: {err}");
        }
    }

    #[test]
    fn values_with_newlines_are_not_written() {
        let mut env = full();
        env.recipients.push("evil\nrcpt root".into());
        assert!(env.write(&mut Vec::new()).is_err());
        let mut env = full();
        env.sender = "a\0b".into();
        assert!(env.write(&mut Vec::new()).is_err());
    }
}
