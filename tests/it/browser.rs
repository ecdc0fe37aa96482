//! Latch driven through headless Chromium: the check-out / check-in flow as
//! a person clicks it, live updates between several browsers (WebSocket and
//! SSE), the plain-form fallback without JavaScript, and the README picture.
//!
//! Every test skips politely when chromedriver or Chromium is missing (and
//! fails under `LATCH_REQUIRE_ALL=1`). Screenshots land in
//! `target/screenshots/`. Waits poll the DOM with a generous ceiling; no test
//! asserts on how fast anything happened.

use std::path::PathBuf;

use crate::common::browser::{self, Browser, Driver, Options};
use crate::common::{self, ADMIN_PASSWORD, TestApp, USER_PASSWORD};
use serde_json::{Value, json};

/// The cast of the live tests: Alice signed in to a browser, Bob on the API
/// with one file he uploaded. `None` (skip) without a browser.
struct AliceWatchesBob {
    app: TestApp,
    bob: common::Client,
    id: u64,
    _driver: Driver,
    alice: Browser,
}

async fn alice_watches_bob() -> Option<AliceWatchesBob> {
    if !browser::browser_available() {
        return None;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let bob = app.user("bob").await;
    let id = bob.upload_ok("parts/bracket.mcam", b"v1").await;
    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    Some(AliceWatchesBob {
        app,
        bob,
        id,
        _driver: driver,
        alice,
    })
}

/// A file on disk for the browser's file picker (which wants an absolute path).
fn disk_file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write temp file");
    path
}

/// A card's state as the page shows it: `[data-state, data-locked-by, text]`.
async fn card(b: &Browser, id: u64) -> Value {
    b.exec(
        "const c = document.getElementById('file-' + arguments[0]);
         return c ? [c.dataset.state, c.dataset.lockedBy || null, c.innerText] : null;",
        json!([id]),
    )
    .await
}

/// Waits until card `id` shows `state` (and `holder`, when locked).
async fn wait_card(b: &Browser, id: u64, state: &str, holder: Option<&str>, what: &str) {
    let holder_check = match holder {
        Some(h) => format!("c.dataset.lockedBy === {}", json!(h)),
        None => "!c.dataset.lockedBy".to_string(),
    };
    b.wait_until(
        &format!(
            "(() => {{ const c = document.getElementById('file-{id}');
                return !!c && c.dataset.state === {} && {holder_check}; }})()",
            json!(state)
        ),
        what,
    )
    .await;
}

/// Whether the element matching `css` exists and its text contains `text`.
async fn has_text(b: &Browser, css: &str, text: &str) -> bool {
    b.exec(
        "const e = document.querySelector(arguments[0]);
         return !!e && e.textContent.includes(arguments[1]);",
        json!([css, text]),
    )
    .await
        == json!(true)
}

/// Marks the current document; `still_same_page` proves no reload happened.
async fn mark_page(b: &Browser) {
    b.exec("window.__latchTestMark = 'unreloaded';", json!([]))
        .await;
}

async fn still_same_page(b: &Browser) -> bool {
    b.exec("return window.__latchTestMark === 'unreloaded';", json!([]))
        .await
        == json!(true)
}

/// Console lines that mean something is broken: script errors, CSP refusals,
/// failed loads. A 4xx/5xx an action deliberately provoked is filtered by the
/// caller's `allowed` fragments.
async fn assert_clean_console(b: &Browser, step: &str, allowed: &[&str]) {
    let bad: Vec<String> = b
        .console()
        .await
        .into_iter()
        .filter(|l| {
            l.starts_with("SEVERE")
                || l.contains("Content Security Policy")
                || l.contains("Refused to")
        })
        // htmx logs an OOB fragment with no target as an error; live.js
        // answers it by re-fetching the list (a card in a new folder).
        .filter(|l| !l.contains("htmx:oobErrorNoTarget"))
        .filter(|l| !allowed.iter().any(|a| l.contains(a)))
        .collect();
    assert!(bad.is_empty(), "console problems after {step}: {bad:#?}");
}

async fn open_popover(b: &Browser, details_css: &str) {
    b.click(&format!("{details_css} > summary")).await;
    b.wait_until(
        &format!("document.querySelector({}).open", json!(details_css)),
        &format!("the popover {details_css} to open"),
    )
    .await;
}

