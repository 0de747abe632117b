//! Postfix's match lists (match_list(3), match_ops(3)): the value of `mydestination`,
//! `relay_domains`, `virtual_alias_domains`, `virtual_mailbox_domains` and `mynetworks`.
//!
//! A list holds patterns separated by commas or blanks; `!pattern` negates; `/file/name`
//! stands for the patterns in that file (one or more per line, `#` lines skipped, a
//! negation in front applies to each); `type:table` looks the string up. The first pattern
//! that matches decides, with its sense; no match is "no". Matching ignores case.
//!
//! Three ways to match, as Postfix's lists use them:
//! - [`MatchList::match_string`] (string_list: mydestination, virtual_*_domains): the whole
//!   string, exactly; a table sees the whole string only.
//! - [`MatchList::match_hostname`] (domain_list: relay_domains; the name half of
//!   mynetworks): the name or a parent domain, `example.com` matching `x.example.com` when
//!   the parameter is in parent_domain_matches_subdomains, else only `.example.com` does;
//!   a fixed-string table also sees each parent domain.
//! - [`MatchList::match_hostaddr`] (addr_match_list: the address half of mynetworks): the
//!   address, `[address]`, or `net/mask` (IPv6 in brackets: `[2001:db8::]/32`).
//!
//! Trust: the strings matched come from the network; nothing here fails on them. A table
//! lookup error is returned, never taken for "no match" (Postfix's MATCH_FLAG_RETURN).

use std::net::IpAddr;

use tern_maps::{Map, MapError};

use crate::settings::SetupError;

/// Opens a `type:table` pattern; the resolver passes [`tern_maps::open`].
pub type Opener<'a> = &'a dyn Fn(&str) -> Result<Box<dyn Map>, MapError>;

/// One parsed match list.
#[derive(Debug)]
pub struct MatchList {
    /// The parameter name, for messages.
    name: String,
    parent_style: bool,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    matches: bool,
    pattern: Pattern,
}

#[derive(Debug)]
enum Pattern {
    /// A literal, lower-cased.
    Text(String),
    Table(Box<dyn Map>),
    /// A `/file/name` that could not be read: every search through it fails, as Postfix's
    /// surrogate table does ("open file /x: No such file or directory").
    Unreadable(String),
}

impl MatchList {
    /// Parses `value`, the expanded value of the parameter `name`.
    pub fn parse(
        name: &str,
        value: &str,
        parent_style: bool,
        open: Opener<'_>,
    ) -> Result<MatchList, SetupError> {
        let mut list = MatchList {
            name: name.to_owned(),
            parent_style,
            entries: Vec::new(),
        };
        list.add(value, true, open, 0)?;
        Ok(list)
    }

