//! The server text after `check_policy_service`: `transport:endpoint` or Postfix 3.0's
//! `{ transport:endpoint, name=value, ... }` with per-service overrides
//! (smtpd_check.c policy_client_register(), attr_override.c, auto_clnt_create(),
//! host_port.c), with Postfix's fatal error texts.
//!
//! # Security
//! The text comes from main.cf/master.cf (trusted configuration); it is parsed without
//! panics all the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::PolicySettings;

/// Why a server text is unusable; the texts are Postfix's fatal errors
/// (policy_client_register(), attr_override(), auto_clnt_create()).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("policy service syntax error: {0}")]
    Syntax(String),
    #[error("empty policy service: \"{0}\"")]
    Empty(String),
    #[error("malformed option: {0}: \"...{1}...\"")]
    MalformedOption(&'static str, String),
    #[error("bad numerical configuration: {0} = {1}")]
    BadNumber(String, String),
    #[error("{0}: bad time value or unit: {1}")]
    BadTime(String, String),
    #[error("unknown option: \"{0} = {1}\"")]
    UnknownOption(String, String),
    #[error("need service transport:endpoint instead of \"{0}\"")]
    NoTransport(String),
    #[error("invalid transport name: {0} in service: {1}")]
    BadTransport(String, String),
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Inet { host: String, port: String },
    Unix(PathBuf),
}

/// One server text, parsed: where to connect and the settings after its overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServiceSpec {
    /// The endpoint as Postfix names it in warnings (`127.0.0.1:10031`, `private/policy`).
    pub(super) name: String,
    pub(super) target: Target,
    pub(super) settings: PolicySettings,
}

/// Parses `transport:endpoint` or `{ transport:endpoint, name=value, ... }`.
pub(super) fn parse_service(
    server: &str,
    base: &PolicySettings,
) -> Result<ServiceSpec, ServiceError> {
    let mut settings = base.clone();
    let trimmed = server.trim();
    let endpoint = if trimmed.starts_with('{') {
        // Postfix prints the text extpar() left, not extpar()'s message.
        let inner = tern_config::list::split(trimmed)
            .map_err(|e| ServiceError::Syntax(extpar_rest(&e)))?
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut items = tern_config::list::split_keep_braces(&inner).into_iter();
        let endpoint = items
            .next()
            .ok_or_else(|| ServiceError::Empty(server.to_owned()))?;
        for item in items {
            override_one(&mut settings, &item)?;
        }
        endpoint
    } else {
        trimmed.to_owned()
    };
    let (transport, rest) = match endpoint.split_once(':') {
        Some((t, r)) if !t.is_empty() && !r.is_empty() => (t, r),
        _ => return Err(ServiceError::NoTransport(endpoint.clone())),
    };
    let target = match transport {
        "inet" => {
            let (host, port) = split_host_port(rest);
            Target::Inet { host, port }
        }
        "unix" | "local" => {
            let path = Path::new(rest);
            Target::Unix(if path.is_absolute() {
                path.to_path_buf()
            } else {
                settings.queue_directory.join(path)
            })
        }
        other => {
            return Err(ServiceError::BadTransport(
                other.to_owned(),
                endpoint.clone(),
            ));
        }
    };
    Ok(ServiceSpec {
        name: rest.to_owned(),
        target,
        settings,
    })
}

/// The text policy_client_register() prints after a failed extpar(): the element without
/// its first `{` (and without the last character when text follows the closing brace).
fn extpar_rest(error: &tern_config::list::ListError) -> String {
    use tern_config::list::ListError;
    match error {
        ListError::MissingClose { element } => element.get(1..).unwrap_or_default().to_owned(),
        ListError::TextAfterClose { element } => {
            let close = element.rfind('}').unwrap_or(element.len());
            element.get(1..close).unwrap_or_default().to_owned()
        }
    }
}

/// host_port(): `host:port`, `[v6addr]:port`, or a bare port on localhost.
fn split_host_port(text: &str) -> (String, String) {
    if let Some((host, port)) = text
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("]:"))
    {
        return (host.to_owned(), port.to_owned());
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => (host.to_owned(), port.to_owned()),
        Some((_, port)) => ("localhost".to_owned(), port.to_owned()),
        None => ("localhost".to_owned(), text.to_owned()),
    }
}

