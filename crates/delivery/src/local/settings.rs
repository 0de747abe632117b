//! The main.cf parameters local(8) reads, taken once from a [`Config`] in the name space of
//! the transport's master.cf service (its `-o name=value` overrides first), as local.c's
//! parameter tables do.
//!
//! Trust: main.cf and master.cf are the administrator's; a value that does not parse is an
//! error ([`SettingsError`]), which the helper reports as Postfix's fatal start-up message.

use std::time::Duration;

use tern_config::config::Config;
use tern_config::mastercf::Service;

/// Where an address came from, for allow_mail_to_commands / allow_mail_to_files
/// (local.h EXPAND_TYPE_*; local(8) "alias", "forward", "include").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandType {
    Alias,
    Forward,
    Include,
}

/// A set of [`ExpandType`]s (the value of allow_mail_to_commands and friends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpandMask {
    pub alias: bool,
    pub forward: bool,
    pub include: bool,
}

impl ExpandMask {
    /// Whether `kind` is in the set. An address that came from no expansion at all (a
    /// recipient in the queue file) never reaches `|command` or `/file`.
    pub fn allows(self, kind: Option<ExpandType>) -> bool {
        match kind {
            Some(ExpandType::Alias) => self.alias,
            Some(ExpandType::Forward) => self.forward,
            Some(ExpandType::Include) => self.include,
            None => false,
        }
    }
}

/// prepend_delivered_header: where local(8) adds `Delivered-To:`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveredMask {
    pub command: bool,
    pub file: bool,
    pub forward: bool,
}

/// Everything local(8) takes from main.cf and master.cf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSettings {
    pub myhostname: String,
    pub queue_directory: String,
    pub recipient_delimiter: String,
    pub alias_maps: Vec<String>,
    /// forward_path, as written (expanded per recipient).
    pub forward_path: String,
    pub allow_mail_to_commands: ExpandMask,
    pub allow_mail_to_files: ExpandMask,
    pub prepend_delivered_header: DeliveredMask,
    /// propagate_unmatched_extensions, the local(8) part of it.
    pub propagate_unmatched: ExpandMask,
    pub owner_request_special: bool,
    pub expand_owner_alias: bool,
    pub reset_owner_alias: bool,
    pub frozen_delivered_to: bool,
    pub enable_original_recipient: bool,
    pub default_privs: String,
    pub mailbox_command: String,
    pub mailbox_command_maps: Vec<String>,
    pub mailbox_transport: String,
    pub mailbox_transport_maps: Vec<String>,
    pub fallback_transport: String,
    pub fallback_transport_maps: Vec<String>,
    /// luser_relay, as written (expanded per recipient).
    pub luser_relay: String,
    pub home_mailbox: String,
    pub mail_spool_directory: String,
    pub command_time_limit: Duration,
    pub local_command_shell: String,
    /// command_execution_directory, as written (expanded per recipient).
    pub command_execution_directory: String,
    pub command_expansion_filter: String,
    pub forward_expansion_filter: String,
    pub execution_directory_expansion_filter: String,
    pub export_environment: Vec<String>,
    pub import_environment: Vec<String>,
    pub duplicate_filter_limit: usize,
    pub mailbox_delivery_lock: Vec<String>,
    pub strict_mailbox_ownership: bool,
    pub require_home_directory: bool,
    pub mail_owner: String,
}

/// A parameter that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("bad parameter value: {name} = {value}")]
    BadValue { name: String, value: String },
    #[error("{name}: {why}")]
    Expand { name: String, why: String },
    #[error("unknown {name} value \"{word}\" in \"{value}\"")]
    BadWord {
        name: String,
        word: String,
        value: String,
    },
}

/// Reads parameters in one service's name space.
pub struct Params<'a> {
    pub config: &'a Config,
    pub service: Option<&'a Service>,
}

