//! The dashboard's list, kept in path order and caught up from the change
//! log, attacked with many quick changes from several people at once:
//! sets taken and given back in one change, moves (two names swapped),
//! deletes and new files with names that sort oddly byte-wise (`a-b`,
//! `a.b`, `a/b`, case, accents), while another person loads the page.
//! Whenever the writes pause, the page shows exactly what the API lists:
//! the same files, each once, with the same holders.

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::{Client, TestApp, USER_PASSWORD};

/// File id → holder, as `/api/files` lists them.
async fn api_list(c: &Client) -> BTreeMap<u64, Option<String>> {
    c.files()
        .await
        .iter()
        .map(|f| {
            let holder = f["lock"]["owner"].as_str().map(str::to_string);
            (f["id"].as_u64().unwrap(), holder)
        })
        .collect()
}

/// File id → holder, as the dashboard's cards show them; a card twice fails.
async fn page_list(c: &Client) -> BTreeMap<u64, Option<String>> {
    let page = c.get("/").await.text().await.unwrap();
    let mut out = BTreeMap::new();
    for part in page.split("<article").skip(1) {
        let head = &part[..part.find('>').unwrap_or(part.len())];
        let Some(id) = head.split(r#"id="file-"#).nth(1) else {
            continue;
        };
        let id: u64 = id[..id.find('"').unwrap()].parse().unwrap();
        let holder = head
            .split(r#"data-locked-by=""#)
            .nth(1)
            .map(|h| h[..h.find('"').unwrap()].to_string());
        assert!(
            out.insert(id, holder).is_none(),
            "file {id} twice on the page"
        );
    }
    out
}

#[tokio::test]
async fn the_page_lists_what_the_api_lists_through_a_storm_of_changes() {
    let mut app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let admin = app.admin().await;
    const NAMES: [&str; 12] = [
        "a-b.nc", "a.b.nc", "a/b.nc", "a/b-c.nc", "a/b/c.nc", "B/x.nc", "ab/c.nc", "é.nc", "Z.nc",
        "y.nc", "a b.nc", "a0.nc",
    ];
    let mut ids = Vec::new();
    for name in NAMES {
        ids.push(alice.upload_ok(name, name.as_bytes()).await);
    }
    for round in 0..6u64 {
        let (x, y) = (
            ids[2 + (round as usize) % 9],
            ids[3 + (round as usize + 5) % 9],
        );
        let path = |c: &Client, id: u64| {
            let c = c.clone();
            async move { c.file(id).await["path"].as_str().unwrap().to_string() }
        };
        let (px, py) = (path(&admin, x).await, path(&admin, y).await);
        let set: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&i| i % 3 == round % 3 && i != x && i != y && i > 2)
            .collect();
        let tmp = format!("tmp/{round}.nc");
        let mv = |id: u64, to: String| {
            let admin = admin.clone();
            async move {
                let resp = admin
                    .post_json(&format!("/api/files/{id}/move"), &json!({"path": to}))
                    .await;
                assert_eq!(resp.status(), 200, "move {id}");
            }
        };
        // Swap two names (three moves) while alice takes a set and gives it
        // back, bob uploads and deletes, and bob loads the page.
        let swap = async {
            mv(x, tmp.clone()).await;
            mv(y, px.clone()).await;
            mv(x, py.clone()).await;
        };
        let sets = async {
            let r = alice.post_json("/api/checkout", &json!({"ids": set})).await;
            assert_eq!(r.status(), 200);
            let r = alice.post_json("/api/cancel", &json!({"ids": set})).await;
            assert_eq!(r.status(), 200);
            let r = alice
                .post_json("/api/checkout", &json!({"ids": [set[0]]}))
                .await;
            assert_eq!(r.status(), 200);
        };
        let churn = async {
            let name = format!("a/b.{round}.nc");
            let id = bob.upload_ok(&name, b"x").await;
            let id2 = bob.upload_ok(&format!("a-b/{round}.nc"), b"y").await;
            assert_eq!(
                admin.delete(&format!("/api/files/{id}")).await.status(),
                204
            );
            id2
        };
        let looks = async {
            for _ in 0..5 {
                page_list(&bob).await;
            }
        };
        let ((), (), kept, ()) = tokio::join!(swap, sets, churn, looks);
        ids.push(kept);
        let r = alice
            .post_json("/api/cancel", &json!({"ids": [set[0]]}))
            .await;
        assert_eq!(r.status(), 200);
        if round == 2 {
            let r = bob
                .post_json("/api/checkout", &json!({"ids": [ids[0], ids[1]]}))
                .await;
            assert_eq!(r.status(), 200);
        }
        assert_eq!(page_list(&bob).await, api_list(&bob).await, "round {round}");
    }
    app.restart().await;
    let bob = app.login("bob", USER_PASSWORD).await;
    let after = page_list(&bob).await;
    assert_eq!(after, api_list(&bob).await, "after a restart");
    assert_eq!(after.len(), NAMES.len() + 6);
}
