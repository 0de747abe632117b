//! main.cf parameters in postconf: which names are user-defined, printing them, and the
//! warnings about unused, undefined and read-only names.
//!
//! A name that is neither built in nor implied by a master.cf service becomes user-defined
//! when it has a `name = value` and is referenced as `$name` somewhere, or is named in
//! `smtpd_restriction_classes` (postconf(1), "user-defined parameters"). Values of built-in
//! names are expanded once while scanning, so a recursive definition is found even when it is
//! not printed, as Postfix does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use tern_config::config::{Config, ParamClass, READ_ONLY_PARAMETERS};
use tern_config::expand;

use super::mode::{HIDE_NAME, HIDE_VALUE, SHOW_DEFS, SHOW_EVAL, SHOW_NONDEF};
use super::{Invocation, class, write_out};
use crate::fatal;
use crate::msg::{Fatal, Msg};
use tern_config::text::print_line;

/// What the scan learned about master.cf name spaces: per service (by index), the `-o` names
/// that a `$name` or a restriction class validates.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub valid_local: BTreeMap<usize, BTreeSet<String>>,
}

/// Registers user-defined names and reports read-only assignments and undefined `$name`s.
pub(crate) fn register_user(msg: &Msg, config: &mut Config) -> Result<Scan, Fatal> {
    let mut scan = Scan::default();
    let mut rest_classes: BTreeSet<String> = BTreeSet::new();
    let dir = config.dir.to_string_lossy().into_owned();

    // Each master.cf service's -o settings form a name space of their own.
    let spaces = name_spaces(config);

    for (index, space) in &spaces {
        scan_namespace(
            msg,
            config,
            &dir,
            space,
            Some(*index),
            &spaces,
            &mut scan,
            &mut rest_classes,
        )?;
    }

    // Defaults may name obsolete parameters for compatibility: those must not be "unused".
    let defaults: Vec<String> = config
        .listed_names()
        .into_iter()
        .filter(|n| !config.is_raw(n) && config.setting(n).is_none())
        .filter_map(|n| config.default_text(&n))
        .collect();
    for text in defaults {
        for name in expand::referenced_names(&text) {
            flag_user(msg, config, &dir, &name, None, &spaces, &mut scan);
        }
    }

    let main: Vec<(String, String)> = config
        .settings()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    scan_namespace(
        msg,
        config,
        &dir,
        &main,
        None,
        &spaces,
        &mut scan,
        &mut rest_classes,
    )?;
    Ok(scan)
}

/// Each master.cf entry's `-o` name space (shared by entries of the same name/type, as in
/// Postfix), by entry index; entries without one are left out.
fn name_spaces(config: &Config) -> Vec<(usize, Vec<(String, String)>)> {
    config
        .master
        .service_params()
        .into_iter()
        .enumerate()
        .filter_map(|(i, table)| table.map(|t| (i, t.into_iter().collect())))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn scan_namespace(
    msg: &Msg,
    config: &mut Config,
    dir: &str,
    space: &[(String, String)],
    local: Option<usize>,
    spaces: &[(usize, Vec<(String, String)>)],
    scan: &mut Scan,
    rest_classes: &mut BTreeSet<String>,
) -> Result<(), Fatal> {
    let source = if local.is_some() {
        "master.cf"
    } else {
        "main.cf"
    };
    if let Some((_, classes)) = space.iter().find(|(n, _)| n == "smtpd_restriction_classes") {
        let classes = eval_in_space(classes, space);
        for name in classes
            .split([',', ' ', '\t', '\r', '\n'])
            .filter(|w| !w.is_empty())
        {
            if local.is_none() {
                rest_classes.insert(name.to_owned());
            }
            flag_user(msg, config, dir, name, local, spaces, scan);
        }
    }
    for (name, value) in space {
        if let Some(index) = local
            && rest_classes.contains(name)
        {
            scan.valid_local
                .entry(index)
                .or_default()
                .insert(name.clone());
        }
        let class = config.class(name);
        if class.is_some() && READ_ONLY_PARAMETERS.contains(&name.as_str()) {
            msg.warn(format!(
                "{dir}/{source}: read-only parameter assignment: {name}={value}"
            ));
            if local.is_none() {
                config.unset(name);
            }
            continue;
        }
        if class == Some(ParamClass::Legacy) {
            config.register_user(name);
        }
        if class.is_some() && config.is_raw(name) {
            continue;
        }
        let found = expand::scan(value);
        for warning in &found.warnings {
            msg.warn(warning);
        }
        for referenced in found.names {
            flag_user(msg, config, dir, &referenced, local, spaces, scan);
        }
        if matches!(class, Some(ParamClass::Builtin | ParamClass::Service)) {
            // Postfix expands these values whole (its legacy database scan); a recursive
            // or malformed value is fatal here even when it is not printed.
            let service = local.map(|i| config.master.services[i].clone());
            config
                .expand(value, service.as_ref())
                .map_err(|err| expand_fatal(msg, &err))?;
        }
    }
    Ok(())
}

/// A `$name` was seen: validate a user-defined name that has a value, or warn that it has none.
fn flag_user(
    msg: &Msg,
    config: &mut Config,
    dir: &str,
    name: &str,
    local: Option<usize>,
    spaces: &[(usize, Vec<(String, String)>)],
    scan: &mut Scan,
) {
    let source = if local.is_some() {
        "master.cf"
    } else {
        "main.cf"
    };
    let mut supplied = false;
    let in_space = |index: usize| {
        spaces
            .iter()
            .any(|(i, space)| *i == index && space.iter().any(|(n, _)| n == name))
    };
    if local.is_some_and(in_space) {
        supplied = true;
        if let Some(index) = local {
            scan.valid_local
                .entry(index)
                .or_default()
                .insert(name.to_owned());
        }
    } else if config.setting(name).is_some() {
        supplied = true;
        if config.class(name).is_none() {
            config.register_user(name);
        }
    }
    if local.is_none() {
        for (index, _) in spaces.iter().filter(|(i, _)| in_space(*i)) {
            supplied = true;
            scan.valid_local
                .entry(*index)
                .or_default()
                .insert(name.to_owned());
        }
    }
    if !supplied && config.class(name).is_none() {
        msg.warn(format!("{dir}/{source}: undefined parameter: {name}"));
    }
}

/// Expands `text` with the names of one name space only (Postfix's dict_eval).
fn eval_in_space(text: &str, space: &[(String, String)]) -> String {
    struct Space<'a>(&'a [(String, String)]);
    impl expand::Lookup for Space<'_> {
        fn lookup(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        }
    }
    expand::expand(text, &Space(space), expand::Mode::Recursive)
        .map_or_else(|_| text.to_owned(), |e| e.text)
}

