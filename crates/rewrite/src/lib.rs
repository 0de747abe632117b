//! trivial-rewrite: canonicalisation, address classes, resolution, relay policy.
