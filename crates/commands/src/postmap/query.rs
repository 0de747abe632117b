//! `postmap -q`, `-q -` (with `-h`/`-b` message mode) and `-s`: reading tables.
//!
//! Tables are opened lazily, in command-line order, and a query stops at the first table
//! that has the key (postmap(1)); a lookup error is fatal with Postfix's text.

use std::borrow::Cow;
use std::io::{BufRead, Read, Write};

use tern_maps::{Map, OpenFlags};

use super::Options;
use crate::fatal;
use crate::msg::Fatal;

/// The tables of one run, each opened on first use.
struct Tables<'a> {
    specs: &'a [(String, String)],
    flags: &'a OpenFlags,
    open: Vec<Option<Box<dyn Map>>>,
}

impl<'a> Tables<'a> {
    fn new(specs: &'a [(String, String)], flags: &'a OpenFlags) -> Self {
        Tables {
            specs,
            flags,
            open: specs.iter().map(|_| None).collect(),
        }
    }

    fn get(&mut self, i: usize) -> Result<&dyn Map, Fatal> {
        if self.open[i].is_none() {
            let (kind, name) = &self.specs[i];
            let map = tern_maps::open(&format!("{kind}:{name}"), self.flags)?;
            self.open[i] = Some(map);
        }
        // The slot was filled just above.
        Ok(self.open[i].as_deref().expect("table opened above"))
    }

    /// A key that is not UTF-8 (`raw`, its bytes): each table refuses it with Postfix's
    /// warning and finds nothing (dict_utf8.c, with `smtputf8_enable = yes`, the default
    /// since compatibility level 1; Tern always checks).
    fn refuse(&mut self, raw: &[u8]) -> Result<(), Fatal> {
        for i in 0..self.specs.len() {
            self.get(i)?;
            let (kind, name) = &self.specs[i];
            (self.flags.warn)(&format!(
                "{kind}:{}: non-UTF-8 key \"{}\": malformed UTF-8 or invalid codepoint",
                dict_name(kind, name),
                tern_config::text::printable_utf8(raw)
            ));
        }
        Ok(())
    }

    /// The first value for `key`, looking through the tables in order.
    fn find(&mut self, key: &str) -> Result<Option<String>, Fatal> {
        for i in 0..self.specs.len() {
            let map = self.get(i)?;
            match map.lookup(key) {
                Ok(Some(value)) => {
                    // Postfix's dict layer flags an empty result: a table should say "not
                    // found" instead. The value is still printed.
                    if value.is_empty() {
                        let spec = map.spec().to_owned();
                        (self.flags.warn)(&format!(
                            "table {spec}: key {key}: empty string result is not allowed"
                        ));
                        (self.flags.warn)(&format!(
                            "table {spec} should return NO RESULT in case of NOT FOUND"
                        ));
                    }
                    return Ok(Some(value));
                }
                Ok(None) => {}
                // A lookup error's text is complete (`table fail:x: query error: ...`).
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }
}

/// `-q key`: the value on its own line; exit 0 when found, 1 when not.
pub(super) fn query_one(
    opts: &Options,
    specs: &[(String, String)],
    flags: &OpenFlags,
    key: &str,
    out: &mut dyn Write,
) -> Result<i32, Fatal> {
    let mut tables = Tables::new(specs, flags);
    if let Some((_, raw)) = crate::non_utf8_args().into_iter().find(|(k, _)| k == key) {
        tables.refuse(&raw)?;
        return Ok(1);
    }
    match tables.find(key)? {
        Some(value) => {
            let value = shown(opts, &value)?;
            writeln!(out, "{value}")?;
            Ok(0)
        }
        None => Ok(1),
    }
}

/// `-q -`: keys from standard input (or header/body lines of a message with `-h`/`-b`),
/// `key<TAB>value` for each one found; exit 0 when any was found.
pub(super) fn query_stdin(
    opts: &Options,
    specs: &[(String, String)],
    flags: &OpenFlags,
    out: &mut dyn Write,
) -> Result<i32, Fatal> {
    let mut tables = Tables::new(specs, flags);
    let mut found = false;
    if opts.headers || opts.body {
        let mut input = Vec::new();
        std::io::stdin().lock().read_to_end(&mut input)?;
        let text = String::from_utf8_lossy(&input);
        for key in message_keys(&text, opts.headers, opts.body) {
            found |= answer(opts, &mut tables, &key, out)?;
        }
        return Ok(i32::from(!found));
    }
    // One line at a time, as postmap(1) reads them: the input is never held whole, and no
    // key outlives its lookup. A line's bytes are converted on their own; an invalid UTF-8
    // sequence cannot span a newline, so this is the conversion of the whole input.
    // 64 KiB reads: standard input's own 8 KiB buffer is bypassed for reads this large, so a
    // million keys take an eighth of the system calls.
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        // Valid UTF-8 (the usual case) is borrowed as it is; a key that is not is refused.
        let Ok(key) = std::str::from_utf8(&line) else {
            tables.refuse(&line)?;
            continue;
        };
        found |= answer(opts, &mut tables, key, out)?;
    }
    Ok(i32::from(!found))
}

/// Looks `key` up and prints `key<TAB>value` when found; whether it was.
fn answer(
    opts: &Options,
    tables: &mut Tables<'_>,
    key: &str,
    out: &mut dyn Write,
) -> Result<bool, Fatal> {
    let Some(value) = tables.find(key)? else {
        return Ok(false);
    };
    let value = shown(opts, &value)?;
    // The four pieces as they are: no formatting machinery per answer.
    out.write_all(key.as_bytes())?;
    out.write_all(opts.flavor.separator().as_bytes())?;
    out.write_all(value.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(true)
}

/// `-s`: every entry of every table, in each table's own order.
pub(super) fn sequence(
    opts: &Options,
    specs: &[(String, String)],
    flags: &OpenFlags,
    out: &mut dyn Write,
) -> Result<i32, Fatal> {
    let mut tables = Tables::new(specs, flags);
    for i in 0..specs.len() {
        let map = tables.get(i)?;
        for (key, value) in map.sequence()? {
            let value = shown(opts, &value)?;
            writeln!(out, "{key}{}{value}", opts.flavor.separator())?;
        }
    }
    Ok(0)
}

/// The value as printed: base64-decoded with `-F`.
fn shown<'v>(opts: &Options, value: &'v str) -> Result<Cow<'v, str>, Fatal> {
    if !opts.base64 {
        return Ok(Cow::Borrowed(value));
    }
    match super::build::base64_decode(value) {
        Some(bytes) => Ok(Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())),
        None => Err(fatal!("malformed BASE64 value: {value}")),
    }
}

