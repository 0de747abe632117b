//! MAIL FROM and RCPT TO: the path and the ESMTP parameters (RFC 1870 SIZE, RFC 6152
//! BODY, RFC 6531 SMTPUTF8, RFC 3461 RET/ENVID/NOTIFY/ORCPT, RFC 4954 AUTH), checked
//! in Postfix 3.7's order with its replies (smtpd.c, mail_cmd and rcpt_cmd).
//!
//! Postfix accepts `BODY=7BIT` and `BODY=8BITMIME` only (`BODY=BINARYMIME` gets
//! `555 5.5.4 Unsupported option: BODY=BINARYMIME`), compares RET values
//! case-sensitively (`FULL`, `HDRS`), NOTIFY values in any case, and accepts a
//! lower-case xtext hex pair. See the crate docs of [`crate::command`] for the
//! address forms accepted.
//!
//! # Security
//! Arguments are untrusted. Numbers are range-checked (no overflow), xtext decoding
//! refuses truncated escapes, and decoded ENVID must be printable ASCII.

use crate::command::{SyntaxError, Token};

/// What the session allows (smtputf8_enable, smtpd_discard_ehlo_keywords,
/// strict_rfc821_envelopes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    pub smtputf8: bool,
    /// DSN not discarded from EHLO.
    pub dsn: bool,
    pub strict_rfc821: bool,
    /// The driver checks address domains itself (smtpd's smtpd_check_addr() through
    /// trivial-rewrite), so the parser leaves them alone as Postfix's extract_addr() does.
    pub domains_by_driver: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            smtputf8: true,
            dsn: true,
            strict_rfc821: false,
            domains_by_driver: false,
        }
    }
}

/// RFC 6152 BODY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// RFC 3461 RET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// RFC 3461 NOTIFY: NEVER alone, or any of SUCCESS, FAILURE, DELAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// RFC 3461 ORCPT: `type;xtext`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    pub addr_type: String,
    pub address: String,
}

/// `MAIL FROM:<path> params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The address in internal form (quotes removed); empty for `<>`.
    pub address: String,
    /// The path as sent (for logs).
    pub raw: String,
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    /// RFC 4954 AUTH=, for the driver's SASL code; without SASL Postfix ignores it
    /// (verified live: `MAIL FROM:<a@b> AUTH=<>` gets 250).
    pub auth: Option<String>,
}

/// `RCPT TO:<path> params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    pub address: String,
    pub raw: String,
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
}

const MAIL_SYNTAX: &str = "501 5.5.4 Syntax: MAIL FROM:<address>";
const BAD_SENDER: &str = "501 5.1.7 Bad sender address syntax";
const RCPT_SYNTAX: &str = "501 5.5.4 Syntax: RCPT TO:<address>";
const BAD_RCPT: &str = "501 5.1.3 Bad recipient address syntax";
const DSN_OFF: &str = "501 5.7.1 DSN support is disabled";

fn unsupported(arg: &str) -> SyntaxError {
    SyntaxError::new(&format!("555 5.5.4 Unsupported option: {arg}"))
}

fn starts_with_ci(s: &str, prefix: &str) -> Option<usize> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(prefix.len())
}

