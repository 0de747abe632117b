//! local(8): delivery to local recipients, as Postfix 3.7's local(8) does it.
//!
//! For each recipient of a [`DeliveryRequest`] ([`deliver`]): the local part is folded to
//! lower case and split at recipient_delimiter (`user+tag`); a `Delivered-To:` header naming
//! the recipient is a loop (`5.4.6 mail forwarding loop for ADDR`); alias_maps come first
//! (the full local part, then the bare user), then the user's `.forward` (forward_path),
//! then the mailbox (mailbox_transport(_maps), mailbox_command(_maps), home_mailbox,
//! mail_spool_directory), then unknown users (fallback_transport(_maps), luser_relay, else
//! `5.1.1 unknown user: "x"`). Alias, forward and include results are cut into addresses,
//! `|command`, `/file`, `~/file` and `:include:/path` ([`tokens`]); an address that resolves
//! to this same transport is delivered here, recursively; any other is forwarded
//! ([`Delivered::Forward`]).
//!
//! - [`settings`]: the parameters.
//! - [`tokens`]: cutting an alias or `.forward` value into destinations.
//! - [`expand`]: the recursion (aliases, `.forward`, `:include:`, resolving, unknown users).
//! - [`targets`]: the final destinations (mailbox, command, file, forwarding, bounces).
//! - [`command`]: running a command with a user's rights (shared with pipe(8)).
//! - [`message`]: reading the queue file's content and its `Delivered-To:` headers.
//! - [`mailboxes`]: the seam to the mbox and Maildir writers.
//! - [`userfile`]: reading `.forward` and `:include:` files with the user's rights.
//!
//! Rights (local(8) "SECURITY"): commands and files named in an alias run with the rights
//! of the alias table's owner, or default_privs when root owns it; those in a `.forward`
//! with the user's; those in an `:include:` file with its owner's when the including
//! rights were root's. Never root: a command or file delivery with uid or gid 0 is
//! impossible here (default_privs must not be root, [`SetupError::RootPrivs`]).
//!
//! Security: the message, alias values, `.forward` and `:include:` contents are
//! untrusted. Recursion is bounded (Postfix's level 100: `alias database loop`), and so are
//! the duplicate filter (duplicate_filter_limit) and every file read.

pub mod command;
pub mod expand;
pub mod mailboxes;
pub mod message;
pub mod real;
pub mod settings;
pub mod targets;
pub mod tokens;
pub mod userfile;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tern_maps::{Map, OpenFlags};
use tern_message::trace::Timestamp;
use tern_rewrite::Resolver;

use crate::request::{Delivered, DeliveryRequest, ExpandedOutcome, Outcome};
use mailboxes::Mailboxes;
use message::Message;
pub use settings::LocalSettings;

/// What the helper gives local(8) besides the request.
pub struct Env<'a> {
    pub settings: &'a LocalSettings,
    /// For addresses found by expansion (canonicalised, then resolved as qmgr would).
    pub resolver: &'a Resolver,
    /// The mbox / Maildir / file writers.
    pub mailboxes: &'a mut dyn Mailboxes,
    /// The helper's own environment (import_environment applies to it).
    pub process_env: Vec<(String, String)>,
    /// default_privs' uid and gid ([`default_privs`], looked up once per process as
    /// Postfix's local(8) does at start-up).
    pub default_privs: (u32, u32),
    /// Now, in local time (the `From ` line of a command's input).
    pub now: Timestamp,
    /// Table warnings.
    pub warn: tern_maps::Warn,
}

/// What became of one recipient: the queue file's verdict and one log line per final
/// destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOutcome {
    /// The request recipient's index.
    pub index: u32,
    /// For the queue file: `Deferred` when any destination deferred (the whole recipient
    /// is tried again later, as in Postfix); `Bounced` when every destination bounced;
    /// else `Sent`. With no entries at all (every destination was a duplicate of one
    /// already delivered in this request) it is `Sent` and nothing is logged.
    pub result: Delivered,
    /// One per final destination, in order: the daemon logs each (`to=<address>`,
    /// `orig_to=<orig_to>` when that differs), and sends bounces for `Bounced` ones.
    pub entries: Vec<Entry>,
}

