//! pipe(8): delivery to an external command named by a master.cf entry's `argv=`, as
//! Postfix 3.7's pipe(8) does it.
//!
//! The entry's attributes ([`PipeService::from_service`]): `flags=` (B, D, F, O, R, X, h,
//! q, u, `.`, `>`), `user=name[:group]` (required; never root, the mail_owner or the
//! setgid_group), `size=`, `eol=`, `null_sender=`, `directory=`, then `argv=` and the rest
//! of the line. The command's arguments take `${sender}`, `${nexthop}`, `${size}`,
//! `${queue_id}`, `${client_address}` ... once, and an argument with `${recipient}`,
//! `${original_recipient}`, `${user}`, `${extension}`, `${mailbox}` or `${domain}` once per
//! recipient ([`expand_argv`]). `<service>_time_limit` bounds the run; the exit status maps
//! as for local(8)'s commands ([`crate::local::command`]); success is `delivered via
//! SERVICE service` (and the first 100 characters of any output in parentheses).
//!
//! How many recipients a request holds is the daemon's business
//! (`<service>_destination_recipient_limit`); flags D and O need it to be 1 and defer with
//! `4.3.5 mail system configuration error` otherwise, as Postfix does.
//!
//! Security: the command runs with the `user=` rights only (checked here, and refused again
//! by the runner for uid/gid 0); recipient addresses are untrusted and become single
//! arguments, never shell text (no shell is involved unless the administrator's argv
//! names one).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use tern_config::config::Config;
use tern_config::expand::{Mode, referenced_names};
use tern_message::address::quote_822_local;

use crate::local::command::{self, CommandResult, CommandSpec, Program};
use crate::local::message::{CopyFlags, Message, prefix};
use crate::local::settings::{Params, parse_time, split_list};
use crate::request::{Delivered, DeliveryRequest, Outcome};

/// pipe(8)'s `flags=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeFlags {
    /// B: a blank line after the message.
    pub blank: bool,
    /// D: `Delivered-To: recipient`.
    pub delivered: bool,
    /// F: the `From sender time` line.
    pub from_line: bool,
    /// O: `X-Original-To: original recipient`.
    pub orig_rcpt: bool,
    /// R: `Return-Path: <sender>`.
    pub return_path: bool,
    /// X: final delivery (the DSN action is `delivered`, else `relayed`).
    pub final_delivery: bool,
    /// `.`: dot-stuffing.
    pub dot: bool,
    /// `>`: `>From ` quoting.
    pub quote_from: bool,
    /// h: fold the domain of `${recipient}` and `${nexthop}` to lower case.
    pub fold_host: bool,
    /// q: quote the local part of addresses as RFC 5322 requires.
    pub quote_local: bool,
    /// u: fold the local part of `${recipient}` to lower case.
    pub fold_user: bool,
}

/// One pipe(8) service, from master.cf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeService {
    pub name: String,
    pub flags: PipeFlags,
    pub uid: u32,
    pub gid: u32,
    pub size_limit: u64,
    pub eol: String,
    pub null_sender: String,
    pub directory: Option<PathBuf>,
    pub argv: Vec<String>,
    pub time_limit: Duration,
    pub recipient_delimiter: String,
    pub export_environment: Vec<String>,
    pub import_environment: Vec<String>,
}

/// A master.cf entry pipe(8) cannot run (fatal in Postfix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipeError {
    #[error("no master.cf service {0}")]
    NoService(String),
    #[error("unknown flag: {0} (ignored)")]
    UnknownFlag(char),
    #[error("unknown attribute name: {0}")]
    UnknownAttribute(String),
    #[error("get_service_attr: unknown username: {0}")]
    UnknownUser(String),
    #[error("get_service_attr: unknown group: {0}")]
    UnknownGroup(String),
    #[error("get_service_attr: bad size= value: {0}")]
    BadSize(String),
    #[error("missing user= command-line attribute")]
    MissingUser,
    #[error("missing argv= command-line attribute")]
    MissingArgv,
    #[error("user= command-line attribute specifies root privileges")]
    Root,
    #[error("user= command-line attribute specifies privileged group id 0")]
    RootGroup,
    #[error("user= command-line attribute specifies mail system owner {0}")]
    MailOwner(String),
    #[error("user= command-line attribute specifies mail system {0} group id {1}")]
    SetgidGroup(String, u32),
    #[error("file {dir}/master.cf: service {service}: unknown macro name: \"{name}\"")]
    UnknownMacro {
        dir: String,
        service: String,
        name: String,
    },
    #[error("{0}")]
    Config(String),
}

