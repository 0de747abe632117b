//! SMTP command lines parsed into typed values, with Postfix 3.7's tolerance and its
//! reply for each syntax error.
//!
//! Parsing has two stages, because Postfix checks the session state (nested MAIL,
//! RCPT before MAIL, ...) before it looks at a command's arguments:
//! 1. [`Request::parse`] splits a line into a [`Verb`] and argument tokens the way
//!    Postfix's smtpd_token() does: words split at whitespace, `<...>` and `"..."`
//!    kept whole (brackets nest, backslash escapes), and `FROM:` / `TO:` end a word so
//!    that `MAIL FROM:<a@b>` and `MAIL FROM: <a@b>` read the same.
//! 2. `MailFrom::parse`, `RcptTo::parse` etc. check the arguments of one verb and
//!    return a [`SyntaxError`] that knows its reply.
//!
//! [`Command::parse`] runs both for callers that do not need the split.
//!
//! Address syntax (strict_rfc821_envelopes = no, Postfix's default): `<a@b>`, `a@b`,
//! `<@route,@list:a@b>` (the route is dropped), quoted local parts (`"a b"@c` becomes
//! `a b@c`), RFC 822 comments. The domain, when present, must be a hostname or an
//! address literal (Postfix refuses `a@`, `a@b..c`, `a@-b`, a label over 63 bytes;
//! it accepts `a@b.` and `a@b@c`). Verified live against Postfix 3.7.11.
//! XXX: Postfix runs the full RFC 822 address parser (tok822) here; this is a subset
//! that agrees on the cases in the tests.
//!
//! # Security
//! Lines are untrusted. Parsing never panics, allocates at most the line's length a
//! few times, and stops at the first NUL as Postfix's C strings do.

pub use crate::params::{Body, MailFrom, Notify, Orcpt, ParseOptions, RcptTo, Ret};
use crate::reply::Reply;

/// SMTP verbs Postfix's smtpd knows, in its command table order (which is also the
/// order of the per-command counters in the `disconnect from` log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Helo,
    Ehlo,
    Xclient,
    Xforward,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Vrfy,
    Etrn,
    Quit,
    /// Anything else (`unknown` in the log line).
    Unknown,
}

impl Verb {
    pub const ALL: [Self; 16] = [
        Self::Helo,
        Self::Ehlo,
        Self::Xclient,
        Self::Xforward,
        Self::StartTls,
        Self::Auth,
        Self::Mail,
        Self::Rcpt,
        Self::Data,
        Self::Bdat,
        Self::Rset,
        Self::Noop,
        Self::Vrfy,
        Self::Etrn,
        Self::Quit,
        Self::Unknown,
    ];

    /// Lower-case name as in the log line.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::Helo => "helo",
            Self::Ehlo => "ehlo",
            Self::Xclient => "xclient",
            Self::Xforward => "xforward",
            Self::StartTls => "starttls",
            Self::Auth => "auth",
            Self::Mail => "mail",
            Self::Rcpt => "rcpt",
            Self::Data => "data",
            Self::Bdat => "bdat",
            Self::Rset => "rset",
            Self::Noop => "noop",
            Self::Vrfy => "vrfy",
            Self::Etrn => "etrn",
            Self::Quit => "quit",
            Self::Unknown => "unknown",
        }
    }

    /// Upper-case name, as in `lost connection after EHLO` and `reject: RCPT`.
    pub fn verb(self) -> &'static str {
        match self {
            Self::Helo => "HELO",
            Self::Ehlo => "EHLO",
            Self::Xclient => "XCLIENT",
            Self::Xforward => "XFORWARD",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::Mail => "MAIL",
            Self::Rcpt => "RCPT",
            Self::Data => "DATA",
            Self::Bdat => "BDAT",
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Vrfy => "VRFY",
            Self::Etrn => "ETRN",
            Self::Quit => "QUIT",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The position in [`Verb::ALL`] (smtpd's print order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The verb a command word names (case-insensitive), `Unknown` for anything else.
    pub fn from_word(word: &[u8]) -> Self {
        Self::ALL[..15]
            .iter()
            .copied()
            .find(|v| v.log_name().as_bytes().eq_ignore_ascii_case(word))
            .unwrap_or(Self::Unknown)
    }
}

/// One argument word of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// An unterminated `<` or `"` (Postfix's SMTPD_TOK_ERROR).
    pub unterminated: bool,
}

/// A tokenized command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: Verb,
    /// The command word as sent (for logs and the unknown-command checks).
    pub word: String,
    pub args: Vec<Token>,
}

