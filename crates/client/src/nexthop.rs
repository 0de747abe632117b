//! Next-hop resolution (being written).
