//! The client's TLS parameters, read once per transport from main.cf and the master.cf
//! service's `-o` overrides, with the `smtp_` or `lmtp_` prefix (postconf(5); the legacy
//! smtp_use_tls / smtp_enforce_tls / smtp_tls_enforce_peername apply only when
//! smtp_tls_security_level is empty, as in smtp_tls_policy.c global_tls_level()).

use std::time::Duration;

use tern_config::config::Config;
use tern_config::mastercf::Service;

use super::policy::Level;

/// The parameters the TLS code reads, with Postfix 3.7's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `smtp` or `lmtp`: the parameter prefix, used in warnings.
    pub prefix: String,
    /// smtp_tls_security_level (or the legacy parameters): the global level.
    pub level: Level,
    /// smtp_tls_policy_maps, as written (empty: none).
    pub policy_maps: String,
    /// smtp_tls_per_site (obsolete; ignored when smtp_tls_policy_maps is set).
    pub per_site: String,
    /// smtp_tls_CAfile.
    pub ca_file: String,
    /// smtp_tls_CApath.
    pub ca_path: String,
    /// tls_append_default_CA: add the system's CAs when CAfile or CApath is set.
    pub append_default_ca: bool,
    /// smtp_tls_trust_anchor_file.
    pub trust_anchor_file: String,
    /// smtp_tls_cert_file: the client certificate (and its chain; its key too when
    /// smtp_tls_key_file names the same file).
    pub cert_file: String,
    /// smtp_tls_key_file (default `$smtp_tls_cert_file`).
    pub key_file: String,
    /// smtp_tls_eccert_file.
    pub eccert_file: String,
    /// smtp_tls_eckey_file (default `$smtp_tls_eccert_file`).
    pub eckey_file: String,
    /// smtp_tls_chain_files: (key, certificate, chain) sequences; when set, the four
    /// parameters above are ignored.
    pub chain_files: String,
    /// smtp_tls_protocols (default `>=TLSv1`), used at `may`.
    pub protocols: String,
    /// smtp_tls_mandatory_protocols (default `>=TLSv1`), used at `encrypt` and above.
    pub mandatory_protocols: String,
    /// smtp_tls_verify_cert_match (default `hostname`).
    pub verify_cert_match: String,
    /// smtp_tls_secure_cert_match (default `nexthop, dot-nexthop`).
    pub secure_cert_match: String,
    /// smtp_tls_fingerprint_cert_match.
    pub fingerprint_cert_match: String,
    /// smtp_tls_fingerprint_digest (default `sha256`).
    pub fingerprint_digest: String,
    /// smtp_tls_servername (default empty: no SNI).
    pub servername: String,
    /// smtp_tls_loglevel (default 0).
    pub loglevel: LogLevel,
    /// smtp_tls_note_starttls_offer (default no): log `Host offered STARTTLS: [HOST]`
    /// when the level is `none`.
    pub note_starttls_offer: bool,
    /// smtp_starttls_timeout (default 300s): the whole handshake's limit.
    pub starttls_timeout: Duration,
    /// smtp_tls_connection_reuse (default no).
    pub conn_reuse: bool,
}

/// What smtp_tls_loglevel turns on (tls_misc.c, tls_log_mask()).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogLevel {
    /// `1` and up, or `summary`: the "TLS connection established" line.
    pub summary: bool,
    /// `untrusted`: certificate verification failures even at `may` and `encrypt`.
    pub untrusted: bool,
    /// `2` and up, or `verbose`/`peercert`/`certmatch`: details (subject and issuer).
    pub verbose: bool,
}

impl LogLevel {
    /// Parses the value (numbers 0-9 and the keywords, any case); None for an unknown word.
    pub fn parse(value: &str) -> Option<LogLevel> {
        let mut l = LogLevel::default();
        for word in super::policy::split_list(value) {
            match word.to_ascii_lowercase().as_str() {
                "0"
                | "none"
                | "cache"
                | "dane"
                | "ssl-debug"
                | "ssl-handshake-packet-dump"
                | "ssl-session-packet-dump" => {}
                "1" | "routine" | "summary" => l.summary = true,
                "2" | "debug" | "3" | "ssl-expert" | "4" | "ssl-developer" | "5" | "6" | "7"
                | "8" | "9" => {
                    l.summary = true;
                    l.verbose = true;
                }
                "untrusted" => l.untrusted = true,
                "peercert" | "certmatch" | "verbose" => l.verbose = true,
                _ => return None,
            }
        }
        Some(l)
    }
}

