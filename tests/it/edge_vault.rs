//! Regression tests for the vault's edges found by the attack report:
//! an actor who lost their account or role mid-request (F11), objects a
//! refused write leaves in vault.git (F8), Git configuration files as
//! paths (F4/F7), invisible and bidi characters (F12), sequence numbers
//! at the top of u64 and unreadable resume points (F6), and names equal
//! but for Unicode normalisation (F3).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Client, TestApp, expect_error};
use futures_util::StreamExt;
use latch::domain::{Description, Password, RepoPath, Revision, Role, Username};
use latch::files::{Actor, NewFile, NewVersion};
use serde_json::json;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);

// ------------------------------------------------------------ helpers

/// Every loose object in the vault (`objects/xx/…`), by id.
fn loose_objects(vault: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(dirs) = std::fs::read_dir(vault.join("objects")) else {
        return out;
    };
    for dir in dirs.flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        if name.len() != 2 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        for obj in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            out.insert(format!("{name}{}", obj.file_name().to_string_lossy()));
        }
    }
    out
}

/// Every file anywhere under `objects/` that is not a loose object or a
/// pack: leftovers of a quarantine or a temporary write.
fn stray_files(vault: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let objects = vault.join("objects");
    let mut all = Vec::new();
    walk(&objects, &mut all);
    all.retain(|p| {
        let rel = p.strip_prefix(&objects).unwrap_or(p);
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let loose = parts.len() == 2
            && parts[0].len() == 2
            && parts[1].len() == 38
            && parts
                .iter()
                .all(|s| s.bytes().all(|b| b.is_ascii_hexdigit()));
        !(loose || parts.first().is_some_and(|p| p == "pack" || p == "info"))
    });
    all
}