    /// Whether the list has no patterns (Postfix then skips the class entirely).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn add(
        &mut self,
        value: &str,
        sense: bool,
        open: Opener<'_>,
        depth: usize,
    ) -> Result<(), SetupError> {
        for element in tern_config::list::split_keep_braces(value) {
            // match_list_parse(): a comment is not allowed at the end of a line; Postfix warns
            // and ignores the rest.
            if element.starts_with('#') {
                break;
            }
            let bangs = element.chars().take_while(|&c| c == '!').count();
            let matches = sense ^ (bangs % 2 == 1);
            let item = &element[bangs..];
            if item.is_empty() {
                return Err(SetupError::EmptyNegation(self.name.clone()));
            }
            if item.starts_with('/') {
                // XXX: a file that includes itself would recurse; 32 levels is plenty for
                // real configurations and keeps a loop finite.
                match std::fs::read_to_string(item) {
                    Ok(text) if depth < 32 => {
                        for line in text.lines().filter(|l| !l.starts_with('#')) {
                            self.add(line, matches, open, depth + 1)?;
                        }
                    }
                    Ok(_) => self.entries.push(Entry {
                        matches,
                        pattern: Pattern::Unreadable(format!("open file {item}: too deep")),
                    }),
                    Err(err) => self.entries.push(Entry {
                        matches,
                        pattern: Pattern::Unreadable(format!(
                            "open file {item}: {}",
                            io_text(&err)
                        )),
                    }),
                }
            } else if is_table(item) {
                let map = open(item).map_err(|source| SetupError::Map {
                    name: self.name.clone(),
                    source,
                })?;
                self.entries.push(Entry {
                    matches,
                    pattern: Pattern::Table(map),
                });
            } else {
                self.entries.push(Entry {
                    matches,
                    pattern: Pattern::Text(item.to_lowercase()),
                });
            }
        }
        Ok(())
    }

    /// string_list: `string` equals a pattern, or is a key of a table.
    pub fn match_string(&self, string: &str) -> Result<bool, MapError> {
        let folded = string.to_lowercase();
        self.first(|pattern| match pattern {
            Pattern::Text(text) => Ok(*text == folded),
            Pattern::Table(map) => Ok(map.lookup(&folded)?.is_some()),
            Pattern::Unreadable(why) => Err(self.unreadable(why)),
        })
    }

    /// domain_list: `name` or one of its parent domains matches.
    pub fn match_hostname(&self, name: &str) -> Result<bool, MapError> {
        let folded = name.to_lowercase();
        self.first(|pattern| self.hostname_pattern(&folded, pattern))
    }

    /// addr_match_list: the address matches.
    pub fn match_hostaddr(&self, addr: IpAddr) -> Result<bool, MapError> {
        let text = addr_text(addr);
        self.first(|pattern| match pattern {
            Pattern::Text(pattern) => Ok(hostaddr_pattern(addr, &text, pattern)),
            Pattern::Table(map) => Ok(map.lookup(&text)?.is_some()),
            Pattern::Unreadable(why) => Err(self.unreadable(why)),
        })
    }

    /// namadr_list (mynetworks): each pattern is tried against the client name, then its
    /// address.
    pub fn match_namadr(&self, name: &str, addr: IpAddr) -> Result<bool, MapError> {
        let folded = name.to_lowercase();
        let text = addr_text(addr);
        self.first(|pattern| {
            if self.hostname_pattern(&folded, pattern)? {
                return Ok(true);
            }
            match pattern {
                Pattern::Text(pattern) => Ok(hostaddr_pattern(addr, &text, pattern)),
                Pattern::Table(map) => Ok(map.lookup(&text)?.is_some()),
                Pattern::Unreadable(why) => Err(self.unreadable(why)),
            }
        })
    }

    /// match_list_match(): the first pattern that matches decides with its sense.
    fn first(
        &self,
        mut test: impl FnMut(&Pattern) -> Result<bool, MapError>,
    ) -> Result<bool, MapError> {
        for entry in &self.entries {
            if test(&entry.pattern)? {
                return Ok(entry.matches);
            }
        }
        Ok(false)
    }

    fn hostname_pattern(&self, name: &str, pattern: &Pattern) -> Result<bool, MapError> {
        match pattern {
            Pattern::Text(pattern) => {
                if name == pattern {
                    return Ok(true);
                }
                let Some(head) = name.strip_suffix(pattern.as_str()) else {
                    return Ok(false);
                };
                Ok(if self.parent_style {
                    head.ends_with('.')
                } else {
                    pattern.starts_with('.') && !head.is_empty()
                })
            }
            Pattern::Table(map) => {
                // The whole name in any table; parent domains only in fixed-string tables,
                // as `.parent` unless the parameter uses parent style.
                if map.lookup(name)?.is_some() {
                    return Ok(true);
                }
                if !tern_maps::query::is_fixed(map.as_ref()) {
                    return Ok(false);
                }
                // match_hostname()'s walk: from each label start (parent style) or each
                // dot (dot style), skipping the first character of the current entry.
                let bytes = name.as_bytes();
                let mut entry = 0usize;
                loop {
                    let from = entry + 1;
                    let Some(dot) = bytes
                        .get(from..)
                        .and_then(|b| b.iter().position(|&c| c == b'.'))
                    else {
                        break;
                    };
                    entry = from + dot + usize::from(self.parent_style);
                    if entry >= bytes.len() {
                        break;
                    }
                    if map.lookup(&name[entry..])?.is_some() {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Pattern::Unreadable(why) => Err(self.unreadable(why)),
        }
    }

    fn unreadable(&self, why: &str) -> MapError {
        MapError::Retry(format!("{}: {why}", self.name))
    }
}

/// MATCH_DICTIONARY(): a pattern with a `:` that does not start with `[`.
fn is_table(pattern: &str) -> bool {
    !pattern.starts_with('[') && pattern.contains(':')
}

/// The address as Postfix prints it: IPv4 dotted, IPv4-mapped IPv6 as IPv4, IPv6 in
/// inet_ntop() form.
pub fn addr_text(addr: IpAddr) -> String {
    addr.to_canonical().to_string()
}

/// match_hostaddr(): `addr`, `[addr]`, or `net/prefix` (`[net]/prefix` for IPv6).
fn hostaddr_pattern(addr: IpAddr, text: &str, pattern: &str) -> bool {
    if pattern == text {
        return true;
    }
    if pattern.strip_prefix('[').and_then(|p| p.strip_suffix(']')) == Some(text) {
        return true;
    }
    let (net, prefix) = match pattern.split_once('/') {
        Some((net, prefix)) => (net, Some(prefix)),
        None => (pattern, None),
    };
    let net = net
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(net);
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    let addr = addr.to_canonical();
    let width = if net.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => width,
        Some(p) => match p.parse::<u32>() {
            Ok(p) if p <= width => p,
            _ => return false,
        },
    };
    match (net, addr) {
        (IpAddr::V4(net), IpAddr::V4(addr)) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(net) & mask == u32::from(addr) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(addr)) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(net) & mask == u128::from(addr) & mask
        }
        _ => false,
    }
}

