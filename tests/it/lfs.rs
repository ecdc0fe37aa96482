//! Git's language: `git lfs lock/locks/unlock` against Latch's check-outs,
//! seen live by browsers; `git clone` over HTTP; pushes refused. The real
//! `git` and `git-lfs` clients are used (skipped politely without them),
//! plus protocol-level checks of the LFS locking API with reqwest.

use std::path::Path;

use crate::common::git::{GitHome, vault_url};
use crate::common::live::{Sse, sse_open};
use crate::common::{self, ADMIN_PASSWORD, Client, TestApp, USER_PASSWORD};
use serde_json::{Value, json};

const LFS_JSON: &str = "application/vnd.git-lfs+json";

// ------------------------------------------------------------- helpers

/// Both clients are needed; false (skip) when either is missing.
/// A browser's SSE connection to `/events`.
async fn live_as(app: &TestApp, client: &Client) -> Sse {
    let headers = [
        ("Origin", app.base.as_str()),
        ("Accept", "text/event-stream"),
    ];
    sse_open(&app.base, client, "", &headers).await
}

fn have_git_and_lfs() -> bool {
    common::have_tool("git", "git") && common::have_tool("git-lfs", "git-lfs")
}

/// A raw HTTP client for the LFS API, with Basic credentials.
struct Lfs {
    http: reqwest::Client,
    base: String,
    user: String,
    secret: String,
}

impl Lfs {
    fn new(app: &TestApp, user: &str, secret: &str) -> Lfs {
        Lfs {
            http: reqwest::Client::new(),
            base: app.url("/vault.git/info/lfs"),
            user: user.into(),
            secret: secret.into(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.secret))
            .header("Accept", LFS_JSON)
            .header("Content-Type", LFS_JSON)
            .body(body.to_string())
            .send()
            .await
            .expect("POST")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.secret))
            .header("Accept", LFS_JSON)
            .send()
            .await
            .expect("GET")
    }
}

/// Asserts the status and the LFS content type; returns the JSON body.
async fn lfs_body(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "status; body: {text}");
    assert_eq!(content_type, LFS_JSON, "content type; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
}

