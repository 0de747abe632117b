//! cleanup(8)'s address rewriting, put together (cleanup_addr.c, cleanup_message.c,
//! cleanup_out_recipient.c): [`CleanupRewriter`] holds the tables and lists once per
//! settings load, and rewrites
//! - the envelope sender: trivial-rewrite in the local context, `MAILER-DAEMON@$myorigin`
//!   becomes the null sender, then sender_canonical_maps, canonical_maps and
//!   masquerading, each where its classes say `envelope_sender`;
//! - an envelope recipient: trivial-rewrite in the local context (an empty one is
//!   empty_address_recipient), recipient_canonical_maps, canonical_maps, masquerading
//!   (`envelope_recipient`), then virtual_alias_maps expansion ([`Self::expand`]);
//! - an address of a sender header (From:, Sender:, Reply-To:, Errors-To:, Resent-From:
//!   ...) or a recipient header (To:, Cc:, Bcc:, Resent-To: ...): trivial-rewrite in the
//!   header context (`local`, or `remote` with remote_header_rewrite_domain), then the
//!   canonical maps and masquerading of the `header_sender` / `header_recipient`
//!   classes. Virtual aliasing never touches headers.
//!
//! Trust: addresses come from the network; tables and main.cf from the administrator.
//! Warnings go to the caller's `warn` with Postfix's text (`QUEUEID: ...`).

use std::sync::Arc;

use tern_config::config::Config;
use tern_maps::query::{Extension, Maps};
use tern_maps::{Map, Warn};

use crate::address::Context;
use crate::canonical::{ALL_CLASSES, Classes, Fault, Lookup, map11};
use crate::masquerade::Masquerade;
use crate::matchlist::MatchList;
use crate::resolve::Resolver;
use crate::settings::{CleanupSettings, SetupError};
use crate::virtual_alias::{Dedup, Limits, expand};

/// Which kind of header an address is in (header_opts.c's HDR_OPT_SENDER / _RECIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRole {
    Sender,
    Recipient,
}

/// Which class an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    EnvelopeSender,
    EnvelopeRecipient,
    HeaderSender,
    HeaderRecipient,
}

/// The tables and lists of cleanup's address rewriting, opened once.
pub struct CleanupRewriter {
    pub resolver: Arc<Resolver>,
    pub settings: CleanupSettings,
    canonical: Vec<Box<dyn Map>>,
    sender_canonical: Vec<Box<dyn Map>>,
    recipient_canonical: Vec<Box<dyn Map>>,
    virtual_alias: Vec<Box<dyn Map>>,
    sender_bcc: Vec<Box<dyn Map>>,
    recipient_bcc: Vec<Box<dyn Map>>,
    canonical_classes: Classes,
    sender_classes: Classes,
    recipient_classes: Classes,
    masquerade_classes: Classes,
    masquerade: Masquerade,
    /// propagate_unmatched_extensions holds `canonical` / `virtual`.
    propagate_canonical: bool,
    propagate_virtual: bool,
    warn: Warn,
}

impl std::fmt::Debug for CleanupRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanupRewriter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CleanupRewriter {
    /// Reads the parameters and opens the tables; `warn` takes Postfix's warnings (table
    /// problems at lookup time).
    pub fn from_config(
        config: &Config,
        resolver: Arc<Resolver>,
        warn: Warn,
    ) -> Result<CleanupRewriter, SetupError> {
        CleanupRewriter::new(CleanupSettings::from_config(config)?, resolver, warn)
    }

