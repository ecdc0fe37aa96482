//! Regression tests for "Trust at the edges" (issue 9), the state side:
//! - what a write accepts, every read accepts (revision limits, legacy
//!   records, reconciled trailers), and start-up never fails on it;
//! - a file and a folder never share a name, nor two names that differ only
//!   in letter case, and `main`'s tree always matches the file list;
//! - every path the Git layer would refuse is a 4xx with a sentence;
//! - Git's empty-password probe and good credentials leave no failures;
//! - a forced LFS unlock breaks only the lock it read (compare-and-swap);
//! - live connections end when their session expires.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::git::GitHome;
use crate::common::live::{WsNext, sse_open, ws_connect};
use crate::common::{Client, TestApp, USER_PASSWORD, expect_error};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// Generous upper bound for anything the server is expected to do by itself.
const WAIT: Duration = Duration::from_secs(30);

async fn upload_at(
    client: &Client,
    path: &str,
    revision: &str,
    content: &[u8],
) -> reqwest::Response {
    let form = Form::new()
        .text("path", path.to_string())
        .text("revision", revision.to_string())
        .part(
            "file",
            Part::bytes(content.to_vec()).file_name("upload.bin"),
        );
    client.post_form("/api/files", form).await
}

async fn activity(client: &Client) -> Vec<Value> {
    client.get_json("/api/activity").await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every read surface answers 200.
async fn everything_reads(app: &TestApp, client: &Client, id: u64) {
    for path in [
        "/api/files".to_string(),
        format!("/api/files/{id}"),
        format!("/api/files/{id}/history"),
        "/api/activity".into(),
        "/".into(),
        "/activity".into(),
    ] {
        let resp = client.get(&path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
    }
    let locks = reqwest::Client::new()
        .get(app.url("/vault.git/info/lfs/locks"))
        .basic_auth("admin", Some(crate::common::ADMIN_PASSWORD))
        .send()
        .await
        .expect("locks");
    assert_eq!(locks.status(), 200, "LFS locks");
}

// ------------------------------------------------ 1. reads trust writes

#[tokio::test]
async fn a_bump_past_the_revision_limit_is_refused_and_changes_nothing() {
    let mut app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for (start, bump) in [("999999.0", "major"), ("1.999999", "minor")] {
        let path = format!("parts/{bump}.mcam");
        let resp = upload_at(&alice, &path, start, b"first").await;
        assert_eq!(resp.status(), 201, "upload at {start}");
        let id = resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        assert_eq!(alice.checkout(id, "").await.status(), 200);
        let events_before = activity(&alice).await.len();
        let msg = expect_error(alice.checkin(id, b"second", "Next", bump).await, 422).await;
        assert!(
            msg.contains("999999"),
            "the sentence names the limit: {msg}"
        );
        let file = alice.file(id).await;
        assert_eq!(file["revision"], start, "the record is unchanged");
        assert_eq!(file["lock"]["owner"], "alice", "the lock is kept: {file}");
        assert_eq!(alice.history(id).await.len(), 1, "no Git commit was made");
        assert_eq!(activity(&alice).await.len(), events_before, "no event");
        everything_reads(&app, &alice, id).await;
    }
    app.restart().await;
    let alice = app.login("alice", USER_PASSWORD).await;
    everything_reads(&app, &alice, 1).await;
    assert_eq!(alice.files().await.len(), 2);
}

/// Writes a record as an older Latch could (revision 1000000.0, an event
/// carrying it), then starts the server on it.
#[tokio::test]
async fn start_up_reads_a_record_an_older_version_wrote_past_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut app = TestApp::start(&data, |_| {}).await;
    let admin = app.admin().await;
    let id = admin.upload_ok("parts/old.mcam", b"x").await;
    app.stop().await;
    {
        let config = latch::Config::new(&data);
        let store = latch::store::Store::open(&config.db_path())
            .unwrap_or_else(|e| panic!("open store: {e}"));
        store
            .write(|tx| {
                let mut rec = latch::store::get_file(&tx.txn.open_table(latch::store::FILES)?, id)?
                    .expect("record");
                rec.revision = latch::domain::Revision {
                    major: 1_000_000,
                    minor: 0,
                };
                latch::store::put_file(&tx.txn, &rec)?;
                tx.record(latch::store::EventDraft {
                    kind: latch::store::EventKind::CheckedIn,
                    actor: "admin".into(),
                    note: Some("written by an older Latch".into()),
                    previous_holder: None,
                    file: latch::store::FileSnapshot::Present(Box::new(rec)),
                })?;
                Ok(())
            })
            .unwrap();
    }
    let app = TestApp::start(&data, |_| {}).await;
    let admin = app.admin().await;
    assert_eq!(admin.file(id).await["revision"], "1000000.0");
    everything_reads(&app, &admin, id).await;
}

/// A `Latch-Revision` trailer past the edge parser's limit is still a
/// revision; one that is no revision at all keeps the record's revision.
#[tokio::test]
async fn reconciliation_reads_trailers_leniently() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut app = TestApp::start(&data, |_| {}).await;
    let admin = app.admin().await;
    let id = admin.upload_ok("parts/r.mcam", b"x").await;
    app.stop().await;
    {
        let vault = latch::vault::Vault::open_or_init(&data.join("vault.git")).unwrap();
        let author = latch::vault::Author {
            username: "admin",
            display_name: "Administrator",
        };
        let path = latch::domain::RepoPath::parse("parts/r.mcam").unwrap();
        for (content, revision) in [(&b"y"[..], "1000000.0"), (&b"z"[..], "not-a-revision")] {
            let blob = vault
                .write_blob(&mut &content[..], content.len() as u64)
                .unwrap();
            vault
                .commit(
                    &[latch::vault::Change::Put { path: &path, blob }],
                    &author,
                    "Committed before a crash",
                    &[latch::vault::Trailers {
                        action: latch::vault::Action::CheckIn,
                        file_id: id,
                        path: path.clone(),
                        from: None,
                        revision: Some(revision.into()),
                        user: "admin".into(),
                    }],
                )
                .unwrap();
        }
    }
    let app = TestApp::start(&data, |_| {}).await;
    let admin = app.admin().await;
    let file = admin.file(id).await;
    assert_eq!(file["revision"], "1000000.0", "{file}");
    assert_eq!(admin.content(id, None).await, b"z");
    everything_reads(&app, &admin, id).await;
}

