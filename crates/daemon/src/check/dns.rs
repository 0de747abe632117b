//! DNS lookups for the restrictions: the interface the engine calls. This file is a
//! placeholder while the dnsanvil branch writes the lookups; every lookup here answers
//! "temporary failure" or "not listed", which the engine turns into Postfix's 450 deferrals,
//! never into a permanent reject or a permit.

#![allow(clippy::unused_async)]

use std::net::IpAddr;

use tern_config::config::Config;
use tern_config::mastercf::Service;

/// The outcome of reject_unknown_hostname's and reject_unknown_mailhost's lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLookup {
    Found,
    NotFound,
    Malformed,
    TempFail,
    NullMx,
    PolicyDropped,
}

/// Which records check_*_{mx,ns,a}_access follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Mx,
    Ns,
    A,
}

/// The server hosts of a name, for check_*_{mx,ns,a}_access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerList {
    /// Host names with their addresses, in Postfix's order.
    Hosts(Vec<(String, Vec<IpAddr>)>),
    /// Nothing to look up.
    Dunno,
    /// A temporary failure: `451 4.3.0 <name>: Temporary lookup failure`-style deferral.
    TempFail,
}

/// What rbl_reject_reply() expands.
#[derive(Debug, Clone, Copy)]
pub struct RblContext<'a> {
    pub class: &'a str,
    pub what: &'a str,
    pub client_name: &'a str,
    pub client_address: &'a str,
    pub reverse_client_name: &'a str,
    pub helo_name: &'a str,
    pub sender: &'a str,
    pub recipient: &'a str,
}

/// The DNS side of the restrictions, one per settings load.
#[derive(Debug, Default)]
pub struct DnsChecks {}

impl DnsChecks {
    pub fn from_config(
        _config: &Config,
        _service: Option<&Service>,
    ) -> Result<Self, crate::relay::PolicyError> {
        Ok(Self {})
    }

    pub async fn host(&self, _name: &str) -> HostLookup {
        HostLookup::TempFail
    }

    pub async fn mailhost(&self, _name: &str) -> HostLookup {
        HostLookup::TempFail
    }

    pub async fn rbl_addr(
        &self,
        _rbl: &str,
        _addr: IpAddr,
        _ctx: &RblContext<'_>,
    ) -> Option<(u16, String, String)> {
        None
    }

    pub async fn rbl_domain(
        &self,
        _rbl: &str,
        _domain: &str,
        _ctx: &RblContext<'_>,
    ) -> Option<(u16, String, String)> {
        None
    }

    pub async fn servers(&self, _name: &str, _kind: ServerKind) -> ServerList {
        ServerList::TempFail
    }
}