    /// Opens the tables `settings` names.
    pub fn new(
        settings: CleanupSettings,
        resolver: Arc<Resolver>,
        warn: Warn,
    ) -> Result<CleanupRewriter, SetupError> {
        let flags = tern_maps::OpenFlags {
            fold_fix: true,
            warn: warn.clone(),
        };
        let open = |spec: &str| tern_maps::open(spec, &flags);
        let maps = |name: &str, value: &str| crate::resolve::open_maps(name, value, &flags);
        let classes = |value: &str, allowed: &[&str]| -> Result<Classes, SetupError> {
            Classes::parse("canonical_classes", value, allowed)
        };
        let exceptions = if settings.masquerade_exceptions.is_empty() {
            None
        } else {
            Some(MatchList::parse(
                "masquerade_exceptions",
                &settings.masquerade_exceptions,
                false,
                &open,
            )?)
        };
        let propagate =
            tern_config::list::split(&settings.propagate_unmatched_extensions).unwrap_or_default();
        let has = |name: &str| propagate.iter().any(|p| p == name);
        for p in &propagate {
            if ![
                "canonical",
                "virtual",
                "alias",
                "forward",
                "include",
                "generic",
            ]
            .contains(&p.as_str())
            {
                return Err(SetupError::UnknownName {
                    context: "propagate_unmatched_extensions".to_owned(),
                    name: p.clone(),
                    value: settings.propagate_unmatched_extensions.clone(),
                });
            }
        }
        Ok(CleanupRewriter {
            canonical: maps("canonical_maps", &settings.canonical_maps)?,
            sender_canonical: maps("sender_canonical_maps", &settings.sender_canonical_maps)?,
            recipient_canonical: maps(
                "recipient_canonical_maps",
                &settings.recipient_canonical_maps,
            )?,
            virtual_alias: maps("virtual_alias_maps", &settings.virtual_alias_maps)?,
            sender_bcc: maps("sender_bcc_maps", &settings.sender_bcc_maps)?,
            recipient_bcc: maps("recipient_bcc_maps", &settings.recipient_bcc_maps)?,
            canonical_classes: classes(&settings.canonical_classes, &ALL_CLASSES)?,
            sender_classes: classes(
                &settings.sender_canonical_classes,
                &["envelope_sender", "header_sender"],
            )?,
            recipient_classes: classes(
                &settings.recipient_canonical_classes,
                &["envelope_recipient", "header_recipient"],
            )?,
            masquerade_classes: Classes::parse(
                "masquerade_classes",
                &settings.masquerade_classes,
                &ALL_CLASSES,
            )?,
            masquerade: Masquerade::new(&settings.masquerade_domains, exceptions),
            propagate_canonical: has("canonical"),
            propagate_virtual: has("virtual"),
            settings,
            resolver,
            warn,
        })
    }

    /// cleanup_addr_sender(): the envelope sender as it goes into the queue file.
    pub fn sender(&self, address: &str, queue_id: &str) -> Result<String, Fault> {
        let mut addr = self.resolver.rewrite(Context::Local, address);
        if addr.len() > "MAILER-DAEMON@".len()
            && addr.is_char_boundary("MAILER-DAEMON@".len())
            && addr[.."MAILER-DAEMON@".len()].eq_ignore_ascii_case("MAILER-DAEMON@")
        {
            let daemon = self.resolver.rewrite(Context::Local, "MAILER-DAEMON");
            if addr.to_lowercase() == daemon.to_lowercase() {
                addr.clear();
            }
        }
        self.maps_and_masquerade(addr, queue_id, Where::EnvelopeSender)
    }

    /// cleanup_addr_recipient() before virtual aliasing: the rewritten recipient.
    pub fn recipient(&self, address: &str, queue_id: &str) -> Result<String, Fault> {
        let address = if address.is_empty() {
            self.resolver.settings.empty_address_recipient.as_str()
        } else {
            address
        };
        let addr = self.resolver.rewrite(Context::Local, address);
        self.maps_and_masquerade(addr, queue_id, Where::EnvelopeRecipient)
    }

    /// sender_bcc_maps for the envelope sender `clean` (as [`Self::sender`] made it):
    /// the automatic BCC address, if any (cleanup_addr_sender(); the extension is not
    /// passed on).
    pub fn sender_bcc(&self, clean: &str, queue_id: &str) -> Result<Option<String>, Fault> {
        self.bcc_lookup("sender_bcc_maps", &self.sender_bcc, clean, queue_id)
    }

    /// recipient_bcc_maps for a recipient `clean` (as [`Self::recipient`] made it).
    pub fn recipient_bcc(&self, clean: &str, queue_id: &str) -> Result<Option<String>, Fault> {
        self.bcc_lookup("recipient_bcc_maps", &self.recipient_bcc, clean, queue_id)
    }

    /// always_bcc, when set.
    pub fn always_bcc(&self) -> Option<&str> {
        let a = self.settings.always_bcc.trim();
        (!a.is_empty()).then_some(a)
    }

    fn bcc_lookup(
        &self,
        title: &str,
        tables: &[Box<dyn Map>],
        clean: &str,
        queue_id: &str,
    ) -> Result<Option<String>, Fault> {
        if tables.is_empty() || clean.is_empty() {
            return Ok(None);
        }
        self.with_lookup(title, tables, false, |l| {
            crate::canonical::mail_addr_map(l, clean, &*self.warn)
                .map(|found| found.and_then(|v| v.into_iter().next()))
                .map_err(|_| {
                    (self.warn)(&format!(
                        "{queue_id}: {title} map lookup problem -- message not accepted, \
                             try again later"
                    ));
                    Fault::Lookup
                })
        })
    }

    /// Whether virtual_alias_maps is set (cleanup then expands every recipient).
    pub fn has_virtual_alias_maps(&self) -> bool {
        !self.virtual_alias.is_empty()
    }

