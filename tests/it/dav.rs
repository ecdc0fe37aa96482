//! The vault as a network drive (`/dav`): a WebDAV client made of reqwest
//! with WebDAV's methods, against the real server. Every verb is the same
//! operation as in the browser (same rule, event, live update); `LOCK` is a
//! check-out, a holder's `PUT` a draft, `UNLOCK` the check-in of the last
//! draft. The litmus compliance suite runs against it too.

use reqwest::Method;
use serde_json::Value;

use crate::common::live::{SseNext, WAIT, sse_open};
use crate::common::{ADMIN_PASSWORD, TestApp, USER_PASSWORD, have_tool, wait_until};

pub(super) const LOCKINFO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"#;

/// The token in a granted `LOCK`'s body (`<D:href>opaquelocktoken:…</D:href>`).
pub(super) fn lock_token_in(body: &str) -> Option<String> {
    let at = body.find("opaquelocktoken:")?;
    let end = at + body[at..].find('<')?;
    Some(body[at..end].trim().to_string())
}

/// A WebDAV client for one person: HTTP Basic, as a desktop client sends it.
pub(super) struct Dav {
    http: reqwest::Client,
    base: String,
    user: String,
    secret: String,
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("method")
}

impl Dav {
    pub(super) fn new(app: &TestApp, user: &str, secret: &str) -> Dav {
        Dav {
            http: reqwest::Client::builder()
                .user_agent("LatchTest/1.0")
                .build()
                .expect("client"),
            base: app.base.clone(),
            user: user.into(),
            secret: secret.into(),
        }
    }

