//! The relay policy smtpd(8) applies to RCPT TO: `smtpd_relay_restrictions` with
//! `permit_mynetworks`, `permit_sasl_authenticated`, `permit_auth_destination`,
//! `reject_unauth_destination`, `defer_unauth_destination`, `permit`, `reject` and `defer`
//! (smtpd_check.c; postconf(5) "smtpd_relay_restrictions").
//!
//! A recipient is an authorised destination when, rewritten in the local context and
//! resolved, its class is local, virtual alias, virtual mailbox or relay, and it is not
//! routed (`user@a@b`, `user%a@b`, `a!user@b`) unless allow_untrusted_routing is on.
//!
//! The functions return [`Decision`]s that carry Postfix's reply (code, enhanced status,
//! text); the caller applies soft_bounce and warn_if_reject and writes the reply. A
//! restriction this module does not know is [`Decision::Unsupported`], for the caller to
//! report; it is never silently skipped.
//!
//! Security: the client address and the recipient come from the network; a table lookup
//! error is a 451 (Postfix's reject_dict_retry), never a permit.

use std::net::IpAddr;

use crate::address::Context;
use crate::resolve::{Class, LookupError, Resolver};

/// The SMTP client, as the restrictions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client<'a> {
    /// The verified client host name, or `unknown`.
    pub name: &'a str,
    pub addr: IpAddr,
    /// Whether the client has authenticated with SASL.
    pub sasl_authenticated: bool,
}

impl<'a> Client<'a> {
    /// A client known by its address only (name `unknown`, not authenticated).
    pub fn from_addr(addr: IpAddr) -> Client<'a> {
        Client {
            name: "unknown",
            addr,
            sasl_authenticated: false,
        }
    }
}

/// An SMTP reply as Postfix builds it for a restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 enhanced status code, its class digit matching `code`.
    pub dsn: String,
    pub text: String,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.code, self.dsn, self.text)
    }
}

/// What one restriction, or a whole list, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// OK: stop, accept (for this list).
    Permit,
    /// DUNNO: no decision; the next restriction (or list) decides.
    Dunno,
    /// Reject (5xx) or defer (4xx) with this reply.
    Reject(Reply),
    /// A table lookup failed: `451 4.3.0 <rcpt>: Temporary lookup failure`.
    TempFail(Reply),
    /// A restriction this module does not implement yet, by name.
    Unsupported(String),
}

/// permit_mx_backup's first half (smtpd_check.c permit_mx_backup()): what the resolver
/// decides before DNS is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxBackup {
    /// Decided without DNS: Permit for a destination this host takes anyway (as
    /// permit_auth_destination, "for backwards compatibility"), Dunno for a routed
    /// address or an address literal, TempFail for a lookup error.
    Decided(Decision),
    /// The resolved recipient's domain, whose MX hosts decide.
    Domain(String),
}

impl Resolver {
    /// permit_mx_backup before its DNS lookups: see [`MxBackup`].
    pub fn mx_backup_domain(&self, recipient: &str) -> MxBackup {
        let rewritten = self.rewrite(Context::Local, recipient);
        let Ok(resolved) = self.resolve(&rewritten) else {
            return MxBackup::Decided(Decision::TempFail(temp_fail(recipient)));
        };
        let Some(at) = resolved.recipient.rfind('@') else {
            return MxBackup::Decided(Decision::Permit);
        };
        if !self.settings.allow_untrusted_routing && resolved.flags.routed {
            return MxBackup::Decided(Decision::Dunno);
        }
        if resolved.class.is_final() || resolved.class == Class::Relay {
            return MxBackup::Decided(Decision::Permit);
        }
        let domain = &resolved.recipient[at + 1..];
        // "Skip numerical forms that didn't match the local system."
        if domain.starts_with('[') && domain.ends_with(']') {
            return MxBackup::Decided(Decision::Dunno);
        }
        MxBackup::Domain(domain.to_owned())
    }

    /// permit_mynetworks: OK when the client matches mynetworks, else DUNNO.
    pub fn permit_mynetworks(&self, client: &Client<'_>, recipient: &str) -> Decision {
        match self.mynetworks.match_namadr(client.name, client.addr) {
            Ok(true) => Decision::Permit,
            Ok(false) => Decision::Dunno,
            Err(err) => {
                (self.warn)(&err.to_string());
                Decision::TempFail(temp_fail(recipient))
            }
        }
    }

    /// permit_auth_destination: OK when `recipient` (internal form, as given in RCPT TO)
    /// is an authorised destination, else DUNNO.
    pub fn permit_auth_destination(&self, recipient: &str) -> Decision {
        let rewritten = self.rewrite(Context::Local, recipient);
        let Ok(resolved) = self.resolve(&rewritten) else {
            return Decision::TempFail(temp_fail(recipient));
        };
        if !resolved.recipient.contains('@') {
            return Decision::Permit;
        }
        if !self.settings.allow_untrusted_routing && resolved.flags.routed {
            return Decision::Dunno;
        }
        if resolved.class.is_final() || resolved.class == Class::Relay {
            Decision::Permit
        } else {
            Decision::Dunno
        }
    }

