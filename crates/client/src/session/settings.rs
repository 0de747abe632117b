//! The main.cf parameters one smtp(8) or lmtp(8) session reads, taken once from a
//! [`Config`] in the name space of the transport's master.cf service (its `-o name=value`
//! overrides first), with the `smtp_` or `lmtp_` prefix of the protocol, as smtp.c's
//! parameter tables do (postconf(5): "smtp_helo_timeout", "lmtp_lhlo_timeout", ...).
//!
//! Trust: main.cf and master.cf are the administrator's; a value that does not parse is an
//! error ([`SettingsError`]).

use std::time::Duration;

use tern_config::config::Config;
use tern_config::params::{ParamError, Params};

use super::Protocol;

/// Everything one session takes from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub protocol: Protocol,
    /// myhostname (the "greeted me with my own hostname" check is left to the caller).
    pub myhostname: String,
    /// smtp_helo_name / lmtp_lhlo_name: the name in EHLO, HELO and LHLO.
    pub helo_name: String,
    /// smtp_connect_timeout / lmtp_connect_timeout; `None` for 0 (the system's own limit).
    pub connect_timeout: Option<Duration>,
    /// smtp_helo_timeout / lmtp_lhlo_timeout: the greeting and the EHLO/HELO/LHLO reply.
    pub helo_timeout: Duration,
    pub mail_timeout: Duration,
    pub rcpt_timeout: Duration,
    /// smtp_data_init_timeout: the reply to DATA.
    pub data_init_timeout: Duration,
    /// smtp_data_xfer_timeout: each write of the content.
    pub data_xfer_timeout: Duration,
    /// smtp_data_done_timeout: the reply to the final dot.
    pub data_done_timeout: Duration,
    pub rset_timeout: Duration,
    pub quit_timeout: Duration,
    /// smtp_skip_5xx_greeting: a 5xx greeting defers (4.x.x) instead of bouncing.
    pub skip_5xx_greeting: bool,
    /// smtp_line_length_limit: content lines longer than this are broken with CRLF SPACE
    /// (0: no limit).
    pub output_line_limit: usize,
    /// line_length_limit: the longest server reply line kept (the rest is skipped).
    pub reply_line_limit: usize,
    /// disable_mime_output_conversion.
    pub disable_mime_output_conversion: bool,
    /// smtp_never_send_ehlo (SMTP only).
    pub never_send_ehlo: bool,
    /// smtp_always_send_ehlo (SMTP only): EHLO even when the greeting lacks "ESMTP".
    pub always_send_ehlo: bool,
    /// smtp_skip_quit_response / lmtp_skip_quit_response: send QUIT without waiting for
    /// its reply.
    pub skip_quit_response: bool,
    /// soft_bounce: a would-be bounce is deferred instead (bounce(8)'s rule).
    pub soft_bounce: bool,
    /// master.cf `flags=X` (lmtp(8): final delivery), or the obsolete lmtp_assume_final:
    /// a recipient an LMTP server without DSN accepts is "delivered", not "relayed".
    /// Read here from lmtp_assume_final only; the caller adds the service's `flags=X`.
    pub final_delivery: bool,
}

/// A parameter that does not parse (tern_config's reader error).
pub type SettingsError = ParamError;

