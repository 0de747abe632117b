//! local(8)'s final destinations: the mailbox (mailbox.c), `|command` (command.c),
//! `/file` (file.c), Maildir (maildir.c), forwarding (indirect.c, forward.c), handing a
//! recipient to another transport (deliver_pass), and bounce_workaround.c's owner- rule.
//!
//! Security: commands and files run with the rights decided by [`super::expand`], never
//! root: uid or gid 0 is replaced by default_privs here, as command.c and file.c do.

use std::path::{Path, PathBuf};

use tern_maps::OpenFlags;

use super::command::{self, CommandResult, CommandSpec, Program};
use super::expand::{State, bounce, defer, local_expand, owner_of, record};
use super::mailboxes::{Copy, Failure, Rights};
use super::message::{CopyFlags, prefix};
use super::{Ctx, Entry, Final, UserAttr};
use crate::request::{Delivered, Forward};

fn sent(ctx: &mut Ctx<'_, '_>, st: &State, text: String) {
    record(
        ctx,
        st,
        Delivered::Sent {
            dsn: "2.0.0".into(),
            text,
        },
    );
}

/// The envelope lines mail_copy() puts before the message for a mailbox, Maildir or
/// file: Return-Path:, X-Original-To: (enable_original_recipient) and Delivered-To:
/// (prepend_delivered_header has `file`).
fn copy_of<'a>(ctx: &Ctx<'_, '_>, st: &'a State) -> Copy<'a> {
    let s = ctx.settings();
    Copy {
        sender: &st.sender,
        arrival: ctx.request.arrival,
        delivered_to: s
            .prepend_delivered_header
            .file
            .then_some(st.delivered.as_str()),
        original_to: (s.enable_original_recipient && !st.orig.is_empty())
            .then_some(st.orig.as_str()),
        return_path: true,
    }
}

/// The rights for a command or file: the user's, with default_privs for unset ids.
fn rights(ctx: &Ctx<'_, '_>, ua: &UserAttr) -> Rights {
    Rights {
        uid: if ua.uid == 0 { ctx.default_uid } else { ua.uid },
        gid: if ua.gid == 0 { ctx.default_gid } else { ua.gid },
    }
}

/// Looks the user up in mailbox_transport_maps / fallback_transport_maps / ...:
/// `Err(())` on a table error.
pub(crate) fn transport_map(
    ctx: &Ctx<'_, '_>,
    param: &str,
    user: &str,
) -> Result<Option<String>, ()> {
    let specs = match param {
        "mailbox_transport_maps" => &ctx.settings().mailbox_transport_maps,
        "fallback_transport_maps" => &ctx.settings().fallback_transport_maps,
        "mailbox_command_maps" => &ctx.settings().mailbox_command_maps,
        _ => return Ok(None),
    };
    let flags = OpenFlags {
        fold_fix: true,
        warn: ctx.env.warn.clone(),
    };
    for spec in specs {
        let map = tern_maps::open(spec, &flags).map_err(|e| (ctx.env.warn)(&e.to_string()))?;
        match map.lookup(user) {
            Ok(Some(v)) => return Ok(Some(v)),
            Ok(None) => {}
            Err(e) => {
                (ctx.env.warn)(&e.to_string());
                return Err(());
            }
        }
    }
    Ok(None)
}

/// deliver_pass(): `transport[:nexthop]`, the request's nexthop when none is given.
pub(crate) fn pass(ctx: &mut Ctx<'_, '_>, st: &State, channel: &str) {
    let (transport, nexthop) = match channel.split_once(':') {
        Some((t, h)) if !h.is_empty() => (t.to_owned(), h.to_owned()),
        Some((t, _)) => (t.to_owned(), ctx.request.nexthop.clone()),
        None => (channel.to_owned(), ctx.request.nexthop.clone()),
    };
    ctx.entries.push(Entry {
        address: st.rcpt.clone(),
        orig_to: st.orig.clone(),
        result: Final::Pass { transport, nexthop },
        notify: None,
    });
}

