//! A hostile but ordinary user against the network drive (`/dav`): XML
//! that nests deep enough to overflow a parser's stack, someone else's
//! lock token (every `PROPFIND` shows it) submitted in an `If` header, a
//! save racing the close that checks it in, a file moved in the browser
//! while open on the drive, two people locking one name at once, and the
//! locks of an account that was disabled.

use crate::common::ADMIN_PASSWORD;
use crate::common::binary::{Server, log_tail};
use crate::dav::{file_at, setup};

/// A body of `depth` elements inside one another, inside `wrap`'s element.
fn nested(open: &str, close: &str, depth: usize) -> String {
    format!(
        r#"<?xml version="1.0"?>{open}{}{}{close}"#,
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_nested_thousands_deep_is_refused_and_the_server_stays_up() {
    // The real binary: before the fix, one such request overflowed a
    // worker's stack and aborted the process (every user's server).
    let tmp = tempfile::tempdir().expect("temp dir");
    let log = tmp.path().join("latch.log");
    let server = Server::start(&tmp.path().join("data"), &log).await;
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/dav/part.txt", server.base))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body("v1")
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 201);
    let bodies = [
        (
            "PROPFIND",
            nested(
                r#"<D:propfind xmlns:D="DAV:"><D:prop>"#,
                "</D:prop></D:propfind>",
                9000,
            ),
        ),
        (
            "PROPPATCH",
            nested(
                r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:q xmlns:x="urn:x">"#,
                "</x:q></D:prop></D:set></D:propertyupdate>",
                9000,
            ),
        ),
        (
            "LOCK",
            nested(
                r#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>"#,
                "</D:owner></D:lockinfo>",
                9000,
            ),
        ),
    ];
    for (verb, body) in bodies {
        assert!(body.len() < 64 * 1024, "within the body limit");
        let resp = http
            .request(
                reqwest::Method::from_bytes(verb.as_bytes()).expect("method"),
                format!("{}/dav/part.txt", server.base),
            )
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .header("Depth", "0")
            .body(body)
            .send()
            .await;
        let resp = resp
            .unwrap_or_else(|e| panic!("{verb}: the server died ({e}); log:\n{}", log_tail(&log)));
        assert_eq!(resp.status(), 400, "{verb}");
        let text = resp.text().await.unwrap_or_default();
        assert!(text.contains("nests deeper"), "{verb}: {text}");
    }
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("the server is still up");
    assert_eq!(health.status(), 200);
    // Ordinary XML still works, property values with some depth included.
    let ok = http
        .request(
            reqwest::Method::from_bytes(b"PROPPATCH").expect("method"),
            format!("{}/dav/part.txt", server.base),
        )
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body(nested(
            r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:q xmlns:x="urn:x">"#,
            "</x:q></D:prop></D:set></D:propertyupdate>",
            20,
        ))
        .send()
        .await
        .expect("PROPPATCH");
    assert_eq!(ok.status(), 207);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_lock_token_opens_nothing_under_their_lock() {
    let (app, admin, bob, carol) = setup().await;
    app.admin().await.upload_ok("d/one.txt", b"one").await;
    // Bob locks folder d (every file in it checked out) and a name with no
    // file yet; carol reads both tokens from PROPFIND, as anyone can.
    let folder = bob
        .req("LOCK", "d")
        .header("Depth", "infinity")
        .body(crate::dav::LOCKINFO)
        .send()
        .await
        .expect("LOCK");
    assert_eq!(folder.status(), 200);
    let (_, shown) = carol.propfind("d", "0").await;
    let folder_token = shown
        .split("<D:href>")
        .find_map(|s| s.strip_prefix("opaquelocktoken:"))
        .and_then(|s| s.split('<').next())
        .map(|t| format!("opaquelocktoken:{t}"))
        .expect("PROPFIND shows the folder's token");
    let name_token = bob.lock("plan.dwg").await.expect("bob reserves a name");

    // Carol submits bob's tokens: refused, as without them.
    let (status, text) = carol.put("d/carol.txt", b"mine", Some(&folder_token)).await;
    assert_eq!(status, 423, "PUT into bob's folder: {text}");
    assert!(text.contains("bob"), "{text}");
    let mkcol = carol
        .req("MKCOL", "d/sub")
        .header("If", format!("(<{folder_token}>)"))
        .send()
        .await
        .expect("MKCOL");
    assert_eq!(mkcol.status(), 423, "MKCOL in bob's folder");
    let (status, _) = carol.put("plan.dwg", b"carol's", Some(&name_token)).await;
    assert_eq!(status, 423, "PUT on the name bob locked");
    // An admin moving a file into bob's folder with his token: refused too.
    app.admin().await.upload_ok("loose.txt", b"x").await;
    let moved = admin
        .req("MOVE", "loose.txt")
        .header("Destination", format!("{}/dav/d/loose.txt", app.base))
        .header("If", format!("(<{folder_token}>)"))
        .send()
        .await
        .expect("MOVE");
    // 412: his token names no lock on the file moved (RFC 4918 §10.4.8);
    // without it the destination's lock refuses (423).
    assert!(
        matches!(moved.status().as_u16(), 412 | 423),
        "MOVE into bob's folder: {}",
        moved.status()
    );
    let plain = admin
        .req("MOVE", "loose.txt")
        .header("Destination", format!("{}/dav/d/loose.txt", app.base))
        .send()
        .await
        .expect("MOVE");
    assert_eq!(plain.status(), 423, "MOVE into bob's folder");

    let paths = app.admin().await.paths().await;
    assert!(
        !paths
            .iter()
            .any(|p| p == "d/carol.txt" || p == "plan.dwg" || p == "d/loose.txt"),
        "{paths:?}"
    );
    // Bob, with his own token, still saves there: the name becomes his file.
    let (status, text) = bob.put("plan.dwg", b"bob's", Some(&name_token)).await;
    // 204: the locked name already shows as an empty file (RFC 4918 §7.3).
    assert!(matches!(status, 201 | 204), "{status}: {text}");
    let f = file_at(&app, "plan.dwg").await;
    assert_eq!(f["lock"]["owner"], "bob");
}

/// A save that raced the close: the client was told it was saved (2xx),
/// so its content must be the checked-in version, or still the holder's
/// draft under a check-out that goes on; never silently dropped.
///
/// It failed before saving a draft and checking one in took turns per
/// file: `UNLOCK` read the draft, a `PUT` recorded a newer one, and the
/// check-in committed the older one and ended the lock, dropping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_racing_the_close_is_never_answered_saved_and_lost() {
    let (app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("race.txt", b"v0").await;
    for round in 0..20 {
        let token = bob.lock("race.txt").await.expect("lock");
        let first = format!("first-{round}");
        assert_eq!(
            bob.put("race.txt", first.as_bytes(), Some(&token)).await.0,
            204
        );
        let second = format!("second-{round}");
        let (put, unlock) = tokio::join!(
            bob.put("race.txt", second.as_bytes(), Some(&token)),
            bob.unlock("race.txt", &token)
        );
        let f = app.admin().await.file(id).await;
        let (_, now) = bob.get("race.txt").await;
        if (200..300).contains(&put.0) {
            assert!(
                now == second.as_bytes() || !f["lock"].is_null(),
                "round {round}: PUT {} and UNLOCK {unlock}, yet the vault holds {:?} and no check-out goes on",
                put.0,
                String::from_utf8_lossy(&now)
            );
        }
        if !f["lock"].is_null() {
            // The close lost to the save: close again for the next round.
            assert_eq!(bob.unlock("race.txt", &token).await, 204, "round {round}");
        }
    }
}

/// Found by the crash torture: a save whose body was still coming in when
/// an admin overrode the check-out was answered 409, which WebDAV clients
/// read as "the folder is missing". It is 423 (the file is no longer
/// theirs to save over), as it is when the override comes first; nothing
/// is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_still_arriving_when_the_check_out_is_overridden_is_423_and_kept_nowhere() {
    use futures_util::StreamExt;
    let (app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("slow.txt", b"v0").await;
    let token = bob.lock("slow.txt").await.expect("lock");
    let (feed, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(b"half a ".to_vec()) });
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok(chunk), rx))
    });
    let put = bob
        .req("PUT", "slow.txt")
        .header("If", format!("(<{token}>)"))
        .header("Content-Length", "15")
        .body(reqwest::Body::wrap_stream(first.chain(rest)));
    let reply = tokio::spawn(async move {
        let resp = put.send().await.expect("PUT");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    });
    // The server has the first half and waits for the rest.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.admin().await.override_lock(id).await.status(), 200);
    feed.send(b"the body".to_vec()).await.expect("feed");
    drop(feed);
    let (status, sentence) = reply.await.expect("reply");
    assert_eq!(status, 423, "{sentence}");
    assert!(sentence.contains("slow.txt"), "{sentence}");
    let f = file_at(&app, "slow.txt").await;
    assert!(f["lock"].is_null(), "{f}");
    assert_eq!(bob.get("slow.txt").await.1, b"v0");
    let drafts = std::fs::read_dir(app.data_dir.join("drafts"))
        .expect("drafts")
        .count();
    assert_eq!(drafts, 0, "a draft was kept for a file nobody holds");
}

