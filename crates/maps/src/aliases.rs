//! placeholder: the aliases(5) format (being built).
