//! Addresses as trivial-rewrite(8) sees them, and its canonicalisation rules (rewrite.c).
//!
//! Addresses come in Postfix's internal (unquoted) form, as cleanup(8) and smtpd(8) pass them
//! to the rewrite and resolve clients: `a b@example.com`, not `"a b"@example.com`. Postfix
//! quotes the local part when it is not an RFC 822 dot-string (quote_822_local(3)) and
//! parses the result; we keep the same distinction in [`Local`]: a plain local part is a
//! sequence of atoms in which `%` and `!` are routing operators, a quoted one is opaque.
//!
//! The rules, in order (canonical address rewriting, ADDRESS_REWRITING_README):
//! - an empty address stays empty; a lone `@` becomes empty;
//! - a source route (`@a,@b:user@c`) is dropped;
//! - with no `@`: `site!user` becomes `user@site` (swap_bangpath; the first `!` splits),
//!   else `user%domain` becomes `user@domain` (allow_percent_hack; the last `%`), else
//!   `@$myorigin` is appended (append_at_myorigin);
//! - a domain without a dot (and not `[literal]`) gets `.$mydomain` (append_dot_mydomain);
//! - one trailing dot is removed from the domain.
//!
//! The "remote" context uses `remote_header_rewrite_domain` for both `myorigin` and
//! `mydomain`; it is empty by default, so nothing is appended.
//!
//! Trust: addresses come from the network; every function here is total.

use crate::settings::Settings;

/// A local part: a dot-string whose `%` and `!` route, or a quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Local {
    Plain(String),
    Quoted(String),
}

impl Local {
    pub(crate) fn text(&self) -> &str {
        match self {
            Local::Plain(text) | Local::Quoted(text) => text,
        }
    }

    fn of(text: &str) -> Local {
        if is_dot_string(text) {
            Local::Plain(text.to_owned())
        } else {
            Local::Quoted(text.to_owned())
        }
    }
}

/// An address split at its last `@`: `domain` is `None` without an `@`, `Some("")` when the
/// address ends in `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addr {
    pub(crate) local: Local,
    pub(crate) domain: Option<String>,
}

impl Addr {
    /// Parses an address in internal form, dropping a source route.
    pub(crate) fn parse(internal: &str) -> Addr {
        let mut text = internal;
        if text.starts_with('@')
            && let Some(colon) = text.find(':')
            && colon + 1 < text.len()
        {
            text = &text[colon + 1..];
        }
        match text.rfind('@') {
            Some(at) => Addr {
                local: Local::of(&text[..at]),
                domain: Some(text[at + 1..].to_owned()),
            },
            None => Addr {
                local: Local::of(text),
                domain: None,
            },
        }
    }

    /// The internal form.
    pub(crate) fn internal(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{}@{domain}", self.local.text()),
            None => self.local.text().to_owned(),
        }
    }

    fn is_empty(&self) -> bool {
        self.domain.is_none() && self.local == Local::Quoted(String::new())
    }
}

/// Which domains complete an incomplete address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `$myorigin` and `$mydomain`: envelope addresses and local headers.
    Local,
    /// `$remote_header_rewrite_domain` for both: headers of mail from remote clients.
    Remote,
}

/// The domains a context appends.
pub(crate) struct Origin<'a> {
    pub(crate) origin: &'a str,
    pub(crate) domain: &'a str,
}

