//! What `postconf -M`, `-F` and `-P` print, byte for byte, and how their `name/type[/x]`
//! patterns select entries.
//!
//! The formatters work on parsed [`Service`]s and trust them. Layout facts (from Postfix 3.7):
//! `-M` puts the eight columns at byte offsets 0, 11, 17, 25, 33, 41, 49, 57 with at least one
//! space between them; `-f` folds at 80 columns with a four-space indent and always puts each
//! `-o value` pair on a line of its own; arguments that contain blanks are shown in `{ }`
//! (except the first non-option argument, which Postfix never braces). `-P` output has its
//! whitespace collapsed, as all of postconf's `name = value` lines do.

use super::{MasterCf, Service, is_option, lex, takes_value};

use crate::text::{INDENT, LINE_LIMIT};

const INDENT_LEN: usize = INDENT.len();
/// Where `postconf -M` starts each of the eight columns.
const COLUMN_GOAL: [usize; 8] = [0, 11, 17, 25, 33, 41, 49, 57];

/// A master.cf column, as `postconf -F` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Service,
    Type,
    Private,
    Unprivileged,
    Chroot,
    Wakeup,
    ProcessLimit,
    Command,
}

/// The fields in the order `postconf -F` prints them.
pub const FIELDS: [Field; 8] = [
    Field::Service,
    Field::Type,
    Field::Private,
    Field::Unprivileged,
    Field::Chroot,
    Field::Wakeup,
    Field::ProcessLimit,
    Field::Command,
];

impl Field {
    /// The name in `service/type/field` (`process_limit`, not `maxproc`).
    pub fn name(self) -> &'static str {
        match self {
            Field::Service => "service",
            Field::Type => "type",
            Field::Private => "private",
            Field::Unprivileged => "unprivileged",
            Field::Chroot => "chroot",
            Field::Wakeup => "wakeup",
            Field::ProcessLimit => "process_limit",
            Field::Command => "command",
        }
    }

    /// The field with this exact (case-sensitive) name.
    pub fn from_name(name: &str) -> Option<Field> {
        FIELDS.into_iter().find(|f| f.name() == name)
    }

    /// The column's text in `svc` (for `Command`, the command name alone).
    pub fn value(self, svc: &Service) -> &str {
        match self {
            Field::Service => &svc.name,
            Field::Type => &svc.kind,
            Field::Private => &svc.private,
            Field::Unprivileged => &svc.unpriv,
            Field::Chroot => &svc.chroot,
            Field::Wakeup => &svc.wakeup,
            Field::ProcessLimit => &svc.maxproc,
            Field::Command => &svc.command,
        }
    }
}

/// A bad `-M`, `-F` or `-P` pattern; `Display` is Postfix's fatal message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("-M option requires service_name[/type]")]
    Entry,
    #[error("-F option requires service_name[/type[/field]]")]
    Field,
    #[error("-P option requires service_name[/type[/parameter]]")]
    Param,
    #[error("invalid service attribute name: \"{0}\"")]
    FieldName(String),
}

/// A parsed `name[/type[/x]]` pattern. Missing parts are `*`, which matches anything; `*`
/// must stand alone in its part. Empty parts vanish (`a//b` is `a/b`), as in Postfix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePattern {
    /// The pattern as given, for the "unmatched request" warning.
    pub raw: String,
    pub name: String,
    pub kind: String,
    /// The third part (field or parameter name), `*` when absent or for `-M`.
    pub rest: String,
}

impl ServicePattern {
    /// Parses a pattern of 1 to `max_parts` (2 or 3) parts; `None` when Postfix rejects it.
    pub fn parse(raw: &str, max_parts: usize) -> Option<ServicePattern> {
        if raw.starts_with('/') {
            return None;
        }
        let mut parts: Vec<&str> = raw.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() || parts.len() > max_parts {
            return None;
        }
        if parts.iter().any(|p| *p != "*" && p.contains('*')) {
            return None;
        }
        parts.resize(3, "*");
        Some(ServicePattern {
            raw: raw.to_string(),
            name: parts[0].to_string(),
            kind: parts[1].to_string(),
            rest: parts[2].to_string(),
        })
    }