impl MailFrom {
    /// `args` are the words after `MAIL` (the first must be `FROM:`).
    pub fn parse(args: &[Token], opts: &ParseOptions) -> Result<Self, SyntaxError> {
        if args.len() < 2 || !args[0].text.eq_ignore_ascii_case("from:") {
            return Err(SyntaxError::new(MAIL_SYNTAX));
        }
        let path = &args[1];
        if path.unterminated {
            return Err(SyntaxError::new(BAD_SENDER));
        }
        let params = &args[2..];
        // RFC 6531: SMTPUTF8 decides the address syntax, so Postfix looks for it first.
        let smtputf8 = opts.smtputf8
            && params
                .iter()
                .any(|p| p.text.eq_ignore_ascii_case("SMTPUTF8"));
        let address =
            extract_checked(&path.text, true, *opts).ok_or_else(|| SyntaxError::new(BAD_SENDER))?;
        let mut m = Self {
            address,
            raw: path.text.clone(),
            size: None,
            body: None,
            smtputf8,
            ret: None,
            envid: None,
            auth: None,
        };
        for p in params {
            let arg = p.text.as_str();
            if arg.eq_ignore_ascii_case("BODY=8BITMIME") {
                m.body = Some(Body::EightBitMime);
            } else if arg.eq_ignore_ascii_case("BODY=7BIT") {
                m.body = Some(Body::SevenBit);
            } else if let Some(n) = starts_with_ci(arg, "SIZE=") {
                let digits = &arg[n..];
                // An empty value is not all digits either (`SIZE=`, verified live).
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SyntaxError::new("501 5.5.4 Bad message size syntax"));
                }
                // off_cvt_string: overflow of off_t is refused.
                let size = digits
                    .parse::<u64>()
                    .ok()
                    .filter(|&s| i64::try_from(s).is_ok());
                m.size = Some(size.ok_or_else(|| {
                    SyntaxError::new("552 5.3.4 Message size exceeds file system imposed limit")
                })?);
            } else if opts.smtputf8 && arg.eq_ignore_ascii_case("SMTPUTF8") {
                // Handled above.
            } else if let Some(n) = starts_with_ci(arg, "AUTH=") {
                // smtpd_sasl_mail_opt(): a second AUTH= after one that named a sender.
                if m.auth.as_deref().is_some_and(|a| a != "<>") {
                    return Err(SyntaxError::new("503 5.5.4 Error: multiple AUTH= options"));
                }
                m.auth = Some(arg[n..].to_string());
            } else if let Some(n) = starts_with_ci(arg, "RET=") {
                if !opts.dsn {
                    return Err(SyntaxError::new(DSN_OFF));
                }
                let ret = match &arg[n..] {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(SyntaxError::new("501 5.5.4 Bad RET parameter syntax")),
                };
                if m.ret.replace(ret).is_some() {
                    return Err(SyntaxError::new("501 5.5.4 Bad RET parameter syntax"));
                }
            } else if let Some(n) = starts_with_ci(arg, "ENVID=") {
                if !opts.dsn {
                    return Err(SyntaxError::new(DSN_OFF));
                }
                let bad = || SyntaxError::new("501 5.5.4 Bad ENVID parameter syntax");
                let envid = xtext_decode(&arg[n..]).ok_or_else(bad)?;
                if m.envid.is_some() || !envid.iter().all(|b| (0x20..0x7f).contains(b)) {
                    return Err(bad());
                }
                m.envid = Some(String::from_utf8_lossy(&envid).into_owned());
            } else {
                return Err(unsupported(arg));
            }
        }
        Ok(m)
    }
}

impl RcptTo {
    /// `args` are the words after `RCPT` (the first must be `TO:`).
    pub fn parse(args: &[Token], opts: &ParseOptions) -> Result<Self, SyntaxError> {
        if args.len() < 2 || !args[0].text.eq_ignore_ascii_case("to:") {
            return Err(SyntaxError::new(RCPT_SYNTAX));
        }
        let path = &args[1];
        if path.unterminated {
            return Err(SyntaxError::new(BAD_RCPT));
        }
        let address =
            extract_checked(&path.text, false, *opts).ok_or_else(|| SyntaxError::new(BAD_RCPT))?;
        let mut r = Self {
            address,
            raw: path.text.clone(),
            notify: None,
            orcpt: None,
        };
        for p in &args[2..] {
            let arg = p.text.as_str();
            if let Some(n) = starts_with_ci(arg, "NOTIFY=") {
                if !opts.dsn {
                    return Err(SyntaxError::new(DSN_OFF));
                }
                let bad = || SyntaxError::new("501 5.5.4 Error: Bad NOTIFY parameter syntax");
                if r.notify.is_some() {
                    return Err(bad());
                }
                r.notify = Some(parse_notify(&arg[n..]).ok_or_else(bad)?);
            } else if let Some(n) = starts_with_ci(arg, "ORCPT=") {
                if !opts.dsn {
                    return Err(SyntaxError::new(DSN_OFF));
                }
                let bad = || SyntaxError::new("501 5.5.4 Error: Bad ORCPT parameter syntax");
                let (addr_type, coded) = arg[n..].split_once(';').ok_or_else(bad)?;
                if r.orcpt.is_some() || addr_type.is_empty() {
                    return Err(bad());
                }
                // RFC 6533: utf-8 addresses use unitext; Postfix's uxtext also takes
                // \x{...}; plain xtext covers the common case.
                let decoded = xtext_decode(coded).ok_or_else(bad)?;
                r.orcpt = Some(Orcpt {
                    addr_type: addr_type.to_string(),
                    address: String::from_utf8_lossy(&decoded).into_owned(),
                });
            } else {
                return Err(unsupported(arg));
            }
        }
        Ok(r)
    }
}

