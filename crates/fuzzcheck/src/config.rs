//! Configuration targets (crates/config): main.cf with postconf's edits, master.cf with
//! postconf's listings, and `$name` expansion.
//!
//! Security: configuration files are root's, but postconf and `postfix check` read files
//! named on the command line, and a damaged file must give an error, never a panic.

use tern_config::expand::{self, Lookup, Mode};
use tern_config::maincf::{self, MainCf};
use tern_config::mastercf::{self, MasterCf, ShowOptions};

/// main.cf parsing and the `postconf -e`, `-X` and `-#` edits.
pub fn maincf(data: &[u8]) {
    let _ = MainCf::parse(data, "main.cf");
    let _ = maincf::edit_set(data, &[("myhostname".into(), "x".into())]);
    let _ = maincf::edit_remove(data, &["myhostname".into()]);
    let _ = maincf::edit_comment_out(data, &["myhostname".into()]);
}

/// master.cf parsing and postconf's `-M`, `-F` and `-P` listings.
pub fn mastercf(data: &[u8]) {
    if let Ok(cf) = MasterCf::parse(data, "master.cf") {
        let _ = mastercf::show_entries(&cf, &[], true);
        let _ = mastercf::show_fields(&cf, &[], ShowOptions::default());
        let _ = mastercf::show_params(&cf, &[], ShowOptions::default());
    }
}

/// Every name's value is the text itself.
struct Echo(String);

impl Lookup for Echo {
    fn lookup(&self, _name: &str) -> Option<String> {
        Some(self.0.clone())
    }
}

/// `$name` expansion of the text, with the text as every name's value, which exercises
/// the recursion limit too.
pub fn expand(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = expand::scan(&text);
    let _ = expand::expand(&text, &Echo(text.to_string()), Mode::Recursive);
}
