//! `newaliases`: rebuild every table in `alias_database`.

fn main() {
    std::process::exit(tern_commands::postalias::newaliases());
}
