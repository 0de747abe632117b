//! The client's own certificates and keys (postconf(5) smtp_tls_cert_file,
//! smtp_tls_key_file, smtp_tls_eccert_file, smtp_tls_eckey_file, smtp_tls_chain_files),
//! loaded once per transport as Postfix's tls_certkey.c loads them, and presented when a
//! server asks for a client certificate (TLS 1.2 and 1.3 CertificateRequest).
//!
//! Postfix loads them whenever it creates the client TLS engine (a level above `none`,
//! smtp_tls_policy_maps or smtp_tls_per_site), and offers them in every TLS session;
//! OpenSSL sends one only when the server asks. Any problem (a missing file, no key, a key
//! that does not match its certificate) logs Postfix's warnings and disables TLS: the
//! engine is not created, so `may` goes on in plaintext and the levels that require TLS
//! defer with `TLS is required, but our TLS engine is unavailable`.
//!
//! Three ways to name the files (tls_set_my_certificate_key_info()):
//! - smtp_tls_chain_files (when set, the others are ignored): files holding, in order,
//!   one or more (key, certificate, chain...) sequences, each key first.
//! - smtp_tls_cert_file and smtp_tls_key_file naming the same file (the default: the key
//!   file is `$smtp_tls_cert_file`): one key anywhere in the file, the first
//!   certificate is the leaf, the others its chain (load_mixed_file()).
//! - two files: the certificate chain, then the first key of the key file.
//!
//! The same for smtp_tls_eccert_file / smtp_tls_eckey_file (named "ECDSA" in warnings;
//! the first pair is "RSA" whatever its algorithm, as in Postfix).
//!
//! # Security
//! The files are trusted configuration, read as the daemon reads main.cf. Nothing here
//! comes from the network. Keys are handed to the crypto provider and never logged.

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::cert::{self, KeyKind};
use super::settings::Settings;

/// OpenSSL's error when a key does not match the certificate before it, after Postfix's
/// "does not match" warnings (tls_print_errors()); fixed texts of Debian's OpenSSL 3.0.
const MIXED_MISMATCH: &str =
    "error:0A000120:SSL routines::private key mismatch:../ssl/ssl_rsa.c:983:";
const PAIR_MISMATCH: &str =
    "error:05800074:x509 certificate routines::key values mismatch:../crypto/x509/x509_cmp.c:403:";
/// OpenSSL's error when smtp_tls_chain_files or a single file holds a second key of an
/// algorithm already loaded (SSL_CTX_use_cert_and_key() without replace).
const NOT_REPLACING: &str =
    "error:0A000121:SSL routines::not replacing certificate:../ssl/ssl_rsa.c:994:";

/// The files could not be loaded: Postfix's "disabling TLS support" (the warnings say
/// why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("disabling TLS support")]
pub struct Disabled;

/// The loaded certificates, one per key algorithm.
#[derive(Debug, Default)]
pub struct ClientCerts {
    keys: Vec<(Arc<CertifiedKey>, KeyKind)>,
}

