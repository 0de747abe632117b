//! `qshape`: the domains of the queued mail by age (Postfix's qshape(1), a Perl script
//! that reads Postfix's record files; this one reads Tern's queue and maildrop files):
//!
//! `qshape [-s] [-p] [-m min_subdomains] [-l] [-b bucket_count] [-t bucket_time]
//! [-w terminal_width] [-N batch_msg_count] [-n batch_top_domains] [-c config_directory]
//! [queue_name ...]`
//!
//! One line per recipient domain (with `-s`, sender domain; the null sender is
//! `MAILER-DAEMON`), the total first, then a count per age bucket: `[0, t)`, `[t, 2t)`,
//! `[2t, 4t)`, ... minutes (`-l`: `[0, t)`, `[t, 2t)`, `[2t, 3t)`, ...), the last bucket
//! open-ended. `-p` adds parent domains (`.example.com`) that have at least
//! `min_subdomains` (5) subdomains. Queues default to incoming and active; names that are
//! not absolute are under queue_directory (`-c` picks the instance). Lines are sorted by
//! total, then by length, as qshape sorts them (and then by name, where the Perl script
//! leaves hash order). When standard output is a terminal the screen is cleared and the
//! top `batch_top_domains` (20) lines are shown every `batch_msg_count` (1000) messages,
//! as qshape does.
//!
//! Trust: queue files are read, never written; an unreadable or foreign file is skipped,
//! as qshape skips what is not a queue file.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tern_config::config::Config;

use crate::getopt::{Opt, getopt};

const USAGE: &str = "Usage: qshape [ -s ] [ -p ] [ -m <min_subdomains> ] [ -l ]\n\
\t[ -b <bucket_count> ] [ -t <bucket_time> ] [ -w <terminal_width> ]\n\
\t[ -N <batch_msg_count> ] [ -n <batch_top_domains> ]\n\
\t[ -c <config_directory> ] [ <queue_name> ... ]\n\
The 's' option shows sender domain counts.\n\
The 'p' option shows address counts by for parent domains.\n\
Parent domains are shown with a leading '.' before the domain name.\n\
Parent domains are only shown if the domain is not a TLD, and at\n\
least <min_subdomains> (default 5) subdomains are shown in the output.\n\n\
The bucket age ranges in units of <bucket_time> minutes are\n\
[0,1), [1,2), [2,4), [4,8), [8, 16), ... i.e.:\n\
\tthe first bucket is [0, bucket_time) minutes\n\
\tthe second bucket is [bucket_time, 2*bucket_time) minutes\n\
\tthe third bucket is [2*bucket_time, 4*bucket_time) minutes...\n\
'-l' makes the ages linear, the number of buckets shown is <bucket_count>\n\n\
The default summary is for the incoming and active queues. An explicit\n\
list of queue names can be given on the command line. Non-absolute queue\n\
names are interpreted relative to the Postfix queue directory. Use\n\
<config_directory> to specify a non-default Postfix instance.\n";

/// The most files looked at in one run: a bound on the walk, far above any real queue.
const FILE_LIMIT: usize = 10_000_000;

/// The options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub senders: bool,
    pub parents: bool,
    pub linear: bool,
    pub min_subdomains: u64,
    pub buckets: usize,
    /// Bucket width in minutes.
    pub tick: u64,
    pub width: usize,
    /// Interim results every this many messages (0: none).
    pub batch_msgs: u64,
    /// Lines shown (0: all).
    pub top: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            senders: false,
            parents: false,
            linear: false,
            min_subdomains: 5,
            buckets: 10,
            tick: 5,
            width: 80,
            batch_msgs: 0,
            top: 0,
        }
    }
}

/// The counts: per domain, the total and one per bucket (index 1..=buckets).
#[derive(Debug, Default)]
pub struct Shape {
    counts: HashMap<String, Vec<u64>>,
    /// Per parent domain, how many of its subdomains were seen.
    subdomains: HashMap<String, u64>,
}

