//! placeholder: the query orders of access(5), virtual(5), canonical(5), aliases(5),
//! transport(5), relocated(5) (being built).
