//! trivial-rewrite(8) as a library: address canonicalisation, address classes, resolution
//! to (transport, nexthop, recipient), and the relay policy smtpd(8) builds on them.
//!
//! - [`settings`]: every parameter these use, read from a `Config` once and expanded.
//! - [`address`]: the canonical rewriting rules (append_at_myorigin, append_dot_mydomain,
//!   swap_bangpath, allow_percent_hack) in the "local" and "remote" contexts.
//! - [`matchlist`]: Postfix's match lists (mydestination, relay_domains, mynetworks, ...).
//! - [`resolve`]: [`Resolver`], the address classes and transport(5).
//! - [`canonical`], [`masquerade`], [`virtual_alias`]: cleanup(8)'s canonical(5)
//!   mapping, address masquerading and virtual(5) alias expansion, put together for
//!   cleanup by [`cleanup_addr::CleanupRewriter`].
//! - [`relay`]: permit_mynetworks, reject_unauth_destination, defer_unauth_destination and
//!   smtpd_relay_restrictions.
//!
//! The flow: cleanup(8) calls [`Resolver::rewrite`] on envelope and header addresses;
//! smtpd(8) calls [`Resolver::relay_restrictions`] for each RCPT TO; qmgr(8) calls
//! [`Resolver::resolve`] for each recipient to pick the delivery transport.
//!
//! Trust: main.cf is the administrator's; addresses and client addresses come from the
//! network and never make these functions panic. The only I/O is opening tables and list
//! files at set-up, and asking the kernel for interface addresses
//! ([`resolve::Interfaces::detect`]).

pub mod address;
pub mod canonical;
pub mod cleanup_addr;
pub mod masquerade;
pub mod matchlist;
pub mod relay;
pub mod resolve;
pub mod settings;
pub mod virtual_alias;

#[cfg(test)]
mod tests;

pub use address::Context;
pub use cleanup_addr::{CleanupRewriter, HeaderRole};
pub use relay::{Client, Decision, MxBackup, Reply};
pub use resolve::{Class, Flags, Interfaces, LookupError, Resolved, Resolver};
pub use settings::{CleanupSettings, Settings, SetupError};

impl Resolver {
    /// Settings from `config`, this host's interfaces, and the tables opened; warnings go
    /// to `warn`.
    pub fn from_config(
        config: &tern_config::config::Config,
        warn: tern_maps::Warn,
    ) -> Result<Resolver, SetupError> {
        let settings = Settings::from_config(config)?;
        let interfaces = Interfaces::detect(&settings);
        Resolver::new(settings, interfaces, warn)
    }
}