/// strerror() text for the errors a list file gives.
fn io_text(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".to_owned(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(spec: &str) -> Result<Box<dyn Map>, MapError> {
        tern_maps::open(spec, &tern_maps::OpenFlags::default())
    }

    fn list(value: &str, parent: bool) -> MatchList {
        MatchList::parse("test_list", value, parent, &open).expect("parses")
    }

    #[test]
    fn string_lists_match_whole_names_only() {
        let l = list(
            "Example.COM, !bad.example.net, .example.net, inline:{tab.example=x}",
            false,
        );
        for (name, want) in [
            ("example.com", true),
            ("EXAMPLE.com", true),
            ("sub.example.com", false),
            (".example.net", true),
            ("a.example.net", false),
            ("tab.example", true),
            ("TAB.example", true),
            ("other", false),
        ] {
            assert_eq!(l.match_string(name).expect("no error"), want, "{name}");
        }
    }

    #[test]
    fn domain_lists_match_parents_by_style() {
        let parent = list("example.com, !no.example.org, example.org", true);
        let dotted = list("example.com, .example.org", false);
        for (name, p, d) in [
            ("example.com", true, true),
            ("x.example.com", true, false),
            ("xexample.com", false, false),
            ("no.example.org", false, true),
            ("a.no.example.org", false, true),
            ("example.org", true, false),
            ("a.b.example.org", true, true),
        ] {
            assert_eq!(parent.match_hostname(name).expect("ok"), p, "parent {name}");
            assert_eq!(dotted.match_hostname(name).expect("ok"), d, "dotted {name}");
        }
    }

    #[test]
    fn domain_tables_see_parent_domains() {
        let parent = list("inline:{example.com=ok}", true);
        let dotted = list("inline:{.example.com=ok}", false);
        for (name, p, d) in [
            ("example.com", true, false),
            ("a.example.com", true, true),
            ("a.b.example.com", true, true),
            ("example.net", false, false),
        ] {
            assert_eq!(parent.match_hostname(name).expect("ok"), p, "parent {name}");
            assert_eq!(dotted.match_hostname(name).expect("ok"), d, "dotted {name}");
        }
    }

    #[test]
    fn address_lists_match_networks() {
        let l = list(
            "127.0.0.0/8, !192.168.1.7, 192.168.1.0/24, [::1]/128, [2001:db8::]/32, [10.1.2.3]",
            true,
        );
        for (addr, want) in [
            ("127.0.0.1", true),
            ("127.255.0.9", true),
            ("128.0.0.1", false),
            ("192.168.1.7", false),
            ("192.168.1.8", true),
            ("::1", true),
            ("::2", false),
            ("2001:db8:1::5", true),
            ("2001:db9::5", false),
            ("10.1.2.3", true),
            ("::ffff:127.0.0.1", true),
        ] {
            let ip: IpAddr = addr.parse().expect("test address");
            assert_eq!(l.match_hostaddr(ip).expect("ok"), want, "{addr}");
        }
    }

    #[test]
    fn files_and_tables_in_address_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nets");
        std::fs::write(&file, "# comment\n10.0.0.0/8 172.16.0.0/12\n").expect("write");
        let cidr = dir.path().join("cidr");
        std::fs::write(&cidr, "192.0.2.0/24 OK\n").expect("write");
        let l = list(
            &format!("!{} cidr:{} 0.0.0.0/0", file.display(), cidr.display()),
            true,
        );
        for (addr, want) in [
            ("10.2.3.4", false),
            ("172.20.0.1", false),
            ("192.0.2.9", true),
            ("8.8.8.8", true),
        ] {
            let ip: IpAddr = addr.parse().expect("test address");
            assert_eq!(l.match_hostaddr(ip).expect("ok"), want, "{addr}");
        }
        let missing = list("/nonexistent/file", true);
        let err = missing
            .match_hostaddr("10.0.0.1".parse().expect("ip"))
            .expect_err("unreadable file fails");
        assert!(err.to_string().contains("No such file"), "{err}");
    }

    #[test]
    fn namadr_lists_match_names_too() {
        let l = list("example.com, 10.0.0.0/8", true);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(l.match_namadr("mail.example.com", ip).expect("ok"));
        assert!(!l.match_namadr("unknown", ip).expect("ok"));
        assert!(
            l.match_namadr("unknown", "10.9.9.9".parse().expect("ip"))
                .expect("ok")
        );
    }

    #[test]
    fn empty_negation_is_an_error() {
        assert!(MatchList::parse("mynetworks", "!", true, &open).is_err());
    }
}
