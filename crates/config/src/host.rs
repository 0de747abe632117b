//! Defaults derived from the host, computed as Postfix computes them.
//!
//! Postfix computes five defaults at run time instead of printing compiled-in text:
//! `myhostname` (gethostname(), `.$mydomain` appended when it has no dot), `mydomain`
//! (`myhostname` less its first label, else `localdomain`), `mynetworks` (the interface
//! networks per `mynetworks_style`, `inet_protocols` and `inet_interfaces`), `process_id` and
//! `process_name`. With `postconf -d` none of them looks at main.cf: `myhostname` appends
//! `.localdomain`, and `mynetworks` uses the default style (`subnet` at compatibility level 0),
//! `inet_protocols = all` and `inet_interfaces = all`. Without `-d`, `myhostname` appends
//! main.cf's `$mydomain`, `mydomain` strips main.cf's `myhostname`, and `mynetworks` follows
//! main.cf's three parameters: [`default_myhostname`], [`default_mydomain`] and
//! [`mynetworks_for`] take those values.
//!
//! The pure parts ([`HostInfo::from_hostname`], [`mynetworks_from`]) take the facts as
//! arguments; only [`HostInfo::detect`], [`mynetworks`], [`mynetworks_for`], [`process_id`]
//! and [`process_name`] ask the kernel. The kernel's answers are trusted; main.cf's values are
//! not, and bad ones end in [`HostError`] with Postfix's fatal text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

/// The domain Postfix uses when the host name has none.
const DEFAULT_DOMAIN: &str = "localdomain";

/// The host facts that defaults are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// gethostname(), with `.localdomain` appended when it has no dot.
    pub myhostname: String,
    /// `myhostname` less its first label (`localdomain` when nothing is left).
    pub mydomain: String,
    /// gethostname() as the kernel gives it: the default `myhostname` appends main.cf's
    /// `$mydomain` to it when it has no dot.
    pub hostname: String,
}

impl HostInfo {
    /// Reads the host name from the kernel.
    // XXX: Postfix exits with "unable to use my own hostname" when the kernel's name is not a
    // valid host name, and "gethostname: ..." when the call fails; here an unreadable name is
    // taken as empty and an odd one as it is.
    pub fn detect() -> HostInfo {
        let name = nix::unistd::gethostname()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        HostInfo::from_hostname(&name)
    }

    /// The facts for a kernel host name `hostname`, as `postconf -d` shows them.
    pub fn from_hostname(hostname: &str) -> HostInfo {
        let myhostname = default_myhostname(hostname, None);
        let mydomain = default_mydomain(&myhostname);
        HostInfo {
            myhostname,
            mydomain,
            hostname: hostname.to_string(),
        }
    }
}

/// The default `myhostname`: the kernel's `hostname`, with `.` and `mydomain` (main.cf's
/// expanded value, `localdomain` when unset) appended when it has no dot.
pub fn default_myhostname(hostname: &str, mydomain: Option<&str>) -> String {
    if hostname.contains('.') {
        hostname.to_string()
    } else {
        format!("{hostname}.{}", mydomain.unwrap_or(DEFAULT_DOMAIN))
    }
}

/// The default `mydomain`: what follows the first dot of `myhostname` (main.cf's expanded
/// value, or the default), `localdomain` when it has no dot.
pub fn default_mydomain(myhostname: &str) -> String {
    match myhostname.split_once('.') {
        Some((_, domain)) => domain.to_string(),
        None => DEFAULT_DOMAIN.to_string(),
    }
}

/// The default `process_id`: this process's id.
pub fn process_id() -> u32 {
    std::process::id()
}

/// The default `process_name`: the last component of the program's `argv[0]` (`postconf`
/// for postconf).
pub fn process_name() -> String {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let arg0 = arg0.to_string_lossy();
    arg0.rsplit('/').next().unwrap_or_default().to_string()
}

