//! The server certificate check, as Postfix does it (tls_client.c, tls_verify.c): the
//! handshake always completes when the signatures are good, and the certificate is only
//! *classified*: present, trusted (the chain reaches a trust anchor), matched (at
//! `verify`/`secure`: a name in the certificate matches the match strategy; at
//! `fingerprint`: a digest matches). The caller decides what a result means for its level
//! (smtp_proto.c: "Server certificate not verified" at the levels that must match).
//!
//! Names are matched as OpenSSL's X509_check_host() does with
//! X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, which Postfix sets (RFC 6125 6.4): the
//! subjectAltName dNSNames when there are any, else the subject CommonNames; a `*` only as
//! the whole left-most label of a name with at least two more labels, standing for exactly
//! one label; a reference name with a leading dot (`.example.com`, from `dot-nexthop` or a
//! `.domain` match) matches any name below that domain.
//!
//! # Security
//! The certificate chain is untrusted network input: it is parsed by webpki for the chain
//! check and by [`super::cert`] for names; handshake signatures are always verified, at
//! every level, so a classification of "trusted" is never made on a forged key.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::cert::{self, CertFacts};
use super::policy::Level;

/// What the check found; read after the handshake.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// TLS_CERT_FLAG_PRESENT: the server sent a certificate.
    pub present: bool,
    /// TLS_CERT_FLAG_TRUSTED: its chain reaches a trust anchor and, at the levels that
    /// must match, a name matched (OpenSSL's verify result covers both).
    pub trusted: bool,
    /// TLS_CERT_FLAG_MATCHED (and SECURED: Tern has no half-dane): the level's name or
    /// fingerprint check passed. Only ever set at levels that must match.
    pub matched: bool,
    /// The first problem found, for Postfix's "certificate verification failed" line.
    pub error: Option<VerifyError>,
    /// The certificate's names and key, when it parsed.
    pub facts: Option<CertFacts>,
    /// The TLS 1.3 CertificateVerify signature scheme (for `server-digest`).
    pub tls13_scheme: Option<SignatureScheme>,
}

/// Why a certificate is not trusted or not matched, in OpenSSL's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT.
    SelfSigned,
    /// X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY or ..._SELF_SIGNED_CERT_IN_CHAIN, with
    /// the issuer name in X509_NAME_oneline() form.
    UntrustedIssuer(String),
    NotYetValid,
    Expired,
    /// X509_V_ERR_INVALID_PURPOSE.
    InvalidPurpose,
    /// X509_V_ERR_HOSTNAME_MISMATCH.
    HostnameMismatch,
    /// X509_V_ERR_DANE_NO_MATCH (the `fingerprint` level).
    NoFingerprintMatch,
    /// Another OpenSSL error: its number and text.
    Other(u32, &'static str),
}

impl VerifyError {
    /// The text tls_log_verify_error() logs (after `info: `/`TLS: `), for the server
    /// `namaddr` (`mx.example.com[192.0.2.1]:25`).
    pub fn log_text(&self, namaddr: &str) -> String {
        match self {
            VerifyError::SelfSigned => {
                format!("certificate verification failed for {namaddr}: self-signed certificate")
            }
            VerifyError::UntrustedIssuer(issuer) => {
                format!("certificate verification failed for {namaddr}: untrusted issuer {issuer}")
            }
            VerifyError::NotYetValid => format!(
                "server certificate verification failed for {namaddr}: certificate not yet valid"
            ),
            VerifyError::Expired => format!(
                "server certificate verification failed for {namaddr}: certificate has expired"
            ),
            VerifyError::InvalidPurpose => format!(
                "certificate verification failed for {namaddr}: not designated for use as a \
                 server certificate"
            ),
            VerifyError::HostnameMismatch => format!(
                "server certificate verification failed for {namaddr}: num=62:hostname mismatch"
            ),
            VerifyError::NoFingerprintMatch => format!(
                "server certificate verification failed for {namaddr}: num=65:No matching DANE \
                 TLSA records"
            ),
            VerifyError::Other(num, text) => {
                format!("server certificate verification failed for {namaddr}: num={num}:{text}")
            }
        }
    }
}