impl Shape {
    /// Counts one message: `arrival` (seconds since the epoch), the addresses to count.
    pub fn add(&mut self, o: &Options, now: u64, arrival: u64, addresses: &[String]) {
        let b = bucket(o, now, arrival);
        for a in addresses {
            let total = self.row("TOTAL", o);
            total[0] += 1;
            total[b] += 1;
            let mut d = domain_of(&a.to_lowercase());
            let mut new = false;
            loop {
                let row = self.row(&d, o);
                row[0] += 1;
                let old = row[0] > 1;
                row[b] += 1;
                if new {
                    *self.subdomains.entry(d.clone()).or_default() += 1;
                }
                new = !old;
                if !o.parents {
                    break;
                }
                match parent(&d) {
                    Some(p) => d = p,
                    None => break,
                }
            }
        }
    }

    fn row(&mut self, name: &str, o: &Options) -> &mut Vec<u64> {
        self.counts
            .entry(name.to_owned())
            .or_insert_with(|| vec![0; o.buckets + 1])
    }

    /// The table as qshape prints it.
    pub fn render(&self, o: &Options) -> String {
        let zero = vec![0; o.buckets + 1];
        let total = self.counts.get("TOTAL").unwrap_or(&zero);
        let mut heads = Vec::new();
        let mut widths = Vec::new();
        let mut t: u64 = 0;
        let mut last = String::new();
        for (i, count) in total.iter().enumerate() {
            let h = if i == 0 {
                "T".to_owned()
            } else if i == o.buckets {
                last.clone()
            } else {
                t.to_string()
            };
            let l = count.to_string().len().max(h.len());
            let l = if l > 2 { l + 1 } else { 3 };
            heads.push(h);
            widths.push(l);
            if i + 1 < o.buckets {
                t += if t > 0 && !o.linear { t } else { o.tick };
            } else {
                last = format!("{t}+");
            }
        }
        let used: usize = widths.iter().sum();
        let dw = o.width.saturating_sub(used).max(18);
        let mut out = String::new();
        line(&mut out, "", &heads, &widths, dw);
        let mut names: Vec<&String> = self.counts.keys().collect();
        names.sort_by(|a, b| {
            self.counts[*b][0]
                .cmp(&self.counts[*a][0])
                .then(a.len().cmp(&b.len()))
                .then(a.cmp(b))
        });
        let mut shown = 0;
        for name in names {
            if name.starts_with('.')
                && self.subdomains.get(name).copied().unwrap_or(0) < o.min_subdomains
            {
                continue;
            }
            shown += 1;
            if o.top > 0 && shown > o.top {
                break;
            }
            let cells: Vec<String> = self.counts[name].iter().map(u64::to_string).collect();
            line(&mut out, name, &cells, &widths, dw);
        }
        out
    }
}

/// One line: the name right-aligned in `dw` columns (a longer one shortened from the
/// left, marked `+` or `.+`), then each cell right-aligned in its width.
fn line(out: &mut String, name: &str, cells: &[String], widths: &[usize], dw: usize) {
    let len = name.chars().count();
    if len > dw {
        let tail = |keep: usize| -> String { name.chars().skip(len - keep).collect() };
        if name.starts_with('.') {
            out.push_str(".+");
            out.push_str(&tail(dw.saturating_sub(2)));
        } else {
            out.push('+');
            out.push_str(&tail(dw.saturating_sub(1)));
        }
    } else {
        out.push_str(&" ".repeat(dw - len));
        out.push_str(name);
    }
    for (c, w) in cells.iter().zip(widths) {
        let _ = write!(out, "{c:>w$}");
    }
    out.push('\n');
}

