//! A newcomer's first day in Chromium: what got in the way, kept fixed.

use crate::common::browser::{self, Browser, Driver, Options};
use crate::common::{TestApp, USER_PASSWORD};
use serde_json::{Value, json};

/// The element that has focus, as `file-N:text of the control`.
async fn focused(b: &Browser) -> String {
    b.exec(
        "const a = document.activeElement; const c = a && a.closest('[id^=file-]'); \
         return (c ? c.id : 'none') + ':' + (a ? a.textContent.trim() : '')",
        json!([]),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Alice reads the table sorted by last change, her focus on one line's
/// History; Marco moves another file into a folder the page does not show
/// yet, so her list is fetched again. Her focus stays on that History link
/// (it went to the top of the page: the refreshed list replaced the line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_stays_on_a_line_when_a_colleagues_move_refreshes_the_list() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let marco = app.user("marco").await;
    let a = marco.upload_ok("cam/op10.nc", b"a").await;
    let m = marco.upload_ok("cam/op20.nc", b"b").await;
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    b.goto(&app.url("/?view=table&sort=modified")).await;
    b.wait_live().await;
    b.exec(
        "[...document.querySelectorAll('#file-' + arguments[0] + ' a')].find(x => x.textContent.trim() === 'History').focus()",
        json!([a]),
    )
    .await;
    assert_eq!(focused(&b).await, format!("file-{a}:History"));
    assert_eq!(marco.checkout(m, "").await.status(), 200);
    let r = marco
        .post_json(
            &format!("/api/files/{m}/move"),
            &json!({"path": "archive/op20.nc"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    b.wait_until(
        &format!("(document.getElementById('file-{m}') || {{dataset: {{}}}}).dataset.path === 'archive/op20.nc'"),
        "the moved line",
    )
    .await;
    b.settle().await;
    assert_eq!(
        focused(&b).await,
        format!("file-{a}:History"),
        "focus stays on the line Alice was on"
    );
}

async fn shot(b: &Browser, name: &str) {
    let p = b.screenshot(name).await;
    let _ = std::fs::copy(&p, format!("/tmp/newcomer/scratch-{name}.png"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a walk-through that saves screenshots to /tmp/newcomer"]
async fn scratch_first_run() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let admin = app.admin().await;
    let r = admin
        .post_json(
            "/api/users",
            &json!({"username": "marco", "password": USER_PASSWORD, "role": "user", "display_name": "Marco Antonio Bellavista-Rodríguez"}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let marco = app.login("marco", USER_PASSWORD).await;
    let long = marco
        .upload_ok(
            "customers/acme-aerospace/2026/Q4/landing-gear-trunnion-bracket-left-hand-rev-C-final-op20-5axis.mcam",
            b"x",
        )
        .await;
    assert_eq!(
        marco
            .checkout(long, "Reworking the op20 toolpaths after the CMM report showed the bore 0.02 mm oversize on the last three parts; do not touch until Friday")
            .await
            .status(),
        200
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut folder = Vec::new();
    for i in 0..30 {
        let p = tmp.path().join(format!("op{i:02}.nc"));
        std::fs::write(&p, format!("O{i:04}\n")).unwrap();
        folder.push(p);
    }
    let single = tmp.path().join("vise-jaw.mcam");
    std::fs::write(&single, b"jaw").unwrap();

    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    b.wait_live().await;
    shot(&b, "01-dashboard").await;
    b.exec(
        "document.querySelector('details.upload').open = true",
        json!([]),
    )
    .await;
    shot(&b, "02-upload-open").await;
    let html = b
        .exec(
            "return document.querySelector('details.upload').outerHTML",
            json!([]),
        )
        .await;
    std::fs::write("/tmp/newcomer/upload.html", html.as_str().unwrap_or("")).unwrap();
    let html = b
        .exec(
            "return document.querySelector('main').outerHTML.slice(0, 20000)",
            json!([]),
        )
        .await;
    std::fs::write("/tmp/newcomer/main.html", html.as_str().unwrap_or("")).unwrap();
    // A few files through the many-files input, then a folder of 30.
    b.exec(
        "document.querySelector('details.bulk-more').open = true",
        json!([]),
    )
    .await;
    b.type_into("form.bulk input[multiple]", single.to_str().unwrap())
        .await;
    b.type_into("form.bulk input[name=folder]", "fixtures")
        .await;
    b.click("form.bulk button[type=submit]").await;
    b.wait_until(
        "document.querySelectorAll('[id^=file-]').length >= 2",
        "vise jaw",
    )
    .await;
    shot(&b, "03-after-one").await;
    let dir = tmp.path().join("cam");
    std::fs::create_dir(&dir).unwrap();
    for p in &folder {
        std::fs::rename(p, dir.join(p.file_name().unwrap())).unwrap();
    }
    b.exec("document.querySelector('details.upload').open = true; document.querySelector('details.bulk-more').open = true", json!([])).await;
    b.type_into("form.bulk input[webkitdirectory]", dir.to_str().unwrap())
        .await;
    shot(&b, "04-folder-chosen").await;
    b.click("form.bulk button[type=submit]").await;
    b.wait_until(
        "document.querySelectorAll('article[id^=file-], tr[id^=file-], [id^=file-]').length >= 32",
        "the folder",
    )
    .await;
    shot(&b, "05-after-folder").await;
    b.click("button[value=table], a[href*='view=table']").await;
    b.settle().await;
    shot(&b, "06-table").await;
    let html = b
        .exec(
            "return document.querySelector('main').outerHTML.slice(0, 30000)",
            json!([]),
        )
        .await;
    std::fs::write("/tmp/newcomer/table.html", html.as_str().unwrap_or("")).unwrap();
    b.exec(
        "document.querySelectorAll('#toasts button, .toast button').forEach(x => x.click())",
        json!([]),
    )
    .await;
    b.exec("const s = document.getElementById('sort'); s.value = 'modified'; s.dispatchEvent(new Event('change', {bubbles: true}))", json!([])).await;
    b.wait_until(
        "document.getElementById('file-list').dataset.sort === 'modified'",
        "sorted",
    )
    .await;
    b.settle().await;
    shot(&b, "07-sorted").await;
    // Marco, meanwhile, checks out op03 and moves op05; alice's sorted list.
    let ids: Vec<u64> = b
        .exec(
            "return [...document.querySelectorAll('[id^=file-]')].map(e => [e.id, e.dataset.path])",
            json!([]),
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            v[1].as_str().unwrap_or("").ends_with("op03.nc")
                || v[1].as_str().unwrap_or("").ends_with("op05.nc")
        })
        .map(|v| v[0].as_str().unwrap()[5..].parse().unwrap())
        .collect();
    b.exec("const e = document.querySelector('#file-' + arguments[0] + ' button, #file-' + arguments[0] + ' a'); e.focus()", json!([ids[0]])).await;
    assert_eq!(marco.checkout(ids[0], "Fixing feeds").await.status(), 200);
    marco.checkout(ids[1], "").await;
    let r = marco
        .post_json(
            &format!("/api/files/{}/move", ids[1]),
            &json!({"path": "archive/op05.nc"}),
        )
        .await;
    eprintln!("move {}", r.status());
    b.wait_until(
        &format!(
            "document.querySelector('#file-{}').dataset.state === 'locked'",
            ids[0]
        ),
        "locked",
    )
    .await;
    b.settle().await;
    shot(&b, "08-sorted-live").await;
    let f = b.exec("const a = document.activeElement; return a.outerHTML.slice(0,200) + ' in ' + (a.closest('[id^=file-]')||{}).id", json!([])).await;
    eprintln!("focus after live: {f}");
    b.exec("window.scrollTo(0, document.body.scrollHeight)", json!([]))
        .await;
    shot(&b, "09-sorted-bottom").await;
    b.exec("const s = document.getElementById('sort'); s.value = 'path'; s.dispatchEvent(new Event('change', {bubbles: true}))", json!([])).await;
    b.wait_until(
        "document.getElementById('file-list').dataset.sort === 'path'",
        "sorted",
    )
    .await;
    b.exec(
        "document.querySelector('.folder-summary').click()",
        json!([]),
    )
    .await;
    b.settle().await;
    b.exec("window.scrollTo(0, 0)", json!([])).await;
    shot(&b, "10-collapsed").await;
    b.click("#my-checkouts").await;
    b.settle().await;
    shot(&b, "11-mine").await;
    eprintln!("url {}", b.current_url().await);
    for (w, scheme) in [(1024, "light"), (1024, "dark"), (1280, "dark")] {
        let b2 = driver
            .session(Options {
                width: w,
                color_scheme: scheme,
                ..Options::default()
            })
            .await;
        b2.login(&app.base, "alice", USER_PASSWORD).await;
        b2.exec("window.scrollTo(0, document.body.scrollHeight)", json!([]))
            .await;
        shot(&b2, &format!("12-table-{w}-{scheme}")).await;
    }
    let _ = Value::Null;
}