async fn file_id_by_path(b: &Browser, path: &str) -> u64 {
    let id = b
        .wait_until(
            &format!(
                "(() => {{ const c = document.querySelector('#file-list article.card[data-path=\"' + {} + '\"]');
                    return c && c.id; }})()",
                json!(path)
            ),
            &format!("the card of {path}"),
        )
        .await;
    id.as_str()
        .and_then(|s| s.strip_prefix("file-"))
        .and_then(|s| s.parse().ok())
        .expect("card id is file-N")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_uploads_checks_out_and_checks_in_through_the_ui() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let tmp = tempfile::tempdir().unwrap();
    let v1 = disk_file(&tmp, "bracket.mcam", b"first cut of the bracket");
    let v2 = disk_file(&tmp, "bracket-v2.mcam", b"second cut, deeper pocket");

    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;

    b.goto(&app.url("/login")).await;
    b.type_into("input[name=username]", "alice").await;
    b.type_into("input[name=password]", USER_PASSWORD).await;
    b.screenshot("ui-01-login").await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.wait_for_path("/").await;
    assert_eq!(
        b.wait_live().await,
        "ws",
        "a plain setup goes live over WebSocket"
    );
    assert_eq!(b.text("#live-status").await, "Live");
    b.screenshot("ui-02-empty-dashboard").await;
    assert_clean_console(&b, "login", &[]).await;

    // Upload through the popover; the card arrives over the live stream.
    open_popover(&b, "details.upload").await;
    b.type_into("details.upload input[type=file]", v1.to_str().unwrap())
        .await;
    b.type_into("details.upload input[name=path]", "parts/bracket.mcam")
        .await;
    b.type_into(
        "details.upload input[name=description]",
        "Bracket for the 5-axis fixture",
    )
    .await;
    b.screenshot("ui-03-upload-popover").await;
    b.click("details.upload button[type=submit]").await;
    let id = file_id_by_path(&b, "parts/bracket.mcam").await;
    wait_card(&b, id, "available", None, "the uploaded card").await;
    b.wait_until(
        "!document.querySelector('details.upload').open",
        "the upload popover to close after success",
    )
    .await;
    assert!(has_text(&b, &format!("#file-{id} .badge.rev"), "rev 1.0").await);
    assert!(
        has_text(&b, "#toasts", "uploaded").await,
        "a toast confirms the upload"
    );
    b.screenshot("ui-04-uploaded").await;
    assert_clean_console(&b, "upload", &[]).await;

    // The same path again: the server's sentence shows, the popover stays.
    open_popover(&b, "details.upload").await;
    b.type_into("details.upload input[type=file]", v1.to_str().unwrap())
        .await;
    b.type_into("details.upload input[name=path]", "parts/bracket.mcam")
        .await;
    b.click("details.upload button[type=submit]").await;
    b.wait_until(
        "[...document.querySelectorAll('#toasts .toast-error')].some(t => t.textContent.includes('already exists'))",
        "the conflict explained in a toast",
    )
    .await;
    assert_eq!(
        b.exec(
            "return document.querySelector('details.upload').open",
            json!([])
        )
        .await,
        true,
        "a failed upload leaves the form open to correct"
    );
    b.screenshot("ui-04b-upload-conflict").await;
    // The browser logs the 409 itself; nothing else may appear.
    assert_clean_console(&b, "a refused upload", &["409"]).await;
    // A refusal stays until it is read: past the 6 s that news lasts (the
    // wait is what is tested, so it is a fixed one).
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert!(
        has_text(&b, "#toasts .toast-error", "already exists").await,
        "the refusal is still on screen"
    );
    b.exec(
        "document.querySelector('details.upload').open = false;",
        json!([]),
    )
    .await;

    // Check out with a comment.
    b.type_into(&format!("#file-{id} input.comment"), "deepening the pocket")
        .await;
    b.click(&format!("#file-{id} form.checkout button[type=submit]"))
        .await;
    wait_card(&b, id, "locked", Some("alice"), "alice's check-out").await;
    let mut errors = json!(null);
    for _ in 0..150 {
        errors = b
            .exec(
                "return [...document.querySelectorAll('#toasts .toast-error')].map(t => t.textContent)",
                json!([]),
            )
            .await;
        if errors == json!([]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        errors,
        json!([]),
        "the next action clears the earlier refusal"
    );
    let text = card(&b, id).await[2]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.contains("Checked out by you"),
        "card says it is mine: {text}"
    );
    assert!(
        text.contains("deepening the pocket"),
        "card shows the comment: {text}"
    );
    assert!(
        b.try_find(&format!("#file-{id} details.checkin"))
            .await
            .is_some()
    );
    assert!(
        b.try_find(&format!("#file-{id} form.cancel"))
            .await
            .is_some()
    );
    b.screenshot("ui-05-checked-out").await;

    // Check in a new version through the "Check in…" popover, major bump.
    open_popover(&b, &format!("#file-{id} details.checkin")).await;
    b.type_into(
        &format!("#file-{id} details.checkin input[type=file]"),
        v2.to_str().unwrap(),
    )
    .await;
    b.type_into(
        &format!("#file-{id} details.checkin textarea[name=message]"),
        "Deeper pocket for the new clamp",
    )
    .await;
    b.click(&format!(
        "#file-{id} details.checkin input[name=bump][value=major]"
    ))
    .await;
    b.screenshot("ui-06-checkin-popover").await;
    b.click(&format!("#file-{id} details.checkin button[type=submit]"))
        .await;
    wait_card(&b, id, "available", None, "the check-in").await;
    b.wait_until(
        &format!("document.querySelector('#file-{id} .badge.rev').textContent.includes('2.0')"),
        "the new revision on the card",
    )
    .await;
    b.screenshot("ui-07-checked-in").await;
    assert_clean_console(&b, "check-in", &[]).await;

    let alice = app.login("alice", USER_PASSWORD).await;
    let file = alice.file(id).await;
    assert_eq!(file["revision"], "2.0");
    assert_eq!(file["state"], "available");
    assert_eq!(alice.content(id, None).await, b"second cut, deeper pocket");
    let history = alice.history(id).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["message"], "Deeper pocket for the new clamp");

    // History opens in the side panel.
    b.click(&format!("#file-{id} a[href$='/history']")).await;
    b.wait_until(
        "document.querySelector('#panel .history') !== null",
        "the history panel",
    )
    .await;
    assert!(has_text(&b, "#panel", "Deeper pocket for the new clamp").await);
    b.screenshot("ui-08-history").await;
    b.click("#panel [data-close-panel]").await;
    b.wait_until(
        "document.getElementById('panel').children.length === 0",
        "the history panel to close",
    )
    .await;
    assert_clean_console(&b, "history", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_out_by_alice_reaches_bob_and_the_admin_without_a_reload() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("bob", "user").await;
    let alice_api = app.user("alice").await;
    let id = alice_api.upload_ok("parts/bracket.mcam", b"v1").await;
    let other = alice_api.upload_ok("parts/plate.mcam", b"plate").await;
    let tmp = tempfile::tempdir().unwrap();
    let v2 = disk_file(&tmp, "bracket.mcam", b"v2");

    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    let bob = driver.session(Options::default()).await;
    let admin = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    bob.login(&app.base, "bob", USER_PASSWORD).await;
    admin.login(&app.base, "admin", ADMIN_PASSWORD).await;
    for b in [&alice, &bob, &admin] {
        b.wait_live().await;
        mark_page(b).await;
    }

    // Alice checks out; Bob's and the admin's cards change by themselves.
    alice
        .type_into(&format!("#file-{id} input.comment"), "new fillet")
        .await;
    alice
        .click(&format!("#file-{id} form.checkout button[type=submit]"))
        .await;
    wait_card(
        &bob,
        id,
        "locked",
        Some("alice"),
        "Bob sees Alice's check-out",
    )
    .await;
    wait_card(&admin, id, "locked", Some("alice"), "the admin sees it").await;
    wait_card(&alice, id, "locked", Some("alice"), "Alice sees it").await;
    let bob_text = card(&bob, id).await[2]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(bob_text.contains("Checked out by alice"), "{bob_text}");
    assert!(bob_text.contains("new fillet"), "{bob_text}");
    assert!(
        bob.try_find(&format!("#file-{id} details.checkin"))
            .await
            .is_none()
    );
    assert!(
        bob.try_find(&format!("#file-{id} form.cancel"))
            .await
            .is_none()
    );
    assert!(
        bob.try_find(&format!("#file-{id} form.checkout"))
            .await
            .is_none()
    );
    assert!(
        bob.try_find(&format!("#file-{id} form.override"))
            .await
            .is_none()
    );
    assert!(
        has_text(
            &alice,
            &format!("#file-{id} details.checkin > summary"),
            "Check in"
        )
        .await
    );
    assert!(has_text(&alice, &format!("#file-{id} form.cancel"), "Cancel").await);
    assert!(
        has_text(
            &admin,
            &format!("#file-{id} details.danger-zone > summary"),
            "Override"
        )
        .await
    );
    assert!(has_text(&bob, "#counters", "1 checked out").await);
    assert!(
        has_text(
            &bob,
            "#activity-list",
            "alice checked out parts/bracket.mcam"
        )
        .await
    );
    wait_card(&bob, other, "available", None, "the other card untouched").await;
    bob.screenshot("live-01-bob-sees-alice-checkout").await;
    admin.screenshot("live-02-admin-sees-override").await;
    alice.screenshot("live-03-alice-holds-it").await;

    // Alice checks in; everyone sees the new revision, available again.
    open_popover(&alice, &format!("#file-{id} details.checkin")).await;
    alice
        .type_into(
            &format!("#file-{id} details.checkin input[type=file]"),
            v2.to_str().unwrap(),
        )
        .await;
    alice
        .type_into(
            &format!("#file-{id} details.checkin textarea[name=message]"),
            "Fillet radius 3 mm",
        )
        .await;
    alice
        .click(&format!("#file-{id} details.checkin button[type=submit]"))
        .await;
    for (b, who) in [(&bob, "bob"), (&admin, "admin"), (&alice, "alice")] {
        wait_card(
            b,
            id,
            "available",
            None,
            &format!("{who} sees the check-in"),
        )
        .await;
        b.wait_until(
            &format!("document.querySelector('#file-{id} .badge.rev').textContent.includes('1.1')"),
            &format!("{who} sees revision 1.1"),
        )
        .await;
    }
    assert!(
        has_text(
            &admin,
            &format!("#file-{id} details.danger-zone > summary"),
            "Delete"
        )
        .await
    );

    // Bob checks out; the admin overrides; Bob is told, Alice sees it free.
    bob.click(&format!("#file-{id} form.checkout button[type=submit]"))
        .await;
    wait_card(
        &admin,
        id,
        "locked",
        Some("bob"),
        "the admin sees Bob's check-out",
    )
    .await;
    wait_card(
        &alice,
        id,
        "locked",
        Some("bob"),
        "Alice sees Bob's check-out",
    )
    .await;
    open_popover(&admin, &format!("#file-{id} details.danger-zone")).await;
    admin
        .click(&format!("#file-{id} form.override button[type=submit]"))
        .await;
    wait_card(&bob, id, "available", None, "Bob sees the override").await;
    wait_card(&alice, id, "available", None, "Alice sees the override").await;
    bob.wait_until(
        "[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('overrode your check-out'))",
        "Bob is told his lock was overridden",
    )
    .await;
    bob.screenshot("live-04-bob-overridden").await;

    // The admin deletes it; it leaves every list.
    open_popover(&admin, &format!("#file-{id} details.danger-zone")).await;
    admin
        .click(&format!("#file-{id} form.delete button[type=submit]"))
        .await;
    for (b, who) in [(&bob, "bob"), (&alice, "alice"), (&admin, "admin")] {
        b.wait_until(
            &format!("document.getElementById('file-{id}') === null"),
            &format!("{who} sees the file deleted"),
        )
        .await;
        assert!(b.try_find(&format!("#file-{other}")).await.is_some());
        assert!(still_same_page(b).await, "{who}'s page was never reloaded");
        assert_clean_console(b, &format!("{who}'s live session"), &[]).await;
    }
    alice.screenshot("live-05-after-delete").await;

    // The folder's last card leaves: its heading goes with it, live (it
    // stayed, empty, until a reload).
    open_popover(&admin, &format!("#file-{other} details.danger-zone")).await;
    admin
        .click(&format!("#file-{other} form.delete button[type=submit]"))
        .await;
    for (b, who) in [(&bob, "bob"), (&alice, "alice"), (&admin, "admin")] {
        b.wait_until(
            "document.querySelector('section.folder[data-folder=\"parts\"]') === null",
            &format!("{who} sees the emptied folder go"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_by_one_user_appears_in_another_users_list_even_in_a_new_folder() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let bob_api = app.user("bob").await;
    let tmp = tempfile::tempdir().unwrap();
    let file = disk_file(&tmp, "plate.mcam", b"plate");

    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    let bob = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    bob.login(&app.base, "bob", USER_PASSWORD).await;
    alice.wait_live().await;
    bob.wait_live().await;
    mark_page(&alice).await;
    assert!(has_text(&alice, "#file-list", "No files yet").await);

    // The very first file: Alice's list had no folder to put it in.
    let first = bob_api.upload_ok("parts/bracket.mcam", b"v1").await;
    wait_card(
        &alice,
        first,
        "available",
        None,
        "the first file in an empty list",
    )
    .await;
    assert!(!has_text(&alice, "#file-list", "No files yet").await);

    // Bob uploads through the UI into the same folder; the file's own name
    // is the path when the path field is left empty.
    open_popover(&bob, "details.upload").await;
    bob.type_into("details.upload input[type=file]", file.to_str().unwrap())
        .await;
    bob.click("details.upload button[type=submit]").await;
    let plate = file_id_by_path(&alice, "plate.mcam").await;
    wait_card(&alice, plate, "available", None, "Bob's UI upload").await;

    // A folder nobody has seen yet.
    let vise = bob_api
        .upload_ok("fixtures/soft-jaws/vise.mcam", b"vise")
        .await;
    wait_card(&alice, vise, "available", None, "a file in a new folder").await;
    assert!(
        alice
            .try_find(&format!(
                "section.folder[data-folder='fixtures/soft-jaws'] #file-{vise}"
            ))
            .await
            .is_some(),
        "the new card sits in its folder's section"
    );
    let parts = alice
        .exec(
            "return [...document.querySelectorAll('section.folder')].map(s => s.dataset.folder)",
            json!([]),
        )
        .await;
    assert_eq!(parts, json!(["", "fixtures/soft-jaws", "parts"]));
    // A second file in that now-known folder goes straight in.
    let clamp = bob_api
        .upload_ok("fixtures/soft-jaws/clamp.mcam", b"clamp")
        .await;
    wait_card(
        &alice,
        clamp,
        "available",
        None,
        "a second file in the new folder",
    )
    .await;
    assert!(still_same_page(&alice).await);
    assert!(has_text(&alice, "#counters", "4 files").await);
    alice.screenshot("live-06-new-folders").await;
    assert_clean_console(&alice, "uploads by another user", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_state_filters_narrow_the_list_and_live_updates_respect_them() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let bob = app.user("bob").await;
    let bracket = bob.upload_ok("parts/bracket.mcam", b"1").await;
    let plate = bob.upload_ok("parts/plate.mcam", b"2").await;
    let vise = bob.upload_ok("fixtures/vise.mcam", b"3").await;

    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    b.wait_live().await;
    mark_page(&b).await;

    b.type_into("#q", "vise").await;
    b.wait_until(
        &format!(
            "document.querySelectorAll('#file-list article.card').length === 1 && !!document.getElementById('file-{vise}')"
        ),
        "the search to narrow the list",
    )
    .await;
    assert!(
        b.current_url().await.contains("q=vise"),
        "the filter is in the address, so a reload keeps it"
    );
    b.clear("#q").await;
    b.type_into("#q", "parts").await;
    b.wait_until(
        "document.querySelectorAll('#file-list article.card').length === 2",
        "the search for a folder",
    )
    .await;

    // "Checked out" shows none; Bob's check-out brings his card in, live.
    b.clear("#q").await;
    b.exec(
        "const s = document.getElementById('state'); s.value = 'locked'; s.dispatchEvent(new Event('change', {bubbles: true}));",
        json!([]),
    )
    .await;
    b.wait_until(
        "document.querySelectorAll('#file-list article.card').length === 0",
        "the state filter",
    )
    .await;
    assert_eq!(bob.checkout(plate, "").await.status(), 200);
    wait_card(
        &b,
        plate,
        "locked",
        Some("bob"),
        "a card the filter now admits",
    )
    .await;
    assert!(b.try_find(&format!("#file-{bracket}")).await.is_none());
    assert!(still_same_page(&b).await);
    b.screenshot("filters-01-checked-out-only").await;
    // And leaves it when it is no longer checked out.
    assert_eq!(bob.cancel(plate).await.status(), 200);
    b.wait_until(
        &format!("document.getElementById('file-{plate}') === null"),
        "a card the filter no longer admits to leave",
    )
    .await;
    assert_clean_console(&b, "filters", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_updates_arrive_over_server_sent_events() {
    let Some(cast) = alice_watches_bob().await else {
        return;
    };
    let (app, bob, id, alice) = (&cast.app, &cast.bob, cast.id, &cast.alice);
    alice.goto(&app.url("/?transport=sse")).await;
    assert_eq!(alice.wait_live().await, "sse");
    assert_eq!(
        alice
            .exec(
                "return document.getElementById('live-status').dataset.transport",
                json!([])
            )
            .await,
        "sse"
    );
    mark_page(alice).await;

    assert_eq!(bob.checkout(id, "over SSE").await.status(), 200);
    wait_card(alice, id, "locked", Some("bob"), "Bob's check-out over SSE").await;
    assert!(has_text(alice, &format!("#file-{id}"), "Checked out by bob").await);
    assert_eq!(
        bob.checkin(id, b"v2", "over SSE", "minor").await.status(),
        200
    );
    wait_card(alice, id, "available", None, "Bob's check-in over SSE").await;
    assert!(has_text(alice, &format!("#file-{id} .badge.rev"), "1.1").await);
    let new = bob.upload_ok("fixtures/vise.mcam", b"vise").await;
    wait_card(alice, new, "available", None, "a new folder over SSE").await;

    // Alice's own action over htmx, while the stream is SSE.
    alice
        .click(&format!("#file-{id} form.checkout button[type=submit]"))
        .await;
    wait_card(alice, id, "locked", Some("alice"), "Alice's own check-out").await;
    assert_eq!(bob.file(id).await["lock"]["owner"], "alice");
    assert!(still_same_page(alice).await);
    assert_eq!(
        alice
            .exec("return window.latchLive.transport", json!([]))
            .await,
        "sse",
        "the page stayed on SSE"
    );
    assert_clean_console(alice, "SSE session", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_dashboard_keeps_only_the_newest_activity_lines() {
    let Some(cast) = alice_watches_bob().await else {
        return;
    };
    let (app, bob, id, alice) = (&cast.app, &cast.bob, cast.id, &cast.alice);
    alice.goto(&app.url("/")).await;
    alice.wait_live().await;
    let max = alice
        .exec(
            "return parseInt(document.getElementById('activity-list').dataset.max, 10)",
            json!([]),
        )
        .await
        .as_u64()
        .expect("the activity list says how many lines it keeps");
    assert!(max > 0);
    // More events than the list keeps, each a new line at the top.
    for i in 0..max / 2 + 2 {
        assert_eq!(bob.checkout(id, &format!("look {i}")).await.status(), 200);
        assert_eq!(bob.cancel(id).await.status(), 200);
    }
    alice
        .wait_until(
            &format!(
                "document.querySelector('#activity-list > li')?.dataset.seq === '{}'",
                2 * (max / 2 + 2) + 1
            ),
            "the newest event at the top of the activity list",
        )
        .await;
    // The cap holds: nothing beyond it arrives late.
    alice.settle().await;
    let lines = alice
        .exec(
            "return document.querySelectorAll('#activity-list > *').length",
            json!([]),
        )
        .await;
    assert_eq!(lines, json!(max));
    assert_clean_console(alice, "activity cap", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_out_and_check_in_work_with_javascript_disabled() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice_api = app.user("alice").await;
    let id = alice_api.upload_ok("parts/bracket.mcam", b"v1").await;
    let tmp = tempfile::tempdir().unwrap();
    let v2 = disk_file(&tmp, "bracket.mcam", b"v2 without js");

    let driver = Driver::start().await;
    let b = driver
        .session(Options {
            javascript: false,
            ..Options::default()
        })
        .await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    assert_eq!(
        b.exec("return typeof window.htmx", json!([])).await,
        "undefined",
        "page scripts really are off"
    );

    b.type_into(&format!("#file-{id} input.comment"), "no script here")
        .await;
    b.click(&format!("#file-{id} form.checkout button[type=submit]"))
        .await;
    wait_card(
        &b,
        id,
        "locked",
        Some("alice"),
        "the check-out after a plain post",
    )
    .await;
    assert!(
        has_text(&b, "main", "You checked out parts/bracket.mcam").await,
        "a flash message says so"
    );
    b.screenshot("nojs-01-checked-out").await;
    assert_eq!(
        b.exec(
            "const s = document.getElementById('live-status'); return s ? getComputedStyle(s).display : 'none';",
            json!([])
        )
        .await,
        "none",
        "no live-status pill claims to be connecting when scripts are off"
    );
    assert_eq!(
        alice_api.file(id).await["lock"]["comment"],
        "no script here"
    );

    // <details> opens without script; the multipart form posts plainly.
    b.click(&format!("#file-{id} details.checkin > summary"))
        .await;
    b.type_into(
        &format!("#file-{id} details.checkin input[type=file]"),
        v2.to_str().unwrap(),
    )
    .await;
    b.type_into(
        &format!("#file-{id} details.checkin textarea[name=message]"),
        "Checked in with scripts off",
    )
    .await;
    b.click(&format!("#file-{id} details.checkin button[type=submit]"))
        .await;
    wait_card(&b, id, "available", None, "the check-in after a plain post").await;
    assert!(has_text(&b, &format!("#file-{id} .badge.rev"), "1.1").await);
    assert_eq!(alice_api.content(id, None).await, b"v2 without js");
    b.screenshot("nojs-02-checked-in").await;
}

/// Makes `docs/screenshot.png` for the README:
/// `cargo test --test it -- --ignored browser::make_readme_screenshot`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn make_readme_screenshot() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let dana = app.user("dana").await;
    let marco = app.user("marco").await;
    let upload = sized_upload;
    let housing = upload(
        &marco,
        "fixtures/pump-housing-op1.mcam",
        "Pump housing, first op: face, rough and drill",
        2_400_000,
    )
    .await;
    let _jaws = upload(
        &dana,
        "fixtures/soft-jaws-6in.mcam",
        "Soft jaws for the 6\" vise",
        310_000,
    )
    .await;
    let bracket = upload(
        &dana,
        "parts/bracket-5axis.mcam",
        "Bracket for the 5-axis trunnion",
        1_150_000,
    )
    .await;
    let _plate = upload(
        &marco,
        "parts/base-plate.mcam",
        "Base plate, 12 mm 6061",
        842_000,
    )
    .await;
    let manifold = upload(
        &dana,
        "parts/manifold-block.mcam",
        "Hydraulic manifold, four ports",
        3_700_000,
    )
    .await;
    // A little history, so revisions differ.
    assert_eq!(marco.checkout(manifold, "").await.status(), 200);
    let v2 = |n: usize| (0..n).map(|i| (i * 13 % 251) as u8).collect::<Vec<u8>>();
    assert_eq!(
        marco
            .checkin(manifold, &v2(3_650_000), "Port 3 moved 2 mm", "minor")
            .await
            .status(),
        200
    );
    assert_eq!(dana.checkout(bracket, "").await.status(), 200);
    assert_eq!(
        dana.checkin(bracket, &v2(1_240_000), "New trunnion clamp", "major")
            .await
            .status(),
        200
    );
    // One held by someone else, one by the viewer.
    assert_eq!(
        marco
            .checkout(housing, "Tightening the bore tolerance")
            .await
            .status(),
        200
    );
    assert_eq!(
        dana.checkout(bracket, "Adding chamfers").await.status(),
        200
    );

    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    let path = b.screenshot("readme").await;
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(&path, docs.join("screenshot.png")).unwrap();
    let dark = driver
        .session(Options {
            color_scheme: "dark",
            ..Options::default()
        })
        .await;
    dark.login(&app.base, "dana", USER_PASSWORD).await;
    dark.wait_live().await;
    dark.screenshot("readme-dark").await;

    // The other pages, for a look (not for the README).
    b.click(&format!("#file-{bracket} a[href$='/history']"))
        .await;
    b.wait_for_element("#panel .history").await;
    b.screenshot("tour-history").await;
    for (path, name) in [("/activity", "tour-activity"), ("/account", "tour-account")] {
        b.goto(&app.url(path)).await;
        b.screenshot(name).await;
    }
    let admin = driver.session(Options::default()).await;
    admin.login(&app.base, "admin", ADMIN_PASSWORD).await;
    admin.goto(&app.url("/admin/users")).await;
    admin.screenshot("tour-users").await;
    let phone = driver
        .session(Options {
            width: 390,
            height: 844,
            ..Options::default()
        })
        .await;
    phone.login(&app.base, "dana", USER_PASSWORD).await;
    phone.wait_live().await;
    let path = phone.screenshot("tour-phone").await;
    // The README's phone picture (issue 12: a phone-width dashboard).
    std::fs::copy(&path, docs.join("phone.png")).unwrap();
    phone
        .click(&format!("#file-{bracket} details.checkin > summary"))
        .await;
    phone.screenshot("tour-phone-checkin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_sees_who_is_online_and_what_alice_views_without_a_reload() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    app.create_user("bob", "user").await;
    let id = app
        .admin()
        .await
        .upload_ok("parts/bracket.mcam", b"v1")
        .await;
    let driver = Driver::start().await;
    let bob = driver.session(Options::default()).await;
    bob.login(&app.base, "bob", USER_PASSWORD).await;
    // Bob over SSE (the `presence` event name), Alice over WebSocket.
    bob.goto(&app.url("/?transport=sse")).await;
    assert_eq!(bob.wait_live().await, "sse");
    mark_page(&bob).await;
    let online = "(() => { const p = document.getElementById('presence');
        return !!p && p.title.split(', ').includes('alice'); })()";
    let offline = "(() => { const p = document.getElementById('presence');
        return !!p && !p.title.split(', ').includes('alice'); })()";
    assert_eq!(
        bob.exec(&format!("return {online}"), json!([])).await,
        false
    );

    let alice = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    alice.goto(&app.url("/")).await;
    assert_eq!(alice.wait_live().await, "ws");
    bob.wait_until(online, "alice in Bob's online list").await;
    assert!(has_text(&bob, "#presence", "2 online").await);

    // Alice opens the file's history in the drawer, then closes it.
    alice
        .click(&format!("#file-{id} a[href='/files/{id}/history']"))
        .await;
    alice.wait_for_element("#panel [data-viewing-file]").await;
    bob.wait_until(
        &format!(
            "(() => {{ const v = document.getElementById('viewing-{id}');
                return !!v && !v.hidden && v.textContent === 'alice is viewing'; }})()"
        ),
        "'alice is viewing' on Bob's card",
    )
    .await;
    alice.click("#panel [data-close-panel]").await;
    bob.wait_until(
        &format!("document.getElementById('viewing-{id}').hidden"),
        "the viewing line to go",
    )
    .await;

    // Alice leaves the page: her live connection ends, and so does her presence.
    alice.goto(&app.url("/account")).await;
    bob.wait_until(offline, "alice gone from Bob's online list")
        .await;
    assert!(still_same_page(&bob).await);
    assert_clean_console(&bob, "presence", &[]).await;
    assert_clean_console(&alice, "presence", &[]).await;
}

/// The hand-off between two browsers, one on each transport: Bob (SSE)
/// turns desktop notifications on, waits in line for the file Alice
/// (WebSocket) holds; Alice cancels; Bob's card says "Reserved for you",
/// his bell counts it and his desktop shows it, all without a reload; he
/// takes it, and Alice's ask to release reaches him the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_between_two_browsers_reaches_the_card_the_bell_and_the_desktop() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("bob", "user").await;
    let alice_api = app.user("alice").await;
    let id = alice_api.upload_ok("parts/bracket.mcam", b"v1").await;
    assert_eq!(alice_api.checkout(id, "5-axis setup").await.status(), 200);
    let driver = Driver::start().await;

    // Bob turns desktop notifications on: the browser asks on his click
    // (the permission is granted here as a person would in the prompt).
    let bob = driver.session(Options::default()).await;
    bob.login(&app.base, "bob", USER_PASSWORD).await;
    bob.cdp(
        "Browser.grantPermissions",
        json!({"origin": app.base, "permissions": ["notifications"]}),
    )
    .await;
    bob.goto(&app.url("/account")).await;
    bob.wait_until(
        "document.getElementById('desktop-notifications').dataset.state === 'off'",
        "the desktop switch, off until Bob turns it on",
    )
    .await;
    bob.click("#desktop-enable").await;
    bob.wait_until(
        "document.getElementById('desktop-notifications').dataset.state === 'on'",
        "desktop notifications on",
    )
    .await;

    bob.goto(&app.url("/?transport=sse")).await;
    assert_eq!(bob.wait_live().await, "sse");
    // What the desktop would show, as the page asked for it.
    bob.exec(
        "window.__shown = []; const N = window.Notification;
         window.Notification = class extends N {
           constructor(title, opts) { super(title, opts); window.__shown.push(opts && opts.body); }
         };",
        json!([]),
    )
    .await;
    mark_page(&bob).await;
    bob.click(&format!("#file-{id} form.join-queue button[type=submit]"))
        .await;
    bob.wait_until(
        &format!("!!document.querySelector('#file-{id} form.leave-queue')"),
        "Bob in line",
    )
    .await;

    let alice = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    alice.goto(&app.url("/")).await;
    assert_eq!(alice.wait_live().await, "ws");
    assert!(has_text(&alice, &format!("#file-{id} .queue"), "bob").await);
    alice
        .click(&format!("#file-{id} form.cancel button[type=submit]"))
        .await;

    // Everyone's card: reserved for Bob; Bob's says it is his to take.
    wait_card(&alice, id, "reserved", None, "the file reserved for Bob").await;
    assert!(has_text(&alice, &format!("#file-{id}"), "Reserved for bob").await);
    wait_card(&bob, id, "reserved", None, "Bob's card, reserved").await;
    assert!(has_text(&bob, &format!("#file-{id}"), "Reserved for you").await);
    bob.wait_until(
        "document.getElementById('bell').dataset.unread === '1'",
        "Bob's bell counting the hand-off",
    )
    .await;
    bob.wait_until(
        "window.__shown.length === 1 && window.__shown[0].includes('yours to check out')",
        "the hand-off on Bob's desktop",
    )
    .await;
    assert_eq!(
        alice
            .exec(
                "return document.getElementById('bell').dataset.unread",
                json!([])
            )
            .await,
        "0",
        "Alice's bell is hers alone"
    );
    bob.screenshot("handoff-bob-reserved").await;

    // Bob takes it; Alice asks him to release it from the card.
    bob.click(&format!("#file-{id} form.checkout button[type=submit]"))
        .await;
    wait_card(&alice, id, "locked", Some("bob"), "Bob's check-out").await;
    // Taking it answered "yours to check out": the bell is back to none.
    bob.wait_until(
        "document.getElementById('bell').dataset.unread === '0'",
        "Bob's bell cleared by his check-out",
    )
    .await;
    open_popover(&alice, &format!("#file-{id} details.nudge")).await;
    alice
        .type_into(&format!("#nudge-{id}"), "need it for the fixture")
        .await;
    alice
        .click(&format!("#file-{id} form.nudge button[type=submit]"))
        .await;
    bob.wait_until(
        "document.getElementById('bell').dataset.unread === '1'",
        "Bob's bell counting Alice's ask",
    )
    .await;
    bob.wait_until(
        "[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('need it for the fixture'))",
        "Alice's words in a toast on Bob's page",
    )
    .await;
    bob.wait_until("window.__shown.length === 2", "the ask on Bob's desktop")
        .await;
    assert!(still_same_page(&bob).await, "no reload on Bob's page");
    // The bell is a link to the list: the ask unread, the hand-off read.
    bob.click("#bell").await;
    bob.wait_for_path("/notifications").await;
    assert!(has_text(&bob, "ol.inbox", "need it for the fixture").await);
    assert!(has_text(&bob, "ol.inbox", "yours to check out").await);
    bob.screenshot("handoff-bob-notifications").await;
    // The notifications page is live too: an admin breaking Bob's
    // check-out reaches its bell.
    bob.wait_live().await;
    assert_eq!(app.admin().await.override_lock(id).await.status(), 200);
    bob.wait_until(
        "document.getElementById('bell').dataset.unread === '2'",
        "the bell on the notifications page",
    )
    .await;
    assert_clean_console(&bob, "the hand-off (Bob)", &[]).await;
    assert_clean_console(&alice, "the hand-off (Alice)", &[]).await;
}

/// A live update to a card someone is typing on waits: the open "Ask to
/// release" popover keeps its text (and a comment keeps its focus) until
/// the person closes it, then the card shows the news.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_update_does_not_throw_away_what_someone_is_typing_on_the_card() {
    let Some(cast) = alice_watches_bob().await else {
        return;
    };
    let (app, bob, id, alice) = (&cast.app, &cast.bob, cast.id, &cast.alice);
    let carol = app.user("carol").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    alice.goto(&app.url("/")).await;
    alice.wait_live().await;
    open_popover(alice, &format!("#file-{id} details.nudge")).await;
    alice
        .type_into(&format!("#nudge-{id}"), "half a sentence")
        .await;
    // Carol joins the line: the card changes for everyone.
    let resp = carol.post_empty(&format!("/api/files/{id}/queue")).await;
    assert_eq!(resp.status(), 200);
    // Wait until Alice's page has had the news (the activity line), then
    // check her popover is still open with her words in it.
    alice
        .wait_until(
            "document.getElementById('activity-list').textContent.includes('carol is waiting')",
            "the news of Carol in line",
        )
        .await;
    let kept = alice
        .exec(
            "const d = document.querySelector('#file-' + arguments[0] + ' details.nudge');
             return [d.open, document.getElementById('nudge-' + arguments[0]).value];",
            json!([id]),
        )
        .await;
    assert_eq!(kept, json!([true, "half a sentence"]));
    // Closing the popover brings the card up to date, text kept.
    alice
        .click(&format!("#file-{id} details.nudge > summary"))
        .await;
    alice
        .wait_until(
            &format!("document.querySelector('#file-{id} .queue') && document.querySelector('#file-{id} .queue').textContent.includes('carol')"),
            "the card showing Carol in line",
        )
        .await;
    assert_eq!(
        alice
            .exec(
                "return document.getElementById('nudge-' + arguments[0]).value",
                json!([id])
            )
            .await,
        "half a sentence"
    );
    assert_clean_console(alice, "a deferred card", &[]).await;
}

