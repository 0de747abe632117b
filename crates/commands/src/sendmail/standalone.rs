//! `sendmail -bs`: SMTP on standard input and output, as Postfix's `smtpd -S`
//! (stand-alone mode) answers it: the same protocol machine as the daemon's smtpd
//! (tern_smtp), with relay and other access controls off (Postfix: "In stand-alone mode,
//! mail relaying and other access controls are disabled by default"), run with the
//! user's rights; each accepted message goes through `postdrop` into maildrop/, so the
//! 250 names the maildrop file (`250 2.0.0 Ok: queued as NAME`), as Postfix's names
//! postdrop's queue id.
//!
//! Not offered here: STARTTLS, AUTH (there is no network to protect) and CHUNKING (a
//! BDAT is answered with an error). The DSN parameters (RET, ENVID, each recipient's
//! NOTIFY and ORCPT) and SMTPUTF8 are carried through maildrop/.
//!
//! # Security
//! The input is the user's own; lines are capped at line_length_limit, the content at
//! message_size_limit (tern_smtp's readers), the recipients per message at
//! smtpd_recipient_limit.

use std::io::{self, BufRead, Write};
use std::path::Path;

use tern_config::config::Config;
use tern_queue::file::DsnRet;
use tern_queue::maildrop::{Envelope, RcptDsn};
use tern_smtp::data::{DataReader, DataStep, RecordKind};
use tern_smtp::line::Overlong;
use tern_smtp::params::{Body, Ret};
use tern_smtp::reply::EhloKeyword;
use tern_smtp::session::{Decision, MessageOutcome, Step, Verdict};
use tern_smtp::{LineAssembler, Reply, Session, SessionConfig};

use super::{Exit, drop_message};

/// The most passes of the session loop for one input line (a decision chain).
const MAX_STEPS: usize = 16;

/// The envelope being built.
#[derive(Default)]
struct Pending {
    sender: Option<String>,
    ret: Option<DsnRet>,
    envid: Option<String>,
    eight_bit: bool,
    smtputf8: bool,
    recipients: Vec<String>,
    rcpt_dsn: Vec<RcptDsn>,
}

/// Runs the session on standard input/output until QUIT or end of input.
pub fn run(config: &Config, config_dir: Option<&Path>, who: &str) -> Result<i32, Exit> {
    let get = |name: &str| config.expanded(name).ok().flatten().unwrap_or_default();
    let myhostname = get("myhostname");
    let mut cfg = SessionConfig::new(&myhostname);
    cfg.banner = get("smtpd_banner");
    cfg.ehlo.message_size_limit = get("message_size_limit").parse().unwrap_or(10_240_000);
    cfg.ehlo.discard.insert(EhloKeyword::Chunking);
    let line_limit: usize = get("line_length_limit").parse().unwrap_or(2048);
    let size_limit = cfg.ehlo.message_size_limit;
    let bare_lf = cfg.bare_lf;
    let mut session = Session::new(cfg);
    let mut lines = LineAssembler::new(line_limit, bare_lf);
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut out = io::stdout().lock();
    let mut pending = Pending::default();
    let mut data: Option<(DataReader, Vec<u8>)> = None;
    let io_err = |e: io::Error| Exit(super::EX_TEMPFAIL, format!("{who}: {e}"));
    send_all(&mut out, &[session.greeting()]).map_err(io_err)?;
    loop {
        let Some(line) = lines.next_line() else {
            let buf = input.fill_buf().map_err(io_err)?;
            if buf.is_empty() {
                return Ok(0);
            }
            let n = buf.len();
            lines.push(buf);
            input.consume(n);
            continue;
        };
        if let Some((reader, content)) = &mut data {
            match reader.line(&line) {
                DataStep::Store(text, kind) => {
                    content.extend_from_slice(text);
                    if kind == RecordKind::Norm {
                        content.push(b'\n');
                    }
                }
                DataStep::Skip => {}
                DataStep::End => {
                    let summary = reader.finish();
                    let content = data.take().map(|(_, c)| c).unwrap_or_default();
                    lines.set_overlong(Overlong::Skip);
                    let outcome = if summary.error.is_some() {
                        MessageOutcome::Rejected(canned("451 4.3.0 Error: queue file write error"))
                    } else {
                        submit(&mut pending, &content, config_dir, who)
                    };
                    let step = session.message_done(summary, outcome);
                    if drive(
                        step,
                        &mut session,
                        &mut pending,
                        &mut data,
                        &mut out,
                        size_limit,
                    )
                    .map_err(io_err)?
                    {
                        return Ok(0);
                    }
                    lines.set_overlong(if data.is_some() {
                        Overlong::Split
                    } else {
                        Overlong::Skip
                    });
                }
            }
            continue;
        }
        let step = session.command(&line);
        if drive(
            step,
            &mut session,
            &mut pending,
            &mut data,
            &mut out,
            size_limit,
        )
        .map_err(io_err)?
        {
            return Ok(0);
        }
        if data.is_some() {
            lines.set_overlong(Overlong::Split);
        }
    }
}

