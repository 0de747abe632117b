//! smtpd's TLS (postconf(5) smtpd_tls_*; Postfix TLS_README, "Server-side TLS"): the
//! parameters of one service, the rustls server engine built from them at each settings
//! load (so `postfix reload` picks up new certificates and keys), the handshake of
//! STARTTLS and of wrapper mode, and the facts Postfix logs and writes into Received:.
//!
//! - Levels: smtpd_tls_security_level `none`, `may` (STARTTLS offered), `encrypt`
//!   (required: [`tern_smtp::session::SessionConfig::tls_required`]); the stronger
//!   client-side levels are taken as `encrypt` with Postfix's warning. When the level is
//!   empty the legacy smtpd_use_tls / smtpd_enforce_tls decide (smtpd.c). Wrapper mode
//!   (smtpd_tls_wrappermode) implies `encrypt`, and `encrypt` implies smtpd_tls_auth_only.
//! - Certificates: smtpd_tls_chain_files, or smtpd_tls_cert_file / smtpd_tls_key_file and
//!   smtpd_tls_eccert_file / smtpd_tls_eckey_file, loaded by the client's loader
//!   ([`tern_client::tls::certkey`]) with Postfix's warnings. A load failure disables the
//!   engine: STARTTLS is still offered (as Postfix does) and answered `454 4.7.0 TLS not
//!   available due to local problem`.
//! - Protocols: smtpd_tls_protocols, or smtpd_tls_mandatory_protocols at `encrypt`; rustls
//!   speaks only TLSv1.2 and TLSv1.3, so older versions in a list are ignored.
//! - Client certificates (smtpd_tls_ask_ccert): any certificate is accepted, as Postfix's
//!   verify callback accepts it (the signature over the handshake still proves the key);
//!   it is "Trusted" when it chains to smtpd_tls_CAfile / smtpd_tls_CApath. Its
//!   fingerprints (smtpd_tls_fingerprint_digest) feed permit_tls_clientcerts
//!   (relay_clientcerts) and check_ccert_access.
//! - Resumption: rustls session tickets and a session-id cache, off when
//!   smtpd_tls_session_cache_timeout is 0.
//!
//! # Security
//! The client's handshake and certificate are untrusted; rustls parses them, the
//! certificate fields are read by the bounds-checked [`tern_client::tls::cert`] reader, and
//! the whole handshake is bounded by smtpd_starttls_timeout. The files are trusted
//! configuration; keys go to the crypto provider and are never logged.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ProtocolVersion, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use tern_client::tls::cert::{self, KeyKind};
use tern_client::tls::{LogLevel, certkey, protocols};
use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_maps::Map;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

/// Why the TLS parameters cannot be used at all (Postfix's fatal errors).
#[derive(Debug, thiserror::Error)]
pub enum TlsSettingsError {
    /// smtpd.c: `Invalid TLS level "X"`.
    #[error("Invalid TLS level \"{0}\"")]
    Level(String),
    #[error("{0}")]
    Value(String),
}

/// One service's TLS parameters and engine.
pub struct SmtpdTls {
    /// STARTTLS is offered (smtpd_tls_security_level may or encrypt).
    pub use_tls: bool,
    /// TLS is required before mail (encrypt, or wrapper mode).
    pub enforce: bool,
    /// smtpd_tls_auth_only (or implied by `encrypt`).
    pub auth_only: bool,
    /// smtpd_tls_wrappermode: TLS from the first byte (submissions, port 465).
    pub wrappermode: bool,
    /// smtpd_tls_ask_ccert.
    pub ask_ccert: bool,
    /// smtpd_tls_received_header.
    pub received_header: bool,
    /// smtpd_tls_loglevel.
    pub loglevel: LogLevel,
    /// smtpd_starttls_timeout: the limit of the whole handshake.
    pub timeout: Duration,
    /// None when TLS is off or the engine could not be built.
    pub engine: Option<Arc<Engine>>,
    /// relay_clientcerts: its tables, opened at load.
    pub relay_clientcerts: Vec<Arc<dyn Map>>,
    /// Warnings of this load, logged once by the first session.
    pub warnings: Vec<String>,
    warned: AtomicBool,
}

impl std::fmt::Debug for SmtpdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpdTls")
            .field("use_tls", &self.use_tls)
            .field("enforce", &self.enforce)
            .field("wrappermode", &self.wrappermode)
            .field("engine", &self.engine.is_some())
            .finish_non_exhaustive()
    }
}

