//! smtp(8) in the daemon against a hostile server (tern_testkit's ScriptedServer as the
//! relayhost): a 421 greeting, a 550 for one recipient of two (one bounced with a notice
//! back to the sender, one sent), a connection dropped after the final dot, a server that
//! stops reading in DATA. Each ends with Postfix's log line and the queue state. Needs
//! `cargo build -p tern-commands`, root and Debian's Postfix (smtp-sink).

mod relay_util;

use std::time::{Duration, Instant};

use relay_util::{Instance, lines};
use tern_queue::{QueueLayout, QueueName};
use tern_testkit::peers::{ScriptedServer, Step, expect, send, smtp_sink};
use tern_testkit::support::smtplib_send;

/// Tern relaying to `server` (relayhost), with the sender's domain `sender.test` sent to
/// `notices` (a sink port) so that bounce notices have somewhere to go.
fn tern_for(server: u16, notices: u16, extra: &str) -> Instance {
    Instance::start(
        &format!(
            "relayhost = [127.0.0.1]:{server}\n\
             transport_maps = inline:{{ sender.test=smtp:[127.0.0.1]:{notices} }}\n{extra}"
        ),
        "",
        &[],
    )
}

fn handshake() -> Vec<Step> {
    vec![
        send("220 hostile.example ESMTP"),
        expect("EHLO mx.example.test"),
        send("250 hostile.example"),
    ]
}

