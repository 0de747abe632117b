//! virtual(8): delivery to mailboxes of addresses that have no UNIX account
//! (src/virtual/mailbox.c, maildir.c, unknown.c, recipient.c).
//!
//! For a recipient `user@domain` (folded to lower case): virtual_mailbox_maps gives the
//! path under virtual_mailbox_base (a result ending in `/` is a Maildir, anything else a
//! mailbox file); virtual_uid_maps and virtual_gid_maps give the ids to deliver with
//! (`static:5000` as often as not); a uid below virtual_minimum_uid, a gid of 0 and an
//! address missing from either map are configuration errors that defer (`4.3.5 mail system
//! configuration error`, with a warning naming the table). No mailbox: `5.1.1 unknown user:
//! "user@domain"`. The lookups are mail_addr_find(3)'s (`user+ext@domain`, `user@domain`,
//! `@domain`). Everything happens with the mailbox owner's ids; the mailbox file is locked
//! per virtual_mailbox_lock and may not grow past virtual_mailbox_limit (which Postfix
//! applies to Maildir files too, as a process file size limit).
//!
//! virtual(8) does not read virtual_mailbox_domains: trivial-rewrite routes those domains
//! to it (virtual_transport), so whatever reaches this agent is looked up as it is.
//!
//! # Security
//! The recipient address comes from the network (through the queue). It is only used as a
//! lookup key; the path comes from the administrator's table, and the uid is checked
//! against virtual_minimum_uid so that a table entry cannot make the agent write as root
//! or a system account.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

use tern_config::config::Config;
use tern_maps::query::address::{Strategy, find};
use tern_maps::query::{Extension, Maps};
use tern_maps::{Map, OpenFlags};

use crate::mailbox::lock::{LockKind, LockParams};
use crate::mailbox::maildir::{self, MaildirParams};
use crate::mailbox::mbox::{self, MboxOptions, MboxParams, Rights};
use crate::mailbox::{CopyInfo, MailboxError, Owner};
use crate::request::Delivered;

/// virtual(8)'s parameters, as read from main.cf and the service's `-o` overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualSettings {
    pub mailbox_maps: Vec<String>,
    pub uid_maps: Vec<String>,
    pub gid_maps: Vec<String>,
    pub mailbox_base: String,
    pub minimum_uid: u64,
    pub mailbox_limit: u64,
    pub locks: Vec<LockKind>,
    pub lock: LockParams,
    pub strict_owner: bool,
    pub recipient_delimiter: String,
    pub enable_original_recipient: bool,
    /// gethostname(), for Maildir file names.
    pub hostname: String,
}

/// A configuration problem that stops virtual(8) (Postfix: `virtual: fatal: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VirtualError {
    #[error("{0}")]
    Config(String),
}

impl VirtualSettings {
    /// Reads the settings; `overrides` are the transport's master.cf `-o name=value`
    /// (they win over main.cf and are expanded in the same way).
    #[allow(clippy::implicit_hasher)] // the daemon's overrides are a plain HashMap
    pub fn from_config(
        config: &Config,
        overrides: &HashMap<String, String>,
    ) -> Result<VirtualSettings, VirtualError> {
        let get = |name: &str| -> Result<String, VirtualError> {
            let text = match overrides.get(name) {
                Some(v) => {
                    config
                        .expand(v, None)
                        .map_err(|e| VirtualError::Config(e.to_string()))?
                        .text
                }
                None => config
                    .expanded(name)
                    .map_err(|e| VirtualError::Config(e.to_string()))?
                    .unwrap_or_default(),
            };
            Ok(text)
        };
        let list = |name: &str| -> Result<Vec<String>, VirtualError> {
            tern_config::list::split(&get(name)?).map_err(|e| VirtualError::Config(e.to_string()))
        };
        let number = |name: &str| -> Result<u64, VirtualError> {
            let v = get(name)?;
            parse_size(&v).ok_or_else(|| {
                VirtualError::Config(format!("bad numerical configuration: {name} = {v}"))
            })
        };
        let time = |name: &str| -> Result<std::time::Duration, VirtualError> {
            let v = get(name)?;
            parse_time(&v).ok_or_else(|| {
                VirtualError::Config(format!("invalid {name} parameter value: \"{v}\""))
            })
        };
        let boolean = |name: &str| -> Result<bool, VirtualError> {
            Ok(get(name)?.eq_ignore_ascii_case("yes"))
        };
        let mailbox_base = get("virtual_mailbox_base")?;
        // virtual.c requires a non-empty base (its minimum length is 1) and mailbox.c an
        // absolute one.
        if mailbox_base.is_empty() {
            return Err(VirtualError::Config(
                "bad parameter value: virtual_mailbox_base = ".to_owned(),
            ));
        }
        if !mailbox_base.starts_with('/') {
            return Err(VirtualError::Config(format!(
                "do not specify relative pathname: virtual_mailbox_base = {mailbox_base}"
            )));
        }
        let locks = LockKind::parse_list("virtual_mailbox_lock", &get("virtual_mailbox_lock")?)
            .map_err(VirtualError::Config)?;
        Ok(VirtualSettings {
            mailbox_maps: list("virtual_mailbox_maps")?,
            uid_maps: list("virtual_uid_maps")?,
            gid_maps: list("virtual_gid_maps")?,
            mailbox_base,
            minimum_uid: number("virtual_minimum_uid")?,
            mailbox_limit: number("virtual_mailbox_limit")?,
            locks,
            lock: LockParams {
                attempts: u32::try_from(number("deliver_lock_attempts")?).unwrap_or(u32::MAX),
                delay: time("deliver_lock_delay")?,
                stale: time("stale_lock_time")?,
            },
            strict_owner: boolean("strict_mailbox_ownership")?,
            recipient_delimiter: get("recipient_delimiter")?,
            enable_original_recipient: boolean("enable_original_recipient")?,
            hostname: nix::unistd::gethostname().map_or_else(
                |_| "localhost".to_owned(),
                |h| h.to_string_lossy().into_owned(),
            ),
        })
    }
}

