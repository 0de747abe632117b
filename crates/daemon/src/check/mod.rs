//! smtpd(8)'s access control: the restriction lists of smtpd_check.c (client, HELO,
//! sender, relay, recipient, ETRN, DATA, end-of-data), access(5) table results, restriction
//! classes, DNS-based checks and the policy delegation service.
//!
//! - [`dns`]: the DNS lookups behind reject_unknown_*, reject_rbl_client, reject_rhsbl_*
//!   and check_*_{mx,ns,a}_access.
//! - [`policy`]: the SMTPD_POLICY_README client (check_policy_service).

pub mod dns;
pub mod policy;
