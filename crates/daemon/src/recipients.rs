//! Recipient validation at RCPT TO and VRFY: Postfix's reject_unlisted_recipient
//! (smtpd_check.c, check_rcpt_maps), applied implicitly after the restriction lists when
//! smtpd_reject_unlisted_recipient is on (the default), or where a list names
//! `reject_unlisted_recipient` (or its old name `check_recipient_maps`).
//!
//! The recipient is rewritten in the local context and resolved ([`Resolver`]); then, as
//! Postfix does:
//! 1. an address that recipient_canonical_maps, canonical_maps or virtual_alias_maps know
//!    is accepted (it will be rewritten into something deliverable);
//! 2. an address that resolves to the `error` transport is rejected with the resolver's
//!    reason (virtual alias domains: `User unknown in virtual alias table`, with
//!    unknown_virtual_alias_reject_code), one that resolves to `retry` is deferred (450);
//! 3. by address class: local -> local_recipient_maps (postmaster@, MAILER-DAEMON@ and the
//!    double-bounce sender are always known), virtual mailbox -> virtual_mailbox_maps,
//!    relay -> relay_recipient_maps, each with its unknown_*_reject_code; an empty
//!    parameter turns that class's check off; the default class is not checked.
//!
//! Every table is searched with mail_addr_find()'s default order (virtual(5):
//! `user+ext@domain`, `user@domain`, then `user+ext` and `user` when the domain is
//! $myorigin or local, then `@domain`) through [`tern_maps::query::address::find`].
//!
//! The tables are opened once per settings load, never per session. A table that cannot be
//! opened is Postfix's "surrogate": an `error:` line at open, and every lookup fails with
//! `TYPE:NAME is unavailable. REASON`, so mail to that class waits (451) instead of being
//! refused or let through.
//!
//! # Security
//! The recipient comes from the network. A lookup error is always a 4xx (`451 4.3.0
//! <rcpt>: Temporary lookup failure`, or `451 4.3.5 Server configuration error` for a
//! table that returns an empty value), never "not found" and never "found".

use std::cell::Cell;

use tern_maps::query::address::{Strategy, find};
use tern_maps::query::{Extension, Maps};
use tern_maps::{Map, MapError, OpenFlags, Warn};
use tern_rewrite::{Class, Context, Decision, Reply, Resolver};

/// A misconfigured reply code gets this instead (smtpd_check_reject()).
const SERVICE_UNAVAILABLE: (u16, &str, &str) = (450, "4.7.1", "Service unavailable");
/// smtpd_check_reject() truncates a reply to this many bytes.
const REPLY_MAX: usize = 510;

/// The parameters recipient validation reads (already `$name`-expanded, service
/// overrides applied).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub smtpd_reject_unlisted_recipient: bool,
    /// receive_override_options holds `no_unknown_recipient_checks`.
    pub no_unknown_recipient_checks: bool,
    pub local_recipient_maps: String,
    pub virtual_alias_maps: String,
    pub virtual_mailbox_maps: String,
    pub relay_recipient_maps: String,
    pub canonical_maps: String,
    pub recipient_canonical_maps: String,
    pub unknown_local_recipient_reject_code: u16,
    pub unknown_virtual_alias_reject_code: u16,
    pub unknown_virtual_mailbox_reject_code: u16,
    pub unknown_relay_recipient_reject_code: u16,
    pub show_user_unknown_table_name: bool,
    /// proxy_read_maps: the tables a `proxy:` entry may name.
    pub proxy_read_maps: String,
}

/// The opened recipient tables.
#[derive(Debug)]
pub struct RecipientMaps {
    params: Params,
    local: Vec<Box<dyn Map>>,
    virtual_alias: Vec<Box<dyn Map>>,
    virtual_mailbox: Vec<Box<dyn Map>>,
    relay: Vec<Box<dyn Map>>,
    canonical: Vec<Box<dyn Map>>,
    recipient_canonical: Vec<Box<dyn Map>>,
}

