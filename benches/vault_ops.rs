//! Figures for the core: dashboard render time at 1,000 and 10,000 files,
//! check-out + cancel pairs per second over HTTP with durable commits, and
//! check-in of 1 MiB and 200 MiB files (time and the server's peak RSS), and
//! seeing inside files: a 200 MiB preview, a diff of two 50 MiB versions
//! (refused from their size), a 1 GiB folder streamed as a `.zip`; and a
//! change set of 10 files × 1 MiB against ten single check-ins, and one
//! with a 200 MiB file in it (peak RSS); and the dashboard page as a
//! person gets it at 500 and 5,000 files: HTML bytes, the server's time to
//! answer, and (when chromedriver and Chromium are installed) Chromium's
//! time to interactive from the Performance API.
//!
//! And a vault at scale (100,000 files, 1,000,000 events): start-up, idle
//! memory, the dashboard, `/api/files`, activity and LFS lock pages; and a
//! file's history against the vault's age: the history request's median
//! time (the index, and the Git walk it replaced) at 1,000 to 100,000
//! commits on `main`.
//!
//! And a clone of 300 files x 1,000 commits over the smart protocol
//! against `git clone file://`, `--depth 1`, a fetch of 10 new check-ins
//! (and its HTTP requests), and the dumb protocol for the record.
//!
//! And the network drive: a 200 MiB `PUT` (upload and draft), the
//! `UNLOCK` that checks the draft in, and a `GET` (time and peak RSS).
//!
//! Run with `cargo bench --bench vault_ops [-- render|checkout|checkin|content|dav|set|page|scale|history|clone]`
//! (no name: all). The server runs as the real
//! release binary in a child process, so its memory is measured alone.
//! `LATCH_BENCH_QUICK=1` shrinks every size for a smoke run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latch::domain::{RepoPath, Revision};
use latch::http::views::{self, Filters, Viewer};
use latch::store::{FileRecord, LockRecord};
use latch::vault::{BlobId, CommitId};

const ADMIN_PASSWORD: &str = "bench-password-1";

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, base) = Self::spawn(dir.path()).await;
        Server {
            child,
            base,
            _dir: dir,
        }
    }

    /// A fresh process on the same data: its idle memory is a new
    /// process's, not what earlier uploads left in the allocator.
    async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, base) = Self::spawn(self._dir.path()).await;
        self.child = child;
        self.base = base;
    }

    async fn spawn(dir: &std::path::Path) -> (Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_latch"))
            .args(["--data", dir.join("data").to_str().expect("utf-8 path")])
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--max-upload", "1G"])
            .env("LATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("LATCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start latch");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        (child, base)
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Resets the kernel's peak-RSS mark so the next reading covers one operation.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    async fn token(&self) -> String {
        admin_token(&self.base).await
    }
}

