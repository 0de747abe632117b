//! The few facts about a server certificate that Postfix logs or matches on, read from its
//! DER encoding (RFC 5280 4.1): the subject and issuer names (printed as OpenSSL's
//! X509_NAME_oneline() prints them), the subject CommonName, the subjectAltName dNSNames,
//! and the public key's type and size (tls_misc.c, tls_get_signature_params()).
//!
//! Chain and signature checks are not done here: rustls and webpki do them
//! ([`super::verify`]). This reader only extracts fields.
//!
//! # Security
//! The certificate comes from the network, before any check. Every length is bounds-checked,
//! nesting is fixed by the grammar (no recursion on input), and anything malformed gives
//! `None`, never a panic.

/// What [`parse`] extracts from one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFacts {
    /// The subject, as `/C=US/O=Example/CN=mx.example.com`.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// Whether subject and issuer are the same name (a self-issued certificate).
    pub self_issued: bool,
    /// The subject's CommonName values, in order.
    pub subject_cns: Vec<String>,
    /// The issuer's first CommonName (Postfix's issuer_CN), or empty.
    pub issuer_cn: String,
    /// subjectAltName dNSName entries, in order (RFC 5280 4.2.1.6).
    pub dns_names: Vec<String>,
    /// The public key, as Postfix names it in `server-signature`.
    pub key: KeyKind,
    /// The DER of the SubjectPublicKeyInfo (for public-key fingerprints).
    pub spki: Vec<u8>,
}

/// A public key's kind and size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with this many modulus bits.
    Rsa(u32),
    /// EC with this curve (OpenSSL's short name: `prime256v1`, `secp384r1`).
    Ec(String),
    Ed25519,
    Ed448,
    #[default]
    Unknown,
}

/// Reads the facts from a DER certificate; `None` when it does not parse.
pub fn parse(der: &[u8]) -> Option<CertFacts> {
    let mut outer = Reader::new(der);
    let cert = outer.expect(SEQUENCE)?;
    let tbs = Reader::new(cert).expect(SEQUENCE)?;
    let mut tbs = Reader::new(tbs);
    // version [0] EXPLICIT, optional.
    if tbs.peek_tag() == Some(0xa0) {
        tbs.any()?;
    }
    tbs.expect(INTEGER)?; // serialNumber
    tbs.expect(SEQUENCE)?; // signature AlgorithmIdentifier
    let issuer = tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?; // validity
    let subject = tbs.expect(SEQUENCE)?;
    let (spki_tag, spki, spki_full) = tbs.any_full()?;
    if spki_tag != SEQUENCE {
        return None;
    }
    let mut facts = CertFacts {
        self_issued: issuer == subject,
        ..CertFacts::default()
    };
    let issuer_attrs = name_attributes(issuer)?;
    let subject_attrs = name_attributes(subject)?;
    facts.issuer = oneline(&issuer_attrs);
    facts.subject = oneline(&subject_attrs);
    facts.issuer_cn = issuer_attrs
        .iter()
        .find(|(k, _)| *k == "CN")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    facts.subject_cns = subject_attrs
        .iter()
        .filter(|(k, _)| *k == "CN")
        .map(|(_, v)| v.clone())
        .collect();
    facts.key = key_kind(spki).unwrap_or_default();
    facts.spki = spki_full.to_vec();
    // issuerUniqueID [1], subjectUniqueID [2], extensions [3].
    while let Some((tag, body)) = tbs.any() {
        if tag == 0xa3 {
            facts.dns_names = san_dns_names(body).unwrap_or_default();
        }
    }
    Some(facts)
}

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

/// A bounds-checked DER reader over one level of TLVs.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next TLV: its tag, its contents, and the whole encoding.
    fn any_full(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let tag = *self.data.first()?;
        // Multi-byte tags do not occur in the fields read here.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let first = *self.data.get(1)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | usize::from(*self.data.get(2 + i)?);
            }
            (len, 2 + n)
        };
        let end = header.checked_add(len)?;
        let whole = self.data.get(..end)?;
        let body = whole.get(header..)?;
        self.data = self.data.get(end..)?;
        Some((tag, body, whole))
    }

    fn any(&mut self) -> Option<(u8, &'a [u8])> {
        self.any_full().map(|(t, b, _)| (t, b))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.any()? {
            (t, body) if t == tag => Some(body),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The attribute type names OpenSSL prints (its short names), by OID encoding.
const NAME_OIDS: &[(&[u8], &str)] = &[
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (&[0x55, 0x04, 0x05], "serialNumber"),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        "emailAddress",
    ),
];

/// A Name's attributes in order, as (short name, value).
fn name_attributes(name: &[u8]) -> Option<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let mut rdns = Reader::new(name);
    while !rdns.is_empty() {
        let mut set = Reader::new(rdns.expect(SET)?);
        while !set.is_empty() {
            let mut atv = Reader::new(set.expect(SEQUENCE)?);
            let oid = atv.expect(OID)?;
            let (tag, value) = atv.any()?;
            let key = NAME_OIDS
                .iter()
                .find(|(o, _)| *o == oid)
                .map_or("UNDEF", |(_, k)| *k);
            out.push((key, string_value(tag, value)));
        }
    }
    Some(out)
}

