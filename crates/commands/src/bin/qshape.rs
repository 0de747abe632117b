//! `qshape`: the queue's domains by message age.

fn main() {
    std::process::exit(tern_commands::qshape::main());
}
