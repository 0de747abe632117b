//! The settings of one smtp(8) or lmtp(8) master.cf service, read once from main.cf and
//! the service's `-o` overrides (smtp_params.c, lmtp_params.c): the session's
//! (tern_client::session::Settings), next-hop resolution's (tern_client::nexthop),
//! TLS (tern_client::tls), SASL (tern_client::sasl: smtp_sasl_auth_enable and the
//! password tables, opened here at start and at each reload), and what the delivery walk and the connection cache read
//! here: smtp_fallback_relay, smtp_tcp_port, smtp_mx_session_limit, the
//! smtp_connection_* parameters, relayhost, this machine's addresses for the loop check,
//! minimal_backoff_time and lmtp(8)'s `flags=X`.
//!
//! Trust: main.cf and master.cf are the administrator's; a value that does not parse is
//! an error, and the service defers its mail until a reload fixes it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::time::Duration;

use tern_client::nexthop::{self, InetProtocols};
use tern_client::sasl::{self, SaslClient, SaslError};
use tern_client::session;
use tern_client::tls::{LogLine, TlsClient};
use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_config::params::{ParamError, Params};

/// Why a service's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A parameter of the session, the next-hop lookup or the service itself.
    #[error("{0}")]
    Param(#[from] ParamError),
    #[error("{0}")]
    Tls(#[from] tern_client::tls::SettingsError),
    #[error("{0}")]
    TlsTable(#[from] tern_maps::MapError),
    /// smtp_sasl_auth_enable without a usable smtp_sasl_password_maps.
    #[error("{0}")]
    Sasl(#[from] SaslError),
}

/// Everything one service's deliveries read.
pub struct ServiceSettings {
    /// The master.cf service name (`smtp`, `relay`, `lmtp`, ...).
    pub name: String,
    pub protocol: session::Protocol,
    pub session: session::Settings,
    pub nexthop: nexthop::Settings,
    /// The TLS engine when the level, smtp_tls_per_site or smtp_tls_policy_maps may ask
    /// for TLS; `None`: the service never sends STARTTLS.
    pub tls: Option<TlsClient>,
    /// The SASL client when `<prefix>_sasl_auth_enable` is on.
    pub sasl: Option<SaslClient>,
    /// smtp_fallback_relay / lmtp_fallback_relay.
    pub fallback_relay: String,
    /// smtp_tcp_port / lmtp_tcp_port.
    pub tcp_port: String,
    /// known_tcp_ports.
    pub known_tcp_ports: String,
    /// relayhost (the "relayhost configuration problem" check).
    pub relayhost: String,
    /// smtp_mx_session_limit (0: no limit).
    pub mx_session_limit: usize,
    /// smtp_connection_cache_on_demand.
    pub cache_on_demand: bool,
    /// smtp_connection_cache_destinations: domains whose connections are always kept.
    pub cache_destinations: Vec<String>,
    /// smtp_connection_cache_time_limit: how long a kept connection may stay idle.
    pub cache_time_limit: Duration,
    /// smtp_connection_reuse_time_limit: how long after it was made a connection may
    /// still be kept.
    pub reuse_time_limit: Duration,
    /// smtp_connection_reuse_count_limit (0: no limit).
    pub reuse_count_limit: u32,
    /// inet_interfaces and proxy_interfaces: this machine, for the loop check.
    pub local_addrs: Vec<IpAddr>,
    /// minimal_backoff_time (the plaintext retry after a `may` handshake failure).
    pub minimal_backoff: Duration,
    /// Lines to log once, when the settings are read (TLS engine notes).
    pub notes: Vec<LogLine>,
}

impl ServiceSettings {
    /// Reads service `svc` of command `smtp` or `lmtp`.
    pub fn load(config: &Config, svc: &Service) -> Result<ServiceSettings, SettingsError> {
        let lmtp = svc.command.rsplit('/').next() == Some("lmtp");
        let (protocol, nprotocol, pre) = if lmtp {
            (session::Protocol::Lmtp, nexthop::Protocol::Lmtp, "lmtp")
        } else {
            (session::Protocol::Smtp, nexthop::Protocol::Smtp, "smtp")
        };
        let p = Params::new(config, Some(svc));
        let name = |s: &str| format!("{pre}_{s}");
        let mut session = session::Settings::from_config(config, &svc.name, protocol)?;
        // lmtp(8) with master.cf `flags=X`: final delivery (DSN "delivered").
        if lmtp && flags_arg(svc).contains('X') {
            session.final_delivery = true;
        }
        let nexthop = nexthop::Settings::from_config(config, &svc.name, nprotocol)?;
        let tls_settings = tern_client::tls::Settings::from_config(config, Some(svc), pre)?;
        let mut notes = Vec::new();
        // smtp.c pre_init(): the TLS engine exists when the level, smtp_tls_per_site or
        // smtp_tls_policy_maps may ask for TLS.
        let tls = if tls_settings.level == tern_client::tls::Level::None
            && tls_settings.policy_maps.is_empty()
            && tls_settings.per_site.is_empty()
        {
            None
        } else {
            Some(TlsClient::new(tls_settings, &mut notes)?)
        };
        let sasl_settings = sasl::Settings::from_config(config, Some(svc), pre)?;
        let sasl = if sasl_settings.enable {
            Some(SaslClient::new(sasl_settings)?)
        } else {
            None
        };
        let protocols = InetProtocols::parse(&p.text("inet_protocols")?).unwrap_or(InetProtocols {
            ipv4: true,
            ipv6: true,
        });
        let mut local_addrs = interface_addrs(&p.text("inet_interfaces")?, protocols);
        local_addrs.extend(interface_addrs(&p.text("proxy_interfaces")?, protocols));
        Ok(ServiceSettings {
            name: svc.name.clone(),
            protocol,
            session,
            nexthop,
            tls,
            sasl,
            fallback_relay: p.text(&name("fallback_relay"))?,
            tcp_port: p.text(&name("tcp_port"))?,
            known_tcp_ports: p.text("known_tcp_ports")?,
            relayhost: p.text("relayhost")?,
            mx_session_limit: p.int(&name("mx_session_limit"))?,
            cache_on_demand: p.bool(&name("connection_cache_on_demand"))?,
            cache_destinations: tern_config::list::split(
                &p.text(&name("connection_cache_destinations"))?,
            )
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
            cache_time_limit: p.time(&name("connection_cache_time_limit"))?,
            reuse_time_limit: p.time(&name("connection_reuse_time_limit"))?,
            reuse_count_limit: u32::try_from(p.int(&name("connection_reuse_count_limit"))?)
                .unwrap_or(u32::MAX),
            local_addrs,
            minimal_backoff: p.time("minimal_backoff_time")?,
            notes,
        })
    }

    /// The next-hop protocol of this service.
    pub fn nexthop_protocol(&self) -> nexthop::Protocol {
        match self.protocol {
            session::Protocol::Smtp => nexthop::Protocol::Smtp,
            session::Protocol::Lmtp => nexthop::Protocol::Lmtp,
        }
    }

    /// Whether connections to `domain` are always kept (smtp_connection_cache_destinations;
    /// names only, as Postfix matches the bare domain).
    pub fn always_cache(&self, domain: &str) -> bool {
        let d = domain.to_ascii_lowercase();
        self.cache_destinations.contains(&d)
    }
}

/// The `flags=` argument of a pipe-style master.cf command line (lmtp(8) reads `X`).
fn flags_arg(svc: &Service) -> String {
    svc.args
        .iter()
        .filter_map(|a| a.strip_prefix("flags="))
        .collect()
}

/// The addresses an inet_interfaces-style list names: `all` (every interface that is
/// up), `loopback-only`, addresses, or host names (resolved once, here).
fn interface_addrs(list: &str, protocols: InetProtocols) -> Vec<IpAddr> {
    let allowed = |a: &IpAddr| {
        if a.is_ipv4() {
            protocols.ipv4
        } else {
            protocols.ipv6
        }
    };
    let mut out = Vec::new();
    for word in tern_config::list::split(list).unwrap_or_default() {
        match word.to_ascii_lowercase().as_str() {
            "all" => {
                if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
                    for i in addrs {
                        let Some(a) = i.address else { continue };
                        if let Some(v4) = a.as_sockaddr_in() {
                            out.push(IpAddr::V4(v4.ip()));
                        } else if let Some(v6) = a.as_sockaddr_in6() {
                            out.push(IpAddr::V6(v6.ip()));
                        }
                    }
                }
            }
            "loopback-only" => {
                out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
                out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
            }
            other => {
                let host = other.trim_start_matches('[').trim_end_matches(']');
                match host.parse::<IpAddr>() {
                    Ok(a) => out.push(a),
                    Err(_) => {
                        if let Ok(addrs) = (host, 0).to_socket_addrs() {
                            out.extend(addrs.map(|s| s.ip()));
                        }
                    }
                }
            }
        }
    }
    out.retain(allowed);
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(main: &str, master: &str) -> Config {
        Config::from_texts(Path::new("/etc/postfix"), main, master, "mx.example.org")
            .expect("config")
    }

    #[test]
    fn services_read_their_own_overrides() {
        let c = config(
            "inet_interfaces = loopback-only\ninet_protocols = ipv4\n\
             smtp_fallback_relay = [fb.example]\nproxy_interfaces = 192.0.2.7\n",
            "smtp unix - - n - - smtp\n\
             relay2 unix - - n - - smtp -o smtp_connection_reuse_count_limit=3 \
             -o smtp_mx_session_limit=1 -o smtp_connection_cache_destinations=a.example,B.example\n\
             lmtp unix - - n - - lmtp flags=DRX\n",
        );
        let svc = |n: &str| {
            let s = c.master.services.iter().find(|s| s.name == n).expect("svc");
            ServiceSettings::load(&c, s).expect("settings")
        };
        let smtp = svc("smtp");
        let relay2 = svc("relay2");
        let lmtp = svc("lmtp");
        assert_eq!(smtp.fallback_relay, "[fb.example]");
        assert_eq!(lmtp.fallback_relay, "");
        assert_eq!(
            (smtp.tcp_port.as_str(), lmtp.tcp_port.as_str()),
            ("smtp", "24")
        );
        assert_eq!((smtp.mx_session_limit, relay2.mx_session_limit), (2, 1));
        assert_eq!((smtp.reuse_count_limit, relay2.reuse_count_limit), (0, 3));
        assert!(relay2.always_cache("b.example") && !smtp.always_cache("a.example"));
        assert_eq!(smtp.cache_time_limit, Duration::from_secs(2));
        assert_eq!(smtp.reuse_time_limit, Duration::from_mins(5));
        assert!(lmtp.session.final_delivery && !smtp.session.final_delivery);
        assert_eq!(lmtp.protocol, session::Protocol::Lmtp);
        assert!(smtp.tls.is_none() && smtp.sasl.is_none());
        assert_eq!(
            smtp.local_addrs,
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
            ]
        );
    }

    #[test]
    fn tls_engine_when_a_table_may_ask_for_tls() {
        // (main.cf, whether smtp(8) gets a TLS engine)
        let cases = [
            ("", false),
            ("smtp_tls_security_level = may\n", true),
            ("smtp_tls_per_site = inline:{example.com=MUST}\n", true),
            ("smtp_tls_policy_maps = inline:{example.com=verify}\n", true),
            ("smtp_use_tls = yes\n", true),
        ];
        for (main, engine) in cases {
            let c = config(main, "smtp unix - - n - - smtp\n");
            let s = ServiceSettings::load(&c, &c.master.services[0]).expect("settings");
            assert_eq!(s.tls.is_some(), engine, "{main}");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        for main in [
            "smtp_mx_session_limit = lots\n",
            "smtp_connection_cache_time_limit = soon\n",
            "smtp_connection_cache_on_demand = maybe\n",
            "smtp_tls_security_level = paranoid\n",
            "smtp_sasl_auth_enable = yes\n",
            "smtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/nonexistent/x\n",
        ] {
            let c = config(main, "smtp unix - - n - - smtp\n");
            let s = &c.master.services[0];
            assert!(ServiceSettings::load(&c, s).is_err(), "{main}");
        }
    }
}
