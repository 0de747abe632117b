//! smtp(8)'s TLS (Postfix TLS_README, "SMTP client-side"; postconf(5) smtp_tls_*): which
//! level applies to a next hop, whether to send STARTTLS, the handshake, the certificate
//! checks of each level, and the texts Postfix logs and defers with.
//!
//! - [`settings`]: the smtp_tls_* / lmtp_tls_* parameters, read once per transport.
//! - [`policy`]: the level for one next hop (smtp_tls_security_level,
//!   smtp_tls_policy_maps), with its protocols, SNI and match strategy.
//! - `per_site`: the obsolete smtp_tls_per_site, used when smtp_tls_policy_maps is empty.
//! - [`protocols`]: Postfix's protocol lists on rustls's TLSv1.2 / TLSv1.3.
//! - [`trust`]: smtp_tls_CAfile / smtp_tls_CApath and trust anchor files.
//! - [`certkey`]: the client's own certificates (smtp_tls_cert_file and friends).
//! - [`verify`]: the certificate classification and Postfix's name matching.
//! - [`cert`]: the certificate fields Postfix logs and matches.
//! - `handshake`: [`TlsClient::starttls`].
//!
//! How a session uses this (smtp_proto.c, smtp_helo() and smtp_start_tls()):
//! 1. Once per transport: [`Settings::from_config`], then [`TlsClient::new`].
//! 2. Per address tried: [`TlsClient::policy`]. An error skips the address (warning
//!    `TLS policy lookup for DEST/HOST: client TLS configuration problem`); when all are
//!    skipped the mail defers with `4.7.5 client TLS configuration problem`.
//! 3. After EHLO: [`TlsClient::decide`] with whether EHLO offered STARTTLS: send STARTTLS,
//!    go on in plaintext, or fail with Postfix's text ([`Decision`]).
//! 4. STARTTLS answered 2xx: [`TlsClient::starttls`] on the same stream, then EHLO again
//!    over TLS (and never STARTTLS twice). Not 2xx: [`refused`] at levels that require
//!    TLS, else plaintext.
//!
//! # Security
//! The server's handshake and certificate are untrusted (see [`verify`], [`cert`]); the
//! configuration and table are trusted. At a level that requires TLS no path leads to
//! plaintext: every branch of [`TlsClient::decide`] for such a level sends STARTTLS or fails.

pub mod cert;
pub mod certkey;
mod handshake;
mod per_site;
pub mod policy;
pub mod protocols;
pub mod settings;
pub mod trust;
pub mod verify;

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use tern_maps::{Map, MapError, OpenFlags};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

/// The names Postfix logs for a negotiated session, shared with smtpd's TLS.
pub use handshake::{digest_name, group_name, openssl_cipher, signature_name};
pub use policy::{Destination, Level, Policy, PolicyError, Table};
pub use settings::{LogLevel, Settings, SettingsError};

/// The client's TLS engine for one transport: settings, the policy table, trust anchors.
pub struct TlsClient {
    settings: Settings,
    /// smtp_tls_policy_maps, or else smtp_tls_per_site (never both).
    table: Option<Box<dyn Map>>,
    /// Whether `table` is smtp_tls_per_site.
    per_site: bool,
    /// None when the CA data or the client certificates could not be loaded (no TLS
    /// engine, as in Postfix).
    roots: Option<Arc<RootCertStore>>,
    /// The client certificates to present when asked; None when none are configured.
    certs: Option<Arc<certkey::ClientCerts>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("settings", &self.settings)
            .field("engine", &self.roots.is_some())
            .finish_non_exhaustive()
    }
}

/// Who the session is talking to.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    /// The next-hop domain without `[]` or port (`example.com`, or `mx.example.com` for
    /// `[mx.example.com]:587`): `nexthop` and `dot-nexthop` matching, SNI `nexthop`.
    pub nexthop: &'a str,
    /// The server's name (the MX target or the host): `hostname` matching and SNI.
    pub host: &'a str,
    /// `host[addr]:port`, as Postfix names the server in TLS messages.
    pub namaddr: &'a str,
}

/// A line to log, in the order Postfix logs it; the text follows `info: ` style
/// (no severity prefix) or `warning: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub warning: bool,
    pub text: String,
}

impl LogLine {
    pub fn info(text: String) -> LogLine {
        LogLine {
            warning: false,
            text,
        }
    }

    pub fn warning(text: String) -> LogLine {
        LogLine {
            warning: true,
            text,
        }
    }
}

/// The peer's classification in the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// No certificate.
    Anonymous,
    /// A certificate whose chain does not reach a trust anchor.
    Untrusted,
    /// A trusted chain, name not checked (may/encrypt) or not matched.
    Trusted,
    /// Trusted and matched (verify, secure) or fingerprint matched.
    Verified,
}

