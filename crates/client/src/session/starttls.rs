//! STARTTLS inside a session (smtp_proto.c, the end of smtp_helo() and smtp_start_tls()):
//! after EHLO the TLS module decides ([`TlsClient::decide`]); on STARTTLS's 2xx the
//! handshake runs on the same stream and EHLO (LHLO) is sent again over TLS with the
//! first EHLO's extensions forgotten.
//!
//! Failures, as Postfix has them: a level that requires TLS and a server that does not
//! offer it or refuses STARTTLS is a site failure (4.7.4, or the server's reply); a
//! handshake that fails defers with the TLS module's text, and at `may` leaves the
//! recipients for a plaintext retry of the same server when the caller allows it
//! (PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE).
//!
//! Security: anything the server sent after its STARTTLS reply and before the handshake
//! is dropped with the plaintext read buffer (no command injection across the switch,
//! CVE-2011-0411's lesson). At a level that requires TLS no path goes on in plaintext.
//!
//! [`TlsClient::decide`]: crate::tls::TlsClient::decide

use super::command::Features;
use super::connection::{Stream, Tls};
use super::conversation::{Session, Stop};
use super::reply::fake;
use super::wire::Wire;
use crate::tls::{self, Decision, LogLine};

impl Session<'_> {
    /// The STARTTLS step after EHLO; Ok: go on (over TLS, or in plaintext where the level
    /// allows it).
    pub(super) async fn starttls(&mut self, tls: &Tls<'_>) -> Result<(), Stop> {
        let decision = tls.client.decide(
            tls.policy,
            self.features.starttls,
            &self.peer.name,
            &self.namaddr,
        );
        match decision {
            Decision::Plaintext { note } => {
                if let Some(note) = note {
                    self.tls_log.push(LogLine::info(note));
                }
                Ok(())
            }
            Decision::Fail { dsn, text } => {
                self.t.bulk_fail(None, &fake(dsn), text, true);
                self.quit().await;
                Err(Stop)
            }
            Decision::StartTls => self.handshake(tls).await,
        }
    }

    async fn handshake(&mut self, tls: &Tls<'_>) -> Result<(), Stop> {
        let limit = tls.client.settings().starttls_timeout;
        let reply = self
            .chat("STARTTLS", limit, "receiving the STARTTLS response")
            .await?;
        if reply.class() != 2 {
            self.features.starttls = false;
            if tls.policy.level.required() {
                let text = tls::refused(&self.namaddr, &reply.flat());
                let host = self.peer.name.clone();
                self.t.bulk_fail(Some(&host), &reply, text, true);
                self.quit().await;
                return Err(Stop);
            }
            // Else on in plaintext.
            return Ok(());
        }
        // The plaintext buffer goes with the old Wire.
        let placeholder: Stream = Box::new(tokio::io::duplex(1).0);
        let io = std::mem::replace(&mut self.wire, Wire::new(placeholder)).into_inner();
        let relay = self.peer.relay();
        let peer = tls::Peer {
            nexthop: tls.nexthop,
            host: &self.peer.name,
            namaddr: &relay,
        };
        match tls.client.starttls(io, tls.policy, &peer).await {
            Ok((stream, info)) => {
                self.tls_log.extend(info.log);
                self.wire = Wire::new(Box::new(stream));
                self.features = Features::default();
                // smtp_start_tls(): "recurse into the HELO dialog", EHLO this time.
                self.hello(true).await
            }
            Err(f) => {
                // DONT_USE_FORBIDDEN_SESSION: the stream is gone, no QUIT.
                self.broken = true;
                self.tls_log.extend(f.log);
                if f.may_retry_plaintext && tls.plaintext_fallback_ok {
                    // RETRY_AS_PLAINTEXT: this server again, without TLS.
                    self.t.not_final();
                    self.retry_plaintext = true;
                }
                self.t.bulk_fail(None, &fake(f.dsn), f.text, f.throttle);
                Err(Stop)
            }
        }
    }
}
