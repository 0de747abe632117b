//! Typed reads of parameters as one master.cf service sees them: main.cf, the service's
//! `-o` overrides, built-in defaults, `$name` expansion (Config::lookup_value and
//! Config::expand), then the value parsed as a boolean, a number or a time. The shape
//! every agent's settings reader takes; each keeps its own error type and converts
//! [`ParamError`] into it.
//!
//! Values come from the administrator's files; a malformed one is an error naming the
//! parameter, never a panic.

use std::time::Duration;

use crate::config::Config;
use crate::mastercf::Service;
use crate::text::time_seconds;

/// Why a parameter could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("bad parameter value: {name} = {value}")]
    BadValue { name: String, value: String },
    #[error("{name}: {why}")]
    Expand { name: String, why: String },
}

/// Reads parameters in one service's name space (`None`: main.cf alone).
#[derive(Clone, Copy)]
pub struct Params<'a> {
    config: &'a Config,
    service: Option<&'a Service>,
}

impl<'a> Params<'a> {
    pub fn new(config: &'a Config, service: Option<&'a Service>) -> Self {
        Self { config, service }
    }

    /// The value, expanded, without surrounding white space; empty when unset.
    pub fn text(&self, name: &str) -> Result<String, ParamError> {
        let Some(value) = self.config.lookup_value(name, self.service) else {
            return Ok(String::new());
        };
        self.config
            .expand(&value, self.service)
            .map(|e| e.text.trim().to_owned())
            .map_err(|e| ParamError::Expand {
                name: name.to_owned(),
                why: e.to_string(),
            })
    }

    /// The error for `value` of `name`.
    pub fn bad(name: &str, value: &str) -> ParamError {
        ParamError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    /// `yes`/`true` or `no`/`false`, in any case.
    pub fn bool(&self, name: &str) -> Result<bool, ParamError> {
        let v = self.text(name)?;
        match v.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(Self::bad(name, &v)),
        }
    }

    /// A non-negative number.
    pub fn int(&self, name: &str) -> Result<usize, ParamError> {
        let v = self.text(name)?;
        v.parse().map_err(|_| Self::bad(name, &v))
    }

    /// A time value; a bare number counts in seconds (the smtp_* and lmtp_* timeouts).
    pub fn time(&self, name: &str) -> Result<Duration, ParamError> {
        let v = self.text(name)?;
        time_seconds(&v, 1)
            .map(Duration::from_secs)
            .ok_or_else(|| Self::bad(name, &v))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn reads_with_overrides_and_refuses_bad_values() {
        let c = Config::from_texts(
            Path::new("/etc/postfix"),
            "a_bool = Yes\na_num = 12\na_time = 2m\nbad_num = x\nexp = $a_num\n",
            "relay unix - - n - - smtp -o a_num=7\n",
            "mx.example.org",
        )
        .expect("config");
        let relay = c.master.services.iter().find(|s| s.name == "relay");
        let main = Params::new(&c, None);
        let svc = Params::new(&c, relay);
        assert_eq!(main.bool("a_bool"), Ok(true));
        assert_eq!(main.int("a_num"), Ok(12));
        assert_eq!(svc.int("a_num"), Ok(7));
        assert_eq!(main.int("exp"), Ok(12));
        assert_eq!(main.time("a_time"), Ok(Duration::from_mins(2)));
        assert_eq!(main.text("unset_thing"), Ok(String::new()));
        assert_eq!(
            main.int("bad_num"),
            Err(ParamError::BadValue {
                name: "bad_num".into(),
                value: "x".into()
            })
        );
    }
}