/// Prints the requested parameters (all of them when no names are given).
pub(crate) fn show(
    msg: &Msg,
    inv: &Invocation,
    config: &Config,
    out: &mut dyn Write,
) -> Result<(), Fatal> {
    if inv.operands.is_empty() {
        for name in config.listed_names() {
            let wanted = match config.class(&name) {
                Some(ParamClass::Builtin) => inv.param_class & class::BUILTIN != 0,
                Some(ParamClass::Service) => inv.param_class & class::SERVICE != 0,
                Some(ParamClass::User | ParamClass::Legacy) => inv.param_class & class::USER != 0,
                None => false,
            };
            if wanted {
                print_parameter(msg, inv, config, &name, out)?;
            }
        }
        return Ok(());
    }
    for name in &inv.operands {
        if config.class(name).is_none() && !READ_ONLY_PARAMETERS.contains(&name.as_str()) {
            msg.warn(format!("{name}: unknown parameter"));
        } else {
            print_parameter(msg, inv, config, name, out)?;
        }
    }
    Ok(())
}

fn print_parameter(
    msg: &Msg,
    inv: &Invocation,
    config: &Config,
    name: &str,
    out: &mut dyn Write,
) -> Result<(), Fatal> {
    let m = inv.mode;
    let value = if m & SHOW_DEFS != 0 {
        config.default_text(name)
    } else if let Some(v) = config.setting(name) {
        Some(v.to_owned())
    } else if m & SHOW_NONDEF != 0 {
        None
    } else {
        config.default_text(name)
    };
    let Some(mut value) = value else {
        return Ok(());
    };
    let fold = m & super::mode::FOLD_LINE != 0;
    if m & HIDE_VALUE != 0 {
        return write_out(out, &print_line(name, fold));
    }
    if m & SHOW_EVAL != 0 && !config.is_raw(name) {
        value = config
            .expand(&value, None)
            .map_err(|err| expand_fatal(msg, &err))?
            .text;
    }
    let text = if m & HIDE_NAME == 0 {
        format!("{name} = {value}")
    } else {
        value
    };
    write_out(out, &print_line(&text, fold))
}

/// Postfix prints the expansion's warnings, then its fatal message.
pub(crate) fn expand_fatal(msg: &Msg, err: &expand::ExpandError) -> Fatal {
    for warning in err.warnings() {
        msg.warn(warning);
    }
    fatal!("{err}")
}

/// Warns about main.cf names that nothing uses.
pub(crate) fn flag_unused_main(msg: &Msg, config: &Config, out: &mut dyn Write) {
    let _ = out.flush();
    let dir = config.dir.to_string_lossy();
    for def in &config.main.definitions {
        if config.class(&def.name).is_none()
            && !READ_ONLY_PARAMETERS.contains(&def.name.as_str())
            && config.setting(&def.name) == Some(def.value.as_str())
            && is_last_definition(config, &def.name, def.line)
        {
            msg.warn(format!(
                "{dir}/main.cf: unused parameter: {}={}",
                def.name, def.value
            ));
        }
    }
}

fn is_last_definition(config: &Config, name: &str, line: usize) -> bool {
    config
        .main
        .definitions
        .iter()
        .rev()
        .find(|d| d.name == name)
        .is_some_and(|d| d.line == line)
}

/// Warns about master.cf `-o` names that nothing uses.
pub(crate) fn flag_unused_master(msg: &Msg, config: &Config, scan: &Scan) {
    let dir = config.dir.to_string_lossy();
    for (index, space) in name_spaces(config) {
        for (name, value) in space {
            let valid = scan
                .valid_local
                .get(&index)
                .is_some_and(|v| v.contains(&name));
            if config.class(&name).is_none() && !valid {
                msg.warn(format!("{dir}/master.cf: unused parameter: {name}={value}"));
            }
        }
    }
}
