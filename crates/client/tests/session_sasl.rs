//! The client session's SASL step against aiosmtpd (Debian's python3-aiosmtpd, run with
//! /usr/bin/python3) with an authenticator that checks the username and password and
//! records the mechanism: PLAIN and LOGIN, a wrong password (Postfix's deferral text), a
//! server without AUTH, no common mechanism, `noplaintext` without TLS, and AUTH=<>.
//! A missing peer fails the test.

mod session_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tern_client::sasl::{SaslClient, Settings as SaslSettings};
use tern_client::session::{Options, Protocol, Sasl, SessionResult, Start, connect_tcp, run};

use session_common::{attempt, message, one, settings, summary};

const HOST: &str = "aio.example.com";

/// aiosmtpd with AUTH over plaintext; argv: port, record file, mode (`auth`: the
/// built-in `AUTH LOGIN PLAIN`; `plainfirst`: `AUTH PLAIN LOGIN`; `noauth`: no AUTH
/// line; `crammd5`: `AUTH CRAM-MD5` only). The record gets `AUTH MECH USER ok|bad` per
/// attempt and `MAIL ARGS` per transaction.
const SERVER: &str = r#"
import sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

port, record, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def note(line):
    with open(record, "a") as f:
        f.write(line + "\n")

def authenticator(server, session, envelope, mechanism, auth_data):
    user = auth_data.login.decode()
    ok = user == "tern" and auth_data.password.decode() == "s3cret:pw"
    note("AUTH %s %s %s" % (mechanism, user, "ok" if ok else "bad"))
    return AuthResult(success=ok, handled=False)

class RecordingSMTP(SMTP):
    def _getparams(self, params):
        got = super()._getparams(params)
        if got is not None:
            got.pop("AUTH", None)
        return got
    async def smtp_MAIL(self, arg):
        note("MAIL " + arg)
        return await super().smtp_MAIL(arg)

class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        out = []
        for r in responses:
            if r.startswith("250-AUTH"):
                if mode == "noauth":
                    continue
                if mode == "plainfirst":
                    r = "250-AUTH PLAIN LOGIN"
                if mode == "crammd5":
                    r = "250-AUTH CRAM-MD5"
            out.append(r)
        return out
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok: queued as SASL"

class C(Controller):
    def factory(self):
        return RecordingSMTP(self.handler, hostname="aio.example", auth_require_tls=False,
                             authenticator=authenticator)

c = C(Handler(), hostname="127.0.0.1", port=port)
c.start()
print("READY", flush=True)
sys.stdin.read()
c.stop()
"#;