/// One `name=value` override (attr_override(); names are the main.cf names without
/// `smtpd_policy_service_`).
fn override_one(settings: &mut PolicySettings, item: &str) -> Result<(), ServiceError> {
    let item = if item.starts_with('{') {
        tern_config::list::split(item)
            .map_err(|e| ServiceError::Syntax(e.to_string()))?
            .into_iter()
            .next()
            .unwrap_or_default()
    } else {
        item.to_owned()
    };
    // split_nameval(): blanks around the name and the value are dropped.
    let Some((key, value)) = item.split_once('=') else {
        return Err(ServiceError::MalformedOption(
            "missing '=' after attribute name",
            item.clone(),
        ));
    };
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() {
        return Err(ServiceError::MalformedOption(
            "missing attribute name",
            item.clone(),
        ));
    }
    let time = |v: &str| match tern_config::text::time_seconds(v, 1) {
        Some(secs) if secs >= 1 => Ok(Duration::from_secs(secs)),
        _ => Err(ServiceError::BadTime(key.to_owned(), v.to_owned())),
    };
    let int = |v: &str, min: u32| match v.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ServiceError::BadNumber(key.to_owned(), v.to_owned())),
    };
    match key {
        "timeout" => settings.timeout = time(value)?,
        "max_idle" => settings.max_idle = time(value)?,
        "max_ttl" => settings.max_ttl = time(value)?,
        "retry_delay" => settings.retry_delay = time(value)?,
        "request_limit" => settings.request_limit = int(value, 0)?,
        "try_limit" => settings.try_limit = int(value, 1)?,
        "default_action" => value.clone_into(&mut settings.default_action),
        "policy_context" => value.clone_into(&mut settings.policy_context),
        _ => {
            return Err(ServiceError::UnknownOption(
                key.to_owned(),
                value.to_owned(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(host: &str, port: &str) -> Target {
        Target::Inet {
            host: host.to_owned(),
            port: port.to_owned(),
        }
    }

    #[test]
    fn endpoints() {
        let base = PolicySettings {
            queue_directory: PathBuf::from("/q"),
            ..PolicySettings::default()
        };
        for (server, name, target) in [
            (
                "inet:127.0.0.1:10023",
                "127.0.0.1:10023",
                inet("127.0.0.1", "10023"),
            ),
            ("inet:[::1]:10023", "[::1]:10023", inet("::1", "10023")),
            (
                "inet:localhost:10023",
                "localhost:10023",
                inet("localhost", "10023"),
            ),
            ("inet:10023", "10023", inet("localhost", "10023")),
            (
                "unix:private/policy",
                "private/policy",
                Target::Unix("/q/private/policy".into()),
            ),
            (
                "unix:/run/p.sock",
                "/run/p.sock",
                Target::Unix("/run/p.sock".into()),
            ),
            (
                "local:/run/p.sock",
                "/run/p.sock",
                Target::Unix("/run/p.sock".into()),
            ),
            (
                "{ inet:127.0.0.1:1 }",
                "127.0.0.1:1",
                inet("127.0.0.1", "1"),
            ),
        ] {
            let spec = parse_service(server, &base).unwrap();
            assert_eq!(
                (spec.name.as_str(), &spec.target),
                (name, &target),
                "{server}"
            );
            assert_eq!(spec.settings, base, "{server}");
        }
    }

    #[test]
    fn overrides() {
        let base = PolicySettings::default();
        let spec = parse_service(
            "{ inet:127.0.0.1:1, timeout=10s, max_idle=1m max_ttl=2h, retry_delay=3, \
             request_limit=0, try_limit=5, { default_action = DUNNO }, policy_context=x=y }",
            &base,
        )
        .unwrap();
        let want = PolicySettings {
            timeout: Duration::from_secs(10),
            max_idle: Duration::from_mins(1),
            max_ttl: Duration::from_hours(2),
            retry_delay: Duration::from_secs(3),
            request_limit: 0,
            try_limit: 5,
            default_action: "DUNNO".into(),
            policy_context: "x=y".into(),
            ..base
        };
        assert_eq!(spec.settings, want);
    }

    #[test]
    fn errors() {
        let base = PolicySettings::default();
        for (server, error) in [
            (
                "inet:",
                "need service transport:endpoint instead of \"inet:\"",
            ),
            (
                "127.0.0.1",
                "need service transport:endpoint instead of \"127.0.0.1\"",
            ),
            (
                "{ inet:1, try_limit=0 }",
                "bad numerical configuration: try_limit = 0",
            ),
            (
                "{ inet:1, timeout=0 }",
                "timeout: bad time value or unit: 0",
            ),
            (
                "{ inet:1, = x }",
                "malformed option: missing attribute name: \"...=...\"",
            ),
            ("{a}b", "policy service syntax error: a"),
        ] {
            let got = parse_service(server, &base).unwrap_err().to_string();
            assert_eq!(got, error, "{server}");
        }
    }
}
