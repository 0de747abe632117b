//! The parameter registry: every parameter Tern knows, with Postfix 3.7's name and default
//! text, its type, bounds and a one-line description. One table feeds `postconf -d`, the
//! daemons and the docs.
//!
//! The table is data, not code: `params.tsv` beside this file lists every built-in parameter
//! that Debian 12's `postconf -d` prints for an empty `master.cf` (Postfix 3.7.11), with the
//! type and bounds of Postfix's C configuration tables. `gen-params.sh` regenerates it from a
//! Postfix source tree and the reference `postconf`. `descriptions.tsv` holds one-line
//! descriptions, kept by hand. Both are compiled in with `include_str!` and parsed once, on
//! first use; the unit tests below hold the compiled-in text to the format, so the parser
//! can skip a malformed row instead of panicking.
//!
//! Version-bound texts are kept as Debian prints them: `mail_version = 3.7.11`,
//! `mail_release_date = 20240304`. Defaults that depend on `compatibility_level` are kept as
//! their conditional text (`${{$compatibility_level} <level {2} ? {subnet} : {host}}`); the
//! [`crate::expand`] module evaluates them.

mod service;

use std::collections::HashMap;
use std::sync::LazyLock;

pub use service::service_params;

/// A parameter's value type, as Postfix's configuration tables declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A string, `$name` expanded when used.
    Str,
    /// A string used as written (no `$name` expansion by the daemons).
    Raw,
    Bool,
    Int,
    Long,
    /// A time with a default unit letter (`s`, `m`, `h`, `d`, `w`).
    Time(char),
}

/// A default that is not fixed text but read from the host at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostDefault {
    MyHostname,
    MyDomain,
    MyNetworks,
    ProcessId,
    /// The running program's name (`postconf` prints `postconf`; a daemon its own name).
    ProcessName,
}

/// Where a parameter's default comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    Text(&'static str),
    Host(HostDefault),
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: DefaultValue,
    /// Inclusive lower and upper bounds for numeric types (0 where Postfix has none). For
    /// `Str` and `Raw` they are Postfix's bounds on the value's length (0 = none).
    pub min: i64,
    pub max: i64,
    pub description: &'static str,
}

/// Names that Postfix's postconf still accepts without an "unused parameter" warning, as a
/// migration aid, but leaves out of the full `postconf -d` listing. `postconf -d NAME` and
/// `postconf NAME` print them with an empty default.
pub const LEGACY: &[&str] = &[
    "authorized_verp_clients",
    "fallback_relay",
    "lmtp_per_record_deadline",
    "postscreen_blacklist_action",
    "postscreen_dnsbl_ttl",
    "postscreen_dnsbl_whitelist_threshold",
    "postscreen_whitelist_interfaces",
    "smtp_per_record_deadline",
    "smtpd_client_connection_limit_exceptions",
    "smtpd_per_record_deadline",
    "tlsproxy_client_level",
    "tlsproxy_client_policy",
    "virtual_maps",
];

/// Defaults that Tern changes on purpose for safety, with Postfix 3.7's default text: Tern
/// follows Postfix 3.9+ here. `smtpd_forbid_bare_newline = normalize` closes the SMTP
/// smuggling hole (CVE-2023-51764) without refusing old clients (RFC 5321 2.3.8: a bare LF
/// is no line end). docs/compat.md lists each row.
pub const SAFER_DEFAULTS: &[(&str, &str)] = &[("smtpd_forbid_bare_newline", "no")];

/// Every built-in parameter, sorted by name.
pub fn all() -> &'static [Param] {
    TABLE.as_slice()
}

/// The built-in parameter `name`.
pub fn lookup(name: &str) -> Option<&'static Param> {
    let table = all();
    table
        .binary_search_by(|p| p.name.cmp(name))
        .ok()
        .and_then(|i| table.get(i))
}

/// Whether `name` is one of the [`LEGACY`] names.
pub fn is_legacy(name: &str) -> bool {
    LEGACY.binary_search(&name).is_ok()
}

/// The compiled-in table text.
const PARAMS_TSV: &str = include_str!("params.tsv");
/// The compiled-in descriptions (`name<TAB>description`, one a line).
const DESCRIPTIONS_TSV: &str = include_str!("descriptions.tsv");

