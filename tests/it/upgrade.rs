//! Upgrades keep everything: every data directory under `tests/fixtures/`
//! (each written by a released Latch with `scripts/make_fixture.py`) opens
//! with this binary, and everything the old release answered is still
//! answered the same — users, passwords, tokens, files, revisions, locks,
//! comments, events, history, old versions byte for byte, LFS locks and a
//! fresh `git clone`; a change made after the upgrade survives a restart; a
//! backup of it opens the same way; and a database from a newer Latch is
//! refused untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::binary::{Server, latch};
use crate::common::git::{GitHome, vault_url};
use crate::common::{ADMIN_PASSWORD, free_port, have_tool};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("data.tar.gz").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures under {}", root.display());
    dirs
}

fn unpack(fixture: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).expect("dir");
    let out = Command::new("tar")
        .arg("xzf")
        .arg(fixture.join("data.tar.gz"))
        .arg("-C")
        .arg(into)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {out:?}");
    into.join("data")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn schema_version(data: &Path) -> Option<u32> {
    let db = redb::Database::create(data.join("latch.redb")).expect("open the database");
    latch::schema::version(&db).expect("read the schema version")
}

/// `now` answers everything `then` did: the same values under every key the
/// old release sent (a later release may add keys, never drop or change one).
#[track_caller]
fn assert_keeps(now: &Value, then: &Value, at: &str) {
    match (now, then) {
        (Value::Object(now), Value::Object(then)) => {
            for (key, old) in then {
                let new = now.get(key).unwrap_or_else(|| panic!("{at}.{key} is gone"));
                assert_keeps(new, old, &format!("{at}.{key}"));
            }
        }
        (Value::Array(now), Value::Array(then)) => {
            assert_eq!(now.len(), then.len(), "{at}: length");
            for (i, (new, old)) in now.iter().zip(then).enumerate() {
                assert_keeps(new, old, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(now, then, "{at}"),
    }
}

/// `latch backup TO --data FROM`, offline.
fn latch_backup(from: &Path, to: impl AsRef<Path>) -> std::process::Output {
    latch()
        .arg("backup")
        .arg(to.as_ref())
        .arg("--data")
        .arg(from)
        .output()
        .expect("run latch backup")
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            base: server.base.clone(),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, auth: &Auth<'_>) -> reqwest::Response {
        auth.apply(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("GET")
    }

    async fn json(&self, path: &str, auth: &Auth<'_>) -> Value {
        let resp = self.get(path, auth).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("JSON")
    }
}

enum Auth<'a> {
    Basic(&'a str, &'a str),
    Bearer(&'a str),
    Cookie(&'a str),
}

impl Auth<'_> {
    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Cookie(c) => req.header("Cookie", *c),
        }
    }
}

/// Everything the old release answered, asked again of this one.
async fn check_everything_is_there(api: &Api, expected: &Value, scratch: &Path) {
    let admin = Auth::Basic("admin", "admin-password-1");

    // Every account, with its role and display name; every password.
    assert_keeps(
        &api.json("/api/users", &admin).await,
        &expected["users_list"],
        "users",
    );
    for user in expected["users"].as_array().expect("users") {
        let name = user["username"].as_str().expect("username");
        let resp = api
            .http
            .post(format!("{}/api/login", api.base))
            .json(&json!({"username": name, "password": user["password"]}))
            .send()
            .await
            .expect("login");
        if user["disabled"] == json!(true) {
            assert!(
                matches!(resp.status().as_u16(), 401 | 403),
                "disabled {name} signed in: {}",
                resp.status()
            );
        } else {
            assert_eq!(resp.status(), 200, "{name} signs in with the old password");
            let body: Value = resp.json().await.expect("JSON");
            assert_eq!(body["role"], user["role"], "{name}'s role");
        }
    }
    // Every API token still works, as Bearer and as a Basic password; a revoked one does not.
    for token in expected["tokens"].as_array().expect("tokens") {
        let (name, secret) = (
            token["username"].as_str().expect("username"),
            token["token"].as_str().expect("token"),
        );
        let me = api.json("/api/me", &Auth::Bearer(secret)).await;
        assert_eq!(me["username"], name);
        let me = api.json("/api/me", &Auth::Basic(name, secret)).await;
        assert_eq!(me["username"], name);
    }
    let revoked = expected["revoked_token"].as_str().expect("revoked");
    assert_eq!(
        api.get("/api/me", &Auth::Bearer(revoked)).await.status(),
        401
    );
    // The session was written days ago: it is read back and honoured or
    // refused by its expiry, never a server error.
    let cookie = expected["session"]["cookie"].as_str().expect("cookie");
    let status = api.get("/api/me", &Auth::Cookie(cookie)).await.status();
    assert!(
        matches!(status.as_u16(), 200 | 401),
        "old session: {status}"
    );

    // Files, revisions, locks and their comments; history; events.
    assert_keeps(
        &api.json("/api/files", &admin).await["files"],
        &expected["files"],
        "files",
    );
    for (id, history) in expected["histories"].as_object().expect("histories") {
        let now = api.json(&format!("/api/files/{id}/history"), &admin).await;
        assert_keeps(&now["versions"], history, &format!("history of {id}"));
    }
    assert_keeps(
        &api.json("/api/activity?since=0", &admin).await,
        &expected["activity"],
        "activity",
    );
    for gone in expected["deleted"].as_array().expect("deleted") {
        let status = api
            .get(&format!("/api/files/{}", gone["id"]), &admin)
            .await
            .status();
        assert_eq!(status, 404, "deleted file {gone}");
    }
    // Every version, byte for byte.
    for version in expected["versions"].as_array().expect("versions") {
        let path = format!(
            "/api/files/{}/content?rev={}",
            version["file_id"],
            version["commit"].as_str().expect("commit")
        );
        let resp = api.get(&path, &admin).await;
        assert_eq!(resp.status(), 200, "{path}");
        let bytes = resp.bytes().await.expect("body");
        assert_eq!(sha256(&bytes), version["sha256"], "{path}");
    }

    // The dashboard shows every card in its state.
    let html = dashboard_with_session(api).await;
    for file in expected["files"].as_array().expect("files") {
        let card = format!("id=\"file-{}\"", file["id"]);
        let at = html.find(&card).unwrap_or_else(|| panic!("no card {card}"));
        let tag = &html[at..at + html[at..].find('>').expect("tag end")];
        let state = if file["lock"].is_null() {
            "available"
        } else {
            "locked"
        };
        assert!(tag.contains(&format!("data-state=\"{state}\"")), "{tag}");
        if let Some(owner) = file["lock"]["owner"].as_str() {
            assert!(
                tag.contains(&format!("data-locked-by=\"{owner}\"")),
                "{tag}"
            );
        }
    }

    // LFS sees the same locks.
    let bob_token = expected["tokens"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["username"] == "bob"))
        .and_then(|t| t["token"].as_str())
        .expect("bob's token");
    let locks: Value = api
        .http
        .get(format!("{}/vault.git/info/lfs/locks", api.base))
        .basic_auth("bob", Some(bob_token))
        .header("Accept", "application/vnd.git-lfs+json")
        .send()
        .await
        .expect("LFS locks")
        .json()
        .await
        .expect("LFS JSON");
    let mut lfs: Vec<(String, String)> = locks["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .map(|l| {
            let path = l["path"].as_str().unwrap_or_default().to_string();
            (
                path,
                l["owner"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    lfs.sort();
    let mut held: Vec<(String, String)> = expected["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| {
            let owner = f["lock"]["owner"].as_str()?;
            Some((f["path"].as_str()?.to_string(), owner.to_string()))
        })
        .collect();
    held.sort();
    assert_eq!(lfs, held, "LFS locks");

    // A fresh clone holds every current version.
    let clone = scratch.join("clone");
    let url = vault_url(&api.base, "bob", bob_token);
    let home = GitHome::new();
    home.git_ok(
        &home.path(""),
        &["clone", "-q", &url, clone.to_str().expect("path")],
    )
    .await;
    for file in expected["files"].as_array().expect("files") {
        let path = file["path"].as_str().expect("path");
        let bytes = std::fs::read(clone.join(path)).expect("file in the clone");
        let head = file["head"].as_str().expect("head");
        let want = expected["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["commit"] == head))
            .map(|v| v["sha256"].clone())
            .expect("the head version");
        assert_eq!(json!(sha256(&bytes)), want, "{path} in the clone");
    }
}

async fn dashboard_with_session(api: &Api) -> String {
    let resp = api
        .http
        .post(format!("{}/api/login", api.base))
        .json(&json!({"username": "admin", "password": "admin-password-1"}))
        .send()
        .await
        .expect("login");
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let page = api.get("/", &Auth::Cookie(&cookie)).await;
    assert_eq!(page.status(), 200, "dashboard");
    page.text().await.expect("page")
}

/// A check-in by the holder of an old lock, after the upgrade.
/// The network drive (schema 6) opens on an upgraded directory: every
/// file the old release had is there, and a held one shows its holder.
async fn check_the_drive_shows_the_files(api: &Api, expected: &Value) {
    for f in expected["files"].as_array().expect("files") {
        let path = f["path"].as_str().unwrap();
        let url: Vec<String> = path
            .split('/')
            .map(|p| {
                percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect();
        let resp = api
            .http
            .request(
                reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
                format!("{}/dav/{}", api.base, url.join("/")),
            )
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .header("Depth", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 207, "{path}");
        let listing = resp.text().await.unwrap();
        if let Some(owner) = f["lock"]["owner"].as_str() {
            let shown = format!("checked out by {owner}");
            assert!(listing.contains(&shown), "{path}: {listing}");
        }
    }
}

async fn check_in_after_upgrade(api: &Api, expected: &Value) -> Value {
    let file = expected["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["lock"]["owner"] == "bob"))
        .expect("a file bob holds");
    let form = reqwest::multipart::Form::new()
        .text("message", "First change after the upgrade")
        .text("bump", "minor")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"after the upgrade\n".to_vec()).file_name("x"),
        );
    let resp = api
        .http
        .post(format!("{}/api/files/{}/checkin", api.base, file["id"]))
        .basic_auth("bob", Some("bob-password-1"))
        .multipart(form)
        .send()
        .await
        .expect("check in");
    assert_eq!(resp.status(), 200, "check-in after the upgrade");
    let now: Value = resp.json().await.expect("JSON");
    assert!(now["lock"].is_null());
    assert_ne!(now["revision"], file["revision"]);
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_opens_with_everything_in_it() {
    if !binary_tools_present() {
        return;
    }
    for fixture in fixtures() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let expected: Value = serde_json::from_slice(
            &std::fs::read(fixture.join("expected.json")).expect("expected.json"),
        )
        .expect("expected.json parses");
        let data = unpack(&fixture, tmp.path());
        let log = tmp.path().join("latch.log");
        assert!(schema_version(&data) <= Some(latch::schema::CURRENT));

        // First start of this Latch on the old data directory.
        let mut server = Server::start(&data, &log).await;
        let api = Api::new(&server);
        check_everything_is_there(&api, &expected, tmp.path()).await;
        check_the_drive_shows_the_files(&api, &expected).await;
        let changed = check_in_after_upgrade(&api, &expected).await;
        server.stop().await;
        assert_eq!(schema_version(&data), Some(latch::schema::CURRENT));

        // The change survives a restart, and nothing else moved.
        let server = Server::start(&data, &log).await;
        let api = Api::new(&server);
        let admin = Auth::Basic("admin", "admin-password-1");
        let after = api
            .json(&format!("/api/files/{}", changed["id"]), &admin)
            .await;
        assert_eq!(after, changed);
        let activity = api.json("/api/activity?since=0", &admin).await;
        assert_eq!(
            activity["last_seq"].as_u64(),
            expected["activity"]["last_seq"].as_u64().map(|s| s + 1)
        );
        let files = api.json("/api/files", &admin).await;
        drop(server);

        // A backup of the upgraded directory is a data directory like any other.
        let copy = tmp.path().join("backup");
        let out = latch_backup(&data, &copy);
        assert!(out.status.success(), "latch backup: {out:?}");
        let server = Server::start(&copy, &log).await;
        let api = Api::new(&server);
        assert_eq!(api.json("/api/files", &admin).await, files);
        drop(server);

        // A backup taken of the untouched old directory with this Latch
        // leaves that directory as it was, and opens the same way.
        let pristine = unpack(&fixture, &tmp.path().join("pristine"));
        let before = schema_version(&pristine);
        let copy = tmp.path().join("backup-of-old");
        let out = latch_backup(&pristine, &copy);
        assert!(out.status.success(), "latch backup: {out:?}");
        assert_eq!(
            schema_version(&pristine),
            before,
            "backup changed its source"
        );
        let server = Server::start(&copy, &log).await;
        let api = Api::new(&server);
        check_everything_is_there(&api, &expected, &tmp.path().join("b")).await;
        drop(server);
    }
}

#[tokio::test]
async fn a_database_from_a_newer_latch_is_refused_untouched() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let fixture = fixtures().pop().expect("a fixture");
    let data = unpack(&fixture, tmp.path());
    let newer = latch::schema::CURRENT + 1;
    {
        let db = redb::Database::create(data.join("latch.redb")).expect("open");
        let txn = db.begin_write().expect("write");
        txn.open_table(latch::store::META)
            .expect("meta")
            .insert("schema_version", newer.to_string().as_str())
            .expect("insert");
        txn.commit().expect("commit");
    }
    let out = latch()
        .arg("--data")
        .arg(&data)
        .arg("--bind")
        .arg(format!("127.0.0.1:{}", free_port()))
        .env("LATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run latch");
    assert!(!out.status.success(), "a newer database was opened");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("newer Latch"), "{said}");
    assert_eq!(schema_version(&data), Some(newer));
    // `latch user add` and `latch backup` refuse it the same way.
    let out = latch_backup(&data, tmp.path().join("copy"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer Latch"));
    assert_eq!(schema_version(&data), Some(newer));
}

/// `git` and `tar` are needed; under LATCH_REQUIRE_ALL a missing one fails.
fn binary_tools_present() -> bool {
    have_tool("git", "git") && have_tool("tar", "tar")
}
