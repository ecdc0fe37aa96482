//! A newcomer's first day in Chromium: what got in the way, kept fixed.

use crate::common::browser::{self, Browser, Driver, Options};
use crate::common::{TestApp, USER_PASSWORD};
use serde_json::json;

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

/// A colleague with a long display name holds a file: in the table's narrow
/// State column the badge ends in an ellipsis inside its pill (it was cut
/// mid-letter at the pill's edge), and the whole of it shows on hover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_holder_name_in_the_table_ends_in_an_ellipsis_and_shows_whole_on_hover() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let name = "Marco Antonio Bellavista-Rodríguez";
    let marco = app.named_user("marco", name).await;
    let id = marco.upload_ok("cam/op10.nc", b"a").await;
    assert_eq!(marco.checkout(id, "").await.status(), 200);
    let driver = Driver::start().await;
    for width in [1280, 1024] {
        let b = driver
            .session(Options {
                width,
                ..Options::default()
            })
            .await;
        b.login(&app.base, "alice", USER_PASSWORD).await;
        b.goto(&app.url("/?view=table")).await;
        let fit = b
            .exec(
                "const badge = document.querySelector('#file-' + arguments[0] + ' .badge.state'); \
                 const text = badge.querySelector('.badge-text'); \
                 if (!text) return 'no text box: ' + badge.outerHTML; \
                 const cut = text.scrollWidth > text.clientWidth; \
                 const ok = text.getBoundingClientRect().right <= badge.getBoundingClientRect().right + 0.5 \
                   && (!cut || getComputedStyle(text).textOverflow === 'ellipsis'); \
                 return ok ? badge.title : 'cut without an ellipsis';",
                json!([id]),
            )
            .await;
        assert_eq!(
            fit,
            json!(format!("Checked out by {name} (marco)")),
            "at {width} px"
        );
        if width == 1024 {
            shot(&b, "table-1024-long-name").await;
        }
    }
}

/// A folder of files picked with "Or a whole folder" and "Into the folder"
/// left empty lands under the folder's own name; the toast said "They are
/// under the top of the vault", sending her to look for them in the wrong
/// place. It names where they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picked_folder_is_reported_where_it_landed() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cam");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..3 {
        std::fs::write(dir.join(format!("op{i}.nc")), format!("O{i}")).unwrap();
    }
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    b.wait_live().await;
    b.exec(
        "document.querySelector('details.upload').open = true; \
         document.querySelector('details.bulk-more').open = true",
        json!([]),
    )
    .await;
    b.type_into("form.bulk input[webkitdirectory]", dir.to_str().unwrap())
        .await;
    b.click("form.bulk button[type=submit]").await;
    let toast = b
        .wait_until(
            "[...document.querySelectorAll('#uploads *, #toasts *')].map(t => t.textContent.trim()).find(t => t.startsWith('Uploaded') && t.endsWith('.'))",
            "the upload's toast",
        )
        .await;
    assert_eq!(
        toast,
        json!("Uploaded 3 files in one commit. They are in cam/."),
        "the toast names where the files are"
    );
    b.wait_until(
        "document.querySelectorAll('section.folder[data-folder=cam] [id^=file-]').length === 3",
        "the three lines in cam/",
    )
    .await;
}

