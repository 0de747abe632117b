//! The queue manager's settings from main.cf and master.cf: the time parameters, and for
//! each master.cf transport its process limit, destination concurrency and recipient
//! limits and the name it logs under.
//!
//! Time parameters take Postfix's default units when none is given (qmgr(8):
//! maximal_queue_lifetime and bounce_queue_lifetime in days, delay_warning_time in hours,
//! the others in seconds).
//!
//! Trust: the configuration is the administrator's; a bad value is a typed error.

use std::collections::HashMap;

use tern_config::config::Config;
use tern_config::mastercf::Service;

use tern_message::dsn::{FromFormat, NotifyClasses, Reporter};
use tern_queue::IdForm;

use super::schedule::{Limits, Policy};
use crate::settings::SettingsError;

/// One master.cf service that qmgr may hand mail to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The command (`discard`, `error`, `local`, `smtp`, `pipe`, ...).
    pub command: String,
    /// The service's syslog_name (its `-o syslog_name=` or main.cf's).
    pub syslog_name: String,
}

/// What the queue manager reads from the configuration.
#[derive(Debug, Clone)]
pub struct QmgrSettings {
    pub policy: Policy,
    pub default_limits: Limits,
    pub limits: HashMap<String, Limits>,
    /// master.cf services of type `unix` (the transports), by name.
    pub services: HashMap<String, ServiceInfo>,
    pub syslog_name: String,
    /// delay_logging_resolution_limit.
    pub delay_resolution: u32,
    /// What bounce(8) and internal submission need.
    pub notices: NoticeSettings,
    /// What a FILTER action needs (default_filter_nexthop, myhostname).
    pub filter: super::actions::FilterSettings,
}

/// The settings of the notices the queue manager sends and of the mail it submits
/// itself (bounce(8), cleanup(8) for internal mail, local(8)'s forwarding).
#[derive(Debug, Clone)]
pub struct NoticeSettings {
    /// The reporting host (myhostname, notify_classes, the *_notice_recipient values,
    /// double_bounce_sender, bounce_size_limit, ...).
    pub reporter: Reporter,
    /// cleanup's header settings for internal mail.
    pub cleanup: tern_message::cleanup::Settings,
    /// enable_long_queue_ids.
    pub id_form: IdForm,
}

