//! `postalias`: Postfix alias database maintenance.

fn main() {
    std::process::exit(tern_commands::postalias::main());
}