/// The default `mynetworks` for a `mynetworks_style` (`host`, `subnet`, `class`) and the
/// `inet_protocols` in force, from the machine's interfaces, in Postfix's output form.
///
/// This is the `inet_interfaces = all` case, the one `postconf -d` prints; a bad style or
/// protocol list gives the empty string (see [`mynetworks_for`] for the error).
pub fn mynetworks(style: &str, inet_protocols: &str) -> String {
    mynetworks_for(style, inet_protocols, "all").unwrap_or_default()
}

/// The default `mynetworks` from the expanded values of `mynetworks_style`,
/// `inet_protocols` and `inet_interfaces`, from the machine's interfaces; host names in
/// `inet_interfaces` are resolved with the system resolver.
pub fn mynetworks_for(
    style: &str,
    inet_protocols: &str,
    inet_interfaces: &str,
) -> Result<String, HostError> {
    mynetworks_from(
        style,
        inet_protocols,
        inet_interfaces,
        &local_interfaces(),
        &resolve,
    )
}

/// One address of a local interface and its netmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub mask: IpAddr,
}

/// Why a host-derived default could not be computed; `Display` gives Postfix's fatal text
/// (without the `postconf: fatal: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("unknown inet_protocols value \"{word}\" in \"{value}\"")]
    UnknownProtocol { word: String, value: String },
    #[error("unknown mynetworks mask style value \"{word}\" in \"{value}\"")]
    UnknownStyle { word: String, value: String },
    #[error("bad mynetworks_style value: {0}; specify exactly one value")]
    StyleCount(String),
    #[error("could not find any active network interfaces")]
    NoInterfaces,
    #[error("config variable inet_interfaces: host not found: {0}")]
    HostNotFound(String),
    #[error("parameter inet_interfaces: no local interface found for {0}")]
    NoLocalInterface(String),
    #[error("mynetworks_core: unknown address class: {0}")]
    UnknownClass(Ipv4Addr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Host,
    Subnet,
    Class,
}

/// The pure core of [`mynetworks_for`]: `local` lists the up interfaces' addresses in the
/// kernel's order, `resolve` turns an `inet_interfaces` host name into addresses.
pub fn mynetworks_from(
    style: &str,
    inet_protocols: &str,
    inet_interfaces: &str,
    local: &[IfAddr],
    resolve: &dyn Fn(&str) -> Vec<IpAddr>,
) -> Result<String, HostError> {
    let (v4, v6) = protocols(inet_protocols)?;
    if !v4 && !v6 {
        return Ok(String::new());
    }
    let style = parse_style(style)?;
    // Postfix collects the IPv4 interfaces first, then the IPv6 ones, each in kernel order.
    let family_ok = |a: &IpAddr| if a.is_ipv4() { v4 } else { v6 };
    let local: Vec<IfAddr> = local
        .iter()
        .filter(|i| i.addr.is_ipv4() && v4)
        .chain(local.iter().filter(|i| i.addr.is_ipv6() && v6))
        .copied()
        .collect();
    let own = match inet_interfaces {
        "all" => {
            if local.is_empty() {
                return Err(HostError::NoInterfaces);
            }
            local
        }
        "loopback-only" => {
            if local.is_empty() {
                return Err(HostError::NoInterfaces);
            }
            local.into_iter().filter(|i| is_loopback(i.addr)).collect()
        }
        list => {
            let mut addrs: Vec<IpAddr> = Vec::new();
            for host in list.split([' ', '\t', ',']).filter(|h| !h.is_empty()) {
                let found: Vec<IpAddr> = interface_addrs(host, resolve)
                    .into_iter()
                    .filter(|a| family_ok(a))
                    .collect();
                if found.is_empty() {
                    return Err(HostError::HostNotFound(host.to_string()));
                }
                addrs.extend(found);
            }
            let mut unique: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !unique.contains(&a) {
                    unique.push(a);
                }
            }
            if !unique.is_empty() && local.is_empty() {
                return Err(HostError::NoInterfaces);
            }
            let mut own = Vec::new();
            for addr in unique {
                let Some(found) = local.iter().find(|i| i.addr == addr) else {
                    return Err(HostError::NoLocalInterface(addr.to_string()));
                };
                own.push(*found);
            }
            own
        }
    };
    let mut nets: Vec<String> = Vec::new();
    for i in own {
        let net = network(i, style)?;
        // Some kernels report one network several times; keep the first, in order.
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets.join(" "))
}

