//! Live updates over real clients (`common::live`: `/ws` and `/events` as a
//! browser opens them).
//! Covers per-viewer fragments for every event kind, resume (query,
//! `Last-Event-ID`, across a restart, too old / too new), admission
//! (Origin, session), slow and stalled readers, session end and shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::live::{
    Sse, SseNext, Ws, WsNext, sse_open, sse_open_with, ws_connect, ws_connect_with,
};
use crate::common::{self, Client, TestApp, login_at, upload_form, wait_healthy};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- HTML probes

/// The sequence a fragment carries in its `#live-seq` element.
fn seq_of(html: &str) -> u64 {
    let marker = "id=\"live-seq\" data-seq=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no #live-seq in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("closing quote");
    html[start..end].parse().expect("numeric seq")
}

/// The opening tag of the card `<article id="file-{id}" …>`.
fn card_tag(html: &str, id: u64) -> String {
    let needle = format!("id=\"file-{id}\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no card file-{id} in {html}"));
    let start = html[..at].rfind('<').expect("tag start");
    let end = at + html[at..].find('>').expect("tag end");
    let tag = html[start..=end].to_string();
    assert!(tag.starts_with("<article"), "the card is an article: {tag}");
    tag
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].to_string())
}

fn has_action(html: &str, id: u64, action: &str) -> bool {
    html.contains(&format!("action=\"/files/{id}/{action}\""))
}

// ---------------------------------------------------------------- viewers

/// One person with both transports open.
struct Viewer {
    name: &'static str,
    ws: Ws,
    sse: Sse,
}

impl Viewer {
    async fn open(base: &str, name: &'static str, client: &Client) -> Viewer {
        Viewer {
            name,
            ws: ws_connect(base, client, "").await,
            sse: sse_open(base, client, "", &[]).await,
        }
    }

