//! Crash torture: the real `latch` binary is killed with SIGKILL at random
//! moments while clients upload, check out, check in, cancel and override,
//! and is restarted on the same data directory each time.
//!
//! After every restart: the server becomes healthy, `git fsck` is clean, every
//! acknowledged (2xx) upload and check-in is in history with its content and
//! revision, no revision is used twice for one file, every acknowledged lock
//! is still held unless it could have been released since, the spool is
//! empty, and a live (SSE) client resuming from its last event id ends up
//! showing exactly what `GET /api/files` says.
//!
//! `LATCH_CRASH_SEED` replays a run; `LATCH_CRASH_KILLS` sets how many kills.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::binary::Server;
use crate::common::{
    ADMIN_PASSWORD, Rng, USER_PASSWORD as PASSWORD, git_fsck, have_tool, token_with_password, watch,
};

const CLIENTS: usize = 4;
const MAX_FILES: usize = 30;

/// An acknowledged version: an upload (201) or a check-in (200).
#[derive(Debug, Clone)]
struct Version {
    file: u64,
    commit: String,
    revision: String,
    content: Vec<u8>,
    content_checked: bool,
}

/// A lock acknowledged to a client. It must still be held at the next restart
/// unless an override was started on the file since before it was asked for.
#[derive(Debug, Clone, Copy)]
struct Held {
    overrides_before: u64,
    /// No override of this file was in flight when the check-out was sent.
    clear: bool,
}

#[derive(Default)]
struct Model {
    files: Vec<u64>,
    versions: Vec<Version>,
    overrides_started: HashMap<u64, u64>,
    overrides_in_flight: HashMap<u64, u32>,
    /// Contract breaches seen by clients: 5xx, wrong statuses, wrong bodies.
    faults: Vec<String>,
    acks: BTreeMap<&'static str, u64>,
}

impl Model {
    fn ack(&mut self, what: &'static str) {
        *self.acks.entry(what).or_default() += 1;
    }
}

type Shared = Arc<Mutex<Model>>;

struct ClientState {
    name: String,
    token: String,
    held: HashMap<u64, Held>,
    rng: Rng,
    serial: u64,
}

/// The server went away mid-request: the outcome is unknown.
struct Gone;

async fn send(rb: reqwest::RequestBuilder) -> Result<(u16, Value), Gone> {
    let resp = rb.send().await.map_err(|_| Gone)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|_| Gone)?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, body))
}

async fn client_loop(
    http: reqwest::Client,
    base: String,
    mut me: ClientState,
    model: Shared,
    stop: Arc<AtomicBool>,
) -> ClientState {
    while !stop.load(Ordering::Relaxed) {
        if step(&http, &base, &mut me, &model).await.is_err() {
            break;
        }
    }
    me
}

