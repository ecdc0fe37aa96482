//! Presence over real clients: who is online (a live connection open, on
//! either transport), who has a file's history open (`POST /live/viewing`
//! from a tab with a live connection), the one coalesced frame everyone
//! gets, and what presence must never do (reach the event log, outlive
//! the connection that carried it, be set without CSRF or from another site).

use std::time::{Duration, Instant};

use crate::common::live::{Sse, SseNext, Ws, WsNext, sse_open, ws_connect};
use crate::common::{self, Client, TestApp, wait_until};
use serde_json::{Value, json};

/// Generous: a presence change reaches everyone within a second or so,
/// but a dropped SSE reader is only noticed when a write to it fails (the
/// next heartbeat, `SSE_HEARTBEAT` = 15 s).
const FRAME_WAIT: Duration = Duration::from_secs(40);

/// Tells the server that `tab` of `client`'s session shows file `file`
/// (None: nothing), as live.js does.
async fn tell_viewing(client: &Client, tab: &str, file: Option<u64>) -> reqwest::Response {
    let file = file.map(|f| f.to_string()).unwrap_or_default();
    let mut rb = client
        .http
        .post(client.url("/live/viewing"))
        .header("Origin", &client.base)
        .form(&[("tab", tab), ("file", file.as_str())]);
    if let Some(csrf) = &client.csrf {
        rb = rb.header("X-CSRF-Token", csrf);
    }
    rb.send().await.expect("POST /live/viewing")
}

/// The display names a presence fragment's header lists (its `title`).
fn online_in(html: &str) -> Option<Vec<String>> {
    let at = html.find("id=\"presence\"")?;
    let start = html[..at].rfind('<')?;
    let tag = &html[start..start + html[start..].find('>')?];
    let title = tag.split(" title=\"").nth(1)?.split('"').next()?;
    Some(
        title
            .split(", ")
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// The viewing line of file `id` in a fragment: Some(text) when present
/// ("" when the line is empty, that is, hidden).
fn viewing_line(html: &str, id: u64) -> Option<String> {
    let at = html.find(&format!("id=\"viewing-{id}\""))?;
    let open_end = at + html[at..].find('>')?;
    let close = open_end + html[open_end..].find("</p>")?;
    Some(html[open_end + 1..close].to_string())
}

/// The next presence frame on a WebSocket satisfying `want`; panics after
/// [`FRAME_WAIT`].
async fn ws_presence(ws: &mut Ws, want: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next_any(left).await {
            WsNext::Text(t) if t.contains("id=\"presence\"") && want(&t) => return t,
            WsNext::Text(_) => {}
            other => panic!("no matching presence frame on the WebSocket: {other:?}"),
        }
    }
}

/// The same over SSE: an `event: presence` with no `id:` line.
async fn sse_presence(sse: &mut Sse, want: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match sse.next_any(left).await {
            SseNext::Event(e) if e.kind() != "presence" => {}
            SseNext::Event(e) => {
                assert_eq!(e.id, None, "a presence event must not move Last-Event-ID");
                if want(&e.html()) {
                    return e.html();
                }
            }
            other => panic!("no matching presence event on the SSE stream: {other:?}"),
        }
    }
}

fn lists(name: &'static str) -> impl Fn(&str) -> bool {
    move |html| online_in(html).is_some_and(|o| o.iter().any(|n| n == name))
}

fn lacks(name: &'static str) -> impl Fn(&str) -> bool {
    move |html| online_in(html).is_some_and(|o| !o.iter().any(|n| n == name))
}

async fn presence_json(client: &Client) -> Value {
    client.get_json("/api/presence").await
}

