//! smtpd access control side by side with Debian's Postfix 3.7: each configuration below
//! is started once as a private Postfix and once as a Tern daemon with the same main.cf
//! restriction lines and table files, and every case (one SMTP session, one line of the
//! table) is sent to both from a 127.0.0.N source address (mynetworks is 127.0.0.0/30: 1
//! is inside, 9 outside). The greeting code, every reply (code, enhanced status, text)
//! and the session's `NOQUEUE: reject: ...` log lines must be equal; a failure prints the
//! configuration, the client, the commands and both answers. Debian's answers are the
//! truth. No check here needs DNS (Debian's Postfix asks the system resolver).
//!
//! While working on one configuration: `ACCESS_SBS_CONFIGS=helo,early` runs only those,
//! `ACCESS_SBS_SHOW=1` prints the cases that agree too (Debian's answers).
//!
//! Needs root, Debian's postfix (and postmap) and `target/<profile>/postfix` (`cargo
//! build -p tern-commands --bins`); fails, never skips, without them.

mod access_util;

use access_util::{Case, Config, compare_config};

const CONFIGS: &[Config] = &[
    Config {
        // compatibility_level 3.6 defaults: smtpd_relay_restrictions = permit_mynetworks
        // permit_sasl_authenticated defer_unauth_destination, local_recipient_maps from
        // the password file and the aliases.
        name: "defaults",
        main_cf: "",
        files: &[],
        postmap: &[],
    },
    Config {
        name: "relay_domains",
        main_cf: "relay_domains = relay.example\n\
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
            local_recipient_maps =\n",
        files: &[],
        postmap: &[],
    },
    Config {
        // Reject at the stage itself: connect, HELO, MAIL.
        name: "early",
        main_cf: "smtpd_delay_reject = no\n\
            local_recipient_maps =\n\
            smtpd_client_restrictions = check_client_access \
            inline:{127.0.0.5=REJECT, 127.0.0.6=DEFER}\n\
            smtpd_helo_restrictions = check_helo_access inline:{bad.example=REJECT}, \
            reject_non_fqdn_helo_hostname\n\
            smtpd_sender_restrictions = check_sender_access texthash:{dir}/senders, \
            reject_non_fqdn_sender\n",
        files: &[(
            "senders",
            "spam@bad.example REJECT spammer\n\
             soft@ext.example 451 4.7.1 sender later\n\
             ok@ext.example OK\n\
             bad.example REJECT\n",
        )],
        postmap: &[],
    },
    Config {
        // access(5) results in check_recipient_access, and a restriction class.
        name: "access_results",
        main_cf: "local_recipient_maps =\n\
            smtpd_relay_restrictions =\n\
            smtpd_restriction_classes = myclass\n\
            myclass = check_sender_access texthash:{dir}/class_senders, reject\n\
            smtpd_recipient_restrictions = check_recipient_access texthash:{dir}/rcpt, \
            permit_mynetworks, reject_unauth_destination\n",
        files: &[
            (
                "rcpt",
                "ok@remote.example OK\n\
                 rej@remote.example REJECT\n\
                 rejtext@remote.example REJECT no mail for you\n\
                 def@remote.example DEFER\n\
                 deftext@remote.example DEFER come back later\n\
                 c450@remote.example 450 custom soft\n\
                 c550@remote.example 550 5.7.9 custom hard\n\
                 c421@remote.example 421 closing now\n\
                 dunno@remote.example DUNNO\n\
                 dip@remote.example DEFER_IF_PERMIT maybe later\n\
                 dir@remote.example DEFER_IF_REJECT maybe not\n\
                 num@remote.example 12345\n\
                 warn@remote.example WARN watch this\n\
                 cls@remote.example myclass\n\
                 blocked.example REJECT domain blocked\n\
                 sub.example OK\n\
                 user@ REJECT local part blocked\n",
            ),
            ("class_senders", "good@ext.example OK\n"),
        ],
        postmap: &[],
    },
    Config {
        name: "helo",
        main_cf: "smtpd_helo_required = yes\n\
            smtpd_helo_restrictions = reject_invalid_helo_hostname, \
            reject_non_fqdn_helo_hostname, check_helo_access hash:{dir}/helo\n",
        files: &[(
            "helo",
            "bad.example REJECT you are bad\n\
             okhelo.example OK\n\
             soft.example DEFER_IF_PERMIT helo later\n\
             warned.example WARN helo noted\n",
        )],
        postmap: &["helo"],
    },
    Config {
        name: "fqdn_strict",
        main_cf: "strict_rfc821_envelopes = yes\n\
            local_recipient_maps =\n\
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
            smtpd_sender_restrictions = reject_non_fqdn_sender\n\
            smtpd_recipient_restrictions = reject_non_fqdn_recipient\n",
        files: &[],
        postmap: &[],
    },
    Config {
        name: "unlisted",
        main_cf: "local_recipient_maps = texthash:{dir}/local_users\n\
            virtual_alias_domains = valias.example\n\
            virtual_alias_maps = texthash:{dir}/valias\n\
            virtual_mailbox_domains = vmbox.example\n\
            virtual_mailbox_maps = texthash:{dir}/vmbox\n\
            relay_domains = relay.example\n\
            relay_recipient_maps = texthash:{dir}/relay_rcpts\n\
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
            smtpd_sender_restrictions = reject_unlisted_sender\n\
            smtpd_recipient_restrictions = reject_unlisted_recipient\n",
        files: &[
            ("local_users", "alice x\npostmaster x\n"),
            ("valias", "info@valias.example alice@mx.example.test\n"),
            ("vmbox", "bob@vmbox.example bob/\n"),
            ("relay_rcpts", "carol@relay.example x\n"),
        ],
        postmap: &[],
    },
    Config {
        name: "warn_if_reject",
        main_cf: "local_recipient_maps =\n\
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
            smtpd_sender_restrictions = warn_if_reject reject_non_fqdn_sender\n\
            smtpd_recipient_restrictions = warn_if_reject reject_non_fqdn_recipient, \
            warn_if_reject check_recipient_access inline:{wr@mx.example.test=REJECT}, \
            check_recipient_access inline:{hard@mx.example.test=REJECT}\n",
        files: &[],
        postmap: &[],
    },
    Config {
        // defer, defer_if_permit, defer_if_reject and permit_auth_destination, reached
        // through restriction classes.
        name: "defer_verbs",
        main_cf: "local_recipient_maps =\n\
            relay_domains = relay.example\n\
            smtpd_relay_restrictions =\n\
            smtpd_restriction_classes = c_defer, c_dip, c_dir, c_dip_rej, c_dir_perm, c_auth\n\
            c_defer = defer\n\
            c_dip = defer_if_permit, permit\n\
            c_dir = defer_if_reject, reject\n\
            c_dip_rej = defer_if_permit, reject\n\
            c_dir_perm = defer_if_reject, permit\n\
            c_auth = permit_auth_destination, reject\n\
            smtpd_sender_restrictions = check_sender_access \
            inline:{dip@ext.example=DEFER_IF_PERMIT}\n\
            smtpd_recipient_restrictions = check_recipient_access texthash:{dir}/classes, \
            permit_mynetworks, reject_unauth_destination\n",
        files: &[(
            "classes",
            "defer@ c_defer\n\
             dip@ c_dip\n\
             dir@ c_dir\n\
             diprej@ c_dip_rej\n\
             dirperm@ c_dir_perm\n\
             auth@ c_auth\n",
        )],
        postmap: &[],
    },
    Config {
        name: "data",
        main_cf: "local_recipient_maps =\n\
            smtpd_data_restrictions = reject_unauth_pipelining, reject_multi_recipient_bounce\n",
        files: &[],
        postmap: &[],
    },
    Config {
        // Before Postfix 2.10: no smtpd_relay_restrictions, relay_domains = $mydestination,
        // append_dot_mydomain = yes.
        name: "compat0",
        main_cf: "compatibility_level = 0\n\
            smtpd_relay_restrictions =\n\
            local_recipient_maps =\n\
            smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n",
        files: &[],
        postmap: &[],
    },
    Config {
        name: "client_access",
        main_cf: "local_recipient_maps =\n\
            smtpd_client_restrictions = check_client_access texthash:{dir}/clients, \
            permit_mynetworks, reject\n",
        files: &[(
            "clients",
            "127.0.0.5 OK\n\
             127.0.0.6 REJECT client blocked\n\
             127.0.0.7 DEFER_IF_REJECT later client\n\
             127.0.0.8 WARN client noted\n\
             127.0.0.10 450 4.7.0 slow down\n\
             127.0.0.11 DUNNO\n",
        )],
        postmap: &[],
    },
    Config {
        // Relay control over address forms that end local or at a relay domain.
        name: "relay_forms",
        main_cf: "relay_domains = relay.example\n\
            local_recipient_maps =\n\
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n",
        files: &[],
        postmap: &[],
    },
    Config {
        // The same with Postfix's routing switches turned the other way.
        name: "relay_forms_lax",
        main_cf: "relay_domains = relay.example\n\
            local_recipient_maps =\n\
            allow_untrusted_routing = yes\n\
            allow_percent_hack = no\n\
            swap_bangpath = no\n\
            resolve_dequoted_address = no\n\
            resolve_numeric_domain = yes\n\
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n",
        files: &[],
        postmap: &[],
    },
];

