//! The showq protocol, sans-IO: what the showq service sends to `postqueue -p` / `-j`.
//!
//! It is Postfix's own (showq.c, postqueue/showq_compat.c): attributes in Postfix's
//! "attr0" encoding (util/attr_print0.c), each a NUL-terminated name followed by a
//! NUL-terminated value, a list ended by one more NUL. Numbers are decimal text. Using
//! Postfix's encoding costs nothing and lets Debian's `postqueue` list a Tern queue.
//!
//! ```text
//! protocol\0mail_queue_list_protocol\0\0                      greeting, then per message:
//! queue_name\0deferred\0queue_id\0ID\0time\0SECS\0size\0N\0forced_expire\00\0sender\0ADDR\0
//!   recipient\0ADDR\0reason\0TEXT\0 ...                        zero or more recipients
//! \0                                                          end of this message
//! \0                                                          end of the listing
//! ```
//!
//! Security: [`Decoder`] reads what a server sent (the daemon's own, but over a socket
//! anyone can bind when the mail system is down): every string is bounded by
//! [`MAX_STRING`], a malformed stream is an error, never a panic, and nothing
//! accumulates across messages.

use std::io::BufRead;

/// Postfix's MAIL_ATTR_PROTO_SHOWQ.
pub const PROTOCOL: &str = "mail_queue_list_protocol";

/// The longest attribute name or value a client accepts (a reason is a few hundred
/// bytes; an address at most a few thousand).
pub const MAX_STRING: usize = 100_000;

/// One message of the listing, as showq sends it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// `maildrop`, `active`, `incoming`, `deferred` or `hold`.
    pub queue_name: String,
    pub queue_id: String,
    /// Arrival, seconds since the epoch.
    pub arrival_time: i64,
    pub message_size: u64,
    /// `postsuper -e`: the file mode's MAIL_QUEUE_STAT_EXPIRE bit.
    pub forced_expire: bool,
    /// Quoted and printable; the null sender is `empty_address_recipient`.
    pub sender: String,
}

/// One recipient still to be delivered, with why it was deferred (empty: not tried yet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecipientLine {
    pub address: String,
    pub reason: String,
}

/// The greeting every listing starts with.
pub fn encode_greeting(out: &mut Vec<u8>) {
    put(out, "protocol", PROTOCOL);
    out.push(0);
}

/// A message's attributes (no terminator: recipients follow).
pub fn encode_message(out: &mut Vec<u8>, m: &Message) {
    put(out, "queue_name", &m.queue_name);
    put(out, "queue_id", &m.queue_id);
    // attr_print0 prints longs unsigned ("%lu"); a time before 1970 does not occur.
    put(out, "time", &m.arrival_time.max(0).to_string());
    put(out, "size", &m.message_size.to_string());
    put(
        out,
        "forced_expire",
        if m.forced_expire { "1" } else { "0" },
    );
    put(out, "sender", &m.sender);
}

/// One recipient of the current message.
pub fn encode_recipient(out: &mut Vec<u8>, r: &RecipientLine) {
    put(out, "recipient", &r.address);
    put(out, "reason", &r.reason);
}

/// Ends the current message, or (after the last) the listing.
pub fn encode_end(out: &mut Vec<u8>) {
    out.push(0);
}

/// A name and a value, NUL-terminated each. A NUL inside would end the string early:
/// it cannot come from the queue (addresses and reasons are made printable before).
fn put(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend(value.bytes().filter(|&b| b != 0));
    out.push(0);
}

/// What a listing holds, in order: [`Event::Message`], its [`Event::Recipient`]s,
/// [`Event::EndMessage`]; after the last message [`Event::End`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message(Message),
    Recipient(RecipientLine),
    EndMessage,
    End,
}

/// Why a listing could not be read: Postfix's client says `malformed showq server
/// response` for all of them.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("malformed showq server response")]
    Malformed,
    #[error("read showq server response: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a listing from a stream, one event at a time.
pub struct Decoder<R> {
    input: R,
    greeted: bool,
    in_message: bool,
    done: bool,
}