    /// Does the pattern's `name/type` match the service?
    pub fn matches(&self, svc: &Service) -> bool {
        (self.name == "*" || self.name == svc.name) && (self.kind == "*" || self.kind == svc.kind)
    }
}

/// Output modifiers: `-f` (fold), `-h` (no names), `-H` (no values). The command line rules
/// on which go with which (`-M` takes only `-f`) are the caller's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShowOptions {
    pub fold: bool,
    pub hide_name: bool,
    pub hide_value: bool,
}

/// What a `show_*` function prints: the standard output text, and the warnings (text after
/// `postconf: warning: `) for patterns that matched nothing, to print after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub text: String,
    pub warnings: Vec<String>,
}

fn no_expand(_: &Service, value: &str) -> String {
    value.to_string()
}

fn has_blank(text: &str) -> bool {
    text.bytes().any(lex::is_blank)
}

/// One `postconf -M` line (with `fold`, `-Mf` lines), newline included.
pub fn format_m(svc: &Service, fold: bool) -> String {
    format_m_with(svc, fold, &no_expand)
}

/// [`format_m`] with `expand` applied to each `-o` value (`postconf -Mx`).
pub fn format_m_with(
    svc: &Service,
    fold: bool,
    expand: &dyn Fn(&Service, &str) -> String,
) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for (field, goal) in FIELDS.into_iter().zip(COLUMN_GOAL) {
        let text = field.value(svc);
        if line_len > 0 {
            loop {
                out.push(' ');
                line_len += 1;
                if line_len >= goal {
                    break;
                }
            }
        }
        out.push_str(text);
        line_len += text.len();
    }
    append_args(&mut out, line_len, svc, fold, true, expand);
    out.push('\n');
    out
}

/// One `postconf -F` line for `field` of `svc`, newline included.
pub fn format_f(svc: &Service, field: Field, opts: ShowOptions) -> String {
    format_f_with(svc, field, opts, &no_expand)
}

/// [`format_f`] with `expand` applied to each `-o` value (`postconf -Fx`).
pub fn format_f_with(
    svc: &Service,
    field: Field,
    opts: ShowOptions,
    expand: &dyn Fn(&Service, &str) -> String,
) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    if !opts.hide_name {
        out = format!("{}/{}/{}", svc.name, svc.kind, field.name());
        line_len = out.len();
    }
    if !opts.hide_name && !opts.hide_value {
        out.push_str(" = ");
        line_len += 3;
    }
    if !opts.hide_value {
        let value = field.value(svc);
        // Postfix folds a long first value even without -f (leaving "= " at the line end).
        if line_len > 0 && line_len + value.len() > LINE_LIMIT {
            out.push('\n');
            out.push_str(INDENT);
            line_len = INDENT_LEN;
        }
        out.push_str(value);
        line_len += value.len();
        if field == Field::Command {
            append_args(&mut out, line_len, svc, opts.fold, false, expand);
        }
    }
    out.push('\n');
    out
}

