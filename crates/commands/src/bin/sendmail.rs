//! `sendmail` (and `mailq`, `newaliases` by name): Postfix's sendmail(1).

fn main() {
    std::process::exit(tern_commands::sendmail::main());
}
