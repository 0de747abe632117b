//! `postqueue`: Postfix's queue listing and flush command.

fn main() {
    std::process::exit(tern_commands::postqueue::main());
}
