//! smtpd(8)'s access control: the restriction lists of smtpd_check.c (client, HELO,
//! sender, relay, recipient, ETRN, DATA, end-of-data), access(5) table results, restriction
//! classes, DNS-based checks and the policy delegation service.
//!
//! - this module: the per-service [`Setup`] (lists, classes, tables, reply codes), the
//!   per-session [`State`], and the stage entry points ([`Checker::client`],
//!   [`Checker::helo`], [`Checker::mail`], [`Checker::rcpt`], [`Checker::etrn`],
//!   [`Checker::data`], [`Checker::eod`]) with Postfix's `smtpd_delay_reject` and
//!   `defer_if_permit` bookkeeping.
//! - [`generic`]: generic_checks(): one restriction list, verb by verb.
//! - [`access`]: access(5) lookups and check_table_result() (OK, REJECT, DEFER, 4NN/5NN,
//!   DUNNO, HOLD, DISCARD, FILTER, REDIRECT, BCC, PREPEND, WARN, INFO, DEFER_IF_*,
//!   restriction classes and nested lists).
//! - [`dns`]: the DNS lookups behind reject_unknown_*, reject_rbl_client, reject_rhsbl_*
//!   and check_*_{mx,ns,a}_access.
//! - [`policy`]: the SMTPD_POLICY_README client (check_policy_service).
//!
//! A stage entry point answers `None` (go on) or the reply text to send; every reject,
//! warning and access action is logged here in Postfix's `NOQUEUE: reject: RCPT from
//! NAME[ADDR]: ...; from=<...> to=<...> proto=ESMTP helo=<...>` shape, so the caller only
//! writes the reply.
//!
//! # Security
//! Names and addresses come from the network. No input makes a check panic; a table
//! lookup error is a 451 (reject_dict_retry), a configuration error a 451 4.3.5
//! (reject_server_error), never a permit; recursion through restriction classes and
//! table results is bounded (100 levels, as Postfix).

pub mod access;
pub mod dns;
pub mod generic;
mod mx_backup;
pub mod policy;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_maillog::smtpd::{Client, Stage, Transaction};
use tern_maillog::{Ident, Line, Logger};
use tern_maps::Map;

use crate::relay::{PolicyError, Restrictions};

/// smtpd_check.c's status of one restriction or list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// SMTPD_CHECK_DUNNO: no decision.
    Dunno,
    /// SMTPD_CHECK_OK: permit (ends this list).
    Ok,
    /// SMTPD_CHECK_REJECT: the reply is in [`State::error_text`].
    Reject,
}

/// The long jump of reject_dict_retry()/reject_server_error(): the reject is already
/// formatted and logged; the list ends with REJECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort;

type Result<T> = std::result::Result<T, Abort>;

/// MAIL_ERROR_* classes: software, resource and data errors are never turned into
/// warnings by warn_if_reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Policy,
    Protocol,
    Software,
    Resource,
    Data,
}

/// The reply classes (smtpd_dsn_fix.h).
pub const CLIENT: &str = "Client host";
pub const REV_CLIENT: &str = "Unverified Client host";
pub const HELO: &str = "Helo command";
pub const SENDER: &str = "Sender address";
pub const RECIPIENT: &str = "Recipient address";
pub const ETRN: &str = "Etrn command";
pub const DATA: &str = "Data command";
pub const EOD: &str = "End-of-data";
pub const SASL_USER: &str = "SASL login name";
pub const CCERT: &str = "Client certificate";

/// The restriction lists of one service, split.
#[derive(Debug, Default)]
pub struct Lists {
    pub client: Vec<String>,
    pub helo: Vec<String>,
    pub sender: Vec<String>,
    pub relay: Vec<String>,
    pub recipient: Vec<String>,
    pub etrn: Vec<String>,
    pub data: Vec<String>,
    pub eod: Vec<String>,
}

/// The reply codes and switches the restrictions read.
#[derive(Debug, Clone)]
pub struct Codes {
    pub access_map_reject: u16,
    pub access_map_defer: u16,
    pub reject: u16,
    pub defer: u16,
    pub relay: u16,
    pub unknown_client: u16,
    pub invalid_hostname: u16,
    pub non_fqdn: u16,
    pub unknown_hostname: u16,
    pub unknown_address: u16,
    pub multi_recipient_bounce: u16,
    pub plaintext: u16,
    /// unknown_helo_hostname_tempfail_action is defer_if_permit (else defer).
    pub helo_tempfail_if_permit: bool,
    /// unknown_address_tempfail_action is defer_if_permit (else defer).
    pub address_tempfail_if_permit: bool,
}

