//! ETRN (RFC 1985): which domains may ask for their queued mail, and what the client is
//! told. In Postfix, smtpd hands an eligible domain to the fast flush service
//! (flush_clnt.c: flush_send_site()), which is asked only when the domain matches
//! fast_flush_domains (default `$relay_domains`); every other domain gets `459 <domain>:
//! service unavailable` and a `reject: ETRN` warning (smtpd.c, etrn_cmd()).
//!
//! smtpd asks Tern's flush service ([`crate::flush`], run by the queue manager) for an
//! eligible domain (`250 Queuing started`); without one (no queue manager) the answer is
//! what Postfix gives when its flush service cannot be reached: `458 Unable to queue
//! messages`, with the warning `unable to talk to fast flush service`.
//!
//! Trust: the domain comes from the network, already checked by the session machine as a
//! host name or address literal; matching it against the list only compares strings and
//! looks it up in the list's tables. A lookup error is Postfix's FLUSH_STAT_FAIL (458),
//! never a permit.

use tern_maps::{OpenFlags, Warn};
use tern_rewrite::SetupError;
use tern_rewrite::matchlist::MatchList;

/// fast_flush_domains, parsed and its tables opened.
#[derive(Debug)]
pub struct FastFlush {
    domains: MatchList,
}

/// What ETRN does with a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The domain is not in fast_flush_domains (FLUSH_STAT_DENY).
    Deny,
    /// The flush service would be asked; it is not there (or the list lookup failed).
    Unavailable,
}

impl FastFlush {
    /// `value` is fast_flush_domains, expanded; `parent_style` says whether its domains
    /// match subdomains (parent_domain_matches_subdomains).
    pub fn new(value: &str, parent_style: bool, warn: &Warn) -> Result<Self, SetupError> {
        let flags = OpenFlags {
            fold_fix: true,
            warn: warn.clone(),
        };
        let open = |spec: &str| tern_maps::open(spec, &flags);
        Ok(FastFlush {
            domains: MatchList::parse("fast_flush_domains", value, parent_style, &open)?,
        })
    }

    /// flush_send_site()'s eligibility test.
    pub fn answer(&self, domain: &str) -> Answer {
        match self.domains.match_hostname(domain) {
            Ok(false) => Answer::Deny,
            Ok(true) | Err(_) => Answer::Unavailable,
        }
    }
}

impl Answer {
    /// The reply and the warning smtpd logs; `client` is `name[addr]`.
    pub fn reply_and_warning(&self, domain: &str, client: &str) -> (String, String) {
        match self {
            // `%.100s...`: Postfix cuts the domain at 100 bytes and always adds the dots.
            Answer::Deny => (
                format!("459 <{domain}>: service unavailable"),
                format!("reject: ETRN {}... from {client}", truncate(domain, 100)),
            ),
            Answer::Unavailable => (
                "458 Unable to queue messages".to_owned(),
                "unable to talk to fast flush service".to_owned(),
            ),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut cut = text.len().min(max);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility() {
        let warn = tern_maps::no_warnings();
        for (list, parent, domain, want) in [
            ("", true, "x", Answer::Deny),
            ("example.com", true, "example.com", Answer::Unavailable),
            ("example.com", true, "sub.example.com", Answer::Unavailable),
            ("example.com", false, "sub.example.com", Answer::Deny),
            (
                ".example.com",
                false,
                "sub.example.com",
                Answer::Unavailable,
            ),
            ("example.com", true, "other.org", Answer::Deny),
            ("fail:x", true, "other.org", Answer::Unavailable),
        ] {
            let f = FastFlush::new(list, parent, &warn).expect("list");
            assert_eq!(f.answer(domain), want, "{list} {domain}");
        }
    }

    #[test]
    fn replies() {
        let client = "unknown[127.0.0.2]";
        assert_eq!(
            Answer::Deny.reply_and_warning("x", client),
            (
                "459 <x>: service unavailable".to_owned(),
                "reject: ETRN x... from unknown[127.0.0.2]".to_owned()
            )
        );
        let long = "a".repeat(150);
        let (_, warning) = Answer::Deny.reply_and_warning(&long, client);
        assert_eq!(
            warning,
            format!("reject: ETRN {}... from {client}", "a".repeat(100))
        );
        assert_eq!(
            Answer::Unavailable.reply_and_warning("x", client),
            (
                "458 Unable to queue messages".to_owned(),
                "unable to talk to fast flush service".to_owned()
            )
        );
    }
}
