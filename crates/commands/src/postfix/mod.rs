//! `postfix`: the control command. `check` for now; `start`, `stop` and the rest come with
//! the daemons.
//!
//! Postfix splits this work between the `postfix` program, which reads main.cf (checking the
//! global parameters and the mail_owner/setgid_group accounts as it does) and changes to the
//! command, daemon and queue directories, and the `postfix-script` shell script, which does
//! `check-fatal` (master.cf present, the postlog service when logging to a file) and
//! `check-warn` (ownership and permissions). Tern does both in one process, in the same
//! order, and prints each message with the prefix Postfix uses for its author: `postfix:`
//! for the program, `$syslog_name/postfix-script:` for the script.
//!
//! Differences from Postfix, on purpose:
//! - Messages always go to standard error. Postfix's postfix and postlog print them only
//!   when standard error is a terminal (else they go to syslog alone).
//! - Every parameter that main.cf sets is checked against the registry's type and bounds,
//!   not only the global ones that Postfix's postfix program reads.
//! - Missing queue and data directories are not created (Postfix's `post-install
//!   create-missing` does that); a missing data_directory is fatal.
//! - Postfix refuses to run for anyone but root ("the postfix command is reserved for the
//!   superuser"). Tern also runs for an ordinary user: then the whole mail system runs as
//!   that user, so the trees that must belong to root must belong to that user instead
//!   (root's own files stay acceptable), and the user's files are accepted where mail_owner
//!   is expected (see [`Check::root_identity`] and [`Layout`]).
//!
//! Security: the command trusts the files it reads no more than any input; it changes
//! nothing on disk.

mod control;
mod owner;
mod tables;
mod values;
mod warn;

use std::path::{Path, PathBuf};

use tern_config::config::{self, Config, ConfigError, DEFAULT_CONFIG_DIRECTORY};
use tern_config::expand::{ExpandError, parse_level};
use tern_config::host::HostInfo;
use tern_config::maincf::{MainCf, errno_text};
use tern_config::mastercf::MasterCf;
use tern_config::registry;

use crate::fatal;
use crate::getopt::getopt;
use crate::msg::{Fatal, Msg};

pub use owner::{Account, Accounts, OwnerError, SystemAccounts};
pub use values::ValueError;
pub use warn::{Layout, check_warn};

/// Postfix 3.7's newest compatibility level; below it the postfix command says that
/// backwards-compatible defaults are in force.
const LAST_COMPAT_LEVEL: &str = "3.6";

/// The usage line for a bad option.
const USAGE: &str = "[-c config_dir] [-Dv] command";

/// postfix-script's reply to an unknown command.
const SCRIPT_USAGE: &str = "Usage: postfix start (or stop, reload, abort, flush, check, \
                            status, set-permissions, upgrade-configuration, logrotate)";

/// The commands postfix-script knows that Tern does not do yet.
const NOT_YET: &[&str] = &[
    "quick-stop",
    "drain",
    "upgrade-configuration",
    "post-install",
    "tls",
    "logrotate",
];

/// How a run ends badly: a fatal message from the `postfix` program, or one from
/// postfix-script (printed with the script's own prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Postfix(Fatal),
    Script(String),
    /// An exit status without a message (`postfix status` when nothing runs).
    Exit(i32),
}

impl From<Fatal> for Failure {
    fn from(fatal: Fatal) -> Self {
        Failure::Postfix(fatal)
    }
}

/// Runs `postfix` with the process's arguments; returns the exit status.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Postfix strips the directory from argv[0] before it prints anything.
    let prog = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map_or_else(
            || "postfix".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
    let msg = Msg::new(&prog);
    let mut script = Msg::new("postfix/postfix-script");
    match run(&msg, &mut script, args.get(1..).unwrap_or_default()) {
        Ok(()) => 0,
        Err(Failure::Postfix(fatal)) => msg.fatal(&fatal),
        Err(Failure::Script(text)) => script.fatal(&Fatal(text)),
        Err(Failure::Exit(code)) => code,
    }
}