/// `git fsck --unreachable` of the vault: objects nothing refers to.
fn unreachable(vault: &Path) -> Vec<String> {
    if !crate::common::have_tool("git", "git") {
        return Vec::new();
    }
    let out = crate::common::git(
        vault,
        &["fsck", "--unreachable", "--no-reflogs", "--no-progress"],
    )
    .expect("git fsck");
    assert!(out.status.success(), "git fsck: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("unreachable"))
        .map(str::to_string)
        .collect()
}

fn commits_on_main(vault: &Path) -> usize {
    let out = crate::common::git(vault, &["rev-list", "--count", "main"]).expect("git rev-list");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A multipart request whose file part is held open until the test says:
/// the body is fed from a channel, so the server is mid-request for as
/// long as the test wants.
struct Paused {
    feed: mpsc::Sender<Vec<u8>>,
    reply: tokio::task::JoinHandle<(u16, String)>,
}

const BOUNDARY: &str = "latch-edge-vault-boundary";

fn start_paused(
    client: &Client,
    path: &str,
    fields: &[(&str, &str)],
    first: &[u8],
    bearer: Option<&str>,
) -> Paused {
    let mut head = String::new();
    for (name, value) in fields {
        head.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    head.push_str(&format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ));
    let mut opening = head.into_bytes();
    opening.extend_from_slice(first);
    let (feed, rx) = mpsc::channel::<Vec<u8>>(4);
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(opening) }).chain(
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok(chunk), rx))
        }),
    );
    let mut rb = match bearer {
        // A token: the API authenticates it once, at the head.
        Some(token) => reqwest::Client::new()
            .post(client.url(path))
            .bearer_auth(token),
        None => {
            let rb = client.http.post(client.url(path));
            match &client.csrf {
                Some(csrf) => rb.header("X-CSRF-Token", csrf),
                None => rb,
            }
        }
    };
    rb = rb
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(reqwest::Body::wrap_stream(stream));
    let reply = tokio::spawn(async move {
        let resp = rb.send().await.expect("paused request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    });
    Paused { feed, reply }
}

impl Paused {
    /// Sends the rest of the file and the closing boundary; returns the reply.
    async fn finish(self, rest: &[u8]) -> (u16, String) {
        let mut tail = rest.to_vec();
        tail.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        self.feed.send(tail).await.expect("feed the body");
        drop(self.feed);
        tokio::time::timeout(WAIT, self.reply)
            .await
            .expect("the server answers")
            .expect("request task")
    }
}

/// Waits until `n` uploads are streaming into the spool: their heads were
/// read and authenticated, and their file parts have begun.
async fn wait_spooling(app: &TestApp, n: usize) {
    let spool = app.data_dir.join("spool");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let count = std::fs::read_dir(&spool)
            .map(|d| d.flatten().count())
            .unwrap_or(0);
        if count >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} uploads never reached the spool ({count} did)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Distinct content of `len` bytes (no two seeds alike).
fn content(seed: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32 ^ u32::from(seed).wrapping_mul(0x85eb_ca6b);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect()
}

// ------------------------------------------- F11: the actor, re-checked

#[tokio::test]
async fn a_user_disabled_while_their_check_in_streams_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let token = bob
        .post_json("/api/tokens", &json!({"name": "late"}))
        .await
        .json::<serde_json::Value>()
        .await
        .expect("token json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let id = bob.upload_ok("late/t.txt", b"v1").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let vault = app.vault_path();
    let commits = commits_on_main(&vault);
    let seq = admin.get_json("/api/activity").await["last_seq"].clone();

    for bearer in [Some(token.as_str()), None] {
        // Disabling ended bob's sessions: each round signs in afresh.
        let bob = app.login("bob", crate::common::USER_PASSWORD).await;
        let paused = start_paused(
            &bob,
            &format!("/api/files/{id}/checkin"),
            &[("message", "sneaky"), ("bump", "minor")],
            b"evil content ",
            bearer,
        );
        wait_spooling(&app, 1).await;
        let resp = admin
            .patch_json("/api/users/bob", &json!({"disabled": true}))
            .await;
        assert_eq!(resp.status(), 200, "disable bob");
        let (status, body) = paused.finish(b"after disable").await;
        assert_eq!(status, 403, "check-in by a disabled user: {body}");
        assert!(body.contains("error"), "a sentence: {body}");
        let file = admin.file(id).await;
        assert_eq!(file["revision"], "1.0", "revision unchanged");
        assert_eq!(commits_on_main(&vault), commits, "no commit on main");
        assert_eq!(
            admin.get_json("/api/activity").await["last_seq"],
            seq,
            "no event"
        );
        // Enabled again for the session-cookie round (a new session).
        let resp = admin
            .patch_json("/api/users/bob", &json!({"disabled": false}))
            .await;
        assert_eq!(resp.status(), 200);
    }
}

/// Every operation re-reads its actor inside the write transaction: one
/// that no longer exists, is disabled, or lost the admin role it needs is
/// refused with 403 and nothing changes.
#[tokio::test]
async fn every_operation_rechecks_the_actor_inside_its_transaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = latch::Config::new(tmp.path().join("data"));
    config.admin_password = Some(crate::common::ADMIN_PASSWORD.into());
    let app = latch::open(config).unwrap_or_else(|e| panic!("{e}"));
    let make = |name: &str, role| {
        latch::accounts::add_user_offline(
            &app.store,
            latch::accounts::NewUser {
                username: Username::parse(name).unwrap(),
                password: Password::parse(crate::common::USER_PASSWORD).unwrap(),
                role,
                display_name: None,
            },
        )
        .unwrap();
    };
    make("alice", Role::User);
    make("boss", Role::Admin);
    let actor = |name: &str, role| Actor {
        username: name.into(),
        display_name: name.into(),
        role,
    };
    let (alice, boss, ghost) = (
        actor("alice", Role::User),
        actor("boss", Role::Admin),
        actor("ghost", Role::User),
    );
    let new = |path: &str| NewFile {
        path: RepoPath::parse(path).unwrap(),
        description: Description::parse("").unwrap(),
        revision: Revision::FIRST,
    };
    let version = || NewVersion {
        message: latch::domain::CommitMessage::parse("new").unwrap(),
        bump: latch::domain::Bump::Minor,
        keep: false,
    };
    let spool = |bytes: &'static [u8]| app.files.spool(bytes);
    let id = app
        .files
        .upload(&alice, new("a/one.mcam"), spool(b"one").await.unwrap())
        .await
        .unwrap()
        .id;
    let other = app
        .files
        .upload(&alice, new("a/two.mcam"), spool(b"two").await.unwrap())
        .await
        .unwrap()
        .id;
    app.files.checkout(&alice, id, None).await.unwrap();
    let seq = app.store.last_seq().unwrap();
    let head = app.files.vault().head().unwrap();

    // Nobody by that name (removed, or never there).
    let err = app
        .files
        .upload(&ghost, new("a/ghost.mcam"), spool(b"g").await.unwrap())
        .await
        .expect_err("an unknown actor uploads nothing");
    assert_eq!(err.code(), 403, "{err}");
    let err = app.files.checkout(&ghost, other, None).await.unwrap_err();
    assert_eq!(err.code(), 403, "{err}");

    // Alice disabled: none of her operations go through.
    app.accounts
        .update_user(
            "alice".into(),
            latch::accounts::UserPatch {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = app
        .files
        .upload(&alice, new("a/three.mcam"), spool(b"3").await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), 403, "upload: {err}");
    let err = app.files.checkout(&alice, other, None).await.unwrap_err();
    assert_eq!(err.code(), 403, "checkout: {err}");
    let err = app.files.cancel(&alice, id).await.unwrap_err();
    assert_eq!(err.code(), 403, "cancel: {err}");
    let err = app
        .files
        .checkin(&alice, id, version(), spool(b"one, v2").await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.code(), 403, "checkin: {err}");
    assert!(err.public_message().ends_with('.'), "{err}");

    // Boss demoted to a user after the request was authenticated as admin.
    app.accounts
        .update_user(
            "boss".into(),
            latch::accounts::UserPatch {
                role: Some(Role::User),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = app.files.override_lock(&boss, id).await.unwrap_err();
    assert_eq!(err.code(), 403, "override: {err}");
    let err = app
        .files
        .override_lock_held_by(&boss, id, "alice")
        .await
        .unwrap_err();
    assert_eq!(err.code(), 403, "override (CAS): {err}");
    let err = app.files.delete(&boss, other).await.unwrap_err();
    assert_eq!(err.code(), 403, "delete: {err}");

    assert_eq!(app.store.last_seq().unwrap(), seq, "no event");
    assert_eq!(app.files.vault().head().unwrap(), head, "no commit");
    assert_eq!(
        app.files.get(id).await.unwrap().locked_by(),
        Some("alice"),
        "the lock is as it was"
    );
    assert!(app.files.get(other).await.is_ok(), "nothing deleted");
}

// --------------------------------- F8: objects only with their commit

/// A check-in refused inside the write transaction (the revision cannot
/// take the bump) used to leave its whole upload as an unreachable blob.
#[tokio::test]
async fn a_check_in_refused_in_the_transaction_leaves_no_object() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let form = reqwest::multipart::Form::new()
        .text("path", "top/rev.mcam")
        .text("revision", "1.999999")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"first".to_vec()).file_name("x"),
        );
    let resp = alice.post_form("/api/files", form).await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let vault = app.vault_path();
    let before = loose_objects(&vault);
    let resp = alice
        .checkin(id, &content(7, 300_000), "one more", "minor")
        .await;
    expect_error(resp, 422).await;
    assert_eq!(loose_objects(&vault), before, "no object was added");
    assert_eq!(unreachable(&vault), Vec::<String>::new());
    assert_eq!(stray_files(&vault), Vec::<PathBuf>::new());
}

/// The lock cancelled while the check-in body streams: 409, nothing kept.
#[tokio::test]
async fn a_check_in_whose_lock_was_cancelled_midway_leaves_no_object() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("orph/t.bin", b"abc").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let vault = app.vault_path();
    let before = loose_objects(&vault);
    let paused = start_paused(
        &alice,
        &format!("/api/files/{id}/checkin"),
        &[("message", "m")],
        &content(1, 1000),
        None,
    );
    wait_spooling(&app, 1).await;
    assert_eq!(alice.cancel(id).await.status(), 200);
    let (status, body) = paused.finish(&content(2, 500_000)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(loose_objects(&vault), before, "no object was added");
    assert_eq!(unreachable(&vault), Vec::<String>::new());
    assert_eq!(stray_files(&vault), Vec::<PathBuf>::new());
}

/// Four uploads racing to one new path: one wins, the rest hear 409, and
/// the vault gains exactly the winner's blob, trees and commit.
#[tokio::test]
async fn racing_uploads_to_one_path_leave_only_the_winners_objects() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("seed/x.bin", b"seed").await;
    let vault = app.vault_path();
    for (round, identical) in [(0u8, false), (1, true)] {
        let before = loose_objects(&vault);
        let commits = commits_on_main(&vault);
        let path = format!("race{round}/part.bin");
        let paused: Vec<SeededPaused> = (0..4u8)
            .map(|i| {
                start_paused(&alice, "/api/files", &[("path", path.as_str())], b"x", None)
                    .with_seed(if identical { 100 } else { i })
            })
            .collect();
        wait_spooling(&app, 4).await;
        let replies =
            futures_util::future::join_all(paused.into_iter().map(|p| p.finish_seeded())).await;
        let mut statuses: Vec<u16> = replies.iter().map(|(s, _)| *s).collect();
        statuses.sort();
        assert_eq!(statuses, vec![201, 409, 409, 409], "{replies:?}");
        let added: Vec<String> = loose_objects(&vault).difference(&before).cloned().collect();
        // The blob, the file's tree, the new folder's tree... and the commit:
        // never more than one blob.
        assert_eq!(commits_on_main(&vault), commits + 1);
        assert_eq!(unreachable(&vault), Vec::<String>::new(), "round {round}");
        assert_eq!(
            added.len(),
            4,
            "round {round}: blob + 2 trees + commit, got {added:?}"
        );
        assert_eq!(stray_files(&vault), Vec::<PathBuf>::new());
        let files = alice.files().await;
        let won = files
            .iter()
            .find(|f| f["path"] == path.as_str())
            .expect("the winner's file");
        let got = alice.content(won["id"].as_u64().unwrap(), None).await;
        assert_eq!(got.len(), 1 + 400_000, "the winner's object is whole");
    }
}

