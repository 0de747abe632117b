//! `postfix`: the control command (`check` for now; `start`, `stop` and the rest come with the
//! daemon).

fn main() {
    std::process::exit(tern_commands::postfix::main());
}
