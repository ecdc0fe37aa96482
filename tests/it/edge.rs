//! Limits at the edge: slow clients are cut off after their
//! (here shortened) limits while everyone else is served; heads over 16 KiB
//! are 431; bodies over 64 KiB are refused before they are read; multipart
//! text fields are bounded while they stream and nothing of a refused
//! upload is kept. Each of these held on no limit before `src/http/serve.rs`.

use std::time::{Duration, Instant};

use crate::common::TestApp;
use crate::common::http::basic_header;
use crate::common::live::{WsNext, sse_open, ws_connect};
use reqwest::multipart::{Form, Part};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous upper bound for anything the server should do "at once".
const PROMPT: Duration = Duration::from_secs(20);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.expect("connect")
}

/// Reads until the server closes the connection (EOF or reset) or `within`
/// passes; returns whether it closed, and what it sent.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (false, got),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response head (and whatever body came with it) from `s`.
async fn read_response(s: &mut TcpStream, within: Duration) -> (u16, String) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("a status code");
                return (status, text);
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!("no whole response in {within:?}; got {text:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => panic!("closed before a whole response; got {text:?}"),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn host(app: &TestApp) -> String {
    app.addr.to_string()
}

// ---------------------------------------------------------------- slow clients

const HEAD: Duration = Duration::from_secs(2);
const STALL: Duration = Duration::from_secs(3);
const IDLE: Duration = Duration::from_secs(8);
const EACH: usize = 100;

#[tokio::test]
async fn slow_clients_are_cut_off_after_their_limits_while_everyone_else_is_served() {
    let app = TestApp::spawn_with(|c| {
        c.head_timeout = HEAD;
        c.body_stall = STALL;
        c.idle_timeout = IDLE;
    })
    .await;
    let admin = app.admin().await;
    let started = Instant::now();

    // Connected, and nothing sent.
    let mut silent = Vec::new();
    for _ in 0..EACH {
        silent.push(connect(&app).await);
    }
    // Half a request head, never finished.
    let mut half_heads = Vec::new();
    for _ in 0..EACH {
        let mut s = connect(&app).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        half_heads.push(s);
    }
    // A login whose body stops a tenth of the way in.
    let mut mid_bodies = Vec::new();
    for _ in 0..EACH {
        let mut s = connect(&app).await;
        let head = format!(
            "POST /api/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"username\":",
            host(&app)
        );
        s.write_all(head.as_bytes()).await.unwrap();
        mid_bodies.push(s);
    }
    // A finished request, then the keep-alive connection sits idle.
    let mut idlers = Vec::new();
    for _ in 0..EACH {
        let mut s = connect(&app).await;
        let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", host(&app));
        s.write_all(head.as_bytes()).await.unwrap();
        let (status, _) = read_response(&mut s, PROMPT).await;
        assert_eq!(status, 200);
        idlers.push(s);
    }

    // While all of them are held, ordinary requests are answered.
    let anonymous = reqwest::Client::new();
    let health = tokio::time::timeout(PROMPT, anonymous.get(app.url("/healthz")).send())
        .await
        .expect("/healthz answered while slow clients are held")
        .unwrap();
    assert_eq!(health.status(), 200);
    let alice = tokio::time::timeout(PROMPT, async {
        app.create_user("alice", "user").await;
        app.login("alice", crate::common::USER_PASSWORD).await
    })
    .await
    .expect("a login is answered while slow clients are held");
    let files = tokio::time::timeout(PROMPT, alice.get("/api/files"))
        .await
        .expect("an API call is answered while slow clients are held");
    assert_eq!(files.status(), 200);
    let id = admin.upload_ok("parts/held.bin", b"served").await;
    assert!(id > 0);

    // Well short of the idle limit (whatever the noise, the server cannot
    // be early), the idle connections are still open: a keep-alive
    // connection is not held to the head limit.
    if started.elapsed() < IDLE / 2 {
        let mut buf = [0u8; 1];
        for s in &mut idlers {
            let still_open = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf))
                .await
                .is_err();
            assert!(
                still_open,
                "an idle keep-alive connection was closed at the head limit"
            );
        }
    }

    // Each kind is closed once its limit has passed.
    for s in &mut silent {
        let (closed, sent) = read_to_close(s, HEAD + PROMPT).await;
        assert!(closed, "a connection that sent nothing was closed");
        assert!(sent.is_empty(), "and told nothing");
    }
    for s in &mut half_heads {
        let (closed, _) = read_to_close(s, HEAD + PROMPT).await;
        assert!(closed, "a half-sent head was closed");
    }
    for s in &mut mid_bodies {
        let (closed, sent) = read_to_close(s, STALL + PROMPT).await;
        assert!(closed, "a stalled body's connection was closed");
        let sent = String::from_utf8_lossy(&sent);
        assert!(
            sent.starts_with("HTTP/1.1 408"),
            "a stalled body is 408: {sent}"
        );
        assert!(sent.contains("stopped arriving"), "with a sentence: {sent}");
    }
    for s in &mut idlers {
        let (closed, _) = read_to_close(s, IDLE + PROMPT).await;
        assert!(closed, "an idle keep-alive connection was closed");
    }
}