/// A change set and a move committed to Git by a process killed before its
/// database commit: the next start applies each file of the commit (not
/// some of them), the moved file keeps its id at its new path, and old
/// versions still download from where they were.
#[tokio::test]
async fn reconciliation_applies_a_change_set_and_a_move_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut app = TestApp::start(&data, |_| {}).await;
    let admin = app.admin().await;
    let a = admin.upload_ok("set/a.nc", b"a1").await;
    let b = admin.upload_ok("set/b.nc", b"b1").await;
    let c = admin.upload_ok("set/c.nc", b"c1").await;
    app.stop().await;
    {
        use latch::domain::RepoPath;
        use latch::vault::{Action, Author, Change, Trailers, Vault};
        let vault = Vault::open_or_init(&data.join("vault.git")).unwrap();
        let author = Author {
            username: "admin",
            display_name: "Administrator",
        };
        let (pa, pb) = (
            RepoPath::parse("set/a.nc").unwrap(),
            RepoPath::parse("set/b.nc").unwrap(),
        );
        let (ba, bb) = (
            vault.write_blob(&mut &b"a2"[..], 2).unwrap(),
            vault.write_blob(&mut &b"b2"[..], 2).unwrap(),
        );
        let trailer = |id, path: &RepoPath| Trailers {
            action: Action::CheckIn,
            file_id: id,
            path: path.clone(),
            from: None,
            revision: Some("1.1".into()),
            user: "admin".into(),
        };
        vault
            .commit(
                &[
                    Change::Put {
                        path: &pa,
                        blob: ba,
                    },
                    Change::Put {
                        path: &pb,
                        blob: bb,
                    },
                ],
                &author,
                "Both at once",
                &[trailer(a, &pa), trailer(b, &pb)],
            )
            .unwrap();
        let (from, to) = (
            RepoPath::parse("set/c.nc").unwrap(),
            RepoPath::parse("moved/c.nc").unwrap(),
        );
        let blob = vault
            .blob_at(vault.head().unwrap().unwrap(), &from)
            .unwrap()
            .unwrap();
        vault
            .commit(
                &[Change::Move {
                    from: &from,
                    to: &to,
                    blob,
                }],
                &author,
                "Move set/c.nc to moved/c.nc",
                &[Trailers {
                    action: Action::Move,
                    file_id: c,
                    path: to.clone(),
                    from: Some(from.clone()),
                    revision: Some("1.0".into()),
                    user: "admin".into(),
                }],
            )
            .unwrap();
    }
    let app = TestApp::start(&data, |_| {}).await;
    let admin = app.admin().await;
    for (id, content) in [(a, b"a2"), (b, b"b2")] {
        let file = admin.file(id).await;
        assert_eq!(file["revision"], "1.1", "{file}");
        assert_eq!(admin.content(id, None).await, content);
    }
    let moved = admin.file(c).await;
    assert_eq!(moved["path"], "moved/c.nc", "{moved}");
    let history = admin.get_json(&format!("/api/files/{c}/history")).await;
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions[0]["action"], "move", "{history}");
    let first = versions[1]["commit"].as_str().unwrap();
    assert_eq!(admin.content(c, Some(first)).await, b"c1");
    // The old name is free again, the new one taken.
    assert_eq!(admin.upload("set/c.nc", b"new").await.status(), 201);
    assert_eq!(admin.upload("moved/c.nc", b"new").await.status(), 409);
    everything_reads(&app, &admin, c).await;
}