    /// The next event on both transports; asserts they carry the same thing.
    async fn next(&mut self, kind: &str) -> String {
        let text = self.ws.text().await;
        let ev = self.sse.event().await;
        assert_eq!(ev.kind(), kind, "{}: SSE event name", self.name);
        assert_eq!(
            ev.seq(),
            seq_of(&text),
            "{}: SSE id is the sequence",
            self.name
        );
        assert_eq!(
            ev.html(),
            text,
            "{}: SSE and WebSocket carry the same HTML",
            self.name
        );
        text
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn each_viewer_class_gets_its_own_fragment_for_every_event_kind() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let admin = app.admin().await;
    let mut va = Viewer::open(&app.base, "alice", &alice).await;
    let mut vb = Viewer::open(&app.base, "bob", &bob).await;
    let mut vadm = Viewer::open(&app.base, "admin", &admin).await;

    // created: inserted into its folder; a multi-line description makes
    // the HTML span several lines, so SSE carries several data: lines.
    let resp = alice
        .post_form(
            "/api/files",
            upload_form(
                &[
                    ("path", "parts/p-100.mcam"),
                    ("description", "first line\nsecond line"),
                ],
                Some(b"G0 X0"),
            ),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    let mut seen = Vec::new();
    for v in [&mut va, &mut vb, &mut vadm] {
        let ws_text = v.ws.text().await;
        let ev = v.sse.event().await;
        assert_eq!(ev.kind(), "created");
        assert!(
            ev.data.len() > 1,
            "multi-line HTML is sent as several data: lines"
        );
        assert_eq!(ev.html(), ws_text);
        assert!(
            ws_text.contains("hx-swap-oob=\"beforeend:#folder-"),
            "{ws_text}"
        );
        let tag = card_tag(&ws_text, id);
        assert_eq!(attr(&tag, "data-state").as_deref(), Some("available"));
        assert_eq!(attr(&tag, "data-locked-by"), None);
        assert!(has_action(&ws_text, id, "checkout"));
        assert_eq!(
            has_action(&ws_text, id, "delete"),
            v.name == "admin",
            "{}: delete button",
            v.name
        );
        seen.push(ev.seq());
    }
    let created_seq = seen[0];
    assert!(seen.iter().all(|s| *s == created_seq));

    // locked: the holder can check in / cancel; others cannot; the admin may override.
    assert_eq!(alice.checkout(id, "on the mill").await.status(), 200);
    let a = va.next("locked").await;
    let b = vb.next("locked").await;
    let m = vadm.next("locked").await;
    assert_eq!(seq_of(&a), created_seq + 1);
    for html in [&a, &b, &m] {
        let tag = card_tag(html, id);
        assert_eq!(attr(&tag, "data-state").as_deref(), Some("locked"));
        assert_eq!(attr(&tag, "data-locked-by").as_deref(), Some("alice"));
        assert_eq!(attr(&tag, "hx-swap-oob").as_deref(), Some("true"));
        assert!(!has_action(html, id, "checkout"));
        assert!(
            !has_action(html, id, "delete"),
            "a locked file cannot be deleted"
        );
    }
    assert!(has_action(&a, id, "checkin") && has_action(&a, id, "cancel"));
    assert!(!has_action(&a, id, "override"));
    assert!(!has_action(&b, id, "checkin") && !has_action(&b, id, "cancel"));
    assert!(!has_action(&b, id, "override") && !has_action(&b, id, "delete"));
    assert!(has_action(&m, id, "override"));
    assert!(!has_action(&m, id, "checkin") && !has_action(&m, id, "cancel"));

    // unlocked
    assert_eq!(alice.cancel(id).await.status(), 200);
    for v in [&mut va, &mut vb, &mut vadm] {
        let html = v.next("unlocked").await;
        let tag = card_tag(&html, id);
        assert_eq!(attr(&tag, "data-state").as_deref(), Some("available"));
        assert_eq!(attr(&tag, "data-locked-by"), None);
        assert!(has_action(&html, id, "checkout"));
        assert!(!has_action(&html, id, "checkin") && !has_action(&html, id, "cancel"));
    }

    // checked_in (after a lock by bob this time)
    assert_eq!(bob.checkout(id, "").await.status(), 200);
    let a = va.next("locked").await;
    let b = vb.next("locked").await;
    vadm.next("locked").await;
    assert!(has_action(&b, id, "checkin") && !has_action(&a, id, "checkin"));
    assert_eq!(
        bob.checkin(id, b"G0 X1", "Move the origin", "minor")
            .await
            .status(),
        200
    );
    for v in [&mut va, &mut vb, &mut vadm] {
        let html = v.next("checked_in").await;
        let tag = card_tag(&html, id);
        assert_eq!(attr(&tag, "data-state").as_deref(), Some("available"));
        assert!(html.contains("1.1"), "the new revision shows: {html}");
    }

    // overridden: the previous holder alone gets a toast of their own, in
    // place of the general one (one toast per event for everyone).
    assert_eq!(alice.checkout(id, "").await.status(), 200);
    for v in [&mut va, &mut vb, &mut vadm] {
        v.next("locked").await;
    }
    assert_eq!(admin.override_lock(id).await.status(), 200);
    let a = va.next("overridden").await;
    let b = vb.next("overridden").await;
    let m = vadm.next("overridden").await;
    for html in [&a, &b, &m] {
        let tag = card_tag(html, id);
        assert_eq!(attr(&tag, "data-state").as_deref(), Some("available"));
    }
    let notice = "overrode your check-out";
    assert!(a.contains(notice), "alice is told: {a}");
    assert!(!b.contains(notice) && !m.contains(notice));
    assert_eq!(
        a.matches("beforeend:#toasts").count(),
        b.matches("beforeend:#toasts").count(),
        "alice's own toast replaces the general one: {a}"
    );

    // deleted
    let resp = admin.delete(&format!("/api/files/{id}")).await;
    assert_eq!(resp.status(), 204);
    for v in [&mut va, &mut vb, &mut vadm] {
        let html = v.next("deleted").await;
        let tag = card_tag(&html, id);
        assert_eq!(attr(&tag, "hx-swap-oob").as_deref(), Some("delete"));
    }
    for v in [&mut va, &mut vb, &mut vadm] {
        v.ws.quiet().await;
        v.sse.quiet().await;
    }
}

/// Makes `n` events on `id` by checking it out and cancelling in turn
/// (`client` must be the holder when the file is locked).
async fn churn(client: &Client, id: u64, n: usize) {
    let mut locked = client.file(id).await["state"] == "locked";
    for _ in 0..n {
        let resp = if locked {
            client.cancel(id).await
        } else {
            client.checkout(id, "").await
        };
        assert_eq!(resp.status(), 200);
        locked = !locked;
    }
}

#[tokio::test]
async fn a_websocket_resumes_from_the_query_with_exactly_the_missed_events() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("a.nc", b"x").await;
    let mut ws = ws_connect(&app.base, &alice, "").await;
    churn(&alice, id, 2).await;
    let _ = ws.text().await;
    let last = seq_of(&ws.text().await);
    ws.close().await;

    churn(&alice, id, 5).await;
    let mut ws = ws_connect(&app.base, &alice, &format!("?last_event_id={last}")).await;
    for expect in last + 1..=last + 5 {
        assert_eq!(seq_of(&ws.text().await), expect);
    }
    ws.quiet().await;
    // And it keeps going live without repeating anything.
    churn(&alice, id, 1).await;
    assert_eq!(seq_of(&ws.text().await), last + 6);
    ws.quiet().await;
}

#[tokio::test]
async fn an_event_stream_resumes_from_last_event_id_or_the_query() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("a.nc", b"x").await;
    let mut sse = sse_open(&app.base, &alice, "", &[]).await;
    churn(&alice, id, 3).await;
    let mut last = 0;
    for _ in 0..3 {
        let ev = sse.event().await;
        assert!(ev.seq() > last);
        last = ev.seq();
    }
    drop(sse);