/// Why a line could not even be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not UTF-8 while smtputf8_enable = yes: `500 5.5.2 Error: bad UTF-8 syntax`.
    #[error("bad UTF-8 syntax")]
    BadUtf8,
    /// No words: `500 5.5.2 Error: bad syntax`.
    #[error("bad syntax")]
    Empty,
}

impl LineError {
    pub fn reply(&self) -> Reply {
        match self {
            Self::BadUtf8 => Reply::canned("500 5.5.2 Error: bad UTF-8 syntax"),
            Self::Empty => Reply::canned("500 5.5.2 Error: bad syntax"),
        }
    }
}

impl Request {
    /// Splits a command line. With `smtputf8` (smtputf8_enable) the whole line,
    /// including bytes after a NUL, must be UTF-8, as Postfix checks it; otherwise
    /// invalid bytes become U+FFFD.
    pub fn parse(line: &[u8], smtputf8: bool) -> Result<Self, LineError> {
        if smtputf8 && std::str::from_utf8(line).is_err() {
            return Err(LineError::BadUtf8);
        }
        let line = line.split(|&b| b == 0).next().unwrap_or_default();
        let mut words = tokenize(line).into_iter();
        let first = words.next().ok_or(LineError::Empty)?;
        let verb = Verb::from_word(&first.0);
        Ok(Self {
            verb,
            word: String::from_utf8_lossy(&first.0).into_owned(),
            args: words
                .map(|(t, unterminated)| Token {
                    text: String::from_utf8_lossy(&t).into_owned(),
                    unterminated,
                })
                .collect(),
        })
    }

    /// The arguments joined by one space (Postfix's collapse_args for HELO/EHLO).
    pub fn joined_args(&self) -> String {
        self.args
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// smtpd_token(): whitespace-separated words; `<...>` and `"..."` are kept whole;
/// a word that is exactly `from:` or `to:` ends at its colon.
fn tokenize(line: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let mut word = Vec::new();
        let mut bad = false;
        while i < line.len() {
            let c = line[i];
            i += 1;
            if is_space(c) {
                while i < line.len() && is_space(line[i]) {
                    i += 1;
                }
                if !word.is_empty() {
                    break;
                }
            } else if c == b'<' || c == b'"' {
                let close = if c == b'<' { b'>' } else { b'"' };
                let (n, ok) = quoted(&line[i..], c, close, &mut word);
                i += n;
                bad |= !ok;
            } else if c == b':' {
                word.push(c);
                if word.eq_ignore_ascii_case(b"to:") || word.eq_ignore_ascii_case(b"from:") {
                    break;
                }
            } else {
                if c == b'\\' {
                    word.push(c);
                    match line.get(i) {
                        Some(&n) => {
                            word.push(n);
                            i += 1;
                        }
                        None => break,
                    }
                    continue;
                }
                word.push(c);
            }
        }
        if !word.is_empty() {
            out.push((word, bad));
        }
    }
    out
}

/// Copies a bracketed or quoted run into `word`; returns bytes consumed and whether it
/// was closed. Quotes nest inside brackets, brackets inside brackets.
fn quoted(rest: &[u8], open: u8, close: u8, word: &mut Vec<u8>) -> (usize, bool) {
    let mut stack = vec![close];
    word.push(open);
    let mut i = 0;
    while i < rest.len() {
        let c = rest[i];
        i += 1;
        word.push(c);
        let wanted = *stack.last().unwrap_or(&close);
        if c == b'\\' {
            if let Some(&n) = rest.get(i) {
                word.push(n);
                i += 1;
            }
        } else if c == wanted {
            stack.pop();
            if stack.is_empty() {
                return (i, true);
            }
        } else if c == b'"' {
            stack.push(b'"');
        } else if c == b'<' && wanted == b'>' {
            stack.push(b'>');
        }
    }
    (i, false)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A command's argument error, with the reply Postfix gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .reply)]
pub struct SyntaxError {
    pub reply: Reply,
}

impl SyntaxError {
    pub(crate) fn new(spec: &str) -> Self {
        Self {
            reply: Reply::canned(spec),
        }
    }
}

/// A fully parsed command (syntax only; the session adds the state checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail(MailFrom),
    Rcpt(RcptTo),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    /// VRFY address, with the RFC 6531 SMTPUTF8 flag.
    Vrfy {
        address: String,
        smtputf8: bool,
    },
    Etrn(String),
    StartTls,
    /// AUTH mechanism [initial-response]; SASL itself is the driver's.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    Xclient(Vec<String>),
    Xforward(Vec<String>),
    Unknown(String),
}

/// Either stage's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Line(#[from] LineError),
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
}