/// A setting Postfix would refuse to start with (`fatal:`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid tls security level: \"{0}\"")]
    Level(String),
    #[error("bad boolean configuration: {0} = {1}")]
    Bool(String, String),
    #[error("invalid {0} parameter value: \"{1}\"")]
    Value(String, String),
    #[error("{0}")]
    Expand(String),
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            prefix: "smtp".to_owned(),
            level: Level::None,
            policy_maps: String::new(),
            per_site: String::new(),
            ca_file: String::new(),
            ca_path: String::new(),
            append_default_ca: false,
            trust_anchor_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            eccert_file: String::new(),
            eckey_file: String::new(),
            chain_files: String::new(),
            protocols: ">=TLSv1".to_owned(),
            mandatory_protocols: ">=TLSv1".to_owned(),
            verify_cert_match: "hostname".to_owned(),
            secure_cert_match: "nexthop, dot-nexthop".to_owned(),
            fingerprint_cert_match: String::new(),
            fingerprint_digest: "sha256".to_owned(),
            servername: String::new(),
            loglevel: LogLevel::default(),
            note_starttls_offer: false,
            starttls_timeout: Duration::from_mins(5),
            conn_reuse: false,
        }
    }
}

impl Settings {
    /// Reads the parameters with `prefix` (`smtp` or `lmtp`) in the name space of
    /// `service` (its `-o` settings first).
    pub fn from_config(
        config: &Config,
        service: Option<&Service>,
        prefix: &str,
    ) -> Result<Settings, SettingsError> {
        let get = |name: &str| -> Result<String, SettingsError> {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            config
                .expand(&raw, service)
                .map(|e| e.text.trim().to_owned())
                .map_err(|e| SettingsError::Expand(e.to_string()))
        };
        let p = |suffix: &str| format!("{prefix}_{suffix}");
        let boolean = |name: &str| -> Result<bool, SettingsError> {
            let v = get(name)?;
            match v.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" => Ok(true),
                "no" | "false" | "0" | "" => Ok(false),
                _ => Err(SettingsError::Bool(name.to_owned(), v)),
            }
        };
        let level_text = get(&p("tls_security_level"))?;
        let level = if !level_text.is_empty() {
            Level::parse(&level_text).ok_or(SettingsError::Level(level_text))?
        } else if boolean(&p("enforce_tls"))? {
            if boolean(&p("tls_enforce_peername"))? {
                Level::Verify
            } else {
                Level::Encrypt
            }
        } else if boolean(&p("use_tls"))? {
            Level::May
        } else {
            Level::None
        };
        let loglevel_name = p("tls_loglevel");
        let loglevel_text = get(&loglevel_name)?;
        let loglevel = LogLevel::parse(&loglevel_text)
            .ok_or(SettingsError::Value(loglevel_name, loglevel_text))?;
        let timeout_name = p("starttls_timeout");
        let timeout_text = get(&timeout_name)?;
        let timeout = tern_config::text::time_seconds(&timeout_text, 1)
            .filter(|t| *t > 0)
            .ok_or(SettingsError::Value(timeout_name, timeout_text))?;
        Ok(Settings {
            prefix: prefix.to_owned(),
            level,
            policy_maps: get(&p("tls_policy_maps"))?,
            per_site: get(&p("tls_per_site"))?,
            ca_file: get(&p("tls_CAfile"))?,
            ca_path: get(&p("tls_CApath"))?,
            append_default_ca: boolean("tls_append_default_CA")?,
            trust_anchor_file: get(&p("tls_trust_anchor_file"))?,
            cert_file: get(&p("tls_cert_file"))?,
            key_file: get(&p("tls_key_file"))?,
            eccert_file: get(&p("tls_eccert_file"))?,
            eckey_file: get(&p("tls_eckey_file"))?,
            chain_files: get(&p("tls_chain_files"))?,
            protocols: get(&p("tls_protocols"))?,
            mandatory_protocols: get(&p("tls_mandatory_protocols"))?,
            verify_cert_match: get(&p("tls_verify_cert_match"))?,
            secure_cert_match: get(&p("tls_secure_cert_match"))?,
            fingerprint_cert_match: get(&p("tls_fingerprint_cert_match"))?,
            fingerprint_digest: get(&p("tls_fingerprint_digest"))?,
            servername: get(&p("tls_servername"))?,
            loglevel,
            note_starttls_offer: boolean(&p("tls_note_starttls_offer"))?,
            starttls_timeout: Duration::from_secs(timeout),
            conn_reuse: boolean(&p("tls_connection_reuse"))?,
        })
    }

    /// A parameter's full name with this transport's prefix (`smtp_tls_policy_maps`).
    pub fn param(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loglevels() {
        type Flags = Option<(bool, bool, bool)>;
        let cases: &[(&str, Flags)] = &[
            ("0", Some((false, false, false))),
            ("", Some((false, false, false))),
            ("1", Some((true, false, false))),
            ("routine", Some((true, false, false))),
            ("2", Some((true, false, true))),
            ("summary, untrusted", Some((true, true, false))),
            ("Summary", Some((true, false, false))),
            ("bogus", None),
        ];
        for (text, want) in cases {
            let got = LogLevel::parse(text).map(|l| (l.summary, l.untrusted, l.verbose));
            assert_eq!(got, *want, "{text}");
        }
    }
}
