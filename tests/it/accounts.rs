//! Accounts: signing in and out, the session cookie, throttling, admin user
//! management, API tokens (Bearer and Basic), first-run `/setup`, and the
//! `latch user add` command on a stopped or running data directory.

use std::io::{BufRead, Write};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::common::binary::latch;
use crate::common::http::{
    api_login, basic_header as basic, cookie_attributes as attributes,
    cookie_client as browser_client, cookie_value, plain_client,
};
use crate::common::{
    ADMIN_PASSWORD, Client, TestApp, USER_PASSWORD, expect_error, header, hidden_csrf, json_of,
    text,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Helpers local to this file.

/// The `Set-Cookie` line that sets `latch_session`; panics without one.
fn session_set_cookie(resp: &reqwest::Response) -> String {
    crate::common::http::session_set_cookie(resp)
        .unwrap_or_else(|| panic!("a latch_session cookie is set: {:?}", resp.headers()))
}

/// A request carrying only the given raw session cookie.
async fn me_with_cookie(app: &TestApp, token: &str) -> reqwest::Response {
    plain_client()
        .get(app.url("/api/me"))
        .header("Cookie", format!("latch_session={token}"))
        .send()
        .await
        .unwrap()
}

async fn me_with(app: &TestApp, auth: &str) -> reqwest::Response {
    plain_client()
        .get(app.url("/api/me"))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap()
}

/// Runs the real `latch` binary with `stdin`, with no LATCH_* settings from
/// the environment leaking in.
async fn latch_cli(args: &[&str], stdin: &str) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = latch()
            .args(&args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run latch");
        // A command that refuses at once (the data is in use) exits
        // without reading its input: a broken pipe here is that answer.
        if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------
// Signing in and out.

#[tokio::test]
async fn signing_in_sets_a_safe_session_cookie_and_signing_out_ends_the_session() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;

    let resp = api_login(&app.base, "alice", USER_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let set_cookie = session_set_cookie(&resp);
    let attrs = attributes(&set_cookie);
    assert!(attrs.contains(&"httponly".into()), "{set_cookie}");
    assert!(attrs.contains(&"samesite=lax".into()), "{set_cookie}");
    assert!(attrs.contains(&"path=/".into()), "{set_cookie}");
    assert!(
        !attrs.contains(&"secure".into()),
        "no Secure over plain HTTP by default: {set_cookie}"
    );
    let token = cookie_value(&set_cookie);
    assert_eq!(token.len(), 64, "a 256-bit token in hex");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["username"], "alice");
    assert_eq!(body["role"], "user");
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    assert!(csrf.len() >= 32, "{csrf}");

    let me = json_of(me_with_cookie(&app, &token).await, 200).await;
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("alice"), Some("user"))
    );
    // The names are case-insensitive at the door.
    assert_eq!(
        api_login(&app.base, "ALICE", USER_PASSWORD).await.status(),
        200
    );

    // The dashboard's hidden field carries the same CSRF token as the API answer.
    let page = plain_client()
        .get(app.url("/"))
        .header("Cookie", format!("latch_session={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hidden_csrf(&page), csrf);

    // Logging out needs the CSRF header, then ends the session for good.
    let resp = plain_client()
        .post(app.url("/api/logout"))
        .header("Cookie", format!("latch_session={token}"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403).await;
    assert_eq!(me_with_cookie(&app, &token).await.status(), 200);
    let resp = plain_client()
        .post(app.url("/api/logout"))
        .header("Cookie", format!("latch_session={token}"))
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    expect_error(me_with_cookie(&app, &token).await, 401).await;
    let resp = plain_client()
        .get(app.url("/"))
        .header("Cookie", format!("latch_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "a replayed cookie is a stranger");
    assert!(header(&resp, "location").starts_with("/login"));
}

#[tokio::test]
async fn the_html_sign_in_and_sign_out_work_as_plain_forms() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let http = browser_client();

    let resp = http.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "location")),
        (303, "/login".into())
    );
    let resp = http
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", USER_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), "/");
    let set_cookie = session_set_cookie(&resp);
    let attrs = attributes(&set_cookie);
    assert!(
        attrs.contains(&"httponly".into()) && attrs.contains(&"samesite=lax".into()),
        "{set_cookie}"
    );
    assert!(!attrs.contains(&"secure".into()), "{set_cookie}");
    let token = cookie_value(&set_cookie);

    let page = http
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&page);
    let resp = http.get(app.url("/login")).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "location")),
        (303, "/".into()),
        "signed in already"
    );

    // Sign-out without the form's token is refused; with it, the cookie is cleared.
    let resp = http
        .post(app.url("/logout"))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        me_with_cookie(&app, &token).await.status(),
        200,
        "still signed in"
    );
    let resp = http
        .post(app.url("/logout"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), "/login");
    let cleared = session_set_cookie(&resp);
    assert!(cleared.starts_with("latch_session=;"), "{cleared}");
    assert!(
        attributes(&cleared).contains(&"max-age=0".into()),
        "{cleared}"
    );
    expect_error(me_with_cookie(&app, &token).await, 401).await;
    let resp = http.get(app.url("/")).send().await.unwrap();
    assert_eq!(header(&resp, "location"), "/login");
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_configured_or_behind_a_trusted_https_proxy() {
    // An untrusted peer cannot claim HTTPS.
    let app = TestApp::spawn().await;
    let resp = plain_client()
        .post(app.url("/api/login"))
        .header("X-Forwarded-Proto", "https")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let claimed = session_set_cookie(&resp);
    assert!(
        !attributes(&claimed).contains(&"secure".into()),
        "{claimed}"
    );

    // With --secure-cookies, on the API and the HTML form.
    let app = TestApp::spawn_with(|c| c.secure_cookies = true).await;
    let resp = api_login(&app.base, "admin", ADMIN_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let set_cookie = session_set_cookie(&resp);
    let attrs = attributes(&set_cookie);
    assert!(attrs.contains(&"secure".into()), "{set_cookie}");
    assert!(
        attrs.contains(&"httponly".into()) && attrs.contains(&"samesite=lax".into()),
        "{set_cookie}"
    );
    let resp = plain_client()
        .post(app.url("/login"))
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(attributes(&session_set_cookie(&resp)).contains(&"secure".into()));

    // Behind a trusted proxy that says the browser used HTTPS (and only then).
    let app = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    for (proto, secure) in [("https", true), ("http", false)] {
        let resp = plain_client()
            .post(app.url("/api/login"))
            .header("X-Forwarded-Proto", proto)
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        let proxied = session_set_cookie(&resp);
        assert_eq!(
            attributes(&proxied).contains(&"secure".into()),
            secure,
            "X-Forwarded-Proto: {proto}: {proxied}"
        );
    }
}

#[tokio::test]
async fn every_sign_in_gets_a_new_token_ignores_a_planted_one_and_sessions_are_independent() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let first = api_login(&app.base, "alice", USER_PASSWORD).await;
    let first_token = cookie_value(&session_set_cookie(&first));
    let first_csrf = first.json::<Value>().await.unwrap()["csrf_token"].clone();
    let second = api_login(&app.base, "alice", USER_PASSWORD).await;
    let second_token = cookie_value(&session_set_cookie(&second));
    let second_csrf = second.json::<Value>().await.unwrap()["csrf_token"].clone();
    assert_ne!(first_token, second_token);
    assert_ne!(first_csrf, second_csrf);
    assert_eq!(me_with_cookie(&app, &first_token).await.status(), 200);
    assert_eq!(me_with_cookie(&app, &second_token).await.status(), 200);

    // Signing in again from a browser that already has a cookie replaces it.
    let http = browser_client();
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let resp = http
            .post(app.url("/login"))
            .form(&[("username", "alice"), ("password", USER_PASSWORD)])
            .send()
            .await
            .unwrap();
        tokens.push(cookie_value(&session_set_cookie(&resp)));
    }
    assert_ne!(tokens[0], tokens[1]);
    // A session's CSRF token does not work for another session.
    let resp = plain_client()
        .post(app.url("/api/logout"))
        .header("Cookie", format!("latch_session={first_token}"))
        .header("X-CSRF-Token", second_csrf.as_str().unwrap())
        .send()
        .await
        .unwrap();
    expect_error(resp, 403).await;

    // A session token planted in the browser before sign-in is never
    // adopted: every sign-in, on the API and the form, issues its own.
    let planted = format!("latch_session={}", "ab".repeat(32));
    let mut seen: std::collections::BTreeSet<String> = [first_token, second_token]
        .into_iter()
        .chain(tokens)
        .collect();
    for form in [false, true] {
        for _ in 0..2 {
            let rb = if form {
                plain_client()
                    .post(app.url("/login"))
                    .form(&[("username", "alice"), ("password", USER_PASSWORD)])
            } else {
                plain_client()
                    .post(app.url("/api/login"))
                    .json(&json!({"username": "alice", "password": USER_PASSWORD}))
            };
            let resp = rb.header("Cookie", &planted).send().await.unwrap();
            let token = cookie_value(&session_set_cookie(&resp));
            assert_ne!(
                format!("latch_session={token}"),
                planted,
                "the planted session was adopted"
            );
            assert_eq!(token.len(), 64, "256-bit token: {token}");
            assert!(seen.insert(token), "a session token was reused");
        }
    }
    // The planted value never became a session.
    expect_error(me_with_cookie(&app, &"ab".repeat(32)).await, 401).await;
}

