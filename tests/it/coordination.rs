//! Coordination beyond locks: waiting in line for a file someone holds, the
//! hand-off to the first in line when the lock ends (a reservation for the
//! hand-off window), declining it, the window running out (also while the
//! server is down), Git LFS honouring the reservation, the live card each
//! person sees, and races at the moment a reservation moves.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use serde_json::Value;

use crate::common::live::ws_connect;
use crate::common::{self, Client, TestApp, USER_PASSWORD, expect_error, json_of, wait_until};

async fn join(c: &Client, id: u64) -> reqwest::Response {
    c.post_empty(&format!("/api/files/{id}/queue")).await
}

async fn leave(c: &Client, id: u64) -> reqwest::Response {
    c.delete(&format!("/api/files/{id}/queue")).await
}

async fn decline(c: &Client, id: u64) -> reqwest::Response {
    c.post_empty(&format!("/api/files/{id}/decline")).await
}

fn reserved_for(f: &Value) -> Option<&str> {
    f["reserved_for"]["username"].as_str()
}

#[tokio::test]
async fn a_released_file_goes_to_the_first_in_line_and_nobody_else() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let admin = app.admin().await;
    let id = bob.upload_ok("fixtures/plate.mcam", b"v1").await;

    // Nothing to wait for while the file is free.
    let said = expect_error(join(&carol, id).await, 409).await;
    assert!(said.contains("is available"), "{said}");
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let said = expect_error(join(&bob, id).await, 409).await;
    assert!(said.contains("You hold"), "{said}");

    let f = json_of(join(&carol, id).await, 200).await;
    assert_eq!(f["queue"], serde_json::json!(["carol"]));
    let said = expect_error(join(&carol, id).await, 409).await;
    assert!(said.contains("already waiting"), "{said}");
    json_of(join(&dave, id).await, 200).await;
    let said = expect_error(decline(&dave, id).await, 409).await;
    assert!(said.contains("not reserved for you"), "{said}");

    // Bob checks in: the file is Carol's to take, for the window.
    let resp = bob.checkin(id, b"v2", "second cut", "minor").await;
    assert_eq!(resp.status(), 200);
    let f = carol.file(id).await;
    assert_eq!(f["state"], "reserved");
    assert_eq!(reserved_for(&f), Some("carol"));
    assert_eq!(f["queue"], serde_json::json!(["dave"]));
    assert!(f["lock"].is_null());
    for other in [&dave, &admin, &bob] {
        let said = expect_error(other.checkout(id, "").await, 409).await;
        assert!(said.contains("reserved for carol until"), "{said}");
    }
    let reserved = admin.events_of("reserved").await;
    assert_eq!(reserved.len(), 1, "one reserved event: {reserved:?}");
    // A reserved file is neither checked out nor available in the counters.
    let page = admin.get("/").await.text().await.unwrap();
    for counter in [
        "<b>0</b> checked out",
        "<b>1</b> reserved",
        "<b>0</b> available",
    ] {
        assert!(page.contains(counter), "{counter} in the toolbar");
    }

    // Carol takes it: the reservation ends, and she is out of the line.
    let f = json_of(carol.checkout(id, "my turn").await, 200).await;
    assert_eq!(f["lock"]["owner"], "carol");
    assert!(f["reserved_for"].is_null());
    assert_eq!(f["queue"], serde_json::json!(["dave"]));

    // Carol cancels: Dave's turn. He declines: nobody waits, it is free.
    assert_eq!(carol.cancel(id).await.status(), 200);
    assert_eq!(reserved_for(&dave.file(id).await), Some("dave"));
    let f = json_of(decline(&dave, id).await, 200).await;
    assert_eq!(f["state"], "available");
    assert!(f["reserved_for"].is_null());
    assert_eq!(admin.events_of("released").await.len(), 1);
    assert_eq!(admin.checkout(id, "").await.status(), 200);
}

