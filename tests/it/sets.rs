//! Several files at once: change sets (check out, cancel, check in), a bulk
//! upload, a move and a description edit — through the API, through the
//! plain forms a browser without JavaScript posts, and as live clients see
//! them (one message and one toast for a whole change set).

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::git::git_ok;
use crate::common::live::{SseNext, WAIT, WsNext, sse_open, ws_connect};
use crate::common::{Client, TestApp, USER_PASSWORD, expect_error, header, hidden_csrf, json_of};

/// How many commits the vault's history holds.
fn commits(app: &TestApp) -> usize {
    git_ok(&app.vault_path(), &["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .expect("a count")
}

/// The newest commit's whole message.
fn last_message(app: &TestApp) -> String {
    git_ok(&app.vault_path(), &["log", "-1", "--format=%B"])
}

/// A multipart check-in of several files: each part named by `name`.
fn checkin_form(message: &str, bump: &str, parts: &[(&str, &[u8])]) -> Form {
    let mut form = Form::new()
        .text("message", message.to_string())
        .text("bump", bump.to_string());
    for (name, content) in parts {
        form = form.part(
            "file",
            Part::bytes(content.to_vec()).file_name(name.to_string()),
        );
    }
    form
}

fn ids_of(body: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = body["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["id"].as_u64().expect("id"))
        .collect();
    ids.sort();
    ids
}

fn holder(file: &Value) -> Option<String> {
    file["lock"]["owner"].as_str().map(str::to_string)
}

#[tokio::test]
async fn checking_out_a_set_takes_all_or_none_and_names_every_file_someone_holds() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let a = alice.upload_ok("set/a.nc", b"a").await;
    let b = alice.upload_ok("set/b.nc", b"b").await;
    let c = alice.upload_ok("set/c.nc", b"c").await;
    assert_eq!(alice.checkout(a, "").await.status(), 200);
    assert_eq!(carol.checkout(b, "").await.status(), 200);

    let resp = bob
        .post_json(
            "/api/checkout",
            &json!({"ids": [a, b, c], "comment": "all three"}),
        )
        .await;
    let body = json_of(resp, 409).await;
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    let mut conflicts: Vec<(u64, String)> = body["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().expect("id"),
                c["owner"].as_str().expect("owner").to_string(),
            )
        })
        .collect();
    conflicts.sort();
    assert_eq!(
        conflicts,
        vec![(a, "alice".to_string()), (b, "carol".to_string())],
        "every held file is named with its holder"
    );
    assert_eq!(
        holder(&bob.file(c).await),
        None,
        "the free one was not taken"
    );
    assert_eq!(holder(&bob.file(a).await).as_deref(), Some("alice"));

    // Once free, the same request takes all of them with one comment.
    assert_eq!(alice.cancel(a).await.status(), 200);
    assert_eq!(carol.cancel(b).await.status(), 200);
    let body = json_of(
        bob.post_json(
            "/api/checkout",
            &json!({"ids": [a, b, c], "comment": "all three"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids_of(&body), vec![a, b, c]);
    for id in [a, b, c] {
        let f = bob.file(id).await;
        assert_eq!(holder(&f).as_deref(), Some("bob"));
        assert_eq!(f["lock"]["comment"], "all three");
    }
}

#[tokio::test]
async fn a_set_of_check_outs_is_given_back_together_and_only_by_its_holder() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let a = bob.upload_ok("a.nc", b"a").await;
    let b = bob.upload_ok("b.nc", b"b").await;
    json_of(
        bob.post_json("/api/checkout", &json!({"ids": [a, b]}))
            .await,
        200,
    )
    .await;

    // Someone else cannot give them back; nothing changes.
    let resp = carol
        .post_json("/api/cancel", &json!({"ids": [a, b]}))
        .await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_eq!(holder(&bob.file(a).await).as_deref(), Some("bob"));

    let body = json_of(
        bob.post_json("/api/cancel", &json!({"ids": [a, b]})).await,
        200,
    )
    .await;
    assert_eq!(ids_of(&body), vec![a, b]);
    for id in [a, b] {
        assert_eq!(holder(&bob.file(id).await), None);
    }
}

#[tokio::test]
async fn checking_in_a_set_makes_one_commit_with_a_trailer_group_per_file() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let a = bob.upload_ok("fixture/base.nc", b"base v1").await;
    let b = bob.upload_ok("fixture/clamp.nc", b"clamp v1").await;
    let c = bob.upload_ok("fixture/jaw.nc", b"jaw v1").await;
    json_of(
        bob.post_json("/api/checkout", &json!({"ids": [a, b, c]}))
            .await,
        200,
    )
    .await;
    let before = commits(&app);

    // Paths, and a bare name (bob holds one jaw.nc).
    let form = checkin_form(
        "Deeper pockets on the whole fixture",
        "major",
        &[
            ("fixture/base.nc", b"base v2"),
            ("fixture/clamp.nc", b"clamp v2"),
            ("jaw.nc", b"jaw v2"),
        ],
    );
    let body = json_of(bob.post_form("/api/checkin", form).await, 200).await;
    assert_eq!(ids_of(&body), vec![a, b, c]);
    assert_eq!(commits(&app), before + 1, "one commit for the set");
    let message = last_message(&app);
    assert!(message.starts_with("Deeper pockets on the whole fixture"));
    assert_eq!(
        message.matches("Latch-Action: checkin").count(),
        3,
        "one trailer group per file: {message}"
    );
    for id in [a, b, c] {
        assert!(
            message.contains(&format!("Latch-File: {id}\n")),
            "{message}"
        );
        let f = bob.file(id).await;
        assert_eq!(f["revision"], "2.0");
        assert_eq!(holder(&f), None, "checked in, so given back");
    }
    assert_eq!(bob.content(c, None).await, b"jaw v2");
}

#[tokio::test]
async fn a_set_with_an_unchanged_file_is_refused_and_leaves_everything_as_it_was() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let a = bob.upload_ok("a.nc", b"a v1").await;
    let b = bob.upload_ok("b.nc", b"b v1").await;
    json_of(
        bob.post_json("/api/checkout", &json!({"ids": [a, b]}))
            .await,
        200,
    )
    .await;
    let before = commits(&app);

    let form = checkin_form("Both", "minor", &[("a.nc", b"a v2"), ("b.nc", b"b v1")]);
    let error = expect_error(bob.post_form("/api/checkin", form).await, 422).await;
    assert!(
        error.contains("b.nc") && error.contains("identical"),
        "{error}"
    );
    assert_eq!(commits(&app), before, "no commit");
    for (id, content) in [(a, &b"a v1"[..]), (b, &b"b v1"[..])] {
        let f = bob.file(id).await;
        assert_eq!(f["revision"], "1.0");
        assert_eq!(holder(&f).as_deref(), Some("bob"), "still checked out");
        assert_eq!(bob.content(id, None).await, content);
    }
}