impl<R: BufRead> Decoder<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            greeted: false,
            in_message: false,
            done: false,
        }
    }

    /// The next event; `Ok(None)` after [`Event::End`].
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtoError> {
        if self.done {
            return Ok(None);
        }
        if !self.greeted {
            let (name, value) = self.pair()?.ok_or(ProtoError::Malformed)?;
            if name != "protocol" || value != PROTOCOL || self.more()? {
                return Err(ProtoError::Malformed);
            }
            self.greeted = true;
        }
        if !self.more()? {
            // A terminator: the end of a message, or of the listing.
            return Ok(Some(if self.in_message {
                self.in_message = false;
                Event::EndMessage
            } else {
                self.done = true;
                Event::End
            }));
        }
        if self.in_message {
            let address = self.expect("recipient")?;
            let reason = self.expect("reason")?;
            return Ok(Some(Event::Recipient(RecipientLine { address, reason })));
        }
        let queue_name = self.expect("queue_name")?;
        let queue_id = self.expect("queue_id")?;
        let arrival_time = number(&self.expect("time")?)?;
        let message_size = number(&self.expect("size")?)?;
        let forced_expire = number(&self.expect("forced_expire")?)? != 0;
        let sender = self.expect("sender")?;
        self.in_message = true;
        Ok(Some(Event::Message(Message {
            queue_name,
            queue_id,
            arrival_time: i64::try_from(arrival_time).map_err(|_| ProtoError::Malformed)?,
            message_size,
            forced_expire,
            sender,
        })))
    }

    /// attr_scan_more0: whether a non-terminator byte follows (a terminator is consumed;
    /// the end of input is malformed: the server always ends what it began).
    fn more(&mut self) -> Result<bool, ProtoError> {
        let buf = self.input.fill_buf()?;
        match buf.first() {
            None => Err(ProtoError::Malformed),
            Some(0) => {
                self.input.consume(1);
                Ok(false)
            }
            Some(_) => Ok(true),
        }
    }

    fn expect(&mut self, want: &str) -> Result<String, ProtoError> {
        match self.pair()? {
            Some((name, value)) if name == want => Ok(value),
            _ => Err(ProtoError::Malformed),
        }
    }

    fn pair(&mut self) -> Result<Option<(String, String)>, ProtoError> {
        let name = self.string()?;
        if name.is_empty() {
            return Ok(None);
        }
        Ok(Some((name, self.string()?)))
    }

    /// One NUL-terminated string of at most [`MAX_STRING`] bytes.
    fn string(&mut self) -> Result<String, ProtoError> {
        let mut out = Vec::new();
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Err(ProtoError::Malformed);
            }
            let (n, found) = match buf.iter().position(|&b| b == 0) {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if out.len() + n > MAX_STRING {
                return Err(ProtoError::Malformed);
            }
            out.extend_from_slice(&buf[..n]);
            self.input.consume(n + usize::from(found));
            if found {
                // ATTR_FLAG_PRINTABLE: the client shows what is not printable as `?`.
                return Ok(tern_config::text::printable_utf8(&out));
            }
        }
    }
}

fn number(s: &str) -> Result<u64, ProtoError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtoError::Malformed);
    }
    s.parse().map_err(|_| ProtoError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        encode_greeting(&mut out);
        encode_message(
            &mut out,
            &Message {
                queue_name: "deferred".into(),
                queue_id: "4ABC123".into(),
                arrival_time: 1_700_000_000,
                message_size: 321,
                forced_expire: false,
                sender: "a@example.com".into(),
            },
        );
        encode_recipient(
            &mut out,
            &RecipientLine {
                address: "b@example.com".into(),
                reason: "connect to x: Connection refused".into(),
            },
        );
        encode_end(&mut out);
        encode_end(&mut out);
        out
    }

    fn events(bytes: &[u8]) -> Result<Vec<Event>, ProtoError> {
        let mut d = Decoder::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = d.next_event()? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn wire_bytes_are_postfix_attr0() {
        let bytes = sample();
        let want = b"protocol\x00mail_queue_list_protocol\x00\x00\
queue_name\x00deferred\x00queue_id\x004ABC123\x00time\x001700000000\x00size\x00321\x00forced_expire\x000\x00\
sender\x00a@example.com\x00recipient\x00b@example.com\x00reason\x00connect to x: Connection refused\x00\x00\x00";
        assert_eq!(bytes, want.to_vec());
    }

    #[test]
    fn round_trip() {
        let ev = events(&sample()).expect("decodes");
        assert_eq!(ev.len(), 4);
        assert!(
            matches!(&ev[0], Event::Message(m) if m.queue_id == "4ABC123" && m.message_size == 321)
        );
        assert!(matches!(&ev[1], Event::Recipient(r) if r.address == "b@example.com"));
        assert_eq!(ev[2], Event::EndMessage);
        assert_eq!(ev[3], Event::End);
    }

    #[test]
    fn empty_listing() {
        let mut out = Vec::new();
        encode_greeting(&mut out);
        encode_end(&mut out);
        assert_eq!(events(&out).expect("decodes"), vec![Event::End]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let long = {
            let mut v = b"protocol\x00mail_queue_list_protocol\x00\x00queue_name\x00".to_vec();
            v.extend(std::iter::repeat_n(b'x', MAX_STRING + 1));
            v
        };
        let table: [&[u8]; 7] = [
            b"",
            b"protocol\x00other\x00\x00\x00",
            b"protocol\x00mail_queue_list_protocol\x00\x00",
            b"protocol\x00mail_queue_list_protocol\x00\x00queue_name\x00active\x00queue_id\x00A\x00time\x00x\x00",
            b"protocol\x00mail_queue_list_protocol\x00\x00queue_name\x00active\x00queue_id\x00A\x00time\x001\x00size\x001\x00forced_expire\x000\x00sender\x00s\x00recipient\x00r\x00",
            b"protocol\x00mail_queue_list_protocol\x00\x00bogus\x00active\x00\x00",
            &long,
        ];
        for (i, input) in table.iter().enumerate() {
            assert!(events(input).is_err(), "case {i}");
        }
    }

    #[test]
    fn unprintable_bytes_become_question_marks() {
        let mut out = Vec::new();
        encode_greeting(&mut out);
        encode_message(
            &mut out,
            &Message {
                sender: "a\u{1}b".into(),
                ..Message::default()
            },
        );
        encode_end(&mut out);
        encode_end(&mut out);
        let ev = events(&out).expect("decodes");
        assert!(matches!(&ev[0], Event::Message(m) if m.sender == "a?b"));
    }
}
