//! smtp-load: a plain-SMTP load generator that measures latency, for bench/bench.sh
//! (Postfix's smtp-source counts messages but times none of them).
//!
//! Load mode: SESSIONS concurrent clients send COUNT messages in all, one connection per
//! message as smtp-source does by default (`--reuse` keeps each session's connection):
//! connect, 220, EHLO, MAIL, RCPT, DATA, SIZE bytes, `.`, QUIT. Each message's latency is
//! the time from writing MAIL to reading the 250 after the end of data (RFC 5321 4.1.1.4:
//! that 250 is the server taking responsibility for the message), so connection set-up
//! and the greeting are not in it. Prints one line of `key=value` pairs:
//!
//! `msgs=N failures=F elapsed_s=E msgs_per_s=R p50_ms=X p99_ms=Y max_ms=Z`
//!
//! Idle mode (`--idle`): opens COUNT connections (at most 500 connects under way at once,
//! each given 3 s), waits up to `--greet-wait` seconds for their 220 greetings, prints
//! `opened=O greeted=G` and holds them all, silent, until the file given by `--stop`
//! exists or `--hold` seconds have passed. A server that stops accepting (a full process
//! limit, a full listen queue) shows as greeted < COUNT.
//!
//! Usage: smtp-load ADDR:PORT COUNT [--sessions N] [--size BYTES] [--from ADDR] [--to ADDR]
//!        [--reuse]
//!        smtp-load ADDR:PORT COUNT --idle [--greet-wait S] [--hold S] [--stop FILE]
//!
//! Bounded: every connect and read waits at most 30 s (idle connects 3 s), every reply
//! line is capped at 4 KiB, every reply at 100 lines; the idle hold at `--hold` (default
//! 120 s). Loopback benchmarking only: nothing here verifies who answers.

mod loadkit;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::time::timeout;

use loadkit::{WAIT, command, reply};

const IDLE_CONNECT_WAIT: Duration = Duration::from_secs(3);
const IDLE_CONNECTS_AT_ONCE: usize = 500;

struct Options {
    addr: SocketAddr,
    count: usize,
    sessions: usize,
    size: usize,
    from: String,
    to: String,
    reuse: bool,
    idle: bool,
    greet_wait: Duration,
    hold: Duration,
    stop: Option<PathBuf>,
}

fn parse() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: smtp-load ADDR:PORT COUNT [--sessions N] [--size BYTES] [--from ADDR] \
                 [--to ADDR] [--reuse] | --idle [--greet-wait S] [--hold S] [--stop FILE]";
    if args.len() < 2 {
        return Err(usage.to_owned());
    }
    let mut o = Options {
        addr: args[0].parse().map_err(|e| format!("{}: {e}", args[0]))?,
        count: args[1].parse().map_err(|e| format!("{}: {e}", args[1]))?,
        sessions: 20,
        size: 1024,
        from: "bench@example.org".to_owned(),
        to: "root@localhost".to_owned(),
        reuse: false,
        idle: false,
        greet_wait: Duration::from_secs(20),
        hold: Duration::from_mins(2),
        stop: None,
    };
    let seconds = |v: String, what: &str| -> Result<Duration, String> {
        v.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("bad {what}"))
    };
    let mut rest = args[2..].iter();
    while let Some(a) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--sessions" => o.sessions = value()?.parse().map_err(|_| "bad --sessions")?,
            "--size" => o.size = value()?.parse().map_err(|_| "bad --size")?,
            "--from" => o.from = value()?,
            "--to" => o.to = value()?,
            "--reuse" => o.reuse = true,
            "--idle" => o.idle = true,
            "--greet-wait" => o.greet_wait = seconds(value()?, "--greet-wait")?,
            "--hold" => o.hold = seconds(value()?, "--hold")?,
            "--stop" => o.stop = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown option {other}: {usage}")),
        }
    }
    o.sessions = o.sessions.clamp(1, 20_000);
    o.count = o.count.min(1_000_000);
    o.hold = o.hold.min(Duration::from_hours(1));
    Ok(o)
}