/// One final destination reached from a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub address: String,
    /// The original recipient to log (empty after an owner- alias, as in Postfix).
    pub orig_to: String,
    pub result: Final,
    /// A failure to be reported to this address (an `owner-` alias) instead of the
    /// envelope sender (Postfix's bounce_one to the owner).
    pub notify: Option<String>,
}

/// The result of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Done(Delivered),
    /// mailbox_transport(_maps) / fallback_transport(_maps): the daemon delivers `address`
    /// of this message through `transport` to `nexthop` (deliver_pass(3)), and uses that
    /// result for this entry, as Postfix's local(8) waits for it.
    Pass {
        transport: String,
        nexthop: String,
    },
}

/// Why local(8) cannot start (a fatal error in Postfix).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("unknown default_privs user: {0}")]
    UnknownPrivs(String),
    #[error("default_privs: privileged user or group id: {0}")]
    RootPrivs(String),
    #[error("{0}")]
    Table(#[from] tern_maps::MapError),
}

/// A user's identity, as local.h's USER_ATTR: uid 0 means "not set" (use default_privs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAttr {
    pub uid: u32,
    pub gid: u32,
    pub home: Option<String>,
    pub logname: Option<String>,
    pub shell: Option<String>,
}

impl UserAttr {
    fn from_user(u: &nix::unistd::User) -> UserAttr {
        UserAttr {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: Some(u.dir.to_string_lossy().into_owned()),
            logname: Some(u.name.clone()),
            shell: Some(u.shell.to_string_lossy().into_owned()),
        }
    }
}

/// Everything shared by the deliveries of one request.
pub(crate) struct Ctx<'e, 'a> {
    pub env: &'e mut Env<'a>,
    pub request: &'e DeliveryRequest,
    pub message: &'e Message,
    pub alias_maps: &'e [Box<dyn Map>],
    pub default_uid: u32,
    pub default_gid: u32,
    /// been_here(3): destinations already handled in this request, folded.
    pub seen: HashSet<String>,
    /// The entries of the current recipient.
    pub entries: Vec<Entry>,
    /// Password entries looked up for this request, by login name (`None`: no such
    /// user). One delivery asks for the same user up to three times (home directory,
    /// .forward, mailbox); each getpwnam() reads and parses the password file anew.
    passwd: HashMap<String, Option<nix::unistd::User>>,
}

impl Ctx<'_, '_> {
    pub fn settings(&self) -> &LocalSettings {
        self.env.settings
    }

    /// been_here(): whether `key` was seen, remembering it (up to duplicate_filter_limit
    /// keys; beyond that nothing is remembered, as in Postfix).
    pub fn been_here(&mut self, key: &str) -> bool {
        let key = key.to_lowercase();
        if self.seen.contains(&key) {
            return true;
        }
        let limit = self.env.settings.duplicate_filter_limit;
        if limit == 0 || self.seen.len() < limit {
            self.seen.insert(key);
        }
        false
    }

    pub fn been_here_check(&self, key: &str) -> bool {
        self.seen.contains(&key.to_lowercase())
    }

    /// getpwnam(`name`), remembered for the rest of the request; a lookup error is not
    /// remembered (the caller defers).
    pub fn user(&mut self, name: &str) -> nix::Result<Option<nix::unistd::User>> {
        if let Some(found) = self.passwd.get(name) {
            return Ok(found.clone());
        }
        let found = nix::unistd::User::from_name(name)?;
        self.passwd.insert(name.to_owned(), found.clone());
        Ok(found)
    }
}

