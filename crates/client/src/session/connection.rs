//! What one session may start from and leave behind: a new stream or a connection kept
//! from an earlier delivery (Postfix's connection cache, smtp_reuse.c and scache(8)),
//! and the per-session options the caller chooses (keep the connection, STARTTLS, SASL).
//!
//! A kept [`Connection`] is a session that ended its mail transaction cleanly without
//! QUIT (smtp_proto.c: "When connection caching is enabled, the QUIT state is
//! suppressed"). Before it carries another message the caller sends Postfix's RSET probe
//! ([`Connection::probe`]); a connection that fails the probe is dropped and the caller
//! connects anew, with no result for any recipient (smtp_reuse_common()).
//!
//! Trust: the stream is the server's; the probe reads one bounded reply under
//! smtp_rset_timeout, as every other read of the session.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::command::Features;
use super::wire::Wire;
use super::{Peer, Settings};
use crate::sasl::SaslClient;
use crate::tls::{Policy, TlsClient};

/// Any byte stream a session runs over: TCP, a UNIX-domain socket, TLS on either.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A session's stream, boxed so that STARTTLS can replace it mid-session.
pub type Stream = Box<dyn Io>;

/// Where a session starts.
pub enum Start {
    /// A new connection: the greeting and EHLO come first.
    Fresh(Stream),
    /// A kept connection, already probed with RSET: the mail transaction comes first.
    Cached(Connection),
}

/// STARTTLS for one session (smtp_helo(), smtp_start_tls()).
pub struct Tls<'a> {
    pub client: &'a TlsClient,
    /// The policy for this next hop and server ([`TlsClient::policy`]).
    pub policy: &'a Policy,
    /// The next-hop domain without `[]` or port (matching and SNI).
    pub nexthop: &'a str,
    /// The rest of Postfix's PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE: the message
    /// waited at least minimal_backoff_time before this attempt (it was deferred
    /// before), so a `may` handshake failure leaves the recipients for a plaintext
    /// retry of the same server instead of deferring them.
    pub plaintext_fallback_ok: bool,
}

/// The caller's choices for one session.
#[derive(Default)]
pub struct Options<'a> {
    /// End a clean transaction without QUIT and hand the connection back (Postfix's
    /// THIS_SESSION_IS_CACHED: connection caching is on and the session has not
    /// expired).
    pub keep: bool,
    /// STARTTLS, when the policy asks for TLS; `None`: plaintext (level `none`).
    pub tls: Option<Tls<'a>>,
    /// SASL authentication after EHLO (smtp_sasl_auth_enable); `None`: off.
    pub sasl: Option<Sasl<'a>>,
}

/// What AUTH needs besides the server (smtp_sasl_helo_login()): the transport's SASL
/// client and the request's fields for the password lookup. The server's host name for
/// the lookup is the session's [`Peer::name`].
pub struct Sasl<'a> {
    pub client: &'a SaslClient,
    /// The envelope sender (smtp_sender_dependent_authentication); empty for `<>`.
    pub sender: &'a str,
    /// The next-hop destination as written (`[relay.example]:587`, Postfix's iter->dest).
    pub dest: &'a str,
    /// The queue ID, for the lookup-error warning.
    pub queue_id: &'a str,
}

/// A connection that ended its last transaction cleanly, ready for another message.
pub struct Connection {
    pub(super) wire: Wire<Stream>,
    pub(super) features: Features,
    pub(super) peer: Peer,
    /// Times this connection was taken for another message (Postfix's reuse_count; the
    /// log shows `conn_use=` reuse_count + 1 when it is not 0).
    pub reuse_count: u32,
    /// When the connection was made (smtp_connection_reuse_time_limit counts from here).
    pub born: Instant,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("reuse_count", &self.reuse_count)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The server.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The features the server offered at EHLO.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Postfix's RSET probe before reuse (smtp_rset()): whether the server still answers
    /// RSET with 2xx within smtp_rset_timeout.
    pub async fn probe(&mut self, settings: &Settings) -> bool {
        let limit = settings.rset_timeout;
        self.wire.queue(b"RSET\r\n");
        if self.wire.flush(limit).await.is_err() {
            return false;
        }
        match self.wire.read_reply(settings.reply_line_limit, limit).await {
            Ok(r) => r.class() == 2,
            Err(_) => false,
        }
    }
}
