//! The TLS policy for one next hop (smtp_tls_policy.c, policy_create()): the security level
//! from smtp_tls_security_level, overridden by an smtp_tls_policy_maps entry, with the
//! protocols, SNI name, certificate match strategy and trust anchors that level uses.
//!
//! The table is searched as Postfix 3.7 searches it (tls_policy_lookup()): with the
//! next-hop destination exactly as the transport or relayhost gives it (`example.com`,
//! `[mx.example.com]:587`, `[192.0.2.1]`); when that is a domain name, then with its parent
//! domains in the `.example.com` form (`.com` last), stopping at the first entry found.
//! The MX host name is never a key there. When smtp_tls_policy_maps is empty, the
//! obsolete smtp_tls_per_site table is searched instead, by next hop and by host name
//! (see [`super::per_site`]).
//!
//! A bad entry does not fall back to a weaker level: it makes the policy invalid, the
//! address is skipped with `TLS policy lookup for DEST/HOST: client TLS configuration
//! problem`, and the mail is deferred with `4.7.5 client TLS configuration problem`.
//!
//! # Security
//! Table values are trusted configuration but are parsed strictly: an unknown level or
//! attribute invalidates the policy rather than weakening it (postconf(5),
//! smtp_tls_policy_maps).

use std::sync::Arc;

use rustls::RootCertStore;
use tern_maps::Map;

use super::settings::Settings;
use super::trust;
use crate::nexthop::parse::valid_hostname;

/// smtp_tls_security_level values, in Postfix's order (tls.h TLS_LEV_*): each level is at
/// least as strict as the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    #[default]
    None,
    May,
    Encrypt,
    Fingerprint,
    Dane,
    DaneOnly,
    Verify,
    Secure,
}

impl Level {
    /// A level by its name, case-sensitive as tls_level_lookup() is.
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name {
            "none" => Level::None,
            "may" => Level::May,
            "encrypt" => Level::Encrypt,
            "fingerprint" => Level::Fingerprint,
            "dane" => Level::Dane,
            "dane-only" => Level::DaneOnly,
            "verify" => Level::Verify,
            "secure" => Level::Secure,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::May => "may",
            Level::Encrypt => "encrypt",
            Level::Fingerprint => "fingerprint",
            Level::Dane => "dane",
            Level::DaneOnly => "dane-only",
            Level::Verify => "verify",
            Level::Secure => "secure",
        }
    }

    /// TLS_REQUIRED(): no plaintext delivery at this level.
    pub fn required(self) -> bool {
        self > Level::May
    }

    /// TLS_MUST_MATCH(): the certificate must match, or the session fails.
    pub fn must_match(self) -> bool {
        self > Level::Encrypt
    }

    /// TLS_MUST_PKIX(): trust comes from CAs.
    pub fn must_pkix(self) -> bool {
        self >= Level::Verify
    }
}

/// The effective policy for one next hop.
#[derive(Debug, Clone)]
pub struct Policy {
    pub level: Level,
    /// The protocol list in force (`protocols=`, else smtp_tls_protocols at `may`, else
    /// smtp_tls_mandatory_protocols); parsed at handshake time as Postfix does.
    pub protocols: String,
    /// `servername=` or smtp_tls_servername: `hostname`, `nexthop`, a literal name, or
    /// None for no SNI (the default).
    pub sni: Option<String>,
    /// The match strategies at `verify` and `secure` (`hostname`, `nexthop`,
    /// `dot-nexthop`, a name, or `.domain`).
    pub matches: Vec<String>,
    /// At `fingerprint`: the certificate or public-key digests to match.
    pub fingerprints: Vec<String>,
    /// Per-destination trust anchors (`tafile=` or smtp_tls_trust_anchor_file): used
    /// instead of smtp_tls_CAfile / smtp_tls_CApath at `verify` and `secure`.
    pub trust_anchors: Option<Arc<RootCertStore>>,
    /// `connection_reuse=` or smtp_tls_connection_reuse.
    pub conn_reuse: bool,
}

impl Policy {
    /// Plaintext: level `none`.
    pub fn none() -> Policy {
        Policy {
            level: Level::None,
            protocols: String::new(),
            sni: None,
            matches: Vec::new(),
            fingerprints: Vec::new(),
            trust_anchors: None,
            conn_reuse: false,
        }
    }
}

/// A policy that cannot be used (MARK_INVALID): the warnings say why; the delivery
/// defers with this status and text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A bad table entry or setting: `4.7.5 client TLS configuration problem`.
    #[error("client TLS configuration problem")]
    Config,
    /// smtp_tls_per_site could not be searched: `4.3.0 Temporary lookup error`.
    #[error("Temporary lookup error")]
    Lookup,
}

impl PolicyError {
    /// The enhanced status code for `dsn=`.
    pub fn dsn(&self) -> &'static str {
        match self {
            PolicyError::Config => "4.7.5",
            PolicyError::Lookup => "4.3.0",
        }
    }
}

