//! The check_policy_service client against in-process fake policy servers on loopback TCP
//! and a UNIX-domain socket: the request as Postfix 3.7 writes it, connection reuse and its
//! limits (request_limit, max_idle), and the failures with attr_clnt.c's and auto_clnt.c's
//! warnings (timeout, server down, malformed replies), each bounded in time.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tern_daemon::check::policy::{PolicyClients, PolicyRequest, PolicySettings};
use tern_maillog::{Ident, Logger};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener};

/// The warnings of every test in this binary (the daemon's warning sink is process-wide);
/// each test looks only at lines naming its own server.
fn logger() -> &'static Arc<Logger> {
    static LOG: OnceLock<Arc<Logger>> = OnceLock::new();
    LOG.get_or_init(|| {
        let logger = Arc::new(Logger::memory("tern"));
        tern_daemon::relay::attach_logger(logger.clone(), Ident::new("postfix", "smtpd"));
        logger
    })
}

/// The warnings that name `server`, without the log prefix.
fn warnings(server: &str) -> Vec<String> {
    logger()
        .captured()
        .iter()
        .filter(|l| l.contains(server))
        .filter_map(|l| l.split_once("warning: ").map(|(_, w)| w.to_owned()))
        .collect()
}

/// What the fake server does with each request.
#[derive(Clone)]
enum Behaviour {
    /// Answers these bytes.
    Reply(&'static str),
    /// Reads the request and never answers.
    Silent,
    /// Answers, then closes the connection.
    ReplyClose(&'static str),
    /// Answers these bytes (not UTF-8).
    Bytes(&'static [u8]),
    /// Answers after a pause.
    Slow(&'static str, Duration),
}

/// What a fake server saw.
#[derive(Default)]
struct Seen {
    connections: usize,
    /// Connections the client closed.
    closed: usize,
    requests: Vec<Vec<String>>,
}

type Shared = Arc<Mutex<Seen>>;

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, behaviour: Behaviour, seen: Shared) {
    let mut reader = BufReader::new(stream);
    let mut request = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim_end_matches('\n').to_owned();
        if !line.is_empty() {
            request.push(line);
            continue;
        }
        seen.lock()
            .unwrap()
            .requests
            .push(std::mem::take(&mut request));
        match &behaviour {
            Behaviour::Reply(text) => {
                let _ = reader.get_mut().write_all(text.as_bytes()).await;
            }
            Behaviour::Bytes(bytes) => {
                let _ = reader.get_mut().write_all(bytes).await;
            }
            Behaviour::Silent => {}
            Behaviour::ReplyClose(text) => {
                let _ = reader.get_mut().write_all(text.as_bytes()).await;
                return;
            }
            Behaviour::Slow(text, pause) => {
                tokio::time::sleep(*pause).await;
                let _ = reader.get_mut().write_all(text.as_bytes()).await;
            }
        }
    }
    seen.lock().unwrap().closed += 1;
}

/// A fake policy server on 127.0.0.1; returns its port.
async fn tcp_server(behaviour: Behaviour) -> (u16, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Shared::default();
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.lock().unwrap().connections += 1;
            tokio::spawn(serve(stream, behaviour.clone(), shared.clone()));
        }
    });
    (port, seen)
}

/// Test settings; attaches the warning capture before any query.
fn settings() -> PolicySettings {
    logger();
    PolicySettings {
        timeout: Duration::from_secs(2),
        retry_delay: Duration::from_secs(1),
        ..PolicySettings::default()
    }
}

fn rcpt_request() -> PolicyRequest {
    PolicyRequest {
        protocol_state: "RCPT".into(),
        protocol_name: "ESMTP".into(),
        helo_name: "client.example".into(),
        sender: "alice@example.org".into(),
        recipient: "bob@example.com".into(),
        recipient_count: 3,
        client_address: "192.0.2.7".into(),
        client_name: "client.example".into(),
        reverse_client_name: "client.example".into(),
        instance: "1a2b.5f6e7d8c.1.0".into(),
        size: 12345,
        client_port: 40000,
        server_address: "192.0.2.1".into(),
        server_port: 25,
        ..PolicyRequest::default()
    }
}

