//! The notifier with real parts: a webhook receiver on loopback (fails the first calls,
//! answers 400, or hangs), a real SMTP server (Python's aiosmtpd, from Debian), and real
//! overseer processes, one of them killed with SIGKILL mid-delivery.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::sink::Sink;
use common::*;
use diesel::RunQueryDsl;
use hmac::{Hmac, Mac};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);
const SECRET: &str = "test-hmac-key";

fn hook_config(sink: &Sink, extra: &str) -> String {
    format!(
        "[notify]\npoll_interval = \"100ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\n\
         max_attempts = 4\n{extra}\n\
         [[notify.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\n\
         timeout = \"1s\"\nheaders = {{ \"X-Team\" = \"ops\" }}\n",
        sink.url
    )
}

fn reminder(o: &TestApp, name: &str, channels: &[&str]) -> Value {
    o.create_job(&
        json!({
            "name": name, "kind": "notify",
            "schedule": {"at": Utc::now().to_rfc3339()},
            "metadata": {"company": "Acme", "contact": "Dana"},
            "payload": {
                "channels": channels,
                "subject": "Follow up with {{ job.metadata.company }}",
                "body": "Write to {{ job.metadata.contact }} ({{ job.name }}, {{ job.metadata.role | default(\"any role\") }})",
            },
        }),
    )
}

fn notifications(o: &TestApp, query: &str) -> Vec<Value> {
    o.get(&format!("/api/v1/notifications{query}"), o.admin())
        .json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn verify(body: &[u8], header: &str) -> bool {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    expected == header
}

#[test]
fn a_reminder_is_rendered_signed_and_retried_until_delivered() {
    let db = TestDb::new();
    let sink = Sink::start();
    sink.fail_first(2);
    let o = TestApp::start(&db, &hook_config(&sink, ""));
    reminder(&o, "follow-up-acme", &["hook"]);

    let sent = wait_for("the reminder sent on the third attempt", T, || {
        let items = notifications(&o, "?event=reminder&state=sent");
        items.into_iter().next()
    });
    assert_eq!(sent["channel"], "hook");
    assert_eq!(sent["attempts"], 3, "{sent}");
    assert_eq!(sent["subject"], "Follow up with Acme");
    assert_eq!(sent["body"], "Write to Dana (follow-up-acme, any role)");
    assert_eq!(
        sent["last_error"], "HTTP 503",
        "the retried failure is kept"
    );

    let reqs = sink.requests();
    assert_eq!(reqs.len(), 3, "two failures, then the delivery");
    let id = sent["id"].as_str().unwrap();
    for r in &reqs {
        assert_eq!(
            r.headers["idempotency-key"], id,
            "one stable key across retries"
        );
        assert_eq!(r.headers["x-team"], "ops");
        assert_eq!(r.headers["x-overseer-event"], "reminder");
        assert!(
            verify(&r.body, &r.headers["x-overseer-signature"]),
            "HMAC verifies"
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["subject"], "Follow up with Acme");
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("Follow up with Acme"),
            "Slack text"
        );
    }
    // The run that queued it succeeded once; a retry or rescue could not queue it twice.
    let runs = o.get("/api/v1/runs?job=follow-up-acme", o.admin()).json();
    assert_eq!(runs["items"][0]["state"], "succeeded");
    assert_eq!(runs["items"][0]["output"]["queued"], 1);
    let m = o.get("/metrics", None).text;
    assert!(
        m.contains("overseer_notifications_total{channel=\"hook\",outcome=\"retry\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("overseer_notifications_total{channel=\"hook\",outcome=\"sent\"} 1"),
        "{m}"
    );
}

#[test]
fn a_4xx_is_permanent_and_408_429_are_not() {
    let db = TestDb::new();
    let sink = Sink::start();
    sink.respond_with(400);
    let o = TestApp::start(&db, &hook_config(&sink, ""));
    reminder(&o, "bad-request", &["hook"]);
    let failed = wait_for("failed after one attempt", T, || {
        notifications(&o, "?state=failed").into_iter().next()
    });
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["last_error"], "HTTP 400");
    assert_eq!(sink.total(), 1, "no retry after a permanent failure");

    sink.respond_with(429);
    reminder(&o, "rate-limited", &["hook"]);
    let failed = wait_for("429 retried until max_attempts", T, || {
        notifications(&o, "?state=failed&event=reminder")
            .into_iter()
            .find(|n| n["attempts"] == 4)
    });
    assert!(
        failed["last_error"].as_str().unwrap().contains("HTTP 429"),
        "{failed}"
    );
    assert_eq!(sink.total(), 1 + 4);
}

