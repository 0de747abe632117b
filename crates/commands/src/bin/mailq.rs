//! `mailq`: Postfix's sendmail in its "display queue" mode (sendmail.c, SM_MODE_MAILQ by
//! program name): sendmail's flags are parsed and, but for `-C dir` and `-v`, ignored;
//! an operand is `mailq: fatal: display queue mode requires no recipient` (exit 75, the
//! EX_TEMPFAIL of sendmail's cleanup handler); then `postqueue -p` runs.

use std::path::PathBuf;

/// sendmail.c's GETOPT_LIST: the letters that take an argument.
const WITH_ARG: &str = "ABCFLNORVXbefhopqr";

fn main() {
    let args = tern_commands::args();
    let mut config: Option<PathBuf> = None;
    let mut verbose = 0;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        let chars: Vec<char> = arg.chars().skip(1).collect();
        for (j, &c) in chars.iter().enumerate() {
            if WITH_ARG.contains(c) {
                let rest: String = chars[j + 1..].iter().collect();
                let value = if rest.is_empty() {
                    i += 1;
                    args.get(i).cloned().unwrap_or_default()
                } else {
                    rest
                };
                if c == 'C' {
                    config = Some(PathBuf::from(value));
                }
                break;
            }
            if c == 'v' {
                verbose += 1;
            }
        }
        i += 1;
    }
    let msg = tern_commands::msg::Msg::new("mailq");
    if i < args.len() {
        msg.fatal(&tern_commands::fatal!(
            "display queue mode requires no recipient"
        ));
        std::process::exit(75);
    }
    if let Some(dir) = &config
        && let Err(e) = tern_config::config::Config::load(dir)
    {
        msg.fatal(&tern_commands::fatal!("{e}"));
        std::process::exit(75);
    }
    std::process::exit(tern_commands::postqueue::show_queue(
        config.as_deref(),
        verbose,
    ));
}
