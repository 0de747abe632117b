//! `postfix check`, beyond Postfix: the indexed tables that main.cf and master.cf name. A
//! Berkeley DB file left by Postfix cannot be read by Tern and must be rebuilt; a table whose
//! source file is newer than its indexed file is stale. Each finding names the command that
//! mends it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use tern_config::config::Config;
use tern_maps::indexed::{file_path, is_berkeley_db};

/// The indexed table types, whose files postmap and postalias build.
const INDEXED: &[&str] = &["hash", "btree", "lmdb", "cdb"];

/// Warnings (text after `postfix-script: warning: `) for the indexed tables the
/// configuration names.
pub(super) fn check_tables(config: &Config) -> Vec<String> {
    let alias_tables: BTreeSet<String> = table_refs(&expanded(config, "alias_database"))
        .into_iter()
        .chain(table_refs(&expanded(config, "alias_maps")))
        .collect();
    let mut refs = BTreeSet::new();
    for (name, _) in config.settings() {
        refs.extend(table_refs(&expanded(config, name)));
    }
    refs.extend(alias_tables.iter().cloned());
    for service in &config.master.services {
        for (_, value) in &service.overrides {
            let text = config
                .expand(value, Some(service))
                .map_or_else(|_| value.clone(), |e| e.text);
            refs.extend(table_refs(&text));
        }
    }
    let mut warnings = Vec::new();
    for spec in refs {
        let Some((kind, name)) = spec.split_once(':') else {
            continue;
        };
        let command = if alias_tables.contains(&spec) {
            "postalias"
        } else {
            "postmap"
        };
        let db = file_path(kind, name);
        if is_berkeley_db(&db) {
            warnings.push(format!(
                "{db} is a Berkeley DB file made by Postfix, which Tern does not read: \
                 rebuild it with \"{command} {spec}\""
            ));
        } else if let (Some(source), Some(indexed)) = (mtime(name), mtime(&db))
            && source > indexed
        {
            warnings.push(format!(
                "database {db} is older than source file {name}: rebuild it with \
                 \"{command} {spec}\""
            ));
        }
    }
    warnings
}

/// The value of `name` expanded, or as written when it does not expand.
fn expanded(config: &Config, name: &str) -> String {
    match config.expanded(name) {
        Ok(Some(value)) => value,
        _ => config.raw(name).unwrap_or_default(),
    }
}

/// The `type:/path` references to indexed tables in a value (also behind `proxy:`).
fn table_refs(value: &str) -> Vec<String> {
    value
        .split([' ', ',', '\t', '\r', '\n', '{', '}'])
        .filter_map(|word| {
            let word = word.strip_prefix("proxy:").unwrap_or(word);
            let (kind, name) = word.split_once(':')?;
            (INDEXED.contains(&kind) && name.starts_with('/')).then(|| word.to_owned())
        })
        .collect()
}

fn mtime(path: &str) -> Option<SystemTime> {
    std::fs::metadata(Path::new(path)).ok()?.modified().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_indexed_table_references() {
        assert_eq!(
            table_refs("hash:/etc/aliases, nis:mail.aliases proxy:lmdb:/x/y regexp:/r cdb:rel"),
            vec!["hash:/etc/aliases".to_owned(), "lmdb:/x/y".to_owned()]
        );
    }
}
