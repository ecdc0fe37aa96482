//! A vault larger than one page of a list: `/api/files` is read and sent a
//! page at a time, and still lists every file once, in id order, as each
//! file's own answer shows it. (The figures are in `benches/vault_ops.rs`,
//! `scale`; LFS lock pages are proved in `lfs`.)

use std::collections::HashSet;

use crate::common::{TestApp, json_of};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// More than the server reads per page (1,000), so the list crosses pages.
const FILES: usize = 1_250;

#[tokio::test]
async fn the_file_list_crosses_pages_with_every_file_once_as_it_is() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let mut ids = Vec::new();
    for chunk in 0..FILES.div_ceil(200) {
        let mut form = Form::new().text("folder", format!("cell-{chunk}"));
        for i in chunk * 200..((chunk + 1) * 200).min(FILES) {
            form = form.part(
                "file",
                Part::bytes(format!("G0 X{i}\n").into_bytes()).file_name(format!("op-{i:05}.nc")),
            );
        }
        let body = json_of(alice.post_form("/api/files/bulk", form).await, 201).await;
        ids.extend(
            body["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f["id"].as_u64().expect("id")),
        );
    }
    // States that show in the list: a lock either side of the page edge,
    // a watched folder, and a file gone from the middle.
    for &id in &[ids[3], ids[999], ids[1000], ids[1001]] {
        assert_eq!(alice.checkout(id, "on the machine").await.status(), 200);
    }
    let watch = alice
        .post_json("/api/watches", &json!({"folder": "cell-3"}))
        .await;
    assert!(watch.status().is_success(), "{}", watch.status());
    let gone = ids[500];
    let admin = app.admin().await;
    assert_eq!(
        admin.delete(&format!("/api/files/{gone}")).await.status(),
        204
    );

    let resp = alice.get("/api/files").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
    );
    let listed: Vec<Value> = json_of(resp, 200).await["files"]
        .as_array()
        .cloned()
        .expect("a list");
    let listed_ids: Vec<u64> = listed.iter().map(|f| f["id"].as_u64().unwrap()).collect();
    let mut expected: Vec<u64> = ids.iter().copied().filter(|&id| id != gone).collect();
    expected.sort_unstable();
    assert_eq!(listed_ids, expected, "every file once, in id order");
    assert_eq!(listed_ids.iter().collect::<HashSet<_>>().len(), FILES - 1);
    for f in &listed {
        let id = f["id"].as_u64().unwrap();
        let own = alice.file(id).await;
        assert_eq!(
            f, &own,
            "file {id} as the list shows it and as its own answer does"
        );
    }
    let locked = listed.iter().filter(|f| f["state"] == "locked").count();
    assert_eq!(locked, 4);
    let watched = listed.iter().filter(|f| f["watching"] == true).count();
    assert_eq!(watched, 200);
}

/// The dashboard keeps the list it read until a write changes a file: each
/// kind of change shows on the next page, read between them.
#[tokio::test]
async fn the_dashboard_shows_each_change_to_a_file_on_the_next_page() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let page = |query: &'static str| {
        let admin = admin.clone();
        async move { admin.get(&format!("/{query}")).await.text().await.unwrap() }
    };
    let a = admin.upload_ok("cell/alpha-part.nc", b"a").await;
    let b = admin.upload_ok("cell/beta-part.nc", b"b").await;
    let first = page("").await;
    assert!(card(&first, a).is_some() && card(&first, b).is_some());
    assert!(card(&page("?state=locked").await, a).is_none());

    assert_eq!(admin.checkout(a, "on the machine").await.status(), 200);
    assert!(card(&page("?state=locked").await, a).is_some());
    assert_eq!(admin.cancel(a).await.status(), 200);
    assert!(card(&page("?state=locked").await, a).is_none());

    assert_eq!(admin.delete(&format!("/api/files/{b}")).await.status(), 204);
    assert!(card(&page("").await, b).is_none());
    let c = admin.upload_ok("cell/gamma-part.nc", b"c").await;
    assert!(card(&page("").await, c).is_some());

    let moved = admin
        .post_json(
            &format!("/api/files/{a}/move"),
            &json!({"path": "cell/delta-part.nc"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    let after = page("").await;
    let shown = card(&after, a).expect("the moved file's card");
    assert!(
        shown.contains("data-path=\"cell/delta-part.nc\""),
        "{shown}"
    );
    let edited = admin
        .patch_json(
            &format!("/api/files/{a}"),
            &json!({"description": "Fixture plate seventeen"}),
        )
        .await;
    assert_eq!(edited.status(), 200);
    let after = page("").await;
    assert!(
        card(&after, a)
            .expect("card")
            .contains("Fixture plate seventeen")
    );
}

/// The card of file `id` on a page, if the page lists it.
fn card(page: &str, id: u64) -> Option<&str> {
    let start = page.find(&format!("id=\"file-{id}\""))?;
    let end = page[start..].find("</article>")?;
    Some(&page[start..start + end])
}
