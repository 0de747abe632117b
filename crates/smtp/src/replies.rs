//! Postfix 3.7 smtpd's fixed reply texts, in one place (smtpd.c, smtpd_sasl_proto.c).
//! Each was checked against Debian's Postfix 3.7.11 where a live check was possible
//! (see the transcripts in tests/transcripts/).
//!
//! Note the few that Postfix sends without an enhanced status code: the replies to
//! HELO/EHLO (RFC 2034 3 exempts them) and to ETRN (Postfix's own omission).

use crate::reply::Reply;

pub const OK: &str = "250 2.0.0 Ok";
pub const MAIL_OK: &str = "250 2.1.0 Ok";
pub const RCPT_OK: &str = "250 2.1.5 Ok";
pub const BYE: &str = "221 2.0.0 Bye";
pub const START_DATA: &str = "354 End data with <CR><LF>.<CR><LF>";
pub const NEED_HELO: &str = "503 5.5.1 Error: send HELO/EHLO first";
pub const NESTED_MAIL: &str = "503 5.5.1 Error: nested MAIL command";
pub const MAIL_AFTER_BDAT: &str = "503 5.5.1 Error: MAIL after BDAT";
pub const NEED_MAIL: &str = "503 5.5.1 Error: need MAIL command";
pub const RCPT_AFTER_BDAT: &str = "503 5.5.1 Error: RCPT after BDAT";
pub const NEED_RCPT: &str = "503 5.5.1 Error: need RCPT command";
pub const NO_VALID_RCPT: &str = "554 5.5.1 Error: no valid recipients";
pub const DATA_AFTER_BDAT: &str = "503 5.5.1 Error: DATA after BDAT";
pub const TOO_MANY_RCPTS: &str = "452 4.5.3 Error: too many recipients";
pub const SIZE_FIXED_LIMIT: &str = "552 5.3.4 Message size exceeds fixed limit";
pub const NOT_RECOGNIZED: &str = "500 5.5.2 Error: command not recognized";
pub const BREAK_RULES: &str = "221 2.7.0 Error: I can break rules, too. Goodbye.";
pub const NOT_IMPLEMENTED: &str = "502 5.5.1 Error: command not implemented";
pub const BDAT_NOT_IMPLEMENTED: &str = "521 5.5.1 Error: command not implemented";
pub const NULL_BDAT: &str = "551 5.7.1 Null BDAT request";
pub const CHUNK_TOO_BIG: &str = "552 5.3.4 Chunk exceeds message size limit";
pub const VRFY_DISABLED: &str = "502 5.5.1 VRFY command is disabled";
pub const ETRN_NEED_HELO: &str = "503 Error: send HELO/EHLO first";
pub const ETRN_IN_MAIL: &str = "503 Error: MAIL transaction in progress";
pub const ETRN_OK: &str = "250 Queuing started";
pub const AUTH_NOT_ENABLED: &str = "503 5.5.1 Error: authentication not enabled";
pub const AUTH_IN_MAIL: &str = "503 5.5.1 Error: MAIL transaction in progress";
pub const AUTH_DONE: &str = "503 5.5.1 Error: already authenticated";
pub const AUTH_SYNTAX: &str = "501 5.5.4 Syntax: AUTH mechanism";
pub const AUTH_OK: &str = "235 2.7.0 Authentication successful";
pub const TLS_READY: &str = "220 2.0.0 Ready to start TLS";
pub const TLS_ACTIVE: &str = "554 5.5.1 Error: TLS already active";
/// smtpd_tls_security_level = encrypt, before STARTTLS (smtpd.c smtpd_proto()).
pub const MUST_STARTTLS: &str = "530 5.7.0 Must issue a STARTTLS command first";
pub const XCLIENT_DENIED: &str = "550 5.7.0 Error: insufficient authorization";
pub const MESSAGE_TOO_BIG: &str = "552 5.3.4 Error: message file too big";

/// A canned text as a [`Reply`].
pub fn reply(spec: &str) -> Reply {
    Reply::canned(spec)
}

