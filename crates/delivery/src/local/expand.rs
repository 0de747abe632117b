//! local(8)'s recursion over one recipient: recipient.c (folding, extension, loop check),
//! alias.c (alias_maps, owner- aliases, alias rights), dotforward.c (forward_path),
//! include.c, token.c, resolve.c and unknown.c.
//!
//! Each step gets its own copy of [`State`] (Postfix passes LOCAL_STATE by value), so what
//! an alias changes (sender, owner, rights) applies below it only.
//!
//! Security: alias values, `.forward` and `:include:` contents are untrusted: their
//! destinations go through the allow_mail_to_* checks in [`super::targets`]; recursion
//! stops at level 100.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tern_config::expand::{Lookup, Mode};
use tern_rewrite::Context;

use super::settings::ExpandType;
use super::tokens::{Destination, destinations};
use super::{Ctx, Final, UserAttr, targets, userfile};
use crate::request::Delivered;

/// The deepest recursion Postfix allows before `alias database loop`.
const MAX_LEVEL: u32 = 100;

/// The message attributes of one step (local.h DELIVER_ATTR, the parts that change).
#[derive(Debug, Clone, Default)]
pub struct State {
    pub level: u32,
    /// The address being delivered.
    pub rcpt: String,
    /// The original recipient (`ORIGINAL_RECIPIENT`, `X-Original-To:`, `orig_to=`).
    pub orig: String,
    pub sender: String,
    /// The owner- alias in force, or the `.forward` user.
    pub owner: Option<String>,
    /// The address for `Delivered-To:`; empty until set.
    pub delivered: String,
    pub exp_type: Option<ExpandType>,
    pub exp_from: Option<String>,
    /// The extension to splice into addresses found by expansion.
    pub unmatched: Option<String>,
    /// The recipient, folded, without the domain (`LOCAL`).
    pub local: String,
    pub domain: Option<String>,
    /// `local` without the extension (`USER`).
    pub user: String,
    /// The extension, without its delimiter (`EXTENSION`).
    pub extension: Option<String>,
    /// The delimiter found in `local`.
    pub delimiter: Option<char>,
}

impl State {
    pub fn top(rcpt: &str, orig: &str, sender: &str) -> State {
        State {
            rcpt: rcpt.to_owned(),
            orig: orig.to_owned(),
            sender: sender.to_owned(),
            ..State::default()
        }
    }
}

/// Records the result of the current destination.
pub(crate) fn record(ctx: &mut Ctx<'_, '_>, st: &State, result: Delivered) {
    ctx.entries.push(super::Entry {
        address: st.rcpt.clone(),
        orig_to: st.orig.clone(),
        result: Final::Done(result),
        notify: None,
    });
}

pub(crate) fn bounce(ctx: &mut Ctx<'_, '_>, st: &State, dsn: &str, text: String) {
    record(
        ctx,
        st,
        Delivered::Bounced {
            dsn: dsn.into(),
            text,
        },
    );
}

pub(crate) fn defer(ctx: &mut Ctx<'_, '_>, st: &State, dsn: &str, text: String) {
    record(
        ctx,
        st,
        Delivered::Deferred {
            dsn: dsn.into(),
            text,
        },
    );
}