#[tokio::test]
async fn a_bare_name_that_two_held_files_share_is_refused_as_ambiguous() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let a = bob.upload_ok("left/jaw.nc", b"left").await;
    let b = bob.upload_ok("right/jaw.nc", b"right").await;
    json_of(
        bob.post_json("/api/checkout", &json!({"ids": [a, b]}))
            .await,
        200,
    )
    .await;
    let before = commits(&app);
    let form = checkin_form("Jaw", "minor", &[("jaw.nc", b"which one?")]);
    let error = expect_error(bob.post_form("/api/checkin", form).await, 422).await;
    assert!(error.contains("jaw.nc"), "{error}");
    assert_eq!(commits(&app), before);
}

#[tokio::test]
async fn a_bulk_upload_whose_names_clash_with_each_other_is_refused_without_a_commit() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    bob.upload_ok("first.nc", b"first").await;
    let before = commits(&app);
    let form = Form::new()
        .text("folder", "batch")
        .part("file", Part::bytes(b"x".to_vec()).file_name("a"))
        .part("file", Part::bytes(b"y".to_vec()).file_name("a/b"));
    expect_error(bob.post_form("/api/files/bulk", form).await, 409).await;
    assert_eq!(commits(&app), before, "no commit");
    assert_eq!(bob.files().await.len(), 1, "no file added");

    // Without the clash: one commit, every file under the folder.
    let form = Form::new()
        .text("folder", "batch")
        .text("revision", "2.3")
        .part("file", Part::bytes(b"x".to_vec()).file_name("a.nc"))
        .part("file", Part::bytes(b"y".to_vec()).file_name("sub/b.nc"));
    let body = json_of(bob.post_form("/api/files/bulk", form).await, 201).await;
    let mut paths: Vec<&str> = body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, vec!["batch/a.nc", "batch/sub/b.nc"]);
    assert!(
        body["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["revision"] == "2.3")
    );
    assert_eq!(commits(&app), before + 1);
}

