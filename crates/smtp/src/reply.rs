//! SMTP replies (RFC 5321 4.2) with RFC 3463 enhanced status codes, and the EHLO
//! keyword list in the order Postfix 3.7's smtpd announces it.
//!
//! A [`Reply`] is a three-digit code, an optional [`EnhancedStatus`] and one or more
//! text lines. [`Reply::to_wire`] renders it as Postfix does: every line but the last
//! is `250-text`, the last is `250 text`, each ends in CRLF, and the enhanced code (when
//! present) prefixes every line's text (RFC 2034 3).
//!
//! Trust: replies are built by Tern itself or by the driver's policy code (access maps
//! may supply texts); [`Reply::new`] refuses codes outside 200..=599 and strips CR and
//! LF from texts so that a map value can never inject an extra reply line.

use std::fmt;

/// An RFC 3463 enhanced status code `class.subject.detail`.
///
/// Class is 2, 4 or 5; subject and detail are 0..=999 (RFC 3463 2: "1*3digit").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    class: u8,
    subject: u16,
    detail: u16,
}

/// Why a text is not an enhanced status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("enhanced status class must be 2, 4 or 5: {0:?}")]
    Class(String),
    #[error("enhanced status needs three dot-separated numbers of 1-3 digits: {0:?}")]
    Syntax(String),
    #[error("reply code must be 200..=599: {0}")]
    Code(u16),
    #[error("reply code {code} and enhanced status {status} disagree in class")]
    ClassMismatch { code: u16, status: EnhancedStatus },
}

