//! The mail log: Postfix's exact line shapes, written to `maillog_file` or syslog.
