//! The SASL server library (tern_daemon::sasl) driven directly, without smtpd: against
//! Debian's Dovecot (crates/testkit/src/dovecot.rs) for `smtpd_sasl_type = dovecot`, and
//! against a password file for the built-in `smtpd_sasl_type = tern`. Every reply, reason
//! and warning expected here is what Debian's Postfix 3.7.11 with Dovecot 2.3.19 gives
//! (`postfix_with_dovecot_gives_these_texts` checks them against that Postfix).
//!
//! Dovecot delays each failure (auth_failure_delay, 2 s) and then penalizes the client
//! address (auth penalty, doubling up to 15 s): each failing case uses its own client
//! address from 192.0.2.0/24, so that cases do not slow each other down.
//!
//! Needs root, Debian's dovecot-core, postfix and python3; fails, never skips, without
//! them.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_config::config::Config;
use tern_daemon::sasl::table::Hash;
use tern_daemon::sasl::{self, SaslClient, SaslServer, SaslStep};
use tern_testkit::dovecot::Dovecot;
use tern_testkit::postfix::PostfixInstance;

/// Every exchange and every wait of these tests ends within this.
const LIMIT: Duration = Duration::from_mins(1);

fn sasl_server(dir: &Path, extra: &str) -> (SaslServer, Arc<Mutex<Vec<String>>>) {
    let main = format!(
        "config_directory = {d}\nqueue_directory = {d}/queue\nsmtpd_sasl_auth_enable = yes\n\
         {extra}",
        d = dir.display()
    );
    let config = Config::from_texts(dir, &main, "", "mx.example.test").expect("config");
    let server = SaslServer::from_config(&config, None)
        .expect("settings")
        .expect("enabled");
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let sink = warnings.clone();
    server.set_warn(Arc::new(move |t: &str| {
        sink.lock().expect("warnings").push(t.to_owned());
    }));
    (server, warnings)
}

fn client(last: u8, tls: bool) -> SaslClient {
    SaslClient {
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)),
        name: "unknown".into(),
        local_addr: Some(SocketAddr::from(([127, 0, 0, 1], 587))),
        tls,
    }
}

/// Runs one exchange: `responses` in order (the first is the initial response), and
/// returns every step's result.
async fn exchange(
    server: &SaslServer,
    mech: &str,
    who: &SaslClient,
    responses: &[Option<&str>],
) -> Vec<SaslStep> {
    let mut x = server.start(mech, who).expect("mechanism offered");
    let mut steps = Vec::new();
    for r in responses {
        let step = tokio::time::timeout(LIMIT, x.step(*r))
            .await
            .expect("step within the limit");
        let last = !matches!(step, SaslStep::Challenge(_));
        steps.push(step);
        if last {
            break;
        }
    }
    steps
}

fn success(user: &str) -> SaslStep {
    SaslStep::Success {
        username: user.into(),
    }
}

fn failed(user: Option<&str>) -> SaslStep {
    SaslStep::Failure {
        reply: "535 5.7.8 Error: authentication failed: (reason unavailable)".into(),
        reason: "(reason unavailable)".into(),
        username: user.map(str::to_owned),
    }
}

fn challenge(text: &str) -> SaslStep {
    SaslStep::Challenge(text.into())
}

/// The cases both back ends must answer alike: (mechanism, responses, client, steps).
/// (mechanism, responses, last byte of the client address, the steps expected).
type Case = (&'static str, Vec<Option<&'static str>>, u8, Vec<SaslStep>);

