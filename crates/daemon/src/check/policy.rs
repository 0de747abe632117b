//! The policy delegation client behind `check_policy_service` (Postfix's
//! SMTPD_POLICY_README; smtpd_check.c check_policy_service(), attr_clnt.c, auto_clnt.c,
//! attr_print_plain.c, attr_scan_plain.c), so that postgrey, cbpolicyd and policyd-spf work
//! unchanged.
//!
//! One [`PolicyClients`] per settings load is shared by every session; it keeps one
//! [`Endpoint`] per server text (`inet:host:port`, `unix:/path`, or the Postfix 3.0
//! `{ inet:host:port, timeout=10s, ... }` form) and, for each, a pool of open connections:
//! a connection is reused between requests and between sessions (Postfix's smtpd keeps one
//! per process), closed after `max_idle` without use and `max_ttl` after connect, and after
//! `request_limit` requests. Several sessions may query one server at once: each in-flight
//! request holds its own connection, so requests on one connection never interleave.
//!
//! A request is `name=value` lines ended by an empty line, in the order Postfix 3.7 sends
//! them; the reply is read as attr_scan_plain reads it: attributes up to an empty line,
//! `action=` taken, every other attribute skipped. A failed attempt (connect error,
//! timeout, end-of-input, a reply without `action`) is retried `try_limit` times with
//! `retry_delay` between, with attr_clnt's warnings; after the last the default action is
//! the answer.
//!
//! Deliberate difference: Postfix notices a pooled connection that the server closed only
//! when a request finds it readable, and then spends one try and one `retry_delay` on it
//! (attr_clnt_request()'s readable() check). Tern drops such a connection when it takes it
//! from the pool, as Postfix's event loop does between sessions, and connects anew at once.
//!
//! # Security
//! The policy server's reply is untrusted input: every line is bounded
//! ([`LINE_LIMIT`], Postfix's own disabled limit of 4 x line_length_limit), a reply is
//! bounded in attribute count and in time (the service timeout), and nothing in it but the
//! `action` value is kept. Request values come from the SMTP session; a newline, which
//! would end the request early, is dropped from them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tern_config::config::Config;
use tern_config::mastercf::Service;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::relay::{PolicyError, warn};

mod spec;

pub use spec::ServiceError;
use spec::{ServiceSpec, Target, parse_service};

/// The longest reply line accepted: attr_scan_plain.c's (disabled) limit of
/// 4 x line_length_limit (2048).
pub const LINE_LIMIT: usize = 4 * 2048;
/// The most attributes accepted in one reply (attr_scan_plain.c's ATTR_HASH_LIMIT).
const ATTR_LIMIT: usize = 1024;
/// The most idle connections kept for one server; more are closed when their request ends
/// (Postfix has one per smtpd process, at most default_process_limit = 100).
const IDLE_LIMIT: usize = 100;

/// The policy request attributes, as smtpd fills them (SMTPD_POLICY_README "Protocol
/// description"). The client sends `recipient_count` only in the DATA and END-OF-MESSAGE
/// states (0 elsewhere) and sends `BDAT` as `DATA`, as smtpd_check.c does; `size` is what
/// smtpd knows (the actual size at END-OF-MESSAGE, else the MAIL FROM SIZE).
#[derive(Debug, Clone, Default)]
pub struct PolicyRequest {
    /// CONNECT EHLO HELO MAIL RCPT DATA END-OF-MESSAGE VRFY ETRN (or BDAT).
    pub protocol_state: String,
    pub protocol_name: String,
    pub helo_name: String,
    pub queue_id: String,
    pub sender: String,
    pub recipient: String,
    pub recipient_count: u32,
    pub client_address: String,
    pub client_name: String,
    pub reverse_client_name: String,
    pub instance: String,
    pub sasl_method: String,
    pub sasl_username: String,
    pub sasl_sender: String,
    pub size: u64,
    pub ccert_subject: String,
    pub ccert_issuer: String,
    pub ccert_fingerprint: String,
    pub ccert_pubkey_fingerprint: String,
    pub encryption_protocol: String,
    pub encryption_cipher: String,
    pub encryption_keysize: u32,
    pub etrn_domain: String,
    pub stress: String,
    pub client_port: u16,
    pub server_address: String,
    pub server_port: u16,
}