// ------------------------------------------ 2. files and folders apart

fn ls_tree(vault: &Path) -> BTreeSet<String> {
    let out = crate::common::git(vault, &["ls-tree", "-r", "--name-only", "main"]).expect("git");
    assert!(out.status.success(), "ls-tree: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

async fn listed(client: &Client) -> BTreeSet<String> {
    client
        .files()
        .await
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_file_and_a_folder_never_share_a_name() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("parts/bracket.mcam", b"1").await;
    alice.upload_ok("a", b"2").await;
    alice.upload_ok("x/y/z/w.mcam", b"3").await;
    alice.upload_ok("Fixtures/Vise.sldprt", b"4").await;
    let cases: &[(&str, &[&str])] = &[
        ("parts", &["parts/bracket.mcam", "folder named parts"]),
        ("a/b", &["a is a file"]),
        ("a/b/c.mcam", &["a is a file"]),
        ("x/y", &["x/y/z/w.mcam"]),
        ("x", &["x/y/z/w.mcam"]),
        ("x/y/z/w.mcam/q", &["x/y/z/w.mcam is a file"]),
        // Letter case: one file on Windows and macOS clones.
        ("PARTS/BRACKET.MCAM", &["parts/bracket.mcam"]),
        ("Parts/other.mcam", &["parts"]),
        ("parts/Bracket.mcam", &["parts/bracket.mcam"]),
        ("A", &["a"]),
        ("fixtures/vise.sldprt", &["Fixtures/Vise.sldprt"]),
        ("fixtures/new.sldprt", &["Fixtures"]),
        ("X/Y/Z", &["x/y/z"]),
    ];
    for (path, says) in cases {
        let msg = expect_error(alice.upload(path, b"clash").await, 409).await;
        for s in *says {
            assert!(msg.contains(s), "{path}: {msg:?} should mention {s:?}");
        }
    }
    // Names that only share a prefix are no clash.
    alice.upload_ok("parts-old/bracket.mcam", b"5").await;
    alice.upload_ok("ab", b"6").await;
    alice.upload_ok("x/y/z/w.mcam2", b"7").await;
    assert_eq!(ls_tree(&app.vault_path()), listed(&alice).await);
    assert_eq!(listed(&alice).await.len(), 7);
}

// ---------------------------------------- 3. Git's refusals are 4xx

#[tokio::test]
async fn every_path_the_git_layer_would_refuse_is_a_422_with_a_sentence() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let cases = [
        ".git::$INDEX_ALLOCATION/config",
        "parts/.git::$INDEX_ALLOCATION/x.mcam",
        ".GIT:stream/a.mcam",
        "git~1::$INDEX_ALLOCATION/config",
        "GIT~1:x/a.mcam",
        ".git. ./a",
        "parts/.gitmodules",
        ".GITMODULES",
        "gitmod~1",
        "CON/a.mcam",
        "parts/nul.txt",
        "parts/Aux",
        "parts/com1.mcam",
        "parts/lpt9",
        "parts/a:b.mcam",
        "parts/a|b.mcam",
        "parts/what?.mcam",
        "parts/a*b.mcam",
        "parts/<x>.mcam",
        "parts/\"q\".mcam",
    ];
    for path in cases {
        let resp = alice.upload(path, b"x").await;
        let status = resp.status().as_u16();
        let msg = expect_error(resp, 422).await;
        assert!(status == 422 && msg.ends_with('.'), "{path}: {msg}");
    }
    assert!(alice.files().await.is_empty());
    let resp = app
        .anonymous()
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

// --------------------------------- 4. Git's probes are not guesses

fn basic(app: &TestApp, user: &str, password: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(app.url("/vault.git/info/refs"))
        .basic_auth(user, Some(password))
}

#[tokio::test]
async fn an_empty_password_is_a_challenge_not_a_failed_login() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    for _ in 0..12 {
        let resp = basic(&app, "alice", "").send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert!(
            resp.headers().contains_key("www-authenticate"),
            "the 401 carries the challenge"
        );
    }
    let resp = basic(&app, "", "").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // Neither Git nor the web sign-in is throttled afterwards.
    let resp = basic(&app, "alice", USER_PASSWORD).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.login("alice", USER_PASSWORD).await;
}

#[tokio::test]
async fn a_good_login_leaves_no_failures_behind_from_its_address() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let anon = app.anonymous();
    // 8 rounds of 4 typos then the right password: 32 failures from this
    // address in all, past the per-address allowance had they been kept.
    for round in 0..8 {
        for _ in 0..4 {
            let resp = anon
                .post_json(
                    "/api/login",
                    &json!({"username": "alice", "password": "wrong-password"}),
                )
                .await;
            assert_eq!(resp.status(), 401, "round {round}");
        }
        app.login("alice", USER_PASSWORD).await;
    }
}