fn shared_cases() -> Vec<Case> {
    vec![
        // tern / s3cret
        (
            "PLAIN",
            vec![Some("AHRlcm4AczNjcmV0")],
            1,
            vec![success("tern")],
        ),
        (
            "PLAIN",
            vec![None, Some("AHRlcm4AczNjcmV0")],
            1,
            vec![challenge(""), success("tern")],
        ),
        (
            "LOGIN",
            vec![None, Some("dGVybg=="), Some("czNjcmV0")],
            1,
            vec![
                challenge("VXNlcm5hbWU6"),
                challenge("UGFzc3dvcmQ6"),
                success("tern"),
            ],
        ),
        (
            "login",
            vec![Some("dGVybg=="), Some("czNjcmV0")],
            1,
            vec![challenge("UGFzc3dvcmQ6"), success("tern")],
        ),
        // tern / wrong
        (
            "PLAIN",
            vec![Some("AHRlcm4Ad3Jvbmc=")],
            11,
            vec![failed(Some("tern"))],
        ),
        (
            "LOGIN",
            vec![None, Some("dGVybg=="), Some("d3Jvbmc=")],
            12,
            vec![
                challenge("VXNlcm5hbWU6"),
                challenge("UGFzc3dvcmQ6"),
                failed(Some("tern")),
            ],
        ),
        // an unknown user
        (
            "PLAIN",
            vec![Some("AG5vYm9keQB3cm9uZw==")],
            13,
            vec![failed(Some("nobody"))],
        ),
        (
            "PLAIN",
            vec![Some("!!!")],
            14,
            vec![SaslStep::Failure {
                reply: "535 5.7.8 Error: authentication failed: Invalid base64 data in \
                        initial response"
                    .into(),
                reason: "Invalid base64 data in initial response".into(),
                username: None,
            }],
        ),
        (
            "LOGIN",
            vec![None, Some("*")],
            1,
            vec![challenge("VXNlcm5hbWU6"), SaslStep::Aborted],
        ),
    ]
}

async fn run_shared_cases(server: &SaslServer) {
    for (mech, responses, who, want) in shared_cases() {
        let got = exchange(server, mech, &client(who, false), &responses).await;
        assert_eq!(got, want, "{mech} {responses:?}");
    }
    let refusal = server
        .start("CRAM-MD5", &client(1, false))
        .err()
        .expect("refused");
    assert_eq!(
        refusal.reply,
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
    );
    assert_eq!(refusal.reason, "Invalid authentication mechanism");
}

