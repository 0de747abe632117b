//! One SMTP or LMTP conversation with one server, as smtp(8)/lmtp(8) hold it
//! (Postfix's smtp_proto.c, smtp_chat.c, smtp_trouble.c): the greeting, EHLO with HELO
//! fallback (LHLO for LMTP), the envelope with the ESMTP parameters the server offers,
//! PIPELINING, the content, and one result per recipient in Postfix's words.
//!
//! - [`settings`]: the smtp_*/lmtp_* parameters.
//! - [`reply`], [`command`], [`content`], [`downgrade`]: sans-IO pieces (reply parsing,
//!   EHLO keywords and commands, the content's wire form, 8BITMIME downgrade).
//! - [`wire`]: bounded reads and timed writes over any tokio stream.
//! - [`conversation`]: [`deliver`] and [`run`], the driver; `starttls`: its TLS step;
//!   `auth`: its SASL step (AUTH after EHLO).
//! - [`connection`]: what a session starts from ([`Start`]: a new stream or a kept
//!   [`Connection`]) and the caller's [`Options`] (keep the connection, STARTTLS, SASL).
//! - [`outcome`]: results and the final-server rule.
//! - [`connect`]: TCP and UNIX-domain connections with Postfix's error texts.
//!
//! The caller (the qmgr transport) resolves the next hop, connects ([`connect_tcp`],
//! [`connect_unix`]), hands in the stream with an [`Attempt`] (last server or not, loop
//! check), and decides from [`SessionResult::try_next_server`] whether to go on to the
//! next address with the [`Outcome::Kept`] recipients; it builds the log lines from each
//! [`Status`] and [`SessionResult::relay`], and defers the rest of the destination when
//! [`SessionResult::throttle`] is set.
//!
//! Security: everything the server sends is untrusted: replies are read with a line
//! limit (line_length_limit) and a cap per reply, every read and write has a timeout,
//! and reply text is made printable before it reaches a log line or a bounce.

mod auth;
pub mod command;
pub mod connect;
pub mod connection;
pub mod content;
pub mod conversation;
pub mod downgrade;
pub mod outcome;
pub mod reply;
pub mod settings;
mod starttls;
pub mod wire;

pub use command::Features;
pub use connect::{ConnectError, connect_tcp, connect_unix};
pub use connection::{Connection, Options, Sasl, Start, Stream, Tls};
pub use conversation::{deliver, run};
pub use outcome::{DsnAction, Outcome, RcptResult, SessionResult, Status};
pub use settings::{Settings, SettingsError};

use tern_queue::file::{DsnRet, Notify};

/// SMTP (smtp(8)) or LMTP (lmtp(8), RFC 2033).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

impl Protocol {
    /// The parameter prefix: `smtp` or `lmtp`.
    pub fn prefix(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Lmtp => "lmtp",
        }
    }
}

/// The server as Postfix names it in its texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The host name (from the MX or A lookup; myhostname for a UNIX socket).
    pub name: String,
    /// The address: `192.0.2.1`, `2001:db8::1`, or a socket path.
    pub addr: String,
    /// The TCP port; `None` for a UNIX-domain socket.
    pub port: Option<u16>,
}

impl Peer {
    /// `mx.example.com[192.0.2.1]`, as "host %s said" and "lost connection with %s" use.
    pub fn namaddr(&self) -> String {
        format!("{}[{}]", self.name, self.addr)
    }

    /// `mx.example.com[192.0.2.1]:25`, the `relay=` value (no port for a UNIX socket).
    pub fn relay(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.namaddr()),
            None => self.namaddr(),
        }
    }
}

/// How this attempt fits in the delivery (Postfix's SMTP_MISC_FLAG_FINAL_SERVER,
/// SMTP_MISC_FLAG_LOOP_DETECT and SMTP_FEATURE_BEST_MX).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    /// This is the last server to try for these recipients: a soft failure defers them
    /// instead of leaving them for the next server ([`Outcome::Kept`]).
    pub final_server: bool,
    /// SMTP to port 25 only (smtp_connect.c): fail when the server's EHLO reply names
    /// this host (myhostname).
    pub loop_check: Option<LoopCheck>,
}

/// What "mail for NEXTHOP loops back to myself" needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopCheck {
    /// The next-hop domain of the delivery request.
    pub nexthop: String,
    /// The server is a best-preference MX: the loop is permanent (5.4.6), else 4.4.6.
    pub best_mx: bool,
}

/// The content encoding the queue file records (Postfix's MAIL_ATTR_ENCODING: the
/// client's BODY= or cleanup's finding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Nothing is known; no BODY= is sent.
    Unspecified,
    SevenBit,
    /// The content has 8-bit bytes (BODY=8BITMIME).
    EightBit,
}

/// One recipient to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The recipient's index in the queue file, returned in [`RcptResult::index`].
    pub index: u32,
    pub address: String,
    /// DSN ORCPT as stored: `rfc822;user@example.com`.
    pub orcpt: Option<String>,
    /// The original recipient (used for ORCPT= when there is no ORCPT).
    pub original: String,
    /// DSN NOTIFY bits (0: none given).
    pub notify: Notify,
}

/// The message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// DSN ENVID.
    pub envid: Option<String>,
    /// DSN RET.
    pub ret: Option<DsnRet>,
    /// The message size for SIZE= and the SIZE check (Postfix's data_size).
    pub size: u64,
    /// The content as the queue file stores it: LF-terminated lines.
    pub content: &'a [u8],
    pub encoding: Encoding,
    /// The client asked for SMTPUTF8 (MAIL FROM ... SMTPUTF8).
    pub smtputf8_requested: bool,
    /// Delivery needs SMTPUTF8: it was requested and an address or header has UTF-8
    /// (Postfix's DELIVERY_REQUIRES_SMTPUTF8); such mail bounces at a server without it.
    pub smtputf8_required: bool,
    /// A `sendmail -bv` probe (Postfix's DEL_REQ_FLAG_USR_VRFY): the session stops
    /// after RCPT TO; each accepted recipient is reported with its RCPT reply and
    /// nothing is sent.
    pub verify: bool,
}
