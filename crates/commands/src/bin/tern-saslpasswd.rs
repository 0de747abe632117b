//! `tern-saslpasswd`: manages the password file of smtpd's built-in SASL server
//! (`smtpd_sasl_type = tern`; docs/sasl.md). Tern's own command: Postfix has none (Cyrus
//! has saslpasswd2, Dovecot doveadm pw).
//!
//! ```text
//! tern-saslpasswd [-c config_dir] [-f file] [-i iterations] [-d] user
//! ```
//!
//! Adds `user` or replaces its password (read from standard input, its first line; or
//! asked twice on the terminal, without echo, when standard input is one), or deletes it
//! with `-d`. The file is `-f file`, else smtpd_sasl_path when smtpd_sasl_type = tern
//! (relative to config_directory), else `$config_directory/sasl_users`. It is written to
//! a temporary file in the same directory and renamed over the old one, so smtpd (which
//! reads it again when it changes) never sees half a file. A new file is owned by root
//! and mail_owner's group with mode 0640 (smtpd runs as mail_owner and must read it); an
//! existing file keeps its owner, group and mode. Exit status 0, or 1 with
//! `tern-saslpasswd: fatal: ...` on standard error.
//!
//! # Security
//! Run by root. The password never appears on the command line or in any message; only
//! its salted PBKDF2-HMAC-SHA256 hash is stored.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tern_commands::fatal;
use tern_commands::getopt::{Opt, getopt};
use tern_commands::msg::{Fatal, Msg};
use tern_config::config::Config;
use tern_daemon::sasl::table::{self, Hash};

const USAGE: &str = "usage: tern-saslpasswd [-c config_dir] [-f file] [-i iterations] [-d] user";

fn main() {
    let msg = Msg::new("tern-saslpasswd");
    let code = match run(&tern_commands::args()) {
        Ok(()) => 0,
        Err(f) => msg.fatal(&f),
    };
    std::process::exit(code);
}

/// What the command line asks.
struct Request {
    config_dir: Option<PathBuf>,
    file: Option<PathBuf>,
    iterations: u32,
    delete: bool,
    user: String,
}

fn parse(args: &[String]) -> Result<Request, Fatal> {
    let (opts, operands) = getopt(args, "c:f:i:d").map_err(|e| fatal!("{e}; {USAGE}"))?;
    let mut req = Request {
        config_dir: None,
        file: None,
        iterations: table::DEFAULT_ITERATIONS,
        delete: false,
        user: String::new(),
    };
    for opt in opts {
        match opt {
            Opt::WithArg('c', dir) => req.config_dir = Some(dir.into()),
            Opt::WithArg('f', file) => req.file = Some(file.into()),
            Opt::WithArg('i', n) => {
                req.iterations = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=table::MAX_ITERATIONS).contains(n))
                    .ok_or_else(|| fatal!("bad iteration count: {n}"))?;
            }
            Opt::Flag('d') => req.delete = true,
            _ => return Err(fatal!("{USAGE}")),
        }
    }
    let [user] = &operands[..] else {
        return Err(fatal!("{USAGE}"));
    };
    if !table::valid_username(user) {
        return Err(fatal!(
            "bad user name: {user} (1 to {} bytes, no ':', white space or control characters)",
            table::MAX_USERNAME
        ));
    }
    req.user.clone_from(user);
    Ok(req)
}

fn run(args: &[String]) -> Result<(), Fatal> {
    let req = parse(args)?;
    let config = Config::load_for_command(req.config_dir.as_deref())?;
    let get =
        |name: &str| -> Result<String, Fatal> { Ok(config.expanded(name)?.unwrap_or_default()) };
    let config_dir = PathBuf::from(get("config_directory")?);
    let file = match req.file {
        Some(f) => f,
        None if get("smtpd_sasl_type")?.trim() == "tern" => {
            tern_daemon::sasl::table_path(get("smtpd_sasl_path")?.trim(), &config_dir)
        }
        None => tern_daemon::sasl::table_path("", &config_dir),
    };
    let old = match std::fs::read_to_string(&file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(fatal!("open {}: {e}", file.display())),
    };
    let entry = if req.delete {
        None
    } else {
        let password = read_password()?;
        Some(Hash::new(password.as_bytes(), req.iterations).map_err(Fatal)?)
    };
    let (text, found) = table::update(
        old.as_deref().unwrap_or_default(),
        &req.user,
        entry.as_ref(),
    );
    if req.delete && !found {
        return Err(fatal!("{}: no such user: {}", file.display(), req.user));
    }
    let owner = match std::fs::metadata(&file) {
        Ok(m) => (m.uid(), m.gid(), m.mode() & 0o7777),
        Err(_) => new_file_owner(&get("mail_owner")?),
    };
    write_atomically(&file, &text, owner)
}

/// root and mail_owner's group, mode 0640; 0600 when mail_owner is unknown. When not
/// run by root, the caller's own user and group.
fn new_file_owner(mail_owner: &str) -> (u32, u32, u32) {
    let me = nix::unistd::geteuid();
    if !me.is_root() {
        return (me.as_raw(), nix::unistd::getegid().as_raw(), 0o600);
    }
    match nix::unistd::User::from_name(mail_owner.trim()) {
        Ok(Some(u)) => (0, u.gid.as_raw(), 0o640),
        _ => (0, 0, 0o600),
    }
}

/// Writes `FILE.tmp.PID` with the final owner and mode, syncs it, renames it over `file`.
fn write_atomically(
    file: &Path,
    text: &str,
    (uid, gid, mode): (u32, u32, u32),
) -> Result<(), Fatal> {
    let name = file
        .file_name()
        .ok_or_else(|| fatal!("bad file name: {}", file.display()))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = file.with_file_name(tmp_name);
    let result = (|| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fatal!("write {}: {e}", file.display())
    })
}

/// The password: asked twice on the terminal, or standard input's first line.
fn read_password() -> Result<String, Fatal> {
    let stdin = io::stdin();
    let password = if stdin.is_terminal() {
        let first = prompt(&stdin, "Password: ")?;
        let again = prompt(&stdin, "Again: ")?;
        if first != again {
            return Err(fatal!("the passwords do not match"));
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .take(4096)
            .read_line(&mut line)
            .map_err(|e| fatal!("read the password: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err(fatal!("empty password"));
    }
    Ok(password)
}

/// One line from the terminal with echo off (restored afterwards).
fn prompt(stdin: &io::Stdin, text: &str) -> Result<String, Fatal> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let mut stderr = io::stderr();
    let _ = write!(stderr, "{text}");
    let _ = stderr.flush();
    let saved = tcgetattr(stdin).map_err(|e| fatal!("terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(stdin, SetArg::TCSANOW, &quiet).map_err(|e| fatal!("terminal: {e}"))?;
    let mut line = String::new();
    let read = stdin.lock().take(4096).read_line(&mut line);
    let _ = tcsetattr(stdin, SetArg::TCSANOW, &saved);
    let _ = writeln!(stderr);
    read.map_err(|e| fatal!("read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