impl RecipientMaps {
    /// Opens the tables. `warn` and `error` take the lines Postfix logs as `warning:` and
    /// `error:`.
    pub fn open(params: Params, warn: &Warn, error: &dyn Fn(&str)) -> Self {
        let flags = OpenFlags {
            fold_fix: true,
            warn: warn.clone(),
        };
        let proxy_read = [params.proxy_read_maps.clone()];
        let open_all = |value: &str| -> Vec<Box<dyn Map>> {
            // A list that does not split is one table that cannot be opened.
            let specs = tern_config::list::split(value).unwrap_or_else(|_| vec![value.to_owned()]);
            specs
                .iter()
                .map(|spec| open_one(spec, &flags, &proxy_read, error))
                .collect()
        };
        RecipientMaps {
            local: open_all(&params.local_recipient_maps),
            virtual_alias: open_all(&params.virtual_alias_maps),
            virtual_mailbox: open_all(&params.virtual_mailbox_maps),
            relay: open_all(&params.relay_recipient_maps),
            canonical: open_all(&params.canonical_maps),
            recipient_canonical: open_all(&params.recipient_canonical_maps),
            params,
        }
    }

    /// Whether the implicit check runs after the restriction lists
    /// (smtpd_reject_unlisted_recipient).
    pub fn implicit(&self) -> bool {
        self.params.smtpd_reject_unlisted_recipient
    }

    /// check_recipient_rcpt_maps(): [`Decision::Dunno`] for a known (or unchecked)
    /// recipient, else the reject or deferral. `recipient` is the address as the client
    /// gave it (internal form); replies name it so.
    pub fn check(&self, resolver: &Resolver, recipient: &str, warn: &Warn) -> Decision {
        self.check_class(resolver, recipient, "Recipient address", warn)
    }

    /// check_rcpt_maps() for a recipient or (reject_unlisted_sender) a sender: `class` is
    /// `Recipient address` or `Sender address`, as the reply names it.
    pub fn check_class(
        &self,
        resolver: &Resolver,
        recipient: &str,
        class: &str,
        warn: &Warn,
    ) -> Decision {
        if self.params.no_unknown_recipient_checks || recipient.is_empty() {
            return Decision::Dunno;
        }
        match self.validate(resolver, recipient, class, warn) {
            Ok(decision) => decision,
            Err(Failure::Retry) => Decision::TempFail(reply(
                451,
                "4.3.0",
                &format!("<{recipient}>: Temporary lookup failure"),
            )),
            Err(Failure::Config) => {
                Decision::TempFail(reply(451, "4.3.5", "Server configuration error"))
            }
        }
    }