    /// smtpd_check_addr(): whether smtpd accepts the syntax of a MAIL FROM or RCPT TO
    /// address (internal form): rewritten in the local context and resolved, it must not
    /// carry the resolver's error flag, and without SMTPUTF8 in the request its resolved
    /// domain must be ASCII (as Postfix before 3.0 behaved). The null address passes.
    /// `Ok(false)` is smtpd's `501 5.1.3 Bad recipient address syntax` (5.1.7 for the
    /// sender); a lookup error is the caller's 451.
    ///
    /// Postfix judges the syntax by the resolver, not by the SMTP grammar: it takes
    /// `user@[192.0.2.1].`, `user@example.com@` and (with resolve_numeric_domain)
    /// `user@192.0.2.1`, and refuses `user@b\u{fc}cher.example` without SMTPUTF8.
    pub fn check_addr(&self, address: &str, smtputf8: bool) -> Result<bool, LookupError> {
        if address.is_empty() {
            return Ok(true);
        }
        let rewritten = self.rewrite(Context::Local, address);
        let resolved = self.resolve(&rewritten)?;
        if resolved.flags.error {
            return Ok(false);
        }
        let domain = resolved
            .recipient
            .rfind('@')
            .map_or("", |at| &resolved.recipient[at + 1..]);
        Ok(smtputf8 || domain.is_ascii())
    }

    /// reject_unauth_destination: `554 5.7.1 <rcpt>: Relay access denied` (the code is
    /// relay_domains_reject_code) unless the recipient is an authorised destination.
    pub fn reject_unauth_destination(&self, recipient: &str) -> Decision {
        self.unauth(recipient, self.settings.relay_domains_reject_code, "5.7.1")
    }

    /// defer_unauth_destination: as reject_unauth_destination with relay_domains_reject_code
    /// less 100 and 4.7.1 (`454 4.7.1 <rcpt>: Relay access denied`).
    pub fn defer_unauth_destination(&self, recipient: &str) -> Decision {
        let code = self.settings.relay_domains_reject_code.saturating_sub(100);
        self.unauth(recipient, code, "4.7.1")
    }

    fn unauth(&self, recipient: &str, code: u16, dsn: &str) -> Decision {
        match self.permit_auth_destination(recipient) {
            Decision::Permit => Decision::Dunno,
            Decision::TempFail(reply) => Decision::TempFail(reply),
            _ => Decision::Reject(reply(
                code,
                dsn,
                format!("<{recipient}>: Relay access denied"),
            )),
        }
    }

    /// Evaluates smtpd_relay_restrictions for one RCPT TO: the first restriction that
    /// decides wins; [`Decision::Dunno`] when none does (or the list is empty).
    pub fn relay_restrictions(&self, client: &Client<'_>, recipient: &str) -> Decision {
        let names = tern_config::list::split(&self.settings.smtpd_relay_restrictions)
            .unwrap_or_else(|_| vec![self.settings.smtpd_relay_restrictions.clone()]);
        self.evaluate(&names, client, recipient)
    }

    /// Evaluates a restriction list (names as in main.cf).
    pub fn evaluate(&self, names: &[String], client: &Client<'_>, recipient: &str) -> Decision {
        let s = &self.settings;
        for name in names {
            let decision = match name.to_ascii_lowercase().as_str() {
                "permit" => Decision::Permit,
                "reject" => Decision::Reject(reply(
                    s.reject_code,
                    "5.7.1",
                    format!("<{recipient}>: Recipient address rejected: Access denied"),
                )),
                "defer" => Decision::Reject(reply(
                    s.defer_code,
                    "4.3.2",
                    format!("<{recipient}>: Recipient address rejected: Try again later"),
                )),
                "permit_mynetworks" => self.permit_mynetworks(client, recipient),
                "permit_sasl_authenticated" => {
                    if client.sasl_authenticated {
                        Decision::Permit
                    } else {
                        Decision::Dunno
                    }
                }
                "permit_auth_destination" => self.permit_auth_destination(recipient),
                "reject_unauth_destination" => self.reject_unauth_destination(recipient),
                "defer_unauth_destination" => self.defer_unauth_destination(recipient),
                _ => Decision::Unsupported(name.clone()),
            };
            if decision != Decision::Dunno {
                return decision;
            }
        }
        Decision::Dunno
    }
}

/// smtpd_check_reject(): the enhanced status class follows the reply code's class.
fn reply(code: u16, dsn: &str, text: String) -> Reply {
    let class = match code / 100 {
        4 => '4',
        5 => '5',
        _ => dsn.chars().next().unwrap_or('5'),
    };
    let mut dsn = dsn.to_owned();
    dsn.replace_range(..1.min(dsn.len()), &class.to_string());
    Reply { code, dsn, text }
}