    churn(&alice, id, 4).await;
    let header = last.to_string();
    let mut sse = sse_open(&app.base, &alice, "", &[("Last-Event-ID", header.as_str())]).await;
    let kinds = ["unlocked", "locked", "unlocked", "locked"];
    for (n, kind) in (last + 1..=last + 4).zip(kinds) {
        let ev = sse.event().await;
        assert_eq!((ev.seq(), ev.kind()), (n, kind));
    }
    sse.quiet().await;
    drop(sse);

    churn(&alice, id, 2).await;
    let mut sse = sse_open(
        &app.base,
        &alice,
        &format!("?last_event_id={}", last + 4),
        &[],
    )
    .await;
    assert_eq!(sse.event().await.seq(), last + 5);
    assert_eq!(sse.event().await.seq(), last + 6);
    sse.quiet().await;
}

#[tokio::test]
async fn no_event_is_lost_or_repeated_across_a_server_restart() {
    let mut app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("a.nc", b"x").await;
    let cookie = alice.cookie_header();
    let mut ws = ws_connect(&app.base, &alice, "").await;
    let mut sse = sse_open(&app.base, &alice, "", &[]).await;
    churn(&alice, id, 2).await;
    let _ = ws.text().await;
    let last_ws = seq_of(&ws.text().await);
    let _ = sse.event().await;
    let last_sse = sse.event().await.seq();
    assert_eq!(last_ws, last_sse);

    app.restart().await;
    assert_eq!(
        ws.close_code().await,
        Some(1012),
        "shutdown closes WebSockets with 1012"
    );
    sse.ends().await;

    // Changes while the clients are away, made through the new server.
    let alice2 = app.login("alice", common::USER_PASSWORD).await;
    churn(&alice2, id, 3).await;

    // The old session cookie still works after the restart.
    let origin = app.base.clone();
    let mut ws = ws_connect_with(
        &app.base,
        Some(&cookie),
        Some(&origin),
        &format!("?last_event_id={last_ws}"),
    )
    .await
    .expect("resume after restart");
    let header = last_sse.to_string();
    let mut sse = sse_open_with(
        &app.base,
        Some(&cookie),
        &[("Last-Event-ID", header.as_str())],
        "",
    )
    .await
    .expect("resume after restart");
    for expect in last_ws + 1..=last_ws + 3 {
        assert_eq!(seq_of(&ws.text().await), expect);
        assert_eq!(sse.event().await.seq(), expect);
    }
    ws.quiet().await;
    sse.quiet().await;
    churn(&alice2, id, 1).await;
    assert_eq!(seq_of(&ws.text().await), last_ws + 4);
    assert_eq!(sse.event().await.seq(), last_ws + 4);
}