impl<'a> Origin<'a> {
    pub(crate) fn of(settings: &'a Settings, context: Context) -> Origin<'a> {
        match context {
            Context::Local => Origin {
                origin: &settings.myorigin,
                domain: &settings.mydomain,
            },
            Context::Remote => Origin {
                origin: &settings.remote_header_rewrite_domain,
                domain: &settings.remote_header_rewrite_domain,
            },
        }
    }
}

/// Canonicalises an address in internal form (rewrite_tree()).
pub fn rewrite(settings: &Settings, context: Context, address: &str) -> String {
    // rewrite_clnt(3): the null address is not sent to the server; it stays null.
    if address.is_empty() {
        return String::new();
    }
    let mut addr = Addr::parse(address);
    rewrite_addr(settings, &Origin::of(settings, context), &mut addr);
    addr.internal()
}

/// rewrite_tree() on a parsed address.
pub(crate) fn rewrite_addr(settings: &Settings, origin: &Origin<'_>, addr: &mut Addr) {
    if addr.is_empty() {
        return;
    }
    // A lone `@` is the empty address.
    if addr.domain.as_deref() == Some("") && addr.local.text().is_empty() {
        *addr = Addr {
            local: Local::Quoted(String::new()),
            domain: None,
        };
        return;
    }
    if addr.domain.is_none() {
        let plain = match &addr.local {
            Local::Plain(text) => Some(text.clone()),
            Local::Quoted(_) => None,
        };
        match plain {
            // Swap domain!user to user@domain: the first `!` splits.
            Some(text) if settings.swap_bangpath && text.contains('!') => {
                let (site, user) = text.split_once('!').unwrap_or((&text, ""));
                *addr = Addr {
                    local: Local::Plain(user.to_owned()),
                    domain: Some(site.to_owned()),
                };
            }
            // Promote user%domain to user@domain: the last `%` becomes the `@`.
            Some(text) if settings.allow_percent_hack && text.contains('%') => {
                let (user, domain) = text.rsplit_once('%').unwrap_or((&text, ""));
                *addr = Addr {
                    local: Local::Plain(user.to_owned()),
                    domain: Some(domain.to_owned()),
                };
            }
            _ => {
                if settings.append_at_myorigin && !origin.origin.is_empty() {
                    addr.domain = Some(origin.origin.to_owned());
                }
            }
        }
    }
    // Append .$mydomain to a domain without a dot, but leave `user@` and `[literal]` alone.
    if settings.append_dot_mydomain
        && !origin.domain.is_empty()
        && let Some(domain) = &mut addr.domain
        && !domain.is_empty()
        && !domain.contains('[')
        && !domain.contains('.')
    {
        domain.push('.');
        domain.push_str(origin.domain);
    }
    strip_trailing_dot(addr);
}

/// Removes one trailing dot from the domain (or, without a domain, from a plain local
/// part), but not from `..` or `@.`.
pub(crate) fn strip_trailing_dot(addr: &mut Addr) {
    match &mut addr.domain {
        Some(domain) => {
            if domain.len() > 1 && domain.ends_with('.') && !domain.ends_with("..") {
                domain.pop();
            }
        }
        None => {
            if let Local::Plain(text) = &mut addr.local
                && text.len() > 1
                && text.ends_with('.')
                && !text.ends_with("..")
            {
                text.pop();
            }
        }
    }
}

/// is_822_dot_string() (quote_822_local.c): atoms separated by single dots, 8-bit allowed as
/// with SMTPUTF8.
pub(crate) fn is_dot_string(text: &str) -> bool {
    if text.is_empty() || text.starts_with('.') || text.ends_with('.') || text.contains("..") {
        return false;
    }
    !text.chars().any(|c| {
        c == ' '
            || c.is_ascii_control()
            || matches!(
                c,
                '(' | ')' | '<' | '>' | '@' | ',' | ';' | ':' | '\\' | '"' | '[' | ']'
            )
    })
}

/// valid_hostname() (RFC 1035 with `_` allowed, as Postfix is lenient): labels of letters,
/// digits, `-` (not first or last) and `_`, at most 63 bytes each, 255 in all, not all
/// numeric. With SMTPUTF8 a non-ASCII label is accepted as it is.
// XXX: Postfix converts a UTF-8 name to A-labels with IDNA and checks the result; we do not
// validate the U-label.
pub(crate) fn valid_hostname(name: &str, utf8: bool) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    if utf8 && !name.is_ascii() {
        return !name.split('.').any(str::is_empty);
    }
    let mut numeric = true;
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return false;
        }
        if label.starts_with('-') || label.ends_with('-') {
            return false;
        }
        for c in label.chars() {
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return false;
            }
            if !c.is_ascii_digit() {
                numeric = false;
            }
        }
    }
    !numeric
}

/// valid_mailhost_addr(): an IPv4 address, or `IPv6:` and an IPv6 address.
pub(crate) fn mailhost_addr(text: &str) -> Option<std::net::IpAddr> {
    let v6 = text
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("ipv6:"))
        .map(|_| &text[5..]);
    match v6 {
        Some(bare) => bare
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(std::net::IpAddr::V6),
        None => text
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(std::net::IpAddr::V4),
    }
}

