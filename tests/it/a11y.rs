//! Accessibility in a real browser: axe-core (from the npm registry, see
//! `.ci/run`) on every page and state in headless Chromium with zero
//! violations of any impact, and the keyboard paths axe cannot judge — the
//! history drawer behaving as a dialog, the skip link, and phone widths
//! without sideways scrolling.
//!
//! Skips politely without Chromium or axe-core (fails under
//! `LATCH_REQUIRE_ALL=1`).

use std::path::PathBuf;

use crate::common::browser::{self, Browser, Driver, Options};
use crate::common::{self, ADMIN_PASSWORD, TestApp, USER_PASSWORD};
use serde_json::json;

/// The command that installs axe-core where the tests look by default.
const AXE_INSTALL: &str = "npm install --prefix target/axe axe-core@4.14";

/// axe.min.js: `LATCH_AXE_JS`, else where [`AXE_INSTALL`] puts it.
fn axe_path() -> Option<PathBuf> {
    let path = match std::env::var_os("LATCH_AXE_JS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/axe/node_modules/axe-core/axe.min.js"),
    };
    if path.is_file() {
        return Some(path);
    }
    if common::require_all() {
        panic!(
            "axe-core is required (LATCH_REQUIRE_ALL=1): {} not found; run `{AXE_INSTALL}` or set LATCH_AXE_JS",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: axe-core not found at {}; run `{AXE_INSTALL}` (or set LATCH_AXE_JS) to run this test",
        path.display()
    );
    None
}

/// A session with axe-core injected into every document it loads (through
/// DevTools, so the page's Content-Security-Policy does not apply to it).
async fn axe_session(driver: &Driver, axe: &str, opts: Options) -> Browser {
    let b = driver.session(opts).await;
    b.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": axe }),
    )
    .await;
    b.script_timeout(std::time::Duration::from_secs(120)).await;
    b
}

/// axe's violations on the current page, one line per failing element.
async fn violations(b: &Browser, state: &str) -> Vec<String> {
    b.settle().await;
    let v = b
        .exec_async(
            "const done = arguments[arguments.length - 1];
             if (!window.axe) { done({error: 'axe-core is not loaded in this page'}); return; }
             axe.run(document, {resultTypes: ['violations']})
               .then(r => done(r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.map(n => [n.target.join(' '), n.failureSummary.replace(/\\s+/g, ' ')])
               }))))
               .catch(e => done({error: String(e)}));",
            json!([]),
        )
        .await;
    if let Some(err) = v.get("error") {
        return vec![format!("{state}: axe did not run: {err}")];
    }
    let mut out = Vec::new();
    for violation in v.as_array().into_iter().flatten() {
        for node in violation["nodes"].as_array().into_iter().flatten() {
            out.push(format!(
                "{state}: {} ({}): {} — at `{}`: {}",
                violation["id"].as_str().unwrap_or("?"),
                violation["impact"].as_str().unwrap_or("?"),
                violation["help"].as_str().unwrap_or(""),
                node[0].as_str().unwrap_or(""),
                node[1].as_str().unwrap_or(""),
            ));
        }
    }
    out
}

/// Some files in every state a card can show: free, held by the viewer,
/// held by someone else with the viewer queued, reserved for the viewer.
struct Shop {
    app: TestApp,
    /// Checked in twice, held by dana: history with a diff.
    bracket: u64,
    commits: (String, String),
}

