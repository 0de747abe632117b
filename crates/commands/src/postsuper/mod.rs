//! `postsuper`: the superuser's queue maintenance (postsuper(1) of Postfix 3.7):
//! `-d ID|ALL|-` deletes, `-h` holds, `-H` releases, `-r` requeues, `-e`/`-f` mark for
//! forced expiry, `-s`/`-S` check and repair the queue's structure, `-p` purges old
//! temporary files; operands name the queues to work on.
//!
//! The order of work is Postfix's: the repair operations (`-p`, `-s`, `-S`, and both
//! when no action is given) run first over every named queue, then each `-d`/`-h`/`-H`/
//! `-r`/`-e`/`-f` in command-line order, then the totals (`Deleted: 3 messages`), each
//! line on standard error and in the mail log (`postfix/postsuper[PID]: ...`).
//!
//! Tern's differences, each forced by its own file formats (docs/compat.md):
//! - `-r` cannot move a queue file into `maildrop/` as Postfix does, because Tern's
//!   maildrop files are a text format of their own ([`tern_queue::maildrop`]): the
//!   message is converted ([`requeue`]) and pickup is woken through `public/pickup`.
//! - a finished maildrop file has mode 0444 (Postfix: 0744), so that is the "ready" mode
//!   in `maildrop/`; its names are not inode-based, so `-s` does not rename them.
//!
//! # Security
//! Only root may run it (Postfix refuses anyone else before reading a flag). After the
//! configuration is read it changes to the queue directory and drops to mail_owner for
//! good, as Postfix's does: a compromised queue directory can then hurt no more than
//! mail_owner could. Queue ids from the command line and standard input are checked as
//! mail_queue_id_ok() checks them before any path is made from them; names found in the
//! queue are checked the same way, and symbolic links are never followed (lstat, and
//! O_NOFOLLOW when a file is read for `-r`).

mod ops;
mod requeue;
mod walk;

use std::io::Write;
use std::path::PathBuf;

use tern_config::config::Config;
use tern_maillog::postsuper::{self as plog, Total};
use tern_maillog::{Ident, Line, LogConfig, Logger};
use tern_queue::QueueLayout;

use crate::fatal;
use crate::getopt::{Opt, getopt};
use crate::msg::{Fatal, Msg};

/// postsuper.c's ACTION_* bits.
pub(crate) mod action {
    pub const STRUCT: u32 = 1 << 0;
    pub const PURGE: u32 = 1 << 1;
    pub const DELETE_ONE: u32 = 1 << 2;
    pub const DELETE_ALL: u32 = 1 << 3;
    pub const REQUEUE_ONE: u32 = 1 << 4;
    pub const REQUEUE_ALL: u32 = 1 << 5;
    pub const HOLD_ONE: u32 = 1 << 6;
    pub const HOLD_ALL: u32 = 1 << 7;
    pub const RELEASE_ONE: u32 = 1 << 8;
    pub const RELEASE_ALL: u32 = 1 << 9;
    pub const STRUCT_RED: u32 = 1 << 10;
    pub const EXPIRE_ONE: u32 = 1 << 11;
    pub const EXPIRE_ALL: u32 = 1 << 12;
    pub const EXP_REL_ONE: u32 = 1 << 13;
    pub const EXP_REL_ALL: u32 = 1 << 14;

    pub const BY_QUEUE_ID: u32 =
        DELETE_ONE | REQUEUE_ONE | HOLD_ONE | RELEASE_ONE | EXPIRE_ONE | EXP_REL_ONE;
    pub const BY_WILDCARD: u32 =
        DELETE_ALL | REQUEUE_ALL | HOLD_ALL | RELEASE_ALL | EXPIRE_ALL | EXP_REL_ALL;
    pub const FOR_REPAIR: u32 = PURGE | STRUCT | STRUCT_RED;
}

/// The queues worked on when none is named: the log directories first, so that their
/// files are in place before message files are renamed (postsuper.c, default_queues).
const DEFAULT_QUEUES: [&str; 8] = [
    "defer", "bounce", "maildrop", "incoming", "active", "deferred", "hold", "flush",
];

/// `getopt` letters, as postsuper.c's GETOPT_LIST.
const GETOPT_LIST: &str = "c:d:e:f:h:H:pr:sSv";

/// `postsuper`'s entry point; returns the exit status.
pub fn main() -> i32 {
    let msg = Msg::from_args_basename();
    let mut logger = None;
    let status = match run(&crate::args(), &msg, &mut logger) {
        Ok(()) => 0,
        Err(f) => {
            if let Some((log, ident)) = &logger {
                log_line(log, ident, &Line::fatal(f.0.clone()));
            }
            msg.fatal(&f)
        }
    };
    if let Some((log, _)) = &logger {
        log.flush();
    }
    status
}

fn log_line(log: &Logger, ident: &Ident, line: &Line) {
    log.log(ident, line);
}