/// Found by the crash torture: a save carrying a token that had ended (an
/// override, then the file moved away by someone else) made a new file
/// at the old name, because an `If` token counted as "nothing stops a
/// write here". A token in an `If` header now holds only while it names
/// a lock in force on the resource (RFC 4918 §10.4.8): 412, nothing made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_with_a_token_that_ended_is_412_and_makes_no_file() {
    let (app, _admin, bob, _carol) = setup().await;
    let admin = app.admin().await;
    let id = admin.upload_ok("plan.dwg", b"v0").await;
    let token = bob.lock("plan.dwg").await.expect("lock");
    assert_eq!(admin.override_lock(id).await.status(), 200);
    let moved = admin.move_file(id, "old/plan.dwg").await;
    assert_eq!(moved.status(), 200);
    let (status, text) = bob.put("plan.dwg", b"bob's save", Some(&token)).await;
    assert_eq!(status, 412, "{text}");
    let (status, text) = bob.put("old/plan.dwg", b"bob's save", Some(&token)).await;
    assert_eq!(status, 412, "{text}");
    // A token never given, on a free name: 412 too.
    let (status, text) = bob
        .put(
            "new.dwg",
            b"x",
            Some("opaquelocktoken:00000000-0000-0000-0000-000000000000"),
        )
        .await;
    assert_eq!(status, 412, "{text}");
    let paths = admin.paths().await;
    assert_eq!(paths, vec!["old/plan.dwg".to_string()]);
    assert_eq!(bob.get("old/plan.dwg").await.1, b"v0");
}

