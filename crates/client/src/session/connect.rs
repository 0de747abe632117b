//! Connections to a server, with Postfix's failure texts (smtp_connect.c,
//! smtp_connect_sock()): `connect to mx.example.com[192.0.2.1]:25: Connection refused`,
//! 4.4.1; for an LMTP UNIX-domain socket `connect to myhost[/path]: No such file or
//! directory`.
//!
//! Trust: the address comes from our own next-hop resolution; nothing is read here.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tern_config::text::errno_text;
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;

use super::Peer;

/// A connection that failed, with the status and text Postfix records for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct ConnectError {
    /// 4.4.1 (Postfix's dsb_simple() in smtp_connect_sock()).
    pub dsn: String,
    /// `connect to X[ip]:25: Connection refused`.
    pub text: String,
}

/// `ETIMEDOUT`'s text, which timed_connect() leaves in errno when the time is up.
const TIMED_OUT: &str = "Connection timed out";

/// Connects to `addr` within `limit` (smtp_connect_timeout; `None`: the system's own
/// limit). `name` is the host name for the texts; the returned [`Peer`] names the server
/// for [`super::deliver`].
pub async fn connect_tcp(
    name: &str,
    addr: SocketAddr,
    limit: Option<Duration>,
) -> Result<(TcpStream, Peer), ConnectError> {
    let peer = Peer {
        name: name.to_owned(),
        addr: addr.ip().to_string(),
        port: Some(addr.port()),
    };
    match within(limit, TcpStream::connect(addr)).await {
        Ok(stream) => {
            // Postfix turns Nagle off for SMTP (it writes whole commands itself).
            let _ = stream.set_nodelay(true);
            Ok((stream, peer))
        }
        Err(why) => Err(ConnectError {
            dsn: "4.4.1".into(),
            text: format!("connect to {}:{}: {why}", peer.namaddr(), addr.port()),
        }),
    }
}

/// Connects to the UNIX-domain socket `path` (lmtp(8)'s `unix:/path` next hop); the
/// server is named `myhostname[path]`, as Postfix names it.
pub async fn connect_unix(
    myhostname: &str,
    path: &Path,
    limit: Option<Duration>,
) -> Result<(UnixStream, Peer), ConnectError> {
    let peer = Peer {
        name: myhostname.to_owned(),
        addr: path.display().to_string(),
        port: None,
    };
    match within(limit, UnixStream::connect(path)).await {
        Ok(stream) => Ok((stream, peer)),
        Err(why) => Err(ConnectError {
            dsn: "4.4.1".into(),
            text: format!("connect to {}: {why}", peer.namaddr()),
        }),
    }
}

/// Waits for `attempt` at most `limit` (`None`: as long as the system lets it take); a
/// failure is the errno text Postfix puts after `connect to X: `.
async fn within<S>(
    limit: Option<Duration>,
    attempt: impl Future<Output = std::io::Result<S>>,
) -> Result<S, String> {
    let result = match limit {
        Some(limit) => timeout(limit, attempt)
            .await
            .map_err(|_| TIMED_OUT.to_owned())?,
        None => attempt.await,
    };
    result.map_err(|e| errno_text(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timed_out() {
        // A listener that never accepts, with the smallest backlog: once its queue is
        // full the kernel drops further SYNs and a connect hangs.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let addr = socket.local_addr().expect("address");
        let _listener = socket.listen(0).expect("listen");
        let mut held = Vec::new();
        let mut texts = Vec::new();
        for _ in 0..8 {
            match connect_tcp("mx.example.com", addr, Some(Duration::from_millis(300))).await {
                Ok((s, _)) => held.push(s),
                Err(e) => {
                    texts.push(e.text);
                    break;
                }
            }
        }
        assert_eq!(
            texts,
            vec![format!(
                "connect to mx.example.com[127.0.0.1]:{}: Connection timed out",
                addr.port()
            )]
        );
    }

    #[tokio::test]
    async fn refused_and_missing_socket() {
        // A port that was just free: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let err = connect_tcp("mx.example.com", addr, Some(Duration::from_secs(5)))
            .await
            .expect_err("nothing listens");
        assert_eq!(
            err.text,
            format!("connect to mx.example.com[127.0.0.1]:{port}: Connection refused")
        );
        assert_eq!(err.dsn, "4.4.1");

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lmtp");
        let err = connect_unix("myhost.example.com", &path, None)
            .await
            .expect_err("no socket");
        assert_eq!(
            err.text,
            format!(
                "connect to myhost.example.com[{}]: No such file or directory",
                path.display()
            )
        );
    }
}
