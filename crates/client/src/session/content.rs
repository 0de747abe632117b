//! The message content on the wire, sans-IO: the queue file's LF-terminated lines sent
//! as CRLF lines, dot-stuffed (RFC 5321 4.5.2), with lines longer than
//! smtp_line_length_limit broken with CRLF SPACE (smtp_text_out() in smtp_proto.c).
//!
//! Trust: the content is our own queue file's; any byte value is passed through.

/// Turns content into wire bytes piece by piece, so a large message is never copied
/// whole.
#[derive(Debug)]
pub struct ContentEncoder {
    /// smtp_line_length_limit; 0 for none.
    limit: usize,
}

impl ContentEncoder {
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }

    /// Appends the wire form of `content` to `out`, line by line. A last line
    /// without LF is ended with CRLF as well (Postfix's "missing newline" case). The final
    /// dot is not added.
    pub fn encode(&self, content: &[u8], out: &mut Vec<u8>) {
        for line in content.split_inclusive(|&c| c == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            self.line(line, out);
        }
    }

    /// One line (without its LF) in wire form.
    pub fn line(&self, line: &[u8], out: &mut Vec<u8>) {
        // RFC 5321 4.5.2: a line that starts with "." gets another.
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        if self.limit == 0 || line.len() < self.limit {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            return;
        }
        // smtp_text_out(): `limit` bytes, CRLF, then SPACE and up to limit - 1 more bytes
        // per output line, so no line exceeds the limit. The continuation starts with a
        // space and so never needs a dot.
        let mut rest = line;
        let mut space = self.limit;
        while rest.len() >= space {
            out.extend_from_slice(&rest[..space]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[space..];
            if rest.is_empty() {
                return;
            }
            out.push(b' ');
            space = self.limit - 1;
        }
        out.extend_from_slice(rest);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        for (limit, content, want) in [
            (998, &b"a\nb\n"[..], &b"a\r\nb\r\n"[..]),
            (998, b".\n..x\nx.\n", b"..\r\n...x\r\nx.\r\n"),
            (998, b"no newline", b"no newline\r\n"),
            (998, b"\n\n", b"\r\n\r\n"),
            (998, b"cr\r\n", b"cr\r\r\n"),
            (998, b"", b""),
            (4, b"abc\n", b"abc\r\n"),
            (4, b"abcd\n", b"abcd\r\n"),
            (4, b"abcdefghij\n", b"abcd\r\n efg\r\n hij\r\n"),
            (4, b"abcdefg\n", b"abcd\r\n efg\r\n"),
            (4, b".bcdefgh\n", b"..bcd\r\n efg\r\n h\r\n"),
            (0, b"abcdefghij\n", b"abcdefghij\r\n"),
        ] {
            let mut out = Vec::new();
            ContentEncoder::new(limit).encode(content, &mut out);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(want),
                "{limit} {:?}",
                String::from_utf8_lossy(content)
            );
        }
    }
}
