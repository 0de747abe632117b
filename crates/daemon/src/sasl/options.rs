//! Which SASL mechanisms a session may offer: `smtpd_sasl_security_options` /
//! `smtpd_sasl_tls_security_options` against each mechanism's properties (Postfix's
//! xsasl_dovecot_server_mech_filter()), then `smtpd_sasl_mechanism_filter`
//! (sasl_mech_filter.c).
//!
//! Trust: the options come from main.cf and master.cf; the mechanism names and
//! properties from the auth server (Dovecot's `MECH` lines), which is trusted as the
//! system's own but whose lines are still parsed without panicking.

/// Mechanism properties, as Postfix's SEC_PROPS_* bits: a main.cf option (`noplaintext`)
/// and the Dovecot property (`plaintext`) share one bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Props(u32);

impl Props {
    pub const PLAINTEXT: Props = Props(1 << 0);
    pub const ACTIVE: Props = Props(1 << 1);
    pub const DICTIONARY: Props = Props(1 << 2);
    pub const ANONYMOUS: Props = Props(1 << 3);
    pub const FORWARD_SECRECY: Props = Props(1 << 4);
    pub const MUTUAL_AUTH: Props = Props(1 << 5);
    /// Dovecot's `private`: never offered to clients.
    pub const PRIVATE: Props = Props(1 << 6);

    /// The properties a mechanism must have (positive options).
    const POSITIVE: u32 = Self::FORWARD_SECRECY.0 | Self::MUTUAL_AUTH.0;
    /// The properties a mechanism must not have (`no...` options).
    const NEGATIVE: u32 =
        Self::PLAINTEXT.0 | Self::ACTIVE.0 | Self::DICTIONARY.0 | Self::ANONYMOUS.0;

    pub fn contains(self, other: Props) -> bool {
        self.0 & other.0 == other.0
    }

    #[must_use]
    pub fn with(self, other: Props) -> Props {
        Props(self.0 | other.0)
    }
}

/// The main.cf words of `smtpd_sasl_security_options` (xsasl_dovecot_conf_sec_props).
const CONF_WORDS: &[(&str, Props)] = &[
    ("noplaintext", Props::PLAINTEXT),
    ("noactive", Props::ACTIVE),
    ("nodictionary", Props::DICTIONARY),
    ("noanonymous", Props::ANONYMOUS),
    ("forward_secrecy", Props::FORWARD_SECRECY),
    ("mutual_auth", Props::MUTUAL_AUTH),
];

/// Dovecot's property words on `MECH` lines (xsasl_dovecot_serv_sec_props).
const SERVER_WORDS: &[(&str, Props)] = &[
    ("plaintext", Props::PLAINTEXT),
    ("active", Props::ACTIVE),
    ("dictionary", Props::DICTIONARY),
    ("anonymous", Props::ANONYMOUS),
    ("forward-secrecy", Props::FORWARD_SECRECY),
    ("mutual-auth", Props::MUTUAL_AUTH),
    ("private", Props::PRIVATE),
];

/// Parses a security options value (`noanonymous, noplaintext`); words in any case, as
/// name_mask_opt(NAME_MASK_ANY_CASE). An unknown word is the error (Postfix's fatal
/// `unknown ... value "WORD" in "VALUE"`).
pub fn parse_security_options(value: &str) -> Result<Props, String> {
    let mut props = Props::default();
    for word in value
        .split([' ', '\t', '\n', '\r', ','])
        .filter(|w| !w.is_empty())
    {
        let found = CONF_WORDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .ok_or_else(|| word.to_owned())?;
        props = props.with(found.1);
    }
    Ok(props)
}

/// One mechanism the auth server offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mechanism {
    pub name: String,
    pub props: Props,
}

impl Mechanism {
    /// A Dovecot `MECH` line's fields after `MECH`: the name, then property words; unknown
    /// words are ignored (NAME_MASK_IGNORE).
    pub fn from_dovecot(fields: &[&str]) -> Option<Mechanism> {
        let (name, words) = fields.split_first()?;
        if name.is_empty() {
            return None;
        }
        let mut props = Props::default();
        for word in words {
            if let Some((_, p)) = SERVER_WORDS
                .iter()
                .find(|(w, _)| w.eq_ignore_ascii_case(word))
            {
                props = props.with(*p);
            }
        }
        Some(Mechanism {
            name: (*name).to_owned(),
            props,
        })
    }
}

