//! The parameter registry: every parameter Tern knows, with Postfix 3.7's name and default
//! text, its type, bounds and a one-line description. One table feeds `postconf -d`, the
//! daemons and the docs.

/// A parameter's value type, as Postfix's configuration tables declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A string, `$name` expanded when used.
    Str,
    /// A string used as written (no `$name` expansion by the daemons).
    Raw,
    Bool,
    Int,
    Long,
    /// A time with a default unit letter (`s`, `m`, `h`, `d`, `w`).
    Time(char),
}

/// A default that is not fixed text but read from the host at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostDefault {
    MyHostname,
    MyDomain,
    MyNetworks,
    ProcessId,
}

/// Where a parameter's default comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    Text(&'static str),
    Host(HostDefault),
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: DefaultValue,
    /// Inclusive lower and upper bounds for numeric types (0 where Postfix has none).
    pub min: i64,
    pub max: i64,
    pub description: &'static str,
}

/// Every built-in parameter, sorted by name.
pub fn all() -> &'static [Param] {
    unimplemented!()
}

/// The built-in parameter `name`.
pub fn lookup(name: &str) -> Option<&'static Param> {
    let _ = name;
    unimplemented!()
}

/// The parameters that a master.cf service implies, as Postfix's postconf recognises them:
/// `(name, default text)` pairs such as `("relay_destination_concurrency_limit",
/// "$default_destination_concurrency_limit")` for a service `relay` whose command is `smtp`.
pub fn service_params(service: &str, command: &str) -> Vec<(String, String)> {
    let _ = (service, command);
    unimplemented!()
}