/// The bucket of a message that arrived at `arrival`: 1 for [0, tick) minutes, then
/// doubling (or linear) buckets, capped at the last.
fn bucket(o: &Options, now: u64, arrival: u64) -> usize {
    // Perl's arithmetic: a message from the future is in the first bucket.
    #[allow(clippy::cast_precision_loss)] // ages in minutes: far below 2^52
    let m = (now as f64 - arrival as f64) / (60.0 * o.tick as f64);
    if m < 1.0 {
        return 1.min(o.buckets);
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // m >= 1, bounded
    let b = if o.linear {
        (m + 1.0) as usize
    } else {
        2 + m.log2().floor() as usize
    };
    b.min(o.buckets)
}

/// qshape's domain of an address: after the last `@`, `..` made `.`, one leading and one
/// trailing dot dropped; the null address is `MAILER-DAEMON`.
fn domain_of(address: &str) -> String {
    if address.is_empty() {
        return "MAILER-DAEMON".to_owned();
    }
    let mut d = address
        .rsplit_once('@')
        .map_or(address, |(_, d)| d)
        .to_owned();
    while d.contains("..") {
        d = d.replace("..", ".");
    }
    let d = d.strip_prefix('.').unwrap_or(&d);
    let d = if d.len() > 1 {
        d.strip_suffix('.').unwrap_or(d)
    } else {
        d
    };
    d.to_owned()
}

/// The parent of `mail.example.com` (or of `.mail.example.com`) is `.example.com`; a
/// domain with one dot left has none (no TLDs).
fn parent(d: &str) -> Option<String> {
    let bare = d.strip_prefix('.').unwrap_or(d);
    let (first, rest) = bare.split_once('.')?;
    if first.is_empty() || !rest.contains('.') {
        return None;
    }
    Some(format!(".{rest}"))
}

/// What one queue or maildrop file says: arrival, sender, pending recipients.
fn read_message(path: &Path) -> Option<(u64, String, Vec<String>)> {
    let name = path.file_name()?.to_str()?;
    if name.len() < 6 || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    if let Ok(qf) = tern_queue::QueueFile::open(path) {
        let rcpts: Vec<String> = qf.pending().map(|(_, r)| r.address.clone()).collect();
        if rcpts.is_empty() {
            return None;
        }
        return Some((qf.envelope.arrival.sec, qf.envelope.sender, rcpts));
    }
    // A maildrop file: no arrival record, its modification time instead.
    let meta = std::fs::symlink_metadata(path).ok()?;
    let file = std::fs::File::open(path).ok()?;
    let env = tern_queue::maildrop::Envelope::read(&mut BufReader::new(file)).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs();
    if env.recipients.is_empty() {
        return None;
    }
    Some((mtime, env.sender, env.recipients))
}

/// Every regular file under `dir` (hashed subdirectories included), bounded.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if out.len() >= FILE_LIMIT {
                return;
            }
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                out.push(e.path());
            }
        }
    }
}

fn number(opt: char, v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<u64>()
        .map_err(|_| format!("qshape: option -{opt}: not a number: {v}\n{USAGE}"))
}