/// Runs `body` with a bound on its time.
async fn bounded<F: std::future::Future<Output = T>, T>(secs: u64, body: F) -> T {
    tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .expect("test took too long")
}

#[tokio::test]
async fn request_attributes_in_postfix_order() {
    let (port, seen) = tcp_server(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new(PolicySettings {
        policy_context: "ctx".into(),
        ..settings()
    });
    let server = format!("inet:127.0.0.1:{port}");
    let action = bounded(10, clients.query(&server, &rcpt_request())).await;
    assert_eq!(action, "DUNNO");
    // smtpd_check.c check_policy_service(), Postfix 3.7: recipient_count is 0 before DATA.
    let want = [
        "request=smtpd_access_policy",
        "protocol_state=RCPT",
        "protocol_name=ESMTP",
        "client_address=192.0.2.7",
        "client_name=client.example",
        "client_port=40000",
        "reverse_client_name=client.example",
        "server_address=192.0.2.1",
        "server_port=25",
        "helo_name=client.example",
        "sender=alice@example.org",
        "recipient=bob@example.com",
        "recipient_count=0",
        "queue_id=",
        "instance=1a2b.5f6e7d8c.1.0",
        "size=12345",
        "etrn_domain=",
        "stress=",
        "sasl_method=",
        "sasl_username=",
        "sasl_sender=",
        "ccert_subject=",
        "ccert_issuer=",
        "ccert_fingerprint=",
        "ccert_pubkey_fingerprint=",
        "encryption_protocol=",
        "encryption_cipher=",
        "encryption_keysize=0",
        "policy_context=ctx",
    ];
    assert_eq!(
        seen.lock().unwrap().requests,
        vec![want.map(String::from).to_vec()]
    );
}

#[test]
fn request_state_rules() {
    // (state, sent state, sent recipient_count)
    for (state, sent, count) in [
        ("RCPT", "RCPT", "0"),
        ("DATA", "DATA", "3"),
        ("BDAT", "DATA", "3"),
        ("END-OF-MESSAGE", "END-OF-MESSAGE", "3"),
        ("CONNECT", "CONNECT", "0"),
        ("ETRN", "ETRN", "0"),
    ] {
        let request = PolicyRequest {
            protocol_state: state.into(),
            recipient_count: 3,
            recipient: "a\nb@example.com".into(),
            ..PolicyRequest::default()
        };
        let text = request.encode("");
        assert!(
            text.contains(&format!("\nprotocol_state={sent}\n")),
            "{state}"
        );
        assert!(
            text.contains(&format!("\nrecipient_count={count}\n")),
            "{state}"
        );
        // A newline cannot inject an attribute.
        assert!(text.contains("\nrecipient=ab@example.com\n"), "{text}");
        assert!(text.ends_with("\n\n") && !text[..text.len() - 1].contains("\n\n"));
    }
}

#[tokio::test]
async fn connection_reused_between_requests() {
    let (port, seen) = tcp_server(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new(settings());
    let server = format!("inet:127.0.0.1:{port}");
    for _ in 0..3 {
        assert_eq!(
            bounded(10, clients.query(&server, &rcpt_request())).await,
            "DUNNO"
        );
    }
    let seen = seen.lock().unwrap();
    assert_eq!((seen.connections, seen.requests.len()), (1, 3));
}

#[tokio::test]
async fn request_limit_one_connection_per_request() {
    let (port, seen) = tcp_server(Behaviour::Reply("action=OK\n\n")).await;
    let clients = PolicyClients::new(PolicySettings {
        request_limit: 1,
        ..settings()
    });
    let server = format!("inet:127.0.0.1:{port}");
    for _ in 0..2 {
        assert_eq!(
            bounded(10, clients.query(&server, &rcpt_request())).await,
            "OK"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = seen.lock().unwrap();
    assert_eq!((seen.connections, seen.requests.len()), (2, 2));
    // Each connection was closed after its one request.
    assert_eq!(seen.closed, 2);
}

#[tokio::test]
async fn max_idle_closes_and_reconnects() {
    let (port, seen) = tcp_server(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new(PolicySettings {
        max_idle: Duration::from_secs(1),
        ..settings()
    });
    let server = format!("inet:127.0.0.1:{port}");
    bounded(10, clients.query(&server, &rcpt_request())).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // The idle connection was closed by the client, not at the next request.
    assert_eq!(seen.lock().unwrap().closed, 1);
    bounded(10, clients.query(&server, &rcpt_request())).await;
    assert_eq!(seen.lock().unwrap().connections, 2);
}

#[tokio::test]
async fn max_ttl_closes_a_busy_connection() {
    let (port, seen) = tcp_server(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new(PolicySettings {
        max_ttl: Duration::from_secs(1),
        ..settings()
    });
    let server = format!("inet:127.0.0.1:{port}");
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(1500) && n < 100 {
        bounded(10, clients.query(&server, &rcpt_request())).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        n += 1;
    }
    assert_eq!(seen.lock().unwrap().connections, 2);
}

#[tokio::test]
async fn concurrent_queries_use_separate_connections() {
    let (port, seen) = tcp_server(Behaviour::Slow(
        "action=DUNNO\n\n",
        Duration::from_millis(300),
    ))
    .await;
    let clients = Arc::new(PolicyClients::new(settings()));
    let server = format!("inet:127.0.0.1:{port}");
    let request = rcpt_request();
    let (a, b) = bounded(10, async {
        tokio::join!(
            clients.query(&server, &request),
            clients.query(&server, &request)
        )
    })
    .await;
    assert_eq!((a.as_str(), b.as_str()), ("DUNNO", "DUNNO"));
    assert_eq!(seen.lock().unwrap().connections, 2);
    // Both go back to the pool; later requests reuse them.
    for _ in 0..4 {
        bounded(10, clients.query(&server, &request)).await;
    }
    assert_eq!(seen.lock().unwrap().connections, 2);
}

#[tokio::test]
async fn server_closing_after_reply_costs_no_retry() {
    let (port, seen) = tcp_server(Behaviour::ReplyClose("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new(settings());
    let server = format!("inet:127.0.0.1:{port}");
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(
            bounded(10, clients.query(&server, &rcpt_request())).await,
            "DUNNO"
        );
        assert!(start.elapsed() < Duration::from_millis(900));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.lock().unwrap().connections, 3);
    assert_eq!(warnings(&format!("127.0.0.1:{port}")), Vec::<String>::new());
}

#[tokio::test]
async fn timeout_gives_default_action_after_tries() {
    let (port, seen) = tcp_server(Behaviour::Silent).await;
    let clients = PolicyClients::new(PolicySettings {
        timeout: Duration::from_secs(1),
        ..settings()
    });
    let server = format!("inet:127.0.0.1:{port}");
    let start = Instant::now();
    let action = bounded(20, clients.query(&server, &rcpt_request())).await;
    assert_eq!(action, "451 4.3.5 Server configuration problem");
    // Two tries of 1 s with 1 s between.
    assert!(
        start.elapsed() >= Duration::from_millis(2900),
        "{:?}",
        start.elapsed()
    );
    let name = format!("127.0.0.1:{port}");
    let want = format!("problem talking to server {name}: Connection timed out");
    assert_eq!(warnings(&name), vec![want.clone(), want]);
    let seen = seen.lock().unwrap();
    assert_eq!((seen.connections, seen.requests.len()), (2, 2));
}

#[tokio::test]
async fn server_down_gives_default_action() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let clients = PolicyClients::new(PolicySettings {
        default_action: "DUNNO".into(),
        ..settings()
    });
    let server = format!("inet:127.0.0.1:{port}");
    assert_eq!(
        bounded(10, clients.query(&server, &rcpt_request())).await,
        "DUNNO"
    );
    let name = format!("127.0.0.1:{port}");
    let connect = format!("connect to {name}: Connection refused");
    let problem = format!("problem talking to server {name}: Connection refused");
    assert_eq!(
        warnings(&name),
        vec![connect.clone(), problem.clone(), connect, problem]
    );
}

#[tokio::test]
async fn malformed_replies() {
    let long = Box::leak(format!("action={}\n\n", "x".repeat(9000)).into_boxed_str());
    // (reply, warnings before the final "problem talking", result)
    let cases: [(&'static str, &str, Option<&str>); 6] = [
        ("\n", "missing attribute action in input from NAME", None),
        (
            "action\n\n",
            "missing value for string attribute action from NAME",
            None,
        ),
        (
            "result=x\n\n",
            "missing attribute action in input from NAME",
            None,
        ),
        (
            long,
            "string length > 8192 characters from NAME while reading input attribute value",
            None,
        ),
        (
            "foo=bar\naction=450 4.7.1 Try again\nbaz\n\n",
            "",
            Some("450 4.7.1 Try again"),
        ),
        ("action=REJECT no\naction=OK\n\n", "", Some("REJECT no")),
    ];
    for (reply, warning, result) in cases {
        let (port, _seen) = tcp_server(Behaviour::Reply(reply)).await;
        let clients = PolicyClients::new(PolicySettings {
            timeout: Duration::from_secs(1),
            ..settings()
        });
        let server = format!("inet:127.0.0.1:{port}");
        let got = bounded(10, clients.try_query(&server, &rcpt_request())).await;
        let name = format!("127.0.0.1:{port}");
        if let Some(action) = result {
            assert_eq!(got, Ok(action.to_owned()), "{reply:?}");
            assert_eq!(warnings(&name), Vec::<String>::new());
        } else {
            {
                assert_eq!(got, Err("451 4.3.5 Server configuration problem".into()));
                let w = warning.replace("NAME", &name);
                // attr_clnt.c: errno is 0 for a protocol error, so only the last try
                // warns, with "%m" = "Application error".
                let last = format!("problem talking to server {name}: Application error");
                assert_eq!(warnings(&name), vec![w.clone(), w, last], "{reply:?}");
            }
        }
    }
}

#[tokio::test]
async fn premature_end_of_input() {
    let (port, _seen) = tcp_server(Behaviour::ReplyClose("action=DUN")).await;
    let clients = PolicyClients::new(PolicySettings {
        try_limit: 1,
        ..settings()
    });
    let server = format!("inet:127.0.0.1:{port}");
    assert!(
        bounded(10, clients.try_query(&server, &rcpt_request()))
            .await
            .is_err()
    );
    let name = format!("127.0.0.1:{port}");
    assert_eq!(
        warnings(&name),
        vec![
            format!("premature end-of-input on {name} while reading input attribute value"),
            format!("problem talking to server {name}: Application error"),
        ]
    );
}

#[tokio::test]
async fn malformed_utf8_action() {
    let (port, seen) = tcp_server(Behaviour::Bytes(b"action=OK \xff\n\n")).await;
    let clients = PolicyClients::new(settings());
    let server = format!("inet:127.0.0.1:{port}");
    // smtpd_check.c valid_utf8_action(): no retry, the default action.
    let got = bounded(10, clients.try_query(&server, &rcpt_request())).await;
    assert_eq!(got, Err("451 4.3.5 Server configuration problem".into()));
    assert_eq!(
        warnings(&server),
        vec![format!(
            "malformed UTF-8 in policy server {server} response: \"OK ?\""
        )]
    );
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
    // With smtputf8_enable = no the action is taken as it is.
    let clients = PolicyClients::new(PolicySettings {
        smtputf8: false,
        ..settings()
    });
    let got = bounded(10, clients.try_query(&server, &rcpt_request())).await;
    assert_eq!(got, Ok("OK \u{fffd}".into()));
}

#[tokio::test]
async fn unix_socket_relative_to_queue_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("private")).unwrap();
    let path = dir.path().join("private/policy");
    let listener = UnixListener::bind(&path).unwrap();
    let seen = Shared::default();
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            shared.lock().unwrap().connections += 1;
            tokio::spawn(serve(
                stream,
                Behaviour::Reply("action=DUNNO\n\n"),
                shared.clone(),
            ));
        }
    });
    let clients = PolicyClients::new(PolicySettings {
        queue_directory: dir.path().to_path_buf(),
        ..settings()
    });
    for server in [
        "unix:private/policy".to_owned(),
        format!("unix:{}", path.display()),
    ] {
        assert_eq!(
            bounded(10, clients.query(&server, &rcpt_request())).await,
            "DUNNO"
        );
        assert_eq!(
            bounded(10, clients.query(&server, &rcpt_request())).await,
            "DUNNO"
        );
    }
    // One connection per server text (Postfix keys its clients by the text).
    {
        let seen = seen.lock().unwrap();
        assert_eq!((seen.connections, seen.requests.len()), (2, 4));
    }
    // A missing socket: ENOENT is quiet until the last try (attr_clnt.c).
    let missing = dir.path().join("private/none");
    let server = format!("unix:{}", missing.display());
    assert!(
        bounded(10, clients.try_query(&server, &rcpt_request()))
            .await
            .is_err()
    );
    let name = missing.display().to_string();
    let connect = format!("connect to {name}: No such file or directory");
    assert_eq!(
        warnings(&name),
        vec![
            connect.clone(),
            connect,
            format!("problem talking to server {name}: No such file or directory"),
        ]
    );
}

#[tokio::test]
async fn per_service_overrides() {
    let (port, seen) = tcp_server(Behaviour::Reply("action=DUNNO\n\n")).await;
    let clients = PolicyClients::new(settings());
    let server = format!(
        "{{ inet:127.0.0.1:{port}, request_limit=1, policy_context=submission, \
         {{ default_action = 450 4.7.1 try later }} }}"
    );
    clients.register(&server).unwrap();
    for _ in 0..2 {
        assert_eq!(
            bounded(10, clients.query(&server, &rcpt_request())).await,
            "DUNNO"
        );
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.connections, 2);
        assert!(seen.requests[0].contains(&"policy_context=submission".to_owned()));
    }
    // The override's default action and try limit, with the server gone.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = format!("{{inet:127.0.0.1:{port},try_limit=1,default_action=DUNNO}}");
    let start = Instant::now();
    assert_eq!(
        bounded(10, clients.try_query(&server, &rcpt_request())).await,
        Err("DUNNO".into())
    );
    assert!(start.elapsed() < Duration::from_millis(900));
    assert_eq!(warnings(&format!("127.0.0.1:{port}")).len(), 2);
}

#[test]
fn bad_service_texts() {
    let clients = PolicyClients::new(PolicySettings::default());
    for (server, error) in [
        (
            "{ inet:127.0.0.1:1, colour=blue }",
            "unknown option: \"colour = blue\"",
        ),
        (
            "{ inet:127.0.0.1:1, timeout=5x }",
            "timeout: bad time value or unit: 5x",
        ),
        (
            "{ inet:127.0.0.1:1, try_limit=x }",
            "bad numerical configuration: try_limit = x",
        ),
        (
            "{ inet:127.0.0.1:1, nonsense }",
            "malformed option: missing '=' after attribute name: \"...nonsense...\"",
        ),
        ("{ }", "empty policy service: \"{ }\""),
        (
            "tcp:127.0.0.1:1",
            "invalid transport name: tcp in service: tcp:127.0.0.1:1",
        ),
        (
            "{ inet:127.0.0.1:1",
            "policy service syntax error:  inet:127.0.0.1:1",
        ),
    ] {
        assert_eq!(
            clients.register(server).unwrap_err().to_string(),
            error,
            "{server}"
        );
    }
}