/// NOTIFY=NEVER | SUCCESS,FAILURE,DELAY (any case). NEVER with another is invalid.
fn parse_notify(value: &str) -> Option<Notify> {
    let mut n = Notify::default();
    for word in value.split(',') {
        match word.to_ascii_uppercase().as_str() {
            "NEVER" => n.never = true,
            "SUCCESS" => n.success = true,
            "FAILURE" => n.failure = true,
            "DELAY" => n.delay = true,
            _ => return None,
        }
    }
    let other = n.success || n.failure || n.delay;
    (n.never != other).then_some(n)
}

/// RFC 3461 4: `+XX` hex escapes (Postfix also accepts lower-case hex).
pub fn xtext_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            let hex = text.get(i + 1..i + 3)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Postfix's extract_addr(): the address in internal form, or `None` for
/// "Bad ... address syntax". `allow_empty` is true for MAIL FROM. The RFC 822 parse is
/// [`crate::addr822`]'s; the checks on its result are extract_addr()'s and, for the
/// domain, those trivial-rewrite's resolver applies (smtpd_check_addr()).
pub fn extract_address(token: &str, allow_empty: bool, strict: bool) -> Option<String> {
    extract(token, allow_empty, strict, true)
}

/// [`extract_address`] with the session's options: the domain check is left to the
/// driver when [`ParseOptions::domains_by_driver`] says so.
fn extract_checked(token: &str, allow_empty: bool, opts: ParseOptions) -> Option<String> {
    let out = extract(
        token,
        allow_empty,
        opts.strict_rfc821,
        !opts.domains_by_driver,
    )?;
    // A bare `@` is refused by trivial-rewrite in Postfix (transcript 22); the driver's
    // resolver would take it for a local address.
    (out != "@").then_some(out)
}

fn extract(token: &str, allow_empty: bool, strict: bool, check_domain: bool) -> Option<String> {
    let bracketed = token.len() >= 2 && token.starts_with('<') && token.ends_with('>');
    let mut text = if bracketed {
        &token[1..token.len() - 1]
    } else {
        token
    };
    // RFC 5321 4.1.2: the source route `@a,@b:` is obsolete; drop it.
    if let (true, Some(colon)) = (text.starts_with('@'), text.find(':')) {
        text = &text[colon + 1..];
    }
    let parsed = crate::addr822::parse(text);
    if parsed.addresses.len() > 1 || (strict && (parsed.non_address > 0 || !token.starts_with('<')))
    {
        return None;
    }
    let out = parsed.addresses.into_iter().next().unwrap_or_default();
    if out.is_empty() {
        return allow_empty.then_some(out);
    }
    if strict && out.starts_with('@') {
        return None;
    }
    if check_domain
        && out
            .rfind('@')
            .is_some_and(|at| !valid_domain(&out[at + 1..]))
    {
        return None;
    }
    Some(out)
}

