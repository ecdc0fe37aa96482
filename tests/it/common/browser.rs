//! A minimal W3C WebDriver client over reqwest for the browser tests:
//! chromedriver on a free port (killed with its browsers on drop), headless
//! Chromium sessions, and the handful of commands the tests need.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::free_port;

/// W3C's key for an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a `wait_*` polls before failing: a guard against hanging on a
/// noisy machine, never a performance assertion.
pub const WAIT: Duration = Duration::from_secs(15);

/// Whether chromedriver and Chromium are installed; prints a skip notice (or
/// panics under `LATCH_REQUIRE_ALL=1`) when not.
pub fn browser_available() -> bool {
    crate::common::have_tool("chromedriver", "chromium-driver")
        && crate::common::have_tool("chromium", "chromium")
}

/// Tests that drive Chromium take turns, whichever module they are in (the
/// browser and proxy tests share this binary, so a per-module lock would let
/// theirs overlap): a few Chromiums per test are plenty for a shared 2-core
/// machine. An async mutex, as tokio's does not poison when a test fails.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running chromedriver. Its process group (chromedriver and every
/// Chromium it launched) is terminated on drop. While it lives, no other
/// test's driver runs (so start only one per test).
pub struct Driver {
    child: Child,
    pub url: String,
    http: reqwest::Client,
    /// Released after `drop` has ended the process group.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// How a browser session should start.
#[derive(Clone, Debug)]
pub struct Options {
    pub width: u32,
    pub height: u32,
    /// Start with JavaScript disabled (to test the plain-form fallbacks).
    pub javascript: bool,
    /// `prefers-color-scheme` to emulate: "light" or "dark".
    pub color_scheme: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            width: 1280,
            height: 800,
            javascript: true,
            color_scheme: "light",
        }
    }
}

impl Driver {
    pub async fn start() -> Driver {
        let turn = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so drop can end Chromium too (by group id).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("http client"),
            _turn: turn,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless Chromium with a fresh profile.
    pub async fn session(&self, opts: Options) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-extensions".into(),
            "--force-device-scale-factor=1".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={},{}", opts.width, opts.height),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !opts.javascript {
            args.push("--blink-settings=scriptEnabled=false".into());
        }
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": args,
                        "prefs": {"download.default_directory": profile.path().join("downloads")},
                    }
                }
            }
        });
        let resp = self
            .http
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .expect("new session request");
        let body: Value = resp.json().await.expect("new session json");
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {body}"))
            .to_string();
        let browser = Browser {
            http: self.http.clone(),
            session: format!("{}/session/{id}", self.url),
            _profile: profile,
        };
        // The window has a frame; emulate the exact viewport instead.
        browser
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": opts.width, "height": opts.height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        browser
            .cdp(
                "Emulation.setEmulatedMedia",
                json!({"features": [{"name": "prefers-color-scheme", "value": opts.color_scheme}]}),
            )
            .await;
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group holds chromedriver and the browsers it launched.
        crate::common::stop_process_group(&mut self.child);
    }
}

/// One browser (a WebDriver session). Quit on drop.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    _profile: tempfile::TempDir,
}

/// A found element; valid until the page replaces it.
#[derive(Clone, Debug)]
pub struct Element {
    pub id: String,
}