/// deliver_recipient(): duplicate filter, loop check, folding and the extension.
pub(crate) fn deliver_recipient(ctx: &mut Ctx<'_, '_>, mut st: State, ua: &UserAttr) {
    st.level += 1;
    if ctx.been_here(&format!("recipient {} {}", st.level, st.rcpt)) {
        return;
    }
    // Delivered-To: loop detection (local(8) "Delivered-To" and frozen_delivered_to).
    if ctx.message.has_delivered_to(&st.rcpt) {
        let text = format!("mail forwarding loop for {}", st.rcpt);
        targets::bounce_workaround(ctx, &st, "5.4.6", text);
        return;
    }
    if st.delivered.is_empty() {
        st.delivered.clone_from(&st.rcpt);
    }
    let folded = st.rcpt.to_lowercase();
    let (local, domain) = match folded.rfind('@') {
        Some(at) => (folded[..at].to_owned(), Some(folded[at + 1..].to_owned())),
        None => (folded.clone(), None),
    };
    st.local = local;
    st.domain = domain;
    st.user.clone_from(&st.local);
    st.extension = None;
    st.delimiter = None;
    let delims = &ctx.settings().recipient_delimiter;
    if !delims.is_empty() {
        let split = tern_maps::query::Extension::new(delims);
        let whole = st.local.clone();
        if let Some((user, ext)) = split.split_local(&whole) {
            let mut chars = ext.chars();
            let delim = chars.next();
            let ext: String = chars.collect();
            if ext.contains('/') {
                // An extension with a `/` is dropped (recipient.c, 20100529).
                user.clone_into(&mut st.local);
            } else {
                st.delimiter = delim;
                st.extension = Some(ext);
            }
            user.clone_into(&mut st.user);
        }
    }
    if st.delimiter.is_none() {
        // `${recipient_delimiter}` without an extension is the first delimiter.
        st.delimiter = delims.chars().next();
    }
    st.unmatched.clone_from(&st.extension);
    if st.user.is_empty() {
        let text = format!("null username in \"{}\"", st.rcpt);
        bounce(ctx, &st, "5.1.3", text);
        return;
    }
    deliver_switch(ctx, st, ua);
}

/// deliver_switch(): aliases, then (after an owner- alias or in an include file:
/// forwarding) `.forward`, the mailbox, unknown users.
fn deliver_switch(ctx: &mut Ctx<'_, '_>, mut st: State, ua: &UserAttr) {
    st.level += 1;
    st.unmatched = None;
    let local = st.local.clone();
    if deliver_alias(ctx, &st, ua, &local) {
        return;
    }
    if st.extension.is_some() {
        if ctx.settings().propagate_unmatched.alias {
            st.unmatched.clone_from(&st.extension);
        }
        let user = st.user.clone();
        if deliver_alias(ctx, &st, ua, &user) {
            return;
        }
        st.unmatched.clone_from(&st.extension);
    }
    // Mail aliased to another local address with an owner- alias is resubmitted, so that
    // each address gets its own queue file status (recipient.c).
    if let Some(owner) = &st.owner
        && !owner.eq_ignore_ascii_case(&st.user)
    {
        targets::deliver_indirect(ctx, &st);
        return;
    }
    if st.exp_type == Some(ExpandType::Include) {
        targets::deliver_indirect(ctx, &st);
        return;
    }
    if ctx.settings().require_home_directory {
        match ctx.user(&st.user) {
            Err(e) => {
                defer(ctx, &st, "4.0.0", "user lookup error".into());
                let _ = e;
                return;
            }
            Ok(Some(pw)) => {
                let (uid, gid) = (pw.uid.as_raw(), pw.gid.as_raw());
                if let Err(e) = userfile::stat_as(&pw.dir, uid, gid) {
                    let text = format!(
                        "cannot access home directory {}: {}",
                        pw.dir.display(),
                        tern_config::text::errno_text(&e)
                    );
                    defer(ctx, &st, "4.3.0", text);
                    return;
                }
            }
            Ok(None) => {}
        }
    }
    if !deliver_dotforward(ctx, &st, ua) && !targets::deliver_mailbox(ctx, &st, ua) {
        deliver_unknown(ctx, &st, ua);
    }
}

/// Looks `key` up in alias_maps, in order: `Ok(Some((value, map index)))`.
fn alias_lookup(ctx: &Ctx<'_, '_>, key: &str) -> Result<Option<(String, usize)>, String> {
    for (i, map) in ctx.alias_maps.iter().enumerate() {
        match map.lookup(key) {
            Ok(Some(v)) => return Ok(Some((v, i))),
            Ok(None) => {}
            Err(e) => {
                (ctx.env.warn)(&format!("{}: lookup of '{key}' failed", map.spec()));
                return Err(e.to_string());
            }
        }
    }
    Ok(None)
}

/// The owner- alias of `name` and its canonical address, per expand_owner_alias.
pub(crate) fn owner_of(ctx: &Ctx<'_, '_>, name: &str) -> Result<Option<String>, String> {
    if !ctx.settings().owner_request_special {
        return Ok(None);
    }
    let owner = format!("owner-{name}");
    Ok(alias_lookup(ctx, &owner)?.map(|(rhs, _)| {
        let which = if ctx.settings().expand_owner_alias {
            rhs
        } else {
            owner
        };
        ctx.env.resolver.rewrite(Context::Local, &which)
    }))
}

