//! Git's smart HTTP protocol v2 against the real `git` client: a clone is
//! the vault (as a `file://` clone of it is), `--depth 1` works, a fetch
//! of new check-ins takes a handful of requests, older clients still clone
//! over the dumb protocol, and every refusal (no credentials, a push, a
//! malformed or oversized request, a want off `main`) is a sentence with
//! nothing served.

use std::path::{Path, PathBuf};

use crate::common::git::{GitHome, git_ok, vault_url};
use crate::common::{self, Client, TestApp, USER_PASSWORD, text};

const REQUEST: &str = "application/x-git-upload-pack-request";

/// HTTP requests a git command made, from its `GIT_TRACE_CURL` output.
fn requests(stderr: &[u8]) -> usize {
    text(stderr)
        .lines()
        .filter(|l| l.contains("=> Send header: GET ") || l.contains("=> Send header: POST "))
        .count()
}

const TRACE: [(&str, &str); 2] = [("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")];

/// Runs git with request tracing; asserts success; returns the request count.
async fn traced(ws: &GitHome, dir: &Path, args: &[&str]) -> usize {
    let out = ws.git_env(dir, args, &TRACE).await;
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        text(&out.stderr)
            .lines()
            .filter(|l| !l.contains("== Info") && !l.contains("header:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    requests(&out.stderr)
}

/// The log and tree of `rev` in the repository at `dir`.
async fn shape(ws: &GitHome, dir: &Path, rev: &str) -> (String, String) {
    let log = ws
        .git_ok(dir, &["log", "--format=%H %an <%ae> %s", rev])
        .await;
    let tree = ws.git_ok(dir, &["ls-tree", "-r", rev]).await;
    (log, tree)
}

/// A vault with folders, several versions, a move and a delete.
async fn busy_vault(app: &TestApp) -> Client {
    let alice = app.user("alice").await;
    let a = alice.upload_ok("parts/a.mcam", b"first a").await;
    alice.upload_ok("parts/deep/b.nc", &[0u8, 1, 2, 255]).await;
    let c = alice.upload_ok("c.txt", b"c").await;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    alice.upload_ok("big.bin", &big).await;
    for round in 0..3 {
        assert_eq!(alice.checkout(a, "").await.status(), 200);
        let content = format!("a, version {round}");
        let resp = alice.checkin(a, content.as_bytes(), "Tweak", "minor").await;
        assert_eq!(resp.status(), 200);
    }
    let admin = app.admin().await;
    let moved = admin
        .post_json(
            &format!("/api/files/{c}/move"),
            &serde_json::json!({"path": "moved/c.txt"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    alice
}

fn clone_url(app: &TestApp) -> String {
    vault_url(&app.base, "alice", USER_PASSWORD)
}

fn file_url(app: &TestApp) -> String {
    format!("file://{}", app.vault_path().display())
}

async fn clone(ws: &GitHome, url: &str, name: &str, extra: &[&str]) -> (PathBuf, usize) {
    let target = ws.path(name);
    let here = ws.path("");
    let args = [
        &["clone", "-q"][..],
        extra,
        &[url, target.to_str().unwrap()],
    ]
    .concat();
    let n = traced(ws, &here, &args).await;
    (target, n)
}

#[tokio::test]
async fn a_smart_clone_is_what_a_file_clone_of_the_vault_is() {
    if !common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    busy_vault(&app).await;
    let ws = GitHome::new();
    let (http, n) = clone(&ws, &clone_url(&app), "http", &[]).await;
    let (local, _) = clone(&ws, &file_url(&app), "local", &[]).await;
    assert_eq!(
        shape(&ws, &http, "HEAD").await,
        shape(&ws, &local, "HEAD").await
    );
    assert_eq!(
        ws.git_ok(&http, &["rev-parse", "--abbrev-ref", "HEAD"])
            .await
            .trim(),
        "main"
    );
    for file in ["parts/a.mcam", "parts/deep/b.nc", "moved/c.txt", "big.bin"] {
        assert_eq!(
            std::fs::read(http.join(file)).unwrap(),
            std::fs::read(local.join(file)).unwrap(),
            "{file}"
        );
    }
    assert!(!http.join("c.txt").exists());
    ws.git_ok(&http, &["fsck", "--strict", "--no-dangling"])
        .await;
    // The 401 that gives curl its challenge, then the advertisement,
    // ls-refs and fetch: the smart protocol, not object by object.
    assert_eq!(n, 4, "a smart clone is four requests");
}

#[tokio::test]
async fn a_depth_one_clone_has_one_commit_and_the_right_files_and_fetches_on() {
    if !common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = busy_vault(&app).await;
    let ws = GitHome::new();
    let (shallow, _) = clone(&ws, &clone_url(&app), "shallow", &["--depth", "1"]).await;
    let count = ws.git_ok(&shallow, &["rev-list", "--count", "HEAD"]).await;
    assert_eq!(count.trim(), "1");
    let vault = app.vault_path();
    let vault_dir = vault.to_str().unwrap();
    let head = git_ok(&vault, &["rev-parse", "main"]);
    assert_eq!(ws.git_ok(&shallow, &["rev-parse", "HEAD"]).await, head);
    assert_eq!(
        ws.git_ok(&shallow, &["ls-tree", "-r", "HEAD"]).await,
        ws.git_ok(
            Path::new("."),
            &["--git-dir", vault_dir, "ls-tree", "-r", "main"]
        )
        .await
    );
    assert_eq!(
        std::fs::read_to_string(shallow.join("parts/a.mcam")).unwrap(),
        "a, version 2"
    );
    let shallow_file = std::fs::read_to_string(shallow.join(".git/shallow")).unwrap();
    assert_eq!(shallow_file, head);
    ws.git_ok(&shallow, &["fsck", "--no-dangling"]).await;

    // New check-ins reach the shallow clone by a plain pull…
    let b = alice.files().await;
    let b = b.iter().find(|f| f["path"] == "parts/deep/b.nc").unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(alice.checkout(b, "").await.status(), 200);
    assert_eq!(
        alice.checkin(b, b"b2", "New b", "minor").await.status(),
        200
    );
    traced(&ws, &shallow, &["pull", "-q", "--ff-only"]).await;
    assert_eq!(
        std::fs::read(shallow.join("parts/deep/b.nc")).unwrap(),
        b"b2"
    );
    let count = ws.git_ok(&shallow, &["rev-list", "--count", "HEAD"]).await;
    assert_eq!(count.trim(), "2");
    // …and deepening brings the history below it.
    traced(&ws, &shallow, &["fetch", "-q", "--deepen", "2"]).await;
    let count = ws.git_ok(&shallow, &["rev-list", "--count", "HEAD"]).await;
    assert_eq!(count.trim(), "4");
    traced(&ws, &shallow, &["fetch", "-q", "--unshallow"]).await;
    let full = ws.git_ok(&shallow, &["log", "--format=%H", "HEAD"]).await;
    assert_eq!(full, git_ok(&vault, &["log", "--format=%H", "main"]));
    ws.git_ok(&shallow, &["fsck", "--strict", "--no-dangling"])
        .await;
}

#[tokio::test]
async fn a_fetch_of_ten_new_check_ins_takes_a_handful_of_requests() {
    if !common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            alice
                .upload_ok(&format!("f/{i}.bin"), format!("v0 {i}").as_bytes())
                .await,
        );
    }
    let ws = GitHome::new();
    let (repo, _) = clone(&ws, &clone_url(&app), "repo", &[]).await;
    for (n, id) in ids.iter().take(10).enumerate() {
        assert_eq!(alice.checkout(*id, "").await.status(), 200);
        let resp = alice
            .checkin(*id, format!("v1 {n}").as_bytes(), "Next", "minor")
            .await;
        assert_eq!(resp.status(), 200);
    }
    let n = traced(&ws, &repo, &["fetch", "-q"]).await;
    assert!(n <= 5, "a fetch of 10 new commits made {n} requests");
    let vault = app.vault_path();
    assert_eq!(
        ws.git_ok(&repo, &["log", "--format=%H", "origin/main"])
            .await,
        git_ok(&vault, &["log", "--format=%H", "main"])
    );
    ws.git_ok(&repo, &["merge", "-q", "--ff-only", "origin/main"])
        .await;
    assert_eq!(std::fs::read(repo.join("f/9.bin")).unwrap(), b"v1 9");
    ws.git_ok(&repo, &["fsck", "--strict", "--no-dangling"])
        .await;
    // Nothing new: still cheap, and nothing changes.
    let n = traced(&ws, &repo, &["fetch", "-q"]).await;
    assert!(n <= 4, "an empty fetch made {n} requests");
}

#[tokio::test]
async fn a_fetch_after_a_move_and_a_delete_moves_and_deletes() {
    if !common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a = alice.upload_ok("old/a.mcam", b"a").await;
    let b = alice.upload_ok("b.mcam", b"b").await;
    let ws = GitHome::new();
    let (repo, _) = clone(&ws, &clone_url(&app), "repo", &[]).await;
    let admin = app.admin().await;
    let moved = admin
        .post_json(
            &format!("/api/files/{a}/move"),
            &serde_json::json!({"path": "new/a.mcam"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    assert_eq!(admin.delete(&format!("/api/files/{b}")).await.status(), 204);
    traced(&ws, &repo, &["pull", "-q", "--ff-only"]).await;
    assert_eq!(std::fs::read(repo.join("new/a.mcam")).unwrap(), b"a");
    assert!(!repo.join("old").exists());
    assert!(!repo.join("b.mcam").exists());
    let vault = app.vault_path();
    assert_eq!(
        ws.git_ok(&repo, &["rev-parse", "HEAD"]).await,
        git_ok(&vault, &["rev-parse", "main"])
    );
}

#[tokio::test]
async fn an_old_client_still_clones_over_the_dumb_protocol_and_pushes_are_refused() {
    if !common::have_tool("git", "git") {
        return;
    }
    let app = TestApp::spawn().await;
    busy_vault(&app).await;
    let ws = GitHome::new();
    let url = clone_url(&app);
    let (v0, n) = clone(&ws, &url, "v0", &["-c", "protocol.version=0"]).await;
    let (local, _) = clone(&ws, &file_url(&app), "local", &[]).await;
    assert_eq!(
        shape(&ws, &v0, "HEAD").await,
        shape(&ws, &local, "HEAD").await
    );
    assert!(n > 10, "object by object: {n} requests");

    std::fs::write(v0.join("parts/a.mcam"), b"pushed").unwrap();
    ws.commit_all(&v0, "try").await;
    for version in ["2", "0"] {
        let refused = ws
            .git_fails(
                &v0,
                &[
                    "-c",
                    &format!("protocol.version={version}"),
                    "push",
                    "origin",
                    "main",
                ],
            )
            .await;
        assert!(refused.contains("403"), "{refused}");
    }
}

// ------------------------------------------------------- the wire itself

fn pkt(line: &str) -> String {
    format!("{:04x}{line}\n", line.len() + 5)
}

fn fetch_body(lines: &[String]) -> String {
    let mut body = pkt("command=fetch") + &pkt("object-format=sha1") + "0001";
    for l in lines {
        body += &pkt(l);
    }
    body + "0000"
}

async fn post(app: &TestApp, body: impl Into<reqwest::Body>, auth: bool) -> reqwest::Response {
    let mut rb = reqwest::Client::new()
        .post(app.url("/vault.git/git-upload-pack"))
        .header("Content-Type", REQUEST)
        .header("Git-Protocol", "version=2")
        .body(body);
    if auth {
        rb = rb.basic_auth("alice", Some(USER_PASSWORD));
    }
    rb.send().await.unwrap()
}

/// A refusal: the status, `ERR` and the sentence, and no pack.
async fn refused(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status(), status);
    let body = resp.bytes().await.unwrap();
    assert!(!body.windows(4).any(|w| w == b"PACK"), "nothing served");
    let said = text(&body);
    assert!(said.contains("ERR ") || status == 413, "{said}");
    said
}

#[tokio::test]
async fn the_advertisement_and_ls_refs_name_main_only() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("a.mcam", b"a").await;
    let head = alice.files().await[0]["head"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let adv = http
        .get(app.url("/vault.git/info/refs?service=git-upload-pack"))
        .header("Git-Protocol", "version=2")
        .basic_auth("alice", Some(USER_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(adv.status(), 200);
    assert_eq!(
        adv.headers()["content-type"],
        "application/x-git-upload-pack-advertisement"
    );
    let adv = adv.text().await.unwrap();
    assert!(adv.starts_with("000eversion 2\n"), "{adv}");
    assert!(
        adv.contains("fetch=shallow\n") && adv.contains("ls-refs"),
        "{adv}"
    );

    let body = pkt("command=ls-refs")
        + "0001"
        + &pkt("symrefs")
        + &pkt("ref-prefix HEAD")
        + &pkt("ref-prefix refs/heads/")
        + "0000";
    let refs = post(&app, body, true).await;
    assert_eq!(refs.status(), 200);
    let refs = refs.text().await.unwrap();
    assert_eq!(
        refs,
        pkt(&format!("{head} HEAD symref-target:refs/heads/main"))
            + &pkt(&format!("{head} refs/heads/main"))
            + "0000"
    );
    let body = pkt("command=ls-refs") + "0001" + &pkt("ref-prefix refs/tags/") + "0000";
    assert_eq!(post(&app, body, true).await.text().await.unwrap(), "0000");
}

#[tokio::test]
async fn without_credentials_the_smart_protocol_asks_for_them() {
    let app = TestApp::spawn().await;
    app.user("alice").await.upload_ok("a.mcam", b"a").await;
    let resp = post(&app, pkt("command=ls-refs") + "0000", false).await;
    assert_eq!(resp.status(), 401);
    assert!(common::header(&resp, "www-authenticate").starts_with("Basic"));
    let adv = reqwest::Client::new()
        .get(app.url("/vault.git/info/refs?service=git-upload-pack"))
        .header("Git-Protocol", "version=2")
        .send()
        .await
        .unwrap();
    assert_eq!(adv.status(), 401);
    assert!(common::header(&adv, "www-authenticate").starts_with("Basic"));
    if common::have_tool("git", "git") {
        let ws = GitHome::new();
        let url = format!("{}/vault.git", app.base);
        let said = ws.git_fails(&ws.path(""), &["clone", &url, "x"]).await;
        assert!(
            said.contains("Authentication failed")
                || said.contains("401")
                || said.contains("could not read Username"),
            "{said}"
        );
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_sentence_and_nothing_served() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a = alice.upload_ok("a.mcam", b"a").await;
    let head = alice.file(a).await["head"].as_str().unwrap().to_string();
    let vault = app.vault_path();
    // Objects in the vault that main does not name: a blob and a commit
    // beside main (as a crash between writing a commit and moving main leaves).
    let blob = git_ok(&vault, &["rev-parse", "main:a.mcam"])
        .trim()
        .to_string();
    let tree = git_ok(&vault, &["rev-parse", "main^{tree}"])
        .trim()
        .to_string();
    let stray = std::process::Command::new("git")
        .args([
            "--git-dir",
            vault.to_str().unwrap(),
            "commit-tree",
            &tree,
            "-m",
            "stray",
        ])
        .env("GIT_AUTHOR_NAME", "x")
        .env("GIT_AUTHOR_EMAIL", "x@x")
        .env("GIT_COMMITTER_NAME", "x")
        .env("GIT_COMMITTER_EMAIL", "x@x")
        .output();
    let stray = stray
        .map(|o| text(&o.stdout).trim().to_string())
        .unwrap_or_default();

    let want = |id: &str| fetch_body(&[format!("want {id}"), "done".into()]);
    let mut cases: Vec<(String, u16, &str)> = vec![
        ("hello".into(), 400, "pkt-line"),
        (pkt("command=fetch"), 400, "flush"),
        (pkt("command=push") + "0000", 400, "not a command"),
        (fetch_body(&["done".into()]), 400, "at least one want"),
        (
            want("0123456789abcdef0123456789abcdef01234567"),
            400,
            "not a commit on main",
        ),
        (want(&blob), 400, "not a commit on main"),
        (
            fetch_body(&[format!("want {head}"), "filter blob:none".into()]),
            400,
            "not a fetch argument",
        ),
        (
            fetch_body(&[format!("want {head}"), "deepen-since 1".into()]),
            400,
            "not supported",
        ),
        (
            fetch_body(
                &std::iter::once(format!("want {head}"))
                    .chain((0..5000).map(|_| format!("have {head}")))
                    .collect::<Vec<_>>(),
            ),
            413,
            "64 KiB",
        ),
    ];
    if stray.len() == 40 {
        cases.push((want(&stray), 400, "not a commit on main"));
    }
    for (body, status, says) in cases {
        let said = refused(post(&app, body.clone(), true).await, status).await;
        assert!(said.contains(says), "{body:.60}: {said}");
    }
    // Too many haves fits in 64 KiB once gzipped, as Git sends it.
    let haves = fetch_body(
        &std::iter::once(format!("want {head}"))
            .chain((0..5000).map(|_| format!("have {head}")))
            .collect::<Vec<_>>(),
    );
    let gz = gzip(haves.as_bytes());
    let resp = reqwest::Client::new()
        .post(app.url("/vault.git/git-upload-pack"))
        .header("Content-Type", REQUEST)
        .header("Content-Encoding", "gzip")
        .basic_auth("alice", Some(USER_PASSWORD))
        .body(gz)
        .send()
        .await
        .unwrap();
    let said = refused(resp, 400).await;
    assert!(said.contains("more than 4096 haves"), "{said}");
    // A gzip bomb is cut off at the bound.
    let bomb = gzip(&vec![b'0'; 4 * 1024 * 1024]);
    let resp = reqwest::Client::new()
        .post(app.url("/vault.git/git-upload-pack"))
        .header("Content-Type", REQUEST)
        .header("Content-Encoding", "gzip")
        .basic_auth("alice", Some(USER_PASSWORD))
        .body(bomb)
        .send()
        .await
        .unwrap();
    let said = refused(resp, 413).await;
    assert!(said.contains("1024 KiB"), "{said}");
    // The wrong content type.
    let resp = reqwest::Client::new()
        .post(app.url("/vault.git/git-upload-pack"))
        .header("Content-Type", "application/json")
        .basic_auth("alice", Some(USER_PASSWORD))
        .body(want(&head))
        .send()
        .await
        .unwrap();
    refused(resp, 400).await;
    // And the good request is served.
    let ok = post(&app, want(&head), true).await;
    assert_eq!(ok.status(), 200);
    let body = ok.bytes().await.unwrap();
    assert!(body.windows(4).any(|w| w == b"PACK"));
}

/// gzip by the system's `gzip`, as the test has no encoder of its own.
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out.stdout
}

/// Hand-made bodies an ordinary client could send: each is refused with a
/// sentence (nothing of the request ignored, nothing served), or, when it
/// is a fair request, answered as Git expects.
#[tokio::test]
async fn hand_made_bodies_are_refused_whole_or_answered() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a = alice.upload_ok("a.mcam", b"a").await;
    assert_eq!(alice.checkout(a, "").await.status(), 200);
    assert_eq!(alice.checkin(a, b"a2", "Two", "minor").await.status(), 200);
    let head = alice.file(a).await["head"].as_str().unwrap().to_string();
    let vault = app.vault_path();
    let tree = git_ok(&vault, &["rev-parse", "main^{tree}"])
        .trim()
        .to_string();
    let absent = "0123456789abcdef0123456789abcdef01234567";
    let want = format!("want {head}");
    let refusals: Vec<(Vec<u8>, &str)> = vec![
        // A length with a sign is not four hex digits.
        (
            b"+014command=ls-refs\n0000".to_vec(),
            "not a sequence of pkt-lines",
        ),
        (
            format!("{}0001{}0000", pkt("command=fetch"), pkt("want x")).into_bytes(),
            "object id",
        ),
        (
            fetch_body(&[format!("want {tree}"), "done".into()]).into_bytes(),
            "not a commit on main",
        ),
        (
            fetch_body(&[want.clone(), "deepen -1".into()]).into_bytes(),
            "depth of 1 or more",
        ),
        (
            fetch_body(&[want.clone(), "deepen 99999999999".into()]).into_bytes(),
            "depth of 1 or more",
        ),
        (
            format!("{}0001{}0004{}", pkt("command=fetch"), pkt(&want), "0000").into_bytes(),
            "is not a fetch argument",
        ),
        (
            format!("{}0001{}ffff{}", pkt("command=fetch"), pkt(&want), "0000").into_bytes(),
            "longer than what remains",
        ),
        (
            format!("{}0000{}0000", pkt("command=fetch"), pkt(&want)).into_bytes(),
            "goes on after its final flush",
        ),
        (
            format!(
                "{}0001{}0001{}0000",
                pkt("command=fetch"),
                pkt(&want),
                pkt("done")
            )
            .into_bytes(),
            "second delimiter",
        ),
    ];
    for (body, says) in refusals {
        let said = refused(post(&app, body.clone(), true).await, 400).await;
        assert!(
            said.contains(says),
            "{}: {said}",
            String::from_utf8_lossy(&body)
        );
    }
    // gzip: a body with anything after its end is refused, not read in part.
    let good = fetch_body(&[want.clone(), "done".into()]);
    let gz_post = |body: Vec<u8>| {
        reqwest::Client::new()
            .post(app.url("/vault.git/git-upload-pack"))
            .header("Content-Type", REQUEST)
            .header("Content-Encoding", "gzip")
            .basic_auth("alice", Some(USER_PASSWORD))
            .body(body)
            .send()
    };
    let gz = gzip(good.as_bytes());
    let mut bad_len = gz.clone();
    let n = bad_len.len();
    bad_len[n - 4] ^= 1;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bad_len, "gzip body is broken"),
        (gz[..gz.len() - 6].to_vec(), "gzip body is broken"),
        ([gz.clone(), gz.clone()].concat(), "after its end"),
        ([gz.clone(), b"0000".to_vec()].concat(), "after its end"),
    ];
    for (body, says) in cases {
        let said = refused(gz_post(body).await.unwrap(), 400).await;
        assert!(said.contains(says), "{said}");
    }
    // Fair requests: a shallow line naming an object the server lacks, a
    // huge depth, thousands of unknown haves (gzipped, as Git sends them).
    let fair = [
        fetch_body(&[
            want.clone(),
            format!("shallow {absent}"),
            "deepen 1".into(),
            "done".into(),
        ]),
        fetch_body(&[want.clone(), "deepen 4294967295".into(), "done".into()]),
    ];
    for body in fair {
        let ok = post(&app, body.clone(), true).await;
        assert_eq!(ok.status(), 200, "{body}");
        let bytes = ok.bytes().await.unwrap();
        assert!(bytes.windows(4).any(|w| w == b"PACK"), "{body}");
        assert!(bytes.ends_with(b"0000"), "{body}");
    }
    let haves = fetch_body(
        &std::iter::once(want.clone())
            .chain((0..4000u32).map(|i| format!("have {i:040x}")))
            .collect::<Vec<_>>(),
    );
    let ok = gz_post(gzip(haves.as_bytes())).await.unwrap();
    assert_eq!(ok.status(), 200);
    let said = text(&ok.bytes().await.unwrap());
    assert!(said.contains("NAK") && !said.contains("PACK"), "{said}");
}
