//! main.cf and master.cf turned into what the daemon runs: the queue and log settings, and
//! one [`Listener`] per master.cf `inet` entry whose command is `smtpd`, each with its own
//! [`SmtpdSettings`] (the service's `-o name=value` overrides come first, as in Postfix's
//! master.cf: "-o name=value: override the named main.cf configuration parameter").
//!
//! Every other master.cf entry (pickup, cleanup, qmgr, the unix services, the pipe
//! transports of Debian's stock file) is recognised and left to later parts of Tern
//! without a complaint.
//!
//! cleanup's address rewriting ([`CleanupRewriter`]: canonical maps, masquerading,
//! virtual aliasing) is set up once per load, from main.cf, and shared by every
//! listener; a table that cannot be opened or a bad value ends the load with an error,
//! as it is fatal to Postfix's cleanup. A service whose receive_override_options holds
//! `no_address_mappings` gets a rewriter without the tables (cleanup's
//! CLEANUP_FLAG_MAP_OK off: trivial-rewrite's canonical form only).
//!
//! Trust: the configuration files are the administrator's; bad values end in a typed
//! error naming the parameter, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tern_config::config::Config;
use tern_config::expand::ExpandError;
use tern_config::mastercf::Service;
use tern_queue::{IdForm, QueueLayout};
use tern_rewrite::{CleanupRewriter, CleanupSettings, SetupError};
use tern_smtp::line::BareLfPolicy;
use tern_smtp::reply::DiscardSet;
use tern_smtp::session::SessionConfig;

use crate::cleanup::CleanupLog;
use crate::peername::Resolver;
use crate::relay::{PolicyError, Restrictions};