/// deliver_alias(): `true` when `name` is an alias (whatever became of it).
fn deliver_alias(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr, name: &str) -> bool {
    let mut st = st.clone();
    st.level += 1;
    // An alias that names itself delivers to the user (sendmail compatibility).
    if st
        .exp_from
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case(name))
    {
        return false;
    }
    if st.level > MAX_LEVEL {
        (ctx.env.warn)(&format!("alias database loop for {name}"));
        bounce(ctx, &st, "5.4.6", format!("alias database loop for {name}"));
        return true;
    }
    st.exp_from = Some(name.to_owned());
    let (value, index) = match alias_lookup(ctx, name) {
        Ok(Some(found)) => found,
        Ok(None) => return false,
        Err(_) => {
            defer(ctx, &st, "4.3.0", "alias database unavailable".into());
            return true;
        }
    };
    st.exp_type = Some(ExpandType::Alias);
    // Rights: the table owner's, or default_privs (uid 0 here) for root's tables.
    let _ = ua;
    let map = &ctx.alias_maps[index];
    let ua = match map.owner() {
        tern_maps::Owner::Trusted => UserAttr::default(),
        tern_maps::Owner::Unknown => {
            (ctx.env.warn)(&format!(
                "deliver_alias: no owner UID for alias database {}",
                map.spec()
            ));
            defer(ctx, &st, "4.3.0", "mail system configuration error".into());
            return true;
        }
        tern_maps::Owner::User(uid) => {
            if let Ok(Some(pw)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                UserAttr::from_user(&pw)
            } else {
                {
                    (ctx.env.warn)(&format!(
                        "cannot find alias database owner for {}",
                        map.spec()
                    ));
                    defer(ctx, &st, "4.3.0", "cannot find alias database owner".into());
                    return true;
                }
            }
        }
    };
    // Where to report problems: the owner- alias, which also becomes the sender.
    let Ok(owner) = owner_of(ctx, name) else {
        defer(ctx, &st, "4.3.0", "alias database unavailable".into());
        return true;
    };
    if let Some(o) = &owner {
        st.sender.clone_from(o);
        st.owner = Some(o.clone());
        // A new list: the original recipient is not carried (alias.c, XXX DSN).
        st.orig = String::new();
    } else if ctx.settings().reset_owner_alias {
        st.owner = None;
    }
    if !ctx.settings().frozen_delivered_to {
        st.delivered.clone_from(&st.rcpt);
    }
    let count = deliver_token_string(ctx, &st, &ua, &value);
    if count == 0 {
        (ctx.env.warn)(&format!("no recipient in alias lookup result for {name}"));
        defer(ctx, &st, "4.3.0", "alias database unavailable".into());
    }
    true
}

/// deliver_dotforward(): `true` when a `.forward` file was used.
fn deliver_dotforward(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr) -> bool {
    let mut st = st.clone();
    st.level += 1;
    if ctx.settings().forward_path.trim().is_empty() {
        return false;
    }
    let pw = match ctx.user(&st.user) {
        Err(_) => {
            defer(ctx, &st, "4.0.0", "user lookup error".into());
            return true;
        }
        Ok(None) => return false,
        Ok(Some(pw)) => pw,
    };
    if !ctx.settings().frozen_delivered_to {
        st.delivered.clone_from(&st.rcpt);
    }
    let _ = ua;
    let ua = UserAttr::from_user(&pw);
    st.exp_type = Some(ExpandType::Forward);
    st.owner = Some(st.user.clone());
    let mut found: Option<(String, std::fs::Metadata)> = None;
    let forward_path = ctx.settings().forward_path.clone();
    for lhs in super::settings::split_list(&forward_path) {
        let Some((path, ext_used)) =
            local_expand(&lhs, &st, &ua, &ctx.settings().forward_expansion_filter)
        else {
            continue;
        };
        if let Ok(meta) = userfile::lstat_as(Path::new(&path), ua.uid, ua.gid) {
            if ext_used || !ctx.settings().propagate_unmatched.forward {
                st.unmatched = None;
            }
            found = Some((path, meta));
            break;
        }
    }
    let Some((path, meta)) = found else {
        return false;
    };
    if ctx.been_here(&format!("forward {path}")) {
        // Already expanded in this request: done, unless this is a recursion into it.
        return ctx.been_here_check(&format!("forward-done {path}"));
    }
    st.exp_from = Some(st.local.clone());
    let warn = |ctx: &Ctx<'_, '_>, text: String| (ctx.env.warn)(&text);
    if !meta.file_type().is_file() {
        warn(ctx, format!("file {path} is not a regular file"));
        return false;
    }
    if meta.uid() != 0 && meta.uid() != ua.uid {
        warn(ctx, format!("file {path} has bad owner uid {}", meta.uid()));
        return false;
    }
    if meta.mode() & 0o002 != 0 {
        warn(ctx, format!("file {path} is world writable"));
        return false;
    }
    let data = match userfile::read_as(Path::new(&path), ua.uid, ua.gid) {
        Ok(d) => d,
        Err(e) => {
            let text = format!(
                "cannot open file {path}: {}",
                tern_config::text::errno_text(&e)
            );
            warn(ctx, text);
            return false;
        }
    };
    let count = deliver_token_lines(ctx, &st, &ua, &data);
    if count > 0 {
        ctx.been_here(&format!("forward-done {path}"));
        true
    } else {
        false
    }
}