// ---------------------------------------------------------------------------
// Several files at once.

/// The card of `path` in `b`'s list: its tick box.
async fn tick_box(b: &Browser, id: u64) -> browser::Element {
    b.wait_for_element(&format!("#file-{id} input[name=ids]"))
        .await
}

/// Starts recording the live messages a page receives (WebSocket text),
/// for "one message, not a burst" checks.
async fn record_messages(b: &Browser) {
    b.exec(
        "window.__latchMessages = [];
         document.body.addEventListener('htmx:wsBeforeMessage', e => window.__latchMessages.push(String(e.detail.message)));",
        json!([]),
    )
    .await;
}

/// How many recorded messages mention `needle`.
async fn messages_with(b: &Browser, needle: &str) -> u64 {
    b.exec(
        "return window.__latchMessages.filter(m => m.includes(arguments[0])).length;",
        json!([needle]),
    )
    .await
    .as_u64()
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_set_checked_out_and_in_by_alice_reaches_bob_in_one_message() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice_api = app.user("alice").await;
    app.create_user("bob", "user").await;
    let base = alice_api.upload_ok("fixture/base.nc", b"base v1").await;
    let clamp = alice_api.upload_ok("fixture/clamp.nc", b"clamp v1").await;
    let jaw = alice_api.upload_ok("fixture/jaw.nc", b"jaw v1").await;
    let plate = alice_api.upload_ok("fixture/plate.nc", b"plate v1").await;
    let tmp = tempfile::tempdir().unwrap();
    let new_base = disk_file(&tmp, "base.nc", b"base v2, deeper pocket");
    let new_clamp = disk_file(&tmp, "clamp.nc", b"clamp v2, longer screw");

    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    let bob = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    bob.login(&app.base, "bob", USER_PASSWORD).await;
    assert_eq!(alice.wait_live().await, "ws");
    assert_eq!(bob.wait_live().await, "ws");
    record_messages(&bob).await;
    mark_page(&bob).await;

    // Nothing ticked: no selection bar.
    assert_eq!(
        alice
            .exec(
                "return getComputedStyle(document.getElementById('selection')).display",
                json!([])
            )
            .await,
        "none"
    );
    // Tick base, then shift-click jaw: base, clamp and jaw, in page order.
    alice.click_el(&tick_box(&alice, base).await).await;
    alice.shift_click_el(&tick_box(&alice, jaw).await).await;
    alice
        .wait_until(
            "document.querySelector('#selection .selection-count').textContent === '3 selected'",
            "three ticked",
        )
        .await;
    let ticked = alice
        .exec(
            "return [...document.querySelectorAll('input[name=ids]:checked')].map(b => +b.value)",
            json!([]),
        )
        .await;
    assert_eq!(ticked, json!([base, clamp, jaw]));
    alice
        .type_into("#selection-comment", "Fixture for the Hermle job")
        .await;
    alice.screenshot("sets-01-selection").await;

    alice
        .click("#selection button[type=submit]:not([formaction])")
        .await;
    for id in [base, clamp, jaw] {
        wait_card(
            &alice,
            id,
            "locked",
            Some("alice"),
            "Alice's set, in her page",
        )
        .await;
        wait_card(
            &bob,
            id,
            "locked",
            Some("alice"),
            "Alice's set, in Bob's page",
        )
        .await;
    }
    wait_card(&bob, plate, "available", None, "the unticked file").await;
    // One message for the three cards, and one toast saying so.
    bob.wait_until(
        "[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('alice checked out 3 files'))",
        "one toast for the set",
    )
    .await;
    assert_eq!(
        bob.exec(
            "return [...document.querySelectorAll('#toasts .toast')].filter(t => t.textContent.includes('checked out')).length",
            json!([])
        )
        .await,
        1,
        "no toast per file"
    );
    assert_eq!(messages_with(&bob, &format!("id=\"file-{base}\"")).await, 1);
    assert_eq!(messages_with(&bob, &format!("id=\"file-{jaw}\"")).await, 1);
    // Done: Alice's selection is empty again.
    alice
        .wait_until(
            "document.querySelectorAll('input[name=ids]:checked').length === 0",
            "the selection cleared after the check-out",
        )
        .await;
    // The bar hid with the focus on its button: focus went to the first
    // card acted on and stayed there through that card's live swap, not to
    // the top of the page (where a keyboard user would start over).
    alice
        .wait_until(
            &format!(
                "document.activeElement === document.querySelector('#file-{base} input[name=ids]')"
            ),
            "focus on the first card of the set after the check-out",
        )
        .await;

    // Alice checks two of them in with one form: two files, one message.
    open_popover(&alice, "details.checkin-set").await;
    alice
        .exec(
            "window.__sawFormProgress = false;
             const f = document.querySelector('details.checkin-set form');
             new MutationObserver(() => { if (f.querySelector('progress')) window.__sawFormProgress = true; })
               .observe(f, {childList: true, subtree: true});",
            json!([]),
        )
        .await;
    let picks = format!("{}\n{}", new_base.display(), new_clamp.display());
    alice
        .type_into("details.checkin-set input[type=file]", &picks)
        .await;
    alice
        .type_into(
            "details.checkin-set textarea[name=message]",
            "Deeper pocket, longer screw",
        )
        .await;
    alice.screenshot("sets-01b-checkin-several").await;
    alice.click("details.checkin-set button[type=submit]").await;
    for id in [base, clamp] {
        bob.wait_until(
            &format!("(() => {{ const c = document.getElementById('file-{id}'); return !!c && c.dataset.state === 'available' && c.querySelector('.badge.rev').textContent.includes('1.1'); }})()"),
            "Bob sees the revision bump",
        )
        .await;
    }
    wait_card(
        &bob,
        jaw,
        "locked",
        Some("alice"),
        "the file not checked in",
    )
    .await;
    assert_eq!(
        alice
            .exec("return window.__sawFormProgress", json!([]))
            .await,
        true,
        "the check-in form showed its progress"
    );
    // The popover closed on success; focus went back to its button.
    alice
        .wait_until(
            "document.activeElement === document.querySelector('details.checkin-set > summary')",
            "focus back on Check in several… after the check-in",
        )
        .await;
    assert_eq!(
        alice_api.content(base, None).await,
        b"base v2, deeper pocket"
    );

    // Bob ticks Alice's jaw and the free plate: refused whole, naming jaw.
    bob.click_el(&tick_box(&bob, jaw).await).await;
    bob.click_el(&tick_box(&bob, plate).await).await;
    bob.click("#selection button[type=submit]:not([formaction])")
        .await;
    bob.wait_until(
        "[...document.querySelectorAll('#toasts .toast-error')].some(t => t.textContent.includes('fixture/jaw.nc') && t.textContent.includes('alice'))",
        "the refusal names Alice's file",
    )
    .await;
    wait_card(&bob, plate, "available", None, "nothing was checked out").await;
    assert_eq!(
        bob.text("#selection .selection-count").await,
        "2 selected",
        "a refusal keeps the selection"
    );
    // Esc clears it.
    bob.press("\u{E00C}").await;
    bob.wait_until(
        "document.querySelectorAll('input[name=ids]:checked').length === 0",
        "Esc to clear the selection",
    )
    .await;
    assert!(still_same_page(&bob).await);
    assert_clean_console(&alice, "a change set", &[]).await;
    assert_clean_console(&bob, "a refused change set", &["409"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_survive_a_live_swap_and_select_all_takes_a_folder() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let bob_api = app.user("bob").await;
    app.create_user("alice", "user").await;
    let a = bob_api.upload_ok("jig/a.nc", b"a").await;
    let b = bob_api.upload_ok("jig/b.nc", b"b").await;
    let other = bob_api.upload_ok("other/c.nc", b"c").await;
    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    alice.wait_live().await;

    alice
        .click("section.folder[data-folder='jig'] [data-select-folder]")
        .await;
    alice
        .wait_until(
            "document.querySelector('#selection .selection-count').textContent === '2 selected'",
            "Select all in jig/",
        )
        .await;
    assert_eq!(
        alice
            .text("section.folder[data-folder='jig'] [data-select-folder]")
            .await,
        "Clear all"
    );
    // Bob checks out a: its card is swapped live and stays ticked.
    assert_eq!(bob_api.checkout(a, "").await.status(), 200);
    wait_card(&alice, a, "locked", Some("bob"), "the live swap").await;
    assert_eq!(
        alice
            .exec(
                "return [...document.querySelectorAll('input[name=ids]:checked')].map(b => +b.value)",
                json!([])
            )
            .await,
        json!([a, b])
    );
    assert!(
        alice
            .try_find(&format!("#file-{other} input:checked"))
            .await
            .is_none(),
        "another folder's card is left alone"
    );
    // Keyboard: Space on a focused box ticks it.
    let boxed = tick_box(&alice, other).await;
    alice.send_keys_el(&boxed, " ").await;
    alice
        .wait_until(
            "document.querySelector('#selection .selection-count').textContent === '3 selected'",
            "Space ticks",
        )
        .await;
    alice.click("#selection [data-clear-selection]").await;
    alice
        .wait_until(
            "document.getElementById('selection').dataset.count === '0'",
            "Clear",
        )
        .await;

    // At phone width the bar and the boxes still fit.
    alice
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
        )
        .await;
    // The live toast would cover the card (a person clicks it away).
    alice
        .exec(
            "document.querySelectorAll('#toasts .toast').forEach(t => t.click());",
            json!([]),
        )
        .await;
    alice
        .wait_until(
            "!document.querySelector('#toasts .toast')",
            "the toasts gone",
        )
        .await;
    alice.click_el(&tick_box(&alice, b).await).await;
    alice.screenshot("sets-05-phone-selection").await;
    let overflow = alice
        .exec(
            "const r = document.getElementById('selection').getBoundingClientRect();
             return r.left >= 0 && r.right <= innerWidth && document.documentElement.scrollWidth <= innerWidth;",
            json!([]),
        )
        .await;
    assert_eq!(overflow, true, "the selection bar fits a phone's width");
    assert_clean_console(&alice, "selection", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_into_a_new_folder_reaches_the_other_browser_live() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice_api = app.user("alice").await;
    app.create_user("bob", "user").await;
    let id = alice_api.upload_ok("drafts/part.nc", b"part").await;
    let stays = alice_api.upload_ok("parts/keep.nc", b"keep").await;
    assert_eq!(alice_api.checkout(id, "renaming").await.status(), 200);

    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    let bob = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    bob.login(&app.base, "bob", USER_PASSWORD).await;
    // Bob on Server-Sent Events: `moved` and `edited` are events its
    // stream must name, or they would never swap in.
    bob.goto(&app.url("/?transport=sse")).await;
    alice.wait_live().await;
    assert_eq!(bob.wait_live().await, "sse");
    mark_page(&bob).await;
    assert!(
        bob.try_find(&format!("#file-{id} details.move"))
            .await
            .is_none(),
        "only the holder (or an admin on a free file) is offered Move…"
    );

    open_popover(&alice, &format!("#file-{id} details.move")).await;
    let field = format!("#file-{id} details.move input[name=path]");
    assert_eq!(
        alice
            .exec(
                "return document.querySelector(arguments[0]).value",
                json!([field])
            )
            .await,
        "drafts/part.nc",
        "prefilled with the current path"
    );
    alice.clear(&field).await;
    alice.type_into(&field, "archive/2026/part.nc").await;
    alice.screenshot("sets-02-move").await;
    alice
        .click(&format!("#file-{id} details.move button[type=submit]"))
        .await;

    for b in [&bob, &alice] {
        b.wait_until(
            &format!("!!document.querySelector(\"section.folder[data-folder='archive/2026'] #file-{id}[data-path='archive/2026/part.nc']\")"),
            "the card in its new folder",
        )
        .await;
        b.wait_until(
            "!document.querySelector(\"section.folder[data-folder='drafts']\")",
            "the emptied folder gone",
        )
        .await;
        wait_card(b, id, "locked", Some("alice"), "the lock moved with it").await;
        assert_eq!(
            b.exec(
                &format!("return document.querySelectorAll('#file-{id}').length"),
                json!([])
            )
            .await,
            1,
            "one card"
        );
    }
    assert!(bob.try_find(&format!("#file-{stays}")).await.is_some());
    assert!(still_same_page(&bob).await);

    // Describe…: the holder edits it; Bob's card shows it live.
    open_popover(&alice, &format!("#file-{id} details.describe")).await;
    alice
        .type_into(
            &format!("#file-{id} details.describe textarea"),
            "Archived setup",
        )
        .await;
    alice
        .click(&format!("#file-{id} details.describe button[type=submit]"))
        .await;
    bob.wait_until(
        &format!("(() => {{ const d = document.querySelector('#file-{id} .card-desc'); return !!d && d.textContent.includes('Archived setup'); }})()"),
        "the description, live",
    )
    .await;
    // Saved by keyboard or mouse, focus is back on Describe… in the new
    // card (its Save button went with the old card).
    alice
        .wait_until(
            &format!("document.activeElement === document.querySelector('#file-{id} details.describe > summary')"),
            "focus on Describe… after saving",
        )
        .await;
    assert_clean_console(&alice, "a move", &[]).await;
    assert_clean_console(&bob, "a move seen live", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_upload_shows_its_progress_and_drops_land_in_their_folder() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice_api = app.user("alice").await;
    app.create_user("bob", "user").await;
    alice_api.upload_ok("imports/existing.nc", b"old").await;
    let tmp = tempfile::tempdir().unwrap();
    let one = disk_file(&tmp, "one.nc", &vec![b'1'; 300_000]);
    let two = disk_file(&tmp, "two.nc", b"two");
    let folder = tmp.path().join("soft-jaws");
    std::fs::create_dir_all(folder.join("left")).unwrap();
    std::fs::write(folder.join("left/jaw.nc"), b"left jaw").unwrap();
    std::fs::write(folder.join("vise.nc"), b"vise").unwrap();

    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    let bob = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    bob.login(&app.base, "bob", USER_PASSWORD).await;
    alice.wait_live().await;
    bob.wait_live().await;
    // A progress bar is shown while the upload runs (recorded, as a fast
    // upload may end before anyone looks).
    alice
        .exec(
            "window.__sawProgress = false;
             new MutationObserver(() => { if (document.querySelector('#uploads progress')) window.__sawProgress = true; })
               .observe(document.getElementById('uploads'), {childList: true, subtree: true});",
            json!([]),
        )
        .await;

    open_popover(&alice, "details.upload").await;
    alice.click("details.bulk-more > summary").await;
    let picks = format!("{}\n{}", one.display(), two.display());
    alice
        .type_into("form.bulk input[type=file][multiple]", &picks)
        .await;
    alice
        .type_into("form.bulk input[webkitdirectory]", folder.to_str().unwrap())
        .await;
    alice
        .type_into("form.bulk input[name=folder]", "imports")
        .await;
    alice.screenshot("sets-03-bulk-form").await;
    alice.click("form.bulk button[type=submit]").await;
    alice
        .wait_until(
            "[...document.querySelectorAll('#uploads .upload-done')].some(l => l.textContent.includes('Uploaded 4 files in one commit.'))",
            "the upload's line says it is done",
        )
        .await;
    assert_eq!(
        alice.exec("return window.__sawProgress", json!([])).await,
        true
    );
    for path in [
        "imports/one.nc",
        "imports/two.nc",
        "imports/soft-jaws/vise.nc",
        "imports/soft-jaws/left/jaw.nc",
    ] {
        file_id_by_path(&bob, path).await;
    }

    // A drop on the imports section goes into imports/; a clash is told
    // in the upload's line, in the server's words.
    let drop = "const [folder, names] = arguments;
        const dt = new DataTransfer();
        names.forEach(n => dt.items.add(new File(['dropped ' + n], n)));
        const target = document.querySelector(`section.folder[data-folder='${folder}'] .cards`);
        target.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));";
    alice.exec(drop, json!(["imports", ["dropped.nc"]])).await;
    file_id_by_path(&bob, "imports/dropped.nc").await;
    alice.exec(drop, json!(["imports", ["existing.nc"]])).await;
    alice
        .wait_until(
            "[...document.querySelectorAll('#uploads .upload-failed')].some(l => l.textContent.includes('imports/existing.nc'))",
            "the refusal in the upload's line",
        )
        .await;
    alice.screenshot("sets-04-uploads").await;

    // Files dropped on the check-in form fill its picker; nothing uploads.
    let lines = alice
        .exec(
            "return document.querySelectorAll('#uploads .upload-progress').length",
            json!([]),
        )
        .await;
    open_popover(&alice, "details.checkin-set").await;
    let filled = alice
        .exec(
            "const dt = new DataTransfer();
             ['a.nc', 'b.nc'].forEach(n => dt.items.add(new File([n], n)));
             const form = document.querySelector('details.checkin-set form');
             form.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
             form.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
             return [...form.querySelector('input[type=file]').files].map(f => f.name);",
            json!([]),
        )
        .await;
    assert_eq!(filled, json!(["a.nc", "b.nc"]));
    // A second drop adds to the first (a same name replaces), and the form
    // names what it holds: the browser's own field says only "3 files".
    let filled = alice
        .exec(
            "const dt = new DataTransfer();
             ['c.nc', 'a.nc'].forEach(n => dt.items.add(new File([n + ' again'], n)));
             const form = document.querySelector('details.checkin-set form');
             form.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
             return [...form.querySelector('input[type=file]').files].map(f => f.name);",
            json!([]),
        )
        .await;
    assert_eq!(filled, json!(["b.nc", "c.nc", "a.nc"]));
    assert!(
        has_text(
            &alice,
            "details.checkin-set .picked",
            "3 files: b.nc, c.nc, a.nc"
        )
        .await
    );
    assert_eq!(
        alice
            .exec(
                "return document.querySelectorAll('#uploads .upload-progress').length",
                json!([])
            )
            .await,
        lines,
        "a drop on the check-in form is not an upload"
    );
    assert_clean_console(&alice, "bulk uploads", &["409"]).await;
}

/// Makes `docs/change-set.png`: three cards of a fixture ticked, a comment
/// typed, the selection bar ready to check them out together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn make_change_set_screenshot() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let dana = app.user("dana").await;
    let marco = app.user("marco").await;
    let upload = sized_upload;
    let base = upload(
        &dana,
        "fixtures/vise-6in/base-plate.nc",
        "Base plate: face and dowel holes",
        84_000,
    )
    .await;
    upload(
        &dana,
        "fixtures/vise-6in/jaw-left.nc",
        "Soft jaw, left: pocket for the housing",
        52_000,
    )
    .await;
    let jaw_r = upload(
        &dana,
        "fixtures/vise-6in/jaw-right.nc",
        "Soft jaw, right: mirror of the left",
        51_000,
    )
    .await;
    let stop = upload(
        &marco,
        "fixtures/vise-6in/work-stop.nc",
        "Work stop, 12 mm",
        9_000,
    )
    .await;
    upload(
        &marco,
        "parts/pump-housing-op1.nc",
        "Pump housing, first op",
        240_000,
    )
    .await;
    assert_eq!(
        marco
            .checkout(stop, "Shorter stop for the new jaws")
            .await
            .status(),
        200
    );

    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    b.click_el(&tick_box(&b, base).await).await;
    b.shift_click_el(&tick_box(&b, jaw_r).await).await;
    b.wait_until(
        "document.querySelectorAll('input[name=ids]:checked').length === 3",
        "three ticked",
    )
    .await;
    b.type_into("#selection-comment", "New jaws for the pump housing")
        .await;
    let path = b.screenshot("change-set").await;
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::copy(&path, docs.join("change-set.png")).unwrap();
    assert_eq!(dana.checkout(base, "").await.status(), 200);
    let dark = driver
        .session(Options {
            color_scheme: "dark",
            ..Options::default()
        })
        .await;
    dark.login(&app.base, "dana", USER_PASSWORD).await;
    dark.wait_live().await;
    dark.click_el(&tick_box(&dark, base).await).await;
    dark.click(&format!("#file-{base} details.describe > summary"))
        .await;
    dark.screenshot("change-set-dark").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_selection_and_several_files_forms_work_with_javascript_disabled() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let alice_api = app.user("alice").await;
    let a = alice_api.upload_ok("jig/a.nc", b"a1").await;
    let b_id = alice_api.upload_ok("jig/b.nc", b"b1").await;
    let c = alice_api.upload_ok("jig/c.nc", b"c1").await;
    let tmp = tempfile::tempdir().unwrap();
    let new_a = disk_file(&tmp, "a.nc", b"a2 without js");
    let new_b = disk_file(&tmp, "b.nc", b"b2 without js");

    let driver = Driver::start().await;
    let b = driver
        .session(Options {
            javascript: false,
            ..Options::default()
        })
        .await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    // Without script the bar is a plain row of the toolbar, and the
    // controls that need script are not offered.
    assert_eq!(
        b.exec(
            "return [getComputedStyle(document.getElementById('selection')).display,
                     getComputedStyle(document.querySelector('[data-clear-selection]')).display,
                     getComputedStyle(document.querySelector('[data-select-folder]')).display]",
            json!([])
        )
        .await,
        json!(["flex", "none", "none"])
    );
    b.click_el(&tick_box(&b, a).await).await;
    b.click_el(&tick_box(&b, b_id).await).await;
    b.type_into("#selection-comment", "plain form").await;
    b.screenshot("nojs-sets-01-selection").await;
    b.click("#selection button[type=submit]:not([formaction])")
        .await;
    wait_card(&b, a, "locked", Some("alice"), "a, after the plain post").await;
    wait_card(&b, b_id, "locked", Some("alice"), "b, after the plain post").await;
    wait_card(&b, c, "available", None, "c, not ticked").await;
    assert!(has_text(&b, "main", "Checked out 2 files.").await);
    assert_eq!(alice_api.file(a).await["lock"]["comment"], "plain form");

    // Both new versions through the check-in of several, by bare names.
    b.click("details.checkin-set > summary").await;
    let picks = format!("{}\n{}", new_a.display(), new_b.display());
    b.type_into("details.checkin-set input[type=file]", &picks)
        .await;
    b.type_into(
        "details.checkin-set textarea[name=message]",
        "Both, no script",
    )
    .await;
    b.click("details.checkin-set button[type=submit]").await;
    b.wait_until(
        "document.querySelector('main') && document.querySelector('main').textContent.includes('Checked in 2 files in one commit.')",
        "the flash of the check-in",
    )
    .await;
    assert_eq!(alice_api.file(a).await["revision"], "1.1");
    assert_eq!(alice_api.content(b_id, None).await, b"b2 without js");
}

