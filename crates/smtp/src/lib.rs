//! Sans-IO SMTP (RFC 5321) as Postfix's smtpd speaks it: no sockets, no clock, no tokio.