/// The rustls server engine of one settings load.
pub struct Engine {
    config: Arc<rustls::ServerConfig>,
    keys: Vec<(Arc<CertifiedKey>, KeyKind)>,
    provider: Arc<CryptoProvider>,
    /// Verifies client certificates against smtpd_tls_CAfile / CApath ("Trusted").
    trust: Option<Arc<dyn ClientCertVerifier>>,
}

/// What a completed handshake established (Postfix's TLS_SESS_STATE, the parts smtpd
/// uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Established {
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: String,
    pub cipher: String,
    pub bits: u32,
    pub kex: Option<String>,
    pub server_signature: Option<String>,
    pub server_digest: Option<String>,
    pub client_signature: Option<String>,
    pub client_digest: Option<String>,
    pub peer: Option<PeerCert>,
    pub reused: bool,
}

/// The client's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCert {
    pub cn: String,
    pub issuer_cn: String,
    /// The certificate's fingerprint, `AA:BB:...` (smtpd_tls_fingerprint_digest).
    pub cert_fprint: String,
    /// The fingerprint of its SubjectPublicKeyInfo.
    pub pkey_fprint: String,
    /// It chains to smtpd_tls_CAfile / smtpd_tls_CApath.
    pub trusted: bool,
}

/// Why a handshake failed, as Postfix's `SSL_accept error from NAME[ADDR]: ...` says.
#[derive(Debug)]
pub enum HandshakeError {
    /// OpenSSL's error queue had an entry: `-1`, then `warning: TLS library problem:`.
    Library(String),
    /// errno: `Connection timed out`, `Connection reset by peer`.
    Errno(String),
    /// The client closed the connection.
    Lost,
}

impl HandshakeError {
    /// The text after `SSL_accept error from NAME[ADDR]: `.
    pub fn accept_text(&self) -> &str {
        match self {
            HandshakeError::Library(_) => "-1",
            HandshakeError::Errno(e) => e,
            HandshakeError::Lost => "lost connection",
        }
    }
}

impl SmtpdTls {
    /// TLS off (tests and services without TLS parameters).
    pub fn off() -> SmtpdTls {
        SmtpdTls {
            use_tls: false,
            enforce: false,
            auth_only: false,
            wrappermode: false,
            ask_ccert: false,
            received_header: false,
            loglevel: LogLevel::default(),
            timeout: Duration::from_mins(5),
            engine: None,
            relay_clientcerts: Vec::new(),
            warnings: Vec::new(),
            warned: AtomicBool::new(false),
        }
    }