async fn shop() -> Shop {
    let app = TestApp::spawn_with(|c| c.max_upload = 64 * 1024).await;
    let dana = app.user("dana").await;
    let marco = app.user("marco").await;
    let bracket = dana
        .upload_ok("parts/bracket.nc", b"G21\nG0 X0 Y0\nM30\n")
        .await;
    dana.upload_ok("parts/base-plate.nc", b"G21\nM30\n").await;
    let housing = marco
        .upload_ok("fixtures/pump-housing.nc", b"G21\nG1 X5\n")
        .await;
    let jaws = marco.upload_ok("fixtures/soft-jaws.nc", b"G21\n").await;
    assert_eq!(dana.checkout(bracket, "").await.status(), 200);
    let resp = dana
        .checkin(bracket, b"G21\nG0 X1 Y0\nM30\n", "Moved the start", "minor")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        dana.checkout(bracket, "Adding chamfers").await.status(),
        200
    );
    assert_eq!(
        marco.checkout(housing, "Bore tolerance").await.status(),
        200
    );
    // Dana waits for the housing; the soft jaws pass from marco to dana
    // through the queue, so they are reserved for her.
    assert_eq!(
        dana.post_empty(&format!("/api/files/{housing}/queue"))
            .await
            .status(),
        200
    );
    assert_eq!(marco.checkout(jaws, "").await.status(), 200);
    let _ = dana.post_empty(&format!("/api/files/{jaws}/queue")).await;
    let _ = marco.cancel(jaws).await;
    let history = dana.history(bracket).await;
    let commit = |i: usize| {
        history[i]["commit"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let commits = (commit(1), commit(0));
    Shop {
        app,
        bracket,
        commits,
    }
}

/// Opens the history drawer of file `id` from its card.
async fn open_history(b: &Browser, id: u64) {
    b.click(&format!("#file-{id} a[href$='/history']")).await;
    b.wait_for_element("#panel .history").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_and_state_passes_axe_with_no_violations() {
    if !browser::browser_available() {
        return;
    }
    let Some(axe_file) = axe_path() else {
        return;
    };
    let axe = std::fs::read_to_string(&axe_file).expect("read axe.min.js");
    let shop = shop().await;
    let app = &shop.app;
    let id = shop.bracket;
    let driver = Driver::start().await;
    let mut found: Vec<String> = Vec::new();

    // Signed out: a refused sign-in.
    let b = axe_session(&driver, &axe, Options::default()).await;
    b.goto(&app.url("/login")).await;
    b.type_into("input[name=username]", "dana").await;
    b.type_into("input[name=password]", "not the password")
        .await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.wait_for_element("main .error").await;
    found.extend(violations(&b, "login with an error").await);

    // Dana's pages.
    b.login(&app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    found.extend(violations(&b, "dashboard").await);
    // The table view, once the dashboard has one (today `?view=table`
    // is ignored and this repeats the cards).
    b.goto(&app.url("/?view=table")).await;
    b.wait_live().await;
    found.extend(violations(&b, "dashboard ?view=table").await);
    b.goto(&app.url("/")).await;
    b.wait_live().await;
    open_history(&b, id).await;
    found.extend(violations(&b, "history drawer").await);
    b.click("#panel a[href*='/diff?from=']").await;
    b.wait_for_element("#panel .comparison").await;
    found.extend(violations(&b, "diff in the drawer").await);
    b.click("#panel a[href$='/history']").await;
    b.click("#panel a[href*='/preview?rev=']").await;
    b.wait_for_element("#panel .preview").await;
    found.extend(violations(&b, "preview in the drawer").await);
    let (from, to) = &shop.commits;
    for (path, state) in [
        (format!("/files/{id}/history"), "history page"),
        (format!("/files/{id}/preview?rev={to}"), "preview page"),
        (format!("/files/{id}/diff?from={from}&to={to}"), "diff page"),
        ("/account".to_string(), "account"),
        ("/notifications".to_string(), "notifications"),
        ("/activity".to_string(), "activity"),
        ("/files/999999/history".to_string(), "404 page"),
    ] {
        b.goto(&app.url(&path)).await;
        b.wait_until("document.readyState === 'complete'", state)
            .await;
        found.extend(violations(&b, state).await);
    }

    // An upload over the limit, posted as a plain form: Latch's 413 page.
    b.goto(&app.url("/")).await;
    b.exec(
        "const f = document.createElement('form');
         f.method = 'post'; f.action = '/files'; f.enctype = 'multipart/form-data';
         const csrf = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
         f.innerHTML = '<input name=_csrf><input name=path value=\"parts/huge.nc\"><input type=file name=file>';
         f.querySelector('[name=_csrf]').value = csrf;
         const dt = new DataTransfer();
         dt.items.add(new File([new Uint8Array(200 * 1024)], 'huge.nc'));
         f.querySelector('[type=file]').files = dt.files;
         document.body.append(f); f.submit();",
        json!([]),
    )
    .await;
    b.wait_until(
        "document.readyState === 'complete' && document.body.innerText.includes('413')",
        "the 413 page",
    )
    .await;
    found.extend(violations(&b, "413 page").await);

    // Dark, and a phone.
    let dark = Options {
        color_scheme: "dark",
        ..Options::default()
    };
    let phone = Options {
        width: 390,
        height: 844,
        ..Options::default()
    };
    for (options, how) in [(dark, "dark"), (phone, "phone")] {
        let b = axe_session(&driver, &axe, options).await;
        b.login(&app.base, "dana", USER_PASSWORD).await;
        b.wait_live().await;
        found.extend(violations(&b, &format!("dashboard, {how}")).await);
        open_history(&b, id).await;
        found.extend(violations(&b, &format!("history drawer, {how}")).await);
    }

    // The admin's pages.
    let admin = axe_session(&driver, &axe, Options::default()).await;
    admin.login(&app.base, "admin", ADMIN_PASSWORD).await;
    admin.wait_live().await;
    found.extend(violations(&admin, "dashboard, admin").await);
    for (path, state) in [("/admin/users", "users"), ("/admin/locks", "stale locks")] {
        admin.goto(&app.url(path)).await;
        admin
            .wait_until("document.readyState === 'complete'", state)
            .await;
        found.extend(violations(&admin, state).await);
    }
    drop(admin);

    // The first run's set-up page (with its "open the link" refusal).
    let fresh = TestApp::spawn_with(|c| c.admin_password = None).await;
    let setup = axe_session(&driver, &axe, Options::default()).await;
    setup.goto(&fresh.url("/setup")).await;
    setup.wait_for_element("main h1").await;
    found.extend(violations(&setup, "setup").await);

    found.dedup();
    assert!(
        found.is_empty(),
        "axe-core found {} violation(s):\n{}",
        found.len(),
        found.join("\n")
    );
}

/// Pressing keys one at a time: Tab (or Shift+Tab) `n` times.
async fn tab(b: &Browser, n: usize, shift: bool) {
    for _ in 0..n {
        if shift {
            let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": "\u{E008}"}, {"type": "keyDown", "value": "\u{E004}"},
                {"type": "keyUp", "value": "\u{E004}"}, {"type": "keyUp", "value": "\u{E008}"}
            ]}]});
            b.actions(actions).await;
        } else {
            b.press("\u{E004}").await;
        }
    }
}