/// Parses the command line, reads the configuration and runs the command. `script` is the
/// writer for postfix-script's messages; its prefix is set once `syslog_name` is known.
pub fn run(msg: &Msg, script: &mut Msg, args: &[String]) -> Result<(), Failure> {
    let (opts, operands) = match getopt(args, "c:Dv") {
        Ok(parsed) => parsed,
        Err(err) => {
            // glibc's getopt prints its complaint itself, with no severity.
            eprintln!("{}: {err}", msg.prog());
            return Err(fatal!("usage: {} {USAGE}", msg.prog()).into());
        }
    };
    let mut cli_dir = None;
    for opt in opts {
        // -D (debug) and -v (verbose) only pass flags on to the daemons.
        if let crate::getopt::Opt::WithArg('c', dir) = opt {
            if !dir.starts_with('/') {
                return Err(fatal!("-c requires absolute pathname").into());
            }
            cli_dir = Some(PathBuf::from(dir));
        }
    }
    let (dir, _) = config::config_directory(cli_dir.as_deref());
    let check = Check::load(msg, &dir)?;
    *script = Msg::new(&format!("{}/postfix-script", check.syslog_name));
    let command = operands.first().map_or("", String::as_str);
    if matches!(command, "start" | "start-fg") {
        // postfix start creates what is missing (post-install create-missing).
        control::create_missing(&check)?;
    }
    check.enter_directories()?;
    match command {
        "start" | "start-fg" | "stop" | "abort" | "reload" | "status" => {
            control::run(&check, script, &dir, command)
        }
        "check" => {
            check.check_fatal()?;
            for warning in check.check_warn() {
                script.warn(warning);
            }
            for warning in tables::check_tables(&check.config) {
                script.warn(warning);
            }
            Ok(())
        }
        "set-permissions" => set_permissions(&check),
        "flush" => flush(&dir),
        _ if NOT_YET.contains(&command) => {
            Err(fatal!("the '{command}' command is not supported by Tern yet").into())
        }
        _ => Err(Failure::Script(format!(
            "unknown command: '{command}'. {SCRIPT_USAGE}"
        ))),
    }
}

/// `postfix flush`: postfix-script runs `postqueue -f` (the postqueue next to this
/// program, for this configuration directory) and exits with its status.
fn flush(dir: &Path) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(|e| fatal!("cannot find myself: {e}"))?;
    let postqueue = exe.with_file_name("postqueue");
    let status = std::process::Command::new(&postqueue)
        .arg("-c")
        .arg(dir)
        .arg("-f")
        .env("MAIL_CONFIG", dir)
        .status()
        .map_err(|e| fatal!("{}: {e}", postqueue.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::Exit(code)),
        None => Err(Failure::Exit(1)),
    }
}

/// `postfix set-permissions`: the set-gid programs as postfix-files has them
/// (`$command_directory/postdrop:f:root:$setgid_group:2755`, the same for postqueue),
/// found next to this program; the queue directories' owners and modes are set by
/// every `postfix start`. Needs root.
fn set_permissions(check: &Check) -> Result<(), Failure> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::Script("must be run as root".into()));
    }
    let exe = std::env::current_exe().map_err(|e| fatal!("cannot find myself: {e}"))?;
    let gid = nix::unistd::Gid::from_raw(check.owners.setgid_group.1);
    for name in ["postdrop", "postqueue"] {
        let path = exe.with_file_name(name);
        if !path.exists() {
            continue;
        }
        nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(0)), Some(gid))
            .map_err(|e| fatal!("chown {}: {e}", path.display()))?;
        // After the chown, which clears the set-gid bit.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o2755))
            .map_err(|e| fatal!("chmod {}: {e}", path.display()))?;
    }
    Ok(())
}

/// What the checks need, read from main.cf.
#[derive(Debug, Clone)]
struct Check {
    /// The configuration directory as given (Postfix prints it as given).
    dir: String,
    config: Config,
    syslog_name: String,
    owners: owner::Owners,
}

