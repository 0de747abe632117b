//! The obsolete smtp_tls_per_site table (postconf(5) smtp_tls_per_site; smtp_tls_policy.c
//! tls_site_lookup() and policy_create()), which Postfix 3.7 still honours when
//! smtp_tls_policy_maps is empty.
//!
//! The table is searched twice, with exact keys only (no parent domains): with the next-hop
//! destination as written (`example.com`, `[mx.example.com]:587`), then, unless it is the
//! same text in another case, with the server's host name (the MX host, or the name inside
//! `[]`). Values are `NONE` (none), `MAY` (may), `MUST_NOPEERMATCH` (encrypt) and `MUST`
//! (verify, with smtp_tls_verify_cert_match), in any case.
//!
//! Between the two results the precedence is, strongest first, MUST, MUST_NOPEERMATCH,
//! NONE, MAY, no entry: a specific NONE beats a wild-card MAY, otherwise the stricter level
//! wins. Against the global smtp_tls_security_level, an entry wins, except that a MAY
//! result gives way to a global level above `may` ("global policy can override only a
//! per-site MAY wildcard"): so NONE at either lookup sends in plaintext even when the
//! global level is `encrypt`, and MUST at either lookup verifies even when it is `none`.
//!
//! # Security
//! The table is trusted configuration. An unknown value invalidates the policy (the mail
//! defers with `4.7.5 client TLS configuration problem`) rather than weakening it; a table
//! that cannot be searched defers with `4.3.0 Temporary lookup error`.

use tern_maps::Map;

use super::policy::{Level, PolicyError};