async fn step(
    http: &reqwest::Client,
    base: &str,
    me: &mut ClientState,
    model: &Shared,
) -> Result<(), Gone> {
    let (known, file_count) = {
        let m = model.lock().unwrap();
        (m.files.clone(), m.files.len())
    };
    let roll = me.rng.below(100);
    if file_count == 0 || (roll < 10 && file_count < MAX_FILES) {
        me.serial += 1;
        let path = format!("{}/part-{}-{:x}.mcam", me.name, me.serial, me.rng.next());
        let mut content = format!("{path} v1\n").into_bytes();
        let n = 16 + me.rng.below(3000) as usize;
        content.extend(me.rng.bytes(n));
        let form = Form::new()
            .text("path", path.clone())
            .text("description", "crash test")
            .part("file", Part::bytes(content.clone()).file_name("x.mcam"));
        let (status, body) = send(
            http.post(format!("{base}/api/files"))
                .bearer_auth(&me.token)
                .multipart(form),
        )
        .await?;
        let mut m = model.lock().unwrap();
        match status {
            201 => {
                let id = body["id"].as_u64().unwrap_or_default();
                m.files.push(id);
                m.versions.push(Version {
                    file: id,
                    commit: body["head"].as_str().unwrap_or_default().into(),
                    revision: body["revision"].as_str().unwrap_or_default().into(),
                    content,
                    content_checked: false,
                });
                m.ack("upload");
            }
            _ => m
                .faults
                .push(format!("upload {path} answered {status}: {body}")),
        }
        return Ok(());
    }
    let mine: Vec<u64> = me.held.keys().copied().collect();
    if !mine.is_empty() && roll < 65 {
        let id = mine[me.rng.below(mine.len() as u64) as usize];
        // Whatever happens next, this client no longer counts on the lock.
        me.held.remove(&id);
        if roll < 55 {
            me.serial += 1;
            let mut content = format!("{} {} {}\n", me.name, id, me.serial).into_bytes();
            let n = me.rng.below(3000) as usize;
            content.extend(me.rng.bytes(n));
            let bump = if me.rng.chance(20) { "major" } else { "minor" };
            let form = Form::new()
                .text("message", format!("Change {} by {}", me.serial, me.name))
                .text("bump", bump)
                .part("file", Part::bytes(content.clone()).file_name("x.mcam"));
            let (status, body) = send(
                http.post(format!("{base}/api/files/{id}/checkin"))
                    .bearer_auth(&me.token)
                    .multipart(form),
            )
            .await?;
            let mut m = model.lock().unwrap();
            match status {
                200 if body["lock"].is_null() => {
                    m.versions.push(Version {
                        file: id,
                        commit: body["head"].as_str().unwrap_or_default().into(),
                        revision: body["revision"].as_str().unwrap_or_default().into(),
                        content,
                        content_checked: false,
                    });
                    m.ack("checkin");
                }
                // The lock was overridden meanwhile.
                403 | 409 => m.ack("checkin refused"),
                _ => m
                    .faults
                    .push(format!("checkin of {id} answered {status}: {body}")),
            }
        } else {
            let (status, body) = send(
                http.post(format!("{base}/api/files/{id}/cancel"))
                    .bearer_auth(&me.token),
            )
            .await?;
            let mut m = model.lock().unwrap();
            match status {
                200 if body["lock"].is_null() => m.ack("cancel"),
                403 | 409 => m.ack("cancel refused"),
                _ => m
                    .faults
                    .push(format!("cancel of {id} answered {status}: {body}")),
            }
        }
        return Ok(());
    }
    let id = known[me.rng.below(known.len() as u64) as usize];
    if me.held.contains_key(&id) {
        return Ok(());
    }
    let held = {
        let m = model.lock().unwrap();
        Held {
            overrides_before: m.overrides_started.get(&id).copied().unwrap_or(0),
            clear: m.overrides_in_flight.get(&id).copied().unwrap_or(0) == 0,
        }
    };
    let (status, body) = send(
        http.post(format!("{base}/api/files/{id}/checkout"))
            .bearer_auth(&me.token)
            .json(&json!({"comment": format!("{} at work", me.name)})),
    )
    .await?;
    let mut m = model.lock().unwrap();
    match status {
        200 if body["lock"]["owner"] == me.name.as_str() => {
            me.held.insert(id, held);
            m.ack("checkout");
        }
        409 if body["error"]
            .as_str()
            .is_some_and(|e| e.contains("checked out by")) =>
        {
            m.ack("checkout conflict")
        }
        _ => m
            .faults
            .push(format!("checkout of {id} answered {status}: {body}")),
    }
    Ok(())
}

async fn admin_loop(
    http: reqwest::Client,
    base: String,
    mut rng: Rng,
    model: Shared,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        // Think time between admin actions, randomised with the seed.
        tokio::time::sleep(Duration::from_millis(30 + rng.below(200))).await;
        let Ok((200, body)) = send(
            http.get(format!("{base}/api/files"))
                .basic_auth("admin", Some(ADMIN_PASSWORD)),
        )
        .await
        else {
            return;
        };
        let locked: Vec<u64> = body["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["state"] == "locked")
            .filter_map(|f| f["id"].as_u64())
            .collect();
        if locked.is_empty() {
            continue;
        }
        let id = locked[rng.below(locked.len() as u64) as usize];
        {
            let mut m = model.lock().unwrap();
            *m.overrides_started.entry(id).or_default() += 1;
            *m.overrides_in_flight.entry(id).or_default() += 1;
        }
        let Ok((status, body)) = send(
            http.post(format!("{base}/api/files/{id}/override"))
                .basic_auth("admin", Some(ADMIN_PASSWORD)),
        )
        .await
        else {
            // Still counted as in flight: it may have happened.
            return;
        };
        let mut m = model.lock().unwrap();
        if let Some(n) = m.overrides_in_flight.get_mut(&id) {
            *n -= 1;
        }
        match status {
            200 if body["lock"].is_null() => m.ack("override"),
            409 => m.ack("override conflict"),
            _ => m
                .faults
                .push(format!("override of {id} answered {status}: {body}")),
        }
    }
}