/// The sentence of an LFS error, asserting its status and shape.
async fn lfs_error(resp: reqwest::Response, status: u16) -> String {
    let body = lfs_body(resp, status).await;
    let message = body["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "error has a message: {body}");
    message
}

fn ids(locks: &Value) -> Vec<String> {
    locks
        .as_array()
        .expect("array of locks")
        .iter()
        .map(|l| l["id"].as_str().expect("string id").to_string())
        .collect()
}

// ------------------------------------------------------- real clients

#[tokio::test]
async fn git_lfs_lock_and_unlock_are_check_outs_that_browsers_see_live() {
    if !have_git_and_lfs() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = alice.upload_ok("parts/1234567.mcam", b"G0 X0 Y0").await;
    let ws = GitHome::new();
    let clone = ws.clone_as(&app, "alice", USER_PASSWORD).await;
    let mut live = live_as(&app, &bob).await;

    let said = ws
        .git_ok(&clone, &["lfs", "lock", "parts/1234567.mcam"])
        .await;
    assert!(said.contains("Locked parts/1234567.mcam"), "{said}");
    let card = live.expect("locked", id).await;
    assert!(card.contains("data-locked-by=\"alice\""), "{card}");
    let file = alice.file(id).await;
    assert_eq!(file["state"], "locked");
    assert_eq!(file["lock"]["owner"], "alice");
    assert_eq!(file["lock"]["comment"], "locked with git lfs");

    let listed = ws.git_ok(&clone, &["lfs", "locks"]).await;
    assert!(
        listed.contains(&format!("parts/1234567.mcam\talice\tID:{id}")),
        "{listed}"
    );
    let verified = ws.git_ok(&clone, &["lfs", "locks", "--verify"]).await;
    assert!(
        verified.contains(&format!("O parts/1234567.mcam\talice\tID:{id}")),
        "ours is marked O: {verified}"
    );

    // Bob's view: the lock is theirs, and his own lock attempt names alice.
    let bob_clone = ws.clone_as(&app, "bob", USER_PASSWORD).await;
    let verified = ws.git_ok(&bob_clone, &["lfs", "locks", "--verify"]).await;
    assert!(verified.contains("parts/1234567.mcam"), "{verified}");
    assert!(
        !verified.contains("O parts/1234567.mcam"),
        "not bob's: {verified}"
    );
    let refused = ws
        .git_fails(&bob_clone, &["lfs", "lock", "parts/1234567.mcam"])
        .await;
    assert!(refused.contains("checked out by alice"), "{refused}");

    let said = ws
        .git_ok(&clone, &["lfs", "unlock", "parts/1234567.mcam"])
        .await;
    assert!(said.contains("Unlocked parts/1234567.mcam"), "{said}");
    live.expect("unlocked", id).await;
    assert_eq!(alice.file(id).await["state"], "available");
    let listed = ws.git_ok(&clone, &["lfs", "locks"]).await;
    assert!(listed.trim().is_empty(), "no locks left: {listed}");
}

#[tokio::test]
async fn only_an_admin_can_force_unlock_with_git_lfs() {
    if !have_git_and_lfs() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.create_user("bob", "user").await;
    let admin = app.admin().await;
    let id = alice.upload_ok("fixtures/vise.sldprt", b"solid").await;
    let ws = GitHome::new();
    let alice_clone = ws.clone_as(&app, "alice", USER_PASSWORD).await;
    let bob_clone = ws.clone_as(&app, "bob", USER_PASSWORD).await;
    ws.git_ok(&alice_clone, &["lfs", "lock", "fixtures/vise.sldprt"])
        .await;
    let mut live = live_as(&app, &admin).await;

    let refused = ws
        .git_fails(&bob_clone, &["lfs", "unlock", "fixtures/vise.sldprt"])
        .await;
    assert!(refused.contains("only they can unlock"), "{refused}");
    let refused = ws
        .git_fails(
            &bob_clone,
            &["lfs", "unlock", "--force", "fixtures/vise.sldprt"],
        )
        .await;
    assert!(refused.contains("only an admin"), "{refused}");
    assert_eq!(alice.file(id).await["lock"]["owner"], "alice");

    // The admin works from a plain repository pointed at the LFS endpoint.
    let plain = ws.path("admin");
    std::fs::create_dir_all(&plain).expect("dir");
    ws.git_ok(&plain, &["init", "-q"]).await;
    let lfs_url = format!("{}/info/lfs", vault_url(&app.base, "admin", ADMIN_PASSWORD));
    ws.git_ok(&plain, &["config", "lfs.url", &lfs_url]).await;
    let said = ws
        .git_ok(
            &plain,
            &["lfs", "unlock", "--force", "fixtures/vise.sldprt"],
        )
        .await;
    assert!(said.contains("Unlocked fixtures/vise.sldprt"), "{said}");
    let card = live.expect("overridden", id).await;
    assert!(card.contains("data-state=\"available\""), "{card}");
    assert_eq!(alice.file(id).await["state"], "available");
}

#[tokio::test]
async fn a_check_out_from_the_web_is_a_lock_to_git_lfs() {
    if !have_git_and_lfs() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.create_user("bob", "user").await;
    let id = alice.upload_ok("a b/ü.mcam", b"x").await;
    let other = alice.upload_ok("free.mcam", b"y").await;
    assert_eq!(alice.checkout(id, "editing the post").await.status(), 200);
    let ws = GitHome::new();
    let clone = ws.clone_as(&app, "bob", USER_PASSWORD).await;
    let listed = ws.git_ok(&clone, &["lfs", "locks"]).await;
    assert!(listed.contains("alice"), "{listed}");
    assert!(listed.contains(&format!("ID:{id}")), "{listed}");
    assert!(!listed.contains(&format!("ID:{other}")), "{listed}");
    let by_path = ws
        .git_ok(&clone, &["lfs", "locks", "--path", "a b/ü.mcam"])
        .await;
    assert!(by_path.contains(&format!("ID:{id}")), "{by_path}");
    let refused = ws
        .git_fails(&clone, &["lfs", "lock", "nothing/here.mcam"])
        .await;
    assert!(refused.contains("not a file in the vault"), "{refused}");
}

#[tokio::test]
async fn a_clone_over_http_is_the_vault_and_pushing_is_refused() {
    if !common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a = alice.upload_ok("parts/a.mcam", b"first a").await;
    alice.upload_ok("b.bin", &[0u8, 1, 2, 255]).await;
    assert_eq!(alice.checkout(a, "").await.status(), 200);
    assert_eq!(
        alice
            .checkin(a, b"second a", "Tighter tolerance", "minor")
            .await
            .status(),
        200
    );
    let ws = GitHome::new();
    let clone = ws.clone_as(&app, "alice", USER_PASSWORD).await;
    let vault = app.vault_path();
    let vault_dir = vault.to_str().unwrap();

    let log = ["log", "--format=%H %an <%ae> %s"];
    let theirs = ws.git_ok(&clone, &log).await;
    let ours = ws
        .git_ok(
            Path::new("."),
            &[&["--git-dir", vault_dir][..], &log, &["main"]].concat(),
        )
        .await;
    assert_eq!(theirs, ours);
    assert_eq!(theirs.lines().count(), 3, "{theirs}");
    let tree = ws.git_ok(&clone, &["ls-tree", "-r", "HEAD"]).await;
    let vault_tree = ws
        .git_ok(
            Path::new("."),
            &["--git-dir", vault_dir, "ls-tree", "-r", "main"],
        )
        .await;
    assert_eq!(tree, vault_tree);
    assert_eq!(
        std::fs::read(clone.join("parts/a.mcam")).unwrap(),
        b"second a"
    );
    assert_eq!(
        ws.git_ok(&clone, &["rev-parse", "--abbrev-ref", "HEAD"])
            .await
            .trim(),
        "main"
    );
    ws.git_ok(&clone, &["fsck", "--strict"]).await;

    std::fs::write(clone.join("b.bin"), b"pushed").unwrap();
    ws.commit_all(&clone, "try").await;
    let refused = ws.git_fails(&clone, &["push", "origin", "main"]).await;
    assert!(refused.contains("changes go through check-in"), "{refused}");
    assert!(refused.contains("403"), "{refused}");
    assert_eq!(alice.content(a, None).await, b"second a");
}

#[tokio::test]
async fn a_packed_vault_clones_with_an_api_token() {
    if !common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a = alice.upload_ok("one.mcam", b"one").await;
    alice.upload_ok("two.mcam", b"two").await;
    let ws = GitHome::new();
    let vault = app.vault_path();
    let vault_dir = vault.to_str().unwrap();
    ws.git_ok(
        Path::new("."),
        &["--git-dir", vault_dir, "repack", "-a", "-d", "-q"],
    )
    .await;
    ws.git_ok(Path::new("."), &["--git-dir", vault_dir, "prune-packed"])
        .await;
    let token = alice.new_token("git").await;

    let http = reqwest::Client::new();
    let packs = http
        .get(app.url("/vault.git/objects/info/packs"))
        .basic_auth("alice", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(packs.status(), 200);
    let packs = packs.text().await.unwrap();
    assert!(
        packs.starts_with("P pack-") && packs.ends_with(".pack\n\n"),
        "{packs:?}"
    );

    let clone = ws.clone_as(&app, "alice", &token).await;
    ws.git_ok(&clone, &["fsck", "--strict"]).await;
    assert_eq!(std::fs::read(clone.join("two.mcam")).unwrap(), b"two");
    // The server still reads its now-packed objects.
    assert_eq!(alice.content(a, None).await, b"one");
}

// ------------------------------------------------------ protocol level

#[tokio::test]
async fn locks_page_with_next_cursor_and_filter_by_path_and_id() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut locked = Vec::new();
    for (n, who) in ["alice", "bob", "alice", "bob", "alice"].iter().enumerate() {
        let id = alice.upload_ok(&format!("p/{n}.mcam"), b"x").await;
        let client = if *who == "alice" { &alice } else { &bob };
        assert_eq!(client.checkout(id, "").await.status(), 200);
        locked.push(id.to_string());
    }
    alice.upload_ok("p/free.mcam", b"x").await;
    let lfs = Lfs::new(&app, "alice", USER_PASSWORD);

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let body = lfs_body(
            lfs.get(&format!("/locks?limit=2&cursor={cursor}")).await,
            200,
        )
        .await;
        let page = ids(&body["locks"]);
        assert!(page.len() <= 2, "{body}");
        seen.extend(page);
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, locked, "every lock once, in order");
    assert_eq!(pages, 3);

    let all = lfs_body(lfs.get("/locks").await, 200).await;
    assert_eq!(ids(&all["locks"]), locked);
    assert!(all.get("next_cursor").is_none(), "{all}");
    let first = &all["locks"][0];
    assert_eq!(first["path"], "p/0.mcam");
    assert_eq!(first["owner"]["name"], "alice");
    assert!(
        first["locked_at"].as_str().unwrap().ends_with('Z'),
        "{first}"
    );

    let by_path = lfs_body(lfs.get("/locks?path=p/1.mcam").await, 200).await;
    assert_eq!(ids(&by_path["locks"]), vec![locked[1].clone()]);
    assert_eq!(by_path["locks"][0]["owner"]["name"], "bob");
    let by_id = lfs_body(lfs.get(&format!("/locks?id={}", locked[4])).await, 200).await;
    assert_eq!(ids(&by_id["locks"]), vec![locked[4].clone()]);
    for query in ["path=p/free.mcam", "path=../etc", "id=999", "id=x"] {
        let none = lfs_body(lfs.get(&format!("/locks?{query}")).await, 200).await;
        assert_eq!(none["locks"], json!([]), "{query}");
    }
    let msg = lfs_error(lfs.get("/locks?cursor=nope").await, 422).await;
    assert!(msg.contains("cursor"), "{msg}");
}