#[tokio::test]
async fn many_git_clones_and_fetches_as_alice_leave_her_able_to_sign_in() {
    if !crate::common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("parts/a.mcam", b"hello").await;
    let token = {
        let resp = alice
            .post_json("/api/tokens", &json!({"name": "git"}))
            .await;
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let home = GitHome::new();
    let helper = |secret: &str| {
        format!("credential.helper=!f() {{ echo username=alice; echo password={secret}; }}; f")
    };
    let addr = app.addr;
    let mut runs = Vec::new();
    for (i, secret) in [USER_PASSWORD, token.as_str()].iter().enumerate() {
        // The user in the URL, the secret from a credential helper: Git
        // probes without it first.
        for j in 0..4 {
            runs.push(vec![
                "-c".into(),
                helper(secret),
                "clone".into(),
                "-q".into(),
                format!("http://alice@{addr}/vault.git"),
                format!("c-{i}-{j}"),
            ]);
        }
        // And the secret in the URL.
        for j in 0..3 {
            runs.push(vec![
                "clone".into(),
                "-q".into(),
                format!("http://alice:{secret}@{addr}/vault.git"),
                format!("u-{i}-{j}"),
            ]);
        }
    }
    for args in runs {
        let out = home.git(&home.path(""), &args).await;
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (dir, secret) in [
        ("c-0-0", USER_PASSWORD),
        ("c-1-0", token.as_str()),
        ("u-1-0", ""),
    ] {
        let mut args: Vec<String> = Vec::new();
        if !secret.is_empty() {
            args.extend(["-c".into(), helper(secret)]);
        }
        args.extend(["-C".into(), dir.into(), "fetch".into(), "-q".into()]);
        let out = home.git(&home.path(""), &args).await;
        assert!(out.status.success(), "fetch: {out:?}");
    }
    app.login("alice", USER_PASSWORD).await;
}

// ------------------------------- 5. a forced unlock is compare-and-swap

/// The LFS handler reads the lock, then breaks it: a change of holder in
/// between is injected here deterministically, and the break must refuse.
#[tokio::test]
async fn a_forced_unlock_refuses_when_the_holder_changed_since_it_was_read() {
    use latch::domain::{Description, RepoPath, Revision, Role};
    use latch::files::{Actor, NewFile};
    let tmp = tempfile::tempdir().unwrap();
    let mut config = latch::Config::new(tmp.path().join("data"));
    config.admin_password = Some(crate::common::ADMIN_PASSWORD.into());
    let app = latch::open(config).unwrap_or_else(|e| panic!("{e}"));
    // Operations re-read their actor's account: bob and carol must exist.
    for name in ["bob", "carol"] {
        latch::accounts::add_user_offline(
            &app.store,
            latch::accounts::NewUser {
                username: latch::domain::Username::parse(name).unwrap(),
                password: latch::domain::Password::parse(crate::common::USER_PASSWORD).unwrap(),
                role: Role::User,
                display_name: None,
            },
        )
        .unwrap();
    }
    let actor = |name: &str, role| Actor {
        username: name.into(),
        display_name: name.into(),
        role,
    };
    let (admin, bob, carol) = (
        actor("admin", Role::Admin),
        actor("bob", Role::User),
        actor("carol", Role::User),
    );
    let spool = app.files.spool(&b"content"[..]).await.unwrap();
    let new = NewFile {
        path: RepoPath::parse("parts/race.mcam").unwrap(),
        description: Description::parse("").unwrap(),
        revision: Revision::FIRST,
    };
    let id = app.files.upload(&bob, new, spool).await.unwrap().id;
    app.files.checkout(&bob, id, None).await.unwrap();
    // What the LFS handler read: bob's lock.
    let read = app.files.get(id).await.unwrap();
    assert_eq!(read.locked_by(), Some("bob"));
    // Meanwhile bob lets go and carol takes the file.
    app.files.cancel(&bob, id).await.unwrap();
    app.files.checkout(&carol, id, None).await.unwrap();
    let seq = app.store.last_seq().unwrap();
    let err = app
        .files
        .override_lock_held_by(&admin, id, "bob")
        .await
        .expect_err("carol's lock must not be broken in bob's name");
    assert_eq!(err.code(), 409);
    assert!(err.public_message().contains("carol"), "{err}");
    assert_eq!(app.files.get(id).await.unwrap().locked_by(), Some("carol"));
    assert_eq!(app.store.last_seq().unwrap(), seq, "no event");
    // With the holder it names, it breaks that lock.
    let (rec, broken) = app
        .files
        .override_lock_held_by(&admin, id, "carol")
        .await
        .unwrap();
    assert_eq!(rec.locked_by(), None);
    assert_eq!(broken.owner, "carol");
    let (events, _) = app.store.events_after(seq, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].previous_holder.as_deref(), Some("carol"));
}

/// Over HTTP: whatever the interleaving, the unlock's reply and the
/// `overridden` event name the same holder.
#[tokio::test]
async fn a_forced_unlock_racing_a_change_of_holder_reports_the_lock_it_broke() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let http = reqwest::Client::new();
    for round in 0..6 {
        let id = bob.upload_ok(&format!("race/{round}.mcam"), b"x").await;
        assert_eq!(bob.checkout(id, "").await.status(), 200);
        let seq = admin.get_json("/api/activity").await["last_seq"]
            .as_u64()
            .unwrap();
        let unlock = http
            .post(app.url(&format!("/vault.git/info/lfs/locks/{id}/unlock")))
            .basic_auth("admin", Some(crate::common::ADMIN_PASSWORD))
            .header("Content-Type", "application/vnd.git-lfs+json")
            .body(r#"{"force": true}"#)
            .send();
        let hand_over = async {
            bob.cancel(id).await;
            carol.checkout(id, "").await;
        };
        let (reply, ()) = tokio::join!(unlock, hand_over);
        let reply = reply.unwrap();
        let status = reply.status().as_u16();
        let body: Value = reply.json().await.unwrap();
        let events = admin.get_json(&format!("/api/activity?since={seq}")).await["events"]
            .as_array()
            .cloned()
            .unwrap();
        let overridden: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "overridden" && e["file_id"] == id)
            .collect();
        match status {
            200 => {
                assert_eq!(overridden.len(), 1, "{body}");
                assert_eq!(
                    body["lock"]["owner"]["name"], overridden[0]["previous_holder"],
                    "reply and event agree"
                );
            }
            _ => assert!(overridden.is_empty(), "refused, yet overridden: {body}"),
        }
        if admin.file(id).await["lock"].is_object() {
            admin.override_lock(id).await;
        }
    }
}

