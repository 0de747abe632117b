//! Building tables (`postmap [type:]file`, `postalias`), adding entries from standard
//! input (`-i`) and deleting keys (`-d`).
//!
//! The source file is opened first (so a missing file is the first complaint, whatever the
//! type); the new table file gets the source file's group and other read bits (postmap(1)),
//! or 0644 with `-p`. Duplicates follow `-r`/`-w`, warned about by default with the table
//! file's name, as Postfix's database layer does.

use std::io::Read;
use std::os::unix::fs::MetadataExt;

use tern_config::config::Config;
use tern_maps::indexed::{self, CreateOptions, Duplicates, Put};
use tern_maps::source::{self, Reader};
use tern_maps::{MapError, Warn, aliases};

use super::{Flavor, Options};
use crate::fatal;
use crate::msg::Fatal;

/// The types postmap can build.
const INDEXED: &[&str] = &["hash", "btree", "lmdb", "cdb"];

/// Builds `kind:name` from the source file `name`, or with `-i` adds standard input's
/// entries to the existing table.
pub(super) fn build(
    opts: &Options,
    config: &Config,
    kind: &str,
    name: &str,
    warn: &Warn,
) -> Result<(), Fatal> {
    let (data, path, mode) = if opts.incremental {
        let mut data = Vec::new();
        std::io::stdin().lock().read_to_end(&mut data)?;
        (data, "stdin".to_owned(), 0o644)
    } else {
        let fail = |e: &std::io::Error| fatal!("open {name}: {}", source::strerror(e));
        let data = std::fs::read(name).map_err(|e| fail(&e))?;
        let st = std::fs::metadata(name).map_err(|e| fail(&e))?;
        (data, name.to_owned(), new_mode(opts, st.mode()))
    };
    check_buildable(kind)?;
    let create = CreateOptions {
        duplicates: opts.duplicates,
        nul_terminated: opts.nul.unwrap_or_else(|| indexed::default_nul(kind)),
        mode,
    };
    let mut sink = if opts.incremental {
        Sink::Update(indexed::update(kind, name, create)?)
    } else {
        Sink::Create(indexed::create(kind, name, create)?)
    };
    // The table's name as Postfix's duplicate warnings give it: each format names itself.
    let file = match kind {
        "lmdb" => format!("lmdb:{name}"),
        "cdb" => name.to_owned(),
        _ => indexed::file_path(kind, name),
    };
    let mut failed: Option<Fatal> = None;
    // Entries are stored as they are read, so that duplicate warnings come in line order
    // among the reader's own warnings, as Postfix prints them.
    let mut store = |key: &str, value: &str| {
        if failed.is_some() {
            return;
        }
        match sink.put(key, value, opts.duplicates) {
            Ok(Put::Duplicate) if opts.duplicates == Duplicates::Warn => {
                warn(&format!("{file}: duplicate entry: \"{key}\""));
            }
            Ok(_) => {}
            Err(e) => failed = Some(e.into()),
        }
    };
    let fold = |k: String| if opts.fold { k.to_lowercase() } else { k };
    match opts.flavor {
        Flavor::Postmap => source::entries(&data, &path, Reader::Postmap, &|w| warn(w), &mut |e| {
            store(&fold(e.key), &e.value);
        }),
        Flavor::Postalias => aliases::entries(&data, &path, &|w| warn(w), &mut |e| {
            store(&fold(e.name), &e.value);
        }),
    }
    if opts.flavor == Flavor::Postalias && !opts.incremental {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let host = config
            .expanded("myhostname")
            .ok()
            .flatten()
            .unwrap_or_default();
        for (key, value) in aliases::trailer(now, &host) {
            store(&key, &value);
        }
    }
    if let Some(f) = failed {
        return Err(f);
    }
    sink.finish()
}

/// Where entries go: a new file, or an existing one (`-i`).
enum Sink {
    Create(Box<dyn indexed::Writer>),
    Update(Box<dyn indexed::Updater>),
}

impl Sink {
    fn put(&mut self, key: &str, value: &str, dups: Duplicates) -> Result<Put, MapError> {
        match self {
            Sink::Create(w) => w.put(key, value),
            Sink::Update(u) => u.put(key, value, dups),
        }
    }

    fn finish(self) -> Result<(), Fatal> {
        match self {
            Sink::Create(w) => w.finish()?,
            Sink::Update(u) => u.finish()?,
        }
        Ok(())
    }
}

/// `-d key` (or `-d -`: keys from standard input): removes one entry per table; exit 0 when
/// any key was found.
pub(super) fn delete(
    opts: &Options,
    specs: &[(String, String)],
    key: &str,
    warn: &Warn,
) -> Result<i32, Fatal> {
    let _ = warn;
    let keys: Vec<String> = if key == "-" {
        let mut text = String::new();
        std::io::stdin().lock().read_to_string(&mut text)?;
        text.lines().map(str::to_owned).collect()
    } else {
        vec![key.to_owned()]
    };
    let mut found = false;
    for (kind, name) in specs {
        let create = CreateOptions {
            duplicates: opts.duplicates,
            nul_terminated: opts.nul.unwrap_or_else(|| indexed::default_nul(kind)),
            mode: 0o644,
        };
        if !INDEXED.contains(&kind.as_str()) && tern_maps::open::TYPES.contains(&kind.as_str()) {
            return Err(fatal!("{kind}:{name} map requires O_RDONLY access mode"));
        }
        let mut updater = indexed::update(kind, name, create)?;
        for k in &keys {
            let k = if opts.fold {
                k.to_lowercase()
            } else {
                k.clone()
            };
            found |= updater.delete(&k)?;
        }
        updater.finish()?;
    }
    Ok(i32::from(!found))
}

/// Postfix's message for a type that has no file to build.
fn check_buildable(kind: &str) -> Result<(), Fatal> {
    if !INDEXED.contains(&kind) && tern_maps::open::TYPES.contains(&kind) {
        return Err(fatal!(
            "unsupported dictionary type: {kind} does not support bulk-mode creation."
        ));
    }
    Ok(())
}

/// The new file's mode: the source's group and other read bits over 0600 (postmap(1)), or
/// 0644 with `-p`.
fn new_mode(opts: &Options, source_mode: u32) -> u32 {
    if opts.inherit_mode {
        0o600 | (source_mode & 0o044)
    } else {
        0o644
    }
}

/// Decodes standard base64 (`-F` values); `None` when malformed.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = text.bytes().filter(|&b| b != b'=').collect();
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        let v = u32::try_from(ALPHABET.iter().position(|&a| a == b)?).ok()?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}