/// virtual(8) with its tables open.
#[derive(Debug)]
pub struct VirtualAgent {
    pub settings: VirtualSettings,
    mailbox_maps: Vec<Box<dyn Map>>,
    uid_maps: Vec<Box<dyn Map>>,
    gid_maps: Vec<Box<dyn Map>>,
}

/// One recipient as the queue manager hands it over.
#[derive(Debug, Clone, Copy)]
pub struct VirtualRecipient<'a> {
    /// The address (after rewriting): the lookup key and `Delivered-To:`.
    pub address: &'a str,
    /// The original recipient (`X-Original-To:`); empty: the same as `address`.
    pub orig_rcpt: &'a str,
    /// A `sendmail -bv` probe: the lookups are made and the answer given, nothing is
    /// written (virtual's mailbox.c/maildir.c: "delivers to mailbox"/"delivers to
    /// maildir").
    pub verify: bool,
}

impl VirtualAgent {
    /// Opens the three tables.
    pub fn open(settings: VirtualSettings) -> Result<VirtualAgent, VirtualError> {
        let open = |specs: &[String]| -> Result<Vec<Box<dyn Map>>, VirtualError> {
            specs
                .iter()
                .map(|s| {
                    tern_maps::open(s, &OpenFlags::default())
                        .map_err(|e| VirtualError::Config(e.to_string()))
                })
                .collect()
        };
        Ok(VirtualAgent {
            mailbox_maps: open(&settings.mailbox_maps)?,
            uid_maps: open(&settings.uid_maps)?,
            gid_maps: open(&settings.gid_maps)?,
            settings,
        })
    }

