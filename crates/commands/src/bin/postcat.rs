//! `postcat`: shows queue files in Postfix's layout.

fn main() {
    std::process::exit(tern_commands::postcat::main());
}
