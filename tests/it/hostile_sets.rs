//! The outside look at working with several files and seeing inside them:
//! what a hostile but ordinary signed-in user found against the real
//! server, each kept as a test that failed before its fix — a comparison
//! whose memory grew with the number of lines (a page of 250 MB for two
//! 4 MiB versions), a selection form that dropped files after a repeated
//! id, and a check-in without files answered in terms of a field it has
//! not got.

use crate::common::{Client, TestApp, expect_error};

/// Uploads `first` at `path`, checks `second` in over it; answers the id
/// and the two versions' commits, oldest first.
async fn two_versions(
    c: &Client,
    path: &str,
    first: &[u8],
    second: &[u8],
) -> (u64, String, String) {
    let id = c.upload_ok(path, first).await;
    let from = c.file(id).await["head"].as_str().unwrap().to_string();
    assert_eq!(c.checkout(id, "").await.status(), 200);
    assert_eq!(c.checkin(id, second, "next", "minor").await.status(), 200);
    let to = c.file(id).await["head"].as_str().unwrap().to_string();
    (id, from, to)
}

/// Two 2 MB versions of a million one-character lines each: under the
/// 4 MiB a comparison may read, but the per-line work (similar's line
/// tables, the HTML rows) made the server's memory grow by 550 MB for one
/// page. A side with more lines than a comparison handles is refused from
/// its line count, with a sentence, on both surfaces.
#[tokio::test]
async fn a_comparison_of_a_million_short_lines_is_refused_by_its_line_count() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let (id, from, to) = two_versions(
        &alice,
        "big/short-lines.csv",
        &b"a\n".repeat(1_000_000),
        &b"b\n".repeat(1_000_000),
    )
    .await;
    let api = alice
        .get(&format!("/api/files/{id}/diff?from={from}&to={to}"))
        .await;
    let sentence = expect_error(api, 422).await;
    assert!(sentence.contains("lines"), "{sentence}");
    assert!(sentence.contains("big/short-lines.csv"), "{sentence}");
    let page = alice
        .get(&format!("/files/{id}/diff?from={from}&to={to}"))
        .await;
    assert_eq!(page.status(), 422);
    let html = page.text().await.unwrap();
    assert!(
        html.len() < 200_000,
        "a refusal page of {} bytes",
        html.len()
    );
}

/// Within the line limit a comparison may still change every line: the
/// API gives the whole diff, the page shows its first rows and says how
/// to get the rest, so the page's size no longer grows with the file's.
#[tokio::test]
async fn a_comparison_page_shows_its_first_rows_and_points_to_the_whole_diff() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let a: String = (0..100_000).map(|n| format!("N{n} G1 X1\n")).collect();
    let b: String = (0..100_000).map(|n| format!("N{n} G1 X2\n")).collect();
    let (id, from, to) =
        two_versions(&alice, "nc/all-changed.nc", a.as_bytes(), b.as_bytes()).await;
    let api = alice
        .get(&format!("/api/files/{id}/diff?from={from}&to={to}"))
        .await;
    assert_eq!(api.status(), 200);
    let diff = api.text().await.unwrap();
    assert_eq!(
        diff.lines().filter(|l| l.starts_with("+N")).count(),
        100_000
    );
    let page = alice
        .get(&format!("/files/{id}/diff?from={from}&to={to}"))
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.len() < 4 * 1024 * 1024,
        "a comparison page of {} bytes",
        html.len()
    );
    assert!(
        html.contains("100000 lines added"),
        "the summary counts all"
    );
    assert!(
        html.contains("are not shown here"),
        "the page says it is cut"
    );
    assert!(html.contains(&format!("/api/files/{id}/diff?from={from}")));
}

/// A selection form with one id repeated past the set's size took only
/// that file and dropped the others it named, answering "Checked out 1
/// file." — all or none, broken by a repeat. Repeats count once; the
/// limit is on different files.
#[tokio::test]
async fn a_selection_form_with_a_repeated_id_takes_every_file_it_names() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ids = [
        admin.upload_ok("sel/a.txt", b"a").await,
        admin.upload_ok("sel/b.txt", b"b").await,
        admin.upload_ok("sel/c.txt", b"c").await,
    ];
    let bob = app.user("bob").await;
    let (first, rest) = (ids[0].to_string(), [ids[1].to_string(), ids[2].to_string()]);
    let mut fields: Vec<(&str, &str)> = vec![("ids", first.as_str()); 201];
    fields.extend(rest.iter().map(|id| ("ids", id.as_str())));
    let resp = bob
        .http
        .post(bob.url("/files/checkout"))
        .header("X-CSRF-Token", bob.csrf.clone().unwrap())
        .header("HX-Request", "true")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.contains("Checked out 3 files."), "{body}");
    for id in ids {
        assert_eq!(bob.file(id).await["lock"]["owner"], "bob", "file {id}");
    }
    // 201 different files are refused whole, nothing taken.
    let many: Vec<String> = (1..=201).map(|n| n.to_string()).collect();
    let fields: Vec<(&str, &str)> = many.iter().map(|id| ("ids", id.as_str())).collect();
    let resp = bob
        .http
        .post(bob.url("/files/cancel"))
        .header("X-CSRF-Token", bob.csrf.clone().unwrap())
        .header("HX-Request", "true")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("at most 200"));
    assert_eq!(bob.file(ids[0]).await["lock"]["owner"], "bob");
}

/// A check-in sent with a message and no file parts was told "ids is
/// empty" — a field the multipart check-in does not have.
#[tokio::test]
async fn a_change_set_check_in_without_files_says_to_attach_them() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let form = reqwest::multipart::Form::new().text("message", "nothing");
    let sentence = expect_error(alice.post_form("/api/checkin", form).await, 422).await;
    assert!(sentence.contains("No file was attached"), "{sentence}");
    assert!(!sentence.contains("ids"), "{sentence}");
}