impl PeerStatus {
    pub fn word(self) -> &'static str {
        match self {
            PeerStatus::Anonymous => "Anonymous",
            PeerStatus::Untrusted => "Untrusted",
            PeerStatus::Trusted => "Trusted",
            PeerStatus::Verified => "Verified",
        }
    }
}

/// What a completed handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub level: Level,
    pub status: PeerStatus,
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: String,
    /// OpenSSL's cipher name (`TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES256-GCM-SHA384`).
    pub cipher: String,
    /// Cipher strength in bits (both numbers of `(256/256 bits)`).
    pub cipher_bits: u32,
    /// TLS 1.3: `X25519`, `ECDHE (prime256v1)`.
    pub key_exchange: Option<String>,
    /// TLS 1.3: `RSA-PSS (2048 bits)`, `ECDSA (prime256v1)`, `ED25519`.
    pub server_signature: Option<String>,
    /// TLS 1.3: `SHA256`.
    pub server_digest: Option<String>,
    /// TLS 1.3, when the server asked for and got a client certificate: its key, in the
    /// same form as `server_signature`.
    pub client_signature: Option<String>,
    /// TLS 1.3: the digest of the client's signature.
    pub client_digest: Option<String>,
    /// The certificate's subject and issuer CommonNames (empty when none).
    pub peer_cn: String,
    pub issuer_cn: String,
    /// The SNI name sent, if any.
    pub sni: Option<String>,
    /// Lines to log now, in order (verification details, the summary at
    /// smtp_tls_loglevel >= 1).
    pub log: Vec<LogLine>,
}

impl TlsInfo {
    /// tls_log_summary()'s line: `Trusted TLS connection established to
    /// mx.example.com[192.0.2.1]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256
    /// bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest
    /// SHA256`, then ` client-signature ECDSA (prime256v1) client-digest SHA256` when a
    /// client certificate was sent.
    pub fn summary(&self, namaddr: &str) -> String {
        let mut s = format!(
            "{} TLS connection established to {namaddr}: {} with cipher {} ({}/{} bits)",
            self.status.word(),
            self.protocol,
            self.cipher,
            self.cipher_bits,
            self.cipher_bits
        );
        if let Some(k) = &self.key_exchange {
            s.push_str(" key-exchange ");
            s.push_str(k);
        }
        if let Some(sig) = &self.server_signature {
            s.push_str(" server-signature ");
            s.push_str(sig);
            if let Some(d) = &self.server_digest {
                s.push_str(" server-digest ");
                s.push_str(d);
            }
        }
        if let Some(sig) = &self.client_signature {
            s.push_str(" client-signature ");
            s.push_str(sig);
            if let Some(d) = &self.client_digest {
                s.push_str(" client-digest ");
                s.push_str(d);
            }
        }
        s
    }
}

/// Why STARTTLS did not give a usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No TLS session (bad protocol list, handshake error, timeout, lost connection): the
    /// stream is in an unknown state and must not be used again (Postfix's
    /// DONT_USE_FORBIDDEN_SESSION: no QUIT).
    Handshake,
    /// The handshake completed but the certificate did not verify or match at a level
    /// that requires it. Postfix sends QUIT over the TLS session here; the TLS stream is
    /// dropped by [`TlsClient::starttls`], so the session just closes.
    NotVerified,
}

/// A STARTTLS failure: what to defer with, and what may happen next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct TlsFailure {
    pub kind: FailureKind,
    /// The enhanced status (`4.7.5`), by the local MTA (no remote reply).
    pub dsn: &'static str,
    /// `Cannot start TLS: handshake failure` or `Server certificate not verified`.
    pub text: String,
    /// Postfix's RETRY_AS_PLAINTEXT is allowed by the level (`may`, handshake failure).
    /// The caller must also check the rest of PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE
    /// (see the crate report / [`TlsClient::starttls`]).
    pub may_retry_plaintext: bool,
    /// Whether the failure counts against the destination (SMTP_THROTTLE); `may`
    /// handshake failures do not.
    pub throttle: bool,
    /// Lines to log, in order, before the deferral.
    pub log: Vec<LogLine>,
}

/// What to do after EHLO (smtp_proto.c, smtp_helo()).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send STARTTLS.
    StartTls,
    /// Go on without TLS; `note` is `Host offered STARTTLS: [HOST]` when
    /// smtp_tls_note_starttls_offer asks for it.
    Plaintext { note: Option<String> },
    /// Give up on this server: a site failure with this status and text (by the local
    /// MTA), e.g. `4.7.4 TLS is required, but was not offered by host HOST[ADDR]`.
    Fail { dsn: &'static str, text: String },
}

/// The deferral when the server answers STARTTLS with a non-2xx reply at a level that
/// requires TLS (a site failure with the server's own code and status):
/// `TLS is required, but host mx.example.com[192.0.2.1] refused to start TLS: 454 4.7.0
/// TLS not available` (`reply` is the full reply with line breaks as spaces).
pub fn refused(namaddr: &str, reply: &str) -> String {
    format!("TLS is required, but host {namaddr} refused to start TLS: {reply}")
}