    fn validate(
        &self,
        resolver: &Resolver,
        recipient: &str,
        class: &str,
        warn: &Warn,
    ) -> Result<Decision, Failure> {
        let p = &self.params;
        // smtpd_resolve_addr(): rewrite in the local context, then resolve.
        let rewritten = resolver.rewrite(Context::Local, recipient);
        let resolved = resolver.resolve(&rewritten).map_err(|_| Failure::Retry)?;
        let address = resolved.recipient.as_str();
        let found =
            |maps: &[Box<dyn Map>], title: &str| lookup(resolver, maps, title, address, warn);
        if found(&self.recipient_canonical, "recipient_canonical_maps")?
            || found(&self.canonical, "canonical_maps")?
            || found(&self.virtual_alias, "virtual_alias_maps")?
        {
            return Ok(Decision::Dunno);
        }
        let rejected = |code: u16, dsn: &str, text: &str| {
            Decision::Reject(reply(
                code,
                dsn,
                &format!("<{recipient}>: {class} rejected: {text}"),
            ))
        };
        match resolved.transport.as_str() {
            "error" => {
                let default = if class == "Sender address" {
                    "5.1.0"
                } else {
                    "5.1.1"
                };
                let (dsn, text) = dsn_split(default, &resolved.nexthop);
                let code = if resolved.class == Class::VirtualAlias {
                    p.unknown_virtual_alias_reject_code
                } else {
                    550
                };
                return Ok(rejected(code, &crate::check::dsn_fix(&dsn, class), &text));
            }
            "retry" => {
                let default = if class == "Sender address" {
                    "4.1.0"
                } else {
                    "4.1.1"
                };
                let (dsn, text) = dsn_split(default, &resolved.nexthop);
                return Ok(rejected(450, &crate::check::dsn_fix(&dsn, class), &text));
            }
            _ => {}
        }
        let (on, maps, title, code, table) = match resolved.class {
            Class::Local => {
                if is_always_known(address, &resolver.settings.double_bounce_sender) {
                    return Ok(Decision::Dunno);
                }
                (
                    !p.local_recipient_maps.is_empty(),
                    &self.local,
                    "local_recipient_maps",
                    p.unknown_local_recipient_reject_code,
                    "local recipient table",
                )
            }
            Class::VirtualMailbox => (
                !p.virtual_mailbox_maps.is_empty(),
                &self.virtual_mailbox,
                "virtual_mailbox_maps",
                p.unknown_virtual_mailbox_reject_code,
                "virtual mailbox table",
            ),
            Class::Relay => (
                !p.relay_recipient_maps.is_empty(),
                &self.relay,
                "relay_recipient_maps",
                p.unknown_relay_recipient_reject_code,
                "relay recipient table",
            ),
            Class::VirtualAlias | Class::Default => return Ok(Decision::Dunno),
        };
        if !on || found(maps, title)? {
            return Ok(Decision::Dunno);
        }
        let text = if p.show_user_unknown_table_name {
            format!("User unknown in {table}")
        } else {
            "User unknown".to_owned()
        };
        // check_rcpt_maps(): no smtpd_dsn_fix() here.
        let dsn = if class == "Sender address" {
            "5.1.0"
        } else {
            "5.1.1"
        };
        Ok(rejected(code, dsn, &text))
    }
}

/// Why a lookup did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// DICT_ERR_RETRY: reject_dict_retry().
    Retry,
    /// Any other table error (an empty result): reject_server_error().
    Config,
}

/// recipient_delimiter and its companions, as the resolver's settings have them.
pub(crate) fn extension(resolver: &Resolver) -> Extension {
    let s = &resolver.settings;
    Extension {
        delimiters: s.recipient_delimiter.clone(),
        owner_request_special: s.owner_request_special,
        double_bounce_sender: s.double_bounce_sender.clone(),
    }
}

/// mail_addr_find() with the default strategy over one parameter's tables: whether
/// `address` is there.
fn lookup(
    resolver: &Resolver,
    maps: &[Box<dyn Map>],
    title: &str,
    address: &str,
    warn: &Warn,
) -> Result<bool, Failure> {
    Ok(find_value(resolver, maps, title, address, warn)?.is_some())
}

/// mail_addr_find() with the default strategy over one parameter's tables: the value
/// found for `address` (smtpd_sender_login_maps' owners, ...).
pub(crate) fn find_value(
    resolver: &Resolver,
    maps: &[Box<dyn Map>],
    title: &str,
    address: &str,
    warn: &Warn,
) -> Result<Option<String>, Failure> {
    if maps.is_empty() {
        return Ok(None);
    }
    let s = &resolver.settings;
    let ext = extension(resolver);
    // resolve_local() can fail on a table lookup: mail_addr_find() then fails too.
    let local_failed = Cell::new(false);
    let is_local = |domain: &str| {
        domain.to_lowercase() == s.myorigin.to_lowercase()
            || resolver.is_local(domain).unwrap_or_else(|_| {
                local_failed.set(true);
                false
            })
    };
    let table = Maps::new(title, maps.iter().map(AsRef::as_ref), warn.clone());
    let result = find(&table, address, &ext, Strategy::DEFAULT, &is_local);
    if local_failed.get() {
        return Err(Failure::Retry);
    }
    match result {
        Ok(found) => Ok(found.map(|f| f.value)),
        Err(MapError::Retry(_)) => Err(Failure::Retry),
        Err(MapError::Config(_)) => Err(Failure::Config),
    }
}