/// Found by the second hostile look: two people locking the same free
/// name (or the same empty folder) at the same instant were both granted
/// an exclusive lock, and then neither could save there (each one's save
/// was refused for the other's lock). One of them is now refused (423).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_locking_one_free_name_at_once_are_never_both_granted() {
    let (app, admin, bob, carol) = setup().await;
    app.admin().await.upload_ok("seed.txt", b"s").await;
    for round in 0..25 {
        let name = format!("new-{round}.dwg");
        let (b, c) = tokio::join!(bob.lock(&name), carol.lock(&name));
        assert!(
            b.is_err() || c.is_err(),
            "round {round}: both were granted an exclusive lock on {name}"
        );
        let folder = format!("empty-{round}");
        assert_eq!(admin.simple("MKCOL", &folder).await.0, 201);
        let (b, c) = tokio::join!(bob.lock(&folder), carol.lock(&folder));
        assert!(
            b.is_err() || c.is_err(),
            "round {round}: both were granted an exclusive lock on {folder}"
        );
    }
}

/// Found by the second hostile look: a file's holder moved it in the
/// browser while it was open on the drive. The client's next save, to the
/// old name with its token, made a new file there (201), and its close
/// then cancelled the moved file's check-out without that save. The token
/// now follows its file: a save at the old name is 412 (nothing made),
/// one at the new name is the draft, and the close at either checks it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_follows_its_file_when_the_holder_moves_it_in_the_browser() {
    let (app, _admin, bob, _carol) = setup().await;
    let id = app.admin().await.upload_ok("m/plan.txt", b"v0").await;
    app.admin().await.upload_ok("m/keep.txt", b"k").await;
    let token = bob.lock("m/plan.txt").await.expect("lock");
    assert_eq!(bob.put("m/plan.txt", b"draft", Some(&token)).await.0, 204);
    let bob_web = app.login("bob", crate::common::USER_PASSWORD).await;
    let moved = bob_web.move_file(id, "m/plan2.txt").await;
    assert_eq!(moved.status(), 200);
    let (status, text) = bob.put("m/plan.txt", b"saved late", Some(&token)).await;
    assert_eq!(status, 412, "a save at the old name: {text}");
    let (status, text) = bob.put("m/plan2.txt", b"saved", Some(&token)).await;
    assert_eq!(status, 204, "a save where the file is now: {text}");
    // The client closes the name it opened.
    assert_eq!(bob.unlock("m/plan.txt", &token).await, 204);
    let paths = app.admin().await.paths().await;
    assert_eq!(paths.len(), 2, "no file made at the old name: {paths:?}");
    let f = app.admin().await.file(id).await;
    assert!(f["lock"].is_null(), "{f}");
    assert_eq!(f["revision"], "1.1", "the save was checked in: {f}");
    assert_eq!(bob.get("m/plan2.txt").await.1, b"saved");
}