/// Why the configuration cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Expand(#[from] ExpandError),
    #[error("file {dir}/main.cf: parameter {name}: bad value: {value}")]
    BadValue {
        dir: String,
        name: String,
        value: String,
    },
    #[error("relay policy: {0}")]
    Policy(#[from] PolicyError),
    /// cleanup's address rewriting cannot be set up (a table, a class list).
    #[error("{0}")]
    Rewrite(#[from] SetupError),
    /// name_mask.c's fatal error, word for word.
    #[error("unknown receive_override_options value \"{name}\" in \"{value}\"")]
    ReceiveOverride { name: String, value: String },
    #[error("{0}")]
    Tls(#[from] crate::smtpd::tls::TlsSettingsError),
    #[error("{path}/master.cf: line {line}: bad service address: {name}")]
    Address {
        path: String,
        line: usize,
        name: String,
    },
}

/// Settings of the whole daemon.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    pub config_directory: PathBuf,
    pub queue_directory: PathBuf,
    pub data_directory: PathBuf,
    pub layout: QueueLayout,
    pub id_form: IdForm,
    pub mail_owner: String,
    pub mail_version: String,
    pub syslog_name: String,
    pub myhostname: String,
    pub maillog_file: String,
    pub maillog_file_prefixes: String,
    pub syslog_facility: String,
    /// main.cf's inet_interfaces (expanded): a reload compares it with start-up's.
    pub inet_interfaces: String,
    /// The parameters a reload cannot change (master_vars.c's watch list), expanded:
    /// `config_directory`, `queue_directory`, `inet_protocols`.
    pub watched: Vec<(&'static str, String)>,
    pub listeners: Vec<Listener>,
}

/// The parameters whose change master ignores until a restart (master_vars.c).
pub const WATCHED: [&str; 3] = ["config_directory", "queue_directory", "inet_protocols"];

/// One listening service (a master.cf `inet ... smtpd` entry).
#[derive(Debug, Clone)]
pub struct Listener {
    /// master.cf's first column, as written (`smtp`, `127.0.0.1:2525`).
    pub service: String,
    pub addrs: Vec<SocketAddr>,
    /// The maxproc column (`-` is default_process_limit); 0 means no limit.
    pub process_limit: usize,
    pub smtpd: Arc<SmtpdSettings>,
}

/// What one smtpd session needs from the configuration.
#[derive(Debug, Clone)]
pub struct SmtpdSettings {
    pub session: SessionConfig,
    pub syslog_name: String,
    /// The master.cf service name (anvil keys and the policy service's view).
    pub service_name: String,
    /// smtpd_sasl_auth_enable: the SASL server (Dovecot or the built-in table).
    pub sasl: Option<crate::sasl::SaslServer>,
    pub line_length_limit: usize,
    /// smtpd_timeout: the most one read may wait.
    pub timeout: Duration,
    /// smtpd_error_sleep_time: the delay of replies past smtpd_soft_error_limit.
    pub error_sleep: Duration,
    pub mail_name: String,
    pub restrictions: Arc<Restrictions>,
    /// cleanup's header settings.
    pub cleanup: tern_message::cleanup::Settings,
    /// remote_header_rewrite_domain (empty: remote clients' headers are left alone).
    pub remote_header_rewrite_domain: String,
    /// queue_minfree: the queue space (bytes) at or below which MAIL is refused.
    pub queue_minfree: u64,
    /// smtpd_peername_lookup: look up and verify the client's hostname.
    pub peername_lookup: bool,
    /// The client-name resolver, one for all services of a configuration.
    pub resolver: Arc<Resolver>,
    /// receive_override_options of this service.
    pub receive_override: ReceiveOverride,
    /// content_filter of this service (`transport:nexthop`; empty: none): every message
    /// it receives is sent there by the queue manager (smtpd.c sends it to cleanup first,
    /// so a FILTER action of the access tables replaces it).
    pub content_filter: String,
    /// header_checks and body_checks (none with receive_override_options
    /// no_header_body_checks).
    pub content_checks: Option<Arc<crate::content_checks::ContentChecks>>,
    /// smtpd_reject_footer and smtpd_reject_footer_maps.
    pub reject_footer: Arc<crate::reject_footer::RejectFooter>,
    /// cleanup's address rewriting for this service's mail.
    pub rewriter: Arc<CleanupRewriter>,
    /// Where the rewriter's warnings go (attached by the first session).
    pub cleanup_log: Arc<CleanupLog>,
    /// anvil(8)'s limits of this service (smtpd_client_*_limit).
    pub anvil: Arc<crate::anvil::Limits>,
    /// smtpd_tls_*: STARTTLS, wrapper mode, and the TLS engine of this load (rebuilt at
    /// each reload, so new certificates take effect then).
    pub tls: Arc<crate::smtpd::tls::SmtpdTls>,
}

/// receive_override_options (postconf(5)): what smtpd asks cleanup (and its own recipient
/// checks) to skip, for example before a content filter that gets the mail again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveOverride {
    /// Skip reject_unlisted_recipient (read by [`crate::relay`] itself).
    pub no_unknown_recipient_checks: bool,
    /// No canonical mapping, masquerading, virtual alias expansion or automatic BCC.
    pub no_address_mappings: bool,
    /// XXX: header_checks and body_checks are not implemented yet; parsed only.
    pub no_header_body_checks: bool,
    /// XXX: milters are not implemented yet; parsed only.
    pub no_milters: bool,
}

impl ReceiveOverride {
    /// input_transp_mask(): names separated by commas or white space, matched exactly
    /// (name_mask without NAME_MASK_ANY_CASE); an unknown one is Postfix's fatal error,
    /// returned as the bad name.
    pub fn parse(value: &str) -> Result<ReceiveOverride, String> {
        let mut o = ReceiveOverride::default();
        for name in value
            .split([',', ' ', '\t', '\r', '\n'])
            .filter(|n| !n.is_empty())
        {
            let flag = match name {
                "no_unknown_recipient_checks" => &mut o.no_unknown_recipient_checks,
                "no_address_mappings" => &mut o.no_address_mappings,
                "no_header_body_checks" => &mut o.no_header_body_checks,
                "no_milters" => &mut o.no_milters,
                _ => return Err(name.to_owned()),
            };
            *flag = true;
        }
        Ok(o)
    }
}

/// cleanup's rewriters of one settings load: the full one, and (made when a service
/// asks for it) the one without address mappings.
struct Rewriters {
    config: CleanupSettings,
    resolver: Arc<tern_rewrite::Resolver>,
    warn: tern_maps::Warn,
    full: Arc<CleanupRewriter>,
    unmapped: Option<Arc<CleanupRewriter>>,
    log: Arc<CleanupLog>,
}

impl Rewriters {
    fn new(config: &Config) -> Result<Rewriters, SettingsError> {
        let log = Arc::new(CleanupLog::default());
        let sink = Arc::clone(&log);
        let warn: tern_maps::Warn = Arc::new(move |text: &str| sink.warn(text));
        // XXX: Postfix's cleanup reads main.cf with the cleanup service's own master.cf
        // overrides; Tern's cleanup runs inside smtpd and reads main.cf alone.
        let resolver = Arc::new(tern_rewrite::Resolver::from_config(config, warn.clone())?);
        let settings = CleanupSettings::from_config(config)?;
        let full = Arc::new(CleanupRewriter::new(
            settings.clone(),
            Arc::clone(&resolver),
            warn.clone(),
        )?);
        Ok(Rewriters {
            config: settings,
            resolver,
            warn,
            full,
            unmapped: None,
            log,
        })
    }

    /// The rewriter for a service with `o`.
    fn pick(&mut self, o: ReceiveOverride) -> Result<Arc<CleanupRewriter>, SettingsError> {
        if !o.no_address_mappings {
            return Ok(Arc::clone(&self.full));
        }
        if let Some(r) = &self.unmapped {
            return Ok(Arc::clone(r));
        }
        // cleanup_addr.c, cleanup_message.c, cleanup_out_recipient.c: without
        // CLEANUP_FLAG_MAP_OK only trivial-rewrite's canonical form is applied, which is
        // what a rewriter without tables and masquerade domains does.
        let settings = CleanupSettings {
            canonical_maps: String::new(),
            sender_canonical_maps: String::new(),
            recipient_canonical_maps: String::new(),
            masquerade_domains: String::new(),
            masquerade_exceptions: String::new(),
            virtual_alias_maps: String::new(),
            // no_address_mappings turns automatic BCC off as well.
            always_bcc: String::new(),
            sender_bcc_maps: String::new(),
            recipient_bcc_maps: String::new(),
            ..self.config.clone()
        };
        let r = Arc::new(CleanupRewriter::new(
            settings,
            Arc::clone(&self.resolver),
            self.warn.clone(),
        )?);
        self.unmapped = Some(Arc::clone(&r));
        Ok(r)
    }
}

/// Reads the daemon's settings from a loaded configuration.
pub fn load(config: &Config) -> Result<DaemonSettings, SettingsError> {
    let p = Params {
        config,
        service: None,
    };
    let queue_directory = PathBuf::from(p.get("queue_directory")?);
    let depth = p.number("hash_queue_depth")?;
    let layout = QueueLayout::new(&queue_directory).with_hashing(
        &p.get("hash_queue_names")?,
        usize::try_from(depth).unwrap_or(1),
    );
    let id_form = if p.bool("enable_long_queue_ids")? {
        IdForm::Long
    } else {
        IdForm::Short
    };
    let default_limit = p.number("default_process_limit")?;
    // Read with the configuration, so that a reload also picks up a new resolv.conf.
    let resolver = Arc::new(Resolver::from_env());
    let mut rewriters = Rewriters::new(config)?;
    let mut listeners = Vec::new();
    for svc in &config.master.services {
        let command = svc.command.rsplit('/').next().unwrap_or_default();
        if svc.kind != "inet" || command != "smtpd" {
            continue;
        }
        let sp = Params {
            config,
            service: Some(svc),
        };
        let addrs = listen_addrs(svc, &sp).ok_or_else(|| SettingsError::Address {
            path: config.dir.display().to_string(),
            line: svc.line,
            name: svc.name.clone(),
        })?;
        let process_limit = if svc.maxproc == "-" {
            default_limit
        } else {
            svc.maxproc.parse().unwrap_or(default_limit)
        };
        listeners.push(Listener {
            service: svc.name.clone(),
            addrs,
            process_limit: usize::try_from(process_limit).unwrap_or(usize::MAX),
            smtpd: Arc::new(smtpd_settings(&sp, &resolver, &mut rewriters)?),
        });
    }
    Ok(DaemonSettings {
        config_directory: config.dir.clone(),
        data_directory: PathBuf::from(p.get("data_directory")?),
        queue_directory,
        layout,
        id_form,
        mail_owner: p.get("mail_owner")?,
        mail_version: p.get("mail_version")?,
        syslog_name: p.get("syslog_name")?,
        myhostname: p.get("myhostname")?,
        maillog_file: p.get("maillog_file")?,
        maillog_file_prefixes: p.get("maillog_file_prefixes")?,
        syslog_facility: p.get("syslog_facility")?,
        inet_interfaces: p.get("inet_interfaces")?,
        watched: WATCHED
            .iter()
            .map(|&n| Ok((n, p.get(n)?)))
            .collect::<Result<_, SettingsError>>()?,
        listeners,
    })
}

fn smtpd_settings(
    p: &Params<'_>,
    resolver: &Arc<Resolver>,
    rewriters: &mut Rewriters,
) -> Result<SmtpdSettings, SettingsError> {
    let myhostname = p.get("myhostname")?;
    let overrides = p.get("receive_override_options")?;
    let receive_override =
        ReceiveOverride::parse(&overrides).map_err(|name| SettingsError::ReceiveOverride {
            name,
            value: overrides.clone(),
        })?;
    let mut s = SessionConfig::new(&myhostname);
    s.banner = p.get("smtpd_banner")?;
    s.ehlo.message_size_limit = p.number("message_size_limit")?;
    s.ehlo.vrfy_enabled = !p.bool("disable_vrfy_command")?;
    s.ehlo.smtputf8 = p.bool("smtputf8_enable")?;
    s.ehlo.discard = DiscardSet::parse(&p.get("smtpd_discard_ehlo_keywords")?);
    s.helo_required = p.bool("smtpd_helo_required")?;
    s.recipient_limit = p.size("smtpd_recipient_limit")?;
    s.recipient_overshoot_limit = p.size("smtpd_recipient_overshoot_limit")?;
    s.soft_error_limit = p.count("smtpd_soft_error_limit")?;
    s.hard_error_limit = p.count("smtpd_hard_error_limit")?;
    s.junk_command_limit = p.count("smtpd_junk_command_limit")?;
    // Tern's default is `normalize` (registry::SAFER_DEFAULTS).
    let name = "smtpd_forbid_bare_newline";
    let v = p.get(name)?;
    s.bare_lf = BareLfPolicy::parse(&v).ok_or_else(|| p.bad(name, &v))?;
    s.bare_lf_reject_code =
        u16::try_from(p.number("smtpd_forbid_bare_newline_reject_code")?).unwrap_or(550);
    s.strict_rfc821_envelopes = p.bool("strict_rfc821_envelopes")?;
    s.forbid_unauth_pipelining = p.bool("smtpd_forbid_unauth_pipelining")?;
    // smtpd_check_addr(): trivial-rewrite decides whether an address is valid.
    s.domains_by_driver = true;
    let tls = crate::smtpd::tls::SmtpdTls::from_config(p.config, p.service)?;
    s.ehlo.starttls = tls.use_tls && !tls.wrappermode;
    s.tls_required = tls.enforce;
    s.tls_auth_only = tls.auth_only;
    s.tls_unavailable = tls.engine.is_none();
    let restrictions = Restrictions::from_config(p.config, p.service)?;
    let sasl = crate::sasl::SaslServer::from_config(p.config, p.service)?;
    if let Some(sasl) = &sasl {
        sasl.set_warn(std::sync::Arc::new(crate::relay::warn));
        s.ehlo.broken_auth_clients = sasl.settings().broken_clients;
    }
    // smtpd.c helo_cmd(): HELO restrictions at HELO only without smtpd_delay_reject.
    s.decide_helo =
        !restrictions.setup().delay_reject && !restrictions.setup().lists.helo.is_empty();
    Ok(SmtpdSettings {
        session: s,
        syslog_name: p.get("syslog_name")?,
        sasl,
        service_name: p
            .service
            .map_or_else(|| "smtp".to_owned(), |svc| svc.name.clone()),
        line_length_limit: p.size("line_length_limit")?,
        timeout: p.time("smtpd_timeout")?,
        error_sleep: p.time("smtpd_error_sleep_time")?,
        mail_name: p.get("mail_name")?,
        restrictions: Arc::new(restrictions),
        cleanup: tern_message::cleanup::Settings {
            myhostname,
            hopcount_limit: p.size("hopcount_limit")?,
            header_size_limit: p.size("header_size_limit")?,
            header_address_token_limit: p.size("header_address_token_limit")?,
            always_add_missing_headers: p.bool("always_add_missing_headers")?,
            undisclosed_recipients_header: p.get("undisclosed_recipients_header")?,
            enable_long_queue_ids: p.bool("enable_long_queue_ids")?,
            message_drop_headers: tern_config::list::split(&p.get("message_drop_headers")?)
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        },
        remote_header_rewrite_domain: p.get("remote_header_rewrite_domain")?,
        queue_minfree: p.number("queue_minfree")?,
        peername_lookup: p.bool("smtpd_peername_lookup")?,
        resolver: Arc::clone(resolver),
        receive_override,
        content_filter: p.get("content_filter")?,
        reject_footer: Arc::new(crate::reject_footer::RejectFooter::from_config(
            p.config, p.service,
        )?),
        content_checks: if receive_override.no_header_body_checks {
            None
        } else {
            crate::content_checks::ContentChecks::from_config(p.config, p.service)?
        },
        rewriter: rewriters.pick(receive_override)?,
        cleanup_log: Arc::clone(&rewriters.log),
        anvil: Arc::new(crate::anvil::Limits::from_config(
            p.config,
            p.service,
            p.service.map_or("smtp", |svc| svc.name.as_str()),
        )?),
        tls: Arc::new(tls),
    })
}

/// The addresses a service listens on: `host:port` names its own, a bare port or
/// service name uses every inet_interfaces address of the inet_protocols families.
fn listen_addrs(svc: &Service, p: &Params<'_>) -> Option<Vec<SocketAddr>> {
    let name = svc.name.as_str();
    let (host, port) = match name.rsplit_once(':') {
        Some((h, port)) => (Some(h.trim_start_matches('[').trim_end_matches(']')), port),
        None => (None, name),
    };
    let port = port_number(port)?;
    if let Some(h) = host {
        let ip: IpAddr = match h {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            _ => h.parse().ok()?,
        };
        return Some(vec![SocketAddr::new(ip, port)]);
    }
    let protocols = p.get("inet_protocols").ok()?.to_ascii_lowercase();
    let (v4, v6) = match protocols.as_str() {
        "all" => (true, true),
        other => (other.contains("ipv4"), other.contains("ipv6")),
    };
    let interfaces = p.get("inet_interfaces").ok()?;
    let mut addrs = Vec::new();
    for i in tern_config::list::split(&interfaces).ok()? {
        match i.to_ascii_lowercase().as_str() {
            // XXX: `all` with both families binds [::] alone, which Linux makes dual-stack
            // (net.ipv6.bindv6only = 0); tokio cannot set IPV6_V6ONLY before bind.
            "all" if v6 => addrs.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)),
            "all" => addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
            "loopback-only" | "localhost" => {
                if v4 {
                    addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
                }
                if v6 {
                    addrs.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port));
                }
            }
            other => {
                let ip: IpAddr = other
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .ok()?;
                if (ip.is_ipv4() && v4) || (ip.is_ipv6() && v6) {
                    addrs.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    Some(addrs)
}

/// A port number or a service name from /etc/services' common mail entries.
fn port_number(text: &str) -> Option<u16> {
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    // XXX: a fixed table rather than getservbyname(3); these are the names a master.cf
    // uses for smtpd.
    match text {
        "smtp" => Some(25),
        "submission" => Some(587),
        "submissions" | "smtps" | "urd" => Some(465),
        "lmtp" => Some(24),
        _ => None,
    }
}

/// Parameter access in a service's name space.
struct Params<'a> {
    config: &'a Config,
    service: Option<&'a Service>,
}

