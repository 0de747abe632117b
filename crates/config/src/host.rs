//! Defaults derived from the host, computed as Postfix computes them.

/// The host facts that defaults are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// gethostname() as the kernel reports it.
    pub hostname: String,
    /// gethostname(), with `.localdomain` appended when it has no dot.
    pub myhostname: String,
    /// `myhostname` less its first label (`localdomain` when nothing is left).
    pub mydomain: String,
}

impl HostInfo {
    /// Reads the host name from the kernel.
    pub fn detect() -> HostInfo {
        unimplemented!()
    }
}

/// The default `mynetworks` for a `mynetworks_style` (`host`, `subnet`, `class`) and the
/// `inet_protocols` in force, from the machine's interfaces, in Postfix's output form.
pub fn mynetworks(style: &str, inet_protocols: &str) -> String {
    let _ = (style, inet_protocols);
    unimplemented!()
}