    /// Reads one service's parameters and builds the engine when TLS is on.
    pub fn from_config(
        config: &Config,
        service: Option<&Service>,
    ) -> Result<SmtpdTls, TlsSettingsError> {
        let get = |name: &str| -> Result<String, TlsSettingsError> {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            config
                .expand(&raw, service)
                .map(|e| e.text.trim().to_owned())
                .map_err(|e| TlsSettingsError::Value(e.to_string()))
        };
        let boolean = |name: &str| -> Result<bool, TlsSettingsError> {
            let v = get(name)?;
            match v.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(true),
                "no" | "false" | "" => Ok(false),
                _ => Err(TlsSettingsError::Value(format!(
                    "parameter {name}: bad boolean value: {v}"
                ))),
            }
        };
        let mut out = SmtpdTls::off();
        // The file and protocol parameters have the same names as the client's, with
        // the smtpd_ prefix: the client's reader takes them.
        let files = tern_client::tls::Settings::from_config(config, service, "smtpd")
            .map_err(|e| TlsSettingsError::Value(e.to_string()))?;
        out.wrappermode = boolean("smtpd_tls_wrappermode")?;
        let (mut use_tls, mut enforce) = (boolean("smtpd_use_tls")?, boolean("smtpd_enforce_tls")?);
        let level = get("smtpd_tls_security_level")?;
        // smtpd.c: the level decides unless in wrapper mode.
        if !out.wrappermode && !level.is_empty() {
            match level.to_ascii_lowercase().as_str() {
                "none" => (use_tls, enforce) = (false, false),
                "may" => (use_tls, enforce) = (true, false),
                "encrypt" => (use_tls, enforce) = (true, true),
                "verify" | "secure" | "fingerprint" => {
                    out.warnings.push(format!(
                        "smtpd_tls_security_level: unsupported TLS level \"{level}\", using \"encrypt\""
                    ));
                    (use_tls, enforce) = (true, true);
                }
                _ => return Err(TlsSettingsError::Level(level)),
            }
        }
        out.enforce = out.wrappermode || enforce;
        out.auth_only = boolean("smtpd_tls_auth_only")? || out.enforce;
        out.use_tls = use_tls || out.enforce;
        out.ask_ccert = boolean("smtpd_tls_ask_ccert")?;
        out.received_header = boolean("smtpd_tls_received_header")?;
        out.loglevel = files.loglevel;
        out.timeout = files.starttls_timeout;
        let relay = get("relay_clientcerts")?;
        for spec in tern_config::list::split(&relay).unwrap_or_default() {
            let table = crate::recipients::open_table(&spec, &[], &crate::relay::error);
            out.relay_clientcerts.push(Arc::from(table));
        }
        if out.use_tls {
            let cache = get("smtpd_tls_session_cache_timeout")?;
            let cache_on = tern_config::text::time_seconds(&cache, 1).is_none_or(|t| t > 0);
            out.engine = Engine::new(
                &files,
                out.enforce,
                out.ask_ccert,
                cache_on,
                &mut out.warnings,
            )
            .map(Arc::new);
        }
        Ok(out)
    }

    /// Logs this load's warnings, once.
    /// After `postfix reload`: when this load wants TLS but could not build it and the
    /// running settings have an engine, a copy that keeps the running engine. The daemon
    /// reloads as mail_owner, and a key file only root may read (Let's Encrypt's
    /// privkey.pem is 0600) loads at start (as root) but not at a reload; TLS must not
    /// vanish then. The warning says what happened and that a restart reads the files.
    pub fn keeping_engine_of(&self, running: &SmtpdTls) -> Option<SmtpdTls> {
        if !self.use_tls || self.engine.is_some() || running.engine.is_none() {
            return None;
        }
        let mut warnings = self.warnings.clone();
        warnings.push(
            "TLS certificate or key could not be read at reload: keeping the ones loaded \
             before (files that only root may read are loaded at start: stop and start \
             to replace them)"
                .to_owned(),
        );
        Some(SmtpdTls {
            use_tls: self.use_tls,
            enforce: self.enforce,
            auth_only: self.auth_only,
            wrappermode: self.wrappermode,
            ask_ccert: self.ask_ccert,
            received_header: self.received_header,
            loglevel: self.loglevel,
            timeout: self.timeout,
            engine: running.engine.clone(),
            relay_clientcerts: self.relay_clientcerts.clone(),
            warnings,
            warned: AtomicBool::new(false),
        })
    }

    pub fn log_warnings(&self, logger: &tern_maillog::Logger, ident: &tern_maillog::Ident) {
        if self.warnings.is_empty() || self.warned.swap(true, Ordering::Relaxed) {
            return;
        }
        for w in &self.warnings {
            logger.log(ident, &tern_maillog::Line::warning(w.clone()));
        }
    }
}