/// deliver_mailbox(): `true` when the user exists (or the recipient was handed on).
pub(crate) fn deliver_mailbox(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr) -> bool {
    let mut st = st.clone();
    st.level += 1;
    if ctx.been_here(&format!("mailbox {}", st.local)) {
        return true;
    }
    match transport_map(ctx, "mailbox_transport_maps", &st.user) {
        Err(()) => {
            defer(ctx, &st, "4.3.0", "table lookup failure".into());
            return true;
        }
        Ok(Some(t)) => {
            pass(ctx, &st, &t);
            return true;
        }
        Ok(None) => {}
    }
    let mt = ctx.settings().mailbox_transport.clone();
    if !mt.is_empty() {
        pass(ctx, &st, &mt);
        return true;
    }
    let pw = match ctx.user(&st.user) {
        Err(_) => {
            defer(ctx, &st, "4.0.0", "user lookup error".into());
            return true;
        }
        Ok(None) => return false,
        Ok(Some(pw)) => pw,
    };
    let _ = ua;
    let ua = UserAttr::from_user(&pw);
    let home = ua.home.clone().unwrap_or_default();
    let s = ctx.settings().clone();
    match transport_map(ctx, "mailbox_command_maps", &st.user) {
        Err(()) => defer(ctx, &st, "4.3.0", "table lookup failure".into()),
        Ok(Some(cmd)) => deliver_command(ctx, &st, &ua, &cmd),
        Ok(None) if !s.mailbox_command.is_empty() => {
            deliver_command(ctx, &st, &ua, &s.mailbox_command);
        }
        Ok(None) if s.home_mailbox.ends_with('/') => {
            let dir = format!("{home}/{}", s.home_mailbox);
            deliver_maildir(ctx, &st, own_rights(&ua), &dir);
        }
        Ok(None) if s.home_mailbox.is_empty() && s.mail_spool_directory.ends_with('/') => {
            let dir = format!("{}{}/", s.mail_spool_directory, st.user);
            deliver_maildir(ctx, &st, own_rights(&ua), &dir);
        }
        Ok(None) => {
            let path = if s.home_mailbox.is_empty() {
                format!("{}/{}", s.mail_spool_directory, st.user)
            } else {
                format!("{home}/{}", s.home_mailbox)
            };
            if ctx.request.verify {
                // mailbox.c: a trace-only request is not delivered.
                sent(ctx, &st, "delivers to mailbox".into());
                return true;
            }
            if !s.frozen_delivered_to {
                st.delivered.clone_from(&st.rcpt);
            }
            let copy = copy_of(ctx, &st);
            let user = Rights {
                uid: ua.uid,
                gid: ua.gid,
            };
            let result = match ctx.message.reader() {
                Ok(mut r) => ctx
                    .env
                    .mailboxes
                    .mailbox(Path::new(&path), user, &copy, &mut r),
                Err(e) => Err(read_failure(&e)),
            };
            match result {
                Ok(()) => sent(ctx, &st, "delivered to mailbox".into()),
                Err(f) => failed(ctx, &st, f),
            }
        }
    }
    true
}

fn read_failure(e: &std::io::Error) -> Failure {
    Failure {
        temporary: true,
        dsn: "4.3.0".into(),
        text: format!("cannot read queue file: {e}"),
    }
}

fn failed(ctx: &mut Ctx<'_, '_>, st: &State, f: Failure) {
    if f.temporary || f.dsn.starts_with('4') {
        defer(ctx, st, &f.dsn, f.text);
    } else {
        bounce(ctx, st, &f.dsn, f.text);
    }
}

/// The recipient's own rights, for the mailbox: maildir.c and mailbox.c use them as
/// they are, root's included (only commands and files get default_privs for root).
fn own_rights(ua: &UserAttr) -> Rights {
    Rights {
        uid: ua.uid,
        gid: ua.gid,
    }
}

/// deliver_maildir(): a Maildir with the rights `who` (the recipient's for a mailbox,
/// the file rights for a `/dir/` destination).
fn deliver_maildir(ctx: &mut Ctx<'_, '_>, st: &State, who: Rights, dir: &str) {
    if ctx.request.verify {
        // maildir.c: a trace-only request is not delivered.
        sent(ctx, st, "delivers to maildir".into());
        return;
    }
    let mut st = st.clone();
    if !ctx.settings().frozen_delivered_to {
        st.delivered.clone_from(&st.rcpt);
    }
    let copy = copy_of(ctx, &st);
    let result = match ctx.message.reader() {
        Ok(mut r) => ctx
            .env
            .mailboxes
            .maildir(Path::new(dir), who, &copy, &mut r)
            .map(|_| ()),
        Err(e) => Err(read_failure(&e)),
    };
    match result {
        Ok(()) => sent(ctx, &st, "delivered to maildir".into()),
        Err(f) => failed(ctx, &st, f),
    }
}

