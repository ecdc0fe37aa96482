//! Racing requests resolve to exactly one winner, history stays linear, and
//! both sides of a race are told the truth. Also the (ignored) load test:
//! many clients and live subscribers at once, with no 5xx and no lost event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::http::status_and_json;
use crate::common::{
    self, ADMIN_PASSWORD, Rng, TestApp, USER_PASSWORD, binary, token_with_password, watch,
};
use serde_json::{Value, json};
use tokio::sync::Barrier;

/// Creates `names` as users (as admin) and signs each in.
async fn sign_in_all(app: &TestApp, names: &[String]) -> Vec<common::Client> {
    let admin = app.admin().await;
    for name in names {
        let resp = admin
            .post_json(
                "/api/users",
                &json!({"username": name, "password": USER_PASSWORD, "role": "user"}),
            )
            .await;
        assert_eq!(resp.status(), 201, "create {name}");
    }
    let mut clients = Vec::new();
    for name in names {
        clients.push(app.login(name, USER_PASSWORD).await);
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_checking_out_one_file_at_once_have_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..50).map(|i| format!("racer{i:02}")).collect();
    let clients = sign_in_all(&app, &names).await;
    let id = clients[0].upload_ok("parts/contested.mcam", b"v1").await;

    let barrier = Arc::new(Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|c| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let (status, body) = status_and_json(c.checkout(id, "mine").await).await;
                (c.username.clone(), status, body)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: Vec<_> = results.iter().filter(|(_, s, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let winner = &winners[0].0;
    assert_eq!(winners[0].2["lock"]["owner"], winner.as_str());
    for (name, status, body) in results.iter().filter(|(_, s, _)| *s != 200) {
        assert_eq!(*status, 409, "{name} got {status}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("checked out by {winner}")),
            "{name}'s 409 does not name the winner {winner}: {error}"
        );
    }
    let file = clients[0].file(id).await;
    assert_eq!(file["lock"]["owner"], winner.as_str());
    let activity = clients[0].get_json("/api/activity?since=0").await;
    let locks = activity["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "locked")
        .count();
    assert_eq!(locks, 1, "exactly one lock event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_check_ins_make_twenty_commits_on_one_linear_history() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..20).map(|i| format!("writer{i:02}")).collect();
    let clients = sign_in_all(&app, &names).await;
    let mut ids = Vec::new();
    for c in &clients {
        let id = c
            .upload_ok(&format!("{}/part.mcam", c.username), b"v1")
            .await;
        assert_eq!(c.checkout(id, "").await.status(), 200);
        ids.push(id);
    }
    let barrier = Arc::new(Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .zip(ids.clone())
        .map(|(c, id)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let content = format!("{} v2", c.username);
                let resp = c.checkin(id, content.as_bytes(), "v2", "minor").await;
                status_and_json(resp).await
            })
        })
        .collect();
    let mut heads = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["revision"], "1.1");
        heads.push(body["head"].as_str().unwrap().to_string());
    }
    let vault = app.vault_path();
    let Some(merges) = common::git(&vault, &["rev-list", "--min-parents=2", "refs/heads/main"])
    else {
        assert!(!common::have_tool("git", "git"));
        return;
    };
    assert!(merges.status.success());
    assert!(merges.stdout.is_empty(), "main has merge commits");
    let count = common::git(&vault, &["rev-list", "--count", "refs/heads/main"]).unwrap();
    let count: usize = String::from_utf8_lossy(&count.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, 40, "20 uploads and 20 check-ins, one commit each");
    let first_parent =
        common::git(&vault, &["rev-list", "--first-parent", "refs/heads/main"]).unwrap();
    let first_parent = String::from_utf8_lossy(&first_parent.stdout).to_string();
    for head in &heads {
        assert!(first_parent.contains(head.as_str()), "{head} is on main");
    }
    for (c, id) in clients.iter().zip(&ids) {
        assert_eq!(
            c.content(*id, None).await,
            format!("{} v2", c.username).as_bytes()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_check_in_racing_an_override_has_one_outcome_told_truthfully_to_both() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let admin = app.admin().await;
    let id = alice.upload_ok("parts/raced.mcam", b"v0").await;
    let (mut checkin_won, mut override_won) = (0, 0);
    for round in 0..20 {
        assert_eq!(alice.checkout(id, "").await.status(), 200);
        let before = alice.file(id).await;
        let versions_before = alice.history(id).await.len();
        let content = format!("round {round}");
        let barrier = Arc::new(Barrier::new(2));
        let (a, b) = (barrier.clone(), barrier);
        let holder = alice.clone();
        let body = content.clone();
        let checkin = tokio::spawn(async move {
            a.wait().await;
            status_and_json(holder.checkin(id, body.as_bytes(), "race", "minor").await).await
        });
        let boss = admin.clone();
        // A check-in does more work before its transaction than an override,
        // so the override starts a little later in some rounds: both
        // outcomes get their turn.
        let head_start = Duration::from_millis((round % 5) as u64 * 3);
        let overriding = tokio::spawn(async move {
            b.wait().await;
            tokio::time::sleep(head_start).await;
            status_and_json(boss.override_lock(id).await).await
        });
        let (ci, ov) = (checkin.await.unwrap(), overriding.await.unwrap());
        let after = alice.file(id).await;
        assert!(
            after["lock"].is_null(),
            "round {round}: the lock is gone either way"
        );
        match (ci.0, ov.0) {
            (200, 409) => {
                checkin_won += 1;
                let error = ov.1["error"].as_str().unwrap_or_default();
                assert!(error.contains("not checked out"), "round {round}: {error}");
                assert_eq!(after["head"], ci.1["head"], "round {round}");
                assert_ne!(after["revision"], before["revision"]);
                assert_eq!(alice.content(id, None).await, content.as_bytes());
                assert_eq!(alice.history(id).await.len(), versions_before + 1);
            }
            (403 | 409, 200) => {
                override_won += 1;
                assert!(ov.1["lock"].is_null());
                assert_eq!(
                    after["head"], before["head"],
                    "round {round}: no new version"
                );
                assert_eq!(after["revision"], before["revision"]);
                assert_eq!(
                    alice.history(id).await.len(),
                    versions_before,
                    "round {round}: a refused check-in left a version"
                );
            }
            other => panic!(
                "round {round}: check-in {} {} / override {} {} is not one consistent outcome",
                other.0, ci.1, other.1, ov.1
            ),
        }
    }
    eprintln!("check-in won {checkin_won} times, override won {override_won} times");
}

// ---------------------------------------------------------------------------
// Load: `cargo test --release --test it -- --ignored races::load --nocapture`.
// LATCH_LOAD_CLIENTS, LATCH_LOAD_SUBSCRIBERS, LATCH_LOAD_SECS and
// LATCH_LOAD_THINK_MS (mean pause between a client's requests) scale it.

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    by_status: BTreeMap<u16, u64>,
    transport_errors: u64,
    server_errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a minute of load; run on purpose"]
async fn load_many_clients_and_live_subscribers_lose_no_event() {
    let clients_n = env_or("LATCH_LOAD_CLIENTS", 200) as usize;
    let subscribers_n = env_or("LATCH_LOAD_SUBSCRIBERS", 1000) as usize;
    let secs = env_or("LATCH_LOAD_SECS", 60);
    let think_ms = env_or("LATCH_LOAD_THINK_MS", 1000);
    let files_n = 200;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("latch.log");
    let server = binary::Server::start(&data, &log).await;
    let base = server.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(clients_n + 8)
        .build()
        .unwrap();
    let admin_pw = ADMIN_PASSWORD;

    // Accounts: one per client, with an API token (scripts use tokens).
    let mut setup = Vec::new();
    for i in 0..clients_n {
        let (http, base) = (http.clone(), base.clone());
        setup.push(tokio::spawn(async move {
            let name = format!("load{i:03}");
            let r = http
                .post(format!("{base}/api/users"))
                .basic_auth("admin", Some(admin_pw))
                .json(&json!({"username": name, "password": USER_PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let token = token_with_password(&http, &base, &name, USER_PASSWORD, "load").await;
            (name, token)
        }));
    }
    let mut accounts = Vec::new();
    for t in setup {
        accounts.push(t.await.unwrap());
    }
    let admin_token = {
        let r = http
            .post(format!("{base}/api/tokens"))
            .basic_auth("admin", Some(admin_pw))
            .json(&json!({"name": "load"}))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for i in 0..files_n {
        let form = reqwest::multipart::Form::new()
            .text("path", format!("load/part-{i:04}.mcam"))
            .part(
                "file",
                reqwest::multipart::Part::bytes(format!("part {i} v1").into_bytes())
                    .file_name("p.mcam"),
            );
        let r = http
            .post(format!("{base}/api/files"))
            .bearer_auth(&admin_token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    // Subscribers: 20 signed-in watchers, each with many open tabs.
    let watchers = 20.min(subscribers_n.max(1));
    let mut cookies = Vec::new();
    for w in 0..watchers {
        let name = format!("watch{w:02}");
        let r = http
            .post(format!("{base}/api/users"))
            .basic_auth("admin", Some(admin_pw))
            .json(&json!({"username": name, "password": USER_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = http
            .post(format!("{base}/api/login"))
            .json(&json!({"username": name, "password": USER_PASSWORD}))
            .send()
            .await
            .unwrap();
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("latch_session="))
            .and_then(|v| v.split(';').next())
            .unwrap()
            .to_string();
        cookies.push(cookie);
    }
    let activity = |http: reqwest::Client, base: String, token: String| async move {
        http.get(format!("{base}/api/activity?since=0"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["last_seq"]
            .as_u64()
            .unwrap()
    };
    let list = |http: reqwest::Client, base: String, token: String| async move {
        http.get(format!("{base}/api/files"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["files"]
            .as_array()
            .cloned()
            .unwrap()
    };
    // Like a page load: the sequence first, then the list, then the stream.
    let start_seq = activity(http.clone(), base.clone(), admin_token.clone()).await;
    let start_files = list(http.clone(), base.clone(), admin_token.clone()).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sse_http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut views = Vec::new();
    let mut reconnects = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut sub_tasks = Vec::new();
    for s in 0..subscribers_n {
        let view = Arc::new(Mutex::new(watch::View {
            cards: watch::expected(&start_files),
            last_id: Some(start_seq),
            ..Default::default()
        }));
        views.push(view.clone());
        let (http, base, cookie, stop, reconnects) = (
            sse_http.clone(),
            base.clone(),
            cookies[s % cookies.len()].clone(),
            stop.clone(),
            reconnects.clone(),
        );
        sub_tasks.push(tokio::spawn(async move {
            loop {
                let _ = watch::follow(&http, &base, &cookie, view.clone()).await;
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // Every subscriber is connected (by the server's own count) before the
    // memory baseline is read.
    common::wait_until("every subscriber to be connected", || async {
        let text = http
            .get(format!("{base}/metrics"))
            .basic_auth("admin", Some(admin_pw))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap_or_default();
        common::metric(&text, "latch_live_connections{transport=\"sse\"}")
            >= Some(subscribers_n as f64)
    })
    .await;
    let rss_before = server.rss_kib();

    let tally = Arc::new(Mutex::new(Tally::default()));
    let ids: Vec<u64> = start_files
        .iter()
        .map(|f| f["id"].as_u64().unwrap())
        .collect();
    let run_started = Instant::now();
    let deadline = run_started + Duration::from_secs(secs);
    let mut client_tasks = Vec::new();
    for (i, (name, token)) in accounts.iter().cloned().enumerate() {
        let (http, base, tally, ids) = (http.clone(), base.clone(), tally.clone(), ids.clone());
        client_tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 7919));
            let mut held: Vec<u64> = Vec::new();
            let mut serial = 0u64;
            while Instant::now() < deadline {
                let pause = rng.below(2 * think_ms + 1);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let roll = rng.below(100);
                let id = ids[rng.below(ids.len() as u64) as usize];
                serial += 1;
                let (what, rb) = if roll < 20 {
                    ("list", http.get(format!("{base}/api/files")))
                } else if roll < 40 {
                    ("get", http.get(format!("{base}/api/files/{id}")))
                } else if roll < 48 {
                    (
                        "history",
                        http.get(format!("{base}/api/files/{id}/history")),
                    )
                } else if roll < 55 {
                    (
                        "content",
                        http.get(format!("{base}/api/files/{id}/content")),
                    )
                } else if roll < 80 || held.is_empty() {
                    (
                        "checkout",
                        http.post(format!("{base}/api/files/{id}/checkout"))
                            .json(&json!({"comment": "load"})),
                    )
                } else {
                    let mine = held.swap_remove(rng.below(held.len() as u64) as usize);
                    if roll < 93 {
                        let form = reqwest::multipart::Form::new()
                            .text("message", format!("{name} change {serial}"))
                            .part(
                                "file",
                                reqwest::multipart::Part::bytes(
                                    format!("{name} {serial}").into_bytes(),
                                )
                                .file_name("p.mcam"),
                            );
                        (
                            "checkin",
                            http.post(format!("{base}/api/files/{mine}/checkin"))
                                .multipart(form),
                        )
                    } else {
                        (
                            "cancel",
                            http.post(format!("{base}/api/files/{mine}/cancel")),
                        )
                    }
                };
                let sent = Instant::now();
                let result = rb.bearer_auth(&token).send().await;
                let result = match result {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.map(|b| (status, b))
                    }
                    Err(e) => Err(e),
                };
                let elapsed = sent.elapsed().as_micros() as u64;
                let mut t = tally.lock().unwrap();
                match result {
                    Ok((status, body)) => {
                        t.latencies_us.push(elapsed);
                        *t.by_status.entry(status).or_default() += 1;
                        if status >= 500 {
                            t.server_errors.push(format!(
                                "{what}: {status} {}",
                                String::from_utf8_lossy(&body)
                            ));
                        }
                        if what == "checkout" && status == 200 {
                            held.push(id);
                        }
                    }
                    Err(_) => t.transport_errors += 1,
                }
            }
        }));
    }
    for t in client_tasks {
        t.await.unwrap();
    }
    let run_secs = run_started.elapsed().as_secs_f64();
    let rss_after_run = server.rss_kib();

    let end_seq = activity(http.clone(), base.clone(), admin_token.clone()).await;
    let end_files = list(http.clone(), base.clone(), admin_token.clone()).await;
    let mut unconverged = 0;
    for (i, view) in views.iter().enumerate() {
        if let Err(diff) = watch::converge(view, &end_files, Duration::from_secs(60)).await {
            unconverged += 1;
            if unconverged < 3 {
                eprintln!("subscriber {i} did not converge: {diff}");
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in &sub_tasks {
        t.abort();
    }
    let resyncs: u64 = views.iter().map(|v| v.lock().unwrap().resyncs).sum();
    // A resync is a full list, not one of the events counted as expected.
    let delivered: u64 = views.iter().map(|v| v.lock().unwrap().events).sum::<u64>() - resyncs;
    // Memory is read after a quiet spell on purpose: what the server keeps
    // once the load is gone, not what a burst still holds. No condition
    // marks "settled", so this wait is a fixed one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_idle = server.rss_kib();

    let t = tally.lock().unwrap();
    let mut lat = t.latencies_us.clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let requests = lat.len() as u64;
    let events = end_seq - start_seq;
    let reconnects = Arc::get_mut(&mut reconnects)
        .map(|r| *r.get_mut())
        .unwrap_or_else(|| reconnects.load(std::sync::atomic::Ordering::Relaxed));
    eprintln!(
        "load: {clients_n} clients, {subscribers_n} subscribers, {run_secs:.0} s\n\
         requests {requests} ({:.0}/s), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         statuses {:?}, transport errors {}, 5xx {}\n\
         events {events}; delivered {delivered} of {} expected ({resyncs} resyncs, {reconnects} reconnects); \
         {unconverged} subscribers did not converge\n\
         server RSS: before {} MiB, after run {} MiB, after subscribers left {} MiB",
        requests as f64 / run_secs,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        t.by_status,
        t.transport_errors,
        t.server_errors.len(),
        events * subscribers_n as u64,
        rss_before / 1024,
        rss_after_run / 1024,
        rss_idle / 1024,
    );
    assert!(
        t.server_errors.is_empty(),
        "5xx: {:?}",
        &t.server_errors[..t.server_errors.len().min(5)]
    );
    assert_eq!(t.transport_errors, 0, "requests failed in transport");
    assert_eq!(unconverged, 0, "every subscriber ends on the true state");
    // 200 sign-ups and 200 Basic sign-ins ran at once before `rss_before`.
    assert!(
        rss_before < 1024 * 1024,
        "setup alone took {} MiB",
        rss_before / 1024
    );
    assert!(
        rss_idle < rss_before * 2 + 64 * 1024,
        "memory did not settle: {rss_before} KiB before, {rss_idle} KiB after"
    );
}
