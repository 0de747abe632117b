//! anvil(8): connection and rate limits per client, in process. One [`Anvil`] per daemon
//! ([`global`]), shared by every smtpd service and kept across reloads, as Postfix's one
//! anvil server is shared by every smtpd process.
//!
//! What it counts (anvil.c): per `service:address` key, the open connections and, in a
//! fixed window of anvil_rate_time_unit that starts with the first event, the connection,
//! MAIL, RCPT, new-TLS and AUTH events ("Simply reset the counter every
//! var_anvil_time_unit seconds"). A key whose last connection ended is forgotten one time
//! unit later. Times are whole seconds, as Postfix's event_time().
//!
//! What smtpd does with the counts (smtpd.c v3.7.11), for clients that do not match
//! smtpd_client_event_limit_exceptions:
//! - before the greeting, over smtpd_client_connection_count_limit:
//!   `421 4.7.0 MYHOSTNAME Error: too many connections from ADDR` and
//!   `warning: Connection concurrency limit exceeded: N from NAME[ADDR] for service SVC`;
//!   over smtpd_client_connection_rate_limit the same reply and
//!   `warning: Connection rate limit exceeded: N from NAME[ADDR] for service SVC`;
//! - at MAIL, over smtpd_client_message_rate_limit: `450 4.7.1 Error: too much mail from
//!   ADDR` and `warning: Message delivery request rate limit exceeded: N from ...`;
//! - at RCPT, over smtpd_client_recipient_rate_limit: `450 4.7.1 Error: too many
//!   recipients from ADDR` and `warning: Recipient address rate limit exceeded: N from ...`.
//!
//! Every connection is counted, limited or not ("Must send connect/disconnect events to
//! the anvil server even when this service is not connection count or rate limited"); the
//! count drops when the [`ConnGuard`] is dropped, whatever way the session ends.
//! smtpd_client_new_tls_session_rate_limit and smtpd_client_auth_rate_limit are parsed
//! only (XXX: no STARTTLS or AUTH in the server yet).
//!
//! Trust: the client address comes from the kernel; the client name from the DNS (only
//! matched against the exceptions list). Memory is bounded by sweeping expired keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_maillog::prefix::Timestamp;
use tern_maillog::{Ident, Logger};
use tern_rewrite::matchlist::MatchList;

use crate::relay::PolicyError;

/// The limits of one smtpd service (main.cf with the service's `-o` overrides).
#[derive(Debug)]
pub struct Limits {
    /// master.cf's service name, the first half of anvil's key.
    pub service: String,
    pub myhostname: String,
    /// smtpd_client_connection_count_limit (0: none).
    pub connection_count: u32,
    /// smtpd_client_connection_rate_limit (0: none).
    pub connection_rate: u32,
    /// smtpd_client_message_rate_limit (0: none).
    pub message_rate: u32,
    /// smtpd_client_recipient_rate_limit (0: none).
    pub recipient_rate: u32,
    /// smtpd_client_new_tls_session_rate_limit (0: none).
    pub new_tls_rate: u32,
    /// smtpd_client_auth_rate_limit (0: none).
    pub auth_rate: u32,
    /// anvil_rate_time_unit.
    pub time_unit: Duration,
    /// anvil_status_update_time: how often the statistics are logged.
    pub status_update: Duration,
    /// smtpd_client_event_limit_exceptions (a namadr list, as mynetworks).
    pub exceptions: MatchList,
}

