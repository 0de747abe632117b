//! smtp(8) and lmtp(8): Tern's client side, which hands mail to other servers.
//!
//! - [`nexthop`]: from a transport's next hop (`example.com`, `[mx.example.com]:587`,
//!   relayhost, transport_maps) to the ordered list of addresses to try (MX lookups,
//!   A/AAAA fallback, null MX, the "loops back to myself" check).
//! - [`session`]: one SMTP or LMTP conversation with one server: EHLO, PIPELINING, the
//!   envelope with its DSN parameters, the content, and one result per recipient in
//!   Postfix's words.
//! - [`sasl`]: smtp_sasl_auth_enable: credentials from smtp_sasl_password_maps and the
//!   AUTH exchange (PLAIN, LOGIN).
//! - [`tls`]: the client's TLS: smtp_tls_security_level and the policy table, the
//!   certificate checks of each level, and Postfix's TLS log lines.
//!
//! The daemon's queue manager runs these as the `smtp`, `relay` and `lmtp` transports
//! (master.cf command `smtp` / `lmtp`); this crate does no queue bookkeeping and writes no
//! log lines itself.

pub mod nexthop;
pub mod sasl;
pub mod session;
pub mod tls;