/// The command arguments as `-M` (`entry`) or `-F` lay them out after the command.
fn append_args(
    out: &mut String,
    mut line_len: usize,
    svc: &Service,
    fold: bool,
    entry: bool,
    expand: &dyn Fn(&Service, &str) -> String,
) {
    let args = &svc.args;
    let mut in_options = true;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let mut arg_len = arg.len();
        let mut value = None;
        let mut braces = false;
        if in_options {
            if !is_option(arg.as_bytes()) {
                // XXX: Postfix never braces the first non-option argument; we match it.
                in_options = false;
            } else if takes_value(arg.as_bytes()) && i + 1 < args.len() {
                // An option with a value always starts a new line when folding.
                line_len = LINE_LIMIT;
                let v = if arg == "-o" {
                    expand(svc, &args[i + 1])
                } else {
                    args[i + 1].clone()
                };
                // -M and -F count the pair's width differently; it does not change the
                // output since the line is full anyway, but we keep Postfix's numbers.
                arg_len += v.len() + if entry { 3 } else { 1 };
                braces = has_blank(&v);
                if braces {
                    arg_len += 2;
                }
                value = Some(v);
            }
        } else {
            braces = has_blank(arg);
        }
        if line_len > INDENT_LEN {
            if !fold || line_len + 1 + arg_len < LINE_LIMIT {
                out.push(' ');
                line_len += 1;
            } else {
                out.push('\n');
                out.push_str(INDENT);
                line_len = INDENT_LEN;
            }
        }
        let brace_arg = !in_options && braces;
        if brace_arg {
            out.push('{');
        }
        out.push_str(arg);
        if brace_arg {
            out.push('}');
        }
        line_len += arg.len() + 2 * usize::from(brace_arg);
        if let Some(v) = value {
            out.push(' ');
            if braces {
                out.push('{');
            }
            out.push_str(&v);
            if braces {
                out.push('}');
            }
            i += 1;
            line_len = LINE_LIMIT;
        }
        i += 1;
    }
}

/// The `-F` fields of `svc` as (field name, value) pairs, unfolded: the value of `command`
/// includes the arguments as `-F` prints them.
pub fn fields(svc: &Service) -> Vec<(&'static str, String)> {
    let opts = ShowOptions {
        hide_name: true,
        ..ShowOptions::default()
    };
    FIELDS
        .into_iter()
        .map(|f| {
            let mut line = format_f(svc, f, opts);
            line.pop();
            (f.name(), line)
        })
        .collect()
}

/// One `postconf -P` line for parameter `name` of `svc`, newline included.
pub fn format_p(svc: &Service, name: &str, value: &str, opts: ShowOptions) -> String {
    format_p_with(svc, name, value, opts, &no_expand)
}

/// [`format_p`] with `expand` applied to the value (`postconf -Px`).
pub fn format_p_with(
    svc: &Service,
    name: &str,
    value: &str,
    opts: ShowOptions,
    expand: &dyn Fn(&Service, &str) -> String,
) -> String {
    let text = if opts.hide_value {
        format!("{}/{}/{}", svc.name, svc.kind, name)
    } else if opts.hide_name {
        expand(svc, value)
    } else {
        format!(
            "{}/{}/{} = {}",
            svc.name,
            svc.kind,
            name,
            expand(svc, value)
        )
    };
    crate::text::print_line(&text, opts.fold)
}

fn parse_all(
    patterns: &[String],
    max_parts: usize,
    err: &PatternError,
) -> Result<Vec<ServicePattern>, PatternError> {
    patterns
        .iter()
        .map(|p| ServicePattern::parse(p, max_parts).ok_or_else(|| err.clone()))
        .collect()
}

fn unmatched(reqs: &[ServicePattern], counts: &[usize]) -> Vec<String> {
    reqs.iter()
        .zip(counts)
        .filter(|(_, n)| **n == 0)
        .map(|(r, _)| lex::printable(format!("unmatched request: \"{}\"", r.raw).as_bytes()))
        .collect()
}

/// `postconf -M [pattern...]`: each entry once per pattern it matches, in file order.
pub fn show_entries(
    cf: &MasterCf,
    patterns: &[String],
    fold: bool,
) -> Result<Listing, PatternError> {
    show_entries_with(cf, patterns, fold, &no_expand)
}