/// The per-connection verifier: the level's rules, the trust anchors, and where the
/// result goes.
#[derive(Debug)]
pub struct PostfixVerifier {
    pub level: Level,
    pub roots: Arc<RootCertStore>,
    /// Reference names (see [`reference_names`]); a leading dot means "any subdomain".
    pub references: Vec<String>,
    /// Decoded fingerprints (`fingerprint` level), SHA-256.
    pub fingerprints: Vec<Vec<u8>>,
    pub provider: Arc<CryptoProvider>,
    pub verdict: Arc<Mutex<Verdict>>,
}

impl ServerCertVerifier for PostfixVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let facts = cert::parse(end_entity);
        let mut v = Verdict {
            present: true,
            ..Verdict::default()
        };
        if self.level == Level::Fingerprint {
            let cert_digest = sha256(&self.provider, end_entity);
            let key_digest = facts.as_ref().and_then(|f| sha256(&self.provider, &f.spki));
            v.matched = self
                .fingerprints
                .iter()
                .any(|fp| Some(fp) == cert_digest.as_ref() || Some(fp) == key_digest.as_ref());
            v.trusted = v.matched;
            if !v.matched {
                v.error = Some(VerifyError::NoFingerprintMatch);
            }
        } else {
            let chain = ParsedCertificate::try_from(end_entity).and_then(|parsed| {
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    &self.roots,
                    intermediates,
                    now,
                    self.provider.signature_verification_algorithms.all,
                )
            });
            match chain {
                Ok(()) => v.trusted = true,
                Err(e) => v.error = Some(classify(&e, facts.as_ref(), intermediates)),
            }
            if v.trusted && self.level.must_match() {
                let names = facts.as_ref().map(cert_names).unwrap_or_default();
                v.matched = self
                    .references
                    .iter()
                    .any(|r| names.iter().any(|n| name_matches(r, n)));
                if !v.matched {
                    v.error = Some(VerifyError::HostnameMismatch);
                    // OpenSSL checks the names (SSL_add1_host()) inside the chain
                    // verification, so X509_V_ERR_HOSTNAME_MISMATCH is the verify result
                    // and tls_client.c verify_extract_name() never sets
                    // TLS_CERT_FLAG_TRUSTED: Postfix 3.7 logs such a peer as "Untrusted
                    // TLS connection established" (seen with Debian's 3.7.11).
                    v.trusted = false;
                }
            }
        }
        v.facts = facts;
        if let Ok(mut slot) = self.verdict.lock() {
            let scheme = slot.tls13_scheme;
            *slot = v;
            slot.tls13_scheme = scheme;
        }
        // Postfix completes the handshake whatever the result (tls_client.c: "tries hard
        // to always complete the TLS handshake"); the caller enforces the level.
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let ok = rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )?;
        if let Ok(mut slot) = self.verdict.lock() {
            slot.tls13_scheme = Some(dss.scheme);
        }
        Ok(ok)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The match strategies expanded into reference names (tls_client.c, add_namechecks()):
/// `nexthop`, `dot-nexthop` (`.nexthop`), `hostname`, a literal name, `.domain`. Warnings
/// (without `warning: `) for names that cannot be used; no names at all means nothing
/// can match (Postfix's must_fail).
pub fn reference_names(
    matches: &[String],
    nexthop: &str,
    host: &str,
    namaddr: &str,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for m in matches {
        let name = match m.to_ascii_lowercase().as_str() {
            "nexthop" => nexthop.to_owned(),
            "dot-nexthop" => format!(".{nexthop}"),
            "hostname" => host.to_owned(),
            "." => {
                warnings.push(format!("{namaddr}: ignoring invalid match name: \".\""));
                continue;
            }
            _ => m.clone(),
        };
        out.push(name.to_ascii_lowercase());
    }
    if out.is_empty() {
        warnings.push(format!("{namaddr}: could not configure peer name checks"));
    }
    out
}