impl Params<'_> {
    /// The value, `$name` expanded unless the parameter is raw (forward_path, luser_relay).
    pub fn text(&self, name: &str) -> Result<String, SettingsError> {
        let Some(value) = self.config.lookup_value(name, self.service) else {
            return Ok(String::new());
        };
        if self.config.is_raw(name) {
            return Ok(value);
        }
        self.config
            .expand(&value, self.service)
            .map(|e| e.text)
            .map_err(|e| SettingsError::Expand {
                name: name.to_owned(),
                why: e.to_string(),
            })
    }

    pub fn list(&self, name: &str) -> Result<Vec<String>, SettingsError> {
        Ok(split_list(&self.text(name)?))
    }

    pub fn bool(&self, name: &str) -> Result<bool, SettingsError> {
        let v = self.text(name)?;
        match v.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(SettingsError::BadValue {
                name: name.to_owned(),
                value: v,
            }),
        }
    }

    pub fn time(&self, name: &str) -> Result<Duration, SettingsError> {
        let v = self.text(name)?;
        parse_time(&v).ok_or(SettingsError::BadValue {
            name: name.to_owned(),
            value: v,
        })
    }

    pub fn int(&self, name: &str) -> Result<usize, SettingsError> {
        let v = self.text(name)?;
        v.trim().parse().map_err(|_| SettingsError::BadValue {
            name: name.to_owned(),
            value: v.clone(),
        })
    }
}

impl LocalSettings {
    /// The settings of the local(8) service `service` (its master.cf name, e.g. `local`).
    pub fn from_config(config: &Config, service: &str) -> Result<LocalSettings, SettingsError> {
        let service = config.master.services.iter().find(|s| s.name == service);
        let p = Params { config, service };
        let mask = |name: &str| -> Result<ExpandMask, SettingsError> {
            let value = p.text(name)?;
            expand_mask(name, &value, &["alias", "forward", "include"])
        };
        let delivered = {
            let name = "prepend_delivered_header";
            let value = p.text(name)?;
            let mut m = DeliveredMask::default();
            for w in split_list(&value) {
                match w.to_ascii_lowercase().as_str() {
                    "command" => m.command = true,
                    "file" => m.file = true,
                    "forward" => m.forward = true,
                    _ => return Err(bad_word(name, &w, &value)),
                }
            }
            m
        };
        let propagate = {
            let name = "propagate_unmatched_extensions";
            let value = p.text(name)?;
            expand_mask(
                name,
                &value,
                &["alias", "forward", "include", "canonical", "virtual"],
            )?
        };
        Ok(LocalSettings {
            myhostname: p.text("myhostname")?,
            queue_directory: p.text("queue_directory")?,
            recipient_delimiter: p.text("recipient_delimiter")?,
            alias_maps: p.list("alias_maps")?,
            forward_path: p.text("forward_path")?,
            allow_mail_to_commands: mask("allow_mail_to_commands")?,
            allow_mail_to_files: mask("allow_mail_to_files")?,
            prepend_delivered_header: delivered,
            propagate_unmatched: propagate,
            owner_request_special: p.bool("owner_request_special")?,
            expand_owner_alias: p.bool("expand_owner_alias")?,
            reset_owner_alias: p.bool("reset_owner_alias")?,
            frozen_delivered_to: p.bool("frozen_delivered_to")?,
            enable_original_recipient: p.bool("enable_original_recipient")?,
            default_privs: p.text("default_privs")?,
            mailbox_command: p.text("mailbox_command")?,
            mailbox_command_maps: p.list("mailbox_command_maps")?,
            mailbox_transport: p.text("mailbox_transport")?,
            mailbox_transport_maps: p.list("mailbox_transport_maps")?,
            fallback_transport: p.text("fallback_transport")?,
            fallback_transport_maps: p.list("fallback_transport_maps")?,
            luser_relay: p.text("luser_relay")?,
            home_mailbox: p.text("home_mailbox")?,
            mail_spool_directory: p.text("mail_spool_directory")?,
            command_time_limit: p.time("command_time_limit")?,
            local_command_shell: p.text("local_command_shell")?,
            command_execution_directory: p.text("command_execution_directory")?,
            command_expansion_filter: p.text("command_expansion_filter")?,
            forward_expansion_filter: p.text("forward_expansion_filter")?,
            execution_directory_expansion_filter: p.text("execution_directory_expansion_filter")?,
            export_environment: p.list("export_environment")?,
            import_environment: p.list("import_environment")?,
            duplicate_filter_limit: p.int("duplicate_filter_limit")?,
            mailbox_delivery_lock: p.list("mailbox_delivery_lock")?,
            strict_mailbox_ownership: p.bool("strict_mailbox_ownership")?,
            require_home_directory: p.bool("require_home_directory")?,
            mail_owner: p.text("mail_owner")?,
        })
    }
}

