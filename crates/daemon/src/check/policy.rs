//! The policy delegation client (being written).
