//! Delivery targets (crates/delivery): the contents of a `.forward` or `:include:` file as
//! local(8) reads them (deliver_token_stream: each line that does not start with `#`,
//! cut into destinations).
//!
//! Security: a `.forward` file is the user's, an `:include:` file whoever owns it; the
//! text is untrusted.

use tern_delivery::local::tokens::{Destination, classify, destinations};

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
