//! Message targets (crates/message): the RFC 5322 address-list parser and the header
//! section as cleanup(8) reads it (splitting, fields, unfolding, folding, the output cut,
//! cleanup's header pass).
//!
//! Security: the input stands for message content from a hostile sender.

use tern_message::address::{self, parse_address_list};
use tern_message::cleanup::{Envelope, HeaderCleanup, NoHooks, RewriteContext, Settings};
use tern_message::header::{self, HeaderField};
use tern_message::split::{HeaderSplitter, smtpd_first_line};
use tern_message::trace::Timestamp;

/// An address-list header value. Byte 0 picks header_address_token_limit (small or
/// Postfix's 10240); the rest is the value.
///
/// Only "no panic" is checked. Printing is not a fixed point, as in Postfix: an internal
/// address whose quoted local part holds an `@` (`"@,` unterminated) is split at its
/// last `@` when quoted again (quote_822_local), so `""@,` reads back as `""@` and an
/// empty entry.
pub fn address(data: &[u8]) {
    let Some((&flags, value)) = data.split_first() else {
        return;
    };
    let limit = if flags & 1 == 0 { 10_240 } else { 5 };
    let list = parse_address_list(value, limit);
    let mut last = Vec::new();
    for m in list.mailboxes() {
        last = m.internal();
        let _ = m.external();
    }
    let printed = list.to_header_lines();
    let _ = header::fold_address_lines(&printed);
    let _ = address::tokenize(value, limit);
    let text = String::from_utf8_lossy(value);
    let _ = address::unquote_822_local(&address::quote_822_local(&text));
    let _ = address::phrase(value);
    let _ = address::quote_822_local_bytes(&last);
    let _ = parse_address_list(&printed, limit);
}

/// A message's first lines as records (LF-separated; a last piece without LF is a
/// partial record). Byte 0 picks header_size_limit (small or Postfix's 102400).
pub fn header(data: &[u8]) {
    let Some((&flags, content)) = data.split_first() else {
        return;
    };
    let settings = Settings {
        header_size_limit: if flags & 1 == 0 { 102_400 } else { 100 },
        ..Settings::default()
    };
    let envelope = Envelope {
        sender: "sender@example.test".into(),
        full_name: None,
        queue_id: "4ABCDEF".into(),
        queue_time: 0,
        arrival: Timestamp::utc(0),
        rewrite_context: Some(RewriteContext::Local),
    };
    let mut cleanup = HeaderCleanup::new(&settings, envelope, NoHooks);
    let mut splitter = HeaderSplitter::new(settings.header_size_limit);
    let mut fields = Vec::new();
    let pieces: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            let _ = smtpd_first_line(piece);
        }
        let step = splitter.push(piece, i + 1 < pieces.len());
        fields.extend(step.header);
    }
    fields.extend(splitter.finish().header);
    for field in fields {
        let _ = field.name();
        let _ = field.trimmed_value();
        let _ = field.unfolded_value();
        let _ = field.known();
        let _ = field.lines().count();
        let _ = header::output_cut(field.as_bytes(), settings.header_size_limit);
        let _ = HeaderField::parse(field.as_bytes());
        if cleanup.header(field).is_err() {
            break;
        }
    }
    let _ = cleanup.end_of_headers();
    let _ = cleanup.take_logs();
    let _ = header::unfold(content);
    let _ = header::header_name_len(content);
}