/// Reads the settings (see the module documentation).
pub fn load(config: &Config) -> Result<QmgrSettings, SettingsError> {
    let p = Get {
        config,
        service: None,
    };
    let policy = Policy {
        queue_run_delay: p.time("queue_run_delay", 1)?,
        minimal_backoff_time: p.time("minimal_backoff_time", 1)?,
        maximal_backoff_time: p.time("maximal_backoff_time", 1)?,
        maximal_queue_lifetime: p.time("maximal_queue_lifetime", 86_400)?,
        bounce_queue_lifetime: p.time("bounce_queue_lifetime", 86_400)?,
        delay_warning_time: p.time("delay_warning_time", 3600)?,
    };
    let default_process_limit = p.number("default_process_limit")?;
    let default_limits = Limits {
        process_limit: default_process_limit,
        destination_concurrency: p.number("default_destination_concurrency_limit")?,
        initial_concurrency: p.number("initial_destination_concurrency")?,
        recipient_limit: p.number("default_destination_recipient_limit")?,
        failed_cohort_limit: p.number("default_destination_concurrency_failed_cohort_limit")?,
        rate_delay: p.time("default_destination_rate_delay", 1)?,
    };
    let mut limits = HashMap::new();
    let mut services = HashMap::new();
    for svc in config.master.services.iter().filter(|s| s.kind == "unix") {
        let sp = Get {
            config,
            service: Some(svc),
        };
        let own = |suffix: &str, fallback: usize| -> Result<usize, SettingsError> {
            let name = format!("{}_{suffix}", svc.name);
            match sp.get_opt(&name)? {
                Some(v) => v.trim().parse().map_err(|_| p.bad(&name, &v)),
                None => Ok(fallback),
            }
        };
        let own_time = |suffix: &str, fallback: u64| -> Result<u64, SettingsError> {
            let name = format!("{}_{suffix}", svc.name);
            match sp.get_opt(&name)? {
                Some(v) => parse_time(&v, 1).ok_or_else(|| p.bad(&name, &v)),
                None => Ok(fallback),
            }
        };
        let process_limit = if svc.maxproc == "-" {
            default_process_limit
        } else {
            svc.maxproc
                .parse()
                .map_err(|_| p.bad("maxproc", &svc.maxproc))?
        };
        limits.insert(
            svc.name.clone(),
            Limits {
                process_limit,
                destination_concurrency: own(
                    "destination_concurrency_limit",
                    default_limits.destination_concurrency,
                )?,
                initial_concurrency: default_limits.initial_concurrency,
                recipient_limit: own(
                    "destination_recipient_limit",
                    default_limits.recipient_limit,
                )?,
                failed_cohort_limit: own(
                    "destination_concurrency_failed_cohort_limit",
                    default_limits.failed_cohort_limit,
                )?,
                rate_delay: own_time("destination_rate_delay", default_limits.rate_delay)?,
            },
        );
        services.insert(
            svc.name.clone(),
            ServiceInfo {
                command: svc
                    .command
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                syslog_name: sp.get("syslog_name")?,
            },
        );
    }
    let notices = notice_settings(&p, &policy)?;
    let filter = super::actions::FilterSettings {
        default_filter_nexthop: p.get("default_filter_nexthop")?,
        myhostname: notices.reporter.myhostname.clone(),
    };
    Ok(QmgrSettings {
        filter,
        notices,
        policy,
        default_limits,
        limits,
        services,
        syslog_name: p.get("syslog_name")?,
        delay_resolution: u32::try_from(p.number("delay_logging_resolution_limit")?).unwrap_or(2),
    })
}

fn notice_settings(p: &Get<'_>, policy: &Policy) -> Result<NoticeSettings, SettingsError> {
    let myhostname = p.get("myhostname")?;
    let long_ids = p.bool("enable_long_queue_ids")?;
    let mut r = Reporter::new(&myhostname);
    r.mydomain = p.get("mydomain")?;
    r.myorigin = p.get("myorigin")?;
    r.mail_name = p.get("mail_name")?;
    r.bounce_size_limit = u64::try_from(p.number("bounce_size_limit")?).unwrap_or(u64::MAX);
    r.smtputf8_enable = p.bool("smtputf8_enable")?;
    let from = p.get("header_from_format")?;
    r.header_from_format = match from.trim().to_ascii_lowercase().as_str() {
        "standard" => FromFormat::Standard,
        "obsolete" => FromFormat::Obsolete,
        _ => return Err(p.bad("header_from_format", &from)),
    };
    r.delay_warning_time = policy.delay_warning_time;
    r.maximal_queue_lifetime = policy.maximal_queue_lifetime;
    r.notify_classes = NotifyClasses::parse(&p.get("notify_classes")?);
    r.bounce_notice_recipient = p.get("bounce_notice_recipient")?;
    r.bounce_2_notice_recipient = p.get("2bounce_notice_recipient")?;
    r.delay_notice_recipient = p.get("delay_notice_recipient")?;
    r.double_bounce_sender = p.get("double_bounce_sender")?;
    r.enable_long_queue_ids = long_ids;
    let cleanup = tern_message::cleanup::Settings {
        myhostname,
        hopcount_limit: p.number("hopcount_limit")?,
        header_size_limit: p.number("header_size_limit")?,
        header_address_token_limit: p.number("header_address_token_limit")?,
        always_add_missing_headers: p.bool("always_add_missing_headers")?,
        undisclosed_recipients_header: p.get("undisclosed_recipients_header")?,
        enable_long_queue_ids: long_ids,
        message_drop_headers: tern_config::list::split(&p.get("message_drop_headers")?)
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
    };
    Ok(NoticeSettings {
        reporter: r,
        cleanup,
        id_form: if long_ids {
            IdForm::Long
        } else {
            IdForm::Short
        },
    })
}