/// The macros pipe(8) knows; `true` for those expanded once per recipient.
const MACROS: &[(&str, bool)] = &[
    ("nexthop", false),
    ("recipient", true),
    ("original_recipient", true),
    ("sender", false),
    ("user", true),
    ("extension", true),
    ("mailbox", true),
    ("domain", true),
    ("size", false),
    ("client_address", false),
    ("client_hostname", false),
    ("client_port", false),
    ("client_protocol", false),
    ("client_helo", false),
    ("sasl_method", false),
    ("sasl_username", false),
    ("sasl_sender", false),
    ("queue_id", false),
];

impl PipeService {
    /// Reads the master.cf entry `service` and the parameters it uses.
    pub fn from_service(config: &Config, service: &str) -> Result<PipeService, PipeError> {
        let entry = config
            .master
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| PipeError::NoService(service.to_owned()))?;
        let p = Params {
            config,
            service: Some(entry),
        };
        let text = |name: &str| p.text(name).map_err(|e| PipeError::Config(e.to_string()));
        let mut flags = PipeFlags::default();
        let mut user: Option<String> = None;
        let mut size_limit = 0;
        let mut eol = "\n".to_owned();
        let mut null_sender = "MAILER-DAEMON".to_owned();
        let mut directory = None;
        let mut argv: Option<Vec<String>> = None;
        let mut args = entry.args.iter();
        while let Some(arg) = args.next() {
            if arg == "-o" {
                args.next();
                continue;
            }
            if arg.starts_with('-') {
                continue; // -v, -D and the like
            }
            let (key, value) = arg.split_once('=').unwrap_or((arg.as_str(), ""));
            match key.to_ascii_lowercase().as_str() {
                "flags" => flags = parse_flags(value)?,
                "user" => user = Some(value.to_owned()),
                "size" => {
                    size_limit = value
                        .parse()
                        .map_err(|_| PipeError::BadSize(value.to_owned()))?;
                }
                "eol" => eol = unescape(value),
                "null_sender" => value.clone_into(&mut null_sender),
                "directory" => directory = Some(PathBuf::from(value)),
                "chroot" => {} // XXX: chroot= is not supported (needs root in the child).
                "argv" => {
                    let mut v = vec![value.to_owned()];
                    v.extend(args.by_ref().cloned());
                    argv = Some(v);
                    break;
                }
                _ => return Err(PipeError::UnknownAttribute(arg.clone())),
            }
        }
        let user = user.ok_or(PipeError::MissingUser)?;
        let argv = argv.ok_or(PipeError::MissingArgv)?;
        let (uname, group) = match user.split_once(':') {
            Some((u, g)) if !g.is_empty() => (u, Some(g)),
            Some((u, _)) => (u, None),
            None => (user.as_str(), None),
        };
        let pw = nix::unistd::User::from_name(uname)
            .ok()
            .flatten()
            .ok_or_else(|| PipeError::UnknownUser(uname.to_owned()))?;
        let uid = pw.uid.as_raw();
        let gid = match group {
            Some(g) => nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| PipeError::UnknownGroup(g.to_owned()))?
                .gid
                .as_raw(),
            None => pw.gid.as_raw(),
        };
        if uid == 0 {
            return Err(PipeError::Root);
        }
        if gid == 0 {
            return Err(PipeError::RootGroup);
        }
        let owner = text("mail_owner")?;
        if let Ok(Some(o)) = nix::unistd::User::from_name(&owner) {
            if o.uid.as_raw() == uid {
                return Err(PipeError::MailOwner(owner));
            }
            if o.gid.as_raw() == gid {
                return Err(PipeError::MailOwner(format!("{owner} group id {gid}")));
            }
        }
        let sgid = text("setgid_group")?;
        if let Ok(Some(g)) = nix::unistd::Group::from_name(&sgid)
            && g.gid.as_raw() == gid
        {
            return Err(PipeError::SetgidGroup(sgid, gid));
        }
        for arg in &argv {
            for name in referenced_names(arg) {
                if !MACROS.iter().any(|(m, _)| *m == name) {
                    return Err(PipeError::UnknownMacro {
                        dir: config.dir.display().to_string(),
                        service: service.to_owned(),
                        name,
                    });
                }
            }
        }
        let limit_name = format!("{service}_time_limit");
        let limit_text = match config.lookup_value(&limit_name, Some(entry)) {
            Some(_) => text(&limit_name)?,
            None => text("command_time_limit")?,
        };
        let time_limit = parse_time(&limit_text)
            .ok_or_else(|| PipeError::Config(format!("bad {limit_name}: {limit_text}")))?;
        Ok(PipeService {
            name: service.to_owned(),
            flags,
            uid,
            gid,
            size_limit,
            eol,
            null_sender,
            directory,
            argv,
            time_limit,
            recipient_delimiter: text("recipient_delimiter")?,
            export_environment: split_list(&text("export_environment")?),
            import_environment: split_list(&text("import_environment")?),
        })
    }
}