#[tokio::test]
async fn a_wrong_password_an_unknown_user_and_a_disabled_account_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    app.create_user("dora", "user").await;
    let resp = app
        .admin()
        .await
        .patch_json("/api/users/dora", &json!({"disabled": true}))
        .await;
    assert_eq!(resp.status(), 200, "disable dora");
    let wrong = expect_error(api_login(&app.base, "alice", "not-the-password").await, 401).await;
    let unknown = expect_error(
        api_login(&app.base, "nobody", "not-the-password").await,
        401,
    )
    .await;
    let invalid = expect_error(api_login(&app.base, "x!", "not-the-password").await, 401).await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, invalid);
    assert!(
        !wrong.to_lowercase().contains("unknown") && !wrong.contains("alice"),
        "{wrong}"
    );

    let page = |user: &'static str| {
        let app_url = app.url("/login");
        async move {
            let resp = plain_client()
                .post(app_url)
                .form(&[("username", user), ("password", "not-the-password")])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "HTML sign-in failure for {user}");
            assert!(
                resp.headers()
                    .get("set-cookie")
                    .is_none_or(|c| !c.to_str().unwrap().starts_with("latch_session="))
            );
            resp.text().await.unwrap()
        }
    };
    let wrong_page = page("alice").await;
    let unknown_page = page("nobody").await;
    let disabled_page = page("dora").await;
    assert!(wrong_page.contains(&wrong), "the page says {wrong}");
    assert!(unknown_page.contains(&wrong), "the page says {wrong}");
    assert!(disabled_page.contains(&wrong), "the page says {wrong}");
    assert!(
        wrong_page.contains("The username or password is wrong."),
        "{wrong_page}"
    );

    // The whole JSON answer is the same, and a disabled account reads as a
    // wrong password even when its right password is given.
    let answer = |user: &'static str, password: &'static str| {
        let base = app.base.clone();
        async move {
            let resp = api_login(&base, user, password).await;
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let unknown_json = answer("nobody", "not-the-password").await;
    assert_eq!(unknown_json.0, 401);
    assert_eq!(
        answer("alice", "not-the-password").await,
        unknown_json,
        "unknown user vs wrong password (JSON)"
    );
    assert_eq!(
        answer("dora", "not-the-password").await,
        unknown_json,
        "unknown user vs disabled user (JSON)"
    );
    assert_eq!(
        answer("dora", USER_PASSWORD).await,
        unknown_json,
        "a disabled account is not revealed"
    );
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled_with_a_time_to_retry_on_the_api_and_the_form() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;

    let mut statuses = Vec::new();
    let mut first_429 = None;
    let mut retry_after = 0;
    for attempt in 1..=8 {
        let resp = api_login(&app.base, "alice", "wrong-password").await;
        let status = resp.status().as_u16();
        statuses.push(status);
        match status {
            401 => {}
            429 => {
                let secs: u64 = header(&resp, "retry-after")
                    .parse()
                    .expect("a 429 carries Retry-After in seconds");
                assert!((1..=300).contains(&secs), "{secs}");
                retry_after = retry_after.max(secs);
                if first_429.is_none() {
                    first_429 = Some((attempt, secs, expect_error(resp, 429).await));
                }
            }
            other => panic!("attempt {attempt}: {other}"),
        }
    }
    assert!(
        statuses.starts_with(&[401, 401, 401, 401, 401]),
        "five free failures: {statuses:?}"
    );
    let (attempt, secs, message) = first_429.expect("a 429 within 8 failed attempts");
    assert!(
        (5..=7).contains(&attempt),
        "throttled from about the sixth attempt, got {attempt}"
    );
    assert!(message.contains("try again in"), "{message}");
    assert!(
        message.contains(&secs.to_string()),
        "the sentence names the wait: {message}"
    );

    // While throttled, even the right password waits, on the API and the HTML form.
    let resp = api_login(&app.base, "alice", USER_PASSWORD).await;
    assert_eq!(resp.status(), 429);
    retry_after = retry_after.max(header(&resp, "retry-after").parse().unwrap_or(0));
    let resp = plain_client()
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", USER_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(header(&resp, "retry-after").parse::<u64>().is_ok());
    assert!(resp.text().await.unwrap().contains("try again in"));

    // After the wait, the right password gets in. Waiting out Retry-After
    // is what is tested here, so this sleep stays.
    tokio::time::sleep(Duration::from_millis(retry_after * 1000 + 300)).await;
    assert_eq!(
        api_login(&app.base, "alice", USER_PASSWORD).await.status(),
        200
    );
}

// ---------------------------------------------------------------------------
// User management.

#[tokio::test]
async fn an_admin_creates_and_changes_users_and_changes_end_their_sessions() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;

    let users = admin.get_json("/api/users").await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin"]);

    let created = json_of(
        admin
            .post_json(
                "/api/users",
                &json!({"username": "Bobby", "password": USER_PASSWORD, "role": "user", "display_name": "Bobby Tables"}),
            )
            .await,
        201,
    )
    .await;
    assert_eq!(created["username"], "bobby");
    assert_eq!(created["display_name"], "Bobby Tables");
    assert_eq!(created["role"], "user");
    assert_eq!(created["disabled"], false);
    assert!(created.get("password").is_none() && !created.to_string().contains("argon2"));

    let err = expect_error(
        admin
            .post_json(
                "/api/users",
                &json!({"username": "bobby", "password": USER_PASSWORD}),
            )
            .await,
        409,
    )
    .await;
    assert!(err.contains("taken"), "{err}");
    for (body, why) in [
        (
            json!({"username": "x", "password": USER_PASSWORD}),
            "a short name",
        ),
        (
            json!({"username": "bad name", "password": USER_PASSWORD}),
            "a space",
        ),
        (
            json!({"username": "carol", "password": "short"}),
            "a short password",
        ),
        (
            json!({"username": "carol", "password": USER_PASSWORD, "role": "root"}),
            "an unknown role",
        ),
        (
            json!({"username": "carol", "password": USER_PASSWORD, "display_name": "<b>x</b>"}),
            "markup in the name",
        ),
    ] {
        let resp = admin.post_json("/api/users", &body).await;
        assert_eq!(resp.status(), 422, "{why}");
    }
    assert_eq!(
        admin.get_json("/api/users").await["users"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A role change ends bobby's sessions; he signs in again as an admin.
    let bobby = app.login("bobby", USER_PASSWORD).await;
    assert_eq!(bobby.get("/api/me").await.status(), 200);
    let patched = json_of(
        admin
            .patch_json("/api/users/bobby", &json!({"role": "admin"}))
            .await,
        200,
    )
    .await;
    assert_eq!(patched["role"], "admin");
    expect_error(bobby.get("/api/me").await, 401).await;
    let bobby = app.login("bobby", USER_PASSWORD).await;
    assert_eq!(bobby.get_json("/api/me").await["role"], "admin");
    assert_eq!(
        bobby.get("/api/users").await.status(),
        200,
        "admins may list users"
    );

    // A password change ends sessions and swaps the password, also for
    // HTTP Basic, which remembers a good password for a while.
    assert_eq!(
        me_with(&app, &basic("bobby", USER_PASSWORD)).await.status(),
        200
    );
    assert_eq!(
        me_with(&app, &basic("bobby", USER_PASSWORD)).await.status(),
        200
    );
    let patched = json_of(
        admin
            .patch_json("/api/users/bobby", &json!({"password": "a-new-password-2"}))
            .await,
        200,
    )
    .await;
    assert_eq!(patched["username"], "bobby");
    expect_error(bobby.get("/api/me").await, 401).await;
    expect_error(api_login(&app.base, "bobby", USER_PASSWORD).await, 401).await;
    expect_error(me_with(&app, &basic("bobby", USER_PASSWORD)).await, 401).await;
    let bobby = app.login("bobby", "a-new-password-2").await;
    expect_error(
        admin
            .patch_json("/api/users/bobby", &json!({"password": "short"}))
            .await,
        422,
    )
    .await;

    // A display-name change alone keeps the session.
    let patched = json_of(
        admin
            .patch_json("/api/users/bobby", &json!({"display_name": "Robert"}))
            .await,
        200,
    )
    .await;
    assert_eq!(patched["display_name"], "Robert");
    assert_eq!(bobby.get_json("/api/me").await["display_name"], "Robert");

    // Disabling ends the sessions, and sign-in is refused with the usual sentence.
    let browser = browser_client();
    let resp = browser
        .post(app.url("/login"))
        .form(&[("username", "bobby"), ("password", "a-new-password-2")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let patched = json_of(
        admin
            .patch_json("/api/users/bobby", &json!({"disabled": true}))
            .await,
        200,
    )
    .await;
    assert_eq!(patched["disabled"], true);
    expect_error(bobby.get("/api/me").await, 401).await;
    expect_error(bobby.get("/api/files").await, 401).await;
    let resp = browser.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "location")),
        (303, "/login".into())
    );
    let err = expect_error(api_login(&app.base, "bobby", "a-new-password-2").await, 401).await;
    assert_eq!(err, "The username or password is wrong.");
    let users = admin.get_json("/api/users").await;
    let bob = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bobby")
        .unwrap();
    assert_eq!(bob["disabled"], true);

    // Enabled again, he can sign in.
    json_of(
        admin
            .patch_json("/api/users/bobby", &json!({"disabled": false}))
            .await,
        200,
    )
    .await;
    assert_eq!(
        api_login(&app.base, "bobby", "a-new-password-2")
            .await
            .status(),
        200
    );

    expect_error(
        admin
            .patch_json("/api/users/nobody", &json!({"disabled": true}))
            .await,
        404,
    )
    .await;
    expect_error(
        admin
            .patch_json("/api/users/bobby", &json!({"role": "owner"}))
            .await,
        422,
    )
    .await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_or_disabled() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let err = expect_error(
        admin
            .patch_json("/api/users/admin", &json!({"role": "user"}))
            .await,
        409,
    )
    .await;
    assert!(err.contains("last"), "{err}");
    expect_error(
        admin
            .patch_json("/api/users/admin", &json!({"disabled": true}))
            .await,
        409,
    )
    .await;
    assert_eq!(
        admin.get_json("/api/me").await["role"],
        "admin",
        "the session survived the refusal"
    );
}

#[tokio::test]
async fn users_cannot_list_create_or_change_users() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    expect_error(alice.get("/api/users").await, 403).await;
    let err = expect_error(
        alice
            .post_json(
                "/api/users",
                &json!({"username": "mallory", "password": USER_PASSWORD, "role": "admin"}),
            )
            .await,
        403,
    )
    .await;
    assert!(err.contains("admin"), "{err}");
    expect_error(
        alice
            .patch_json("/api/users/alice", &json!({"role": "admin"}))
            .await,
        403,
    )
    .await;
    expect_error(
        alice
            .patch_json("/api/users/admin", &json!({"disabled": true}))
            .await,
        403,
    )
    .await;
    assert_eq!(alice.get_json("/api/me").await["role"], "user");
    expect_error(api_login(&app.base, "mallory", USER_PASSWORD).await, 401).await;

    // The HTML users page and its forms too.
    let resp = alice.get("/admin/users").await;
    assert_eq!(resp.status(), 403);
    let resp = alice
        .http
        .post(alice.url("/admin/users"))
        .form(&[
            ("_csrf", alice.csrf.clone().unwrap().as_str()),
            ("username", "mallory"),
            ("password", USER_PASSWORD),
            ("role", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "refused back to the page with a flash");
    expect_error(api_login(&app.base, "mallory", USER_PASSWORD).await, 401).await;

    // Without credentials: 401.
    expect_error(app.anonymous().get("/api/users").await, 401).await;
}

// ---------------------------------------------------------------------------
// API tokens and HTTP Basic.

#[tokio::test]
async fn api_tokens_work_as_bearer_and_as_basic_passwords_until_revoked() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bobby").await;

    let created = json_of(
        alice
            .post_json("/api/tokens", &json!({"name": "cam-sync script"}))
            .await,
        201,
    )
    .await;
    let token = created["token"].as_str().unwrap().to_string();
    let token_id = created["id"].as_u64().unwrap();
    assert_eq!(created["name"], "cam-sync script");
    assert!(token.len() >= 64, "a 256-bit token: {token}");
    expect_error(
        alice.post_json("/api/tokens", &json!({"name": "  "})).await,
        422,
    )
    .await;

    // Listed by name, never shown again.
    let listed = alice.get_json("/api/tokens").await;
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["name"], "cam-sync script");
    assert_eq!(tokens[0]["id"], token_id);
    assert!(
        !listed.to_string().contains(&token),
        "the token is shown once only"
    );
    assert!(
        bob.get_json("/api/tokens").await["tokens"]
            .as_array()
            .unwrap()
            .is_empty(),
        "tokens are per user"
    );
    let account = alice.get("/account").await.text().await.unwrap();
    assert!(account.contains("cam-sync script") && !account.contains(&token));

    // Bearer: reads and writes, with no CSRF token needed.
    let bearer = format!("Bearer {token}");
    assert_eq!(
        json_of(me_with(&app, &bearer).await, 200).await["username"],
        "alice"
    );
    let form = reqwest::multipart::Form::new()
        .text("path", "parts/by-token.mcam")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
        );
    let resp = plain_client()
        .post(app.url("/api/files"))
        .header("Authorization", &bearer)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let file = json_of(resp, 201).await;
    let id = file["id"].as_u64().unwrap();
    let resp = plain_client()
        .post(app.url(&format!("/api/files/{id}/checkout")))
        .header("Authorization", &bearer)
        .json(&json!({"comment": "from a script"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(resp, 200).await["lock"]["owner"],
        "alice",
        "the token acts as its owner"
    );

    // Basic with the token as the password; the username must match.
    assert_eq!(
        json_of(me_with(&app, &basic("alice", &token)).await, 200).await["username"],
        "alice"
    );
    expect_error(me_with(&app, &basic("bobby", &token)).await, 401).await;
    // Basic with the account password.
    assert_eq!(
        json_of(me_with(&app, &basic("bobby", USER_PASSWORD)).await, 200).await["username"],
        "bobby"
    );
    expect_error(me_with(&app, &basic("bobby", "wrong-password")).await, 401).await;
    expect_error(me_with(&app, "Bearer latch_0000").await, 401).await;

    // Only its owner revokes it (others are told it does not exist).
    expect_error(bob.delete(&format!("/api/tokens/{token_id}")).await, 404).await;
    assert_eq!(me_with(&app, &bearer).await.status(), 200);
    let resp = alice.delete(&format!("/api/tokens/{token_id}")).await;
    assert_eq!(resp.status(), 204);
    expect_error(me_with(&app, &bearer).await, 401).await;
    expect_error(me_with(&app, &basic("alice", &token)).await, 401).await;
    expect_error(alice.delete(&format!("/api/tokens/{token_id}")).await, 404).await;
    assert!(
        alice.get_json("/api/tokens").await["tokens"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_disabled_users_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let token = json_of(
        alice.post_json("/api/tokens", &json!({"name": "t"})).await,
        201,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        me_with(&app, &format!("Bearer {token}")).await.status(),
        200
    );
    // Used (and so remembered) just before the account is disabled.
    assert_eq!(
        me_with(&app, &basic("alice", USER_PASSWORD)).await.status(),
        200
    );
    assert_eq!(
        me_with(&app, &basic("alice", USER_PASSWORD)).await.status(),
        200
    );
    assert_eq!(
        admin
            .patch_json("/api/users/alice", &json!({"disabled": true}))
            .await
            .status(),
        200
    );
    expect_error(me_with(&app, &format!("Bearer {token}")).await, 401).await;
    expect_error(me_with(&app, &basic("alice", &token)).await, 401).await;
    expect_error(me_with(&app, &basic("alice", USER_PASSWORD)).await, 401).await;
}

// ---------------------------------------------------------------------------
// First run: /setup.

#[tokio::test]
async fn with_no_users_every_page_leads_to_setup_which_needs_the_one_time_token() {
    let app = TestApp::spawn_with(|c| c.admin_password = None).await;
    let http = browser_client();
    for path in ["/", "/login"] {
        let resp = http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(header(&resp, "location"), "/setup", "{path}");
    }
    let resp = http.get(app.url("/setup")).send().await.unwrap();
    assert_eq!(resp.status(), 403, "no token, no form");
    assert!(resp.text().await.unwrap().contains("setup link"));
    let resp = http
        .get(app.url("/setup?token=0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a wrong token, no form");

    for token in ["", "0123456789abcdef0123456789abcdef", "guess"] {
        let resp = http
            .post(app.url("/setup"))
            .form(&[
                ("token", token),
                ("username", "mallory"),
                ("password", "mallory-password"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "refused with token {token:?}");
        assert!(
            resp.headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("latch_session="))
        );
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("The setup link is not valid"),
            "the form says why: {page}"
        );
        assert!(page.contains(r#"action="/setup""#), "and is shown again");
        assert!(
            !page.contains(r#"name="username" value="#),
            "the username is not pre-filled (a name typed after it became `adminmaria`)"
        );
    }
    expect_error(
        api_login(&app.base, "mallory", "mallory-password").await,
        401,
    )
    .await;
    let resp = http.get(app.url("/")).send().await.unwrap();
    assert_eq!(header(&resp, "location"), "/setup", "still not set up");
    expect_error(app.anonymous().get("/api/files").await, 401).await;
}

/// The real binary, killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_setup_link_in_the_log_creates_the_first_admin_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let child = latch()
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .env("NO_COLOR", "1")
        .env("LATCH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start latch serve");
    let mut server = Server(child);
    let stdout = server.0.stdout.take().unwrap();
    // The log is read on a thread; the setup URL arrives within seconds.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(at) = line.find("http://")
                && line.contains("/setup?token=")
            {
                let url: String = line[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '\u{1b}')
                    .collect();
                let _ = tx.send(url);
            }
        }
    });
    let url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the log prints a one-time /setup?token=… link");
    let (base, token) = url.split_once("/setup?token=").unwrap();
    let token: String = token.chars().take_while(char::is_ascii_hexdigit).collect();
    assert!(token.len() >= 16, "{url}");
    let http = browser_client();

    let resp = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(header(&resp, "location"), "/setup");
    let resp = http
        .get(format!("{base}/setup?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let form = resp.text().await.unwrap();
    assert!(
        form.contains(&format!(r#"name="token" value="{token}""#)),
        "the form carries the token"
    );

    let resp = http
        .post(format!("{base}/setup"))
        .form(&[
            ("token", "ffff"),
            ("username", "mallory"),
            ("password", "mallory-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("The setup link is not valid")
    );
    // A bad password keeps the token in the form so the link need not be opened again.
    let resp = http
        .post(format!("{base}/setup"))
        .form(&[
            ("token", token.as_str()),
            ("username", "boss"),
            ("password", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("at least 8 characters"), "{page}");
    assert!(page.contains(&format!(r#"name="token" value="{token}""#)));
    let resp = http
        .post(format!("{base}/setup"))
        .form(&[
            ("token", token.as_str()),
            ("username", "boss"),
            ("display_name", "The Boss"),
            ("password", "boss-password-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(header(&resp, "location"), "/");
    assert!(
        !session_set_cookie(&resp).is_empty(),
        "signed in as the new admin"
    );
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"data-role="admin""#) && page.contains("The Boss"),
        "the dashboard, as admin"
    );
    assert!(
        !page.contains("setup link"),
        "no stale error from the refused attempt: {page}"
    );

    // Once only.
    let resp = http
        .get(format!("{base}/setup?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "location")),
        (303, "/login".into())
    );
    let late = browser_client();
    let resp = late
        .post(format!("{base}/setup"))
        .form(&[
            ("token", token.as_str()),
            ("username", "second"),
            ("password", "second-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "location")),
        (303, "/login".into())
    );
    let page = late
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("already set up"),
        "told to sign in instead: {page}"
    );
    let login = |u: &'static str, p: &'static str| {
        let url = format!("{base}/api/login");
        async move {
            plain_client()
                .post(url)
                .json(&json!({"username": u, "password": p}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        json_of(login("boss", "boss-password-1").await, 200).await["role"],
        "admin"
    );
    expect_error(login("second", "second-password").await, 401).await;
    expect_error(login("mallory", "mallory-password").await, 401).await;
    drop(server);
}

// ---------------------------------------------------------------------------
// The `latch user add` command.

#[tokio::test]
async fn latch_user_add_works_on_a_stopped_data_dir_and_refuses_a_running_one() {
    let mut app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let data = app.data_dir.to_str().unwrap().to_string();

    // While the server runs, the database is held: a clear refusal.
    let out = latch_cli(
        &["user", "add", "dave", "--data", &data],
        "dave-password-1\n",
    )
    .await;
    assert!(!out.status.success(), "refused while running");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("in use"),
        "says the data is in use: {stderr}"
    );
    assert!(stderr.contains("stop"), "says what to do: {stderr}");

    app.stop().await;
    let out = latch_cli(
        &["user", "add", "carol", "--admin", "--data", &data],
        "carol-password-1\n",
    )
    .await;
    assert!(
        out.status.success(),
        "stdout: {} stderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("Added carol (admin)"),
        "{}",
        text(&out.stdout)
    );
    let out = latch_cli(
        &["user", "add", "erin", "--data", &data],
        "erin-password-1\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Added erin (user)"));

    for (args, stdin, says) in [
        (
            vec!["user", "add", "carol", "--data", &data],
            "carol-password-2\n",
            "taken",
        ),
        (
            vec!["user", "add", "frank", "--data", &data],
            "short\n",
            "at least 8",
        ),
        (
            vec!["user", "add", "Bad Name!", "--data", &data],
            "frank-password-1\n",
            "username",
        ),
    ] {
        let out = latch_cli(&args, stdin).await;
        assert!(!out.status.success(), "{args:?} fails");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    app.restart().await;
    let carol = app.login("carol", "carol-password-1").await;
    assert_eq!(carol.get_json("/api/me").await["role"], "admin");
    assert_eq!(
        app.login("erin", "erin-password-1")
            .await
            .get_json("/api/me")
            .await["role"],
        "user"
    );
    assert_eq!(
        app.login("alice", USER_PASSWORD)
            .await
            .get("/api/me")
            .await
            .status(),
        200
    );
    expect_error(api_login(&app.base, "dave", "dave-password-1").await, 401).await;
    expect_error(api_login(&app.base, "frank", "frank-password-1").await, 401).await;
}

#[tokio::test]
async fn a_first_admin_added_by_the_cli_skips_setup() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("fresh");
    let out = latch_cli(
        &[
            "user",
            "add",
            "root",
            "--admin",
            "--data",
            data.to_str().unwrap(),
        ],
        "root-password-1\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = TestApp::start(&data, |c| c.admin_password = None).await;
    let resp = app.anonymous().get("/").await;
    assert_eq!(
        header(&resp, "location"),
        "/login",
        "no setup once a user exists"
    );
    let resp = app.anonymous().get("/setup").await;
    assert_eq!(header(&resp, "location"), "/login");
    let root: Client = app.login("root", "root-password-1").await;
    assert_eq!(root.get_json("/api/me").await["role"], "admin");
    expect_error(api_login(&app.base, "admin", ADMIN_PASSWORD).await, 401).await;
}

/// A session that ends under someone's feet: the next action lands on the
/// sign-in page, which says why, and signing in goes back to the page they
/// were on — only ever a page of this server.
#[tokio::test]
async fn an_ended_session_says_so_and_signing_in_goes_back_to_the_page() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("back/part.nc", b"x").await;
    // A cookie the server no longer knows (signed out elsewhere, expired).
    let stale = "latch_session=0123456789abcdef0123456789abcdef";
    let resp = plain_client()
        .post(app.url(&format!("/files/{id}/checkout")))
        .header("Cookie", stale)
        .header("HX-Request", "true")
        .header("HX-Current-URL", format!("{}/?q=back&state=all", app.base))
        .form(&[("comment", "half typed")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let to = header(&resp, "hx-redirect");
    assert_eq!(to, "/login?ended=1&next=%2F%3Fq%3Dback%26state%3Dall");
    let page = plain_client()
        .get(app.url(&to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Your session ended"), "{page}");
    assert!(page.contains("taken back to where you were"), "{page}");
    assert!(
        page.contains(r#"name="next" value="/?q=back&amp;state=all""#),
        "{page}"
    );
    // A page asked for without a session comes back after signing in.
    let resp = plain_client()
        .get(app.url(&format!("/files/{id}/history")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&resp, "location"),
        format!("/login?next=%2Ffiles%2F{id}%2Fhistory")
    );
    for (next, lands) in [
        ("/?q=back&state=all", "/?q=back&state=all"),
        (
            &format!("/files/{id}/history") as &str,
            &format!("/files/{id}/history") as &str,
        ),
        // Never another site, nor a sign-in page, nor the API.
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/logout", "/"),
        ("/api/files", "/"),
    ] {
        let resp = plain_client()
            .post(app.url("/login"))
            .form(&[
                ("username", "alice"),
                ("password", USER_PASSWORD),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{next}");
        assert_eq!(header(&resp, "location"), lands, "next={next}");
    }
}

/// A refused Add user form (a taken name, a short password) comes back
/// with the sentence and what was typed, the password excepted.
#[tokio::test]
async fn a_refused_add_user_form_keeps_what_was_typed() {
    let app = TestApp::spawn().await;
    app.create_user("carol", "user").await;
    let http = Client::form_login(&app.base, "admin", ADMIN_PASSWORD).await;
    let page = http
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&page);
    for (fields, status, says) in [
        (
            [
                ("username", "carol"),
                ("display_name", "Carol Two"),
                ("password", "long-enough-1"),
                ("role", "admin"),
            ],
            409,
            "carol",
        ),
        (
            [
                ("username", "dave"),
                ("display_name", "Dave D."),
                ("password", "short"),
                ("role", "admin"),
            ],
            422,
            "8 characters",
        ),
    ] {
        let mut form = fields.to_vec();
        form.push(("_csrf", &csrf));
        let resp = http
            .post(app.url("/admin/users"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        let page = resp.text().await.unwrap();
        assert!(page.contains(says), "{page}");
        assert!(
            page.contains(&format!(r#"name="username" value="{}""#, fields[0].1)),
            "{page}"
        );
        assert!(
            page.contains(&format!(r#"name="display_name" value="{}""#, fields[1].1)),
            "{page}"
        );
        assert!(
            page.contains(r#"<option value="admin" selected>"#),
            "{page}"
        );
        assert!(
            !page.contains(fields[2].1),
            "the password is never sent back"
        );
    }
}