/// History → "Compare with previous" shows the diff in the panel, and
/// "Preview" shows the lines. With `LATCH_WRITE_DOCS=1` the full diff page
/// becomes `docs/diff.png` for the README.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_compares_with_previous_and_previews_in_the_panel() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let dana = app.user("dana").await;
    let v1 = "%\nO1001 (PUMP HOUSING OP1)\nG21 G90 G17\nT1 M6 (50MM FACE MILL)\nG0 X-30. Y0. S1200 M3\nG43 H1 Z5.\nG1 Z0. F300.\nX130.\nG0 Z50.\nT2 M6 (10MM DRILL)\nG0 X40. Y20. S900 M3\nG81 Z-22. R2. F120.\nX80.\nG80\nM30\n%\n";
    let v2 = "%\nO1001 (PUMP HOUSING OP1)\nG21 G90 G17\nT1 M6 (50MM FACE MILL)\nG0 X-30. Y0. S1400 M3\nG43 H1 Z5.\nG1 Z0. F360.\nX130.\nG0 Z50.\nT2 M6 (10MM DRILL)\nG0 X40. Y20. S900 M3\nG83 Z-24. R2. Q4. F120.\nX80.\nX120.\nG80\nM30\n%\n";
    let id = dana.upload_ok("programs/O1001.nc", v1.as_bytes()).await;
    assert_eq!(dana.checkout(id, "").await.status(), 200);
    let resp = dana
        .checkin(
            id,
            v2.as_bytes(),
            "Faster facing, peck drill the ports",
            "minor",
        )
        .await;
    assert_eq!(resp.status(), 200);

    let driver = Driver::start().await;
    let b = driver
        .session(Options {
            width: 1200,
            height: 820,
            ..Options::default()
        })
        .await;
    b.login(&app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    b.click(&format!("#file-{id} a[href$='/history']")).await;
    b.wait_for_element("#panel .history").await;
    // Every version's buttons (Preview, Compare with previous, Download)
    // lie inside the drawer: none runs past its edge, clipped.
    let clipped = b
        .exec(
            "const p = document.getElementById('panel').getBoundingClientRect();
             return [...document.querySelectorAll('#panel .history td a.btn')]
               .filter(a => { const r = a.getBoundingClientRect(); return r.right > p.right - 1 || r.left < p.left; })
               .map(a => a.textContent.trim());",
            json!([]),
        )
        .await;
    assert_eq!(
        clipped,
        json!([]),
        "history buttons cut off by the drawer's edge"
    );
    b.screenshot("content-00-history-panel").await;
    b.click("#panel a[href*='/diff?from=']").await;
    b.wait_for_element("#panel .comparison table.diff").await;
    assert!(has_text(&b, "#panel tr.removed", "S1200").await);
    assert!(has_text(&b, "#panel tr.added", "S1400").await);
    assert!(has_text(&b, "#panel table.diff", "G83 Z-24.").await);
    b.screenshot("content-01-diff-panel").await;

    b.click("#panel a[href$='/history']").await;
    b.wait_for_element("#panel .history").await;
    b.click("#panel a[href*='/preview?rev=']").await;
    b.wait_for_element("#panel .preview ol.lines").await;
    assert!(has_text(&b, "#panel ol.lines", "O1001 (PUMP HOUSING OP1)").await);
    assert_clean_console(&b, "preview and compare", &[]).await;

    let history = dana.history(id).await;
    let (to, from) = (
        history[0]["commit"].as_str().unwrap(),
        history[1]["commit"].as_str().unwrap(),
    );
    b.goto(&format!("{}/files/{id}/diff?from={from}&to={to}", app.base))
        .await;
    b.wait_for_element("main table.diff, table.diff").await;
    let path = b.screenshot("content-02-diff-page").await;
    if std::env::var("LATCH_WRITE_DOCS").is_ok_and(|v| v == "1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&path, docs.join("diff.png")).unwrap();
    }
}

