//! Files: upload, check out, cancel, check in, override, delete, history and
//! download through the JSON API and the plain HTML forms, with the rules of
//! the contract (operations, their rules and routes), racing requests, bad
//! input, and persistence across a restart.

use std::path::Path;

use crate::common::{
    self, Client, TestApp, USER_PASSWORD, expect_error, git_ok, header, hidden_csrf, json_of,
    upload_form,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

#[tokio::test]
async fn a_checked_in_version_becomes_a_commit_with_its_revision() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("parts/1234567.mcam", b"first").await;
    assert_eq!(alice.checkout(id, "fixing the post").await.status(), 200);
    let resp = alice.checkin(id, b"second", "Fix the post", "minor").await;
    assert_eq!(resp.status(), 200);
    let file = alice.file(id).await;
    assert_eq!(file["revision"], "1.1");
    assert_eq!(file["state"], "available");
    let history = alice.history(id).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["revision"], "1.1");
    assert_eq!(history[0]["message"], "Fix the post");
    assert_eq!(alice.content(id, None).await, b"second");
    let first = history[1]["commit"].as_str().unwrap();
    assert_eq!(alice.content(id, Some(first)).await, b"first");
    let err = expect_error(alice.checkin(id, b"third", "again", "minor").await, 409).await;
    assert!(err.contains("not checked out"), "{err}");
}

// ---------------------------------------------------------------------------
// Helpers local to this file.

/// The same signed-in session, but without the CSRF token.
fn without_csrf(client: &Client) -> Client {
    let mut c = client.clone();
    c.csrf = None;
    c
}

/// Every file under `dir`, recursively (Git objects, spool files).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out.sort();
    out
}

/// Everything a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    files: Value,
    histories: Vec<Value>,
    last_seq: Value,
    spool: Vec<String>,
    objects: Vec<String>,
}

async fn snapshot(app: &TestApp, viewer: &Client) -> Snapshot {
    let files = viewer.get_json("/api/files").await;
    let mut histories = Vec::new();
    for f in files["files"].as_array().cloned().unwrap_or_default() {
        let id = f["id"].as_u64().unwrap();
        histories.push(viewer.get_json(&format!("/api/files/{id}/history")).await);
    }
    let last_seq = viewer.get_json("/api/activity").await["last_seq"].clone();
    Snapshot {
        files: files["files"].clone(),
        histories,
        last_seq,
        spool: files_under(&app.data_dir.join("spool")),
        objects: files_under(&app.vault_path().join("objects")),
    }
}

/// Signs a user in the way a browser without JavaScript does: the login form,
/// then the dashboard, whose hidden `_csrf` field later forms carry.
struct Browser {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

impl Browser {
    async fn sign_in(app: &TestApp, username: &str, password: &str) -> Browser {
        let http = crate::common::http::cookie_client();
        let login = http.get(app.url("/login")).send().await.unwrap();
        assert_eq!(login.status(), 200);
        let page = login.text().await.unwrap();
        assert!(page.contains(r#"name="username""#) && page.contains(r#"name="password""#));
        let resp = http
            .post(app.url("/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "sign-in redirects");
        assert_eq!(header(&resp, "location"), "/");
        assert!(header(&resp, "set-cookie").starts_with("latch_session="));
        let mut browser = Browser {
            http,
            base: app.base.clone(),
            csrf: String::new(),
        };
        let page = browser.page("/").await;
        browser.csrf = hidden_csrf(&page);
        browser
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GETs an HTML page, asserting 200.
    async fn page(&self, path: &str) -> String {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.unwrap()
    }

    /// A plain url-encoded form post (no HX-Request, no CSRF header).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    async fn post_multipart(&self, path: &str, form: Form) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}

/// A 303 back to the dashboard, whose next view shows `expect` as a flash.
async fn assert_flash(browser: &Browser, resp: reqwest::Response, expect: &str, error: bool) {
    assert_eq!(
        resp.status(),
        303,
        "a plain form post answers with a redirect"
    );
    assert_eq!(header(&resp, "location"), "/");
    let page = browser.page("/").await;
    let class = if error {
        r#"class="error""#
    } else {
        r#"class="notice""#
    };
    let flash = page
        .find(class)
        .map(|at| &page[at..(at + 400).min(page.len())])
        .unwrap_or_else(|| panic!("a {class} flash on the next page: {page}"));
    assert!(flash.contains(expect), "flash {flash:?} says {expect:?}");
    // One-shot: it is gone on the page after.
    assert!(
        !browser.page("/").await.contains(class),
        "the flash is shown once"
    );
}

// ---------------------------------------------------------------------------
// Upload.

#[tokio::test]
async fn an_upload_starts_at_revision_1_0_keeps_its_folders_and_a_taken_path_is_a_conflict() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;

    let resp = alice
        .post_form(
            "/api/files",
            upload_form(
                &[
                    ("path", "parts/sub/1234567.mcam"),
                    ("description", "Bracket, op 10"),
                ],
                Some(b"G0 X0 Y0"),
            ),
        )
        .await;
    let file = json_of(resp, 201).await;
    assert_eq!(file["path"], "parts/sub/1234567.mcam");
    assert_eq!(file["revision"], "1.0", "the default initial revision");
    assert_eq!(file["state"], "available");
    assert_eq!(file["lock"], Value::Null);
    assert_eq!(file["size"], 8);
    assert_eq!(file["description"], "Bracket, op 10");
    assert_eq!(
        file["head"].as_str().unwrap().len(),
        40,
        "head is a commit id"
    );
    let id = file["id"].as_u64().unwrap();
    assert_eq!(
        alice.file(id).await,
        file,
        "GET /api/files/{{id}} answers the same"
    );

    // A custom initial revision.
    let resp = alice
        .post_form(
            "/api/files",
            upload_form(
                &[("path", "fixtures/vise.mcam"), ("revision", "3.5")],
                Some(b"vise"),
            ),
        )
        .await;
    let vise = json_of(resp, 201).await;
    assert_eq!(vise["revision"], "3.5");
    let vise_id = vise["id"].as_u64().unwrap();
    assert_ne!(vise_id, id);
    assert_eq!(alice.history(vise_id).await[0]["revision"], "3.5");

    // A path is normalised; with no path, the uploaded file's name is used.
    let resp = alice.upload("./parts//other.mcam", b"other").await;
    assert_eq!(json_of(resp, 201).await["path"], "parts/other.mcam");
    let form = Form::new().part(
        "file",
        Part::bytes(b"plate".to_vec()).file_name("plate.mcam"),
    );
    assert_eq!(
        json_of(alice.post_form("/api/files", form).await, 201).await["path"],
        "plate.mcam"
    );

    // The path is taken, however it is spelled.
    for taken in [
        "parts/sub/1234567.mcam",
        "parts/sub//1234567.mcam",
        "./parts/sub/1234567.mcam",
    ] {
        let err = expect_error(alice.upload(taken, b"another").await, 409).await;
        assert!(err.contains("parts/sub/1234567.mcam"), "{taken}: {err}");
    }
    // A revision that is not MAJOR.MINOR.
    let resp = alice
        .post_form(
            "/api/files",
            upload_form(&[("path", "r.mcam"), ("revision", "one")], Some(b"r")),
        )
        .await;
    expect_error(resp, 422).await;

    assert_eq!(alice.files().await.len(), 4);
    if common::have_tool("git", "git") {
        let tree = git_ok(&app.vault_path(), &["ls-tree", "-r", "--name-only", "main"]);
        let mut names: Vec<&str> = tree.lines().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "fixtures/vise.mcam",
                "parts/other.mcam",
                "parts/sub/1234567.mcam",
                "plate.mcam"
            ]
        );
    }
}

// ---------------------------------------------------------------------------
// Check out and cancel.

#[tokio::test]
async fn a_check_out_locks_the_file_with_an_optional_comment_and_a_second_one_names_the_holder() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;
    let plain = alice.upload_ok("parts/plain.mcam", b"plain").await;
    let noted = alice.upload_ok("parts/noted.mcam", b"noted").await;

    // No comment: no body at all, and an empty JSON object, both work.
    let file = json_of(
        alice
            .post_empty(&format!("/api/files/{plain}/checkout"))
            .await,
        200,
    )
    .await;
    assert_eq!(file["state"], "locked");
    assert_eq!(file["lock"]["owner"], "alice");
    assert_eq!(file["lock"]["comment"], Value::Null);
    assert!(file["lock"]["locked_at"].as_str().unwrap().ends_with('Z'));

    let err = expect_error(bob.checkout(plain, "").await, 409).await;
    assert!(
        err.contains("alice"),
        "the loser is told who holds it: {err}"
    );
    let err = expect_error(
        alice
            .post_json(&format!("/api/files/{plain}/checkout"), &json!({}))
            .await,
        409,
    )
    .await;
    assert!(err.contains("you"), "{err}");
    assert_eq!(alice.file(plain).await["lock"]["owner"], "alice");

    // With a comment.
    let file = json_of(bob.checkout(noted, "  fixing the post  ").await, 200).await;
    assert_eq!(file["lock"]["owner"], "bobby");
    assert_eq!(file["lock"]["comment"], "fixing the post");
    let err = expect_error(alice.checkout(noted, "mine now").await, 409).await;
    assert!(err.contains("bobby"), "{err}");

    // A comment over 500 characters is refused, and nothing is locked.
    let other = alice.upload_ok("parts/other.mcam", b"other").await;
    expect_error(alice.checkout(other, &"x".repeat(501)).await, 422).await;
    assert_eq!(alice.file(other).await["state"], "available");
    assert_eq!(
        json_of(alice.checkout(other, &"x".repeat(500)).await, 200).await["state"],
        "locked"
    );
}

#[tokio::test]
async fn only_the_holder_can_cancel_a_check_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;
    let id = alice.upload_ok("parts/a.mcam", b"a").await;

    let err = expect_error(alice.cancel(id).await, 409).await;
    assert!(err.contains("not checked out"), "{err}");

    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let err = expect_error(bob.cancel(id).await, 403).await;
    assert!(err.contains("alice"), "{err}");
    // An admin overrides; cancelling is the holder's.
    expect_error(admin.cancel(id).await, 403).await;
    assert_eq!(alice.file(id).await["lock"]["owner"], "alice");

    let file = json_of(alice.cancel(id).await, 200).await;
    assert_eq!(file["state"], "available");
    assert_eq!(file["lock"], Value::Null);
    assert_eq!(
        alice.history(id).await.len(),
        1,
        "a cancel makes no version"
    );
    expect_error(alice.cancel(id).await, 409).await;
    assert_eq!(
        bob.checkout(id, "").await.status(),
        200,
        "free for the next person"
    );
}

// ---------------------------------------------------------------------------
// Check in.

#[tokio::test]
async fn a_check_in_needs_the_lock_and_a_message_bumps_the_revision_and_releases_the_lock() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;
    let resp = alice
        .post_form(
            "/api/files",
            upload_form(
                &[("path", "parts/1234567.mcam"), ("revision", "1.2")],
                Some(b"v1.2"),
            ),
        )
        .await;
    let id = json_of(resp, 201).await["id"].as_u64().unwrap();
    assert_eq!(alice.checkout(id, "").await.status(), 200);