fn online_usernames(p: &Value) -> Vec<String> {
    p["online"]
        .as_array()
        .expect("online list")
        .iter()
        .map(|o| o["username"].as_str().expect("username").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_sees_alice_come_online_and_go_over_both_transports() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let alice = app.user("alice").await;
    app.admin()
        .await
        .patch_json(
            "/api/users/alice",
            &json!({"display_name": "Alice Liddell"}),
        )
        .await;
    let mut bob_ws = ws_connect(&app.base, &bob, "").await;
    let mut carol_sse = sse_open(&app.base, &carol, "", &[]).await;

    // Alice's two tabs, one per transport: online once.
    let alice_ws = ws_connect(&app.base, &alice, "?tab=a1").await;
    let alice_sse = sse_open(&app.base, &alice, "?tab=a2", &[]).await;
    let seen = ws_presence(&mut bob_ws, lists("Alice Liddell")).await;
    sse_presence(&mut carol_sse, lists("Alice Liddell")).await;
    assert!(
        seen.contains("<b>") && seen.contains(" online"),
        "the header says it in words: {seen}"
    );
    let p = presence_json(&bob).await;
    let names = online_usernames(&p);
    assert_eq!(names.iter().filter(|n| *n == "alice").count(), 1, "{p}");
    let alice_json = p["online"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["username"] == "alice")
        .unwrap();
    assert_eq!(alice_json["display_name"], "Alice Liddell");
    let since = alice_json["since"].as_str().unwrap();
    assert!(
        since.ends_with('Z') && since.contains('T'),
        "since is an ISO time: {since}"
    );

    // One tab closes: still online. The last closes: gone.
    alice_ws.close().await;
    let mut still = presence_json(&bob).await;
    // The close reaches the server asynchronously; what matters is that
    // alice stays online while her SSE tab is open.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        still = presence_json(&bob).await;
    }
    assert!(online_usernames(&still).contains(&"alice".to_string()));
    drop(alice_sse);
    ws_presence(&mut bob_ws, lacks("Alice Liddell")).await;
    sse_presence(&mut carol_sse, lacks("Alice Liddell")).await;
    assert!(!online_usernames(&presence_json(&bob).await).contains(&"alice".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_viewing_a_history_shows_on_the_api_the_card_and_the_page() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let id = admin.upload_ok("parts/gear.bin", b"gear").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let mut bob_ws = ws_connect(&app.base, &bob, "").await;
    let mut bob_sse = sse_open(&app.base, &bob, "", &[]).await;

    // Over SSE (one-way): the POST says what the tab shows.
    let _carol_sse = sse_open(&app.base, &carol, "?tab=c1", &[]).await;
    let resp = tell_viewing(&carol, "c1", Some(id)).await;
    assert_eq!(resp.status(), 204);
    let carol_views = |html: &str| viewing_line(html, id).is_some_and(|l| l == "carol is viewing");
    ws_presence(&mut bob_ws, carol_views).await;
    sse_presence(&mut bob_sse, carol_views).await;
    let p = presence_json(&bob).await;
    assert_eq!(p["viewing"][id.to_string()], json!(["carol"]), "{p}");

    // The page, rendered now, shows it without JavaScript.
    let page = bob.get("/").await.text().await.unwrap();
    assert_eq!(viewing_line(&page, id).as_deref(), Some("carol is viewing"));
    assert!(
        online_in(&page).is_some_and(|o| o.contains(&"carol".to_string())),
        "the header lists who is online"
    );

    // Over WebSocket, the same POST; a second viewer joins the line.
    let _bob_tab = ws_connect(&app.base, &bob, "?tab=b1").await;
    assert_eq!(tell_viewing(&bob, "b1", Some(id)).await.status(), 204);
    ws_presence(&mut bob_ws, |h| {
        viewing_line(h, id).is_some_and(|l| l == "bob and carol are viewing")
    })
    .await;

    // Closing the drawer clears it.
    assert_eq!(tell_viewing(&carol, "c1", None).await.status(), 204);
    assert_eq!(tell_viewing(&bob, "b1", None).await.status(), 204);
    ws_presence(&mut bob_ws, |h| {
        viewing_line(h, id).is_some_and(|l| l.is_empty())
    })
    .await;
    let p = presence_json(&bob).await;
    assert_eq!(p["viewing"], json!({}), "{p}");

    // A client opening now gets the current presence among its first frames.
    assert_eq!(tell_viewing(&carol, "c1", Some(id)).await.status(), 204);
    ws_presence(&mut bob_ws, carol_views).await;
    let mut late = ws_connect(&app.base, &carol, "").await;
    ws_presence(&mut late, carol_views).await;
    let mut late_sse = sse_open(&app.base, &carol, "", &[]).await;
    sse_presence(&mut late_sse, carol_views).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_without_a_word_ends_its_viewing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let id = admin.upload_ok("a.bin", b"a").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let mut bob_ws = ws_connect(&app.base, &bob, "").await;

    for transport in ["ws", "sse"] {
        let (ws, sse) = if transport == "ws" {
            (Some(ws_connect(&app.base, &carol, "?tab=gone").await), None)
        } else {
            (
                None,
                Some(sse_open(&app.base, &carol, "?tab=gone", &[]).await),
            )
        };
        assert_eq!(tell_viewing(&carol, "gone", Some(id)).await.status(), 204);
        ws_presence(&mut bob_ws, |h| {
            viewing_line(h, id).is_some_and(|l| l == "carol is viewing")
        })
        .await;
        // The tab is closed: the socket drops, no "closed" is ever said.
        drop(ws);
        drop(sse);
        ws_presence(&mut bob_ws, |h| {
            viewing_line(h, id).is_some_and(|l| l.is_empty())
        })
        .await;
        let p = presence_json(&bob).await;
        assert_eq!(p["viewing"], json!({}), "{transport}: {p}");
        assert!(!online_usernames(&p).contains(&"carol".to_string()));
        // With no live connection, the tab cannot claim to view anything.
        let resp = tell_viewing(&carol, "gone", Some(id)).await;
        assert_eq!(resp.status(), 409, "{transport}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewing_is_set_only_for_a_live_tab_of_ones_own_session_and_a_real_file() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let id = admin.upload_ok("a.bin", b"a").await;
    let carol = app.user("carol").await;
    let mallory = app.user("mallory").await;
    let _carol_ws = ws_connect(&app.base, &carol, "?tab=mine").await;

    // Another session naming carol's tab is a different tab: refused.
    let resp = tell_viewing(&mallory, "mine", Some(id)).await;
    assert_eq!(resp.status(), 409);
    // A file that does not exist, a tab name that is not one.
    assert_eq!(tell_viewing(&carol, "mine", Some(9999)).await.status(), 404);
    let resp = tell_viewing(&carol, "a b", Some(id)).await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("tab"), "a sentence: {text}");
    // A live connection with an unreadable tab name is refused too.
    let refused = crate::common::live::ws_connect_with(
        &app.base,
        Some(&carol.cookie_header()),
        Some(&app.base),
        "?tab=%3Cx%3E",
    )
    .await;
    assert_eq!(refused.err(), Some(400));
    assert_eq!(presence_json(&carol).await["viewing"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_comings_and_goings_is_coalesced_into_a_few_frames() {
    let app = TestApp::spawn().await;
    let bob = app.user("bob").await;
    let mut people = Vec::new();
    for n in 0..5 {
        people.push(app.user(&format!("user{n}")).await);
    }
    let mut bob_ws = ws_connect(&app.base, &bob, "").await;
    ws_presence(&mut bob_ws, lists("bob")).await;

    let started = Instant::now();
    for round in 0..4 {
        for (n, p) in people.iter().enumerate() {
            // 20 connections in all, each opened and closed at once.
            let ws = ws_connect(&app.base, p, &format!("?tab=t{round}x{n}")).await;
            ws.close().await;
        }
    }
    let burst = started.elapsed();
    wait_until("everyone but bob to be gone", || async {
        online_usernames(&presence_json(&bob).await) == ["bob"]
    })
    .await;
    // Count the frames until none has come for well over a tick. A burst
    // inside one tick may send none at all: nothing visible changed.
    let mut frames = 0;
    let mut last = None;
    loop {
        match bob_ws.next_any(Duration::from_secs(3)).await {
            WsNext::Text(t) if t.contains("id=\"presence\"") => {
                frames += 1;
                last = Some(t);
            }
            WsNext::Text(_) => {}
            WsNext::Timeout => break,
            other => panic!("bob's socket ended: {other:?}"),
        }
    }
    let window = started.elapsed() - Duration::from_secs(3);
    if let Some(t) = last {
        assert_eq!(
            online_in(&t),
            Some(vec!["bob".to_string()]),
            "the last frame: {t}"
        );
    }
    // At most one a second (plus one at each end), however many changes.
    let bound = window.as_secs() as usize + 2;
    assert!(
        frames <= bound,
        "{frames} presence frames for 20 comings and goings in {burst:?} (settled after {window:?}); at most {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_never_reaches_the_event_log() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let id = admin.upload_ok("a.bin", b"a").await;
    let before = admin.get_json("/api/activity?since=0").await;
    let carol = app.user("carol").await;
    let mut sse = sse_open(&app.base, &carol, "?tab=t", &[]).await;
    assert_eq!(tell_viewing(&carol, "t", Some(id)).await.status(), 204);
    sse_presence(&mut sse, |h| viewing_line(h, id).is_some()).await;
    assert_eq!(tell_viewing(&carol, "t", None).await.status(), 204);
    drop(sse);
    wait_until("carol to be gone", || async {
        !online_usernames(&presence_json(&admin).await).contains(&"carol".to_string())
    })
    .await;
    let after = admin.get_json("/api/activity?since=0").await;
    // Creating carol is an account change, not an event: nothing was added.
    assert_eq!(before["last_seq"], after["last_seq"]);
    assert_eq!(before["events"], after["events"]);
    // And a new stream resuming at the last sequence has nothing to replay.
    let last = after["last_seq"].as_u64().unwrap();
    let mut resumed = sse_open(&app.base, &admin, &format!("?last_event_id={last}"), &[]).await;
    loop {
        match resumed.next_any(Duration::from_secs(3)).await {
            SseNext::Event(e) => assert_eq!(e.kind(), "presence", "{e:?}"),
            SseNext::Timeout => break,
            SseNext::Ended => panic!("the stream ended"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_for_signed_in_users_and_set_only_same_site_with_csrf() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let id = admin.upload_ok("a.bin", b"a").await;
    let resp = app.anonymous().get("/api/presence").await;
    let error = common::expect_error(resp, 401).await;
    assert!(!error.is_empty());

    let carol = app.user("carol").await;
    let _ws = ws_connect(&app.base, &carol, "?tab=t").await;
    let form = [("tab", "t".to_string()), ("file", id.to_string())];
    let no_csrf = carol
        .http
        .post(carol.url("/live/viewing"))
        .header("Origin", &carol.base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let foreign = carol
        .http
        .post(carol.url("/live/viewing"))
        .header("Origin", "http://evil.example")
        .header("X-CSRF-Token", carol.csrf.as_deref().unwrap())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let anonymous = app
        .anonymous()
        .http
        .post(app.url("/live/viewing"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(presence_json(&carol).await["viewing"], json!({}));
}
