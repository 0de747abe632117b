//! A Tern instance in a temp directory (being built).