// --------------------------------- 6. live connections end with the session

#[tokio::test]
async fn live_connections_end_at_the_sessions_absolute_expiry() {
    let app = TestApp::spawn_with(|c| c.session_absolute = Duration::from_secs(3)).await;
    let admin = app.admin().await;
    let mut ws = ws_connect(&app.base, &admin, "").await;
    let mut sse = sse_open(&app.base, &admin, "", &[]).await;
    let (code, ()) = tokio::join!(ws.close_code_within(WAIT), sse.ends_within(WAIT));
    assert_eq!(code, Some(latch::live::CLOSE_SESSION_ENDED));
    assert_eq!(admin.get("/api/me").await.status(), 401);
}

#[tokio::test]
async fn live_connections_end_at_idle_expiry_unless_the_user_is_active() {
    let app = TestApp::spawn_with(|c| c.session_idle = Duration::from_secs(8)).await;
    let admin = app.admin().await;
    let mut ws = ws_connect(&app.base, &admin, "").await;
    // Activity elsewhere (other requests of the same session) keeps it open.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(16) {
        assert_eq!(admin.get("/api/me").await.status(), 200);
        if let WsNext::Closed(code) = ws.next(Duration::from_secs(1)).await {
            panic!("closed while the user was active: {code:?}");
        }
    }
    // The open socket alone is no activity.
    let mut sse = sse_open(&app.base, &admin, "", &[]).await;
    let (code, ()) = tokio::join!(ws.close_code_within(WAIT), sse.ends_within(WAIT));
    assert_eq!(code, Some(latch::live::CLOSE_SESSION_ENDED));
    ws.close().await;
}