impl PolicyRequest {
    /// The request as Postfix 3.7 writes it (smtpd_check.c's attr_clnt_request() call;
    /// attr_print_plain: `name=value\n`, numbers in decimal, an empty line at the end).
    /// Postfix 3.7 sends no `compatibility_level`/`mail_version` (3.8 added them).
    pub fn encode(&self, policy_context: &str) -> String {
        let state = if self.protocol_state.eq_ignore_ascii_case("BDAT") {
            "DATA"
        } else {
            self.protocol_state.as_str()
        };
        let count = if ["DATA", "BDAT", "END-OF-MESSAGE"]
            .iter()
            .any(|s| self.protocol_state.eq_ignore_ascii_case(s))
        {
            self.recipient_count
        } else {
            0
        };
        let attrs: [(&str, &str); 29] = [
            ("request", "smtpd_access_policy"),
            ("protocol_state", state),
            ("protocol_name", &self.protocol_name),
            ("client_address", &self.client_address),
            ("client_name", &self.client_name),
            ("client_port", &self.client_port.to_string()),
            ("reverse_client_name", &self.reverse_client_name),
            ("server_address", &self.server_address),
            ("server_port", &self.server_port.to_string()),
            ("helo_name", &self.helo_name),
            ("sender", &self.sender),
            ("recipient", &self.recipient),
            ("recipient_count", &count.to_string()),
            ("queue_id", &self.queue_id),
            ("instance", &self.instance),
            ("size", &self.size.to_string()),
            ("etrn_domain", &self.etrn_domain),
            ("stress", &self.stress),
            ("sasl_method", &self.sasl_method),
            ("sasl_username", &self.sasl_username),
            ("sasl_sender", &self.sasl_sender),
            ("ccert_subject", &self.ccert_subject),
            ("ccert_issuer", &self.ccert_issuer),
            ("ccert_fingerprint", &self.ccert_fingerprint),
            ("ccert_pubkey_fingerprint", &self.ccert_pubkey_fingerprint),
            ("encryption_protocol", &self.encryption_protocol),
            ("encryption_cipher", &self.encryption_cipher),
            ("encryption_keysize", &self.encryption_keysize.to_string()),
            ("policy_context", policy_context),
        ];
        let mut out = String::with_capacity(1024);
        for (name, value) in attrs {
            out.push_str(name);
            out.push('=');
            out.push_str(&clean_value(value));
            out.push('\n');
        }
        out.push('\n');
        out
    }
}

/// A value as sent: newlines (which would end the request) and NULs dropped, at most
/// [`LINE_LIMIT`] bytes. SMTP command lines hold neither, so this changes nothing smtpd
/// can pass on; it keeps a bug elsewhere from injecting attributes.
fn clean_value(value: &str) -> String {
    let mut out: String = value.chars().filter(|&c| c != '\n' && c != '\0').collect();
    if out.len() > LINE_LIMIT {
        let mut end = LINE_LIMIT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// The settings of one smtpd service (main.cf with the service's `-o` overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    /// smtpd_policy_service_timeout: the limit on connecting, and on sending a request and
    /// reading its reply.
    pub timeout: Duration,
    /// smtpd_policy_service_max_idle.
    pub max_idle: Duration,
    /// smtpd_policy_service_max_ttl.
    pub max_ttl: Duration,
    /// smtpd_policy_service_try_limit (0: no limit, as attr_clnt.c treats it).
    pub try_limit: u32,
    /// smtpd_policy_service_retry_delay.
    pub retry_delay: Duration,
    /// smtpd_policy_service_request_limit (0: no limit).
    pub request_limit: u32,
    /// smtpd_policy_service_default_action.
    pub default_action: String,
    /// smtpd_policy_service_policy_context.
    pub policy_context: String,
    /// queue_directory: smtpd runs there, so `unix:private/policy` is relative to it.
    pub queue_directory: PathBuf,
    /// smtputf8_enable: a reply action that is not valid UTF-8 is then a failure.
    pub smtputf8: bool,
}

impl Default for PolicySettings {
    /// Postfix 3.7's defaults (mail_params.h).
    fn default() -> Self {
        PolicySettings {
            timeout: Duration::from_secs(100),
            max_idle: Duration::from_mins(5),
            max_ttl: Duration::from_secs(1000),
            try_limit: 2,
            retry_delay: Duration::from_secs(1),
            request_limit: 0,
            default_action: "451 4.3.5 Server configuration problem".to_owned(),
            policy_context: String::new(),
            queue_directory: PathBuf::from("/var/spool/postfix"),
            smtputf8: true,
        }
    }
}

impl PolicySettings {
    /// Reads the smtpd_policy_service_* parameters of one service (`None`: main.cf).
    pub fn from_config(config: &Config, service: Option<&Service>) -> Result<Self, PolicyError> {
        let get = |name: &str| -> Result<String, PolicyError> {
            let raw = config
                .lookup_value(name, service)
                .or_else(|| config.default_text(name))
                .unwrap_or_default();
            if config.is_raw(name) {
                return Ok(raw);
            }
            Ok(config.expand(&raw, service)?.text)
        };
        let bad = |name: &str, value: &str| PolicyError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        // Postfix's time parameters: a number with an optional unit, at least 1 (min 1 in
        // smtpd.c's time table).
        let time = |name: &str| -> Result<Duration, PolicyError> {
            let value = get(name)?;
            match tern_config::text::time_seconds(&value, 1) {
                Some(secs) if secs >= 1 => Ok(Duration::from_secs(secs)),
                _ => Err(bad(name, &value)),
            }
        };
        let int = |name: &str, min: u32| -> Result<u32, PolicyError> {
            let value = get(name)?;
            match value.trim().parse::<u32>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(bad(name, &value)),
            }
        };
        let utf8 = get("smtputf8_enable")?;
        Ok(PolicySettings {
            timeout: time("smtpd_policy_service_timeout")?,
            max_idle: time("smtpd_policy_service_max_idle")?,
            max_ttl: time("smtpd_policy_service_max_ttl")?,
            try_limit: int("smtpd_policy_service_try_limit", 1)?,
            retry_delay: time("smtpd_policy_service_retry_delay")?,
            request_limit: int("smtpd_policy_service_request_limit", 0)?,
            default_action: get("smtpd_policy_service_default_action")?,
            policy_context: get("smtpd_policy_service_policy_context")?,
            queue_directory: PathBuf::from(get("queue_directory")?),
            smtputf8: matches!(utf8.trim(), "yes" | "true"),
        })
    }
}