/// The names X509_check_host() looks at: the DNS subjectAltNames, else the CommonNames.
pub fn cert_names(facts: &CertFacts) -> Vec<String> {
    if facts.dns_names.is_empty() {
        facts.subject_cns.clone()
    } else {
        facts.dns_names.clone()
    }
}

/// Whether certificate name `pattern` matches `reference` (a host name, or `.domain` for
/// any name below the domain), as OpenSSL matches with NO_PARTIAL_WILDCARDS.
pub fn name_matches(reference: &str, pattern: &str) -> bool {
    let reference = reference.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    if reference.is_empty() || pattern.is_empty() {
        return false;
    }
    if reference.len() > 1 && reference.starts_with('.') {
        // A suffix match on whole labels; a wildcard pattern is compared as text, so
        // `*.example.com` is below `.example.com` too.
        return pattern.len() > reference.len() && pattern.ends_with(&reference);
    }
    if pattern == reference {
        return true;
    }
    let Some(rest) = pattern.strip_prefix("*.") else {
        return false;
    };
    // valid_star(): `*` only as the whole first label, no other `*`, two or more dots.
    if rest.contains('*') || rest.matches('.').count() < 1 || rest.starts_with('.') {
        return false;
    }
    match reference.split_once('.') {
        Some((first, tail)) => !first.is_empty() && tail == rest,
        None => false,
    }
}

/// Decodes fingerprints (`AB:CD:...`, any case, colons optional); warnings for bad ones.
pub fn decode_fingerprints(list: &[String], warnings: &mut Vec<String>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for fp in list {
        let hex: String = fp.chars().filter(|c| *c != ':').collect();
        let bytes: Option<Vec<u8>> = (hex.len() == 64)
            .then(|| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect()
            })
            .flatten();
        match bytes {
            Some(b) => out.push(b),
            None => warnings.push(format!("malformed fingerprint value: {fp}")),
        }
    }
    out
}

/// SHA-256 through the provider's TLS 1.3 suite hash (rustls exposes no bare digest).
fn sha256(provider: &CryptoProvider, data: &[u8]) -> Option<Vec<u8>> {
    provider
        .cipher_suites
        .iter()
        .filter_map(rustls::SupportedCipherSuite::tls13)
        .map(|s| s.common.hash_provider)
        .find(|h| h.algorithm() == rustls::crypto::hash::HashAlgorithm::SHA256)
        .map(|h| h.hash(data).as_ref().to_vec())
}

/// An rustls/webpki chain error in OpenSSL's terms.
fn classify(
    e: &Error,
    facts: Option<&CertFacts>,
    intermediates: &[CertificateDer<'_>],
) -> VerifyError {
    let Error::InvalidCertificate(ce) = e else {
        return VerifyError::Other(1, "unspecified certificate verification error");
    };
    match ce {
        CertificateError::UnknownIssuer => {
            if intermediates.is_empty() && facts.is_some_and(|f| f.self_issued) {
                return VerifyError::SelfSigned;
            }
            // The issuer of the last certificate sent: the one OpenSSL could not find.
            let last = intermediates.last().and_then(|c| cert::parse(c));
            let issuer = last
                .as_ref()
                .or(facts)
                .map_or_else(|| "<unknown>".to_owned(), |f| f.issuer.clone());
            VerifyError::UntrustedIssuer(issuer)
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => VerifyError::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            VerifyError::NotYetValid
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            VerifyError::InvalidPurpose
        }
        CertificateError::BadSignature => VerifyError::Other(7, "certificate signature failure"),
        CertificateError::Revoked => VerifyError::Other(23, "certificate revoked"),
        _ => VerifyError::Other(1, "unspecified certificate verification error"),
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