/// `inet_protocols` as (IPv4, IPv6). Words are separated by commas and white space and
/// compared case-sensitively, as Postfix does.
fn protocols(value: &str) -> Result<(bool, bool), HostError> {
    let mut v4 = false;
    let mut v6 = false;
    for word in value
        .split([',', ' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        match word {
            "ipv4" => v4 = true,
            "ipv6" => v6 = true,
            "all" => (v4, v6) = (true, true),
            _ => {
                return Err(HostError::UnknownProtocol {
                    word: word.to_string(),
                    value: value.to_string(),
                });
            }
        }
    }
    Ok((v4, v6))
}

/// `mynetworks_style`: exactly one of `host`, `subnet`, `class` (repeats allowed).
fn parse_style(value: &str) -> Result<Style, HostError> {
    let mut seen: Vec<Style> = Vec::new();
    for word in value
        .split([',', ' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        let style = match word {
            "host" => Style::Host,
            "subnet" => Style::Subnet,
            "class" => Style::Class,
            _ => {
                return Err(HostError::UnknownStyle {
                    word: word.to_string(),
                    value: value.to_string(),
                });
            }
        };
        if !seen.contains(&style) {
            seen.push(style);
        }
    }
    match seen.as_slice() {
        [one] => Ok(*one),
        _ => Err(HostError::StyleCount(value.to_string())),
    }
}

/// The addresses of one `inet_interfaces` entry: a numeric address (IPv6 optionally in
/// brackets) or a host name.
fn interface_addrs(host: &str, resolve: &dyn Fn(&str) -> Vec<IpAddr>) -> Vec<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => resolve(bare),
    }
}

fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.octets()[0] == 127,
        IpAddr::V6(a) => a == Ipv6Addr::LOCALHOST,
    }
}

/// One `mynetworks` element: `a.b.c.d/len` or `[v6]/len`, host bits cleared.
fn network(i: IfAddr, style: Style) -> Result<String, HostError> {
    match (i.addr, i.mask) {
        (IpAddr::V4(addr), mask) => {
            let bits = u32::from(addr);
            let prefix = match style {
                Style::Host => 32,
                Style::Subnet => {
                    let mask = match mask {
                        IpAddr::V4(m) => u32::from(m),
                        IpAddr::V6(_) => 0,
                    };
                    32 - mask.trailing_zeros()
                }
                // The classful networks: A is 0/1, B 10/2, C 110/3, D 1110/4.
                Style::Class => match bits.leading_ones() {
                    0 => 8,
                    1 => 16,
                    2 => 24,
                    3 => 4,
                    _ => return Err(HostError::UnknownClass(addr)),
                },
            };
            let net = if prefix == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - prefix))
            };
            Ok(format!("{}/{prefix}", Ipv4Addr::from(net)))
        }
        (IpAddr::V6(addr), mask) => {
            // There are no IPv6 classes: class is subnet.
            let prefix = match style {
                Style::Host => 128,
                Style::Subnet | Style::Class => match mask {
                    IpAddr::V6(m) => v6_prefix(m),
                    IpAddr::V4(_) => 0,
                },
            };
            let bits = u128::from(addr);
            let net = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - prefix))
            };
            Ok(format!("[{}]/{prefix}", Ipv6Addr::from(net)))
        }
    }
}

/// The prefix length Postfix reads from an IPv6 netmask: the leading all-ones bytes, plus
/// the bits of the first other byte up to its lowest set bit.
fn v6_prefix(mask: Ipv6Addr) -> u32 {
    let mut prefix = 0;
    for byte in mask.octets() {
        if byte == 0xff {
            prefix += 8;
        } else {
            if byte != 0 {
                prefix += 8 - byte.trailing_zeros();
            }
            break;
        }
    }
    prefix
}

