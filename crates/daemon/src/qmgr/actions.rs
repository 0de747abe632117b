//! The queue actions of a message that override the address resolver when the queue
//! manager loads it (qmgr_message.c, qmgr_message_resolve()): REDIRECT and FILTER,
//! which cleanup wrote as the named attributes [`tern_queue::ATTR_REDIRECT`] and
//! [`tern_queue::ATTR_FILTER`] (smtpd's access(5) actions, main.cf's content_filter).
//!
//! - REDIRECT overrides all else, once per message: the recipients are put in
//!   qmgr_message_sort()'s order (domain, case-insensitively, then address), the first
//!   one is delivered to the redirect address (canonicalised, then resolved as any
//!   address; the first recipient keeps its own original recipient, so delivery logs
//!   `to=<redirect>, orig_to=<that recipient>`), and the others are dropped without a
//!   word: Postfix sets their queue to none, and the message is removed after the one
//!   delivery. Seen with Debian's Postfix 3.7.11: RCPT TO redirect@ and plain@ with
//!   `REDIRECT bob@example.com` logs `nrcpt=2` and one line `to=<bob@example.com>,
//!   orig_to=<plain@example.com>`.
//! - FILTER `transport:nexthop` sends every recipient, unresolved, to that transport
//!   and next hop. Without a next hop (`transport:` or `transport`) the next hop is
//!   default_filter_nexthop, else the recipient's domain, else myhostname. A
//!   `sendmail -bv` probe is not filtered (DEL_REQ_TRACE_ONLY_MASK).
//!
//! Trust: the attribute values come from the queue file, written by cleanup from the
//! access tables the administrator wrote; nothing here does I/O.

use tern_queue::{ATTR_FILTER, ATTR_REDIRECT, Envelope};

use super::schedule::Rcpt;

/// What FILTER needs from main.cf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSettings {
    /// default_filter_nexthop.
    pub default_filter_nexthop: String,
    /// myhostname: the next hop of a recipient without a domain.
    pub myhostname: String,
}

/// The recipients to schedule for a message: `pending` (queue file index and address
/// of each recipient still to deliver) resolved by `resolve`, unless the message has a
/// REDIRECT (`canonical` rewrites its address to canonical form first) or a FILTER.
pub fn recipients(
    env: &Envelope,
    pending: &[(u32, &str)],
    verify: bool,
    s: &FilterSettings,
    resolve: impl Fn(u32, &str) -> Rcpt,
    canonical: impl Fn(&str) -> String,
) -> Vec<Rcpt> {
    if let Some(to) = env.attribute(ATTR_REDIRECT) {
        return first_in_order(pending)
            .map(|(index, _)| resolve(index, &canonical(to)))
            .into_iter()
            .collect();
    }
    match env.attribute(ATTR_FILTER).filter(|_| !verify) {
        Some(filter) => pending
            .iter()
            .map(|&(index, address)| filtered(filter, s, index, address))
            .collect(),
        None => pending
            .iter()
            .map(|&(index, address)| resolve(index, address))
            .collect(),
    }
}

/// One recipient under FILTER `filter` (FILTER_WITHOUT_NEXTHOP and RCPT_WITHOUT_DOMAIN
/// in qmgr_message.c): the transport is the text before the first `:`, the next hop the
/// rest; the address is not resolved.
pub fn filtered(filter: &str, s: &FilterSettings, index: u32, address: &str) -> Rcpt {
    let (transport, nexthop) = filter.split_once(':').unwrap_or((filter, ""));
    let nexthop = if !nexthop.is_empty() {
        nexthop
    } else if !s.default_filter_nexthop.is_empty() {
        &s.default_filter_nexthop
    } else {
        match address.rsplit_once('@') {
            Some((_, domain)) if !domain.is_empty() => domain,
            _ => &s.myhostname,
        }
    };
    Rcpt {
        index,
        transport: transport.to_owned(),
        nexthop: nexthop.to_owned(),
        address: address.to_owned(),
    }
}

