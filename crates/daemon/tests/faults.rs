//! Fault injection against the real daemon on loopback: SIGKILL at random moments under
//! load, and a full queue file system. The promise under test is the one Postfix makes
//! (smtpd(8), cleanup(8)): a 250 after the end of data means the message is on disk, and
//! a queue that cannot be written is answered with a temporary error, never with 250.
//!
//! Needs `target/<profile>/postfix` (`cargo build -p tern-commands --bin postfix`); the
//! disk-full test needs root (it mounts a 2 MB tmpfs) and fails, not skips, without it.

use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tern_queue::{QueueFile, QueueLayout, QueueName};
use tern_testkit::tern::Tern;

mod faults_util;
use faults_util::Mount;

const QUEUED: &str = "250 2.0.0 Ok: queued as ";

/// The queue ids in incoming/.
fn incoming_ids(queue_dir: &Path) -> HashSet<String> {
    tern_queue::scan(&QueueLayout::new(queue_dir), QueueName::Incoming)
        .expect("scan")
        .entries
        .into_iter()
        .map(|e| e.id.as_str().to_owned())
        .collect()
}

/// Reads one (possibly multi-line) reply; an I/O error or EOF is `Err`.
fn reply(r: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let all = tern_testkit::smtp::read_reply(r)?;
    let last = all.lines().last().unwrap_or("");
    if all.is_empty() || last.as_bytes().get(3) == Some(&b'-') {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(all)
}

/// A small xorshift generator seeded from the clock: the moments differ per run, and the
/// seed is printed so a failing run can be told apart.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() ^ (d.as_secs() & 0xffff_ffff) as u32);
        let seed = u64::from(nanos) << 1 | 1;
        eprintln!("faults: seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // The remainder is below n, a usize.
        usize::try_from(self.0 % n as u64).unwrap_or(0)
    }
}

/// One client session that sends messages until `stop`, reconnecting after the daemon
/// dies; the queue id of every 250 it reads goes into `acked`.
#[allow(clippy::many_single_char_names)]
fn sender_loop(
    addr: &str,
    n: usize,
    stop: &AtomicBool,
    acked: &Mutex<Vec<String>>,
    count: &AtomicUsize,
) {
    let deadline = Instant::now() + Duration::from_mins(1);
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let Ok(s) = TcpStream::connect(addr) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(mut w) = s.try_clone() else { continue };
        let mut r = BufReader::new(s);
        let mut session = || -> std::io::Result<()> {
            if !reply(&mut r)?.starts_with("220") {
                return Ok(());
            }
            w.write_all(b"EHLO faults.example\r\n")?;
            reply(&mut r)?;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                i += 1;
                let cmds =
                    format!("MAIL FROM:<s{n}@example.org>\r\nRCPT TO:<root@localhost>\r\nDATA\r\n");
                w.write_all(cmds.as_bytes())?;
                let (m, rc, d) = (reply(&mut r)?, reply(&mut r)?, reply(&mut r)?);
                assert!(m.starts_with("250") && rc.starts_with("250"), "{m}{rc}");
                assert!(d.starts_with("354"), "{d}");
                let body = format!("Subject: {n}/{i}\r\n\r\n{}\r\n.\r\n", "x".repeat(1000));
                w.write_all(body.as_bytes())?;
                let q = reply(&mut r)?;
                let id = q
                    .strip_prefix(QUEUED)
                    .unwrap_or_else(|| panic!("end of data: {q}"))
                    .trim()
                    .to_owned();
                acked.lock().expect("lock").push(id);
                count.fetch_add(1, Ordering::SeqCst);
            }
            let _ = w.write_all(b"QUIT\r\n");
            Ok(())
        };
        // An error here is the daemon dying under the session: reconnect.
        let _ = session();
    }
}