/// The addresses of the interfaces that are up, in the kernel's order, with their netmasks.
/// Wildcard addresses and addresses without a netmask are left out, as Postfix does.
fn local_interfaces() -> Vec<IfAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|i| i.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP))
        .filter_map(|i| {
            let (address, netmask) = (i.address?, i.netmask?);
            if let (Some(a), Some(m)) = (address.as_sockaddr_in(), netmask.as_sockaddr_in()) {
                return Some(IfAddr {
                    addr: IpAddr::V4(a.ip()),
                    mask: IpAddr::V4(m.ip()),
                });
            }
            if let (Some(a), Some(m)) = (address.as_sockaddr_in6(), netmask.as_sockaddr_in6()) {
                return Some(IfAddr {
                    addr: IpAddr::V6(a.ip()),
                    mask: IpAddr::V6(m.ip()),
                });
            }
            None
        })
        .filter(|i| !i.addr.is_unspecified())
        .collect()
}

/// A host name's addresses from the system resolver, in its order.
fn resolve(host: &str) -> Vec<IpAddr> {
    (host, 0)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let cases: &[(&str, &str, &str)] = &[
            ("vm", "vm.localdomain", "localdomain"),
            ("foo.bar.example", "foo.bar.example", "bar.example"),
            ("a.", "a.", ""),
            ("", ".localdomain", "localdomain"),
        ];
        for &(kernel, myhostname, mydomain) in cases {
            let h = HostInfo::from_hostname(kernel);
            assert_eq!(
                (h.myhostname.as_str(), h.mydomain.as_str()),
                (myhostname, mydomain)
            );
            assert_eq!(h.hostname, kernel);
        }
        assert_eq!(
            default_myhostname("foo", Some("example.com")),
            "foo.example.com"
        );
        assert_eq!(default_myhostname("a.b", Some("example.com")), "a.b");
        assert_eq!(default_mydomain("abc"), "localdomain");
        assert_eq!(default_mydomain("a.b.c"), "b.c");
    }

    fn ifaddr(addr: &str, mask: &str) -> IfAddr {
        IfAddr {
            addr: addr.parse().expect("test address"),
            mask: mask.parse().expect("mask"),
        }
    }

    /// The interfaces of the reference machine, in getifaddrs order.
    fn sample() -> Vec<IfAddr> {
        vec![
            ifaddr("127.0.0.1", "255.0.0.0"),
            ifaddr("192.0.2.2", "255.255.255.0"),
            ifaddr("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ifaddr("fd00::2", "ffff:ffff:ffff:ffff::"),
            ifaddr("fe80::fc:ff:fe00:1", "ffff:ffff:ffff:ffff::"),
            ifaddr("172.20.3.4", "255.255.240.0"),
        ]
    }

    fn fake_resolve(host: &str) -> Vec<IpAddr> {
        match host {
            "localhost" => vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            _ => Vec::new(),
        }
    }

    #[test]
    fn networks() {
        let all = "127.0.0.0/8 192.0.2.0/24 172.20.0.0/20 [::1]/128 [fd00::]/64 [fe80::]/64";
        let cases: &[(&str, &str, &str, Result<&str, HostError>)] = &[
            ("subnet", "all", "all", Ok(all)),
            (
                "host",
                "all",
                "all",
                Ok(
                    "127.0.0.1/32 192.0.2.2/32 172.20.3.4/32 [::1]/128 [fd00::2]/128 \
                    [fe80::fc:ff:fe00:1]/128",
                ),
            ),
            (
                "class",
                "all",
                "all",
                Ok("127.0.0.0/8 192.0.2.0/24 172.20.0.0/16 [::1]/128 [fd00::]/64 [fe80::]/64"),
            ),
            (
                "subnet",
                "ipv4",
                "all",
                Ok("127.0.0.0/8 192.0.2.0/24 172.20.0.0/20"),
            ),
            (
                "subnet",
                "ipv6",
                "all",
                Ok("[::1]/128 [fd00::]/64 [fe80::]/64"),
            ),
            ("subnet", "ipv6, ipv4", "all", Ok(all)),
            ("subnet", "", "all", Ok("")),
            ("bogus", "", "all", Ok("")),
            (
                "subnet",
                "all",
                "loopback-only",
                Ok("127.0.0.0/8 [::1]/128"),
            ),
            ("subnet", "all", "127.0.0.1", Ok("127.0.0.0/8")),
            (
                "subnet",
                "all",
                "127.0.0.1 127.0.0.1, 192.0.2.2",
                Ok("127.0.0.0/8 192.0.2.0/24"),
            ),
            ("subnet", "all", "[::1]", Ok("[::1]/128")),
            ("subnet", "all", "::1", Ok("[::1]/128")),
            ("subnet", "all", "localhost", Ok("127.0.0.0/8")),
            ("subnet", "all", "", Ok("")),
            ("host, host", "all", "127.0.0.1", Ok("127.0.0.1/32")),
            (
                "foo",
                "all",
                "all",
                Err(HostError::UnknownStyle {
                    word: "foo".into(),
                    value: "foo".into(),
                }),
            ),
            (
                "HOST",
                "all",
                "all",
                Err(HostError::UnknownStyle {
                    word: "HOST".into(),
                    value: "HOST".into(),
                }),
            ),
            (
                "host,subnet",
                "all",
                "all",
                Err(HostError::StyleCount("host,subnet".into())),
            ),
            ("", "all", "all", Err(HostError::StyleCount(String::new()))),
            (
                "subnet",
                "IPv4",
                "all",
                Err(HostError::UnknownProtocol {
                    word: "IPv4".into(),
                    value: "IPv4".into(),
                }),
            ),
            (
                "subnet",
                "all",
                "1.2.3.4",
                Err(HostError::NoLocalInterface("1.2.3.4".into())),
            ),
            (
                "subnet",
                "all",
                "ALL",
                Err(HostError::HostNotFound("ALL".into())),
            ),
            (
                "subnet",
                "ipv4",
                "::1",
                Err(HostError::HostNotFound("::1".into())),
            ),
        ];
        for (style, protocols, interfaces, want) in cases {
            let got = mynetworks_from(style, protocols, interfaces, &sample(), &fake_resolve);
            assert_eq!(
                got,
                want.clone().map(str::to_string),
                "{style} {protocols} {interfaces}"
            );
        }
    }

    #[test]
    fn classes_and_masks() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("class", "10.1.2.3", "255.255.255.0", "10.0.0.0/8"),
            ("class", "224.1.2.3", "255.255.255.0", "224.0.0.0/4"),
            ("subnet", "10.1.2.3", "0.0.0.0", "0.0.0.0/0"),
            ("subnet", "10.1.2.3", "255.255.255.255", "10.1.2.3/32"),
            (
                "subnet",
                "2001:db8::1",
                "ffff:ffff:ffff:ff80::",
                "[2001:db8::]/57",
            ),
            ("subnet", "2001:db8::1", "::", "[::]/0"),
        ];
        for &(style, addr, mask, want) in cases {
            let got = mynetworks_from(style, "all", "all", &[ifaddr(addr, mask)], &fake_resolve);
            assert_eq!(got.as_deref(), Ok(want), "{style} {addr} {mask}");
        }
        let got = mynetworks_from(
            "class",
            "all",
            "all",
            &[ifaddr("240.0.0.1", "255.0.0.0")],
            &fake_resolve,
        );
        assert_eq!(
            got,
            Err(HostError::UnknownClass(Ipv4Addr::new(240, 0, 0, 1)))
        );
        assert_eq!(
            mynetworks_from("subnet", "all", "all", &[], &fake_resolve),
            Err(HostError::NoInterfaces)
        );
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            HostError::StyleCount("host,subnet".into()).to_string(),
            "bad mynetworks_style value: host,subnet; specify exactly one value"
        );
        assert_eq!(
            HostError::UnknownStyle {
                word: "foo".into(),
                value: "foo".into()
            }
            .to_string(),
            "unknown mynetworks mask style value \"foo\" in \"foo\""
        );
    }
}
