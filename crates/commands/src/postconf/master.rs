//! master.cf output in postconf: `-M`, `-F` and `-P`, with `-x` expanding in each service's
//! name space.

use std::io::Write;

use tern_config::config::Config;

use super::Invocation;
use crate::fatal;
use crate::msg::{Fatal, Msg};

pub(crate) fn show(
    _msg: &Msg,
    _inv: &Invocation,
    _config: &Config,
    _out: &mut dyn Write,
) -> Result<(), Fatal> {
    Err(fatal!("master.cf output is being wired in"))
}
