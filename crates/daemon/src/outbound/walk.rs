//! One delivery request through smtp(8)/lmtp(8) (smtp_connect.c: smtp_connect_inet(),
//! smtp_connect_local(); smtp.c: deliver_message()): read the message, split the next
//! hop into sites (then smtp_fallback_relay), resolve each site, and try its addresses
//! in order, each with a kept connection if there is one (after its RSET probe) or a
//! new one, until every recipient has a result.
//!
//! The rules, as Postfix has them:
//! - A soft failure at a server that is not the last to try leaves the recipients for
//!   the next one (logged `QUEUEID: TEXT`); the last is the last address of the final
//!   site, or the one that reaches smtp_mx_session_limit (handshake failures do not
//!   count towards it).
//! - A site is final when it is the last, when this machine is one of its MX hosts, or
//!   when its mail loops back here: the fallback relays are then not tried.
//! - A failed connection is logged (`connect to HOST[IP]:PORT: ...`) and the next
//!   address tried; recipients left at the end get the last failure, relay `none`, with
//!   a hard failure of the relayhost or a fallback relay softened to 4.3.5 ("relayhost
//!   configuration problem").
//! - A `may` STARTTLS handshake failure of a message that has waited at least
//!   minimal_backoff_time is retried at once on the same address in plaintext, unless
//!   SASL credentials apply to the server (PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE:
//!   a server that offers AUTH only over TLS would answer "relay access denied").
//! - With SASL, kept connections are keyed as Postfix's smtp_key.c keys them: the
//!   sender too with smtp_sender_dependent_authentication, and the address's key the
//!   next hop and host name too once smtp_sasl_password_maps is set, so that one
//!   login's connection never carries another's mail.
//!
//! Trust: see the module above; the lists walked here are bounded by
//! smtp_mx_address_limit and the number of sites in the next hop.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tern_client::nexthop::{self, Failure, Rng, Site, Sites};
use tern_client::session::{
    self, Attempt, Connection, LoopCheck, Message, Options, Outcome as SOutcome, Peer, Recipient,
    Sasl, SessionResult, Start, Tls,
};
use tern_client::tls::{Destination, Level, LogLine, Policy};
use tern_delivery::request::{Delivered, DeliveryRequest, Outcome};
use tern_maillog::delivery::client_info;
use tern_maillog::{Ident, Line};

use super::Shared;
use super::message::{self, Loaded};
use super::settings::ServiceSettings;
use crate::qmgr::transports::SessionStats;

/// Delivers `req` (see the module documentation).
pub(super) async fn deliver(
    svc: &ServiceSettings,
    shared: &Shared,
    ident: &Ident,
    req: &DeliveryRequest,
) -> (Vec<Outcome>, Vec<SessionStats>) {
    let start = Instant::now();
    let loaded = {
        let r = req.clone();
        tokio::task::spawn_blocking(move || message::load(&r)).await
    };
    let loaded = match loaded {
        Ok(Ok(l)) => l,
        failed => {
            let e = match failed {
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
                Ok(Ok(_)) => String::new(),
            };
            shared.logger.log(
                ident,
                &Line::warning(format!("{}: read queue file: {e}", req.queue_id)),
            );
            return (
                super::defer_all(req, "4.3.0", "error reading message file"),
                Vec::new(),
            );
        }
    };
    let mut w = Walk {
        svc,
        shared,
        ident,
        req,
        loaded: &loaded,
        start,
        left: message::recipients(req),
        out: Vec::new(),
        why: None,
    };
    let mut warnings = Vec::new();
    let sites = nexthop::sites(
        &req.nexthop,
        &svc.fallback_relay,
        svc.nexthop_protocol(),
        &svc.tcp_port,
        &svc.known_tcp_ports,
        &mut warnings,
    );
    for text in warnings {
        w.warn(text);
    }
    match sites {
        Err(e) => {
            // smtp(8) ends with a fatal error here; qmgr defers the mail.
            shared.logger.log(ident, &Line::fatal(e.to_string()));
            w.why = Some(Failure {
                dsn: "4.3.0".into(),
                text: "unknown mail transport error".into(),
            });
            w.finish(None);
        }
        Ok(Sites::Unix(path)) => w.unix(&path).await,
        Ok(Sites::Inet(sites)) => w.inet(&sites).await,
    }
    w.out.into_iter().unzip()
}

