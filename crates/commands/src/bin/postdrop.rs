//! `postdrop`: write a submission into maildrop/ and wake pickup.

fn main() {
    std::process::exit(tern_commands::postdrop::main());
}