struct Check<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    token: &'a str,
}

impl Check<'_> {
    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .send()
            .await
            .expect("the restarted server answers");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("json")
    }
}

/// Everything that must hold after a restart; returns the file list.
async fn verify(
    check: &Check<'_>,
    data: &Path,
    model: &Shared,
    clients: &mut [ClientState],
    all_content: bool,
) -> Vec<Value> {
    git_fsck(&data.join("vault.git")).unwrap_or_else(|e| panic!("{e}"));
    let spooled: Vec<_> = std::fs::read_dir(data.join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(spooled.is_empty(), "spool not emptied: {spooled:?}");

    let files = check.json("/api/files").await["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let by_id: HashMap<u64, &Value> = files
        .iter()
        .map(|f| (f["id"].as_u64().unwrap(), f))
        .collect();

    let mut versions = {
        let mut m = model.lock().unwrap();
        // Uploads acknowledged but unknown to the server would be lost files.
        for id in &m.files {
            assert!(by_id.contains_key(id), "acknowledged upload {id} is gone");
        }
        // Locks: acknowledged ones are still held unless an override may have hit them.
        for client in clients.iter_mut() {
            for (id, held) in &client.held {
                let overrides = m.overrides_started.get(id).copied().unwrap_or(0);
                let owner = by_id[id]["lock"]["owner"].as_str();
                if held.clear && overrides == held.overrides_before {
                    assert_eq!(
                        owner,
                        Some(client.name.as_str()),
                        "the lock on file {id} acknowledged to {} was lost",
                        client.name
                    );
                }
            }
            // Quiet now: what the server says is what this client holds.
            client.held = files
                .iter()
                .filter(|f| f["lock"]["owner"] == client.name.as_str())
                .map(|f| {
                    let id = f["id"].as_u64().unwrap();
                    let held = Held {
                        overrides_before: m.overrides_started.get(&id).copied().unwrap_or(0),
                        clear: true,
                    };
                    (id, held)
                })
                .collect();
        }
        m.overrides_in_flight.clear();
        std::mem::take(&mut m.versions)
    };

    let ids: BTreeSet<u64> = by_id.keys().copied().collect();
    for id in ids {
        let history = check.json(&format!("/api/files/{id}/history")).await["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!history.is_empty(), "file {id} has no history");
        let mut revisions = BTreeSet::new();
        for v in &history {
            let rev = v["revision"].as_str().unwrap_or_default();
            assert!(
                revisions.insert(rev.to_string()),
                "revision {rev} of file {id} was handed out twice: {history:?}"
            );
        }
        let file = by_id[&id];
        assert_eq!(
            file["head"], history[0]["commit"],
            "file {id}'s record is not at its newest commit"
        );
        assert_eq!(
            file["revision"], history[0]["revision"],
            "file {id}'s record does not show its newest revision"
        );
        let commits: HashMap<&str, &str> = history
            .iter()
            .map(|v| {
                (
                    v["commit"].as_str().unwrap_or_default(),
                    v["revision"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        for v in versions.iter_mut().filter(|v| v.file == id) {
            assert_eq!(
                commits.get(v.commit.as_str()).copied(),
                Some(v.revision.as_str()),
                "acknowledged revision {} of file {id} ({}) is not in its history",
                v.revision,
                v.commit
            );
            if all_content || !v.content_checked {
                let (status, body) = check
                    .get(&format!("/api/files/{id}/content?rev={}", v.commit))
                    .await;
                assert_eq!(status, 200, "download of {id} at {}", v.commit);
                assert!(
                    body == v.content,
                    "file {id} at revision {} does not have the content acknowledged",
                    v.revision
                );
                v.content_checked = true;
            }
        }
    }
    model.lock().unwrap().versions = versions;
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_across_twenty_sigkills() {
    if !have_tool("git", "git") {
        return;
    }
    let seed = std::env::var("LATCH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    let kills: usize = std::env::var("LATCH_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("crash torture: seed {seed} (LATCH_CRASH_SEED), {kills} kills");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().expect("temp dir");
    let data: PathBuf = tmp.path().join("data");
    let log = tmp.path().join("latch.log");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();

    // Accounts and tokens, made once; they persist across restarts.
    let mut server = Server::start(&data, &log).await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let name = format!("client{i}");
        let resp = http
            .post(format!("{}/api/users", server.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&json!({"username": name, "password": PASSWORD, "role": "user"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let token = token_with_password(&http, &server.base, &name, PASSWORD, "crash test").await;
        clients.push(ClientState {
            name,
            token,
            held: HashMap::new(),
            rng: Rng::new(rng.next()),
            serial: 0,
        });
    }
    let checker_token =
        token_with_password(&http, &server.base, "admin", ADMIN_PASSWORD, "checker").await;
    let resp = http
        .post(format!("{}/api/users", server.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"username": "watcher", "password": PASSWORD, "role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = http
        .post(format!("{}/api/login", server.base))
        .json(&json!({"username": "watcher", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("latch_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();

    let model: Shared = Arc::default();
    let view = Arc::new(Mutex::new(watch::View {
        last_id: Some(0),
        ..Default::default()
    }));
    let sse_http = reqwest::Client::new();
    let mut killed = 0;
    let mut early_kills = 0;
    loop {
        // The live client resumes from its last event id, as a browser would.
        let follower = {
            let (http, base, cookie, view) = (
                sse_http.clone(),
                server.base.clone(),
                cookie.clone(),
                view.clone(),
            );
            tokio::spawn(async move { watch::follow(&http, &base, &cookie, view).await })
        };
        let check = Check {
            http: &http,
            base: &server.base,
            token: &checker_token,
        };
        let last_round = killed == kills;
        let files = verify(&check, &data, &model, &mut clients, last_round).await;
        if let Err(diff) = watch::converge(&view, &files, Duration::from_secs(20)).await {
            panic!(
                "after restart {killed}, the live client did not converge on the true state: {diff}"
            );
        }
        let faults = std::mem::take(&mut model.lock().unwrap().faults);
        if !faults.is_empty() {
            let errors: Vec<String> = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ERROR"))
                .map(str::to_string)
                .collect();
            panic!("clients saw faults: {faults:#?}\nserver errors: {errors:#?}");
        }
        if last_round {
            follower.abort();
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for me in clients.drain(..) {
            tasks.push(tokio::spawn(client_loop(
                http.clone(),
                server.base.clone(),
                me,
                model.clone(),
                stop.clone(),
            )));
        }
        let admin = tokio::spawn(admin_loop(
            http.clone(),
            server.base.clone(),
            Rng::new(rng.next()),
            model.clone(),
            stop.clone(),
        ));
        // A random moment under load to kill at: the randomness is the test.
        tokio::time::sleep(Duration::from_millis(100 + rng.below(1400))).await;
        server.kill();
        killed += 1;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            clients.push(task.await.expect("client task"));
        }
        admin.await.expect("admin task");
        let _ = follower.await;

        // Now and then the restart itself is cut short, maybe mid-reconcile.
        if rng.below(4) == 0 {
            let mut early = Server::spawn(&data, &log);
            tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
            early.kill();
            early_kills += 1;
        }
        server = Server::start(&data, &log).await;
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let reconciled_starts = log_text.matches("applied Git commits").count();
    let stale_locks = log_text.matches("removed a stale Git lock").count();
    let m = model.lock().unwrap();
    let seen = view.lock().unwrap().clone();
    eprintln!(
        "crash torture: {killed} kills while serving and {early_kills} while starting, in {:.1} s; acknowledged: {:?}; {} versions checked; \
         live client saw {} events ({} resyncs); {reconciled_starts} starts reconciled Git \
         commits the database had not recorded; {stale_locks} stale Git locks removed",
        started.elapsed().as_secs_f64(),
        m.acks,
        m.versions.len(),
        seen.events,
        seen.resyncs,
    );
    assert!(
        m.acks.get("checkin").copied().unwrap_or(0) > 0,
        "no check-in was acknowledged"
    );
}