/// Identical content to two new paths at once: both work, one object.
#[tokio::test]
async fn identical_uploads_at_once_share_one_object_and_both_read_back() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let body = content(9, 200_000);
    let (a, b) = tokio::join!(alice.upload("same/a.bin", &body), async {
        alice.upload("same/b.bin", &body).await
    });
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    for f in alice.files().await {
        assert_eq!(alice.content(f["id"].as_u64().unwrap(), None).await, body);
    }
    assert_eq!(unreachable(&app.vault_path()), Vec::<String>::new());
}

impl Paused {
    /// Remembers which content `finish_seeded` sends.
    fn with_seed(self, seed: u8) -> SeededPaused {
        SeededPaused { paused: self, seed }
    }
}

struct SeededPaused {
    paused: Paused,
    seed: u8,
}

impl SeededPaused {
    async fn finish_seeded(self) -> (u16, String) {
        self.paused.finish(&content(self.seed, 400_000)).await
    }
}

/// Quarantined uploads a crash left are removed at the next start, and a
/// clone sees exactly the committed objects.
#[tokio::test]
async fn quarantine_leftovers_are_removed_at_start_and_clones_work() {
    let mut app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("c/one.bin", &content(3, 50_000)).await;
    let vault = app.vault_path();
    app.stop().await;
    // What a killed process leaves: a half-written quarantined object.
    let dir = vault.join("objects").join("incoming-latch");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".tmp-leftover"), b"half an object").unwrap();
    app.restart().await;
    assert_eq!(stray_files(&vault), Vec::<PathBuf>::new());
    let alice = app.login("alice", crate::common::USER_PASSWORD).await;
    assert_eq!(alice.content(id, None).await, content(3, 50_000));
    if crate::common::have_tool("git", "git") {
        let out = crate::common::git(&vault, &["fsck", "--no-progress"]).expect("fsck");
        assert!(out.status.success(), "fsck: {out:?}");
    }
}