impl Limits {
    /// Reads the limits in `service`'s name space; `service_name` is master.cf's first
    /// column ("smtp" for main.cf alone).
    pub fn from_config(
        config: &Config,
        service: Option<&Service>,
        service_name: &str,
    ) -> Result<Limits, PolicyError> {
        let get = |name: &str| -> Result<String, PolicyError> {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            if config.is_raw(name) {
                return Ok(raw);
            }
            Ok(config.expand(&raw, service)?.text)
        };
        let bad = |name: &str, value: &str| PolicyError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let int = |name: &str| -> Result<u32, PolicyError> {
            let v = get(name)?;
            // get_mail_conf_int(): a negative value is out of range (min 0).
            v.trim().parse::<u32>().map_err(|_| bad(name, &v))
        };
        let time = |name: &str| -> Result<Duration, PolicyError> {
            let v = get(name)?;
            crate::settings::parse_time(&v)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| bad(name, &v))
        };
        let name = "smtpd_client_event_limit_exceptions";
        let value = get(name)?;
        let parents = get("parent_domain_matches_subdomains")?;
        let exceptions = crate::relay::namadr_list(name, &value, &parents)?;
        Ok(Limits {
            service: service_name.to_owned(),
            myhostname: get("myhostname")?,
            connection_count: int("smtpd_client_connection_count_limit")?,
            connection_rate: int("smtpd_client_connection_rate_limit")?,
            message_rate: int("smtpd_client_message_rate_limit")?,
            recipient_rate: int("smtpd_client_recipient_rate_limit")?,
            new_tls_rate: int("smtpd_client_new_tls_session_rate_limit")?,
            auth_rate: int("smtpd_client_auth_rate_limit")?,
            time_unit: time("anvil_rate_time_unit")?,
            status_update: time("anvil_status_update_time")?,
            exceptions,
        })
    }

    /// namadr_list_match(hogger_list, name, addr): a table error is "not excepted", as
    /// Postfix's list returns no match with its error flag set.
    fn excepted(&self, name: &str, addr: IpAddr) -> bool {
        self.exceptions.match_namadr(name, addr).unwrap_or(false)
    }

    fn key(&self, addr: IpAddr) -> String {
        format!(
            "{}:{}",
            self.service,
            tern_rewrite::matchlist::addr_text(addr)
        )
    }
}

/// A refused event: smtpd's reply and its warning (without `warning: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reply: String,
    pub warning: String,
}

/// One `service:address` entry (anvil.c's ANVIL_REMOTE).
#[derive(Debug, Clone)]
struct Remote {
    count: u32,
    rate: u32,
    mail: u32,
    rcpt: u32,
    /// New TLS sessions and AUTH commands in the window.
    newtls: u32,
    auth: u32,
    /// Start of the rate window, in seconds since [`Anvil::epoch`].
    start: u64,
    /// When the count dropped to zero (the entry expires one time unit later).
    idle_since: Option<u64>,
}

/// A peak for the statistics (anvil.c's ANVIL_MAX).
#[derive(Debug, Clone, Default)]
struct Max {
    value: u32,
    ident: String,
    at: Option<Timestamp>,
}

impl Max {
    fn update(&mut self, value: u32, ident: &str) {
        if value > self.value {
            self.value = value;
            ident.clone_into(&mut self.ident);
            self.at = Some(Timestamp::now());
        }
    }
}

#[derive(Debug, Default)]
struct Peaks {
    conn_rate: Max,
    conn_count: Max,
    mail_rate: Max,
    rcpt_rate: Max,
    newtls_rate: Max,
    auth_rate: Max,
    cache_size: usize,
    cache_at: Option<Timestamp>,
    /// The time unit of the last event, for the `N/Ts` of the report.
    unit_secs: u64,
}

#[derive(Debug, Default)]
struct State {
    remotes: HashMap<String, Remote>,
    peaks: Peaks,
    /// When expired entries were last swept.
    swept: u64,
}

/// The daemon's event counters.
#[derive(Debug)]
pub struct Anvil {
    epoch: Instant,
    state: Mutex<State>,
    reporting: OnceLock<()>,
}

static ANVIL: LazyLock<Arc<Anvil>> = LazyLock::new(|| Arc::new(Anvil::new()));

/// The daemon's one anvil.
pub fn global() -> Arc<Anvil> {
    Arc::clone(&ANVIL)
}

/// Which rate an event counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Mail,
    Rcpt,
    NewTls,
    Auth,
}

impl Default for Anvil {
    fn default() -> Self {
        Anvil::new()
    }
}