/// [`show_entries`] with `-x` expansion of `-o` values.
pub fn show_entries_with(
    cf: &MasterCf,
    patterns: &[String],
    fold: bool,
    expand: &dyn Fn(&Service, &str) -> String,
) -> Result<Listing, PatternError> {
    let reqs = parse_all(patterns, 2, &PatternError::Entry)?;
    let mut counts = vec![0; reqs.len()];
    let mut text = String::new();
    for svc in &cf.services {
        if reqs.is_empty() {
            text.push_str(&format_m_with(svc, fold, expand));
        }
        for (req, count) in reqs.iter().zip(counts.iter_mut()) {
            if req.matches(svc) {
                *count += 1;
                text.push_str(&format_m_with(svc, fold, expand));
            }
        }
    }
    Ok(Listing {
        text,
        warnings: unmatched(&reqs, &counts),
    })
}

/// `postconf -F [pattern...]`: fields of each entry, per matching pattern, in file order.
pub fn show_fields(
    cf: &MasterCf,
    patterns: &[String],
    opts: ShowOptions,
) -> Result<Listing, PatternError> {
    show_fields_with(cf, patterns, opts, &no_expand)
}

/// [`show_fields`] with `-x` expansion of `-o` values.
pub fn show_fields_with(
    cf: &MasterCf,
    patterns: &[String],
    opts: ShowOptions,
    expand: &dyn Fn(&Service, &str) -> String,
) -> Result<Listing, PatternError> {
    let mut reqs = Vec::new();
    for p in patterns {
        let req = ServicePattern::parse(p, 3).ok_or(PatternError::Field)?;
        let field = match req.rest.as_str() {
            "*" => None,
            name => Some(
                Field::from_name(name)
                    .ok_or_else(|| PatternError::FieldName(lex::printable(name.as_bytes())))?,
            ),
        };
        reqs.push((req, field));
    }
    let mut counts = vec![0; reqs.len()];
    let mut text = String::new();
    let all = |svc: &Service, text: &mut String| {
        for f in FIELDS {
            text.push_str(&format_f_with(svc, f, opts, expand));
        }
    };
    for svc in &cf.services {
        if reqs.is_empty() {
            all(svc, &mut text);
        }
        for ((req, field), count) in reqs.iter().zip(counts.iter_mut()) {
            if req.matches(svc) {
                *count += 1;
                match field {
                    Some(f) => text.push_str(&format_f_with(svc, *f, opts, expand)),
                    None => all(svc, &mut text),
                }
            }
        }
    }
    let pats: Vec<ServicePattern> = reqs.into_iter().map(|(r, _)| r).collect();
    Ok(Listing {
        text,
        warnings: unmatched(&pats, &counts),
    })
}

/// `postconf -P [pattern...]`: `-o` parameters per entry, sorted by name, from the table the
/// entry shares with every entry of the same `name/type` (see [`MasterCf::service_params`]).
pub fn show_params(
    cf: &MasterCf,
    patterns: &[String],
    opts: ShowOptions,
) -> Result<Listing, PatternError> {
    show_params_with(cf, patterns, opts, &no_expand)
}

/// [`show_params`] with `-x` expansion of the values.
pub fn show_params_with(
    cf: &MasterCf,
    patterns: &[String],
    opts: ShowOptions,
    expand: &dyn Fn(&Service, &str) -> String,
) -> Result<Listing, PatternError> {
    let reqs = parse_all(patterns, 3, &PatternError::Param)?;
    let mut counts = vec![0; reqs.len()];
    let mut text = String::new();
    for (svc, table) in cf.services.iter().zip(cf.service_params()) {
        let Some(table) = table else { continue };
        let all = |text: &mut String| {
            for (name, value) in &table {
                text.push_str(&format_p_with(svc, name, value, opts, expand));
            }
        };
        if reqs.is_empty() {
            all(&mut text);
        }
        for (req, count) in reqs.iter().zip(counts.iter_mut()) {
            if !req.matches(svc) {
                continue;
            }
            if req.rest == "*" {
                all(&mut text);
                *count += 1;
            } else if let Some(value) = table.get(&req.rest) {
                text.push_str(&format_p_with(svc, &req.rest, value, opts, expand));
                *count += 1;
            }
        }
    }
    Ok(Listing {
        text,
        warnings: unmatched(&reqs, &counts),
    })
}
