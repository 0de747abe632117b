//! access(5) tables in the restrictions (smtpd_check.c): the lookup orders of
//! check_access(), check_domain_access(), check_addr_access(), check_namadr_access(),
//! check_mail_access() and check_server_access(), the policy service query, and
//! check_table_result(), which turns a table's answer into a decision:
//!
//! OK / RELAY / all-numeric: permit; REJECT and DEFER [text] (access_map_reject_code,
//! access_map_defer_code); `4NN`/`5NN text`; DUNNO; DEFER_IF_REJECT / DEFER_IF_PERMIT;
//! WARN and INFO (logged); HOLD, DISCARD, FILTER, REDIRECT, BCC and PREPEND (remembered for
//! cleanup, and logged); anything else is a restriction list (a class name, or verbs),
//! evaluated recursively; a `type:name` in a result is refused as Postfix refuses it.
//!
//! # Security
//! Keys come from the network; table values are the administrator's. A lookup error is
//! never a match and never a miss: it is `451 4.3.5`, as Postfix answers.

use tern_maps::Map;
use tern_maps::query::access::{address_probes, domain_probes, ip_probes};
use tern_maps::query::{KeyKind, Probe, first_hit};

use super::dns::{ServerKind, ServerLookup};
use super::policy::PolicyRequest;
use super::{Checker, ErrorClass, RECIPIENT, Result, Status};

/// What a failing table lookup is answered with (check_access()).
const TABLE_ERROR: &str = "451 4.3.5 Server configuration error";

/// A lookup: the answer (or a lookup error) and whether anything was found.
enum Lookup {
    Found(String),
    Missed,
    Error,
}

