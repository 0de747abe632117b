//! The aliases(5) parser and the postmap(1) source reader never panic on any bytes: the
//! whole input is read both as an aliases file and as a `key whitespace value` source file
//! (as postmap and texthash: read it), and every logical line is also fed to the token
//! scanner and the entry splitter on their own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_maps::{aliases, source};

fuzz_target!(|data: &[u8]| {
    let warn = |_: &str| {};
    aliases::entries(data, "/fuzz", &warn, &mut |e| {
        // What postalias stores is parsed again by local(8): it must scan too.
        let _ = aliases::scan(&e.value);
    });
    for reader in [source::Reader::Postmap, source::Reader::Texthash] {
        source::entries(data, "/fuzz", reader, &warn, &mut |_| {});
    }
    for line in source::logical_lines(data, "/fuzz", &warn) {
        let _ = source::split_entry(&line.text);
        let tokens = aliases::scan(&line.text);
        let _ = aliases::internalize(&tokens);
        let _ = aliases::externalize(&tokens);
        let _ = aliases::parse_line(&line.text);
    }
    // The raw text too, line breaks and all: the scanner sees them only here.
    let text = String::from_utf8_lossy(data);
    let _ = aliases::parse_line(&text);
    let _ = source::split_entry(&text);
});