impl Check {
    /// Reads main.cf and makes the checks Postfix's postfix program makes while it reads it:
    /// every value against its type, the accounts, the log file prefix.
    fn load(msg: &Msg, dir: &Path) -> Result<Check, Failure> {
        let main = match MainCf::load(dir) {
            Ok(main) => main,
            Err(err) => {
                for warning in err.warnings() {
                    msg.warn(warning);
                }
                return Err(Fatal(err.to_string()).into());
            }
        };
        for warning in &main.warnings {
            msg.warn(warning);
        }
        let dir_text = dir.to_string_lossy().into_owned();
        let mut names: Vec<String> = Vec::new();
        for def in &main.definitions {
            if !names.contains(&def.name) {
                names.push(def.name.clone());
            }
        }
        // master.cf is read later, as postfix-script reads it after the program's checks.
        let mut config = Config::new(dir, main, MasterCf::default(), HostInfo::detect());
        // Postfix records the directory it read main.cf from as config_directory.
        config.set("config_directory", &dir_text);
        // Postfix reads the compatibility level before anything else.
        let level = expanded(msg, &config, "compatibility_level")?;
        let Some(level_number) = parse_level(&level) else {
            return Err(fatal!("malformed compatibility level syntax: \"{level}\"").into());
        };
        for name in &names {
            let Some(param) = registry::lookup(name) else {
                continue;
            };
            let value = if config.is_raw(name) {
                config.raw(name).unwrap_or_default()
            } else {
                expanded(msg, &config, name)?
            };
            values::check(param, &value).map_err(|e| Fatal(e.to_string()))?;
        }
        let get = |name: &str| expanded(msg, &config, name);
        let (privs, owner, group) = (
            get("default_privs")?,
            get("mail_owner")?,
            get("setgid_group")?,
        );
        let owners = owner::check(&SystemAccounts, &privs, &owner, &group)
            .map_err(|e| fatal!("file {dir_text}/main.cf: {e}"))?;
        // maillog_client_init(): a log file must lie under one of the allowed prefixes.
        let maillog_file = get("maillog_file")?;
        if !maillog_file.is_empty() {
            let prefixes = get("maillog_file_prefixes")?;
            let allowed = prefixes
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|p| !p.is_empty())
                .any(|p| maillog_file.starts_with(p));
            if !allowed {
                return Err(fatal!(
                    "maillog_file value '{maillog_file}' does not match any prefix in \
                     maillog_file_prefixes"
                )
                .into());
            }
        }
        if parse_level(LAST_COMPAT_LEVEL).is_some_and(|last| level_number < last) {
            // msg_info(): the program name and the text, no severity.
            for line in [
                "Postfix is using backwards-compatible default settings".to_owned(),
                "See http://www.postfix.org/COMPATIBILITY_README.html for details".to_owned(),
                format!(
                    "To disable backwards compatibility use \"postconf \
                     compatibility_level={LAST_COMPAT_LEVEL}\" and \"postfix reload\""
                ),
            ] {
                eprintln!("{}: {line}", msg.prog());
            }
        }
        let syslog_name = get("syslog_name")?;
        Ok(Check {
            dir: dir_text,
            config,
            syslog_name,
            owners,
        })
    }

    /// A parameter's expanded value ("" for an unknown name).
    fn value(&self, name: &str) -> String {
        self.config
            .expanded(name)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The directories the postfix program and the script change into before any command.
    fn enter_directories(&self) -> Result<(), Failure> {
        for name in ["command_directory", "daemon_directory", "queue_directory"] {
            let path = self.value(name);
            if let Err(reason) = directory(&path) {
                return Err(fatal!("chdir({path}): {reason}").into());
            }
        }
        let shlib = self.value("shlib_directory");
        if shlib != "no" && directory(&shlib).is_err() {
            return Err(Failure::Script(format!(
                "no Postfix shared-library directory {shlib}!"
            )));
        }
        let meta = self.value("meta_directory");
        if directory(&meta).is_err() {
            return Err(Failure::Script(format!(
                "no Postfix meta directory {meta}!"
            )));
        }
        Ok(())
    }

    /// postfix-script `check-fatal`: master.cf is there and parses, the postlog service
    /// exists when Postfix logs to a file; and (Tern) the data directory exists.
    fn check_fatal(&self) -> Result<(), Failure> {
        let master_path = format!("{}/master.cf", self.dir);
        if !Path::new(&master_path).is_file() {
            return Err(Failure::Script(format!("no {master_path} file found")));
        }
        let master = MasterCf::load(Path::new(&self.dir)).map_err(|e| Fatal(e.to_string()))?;
        if !self.value("maillog_file").is_empty()
            && !master
                .services
                .iter()
                .any(|s| s.name == "postlog" && s.kind == "unix-dgram")
        {
            return Err(Failure::Script(
                "missing 'postlog' service in master.cf - run 'postfix upgrade-configuration'"
                    .to_owned(),
            ));
        }
        // XXX: Postfix creates a missing data directory here (post-install create-missing);
        // Tern changes nothing on disk, so it can only refuse.
        let data = self.value("data_directory");
        if directory(&data).is_err() {
            return Err(Failure::Script(format!(
                "no Postfix data directory {data}!"
            )));
        }
        Ok(())
    }

    /// postfix-script `check-warn`.
    fn check_warn(&self) -> Vec<String> {
        let layout = Layout {
            config_dir: self.dir.clone(),
            queue_dir: self.value("queue_directory"),
            data_dir: self.value("data_directory"),
            command_dir: self.value("command_directory"),
            daemon_dir: self.value("daemon_directory"),
            meta_dir: self.value("meta_directory"),
            shlib_dir: self.value("shlib_directory"),
            check_shared: !is_secondary_instance(&self.dir),
            root: Check::root_identity(),
            ordinary_user: !nix::unistd::getuid().is_root(),
            mail_owner: (
                self.owners.mail_owner.name.clone(),
                self.owners.mail_owner.uid,
            ),
            setgid_group: self.owners.setgid_group.clone(),
        };
        check_warn(&layout)
    }

    /// Who must own the "root-owned" trees. Postfix runs only as root. Tern started by an
    /// ordinary user runs everything as that user (it cannot switch to mail_owner or make
    /// files root's), so there the root-ownership checks become checks that the files
    /// belong to that user: a file someone else owns is as much a risk as it is for root.
    fn root_identity() -> (String, u32) {
        let uid = nix::unistd::getuid().as_raw();
        if uid == 0 {
            return ("root".to_owned(), 0);
        }
        let name = SystemAccounts
            .user_by_uid(uid)
            .map_or_else(|| uid.to_string(), |a| a.name);
        (name, uid)
    }
}