/// deliver_include(): the addresses of an `:include:` file.
pub(crate) fn deliver_include(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr, path: &str) {
    let mut st = st.clone();
    st.level += 1;
    if ctx.been_here(&format!("include {} {path}", ua.uid)) {
        return;
    }
    st.exp_from = Some(st.local.clone());
    let config_error = |ctx: &mut Ctx<'_, '_>, st: &State, warning: String| {
        (ctx.env.warn)(&warning);
        bounce(ctx, st, "5.3.5", "mail system configuration error".into());
    };
    if !path.starts_with('/') {
        config_error(ctx, &st, format!(":include:{path} uses a relative path"));
        return;
    }
    let meta = match userfile::stat_as(Path::new(path), ua.uid, ua.gid) {
        Ok(m) => m,
        Err(e) => {
            let w = format!(
                "unable to lookup :include: file {path}: {}",
                tern_config::text::errno_text(&e)
            );
            config_error(ctx, &st, w);
            return;
        }
    };
    if !meta.file_type().is_file() {
        config_error(
            ctx,
            &st,
            format!(":include: file {path} is not a regular file"),
        );
        return;
    }
    if meta.mode() & 0o002 != 0 {
        config_error(ctx, &st, format!(":include: file {path} is world writable"));
        return;
    }
    st.exp_type = Some(ExpandType::Include);
    let mut ua = ua.clone();
    if ua.uid == 0 {
        if let Ok(Some(pw)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid())) {
            if !pw.uid.is_root() {
                ua = UserAttr::from_user(&pw);
            }
        } else {
            {
                (ctx.env.warn)(&format!("cannot find username for uid {}", meta.uid()));
                (ctx.env.warn)(&format!(
                    "{path}: cannot find :include: file owner username"
                ));
                defer(ctx, &st, "4.3.5", "mail system configuration error".into());
                return;
            }
        }
    }
    if st.owner.is_none() {
        st.owner = Some(st.rcpt.clone());
    }
    match userfile::read_as(Path::new(path), ua.uid, ua.gid) {
        Err(e) => {
            let w = format!(
                "cannot open include file {path}: {}",
                tern_config::text::errno_text(&e)
            );
            config_error(ctx, &st, w);
        }
        Ok(data) => {
            if !ctx.settings().propagate_unmatched.include {
                st.unmatched = None;
            }
            deliver_token_lines(ctx, &st, &ua, &data);
        }
    }
}

/// deliver_token_stream(): each line of a file that does not start with `#`; returns
/// the number of destinations.
fn deliver_token_lines(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr, data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let mut count = 0;
    for line in text.lines() {
        if !line.starts_with('#') {
            count += deliver_token_string(ctx, st, ua, line);
        }
    }
    count
}

