//! Telling people: the inbox (a file reserved for you, an ask to release, a
//! broken check-out, a change under what you watch), the unread count and
//! marking read, watching files and folders, the ask-to-release throttle,
//! each person's bell over both live transports (and nobody else's), and
//! all of it across a restart.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::live::{BELL_PREFIX, sse_open, ws_connect};
use crate::common::{Client, TestApp, expect_error, json_of};

async fn inbox(c: &Client) -> Value {
    c.get_json("/api/notifications").await
}

async fn unread(c: &Client) -> u64 {
    inbox(c).await["unread"].as_u64().unwrap()
}

async fn kinds(c: &Client) -> Vec<String> {
    inbox(c).await["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn nudge(c: &Client, id: u64, message: &str) -> reqwest::Response {
    c.post_json(
        &format!("/api/files/{id}/nudge"),
        &json!({ "message": message }),
    )
    .await
}

/// The unread count a bell message carries.
fn bell_count(html: &str) -> u64 {
    let at = html.find("data-unread=\"").expect("a bell") + "data-unread=\"".len();
    html[at..]
        .split('"')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

#[tokio::test]
async fn a_hand_off_an_override_and_an_ask_to_release_reach_the_right_inbox() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let admin = app.admin().await;
    let id = alice.upload_ok("parts/bracket.mcam", b"v1").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);

    // Bob asks Alice to release it: Alice is told, with his words.
    assert_eq!(
        nudge(&bob, id, "need it for the 5-axis").await.status(),
        204
    );
    let a = inbox(&alice).await;
    assert_eq!(a["unread"], 1);
    let n = &a["notifications"][0];
    assert_eq!(n["kind"], "nudged");
    assert_eq!(n["file_id"], id);
    assert_eq!(n["path"], "parts/bracket.mcam");
    assert_eq!(n["actor"], "bob");
    assert_eq!(n["read"], false);
    assert!(
        n["text"]
            .as_str()
            .unwrap()
            .contains("need it for the 5-axis"),
        "{n}"
    );
    // Once an hour per asker and file; someone else may still ask.
    let resp = nudge(&bob, id, "again").await;
    assert!(resp.headers().contains_key("retry-after"));
    let said = expect_error(resp, 429).await;
    assert!(said.contains("less than an hour ago"), "{said}");
    assert_eq!(nudge(&admin, id, "").await.status(), 204);
    // Nobody asks themselves, nor about a file nobody holds.
    let said = expect_error(nudge(&alice, id, "").await, 409).await;
    assert!(said.contains("yourself"), "{said}");
    let free = bob.upload_ok("parts/free.mcam", b"x").await;
    let said = expect_error(nudge(&bob, free, "").await, 409).await;
    assert!(said.contains("not checked out"), "{said}");
    // A message over the limit, or with hidden characters, is refused.
    expect_error(nudge(&admin, free, &"x".repeat(501)).await, 422).await;
    assert_eq!(unread(&alice).await, 2);

    // Bob waits in line; Alice cancels: the file is reserved for Bob, and
    // his inbox says so.
    assert_eq!(
        bob.post_empty(&format!("/api/files/{id}/queue"))
            .await
            .status(),
        200
    );
    assert_eq!(alice.cancel(id).await.status(), 200);
    let b = inbox(&bob).await;
    assert_eq!(b["unread"], 1);
    assert_eq!(b["notifications"][0]["kind"], "reserved");
    assert!(
        b["notifications"][0]["text"]
            .as_str()
            .unwrap()
            .contains("yours to check out"),
        "{b}"
    );

    // Bob takes it, which answers "yours to check out" (read now); the
    // admin breaks his check-out: Bob is told.
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    assert_eq!(unread(&bob).await, 0);
    assert_eq!(admin.override_lock(id).await.status(), 200);
    assert_eq!(kinds(&bob).await, ["overridden", "reserved"]);
    // Nobody is told of their own doing.
    assert_eq!(unread(&admin).await, 0);

    // Marking read: one by id, then all; another's ids change nothing.
    let first = inbox(&alice).await["notifications"][0]["id"].clone();
    let resp = alice
        .post_json("/api/notifications/read", &json!({ "ids": [first] }))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(unread(&alice).await, 1);
    let resp = bob
        .post_json("/api/notifications/read", &json!({ "ids": [first] }))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(unread(&bob).await, 1);
    let only_unread = alice.get_json("/api/notifications?unread=true").await;
    assert_eq!(only_unread["notifications"].as_array().unwrap().len(), 1);
    let resp = alice
        .post_json("/api/notifications/read", &json!({ "all": true }))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(unread(&alice).await, 0);
    assert_eq!(inbox(&alice).await["notifications"][1]["read"], true);
    expect_error(
        alice.post_json("/api/notifications/read", &json!({})).await,
        422,
    )
    .await;

    // Asks to release are not events: the shared log does not show them.
    let events = admin.get_json("/api/activity?since=0").await;
    assert!(
        !events.to_string().contains("need it for the 5-axis"),
        "{events}"
    );
}