/// A keyboard user's focus stays on the card they are on when someone else
/// changes that file: the same control in the new card, not the top of the
/// page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_stays_on_a_card_that_someone_else_changes() {
    let Some(t) = alice_watches_bob().await else {
        return;
    };
    t.alice.wait_live().await;
    t.alice
        .exec(
            "document.querySelector('#file-' + arguments[0] + ' a[href$=\"/download\"]').focus();",
            json!([t.id]),
        )
        .await;
    assert_eq!(t.bob.checkout(t.id, "on the mill").await.status(), 200);
    wait_card(&t.alice, t.id, "locked", Some("bob"), "Bob's check-out").await;
    t.alice
        .wait_until(
            &format!("document.activeElement === document.querySelector('#file-{} a[href$=\"/download\"]')", t.id),
            "focus on the same card's Download after the live swap",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_times_tick_and_carry_the_exact_time() {
    let Some(cast) = alice_watches_bob().await else {
        return;
    };
    let (app, bob, id, alice) = (&cast.app, &cast.bob, cast.id, &cast.alice);
    alice.goto(&app.url("/")).await;
    alice.wait_live().await;
    let time = format!("#file-{id} time[data-relative]");
    assert!(
        has_text(alice, &time, "just now").await,
        "a fresh upload reads just now"
    );
    let title = alice
        .exec(
            "return document.querySelector(arguments[0]).title;",
            json!([time]),
        )
        .await;
    let title = title.as_str().unwrap_or_default().to_string();
    assert!(
        title.len() == "2026-12-03 14:05 UTC".len() && title.ends_with(" UTC"),
        "the exact time on hover, in words a person reads: {title:?}"
    );
    // Five minutes pass (the element says it is five minutes older), and
    // the page re-words it without asking the server.
    alice
        .exec(
            "const t = document.querySelector(arguments[0]);
             t.setAttribute('datetime', new Date(Date.now() - 5 * 60000).toISOString());
             window.latchLive.refreshTimes();",
            json!([time]),
        )
        .await;
    assert_eq!(alice.text(&time).await, "5 min ago");
    // A card arriving live is re-worded too.
    bob.checkout(id, "").await;
    wait_card(alice, id, "locked", Some("bob"), "bob's check-out").await;
    alice
        .exec(
            "document.querySelectorAll(arguments[0]).forEach(t =>
               t.setAttribute('datetime', new Date(Date.now() - 3 * 3600000).toISOString()));
             window.latchLive.refreshTimes();",
            json!([time]),
        )
        .await;
    assert_eq!(alice.text(&time).await, "3 h ago");
    assert_clean_console(alice, "ticking times", &[]).await;
}

