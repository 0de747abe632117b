//! `sendmail`: Postfix's sendmail(1), the command scripts, cron and MUAs use to submit
//! mail. Named `mailq` it lists the queue, named `newaliases` it rebuilds the aliases.
//!
//! Submission (the default mode, `-bm`): the message on standard input, recipients from
//! the command line and, with `-t`, from the To:, Cc: and Bcc: headers (the Resent-
//! ones instead when the message has any, as Postfix 3.7's sendmail extracts them); the
//! sender from `-f`/`-r` or the user's login name, the full name from `-F`, $NAME or the
//! password file's GECOS field. Input ends at end of file or, without `-i`/`-oi`, at a
//! line with a single `.`; leading `From ` lines are dropped and carriage returns before
//! the newline removed (sendmail_fix_line_endings = always). The submission goes to
//! `postdrop` (next to this program), which writes it into maildrop/ for pickup.
//!
//! Other modes hand over to the command Postfix's sendmail runs: `-bp` (and `mailq`)
//! `postqueue -p`, `-q` `postqueue -f`, `-qRsite` `postqueue -s site`, `-qIid`
//! `postqueue -i id`, `-bi`/`-I` (and `newaliases`) `postalias` over alias_database,
//! `-bd`/`-bl` `postfix start`. `-bh`/`-bH` and `-q<time>` do nothing, as Postfix's.
//! `-bs` speaks SMTP on standard input and output ([`standalone`]). Not done: `-bv`
//! (address verification) ends with a fatal message; VERP (`-XV`) is accepted and
//! ignored.
//!
//! Messages and exit codes are Postfix's (sysexits.h): `sendmail: fatal: usage: sendmail
//! [options]` (EX_USAGE), `USER(UID): Recipient addresses must be specified on the
//! command line or via the -t option` (EX_USAGE), `USER(UID): No recipient addresses
//! found in message header` (EX_USAGE), ...
//!
//! # Security
//! Runs with the user's rights (it is not set-id). Standard input is read up to
//! message_size_limit; a header kept for `-t` is at most header_size_limit.

use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tern_config::config::Config;
use tern_message::address::parse_address_list;
use tern_queue::file::DsnRet;
use tern_queue::maildrop::Envelope;

use crate::getopt::{Opt, getopt};
use crate::msg::Msg;

mod standalone;

/// sysexits.h.
pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_UNAVAILABLE: i32 = 69;
pub const EX_OSERR: i32 = 71;
pub const EX_TEMPFAIL: i32 = 75;

/// Postfix's sendmail GETOPT_LIST.
const GETOPT_LIST: &str = "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx";
/// The most bytes of one address list kept for parsing.
const TOKEN_LIMIT: usize = 10_240;

/// A fatal end: the sysexits.h status Postfix's code names (documentation: the process
/// exits with EX_TEMPFAIL, as Postfix's does) and the text after `sendmail: fatal: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit(pub i32, pub String);