/// Runs qshape with `args` (without the program name); returns the exit status.
pub fn run(args: &[String], stdout: &mut impl Write, tty: bool) -> i32 {
    let (opts, queues) = match getopt(args, "lhc:psw:b:t:m:n:N:") {
        Ok(x) => x,
        Err(e) => {
            eprintln!("qshape: {e}\n{USAGE}");
            return 255;
        }
    };
    let mut o = Options::default();
    let mut config_dir = None;
    let (mut batch, mut top) = (None, None);
    for opt in opts {
        let r: Result<(), String> = match opt {
            Opt::Flag('h') => {
                eprint!("{USAGE}");
                return 255;
            }
            Opt::Flag('s') => {
                o.senders = true;
                Ok(())
            }
            Opt::Flag('p') => {
                o.parents = true;
                Ok(())
            }
            Opt::Flag('l') => {
                o.linear = true;
                Ok(())
            }
            Opt::WithArg('c', v) => {
                config_dir = Some(PathBuf::from(v));
                Ok(())
            }
            Opt::WithArg(c @ ('w' | 'b' | 't' | 'm' | 'n' | 'N'), v) => {
                number(c, &v).map(|n| match c {
                    // qshape takes -w only above 80, and -b, -t, -m above 0.
                    'w' if n > 80 => o.width = usize::try_from(n).unwrap_or(usize::MAX),
                    'b' if n > 0 => o.buckets = usize::try_from(n).unwrap_or(10).min(1000),
                    't' if n > 0 => o.tick = n,
                    'm' if n > 0 => o.min_subdomains = n,
                    'n' => top = Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    'N' => batch = Some(n),
                    _ => {}
                })
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            eprintln!("{e}");
            return 255;
        }
    }
    if tty {
        o.batch_msgs = batch.unwrap_or(1000);
        o.top = top.unwrap_or(20);
    }
    let queues = if queues.is_empty() {
        vec!["incoming".to_owned(), "active".to_owned()]
    } else {
        queues
    };
    let mut base = None;
    if queues.iter().any(|q| !q.starts_with('/')) {
        let config = match Config::load_for_command(config_dir.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("qshape: {e}");
                return 1;
            }
        };
        let dir = config
            .expanded("queue_directory")
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Err(e) = std::fs::read_dir(&dir) {
            eprintln!(
                "qshape: chdir({dir}): {}",
                tern_config::text::errno_text(&e)
            );
            return 1;
        }
        base = Some(PathBuf::from(dir));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let clear = if tty { "\x1b[H\x1b[2J" } else { "" };
    let mut shape = Shape::default();
    let mut messages = 0u64;
    for q in &queues {
        let dir = match &base {
            Some(b) if !q.starts_with('/') => b.join(q),
            _ => PathBuf::from(q),
        };
        let mut files = Vec::new();
        walk(&dir, &mut files);
        files.sort();
        for f in files {
            let Some((arrival, sender, rcpts)) = read_message(&f) else {
                continue;
            };
            let addrs = if o.senders { vec![sender] } else { rcpts };
            shape.add(&o, now, arrival, &addrs);
            messages += 1;
            if o.batch_msgs > 0 && messages.is_multiple_of(o.batch_msgs) {
                let _ = write!(stdout, "{clear}{}", shape.render(&o));
            }
        }
    }
    let clear = if o.batch_msgs > 0 { clear } else { "" };
    match write!(stdout, "{clear}{}", shape.render(&o)) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// `qshape` with the process's arguments.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let tty = out.is_terminal();
    run(&args, &mut out, tty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_parents() {
        assert_eq!(domain_of(""), "MAILER-DAEMON");
        assert_eq!(domain_of("u@Mail..Example.com."), "Mail.Example.com");
        assert_eq!(domain_of("a@b@c.example"), "c.example");
        assert_eq!(domain_of("local"), "local");
        assert_eq!(
            parent("a.mail.example.com").as_deref(),
            Some(".mail.example.com")
        );
        assert_eq!(parent(".mail.example.com").as_deref(), Some(".example.com"));
        assert_eq!(parent(".example.com"), None);
        assert_eq!(parent("example.com"), None);
    }

    #[test]
    fn buckets_double_or_grow_linearly() {
        let o = Options::default();
        let min = |m: u64| bucket(&o, 10_000_000, 10_000_000 - m * 60);
        assert_eq!(
            [
                min(0),
                min(4),
                min(5),
                min(9),
                min(10),
                min(20),
                min(40),
                min(100_000)
            ],
            [1, 1, 2, 2, 3, 4, 5, 10]
        );
        let l = Options {
            linear: true,
            ..Options::default()
        };
        assert_eq!(bucket(&l, 6000, 6000 - 12 * 60), 3);
    }

    #[test]
    fn table_shape() {
        let o = Options::default();
        let mut s = Shape::default();
        s.add(
            &o,
            1000,
            1000,
            &["a@example.com".into(), "b@example.org".into()],
        );
        s.add(&o, 1000, 1000, &["c@example.com".into()]);
        let want = "                                         T  5 10 20 40 80 160 320 640 1280 1280+\n\
                   \x20                                 TOTAL  3  3  0  0  0  0   0   0   0    0     0\n\
                   \x20                           example.com  2  2  0  0  0  0   0   0   0    0     0\n\
                   \x20                           example.org  1  1  0  0  0  0   0   0   0    0     0\n";
        assert_eq!(s.render(&o), want);
    }
}
