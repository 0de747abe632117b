//! `$name` expansion never panics: the text is expanded against itself as every name's value,
//! which exercises recursion limits too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_config::expand::{self, Lookup, Mode};

struct Echo(String);

impl Lookup for Echo {
    fn lookup(&self, _name: &str) -> Option<String> {
        Some(self.0.clone())
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = expand::scan(&text);
    let _ = expand::expand(&text, &Echo(text.to_string()), Mode::Recursive);
});
