//! `postsuper -r`: a queue file becomes a maildrop file again, for pickup and cleanup
//! to make a new queue file from (so that changed canonical and virtual mappings and
//! content_filter apply).
//!
//! Postfix renames the queue file into maildrop/, which its pickup reads as it reads
//! postdrop's files (both are record files). Tern's maildrop files are a text format of
//! their own ([`tern_queue::maildrop`]), so the message is converted: the envelope
//! sender, DSN RET and ENVID, BODY=8BITMIME, the recipients still pending, and the
//! content as stored. Each pending recipient is written as its *original* recipient
//! (the address the client gave, before canonical and virtual alias mapping), so that
//! cleanup maps it afresh and `orig_to=` stays what it was, except where an original
//! was expanded into several recipients and some of them are done already: those
//! pending recipients are written as they are, so nobody gets the message twice.
//! A maildrop file has one NOTIFY for all its recipients: recipients with different
//! NOTIFY values go into one file each (`ID`, `ID_1`, ...). What the format cannot
//! carry is lost: a recipient's ORCPT and the SMTPUTF8 flag (docs/compat.md).
//!
//! The file is written with mode 0600 under the message's queue id in maildrop/,
//! synced, given the finished mode 0444 (it belongs to mail_owner, as postsuper runs
//! as mail_owner), and only then is the queue file removed: a crash in between leaves
//! the message twice (delivered twice), never lost.
//!
//! Security: the queue file is opened without following a symbolic link and read with
//! tern_queue's checking reader; a file that does not read is left where it is, with a
//! warning.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tern_queue::maildrop::{Envelope as Drop, READY_MODE, RcptDsn};
use tern_queue::{DsnRet, MessageFlags, QueueFile, QueueId, QueueName};

use super::Super;
use super::ops::errno;
use crate::fatal;
use crate::msg::Fatal;

impl Super<'_> {
    /// Converts the queue file at `path` into maildrop file(s) and removes it.
    /// `Ok(false)` when the file went away meanwhile or does not read (warned).
    pub(crate) fn requeue_file(&mut self, path: &Path, id: &QueueId) -> Result<bool, Fatal> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                self.warn(format!("{}: open: {}", path.display(), errno(&e)));
                return Ok(false);
            }
        };
        let qf = match QueueFile::read(BufReader::new(&file)) {
            Ok(qf) => qf,
            Err(e) => {
                self.warn(format!("{id}: cannot requeue {}: {e}", path.display()));
                return Ok(false);
            }
        };
        let maildrop = self.layout.dir(QueueName::Maildrop);
        let mut made: Vec<PathBuf> = Vec::new();
        for (n, env) in envelopes(&qf).into_iter().enumerate() {
            match write_one(&maildrop, id, n, &env, &qf, &mut file) {
                Ok(p) => made.push(p),
                Err(e) => {
                    for p in &made {
                        let _ = fs::remove_file(p);
                    }
                    return Err(fatal!("{id}: requeue to {}: {e}", maildrop.display()));
                }
            }
        }
        if let Ok(d) = File::open(&maildrop) {
            let _ = d.sync_all();
        }
        self.remove(path)?;
        self.pickup_wanted |= !made.is_empty();
        Ok(true)
    }
}

/// The maildrop envelope of a queue file (none when nothing is pending): the pending
/// recipients, each with its own NOTIFY and ORCPT, as their original recipients.
fn envelopes(qf: &QueueFile) -> Vec<Drop> {
    let env = &qf.envelope;
    // Originals with a recipient that is done: their pending ones keep their address.
    let mut partly_done: HashMap<&str, bool> = HashMap::new();
    for r in &env.recipients {
        if !r.original.is_empty() {
            *partly_done.entry(r.original.as_str()).or_default() |= r.status().is_final();
        }
    }
    let mut recipients: Vec<String> = Vec::new();
    let mut rcpt_dsn: Vec<RcptDsn> = Vec::new();
    for (_, r) in qf.pending() {
        let address =
            if r.original.is_empty() || partly_done.get(r.original.as_str()) == Some(&true) {
                r.address.clone()
            } else {
                r.original.clone()
            };
        let dsn = RcptDsn {
            notify: r.notify.0,
            orcpt: r.orcpt.clone(),
        };
        // An alias's expansions come back as the one original recipient.
        if recipients
            .iter()
            .zip(&rcpt_dsn)
            .any(|(a, d)| *a == address && *d == dsn)
        {
            continue;
        }
        recipients.push(address);
        rcpt_dsn.push(dsn);
    }
    if recipients.is_empty() {
        return Vec::new();
    }
    // The short form when no recipient has attributes of its own (as a file reads back).
    if rcpt_dsn.iter().all(|d| *d == RcptDsn::default()) {
        rcpt_dsn.clear();
    }
    vec![Drop {
        sender: env.sender.clone(),
        full_name: None,
        notify: 0,
        ret: env.dsn_ret.map(|r| match r {
            DsnRet::Full => DsnRet::Full,
            DsnRet::Hdrs => DsnRet::Hdrs,
        }),
        envid: env.dsn_envid.clone(),
        eight_bit: env.flags.0 & MessageFlags::BODY_8BITMIME != 0,
        verify: env.flags.0 & MessageFlags::VERIFY != 0,
        smtputf8: env.flags.0 & MessageFlags::SMTPUTF8 != 0,
        recipients,
        rcpt_dsn,
    }]
}

