//! Operations: the release binary is static and the image runs as a
//! non-root user; SIGTERM and Ctrl-C stop the real binary gracefully;
//! `/metrics`, JSON logs and `--help`; login throttling behind a trusted
//! proxy; backups taken while the server keeps changing files.
//!
//! Tests marked "binary" run `latch` itself (`CARGO_BIN_EXE_latch`) as a
//! child process on a free port, so signals and exit codes are real.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::common::binary::{Server, latch};
use crate::common::live::ws_connect;
use crate::common::{
    self, ADMIN_PASSWORD, Client, TestApp, USER_PASSWORD, expect_error, free_port, git_fsck,
    have_tool, metric, require_all, text,
};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// The real binary as a child process.

/// `latch serve` on `data` with `args` and `envs`, logging at info (the
/// JSON log test reads request lines) to `server.log` beside `data`.
async fn start(data: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
    let log = data.parent().expect("data has a parent").join("server.log");
    let envs: Vec<(&str, &str)> = [("LATCH_LOG", "info")]
        .into_iter()
        .chain(envs.iter().copied())
        .collect();
    Server::start_with(data, &log, args, &envs).await
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    latch()
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run latch")
}

/// redb calls the repair callback when a file was not closed cleanly.
fn assert_closed_cleanly(db: &Path) {
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    let database = redb::Builder::new()
        .set_repair_callback(move |_| flag.store(true, Ordering::SeqCst))
        .create(db)
        .expect("open the database after shutdown");
    drop(database);
    assert!(
        !repaired.load(Ordering::SeqCst),
        "the database needed repair: it was not closed cleanly"
    );
}

// ---------------------------------------------------------------------------
// Live connections as a browser makes them.

/// Reads an SSE stream to its end: Ok(bytes) when it ended properly.
async fn read_sse_until_end(client: &Client) -> tokio::task::JoinHandle<Result<usize, String>> {
    let mut resp = client
        .http
        .get(client.url("/events"))
        .send()
        .await
        .expect("GET /events");
    assert_eq!(resp.status(), 200, "SSE accepted");
    tokio::spawn(async move {
        let mut total = 0;
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => total += bytes.len(),
                Ok(None) => return Ok(total),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
}

// ---------------------------------------------------------------------------
// Graceful shutdown.

/// What one client saw acknowledged on one file, in order.
#[derive(Debug, Default)]
struct Ledger {
    id: u64,
    revision: String,
    locked: bool,
    heads: Vec<String>,
    /// A request got no answer: the server may or may not have applied it.
    unanswered: bool,
}

fn next_minor(revision: &str) -> String {
    let (major, minor) = revision.split_once('.').expect("MAJOR.MINOR");
    format!("{major}.{}", minor.parse::<u64>().expect("minor") + 1)
}

/// Checks out and checks in `id` over and over until the server goes away.
async fn churn(client: Client, id: u64, stop: Arc<AtomicBool>) -> Ledger {
    let mut ledger = Ledger {
        id,
        revision: "1.0".into(),
        ..Ledger::default()
    };
    let csrf = client.csrf.clone().unwrap_or_default();
    for round in 0u64.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let resp = client
            .http
            .post(client.url(&format!("/api/files/{id}/checkout")))
            .header("X-CSRF-Token", &csrf)
            .json(&json!({"comment": format!("round {round}")}))
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == 200 => ledger.locked = true,
            Ok(r) => panic!("checkout of {id} answered {}", r.status()),
            Err(_) => {
                ledger.unanswered = true;
                break;
            }
        }
        let form = Form::new()
            .text("message", format!("round {round}"))
            .text("bump", "minor")
            .part(
                "file",
                Part::bytes(format!("file {id}, round {round}").into_bytes()).file_name("f.bin"),
            );
        let resp = client
            .http
            .post(client.url(&format!("/api/files/{id}/checkin")))
            .header("X-CSRF-Token", &csrf)
            .multipart(form)
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == 200 => {
                let body: Value = match r.json().await {
                    Ok(b) => b,
                    Err(_) => {
                        ledger.unanswered = true;
                        break;
                    }
                };
                ledger.locked = false;
                ledger.revision = body["revision"].as_str().expect("revision").into();
                ledger
                    .heads
                    .push(body["head"].as_str().expect("head").into());
            }
            Ok(r) => panic!("checkin of {id} answered {}", r.status()),
            Err(_) => {
                ledger.unanswered = true;
                break;
            }
        }
    }
    ledger
}