#[tokio::test]
async fn verify_splits_ours_from_theirs_across_pages() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for n in 0..5 {
        let id = alice.upload_ok(&format!("v/{n}.mcam"), b"x").await;
        if n % 2 == 0 {
            assert_eq!(alice.checkout(id, "").await.status(), 200);
            ours.push(id.to_string());
        } else {
            assert_eq!(bob.checkout(id, "").await.status(), 200);
            theirs.push(id.to_string());
        }
    }
    let lfs = Lfs::new(&app, "alice", USER_PASSWORD);
    let (mut got_ours, mut got_theirs) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let body = lfs_body(
            lfs.post(
                "/locks/verify",
                json!({"cursor": cursor, "limit": 2, "ref": {"name": "refs/heads/main"}}),
            )
            .await,
            200,
        )
        .await;
        got_ours.extend(ids(&body["ours"]));
        got_theirs.extend(ids(&body["theirs"]));
        cursor = body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(got_ours, ours);
    assert_eq!(got_theirs, theirs);

    app.create_user("carol", "user").await;
    let carol = Lfs::new(&app, "carol", USER_PASSWORD);
    let body = lfs_body(carol.post("/locks/verify", json!({})).await, 200).await;
    assert_eq!(body["ours"], json!([]));
    assert_eq!(ids(&body["theirs"]).len(), 5);
}