fn exit(code: i32, text: impl Into<String>) -> Exit {
    Exit(code, text.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Enqueue,
    Mailq,
    NewAlias,
    FlushQ,
    Daemon,
    User,
    Ignore,
}

/// What the command line asked for.
#[derive(Debug, Default)]
struct Request {
    config_dir: Option<PathBuf>,
    sender: Option<String>,
    full_name: Option<String>,
    extract: bool,
    dot_ends_input: bool,
    notify: u8,
    ret: Option<DsnRet>,
    envid: Option<String>,
    eight_bit: bool,
    verify: bool,
    verbose: usize,
    qtime: bool,
    site_to_flush: Option<String>,
    id_to_flush: Option<String>,
    alias_map: Option<String>,
    recipients: Vec<String>,
}

/// `sendmail`, `mailq` or `newaliases`, by the name it was run as.
pub fn main() -> i32 {
    let argv0 = std::env::args_os()
        .next()
        .map_or_else(|| "sendmail".into(), |a| a.to_string_lossy().into_owned());
    let prog = argv0
        .rsplit('/')
        .find(|p| !p.is_empty())
        .unwrap_or("sendmail")
        .to_owned();
    let msg = Msg::new(&prog);
    match run(&prog, &crate::args(), &msg) {
        Ok(code) => code,
        // Postfix's sendmail ends every fatal error with EX_TEMPFAIL (its msg_cleanup
        // handler, "sanitize exit status after library run-time error"), whatever
        // status the error names: a mail program then keeps the message and retries.
        Err(Exit(_, text)) => {
            msg.fatal(&crate::msg::Fatal(text));
            EX_TEMPFAIL
        }
    }
}

fn run(prog: &str, args: &[String], msg: &Msg) -> Result<i32, Exit> {
    let mut mode = match prog {
        "mailq" => Mode::Mailq,
        "newaliases" => Mode::NewAlias,
        _ => Mode::Enqueue,
    };
    let mut req = Request {
        dot_ends_input: true,
        ..Request::default()
    };
    let args = pre_options(args, &mut mode, msg);
    match getopt(&args, GETOPT_LIST) {
        Ok((opts, operands)) => {
            for opt in opts {
                apply(opt, &mut req, &mut mode, msg)?;
            }
            req.recipients = operands;
        }
        Err(e) => {
            // Postfix's sendmail runs getopt twice (a first pass looks for -C), so glibc
            // complains twice; the options before the bad one take effect in between
            // (their warnings, or their own fatal error).
            let _ = writeln!(io::stderr(), "{prog}: {e}");
            if let Some((opts, _)) = (0..args.len())
                .rev()
                .find_map(|k| getopt(&args[..k], GETOPT_LIST).ok())
            {
                for opt in opts {
                    apply(opt, &mut req, &mut mode, msg)?;
                }
            }
            let _ = writeln!(io::stderr(), "{prog}: {e}");
            return Err(exit(EX_USAGE, format!("usage: {prog} [options]")));
        }
    }
    if req.extract && mode != Mode::Enqueue {
        return Err(exit(EX_USAGE, "-t can be used only in delivery mode"));
    }
    if req.site_to_flush.is_some() && mode != Mode::Enqueue {
        return Err(exit(EX_USAGE, "-qR can be used only in delivery mode"));
    }
    if req.id_to_flush.is_some() && mode != Mode::Enqueue {
        return Err(exit(EX_USAGE, "-qI can be used only in delivery mode"));
    }
    if req.verify {
        if req.extract {
            return Err(exit(EX_USAGE, "-t option cannot be used with -bv"));
        }
        if req.notify != 0 {
            return Err(exit(EX_USAGE, "-N option cannot be used with -bv"));
        }
        if req.ret.is_some() {
            return Err(exit(EX_USAGE, "-R option cannot be used with -bv"));
        }
        if req.verbose == 1 {
            return Err(exit(EX_USAGE, "-v option cannot be used with -bv"));
        }
    }
    if req.qtime && mode != Mode::Daemon {
        return Ok(0);
    }
    let none = |what: &str| -> Result<(), Exit> {
        if req.recipients.is_empty() {
            Ok(())
        } else {
            Err(exit(EX_USAGE, format!("{what} requires no recipient")))
        }
    };
    let verbose: Vec<String> = vec!["-v".to_owned(); req.verbose];
    match mode {
        Mode::Enqueue => {
            if let Some(site) = &req.site_to_flush {
                none("flush site")?;
                return Err(replace(
                    &req,
                    "postqueue",
                    &[&["-s", site.as_str()][..], &strs(&verbose)].concat(),
                ));
            }
            if let Some(id) = &req.id_to_flush {
                none("flush queue_id")?;
                return Err(replace(
                    &req,
                    "postqueue",
                    &[&["-i", id.as_str()][..], &strs(&verbose)].concat(),
                ));
            }
            enqueue(&req)
        }
        Mode::Mailq => {
            none("display queue mode")?;
            Err(replace(
                &req,
                "postqueue",
                &[&["-p"][..], &strs(&verbose)].concat(),
            ))
        }
        Mode::FlushQ => {
            none("flush queue mode")?;
            Err(replace(
                &req,
                "postqueue",
                &[&["-f"][..], &strs(&verbose)].concat(),
            ))
        }
        Mode::Daemon => {
            none("daemon mode")?;
            let status = command(&req, "postfix")
                .args(&verbose)
                .arg("start")
                .status()
                .map_err(|e| exit(EX_UNAVAILABLE, format!("unable to execute postfix: {e}")))?;
            Ok(i32::from(!status.success()))
        }
        Mode::NewAlias => {
            none("alias initialization mode")?;
            let config = load(&req)?;
            let tables = match &req.alias_map {
                Some(m) => vec![m.clone()],
                None => config
                    .expanded("alias_database")
                    .map_err(|e| exit(EX_USAGE, e.to_string()))?
                    .unwrap_or_default()
                    .split([',', ' ', '\t', '\n'])
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            if tables.is_empty() {
                return Ok(0);
            }
            let mut args = verbose.clone();
            args.push("--".into());
            args.extend(tables);
            Err(replace(&req, "postalias", &strs(&args)))
        }
        Mode::User => {
            none("stand-alone mode")?;
            let config = load(&req)?;
            let uid = nix::unistd::getuid();
            if let Some(name) = crate::acl::denied(&config, "authorized_submit_users", uid.as_raw())
                .map_err(|f| exit(EX_USAGE, f.0))?
            {
                return Err(exit(
                    EX_USAGE,
                    format!("User {name}({uid}) is not allowed to submit mail"),
                ));
            }
            let name = nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map_or_else(|| uid.to_string(), |u| u.name);
            standalone::run(
                &config,
                req.config_dir.as_deref(),
                &format!("{name}({})", uid.as_raw()),
            )
        }
        Mode::Ignore => Ok(0),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Handles what Postfix's sendmail looks at before getopt: `-q` alone (flush mode) and
/// the VERP forms (`-XV`, `-V` with two characters, `-Vxy`), which are dropped here.
/// Only the option part of the command line is looked at (up to the first operand).
fn pre_options(args: &[String], mode: &mut Mode, msg: &Msg) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" || !a.starts_with('-') || a == "-" {
            break;
        }
        if a == "-q" {
            if *mode == Mode::Daemon {
                msg.warn("ignoring -q option in daemon mode");
            } else {
                *mode = Mode::FlushQ;
            }
            i += 1;
            continue;
        }
        if a == "-V" && args.get(i + 1).is_some_and(|n| n.len() == 2) {
            msg.warn("option -V is deprecated with Postfix 2.3; specify -XV instead");
            i += 1;
            continue;
        }
        if a.starts_with("-V") && a.len() == 4 {
            msg.warn(format!(
                "option {a} is deprecated with Postfix 2.3; specify -X{} instead",
                &a[1..]
            ));
            i += 1;
            continue;
        }
        if a == "-XV" {
            i += 1;
            continue;
        }
        out.push(a.clone());
        // An option letter that takes its argument from the next word.
        let last = a.chars().last().unwrap_or('-');
        let takes = a.len() == 2
            && GETOPT_LIST
                .find(last)
                .is_some_and(|p| GETOPT_LIST[p + 1..].starts_with(':'));
        if takes && let Some(next) = args.get(i + 1) {
            out.push(next.clone());
            i += 1;
        }
        i += 1;
    }
    out.extend(args[i..].iter().cloned());
    out
}

fn apply(opt: Opt, req: &mut Request, mode: &mut Mode, msg: &Msg) -> Result<(), Exit> {
    match opt {
        Opt::Flag('n') => return Err(exit(EX_USAGE, "-n option not supported")),
        Opt::Flag('I') => *mode = Mode::NewAlias,
        Opt::Flag('i') => req.dot_ends_input = false,
        Opt::Flag('t') => req.extract = true,
        Opt::Flag('v') => req.verbose += 1,
        Opt::WithArg('B', v) => {
            req.eight_bit = match v.as_str() {
                "8BITMIME" => true,
                "7BIT" => false,
                _ => return Err(exit(EX_USAGE, "-B option needs 8BITMIME or 7BIT")),
            };
        }
        Opt::WithArg('C', dir) => req.config_dir = Some(PathBuf::from(dir)),
        Opt::WithArg('F', name) => req.full_name = Some(name),
        Opt::WithArg('N', v) => {
            req.notify = notify_mask(&v);
            if req.notify == 0 {
                if let Some(bad) = v
                    .split([',', ' '])
                    .find(|w| !w.is_empty() && notify_mask(w) == 0)
                {
                    msg.warn(format!(
                        "unknown DSN NOTIFY command value \"{bad}\" in \"{v}\""
                    ));
                }
                msg.warn("bad -N option value -- ignored");
            }
        }
        Opt::WithArg('R', v) => {
            req.ret = match v.to_ascii_lowercase().as_str() {
                "full" => Some(DsnRet::Full),
                "hdrs" => Some(DsnRet::Hdrs),
                _ => {
                    msg.warn("bad -R option value -- ignored");
                    None
                }
            };
        }
        Opt::WithArg('V', v) => {
            if v.len() > 100 {
                msg.warn("too long -V option value -- ignored");
            } else if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                msg.warn("bad syntax in -V option value -- ignored");
            } else {
                req.envid = Some(v);
            }
        }
        Opt::WithArg('X', v) if !v.starts_with('V') => {
            let c = v.chars().next().unwrap_or('?');
            return Err(exit(EX_USAGE, format!("unsupported: -X{c}")));
        }
        Opt::WithArg('b', v) => match v.chars().next().unwrap_or('?') {
            'd' | 'l' => {
                if *mode == Mode::FlushQ {
                    msg.warn("ignoring -q option in daemon mode");
                }
                *mode = Mode::Daemon;
            }
            'h' | 'H' => *mode = Mode::Ignore,
            'i' => *mode = Mode::NewAlias,
            'm' => *mode = Mode::Enqueue,
            'p' => *mode = Mode::Mailq,
            's' => *mode = Mode::User,
            'v' => req.verify = true,
            c => return Err(exit(EX_USAGE, format!("unsupported: -b{c}"))),
        },
        Opt::WithArg('f' | 'r', s) => req.sender = Some(s),
        Opt::WithArg('o', v) => match v.chars().next() {
            Some('A') => {
                if v.len() == 1 {
                    return Err(exit(EX_USAGE, "-oA requires pathname"));
                }
                req.alias_map = Some(v[1..].to_owned());
            }
            Some('i') => req.dot_ends_input = false,
            _ => {}
        },
        Opt::WithArg('q', v) => match v.chars().next() {
            Some(c) if c.is_ascii_digit() => req.qtime = true,
            Some('R') => {
                if v.len() == 1 {
                    return Err(exit(EX_USAGE, "specify: -qRsitename"));
                }
                req.site_to_flush = Some(v[1..].to_owned());
            }
            Some('I') => {
                if v.len() == 1 {
                    return Err(exit(EX_USAGE, "specify: -qIqueueid"));
                }
                req.id_to_flush = Some(v[1..].to_owned());
            }
            c => {
                return Err(exit(
                    EX_USAGE,
                    format!("-q{} is not implemented", c.unwrap_or(' ')),
                ));
            }
        },
        // The rest of Sendmail's options are accepted and ignored, as Postfix does.
        _ => {}
    }
    Ok(())
}

