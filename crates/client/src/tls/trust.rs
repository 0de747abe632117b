//! Trust anchors: smtp_tls_CAfile and smtp_tls_CApath (PEM), as Postfix hands them to
//! OpenSSL (tls_certkey.c, tls_set_ca_certificate_info()), and per-destination trust anchor
//! files (tls_dane.c, tls_dane_load_trustfile()).
//!
//! Postfix trusts no CA unless told: with neither CAfile nor CApath set, the store is empty
//! and every certificate is untrusted (so `verify` and `secure` fail). The system's CAs are
//! added only when tls_append_default_CA = yes *and* CAfile or CApath is set.
//!
//! CApath is read as OpenSSL reads a hashed directory: only files named `HHHHHHHH.N` (the
//! names `openssl rehash` / c_rehash make) are certificates; other files are ignored. A
//! missing directory is not an error (OpenSSL only records the path), an unreadable or
//! empty CAfile is.
//!
//! # Security
//! The files are trusted configuration; certificates that do not parse are skipped.

use std::path::Path;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why the CA data could not be loaded: Postfix logs `cannot load Certification Authority
/// data, CAfile="...", CApath="...": disabling TLS support` and runs without a TLS engine
/// (`may` goes plaintext; `encrypt` and above defer with `TLS is required, but our TLS
/// engine is unavailable`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot load Certification Authority data, {0}: disabling TLS support")]
pub struct CaError(pub String);

/// Loads smtp_tls_CAfile and smtp_tls_CApath into a root store.
pub fn load_ca(
    ca_file: &str,
    ca_path: &str,
    append_default: bool,
) -> Result<RootCertStore, CaError> {
    let mut store = RootCertStore::empty();
    if ca_file.is_empty() && ca_path.is_empty() {
        return Ok(store);
    }
    let err = || {
        // CA_PATH_FMT: CAfile="x", CApath="y" (each only when set).
        let mut parts = Vec::new();
        if !ca_file.is_empty() {
            parts.push(format!("CAfile=\"{ca_file}\""));
        }
        if !ca_path.is_empty() {
            parts.push(format!("CApath=\"{ca_path}\""));
        }
        CaError(parts.join(", "))
    };
    if !ca_file.is_empty() {
        let certs = read_pem_certs(Path::new(ca_file)).ok_or_else(err)?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(err());
        }
    }
    if !ca_path.is_empty()
        && let Ok(dir) = std::fs::read_dir(ca_path)
    {
        let mut names: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_hash_name)
            })
            .collect();
        names.sort();
        for path in names {
            if let Some(certs) = read_pem_certs(&path) {
                store.add_parsable_certificates(certs);
            }
        }
    }
    if append_default {
        let native = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(native.certs);
    }
    Ok(store)
}

/// Loads trust anchor files (`tafile=`, smtp_tls_trust_anchor_file) into a root store;
/// None (after a warning) when one cannot be read or holds no certificate.
pub fn load_trust_anchor_files(
    files: &[String],
    warnings: &mut Vec<String>,
) -> Option<RootCertStore> {
    let mut store = RootCertStore::empty();
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(format!(
                    "error opening trust anchor file: {file}: {}",
                    tern_config::text::errno_text(&e)
                ));
                return None;
            }
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect();
        // XXX: Postfix also accepts PUBLIC KEY blocks (bare-key anchors); rustls roots
        // are certificates, so those are not loaded.
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            warnings.push(format!(
                "error reading: {file}: malformed trust-anchor certificate"
            ));
            return None;
        }
    }
    Some(store)
}

/// The certificates in a PEM file; None when it cannot be read or has none.
fn read_pem_certs(path: &Path) -> Option<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).ok()?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    (!certs.is_empty()).then_some(certs)
}

/// OpenSSL's hashed-directory names: 8 hex digits, a dot, a decimal sequence number.
fn is_hash_name(name: &str) -> bool {
    let Some((hash, seq)) = name.split_once('.') else {
        return false;
    };
    hash.len() == 8
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && !seq.is_empty()
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_names() {
        let cases = [
            ("9d66eef0.0", true),
            ("9D66EEF0.12", true),
            ("9d66eef0.r0", false),
            ("ca.pem", false),
            ("9d66eef.0", false),
            ("9d66eef0.", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_hash_name(name), want, "{name}");
        }
    }

    #[test]
    fn ca_errors_name_the_settings() {
        assert_eq!(load_ca("", "", true).map(|s| s.len()), Ok(0));
        let e = load_ca("/nonexistent/ca.pem", "/nonexistent", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot load Certification Authority data, CAfile=\"/nonexistent/ca.pem\", \
             CApath=\"/nonexistent\": disabling TLS support"
        );
        // A missing CApath alone is not an error (OpenSSL only records the directory).
        assert!(load_ca("", "/nonexistent", false).is_ok());
    }
}
