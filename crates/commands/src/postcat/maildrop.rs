//! Tern's maildrop files (`maildrop/`, [`tern_queue::maildrop`]) as Postfix's postcat
//! shows the files Postfix's postdrop writes there: the arrival time, the DSN envelope
//! attributes, `rewrite_context=local`, the full name, the sender, the body type, each
//! recipient with its NOTIFY bits; then the content and the two end markers.
//!
//! What differs from Postfix's (the postcat row of docs/compat.md): the arrival time is
//! the file's modification time (Tern's file holds none; postdrop writes the file at
//! once, so the two agree to the second); offsets are those of the text lines; Tern's
//! file does not say whether `sendmail -t` extracted the recipients, so they are shown
//! in the envelope.
//!
//! Security: the envelope is read by [`tern_queue::maildrop::Envelope::read`], which
//! bounds lines and recipients and refuses anything malformed; the content is shown as
//! it is, in lines of at most [`super::queuefile::MAX_LINE`] bytes.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use tern_queue::DsnRet;
use tern_queue::maildrop::{Envelope, MAX_LINE};

use super::printer::{Flow, Marker, Printer, Rec, code, local_asctime};
use super::queuefile::{Line, ShowError};

/// Shows the maildrop file `input`, last modified at `mtime` (Unix seconds).
pub fn show<F: Read + Seek>(
    input: &mut F,
    mtime: u64,
    p: &mut Printer<'_>,
) -> Result<(), ShowError> {
    let env = Envelope::read(&mut BufReader::new(&mut *input))
        .map_err(|e| ShowError::Record(format!("maildrop file: {e}")))?;
    // Second pass over the envelope, which has just been read whole and checked: the
    // offset of each line.
    input.seek(SeekFrom::Start(0))?;
    let mut input = BufReader::new(input);
    let mut offsets = Offsets::default();
    let mut at = 0u64;
    let mut text = Vec::new();
    loop {
        text.clear();
        let n = Read::take(&mut input, MAX_LINE as u64 + 1).read_until(b'\n', &mut text)?;
        if n == 0 {
            break;
        }
        let key = text
            .split(|&b| b == b' ' || b == b'\n')
            .next()
            .unwrap_or(b"");
        match key {
            b"sender" => {
                offsets.sender.get_or_insert(at);
            }
            b"fullname" => {
                offsets.fullname.get_or_insert(at);
            }
            b"ret" => {
                offsets.ret.get_or_insert(at);
            }
            b"envid" => {
                offsets.envid.get_or_insert(at);
            }
            b"body" => {
                offsets.body.get_or_insert(at);
            }
            b"rcpt" => offsets.rcpt.push(at),
            _ => {}
        }
        if text == b"\n" {
            offsets.content = at;
            at += 1;
            break;
        }
        at += n as u64;
    }
    let when = local_asctime(mtime);
    let mut fields: Vec<(u64, u8, &str, String)> =
        vec![(0, code::TIME, "message_arrival_time", when)];
    let attr = |o: Option<u64>, v: String| (o.unwrap_or(0), code::ATTR, "named_attribute", v);
    if let Some(envid) = &env.envid {
        fields.push(attr(offsets.envid, format!("envelope_id={envid}")));
    }
    if let Some(ret) = env.ret {
        let n = match ret {
            DsnRet::Full => 1,
            DsnRet::Hdrs => 2,
        };
        fields.push(attr(offsets.ret, format!("ret_flags={n}")));
    }
    // postdrop's submissions are local: pickup hands cleanup the local context.
    fields.push(attr(Some(0), "rewrite_context=local".to_owned()));
    if let Some(name) = &env.full_name {
        fields.push((
            offsets.fullname.unwrap_or(0),
            code::FULL,
            "sender_fullname",
            name.clone(),
        ));
    }
    fields.push((
        offsets.sender.unwrap_or(0),
        code::FROM,
        "sender",
        env.sender.clone(),
    ));
    if env.eight_bit {
        fields.push(attr(offsets.body, "encoding=8bit".to_owned()));
    }
    for (i, r) in env.recipients.iter().enumerate() {
        let o = offsets.rcpt.get(i).copied();
        // postdrop writes each recipient's own NOTIFY and ORCPT before it (sendmail -bs).
        let dsn = env.dsn(i);
        let notify = if dsn.notify != 0 {
            dsn.notify
        } else {
            env.notify
        };
        if notify != 0 {
            fields.push(attr(o, format!("notify_flags={notify}")));
        }
        if let Some(orcpt) = &dsn.orcpt {
            fields.push(attr(o, format!("dsn_orig_rcpt={orcpt}")));
        }
        fields.push((o.unwrap_or(0), code::RCPT, "recipient", r.clone()));
    }
    for (offset, code, name, value) in &fields {
        let rec = Rec::Field {
            offset: *offset,
            code: *code,
            name,
            value,
        };
        if p.feed(&rec)? == Flow::Stop {
            return Ok(());
        }
    }
    let marker = |offset, marker| Rec::Marker { offset, marker };
    if p.feed(&marker(offsets.content, Marker::Contents))? == Flow::Stop {
        return Ok(());
    }
    let mut line = Line::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ShowError::Record(format!("read error: {e}"))),
        };
        if line.push(at, &chunk[..n], p)? == Flow::Stop {
            return Ok(());
        }
        at += n as u64;
    }
    if line.flush(p)? == Flow::Stop || p.feed(&marker(at, Marker::Extracted))? == Flow::Stop {
        return Ok(());
    }
    p.feed(&marker(at, Marker::End))?;
    Ok(())
}

/// Where each envelope line starts.
#[derive(Default)]
struct Offsets {
    sender: Option<u64>,
    fullname: Option<u64>,
    ret: Option<u64>,
    envid: Option<u64>,
    body: Option<u64>,
    rcpt: Vec<u64>,
    /// The empty line that ends the envelope (Postfix's REC_TYPE_MESG).
    content: u64,
}