/// Every WebSocket the page opens, in `window.__sockets`; while
/// `window.__blockWs` is set, new ones go to a closed port (a server that is
/// down). Installed before the page's own scripts.
async fn watch_sockets(b: &Browser) {
    b.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": "(() => {
            const Real = window.WebSocket;
            window.__sockets = [];
            window.WebSocket = function (url, protocols) {
                const s = new Real(window.__blockWs ? 'ws://127.0.0.1:9/' : url, protocols);
                window.__sockets.push(s);
                return s;
            };
            window.WebSocket.prototype = Real.prototype;
            Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
        })();" }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_offers_retry_now_and_comes_back_at_once_when_online() {
    let Some(cast) = alice_watches_bob().await else {
        return;
    };
    let (app, alice) = (&cast.app, &cast.alice);
    watch_sockets(alice).await;
    alice.goto(&app.url("/")).await;
    assert_eq!(alice.wait_live().await, "ws");
    // The server goes away: the open socket drops and every retry fails.
    // Math.random at its top makes each backoff its longest.
    alice
        .exec(
            "window.__blockWs = true; Math.random = () => 0.999;
             window.__sockets[window.__sockets.length - 1].close();",
            json!([]),
        )
        .await;
    alice
        .wait_until(
            "window.latchLive.state === 'reconnecting'",
            "the page to notice",
        )
        .await;
    let retry = "(() => { const r = document.getElementById('live-retry');
        return !!r && r.tagName === 'BUTTON' && !r.hidden && r.offsetParent !== null
            && r.textContent.trim() === 'Retry now'; })()";
    alice
        .wait_until(retry, "a Retry now button while down")
        .await;
    // Retry now tries at once; each failure grows the backoff, up to its cap.
    for n in 0..6 {
        let before = alice
            .exec("return window.__sockets.length;", json!([]))
            .await;
        alice.click("#live-retry").await;
        alice
            .wait_until(
                &format!("window.__sockets.length > {before}"),
                &format!("retry {n} to try a new connection"),
            )
            .await;
        alice
            .wait_until(
                "window.latchLive.state === 'reconnecting' && window.latchLive.retryIn > 0",
                "the retry to fail and back off",
            )
            .await;
    }
    let wait = alice
        .exec("return window.latchLive.retryIn;", json!([]))
        .await;
    assert!(
        wait.as_f64().is_some_and(|ms| ms <= 5000.0),
        "the backoff is capped at 5 s: {wait}"
    );
    // The network is back: the browser says so and the page goes live now.
    alice
        .exec(
            "window.__blockWs = false; window.dispatchEvent(new Event('online'));",
            json!([]),
        )
        .await;
    alice.wait_live().await;
    assert_eq!(alice.text("#live-status").await, "Live");
    alice
        .wait_until(
            "(() => { const r = document.getElementById('live-retry'); return !r || r.hidden; })()",
            "Retry now to go once live",
        )
        .await;
    // Down again, then the tab comes back into view: reconnect at once.
    alice
        .exec(
            "window.__sockets[window.__sockets.length - 1].close();",
            json!([]),
        )
        .await;
    alice
        .wait_until(
            "window.latchLive.state === 'reconnecting'",
            "the second drop",
        )
        .await;
    alice
        .exec(
            "document.dispatchEvent(new Event('visibilitychange'));",
            json!([]),
        )
        .await;
    alice.wait_live().await;
    assert_clean_console(alice, "a lost connection", &["127.0.0.1:9"]).await;
}

/// The boxes of what is on screen, and whether any toast overlaps the
/// selection bar or a visible card's buttons.
const TOAST_OVERLAPS: &str = "(() => {
    const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    const toasts = [...document.querySelectorAll('#toasts .toast')].map(t => t.getBoundingClientRect());
    const sel = document.getElementById('selection');
    const targets = [...document.querySelectorAll('.card-actions > form button, .card-actions > details > summary, .card-actions > a[href], input[name=ids]')]
        .concat(sel ? [sel] : [])
        .filter(e => e.offsetParent !== null)
        .map(e => [e.textContent.trim().slice(0, 30), e.getBoundingClientRect()]);
    const bad = [];
    toasts.forEach(t => targets.forEach(([name, r]) => { if (hit(t, r)) bad.push(name); }));
    return { toasts: toasts.length, bad };
})()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_a_colleague_is_one_counted_toast_that_covers_no_buttons() {
    let Some(cast) = alice_watches_bob().await else {
        return;
    };
    let (app, bob, id, alice) = (&cast.app, &cast.bob, cast.id, &cast.alice);
    alice.goto(&app.url("/")).await;
    alice.wait_live().await;
    // The selection bar is up (Alice ticked a card) while Bob uploads.
    let tick = tick_box(alice, id).await;
    alice.click_el(&tick).await;
    alice
        .wait_until(
            "document.getElementById('selection').dataset.count === '1'",
            "the selection bar",
        )
        .await;
    alice
        .exec(
            "window.__maxToasts = 0;
             new MutationObserver(() => {
               const n = [...document.querySelectorAll('#toasts .toast')]
                 .filter(t => !t.classList.contains('toast-leaving')).length;
               window.__maxToasts = Math.max(window.__maxToasts, n);
             }).observe(document.getElementById('toasts'), { childList: true, subtree: true });",
            json!([]),
        )
        .await;
    for n in 0..10 {
        bob.upload_ok(&format!("parts/burst-{n}.mcam"), b"x").await;
    }
    alice
        .wait_until(
            "document.querySelectorAll('#file-list article.card').length === 11",
            "all ten new cards",
        )
        .await;
    let counted = alice
        .wait_until(
            "[...document.querySelectorAll('#toasts .toast')].map(t => t.textContent)
               .find(s => /\\b([2-9]|10) changes by bob/.test(s))",
            "a toast that counts Bob's changes",
        )
        .await;
    let max = alice.exec("return window.__maxToasts;", json!([])).await;
    assert!(
        max.as_u64().is_some_and(|n| n <= 3),
        "at most three toasts at once, got {max} ({counted})"
    );
    // Refusals are never merged away; none of it covers a button, on a
    // desktop or a phone.
    alice
        .exec(
            "const box = document.getElementById('toasts');
             for (const w of ['First refusal.', 'Second refusal.'])
               box.insertAdjacentHTML('beforeend', '<div class=\"toast toast-error\" role=\"alert\">' + w + '</div>');",
            json!([]),
        )
        .await;
    alice
        .wait_until(
            "document.querySelectorAll('#toasts .toast-error:not(.toast-leaving)').length === 2",
            "both refusals shown",
        )
        .await;
    alice.screenshot("toasts-desktop").await;
    let seen = alice
        .exec(&format!("return {TOAST_OVERLAPS};"), json!([]))
        .await;
    assert_eq!(
        seen["bad"],
        json!([]),
        "toasts cover buttons on a desktop: {seen}"
    );
    // A narrow desktop: no activity column beside the cards to sit over.
    alice
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 900, "height": 800, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    alice.settle().await;
    alice.screenshot("toasts-narrow").await;
    let seen = alice
        .exec(&format!("return {TOAST_OVERLAPS};"), json!([]))
        .await;
    assert!(seen["toasts"].as_u64().is_some_and(|n| n >= 2), "{seen}");
    assert_eq!(
        seen["bad"],
        json!([]),
        "toasts cover buttons on a narrow desktop: {seen}"
    );
    alice
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await;
    alice.settle().await;
    alice.screenshot("toasts-phone").await;
    let seen = alice
        .exec(&format!("return {TOAST_OVERLAPS};"), json!([]))
        .await;
    assert!(seen["toasts"].as_u64().is_some_and(|n| n >= 2), "{seen}");
    assert_eq!(
        seen["bad"],
        json!([]),
        "toasts cover buttons on a phone: {seen}"
    );
    // The table view: each line's actions are its right-hand column (or,
    // narrower, a row of their own), and the lines fill a short window.
    alice
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 520, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    alice.click("#view-switch button[value=table]").await;
    alice
        .wait_until(
            "document.getElementById('file-list').classList.contains('table-view')",
            "the table view",
        )
        .await;
    alice
        .exec(
            "const box = document.getElementById('toasts');
             for (const w of ['Third refusal.', 'Fourth refusal.'])
               box.insertAdjacentHTML('beforeend', '<div class=\"toast toast-error\" role=\"alert\">' + w + '</div>');",
            json!([]),
        )
        .await;
    for width in [1280, 1024, 900, 700] {
        alice
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": width, "height": 520, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
        alice.settle().await;
        alice.screenshot(&format!("toasts-table-{width}")).await;
        let seen = alice
            .exec(&format!("return {TOAST_OVERLAPS};"), json!([]))
            .await;
        assert!(seen["toasts"].as_u64().is_some_and(|n| n >= 2), "{seen}");
        assert_eq!(
            seen["bad"],
            json!([]),
            "toasts cover buttons in the table view at {width} px: {seen}"
        );
    }
    assert_clean_console(alice, "a burst of toasts", &[]).await;
}

/// A file over `--max-upload` sent through the plain Upload form (no
/// script, so no check before sending) gets Latch's own 413 page with the
/// sentence and a way back, not the browser's "connection reset" page; and
/// nothing of it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_without_javascript_gets_latchs_page() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn_with(|c| c.max_upload = 64 * 1024).await;
    app.create_user("alice", "user").await;
    let tmp = tempfile::tempdir().unwrap();
    let big = disk_file(&tmp, "huge.mcam", &vec![b'x'; 32 << 20]);

    let driver = Driver::start().await;
    let b = driver
        .session(Options {
            javascript: false,
            ..Options::default()
        })
        .await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    open_popover(&b, "details.upload").await;
    b.type_into("details.upload input[type=file]", big.to_str().unwrap())
        .await;
    b.type_into("details.upload input[name=path]", "parts/huge.mcam")
        .await;
    b.click("details.upload button[type=submit]").await;
    // Either Latch's page or the browser's own error page; which one is
    // asserted below, so a failure says what the browser showed.
    b.wait_until(
        "document.readyState === 'complete' && (location.protocol === 'chrome-error:'
            || document.body.innerText.includes('nothing was saved')
            || document.body.innerText.includes('Nothing was saved'))",
        "an answer to the upload",
    )
    .await;
    b.screenshot("nojs-upload-too-large").await;
    let shown = b
        .exec(
            "return [location.href, document.body.innerText,
                     !!document.querySelector('link[rel=stylesheet]'),
                     !!document.querySelector('main a[href=\"/\"]')];",
            json!([]),
        )
        .await;
    let text = shown[1].as_str().unwrap_or_default();
    assert!(
        text.contains("413") && text.contains("larger than the limit of 64 KiB"),
        "Latch's 413 page with the sentence, not the browser's: {shown:#}"
    );
    assert_eq!(shown[2], json!(true), "in Latch's layout: {shown:#}");
    assert_eq!(shown[3], json!(true), "with a link back: {shown:#}");
    let spool = app.data_dir.join("spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing is left in the spool: {left:?}");
    // Nothing was saved either.
    let files = app.admin().await.get_json("/api/files").await;
    assert!(!files.to_string().contains("huge.mcam"), "{files}");
}