/// (configuration, client 127.0.0.N, commands separated by `|`).
#[rustfmt::skip]
const CASES: &[Case] = &[
    // defaults
    ("defaults", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<root@mx.example.test>"),
    ("defaults", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<nosuch@mx.example.test>"),
    ("defaults", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<POSTMASTER@MX.EXAMPLE.TEST>"),
    ("defaults", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<root@localhost>"),
    ("defaults", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("defaults", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("defaults", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<root>"),
    ("defaults", 9, "MAIL FROM:<a@ext.example>|RCPT TO:<postmaster>"),
    ("defaults", 9, "HELO c.example|RCPT TO:<root@mx.example.test>"),
    ("defaults", 9, "EHLO c.example|MAIL FROM:<>|RCPT TO:<postmaster@mx.example.test>"),
    ("defaults", 9, "EHLO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<@mx.example.test:root@mx.example.test>"),
    ("defaults", 2, "EHLO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>|RCPT TO:<nosuch@mx.example.test>"),
    // relay_domains
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@relay.example>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@sub.relay.example>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@RELAY.Example>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@relay.example.>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@notrelay.example>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x%remote.example@relay.example>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<remote.example!x@relay.example>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x%relay.example@mx.example.test>"),
    ("relay_domains", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"x@remote.example\"@relay.example>"),
    ("relay_domains", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("relay_domains", 3, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("relay_domains", 4, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    // early (smtpd_delay_reject = no)
    ("early", 5, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("early", 6, "HELO c.example|MAIL FROM:<a@ext.example>"),
    ("early", 9, "HELO bad.example|MAIL FROM:<a@ext.example>"),
    ("early", 9, "HELO localhost|MAIL FROM:<a@ext.example>"),
    ("early", 9, "EHLO c.example|MAIL FROM:<spam@bad.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("early", 9, "EHLO c.example|MAIL FROM:<other@bad.example>"),
    ("early", 9, "EHLO c.example|MAIL FROM:<user>"),
    ("early", 9, "EHLO c.example|MAIL FROM:<soft@ext.example>|MAIL FROM:<ok@ext.example>"),
    ("early", 9, "EHLO c.example|MAIL FROM:<ok@ext.example>|RCPT TO:<x@remote.example>"),
    ("early", 9, "EHLO c.example|MAIL FROM:<>|RCPT TO:<postmaster@mx.example.test>"),
    ("early", 1, "HELO localhost|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("early", 1, "HELO c.example|MAIL FROM:<spam@bad.example>"),
    // access_results
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<ok@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<rej@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<rejtext@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<def@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<deftext@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<c450@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<c550@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<c421@remote.example>|RCPT TO:<ok@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dunno@remote.example>"),
    ("access_results", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dunno@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dip@remote.example>"),
    ("access_results", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dip@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dir@remote.example>"),
    ("access_results", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dir@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<num@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<warn@remote.example>"),
    ("access_results", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<warn@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<good@ext.example>|RCPT TO:<cls@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<cls@remote.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@blocked.example>"),
    ("access_results", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@a.blocked.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@a.sub.example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@mx.example.test>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<OK@Remote.Example>"),
    ("access_results", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<ok+ext@remote.example>"),
    // helo
    ("helo", 9, "MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO|MAIL FROM:<a@ext.example>"),
    ("helo", 9, "HELO localhost|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO bad_host!x|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO [127.0.0.1]|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO [999.1.1.1]|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO 192.0.2.1|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO bad.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO BAD.Example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO sub.bad.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO okhelo|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "HELO soft.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "EHLO warned.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "EHLO good.example.|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 1, "EHLO localhost|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("helo", 9, "EHLO a..b.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    // fqdn_strict
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:a@ext.example"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM: <a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<user>|RCPT TO:<postmaster@mx.example.test>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<user@localhost>|RCPT TO:<postmaster@mx.example.test>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<>|RCPT TO:<postmaster@mx.example.test>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:postmaster@mx.example.test"),
    ("fqdn_strict", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<root@localhost>"),
    ("fqdn_strict", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"a b\"@mx.example.test>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<a@[127.0.0.1]>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<a@mx.example.test.>"),
    ("fqdn_strict", 9, "HELO c.example|MAIL FROM:<a@ext.example> SIZE=100|RCPT TO:<a@mx.example.test> NOTIFY=NEVER"),
    // unlisted
    ("unlisted", 9, "HELO c.example|MAIL FROM:<alice@mx.example.test>|RCPT TO:<alice@mx.example.test>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<nobody@mx.example.test>|RCPT TO:<alice@mx.example.test>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<nobody@mx.example.test>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<info@valias.example>|RCPT TO:<info@valias.example>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<x@valias.example>|RCPT TO:<alice@mx.example.test>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@valias.example>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<bob@vmbox.example>|RCPT TO:<bob@vmbox.example>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<x@vmbox.example>|RCPT TO:<alice@mx.example.test>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@vmbox.example>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<carol@relay.example>|RCPT TO:<carol@relay.example>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<x@relay.example>|RCPT TO:<alice@mx.example.test>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@relay.example>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("unlisted", 1, "HELO c.example|MAIL FROM:<nobody@mx.example.test>|RCPT TO:<x@remote.example>"),
    ("unlisted", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<alice+tag@mx.example.test>"),
    // warn_if_reject
    ("warn_if_reject", 9, "HELO c.example|MAIL FROM:<user>|RCPT TO:<postmaster@mx.example.test>"),
    ("warn_if_reject", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<wr@mx.example.test>"),
    ("warn_if_reject", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<hard@mx.example.test>"),
    ("warn_if_reject", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<root@localhost>"),
    ("warn_if_reject", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("warn_if_reject", 9, "HELO c.example|MAIL FROM:<user>|RCPT TO:<wr@mx.example.test>|RCPT TO:<hard@mx.example.test>"),
    ("warn_if_reject", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    // defer_verbs
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<defer@remote.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dip@remote.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dir@remote.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<diprej@remote.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dirperm@remote.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<auth@relay.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<auth@remote.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<auth@mx.example.test>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<auth%remote.example@relay.example>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<dip@ext.example>|RCPT TO:<x@mx.example.test>"),
    ("defer_verbs", 9, "HELO c.example|MAIL FROM:<dip@ext.example>|RCPT TO:<x@remote.example>"),
    ("defer_verbs", 1, "HELO c.example|MAIL FROM:<dip@ext.example>|RCPT TO:<x@remote.example>"),
    ("defer_verbs", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<dir@remote.example>|RCPT TO:<x@remote.example>"),
    // data
    ("data", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>|DATA"),
    ("data", 9, "HELO c.example|MAIL FROM:<a@ext.example>\nRCPT TO:<postmaster@mx.example.test>\nDATA"),
    ("data", 9, "EHLO c.example|MAIL FROM:<a@ext.example>\nRCPT TO:<postmaster@mx.example.test>\nDATA"),
    ("data", 9, "EHLO c.example\nMAIL FROM:<a@ext.example>\nRCPT TO:<postmaster@mx.example.test>\nDATA"),
    ("data", 9, "EHLO c.example|MAIL FROM:<>|RCPT TO:<postmaster@mx.example.test>|RCPT TO:<root@mx.example.test>|DATA"),
    ("data", 9, "EHLO c.example|MAIL FROM:<>|RCPT TO:<postmaster@mx.example.test>|DATA"),
    ("data", 9, "EHLO c.example|MAIL FROM:<a@ext.example>|DATA"),
    // compat0
    ("compat0", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("compat0", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@mx.example.test>"),
    ("compat0", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@mx>"),
    ("compat0", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote>"),
    ("compat0", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x%remote.example@mx.example.test>"),
    ("compat0", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@localhost>"),
    ("compat0", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("compat0", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@sub.mx.example.test>"),
    // client_access
    ("client_access", 5, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 6, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 7, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 8, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 10, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 11, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 1, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>"),
    ("client_access", 5, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<x@remote.example>"),
    ("client_access", 6, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<postmaster@mx.example.test>|RCPT TO:<root@mx.example.test>"),
    // relay_forms and relay_forms_lax
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@[999.1.1.1]>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@exa_mple.com>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@-bad.example>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<r\u{e9}sum\u{e9}@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@r\u{e9}mote.example>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@[192.0.2.1].>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@remote.example@>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@[127.0.0.1]>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@[IPv6:::1]>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@127.0.0.1>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user%mx.example.test@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user%relay.example@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user%remote.example@relay.example>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user\"@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user@relay.example\"@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user@remote.example\"@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user%remote.example\"@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@mx.example.test.>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@localhost.>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<@remote.example:user@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<@mx.example.test:user@relay.example>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<mx.example.test!user@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<relay.example!user@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<remote.example!user@relay.example>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<relay.example!user>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@relay.example@mx.example.test>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@RELAY.EXAMPLE.>"),
    ("relay_forms", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<MX.Example.Test!user>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@[127.0.0.1]>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@[IPv6:::1]>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@127.0.0.1>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user%mx.example.test@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user%relay.example@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user%remote.example@relay.example>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user\"@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user@relay.example\"@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user@remote.example\"@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<\"user%remote.example\"@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@mx.example.test.>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@localhost.>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<@remote.example:user@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<@mx.example.test:user@relay.example>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<mx.example.test!user@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<relay.example!user@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<remote.example!user@relay.example>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<relay.example!user>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@relay.example@mx.example.test>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<user@RELAY.EXAMPLE.>"),
    ("relay_forms_lax", 9, "HELO c.example|MAIL FROM:<a@ext.example>|RCPT TO:<MX.Example.Test!user>"),
];

/// The corpus: at least 10 configurations and 120 cases, all compared.
#[test]
fn restrictions_side_by_side_with_debian() {
    assert!(CONFIGS.len() >= 10 && CASES.len() >= 120);
    for (config, _, _) in CASES {
        assert!(
            CONFIGS.iter().any(|c| c.name == *config),
            "case names an unknown configuration {config}"
        );
    }
    // Two configurations at a time: each pair of servers is started once and serves
    // all its cases.
    // ACCESS_SBS_CONFIGS=a,b runs only those configurations (while working on them).
    let only = std::env::var("ACCESS_SBS_CONFIGS").ok();
    let configs: Vec<&Config> = CONFIGS
        .iter()
        .filter(|c| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|n| n == c.name))
        })
        .collect();
    let results: Vec<(usize, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .chunks(configs.len().div_ceil(2).max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| compare_config(c, CASES))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a configuration's thread"))
            .collect()
    });
    let run: usize = results.iter().map(|r| r.0).sum();
    if only.is_none() {
        assert_eq!(run, CASES.len());
    }
    let diffs: Vec<&String> = results.iter().flat_map(|r| &r.1).collect();
    assert!(
        diffs.is_empty(),
        "{} of {run} cases differ from Debian's Postfix:\n{}",
        diffs.len(),
        diffs
            .iter()
            .map(|d| d.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