fn usage(msg: &Msg) -> Fatal {
    fatal!(
        "usage: {} [-c config_dir] [-d queue_id (delete)] [-e queue_id (expire)] \
         [-f queue_id (expire and/or un-hold)] [-h queue_id (hold)] [-H queue_id (un-hold)] \
         [-p (purge temporary files)] [-r queue_id (requeue)] [-s (structure fix)] \
         [-S (redundant structure fix)][-v (verbose)] [queue...]",
        msg.prog()
    )
}

fn run(args: &[String], msg: &Msg, logger: &mut Option<(Logger, Ident)>) -> Result<(), Fatal> {
    // Postfix's order: the uid check comes before the flags are looked at.
    if !nix::unistd::getuid().is_root() {
        return Err(fatal!("use of this command is reserved for the superuser"));
    }
    let (opts, operands) = getopt(args, GETOPT_LIST).map_err(|e| {
        let _ = writeln!(std::io::stderr(), "{}: {e}", msg.prog());
        usage(msg)
    })?;
    let mut act = 0u32;
    let mut config_dir = None;
    let mut verbose = 0usize;
    let all_or_one = |arg: &str, all: u32, one: u32| if arg == "ALL" { all } else { one };
    for opt in &opts {
        act |= match opt {
            Opt::WithArg('c', dir) => {
                if !dir.starts_with('/') {
                    return Err(fatal!("-c requires absolute pathname"));
                }
                config_dir = Some(PathBuf::from(dir));
                0
            }
            Opt::WithArg('d', a) => all_or_one(a, action::DELETE_ALL, action::DELETE_ONE),
            Opt::WithArg('e', a) => all_or_one(a, action::EXPIRE_ALL, action::EXPIRE_ONE),
            Opt::WithArg('f', a) => all_or_one(a, action::EXP_REL_ALL, action::EXP_REL_ONE),
            Opt::WithArg('h', a) => all_or_one(a, action::HOLD_ALL, action::HOLD_ONE),
            Opt::WithArg('H', a) => all_or_one(a, action::RELEASE_ALL, action::RELEASE_ONE),
            Opt::WithArg('r', a) => all_or_one(a, action::REQUEUE_ALL, action::REQUEUE_ONE),
            Opt::Flag('p') => action::PURGE,
            Opt::Flag('S') => action::STRUCT_RED | action::STRUCT,
            Opt::Flag('s') => action::STRUCT,
            Opt::Flag('v') => {
                verbose += 1;
                0
            }
            _ => return Err(usage(msg)),
        };
    }
    if std::env::var_os("MAIL_VERBOSE").is_some() {
        verbose = verbose.max(1);
    }
    let config = Config::load_for_command(config_dir.as_deref())?;
    let get =
        |name: &str| -> Result<String, Fatal> { Ok(config.expanded(name)?.unwrap_or_default()) };
    let config_directory = get("config_directory")?;
    let (maillog_file, prefixes) = (get("maillog_file")?, get("maillog_file_prefixes")?);
    let (facility, myhostname) = (get("syslog_facility")?, get("myhostname")?);
    // The log is opened before the privileges go, as the daemon opens it.
    if let Ok(log) = Logger::open(&LogConfig {
        maillog_file: &maillog_file,
        maillog_file_prefixes: &prefixes,
        syslog_facility: &facility,
        myhostname: &myhostname,
        config_directory: &config_directory,
    }) {
        *logger = Some((log, Ident::new(&get("syslog_name")?, "postsuper")));
    }
    let queue_dir = get("queue_directory")?;
    std::env::set_current_dir(&queue_dir)
        .map_err(|e| fatal!("chdir {queue_dir}: {}", tern_config::text::errno_text(&e)))?;
    let owner_name = get("mail_owner")?;
    let owner = nix::unistd::User::from_name(&owner_name)
        .ok()
        .flatten()
        .ok_or_else(|| {
            fatal!(
                "file {config_directory}/main.cf: parameter mail_owner: unknown user name value: {owner_name}"
            )
        })?;
    set_ugid(owner.uid, owner.gid)?;

    let depth = get("hash_queue_depth")?.parse().unwrap_or(1);
    // Paths relative to the queue directory, as Postfix's messages show them.
    let layout = QueueLayout::new("").with_hashing(&get("hash_queue_names")?, depth);
    let mut sup = Super {
        msg: msg.clone(),
        logger: logger.as_ref(),
        layout,
        long_ids: get("enable_long_queue_ids")? == "yes",
        mail_owner_uid: owner.uid.as_raw(),
        verbose,
        counts: Counts::default(),
        pickup_wanted: false,
    };
    if act == 0 {
        act = action::STRUCT | action::PURGE;
    }
    let queues: Vec<String> = if operands.is_empty() {
        DEFAULT_QUEUES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        operands
    };
    let result = sup.execute(&opts, &queues, act);
    if sup.pickup_wanted {
        // Tern's pickup takes the converted files at once (Postfix's waits for its
        // next wakeup, at most 60 seconds); a daemon that is down takes them at start.
        let _ = crate::postqueue::flush::trigger(std::path::Path::new("."), "pickup", b"W");
    }
    result?;
    sup.report(act);
    Ok(())
}