#[tokio::test]
async fn a_holder_whose_lock_was_overridden_while_away_is_told_on_resume() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let admin = app.admin().await;
    let id = alice.upload_ok("a.nc", b"x").await;
    assert_eq!(alice.checkout(id, "").await.status(), 200); // seq 2
    assert_eq!(admin.override_lock(id).await.status(), 200); // seq 3
    let notice = "overrode your check-out";
    let mut a = sse_open(&app.base, &alice, "?last_event_id=2", &[]).await;
    let ev = a.event().await;
    assert_eq!((ev.seq(), ev.kind()), (3, "overridden"));
    assert!(ev.html().contains(notice), "{}", ev.html());
    let mut b = ws_connect(&app.base, &bob, "?last_event_id=2").await;
    assert!(!b.text().await.contains(notice));
}

#[tokio::test]
async fn carriage_returns_in_a_description_or_a_message_cannot_forge_sse_fields() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sse = sse_open(&app.base, &alice, "", &[]).await;
    // A lone CR ends a line for an SSE parser: unsplit, this would set the
    // browser's last event id to 999999 and rename the event.
    let resp = alice
        .post_form(
            "/api/files",
            upload_form(
                &[
                    ("path", "cr.nc"),
                    ("description", "one\rid: 999999\revent: resync\r\ntwo"),
                ],
                Some(b"G0 X0"),
            ),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let ev = sse.event().await; // the parser here asserts no CR reaches the wire
    assert_eq!((ev.seq(), ev.kind()), (1, "created"));
    assert!(ev.data.iter().any(|l| l == "id: 999999"), "{:?}", ev.data);

    // A check-in message, replayed from the log to another viewer.
    let id = alice.files().await[0]["id"].as_u64().unwrap();
    assert_eq!(alice.checkout(id, "").await.status(), 200); // seq 2
    let resp = alice
        .checkin(id, b"G0 X1", "fix\rid: 999999\revent: deleted", "minor")
        .await;
    assert_eq!(resp.status(), 200); // seq 3
    let mut replay = sse_open(&app.base, &bob, "", &[("Last-Event-ID", "0")]).await;
    let ev = replay
        .next_of("checked_in", common::live::WAIT)
        .await
        .expect("the check-in is replayed"); // no CR reaches the wire here either
    assert_eq!(ev.seq(), 3, "the forged id field did not take: {ev:?}");
    assert!(
        ev.data.iter().any(|l| l.contains("id: 999999")),
        "{:?}",
        ev.data
    );
}

fn assert_full_list(html: &str, ids: &[u64]) {
    assert!(
        html.contains("hx-swap-oob=\"outerHTML:#file-list\""),
        "{html}"
    );
    assert!(html.contains("id=\"file-list\""), "{html}");
    for id in ids {
        card_tag(html, *id);
    }
}

