//! generic_checks() (smtpd_check.c): one restriction list, name by name. The first
//! restriction that says OK or REJECT ends the list; `warn_if_reject` turns the next
//! restriction's reject into a logged `reject_warning`; a bare `type:name` is the list's
//! default access check (check_client_access for the client list, ...); a name that is a
//! restriction class runs its list; an unknown name is a server configuration error
//! (`451 4.3.5`), logged every time it is reached.

use std::future::Future;
use std::pin::Pin;

use super::dns::{HostLookup, RblContext, ServerKind};
use super::{
    CLIENT, Checker, ErrorClass, HELO, MAP_COMMANDS, RECIPIENT, REV_CLIENT, Result, SASL_USER,
    SENDER, Status,
};

type Boxed<'s> = Pin<Box<dyn Future<Output = Result<Status>> + Send + 's>>;

/// Postfix refuses deeper nesting of classes and table results.
const MAX_RECURSION: u32 = 100;

impl Checker<'_> {
    /// generic_checks(): `name` is the reply name (`<NAME>: CLASS rejected: ...`), `def`
    /// the access check of a bare `type:name`.
    pub fn generic<'s>(
        &'s mut self,
        list: &'s [String],
        name: &'s str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Boxed<'s> {
        Box::pin(async move {
            let saved_recursion = self.st.recursion;
            self.st.recursion += 1;
            let result = self.walk(list, name, class, def).await;
            self.st.recursion = saved_recursion;
            if self.st.warn_if_reject >= self.st.recursion {
                self.st.warn_if_reject = 0;
            }
            result
        })
    }

    async fn walk(
        &mut self,
        list: &[String],
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<Status> {
        let mut status = Status::Dunno;
        let mut i = 0;
        while i < list.len() {
            if self.st.saved.discard {
                break;
            }
            let raw = list[i].as_str();
            i += 1;
            if raw.eq_ignore_ascii_case("warn_if_reject") {
                if self.st.warn_if_reject == 0 {
                    self.st.warn_if_reject = self.st.recursion;
                }
                continue;
            }
            // A bare table is the list's default access check with that table.
            let (verb, arg) = if raw.contains(':') && !raw.starts_with('{') {
                let Some(def) = def else {
                    self.warn(&format!(
                        "specify one of (check_client_access, \
                         check_reverse_client_hostname_access, check_helo_access, \
                         check_sender_access, check_recipient_access, check_etrn_access) \
                         before {class} restriction \"{raw}\""
                    ));
                    return Err(self.server_error());
                };
                (def.to_owned(), Some(raw.to_owned()))
            } else {
                let verb = raw.to_ascii_lowercase();
                if MAP_COMMANDS.contains(&verb.as_str()) || verb == "check_policy_service" {
                    let arg = list.get(i).filter(|a| a.contains(':')).cloned();
                    if arg.is_none() {
                        if verb == "check_policy_service" {
                            self.warn(
                                "restriction check_policy_service must be followed by \
                                 transport:server",
                            );
                        } else {
                            let shown = list.get(i).map_or("(null)", String::as_str);
                            self.warn(&format!(
                                "restriction {verb}: bad argument \"{shown}\": need \
                                 maptype:mapname"
                            ));
                        }
                        return Err(self.server_error());
                    }
                    i += 1;
                    (verb, arg)
                } else {
                    (verb, None)
                }
            };
            // Restrictions that take a domain argument (reject_rbl_client NAME, sleep N).
            let takes_domain = matches!(
                verb.as_str(),
                "reject_rbl_client"
                    | "reject_rbl"
                    | "permit_dnswl_client"
                    | "reject_rhsbl_client"
                    | "permit_rhswl_client"
                    | "reject_rhsbl_reverse_client"
                    | "reject_rhsbl_helo"
                    | "reject_rhsbl_sender"
                    | "reject_rhsbl_recipient"
            );
            let domain_arg = list.get(i).filter(|_| takes_domain).cloned();
            if domain_arg.is_some() {
                i += 1;
            } else if takes_domain {
                self.warn(&format!("restriction {verb} requires domain name argument"));
            }
            status = self
                .one(
                    &verb,
                    raw,
                    arg.as_deref(),
                    domain_arg.as_deref(),
                    list,
                    &mut i,
                    name,
                    class,
                    def,
                )
                .await?;
            if self.st.warn_if_reject >= self.st.recursion {
                self.st.warn_if_reject = 0;
            }
            if status != Status::Dunno {
                break;
            }
            if self.st.defer_if_permit.active && self.st.defer_if_reject.active {
                break;
            }
        }
        Ok(status)
    }

    /// One restriction.
    #[allow(clippy::too_many_arguments)]
    async fn one(
        &mut self,
        verb: &str,
        raw: &str,
        table: Option<&str>,
        domain_arg: Option<&str>,
        list: &[String],
        i: &mut usize,
        name: &str,
        class: &'static str,
        def: Option<&'static str>,
    ) -> Result<Status> {
        let codes = self.r.setup().codes.clone();
        let next = list.get(*i).cloned();
        let ignored_after = |me: &mut Self, what: &str| {
            if let Some(n) = &next
                && me.st.warn_if_reject == 0
            {
                me.warn(&format!("restriction `{n}' after `{what}' is ignored"));
            }
        };
        let st = &*self.st;
        let client_name = st.name.clone();
        let reverse_name = st.reverse_name.clone();
        let namaddr = st.namaddr();
        let addr = st.addr.clone();
        let helo = st.helo.clone();
        let sender = st.sender.clone();
        let recipient = st.recipient.clone();
        let status = match verb {
            "permit" => {
                let s = self.acl_permit(verb, class, name, None);
                if next.is_some() {
                    self.warn(&format!(
                        "restriction `{}' after `permit' is ignored",
                        next.as_deref().unwrap_or_default()
                    ));
                }
                s
            }
            "defer" => {
                let s = self.reject(
                    ErrorClass::Policy,
                    codes.defer,
                    "4.3.2",
                    &format!("<{name}>: {class} rejected: Try again later"),
                );
                ignored_after(self, "defer");
                s
            }
            "reject" => {
                let s = self.reject(
                    ErrorClass::Policy,
                    codes.reject,
                    "5.7.1",
                    &format!("<{name}>: {class} rejected: Access denied"),
                );
                ignored_after(self, "reject");
                s
            }
            "reject_unauth_pipelining" => {
                if self.st.ill_pipelining {
                    self.reject(
                        ErrorClass::Protocol,
                        503,
                        "5.5.0",
                        &format!(
                            "<{name}>: {class} rejected: Improper use of SMTP command pipelining"
                        ),
                    )
                } else {
                    Status::Dunno
                }
            }
            "check_policy_service" => {
                let server = table.unwrap_or_default().to_owned();
                self.policy(&server, name, class, def).await?
            }
            "defer_if_permit" => self.defer_if_permit(
                true,
                ErrorClass::Policy,
                450,
                "4.7.0",
                format!("<{name}>: {class} rejected: defer_if_permit requested"),
            ),
            "defer_if_reject" => {
                self.defer_if_reject(
                    ErrorClass::Policy,
                    450,
                    "4.7.0",
                    format!("<{name}>: {class} rejected: defer_if_reject requested"),
                );
                Status::Dunno
            }
            "sleep" => {
                let secs = next
                    .as_deref()
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                let Some(n) = secs.and_then(|s| s.parse::<u64>().ok()) else {
                    self.warn("restriction sleep must be followed by number");
                    return Err(self.server_error());
                };
                *i += 1;
                tokio::time::sleep(std::time::Duration::from_secs(n.min(3600))).await;
                Status::Dunno
            }
            "reject_plaintext_session" => {
                if self.st.tls {
                    Status::Dunno
                } else {
                    self.reject(
                        ErrorClass::Policy,
                        codes.plaintext,
                        "4.7.1",
                        "Session encryption is required",
                    )
                }
            }
            // Client name/address restrictions.
            "reject_unknown_client_hostname" | "reject_unknown_client" => {
                let st = self.st.name_status;
                if st == 2 {
                    Status::Dunno
                } else {
                    let code = if st >= 5 { codes.unknown_client } else { 450 };
                    self.reject(
                        ErrorClass::Policy,
                        code,
                        "4.7.25",
                        &format!("Client host rejected: cannot find your hostname, [{addr}]"),
                    )
                }
            }
            "reject_unknown_reverse_client_hostname" => {
                let st = self.st.reverse_name_status;
                if st == 2 {
                    Status::Dunno
                } else {
                    let code = if st == 5 { codes.unknown_client } else { 450 };
                    self.reject(
                        ErrorClass::Policy,
                        code,
                        "4.7.1",
                        &format!(
                            "Client host rejected: cannot find your reverse hostname, [{addr}]"
                        ),
                    )
                }
            }
            "permit_inet_interfaces" => {
                if self.r.is_own_address(self.st.ip) {
                    self.acl_permit(verb, CLIENT, &namaddr, None)
                } else {
                    Status::Dunno
                }
            }
            "permit_mynetworks" => {
                let c = tern_rewrite::Client {
                    name: &client_name,
                    addr: self.st.ip,
                    sasl_authenticated: self.st.sasl_username.is_some(),
                };
                let d = self.r.resolver().permit_mynetworks(&c, name);
                match self.decision(d, ErrorClass::Policy)? {
                    Status::Ok => self.acl_permit(verb, CLIENT, &namaddr, None),
                    s => s,
                }
            }
            "check_client_access" => {
                let t = table.unwrap_or_default();
                self.check_namadr_access(t, &client_name, &addr, &namaddr, CLIENT, def)
                    .await?
                    .0
            }
            "check_reverse_client_hostname_access" => {
                let t = table.unwrap_or_default();
                let s = self
                    .check_namadr_access(t, &reverse_name, &addr, &reverse_name, REV_CLIENT, def)
                    .await?
                    .0;
                self.forbid_allowlist(verb, s, &reverse_name)?
            }
            "reject_rbl_client" | "reject_rbl" => match domain_arg {
                Some(rbl) => {
                    let ip = self.st.ip;
                    let ctx = self.rbl_context(CLIENT, &addr);
                    let hit = self.r.setup().dns.rbl_addr_outcome(rbl, ip, &ctx).await;
                    self.rbl_reply(hit, CLIENT)
                }
                None => Status::Dunno,
            },
            "reject_rhsbl_client" => match domain_arg {
                Some(rbl) if !client_name.eq_ignore_ascii_case("unknown") => {
                    self.rhsbl(rbl, &client_name, CLIENT).await
                }
                _ => Status::Dunno,
            },
            "reject_rhsbl_reverse_client" => match domain_arg {
                Some(rbl) if !reverse_name.eq_ignore_ascii_case("unknown") => {
                    self.rhsbl(rbl, &reverse_name, REV_CLIENT).await
                }
                _ => Status::Dunno,
            },
            // Allow lists (smtpd_check.c permit_dnswl_addr(), permit_dnswl_domain()).
            "permit_dnswl_client" => match domain_arg {
                Some(wl) if !self.rcpt_unauthorized() => {
                    let ip = self.st.ip;
                    let ctx = self.rbl_context(CLIENT, &addr);
                    let out = self.r.setup().dns.rbl_addr_outcome(wl, ip, &ctx).await;
                    self.dnswl(&out, &addr, verb, &namaddr)
                }
                _ => Status::Dunno,
            },
            "permit_rhswl_client" => match domain_arg {
                Some(wl)
                    if !client_name.eq_ignore_ascii_case("unknown")
                        && !self.rcpt_unauthorized() =>
                {
                    let ctx = self.rbl_context(CLIENT, &client_name);
                    let out = self
                        .r
                        .setup()
                        .dns
                        .rbl_domain_outcome(wl, &client_name, &ctx)
                        .await;
                    self.dnswl(&out, &client_name, verb, &namaddr)
                }
                _ => Status::Dunno,
            },
            // check_sasl_access(): the SASL login name, as given, once authenticated; the
            // name in a reject has control characters made `_`.
            "check_sasl_access" => {
                if !self.r.setup().sasl_enabled {
                    self.warn(&format!("restriction `{raw}' ignored: no SASL support"));
                    Status::Dunno
                } else if let Some(user) = self.st.sasl_username.clone().filter(|u| !u.is_empty()) {
                    let t = table.unwrap_or_default();
                    let sane: String = user
                        .chars()
                        .map(|c| if c.is_control() { '_' } else { c })
                        .collect();
                    self.check_access(t, &user, &sane, SASL_USER, def).await?.0
                } else {
                    Status::Dunno
                }
            }
            // smtpd_check.c permit_tls_clientcerts(): a trusted certificate
            // (permit_tls_all_clientcerts), or one whose certificate or public-key
            // fingerprint is in relay_clientcerts (trusted or not).
            "permit_tls_all_clientcerts" | "permit_tls_clientcerts" => {
                let all = verb == "permit_tls_all_clientcerts";
                match (self.st.tls, self.st.ccert.clone()) {
                    (false, _) => Status::Dunno,
                    (true, Some(c)) if all && c.trusted => {
                        self.acl_permit(verb, CLIENT, &namaddr, None)
                    }
                    (true, Some(c)) => {
                        let mut found = Status::Dunno;
                        let tables = self.st.relay_clientcerts.clone();
                        'prints: for print in [&c.cert_fprint, &c.pkey_fprint] {
                            for t in &tables {
                                match t.lookup(print) {
                                    Ok(Some(_)) => {
                                        found = Status::Ok;
                                        break 'prints;
                                    }
                                    Ok(None) => {}
                                    Err(_) => {
                                        self.warn(&format!(
                                            "relay_clientcerts: lookup error for fingerprint '{}', pkey fingerprint {}",
                                            c.cert_fprint, c.pkey_fprint
                                        ));
                                        return Err(self.dict_retry("relay_clientcerts"));
                                    }
                                }
                            }
                        }
                        match found {
                            Status::Ok => self.acl_permit(verb, CLIENT, &namaddr, None),
                            s => s,
                        }
                    }
                    (true, None) => {
                        if !self.st.tls_ask_ccert {
                            self.warn(&format!(
                                "{verb} is requested, but \"smtpd_tls_ask_ccert = no\""
                            ));
                        }
                        Status::Dunno
                    }
                }
            }
            // check_ccert_access(): the certificate fingerprint, then the public key's;
            // the peer CommonName names the client in a reject.
            "check_ccert_access" => {
                if let Some(c) = self.st.ccert.clone().filter(|_| self.st.tls) {
                    let t = table.unwrap_or_default();
                    let mut s = Status::Dunno;
                    for print in [&c.cert_fprint, &c.pkey_fprint] {
                        s = self
                            .check_access(t, print, &c.cn, "Client certificate", def)
                            .await?
                            .0;
                        if s != Status::Dunno {
                            break;
                        }
                    }
                    s
                } else {
                    if !self.st.tls_ask_ccert {
                        self.warn(
                            "check_ccert_access is requested, but \"smtpd_tls_ask_ccert = no\"",
                        );
                    }
                    Status::Dunno
                }
            }
            "check_client_ns_access" | "check_client_mx_access" | "check_client_a_access" => {
                if client_name.eq_ignore_ascii_case("unknown") {
                    Status::Dunno
                } else {
                    let t = table.unwrap_or_default();
                    let s = self
                        .check_server_access(t, &client_name, kind_of(verb), &namaddr, CLIENT, def)
                        .await?;
                    self.forbid_allowlist(verb, s, &client_name)?
                }
            }
            "check_reverse_client_hostname_ns_access"
            | "check_reverse_client_hostname_mx_access"
            | "check_reverse_client_hostname_a_access" => {
                if reverse_name.eq_ignore_ascii_case("unknown") {
                    Status::Dunno
                } else {
                    let t = table.unwrap_or_default();
                    let s = self
                        .check_server_access(
                            t,
                            &reverse_name,
                            kind_of(verb),
                            &reverse_name,
                            REV_CLIENT,
                            def,
                        )
                        .await?;
                    self.forbid_allowlist(verb, s, &reverse_name)?
                }
            }
            // HELO/EHLO restrictions.
            "check_helo_access" => match &helo {
                Some(h) => {
                    let t = table.unwrap_or_default();
                    self.check_domain_access(t, h, true, h, HELO, def).await?.0
                }
                None => Status::Dunno,
            },
            "reject_invalid_helo_hostname" | "reject_invalid_hostname" => match &helo {
                Some(h) if h.starts_with('[') => self.reject_invalid_hostaddr(h, h, HELO),
                Some(h) => self.reject_invalid_hostname(h, h, HELO),
                None => Status::Dunno,
            },
            "reject_unknown_helo_hostname" | "reject_unknown_hostname" => match &helo {
                Some(h) if h.starts_with('[') => self.reject_invalid_hostaddr(h, h, HELO),
                Some(h) => self.reject_unknown_hostname(h, h, HELO).await,
                None => Status::Dunno,
            },
            "reject_non_fqdn_helo_hostname" | "reject_non_fqdn_hostname" => match &helo {
                Some(h) if h.starts_with('[') => self.reject_invalid_hostaddr(h, h, HELO),
                Some(h) => self.reject_non_fqdn_hostname(h, h, HELO),
                None => Status::Dunno,
            },
            "check_helo_ns_access" | "check_helo_mx_access" | "check_helo_a_access" => {
                match &helo {
                    Some(h) => {
                        let t = table.unwrap_or_default();
                        let s = self
                            .check_server_access(t, h, kind_of(verb), h, HELO, def)
                            .await?;
                        self.forbid_allowlist(verb, s, h)?
                    }
                    None => Status::Dunno,
                }
            }
            "reject_rhsbl_helo" => match (domain_arg, &helo) {
                (Some(rbl), Some(h)) => self.rhsbl(rbl, h, HELO).await,
                _ => Status::Dunno,
            },
            // Sender restrictions.
            "check_sender_access" => match sender.as_deref() {
                Some("") => {
                    let key = self.r.setup().null_access_key.clone();
                    let t = table.unwrap_or_default();
                    self.check_access(t, &key, "", SENDER, def).await?.0
                }
                Some(s) => {
                    let t = table.unwrap_or_default();
                    self.check_mail_access(t, s, s, SENDER, def).await?
                }
                None => Status::Dunno,
            },
            "reject_unknown_sender_domain" | "reject_unknown_address" => match sender.as_deref() {
                Some(s) if !s.is_empty() => self.reject_unknown_address(s, s, SENDER).await?,
                _ => Status::Dunno,
            },
            "reject_non_fqdn_sender" => match sender.as_deref() {
                Some(s) if !s.is_empty() => self.reject_non_fqdn_address(s, s, SENDER),
                _ => Status::Dunno,
            },
            "check_sender_ns_access" | "check_sender_mx_access" | "check_sender_a_access" => {
                match sender.as_deref() {
                    Some(s) if !s.is_empty() => {
                        let t = table.unwrap_or_default();
                        let st = self
                            .check_server_access(t, s, kind_of(verb), s, SENDER, def)
                            .await?;
                        self.forbid_allowlist(verb, st, s)?
                    }
                    _ => Status::Dunno,
                }
            }
            "reject_rhsbl_sender" => match (domain_arg, sender.as_deref()) {
                (Some(rbl), Some(s)) if !s.is_empty() => self.rhsbl(rbl, s, SENDER).await,
                _ => Status::Dunno,
            },
            "reject_unlisted_sender" => match sender.as_deref() {
                Some(s) if !s.is_empty() => {
                    let s = s.to_owned();
                    self.sender_rcpt_maps(&s)?
                }
                _ => Status::Dunno,
            },
            "reject_authenticated_sender_login_mismatch"
            | "reject_known_sender_login_mismatch"
            | "reject_unauthenticated_sender_login_mismatch"
            | "reject_sender_login_mismatch" => {
                if !self.r.setup().sasl_enabled {
                    // Postfix built without SASL, or smtpd_sasl_auth_enable = no.
                    self.warn(&format!("restriction `{raw}' ignored: no SASL support"));
                    return Ok(Status::Dunno);
                }
                match sender.as_deref() {
                    Some(s) if !s.is_empty() => self.login_mismatch(verb, s)?,
                    _ => Status::Dunno,
                }
            }
            // Recipient restrictions.
            "check_recipient_access" => match recipient.as_deref() {
                Some(r) => {
                    let t = table.unwrap_or_default();
                    self.check_mail_access(t, r, r, RECIPIENT, def).await?
                }
                None => Status::Dunno,
            },
            "permit_auth_destination" => match recipient.as_deref() {
                Some(r) => {
                    let d = self.r.resolver().permit_auth_destination(r);
                    match self.decision(d, ErrorClass::Policy)? {
                        Status::Ok => self.acl_permit(verb, RECIPIENT, r, None),
                        s => s,
                    }
                }
                None => Status::Dunno,
            },
            "reject_unauth_destination" | "defer_unauth_destination" => {
                match recipient.as_deref() {
                    Some(r) => {
                        let d = if verb == "reject_unauth_destination" {
                            self.r.resolver().reject_unauth_destination(r)
                        } else {
                            self.r.resolver().defer_unauth_destination(r)
                        };
                        self.decision(d, ErrorClass::Policy)?
                    }
                    None => Status::Dunno,
                }
            }
            "check_relay_domains" => match recipient.as_deref() {
                Some(r) => {
                    let d = self.r.resolver().reject_unauth_destination(r);
                    let s = self.decision(d, ErrorClass::Policy)?;
                    ignored_after(self, "check_relay_domains");
                    if s == Status::Dunno {
                        self.acl_permit(verb, RECIPIENT, r, None)
                    } else {
                        s
                    }
                }
                None => Status::Dunno,
            },
            "permit_sasl_authenticated" => {
                if self.st.sasl_username.is_some() {
                    self.acl_permit(verb, CLIENT, &namaddr, None)
                } else {
                    Status::Dunno
                }
            }
            "permit_mx_backup" => match recipient.as_deref() {
                Some(r) => match self.permit_mx_backup(r).await? {
                    Status::Ok => self.acl_permit(verb, RECIPIENT, r, None),
                    s => s,
                },
                None => Status::Dunno,
            },
            "reject_unknown_recipient_domain" => match recipient.as_deref() {
                Some(r) => self.reject_unknown_address(r, r, RECIPIENT).await?,
                None => Status::Dunno,
            },
            "reject_non_fqdn_recipient" => match recipient.as_deref() {
                Some(r) => self.reject_non_fqdn_address(r, r, RECIPIENT),
                None => Status::Dunno,
            },
            "check_recipient_ns_access"
            | "check_recipient_mx_access"
            | "check_recipient_a_access" => match recipient.as_deref() {
                Some(r) if !r.is_empty() => {
                    let t = table.unwrap_or_default();
                    let s = self
                        .check_server_access(t, r, kind_of(verb), r, RECIPIENT, def)
                        .await?;
                    self.forbid_allowlist(verb, s, r)?
                }
                _ => Status::Dunno,
            },
            "reject_rhsbl_recipient" => match (domain_arg, recipient.as_deref()) {
                (Some(rbl), Some(r)) => self.rhsbl(rbl, r, RECIPIENT).await,
                _ => Status::Dunno,
            },
            "check_recipient_maps" | "reject_unlisted_recipient" => match recipient.as_deref() {
                Some(r) if !r.is_empty() => {
                    let r = r.to_owned();
                    self.recipient_rcpt_maps(&r)?
                }
                _ => Status::Dunno,
            },
            "reject_multi_recipient_bounce" => {
                let at_rcpt = matches!(
                    self.st.stage,
                    tern_maillog::smtpd::Stage::Command(tern_smtp::command::Verb::Rcpt)
                );
                if sender.as_deref() == Some("") && self.st.rcpt_count > usize::from(!at_rcpt) {
                    self.reject(
                        ErrorClass::Policy,
                        codes.multi_recipient_bounce,
                        "5.5.3",
                        &format!("<{name}>: {class} rejected: Multi-recipient bounce"),
                    )
                } else {
                    Status::Dunno
                }
            }
            "check_etrn_access" => match self.st.etrn_name.clone() {
                Some(d) => {
                    let t = table.unwrap_or_default();
                    self.check_domain_access(t, &d, true, &d, super::ETRN, def)
                        .await?
                        .0
                }
                None => Status::Dunno,
            },
            _ => {
                let class_list = self.r.setup().classes.get(verb).cloned();
                let Some(body) = class_list else {
                    self.warn(&format!("unknown smtpd restriction: \"{raw}\""));
                    return Err(self.server_error());
                };
                if self.st.recursion > MAX_RECURSION {
                    self.warn(&format!(
                        "restriction class `{raw}' causes unreasonable recursion"
                    ));
                    return Err(self.server_error());
                }
                self.generic(&body, name, class, def).await?
            }
        };
        Ok(status)
    }

    /// reject_*_sender_login_mismatch: smtpd_sender_login_maps names the SASL logins
    /// that own a sender address (reject_sender_login_mismatch is Postfix's built-in
    /// class of the authenticated and unauthenticated checks).
    fn login_mismatch(&mut self, verb: &str, sender: &str) -> Result<Status> {
        if self.r.setup().sender_login_maps.is_empty() {
            return Ok(Status::Dunno);
        }
        let user = self.st.sasl_username.clone();
        let (authenticated, unauthenticated, allow_unknown) = match verb {
            "reject_authenticated_sender_login_mismatch" => (true, false, false),
            "reject_known_sender_login_mismatch" => (user.is_some(), user.is_none(), true),
            "reject_unauthenticated_sender_login_mismatch" => (false, true, false),
            _ => (true, true, false),
        };
        if let (true, Some(user)) = (authenticated, &user) {
            let owners = self.login_owners(sender)?;
            match owners {
                None if allow_unknown => return Ok(Status::Dunno),
                Some(list)
                    if list
                        .split([',', ' ', '\t', '\r', '\n'])
                        .any(|o| !o.is_empty() && o.to_lowercase() == user.to_lowercase()) =>
                {
                    return Ok(Status::Dunno);
                }
                _ => {
                    return Ok(self.reject(
                        ErrorClass::Policy,
                        553,
                        "5.7.1",
                        &format!("<{sender}>: Sender address rejected: not owned by user {user}"),
                    ));
                }
            }
        }
        if unauthenticated && user.is_none() && self.login_owners(sender)?.is_some() {
            return Ok(self.reject(
                ErrorClass::Policy,
                553,
                "5.7.1",
                &format!("<{sender}>: Sender address rejected: not logged in"),
            ));
        }
        Ok(Status::Dunno)
    }

    /// The owners smtpd_sender_login_maps lists for a sender (check_mail_addr_find()).
    fn login_owners(&mut self, sender: &str) -> Result<Option<String>> {
        let resolver = self.r.resolver();
        let rewritten = resolver.rewrite(tern_rewrite::Context::Local, sender);
        let Ok(resolved) = resolver.resolve(&rewritten) else {
            return Err(self.dict_retry(sender));
        };
        let warn: tern_maps::Warn = std::sync::Arc::new(crate::relay::warn);
        let maps = &self.r.setup().sender_login_maps;
        match crate::recipients::find_value(
            resolver,
            maps,
            "smtpd_sender_login_maps",
            &resolved.recipient,
            &warn,
        ) {
            Ok(owners) => Ok(owners),
            Err(crate::recipients::Failure::Retry) => Err(self.dict_retry(sender)),
            Err(crate::recipients::Failure::Config) => Err(self.server_error()),
        }
    }

    /// forbid_allowlist(): the MX/NS/A and reverse-name checks may not say OK.
    fn forbid_allowlist(&mut self, name: &str, status: Status, target: &str) -> Result<Status> {
        if !self.st.saved.discard && status == Status::Ok {
            self.warn(&format!("restriction {name} returns OK for {target}"));
            self.warn("this is not allowed for security reasons");
            self.warn("use DUNNO instead of OK if you want to make an exception");
            return Err(self.server_error());
        }
        Ok(status)
    }

    fn rbl_context<'c>(&'c self, class: &'c str, what: &'c str) -> RblContext<'c> {
        RblContext {
            class,
            what,
            client_name: &self.st.name,
            client_address: &self.st.addr,
            reverse_client_name: &self.st.reverse_name,
            helo_name: self.st.helo.as_deref().unwrap_or(""),
            // The null sender is `<>` in reply templates.
            sender: match self.st.sender.as_deref() {
                Some("") => "<>",
                other => other.unwrap_or(""),
            },
            recipient: self.st.recipient.as_deref().unwrap_or(""),
        }
    }

    /// reject_rhsbl_*: the domain of `target` (a host name, or an address's domain) looked
    /// up in `rbl` (reject_rbl_domain()).
    async fn rhsbl(&mut self, rbl: &str, target: &str, class: &'static str) -> Status {
        let domain = target
            .rsplit_once('@')
            .map_or(target, |(_, d)| d)
            .to_owned();
        let ctx = self.rbl_context(class, &domain);
        let hit = self
            .r
            .setup()
            .dns
            .rbl_domain_outcome(rbl, &domain, &ctx)
            .await;
        self.rbl_reply(hit, class)
    }

    /// "Safety: don't allowlist unauthorized recipients": at RCPT, a recipient that is
    /// not an authorised destination (permit_auth_destination) is never allow-listed.
    fn rcpt_unauthorized(&self) -> bool {
        use tern_maillog::smtpd::{Command, Stage};
        if self.st.stage != Stage::Command(Command::Rcpt) {
            return false;
        }
        self.st.recipient.as_deref().is_some_and(|r| {
            self.r.resolver().permit_auth_destination(r) != tern_rewrite::Decision::Permit
        })
    }

    /// An allow list's answer: listed is a permit; a failed lookup defers a later reject
    /// with Postfix's `450 4.7.1 <WHAT>: Client host rejected: Service unavailable`.
    fn dnswl(
        &mut self,
        outcome: &super::dns::RblOutcome,
        what: &str,
        verb: &str,
        namaddr: &str,
    ) -> Status {
        for w in &outcome.warnings {
            self.warn(w);
        }
        if outcome.soft {
            self.defer_if_reject(
                ErrorClass::Policy,
                450,
                "4.7.1",
                format!("<{what}>: {CLIENT} rejected: Service unavailable"),
            );
            return Status::Dunno;
        }
        if outcome.reply.is_some() {
            self.acl_permit(verb, CLIENT, namaddr, None)
        } else {
            Status::Dunno
        }
    }

    /// rbl_reject_reply()'s smtpd_check_reject() with the expanded reply.
    fn rbl_reply(&mut self, outcome: super::dns::RblOutcome, class: &str) -> Status {
        for w in &outcome.warnings {
            self.warn(w);
        }
        match outcome.reply {
            Some((code, dsn, text)) => {
                let dsn = super::dsn_fix(&dsn, class);
                self.reject(ErrorClass::Policy, code, &dsn, &text)
            }
            None => Status::Dunno,
        }
    }

    /// reject_invalid_hostaddr(): a `[address]` HELO argument.
    fn reject_invalid_hostaddr(&mut self, addr: &str, name: &str, class: &str) -> Status {
        let inner = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .filter(|a| !a.is_empty())
            .unwrap_or(addr);
        if valid_mailhost_addr(inner) {
            return Status::Dunno;
        }
        let code = self.r.setup().codes.invalid_hostname;
        self.reject(
            ErrorClass::Policy,
            code,
            "5.5.2",
            &format!("<{name}>: {class} rejected: invalid ip address"),
        )
    }

    /// reject_invalid_hostname().
    fn reject_invalid_hostname(&mut self, host: &str, name: &str, class: &str) -> Status {
        let test = dup_if_truncate(host);
        if tern_client::nexthop::parse::valid_hostname(test, false).is_ok() || valid_hostaddr(test)
        {
            return Status::Dunno;
        }
        let code = self.r.setup().codes.invalid_hostname;
        self.reject(
            ErrorClass::Policy,
            code,
            "5.5.2",
            &format!("<{name}>: {class} rejected: Invalid name"),
        )
    }

    /// reject_non_fqdn_hostname().
    fn reject_non_fqdn_hostname(&mut self, host: &str, name: &str, class: &str) -> Status {
        let test = dup_if_truncate(host);
        if valid_utf8_hostname(self.st.smtputf8, test) && test.contains('.') {
            return Status::Dunno;
        }
        let code = self.r.setup().codes.non_fqdn;
        self.reject(
            ErrorClass::Policy,
            code,
            "5.5.2",
            &format!("<{name}>: {class} rejected: need fully-qualified hostname"),
        )
    }

    /// reject_non_fqdn_address().
    fn reject_non_fqdn_address(&mut self, address: &str, name: &str, class: &str) -> Status {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        if domain.starts_with('[') && domain.ends_with(']') {
            return Status::Dunno;
        }
        let test = dup_if_truncate(domain);
        if !test.is_empty() && valid_utf8_hostname(self.st.smtputf8, test) && test.contains('.') {
            return Status::Dunno;
        }
        let code = self.r.setup().codes.non_fqdn;
        self.reject(
            ErrorClass::Policy,
            code,
            "4.5.2",
            &format!("<{name}>: {class} rejected: need fully-qualified address"),
        )
    }

    /// reject_unknown_hostname(): A/AAAA or MX.
    async fn reject_unknown_hostname(&mut self, host: &str, name: &str, class: &str) -> Status {
        let codes = self.r.setup().codes.clone();
        match self.r.setup().dns.host(host).await {
            HostLookup::Found | HostLookup::NullMx => Status::Dunno,
            HostLookup::PolicyDropped => {
                self.warn(&format!(
                    "{host}: address or MX lookup error: DNS reply filter drops all results"
                ));
                Status::Dunno
            }
            HostLookup::TempFail => self.defer_if_permit(
                codes.helo_tempfail_if_permit,
                ErrorClass::Policy,
                450,
                "4.7.1",
                format!("<{name}>: {class} rejected: Host not found"),
            ),
            other => {
                let why = if other == HostLookup::Malformed {
                    "Malformed DNS server reply"
                } else {
                    "Host not found"
                };
                self.reject(
                    ErrorClass::Policy,
                    codes.unknown_hostname,
                    "4.7.1",
                    &format!("<{name}>: {class} rejected: {why}"),
                )
            }
        }
    }

    /// reject_unknown_address(): resolve, skip final destinations and literals, then
    /// reject_unknown_mailhost().
    async fn reject_unknown_address(
        &mut self,
        address: &str,
        name: &str,
        class: &str,
    ) -> Result<Status> {
        let resolver = self.r.resolver();
        let rewritten = resolver.rewrite(tern_rewrite::Context::Local, address);
        let Ok(resolved) = resolver.resolve(&rewritten) else {
            return Err(self.dict_retry(address));
        };
        let Some((_, domain)) = resolved.recipient.rsplit_once('@') else {
            return Ok(Status::Dunno);
        };
        if resolved.class.is_final() || (domain.starts_with('[') && domain.ends_with(']')) {
            return Ok(Status::Dunno);
        }
        let domain = domain.to_owned();
        let codes = self.r.setup().codes.clone();
        let sender = class == SENDER;
        Ok(match self.r.setup().dns.mailhost(&domain).await {
            HostLookup::Found => Status::Dunno,
            HostLookup::PolicyDropped => {
                self.warn(&format!(
                    "{domain}: MX or address lookup error: DNS reply filter drops all results"
                ));
                Status::Dunno
            }
            HostLookup::NullMx => self.reject(
                ErrorClass::Policy,
                if sender { 550 } else { 556 },
                if sender { "4.7.27" } else { "4.1.10" },
                &format!(
                    "<{name}>: {class} rejected: Domain {domain} does not accept mail (nullMX)"
                ),
            ),
            HostLookup::TempFail => self.defer_if_permit(
                codes.address_tempfail_if_permit,
                ErrorClass::Policy,
                450,
                if sender { "4.1.8" } else { "4.1.2" },
                format!("<{name}>: {class} rejected: Domain not found"),
            ),
            other => {
                let why = if other == HostLookup::Malformed {
                    "Malformed DNS server reply"
                } else {
                    "Domain not found"
                };
                self.reject(
                    ErrorClass::Policy,
                    codes.unknown_address,
                    if sender { "4.1.8" } else { "4.1.2" },
                    &format!("<{name}>: {class} rejected: {why}"),
                )
            }
        })
    }
}