/// The local addresses that are never unknown: the double-bounce sender (absorbed by
/// qmgr), postmaster (absorbed by qmgr) and MAILER-DAEMON (written by bounce).
fn is_always_known(address: &str, double_bounce_sender: &str) -> bool {
    [double_bounce_sender, "postmaster", "MAILER-DAEMON"]
        .iter()
        .any(|name| {
            address
                .get(..name.len())
                .is_some_and(|head| head.to_lowercase() == name.to_lowercase())
                && address.as_bytes().get(name.len()) == Some(&b'@')
        })
}

/// dsn_split(): a leading RFC 3463 status (`5.1.1 text`) and the text after it, or the
/// default status and the whole text.
fn dsn_split(default: &str, text: &str) -> (String, String) {
    let (head, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    if crate::check::dsn_valid(head) {
        (head.to_owned(), rest.trim_start().to_owned())
    } else {
        (default.to_owned(), text.to_owned())
    }
}

/// smtpd_check_reject(): a reply code outside 400-599 is a configuration error; the
/// enhanced status class follows the code; the reply is cut at 510 bytes and made
/// printable.
fn reply(code: u16, dsn: &str, text: &str) -> Reply {
    let (code, dsn, text) = if (400..=599).contains(&code) {
        (code, dsn, text)
    } else {
        crate::relay::warn(&format!(
            "SMTP reply code configuration error: {code} {dsn} {text}"
        ));
        SERVICE_UNAVAILABLE
    };
    let class = if code >= 500 { '5' } else { '4' };
    let dsn = format!("{class}{}", dsn.get(1..).unwrap_or(""));
    let mut text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // "CODE DSN " comes first in the 510 bytes.
    let room = REPLY_MAX.saturating_sub(5 + dsn.len());
    if text.len() > room {
        let mut cut = room;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Reply { code, dsn, text }
}

/// Opens one access table for the restrictions (keys folded, warnings to the log), a
/// surrogate when it cannot be opened.
pub(crate) fn open_table(
    spec: &str,
    proxy_read_maps: &[String],
    error: &dyn Fn(&str),
) -> Box<dyn Map> {
    let flags = OpenFlags {
        fold_fix: true,
        warn: std::sync::Arc::new(crate::relay::warn),
    };
    open_one(spec, &flags, proxy_read_maps, error)
}

/// [`open_table`] without case folding of the keys (header_checks and body_checks look
/// the text up as it came).
pub(crate) fn open_table_exact(
    spec: &str,
    proxy_read_maps: &[String],
    error: &dyn Fn(&str),
) -> Box<dyn Map> {
    let flags = OpenFlags {
        fold_fix: false,
        warn: std::sync::Arc::new(crate::relay::warn),
    };
    open_one(spec, &flags, proxy_read_maps, error)
}

/// Opens one table; a table that cannot be opened becomes a surrogate (dict_surrogate.c).
fn open_one(
    spec: &str,
    flags: &OpenFlags,
    proxy_read_maps: &[String],
    error: &dyn Fn(&str),
) -> Box<dyn Map> {
    let opened = match spec.strip_prefix("proxy:") {
        Some(inner) => tern_maps::proxy::open_checked(inner, flags, proxy_read_maps),
        None => tern_maps::open(spec, flags),
    };
    opened.unwrap_or_else(|err| {
        let reason = err.to_string();
        error(&reason);
        Box::new(Surrogate {
            spec: spec.to_owned(),
            reason,
            warn: flags.warn.clone(),
        })
    })
}

/// A table that could not be opened: every lookup fails, with a warning each time.
struct Surrogate {
    spec: String,
    reason: String,
    warn: Warn,
}

impl std::fmt::Debug for Surrogate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Surrogate")
            .field("spec", &self.spec)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl Map for Surrogate {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, _key: &str) -> Result<Option<String>, MapError> {
        let text = format!("{} is unavailable. {}", self.spec, self.reason);
        (self.warn)(&text);
        Err(MapError::Retry(text))
    }
}

#[cfg(test)]
#[path = "recipients_tests.rs"]
mod tests;