/// valid_mailhost_literal(): `[` address `]`.
pub(crate) fn valid_mailhost_literal(text: &str) -> bool {
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .is_some_and(|inner| !inner.contains(']') && mailhost_addr(inner).is_some())
}

/// valid_hostaddr(): a bare IPv4 or IPv6 address (resolve_numeric_domain).
pub(crate) fn valid_hostaddr(text: &str) -> bool {
    text.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::settings_from;

    #[test]
    fn local_context_rewrites() {
        // compatibility_level 0: append_dot_mydomain defaults to yes.
        let old = settings_from("compatibility_level = 0\nmyorigin = example.com\n");
        let new = settings_from("compatibility_level = 3.6\nmyorigin = example.com\n");
        for (input, at0, at36) in [
            ("", "", ""),
            ("@", "", ""),
            ("user", "user@example.com", "user@example.com"),
            ("user@host", "user@host.example.com", "user@host"),
            ("user@host.", "user@host", "user@host"),
            ("user@other.org.", "user@other.org", "user@other.org"),
            ("user@[192.0.2.1]", "user@[192.0.2.1]", "user@[192.0.2.1]"),
            ("user@", "user@", "user@"),
            ("a!b!c", "b!c@a.example.com", "b!c@a"),
            ("host.org!user", "user@host.org", "user@host.org"),
            ("user%other.org", "user@other.org", "user@other.org"),
            ("a%b%c.org", "a%b@c.org", "a%b@c.org"),
            (
                "user%other.org@host.org",
                "user%other.org@host.org",
                "user%other.org@host.org",
            ),
            ("@a.org,@b.org:user@c.org", "user@c.org", "user@c.org"),
            ("a b", "a b@example.com", "a b@example.com"),
            ("a!b c", "a!b c@example.com", "a!b c@example.com"),
        ] {
            assert_eq!(
                rewrite(&old, Context::Local, input),
                at0,
                "level 0: {input}"
            );
            assert_eq!(
                rewrite(&new, Context::Local, input),
                at36,
                "level 3.6: {input}"
            );
        }
    }

    #[test]
    fn switches_turn_rules_off() {
        let s = settings_from(
            "myorigin = example.com\nswap_bangpath = no\nallow_percent_hack = no\n\
             append_at_myorigin = no\n",
        );
        for (input, want) in [
            ("a!b", "a!b"),
            ("user%other.org", "user%other.org"),
            ("user", "user"),
        ] {
            assert_eq!(rewrite(&s, Context::Local, input), want, "{input}");
        }
    }

    #[test]
    fn remote_context_appends_nothing_by_default() {
        let s = settings_from("compatibility_level = 0\nmyorigin = example.com\n");
        assert_eq!(rewrite(&s, Context::Remote, "user"), "user");
        assert_eq!(rewrite(&s, Context::Remote, "user@host"), "user@host");
        let r =
            settings_from("compatibility_level = 0\nremote_header_rewrite_domain = r.example\n");
        assert_eq!(rewrite(&r, Context::Remote, "user"), "user@r.example");
        assert_eq!(
            rewrite(&r, Context::Remote, "user@host"),
            "user@host.r.example"
        );
    }

    #[test]
    fn hostnames() {
        for (name, want) in [
            ("example.com", true),
            ("a_b.example", true),
            ("-a.example", false),
            ("a-.example", false),
            ("a..b", false),
            ("1.2.3.4", false),
            ("1.2.3.x", true),
            ("ex ample", false),
            ("", false),
        ] {
            assert_eq!(valid_hostname(name, false), want, "{name}");
        }
        assert!(valid_mailhost_literal("[192.0.2.1]"));
        assert!(valid_mailhost_literal("[IPv6:2001:db8::1]"));
        assert!(!valid_mailhost_literal("[2001:db8::1]"));
        assert!(!valid_mailhost_literal("[192.0.2.1]x"));
    }

    proptest::proptest! {
        #[test]
        fn rewrite_is_total(input in "[a-z@!%.\\[\\]: \"]{0,20}") {
            let s = settings_from("compatibility_level = 0\n");
            let _ = rewrite(&s, Context::Local, &input);
            let _ = rewrite(&s, Context::Remote, &input);
        }
    }
}