/// `220 <smtpd_banner>`; the banner is `$myhostname ESMTP $mail_name` by default.
pub fn greeting(banner: &str) -> Reply {
    Reply::canned(&format!("220 {banner}"))
}

/// `250 <myhostname>`: the reply to HELO.
pub fn helo(myhostname: &str) -> Reply {
    Reply::canned(&format!("250 {myhostname}"))
}

/// `421 4.7.0 <myhostname> Error: too many errors` (smtpd_hard_error_limit).
pub fn too_many_errors(myhostname: &str) -> Reply {
    Reply::canned(&format!("421 4.7.0 {myhostname} Error: too many errors"))
}

/// `<code> 5.5.2 <myhostname> Error: bare <LF> received`
/// (code: smtpd_forbid_bare_newline_reject_code, 550 by default).
pub fn bare_lf(code: u16, myhostname: &str) -> Reply {
    let code = if (500..=599).contains(&code) {
        code
    } else {
        550
    };
    Reply::canned(&format!(
        "{code} 5.5.2 {myhostname} Error: bare <LF> received"
    ))
}

/// `250 2.0.0 Ok: queued as <id>` after DATA.
pub fn queued(queue_id: &str) -> Reply {
    Reply::canned(&format!("250 2.0.0 Ok: queued as {queue_id}"))
}

/// `250 2.0.0 Ok: <n> bytes queued as <id>` after BDAT LAST.
pub fn bdat_queued(size: u64, queue_id: &str) -> Reply {
    Reply::canned(&format!("250 2.0.0 Ok: {size} bytes queued as {queue_id}"))
}

/// `250 2.0.0 Ok: <n> bytes` after a BDAT chunk that is not the last.
pub fn bdat_chunk(size: u64) -> Reply {
    Reply::canned(&format!("250 2.0.0 Ok: {size} bytes"))
}

/// `551 5.0.0 Discarded <n> bytes after earlier error`.
pub fn bdat_discarded(size: u64) -> Reply {
    Reply::canned(&format!(
        "551 5.0.0 Discarded {size} bytes after earlier error"
    ))
}

/// `252 2.0.0 <argument>`: Postfix's VRFY answer for an acceptable address.
pub fn vrfy(argument: &str) -> Reply {
    Reply::canned(&format!("252 2.0.0 {argument}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_canned_texts_parse() {
        for spec in [
            OK,
            MAIL_OK,
            RCPT_OK,
            BYE,
            START_DATA,
            NEED_HELO,
            NESTED_MAIL,
            MAIL_AFTER_BDAT,
            NEED_MAIL,
            RCPT_AFTER_BDAT,
            NEED_RCPT,
            NO_VALID_RCPT,
            DATA_AFTER_BDAT,
            TOO_MANY_RCPTS,
            SIZE_FIXED_LIMIT,
            NOT_RECOGNIZED,
            BREAK_RULES,
            NOT_IMPLEMENTED,
            BDAT_NOT_IMPLEMENTED,
            NULL_BDAT,
            CHUNK_TOO_BIG,
            VRFY_DISABLED,
            ETRN_NEED_HELO,
            ETRN_IN_MAIL,
            ETRN_OK,
            AUTH_NOT_ENABLED,
            AUTH_IN_MAIL,
            AUTH_DONE,
            AUTH_SYNTAX,
            AUTH_OK,
            TLS_READY,
            TLS_ACTIVE,
            MUST_STARTTLS,
            XCLIENT_DENIED,
            MESSAGE_TOO_BIG,
        ] {
            assert_eq!(reply(spec).to_string(), spec);
        }
        assert_eq!(
            bare_lf(550, "mx.example.test").to_string(),
            "550 5.5.2 mx.example.test Error: bare <LF> received"
        );
        assert_eq!(
            too_many_errors("mx").to_string(),
            "421 4.7.0 mx Error: too many errors"
        );
        assert_eq!(greeting("mx ESMTP Postfix").enhanced(), None);
    }
}
