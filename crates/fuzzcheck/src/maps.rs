//! Table targets (crates/maps): every table format whose reader is Tern's own code.
//!
//! - pattern tables (`regexp:`, `pcre:`, `cidr:`) and `texthash:`: the input's first line
//!   is a key to look up, the rest the table file;
//! - `inline:` and `static:`: the input's first line is a key, the rest the `{...}` text
//!   of the table name (map specs come from main.cf and from `postmap -q` arguments);
//! - the indexed files `postmap` builds (`cdb:`, `lmdb:`, and `hash:`/`btree:`, which are
//!   Tern's own `.db` format): the input is the whole file, listed (`postmap -s`) and
//!   probed with the keys it lists and a few fixed ones;
//! - aliases(5) and the postmap source format.
//!
//! Security: a table file may be hostile (made by a user, truncated, or damaged); its
//! reader must give an error, never a panic, a hang, or an allocation the size of a
//! number read from the file.

use tern_maps::inline::InlineMap;
use tern_maps::static_map::StaticMap;
use tern_maps::{Map, OpenFlags, aliases, cidr, pcre, regexp, source};

use crate::{key_and_table, scratch_path};

/// Looks up the key, the whole table text, and every listed key (at most 64).
fn probe(map: &dyn Map, key: &str, table: &str) {
    let _ = map.lookup(key);
    let _ = map.lookup(table);
    if let Ok(entries) = map.sequence() {
        for (k, _) in entries.iter().take(64) {
            let _ = map.lookup(k);
        }
    }
}

/// A `regexp:` table.
pub fn regexp(data: &[u8]) {
    let (key, table) = key_and_table(data);
    let map = regexp::RegexpMap::parse("/fuzz", &table, &|_| {});
    probe(&map, &key, &table);
}

/// A `pcre:` table.
pub fn pcre(data: &[u8]) {
    let (key, table) = key_and_table(data);
    let map = pcre::PcreMap::parse("/fuzz", &table, tern_maps::no_warnings());
    probe(&map, &key, &table);
}

/// A `cidr:` table.
pub fn cidr(data: &[u8]) {
    let (key, table) = key_and_table(data);
    let map = cidr::CidrMap::parse("/fuzz", &table, &|_| {});
    probe(&map, &key, &table);
}

/// A `texthash:` table (read from a file, as the daemons open it).
pub fn texthash(data: &[u8]) {
    let (key, table) = key_and_table(data);
    let path = scratch_path(".txt");
    if std::fs::write(&path, table.as_bytes()).is_err() {
        return;
    }
    for fold_fix in [true, false] {
        let flags = OpenFlags {
            fold_fix,
            ..OpenFlags::default()
        };
        if let Ok(map) = tern_maps::open(&format!("texthash:{}", path.display()), &flags) {
            probe(map.as_ref(), &key, &table);
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// `inline:{...}` and `static:{...}` names, and the `type:name` syntax around them.
pub fn inline(data: &[u8]) {
    let (key, name) = key_and_table(data);
    for fold in [true, false] {
        if let Ok(map) = InlineMap::parse(&name, fold) {
            probe(&map, &key, &name);
        }
    }
    if let Ok(map) = StaticMap::parse(&name) {
        probe(&map, &key, &name);
    }
    if let Ok(spec) = tern_maps::MapSpec::parse(&name) {
        let _ = spec.text();
        let _ = tern_maps::spec::braced_body(&spec.kind, &spec.name);
        // Only the types that read nothing outside the text itself.
        if matches!(spec.kind.as_str(), "inline" | "static" | "fail") {
            if let Ok(map) = tern_maps::open(&name, &OpenFlags::default()) {
                probe(map.as_ref(), &key, &name);
            }
        }
    }
}

/// An indexed table file of `kind`, with `data` as its bytes.
fn indexed(kind: &str, data: &[u8]) {
    let base = scratch_path("");
    let name = base.display().to_string();
    let path = tern_maps::indexed::file_path(kind, &name);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    for fold_fix in [true, false] {
        let flags = OpenFlags {
            fold_fix,
            ..OpenFlags::default()
        };
        if let Ok(map) = tern_maps::open(&format!("{kind}:{name}"), &flags) {
            for key in ["", "root", "postmaster", "example.com"] {
                let _ = map.lookup(key);
            }
            probe(map.as_ref(), "MAILER-DAEMON", "a@example.com");
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// A `cdb:` file.
pub fn cdb(data: &[u8]) {
    indexed("cdb", data);
}

/// An `lmdb:` file.
pub fn lmdb(data: &[u8]) {
    indexed("lmdb", data);
}

/// A `hash:` file (Tern's `.db`: a versioned cdb); `btree:` shares the reader.
pub fn hashdb(data: &[u8]) {
    indexed("hash", data);
}

/// An aliases(5) file and postmap's source format: the whole input is read both ways,
/// and every logical line goes through the token scanner and the entry splitter.
pub fn aliases(data: &[u8]) {
    let warn = |_: &str| {};
    aliases::entries(data, "/fuzz", &warn, &mut |e| {
        // What postalias stores is parsed again by local(8): it must scan too.
        let _ = aliases::scan(&e.value);
    });
    for reader in [source::Reader::Postmap, source::Reader::Texthash] {
        source::entries(data, "/fuzz", reader, &warn, &mut |_| {});
    }
    for line in source::logical_lines(data, "/fuzz", &warn) {
        let _ = source::split_entry(&line.text);
        let tokens = aliases::scan(&line.text);
        let _ = aliases::internalize(&tokens);
        let _ = aliases::externalize(&tokens);
        let _ = aliases::parse_line(&line.text);
    }
    // The raw text too, line breaks and all: the scanner sees them only here.
    let text = String::from_utf8_lossy(data);
    let _ = aliases::parse_line(&text);
    let _ = source::split_entry(&text);
}