#[tokio::test]
async fn an_override_and_leaving_the_line_hand_off_too() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let admin = app.admin().await;
    let id = bob.upload_ok("a/b.txt", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(join(&carol, id).await, 200).await;
    json_of(join(&dave, id).await, 200).await;
    let f = json_of(leave(&carol, id).await, 200).await;
    assert_eq!(f["queue"], serde_json::json!(["dave"]));
    let said = expect_error(leave(&carol, id).await, 409).await;
    assert!(said.contains("not waiting"), "{said}");
    let f = json_of(admin.override_lock(id).await, 200).await;
    assert_eq!(reserved_for(&f), Some("dave"));
    // While it is reserved for Dave, others may wait behind him.
    let f = json_of(join(&carol, id).await, 200).await;
    assert_eq!(f["queue"], serde_json::json!(["carol"]));
    let f = json_of(decline(&dave, id).await, 200).await;
    assert_eq!(reserved_for(&f), Some("carol"));
    assert!(f["queue"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_window_running_out_passes_the_file_on() {
    let app = TestApp::spawn_with(|c| c.handoff_window = Duration::from_secs(3)).await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let id = bob.upload_ok("w/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(join(&carol, id).await, 200).await;
    json_of(join(&dave, id).await, 200).await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    assert_eq!(reserved_for(&bob.file(id).await), Some("carol"));
    // The clock passes it to Dave, then makes it available.
    wait_until("the reservation passes to dave", || async {
        reserved_for(&bob.file(id).await) == Some("dave")
    })
    .await;
    // Available as soon as the window ends; the clock records it just after.
    wait_until("the release is recorded", || async {
        !bob.events_of("released").await.is_empty()
    })
    .await;
    assert_eq!(bob.file(id).await["state"], "available");
    assert_eq!(bob.events_of("released").await.len(), 1);
    assert_eq!(bob.events_of("reserved").await.len(), 2);
}

#[tokio::test]
async fn a_window_that_ran_out_while_the_server_was_down_is_applied_at_start() {
    let mut app = TestApp::spawn_with(|c| c.handoff_window = Duration::from_secs(2)).await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = bob.upload_ok("down/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(join(&carol, id).await, 200).await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    app.stop().await;
    // Down for longer than the window: that is what this test is about.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.restart().await;
    let admin = app.admin().await;
    assert_eq!(admin.events_of("released").await.len(), 1);
    let f = admin.file(id).await;
    assert_eq!(f["state"], "available");
    assert!(f["queue"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_line_and_the_reservation_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let id = bob.upload_ok("keep/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(join(&carol, id).await, 200).await;
    json_of(join(&dave, id).await, 200).await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    app.restart().await;
    let carol = app.login("carol", USER_PASSWORD).await;
    let f = carol.file(id).await;
    assert_eq!(reserved_for(&f), Some("carol"));
    assert_eq!(f["queue"], serde_json::json!(["dave"]));
    assert_eq!(carol.checkout(id, "").await.status(), 200);
}

#[tokio::test]
async fn git_lfs_cannot_lock_a_file_reserved_for_someone_else() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = bob.upload_ok("lfs/part.step", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(join(&carol, id).await, 200).await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    let resp = bob
        .http
        .post(bob.url("/vault.git/info/lfs/locks"))
        .header("Content-Type", "application/vnd.git-lfs+json")
        .header(
            "Authorization",
            common::http::basic_header("bob", USER_PASSWORD),
        )
        .body(r#"{"path":"lfs/part.step"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    let said = body["message"].as_str().unwrap_or_default();
    assert!(said.contains("reserved for carol"), "{body}");
}

#[tokio::test]
async fn each_person_sees_their_own_buttons_live() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let id = bob.upload_ok("live/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(join(&carol, id).await, 200).await;
    let mut carol_ws = ws_connect(&app.base, &carol, "").await;
    let mut dave_ws = ws_connect(&app.base, &dave, "").await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    let within = Duration::from_secs(10);
    let mine = carol_ws
        .text_containing("Reserved for you", within)
        .await
        .expect("carol's card says it is hers");
    assert!(mine.contains(&format!("/files/{id}/decline")), "{mine}");
    // The `reserved` event after the unlock tells her, in a toast of her own.
    carol_ws
        .text_containing("is yours to take until", within)
        .await
        .expect("carol is told the file is hers to take");
    assert!(mine.contains(&format!("/files/{id}/checkout")), "{mine}");
    let theirs = dave_ws
        .text_containing("Reserved for carol", within)
        .await
        .expect("dave's card names carol");
    assert!(
        !theirs.contains(&format!("/files/{id}/checkout")),
        "{theirs}"
    );
    assert!(theirs.contains(&format!("/files/{id}/queue")), "{theirs}");
    // Dave waits: his own card now offers to leave the line.
    json_of(join(&dave, id).await, 200).await;
    let waiting = dave_ws
        .text_containing("Leave the line", within)
        .await
        .expect("dave's card lets him leave the line");
    assert!(
        waiting.contains(&format!("/files/{id}/queue/leave")),
        "{waiting}"
    );
}

#[tokio::test]
async fn plain_forms_wait_leave_and_decline_without_javascript() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let id = bob.upload_ok("forms/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    app.create_user("carol", "user").await;
    let http = Client::form_login(&app.base, "carol", USER_PASSWORD).await;
    let page = http.get(app.url("/")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("Wait in line"), "the card offers to wait");
    let csrf = common::hidden_csrf(&page);
    let post = |path: String| {
        let http = http.clone();
        let csrf = csrf.clone();
        let url = app.url(&path);
        async move {
            let resp = http
                .post(url)
                .form(&[("_csrf", csrf.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303, "a plain form redirects");
            http.get(app_url_root(&resp))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let page = post(format!("/files/{id}/queue")).await;
    assert!(page.contains("You are number 1 in line"), "{page}");
    assert!(page.contains("Leave the line"));
    let page = post(format!("/files/{id}/queue/leave")).await;
    assert!(page.contains("You left the line"), "{page}");
    post(format!("/files/{id}/queue")).await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    let page = http
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Reserved for you"), "{page}");
    let page = post(format!("/files/{id}/decline")).await;
    assert!(page.contains("You declined"), "{page}");
    assert_eq!(bob.file(id).await["state"], "available");
}

/// Where a plain form's redirect leads, as an absolute URL.
fn app_url_root(resp: &reqwest::Response) -> String {
    let mut url = resp.url().clone();
    url.set_path(&common::header(resp, "location"));
    url.set_query(None);
    url.to_string()
}

/// At the moment a reservation moves (the first in line declines), the
/// next in line and strangers all try to check out: exactly one holder at
/// most, never a stranger, and the file is never both held and reserved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_at_a_hand_off_leaves_one_rightful_holder() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let mut strangers = Vec::new();
    for n in 0..6 {
        strangers.push(app.user(&format!("stranger{n}")).await);
    }
    for round in 0..5 {
        let id = bob
            .upload_ok(&format!("race/{round}.bin"), format!("{round}").as_bytes())
            .await;
        assert_eq!(bob.checkout(id, "").await.status(), 200);
        json_of(join(&carol, id).await, 200).await;
        json_of(join(&dave, id).await, 200).await;
        assert_eq!(bob.cancel(id).await.status(), 200);
        let mut tries = vec![
            async {
                (
                    "carol-declines",
                    decline(&carol, id).await.status().as_u16(),
                )
            }
            .boxed(),
            async { ("dave", dave.checkout(id, "").await.status().as_u16()) }.boxed(),
        ];
        for s in &strangers {
            tries.push(
                async move { ("stranger", s.checkout(id, "").await.status().as_u16()) }.boxed(),
            );
        }
        let answers = join_all(tries).await;
        for (who, status) in &answers {
            match *who {
                "stranger" => assert_eq!(*status, 409, "a stranger never takes it: {answers:?}"),
                _ => assert!(matches!(status, 200 | 409), "{who}: {status}"),
            }
        }
        let f = carol.file(id).await;
        let holder = f["lock"]["owner"].as_str();
        assert!(
            holder.is_none() || holder == Some("dave"),
            "round {round}: held by {holder:?}"
        );
        assert!(
            holder.is_none() || f["reserved_for"].is_null(),
            "never both held and reserved: {f}"
        );
        if holder.is_none() {
            // Dave tried before Carol declined: it waits for him now.
            assert_eq!(reserved_for(&f), Some("dave"), "round {round}: {f}");
        }
    }
}

/// A disabled account is passed over when the file is handed on, and a
/// reservation it holds ends at the next touch of the file, so nobody is
/// kept waiting for someone who cannot come (found by the hostile look:
/// the file stayed reserved for the disabled user for the whole window).
#[tokio::test]
async fn a_disabled_account_is_passed_over() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let erin = app.user("erin").await;
    let id = bob.upload_ok("gone/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    for c in [&carol, &dave, &erin] {
        json_of(join(c, id).await, 200).await;
    }
    let disable = |name: &'static str| {
        let admin = admin.clone();
        async move {
            let resp = admin
                .patch_json(
                    &format!("/api/users/{name}"),
                    &serde_json::json!({"disabled": true}),
                )
                .await;
            assert_eq!(resp.status(), 200);
        }
    };
    // Carol, first in line, is disabled before the hand-off: Dave gets it.
    disable("carol").await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    let f = dave.file(id).await;
    assert_eq!(reserved_for(&f), Some("dave"), "{f}");
    assert_eq!(f["queue"], serde_json::json!(["erin"]));
    let reserved = admin.events_of("reserved").await;
    assert_eq!(
        reserved.last().unwrap()["note"],
        "dave",
        "the event names him"
    );
    // Dave is disabled while it is his: Erin's check-out passes his
    // reservation on to her first, and goes through.
    disable("dave").await;
    let f = json_of(erin.checkout(id, "mine").await, 200).await;
    assert_eq!(f["lock"]["owner"], "erin");
    let reserved = admin.events_of("reserved").await;
    assert_eq!(reserved.last().unwrap()["note"], "erin", "{reserved:?}");
}

/// An admin may pass on a reservation that is someone else's (they are
/// away and the line must move); others may not.
#[tokio::test]
async fn an_admin_may_pass_on_anyones_reservation() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let id = bob.upload_ok("away/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    json_of(join(&carol, id).await, 200).await;
    json_of(join(&dave, id).await, 200).await;
    assert_eq!(bob.cancel(id).await.status(), 200);
    expect_error(decline(&dave, id).await, 409).await;
    let f = json_of(decline(&admin, id).await, 200).await;
    assert_eq!(reserved_for(&f), Some("dave"));
    let said = expect_error(leave(&dave, id).await, 409).await;
    assert!(said.contains("reserved for you: decline"), "{said}");
}

/// A line holds at most a hundred people; the card names ten and counts
/// the rest, so a long line neither slows every viewer's live updates nor
/// grows each message without bound (found by the hostile look).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_line_has_room_for_a_hundred_and_the_card_names_ten() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let id = bob.upload_ok("busy/x.bin", b"x").await;
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let mut waiting = Vec::new();
    for n in 0..=100 {
        waiting.push(app.user(&format!("w{n:03}")).await);
    }
    let (last, first_hundred) = waiting.split_last().unwrap();
    for chunk in first_hundred.chunks(10) {
        let joins = chunk.iter().map(|c| join(c, id));
        for resp in join_all(joins).await {
            assert_eq!(resp.status(), 200);
        }
    }
    let said = expect_error(join(last, id).await, 409).await;
    assert!(said.contains("is full (100 waiting)"), "{said}");
    let card = bob.get(&format!("/files/{id}")).await.text().await.unwrap();
    assert!(card.contains("and 90 more"), "{card}");
}
