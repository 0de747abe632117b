//! `postqueue`: Postfix's queue control for everyone (postqueue(1) of Postfix 3.7):
//! `-p` lists the queue (the `mailq` layout), `-j` lists it as JSON, `-f` flushes it,
//! `-i ID` and `-s SITE` ask the fast flush service; `-c dir` names the configuration
//! and `-v` is counted (for root only, as Postfix).
//!
//! The listing comes from the daemon's showq service at `$queue_directory/public/showq`
//! ([`tern_daemon::showq`]), read and printed as it arrives ([`format`]). When that
//! socket cannot be reached, as Postfix's postqueue does: permission denied is fatal;
//! root reads the queue itself after `warning: Mail system is down -- accessing queue
//! directly (Connect to the Postfix showq service: ...)`; anyone else gets `fatal: Queue
//! report unavailable - mail system is down (...)`. The flush requests are in [`flush`].
//!
//! Every fatal error exits with status 69 (EX_UNAVAILABLE): Postfix's postqueue installs
//! a cleanup handler that exits so whatever status the error carried, usage included.
//!
//! Security: Postfix's postqueue is set-gid postdrop; Tern's runs with the caller's
//! rights. The showq stream is bounded per string and read with a timeout; queue ids and
//! sites from the command line are checked before use, as Postfix checks them.

pub mod flush;
pub mod format;

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_config::config::Config;
use tern_daemon::showq::proto::Decoder;
use tern_daemon::showq::{self, ListSettings};

use crate::fatal;
use crate::getopt::{Opt, getopt};
use crate::msg::{Fatal, Msg};

/// EX_UNAVAILABLE: every fatal error's exit status.
pub const EXIT_FATAL: i32 = 69;