/// RFC 3461 NOTIFY from `-N` (`never`, or a list of `success`, `delay`, `failure`);
/// 0 when malformed.
fn notify_mask(v: &str) -> u8 {
    let mut mask = 0u8;
    for word in v.split([',', ' ']).filter(|w| !w.is_empty()) {
        mask |= match word.to_ascii_lowercase().as_str() {
            "never" => tern_queue::Notify::NEVER,
            "success" => tern_queue::Notify::SUCCESS,
            "failure" => tern_queue::Notify::FAILURE,
            "delay" => tern_queue::Notify::DELAY,
            _ => return 0,
        };
    }
    if mask & tern_queue::Notify::NEVER != 0 && mask != tern_queue::Notify::NEVER {
        return 0;
    }
    mask
}

fn load(req: &Request) -> Result<Config, Exit> {
    Config::load_for_command(req.config_dir.as_deref()).map_err(|e| exit(EX_USAGE, e.to_string()))
}

/// A sibling program of this one (Tern installs its commands together), else the one in
/// command_directory.
fn program(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| Path::new("/usr/sbin").join(name))
}

fn command(req: &Request, name: &str) -> Command {
    let mut c = Command::new(program(name));
    if let Some(dir) = &req.config_dir {
        c.env("MAIL_CONFIG", dir);
    }
    c
}