/// deliver_file(): append to `/file/name` (mbox form) or a `/dir/` Maildir, with `ua`'s
/// rights or default_privs.
pub(crate) fn deliver_file(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr, path: &str) {
    let mut st = st.clone();
    st.level += 1;
    if ctx.been_here(&format!("file {} {path}", ua.uid)) {
        return;
    }
    if !ctx.settings().allow_mail_to_files.allows(st.exp_type) {
        bounce_workaround(ctx, &st, "5.7.1", "mail to file is restricted".into());
        return;
    }
    if ctx.request.verify {
        // file.c: a trace-only request is not delivered (the file is not touched).
        sent(ctx, &st, format!("delivers to file: {path}"));
        return;
    }
    if path.ends_with('/') {
        deliver_maildir(ctx, &st, rights(ctx, ua), path);
        return;
    }
    let copy = copy_of(ctx, &st);
    let who = rights(ctx, ua);
    let result = match ctx.message.reader() {
        Ok(mut r) => ctx.env.mailboxes.file(Path::new(path), who, &copy, &mut r),
        Err(e) => Err(read_failure(&e)),
    };
    match result {
        Ok(()) => sent(ctx, &st, format!("delivered to file: {path}")),
        Err(f) if f.dsn == "5.7.1" => bounce_workaround(ctx, &st, &f.dsn, f.text),
        Err(f) if f.temporary || f.dsn.starts_with('4') => defer(ctx, &st, &f.dsn, f.text),
        Err(f) => {
            let text = format!("cannot append message to file {path}: {}", f.text);
            bounce_workaround(ctx, &st, &f.dsn, text);
        }
    }
}

/// deliver_command(): `|command` with `ua`'s rights or default_privs, the environment
/// local(8) sets, the message on stdin.
pub(crate) fn deliver_command(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr, cmd: &str) {
    let mut st = st.clone();
    st.level += 1;
    if ctx.been_here(&format!("command {}:{} {cmd}", st.user, ua.uid)) {
        return;
    }
    if ctx.request.verify {
        // command.c: a trace-only request runs nothing.
        sent(ctx, &st, format!("delivers to command: {cmd}"));
        return;
    }
    let s = ctx.settings().clone();
    let who = rights(ctx, ua);
    let vars = command_vars(&st, ua, |name| ctx.message.client(name).to_owned());
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                super::expand::filter_chars(&v, &s.command_expansion_filter),
            )
        })
        .collect();
    let env = command::environment(
        &ctx.env.process_env,
        &s.import_environment,
        &s.export_environment,
        &vars,
    );
    let cwd = if s.command_execution_directory.is_empty() {
        Some(PathBuf::from(&s.queue_directory)).filter(|p| p.is_dir())
    } else if let Some((dir, _)) = local_expand(
        &s.command_execution_directory,
        &st,
        ua,
        &s.execution_directory_expansion_filter,
    ) {
        Some(PathBuf::from(dir))
    } else {
        (ctx.env.warn)(&format!(
            "bad parameter value syntax for command_execution_directory: {}",
            s.command_execution_directory
        ));
        defer(ctx, &st, "4.3.5", "mail system configuration error".into());
        return;
    };
    let spec = CommandSpec {
        program: Program::Line {
            command: cmd.to_owned(),
            shell: s.local_command_shell.clone(),
        },
        uid: who.uid,
        gid: who.gid,
        env,
        cwd,
        time_limit: s.command_time_limit,
    };
    let flags = CopyFlags {
        from_line: true,
        return_path: true,
        orig_rcpt: s.enable_original_recipient,
        delivered: s.prepend_delivered_header.command,
    };
    let head = prefix(
        flags,
        &st.sender,
        &st.orig,
        &st.delivered,
        &ctx.env.now,
        "\n",
    );
    let reader = match ctx.message.reader() {
        Ok(r) => r,
        Err(e) => {
            defer(ctx, &st, "4.3.0", format!("cannot read queue file: {e}"));
            return;
        }
    };
    let feed: command::Feeder = Box::new(move |w| {
        w.write_all(head.as_bytes())?;
        let mut r = reader;
        std::io::copy(&mut r, w)?;
        Ok(())
    });
    match command::run(&spec, cmd, feed) {
        CommandResult::Ok { .. } => sent(ctx, &st, format!("delivered to command: {cmd}")),
        CommandResult::Defer { dsn, text } | CommandResult::Bounce { dsn, text } => {
            bounce_workaround(ctx, &st, &dsn, text);
        }
    }
}

