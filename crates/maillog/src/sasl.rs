//! smtpd(8)'s SASL lines, as Postfix 3.7.11 logs them (smtpd_sasl_glue.c,
//! xsasl_dovecot_server.c), checked against Debian's Postfix with Dovecot behind it:
//!
//! ```text
//! warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=tern
//! warning: localhost[127.0.0.1]: SASL FOO authentication failed: Invalid authentication mechanism, sasl_username=(unavailable)
//! warning: localhost[127.0.0.1]: SASL LOGIN authentication aborted
//! warning: SASL: Connect to Dovecot auth socket 'private/auth' failed: No such file or directory
//! fatal: no SASL authentication mechanisms
//! ```
//!
//! Trust: the method and the user name come from the network (the user name through the
//! auth server); the caller makes them printable. Both are cut at 100 bytes as Postfix's
//! `%.100s` does.

use crate::line::Line;
use crate::smtpd::Client;

/// `warning: NAME[ADDR]: SASL METHOD authentication failed: REASON, sasl_username=USER`;
/// USER is `(unavailable)` when the auth server named nobody.
pub fn authentication_failed(
    client: Client<'_>,
    method: &str,
    reason: &str,
    username: Option<&str>,
) -> Line {
    Line::warning(format!(
        "{client}: SASL {} authentication failed: {reason}, sasl_username={}",
        cut(method),
        username.map_or("(unavailable)", cut)
    ))
}

/// `warning: NAME[ADDR]: SASL METHOD authentication aborted` (the client sent `*`).
pub fn authentication_aborted(client: Client<'_>, method: &str) -> Line {
    Line::warning(format!(
        "{client}: SASL {} authentication aborted",
        cut(method)
    ))
}

/// A warning of the SASL back end, as it wrote it (`SASL: Connect to Dovecot auth socket
/// 'PATH' failed: ERROR`, `SASL: Protocol error`, ...).
pub fn backend_warning(text: &str) -> Line {
    Line::warning(text.to_owned())
}

/// `fatal: no SASL authentication mechanisms` (or the mechanism filter's fatal), the
/// end of a session whose SASL server offers nothing.
pub fn no_mechanisms(text: &str) -> Line {
    Line::fatal(text.to_owned())
}

/// The first 100 bytes (at a character boundary).
fn cut(s: &str) -> &str {
    let mut end = s.len().min(100);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: Client<'static> = Client {
        name: "localhost",
        addr: "127.0.0.1",
    };

    #[test]
    fn lines_as_postfix_logs_them() {
        let long = "x".repeat(150);
        let cases: Vec<(Line, &str)> = vec![
            (
                authentication_failed(C, "PLAIN", "(reason unavailable)", Some("tern")),
                "warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: (reason \
                 unavailable), sasl_username=tern",
            ),
            (
                authentication_failed(C, "FOO", "Invalid authentication mechanism", None),
                "warning: localhost[127.0.0.1]: SASL FOO authentication failed: Invalid \
                 authentication mechanism, sasl_username=(unavailable)",
            ),
            (
                authentication_aborted(C, "LOGIN"),
                "warning: localhost[127.0.0.1]: SASL LOGIN authentication aborted",
            ),
            (
                backend_warning(
                    "SASL: Connect to Dovecot auth socket 'private/auth' failed: No such \
                     file or directory",
                ),
                "warning: SASL: Connect to Dovecot auth socket 'private/auth' failed: No \
                 such file or directory",
            ),
            (
                no_mechanisms("no SASL authentication mechanisms"),
                "fatal: no SASL authentication mechanisms",
            ),
        ];
        for (line, want) in cases {
            let label = line
                .severity()
                .label()
                .map(|l| format!("{l}: "))
                .unwrap_or_default();
            assert_eq!(format!("{label}{}", line.text()), want);
        }
        let line = authentication_failed(C, &long, "r", Some(&long));
        assert_eq!(line.text().matches(&"x".repeat(100)).count(), 2);
        assert!(!line.text().contains(&"x".repeat(101)));
    }
}