impl EnhancedStatus {
    /// Builds `class.subject.detail`; `None` when out of range.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Option<Self> {
        if !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(Self {
            class,
            subject,
            detail,
        })
    }

    pub const fn class(self) -> u8 {
        self.class
    }

    pub const fn subject(self) -> u16 {
        self.subject
    }

    pub const fn detail(self) -> u16 {
        self.detail
    }

    /// Parses `5.1.7`. Leading zeros are refused as RFC 3463 2 writes them without.
    pub fn parse(text: &str) -> Result<Self, StatusError> {
        let syntax = || StatusError::Syntax(text.to_string());
        let mut parts = text.split('.');
        let mut num = |max_len: usize| -> Result<u16, StatusError> {
            let part = parts.next().ok_or_else(syntax)?;
            if part.is_empty()
                || part.len() > max_len
                || !part.bytes().all(|b| b.is_ascii_digit())
                || (part.len() > 1 && part.starts_with('0'))
            {
                return Err(syntax());
            }
            part.parse().map_err(|_| syntax())
        };
        let class = num(1)?;
        let subject = num(3)?;
        let detail = num(3)?;
        if parts.next().is_some() {
            return Err(syntax());
        }
        // The digit checks above bound class to 0..=9.
        let class_u8 = u8::try_from(class).map_err(|_| syntax())?;
        Self::new(class_u8, subject, detail).ok_or_else(|| StatusError::Class(text.to_string()))
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl std::str::FromStr for EnhancedStatus {
    type Err = StatusError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<EnhancedStatus>,
    lines: Vec<String>,
}

impl Reply {
    /// A reply with one or more lines. Codes outside 200..=599 and an enhanced status
    /// whose class differs from the code's first digit are refused. CR and LF in texts
    /// become spaces (a text never ends a reply line early).
    pub fn new(
        code: u16,
        enhanced: Option<EnhancedStatus>,
        lines: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, StatusError> {
        if !(200..=599).contains(&code) {
            return Err(StatusError::Code(code));
        }
        if let Some(status) = enhanced.filter(|s| u16::from(s.class) != code / 100) {
            return Err(StatusError::ClassMismatch { code, status });
        }
        let mut lines: Vec<String> = lines
            .into_iter()
            .map(|l| l.into().replace(['\r', '\n'], " "))
            .collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Ok(Self {
            code,
            enhanced,
            lines,
        })
    }

    /// Parses one Postfix-style reply text such as `550 5.7.1 Relay access denied`
    /// (the form access maps and `smtpd_reject_footer` produce). Embedded `\r\n`
    /// split lines, as Postfix's smtpd_chat_reply does.
    pub fn parse(text: &str) -> Result<Self, StatusError> {
        let bad = || StatusError::Syntax(text.to_string());
        let code_text = text.get(..3).ok_or_else(bad)?;
        if !code_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let code: u16 = code_text.parse().map_err(|_| bad())?;
        let rest = text[3..].strip_prefix([' ', '-']).unwrap_or(&text[3..]);
        let (enhanced, rest) = match rest.split_once(' ') {
            Some((first, tail)) => match EnhancedStatus::parse(first) {
                Ok(s) => (Some(s), tail),
                Err(_) => (None, rest),
            },
            None => match EnhancedStatus::parse(rest) {
                Ok(s) => (Some(s), ""),
                Err(_) => (None, rest),
            },
        };
        Self::new(code, enhanced, rest.split("\r\n"))
    }

    /// Builds a Postfix canned reply; `spec` is a known-good literal such as
    /// `"503 5.5.1 Error: need MAIL command"`.
    pub(crate) fn canned(spec: &str) -> Self {
        // Invariant: only called with literals from crate::replies, all tested there.
        Self::parse(spec).unwrap_or_else(|e| panic!("bad canned reply {spec:?}: {e}"))
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn enhanced(&self) -> Option<EnhancedStatus> {
        self.enhanced
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The first line's text (without code and enhanced status).
    pub fn text(&self) -> &str {
        &self.lines[0]
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 421 and 521 make Postfix's smtpd hang up after sending them (smtpd_chat.c).
    pub fn closes_session(&self) -> bool {
        matches!(self.code, 421 | 521)
    }

    /// The reply as sent: `code-text\r\n` for all but the last line, `code text\r\n`
    /// for the last. With `enhanced_codes` false the enhanced status is left out (for
    /// peers that did not announce ENHANCEDSTATUSCODES). Note: Postfix 3.7's smtpd
    /// keeps sending enhanced codes when smtpd_discard_ehlo_keywords removes
    /// ENHANCEDSTATUSCODES from its EHLO reply (verified live); Tern's smtpd does too.
    pub fn to_wire(&self, enhanced_codes: bool) -> String {
        let mut out = String::new();
        // `new` guarantees at least one line.
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.push_str(&self.code.to_string());
            out.push(sep);
            if let (true, Some(status)) = (enhanced_codes, self.enhanced) {
                out.push_str(&status.to_string());
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    /// The wire form without the final CRLF (as in log lines and test transcripts).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.to_wire(true);
        f.write_str(wire.trim_end_matches("\r\n"))
    }
}

/// EHLO keywords Postfix can announce, in its order (smtpd.c, ehlo_cmd), as named
/// in smtpd_discard_ehlo_keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EhloKeyword {
    Pipelining,
    Size,
    Vrfy,
    Etrn,
    StartTls,
    Auth,
    EnhancedStatusCodes,
    EightBitMime,
    Dsn,
    SmtpUtf8,
    Chunking,
}

impl EhloKeyword {
    /// All keywords, in announcement order.
    pub const ALL: [Self; 11] = [
        Self::Pipelining,
        Self::Size,
        Self::Vrfy,
        Self::Etrn,
        Self::StartTls,
        Self::Auth,
        Self::EnhancedStatusCodes,
        Self::EightBitMime,
        Self::Dsn,
        Self::SmtpUtf8,
        Self::Chunking,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Pipelining => "PIPELINING",
            Self::Size => "SIZE",
            Self::Vrfy => "VRFY",
            Self::Etrn => "ETRN",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::EnhancedStatusCodes => "ENHANCEDSTATUSCODES",
            Self::EightBitMime => "8BITMIME",
            Self::Dsn => "DSN",
            Self::SmtpUtf8 => "SMTPUTF8",
            Self::Chunking => "CHUNKING",
        }
    }

    /// Case-insensitive name lookup, as smtpd_discard_ehlo_keywords matches.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// The set of EHLO keywords to leave out (smtpd_discard_ehlo_keywords).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscardSet(u16);

impl DiscardSet {
    pub fn contains(self, k: EhloKeyword) -> bool {
        self.0 & (1 << k as u16) != 0
    }

    pub fn insert(&mut self, k: EhloKeyword) {
        self.0 |= 1 << k as u16;
    }

    /// Parses the parameter value: names separated by commas or whitespace;
    /// unknown names are ignored as Postfix does (ehlo_mask.c); `silent-discard`
    /// only suppresses the log line and is accepted.
    pub fn parse(value: &str) -> Self {
        let mut set = Self::default();
        for name in value
            .split([',', ' ', '\t', '\n', '\r'])
            .filter(|s| !s.is_empty())
        {
            if let Some(k) = EhloKeyword::from_name(name) {
                set.insert(k);
            }
        }
        set
    }
}

/// What the EHLO reply announces besides the discard set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhloFeatures {
    /// myhostname, the first line.
    pub hostname: String,
    /// message_size_limit; 0 announces a bare `SIZE`.
    pub message_size_limit: u64,
    /// disable_vrfy_command = yes leaves VRFY out.
    pub vrfy_enabled: bool,
    /// TLS configured and not yet active.
    pub starttls: bool,
    /// SASL mechanisms (`AUTH PLAIN LOGIN`) when AUTH is offered.
    pub auth_mechanisms: Option<String>,
    /// broken_sasl_auth_clients = yes adds `AUTH=mechs` as well.
    pub broken_auth_clients: bool,
    /// smtputf8_enable.
    pub smtputf8: bool,
    pub discard: DiscardSet,
}

impl EhloFeatures {
    /// Postfix 3.7 defaults for `hostname`.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            message_size_limit: 10_240_000,
            vrfy_enabled: true,
            starttls: false,
            auth_mechanisms: None,
            broken_auth_clients: false,
            smtputf8: true,
            discard: DiscardSet::default(),
        }
    }

    /// The 250 reply to EHLO (RFC 5321 4.1.1.1; no enhanced status, RFC 2034 3).
    pub fn reply(&self) -> Reply {
        let mut lines = vec![self.hostname.clone()];
        for k in EhloKeyword::ALL {
            if self.discard.contains(k) {
                continue;
            }
            match k {
                EhloKeyword::Size if self.message_size_limit > 0 => {
                    lines.push(format!("SIZE {}", self.message_size_limit));
                }
                EhloKeyword::Vrfy if !self.vrfy_enabled => {}
                EhloKeyword::StartTls if !self.starttls => {}
                EhloKeyword::Auth => {
                    if let Some(mechs) = &self.auth_mechanisms {
                        lines.push(format!("AUTH {mechs}"));
                        if self.broken_auth_clients {
                            lines.push(format!("AUTH={mechs}"));
                        }
                    }
                }
                EhloKeyword::SmtpUtf8 if !self.smtputf8 => {}
                _ => lines.push(k.name().to_string()),
            }
        }
        Reply {
            code: 250,
            enhanced: None,
            lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_parse() {
        let ok = [
            ("2.0.0", (2, 0, 0)),
            ("5.1.7", (5, 1, 7)),
            ("4.7.123", (4, 7, 123)),
        ];
        for (text, (c, s, d)) in ok {
            let st = EnhancedStatus::parse(text).unwrap();
            assert_eq!((st.class(), st.subject(), st.detail()), (c, s, d), "{text}");
            assert_eq!(st.to_string(), text);
        }
        for bad in [
            "", "5", "5.1", "3.0.0", "5.01.1", "5.1.1000", "5.1.1.1", "a.b.c", "5..1",
        ] {
            assert!(EnhancedStatus::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reply_wire_forms() {
        let cases = [
            ("250 2.1.0 Ok", "250 2.1.0 Ok\r\n"),
            ("501 Syntax: HELO hostname", "501 Syntax: HELO hostname\r\n"),
            ("221 2.0.0 Bye", "221 2.0.0 Bye\r\n"),
            ("550 5.7.1 a\r\nb", "550-5.7.1 a\r\n550 5.7.1 b\r\n"),
        ];
        for (spec, wire) in cases {
            assert_eq!(Reply::parse(spec).unwrap().to_wire(true), wire, "{spec}");
        }
        assert_eq!(
            Reply::parse("250 2.1.0 Ok").unwrap().to_wire(false),
            "250 Ok\r\n"
        );
        assert!(Reply::parse("199 x").is_err());
        assert!(Reply::parse("250 5.1.1 x").is_err());
        assert!(
            Reply::new(250, None, ["a\r\n550 evil"])
                .unwrap()
                .to_wire(true)
                .lines()
                .count()
                == 1
        );
    }

    #[test]
    fn ehlo_order_and_discard() {
        let mut f = EhloFeatures::new("mx.example.test");
        assert_eq!(
            f.reply().to_wire(true),
            "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n\
             250-ETRN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n\
             250-SMTPUTF8\r\n250 CHUNKING\r\n"
        );
        f.starttls = true;
        f.auth_mechanisms = Some("PLAIN LOGIN".into());
        f.discard = DiscardSet::parse("silent-discard, dsn chunking,SIZE");
        assert_eq!(
            f.reply().lines(),
            [
                "mx.example.test",
                "PIPELINING",
                "VRFY",
                "ETRN",
                "STARTTLS",
                "AUTH PLAIN LOGIN",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "SMTPUTF8"
            ]
        );
        f.message_size_limit = 0;
        f.discard = DiscardSet::default();
        assert_eq!(f.reply().lines()[2], "SIZE");
    }
}