#[tokio::test]
async fn watchers_of_a_file_or_a_folder_hear_of_every_change_under_it() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let id = alice.upload_ok("parts/sub/bracket.mcam", b"v1").await;
    let other = alice.upload_ok("fixtures/vise.mcam", b"v1").await;

    // Bob watches the file; Carol the folder `parts` (spelt three ways,
    // one watch); Dave the whole vault.
    let f = json_of(bob.post_empty(&format!("/api/files/{id}/watch")).await, 200).await;
    assert_eq!(f["watching"], true);
    assert_eq!(bob.file(other).await["watching"], false);
    for spelling in ["parts", "/parts/", "parts/"] {
        let w = json_of(
            carol
                .post_json("/api/watches", &json!({ "folder": spelling }))
                .await,
            200,
        )
        .await;
        assert_eq!(w, json!({ "files": [], "folders": ["parts/"] }));
    }
    assert_eq!(carol.file(id).await["watching"], true, "through its folder");
    assert_eq!(carol.file(other).await["watching"], false);
    let w = json_of(
        dave.post_json("/api/watches", &json!({ "folder": "/" }))
            .await,
        200,
    )
    .await;
    assert_eq!(w["folders"], json!(["/"]));
    // Folders are checked like paths.
    for bad in ["../etc", "parts/.git", "a\\b"] {
        expect_error(
            dave.post_json("/api/watches", &json!({ "folder": bad }))
                .await,
            422,
        )
        .await;
    }
    expect_error(bob.post_empty("/api/files/999/watch").await, 404).await;

    // Alice checks out and in; each watcher hears of both, once.
    assert_eq!(alice.checkout(id, "tightening").await.status(), 200);
    assert_eq!(
        alice.checkin(id, b"v2", "tighter", "minor").await.status(),
        200
    );
    for who in [&bob, &carol, &dave] {
        let n = inbox(who).await;
        assert_eq!(n["unread"], 2, "{n}");
        let texts: Vec<&str> = n["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["text"].as_str().unwrap())
            .collect();
        assert!(
            texts[0].contains("checked in parts/sub/bracket.mcam as revision 1.1"),
            "{texts:?}"
        );
        assert!(
            texts[1].contains("checked out parts/sub/bracket.mcam: tightening"),
            "{texts:?}"
        );
    }
    // A new file in a watched folder reaches the folder's watchers only.
    alice.upload_ok("parts/new.mcam", b"n").await;
    assert_eq!(unread(&carol).await, 3);
    assert_eq!(unread(&dave).await, 3);
    assert_eq!(unread(&bob).await, 2);
    // Outside the folder: only the whole vault's watcher.
    assert_eq!(alice.checkout(other, "").await.status(), 200);
    assert_eq!(unread(&carol).await, 3);
    assert_eq!(unread(&dave).await, 4);
    // The actor is never told of their own change.
    assert_eq!(
        alice
            .post_empty(&format!("/api/files/{id}/watch"))
            .await
            .status(),
        200
    );
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    assert_eq!(unread(&alice).await, 0);
    assert_eq!(unread(&bob).await, 3);
    assert_eq!(unread(&carol).await, 4);
    assert_eq!(unread(&dave).await, 5);

    // Stopping: the file, then the folder; nothing more arrives.
    let f = json_of(bob.delete(&format!("/api/files/{id}/watch")).await, 200).await;
    assert_eq!(f["watching"], false);
    let resp = carol
        .delete_json("/api/watches", &json!({ "folder": "parts" }))
        .await;
    assert_eq!(
        json_of(resp, 200).await,
        json!({ "files": [], "folders": [] })
    );
    assert_eq!(alice.cancel(id).await.status(), 200);
    assert_eq!(unread(&bob).await, 3);
    assert_eq!(unread(&carol).await, 4);
    assert_eq!(unread(&dave).await, 6);
    assert_eq!(
        bob.get_json("/api/watches").await,
        json!({ "files": [], "folders": [] })
    );
}