/// Marco's account shows "Marco Antonio Bellavista-Rodríguez" on the cards
/// and in the header, but the Recent activity list, the toasts and the
/// Activity page said "marco": a newcomer could not tell the two were the
/// same person. Every line names him as the cards do, live and after a
/// reload; the Activity page's "Who" filter still takes the username.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_lines_and_toasts_name_people_as_the_cards_do() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    let name = "Marco Antonio Bellavista-Rodríguez";
    let marco = app.named_user("marco", name).await;
    let id = marco.upload_ok("cam/op10.nc", b"a").await;
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    b.wait_live().await;
    let act = driver.session(Options::default()).await;
    act.login(&app.base, "alice", USER_PASSWORD).await;
    act.goto(&app.url("/activity?who=marco")).await;
    act.wait_live().await;
    assert_eq!(marco.checkout(id, "feeds").await.status(), 200);
    let want = format!("{name} checked out cam/op10.nc — feeds");
    for (page, what) in [(&b, "the dashboard"), (&act, "the Activity page")] {
        page.wait_until(
            "[...document.querySelectorAll('#activity-list li')].some(l => l.textContent.includes(arguments[0]))"
                .replace("arguments[0]", &serde_json::to_string(&want).unwrap())
                .as_str(),
            &format!("the live line on {what}"),
        )
        .await;
    }
    b.wait_until(
        "[...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.includes('Marco Antonio'))",
        "the toast naming Marco as the cards do",
    )
    .await;
    b.goto(&app.url("/")).await;
    let line = b.text("#activity-list li").await;
    assert!(line.contains(&want), "after a reload: {line}");
}

async fn shot(b: &Browser, name: &str) {
    b.screenshot(&format!("newcomer-{name}")).await;
}

/// Picks a folder of `n` small programs under a fresh temporary directory.
fn folder_of(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fixtures");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("plate_{i:03}.nc")), format!("O{i}\nM30\n")).unwrap();
    }
    (tmp, dir)
}

/// A shop's fixtures folder of 300 programs, picked in *Upload several*,
/// lands in one commit and shows on a colleague's page live (it was sent
/// whole, then refused with "At most 200 files can be sent at once." —
/// a limit README never mentioned). A folder over the documented limit
/// is refused before anything is sent, with the limit in the sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_300_files_uploads_and_one_over_the_limit_is_told_before_sending() {
    if !browser::browser_available() {
        return;
    }
    let app = TestApp::spawn().await;
    app.create_user("alice", "user").await;
    app.create_user("bob", "user").await;
    let (_tmp, dir) = folder_of(300);
    let driver = Driver::start().await;
    let watcher = driver.session(Options::default()).await;
    watcher.login(&app.base, "bob", USER_PASSWORD).await;
    watcher.wait_live().await;
    let b = driver.session(Options::default()).await;
    b.login(&app.base, "alice", USER_PASSWORD).await;
    b.wait_live().await;
    let open_bulk = "document.querySelector('details.upload').open = true; \
                     document.querySelector('details.bulk-more').open = true";
    b.exec(open_bulk, json!([])).await;
    b.type_into("form.bulk input[webkitdirectory]", dir.to_str().unwrap())
        .await;
    b.click("form.bulk button[type=submit]").await;
    let toast = b
        .wait_until(
            "[...document.querySelectorAll('#uploads *, #toasts *, .flash')].map(t => t.textContent.trim()).find(t => (t.startsWith('Uploaded') || t.includes('At most')) && t.endsWith('.'))",
            "the upload's toast",
        )
        .await;
    assert_eq!(
        toast,
        json!("Uploaded 300 files in one commit. They are in fixtures/.")
    );
    assert_eq!(app.admin().await.files().await.len(), 300);
    watcher
        .wait_until(
            "document.querySelectorAll('section.folder[data-folder=fixtures] [id^=file-]').length === 300",
            "the colleague's 300 cards, live",
        )
        .await;

    // One file over the limit: told in the form, nothing sent.
    let limit = latch::files::MAX_UPLOAD_FILES;
    let (_tmp2, big) = folder_of(limit + 1);
    b.goto(&app.url("/")).await;
    b.wait_live().await;
    b.exec(open_bulk, json!([])).await;
    b.type_into("form.bulk input[webkitdirectory]", big.to_str().unwrap())
        .await;
    b.click("form.bulk button[type=submit]").await;
    let note = b
        .wait_until(
            "(t => t && !t.hidden && t.textContent)(document.querySelector('form.bulk .size-error'))",
            "the form's sentence",
        )
        .await;
    assert_eq!(
        note,
        json!(format!(
            "These are {} files; one upload takes at most {limit}. Nothing was sent.",
            limit + 1
        ))
    );
    assert_eq!(app.admin().await.files().await.len(), 300, "nothing sent");
}