/// The table in force: smtp_tls_policy_maps, else smtp_tls_per_site, else none
/// (smtp_tls_policy.c smtp_tls_list_init(): never both).
#[derive(Clone, Copy, Default)]
pub enum Table<'a> {
    #[default]
    None,
    PolicyMaps(&'a dyn Map),
    PerSite(&'a dyn Map),
}

/// What the caller knows about the next hop when it asks for a policy.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The next-hop destination as written (`example.com`, `[mx.example.com]:587`): the
    /// table key.
    pub dest: &'a str,
    /// The server's host name (the MX host, or the name in `[]`; an address for an
    /// address literal): smtp_tls_per_site's second key.
    pub host: &'a str,
    /// Whether this is an LMTP `unix:` socket (DANE is refused there).
    pub unix_socket: bool,
}

/// Computes the policy for `dest`: the global level, then the table. Warnings go to
/// `warnings` (texts after `warning: `).
pub fn lookup(
    settings: &Settings,
    table: Table<'_>,
    dest: Destination<'_>,
    warnings: &mut Vec<String>,
) -> Result<Policy, PolicyError> {
    let mut policy = Policy::none();
    policy.level = settings.level;
    policy.conn_reuse = settings.conn_reuse;
    let mut entry = Entry::default();
    match table {
        Table::None => {}
        Table::PolicyMaps(table) => {
            let title = settings.param("tls_policy_maps");
            if let Some(found) = table_lookup(table, &title, dest.dest, warnings)? {
                entry = found;
                policy.level = entry.level;
            }
        }
        Table::PerSite(table) => {
            let title = settings.param("tls_per_site");
            if let Some(level) = super::per_site::lookup(
                table,
                &title,
                settings.level,
                dest.dest,
                dest.host,
                warnings,
            )? {
                policy.level = level;
            }
        }
    }
    if let Some(reuse) = entry.conn_reuse {
        policy.conn_reuse = reuse;
    }
    if matches!(policy.level, Level::Dane | Level::DaneOnly) {
        dane_fallback(&mut policy, dest, warnings)?;
    }
    if policy.level == Level::None {
        return Ok(policy);
    }
    policy.protocols = entry.protocols.unwrap_or_else(|| {
        if policy.level == Level::May {
            settings.protocols.clone()
        } else {
            settings.mandatory_protocols.clone()
        }
    });
    policy.sni = match entry.sni {
        Some(sni) => Some(sni),
        None if settings.servername.is_empty() => None,
        None if valid_hostname(&settings.servername, false).is_ok() => {
            Some(settings.servername.clone())
        }
        None => {
            warnings.push(format!(
                "\"{} = {}\" specifies an invalid hostname",
                settings.param("tls_servername"),
                settings.servername
            ));
            return Err(PolicyError::Config);
        }
    };
    match policy.level {
        Level::Fingerprint => {
            policy.fingerprints = if entry.matches.is_empty() {
                split_list(&settings.fingerprint_cert_match)
            } else {
                entry.matches
            };
            if policy.fingerprints.is_empty() {
                warnings.push(format!(
                    "nexthop domain {}: configured at fingerprint security level, but with \
                     no fingerprints to match.",
                    dest.dest
                ));
                return Err(PolicyError::Config);
            }
        }
        Level::Verify | Level::Secure => {
            policy.matches = if !entry.matches.is_empty() {
                entry.matches
            } else if policy.level == Level::Verify {
                split_match(&settings.verify_cert_match)
            } else {
                split_match(&settings.secure_cert_match)
            };
            let files = if entry.tafiles.is_empty() {
                split_list(&settings.trust_anchor_file)
            } else {
                entry.tafiles
            };
            if !files.is_empty() {
                let store =
                    trust::load_trust_anchor_files(&files, warnings).ok_or(PolicyError::Config)?;
                policy.trust_anchors = Some(Arc::new(store));
            }
        }
        _ => {}
    }
    Ok(policy)
}

/// Without DNSSEC-validated TLSA lookups Tern is a Postfix built without DANE support
/// (smtp_tls_policy.c, dane_init() and dane_incompat()): `dane` becomes `may` with a
/// warning; `dane-only`, which promises authentication, makes the policy invalid.
fn dane_fallback(
    policy: &mut Policy,
    dest: Destination<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), PolicyError> {
    if dest.unix_socket {
        warnings.push(format!(
            "{}: the \"dane\" security level is invalid for delivery via unix-domain sockets",
            dest.dest
        ));
        return Err(PolicyError::Config);
    }
    warnings.push(format!(
        "{}: {} configured, but no requisite library support",
        dest.dest,
        policy.level.name()
    ));
    if policy.level == Level::DaneOnly {
        return Err(PolicyError::Config);
    }
    policy.level = Level::May;
    Ok(())
}

/// One parsed table entry.
#[derive(Debug, Default)]
struct Entry {
    level: Level,
    protocols: Option<String>,
    sni: Option<String>,
    matches: Vec<String>,
    tafiles: Vec<String>,
    conn_reuse: Option<bool>,
}