/// What has focus: `id`, else tag and text, for a readable failure.
const FOCUSED: &str = "const a = document.activeElement;
    return a ? (a.id || (a.tagName + ' ' + (a.getAttribute('href') || a.textContent.trim().slice(0, 40)))) : null;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_drawer_takes_focus_keeps_it_and_gives_it_back_on_escape() {
    if !browser::browser_available() {
        return;
    }
    let shop = shop().await;
    let id = shop.bracket;
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&shop.app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    let opener = format!("#file-{id} a[href$='/history']");
    // Reached by keyboard: focus the link, then Enter.
    b.exec(
        "document.querySelector(arguments[0]).focus();",
        json!([opener]),
    )
    .await;
    b.press("\u{E007}").await;
    b.wait_for_element("#panel .history").await;
    b.wait_until(
        "document.activeElement && document.activeElement.id === 'panel-title'",
        "focus on the drawer's heading",
    )
    .await;
    let dialog = b
        .exec(
            "const p = document.getElementById('panel');
             return [p.getAttribute('role'), p.getAttribute('aria-modal'),
                     document.getElementById(p.getAttribute('aria-labelledby')).textContent];",
            json!([]),
        )
        .await;
    assert_eq!(dialog[0], json!("dialog"), "{dialog}");
    assert_eq!(dialog[1], json!("true"), "{dialog}");
    assert!(
        dialog[2].as_str().unwrap_or("").contains("bracket.nc"),
        "{dialog}"
    );
    // Tab stays inside while it is open, both ways round.
    let stops = b
        .exec(
            "return [...document.querySelectorAll('#panel a[href], #panel button')].filter(e => e.getClientRects().length).length",
            json!([]),
        )
        .await
        .as_u64()
        .unwrap_or(0) as usize;
    assert!(stops >= 3, "the drawer has controls: {stops}");
    for n in 1..=stops + 2 {
        tab(&b, 1, false).await;
        let inside = b
            .exec(
                "return document.getElementById('panel').contains(document.activeElement)",
                json!([]),
            )
            .await;
        let at = b.exec(FOCUSED, json!([])).await;
        assert_eq!(inside, json!(true), "Tab {n} left the drawer for {at}");
    }
    for n in 1..=stops + 2 {
        tab(&b, 1, true).await;
        let inside = b
            .exec(
                "return document.getElementById('panel').contains(document.activeElement)",
                json!([]),
            )
            .await;
        let at = b.exec(FOCUSED, json!([])).await;
        assert_eq!(
            inside,
            json!(true),
            "Shift+Tab {n} left the drawer for {at}"
        );
    }
    // A link inside swaps the drawer's content: focus goes to the new heading.
    b.click("#panel a[href*='/preview?rev=']").await;
    b.wait_for_element("#panel .preview").await;
    b.wait_until(
        "document.activeElement && document.activeElement.id === 'panel-title'",
        "focus on the preview's heading",
    )
    .await;
    // Esc closes it and focus returns to the History link that opened it.
    b.press("\u{E00C}").await;
    b.wait_until(
        "!document.querySelector('#panel > *')",
        "the drawer to close",
    )
    .await;
    let back = b
        .exec(
            "return document.activeElement === document.querySelector(arguments[0]);",
            json!([opener]),
        )
        .await;
    let at = b.exec(FOCUSED, json!([])).await;
    assert_eq!(back, json!(true), "focus after Esc is on {at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_skip_link_is_the_first_tab_stop_and_moves_focus_to_the_file_list() {
    if !browser::browser_available() {
        return;
    }
    let shop = shop().await;
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&shop.app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    b.exec(
        "document.activeElement && document.activeElement.blur();",
        json!([]),
    )
    .await;
    tab(&b, 1, false).await;
    let first = b
        .exec(
            "const a = document.activeElement, r = a.getBoundingClientRect();
             return [a.className, a.textContent, r.top >= 0 && r.bottom <= innerHeight && r.width > 0];",
            json!([]),
        )
        .await;
    assert_eq!(first[0], json!("skip-link"), "first Tab: {first}");
    assert_eq!(first[1], json!("Skip to files"), "{first}");
    assert_eq!(first[2], json!(true), "visible when focused: {first}");
    // The header's Live / Reconnecting… indicator is a status region, so
    // a screen reader announces the change.
    let live = b
        .exec(
            "const s = document.getElementById('live-status'); return [s.getAttribute('role'), s.textContent];",
            json!([]),
        )
        .await;
    assert_eq!(live, json!(["status", "Live"]));
    b.press("\u{E007}").await;
    b.wait_until(
        "document.activeElement && document.activeElement.id === 'file-list'",
        "focus on the file list",
    )
    .await;
    // The next Tab is inside the list, not back in the header.
    tab(&b, 1, false).await;
    let inside = b
        .exec(
            "return document.getElementById('file-list').contains(document.activeElement)",
            json!([]),
        )
        .await;
    let at = b.exec(FOCUSED, json!([])).await;
    assert_eq!(inside, json!(true), "Tab after the skip link went to {at}");
}

/// Whether anything scrolls sideways: the page, or an element inside it
/// (a table in a scroll box); the offenders, named.
const SIDEWAYS: &str = "const out = [];
    const se = document.scrollingElement;
    if (se.scrollWidth > innerWidth) out.push('page ' + se.scrollWidth + ' > ' + innerWidth);
    for (const el of document.querySelectorAll(arguments[0])) {
      if (el.scrollWidth > el.clientWidth + 1) out.push(el.tagName + '.' + el.className + ' ' + el.scrollWidth + ' > ' + el.clientWidth);
      const r = el.getBoundingClientRect();
      if (r.right > innerWidth + 1) out.push(el.tagName + '.' + el.className + ' ends at ' + r.right);
    }
    for (const b of document.querySelectorAll(arguments[1])) {
      const r = b.getBoundingClientRect();
      if (r.width > 0 && (r.right > innerWidth + 1 || r.left < -1)) out.push('off screen: ' + b.textContent.trim() + ' at ' + r.left + '..' + r.right);
    }
    return out;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_users_fit_a_phone_without_sideways_scrolling() {
    if !browser::browser_available() {
        return;
    }
    let shop = shop().await;
    let app = &shop.app;
    let id = shop.bracket;
    // A long display name, to see it wrap between words only.
    let admin = app.admin().await;
    admin.create_user("christophermontgomery", "user").await;
    let driver = Driver::start().await;
    let phone = Options {
        width: 390,
        height: 844,
        ..Options::default()
    };
    let b = driver.session(phone.clone()).await;
    b.login(&app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    b.screenshot("a11y-phone-dashboard").await;
    let off = b
        .exec(SIDEWAYS, json!(["main, .toolbar", "main .btn"]))
        .await;
    assert_eq!(off, json!([]), "the dashboard at 390 px");
    open_history(&b, id).await;
    b.screenshot("a11y-phone-history-drawer").await;
    let off = b
        .exec(SIDEWAYS, json!(["#panel, #panel .table", "#panel .btn"]))
        .await;
    assert_eq!(off, json!([]), "the history drawer at 390 px");
    b.goto(&app.url(&format!("/files/{id}/history"))).await;
    b.wait_for_element("main .history").await;
    b.screenshot("a11y-phone-history-page").await;
    let off = b
        .exec(SIDEWAYS, json!(["main, main .table", "main .history .btn"]))
        .await;
    assert_eq!(off, json!([]), "the history page at 390 px");

    let a = driver.session(phone).await;
    a.login(&app.base, "admin", common::ADMIN_PASSWORD).await;
    a.goto(&app.url("/admin/users")).await;
    a.wait_for_element("main table.users").await;
    a.screenshot("a11y-phone-users").await;
    let off = a
        .exec(
            SIDEWAYS,
            json!([
                "main, main .table",
                "main .table .btn, main .table select, main .table input"
            ]),
        )
        .await;
    assert_eq!(off, json!([]), "the users page at 390 px");
    // Every column is shown, and no name is broken inside a word: each
    // username's text sits on one line.
    let hidden = a
        .exec(
            "return [...document.querySelectorAll('table.users td')].filter(td => td.getClientRects().length === 0 || td.getBoundingClientRect().width < 1).length",
            json!([]),
        )
        .await;
    assert_eq!(hidden, json!(0), "hidden cells on the users page");
    let broken = a
        .exec(
            "return [...document.querySelectorAll('table.users td code')].filter(c => c.getClientRects().length > 1).map(c => c.textContent);",
            json!([]),
        )
        .await;
    assert_eq!(broken, json!([]), "usernames broken across lines");
}

/// The contrast ratio of an element's text on its own background (both
/// from computed styles; `rgb()` or `color(srgb …)`), as `[ratio, fg, bg]`.
const CONTRAST: &str = "const el = document.querySelector(arguments[0]);
    el.getAnimations().forEach(a => a.finish()); // colour transitions: their end state
    const cs = getComputedStyle(el);
    const parse = c => { const n = c.match(/[\\d.]+/g).map(Number);
      return c.startsWith('color(') ? n.slice(0, 3).map(v => v * 255) : n.slice(0, 3); };
    const lum = c => { const [r, g, b] = parse(c).map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
    const a = lum(cs.color), b = lum(cs.backgroundColor);
    return [Math.round((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) * 100) / 100, cs.color, cs.backgroundColor];";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_button_stays_readable_while_hovered_in_both_schemes() {
    if !browser::browser_available() {
        return;
    }
    let shop = shop().await;
    let driver = Driver::start().await;
    for scheme in ["light", "dark"] {
        let b = driver
            .session(Options {
                color_scheme: scheme,
                ..Options::default()
            })
            .await;
        b.login(&shop.app.base, "admin", ADMIN_PASSWORD).await;
        b.wait_live().await;
        let summary = "details.danger-zone > summary";
        let el = b.wait_for_element(summary).await;
        let hover = json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "origin": {"element-6066-11e4-a52e-4f735466cecf": el.id}, "x": 0, "y": 0}]}]});
        b.actions(hover.clone()).await;
        let closed = b.exec(CONTRAST, json!([summary])).await;
        b.click_el(&el).await;
        b.actions(hover).await;
        let open = b.exec(CONTRAST, json!([summary])).await;
        for (state, c) in [("hovered", &closed), ("hovered while open", &open)] {
            assert!(
                c[0].as_f64().unwrap_or(0.0) >= 4.5,
                "{scheme}: Override… {state}: contrast {c}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cards_actions_are_one_tab_stop_and_the_arrow_keys_move_among_them() {
    if !browser::browser_available() {
        return;
    }
    let shop = shop().await;
    let driver = Driver::start().await;
    let b = driver.session(Options::default()).await;
    b.login(&shop.app.base, "dana", USER_PASSWORD).await;
    b.wait_live().await;
    // From a free card's tick box, Tab until focus leaves the card.
    let card = b
        .exec(
            "const c = document.querySelector('article.card[data-state=available]');
             c.querySelector('input[name=ids]').focus(); return c.id;",
            json!([]),
        )
        .await;
    let card = card.as_str().expect("a free card").to_string();
    let inside =
        format!("return document.getElementById('{card}').contains(document.activeElement)");
    let mut stops = vec![b.exec(FOCUSED, json!([])).await];
    loop {
        tab(&b, 1, false).await;
        if b.exec(&inside, json!([])).await != json!(true) {
            break;
        }
        stops.push(b.exec(FOCUSED, json!([])).await);
        assert!(stops.len() < 10, "Tab never leaves the card: {stops:?}");
    }
    assert_eq!(
        stops.len(),
        3,
        "tick box, comment, the actions as one stop: {stops:?}"
    );
    let toolbar = b
        .exec(
            "const a = document.activeElement; return [a.tagName, a.textContent.trim(),
               a.closest('.card-actions') && a.closest('.card-actions').getAttribute('role')];",
            json!([]),
        )
        .await;
    // Tab went on to the next card; come back to the actions.
    tab(&b, 1, true).await;
    let at = b.exec(FOCUSED, json!([])).await;
    assert_eq!(at, json!("BUTTON Check out"), "{toolbar} then back: {at}");
    let bar_role = b
        .exec(
            "return [document.activeElement.closest('.card-actions').getAttribute('role'),
                     document.activeElement.closest('.card-actions').getAttribute('aria-label')]",
            json!([]),
        )
        .await;
    assert_eq!(bar_role[0], json!("toolbar"), "{bar_role}");
    assert!(
        bar_role[1]
            .as_str()
            .unwrap_or("")
            .starts_with("Actions for "),
        "{bar_role}"
    );
    b.press("\u{E014}").await; // ArrowRight
    assert_eq!(
        b.exec(FOCUSED, json!([])).await,
        json!("BUTTON Check out & download")
    );
    b.press("\u{E010}").await; // End
    let last = b.exec(FOCUSED, json!([])).await;
    assert!(
        last.as_str().unwrap_or("").contains("/history"),
        "End goes to the last action: {last}"
    );
    b.press("\u{E014}").await; // ArrowRight wraps to the first
    assert_eq!(b.exec(FOCUSED, json!([])).await, json!("BUTTON Check out"));
    b.press("\u{E012}").await; // ArrowLeft wraps to the last
    assert_eq!(b.exec(FOCUSED, json!([])).await, last);
    // Leaving and coming back lands on the action last used.
    tab(&b, 1, false).await;
    tab(&b, 1, true).await;
    assert_eq!(b.exec(FOCUSED, json!([])).await, last);
}
