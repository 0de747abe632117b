//! The mail queue: queue ids, the queue directories, Tern's queue file format, durable
//! commit with group fsync, scanning and start-up recovery. Shared by the daemon (smtpd
//! and cleanup write, qmgr reads and moves) and the queue commands (postqueue, postsuper,
//! postcat, mailq).
//!
//! The flow of a new message:
//!
//! ```text
//! PendingFile::create(layout, Incoming, form)   temp name in incoming/, id fixed
//!   QueueWriter::new(pending, &envelope)        header + envelope records
//!   .content(..) ... .finish()                  content records, End record
//! Committer::commit(pending)                    journal record or fdatasync, link under id
//!   -> QueueId                                  now smtpd may answer 250
//! StatusLog::open(path)?.append(&[update])      after each delivery attempt
//! ```
//!
//! The file format is Tern's own (docs/queue-format.md), not Postfix's record format:
//! Postfix's queue files are an internal interface that no outside tool reads except
//! through postcat, which Tern provides for its own format.
//!
//! What it trusts: the queue directory and its owner; the caller for uids, gids and the
//! id form. What it does not: the contents of queue files and the names in queue
//! directories, which may be left half-written or damaged by a crash.

pub mod commit;
pub mod file;
pub mod id;
pub mod journal;
pub mod layout;
pub mod maildrop;
pub mod moves;
pub mod record;
pub mod scan;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use commit::{CommitStats, Committer, PendingFile};
pub use file::{
    ATTR_FILTER, ATTR_REDIRECT, DeliveryStatus, DsnRet, Envelope, MessageFlags, Notify, QueueFile,
    QueueWriter, Recipient, StatusLog, StatusUpdate, Timestamp,
};
pub use id::{IdError, IdForm, QueueId};
pub use journal::{ReplayEvent, replay};
pub use layout::{Owners, QueueLayout, QueueName};
pub use record::ReadError;
pub use scan::{QueueEntry, QueueListing, RecoveryEvent, recover, scan};

/// Errors of queue operations, with the path they concern.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: ReadError },
    /// A file of that name exists already; nothing was replaced.
    #[error("{}: file exists", path.display())]
    Exists { path: PathBuf },
    /// The commit thread has stopped (it panicked or was shut down).
    #[error("queue commit thread is gone")]
    CommitterGone,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
