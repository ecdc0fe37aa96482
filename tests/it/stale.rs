//! Stale locks and lock expiry: a lock older than `stale_after` shows as
//! stale (File JSON, the card's badge, the `stale` filter, the admins'
//! list) and its card turns stale live, with no request and no event; with
//! `lock_expiry` a lock that old is released (event `expired`, by Latch)
//! and handed to the first in line, also when it fell due while the server
//! was down; the holder is warned first; bad flag values stop the binary
//! with a sentence.

use std::time::{Duration, Instant};

use crate::common::binary::latch;
use crate::common::live::{SseNext, sse_open, ws_connect};
use crate::common::{Client, TestApp, json_of, text, wait_until};

/// Generous: the clock wakes within a second of a lock turning stale.
const WITHIN: Duration = Duration::from_secs(20);

/// The ids of the cards a page shows, in its `#file-list`.
fn card_ids(page: &str) -> Vec<u64> {
    page.split("<article")
        .skip(1)
        .filter_map(|tag| {
            let rest = &tag[tag.find("id=\"file-")? + 9..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

async fn page(c: &Client, path: &str) -> String {
    let resp = c.get(path).await;
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn a_lock_turns_stale_in_json_on_the_card_and_in_the_filter() {
    let stale_after = Duration::from_secs(3);
    let app = TestApp::spawn_with(|c| c.stale_after = stale_after).await;
    let bob = app.user("bob").await;
    let old = bob.upload_ok("stale/old.bin", b"old").await;
    let free = bob.upload_ok("stale/free.bin", b"free").await;
    let fresh = bob.upload_ok("stale/fresh.bin", b"fresh").await;
    let taken = Instant::now();
    assert_eq!(bob.checkout(old, "long job").await.status(), 200);
    let f = bob.file(old).await;
    // Only while the test has certainly not been slower than the threshold.
    if taken.elapsed() < stale_after - Duration::from_millis(1500) {
        assert_eq!(f["lock"]["stale"], false, "{f}");
        assert!(!page(&bob, "/").await.contains("data-stale"));
    }
    wait_until("the lock turns stale", || async {
        bob.file(old).await["lock"]["stale"] == true
    })
    .await;
    assert!(bob.file(free).await["lock"].is_null());
    let taken = Instant::now();
    assert_eq!(bob.checkout(fresh, "").await.status(), 200);

    // The card says so in words, with since when.
    let dashboard = page(&bob, "/").await;
    let card = &dashboard[dashboard.find(&format!("id=\"file-{old}\"")).unwrap()..];
    let card = &card[..card.find("</article>").unwrap()];
    assert!(card.contains("data-stale=\"true\""), "{card}");
    assert!(card.contains(">Stale</span>"), "{card}");
    assert!(card.contains("title=\"Stale since 20"), "{card}");

    // The filter: exactly the stale ones, on the page and in the fragment.
    let listed = card_ids(&page(&bob, "/?state=stale").await);
    assert!(listed.contains(&old), "{listed:?}");
    assert!(!listed.contains(&free), "{listed:?}");
    let fragment = bob
        .http
        .get(bob.url("/files?state=stale"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let in_fragment = card_ids(&fragment);
    assert!(in_fragment.contains(&old), "{in_fragment:?}");
    assert!(!in_fragment.contains(&free), "{in_fragment:?}");
    if taken.elapsed() < stale_after - Duration::from_millis(1500) {
        assert_eq!(listed, vec![old], "the fresh lock is not stale yet");
        assert_eq!(in_fragment, vec![old]);
    }
    assert!(page(&bob, "/").await.contains("<option value=\"stale\""));

    // The OpenAPI document describes the new field.
    let spec = bob.get_json("/api/openapi.json").await;
    let lock = &spec["components"]["schemas"]["LockJson"];
    assert_eq!(lock["properties"]["stale"]["type"], "boolean", "{lock}");
}

#[tokio::test]
async fn a_card_turns_stale_live_without_a_request_or_an_event() {
    let app = TestApp::spawn_with(|c| c.stale_after = Duration::from_secs(2)).await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let admin = app.admin().await;
    let id = bob.upload_ok("live/old.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let last_seq = admin.get_json("/api/activity?since=0").await["events"]
        .as_array()
        .unwrap()
        .len();
    let mut carol_ws = ws_connect(&app.base, &carol, "").await;
    let mut bob_ws = ws_connect(&app.base, &bob, "").await;
    let mut admin_sse = sse_open(&app.base, &admin, "", &[]).await;

    // Nobody asks for anything from here on.
    let needle = "data-stale=\"true\"";
    let seen = carol_ws
        .text_containing(needle, WITHIN)
        .await
        .expect("carol's card turns stale by itself");
    assert!(seen.contains(&format!("id=\"file-{id}\"")), "{seen}");
    assert!(seen.contains("hx-swap-oob=\"true\""), "{seen}");
    assert!(
        !seen.contains("toasts") && !seen.contains("activity-list") && !seen.contains("live-seq"),
        "a refresh is the card alone, no event: {seen}"
    );
    // The holder's own card: still theirs to check in.
    let own = bob_ws
        .text_containing(needle, WITHIN)
        .await
        .expect("bob's card turns stale by itself");
    assert!(own.contains(&format!("/files/{id}/checkin")), "{own}");
    // Over SSE: an unnumbered `refresh`, so the browser's resume point stays.
    let refresh = match admin_sse.next(WITHIN).await {
        SseNext::Event(e) if e.kind() == "refresh" => e,
        other => panic!("only the refresh was expected over SSE, got {other:?}"),
    };
    assert_eq!(refresh.id, None, "a refresh carries no id");
    assert!(refresh.html().contains(needle), "{}", refresh.html());
    assert!(refresh.html().contains("Override"), "the admin's card");
    // Nothing was recorded.
    let events = admin.get_json("/api/activity?since=0").await["events"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(events, last_seq);
}

#[tokio::test]
async fn admins_see_the_stale_locks_with_nudge_and_override() {
    let app = TestApp::spawn_with(|c| c.stale_after = Duration::from_secs(1)).await;
    let bob = app.user("bob").await;
    let admin = app.admin().await;
    let id = bob.upload_ok("list/old.bin", b"x").await;
    let free = bob.upload_ok("list/free.bin", b"x").await;
    assert_eq!(bob.checkout(id, "<b>kept</b>").await.status(), 200);
    wait_until("the lock turns stale", || async {
        bob.file(id).await["lock"]["stale"] == true
    })
    .await;

    assert_eq!(bob.get("/admin/locks").await.status(), 403);
    assert!(!page(&bob, "/").await.contains("/admin/locks"));
    let list = page(&admin, "/admin/locks").await;
    assert!(page(&admin, "/").await.contains("href=\"/admin/locks\""));
    let table = &list[list.find("id=\"stale-locks\"").expect("a table")..];
    assert!(table.contains("list/old.bin"), "{table}");
    assert!(!table.contains("list/free.bin"), "{table}");
    assert!(
        table.contains(&format!("href=\"/files/{id}/history\"")),
        "{table}"
    );
    // Named once when the display name is the username.
    assert!(table.contains("<td>bob</td>"), "the holder: {table}");
    assert!(
        table.contains("&lt;b&gt;kept&lt;/b&gt;"),
        "the comment, escaped"
    );
    assert!(
        table.contains(&format!("action=\"/files/{id}/nudge\""))
            && table.contains("name=\"message\""),
        "{table}"
    );
    assert!(table.contains("name=\"_csrf\""), "{table}");
    assert!(
        table.contains(&format!("action=\"/files/{id}/override\""))
            && table.contains("name=\"holder\" value=\"bob\""),
        "{table}"
    );
    let _ = free;

    // The override form works as on the card.
    let csrf = crate::common::hidden_csrf(&list);
    let resp = admin
        .http
        .post(admin.url(&format!("/files/{id}/override")))
        .form(&[("holder", "bob"), ("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success() || resp.status().is_redirection());
    assert!(admin.file(id).await["lock"].is_null());
    assert!(
        page(&admin, "/admin/locks")
            .await
            .contains("No check-out is stale.")
    );
}

#[tokio::test]
async fn an_expired_lock_is_released_and_handed_to_the_first_in_line() {
    let app = TestApp::spawn_with(|c| {
        c.lock_expiry = Some(Duration::from_secs(3));
        c.expiry_warning = Duration::from_secs(2);
    })
    .await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = bob.upload_ok("expire/x.bin", b"x").await;
    let alone = bob.upload_ok("expire/alone.bin", b"x").await;
    assert_eq!(bob.checkout(id, "forgot it").await.status(), 200);
    assert_eq!(bob.checkout(alone, "").await.status(), 200);
    json_of(
        carol.post_empty(&format!("/api/files/{id}/queue")).await,
        200,
    )
    .await;
    wait_until("both locks expire", || async {
        carol.events_of("expired").await.len() == 2
    })
    .await;
    let expired = carol.events_of("expired").await;
    let e = expired.iter().find(|e| e["file_id"] == id).unwrap();
    assert_eq!(e["actor"], "latch", "{e}");
    let f = carol.file(id).await;
    assert!(f["lock"].is_null(), "{f}");
    assert_eq!(f["state"], "reserved", "{f}");
    assert_eq!(f["reserved_for"]["username"], "carol");
    assert_eq!(carol.events_of("reserved").await.len(), 1);
    // With nobody in line, simply available.
    assert_eq!(carol.file(alone).await["state"], "available");
    assert_eq!(carol.checkout(id, "").await.status(), 200);
    let activity = page(&carol, "/activity").await;
    assert!(
        activity.contains("bob's check-out of expire/x.bin expired"),
        "{activity}"
    );
}

#[tokio::test]
async fn the_holder_is_warned_once_before_the_expiry() {
    // Warned a second after the check-out, released an hour after it.
    let warn_soon = |c: &mut latch::Config| {
        c.lock_expiry = Some(Duration::from_secs(3600));
        c.expiry_warning = Duration::from_secs(3599);
    };
    let mut app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let id = bob.upload_ok("warn/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    app.stop().await;
    let db = app.data_dir.join("latch.redb");
    let warned = || {
        let store = latch::store::Store::open(&db)
            .ok()
            .expect("open the database");
        store.file(id).unwrap().unwrap().lock.unwrap().warned_at
    };
    assert_eq!(warned(), None);
    // Past the warning time while down: given at start, and recorded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut again = TestApp::start(&app.data_dir.clone(), warn_soon).await;
    again.stop().await;
    let at = warned().expect("the warning was recorded on the lock");
    // Once: a later start does not warn again, and the lock stays.
    let mut third = TestApp::start(&app.data_dir.clone(), warn_soon).await;
    let bob = third.login("bob", crate::common::USER_PASSWORD).await;
    assert_eq!(bob.file(id).await["lock"]["owner"], "bob");
    assert!(bob.events_of("expired").await.is_empty());
    third.stop().await;
    assert_eq!(warned(), Some(at));
}

#[tokio::test]
async fn an_expiry_due_while_the_server_was_down_is_applied_at_start() {
    let expiry = |c: &mut latch::Config| {
        c.lock_expiry = Some(Duration::from_secs(2));
        c.expiry_warning = Duration::from_secs(1);
    };
    // Started without expiry: the lock outlives its expiry only while down.
    let mut app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = bob.upload_ok("down/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(
        carol.post_empty(&format!("/api/files/{id}/queue")).await,
        200,
    )
    .await;
    app.stop().await;
    // Down for longer than the expiry: that is what this test is about.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = TestApp::start(&app.data_dir.clone(), expiry).await;
    let carol = again.login("carol", crate::common::USER_PASSWORD).await;
    // Applied before the first request is served: no waiting.
    assert_eq!(carol.events_of("expired").await.len(), 1);
    let f = carol.file(id).await;
    assert_eq!(f["reserved_for"]["username"], "carol", "{f}");
}

#[test]
fn bad_stale_after_and_lock_expiry_values_stop_the_binary_with_a_sentence() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    for (args, envs, said) in [
        (
            vec!["--stale-after", "30s"],
            vec![],
            "give one from 1m to 3650d",
        ),
        (
            vec!["--stale-after", "3651d"],
            vec![],
            "give one from 1m to 3650d",
        ),
        (vec!["--stale-after", "soon"], vec![], "is not a duration"),
        (
            vec![],
            vec![("LATCH_STALE_AFTER", "0")],
            "give one from 1m to 3650d",
        ),
        (
            vec!["--lock-expiry", "59m"],
            vec![],
            "give one from 1h to 3650d",
        ),
        (vec!["--lock-expiry", "2w"], vec![], "unknown unit"),
        (
            vec![],
            vec![("LATCH_LOCK_EXPIRY", "-1d")],
            "is not a duration",
        ),
    ] {
        let out = latch()
            .args(["serve", "--data", data, "--bind", "127.0.0.1:0"])
            .args(&args)
            .envs(envs.iter().copied())
            .output()
            .expect("run latch");
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} {envs:?} was accepted");
        assert!(err.contains(said), "{args:?} {envs:?}: {err}");
    }
    let help = text(&latch().args(["serve", "--help"]).output().unwrap().stdout);
    assert!(help.contains("LATCH_STALE_AFTER") && help.contains("LATCH_LOCK_EXPIRY"));
}
