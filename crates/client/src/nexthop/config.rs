//! [`Settings::from_config`]: next-hop resolution's parameters from main.cf, in the name
//! space of one master.cf service (its `-o name=value` first), with the `smtp_` or
//! `lmtp_` prefix of the protocol, as smtp_params.c and lmtp_params.c bind them.
//!
//! | field | parameter |
//! | --- | --- |
//! | inet_protocols | inet_protocols |
//! | address_preference | smtp_address_preference / lmtp_address_preference |
//! | host_lookup | smtp_host_lookup / lmtp_host_lookup |
//! | dns_enabled | disable_dns_lookups, smtp_dns_support_level / lmtp_dns_support_level |
//! | mx_address_limit | smtp_mx_address_limit / lmtp_mx_address_limit |
//! | balance_inet_protocols | smtp_balance_inet_protocols / lmtp_balance_inet_protocols |
//! | randomize_addresses | smtp_randomize_addresses / lmtp_randomize_addresses |
//! | ignore_mx_lookup_error | ignore_mx_lookup_error |
//! | defer_if_no_mx_address_found | smtp_defer_if_no_mx_address_found / lmtp_... |
//!
//! Trust: main.cf and master.cf are the administrator's. A value Postfix's smtp(8)
//! refuses with a fatal error is a [`ConfigError`] here.

use tern_config::config::Config;
use tern_config::params::{ParamError, Params};

use super::{AddressPreference, HostLookup, InetProtocols, Protocol, Settings};

/// A parameter value that smtp(8) would refuse (tern_config's reader error: the
/// parameter's name and value, or why it did not expand).
pub type ConfigError = ParamError;

impl Settings {
    /// The settings of master.cf service `service` (`smtp`, `relay`, `lmtp`, ...)
    /// speaking `protocol`; a service that master.cf lacks reads main.cf alone.
    pub fn from_config(
        config: &Config,
        service: &str,
        protocol: Protocol,
    ) -> Result<Settings, ConfigError> {
        let p = Params::new(
            config,
            config.master.services.iter().find(|s| s.name == service),
        );
        let pre = match protocol {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        };
        let name = |s: &str| format!("{pre}_{s}");
        let protocols = p.text("inet_protocols")?;
        let inet_protocols = InetProtocols::parse(&protocols)
            .ok_or_else(|| Params::bad("inet_protocols", &protocols))?;
        let pref_name = name("address_preference");
        let pref = p.text(&pref_name)?;
        let address_preference =
            AddressPreference::parse(&pref).ok_or_else(|| Params::bad(&pref_name, &pref))?;
        let lookup_name = name("host_lookup");
        let lookup = p.text(&lookup_name)?;
        let host_lookup =
            HostLookup::parse(&lookup).ok_or_else(|| Params::bad(&lookup_name, &lookup))?;
        // smtp_dns_support_level (empty: disable_dns_lookups decides): `disabled` turns
        // DNS off; `enabled` and `dnssec` keep it (DNSSEC is not implemented).
        let level_name = name("dns_support_level");
        let level = p.text(&level_name)?;
        let dns_enabled = match level.trim().to_ascii_lowercase().as_str() {
            "" => !p.bool("disable_dns_lookups")?,
            "disabled" => false,
            "enabled" | "dnssec" => true,
            _ => return Err(Params::bad(&level_name, &level)),
        };
        Ok(Settings {
            inet_protocols,
            address_preference,
            host_lookup,
            dns_enabled,
            mx_address_limit: p.int(&name("mx_address_limit"))?,
            balance_inet_protocols: p.bool(&name("balance_inet_protocols"))?,
            randomize_addresses: p.bool(&name("randomize_addresses"))?,
            ignore_mx_lookup_error: p.bool("ignore_mx_lookup_error")?,
            defer_if_no_mx_address_found: p.bool(&name("defer_if_no_mx_address_found"))?,
            ..Settings::default()
        })
    }
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
    fn defaults_are_postfix_defaults() {
        let c = config("", "");
        let s = Settings::from_config(&c, "smtp", Protocol::Smtp).expect("settings");
        assert_eq!(
            s,
            Settings {
                query_timeout: s.query_timeout,
                ..Settings::default()
            }
        );
    }

    #[test]
    fn overrides_and_prefixes() {
        let c = config(
            "inet_protocols = ipv4\nsmtp_mx_address_limit = 2\nlmtp_host_lookup = native\n\
             smtp_randomize_addresses = no\n",
            "relay unix - - n - - smtp -o smtp_dns_support_level=disabled \
             -o smtp_address_preference=ipv6\nlmtp unix - - n - - lmtp\n",
        );
        let smtp = Settings::from_config(&c, "smtp", Protocol::Smtp).expect("smtp");
        let relay = Settings::from_config(&c, "relay", Protocol::Smtp).expect("relay");
        let lmtp = Settings::from_config(&c, "lmtp", Protocol::Lmtp).expect("lmtp");
        // (what, got, want)
        let cases = [
            ("ipv4 only", smtp.inet_protocols.ipv6, false),
            ("smtp dns", smtp.dns_enabled, true),
            ("relay dns off by -o", relay.dns_enabled, false),
            ("smtp randomize", smtp.randomize_addresses, false),
            (
                "lmtp randomize (own prefix)",
                lmtp.randomize_addresses,
                true,
            ),
            (
                "lmtp native",
                lmtp.host_lookup.native && !lmtp.host_lookup.dns,
                true,
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(smtp.mx_address_limit, 2);
        assert_eq!(lmtp.mx_address_limit, 5);
        assert_eq!(relay.address_preference, AddressPreference::Ipv6);
    }

    #[test]
    fn bad_values() {
        for (main, name) in [
            ("inet_protocols = ipx\n", "inet_protocols"),
            ("smtp_host_lookup = nis\n", "smtp_host_lookup"),
            ("smtp_dns_support_level = maybe\n", "smtp_dns_support_level"),
            ("smtp_mx_address_limit = many\n", "smtp_mx_address_limit"),
            ("disable_dns_lookups = perhaps\n", "disable_dns_lookups"),
        ] {
            let c = config(main, "");
            match Settings::from_config(&c, "smtp", Protocol::Smtp) {
                Err(ConfigError::BadValue { name: n, .. }) => assert_eq!(n, name, "{main}"),
                other => panic!("{main}: {other:?}"),
            }
        }
        let c = config("disable_dns_lookups = yes\n", "");
        let s = Settings::from_config(&c, "smtp", Protocol::Smtp).expect("settings");
        assert!(!s.dns_enabled);
    }
}