impl Params<'_> {
    fn get(&self, name: &str) -> Result<String, SettingsError> {
        let raw = self
            .config
            .lookup_value(name, self.service)
            .unwrap_or_default();
        if self.config.is_raw(name) {
            return Ok(raw);
        }
        Ok(self.config.expand(&raw, self.service)?.text)
    }

    fn bad(&self, name: &str, value: &str) -> SettingsError {
        SettingsError::BadValue {
            dir: self.config.dir.display().to_string(),
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    fn number(&self, name: &str) -> Result<u64, SettingsError> {
        let v = self.get(name)?;
        v.trim().parse().map_err(|_| self.bad(name, &v))
    }

    fn size(&self, name: &str) -> Result<usize, SettingsError> {
        let n = self.number(name)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn count(&self, name: &str) -> Result<u32, SettingsError> {
        let n = self.number(name)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn bool(&self, name: &str) -> Result<bool, SettingsError> {
        let v = self.get(name)?;
        match v.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(self.bad(name, &v)),
        }
    }

    fn time(&self, name: &str) -> Result<Duration, SettingsError> {
        let v = self.get(name)?;
        parse_time(&v).ok_or_else(|| self.bad(name, &v))
    }
}

/// A Postfix time value: a number with an optional unit (s, m, h, d, w; seconds when
/// none is given, the unit of every time parameter smtpd reads here).
pub fn parse_time(text: &str) -> Option<Duration> {
    tern_config::text::time_seconds(text, 1).map(Duration::from_secs)
}

/// Resolves `path` against `base` when it is relative.
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        for (text, want) in [
            ("300s", Some(300)),
            ("1s", Some(1)),
            ("5m", Some(300)),
            ("10", Some(10)),
            ("1h", Some(3600)),
            ("x", None),
            ("5y", None),
        ] {
            assert_eq!(parse_time(text).map(|d| d.as_secs()), want, "{text}");
        }
    }

    #[test]
    fn ports() {
        for (text, want) in [
            ("smtp", Some(25)),
            ("2525", Some(2525)),
            ("submission", Some(587)),
            ("nope", None),
        ] {
            assert_eq!(port_number(text), want, "{text}");
        }
    }

    fn addrs_of(master: &str, main: &str) -> Vec<Listener> {
        use tern_config::host::HostInfo;
        use tern_config::maincf::MainCf;
        use tern_config::mastercf::MasterCf;
        // A relay limit is required to start (compatibility_level 0 has none by default).
        let main = format!("compatibility_level = 3.6\n{main}");
        let main = MainCf::parse(main.as_bytes(), "main.cf").expect("main.cf");
        let master = MasterCf::parse(master.as_bytes(), "master.cf").expect("master.cf");
        let config = Config::new(
            Path::new("/etc/postfix"),
            main,
            master,
            HostInfo::from_hostname("mx.example.com"),
        );
        load(&config).expect("settings").listeners
    }

    #[test]
    fn receive_override_options() {
        let all = ReceiveOverride {
            no_unknown_recipient_checks: true,
            no_address_mappings: true,
            no_header_body_checks: true,
            no_milters: true,
        };
        for (text, want) in [
            ("", Ok(ReceiveOverride::default())),
            (
                "no_address_mappings",
                Ok(ReceiveOverride {
                    no_address_mappings: true,
                    ..ReceiveOverride::default()
                }),
            ),
            (
                "no_unknown_recipient_checks,no_header_body_checks\tno_milters, \
                 no_address_mappings",
                Ok(all),
            ),
            // name_mask() compares case-sensitively.
            ("No_Milters", Err("No_Milters".to_owned())),
            ("no_milters, bogus", Err("bogus".to_owned())),
        ] {
            assert_eq!(ReceiveOverride::parse(text), want, "{text}");
        }
    }

    #[test]
    fn listeners_from_master_cf() {
        let master = "smtp inet n - y - - smtpd\n\
                      127.0.0.1:2525 inet n - n - 3 smtpd -o smtpd_banner=hi\n\
                      [::1]:25 inet n - n - - smtpd\n\
                      pickup unix n - y 60 1 pickup\n\
                      smtp unix - - y - - smtp\n";
        let l = addrs_of(
            master,
            "inet_interfaces = loopback-only\ninet_protocols = ipv4\n",
        );
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].addrs, vec!["127.0.0.1:25".parse().expect("addr")]);
        assert_eq!(l[0].process_limit, 100);
        assert_eq!(l[1].addrs, vec!["127.0.0.1:2525".parse().expect("addr")]);
        assert_eq!(l[1].process_limit, 3);
        assert_eq!(l[1].smtpd.session.banner, "hi");
        assert_eq!(l[0].smtpd.session.banner, "mx.example.com ESMTP Postfix");
        assert_eq!(l[2].addrs, vec!["[::1]:25".parse().expect("addr")]);
        assert_eq!(l[0].smtpd.session.bare_lf, BareLfPolicy::Normalize);
    }

    #[test]
    fn rewriters_per_receive_override_options() {
        let master = "127.0.0.1:25 inet n - n - - smtpd\n\
                      127.0.0.1:26 inet n - n - - smtpd -o receive_override_options=no_milters\n\
                      127.0.0.1:27 inet n - n - - smtpd \
                      -o receive_override_options=no_address_mappings\n\
                      127.0.0.1:28 inet n - n - - smtpd \
                      -o receive_override_options=no_address_mappings,no_milters\n";
        let l = addrs_of(master, "masquerade_domains = example.com\n");
        let rw = |i: usize| &l[i].smtpd.rewriter;
        // One rewriter with the mappings, one without, each shared.
        assert!(Arc::ptr_eq(rw(0), rw(1)));
        assert!(Arc::ptr_eq(rw(2), rw(3)));
        assert!(!Arc::ptr_eq(rw(0), rw(2)));
        assert_eq!(rw(0).settings.masquerade_domains, "example.com");
        assert_eq!(rw(2).settings.masquerade_domains, "");
        let sender = |i: usize| rw(i).sender("u@host.example.com", "ID").expect("sender");
        assert_eq!(sender(0), "u@example.com");
        assert_eq!(sender(2), "u@host.example.com");
        assert!(l[1].smtpd.receive_override.no_milters);
    }
}