#[tokio::test]
async fn live_streams_and_long_requests_are_never_cut_by_the_connection_timers() {
    let app = TestApp::spawn_with(|c| {
        c.head_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(1);
        c.body_stall = Duration::from_secs(1);
    })
    .await;
    let admin = app.admin().await;
    let id = admin.upload_ok("parts/live.bin", b"one").await;

    let mut events = sse_open(&app.base, &admin, "", &[]).await;
    let mut ws = ws_connect(&app.base, &admin, "").await;
    // Whatever the socket says on opening is not the event we wait for.
    while let WsNext::Text(_) = ws.next(Duration::from_millis(500)).await {}

    // Deliberately idle for several times every connection limit (1 s
    // each, above), with nothing sent by us: the waiting is what is tested.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let resp = admin.checkout(id, "still live").await;
    assert_eq!(resp.status(), 200);

    let got_sse = events.next_of("locked", PROMPT).await.is_some();
    assert!(
        got_sse,
        "the event stream outlived the idle and head limits"
    );
    let got_ws = matches!(ws.next(PROMPT).await, WsNext::Text(_));
    assert!(got_ws, "the WebSocket outlived the idle and head limits");
}

#[tokio::test]
async fn a_stalled_upload_is_refused_and_nothing_is_kept() {
    let app = TestApp::spawn_with(|c| c.body_stall = Duration::from_secs(2)).await;
    let admin = app.admin().await;
    let mut s = connect(&app).await;
    let boundary = "XyZzY";
    let start = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nparts/stalled.bin\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n"
    );
    let mut body = start.into_bytes();
    body.extend(std::iter::repeat_n(b'a', 200_000));
    let head = format!(
        "POST /api/files HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nOrigin: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        host(&app),
        admin.cookie_header(),
        admin.csrf.clone().unwrap_or_default(),
        app.base,
        body.len() + 1_000_000,
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let (closed, sent) = read_to_close(&mut s, Duration::from_secs(2) + PROMPT).await;
    assert!(closed, "the stalled upload's connection was closed");
    let sent = String::from_utf8_lossy(&sent);
    assert!(sent.starts_with("HTTP/1.1 408"), "408: {sent}");
    assert_spool_empty(&app);
    assert!(admin.files().await.is_empty(), "no file was created");
}

// ---------------------------------------------------------------- heads

#[tokio::test]
async fn a_request_head_over_16_kib_is_431_and_a_request_line_over_it_414() {
    let app = TestApp::spawn().await;
    let big = "a".repeat(20 * 1024);
    let cases = [
        (
            "a 20 KiB header",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
            431,
        ),
        (
            "many headers adding up to 20 KiB",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..40)
                    .map(|i| format!("X-{i}: {}\r\n", &big[..512]))
                    .collect::<String>()
            ),
            431,
        ),
        (
            "a 20 KiB request line",
            format!("GET /healthz?{big} HTTP/1.1\r\nHost: x\r\n\r\n"),
            414,
        ),
    ];
    for (why, request, expected) in cases {
        let mut s = connect(&app).await;
        s.write_all(request.as_bytes()).await.unwrap();
        let (status, text) = read_response(&mut s, PROMPT).await;
        assert_eq!(status, expected, "{why}: {text}");
        let (closed, _) = read_to_close(&mut s, PROMPT).await;
        assert!(closed, "{why}: the connection is closed");
    }
    // A second request on a kept-alive connection is held to the same
    // limit, its own line counted afresh.
    let mut s = connect(&app).await;
    let short = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(short.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s, PROMPT).await.0, 200);
    let long = format!("GET /healthz?{big} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(long.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s, PROMPT).await.0, 414);
    // Just under the limit is served.
    let mut s = connect(&app).await;
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        &big[..12 * 1024]
    );
    s.write_all(fits.as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut s, PROMPT).await;
    assert_eq!(status, 200);
    let fits = format!(
        "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        &big[..12 * 1024]
    );
    s.write_all(fits.as_bytes()).await.unwrap();
    let (status, _) = read_response(&mut s, PROMPT).await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------- bodies

