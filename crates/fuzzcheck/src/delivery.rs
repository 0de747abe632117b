//! Delivery targets (crates/delivery): the contents of a `.forward` or `:include:` file as
//! local(8) reads them (deliver_token_stream: each line that does not start with `#`,
//! cut into destinations), and the delivery helper's wire frames.
//!
//! Security: a `.forward` file is the user's, an `:include:` file whoever owns it; the
//! text is untrusted. A root worker decodes the frames the mail_owner daemon sends, and
//! the daemon decodes the workers' replies: each side's input is the other's output.

use tern_delivery::local::tokens::{Destination, classify, destinations};
use tern_delivery::wire::{self, HEADER};

/// A `.forward` file.
pub fn forward(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for dest in destinations(line) {
            // What deliver_token() does next: classify again after a rewrite, and
            // strip the `~/` of a home-relative file.
            if let Destination::Address(a) | Destination::Home(a) = &dest {
                let _ = classify(a);
                let _ = a.strip_prefix("~/");
            }
        }
    }
}

/// A byte stream on a helper socket: frames decoded one after another until the bytes
/// run out or one does not decode. Checked beyond "no panic": a frame that decodes
/// encodes to bytes that decode to the same frame.
pub fn wire(data: &[u8]) {
    let mut at = 0usize;
    // Bounded: each frame takes at least HEADER bytes.
    while let Ok(Some((frame, used))) = wire::decode(&data[at..]) {
        assert!(used >= HEADER && at + used <= data.len());
        let again = wire::encode(&frame);
        assert_eq!(
            wire::decode(&again),
            Ok(Some((frame, again.len()))),
            "wire round trip"
        );
        at += used;
    }
}