#[tokio::test]
async fn a_second_lock_is_a_409_carrying_the_existing_lock() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.create_user("bob", "user").await;
    let id = alice.upload_ok("parts/x.mcam", b"x").await;
    let lfs = Lfs::new(&app, "alice", USER_PASSWORD);
    let created = lfs_body(
        lfs.post(
            "/locks",
            json!({"path": "parts/x.mcam", "ref": {"name": "refs/heads/main"}}),
        )
        .await,
        201,
    )
    .await;
    let lock = &created["lock"];
    assert_eq!(lock["id"], id.to_string());
    assert_eq!(lock["path"], "parts/x.mcam");
    assert_eq!(lock["owner"]["name"], "alice");

    let bob = Lfs::new(&app, "bob", USER_PASSWORD);
    let clash = lfs_body(
        bob.post("/locks", json!({"path": "./parts//x.mcam"})).await,
        409,
    )
    .await;
    assert_eq!(&clash["lock"], lock, "the existing lock, unchanged");
    let message = clash["message"].as_str().unwrap();
    assert!(message.contains("checked out by alice"), "{message}");
}

#[tokio::test]
async fn unlocking_is_for_the_holder_and_force_is_for_admins() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    app.create_user("bob", "user").await;
    let id = alice.upload_ok("parts/x.mcam", b"x").await;
    let lfs = Lfs::new(&app, "alice", USER_PASSWORD);
    lfs_body(
        lfs.post("/locks", json!({"path": "parts/x.mcam"})).await,
        201,
    )
    .await;
    let unlock = format!("/locks/{id}/unlock");

    let bob = Lfs::new(&app, "bob", USER_PASSWORD);
    let msg = lfs_error(bob.post(&unlock, json!({})).await, 403).await;
    assert!(msg.contains("only they can unlock"), "{msg}");
    let msg = lfs_error(bob.post(&unlock, json!({"force": true})).await, 403).await;
    assert!(msg.contains("only an admin"), "{msg}");

    let admin = Lfs::new(&app, "admin", ADMIN_PASSWORD);
    let broken = lfs_body(admin.post(&unlock, json!({"force": true})).await, 200).await;
    assert_eq!(
        broken["lock"]["owner"]["name"], "alice",
        "the lock as it was"
    );
    assert_eq!(alice.file(id).await["state"], "available");
    let msg = lfs_error(admin.post(&unlock, json!({"force": true})).await, 404).await;
    assert!(msg.contains("not checked out"), "{msg}");
    lfs_error(admin.post("/locks/999/unlock", json!({})).await, 404).await;
    lfs_error(admin.post("/locks/abc/unlock", json!({})).await, 404).await;

    // The holder may pass force on their own lock: it is a plain cancel.
    lfs_body(
        lfs.post("/locks", json!({"path": "parts/x.mcam"})).await,
        201,
    )
    .await;
    let mine = lfs_body(lfs.post(&unlock, json!({"force": true})).await, 200).await;
    assert_eq!(mine["lock"]["owner"]["name"], "alice");
    let events = alice.get_json("/api/activity").await;
    let text = events.to_string();
    assert!(
        text.contains("overridden") && text.contains("unlocked"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_lock_requests_get_clear_errors_in_the_lfs_shape() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("parts/x.mcam", b"x").await;
    let lfs = Lfs::new(&app, "alice", USER_PASSWORD);
    let cases: &[(Value, u16, &str, &str)] = &[
        (
            json!({"path": "parts/none.mcam"}),
            404,
            "not a file in the vault",
            "no such file",
        ),
        (
            json!({"path": "parts"}),
            404,
            "not a file in the vault",
            "a folder",
        ),
        (
            json!({"path": "../etc/passwd"}),
            422,
            "'..'",
            "escapes the vault",
        ),
        (json!({"path": "/etc/passwd"}), 422, "absolute", "absolute"),
        (json!({"path": ""}), 422, "empty", "empty"),
        (json!({"nopath": 1}), 400, "JSON", "missing field"),
    ];
    for (body, status, says, why) in cases {
        let msg = lfs_error(lfs.post("/locks", body.clone()).await, *status).await;
        assert!(msg.contains(says), "{why}: {msg}");
    }
    // A form post (what another site could make a browser send) is refused.
    let resp = reqwest::Client::new()
        .post(app.url("/vault.git/info/lfs/locks"))
        .basic_auth("alice", Some(USER_PASSWORD))
        .form(&[("path", "parts/x.mcam")])
        .send()
        .await
        .unwrap();
    lfs_error(resp, 400).await;
    assert_eq!(alice.files().await[0]["state"], "available");
}

#[tokio::test]
async fn git_requests_without_valid_credentials_get_a_basic_challenge() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    // One user per path: a wrong secret (a token-like one too) counts as a
    // failed sign-in, and six for one user would be throttled (429).
    for (path, user) in [
        ("/vault.git/info/lfs/locks", "alice"),
        ("/vault.git/info/refs?service=git-upload-pack", "bob"),
        ("/vault.git/HEAD", "carol"),
    ] {
        app.create_user(user, "user").await;
        for auth in [None, Some("wrong-password"), Some("latch_0000")] {
            let mut req = http.get(app.url(path));
            if let Some(secret) = auth {
                req = req.basic_auth(user, Some(secret));
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{path} {auth:?}");
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with("Basic realm=\"Latch\""),
                "{challenge}"
            );
        }
    }
    let resp = http
        .post(app.url("/vault.git/info/lfs/locks/verify"))
        .header("Content-Type", LFS_JSON)
        .body("{}")
        .send()
        .await
        .unwrap();
    lfs_error(resp, 401).await;
}