/// (a) 10 sessions send 300 messages (or for 30 s); the daemon is SIGKILLed at 3 random
/// points of the load and restarted. Every message whose 250 a client read is in the
/// queue afterwards, complete and under the id the reply named.
#[test]
fn random_sigkills_lose_no_acknowledged_message() {
    const SESSIONS: usize = 10;
    const TARGET: usize = 300;
    const KILLS: usize = 3;
    let mut rng = Rng::from_clock();
    let mut t = Tern::start("").expect("start");
    // Kill when the acknowledged count crosses random thresholds in [20, 280), plus a
    // random sub-millisecond delay, so kills land in the middle of transactions.
    let mut marks: Vec<usize> = (0..KILLS).map(|_| 20 + rng.below(TARGET - 40)).collect();
    marks.sort_unstable();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let (addr, stop, acked, count) = (
                t.addr(),
                Arc::clone(&stop),
                Arc::clone(&acked),
                Arc::clone(&count),
            );
            std::thread::spawn(move || sender_loop(&addr, n, &stop, &acked, &count))
        })
        .collect();
    let start = Instant::now();
    let mut kills = 0;
    while start.elapsed() < Duration::from_secs(30) && count.load(Ordering::SeqCst) < TARGET {
        if kills < KILLS && count.load(Ordering::SeqCst) >= marks[kills] {
            std::thread::sleep(Duration::from_micros(rng.below(1000) as u64));
            t.kill();
            kills += 1;
            eprintln!(
                "faults: kill {kills} after {} acknowledged",
                count.load(Ordering::SeqCst)
            );
            t.launch().expect("restart after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::SeqCst);
    for th in threads {
        th.join().expect("session thread");
    }
    t.kill();
    t.launch().expect("final restart");
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(kills, KILLS, "only {kills} kills in 30 s");
    assert!(acked.len() >= TARGET, "only {} acknowledged", acked.len());
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(
        unique.len(),
        acked.len(),
        "a queue id was acknowledged twice"
    );
    let on_disk = incoming_ids(&t.queue_dir());
    let missing: Vec<_> = acked.iter().filter(|id| !on_disk.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged, {} missing: {missing:?}",
        acked.len(),
        missing.len()
    );
    let layout = QueueLayout::new(t.queue_dir());
    for e in tern_queue::scan(&layout, QueueName::Incoming)
        .expect("scan")
        .entries
        .iter()
        .filter(|e| unique.contains(&e.id.as_str().to_owned()))
    {
        QueueFile::open(&e.path).unwrap_or_else(|err| panic!("{}: {err}", e.id));
    }
}

/// The outcome of one transaction.
#[derive(Debug)]
enum Sent {
    Queued(String),
    /// The temporary reply that refused it (at MAIL, RCPT, DATA or the end of data).
    Refused(String),
}

/// One transaction of `size` body bytes on an open session.
fn transaction(w: &mut TcpStream, r: &mut BufReader<TcpStream>, i: usize, size: usize) -> Sent {
    for cmd in [
        "MAIL FROM:<full@example.org>",
        "RCPT TO:<root@localhost>",
        "DATA",
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).expect("write");
        let rep = reply(r).expect("reply");
        if !rep.starts_with('2') && !rep.starts_with('3') {
            w.write_all(b"RSET\r\n").expect("write");
            assert!(reply(r).expect("reply").starts_with("250"));
            return Sent::Refused(rep);
        }
    }
    let body = format!("Subject: full {i}\r\n\r\n{}\r\n.\r\n", "y".repeat(size));
    w.write_all(body.as_bytes()).expect("write");
    let rep = reply(r).expect("reply");
    match rep.strip_prefix(QUEUED) {
        Some(id) => Sent::Queued(id.trim().to_owned()),
        None => Sent::Refused(rep),
    }
}

fn session(t: &Tern) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(t.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    assert!(reply(&mut r).expect("greeting").starts_with("220"));
    w.write_all(b"EHLO full.example\r\n").expect("write");
    reply(&mut r).expect("ehlo");
    (w, r)
}

/// (b) The queue on a 2 MB tmpfs, filled with 16 KiB messages in one session. Each
/// message gets 250 (and is then a complete file on disk) or a temporary storage error
/// (452 4.3.1 or 451 4.3.0, as Postfix answers), never 250 for a message that is not
/// there, and a refused message leaves no file behind. After half the queue is deleted,
/// service resumes. `main_cf` is appended to the instance's main.cf; returns the
/// refusals and the mail log.
fn fill_the_queue(main_cf: &str) -> (Vec<String>, String) {
    const SIZE: usize = 16 * 1024;
    const MAX_MESSAGES: usize = 1000;
    let mut t = Tern::start(main_cf).expect("start");
    t.kill();
    let queue = t.queue_dir();
    let _mount = Mount::tmpfs(&queue, "2m", 0o755, 0, 0);
    t.launch().expect("start on the tmpfs queue");

    let (mut w, mut r) = session(&t);
    let mut queued = Vec::new();
    let mut refusals = Vec::new();
    let start = Instant::now();
    for i in 0..MAX_MESSAGES {
        if start.elapsed() > Duration::from_mins(1) {
            break;
        }
        match transaction(&mut w, &mut r, i, SIZE) {
            Sent::Queued(id) => queued.push(id),
            Sent::Refused(rep) => {
                refusals.push(rep);
                if refusals.len() >= 3 {
                    break;
                }
            }
        }
    }
    eprintln!("faults: {} queued, refusals {refusals:?}", queued.len());
    assert!(!queued.is_empty(), "nothing fitted on a 2 MB queue");
    assert!(
        refusals.len() >= 3,
        "the 2 MB queue never filled ({} queued)",
        queued.len()
    );
    for rep in &refusals {
        assert!(
            rep.starts_with("452 4.3.1 ") || rep.starts_with("451 4.3.0 "),
            "not a temporary storage error: {rep}"
        );
    }
    // Every 250 is a complete file on disk.
    let layout = QueueLayout::new(&queue);
    let listing = tern_queue::scan(&layout, QueueName::Incoming).expect("scan");
    let on_disk: HashSet<String> = listing
        .entries
        .iter()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    for id in &queued {
        assert!(on_disk.contains(id), "{id} acknowledged but not on disk");
    }
    for e in &listing.entries {
        QueueFile::open(&e.path).unwrap_or_else(|err| panic!("{}: {err}", e.id));
    }
    // A refused message leaves nothing behind (a leaked partial file would keep the
    // disk full).
    assert!(
        listing.temporary.is_empty() && listing.unknown.is_empty(),
        "left behind: {:?} {:?}",
        listing.temporary,
        listing.unknown
    );
    assert_eq!(
        listing.entries.len(),
        queued.len(),
        "files on disk without a 250"
    );

    // Free space: delete half of the queued messages (an operator's `postsuper -d`).
    for e in listing.entries.iter().take(listing.entries.len() / 2) {
        std::fs::remove_file(&e.path).expect("delete queue file");
    }
    let id = match transaction(&mut w, &mut r, MAX_MESSAGES, SIZE) {
        Sent::Queued(id) => id,
        Sent::Refused(rep) => panic!("service did not resume after freeing space: {rep}"),
    };
    assert!(incoming_ids(&queue).contains(&id));
    let _ = w.write_all(b"QUIT\r\n");
    drop((w, r));
    // The daemon must be stopped before the tmpfs goes away.
    t.stop(Duration::from_secs(5));
    (refusals, t.log())
}

/// With a message_size_limit that fits the disk a few times, the queue space check at
/// MAIL refuses before any write fails, as Postfix does: `452 4.3.1 Insufficient system
/// storage`, logged as a NOQUEUE reject and a warning.
#[test]
fn full_queue_refused_at_mail_like_postfix() {
    let (refusals, log) = fill_the_queue("message_size_limit = 100000");
    for rep in &refusals {
        assert!(
            rep.starts_with("452 4.3.1 Insufficient system storage"),
            "{rep}"
        );
    }
    assert!(
        log.contains("NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 452 4.3.1 Insufficient system storage; proto=ESMTP helo=<full.example>"),
        "{log}"
    );
    assert!(
        log.contains("warning: not enough free space in mail queue: "),
        "{log}"
    );
}

/// With no message_size_limit the check only refuses a disk with no free block, so the
/// writes themselves run out of space (ENOSPC): the end of data gets `451 4.3.0 Error:
/// queue file write error` (smtpd's answer to cleanup's write error), never 250.
#[test]
fn enospc_during_data_is_a_temporary_error_and_service_resumes() {
    let (refusals, _) = fill_the_queue("message_size_limit = 0");
    assert!(
        refusals
            .iter()
            .any(|r| r.starts_with("451 4.3.0 Error: queue file write error")),
        "{refusals:?}"
    );
}

/// (c) The commit journal after a crash that lost a queue file's data: a message gets its
/// 250, the daemon is killed at once (its journal segment is still live: segments retire
/// one second after their first record), and the queue file is then cut short and another
/// removed, as a power failure can leave files whose data never reached the disk. The
/// next start replays the journal: both files are whole again, and the mail log says so.
#[test]
fn journal_replay_restores_files_a_crash_lost() {
    let mut t = Tern::start("").expect("start");
    let (mut w, mut r) = session(&t);
    let Sent::Queued(cut) = transaction(&mut w, &mut r, 1, 100) else {
        panic!("not queued");
    };
    let Sent::Queued(gone) = transaction(&mut w, &mut r, 2, 100) else {
        panic!("not queued");
    };
    // The 250 comes once the journal record is synced; the file's name follows at once
    // (microseconds). Wait for both names, then kill: what the test damages must exist.
    let layout = QueueLayout::new(t.queue_dir());
    let linked = |id: &str| {
        layout
            .path(QueueName::Incoming, &id.parse().expect("id"))
            .exists()
    };
    let start = Instant::now();
    while !(linked(&cut) && linked(&gone)) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    t.kill();
    let live = std::fs::read_dir(t.queue_dir().join("journal"))
        .expect("journal dir")
        .count();
    assert!(live > 0, "no journal segment left by the kill");
    let path = |id: &str| layout.path(QueueName::Incoming, &id.parse().expect("id"));
    let whole = std::fs::read(path(&cut)).expect("queue file");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path(&cut))
        .expect("open");
    file.set_len(whole.len() as u64 / 2).expect("truncate");
    drop(file);
    let gone_bytes = std::fs::read(path(&gone)).expect("queue file");
    std::fs::remove_file(path(&gone)).expect("remove");
    t.launch().expect("restart");
    assert_eq!(std::fs::read(path(&cut)).expect("restored"), whole);
    assert_eq!(std::fs::read(path(&gone)).expect("restored"), gone_bytes);
    QueueFile::open(&path(&gone)).expect("a complete queue file");
    let log = t.log();
    for want in [
        format!("warning: queue recovery: {cut}: rewrote incomplete "),
        format!("warning: queue recovery: {gone}: restored "),
        "warning: queue recovery: replayed ".to_owned(),
    ] {
        assert!(log.contains(&want), "{want:?} not in the log:\n{log}");
    }
    assert!(incoming_ids(&t.queue_dir()).contains(&gone));
}