/// A check-in whose body arrives over about `duration`.
/// How many pieces [`slow_checkin`] sends its body in.
const SLOW_CHUNKS: u8 = 10;

/// A check-in whose body trickles in over `duration` (the slowness is the
/// point: it is in flight when the server is told to stop); `sent` counts
/// the pieces handed to the connection so far.
async fn slow_checkin(
    client: Client,
    id: u64,
    duration: Duration,
    sent: Arc<AtomicU8>,
) -> Result<Value, String> {
    let pause = duration / u32::from(SLOW_CHUNKS);
    let chunks = futures_util::stream::unfold(0u8, move |i| {
        let sent = sent.clone();
        async move {
            if i == SLOW_CHUNKS {
                return None;
            }
            tokio::time::sleep(pause).await;
            sent.fetch_add(1, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(vec![b'a' + i; 4096]), i + 1))
        }
    });
    let part = Part::stream(reqwest::Body::wrap_stream(chunks)).file_name("slow.bin");
    let form = Form::new()
        .text("message", "Slow upload across the restart")
        .text("bump", "major")
        .part("file", part);
    let resp = client
        .http
        .post(client.url(&format!("/api/files/{id}/checkin")))
        .header("X-CSRF-Token", client.csrf.clone().unwrap_or_default())
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

fn slow_content() -> Vec<u8> {
    (0..10u8).flat_map(|i| vec![b'a' + i; 4096]).collect()
}

/// Binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_closes_live_connections_finishes_requests_and_keeps_every_acknowledged_change() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = start(&data, &["--shutdown-grace", "30s"], &[]).await;
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    admin.create_user("alice", "user").await;
    admin.create_user("bob", "user").await;
    let alice = server.login("alice", USER_PASSWORD).await;
    let bob = server.login("bob", USER_PASSWORD).await;

    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            alice
                .upload_ok(&format!("parts/churn-{i}.mcam"), b"first")
                .await,
        );
    }
    let slow_id = alice.upload_ok("parts/slow.mcam", b"first").await;
    assert_eq!(alice.checkout(slow_id, "slow one").await.status(), 200);

    let ws = ws_connect(&server.base, &alice, "").await.until_closed();
    let sse = read_sse_until_end(&bob).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let client = if n % 2 == 0 {
            alice.clone()
        } else {
            bob.clone()
        };
        workers.push(tokio::spawn(churn(client, *id, stop.clone())));
    }
    let slow_sent = Arc::new(AtomicU8::new(0));
    let slow = tokio::spawn(slow_checkin(
        alice.clone(),
        slow_id,
        Duration::from_millis(2000),
        slow_sent.clone(),
    ));

    // Traffic is flowing and the slow body is half sent when the signal comes.
    common::wait_until("half the slow body to be sent", || {
        let sent = slow_sent.clone();
        async move { sent.load(Ordering::SeqCst) >= SLOW_CHUNKS / 2 }
    })
    .await;
    common::wait_until("a churned check-in to be acknowledged", || async {
        for id in &ids {
            if alice.file(*id).await["revision"] != "1.0" {
                return true;
            }
        }
        false
    })
    .await;
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(25)).await;
    let took = signalled.elapsed();
    stop.store(true, Ordering::SeqCst);
    let log = server.log_text();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(
        took < Duration::from_secs(10),
        "shutdown took {took:?}, as if it waited out the grace period:\n{log}"
    );

    let close = tokio::time::timeout(Duration::from_secs(5), ws)
        .await
        .expect("the WebSocket was closed")
        .expect("reader");
    assert_eq!(
        close,
        Some(1012),
        "the WebSocket is closed with 1012 (restart)"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), sse)
        .await
        .expect("the SSE stream ended")
        .expect("reader");
    assert!(ended.is_ok(), "the SSE stream ended properly: {ended:?}");

    let slow = slow.await.expect("slow task");
    let slow = slow.unwrap_or_else(|e| panic!("the check-in in flight finished: {e}\n{log}"));
    let mut ledgers = Vec::new();
    for w in workers {
        ledgers.push(w.await.expect("worker"));
    }
    let acknowledged: usize = ledgers.iter().map(|l| l.heads.len()).sum();
    assert!(
        acknowledged > 0,
        "some check-ins were acknowledged before the signal"
    );

    assert_closed_cleanly(&data.join("latch.redb"));

    let mut server = start(&data, &[], &[]).await;
    let alice = server.login("alice", USER_PASSWORD).await;
    for ledger in &ledgers {
        let file = alice.file(ledger.id).await;
        let revision = file["revision"].as_str().expect("revision");
        let locked = file["state"] == "locked";
        if ledger.unanswered {
            // The last request may have been applied without an answer.
            assert!(
                revision == ledger.revision || revision == next_minor(&ledger.revision),
                "file {}: revision {revision}, acknowledged {}",
                ledger.id,
                ledger.revision
            );
        } else {
            assert_eq!(revision, ledger.revision, "file {}", ledger.id);
            assert_eq!(locked, ledger.locked, "file {}", ledger.id);
        }
        let history: HashSet<String> = alice
            .history(ledger.id)
            .await
            .iter()
            .filter_map(|v| v["commit"].as_str().map(str::to_string))
            .collect();
        for head in &ledger.heads {
            assert!(
                history.contains(head),
                "acknowledged commit {head} survived"
            );
        }
    }
    let file = alice.file(slow_id).await;
    assert_eq!(file["revision"], "2.0");
    assert_eq!(file["state"], "available");
    assert_eq!(file["head"], slow["head"]);
    assert_eq!(alice.content(slow_id, None).await, slow_content());
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Metrics, logs, help.