static TABLE: LazyLock<Vec<Param>> = LazyLock::new(|| parse_table(PARAMS_TSV, DESCRIPTIONS_TSV).0);

/// Why one row of `params.tsv` was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("params.tsv line {line}: {reason}")]
pub struct RowError {
    pub line: usize,
    pub reason: String,
}

/// Parses the table text and the descriptions into parameters sorted by name, with one entry
/// per name (the first row wins), and the rows that were skipped.
fn parse_table(params: &'static str, descriptions: &'static str) -> (Vec<Param>, Vec<RowError>) {
    let descriptions: HashMap<&'static str, &'static str> = descriptions
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, text)| (name.trim(), text.trim()))
        .collect();
    let mut table = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in params.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_row(line) {
            Ok(mut param) => {
                param.description = descriptions.get(param.name).copied().unwrap_or("");
                table.push(param);
            }
            Err(reason) => errors.push(RowError {
                line: index + 1,
                reason,
            }),
        }
    }
    // A stable sort keeps the first of equal names, which dedup_by_key then retains.
    table.sort_by_key(|p| p.name);
    let before = table.len();
    table.dedup_by_key(|p| p.name);
    if table.len() != before {
        errors.push(RowError {
            line: 0,
            reason: "duplicate parameter names".to_string(),
        });
    }
    (table, errors)
}

/// One row: `name type min max host default`.
fn parse_row(line: &'static str) -> Result<Param, String> {
    let mut fields = line.splitn(6, '\t');
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| format!("missing {what} column"))
    };
    let name = next("name")?;
    let ty = next("type")?;
    let min = next("min")?;
    let max = next("max")?;
    let host = next("host")?;
    let text = next("default")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("bad parameter name {name:?}"));
    }
    let ty = parse_type(ty).ok_or_else(|| format!("{name}: bad type {ty:?}"))?;
    let min = min
        .parse()
        .map_err(|_| format!("{name}: bad min {min:?}"))?;
    let max = max
        .parse()
        .map_err(|_| format!("{name}: bad max {max:?}"))?;
    let default = match host {
        "-" => DefaultValue::Text(text),
        "myhostname" => DefaultValue::Host(HostDefault::MyHostname),
        "mydomain" => DefaultValue::Host(HostDefault::MyDomain),
        "mynetworks" => DefaultValue::Host(HostDefault::MyNetworks),
        "process_id" => DefaultValue::Host(HostDefault::ProcessId),
        "process_name" => DefaultValue::Host(HostDefault::ProcessName),
        other => return Err(format!("{name}: bad host default {other:?}")),
    };
    Ok(Param {
        name,
        ty,
        default,
        min,
        max,
        description: "",
    })
}