/// What smtpd_check_init() prepares for one service (main.cf with its `-o` overrides),
/// built at start and at each reload, never per session.
#[derive(Debug)]
pub struct Setup {
    pub lists: Lists,
    /// smtpd_restriction_classes: name (lower case) -> its list.
    pub classes: HashMap<String, Vec<String>>,
    /// Every table a list names, opened once (a table that cannot be opened is a
    /// surrogate whose lookups fail).
    pub tables: HashMap<String, Box<dyn Map>>,
    pub codes: Codes,
    pub delay_reject: bool,
    pub relay_before_recipient: bool,
    pub reject_unlisted_sender: bool,
    pub soft_bounce: bool,
    pub null_access_key: String,
    /// parent_domain_matches_subdomains names smtpd_access_maps.
    pub parent_style: bool,
    /// smtpd_log_access_permit_actions.
    pub permit_log: Vec<String>,
    pub policy: policy::PolicyClients,
    pub dns: dns::DnsChecks,
    /// smtpd_sasl_auth_enable: the SASL restrictions act only with it.
    pub sasl_enabled: bool,
    /// smtpd_sender_login_maps: sender address -> the SASL logins that own it.
    pub sender_login_maps: Vec<Box<dyn Map>>,
    /// permit_mx_backup_networks (a namadr list); `None` when empty.
    pub perm_mx_networks: Option<tern_rewrite::matchlist::MatchList>,
}

/// The client certificate's facts that the restrictions use (TLS_SESS_STATE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CcertFacts {
    pub cn: String,
    pub issuer_cn: String,
    /// `AA:BB:...` with smtpd_tls_fingerprint_digest.
    pub cert_fprint: String,
    pub pkey_fprint: String,
    /// It verified against smtpd_tls_CAfile / smtpd_tls_CApath.
    pub trusted: bool,
}

/// Restrictions that take a `type:name` argument (is_map_command()).
pub const MAP_COMMANDS: &[&str] = &[
    "check_client_access",
    "check_reverse_client_hostname_access",
    "check_client_a_access",
    "check_client_mx_access",
    "check_client_ns_access",
    "check_reverse_client_hostname_a_access",
    "check_reverse_client_hostname_mx_access",
    "check_reverse_client_hostname_ns_access",
    "check_helo_access",
    "check_helo_a_access",
    "check_helo_mx_access",
    "check_helo_ns_access",
    "check_sender_access",
    "check_sender_a_access",
    "check_sender_mx_access",
    "check_sender_ns_access",
    "check_recipient_access",
    "check_recipient_a_access",
    "check_recipient_mx_access",
    "check_recipient_ns_access",
    "check_etrn_access",
    "check_ccert_access",
    "check_sasl_access",
];