/// Uploads `size` bytes of patterned content as `path` with `desc` (the
/// README screenshots' fixtures); returns the new file's id.
async fn sized_upload(
    c: &common::Client,
    path: &'static str,
    desc: &'static str,
    size: usize,
) -> u64 {
    let content: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("path", path)
        .text("description", desc)
        .part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name("f.bin"),
        );
    let resp = c.post_form("/api/files", form).await;
    assert_eq!(resp.status(), 201, "upload {path}");
    resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
}

/// The list's class and the height of card `id`: a table line is one line.
async fn line_height(b: &Browser, id: u64) -> f64 {
    b.exec(
        "return document.getElementById('file-' + arguments[0]).getBoundingClientRect().height",
        json!([id]),
    )
    .await
    .as_f64()
    .unwrap_or(f64::MAX)
}

/// Cards | Table: the switch swaps the list, pushes an address that reloads
/// as the full page, and is remembered for the person (a bare `/` shows the
/// table again). In the table a line is the same card element: another
/// person's change swaps it live, ticks and focus survive, and the
/// selection's action works on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_view_is_remembered_and_its_lines_stay_live() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let bob = app.user("bob").await;
    let a = bob.upload_ok("jig/a.nc", b"a").await;
    let b = bob.upload_ok("jig/b.nc", b"b").await;
    let c = bob.upload_ok("other/c.nc", b"c").await;
    let driver = Driver::start().await;
    let alice = driver.session(Options::default()).await;
    alice.login(&app.base, "alice", USER_PASSWORD).await;
    alice.wait_live().await;
    assert!(line_height(&alice, a).await > 100.0, "a card first");

    alice.click("#view-switch button[value=table]").await;
    alice
        .wait_until(
            "document.getElementById('file-list').classList.contains('table-view')
             && document.querySelector('#view-switch button[value=table]').getAttribute('aria-pressed') === 'true'
             && document.getElementById('view-field').value === 'table'",
            "the table view",
        )
        .await;
    assert!(alice.current_url().await.contains("view=table"));
    alice.screenshot("table-01-switched").await;
    let h = line_height(&alice, a).await;
    assert!(h < 60.0, "one line per file: {h} px");

    // Remembered: the bare dashboard shows the table again.
    alice.goto(&app.url("/")).await;
    alice.wait_live().await;
    assert!(
        line_height(&alice, a).await < 60.0,
        "the table after a reload"
    );
    // An address with a view and a sort is a full page.
    alice.goto(&app.url("/?view=table&sort=path")).await;
    alice.wait_live().await;
    assert!(alice.try_find("#filters").await.is_some());
    assert!(
        alice
            .try_find(".file-list.table-view .list-head")
            .await
            .is_some()
    );

    // Tick b, focus a's Download; Bob checks out both: both lines swap live.
    alice.click_el(&tick_box(&alice, b).await).await;
    alice
        .exec(
            "document.querySelector('#file-' + arguments[0] + ' a[href$=\"/download\"]').focus();",
            json!([a]),
        )
        .await;
    assert_eq!(bob.checkout(a, "").await.status(), 200);
    assert_eq!(bob.checkout(b, "").await.status(), 200);
    wait_card(&alice, a, "locked", Some("bob"), "Bob's check-out of a").await;
    wait_card(&alice, b, "locked", Some("bob"), "Bob's check-out of b").await;
    alice
        .wait_until(
            &format!("document.activeElement === document.querySelector('#file-{a} a[href$=\"/download\"]')"),
            "focus kept on a's Download through the live swap",
        )
        .await;
    assert_eq!(
        alice
            .exec(
                "return [...document.querySelectorAll('input[name=ids]:checked')].map(b => +b.value)",
                json!([])
            )
            .await,
        json!([b]),
        "b's tick survives its swap"
    );
    assert!(
        line_height(&alice, b).await < 60.0,
        "a swapped line is a line"
    );
    // Bob lets b go; Alice checks out what she ticked, from the bar.
    assert_eq!(bob.cancel(b).await.status(), 200);
    wait_card(&alice, b, "available", None, "Bob's cancel").await;
    alice.click_el(&tick_box(&alice, c).await).await;
    alice
        .wait_until(
            "document.querySelector('#selection .selection-count').textContent === '2 selected'",
            "two ticked",
        )
        .await;
    alice.click("#selection button.primary[type=submit]").await;
    wait_card(&alice, b, "locked", Some("alice"), "Alice's check-out of b").await;
    wait_card(&alice, c, "locked", Some("alice"), "Alice's check-out of c").await;
    alice
        .wait_until(
            "document.querySelector('#my-checkouts .my-count').textContent === '2'",
            "My check-outs counts them",
        )
        .await;
    alice.screenshot("table-02-live").await;
    assert_clean_console(&alice, "the table view", &[]).await;
}

/// A folder collapses, stays collapsed when a colleague's new file lands in
/// it live (the card is there, hidden) and across a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collapsed_folder_stays_collapsed_through_a_live_insert_and_a_reload() {
    let Some(t) = alice_watches_bob().await else {
        return;
    };
    let alice = &t.alice;
    alice.wait_live().await;
    let open = "document.querySelector(\"section.folder[data-folder='parts'] details\").open";
    alice
        .click("section.folder[data-folder='parts'] summary")
        .await;
    alice
        .wait_until(&format!("!{open}"), "parts/ collapsed")
        .await;
    let new = t.bob.upload_ok("parts/new.mcam", b"n").await;
    alice
        .wait_until(
            &format!(
                "!!document.querySelector(\"section.folder[data-folder='parts'] #file-{new}\")"
            ),
            "the new file lands in the collapsed folder",
        )
        .await;
    assert_eq!(
        alice.exec(&format!("return {open}"), json!([])).await,
        false
    );
    assert_eq!(
        alice
            .text("section.folder[data-folder='parts'] .folder-count")
            .await,
        "2 files"
    );
    alice.goto(&t.app.url("/")).await;
    alice.wait_live().await;
    alice
        .wait_until(&format!("!{open}"), "still collapsed after a reload")
        .await;
    alice
        .click("section.folder[data-folder='parts'] summary")
        .await;
    alice.wait_until(open, "open again").await;
    assert!(line_height(alice, t.id).await > 0.0);
    // All at once: a vault of 500 files in 20 folders is 20 lines.
    t.bob.upload_ok("fixtures/vise.mcam", b"v").await;
    alice
        .wait_until(
            "document.querySelectorAll('details.folder-box').length === 2",
            "a second folder",
        )
        .await;
    alice.click("[data-folders=close]").await;
    alice
        .wait_until(
            "[...document.querySelectorAll('details.folder-box')].every(d => !d.open)",
            "every folder collapsed",
        )
        .await;
    alice.click("[data-folders=open]").await;
    alice
        .wait_until(
            "[...document.querySelectorAll('details.folder-box')].every(d => d.open)",
            "every folder open",
        )
        .await;
    assert_clean_console(alice, "collapsed folders", &[]).await;
}

/// Sorting by last change is one list across folders, newest first; a
/// check-in moves its file to the top live, a new file in a new folder
/// joins the list. "My check-outs" is one click, a full page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_by_last_change_lists_all_folders_newest_first_and_stays_live() {
    let Some(t) = alice_watches_bob().await else {
        return;
    };
    let alice = &t.alice;
    let old = t.id; // parts/bracket.mcam, the oldest
    let mid = t.bob.upload_ok("fixtures/vise.mcam", b"v").await;
    let new = t.bob.upload_ok("parts/plate.mcam", b"p").await;
    // Timestamps are whole seconds: make the order unambiguous.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    alice.goto(&t.app.url("/?sort=modified&view=table")).await;
    alice.wait_live().await;
    let order =
        "return [...document.querySelectorAll('#file-list article.card')].map(c => +c.id.slice(5))";
    assert!(
        alice
            .try_find("#file-list[data-flat] #all-files")
            .await
            .is_some()
    );
    assert!(alice.try_find("section.folder").await.is_none());
    let first = alice.exec(order, json!([])).await;
    assert_eq!(first[2], json!(old), "the oldest last: {first}");
    assert!(
        alice
            .text(&format!("#file-{old} .card-path"))
            .await
            .contains("parts/"),
        "each line shows its folder"
    );
    // Bob checks in the oldest: it goes to the top.
    assert_eq!(t.bob.checkout(old, "").await.status(), 200);
    assert_eq!(t.bob.checkin(old, b"v2", "v2", "minor").await.status(), 200);
    alice
        .wait_until(
            &format!("document.querySelector('#all-files article.card').id === 'file-{old}'"),
            "the checked-in file on top",
        )
        .await;
    let _ = (mid, new);
    // A new file in a new folder joins the flat list.
    let newest = t.bob.upload_ok("brand/new.nc", b"x").await;
    alice
        .wait_until(
            &format!("!!document.querySelector('#all-files #file-{newest}')"),
            "a new file in the flat list",
        )
        .await;
    alice.screenshot("table-03-by-last-change").await;

    // My check-outs.
    assert_eq!(alice.text("#my-checkouts .my-count").await, "0");
    let alice_api = t.app.login("alice", USER_PASSWORD).await;
    assert_eq!(alice_api.checkout(mid, "").await.status(), 200);
    alice
        .wait_until(
            "document.querySelector('#my-checkouts .my-count').textContent === '1'",
            "the count follows a live check-out",
        )
        .await;
    alice.click("#my-checkouts").await;
    alice
        .wait_until(
            "location.search.includes('state=mine') && document.querySelectorAll('#file-list article.card').length === 1",
            "only what Alice holds",
        )
        .await;
    assert!(alice.try_find(&format!("#file-{mid}")).await.is_some());
    assert_clean_console(alice, "the flat list", &[]).await;
}

/// Makes `docs/table-view.png` for the README and looks at the dashboard
/// with 500 files in both views (screenshots in target/screenshots/, the
/// page's size and load time printed):
/// `cargo test --test it -- --ignored browser::make_table_view_screenshot`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn make_table_view_screenshot() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    let dana = app.user("dana").await;
    let marco = app.user("marco").await;
    let files = [
        (
            "fixtures/pump-housing-op1.mcam",
            "Pump housing, first op",
            2_400_000,
        ),
        (
            "fixtures/pump-housing-op2.mcam",
            "Pump housing, second op",
            2_150_000,
        ),
        (
            "fixtures/soft-jaws-6in.mcam",
            "Soft jaws for the 6\" vise",
            310_000,
        ),
        ("fixtures/vise-stop.mcam", "Vise stop", 96_000),
        (
            "parts/bracket-5axis.mcam",
            "Bracket for the 5-axis trunnion",
            1_150_000,
        ),
        ("parts/base-plate.mcam", "Base plate, 12 mm 6061", 842_000),
        (
            "parts/manifold-block.mcam",
            "Hydraulic manifold, four ports",
            3_700_000,
        ),
        ("parts/cover-plate.mcam", "Cover plate", 420_000),
        ("parts/shaft-collar.mcam", "Shaft collar", 130_000),
        (
            "programs/bracket-5axis.nc",
            "Posted for the Haas UMC",
            640_000,
        ),
        ("programs/manifold-op1.nc", "Posted for the DMG", 1_020_000),
        ("programs/plate.nc", "Posted for the VF-2", 210_000),
    ];
    let mut ids = Vec::new();
    for (i, (path, desc, size)) in files.iter().enumerate() {
        let who = if i % 2 == 0 { &dana } else { &marco };
        ids.push(sized_upload(who, path, desc, *size).await);
    }
    assert_eq!(
        marco
            .checkout(ids[0], "Tightening the bore tolerance")
            .await
            .status(),
        200
    );
    assert_eq!(dana.checkout(ids[4], "Adding chamfers").await.status(), 200);
    assert_eq!(dana.checkout(ids[10], "").await.status(), 200);
    assert_eq!(marco.checkout(ids[6], "").await.status(), 200);
    assert_eq!(
        marco
            .checkin(ids[6], &vec![7u8; 3_650_000], "Port 3 moved 2 mm", "minor")
            .await
            .status(),
        200
    );
    let driver = Driver::start().await;
    let b = driver
        .session(Options {
            width: 1280,
            height: 800,
            ..Options::default()
        })
        .await;
    b.login(&app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    b.click("#view-switch button[value=table]").await;
    b.wait_for_element(".file-list.table-view").await;
    b.settle().await;
    let path = b.screenshot("readme-table").await;
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::copy(&path, docs.join("table-view.png")).unwrap();
    b.goto(&app.url("/?sort=modified")).await;
    b.wait_live().await;
    b.screenshot("table-by-last-change").await;
    let phone = driver
        .session(Options {
            width: 390,
            height: 844,
            ..Options::default()
        })
        .await;
    phone.login(&app.base, "dana", USER_PASSWORD).await;
    phone.wait_live().await;
    phone.screenshot("table-phone").await;

    // 500 files: the page in both views.
    for i in 0..(500 - files.len()) {
        let who = if i % 2 == 0 { &dana } else { &marco };
        who.upload_ok(&format!("bulk/f{:02}/part-{i:04}.nc", i / 50), b"x")
            .await;
    }
    // Each view twice, alternated: the first load of a page pays for cold caches.
    for (view, name) in [
        ("table", "at-500-table"),
        ("cards", "at-500-cards"),
        ("table", "at-500-table"),
        ("cards", "at-500-cards"),
    ] {
        let url = app.url(&format!("/?view={view}"));
        let html = dana
            .get(&format!("/?view={view}"))
            .await
            .text()
            .await
            .unwrap();
        b.goto(&url).await;
        b.wait_live().await;
        let timing = b
            .exec(
                "const n = performance.getEntriesByType('navigation')[0];
                 return [n.responseEnd - n.requestStart, n.domInteractive, n.domContentLoadedEventEnd,
                         document.querySelectorAll('article.card').length, document.documentElement.scrollHeight];",
                json!([]),
            )
            .await;
        std::fs::write(
            browser::screenshot_dir().join(format!("{name}.html")),
            &html,
        )
        .unwrap();
        println!(
            "{view} at 500 files: {} bytes of HTML; [response ms, DOM interactive ms, DOMContentLoaded ms, cards, page height px] = {timing}",
            html.len()
        );
        b.screenshot(name).await;
    }
}