/// Found by the second hostile look: a disabled account's WebDAV locks on
/// a folder and on a free name kept both closed to everyone, admins
/// included, until the client's timeout (up to a week): its owner can no
/// longer `UNLOCK` them and nobody else may. They now hold nothing while
/// the account is disabled; its Latch check-outs stay for an admin to
/// override, as disabling leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_accounts_drive_locks_hold_nothing() {
    let (app, admin, bob, carol) = setup().await;
    let api = app.admin().await;
    let one = api.upload_ok("d/one.txt", b"one").await;
    let folder = bob
        .req("LOCK", "d")
        .header("Depth", "infinity")
        .header("Timeout", "Second-600")
        .body(crate::dav::LOCKINFO)
        .send()
        .await
        .expect("LOCK");
    assert_eq!(folder.status(), 200);
    bob.lock("plan.dwg").await.expect("bob reserves a name");
    let disabled = api
        .patch_json("/api/users/bob", &serde_json::json!({"disabled": true}))
        .await;
    assert_eq!(disabled.status(), 200);
    // His check-out of d/one.txt stays his, until an admin overrides it.
    assert_eq!(file_at(&app, "d/one.txt").await["lock"]["owner"], "bob");
    assert_eq!(api.override_lock(one).await.status(), 200);
    // The folder and the name are open to others again.
    let (status, text) = carol.put("d/carol.txt", b"mine", None).await;
    assert_eq!(status, 201, "a new file in d: {text}");
    assert_eq!(carol.simple("MKCOL", "d/sub").await.0, 201);
    let (status, text) = carol.put("plan.dwg", b"carol's", None).await;
    assert_eq!(status, 201, "the name bob had locked: {text}");
    carol
        .lock("d/one.txt")
        .await
        .expect("carol opens d/one.txt");
    let (status, text) = admin.put("d/admin.txt", b"a", None).await;
    assert_eq!(status, 201, "{text}");
}