/// The first recipient in qmgr_message_sort_compare()'s order before resolving: by
/// domain (from the last `@`, case-insensitively; addresses without one last), then
/// by the whole address, byte by byte.
fn first_in_order<'a>(pending: &[(u32, &'a str)]) -> Option<(u32, &'a str)> {
    pending.iter().copied().min_by(|a, b| {
        let dom = |s: &str| s.rfind('@').map(|at| s[at..].to_lowercase());
        match (dom(a.1), dom(b.1)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.1.cmp(b.1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(default: &str) -> FilterSettings {
        FilterSettings {
            default_filter_nexthop: default.into(),
            myhostname: "mx.example.test".into(),
        }
    }

    fn env(attrs: &[(&str, &str)]) -> Envelope {
        Envelope {
            client: attrs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            ..Envelope::default()
        }
    }

    /// The resolver of the tests: everything local on `local`.
    fn resolve(index: u32, address: &str) -> Rcpt {
        Rcpt {
            index,
            transport: "local".into(),
            nexthop: "mx.example.test".into(),
            address: address.into(),
        }
    }

    fn canonical(a: &str) -> String {
        if a.contains('@') {
            a.to_owned()
        } else {
            format!("{a}@example.test")
        }
    }

    fn row(r: &Rcpt) -> (u32, &str, &str, &str) {
        (r.index, &r.transport, &r.nexthop, &r.address)
    }

    #[test]
    fn filter_next_hops() {
        // (filter, default_filter_nexthop, address) -> (transport, nexthop)
        let table: &[(&str, &str, &str, (&str, &str))] = &[
            (
                "sink:[127.0.0.1]:2599",
                "",
                "a@example.com",
                ("sink", "[127.0.0.1]:2599"),
            ),
            ("smtp:[::1]:25", "", "a@example.com", ("smtp", "[::1]:25")),
            // Seen with Debian's Postfix: `FILTER sink:` went to example.com.
            ("sink:", "", "plain@example.com", ("sink", "example.com")),
            ("sink", "", "plain@Example.COM", ("sink", "Example.COM")),
            (
                "sink:",
                "[10.0.0.1]",
                "a@example.com",
                ("sink", "[10.0.0.1]"),
            ),
            ("sink:", "", "root", ("sink", "mx.example.test")),
            ("sink:", "", "root@", ("sink", "mx.example.test")),
        ];
        for &(filter, default, address, (t, n)) in table {
            let r = filtered(filter, &settings(default), 3, address);
            assert_eq!(row(&r), (3, t, n, address), "{filter} {address}");
        }
    }

    #[test]
    fn filter_overrides_the_resolver_for_every_recipient() {
        let e = env(&[
            (ATTR_FILTER, "first:x"),
            (ATTR_FILTER, "sink:[127.0.0.1]:2599"),
        ]);
        let pending = [(0, "filter@example.com"), (2, "plain@example.com")];
        let got = recipients(&e, &pending, false, &settings(""), resolve, canonical);
        let rows: Vec<_> = got.iter().map(row).collect();
        assert_eq!(
            rows,
            [
                (0, "sink", "[127.0.0.1]:2599", "filter@example.com"),
                (2, "sink", "[127.0.0.1]:2599", "plain@example.com"),
            ]
        );
        // A sendmail -bv probe is not filtered; a message without FILTER is resolved.
        for (e, verify) in [(e.clone(), true), (env(&[]), false)] {
            let got = recipients(&e, &pending, verify, &settings(""), resolve, canonical);
            assert!(got.iter().all(|r| r.transport == "local"), "{got:?}");
            assert_eq!(got.len(), 2);
        }
    }

    #[test]
    fn redirect_delivers_once_to_the_first_recipient_in_sort_order() {
        // (pending, redirect) -> the one kept recipient's index
        type Row<'a> = (&'a [(u32, &'a str)], &'a str, u32);
        let table: &[Row<'_>] = &[
            // Debian's Postfix: orig_to=<plain@example.com> for redirect@ and plain@.
            (
                &[(0, "redirect@example.com"), (1, "plain@example.com")],
                "bob@example.com",
                1,
            ),
            // By domain first, case-insensitively.
            (
                &[(0, "a@z.example"), (1, "z@A.example")],
                "bob@example.com",
                1,
            ),
            // Addresses without a domain sort last.
            (&[(0, "root"), (1, "z@z.example")], "bob@example.com", 1),
            (&[(4, "only@example.com")], "bob@example.com", 4),
        ];
        for &(pending, to, want) in table {
            let e = env(&[(ATTR_REDIRECT, to), (ATTR_FILTER, "sink:x")]);
            let got = recipients(&e, pending, false, &settings(""), resolve, canonical);
            let rows: Vec<_> = got.iter().map(row).collect();
            // REDIRECT overrides FILTER too.
            assert_eq!(
                rows,
                [(want, "local", "mx.example.test", to)],
                "{pending:?}"
            );
        }
        // The redirect address is made canonical before it is resolved.
        let e = env(&[(ATTR_REDIRECT, "bob")]);
        let got = recipients(&e, &[(0, "x@y")], false, &settings(""), resolve, canonical);
        assert_eq!(got[0].address, "bob@example.test");
        // Nothing pending, nothing to deliver.
        assert!(recipients(&e, &[], false, &settings(""), resolve, canonical).is_empty());
    }
}