/// A hostname (Postfix's valid_hostname: labels of letters, digits, `-`, `_`, not
/// starting or ending with `-`, at most 63 bytes, 255 in all, not all numeric) with
/// one optional trailing dot, or an address literal `[...]`. Non-ASCII labels are
/// let through for SMTPUTF8 domains.
pub fn valid_domain(domain: &str) -> bool {
    if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return valid_address_literal(inner);
    }
    let name = domain.strip_suffix('.').unwrap_or(domain);
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut numeric = true;
    for label in name.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            return false;
        }
        numeric &= label.bytes().all(|b| b.is_ascii_digit());
    }
    !numeric
}

fn valid_address_literal(inner: &str) -> bool {
    if let Some(v6) = inner.get(..5).filter(|p| p.eq_ignore_ascii_case("IPv6:")) {
        let _ = v6;
        return inner[5..].parse::<std::net::Ipv6Addr>().is_ok();
    }
    inner.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Request;

    fn mail(line: &str) -> Result<MailFrom, String> {
        let r = Request::parse(line.as_bytes(), true).unwrap();
        MailFrom::parse(&r.args, &ParseOptions::default()).map_err(|e| e.reply.to_string())
    }

    fn rcpt(line: &str) -> Result<RcptTo, String> {
        let r = Request::parse(line.as_bytes(), true).unwrap();
        RcptTo::parse(&r.args, &ParseOptions::default()).map_err(|e| e.reply.to_string())
    }

    #[test]
    fn mail_replies_verified_live() {
        // (line, Ok(address) or Err(reply)), each checked against Postfix 3.7.11.
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("MAIL FROM:<a@b>", Ok("a@b")),
            ("MAIL FROM: <a@b>", Ok("a@b")),
            ("mail from:<a@b>", Ok("a@b")),
            ("MAIL FROM:a@b", Ok("a@b")),
            ("MAIL FROM:<>", Ok("")),
            ("MAIL FROM:<a@b@c>", Ok("a@b@c")),
            ("MAIL FROM:<a@[1.2.3.4]>", Ok("a@[1.2.3.4]")),
            ("MAIL FROM:<@a,@b:c@d>", Ok("c@d")),
            ("MAIL FROM:<a..b@c>", Ok("a..b@c")),
            ("MAIL FROM:<a>", Ok("a")),
            ("MAIL FROM:<a@b.>", Ok("a@b.")),
            ("MAIL FROM:<\"a b\"@c>", Ok("a b@c")),
            ("MAIL FROM:<a@>", Err(BAD_SENDER)),
            ("MAIL FROM:<a b@c>", Err(BAD_SENDER)),
            ("MAIL FROM:<a@b>,<c@d>", Err(BAD_SENDER)),
            ("MAIL FROM:<a@b..c>", Err(BAD_SENDER)),
            ("MAIL FROM:<@>", Err(BAD_SENDER)),
            ("MAIL FROM:<a@-b>", Err(BAD_SENDER)),
            ("MAIL FROM:<a@b>SIZE=10", Err(BAD_SENDER)),
            ("MAIL FROM:<a@b", Err(BAD_SENDER)),
            ("MAIL FROM :<a@b>", Err(MAIL_SYNTAX)),
            ("MAIL FROM", Err(MAIL_SYNTAX)),
            ("MAIL", Err(MAIL_SYNTAX)),
            (
                "MAIL FROM:a@b (comment)",
                Err("555 5.5.4 Unsupported option: (comment)"),
            ),
            (
                "MAIL FROM:<a@b> <c@d>",
                Err("555 5.5.4 Unsupported option: <c@d>"),
            ),
            (
                "MAIL FROM:<a@b> FOO=bar",
                Err("555 5.5.4 Unsupported option: FOO=bar"),
            ),
            (
                "MAIL FROM:<a@b> BODY=BINARYMIME",
                Err("555 5.5.4 Unsupported option: BODY=BINARYMIME"),
            ),
            (
                "MAIL FROM:<a@b> SIZE=",
                Err("501 5.5.4 Bad message size syntax"),
            ),
            (
                "MAIL FROM:<a@b> SIZE=abc",
                Err("501 5.5.4 Bad message size syntax"),
            ),
            (
                "MAIL FROM:<a@b> SIZE=999999999999999999999999",
                Err("552 5.3.4 Message size exceeds file system imposed limit"),
            ),
            (
                "MAIL FROM:<a@b> RET=FOO",
                Err("501 5.5.4 Bad RET parameter syntax"),
            ),
            (
                "MAIL FROM:<a@b> ENVID=a+ZZ",
                Err("501 5.5.4 Bad ENVID parameter syntax"),
            ),
            ("MAIL FROM:<a@b> AUTH=<>", Ok("a@b")),
            ("MAIL FROM:<a@b> AUTH=<> AUTH=c@d", Ok("a@b")),
        ];
        for (line, want) in cases {
            let got = mail(line).map(|m| m.address);
            assert_eq!(got.as_deref().map_err(String::as_str), *want, "{line}");
        }
        let m =
            mail("MAIL FROM:<a@b> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=x+2Bz SIZE=100").unwrap();
        assert_eq!(
            (m.smtputf8, m.body, m.ret, m.envid.as_deref(), m.size),
            (
                true,
                Some(Body::EightBitMime),
                Some(Ret::Hdrs),
                Some("x+z"),
                Some(100)
            )
        );
    }

    #[test]
    fn rcpt_replies_verified_live() {
        let long_domain = format!("RCPT TO:<a@{}>", "x".repeat(300));
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("RCPT TO:<root@mx.example.test>", Ok("root@mx.example.test")),
            ("RCPT TO:root@mx.example.test", Ok("root@mx.example.test")),
            ("RCPT TO:<\u{e9}@b>", Ok("\u{e9}@b")),
            ("RCPT TO:<>", Err(BAD_RCPT)),
            ("RCPT TO:<root@mx.example.test", Err(BAD_RCPT)),
            (&long_domain, Err(BAD_RCPT)),
            ("RCPT root@mx.example.test", Err(RCPT_SYNTAX)),
            ("RCPT TO:", Err(RCPT_SYNTAX)),
            (
                "RCPT TO:<a@b> NOTIFY=BOGUS",
                Err("501 5.5.4 Error: Bad NOTIFY parameter syntax"),
            ),
            (
                "RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS",
                Err("501 5.5.4 Error: Bad NOTIFY parameter syntax"),
            ),
            (
                "RCPT TO:<a@b> ORCPT=x",
                Err("501 5.5.4 Error: Bad ORCPT parameter syntax"),
            ),
            (
                "RCPT TO:<a@b> FOO",
                Err("555 5.5.4 Unsupported option: FOO"),
            ),
            ("RCPT TO:<a@b> NOTIFY=never", Ok("a@b")),
        ];
        for (line, want) in cases {
            let got = rcpt(line).map(|m| m.address);
            assert_eq!(got.as_deref().map_err(String::as_str), *want, "{line}");
        }
        let r = rcpt("RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;root+40x").unwrap();
        assert_eq!(
            r.notify,
            Some(Notify {
                success: true,
                failure: true,
                ..Notify::default()
            })
        );
        assert_eq!(
            r.orcpt,
            Some(Orcpt {
                addr_type: "rfc822".into(),
                address: "root@x".into()
            })
        );
    }

    #[test]
    fn dsn_disabled_and_strict() {
        let opts = ParseOptions {
            dsn: false,
            strict_rfc821: true,
            ..ParseOptions::default()
        };
        let r = Request::parse(b"MAIL FROM:<a@b> RET=FULL", true).unwrap();
        assert_eq!(
            MailFrom::parse(&r.args, &opts)
                .unwrap_err()
                .reply
                .to_string(),
            DSN_OFF
        );
        let r = Request::parse(b"MAIL FROM:a@b", true).unwrap();
        assert_eq!(
            MailFrom::parse(&r.args, &opts)
                .unwrap_err()
                .reply
                .to_string(),
            BAD_SENDER
        );
        assert_eq!(xtext_decode("a+2b+2B"), Some(b"a++".to_vec()));
        assert_eq!(xtext_decode("a+2"), None);
    }
}
