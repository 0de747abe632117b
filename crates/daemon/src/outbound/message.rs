//! The message of one delivery request as the client session needs it: the content from
//! the queue file (tern_queue::QueueFile), the envelope's DSN ENVID/RET and size, the
//! body type for BODY= (the client's BODY=8BITMIME, or cleanup's 8-bit
//! Content-Transfer-Encoding, as Postfix's MAIL_ATTR_ENCODING), and whether delivery
//! needs SMTPUTF8 (Postfix's DELIVERY_REQUIRES_SMTPUTF8: requested by the client, and
//! some address or header is not ASCII).
//!
//! Trust: the queue file is the system's own (written by cleanup as mail_owner); its
//! content came from the network and is only scanned here, never interpreted.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use tern_client::session::{Encoding, Recipient};
use tern_delivery::request::DeliveryRequest;
use tern_queue::QueueFile;
use tern_queue::file::{DsnRet, MessageFlags, Notify};

/// The owned parts of a [`tern_client::session::Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub content: Vec<u8>,
    pub ret: Option<DsnRet>,
    pub size: u64,
    pub encoding: Encoding,
    pub smtputf8_requested: bool,
    pub smtputf8_required: bool,
}

/// Reads the queue file of `req` (blocking: call it off the runtime's threads).
pub fn load(req: &DeliveryRequest) -> Result<Loaded, String> {
    load_path(&req.queue_file, req)
}

fn load_path(path: &Path, req: &DeliveryRequest) -> Result<Loaded, String> {
    let qf = QueueFile::open(path).map_err(|e| e.to_string())?;
    let mut src = BufReader::new(File::open(path).map_err(|e| e.to_string())?);
    let mut content = Vec::with_capacity(usize::try_from(qf.content_len).unwrap_or(0));
    qf.copy_content(&mut src, &mut content)
        .map_err(|e| e.to_string())?;
    let flags = qf.envelope.flags.0;
    let headers = header_block(&content);
    let encoding = if flags & MessageFlags::BODY_8BITMIME != 0 || eight_bit_cte(headers) {
        Encoding::EightBit
    } else {
        Encoding::Unspecified
    };
    let requested = flags & MessageFlags::SMTPUTF8 != 0;
    let utf8 = !req.sender.is_ascii()
        || req
            .recipients
            .iter()
            .any(|r| !r.address.is_ascii() || !r.orig_rcpt.is_ascii())
        || !headers.is_ascii();
    Ok(Loaded {
        size: qf.content_len,
        ret: qf.envelope.dsn_ret,
        encoding,
        smtputf8_requested: requested,
        smtputf8_required: requested && utf8,
        content,
    })
}

/// The session's recipients of `req`.
pub fn recipients(req: &DeliveryRequest) -> Vec<Recipient> {
    req.recipients
        .iter()
        .map(|r| Recipient {
            index: r.index,
            address: r.address.clone(),
            orcpt: r.dsn_orcpt.clone(),
            original: r.orig_rcpt.clone(),
            notify: Notify(r.notify),
        })
        .collect()
}

/// The primary header block: the content up to the first empty line.
fn header_block(content: &[u8]) -> &[u8] {
    let mut at = 0;
    for line in content.split_inclusive(|&c| c == b'\n') {
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        at += line.len();
    }
    &content[..at]
}

/// cleanup_message.c: a primary `Content-Transfer-Encoding: 8bit` or `binary` header
/// makes the body type 8-bit (auto_8bit_enc_header; the header is unfolded first).
fn eight_bit_cte(headers: &[u8]) -> bool {
    let text = String::from_utf8_lossy(headers);
    let mut current = String::new();
    let mut found = false;
    let mut check = |h: &str| {
        if let Some((name, value)) = h.split_once(':')
            && name
                .trim()
                .eq_ignore_ascii_case("content-transfer-encoding")
        {
            let v = value.trim().to_ascii_lowercase();
            found |= v == "8bit" || v == "binary";
        }
    };
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            current.push_str(line);
        } else {
            check(&current);
            line.clone_into(&mut current);
        }
    }
    check(&current);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_type_from_headers() {
        for (content, want) in [
            (&b"Subject: x\n\nbody\n"[..], false),
            (b"Content-Transfer-Encoding: 8bit\n\nbody\n", true),
            (b"content-transfer-encoding:\n BINARY\n\nb\n", true),
            (b"Content-Transfer-Encoding: 7bit\n\nb\n", false),
            // Only the primary header block counts.
            (b"Subject: x\n\nContent-Transfer-Encoding: 8bit\n", false),
        ] {
            assert_eq!(
                eight_bit_cte(header_block(content)),
                want,
                "{}",
                String::from_utf8_lossy(content)
            );
        }
    }
}
