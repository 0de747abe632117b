//! Per-command counters for the `disconnect from <client> ...` log line.
//!
//! Postfix counts, per verb of its command table, how often a command was received
//! (total) and how often it succeeded; the log line lists each verb seen as
//! `name=ok` or `name=ok/total`, then `commands=ok` or `commands=ok/total` (always
//! `/total` when no command came: `commands=0/0`). Example verified live:
//! `ehlo=1 starttls=0/1 auth=0/1 mail=1 rcpt=5/13 data=0/1 bdat=0/1 rset=0/1 noop=1
//! vrfy=1/2 etrn=0/2 unknown=0/1 commands=9/26`.

use std::fmt::Write as _;

use crate::command::Verb;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandStats {
    ok: [u32; 16],
    total: [u32; 16],
}

impl CommandStats {
    pub fn count_total(&mut self, verb: Verb) {
        self.total[verb as usize] += 1;
    }

    pub fn count_ok(&mut self, verb: Verb) {
        self.ok[verb as usize] += 1;
    }

    /// (ok, total) for one verb.
    pub fn get(&self, verb: Verb) -> (u32, u32) {
        (self.ok[verb as usize], self.total[verb as usize])
    }

    /// The text after `disconnect from <client>`, with its leading space.
    pub fn log_suffix(&self) -> String {
        let mut out = String::new();
        let (mut all_ok, mut all_total) = (0, 0);
        for verb in Verb::ALL {
            let (ok, total) = self.get(verb);
            if total == 0 {
                continue;
            }
            let _ = write!(out, " {}={ok}", verb.log_name());
            if ok != total {
                let _ = write!(out, "/{total}");
            }
            all_ok += ok;
            all_total += total;
        }
        let _ = write!(out, " commands={all_ok}");
        if all_ok != all_total || all_total == 0 {
            let _ = write!(out, "/{all_total}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_suffix() {
        let mut s = CommandStats::default();
        assert_eq!(s.log_suffix(), " commands=0/0");
        for (verb, ok, total) in [
            (Verb::Ehlo, 1, 1),
            (Verb::Mail, 1, 1),
            (Verb::Rcpt, 1, 2),
            (Verb::Quit, 1, 1),
        ] {
            for _ in 0..total {
                s.count_total(verb);
            }
            for _ in 0..ok {
                s.count_ok(verb);
            }
        }
        assert_eq!(
            s.log_suffix(),
            " ehlo=1 mail=1 rcpt=1/2 quit=1 commands=4/5"
        );
    }
}