/// Checks the text against the exposition format: every sample belongs to a
/// family declared with `# TYPE`, labels are quoted, values are numbers.
fn assert_exposition(text: &str) {
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut families = HashSet::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type {kind}"
            );
            assert!(families.insert(name.to_string()), "{name} declared once");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample and value");
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "value in {line}"
        );
        let name = series.split('{').next().unwrap_or(series);
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "name in {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(*f)))
            .unwrap_or(name);
        assert!(
            families.contains(family),
            "{name} has a # TYPE line before it"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect("labels in braces");
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                assert!(v.starts_with('"') && v.ends_with('"'), "quoted: {pair}");
            }
        }
    }
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let resp = http.get(url).send().await.expect("GET metrics");
    assert_eq!(resp.status(), 200);
    let ct = common::header(&resp, "content-type");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.text().await.expect("text")
}

/// Binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_operations_connections_and_latency_for_admins_and_on_the_metrics_address() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let metrics_port = free_port();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let mut server = start(
        &data,
        &["--metrics-bind", &format!("127.0.0.1:{metrics_port}")],
        &[("LATCH_LOG_FORMAT", "json")],
    )
    .await;
    let anonymous = reqwest::Client::new();
    let main_url = format!("{}/metrics", server.base);

    // Admin-only on the main address; open on the metrics address.
    let resp = anonymous.get(&main_url).send().await.expect("GET");
    assert_eq!(resp.status(), 401);
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    admin.create_user("alice", "user").await;
    admin.create_user("bob", "user").await;
    let alice = server.login("alice", USER_PASSWORD).await;
    let bob = server.login("bob", USER_PASSWORD).await;
    expect_error(alice.get("/metrics").await, 403).await;
    let token = admin.new_token("ops test").await;
    let resp = anonymous
        .get(&main_url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let body = scrape(&admin.http, &main_url).await;
    assert_exposition(&body);

    // One of each outcome.
    let id = alice.upload_ok("parts/m.mcam", &[7u8; 1000]).await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    expect_error(bob.checkout(id, "").await, 409).await;
    expect_error(bob.cancel(id).await, 403).await;
    expect_error(bob.override_lock(id).await, 403).await;
    assert_eq!(
        alice
            .checkin(id, &[8u8; 2500], "v2", "minor")
            .await
            .status(),
        200
    );
    expect_error(alice.checkin(id, &[9u8; 10], "v3", "minor").await, 409).await;

    let ws = ws_connect(&server.base, &alice, "").await;
    let sse = bob
        .http
        .get(bob.url("/events"))
        .send()
        .await
        .expect("GET /events");
    assert_eq!(sse.status(), 200);

    let mut body = String::new();
    for _ in 0..100 {
        body = scrape(&anonymous, &metrics_url).await;
        if metric(&body, "latch_live_connections{transport=\"websocket\"}") == Some(1.0)
            && metric(&body, "latch_live_connections{transport=\"sse\"}") == Some(1.0)
            && metric(&body, "latch_events_published_total") == Some(3.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_exposition(&body);
    let expect = [
        ("latch_live_connections{transport=\"websocket\"}", 1.0),
        ("latch_live_connections{transport=\"sse\"}", 1.0),
        ("latch_events_published_total", 3.0),
        (
            "latch_operations_total{kind=\"upload\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "latch_operations_total{kind=\"checkout\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "latch_operations_total{kind=\"checkout\",outcome=\"conflict\"}",
            1.0,
        ),
        (
            "latch_operations_total{kind=\"cancel\",outcome=\"forbidden\"}",
            1.0,
        ),
        (
            "latch_operations_total{kind=\"override\",outcome=\"forbidden\"}",
            1.0,
        ),
        (
            "latch_operations_total{kind=\"checkin\",outcome=\"ok\"}",
            1.0,
        ),
        (
            "latch_operations_total{kind=\"checkin\",outcome=\"conflict\"}",
            1.0,
        ),
        (
            "latch_operations_total{kind=\"delete\",outcome=\"ok\"}",
            0.0,
        ),
        ("latch_checkin_bytes_total", 2500.0),
        ("latch_upload_bytes_total", 1000.0),
    ];
    for (series, value) in expect {
        assert_eq!(metric(&body, series), Some(value), "{series} in\n{body}");
    }
    // Requests so far: at least the ones above, all in the histogram.
    let count = metric(&body, "latch_http_request_duration_seconds_count").expect("count");
    assert!(count >= 15.0, "{count} requests counted");
    let inf = metric(
        &body,
        "latch_http_request_duration_seconds_bucket{le=\"+Inf\"}",
    );
    assert_eq!(inf, Some(count));
    let buckets: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("latch_http_request_duration_seconds_bucket"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative buckets"
    );
    assert!(metric(&body, "latch_http_request_duration_seconds_sum").unwrap_or(0.0) > 0.0);
    let responses_4xx = metric(&body, "latch_http_responses_total{class=\"4xx\"}");
    assert!(
        responses_4xx >= Some(6.0),
        "4xx responses: {responses_4xx:?}"
    );

    // Ctrl-C stops it as cleanly as SIGTERM, with nothing in flight to wait for.
    drop(sse);
    let ws = ws.until_closed();
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status {status}");
    let close = tokio::time::timeout(Duration::from_secs(5), ws)
        .await
        .expect("the WebSocket was closed")
        .expect("reader");
    assert_eq!(
        close,
        Some(1012),
        "closed with 1012 before the process exited"
    );
    assert_closed_cleanly(&data.join("latch.redb"));

    // LATCH_LOG_FORMAT=json: one JSON object per line, requests included.
    let log = server.log_text();
    let mut requests = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["fields"]["message"] == "request" && v["fields"]["path"] == "/metrics" {
            assert!(v["fields"]["status"].is_u64() && v["fields"]["ms"].is_number());
            requests += 1;
        }
    }
    assert!(requests >= 2, "requests are logged:\n{log}");
}

/// Binary.
#[test]
fn help_gives_every_flag_an_environment_variable() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["backup", "--help"],
        vec!["user", "add", "--help"],
        vec!["healthcheck", "--help"],
    ] {
        let out = run(&args, &[]);
        assert!(out.status.success(), "latch {args:?}");
        let help = text(&out.stdout);
        // Each option's block runs from its `--flag` line to the next one.
        let mut blocks: Vec<String> = Vec::new();
        for line in help.lines() {
            let t = line.trim_start();
            if t.starts_with("--") || t.starts_with("-h, --") || t.starts_with("-V, --") {
                blocks.push(String::new());
            }
            if let Some(b) = blocks.last_mut() {
                b.push_str(line);
                b.push('\n');
            }
        }
        for block in &blocks {
            let flag = block
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap_or("");
            if ["--help", "--version", "--admin"].contains(&flag) {
                continue;
            }
            assert!(
                block.contains("[env: LATCH_"),
                "latch {args:?}: {flag} has no environment variable:\n{block}"
            );
        }
    }
    let help = text(&run(&["--help"], &[]).stdout);
    for word in [
        "serve",
        "backup",
        "healthcheck",
        "user",
        "--metrics-bind",
        "LATCH_LOG_FORMAT",
    ] {
        assert!(help.contains(word), "--help mentions {word}");
    }
}

// ---------------------------------------------------------------------------
// Behind a proxy.

async fn failed_login(app: &TestApp, username: &str, forwarded_for: &str) -> u16 {
    reqwest::Client::new()
        .post(app.url("/api/login"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"username": username, "password": "wrong password"}))
        .send()
        .await
        .expect("POST /api/login")
        .status()
        .as_u16()
}

