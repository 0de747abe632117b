//! `cidr:` tables: network address patterns, cidr_table(5).
//!
//! The file is read at open time. Each rule is `pattern result` where the pattern is an
//! IPv4 or IPv6 address or `network/prefix`, optionally in `[...]`, optionally negated with
//! `!`; or `if pattern` ... `endif`. The first rule whose pattern matches the looked-up
//! address gives its result. A key that is not an address (as inet_pton() reads it: no
//! brackets, no zone, dotted quads without leading zeros) is not found. A pattern with
//! host bits set beyond its prefix is refused with Postfix's hint of the network it meant.
//!
//! Trust: the table file is data; any content gives warnings, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::pattern::{self, Rules};
use crate::{Map, MapError, OpenFlags, Owner};

/// Opens a `cidr:` table named `name` (a file).
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let (text, owner) = pattern::read_table(name)?;
    let warn = |w: &str| (flags.warn)(w);
    let mut map = CidrMap::parse(name, &text, &warn);
    map.owner = owner;
    Ok(Box::new(map))
}

/// A parsed `cidr:` table.
#[derive(Debug)]
pub struct CidrMap {
    spec: String,
    owner: Owner,
    rules: Rules<(Net, String), Net>,
}

/// One address pattern: the network as a 128-bit number (IPv4 in the low 32 bits), its
/// prefix length, its family and its sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    v6: bool,
    bits: u128,
    prefix: u32,
    matches: bool,
}

impl Net {
    /// Whether `addr` is in the network, in the pattern's sense; an address of the other
    /// family never matches, negated or not (cidr_match.c).
    fn holds(&self, addr: IpAddr) -> bool {
        let (v6, bits) = split(addr);
        if v6 != self.v6 {
            return false;
        }
        let width = if v6 { 128 } else { 32 };
        let mask = mask(width, self.prefix);
        ((bits & mask) == self.bits) == self.matches
    }
}

fn split(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// The netmask of `prefix` bits in an address of `width` bits.
fn mask(width: u32, prefix: u32) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (width - prefix.min(width))) - 1)
    }
}

impl CidrMap {
    /// Parses the table text `text` of the file `path`, sending warnings to `warn`.
    pub fn parse(path: &str, text: &str, warn: &dyn Fn(&str)) -> CidrMap {
        let mut rules = Rules::default();
        for line in pattern::logical_lines(path, text, warn) {
            if let Err(why) = rule(&line.text, line.number, &mut rules) {
                warn(&format!(
                    "cidr map {path}, line {}: {why}: skipping this rule",
                    line.number
                ));
            }
        }
        for line in rules.finish() {
            warn(&format!(
                "cidr map {path}, line {line}: IF has no matching ENDIF"
            ));
        }
        CidrMap {
            owner: Owner::Trusted,
            spec: format!("cidr:{path}"),
            rules,
        }
    }
}

impl Map for CidrMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        let Some(addr) = parse_addr(key) else {
            return Ok(None);
        };
        Ok(self.rules.first(
            |net| net.holds(addr),
            |(net, value)| net.holds(addr).then(|| value.clone()),
        ))
    }

    fn owner(&self) -> Owner {
        self.owner
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(MapError::Config(format!(
            "table {}: sequence operation is not supported",
            self.spec
        )))
    }
}

