//! `postdrop`: the only way into `maildrop/` (Postfix's postdrop(1)). With `-r` it
//! reports the new file's name on standard output. `sendmail` runs it
//! with the submission on standard input (a [`tern_queue::maildrop`] stream); postdrop
//! checks it, writes it into one new file in `$queue_directory/maildrop/`, makes it
//! durable, marks it finished (mode 0444) and wakes the daemon's pickup through
//! `public/pickup`. When the daemon is down the file waits in maildrop/ and postdrop
//! still succeeds, as Postfix's does ("unable to look up public/pickup").
//!
//! # Security
//! When Tern is installed by root, postdrop is set-gid to setgid_group (postdrop) and
//! maildrop/ is 1730 mail_owner:postdrop: a user can add a file there only through this
//! program. Its input is a local user's and untrusted: the envelope is parsed with
//! limits ([`tern_queue::maildrop::Envelope::read`]), the content is capped at
//! message_size_limit, the file is created with O_EXCL|O_NOFOLLOW under a name this
//! program makes, and a failure removes the file (nothing half-written is left
//! finished).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tern_config::config::Config;
use tern_queue::maildrop::{Envelope, READY_MODE};

use crate::fatal;
use crate::getopt::{Opt, getopt};
use crate::msg::{Fatal, Msg};

/// How long the wake-up of pickup may take (trigger_timeout).
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(10);

/// `postdrop [-c config_dir] [-r] [-v]`.
pub fn main() -> i32 {
    let msg = Msg::from_args_basename();
    match run(&crate::args(), &msg) {
        Ok(()) => 0,
        Err(f) => msg.fatal(&f),
    }
}

fn run(args: &[String], msg: &Msg) -> Result<(), Fatal> {
    let (opts, rest) = getopt(args, "c:rv").map_err(|_| usage(msg))?;
    if !rest.is_empty() {
        return Err(usage(msg));
    }
    let mut dir = None;
    let mut report = false;
    for opt in opts {
        match opt {
            Opt::WithArg('c', d) => dir = Some(PathBuf::from(d)),
            Opt::Flag('r') => report = true,
            _ => {}
        }
    }
    if !nix::unistd::getuid().is_root() {
        let (dir, _) = tern_config::config::config_directory(dir.as_deref());
        trusted_config_dir(&dir, msg)?;
    }
    let config = Config::load_for_command(dir.as_deref())?;
    let get =
        |name: &str| -> Result<String, Fatal> { Ok(config.expanded(name)?.unwrap_or_default()) };
    let queue_dir = PathBuf::from(get("queue_directory")?);
    let limit: u64 = get("message_size_limit")?.parse().unwrap_or(10_240_000);
    let uid = nix::unistd::getuid().as_raw();
    // The enforcement of authorized_submit_users is here (sendmail checks too).
    if let Some(name) = crate::acl::denied(&config, "authorized_submit_users", uid)? {
        return Err(fatal!("User {name}({uid}) is not allowed to submit mail"));
    }
    let mut input = BufReader::new(io::stdin().lock());
    let env = Envelope::read(&mut input).map_err(|e| fatal!("uid={uid}: malformed input: {e}"))?;
    let (path, mut file) = create(&queue_dir.join("maildrop"))?;
    let written = write(&mut file, &env, &mut input, limit)
        .map_err(|e| fatal!("uid={uid}: {e}"))
        .and_then(|()| finish(&file).map_err(|e| fatal!("uid={uid}: {e}")));
    if let Err(f) = written {
        let _ = std::fs::remove_file(&path);
        return Err(f);
    }
    drop(file);
    if let Err(e) = trigger(&queue_dir.join("public/pickup")) {
        msg.warn(format!("unable to look up public/pickup: {e}"));
    }
    // -r: tell the caller (sendmail) the file's name, its queue id until pickup gives
    // it one (Postfix's postdrop -r reports the maildrop queue id the same way).
    if report {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let _ = writeln!(io::stdout(), "{}", name.unwrap_or_default());
    }
    Ok(())
}

/// A user other than root may name a configuration directory (`-c`, MAIL_CONFIG) only
/// when root made it: the directory and its main.cf owned by root and writable by no
/// one else. Postfix's set-gid programs accept only the default directory and those
/// the default main.cf lists in alternate_config_directories (mail_conf_checkdir);
/// Tern accepts what only root could have written, which is what that rule protects:
/// no user can make postdrop write where a main.cf of theirs says.
fn trusted_config_dir(dir: &Path, msg: &Msg) -> Result<(), Fatal> {
    use std::os::unix::fs::MetadataExt;
    for path in [dir.to_path_buf(), dir.join("main.cf")] {
        let ok = std::fs::metadata(&path).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0);
        if !ok {
            msg.line_error(format!(
                "unauthorized configuration directory name: {}",
                dir.display()
            ));
            return Err(fatal!(
                "{}: must be owned by root and writable by root alone",
                path.display()
            ));
        }
    }
    Ok(())
}

fn usage(msg: &Msg) -> Fatal {
    fatal!("usage: {} [-c config_dir] [-v]", msg.prog())
}

/// Creates a new file in `maildrop` (mode 0600 while it is written), named from the
/// time, the pid and a counter.
fn create(maildrop: &Path) -> Result<(PathBuf, File), Fatal> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let pid = std::process::id();
    for n in 0..100u32 {
        let name = format!("{:X}{:05X}{pid:X}{n:X}", now.as_secs(), now.subsec_micros());
        let path = maildrop.join(&name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fatal!("create file {}: {e}", path.display())),
        }
    }
    Err(fatal!(
        "create file in {}: too many collisions",
        maildrop.display()
    ))
}

/// The envelope, then the content up to `limit` bytes.
fn write(file: &mut File, env: &Envelope, input: &mut impl BufRead, limit: u64) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, &mut *file);
    env.write(&mut out)?;
    let copied = io::copy(&mut input.take(limit.saturating_add(1)), &mut out)?;
    if limit > 0 && copied > limit {
        return Err(io::Error::other("message file too big"));
    }
    out.flush()
}

/// Durable, then finished: pickup takes only files with the finished mode.
fn finish(file: &File) -> io::Result<()> {
    file.sync_all()?;
    file.set_permissions(std::fs::Permissions::from_mode(READY_MODE))?;
    file.sync_all()
}

/// Wakes pickup: Postfix's trigger, one request byte (`W`) and the end of the
/// connection.
fn trigger(socket: &Path) -> io::Result<()> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        // Postfix's text names the service when the socket is missing.
        io::Error::new(e.kind(), tern_maps::source::strerror(&e))
    })?;
    s.set_write_timeout(Some(TRIGGER_TIMEOUT))?;
    s.write_all(b"W")
}