/// Follows the session's steps: replies out, every policy question answered yes (no
/// access controls in stand-alone mode), DATA started. Returns whether the session
/// ended.
fn drive(
    mut step: Step,
    session: &mut Session,
    pending: &mut Pending,
    data: &mut Option<(DataReader, Vec<u8>)>,
    out: &mut impl Write,
    size_limit: u64,
) -> io::Result<bool> {
    for _ in 0..MAX_STEPS {
        match step {
            Step::Send(send) => {
                send_all(out, &send.replies)?;
                return Ok(send.close || session.is_closed());
            }
            Step::Decide(decision) => {
                note(pending, &decision);
                step = session.decide(Verdict::Accept);
            }
            Step::ReadData(send) => {
                send_all(out, &send.replies)?;
                *data = Some((
                    DataReader::new(session.config().bare_lf, size_limit),
                    Vec::new(),
                ));
                return Ok(false);
            }
            Step::ReadChunk { .. } | Step::SkipChunk { .. } | Step::StartTls(_) => {
                // Not offered in this mode; the machine only gets here if a client
                // ignores the EHLO reply.
                send_all(out, &[canned("502 5.5.1 Error: command not implemented")])?;
                return Ok(true);
            }
            Step::Closed => return Ok(true),
        }
    }
    Ok(true)
}

fn send_all(out: &mut impl Write, replies: &[Reply]) -> io::Result<()> {
    for r in replies {
        out.write_all(r.to_wire(true).as_bytes())?;
    }
    out.flush()
}

/// Remembers what an accepted MAIL or RCPT said.
fn note(pending: &mut Pending, decision: &Decision) {
    match decision {
        Decision::Mail(m) => {
            *pending = Pending {
                sender: Some(m.address.clone()),
                ret: m.ret.map(|r| match r {
                    Ret::Full => DsnRet::Full,
                    Ret::Hdrs => DsnRet::Hdrs,
                }),
                envid: m.envid.clone(),
                eight_bit: m.body == Some(Body::EightBitMime),
                smtputf8: m.smtputf8,
                recipients: Vec::new(),
                rcpt_dsn: Vec::new(),
            };
        }
        Decision::Rcpt(r) => {
            pending.recipients.push(r.address.clone());
            let notify = r.notify.map_or(0, |n| {
                [
                    (n.never, tern_queue::Notify::NEVER),
                    (n.success, tern_queue::Notify::SUCCESS),
                    (n.failure, tern_queue::Notify::FAILURE),
                    (n.delay, tern_queue::Notify::DELAY),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .fold(0, |bits, (_, bit)| bits | bit)
            });
            pending.rcpt_dsn.push(RcptDsn {
                notify,
                orcpt: r
                    .orcpt
                    .as_ref()
                    .map(|o| format!("{};{}", o.addr_type, o.address)),
            });
        }
        _ => {}
    }
}

/// One accepted message into maildrop/.
fn submit(
    pending: &mut Pending,
    content: &[u8],
    config_dir: Option<&Path>,
    who: &str,
) -> MessageOutcome {
    let p = std::mem::take(pending);
    let env = Envelope {
        sender: p.sender.unwrap_or_default(),
        full_name: None,
        notify: 0,
        ret: p.ret,
        envid: p.envid,
        eight_bit: p.eight_bit,
        verify: false,
        smtputf8: p.smtputf8,
        recipients: p.recipients,
        rcpt_dsn: p.rcpt_dsn,
    };
    match drop_message(config_dir, &env, content, who) {
        Ok(id) => MessageOutcome::Queued { queue_id: id },
        Err(_) => MessageOutcome::Rejected(canned("451 4.3.0 Error: queue file write error")),
    }
}

/// A reply from one of this module's literals.
fn canned(text: &str) -> Reply {
    // Called only with the well-formed literals above; a bad one would be a bug here,
    // and still answers (a generic 451) instead of panicking.
    Reply::parse(text).unwrap_or_else(|_| {
        Reply::new(451, None, ["Error: internal"]).unwrap_or_else(|_| unreachable!())
    })
}