/// Lines without their newline; a last line without one counts.
fn lines(text: &str) -> Vec<&str> {
    let mut all: Vec<&str> = text.split('\n').collect();
    if text.ends_with('\n') || text.is_empty() {
        all.pop();
    }
    all
}

/// Lookup keys from a message (postmap(1) `-h`, `-b`, without MIME parsing): each logical
/// header line (continuations joined with their newline) until the first empty line, then
/// each body line.
fn message_keys(text: &str, headers: bool, body: bool) -> Vec<String> {
    let mut keys = Vec::new();
    let mut all = lines(text).into_iter();
    let mut current: Option<String> = None;
    let mut in_body = false;
    for line in all.by_ref() {
        if line.starts_with([' ', '\t'])
            && let Some(cur) = current.as_mut()
        {
            cur.push('\n');
            cur.push_str(line);
            continue;
        }
        if let Some(done) = current.take()
            && headers
        {
            keys.push(done);
        }
        let is_header = line
            .split_once(':')
            .is_some_and(|(name, _)| !name.is_empty() && !name.contains([' ', '\t']));
        if is_header {
            current = Some(line.to_owned());
        } else {
            // The first non-header line starts the body; an empty line separates them.
            if body && !line.is_empty() {
                keys.push(line.to_owned());
            }
            in_body = true;
            break;
        }
    }
    if let Some(done) = current.take()
        && headers
    {
        keys.push(done);
    }
    if in_body && body {
        keys.extend(all.map(str::to_owned));
    }
    keys
}

/// The name Postfix's dictionary layer gives a table in messages: the file an indexed
/// table lives in (`hash:/etc/aliases.db`, `cdb:x.cdb`; lmdb keeps the name as given), or
/// the name as given.
fn dict_name(kind: &str, name: &str) -> String {
    match kind {
        "hash" | "btree" => format!("{name}.db"),
        "cdb" => format!("{name}.cdb"),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_split_headers_and_body() {
        let msg = "Subject: hi\n there\nFrom: x\n\nbody1\nbody2\n";
        assert_eq!(
            message_keys(msg, true, false),
            vec!["Subject: hi\n there", "From: x"]
        );
        assert_eq!(message_keys(msg, false, true), vec!["body1", "body2"]);
        assert_eq!(message_keys(msg, true, true).len(), 4);
    }
}