impl Checker<'_> {
    fn table(&self, spec: &str) -> Option<&dyn Map> {
        self.r.setup().tables.get(spec).map(AsRef::as_ref)
    }

    fn probe(&mut self, spec: &str, probes: &[Probe]) -> Lookup {
        let Some(table) = self.table(spec) else {
            self.warn(&format!("check_access: unexpected dictionary: {spec}"));
            return Lookup::Error;
        };
        match first_hit(table, probes) {
            Ok(Some((_, value))) => Lookup::Found(value),
            Ok(None) => Lookup::Missed,
            Err(e) => {
                self.warn(&e.to_string());
                Lookup::Error
            }
        }
    }

    async fn answer(
        &mut self,
        spec: &str,
        found: Lookup,
        datum: &str,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<(Status, bool)> {
        match found {
            Lookup::Found(value) => Ok((
                self.table_result(spec, &value, datum, name, class, def)
                    .await?,
                true,
            )),
            Lookup::Error => Ok((
                self.table_result(spec, TABLE_ERROR, datum, name, class, def)
                    .await?,
                true,
            )),
            Lookup::Missed => Ok((Status::Dunno, false)),
        }
    }

    /// check_access(): one key, as given.
    pub async fn check_access(
        &mut self,
        spec: &str,
        key: &str,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<(Status, bool)> {
        let probes = [Probe {
            key: key.to_owned(),
            kind: KeyKind::Full,
        }];
        let found = self.probe(spec, &probes);
        self.answer(spec, found, key, name, class, def).await
    }

    /// check_domain_access(): the name, then its parent domains (no parents for a
    /// numeric name). `full` is whether the name itself is a full key.
    pub async fn check_domain_access(
        &mut self,
        spec: &str,
        domain: &str,
        full: bool,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<(Status, bool)> {
        let kind = if full {
            KeyKind::Full
        } else {
            KeyKind::Partial
        };
        let probes = domain_probes(domain, kind, self.r.setup().parent_style);
        let found = self.probe(spec, &probes);
        self.answer(spec, found, domain, name, class, def).await
    }

    /// check_addr_access(): the address, then its shorter prefixes.
    pub async fn check_addr_access(
        &mut self,
        spec: &str,
        addr: &str,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<(Status, bool)> {
        let found = self.probe(spec, &ip_probes(addr));
        self.answer(spec, found, addr, name, class, def).await
    }

    /// check_namadr_access(): the host name and its parents, then the address.
    pub async fn check_namadr_access(
        &mut self,
        spec: &str,
        host: &str,
        addr: &str,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<(Status, bool)> {
        let (status, found) = self
            .check_domain_access(spec, host, true, name, class, def)
            .await?;
        if status != Status::Dunno || found {
            return Ok((status, found));
        }
        self.check_addr_access(spec, addr, name, class, def).await
    }

    /// check_mail_access(): the address as resolved, in access(5)'s order. An OK for a
    /// routed recipient is not trusted (allow_untrusted_routing).
    pub async fn check_mail_access(
        &mut self,
        spec: &str,
        address: &str,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<Status> {
        let resolver = self.r.resolver();
        let rewritten = resolver.rewrite(tern_rewrite::Context::Local, address);
        let Ok(resolved) = resolver.resolve(&rewritten) else {
            return Err(self.dict_retry(address));
        };
        let full = resolved.recipient.clone();
        if !full.contains('@') {
            self.warn(&format!("check_mail_access: no @domain in address: {full}"));
            return Ok(Status::Dunno);
        }
        let s = &resolver.settings;
        let ext = crate::recipients::extension(resolver);
        let suspicious = !s.allow_untrusted_routing && resolved.flags.routed && class == RECIPIENT;
        let probes = address_probes(&full, &ext, self.r.setup().parent_style);
        let found = self.probe(spec, &probes);
        let (status, _) = self.answer(spec, found, &full, name, class, def).await?;
        Ok(if status == Status::Ok && suspicious {
            Status::Dunno
        } else {
            status
        })
    }

    /// check_server_access(): the MX, NS or A hosts of a name (or a literal), by name
    /// and by address. The DNS side is [`super::dns::DnsChecks::servers`].
    pub async fn check_server_access(
        &mut self,
        spec: &str,
        target: &str,
        kind: ServerKind,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<Status> {
        let domain = target.rsplit_once('@').map_or(target, |(_, d)| d);
        if domain.starts_with('[') {
            if kind == ServerKind::Ns || !domain.ends_with(']') {
                return Ok(Status::Dunno);
            }
            let inner = &domain[1..domain.len() - 1];
            let bare = match inner.get(..5) {
                Some(p) if p.eq_ignore_ascii_case("ipv6:") => &inner[5..],
                _ => inner,
            };
            let bare = bare.to_owned();
            return Ok(self
                .check_addr_access(spec, &bare, name, class, def)
                .await?
                .0);
        }
        let domain = domain.to_owned();
        let servers = match self.r.setup().dns.server_lookup(&domain, kind).await {
            ServerLookup::Servers(s) => s,
            ServerLookup::Literal(addr) => {
                let addr = addr.to_string();
                return Ok(self
                    .check_addr_access(spec, &addr, name, class, def)
                    .await?
                    .0);
            }
            ServerLookup::Dunno(warning) => {
                if let Some(w) = warning {
                    self.warn(&w);
                }
                return Ok(Status::Dunno);
            }
        };
        for server in servers {
            if server.numeric {
                let (s, found) = self
                    .check_addr_access(spec, &server.host, name, class, def)
                    .await?;
                if s != Status::Dunno || found {
                    return Ok(s);
                }
                continue;
            }
            if kind != ServerKind::A {
                let (s, found) = self
                    .check_domain_access(spec, &server.host, true, name, class, def)
                    .await?;
                if s != Status::Dunno || found {
                    return Ok(s);
                }
            }
            if let Some(w) = server.lookup_warning(kind, class, name) {
                self.warn(&w);
            }
            for addr in server.addrs.iter().flatten() {
                let (s, found) = self
                    .check_addr_access(spec, &addr.to_string(), name, class, def)
                    .await?;
                if s != Status::Dunno || found {
                    return Ok(s);
                }
            }
        }
        Ok(Status::Dunno)
    }

    /// check_policy_service(): the server's action, as a table result.
    pub async fn policy(
        &mut self,
        server: &str,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<Status> {
        let st = &*self.st;
        let stage = st.stage.to_string();
        let request = PolicyRequest {
            protocol_state: stage,
            protocol_name: st.protocol.clone(),
            helo_name: st.helo.clone().unwrap_or_default(),
            queue_id: st.queue_id.clone().unwrap_or_default(),
            sender: st.sender.clone().unwrap_or_default(),
            recipient: st.recipient.clone().unwrap_or_default(),
            recipient_count: u32::try_from(st.rcpt_count).unwrap_or(u32::MAX),
            client_address: st.addr.clone(),
            client_name: st.name.clone(),
            reverse_client_name: st.reverse_name.clone(),
            instance: format!("{:x}.{:x}", std::process::id(), st.instance),
            sasl_method: st.sasl_method.clone().unwrap_or_default(),
            sasl_username: st.sasl_username.clone().unwrap_or_default(),
            sasl_sender: st.sasl_sender.clone().unwrap_or_default(),
            size: st.message_size,
            client_port: st.port,
            server_address: st.server_addr.clone(),
            server_port: st.server_port,
            ..PolicyRequest::default()
        };
        let action = self.r.setup().policy.query(server, &request).await;
        self.table_result(server, &action, "policy query", name, class, def)
            .await
    }

    /// check_table_result().
    pub async fn table_result(
        &mut self,
        table: &str,
        value: &str,
        datum: &str,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<Status> {
        let (cmd, text) = match value.find([' ', '\t']) {
            Some(at) => (&value[..at], value[at..].trim_start()),
            None => (value, ""),
        };
        let is = |w: &str| cmd.eq_ignore_ascii_case(w);
        let codes = self.r.setup().codes.clone();
        if is("DUNNO") {
            return Ok(Status::Dunno);
        }
        if is("REJECT") || is("DEFER") {
            let (default_dsn, code) = if is("REJECT") {
                ("5.7.1", codes.access_map_reject)
            } else {
                ("4.7.1", codes.access_map_defer)
            };
            return Ok(self.table_reject(code, default_dsn, text, name, class));
        }
        if is("HANGUP") {
            // An unsupported test feature of Postfix: treated as a configuration error.
            self.warn(&format!(
                "access table {table}: action HANGUP is not supported"
            ));
            return Err(self.server_error());
        }
        if is("INFO") || is("WARN") {
            self.log_whatsup(&cmd.to_ascii_lowercase(), text);
            return Ok(Status::Dunno);
        }
        let delegated = ["FILTER", "HOLD", "DISCARD", "REDIRECT", "BCC"];
        if let Some(action) = delegated.iter().find(|a| is(a)) {
            if !self.can_delegate(table, action) {
                return Ok(Status::Dunno);
            }
            return Ok(self.delegated(action, table, text, datum, name, class));
        }
        if is("DEFER_IF_PERMIT") || is("DEFER_IF_REJECT") {
            let (dsn, text) = dsn_split("4.7.1", text);
            let dsn = super::dsn_fix(&dsn, class);
            let text = if text.is_empty() {
                "Service unavailable"
            } else {
                text
            };
            let reason = format!("<{name}>: {class} rejected: {text}");
            if is("DEFER_IF_PERMIT") {
                return Ok(self.defer_if_permit(
                    true,
                    ErrorClass::Policy,
                    codes.access_map_defer,
                    &dsn,
                    reason,
                ));
            }
            self.defer_if_reject(ErrorClass::Policy, codes.access_map_defer, &dsn, reason);
            return Ok(Status::Dunno);
        }
        if is("PREPEND") {
            if !self.not_in_client_helo(table, "PREPEND") {
                return Ok(Status::Dunno);
            }
            if self.st.stage == tern_maillog::smtpd::Stage::EndOfMessage {
                self.warn(&format!(
                    "access table {table}: action PREPEND must be used before \
                     smtpd_end_of_data_restrictions"
                ));
                return Ok(Status::Dunno);
            }
            if text.is_empty() || !is_header(text) {
                self.warn(&format!(
                    "access table {table} entry \"{datum}\" requires header: text"
                ));
                return Ok(Status::Dunno);
            }
            self.st.saved.prepend.push(text.to_owned());
            return Ok(Status::Dunno);
        }
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(self.acl_permit(cmd, class, name, Some(table)));
        }
        let b = value.as_bytes();
        if cmd.len() == 3
            && !text.is_empty()
            && (b[0] == b'4' || b[0] == b'5')
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit()
        {
            let code: u16 = cmd.parse().unwrap_or(451);
            let default_dsn = if b[0] == b'4' { "4.7.1" } else { "5.7.1" };
            return Ok(self.table_reject(code, default_dsn, text, name, class));
        }
        if is("OK") || is("RELAY") {
            return Ok(self.acl_permit(cmd, class, name, Some(table)));
        }
        if value.contains(':') {
            self.warn(&format!(
                "access table {table} has entry with lookup table: {value}"
            ));
            self.warn("do not specify lookup tables inside SMTPD access maps");
            self.warn("define a restriction class and specify its name instead.");
            return Err(self.server_error());
        }
        if self.st.recursion > 100 {
            self.warn(&format!(
                "access table {table} entry {value} causes unreasonable recursion"
            ));
            return Err(self.server_error());
        }
        let list = tern_config::list::split_keep_braces(value);
        if list.is_empty() {
            self.warn(&format!(
                "access table {table} entry {value} has empty value"
            ));
            return Ok(Status::Ok);
        }
        self.generic(&list, name, class, def).await
    }

    /// REJECT, DEFER and `4NN`/`5NN` results: `<NAME>: CLASS rejected: TEXT` (default
    /// `Access denied`), an enhanced code at the start of TEXT taken and fixed for the class.
    fn table_reject(
        &mut self,
        code: u16,
        default_dsn: &str,
        text: &str,
        name: &str,
        class: &str,
    ) -> Status {
        let (dsn, text) = dsn_split(default_dsn, text);
        let dsn = super::dsn_fix(&dsn, class);
        let text = if text.is_empty() {
            "Access denied"
        } else {
            text
        };
        self.reject(
            ErrorClass::Policy,
            code,
            &dsn,
            &format!("<{name}>: {class} rejected: {text}"),
        )
    }

    /// can_delegate_action(): no queue actions in ETRN, nor before MAIL FROM.
    fn can_delegate(&mut self, table: &str, action: &str) -> bool {
        // `state->where` is ETRN (smtpd_check.c).
        if self.st.stage == tern_maillog::smtpd::Stage::Command(tern_smtp::command::Verb::Etrn) {
            self.warn(&format!(
                "access table {table}: action {action} is unavailable in smtpd_etrn_restrictions"
            ));
            return false;
        }
        self.not_in_client_helo(table, action)
    }

    /// not_in_client_helo(): with smtpd_delay_reject = no, client and HELO results do
    /// not act on mail.
    fn not_in_client_helo(&mut self, table: &str, action: &str) -> bool {
        if self.st.sender.is_none() {
            self.warn(&format!(
                "access table {table}: with smtpd_delay_reject=no, action {action} is always \
                 skipped in Client host or Helo command restrictions"
            ));
            return false;
        }
        true
    }

    /// HOLD, DISCARD, FILTER, REDIRECT and BCC: remembered for cleanup, logged.
    fn delegated(
        &mut self,
        action: &str,
        table: &str,
        text: &str,
        datum: &str,
        name: &str,
        class: &str,
    ) -> Status {
        match action {
            "FILTER" => {
                if text.is_empty() {
                    self.warn(&format!(
                        "access table {table} entry \"{datum}\" has FILTER entry without value"
                    ));
                } else if !text.contains(':') {
                    self.warn(&format!(
                        "access table {table} entry \"{datum}\" requires transport:destination"
                    ));
                } else {
                    self.log_whatsup(
                        "filter",
                        &format!("<{name}>: {class} triggers FILTER {text}"),
                    );
                    self.st.saved.filter = Some(text.to_owned());
                }
                Status::Dunno
            }
            "HOLD" => {
                if !self.st.saved.hold {
                    let why = if text.is_empty() {
                        "triggers HOLD action"
                    } else {
                        text
                    };
                    self.log_whatsup("hold", &format!("<{name}>: {class} {why}"));
                    self.st.saved.hold = true;
                }
                Status::Dunno
            }
            "DISCARD" => {
                let why = if text.is_empty() {
                    "triggers DISCARD action"
                } else {
                    text
                };
                self.log_whatsup("discard", &format!("<{name}>: {class} {why}"));
                self.st.saved.discard = true;
                self.acl_permit("DISCARD", class, name, Some(table))
            }
            _ => {
                // REDIRECT and BCC need user@domain.
                if !text.contains('@') {
                    self.warn(&format!(
                        "access table {table} entry \"{datum}\" requires user@domain target"
                    ));
                    return Status::Dunno;
                }
                let what = action.to_ascii_lowercase();
                self.log_whatsup(
                    &what,
                    &format!("<{name}>: {class} triggers {action} {text}"),
                );
                if action == "REDIRECT" {
                    self.st.saved.redirect = Some(text.to_owned());
                } else {
                    self.st.saved.bcc.push(text.to_owned());
                }
                Status::Dunno
            }
        }
    }
}

/// dsn_split(): an optional enhanced status code at the start of a text.
fn dsn_split<'t>(default: &str, text: &'t str) -> (String, &'t str) {
    let word = text.split([' ', '\t']).next().unwrap_or("");
    if !word.is_empty() && super::dsn_valid(word) {
        let rest = text[word.len()..].trim_start();
        // The class digit of the reply code wins later (smtpd_check_reject()).
        return (word.to_owned(), rest);
    }
    (default.to_owned(), text)
}

/// is_header(): a name of printable characters other than `:` and space, then `:`.
fn is_header(text: &str) -> bool {
    let Some(colon) = text.find(':') else {
        return false;
    };
    colon > 0
        && text[..colon]
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':')
}
