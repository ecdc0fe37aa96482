//! Security: who may call what (a matrix over every route, checked against
//! the routes declared in the source so none is forgotten), CSRF and
//! Origin checks on every state-changing request, headers, downloads, login
//! guessing in bulk, a table of hostile inputs, and property tests of the
//! parsers for outside values. (The session cookie, sign-in answers and
//! throttling are in `accounts`; live admission is in `live`.)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::http::{plain_client, session_cookie_of, session_set_cookie};
use crate::common::live::ws_connect_with;
use crate::common::{self, ADMIN_PASSWORD, TestApp, USER_PASSWORD, binary, token_with_password};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

// ------------------------------------------------------------------ roles

const ROLES: [&str; 5] = ["anonymous", "user", "holder", "admin", "disabled"];
const ANON: usize = 0;
const USER: usize = 1;
const HOLDER: usize = 2;
const ADMIN: usize = 3;
const DISABLED: usize = 4;

/// One caller's credentials. The disabled user's were issued before an
/// admin disabled them.
#[derive(Clone, Default)]
struct Who {
    name: String,
    password: String,
    cookie: String,
    csrf: String,
    token: String,
}

struct Fixture {
    app: TestApp,
    http: reqwest::Client,
    roles: Vec<Who>,
    serial: AtomicU64,
}

