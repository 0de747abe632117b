//! Shared helpers for Tern's command-line programs: Postfix-style messages and exit codes.
