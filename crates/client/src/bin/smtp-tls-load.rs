//! smtp-tls-load: a load generator for SMTP over TLS, for bench/tls-bench.sh (smtp-source
//! has no TLS). SESSIONS concurrent clients each repeat, COUNT times in all:
//!
//! - `handshake`: connect, EHLO, STARTTLS, a full TLS handshake (no session resumption:
//!   every handshake costs the server its key exchange), EHLO, QUIT;
//! - `message`: the same, then MAIL, RCPT, DATA with SIZE bytes, QUIT (one message per
//!   connection, so each message pays for its handshake, as a mail program's does);
//! - with `--wrapper`, TLS from the first byte (smtps) instead of STARTTLS.
//!
//! Prints `OPS ELAPSED_S RATE_PER_S FAILURES` on one line. The server's certificate is
//! not verified (a benchmark on loopback against a test certificate).
//!
//! Usage: smtp-tls-load ADDR:PORT MODE COUNT [--sessions N] [--size BYTES] [--wrapper]
//!        [--tls12] [--from ADDR] [--to ADDR]
//!
//! Bounded: every read waits at most 30 s, every reply line is capped at 4 KiB.

mod loadkit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use loadkit::{WAIT, command, reply};

/// Accepts any certificate: the benchmark measures the server, not the PKI.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Options {
    addr: SocketAddr,
    message: bool,
    count: usize,
    sessions: usize,
    size: usize,
    wrapper: bool,
    tls12: bool,
    from: String,
    to: String,
}

fn parse() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: smtp-tls-load ADDR:PORT handshake|message COUNT [--sessions N] \
                 [--size BYTES] [--wrapper] [--tls12] [--from ADDR] [--to ADDR]";
    if args.len() < 3 {
        return Err(usage.to_owned());
    }
    let mut o = Options {
        addr: args[0].parse().map_err(|e| format!("{}: {e}", args[0]))?,
        message: match args[1].as_str() {
            "handshake" => false,
            "message" => true,
            other => return Err(format!("bad mode {other}: {usage}")),
        },
        count: args[2].parse().map_err(|e| format!("{}: {e}", args[2]))?,
        sessions: 20,
        size: 1024,
        wrapper: false,
        tls12: false,
        from: "bench@example.org".to_owned(),
        to: "root@localhost".to_owned(),
    };
    let mut rest = args[3..].iter();
    while let Some(a) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--sessions" => o.sessions = value()?.parse().map_err(|_| "bad --sessions")?,
            "--size" => o.size = value()?.parse().map_err(|_| "bad --size")?,
            "--wrapper" => o.wrapper = true,
            "--tls12" => o.tls12 = true,
            "--from" => o.from = value()?,
            "--to" => o.to = value()?,
            other => return Err(format!("unknown option {other}: {usage}")),
        }
    }
    o.sessions = o.sessions.clamp(1, 1000);
    Ok(o)
}

/// One connection: TLS, EHLO, and (in message mode) one message.
async fn one(o: &Options, tls: &tokio_rustls::TlsConnector, body: &str) -> Result<(), String> {
    let tcp = timeout(WAIT, TcpStream::connect(o.addr))
        .await
        .map_err(|_| "connect timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tcp = if o.wrapper {
        tcp
    } else {
        let mut plain = BufReader::new(tcp);
        if reply(&mut plain).await? != 220 {
            return Err("no greeting".to_owned());
        }
        command(&mut plain, "EHLO load.example\r\n", 250).await?;
        command(&mut plain, "STARTTLS\r\n", 220).await?;
        plain.into_inner()
    };
    let stream = timeout(WAIT, tls.connect(name, tcp))
        .await
        .map_err(|_| "handshake timeout".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    let mut s = BufReader::new(stream);
    if o.wrapper && reply(&mut s).await? != 220 {
        return Err("no greeting".to_owned());
    }
    command(&mut s, "EHLO load.example\r\n", 250).await?;
    if o.message {
        command(&mut s, &format!("MAIL FROM:<{}>\r\n", o.from), 250).await?;
        command(&mut s, &format!("RCPT TO:<{}>\r\n", o.to), 250).await?;
        command(&mut s, "DATA\r\n", 354).await?;
        command(&mut s, body, 250).await?;
    }
    command(&mut s, "QUIT\r\n", 221).await?;
    let _ = s.get_mut().shutdown().await;
    Ok(())
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
    // The key exchanges of today's mail clients and servers (X25519, P-256): not
    // rustls's post-quantum hybrid first, whose key generation would make the client,
    // not the server under test, the bottleneck (and OpenSSL 3.0 has no ML-KEM).
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: vec![
            rustls::crypto::aws_lc_rs::kx_group::X25519,
            rustls::crypto::aws_lc_rs::kx_group::SECP256R1,
        ],
        ..rustls::crypto::aws_lc_rs::default_provider()
    });
    let versions: &[&rustls::SupportedProtocolVersion] = if o.tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let config = match rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
    {
        Ok(b) => {
            let mut c = b
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            // Every handshake a full one: no tickets, no session ids kept.
            c.resumption = rustls::client::Resumption::disabled();
            c
        }
        Err(e) => {
            eprintln!("TLS configuration: {e}");
            std::process::exit(1);
        }
    };
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut body = String::with_capacity(o.size + 64);
    body.push_str("Subject: tls load\r\n\r\n");
    while body.len() < o.size {
        body.push_str("0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
    }
    body.push_str(".\r\n");
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.sessions {
        let (o, tls, body, next, failures) = (
            Arc::clone(&o),
            tls.clone(),
            Arc::clone(&body),
            Arc::clone(&next),
            Arc::clone(&failures),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < o.count {
                if let Err(e) = one(&o, &tls, &body).await
                    && failures.fetch_add(1, Ordering::Relaxed) < 5
                {
                    eprintln!("smtp-tls-load: {e}");
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    let done = o.count.saturating_sub(failed);
    #[allow(clippy::cast_precision_loss)]
    let rate = done as f64 / elapsed.max(1e-9);
    println!("{done} {elapsed:.3} {rate:.1} {failed}");
}