/// A directory string's text (UTF8String, PrintableString, IA5String, T61String,
/// BMPString); other types and bad bytes come out with `?` as OpenSSL's printable() would.
fn string_value(tag: u8, value: &[u8]) -> String {
    let text = match tag {
        0x1e => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(value).into_owned(),
    };
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// X509_NAME_oneline()'s form: `/K=V` for each attribute.
fn oneline(attrs: &[(&str, String)]) -> String {
    attrs.iter().fold(String::new(), |mut s, (k, v)| {
        s.push('/');
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s
    })
}

/// The subjectAltName extension's dNSName entries.
fn san_dns_names(explicit: &[u8]) -> Option<Vec<String>> {
    const SAN: &[u8] = &[0x55, 0x1d, 0x11];
    let mut exts = Reader::new(Reader::new(explicit).expect(SEQUENCE)?);
    let mut names = Vec::new();
    while !exts.is_empty() {
        let mut ext = Reader::new(exts.expect(SEQUENCE)?);
        let oid = ext.expect(OID)?;
        let (mut tag, mut body) = ext.any()?;
        if tag == 0x01 {
            // critical BOOLEAN
            (tag, body) = ext.any()?;
        }
        if oid != SAN || tag != OCTET_STRING {
            continue;
        }
        let mut general = Reader::new(Reader::new(body).expect(SEQUENCE)?);
        while let Some((t, v)) = general.any() {
            // dNSName [2] IMPLICIT IA5String.
            if t == 0x82 {
                names.push(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    Some(names)
}

/// The key's kind from a SubjectPublicKeyInfo's contents.
fn key_kind(spki: &[u8]) -> Option<KeyKind> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const ED448: &[u8] = &[0x2b, 0x65, 0x71];
    const CURVES: &[(&[u8], &str)] = &[
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            "prime256v1",
        ),
        (&[0x2b, 0x81, 0x04, 0x00, 0x22], "secp384r1"),
        (&[0x2b, 0x81, 0x04, 0x00, 0x23], "secp521r1"),
    ];
    let mut r = Reader::new(spki);
    let mut alg = Reader::new(r.expect(SEQUENCE)?);
    let oid = alg.expect(OID)?;
    if oid == RSA {
        let bits = r.expect(BIT_STRING)?;
        let key = Reader::new(bits.get(1..)?).expect(SEQUENCE)?;
        let modulus = Reader::new(key).expect(INTEGER)?;
        let significant: &[u8] = {
            let start = modulus
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(modulus.len());
            &modulus[start..]
        };
        let lead = significant.first().map_or(0, |b| b.leading_zeros());
        let total = u32::try_from(significant.len()).ok()?.checked_mul(8)?;
        return Some(KeyKind::Rsa(total - lead));
    }
    if oid == EC {
        let curve = alg.expect(OID)?;
        let name = CURVES
            .iter()
            .find(|(o, _)| *o == curve)
            .map_or("unknown", |(_, n)| *n);
        return Some(KeyKind::Ec(name.to_owned()));
    }
    if oid == ED25519 {
        return Some(KeyKind::Ed25519);
    }
    if oid == ED448 {
        return Some(KeyKind::Ed448);
    }
    Some(KeyKind::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_truncation() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x05, 0x01],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x80],
            &[0x1f, 0x00],
        ];
        for case in cases {
            assert!(parse(case).is_none(), "{case:?}");
        }
    }

    #[test]
    fn oneline_form() {
        let attrs = vec![("C", "US".to_owned()), ("CN", "Test CA".to_owned())];
        assert_eq!(oneline(&attrs), "/C=US/CN=Test CA");
    }

    #[test]
    fn strings() {
        let cases: &[(u8, &[u8], &str)] = &[
            (0x0c, b"caf\xc3\xa9", "caf\u{e9}"),
            (0x13, b"Example", "Example"),
            (0x1e, &[0x00, 0x41, 0x00, 0x42], "AB"),
            (0x16, b"a\x01b", "a?b"),
        ];
        for (tag, bytes, want) in cases {
            assert_eq!(string_value(*tag, bytes), *want);
        }
    }
}