impl Anvil {
    pub fn new() -> Anvil {
        Anvil {
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            reporting: OnceLock::new(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The counters stay consistent whatever a panicking holder did: each update is
        // a few integer stores.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry of `key`, dropped first when it has expired, then swept of others.
    fn entry<'a>(st: &'a mut State, key: &str, now: u64, unit: u64) -> Option<&'a mut Remote> {
        if st.swept + unit < now {
            st.remotes
                .retain(|_, r| r.idle_since.is_none_or(|t| t + unit >= now));
            st.swept = now;
        }
        if st
            .remotes
            .get(key)
            .is_some_and(|r| r.idle_since.is_some_and(|t| t + unit < now))
        {
            st.remotes.remove(key);
        }
        st.remotes.get_mut(key)
    }

    /// ANVIL_REMOTE_INCR_RATE's window: reset every rate when the window is over.
    fn roll(r: &mut Remote, now: u64, unit: u64) {
        if r.start + unit < now {
            r.rate = 0;
            r.mail = 0;
            r.rcpt = 0;
            r.newtls = 0;
            r.auth = 0;
            r.start = now;
        }
    }

    /// anvil_remote_connect(): one more connection; returns (count, rate).
    pub fn connect(&self, key: &str, unit: Duration) -> (u32, u32) {
        let now = self.now();
        let unit_secs = unit.as_secs();
        let mut st = self.lock();
        let (count, rate) = if let Some(r) = Self::entry(&mut st, key, now, unit_secs) {
            Self::roll(r, now, unit_secs);
            r.rate = r.rate.saturating_add(1);
            r.count = r.count.saturating_add(1);
            r.idle_since = None;
            (r.count, r.rate)
        } else {
            st.remotes.insert(
                key.to_owned(),
                Remote {
                    count: 1,
                    rate: 1,
                    mail: 0,
                    rcpt: 0,
                    newtls: 0,
                    auth: 0,
                    start: now,
                    idle_since: None,
                },
            );
            if st.remotes.len() > st.peaks.cache_size {
                st.peaks.cache_size = st.remotes.len();
                st.peaks.cache_at = Some(Timestamp::now());
            }
            (1, 1)
        };
        st.peaks.unit_secs = unit_secs;
        st.peaks.conn_rate.update(rate, key);
        st.peaks.conn_count.update(count, key);
        (count, rate)
    }

    /// anvil_remote_disconnect(): one connection fewer.
    pub fn disconnect(&self, key: &str) {
        let now = self.now();
        let mut st = self.lock();
        if let Some(r) = st.remotes.get_mut(key)
            && r.count > 0
        {
            r.count -= 1;
            if r.count == 0 {
                r.idle_since = Some(now);
            }
        }
    }

    /// anvil_remote_mail() / anvil_remote_rcpt(): the event's rate after this one. An
    /// entry that is gone (a reload in Postfix) is made anew, as anvil does.
    /// anvil_clnt_newtls_stat(): the current rate of `event`, not counting one more.
    fn event_stat(&self, key: &str, unit: Duration, event: Event) -> u32 {
        let now = self.now();
        let unit_secs = unit.as_secs();
        let mut st = self.lock();
        if Self::entry(&mut st, key, now, unit_secs).is_none() {
            return 0;
        }
        let Some(r) = st.remotes.get_mut(key) else {
            return 0;
        };
        Self::roll(r, now, unit_secs);
        match event {
            Event::Mail => r.mail,
            Event::Rcpt => r.rcpt,
            Event::NewTls => r.newtls,
            Event::Auth => r.auth,
        }
    }

    fn event(&self, key: &str, unit: Duration, event: Event) -> u32 {
        let now = self.now();
        let unit_secs = unit.as_secs();
        let mut st = self.lock();
        if Self::entry(&mut st, key, now, unit_secs).is_none() {
            st.remotes.insert(
                key.to_owned(),
                Remote {
                    count: 0,
                    rate: 0,
                    mail: 0,
                    rcpt: 0,
                    newtls: 0,
                    auth: 0,
                    start: now,
                    idle_since: Some(now),
                },
            );
        }
        let Some(r) = st.remotes.get_mut(key) else {
            return 0;
        };
        Self::roll(r, now, unit_secs);
        let field = match event {
            Event::Mail => &mut r.mail,
            Event::Rcpt => &mut r.rcpt,
            Event::NewTls => &mut r.newtls,
            Event::Auth => &mut r.auth,
        };
        *field = field.saturating_add(1);
        let rate = *field;
        match event {
            Event::Mail => st.peaks.mail_rate.update(rate, key),
            Event::Rcpt => st.peaks.rcpt_rate.update(rate, key),
            Event::NewTls => st.peaks.newtls_rate.update(rate, key),
            Event::Auth => st.peaks.auth_rate.update(rate, key),
        }
        rate
    }

    /// anvil_status_dump(): the peaks since the last report, then reset.
    fn report(&self, logger: &Logger, ident: &Ident) {
        let peaks = std::mem::take(&mut self.lock().peaks);
        let unit = peaks.unit_secs;
        let rate = |what: &str, m: &Max| {
            if let (true, Some(at)) = (m.value > 0, m.at) {
                let line = tern_maillog::anvil::max_rate(what, m.value, unit, &m.ident, at);
                logger.log(ident, &line);
            }
        };
        rate("connection", &peaks.conn_rate);
        if let (true, Some(at)) = (peaks.conn_count.value > 0, peaks.conn_count.at) {
            let m = &peaks.conn_count;
            logger.log(
                ident,
                &tern_maillog::anvil::max_count(m.value, &m.ident, at),
            );
        }
        rate("message", &peaks.mail_rate);
        rate("recipient", &peaks.rcpt_rate);
        rate("newtls", &peaks.newtls_rate);
        rate("auth", &peaks.auth_rate);
        if let (true, Some(at)) = (peaks.cache_size > 0, peaks.cache_at) {
            let line = tern_maillog::anvil::max_cache_size(peaks.cache_size, at);
            logger.log(ident, &line);
        }
    }
}

/// Gives back a connection when dropped (smtpd.c's anvil_clnt_disconnect()).
#[derive(Debug)]
pub struct ConnGuard {
    anvil: Arc<Anvil>,
    key: Option<String>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.anvil.disconnect(&key);
        }
    }
}