impl ClientCerts {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The loaded certificates with their keys and key kinds, in load order (smtpd
    /// serves them as its own server certificates).
    pub fn certified_keys(&self) -> impl Iterator<Item = &(Arc<CertifiedKey>, KeyKind)> {
        self.keys.iter()
    }

    fn has(&self, alg: rustls::SignatureAlgorithm) -> bool {
        self.keys.iter().any(|(k, _)| k.key.algorithm() == alg)
    }

    /// OpenSSL keeps one certificate per key algorithm: with smtp_tls_cert_file and
    /// smtp_tls_eccert_file a later one of the same kind replaces the earlier.
    fn add(&mut self, key: Arc<CertifiedKey>, kind: KeyKind) {
        let alg = key.key.algorithm();
        self.keys.retain(|(k, _)| k.key.algorithm() != alg);
        self.keys.push((key, kind));
    }
}

/// Loads the files named by `settings`. `Err` means "disabling TLS support": the
/// warnings (texts after `warning: `) say why.
pub fn load(
    settings: &Settings,
    provider: &CryptoProvider,
    warnings: &mut Vec<String>,
) -> Result<ClientCerts, Disabled> {
    let mut out = ClientCerts::default();
    let read = |path: &str| std::fs::read(path);
    // The "chain_files" parameter overrides all the legacy parameters.
    if !settings.chain_files.is_empty() {
        let files = super::policy::split_list(&settings.chain_files);
        let mut st = Loader::new(provider, &settings.chain_files, false);
        for (i, file) in files.iter().enumerate() {
            st.source.clone_from(file);
            let data = match read(file) {
                Ok(d) => d,
                Err(e) => {
                    warnings.push(format!(
                        "error opening chain file: {file}: {}",
                        strerror(&e)
                    ));
                    return Err(Disabled);
                }
            };
            st.file(&data, i + 1 == files.len(), &mut out, warnings)?;
        }
        return Ok(out);
    }
    let pairs = [
        ("RSA", &settings.cert_file, &settings.key_file),
        ("ECDSA", &settings.eccert_file, &settings.eckey_file),
    ];
    for (label, cert_file, key_file) in pairs {
        if cert_file.is_empty() {
            continue;
        }
        // When the certfile and keyfile are one and the same, load both in a single pass.
        if cert_file == key_file {
            let data = match read(cert_file) {
                Ok(d) => d,
                Err(e) => {
                    warnings.push(format!(
                        "error opening chain file: {cert_file}: {}",
                        strerror(&e)
                    ));
                    return Err(Disabled);
                }
            };
            let mut st = Loader::new(provider, cert_file, true);
            st.file(&data, true, &mut out, warnings)?;
            continue;
        }
        let pair = pair(
            provider,
            label,
            cert_file,
            read(cert_file).ok().as_deref(),
            key_file,
            read(key_file).ok().as_deref(),
            warnings,
        )?;
        out.add(pair.0, pair.1);
    }
    Ok(out)
}

/// set_cert_stuff() with two files: SSL_CTX_use_certificate_chain_file(), then
/// SSL_CTX_use_PrivateKey_file() (which refuses a key of the certificate's algorithm that
/// does not match it), then SSL_CTX_check_private_key().
fn pair(
    provider: &CryptoProvider,
    label: &str,
    cert_file: &str,
    cert_data: Option<&[u8]>,
    key_file: &str,
    key_data: Option<&[u8]>,
    warnings: &mut Vec<String>,
) -> Result<(Arc<CertifiedKey>, KeyKind), Disabled> {
    let chain: Vec<CertificateDer<'static>> = cert_data
        .map(|d| {
            sections(d)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|(kind, _)| *kind == SectionKind::Certificate)
                .map(|(_, der)| CertificateDer::from(der))
                .collect()
        })
        .unwrap_or_default();
    let leaf_kind = chain.first().and_then(|c| cert::parse(c)).map(|f| f.key);
    let Some(leaf_kind) = leaf_kind else {
        warnings.push(format!(
            "cannot get {label} certificate from file \"{cert_file}\": disabling TLS support"
        ));
        return Err(Disabled);
    };
    let key = key_data.and_then(|d| {
        sections(d)
            .into_iter()
            .filter_map(Result::ok)
            .find_map(|(kind, der)| private_key(kind, der))
    });
    let key = key.and_then(|k| provider.key_provider.load_private_key(k).ok());
    let Some(key) = key else {
        warnings.push(format!(
            "cannot get {label} private key from file \"{key_file}\": disabling TLS support"
        ));
        return Err(Disabled);
    };
    let same_alg = same_algorithm(&leaf_kind, key.algorithm());
    let ck = CertifiedKey::new(chain, key);
    if matches!(ck.keys_match(), Err(rustls::Error::InconsistentKeys(ref k)) if *k == rustls::InconsistentKeys::KeyMismatch)
    {
        if same_alg {
            warnings.push(format!(
                "cannot get {label} private key from file \"{key_file}\": disabling TLS support"
            ));
            warnings.push(format!("TLS library problem: {PAIR_MISMATCH}"));
        } else {
            warnings.push(format!(
                "{label} private key in {key_file} does not match public key in {cert_file}: \
                 disabling TLS support"
            ));
        }
        return Err(Disabled);
    }
    Ok((Arc::new(ck), leaf_kind))
}

/// Whether a key of algorithm `alg` goes in the same OpenSSL slot as a certificate with
/// this public key.
fn same_algorithm(kind: &KeyKind, alg: rustls::SignatureAlgorithm) -> bool {
    use rustls::SignatureAlgorithm as A;
    matches!(
        (kind, alg),
        (KeyKind::Rsa(_), A::RSA)
            | (KeyKind::Ec(_), A::ECDSA)
            | (KeyKind::Ed25519, A::ED25519)
            | (KeyKind::Ed448, A::ED448)
    )
}