impl Engine {
    /// tls_server_init(): None (with warnings) when TLS cannot be offered.
    fn new(
        files: &tern_client::tls::Settings,
        enforce: bool,
        ask_ccert: bool,
        cache: bool,
        warnings: &mut Vec<String>,
    ) -> Option<Engine> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (list, name) = if enforce {
            (&files.mandatory_protocols, "smtpd_tls_mandatory_protocols")
        } else {
            (&files.protocols, "smtpd_tls_protocols")
        };
        let protos = match protocols::parse(list) {
            Ok(p) => p,
            Err(protocols::ProtocolError::Invalid(_)) => {
                warnings.push(format!(
                    "Invalid TLS protocol list \"{list}\": disabling TLS support"
                ));
                return None;
            }
            Err(protocols::ProtocolError::NoneAvailable(_)) => {
                // XXX: OpenSSL would refuse each handshake; rustls has nothing older than
                // TLSv1.2 to offer, so the engine is not built.
                warnings.push(format!(
                    "{name}: \"{list}\" allows no protocol this server implements (TLSv1.2, TLSv1.3): disabling TLS support"
                ));
                return None;
            }
        };
        let have_cert = [&files.chain_files, &files.cert_file, &files.eccert_file]
            .iter()
            .any(|f| !f.is_empty() && f.as_str() != "none");
        if !have_cert {
            warnings.push("No server certs available. TLS won't be enabled".to_owned());
            return None;
        }
        let certs = match certkey::load(files, &provider, warnings) {
            Ok(c) if !c.is_empty() => c,
            _ => {
                warnings.push("disabling TLS support".to_owned());
                return None;
            }
        };
        let keys: Vec<_> = certs.certified_keys().cloned().collect();
        let roots = match tern_client::tls::trust::load_ca(&files.ca_file, &files.ca_path, false) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("cannot load Certification Authority data, {}", e.0));
                rustls::RootCertStore::empty()
            }
        };
        let trust = if roots.is_empty() {
            None
        } else {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
                .build()
                .ok()
        };
        let verifier: Arc<dyn ClientCertVerifier> = if ask_ccert {
            Arc::new(AskCert {
                provider: provider.clone(),
                hints: roots.subjects(),
            })
        } else {
            WebPkiClientVerifier::no_client_auth()
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&protos.versions());
        let mut config = match builder {
            Ok(b) => b
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(Arc::new(Resolver { keys: keys.clone() })),
            Err(e) => {
                warnings.push(format!("TLS library problem: {e}"));
                return None;
            }
        };
        // Postfix's server uses the session cache and RFC 5077 tickets unless
        // smtpd_tls_session_cache_timeout is 0.
        if cache {
            config.session_storage = rustls::server::ServerSessionMemoryCache::new(10_000);
            match rustls::crypto::aws_lc_rs::Ticketer::new() {
                Ok(t) => config.ticketer = t,
                Err(e) => warnings.push(format!("session tickets disabled: {e}")),
            }
        } else {
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        config.ignore_client_order = false;
        Some(Engine {
            config: Arc::new(config),
            keys,
            provider,
            trust,
        })
    }

    /// The handshake on `stream`, bounded by `limit` (smtpd_starttls_timeout).
    pub async fn accept(
        &self,
        stream: TcpStream,
        limit: Duration,
    ) -> Result<(TlsStream<TcpStream>, Established), HandshakeError> {
        let config = Arc::clone(&self.config);
        let run = async move {
            let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
            let schemes = start.client_hello().signature_schemes().to_vec();
            let tls = start.into_stream(config).await?;
            Ok::<_, std::io::Error>((tls, schemes))
        };
        let (tls, schemes) = match tokio::time::timeout(limit, run).await {
            Err(_) => return Err(HandshakeError::Errno("Connection timed out".to_owned())),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(done)) => done,
        };
        let est = self.describe(tls.get_ref().1, &schemes);
        Ok((tls, est))
    }

    fn describe(
        &self,
        conn: &rustls::ServerConnection,
        schemes: &[SignatureScheme],
    ) -> Established {
        let protocol = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
        let (cipher, bits) =
            suite.map_or(("unknown".to_owned(), 0), tern_client::tls::openssl_cipher);
        let mut est = Established {
            protocol: protocol.to_owned(),
            cipher,
            bits,
            reused: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            ..Established::default()
        };
        let chosen = Resolver::pick(&self.keys, schemes);
        if protocol == "TLSv1.3" {
            // tls_get_signature_params(): TLS 1.3 only (as the client's summary).
            est.kex = conn
                .negotiated_key_exchange_group()
                .map(|g| tern_client::tls::group_name(g.name()));
            if let Some((key, kind)) = chosen
                && !est.reused
            {
                est.server_signature = tern_client::tls::signature_name(kind);
                est.server_digest = key
                    .key
                    .choose_scheme(schemes)
                    .and_then(|s| tern_client::tls::digest_name(s.scheme()))
                    .map(str::to_owned);
            }
        }
        if let Some(chain) = conn.peer_certificates()
            && let Some(ee) = chain.first()
        {
            est.peer = Some(self.peer_cert(ee, &chain[1..]));
            if protocol == "TLSv1.3"
                && let Some(facts) = cert::parse(ee.as_ref())
            {
                est.client_signature = tern_client::tls::signature_name(&facts.key);
                // XXX: rustls does not tell which scheme the client signed with; the
                // digest follows the key as OpenSSL clients choose it.
                est.client_digest = match &facts.key {
                    KeyKind::Ec(c) if c == "secp384r1" => Some("SHA384".to_owned()),
                    KeyKind::Ec(c) if c == "secp521r1" => Some("SHA512".to_owned()),
                    KeyKind::Ec(_) | KeyKind::Rsa(_) => Some("SHA256".to_owned()),
                    _ => None,
                };
            }
        }
        est
    }

    fn peer_cert(&self, ee: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> PeerCert {
        let facts = cert::parse(ee.as_ref()).unwrap_or_default();
        let trusted = self.trust.as_ref().is_some_and(|t| {
            t.verify_client_cert(ee, intermediates, UnixTime::now())
                .is_ok()
        });
        PeerCert {
            cn: facts.subject_cns.first().cloned().unwrap_or_default(),
            issuer_cn: facts.issuer_cn.clone(),
            cert_fprint: fingerprint(&self.provider, ee.as_ref()),
            pkey_fprint: fingerprint(&self.provider, &facts.spki),
            trusted,
        }
    }
}