impl CommandError {
    pub fn reply(&self) -> Reply {
        match self {
            Self::Line(e) => e.reply(),
            Self::Syntax(e) => e.reply.clone(),
        }
    }
}

impl Command {
    /// Parses a line (without CRLF) into a command, checking argument syntax only.
    pub fn parse(line: &[u8], opts: &ParseOptions) -> Result<Self, CommandError> {
        let req = Request::parse(line, opts.smtputf8)?;
        Ok(Self::from_request(&req, opts)?)
    }

    /// The second stage for an already tokenized request.
    pub fn from_request(req: &Request, opts: &ParseOptions) -> Result<Self, SyntaxError> {
        let args = &req.args;
        let words = || args.iter().map(|t| t.text.clone()).collect();
        Ok(match req.verb {
            Verb::Helo if args.is_empty() => {
                return Err(SyntaxError::new("501 Syntax: HELO hostname"));
            }
            Verb::Helo => Self::Helo(req.joined_args()),
            Verb::Ehlo if args.is_empty() => {
                return Err(SyntaxError::new("501 Syntax: EHLO hostname"));
            }
            Verb::Ehlo => Self::Ehlo(req.joined_args()),
            Verb::Mail => Self::Mail(MailFrom::parse(args, opts)?),
            Verb::Rcpt => Self::Rcpt(RcptTo::parse(args, opts)?),
            Verb::Data if !args.is_empty() => {
                return Err(SyntaxError::new("501 5.5.4 Syntax: DATA"));
            }
            Verb::Data => Self::Data,
            Verb::Bdat => {
                let (size, last) = parse_bdat(args)?;
                Self::Bdat { size, last }
            }
            Verb::Rset if !args.is_empty() => {
                return Err(SyntaxError::new("501 5.5.4 Syntax: RSET"));
            }
            Verb::Rset => Self::Rset,
            // Postfix 3.7 ignores NOOP arguments (verified live: `NOOP x` gets 250).
            Verb::Noop => Self::Noop,
            Verb::Quit => Self::Quit,
            Verb::Vrfy => {
                let (address, smtputf8) = parse_vrfy(args, opts)?;
                Self::Vrfy { address, smtputf8 }
            }
            Verb::Etrn if args.len() != 1 => {
                return Err(SyntaxError::new("500 Syntax: ETRN domain"));
            }
            Verb::Etrn => Self::Etrn(args[0].text.clone()),
            Verb::StartTls if !args.is_empty() => {
                return Err(SyntaxError::new("501 5.5.4 Syntax: STARTTLS"));
            }
            Verb::StartTls => Self::StartTls,
            Verb::Auth if args.is_empty() || args.len() > 2 => {
                return Err(SyntaxError::new("501 5.5.4 Syntax: AUTH mechanism"));
            }
            Verb::Auth => Self::Auth {
                mechanism: args[0].text.clone(),
                initial: args.get(1).map(|t| t.text.clone()),
            },
            Verb::Xclient => Self::Xclient(words()),
            Verb::Xforward => Self::Xforward(words()),
            Verb::Unknown => Self::Unknown(req.word.clone()),
        })
    }
}

/// `BDAT count [LAST]`; errors are `521 5.5.4 Syntax: BDAT count [LAST]` (and the
/// 521 ends the session).
pub fn parse_bdat(args: &[Token]) -> Result<(u64, bool), SyntaxError> {
    let bad = || SyntaxError::new("521 5.5.4 Syntax: BDAT count [LAST]");
    let size_word = args.first().ok_or_else(bad)?;
    if args.len() > 2 || !size_word.text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Postfix's off_cvt_string fails on overflow; the same reply follows.
    let size = size_word
        .text
        .parse::<u64>()
        .ok()
        .filter(|&s| i64::try_from(s).is_ok())
        .ok_or_else(bad)?;
    let last = match args.get(1) {
        None => false,
        Some(t) if t.text.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(bad()),
    };
    Ok((size, last))
}