/// Fails logins (a new username each time, so only the address budget
/// runs out) until one is refused with 429; returns how many failed first.
async fn failures_until_throttled(app: &TestApp, forwarded_for: impl Fn(u32) -> String) -> u32 {
    for i in 0..500 {
        match failed_login(app, &format!("ghost{i}"), &forwarded_for(i)).await {
            401 => continue,
            429 => return i,
            other => panic!("a failed login answered {other}"),
        }
    }
    panic!("500 failed logins from one address were never throttled");
}

#[tokio::test]
async fn login_throttling_keys_on_the_forwarded_address_only_when_the_peer_is_a_trusted_proxy() {
    // Behind a trusted proxy, each client address has its own budget.
    let app = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let budget = failures_until_throttled(&app, |_| "203.0.113.7".into()).await;
    assert!(budget > 0);
    // The proxy appends the address it saw; what the client wrote before it is not believed.
    assert_eq!(
        failed_login(&app, "spoof1", "198.51.100.1, 203.0.113.7").await,
        429
    );
    assert_eq!(failed_login(&app, "other1", "203.0.113.8").await, 401);
    assert_eq!(
        failed_login(&app, "spoof2", "203.0.113.7, 198.51.100.1").await,
        401
    );

    // From an untrusted peer the header is ignored: the peer is the client,
    // however many addresses the header claims.
    let app = TestApp::spawn().await;
    let spent = failures_until_throttled(&app, |i| format!("203.0.113.{}", i % 250)).await;
    assert_eq!(
        spent, budget,
        "one budget for the peer, whatever the header says"
    );
}