#[tokio::test]
async fn a_resume_point_the_server_never_issued_gets_a_full_resync() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a = alice.upload_ok("a/one.nc", b"1").await;
    let b = alice.upload_ok("b/two.nc", b"2").await;
    assert_eq!(alice.checkout(b, "").await.status(), 200);

    let mut sse = sse_open(&app.base, &alice, "?last_event_id=999999", &[]).await;
    let ev = sse.event().await;
    assert_eq!(ev.kind(), "resync");
    assert_eq!(ev.seq(), 3, "the resync carries the newest sequence");
    assert_full_list(&ev.html(), &[a, b]);
    sse.quiet().await;

    let mut ws = ws_connect(&app.base, &alice, "?last_event_id=999999").await;
    let html = ws.text().await;
    assert_full_list(&html, &[a, b]);
    assert_eq!(seq_of(&html), 3);
    // The holder's own card in the resync is the holder variant.
    assert!(has_action(&html, b, "checkin"));
    ws.quiet().await;
}

#[tokio::test]
async fn a_resync_of_a_long_list_reaches_a_websocket_whole() {
    // Several hundred cards make a resync of more than a MiB: one message.
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let description = "Fixture notes. ".repeat(134)[..2000].to_string();
    let mut ids = Vec::new();
    for i in 0..400 {
        let resp = alice
            .post_form(
                "/api/files",
                upload_form(
                    &[
                        ("path", &format!("bulk/part-{i:04}.nc")),
                        ("description", &description),
                    ],
                    Some(b"G0 X0"),
                ),
            )
            .await;
        assert_eq!(resp.status(), 201);
        ids.push(
            resp.json::<serde_json::Value>().await.unwrap()["id"]
                .as_u64()
                .unwrap(),
        );
    }
    let mut ws = ws_connect(&app.base, &alice, "?last_event_id=999999").await;
    let html = ws.text().await;
    assert!(html.len() > 1 << 20, "the resync is {} bytes", html.len());
    assert_full_list(&html, &ids);
    let mut sse = sse_open(&app.base, &alice, "?last_event_id=999999", &[]).await;
    assert_full_list(&sse.event().await.html(), &ids);
}

#[tokio::test]
async fn a_resume_point_older_than_the_log_gets_a_full_resync() {
    use latch::store::{EventDraft, EventKind, FileSnapshot, Store};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        // 12,000 events in one transaction: the log keeps the newest
        // 10,000 and trims the rest, so seq 5 is no longer there.
        let store = Store::open(&data.join("latch.redb"))
            .map_err(|e| e.to_string())
            .unwrap();
        let (events, complete) = store
            .write(|tx| {
                for i in 0..12_000u64 {
                    tx.record(EventDraft {
                        kind: if i % 2 == 0 {
                            EventKind::Created
                        } else {
                            EventKind::Deleted
                        },
                        actor: "admin".into(),
                        note: None,
                        previous_holder: None,
                        file: FileSnapshot::Deleted {
                            id: 1,
                            path: latch::domain::RepoPath::from_stored("gone.nc"),
                        },
                    })?;
                }
                Ok(())
            })
            .and_then(|()| store.events_after(5, 10))
            .unwrap();
        assert!(!complete, "the log no longer reaches back to seq 6");
        assert!(events[0].seq > 6);
    }
    let app = TestApp::start(&data, |_| {}).await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("kept.nc", b"1").await;

    let mut sse = sse_open(&app.base, &alice, "?last_event_id=5", &[]).await;
    let ev = sse.event().await;
    assert_eq!(ev.kind(), "resync");
    assert_eq!(ev.seq(), 12_001);
    assert_full_list(&ev.html(), &[id]);
    sse.quiet().await;
    // Recent history is still replayed event by event.
    let mut sse = sse_open(&app.base, &alice, "?last_event_id=11999", &[]).await;
    assert_eq!(sse.event().await.seq(), 12_000);
    let ev = sse.event().await;
    assert_eq!((ev.seq(), ev.kind()), (12_001, "created"));
    sse.quiet().await;
    drop(tmp);
}

