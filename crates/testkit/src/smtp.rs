//! Reading SMTP replies in client-side tests.

use std::io::BufRead;

/// Reads one (possibly multi-line) reply from `r`, lines with their CRLF; it ends at the
/// line whose fourth byte is not `-`, at the end of the stream (possibly empty), or after
/// 100 lines. An I/O error (a read timeout) is returned.
pub fn read_reply(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut all = String::new();
    for _ in 0..100 {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let mut r = &b"250-a\r\n250 b\r\n354 go\r\n"[..];
        assert_eq!(read_reply(&mut r).unwrap(), "250-a\r\n250 b\r\n");
        assert_eq!(read_reply(&mut r).unwrap(), "354 go\r\n");
        assert_eq!(read_reply(&mut r).unwrap(), "");
    }
}