/// `VRFY address [SMTPUTF8]`.
pub fn parse_vrfy(args: &[Token], opts: &ParseOptions) -> Result<(String, bool), SyntaxError> {
    let mut n = args.len();
    let mut utf8 = false;
    if opts.smtputf8 && n > 1 && args[n - 1].text.eq_ignore_ascii_case("SMTPUTF8") {
        n -= 1;
        utf8 = true;
    }
    if n == 0 {
        return Err(SyntaxError::new(if opts.smtputf8 {
            "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"
        } else {
            "501 5.5.4 Syntax: VRFY address"
        }));
    }
    let joined = args[..n]
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    // Postfix checks VRFY's argument as a recipient address (verified live: `VRFY a b`).
    if crate::params::extract_address(&joined, false, false).is_none() {
        return Err(SyntaxError::new("501 5.1.3 Bad recipient address syntax"));
    }
    Ok((joined, utf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verb_table_is_consistent() {
        for (i, v) in Verb::ALL.into_iter().enumerate() {
            assert_eq!(v.index(), i);
            assert_eq!(v.verb().to_ascii_lowercase(), v.log_name());
            assert_eq!(Verb::from_word(v.verb().as_bytes()), v);
        }
    }

    fn words(line: &str) -> Vec<String> {
        let r = Request::parse(line.as_bytes(), true).unwrap();
        std::iter::once(r.word)
            .chain(r.args.into_iter().map(|t| t.text))
            .collect()
    }

    #[test]
    fn tokenizer() {
        let cases: [(&str, &[&str]); 8] = [
            ("MAIL FROM:<a@b>", &["MAIL", "FROM:", "<a@b>"]),
            ("MAIL FROM: <a@b>", &["MAIL", "FROM:", "<a@b>"]),
            ("mail from:a@b SIZE=1", &["mail", "from:", "a@b", "SIZE=1"]),
            ("MAIL FROM :<a@b>", &["MAIL", "FROM", ":<a@b>"]),
            (
                "RCPT TO:<\"a b\"@c>  NOTIFY=NEVER",
                &["RCPT", "TO:", "<\"a b\"@c>", "NOTIFY=NEVER"],
            ),
            ("MAIL FROM:<a@b>SIZE=10", &["MAIL", "FROM:", "<a@b>SIZE=10"]),
            ("  NOOP\t x\x0b", &["NOOP", "x"]),
            ("EHLO a:b", &["EHLO", "a:b"]),
        ];
        for (line, want) in cases {
            assert_eq!(words(line), want, "{line}");
        }
        let r = Request::parse(b"RCPT TO:<a@b", true).unwrap();
        assert!(r.args[1].unterminated);
        assert_eq!(Request::parse(b"NOOP\0junk", true).unwrap().args, vec![]);
        assert_eq!(Request::parse(b"\0NOOP", true), Err(LineError::Empty));
        assert_eq!(Request::parse(b"   ", true), Err(LineError::Empty));
        assert_eq!(
            Request::parse(b"MAIL FROM:<a\xff@b>", true),
            Err(LineError::BadUtf8)
        );
        assert_eq!(Request::parse(b"NO\0OP", true).unwrap().verb, Verb::Unknown);
    }

    #[test]
    fn simple_commands() {
        let o = ParseOptions::default();
        let cases: [(&str, Result<Command, &str>); 14] = [
            ("HELO", Err("501 Syntax: HELO hostname")),
            ("EHLO", Err("501 Syntax: EHLO hostname")),
            ("HELO x y", Ok(Command::Helo("x y".into()))),
            ("DATA x", Err("501 5.5.4 Syntax: DATA")),
            ("RSET x", Err("501 5.5.4 Syntax: RSET")),
            ("NOOP x", Ok(Command::Noop)),
            ("BDAT", Err("521 5.5.4 Syntax: BDAT count [LAST]")),
            ("BDAT x", Err("521 5.5.4 Syntax: BDAT count [LAST]")),
            ("BDAT 1 FOO", Err("521 5.5.4 Syntax: BDAT count [LAST]")),
            (
                "bdat 10 last",
                Ok(Command::Bdat {
                    size: 10,
                    last: true,
                }),
            ),
            ("VRFY", Err("501 5.5.4 Syntax: VRFY address [SMTPUTF8]")),
            (
                "VRFY root SMTPUTF8",
                Ok(Command::Vrfy {
                    address: "root".into(),
                    smtputf8: true,
                }),
            ),
            ("ETRN", Err("500 Syntax: ETRN domain")),
            ("HELP", Ok(Command::Unknown("HELP".into()))),
        ];
        for (line, want) in cases {
            let got = Command::parse(line.as_bytes(), &o).map_err(|e| e.reply().to_string());
            assert_eq!(got, want.map_err(str::to_string), "{line}");
        }
    }
}