/// Alice in a browser holding `parts/fixture.mcam` (checked out through
/// the API as her); `None` (skip) without a browser.
async fn alice_holds_fixture(
    max_upload: u64,
) -> Option<(TestApp, common::Client, u64, Driver, Browser)> {
    if !browser::browser_available() {
        return None;
    }
    let app = TestApp::spawn_with(|c| c.max_upload = max_upload).await;
    let api = app.user("alice").await;
    let id = api.upload_ok("parts/fixture.mcam", b"v1").await;
    assert_eq!(api.checkout(id, "").await.status(), 200);
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    b.wait_live().await;
    Some((app, api, id, driver, b))
}

/// The requests this page sent to a path ending in `suffix` (Resource
/// Timing records every fetch and XHR).
async fn requests_to(b: &Browser, suffix: &str) -> u64 {
    b.exec(
        "return performance.getEntriesByType('resource')
            .filter(e => new URL(e.name).pathname.endsWith(arguments[0])).length;",
        json!([suffix]),
    )
    .await
    .as_u64()
    .unwrap_or(u64::MAX)
}

/// How many requests htmx began since the test started counting.
async fn sent(b: &Browser) -> u64 {
    b.exec("return window.__sent", json!([]))
        .await
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// Picking a file over `--max-upload` shows Latch's sentence under the
/// field at once, and the form is not sent: the server sees no check-in.
/// Two files that fit alone but not together are refused the same way by
/// the multi-file form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_limit_is_refused_before_it_is_sent() {
    let Some((app, api, id, _driver, b)) = alice_holds_fixture(64 * 1024).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let big = disk_file(&tmp, "fixture.mcam", &vec![b'x'; 100 * 1024]);
    let form = format!("#file-{id} details.checkin form");
    assert!(
        has_text(&b, &form, "Up to 64 KiB").await,
        "the limit is stated"
    );
    open_popover(&b, &format!("#file-{id} details.checkin")).await;
    b.type_into(&format!("{form} input[type=file]"), big.to_str().unwrap())
        .await;
    b.wait_until(
        &format!(
            "(() => {{ const e = document.querySelector('{form} .size-error');
                return !!e && !e.hidden && e.textContent; }})()"
        ),
        "the sentence under the field, before sending",
    )
    .await;
    assert!(
        has_text(
            &b,
            &format!("{form} .size-error"),
            "larger than the limit of 64 KiB"
        )
        .await
    );
    b.type_into(&format!("{form} textarea[name=message]"), "too big")
        .await;
    b.exec(
        "window.__sent = 0;
         document.addEventListener('htmx:beforeRequest', () => { window.__sent += 1; });",
        json!([]),
    )
    .await;
    b.click(&format!("{form} button[type=submit]")).await;
    // A later request from the same page marks the moment the click was
    // handled; the check-in must not have gone before it.
    // The submit event is dispatched within the click, and htmx sends
    // within its submit handler: had it been let through, it went already.
    assert_eq!(sent(&b).await, 0, "htmx was not asked to send");
    assert_eq!(requests_to(&b, "/checkin").await, 0, "nothing was sent");
    assert!(api.events_of("checked_in").await.is_empty());
    assert_eq!(api.file(id).await["revision"], "1.0");
    assert!(
        has_text(&b, &format!("{form} .size-error"), "64 KiB").await,
        "the sentence stays"
    );

    // Several files count together: 40 KiB + 40 KiB over 64 KiB.
    let a = disk_file(&tmp, "a.mcam", &vec![b'a'; 40 * 1024]);
    let c = disk_file(&tmp, "c.mcam", &vec![b'c'; 40 * 1024]);
    b.press("\u{E00C}").await;
    open_popover(&b, "details.checkin-set").await;
    b.type_into(
        "details.checkin-set input[type=file]",
        &format!("{}\n{}", a.to_str().unwrap(), c.to_str().unwrap()),
    )
    .await;
    b.wait_until(
        "(() => { const e = document.querySelector('details.checkin-set .size-error');
            return !!e && !e.hidden && e.textContent.includes('together'); })()",
        "the multi-file form's sentence",
    )
    .await;
    b.type_into("details.checkin-set textarea[name=message]", "both")
        .await;
    b.click("details.checkin-set button[type=submit]").await;
    assert_eq!(sent(&b).await, 0, "htmx was not asked to send");
    assert_eq!(requests_to(&b, "/files/checkin").await, 0);
    assert!(api.events_of("checked_in").await.is_empty());
    assert_clean_console(&b, "the size check", &[]).await;
    drop(app);
}

/// Checking in a file of another type (bracket.sldprt onto fixture.mcam)
/// asks first, inline; "Choose another" sends nothing, "Check in anyway"
/// sends it. The same type in other case does not ask, and the picker is
/// offered the file's own type first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_of_another_file_type_asks_first() {
    let Some((_app, api, id, _driver, b)) = alice_holds_fixture(1 << 20).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let same = disk_file(&tmp, "Fixture-v2.MCAM", b"v2");
    let other = disk_file(&tmp, "bracket.sldprt", b"solid");
    let form = format!("#file-{id} details.checkin form");
    assert_eq!(
        b.exec(
            "return document.querySelector(arguments[0] + ' input[type=file]').accept",
            json!([form])
        )
        .await,
        json!(".mcam")
    );

    // The same type, other case: no question, and kept checked out.
    open_popover(&b, &format!("#file-{id} details.checkin")).await;
    b.type_into(&format!("{form} input[type=file]"), same.to_str().unwrap())
        .await;
    b.type_into(&format!("{form} textarea[name=message]"), "v2")
        .await;
    b.exec(
        "document.querySelector(arguments[0]).checked = true",
        json!([format!("{form} input[name=keep]")]),
    )
    .await;
    b.click(&format!("{form} button[type=submit]")).await;
    b.wait_until(
        &format!("document.querySelector('#file-{id} .badge.rev').textContent.includes('1.1')"),
        "the check-in of the same type",
    )
    .await;

    // Another type: asked, and nothing sent until answered.
    open_popover(&b, &format!("#file-{id} details.checkin")).await;
    b.type_into(&format!("{form} input[type=file]"), other.to_str().unwrap())
        .await;
    b.type_into(&format!("{form} textarea[name=message]"), "wrong file?")
        .await;
    b.click(&format!("{form} button[type=submit]")).await;
    let asked = b
        .wait_until(
            &format!("document.querySelector('{form} .type-confirm')?.innerText"),
            "the question",
        )
        .await;
    let asked = asked.as_str().unwrap_or_default();
    assert!(
        asked.contains("This is a .sldprt file; fixture.mcam is a .mcam. Check it in anyway?"),
        "{asked}"
    );
    assert!(
        asked.contains("Check in anyway") && asked.contains("Choose another"),
        "{asked}"
    );
    assert_eq!(
        api.file(id).await["revision"],
        "1.1",
        "not sent while asked"
    );
    // Choose another: the question goes, the field is empty, nothing sent.
    b.click(&format!("{form} .type-confirm button.btn:not(.primary)"))
        .await;
    b.wait_until(
        &format!(
            "!document.querySelector('{form} .type-confirm') &&
             document.querySelector('{form} input[type=file]').files.length === 0"
        ),
        "the question gone and the field emptied",
    )
    .await;
    assert_eq!(api.events_of("checked_in").await.len(), 1);
    // Again, and this time check it in anyway.
    b.type_into(&format!("{form} input[type=file]"), other.to_str().unwrap())
        .await;
    b.click(&format!("{form} button[type=submit]")).await;
    b.wait_for_element(&format!("{form} .type-confirm button.primary"))
        .await;
    b.click(&format!("{form} .type-confirm button.primary"))
        .await;
    wait_card(&b, id, "available", None, "the check-in anyway").await;
    assert_eq!(api.file(id).await["revision"], "1.2");
    assert_eq!(api.content(id, None).await, b"solid");
    assert_clean_console(&b, "the type question", &[]).await;
}

/// A comment typed into a check-out form survives the session ending
/// under it: the person signs in again, lands back on the page, and finds
/// the comment still there; checking out with it clears the draft.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_comment_survives_signing_in_again() {
    let Some(AliceWatchesBob {
        app,
        id,
        alice,
        _driver,
        ..
    }) = alice_watches_bob().await
    else {
        return;
    };
    alice.wait_live().await;
    let field = format!("#comment-{id}");
    alice.type_into(&field, "deepening the pocket").await;
    // The session ends (a new password ends every session of hers).
    let new_password = "another-long-password-9";
    let resp = app
        .admin()
        .await
        .patch_json("/api/users/alice", &json!({"password": new_password}))
        .await;
    assert_eq!(resp.status(), 200);
    // Whether the live connection or the next click notices first, she
    // lands on the sign-in page.
    alice
        .try_exec(
            "document.querySelector(arguments[0])?.click()",
            json!([format!(
                "#file-{id} form.checkout button[type=submit]:not([name])"
            )]),
        )
        .await;
    alice.wait_for_path("/login").await;
    assert!(
        has_text(&alice, "main", "session").await,
        "the sign-in page says the session ended"
    );
    alice.type_into("input[name=username]", "alice").await;
    alice.type_into("input[name=password]", new_password).await;
    alice
        .click("form[action='/login'] button[type=submit]")
        .await;
    alice.wait_for_path("/").await;
    let kept = alice
        .wait_until(
            &format!("document.querySelector('{field}')?.value"),
            "the comment restored",
        )
        .await;
    assert_eq!(kept, json!("deepening the pocket"));
    alice
        .click(&format!(
            "#file-{id} form.checkout button[type=submit]:not([name])"
        ))
        .await;
    wait_card(&alice, id, "locked", Some("alice"), "her check-out").await;
    assert!(has_text(&alice, &format!("#file-{id}"), "deepening the pocket").await);
    let left = alice
        .exec(
            "return Object.keys(sessionStorage).filter(k => k.startsWith('latch-draft:')).length",
            json!([]),
        )
        .await;
    assert_eq!(left, json!(0), "the draft is dropped once sent");
}

/// The Activity page is live: a line from another session appears at its
/// top (WebSocket); filtered (SSE), only lines that match are added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activity_page_receives_lines_live() {
    let Some(AliceWatchesBob {
        app,
        bob,
        alice,
        _driver,
        ..
    }) = alice_watches_bob().await
    else {
        return;
    };
    alice.goto(&app.url("/activity?transport=ws")).await;
    assert_eq!(alice.wait_live().await, "ws");
    bob.upload_ok("parts/live-one.mcam", b"1").await;
    alice
        .wait_until(
            "document.querySelector('#activity-list > li')?.textContent.includes('bob uploaded parts/live-one.mcam')",
            "the new line at the top",
        )
        .await;

    alice
        .goto(&app.url("/activity?kind=locked&transport=sse"))
        .await;
    assert_eq!(alice.wait_live().await, "sse");
    let two = bob.upload_ok("parts/live-two.mcam", b"2").await;
    assert_eq!(bob.checkout(two, "").await.status(), 200);
    alice
        .wait_until(
            "document.querySelector('#activity-list > li')?.textContent.includes('bob checked out parts/live-two.mcam')",
            "the matching line",
        )
        .await;
    assert!(
        !has_text(&alice, "#activity-list", "uploaded parts/live-two.mcam").await,
        "a line the filter leaves out is not added"
    );
    assert_clean_console(&alice, "the live Activity page", &[]).await;
}