    // Refusals leave the file as it was, still locked by alice.
    let err = expect_error(bob.checkin(id, b"bob's", "mine", "minor").await, 403).await;
    assert!(err.contains("alice"), "{err}");
    let err = expect_error(alice.checkin(id, b"v1.3", "   ", "minor").await, 422).await;
    assert!(err.contains("message"), "{err}");
    let form = upload_form(&[("bump", "minor")], Some(b"v1.3"));
    expect_error(
        alice
            .post_form(&format!("/api/files/{id}/checkin"), form)
            .await,
        422,
    )
    .await;
    let err = expect_error(alice.checkin(id, b"v1.3", "Fix", "patch").await, 422).await;
    assert!(err.contains("patch"), "{err}");
    let err = expect_error(alice.checkin(id, b"v1.2", "Same bytes", "minor").await, 422).await;
    assert!(err.contains("identical"), "{err}");
    let err = expect_error(alice.checkin(id, b"", "Empty", "minor").await, 422).await;
    assert!(err.contains("empty"), "{err}");
    let form = upload_form(&[("message", "no file"), ("bump", "minor")], None);
    expect_error(
        alice
            .post_form(&format!("/api/files/{id}/checkin"), form)
            .await,
        422,
    )
    .await;
    let file = alice.file(id).await;
    assert_eq!(
        (file["revision"].as_str(), file["lock"]["owner"].as_str()),
        (Some("1.2"), Some("alice"))
    );
    assert_eq!(alice.history(id).await.len(), 1);

    // minor: 1.2 → 1.3, and the lock is released.
    let file = json_of(
        alice
            .checkin(id, b"v1.3 bytes", "Fix the post", "minor")
            .await,
        200,
    )
    .await;
    assert_eq!(file["revision"], "1.3");
    assert_eq!(file["state"], "available");
    assert_eq!(file["lock"], Value::Null);
    assert_eq!(file["size"], 10);
    let err = expect_error(alice.checkin(id, b"again", "again", "minor").await, 409).await;
    assert!(err.contains("not checked out"), "{err}");

    // major: 1.3 → 2.0; an omitted bump means minor.
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let file = json_of(bob.checkin(id, b"v2.0", "New fixture", "major").await, 200).await;
    assert_eq!(file["revision"], "2.0");
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let form = upload_form(&[("message", "Tweak")], Some(b"v2.1"));
    let file = json_of(
        bob.post_form(&format!("/api/files/{id}/checkin"), form)
            .await,
        200,
    )
    .await;
    assert_eq!(file["revision"], "2.1");
    assert_eq!(file["head"], bob.history(id).await[0]["commit"]);
}

// ---------------------------------------------------------------------------
// Override and delete (admin only).

#[tokio::test]
async fn only_an_admin_can_override_and_the_event_names_the_previous_holder() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;
    let id = alice.upload_ok("parts/a.mcam", b"a").await;

    let err = expect_error(admin.override_lock(id).await, 409).await;
    assert!(err.contains("not checked out"), "{err}");
    assert_eq!(alice.checkout(id, "on the mill").await.status(), 200);
    expect_error(bob.override_lock(id).await, 403).await;
    expect_error(alice.override_lock(id).await, 403).await;
    assert_eq!(alice.file(id).await["lock"]["owner"], "alice");