/// The mechanisms that satisfy `options`, in the server's order: every positive option's
/// property present, no negative option's property present, and never `private`.
pub fn by_security(mechanisms: &[Mechanism], options: Props) -> Vec<&Mechanism> {
    let positive = options.0 & Props::POSITIVE;
    let negative = options.0 & Props::NEGATIVE;
    mechanisms
        .iter()
        .filter(|m| {
            !m.props.contains(Props::PRIVATE)
                && m.props.0 & positive == positive
                && m.props.0 & negative == 0
        })
        .collect()
}

/// `smtpd_sasl_mechanism_filter`: a Postfix string list (first match wins, `!` negates).
/// Names compare exactly (string_list_init(MATCH_FLAG_NONE) does not fold case); of the
/// `type:table` forms only `static:` (which matches every name, the default's
/// `static:rest`) is understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MechanismFilter {
    patterns: Vec<(bool, Pattern)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Name(String),
    Any,
}

impl MechanismFilter {
    /// Parses the value; the error is the pattern Tern cannot evaluate.
    pub fn parse(value: &str) -> Result<MechanismFilter, String> {
        let mut patterns = Vec::new();
        for word in value
            .split([' ', '\t', '\n', '\r', ','])
            .filter(|w| !w.is_empty())
        {
            let (negate, pattern) = match word.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let pattern = if pattern.starts_with("static:") {
                Pattern::Any
            } else if pattern.contains(':') || pattern.is_empty() {
                // XXX: other lookup tables are not evaluated here.
                return Err(word.to_owned());
            } else {
                Pattern::Name(pattern.to_owned())
            };
            patterns.push((negate, pattern));
        }
        Ok(MechanismFilter { patterns })
    }

    /// Whether `name` passes; an empty filter passes everything (sasl_mech_filter()'s
    /// "no filter" case is the parameter left empty).
    pub fn allows(&self, name: &str) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        for (negate, pattern) in &self.patterns {
            let hit = match pattern {
                Pattern::Any => true,
                Pattern::Name(n) => n == name,
            };
            if hit {
                return !negate;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mech(name: &str, words: &[&str]) -> Mechanism {
        let mut fields = vec![name];
        fields.extend_from_slice(words);
        Mechanism::from_dovecot(&fields).expect("name")
    }

    #[test]
    fn security_options_filter_dovecot_mechanisms() {
        let server = [
            mech("PLAIN", &["plaintext"]),
            mech("LOGIN", &["plaintext"]),
            mech("CRAM-MD5", &["dictionary", "active"]),
            mech("ANONYMOUS", &["anonymous"]),
            mech("SCRAM-SHA-1", &["mutual-auth", "dictionary"]),
            mech("X-SECRET", &["private"]),
            mech("NTLM", &["Dictionary", "unknown-word"]),
        ];
        let cases: &[(&str, &str)] = &[
            ("", "PLAIN LOGIN CRAM-MD5 ANONYMOUS SCRAM-SHA-1 NTLM"),
            ("noanonymous", "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 NTLM"),
            ("noanonymous, noplaintext", "CRAM-MD5 SCRAM-SHA-1 NTLM"),
            ("NOPLAINTEXT noanonymous nodictionary", ""),
            ("noactive", "PLAIN LOGIN ANONYMOUS SCRAM-SHA-1 NTLM"),
            ("mutual_auth", "SCRAM-SHA-1"),
        ];
        for (options, want) in cases {
            let props = parse_security_options(options).expect(options);
            let got: Vec<&str> = by_security(&server, props)
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            assert_eq!(got.join(" "), *want, "{options}");
        }
        assert_eq!(
            parse_security_options("noanonymous, nosuch"),
            Err("nosuch".to_owned())
        );
        assert_eq!(Mechanism::from_dovecot(&[]), None);
        assert_eq!(Mechanism::from_dovecot(&[""]), None);
    }

    #[test]
    fn mechanism_filter_is_a_first_match_string_list() {
        let cases: &[(&str, &[(&str, bool)])] = &[
            (
                "!external, static:rest",
                &[("PLAIN", true), ("external", false), ("EXTERNAL", true)],
            ),
            ("", &[("PLAIN", true)]),
            ("PLAIN", &[("PLAIN", true), ("LOGIN", false)]),
            ("!LOGIN static:all", &[("PLAIN", true), ("LOGIN", false)]),
        ];
        for (value, checks) in cases {
            let filter = MechanismFilter::parse(value).expect(value);
            for (name, want) in *checks {
                assert_eq!(filter.allows(name), *want, "{value}: {name}");
            }
        }
        assert_eq!(
            MechanismFilter::parse("hash:/etc/postfix/mechs"),
            Err("hash:/etc/postfix/mechs".to_owned())
        );
    }
}