fn dovecot_server(
    dovecot: &Dovecot,
    dir: &Path,
    extra: &str,
) -> (SaslServer, Arc<Mutex<Vec<String>>>) {
    let extra = format!(
        "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n{extra}",
        dovecot.auth_socket_path().display()
    );
    sasl_server(dir, &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_plain_and_login() {
    let dovecot = Dovecot::start_auth(&[("tern", "s3cret")]).expect("Debian's Dovecot");
    let dir = tempfile::tempdir().expect("dir");
    let (server, warnings) = dovecot_server(&dovecot, dir.path(), "");
    assert_eq!(server.mechanisms(false).await.as_deref(), Ok("PLAIN LOGIN"));
    assert_eq!(server.ehlo_lines("PLAIN LOGIN"), ["AUTH PLAIN LOGIN"]);
    run_shared_cases(&server).await;
    // Many sessions at once share the pool.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            exchange(
                &server,
                "PLAIN",
                &client(1, true),
                &[Some("AHRlcm4AczNjcmV0")],
            )
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), vec![success("tern")]);
    }
    assert!(warnings.lock().expect("w").is_empty(), "{warnings:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_security_options() {
    let dovecot = Dovecot::start_auth(&[("tern", "s3cret")]).expect("Debian's Dovecot");
    let dir = tempfile::tempdir().expect("dir");
    let (server, _) = dovecot_server(
        &dovecot,
        dir.path(),
        "smtpd_sasl_security_options = noanonymous, noplaintext\n\
         smtpd_sasl_tls_security_options = noanonymous\nbroken_sasl_auth_clients = yes\n",
    );
    // Postfix's smtpd ends with "fatal: no SASL authentication mechanisms" here.
    assert_eq!(
        server.mechanisms(false).await,
        Err(sasl::NO_MECHANISMS.to_owned())
    );
    assert_eq!(server.mechanisms(true).await.as_deref(), Ok("PLAIN LOGIN"));
    assert_eq!(
        server.ehlo_lines("PLAIN LOGIN"),
        ["AUTH PLAIN LOGIN", "AUTH=PLAIN LOGIN"]
    );
    assert!(server.start("PLAIN", &client(1, false)).is_err());
    let got = exchange(
        &server,
        "PLAIN",
        &client(1, true),
        &[Some("AHRlcm4AczNjcmV0")],
    )
    .await;
    assert_eq!(got, vec![success("tern")]);

    let (server, _) = dovecot_server(
        &dovecot,
        dir.path(),
        "smtpd_sasl_mechanism_filter = !LOGIN, static:rest\n",
    );
    assert_eq!(server.mechanisms(false).await.as_deref(), Ok("PLAIN"));
    let (server, _) = dovecot_server(
        &dovecot,
        dir.path(),
        "smtpd_sasl_mechanism_filter = CRAM-MD5\n",
    );
    assert_eq!(
        server.mechanisms(false).await,
        Err("smtpd_sasl_mechanism_filter discards all mechanisms in 'PLAIN LOGIN'".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_relative_path_and_down() {
    let dovecot = Dovecot::start_auth(&[("tern", "s3cret")]).expect("Debian's Dovecot");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("queue/private")).expect("mkdir");
    std::os::unix::fs::symlink(
        dovecot.auth_socket_path(),
        dir.path().join("queue/private/auth"),
    )
    .expect("symlink");
    let (server, warnings) = sasl_server(
        dir.path(),
        "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n",
    );
    assert_eq!(server.mechanisms(false).await.as_deref(), Ok("PLAIN LOGIN"));
    let got = exchange(
        &server,
        "PLAIN",
        &client(1, false),
        &[Some("AHRlcm4AczNjcmV0")],
    )
    .await;
    assert_eq!(got, vec![success("tern")]);

    // Dovecot goes away after the session started: Postfix's 454 and its warning.
    drop(dovecot);
    let got = exchange(
        &server,
        "PLAIN",
        &client(1, false),
        &[Some("AHRlcm4AczNjcmV0")],
    )
    .await;
    assert_eq!(
        got,
        vec![SaslStep::Failure {
            reply: "454 4.7.0 Temporary authentication failure: (reason unavailable)".into(),
            reason: "(reason unavailable)".into(),
            username: None,
        }]
    );
    assert_eq!(
        warnings.lock().expect("w").last().map(String::as_str),
        Some(
            "SASL: Connect to Dovecot auth socket 'private/auth' failed: No such file or \
             directory"
        )
    );

    // Down before the session: the warning, then Postfix's fatal.
    let (server, warnings) = sasl_server(
        dir.path(),
        "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n",
    );
    assert_eq!(
        server.mechanisms(false).await,
        Err("no SASL authentication mechanisms".to_owned())
    );
    assert_eq!(
        *warnings.lock().expect("w"),
        [
            "SASL: Connect to Dovecot auth socket 'private/auth' failed: No such file or \
          directory"
        ]
    );
}

fn write_table(path: &Path, users: &[(&str, &str)]) {
    let mut text = String::from("# tern-saslpasswd\n");
    for (u, p) in users {
        let h = Hash::new(p.as_bytes(), 1000).expect("hash");
        let _ = writeln!(text, "{u}:{h}");
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_table_answers_as_dovecot() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("sasl_users");
    write_table(&file, &[("tern", "s3cret"), ("other", "x")]);
    let (server, warnings) = sasl_server(
        dir.path(),
        &format!(
            "smtpd_sasl_type = tern\nsmtpd_sasl_path = {}\n",
            file.display()
        ),
    );
    assert_eq!(server.mechanisms(false).await.as_deref(), Ok("PLAIN LOGIN"));
    run_shared_cases(&server).await;

    // A new password is seen at the next AUTH, without a reload.
    write_table(&file, &[("tern", "n3w")]);
    let got = exchange(&server, "PLAIN", &client(1, false), &[Some("AHRlcm4AbjN3")]).await;
    assert_eq!(got, vec![success("tern")]);
    let got = exchange(
        &server,
        "PLAIN",
        &client(1, false),
        &[Some("AHRlcm4AczNjcmV0")],
    )
    .await;
    assert_eq!(got, vec![failed(Some("tern"))]);

    // A bad line is skipped with a warning; a missing file is a temporary failure.
    std::fs::write(&file, "bad line\n").expect("write");
    let got = exchange(&server, "PLAIN", &client(1, false), &[Some("AHRlcm4AbjN3")]).await;
    assert_eq!(got, vec![failed(Some("tern"))]);
    std::fs::remove_file(&file).expect("rm");
    let got = exchange(&server, "PLAIN", &client(1, false), &[Some("AHRlcm4AbjN3")]).await;
    assert_eq!(
        got,
        vec![SaslStep::Failure {
            reply: "454 4.7.0 Temporary authentication failure: (reason unavailable)".into(),
            reason: "(reason unavailable)".into(),
            username: Some("tern".into()),
        }]
    );
    let w = warnings.lock().expect("w").clone();
    assert_eq!(
        w,
        [
            format!("{}, line 1: expected user:hash: skipped", file.display()),
            format!(
                "SASL: cannot read {}: No such file or directory",
                file.display()
            ),
        ]
    );

    let (server, _) = sasl_server(
        dir.path(),
        "smtpd_sasl_type = tern\nsmtpd_sasl_security_options = noplaintext\n",
    );
    assert_eq!(
        server.mechanisms(false).await,
        Err("no SASL authentication mechanisms".to_owned())
    );
}

#[test]
fn settings_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let cases: &[(&str, &str)] = &[
        ("", "parameter smtpd_sasl_type: bad value: cyrus"),
        (
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_security_options = noanonymous, nosuch\n",
            "parameter smtpd_sasl_security_options: bad value: noanonymous, nosuch",
        ),
        (
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:host\n",
            "parameter smtpd_sasl_path: bad value: inet:host",
        ),
    ];
    for (extra, want) in cases {
        let main = format!(
            "config_directory = {}\nsmtpd_sasl_auth_enable = yes\n{extra}",
            dir.path().display()
        );
        let config = Config::from_texts(dir.path(), &main, "", "mx.example.test").expect("config");
        let got = SaslServer::from_config(&config, None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(got.as_deref(), Some(*want), "{extra}");
    }
    let config = Config::from_texts(dir.path(), "", "", "mx.example.test").expect("config");
    assert!(
        SaslServer::from_config(&config, None)
            .expect("ok")
            .is_none()
    );
}

/// The oracle: Debian's Postfix with the same Dovecot, one raw SMTP session that meets
/// each text the library returns, and the log lines tern_maillog::sasl builds.
#[test]
fn postfix_with_dovecot_gives_these_texts() {
    let dovecot = Dovecot::start_auth(&[("tern", "s3cret")]).expect("Debian's Dovecot");
    let pf = PostfixInstance::start(&format!(
        "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n\
         broken_sasl_auth_clients = yes\n",
        dovecot.auth_socket_path().display()
    ))
    .expect("Debian's Postfix");
    let script: &[(&str, &str)] = &[
        ("EHLO x", "250 CHUNKING"),
        (
            "AUTH FOO",
            "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
        ),
        (
            "AUTH PLAIN !!!",
            "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response",
        ),
        ("AUTH PLAIN", "334 "),
        ("*", sasl::ABORTED),
        (
            "AUTH PLAIN AHRlcm4Ad3Jvbmc=",
            "535 5.7.8 Error: authentication failed: (reason unavailable)",
        ),
        ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
        ("dGVybg==", "334 UGFzc3dvcmQ6"),
        ("czNjcmV0", sasl::SUCCESSFUL),
        ("AUTH PLAIN", sasl::ALREADY_AUTHENTICATED),
        ("QUIT", "221 2.0.0 Bye"),
    ];
    let got: Vec<String> = raw_session(pf.port(), script)
        .iter()
        .map(|r| r.rsplit('|').next().unwrap_or_default().to_owned())
        .collect();
    let want: Vec<String> = script.iter().map(|(_, r)| (*r).to_owned()).collect();
    assert_eq!(got, want);
    let long = "A".repeat(13_000);
    let script: &[(&str, &str)] = &[
        ("EHLO x", "250 CHUNKING"),
        ("AUTH", sasl::SYNTAX),
        ("AUTH PLAIN a b", sasl::SYNTAX),
        ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
        (&long, sasl::RESPONSE_LIMIT_EXCEEDED),
        ("MAIL FROM:<a@example.com>", "250 2.1.0 Ok"),
        ("AUTH PLAIN", sasl::IN_TRANSACTION),
        ("QUIT", "221 2.0.0 Bye"),
    ];
    let got: Vec<String> = raw_session(pf.port(), script)
        .iter()
        .map(|r| r.rsplit('|').next().unwrap_or_default().to_owned())
        .collect();
    let want: Vec<String> = script.iter().map(|(_, r)| (*r).to_owned()).collect();
    assert_eq!(got, want);
    let ehlo = raw_session(pf.port(), &[("EHLO x", "")]);
    assert!(
        ehlo[0].contains("250-AUTH PLAIN LOGIN|250-AUTH=PLAIN LOGIN|"),
        "{ehlo:?}"
    );

    let plain = PostfixInstance::start("").expect("Debian's Postfix");
    let got = raw_session(plain.port(), &[("EHLO x", ""), ("AUTH PLAIN", "")]);
    assert_eq!(got[1], sasl::NOT_ENABLED);
    assert!(!got[0].contains("AUTH"), "{got:?}");

    let c = tern_maillog::smtpd::Client {
        name: "localhost",
        addr: "127.0.0.1",
    };
    let lines = [
        tern_maillog::sasl::authentication_failed(
            c,
            "FOO",
            "Invalid authentication mechanism",
            None,
        ),
        tern_maillog::sasl::authentication_aborted(c, "PLAIN"),
        tern_maillog::sasl::authentication_failed(c, "PLAIN", "(reason unavailable)", Some("tern")),
    ];
    let deadline = std::time::Instant::now() + LIMIT;
    for line in lines {
        let want = "postfix/smtpd[";
        let text = format!("warning: {}", line.text());
        loop {
            let log = pf.maillog();
            if log.lines().any(|l| l.contains(want) && l.ends_with(&text)) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{text:?} not in\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sends each command, reads the reply; returns each reply (a multi-line reply's lines
/// joined by `|`).
fn raw_session(port: u16, script: &[(&str, &str)]) -> Vec<String> {
    let py = r"
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=30)
f = s.makefile('rb')
def reply():
    out = []
    while len(out) < 100:
        l = f.readline()
        if not l:
            return 'EOF'
        out.append(l.decode().rstrip('\r\n'))
        if l[3:4] != b'-':
            break
    return out[-1] if len(out) == 1 else '|'.join(out)
reply()
for c in sys.argv[2:]:
    s.sendall(c.encode() + b'\r\n')
    print(reply())
";
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", py, &port.to_string()]);
    cmd.args(script.iter().map(|(c, _)| *c));
    let out = cmd.output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A scripted Dovecot auth server on a loopback TCP port (`inet:` paths): it records the
/// lines it gets, answers by the PLAIN user (`tern`: OK then closes the connection;
/// `evil`: another id's OK first; `long`: a 100 KiB line; `slow`: nothing).
async fn fake_dovecot() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for _ in 0..50 {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let hello = "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n\
                             MECH\tANONYMOUS\tanonymous\nSPID\t9\nCUID\t1\nCOOKIE\tc\nDONE\n";
                if w.write_all(hello.as_bytes()).await.is_err() {
                    return;
                }
                let mut lines = BufReader::new(r).lines();
                for _ in 0..20 {
                    let Ok(Some(line)) = lines.next_line().await else {
                        return;
                    };
                    log.lock().expect("log").push(line.clone());
                    let f: Vec<&str> = line.split('\t').collect();
                    if f[0] != "AUTH" {
                        continue;
                    }
                    let id = f[1];
                    let resp = f.iter().find_map(|x| x.strip_prefix("resp=")).unwrap_or("");
                    let user = sasl::base64::decode(resp)
                        .map(|d| {
                            String::from_utf8_lossy(&d)
                                .split('\0')
                                .nth(1)
                                .unwrap_or("")
                                .to_owned()
                        })
                        .unwrap_or_default();
                    let answer = match user.as_str() {
                        "tern" => format!("OK\t{id}\tuser=tern\n"),
                        "evil" => format!("OK\t999\tuser=evil\nFAIL\t{id}\tuser=evil\treason=No\n"),
                        "long" => format!("CONT\t{id}\t{}\n", "A".repeat(100 * 1024)),
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        _ => format!("FAIL\t{id}\n"),
                    };
                    let _ = w.write_all(answer.as_bytes()).await;
                    if user == "tern" {
                        // Closed after each success: the pool must notice and reconnect.
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_protocol_over_inet_with_bounds() {
    let (addr, seen) = fake_dovecot().await;
    let dir = tempfile::tempdir().expect("dir");
    let (server, warnings) = sasl_server(
        dir.path(),
        &format!("smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:{addr}\n"),
    );
    assert_eq!(server.mechanisms(false).await.as_deref(), Ok("PLAIN LOGIN"));
    assert_eq!(
        server.mechanisms(true).await.as_deref(),
        Ok("PLAIN LOGIN"),
        "noanonymous applies after TLS too"
    );
    // "\0tern\0x" twice: the second finds its pooled connection closed and reconnects.
    for _ in 0..2 {
        let got = exchange(&server, "plain", &client(7, true), &[Some("AHRlcm4AeA==")]).await;
        assert_eq!(got, vec![success("tern")]);
    }
    let got = exchange(&server, "PLAIN", &client(7, false), &[Some("AGV2aWwAeA==")]).await;
    assert_eq!(
        got,
        vec![SaslStep::Failure {
            reply: "535 5.7.8 Error: authentication failed: No".into(),
            reason: "No".into(),
            username: Some("evil".into()),
        }]
    );
    let lost = || SaslStep::Failure {
        reply: "454 4.7.0 Temporary authentication failure: Connection lost to \
                authentication server"
            .into(),
        reason: "Connection lost to authentication server".into(),
        username: None,
    };
    let got = exchange(&server, "PLAIN", &client(7, false), &[Some("AGxvbmcAeA==")]).await;
    assert_eq!(got, vec![lost()]);
    let start = std::time::Instant::now();
    let got = exchange(&server, "PLAIN", &client(7, false), &[Some("AHNsb3cAeA==")]).await;
    assert_eq!(got, vec![lost()]);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(25),
        "{waited:?}"
    );
    let lines = seen.lock().expect("seen").clone();
    let auth: Vec<&String> = lines.iter().filter(|l| l.starts_with("AUTH")).collect();
    assert!(lines[0].starts_with("VERSION\t1\t1"), "{lines:?}");
    assert!(lines[1].starts_with("CPID\t"), "{lines:?}");
    assert_eq!(
        auth[0].as_str(),
        "AUTH\t1\tplain\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.7\tsecured\t\
         resp=AHRlcm4AeA=="
    );
    let long: Vec<&&String> = auth
        .iter()
        .filter(|l| l.ends_with("resp=AGxvbmcAeA=="))
        .collect();
    assert_eq!(long.len(), 1, "an over-long line is not retried: {auth:?}");
    assert!(
        long[0].contains("\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.7\tresp="),
        "no secured without TLS: {long:?}"
    );
    assert!(warnings.lock().expect("w").is_empty(), "{warnings:?}");
}