impl Setup {
    /// Reads the lists and parameters of one service.
    pub fn from_config(
        config: &Config,
        service: Option<&Service>,
    ) -> std::result::Result<Self, PolicyError> {
        let get = |name: &str| -> std::result::Result<String, PolicyError> {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            if config.is_raw(name) {
                return Ok(raw);
            }
            Ok(config.expand(&raw, service)?.text.trim().to_owned())
        };
        let bad = |name: &str, value: &str| PolicyError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let list = |name: &str| -> std::result::Result<Vec<String>, PolicyError> {
            let v = get(name)?;
            Ok(tern_config::list::split_keep_braces(&v))
        };
        let flag = |name: &str| -> std::result::Result<bool, PolicyError> {
            let v = get(name)?;
            match v.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(true),
                "no" | "false" => Ok(false),
                _ => Err(bad(name, &v)),
            }
        };
        let code = |name: &str| -> std::result::Result<u16, PolicyError> {
            let v = get(name)?;
            v.parse().map_err(|_| bad(name, &v))
        };
        let tempfail = |name: &str| -> std::result::Result<bool, PolicyError> {
            let v = get(name)?;
            match v.to_ascii_lowercase().as_str() {
                "defer_if_permit" => Ok(true),
                "defer" => Ok(false),
                _ => Err(bad(name, &v)),
            }
        };
        let lists = Lists {
            client: list("smtpd_client_restrictions")?,
            helo: list("smtpd_helo_restrictions")?,
            sender: list("smtpd_sender_restrictions")?,
            relay: list("smtpd_relay_restrictions")?,
            recipient: list("smtpd_recipient_restrictions")?,
            etrn: list("smtpd_etrn_restrictions")?,
            data: list("smtpd_data_restrictions")?,
            eod: list("smtpd_end_of_data_restrictions")?,
        };
        let mut classes = HashMap::new();
        for name in list("smtpd_restriction_classes")? {
            let value = get(&name)?;
            let body = tern_config::list::split_keep_braces(&value);
            classes.insert(name.to_ascii_lowercase(), body);
        }
        let codes = Codes {
            access_map_reject: code("access_map_reject_code")?,
            access_map_defer: code("access_map_defer_code")?,
            reject: code("reject_code")?,
            defer: code("defer_code")?,
            relay: code("relay_domains_reject_code")?,
            unknown_client: code("unknown_client_reject_code")?,
            invalid_hostname: code("invalid_hostname_reject_code")?,
            non_fqdn: code("non_fqdn_reject_code")?,
            unknown_hostname: code("unknown_hostname_reject_code")?,
            unknown_address: code("unknown_address_reject_code")?,
            multi_recipient_bounce: code("multi_recipient_bounce_reject_code")?,
            plaintext: code("plaintext_reject_code")?,
            helo_tempfail_if_permit: tempfail("unknown_helo_hostname_tempfail_action")?,
            address_tempfail_if_permit: tempfail("unknown_address_tempfail_action")?,
        };
        let parent = get("parent_domain_matches_subdomains")?;
        let parent_style = tern_maps::query::access::parent_matches_subdomains(
            std::slice::from_ref(&parent),
            tern_maps::query::access::PARENT_STYLE_NAME,
        );
        let proxy_read = get("proxy_read_maps")?;
        let proxy_read: Vec<String> = tern_config::list::split(&proxy_read).unwrap_or_default();
        let mut tables = HashMap::new();
        let all = [
            &lists.client,
            &lists.helo,
            &lists.sender,
            &lists.relay,
            &lists.recipient,
            &lists.etrn,
            &lists.data,
            &lists.eod,
        ];
        for names in all.into_iter().chain(classes.values()) {
            for spec in table_specs(names) {
                tables.entry(spec.clone()).or_insert_with(|| {
                    crate::recipients::open_table(&spec, &proxy_read, &crate::relay::error)
                });
            }
        }
        let policy =
            policy::PolicyClients::new(policy::PolicySettings::from_config(config, service)?);
        // smtpd_check_init(): a bad policy server is a fatal configuration error.
        for names in all.into_iter().chain(classes.values()) {
            for server in policy_servers(names) {
                policy
                    .register(&server)
                    .map_err(|e| PolicyError::BadValue {
                        name: "check_policy_service".to_owned(),
                        value: format!("{server}: {e}"),
                    })?;
            }
        }
        let login_maps = get("smtpd_sender_login_maps")?;
        let sender_login_maps = tern_config::list::split(&login_maps)
            .unwrap_or_else(|_| vec![login_maps.clone()])
            .iter()
            .map(|spec| crate::recipients::open_table(spec, &proxy_read, &crate::relay::error))
            .collect();
        let name = "permit_mx_backup_networks";
        let value = get(name)?;
        let perm_mx_networks = if value.trim().is_empty() {
            None
        } else {
            Some(crate::relay::namadr_list(name, &value, &parent)?)
        };
        Ok(Setup {
            perm_mx_networks,
            sasl_enabled: flag("smtpd_sasl_auth_enable")?,
            sender_login_maps,
            lists,
            classes,
            tables,
            codes,
            delay_reject: flag("smtpd_delay_reject")?,
            relay_before_recipient: flag("smtpd_relay_before_recipient_restrictions")?,
            reject_unlisted_sender: flag("smtpd_reject_unlisted_sender")?,
            soft_bounce: flag("soft_bounce")?,
            null_access_key: get("smtpd_null_access_lookup_key")?,
            parent_style,
            permit_log: list("smtpd_log_access_permit_actions")?,
            policy,
            dns: dns::DnsChecks::from_config(config, service)?,
        })
    }
}

impl Setup {
    /// has_required() (smtpd_check.c): whether `list` holds one of `required` before any
    /// `permit` (which ends the search: what follows it never runs), looking into
    /// restriction classes, skipping the restriction after `warn_if_reject` (it only
    /// warns).
    pub fn has_required(&self, list: &[String], required: &[&str]) -> bool {
        self.has_required_in(list, required, 0)
    }