fn parse_flags(value: &str) -> Result<PipeFlags, PipeError> {
    let mut f = PipeFlags::default();
    for c in value.chars() {
        match c {
            'B' => f.blank = true,
            'D' => f.delivered = true,
            'F' => f.from_line = true,
            'O' => f.orig_rcpt = true,
            'R' => f.return_path = true,
            'X' => f.final_delivery = true,
            '.' => f.dot = true,
            '>' => f.quote_from = true,
            'h' => f.fold_host = true,
            'q' => f.quote_local = true,
            'u' => f.fold_user = true,
            other => return Err(PipeError::UnknownFlag(other)),
        }
    }
    Ok(f)
}

/// `eol=` takes C escapes (`\r\n`).
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// morph_recipient(): quote (q) then fold the local part (u) and/or the domain (h).
fn morph(address: &str, quote: bool, fold_user: bool, fold_host: bool) -> String {
    let a = if quote {
        quote_822_local(address)
    } else {
        address.to_owned()
    };
    let (local, domain) = match a.rfind('@') {
        Some(at) => (&a[..at], Some(&a[at + 1..])),
        None => (a.as_str(), None),
    };
    let local = if fold_user {
        local.to_lowercase()
    } else {
        local.to_owned()
    };
    match domain {
        Some(d) if fold_host => format!("{local}@{}", d.to_lowercase()),
        Some(d) => format!("{local}@{d}"),
        None => local,
    }
}

/// expand_argv(): `vars` hold the once-only macros; an argument that uses a per-recipient
/// macro is repeated for each `(recipient, original recipient)`. An empty `${user}` drops
/// that recipient's copy of the argument (pipe.c; split_addr() never leaves an empty user,
/// so `+bb@x` gives `+bb`).
pub fn expand_argv<S: std::hash::BuildHasher + Clone>(
    svc: &PipeService,
    vars: &HashMap<String, String, S>,
    recipients: &[(String, String)],
) -> Vec<String> {
    let f = svc.flags;
    let mut out = Vec::new();
    for arg in &svc.argv {
        let names = referenced_names(arg);
        let per_rcpt = names
            .iter()
            .any(|n| MACROS.iter().any(|(m, per)| m == n && *per));
        if !per_rcpt {
            out.push(expand_once(arg, vars));
            continue;
        }
        for (rcpt, orig) in recipients {
            let mut v = vars.clone();
            v.insert(
                "recipient".into(),
                morph(rcpt, f.quote_local, f.fold_user, f.fold_host),
            );
            v.insert(
                "original_recipient".into(),
                morph(orig, f.quote_local, f.fold_user, f.fold_host),
            );
            let folded = morph(rcpt, f.quote_local, f.fold_user, f.fold_host);
            let (mailbox, domain) = match folded.rfind('@') {
                Some(at) => (folded[..at].to_owned(), folded[at + 1..].to_owned()),
                None => (folded.clone(), String::new()),
            };
            let split = tern_maps::query::Extension::new(&svc.recipient_delimiter);
            let (user, ext) = match split.split_local(&mailbox) {
                Some((u, e)) => (u.to_owned(), e.chars().skip(1).collect::<String>()),
                None => (mailbox.clone(), String::new()),
            };
            if names.iter().any(|n| n == "user") && user.is_empty() {
                continue;
            }
            v.insert("user".into(), user);
            v.insert("extension".into(), ext);
            v.insert("mailbox".into(), mailbox);
            v.insert("domain".into(), domain);
            out.push(expand_once(arg, &v));
        }
    }
    out
}

fn expand_once<S: std::hash::BuildHasher>(arg: &str, vars: &HashMap<String, String, S>) -> String {
    tern_config::expand::expand(arg, vars, Mode::Once).map_or_else(|_| arg.to_owned(), |e| e.text)
}