/// Opens alias_maps.
pub fn open_alias_maps(
    settings: &LocalSettings,
    warn: &tern_maps::Warn,
) -> Result<Vec<Box<dyn Map>>, SetupError> {
    let flags = OpenFlags {
        fold_fix: true,
        warn: warn.clone(),
    };
    let mut maps = Vec::new();
    for spec in &settings.alias_maps {
        maps.push(tern_maps::open(spec, &flags)?);
    }
    Ok(maps)
}

/// The default_privs user's ids, refusing root.
pub fn default_privs(settings: &LocalSettings) -> Result<(u32, u32), SetupError> {
    let name = &settings.default_privs;
    let user = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| SetupError::UnknownPrivs(name.clone()))?;
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        return Err(SetupError::RootPrivs(name.clone()));
    }
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// Delivers every recipient of `request` (local(8)'s deliver_message()).
///
/// The queue file must lie inside queue_directory. `alias_maps` come from
/// [`open_alias_maps`] (open them once per process; Postfix does). A queue file that
/// cannot be read defers every recipient.
pub fn deliver(
    request: &DeliveryRequest,
    env: &mut Env<'_>,
    alias_maps: &[Box<dyn Map>],
) -> Vec<LocalOutcome> {
    let defer_all = |text: String| -> Vec<LocalOutcome> {
        request
            .recipients
            .iter()
            .map(|r| {
                let result = Delivered::Deferred {
                    dsn: "4.3.0".into(),
                    text: text.clone(),
                };
                LocalOutcome {
                    index: r.index,
                    result: result.clone(),
                    entries: vec![Entry {
                        address: r.address.clone(),
                        orig_to: r.orig_rcpt.clone(),
                        result: Final::Done(result),
                        notify: None,
                    }],
                }
            })
            .collect()
    };
    let queue_dir = Path::new(&env.settings.queue_directory);
    if !inside(&request.queue_file, queue_dir) {
        return defer_all("mail system configuration error".into());
    }
    let message = match Message::open(&request.queue_file) {
        Ok(m) => m,
        Err(e) => return defer_all(format!("cannot read queue file: {e}")),
    };
    let (default_uid, default_gid) = env.default_privs;
    let mut ctx = Ctx {
        env,
        request,
        message: &message,
        alias_maps,
        default_uid,
        default_gid,
        seen: HashSet::new(),
        entries: Vec::new(),
        passwd: HashMap::new(),
    };
    let mut out = Vec::new();
    for r in &request.recipients {
        let orig = if r.orig_rcpt.is_empty() {
            r.address.clone()
        } else {
            r.orig_rcpt.clone()
        };
        let state = expand::State::top(&r.address, &orig, &request.sender);
        expand::deliver_recipient(&mut ctx, state, &UserAttr::default());
        let entries = std::mem::take(&mut ctx.entries);
        out.push(LocalOutcome {
            index: r.index,
            result: summary(&entries),
            entries,
        });
    }
    out
}

/// The queue-file verdict of a recipient's entries.
pub fn summary(entries: &[Entry]) -> Delivered {
    let done = |e: &Entry| match &e.result {
        Final::Done(d) => Some(d.clone()),
        Final::Pass { .. } => None,
    };
    if let Some(d) = entries
        .iter()
        .filter_map(done)
        .find(|d| matches!(d, Delivered::Deferred { .. }))
    {
        return d;
    }
    let bounced: Vec<Delivered> = entries
        .iter()
        .filter_map(done)
        .filter(|d| matches!(d, Delivered::Bounced { .. }))
        .collect();
    if !entries.is_empty() && bounced.len() == entries.len() {
        return bounced[0].clone();
    }
    Delivered::Sent {
        dsn: "2.0.0".into(),
        text: String::new(),
    }
}