/// Parameter access in a service's name space.
struct Get<'a> {
    config: &'a Config,
    service: Option<&'a Service>,
}

impl Get<'_> {
    fn get_opt(&self, name: &str) -> Result<Option<String>, SettingsError> {
        let Some(raw) = self.config.lookup_value(name, self.service) else {
            return Ok(None);
        };
        if self.config.is_raw(name) {
            return Ok(Some(raw));
        }
        Ok(Some(self.config.expand(&raw, self.service)?.text))
    }

    fn get(&self, name: &str) -> Result<String, SettingsError> {
        Ok(self.get_opt(name)?.unwrap_or_default())
    }

    fn bad(&self, name: &str, value: &str) -> SettingsError {
        SettingsError::BadValue {
            dir: self.config.dir.display().to_string(),
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    fn number(&self, name: &str) -> Result<usize, SettingsError> {
        let v = self.get(name)?;
        v.trim().parse().map_err(|_| self.bad(name, &v))
    }

    fn bool(&self, name: &str) -> Result<bool, SettingsError> {
        let v = self.get(name)?;
        match v.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" => Ok(true),
            "no" | "false" | "0" => Ok(false),
            _ => Err(self.bad(name, &v)),
        }
    }

    fn time(&self, name: &str, unit: u64) -> Result<u64, SettingsError> {
        let v = self.get(name)?;
        parse_time(&v, unit).ok_or_else(|| self.bad(name, &v))
    }
}

use tern_config::text::time_seconds as parse_time;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn times_with_default_units() {
        for (text, unit, want) in [
            ("300s", 1, Some(300)),
            ("5", 86_400, Some(432_000)),
            ("4h", 1, Some(14_400)),
            ("0h", 3600, Some(0)),
            ("1w", 1, Some(604_800)),
            ("x", 1, None),
        ] {
            assert_eq!(parse_time(text, unit), want, "{text}");
        }
    }

    #[test]
    fn defaults_and_transports() {
        let main = "compatibility_level = 3.6\n\
                    discard_destination_recipient_limit = 7\n\
                    maximal_queue_lifetime = 2\n";
        let master = "smtp inet n - y - - smtpd\n\
                      local unix - n n - - local\n\
                      discard unix - - n - 3 discard\n\
                      retry unix - - n - - error -o syslog_name=postfix/r\n";
        let config = Config::from_texts(Path::new("/etc/postfix"), main, master, "mx.example.com")
            .expect("config");
        let s = load(&config).expect("settings");
        assert_eq!(
            s.policy,
            Policy {
                maximal_queue_lifetime: 2 * 86_400,
                ..Policy::default()
            }
        );
        assert_eq!(s.default_limits, Limits::default());
        let local = s.limits["local"];
        assert_eq!(
            (local.destination_concurrency, local.recipient_limit),
            (2, 1)
        );
        let discard = s.limits["discard"];
        assert_eq!((discard.process_limit, discard.recipient_limit), (3, 7));
        assert_eq!(s.services["retry"].command, "error");
        assert_eq!(s.services["retry"].syslog_name, "postfix/r");
        assert_eq!(s.services["discard"].syslog_name, "postfix");
        assert!(!s.services.contains_key("smtp"));
        let r = &s.notices.reporter;
        assert_eq!(r.myhostname, "mx.example.com");
        assert_eq!(r.double_bounce_sender, "double-bounce");
        assert_eq!(r.bounce_size_limit, 50_000);
        assert_eq!(r.notify_classes, NotifyClasses::default());
        assert_eq!(r.maximal_queue_lifetime, 2 * 86_400);
        assert_eq!(s.notices.cleanup.hopcount_limit, 50);
        assert_eq!(s.notices.id_form, IdForm::Short);
    }
}