/// The PEM sections of a file, in order; an undecodable one as `Err`.
fn sections(data: &[u8]) -> Vec<Result<(SectionKind, Vec<u8>), ()>> {
    // Bounded by the file: each item consumes at least one line.
    <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(data)
        .map(|r| r.map_err(|_| ()))
        .collect()
}

fn private_key(kind: SectionKind, der: Vec<u8>) -> Option<PrivateKeyDer<'static>> {
    Some(match kind {
        SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
        SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
        SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
        _ => return None,
    })
}

/// `%m`: strerror() of the error, without Rust's ` (os error N)`.
fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// load_pem_bio()'s states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// An unusable object or sequence: stop.
    NoGo,
    /// A library error: stop.
    Fail,
    Init,
    /// The last object was a key.
    PKey,
    /// The last object was a certificate.
    Cert,
    /// Mixed mode: the key and the first certificate seen.
    Both,
}

/// pem_load_state_t: the key, leaf and chain being put together across the files.
struct Loader<'a> {
    provider: &'a CryptoProvider,
    /// The parameter value (the whole file list), for the final warnings.
    origin: String,
    /// The file being read.
    source: String,
    /// The file of the last key.
    keysrc: String,
    key: Option<Arc<dyn rustls::sign::SigningKey>>,
    cert: Option<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    keynum: usize,
    objnum: usize,
    state: State,
    /// One file, its key anywhere (cert_file = key_file).
    mixed: bool,
}