// ------------------------------------- F4/F7: Git configuration files

#[tokio::test]
async fn git_and_lfs_configuration_files_cannot_be_uploaded() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    for path in [
        ".gitattributes",
        "a/.gitattributes",
        "a/.GitAttributes",
        ".gitattributes .",
        "gitatt~1",
        "GI7D29~1",
        ".gitmodules",
        "x/.GITMODULES",
        ".lfsconfig",
        "a/b/.LfsConfig",
        "lfscon~1",
    ] {
        let message = expect_error(alice.upload(path, b"* text eol=crlf\n").await, 422).await;
        assert!(message.ends_with('.'), "{path}: {message}");
    }
    // Harmless to a clone's bytes: kept allowed.
    alice.upload_ok(".gitignore", b"*.bak\n").await;
    alice.upload_ok("a/gitattributes.txt", b"notes\n").await;
}

// ---------------------------------------- F12: invisible and bidi text

#[tokio::test]
async fn invisible_and_bidi_characters_are_refused_everywhere_they_spoof() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    for ch in [
        '\u{00ad}',
        '\u{034f}',
        '\u{180e}',
        '\u{3164}',
        '\u{ffa0}',
        '\u{e0020}',
        '\u{fe0f}',
        '\u{061c}',
        '\u{fff9}',
        '\u{2800}',
        '\u{202e}',
        '\u{2066}',
        '\u{200e}',
    ] {
        let path = format!("spoof/bra{ch}cket.mcam");
        let message = expect_error(alice.upload(&path, b"x").await, 422).await;
        assert!(message.contains("U+"), "names the character: {message}");
    }
    let resp = admin
        .post_json(
            "/api/users",
            &json!({"username": "mallory", "password": "password-123", "role": "user",
                    "display_name": "\u{202e}evil\u{202c} name"}),
        )
        .await;
    expect_error(resp, 422).await;
    let resp = alice
        .post_json("/api/tokens", &json!({"name": "ci\u{2067}x"}))
        .await;
    expect_error(resp, 422).await;
    let id = alice.upload_ok("ok/part.mcam", b"x").await;
    expect_error(alice.checkout(id, "mine \u{202d}x").await, 422).await;
    assert_eq!(alice.checkout(id, "mine").await.status(), 200);
    expect_error(
        alice
            .checkin(id, b"y", "fix \u{2068}x\u{2069}", "minor")
            .await,
        422,
    )
    .await;
    // A lone direction mark is fine in free text (Arabic and Hebrew need it).
    assert_eq!(
        alice
            .checkin(id, b"y", "fix \u{200f}x", "minor")
            .await
            .status(),
        200
    );
}