/// deliver_token_string(): each destination of `text`; returns how many there were.
pub(crate) fn deliver_token_string(
    ctx: &mut Ctx<'_, '_>,
    st: &State,
    ua: &UserAttr,
    text: &str,
) -> usize {
    let dests = destinations(text);
    for d in &dests {
        deliver_token(ctx, st, ua, d);
    }
    dests.len()
}

/// deliver_token(): one destination.
fn deliver_token(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr, dest: &Destination) {
    match dest {
        Destination::File(path) => targets::deliver_file(ctx, st, ua, path),
        Destination::Home(path) => {
            let Some(rest) = path.strip_prefix("~/").map(|r| format!("/{r}")) else {
                (ctx.env.warn)(&format!("bad home directory syntax for: {path}"));
                bounce(ctx, st, "5.3.5", "mail system configuration error".into());
                return;
            };
            match ua.home.as_deref() {
                None => {
                    (ctx.env.warn)(&format!("unknown home directory for: {path}"));
                    bounce(ctx, st, "5.3.5", "mail system configuration error".into());
                }
                Some("/") => targets::deliver_file(ctx, st, ua, &rest),
                Some(home) => targets::deliver_file(ctx, st, ua, &format!("{home}{rest}")),
            }
        }
        Destination::Command(cmd) => {
            if ctx.settings().allow_mail_to_commands.allows(st.exp_type) {
                targets::deliver_command(ctx, st, ua, cmd);
            } else {
                bounce(ctx, st, "5.7.1", "mail to command is restricted".into());
            }
        }
        Destination::Include(path) => deliver_include(ctx, st, ua, path),
        Destination::Address(addr) => deliver_resolve(ctx, st, ua, addr),
    }
}

/// deliver_resolve_addr(): canonicalise and resolve an address found by expansion; this
/// transport's addresses are delivered here, others forwarded.
pub(crate) fn deliver_resolve(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr, addr: &str) {
    let mut st = st.clone();
    st.level += 1;
    let resolver = ctx.env.resolver;
    let canon = resolver.rewrite(Context::Local, addr);
    let Ok(reply) = resolver.resolve(&canon) else {
        defer(ctx, &st, "4.3.0", "address resolver failure".into());
        return;
    };
    if reply.flags.error {
        let text = format!("bad recipient address syntax: {}", reply.recipient);
        bounce(ctx, &st, "5.1.3", text);
        return;
    }
    let mut recipient = reply.recipient.clone();
    if let Some(ext) = &st.unmatched {
        let delim = st
            .delimiter
            .or_else(|| ctx.settings().recipient_delimiter.chars().next())
            .unwrap_or('+');
        let at = recipient.rfind('@').unwrap_or(recipient.len());
        recipient.insert_str(at, &format!("{delim}{ext}"));
    }
    st.rcpt = recipient;
    if reply.transport == ctx.request.transport {
        deliver_recipient(ctx, st, ua);
    } else {
        targets::deliver_indirect(ctx, &st);
    }
}

/// deliver_unknown(): fallback_transport(_maps), luser_relay, or `unknown user`.
fn deliver_unknown(ctx: &mut Ctx<'_, '_>, st: &State, ua: &UserAttr) {
    let mut st = st.clone();
    st.level += 1;
    if ctx.been_here(&format!("deliver_unknown {}", st.local)) {
        return;
    }
    match targets::transport_map(ctx, "fallback_transport_maps", &st.user) {
        Err(()) => {
            defer(ctx, &st, "4.3.0", "table lookup failure".into());
            return;
        }
        Ok(Some(t)) => {
            targets::pass(ctx, &st, &t);
            return;
        }
        Ok(None) => {}
    }
    let fallback = ctx.settings().fallback_transport.clone();
    if !fallback.is_empty() {
        targets::pass(ctx, &st, &fallback);
        return;
    }
    let relay = ctx.settings().luser_relay.clone();
    if !relay.is_empty() {
        st.unmatched = None;
        let expanded = local_expand(&relay, &st, ua, "")
            .map(|(t, _)| t)
            .unwrap_or_default();
        let canon = ctx.env.resolver.rewrite(Context::Local, &expanded);
        if canon.eq_ignore_ascii_case(&st.rcpt) {
            let text = format!("unknown user: \"{}\"", st.user);
            bounce(ctx, &st, "5.1.1", text);
        } else {
            deliver_resolve(ctx, &st, ua, &expanded);
        }
        return;
    }
    if st.user.eq_ignore_ascii_case("MAILER-DAEMON") || st.user.eq_ignore_ascii_case("postmaster") {
        (ctx.env.warn)(&format!("required alias not found: {}", st.user));
        record(
            ctx,
            &st,
            Delivered::Sent {
                dsn: "2.0.0".into(),
                text: "discarded".into(),
            },
        );
        return;
    }
    let text = format!("unknown user: \"{}\"", st.user);
    bounce(ctx, &st, "5.1.1", text);
}