/// Writes maildrop/ID (or ID_N) with mode 0600, syncs it and sets the finished mode.
fn write_one(
    maildrop: &Path,
    id: &QueueId,
    n: usize,
    env: &Drop,
    qf: &QueueFile,
    src: &mut File,
) -> io::Result<PathBuf> {
    let mut attempt = n;
    let (path, file) = loop {
        let name = if attempt == 0 {
            id.to_string()
        } else {
            format!("{id}_{attempt}")
        };
        let path = maildrop.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => break (path, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < n + 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let written = (|| {
        let mut out = BufWriter::with_capacity(64 * 1024, &file);
        env.write(&mut out)?;
        qf.copy_content(src, &mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        file.set_permissions(fs::Permissions::from_mode(READY_MODE))?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use tern_queue::{DeliveryStatus, Envelope, Notify, QueueWriter, Recipient, StatusUpdate};

    use super::*;

    fn rcpt(address: &str, original: &str, notify: u8, done: bool) -> Recipient {
        Recipient {
            address: address.into(),
            orcpt: None,
            notify: Notify(notify),
            original: original.into(),
            last: done.then(|| StatusUpdate {
                recipient: 0,
                status: DeliveryStatus::Sent,
                time: 0,
                dsn: "2.0.0".into(),
                diagnostic: String::new(),
            }),
        }
    }

    fn queue_file(recipients: Vec<Recipient>) -> QueueFile {
        let env = Envelope {
            sender: "alice@example.com".into(),
            recipients,
            dsn_envid: Some("ENV1".into()),
            dsn_ret: Some(DsnRet::Hdrs),
            flags: MessageFlags(MessageFlags::BODY_8BITMIME),
            ..Envelope::default()
        };
        let mut w = QueueWriter::new(Vec::new(), &env).unwrap();
        w.content(b"Subject: x\n\nbody\n").unwrap();
        let bytes = w.finish().unwrap();
        let mut qf = QueueFile::read(&bytes[..]).unwrap();
        // Status records are appended after End in a real file; set them here.
        for (r, want) in qf.envelope.recipients.iter_mut().zip(&env.recipients) {
            r.last.clone_from(&want.last);
        }
        qf
    }

    #[test]
    fn recipients_and_their_dsn() {
        type Case<'a> = (Vec<Recipient>, Vec<(&'a str, u8)>);
        let cases: Vec<Case<'_>> = vec![
            // Originals, once each.
            (
                vec![
                    rcpt("bob@x.test", "bob@alias.test", 0, false),
                    rcpt("carol@x.test", "team@alias.test", 0, false),
                    rcpt("dave@x.test", "team@alias.test", 0, false),
                ],
                vec![("bob@alias.test", 0), ("team@alias.test", 0)],
            ),
            // An expansion partly delivered: the pending ones as they are.
            (
                vec![
                    rcpt("carol@x.test", "team@alias.test", 0, true),
                    rcpt("dave@x.test", "team@alias.test", 0, false),
                    rcpt("erin@x.test", "", 0, false),
                ],
                vec![("dave@x.test", 0), ("erin@x.test", 0)],
            ),
            // Each recipient keeps its own NOTIFY, in one file.
            (
                vec![
                    rcpt("a@x.test", "a@x.test", Notify::NEVER, false),
                    rcpt(
                        "b@x.test",
                        "b@x.test",
                        Notify::FAILURE | Notify::DELAY,
                        false,
                    ),
                    rcpt("c@x.test", "c@x.test", Notify::NEVER, false),
                ],
                vec![
                    ("a@x.test", Notify::NEVER),
                    ("b@x.test", Notify::FAILURE | Notify::DELAY),
                    ("c@x.test", Notify::NEVER),
                ],
            ),
            // Nothing pending: nothing to write.
            (vec![rcpt("a@x.test", "a@x.test", 0, true)], vec![]),
        ];
        for (recipients, want) in cases {
            let qf = queue_file(recipients);
            let got: Vec<(String, u8)> = envelopes(&qf)
                .into_iter()
                .flat_map(|e| {
                    assert_eq!(e.sender, "alice@example.com");
                    assert_eq!(e.envid.as_deref(), Some("ENV1"));
                    assert_eq!(e.ret, Some(DsnRet::Hdrs));
                    assert!(e.eight_bit);
                    (0..e.recipients.len())
                        .map(|i| (e.recipients[i].clone(), e.dsn(i).notify))
                        .collect::<Vec<_>>()
                })
                .collect();
            let want: Vec<(String, u8)> =
                want.into_iter().map(|(a, n)| (a.to_owned(), n)).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn writes_a_finished_maildrop_file() {
        let t = tempfile::tempdir().unwrap();
        let env = Envelope {
            sender: String::new(),
            recipients: vec![rcpt("bob@x.test", "bob@x.test", 0, false)],
            ..Envelope::default()
        };
        let mut w = QueueWriter::new(Vec::new(), &env).unwrap();
        w.content(b"Subject: x\n\nbody\n").unwrap();
        let qpath = t.path().join("qf");
        fs::write(&qpath, w.finish().unwrap()).unwrap();
        let qf = QueueFile::open(&qpath).unwrap();
        let id = QueueId::parse("ABC123").unwrap();
        let drop_env = envelopes(&qf).remove(0);
        let mut src = File::open(&qpath).unwrap();
        let p = write_one(t.path(), &id, 0, &drop_env, &qf, &mut src).unwrap();
        assert_eq!(p, t.path().join("ABC123"));
        let again = write_one(t.path(), &id, 0, &drop_env, &qf, &mut src).unwrap();
        assert_eq!(again, t.path().join("ABC123_1"));
        let md = fs::metadata(&p).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, READY_MODE);
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "TERN-MAILDROP 1\nsender\nrcpt bob@x.test\n\nSubject: x\n\nbody\n"
        );
        let back = Drop::read(&mut io::BufReader::new(File::open(&p).unwrap())).unwrap();
        assert_eq!(back, drop_env);
    }
}