// --------------------------------- F6: sequence numbers at the top

#[tokio::test]
async fn events_after_the_largest_sequence_are_none() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = latch::Config::new(tmp.path().join("data"));
    config.admin_password = Some(crate::common::ADMIN_PASSWORD.into());
    let app = latch::open(config).unwrap_or_else(|e| panic!("{e}"));
    latch::accounts::add_user_offline(
        &app.store,
        latch::accounts::NewUser {
            username: Username::parse("alice").unwrap(),
            password: Password::parse(crate::common::USER_PASSWORD).unwrap(),
            role: Role::User,
            display_name: None,
        },
    )
    .unwrap();
    let alice = Actor {
        username: "alice".into(),
        display_name: "alice".into(),
        role: Role::User,
    };
    let spool = app.files.spool(&b"x"[..]).await.unwrap();
    let new = NewFile {
        path: RepoPath::parse("a.mcam").unwrap(),
        description: Description::parse("").unwrap(),
        revision: Revision::FIRST,
    };
    app.files.upload(&alice, new, spool).await.unwrap();
    for after in [u64::MAX, u64::MAX - 1] {
        let (events, complete) = app.store.events_after(after, 1000).unwrap();
        assert!(events.is_empty(), "after {after}: {}", events.len());
        assert!(complete, "after {after}: nothing is missing after it");
    }
}

#[tokio::test]
async fn an_unreadable_resume_point_gets_a_full_resync() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("a/one.nc", b"1").await;
    let top = u64::MAX.to_string();
    for query in ["abc", "-1", "1e3", "18446744073709551616", top.as_str()] {
        let resp = alice
            .http
            .get(alice.url(&format!("/events?last_event_id={query}")))
            .send()
            .await
            .expect("GET /events");
        assert_eq!(resp.status(), 200, "{query}");
        let mut body = resp.bytes_stream();
        let mut seen = String::new();
        // Generous: on the fixed code the resync is the first thing sent.
        let found = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(Ok(chunk)) = body.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains("event: resync") {
                    return true;
                }
                if seen.contains("\nevent: ") || seen.starts_with("event: ") {
                    return false;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "{query}: {seen}");
    }
}

// ------------------------------------------ F3: Unicode normalisation

#[tokio::test]
async fn names_equal_but_for_unicode_normalisation_clash() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("parts/caf\u{e9}.txt", b"a").await;
    let message = expect_error(alice.upload("parts/cafe\u{301}.txt", b"b").await, 409).await;
    assert!(message.contains("caf\u{e9}.txt"), "{message}");
    alice.upload_ok("cafe\u{301}/x.txt", b"a").await;
    expect_error(alice.upload("CAF\u{c9}/y.txt", b"b").await, 409).await;
}