/// Runs `name` in place of this process (mail_run_replace); returns only on failure.
fn replace(req: &Request, name: &str, args: &[&str]) -> Exit {
    let e = command(req, name).args(args).exec();
    exit(EX_UNAVAILABLE, format!("{}: {e}", program(name).display()))
}

/// The default mode: read the message, hand it to postdrop.
fn enqueue(req: &Request) -> Result<i32, Exit> {
    let config = load(req)?;
    let uid = nix::unistd::getuid();
    let pw = nix::unistd::User::from_uid(uid).ok().flatten();
    let sender = match &req.sender {
        Some(s) => {
            let list = parse_address_list(s.as_bytes(), TOKEN_LIMIT);
            let found: Vec<String> = list
                .mailboxes()
                .map(|m| String::from_utf8_lossy(&m.internal()).into_owned())
                .collect();
            if found.len() > 1 {
                Msg::new("sendmail").warn(format!("-f option specified malformed sender: {s}"));
            }
            found.into_iter().next().unwrap_or_default()
        }
        None => match &pw {
            Some(p) => p.name.clone(),
            None => {
                return Err(exit(
                    EX_OSERR,
                    format!("no login name found for user ID {}", uid.as_raw()),
                ));
            }
        },
    };
    let who = format!("{sender}({})", uid.as_raw());
    let get = |name: &str| -> String { config.expanded(name).ok().flatten().unwrap_or_default() };
    let limit: u64 = get("message_size_limit").parse().unwrap_or(10_240_000);
    let header_limit: usize = get("header_size_limit").parse().unwrap_or(102_400);
    let full_name = req
        .full_name
        .clone()
        .or_else(|| std::env::var("NAME").ok())
        .or_else(|| pw.as_ref().map(gecos_name));
    let mut recipients = Vec::new();
    for arg in &req.recipients {
        let list = parse_address_list(arg.as_bytes(), TOKEN_LIMIT);
        let before = recipients.len();
        recipients.extend(
            list.mailboxes()
                .map(|m| String::from_utf8_lossy(&m.internal()).into_owned()),
        );
        if recipients.len() == before {
            recipients.push(String::new());
        }
    }
    // sendmail.c: a probe (-bv) reads no input; its content is a From:, `Subject:
    // probe` and the recipients as given, in a To: header.
    let input = if req.verify {
        probe_content(&sender, &req.recipients)
    } else {
        read_message(&mut io::stdin().lock(), req.dot_ends_input, limit, &who)?
    };
    if req.extract {
        recipients.extend(extract_recipients(&input, header_limit));
    }
    if recipients.is_empty() {
        return Err(exit(
            EX_USAGE,
            if req.extract {
                format!("{who}: No recipient addresses found in message header")
            } else {
                format!(
                    "{who}: Recipient addresses must be specified on the command line or via the -t option"
                )
            },
        ));
    }
    let env = Envelope {
        sender,
        full_name: full_name.filter(|n| !n.contains(['\n', '\r', '\0'])),
        notify: req.notify,
        ret: req.ret,
        envid: req.envid.clone(),
        eight_bit: req.eight_bit,
        verify: req.verify,
        smtputf8: false,
        recipients,
        rcpt_dsn: Vec::new(),
    };
    drop_message(req.config_dir.as_deref(), &env, &input, &who)?;
    if env.verify {
        // sendmail.c: "Don't leave them in the dark."
        let _ = writeln!(
            io::stdout(),
            "Mail Delivery Status Report will be mailed to <{}>.",
            env.sender
        );
    }
    Ok(0)
}