#[tokio::test]
async fn each_person_hears_their_own_bell_live_over_both_transports_and_nobody_elses() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = alice.upload_ok("parts/bracket.mcam", b"v1").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    let mut alice_ws = ws_connect(&app.base, &alice, "").await;
    let mut alice_sse = sse_open(&app.base, &alice, "", &[]).await;
    let mut carol_ws = ws_connect(&app.base, &carol, "").await;

    // An ask to release comes outside the event sequence: no id on SSE.
    assert_eq!(nudge(&bob, id, "please").await.status(), 204);
    let ws = alice_ws
        .bell(Duration::from_secs(10))
        .await
        .expect("a bell on /ws");
    assert!(ws.starts_with(BELL_PREFIX));
    assert_eq!(bell_count(&ws), 1);
    assert!(
        ws.contains("please") && ws.contains("desktop-notify"),
        "{ws}"
    );
    let sse = alice_sse
        .bell(Duration::from_secs(10))
        .await
        .expect("a bell on /events");
    assert_eq!(sse.id, None, "outside the sequence");
    assert_eq!(bell_count(&sse.data.join("\n")), 1);
    assert!(carol_ws.bell(Duration::from_millis(500)).await.is_none());

    // Carol watches the file: Alice's cancel brings Carol her bell with the
    // event itself, and Alice (the actor) none.
    assert_eq!(
        carol
            .post_empty(&format!("/api/files/{id}/watch"))
            .await
            .status(),
        200
    );
    assert_eq!(alice.cancel(id).await.status(), 200);
    let frame = carol_ws
        .text_containing("data-unread", Duration::from_secs(10))
        .await;
    let frame = frame.expect("Carol's event frame carries her bell");
    assert!(
        frame.contains(&format!("id=\"file-{id}\"")),
        "the card comes first"
    );
    assert_eq!(bell_count(&frame), 1);
    let own = alice_ws
        .text_containing(&format!("id=\"file-{id}\""), Duration::from_secs(10))
        .await;
    assert!(!own.expect("Alice sees her cancel").contains("data-unread"));

    // Marking read in one tab updates the bell in the others.
    let resp = alice
        .post_json("/api/notifications/read", &json!({"all": true}))
        .await;
    assert_eq!(resp.status(), 204);
    let ws = alice_ws
        .bell(Duration::from_secs(10))
        .await
        .expect("the bell again");
    assert_eq!(bell_count(&ws), 0);
    assert!(!ws.contains("desktop-notify"), "nothing new to show: {ws}");

    // A reconnecting tab gets the bell as it is now, with what it missed.
    drop(carol_ws);
    assert_eq!(
        nudge(&bob, id, "").await.status(),
        409,
        "nobody holds it now"
    );
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    assert_eq!(nudge(&carol, id, "").await.status(), 204);
    let seq = carol.get_json("/api/activity").await["last_seq"]
        .as_u64()
        .unwrap();
    let mut carol_ws = ws_connect(&app.base, &carol, &format!("?last_event_id={}", seq - 1)).await;
    let bell = carol_ws
        .bell(Duration::from_secs(10))
        .await
        .expect("the bell on resume");
    assert_eq!(
        bell_count(&bell),
        2,
        "Carol's watch told her of two changes"
    );
}

#[tokio::test]
async fn the_inbox_and_watches_survive_a_restart_and_deleted_files_drop_their_watches() {
    let mut app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = alice.upload_ok("parts/bracket.mcam", b"v1").await;
    assert_eq!(
        bob.post_empty(&format!("/api/files/{id}/watch"))
            .await
            .status(),
        200
    );
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    assert_eq!(nudge(&bob, id, "please").await.status(), 204);
    app.restart().await;
    let alice = app.login("alice", crate::common::USER_PASSWORD).await;
    let bob = app.login("bob", crate::common::USER_PASSWORD).await;
    let admin = app.admin().await;
    assert_eq!(kinds(&alice).await, ["nudged"]);
    assert_eq!(kinds(&bob).await, ["watched"]);
    assert_eq!(bob.file(id).await["watching"], true);
    // The throttle is kept too.
    expect_error(nudge(&bob, id, "again").await, 429).await;

    assert_eq!(alice.cancel(id).await.status(), 200);
    assert_eq!(
        admin.delete(&format!("/api/files/{id}")).await.status(),
        204
    );
    assert_eq!(kinds(&bob).await, ["watched", "watched", "watched"]);
    assert_eq!(
        bob.get_json("/api/watches").await,
        json!({ "files": [], "folders": [] })
    );
}