/// The check before the greeting: counts the connection (unless the client is excepted)
/// and says whether it is over a limit. Keep the guard until the session ends.
pub fn on_connect(limits: &Limits, name: &str, addr: IpAddr) -> (ConnGuard, Option<Refusal>) {
    on_connect_with(&global(), limits, name, addr)
}

/// [`on_connect`] with a given anvil.
pub fn on_connect_with(
    anvil: &Arc<Anvil>,
    limits: &Limits,
    name: &str,
    addr: IpAddr,
) -> (ConnGuard, Option<Refusal>) {
    if limits.excepted(name, addr) {
        let guard = ConnGuard {
            anvil: Arc::clone(anvil),
            key: None,
        };
        return (guard, None);
    }
    let key = limits.key(addr);
    let (count, rate) = anvil.connect(&key, limits.time_unit);
    let guard = ConnGuard {
        anvil: Arc::clone(anvil),
        key: Some(key),
    };
    let addr = tern_rewrite::matchlist::addr_text(addr);
    let reply = format!(
        "421 4.7.0 {} Error: too many connections from {addr}",
        limits.myhostname
    );
    let service = &limits.service;
    if limits.connection_count > 0 && count > limits.connection_count {
        let warning = format!(
            "Connection concurrency limit exceeded: {count} from {name}[{addr}] for service {service}"
        );
        return (guard, Some(Refusal { reply, warning }));
    }
    if limits.connection_rate > 0 && rate > limits.connection_rate {
        let warning = format!(
            "Connection rate limit exceeded: {rate} from {name}[{addr}] for service {service}"
        );
        return (guard, Some(Refusal { reply, warning }));
    }
    (guard, None)
}