    /// Delivers one message to one recipient. `warn` receives the warnings virtual(8)
    /// logs (`virtual: warning: ...`).
    pub fn deliver(
        &self,
        rcpt: VirtualRecipient<'_>,
        sender: &str,
        content: &mut dyn BufRead,
        warn: &mut dyn FnMut(&str),
    ) -> Delivered {
        let s = &self.settings;
        let user = rcpt.address.to_lowercase();
        let config_error = || Delivered::Deferred {
            dsn: "4.3.5".to_owned(),
            text: "mail system configuration error".to_owned(),
        };
        let found = match self.lookup(&self.mailbox_maps, "virtual_mailbox_maps", &user) {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Delivered::Bounced {
                    dsn: "5.1.1".to_owned(),
                    text: format!("unknown user: \"{user}\""),
                };
            }
            Err(e) => {
                warn(&format!("table virtual_mailbox_maps: lookup {user}: {e}"));
                return config_error();
            }
        };
        let mailbox = format!("{}/{found}", s.mailbox_base);
        let Ok(Some(uid)) = self.lookup(&self.uid_maps, "virtual_uid_maps", &user) else {
            warn(&format!("recipient {user}: not found in virtual_uid_maps"));
            return config_error();
        };
        let uid_n = atol(&uid);
        if uid_n < 0 || u64::try_from(uid_n).unwrap_or(0) < s.minimum_uid {
            warn(&format!(
                "recipient {user}: bad uid {uid} in virtual_uid_maps"
            ));
            return config_error();
        }
        let Ok(Some(gid)) = self.lookup(&self.gid_maps, "virtual_gid_maps", &user) else {
            warn(&format!("recipient {user}: not found in virtual_gid_maps"));
            return config_error();
        };
        let gid_n = atol(&gid);
        if gid_n <= 0 {
            warn(&format!(
                "recipient {user}: bad gid {gid} in virtual_gid_maps"
            ));
            return config_error();
        }
        let owner = Owner {
            uid: u32::try_from(uid_n).unwrap_or(u32::MAX),
            gid: u32::try_from(gid_n).unwrap_or(u32::MAX),
        };
        if rcpt.verify {
            return Delivered::Sent {
                dsn: "2.0.0".to_owned(),
                text: if mailbox.ends_with('/') {
                    "delivers to maildir"
                } else {
                    "delivers to mailbox"
                }
                .to_owned(),
            };
        }
        let orig = if rcpt.orig_rcpt.is_empty() {
            rcpt.address
        } else {
            rcpt.orig_rcpt
        };
        let info = CopyInfo {
            sender,
            arrival: 0,
            delivered_to: Some(rcpt.address),
            original_to: s.enable_original_recipient.then_some(orig),
            return_path: true,
        };
        let (result, prefix, done) = if mailbox.ends_with('/') {
            let params = MaildirParams {
                owner: Some(owner),
                default_dsn: "4.2.0",
                size_limit: s.mailbox_limit,
            };
            let r = maildir::deliver_with(
                &PathBuf::from(&mailbox),
                &params,
                &info,
                content,
                &s.hostname,
            )
            .map(|_| ());
            (
                r,
                "maildir delivery failed: ".to_owned(),
                "delivered to maildir",
            )
        } else {
            let params = MboxParams {
                rights: Rights::User(owner),
                default_dsn: "4.2.0",
                size_limit: s.mailbox_limit,
                strict_owner: s.strict_owner,
                dotlock_may_fail: false,
                virtual_agent: true,
                lock: s.lock,
            };
            let opts = MboxOptions::mbox(s.locks.clone());
            let r = mbox::deliver_with(&PathBuf::from(&mailbox), &params, &opts, &info, content);
            (
                r,
                format!("delivery failed to mailbox {mailbox}: "),
                "delivered to mailbox",
            )
        };
        match result {
            Ok(()) => Delivered::Sent {
                dsn: "2.0.0".to_owned(),
                text: done.to_owned(),
            },
            Err(e) => failed(&e, &prefix, &user, warn),
        }
    }

    /// mail_addr_find() over a list of tables, extension stripped as a fallback.
    fn lookup(
        &self,
        maps: &[Box<dyn Map>],
        title: &str,
        user: &str,
    ) -> Result<Option<String>, tern_maps::MapError> {
        let list = Maps::new(
            title,
            maps.iter().map(|m| m.as_ref() as &dyn Map),
            tern_maps::no_warnings(),
        );
        let ext = Extension::new(&self.settings.recipient_delimiter);
        // XXX: mail_addr_find also tries the bare local part when the domain is local
        // ($myorigin, $mydestination, interfaces); virtual domains never are, so this
        // agent does not compute it.
        Ok(find(&list, user, &ext, Strategy::DEFAULT, &|_| false)?.map(|f| f.value))
    }
}

#[allow(clippy::implicit_hasher)] // the daemon's overrides are a plain HashMap
/// One recipient with the settings of `config` and the transport's `-o` overrides: opens
/// the tables each time (the agent proper keeps a [`VirtualAgent`]).
pub fn deliver_one(
    config: &Config,
    overrides: &HashMap<String, String>,
    rcpt: VirtualRecipient<'_>,
    sender: &str,
    content: &mut dyn BufRead,
    warn: &mut dyn FnMut(&str),
) -> Result<Delivered, VirtualError> {
    let agent = VirtualAgent::open(VirtualSettings::from_config(config, overrides)?)?;
    Ok(agent.deliver(rcpt, sender, content, warn))
}

fn failed(e: &MailboxError, prefix: &str, user: &str, warn: &mut dyn FnMut(&str)) -> Delivered {
    for w in &e.warnings {
        if w.starts_with("destination ") {
            warn(&format!("recipient {user}: {w}"));
        } else {
            warn(w);
        }
    }
    let text = e.prefixed(prefix);
    if e.temporary {
        Delivered::Deferred {
            dsn: e.dsn.clone(),
            text,
        }
    } else {
        Delivered::Bounced {
            dsn: e.dsn.clone(),
            text,
        }
    }
}

/// atol(3): leading white space, an optional sign, digits; anything else ends it (0 for
/// none), as virtual(8) reads the uid and gid results.
fn atol(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| {
            n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg { -n } else { n }
}

/// A size or count parameter (digits, as Postfix's long parameters).
fn parse_size(v: &str) -> Option<u64> {
    v.trim().parse().ok()
}

use crate::local::settings::parse_time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atol_as_c() {
        let table: &[(&str, i64)] = &[("5000", 5000), (" 12x", 12), ("-3", -3), ("x", 0), ("", 0)];
        for (s, want) in table {
            assert_eq!(atol(s), *want, "{s}");
        }
    }

    #[test]
    fn times() {
        let table: &[(&str, Option<u64>)] = &[
            ("1s", Some(1)),
            ("500s", Some(500)),
            ("500", Some(500)),
            ("2m", Some(120)),
            ("1x", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_time(s).map(|d| d.as_secs()), *want, "{s}");
        }
    }
}