#[tokio::test]
async fn only_repository_data_is_served_and_writes_are_refused() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("a.mcam", b"x").await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(app.url(path))
            .basic_auth("alice", Some(USER_PASSWORD))
            .send()
    };

    let refs = get("/vault.git/info/refs?service=git-upload-pack")
        .await
        .unwrap();
    assert_eq!(refs.status(), 200);
    assert!(
        refs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "dumb, not smart, without Git-Protocol: version=2 (git_smart:: has the smart side)"
    );
    let refs = refs.text().await.unwrap();
    let head = alice.files().await[0]["head"].as_str().unwrap().to_string();
    assert_eq!(refs, format!("{head}\trefs/heads/main\n"));
    let head_file = get("/vault.git/HEAD").await.unwrap();
    assert_eq!(head_file.text().await.unwrap(), "ref: refs/heads/main\n");
    let object = get(&format!("/vault.git/objects/{}/{}", &head[..2], &head[2..]))
        .await
        .unwrap();
    assert_eq!(object.status(), 200);
    assert_eq!(
        object.headers()["content-type"],
        "application/x-git-loose-object"
    );
    let packs = get("/vault.git/objects/info/packs").await.unwrap();
    assert_eq!(packs.text().await.unwrap(), "\n", "no packs yet");

    for path in [
        "/vault.git/config",
        "/vault.git/description",
        "/vault.git/refs/heads/main",
        "/vault.git/hooks/pre-receive.sample",
        "/vault.git/objects/%2e%2e/config",
        "/vault.git/objects/..%2fconfig",
        "/vault.git/objects/info/alternates",
        "/vault.git/objects/00/0000000000000000000000000000000000000000",
        "/vault.git/info/lfs/objects/batch",
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }

    let refuse = |method: reqwest::Method, path: &str| {
        http.request(method, app.url(path))
            .basic_auth("alice", Some(USER_PASSWORD))
            .body("x")
            .send()
    };
    for (method, path) in [
        (
            reqwest::Method::GET,
            "/vault.git/info/refs?service=git-receive-pack",
        ),
        (reqwest::Method::POST, "/vault.git/git-receive-pack"),
        (
            reqwest::Method::PUT,
            "/vault.git/objects/00/0000000000000000000000000000000000000000",
        ),
        (
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            "/vault.git/",
        ),
        (reqwest::Method::DELETE, "/vault.git/HEAD"),
    ] {
        let resp = refuse(method.clone(), path).await.unwrap();
        assert_eq!(resp.status(), 403, "{method} {path}");
        let text = resp.text().await.unwrap();
        assert!(
            text.contains("changes go through check-in at http://"),
            "{text}"
        );
    }
    let batch = refuse(reqwest::Method::POST, "/vault.git/info/lfs/objects/batch")
        .await
        .unwrap();
    let msg = lfs_error(batch, 403).await;
    assert!(msg.contains("check-in"), "{msg}");
}
