//! `postlog`: a line into the mail log.

fn main() {
    std::process::exit(tern_commands::postlog::main());
}