    /// cleanup_map1n_internal() over virtual_alias_maps: the recipients `address` (already
    /// rewritten by [`Self::recipient`]) expands to; itself when there is no table.
    pub fn expand(&self, address: &str, queue_id: &str) -> Result<Vec<String>, Fault> {
        if self.virtual_alias.is_empty() {
            return Ok(vec![address.to_owned()]);
        }
        let s = &self.settings;
        let limits = Limits {
            recursion: s.virtual_alias_recursion_limit,
            expansion: s.virtual_alias_expansion_limit,
            address_length: s.virtual_alias_address_length_limit,
        };
        self.with_lookup(
            "virtual_alias_maps",
            &self.virtual_alias,
            self.propagate_virtual,
            |l| expand(l, address, limits, queue_id, &*self.warn),
        )
    }

    /// A fresh duplicate filter for one message.
    pub fn dedup(&self) -> Dedup {
        Dedup::new(
            self.settings.duplicate_filter_limit,
            self.settings.enable_original_recipient,
        )
    }

    /// cleanup_rewrite_sender() / cleanup_rewrite_recip() for one address of a header:
    /// the new address, or `None` when it did not change.
    pub fn header_address(
        &self,
        role: HeaderRole,
        context: Context,
        address: &str,
        queue_id: &str,
    ) -> Result<Option<String>, Fault> {
        let addr = self.resolver.rewrite(context, address);
        let new = match role {
            HeaderRole::Sender => self.maps_and_masquerade(addr, queue_id, Where::HeaderSender)?,
            HeaderRole::Recipient => {
                self.maps_and_masquerade(addr, queue_id, Where::HeaderRecipient)?
            }
        };
        Ok((new != address).then_some(new))
    }

    /// The specific canonical table (sender's or recipient's), canonical_maps, then
    /// masquerading, each when its class flag is on.
    fn maps_and_masquerade(
        &self,
        mut addr: String,
        queue_id: &str,
        place: Where,
    ) -> Result<String, Fault> {
        let pick = |c: Classes| match place {
            Where::EnvelopeSender => c.envelope_sender,
            Where::EnvelopeRecipient => c.envelope_recipient,
            Where::HeaderSender => c.header_sender,
            Where::HeaderRecipient => c.header_recipient,
        };
        let sender = matches!(place, Where::EnvelopeSender | Where::HeaderSender);
        let specific = pick(if sender {
            self.sender_classes
        } else {
            self.recipient_classes
        });
        let common = pick(self.canonical_classes);
        let masquerade = pick(self.masquerade_classes);
        let (title, tables) = if sender {
            ("sender_canonical_maps", &self.sender_canonical)
        } else {
            ("recipient_canonical_maps", &self.recipient_canonical)
        };
        if specific && !tables.is_empty() {
            addr = self
                .with_lookup(title, tables, self.propagate_canonical, |l| {
                    map11(l, &addr, queue_id, &*self.warn)
                })?
                .0;
        }
        if common && !self.canonical.is_empty() {
            addr = self
                .with_lookup(
                    "canonical_maps",
                    &self.canonical,
                    self.propagate_canonical,
                    |l| map11(l, &addr, queue_id, &*self.warn),
                )?
                .0;
        }
        if masquerade && !self.masquerade.is_empty() {
            match self.masquerade.apply(&addr) {
                Ok(Some(new)) => addr = new,
                Ok(None) => {}
                Err(_) => {
                    // cleanup_masquerade.c logs this one as info, not warning.
                    (self.warn)(&format!(
                        "{queue_id}: masquerade_exceptions map lookup problem -- message not \
                         accepted, try again later"
                    ));
                    return Err(Fault::Lookup);
                }
            }
        }
        Ok(addr)
    }

    fn with_lookup<T>(
        &self,
        title: &str,
        tables: &[Box<dyn Map>],
        propagate: bool,
        f: impl FnOnce(&Lookup<'_>) -> T,
    ) -> T {
        let rs = &self.resolver.settings;
        let ext = Extension {
            delimiters: rs.recipient_delimiter.clone(),
            owner_request_special: rs.owner_request_special,
            double_bounce_sender: rs.double_bounce_sender.clone(),
        };
        let table = Maps::new(title, tables.iter().map(AsRef::as_ref), self.warn.clone());
        let is_local = |domain: &str| {
            domain.eq_ignore_ascii_case(&rs.myorigin)
                || self.resolver.is_local(domain).unwrap_or(false)
        };
        let canon = |a: &str| self.resolver.rewrite(Context::Local, a);
        let l = Lookup {
            table: &table,
            title,
            ext: &ext,
            is_local: &is_local,
            canon: &canon,
            propagate,
        };
        f(&l)
    }
}

#[cfg(test)]
#[path = "cleanup_addr_tests.rs"]
mod tests;