/// The content of a `sendmail -bv` probe, as sendmail.c writes it: `From: SENDER`
/// (none for the null sender), `Subject: probe`, and `To:` with each command-line
/// argument on a line of its own.
fn probe_content(sender: &str, recipients: &[String]) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::new();
    if !sender.is_empty() {
        let _ = writeln!(out, "From: {sender}");
    }
    out.push_str("Subject: probe\n");
    if !recipients.is_empty() {
        out.push_str("To:");
        for (i, r) in recipients.iter().enumerate() {
            let comma = if i + 1 < recipients.len() { "," } else { "" };
            let _ = writeln!(out, "\t{r}{comma}");
        }
    }
    out.into_bytes()
}

/// Hands a submission to `postdrop -r`; returns the maildrop file's name (the message's
/// id until pickup queues it).
pub fn drop_message(
    config_dir: Option<&Path>,
    env: &Envelope,
    content: &[u8],
    who: &str,
) -> Result<String, Exit> {
    let mut cmd = Command::new(program("postdrop"));
    if let Some(dir) = config_dir {
        cmd.env("MAIL_CONFIG", dir);
    }
    let mut child = cmd
        .arg("-r")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            exit(
                EX_UNAVAILABLE,
                format!(
                    "{who}: unable to execute {} -r: {e}",
                    program("postdrop").display()
                ),
            )
        })?;
    let written = child.stdin.take().map(|mut stdin| {
        env.write(&mut stdin)
            .and_then(|()| stdin.write_all(content))
            .and_then(|()| stdin.flush())
    });
    let out = child
        .wait_with_output()
        .map_err(|e| exit(EX_TEMPFAIL, format!("{who}: {e}")))?;
    match written {
        Some(Ok(())) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Some(Err(e)) if e.kind() == io::ErrorKind::InvalidInput => {
            Err(exit(EX_USAGE, format!("{who}: {e}")))
        }
        _ => Err(exit(EX_TEMPFAIL, format!("{who}: queue file write error"))),
    }
}