async fn sign_in(
    app: &TestApp,
    http: &reqwest::Client,
    name: &str,
    password: &str,
) -> (String, String) {
    let resp = http
        .post(app.url("/api/login"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "login {name}");
    let cookie = session_cookie_of(&resp).expect("session cookie");
    let csrf = resp.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    (cookie, csrf)
}

impl Fixture {
    async fn new() -> Fixture {
        Self::with(TestApp::spawn().await).await
    }

    async fn with(app: TestApp) -> Fixture {
        let http = plain_client();
        let mut roles = vec![Who::default()];
        for name in ["ursula", "hank", "admin", "dora"] {
            let password = if name == "admin" {
                ADMIN_PASSWORD
            } else {
                app.create_user(name, "user").await;
                USER_PASSWORD
            };
            let (cookie, csrf) = sign_in(&app, &http, name, password).await;
            let token = token_with_password(&http, &app.base, name, password, "matrix").await;
            roles.push(Who {
                name: name.into(),
                password: password.into(),
                cookie,
                csrf,
                token,
            });
        }
        // A bystander whose account admins edit in the matrix.
        app.create_user("tess", "user").await;
        let fixture = Fixture {
            app,
            http,
            roles,
            serial: AtomicU64::new(0),
        };
        let resp = fixture
            .api(ADMIN, "PATCH", "/api/users/dora")
            .json(&json!({"disabled": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "disable dora");
        fixture
    }

    fn next(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed)
    }

    fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.http.request(method, self.app.url(path))
    }

    /// A script's request: the role's API token.
    fn api(&self, role: usize, method: &str, path: &str) -> reqwest::RequestBuilder {
        let rb = self.request(method, path);
        let who = &self.roles[role];
        if who.token.is_empty() {
            rb
        } else {
            rb.bearer_auth(&who.token)
        }
    }

    /// A browser's request: the role's session cookie and CSRF token.
    fn browser(&self, role: usize, method: &str, path: &str) -> reqwest::RequestBuilder {
        let who = &self.roles[role];
        let mut rb = self.request(method, path).header("HX-Request", "true");
        if !who.cookie.is_empty() {
            rb = rb.header("Cookie", &who.cookie);
        }
        if !who.csrf.is_empty() {
            rb = rb.header("X-CSRF-Token", &who.csrf);
        }
        rb
    }

    async fn upload(&self, path: &str) -> u64 {
        let form = Form::new()
            .text("path", path.to_string())
            .part("file", Part::bytes(b"content".to_vec()).file_name("f.bin"));
        let resp = self
            .api(ADMIN, "POST", "/api/files")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "fixture upload");
        resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
    }

    async fn locked_by_holder(&self, path: &str) -> u64 {
        let id = self.upload(path).await;
        let resp = self
            .api(HOLDER, "POST", &format!("/api/files/{id}/checkout"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "fixture checkout");
        id
    }

    async fn holder_token(&self) -> u64 {
        let resp = self
            .api(HOLDER, "POST", "/api/tokens")
            .json(&json!({"name": "spare"}))
            .send()
            .await
            .unwrap();
        resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
    }

    /// What must not change when a request is refused.
    async fn snapshot(&self) -> String {
        let mut out = String::new();
        for path in [
            "/api/files",
            "/api/users",
            "/api/tokens",
            "/api/activity?since=0",
        ] {
            let v: Value = self
                .api(ADMIN, "GET", path)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.push_str(&v.to_string());
        }
        let spool: Vec<_> = std::fs::read_dir(self.app.data_dir.join("spool"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        out.push_str(&format!("{spool:?}"));
        out
    }
}

// ----------------------------------------------------------------- matrix

#[derive(Clone, Copy, PartialEq, Debug)]
enum Via {
    /// Session cookie, CSRF header, `HX-Request` (errors come back as statuses).
    Browser,
    /// Bearer API token.
    Token,
    /// HTTP Basic with username and API token, as Git LFS sends.
    GitBasic,
    /// No credentials at all: the body carries them (login).
    Nothing,
    WebSocket,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Needs {
    Nothing,
    /// A file nobody holds: `{id}`.
    Unlocked,
    /// A file the holder has checked out: `{id}`, `{path}`.
    Locked,
    /// One of the holder's API tokens: `{token}`.
    HolderToken,
    /// A new session for the role first (the request ends sessions).
    FreshSession,
}

#[derive(Clone, Copy, Debug)]
enum Payload {
    Empty,
    Json(&'static str),
    Form(&'static str),
    /// The role's own username and password (anonymous: a wrong one).
    LoginJson,
    LoginForm,
    /// Form `current` = `password` = the role's password.
    SamePassword,
    NewUserJson,
    NewUserForm,
    Upload,
    Checkin,
    /// `{"path": <the locked file's path>}` with the LFS content type.
    LfsPath,
    /// `command=ls-refs` of Git's protocol v2, as `git-upload-pack` takes it.
    GitLsRefs,
    /// A url-encoded form, `{id}` and `{n}` filled in.
    FormWith(&'static str),
    /// A JSON body, `{id}` and `{n}` filled in.
    JsonWith(&'static str),
    /// A change set's check-in: one part named by the file's path.
    CheckinSet,
    /// A bulk upload of two files into a folder.
    Bulk,
    /// A body as it is (a WebDAV `PUT`'s content, a `LOCK`'s XML).
    Raw(&'static str),
}

/// `text` with the row's file id and a fresh number filled in.
fn filled(text: &str, id: u64, n: usize) -> String {
    text.replace("{id}", &id.to_string())
        .replace("{n}", &n.to_string())
}

/// One route, as the source declares it, and what each role gets.
struct Row {
    /// (source file, method as declared — `ANY` when the handler decides,
    /// `NEST` for a nested endpoint —, path as declared).
    src: (&'static str, &'static str, &'static str),
    method: &'static str,
    url: &'static str,
    via: Via,
    needs: Needs,
    payload: Payload,
    /// Status per role: anonymous, user, holder, admin, disabled.
    expect: [u16; 5],
}

const fn row(
    src: (&'static str, &'static str, &'static str),
    method: &'static str,
    url: &'static str,
    via: Via,
    needs: Needs,
    payload: Payload,
    expect: [u16; 5],
) -> Row {
    Row {
        src,
        method,
        url,
        via,
        needs,
        payload,
        expect,
    }
}

use Needs as N;
use Payload as P;
use Via as V;

/// Signed in = allowed; anonymous and disabled are sent to sign in.
const SIGNED_IN: [u16; 5] = [401, 200, 200, 200, 401];
const ADMIN_ONLY: [u16; 5] = [401, 403, 403, 200, 401];
const HOLDER_ONLY: [u16; 5] = [401, 403, 200, 403, 401];
const PUBLIC: [u16; 5] = [200, 200, 200, 200, 200];

/// Every route. The session-ending rows come last.
fn matrix() -> Vec<Row> {
    vec![
        // HTML pages and actions (src/http/web/).
        row(
            ("http/web/mod.rs", "GET", "/"),
            "GET",
            "/",
            V::Browser,
            N::Nothing,
            P::Empty,
            [303, 200, 200, 200, 303],
        ),
        row(
            ("http/web/mod.rs", "GET", "/login"),
            "GET",
            "/login",
            V::Browser,
            N::Nothing,
            P::Empty,
            [200, 303, 303, 303, 200],
        ),
        row(
            ("http/web/mod.rs", "POST", "/login"),
            "POST",
            "/login",
            V::Nothing,
            N::Nothing,
            P::LoginForm,
            [401, 303, 303, 303, 401],
        ),
        row(
            ("http/web/mod.rs", "GET", "/setup"),
            "GET",
            "/setup",
            V::Browser,
            N::Nothing,
            P::Empty,
            [303; 5],
        ),
        row(
            ("http/web/mod.rs", "POST", "/setup"),
            "POST",
            "/setup",
            V::Browser,
            N::Nothing,
            P::Form("token=x&username=mallory&password=whatever-long"),
            [303; 5],
        ),
        row(
            ("http/web/mod.rs", "POST", "/signup"),
            "POST",
            "/signup",
            V::Browser,
            N::Nothing,
            P::Form("username=mallory&password=whatever-long"),
            [403; 5],
        ),
        row(
            ("http/web/mod.rs", "GET", "/files"),
            "GET",
            "/files",
            V::Browser,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "POST", "/files"),
            "POST",
            "/files",
            V::Browser,
            N::Nothing,
            P::Upload,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "GET", "/files/:id"),
            "GET",
            "/files/{id}",
            V::Browser,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "DELETE", "/files/:id"),
            "DELETE",
            "/files/{id}",
            V::Browser,
            N::Unlocked,
            P::Empty,
            ADMIN_ONLY,
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/nudge"),
            "POST",
            "/files/{id}/nudge",
            V::Browser,
            N::Locked,
            P::Form("message=please"),
            // The holder cannot ask themselves.
            [401, 200, 409, 200, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/watch"),
            "POST",
            "/files/{id}/watch",
            V::Browser,
            N::Unlocked,
            P::Form("watch=on"),
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "GET", "/notifications"),
            "GET",
            "/notifications",
            V::Browser,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "POST", "/notifications/read"),
            "POST",
            "/notifications/read",
            V::Browser,
            N::Nothing,
            P::Form("all=true"),
            [401, 303, 303, 303, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/view"),
            "POST",
            "/view",
            V::Browser,
            N::Nothing,
            P::Form("set_view=table"),
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "POST", "/watches"),
            "POST",
            "/watches",
            V::Browser,
            N::Nothing,
            P::Form("folder=parts&watch=on"),
            [401, 303, 303, 303, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/checkout"),
            "POST",
            "/files/{id}/checkout",
            V::Browser,
            N::Unlocked,
            P::Form("comment=mine"),
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/cancel"),
            "POST",
            "/files/{id}/cancel",
            V::Browser,
            N::Locked,
            P::Empty,
            HOLDER_ONLY,
        ),
        // Several files at once (change sets), a move and a description.
        row(
            ("http/web/mod.rs", "POST", "/files/checkout"),
            "POST",
            "/files/checkout",
            V::Browser,
            N::Unlocked,
            P::FormWith("ids={id}&comment=set"),
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/cancel"),
            "POST",
            "/files/cancel",
            V::Browser,
            N::Locked,
            P::FormWith("ids={id}"),
            HOLDER_ONLY,
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/checkin"),
            "POST",
            "/files/checkin",
            V::Browser,
            N::Locked,
            P::CheckinSet,
            HOLDER_ONLY,
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/bulk"),
            "POST",
            "/files/bulk",
            V::Browser,
            N::Nothing,
            P::Bulk,
            SIGNED_IN,
        ),
        // Moving a held file: its holder only (an admin too once it is free).
        row(
            ("http/web/mod.rs", "POST", "/files/:id/move"),
            "POST",
            "/files/{id}/move",
            V::Browser,
            N::Locked,
            P::FormWith("path=matrix/moved-{n}.bin"),
            [401, 409, 200, 409, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/describe"),
            "POST",
            "/files/{id}/describe",
            V::Browser,
            N::Locked,
            P::FormWith("description=described {n}"),
            [401, 409, 200, 200, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/checkin"),
            "POST",
            "/files/{id}/checkin",
            V::Browser,
            N::Locked,
            P::Checkin,
            HOLDER_ONLY,
        ),
        // Waiting in line: anyone but the holder; leaving and declining
        // are refused (409) when the caller is not waiting or not next.
        row(
            ("http/web/mod.rs", "POST", "/files/:id/queue"),
            "POST",
            "/files/{id}/queue",
            V::Browser,
            N::Locked,
            P::Empty,
            [401, 200, 409, 200, 401],
        ),
        // Waiting in line: anyone but the holder; leaving and declining
        // are refused (409) when the caller is not waiting or not next.
        row(
            ("http/web/mod.rs", "POST", "/files/:id/queue/leave"),
            "POST",
            "/files/{id}/queue/leave",
            V::Browser,
            N::Locked,
            P::Empty,
            [401, 409, 409, 409, 401],
        ),
        // Waiting in line: anyone but the holder; leaving and declining
        // are refused (409) when the caller is not waiting or not next.
        row(
            ("http/web/mod.rs", "POST", "/files/:id/decline"),
            "POST",
            "/files/{id}/decline",
            V::Browser,
            N::Locked,
            P::Empty,
            [401, 409, 409, 409, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/override"),
            "POST",
            "/files/{id}/override",
            V::Browser,
            N::Locked,
            P::Empty,
            ADMIN_ONLY,
        ),
        row(
            ("http/web/mod.rs", "POST", "/files/:id/delete"),
            "POST",
            "/files/{id}/delete",
            V::Browser,
            N::Unlocked,
            P::Empty,
            ADMIN_ONLY,
        ),
        row(
            ("http/web/mod.rs", "GET", "/files/:id/history"),
            "GET",
            "/files/{id}/history",
            V::Browser,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "GET", "/files/:id/download"),
            "GET",
            "/files/{id}/download",
            V::Browser,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "GET", "/files/:id/preview"),
            "GET",
            "/files/{id}/preview",
            V::Browser,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        // The fixture's bytes are no image: signed in, the answer is 404
        // ("not shown inline"); signed out, 401 before anything is read.
        row(
            ("http/web/mod.rs", "GET", "/files/:id/raw"),
            "GET",
            "/files/{id}/raw",
            V::Browser,
            N::Unlocked,
            P::Empty,
            [401, 404, 404, 404, 401],
        ),
        row(
            ("http/web/mod.rs", "GET", "/files/:id/diff"),
            "GET",
            "/files/{id}/diff?from={head}&to={head}",
            V::Browser,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "GET", "/activity"),
            "GET",
            "/activity",
            V::Browser,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "GET", "/admin/users"),
            "GET",
            "/admin/users",
            V::Browser,
            N::Nothing,
            P::Empty,
            ADMIN_ONLY,
        ),
        row(
            ("http/web/mod.rs", "GET", "/admin/locks"),
            "GET",
            "/admin/locks",
            V::Browser,
            N::Nothing,
            P::Empty,
            ADMIN_ONLY,
        ),
        row(
            ("http/web/mod.rs", "POST", "/admin/users"),
            "POST",
            "/admin/users",
            V::Browser,
            N::Nothing,
            P::NewUserForm,
            [401, 403, 403, 303, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/admin/users/:name"),
            "POST",
            "/admin/users/tess",
            V::Browser,
            N::Nothing,
            P::Form("display_name=Tess"),
            [401, 403, 403, 303, 401],
        ),
        row(
            ("http/web/mod.rs", "GET", "/account"),
            "GET",
            "/account",
            V::Browser,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "POST", "/account/tokens"),
            "POST",
            "/account/tokens",
            V::Browser,
            N::Nothing,
            P::Form("name=laptop"),
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "POST", "/account/mail"),
            "POST",
            "/account/mail",
            V::Browser,
            N::Nothing,
            P::Form("email=someone%40example.com&reserved=on"),
            [401, 303, 303, 303, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/account/tokens/:id/revoke"),
            "POST",
            "/account/tokens/{token}/revoke",
            V::Browser,
            N::HolderToken,
            P::Empty,
            [401, 404, 303, 303, 401],
        ),
        row(
            ("http/web/mod.rs", "GET", "/ws"),
            "GET",
            "/ws",
            V::WebSocket,
            N::Nothing,
            P::Empty,
            [401, 101, 101, 101, 401],
        ),
        // Presence: closing a tab's drawer (empty file) is always accepted;
        // naming a file needs a live connection from that tab (presence.rs).
        row(
            ("http/web/mod.rs", "POST", "/live/viewing"),
            "POST",
            "/live/viewing",
            V::Browser,
            N::Nothing,
            P::Form("tab=matrix&file="),
            [401, 204, 204, 204, 401],
        ),
        row(
            ("http/web/mod.rs", "GET", "/events"),
            "GET",
            "/events",
            V::Browser,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/web/mod.rs", "GET", "/healthz"),
            "GET",
            "/healthz",
            V::Nothing,
            N::Nothing,
            P::Empty,
            PUBLIC,
        ),
        // Mounted in src/http/mod.rs.
        row(
            ("http/mod.rs", "NEST", "/assets"),
            "GET",
            "/assets/app.css",
            V::Nothing,
            N::Nothing,
            P::Empty,
            PUBLIC,
        ),
        row(
            ("http/mod.rs", "ANY", "/api/openapi.json"),
            "GET",
            "/api/openapi.json",
            V::Nothing,
            N::Nothing,
            P::Empty,
            PUBLIC,
        ),
        row(
            ("http/mod.rs", "NEST", "/api/docs"),
            "GET",
            "/api/docs/",
            V::Nothing,
            N::Nothing,
            P::Empty,
            PUBLIC,
        ),
        row(
            ("http/mod.rs", "NEST", "/api"),
            "GET",
            "/api/no-such-route",
            V::Token,
            N::Nothing,
            P::Empty,
            [404; 5],
        ),
        row(
            ("http/mod.rs", "GET", "/metrics"),
            "GET",
            "/metrics",
            V::Token,
            N::Nothing,
            P::Empty,
            ADMIN_ONLY,
        ),
        // The JSON API (src/http/api/, under /api).
        row(
            ("http/api/mod.rs", "POST", "/login"),
            "POST",
            "/api/login",
            V::Nothing,
            N::Nothing,
            P::LoginJson,
            [401, 200, 200, 200, 401],
        ),
        row(
            ("http/api/mod.rs", "POST", "/tokens"),
            "POST",
            "/api/tokens",
            V::Token,
            N::Nothing,
            P::Json(r#"{"name":"ci"}"#),
            [401, 201, 201, 201, 401],
        ),
        row(
            ("http/api/mod.rs", "GET", "/tokens"),
            "GET",
            "/api/tokens",
            V::Token,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "DELETE", "/tokens/:id"),
            "DELETE",
            "/api/tokens/{token}",
            V::Token,
            N::HolderToken,
            P::Empty,
            [401, 404, 204, 204, 401],
        ),
        row(
            ("http/api/mod.rs", "GET", "/files"),
            "GET",
            "/api/files",
            V::Token,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "POST", "/files"),
            "POST",
            "/api/files",
            V::Token,
            N::Nothing,
            P::Upload,
            [401, 201, 201, 201, 401],
        ),
        row(
            ("http/api/mod.rs", "GET", "/files/:id"),
            "GET",
            "/api/files/{id}",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/sets.rs", "POST", "/checkout"),
            "POST",
            "/api/checkout",
            V::Token,
            N::Unlocked,
            P::JsonWith(r#"{"ids":[{id}],"comment":"set"}"#),
            SIGNED_IN,
        ),
        row(
            ("http/api/sets.rs", "POST", "/cancel"),
            "POST",
            "/api/cancel",
            V::Token,
            N::Locked,
            P::JsonWith(r#"{"ids":[{id}]}"#),
            HOLDER_ONLY,
        ),
        row(
            ("http/api/sets.rs", "POST", "/checkin"),
            "POST",
            "/api/checkin",
            V::Token,
            N::Locked,
            P::CheckinSet,
            HOLDER_ONLY,
        ),
        row(
            ("http/api/sets.rs", "POST", "/files/bulk"),
            "POST",
            "/api/files/bulk",
            V::Token,
            N::Nothing,
            P::Bulk,
            [401, 201, 201, 201, 401],
        ),
        row(
            ("http/api/sets.rs", "POST", "/files/:id/move"),
            "POST",
            "/api/files/{id}/move",
            V::Token,
            N::Locked,
            P::JsonWith(r#"{"path":"matrix/moved-{n}.bin"}"#),
            [401, 409, 200, 409, 401],
        ),
        row(
            ("http/api/mod.rs", "PATCH", "/files/:id"),
            "PATCH",
            "/api/files/{id}",
            V::Token,
            N::Locked,
            P::JsonWith(r#"{"description":"described {n}"}"#),
            [401, 409, 200, 200, 401],
        ),
        row(
            ("http/api/mod.rs", "POST", "/files/:id/nudge"),
            "POST",
            "/api/files/{id}/nudge",
            V::Token,
            N::Locked,
            P::Json(r#"{"message":"please"}"#),
            [401, 204, 409, 204, 401],
        ),
        row(
            ("http/api/mod.rs", "POST", "/files/:id/watch"),
            "POST",
            "/api/files/{id}/watch",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "DELETE", "/files/:id/watch"),
            "DELETE",
            "/api/files/{id}/watch",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "GET", "/watches"),
            "GET",
            "/api/watches",
            V::Token,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "POST", "/watches"),
            "POST",
            "/api/watches",
            V::Token,
            N::Nothing,
            P::Json(r#"{"folder":"parts/"}"#),
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "DELETE", "/watches"),
            "DELETE",
            "/api/watches",
            V::Token,
            N::Nothing,
            P::Json(r#"{"folder":"parts/"}"#),
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "GET", "/notifications"),
            "GET",
            "/api/notifications",
            V::Token,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "POST", "/notifications/read"),
            "POST",
            "/api/notifications/read",
            V::Token,
            N::Nothing,
            P::Json(r#"{"all":true}"#),
            [401, 204, 204, 204, 401],
        ),
        row(
            ("http/api/mod.rs", "POST", "/files/:id/checkout"),
            "POST",
            "/api/files/{id}/checkout",
            V::Token,
            N::Unlocked,
            P::Json(r#"{"comment":"mine"}"#),
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "POST", "/files/:id/cancel"),
            "POST",
            "/api/files/{id}/cancel",
            V::Token,
            N::Locked,
            P::Empty,
            HOLDER_ONLY,
        ),
        row(
            ("http/api/mod.rs", "POST", "/files/:id/checkin"),
            "POST",
            "/api/files/{id}/checkin",
            V::Token,
            N::Locked,
            P::Checkin,
            HOLDER_ONLY,
        ),
        // Waiting in line: anyone but the holder; leaving and declining
        // are refused (409) when the caller is not waiting or not next.
        row(
            ("http/api/mod.rs", "POST", "/files/:id/queue"),
            "POST",
            "/api/files/{id}/queue",
            V::Token,
            N::Locked,
            P::Empty,
            [401, 200, 409, 200, 401],
        ),
        // Waiting in line: anyone but the holder; leaving and declining
        // are refused (409) when the caller is not waiting or not next.
        row(
            ("http/api/mod.rs", "DELETE", "/files/:id/queue"),
            "DELETE",
            "/api/files/{id}/queue",
            V::Token,
            N::Locked,
            P::Empty,
            [401, 409, 409, 409, 401],
        ),
        // Waiting in line: anyone but the holder; leaving and declining
        // are refused (409) when the caller is not waiting or not next.
        row(
            ("http/api/mod.rs", "POST", "/files/:id/decline"),
            "POST",
            "/api/files/{id}/decline",
            V::Token,
            N::Locked,
            P::Empty,
            [401, 409, 409, 409, 401],
        ),
        row(
            ("http/api/mod.rs", "POST", "/files/:id/override"),
            "POST",
            "/api/files/{id}/override",
            V::Token,
            N::Locked,
            P::Empty,
            ADMIN_ONLY,
        ),
        row(
            ("http/api/mod.rs", "DELETE", "/files/:id"),
            "DELETE",
            "/api/files/{id}",
            V::Token,
            N::Unlocked,
            P::Empty,
            [401, 403, 403, 204, 401],
        ),
        row(
            ("http/api/mod.rs", "GET", "/files/:id/history"),
            "GET",
            "/api/files/{id}/history",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "GET", "/files/:id/content"),
            "GET",
            "/api/files/{id}/content",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/content.rs", "GET", "/files/:id/diff"),
            "GET",
            "/api/files/{id}/diff?from={head}&to={head}",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/content.rs", "GET", "/files/:id/preview"),
            "GET",
            "/api/files/{id}/preview",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/content.rs", "GET", "/folders/zip"),
            "GET",
            "/api/folders/zip?path=matrix",
            V::Token,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/mod.rs", "GET", "/api/folders/:path<^.+/zip$>"),
            "GET",
            "/api/folders/matrix/zip",
            V::GitBasic,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "GET", "/activity"),
            "GET",
            "/api/activity",
            V::Token,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "GET", "/presence"),
            "GET",
            "/api/presence",
            V::Token,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/me.rs", "GET", "/me"),
            "GET",
            "/api/me",
            V::Token,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/api/me.rs", "PATCH", "/me"),
            "PATCH",
            "/api/me",
            V::Token,
            N::Nothing,
            P::Json(r#"{"email":"someone@example.com","mail":{"watched":true}}"#),
            SIGNED_IN,
        ),
        row(
            ("http/api/mod.rs", "GET", "/users"),
            "GET",
            "/api/users",
            V::Token,
            N::Nothing,
            P::Empty,
            ADMIN_ONLY,
        ),
        row(
            ("http/api/mod.rs", "POST", "/users"),
            "POST",
            "/api/users",
            V::Token,
            N::Nothing,
            P::NewUserJson,
            [401, 403, 403, 201, 401],
        ),
        row(
            ("http/api/mod.rs", "PATCH", "/users/:username"),
            "PATCH",
            "/api/users/tess",
            V::Token,
            N::Nothing,
            P::Json(r#"{"display_name":"Tess"}"#),
            ADMIN_ONLY,
        ),
        row(
            ("http/api/backup.rs", "POST", "/admin/backup"),
            "POST",
            "/api/admin/backup",
            V::Token,
            N::Nothing,
            P::Json(r#"{"dir":"not/absolute"}"#),
            [401, 403, 403, 422, 401],
        ),
        // Git's view of the vault (src/http/lfs.rs, under /vault.git).
        row(
            ("http/mod.rs", "NEST", "/vault.git"),
            "GET",
            "/vault.git/info/refs",
            V::GitBasic,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/lfs.rs", "GET", "/info/lfs/locks"),
            "GET",
            "/vault.git/info/lfs/locks",
            V::GitBasic,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/lfs.rs", "POST", "/info/lfs/locks"),
            "POST",
            "/vault.git/info/lfs/locks",
            V::GitBasic,
            N::Unlocked,
            P::LfsPath,
            [401, 201, 201, 201, 401],
        ),
        row(
            ("http/lfs.rs", "POST", "/info/lfs/locks/verify"),
            "POST",
            "/vault.git/info/lfs/locks/verify",
            V::GitBasic,
            N::Nothing,
            P::Json("{}"),
            SIGNED_IN,
        ),
        row(
            ("http/lfs.rs", "POST", "/info/lfs/locks/:id/unlock"),
            "POST",
            "/vault.git/info/lfs/locks/{id}/unlock",
            V::GitBasic,
            N::Locked,
            P::Json("{}"),
            HOLDER_ONLY,
        ),
        row(
            ("http/lfs.rs", "POST", "/info/lfs/locks/:id/unlock"),
            "POST",
            "/vault.git/info/lfs/locks/{id}/unlock",
            V::GitBasic,
            N::Locked,
            P::Json(r#"{"force":true}"#),
            [401, 403, 200, 200, 401],
        ),
        row(
            ("http/lfs.rs", "POST", "/git-upload-pack"),
            "POST",
            "/vault.git/git-upload-pack",
            V::GitBasic,
            N::Nothing,
            P::GitLsRefs,
            SIGNED_IN,
        ),
        row(
            ("http/lfs.rs", "ANY", "/"),
            "GET",
            "/vault.git/",
            V::GitBasic,
            N::Nothing,
            P::Empty,
            [401, 404, 404, 404, 401],
        ),
        row(
            ("http/lfs.rs", "ANY", "/*path"),
            "GET",
            "/vault.git/HEAD",
            V::GitBasic,
            N::Nothing,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/lfs.rs", "ANY", "/*path"),
            "GET",
            "/vault.git/config",
            V::GitBasic,
            N::Nothing,
            P::Empty,
            [401, 404, 404, 404, 401],
        ),
        row(
            ("http/lfs.rs", "ANY", "/*path"),
            "POST",
            "/vault.git/git-receive-pack",
            V::GitBasic,
            N::Nothing,
            P::Empty,
            [403; 5],
        ),
        // These end sessions, so they run last, each on a fresh session.
        // The network drive (src/http/dav/): HTTP Basic only, as a WebDAV
        // client sends it; a browser's session cookie is refused.
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "PROPFIND",
            "/dav/{path}",
            V::GitBasic,
            N::Unlocked,
            P::Empty,
            [401, 207, 207, 207, 401],
        ),
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "GET",
            "/dav/{path}",
            V::GitBasic,
            N::Unlocked,
            P::Empty,
            SIGNED_IN,
        ),
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "GET",
            "/dav/{path}",
            V::Browser,
            N::Unlocked,
            P::Empty,
            [401; 5],
        ),
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "PUT",
            "/dav/matrix/dav-new-{n}.bin",
            V::GitBasic,
            N::Unlocked,
            P::Raw("new through the drive"),
            [401, 201, 201, 201, 401],
        ),
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "PUT",
            "/dav/{path}",
            V::GitBasic,
            N::Locked,
            P::Raw("a draft"),
            // The holder saves a draft; anyone else finds it locked.
            [401, 423, 204, 423, 401],
        ),
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "LOCK",
            "/dav/{path}",
            V::GitBasic,
            N::Unlocked,
            P::Raw(
                r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#,
            ),
            [401, 200, 200, 200, 401],
        ),
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "DELETE",
            "/dav/{path}",
            V::GitBasic,
            N::Unlocked,
            P::Empty,
            [401, 403, 403, 204, 401],
        ),
        row(
            ("http/mod.rs", "NEST", "/dav"),
            "MKCOL",
            "/dav/matrix/dav-dir-{n}",
            V::GitBasic,
            N::Unlocked,
            P::Empty,
            [401, 201, 201, 201, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/logout"),
            "POST",
            "/logout",
            V::Browser,
            N::FreshSession,
            P::Empty,
            [401, 303, 303, 303, 401],
        ),
        row(
            ("http/api/mod.rs", "POST", "/logout"),
            "POST",
            "/api/logout",
            V::Token,
            N::Nothing,
            P::Empty,
            [401, 204, 204, 204, 401],
        ),
        row(
            ("http/web/mod.rs", "POST", "/account/password"),
            "POST",
            "/account/password",
            V::Browser,
            N::FreshSession,
            P::SamePassword,
            [401, 303, 303, 303, 401],
        ),
    ]
}

/// Routes served only on the `--metrics-bind` address, never on the main
/// one (where `/metrics` is admin-only): a private listener by design.
const METRICS_LISTENER: [(&str, &str, &str); 2] = [
    ("http/metrics.rs", "GET", "/metrics"),
    ("http/metrics.rs", "GET", "/healthz"),
];

/// Sends one matrix row as `role`; returns the status.
async fn call(fx: &Fixture, r: &Row, role: usize) -> u16 {
    let n = fx.next();
    let (id, path) = match r.needs {
        N::Unlocked => {
            let path = format!("matrix/free-{n}.bin");
            (fx.upload(&path).await, path)
        }
        N::Locked => {
            let path = format!("matrix/held-{n}.bin");
            (fx.locked_by_holder(&path).await, path)
        }
        _ => (0, String::new()),
    };
    let token = if r.needs == N::HolderToken {
        fx.holder_token().await
    } else {
        0
    };
    let mut who = fx.roles[role].clone();
    if r.needs == N::FreshSession && !who.name.is_empty() && role != DISABLED {
        let (cookie, csrf) = sign_in(&fx.app, &fx.http, &who.name, &who.password).await;
        who.cookie = cookie;
        who.csrf = csrf;
    }
    let head = if r.url.contains("{head}") {
        let file: Value = fx
            .api(ADMIN, "GET", &format!("/api/files/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        file["head"].as_str().unwrap().to_string()
    } else {
        String::new()
    };
    let url = r
        .url
        .replace("{id}", &id.to_string())
        .replace("{token}", &token.to_string())
        .replace("{head}", &head)
        .replace("{path}", &path)
        .replace("{n}", &n.to_string());
    if r.via == V::WebSocket {
        // The matrix's one WebSocket route is `/ws`; 101 is "let in".
        assert_eq!(url, "/ws", "a WebSocket row other than /ws");
        let cookie = Some(who.cookie.as_str()).filter(|c| !c.is_empty());
        let base = &fx.app.base;
        return match ws_connect_with(base, cookie, Some(base), "").await {
            Ok(_) => 101,
            Err(status) => status,
        };
    }
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut rb = fx.http.request(method, fx.app.url(&url));
    match r.via {
        V::Browser => {
            rb = rb.header("HX-Request", "true");
            if !who.cookie.is_empty() {
                rb = rb.header("Cookie", &who.cookie);
            }
            if !who.csrf.is_empty() {
                rb = rb.header("X-CSRF-Token", &who.csrf);
            }
        }
        V::Token if !who.token.is_empty() => rb = rb.bearer_auth(&who.token),
        V::GitBasic if !who.token.is_empty() => rb = rb.basic_auth(&who.name, Some(&who.token)),
        _ => {}
    }
    let (name, password) = if role == ANON {
        ("nobody".to_string(), "wrong-password".to_string())
    } else {
        (who.name.clone(), who.password.clone())
    };
    rb = match r.payload {
        P::Empty => rb,
        P::Json(text) => rb.header("Content-Type", "application/json").body(text),
        P::Form(text) => rb
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(text),
        P::LoginJson => rb.json(&json!({"username": name, "password": password})),
        P::LoginForm => rb.form(&[("username", name), ("password", password)]),
        P::SamePassword => rb.form(&[("current", &who.password), ("password", &who.password)]),
        P::NewUserJson => {
            rb.json(&json!({"username": format!("new{n}"), "password": USER_PASSWORD}))
        }
        P::NewUserForm => rb.form(&[
            ("username", format!("new{n}")),
            ("password", USER_PASSWORD.to_string()),
        ]),
        P::Upload => rb.multipart(
            Form::new()
                .text("path", format!("matrix/new-{n}.bin"))
                .part("file", Part::bytes(b"new".to_vec()).file_name("n.bin")),
        ),
        P::Checkin => rb.multipart(Form::new().text("message", "matrix").part(
            "file",
            Part::bytes(format!("v{n}").into_bytes()).file_name("n.bin"),
        )),
        P::FormWith(text) => rb
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(filled(text, id, n as usize)),
        P::JsonWith(text) => rb
            .header("Content-Type", "application/json")
            .body(filled(text, id, n as usize)),
        P::CheckinSet => rb.multipart(Form::new().text("message", "matrix set").part(
            "file",
            Part::bytes(format!("set{n}").into_bytes()).file_name(path.to_string()),
        )),
        P::Bulk => rb.multipart(
            Form::new()
                .text("folder", format!("matrix/bulk-{n}"))
                .part("file", Part::bytes(b"a".to_vec()).file_name("a.bin"))
                .part("file", Part::bytes(b"b".to_vec()).file_name("sub/b.bin")),
        ),
        P::LfsPath => rb
            .header("Content-Type", "application/vnd.git-lfs+json")
            .body(json!({ "path": path }).to_string()),
        P::GitLsRefs => rb
            .header("Content-Type", "application/x-git-upload-pack-request")
            .header("Git-Protocol", "version=2")
            .body("0014command=ls-refs\n0000"),
        P::Raw(text) => rb.body(text),
    };
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    // Drain small bodies; a live stream (SSE) is just dropped.
    if r.url != "/events" {
        let _ = resp.bytes().await;
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_allows_exactly_the_roles_its_matrix_row_names() {
    let fx = Fixture::new().await;
    let mut wrong = Vec::new();
    for r in matrix() {
        for (role, want) in r.expect.iter().enumerate() {
            let got = call(&fx, &r, role).await;
            if got != *want {
                wrong.push(format!(
                    "{} {} as {}: got {got}, want {want}",
                    r.method, r.url, ROLES[role]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "authorization matrix:\n{}",
        wrong.join("\n")
    );
}

/// The routes the source declares: `.at("…", …)` / `.nest("…", …)` and
/// `#[oai(path = "…", method = "…")]`, as (file, method, path).
fn declared_routes() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for path in crate::common::rust_files(&root) {
        let file = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            for call in [".at(\"", ".nest(\"", ".nest_no_strip(\""] {
                let Some(rest) = line.find(call).map(|p| &line[p + call.len()..]) else {
                    continue;
                };
                let Some(end) = rest.find('"') else { continue };
                let path = &rest[..end];
                // The handler part may continue on the next lines.
                let mut tail = rest[end..].to_string();
                for next in text.lines().skip(i + 1).take(3) {
                    if tail.matches('(').count() > tail.matches(')').count() {
                        tail.push_str(next.trim());
                    }
                }
                let mut methods: Vec<&str> = Vec::new();
                if call != ".at(\"" {
                    methods.push("NEST");
                } else {
                    for (token, method) in [
                        ("get(", "GET"),
                        ("post(", "POST"),
                        ("put(", "PUT"),
                        ("delete(", "DELETE"),
                        ("patch(", "PATCH"),
                    ] {
                        let found = tail.match_indices(token).any(|(p, _)| {
                            p == 0
                                || matches!(
                                    tail.as_bytes()[p - 1],
                                    b'.' | b' ' | b':' | b',' | b'('
                                )
                        });
                        if found {
                            methods.push(method);
                        }
                    }
                    if methods.is_empty() {
                        methods.push("ANY");
                    }
                }
                for m in methods {
                    out.insert((file.clone(), m.to_string(), path.to_string()));
                }
            }
            if let Some(rest) = line.strip_prefix("#[oai(path = \"") {
                let path = rest.split('"').next().unwrap_or_default();
                let method = rest
                    .split("method = \"")
                    .nth(1)
                    .and_then(|m| m.split('"').next())
                    .unwrap_or("?")
                    .to_ascii_uppercase();
                out.insert((file.clone(), method, path.to_string()));
            }
        }
    }
    out
}

#[test]
fn no_route_in_the_source_is_missing_from_the_authorization_matrix() {
    let declared = declared_routes();
    assert!(
        declared.len() > 40,
        "the route scan found too few routes ({}); has the routing code changed shape?",
        declared.len()
    );
    let covered: BTreeSet<(String, String, String)> = matrix()
        .iter()
        .map(|r| r.src)
        .chain(METRICS_LISTENER)
        .map(|(f, m, p)| (f.to_string(), m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = declared.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes with no row in the authorization matrix (tests/it/security.rs): {missing:#?}"
    );
    let stale: Vec<_> = covered.difference(&declared).collect();
    assert!(
        stale.is_empty(),
        "matrix rows for routes the source no longer declares: {stale:#?}"
    );
}

// ------------------------------------------------------------ web security

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_request_needs_the_csrf_token_and_a_same_site_origin() {
    let fx = Fixture::new().await;
    let evil = "http://evil.example";
    let mut wrong = Vec::new();
    for r in matrix() {
        if r.method == "GET" || r.via == V::WebSocket {
            continue;
        }
        // Sign-in forms carry no session yet: only the Origin checks apply.
        let sessionless = matches!(r.payload, P::LoginForm | P::LoginJson)
            || r.url == "/setup"
            || r.url == "/signup"
            || r.url.contains("git-receive-pack");
        let mut variants: Vec<Forgery> = vec![
            ("a foreign Origin", vec![("Origin", evil.to_string())], true),
            (
                "Sec-Fetch-Site: cross-site",
                vec![("Sec-Fetch-Site", "cross-site".into())],
                true,
            ),
            (
                "Sec-Fetch-Site: same-site",
                vec![("Sec-Fetch-Site", "same-site".into())],
                true,
            ),
            ("Origin: null", vec![("Origin", "null".into())], true),
        ];
        // Git's Basic credentials are not a cookie; the Origin checks cover
        // a browser replaying them.
        if !sessionless && r.via != V::GitBasic {
            variants.push(("no CSRF token", vec![], false));
        }
        for (what, headers, with_csrf) in variants {
            let (url, path, id) = prepare(&fx, &r).await;
            let before = fx.snapshot().await;
            let status = forged(&fx, &r, &url, &path, id, &headers, with_csrf).await;
            let after = fx.snapshot().await;
            if status != 403 {
                wrong.push(format!(
                    "{} {} with {what}: {status}, want 403",
                    r.method, r.url
                ));
            }
            if before != after {
                wrong.push(format!("{} {} with {what} changed state", r.method, r.url));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Makes the row's fixture and returns its URL.
async fn prepare(fx: &Fixture, r: &Row) -> (String, String, u64) {
    let n = fx.next();
    let path = format!("forged/file-{n}.bin");
    let id = match r.needs {
        N::Unlocked => fx.upload(&path).await,
        N::Locked => fx.locked_by_holder(&path).await,
        _ => 0,
    };
    let token = if r.needs == N::HolderToken {
        fx.holder_token().await
    } else {
        0
    };
    let url = r
        .url
        .replace("{id}", &id.to_string())
        .replace("{token}", &token.to_string())
        .replace("{path}", &path)
        .replace("{n}", &n.to_string());
    (url, path, id)
}

/// What a forged request varies: its name, extra headers, whether it carries the CSRF token.
type Forgery = (&'static str, Vec<(&'static str, String)>, bool);

/// The admin's browser session (or, for Git routes, cached Basic
/// credentials a browser would replay) on a request another site forged.
async fn forged(
    fx: &Fixture,
    r: &Row,
    url: &str,
    path: &str,
    id: u64,
    headers: &[(&str, String)],
    with_csrf: bool,
) -> u16 {
    let n = fx.next();
    let admin = &fx.roles[ADMIN];
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut rb = fx.http.request(method, fx.app.url(url));
    if r.via == V::GitBasic {
        rb = rb.basic_auth("admin", Some(ADMIN_PASSWORD));
    } else if r.via != V::Nothing {
        // htmx's header, so a refusal comes back as a status, not a redirect.
        rb = rb
            .header("Cookie", &admin.cookie)
            .header("HX-Request", "true");
        if with_csrf {
            rb = rb.header("X-CSRF-Token", &admin.csrf);
        }
    }
    for (name, value) in headers {
        rb = rb.header(*name, value);
    }
    rb = match r.payload {
        P::Empty => rb,
        P::Json(text) => rb.header("Content-Type", "application/json").body(text),
        P::Form(text) => rb
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(text),
        P::LoginJson => rb.json(&json!({"username": "admin", "password": ADMIN_PASSWORD})),
        P::LoginForm => rb.form(&[("username", "admin"), ("password", ADMIN_PASSWORD)]),
        P::SamePassword => rb.form(&[
            ("current", ADMIN_PASSWORD),
            ("password", "hijacked-password"),
        ]),
        P::NewUserJson => {
            rb.json(&json!({"username": format!("forged{n}"), "password": USER_PASSWORD}))
        }
        P::NewUserForm => rb.form(&[
            ("username", format!("forged{n}")),
            ("password", USER_PASSWORD.into()),
        ]),
        P::Upload => rb.multipart(
            Form::new()
                .text("path", format!("forged/new-{n}.bin"))
                .part("file", Part::bytes(b"x".to_vec()).file_name("x.bin")),
        ),
        P::Checkin => rb.multipart(Form::new().text("message", "forged").part(
            "file",
            Part::bytes(format!("f{n}").into_bytes()).file_name("x.bin"),
        )),
        P::FormWith(text) => rb
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(filled(text, id, n as usize)),
        P::JsonWith(text) => rb
            .header("Content-Type", "application/json")
            .body(filled(text, id, n as usize)),
        P::CheckinSet => rb.multipart(Form::new().text("message", "forged set").part(
            "file",
            Part::bytes(format!("set{n}").into_bytes()).file_name(path.to_string()),
        )),
        P::Bulk => rb.multipart(
            Form::new()
                .text("folder", format!("matrix/bulk-{n}"))
                .part("file", Part::bytes(b"a".to_vec()).file_name("a.bin"))
                .part("file", Part::bytes(b"b".to_vec()).file_name("sub/b.bin")),
        ),
        P::LfsPath => rb
            .header("Content-Type", "application/vnd.git-lfs+json")
            .body(json!({ "path": path }).to_string()),
        P::GitLsRefs => rb
            .header("Content-Type", "application/x-git-upload-pack-request")
            .header("Git-Protocol", "version=2")
            .body("0014command=ls-refs\n0000"),
        P::Raw(text) => rb.body(text),
    };
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    // A refused request must not have set a cookie (no login by forgery).
    if status == 403 {
        assert!(
            session_set_cookie(&resp).is_none(),
            "{} {} set a session cookie",
            r.method,
            url
        );
    }
    let _ = resp.bytes().await;
    status
}

#[tokio::test]
async fn a_script_with_basic_credentials_is_still_refused_when_a_browser_says_cross_site() {
    let fx = Fixture::new().await;
    let id = fx.locked_by_holder("basic/held.bin").await;
    let before = fx.snapshot().await;
    let resp = fx
        .request("POST", &format!("/api/files/{id}/override"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("Origin", "http://evil.example")
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(before, fx.snapshot().await);
    // The same call from a script (no browser headers) works.
    let resp = fx
        .request("POST", &format!("/api/files/{id}/override"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy_and_the_other_security_headers() {
    let fx = Fixture::new().await;
    let cookie = fx.roles[USER].cookie.clone();
    let id = fx.upload("headers/a.bin").await;
    for path in [
        "/".to_string(),
        "/login".into(),
        "/account".into(),
        "/activity".into(),
        format!("/files/{id}/history"),
        "/api/files".into(),
        "/no-such-page".into(),
    ] {
        let resp = fx
            .request("GET", &path)
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path} has no CSP"));
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src") || d.starts_with("default-src"))
            .unwrap_or_default();
        assert!(
            !csp.contains("'unsafe-inline'") || !script_src.contains("'unsafe-inline'"),
            "{path}: {csp}"
        );
        let script = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"));
        assert!(
            script.is_none_or(|s| !s.contains("unsafe-inline") && !s.contains("unsafe-eval")),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(
            h.get("x-content-type-options").unwrap(),
            "nosniff",
            "{path}"
        );
        assert!(
            h.get("referrer-policy").is_some(),
            "{path} has no Referrer-Policy"
        );
    }
}

#[tokio::test]
async fn downloads_are_attachments_with_an_escaped_name_and_nosniff() {
    let fx = Fixture::new().await;
    let mut ids = Vec::new();
    for (path, content) in [
        // '"' itself is refused in a path (Windows cannot name a file so).
        ("evil'.html", "<script>alert(document.cookie)</script>"),
        (
            "x.svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        ),
        ("a;b=c%41\u{e9}.txt", "<script>alert(2)</script>"),
    ] {
        let form = Form::new().text("path", path.to_string()).part(
            "file",
            Part::bytes(content.as_bytes().to_vec()).file_name("x"),
        );
        let resp = fx
            .api(USER, "POST", "/api/files")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{path}");
        ids.push(resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap());
    }
    for id in ids {
        for resp in [
            fx.browser(USER, "GET", &format!("/files/{id}/download"))
                .send()
                .await
                .unwrap(),
            fx.api(USER, "GET", &format!("/api/files/{id}/content"))
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(resp.status(), 200);
            let h = resp.headers();
            let cd = h
                .get("content-disposition")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert!(cd.starts_with("attachment;"), "{cd}");
            let quoted = cd
                .split("filename=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap();
            assert!(
                quoted.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                    && !quoted.contains(['\\', ';', '%']),
                "the fallback name is not plain ASCII: {cd}"
            );
            // Exactly two quotes: the fallback's own; the exact name is %-encoded.
            assert_eq!(cd.matches('"').count(), 2, "{cd}");
            let star = cd.split("filename*=UTF-8''").nth(1).unwrap();
            assert!(
                star.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{cd}"
            );
            assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
            let ct = h.get("content-type").unwrap().to_str().unwrap();
            assert!(
                !ct.contains("html") && !ct.contains("svg"),
                "rendered type {ct}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_sent_at_once_is_throttled_like_guesses_one_by_one() {
    let fx = Fixture::new().await;
    let guesses: Vec<_> = (0..60)
        .map(|i| {
            fx.request("POST", "/api/login")
                .json(&json!({"username": "ursula", "password": format!("guess-number-{i}")}))
                .send()
        })
        .collect();
    let mut tried = 0;
    for resp in futures_util::future::join_all(guesses).await {
        match resp.unwrap().status().as_u16() {
            401 => tried += 1,
            429 => {}
            other => panic!("a guess got {other}"),
        }
    }
    // Five free failures, plus at most one more per password check that was
    // already running when the fifth failure was recorded.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2);
    assert!(
        (5..=5 + cores).contains(&tried),
        "{tried} of 60 simultaneous guesses were checked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_wrong_passwords_does_not_grow_the_server() {
    // Each argon2 check takes 19 MiB; run on whatever blocking thread was
    // free, the allocator kept that much per thread for good (+1.9 GiB here).
    let tmp = tempfile::tempdir().unwrap();
    let server = binary::Server::start(&tmp.path().join("data"), &tmp.path().join("log")).await;
    let http = reqwest::Client::new();
    let login = |name: String| {
        http.post(format!("{}/api/login", server.base))
            .json(&json!({"username": name, "password": "wrong-password"}))
            .send()
    };
    assert_eq!(login("warmup".into()).await.unwrap().status(), 401);
    let before = server.rss_kib();
    let attempts: Vec<_> = (0..100).map(|i| login(format!("guess{i}"))).collect();
    for resp in futures_util::future::join_all(attempts).await {
        let status = resp.unwrap().status().as_u16();
        assert!(status == 401 || status == 429, "{status}");
    }
    let after = server.rss_kib();
    assert!(
        after < before + 256 * 1024,
        "100 concurrent sign-ins grew the server from {} MiB to {} MiB",
        before / 1024,
        after / 1024
    );
}

// --------------------------------------------------------- hostile inputs

enum Hostile {
    /// Raw bytes written to a fresh connection.
    Raw(Vec<u8>),
    /// A multipart upload to `/api/files` with these (name, bytes, file name) parts.
    Upload(Vec<(&'static str, Vec<u8>, Option<&'static str>)>),
    /// A JSON check-out of the existing file with this body.
    Checkout(String),
    /// A form post of an HTML check-out of the existing file with this body.
    FormCheckout(String),
    /// A check-in of the existing file (held by the user) with this message.
    CheckinMessage(String),
    /// GET this path (with the user's token).
    Get(String),
}

fn multipart_body(boundary: &str, parts: &[(&str, Vec<u8>, Option<&str>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value, file) in parts {
        body.extend(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend(value);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn file_part(content: &[u8]) -> (&'static str, Vec<u8>, Option<&'static str>) {
    ("file", content.to_vec(), Some("f.bin"))
}

fn text_part(
    name: &'static str,
    value: impl Into<Vec<u8>>,
) -> (&'static str, Vec<u8>, Option<&'static str>) {
    (name, value.into(), None)
}

async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before reading everything.
    let _ = stream.write_all(bytes).await;
    // End of request: a body shorter than announced is seen as cut off.
    let _ = stream.shutdown().await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut buf),
    )
    .await;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(200)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_clear_4xx_and_changes_nothing() {
    let app = TestApp::spawn_with(|c| c.max_upload = 64 * 1024).await;
    let fx = Fixture::with(app).await;
    let held = fx.locked_by_holder("hostile/held.bin").await;
    let token = fx.roles[HOLDER].token.clone();
    let host = fx.app.addr;
    let deep = "a/".repeat(10_000) + "x.bin";
    let long_comment = "x".repeat(501);
    let cases: Vec<(&str, Hostile, &[u16])> = vec![
        (
            "a 1 MiB header is refused before any handler runs",
            Hostile::Raw(
                format!(
                    "GET /api/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nX-Big: {}\r\n\r\n",
                    "a".repeat(1 << 20)
                )
                .into_bytes(),
            ),
            &[431, 400],
        ),
        (
            "ten thousand headers are refused",
            Hostile::Raw({
                let mut r = format!("GET /api/files HTTP/1.1\r\nHost: {host}\r\n");
                for i in 0..10_000 {
                    r.push_str(&format!("X-H{i}: v\r\n"));
                }
                r.push_str("\r\n");
                r.into_bytes()
            }),
            &[431, 400],
        ),
        (
            "an upload over the size limit is refused and nothing is kept",
            Hostile::Upload(vec![text_part("path", "hostile/big.bin"), file_part(&vec![7u8; 200 * 1024])]),
            &[413],
        ),
        (
            "a text field over 64 KiB is refused",
            Hostile::Upload(vec![text_part("description", vec![b'd'; 70 * 1024]), text_part("path", "hostile/d.bin"), file_part(b"x")]),
            &[413],
        ),
        (
            "a JSON body over 64 KiB is refused",
            Hostile::Checkout(format!("{{\"comment\":\"{}\"}}", "c".repeat(70 * 1024))),
            &[413],
        ),
        (
            "a multipart body cut off mid-part is malformed",
            Hostile::Raw({
                let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\nhostile/cut.bin\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\npartial content";
                let mut r = format!(
                    "POST /api/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            }),
            &[400],
        ),
        (
            "an upload whose connection drops mid-file keeps nothing",
            Hostile::Raw({
                let body = multipart_body("QwE", &[text_part("path", "hostile/short.bin"), file_part(&[b'z'; 4096])]);
                let mut r = format!(
                    "POST /api/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=QwE\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body[..body.len() / 2]);
                r
            }),
            &[400],
        ),
        (
            "invalid UTF-8 in a text field",
            Hostile::Upload(vec![text_part("path", b"hostile/\xff\xfe.bin".to_vec()), file_part(b"x")]),
            &[400],
        ),
        (
            "invalid UTF-8 in the uploaded file's name (used as the path)",
            Hostile::Raw({
                let mut body = b"--B1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\xff\xfe.bin\"\r\n\r\nx\r\n--B1--\r\n".to_vec();
                let mut r = format!(
                    "POST /api/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=B1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.append(&mut body);
                r
            }),
            &[400, 422],
        ),
        ("invalid UTF-8 in a URL path", Hostile::Get("/api/files/%FF%FE".into()), &[400, 404]),
        ("invalid UTF-8 in a query", Hostile::Get(format!("/api/files/{held}/content?rev=%FF")), &[400, 404]),
        ("a comment of 501 characters", Hostile::Checkout(json!({"comment": long_comment}).to_string()), &[422]),
        ("a comment with a NUL", Hostile::Checkout(json!({"comment": "a\u{0}b"}).to_string()), &[422]),
        ("a path 10,000 folders deep", Hostile::Upload(vec![text_part("path", deep), file_part(b"x")]), &[422]),
        ("a path with a NUL byte", Hostile::Upload(vec![text_part("path", "hostile/a\0b.bin"), file_part(b"x")]), &[422]),
        ("a path climbing out with ..", Hostile::Upload(vec![text_part("path", "../../etc/passwd"), file_part(b"x")]), &[422]),
        ("a path into .git", Hostile::Upload(vec![text_part("path", ".git/hooks/post-update"), file_part(b"x")]), &[422]),
        ("a path into .GIT (case)", Hostile::Upload(vec![text_part("path", "a/.GIT/config"), file_part(b"x")]), &[422]),
        ("NTFS's short name for .git", Hostile::Upload(vec![text_part("path", "GIT~1/config"), file_part(b"x")]), &[422]),
        ("HFS+ ignores U+200C, so this is .git on a Mac", Hostile::Upload(vec![text_part("path", ".gi\u{200c}t/config"), file_part(b"x")]), &[422]),
        ("an absolute path", Hostile::Upload(vec![text_part("path", "/etc/passwd"), file_part(b"x")]), &[422]),
        ("a backslash path", Hostile::Upload(vec![text_part("path", "..\\..\\x"), file_part(b"x")]), &[422]),
        ("a path of 256 bytes", Hostile::Upload(vec![text_part("path", "p".repeat(256)), file_part(b"x")]), &[422]),
        ("the path field twice", Hostile::Upload(vec![text_part("path", "hostile/one.bin"), text_part("path", "hostile/two.bin"), file_part(b"x")]), &[400]),
        ("the file part twice", Hostile::Upload(vec![text_part("path", "hostile/f2.bin"), file_part(b"x"), file_part(b"y")]), &[400]),
        ("a form field twice", Hostile::FormCheckout("comment=a&comment=b".into()), &[400]),
        ("an empty file", Hostile::Upload(vec![text_part("path", "hostile/empty.bin"), file_part(b"")]), &[422]),
        ("no file at all", Hostile::Upload(vec![text_part("path", "hostile/none.bin")]), &[422]),
        ("a revision that is not MAJOR.MINOR", Hostile::Upload(vec![text_part("path", "hostile/r.bin"), text_part("revision", "1.2.3"), file_part(b"x")]), &[422]),
        ("a check-in message forging a trailer", Hostile::CheckinMessage("fix\n\nLatch-Revision: 9.9".into()), &[422]),
        ("a check-in message forging a trailer after a lone CR", Hostile::CheckinMessage("fix\rLatch-User: admin".into()), &[422]),
        ("an empty check-in message", Hostile::CheckinMessage("   ".into()), &[422]),
        ("malformed JSON", Hostile::Checkout("{\"comment\":".into()), &[400]),
        ("a file id that is not a number", Hostile::Get("/api/files/1e3".into()), &[400, 404]),
        ("a version id that is not a commit", Hostile::Get(format!("/api/files/{held}/content?rev=../../config")), &[404]),
    ];
    let mut wrong = Vec::new();
    for (why, case, allowed) in cases {
        let before = fx.snapshot().await;
        let status = match case {
            Hostile::Raw(bytes) => raw_exchange(fx.app.addr, &bytes).await,
            Hostile::Upload(parts) => {
                let boundary = "HostileBoundary7";
                fx.api(USER, "POST", "/api/files")
                    .header(
                        "Content-Type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(multipart_body(boundary, &parts))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
            Hostile::Checkout(body) => fx
                .api(USER, "POST", &format!("/api/files/{held}/checkout"))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            Hostile::FormCheckout(body) => fx
                .browser(USER, "POST", &format!("/files/{held}/checkout"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            Hostile::CheckinMessage(message) => fx
                .api(HOLDER, "POST", &format!("/api/files/{held}/checkin"))
                .multipart(
                    Form::new()
                        .text("message", message)
                        .part("file", Part::bytes(b"new".to_vec()).file_name("f")),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            Hostile::Get(path) => fx
                .api(USER, "GET", &path)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        };
        // A refused upload's spool file is removed just after the answer:
        // wait (a few seconds at most) for the state to come back before
        // calling it changed.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut after = fx.snapshot().await;
        while after != before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            after = fx.snapshot().await;
        }
        if !allowed.contains(&status) {
            wrong.push(format!("{why}: got {status}, want one of {allowed:?}"));
        }
        if before != after {
            wrong.push(format!("{why}: the request changed state"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The server is still fine.
    assert_eq!(
        fx.api(USER, "GET", "/api/files")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn look_alike_characters_are_ordinary_names_that_stay_inside_the_vault() {
    let fx = Fixture::new().await;
    // Decided: these are accepted as ordinary characters. They are not `/`
    // or `.`, so they can neither add a folder level nor climb out.
    for (raw, why) in [
        ("look\u{ff0f}alike.txt", "fullwidth solidus"),
        ("\u{2024}\u{2024}/x.txt", "two ONE DOT LEADERs"),
        ("\u{2025}/y.txt", "TWO DOT LEADER"),
        ("\u{ff0e}git/z.txt", "fullwidth full stop + git"),
        ("cafe\u{301}.txt", "decomposed é"),
        // Another folder: beside the decomposed one it would clash (409),
        // as a macOS clone would make them one file (tests/it/edge_vault.rs).
        ("other/caf\u{e9}.txt", "composed é"),
    ] {
        let form = Form::new()
            .text("path", raw.to_string())
            .part("file", Part::bytes(why.as_bytes().to_vec()).file_name("f"));
        let resp = fx
            .api(USER, "POST", "/api/files")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{why}");
        let file: Value = resp.json().await.unwrap();
        assert_eq!(file["path"], raw, "{why}: stored as given");
        let id = file["id"].as_u64().unwrap();
        let content = fx
            .api(USER, "GET", &format!("/api/files/{id}/content"))
            .send()
            .await
            .unwrap();
        assert_eq!(content.bytes().await.unwrap().as_ref(), why.as_bytes());
    }
    let vault = fx.app.vault_path();
    let Some(tree) = common::git(
        &vault,
        &["ls-tree", "-r", "-z", "--name-only", "refs/heads/main"],
    ) else {
        assert!(!common::have_tool("git", "git"));
        return;
    };
    let names: Vec<String> = String::from_utf8_lossy(&tree.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in &names {
        for part in name.split('/') {
            assert!(
                !part.eq_ignore_ascii_case(".git") && part != ".." && part != ".",
                "{name}"
            );
        }
    }
    // Nothing was written outside the vault's object store.
    let fsck = common::git(&vault, &["fsck", "--strict", "--no-dangling"]).unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

// --------------------------------------------------------- property tests

mod properties {
    use latch::domain::{
        Bump, CommitMessage, Description, LockComment, RepoPath, Revision, Username,
    };
    use proptest::prelude::*;

    fn path_like() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            Just(".git".to_string()),
            Just(".GiT".to_string()),
            Just("git~1".to_string()),
            Just(" ".to_string()),
            "[a-zA-Z0-9 ._~-]{1,12}",
            "\\PC{1,6}",
            any::<String>(),
        ];
        (
            proptest::collection::vec(part, 0..8),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(parts, lead, trail)| {
                let mut s = parts.join("/");
                if lead {
                    s.insert(0, '/');
                }
                if trail {
                    s.push('/');
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn an_accepted_path_is_safe_normal_and_round_trips(raw in prop_oneof![path_like(), any::<String>()]) {
            if let Ok(p) = RepoPath::parse(&raw) {
                let s = p.as_str();
                prop_assert!(!s.is_empty());
                prop_assert!(s.len() <= RepoPath::MAX_BYTES);
                prop_assert!(!s.starts_with('/'));
                prop_assert!(!s.contains('\\'));
                prop_assert!(!s.chars().any(char::is_control));
                for part in s.split('/') {
                    prop_assert!(!part.is_empty(), "empty part in {s:?}");
                    prop_assert!(part != "." && part != "..", "{s:?}");
                    prop_assert!(!part.eq_ignore_ascii_case(".git"), "{s:?}");
                    prop_assert!(!part.eq_ignore_ascii_case("git~1"), "{s:?}");
                    prop_assert_eq!(part.trim(), part);
                }
                prop_assert_eq!(RepoPath::parse(s), Ok(p.clone()));
            }
        }

        #[test]
        fn the_other_parsers_never_panic(raw in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            for input in [&raw, &lossy] {
                if let Ok(u) = Username::parse(input) {
                    prop_assert!((3..=32).contains(&u.as_str().len()));
                    prop_assert_eq!(Username::parse(u.as_str()), Ok(u.clone()));
                }
                if let Ok(r) = Revision::parse(input) {
                    prop_assert_eq!(Revision::parse(&r.to_string()), Ok(r));
                    let _ = r.bump(Bump::Minor).and_then(|r| r.bump(Bump::Major));
                }
                if let Ok(Some(c)) = LockComment::parse(input) {
                    prop_assert!(c.into_inner().chars().count() <= LockComment::MAX_CHARS);
                }
                if let Ok(m) = CommitMessage::parse(input) {
                    prop_assert!(!m.as_str().contains('\r'));
                }
                let _ = Description::parse(input);
                let _ = Bump::parse(input);
            }
        }

        #[test]
        fn revisions_round_trip(major in 0u32..1_000_000, minor in 0u32..1_000_000) {
            let r = Revision::parse(&format!("{major}.{minor}")).unwrap();
            prop_assert_eq!(r.to_string(), format!("{major}.{minor}"));
        }
    }
}