// ---------------------------------------------------------------------------
// Backups.

fn git_has(vault: &Path, commit: &str) -> bool {
    common::git(vault, &["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .is_some_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_files_change_starts_with_every_file_lock_and_version() {
    if !have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;

    let a = alice.upload_ok("parts/a.mcam", b"a 1.0").await;
    assert_eq!(alice.checkout(a, "").await.status(), 200);
    assert_eq!(
        alice.checkin(a, b"a 1.1", "one", "minor").await.status(),
        200
    );
    assert_eq!(alice.checkout(a, "").await.status(), 200);
    assert_eq!(
        alice.checkin(a, b"a 2.0", "two", "major").await.status(),
        200
    );
    let b = bob.upload_ok("cad/b.step", b"b").await;
    assert_eq!(bob.checkout(b, "fixing the post").await.status(), 200);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let c = alice.upload_ok("art/big.psd", &big).await;
    let gone = alice.upload_ok("tmp/gone.txt", b"x").await;
    assert_eq!(
        admin.delete(&format!("/api/files/{gone}")).await.status(),
        204
    );
    let busy = alice.upload_ok("parts/busy.mcam", b"busy").await;

    // Keep changing a file while the backups are taken.
    let stop = Arc::new(AtomicBool::new(false));
    let churner = tokio::spawn(churn(alice.clone(), busy, stop.clone()));
    common::wait_until("the churn to change the busy file", || async {
        alice.file(busy).await["revision"] != "1.0"
    })
    .await;
    let busy_before = alice.file(busy).await;

    let tmp = tempfile::tempdir().expect("tmp");
    let mut copies = Vec::new();
    for n in 0..2 {
        let dir = tmp.path().join(format!("backup-{n}"));
        let resp = admin
            .post_json("/api/admin/backup", &json!({"dir": dir}))
            .await;
        let status = resp.status();
        let report: Value = resp.json().await.expect("json");
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["files"], 4, "{report}");
        assert!(report["objects"].as_u64() > Some(0));
        copies.push(dir);
    }
    stop.store(true, Ordering::SeqCst);
    let ledger = churner.await.expect("churn");
    assert!(
        !ledger.heads.is_empty(),
        "the file kept changing during the backups"
    );

    for dir in &copies {
        git_fsck(&dir.join("vault.git")).unwrap_or_else(|e| panic!("{e}"));
        let mut copy = TestApp::start(dir, |_| {}).await;
        let alice = copy.login("alice", common::USER_PASSWORD).await;
        let files = alice.files().await;
        let paths: HashSet<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
        assert_eq!(
            paths,
            HashSet::from([
                "parts/a.mcam",
                "cad/b.step",
                "art/big.psd",
                "parts/busy.mcam"
            ])
        );
        let fa = alice.file(a).await;
        assert_eq!(fa["revision"], "2.0");
        assert_eq!(alice.content(a, None).await, b"a 2.0");
        let history = alice.history(a).await;
        assert_eq!(history.len(), 3);
        let first = history[2]["commit"].as_str().expect("commit");
        assert_eq!(alice.content(a, Some(first)).await, b"a 1.0");
        let fb = alice.file(b).await;
        assert_eq!(fb["state"], "locked");
        assert_eq!(fb["lock"]["owner"], "bob");
        assert_eq!(fb["lock"]["comment"], "fixing the post");
        assert_eq!(alice.content(c, None).await, big);
        // The busy file is at least where it was when the backup began, and
        // its record names a commit the copied vault holds.
        let fbusy = alice.file(busy).await;
        let (before, after) = (
            busy_before["revision"].as_str().unwrap_or_default(),
            fbusy["revision"].as_str().unwrap_or_default(),
        );
        let minor = |r: &str| r.split_once('.').and_then(|(_, m)| m.parse::<u64>().ok());
        assert!(
            minor(after) >= minor(before),
            "{after} is not older than {before}"
        );
        assert!(git_has(
            &dir.join("vault.git"),
            fbusy["head"].as_str().unwrap_or("")
        ));
        assert!(!alice.content(busy, None).await.is_empty());
        // The copy takes changes of its own.
        assert_eq!(alice.checkout(c, "after restore").await.status(), 200);
        copy.stop().await;
    }

    // Refusals: a used directory, a relative one, a non-admin.
    let used = copies[0].to_string_lossy().into_owned();
    expect_error(
        admin
            .post_json("/api/admin/backup", &json!({"dir": used}))
            .await,
        409,
    )
    .await;
    expect_error(
        admin
            .post_json("/api/admin/backup", &json!({"dir": "relative/dir"}))
            .await,
        422,
    )
    .await;
    let fresh = tmp.path().join("by-alice");
    expect_error(
        alice
            .post_json("/api/admin/backup", &json!({"dir": fresh}))
            .await,
        403,
    )
    .await;
    assert!(!fresh.exists());
}

/// Binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latch_backup_asks_the_running_server_and_copies_a_stopped_one_directly() {
    if !have_tool("git", "git") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut server = start(&data, &[], &[]).await;
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    admin.create_user("alice", "user").await;
    let alice = server.login("alice", USER_PASSWORD).await;
    let id = alice.upload_ok("parts/cli.mcam", b"cli").await;
    assert_eq!(
        alice.checkout(id, "held across backups").await.status(),
        200
    );
    let token = admin.new_token("ops test").await;
    let bind = format!("127.0.0.1:{}", server.port);
    let data_s = data.to_string_lossy().into_owned();

    let online = tmp.path().join("online");
    let online_s = online.to_string_lossy().into_owned();
    let out = run(
        &["backup", &online_s, "--data", &data_s, "--bind", &bind],
        &[],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--token"), "says a token is needed: {err}");

    let out = run(
        &["backup", &online_s, "--data", &data_s, "--bind", &bind],
        &[("LATCH_TOKEN", &token)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Backup written"),
        "{}",
        text(&out.stdout)
    );

    server.stop().await;
    let offline = tmp.path().join("offline");
    let offline_s = offline.to_string_lossy().into_owned();
    let out = run(&["backup", &offline_s, "--data", &data_s], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    for dir in [&online, &offline] {
        git_fsck(&dir.join("vault.git")).unwrap_or_else(|e| panic!("{e}"));
        let mut copy = start(dir, &[], &[]).await;
        let alice = copy.login("alice", USER_PASSWORD).await;
        let file = alice.file(id).await;
        assert_eq!(file["state"], "locked", "{}", dir.display());
        assert_eq!(file["lock"]["comment"], "held across backups");
        assert_eq!(alice.content(id, None).await, b"cli");
        copy.stop().await;
    }
}

// ---------------------------------------------------------------------------
// The static binary and the image.

/// Whether an ELF executable needs a dynamic loader or shared libraries:
/// a `PT_INTERP` program header, or `DT_NEEDED` entries in `PT_DYNAMIC`
/// (a static-pie binary has a dynamic section for its own relocations,
/// but needs nothing).
fn elf_dynamic_needs(bytes: &[u8]) -> Result<Vec<String>, String> {
    let u16_at = |o: usize| -> Result<u64, String> {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
            .ok_or_else(|| "truncated".to_string())
    };
    let u32_at = |o: usize| -> Result<u64, String> {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as u64)
            .ok_or_else(|| "truncated".to_string())
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "truncated".to_string())
    };
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let mut needs = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(ph)? {
            3 => needs.push("PT_INTERP (a dynamic loader)".to_string()),
            2 => {
                let (offset, size) = (u64_at(ph + 8)? as usize, u64_at(ph + 32)? as usize);
                for entry in (offset..offset + size).step_by(16) {
                    match u64_at(entry)? {
                        0 => break,
                        1 => needs.push("DT_NEEDED (a shared library)".to_string()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(needs)
}

/// The static binary `.ci/run` links from the test build, if any.
fn static_binary() -> Option<PathBuf> {
    const HOW: &str = "cargo rustc --bin latch -- -C target-feature=+crt-static \
                       -C strip=debuginfo && cp target/debug/latch target/static/latch \
                       (or the release build, as the Dockerfile makes it)";
    match std::env::var_os("LATCH_STATIC_BINARY") {
        Some(p) => Some(PathBuf::from(p)),
        None if require_all() => {
            panic!("LATCH_STATIC_BINARY is required (LATCH_REQUIRE_ALL=1): build it with {HOW}")
        }
        None => {
            eprintln!(
                "SKIPPED: LATCH_STATIC_BINARY is not set; build the static binary with {HOW} and point it there"
            );
            None
        }
    }
}

#[test]
fn the_elf_check_tells_a_dynamic_binary_from_a_static_one() {
    // The test binary itself is dynamically linked.
    let me = std::env::current_exe().expect("exe");
    let needs = elf_dynamic_needs(&std::fs::read(me).expect("read")).expect("ELF");
    assert!(!needs.is_empty(), "a normal build needs the loader");
    assert!(elf_dynamic_needs(b"#!/bin/sh\n").is_err());
}

/// Binary (the static release build).
#[test]
fn the_static_binary_needs_no_libraries_and_serves_on_its_own() {
    let Some(bin) = static_binary() else { return };
    let bytes = std::fs::read(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let needs = elf_dynamic_needs(&bytes).expect("an ELF executable");
    assert!(needs.is_empty(), "{} needs {needs:?}", bin.display());
    if let Ok(out) = Command::new("ldd").arg(&bin).output() {
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            said.contains("statically linked") || said.contains("not a dynamic executable"),
            "ldd: {said}"
        );
    }
    let out = Command::new(&bin)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("healthcheck"));

    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut child = Command::new(&bin)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--data"])
        .arg(tmp.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the static binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        let ok = Command::new(&bin)
            .args(["healthcheck", "--url", &url])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(healthy, "the static binary answers /healthz");
    assert!(status.success(), "it stops cleanly on SIGTERM: {status}");
}

#[test]
fn the_dockerfile_builds_a_static_binary_into_a_non_root_image_with_a_healthcheck() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let last = stages.last().unwrap();
    assert!(
        last.contains("scratch") || last.contains("distroless/static"),
        "the runtime stage is empty: {last}"
    );
    for needle in [
        "target-feature=+crt-static",
        "--target x86_64-unknown-linux-gnu",
        "USER 10001",
        "LATCH_DATA=/data",
        "LATCH_BIND=0.0.0.0:8000",
        "VOLUME [\"/data\"]",
        "EXPOSE 8000",
        "HEALTHCHECK",
        "CMD [\"/latch\", \"healthcheck\"]",
        "--locked",
    ] {
        assert!(dockerfile.contains(needle), "the Dockerfile has {needle}");
    }
    for needle in ["target/", ".git/", "latch-data/"] {
        assert!(ignore.contains(needle), ".dockerignore leaves out {needle}");
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Binary (the static build, in an image). Needs a Docker daemon.
#[test]
fn the_image_is_the_binary_alone_runs_as_non_root_and_answers_healthz() {
    let daemon = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !daemon {
        // Not a failure even under LATCH_REQUIRE_ALL: CI has no Docker daemon.
        eprintln!("SKIPPED: no Docker daemon (`docker info` failed); the image test needs one");
        return;
    }
    let Some(bin) = static_binary() else { return };
    // The Dockerfile's runtime stage, around the binary built outside.
    let ctx = tempfile::tempdir().expect("tmp");
    std::fs::copy(&bin, ctx.path().join("latch")).expect("copy binary");
    std::fs::create_dir_all(ctx.path().join("data")).expect("data");
    std::fs::write(
        ctx.path().join("Dockerfile.runtime"),
        "FROM scratch\n\
         COPY latch /latch\n\
         COPY --chown=10001:10001 data /data\n\
         USER 10001:10001\n\
         ENV LATCH_DATA=/data LATCH_BIND=0.0.0.0:8000 LATCH_SHUTDOWN_GRACE=8s\n\
         VOLUME [\"/data\"]\n\
         EXPOSE 8000\n\
         HEALTHCHECK --interval=2s --timeout=5s CMD [\"/latch\", \"healthcheck\"]\n\
         ENTRYPOINT [\"/latch\"]\n\
         CMD [\"serve\"]\n",
    )
    .expect("Dockerfile.runtime");
    let tag = format!("latch-ops-test:{}", std::process::id());
    let ctx_s = ctx.path().to_string_lossy().into_owned();
    let out = docker(&[
        "build",
        "-q",
        "-f",
        &format!("{ctx_s}/Dockerfile.runtime"),
        "-t",
        &tag,
        &ctx_s,
    ]);
    assert!(out.status.success(), "docker build: {}", text(&out.stderr));
    let inspect = |format: &str| {
        text(&docker(&["image", "inspect", "--format", format, &tag]).stdout)
            .trim()
            .to_string()
    };
    let size: u64 = inspect("{{.Size}}").parse().expect("size");
    // The image is the binary and nothing else; the release binary (the
    // Dockerfile's) keeps it under 30 MB. A test build's is larger.
    let binary = std::fs::metadata(&bin).expect("binary").len();
    assert!(
        size < binary + 1024 * 1024,
        "image is {size} bytes for a {binary}-byte binary"
    );
    if binary < 28 * 1024 * 1024 {
        assert!(size < 30 * 1024 * 1024, "image is {size} bytes");
    }
    assert_eq!(inspect("{{.Config.User}}"), "10001:10001");

    let out = docker(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1::8000",
        "-e",
        "LATCH_ADMIN_PASSWORD=admin-password-1",
        &tag,
    ]);
    assert!(out.status.success(), "docker run: {}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let port = text(&docker(&["port", &id, "8000/tcp"]).stdout);
    let port = port
        .lines()
        .next()
        .unwrap_or("")
        .rsplit(':')
        .next()
        .unwrap_or("")
        .to_string();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut healthy = false;
    while !healthy && Instant::now() < deadline {
        healthy = latch()
            .args(["healthcheck", "--url", &url])
            .output()
            .is_ok_and(|o| o.status.success());
        std::thread::sleep(Duration::from_millis(200));
    }
    let in_container = docker(&["exec", &id, "/latch", "healthcheck"]);
    let logs = docker(&["logs", &id]);
    let stopped = docker(&["stop", "-t", "15", &id]);
    let exit = text(&docker(&["inspect", "--format", "{{.State.ExitCode}}", &id]).stdout);
    let _ = docker(&["rm", "-f", &id]);
    let _ = docker(&["rmi", "-f", &tag]);
    assert!(
        healthy,
        "GET /healthz through the port: {}",
        text(&logs.stdout)
    );
    assert!(in_container.status.success(), "HEALTHCHECK command passes");
    assert!(stopped.status.success());
    assert_eq!(exit.trim(), "0", "docker stop (SIGTERM) exits 0");
}