/// `str`, `raw`, `bool`, `int`, `long` or `time:U`.
fn parse_type(text: &str) -> Option<ParamType> {
    Some(match text {
        "str" => ParamType::Str,
        "raw" => ParamType::Raw,
        "bool" => ParamType::Bool,
        "int" => ParamType::Int,
        "long" => ParamType::Long,
        _ => {
            let unit = text.strip_prefix("time:")?;
            let mut chars = unit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() => ParamType::Time(c),
                _ => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_table_parses_without_errors() {
        let (table, errors) = parse_table(PARAMS_TSV, DESCRIPTIONS_TSV);
        assert_eq!(errors, Vec::new());
        assert_eq!(table.len(), all().len());
        // Debian 12's postconf -d lists 831 built-ins for an empty master.cf.
        assert!(all().len() >= 800, "only {} parameters", all().len());
    }

    #[test]
    fn sorted_and_unique() {
        for pair in all().windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} then {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn every_name_is_found() {
        for p in all() {
            assert_eq!(lookup(p.name).map(|q| q.name), Some(p.name));
        }
        assert_eq!(lookup("no_such_parameter"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn legacy_names_sorted_and_not_built_in() {
        for pair in LEGACY.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for name in LEGACY {
            assert!(lookup(name).is_none(), "{name}");
            assert!(is_legacy(name));
        }
        assert!(!is_legacy("myhostname"));
    }

    #[test]
    fn known_parameters() {
        let cases: &[(&str, ParamType, DefaultValue, i64, i64)] = &[
            (
                "myhostname",
                ParamType::Str,
                DefaultValue::Host(HostDefault::MyHostname),
                1,
                0,
            ),
            (
                "mydomain",
                ParamType::Str,
                DefaultValue::Host(HostDefault::MyDomain),
                1,
                0,
            ),
            (
                "mynetworks",
                ParamType::Str,
                DefaultValue::Host(HostDefault::MyNetworks),
                0,
                0,
            ),
            (
                "process_id",
                ParamType::Int,
                DefaultValue::Host(HostDefault::ProcessId),
                0,
                0,
            ),
            (
                "process_name",
                ParamType::Str,
                DefaultValue::Host(HostDefault::ProcessName),
                0,
                0,
            ),
            ("service_name", ParamType::Str, DefaultValue::Text(""), 0, 0),
            (
                "mail_version",
                ParamType::Str,
                DefaultValue::Text("3.7.11"),
                1,
                0,
            ),
            (
                "compatibility_level",
                ParamType::Str,
                DefaultValue::Text("0"),
                0,
                0,
            ),
            (
                "max_idle",
                ParamType::Time('s'),
                DefaultValue::Text("100s"),
                1,
                0,
            ),
            (
                "maximal_queue_lifetime",
                ParamType::Time('d'),
                DefaultValue::Text("5d"),
                0,
                8_640_000,
            ),
            (
                "message_size_limit",
                ParamType::Long,
                DefaultValue::Text("10240000"),
                0,
                0,
            ),
            (
                "delay_logging_resolution_limit",
                ParamType::Int,
                DefaultValue::Text("2"),
                0,
                6,
            ),
            ("biff", ParamType::Bool, DefaultValue::Text("yes"), 0, 0),
            (
                "smtputf8_enable",
                ParamType::Bool,
                DefaultValue::Text("${{$compatibility_level} <level {1} ? {no} : {yes}}"),
                0,
                0,
            ),
            (
                "mynetworks_style",
                ParamType::Str,
                DefaultValue::Text("${{$compatibility_level} <level {2} ? {subnet} : {host}}"),
                1,
                0,
            ),
            (
                "local_destination_concurrency_limit",
                ParamType::Int,
                DefaultValue::Text("2"),
                0,
                0,
            ),
        ];
        for &(name, ty, default, min, max) in cases {
            let p = lookup(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                (p.ty, p.default, p.min, p.max),
                (ty, default, min, max),
                "{name}"
            );
        }
    }

    #[test]
    fn rows() {
        let cases: &[(&'static str, Option<(ParamType, DefaultValue)>)] = &[
            (
                "a\tstr\t0\t0\t-\tx y",
                Some((ParamType::Str, DefaultValue::Text("x y"))),
            ),
            (
                "a\traw\t0\t0\t-\t",
                Some((ParamType::Raw, DefaultValue::Text(""))),
            ),
            (
                "a\ttime:h\t0\t0\t-\t1h",
                Some((ParamType::Time('h'), DefaultValue::Text("1h"))),
            ),
            (
                "a\tint\t-1\t9\t-\t3",
                Some((ParamType::Int, DefaultValue::Text("3"))),
            ),
            (
                "a\tstr\t1\t0\tmyhostname\t",
                Some((ParamType::Str, DefaultValue::Host(HostDefault::MyHostname))),
            ),
            ("a\tstr\t0\t0\t-", None),
            ("a\tstring\t0\t0\t-\tx", None),
            ("a\ttime:\t0\t0\t-\tx", None),
            ("a\ttime:hh\t0\t0\t-\tx", None),
            ("a\tint\tx\t0\t-\t1", None),
            ("a\tint\t0\t0\tnowhere\t1", None),
            ("a b\tint\t0\t0\t-\t1", None),
            ("", None),
        ];
        for &(line, want) in cases {
            let got = parse_row(line).ok().map(|p| (p.ty, p.default));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn descriptions_and_duplicates() {
        let params = "# c\nb\tint\t0\t0\t-\t1\na\tbool\t0\t0\t-\tyes\nb\tint\t0\t0\t-\t2\nbad\n";
        let (table, errors) = parse_table(params, "a\tThe a.\n# comment\nzz\tunused\n");
        let got: Vec<_> = table
            .iter()
            .map(|p| (p.name, p.default, p.description))
            .collect();
        assert_eq!(
            got,
            [
                ("a", DefaultValue::Text("yes"), "The a."),
                ("b", DefaultValue::Text("1"), "")
            ]
        );
        assert_eq!(errors.len(), 2);
    }
}
