//! `mailq`: sendmail by another name (Postfix installs it as a link to sendmail): the
//! mail queue listing, `postqueue -p`, with sendmail's flags and messages.

fn main() {
    std::process::exit(tern_commands::sendmail::main());
}