impl Established {
    /// tls_log_summary(): `Anonymous TLS connection established from NAME[ADDR]: TLSv1.3
    /// with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519
    /// server-signature RSA-PSS (2048 bits) server-digest SHA256`.
    pub fn summary(&self, namaddr: &str) -> String {
        let status = match &self.peer {
            None => "Anonymous",
            Some(p) if p.trusted => "Trusted",
            Some(_) => "Untrusted",
        };
        let usage = if self.reused { "reused" } else { "established" };
        let mut s = format!(
            "{status} TLS connection {usage} from {namaddr}: {} with cipher {} ({}/{} bits)",
            self.protocol, self.cipher, self.bits, self.bits
        );
        for (label, v) in self.details() {
            let _ = write!(s, " {label} {v}");
        }
        s
    }

    /// The key-exchange / signature words, in Postfix's order.
    fn details(&self) -> Vec<(&'static str, &str)> {
        let mut v = Vec::new();
        if let Some(k) = &self.kex {
            v.push(("key-exchange", k.as_str()));
        }
        if let Some(sig) = &self.server_signature {
            v.push(("server-signature", sig.as_str()));
            if let Some(d) = &self.server_digest {
                v.push(("server-digest", d.as_str()));
            }
        }
        if let Some(sig) = &self.client_signature {
            v.push(("client-signature", sig.as_str()));
            if let Some(d) = &self.client_digest {
                v.push(("client-digest", d.as_str()));
            }
        }
        v
    }

    /// smtpd_tls_received_header: the lines smtpd.c writes after `Received: from ...`,
    /// each starting with a TAB, joined with newlines.
    pub fn received_clause(&self, ask_ccert: bool) -> String {
        let mut lines = Vec::new();
        let mut buf = format!(
            "\t(using {} with cipher {} ({}/{} bits)",
            self.protocol, self.cipher, self.bits, self.bits
        );
        let mut cont = false;
        if let Some(k) = &self.kex {
            lines.push(std::mem::replace(&mut buf, format!("\t key-exchange {k}")));
            cont = true;
        }
        if let Some(sig) = &self.server_signature {
            if cont {
                let _ = write!(buf, " server-signature {sig}");
            } else {
                lines.push(std::mem::replace(
                    &mut buf,
                    format!("\t server-signature {sig}"),
                ));
            }
            if let Some(d) = &self.server_digest {
                let _ = write!(buf, " server-digest {d}");
            }
        }
        if let Some(sig) = &self.client_signature {
            lines.push(std::mem::replace(
                &mut buf,
                format!("\t client-signature {sig}"),
            ));
            if let Some(d) = &self.client_digest {
                let _ = write!(buf, " client-digest {d}");
            }
        }
        buf.push(')');
        lines.push(buf);
        match &self.peer {
            Some(p) => lines.push(format!(
                "\t(Client CN \"{}\", Issuer \"{}\" ({}))",
                comment_sanitize(&p.cn),
                comment_sanitize(&p.issuer_cn),
                if p.trusted {
                    "verified OK"
                } else {
                    "not verified"
                }
            )),
            None if ask_ccert => lines.push("\t(Client did not present a certificate)".to_owned()),
            None => lines.push("\t(No client certificate requested)".to_owned()),
        }
        lines.join("\n")
    }
}

