//! The lines of `postfix start/stop/reload` (postfix-script) and of master(8).
//!
//! ```text
//! postfix/postfix-script[1161]: starting the Postfix mail system
//! postfix/master[1163]: daemon started -- version 3.7.11, configuration /etc/postfix
//! postfix/postfix-script[2713]: refreshing the Postfix mail system
//! postfix/master[1163]: reload -- version 3.7.11, configuration /etc/postfix
//! postfix/postfix-script[2713]: stopping the Postfix mail system
//! postfix/postfix-script[2716]: waiting for the Postfix mail system to terminate
//! postfix/master[3219]: terminating on signal 15
//! ```
//!
//! Postfix 3.7 writes `terminating on signal 15` after it has stopped its children, so with
//! `maillog_file` the line is lost together with postlogd; over syslog it arrives. Tern may
//! log it either way: it is harmless where Postfix drops it.
//!
//! Trust: all values come from the configuration and our own process.

use crate::line::Line;

/// What `postfix` (postfix-script) announces, under the ident `postfix/postfix-script`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptEvent {
    /// `postfix start`.
    Starting,
    /// `postfix stop`.
    Stopping,
    /// `postfix stop`, after asking master to stop.
    WaitingToTerminate,
    /// `postfix reload`.
    Refreshing,
    /// `postfix abort`.
    Aborting,
    /// `postfix status` when it runs.
    Running {
        /// The pid in `pid/master.pid`.
        pid: u32,
    },
    /// `postfix status` when it does not run (info), or `postfix stop` when it does not
    /// run (fatal: see [`script_fatal_not_running`]).
    NotRunning,
    /// `postfix start` when it already runs (fatal).
    AlreadyRunning,
}

/// One postfix-script line. `AlreadyRunning` is a fatal line, the others info.
pub fn script(event: ScriptEvent) -> Line {
    let text = match event {
        ScriptEvent::Starting => "starting the Postfix mail system".to_string(),
        ScriptEvent::Stopping => "stopping the Postfix mail system".to_string(),
        ScriptEvent::WaitingToTerminate => {
            "waiting for the Postfix mail system to terminate".to_string()
        }
        ScriptEvent::Refreshing => "refreshing the Postfix mail system".to_string(),
        ScriptEvent::Aborting => "aborting the Postfix mail system".to_string(),
        ScriptEvent::Running { pid } => format!("the Postfix mail system is running: PID: {pid}"),
        ScriptEvent::NotRunning => "the Postfix mail system is not running".to_string(),
        ScriptEvent::AlreadyRunning => {
            return Line::fatal("the Postfix mail system is already running");
        }
    };
    Line::info(text)
}

/// `fatal: the Postfix mail system is not running` (`postfix stop`/`reload` when it is not).
pub fn script_fatal_not_running() -> Line {
    Line::fatal("the Postfix mail system is not running")
}

/// master: `daemon started -- version 3.7.11, configuration /etc/postfix`.
pub fn daemon_started(mail_version: &str, config_directory: &str) -> Line {
    Line::info(format!(
        "daemon started -- version {mail_version}, configuration {config_directory}"
    ))
}

/// master: `reload -- version 3.7.11, configuration /etc/postfix`.
pub fn reload(mail_version: &str, config_directory: &str) -> Line {
    Line::info(format!(
        "reload -- version {mail_version}, configuration {config_directory}"
    ))
}

/// master: `terminating on signal 15`.
pub fn terminating(signal: i32) -> Line {
    Line::info(format!("terminating on signal {signal}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cases = [
            (
                script(ScriptEvent::Starting),
                "starting the Postfix mail system",
            ),
            (
                script(ScriptEvent::Stopping),
                "stopping the Postfix mail system",
            ),
            (
                script(ScriptEvent::WaitingToTerminate),
                "waiting for the Postfix mail system to terminate",
            ),
            (
                script(ScriptEvent::Refreshing),
                "refreshing the Postfix mail system",
            ),
            (
                script(ScriptEvent::Aborting),
                "aborting the Postfix mail system",
            ),
            (
                script(ScriptEvent::Running { pid: 7 }),
                "the Postfix mail system is running: PID: 7",
            ),
            (
                script(ScriptEvent::NotRunning),
                "the Postfix mail system is not running",
            ),
            (
                script(ScriptEvent::AlreadyRunning),
                "fatal: the Postfix mail system is already running",
            ),
            (
                script_fatal_not_running(),
                "fatal: the Postfix mail system is not running",
            ),
            (
                daemon_started("3.7.11", "/etc/postfix"),
                "daemon started -- version 3.7.11, configuration /etc/postfix",
            ),
            (
                reload("3.7.11", "/etc/postfix"),
                "reload -- version 3.7.11, configuration /etc/postfix",
            ),
            (terminating(15), "terminating on signal 15"),
        ];
        for (line, want) in cases {
            assert_eq!(line.to_string(), want);
        }
    }
}
