//! Issue 13: a file's history is read from the index of versions (redb),
//! not by walking all of `main`, and the index always equals the walk:
//! after a random mix of uploads, check-ins, moves, change sets and
//! deletes, after a restart, after a crash that left commits only in Git,
//! after a database rebuilt from Git alone, and after the migration that
//! adds the index to a data directory written before it.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{Client, Rng, TestApp, USER_PASSWORD, json_of};
use latch::config::Config;
use latch::files::{Files, LockAging};
use reqwest::multipart::{Form, Part};
use serde_json::json;

/// Every file id that ever existed, and which of them still do.
#[derive(Default)]
struct Ids {
    all: BTreeSet<u64>,
    live: Vec<u64>,
    /// Operations so far: names new paths apart across runs.
    steps: usize,
}

/// Opens the data directory offline as start-up does (database and vault,
/// then reconciliation) and asserts that every file's indexed history
/// equals the one walked from Git, field by field.
async fn assert_index_equals_walk(data: &Path, ids: &Ids) -> usize {
    let config = Config::new(data);
    let store = match latch::store::Store::open(&config.db_path()) {
        Ok(store) => store,
        Err(e) => panic!("open the database: {e}"),
    };
    let vault = latch::vault::Vault::open_or_init(&config.vault_path()).expect("vault");
    let files = Files::new(
        store,
        vault,
        config.spool_dir(),
        config.max_upload,
        config.handoff_window,
        LockAging::of(&config),
    )
    .expect("files");
    files.reconcile().expect("reconcile");
    let mut versions = 0;
    for &id in &ids.all {
        let walked = files.history_walked(id).await.expect("walk");
        if ids.live.contains(&id) {
            let (_, indexed) = files.history(id).await.expect("history");
            assert_eq!(indexed, walked, "file {id}");
            assert!(!indexed.is_empty(), "file {id} has versions");
            versions += indexed.len();
        } else {
            assert!(files.history(id).await.is_err(), "deleted file {id}");
            assert_eq!(walked.first().map(|v| v.action), Some("delete"));
        }
    }
    versions
}

fn checkin_form(message: &str, parts: &[(String, Vec<u8>)]) -> Form {
    let mut form = Form::new()
        .text("message", message.to_string())
        .text("bump", "minor");
    for (path, content) in parts {
        form = form.part("file", Part::bytes(content.clone()).file_name(path.clone()));
    }
    form
}

/// `steps` random operations through the API, by `people` in turn.
async fn random_mix(people: &[Client], rng: &mut Rng, ids: &mut Ids, steps: usize) {
    let admin = &people[0];
    for _ in 0..steps {
        let step = ids.steps;
        ids.steps += 1;
        let who = rng.pick(people);
        let len = 8 + rng.below(32) as usize;
        let content = rng.bytes(len);
        let op = if ids.live.len() < 3 { 0 } else { rng.below(7) };
        match op {
            0 => {
                let id = who.upload_ok(&format!("mix/f{step}.nc"), &content).await;
                ids.all.insert(id);
                ids.live.push(id);
            }
            1 => {
                let form = Form::new()
                    .text("folder", format!("bulk{step}"))
                    .part("file", Part::bytes(content.clone()).file_name("a.nc"))
                    .part("file", Part::bytes(b"other".to_vec()).file_name("b/c.nc"));
                let body = json_of(who.post_form("/api/files/bulk", form).await, 201).await;
                for f in body["files"].as_array().expect("files") {
                    let id = f["id"].as_u64().expect("id");
                    ids.all.insert(id);
                    ids.live.push(id);
                }
            }
            2 | 3 => {
                let id = *rng.pick(&ids.live);
                assert_eq!(who.checkout(id, "mix").await.status(), 200);
                let message = format!("Step {step}\n\nA longer body.");
                assert_eq!(
                    who.checkin(id, &content, &message, "minor").await.status(),
                    200
                );
            }
            4 => {
                let a = *rng.pick(&ids.live);
                let b = *rng.pick(&ids.live);
                if a == b {
                    continue;
                }
                let resp = who
                    .post_json("/api/checkout", &json!({"ids": [a, b], "comment": "set"}))
                    .await;
                json_of(resp, 200).await;
                let mut parts = Vec::new();
                for (id, bytes) in [(a, content.clone()), (b, rng.bytes(12))] {
                    let path = who.file(id).await["path"]
                        .as_str()
                        .expect("path")
                        .to_string();
                    parts.push((path, bytes));
                }
                let form = checkin_form(&format!("Set at step {step}"), &parts);
                json_of(who.post_form("/api/checkin", form).await, 200).await;
            }
            5 => {
                let id = *rng.pick(&ids.live);
                let resp = admin
                    .post_json(
                        &format!("/api/files/{id}/move"),
                        &json!({"path": format!("moved/s{step}/m.nc")}),
                    )
                    .await;
                json_of(resp, 200).await;
            }
            _ => {
                let at = rng.below(ids.live.len() as u64) as usize;
                let id = ids.live.swap_remove(at);
                assert_eq!(
                    admin.delete(&format!("/api/files/{id}")).await.status(),
                    204
                );
            }
        }
    }
}