/// local_expand(): `$user`, `$home`, `$extension`, ... in `pattern`, with characters of
/// looked-up values outside `filter` (when not empty) replaced by `_`. `None` when a name
/// is undefined or the syntax is bad; the flag says whether `$extension` was used.
pub fn local_expand(
    pattern: &str,
    st: &State,
    ua: &UserAttr,
    filter: &str,
) -> Option<(String, bool)> {
    struct L<'a> {
        st: &'a State,
        ua: &'a UserAttr,
        filter: &'a str,
        ext_used: std::cell::Cell<bool>,
    }
    impl Lookup for L<'_> {
        fn lookup(&self, name: &str) -> Option<String> {
            let st = self.st;
            let v = match name {
                "user" => Some(st.user.clone()),
                "home" => self.ua.home.clone(),
                "shell" => self.ua.shell.clone(),
                "domain" => st.domain.clone(),
                "local" | "mailbox" => Some(st.local.clone()),
                "recipient" => Some(st.rcpt.clone()),
                "extension" => {
                    let e = st.extension.clone();
                    if e.is_some() {
                        self.ext_used.set(true);
                    }
                    e
                }
                "recipient_delimiter" => st.delimiter.map(String::from),
                _ => None,
            }?;
            Some(filter_chars(&v, self.filter))
        }
    }
    let l = L {
        st,
        ua,
        filter,
        ext_used: std::cell::Cell::new(false),
    };
    let e = tern_config::expand::expand(pattern, &l, Mode::Once).ok()?;
    if !e.undefined.is_empty() {
        return None;
    }
    Some((e.text, l.ext_used.get()))
}

/// Replaces characters outside `filter` by `_` (an empty filter passes everything).
pub fn filter_chars(value: &str, filter: &str) -> String {
    if filter.is_empty() {
        return value.to_owned();
    }
    value
        .chars()
        .map(|c| if filter.contains(c) { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(rcpt: &str, ext: Option<&str>) -> State {
        let local = rcpt.split('@').next().unwrap_or_default().to_owned();
        State {
            rcpt: rcpt.into(),
            user: local.split('+').next().unwrap_or_default().into(),
            local,
            domain: rcpt.split('@').nth(1).map(str::to_owned),
            extension: ext.map(str::to_owned),
            delimiter: ext.map(|_| '+'),
            ..State::default()
        }
    }

    #[test]
    fn forward_path_expansion() {
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, Option<(&'a str, bool)>);
        let ua = UserAttr {
            home: Some("/home/u".into()),
            ..UserAttr::default()
        };
        let fp = "$home/.forward${recipient_delimiter}${extension}";
        let cases: &[Case<'_>] = &[
            (
                "u+tag@x",
                Some("tag"),
                fp,
                Some(("/home/u/.forward+tag", true)),
            ),
            ("u@x", None, fp, None),
            (
                "u@x",
                None,
                "$home/.forward",
                Some(("/home/u/.forward", false)),
            ),
            (
                "u+a;b@x",
                Some("a;b"),
                fp,
                Some(("/home/u/.forward+a_b", true)),
            ),
            (
                "u@x",
                None,
                "/var/fwd/$user/$domain",
                Some(("/var/fwd/u/x", false)),
            ),
            ("u@x", None, "${nosuch}", None),
        ];
        for (rcpt, ext, pattern, want) in cases {
            let st = state(rcpt, *ext);
            let got = local_expand(pattern, &st, &ua, "abcdefghijklmnopqrstuvwxyz/.+");
            assert_eq!(
                got.as_ref().map(|(s, b)| (s.as_str(), *b)),
                *want,
                "{rcpt} {pattern}"
            );
        }
    }
}