#[tokio::test]
async fn a_body_over_64_kib_is_refused_before_it_is_sent() {
    let app = TestApp::spawn().await;
    // Only the head is sent: a 413 that arrives proves nothing waited for
    // (or read) the body.
    let cases = [
        ("/api/login", "application/json", "json"),
        ("/login", "application/x-www-form-urlencoded", "html"),
        (
            "/vault.git/info/lfs/locks",
            "application/vnd.git-lfs+json",
            "lfs",
        ),
        ("/api/files/1/checkout", "application/json", "json"),
    ];
    for (path, content_type, shape) in cases {
        let mut s = connect(&app).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            host(&app),
            1 << 20
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (status, text) = read_response(&mut s, PROMPT).await;
        assert_eq!(status, 413, "{path}: {text}");
        assert!(text.contains("64 KiB"), "{path} says why: {text}");
        match shape {
            "json" => assert!(text.contains("\"error\""), "{path} answers JSON: {text}"),
            // Git LFS clients show `message`.
            "lfs" => assert!(
                text.contains("\"message\""),
                "{path} answers LFS JSON: {text}"
            ),
            _ => assert!(
                text.contains("<html") || text.contains("<!DOCTYPE"),
                "{path} answers a page: {text}"
            ),
        }
    }
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_64_kib() {
    let app = TestApp::spawn().await;
    for path in ["/api/login", "/login"] {
        let mut s = connect(&app).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            host(&app)
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (mut reader, mut writer) = s.into_split();
        // 1 MiB in 16 KiB chunks, stopping when the server stops reading.
        let sender = tokio::spawn(async move {
            let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000));
            for _ in 0..64 {
                if writer.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = writer.write_all(b"0\r\n\r\n").await;
            // Kept open until the reader is done, so no reset hides the answer.
            tokio::time::sleep(PROMPT).await;
        });
        let mut got = Vec::new();
        let _ = tokio::time::timeout(PROMPT, reader.read_to_end(&mut got)).await;
        sender.abort();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: {text}");
        assert!(text.contains("64 KiB"), "{path} says why: {text}");
    }
}

#[tokio::test]
async fn a_big_body_to_the_login_does_not_grow_the_real_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = crate::common::binary::Server::start(
        &tmp.path().join("data"),
        &tmp.path().join("latch.log"),
    )
    .await;
    let addr = server.base.trim_start_matches("http://").to_string();
    // Warm up: the first requests allocate the runtime's buffers.
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let _ = http
            .post(format!("{}/api/login", server.base))
            .json(&json!({"username": "admin", "password": "wrong"}))
            .send()
            .await;
    }
    let before = server.rss_kib();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            let framing = if i % 2 == 0 {
                format!("Content-Length: {}\r\n", 64 << 20)
            } else {
                "Transfer-Encoding: chunked\r\n".to_string()
            };
            let head = format!(
                "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{framing}\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let (mut reader, mut writer) = s.into_split();
            let chunked = i % 2 == 1;
            let sender = tokio::spawn(async move {
                let piece = "a".repeat(0x10000);
                for _ in 0..1024 {
                    let data = if chunked {
                        format!("10000\r\n{piece}\r\n")
                    } else {
                        piece.clone()
                    };
                    if writer.write_all(data.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
            let mut got = Vec::new();
            let _ = tokio::time::timeout(PROMPT, reader.read_to_end(&mut got)).await;
            sender.abort();
            String::from_utf8_lossy(&got).to_string()
        }));
    }
    for t in tasks {
        let text = t.await.unwrap();
        assert!(text.starts_with("HTTP/1.1 413"), "413: {text}");
    }
    let after = server.rss_kib();
    eprintln!("server RSS {before} KiB → {after} KiB");
    assert!(
        after < before + 8 * 1024,
        "six 64 MiB bodies grew the server from {before} KiB to {after} KiB"
    );
}

// ---------------------------------------------------------------- multipart

fn assert_spool_empty(app: &TestApp) {
    let spool = app.data_dir.join("spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing is left in the spool: {left:?}");
}

#[tokio::test]
async fn multipart_text_fields_are_bounded_and_a_refused_upload_keeps_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Each form has its file part first, so a spool file exists by the
    // time the offending field arrives.
    let form = |extra: Vec<(String, String)>| {
        let mut form = Form::new()
            .part("file", Part::bytes(vec![7u8; 100_000]).file_name("a.bin"))
            .text("path", "parts/edge.bin");
        for (k, v) in extra {
            form = form.text(k, v);
        }
        form
    };
    type Fields = Vec<(String, String)>;
    let cases: Vec<(&str, Fields, u16)> = vec![
        (
            "33 text fields",
            (0..32).map(|i| (format!("note{i}"), "x".into())).collect(),
            413,
        ),
        (
            "a 65 KiB field",
            vec![("description".into(), "d".repeat(65 * 1024))],
            413,
        ),
        (
            "300 KiB of fields",
            (0..5)
                .map(|i| (format!("note{i}"), "n".repeat(60 * 1024)))
                .collect(),
            413,
        ),
        (
            "a field sent twice",
            vec![
                ("description".into(), "one".into()),
                ("description".into(), "two".into()),
            ],
            400,
        ),
    ];
    for (why, extra, status) in cases {
        let resp = admin.post_form("/api/files", form(extra)).await;
        assert_eq!(resp.status(), status, "{why}");
        let body: serde_json::Value = resp.json().await.expect("JSON");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{why}: a sentence"
        );
        assert_spool_empty(&app);
    }
    assert!(admin.files().await.is_empty(), "no file was created");
    // Within every bound, the same form is accepted.
    let ok = (0..30)
        .map(|i| (format!("note{i}"), "x".repeat(1000)))
        .collect();
    let resp = admin.post_form("/api/files", form(ok)).await;
    assert_eq!(resp.status(), 201);
    assert_spool_empty(&app);
}

