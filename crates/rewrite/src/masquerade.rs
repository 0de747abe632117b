//! Address masquerading (cleanup_masquerade.c, ADDRESS_REWRITING_README): with
//! `masquerade_domains = example.com`, `user@host.example.com` becomes
//! `user@example.com`.
//!
//! The list is searched in order; the first entry that is the address's domain or one
//! of its parents decides: a parent replaces the domain (the entry's lower-case text), the
//! domain itself leaves the address alone. An entry `!name` matches the same way but
//! never rewrites, so `!sub.example.com, example.com` keeps `user@sub.example.com` (and
//! `user@host.sub.example.com`) as they are; `!!` cancels out. Local parts listed in
//! masquerade_exceptions (a string list: names or tables, whole local part,
//! case-insensitive) are never masqueraded.
//!
//! Trust: addresses come from the network; nothing here panics on any input.

use tern_maps::MapError;

use crate::matchlist::MatchList;

/// masquerade_domains and masquerade_exceptions, parsed.
#[derive(Debug)]
pub struct Masquerade {
    /// The entries as given, `!` kept (argv_split on commas and blanks).
    domains: Vec<String>,
    exceptions: Option<MatchList>,
}

impl Masquerade {
    /// `domains` is masquerade_domains' value; `exceptions` the parsed
    /// masquerade_exceptions (`None` when empty).
    pub fn new(domains: &str, exceptions: Option<MatchList>) -> Masquerade {
        Masquerade {
            domains: domains
                .split([',', ' ', '\t', '\r', '\n'])
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect(),
            exceptions,
        }
    }

    /// Whether masquerading is configured at all.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// cleanup_masquerade_external(): the masqueraded address, or `None` when it stays.
    /// An error in the exceptions table is returned after the address is decided, as
    /// Postfix refuses the message then ("map lookup problem").
    pub fn apply(&self, address: &str) -> Result<Option<String>, MapError> {
        let Some(at) = address.rfind('@') else {
            return Ok(None);
        };
        let name = &address[..at];
        let domain = address[at + 1..].to_lowercase();
        if let Some(exceptions) = &self.exceptions
            && exceptions.match_string(name)?
        {
            return Ok(None);
        }
        for entry in &self.domains {
            let bangs = entry.bytes().take_while(|&b| b == b'!').count();
            let truncate = bangs % 2 == 0;
            let masq = entry[bangs..].to_lowercase();
            if masq.is_empty() {
                continue;
            }
            if masq.len() == domain.len() {
                if masq == domain {
                    return Ok(None);
                }
            } else if masq.len() < domain.len() {
                let cut = domain.len() - masq.len();
                if domain.as_bytes()[cut - 1] == b'.' && domain.get(cut..) == Some(masq.as_str()) {
                    return Ok(truncate.then(|| format!("{name}@{masq}")));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masq(domains: &str, exceptions: &str) -> Masquerade {
        let exceptions = (!exceptions.is_empty()).then(|| {
            MatchList::parse("masquerade_exceptions", exceptions, false, &|s| {
                tern_maps::open(s, &tern_maps::OpenFlags::default())
            })
            .expect("list")
        });
        Masquerade::new(domains, exceptions)
    }

    #[test]
    fn cases() {
        // (masquerade_domains, masquerade_exceptions, address, result)
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            (
                "example.com",
                "",
                "u@host.example.com",
                Some("u@example.com"),
            ),
            (
                "example.com",
                "",
                "u@a.b.example.com",
                Some("u@example.com"),
            ),
            ("example.com", "", "u@example.com", None),
            ("example.com", "", "u@badexample.com", None),
            (
                "example.com",
                "",
                "u@HOST.EXAMPLE.COM",
                Some("u@example.com"),
            ),
            (
                "EXAMPLE.com",
                "",
                "U@host.example.com",
                Some("U@example.com"),
            ),
            ("example.com", "", "u", None),
            (
                "!sub.example.com, example.com",
                "",
                "u@sub.example.com",
                None,
            ),
            (
                "!sub.example.com, example.com",
                "",
                "u@h.sub.example.com",
                None,
            ),
            (
                "!sub.example.com, example.com",
                "",
                "u@h.example.com",
                Some("u@example.com"),
            ),
            (
                "!!sub.example.com",
                "",
                "u@h.sub.example.com",
                Some("u@sub.example.com"),
            ),
            // Order matters: the first parent wins.
            (
                "example.com sub.example.com",
                "",
                "u@h.sub.example.com",
                Some("u@example.com"),
            ),
            (
                "sub.example.com example.com",
                "",
                "u@h.sub.example.com",
                Some("u@sub.example.com"),
            ),
            ("example.com", "root", "root@h.example.com", None),
            ("example.com", "root", "ROOT@h.example.com", None),
            (
                "example.com",
                "root",
                "root+x@h.example.com",
                Some("root+x@example.com"),
            ),
            (
                "example.com",
                "inline:{admin=1}",
                "admin@h.example.com",
                None,
            ),
            ("", "", "u@h.example.com", None),
        ];
        for (domains, exceptions, address, want) in cases {
            let got = masq(domains, exceptions).apply(address).expect("apply");
            assert_eq!(
                got.as_deref(),
                *want,
                "{domains} / {exceptions} / {address}"
            );
        }
    }
}