/// The check at MAIL FROM: smtpd_client_message_rate_limit.
pub fn on_mail(limits: &Limits, name: &str, addr: IpAddr) -> Option<Refusal> {
    on_event(&global(), limits, name, addr, Event::Mail)
}

/// smtpd_client_new_tls_session_rate_limit before a handshake (smtpd.c
/// smtpd_starttls_cmd(): the rate so far, not counting this one): over the limit,
/// `454 4.7.0 Error: too many new TLS sessions from NAME[ADDR]` and `Refusing STARTTLS
/// request from NAME[ADDR] for service SERVICE`.
pub fn before_tls(limits: &Limits, name: &str, addr: IpAddr) -> Option<Refusal> {
    let limit = limits.new_tls_rate;
    if limit == 0 || limits.excepted(name, addr) {
        return None;
    }
    let rate = global().event_stat(&limits.key(addr), limits.time_unit, Event::NewTls);
    if rate <= limit {
        return None;
    }
    let text = tern_rewrite::matchlist::addr_text(addr);
    Some(Refusal {
        reply: format!("454 4.7.0 Error: too many new TLS sessions from {name}[{text}]"),
        warning: format!(
            "Refusing STARTTLS request from {name}[{text}] for service {}",
            limits.service
        ),
    })
}

/// smtpd_client_new_tls_session_rate_limit after a new (not resumed) handshake
/// (smtpd_start_tls()): counted; over the limit, `421 4.7.0 HOST Error: too many new TLS
/// sessions from NAME[ADDR]` and the session ends.
pub fn after_new_tls(limits: &Limits, name: &str, addr: IpAddr) -> Option<Refusal> {
    let mut refused = on_event(&global(), limits, name, addr, Event::NewTls)?;
    let text = tern_rewrite::matchlist::addr_text(addr);
    refused.reply = format!(
        "421 4.7.0 {} Error: too many new TLS sessions from {name}[{text}]",
        limits.myhostname
    );
    Some(refused)
}

/// The check at AUTH: smtpd_client_auth_rate_limit (smtpd_sasl_proto.c).
pub fn on_auth(limits: &Limits, name: &str, addr: IpAddr) -> Option<Refusal> {
    on_event(&global(), limits, name, addr, Event::Auth)
}

/// The check at RCPT TO: smtpd_client_recipient_rate_limit.
pub fn on_rcpt(limits: &Limits, name: &str, addr: IpAddr) -> Option<Refusal> {
    on_event(&global(), limits, name, addr, Event::Rcpt)
}

fn on_event(
    anvil: &Anvil,
    limits: &Limits,
    name: &str,
    addr: IpAddr,
    event: Event,
) -> Option<Refusal> {
    let limit = match event {
        Event::Mail => limits.message_rate,
        Event::Rcpt => limits.recipient_rate,
        Event::NewTls => limits.new_tls_rate,
        Event::Auth => limits.auth_rate,
    };
    // smtpd.c asks anvil only when the limit is on and the client is not excepted.
    if limit == 0 || limits.excepted(name, addr) {
        return None;
    }
    let rate = anvil.event(&limits.key(addr), limits.time_unit, event);
    if rate <= limit {
        return None;
    }
    let text = tern_rewrite::matchlist::addr_text(addr);
    let service = &limits.service;
    Some(match event {
        Event::Mail => Refusal {
            reply: format!("450 4.7.1 Error: too much mail from {text}"),
            warning: format!(
                "Message delivery request rate limit exceeded: {rate} from {name}[{text}] for service {service}"
            ),
        },
        Event::Rcpt => Refusal {
            reply: format!("450 4.7.1 Error: too many recipients from {text}"),
            warning: format!(
                "Recipient address rate limit exceeded: {rate} from {name}[{text}] for service {service}"
            ),
        },
        Event::NewTls => Refusal {
            reply: String::new(),
            warning: format!(
                "New TLS session rate limit exceeded: {rate} from {name}[{text}] for service {service}"
            ),
        },
        Event::Auth => Refusal {
            reply: format!("450 4.7.1 Error: too many AUTH commands from {text}"),
            warning: format!(
                "AUTH command rate limit exceeded: {rate} from {name}[{text}] for service {service}"
            ),
        },
    })
}