/// The deferral at the greeting when the policy is invalid (smtp_helo(): `4.7.0`).
pub const CONFIG_PROBLEM: (&str, &str) = ("4.7.0", "client TLS configuration problem");

impl TlsClient {
    /// Opens the policy table (smtp_tls_policy_maps, else smtp_tls_per_site) and loads
    /// the CA data. A table that cannot be opened is fatal, as in Postfix
    /// (maps_create()). CA data that cannot be loaded is not: the client runs without
    /// TLS, with the info line in `notes`.
    pub fn new(settings: Settings, notes: &mut Vec<LogLine>) -> Result<TlsClient, MapError> {
        // smtp_tls_policy.c smtp_tls_list_init().
        let per_site = settings.policy_maps.is_empty() && !settings.per_site.is_empty();
        let table = if per_site {
            Some(tern_maps::open(&settings.per_site, &OpenFlags::default())?)
        } else if settings.policy_maps.is_empty() {
            None
        } else {
            if !settings.per_site.is_empty() {
                notes.push(LogLine::warning(format!(
                    "{} ignored when {} is not empty.",
                    settings.param("tls_per_site"),
                    settings.param("tls_policy_maps")
                )));
            }
            Some(tern_maps::open(
                &settings.policy_maps,
                &OpenFlags::default(),
            )?)
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        // tls_client_init(): the CA data, then the client's own certificates; a failure
        // of either leaves the client without a TLS engine.
        let mut roots = match trust::load_ca(
            &settings.ca_file,
            &settings.ca_path,
            settings.append_default_ca,
        ) {
            Ok(store) => Some(Arc::new(store)),
            Err(e) => {
                notes.push(LogLine::info(e.to_string()));
                None
            }
        };
        let mut certs = None;
        if roots.is_some() {
            let mut warnings = Vec::new();
            match certkey::load(&settings, &provider, &mut warnings) {
                Ok(c) if c.is_empty() => {}
                Ok(c) => certs = Some(Arc::new(c)),
                Err(certkey::Disabled) => roots = None,
            }
            notes.extend(warnings.into_iter().map(LogLine::warning));
        }
        Ok(TlsClient {
            settings,
            table,
            per_site,
            roots,
            certs,
            provider,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether the TLS engine is up (Postfix's smtp_tls_ctx != 0).
    pub fn engine_available(&self) -> bool {
        self.roots.is_some()
    }

    /// The policy for a next hop and server; warnings (after `warning: `) go to
    /// `warnings`.
    pub fn policy(
        &self,
        dest: Destination<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Policy, PolicyError> {
        let table = match self.table.as_deref() {
            None => Table::None,
            Some(t) if self.per_site => Table::PerSite(t),
            Some(t) => Table::PolicyMaps(t),
        };
        policy::lookup(&self.settings, table, dest, warnings)
    }

    /// After EHLO: STARTTLS or not (`offered`: the EHLO reply listed STARTTLS).
    pub fn decide(&self, policy: &Policy, offered: bool, host: &str, namaddr: &str) -> Decision {
        if offered && self.settings.note_starttls_offer && policy.level == Level::None {
            return Decision::Plaintext {
                note: Some(format!("Host offered STARTTLS: [{host}]")),
            };
        }
        if offered && self.engine_available() && policy.level >= Level::May {
            return Decision::StartTls;
        }
        if !policy.level.required() {
            return Decision::Plaintext { note: None };
        }
        if !offered {
            return Decision::Fail {
                dsn: "4.7.4",
                text: format!("TLS is required, but was not offered by host {namaddr}"),
            };
        }
        Decision::Fail {
            dsn: "4.7.5",
            text: "TLS is required, but our TLS engine is unavailable".to_owned(),
        }
    }

    /// The handshake, right after the server's 2xx reply to STARTTLS. On success the
    /// caller sends EHLO again over the returned stream and forgets the first EHLO's
    /// extensions. On failure see [`TlsFailure`]: defer with `dsn`/`text` unless the
    /// plaintext retry applies; never reuse the stream after [`FailureKind::Handshake`].
    pub async fn starttls<S>(
        &self,
        stream: S,
        policy: &Policy,
        peer: &Peer<'_>,
    ) -> Result<(TlsStream<S>, TlsInfo), TlsFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(roots) = &self.roots else {
            return Err(TlsFailure {
                kind: FailureKind::Handshake,
                dsn: "4.7.5",
                text: "Cannot start TLS: handshake failure".to_owned(),
                may_retry_plaintext: policy.level == Level::May,
                throttle: policy.level != Level::May,
                log: Vec::new(),
            });
        };
        handshake::run(
            &self.settings,
            &self.provider,
            roots,
            self.certs.as_ref(),
            stream,
            policy,
            peer,
        )
        .await
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