/// The variables local(8) gives a command (command.c), in Postfix's order.
pub fn command_vars(
    st: &State,
    ua: &UserAttr,
    client: impl Fn(&str) -> String,
) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, val: &str| v.push((k.to_owned(), val.to_owned()));
    if let Some(h) = &ua.home {
        add("HOME", h);
    }
    add("LOGNAME", &st.user);
    add("USER", &st.user);
    add("SENDER", &st.sender);
    add("RECIPIENT", &st.rcpt);
    add("LOCAL", &st.local);
    if let Some(sh) = &ua.shell {
        add("SHELL", sh);
    }
    if let Some(d) = &st.domain {
        add("DOMAIN", d);
    }
    if let Some(e) = &st.extension {
        add("EXTENSION", e);
    }
    if !st.orig.is_empty() {
        add("ORIGINAL_RECIPIENT", &st.orig);
    }
    for (var, attrs) in [
        ("CLIENT_HOSTNAME", &["client_name"][..]),
        ("CLIENT_ADDRESS", &["client_address"][..]),
        ("CLIENT_HELO", &["helo_name"][..]),
        ("CLIENT_PROTOCOL", &["protocol_name", "protocol"][..]),
        ("SASL_METHOD", &["sasl_method"][..]),
        ("SASL_SENDER", &["sasl_sender"][..]),
        ("SASL_USERNAME", &["sasl_username"][..]),
    ] {
        if let Some(val) = attrs.iter().map(|a| client(a)).find(|x| !x.is_empty()) {
            add(var, &val);
        }
    }
    v
}

/// deliver_indirect(): forward the current address as a new message.
pub(crate) fn deliver_indirect(ctx: &mut Ctx<'_, '_>, st: &State) {
    if ctx.been_here(&format!("indirect {}", st.rcpt)) {
        return;
    }
    if ctx.request.verify {
        // indirect.c: a trace-only request is not forwarded.
        sent(ctx, st, format!("forwards to {}", st.rcpt));
        return;
    }
    let prepend = if ctx.settings().prepend_delivered_header.forward {
        vec![format!(
            "Delivered-To: {}",
            tern_message::address::quote_822_local(&st.delivered)
        )]
    } else {
        Vec::new()
    };
    record(
        ctx,
        st,
        Delivered::Forward(Forward {
            sender: st.sender.clone(),
            recipients: vec![st.rcpt.clone()],
            prepend,
        }),
    );
}

/// bounce_workaround(): a failure goes to the recipient's owner- alias when there is one
/// (owner-LOCAL, then owner-USER), else to the sender.
pub(crate) fn bounce_workaround(ctx: &mut Ctx<'_, '_>, st: &State, dsn: &str, text: String) {
    let local = st
        .rcpt
        .rsplit_once('@')
        .map_or(st.rcpt.as_str(), |(l, _)| l);
    let mut owner = owner_of(ctx, local);
    if matches!(owner, Ok(None)) {
        let ext = tern_maps::query::Extension::new(&ctx.settings().recipient_delimiter);
        if let Some((user, _)) = ext.split_local(local) {
            owner = owner_of(ctx, user);
        }
    }
    let Ok(notify) = owner else {
        defer(ctx, st, "4.3.0", "alias database unavailable".into());
        return;
    };
    let result = if dsn.starts_with('4') {
        Delivered::Deferred {
            dsn: dsn.into(),
            text,
        }
    } else {
        Delivered::Bounced {
            dsn: dsn.into(),
            text,
        }
    };
    ctx.entries.push(Entry {
        address: st.rcpt.clone(),
        orig_to: st.orig.clone(),
        result: Final::Done(result),
        notify,
    });
}
