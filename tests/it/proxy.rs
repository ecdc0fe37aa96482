//! Latch behind nginx, configured from `docs/nginx.conf` itself: the
//! documented config carries WebSocket, SSE, form posts and large uploads; a
//! proxy that drops `Upgrade` leaves browsers live on SSE; and nginx's
//! default response buffering does not hold SSE events back (Latch sends
//! `X-Accel-Buffering: no`).
//!
//! nginx runs unprivileged-safe: `-p tmpdir`, a free loopback port, temp
//! paths and logs in the temp dir. Tests skip when nginx (or, for the
//! browser parts, Chromium) is missing.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::browser::{self, Driver, Options};
use crate::common::live::{sse_open, ws_try};
use crate::common::{self, Client, TestApp, USER_PASSWORD, free_port, login_at};
use serde_json::json;

/// Only a guard against hanging; the properties tested are "it arrives".
const WAIT: Duration = Duration::from_secs(15);

/// How the documented config is changed for a test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    /// `docs/nginx.conf` as written.
    Documented,
    /// A proxy that loses WebSocket upgrades: no `Upgrade`, no
    /// `Connection: upgrade`, HTTP/1.0 to the upstream.
    DropsUpgrade,
    /// nginx's default: response buffering on everywhere (the `/events`
    /// location's `proxy_buffering off` removed).
    DefaultBuffering,
    /// Default buffering plus a site-wide gzip that covers
    /// `text/event-stream`: gzip holds output until it has a block to
    /// compress, unless the upstream said `X-Accel-Buffering: no`.
    BufferingAndGzip,
    /// `BufferingAndGzip` with Latch's `X-Accel-Buffering: no` ignored: the
    /// control showing that header is what keeps events flowing.
    BufferingAndGzipDeaf,
}

