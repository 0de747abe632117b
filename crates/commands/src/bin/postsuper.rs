//! `postsuper`: Postfix's queue maintenance for the superuser.

fn main() {
    std::process::exit(tern_commands::postsuper::main());
}
