//! `postconf`: Postfix configuration utility.

fn main() {
    std::process::exit(tern_commands::postconf::main());
}