/// comment_sanitize(): what may stand inside a header comment (no parentheses,
/// backslashes, quotes or controls).
fn comment_sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '(' | ')' | '\\' | '"') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// `AA:BB:...`: Postfix's fingerprint form (tls_fprint.c), SHA-256.
// XXX: smtpd_tls_fingerprint_digest md5 / sha1 are not available from the crypto
// provider; Postfix 3.7's default (compatibility_level >= 3.6) is sha256.
pub fn fingerprint(provider: &CryptoProvider, data: &[u8]) -> String {
    let digest = provider
        .cipher_suites
        .iter()
        .filter_map(rustls::SupportedCipherSuite::tls13)
        .map(|s| s.common.hash_provider)
        .find(|h| h.algorithm() == rustls::crypto::hash::HashAlgorithm::SHA256)
        .map(|h| h.hash(data).as_ref().to_vec())
        .unwrap_or_default();
    let mut s = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// Maps an I/O error of the handshake to Postfix's words.
fn classify(e: &std::io::Error) -> HandshakeError {
    use std::io::ErrorKind;
    if let Some(inner) = e.get_ref()
        && let Some(r) = inner.downcast_ref::<rustls::Error>()
    {
        return HandshakeError::Library(r.to_string());
    }
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => HandshakeError::Lost,
        ErrorKind::InvalidData => HandshakeError::Library(e.to_string()),
        ErrorKind::ConnectionReset => HandshakeError::Errno("Connection reset by peer".into()),
        _ => HandshakeError::Errno(e.to_string()),
    }
}

/// The server certificate for a ClientHello: as OpenSSL, the first loaded one whose key
/// can sign with a scheme the client accepts.
#[derive(Debug)]
struct Resolver {
    keys: Vec<(Arc<CertifiedKey>, KeyKind)>,
}

impl Resolver {
    fn pick<'a>(
        keys: &'a [(Arc<CertifiedKey>, KeyKind)],
        schemes: &[SignatureScheme],
    ) -> Option<&'a (Arc<CertifiedKey>, KeyKind)> {
        keys.iter()
            .find(|(k, _)| k.key.choose_scheme(schemes).is_some())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Self::pick(&self.keys, hello.signature_schemes()).map(|(k, _)| Arc::clone(k))
    }
}

/// smtpd_tls_ask_ccert: ask for a certificate, take any (Postfix's verify callback
/// accepts every certificate and records whether it verified); the handshake signature
/// still has to prove the certificate's key.
#[derive(Debug)]
struct AskCert {
    provider: Arc<CryptoProvider>,
    /// The CA names sent in the CertificateRequest (smtpd_tls_CAfile's subjects).
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for AskCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(kex: bool, peer: Option<PeerCert>) -> Established {
        Established {
            protocol: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            bits: 256,
            kex: kex.then(|| "X25519".into()),
            server_signature: Some("ECDSA (prime256v1)".into()),
            server_digest: Some("SHA256".into()),
            peer,
            ..Established::default()
        }
    }

    #[test]
    fn summaries_and_received_clauses() {
        let peer = PeerCert {
            cn: "client.example".into(),
            issuer_cn: "Tern Test CA".into(),
            trusted: true,
            ..PeerCert::default()
        };
        let cases: &[(Established, bool, &str, &str)] = &[
            (
                est(true, None),
                false,
                "Anonymous TLS connection established from x[192.0.2.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256",
                "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256)\n\t(No client certificate requested)",
            ),
            (
                est(false, Some(peer)),
                true,
                "Trusted TLS connection established from x[192.0.2.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) server-signature ECDSA (prime256v1) server-digest SHA256",
                "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t server-signature ECDSA (prime256v1) server-digest SHA256)\n\t(Client CN \"client.example\", Issuer \"Tern Test CA\" (verified OK))",
            ),
        ];
        for (e, ask, summary, clause) in cases {
            assert_eq!(e.summary("x[192.0.2.1]"), *summary);
            assert_eq!(e.received_clause(*ask), *clause);
        }
    }

    #[test]
    fn fingerprints_are_colon_hex() {
        let p = rustls::crypto::aws_lc_rs::default_provider();
        let f = fingerprint(&p, b"");
        assert!(f.starts_with("E3:B0:C4:42:98:FC:1C:14"), "{f}");
        assert_eq!(f.len(), 32 * 3 - 1);
    }
}
