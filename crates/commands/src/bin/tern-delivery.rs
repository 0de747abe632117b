//! `tern-delivery`: Tern's delivery helper (the supervisor and its workers), started by
//! the daemon, never by hand; see tern_delivery::helper.

fn main() {
    std::process::exit(tern_delivery::helper::main(
        &std::env::args_os().collect::<Vec<_>>(),
    ));
}
