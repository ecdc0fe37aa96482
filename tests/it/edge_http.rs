//! HTTP at the edges, as a hostile tester found it (attack report F5, F10,
//! F13, F14, F15): passwords that look like tokens, sign-up floods and
//! lock-outs, refusals that must still be sentences in the surface's own
//! shape, what may be cached, which origin and which session cookie count,
//! and a connection closed early that must say so.

use std::time::Duration;

use crate::common::git::{GitHome, vault_url};
use crate::common::http::plain_client;
use crate::common::{self, ADMIN_PASSWORD, TestApp, USER_PASSWORD};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ------------------------------------------------------------- helpers

/// Signs in through `/api/login` as if from `from` (the app trusts the
/// test's 127.0.0.1 as a proxy); returns the status.
async fn login_from(app: &TestApp, from: &str, username: &str, password: &str) -> u16 {
    plain_client()
        .post(app.url("/api/login"))
        .header("X-Forwarded-For", from)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

/// Reads one response head from a raw socket (up to the blank line).
async fn read_head(sock: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            match sock.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("a response head in time");
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

// ------------------------------------------------------------- F14

#[tokio::test]
async fn a_password_that_starts_like_a_token_still_works_over_basic_and_git() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let password = "latch_my-password";
    let resp = admin
        .post_json(
            "/api/users",
            &json!({"username": "tokpw", "password": password, "role": "user"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let me = plain_client()
        .get(app.url("/api/me"))
        .basic_auth("tokpw", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "Basic with a latch_ password");
    // A wrong one is still wrong, and a real token still works.
    let wrong = plain_client()
        .get(app.url("/api/me"))
        .basic_auth("tokpw", Some("latch_not-it"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let token =
        common::token_with_password(&plain_client(), &app.base, "tokpw", password, "t").await;
    let by_token = plain_client()
        .get(app.url("/api/me"))
        .basic_auth("tokpw", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 200);
    if !common::have_tool("git", "git") {
        eprintln!("skipping the git clone: no git");
        return;
    }
    admin.upload_ok("parts/a.txt", b"hello").await;
    let home = GitHome::new();
    let url = vault_url(&app.base, "tokpw", password);
    let out = home
        .git(&home.path(""), &["clone", "-q", &url, "clone"])
        .await;
    assert!(
        out.status.success(),
        "git clone with a latch_ password: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(home.path("clone/parts/a.txt")).unwrap();
    assert_eq!(got, b"hello");
}

// ------------------------------------------------------------- F13

#[tokio::test]
async fn sign_ups_from_one_address_are_throttled_with_a_time_to_retry() {
    let app = TestApp::spawn_with(|c| c.allow_signup = true).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for i in 0..12 {
        let resp = plain_client()
            .post(app.url("/signup"))
            .form(&[
                ("username", format!("spam{i}")),
                ("password", "password-123".to_string()),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 && refused.is_none() {
            let retry = resp.headers().get("retry-after").cloned();
            refused = Some((retry, resp.text().await.unwrap()));
        }
    }
    assert!(statuses.starts_with(&[303, 303, 303]), "{statuses:?}");
    let (retry, body) = refused.unwrap_or_else(|| panic!("never throttled: {statuses:?}"));
    let retry: u64 = retry
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
    assert!(body.contains("Too many sign-ups"), "{body}");
    // No account past the limit was made.
    let users = app.admin().await.get_json("/api/users").await;
    let made = users["users"].as_array().unwrap().len() - 1;
    assert_eq!(made, statuses.iter().filter(|s| **s == 303).count());
}

#[tokio::test]
async fn a_stranger_hammering_a_name_cannot_lock_its_owner_out() {
    let app = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    app.create_user("alice", "user").await;
    let alice_at = "10.0.0.1";
    assert_eq!(
        login_from(&app, alice_at, "alice", USER_PASSWORD).await,
        200
    );

    // Mallory guesses from one address: throttled after five.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(login_from(&app, "10.6.6.6", "alice", "not-her-password").await);
    }
    assert!(
        statuses.starts_with(&[401, 401, 401, 401, 401]),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "guessing not throttled: {statuses:?}"
    );
    assert_eq!(
        login_from(&app, "10.6.6.6", "alice", USER_PASSWORD).await,
        429,
        "the guesser's address waits even with the right password"
    );
    // Alice, from her own address, is not locked out.
    assert_eq!(
        login_from(&app, alice_at, "alice", USER_PASSWORD).await,
        200
    );
    // Nor is she when the guesses come from many addresses; those still
    // run into the per-user budget.
    let mut distributed = Vec::new();
    for host in 1..=8 {
        for _ in 0..5 {
            let from = format!("10.7.0.{host}");
            distributed.push(login_from(&app, &from, "alice", "not-her-password").await);
        }
    }
    assert!(
        distributed.contains(&429),
        "guesses from many addresses were never throttled: {distributed:?}"
    );
    assert_eq!(
        login_from(&app, alice_at, "alice", USER_PASSWORD).await,
        200
    );
    // Her own typos still count against her own address.
    let mut typos = Vec::new();
    for _ in 0..8 {
        typos.push(login_from(&app, alice_at, "alice", "typo-typo-typo").await);
    }
    assert!(typos.starts_with(&[401, 401, 401, 401, 401]), "{typos:?}");
    assert!(typos.contains(&429), "{typos:?}");
}

// ------------------------------------------------------------- F10

#[tokio::test]
async fn every_refusal_is_a_sentence_in_its_surfaces_shape() {
    let app = TestApp::spawn().await;
    let anon = app.anonymous();
    // /api: JSON, even for an address poem cannot decode.
    for path in ["/api/files/%ff", "/api/users/%ff"] {
        let resp = anon.get(path).await;
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let said = body["error"].as_str().unwrap_or_default();
        assert!(said.ends_with('.') && said.len() > 20, "{path}: {body}");
    }
    // HTML: Latch's own page for any 404 / 400 / 405.
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("GET", "/files/", 404),
        ("GET", "/files/1/", 404),
        ("GET", "/files/%ff", 400),
        ("GET", "/assets/%ff", 400),
        ("PUT", "/login", 405),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = anon.http.request(m, app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{method} {path}: {ct}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("<title>"), "{method} {path}: {body}");
        assert!(!body.contains("not found") && !body.contains("invalid path params"));
    }
    // HEAD works wherever GET does.
    for path in ["/assets/live.js", "/assets/app.css", "/healthz", "/login"] {
        let resp = anon.http.head(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "HEAD {path}");
    }
    // Git LFS: 405 with Allow, in the LFS error shape.
    for (method, path, want) in [
        ("PUT", "/vault.git/info/lfs/locks", "GET, POST, HEAD"),
        ("DELETE", "/vault.git/info/lfs/locks", "GET, POST, HEAD"),
        ("GET", "/vault.git/info/lfs/locks/verify", "POST"),
        ("GET", "/vault.git/info/lfs/locks/1/unlock", "POST"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = anon.http.request(m, app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], want, "{method} {path}");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(method)),
            "{method} {path}: {body}"
        );
    }
    // A token name with a control character is told so.
    let admin = app.admin().await;
    let resp = admin
        .post_json("/api/tokens", &json!({"name": "a\nb"}))
        .await;
    assert!(resp.status().is_client_error());
    let body: Value = resp.json().await.unwrap();
    let said = body["error"].as_str().unwrap();
    assert!(said.contains("control character"), "{said}");
}

// ------------------------------------------------------------- F15

#[tokio::test]
async fn answers_with_secrets_or_private_data_are_not_stored() {
    let app = TestApp::spawn().await;
    let login = plain_client()
        .post(app.url("/api/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.headers()["cache-control"],
        "no-store",
        "POST /api/login"
    );
    let admin = app.admin().await;
    let id = admin.upload_ok("parts/a.txt", b"hello").await;
    let created = admin.post_json("/api/tokens", &json!({"name": "t"})).await;
    assert_eq!(
        created.headers()["cache-control"],
        "no-store",
        "POST /api/tokens"
    );
    for path in [
        "/api/tokens",
        "/api/files",
        "/api/me",
        "/",
        "/account",
        "/admin/users",
    ] {
        let resp = admin.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
    }
    // Downloads keep their own rule.
    for path in [
        format!("/api/files/{id}/content"),
        format!("/files/{id}/download"),
    ] {
        let resp = admin.get(&path).await;
        assert_eq!(
            resp.headers()["cache-control"],
            "private, no-cache",
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_origin_check_compares_the_scheme_and_takes_one_origin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let write = |origins: &[String]| {
        let mut rb = admin
            .http
            .post(admin.url("/api/tokens"))
            .header("X-CSRF-Token", admin.csrf.clone().unwrap())
            .json(&json!({"name": "o"}));
        for o in origins {
            rb = rb.header("Origin", o.as_str());
        }
        rb.send()
    };
    let good = app.base.clone();
    let addr = app.addr;
    assert_eq!(
        write(std::slice::from_ref(&good)).await.unwrap().status(),
        201
    );
    for origin in [format!("https://{addr}"), format!("ws://{addr}")] {
        let resp = write(std::slice::from_ref(&origin)).await.unwrap();
        assert_eq!(resp.status(), 403, "Origin {origin} on an http server");
    }
    let two = write(&[good.clone(), "http://evil.example".to_string()])
        .await
        .unwrap();
    assert_eq!(two.status(), 403, "two Origin headers");

    // Behind HTTPS (--secure-cookies) the browser's origin is https.
    let tls = TestApp::spawn_with(|c| c.secure_cookies = true).await;
    let admin = tls.admin().await;
    for (origin, want) in [
        (format!("https://{}", tls.addr), 201),
        (format!("http://{}", tls.addr), 403),
    ] {
        let resp = admin
            .http
            .post(admin.url("/api/tokens"))
            .header("X-CSRF-Token", admin.csrf.clone().unwrap())
            .header("Origin", origin.as_str())
            .json(&json!({"name": "o"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "Origin {origin} with --secure-cookies");
    }

    // A trusted proxy says which scheme the browser used.
    let proxied =
        TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let admin = proxied.admin().await;
    for (proto, origin, want) in [
        ("https", format!("https://{}", proxied.addr), 201),
        ("https", format!("http://{}", proxied.addr), 403),
        ("http", format!("http://{}", proxied.addr), 201),
    ] {
        let resp = admin
            .http
            .post(admin.url("/api/tokens"))
            .header("X-CSRF-Token", admin.csrf.clone().unwrap())
            .header("X-Forwarded-Proto", proto)
            .header("Origin", origin.as_str())
            .json(&json!({"name": "o"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            want,
            "Origin {origin} via proxy saying {proto}"
        );
    }

    // TLS ends at a load balancer in front of the proxy, which forwards
    // `X-Forwarded-Proto: http`: --secure-cookies still says the browser's
    // side is https, for the Origin check as for the cookie.
    let both = TestApp::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.secure_cookies = true;
    })
    .await;
    let admin = both.admin().await;
    let resp = admin
        .http
        .post(admin.url("/api/tokens"))
        .header("X-CSRF-Token", admin.csrf.clone().unwrap())
        .header("X-Forwarded-Proto", "http")
        .header("Origin", format!("https://{}", both.addr))
        .json(&json!({"name": "o"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "--secure-cookies behind a plain-http proxy hop"
    );
}

#[tokio::test]
async fn a_planted_session_cookie_does_not_hide_the_real_one() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let real = admin.cookie_header();
    let real = real
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("latch_session="))
        .expect("session cookie")
        .to_string();
    let fake = "0".repeat(64);
    for cookie in [
        format!("latch_session=x; latch_session={real}"),
        format!("latch_session={fake}; latch_session={real}"),
        format!("latch_session={real}; latch_session={fake}"),
    ] {
        let resp = plain_client()
            .get(app.url("/api/me"))
            .header("Cookie", cookie.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{cookie}");
    }
}

// ------------------------------------------------------------- F5

#[tokio::test]
async fn an_answer_given_before_the_body_was_read_says_the_connection_closes() {
    let app = TestApp::spawn_with(|c| c.max_upload = 1024).await;
    let admin = app.admin().await;
    let cookie = admin.cookie_header();
    let csrf = admin.csrf.clone().unwrap();

    // Refused before authentication: the body is never read.
    let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XB\r\nContent-Length: 50000\r\n\r\n";
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[b'a'; 100]).await.unwrap();
    let got = read_head(&mut sock).await;
    assert!(got.starts_with("http/1.1 401"), "{got}");
    assert!(got.contains("connection: close"), "{got}");

    // Over --max-upload, refused part-way through the body.
    let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let pre = "--XB\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nbig.bin\r\n--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n";
    let head = format!(
        "POST /api/files HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: multipart/form-data; boundary=XB\r\nContent-Length: 200000\r\n\r\n{pre}",
        app.addr
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[b'z'; 8000]).await.unwrap();
    let got = read_head(&mut sock).await;
    assert!(got.starts_with("http/1.1 413"), "{got}");
    assert!(got.contains("connection: close"), "{got}");

    // A request whose body was read keeps its connection.
    let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"username":"admin","password":"wrong-password"}"#;
    let req = format!(
        "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    let got = read_head(&mut sock).await;
    assert!(got.starts_with("http/1.1 401"), "{got}");
    assert!(!got.contains("connection: close"), "{got}");
}

/// Files sent together (a bulk upload, a change set) count against one
/// `--max-upload` between them: a body over it is refused with a sentence
/// that says so (not the one for small forms), and nothing is kept.
#[tokio::test]
async fn files_sent_together_are_over_the_limit_together() {
    let app = TestApp::spawn_with(|c| c.max_upload = 64 * 1024).await;
    let admin = app.admin().await;
    let cookie = admin.cookie_header();
    let csrf = admin.csrf.clone().unwrap();
    // Each part under the limit, all of them far over it (and over the
    // room the form's text and headers are given besides).
    let mut body = Vec::new();
    for i in 0..40 {
        body.extend(format!("--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f{i}.bin\"\r\n\r\n").as_bytes());
        body.extend(vec![b'x'; 60 * 1024]);
        body.extend(b"\r\n");
    }
    body.extend(b"--XB--\r\n");
    let head = format!(
        "POST /api/files/bulk HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: multipart/form-data; boundary=XB\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    // The server answers part-way and closes: later writes may fail.
    for chunk in body.chunks(16 * 1024) {
        if sock.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("count together") && answer.contains("64 KiB"),
        "{answer}"
    );
    assert_eq!(admin.files().await.len(), 0, "nothing was added");
    let spool: Vec<_> = std::fs::read_dir(app.data_dir.join("spool"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(spool.is_empty(), "spool kept {spool:?}");
}

/// A plain browser form (no htmx) uploading far over `--max-upload` gets
/// the whole 413 page, not a connection reset: the server reads the rest
/// of the body (and throws it away) before it answers and closes. The
/// client here writes its whole body before reading, as a browser does.
#[tokio::test]
async fn a_form_upload_over_the_limit_gets_the_whole_413_page() {
    let app = TestApp::spawn_with(|c| c.max_upload = 64 * 1024).await;
    let alice = app.user("alice").await;
    let cookie = alice.cookie_header();
    let csrf = alice.csrf.clone().unwrap();
    let mut body = Vec::new();
    body.extend(
        format!("--XB\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{csrf}\r\n")
            .as_bytes(),
    );
    body.extend(b"--XB\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nparts/big.bin\r\n");
    body.extend(b"--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    body.extend(vec![b'x'; 32 << 20]);
    body.extend(b"\r\n--XB--\r\n");
    let head = format!(
        "POST /files HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {cookie}\r\nAccept: text/html\r\nContent-Type: multipart/form-data; boundary=XB\r\nContent-Length: {}\r\n\r\n",
        body.len(),
        addr = app.addr,
    );
    let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let sent = async {
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(&body).await?;
        let mut answer = Vec::new();
        sock.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), sent)
        .await
        .expect("an answer within 30 s")
        .expect("the whole body sent and the whole answer read, no reset");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("larger than the limit of 64 KiB; nothing was saved")
            && answer.contains(r#"href="/""#)
            && answer.trim_end().ends_with("</html>"),
        "the whole page: {answer}"
    );
    let spool = app.data_dir.join("spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing is left in the spool: {left:?}");
    assert_eq!(alice.files().await.len(), 0, "nothing was added");
}