struct Server {
    port: u16,
    record: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(mode: &str) -> Server {
        let python = Path::new("/usr/bin/python3");
        assert!(python.is_file(), "/usr/bin/python3 missing");
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("record");
        // The server says READY once its own listener is up; one that could not bind
        // the chosen port (another test took it meanwhile) exits, and the next is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut child = Command::new(python)
                .arg("-c")
                .arg(SERVER)
                .arg(port.to_string())
                .arg(&record)
                .arg(mode)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3");
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
            }
            if line.trim() == "READY" {
                return Server {
                    port,
                    record,
                    child,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the aiosmtpd server did not start (is python3-aiosmtpd installed?)");
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn sasl_settings(password: &str) -> SaslSettings {
    SaslSettings {
        prefix: "smtp".into(),
        enable: true,
        password_maps: format!("inline:{{ {HOST}=tern:{password} }}"),
        sender_dependent: false,
        security_options: vec!["noanonymous".into()],
        tls_security_options: vec!["noanonymous".into()],
        tls_verified_security_options: vec!["noanonymous".into()],
        mechanism_filter: Vec::new(),
        auth_soft_bounce: true,
        send_dummy_mail_auth: false,
        recipient_delimiter: String::new(),
    }
}

/// One session with `mode`'s server under `sasl`, to the last server or not.
async fn session(
    mode: &str,
    sasl: SaslSettings,
    final_server: bool,
) -> (SessionResult, Vec<String>) {
    let server = Server::start(mode);
    let client = SaslClient::new(sasl).expect("sasl client");
    let s = settings(Protocol::Smtp);
    let (tcp, peer) = connect_tcp(
        HOST,
        ([127, 0, 0, 1], server.port).into(),
        Some(Duration::from_secs(5)),
    )
    .await
    .expect("connect");
    let msg = message(&["a@example.com"]);
    let opts = Options {
        keep: false,
        tls: None,
        sasl: Some(Sasl {
            client: &client,
            sender: &msg.sender,
            dest: "[relay.example]:587",
            queue_id: "4ABCDEF",
        }),
    };
    let (r, _) = tokio::time::timeout(
        Duration::from_secs(30),
        run(
            Start::Fresh(Box::new(tcp)),
            &s,
            &peer,
            &msg,
            &attempt(final_server),
            &opts,
        ),
    )
    .await
    .expect("the session ends");
    (r, server.lines())
}

fn sent() -> Vec<session_common::Summary> {
    vec![one(10, "sent", "2.0.0", "250 2.0.0 Ok: queued as SASL")]
}

#[tokio::test]
async fn login_is_the_first_offered_and_authenticates() {
    // aiosmtpd offers "AUTH LOGIN PLAIN": of equal strength, Cyrus takes the first.
    let (r, lines) = session("auth", sasl_settings("s3cret:pw"), true).await;
    assert_eq!(summary(&r), sent());
    assert_eq!(lines[0], "AUTH LOGIN tern ok");
    assert!(
        lines[1].starts_with("MAIL FROM:<sender@example.org>"),
        "{lines:?}"
    );
    assert!(!lines[1].contains("AUTH="), "{lines:?}");
}

#[tokio::test]
async fn plain_when_offered_first_or_filtered() {
    let (r, lines) = session("plainfirst", sasl_settings("s3cret:pw"), true).await;
    assert_eq!(summary(&r), sent());
    assert_eq!(lines[0], "AUTH PLAIN tern ok");
    let mut s = sasl_settings("s3cret:pw");
    s.mechanism_filter = vec!["plain".into()];
    let (r, lines) = session("auth", s, true).await;
    assert_eq!(summary(&r), sent());
    assert_eq!(lines[0], "AUTH PLAIN tern ok");
}

#[tokio::test]
async fn dummy_mail_auth_after_login() {
    let mut s = sasl_settings("s3cret:pw");
    s.send_dummy_mail_auth = true;
    let (r, lines) = session("auth", s, true).await;
    assert_eq!(summary(&r), sent());
    assert!(lines[1].ends_with(" AUTH=<>"), "{lines:?}");
}

#[tokio::test]
async fn wrong_password_defers_with_the_servers_reply() {
    let text = format!(
        "SASL authentication failed; server {HOST}[127.0.0.1] said: \
         535 5.7.8 Authentication credentials invalid"
    );
    let (r, lines) = session("auth", sasl_settings("wrong"), true).await;
    // smtp_sasl_auth_soft_bounce (default yes): 5.7.8 becomes 4.7.8.
    assert_eq!(summary(&r), vec![one(10, "deferred", "4.7.8", &text)]);
    assert!(r.throttle);
    assert_eq!(lines, vec!["AUTH LOGIN tern bad".to_owned()]);
    let status = r.recipients[0].outcome.status();
    assert_eq!(status.mta.as_deref(), Some(HOST));
    assert!(!status.text.contains("wrong"));
    // Not the last server: left for the next one.
    let (r, _) = session("auth", sasl_settings("wrong"), false).await;
    assert_eq!(summary(&r), vec![one(10, "kept", "4.7.8", &text)]);
    // Without soft bounce the 535 bounces.
    let mut s = sasl_settings("wrong");
    s.auth_soft_bounce = false;
    let (r, _) = session("auth", s, true).await;
    assert_eq!(summary(&r), vec![one(10, "bounced", "5.7.8", &text)]);
}

#[tokio::test]
async fn server_without_auth_gets_mail_unauthenticated() {
    let mut s = sasl_settings("s3cret:pw");
    s.send_dummy_mail_auth = true;
    let (r, lines) = session("noauth", s, true).await;
    assert_eq!(summary(&r), sent());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!lines[0].contains("AUTH"), "{lines:?}");
}

#[tokio::test]
async fn no_credentials_for_the_server_means_no_auth() {
    let mut s = sasl_settings("s3cret:pw");
    s.password_maps = "inline:{ other.example=tern:x }".into();
    s.send_dummy_mail_auth = true;
    let (r, lines) = session("auth", s, true).await;
    assert_eq!(summary(&r), sent());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!lines[0].contains("AUTH"), "{lines:?}");
}

#[tokio::test]
async fn credentials_by_next_hop() {
    let mut s = sasl_settings("s3cret:pw");
    s.password_maps = "inline:{ [relay.example]:587=tern:s3cret:pw }".into();
    let (r, lines) = session("auth", s, true).await;
    assert_eq!(summary(&r), sent());
    assert_eq!(lines[0], "AUTH LOGIN tern ok");
}

#[tokio::test]
async fn no_common_mechanism() {
    let text = format!(
        "SASL authentication failed; cannot authenticate to server {HOST}[127.0.0.1]: \
         no mechanism available"
    );
    let (r, lines) = session("crammd5", sasl_settings("s3cret:pw"), true).await;
    assert_eq!(summary(&r), vec![one(10, "deferred", "4.7.0", &text)]);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(r.recipients[0].outcome.status().mta, None);
    // The filter leaves nothing: a warning and Postfix's other text.
    let mut s = sasl_settings("s3cret:pw");
    s.mechanism_filter = vec!["gssapi".into()];
    let (r, _) = session("auth", s, true).await;
    let text = format!(
        "SASL authentication failed: server {HOST}[127.0.0.1] offered no compatible \
         authentication mechanisms for this type of connection security"
    );
    assert_eq!(summary(&r), vec![one(10, "deferred", "4.7.0", &text)]);
    let warnings: Vec<&str> = r.tls_log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        warnings,
        vec![format!(
            "{HOST}[127.0.0.1]:{} offered no supported AUTH mechanisms: 'LOGIN PLAIN'",
            r.relay.rsplit(':').next().unwrap_or_default()
        )]
    );
}

#[tokio::test]
async fn noplaintext_without_tls() {
    // Postfix's default smtp_sasl_security_options.
    let mut s = sasl_settings("s3cret:pw");
    s.security_options = vec!["noplaintext".into(), "noanonymous".into()];
    let (r, lines) = session("auth", s, true).await;
    let text = format!(
        "SASL authentication failed; cannot authenticate to server {HOST}[127.0.0.1]: \
         no mechanism available"
    );
    assert_eq!(summary(&r), vec![one(10, "deferred", "4.7.0", &text)]);
    assert!(lines.is_empty(), "{lines:?}");
}

#[tokio::test]
async fn lookup_error_is_a_local_data_error() {
    let mut s = sasl_settings("s3cret:pw");
    s.password_maps = "fail:sasl".into();
    let (r, _) = session("auth", s, true).await;
    let text = format!("local data error while talking to {HOST}[127.0.0.1]");
    assert_eq!(summary(&r), vec![one(10, "deferred", "4.3.0", &text)]);
    let warnings: Vec<&str> = r.tls_log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        warnings,
        vec!["4ABCDEF: smtp_sasl_password_maps lookup error"]
    );
}