async fn connect(o: &Options) -> Result<BufReader<TcpStream>, String> {
    let tcp = timeout(WAIT, TcpStream::connect(o.addr))
        .await
        .map_err(|_| "connect timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut s = BufReader::new(tcp);
    if reply(&mut s).await? != 220 {
        return Err("no greeting".to_owned());
    }
    command(&mut s, "EHLO load.example\r\n", 250).await?;
    Ok(s)
}

/// One transaction on an open session; returns MAIL .. 250-after-data.
async fn transaction(
    s: &mut BufReader<TcpStream>,
    o: &Options,
    body: &str,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    command(s, &format!("MAIL FROM:<{}>\r\n", o.from), 250).await?;
    command(s, &format!("RCPT TO:<{}>\r\n", o.to), 250).await?;
    command(s, "DATA\r\n", 354).await?;
    command(s, body, 250).await?;
    Ok(t0.elapsed())
}

async fn quit(mut s: BufReader<TcpStream>) {
    let _ = command(&mut s, "QUIT\r\n", 221).await;
    let _ = s.get_mut().shutdown().await;
}

/// A message of about `size` bytes: a few headers, then 72-character lines (none starts
/// with a dot, so no dot-stuffing is needed), then the end-of-data line.
fn message(o: &Options) -> String {
    let mut body = String::with_capacity(o.size + 128);
    for part in [
        "From: <",
        &o.from,
        ">\r\nTo: <",
        &o.to,
        ">\r\nSubject: smtp-load\r\n\r\n",
    ] {
        body.push_str(part);
    }
    while body.len() < o.size {
        body.push_str("0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    }
    body.push_str(".\r\n");
    body
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (sorted.len() * p).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

async fn load(o: Arc<Options>) {
    let body = Arc::new(message(&o));
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(o.count)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.sessions.min(o.count.max(1)) {
        let (o, body, next, failures, samples) = (
            Arc::clone(&o),
            Arc::clone(&body),
            Arc::clone(&next),
            Arc::clone(&failures),
            Arc::clone(&samples),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut open: Option<BufReader<TcpStream>> = None;
            while next.fetch_add(1, Ordering::Relaxed) < o.count {
                let result = async {
                    let mut s = match open.take() {
                        Some(s) => s,
                        None => connect(&o).await?,
                    };
                    let t = transaction(&mut s, &o, &body).await?;
                    if o.reuse {
                        open = Some(s);
                    } else {
                        quit(s).await;
                    }
                    Ok::<Duration, String>(t)
                }
                .await;
                match result {
                    Ok(t) => mine.push(t),
                    Err(e) => {
                        if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("smtp-load: {e}");
                        }
                    }
                }
            }
            if let Some(s) = open {
                quit(s).await;
            }
            samples.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut v = std::mem::take(&mut *samples.lock().await);
    v.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let rate = v.len() as f64 / elapsed.max(1e-9);
    println!(
        "msgs={} failures={} elapsed_s={elapsed:.3} msgs_per_s={rate:.1} p50_ms={:.3} \
         p99_ms={:.3} max_ms={:.3}",
        v.len(),
        failures.load(Ordering::Relaxed),
        percentile_ms(&v, 50),
        percentile_ms(&v, 99),
        v.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
    );
}

/// One idle connection: connect, read the greeting, then stay silent until released.
/// Returns whether it was greeted; the socket lives until `release` fires.
async fn idle_one(
    addr: SocketAddr,
    deadline: Instant,
    connects: Arc<Semaphore>,
    opened: Arc<AtomicUsize>,
    greeted: Arc<AtomicUsize>,
    mut release: watch::Receiver<bool>,
) {
    let tcp = {
        // The permit bounds connects under way (a full listen queue makes them hang).
        let Ok(_permit) = connects.acquire().await else {
            return;
        };
        match timeout(IDLE_CONNECT_WAIT, TcpStream::connect(addr)).await {
            Ok(Ok(t)) => t,
            _ => return,
        }
    };
    opened.fetch_add(1, Ordering::Relaxed);
    let mut s = BufReader::new(tcp);
    let left = deadline.saturating_duration_since(Instant::now());
    if let Ok(Ok(220)) = timeout(left, reply(&mut s)).await {
        greeted.fetch_add(1, Ordering::Relaxed);
    }
    let _ = release.wait_for(|r| *r).await;
    drop(s);
}

async fn idle(o: Arc<Options>) {
    let deadline = Instant::now() + o.greet_wait;
    let connects = Arc::new(Semaphore::new(IDLE_CONNECTS_AT_ONCE));
    let opened = Arc::new(AtomicUsize::new(0));
    let greeted = Arc::new(AtomicUsize::new(0));
    let (release, watch_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(o.count);
    for _ in 0..o.count {
        tasks.push(tokio::spawn(idle_one(
            o.addr,
            deadline,
            Arc::clone(&connects),
            Arc::clone(&opened),
            Arc::clone(&greeted),
            watch_rx.clone(),
        )));
    }
    // Wait for the greetings: until all are greeted or the greeting deadline passes.
    while Instant::now() < deadline && greeted.load(Ordering::Relaxed) < o.count {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "opened={} greeted={}",
        opened.load(Ordering::Relaxed),
        greeted.load(Ordering::Relaxed)
    );
    let end = Instant::now() + o.hold;
    while Instant::now() < end && !o.stop.as_ref().is_some_and(|p| p.exists()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = release.send(true);
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = match parse() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if o.idle {
        idle(o).await;
    } else {
        load(o).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        for (samples, p, want) in [
            (ms(&[5]), 50, 5.0),
            (ms(&[5]), 99, 5.0),
            (ms(&[1, 2, 3, 4]), 50, 2.0),
            (ms(&[1, 2, 3, 4]), 99, 4.0),
            ((1..=100).map(Duration::from_millis).collect(), 99, 99.0),
            ((1..=1000).map(Duration::from_millis).collect(), 50, 500.0),
        ] {
            assert!(
                (percentile_ms(&samples, p) - want).abs() < 1e-9,
                "{p} of {samples:?}"
            );
        }
        assert!(percentile_ms(&[], 50).is_nan());
    }

    #[test]
    fn message_has_the_size_and_ends_with_the_dot() {
        for size in [0, 1024, 102_400] {
            let o = Options {
                addr: "127.0.0.1:25".parse().unwrap(),
                count: 1,
                sessions: 1,
                size,
                from: "a@b".to_owned(),
                to: "c@d".to_owned(),
                reuse: false,
                idle: false,
                greet_wait: Duration::ZERO,
                hold: Duration::ZERO,
                stop: None,
            };
            let m = message(&o);
            assert!(
                m.len() >= size && m.len() < size + 200,
                "{size}: {}",
                m.len()
            );
            assert!(m.ends_with("\r\n.\r\n"));
            assert!(!m.contains("\r\n.\r\n\r\n"));
        }
    }
}