#[tokio::test]
async fn cross_site_and_session_less_connections_are_refused_before_upgrading() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let cookie = alice.cookie_header();
    let good = app.base.clone();
    let evil = "http://evil.example";

    // (cookie, origin, expected status, why)
    let ws_cases: [(Option<&str>, Option<&str>, u16, &str); 6] = [
        (Some(&cookie), Some(evil), 403, "another site's page"),
        (Some(&cookie), Some("null"), 403, "an opaque origin"),
        (Some(&cookie), None, 403, "a WebSocket without Origin"),
        (None, Some(&good), 401, "no session"),
        (
            Some("latch_session=forged"),
            Some(&good),
            401,
            "an unknown session",
        ),
        (None, Some(evil), 403, "another site, no session"),
    ];
    for (c, o, status, why) in ws_cases {
        match ws_connect_with(&app.base, c, o, "").await {
            Err(got) => assert_eq!(got, status, "/ws: {why}"),
            Ok(_) => panic!("/ws upgraded for {why}"),
        }
    }
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], u16, &'a str);
    let sse_cases: [Case; 5] = [
        (
            Some(&cookie),
            &[("Origin", evil)],
            403,
            "another site's page",
        ),
        (
            Some(&cookie),
            &[("Sec-Fetch-Site", "cross-site")],
            403,
            "a cross-site fetch",
        ),
        (None, &[], 401, "no session"),
        (Some("latch_session=forged"), &[], 401, "an unknown session"),
        (None, &[("Origin", evil)], 403, "another site, no session"),
    ];
    for (c, h, status, why) in sse_cases {
        match sse_open_with(&app.base, c, h, "").await {
            Err(got) => assert_eq!(got, status, "/events: {why}"),
            Ok(_) => panic!("/events streamed for {why}"),
        }
    }
    // The same-origin browser is let in on both, the event stream also when
    // it sends only Sec-Fetch-Site (a same-origin GET carries no Origin).
    ws_connect(&app.base, &alice, "").await;
    sse_open(
        &app.base,
        &alice,
        "",
        &[("Origin", good.as_str()), ("Sec-Fetch-Site", "same-origin")],
    )
    .await;
    sse_open(&app.base, &alice, "", &[("Sec-Fetch-Site", "same-origin")]).await;

    // A session that logged out no longer connects.
    assert_eq!(alice.post_empty("/api/logout").await.status(), 204);
    assert_eq!(
        ws_connect_with(&app.base, Some(&cookie), Some(&good), "")
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        sse_open_with(&app.base, Some(&cookie), &[], "").await.err(),
        Some(401)
    );
}