fn kind_of(verb: &str) -> ServerKind {
    if verb.ends_with("_mx_access") {
        ServerKind::Mx
    } else if verb.ends_with("_ns_access") {
        ServerKind::Ns
    } else {
        ServerKind::A
    }
}

/// dup_if_truncate(): a name ending in one dot (not two) loses it.
fn dup_if_truncate(name: &str) -> &str {
    if name.len() > 1 && name.ends_with('.') && !name.ends_with("..") {
        &name[..name.len() - 1]
    } else {
        name
    }
}

/// valid_hostaddr(): an IPv4 dotted quad or an IPv6 address.
fn valid_hostaddr(text: &str) -> bool {
    text.parse::<std::net::IpAddr>().is_ok()
}

/// valid_mailhost_addr(): an IPv4 address, or `IPv6:` and an IPv6 address.
fn valid_mailhost_addr(text: &str) -> bool {
    match text.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => {
            text[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => text.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// valid_utf8_hostname(): ASCII names by valid_hostname(); UTF-8 ones only with SMTPUTF8.
fn valid_utf8_hostname(smtputf8: bool, name: &str) -> bool {
    if name.is_ascii() {
        return tern_client::nexthop::parse::valid_hostname(name, false).is_ok();
    }
    smtputf8 && !name.split('.').any(str::is_empty)
}