    fn has_required_in(&self, list: &[String], required: &[&str], depth: u32) -> bool {
        if depth > MAX_CLASS_DEPTH {
            return false;
        }
        let mut i = 0;
        while i < list.len() {
            let name = list[i].as_str();
            if name.eq_ignore_ascii_case("warn_if_reject") && i + 1 < list.len() {
                i += 2;
                continue;
            }
            if name.eq_ignore_ascii_case("permit") {
                return false;
            }
            if required.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                return true;
            }
            if let Some(body) = self.classes.get(&name.to_ascii_lowercase())
                && self.has_required_in(body, required, depth + 1)
            {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// How deep has_required() follows restriction classes (a class naming itself ends).
const MAX_CLASS_DEPTH: u32 = 100;

/// The tables a list names: the argument of each map command and every bare `type:name`
/// (not the server of check_policy_service).
fn table_specs(names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < names.len() {
        let name = names[i].to_ascii_lowercase();
        if MAP_COMMANDS.contains(&name.as_str()) {
            if let Some(arg) = names.get(i + 1).filter(|a| a.contains(':')) {
                out.push(arg.clone());
            }
            i += 2;
            continue;
        }
        if name == "check_policy_service" {
            i += 2;
            continue;
        }
        if names[i].contains(':') {
            out.push(names[i].clone());
        }
        i += 1;
    }
    out
}

/// The servers of the check_policy_service entries of a list.
fn policy_servers(names: &[String]) -> Vec<String> {
    names
        .windows(2)
        .filter(|w| w[0].eq_ignore_ascii_case("check_policy_service"))
        .map(|w| w[1].clone())
        .collect()
}

/// A deferral that may yet replace the decision (SMTPD_DEFER).
#[derive(Debug, Clone, Default)]
pub struct Defer {
    pub active: bool,
    pub class: Option<ErrorClass>,
    pub code: u16,
    pub dsn: String,
    pub reason: String,
}

/// The queue actions of access results, for cleanup (smtpd's saved_* fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    pub hold: bool,
    pub discard: bool,
    pub filter: Option<String>,
    pub redirect: Option<String>,
    pub bcc: Vec<String>,
    pub prepend: Vec<String>,
}

/// What the client told and what the checks remember, for one session (SMTPD_STATE's
/// fields that smtpd_check.c reads).
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub reverse_name: String,
    pub addr: String,
    pub ip: IpAddr,
    pub port: u16,
    /// SMTPD_PEER_CODE_*: 2 ok, 4 temporary, 5 permanent, 6 forged (reject_unknown_client).
    pub name_status: u16,
    pub reverse_name_status: u16,
    pub helo: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub etrn_name: Option<String>,
    pub rcpt_count: usize,
    pub protocol: String,
    pub queue_id: Option<String>,
    /// `state->where`.
    pub stage: Stage,
    pub ill_pipelining: bool,
    pub smtputf8: bool,
    pub sasl_method: Option<String>,
    pub sasl_username: Option<String>,
    /// MAIL FROM's AUTH= (RFC 4954) as given, unless `<>` (smtpd_sasl_mail_opt()).
    pub sasl_sender: Option<String>,
    pub tls: bool,
    /// smtpd_tls_ask_ccert of this service (warnings of permit_tls_clientcerts and
    /// check_ccert_access when it is off).
    pub tls_ask_ccert: bool,
    /// The client's TLS certificate, when it presented one.
    pub ccert: Option<CcertFacts>,
    /// relay_clientcerts's tables (permit_tls_clientcerts).
    pub relay_clientcerts: Vec<std::sync::Arc<dyn Map>>,
    pub message_size: u64,
    /// The server address and port the client connected to.
    pub server_addr: String,
    pub server_port: u16,
    /// smtpd's service name (master.cf), for the policy `instance` and logging.
    pub service: String,
    pub saved: Saved,
    // Evaluation state (smtpd_check.c).
    pub error_text: String,
    recursion: u32,
    warn_if_reject: u32,
    defer_if_reject: Defer,
    defer_if_permit: Defer,
    dip_client: bool,
    dip_helo: bool,
    dip_sender: bool,
    recipient_rcptmap_checked: bool,
    sender_rcptmap_checked: bool,
    /// Policy `instance`: one value per mail transaction.
    pub instance: u64,
}

impl State {
    /// A session's state from the client's address and names.
    pub fn new(ip: IpAddr, port: u16, name: &str, reverse_name: &str) -> State {
        State {
            name: name.to_owned(),
            reverse_name: reverse_name.to_owned(),
            addr: ip.to_string(),
            ip,
            port,
            name_status: 2,
            reverse_name_status: 2,
            helo: None,
            sender: None,
            recipient: None,
            etrn_name: None,
            rcpt_count: 0,
            protocol: "SMTP".to_owned(),
            queue_id: None,
            stage: Stage::Connect,
            ill_pipelining: false,
            smtputf8: false,
            sasl_method: None,
            sasl_username: None,
            sasl_sender: None,
            tls: false,
            tls_ask_ccert: false,
            ccert: None,
            relay_clientcerts: Vec::new(),
            message_size: 0,
            server_addr: String::new(),
            server_port: 0,
            service: "smtp".to_owned(),
            saved: Saved::default(),
            error_text: String::new(),
            recursion: 0,
            warn_if_reject: 0,
            defer_if_reject: Defer::default(),
            defer_if_permit: Defer::default(),
            dip_client: false,
            dip_helo: false,
            dip_sender: false,
            recipient_rcptmap_checked: false,
            sender_rcptmap_checked: false,
            instance: 0,
        }
    }