#[tokio::test]
async fn an_inbox_keeps_its_newest_two_hundred_and_counts_right() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = alice.upload_ok("busy.txt", b"v1").await;
    assert_eq!(
        bob.post_empty(&format!("/api/files/{id}/watch"))
            .await
            .status(),
        200
    );
    for _ in 0..105 {
        assert_eq!(alice.checkout(id, "").await.status(), 200);
        assert_eq!(alice.cancel(id).await.status(), 200);
    }
    let n = inbox(&bob).await;
    let list = n["notifications"].as_array().unwrap();
    assert_eq!(list.len(), 200);
    assert_eq!(
        n["unread"], 200,
        "the 10 dropped were unread and are not counted"
    );
    let ids: Vec<u64> = list.iter().map(|n| n["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let resp = bob
        .post_json("/api/notifications/read", &json!({"all": true}))
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(unread(&bob).await, 0);
}

#[tokio::test]
async fn the_notifications_page_works_with_plain_forms() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = alice.upload_ok("parts/bracket.mcam", b"v1").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200);

    // Bob asks through the card's form (no htmx): back to the dashboard.
    let resp = bob
        .post_plain_form(&format!("/files/{id}/nudge"), &[("message", "please")])
        .await;
    assert_eq!(resp.status(), 303);
    // Alice's page shows the bell's count and the notification with a link.
    let page = alice.get("/").await.text().await.unwrap();
    assert!(page.contains("data-unread=\"1\""), "the bell in the header");
    let page = alice.get("/notifications").await.text().await.unwrap();
    assert!(
        page.contains("asks you to release parts/bracket.mcam"),
        "{page}"
    );
    assert!(page.contains(&format!("#file-{id}")), "a link to the file");
    // Watching a folder and a file from plain forms.
    let resp = bob
        .post_plain_form("/watches", &[("folder", "parts"), ("watch", "on")])
        .await;
    assert_eq!(resp.status(), 303);
    let resp = bob
        .post_plain_form(
            &format!("/files/{id}/watch"),
            &[("watch", "on"), ("back", "history")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        format!("/files/{id}/history").as_str()
    );
    let page = bob.get("/notifications").await.text().await.unwrap();
    assert!(
        page.contains("parts/") && page.contains("Stop watching"),
        "{page}"
    );
    let history = bob
        .get(&format!("/files/{id}/history"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        history.contains("Watching"),
        "the drawer says Bob watches it"
    );
    // Mark all read.
    let resp = alice
        .post_plain_form("/notifications/read", &[("all", "true")])
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(unread(&alice).await, 0);
    let resp = alice
        .post_plain_form("/watches", &[("folder", "../x")])
        .await;
    assert_eq!(resp.status(), 303, "refused with a flash on the page");
}

#[tokio::test]
async fn refusals_from_the_outside_look_mark_watch_and_folder_boundaries() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    alice.upload_ok("parts/bracket.mcam", b"v1").await;
    // "ids" and "all" at once is neither: refused, nothing marked.
    let resp = alice
        .post_json("/api/notifications/read", &json!({"ids": [1], "all": true}))
        .await;
    expect_error(resp, 422).await;
    // An empty folder name is no folder ("/" is the whole vault).
    for empty in ["", "  "] {
        let said = expect_error(
            alice
                .post_json("/api/watches", &json!({ "folder": empty }))
                .await,
            422,
        )
        .await;
        assert!(said.contains("Name a folder"), "{said}");
    }
    // One person watches at most 500 files and folders.
    for n in 0..500 {
        let resp = alice
            .post_json("/api/watches", &json!({ "folder": format!("f{n}") }))
            .await;
        assert_eq!(resp.status(), 200, "watch {n}");
    }
    let said = expect_error(
        alice
            .post_json("/api/watches", &json!({ "folder": "one-more" }))
            .await,
        409,
    )
    .await;
    assert!(said.contains("the most one person may"), "{said}");
    // Watching again what one watches is no new watch; stopping makes room.
    assert_eq!(
        alice
            .post_json("/api/watches", &json!({"folder": "f7"}))
            .await
            .status(),
        200
    );
    let resp = alice
        .delete_json("/api/watches", &json!({"folder": "f7"}))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = alice
        .post_json("/api/watches", &json!({"folder": "one-more"}))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_ask_goes_to_whoever_holds_the_file_now_and_the_stale_list_keeps_its_place() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = alice.upload_ok("parts/bracket.mcam", b"v1").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    assert_eq!(nudge(&alice, id, "").await.status(), 204);
    let said = expect_error(nudge(&alice, id, "").await, 429).await;
    assert!(said.contains("You asked bob"), "{said}");
    // The file changes hands: Carol has never been asked, so she may be.
    assert_eq!(bob.cancel(id).await.status(), 200);
    assert_eq!(carol.checkout(id, "").await.status(), 200);
    assert_eq!(nudge(&alice, id, "").await.status(), 204);
    assert_eq!(kinds(&carol).await, ["nudged"]);
    // A plain form from the admins' stale-lock list goes back there.
    let admin = app.admin().await;
    let resp = admin
        .post_plain_form(&format!("/files/{id}/nudge"), &[("back", "locks")])
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/admin/locks");
}

#[tokio::test]
async fn asking_a_disabled_holder_says_to_ask_an_admin() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let admin = app.admin().await;
    let id = alice.upload_ok("parts/bracket.mcam", b"v1").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let resp = admin
        .patch_json("/api/users/bob", &json!({"disabled": true}))
        .await;
    assert_eq!(resp.status(), 200);
    let said = expect_error(nudge(&alice, id, "").await, 409).await;
    assert!(
        said.contains("disabled") && said.contains("override"),
        "{said}"
    );
}