/// tls_policy_lookup(): the destination, then (for a domain name) its parent domains.
fn table_lookup(
    table: &dyn Map,
    title: &str,
    dest: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Entry>, PolicyError> {
    let mut keys = vec![dest.to_owned()];
    if valid_hostname(dest, false).is_ok() {
        let mut rest = dest;
        // strchr(site_name + 1, '.'): each parent with its leading dot.
        while let Some(i) = rest.get(1..).and_then(|r| r.find('.')) {
            rest = &rest[i + 1..];
            keys.push(rest.to_owned());
        }
    }
    for key in keys {
        let where_ = format!("{title}, next-hop destination \"{key}\"");
        match table.lookup(&key) {
            Ok(Some(value)) => return parse_entry(&value, &where_, warnings).map(Some),
            Ok(None) => {}
            Err(_) => {
                warnings.push(format!("{where_}: policy table lookup error"));
                return Err(PolicyError::Config);
            }
        }
    }
    Ok(None)
}

/// tls_policy_lookup_one(): a level, then `name=value` attributes.
fn parse_entry(
    value: &str,
    where_: &str,
    warnings: &mut Vec<String>,
) -> Result<Entry, PolicyError> {
    let mut fail = |text: String| {
        warnings.push(format!("{where_}: {text}"));
        Err(PolicyError::Config)
    };
    let mut tokens = split_list(value).into_iter();
    let Some(first) = tokens.next() else {
        return fail("invalid empty policy".to_owned());
    };
    let Some(level) = Level::parse(&first) else {
        return fail(format!("invalid security level \"{first}\""));
    };
    let mut entry = Entry {
        level,
        ..Entry::default()
    };
    if level < Level::May {
        for tok in tokens {
            warnings.push(format!(
                "{where_}: ignoring attribute \"{tok}\" with TLS disabled"
            ));
        }
        return Ok(entry);
    }
    let (mut ciphers, mut exclude) = (false, false);
    for tok in tokens {
        let Some((name, val)) = split_nameval(&tok) else {
            let why = if tok.starts_with('=') {
                "missing attribute name"
            } else {
                "missing '=' after attribute name"
            };
            return fail(format!("malformed attribute/value pair \"{tok}\": {why}"));
        };
        let once = |seen: bool| {
            if seen {
                Err(format!("attribute \"{name}\" is specified multiple times"))
            } else {
                Ok(())
            }
        };
        let result: Result<(), String> = match name.to_ascii_lowercase().as_str() {
            // Cipher grades and exclusions are OpenSSL's; rustls's suites are all "high".
            "ciphers" | "match" if val.is_empty() => {
                Err(format!("attribute \"{name}\" has empty value"))
            }
            "ciphers" => once(ciphers).map(|()| ciphers = true),
            "exclude" => once(exclude).map(|()| exclude = true),
            "protocols" => {
                once(entry.protocols.is_some()).map(|()| entry.protocols = Some(val.to_owned()))
            }
            "servername" => once(entry.sni.is_some()).and_then(|()| {
                if valid_hostname(val, false).is_ok() {
                    entry.sni = Some(val.to_owned());
                    Ok(())
                } else {
                    Err(format!("\"{name}={val}\" specifies an invalid hostname"))
                }
            }),
            "match" => match level {
                Level::Fingerprint => {
                    entry
                        .matches
                        .extend(val.split('|').filter(|s| !s.is_empty()).map(str::to_owned));
                    Ok(())
                }
                Level::Verify | Level::Secure => {
                    entry
                        .matches
                        .extend(val.split(':').filter(|s| !s.is_empty()).map(str::to_owned));
                    Ok(())
                }
                _ => Err(format!(
                    "attribute \"{name}\" invalid at security level \"{}\"",
                    level.name()
                )),
            },
            "tafile" if !level.must_pkix() => Err(format!(
                "attribute \"{name}\" invalid at security level \"{}\"",
                level.name()
            )),
            "tafile" if val.is_empty() => Err(format!("attribute \"{name}\" has empty value")),
            "tafile" => {
                entry.tafiles.push(val.to_owned());
                Ok(())
            }
            "connection_reuse" => match val.to_ascii_lowercase().as_str() {
                "yes" => {
                    entry.conn_reuse = Some(true);
                    Ok(())
                }
                "no" => {
                    entry.conn_reuse = Some(false);
                    Ok(())
                }
                _ => Err(format!("attribute \"{name}\" has bad value: \"{val}\"")),
            },
            _ => Err(format!("invalid attribute name: \"{name}\"")),
        };
        if let Err(text) = result {
            return fail(text);
        }
    }
    Ok(entry)
}

/// split_nameval(): `name=value` with blanks trimmed; None when malformed.
fn split_nameval(tok: &str) -> Option<(&str, &str)> {
    let (name, value) = tok.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some((name, value.trim()))
}

/// CHARS_COMMA_SP splitting.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The cert_match parameters split on CHARS_COMMA_SP and `:`.
fn split_match(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ':' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