impl LocalOutcome {
    /// The outcome in the daemon's [`Outcome`] form: one expanded entry (one log line) per
    /// final destination; a destination for mailbox_transport or fallback_transport
    /// becomes [`Delivered::Pass`], which the queue manager delivers through that
    /// transport (deliver_pass(3)). The recipient's own result is its one destination's
    /// (text and all: the recipient's line is that line), else the summary; with a
    /// destination still to pass on and nothing deferred, the queue manager decides once
    /// the pass is done.
    pub fn into_outcome(self, relay: &str) -> Outcome {
        let expanded: Vec<ExpandedOutcome> = self
            .entries
            .into_iter()
            .map(|e| ExpandedOutcome {
                address: e.address,
                orig_to: e.orig_to,
                result: match e.result {
                    Final::Done(d) => d,
                    Final::Pass { transport, nexthop } => Delivered::Pass { transport, nexthop },
                },
                pid: None,
                notify: e.notify,
            })
            .collect();
        let deferred = matches!(self.result, Delivered::Deferred { .. });
        let result = match (&expanded[..], expanded.iter().find(|e| is_pass(&e.result))) {
            ([one], _) => one.result.clone(),
            (_, Some(p)) if !deferred => p.result.clone(),
            _ => self.result,
        };
        Outcome {
            index: self.index,
            result,
            relay: relay.to_owned(),
            expanded,
        }
    }
}

fn is_pass(d: &Delivered) -> bool {
    matches!(d, Delivered::Pass { .. })
}

/// Whether `path` is inside `dir` (lexically, with no `..`).
fn inside(path: &Path, dir: &Path) -> bool {
    // `dir` may be written with `..` (`${config_directory}/../var/spool/postfix`); the
    // part of `path` below it may not.
    path.strip_prefix(dir).is_ok_and(|rel| {
        rel.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(text: &str) -> Delivered {
        Delivered::Sent {
            dsn: "2.0.0".into(),
            text: text.into(),
        }
    }

    fn entry(address: &str, result: Final) -> Entry {
        Entry {
            address: address.into(),
            orig_to: "root@x".into(),
            result,
            notify: None,
        }
    }

    fn pass() -> Final {
        Final::Pass {
            transport: "dovecot".into(),
            nexthop: "x".into(),
        }
    }

    fn deferred() -> Delivered {
        Delivered::Deferred {
            dsn: "4.3.0".into(),
            text: "later".into(),
        }
    }

    #[test]
    fn outcomes_for_the_daemon() {
        let pass_d = Delivered::Pass {
            transport: "dovecot".into(),
            nexthop: "x".into(),
        };
        // (entries, the recipient's result)
        let cases: Vec<(Vec<Entry>, Delivered)> = vec![
            // One destination: its result is the recipient's, text and all.
            (
                vec![entry("a@x", Final::Done(sent("delivered to mailbox")))],
                sent("delivered to mailbox"),
            ),
            (vec![entry("a@x", pass())], pass_d.clone()),
            // A pass among others: the queue manager decides after it.
            (
                vec![
                    entry("a@x", Final::Done(sent("delivered to mailbox"))),
                    entry("b@x", pass()),
                ],
                pass_d.clone(),
            ),
            // Something deferred: the whole recipient is.
            (
                vec![entry("a@x", Final::Done(deferred())), entry("b@x", pass())],
                deferred(),
            ),
            // Nothing at all (duplicates): sent, without text.
            (vec![], sent("")),
        ];
        for (entries, want) in cases {
            let o = LocalOutcome {
                index: 3,
                result: summary(&entries),
                entries: entries.clone(),
            }
            .into_outcome("local");
            assert_eq!(o.result, want, "{entries:?}");
            assert_eq!((o.index, o.relay.as_str()), (3, "local"));
            assert_eq!(o.expanded.len(), entries.len());
            for (e, x) in o.expanded.iter().zip(&entries) {
                assert_eq!((&e.address, &e.orig_to), (&x.address, &x.orig_to));
                assert_eq!(is_pass(&e.result), matches!(x.result, Final::Pass { .. }));
            }
        }
    }
}