impl<'a> Loader<'a> {
    fn new(provider: &'a CryptoProvider, origin: &str, mixed: bool) -> Loader<'a> {
        Loader {
            provider,
            origin: origin.to_owned(),
            source: origin.to_owned(),
            keysrc: String::new(),
            key: None,
            cert: None,
            chain: Vec::new(),
            keynum: 0,
            objnum: 0,
            state: State::Init,
            mixed,
        }
    }

    /// load_pem_bio(): the objects of one file; `last`: validate the final chain.
    fn file(
        &mut self,
        data: &[u8],
        last: bool,
        out: &mut ClientCerts,
        warnings: &mut Vec<String>,
    ) -> Result<(), Disabled> {
        self.objnum = 0;
        for section in sections(data) {
            self.objnum += 1;
            match section {
                Err(()) => self.state = State::Fail,
                Ok((SectionKind::Certificate, der)) => self.load_cert(der, warnings),
                Ok((kind, der)) => match private_key(kind, der) {
                    Some(key) => self.load_key(key, out, warnings),
                    None if !self.mixed => warnings.push(format!(
                        "loading {}: ignoring PEM type: {}",
                        self.source,
                        section_label(kind)
                    )),
                    None => {}
                },
            }
            if (self.mixed && self.keynum == 0 && matches!(self.state, State::PKey | State::Both))
                || (!self.mixed && self.state == State::PKey)
            {
                self.keynum = self.objnum;
                self.keysrc.clone_from(&self.source);
            }
            if matches!(self.state, State::NoGo | State::Fail) {
                break;
            }
        }
        if !last && !matches!(self.state, State::NoGo | State::Fail) {
            return Ok(());
        }
        match self.state {
            State::NoGo | State::Fail => {}
            State::Init => warnings.push(format!("No PEM data in {}", self.origin)),
            State::PKey => warnings.push(format!(
                "No certs for key at index {} in {}",
                self.keynum, self.keysrc
            )),
            State::Cert if self.mixed => {
                warnings.push(format!("No private key found in {}", self.origin));
            }
            State::Cert | State::Both => match self.use_chain(out) {
                Ok(()) => return Ok(()),
                Err(library) => {
                    warnings.push(format!(
                        "key at index {} in {} does not match next certificate",
                        self.keynum, self.keysrc
                    ));
                    warnings.push(format!("TLS library problem: {library}"));
                }
            },
        }
        warnings.push(format!(
            "error loading private keys and certificates from: {}: disabling TLS support",
            self.origin
        ));
        Err(Disabled)
    }

    /// load_cert().
    fn load_cert(&mut self, der: Vec<u8>, warnings: &mut Vec<String>) {
        if !self.mixed && self.state == State::Init {
            warnings.push(format!(
                "error loading chain from {}: key not first",
                self.source
            ));
            self.state = State::NoGo;
            return;
        }
        if cert::parse(&der).is_none() {
            warnings.push(format!(
                "error loading certificate (PEM object number {}) from {}",
                self.objnum, self.source
            ));
            self.state = State::Fail;
            return;
        }
        let der = CertificateDer::from(der);
        match self.state {
            State::PKey => {
                self.cert = Some(der);
                self.state = if self.mixed { State::Both } else { State::Cert };
            }
            State::Init => {
                self.cert = Some(der);
                self.state = State::Cert;
            }
            State::Cert | State::Both => self.chain.push(der),
            State::NoGo | State::Fail => {}
        }
    }

    /// load_pkey().
    fn load_key(
        &mut self,
        key: PrivateKeyDer<'static>,
        out: &mut ClientCerts,
        warnings: &mut Vec<String>,
    ) {
        match self.state {
            State::Cert | State::Init => {
                // The key of a "next" chain first completes the previous one.
                if self.state == State::Cert
                    && !self.mixed
                    && let Err(library) = self.use_chain(out)
                {
                    warnings.push(format!(
                        "error loading certificate chain: key at index {} in {} does not \
                         match the certificate",
                        self.keynum, self.keysrc
                    ));
                    warnings.push(format!("TLS library problem: {library}"));
                    self.state = State::Fail;
                    return;
                }
                let Ok(key) = self.provider.key_provider.load_private_key(key) else {
                    warnings.push(format!(
                        "error loading private key (PEM object number {}) from {}",
                        self.objnum, self.source
                    ));
                    self.state = State::Fail;
                    return;
                };
                self.key = Some(key);
                self.state = if self.state == State::Init || !self.mixed {
                    State::PKey
                } else {
                    State::Both
                };
            }
            State::PKey | State::Both if self.mixed => warnings.push(format!(
                "ignoring 2nd key at index {} in {} after 1st at {}",
                self.objnum, self.source, self.keynum
            )),
            State::PKey | State::Both => {
                warnings.push(format!(
                    "error loading certificate chain: key at index {} in {} not followed by \
                     a certificate",
                    self.keynum, self.keysrc
                ));
                self.state = State::NoGo;
            }
            State::NoGo | State::Fail => {}
        }
    }

    /// use_chain(): the key, leaf and chain become one certified key; `Err` with
    /// OpenSSL's error when the key does not match the leaf or its algorithm is taken.
    fn use_chain(&mut self, out: &mut ClientCerts) -> Result<(), &'static str> {
        let (Some(key), Some(leaf)) = (self.key.take(), self.cert.take()) else {
            return Err(MIXED_MISMATCH);
        };
        let kind = cert::parse(&leaf).map(|f| f.key).unwrap_or_default();
        let mut certs = vec![leaf];
        certs.append(&mut self.chain);
        let ck = CertifiedKey::new(certs, key);
        if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
            ck.keys_match()
        {
            return Err(MIXED_MISMATCH);
        }
        if out.has(ck.key.algorithm()) {
            return Err(NOT_REPLACING);
        }
        out.add(Arc::new(ck), kind);
        Ok(())
    }
}

fn section_label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        SectionKind::EchConfigList => "ECHCONFIG",
        _ => "UNKNOWN",
    }
}

/// Presents the loaded certificates for one handshake and records which one the server
/// got, for the summary line's `client-signature`.
#[derive(Debug)]
pub(crate) struct Presenter {
    pub certs: Arc<ClientCerts>,
    /// The key kind and the scheme chosen for it, once a certificate was sent.
    pub used: std::sync::Mutex<Option<(KeyKind, SignatureScheme)>>,
}

impl ResolvesClientCert for Presenter {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // As OpenSSL: the first certificate whose key can sign with a scheme the server
        // accepts; the CA hints are not used (tls_client.c: "OpenSSL does however not do
        // this").
        for (key, kind) in &self.certs.keys {
            if let Some(signer) = key.key.choose_scheme(sigschemes) {
                if let Ok(mut used) = self.used.lock() {
                    *used = Some((kind.clone(), signer.scheme()));
                }
                return Some(key.clone());
            }
        }
        None
    }

    fn has_certs(&self) -> bool {
        !self.certs.is_empty()
    }
}

#[cfg(test)]
#[path = "certkey_tests.rs"]
mod tests;