    pub(super) fn req(&self, verb: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method(verb), format!("{}/dav/{path}", self.base))
            .basic_auth(&self.user, Some(&self.secret))
    }

    pub(super) async fn propfind(&self, path: &str, depth: &str) -> (u16, String) {
        let resp = self
            .req("PROPFIND", path)
            .header("Depth", depth)
            .send()
            .await
            .expect("PROPFIND");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    pub(super) async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self.req("GET", path).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    pub(super) async fn put(&self, path: &str, body: &[u8], token: Option<&str>) -> (u16, String) {
        let mut rb = self.req("PUT", path).body(body.to_vec());
        if let Some(t) = token {
            rb = rb.header("If", format!("(<{t}>)"));
        }
        let resp = rb.send().await.expect("PUT");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    /// `LOCK`; the token when granted, else the status and sentence.
    pub(super) async fn lock(&self, path: &str) -> Result<String, (u16, String)> {
        let resp = self
            .req("LOCK", path)
            .header("Content-Type", "application/xml")
            .header("Timeout", "Second-600")
            .body(LOCKINFO)
            .send()
            .await
            .expect("LOCK");
        let status = resp.status().as_u16();
        let token = resp
            .headers()
            .get("lock-token")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.trim_matches(|c| c == '<' || c == '>').to_string());
        let text = resp.text().await.unwrap_or_default();
        match (status, token) {
            (200 | 201, Some(t)) => Ok(t),
            _ => Err((status, text)),
        }
    }

    pub(super) async fn unlock(&self, path: &str, token: &str) -> u16 {
        self.req("UNLOCK", path)
            .header("Lock-Token", format!("<{token}>"))
            .send()
            .await
            .expect("UNLOCK")
            .status()
            .as_u16()
    }

    pub(super) async fn to(&self, verb: &str, from: &str, to: &str) -> (u16, String) {
        let resp = self
            .req(verb, from)
            .header("Destination", format!("{}/dav/{to}", self.base))
            .header("Overwrite", "F")
            .send()
            .await
            .expect(verb);
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    pub(super) async fn simple(&self, verb: &str, path: &str) -> (u16, String) {
        let resp = self.req(verb, path).send().await.expect(verb);
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }
}

/// The app, its admin on the drive, and bob and carol (users) on it.
pub(super) async fn setup() -> (TestApp, Dav, Dav, Dav) {
    let app = TestApp::spawn().await;
    app.create_user("bob", "user").await;
    app.create_user("carol", "user").await;
    let admin = Dav::new(&app, "admin", ADMIN_PASSWORD);
    let bob = Dav::new(&app, "bob", USER_PASSWORD);
    let carol = Dav::new(&app, "carol", USER_PASSWORD);
    (app, admin, bob, carol)
}

pub(super) async fn file_at(app: &TestApp, path: &str) -> Value {
    let files = app.admin().await.files().await;
    files
        .into_iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no file at {path}"))
}

async fn versions(app: &TestApp, id: u64) -> Vec<Value> {
    app.admin().await.history(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drive_takes_basic_credentials_only_never_a_session_cookie() {
    let (app, admin, _bob, _carol) = setup().await;
    let http = reqwest::Client::new();
    let propfind = || {
        http.request(method("PROPFIND"), app.url("/dav/"))
            .header("Depth", "0")
    };

    let resp = propfind().send().await.unwrap();
    assert_eq!(resp.status(), 401, "anonymous");
    let challenge = crate::common::header(&resp, "www-authenticate");
    assert!(
        challenge.starts_with("Basic realm=\"Latch\""),
        "{challenge}"
    );

    // A signed-in browser's cookie does not open the drive: another site
    // could otherwise make the browser send it.
    let session = app.admin().await;
    let resp = propfind()
        .header("Cookie", session.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "session cookie");
    let resp = propfind()
        .bearer_auth("latch_nothing")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "bearer token");

    let resp = propfind()
        .basic_auth("admin", Some("wrong-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "wrong password");

    assert_eq!(admin.propfind("", "0").await.0, 207, "password");
    let token = session.new_token("drive").await;
    let by_token = Dav::new(&app, "admin", &token);
    assert_eq!(by_token.propfind("", "0").await.0, 207, "API token");

    // A disabled account is refused, with its token too.
    app.create_user("dora", "user").await;
    let dora = Dav::new(&app, "dora", USER_PASSWORD);
    assert_eq!(dora.propfind("", "0").await.0, 207);
    let resp = session
        .patch_json("/api/users/dora", &serde_json::json!({"disabled": true}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(dora.propfind("", "0").await.0, 401, "disabled");

    // A write a browser marks as cross-site is refused before any credential counts.
    let resp = admin
        .req("MKCOL", "forged")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "cross-site write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propfind_shows_folders_from_paths_sizes_tags_and_the_holder() {
    let (app, admin, bob, carol) = setup().await;
    let web = app.admin().await;
    web.upload_ok("parts/bracket.txt", b"bracket v1").await;
    web.upload_ok("parts/sub/deep.txt", b"deep").await;
    web.upload_ok("top.txt", b"top").await;
    bob.lock("parts/bracket.txt").await.expect("bob locks");

    let (status, root) = admin.propfind("", "1").await;
    assert_eq!(status, 207);
    assert!(root.contains("<D:href>/dav/parts/</D:href>"), "{root}");
    assert!(root.contains("<D:href>/dav/top.txt</D:href>"), "{root}");
    assert!(
        !root.contains("deep.txt"),
        "depth 1 stays at the top: {root}"
    );

    let (status, parts) = carol.propfind("parts/", "1").await;
    assert_eq!(status, 207);
    assert!(
        parts.contains("<D:href>/dav/parts/sub/</D:href>"),
        "{parts}"
    );
    assert!(
        parts.contains("<D:getcontentlength>10</D:getcontentlength>"),
        "{parts}"
    );
    assert!(
        parts.contains("<D:getcontenttype>text/plain</D:getcontenttype>"),
        "{parts}"
    );
    assert!(parts.contains("<D:getetag>"), "{parts}");
    // Carol sees who holds the file.
    assert!(parts.contains("<D:lockdiscovery><D:activelock>"), "{parts}");
    assert!(parts.contains("bob"), "the holder is named: {parts}");

    assert_eq!(admin.propfind("nothing-here", "0").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_streams_the_current_version_and_a_range_seeks_into_it() {
    let (app, admin, _bob, _carol) = setup().await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    app.admin().await.upload_ok("big.bin", &body).await;
    let (status, got) = admin.get("big.bin").await;
    assert_eq!(status, 200);
    assert_eq!(got, body);
    let resp = admin
        .req("GET", "big.bin")
        .header("Range", "bytes=200000-200009")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), body[200_000..200_010]);
    let resp = admin.req("HEAD", "big.bin").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(crate::common::header(&resp, "content-length"), "300000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_to_a_new_path_is_an_upload_with_the_upload_rules() {
    let app = TestApp::spawn_with(|c| c.max_upload = 1000).await;
    app.create_user("bob", "user").await;
    let bob = Dav::new(&app, "bob", USER_PASSWORD);
    assert_eq!(bob.simple("MKCOL", "parts").await.0, 201);
    let (status, _) = bob.put("parts/new.txt", b"first", None).await;
    assert_eq!(status, 201);
    let f = file_at(&app, "parts/new.txt").await;
    assert_eq!(f["revision"], "1.0");
    let events = app.admin().await.events_of("created").await;
    assert_eq!(events.len(), 1, "{events:?}");

    // WebDAV makes folders first: no parent, 409 with the reason.
    let (status, text) = bob.put("nowhere/new.txt", b"x", None).await;
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("does not exist"), "{text}");
    // The same path rules as every upload.
    let (status, text) = bob.put("parts/.git", b"x", None).await;
    assert!((400..500).contains(&status), "{status} {text}");
    // The size limit, with nothing kept.
    let (status, text) = bob.put("parts/huge.bin", &[7u8; 5000], None).await;
    assert_eq!(status, 413, "{text}");
    let spool = app.data_dir.join("spool");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "spool empty");
    assert_eq!(bob.propfind("parts/huge.bin", "0").await.0, 404);
    // A name taken is not uploaded again: bob does not hold it.
    let (status, text) = bob.put("parts/new.txt", b"second", None).await;
    assert_eq!(status, 423, "{text}");
    assert!(text.contains("Check parts/new.txt out first"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_is_a_check_out_and_a_second_user_is_refused_naming_the_holder() {
    let (app, _admin, bob, carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let token = bob.lock("part.mcam").await.expect("bob locks");
    let f = app.admin().await.file(id).await;
    assert_eq!(f["lock"]["owner"], "bob");
    assert_eq!(f["lock"]["comment"], "opened in LatchTest");

    let (status, text) = carol.lock("part.mcam").await.expect_err("carol is refused");
    assert_eq!(status, 423);
    assert!(text.contains("checked out by bob"), "{text}");
    let (status, text) = carol.put("part.mcam", b"carol's", None).await;
    assert_eq!(status, 423);
    assert!(text.contains("bob"), "{text}");
    // Bob's own second program, without his token, is refused too.
    let (status, _) = bob.put("part.mcam", b"other app", None).await;
    assert_eq!(status, 423);
    // The web shows the same: a check-out by carol is refused naming bob.
    let resp = app.user("carol2").await.checkout(id, "").await;
    assert_eq!(resp.status(), 409);

    // A refresh keeps it; the token ends with UNLOCK, and so does the check-out.
    let resp = bob
        .req("LOCK", "part.mcam")
        .header("If", format!("(<{token}>)"))
        .header("Timeout", "Second-900")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "refresh");
    assert_eq!(bob.unlock("part.mcam", &token).await, 204);
    let f = app.admin().await.file(id).await;
    assert!(
        f["lock"].is_null(),
        "no draft: the check-out was cancelled: {f}"
    );
    assert_eq!(versions(&app, id).await.len(), 1);
    // A file checked out on the web is shown and refused the same way.
    let web_bob = app.login("bob", USER_PASSWORD).await;
    assert_eq!(web_bob.checkout(id, "at my desk").await.status(), 200);
    let (status, text) = carol.lock("part.mcam").await.expect_err("refused");
    assert_eq!(status, 423);
    assert!(text.contains("bob"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_are_drafts_and_closing_checks_the_last_one_in() {
    let (app, _admin, bob, carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let token = bob.lock("part.mcam").await.expect("lock");
    assert_eq!(bob.put("part.mcam", b"save one", Some(&token)).await.0, 204);
    assert_eq!(bob.put("part.mcam", b"save two", Some(&token)).await.0, 204);
    assert_eq!(versions(&app, id).await.len(), 1, "drafts are not versions");
    assert_eq!(
        bob.get("part.mcam").await.1,
        b"save two",
        "the holder reads the draft"
    );
    assert_eq!(
        carol.get("part.mcam").await.1,
        b"v1",
        "others read the version"
    );
    let drafts = app.data_dir.join("drafts");
    assert_eq!(
        std::fs::read_dir(&drafts).unwrap().count(),
        1,
        "one draft kept"
    );
    // The card says so.
    let card = app
        .admin()
        .await
        .get(&format!("/files/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(card.contains("draft saved"), "{card}");

    assert_eq!(bob.unlock("part.mcam", &token).await, 204);
    let history = versions(&app, id).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["revision"], "1.1");
    assert_eq!(history[0]["message"], "Saved from LatchTest");
    assert_eq!(history[0]["username"], "bob");
    let f = app.admin().await.file(id).await;
    assert!(f["lock"].is_null(), "{f}");
    assert_eq!(app.admin().await.content(id, None).await, b"save two");
    assert_eq!(std::fs::read_dir(&drafts).unwrap().count(), 0, "draft gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_survives_a_restart_and_orphans_are_swept() {
    let (mut app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let token = bob.lock("part.mcam").await.expect("lock");
    assert_eq!(
        bob.put("part.mcam", b"unsaved work", Some(&token)).await.0,
        204
    );
    let drafts = app.data_dir.join("drafts");
    std::fs::write(drafts.join("draft-999-orphan"), b"left by a crash").unwrap();
    app.restart().await;
    let bob = Dav::new(&app, "bob", USER_PASSWORD);
    assert!(!drafts.join("draft-999-orphan").exists(), "orphan removed");
    assert_eq!(bob.get("part.mcam").await.1, b"unsaved work");
    // The token from before the restart still closes the file.
    assert_eq!(bob.unlock("part.mcam", &token).await, 204);
    assert_eq!(app.admin().await.content(id, None).await, b"unsaved work");
    assert_eq!(versions(&app, id).await[0]["revision"], "1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_drops_the_holders_draft() {
    let (app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let token = bob.lock("part.mcam").await.expect("lock");
    assert_eq!(bob.put("part.mcam", b"draft", Some(&token)).await.0, 204);
    assert_eq!(app.admin().await.override_lock(id).await.status(), 200);
    let drafts = app.data_dir.join("drafts");
    wait_until("the draft to be removed", || {
        let drafts = drafts.clone();
        async move { std::fs::read_dir(&drafts).unwrap().count() == 0 }
    })
    .await;
    // Bob's program closing the file later changes nothing: its token
    // ended with the check-out.
    assert_eq!(bob.unlock("part.mcam", &token).await, 409);
    assert_eq!(versions(&app, id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_each_step_of_a_drive_session_live() {
    let (app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let watcher = app.user("wendy").await;
    let mut sse = sse_open(&app.base, &watcher, "", &[]).await;
    let mut next_kind = async |want: &str| loop {
        match sse.next(WAIT).await {
            SseNext::Event(e) if e.kind() == want => return e.html(),
            SseNext::Event(_) => continue,
            other => panic!("waiting for {want}: {other:?}"),
        }
    };
    let token = bob.lock("part.mcam").await.expect("lock");
    let html = next_kind("locked").await;
    assert!(html.contains(&format!("id=\"file-{id}\"")), "{html}");
    assert!(html.contains("opened in LatchTest"), "{html}");
    assert_eq!(bob.put("part.mcam", b"draft", Some(&token)).await.0, 204);
    let html = next_kind("refresh").await;
    assert!(html.contains("draft saved"), "{html}");
    assert_eq!(bob.unlock("part.mcam", &token).await, 204);
    let html = next_kind("checked_in").await;
    assert!(html.contains("data-state=\"available\""), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_copy_delete_and_mkcol_are_the_vaults_own_operations() {
    let (app, admin, bob, _carol) = setup().await;
    let web = app.admin().await;
    let id = web.upload_ok("parts/a.txt", b"alpha").await;

    // MKCOL keeps an empty folder until a file lands in it.
    assert_eq!(bob.simple("MKCOL", "empty").await.0, 201);
    assert_eq!(bob.simple("MKCOL", "empty").await.0, 405, "exists");
    assert_eq!(bob.simple("MKCOL", "no/parent").await.0, 409);
    let (_, root) = bob.propfind("", "1").await;
    assert!(root.contains("<D:href>/dav/empty/</D:href>"), "{root}");

    // COPY is an upload of a copy at the new path.
    assert_eq!(
        bob.to("COPY", "parts/a.txt", "empty/a-copy.txt").await.0,
        201
    );
    let copy = file_at(&app, "empty/a-copy.txt").await;
    assert_ne!(copy["id"].as_u64(), Some(id));
    assert_eq!(bob.get("empty/a-copy.txt").await.1, b"alpha");
    assert_eq!(
        versions(&app, copy["id"].as_u64().unwrap()).await[0]["action"],
        "create"
    );

    // MOVE: an admin on a free file, or the holder; not someone else.
    let (status, text) = bob.to("MOVE", "parts/a.txt", "parts/b.txt").await;
    assert_eq!(status, 403, "{text}");
    assert_eq!(admin.to("MOVE", "parts/a.txt", "parts/b.txt").await.0, 201);
    let moved = file_at(&app, "parts/b.txt").await;
    assert_eq!(moved["id"].as_u64(), Some(id), "the id follows the file");
    let token = bob.lock("parts/b.txt").await.expect("lock");
    let resp = bob
        .req("MOVE", "parts/b.txt")
        .header("Destination", format!("{}/dav/parts/c.txt", app.base))
        .header("If", format!("(<{token}>)"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "the holder moves it");
    let f = app.admin().await.file(id).await;
    assert_eq!(f["path"], "parts/c.txt");
    assert_eq!(f["lock"]["owner"], "bob", "the lock follows");

    // DELETE: an admin, on a file nobody holds.
    assert_eq!(bob.simple("DELETE", "empty/a-copy.txt").await.0, 403);
    let (status, text) = admin.simple("DELETE", "parts/c.txt").await;
    assert_eq!(status, 423, "held by bob: {text}");
    assert_eq!(admin.simple("DELETE", "empty/a-copy.txt").await.0, 204);
    assert_eq!(app.admin().await.events_of("deleted").await.len(), 1);
    // The folder the copy landed in was a folder of files; it is gone with them.
    assert_eq!(admin.simple("MKCOL", "gone").await.0, 201);
    assert_eq!(admin.simple("DELETE", "gone/").await.0, 204);
    assert_eq!(admin.propfind("gone/", "0").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_basic_copymove_props_locks_and_http() {
    if !have_tool("litmus", "litmus") {
        return;
    }
    let app = TestApp::spawn().await;
    let url = format!("{}/dav/", app.base);
    // litmus writes debug.log and child.log where it runs.
    let scratch = app.data_dir.clone();
    // Blocking: litmus runs to its end (the server answers on its own threads).
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("litmus")
            .arg(&url)
            .arg("admin")
            .arg(ADMIN_PASSWORD)
            .env("TESTS", "basic copymove props locks http")
            .current_dir(&scratch)
            .output()
    })
    .await
    .expect("join")
    .expect("litmus runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("FAIL") || l.contains("WARNING"))
        .collect();
    assert!(
        out.status.success() && failed.iter().all(|l| !l.contains("FAIL")),
        "litmus:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for suite in ["basic", "copymove", "props", "locks", "http"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("<- summary for `{suite}'"))),
            "litmus ran {suite}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_check_in_takes_the_draft_unless_a_file_is_uploaded() {
    let (app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let web_bob = app.login("bob", USER_PASSWORD).await;
    let token = bob.lock("part.mcam").await.expect("lock");
    assert_eq!(
        bob.put("part.mcam", b"from the drive", Some(&token))
            .await
            .0,
        204
    );
    // No file in the form: the draft is the new version.
    let form = reqwest::multipart::Form::new().text("message", "done at my desk");
    let resp = web_bob
        .post_form(&format!("/api/files/{id}/checkin"), form)
        .await;
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    assert_eq!(app.admin().await.content(id, None).await, b"from the drive");
    assert_eq!(versions(&app, id).await[0]["message"], "done at my desk");
    let drafts = app.data_dir.join("drafts");
    assert_eq!(std::fs::read_dir(&drafts).unwrap().count(), 0, "draft gone");

    // An uploaded file wins over a draft.
    let token = bob.lock("part.mcam").await.expect("lock again");
    assert_eq!(
        bob.put("part.mcam", b"draft two", Some(&token)).await.0,
        204
    );
    let resp = web_bob
        .checkin(id, b"uploaded", "uploaded instead", "minor")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.admin().await.content(id, None).await, b"uploaded");
    assert_eq!(
        std::fs::read_dir(&drafts).unwrap().count(),
        0,
        "draft dropped"
    );
}

/// A davfs2 mount of the drive as one user, unmounted when dropped.
struct Mount {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl Mount {
    /// Mounts `url` as `user` under `root`; `None` (with the reason printed)
    /// when this machine cannot mount FUSE file systems.
    fn new(root: &std::path::Path, url: &str, user: &str, password: &str) -> Option<Mount> {
        Mount::with(root, url, user, password, "delay_upload 0\n")
    }

    /// The same, with davfs2.conf lines of the test's own (`extra`).
    fn with(
        root: &std::path::Path,
        url: &str,
        user: &str,
        password: &str,
        extra: &str,
    ) -> Option<Mount> {
        use std::os::unix::fs::PermissionsExt;
        let conf = root.join("davfs2");
        let cache = root.join("cache");
        let dir = root.join("mnt");
        for d in [&conf, &cache, &dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        // davfs2 drops to its own user: the cache must be writable by it.
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let secrets = conf.join("secrets");
        std::fs::write(&secrets, format!("{url} {user} {password}\n")).unwrap();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = conf.join("davfs2.conf");
        std::fs::write(
            &config,
            format!(
                // buf_size 64: davfs2 before 1.7.2 cannot list a folder on
                // Linux 6.16 and later with its default (16 KiB), the same
                // line README gives.
                "use_locks 1\nbuf_size 64\n{extra}cache_dir {}\nsecrets {}\n",
                cache.display(),
                secrets.display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new("mount.davfs")
            .arg("-o")
            .arg(format!("conf={}", config.display()))
            .arg(url)
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run mount.davfs");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            if crate::common::require_all() {
                panic!("mount.davfs failed (LATCH_REQUIRE_ALL=1): {why}");
            }
            eprintln!("SKIPPED: mount.davfs could not mount here: {why}");
            return None;
        }
        Some(Mount { dir, mounted: true })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(&self.dir).output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_davfs2_session_opens_saves_twice_and_closes_into_one_revision() {
    if !have_tool("mount.davfs", "davfs2") {
        return;
    }
    let (app, _admin, _bob, carol) = setup().await;
    let id = app
        .admin()
        .await
        .upload_ok("parts/bracket.mcam", b"v1")
        .await;
    let watcher = app.user("wendy").await;
    let mut sse = sse_open(&app.base, &watcher, "", &[]).await;
    let scratch = tempfile::tempdir().unwrap();
    let url = format!("{}/dav/", app.base);
    let Some(mount) = Mount::new(scratch.path(), &url, "bob", USER_PASSWORD) else {
        return;
    };
    let file = mount.dir.join("parts/bracket.mcam");

    // Opening it for writing locks it: checked out by bob, live.
    let opened = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .expect("open on the drive")
    })
    .await
    .unwrap();
    loop {
        match sse.next(WAIT).await {
            SseNext::Event(e) if e.kind() == "locked" => {
                assert!(e.html().contains("opened in davfs2"), "{}", e.html());
                break;
            }
            SseNext::Event(_) => continue,
            other => panic!("waiting for the check-out: {other:?}"),
        }
    }
    let f = app.admin().await.file(id).await;
    assert_eq!(f["lock"]["owner"], "bob");
    // A second client is refused while it is open, told who has it.
    let (status, text) = carol.lock("parts/bracket.mcam").await.expect_err("refused");
    assert_eq!(status, 423);
    assert!(text.contains("bob"), "{text}");

    // Two saves, then close.
    tokio::task::spawn_blocking(move || {
        use std::io::{Seek, Write};
        let mut f = opened;
        f.set_len(0).unwrap();
        f.write_all(b"first save").unwrap();
        f.sync_all().unwrap();
        f.set_len(0).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(b"second save, the last").unwrap();
        f.sync_all().unwrap();
        drop(f);
    })
    .await
    .unwrap();
    loop {
        match sse.next(WAIT).await {
            SseNext::Event(e) if e.kind() == "checked_in" => break,
            SseNext::Event(_) => continue,
            other => panic!("waiting for the check-in: {other:?}"),
        }
    }
    let history = versions(&app, id).await;
    assert_eq!(history.len(), 2, "one new revision: {history:?}");
    assert_eq!(history[0]["revision"], "1.1");
    assert_eq!(history[0]["message"], "Saved from davfs2");
    assert_eq!(
        app.admin().await.content(id, None).await,
        b"second save, the last"
    );
    assert!(app.admin().await.file(id).await["lock"].is_null());
    drop(mount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_timeout_ends_the_token_never_the_check_out() {
    let (app, _admin, bob, carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let resp = bob
        .req("LOCK", "part.mcam")
        .header("Timeout", "Second-1")
        .body(LOCKINFO)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Past the client's timeout (a wait, not a measurement).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let f = app.admin().await.file(id).await;
    assert_eq!(f["lock"]["owner"], "bob", "Latch's lock stays");
    assert_eq!(carol.lock("part.mcam").await.expect_err("refused").0, 423);
    // Bob's token is gone: his saves need none, as for a web check-out.
    assert_eq!(
        bob.put("part.mcam", b"after the timeout", None).await.0,
        204
    );
    assert_eq!(bob.get("part.mcam").await.1, b"after the timeout");
    assert_eq!(versions(&app, id).await.len(), 1, "a draft, not a version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_copy_is_one_upload_of_every_file_in_it() {
    let (app, admin, bob, _carol) = setup().await;
    let web = app.admin().await;
    web.upload_ok("jobs/a.nc", b"alpha").await;
    web.upload_ok("jobs/sub/b.nc", b"beta").await;
    assert_eq!(bob.simple("MKCOL", "jobs/empty").await.0, 201);

    assert_eq!(bob.to("COPY", "jobs/", "copied/").await.0, 201);
    let a = file_at(&app, "copied/a.nc").await;
    let b = file_at(&app, "copied/sub/b.nc").await;
    assert_eq!(a["head"], b["head"], "one commit for the whole folder");
    assert_eq!(bob.get("copied/sub/b.nc").await.1, b"beta");
    assert_eq!(
        bob.propfind("copied/empty/", "0").await.0,
        207,
        "empty folders too"
    );
    assert_eq!(app.admin().await.events_of("created").await.len(), 4);

    // Not over an existing folder unless asked; replacing it is deleting
    // its files, which only an admin may.
    assert_eq!(bob.to("COPY", "jobs/", "copied/").await.0, 412);
    let resp = bob
        .req("COPY", "jobs/")
        .header("Destination", format!("{}/dav/copied/", app.base))
        .header("Overwrite", "T")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "{}", resp.text().await.unwrap());
    let resp = admin
        .req("COPY", "jobs/")
        .header("Destination", format!("{}/dav/copied/", app.base))
        .header("Overwrite", "T")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_ne!(
        file_at(&app, "copied/a.nc").await["id"],
        a["id"],
        "replaced"
    );
}

/// A token stands for one check-out: after a cancel in the browser and a
/// new check-out by the same person, the old token opens and closes
/// nothing; a token that joined a browser check-out leaves it held when
/// closed without a save, and checks a save in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_stands_for_one_check_out_and_never_ends_a_browser_one_unsaved() {
    let (app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("part.mcam", b"v1").await;
    let web = app.login("bob", USER_PASSWORD).await;

    let old = bob.lock("part.mcam").await.expect("lock");
    assert_eq!(web.cancel(id).await.status(), 200);
    assert_eq!(web.checkout(id, "at the bench").await.status(), 200);
    assert_eq!(
        bob.unlock("part.mcam", &old).await,
        409,
        "the token ended with its check-out"
    );
    let f = app.admin().await.file(id).await;
    assert_eq!(
        f["lock"]["owner"], "bob",
        "the browser's check-out stands: {f}"
    );
    assert_eq!(f["lock"]["comment"], "at the bench");

    // Opened and closed in a program without a save: still held.
    let joined = bob.lock("part.mcam").await.expect("lock joins");
    assert_eq!(bob.unlock("part.mcam", &joined).await, 204);
    let f = app.admin().await.file(id).await;
    assert_eq!(f["lock"]["owner"], "bob", "closing unsaved keeps it: {f}");

    // Opened, saved and closed: the save is checked in.
    let joined = bob.lock("part.mcam").await.expect("lock joins");
    assert_eq!(bob.put("part.mcam", b"v2", Some(&joined)).await.0, 204);
    assert_eq!(bob.unlock("part.mcam", &joined).await, 204);
    let f = app.admin().await.file(id).await;
    assert!(f["lock"].is_null(), "{f}");
    assert_eq!(f["revision"], "1.1");
    assert_eq!(app.admin().await.content(id, None).await, b"v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_locked_before_its_first_save_is_an_empty_file_until_then() {
    let (app, _admin, bob, carol) = setup().await;
    bob.simple("MKCOL", "jobs/").await;
    // LOCK on a name with nothing there: 201, and (RFC 4918 7.3) the name
    // is now a locked empty file, listed, readable, and not in the vault.
    let token = bob.lock("jobs/new.nc").await.expect("lock a new name");
    let (status, listing) = bob.propfind("jobs/", "1").await;
    assert_eq!(status, 207);
    assert!(listing.contains("/dav/jobs/new.nc"), "{listing}");
    assert_eq!(bob.get("jobs/new.nc").await, (200, Vec::new()));
    assert_eq!(bob.simple("HEAD", "jobs/new.nc").await.0, 200);
    let (status, listing) = carol.propfind("jobs/new.nc", "0").await;
    assert_eq!(status, 207);
    assert!(listing.contains("bob"), "the lock names bob: {listing}");
    assert!(app.admin().await.files().await.is_empty());
    // Someone else can neither save there nor lock it.
    assert_eq!(carol.put("jobs/new.nc", b"mine", None).await.0, 423);
    assert_eq!(carol.lock("jobs/new.nc").await.expect_err("held").0, 423);
    // Closed without a save: the name is gone, no file was made.
    assert_eq!(bob.unlock("jobs/new.nc", &token).await, 204);
    assert_eq!(bob.simple("HEAD", "jobs/new.nc").await.0, 404);
    let (_, listing) = bob.propfind("jobs/", "1").await;
    assert!(!listing.contains("new.nc"), "{listing}");
    assert!(app.admin().await.files().await.is_empty());
    // Locked again and saved: the save is the upload (204: the empty file
    // was there).
    let token = bob.lock("jobs/new.nc").await.expect("lock again");
    assert_eq!(bob.put("jobs/new.nc", b"G21", Some(&token)).await.0, 204);
    assert_eq!(bob.unlock("jobs/new.nc", &token).await, 204);
    let f = file_at(&app, "jobs/new.nc").await;
    let id = f["id"].as_u64().expect("id");
    assert_eq!(app.admin().await.content(id, None).await, b"G21");
    assert_eq!(versions(&app, id).await.len(), 1);
}

/// Files copied onto a davfs2 mount wait in its cache (`delay_upload`)
/// after a `LOCK` on each new name; listing their folder in that time must
/// not lose them (it did: the names were not listed, so davfs2 dropped them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_copied_onto_davfs2_survive_a_listing_before_their_upload() {
    if !have_tool("mount.davfs", "davfs2") {
        return;
    }
    let (app, admin, _bob, _carol) = setup().await;
    assert_eq!(admin.simple("MKCOL", "parts/").await.0, 201);
    let scratch = tempfile::tempdir().unwrap();
    let url = format!("{}/dav/", app.base);
    let extra = "delay_upload 10\ndir_refresh 1\nfile_refresh 1\n";
    let Some(mount) = Mount::with(scratch.path(), &url, "bob", USER_PASSWORD, extra) else {
        return;
    };
    let dir = mount.dir.join("parts");
    let listed = tokio::task::spawn_blocking(move || {
        std::fs::write(dir.join("a.nc"), b"first").expect("copy a");
        std::fs::write(dir.join("b.nc"), b"second").expect("copy b");
        // A file manager showing the folder while davfs2 still holds them
        // (davfs2 asks the server again once `dir_refresh` has passed).
        let list = || {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .expect("list the folder on the drive")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let mut seen = Vec::new();
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_secs(2));
            seen.push(list());
        }
        seen
    })
    .await
    .unwrap();
    for names in listed {
        assert_eq!(names, ["a.nc", "b.nc"]);
    }
    // davfs2 uploads each (PUT: a new file, checked out to bob by his lock
    // on the name) and then closes it (UNLOCK): neither is left checked out.
    wait_until("both copies uploaded and closed", || async {
        let files = app.admin().await.files().await;
        files.len() == 2 && files.iter().all(|f| f["lock"].is_null())
    })
    .await;
    for (path, want) in [("parts/a.nc", &b"first"[..]), ("parts/b.nc", b"second")] {
        let f = file_at(&app, path).await;
        let id = f["id"].as_u64().expect("id");
        assert_eq!(app.admin().await.content(id, None).await, want, "{path}");
    }
    drop(mount);
}