/// Replaces the one active line that starts with `directive` (whitespace
/// collapsed); panics when the documented config no longer has exactly one,
/// so the doc cannot drift away from what is tested.
fn replace_directive(conf: &str, directive: &str, with: &str) -> String {
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let hits = conf
        .lines()
        .filter(|l| norm(l).starts_with(directive))
        .count();
    assert_eq!(
        hits, 1,
        "docs/nginx.conf should have exactly one active `{directive}`"
    );
    conf.lines()
        .map(|l| {
            if norm(l).starts_with(directive) {
                with.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The documented config, adjusted to run here as `variant`.
fn nginx_conf(upstream: SocketAddr, port: u16, dir: &Path, variant: Variant) -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx.conf"))
            .expect("docs/nginx.conf");
    // Comments out: the commented HTTPS block must not match substitutions.
    let mut conf: String = doc
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let d = dir.display();
    conf = replace_directive(&conf, "worker_processes", "worker_processes 1;");
    conf = replace_directive(
        &conf,
        "server 127.0.0.1:8000;",
        &format!("server {upstream};"),
    );
    conf = replace_directive(&conf, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    conf = replace_directive(
        &conf,
        "http {",
        &format!(
            "http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    \
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;"
        ),
    );
    match variant {
        Variant::Documented => {}
        Variant::DropsUpgrade => {
            conf = replace_directive(&conf, "proxy_http_version 1.1;", "proxy_http_version 1.0;");
            conf = replace_directive(
                &conf,
                "proxy_set_header Upgrade",
                "proxy_set_header Upgrade \"\";",
            );
            conf = replace_directive(
                &conf,
                "proxy_set_header Connection",
                "proxy_set_header Connection \"\";",
            );
        }
        Variant::DefaultBuffering => {
            conf = replace_directive(&conf, "proxy_buffering off;", "");
        }
        Variant::BufferingAndGzip | Variant::BufferingAndGzipDeaf => {
            let ignore = if variant == Variant::BufferingAndGzipDeaf {
                "proxy_ignore_headers X-Accel-Buffering;"
            } else {
                ""
            };
            conf = replace_directive(&conf, "proxy_buffering off;", ignore);
            conf = replace_directive(
                &conf,
                "map $http_upgrade",
                "gzip on; gzip_min_length 0; gzip_types text/event-stream;\n    map $http_upgrade $connection_upgrade {",
            );
        }
    }
    conf
}

/// nginx in front of an app; stopped (its whole process group) on drop.
struct Nginx {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: SocketAddr, variant: Variant) -> Nginx {
        let dir = tempfile::tempdir().expect("nginx dir");
        let port = free_port();
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, nginx_conf(upstream, port, dir.path(), variant))
            .expect("write nginx.conf");
        let mut globals = format!(
            "daemon off; pid {}/nginx.pid; error_log stderr;",
            dir.path().display()
        );
        // As root, workers would drop to `nobody`, who cannot write the temp
        // dir; keep them as the user running the test.
        if is_root() {
            globals.push_str(" user root;");
        }
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg("stderr")
            .arg("-g")
            .arg(&globals)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("start nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        {
            let http = reqwest::Client::new();
            let deadline = Instant::now() + WAIT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!("nginx exited ({status}): {err}");
                }
                if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
                    && r.status() == 200
                {
                    break;
                }
                assert!(Instant::now() < deadline, "nginx did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Nginx {
                child,
                base: format!("http://{addr}"),
                _dir: dir,
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The group holds the master and its workers.
        common::stop_process_group(&mut self.child);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Latch believing the local nginx's X-Forwarded-* headers, as documented.
async fn app_behind_proxy() -> TestApp {
    TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await
}

/// `GET /events` as a browser's EventSource sends it (reqwest decodes no
/// gzip here: a gzip stream is only checked for bytes arriving).
fn sse_request(base: &str, client: &Client, gzip: bool) -> reqwest::RequestBuilder {
    let rb = reqwest::Client::new()
        .get(format!("{base}/events"))
        .header("cookie", client.cookie_header())
        .header("accept", "text/event-stream");
    if gzip {
        rb.header("accept-encoding", "gzip")
    } else {
        rb
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_config_carries_websocket_sse_form_posts_and_large_uploads() {
    if !common::have_tool("nginx", "nginx") {
        return;
    }
    let app = app_behind_proxy().await;
    app.create_user("alice", "user").await;
    app.create_user("bob", "user").await;
    let nginx = Nginx::start(app.addr, Variant::Documented).await;
    let alice = login_at(&nginx.base, "alice", USER_PASSWORD).await;
    let bob = login_at(&nginx.base, "bob", USER_PASSWORD).await;

    // 3 MiB: above nginx's default 1 MiB body limit, so the doc's limit is in force.
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let id = alice.upload_ok("parts/big.mcam", &big).await;
    assert_eq!(alice.content(id, None).await.len(), big.len());

    // WebSocket upgrade through the proxy, Origin checked against the Host it passes.
    let mut ws = ws_try(
        &nginx.base,
        Some(&alice.cookie_header()),
        Some(&nginx.base),
        "",
    )
    .await
    .unwrap_or_else(|e| panic!("the WebSocket upgrade passes the proxy: {e:?}"));
    let mut sse = sse_open(&nginx.base, &alice, "", &[("accept", "text/event-stream")]).await;
    assert_eq!(bob.checkout(id, "through nginx").await.status(), 200);
    let frame = ws.text_containing("data-locked-by=\"bob\"", WAIT).await;
    assert!(
        frame.is_some(),
        "the check-out reached the WebSocket through nginx"
    );
    assert!(
        sse.next_of("locked", WAIT).await.is_some(),
        "the check-out reached the SSE stream through nginx"
    );
    assert_eq!(bob.cancel(id).await.status(), 200);
    assert!(sse.next_of("unlocked", WAIT).await.is_some());
    drop(ws);

    // A browser through the proxy: form login, live over WebSocket, an htmx post.
    if !browser::browser_available() {
        return;
    }
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&nginx.base, "alice", USER_PASSWORD).await;
    assert_eq!(
        b.wait_live().await,
        "ws",
        "the documented proxy keeps WebSocket"
    );
    b.type_into(&format!("#file-{id} input.comment"), "via the proxy")
        .await;
    b.click(&format!("#file-{id} form.checkout button[type=submit]"))
        .await;
    b.wait_until(
        &format!("document.getElementById('file-{id}').dataset.lockedBy === 'alice'"),
        "Alice's check-out through the proxy",
    )
    .await;
    assert_eq!(bob.file(id).await["lock"]["comment"], "via the proxy");
    assert_eq!(
        bob.cancel(id).await.status(),
        403,
        "only the holder cancels"
    );
    assert_eq!(alice.cancel(id).await.status(), 200);
    b.wait_until(
        &format!("document.getElementById('file-{id}').dataset.state === 'available'"),
        "the cancel, live through the proxy",
    )
    .await;
    b.screenshot("proxy-01-documented").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_drops_the_upgrade_leaves_browsers_live_on_sse() {
    if !common::have_tool("nginx", "nginx") {
        return;
    }
    let app = app_behind_proxy().await;
    app.create_user("alice", "user").await;
    app.create_user("bob", "user").await;
    let nginx = Nginx::start(app.addr, Variant::DropsUpgrade).await;
    let alice = login_at(&nginx.base, "alice", USER_PASSWORD).await;
    let bob = login_at(&nginx.base, "bob", USER_PASSWORD).await;
    let id = bob.upload_ok("parts/bracket.mcam", b"v1").await;

    let refused = ws_try(
        &nginx.base,
        Some(&alice.cookie_header()),
        Some(&nginx.base),
        "",
    )
    .await;
    assert!(
        refused.is_err(),
        "this proxy really does break WebSocket upgrades"
    );

    if !browser::browser_available() {
        return;
    }
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&nginx.base, "alice", USER_PASSWORD).await;
    assert_eq!(
        b.wait_live().await,
        "sse",
        "the page fell back to SSE by itself"
    );
    assert_eq!(b.text("#live-status").await, "Live");
    b.exec("window.__latchTestMark = 1;", json!([])).await;

    assert_eq!(bob.checkout(id, "behind a bad proxy").await.status(), 200);
    b.wait_until(
        &format!("document.getElementById('file-{id}').dataset.lockedBy === 'bob'"),
        "Bob's check-out, live over SSE through the proxy",
    )
    .await;
    assert_eq!(
        bob.checkin(id, b"v2", "still live", "minor").await.status(),
        200
    );
    b.wait_until(
        &format!("document.querySelector('#file-{id} .badge.rev').textContent.includes('1.1')"),
        "Bob's check-in, live over SSE through the proxy",
    )
    .await;
    assert_eq!(
        b.exec(
            "return window.__latchTestMark === 1 && window.latchLive.transport",
            json!([])
        )
        .await,
        "sse",
        "no reload happened and the page stayed on SSE"
    );
    b.screenshot("proxy-02-sse-fallback").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_pass_nginx_with_its_default_buffering_at_once() {
    if !common::have_tool("nginx", "nginx") {
        return;
    }
    let app = app_behind_proxy().await;
    app.create_user("alice", "user").await;
    app.create_user("bob", "user").await;
    let nginx = Nginx::start(app.addr, Variant::DefaultBuffering).await;
    let alice = login_at(&nginx.base, "alice", USER_PASSWORD).await;
    let bob = login_at(&nginx.base, "bob", USER_PASSWORD).await;
    let id = bob.upload_ok("parts/bracket.mcam", b"v1").await;

    let mut sse = sse_open(&nginx.base, &alice, "", &[("accept", "text/event-stream")]).await;
    let sent = Instant::now();
    assert_eq!(bob.checkout(id, "buffered?").await.status(), 200);
    // A couple of seconds is a hang guard, not a benchmark: a buffered event
    // would wait for kilobytes more (never, for one small event).
    let event = sse.next_of("locked", Duration::from_secs(5)).await;
    eprintln!(
        "SSE event through buffering nginx after {:?}",
        sent.elapsed()
    );
    let event = event.expect("the event arrived through nginx's default buffering");
    assert!(event.html().contains("data-locked-by=\"bob\""), "{event:?}");
    assert!(event.id.is_some(), "events carry their sequence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_pass_a_site_wide_gzip_at_once_because_latch_says_not_to_buffer() {
    if !common::have_tool("nginx", "nginx") {
        return;
    }
    let app = app_behind_proxy().await;
    app.create_user("alice", "user").await;
    app.create_user("bob", "user").await;
    let nginx = Nginx::start(app.addr, Variant::BufferingAndGzip).await;
    let alice = login_at(&nginx.base, "alice", USER_PASSWORD).await;
    let bob = login_at(&nginx.base, "bob", USER_PASSWORD).await;
    let id = bob.upload_ok("parts/bracket.mcam", b"v1").await;

    let mut resp = tokio::time::timeout(WAIT, sse_request(&nginx.base, &alice, true).send())
        .await
        .expect("the stream's headers arrive (nginx did not hold them)")
        .expect("GET /events");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-encoding").map(|v| v.as_bytes()),
        Some(&b"gzip"[..]),
        "this nginx really compresses the stream"
    );
    // Whatever nginx flushed at the start (the gzip header) is not the event.
    while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_millis(500), resp.chunk()).await
    {
    }
    let sent = Instant::now();
    assert_eq!(bob.checkout(id, "gzip?").await.status(), 200);
    let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await;
    eprintln!("gzip'd SSE bytes through nginx after {:?}", sent.elapsed());
    let chunk = chunk
        .expect("the event's compressed bytes arrived (nginx flushed gzip)")
        .expect("stream readable")
        .expect("stream still open");
    assert!(!chunk.is_empty());
}

/// The control for the test above: with Latch's `X-Accel-Buffering: no`
/// ignored, nginx's gzip holds the stream back (headers included). Ignored
/// by default (it waits on purpose and tests nginx rather than Latch):
/// `cargo test --test it -- --ignored proxy::`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn without_x_accel_buffering_a_site_wide_gzip_holds_sse_events_back() {
    if !common::have_tool("nginx", "nginx") {
        return;
    }
    let app = app_behind_proxy().await;
    app.create_user("alice", "user").await;
    app.create_user("bob", "user").await;
    let nginx = Nginx::start(app.addr, Variant::BufferingAndGzipDeaf).await;
    let alice = login_at(&nginx.base, "alice", USER_PASSWORD).await;
    let bob = login_at(&nginx.base, "bob", USER_PASSWORD).await;
    let id = bob.upload_ok("parts/bracket.mcam", b"v1").await;
    let sse = sse_request(&nginx.base, &alice, true);
    let reader = tokio::spawn(tokio::time::timeout(Duration::from_secs(4), async move {
        let mut resp = sse.send().await.ok()?;
        resp.chunk().await.ok().flatten()
    }));
    // nginx holds even the headers back, so the stream's arrival at Latch is
    // read from Latch's own count of open streams.
    let admin = app.admin().await;
    common::wait_until("the event stream to reach Latch", || async {
        let text = admin.get("/metrics").await.text().await.unwrap_or_default();
        common::metric(&text, "latch_live_connections{transport=\"sse\"}") == Some(1.0)
    })
    .await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let got = reader.await.expect("reader task");
    assert!(
        got.is_err(),
        "nginx held the stream back (so Latch's header is what makes the test above pass)"
    );
}