/// Delivers one request through pipe service `svc`: one command run for all its
/// recipients, one outcome per recipient (all the same, as in Postfix).
pub fn deliver(
    request: &DeliveryRequest,
    svc: &PipeService,
    process_env: &[(String, String)],
    now: &tern_message::trace::Timestamp,
) -> Vec<Outcome> {
    let all = |result: Delivered| -> Vec<Outcome> {
        request
            .recipients
            .iter()
            .map(|r| Outcome {
                index: r.index,
                result: result.clone(),
                relay: svc.name.clone(),
                expanded: Vec::new(),
            })
            .collect()
    };
    let defer = |dsn: &str, text: &str| {
        all(Delivered::Deferred {
            dsn: dsn.into(),
            text: text.into(),
        })
    };
    let bounce = |dsn: &str, text: String| {
        all(Delivered::Bounced {
            dsn: dsn.into(),
            text,
        })
    };
    // pipe.c: a `sendmail -bv` probe is answered without running the command.
    if request.verify {
        let command = svc.argv.first().cloned().unwrap_or_default();
        return all(Delivered::Sent {
            dsn: "2.0.0".into(),
            text: format!("delivers to command: {command}"),
        });
    }
    let n = request.recipients.len();
    if (svc.flags.delivered || svc.flags.orig_rcpt) && n > 1 {
        return defer("4.3.5", "mail system configuration error");
    }
    let message = match Message::open(&request.queue_file) {
        Ok(m) => m,
        Err(e) => return defer("4.3.0", &format!("cannot read queue file: {e}")),
    };
    if svc.size_limit != 0 && message.file.content_len > svc.size_limit {
        return bounce("5.2.3", "message too large".into());
    }
    if svc.flags.delivered
        && let Some(r) = request.recipients.first()
        && message.has_delivered_to(&r.address)
    {
        return bounce("5.4.6", format!("mail forwarding loop for {}", r.address));
    }
    let sender = if request.sender.is_empty() {
        svc.null_sender.clone()
    } else if svc.flags.quote_local {
        quote_822_local(&request.sender)
    } else {
        request.sender.clone()
    };
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("sender".into(), sender.clone());
    let nexthop = if svc.flags.fold_host {
        request.nexthop.to_lowercase()
    } else {
        request.nexthop.clone()
    };
    vars.insert("nexthop".into(), nexthop);
    vars.insert("size".into(), message.file.content_len.to_string());
    vars.insert("queue_id".into(), request.queue_id.clone());
    for (var, attrs) in [
        ("client_address", &["client_address"][..]),
        ("client_hostname", &["client_name"][..]),
        ("client_port", &["client_port"][..]),
        ("client_protocol", &["protocol_name", "protocol"][..]),
        ("client_helo", &["helo_name"][..]),
        ("sasl_method", &["sasl_method"][..]),
        ("sasl_username", &["sasl_username"][..]),
        ("sasl_sender", &["sasl_sender"][..]),
    ] {
        let v = attrs
            .iter()
            .map(|a| message.client(a))
            .find(|x| !x.is_empty())
            .unwrap_or_default();
        vars.insert(var.into(), v.to_owned());
    }
    let rcpts: Vec<(String, String)> = request
        .recipients
        .iter()
        .map(|r| {
            let orig = if r.orig_rcpt.is_empty() {
                r.address.clone()
            } else {
                r.orig_rcpt.clone()
            };
            (r.address.clone(), orig)
        })
        .collect();
    let argv = expand_argv(svc, &vars, &rcpts);
    let env = command::environment(
        process_env,
        &svc.import_environment,
        &svc.export_environment,
        &[],
    );
    let spec = CommandSpec {
        program: Program::Argv(argv.clone()),
        uid: svc.uid,
        gid: svc.gid,
        env,
        cwd: svc.directory.clone(),
        time_limit: svc.time_limit,
    };
    let (first, first_orig) = rcpts.first().cloned().unwrap_or_default();
    let head = prefix(
        CopyFlags {
            from_line: svc.flags.from_line,
            return_path: svc.flags.return_path,
            orig_rcpt: svc.flags.orig_rcpt,
            delivered: svc.flags.delivered,
        },
        if request.sender.is_empty() {
            ""
        } else {
            &request.sender
        },
        &first_orig,
        &first,
        now,
        &svc.eol,
    );
    let reader = match message.reader() {
        Ok(r) => r,
        Err(e) => return defer("4.3.0", &format!("cannot read queue file: {e}")),
    };
    let (eol, dot, quote, blank) = (
        svc.eol.clone(),
        svc.flags.dot,
        svc.flags.quote_from,
        svc.flags.blank,
    );
    let feed: command::Feeder = Box::new(move |w| {
        w.write_all(head.as_bytes())?;
        copy_lines(reader, w, &eol, dot, quote)?;
        if blank {
            w.write_all(eol.as_bytes())?;
        }
        Ok(())
    });
    let shown = argv.first().cloned().unwrap_or_default();
    match command::run(&spec, &shown, feed) {
        CommandResult::Ok { output } => {
            let output = output.trim_end();
            let extra = if output.is_empty() {
                String::new()
            } else {
                format!(" ({})", output.chars().take(100).collect::<String>())
            };
            all(Delivered::Sent {
                dsn: "2.0.0".into(),
                text: format!("delivered via {} service{extra}", svc.name),
            })
        }
        CommandResult::Defer { dsn, text } => all(Delivered::Deferred { dsn, text }),
        CommandResult::Bounce { dsn, text } => all(Delivered::Bounced { dsn, text }),
    }
}

