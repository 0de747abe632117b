//! A whole configuration: main.cf, master.cf, the registry and the host, put together so that
//! a program asks for a parameter and gets the value Postfix would use.
//!
//! The lookup order is Postfix's: a service's `-o name=value` in master.cf, then main.cf's
//! `name = value`, then the built-in default (host-derived defaults computed here, the
//! defaults that master.cf services imply, `""` for a user-defined name). Values are expanded
//! with [`crate::expand`]; recursion and syntax errors are errors, never panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::expand::{self, ExpandError, Expanded, Lookup, Mode};
use crate::host::{self, HostInfo};
use crate::maincf::MainCf;
use crate::mastercf::{MasterCf, Service};
use crate::registry::{self, DefaultValue, HostDefault, ParamType};

/// Postfix's compiled-in configuration directory.
pub const DEFAULT_CONFIG_DIRECTORY: &str = "/etc/postfix";

/// The configuration directory a command uses: `-c dir` first, then `MAIL_CONFIG`, then
/// [`DEFAULT_CONFIG_DIRECTORY`]. The flag says whether it was given (Postfix then records it
/// as the value of `config_directory`, which `postconf -n` shows).
pub fn config_directory(cli: Option<&Path>) -> (PathBuf, bool) {
    if let Some(dir) = cli {
        return (dir.to_path_buf(), true);
    }
    match std::env::var_os("MAIL_CONFIG") {
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), true),
        _ => (PathBuf::from(DEFAULT_CONFIG_DIRECTORY), false),
    }
}

/// How a parameter name came to be known, as postconf classifies names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamClass {
    /// In the registry.
    Builtin,
    /// Implied by a master.cf service (`relay_destination_concurrency_limit`).
    Service,
    /// Defined in main.cf or master.cf and referenced as `$name` somewhere (or named in
    /// `smtpd_restriction_classes`).
    User,
    /// A name Postfix still accepts for backwards compatibility; shown only when set.
    Legacy,
}

/// Names Postfix still recognises for backwards compatibility (see [`registry::LEGACY`]).
pub use crate::registry::LEGACY as LEGACY_PARAMETERS;

/// Parameters whose value a program sets for itself; a main.cf assignment is ignored with a
/// warning.
pub const READ_ONLY_PARAMETERS: &[&str] = &["process_id", "process_name", "service_name"];

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub main: MainCf,
    pub master: MasterCf,
    pub host: HostInfo,
    /// The settings in force: main.cf's definitions (last wins), `-o` overrides given on a
    /// command line, and `config_directory` when the directory was named explicitly.
    settings: BTreeMap<String, String>,
    /// Names known beyond the registry: service-implied (with their default text) and
    /// user-defined ones.
    extra: BTreeMap<String, (ParamClass, String)>,
    /// Whether defaults alone are consulted (`postconf -d`).
    defaults_only: bool,
    /// The name programs see as `process_name`.
    process_name: String,
}

