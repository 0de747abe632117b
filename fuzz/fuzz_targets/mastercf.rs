//! master.cf parsing and postconf's master.cf listings never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_config::mastercf::{self, MasterCf, ShowOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(cf) = MasterCf::parse(data, "master.cf") {
        let _ = mastercf::show_entries(&cf, &[], true);
        let _ = mastercf::show_fields(&cf, &[], ShowOptions::default());
        let _ = mastercf::show_params(&cf, &[], ShowOptions::default());
    }
});