    let file = json_of(admin.override_lock(id).await, 200).await;
    assert_eq!(file["state"], "available");
    assert_eq!(file["lock"], Value::Null);
    expect_error(admin.override_lock(id).await, 409).await;
    // alice no longer holds it.
    expect_error(alice.checkin(id, b"late", "late", "minor").await, 409).await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);

    let activity = bob.get_json("/api/activity").await;
    let events = activity["events"].as_array().unwrap();
    let overridden: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "overridden")
        .collect();
    assert_eq!(overridden.len(), 1, "{activity}");
    assert_eq!(overridden[0]["previous_holder"], "alice");
    assert_eq!(overridden[0]["actor"], "admin");
    assert_eq!(overridden[0]["file_id"], id);
    assert_eq!(overridden[0]["path"], "parts/a.mcam");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["created", "locked", "overridden", "locked"],
        "oldest first"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(activity["last_seq"], *seqs.last().unwrap());
    let since = bob
        .get_json(&format!("/api/activity?since={}", seqs[1]))
        .await;
    assert_eq!(since["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn only_an_admin_can_delete_and_never_while_the_file_is_checked_out() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("parts/gone.mcam", b"gone").await;
    let kept = alice.upload_ok("parts/kept.mcam", b"kept").await;

    expect_error(alice.delete(&format!("/api/files/{id}")).await, 403).await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let err = expect_error(admin.delete(&format!("/api/files/{id}")).await, 409).await;
    assert!(err.contains("alice"), "{err}");
    assert_eq!(alice.cancel(id).await.status(), 200);

    let resp = admin.delete(&format!("/api/files/{id}")).await;
    assert_eq!(resp.status(), 204);
    assert!(resp.text().await.unwrap().is_empty());

    expect_error(alice.get(&format!("/api/files/{id}")).await, 404).await;
    expect_error(alice.get(&format!("/api/files/{id}/history")).await, 404).await;
    expect_error(alice.get(&format!("/api/files/{id}/content")).await, 404).await;
    expect_error(alice.checkout(id, "").await, 404).await;
    expect_error(admin.delete(&format!("/api/files/{id}")).await, 404).await;
    let ids: Vec<u64> = alice
        .files()
        .await
        .iter()
        .map(|f| f["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [kept]);
    let activity = alice.get_json("/api/activity").await;
    let last = activity["events"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["file_id"].as_u64()),
        (Some("deleted"), Some(id))
    );

    // The path is free again; the id is not reused.
    let again = alice.upload_ok("parts/gone.mcam", b"gone again").await;
    assert!(again > kept, "ids are never reused: {again}");
    assert_eq!(
        alice.history(again).await.len(),
        1,
        "a new file starts a new history"
    );

    if common::have_tool("git", "git") {
        let vault = app.vault_path();
        let log = git_ok(&vault, &["log", "--format=%s", "main"]);
        assert!(log.lines().any(|l| l == "Delete parts/gone.mcam"), "{log}");
    }
}

// ---------------------------------------------------------------------------
// History and download.

#[tokio::test]
async fn history_is_newest_first_and_every_version_downloads_with_its_revision_in_the_name() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let other = alice.upload_ok("parts/other.mcam", b"other").await;
    let id = alice.upload_ok("parts/1234567.mcam", b"version one").await;
    for (content, message) in [
        (&b"version two"[..], "Second cut"),
        (b"version three", "Third cut"),
    ] {
        assert_eq!(alice.checkout(id, "").await.status(), 200);
        assert_eq!(
            alice.checkin(id, content, message, "minor").await.status(),
            200
        );
    }

    let history = alice.history(id).await;
    let revisions: Vec<&str> = history
        .iter()
        .map(|v| v["revision"].as_str().unwrap())
        .collect();
    assert_eq!(revisions, ["1.2", "1.1", "1.0"]);
    let messages: Vec<&str> = history
        .iter()
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages[..2], ["Third cut", "Second cut"]);
    assert!(
        messages[2].starts_with("Add parts/1234567.mcam"),
        "{}",
        messages[2]
    );
    for v in &history {
        assert_eq!(v["commit"].as_str().unwrap().len(), 40, "{v}");
        assert_eq!(v["author"], "alice");
        assert!(v["at"].as_str().unwrap().ends_with('Z'), "{v}");
        assert!(
            !v["message"].as_str().unwrap().contains("Latch-"),
            "trailers are not shown: {v}"
        );
    }
    assert_eq!(alice.file(id).await["head"], history[0]["commit"]);
    let commit = |i: usize| history[i]["commit"].as_str().unwrap().to_string();

    // The JSON API: current and any past version.
    let resp = alice.get(&format!("/api/files/{id}/content")).await;
    assert_eq!(resp.status(), 200);
    let disposition = header(&resp, "content-disposition");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains("1234567_rev1.2.mcam"), "{disposition}");
    assert_eq!(resp.bytes().await.unwrap(), &b"version three"[..]);
    for (i, (content, name)) in [
        (&b"version three"[..], "1234567_rev1.2.mcam"),
        (b"version two", "1234567_rev1.1.mcam"),
        (b"version one", "1234567_rev1.0.mcam"),
    ]
    .into_iter()
    .enumerate()
    {
        let resp = alice
            .get(&format!("/api/files/{id}/content?rev={}", commit(i)))
            .await;
        assert_eq!(resp.status(), 200);
        assert!(
            header(&resp, "content-disposition").contains(name),
            "{name}"
        );
        assert_eq!(resp.bytes().await.unwrap(), content);
    }

    // The HTML download, with a session cookie.
    let browser = Browser::sign_in(&app, "alice", USER_PASSWORD).await;
    let resp = browser
        .http
        .get(browser.url(&format!("/files/{id}/download?rev={}", commit(1))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "content-disposition").contains("1234567_rev1.1.mcam"));
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    assert_eq!(resp.bytes().await.unwrap(), &b"version two"[..]);
    let resp = browser
        .http
        .get(browser.url(&format!("/files/{id}/download")))
        .send()
        .await
        .unwrap();
    assert!(header(&resp, "content-disposition").contains("1234567_rev1.2.mcam"));
    assert_eq!(resp.bytes().await.unwrap(), &b"version three"[..]);
    let page = browser.page(&format!("/files/{id}/history")).await;
    for needle in ["Third cut", "Second cut", "1.0", "1.1", "1.2"] {
        assert!(page.contains(needle), "the history page shows {needle}");
    }
    let anonymous = app.anonymous();
    let resp = anonymous.get(&format!("/files/{id}/download")).await;
    assert_eq!(resp.status(), 303, "no session, no download");
    assert!(header(&resp, "location").starts_with("/login"));
    expect_error(
        anonymous.get(&format!("/api/files/{id}/content")).await,
        401,
    )
    .await;

    // Unknown versions and files.
    let other_commit = alice.history(other).await[0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    for rev in [
        "0000000000000000000000000000000000000000",
        "not-a-commit",
        other_commit.as_str(),
    ] {
        expect_error(
            alice
                .get(&format!("/api/files/{id}/content?rev={rev}"))
                .await,
            404,
        )
        .await;
        let resp = browser
            .http
            .get(browser.url(&format!("/files/{id}/download?rev={rev}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "rev {rev}");
    }
    expect_error(alice.get("/api/files/999/content").await, 404).await;
    expect_error(alice.get("/api/files/999/history").await, 404).await;
    expect_error(alice.get("/api/files/999").await, 404).await;
    let resp = browser
        .http
        .get(browser.url("/files/999/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let page = resp.text().await.unwrap();
    assert!(page.contains("There is no file with id 999"), "{page}");
}

// ---------------------------------------------------------------------------
// Races.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_check_outs_of_one_file_have_exactly_one_winner() {
    const RACERS: usize = 30;
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut racers = Vec::new();
    for i in 0..RACERS {
        let name = format!("racer{i:02}");
        let resp = admin
            .post_json(
                "/api/users",
                &json!({"username": name, "password": USER_PASSWORD, "role": "user"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        racers.push(app.login(&name, USER_PASSWORD).await);
    }
    let id = admin.upload_ok("parts/contested.mcam", b"contested").await;

    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|c| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let resp = c.checkout(id, &format!("{} wants it", c.username)).await;
                let status = resp.status().as_u16();
                (
                    c.username.clone(),
                    status,
                    resp.json::<Value>().await.unwrap(),
                )
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }

    let winners: Vec<&(String, u16, Value)> = results.iter().filter(|r| r.1 == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {results:?}");
    let winner = &winners[0].0;
    assert_eq!(winners[0].2["lock"]["owner"], winner.as_str());
    for (name, status, body) in &results {
        if name == winner {
            continue;
        }
        assert_eq!(*status, 409, "{name}: {body}");
        let err = body["error"].as_str().unwrap();
        assert!(
            err.contains(winner.as_str()),
            "{name} is told {winner} won: {err}"
        );
    }
    let file = admin.file(id).await;
    assert_eq!(file["lock"]["owner"], winner.as_str());
    assert_eq!(file["lock"]["comment"], format!("{winner} wants it"));
    let events = admin.get_json("/api/activity").await;
    let locks = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "locked")
        .count();
    assert_eq!(locks, 1, "one lock event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_check_ins_of_different_files_all_land_on_one_linear_main() {
    const FILES: usize = 15;
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut holders = Vec::new();
    for i in 0..FILES {
        let name = format!("writer{i:02}");
        let resp = admin
            .post_json(
                "/api/users",
                &json!({"username": name, "password": USER_PASSWORD}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        let client = app.login(&name, USER_PASSWORD).await;
        let id = client
            .upload_ok(&format!("parts/{name}.mcam"), name.as_bytes())
            .await;
        assert_eq!(client.checkout(id, "").await.status(), 200);
        holders.push((client, id));
    }

    let start = std::sync::Arc::new(tokio::sync::Barrier::new(FILES));
    let tasks: Vec<_> = holders
        .into_iter()
        .map(|(c, id)| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let content = format!("{} v2", c.username);
                let resp = c
                    .checkin(
                        id,
                        content.as_bytes(),
                        &format!("{} checks in", c.username),
                        "minor",
                    )
                    .await;
                let status = resp.status().as_u16();
                (id, status, resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut heads = Vec::new();
    for t in tasks {
        let (id, status, body) = t.await.unwrap();
        assert_eq!(status, 200, "file {id}: {body}");
        assert_eq!(body["revision"], "1.1");
        assert_eq!(body["state"], "available");
        heads.push(body["head"].as_str().unwrap().to_string());
    }
    for f in admin.files().await {
        assert_eq!(f["revision"], "1.1", "{f}");
        let content = admin.content(f["id"].as_u64().unwrap(), None).await;
        assert!(String::from_utf8(content).unwrap().ends_with(" v2"));
    }

    if !common::have_tool("git", "git") {
        return;
    }
    let vault = app.vault_path();
    let log = git_ok(&vault, &["log", "--format=%H", "refs/heads/main"]);
    let commits: Vec<&str> = log.lines().collect();
    assert_eq!(
        commits.len(),
        2 * FILES,
        "one commit per upload and per check-in"
    );
    for head in &heads {
        assert!(
            commits.contains(&head.as_str()),
            "check-in {head} is on main"
        );
    }
    let merges = git_ok(&vault, &["rev-list", "--min-parents=2", "main"]);
    assert!(merges.trim().is_empty(), "no merges: {merges}");
    let roots = git_ok(&vault, &["rev-list", "--max-parents=0", "main"]);
    assert_eq!(roots.lines().count(), 1, "one root: {roots}");
    // Every check-in's tree still has all the files: nothing was lost to a stale parent.
    let tree = git_ok(&vault, &["ls-tree", "-r", "--name-only", "main"]);
    assert_eq!(tree.lines().count(), FILES);
    let fsck = common::git(&vault, &["fsck", "--strict"]).unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

// ---------------------------------------------------------------------------
// Bad input.

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_change_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;
    let held = alice.upload_ok("parts/held.mcam", b"held").await;
    assert_eq!(alice.checkout(held, "mine").await.status(), 200);
    let free = bob.upload_ok("parts/free.mcam", b"free").await;
    let alice_no_csrf = without_csrf(&alice);

    let upload = |client: &Client,
                  path: String,
                  file: Option<&'static [u8]>|
     -> BoxFuture<'static, reqwest::Response> {
        let c = client.clone();
        async move {
            c.post_form(
                "/api/files",
                upload_form(&[("path", &path), ("description", "bad")], file),
            )
            .await
        }
        .boxed()
    };
    let checkin = |client: &Client,
                   fields: Vec<(&'static str, &'static str)>,
                   file: Option<&'static [u8]>|
     -> BoxFuture<'static, reqwest::Response> {
        let c = client.clone();
        async move {
            c.post_form(
                &format!("/api/files/{held}/checkin"),
                upload_form(&fields, file),
            )
            .await
        }
        .boxed()
    };
    let raw_multipart = |client: &Client,
                         path: String,
                         content_type: &'static str,
                         body: &'static str|
     -> BoxFuture<'static, reqwest::Response> {
        let c = client.clone();
        async move {
            let mut rb = c
                .http
                .post(c.url(&path))
                .header("content-type", content_type)
                .body(body);
            if let Some(csrf) = &c.csrf {
                rb = rb.header("X-CSRF-Token", csrf);
            }
            rb.send().await.unwrap()
        }
        .boxed()
    };
    let long_name = format!("parts/{}", "n".repeat(250));
    assert_eq!(long_name.len(), 256);

    let cases: Vec<(&str, u16, BoxFuture<'static, reqwest::Response>)> = vec![
        (
            "a path that climbs out of the vault",
            422,
            upload(&alice, "../x".into(), Some(b"x")),
        ),
        (
            "a path climbing out from inside a folder",
            422,
            upload(&alice, "parts/../../x".into(), Some(b"x")),
        ),
        (
            "an absolute path",
            422,
            upload(&alice, "/abs".into(), Some(b"x")),
        ),
        (
            "a path through a .git folder",
            422,
            upload(&alice, "a/.git/x".into(), Some(b"x")),
        ),
        (
            "a path into .git in capitals",
            422,
            upload(&alice, ".GIT/config".into(), Some(b"x")),
        ),
        (
            "a backslash in the path",
            422,
            upload(&alice, "a\\b".into(), Some(b"x")),
        ),
        (
            "a control character in the path",
            422,
            upload(&alice, "a\u{7}b.mcam".into(), Some(b"x")),
        ),
        (
            "a newline in the path",
            422,
            upload(&alice, "a\nb.mcam".into(), Some(b"x")),
        ),
        (
            "a 256-byte path",
            422,
            upload(&alice, long_name.clone(), Some(b"x")),
        ),
        (
            "a path that names no file",
            422,
            upload(&alice, "/".into(), Some(b"x")),
        ),
        (
            "a path that is taken",
            409,
            upload(&bob, "parts/held.mcam".into(), Some(b"other")),
        ),
        (
            "an empty file",
            422,
            upload(&alice, "parts/empty.mcam".into(), Some(b"")),
        ),
        (
            "no file part",
            422,
            upload(&alice, "parts/nofile.mcam".into(), None),
        ),
        (
            "a multipart body that is not multipart",
            400,
            raw_multipart(
                &alice,
                "/api/files".into(),
                "multipart/form-data; boundary=XYZ",
                "this is not multipart at all",
            ),
        ),
        (
            "a multipart body cut off in the middle",
            400,
            raw_multipart(
                &alice,
                "/api/files".into(),
                "multipart/form-data; boundary=XYZ",
                "--XYZ\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nparts/cut.mcam\r\n--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhalf a fi",
            ),
        ),
        (
            "a check-in without a message",
            422,
            checkin(&alice, vec![("bump", "minor")], Some(b"new")),
        ),
        (
            "a check-in with a blank message",
            422,
            checkin(
                &alice,
                vec![("message", " \n "), ("bump", "minor")],
                Some(b"new"),
            ),
        ),
        (
            "a check-in message forging a trailer",
            422,
            checkin(
                &alice,
                vec![("message", "Fix\n\nLatch-Revision: 9.9"), ("bump", "minor")],
                Some(b"new"),
            ),
        ),
        (
            "a check-in with an unknown bump",
            422,
            checkin(
                &alice,
                vec![("message", "Fix"), ("bump", "huge")],
                Some(b"new"),
            ),
        ),
        (
            "a check-in without a file",
            422,
            checkin(&alice, vec![("message", "Fix")], None),
        ),
        (
            "a check-in of an empty file",
            422,
            checkin(&alice, vec![("message", "Fix")], Some(b"")),
        ),
        (
            "a check-in of identical content",
            422,
            checkin(&alice, vec![("message", "Fix")], Some(b"held")),
        ),
        (
            "a check-in by someone who does not hold the lock",
            403,
            checkin(&bob, vec![("message", "Fix")], Some(b"new")),
        ),
        (
            "a malformed check-in body",
            400,
            raw_multipart(
                &alice,
                format!("/api/files/{held}/checkin"),
                "multipart/form-data; boundary=XYZ",
                "garbage",
            ),
        ),
        ("a check-out of an unknown file", 404, {
            let c = alice.clone();
            async move { c.checkout(999, "").await }.boxed()
        }),
        ("a check-in of an unknown file", 404, {
            let c = alice.clone();
            async move { c.checkin(999, b"x", "Fix", "minor").await }.boxed()
        }),
        ("a check-out of a held file", 409, {
            let c = bob.clone();
            async move { c.checkout(held, "").await }.boxed()
        }),
        (
            "a check-out with malformed JSON",
            400,
            raw_multipart(
                &bob,
                format!("/api/files/{free}/checkout"),
                "application/json",
                "{\"comment\":",
            ),
        ),
        ("a user overriding", 403, {
            let c = bob.clone();
            async move { c.override_lock(held).await }.boxed()
        }),
        ("a user deleting", 403, {
            let c = bob.clone();
            async move { c.delete(&format!("/api/files/{free}")).await }.boxed()
        }),
        ("an admin deleting a held file", 409, {
            let c = admin.clone();
            async move { c.delete(&format!("/api/files/{held}")).await }.boxed()
        }),
        ("an admin deleting an unknown file", 404, {
            let c = admin.clone();
            async move { c.delete("/api/files/999").await }.boxed()
        }),
        ("someone else cancelling", 403, {
            let c = bob.clone();
            async move { c.cancel(held).await }.boxed()
        }),
        ("a cookie write without the CSRF header (cancel)", 403, {
            let c = alice_no_csrf.clone();
            async move { c.cancel(held).await }.boxed()
        }),
        ("a cookie write without the CSRF header (check-out)", 403, {
            let c = alice_no_csrf.clone();
            async move { c.checkout(free, "").await }.boxed()
        }),
        (
            "a cookie upload without the CSRF header",
            403,
            upload(&alice_no_csrf, "parts/nocsrf.mcam".into(), Some(b"x")),
        ),
        ("a cookie write with a wrong CSRF header", 403, {
            let mut c = alice.clone();
            c.csrf = Some("0".repeat(48));
            async move { c.cancel(held).await }.boxed()
        }),
        ("a cookie write from another site", 403, {
            let c = alice.clone();
            async move {
                c.http
                    .post(c.url(&format!("/api/files/{held}/cancel")))
                    .header("X-CSRF-Token", c.csrf.clone().unwrap())
                    .header("Origin", "http://evil.example")
                    .send()
                    .await
                    .unwrap()
            }
            .boxed()
        }),
        (
            "a write with no credentials at all",
            401,
            upload(&app.anonymous(), "parts/anon.mcam".into(), Some(b"x")),
        ),
    ];

    for (reason, status, request) in cases {
        let before = snapshot(&app, &admin).await;
        let resp = request.await;
        let got = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(got, status, "{reason}: {body}");
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("{reason}: the error is a JSON sentence: {body}"));
        assert!(!message.is_empty(), "{reason}: an empty sentence");
        assert!(
            !message.contains("panicked") && !message.contains("src/"),
            "{reason}: {message}"
        );
        let after = snapshot(&app, &admin).await;
        assert_eq!(before, after, "{reason}: something changed");
        assert!(
            after.spool.is_empty(),
            "{reason}: spool left behind {:?}",
            after.spool
        );
    }
    assert_eq!(admin.file(held).await["lock"]["owner"], "alice");
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_with_413_and_leaves_nothing_behind() {
    let app = TestApp::spawn_with(|c| c.max_upload = 1024).await;
    let alice = app.user("alice").await;
    let admin = app.admin().await;

    let at_limit = alice.upload_ok("parts/exact.mcam", &[7u8; 1024]).await;
    assert_eq!(alice.file(at_limit).await["size"], 1024);
    let before = snapshot(&app, &admin).await;

    let err = expect_error(alice.upload("parts/big.mcam", &[1u8; 1025]).await, 413).await;
    assert!(
        err.contains("1.0 KiB") || err.contains("1024") || err.contains("limit"),
        "{err}"
    );
    let err = expect_error(
        alice.upload("parts/bigger.mcam", &[1u8; 64 * 1024]).await,
        413,
    )
    .await;
    assert!(err.contains("nothing was saved"), "{err}");
    // Far over the limit: the client still gets the answer, not a reset.
    expect_error(
        alice.upload("parts/huge.mcam", &vec![1u8; 8 << 20]).await,
        413,
    )
    .await;
    assert_eq!(snapshot(&app, &admin).await, before);

    // The same limit on check-in; the lock stays.
    assert_eq!(alice.checkout(at_limit, "").await.status(), 200);
    let before = snapshot(&app, &admin).await;
    expect_error(
        alice
            .checkin(at_limit, &[2u8; 4096], "Too big", "minor")
            .await,
        413,
    )
    .await;
    assert_eq!(snapshot(&app, &admin).await, before);
    assert!(
        files_under(&app.data_dir.join("spool")).is_empty(),
        "the spool directory is empty"
    );

    // A plain HTML form upload over the limit: refused with its own 413
    // page (issue 12), told, nothing kept.
    let browser = Browser::sign_in(&app, "alice", USER_PASSWORD).await;
    let form = upload_form(
        &[("_csrf", &browser.csrf), ("path", "parts/html-big.mcam")],
        Some(&[3u8; 2048]),
    );
    let resp = browser.post_multipart("/files", form).await;
    assert_eq!(resp.status(), 413);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("larger than the limit") && page.contains(r#"href="/""#),
        "{page}"
    );
    assert_eq!(snapshot(&app, &admin).await, before);
}

#[tokio::test]
async fn markup_in_a_description_is_shown_escaped_and_never_raw() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let evil = r#"<script>alert("pwned")</script><img src=x onerror=alert(1)>"#;
    let resp = alice
        .post_form(
            "/api/files",
            upload_form(
                &[("path", "parts/evil.mcam"), ("description", evil)],
                Some(b"x"),
            ),
        )
        .await;
    let file = json_of(resp, 201).await;
    assert_eq!(file["description"], evil, "JSON carries the text as given");
    let id = file["id"].as_u64().unwrap();
    assert_eq!(
        alice.checkout(id, "<b>bold</b> comment").await.status(),
        200
    );

    let browser = Browser::sign_in(&app, "alice", USER_PASSWORD).await;
    for path in [
        format!("/files/{id}"),
        "/".to_string(),
        format!("/files/{id}/history"),
        "/activity".into(),
    ] {
        let page = browser.page(&path).await;
        assert!(!page.contains("<script>alert"), "{path} has the raw script");
        assert!(!page.contains("<img src=x"), "{path} has the raw img");
        assert!(!page.contains("<b>bold</b>"), "{path} has the raw comment");
        if path.starts_with("/files/") && !path.ends_with("history") || path == "/" {
            assert!(
                page.contains("&lt;script&gt;alert("),
                "{path} shows the description escaped"
            );
            assert!(
                page.contains("&lt;b&gt;bold&lt;/b&gt; comment"),
                "{path} shows the comment escaped"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Restart.

#[tokio::test]
async fn users_locks_files_and_history_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;
    let locked = alice.upload_ok("parts/locked.mcam", b"locked v1").await;
    let versioned = bob.upload_ok("parts/versioned.mcam", b"versioned v1").await;
    let deleted = bob.upload_ok("parts/deleted.mcam", b"deleted").await;
    assert_eq!(bob.checkout(versioned, "").await.status(), 200);
    assert_eq!(
        bob.checkin(versioned, b"versioned v2", "Second", "major")
            .await
            .status(),
        200
    );
    assert_eq!(
        alice
            .checkout(locked, "on the mill until Friday")
            .await
            .status(),
        200
    );
    assert_eq!(
        admin
            .delete(&format!("/api/files/{deleted}"))
            .await
            .status(),
        204
    );
    let before = snapshot(&app, &admin).await;
    let users_before = admin.get_json("/api/users").await;

    app.restart().await;

    let admin = app.admin().await;
    assert_eq!(
        snapshot(&app, &admin).await,
        before,
        "files, locks, history and events are as they were"
    );
    assert_eq!(admin.get_json("/api/users").await, users_before);
    let file = admin.file(locked).await;
    assert_eq!(file["lock"]["owner"], "alice");
    assert_eq!(file["lock"]["comment"], "on the mill until Friday");
    assert_eq!(admin.file(versioned).await["revision"], "2.0");
    assert_eq!(admin.content(versioned, None).await, b"versioned v2");

    // Sessions are kept too; and work goes on where it stopped.
    let alice = app.login("alice", USER_PASSWORD).await;
    let file = json_of(
        alice
            .checkin(locked, b"locked v2", "After the restart", "minor")
            .await,
        200,
    )
    .await;
    assert_eq!(file["revision"], "1.1");
    let bob_again = app.login("bobby", USER_PASSWORD).await;
    let next = bob_again.upload_ok("parts/new.mcam", b"new").await;
    assert!(
        next > deleted,
        "a deleted file's id is not handed out again: {next}"
    );
    let history = alice.history(locked).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["message"], "After the restart");

    if common::have_tool("git", "git") {
        let fsck = common::git(&app.vault_path(), &["fsck", "--full", "--strict"]).unwrap();
        assert!(
            fsck.status.success(),
            "git fsck: {}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        let stderr = String::from_utf8_lossy(&fsck.stderr);
        assert!(
            !stderr.contains("error") && !stderr.contains("missing"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_session_made_before_a_restart_still_works_after_it() {
    let mut app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("parts/a.mcam", b"a").await;
    app.restart().await;
    // The same cookie and CSRF token; only the port is new (cookies ignore ports).
    let mut alice = alice;
    alice.base = app.base.clone();
    let file = json_of(alice.checkout(id, "kept").await, 200).await;
    assert_eq!(file["lock"]["owner"], "alice");
}

// ---------------------------------------------------------------------------
// Plain HTML forms (no JavaScript) and htmx.

#[tokio::test]
async fn every_action_works_as_a_plain_form_post_without_javascript() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let browser = Browser::sign_in(&app, "alice", USER_PASSWORD).await;
    assert!(!browser.csrf.is_empty());
    let api = app.login("alice", USER_PASSWORD).await;

    // Upload.
    let form = upload_form(
        &[
            ("_csrf", &browser.csrf),
            ("path", "parts/1234567.mcam"),
            ("description", "Bracket"),
            ("revision", "1.0"),
        ],
        Some(b"first"),
    );
    let resp = browser.post_multipart("/files", form).await;
    assert_flash(
        &browser,
        resp,
        "parts/1234567.mcam uploaded as revision 1.0",
        false,
    )
    .await;
    let files = api.files().await;
    assert_eq!(files.len(), 1);
    let id = files[0]["id"].as_u64().unwrap();
    let page = browser.page("/").await;
    assert!(
        page.contains(&format!(r#"id="file-{id}""#)),
        "the dashboard shows the card"
    );

    // Check out with a comment.
    let resp = browser
        .post(
            &format!("/files/{id}/checkout"),
            &[("_csrf", &browser.csrf), ("comment", "on the mill")],
        )
        .await;
    assert_flash(&browser, resp, "You checked out parts/1234567.mcam", false).await;
    let file = api.file(id).await;
    assert_eq!(
        (
            file["lock"]["owner"].as_str(),
            file["lock"]["comment"].as_str()
        ),
        (Some("alice"), Some("on the mill"))
    );
    let page = browser.page("/").await;
    assert!(page.contains(r#"data-state="locked""#) && page.contains("Check in"));

    // Check in, major.
    let form = upload_form(
        &[
            ("_csrf", &browser.csrf),
            ("message", "New fixture"),
            ("bump", "major"),
        ],
        Some(b"second"),
    );
    let resp = browser
        .post_multipart(&format!("/files/{id}/checkin"), form)
        .await;
    assert_flash(&browser, resp, "checked in as revision 2.0", false).await;
    let file = api.file(id).await;
    assert_eq!(
        (file["revision"].as_str(), file["state"].as_str()),
        (Some("2.0"), Some("available"))
    );

    // A failing action comes back as an error flash.
    let form = upload_form(
        &[("_csrf", &browser.csrf), ("message", "Again")],
        Some(b"third"),
    );
    let resp = browser
        .post_multipart(&format!("/files/{id}/checkin"), form)
        .await;
    assert_flash(&browser, resp, "not checked out", true).await;

    // Check out, then cancel.
    let resp = browser
        .post(
            &format!("/files/{id}/checkout"),
            &[("_csrf", &browser.csrf)],
        )
        .await;
    assert_flash(&browser, resp, "You checked out", false).await;
    assert_eq!(api.file(id).await["lock"]["comment"], Value::Null);
    let resp = browser
        .post(&format!("/files/{id}/cancel"), &[("_csrf", &browser.csrf)])
        .await;
    assert_flash(&browser, resp, "cancelled", false).await;
    assert_eq!(api.file(id).await["state"], "available");

    // Refused: no token, a wrong token, another site.
    let before = snapshot(&app, &api).await;
    let resp = browser
        .post(&format!("/files/{id}/checkout"), &[("comment", "no token")])
        .await;
    assert_flash(&browser, resp, "reload and try again", true).await;
    let resp = browser
        .post(&format!("/files/{id}/checkout"), &[("_csrf", "forged")])
        .await;
    assert_flash(&browser, resp, "reload and try again", true).await;
    let resp = browser
        .http
        .post(browser.url(&format!("/files/{id}/checkout")))
        .header("Origin", "http://evil.example")
        .form(&[("_csrf", browser.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_flash(&browser, resp, "another site", true).await;
    let resp = browser
        .http
        .post(browser.url(&format!("/files/{id}/checkout")))
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("_csrf", browser.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_flash(&browser, resp, "another site", true).await;
    let form = upload_form(&[("path", "parts/no-token.mcam")], Some(b"x"));
    let resp = browser.post_multipart("/files", form).await;
    assert_flash(&browser, resp, "reload and try again", true).await;
    let form = upload_form(
        &[("_csrf", &browser.csrf), ("path", "../escape")],
        Some(b"x"),
    );
    let resp = browser.post_multipart("/files", form).await;
    assert_flash(&browser, resp, "..", true).await;
    assert_eq!(
        snapshot(&app, &api).await,
        before,
        "refused forms change nothing"
    );

    // Log out: the session ends.
    let resp = browser.post("/logout", &[("_csrf", &browser.csrf)]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), "/login");
    let resp = browser.http.get(browser.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), "/login");
}

#[tokio::test]
async fn an_admin_overrides_and_deletes_through_plain_forms() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("parts/a.mcam", b"a").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let admin = Browser::sign_in(&app, "admin", common::ADMIN_PASSWORD).await;
    let user = Browser::sign_in(&app, "alice", USER_PASSWORD).await;

    let resp = user
        .post(&format!("/files/{id}/override"), &[("_csrf", &user.csrf)])
        .await;
    assert_flash(&user, resp, "Only an admin", true).await;
    let resp = admin
        .post(&format!("/files/{id}/delete"), &[("_csrf", &admin.csrf)])
        .await;
    assert_flash(&admin, resp, "checked out by alice", true).await;
    let resp = admin
        .post(&format!("/files/{id}/override"), &[("_csrf", &admin.csrf)])
        .await;
    assert_flash(&admin, resp, "was overridden", false).await;
    assert_eq!(alice.file(id).await["state"], "available");
    let resp = user
        .post(&format!("/files/{id}/delete"), &[("_csrf", &user.csrf)])
        .await;
    assert_flash(&user, resp, "Only an admin", true).await;
    let resp = admin
        .post(&format!("/files/{id}/delete"), &[("_csrf", &admin.csrf)])
        .await;
    assert_flash(&admin, resp, "parts/a.mcam was deleted", false).await;
    expect_error(alice.get(&format!("/api/files/{id}")).await, 404).await;

    // `DELETE /files/{id}` with the CSRF header answers 204.
    let other = alice.upload_ok("parts/b.mcam", b"b").await;
    let resp = admin
        .http
        .delete(admin.url(&format!("/files/{other}")))
        .header("X-CSRF-Token", &admin.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    expect_error(alice.get(&format!("/api/files/{other}")).await, 404).await;
}

#[tokio::test]
async fn an_htmx_action_answers_with_out_of_band_fragments() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;
    let id = alice.upload_ok("parts/a.mcam", b"a").await;
    let csrf = alice.csrf.clone().unwrap();

    let resp = alice
        .http
        .post(alice.url(&format!("/files/{id}/checkout")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[("comment", "via htmx")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let fragment = resp.text().await.unwrap();
    assert!(
        fragment.contains(&format!(r#"id="file-{id}""#)),
        "{fragment}"
    );
    assert!(fragment.contains("hx-swap-oob"), "{fragment}");
    assert!(fragment.contains(r#"data-state="locked""#), "{fragment}");
    assert!(fragment.contains(r#"data-locked-by="alice""#), "{fragment}");
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    assert_eq!(alice.file(id).await["lock"]["comment"], "via htmx");

    // A refusal is a toast with the sentence, and no swap of the target.
    let resp = bob
        .http
        .post(bob.url(&format!("/files/{id}/checkout")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", bob.csrf.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(header(&resp, "hx-reswap"), "none");
    let fragment = resp.text().await.unwrap();
    assert!(
        fragment.contains("already checked out by alice"),
        "{fragment}"
    );
    assert!(fragment.contains("hx-swap-oob"), "{fragment}");

    // Without the header token, htmx is refused too.
    let resp = alice
        .http
        .post(alice.url(&format!("/files/{id}/cancel")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(alice.file(id).await["state"], "locked");
}

/// The override dialog names the holder it showed; if the file changed
/// hands before the admin clicked, the new holder's check-out is not
/// broken in the old one's name (found by a newcomer's look: the form sent
/// no holder, so it broke whoever held the file by then).
#[tokio::test]
async fn the_override_form_breaks_only_the_check_out_it_showed() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = alice.upload_ok("parts/cas.mcam", b"a").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let admin = Browser::sign_in(&app, "admin", common::ADMIN_PASSWORD).await;
    let page = admin.http.get(admin.url("/")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"name="holder" value="alice""#),
        "the override form names the holder it shows"
    );
    // Alice gives it back and Bob takes it before the admin clicks.
    assert_eq!(alice.cancel(id).await.status(), 200);
    assert_eq!(bob.checkout(id, "mine now").await.status(), 200);
    let resp = admin
        .post(
            &format!("/files/{id}/override"),
            &[("_csrf", &admin.csrf), ("holder", "alice")],
        )
        .await;
    assert_flash(&admin, resp, "is now checked out by bob, not alice", true).await;
    assert_eq!(bob.file(id).await["lock"]["owner"], "bob");
    // Naming the real holder overrides.
    let resp = admin
        .post(
            &format!("/files/{id}/override"),
            &[("_csrf", &admin.csrf), ("holder", "bob")],
        )
        .await;
    assert_flash(&admin, resp, "was overridden", false).await;
    assert_eq!(bob.file(id).await["state"], "available");
}

/// Guessing the current password on the account page is throttled like any
/// sign-in, and a throttled attempt says so (429 with Retry-After), not
/// "the current password is wrong" (found by comparing the servers: the
/// page said "wrong" for ever while the throttle was refusing).
#[tokio::test]
async fn guessing_the_current_password_is_throttled_and_says_so() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let alice = Browser::sign_in(&app, "alice", USER_PASSWORD).await;
    let mut throttled = None;
    for _ in 0..12 {
        let resp = alice
            .post(
                "/account/password",
                &[
                    ("_csrf", &alice.csrf),
                    ("current", "not-the-password"),
                    ("password", "a-new-password-123"),
                ],
            )
            .await;
        if resp.status() == 429 {
            throttled = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 303, "a wrong current password is a flash");
    }
    let resp = throttled.expect("the guesses are throttled");
    assert!(
        !header(&resp, "retry-after").is_empty(),
        "says how long to wait"
    );
    let page = resp.text().await.unwrap();
    assert!(page.contains("Too many failed logins"), "{page}");
}

/// Every address the page shows loads as a full page: a search or filter
/// pushes the dashboard's address (`/?q=…`), not the fragment's, and an old
/// `/files?…` link leads there (the newcomer's look: reloading after a
/// search showed the bare, unstyled list).
#[tokio::test]
async fn a_search_address_reloads_as_the_full_page() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("parts/findme.mcam", b"x").await;
    let resp = alice
        .http
        .get(alice.url("/files?q=findme&state=all&sort=path"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "hx-push-url"),
        "/?q=findme&state=all&sort=path"
    );
    let resp = alice
        .http
        .get(alice.url("/files?q=findme&state=all&sort=path"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), "/?q=findme&state=all&sort=path");
    let page = alice
        .http
        .get(alice.url("/?q=findme&state=all&sort=path"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<!DOCTYPE html>") && page.contains("findme.mcam"));
}

/// The Activity page narrows by what happened, who and which file, and
/// links each line to its file's history while the file is there.
#[tokio::test]
async fn the_activity_page_filters_and_links_to_files() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let kept = alice.upload_ok("act/kept.nc", b"k").await;
    let gone = bob.upload_ok("act/gone.nc", b"g").await;
    assert_eq!(bob.checkout(kept, "").await.status(), 200);
    let admin = app.admin().await;
    assert_eq!(
        admin.delete(&format!("/api/files/{gone}")).await.status(),
        204
    );
    let page = |q: &'static str| {
        let alice = alice.clone();
        async move {
            alice
                .get(&format!("/activity{q}"))
                .await
                .text()
                .await
                .unwrap()
        }
    };
    let all = page("").await;
    assert!(
        all.contains(&format!(r#"href="/files/{kept}/history""#)),
        "{all}"
    );
    assert!(
        !all.contains(&format!(r#"href="/files/{gone}/history""#)),
        "a deleted file has no link"
    );
    let bobs = page("?who=bob").await;
    assert!(bobs.contains("bob checked out act/kept.nc"), "{bobs}");
    assert!(!bobs.contains("alice uploaded"), "{bobs}");
    let checkouts = page("?kind=locked").await;
    assert!(
        checkouts.contains("bob checked out act/kept.nc"),
        "{checkouts}"
    );
    assert!(!checkouts.contains("uploaded"), "{checkouts}");
    let by_file = page("?q=GONE").await;
    assert!(
        by_file.contains("act/gone.nc") && !by_file.contains("act/kept.nc"),
        "{by_file}"
    );
    let none = page("?who=nobody").await;
    assert!(none.contains("matches these filters"), "{none}");
}

/// Headings and headers a screen reader finds (issue 12's axe findings):
/// the dashboard and a file's history page have a level-one heading, and
/// no table header is empty.
#[tokio::test]
async fn pages_have_a_first_heading_and_no_empty_table_header() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("heads/a.nc", b"a").await;
    for path in [
        "/".to_string(),
        format!("/files/{id}/history"),
        "/account".into(),
    ] {
        let page = alice.get(&path).await.text().await.unwrap();
        assert!(page.contains("<h1"), "{path} has no h1");
        assert!(
            !page.contains("<th></th>"),
            "{path} has an empty table header"
        );
    }
}

/// The dashboard's views without JavaScript: Cards | Table is a plain form
/// that remembers the choice for the person (any browser they sign in on)
/// and comes back to the dashboard's address with the filters; an address's
/// own `view` shows that view without changing the setting. Sorting by
/// last change lists across folders; by name, by folder (each collapsible).
/// "My check-outs" is a link with the count.
#[tokio::test]
async fn the_view_switch_works_as_a_plain_form_and_is_remembered_per_person() {
    let app = TestApp::spawn().await;
    let alice_api = app.user("alice").await;
    let a = alice_api.upload_ok("jig/a.nc", b"a").await;
    alice_api.upload_ok("other/b.nc", b"b").await;
    assert_eq!(alice_api.checkout(a, "").await.status(), 200);
    let alice = Browser::sign_in(&app, "alice", USER_PASSWORD).await;

    let page = alice.page("/").await;
    assert!(!page.contains("table-view"), "cards first");
    assert!(page.contains(r#"id="view-switch""#) && page.contains(r#"action="/view""#));
    assert!(
        page.contains(r#"href="/?state=mine""#),
        "My check-outs is a link"
    );
    assert!(
        page.contains(r#"<span class="my-count">1</span>"#),
        "with the count of what Alice holds"
    );
    assert!(
        page.contains(r#"<details class="folder-box" open>"#),
        "folders are sections that collapse"
    );

    let resp = alice
        .post(
            "/view",
            &[
                ("_csrf", alice.csrf.as_str()),
                ("set_view", "table"),
                ("q", "nc"),
                ("state", "all"),
                ("sort", "size"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        header(&resp, "location"),
        "/?q=nc&state=all&sort=size&view=table"
    );
    let page = alice.page("/").await;
    assert!(page.contains("file-list table-view"), "remembered: {page}");
    assert!(page.contains(r#"class="list-head""#), "with column names");
    // The same person in another browser gets it too.
    let elsewhere = Browser::sign_in(&app, "alice", USER_PASSWORD).await;
    assert!(elsewhere.page("/").await.contains("file-list table-view"));
    // An address's view wins for that page, and leaves the setting alone.
    assert!(!alice.page("/?view=cards").await.contains("table-view"));
    assert!(alice.page("/").await.contains("table-view"));

    // Across folders: one flat list, no folder sections.
    let page = alice.page("/?sort=modified").await;
    assert!(page.contains(r#"data-flat="true""#) && page.contains(r#"id="all-files""#));
    assert!(!page.contains(r#"class="folder""#), "no folder sections");
    let page = alice.page("/?sort=path").await;
    assert!(!page.contains("data-flat") && page.contains(r#"data-folder="jig""#));

    // Unknown choices are refused with a sentence; a missing token too.
    let resp = alice
        .post(
            "/view",
            &[("_csrf", alice.csrf.as_str()), ("set_view", "grid")],
        )
        .await;
    assert_flash(&alice, resp, "Choose a view", true).await;
    let resp = alice
        .http
        .post(alice.url("/view"))
        .form(&[("set_view", "cards")])
        .send()
        .await
        .unwrap();
    assert_ne!(
        header(&resp, "location"),
        "/?view=cards",
        "no CSRF token, no change"
    );
    assert!(alice.page("/").await.contains("table-view"));

    // With htmx: the list, and the dashboard's address to push.
    let resp = alice
        .http
        .post(alice.url("/view"))
        .header("HX-Request", "true")
        .form(&[
            ("set_view", "cards"),
            ("_csrf", alice.csrf.as_str()),
            ("q", ""),
            ("state", "all"),
            ("sort", "path"),
            ("view", "table"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "hx-push-url"),
        "/?state=all&sort=path&view=cards"
    );
    let body = resp.text().await.unwrap();
    assert!(body.contains(r#"id="file-list""#) && !body.contains("<html"));
    assert!(!body.contains("table-view"), "{body}");
    assert!(!alice.page("/").await.contains("table-view"));
}

/// The dashboard's card of file `id`, from its opening tag to the next card.
fn card_html(page: &str, id: u64) -> String {
    let start = page
        .find(&format!("id=\"file-{id}\""))
        .unwrap_or_else(|| panic!("no card {id} in {page}"));
    let rest = &page[start..];
    let end = rest[1..].find("<article").map_or(rest.len(), |e| e + 1);
    rest[..end].to_string()
}

#[tokio::test]
async fn cards_name_people_by_display_name_on_the_page_and_live() {
    let app = TestApp::spawn().await;
    let alice = app.named_user("alice", "Alice Smith").await;
    let bob = app.named_user("bob", "Bob Jones & Co").await;
    let id = alice.upload_ok("parts/fixture.mcam", b"G0").await;
    assert_eq!(alice.checkout(id, "fixing").await.status(), 200);
    assert_eq!(
        bob.post_empty(&format!("/api/files/{id}/queue"))
            .await
            .status(),
        200
    );

    let carol = app.user("carol").await;
    let page = carol.get("/").await.text().await.unwrap();
    let card = card_html(&page, id);
    assert!(card.contains("Checked out by Alice Smith"), "{card}");
    assert!(
        card.contains("title=\"alice\""),
        "the username on hover: {card}"
    );
    assert!(card.contains("by Alice Smith"), "last change by: {card}");
    // The line, escaped by maud like every other name.
    assert!(card.contains("Bob Jones &amp; Co"), "{card}");
    assert!(!card.contains(">alice<"), "no bare username: {card}");

    // Renamed: the next live card says the new name.
    let mut ws = common::live::ws_connect(&app.base, &carol, "").await;
    let admin = app.admin().await;
    let resp = admin
        .patch_json("/api/users/alice", &json!({"display_name": "Alice Dunn"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(alice.cancel(id).await.status(), 200);
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let live = ws
        .text_containing("Checked out by Bob Jones &amp; Co", common::live::WAIT)
        .await
        .expect("bob's check-out reaches carol live");
    assert!(card_html(&live, id).contains("title=\"bob\""), "{live}");
    assert_eq!(
        alice
            .post_empty(&format!("/api/files/{id}/queue"))
            .await
            .status(),
        200
    );
    let live = ws
        .text_containing("Alice Dunn", common::live::WAIT)
        .await
        .expect("the renamed alice, waiting in line, reaches carol live");
    let card = card_html(&live, id);
    assert!(
        card.contains("<li title=\"alice\">Alice Dunn</li>"),
        "{card}"
    );
}

#[tokio::test]
async fn the_dashboard_search_finds_a_file_by_its_holders_display_name() {
    let app = TestApp::spawn().await;
    let alice = app.named_user("alice", "Alice Smith").await;
    let held = alice.upload_ok("parts/held.mcam", b"G0").await;
    let free = alice.upload_ok("parts/free.mcam", b"G1").await;
    assert_eq!(alice.checkout(held, "").await.status(), 200);
    let bob = app.user("bob").await;
    let page = bob.get("/?q=Smith").await.text().await.unwrap();
    assert!(page.contains(&format!("id=\"file-{held}\"")), "{page}");
    assert!(!page.contains(&format!("id=\"file-{free}\"")), "{page}");
    // The username still finds it.
    let page = bob.get("/?q=alice").await.text().await.unwrap();
    assert!(page.contains(&format!("id=\"file-{held}\"")), "{page}");
}
