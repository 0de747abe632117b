//! `postmap`: Postfix lookup table management.

fn main() {
    std::process::exit(tern_commands::postmap::main());
}