#[tokio::test]
async fn ending_a_session_closes_its_live_connections() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.user("alice").await;
    let alice_phone = app.login("alice", common::USER_PASSWORD).await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let id = admin.upload_ok("a.nc", b"x").await;

    // Logout closes that session's connections, not the user's other sessions.
    let mut ws = ws_connect(&app.base, &alice, "").await;
    let mut sse = sse_open(&app.base, &alice, "", &[]).await;
    let mut phone = ws_connect(&app.base, &alice_phone, "").await;
    assert_eq!(alice.post_empty("/api/logout").await.status(), 204);
    assert_eq!(ws.close_code().await, Some(4001));
    sse.ends().await;
    churn(&admin, id, 1).await;
    phone.text().await;

    // Disabling a user closes all of theirs; others keep receiving.
    let mut bob_ws = ws_connect(&app.base, &bob, "").await;
    let mut bob_sse = sse_open(&app.base, &bob, "", &[]).await;
    let mut carol_ws = ws_connect(&app.base, &carol, "").await;
    let resp = admin
        .patch_json("/api/users/bob", &json!({"disabled": true}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(bob_ws.close_code().await, Some(4001));
    bob_sse.ends().await;

    // A password change does the same.
    let mut carol_sse = sse_open(&app.base, &carol, "", &[]).await;
    let resp = admin
        .patch_json("/api/users/carol", &json!({"password": "a-new-password-2"}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(carol_ws.close_code().await, Some(4001));
    carol_sse.ends().await;

    // Alice's other session was untouched throughout.
    churn(&admin, id, 1).await;
    phone.text().await;
    phone.quiet().await;
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1012_and_ends_event_streams() {
    let mut app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let mut ws = ws_connect(&app.base, &alice, "").await;
    let mut sse = sse_open(&app.base, &alice, "", &[]).await;
    app.stop().await;
    assert_eq!(ws.close_code().await, Some(1012));
    sse.ends().await;
}

// ---------------------------------------------------------------- slow readers

/// A raw connection that completes the handshake and then never reads.
/// Its receive buffer is made small so the server's side fills quickly.
async fn stalled(
    addr: SocketAddr,
    client: &Client,
    request_path: &str,
    websocket: bool,
) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    let upgrade = if websocket {
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        "Connection: close\r\n"
    };
    let req = format!(
        "GET {request_path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {}\r\n{upgrade}\r\n",
        client.cookie_header()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let want = if websocket { " 101 " } else { " 200 " };
    assert!(head.contains(want), "handshake: {head}");
    s
}

/// Reads what is left; true when the server closed the connection.
async fn drained_to_close(s: &mut tokio::net::TcpStream, within: Duration) -> (bool, usize) {
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (false, total),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, total),
            Ok(Ok(n)) => total += n,
        }
    }
}

/// Readers that record each event's arrival and size.
async fn record_ws(mut ws: Ws, until: u64) -> Vec<(u64, Instant, usize)> {
    let mut got = Vec::new();
    loop {
        match ws.next(Duration::from_secs(60)).await {
            WsNext::Text(t) => {
                let seq = seq_of(&t);
                got.push((seq, Instant::now(), t.len()));
                if seq >= until {
                    return got;
                }
            }
            other => panic!("a reading WebSocket lost its stream: {other:?}"),
        }
    }
}

async fn record_sse(mut sse: Sse, until: u64) -> Vec<(u64, Instant, usize)> {
    let mut got = Vec::new();
    loop {
        match sse.next(Duration::from_secs(60)).await {
            SseNext::Event(e) => {
                got.push((e.seq(), Instant::now(), e.html().len()));
                if e.seq() >= until {
                    return got;
                }
            }
            other => panic!("a reading event stream lost its stream: {other:?}"),
        }
    }
}

/// Enough events that their bytes exceed what the kernel will buffer for
/// one socket (send buffers autotune up to 4 MiB here, so aim well past it).
const BULK_EVENTS: u64 = 1400;
const BULK_BYTES: usize = 6 << 20;

/// A file whose fragments are as large as the rules allow: a long path, the
/// longest description, and (while locked) the longest comment.
async fn bulky_file(client: &Client) -> u64 {
    let path = format!("fixtures/{}.nc", "x".repeat(200));
    let description = "Fixture notes. ".repeat(134)[..2000].to_string();
    let resp = client
        .post_form(
            "/api/files",
            upload_form(
                &[("path", &path), ("description", &description)],
                Some(b"G0 X0"),
            ),
        )
        .await;
    assert_eq!(resp.status(), 201);
    resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap()
}

/// `n` events on a bulky file; returns when each request was answered.
async fn bulky_churn(client: &Client, id: u64, n: u64) -> Vec<Instant> {
    let comment = "c".repeat(500);
    let mut answered = Vec::new();
    for i in 0..n {
        let resp = if i % 2 == 0 {
            client.checkout(id, &comment).await
        } else {
            client.cancel(id).await
        };
        assert_eq!(resp.status(), 200);
        answered.push(Instant::now());
    }
    answered
}

#[tokio::test]
async fn a_websocket_that_never_reads_is_dropped_while_others_keep_receiving() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mallory = app.user("mallory").await;
    let id = bulky_file(&alice).await;
    let first = 2; // the upload was seq 1
    let last = first + BULK_EVENTS - 1;

    let mut stalled_ws = stalled(app.addr, &mallory, "/ws", true).await;
    let readers = (
        tokio::spawn(record_ws(ws_connect(&app.base, &alice, "").await, last)),
        tokio::spawn(record_sse(sse_open(&app.base, &bob, "", &[]).await, last)),
    );
    let started = Instant::now();
    let answered = bulky_churn(&alice, id, BULK_EVENTS).await;
    let ws_got = readers.0.await.unwrap();
    let sse_got = readers.1.await.unwrap();
    eprintln!("{BULK_EVENTS} events in {:?}", started.elapsed());
    for (name, got) in [("WebSocket", &ws_got), ("SSE", &sse_got)] {
        let seqs: Vec<u64> = got.iter().map(|(s, _, _)| *s).collect();
        assert_eq!(
            seqs,
            (first..=last).collect::<Vec<_>>(),
            "{name} reader got every event once, in order"
        );
        let worst = got
            .iter()
            .zip(&answered)
            .map(|((_, at, _), answered)| at.saturating_duration_since(*answered))
            .max()
            .unwrap();
        assert!(
            worst < Duration::from_secs(5),
            "{name} reader was held up: {worst:?}"
        );
    }
    let sent: usize = ws_got.iter().map(|(_, _, n)| n).sum();
    assert!(
        sent > BULK_BYTES,
        "enough was sent to fill any socket buffer ({sent} bytes)"
    );

    // The stalled socket was cut off: once it finally reads, it gets what
    // was buffered and then the end of the connection, well short of all
    // that was sent. The reader must not read before the server's send
    // timeout has passed, so this wait is the test, not a stand-in.
    tokio::time::sleep(latch::live::SEND_TIMEOUT + Duration::from_secs(3)).await;
    let (closed, bytes) = drained_to_close(&mut stalled_ws, Duration::from_secs(20)).await;
    eprintln!("stalled WebSocket: closed={closed}, {bytes} of {sent} bytes were buffered");
    assert!(closed, "the stalled WebSocket was disconnected");
    assert!(bytes < sent, "it was cut off early");
}

