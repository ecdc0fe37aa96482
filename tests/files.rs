//! Files: upload, check out, cancel, check in, override, delete, history and
//! download through the JSON API, with the rules of DESIGN.md.

mod common;

use common::{TestApp, expect_error};

#[tokio::test]
async fn a_checked_in_version_becomes_a_commit_with_its_revision() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice").await;
    let id = alice.upload_ok("parts/1234567.mcam", b"first").await;
    assert_eq!(alice.checkout(id, "fixing the post").await.status(), 200);
    let resp = alice.checkin(id, b"second", "Fix the post", "minor").await;
    assert_eq!(resp.status(), 200);
    let file = alice.file(id).await;
    assert_eq!(file["revision"], "1.1");
    assert_eq!(file["state"], "available");
    let history = alice.history(id).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["revision"], "1.1");
    assert_eq!(history[0]["message"], "Fix the post");
    assert_eq!(alice.content(id, None).await, b"second");
    let first = history[1]["commit"].as_str().unwrap();
    assert_eq!(alice.content(id, Some(first)).await, b"first");
    let err = expect_error(alice.checkin(id, b"third", "again", "minor").await, 409).await;
    assert!(err.contains("not checked out"), "{err}");
}