/// Starts the statistics report (once per process): every anvil_status_update_time,
/// anvil's `statistics:` lines under `SYSLOG_NAME/anvil`. Needs a tokio runtime.
pub fn start_statistics(logger: &Arc<Logger>, syslog_name: &str, every: Duration) {
    let anvil = global();
    if anvil.reporting.set(()).is_err() {
        return;
    }
    let logger = Arc::clone(logger);
    let ident = Ident::new(syslog_name, "anvil");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        // The first tick is immediate; there is nothing to report yet.
        tick.tick().await;
        loop {
            tick.tick().await;
            anvil.report(&logger, &ident);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(main: &str) -> Limits {
        use tern_config::host::HostInfo;
        use tern_config::maincf::MainCf;
        use tern_config::mastercf::MasterCf;
        let main = MainCf::parse(main.as_bytes(), "main.cf").expect("main.cf");
        let master = MasterCf::parse(b"", "master.cf").expect("master.cf");
        let config = Config::new(
            std::path::Path::new("/etc/postfix"),
            main,
            master,
            HostInfo::from_hostname("mx.example.com"),
        );
        Limits::from_config(&config, None, "smtp").expect("limits")
    }

    const CLIENT: &str = "192.0.2.7";

    #[test]
    fn defaults() {
        let l = limits("mynetworks = 127.0.0.0/8\n");
        assert_eq!(l.connection_count, 50);
        assert_eq!(
            (l.connection_rate, l.message_rate, l.recipient_rate),
            (0, 0, 0)
        );
        assert_eq!(l.time_unit, Duration::from_mins(1));
        assert_eq!(l.status_update, Duration::from_mins(10));
        let local: IpAddr = "127.0.0.5".parse().expect("addr");
        let remote: IpAddr = CLIENT.parse().expect("addr");
        assert!(l.excepted("localhost", local));
        assert!(!l.excepted("unknown", remote));
    }

    #[test]
    fn connection_limits() {
        let anvil = Arc::new(Anvil::new());
        let ip: IpAddr = CLIENT.parse().expect("addr");
        let l = limits(
            "mynetworks = 127.0.0.0/8\nsmtpd_client_connection_count_limit = 2\n\
             smtpd_client_connection_rate_limit = 4\n",
        );
        let (g1, r1) = on_connect_with(&anvil, &l, "unknown", ip);
        let (g2, r2) = on_connect_with(&anvil, &l, "unknown", ip);
        assert_eq!((r1, r2), (None, None));
        let (g3, r3) = on_connect_with(&anvil, &l, "unknown", ip);
        assert_eq!(
            r3,
            Some(Refusal {
                reply: "421 4.7.0 mx.example.com Error: too many connections from 192.0.2.7"
                    .to_owned(),
                warning: "Connection concurrency limit exceeded: 3 from unknown[192.0.2.7] \
                          for service smtp"
                    .to_owned(),
            })
        );
        drop((g1, g3));
        // Two closed: the fourth is under the count limit, at the rate limit.
        let (_g4, r4) = on_connect_with(&anvil, &l, "unknown", ip);
        assert_eq!(r4, None);
        drop(g2);
        let (_g5, r5) = on_connect_with(&anvil, &l, "unknown", ip);
        assert_eq!(
            r5.map(|r| r.warning),
            Some(
                "Connection rate limit exceeded: 5 from unknown[192.0.2.7] for service smtp"
                    .to_owned()
            )
        );
    }

    #[test]
    fn event_rates_and_exceptions() {
        let anvil = Arc::new(Anvil::new());
        let l = limits(
            "mynetworks = 127.0.0.0/8\nsmtpd_client_message_rate_limit = 1\n\
             smtpd_client_recipient_rate_limit = 2\n",
        );
        let ip: IpAddr = CLIENT.parse().expect("addr");
        let _g = on_connect_with(&anvil, &l, "unknown", ip);
        let mail = |a: &Anvil| on_event(a, &l, "unknown", ip, Event::Mail);
        let rcpt = |a: &Anvil| on_event(a, &l, "unknown", ip, Event::Rcpt);
        assert_eq!(mail(&anvil), None);
        let r = mail(&anvil).expect("over");
        assert_eq!(r.reply, "450 4.7.1 Error: too much mail from 192.0.2.7");
        assert_eq!(
            r.warning,
            "Message delivery request rate limit exceeded: 2 from unknown[192.0.2.7] for service smtp"
        );
        assert_eq!((rcpt(&anvil), rcpt(&anvil)), (None, None));
        let r = rcpt(&anvil).expect("over");
        assert_eq!(
            r.reply,
            "450 4.7.1 Error: too many recipients from 192.0.2.7"
        );
        assert_eq!(
            r.warning,
            "Recipient address rate limit exceeded: 3 from unknown[192.0.2.7] for service smtp"
        );
        // mynetworks is the default exception list.
        let local: IpAddr = "127.0.0.9".parse().expect("addr");
        for _ in 0..5 {
            assert_eq!(on_event(&anvil, &l, "localhost", local, Event::Mail), None);
        }
    }

    #[test]
    fn statistics() {
        let anvil = Arc::new(Anvil::new());
        let l = limits("mynetworks = 127.0.0.0/8\nsmtpd_client_message_rate_limit = 5\n");
        let ip: IpAddr = CLIENT.parse().expect("addr");
        let _g1 = on_connect_with(&anvil, &l, "unknown", ip);
        let _g2 = on_connect_with(&anvil, &l, "unknown", ip);
        assert_eq!(on_event(&anvil, &l, "unknown", ip, Event::Mail), None);
        let logger = Logger::memory("mx.example.com");
        anvil.report(&logger, &Ident::new("postfix", "anvil"));
        let lines = logger.captured();
        let texts: Vec<&str> = lines
            .iter()
            .map(|l| l.split_once("]: ").map_or("", |(_, t)| t))
            .map(|t| t.rsplit_once(" at ").map_or(t, |(head, _)| head))
            .collect();
        assert_eq!(
            texts,
            [
                "statistics: max connection rate 2/60s for (smtp:192.0.2.7)",
                "statistics: max connection count 2 for (smtp:192.0.2.7)",
                "statistics: max message rate 1/60s for (smtp:192.0.2.7)",
                "statistics: max cache size 1",
            ]
        );
        assert!(lines[0].contains(" postfix/anvil["), "{lines:?}");
        // Reset after each report.
        let logger = Logger::memory("mx.example.com");
        anvil.report(&logger, &Ident::new("postfix", "anvil"));
        assert!(logger.captured().is_empty());
    }

    #[test]
    fn window_expires() {
        let anvil = Anvil::new();
        let mut st = anvil.lock();
        st.remotes.insert(
            "smtp:192.0.2.1".to_owned(),
            Remote {
                count: 0,
                rate: 9,
                mail: 9,
                rcpt: 9,
                newtls: 0,
                auth: 0,
                start: 0,
                idle_since: Some(0),
            },
        );
        assert!(Anvil::entry(&mut st, "smtp:192.0.2.1", 60, 60).is_some());
        assert!(Anvil::entry(&mut st, "smtp:192.0.2.1", 61, 60).is_none());
        let mut r = Remote {
            count: 1,
            rate: 3,
            mail: 2,
            rcpt: 1,
            newtls: 1,
            auth: 1,
            start: 10,
            idle_since: None,
        };
        Anvil::roll(&mut r, 70, 60);
        assert_eq!(r.rate, 3);
        Anvil::roll(&mut r, 71, 60);
        assert_eq!((r.rate, r.mail, r.rcpt, r.start), (0, 0, 0, 71));
    }
}