#[tokio::test]
async fn an_event_stream_that_never_reads_is_dropped_by_the_write_guard() {
    // The app as `latch::run` serves it, with a short write-stall limit so
    // the test does not wait the full default.
    let tmp = tempfile::tempdir().unwrap();
    let mut config = latch::Config::new(tmp.path().join("data"));
    config.admin_password = Some(common::ADMIN_PASSWORD.into());
    config.write_stall = Duration::from_secs(3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let latch_app = latch::open(config).unwrap();
    let server = tokio::spawn(latch::run(
        listener,
        latch_app,
        std::future::pending::<()>(),
    ));
    let base = format!("http://{addr}");
    wait_healthy(&base).await;
    let admin = login_at(&base, "admin", common::ADMIN_PASSWORD).await;
    for name in ["alice", "mallory"] {
        admin.create_user(name, "user").await;
    }
    let alice = login_at(&base, "alice", common::USER_PASSWORD).await;
    let mallory = login_at(&base, "mallory", common::USER_PASSWORD).await;
    let id = bulky_file(&alice).await;
    let mut stalled_sse = stalled(addr, &mallory, "/events", false).await;
    let reader = tokio::spawn(record_sse(
        sse_open(&base, &alice, "", &[]).await,
        1 + BULK_EVENTS,
    ));
    bulky_churn(&alice, id, BULK_EVENTS).await;
    let got = reader.await.unwrap();
    assert_eq!(
        got.len() as u64,
        BULK_EVENTS,
        "the reading client got everything"
    );
    let sent: usize = got.iter().map(|(_, _, n)| n).sum();
    assert!(
        sent > BULK_BYTES,
        "enough was sent to fill any socket buffer ({sent} bytes)"
    );
    // Past the 3 s write-stall limit before the stalled reader reads at all:
    // the wait is what is tested.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (closed, bytes) = drained_to_close(&mut stalled_sse, Duration::from_secs(20)).await;
    eprintln!("stalled event stream: closed={closed}, {bytes} of {sent} bytes were buffered");
    assert!(closed, "the stalled event stream was disconnected");
    assert!(bytes < sent, "it was cut off early");
    server.abort();
}