/// A new API token of the admin's (a password would be hashed on every request).
async fn admin_token(base: &str) -> String {
    let resp: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/tokens"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&serde_json::json!({"name": "bench"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    resp["token"].as_str().expect("token").to_string()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Commits version `n` (from 0) of file `id` straight to the vault, with
/// the trailers a check-in writes, at `parts/<id % 20>/p<id>.nc`.
fn commit_version(
    vault: &latch::vault::Vault,
    author: &latch::vault::Author<'_>,
    id: u64,
    n: u64,
    content: &[u8],
) {
    use latch::vault::{Action, Change, Trailers};
    let path = RepoPath::parse(&format!("parts/{}/p{id}.nc", id % 20)).expect("path");
    let blob = vault
        .write_blob(&mut &content[..], content.len() as u64)
        .expect("blob");
    vault
        .commit(
            &[Change::Put { path: &path, blob }],
            author,
            &format!("Version {n} of p{id}"),
            &[Trailers {
                action: if n == 0 {
                    Action::Create
                } else {
                    Action::CheckIn
                },
                file_id: id,
                path: path.clone(),
                from: None,
                revision: Some(format!("{}.{}", 1 + n / 100, n % 100)),
                user: "admin".into(),
            }],
        )
        .expect("commit");
}

fn synthetic_files(n: usize) -> Vec<FileRecord> {
    let mut files = (0..n)
        .map(|i| FileRecord {
            id: i as u64 + 1,
            path: RepoPath::from_stored(format!("machine-{:02}/part-{i:06}.mcam", i % 40)),
            description: format!("Fixture plate {i}, second op"),
            revision: Revision {
                major: 1,
                minor: (i % 7) as u32,
            },
            created_by: "alice".into(),
            created_at: 1_700_000_000,
            size: 1_234_567 + i as u64,
            head: CommitId::from_hex("0123456789abcdef0123456789abcdef01234567").expect("hex"),
            blob: BlobId::from_hex("0123456789abcdef0123456789abcdef01234567").expect("hex"),
            modified_at: 1_700_000_000 + i as i64,
            modified_by: "bob".into(),
            lock: (i % 5 == 0).then(|| LockRecord {
                owner: if i % 10 == 0 {
                    "alice".into()
                } else {
                    "bob".into()
                },
                locked_at: 1_700_000_000,
                comment: Some("fixing the post".into()),
                warned_at: None,
                draft: None,
                dav_tokens: Vec::new(),
            }),
            queue: Vec::new(),
            reserved: None,
        })
        .collect::<Vec<_>>();
    // As `Store::files_now` keeps them.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn bench_render(n: usize) {
    let files = synthetic_files(n);
    let viewer = Viewer {
        username: "alice".into(),
        admin: true,
        csrf: Some("x".repeat(48)),
    };
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..7 {
        let started = Instant::now();
        let html = views::dashboard(views::Dashboard {
            files: &files,
            viewer: &viewer,
            filters: &Filters::default(),
            recent: &[],
            max_upload: 512 << 20,
            stale_after: std::time::Duration::from_secs(7 * 86_400),
            presence: &Default::default(),
            cards: &Default::default(),
        })
        .into_string();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = html.len();
    }
    println!(
        "dashboard render, {n:>6} files: median {:.1} ms, {:.1} MiB of HTML",
        median(times),
        bytes as f64 / (1 << 20) as f64
    );
}

async fn bench_checkout_cancel(server: &Server, token: &str, pairs: usize, clients: usize) {
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for c in 0..clients {
        let form = reqwest::multipart::Form::new()
            .text("path", format!("bench/pair-{clients}-{c}.bin"))
            .part(
                "file",
                reqwest::multipart::Part::bytes(vec![c as u8; 1024]).file_name("x"),
            );
        let resp: serde_json::Value = http
            .post(format!("{}/api/files", server.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("json");
        ids.push(resp["id"].as_u64().expect("id"));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in ids {
        let http = http.clone();
        let base = server.base.clone();
        let token = token.to_string();
        let per_client = pairs / clients;
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_client {
                for op in ["checkout", "cancel"] {
                    let resp = http
                        .post(format!("{base}/api/files/{id}/{op}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("op");
                    assert!(resp.status().is_success(), "{op}: {}", resp.status());
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "check-out + cancel over HTTP, {clients} client(s): {:.0} pairs/s ({pairs} pairs, durable commits)",
        pairs as f64 / secs
    );
}

async fn bench_checkin(size: usize, label: &str) {
    let server = Server::start().await;
    let token = server.token().await;
    let http = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text("path", format!("big/{label}.bin"))
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![7u8; 1024]).file_name("x"),
        );
    let created: serde_json::Value = http
        .post(format!("{}/api/files", server.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_u64().expect("id");
    http.post(format!("{}/api/files/{id}/checkout", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("checkout");
    // Content that does not compress to nothing, like real CAD/CAM data.
    let mut content = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in content.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = chunk.len();
        chunk.copy_from_slice(&x.to_le_bytes()[..n]);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.status_kib("VmRSS:");
    server.reset_peak();
    let form = reqwest::multipart::Form::new()
        .text("message", "bench check-in")
        .part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name("x"),
        );
    let started = Instant::now();
    let resp = http
        .post(format!("{}/api/files/{id}/checkin", server.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("checkin");
    let secs = started.elapsed().as_secs_f64();
    assert!(resp.status().is_success(), "checkin: {}", resp.status());
    let peak = server.status_kib("VmHWM:");
    println!(
        "check-in of {label}: {:.2} s ({:.0} MiB/s); server RSS idle {:.1} MiB, peak {:.1} MiB (+{:.1} MiB)",
        secs,
        size as f64 / (1 << 20) as f64 / secs,
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(idle) as f64 / 1024.0
    );
    // Download it back: streaming keeps the peak down there too.
    server.reset_peak();
    let started = Instant::now();
    let mut resp = http
        .get(format!("{}/api/files/{id}/content", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download");
    let mut got = 0usize;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        got += chunk.len();
    }
    assert_eq!(got, size);
    println!(
        "download of {label}: {:.2} s; server peak RSS +{:.1} MiB over idle",
        started.elapsed().as_secs_f64(),
        server.status_kib("VmHWM:").saturating_sub(idle) as f64 / 1024.0
    );
}

/// The network drive with a file of `size`: a `PUT` to a new path (an
/// upload), a `LOCK` and a `PUT` over it (a draft), the `UNLOCK` that checks
/// the draft in, and a `GET`: time and the server's peak RSS for each.
async fn bench_dav(size: usize, label: &str) {
    let server = Server::start().await;
    let token = server.token().await;
    let http = reqwest::Client::new();
    let dav = |verb: &str, path: &str| {
        http.request(
            reqwest::Method::from_bytes(verb.as_bytes()).expect("method"),
            format!("{}/dav/{path}", server.base),
        )
        .basic_auth("admin", Some(&token))
    };
    let status = dav("MKCOL", "big").send().await.expect("MKCOL").status();
    assert_eq!(status, 201, "MKCOL");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.status_kib("VmRSS:");
    let report = |what: &str, secs: f64| {
        println!(
            "drive {what} of {label}: {:.2} s ({:.0} MiB/s); server RSS idle {:.1} MiB, peak +{:.1} MiB",
            secs,
            size as f64 / (1 << 20) as f64 / secs,
            idle as f64 / 1024.0,
            server.status_kib("VmHWM:").saturating_sub(idle) as f64 / 1024.0
        );
    };

    server.reset_peak();
    let started = Instant::now();
    let resp = dav("PUT", "big/drive.bin")
        .body(noise(size, 1))
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 201, "PUT new");
    report("PUT (upload)", started.elapsed().as_secs_f64());

    let resp = dav("LOCK", "big/drive.bin")
        .body(r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#)
        .send()
        .await
        .expect("LOCK");
    assert_eq!(resp.status(), 200, "LOCK");
    let lock = resp.headers()["lock-token"]
        .to_str()
        .expect("token")
        .to_string();
    server.reset_peak();
    let started = Instant::now();
    let resp = dav("PUT", "big/drive.bin")
        .header("If", format!("({lock})"))
        .body(noise(size, 2))
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 204, "PUT draft");
    report("PUT (draft)", started.elapsed().as_secs_f64());
    server.reset_peak();
    let started = Instant::now();
    let resp = dav("UNLOCK", "big/drive.bin")
        .header("Lock-Token", lock)
        .send()
        .await
        .expect("UNLOCK");
    assert_eq!(resp.status(), 204, "UNLOCK");
    report(
        "UNLOCK (check-in of the draft)",
        started.elapsed().as_secs_f64(),
    );

    server.reset_peak();
    let started = Instant::now();
    let mut resp = dav("GET", "big/drive.bin").send().await.expect("GET");
    let mut got = 0usize;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        got += chunk.len();
    }
    assert_eq!(got, size);
    report("GET", started.elapsed().as_secs_f64());
}

/// Pseudo-random bytes that do not compress, like real CAD/CAM data.
fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut content = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed;
    for chunk in content.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = chunk.len();
        chunk.copy_from_slice(&x.to_le_bytes()[..n]);
    }
    content
}

/// G-code-like text of about `size` bytes.
fn program(size: usize, feed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    let mut n = 0u64;
    while out.len() < size {
        n += 1;
        out.extend_from_slice(
            format!(
                "N{n} G1 X{}.{} Y{}.{} F{feed}\n",
                n % 997,
                n % 10,
                n % 613,
                n % 7
            )
            .as_bytes(),
        );
    }
    out
}

async fn upload(server: &Server, token: &str, path: &str, content: Vec<u8>) -> u64 {
    let form = reqwest::multipart::Form::new()
        .text("path", path.to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name("x"),
        );
    let resp = reqwest::Client::new()
        .post(format!("{}/api/files", server.base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 201, "upload {path}");
    let v: serde_json::Value = resp.json().await.expect("json");
    v["id"].as_u64().expect("id")
}

/// One GET measured: seconds, bytes read, the server's peak RSS over `idle` (KiB).
async fn measured_get(
    server: &Server,
    token: &str,
    path: &str,
    idle: u64,
) -> (f64, usize, u16, u64) {
    server.reset_peak();
    let started = Instant::now();
    let mut resp = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    let mut got = 0usize;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        got += chunk.len();
    }
    let secs = started.elapsed().as_secs_f64();
    let over = server.status_kib("VmHWM:").saturating_sub(idle);
    (secs, got, status, over)
}

async fn bench_content(quick: bool) {
    let mut server = Server::start().await;
    let token = server.token().await;
    let mib = |n: usize| n << 20;
    let (preview_size, diff_size, zip_files, zip_each) = if quick {
        (mib(20), mib(8), 4, mib(16))
    } else {
        (mib(200), mib(50), 8, mib(128))
    };
    let preview = upload(
        &server,
        &token,
        "big/program.nc",
        program(preview_size, 300),
    )
    .await;
    let a = upload(&server, &token, "big/diff.nc", program(diff_size, 300)).await;
    let http = reqwest::Client::new();
    http.post(format!("{}/api/files/{a}/checkout", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("checkout");
    let form = reqwest::multipart::Form::new()
        .text("message", "feeds")
        .part(
            "file",
            reqwest::multipart::Part::bytes(program(diff_size, 360)).file_name("x"),
        );
    let resp = http
        .post(format!("{}/api/files/{a}/checkin", server.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("checkin");
    assert!(resp.status().is_success());
    let history: serde_json::Value = http
        .get(format!("{}/api/files/{a}/history", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    let (to, from) = (
        history["versions"][0]["commit"]
            .as_str()
            .expect("commit")
            .to_string(),
        history["versions"][1]["commit"]
            .as_str()
            .expect("commit")
            .to_string(),
    );
    // Just under the 4 MiB limit, every line changed: the worst a
    // comparison is allowed to read, held to its deadline.
    let near = upload(&server, &token, "big/near.nc", program(mib(4) - 4096, 300)).await;
    http.post(format!("{}/api/files/{near}/checkout", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("checkout");
    let form = reqwest::multipart::Form::new()
        .text("message", "feeds")
        .part(
            "file",
            reqwest::multipart::Part::bytes(program(mib(4) - 4096, 360)).file_name("x"),
        );
    let resp = http
        .post(format!("{}/api/files/{near}/checkin", server.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("checkin");
    assert!(resp.status().is_success());
    let near_history: serde_json::Value = http
        .get(format!("{}/api/files/{near}/history", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    let near_diff = format!(
        "/api/files/{near}/diff?from={}&to={}",
        near_history["versions"][1]["commit"]
            .as_str()
            .expect("commit"),
        near_history["versions"][0]["commit"]
            .as_str()
            .expect("commit"),
    );
    for i in 0..zip_files {
        upload(
            &server,
            &token,
            &format!("zip/part-{i}.bin"),
            noise(zip_each, i as u64),
        )
        .await;
    }
    server.restart().await;
    // One small request first, so the idle figure includes a served request.
    let _ = measured_get(&server, &token, "/api/files", 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.status_kib("VmRSS:");
    println!(
        "content (a restarted server): RSS idle {:.1} MiB",
        idle as f64 / 1024.0
    );

    let (secs, _, status, over) = measured_get(
        &server,
        &token,
        &format!("/api/files/{preview}/preview"),
        idle,
    )
    .await;
    assert_eq!(status, 200);
    println!(
        "preview of a {} MiB text file: {:.3} s; server peak RSS +{:.1} MiB over idle",
        preview_size >> 20,
        secs,
        over as f64 / 1024.0
    );
    let (secs, _, status, over) = measured_get(
        &server,
        &token,
        &format!("/api/files/{a}/diff?from={from}&to={to}"),
        idle,
    )
    .await;
    assert_eq!(status, 422);
    println!(
        "diff of two {} MiB text versions: refused (422) in {:.3} s; server peak RSS +{:.1} MiB over idle",
        diff_size >> 20,
        secs,
        over as f64 / 1024.0
    );
    let (secs, got, status, over) =
        measured_get(&server, &token, "/api/folders/zip?path=zip", idle).await;
    assert_eq!(status, 200);
    assert!(got >= zip_files * zip_each);
    println!(
        "folder zip of {} MiB ({zip_files} files): {:.2} s ({:.0} MiB/s); server peak RSS +{:.1} MiB over idle",
        (zip_files * zip_each) >> 20,
        secs,
        (got >> 20) as f64 / secs,
        over as f64 / 1024.0
    );
    // Last: what it leaves in the allocator would count against the others.
    let (secs, got, status, over) = measured_get(&server, &token, &near_diff, idle).await;
    assert_eq!(status, 200);
    println!(
        "diff of two 4 MiB text versions, every line changed: {:.2} s, {} MiB of diff; server peak RSS +{:.1} MiB over idle",
        secs,
        got >> 20,
        over as f64 / 1024.0
    );
}

/// A change set's check-in of `files` × `size` (one commit) against the
/// same files checked in one by one; then a set holding one `big` file.
async fn bench_change_set(files: usize, size: usize, reps: usize, big: usize) {
    let server = Server::start().await;
    let token = server.token().await;
    let http = reqwest::Client::new();
    let base = &server.base;
    let mut ids = Vec::new();
    for i in 0..files {
        let form = reqwest::multipart::Form::new()
            .text("path", format!("set/part-{i}.bin"))
            .part(
                "file",
                reqwest::multipart::Part::bytes(vec![1u8; 64]).file_name("x"),
            );
        let created: serde_json::Value = http
            .post(format!("{base}/api/files"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("json");
        ids.push(created["id"].as_u64().expect("id"));
    }
    let checkout_all = async || {
        let resp = http
            .post(format!("{base}/api/checkout"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "ids": ids }))
            .send()
            .await
            .expect("checkout set");
        assert!(
            resp.status().is_success(),
            "checkout set: {}",
            resp.status()
        );
    };
    let mut set_secs = Vec::new();
    let mut one_by_one_secs = Vec::new();
    let mut seed = 1;
    for _ in 0..reps {
        checkout_all().await;
        let mut form = reqwest::multipart::Form::new().text("message", "bench set");
        for i in 0..files {
            seed += 1;
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(noise(size, seed))
                    .file_name(format!("set/part-{i}.bin")),
            );
        }
        let started = Instant::now();
        let resp = http
            .post(format!("{base}/api/checkin"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .expect("checkin set");
        set_secs.push(started.elapsed().as_secs_f64());
        assert!(resp.status().is_success(), "checkin set: {}", resp.status());

        checkout_all().await;
        let mut parts = Vec::new();
        for _ in 0..files {
            seed += 1;
            parts.push(noise(size, seed));
        }
        let started = Instant::now();
        for (id, content) in ids.iter().zip(parts) {
            let form = reqwest::multipart::Form::new()
                .text("message", "bench single")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(content).file_name("x"),
                );
            let resp = http
                .post(format!("{base}/api/files/{id}/checkin"))
                .bearer_auth(&token)
                .multipart(form)
                .send()
                .await
                .expect("checkin");
            assert!(resp.status().is_success(), "checkin: {}", resp.status());
        }
        one_by_one_secs.push(started.elapsed().as_secs_f64());
    }
    let (set, single) = (median(set_secs), median(one_by_one_secs));
    println!(
        "change set of {files} files × {} KiB: median {:.0} ms in one commit; the same one by one {:.0} ms ({:.2}× the set's time; medians of {reps})",
        size >> 10,
        set * 1000.0,
        single * 1000.0,
        single / set
    );

    // One big file in a set: streamed and spooled like a single check-in.
    checkout_all().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.status_kib("VmRSS:");
    server.reset_peak();
    let mut form = reqwest::multipart::Form::new().text("message", "bench big set");
    for i in 0..files {
        seed += 1;
        let content = if i == 0 {
            noise(big, seed)
        } else {
            noise(size, seed)
        };
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name(format!("set/part-{i}.bin")),
        );
    }
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/api/checkin"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("checkin big set");
    assert!(
        resp.status().is_success(),
        "checkin big set: {}",
        resp.status()
    );
    println!(
        "change set with a {} MiB file and {} × {} KiB: {:.2} s; server RSS idle {:.1} MiB, peak +{:.1} MiB",
        big >> 20,
        files - 1,
        size >> 10,
        started.elapsed().as_secs_f64(),
        idle as f64 / 1024.0,
        server.status_kib("VmHWM:").saturating_sub(idle) as f64 / 1024.0
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a plain word picks one section.
    let only = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let quick = std::env::var("LATCH_BENCH_QUICK").is_ok_and(|v| v == "1");
    println!(
        "# Latch core figures{}",
        if quick { " (quick)" } else { "" }
    );
    if run("render") {
        for n in if quick {
            vec![100, 1_000]
        } else {
            vec![1_000, 10_000, 100_000]
        } {
            bench_render(n);
        }
    }
    if run("checkout") {
        let server = Server::start().await;
        let token = server.token().await;
        let pairs = if quick { 100 } else { 1_000 };
        bench_checkout_cancel(&server, &token, pairs, 1).await;
        bench_checkout_cancel(&server, &token, pairs, 8).await;
    }
    if run("checkin") {
        bench_checkin(1 << 20, "1 MiB").await;
        bench_checkin(
            if quick { 20 << 20 } else { 200 << 20 },
            if quick { "20 MiB" } else { "200 MiB" },
        )
        .await;
    }
    if run("content") {
        bench_content(quick).await;
    }
    if run("dav") {
        bench_dav(
            if quick { 20 << 20 } else { 200 << 20 },
            if quick { "20 MiB" } else { "200 MiB" },
        )
        .await;
    }
    if run("set") {
        bench_change_set(
            10,
            1 << 20,
            if quick { 2 } else { 7 },
            if quick { 20 << 20 } else { 200 << 20 },
        )
        .await;
    }
    if run("history") {
        let counts = if quick {
            vec![1_000, 5_000]
        } else {
            vec![1_000, 10_000, 100_000]
        };
        bench_history(&counts).await;
    }
    if run("page") {
        for n in if quick {
            vec![100, 500]
        } else {
            vec![500, 5_000]
        } {
            bench_page(n).await;
        }
    }
    if run("scale") {
        bench_scale(quick).await;
    }
    if run("clone") {
        if quick {
            bench_clone(30, 100, 2).await;
        } else {
            bench_clone(300, 1_000, 7).await;
        }
    }
}

/// Fills a vault with `n` small files in bulk uploads of 200 (every tenth
/// checked out), then measures the dashboard as a browser gets it.
async fn bench_page(n: usize) {
    let server = Server::start().await;
    let token = server.token().await;
    let http = reqwest::Client::new();
    let ids = bulk_fill(&server, &token, n, 25, "op-").await;
    let held: Vec<u64> = ids.iter().copied().step_by(10).take(200).collect();
    let resp = http
        .post(format!("{}/api/checkout", server.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"ids": held, "comment": "on the machine"}))
        .send()
        .await
        .expect("checkout");
    assert!(resp.status().is_success(), "check-out refused");

    // The page over HTTP, as a signed-in browser asks for it.
    let browser_like = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let signed_in = browser_like
        .post(format!("{}/login", server.base))
        .header("Origin", &server.base)
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .expect("sign in");
    assert!(signed_in.status().is_success() || signed_in.status().is_redirection());
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..9 {
        let started = Instant::now();
        let body = browser_like
            .get(format!("{}/", server.base))
            .send()
            .await
            .expect("dashboard")
            .text()
            .await
            .expect("dashboard body");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
        assert!(body.contains("file-list"), "not the dashboard");
    }
    let mut line = format!(
        "dashboard page, {n:>5} files: {:.0} KiB of HTML, answered in median {:.1} ms",
        bytes as f64 / 1024.0,
        median(times)
    );
    match chromium_timings(&server.base).await {
        Some((interactive, loaded)) => line.push_str(&format!(
            "; Chromium: interactive median {interactive:.0} ms, DOMContentLoaded done {loaded:.0} ms"
        )),
        None => line.push_str("; Chromium: not measured (install chromium and chromium-driver)"),
    }
    println!("{line}");
}

/// Chromium's `domInteractive` and `domContentLoadedEventEnd` for the
/// dashboard (medians of 7 loads after one warm-up), through chromedriver.
async fn chromium_timings(base: &str) -> Option<(f64, f64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .ok()?
        .port();
    let mut driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let result = async {
        let wd = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{wd}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let session: serde_json::Value = http
            .post(format!("{wd}/session"))
            .json(&serde_json::json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"]}
            }}}))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let id = session["value"]["sessionId"].as_str()?.to_string();
        let s = format!("{wd}/session/{id}");
        let go = |url: String| {
            let http = http.clone();
            let s = s.clone();
            async move {
                http.post(format!("{s}/url"))
                    .json(&serde_json::json!({"url": url}))
                    .send()
                    .await
                    .ok()
            }
        };
        let script = |body: &'static str| {
            let http = http.clone();
            let s = s.clone();
            async move {
                let v: serde_json::Value = http
                    .post(format!("{s}/execute/sync"))
                    .json(&serde_json::json!({"script": body, "args": []}))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                Some(v["value"].clone())
            }
        };
        go(format!("{base}/login")).await?;
        script(
            "document.querySelector('[name=username]').value='admin';\
             document.querySelector('[name=password]').value='bench-password-1';\
             document.querySelector('[name=password]').form.submit();",
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (mut interactive, mut loaded) = (Vec::new(), Vec::new());
        for round in 0..8 {
            go(format!("{base}/")).await?;
            let t = script(
                "const n = performance.getEntriesByType('navigation')[0];\
                 return [n.domInteractive, n.domContentLoadedEventEnd, document.querySelectorAll('.card').length];",
            )
            .await?;
            if t[2].as_u64().unwrap_or(0) == 0 {
                return None;
            }
            if round > 0 {
                interactive.push(t[0].as_f64()?);
                loaded.push(t[1].as_f64()?);
            }
        }
        let _ = http.delete(&s).send().await;
        Some((median(interactive), median(loaded)))
    }
    .await;
    let _ = driver.kill();
    let _ = driver.wait();
    result
}

// ---------------------------------------------------------------- scale

/// Uploads `files` small G-code files over HTTP in bulk uploads of 200
/// (each one commit and its `created` events), spread over `folders`
/// folders `cell-NNN`, named `{prefix}NNNNNN.nc`; their ids in upload order.
async fn bulk_fill(
    server: &Server,
    token: &str,
    files: usize,
    folders: usize,
    prefix: &str,
) -> Vec<u64> {
    let http = reqwest::Client::new();
    let mut ids = Vec::with_capacity(files);
    for chunk in 0..files.div_ceil(200) {
        let mut form = reqwest::multipart::Form::new()
            .text("folder", format!("cell-{:03}", chunk % folders))
            .text("revision", "1.0");
        for i in chunk * 200..((chunk + 1) * 200).min(files) {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(format!("G0 X{i}\nM30\n").into_bytes())
                    .file_name(format!("{prefix}{i:06}.nc")),
            );
        }
        let resp: serde_json::Value = http
            .post(format!("{}/api/files/bulk", server.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("bulk upload")
            .json()
            .await
            .expect("bulk json");
        let got = resp["files"].as_array().cloned().unwrap_or_default();
        assert!(!got.is_empty(), "bulk upload refused: {}", resp["error"]);
        ids.extend(got.iter().filter_map(|f| f["id"].as_u64()));
    }
    ids
}

/// Files in bulk uploads of 200 over HTTP (each with its `created` event
/// and Git commit), every 100th checked out; then, with the server
/// stopped, the rest of the events written through the store's own
/// `Tx::record` in transactions of 10,000 (a check-out/cancel pair per
/// event over HTTP would take hours). The log keeps its newest
/// `EVENT_RETENTION` as it does in service.
async fn scale_vault(server: &Server, token: &str, files: usize) -> Vec<u64> {
    let http = reqwest::Client::new();
    let ids = bulk_fill(server, token, files, 100, "part-").await;
    let held: Vec<u64> = ids.iter().copied().step_by(100).collect();
    for chunk in held.chunks(100) {
        let resp = http
            .post(format!("{}/api/checkout", server.base))
            .bearer_auth(token)
            .json(&serde_json::json!({"ids": chunk, "comment": "on the machine"}))
            .send()
            .await
            .expect("checkout");
        assert!(resp.status().is_success(), "check-out refused");
    }
    ids
}

/// Writes events until the log's sequence reaches `events`.
fn scale_events(db: &std::path::Path, ids: &[u64], events: u64) {
    use latch::store::{EventDraft, EventKind, FileSnapshot, Store};
    let Ok(store) = Store::open(db) else {
        panic!("open {}", db.display());
    };
    let sample = store.file(ids[0]).expect("read").expect("a file");
    let mut seq = store.last_seq().expect("seq");
    while seq < events {
        let batch = (events - seq).min(10_000);
        store
            .write(|tx| {
                for i in 0..batch {
                    let mut rec = sample.clone();
                    rec.id = ids[(seq + i) as usize % ids.len()];
                    tx.record(EventDraft {
                        kind: EventKind::Edited,
                        actor: "admin".into(),
                        note: None,
                        previous_holder: None,
                        file: FileSnapshot::Present(Box::new(rec)),
                    })?;
                }
                Ok(())
            })
            .expect("write events");
        seq += batch;
    }
}

/// Median of `reps` GETs: milliseconds and the body's bytes.
async fn timed_gets(client: &reqwest::Client, url: &str, reps: usize) -> (f64, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..reps {
        let started = Instant::now();
        let resp = client.get(url).send().await.expect("get");
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        bytes = resp.bytes().await.expect("body").len();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (median(times), bytes)
}

/// Stops the server as an operator does (SIGTERM: redb closes cleanly, so
/// the next start has nothing to repair).
fn stop_gently(server: &mut Server) {
    if !matches!(server.child.try_wait(), Ok(None)) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let _ = server.child.wait();
}

/// `LATCH_BENCH_SCALE_DIR=/some/dir` keeps the vault there and measures it
/// again on the next run without building it (15 minutes at full size).
async fn bench_scale(quick: bool) {
    let (files, events) = if quick {
        (2_000, 20_000)
    } else {
        (100_000, 1_000_000)
    };
    let kept = std::env::var_os("LATCH_BENCH_SCALE_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().expect("temp dir");
    let root = kept.unwrap_or_else(|| temp.path().to_path_buf());
    let (child, base) = Server::spawn(&root).await;
    let mut server = Server {
        child,
        base,
        _dir: temp,
    };
    let token = server.token().await;
    let db = root.join("data").join("latch.redb");
    let built = std::fs::metadata(root.join("data").join("built")).is_ok();
    if !built {
        let started = Instant::now();
        let ids = scale_vault(&server, &token, files).await;
        let uploaded = started.elapsed();
        stop_gently(&mut server);
        let started = Instant::now();
        let db = db.clone();
        tokio::task::spawn_blocking(move || scale_events(&db, &ids, events))
            .await
            .expect("events");
        let _ = std::fs::write(root.join("data").join("built"), b"");
        println!(
            "scale vault: {files} files in {:.0} s over HTTP, events to {events} in {:.0} s through the store",
            uploaded.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("scale vault: as built in {}", root.display());
    }
    // Start-up, open + reconcile with nothing to reconcile: spawn to the
    // first answer from /healthz, best of three.
    let mut starts = Vec::new();
    for _ in 0..3 {
        stop_gently(&mut server);
        let t = Instant::now();
        let (child, base) = Server::spawn(&root).await;
        starts.push(t.elapsed().as_secs_f64() * 1000.0);
        server.child = child;
        server.base = base;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.status_kib("VmRSS:");
    println!(
        "scale start-up to /healthz: best {:.0} ms (goal ≤ 1000); idle RSS {:.1} MiB (goal ≤ 128)",
        starts.iter().copied().fold(f64::MAX, f64::min),
        idle as f64 / 1024.0
    );
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let signed_in = browser
        .post(format!("{}/login", server.base))
        .header("Origin", &server.base)
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .expect("sign in");
    assert!(signed_in.status().is_success() || signed_in.status().is_redirection());
    let (ms, bytes) = timed_gets(&browser, &format!("{}/", server.base), 9).await;
    println!(
        "scale dashboard first page: median {ms:.1} ms, {:.0} KiB (goal ≤ 20 ms)",
        bytes as f64 / 1024.0
    );
    let (ms, bytes) = timed_gets(&browser, &format!("{}/?q=part-0123", server.base), 9).await;
    println!(
        "scale dashboard search ?q=part-0123: median {ms:.1} ms, {:.0} KiB (goal ≤ 20 ms)",
        bytes as f64 / 1024.0
    );
    // The first page after a change: the list is read again once.
    let http = reqwest::Client::new();
    let mut after_change = Vec::new();
    for _ in 0..3 {
        for action in ["checkout", "cancel"] {
            let resp = http
                .post(format!("{}/api/files/2/{action}", server.base))
                .bearer_auth(&token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .expect("change");
            assert!(resp.status().is_success(), "{action}: {}", resp.status());
            after_change.push(
                timed_gets(&browser, &format!("{}/", server.base), 1)
                    .await
                    .0,
            );
        }
    }
    println!(
        "scale dashboard first page right after a change: median {:.1} ms",
        median(after_change)
    );
    let api = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .expect("client");
    let idle = server.status_kib("VmRSS:");
    server.reset_peak();
    let (ms, bytes) = timed_gets(&api, &format!("{}/api/files", server.base), 3).await;
    println!(
        "scale GET /api/files: median {ms:.0} ms, {:.1} MiB; server peak RSS +{:.1} MiB over idle",
        bytes as f64 / (1 << 20) as f64,
        server.status_kib("VmHWM:").saturating_sub(idle) as f64 / 1024.0
    );
    let last: u64 = api
        .get(format!("{}/api/activity", server.base))
        .send()
        .await
        .expect("activity")
        .json::<serde_json::Value>()
        .await
        .expect("activity json")["last_seq"]
        .as_u64()
        .expect("last_seq");
    let since = last.saturating_sub(5_000);
    let (ms, bytes) = timed_gets(
        &api,
        &format!("{}/api/activity?since={since}", server.base),
        9,
    )
    .await;
    println!(
        "scale GET /api/activity?since=last-5000 (last {last}): median {ms:.1} ms, {:.0} KiB",
        bytes as f64 / 1024.0
    );
    let lfs = reqwest::Client::new();
    let mut times = Vec::new();
    let mut pages = 0;
    let mut cursor = String::new();
    let mut locks = 0;
    loop {
        let started = Instant::now();
        let body: serde_json::Value = lfs
            .get(format!(
                "{}/vault.git/info/lfs/locks?limit=100{cursor}",
                server.base
            ))
            .basic_auth("admin", Some(&token))
            .header("Accept", "application/vnd.git-lfs+json")
            .send()
            .await
            .expect("locks")
            .json()
            .await
            .expect("locks json");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        pages += 1;
        locks += body["locks"].as_array().map_or(0, Vec::len);
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    println!(
        "scale LFS locks, pages of 100: {locks} locks in {pages} pages, median {:.1} ms a page",
        median(times)
    );
    println!(
        "scale idle RSS after the above: {:.1} MiB",
        server.status_kib("VmRSS:") as f64 / 1024.0
    );
}

// ---------------------------------------------------------------- history

/// Files the history vault spreads its commits over.
const HISTORY_FILES: u64 = 1_000;

/// Grows one vault through `counts` commits on `main` (written straight
/// into Git with trailers, as a crashed Latch would leave them, so the
/// database is rebuilt by reconciliation: quick to make, and the rebuild
/// is timed too), and at each count times file 1's history: through the
/// library (index and walk) and as a real server answers `GET history`.
/// File 1 gets 10 versions whatever the count; the others share the rest.
async fn bench_history(counts: &[u64]) {
    use latch::files::{Files, LockAging};
    use latch::vault::{Author, Vault};
    println!("\n## History against the vault's commits (goal: <= 5 ms at 100,000)");
    println!(
        "| commits on main | versions of the file | reconcile (s) | history, index (ms) | history, Git walk (ms) | GET history (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let config = latch::config::Config::new(&data);
    let vault = Vault::open_or_init(&config.vault_path()).expect("vault");
    let author = Author {
        username: "admin",
        display_name: "Administrator",
    };
    let last = counts.last().copied().unwrap_or(0);
    let mut versions = vec![0u64; HISTORY_FILES as usize + 1];
    let mut made = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for &count in counts {
        let started = Instant::now();
        while made < count {
            // The first commits create the files; file 1 is checked in
            // again at ten points spread over the largest count.
            let id = if made < HISTORY_FILES {
                made + 1
            } else if made.is_multiple_of((last / 10).max(1)) && versions[1] < 10 {
                1
            } else {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                2 + rng % (HISTORY_FILES - 1)
            };
            let n = versions[id as usize];
            versions[id as usize] += 1;
            let content = format!("file {id} version {n} commit {made}");
            commit_version(&vault, &author, id, n, content.as_bytes());
            made += 1;
        }
        let wrote = started.elapsed();
        let store = match latch::store::Store::open(&config.db_path()) {
            Ok(store) => store,
            Err(e) => panic!("open the database: {e}"),
        };
        let files = Files::new(
            store,
            vault.clone(),
            config.spool_dir(),
            config.max_upload,
            config.handoff_window,
            LockAging::of(&config),
        )
        .expect("files");
        let started = Instant::now();
        files.reconcile().expect("reconcile");
        let reconciled = started.elapsed().as_secs_f64();
        let (_, indexed) = files.history(1).await.expect("history");
        let walked = files.history_walked(1).await.expect("walk");
        assert_eq!(indexed, walked, "the index equals the walk");
        let mut index_ms = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            files.history(1).await.expect("history");
            index_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let mut walk_ms = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            files.history_walked(1).await.expect("walk");
            walk_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        drop(files);
        // The same request as a person's browser makes it, to the real server.
        let (mut child, base) = Server::spawn(dir.path()).await;
        let client = reqwest::Client::new();
        let token = admin_token(&base).await;
        let mut get_ms = Vec::new();
        for _ in 0..100 {
            let t = Instant::now();
            let resp = client
                .get(format!("{base}/api/files/1/history"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("history");
            assert_eq!(resp.status(), 200);
            resp.bytes().await.expect("body");
            get_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "| {count} | {} | {reconciled:.2} | {:.3} | {:.1} | {:.2} |",
            indexed.len(),
            median(index_ms),
            median(walk_ms),
            median(get_ms),
        );
        eprintln!(
            "(wrote the commits up to {count} in {:.1} s)",
            wrote.as_secs_f64()
        );
    }
    // An upgrade from schema 4 at the largest count: the index alone is
    // built, by walking `main` once.
    {
        let db = redb::Database::create(config.db_path()).expect("database");
        let w = db.begin_write().expect("write");
        w.delete_table(latch::store::VERSIONS)
            .expect("drop the index");
        let mut meta = w.open_table(latch::store::META).expect("meta");
        meta.insert("schema_version", "4").expect("schema 4");
        meta.remove(latch::files::versions::INDEXED)
            .expect("marker");
        drop(meta);
        w.commit().expect("commit");
    }
    let started = Instant::now();
    let store = match latch::store::Store::open(&config.db_path()) {
        Ok(store) => store,
        Err(e) => panic!("open the database: {e}"),
    };
    let files = Files::new(
        store,
        vault.clone(),
        config.spool_dir(),
        config.max_upload,
        config.handoff_window,
        LockAging::of(&config),
    )
    .expect("files");
    files.reconcile().expect("reconcile");
    println!(
        "\nUpgrade from schema 4 at {last} commits (migration, then the index built from Git): {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// `git` with no user or system configuration, in `dir`; its time and output.
fn timed_git(
    home: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
    trace: bool,
) -> (f64, std::process::Output) {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR");
    if trace {
        cmd.env("GIT_TRACE_CURL", "1")
            .env("GIT_TRACE_CURL_NO_DATA", "1");
    }
    let t = Instant::now();
    let out = cmd.output().expect("run git");
    let took = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.contains("header"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    (took, out)
}

/// HTTP requests in a `GIT_TRACE_CURL` trace.
fn curl_requests(stderr: &[u8]) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("=> Send header: GET ") || l.contains("=> Send header: POST "))
        .count()
}

/// A clone of a vault of `files` files and `commits` commits: over the
/// smart protocol against `git clone file://` of the vault's own folder
/// (alternating, medians), `--depth 1`, a fetch of 10 new check-ins and
/// its request count, and the dumb protocol for the record.
async fn bench_clone(files: u64, commits: u64, runs: usize) {
    use latch::vault::{Author, Vault};
    println!(
        "\n## Clone: {files} files x {commits} commits (goal: smart <= 1.5x file://; fetch of 10 commits <= 5 requests)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let config = latch::config::Config::new(&data);
    let vault = Vault::open_or_init(&config.vault_path()).expect("vault");
    let author = Author {
        username: "admin",
        display_name: "Administrator",
    };
    let mut versions = vec![0u64; files as usize + 1];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for made in 0..commits {
        let id = if made < files {
            made + 1
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            1 + rng % files
        };
        let n = versions[id as usize];
        versions[id as usize] += 1;
        let content = program(4096 + (id as usize % 8) * 1024, 100 + (made % 900) as u32);
        commit_version(&vault, &author, id, n, &content);
    }
    drop(vault);
    let (mut child, base) = Server::spawn(dir.path()).await;
    let client = reqwest::Client::new();
    let token = admin_token(&base).await;
    let url = format!(
        "http://admin:{token}@{}/vault.git",
        base.trim_start_matches("http://")
    );
    let file_url = format!("file://{}", config.vault_path().display());
    let scratch = tempfile::tempdir().expect("scratch");
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let here = scratch.path();
    let mut k = 0;
    let mut clone = |source: &str, extra: &[&str]| {
        k += 1;
        let target = here.join(format!("c{k}"));
        let args = [
            &["clone", "-q"][..],
            extra,
            &[source, target.to_str().expect("utf-8")],
        ]
        .concat();
        let (took, out) = timed_git(&home, here, &args, true);
        let _ = std::fs::remove_dir_all(&target);
        (took * 1000.0, curl_requests(&out.stderr))
    };
    let (mut smart, mut local, mut shallow) = (Vec::new(), Vec::new(), Vec::new());
    let mut smart_requests = 0;
    // A warm-up of each, then alternating runs.
    clone(&url, &[]);
    clone(&file_url, &[]);
    for _ in 0..runs {
        let (t, n) = clone(&url, &[]);
        smart.push(t);
        smart_requests = n;
        local.push(clone(&file_url, &[]).0);
        shallow.push(clone(&url, &["--depth", "1"]).0);
    }
    let mut dumb = Vec::new();
    let mut dumb_requests = 0;
    for _ in 0..runs.min(3) {
        let (t, n) = clone(&url, &["-c", "protocol.version=0"]);
        dumb.push(t);
        dumb_requests = n;
    }
    // Fetches of 10 new check-ins into one clone.
    let target = here.join("fetcher");
    timed_git(
        &home,
        here,
        &["clone", "-q", &url, target.to_str().expect("utf-8")],
        false,
    );
    let mut fetch_ms = Vec::new();
    let mut fetch_requests = Vec::new();
    for round in 0..runs {
        for i in 0..10u64 {
            let id = 1 + (round as u64 * 10 + i) % files;
            let resp = client
                .post(format!("{base}/api/files/{id}/checkout"))
                .bearer_auth(&token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .expect("checkout");
            assert_eq!(resp.status(), 200, "checkout");
            let form = reqwest::multipart::Form::new()
                .text("message", format!("fetch round {round}"))
                .text("bump", "minor")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(program(
                        4096,
                        5000 + round as u32 * 10 + i as u32,
                    ))
                    .file_name("x"),
                );
            let resp = client
                .post(format!("{base}/api/files/{id}/checkin"))
                .bearer_auth(&token)
                .multipart(form)
                .send()
                .await
                .expect("checkin");
            assert_eq!(resp.status(), 200, "checkin");
        }
        let (took, out) = timed_git(&home, &target, &["fetch", "-q"], true);
        fetch_ms.push(took * 1000.0);
        fetch_requests.push(curl_requests(&out.stderr));
    }
    let _ = child.kill();
    let _ = child.wait();
    let (smart, local) = (median(smart), median(local));
    println!("| what | median (ms) | HTTP requests |");
    println!("|---|---|---|");
    println!("| `git clone` over HTTP, smart protocol v2 | {smart:.0} | {smart_requests} |");
    println!("| `git clone file://` of the vault | {local:.0} | - |");
    println!("| ratio smart / file:// | {:.2} | |", smart / local);
    println!(
        "| `git clone --depth 1` over HTTP | {:.0} | |",
        median(shallow)
    );
    println!(
        "| `git fetch` of 10 new check-ins | {:.0} | {} (most) |",
        median(fetch_ms),
        fetch_requests.iter().max().copied().unwrap_or(0)
    );
    println!(
        "| `git clone` over HTTP, dumb protocol (v0 client) | {:.0} | {dumb_requests} |",
        median(dumb)
    );
}
