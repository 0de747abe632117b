//! Sans-IO SMTP (RFC 5321) as Postfix's smtpd speaks it: no sockets, no clock, no tokio.
//!
//! The driver (Tern's smtpd) owns the socket and the clock; this crate owns the
//! protocol. Bytes from the client go into a [`line::LineAssembler`]; command lines
//! go to a [`session::Session`], which answers with a [`session::Step`]: a reply to
//! send, a policy question for the driver (relay checks, access maps), or an
//! instruction to read message content with a [`data::DataReader`] or
//! [`data::BdatReader`]. Replies, their texts and enhanced status codes are Postfix
//! 3.7's, collected in [`replies`].
//!
//! Modules: [`line`] (line assembly, bare-LF policy), [`command`] and [`params`]
//! (command grammar, ESMTP parameters), [`reply`] (replies, EHLO keywords), [`data`]
//! (DATA and BDAT content), [`session`] (the state machine), [`transcript`] (the test
//! transcript format shared with loopback tests).

mod addr822;
pub mod command;
pub mod data;
pub mod line;
pub mod params;
pub mod pipelining;
pub mod replies;
pub mod reply;
pub mod session;
mod session_stats;
mod session_verbs;
pub mod transcript;

pub use command::{Command, Verb};
pub use line::{BareLfPolicy, Line, LineAssembler, LineEnd};
pub use reply::{EhloFeatures, EnhancedStatus, Reply};
pub use session::{Session, SessionConfig, Step};