/// mail_copy()'s body loop: each LF-terminated line with `eol`, `>From ` quoting and dot
/// stuffing as asked.
fn copy_lines(
    mut r: impl BufRead,
    w: &mut dyn Write,
    eol: &str,
    dot: bool,
    quote: bool,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if quote && body.starts_with(b"From ") {
            w.write_all(b">")?;
        }
        if dot && body.starts_with(b".") {
            w.write_all(b".")?;
        }
        w.write_all(body)?;
        w.write_all(eol.as_bytes())?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(argv: &[&str], flags: &str) -> PipeService {
        PipeService {
            name: "maildrop".into(),
            flags: parse_flags(flags).expect("flags"),
            uid: 1,
            gid: 1,
            size_limit: 0,
            eol: "\n".into(),
            null_sender: "MAILER-DAEMON".into(),
            directory: None,
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            time_limit: Duration::from_secs(10),
            recipient_delimiter: "+".into(),
            export_environment: Vec::new(),
            import_environment: Vec::new(),
        }
    }

    #[test]
    fn argv_expansion() {
        type Case<'a> = (&'a [&'a str], &'a str, Vec<(String, String)>, &'a [&'a str]);
        let mut vars = HashMap::new();
        vars.insert("sender".to_owned(), "s@x.org".to_owned());
        vars.insert("nexthop".to_owned(), "Ex.COM".to_owned());
        vars.insert("size".to_owned(), "123".to_owned());
        let r = |a: &str, o: &str| (a.to_owned(), o.to_owned());
        let cases: Vec<Case<'_>> = vec![
            (
                &["/usr/bin/maildrop", "-d", "${recipient}"],
                "",
                vec![r("User+Tag@Ex.COM", "o@x")],
                &["/usr/bin/maildrop", "-d", "User+Tag@Ex.COM"],
            ),
            (
                &["cmd", "-f", "$sender", "--", "$recipient"],
                "",
                vec![r("a@x", "a@x"), r("b@x", "b@x")],
                &["cmd", "-f", "s@x.org", "--", "a@x", "b@x"],
            ),
            (
                &["cmd", "${user}", "${extension}", "${mailbox}", "${domain}"],
                "hu",
                vec![r("User+Tag@Ex.COM", "")],
                &["cmd", "user", "tag", "user+tag", "ex.com"],
            ),
            (
                &["cmd", "${user}"],
                "",
                vec![r("+bb@x", "")],
                &["cmd", "+bb"],
            ),
            (
                &["cmd", "${nexthop}", "${size}", "${original_recipient}"],
                "",
                vec![r("a@x", "orig@y")],
                &["cmd", "Ex.COM", "123", "orig@y"],
            ),
            (
                &["cmd", "${recipient}"],
                "q",
                vec![r("john smith@x", "")],
                &["cmd", "\"john smith\"@x"],
            ),
        ];
        for (argv, flags, rcpts, want) in cases {
            let got = expand_argv(&svc(argv, flags), &vars, &rcpts);
            assert_eq!(got, want.to_vec(), "{argv:?}");
        }
    }

    #[test]
    fn flags_and_copy() {
        assert!(parse_flags("BDFORXhqu.>").is_ok());
        assert_eq!(parse_flags("Z"), Err(PipeError::UnknownFlag('Z')));
        let mut out = Vec::new();
        copy_lines(&b"From x\n.dot\nplain\n"[..], &mut out, "\r\n", true, true).expect("copy");
        assert_eq!(out, b">From x\r\n..dot\r\nplain\r\n");
        assert_eq!(unescape("\\r\\n"), "\r\n");
    }
}