/// Reads an address as inet_pton() does for the family its text implies (a `:` means
/// IPv6).
fn parse_addr(text: &str) -> Option<IpAddr> {
    if text.contains(':') {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        // Rust's parser, like glibc's inet_pton(), wants four decimal parts without
        // leading zeros.
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// Parses one logical line into `rules`; the error is Postfix's reason text.
fn rule(line: &str, number: usize, rules: &mut Rules<(Net, String), Net>) -> Result<(), String> {
    if let Some(rest) = pattern::keyword(line, "if") {
        let (matches, rest) = negation(rest);
        if rest.is_empty() {
            return Err("no address pattern".to_owned());
        }
        let net = parse_net(pattern::trim_end(rest), matches)?;
        rules.push_if(net, number);
        return Ok(());
    }
    if let Some(rest) = pattern::keyword(line, "endif") {
        if !pattern::skip_space(rest).is_empty() {
            return Err("garbage after ENDIF".to_owned());
        }
        if rules.nesting() == 0 {
            return Err("ENDIF without IF".to_owned());
        }
        rules.push_endif();
        return Ok(());
    }
    let (matches, rest) = negation(line);
    let end = rest.find(pattern::is_space).unwrap_or(rest.len());
    let key = &rest[..end];
    let value = pattern::trim_end(pattern::skip_space(&rest[end..]));
    if key.is_empty() {
        return Err("no address pattern".to_owned());
    }
    let net = parse_net(key, matches)?;
    if value.is_empty() {
        return Err("no lookup result".to_owned());
    }
    rules.push_match((net, value.to_owned()));
    Ok(())
}

/// Leading `!`s and white space; each `!` flips the sense.
fn negation(text: &str) -> (bool, &str) {
    let mut matches = true;
    let mut rest = text;
    loop {
        match rest.chars().next() {
            Some('!') => matches = !matches,
            Some(c) if pattern::is_space(c) => {}
            _ => return (matches, rest),
        }
        rest = &rest[1..];
    }
}

/// Parses `addr`, `addr/len`, `[addr]`, `[addr]/len` or `[addr/len]` as cidr_match_parse().
fn parse_net(text: &str, matches: bool) -> Result<Net, String> {
    let (addr_part, mask_part): (&str, Option<&str>) = if let Some(inner) = text.strip_prefix('[') {
        let Some((inside, after)) = inner.split_once(']') else {
            return Err(format!("missing ']' character after \"[{inner}\""));
        };
        if let Some(len) = after.strip_prefix('/') {
            (inside, Some(len))
        } else if after.is_empty() {
            match inside.split_once('/') {
                Some((a, m)) => (a, Some(m)),
                None => (inside, None),
            }
        } else {
            return Err(format!("garbage after \"[{inside}]\""));
        }
    } else {
        match text.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (text, None),
        }
    };
    let v6 = addr_part.contains(':');
    let width: u32 = if v6 { 128 } else { 32 };
    let Some(mask_text) = mask_part else {
        let addr = parse_addr(addr_part)
            .filter(|a| a.is_ipv6() == v6)
            .ok_or_else(|| format!("bad address pattern: \"{addr_part}\""))?;
        return Ok(Net {
            v6,
            bits: split(addr).1,
            prefix: width,
            matches,
        });
    };
    let bad = |what: &str| format!("{what} in \"{addr_part}/{mask_text}\"");
    if mask_text.is_empty() || !mask_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("bad mask value"));
    }
    // Postfix stores atoi()'s result in an unsigned char: the length is taken modulo 256
    // (observed: "/264" is "/8"; "/256" is "/0"), and strtol() saturates huge numbers.
    let value = mask_text
        .parse::<u128>()
        .unwrap_or(u128::MAX)
        .min(i64::MAX as u128);
    let prefix = u32::from(value.to_le_bytes()[0]);
    if prefix > width {
        return Err(bad("bad mask length"));
    }
    let addr = parse_addr(addr_part)
        .filter(|a| a.is_ipv6() == v6)
        .ok_or_else(|| bad("bad network value"))?;
    let bits = split(addr).1;
    let net = bits & mask(width, prefix);
    if net != bits {
        let shown = if v6 {
            Ipv6Addr::from(net).to_string()
        } else {
            // Invariant: `net` is an IPv4 address masked, so it fits in 32 bits.
            Ipv4Addr::from(u32::try_from(net).unwrap_or(0)).to_string()
        };
        return Err(format!(
            "non-null host address bits in \"{addr_part}/{mask_text}\", perhaps you should use \"{shown}/{prefix}\" instead"
        ));
    }
    Ok(Net {
        v6,
        bits,
        prefix,
        matches,
    })
}

#[cfg(test)]
mod tests;