/// Whether message `id` is in queue `q`, waiting up to 10 s for it to get there.
fn lands_in(t: &Instance, id: &str, q: QueueName) -> bool {
    let layout = QueueLayout::new(t.t.queue_dir());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let l = tern_queue::scan(&layout, q).expect("scan");
        if l.entries.iter().any(|e| e.id.as_str() == id) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn greeting_421_defers() {
    let server = ScriptedServer::start(vec![
        send("421 4.3.2 hostile.example Service shutting down"),
        expect("QUIT"),
        Step::Close,
    ]);
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let tern = tern_for(server.port, sink.port, "");
    let id = smtplib_send(
        tern.t.port,
        "alice@sender.test",
        &["bob@example.com"],
        "Subject: t\r\n\r\nx\r\n",
    );
    let log = tern.wait(&format!("{id}: to=<bob@example.com>"), 1);
    assert_eq!(
        lines(&log, "postfix/smtp", &id),
        vec![format!(
            "QID: to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:{}, delay=N, delays=N, \
             dsn=4.3.2, status=deferred (host 127.0.0.1[127.0.0.1] refused to talk to me: \
             421 4.3.2 hostile.example Service shutting down)",
            server.port
        )],
        "{log}"
    );
    assert!(lands_in(&tern, &id, QueueName::Deferred), "{log}");
    let t = server.finish();
    assert_eq!(t.error, None, "{:?}", t.lines);
}

#[test]
fn one_recipient_refused_one_sent_and_a_notice() {
    let mut script = handshake();
    script.extend([
        expect("MAIL FROM:<alice@sender.test>"),
        send("250 2.1.0 Ok"),
        expect("RCPT TO:<a@example.com>"),
        send("250 2.1.5 Ok"),
        expect("RCPT TO:<b@example.com>"),
        send("550 5.1.1 <b@example.com>: Recipient address rejected: no such user"),
        expect("DATA"),
        send("354 go ahead"),
        Step::ReadData,
        send("250 2.0.0 Ok: queued as HOSTILE1"),
        expect("QUIT"),
        send("221 2.0.0 Bye"),
        Step::Close,
    ]);
    let server = ScriptedServer::start(script);
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let tern = tern_for(server.port, sink.port, "");
    let id = smtplib_send(
        tern.t.port,
        "alice@sender.test",
        &["a@example.com", "b@example.com"],
        "Subject: two\r\n\r\nfor two\r\n",
    );
    let log = tern.wait(&format!("{id}: removed"), 1);
    let relay = format!("127.0.0.1[127.0.0.1]:{}", server.port);
    let got = lines(&log, "postfix/smtp", &id);
    assert!(
        got.contains(&format!(
            "QID: to=<a@example.com>, relay={relay}, delay=N, delays=N, dsn=2.0.0, \
             status=sent (250 2.0.0 Ok: queued as HOSTILE1)"
        )),
        "{log}"
    );
    assert!(
        got.contains(&format!(
            "QID: to=<b@example.com>, relay={relay}, delay=N, delays=N, dsn=5.1.1, \
             status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <b@example.com>: \
             Recipient address rejected: no such user (in reply to RCPT TO command))"
        )),
        "{log}"
    );
    // The notice goes back to the sender (through the sink for sender.test).
    let notice = log
        .lines()
        .find_map(|l| l.split_once(&format!("{id}: sender non-delivery notification: ")))
        .map(|(_, n)| n.trim().to_owned())
        .expect("notice line");
    let nlog = tern.wait(&format!("{notice}: to=<alice@sender.test>"), 1);
    assert!(
        lines(&nlog, "postfix/smtp", &notice)
            .iter()
            .any(|l| l.contains("status=sent (250 2.0.0 Ok)")),
        "{nlog}"
    );
    let t = server.finish();
    assert_eq!(t.error, None, "{:?}", t.lines);
    assert!(String::from_utf8_lossy(&t.data[0]).contains("for two"));
}

#[test]
fn dropped_after_the_dot_defers() {
    let mut script = handshake();
    script.extend([
        expect("MAIL FROM:"),
        send("250 2.1.0 Ok"),
        expect("RCPT TO:"),
        send("250 2.1.5 Ok"),
        expect("DATA"),
        send("354 go ahead"),
        Step::ReadData,
        Step::Close,
    ]);
    let server = ScriptedServer::start(script);
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let tern = tern_for(server.port, sink.port, "");
    let id = smtplib_send(
        tern.t.port,
        "alice@sender.test",
        &["bob@example.com"],
        "Subject: t\r\n\r\nx\r\n",
    );
    let log = tern.wait(&format!("{id}: to=<bob@example.com>"), 1);
    assert_eq!(
        lines(&log, "postfix/smtp", &id),
        vec![format!(
            "QID: to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:{}, delay=N, delays=N, \
             dsn=4.4.2, status=deferred (lost connection with 127.0.0.1[127.0.0.1] while \
             sending end of data -- message may be sent more than once)",
            server.port
        )],
        "{log}"
    );
    assert!(lands_in(&tern, &id, QueueName::Deferred), "{log}");
}

#[test]
fn server_that_stops_reading_in_data_times_out() {
    let mut script = handshake();
    script.extend([
        expect("MAIL FROM:"),
        send("250 2.1.0 Ok"),
        expect("RCPT TO:"),
        send("250 2.1.5 Ok"),
        expect("DATA"),
        send("354 go ahead"),
        // Reads nothing more: the client's writes stall once the socket buffers fill.
        Step::Sleep(Duration::from_secs(15)),
        Step::Close,
    ]);
    let server = ScriptedServer::start(script);
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let tern = tern_for(
        server.port,
        sink.port,
        "smtp_data_xfer_timeout = 2s\nmessage_size_limit = 60000000",
    );
    // 24 MB: more than loopback's socket buffers hold.
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=60)
body = ("x" * 998 + "\r\n") * 24000
code, text = s.ehlo("client.example")
s.mail("alice@sender.test")
s.rcpt("bob@example.com")
code, text = s.data(("Subject: big\r\n\r\n" + body).encode())
assert code == 250, text
print(text.decode().rsplit(" ", 1)[1])
s.quit()
"#,
        port = tern.t.port
    );
    let id = tern_testkit::support::python(&script).trim().to_owned();
    let log = tern.wait(&format!("{id}: to=<bob@example.com>"), 1);
    assert_eq!(
        lines(&log, "postfix/smtp", &id),
        vec![format!(
            "QID: to=<bob@example.com>, relay=127.0.0.1[127.0.0.1]:{}, delay=N, delays=N, \
             dsn=4.4.2, status=deferred (conversation with 127.0.0.1[127.0.0.1] timed out \
             while sending message body)",
            server.port
        )],
        "{log}"
    );
    assert!(lands_in(&tern, &id, QueueName::Deferred), "{log}");
}
