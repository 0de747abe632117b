//! SASL authentication inside a session (smtp_sasl_proto.c smtp_sasl_helo_auth() and
//! smtp_sasl_helo_login(), smtp_sasl_glue.c smtp_sasl_authenticate()): after the last
//! EHLO (the one over TLS when STARTTLS succeeded) and before MAIL FROM, with the
//! [`crate::sasl`] module's lookup, mechanism choice and exchange.
//!
//! Postfix's rules, in order:
//! - smtp_sasl_auth_enable off, or the server offers no AUTH: no authentication, nothing
//!   logged.
//! - No credentials for this server (sender, host name, next hop): no authentication
//!   ("talk to each other like strangers"); `AUTH=<>` is not sent either.
//! - A lookup error: `warning: QUEUEID: smtp_sasl_password_maps lookup error`, then
//!   4.3.0 "local data error while talking to HOST[ADDR]" for every recipient.
//! - The mechanism filter leaves nothing: a warning (`HOST[ADDR]:PORT offered no
//!   supported AUTH mechanisms: 'LIST'`), then 4.7.0 "SASL authentication failed: server
//!   HOST[ADDR] offered no compatible authentication mechanisms for this type of
//!   connection security".
//! - No usable mechanism under the security options: 4.7.0 "SASL authentication failed;
//!   cannot authenticate to server HOST[ADDR]: no mechanism available" (Cyrus's text).
//! - The server refuses: "SASL authentication failed; server HOST[ADDR] said: REPLY",
//!   the reply's status with 5 turned to 4 under smtp_sasl_auth_soft_bounce.
//!
//! Every failure is smtp_sess_fail(): a site failure (throttled when it defers; a soft
//! one at a server that is not the last leaves the recipients for the next server), then
//! QUIT; the session is never kept.
//!
//! Security: the credentials go to the server only, never into a result text or a log
//! line; a server cannot make the exchange loop (see [`crate::sasl::MAX_STEPS`]).

use super::conversation::{Session, Stop};
use super::reply::{Reply, fake};
use super::{Protocol, Sasl};
use crate::sasl::{Channel, Exchange, ExchangeError, Step};
use crate::tls::LogLine;

impl Session<'_> {
    /// The AUTH step; Ok: go on to the mail transaction (authenticated or not).
    pub(super) async fn auth(&mut self, sasl: &Sasl<'_>) -> Result<(), Stop> {
        let Some(offered) = self.features.auth.clone() else {
            return Ok(());
        };
        let client = sasl.client;
        // smtp_sasl_helo_auth(): the filter applies as the EHLO reply is read, with its
        // warning, whether or not credentials exist.
        let filtered = client.filter(&offered);
        if filtered.is_empty() {
            let text = if offered.is_empty() {
                format!("{} offered null AUTH mechanism list", self.peer.relay())
            } else {
                format!(
                    "{} offered no supported AUTH mechanisms: '{}'",
                    self.peer.relay(),
                    offered.join(" ")
                )
            };
            self.tls_log.push(LogLine::warning(text));
        }
        let creds = match client.credentials(sasl.sender, &self.peer.name, sasl.dest) {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.features.auth = None;
                return Ok(());
            }
            Err(_) => {
                self.tls_log.push(LogLine::warning(format!(
                    "{}: {} lookup error",
                    sasl.queue_id,
                    client.table_title()
                )));
                let text = format!("local data error while talking to {}", self.namaddr);
                return self.auth_failed(None, &fake("4.3.0"), text).await;
            }
        };
        if filtered.is_empty() {
            let text = format!(
                "SASL authentication failed: server {} offered no compatible authentication \
                 mechanisms for this type of connection security",
                self.namaddr
            );
            return self.auth_failed(None, &fake("4.7.0"), text).await;
        }
        let Some(mechanism) = client.choose(&filtered, self.channel()) else {
            let text = format!(
                "SASL authentication failed; cannot authenticate to server {}: no mechanism \
                 available",
                self.namaddr
            );
            return self.auth_failed(None, &fake("4.7.0"), text).await;
        };
        let mut exchange = Exchange::new(mechanism, creds);
        let doing = match self.settings.protocol {
            Protocol::Smtp => "performing the EHLO handshake",
            Protocol::Lmtp => "performing the LHLO handshake",
        };
        let limit = self.settings.helo_timeout;
        let mut line = exchange.start();
        // Bounded: the exchange fails after MAX_STEPS challenges.
        loop {
            let reply = self.chat(&line, limit, doing).await?;
            let challenge = reply.text.get(4..).unwrap_or_default();
            match exchange.reply(reply.code, challenge) {
                Step::Send(next) => line = next,
                Step::Done => return Ok(()),
                Step::Refused => {
                    let mut r = reply.clone();
                    if client.settings().auth_soft_bounce && r.class() == 5 {
                        r.dsn.replace_range(..1, "4");
                    }
                    let text = format!(
                        "SASL authentication failed; server {} said: {}",
                        self.namaddr,
                        reply.flat()
                    );
                    let host = self.peer.name.clone();
                    return self.auth_failed(Some(&host), &r, text).await;
                }
                Step::Error(e) => {
                    let (dsn, text) = match e {
                        ExchangeError::Loop => (
                            "4.3.0",
                            format!(
                                "SASL authentication failed; authentication protocol loop \
                                 with server {}",
                                self.namaddr
                            ),
                        ),
                        // XXX: Postfix quotes its own held-back response here; Tern
                        // quotes no credentials, so the text ends with the error type.
                        ExchangeError::NonEmptyInitialChallenge => (
                            "4.7.0",
                            format!(
                                "SASL authentication failed; non-empty initial {} challenge \
                                 from server {}: protocol error",
                                mechanism.name(),
                                self.namaddr
                            ),
                        ),
                        ExchangeError::GenericFailure => (
                            "4.7.0",
                            format!(
                                "SASL authentication failed; cannot authenticate to server \
                                 {}: generic failure",
                                self.namaddr
                            ),
                        ),
                    };
                    return self.auth_failed(None, &fake(dsn), text).await;
                }
            }
        }
    }

    /// smtp_sess_fail() then smtp_quit(): every recipient left fails the same way.
    async fn auth_failed(
        &mut self,
        mta: Option<&str>,
        reply: &Reply,
        text: String,
    ) -> Result<(), Stop> {
        self.t.bulk_fail(mta, reply, text, true);
        self.quit().await;
        Err(Stop)
    }

    /// Which security options apply: TLS is on when STARTTLS recursed into a second
    /// EHLO; its certificate is matched at the levels that require a match (a handshake
    /// at those levels fails otherwise).
    fn channel(&self) -> Channel {
        match self.opts.tls.as_ref() {
            Some(tls) if self.hellos > 1 => {
                if tls.policy.level.must_match() {
                    Channel::TlsVerified
                } else {
                    Channel::Tls
                }
            }
            _ => Channel::Plaintext,
        }
    }
}