#[tokio::test]
async fn a_multipart_part_whose_headers_never_end_is_refused_and_nothing_is_kept() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n"
            .to_vec();
    body.extend(std::iter::repeat_n(b'f', 100_000));
    body.extend_from_slice(b"\r\n--XyZ\r\nX-Filler: ");
    // 2 MiB of one header line: the multipart parser would hold all of it.
    body.extend(std::iter::repeat_n(b'h', 2 << 20));
    let resp = admin
        .http
        .post(app.url("/api/files"))
        .header("X-CSRF-Token", admin.csrf.clone().unwrap_or_default())
        .header("Content-Type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 413);
    let text = resp.text().await.unwrap_or_default();
    assert!(text.contains("16 KiB"), "says why: {text}");
    assert_spool_empty(&app);
    assert!(admin.files().await.is_empty(), "no file was created");
}

#[tokio::test]
async fn a_client_that_closes_its_side_after_its_request_still_gets_its_answer() {
    // `printf '…' | nc host port` and many scripts do this: the whole
    // request, then FIN, then read.
    let app = TestApp::spawn().await;
    let auth = basic_header("admin", crate::common::ADMIN_PASSWORD);
    let body = b"--B1\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nparts/cut.bin\r\n--B1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\npartial";
    for close in ["", "Connection: close\r\n"] {
        let mut request = format!(
            "POST /api/files HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: multipart/form-data; boundary=B1\r\nContent-Length: {}\r\n{close}\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let mut s = connect(&app).await;
        s.write_all(&request).await.unwrap();
        s.shutdown().await.unwrap();
        let (closed, got) = read_to_close(&mut s, PROMPT).await;
        assert!(closed);
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.starts_with("HTTP/1.1 400"),
            "a malformed upload is 400: {got}"
        );
    }
}

/// A browser's form upload far over `--max-upload` is read to its end so
/// the browser receives the 413 (issue 12); what is read is thrown away as
/// it arrives, so the real server does not grow and keeps nothing.
#[tokio::test]
async fn draining_refused_form_uploads_does_not_grow_the_real_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = crate::common::binary::Server::start_with(
        &data,
        &tmp.path().join("latch.log"),
        &["--max-upload", "64K"],
        &[],
    )
    .await;
    let admin = server.login("admin", crate::common::ADMIN_PASSWORD).await;
    let cookie = admin.cookie_header();
    let csrf = admin.csrf.clone().unwrap();
    let addr = server.base.trim_start_matches("http://").to_string();
    let upload = |addr: String, cookie: String, csrf: String| async move {
        let pre = format!(
            "--XB\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{csrf}\r\n--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
        );
        let post = "\r\n--XB--\r\n";
        let size = 128u64 << 20;
        let head = format!(
            "POST /files HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=XB\r\nContent-Length: {}\r\n\r\n{pre}",
            pre.len() as u64 + size + post.len() as u64
        );
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let piece = vec![b'x'; 1 << 16];
        for _ in 0..(size >> 16) {
            s.write_all(&piece).await.expect("the whole body is taken");
        }
        s.write_all(post.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(PROMPT, s.read_to_end(&mut got)).await;
        String::from_utf8_lossy(&got).to_string()
    };
    // Warm up: the first refusal allocates the runtime's buffers.
    let first = upload(addr.clone(), cookie.clone(), csrf.clone()).await;
    assert!(first.starts_with("HTTP/1.1 413"), "{first}");
    let before = server.rss_kib();
    let tasks: Vec<_> = (0..3)
        .map(|_| tokio::spawn(upload(addr.clone(), cookie.clone(), csrf.clone())))
        .collect();
    for t in tasks {
        let text = t.await.unwrap();
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
        assert!(text.contains("nothing was saved"), "{text}");
    }
    let after = server.rss_kib();
    eprintln!("server RSS {before} KiB → {after} KiB");
    assert!(
        after < before + 8 * 1024,
        "three drained 128 MiB uploads grew the server from {before} KiB to {after} KiB"
    );
    let spool: Vec<_> = std::fs::read_dir(data.join("spool"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(spool.is_empty(), "nothing is left in the spool: {spool:?}");
}