/// Why a configuration could not be loaded or a value not computed; `Display` gives
/// Postfix's fatal message text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Main(#[from] crate::maincf::MainCfError),
    #[error(transparent)]
    Master(#[from] crate::mastercf::MasterCfError),
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

impl Config {
    /// Loads main.cf and master.cf from `dir`.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let main = MainCf::load(dir)?;
        let master = MasterCf::load(dir)?;
        Ok(Config::new(dir, main, master, HostInfo::detect()))
    }

    /// Loads the configuration a command uses: the directory of `-c dir` (`cli`), else
    /// `MAIL_CONFIG`, else the default; a directory that was named becomes the value of
    /// `config_directory`, as in Postfix's mail_conf_read, so `${config_directory}` in
    /// main.cf expands to it.
    pub fn load_for_command(cli: Option<&Path>) -> Result<Config, ConfigError> {
        let (dir, given) = config_directory(cli);
        let mut config = Config::load(&dir)?;
        if given {
            config.set("config_directory", &dir.to_string_lossy());
        }
        Ok(config)
    }

    /// Puts parsed files together. Service-implied parameters are registered here; call
    /// [`Config::register_user`] to learn user-defined names too.
    /// A configuration built from main.cf and master.cf texts, as if read from `dir` on a
    /// host named `hostname` (for tests and for tools that hold a configuration in
    /// memory). Errors are the parsers' messages.
    pub fn from_texts(
        dir: &Path,
        main: &str,
        master: &str,
        hostname: &str,
    ) -> Result<Config, String> {
        let main = MainCf::parse(main.as_bytes(), "main.cf").map_err(|e| e.to_string())?;
        let master = MasterCf::parse(master.as_bytes(), "master.cf").map_err(|e| e.to_string())?;
        Ok(Config::new(
            dir,
            main,
            master,
            HostInfo::from_hostname(hostname),
        ))
    }

    pub fn new(dir: &Path, main: MainCf, master: MasterCf, host: HostInfo) -> Config {
        let mut settings = BTreeMap::new();
        for def in &main.definitions {
            settings.insert(def.name.clone(), def.value.clone());
        }
        let mut config = Config {
            dir: dir.to_path_buf(),
            main,
            master,
            host,
            settings,
            extra: BTreeMap::new(),
            defaults_only: false,
            process_name: "postconf".to_owned(),
        };
        config.register_services();
        config
    }

    /// Consult defaults only, as `postconf -d` does: main.cf and `-o` overrides are ignored.
    pub fn set_defaults_only(&mut self, on: bool) {
        self.defaults_only = on;
    }

    /// The program name that `process_name` reports.
    pub fn set_process_name(&mut self, name: &str) {
        name.clone_into(&mut self.process_name);
    }

    /// Sets `name = value` as an override (postconf `-o`, a daemon's `-o`, `config_directory`).
    pub fn set(&mut self, name: &str, value: &str) {
        self.settings.insert(name.to_owned(), value.to_owned());
    }

    /// Removes a setting (a read-only parameter's main.cf assignment is dropped this way).
    pub fn unset(&mut self, name: &str) {
        self.settings.remove(name);
    }

    /// The explicit setting of `name` (main.cf or an override), ignoring defaults.
    pub fn setting(&self, name: &str) -> Option<&str> {
        if self.defaults_only {
            return None;
        }
        self.settings.get(name).map(String::as_str)
    }

    /// Every explicit setting, sorted by name.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How `name` is known, if it is.
    pub fn class(&self, name: &str) -> Option<ParamClass> {
        if let Some((class, _)) = self.extra.get(name) {
            return Some(*class);
        }
        if registry::lookup(name).is_some() {
            return Some(ParamClass::Builtin);
        }
        if LEGACY_PARAMETERS.contains(&name) {
            return Some(ParamClass::Legacy);
        }
        None
    }

    /// Whether `name` is a raw parameter (its value is never `$name`-expanded).
    pub fn is_raw(&self, name: &str) -> bool {
        registry::lookup(name).is_some_and(|p| p.ty == ParamType::Raw)
    }

    /// Every known name that `postconf` lists without arguments: built-in, service-implied
    /// and user-defined, plus legacy names that are set. Sorted.
    pub fn listed_names(&self) -> Vec<String> {
        let mut names: Vec<String> = registry::all().iter().map(|p| p.name.to_owned()).collect();
        names.extend(self.extra.keys().cloned());
        for legacy in LEGACY_PARAMETERS {
            if self.setting(legacy).is_some() && !self.extra.contains_key(*legacy) {
                names.push((*legacy).to_owned());
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Registers a user-defined name (postconf does this for names that are referenced as
    /// `$name` and have a `name = value`).
    pub fn register_user(&mut self, name: &str) {
        if self.class(name).is_none() || self.class(name) == Some(ParamClass::Legacy) {
            self.extra
                .insert(name.to_owned(), (ParamClass::User, String::new()));
        }
    }

    /// The default text of a known parameter, as `postconf -d` prints it.
    pub fn default_text(&self, name: &str) -> Option<String> {
        if let Some((_, text)) = self.extra.get(name) {
            return Some(text.clone());
        }
        if let Some(param) = registry::lookup(name) {
            return Some(match param.default {
                DefaultValue::Text(text) => text.to_owned(),
                DefaultValue::Host(which) => self.host_default(which),
            });
        }
        if LEGACY_PARAMETERS.contains(&name) {
            return Some(String::new());
        }
        None
    }

    /// The value as written: the setting, else the default text. `None` for a name nobody
    /// defines.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.setting(name)
            .map(str::to_owned)
            .or_else(|| self.default_text(name))
    }

    /// The value with `$name` expanded recursively, as the daemons use it (raw parameters
    /// are returned as written).
    pub fn expanded(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        if self.is_raw(name) {
            return Ok(Some(value));
        }
        Ok(Some(self.expand(&value, None)?.text))
    }

    /// Expands `text` recursively in this configuration, optionally in the name space of a
    /// master.cf service (its `-o` settings come first).
    pub fn expand(&self, text: &str, scope: Option<&Service>) -> Result<Expanded, ExpandError> {
        expand::expand(
            text,
            &ScopedLookup {
                config: self,
                scope,
            },
            Mode::Recursive,
        )
    }

    /// Looks a name up as expansion does: the service's `-o`, the settings, the defaults.
    pub fn lookup_value(&self, name: &str, scope: Option<&Service>) -> Option<String> {
        if !self.defaults_only
            && let Some(service) = scope
        {
            // A service's read-only names come first: its program and its own name.
            match name {
                "process_name" => {
                    let command = service.command.rsplit('/').next().unwrap_or_default();
                    return Some(command.to_owned());
                }
                "service_name" => return Some(service.name.clone()),
                _ => {}
            }
            if let Some((_, v)) = service.overrides.iter().rev().find(|(n, _)| n == name) {
                return Some(v.clone());
            }
        }
        self.raw(name)
    }

    fn register_services(&mut self) {
        let services: Vec<(String, String)> = self
            .master
            .services
            .iter()
            .map(|s| (s.name.clone(), s.command.clone()))
            .collect();
        for (service, command) in services {
            for (name, default) in registry::service_params(&service, &command) {
                if registry::lookup(&name).is_none() {
                    self.extra.insert(name, (ParamClass::Service, default));
                }
            }
        }
    }

    fn host_default(&self, which: HostDefault) -> String {
        match which {
            HostDefault::MyHostname => self.default_myhostname(),
            HostDefault::MyDomain => {
                // Postfix takes the domain from the myhostname in force, not the host's.
                let hostname = self
                    .eval_setting("myhostname")
                    .unwrap_or_else(|| self.default_myhostname());
                host::default_mydomain(&hostname)
            }
            HostDefault::MyNetworks => {
                let eval = |name: &str| {
                    self.eval_setting(name)
                        .unwrap_or_else(|| self.eval_default(name))
                };
                host::mynetworks_for(
                    &eval("mynetworks_style"),
                    &eval("inet_protocols"),
                    &eval("inet_interfaces"),
                )
                .unwrap_or_default()
            }
            HostDefault::ProcessId => host::process_id().to_string(),
            HostDefault::ProcessName => self.process_name.clone(),
        }
    }

    /// gethostname(), completed with `$mydomain` (or `localdomain`) when it has no dot.
    fn default_myhostname(&self) -> String {
        host::default_myhostname(
            &self.host.hostname,
            self.eval_setting("mydomain").as_deref(),
        )
    }

    /// A setting expanded, or `None` when unset. An expansion error here gives the raw text;
    /// postconf reports such errors when it checks every value.
    fn eval_setting(&self, name: &str) -> Option<String> {
        let value = self.setting(name)?;
        Some(
            self.expand(value, None)
                .map_or_else(|_| value.to_owned(), |e| e.text),
        )
    }

    fn eval_default(&self, name: &str) -> String {
        let text = self.default_text(name).unwrap_or_default();
        self.expand(&text, None).map_or(text, |e| e.text)
    }
}

/// Expansion's view of a configuration, optionally inside a master.cf service.
struct ScopedLookup<'a> {
    config: &'a Config,
    scope: Option<&'a Service>,
}

impl Lookup for ScopedLookup<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.config.lookup_value(name, self.scope)
    }
}