#[test]
fn a_failed_job_notifies_through_the_routing_rules() {
    let db = TestDb::new();
    let sink = Sink::start();
    let routes = "[[notify.routes]]\nevents = [\"job.*\"]\nmin_severity = \"error\"\nchannels = [\"hook\"]\n";
    let o = TestApp::start(&db, &hook_config(&sink, routes));
    // An http job against a port nobody listens on, no retries: one job.error (warning, not
    // routed: below min_severity) and one job.failed (error, routed to the hook).
    o.create_job(&json!({
        "name": "site-down", "kind": "http",
        "schedule": {"at": Utc::now().to_rfc3339()},
        "payload": {"url": "http://127.0.0.1:9/health", "timeout": "1s"},
        "policy": {"max_retries": 0},
    }));
    let sent = wait_for("job.failed delivered", T, || {
        notifications(&o, "?state=sent&channel=hook")
            .into_iter()
            .next()
    });
    assert_eq!(sent["event"], "job.failed");
    assert_eq!(sent["severity"], "error");
    assert!(sent["subject"].as_str().unwrap().contains("site-down"));
    let all = notifications(&o, "");
    assert_eq!(all.len(), 1, "job.error is below min_severity: {all:?}");
    let body: Value = serde_json::from_slice(&sink.requests()[0].body).unwrap();
    assert_eq!(body["data"]["job"], "site-down");
}

/// A real SMTP server: aiosmtpd from Debian's python3-aiosmtpd (the test command installs it).
struct Smtp {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Smtp {
    fn start() -> Self {
        Self::start_with(None, false)
    }

