//! Service-implied parameters: the names that a `master.cf` service adds to the parameter
//! name space, as Postfix's postconf registers them.
//!
//! The rules, confirmed against Debian's `postconf -d`:
//! - The service's command name (the first word of the command field, compared exactly: a
//!   path such as `/usr/lib/postfix/sbin/smtp` implies nothing) selects the set. Delivery
//!   agents `local`, `error`, `virtual`, `smtp` and `lmtp` imply the queue manager's
//!   per-transport parameters; `pipe` implies those plus `_time_limit`; `spawn` implies
//!   `_time_limit` alone. Other commands (`smtpd`, `cleanup`, ...) imply nothing.
//! - Each name is the service name as written in master.cf (`relay`, or `127.0.0.1:10025`
//!   for an inet service) followed by a suffix; its default is `$` and a global parameter.
//! - A name that is already built in keeps its built-in default and is not returned here
//!   (a service `local` running `local` implies `local_destination_concurrency_limit`, whose
//!   built-in default is `2`, not `$default_destination_concurrency_limit`).

use super::lookup;

/// The suffix and default of `<service>_time_limit` (pipe and spawn).
const TIME_LIMIT: (&str, &str) = ("_time_limit", "command_time_limit");

/// The queue manager's per-transport parameters: suffix, and the global parameter whose value
/// is the default.
const TRANSPORT: &[(&str, &str)] = &[
    ("_recipient_limit", "default_recipient_limit"),
    ("_extra_recipient_limit", "default_extra_recipient_limit"),
    ("_recipient_refill_limit", "default_recipient_refill_limit"),
    ("_recipient_refill_delay", "default_recipient_refill_delay"),
    ("_delivery_slot_cost", "default_delivery_slot_cost"),
    ("_delivery_slot_loan", "default_delivery_slot_loan"),
    ("_delivery_slot_discount", "default_delivery_slot_discount"),
    ("_minimum_delivery_slots", "default_minimum_delivery_slots"),
    (
        "_initial_destination_concurrency",
        "initial_destination_concurrency",
    ),
    (
        "_destination_concurrency_limit",
        "default_destination_concurrency_limit",
    ),
    (
        "_destination_recipient_limit",
        "default_destination_recipient_limit",
    ),
    (
        "_destination_concurrency_positive_feedback",
        "default_destination_concurrency_positive_feedback",
    ),
    (
        "_destination_concurrency_negative_feedback",
        "default_destination_concurrency_negative_feedback",
    ),
    (
        "_destination_concurrency_failed_cohort_limit",
        "default_destination_concurrency_failed_cohort_limit",
    ),
    ("_destination_rate_delay", "default_destination_rate_delay"),
    ("_transport_rate_delay", "default_transport_rate_delay"),
];

/// The parameters that a master.cf service implies, as Postfix's postconf recognises them:
/// `(name, default text)` pairs such as `("relay_destination_concurrency_limit",
/// "$default_destination_concurrency_limit")` for a service `relay` whose command is `smtp`.
///
/// `command` is the master.cf command field (its first word is used, so the whole field
/// with arguments may be passed). Names that are built in are left out: they keep their
/// built-in default. Pairs come in a fixed order, not sorted.
pub fn service_params(service: &str, command: &str) -> Vec<(String, String)> {
    let program = command.split_ascii_whitespace().next().unwrap_or("");
    let (time_limit, transport) = match program {
        "local" | "error" | "virtual" | "smtp" | "lmtp" => (false, true),
        "pipe" => (true, true),
        "spawn" => (true, false),
        _ => (false, false),
    };
    let time_limit = time_limit.then_some(TIME_LIMIT);
    let transport = if transport { TRANSPORT } else { &[] };
    time_limit
        .iter()
        .chain(transport)
        .map(|(suffix, global)| (format!("{service}{suffix}"), format!("${global}")))
        .filter(|(name, _)| lookup(name).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(service: &str, command: &str) -> Vec<String> {
        service_params(service, command)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn counts_by_command() {
        let cases: &[(&str, &str, usize)] = &[
            ("relay", "smtp", 16),
            ("qux", "lmtp", 16),
            ("err", "error", 16),
            ("baz", "virtual", 16),
            ("bar", "local", 16),
            ("foo", "pipe", 17),
            ("foo", "pipe flags=R user=nobody argv=/bin/true", 17),
            ("sp", "spawn", 1),
            ("2525", "smtpd", 0),
            ("x", "/usr/lib/postfix/sbin/smtp", 0),
            ("x", "", 0),
            // local_destination_concurrency_limit and local_destination_recipient_limit are
            // built in with their own defaults.
            ("local", "local", 14),
        ];
        for &(service, command, count) in cases {
            assert_eq!(names(service, command).len(), count, "{service} {command}");
        }
    }

    #[test]
    fn defaults() {
        let relay = service_params("relay", "smtp");
        assert!(relay.contains(&(
            "relay_destination_concurrency_limit".to_string(),
            "$default_destination_concurrency_limit".to_string()
        )));
        assert!(relay.contains(&(
            "relay_initial_destination_concurrency".to_string(),
            "$initial_destination_concurrency".to_string()
        )));
        assert_eq!(
            service_params("sp", "spawn"),
            [(
                "sp_time_limit".to_string(),
                "$command_time_limit".to_string()
            )]
        );
        assert_eq!(
            names("127.0.0.1:10025", "smtp")[0],
            "127.0.0.1:10025_recipient_limit"
        );
    }

    #[test]
    fn every_default_names_a_built_in() {
        for (_, global) in TRANSPORT.iter().chain([&TIME_LIMIT]) {
            assert!(lookup(global).is_some(), "{global}");
        }
    }
}
