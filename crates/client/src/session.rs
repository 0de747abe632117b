//! The SMTP/LMTP client session (being written).