    /// With `tls` = (certificate chain PEM, key PEM): STARTTLS required (or, `implicit`, TLS
    /// from the first byte), and AUTH accepting user `mailer` / password `hunter2` only.
    fn start_with(tls: Option<(&Path, &Path)>, implicit: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = r#"
import sys
from email import message_from_bytes
from aiosmtpd.controller import Controller
class H:
    async def handle_DATA(self, server, session, envelope):
        m = message_from_bytes(envelope.content)
        print("MAIL|%s|%s|%s" % (m["Subject"], m["Message-ID"], ",".join(envelope.rcpt_tos)), flush=True)
        return "250 OK"
kw = {}
if len(sys.argv) > 3:
    import ssl
    from aiosmtpd.smtp import AuthResult
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    def auth(server, session, envelope, mechanism, data):
        ok = data.login == b"mailer" and data.password == b"hunter2"
        print("AUTH|%s|%s" % (mechanism, ok), flush=True)
        return AuthResult(success=ok)
    if len(sys.argv) > 4:
        kw = dict(ssl_context=ctx, authenticator=auth, auth_require_tls=False, auth_required=True)
    else:
        kw = dict(tls_context=ctx, require_starttls=True, authenticator=auth, auth_require_tls=True, auth_required=True)
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]), **kw)
c.start()
print("READY", flush=True)
sys.stdin.read()
c.stop()
"#;
        let mut args = vec!["-c".to_string(), script.to_string(), port.to_string()];
        if let Some((cert, key)) = tls {
            args.push(cert.to_string_lossy().into_owned());
            args.push(key.to_string_lossy().into_owned());
            if implicit {
                args.push("implicit".into());
            }
        }
        let mut child = Command::new("/usr/bin/python3")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (Debian's, with python3-aiosmtpd)");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let s = Self { child, port, lines };
        wait_for("aiosmtpd ready", T, || {
            s.lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l == "READY")
                .then_some(())
        });
        s
    }

    fn lines_with(&self, prefix: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn mails(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("MAIL|"))
            .cloned()
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_email_arrives_with_its_subject_and_a_stable_message_id() {
    let db = TestDb::new();
    let smtp = Smtp::start();
    let config = format!(
        "[notify]\npoll_interval = \"100ms\"\n\
         [[notify.channels]]\nname = \"mail\"\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {}\n\
         tls = \"none\"\nfrom = \"overseer <overseer@example.org>\"\nto = [\"me@example.org\"]\ntimeout = \"5s\"\n",
        smtp.port
    );
    let o = TestApp::start(&db, &config);
    reminder(&o, "interview-prep", &["mail"]);
    let mail = wait_for("the email received", T, || smtp.mails().into_iter().next());
    let sent = wait_for("recorded as sent", T, || {
        notifications(&o, "?state=sent&channel=mail")
            .into_iter()
            .next()
    });
    let id = sent["id"].as_str().unwrap();
    assert_eq!(
        mail,
        format!("MAIL|Follow up with Acme|<{id}@overseer>|me@example.org")
    );

    // The test endpoint reaches the same server; an unknown channel is the caller's mistake.
    let a = o.post(
        "/api/v1/notifications/test",
        o.admin(),
        Some(r#"{"channel": "mail", "subject": "ping"}"#),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    wait_for("the test email", T, || {
        smtp.mails()
            .iter()
            .any(|m| m.starts_with("MAIL|ping|"))
            .then_some(())
    });
    let a = o.post(
        "/api/v1/notifications/test",
        o.admin(),
        Some(r#"{"channel": "nope"}"#),
    );
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.json()["error"]["fields"][0]["path"], "channel");
    let a = o.post(
        "/api/v1/notifications/test",
        Some(&o.tokens.operator),
        Some(r#"{"channel": "mail"}"#),
    );
    assert_eq!(a.status, 403, "admin only");
}

#[test]
fn kill_9_during_delivery_loses_nothing_and_repeats_only_with_the_same_key() {
    let db = TestDb::new();
    let sink = Sink::start();
    sink.hang(true);
    let config = hook_config(&sink, "");
    let mut a = TestApp::start(&db, &config);
    for i in 0..5 {
        reminder(&a, &format!("r{i}"), &["hook"]);
    }
    wait_for("5 deliveries in flight (held by the receiver)", T, || {
        let n: i64 = diesel::sql_query(
            "SELECT count(*) AS n FROM notifications WHERE attempts = 1 AND state = 'pending' \
             AND next_attempt_at > now()",
        )
        .get_result::<Count>(&mut db.conn())
        .map(|c| c.n)
        .unwrap_or(0);
        (n == 5).then_some(())
    });
    a.signal(Signal::SIGKILL);
    a.wait_exit(T);
    sink.hang(false);
    // A new process on the same database: the claims expire (channel timeout 1 s + 5 s) and
    // every notification is delivered.
    let b = TestApp::start(&db, &config);
    let sent = wait_for("all 5 sent after the restart", T, || {
        let items = notifications(&b, "?state=sent");
        (items.len() == 5).then_some(items)
    });
    let counts = sink.counts();
    for n in &sent {
        let id = n["id"].as_str().unwrap();
        let seen = counts.get(id).copied().unwrap_or(0);
        assert!(seen >= 1, "{id} delivered");
        assert!(
            n["attempts"].as_i64().unwrap() >= 2,
            "claimed again after the crash: {n}"
        );
    }
    assert!(
        counts
            .keys()
            .all(|k| sent.iter().any(|n| n["id"] == k.as_str())),
        "every request carried the key of one of the 5 notifications: {counts:?}"
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[test]
fn bad_notify_jobs_and_channels_are_refused_with_the_field() {
    let db = TestDb::new();
    let sink = Sink::start();
    let o = TestApp::start(&db, &hook_config(&sink, ""));
    let bad = |payload: Value, path: &str| {
        let body =
            json!({"name": "x", "kind": "notify", "schedule": {"every": "1h"}, "payload": payload});
        let a = o.post("/api/v1/jobs", o.admin(), Some(&body.to_string()));
        assert_eq!(a.status, 422, "{}", a.text);
        let fields = a.json()["error"]["fields"].clone();
        assert!(
            fields.as_array().unwrap().iter().any(|f| f["path"] == path),
            "{path} in {fields}"
        );
    };
    bad(json!({"channels": ["hook"]}), "payload.subject");
    bad(json!({"channels": [], "subject": "x"}), "payload.channels");
    bad(
        json!({"channels": ["nope"], "subject": "x"}),
        "payload.channels.0",
    );
    bad(
        json!({"channels": ["hook"], "subject": "{{ env.SECRET }}"}),
        "payload.subject",
    );
    bad(
        json!({"channels": ["hook"], "subject": "x", "body": "{{ job.name"}),
        "payload.body",
    );
    bad(
        json!({"channels": ["hook"], "subject": "x", "severity": "loud"}),
        "payload.severity",
    );
    let a = o.get("/api/v1/notifications?state=lost", o.admin());
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["error"]["fields"][0]["path"], "state");

    // Configuration mistakes name the key.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "[[notify.routes]]\nevents = [\"*\"]\nchannels = [\"missing\"]\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(
        &["config", "check"],
        &[("OVERSEER_CONFIG", file.path().to_str().unwrap())],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("notify.routes.0.channels.0"), "{err}");
}

#[test]
fn with_the_flag_off_rows_are_kept_and_go_out_once_it_is_on() {
    let db = TestDb::new();
    let sink = Sink::start();
    let config = hook_config(&sink, "");
    let off = TestApp::start(&db, &format!("[flags]\nnotifications = false\n{config}"));
    off.logs.wait_json("the flag is logged at start", T, |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("flag notifications is off"))
    });
    reminder(&off, "while-off", &["hook"]);
    wait_for("the reminder run succeeded", T, || {
        let runs = off.get("/api/v1/runs?job=while-off", off.admin()).json();
        (runs["items"][0]["state"] == "succeeded").then_some(())
    });
    // The run's outbox row was committed with it; with the flag off nobody claims it, however
    // long we look: ten poll intervals (100 ms each) after the row is there. A negative
    // check has to let time pass; the deadline is the thing measured here.
    let since = std::time::Instant::now();
    wait_for("ten poll intervals", T, || {
        (since.elapsed() >= Duration::from_millis(1000)).then_some(())
    });
    let pending = notifications(&off, "?state=pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["attempts"], 0);
    assert_eq!(sink.total(), 0);
    drop(off);

    let on = TestApp::start(&db, &config);
    let sent = wait_for("sent once the flag is on", T, || {
        notifications(&on, "?state=sent").into_iter().next()
    });
    assert_eq!(sent["subject"], "Follow up with Acme");
    assert_eq!(sink.total(), 1);
}

/// The flag switched at runtime, without a restart: off, new rows stay pending round after
/// round; on again, they go out (the notifier read the flag only when it started before).
#[test]
fn the_flag_switched_at_runtime_stops_and_resumes_delivery() {
    let db = TestDb::new();
    let sink = Sink::start();
    let o = TestApp::start(&db, &hook_config(&sink, ""));
    reminder(&o, "before", &["hook"]);
    wait_for("the first reminder sent", T, || {
        (notifications(&o, "?state=sent").len() == 1).then_some(())
    });
    let flag = |enabled: bool| {
        let a = o.put(
            "/api/v1/flags/notifications",
            o.admin(),
            &json!({ "enabled": enabled }).to_string(),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    };
    flag(false);
    o.logs.wait_json("a round saw the flag off", T, |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("flag notifications is off"))
    });
    reminder(&o, "while-off", &["hook"]);
    wait_for("the reminder run succeeded", T, || {
        let runs = o.get("/api/v1/runs?job=while-off", o.admin()).json();
        (runs["items"][0]["state"] == "succeeded").then_some(())
    });
    // A negative check has to let time pass: ten poll intervals (100 ms each) with the row
    // there and nobody claiming it.
    let since = std::time::Instant::now();
    wait_for("ten poll intervals", T, || {
        (since.elapsed() >= Duration::from_millis(1000)).then_some(())
    });
    let pending = notifications(&o, "?state=pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["attempts"], 0);
    assert_eq!(sink.total(), 1);

    flag(true);
    wait_for("sent once the flag is on again", T, || {
        (notifications(&o, "?state=sent").len() == 2).then_some(())
    });
    assert_eq!(sink.total(), 2);
    assert!(notifications(&o, "?state=pending").is_empty());
}

#[test]
fn an_actor_restart_is_notified() {
    let db = TestDb::new();
    let sink = Sink::start();
    let o = TestApp::start(
        &db,
        &format!(
            "[debug]\nfault_injection = true\n{}",
            hook_config(&sink, "")
        ),
    );
    let a = o.post("/api/v1/actors/scheduler/crash", o.admin(), None);
    assert_eq!(a.status, 202, "{}", a.text);
    let sent = wait_for(
        "actor.restarted delivered to the hook and the log",
        T,
        || {
            let items = notifications(&o, "?event=actor.restarted&state=sent");
            (items.len() == 2).then_some(items)
        },
    );
    assert!(sent
        .iter()
        .all(|n| n["subject"] == "actor scheduler crashed and restarted"));
    let body: Value = serde_json::from_slice(&sink.requests()[0].body).unwrap();
    assert_eq!(body["event"], "actor.restarted");
    assert_eq!(body["data"]["actor"], "scheduler");
}

/// A private CA and a server certificate for 127.0.0.1 signed by it (openssl, which Debian's
/// ca-certificates brings); returns (CA PEM, server chain PEM, server key PEM).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=overseer test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

#[test]
fn email_over_starttls_and_smtps_with_auth_verifies_the_server_against_a_private_ca() {
    let db = TestDb::new();
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(tmp.path());
    let smtp = Smtp::start_with(Some((&cert, &key)), false);
    let smtps = Smtp::start_with(Some((&cert, &key)), true);
    let channel = |name: &str, port: u16, tls: &str, ca_line: &str| {
        format!(
            "[[notify.channels]]\nname = \"{name}\"\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             tls = \"{tls}\"\nusername = \"mailer\"\npassword = \"hunter2\"\n{ca_line}\
             from = \"overseer <overseer@example.org>\"\nto = [\"me@example.org\"]\ntimeout = \"5s\"\n",
        )
    };
    let ca_line = format!("ca_file = \"{}\"\n", ca.display());
    let config = format!(
        "[notify]\npoll_interval = \"100ms\"\n{}{}{}",
        channel("private", smtp.port, "starttls", &ca_line),
        channel("untrusted", smtp.port, "starttls", ""),
        channel("smtps", smtps.port, "tls", &ca_line),
    );
    let o = TestApp::start(&db, &config);
    reminder(&o, "over-tls", &["private"]);
    let mail = wait_for("the email received over TLS", T, || {
        smtp.mails().into_iter().next()
    });
    assert!(mail.starts_with("MAIL|Follow up with Acme|"), "{mail}");
    assert!(
        smtp.lines_with("AUTH|")
            .iter()
            .any(|l| l.ends_with("|True")),
        "authenticated: {:?}",
        smtp.lines_with("AUTH|")
    );
    // Without the CA the certificate is not trusted: nothing is sent, the error says why.
    reminder(&o, "not-trusted", &["untrusted"]);
    let row = wait_for("the untrusted delivery retried", T, || {
        notifications(&o, "?channel=untrusted")
            .into_iter()
            .find(|n| n["attempts"].as_i64().unwrap_or(0) >= 1 && !n["last_error"].is_null())
    });
    assert_ne!(row["state"], "sent", "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{row}"
    );
    assert_eq!(smtp.mails().len(), 1, "{:?}", smtp.mails());
    // Implicit TLS (SMTPS) with the same CA.
    reminder(&o, "over-smtps", &["smtps"]);
    let mail = wait_for("the email received over SMTPS", T, || {
        smtps.mails().into_iter().next()
    });
    assert!(mail.starts_with("MAIL|Follow up with Acme|"), "{mail}");
    assert!(
        !o.logs.text().contains("hunter2"),
        "the SMTP password reached the logs"
    );
}