/// set_ugid(): mail_owner's group alone, then its uid, for good.
fn set_ugid(uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> Result<(), Fatal> {
    nix::unistd::setgroups(&[gid]).map_err(|e| fatal!("setgroups: {e}"))?;
    nix::unistd::setgid(gid).map_err(|e| fatal!("setgid({gid}): {e}"))?;
    nix::unistd::setuid(uid).map_err(|e| fatal!("setuid({uid}): {e}"))?;
    Ok(())
}

/// postsuper.c's global counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub requeued: u64,
    pub held: u64,
    pub released: u64,
    pub deleted: u64,
    pub expired: u64,
    pub inode_fixed: u64,
    pub inode_mismatch: u64,
    pub position_mismatch: u64,
}

/// One run's state.
pub(crate) struct Super<'a> {
    msg: Msg,
    logger: Option<&'a (Logger, Ident)>,
    /// Rooted at "" (the current directory is the queue directory).
    pub(crate) layout: QueueLayout,
    /// enable_long_queue_ids.
    pub(crate) long_ids: bool,
    /// pickup logs requeued files by their owner, which is this uid.
    #[allow(dead_code)]
    pub(crate) mail_owner_uid: u32,
    pub(crate) verbose: usize,
    pub(crate) counts: Counts,
    /// A message was requeued: pickup should be woken.
    pub(crate) pickup_wanted: bool,
}

impl Super<'_> {
    /// msg_info(): `postsuper: TEXT` on standard error and the line in the log.
    pub(crate) fn info(&self, line: &Line) {
        let _ = writeln!(std::io::stderr(), "{}: {}", self.msg.prog(), line.text());
        if let Some((log, ident)) = self.logger {
            log.log(ident, line);
        }
    }

    /// msg_warn().
    pub(crate) fn warn(&self, text: String) {
        self.msg.warn(&text);
        if let Some((log, ident)) = self.logger {
            log.log(ident, &Line::warning(text));
        }
    }

    /// msg_error().
    fn error(&self, text: String) {
        self.msg.line_error(&text);
        if let Some((log, ident)) = self.logger {
            log.log(ident, &Line::error(text));
        }
    }

    /// msg_info() under `-v`.
    pub(crate) fn verbose(&self, text: impl FnOnce() -> String) {
        if self.verbose > 0 {
            self.info(&plog::verbose(text()));
        }
    }

    /// The repair pass(es), then the actions in command-line order.
    fn execute(&mut self, opts: &[Opt], queues: &[String], act: u32) -> Result<(), Fatal> {
        if act & action::FOR_REPAIR != 0 {
            self.super_pass(queues, act & action::FOR_REPAIR)?;
        }
        // Files renamed to `ID#FIX` in the first pass lose their suffix in a second.
        if self.counts.inode_mismatch > 0 {
            self.super_pass(queues, act & action::FOR_REPAIR)?;
        }
        if act & action::BY_QUEUE_ID != 0
            && (self.counts.inode_mismatch > 0 || self.counts.inode_fixed > 0)
        {
            self.error("QUEUE FILE NAMES WERE CHANGED TO MATCH INODE NUMBERS".into());
            return Err(fatal!("CHECK YOUR QUEUE IDS AND RE-ISSUE THE COMMAND"));
        }
        for opt in opts {
            let Opt::WithArg(c, arg) = opt else { continue };
            let all = match c {
                'd' => action::DELETE_ALL,
                'e' => action::EXPIRE_ALL,
                'f' => action::EXP_REL_ALL,
                'h' => action::HOLD_ALL,
                'H' => action::RELEASE_ALL,
                'r' => action::REQUEUE_ALL,
                _ => continue,
            };
            if arg == "ALL" {
                self.super_pass(queues, all)?;
            } else if arg == "-" {
                self.operate_stream(*c, queues)?;
            } else {
                self.one(*c, queues, arg)?;
            }
        }
        Ok(())
    }

    /// The totals, in postsuper.c's order.
    fn report(&self, act: u32) {
        let c = &self.counts;
        let has = |bits: u32| act & bits != 0;
        if has(action::REQUEUE_ONE | action::REQUEUE_ALL) {
            self.info(&plog::total(Total::Requeued, c.requeued));
        }
        if has(action::DELETE_ONE | action::DELETE_ALL) {
            self.info(&plog::total(Total::Deleted, c.deleted));
        }
        if has(action::EXPIRE_ONE | action::EXPIRE_ALL | action::EXP_REL_ONE | action::EXP_REL_ALL)
        {
            self.info(&plog::total(Total::ForceExpired, c.expired));
        }
        if has(action::HOLD_ONE | action::HOLD_ALL) {
            self.info(&plog::total(Total::PlacedOnHold, c.held));
        }
        if has(action::RELEASE_ONE
            | action::RELEASE_ALL
            | action::EXP_REL_ONE
            | action::EXP_REL_ALL)
        {
            self.info(&plog::total(Total::Released, c.released));
        }
        if c.inode_fixed > 0 {
            self.info(&plog::total(Total::Renamed, c.inode_fixed));
        }
        if c.inode_mismatch > 0 || c.inode_fixed > 0 {
            self.warn("QUEUE FILE NAMES WERE CHANGED TO MATCH INODE NUMBERS".into());
        }
    }
}