    /// `NAME[ADDR]`.
    pub fn namaddr(&self) -> String {
        format!("{}[{}]", self.name, self.addr)
    }

    /// mail_reset(): the end of a transaction forgets its actions.
    pub fn mail_reset(&mut self) {
        self.saved = Saved::default();
        self.sender = None;
        self.sasl_sender = None;
        self.recipient = None;
        self.rcpt_count = 0;
        self.queue_id = None;
        self.message_size = 0;
        self.instance += 1;
    }

    fn reset(&mut self) {
        self.recursion = 0;
        self.warn_if_reject = 0;
        self.defer_if_reject.active = false;
    }
}

/// One evaluation: the service's setup, the session's state and the log.
pub struct Checker<'a> {
    pub r: &'a Restrictions,
    pub st: &'a mut State,
    pub logger: &'a Logger,
    pub ident: &'a Ident,
}

impl Checker<'_> {
    fn setup(&self) -> &Setup {
        self.r.setup()
    }

    /// log_whatsup(): `QUEUEID: WHAT: STAGE from NAME[ADDR]: TEXT; from=<> to=<> proto=
    /// helo=<>`.
    pub fn log_whatsup(&self, what: &str, text: &str) {
        let st = &*self.st;
        let client = Client {
            name: &st.name,
            addr: &st.addr,
        };
        // info_log_address_format = external: local parts quoted as RFC 5322 needs.
        let external = |a: &str| {
            if a.is_empty() {
                String::new()
            } else {
                tern_message::address::quote_822_local(a)
            }
        };
        let sender = st.sender.as_deref().map(external);
        let recipient = st.recipient.as_deref().map(external);
        let tx = Transaction {
            queue_id: st.queue_id.as_deref(),
            sender: sender.as_deref(),
            recipient: recipient.as_deref(),
            protocol: Some(&st.protocol),
            helo: st.helo.as_deref(),
        };
        let line = tern_maillog::smtpd::whatsup(what, st.stage, client, text, tx);
        self.logger.log(self.ident, &line);
    }

    /// A `warning:` line.
    pub fn warn(&self, text: &str) {
        self.logger.log(self.ident, &Line::warning(text.to_owned()));
    }

    /// smtpd_check_reject(): formats and logs the reply; REJECT, or DUNNO under
    /// warn_if_reject.
    pub fn reject(&mut self, class: ErrorClass, code: u16, dsn: &str, text: &str) -> Status {
        let warn_only = self.st.warn_if_reject != 0
            && !matches!(
                class,
                ErrorClass::Software | ErrorClass::Resource | ErrorClass::Data
            );
        let mut out = format!("{code} {dsn} {text}");
        if !(400..=599).contains(&code) {
            self.warn(&format!("SMTP reply code configuration error: {out}"));
            "450 4.7.1 Service unavailable".clone_into(&mut out);
        } else if !dsn_valid(dsn) {
            self.warn(&format!("DSN detail code configuration error: {out}"));
            "450 4.7.1 Service unavailable".clone_into(&mut out);
        }
        let mut out: String = out
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if out.len() > 510 {
            let mut cut = 510;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        if !warn_only && self.st.defer_if_reject.active && out.starts_with('5') {
            self.st.warn_if_reject = 0;
            self.st.defer_if_reject.active = false;
            let d = self.st.defer_if_reject.clone();
            return self.reject(
                d.class.unwrap_or(ErrorClass::Policy),
                d.code,
                &d.dsn,
                &d.reason,
            );
        }
        if self.setup().soft_bounce && out.starts_with('5') {
            out.replace_range(..1, "4");
        }
        // The enhanced code's class follows the reply code's.
        if out.len() > 4 && out.is_char_boundary(5) {
            let first = out[..1].to_owned();
            out.replace_range(4..5, &first);
        }
        self.log_whatsup(
            if warn_only {
                "reject_warning"
            } else {
                "reject"
            },
            &out,
        );
        self.st.error_text = out;
        if warn_only {
            Status::Dunno
        } else {
            Status::Reject
        }
    }

    /// reject_dict_retry(): `451 4.3.0 <NAME>: Temporary lookup failure`, ending the list.
    pub fn dict_retry(&mut self, name: &str) -> Abort {
        self.reject(
            ErrorClass::Data,
            451,
            "4.3.0",
            &format!("<{name}>: Temporary lookup failure"),
        );
        Abort
    }

    /// reject_server_error(): `451 4.3.5 Server configuration error`, ending the list.
    pub fn server_error(&mut self) -> Abort {
        self.reject(
            ErrorClass::Software,
            451,
            "4.3.5",
            "Server configuration error",
        );
        Abort
    }

    /// defer_if(): keeps the first reason of a deferral that may replace the decision.
    fn defer_if(which: &mut Defer, class: ErrorClass, code: u16, dsn: &str, reason: String) {
        if !which.active {
            *which = Defer {
                active: true,
                class: Some(class),
                code,
                dsn: dsn.to_owned(),
                reason,
            };
        }
    }

    /// DEFER_IF_REJECT: remembers a deferral that turns a later reject into it.
    pub fn defer_if_reject(&mut self, class: ErrorClass, code: u16, dsn: &str, reason: String) {
        Self::defer_if(&mut self.st.defer_if_reject, class, code, dsn, reason);
    }

    /// DEFER_IF_PERMIT2(type, ...): with `if_permit` (and no warn_if_reject) the deferral
    /// replaces a permit later; otherwise it is a reject now.
    pub fn defer_if_permit(
        &mut self,
        if_permit: bool,
        class: ErrorClass,
        code: u16,
        dsn: &str,
        reason: String,
    ) -> Status {
        if self.st.warn_if_reject == 0 && if_permit {
            Self::defer_if(&mut self.st.defer_if_permit, class, code, dsn, reason);
            Status::Dunno
        } else {
            self.reject(class, code, dsn, &reason)
        }
    }

    /// smtpd_acl_permit(): OK, logged when smtpd_log_access_permit_actions names it.
    pub fn acl_permit(
        &mut self,
        action: &str,
        class: &str,
        name: &str,
        from: Option<&str>,
    ) -> Status {
        if !self.st.defer_if_permit.active
            && self
                .setup()
                .permit_log
                .iter()
                .any(|a| a.eq_ignore_ascii_case(action) || a.eq_ignore_ascii_case("static:all"))
        {
            let mut text = format!("action={action} for {class}={name}");
            if let Some(table) = from {
                text.push_str(" from ");
                text.push_str(table);
            }
            self.log_whatsup("permit", &text);
        }
        Status::Ok
    }

    /// Runs one list at a stage, catching the long jump.
    async fn run_list(
        &mut self,
        list: &[String],
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Status {
        if list.is_empty() {
            return Status::Dunno;
        }
        match self.generic(list, name, class, def).await {
            Ok(s) => s,
            Err(Abort) => Status::Reject,
        }
    }

    fn rejected(&self, status: Status) -> Option<String> {
        (status == Status::Reject).then(|| self.st.error_text.clone())
    }

    /// Replaces a permit by the pending defer_if_permit deferral.
    fn apply_defer_if_permit(&mut self, status: Status) -> Status {
        if status != Status::Reject && self.st.defer_if_permit.active {
            let d = self.st.defer_if_permit.clone();
            return self.reject(
                d.class.unwrap_or(ErrorClass::Policy),
                d.code,
                &d.dsn,
                &d.reason,
            );
        }
        status
    }

    /// smtpd_check_client().
    pub async fn client(&mut self) -> Option<String> {
        self.st.defer_if_permit.active = false;
        self.st.reset();
        let r = self.r;
        let name = self.st.namaddr();
        let status = self
            .run_list(
                &r.setup().lists.client,
                &name,
                CLIENT,
                Some("check_client_access"),
            )
            .await;
        self.st.dip_client = self.st.defer_if_permit.active;
        self.rejected(status)
    }

    /// smtpd_check_helo(); `helo` None skips it.
    pub async fn helo(&mut self, helo: Option<String>) -> Option<String> {
        let helo = helo?;
        let saved = self.st.helo.replace(helo.clone());
        self.st.defer_if_permit.active = self.st.dip_client;
        self.st.reset();
        let r = self.r;
        let status = self
            .run_list(
                &r.setup().lists.helo,
                &helo,
                HELO,
                Some("check_helo_access"),
            )
            .await;
        self.st.dip_helo = self.st.defer_if_permit.active;
        let out = self.rejected(status);
        self.st.helo = saved;
        out
    }

    /// smtpd_check_mail(); `sender` None skips it.
    pub async fn mail(&mut self, sender: Option<String>) -> Option<String> {
        let sender = sender?;
        let saved = self.st.sender.replace(sender.clone());
        self.st.defer_if_permit.active = self.st.dip_client || self.st.dip_helo;
        self.st.sender_rcptmap_checked = false;
        self.st.reset();
        let r = self.r;
        let mut status = self
            .run_list(
                &r.setup().lists.sender,
                &sender,
                SENDER,
                Some("check_sender_access"),
            )
            .await;
        self.st.dip_sender = self.st.defer_if_permit.active;
        if r.setup().reject_unlisted_sender
            && status != Status::Reject
            && !self.st.sender_rcptmap_checked
            && !self.st.saved.discard
            && !sender.is_empty()
        {
            status = match self.sender_rcpt_maps(&sender) {
                Ok(s) => s,
                Err(Abort) => Status::Reject,
            };
        }
        let out = self.rejected(status);
        self.st.sender = saved;
        out
    }

    /// smtpd_check_rcpt() for RCPT TO and VRFY.
    pub async fn rcpt(&mut self, recipient: &str) -> Option<String> {
        // RFC 5321 4.5.1: postmaster is accepted without a domain.
        if recipient.eq_ignore_ascii_case("postmaster") {
            return None;
        }
        let saved = self.st.recipient.replace(recipient.to_owned());
        let out = self.rcpt_checks(recipient).await;
        self.st.recipient = saved;
        out
    }

    async fn rcpt_checks(&mut self, recipient: &str) -> Option<String> {
        self.st.recipient_rcptmap_checked = false;
        let r = self.r;
        let s = r.setup();
        if s.delay_reject {
            if let Some(e) = self.client().await {
                return Some(e);
            }
            let helo = self.st.helo.clone();
            if let Some(e) = self.helo(helo).await {
                return Some(e);
            }
            let sender = self.st.sender.clone();
            if let Some(e) = self.mail(sender).await {
                return Some(e);
            }
        }
        self.st.defer_if_permit.active = self.st.dip_sender;
        self.st.reset();
        let order = if s.relay_before_recipient {
            [&s.lists.relay, &s.lists.recipient]
        } else {
            [&s.lists.recipient, &s.lists.relay]
        };
        let mut status = Status::Dunno;
        for list in order {
            status = self
                .run_list(list, recipient, RECIPIENT, Some("check_recipient_access"))
                .await;
            if status == Status::Reject {
                break;
            }
        }
        status = self.apply_defer_if_permit(status);
        if r.recipients_implicit()
            && status != Status::Reject
            && !self.st.recipient_rcptmap_checked
            && !self.st.saved.discard
        {
            status = match self.recipient_rcpt_maps(recipient) {
                Ok(s) => s,
                Err(Abort) => Status::Reject,
            };
        }
        self.rejected(status)
    }

    /// smtpd_check_etrn().
    pub async fn etrn(&mut self, domain: &str) -> Option<String> {
        let saved = self.st.etrn_name.replace(domain.to_owned());
        let out = self.etrn_checks(domain).await;
        self.st.etrn_name = saved;
        out
    }

    async fn etrn_checks(&mut self, domain: &str) -> Option<String> {
        let r = self.r;
        if r.setup().delay_reject {
            if let Some(e) = self.client().await {
                return Some(e);
            }
            let helo = self.st.helo.clone();
            if let Some(e) = self.helo(helo).await {
                return Some(e);
            }
        }
        self.st.defer_if_permit.active = self.st.dip_client || self.st.dip_helo;
        self.st.reset();
        let status = self
            .run_list(
                &r.setup().lists.etrn,
                domain,
                ETRN,
                Some("check_etrn_access"),
            )
            .await;
        let status = self.apply_defer_if_permit(status);
        self.rejected(status)
    }

    /// smtpd_check_data(): before DATA's 354 (or the first BDAT).
    pub async fn data(&mut self) -> Option<String> {
        let r = self.r;
        self.content_stage(&r.setup().lists.data, "DATA", DATA)
            .await
    }

    /// smtpd_check_eod(): at the end of the content.
    pub async fn eod(&mut self) -> Option<String> {
        let r = self.r;
        self.content_stage(&r.setup().lists.eod, "END-OF-MESSAGE", EOD)
            .await
    }

    async fn content_stage(
        &mut self,
        list: &[String],
        name: &str,
        class: &'static str,
    ) -> Option<String> {
        // With several recipients none is named: the check is about all of them.
        let saved = (self.st.rcpt_count > 1).then(|| self.st.recipient.take());
        self.st.defer_if_permit.active = false;
        self.st.reset();
        let status = self.run_list(list, name, class, None).await;
        let status = self.apply_defer_if_permit(status);
        if let Some(saved) = saved {
            self.st.recipient = saved;
        }
        self.rejected(status)
    }

    /// check_recipient_rcpt_maps(): once per recipient.
    fn recipient_rcpt_maps(&mut self, recipient: &str) -> Result<Status> {
        if self.st.recipient_rcptmap_checked {
            return Ok(Status::Dunno);
        }
        if self.st.warn_if_reject == 0 {
            self.st.recipient_rcptmap_checked = true;
        }
        self.rcpt_maps(recipient, RECIPIENT)
    }

    /// check_sender_rcpt_maps(): once per MAIL.
    fn sender_rcpt_maps(&mut self, sender: &str) -> Result<Status> {
        if self.st.sender_rcptmap_checked {
            return Ok(Status::Dunno);
        }
        if self.st.warn_if_reject == 0 {
            self.st.sender_rcptmap_checked = true;
        }
        self.rcpt_maps(sender, SENDER)
    }

    fn rcpt_maps(&mut self, address: &str, class: &str) -> Result<Status> {
        let warn: tern_maps::Warn = Arc::new(crate::relay::warn);
        let decision =
            self.r
                .recipient_maps()
                .check_class(self.r.resolver(), address, class, &warn);
        self.decision(decision, ErrorClass::Policy)
    }

    /// A decision of the relay library or the recipient tables, as a status.
    pub fn decision(&mut self, d: tern_rewrite::Decision, class: ErrorClass) -> Result<Status> {
        use tern_rewrite::Decision as D;
        match d {
            D::Permit => Ok(Status::Ok),
            D::Dunno => Ok(Status::Dunno),
            D::Reject(rep) => Ok(self.reject(class, rep.code, &rep.dsn, &rep.text)),
            D::TempFail(rep) => {
                let class = if rep.dsn == "4.3.5" {
                    ErrorClass::Software
                } else {
                    ErrorClass::Data
                };
                self.reject(class, rep.code, &rep.dsn, &rep.text);
                Err(Abort)
            }
            D::Unsupported(name) => {
                self.warn(&format!("unknown smtpd restriction: \"{name}\""));
                Err(self.server_error())
            }
        }
    }
}

/// dsn_valid(): `2`, `4` or `5`, then `.` and 1-3 digits twice.
pub fn dsn_valid(text: &str) -> bool {
    let mut parts = text.split('.');
    let class_ok = parts.next().is_some_and(|c| matches!(c, "2" | "4" | "5"));
    let digits = |p: Option<&str>| {
        p.is_some_and(|d| (1..=3).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
    };
    class_ok && digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// smtpd_dsn_fix(): an address status `X.1.N` follows what is rejected.
pub fn dsn_fix(status: &str, class: &str) -> String {
    let Some(detail) = status.get(1..).and_then(|d| d.strip_prefix(".1.")) else {
        return status.to_owned();
    };
    let c = &status[..1];
    let fixed = match class {
        // SND_DSN is 4.1.7.
        SENDER => match detail {
            "1" | "3" | "4" | "6" | "7" => "4.1.7",
            "2" | "8" => "4.1.8",
            _ => "4.1.0",
        },
        RECIPIENT => match detail {
            "1" => "4.1.1",
            "2" | "8" => "4.1.2",
            "3" | "7" => "4.1.3",
            "4" => "4.1.4",
            "5" => "4.1.5",
            "6" => "4.1.6",
            _ => "4.1.0",
        },
        _ => "4.0.0",
    };
    format!("{c}{}", &fixed[1..])
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
