//! permit_mx_backup (smtpd_check.c permit_mx_backup(), i_am_mx(), has_my_addr(),
//! permit_mx_primary(), all_auth_mx_addr()): accept mail for a domain when this host is
//! one of its backup MX hosts and not a primary one.
//!
//! - A destination this host takes anyway (local, virtual, relay_domains) is permitted
//!   without DNS, a routed address or an address literal is no decision
//!   ([`tern_rewrite::MxBackup`]).
//! - The domain's MX records are split into the primaries (the best preference) and the
//!   rest. This host is an MX when an MX host name is a local domain (resolve_local:
//!   mydestination, or an address literal of this host), or, failing that for every
//!   host, when an MX host has one of this host's addresses (inet_interfaces,
//!   proxy_interfaces).
//! - Permitted when this host is not a primary, is one of the rest, and (with
//!   permit_mx_backup_networks) every address of every primary is in that list.
//! - DNS failures defer a later reject (DEFER_IF_REJECT) with Postfix's 450 4.4.4 texts,
//!   and are no decision; a domain without MX records is no decision.
//!
//! Trust: the recipient domain comes from the network; each DNS query is bounded by the
//! DnsChecks timeout, and the MX list by what one DNS reply holds.

use std::net::IpAddr;

use tern_client::nexthop::dns::{Mx, Status as DnsStatus};
use tern_rewrite::MxBackup;

use super::dns::dns_text;
use super::{Checker, ErrorClass, RECIPIENT, Result, Status};

impl Checker<'_> {
    /// permit_mx_backup for `rcpt`: [`Status::Ok`] when this host is a backup MX of its
    /// domain, else [`Status::Dunno`] (maybe with a deferral kept for a later reject).
    pub(super) async fn permit_mx_backup(&mut self, rcpt: &str) -> Result<Status> {
        let domain = match self.r.resolver().mx_backup_domain(rcpt) {
            MxBackup::Decided(d) => return self.decision(d, ErrorClass::Policy),
            MxBackup::Domain(d) => d,
        };
        let mut mx = match self.r.setup().dns.mx_records(&domain).await {
            Ok(list) if !list.is_empty() => list,
            Ok(_) => return Ok(Status::Dunno),
            Err(s) => {
                // "If we can't look up the destination, play safe and turn reject into
                // defer." A null MX or no MX at all is no decision.
                if s == DnsStatus::Retry {
                    self.defer_if_reject(
                        ErrorClass::Policy,
                        450,
                        "4.4.4",
                        format!(
                            "<{rcpt}>: {RECIPIENT} rejected: Unable to look up mail exchanger information: {}",
                            dns_text(s)
                        ),
                    );
                }
                return Ok(Status::Dunno);
            }
        };
        mx.sort_by_key(|m| m.pref);
        let best = mx[0].pref;
        let split = mx.iter().position(|m| m.pref != best).unwrap_or(mx.len());
        let (primaries, rest) = mx.split_at(split);
        if self.i_am_mx(primaries, rcpt).await {
            return Ok(Status::Dunno);
        }
        if rest.is_empty() || !self.i_am_mx(rest, rcpt).await {
            return Ok(Status::Dunno);
        }
        if self.r.setup().perm_mx_networks.is_some() && !self.mx_primary(primaries, rcpt).await {
            return Ok(Status::Dunno);
        }
        Ok(Status::Ok)
    }

    /// i_am_mx(): a host name that is a local domain, else a host with one of this
    /// host's addresses.
    async fn i_am_mx(&mut self, list: &[Mx], rcpt: &str) -> bool {
        let resolver = self.r.resolver();
        if list
            .iter()
            .any(|m| resolver.is_local(&m.host).unwrap_or(false))
        {
            return true;
        }
        for m in list {
            match self.r.setup().dns.host_addrs(&m.host).await {
                Ok(addrs) => {
                    if addrs.iter().any(|&a| resolver.is_own_addr(a)) {
                        return true;
                    }
                }
                Err((text, _)) => {
                    // has_my_addr(): "If we can't lookup the host, defer rather than
                    // reject."
                    self.defer_if_reject(
                        ErrorClass::Policy,
                        450,
                        "4.4.4",
                        format!(
                            "<{rcpt}>: {RECIPIENT} rejected: Unable to look up mail exchanger host {}: {text}",
                            m.host
                        ),
                    );
                    return false;
                }
            }
        }
        false
    }

    /// permit_mx_primary(): every address of every primary MX host is in
    /// permit_mx_backup_networks.
    async fn mx_primary(&mut self, primaries: &[Mx], rcpt: &str) -> bool {
        for m in primaries {
            let addrs: Vec<IpAddr> = match self.r.setup().dns.host_addrs(&m.host).await {
                Ok(a) => a,
                Err((_, s)) => {
                    self.defer_if_reject(
                        ErrorClass::Policy,
                        450,
                        "4.4.4",
                        format!(
                            "<{rcpt}>: {RECIPIENT} rejected: Unable to look up host {} as mail exchanger: {}",
                            m.host,
                            dns_text(s)
                        ),
                    );
                    return false;
                }
            };
            for a in addrs {
                let Some(list) = self.r.setup().perm_mx_networks.as_ref() else {
                    return true;
                };
                match list.match_namadr(&m.host, a) {
                    Ok(true) => {}
                    Ok(false) => return false,
                    Err(_) => {
                        self.warn(&format!(
                            "all_auth_mx_addr: permit_mx_backup_networks lookup error for address {} for {}",
                            tern_rewrite::matchlist::addr_text(a),
                            m.host
                        ));
                        self.defer_if_reject(
                            ErrorClass::Policy,
                            450,
                            "4.4.4",
                            format!(
                                "<{rcpt}>: {RECIPIENT} rejected: Unable to verify host {} as mail exchanger",
                                m.host
                            ),
                        );
                        return false;
                    }
                }
            }
        }
        true
    }
}