/// The state of one request.
struct Walk<'a> {
    svc: &'a ServiceSettings,
    shared: &'a Shared,
    ident: &'a Ident,
    req: &'a DeliveryRequest,
    loaded: &'a Loaded,
    /// The hand-off from the queue manager (`delays=` c counts from here).
    start: Instant,
    /// Recipients without a result yet.
    left: Vec<Recipient>,
    out: Vec<(Outcome, SessionStats)>,
    /// The last failure (Postfix's `why`), for the recipients left at the end.
    why: Option<Failure>,
}

/// A server to talk to: where, and how to name it.
struct Server<'a> {
    peer: Peer,
    /// The next hop as written (`[relay.example]:587`; the socket path for lmtp(8)):
    /// Postfix's iter->dest, for the SASL password lookup.
    dest: &'a str,
    /// The cache keys ([`Walk::dest_label`], [`Walk::endp_label`]).
    nexthop_key: String,
    endpoint_key: String,
    /// The next-hop domain for TLS matching and the loop text.
    domain: &'a str,
}

/// What one session left for the walk.
struct Ran {
    /// The handshake ended (the session counts towards smtp_mx_session_limit).
    counted: bool,
    retry_plaintext: bool,
}

impl Walk<'_> {
    fn warn(&self, text: String) {
        self.shared.logger.log(self.ident, &Line::warning(text));
    }

    fn info(&self, text: String) {
        self.shared.logger.log(self.ident, &client_info(text));
    }

    /// lmtp(8)'s `unix:/path`: one server, always the last (smtp_connect_local()).
    async fn unix(&mut self, path: &std::path::Path) {
        let key = path.display().to_string();
        let store = self.begin(&key);
        let peer = Peer {
            name: self.svc.session.myhostname.clone(),
            addr: key.clone(),
            port: None,
        };
        let server = Server {
            dest: &key,
            nexthop_key: self.dest_label(&key),
            endpoint_key: self.endp_label(&key, &peer),
            peer,
            domain: &key,
        };
        let attempt = Attempt {
            final_server: true,
            loop_check: None,
        };
        if let Some(conn) = self.cached(Some(&server.nexthop_key), None).await {
            self.session(Start::Cached(conn), &server, &attempt, None, store, false)
                .await;
        } else {
            match session::connect_unix(
                &self.svc.session.myhostname,
                path,
                self.svc.session.connect_timeout,
            )
            .await
            {
                Ok((stream, _)) => {
                    let start = Start::Fresh(Box::new(stream));
                    self.session(start, &server, &attempt, None, store, false)
                        .await;
                }
                Err(e) => {
                    self.info(e.text.clone());
                    self.why = Some(Failure {
                        dsn: e.dsn,
                        text: e.text,
                    });
                }
            }
        }
        self.end(&key);
        self.finish(None);
    }

    /// smtp_connect_inet().
    async fn inet(&mut self, sites: &[Site]) {
        let mut rng = Rng::new();
        let first_key = sites.first().map(|s| s.text.clone()).unwrap_or_default();
        let store = self.begin(&first_key);
        let mut last_site = None;
        for (si, site) in sites.iter().enumerate() {
            if self.left.is_empty() {
                break;
            }
            last_site = Some(site);
            let res = nexthop::resolve(
                &self.shared.dns,
                site,
                self.svc.nexthop_protocol(),
                &self.svc.nexthop,
                &self.svc.local_addrs,
                &mut rng,
            )
            .await;
            for text in &res.warnings {
                self.warn(text.clone());
            }
            let final_nexthop = si + 1 == sites.len() || res.final_nexthop();
            match res.targets {
                Err(f) => self.why = Some(f),
                Ok(targets) => {
                    let store = store || self.svc.always_cache(&site.host);
                    self.site(site, si == 0, &targets, final_nexthop, store)
                        .await;
                }
            }
            if final_nexthop {
                break;
            }
        }
        self.end(&first_key);
        self.finish(last_site.map(|s| (s, first_key.as_str())));
    }

    /// One site's addresses.
    async fn site(
        &mut self,
        site: &Site,
        first: bool,
        targets: &[nexthop::Target],
        final_nexthop: bool,
        store: bool,
    ) {
        let best_pref = targets.first().map(|t| t.pref);
        let limit = self.svc.mx_session_limit;
        let mut sessions = 0;
        let mut skip: Option<String> = None;
        // smtp_reuse_session(): a connection kept under this next hop goes first.
        let dest_label = self.dest_label(&site.text);
        if first && let Some(conn) = self.cached(Some(&dest_label), None).await {
            let endpoint = conn.peer().relay();
            let peer = conn.peer().clone();
            let server = Server {
                dest: &site.text,
                nexthop_key: dest_label.clone(),
                endpoint_key: self.endp_label(&site.text, &peer),
                peer,
                domain: &site.host,
            };
            let last = targets.len() <= 1 || (limit > 0 && limit <= 1);
            let attempt = Attempt {
                final_server: final_nexthop && last,
                loop_check: None,
            };
            self.session(Start::Cached(conn), &server, &attempt, None, store, false)
                .await;
            sessions += 1;
            skip = Some(endpoint);
        }
        let mut i = 0;
        let mut plaintext = false;
        // Bounded: each round moves to the next address, except one plaintext retry.
        while i < targets.len() && !self.left.is_empty() && (limit == 0 || sessions < limit) {
            let t = &targets[i];
            let addr = SocketAddr::new(t.addr, t.port);
            let peer = Peer {
                name: t.host.clone(),
                addr: t.addr.to_string(),
                port: Some(t.port),
            };
            let endpoint = peer.relay();
            if skip.as_deref() == Some(endpoint.as_str()) {
                i += 1;
                continue;
            }
            let last = i + 1 == targets.len() || (limit > 0 && sessions + 1 == limit);
            let attempt = Attempt {
                final_server: final_nexthop && i + 1 == targets.len(),
                loop_check: (self.svc.protocol == session::Protocol::Smtp && t.port == 25).then(
                    || LoopCheck {
                        nexthop: site.host.clone(),
                        best_mx: Some(t.pref) == best_pref,
                    },
                ),
            };
            let policy = if plaintext {
                None
            } else {
                let Ok(p) = self.tls_policy(site, &t.host) else {
                    i += 1;
                    continue;
                };
                p
            };
            let server = Server {
                dest: &site.text,
                nexthop_key: dest_label.clone(),
                endpoint_key: self.endp_label(&site.text, &peer),
                peer,
                domain: &site.host,
            };
            let cached = if policy.is_none() {
                self.cached(None, Some(&server.endpoint_key)).await
            } else {
                None
            };
            let start = match cached {
                Some(conn) => Start::Cached(conn),
                None => {
                    match session::connect_tcp(&t.host, addr, self.svc.session.connect_timeout)
                        .await
                    {
                        Ok((stream, _)) => Start::Fresh(Box::new(stream)),
                        Err(e) => {
                            // The text names the address and port already.
                            self.info(e.text.clone());
                            self.why = Some(Failure {
                                dsn: e.dsn,
                                text: e.text,
                            });
                            i += 1;
                            continue;
                        }
                    }
                }
            };
            // Postfix decides after the handshake whether this session reaches
            // smtp_mx_session_limit and so is the last: a session that gets that far
            // defers what it would have left for the next server.
            let last_if_counted = final_nexthop && last && !attempt.final_server;
            let ran = self
                .session(
                    start,
                    &server,
                    &attempt,
                    policy.as_ref(),
                    store,
                    last_if_counted,
                )
                .await;
            plaintext = false;
            if ran.retry_plaintext {
                // RETRY_AS_PLAINTEXT: the same address again, without TLS.
                plaintext = true;
                continue;
            }
            if ran.counted {
                sessions += 1;
            }
            i += 1;
        }
    }

    /// The TLS policy for one address: `Ok(None)` for plaintext, `Err` to skip it.
    fn tls_policy(&mut self, site: &Site, host: &str) -> Result<Option<Policy>, ()> {
        let Some(client) = &self.svc.tls else {
            return Ok(None);
        };
        let mut warnings = Vec::new();
        let dest = Destination {
            dest: &site.text,
            // smtp_tls_per_site's second key (SMTP_HNAME() of the address).
            host,
            unix_socket: false,
        };
        let r = client.policy(dest, &mut warnings);
        for text in warnings {
            self.warn(text);
        }
        match r {
            Ok(p) if p.level == Level::None && !client.settings().note_starttls_offer => Ok(None),
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                self.warn(format!("TLS policy lookup for {}/{host}: {e}", site.text));
                self.why = Some(Failure {
                    dsn: e.dsn().to_owned(),
                    text: e.to_string(),
                });
                Err(())
            }
        }
    }

    /// A kept connection under `nexthop` or to `endpoint` that passes the RSET probe.
    async fn cached(&self, nexthop: Option<&str>, endpoint: Option<&str>) -> Option<Connection> {
        // Bounded: each round removes one connection from the cache.
        for _ in 0..super::cache::MAX_IDLE {
            let mut conn = self.shared.cache.take(&self.svc.name, nexthop, endpoint)?;
            if conn.probe(&self.svc.session).await {
                conn.reuse_count += 1;
                return Some(conn);
            }
        }
        None
    }

    fn begin(&self, nexthop: &str) -> bool {
        self.svc.cache_on_demand && self.shared.cache.begin(&self.svc.name, nexthop)
    }

    fn end(&self, nexthop: &str) {
        self.shared.cache.end(&self.svc.name, nexthop);
    }

    /// One session with the recipients left.
    async fn session(
        &mut self,
        start: Start,
        server: &Server<'_>,
        attempt: &Attempt,
        policy: Option<&Policy>,
        store: bool,
        last_if_counted: bool,
    ) -> Ran {
        let (reuse_count, born) = match &start {
            Start::Cached(c) => (c.reuse_count, Some(c.born)),
            Start::Fresh(_) => (0, None),
        };
        let limits = &self.svc;
        let young = born.is_none_or(|b| b.elapsed() < limits.reuse_time_limit);
        let under_count = limits.reuse_count_limit == 0 || reuse_count < limits.reuse_count_limit;
        let sasl = self.svc.sasl.as_ref().map(|client| Sasl {
            client,
            sender: &self.req.sender,
            dest: server.dest,
            queue_id: &self.req.queue_id,
        });
        // HAVE_SASL_CREDENTIALS (a lookup error counts as having them: no plaintext).
        let has_credentials = sasl.as_ref().is_some_and(|s| {
            !matches!(
                s.client.credentials(s.sender, &server.peer.name, s.dest),
                Ok(None)
            )
        });
        let tls = policy.and_then(|p| {
            self.svc.tls.as_ref().map(|client| Tls {
                client,
                policy: p,
                nexthop: server.domain,
                plaintext_fallback_ok: self.waited_min_backoff() && !has_credentials,
            })
        });
        let opts = Options {
            // Postfix keeps TLS sessions only through tlsproxy(8); Tern does not keep them.
            keep: store && young && under_count && tls.is_none(),
            tls,
            sasl,
        };
        let msg = Message {
            sender: self.req.sender.clone(),
            recipients: self.left.clone(),
            envid: self.req.envid.clone(),
            ret: self.loaded.ret,
            size: self.loaded.size,
            content: &self.loaded.content,
            encoding: self.loaded.encoding,
            smtputf8_requested: self.loaded.smtputf8_requested,
            smtputf8_required: self.loaded.smtputf8_required,
            verify: self.req.verify,
        };
        let (result, kept) =
            session::run(start, &self.svc.session, &server.peer, &msg, attempt, &opts).await;
        let ended = Instant::now();
        self.log_tls(&result.tls_log);
        let ran = Ran {
            counted: result.handshake_done.is_some(),
            retry_plaintext: result.retry_plaintext,
        };
        let last = last_if_counted && ran.counted;
        self.take_results(&result, reuse_count, ended, last);
        if let Some(conn) = kept {
            self.shared.cache.put(
                &self.svc.name,
                &server.nexthop_key,
                &server.endpoint_key,
                conn,
                self.svc.cache_time_limit,
            );
        }
        ran
    }

    /// The connection cache's next-hop key (SMTP_KEY_MASK_SCACHE_DEST_LABEL; the service
    /// is the cache's own field): the sender too with sender-dependent credentials.
    fn dest_label(&self, nexthop: &str) -> String {
        match &self.svc.sasl {
            Some(s) if s.settings().sender_dependent => {
                format!("{}\n{nexthop}", self.req.sender)
            }
            _ => nexthop.to_owned(),
        }
    }

    /// The connection cache's address key (SMTP_KEY_MASK_SCACHE_ENDP_LABEL): with SASL
    /// tables, the sender (when sender-dependent), the next hop and the host name too,
    /// proxies for the credentials the connection logged in with.
    fn endp_label(&self, nexthop: &str, peer: &Peer) -> String {
        let relay = peer.relay();
        match &self.svc.sasl {
            Some(s) if s.settings().sender_dependent => {
                format!("{}\n{nexthop}\n{}\n{relay}", self.req.sender, peer.name)
            }
            Some(_) => format!("{nexthop}\n{}\n{relay}", peer.name),
            None => relay,
        }
    }

    /// PREACTIVE_DELAY >= minimal_backoff_time: the message was deferred before.
    fn waited_min_backoff(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now.saturating_sub(self.req.arrival) >= self.svc.minimal_backoff.as_secs()
    }

    fn log_tls(&self, lines: &[LogLine]) {
        for l in lines {
            let line = if l.warning {
                Line::warning(l.text.clone())
            } else {
                client_info(l.text.clone())
            };
            self.shared.logger.log(self.ident, &line);
        }
    }

    /// Moves the session's final results to `out`; Kept recipients stay in `left`,
    /// unless the session turned out to be the `last` (then they are deferred with its
    /// reason, soft_bounce's 5xx as 4xx).
    fn take_results(
        &mut self,
        result: &SessionResult,
        reuse_count: u32,
        ended: Instant,
        last: bool,
    ) {
        let setup_end = result.handshake_done.unwrap_or(ended);
        let stats = |index, passed_on| SessionStats {
            index,
            conn_setup: setup_end.saturating_duration_since(self.start),
            transmission: ended.saturating_duration_since(setup_end),
            conn_use: reuse_count + 1,
            success_notice_passed_on: passed_on,
            throttle: result.throttle,
        };
        for r in &result.recipients {
            let s = r.outcome.status();
            let passed_on = matches!(
                r.outcome,
                SOutcome::Sent {
                    success_notice_passed_on: true,
                    ..
                }
            );
            let delivered = match &r.outcome {
                SOutcome::Kept(status) if last => {
                    let mut dsn = status.dsn.clone();
                    dsn.replace_range(..1, "4");
                    Delivered::Deferred {
                        dsn,
                        text: status.text.clone(),
                    }
                }
                SOutcome::Kept(status) => {
                    // smtp_trouble.c: msg_info("%s: %s", queue_id, reason).
                    self.info(format!("{}: {}", self.req.queue_id, status.text));
                    self.why = Some(Failure {
                        dsn: status.dsn.clone(),
                        text: status.text.clone(),
                    });
                    continue;
                }
                SOutcome::Sent { .. } => Delivered::Sent {
                    dsn: s.dsn.clone(),
                    text: s.text.clone(),
                },
                SOutcome::Deferred(_) => Delivered::Deferred {
                    dsn: s.dsn.clone(),
                    text: s.text.clone(),
                },
                SOutcome::Bounced(_) => Delivered::Bounced {
                    dsn: s.dsn.clone(),
                    text: s.text.clone(),
                },
            };
            self.left.retain(|l| l.index != r.index);
            self.out.push((
                Outcome {
                    index: r.index,
                    result: delivered,
                    relay: result.relay.clone(),
                    expanded: Vec::new(),
                },
                stats(r.index, passed_on),
            ));
        }
    }

    /// The recipients left get the last failure (smtp_connect_inet()'s end, then
    /// deliver_message()'s smtp_sess_fail()): relay none. `last` is the last site tried
    /// and the first site's text, for the configuration-problem rule.
    fn finish(&mut self, last: Option<(&Site, &str)>) {
        if self.left.is_empty() {
            return;
        }
        let mut why = self.why.take().unwrap_or_else(|| Failure {
            dsn: "4.3.0".into(),
            text: "server unavailable or unable to receive mail".into(),
        });
        if let Some((site, first)) = last
            && let Some(w) = nexthop::config_problem(
                &mut why,
                site,
                first,
                &self.svc.relayhost,
                self.svc.nexthop_protocol(),
            )
        {
            self.warn(w);
        }
        let soft = why.is_soft() || self.svc.session.soft_bounce;
        if soft && !why.is_soft() {
            why.dsn.replace_range(..1, "4");
        }
        let elapsed = self.start.elapsed();
        for r in std::mem::take(&mut self.left) {
            let result = if soft {
                Delivered::Deferred {
                    dsn: why.dsn.clone(),
                    text: why.text.clone(),
                }
            } else {
                Delivered::Bounced {
                    dsn: why.dsn.clone(),
                    text: why.text.clone(),
                }
            };
            self.out.push((
                Outcome {
                    index: r.index,
                    result,
                    relay: "none".to_owned(),
                    expanded: Vec::new(),
                },
                SessionStats {
                    index: r.index,
                    conn_setup: elapsed,
                    transmission: Duration::ZERO,
                    conn_use: 0,
                    success_notice_passed_on: false,
                    // Every address of the site failed: the site's hop status.
                    throttle: true,
                },
            ));
        }
    }
}
