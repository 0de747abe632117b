// Test code: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

use rcgen::{CertificateParams, KeyPair};

use super::*;

/// PEM files in a temp dir: `c1.pem`/`c1.key` and `c2.pem`/`c2.key` (EC P-256),
/// `r1.key` (RSA), and the combinations the cases read.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let mut pems = std::collections::HashMap::new();
        for name in ["c1", "c2"] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![format!("{name}.test")])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            pems.insert(format!("{name}.pem"), cert.pem());
            pems.insert(format!("{name}.key"), key.serialize_pem());
        }
        let rsa = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        pems.insert("r1.key".to_owned(), rsa.serialize_pem());
        let cat = |names: &[&str]| names.iter().map(|n| pems[*n].clone()).collect::<String>();
        let files = [
            ("mixed.pem", cat(&["c1.key", "c1.pem", "c2.pem"])),
            ("certfirst.pem", cat(&["c1.pem", "c1.key"])),
            ("mism.pem", cat(&["c1.pem", "c2.key"])),
            ("twokeys.pem", cat(&["c1.key", "c1.pem", "c2.key"])),
            ("nokey.pem", cat(&["c1.pem"])),
            ("nocert.pem", cat(&["c1.key"])),
            ("chain2.pem", cat(&["c1.key", "c1.pem", "c2.key", "c2.pem"])),
            ("certnokeyfirst.pem", cat(&["c1.pem", "c1.key"])),
            ("keykey.pem", cat(&["c1.key", "c2.key", "c2.pem"])),
            ("empty.pem", String::new()),
        ];
        for (name, text) in pems.iter().map(|(k, v)| (k.as_str(), v.clone())).chain(
            files
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect::<Vec<_>>(),
        ) {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        if name.is_empty() {
            return String::new();
        }
        self.dir.path().join(name).display().to_string()
    }
}

/// (cert_file, key_file, chain_files, loaded keys or None for "TLS disabled", warnings
/// with `{D}` for the directory). Texts: Debian's Postfix 3.7 with the same files.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<usize>,
    &'static [&'static str],
);