/// An error WebDriver reported (`no such element`, `stale element reference`, …).
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl Browser {
    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, WdError> {
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if method == reqwest::Method::POST {
            rb = rb.json(&body);
        }
        let resp = rb.send().await.map_err(|e| WdError {
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.map_err(|e| WdError {
            error: "bad json".into(),
            message: e.to_string(),
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if ok {
            Ok(value)
        } else {
            Err(WdError {
                error: value["error"].as_str().unwrap_or("unknown").to_string(),
                message: value["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            })
        }
    }

    async fn must(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        match self.cmd(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {path}: {}: {}", e.error, e.message),
        }
    }

    /// A Chrome DevTools command through chromedriver's extension endpoint.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": cmd, "params": params}),
        )
        .await
    }

    pub async fn goto(&self, url: &str) {
        self.must(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.must(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
            .ok()?;
        v[ELEMENT_KEY]
            .as_str()
            .map(|id| Element { id: id.to_string() })
    }

    pub async fn find(&self, css: &str) -> Element {
        self.try_find(css)
            .await
            .unwrap_or_else(|| panic!("no element matches `{css}`"))
    }

    pub async fn click_el(&self, el: &Element) {
        self.must(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.id),
            json!({}),
        )
        .await;
    }

    /// A click with Shift held (W3C actions: a real modifier, as a person's).
    pub async fn shift_click_el(&self, el: &Element) {
        let actions = json!({"actions": [
            {"type": "key", "id": "keyboard", "actions": [{"type": "keyDown", "value": "\u{E008}"}]},
            {"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
                {"type": "pause", "duration": 0},
                {"type": "pointerMove", "origin": {ELEMENT_KEY: el.id}, "x": 0, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0}
            ]}
        ]});
        self.must(reqwest::Method::POST, "/actions", actions).await;
        let release = json!({"actions": [
            {"type": "key", "id": "keyboard", "actions": [{"type": "keyUp", "value": "\u{E008}"}]}
        ]});
        self.must(reqwest::Method::POST, "/actions", release).await;
        self.must(reqwest::Method::DELETE, "/actions", Value::Null)
            .await;
    }

    /// Presses one key (a WebDriver key code such as `\u{E00C}`, Escape)
    /// on whatever has focus.
    pub async fn press(&self, key: &str) {
        let actions = json!({"actions": [
            {"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
            ]}
        ]});
        self.must(reqwest::Method::POST, "/actions", actions).await;
    }

    /// A W3C actions sequence (`{"actions": [...]}`), keys released after.
    pub async fn actions(&self, actions: Value) {
        self.must(reqwest::Method::POST, "/actions", actions).await;
        self.must(reqwest::Method::DELETE, "/actions", Value::Null)
            .await;
    }

    /// Finds the element (waiting for it to appear) and clicks it. An
    /// element swapped out between finding and clicking (htmx replaced it)
    /// is found again, as a person would click the new one.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let el = self.wait_for_element(css).await;
            let path = format!("/element/{}/click", el.id);
            match self.cmd(reqwest::Method::POST, &path, json!({})).await {
                Ok(_) => return,
                Err(e) if e.error == "stale element reference" && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("WebDriver {path}: {}: {}", e.error, e.message),
            }
        }
    }

    pub async fn send_keys_el(&self, el: &Element, text: &str) {
        self.must(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.id),
            json!({"text": text}),
        )
        .await;
    }

    /// Types into a field (a file input takes an absolute path).
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for_element(css).await;
        self.send_keys_el(&el, text).await;
    }

    pub async fn clear(&self, css: &str) {
        let el = self.find(css).await;
        self.must(
            reqwest::Method::POST,
            &format!("/element/{}/clear", el.id),
            json!({}),
        )
        .await;
    }

    pub async fn text_el(&self, el: &Element) -> String {
        self.must(
            reqwest::Method::GET,
            &format!("/element/{}/text", el.id),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.text_el(&el).await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Runs `script` as an asynchronous function body: it answers by calling
    /// the callback WebDriver passes as its last argument (after `args`).
    pub async fn exec_async(&self, script: &str, args: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// How long an asynchronous script may run before WebDriver gives up
    /// (its default is 30 s: short for axe on a busy 2-core machine).
    pub async fn script_timeout(&self, limit: Duration) {
        self.must(
            reqwest::Method::POST,
            "/timeouts",
            json!({"script": limit.as_millis() as u64}),
        )
        .await;
    }

    /// Like `exec`, but a failed script (page navigating, say) is `None`.
    pub async fn try_exec(&self, script: &str, args: Value) -> Option<Value> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
        .ok()
    }

    /// Polls the JavaScript expression `expr` until it is truthy and returns
    /// its value; panics with `what` and the last value after [`WAIT`].
    pub async fn wait_until(&self, expr: &str, what: &str) -> Value {
        let script = format!("return ({expr});");
        let deadline = Instant::now() + WAIT;
        let mut last = Value::Null;
        loop {
            if let Some(v) = self.try_exec(&script, json!([])).await {
                let truthy = match &v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::String(s) => !s.is_empty(),
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    _ => true,
                };
                if truthy {
                    return v;
                }
                last = v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what} (`{expr}`; last value {last})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for_element(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(el) = self.try_find(css).await {
                return el;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for an element matching `{css}`");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the document at a path has loaded (after a form post).
    pub async fn wait_for_path(&self, path: &str) {
        self.wait_until(
            &format!(
                "location.pathname === {} && document.readyState === 'complete'",
                json!(path)
            ),
            &format!("the page {path}"),
        )
        .await;
    }

    /// Waits (briefly, best effort) for finite CSS animations to end, so a
    /// screenshot shows where things land rather than a fade in progress.
    pub async fn settle(&self) {
        let script = "return document.getAnimations().filter(a => a.playState === 'running' && \
            a.effect && a.effect.getComputedTiming().endTime !== Infinity).length";
        for _ in 0..30 {
            if self.try_exec(script, json!([])).await == Some(json!(0)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The PNG of the viewport.
    pub async fn screenshot_png(&self) -> Vec<u8> {
        let v = self
            .must(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64_decode(v.as_str().unwrap_or_default()).expect("screenshot is base64")
    }

    /// Saves the viewport as `target/screenshots/{name}.png`; returns the path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        self.settle().await;
        let png = self.screenshot_png().await;
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Console messages since the last call (errors, CSP refusals…).
    pub async fn console(&self) -> Vec<String> {
        let v = self
            .cmd(reqwest::Method::POST, "/se/log", json!({"type": "browser"}))
            .await
            .unwrap_or(Value::Null);
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Signs in through the login form and waits for the dashboard to go live.
    pub async fn login(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.type_into("input[name=username]", username).await;
        self.type_into("input[name=password]", password).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
        self.wait_for_path("/").await;
    }

    /// Waits until live updates are connected (`window.latchLive.state`).
    pub async fn wait_live(&self) -> String {
        self.wait_until(
            "window.latchLive && window.latchLive.state === 'live' && window.latchLive.transport",
            "the live connection",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    fn quit_blocking(&self) {
        // Drop cannot await: a raw HTTP/1.1 DELETE over a std socket.
        let Some(rest) = self.session.strip_prefix("http://") else {
            return;
        };
        let Some((host, path)) = rest.split_once('/') else {
            return;
        };
        let Ok(mut s) = std::net::TcpStream::connect(host) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        if s.write_all(req.as_bytes()).is_ok() {
            read_one_response(&mut s);
        }
    }
}

/// Reads one HTTP/1.1 response whose body has a `Content-Length`, and no
/// more: chromedriver keeps the connection open despite `Connection: close`,
/// so reading to the end would wait out the read timeout (10 s a browser).
fn read_one_response(s: &mut std::net::TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
            let Some(length) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            else {
                return;
            };
            if got.len() >= head_end + 4 + length {
                return;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.quit_blocking();
    }
}

pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// Standard base64 (with or without padding); None on a bad character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace())
        .take_while(|&c| c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]),
            3 => out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8]),
            2 => out.push((n >> 16) as u8),
            _ => return None,
        }
    }
    Some(out)
}

#[test]
fn base64_decodes_what_an_encoder_makes() {
    assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
    assert_eq!(base64_decode("Zg==").as_deref(), Some(&b"f"[..]));
    assert_eq!(base64_decode("Zm8=").as_deref(), Some(&b"fo"[..]));
    assert_eq!(base64_decode("Zm9v").as_deref(), Some(&b"foo"[..]));
    assert_eq!(base64_decode("Zm9vYmFy").as_deref(), Some(&b"foobar"[..]));
    assert_eq!(
        base64_decode("iVBORw0K\nGgo=").as_deref(),
        Some(&b"\x89PNG\r\n\x1a\n"[..])
    );
    assert_eq!(base64_decode("Zm9v!"), None);
}
