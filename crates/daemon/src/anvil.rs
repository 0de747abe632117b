//! anvil(8): connection and rate limits per client (being written).
