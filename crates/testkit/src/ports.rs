//! Free loopback ports for servers that a test starts in another process (Tern, Debian's
//! Postfix, Dovecot, dnsmasq, smtp-sink), which must be told a port before they bind it.
//!
//! Why not `bind(127.0.0.1:0)`: the kernel hands such ports out of the ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768-60999 by default), the same range every outgoing
//! connection's local port comes from. Between picking the port and the server binding
//! it, one of the thousands of client connections a load test makes could take it
//! ("Address already in use", seen in CI). Ports here come from below that range, where
//! only explicit binds land, in a sequence that differs per test process; each is checked
//! free for TCP and UDP before it is returned.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The range handed out: below the default ephemeral range, above the well-known and
/// most registered service ports used on a test machine (Postfix, Dovecot, PostgreSQL...).
const LOW: u32 = 20_000;
const SPAN: u32 = 12_000;

/// The next offset into the range; starts at a place derived from the process id so that
/// two test binaries running at once walk different parts of it.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A loopback port that is free for TCP and UDP right now and that no other caller in
/// this process has been given.
pub fn free_port() -> Result<u16, String> {
    // The first caller seeds the walk; a race between two first callers only makes
    // them start at the same place, and the counter still hands them different ports.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let Ok(port) = u16::try_from(LOW + offset) else {
            continue;
        };
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        if tcp.is_ok() && udp.is_ok() {
            return Ok(port);
        }
    }
    Err(format!("no free port in {LOW}-{}", LOW + SPAN - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let mut seen = std::collections::HashSet::new();
        let mut taken = Vec::new();
        for _ in 0..50 {
            let p = free_port().expect("port");
            assert!((20_000..32_000).contains(&p), "{p}");
            assert!(seen.insert(p), "{p} handed out twice");
            // Free when returned; a server that another test of this binary started a
            // moment ago may have taken it since (seen once in CI), so a few may be gone.
            if TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_err() {
                taken.push(p);
            }
        }
        assert!(taken.len() <= 2, "taken right after: {taken:?}");
    }
}
