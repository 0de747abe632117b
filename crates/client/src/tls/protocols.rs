//! smtp_tls_protocols and smtp_tls_mandatory_protocols (and a policy table's `protocols=`
//! attribute): Postfix's protocol list (tls_misc.c, tls_proto_mask_lims()) mapped onto the
//! versions rustls speaks.
//!
//! Postfix 3.7's syntax: `>=TLSv1.2` (floor), `<=TLSv1.3` (ceiling), `!SSLv3` (exclude),
//! `TLSv1.2` (include: everything not listed is excluded), separated by commas, spaces or
//! colons; version names SSLv2 SSLv3 TLSv1 TLSv1.1 TLSv1.2 TLSv1.3, and for floor and
//! ceiling also `None` or a hex number (`>=0x0303`). rustls implements TLSv1.2 and TLSv1.3
//! only, so a list that allows neither is refused: OpenSSL refuses the same handshake with
//! "no protocols available", which Postfix reports as a handshake failure.

/// The versions a protocol list allows, among those rustls implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocols {
    pub tls12: bool,
    pub tls13: bool,
}

impl Protocols {
    /// Both TLSv1.2 and TLSv1.3 (Postfix's default `>=TLSv1`, as far as rustls goes).
    pub const ALL: Protocols = Protocols {
        tls12: true,
        tls13: true,
    };

    /// The rustls versions to offer, highest first.
    pub fn versions(self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let mut v = Vec::new();
        if self.tls13 {
            v.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            v.push(&rustls::version::TLS12);
        }
        v
    }

    pub fn is_empty(self) -> bool {
        !self.tls12 && !self.tls13
    }
}

/// Why a protocol list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A word Postfix does not know: tls_client_start() warns `HOST[ADDR]:PORT: Invalid TLS
    /// protocol list "LIST": aborting TLS session` and the handshake is not attempted.
    #[error("Invalid TLS protocol list \"{0}\"")]
    Invalid(String),
    /// A valid list that leaves neither TLSv1.2 nor TLSv1.3 (e.g. `TLSv1` or `<=TLSv1.1`):
    /// OpenSSL's words for it.
    #[error("no protocols available")]
    NoneAvailable(String),
}

/// Bits in Postfix's order (TLS_PROTOCOL_*).
const SSLV2: u8 = 1 << 0;
const SSLV3: u8 = 1 << 1;
const TLSV1: u8 = 1 << 2;
const TLSV1_1: u8 = 1 << 3;
const TLSV1_2: u8 = 1 << 4;
const TLSV1_3: u8 = 1 << 5;
const KNOWN: u8 = SSLV2 | SSLV3 | TLSV1 | TLSV1_1 | TLSV1_2 | TLSV1_3;

const NAMES: &[(&str, u8)] = &[
    ("SSLv2", SSLV2),
    ("SSLv3", SSLV3),
    ("TLSv1", TLSV1),
    ("TLSv1.1", TLSV1_1),
    ("TLSv1.2", TLSV1_2),
    ("TLSv1.3", TLSV1_3),
];

/// Wire versions for the floor and ceiling forms (tls_version_table; `None` is 0).
const VERSIONS: &[(&str, u32)] = &[
    ("None", 0),
    ("SSLv3", 0x0300),
    ("TLSv1", 0x0301),
    ("TLSv1.1", 0x0302),
    ("TLSv1.2", 0x0303),
    ("TLSv1.3", 0x0304),
];

/// Parses a protocol list into the versions it allows.
pub fn parse(list: &str) -> Result<Protocols, ProtocolError> {
    let invalid = || ProtocolError::Invalid(list.to_owned());
    let (mut include, mut exclude) = (0u8, 0u8);
    let (mut floor, mut ceiling) = (0u32, 0u32);
    for tok in list
        .split(|c: char| c == ',' || c == ':' || c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
    {
        if let Some(v) = tok.strip_prefix(">=") {
            floor = version(v).ok_or_else(invalid)?;
        } else if let Some(v) = tok.strip_prefix("<=") {
            ceiling = version(v).ok_or_else(invalid)?;
        } else if let Some(name) = tok.strip_prefix('!') {
            exclude |= name_bit(name).ok_or_else(invalid)?;
        } else {
            include |= name_bit(tok).ok_or_else(invalid)?;
        }
    }
    // An include list excludes every known protocol it does not name.
    let excluded = if include == 0 {
        exclude
    } else {
        exclude | (KNOWN & !include)
    };
    let allowed = |bit: u8, wire: u32| {
        excluded & bit == 0 && (floor == 0 || wire >= floor) && (ceiling == 0 || wire <= ceiling)
    };
    let p = Protocols {
        tls12: allowed(TLSV1_2, 0x0303),
        tls13: allowed(TLSV1_3, 0x0304),
    };
    if p.is_empty() {
        return Err(ProtocolError::NoneAvailable(list.to_owned()));
    }
    Ok(p)
}

/// Postfix matches protocol names case-sensitively (name_code() with NAME_CODE_FLAG_NONE).
fn name_bit(name: &str) -> Option<u8> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn version(text: &str) -> Option<u32> {
    if let Some((_, v)) = VERSIONS.iter().find(|(n, _)| *n == text) {
        return Some(*v);
    }
    // parse_tls_version(): strtoul(tok, 16), so an optional 0x prefix.
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if hex.is_empty() {
        return None;
    }
    u32::from_str_radix(hex, 16)
        .ok()
        .filter(|v| i32::try_from(*v).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Protocols = Protocols::ALL;
    const ONLY12: Protocols = Protocols {
        tls12: true,
        tls13: false,
    };
    const ONLY13: Protocols = Protocols {
        tls12: false,
        tls13: true,
    };

    #[test]
    fn lists() {
        let ok: &[(&str, Protocols)] = &[
            ("", BOTH),
            (">=TLSv1", BOTH),
            (">=TLSv1.2", BOTH),
            (">=TLSv1.3", ONLY13),
            ("<=TLSv1.2", ONLY12),
            ("TLSv1.3", ONLY13),
            ("TLSv1.2", ONLY12),
            ("TLSv1.2, TLSv1.3", BOTH),
            ("TLSv1.2:TLSv1.3", BOTH),
            ("!SSLv2, !SSLv3", BOTH),
            ("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2", ONLY13),
            ("!TLSv1.3", ONLY12),
            (">=0x0304", ONLY13),
            (">=303", BOTH),
            (">=None", BOTH),
            ("<=None", BOTH),
            (">=TLSv1.2 <=TLSv1.2", ONLY12),
        ];
        for (list, want) in ok {
            assert_eq!(parse(list), Ok(*want), "{list}");
        }
        let none: &[&str] = &["TLSv1", "<=TLSv1.1", "!TLSv1.2 !TLSv1.3", "SSLv3, TLSv1.1"];
        for list in none {
            assert_eq!(
                parse(list),
                Err(ProtocolError::NoneAvailable((*list).to_owned())),
                "{list}"
            );
        }
        let invalid: &[&str] = &["tlsv1.2", "TLSv1.4", ">=TLSv9", "!bogus", ">=", ">=0xzz"];
        for list in invalid {
            assert_eq!(
                parse(list),
                Err(ProtocolError::Invalid((*list).to_owned())),
                "{list}"
            );
        }
    }

    #[test]
    fn versions_highest_first() {
        let v = BOTH.versions();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].version, rustls::ProtocolVersion::TLSv1_3);
    }
}
