//! A whole configuration: main.cf, master.cf, the registry and the host, put together so that
//! a program asks for a parameter and gets the value Postfix would use.

use std::path::{Path, PathBuf};

use crate::host::HostInfo;
use crate::maincf::MainCf;
use crate::mastercf::MasterCf;

/// Postfix's compiled-in configuration directory.
pub const DEFAULT_CONFIG_DIRECTORY: &str = "/etc/postfix";

/// The configuration directory a command uses: `-c dir` first, then `MAIL_CONFIG`, then
/// [`DEFAULT_CONFIG_DIRECTORY`].
pub fn config_directory(cli: Option<&Path>) -> PathBuf {
    if let Some(dir) = cli {
        return dir.to_path_buf();
    }
    match std::env::var_os("MAIL_CONFIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_CONFIG_DIRECTORY),
    }
}

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub main: MainCf,
    pub master: MasterCf,
    pub host: HostInfo,
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
    Expand(#[from] crate::expand::ExpandError),
}

impl Config {
    /// Loads main.cf and master.cf from `dir`.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let _ = dir;
        unimplemented!()
    }

    /// The value as written: main.cf's definition, else the default text (service-implied and
    /// host-derived defaults included). `None` for a name nobody defines.
    pub fn raw(&self, name: &str) -> Option<String> {
        let _ = name;
        unimplemented!()
    }

    /// The value with `$name` expanded recursively, as the daemons use it.
    pub fn expanded(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let _ = name;
        unimplemented!()
    }
}