/// `config.expanded(name)`, with an expansion error as Postfix's fatal error (its warnings
/// printed first).
fn expanded(msg: &Msg, config: &Config, name: &str) -> Result<String, Failure> {
    match config.expanded(name) {
        Ok(value) => Ok(value.unwrap_or_default()),
        Err(ConfigError::Expand(err)) => {
            for warning in err.warnings() {
                msg.warn(warning);
            }
            // Postfix expands main.cf values through its dictionary "mail_dict".
            Err(match err {
                ExpandError::Macro { .. } => fatal!("dictionary mail_dict: {err}"),
                ExpandError::BadConversion { .. } => Fatal(err.to_string()),
            }
            .into())
        }
        Err(err) => Err(Fatal(err.to_string()).into()),
    }
}

/// Whether `path` is a directory one can change into; else chdir()'s error text.
fn directory(path: &str) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err("Not a directory".to_owned()),
        Err(err) => Err(errno_text(&err)),
    }
}

/// Whether `dir` is a secondary instance: one that the default instance's
/// multi_instance_directories lists. Those leave the shared program files to the default
/// instance's check.
fn is_secondary_instance(dir: &str) -> bool {
    if dir == DEFAULT_CONFIG_DIRECTORY {
        return false;
    }
    let Ok(main) = MainCf::load(Path::new(DEFAULT_CONFIG_DIRECTORY)) else {
        return false;
    };
    let mut config = Config::new(
        Path::new(DEFAULT_CONFIG_DIRECTORY),
        main,
        MasterCf::default(),
        HostInfo::detect(),
    );
    config.set("config_directory", DEFAULT_CONFIG_DIRECTORY);
    let list = config
        .expanded("multi_instance_directories")
        .ok()
        .flatten()
        .unwrap_or_default();
    list.split(|c: char| c == ',' || c.is_ascii_whitespace())
        .any(|d| d == dir)
}