/// How long a read from showq may block (Postfix's ipc_timeout default).
const IPC_TIMEOUT: Duration = Duration::from_hours(1);

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-p`.
    List,
    /// `-j`.
    Json,
    /// `-f`.
    FlushQueue,
    /// `-i`.
    FlushFile,
    /// `-s`.
    FlushSite,
}

/// `postqueue`'s entry point; returns the exit status.
pub fn main() -> i32 {
    run(&crate::args())
}

/// Runs postqueue with `args` (without argv\[0\]); returns the exit status.
pub fn run(args: &[String]) -> i32 {
    // postqueue censors argv[0]: its messages always say `postqueue`.
    let msg = Msg::new("postqueue");
    match run_with(args, &msg) {
        Ok(()) => 0,
        Err(f) => {
            msg.fatal(&f);
            EXIT_FATAL
        }
    }
}

/// `postqueue -p` as `mailq` and `sendmail -bp` run it (Postfix's sendmail executes
/// `postqueue -p`, with `-v` per verbose flag and the configuration directory in
/// MAIL_CONFIG): for the `sendmail` command. Returns the exit status.
pub fn show_queue(config_dir: Option<&Path>, verbose: usize) -> i32 {
    let mut args = Vec::new();
    if let Some(dir) = config_dir {
        args.push("-c".to_owned());
        args.push(dir.display().to_string());
    }
    args.push("-p".to_owned());
    args.extend(std::iter::repeat_n("-v".to_owned(), verbose));
    run(&args)
}

fn usage() -> Fatal {
    fatal!(
        "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site"
    )
}

fn run_with(args: &[String], msg: &Msg) -> Result<(), Fatal> {
    let (opts, operands) = getopt(args, "c:fi:jps:v").map_err(|e| {
        let _ = writeln!(std::io::stderr(), "postqueue: {e}");
        usage()
    })?;
    let mut mode = None;
    let mut config_dir: Option<PathBuf> = None;
    let mut target = String::new();
    for opt in opts {
        let (m, arg) = match opt {
            Opt::WithArg('c', dir) => {
                config_dir = Some(PathBuf::from(dir));
                continue;
            }
            Opt::Flag('v') => continue,
            Opt::Flag('f') => (Mode::FlushQueue, None),
            Opt::WithArg('i', id) => (Mode::FlushFile, Some(id)),
            Opt::Flag('j') => (Mode::Json, None),
            Opt::Flag('p') => (Mode::List, None),
            Opt::WithArg('s', site) => (Mode::FlushSite, Some(site)),
            _ => return Err(usage()),
        };
        if mode.is_some() {
            return Err(usage());
        }
        mode = Some(m);
        if let Some(a) = arg {
            target = a;
        }
    }
    if !operands.is_empty() {
        return Err(usage());
    }
    let config = Config::load_for_command(config_dir.as_deref())?;
    let get = |name: &str| config.expanded(name).ok().flatten().unwrap_or_default();
    let queue_dir = PathBuf::from(get("queue_directory"));
    if let Err(e) = std::fs::read_dir(&queue_dir) {
        return Err(fatal!(
            "chdir {}: {}",
            queue_dir.display(),
            tern_config::text::errno_text(&e)
        ));
    }
    check_target(mode, &target)?;
    // Root and mail_owner may always; others as authorized_mailq_users /
    // authorized_flush_users say (postqueue is set-gid once `postfix set-permissions`
    // ran).
    let uid = nix::unistd::getuid().as_raw();
    let owner = nix::unistd::User::from_name(&get("mail_owner"))
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    if uid != 0 && Some(uid) != owner {
        let (param, what) = match mode {
            Some(Mode::List | Mode::Json) => ("authorized_mailq_users", "view"),
            _ => ("authorized_flush_users", "flush"),
        };
        if mode.is_some()
            && let Some(name) = crate::acl::denied(&config, param, uid)?
        {
            return Err(fatal!(
                "User {name}({uid}) is not allowed to {what} the mail queue"
            ));
        }
    }
    match mode {
        None => Err(usage()),
        Some(Mode::List | Mode::Json) => list(mode == Some(Mode::Json), &config, &queue_dir, msg),
        Some(Mode::FlushQueue) => {
            let down = || fatal!("Cannot flush mail queue - mail system is down");
            for (service, request) in [
                ("qmgr", flush::QMGR_FLUSH),
                ("pickup", flush::PICKUP_WAKEUP),
            ] {
                match flush::trigger(&queue_dir, service, request) {
                    Ok(true) => {}
                    Ok(false) => return Err(down()),
                    Err(warning) => {
                        msg.warn(warning);
                        return Err(down());
                    }
                }
            }
            Ok(())
        }
        Some(Mode::FlushFile) => {
            let warn = |w: String| msg.warn(w);
            let attrs = [("request", "send_file"), ("queue_id", target.as_str())];
            match flush::flush_request(&queue_dir, &attrs, &warn) {
                flush::FLUSH_STAT_OK => Ok(()),
                flush::FLUSH_STAT_BAD => Err(fatal!("Invalid request: \"{target}\"")),
                flush::FLUSH_STAT_FAIL => {
                    Err(fatal!("Cannot flush mail queue - mail system is down"))
                }
                n => Err(fatal!("Unexpected flush server reply status {n}")),
            }
        }
        Some(Mode::FlushSite) => flush_site(&config, &queue_dir, &target, msg),
    }
}

/// The checks of `-s` and `-i` arguments, with Postfix's texts (cut at 100 bytes).
fn check_target(mode: Option<Mode>, target: &str) -> Result<(), Fatal> {
    let cut = |s: &str| {
        let mut end = s.len().min(100);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{}", &s[..end], if s.len() > 100 { "..." } else { "" })
    };
    match mode {
        Some(Mode::FlushSite) => {
            let ok = if target.starts_with('[') {
                flush::valid_mailhost_literal(target)
            } else {
                flush::valid_hostname(target)
            };
            if !ok {
                return Err(fatal!(
                    "Cannot flush mail queue - invalid destination: \"{}\"",
                    cut(target)
                ));
            }
        }
        Some(Mode::FlushFile) => {
            // mail_queue_id_ok: 1-255 of [A-Za-z0-9_].
            let ok = !target.is_empty()
                && target.len() <= 255
                && target
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(fatal!(
                    "Cannot flush queue ID - invalid name: \"{}\"",
                    cut(target)
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// flush_site(): only a destination in fast_flush_domains is sent to the service.
fn flush_site(config: &Config, queue_dir: &Path, site: &str, msg: &Msg) -> Result<(), Fatal> {
    let get = |name: &str| config.expanded(name).ok().flatten().unwrap_or_default();
    let parent = get("parent_domain_matches_subdomains")
        .split([',', ' ', '\t'])
        .any(|w| w == "fast_flush_domains");
    let printer = msg.clone();
    let warn: tern_maps::Warn = std::sync::Arc::new(move |w: &str| printer.warn(w));
    let status = match tern_daemon::etrn::FastFlush::new(&get("fast_flush_domains"), parent, &warn)
    {
        Err(_) => flush::FLUSH_STAT_FAIL,
        Ok(list) => match list.answer(site) {
            tern_daemon::etrn::Answer::Deny => flush::FLUSH_STAT_DENY,
            tern_daemon::etrn::Answer::Unavailable => {
                let w = |t: String| msg.warn(t);
                let attrs = [("request", "send_site"), ("site", site)];
                flush::flush_request(queue_dir, &attrs, &w)
            }
        },
    };
    match status {
        flush::FLUSH_STAT_OK => Ok(()),
        flush::FLUSH_STAT_BAD => Err(fatal!("Invalid request: \"{site}\"")),
        flush::FLUSH_STAT_FAIL => Err(fatal!("Cannot flush mail queue - mail system is down")),
        flush::FLUSH_STAT_DENY => Err(fatal!(
            "Flush service is not configured for destination \"{site}\""
        )),
        n => Err(fatal!("Unknown flush server reply status {n}")),
    }
}

/// show_queue(): the service, or the queue itself for root when the service is down.
fn list(json: bool, config: &Config, queue_dir: &Path, msg: &Msg) -> Result<(), Fatal> {
    let get = |name: &str| config.expanded(name).ok().flatten().unwrap_or_default();
    let long_ids = get("enable_long_queue_ids") == "yes";
    let mail_name = get("mail_name");
    let service = "showq";
    let mut out = std::io::stdout().lock();
    let err = match UnixStream::connect(queue_dir.join("public").join(service)) {
        Ok(s) => {
            let _ = s.set_read_timeout(Some(IPC_TIMEOUT));
            return print(
                &mut Decoder::new(BufReader::new(s)),
                json,
                long_ids,
                &mut out,
            );
        }
        Err(e) => e,
    };
    let why = format!(
        "Connect to the {mail_name} {service} service: {}",
        tern_config::text::errno_text(&err)
    );
    if matches!(err.raw_os_error(), Some(n) if n == nix::libc::EACCES || n == nix::libc::EPERM) {
        return Err(fatal!("{why}"));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(fatal!(
            "Queue report unavailable - mail system is down ({why})"
        ));
    }
    msg.warn(format!(
        "Mail system is down -- accessing queue directly ({why})"
    ));
    direct(config, queue_dir, msg, |d| {
        print(d, json, long_ids, &mut out)
    })
}

/// Prints the listing `-p` or `-j` style as it arrives.
fn print<R: std::io::BufRead>(
    d: &mut Decoder<R>,
    json: bool,
    long_ids: bool,
    out: &mut dyn Write,
) -> Result<(), Fatal> {
    let r = if json {
        format::json(d, out)
    } else {
        format::compat(d, long_ids, &tern_maillog::writer::local_utc_offset, out)
    };
    match r {
        // Postfix stops quietly when the reader went away (EPIPE).
        Err(format::ListError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| fatal!("{e}")),
    }
}

/// Postfix runs `showq -S` (stand-alone) here; Tern runs the same listing in a thread,
/// through a pipe, so the printing code is the one the service feeds.
fn direct(
    config: &Config,
    queue_dir: &Path,
    msg: &Msg,
    print: impl FnOnce(&mut Decoder<BufReader<std::io::PipeReader>>) -> Result<(), Fatal>,
) -> Result<(), Fatal> {
    let get = |name: &str| config.expanded(name).ok().flatten().unwrap_or_default();
    let depth = get("hash_queue_depth").parse().unwrap_or(1);
    let layout =
        tern_queue::QueueLayout::new(queue_dir).with_hashing(&get("hash_queue_names"), depth);
    let settings = ListSettings::from_config(config);
    let (reader, mut writer) = std::io::pipe().map_err(|e| fatal!("Error running showq: {e}"))?;
    let printer = msg.clone();
    let worker = std::thread::spawn(move || {
        let warn = |w: String| printer.warn(w);
        let mut buf = Vec::new();
        tern_daemon::showq::proto::encode_greeting(&mut buf);
        let r = showq::list(&layout, &settings, &warn, |e| {
            e.encode(&mut buf);
            writer.write_all(&buf)?;
            buf.clear();
            Ok(())
        });
        tern_daemon::showq::proto::encode_end(&mut buf);
        let _ = writer.write_all(&buf);
        r
    });
    let printed = print(&mut Decoder::new(BufReader::new(reader)));
    // The worker ends once the reader is gone (EPIPE) or the listing is done.
    let _ = worker.join();
    printed
}
