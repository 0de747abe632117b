//! The SMTP client's TLS (being written).
