//! placeholder: the source-file format of `postmap` and `texthash:` (being built).