#[test]
fn postfix_loading_rules() {
    let f = Files::new();
    let cases: &[Case] = &[
        ("", "", "", Some(0), &[]),
        ("mixed.pem", "mixed.pem", "", Some(1), &[]),
        ("certfirst.pem", "certfirst.pem", "", Some(1), &[]),
        ("c1.pem", "c1.key", "", Some(1), &[]),
        (
            "twokeys.pem",
            "twokeys.pem",
            "",
            Some(1),
            &["ignoring 2nd key at index 3 in {D}/twokeys.pem after 1st at 1"],
        ),
        (
            "mism.pem",
            "mism.pem",
            "",
            None,
            &[
                "key at index 2 in {D}/mism.pem does not match next certificate",
                "TLS library problem: error:0A000120:SSL routines::private key \
                 mismatch:../ssl/ssl_rsa.c:983:",
                "error loading private keys and certificates from: {D}/mism.pem: disabling \
                 TLS support",
            ],
        ),
        (
            "missing.pem",
            "missing.pem",
            "",
            None,
            &["error opening chain file: {D}/missing.pem: No such file or directory"],
        ),
        (
            "nokey.pem",
            "nokey.pem",
            "",
            None,
            &[
                "No private key found in {D}/nokey.pem",
                "error loading private keys and certificates from: {D}/nokey.pem: disabling \
                 TLS support",
            ],
        ),
        (
            "nocert.pem",
            "nocert.pem",
            "",
            None,
            &[
                "No certs for key at index 1 in {D}/nocert.pem",
                "error loading private keys and certificates from: {D}/nocert.pem: \
                 disabling TLS support",
            ],
        ),
        (
            "empty.pem",
            "empty.pem",
            "",
            None,
            &[
                "No PEM data in {D}/empty.pem",
                "error loading private keys and certificates from: {D}/empty.pem: disabling \
                 TLS support",
            ],
        ),
        (
            "missing.pem",
            "c1.key",
            "",
            None,
            &["cannot get RSA certificate from file \"{D}/missing.pem\": disabling TLS support"],
        ),
        (
            "c1.pem",
            "missing.key",
            "",
            None,
            &["cannot get RSA private key from file \"{D}/missing.key\": disabling TLS support"],
        ),
        (
            "c1.pem",
            "c2.key",
            "",
            None,
            &[
                "cannot get RSA private key from file \"{D}/c2.key\": disabling TLS support",
                "TLS library problem: error:05800074:x509 certificate routines::key values \
                 mismatch:../crypto/x509/x509_cmp.c:403:",
            ],
        ),
        (
            "c1.pem",
            "r1.key",
            "",
            None,
            &[
                "RSA private key in {D}/r1.key does not match public key in {D}/c1.pem: \
               disabling TLS support",
            ],
        ),
        // smtp_tls_chain_files: each key first; it overrides cert_file.
        ("missing.pem", "", "mixed.pem", Some(1), &[]),
        (
            "",
            "",
            "chain2.pem",
            None,
            &[
                "key at index 3 in {D}/chain2.pem does not match next certificate",
                "TLS library problem: error:0A000121:SSL routines::not replacing \
                 certificate:../ssl/ssl_rsa.c:994:",
                "error loading private keys and certificates from: {D}/chain2.pem: \
                 disabling TLS support",
            ],
        ),
        (
            "",
            "",
            "certnokeyfirst.pem",
            None,
            &[
                "error loading chain from {D}/certnokeyfirst.pem: key not first",
                "error loading private keys and certificates from: {D}/certnokeyfirst.pem: \
                 disabling TLS support",
            ],
        ),
        (
            "",
            "",
            "keykey.pem",
            None,
            &[
                "error loading certificate chain: key at index 1 in {D}/keykey.pem not \
                 followed by a certificate",
                "error loading private keys and certificates from: {D}/keykey.pem: \
                 disabling TLS support",
            ],
        ),
    ];
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let d = f.dir.path().display().to_string();
    for (cert, key, chain, want, warnings) in cases {
        let settings = Settings {
            cert_file: f.path(cert),
            key_file: f.path(key),
            chain_files: f.path(chain),
            ..Settings::default()
        };
        let mut w = Vec::new();
        let got = load(&settings, &provider, &mut w)
            .map(|c| c.keys.len())
            .ok();
        let want_w: Vec<String> = warnings.iter().map(|t| t.replace("{D}", &d)).collect();
        assert_eq!((got, w), (*want, want_w), "{cert} {key} {chain}");
    }
}

#[test]
fn two_files_of_chain_files_and_both_algorithms() {
    let f = Files::new();
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    // Two chain files: the key in one, its certificate in the next.
    let settings = Settings {
        chain_files: format!("{}, {}", f.path("c1.key"), f.path("c1.pem")),
        ..Settings::default()
    };
    let mut w = Vec::new();
    assert_eq!(
        load(&settings, &provider, &mut w).map(|c| c.keys.len()),
        Ok(1)
    );
    assert!(w.is_empty(), "{w:?}");
    // An EC pair in both slots: one key per algorithm, the later replaces.
    let settings = Settings {
        cert_file: f.path("c1.pem"),
        key_file: f.path("c1.key"),
        eccert_file: f.path("c2.pem"),
        eckey_file: f.path("c2.key"),
        ..Settings::default()
    };
    let c = load(&settings, &provider, &mut w).unwrap();
    assert_eq!(c.keys.len(), 1);
    assert!(w.is_empty(), "{w:?}");
    let mut w = Vec::new();
    let settings = Settings {
        eccert_file: f.path("c1.pem"),
        eckey_file: f.path("c2.key"),
        ..Settings::default()
    };
    assert!(load(&settings, &provider, &mut w).is_err());
    assert_eq!(
        w[0],
        format!(
            "cannot get ECDSA private key from file \"{}\": disabling TLS support",
            f.path("c2.key")
        )
    );
}