fn bad_word(name: &str, word: &str, value: &str) -> SettingsError {
    SettingsError::BadWord {
        name: name.to_owned(),
        word: word.to_owned(),
        value: value.to_owned(),
    }
}

/// A list of the words in `known` (name_mask(3)); words outside `known[..3]` are accepted
/// and ignored (canonical, virtual belong to cleanup(8)).
fn expand_mask(name: &str, value: &str, known: &[&str]) -> Result<ExpandMask, SettingsError> {
    let mut m = ExpandMask::default();
    for w in split_list(value) {
        match w.to_ascii_lowercase().as_str() {
            "alias" => m.alias = true,
            "forward" => m.forward = true,
            "include" => m.include = true,
            other if known.contains(&other) => {}
            _ => return Err(bad_word(name, &w, value)),
        }
    }
    Ok(m)
}

/// Splits a list at commas and white space (Postfix's CHARS_COMMA_SP), `{ }` groups one
/// element (mail_parm_split: `inline:{ a=b, c=d }` is one table). A group whose braces
/// do not balance stays as written (the table then refuses it with its own message).
pub fn split_list(text: &str) -> Vec<String> {
    tern_config::list::split(text).unwrap_or_else(|_| tern_config::list::split_keep_braces(text))
}

/// A Postfix time value: digits and an optional unit (s, m, h, d, w; seconds by default).
pub fn parse_time(text: &str) -> Option<Duration> {
    tern_config::text::time_seconds(text, 1).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_times() {
        type Case<'a> = (&'a str, Option<(bool, bool, bool)>);
        let cases: &[Case<'_>] = &[
            ("alias, forward", Some((true, true, false))),
            ("include", Some((false, false, true))),
            ("", Some((false, false, false))),
            ("alias canonical virtual", Some((true, false, false))),
            ("bogus", None),
        ];
        for (value, want) in cases {
            let got = expand_mask(
                "x",
                value,
                &["alias", "forward", "include", "canonical", "virtual"],
            )
            .ok()
            .map(|m| (m.alias, m.forward, m.include));
            assert_eq!(got, *want, "{value}");
        }
        let times: &[(&str, Option<u64>)] = &[
            ("1000s", Some(1000)),
            ("2", Some(2)),
            ("3m", Some(180)),
            ("1h", Some(3600)),
            ("x", None),
            ("5q", None),
        ];
        for (t, want) in times {
            assert_eq!(parse_time(t).map(|d| d.as_secs()), *want, "{t}");
        }
    }

    #[test]
    fn lists() {
        let cases: &[(&str, &[&str])] = &[
            ("hash:/a, hash:/b", &["hash:/a", "hash:/b"]),
            (
                "inline:{ u=t, v=w } hash:/x",
                &["inline:{ u=t, v=w }", "hash:/x"],
            ),
            ("{ LESS=-m -C }, TZ", &["LESS=-m -C", "TZ"]),
            ("inline:{ u=t", &["inline:{ u=t"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(split_list(text), *want, "{text}");
        }
    }
}