#[tokio::test]
async fn indexed_history_equals_the_walk_after_a_random_mix_a_restart_and_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut app = TestApp::start(&data, |_| {}).await;
    let mut rng = Rng::new(13);
    let mut ids = Ids::default();
    let people = vec![
        app.admin().await,
        app.user("alice").await,
        app.user("bob").await,
    ];
    random_mix(&people, &mut rng, &mut ids, 60).await;
    // The API answers from the index what the walk finds.
    for &id in &ids.live {
        let api = people[0].history(id).await;
        let vault = latch::vault::Vault::open_or_init(&app.vault_path()).unwrap();
        let walked = vault.log(None, Some(id), 10_000).unwrap();
        let commits: Vec<String> = walked.iter().map(|c| c.id.to_string()).collect();
        let listed: Vec<String> = api
            .iter()
            .map(|v| v["commit"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, commits, "file {id}");
    }
    app.stop().await;
    let first = assert_index_equals_walk(&data, &ids).await;
    assert!(first > ids.live.len(), "some files have several versions");

    // After a restart, more of the same.
    let mut app = TestApp::start(&data, |_| {}).await;
    let people = vec![
        app.admin().await,
        app.login("alice", USER_PASSWORD).await,
        app.login("bob", USER_PASSWORD).await,
    ];
    random_mix(&people, &mut rng, &mut ids, 30).await;
    app.stop().await;
    assert_index_equals_walk(&data, &ids).await;

    // A crash after Git's commit, before the database's: reconciliation
    // indexes the commit the database missed.
    {
        use latch::domain::RepoPath;
        use latch::vault::{Action, Author, Change, Trailers, Vault};
        let vault = Vault::open_or_init(&data.join("vault.git")).unwrap();
        let id = ids.live[0];
        let walked = vault.log(None, Some(id), 1).unwrap();
        let path = walked[0].of_file(id).unwrap().path.clone();
        let path = RepoPath::from_stored(path.as_str());
        let blob = vault.write_blob(&mut &b"crashed"[..], 7).unwrap();
        vault
            .commit(
                &[Change::Put { path: &path, blob }],
                &Author {
                    username: "admin",
                    display_name: "Administrator",
                },
                "Committed before a crash",
                &[Trailers {
                    action: Action::CheckIn,
                    file_id: id,
                    path: path.clone(),
                    from: None,
                    revision: Some("9.0".into()),
                    user: "admin".into(),
                }],
            )
            .unwrap();
    }
    assert_index_equals_walk(&data, &ids).await;

    // A database lost whole: rebuilt from Git's trailers alone, index too.
    let before = assert_index_equals_walk(&data, &ids).await;
    std::fs::remove_file(data.join("latch.redb")).unwrap();
    assert_eq!(assert_index_equals_walk(&data, &ids).await, before);

    // A data directory from before schema 5 (no index): the migration
    // and the start-up reconciliation build it from Git.
    {
        let db = redb::Database::create(data.join("latch.redb")).unwrap();
        let w = db.begin_write().unwrap();
        assert!(w.delete_table(latch::store::VERSIONS).unwrap());
        let mut meta = w.open_table(latch::store::META).unwrap();
        meta.insert("schema_version", "4").unwrap();
        meta.remove(latch::files::versions::INDEXED).unwrap();
        drop(meta);
        w.commit().unwrap();
    }
    assert_eq!(assert_index_equals_walk(&data, &ids).await, before);
    let db = redb::Database::create(data.join("latch.redb")).unwrap();
    assert_eq!(
        latch::schema::version(&db).unwrap(),
        Some(latch::schema::CURRENT)
    );
    drop(db);

    // And served as before, old versions included.
    let mut app = TestApp::start(&data, |_| {}).await;
    let admin = app.admin().await;
    for &id in ids.live.iter().take(5) {
        let history = admin.history(id).await;
        let oldest = history.last().unwrap()["commit"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(!admin.content(id, Some(&oldest)).await.is_empty());
    }
    app.stop().await;
}