impl Settings {
    /// The settings of the master.cf service `service` (e.g. `smtp`, `relay`, `lmtp`)
    /// speaking `protocol`.
    pub fn from_config(
        config: &Config,
        service: &str,
        protocol: Protocol,
    ) -> Result<Settings, SettingsError> {
        let service = config.master.services.iter().find(|s| s.name == service);
        let p = Params::new(config, service);
        let pre = protocol.prefix();
        let name = |s: &str| format!("{pre}_{s}");
        let (helo_name, helo_timeout) = match protocol {
            Protocol::Smtp => ("smtp_helo_name", "smtp_helo_timeout"),
            Protocol::Lmtp => ("lmtp_lhlo_name", "lmtp_lhlo_timeout"),
        };
        let smtp_only = |n: &str| -> Result<bool, SettingsError> {
            match protocol {
                Protocol::Smtp => p.bool(n),
                Protocol::Lmtp => Ok(false),
            }
        };
        let connect = p.time(&name("connect_timeout"))?;
        Ok(Settings {
            protocol,
            myhostname: p.text("myhostname")?,
            helo_name: p.text(helo_name)?,
            connect_timeout: (!connect.is_zero()).then_some(connect),
            helo_timeout: p.time(helo_timeout)?,
            mail_timeout: p.time(&name("mail_timeout"))?,
            rcpt_timeout: p.time(&name("rcpt_timeout"))?,
            data_init_timeout: p.time(&name("data_init_timeout"))?,
            data_xfer_timeout: p.time(&name("data_xfer_timeout"))?,
            data_done_timeout: p.time(&name("data_done_timeout"))?,
            rset_timeout: p.time(&name("rset_timeout"))?,
            quit_timeout: p.time(&name("quit_timeout"))?,
            skip_5xx_greeting: p.bool(&name("skip_5xx_greeting"))?,
            output_line_limit: p.int(&name("line_length_limit"))?,
            reply_line_limit: p.int("line_length_limit")?,
            disable_mime_output_conversion: p.bool("disable_mime_output_conversion")?,
            never_send_ehlo: smtp_only("smtp_never_send_ehlo")?,
            always_send_ehlo: smtp_only("smtp_always_send_ehlo")?,
            skip_quit_response: p.bool(&name("skip_quit_response"))?,
            soft_bounce: p.bool("soft_bounce")?,
            final_delivery: protocol == Protocol::Lmtp && p.bool("lmtp_assume_final")?,
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
    fn defaults_and_overrides() {
        let c = config(
            "smtp_helo_timeout = 2m\nlmtp_data_done_timeout = 7\nsmtp_line_length_limit = 0\n\
             lmtp_assume_final = yes\n",
            "relay unix - - n - - smtp -o smtp_helo_name=relay.example.org \
             -o smtp_skip_5xx_greeting=no\nlmtp unix - - n - - lmtp\n",
        );
        let s = Settings::from_config(&c, "relay", Protocol::Smtp).expect("smtp");
        let l = Settings::from_config(&c, "lmtp", Protocol::Lmtp).expect("lmtp");
        let d = Settings::from_config(&c, "smtp", Protocol::Smtp).expect("default");
        let secs = Duration::from_secs;
        for (what, got, want) in [
            (
                "helo name",
                s.helo_name.clone(),
                "relay.example.org".to_owned(),
            ),
            (
                "default helo name",
                d.helo_name.clone(),
                "mx.example.org".to_owned(),
            ),
            (
                "lhlo name",
                l.helo_name.clone(),
                "mx.example.org".to_owned(),
            ),
        ] {
            assert_eq!(got, want, "{what}");
        }
        for (what, got, want) in [
            ("helo timeout", s.helo_timeout, secs(120)),
            ("lhlo timeout", l.helo_timeout, secs(300)),
            ("data done", l.data_done_timeout, secs(7)),
            ("smtp data done", s.data_done_timeout, secs(600)),
            ("data init", s.data_init_timeout, secs(120)),
            ("data xfer", s.data_xfer_timeout, secs(180)),
            ("quit", s.quit_timeout, secs(300)),
        ] {
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(s.connect_timeout, Some(secs(30)));
        assert_eq!(l.connect_timeout, None, "lmtp_connect_timeout = 0s");
        assert!(!s.skip_5xx_greeting && d.skip_5xx_greeting && l.skip_5xx_greeting);
        assert_eq!((s.output_line_limit, l.output_line_limit), (0, 998));
        assert_eq!(s.reply_line_limit, 2048);
        assert!(d.always_send_ehlo && !d.never_send_ehlo && !l.always_send_ehlo);
        assert!(d.skip_quit_response && !l.skip_quit_response);
        assert!(l.final_delivery && !d.final_delivery);
    }

    #[test]
    fn bad_values() {
        for (main, name) in [
            ("smtp_mail_timeout = soon\n", "smtp_mail_timeout"),
            ("smtp_skip_5xx_greeting = maybe\n", "smtp_skip_5xx_greeting"),
            ("line_length_limit = x\n", "line_length_limit"),
        ] {
            let c = config(main, "");
            match Settings::from_config(&c, "smtp", Protocol::Smtp) {
                Err(SettingsError::BadValue { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{main}: {other:?}"),
            }
        }
    }
}