/// fullname(3): the GECOS field up to `,`, `;` or `%`, with `&` as the login name,
/// capitalised.
fn gecos_name(pw: &nix::unistd::User) -> String {
    let gecos = pw.gecos.to_string_lossy();
    let mut out = String::new();
    for c in gecos.chars() {
        match c {
            ',' | ';' | '%' => break,
            '&' => {
                let mut name = pw.name.chars();
                if let Some(first) = name.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(name.as_str());
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads standard input as Postfix's sendmail does: leading `From ` lines (also
/// `>From `) dropped, carriage returns before each newline removed, a line with a
/// single `.` ending the input when `dot_ends`; at most `limit` bytes (0: no limit).
/// Returns LF-terminated lines (a last line without a newline gets one).
pub fn read_message(
    input: &mut impl BufRead,
    dot_ends: bool,
    limit: u64,
    who: &str,
) -> Result<Vec<u8>, Exit> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut skip_from = true;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| exit(EX_DATAERR, format!("{who}: error reading input: {e}")))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        while line.last() == Some(&b'\r') {
            line.pop();
        }
        if skip_from {
            let start = line.iter().take_while(|&&b| b == b'>').count();
            if line[start..].starts_with(b"From ") {
                continue;
            }
            skip_from = false;
        }
        if dot_ends && line == b"." {
            break;
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
        if limit > 0 && out.len() as u64 > limit {
            return Err(exit(EX_UNAVAILABLE, format!("{who}: message file too big")));
        }
    }
    Ok(out)
}

/// `-t`: the addresses of the primary header's To:, Cc: and Bcc: fields, or of its
/// Resent-To:, Resent-Cc: and Resent-Bcc: fields when there is any of those (Postfix's
/// sendmail: once a Resent- recipient field is seen, only those count).
pub fn extract_recipients(message: &[u8], header_limit: usize) -> Vec<String> {
    let mut plain = Vec::new();
    let mut resent = Vec::new();
    let mut seen_resent = false;
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = fields.last_mut()
                && last.len() < header_limit
            {
                last.push(b'\n');
                last.extend_from_slice(line);
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            break;
        };
        if line[..colon].is_empty() || line[..colon].iter().any(|b| !b.is_ascii_graphic()) {
            break;
        }
        fields.push(line[..line.len().min(header_limit)].to_vec());
    }
    for field in fields {
        let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
        let name = String::from_utf8_lossy(&field[..colon]).to_ascii_lowercase();
        let is_resent = match name.as_str() {
            "to" | "cc" | "bcc" => false,
            "resent-to" | "resent-cc" | "resent-bcc" => true,
            _ => continue,
        };
        if seen_resent && !is_resent {
            continue;
        }
        let list = parse_address_list(&field[colon + 1..], TOKEN_LIMIT);
        let found = list
            .mailboxes()
            .map(|m| String::from_utf8_lossy(&m.internal()).into_owned());
        if is_resent {
            seen_resent = true;
            resent.extend(found);
        } else {
            plain.extend(found);
        }
    }
    if seen_resent { resent } else { plain }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_content_is_sendmail_c_s() {
        let table: &[(&str, &[&str], &str)] = &[
            (
                "root",
                &["a", "b@x"],
                "From: root\nSubject: probe\nTo:\ta,\n\tb@x\n",
            ),
            ("", &["a"], "Subject: probe\nTo:\ta\n"),
        ];
        for (sender, rcpts, want) in table {
            let rcpts: Vec<String> = rcpts.iter().map(|r| (*r).to_owned()).collect();
            assert_eq!(
                String::from_utf8(probe_content(sender, &rcpts)).unwrap(),
                *want
            );
        }
    }

    #[test]
    fn input_rules() {
        let who = "u(1)";
        let table: &[(&[u8], bool, &[u8])] = &[
            (
                b"From x  Mon\r\nA: b\r\n\r\nbody\r\n",
                true,
                b"A: b\n\nbody\n",
            ),
            (b">From y\nA: b\n\n.\nafter\n", true, b"A: b\n\n"),
            (b"A: b\n\n.\nafter", false, b"A: b\n\n.\nafter\n"),
            (b"A: b\n\nFrom inside\n", true, b"A: b\n\nFrom inside\n"),
            (b"x\0y\n", true, b"x\0y\n"),
            (b"", true, b""),
        ];
        for (input, dot, want) in table {
            let got = read_message(&mut &input[..], *dot, 0, who).unwrap();
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(input));
        }
        let err = read_message(&mut &b"0123456789\n"[..], true, 5, who).unwrap_err();
        assert_eq!(
            err,
            Exit(EX_UNAVAILABLE, "u(1): message file too big".into())
        );
    }

    #[test]
    fn recipients_from_headers() {
        let table: &[(&str, &[&str])] = &[
            (
                "To: a@x, B <b@y>\nCc: c\nBcc: d\nSubject: s\n\nTo: no\n",
                &["a@x", "b@y", "c", "d"],
            ),
            (
                "To: a\n  , e\nResent-To: r1\nResent-Bcc: r2\nCc: c\n\n",
                &["r1", "r2"],
            ),
            ("Subject: none\n\n", &[]),
            ("to: \"q u\"@x\n\n", &["q u@x"]),
            ("To: group: g1, g2;\n\n", &["g1", "g2"]),
        ];
        for (msg, want) in table {
            assert_eq!(extract_recipients(msg.as_bytes(), 1000), *want, "{msg}");
        }
    }

    #[test]
    fn notify_values() {
        let table: &[(&str, u8)] = &[
            ("never", 1),
            ("success,delay", 2 | 8),
            ("FAILURE", 4),
            ("never,success", 0),
            ("bogus", 0),
        ];
        for (v, want) in table {
            assert_eq!(notify_mask(v), *want, "{v}");
        }
    }

    #[test]
    fn pre_options_take_q_and_verp() {
        let msg = Msg::new("sendmail");
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let mut mode = Mode::Enqueue;
        assert_eq!(
            pre_options(&s(&["-q", "-f", "-q", "-XV", "u"]), &mut mode, &msg),
            s(&["-f", "-q", "u"])
        );
        assert_eq!(mode, Mode::FlushQ);
    }
}
