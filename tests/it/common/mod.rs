//! Test harness shared by the integration tests: the real app on a random
//! port over a temp data directory, and typed clients for its API. Anyone may
//! improve these helpers; a module that needs one another module has should
//! move it here rather than copy it.

pub mod binary;
pub mod browser;
pub mod git;
pub mod http;
pub mod live;
pub mod smtp;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latch::Config;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

pub use git::{git, git_fsck, git_ok};

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const USER_PASSWORD: &str = "user-password-1";

/// A running Latch on `127.0.0.1:<random>`, started in-process the same way
/// `latch serve` starts it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub data_dir: PathBuf,
    /// Keeps the temp directory alive for the test's duration.
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), latch::StartError>>>,
    /// The admin's session, signed in once per server: each sign-in is an
    /// argon2 check (~20 ms of a core), and tests ask for the admin
    /// hundreds of times (this was a quarter of the suite's CPU time).
    admin_session: tokio::sync::Mutex<Option<Client>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts with a config adjusted by `tweak` (limits, flags).
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut app = Self::start(&data_dir, tweak).await;
        app._tmp = Some(tmp);
        app
    }

    /// Starts on an existing data directory (for restart tests).
    pub async fn start(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::new(data_dir);
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.shutdown_grace = Duration::from_secs(5);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(latch::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        let app = TestApp {
            addr,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            stop: Some(stop),
            task: Some(task),
            admin_session: tokio::sync::Mutex::new(None),
        };
        wait_healthy(&app.base).await;
        app
    }

    /// Stops the server and waits until it has released the data directory.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server stops in time")
                .expect("server task");
            result.expect("server ran cleanly");
        }
        // The hub's task drops its handle on the database a moment after
        // the server task ends: wait until the file can be opened again.
        // A database that would need repair is left alone (the repair is
        // aborted) for the next start to find as it is.
        let db = self.data_dir.join("latch.redb");
        wait_until("the server to release its database", || {
            let db = db.clone();
            async move {
                if !db.exists() {
                    return true;
                }
                let opened = redb::Builder::new()
                    .set_repair_callback(|session| session.abort())
                    .open(&db);
                !matches!(opened, Err(redb::DatabaseError::DatabaseAlreadyOpen))
            }
        })
        .await;
    }

    /// Stops, then starts again on the same data directory.
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await;
    }

    /// Stops, then starts again on the same data directory with a config
    /// adjusted by `tweak`.
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut Config)) {
        self.stop().await;
        let tmp = self._tmp.take();
        let mut next = Self::start(&self.data_dir, tweak).await;
        next._tmp = tmp;
        *self = next;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn vault_path(&self) -> PathBuf {
        self.data_dir.join("vault.git")
    }

    /// A client signed in with a session cookie and its CSRF token.
    pub async fn login(&self, username: &str, password: &str) -> Client {
        login_at(&self.base, username, password).await
    }

    /// The admin, signed in (the same session each time, per server: a
    /// test that signs it out or changes its password signs in with
    /// [`TestApp::login`] instead).
    pub async fn admin(&self) -> Client {
        let mut cached = self.admin_session.lock().await;
        match cached.as_ref().filter(|c| c.base == self.base) {
            Some(client) => client.clone(),
            None => {
                let client = self.login("admin", ADMIN_PASSWORD).await;
                *cached = Some(client.clone());
                client
            }
        }
    }

    /// Creates a user (as admin) and returns a client signed in as them.
    pub async fn user(&self, username: &str) -> Client {
        self.create_user(username, "user").await;
        self.login(username, USER_PASSWORD).await
    }

    pub async fn create_user(&self, username: &str, role: &str) {
        self.admin().await.create_user(username, role).await;
    }

    /// Creates a user shown as `display` (as admin) and signs them in.
    pub async fn named_user(&self, username: &str, display: &str) -> Client {
        let resp = self
            .admin()
            .await
            .post_json(
                "/api/users",
                &json!({"username": username, "password": USER_PASSWORD, "role": "user", "display_name": display}),
            )
            .await;
        assert_eq!(resp.status(), 201, "create {username} shown as {display}");
        self.login(username, USER_PASSWORD).await
    }

    /// A client with no credentials that does not follow redirects.
    pub fn anonymous(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: self.base.clone(),
            csrf: None,
            username: String::new(),
            jar: Default::default(),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A signed-in API client; writes carry the CSRF header.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: Option<String>,
    pub username: String,
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl Client {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn with_csrf(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.csrf {
            Some(token) => rb.header("X-CSRF-Token", token),
            None => rb,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.with_csrf(self.http.post(self.url(path)).json(body))
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_empty(&self, path: &str) -> reqwest::Response {
        self.with_csrf(self.http.post(self.url(path)))
            .send()
            .await
            .expect("POST")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.with_csrf(self.http.delete(self.url(path)))
            .send()
            .await
            .expect("DELETE")
    }

    /// Events of `kind` in the activity log, oldest first.
    pub async fn events_of(&self, kind: &str) -> Vec<Value> {
        self.get_json("/api/activity?since=0").await["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    }

    /// A browser-like client (cookies, no redirects) signed in through the
    /// plain sign-in form.
    pub async fn form_login(base: &str, username: &str, password: &str) -> reqwest::Client {
        let http = http::cookie_client();
        let resp = http
            .post(format!("{base}/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("POST /login");
        assert_eq!(resp.status(), 303, "signing in {username} through the form");
        http
    }

    pub async fn delete_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.with_csrf(self.http.delete(self.url(path)).json(body))
            .send()
            .await
            .expect("DELETE")
    }

    /// A form as a browser without JavaScript posts it (urlencoded, no
    /// `HX-Request`); the CSRF token rides in the header.
    pub async fn post_plain_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.with_csrf(self.http.post(self.url(path)).form(fields))
            .send()
            .await
            .expect("POST form")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.with_csrf(self.http.patch(self.url(path)).json(body))
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn post_form(&self, path: &str, form: Form) -> reqwest::Response {
        self.with_csrf(self.http.post(self.url(path)).multipart(form))
            .send()
            .await
            .expect("POST multipart")
    }

    /// Uploads `content` as `path`; returns the response.
    pub async fn upload(&self, path: &str, content: &[u8]) -> reqwest::Response {
        let description = format!("test file {path}");
        let form = upload_form(
            &[("path", path), ("description", &description)],
            Some(content),
        );
        self.post_form("/api/files", form).await
    }

    /// Uploads and returns the new file's id, asserting success.
    pub async fn upload_ok(&self, path: &str, content: &[u8]) -> u64 {
        let resp = self.upload(path, content).await;
        assert_eq!(resp.status(), 201, "upload {path}");
        let body: Value = resp.json().await.expect("json");
        body["id"].as_u64().expect("id")
    }

    pub async fn checkout(&self, id: u64, comment: &str) -> reqwest::Response {
        self.post_json(
            &format!("/api/files/{id}/checkout"),
            &json!({"comment": comment}),
        )
        .await
    }

    pub async fn cancel(&self, id: u64) -> reqwest::Response {
        self.post_empty(&format!("/api/files/{id}/cancel")).await
    }

    pub async fn override_lock(&self, id: u64) -> reqwest::Response {
        self.post_empty(&format!("/api/files/{id}/override")).await
    }

    /// Moves or renames file `id` to `path` (`POST /api/files/{id}/move`).
    pub async fn move_file(&self, id: u64, path: &str) -> reqwest::Response {
        self.post_json(&format!("/api/files/{id}/move"), &json!({ "path": path }))
            .await
    }

    pub async fn checkin(
        &self,
        id: u64,
        content: &[u8],
        message: &str,
        bump: &str,
    ) -> reqwest::Response {
        let form = Form::new()
            .text("message", message.to_string())
            .text("bump", bump.to_string())
            .part("file", Part::bytes(content.to_vec()).file_name("new.bin"));
        self.post_form(&format!("/api/files/{id}/checkin"), form)
            .await
    }

    pub async fn file(&self, id: u64) -> Value {
        self.get_json(&format!("/api/files/{id}")).await
    }

    pub async fn files(&self) -> Vec<Value> {
        self.get_json("/api/files").await["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every file's path, as `/api/files` lists them.
    pub async fn paths(&self) -> Vec<String> {
        self.files()
            .await
            .iter()
            .map(|f| f["path"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn history(&self, id: u64) -> Vec<Value> {
        self.get_json(&format!("/api/files/{id}/history")).await["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn content(&self, id: u64, rev: Option<&str>) -> Vec<u8> {
        let path = match rev {
            Some(r) => format!("/api/files/{id}/content?rev={r}"),
            None => format!("/api/files/{id}/content"),
        };
        let resp = self.get(&path).await;
        assert_eq!(resp.status(), 200, "content of {id}");
        resp.bytes().await.expect("bytes").to_vec()
    }

    /// As an admin: creates `username` with `role` and [`USER_PASSWORD`].
    pub async fn create_user(&self, username: &str, role: &str) {
        let resp = self
            .post_json(
                "/api/users",
                &json!({"username": username, "password": USER_PASSWORD, "role": role}),
            )
            .await;
        assert_eq!(resp.status(), 201, "create user {username}");
    }

    /// A new API token named `name`; returns its secret.
    pub async fn new_token(&self, name: &str) -> String {
        let resp = self.post_json("/api/tokens", &json!({"name": name})).await;
        assert_eq!(resp.status(), 201, "token created");
        let body: Value = resp.json().await.expect("json");
        body["token"].as_str().expect("token").to_string()
    }

    /// The session cookie's value, for raw WebSocket / SSE clients.
    pub fn cookie_header(&self) -> String {
        use reqwest::cookie::CookieStore;
        let url = self.base.parse().expect("base url");
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .unwrap_or_default()
    }
}

/// A new API token named `name` for `username`, asked for with Basic
/// credentials (no session needed); returns its secret.
pub async fn token_with_password(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
    name: &str,
) -> String {
    let resp = http
        .post(format!("{base}/api/tokens"))
        .basic_auth(username, Some(password))
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("POST /api/tokens");
    assert_eq!(resp.status(), 201, "token for {username}");
    let body: Value = resp.json().await.expect("json");
    body["token"].as_str().expect("token").to_string()
}

/// Signs in at `base` (the app, or a proxy in front of it) with a session
/// cookie, and keeps the CSRF token for writes.
pub async fn login_at(base: &str, username: &str, password: &str) -> Client {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login request");
    assert_eq!(resp.status(), 200, "login as {username} at {base}");
    let body: Value = resp.json().await.expect("login json");
    Client {
        http,
        base: base.to_string(),
        csrf: body["csrf_token"].as_str().map(str::to_string),
        username: username.to_string(),
        jar,
    }
}

/// Waits (a few seconds at most) until `base` answers `/healthz` with 200.
pub async fn wait_healthy(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the app at {base} did not become healthy");
}

/// Waits until `check` holds, asking again every few milliseconds, for up
/// to 30 s (a hang guard, not a time limit under test); panics naming `what`.
/// Use this instead of a sleep wherever a test waits for the server to get
/// somewhere by itself.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one series (`name{labels}`) in a Prometheus exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A port nobody listens on right now: bind port 0, read it, let it go.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Stops a child that leads its own process group (a browser driver, nginx):
/// TERM to the group, a grace period, then KILL.
pub fn stop_process_group(child: &mut std::process::Child) {
    use std::process::{Command, Stdio};
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-TERM", "--", &group])
        .stderr(Stdio::null())
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The error sentence of a JSON error response, asserting the status.
pub async fn expect_error(resp: reqwest::Response, status: u16) -> String {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "unexpected status; body: {text}");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is JSON: {text}"));
    let message = body["error"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "error has a sentence: {text}");
    message
}

/// The JSON body of a response, asserting the status.
pub async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
}

/// A response header's value, or "" when it is absent.
pub fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The value of the first hidden `_csrf` input in a page.
pub fn hidden_csrf(page: &str) -> String {
    let marker = r#"name="_csrf" value=""#;
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("the page has a hidden _csrf input: {page}"));
    let rest = &page[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// A process's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A multipart upload with exactly the given text fields and, optionally, a file part.
pub fn upload_form(fields: &[(&str, &str)], file: Option<&[u8]>) -> Form {
    let mut form = Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    if let Some(bytes) = file {
        form = form.part("file", Part::bytes(bytes.to_vec()).file_name("upload.bin"));
    }
    form
}

/// Whether a tool that skippable tests need must be present (CI sets LATCH_REQUIRE_ALL=1).
pub fn require_all() -> bool {
    std::env::var("LATCH_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Skips (returns false) with a message naming the package, or fails under LATCH_REQUIRE_ALL.
pub fn have_tool(binary: &str, package: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if require_all() {
            panic!(
                "{binary} is required (LATCH_REQUIRE_ALL=1): install the Debian package '{package}'"
            );
        }
        eprintln!(
            "SKIPPED: {binary} not found; install the Debian package '{package}' to run this test"
        );
    }
    found
}

/// xorshift64*: small, seedable, and enough to pick moves.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Every `.rs` file below `dir`, sorted.
pub fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