/// The clients of one settings load, shared (Arc) by every session: one connection pool
/// per server text.
#[derive(Debug)]
pub struct PolicyClients {
    settings: PolicySettings,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl PolicyClients {
    pub fn new(settings: PolicySettings) -> Self {
        PolicyClients {
            settings,
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    /// Parses and remembers a server text, as smtpd_check_parse() does when it reads the
    /// restriction lists (Postfix refuses to start on an error here). [`Self::query`]
    /// registers on first use too.
    pub fn register(&self, server: &str) -> Result<(), ServiceError> {
        self.endpoint(server).map(|_| ())
    }

    fn endpoint(&self, server: &str) -> Result<Arc<Endpoint>, ServiceError> {
        // Invariant: no code panics while holding this lock (map operations only).
        let mut map = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = map.get(server) {
            return Ok(found.clone());
        }
        let spec = parse_service(server, &self.settings)?;
        let endpoint = Arc::new(Endpoint {
            spec,
            idle: Mutex::new(Pool::default()),
        });
        map.insert(server.to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    /// Sends `request` to `server` (the text after check_policy_service) and returns the
    /// action to evaluate as an access(5) result. On failure after the tries, the
    /// warnings are logged and the default action is returned.
    pub async fn query(&self, server: &str, request: &PolicyRequest) -> String {
        match self.try_query(server, request).await {
            Ok(action) => action,
            Err(default_action) => default_action,
        }
    }

    /// [`Self::query`], telling a server's answer (`Ok`) from the default action (`Err`).
    pub async fn try_query(&self, server: &str, request: &PolicyRequest) -> Result<String, String> {
        let endpoint = match self.endpoint(server) {
            Ok(endpoint) => endpoint,
            Err(e) => {
                warn(&e.to_string());
                return Err(self.settings.default_action.clone());
            }
        };
        let settings = &endpoint.spec.settings;
        let Some(action) = endpoint.request(request).await else {
            return Err(settings.default_action.clone());
        };
        match String::from_utf8(action) {
            Ok(text) => Ok(text),
            Err(e) if settings.smtputf8 => {
                // smtpd_check.c valid_utf8_action().
                warn(&format!(
                    "malformed UTF-8 in policy server {server} response: \"{}\"",
                    tern_config::text::printable_utf8(e.as_bytes())
                ));
                Err(settings.default_action.clone())
            }
            Err(e) => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
}

/// One server and its idle connections.
#[derive(Debug)]
struct Endpoint {
    spec: ServiceSpec,
    idle: Mutex<Pool>,
}

/// The idle connections of one server.
#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Idle>,
    /// A reaper task runs (at most one per server, however many requests).
    reaper: bool,
}

/// A pooled connection and when it went idle.
#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// How one attempt failed: the errno that attr_clnt's `%m` prints (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure(i32);

impl Failure {
    fn text(self) -> String {
        // Postfix's `%m` with errno 0 (a protocol error, not a system call's) prints
        // "Application error" (seen in Debian's Postfix 3.7 log), not strerror(0).
        if self.0 == 0 {
            "Application error".to_owned()
        } else {
            Errno::from_raw(self.0).desc().to_owned()
        }
    }
}

fn io_failure(e: &std::io::Error) -> Failure {
    match e.raw_os_error() {
        Some(code) => Failure(code),
        None if e.kind() == std::io::ErrorKind::TimedOut => Failure(Errno::ETIMEDOUT as i32),
        None => Failure(0),
    }
}

impl Endpoint {
    /// attr_clnt_request(): up to try_limit attempts, retry_delay apart.
    async fn request(self: &Arc<Self>, request: &PolicyRequest) -> Option<Vec<u8>> {
        let settings = &self.spec.settings;
        let text = request.encode(&settings.policy_context);
        let mut count = 0u32;
        loop {
            let failure = match self.attempt(text.as_bytes()).await {
                Ok(action) => return Some(action),
                Err(f) => f,
            };
            count = count.saturating_add(1);
            let last = settings.try_limit > 0 && count >= settings.try_limit;
            // attr_clnt.c warns on the last try, and on any try whose error is not one of
            // a connection the server closed (EPIPE, ECONNRESET) or a missing socket.
            let quiet = [
                0,
                Errno::EPIPE as i32,
                Errno::ENOENT as i32,
                Errno::ECONNRESET as i32,
            ];
            if last || !quiet.contains(&failure.0) {
                warn(&format!(
                    "problem talking to server {}: {}",
                    self.spec.name,
                    failure.text()
                ));
            }
            if last {
                return None;
            }
            tokio::time::sleep(settings.retry_delay).await;
        }
    }

    /// One try: a pooled or new connection, the request, the reply.
    async fn attempt(self: &Arc<Self>, text: &[u8]) -> Result<Vec<u8>, Failure> {
        let settings = &self.spec.settings;
        let mut conn = match self.checkout() {
            Some(conn) => conn,
            None => match self.connect().await {
                Ok(conn) => conn,
                Err(f) => {
                    warn(&format!("connect to {}: {}", self.spec.name, f.text()));
                    return Err(f);
                }
            },
        };
        let deadline = tokio::time::Instant::now() + settings.timeout;
        let action = conn.exchange(text, &self.spec.name, deadline).await?;
        conn.requests = conn.requests.saturating_add(1);
        if settings.request_limit == 0 || conn.requests < settings.request_limit {
            self.checkin(conn);
        }
        Ok(action)
    }

    /// An idle connection that is still fresh: not idle for max_idle, not older than
    /// max_ttl, and with nothing to read (a server that closed, or sent stray bytes, makes
    /// it readable; attr_clnt.c's readable() check).
    fn checkout(&self) -> Option<Conn> {
        let settings = &self.spec.settings;
        let now = Instant::now();
        loop {
            let idle = {
                let mut pool = self
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                pool.idle.pop()?
            };
            let expired = now.duration_since(idle.since) >= settings.max_idle
                || now.duration_since(idle.conn.connected) >= settings.max_ttl;
            if !expired && idle.conn.quiet() {
                return Some(idle.conn);
            }
        }
    }

    /// Returns a connection to the pool; the endpoint's reaper closes it at max_idle or
    /// max_ttl (auto_clnt.c's timers), whichever comes first.
    fn checkin(self: &Arc<Self>, conn: Conn) {
        let settings = &self.spec.settings;
        let now = Instant::now();
        if now >= conn.connected + settings.max_ttl {
            return;
        }
        let start_reaper = {
            let mut pool = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pool.idle.len() >= IDLE_LIMIT {
                return;
            }
            pool.idle.push(Idle { conn, since: now });
            !std::mem::replace(&mut pool.reaper, true)
        };
        if start_reaper {
            let weak: Weak<Endpoint> = Arc::downgrade(self);
            tokio::spawn(reaper(weak));
        }
    }

    /// Closes the idle connections whose time is up; the next deadline, or `None` (and
    /// the reaper ends) when nothing is left idle.
    fn reap(&self) -> Option<Instant> {
        let settings = &self.spec.settings;
        let now = Instant::now();
        let mut pool = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let end = |idle: &Idle| {
            (idle.since + settings.max_idle).min(idle.conn.connected + settings.max_ttl)
        };
        pool.idle.retain(|idle| end(idle) > now);
        let next = pool.idle.iter().map(end).min();
        if next.is_none() {
            pool.reaper = false;
        }
        next
    }

    /// auto_clnt_open(): a new connection, within the timeout.
    async fn connect(&self) -> Result<Conn, Failure> {
        let timeout = self.spec.settings.timeout;
        let stream = match &self.spec.target {
            Target::Inet { host, port } => {
                let Ok(port) = port.parse::<u16>() else {
                    warn(&format!(
                        "host or service {} not found: Servname not supported for ai_socktype",
                        self.spec.name
                    ));
                    return Err(Failure(0));
                };
                let host = host.clone();
                match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await
                {
                    Ok(Ok(s)) => Stream::Tcp(s),
                    Ok(Err(e)) => return Err(io_failure(&e)),
                    Err(_) => return Err(Failure(Errno::ETIMEDOUT as i32)),
                }
            }
            Target::Unix(path) => {
                match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
                    Ok(Ok(s)) => Stream::Unix(s),
                    Ok(Err(e)) => return Err(io_failure(&e)),
                    Err(_) => return Err(Failure(Errno::ETIMEDOUT as i32)),
                }
            }
        };
        Ok(Conn {
            stream,
            buf: Vec::new(),
            connected: Instant::now(),
            requests: 0,
        })
    }
}

/// The task that closes an endpoint's idle connections on time; it ends when none is
/// left (or the endpoint is gone with its settings load). A connection returned while it
/// sleeps, whose max_ttl comes before the reaper wakes, closes at that wake-up; checkout
/// never hands out an expired one.
async fn reaper(endpoint: Weak<Endpoint>) {
    loop {
        let Some(next) = endpoint.upgrade().and_then(|e| e.reap()) else {
            return;
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

/// A TCP or UNIX-domain stream.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// One open connection with its read buffer.
#[derive(Debug)]
struct Conn {
    stream: Stream,
    /// Bytes read and not yet used (at most one line plus one read).
    buf: Vec<u8>,
    connected: Instant,
    requests: u32,
}

impl Conn {
    /// True when nothing is waiting to be read: no buffered bytes, no data or end-of-file
    /// on the socket (a peek that would block).
    fn quiet(&self) -> bool {
        use std::os::fd::AsRawFd;
        if !self.buf.is_empty() {
            return false;
        }
        let fd = match &self.stream {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        };
        let mut probe = [0u8; 1];
        let flags = nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT;
        matches!(
            nix::sys::socket::recv(fd, &mut probe, flags),
            Err(Errno::EAGAIN)
        )
    }

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(data).await,
            Stream::Unix(s) => s.write_all(data).await,
        }
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        // Read straight into the buffer (no large array in the future).
        let len = self.buf.len();
        self.buf.resize(len + 4096, 0);
        let read = match &mut self.stream {
            Stream::Tcp(s) => s.read(&mut self.buf[len..]).await,
            Stream::Unix(s) => s.read(&mut self.buf[len..]).await,
        };
        self.buf.truncate(len + *read.as_ref().unwrap_or(&0));
        read
    }

    /// Sends the request and reads the reply as attr_scan_plain() reads it with
    /// `action` wanted and ATTR_FLAG_MISSING: other attributes are skipped, an empty line
    /// ends the reply; the action value is returned.
    async fn exchange(
        &mut self,
        text: &[u8],
        name: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, Failure> {
        match tokio::time::timeout_at(deadline, self.write_all(text)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io_failure(&e)),
            Err(_) => return Err(Failure(Errno::ETIMEDOUT as i32)),
        }
        let mut action: Option<Vec<u8>> = None;
        for lines in 0.. {
            if lines > ATTR_LIMIT {
                warn(&format!(
                    "attribute count exceeds limit {ATTR_LIMIT} in input from {name}"
                ));
                return Err(Failure(0));
            }
            // End-of-input before the first byte: attr_scan_plain() returns 0 quietly.
            let Some(line) = self.read_line(name, lines == 0, deadline).await? else {
                return Err(Failure(0));
            };
            if line.is_empty() {
                if let Some(action) = action {
                    return Ok(action);
                }
                warn(&format!("missing attribute action in input from {name}"));
                return Err(Failure(0));
            }
            if action.is_some() {
                // After `action`, attr_scan_plain wants the list terminator and skips the
                // rest.
                continue;
            }
            match line.iter().position(|&b| b == b'=') {
                Some(eq) if &line[..eq] == b"action" => action = Some(line[eq + 1..].to_vec()),
                None if line == b"action" => {
                    warn(&format!(
                        "missing value for string attribute action from {name}"
                    ));
                    return Err(Failure(0));
                }
                _ => {}
            }
        }
        Err(Failure(0))
    }

    /// The next line without its `\n`. `None`: the server closed before sending anything
    /// (`first`). A line longer than [`LINE_LIMIT`], or one cut by end-of-input, is a
    /// failure with attr_scan_plain's warnings.
    async fn read_line(
        &mut self,
        name: &str,
        first: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let timed_out = Failure(Errno::ETIMEDOUT as i32);
        loop {
            let nl = self.buf.iter().position(|&b| b == b'\n');
            let context = if self.buf[..nl.unwrap_or(self.buf.len())].contains(&b'=') {
                "input attribute value"
            } else {
                "input attribute name"
            };
            if nl.unwrap_or(self.buf.len()) > LINE_LIMIT {
                warn(&format!(
                    "string length > {LINE_LIMIT} characters from {name} while reading {context}"
                ));
                return Err(Failure(0));
            }
            if let Some(nl) = nl {
                let line = self.buf[..nl].to_vec();
                self.buf.drain(..=nl);
                return Ok(Some(line));
            }
            // attr_scan_plain(): end-of-input (or a timeout) before the first byte ends
            // the scan quietly; later it is "premature end-of-input" (or "timeout").
            let silent = first && self.buf.is_empty();
            match tokio::time::timeout_at(deadline, self.read_more()).await {
                Ok(Ok(0)) if silent => return Ok(None),
                Err(_) if silent => return Err(timed_out),
                Ok(Ok(0)) => {
                    warn(&format!(
                        "premature end-of-input on {name} while reading {context}"
                    ));
                    return Err(Failure(0));
                }
                Err(_) => {
                    warn(&format!("timeout on {name} while reading {context}"));
                    return Err(timed_out);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(io_failure(&e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(main: &str, master: &str) -> Config {
        Config::from_texts(Path::new("/etc/postfix"), main, master, "mx.example.org")
            .expect("config")
    }

    #[test]
    fn settings_defaults_main_cf_and_service_overrides() {
        let c = config(
            "smtpd_policy_service_timeout = 5m\nsmtpd_policy_service_try_limit = 3\n\
             queue_directory = /q\ncompatibility_level = 3.6\n",
            "smtp inet n - n - - smtpd\n\
             submission inet n - n - - smtpd -o smtpd_policy_service_default_action=DUNNO \
             -o smtpd_policy_service_policy_context=submission\n",
        );
        let main = PolicySettings::from_config(&c, None).unwrap();
        let want = PolicySettings {
            timeout: Duration::from_mins(5),
            try_limit: 3,
            queue_directory: PathBuf::from("/q"),
            ..PolicySettings::default()
        };
        assert_eq!(main, want);
        let submission = &c.master.services[1];
        let sub = PolicySettings::from_config(&c, Some(submission)).unwrap();
        assert_eq!(
            sub,
            PolicySettings {
                default_action: "DUNNO".into(),
                policy_context: "submission".into(),
                ..want
            }
        );
    }

    #[test]
    fn smtputf8_follows_compatibility_level() {
        // smtputf8_enable's default is "no" below compatibility level 1.
        let c = config("", "");
        assert!(!PolicySettings::from_config(&c, None).unwrap().smtputf8);
    }

    #[test]
    fn bad_settings() {
        for (line, name) in [
            (
                "smtpd_policy_service_timeout = 0",
                "smtpd_policy_service_timeout",
            ),
            (
                "smtpd_policy_service_max_idle = 5x",
                "smtpd_policy_service_max_idle",
            ),
            (
                "smtpd_policy_service_try_limit = 0",
                "smtpd_policy_service_try_limit",
            ),
            (
                "smtpd_policy_service_request_limit = -1",
                "smtpd_policy_service_request_limit",
            ),
        ] {
            let c = config(&format!("{line}\n"), "");
            match PolicySettings::from_config(&c, None) {
                Err(PolicyError::BadValue { name: got, .. }) => assert_eq!(got, name, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
