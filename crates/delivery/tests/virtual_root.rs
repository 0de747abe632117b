//! virtual(8) as root (to be filled).
mod mailbox_util;
fn main() {
    mailbox_util::run(&[]);
}