/// reject_dict_retry().
fn temp_fail(recipient: &str) -> Reply {
    reply(
        451,
        "4.3.0",
        format!("<{recipient}>: Temporary lookup failure"),
    )
}

#[cfg(test)]
mod tests {
    use crate::tests::resolver_from;

    #[test]
    fn address_syntax_is_the_resolvers() {
        // Answers of Debian's Postfix 3.7 (RCPT TO from a client outside mynetworks):
        // true where it went on to the restrictions, false where it said 501 5.1.3.
        let plain = resolver_from("compatibility_level = 3.6\n");
        let numeric = resolver_from("compatibility_level = 3.6\nresolve_numeric_domain = yes\n");
        for (address, utf8, want, want_numeric) in [
            ("", false, true, true),
            ("user@example.com", false, true, true),
            ("user@[192.0.2.1].", false, true, true),
            ("user@[192.0.2.1]", false, true, true),
            ("user@[IPv6:2001:db8::1]", false, true, true),
            ("user@example.com@", false, true, true),
            ("user@192.0.2.1", false, false, true),
            ("user@127.0.0.1", false, false, true),
            ("user@r\u{e9}mote.example", false, false, false),
            ("user@r\u{e9}mote.example", true, true, true),
            ("r\u{e9}sum\u{e9}@example.com", false, true, true),
            ("user@[999.1.1.1]", false, false, false),
            ("user@exa_mple.com", false, true, true),
            ("user@-bad.example", false, false, false),
            ("user", false, true, true),
        ] {
            assert_eq!(
                plain.check_addr(address, utf8),
                Ok(want),
                "{address} smtputf8={utf8}"
            );
            assert_eq!(
                numeric.check_addr(address, utf8),
                Ok(want_numeric),
                "{address} smtputf8={utf8} resolve_numeric_domain=yes"
            );
        }
    }

    /// What Debian's Postfix 3.7 answered to RCPT TO from a client outside mynetworks
    /// (access_side_by_side's relay_forms configuration): accepted, 554 Relay access
    /// denied, or 501 Bad recipient address syntax.
    #[test]
    fn address_forms_as_debian_answered() {
        use super::Decision;
        #[derive(Debug, PartialEq)]
        enum Want {
            Ok,
            Relay,
            Syntax,
        }
        let r = resolver_from(
            "compatibility_level = 3.6\nmyhostname = mx.example.test\n\
             mydestination = $myhostname, localhost\nrelay_domains = relay.example\n",
        );
        for (address, want) in [
            ("user@[999.1.1.1]", Want::Syntax),
            ("user@exa_mple.com", Want::Relay),
            ("user@-bad.example", Want::Syntax),
            ("r\u{e9}sum\u{e9}@mx.example.test", Want::Ok),
            ("user@[127.0.0.1]", Want::Ok),
            ("user@127.0.0.1", Want::Syntax),
            ("user%mx.example.test@mx.example.test", Want::Ok),
            ("user%relay.example@mx.example.test", Want::Ok),
            ("user%remote.example@relay.example", Want::Relay),
            ("user@relay.example@mx.example.test", Want::Ok),
            ("user%remote.example@mx.example.test", Want::Relay),
            ("user@remote.example@mx.example.test", Want::Relay),
            ("user@mx.example.test.", Want::Ok),
            ("user@localhost.", Want::Ok),
            ("@remote.example:user@mx.example.test", Want::Ok),
            ("@mx.example.test:user@relay.example", Want::Ok),
            ("@mx.example.test:user@remote.example", Want::Relay),
            ("mx.example.test!user@mx.example.test", Want::Ok),
            ("relay.example!user@mx.example.test", Want::Ok),
            ("remote.example!user@relay.example", Want::Relay),
            ("remote.example!user@mx.example.test", Want::Relay),
            ("relay.example!user", Want::Ok),
            ("remote!user", Want::Relay),
            ("user@RELAY.EXAMPLE.", Want::Ok),
            ("MX.Example.Test!user", Want::Ok),
            ("user@r\u{e9}mote.example", Want::Syntax),
            ("user@[192.0.2.1].", Want::Relay),
            ("user@[192.0.2.1]", Want::Relay),
            ("user@remote.example@", Want::Relay),
            ("user@remote.example.", Want::Relay),
            ("user@REMOTE.EXAMPLE", Want::Relay),
            ("user", Want::Ok),
        ] {
            let got = if r.check_addr(address, false) == Ok(true) {
                match r.reject_unauth_destination(address) {
                    Decision::Dunno => Want::Ok,
                    Decision::Reject(reply) if reply.code == 554 => Want::Relay,
                    other => panic!("{address}: {other:?}"),
                }
            } else {
                Want::Syntax
            };
            assert_eq!(got, want, "{address}");
        }
    }
}