#[tokio::test]
async fn a_moved_file_keeps_its_id_lock_line_and_history() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = bob.upload_ok("old/part.nc", b"rev one").await;
    assert_eq!(bob.checkout(id, "moving").await.status(), 200);
    assert_eq!(
        bob.checkin(id, b"rev two", "Second", "minor")
            .await
            .status(),
        200
    );
    assert_eq!(bob.checkout(id, "moving").await.status(), 200);
    assert_eq!(
        carol
            .post_empty(&format!("/api/files/{id}/queue"))
            .await
            .status(),
        200
    );
    let history = bob.history(id).await;
    assert_eq!(history.len(), 2);
    let before = commits(&app);

    let moved = json_of(
        bob.post_json(
            &format!("/api/files/{id}/move"),
            &json!({"path": "new/place/part.nc"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(moved["id"], id);
    assert_eq!(moved["path"], "new/place/part.nc");
    assert_eq!(commits(&app), before + 1, "one commit");
    assert!(last_message(&app).contains("Latch-Action: move"));
    let f = bob.file(id).await;
    assert_eq!(holder(&f).as_deref(), Some("bob"), "the lock followed");
    assert_eq!(f["lock"]["comment"], "moving");
    assert_eq!(f["queue"], json!(["carol"]), "the line followed");
    assert_eq!(f["revision"], "1.1");
    let after = bob.history(id).await;
    assert!(after.len() >= 2, "history followed: {after:?}");
    // The old versions still download by their commit.
    for v in &history {
        let commit = v["commit"].as_str().expect("commit");
        let want: &[u8] = if v["revision"] == "1.0" {
            b"rev one"
        } else {
            b"rev two"
        };
        assert_eq!(bob.content(id, Some(commit)).await, want);
        let resp = bob.get(&format!("/files/{id}/download?rev={commit}")).await;
        assert_eq!(resp.status(), 200, "the page's download of {commit}");
    }
    // A check-in after the move lands at the new path.
    assert_eq!(
        bob.checkin(id, b"rev three", "Third", "minor")
            .await
            .status(),
        200
    );
    assert_eq!(bob.content(id, None).await, b"rev three");
    let tree = git_ok(&app.vault_path(), &["ls-tree", "-r", "--name-only", "HEAD"]);
    assert!(
        tree.contains("new/place/part.nc") && !tree.contains("old/part.nc"),
        "{tree}"
    );
}

#[tokio::test]
async fn a_move_onto_a_taken_name_under_a_file_or_to_a_case_variant_is_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let a = admin.upload_ok("parts/a.nc", b"a").await;
    admin.upload_ok("parts/b.nc", b"b").await;
    admin.upload_ok("tools/mill", b"a file, not a folder").await;
    admin.upload_ok("parts/Bracket.nc", b"c").await;
    let before = commits(&app);
    for (to, why) in [
        ("parts/b.nc", "another file's path"),
        ("tools/mill/a.nc", "inside a file's \"folder\""),
        ("tools", "the name of a folder"),
        ("parts/bracket.nc", "a case variant of another file"),
    ] {
        let resp = admin
            .post_json(&format!("/api/files/{a}/move"), &json!({"path": to}))
            .await;
        let error = expect_error(resp, 409).await;
        assert!(!error.is_empty(), "{why}");
        assert_eq!(admin.file(a).await["path"], "parts/a.nc", "{why}");
    }
    assert_eq!(commits(&app), before, "no commit");
    // A case change of its own name is a rename like any other.
    let f = json_of(
        admin
            .post_json(
                &format!("/api/files/{a}/move"),
                &json!({"path": "parts/A.nc"}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(f["path"], "parts/A.nc");
}

#[tokio::test]
async fn only_the_holder_or_an_admin_moves_or_describes_a_file() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = bob.upload_ok("desc.nc", b"x").await;
    let describe = |c: &Client, text: &str| {
        let c = c.clone();
        let body = json!({"description": text});
        async move { c.patch_json(&format!("/api/files/{id}"), &body).await }
    };

    // Unlocked: a user must check it out first; an admin may.
    expect_error(describe(&bob, "by bob").await, 403).await;
    json_of(describe(&admin, "by the admin").await, 200).await;
    assert_eq!(bob.file(id).await["description"], "by the admin");

    // Held by bob: bob may, carol may not, the admin still may.
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(describe(&bob, "by bob").await, 200).await;
    let error = expect_error(describe(&carol, "by carol").await, 409).await;
    assert!(error.contains("bob"), "{error}");
    json_of(describe(&admin, "fixed by the admin").await, 200).await;
    assert_eq!(bob.file(id).await["description"], "fixed by the admin");
    assert_eq!(bob.events_of("edited").await.len(), 3);

    // A move of a held file is the holder's alone, even for an admin.
    let resp = admin
        .post_json(
            &format!("/api/files/{id}/move"),
            &json!({"path": "by-admin.nc"}),
        )
        .await;
    expect_error(resp, 409).await;
    let resp = carol
        .post_json(
            &format!("/api/files/{id}/move"),
            &json!({"path": "by-carol.nc"}),
        )
        .await;
    expect_error(resp, 409).await;
    json_of(
        bob.post_json(
            &format!("/api/files/{id}/move"),
            &json!({"path": "by-bob.nc"}),
        )
        .await,
        200,
    )
    .await;
}

/// The `data-seq` of the last `#live-seq` in a live message.
fn last_live_seq(html: &str) -> u64 {
    let marker = "id=\"live-seq\" data-seq=\"";
    let at = html.rfind(marker).expect("a #live-seq in the message");
    let rest = &html[at + marker.len()..];
    rest[..rest.find('"').unwrap()].parse().expect("a number")
}

#[tokio::test]
async fn a_change_set_reaches_websocket_and_sse_clients_as_one_message_with_one_toast() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let ids = [
        bob.upload_ok("set/1.nc", b"1").await,
        bob.upload_ok("set/2.nc", b"2").await,
        bob.upload_ok("set/3.nc", b"3").await,
    ];
    let mut ws = ws_connect(&app.base, &carol, "").await;
    let mut sse = sse_open(&app.base, &carol, "", &[]).await;
    // Let both streams settle past anything sent on connecting.
    ws.quiet().await;
    sse.quiet().await;

    let body = json_of(
        bob.post_json("/api/checkout", &json!({"ids": ids, "comment": "fixture"}))
            .await,
        200,
    )
    .await;
    assert_eq!(body["files"].as_array().unwrap().len(), 3);
    let locked = bob.events_of("locked").await;
    let last_seq = locked
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .max()
        .unwrap();

    let text = match ws.next(WAIT).await {
        WsNext::Text(t) => t,
        other => panic!("expected one WebSocket message, got {other:?}"),
    };
    let event = match sse.next(WAIT).await {
        SseNext::Event(e) => e,
        other => panic!("expected one SSE event, got {other:?}"),
    };
    for (transport, html) in [("ws", text.as_str()), ("sse", event.html().as_str())] {
        for id in ids {
            assert!(
                html.contains(&format!("id=\"file-{id}\"")),
                "{transport}: the card of {id} is in the one message"
            );
        }
        assert_eq!(
            html.matches("class=\"toast").count(),
            1,
            "{transport}: one toast: {html}"
        );
        assert!(
            html.contains("bob checked out 3 files"),
            "{transport}: {html}"
        );
        assert_eq!(
            last_live_seq(html),
            last_seq,
            "{transport}: #live-seq is the last event's"
        );
    }
    assert_eq!(event.seq(), last_seq, "the SSE id is the last event's seq");
    // Nothing more: the three events did not also come one by one.
    ws.quiet().await;
    sse.quiet().await;
}

/// A browser without JavaScript: a cookie session and the page's hidden
/// `_csrf` field, plain form posts, redirects with a flash.
struct NoJs {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

impl NoJs {
    async fn sign_in(app: &TestApp, username: &str) -> NoJs {
        let http = Client::form_login(&app.base, username, USER_PASSWORD).await;
        let page = http
            .get(app.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        NoJs {
            http,
            base: app.base.clone(),
            csrf: hidden_csrf(&page),
        }
    }

    async fn page(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.http
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    async fn post_multipart(&self, path: &str, form: Form) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .multipart(form.text("_csrf", self.csrf.clone()))
            .send()
            .await
            .unwrap()
    }

    /// A 303 to the dashboard, whose next render shows `expect` in a flash.
    async fn flash(&self, resp: reqwest::Response, expect: &str) {
        assert_eq!(resp.status(), 303, "a plain form answers with a redirect");
        assert_eq!(header(&resp, "location"), "/");
        let page = self.page().await;
        assert!(page.contains(expect), "the page's flash says {expect:?}");
    }
}

#[tokio::test]
async fn the_selection_check_in_bulk_move_and_describe_forms_work_without_javascript() {
    let app = TestApp::spawn().await;
    let bob_api = app.user("bob").await;
    let a = bob_api.upload_ok("jig/a.nc", b"a1").await;
    let b = bob_api.upload_ok("jig/b.nc", b"b1").await;
    let c = bob_api.upload_ok("jig/c.nc", b"c1").await;
    let bob = NoJs::sign_in(&app, "bob").await;

    // The page has what the forms need: the selection form and a box per card.
    let page = bob.page().await;
    assert!(page.contains(r#"id="selection""#), "the selection form");
    for id in [a, b, c] {
        assert!(page.contains(&format!(r#"name="ids" value="{id}" form="selection""#)));
    }

    // Tick a and b; one comment.
    let (sa, sb) = (a.to_string(), b.to_string());
    let resp = bob
        .post(
            "/files/checkout",
            &[("comment", "one setup"), ("ids", &sa), ("ids", &sb)],
        )
        .await;
    bob.flash(resp, "Checked out 2 files.").await;
    for id in [a, b] {
        let f = bob_api.file(id).await;
        assert_eq!(holder(&f).as_deref(), Some("bob"));
        assert_eq!(f["lock"]["comment"], "one setup");
    }
    assert_eq!(holder(&bob_api.file(c).await), None);

    // Nothing ticked: told so.
    let resp = bob.post("/files/checkout", &[("comment", "")]).await;
    bob.flash(resp, "Select at least one file").await;

    // Check in both by their bare names, as a file picker names them.
    let before = commits(&app);
    let form = Form::new()
        .text("message", "Both jaws")
        .text("bump", "minor")
        .part("file", Part::bytes(b"a2".to_vec()).file_name("a.nc"))
        .part("file", Part::bytes(b"b2".to_vec()).file_name("b.nc"));
    let resp = bob.post_multipart("/files/checkin", form).await;
    bob.flash(resp, "Checked in 2 files in one commit.").await;
    assert_eq!(commits(&app), before + 1);
    assert_eq!(bob_api.file(a).await["revision"], "1.1");
    assert_eq!(bob_api.file(b).await["revision"], "1.1");

    // Check out c and a, then cancel both through the selection's second button.
    let (sc, sa) = (c.to_string(), a.to_string());
    let resp = bob
        .post("/files/checkout", &[("ids", &sc), ("ids", &sa)])
        .await;
    bob.flash(resp, "Checked out 2 files.").await;
    let resp = bob
        .post(
            "/files/cancel",
            &[("comment", ""), ("ids", &sc), ("ids", &sa)],
        )
        .await;
    bob.flash(resp, "Cancelled the check-out of 2 files.").await;
    assert_eq!(holder(&bob_api.file(c).await), None);

    // The bulk form has two pickers (files, a folder); the one left empty
    // still sends a nameless, empty part, which is no file.
    let form = Form::new()
        .text("folder", "imports")
        .text("revision", "1.0")
        .part("file", Part::bytes(b"one".to_vec()).file_name("one.nc"))
        .part("file", Part::bytes(b"two".to_vec()).file_name("two.nc"))
        .part(
            "file",
            Part::bytes(Vec::new())
                .file_name("")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    let resp = bob.post_multipart("/files/bulk", form).await;
    bob.flash(resp, "Uploaded 2 files in one commit.").await;
    let paths: Vec<String> = bob_api
        .files()
        .await
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(paths.contains(&"imports/one.nc".to_string()), "{paths:?}");
    assert!(paths.contains(&"imports/two.nc".to_string()), "{paths:?}");

    // Move and describe c (bob holds it).
    let resp = bob.post("/files/checkout", &[("ids", &sc)]).await;
    bob.flash(resp, "Checked out 1 file.").await;
    let resp = bob
        .post(&format!("/files/{c}/move"), &[("path", "jig/old/c.nc")])
        .await;
    bob.flash(resp, "Moved to jig/old/c.nc.").await;
    let resp = bob
        .post(
            &format!("/files/{c}/describe"),
            &[("description", "Kept for reference")],
        )
        .await;
    bob.flash(resp, "Description saved.").await;
    let f = bob_api.file(c).await;
    assert_eq!(f["path"], "jig/old/c.nc");
    assert_eq!(f["description"], "Kept for reference");
}

// ---------------------------------------------------------------------------
// Check in and keep checked out.

/// A check-in with `keep` records the new version and keeps the lock (no
/// hand-off to the line): the same for one file, a change set, and the
/// card's plain form.
#[tokio::test]
async fn a_check_in_can_keep_the_file_checked_out() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let one = alice.upload_ok("keep/one.nc", b"v1").await;
    let two = alice.upload_ok("keep/two.nc", b"v1").await;
    assert_eq!(alice.checkout(one, "").await.status(), 200);
    // Bob waits: a kept lock hands nothing on.
    assert_eq!(
        bob.post_empty(&format!("/api/files/{one}/queue"))
            .await
            .status(),
        200
    );
    let form = reqwest::multipart::Form::new()
        .text("message", "Milestone")
        .text("keep", "true")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"v2".to_vec()).file_name("one.nc"),
        );
    let resp = alice
        .http
        .post(alice.url(&format!("/api/files/{one}/checkin")))
        .header("X-CSRF-Token", alice.csrf.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let f: Value = resp.json().await.unwrap();
    assert_eq!(f["revision"], "1.1", "{f}");
    assert_eq!(f["lock"]["owner"], "alice", "{f}");
    assert_eq!(f["queue"], json!(["bob"]), "{f}");
    assert!(alice.events_of("reserved").await.is_empty());

    // A change set kept too.
    assert_eq!(alice.checkout(two, "").await.status(), 200);
    let form = reqwest::multipart::Form::new()
        .text("message", "Both, kept")
        .text("keep", "on")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"v3".to_vec()).file_name("keep/one.nc"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"v2".to_vec()).file_name("keep/two.nc"),
        );
    let resp = alice
        .http
        .post(alice.url("/api/checkin"))
        .header("X-CSRF-Token", alice.csrf.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    for f in body["files"].as_array().unwrap() {
        assert_eq!(f["lock"]["owner"], "alice", "{f}");
    }
    // Anything but yes or no is refused, and nothing is checked in.
    let form = reqwest::multipart::Form::new()
        .text("message", "Maybe")
        .text("keep", "maybe")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"v4".to_vec()).file_name("one.nc"),
        );
    let resp = alice
        .http
        .post(alice.url(&format!("/api/files/{one}/checkin")))
        .header("X-CSRF-Token", alice.csrf.clone().unwrap())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(alice.file(one).await["revision"], "1.2");
    // Without keep the lock ends and the line's first gets the file.
    let resp = alice.checkin(one, b"v5", "Done", "minor").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(alice.file(one).await["reserved_for"]["username"], "bob");
    // The card offers it.
    let page = alice.get("/").await.text().await.unwrap();
    assert!(
        page.contains("name=\"keep\""),
        "the card's check-in offers keep"
    );
}

/// *Check out & download*: the plain form takes the lock and goes on to
/// the version's download; with htmx the answer says where to go next.
#[tokio::test]
async fn check_out_and_download_is_one_step() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("take/part.nc", b"G21\n").await;
    let page = alice.get("/").await.text().await.unwrap();
    assert!(
        page.contains("name=\"then\" value=\"download\""),
        "the card offers it"
    );
    let resp = alice
        .post_plain_form(
            &format!("/files/{id}/checkout"),
            &[("comment", "on it"), ("then", "download")],
        )
        .await;
    match resp.status().as_u16() {
        303 => assert_eq!(header(&resp, "location"), format!("/files/{id}/download")),
        200 => {
            assert!(
                resp.url()
                    .path()
                    .ends_with(&format!("/files/{id}/download"))
            );
            assert_eq!(resp.bytes().await.unwrap().as_ref(), b"G21\n");
        }
        other => panic!("check out & download answered {other}"),
    }
    let f = alice.file(id).await;
    assert_eq!(f["lock"]["owner"], "alice", "{f}");
    assert_eq!(f["lock"]["comment"], "on it", "{f}");

    // With htmx: the card and a toast, and HX-Redirect to the download.
    assert_eq!(
        alice
            .post_empty(&format!("/api/files/{id}/cancel"))
            .await
            .status(),
        200
    );
    let resp = htmx_form(
        &alice,
        &format!("/files/{id}/checkout"),
        &[("then", "download")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "hx-redirect"),
        format!("/files/{id}/download")
    );
    // A refusal downloads nothing: the toast says why.
    let bob = app.user("bob").await;
    let resp = htmx_form(
        &bob,
        &format!("/files/{id}/checkout"),
        &[("then", "download")],
    )
    .await;
    assert_eq!(resp.status(), 409);
    assert!(resp.headers().get("hx-redirect").is_none());
}

/// A form post as htmx sends it (errors come back as statuses and toasts).
async fn htmx_form(c: &Client, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    c.http
        .post(c.url(path))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", c.csrf.clone().unwrap_or_default())
        .form(fields)
        .send()
        .await
        .unwrap()
}