/// The level after both lookups and the global override; `None` when neither lookup found
/// an entry (the global level applies). Warnings (after `warning: `) go to `warnings`.
pub(crate) fn lookup(
    table: &dyn Map,
    title: &str,
    global: Level,
    dest: &str,
    host: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Level>, PolicyError> {
    let mut site = one(table, title, None, dest, "next-hop destination", warnings)?;
    // strcasecmp_utf8(dest, host): the same name is looked up once.
    if !host.is_empty() && !dest.eq_ignore_ascii_case(host) {
        site = one(table, title, site, host, "server hostname", warnings)?;
    }
    // Override a wild-card per-site MAY with a stricter global level.
    if site == Some(Level::May) && global > Level::May {
        site = Some(global);
    }
    Ok(site)
}

/// One lookup, combined with the result so far (`None`: not found yet).
fn one(
    table: &dyn Map,
    title: &str,
    site: Option<Level>,
    key: &str,
    class: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Level>, PolicyError> {
    let value = match table.lookup(key) {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(site),
        Err(_) => {
            warnings.push(format!(
                "{title}: {class} \"{key}\": per-site table lookup error"
            ));
            return Err(PolicyError::Lookup);
        }
    };
    let Some(value) = Value::parse(&value) else {
        warnings.push(format!(
            "{title}: unknown TLS policy '{value}' for {class} {key}"
        ));
        return Err(PolicyError::Config);
    };
    Ok(combine(site, value))
}

/// A table value, any case.
#[derive(Debug, Clone, Copy)]
enum Value {
    None,
    May,
    MustNoPeerMatch,
    Must,
}

impl Value {
    fn parse(text: &str) -> Option<Value> {
        [
            ("NONE", Value::None),
            ("MAY", Value::May),
            ("MUST_NOPEERMATCH", Value::MustNoPeerMatch),
            ("MUST", Value::Must),
        ]
        .into_iter()
        .find(|(name, _)| text.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
    }
}

/// The result so far combined with one table value. `Option<Level>` orders "not found"
/// below `none`, as TLS_LEV_NOTFOUND (-1) does.
fn combine(site: Option<Level>, value: Value) -> Option<Level> {
    match value {
        // NONE overrides MAY or no entry, not MUST_NOPEERMATCH or MUST.
        Value::None if site <= Some(Level::May) => Some(Level::None),
        Value::None => site,
        // MAY overrides no entry, not NONE.
        Value::May => site.or(Some(Level::May)),
        Value::MustNoPeerMatch => site.max(Some(Level::Encrypt)),
        Value::Must => site.max(Some(Level::Verify)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tern_maps::MapError;

    use super::*;

    #[derive(Debug)]
    struct TestMap(HashMap<String, String>, bool);

    impl Map for TestMap {
        fn spec(&self) -> &'static str {
            "test:map"
        }
        fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
            if self.1 {
                return Err(MapError::Retry("test:map: lookup error".to_owned()));
            }
            Ok(self.0.get(&key.to_ascii_lowercase()).cloned())
        }
    }

    fn map(dest: Option<&str>, host: Option<&str>) -> TestMap {
        let mut m = HashMap::new();
        if let Some(v) = dest {
            m.insert("example.com".to_owned(), v.to_owned());
        }
        if let Some(v) = host {
            m.insert("mx.example.com".to_owned(), v.to_owned());
        }
        TestMap(m, false)
    }

    use Level::{Encrypt, May, None as Plain, Secure, Verify};

    /// (value for the next hop, value for the host, global level, result).
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Level,
        Option<Level>,
    );

    #[test]
    fn precedence() {
        let cases: &[Case] = &[
            // No entry: the global level (the caller keeps it).
            (None, None, Encrypt, None),
            // One entry, either key, over any global level.
            (Some("NONE"), None, Encrypt, Some(Plain)),
            (None, Some("NONE"), Secure, Some(Plain)),
            (Some("MUST"), None, Plain, Some(Verify)),
            (None, Some("MUST"), May, Some(Verify)),
            (Some("MUST_NOPEERMATCH"), None, Verify, Some(Encrypt)),
            (None, Some("must_nopeermatch"), Plain, Some(Encrypt)),
            (Some("MAY"), None, Plain, Some(May)),
            // A wild-card MAY gives way to a stricter global level only.
            (Some("MAY"), None, Encrypt, Some(Encrypt)),
            (None, Some("May"), Verify, Some(Verify)),
            // NONE beats MAY, in either order, whatever the global level.
            (Some("NONE"), Some("MAY"), Verify, Some(Plain)),
            (Some("MAY"), Some("NONE"), Verify, Some(Plain)),
            // Otherwise the stricter entry wins.
            (Some("NONE"), Some("MUST"), Plain, Some(Verify)),
            (Some("MUST"), Some("NONE"), Plain, Some(Verify)),
            (Some("NONE"), Some("MUST_NOPEERMATCH"), May, Some(Encrypt)),
            (Some("MUST_NOPEERMATCH"), Some("MUST"), May, Some(Verify)),
            (Some("MUST"), Some("MUST_NOPEERMATCH"), May, Some(Verify)),
            (Some("MAY"), Some("MUST_NOPEERMATCH"), Plain, Some(Encrypt)),
            (Some("MUST_NOPEERMATCH"), Some("MAY"), Plain, Some(Encrypt)),
        ];
        for (i, (d, h, global, want)) in cases.iter().enumerate() {
            let m = map(*d, *h);
            let mut w = Vec::new();
            let got = lookup(
                &m,
                "smtp_tls_per_site",
                *global,
                "example.com",
                "mx.example.com",
                &mut w,
            );
            assert_eq!(got, Ok(*want), "case {i}: {d:?} {h:?} {global:?}");
            assert!(w.is_empty(), "case {i}: {w:?}");
        }
    }

    #[test]
    fn the_same_name_is_looked_up_once() {
        // dest and host equal (but for case): one lookup, so "MUST" is not raised twice
        // and an error in the host lookup cannot happen.
        let m = map(Some("MAY"), None);
        let mut w = Vec::new();
        let got = lookup(&m, "t", Plain, "example.com", "EXAMPLE.COM", &mut w);
        assert_eq!(got, Ok(Some(May)));
    }

    #[test]
    fn bad_values_and_errors() {
        // (dest value, host value, error, warning)
        let cases: &[(Option<&str>, Option<&str>, PolicyError, &str)] = &[
            (
                Some("REQUIRED"),
                Some("MUST"),
                PolicyError::Config,
                "smtp_tls_per_site: unknown TLS policy 'REQUIRED' for next-hop destination \
                 example.com",
            ),
            (
                Some("NONE"),
                Some("encrypt"),
                PolicyError::Config,
                "smtp_tls_per_site: unknown TLS policy 'encrypt' for server hostname \
                 mx.example.com",
            ),
        ];
        for (d, h, err, warning) in cases {
            let m = map(*d, *h);
            let mut w = Vec::new();
            let got = lookup(
                &m,
                "smtp_tls_per_site",
                May,
                "example.com",
                "mx.example.com",
                &mut w,
            );
            assert_eq!(got, Err(err.clone()), "{d:?} {h:?}");
            assert_eq!(w, [*warning]);
        }
        let mut m = map(None, None);
        m.1 = true;
        let mut w = Vec::new();
        let got = lookup(
            &m,
            "smtp_tls_per_site",
            May,
            "example.com",
            "mx.example.com",
            &mut w,
        );
        assert_eq!(got, Err(PolicyError::Lookup));
        assert_eq!(
            w,
            [
                "smtp_tls_per_site: next-hop destination \"example.com\": per-site table lookup \
              error"
            ]
        );
        assert_eq!(
            (
                PolicyError::Lookup.dsn(),
                PolicyError::Lookup.to_string().as_str()
            ),
            ("4.3.0", "Temporary lookup error")
        );
    }
}
