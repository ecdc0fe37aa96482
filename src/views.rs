//! Maud templates: the page layout, the dashboard and its file cards, the
//! live fragments pushed to browsers, history, activity, login and admin.
//! Every user-supplied string goes through maud's escaping.

use maud::{DOCTYPE, Markup, html};

use crate::auth::{CSRF_FIELD, Session};
use crate::domain::Role;
use crate::files::Version;
use crate::store::{Event, EventKind, FileRecord, TokenRecord, UserRecord, now};

/// What decides which buttons a viewer gets. Live fragments are rendered
/// once per class, never per connection.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub username: String,
    pub admin: bool,
    /// Present for page renders (plain forms need it); live fragments rely
    /// on the `X-CSRF-Token` header htmx sends from `<body hx-headers>`.
    pub csrf: Option<String>,
}

impl Viewer {
    pub fn of(session: &Session) -> Viewer {
        Viewer {
            username: session.user.username.clone(),
            admin: session.user.role == Role::Admin,
            csrf: Some(session.csrf_token.clone()),
        }
    }
}

/// Counts shown in the toolbar, kept current by live pushes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub files: usize,
    pub locked: usize,
}

impl Counters {
    pub fn of(files: &[FileRecord]) -> Counters {
        Counters {
            files: files.len(),
            locked: files.iter().filter(|f| f.lock.is_some()).count(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub q: String,
    pub state: String,
    pub sort: String,
}

impl Filters {
    pub fn matches(&self, f: &FileRecord, viewer: &Viewer) -> bool {
        let state_ok = match self.state.as_str() {
            "available" => f.lock.is_none(),
            "locked" => f.lock.is_some(),
            "mine" => f.locked_by() == Some(viewer.username.as_str()),
            _ => true,
        };
        if !state_ok {
            return false;
        }
        let q = self.q.trim().to_lowercase();
        q.is_empty()
            || f.path.to_lowercase().contains(&q)
            || f.description.to_lowercase().contains(&q)
            || f.locked_by().is_some_and(|o| o.contains(&q))
    }

    /// Sorts in place and returns files grouped by folder, folders in name order.
    /// Sorts, keeps the first `limit`, and groups by folder in name order.
    pub fn arrange<'a>(
        &self,
        files: &mut Vec<&'a FileRecord>,
        limit: usize,
    ) -> Vec<(String, Vec<&'a FileRecord>)> {
        match self.sort.as_str() {
            "modified" => {
                files.sort_by(|a, b| b.modified_at.cmp(&a.modified_at).then(a.path.cmp(&b.path)))
            }
            "revision" => {
                files.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.path.cmp(&b.path)))
            }
            "size" => files.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path))),
            _ => files.sort_by(|a, b| a.path.cmp(&b.path)),
        }
        files.truncate(limit);
        let mut groups: std::collections::BTreeMap<String, Vec<&FileRecord>> = Default::default();
        for f in files.iter() {
            groups
                .entry(folder_of(&f.path).to_string())
                .or_default()
                .push(f);
        }
        groups.into_iter().collect()
    }
}

/// How many recent events the dashboard lists (and keeps, as more arrive).
pub const DASHBOARD_ACTIVITY: usize = 20;

pub fn folder_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// The element id of a folder's card container.
pub fn folder_dom_id(folder: &str) -> String {
    let mut id = String::from("folder-");
    for b in folder.bytes() {
        if b.is_ascii_alphanumeric() {
            id.push(b.to_ascii_lowercase() as char);
        } else {
            id.push_str(&format!("_{b:02x}"));
        }
    }
    if folder.is_empty() {
        id.push_str("_root");
    }
    id
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

pub fn ago(at: i64) -> String {
    let secs = (now() - at).max(0);
    match secs {
        0..=44 => "just now".into(),
        45..=89 => "a minute ago".into(),
        90..=3569 => format!("{} min ago", (secs + 30) / 60),
        3570..=5399 => "an hour ago".into(),
        5400..=86_399 => format!("{} h ago", (secs + 1800) / 3600),
        86_400..=172_799 => "yesterday".into(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

pub fn iso_time(at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn time_ago(at: i64) -> Markup {
    html! { time datetime=(iso_time(at)) title=(iso_time(at)) data-relative { (ago(at)) } }
}

fn csrf_field(viewer: &Viewer) -> Markup {
    html! {
        @if let Some(token) = &viewer.csrf {
            input type="hidden" name=(CSRF_FIELD) value=(token);
        }
    }
}

/// A form that posts plainly without JS and through htmx with it; the
/// response carries out-of-band swaps only.
fn action_form(viewer: &Viewer, action: &str, class: &str, body: Markup) -> Markup {
    html! {
        // One class attribute: a second `class=` would be ignored by browsers.
        form class=(format!("inline {class}")) method="post" action=(action) hx-post=(action) hx-swap="none" {
            (csrf_field(viewer))
            (body)
        }
    }
}

pub struct Page<'a> {
    pub title: &'a str,
    pub session: Option<&'a Session>,
    pub nav: &'a str,
    pub flash: Option<Flash>,
    /// The event sequence the page reflects; enables live updates.
    pub live_seq: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Flash {
    pub error: bool,
    pub text: String,
}

pub fn layout(page: Page<'_>, content: Markup) -> Markup {
    let headers = page
        .session
        .map(|s| serde_json::json!({ "X-CSRF-Token": s.csrf_token }).to_string());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="htmx-config" content=r#"{"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"[45]..","swap":true,"error":false}],"allowScriptTags":false,"includeIndicatorStyles":false}"#;
                title { (page.title) " · Latch" }
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/vendor/htmx.min.js" defer {}
                script src="/assets/vendor/htmx-ext-ws.js" defer {}
                script src="/assets/vendor/htmx-ext-sse.js" defer {}
                script src="/assets/live.js" defer {}
            }
            body hx-headers=[headers]
                data-live=(if page.live_seq.is_some() { "on" } else { "off" })
                data-user=[page.session.map(|s| s.user.username.as_str())]
                data-role=[page.session.map(|s| s.user.role.as_str())] {
                header.topbar {
                    a.brand href="/" { span.brand-mark aria-hidden="true" { "◆" } " Latch" }
                    @if let Some(session) = page.session {
                        nav.nav {
                            a href="/" aria-current=[(page.nav == "files").then_some("page")] { "Files" }
                            a href="/activity" aria-current=[(page.nav == "activity").then_some("page")] { "Activity" }
                            @if session.user.role == Role::Admin {
                                a href="/admin/users" aria-current=[(page.nav == "users").then_some("page")] { "Users" }
                            }
                        }
                        @if page.live_seq.is_some() {
                            span #live-status .live-status data-state="connecting" title="Live updates" { "Connecting…" }
                        }
                        span.who {
                            a href="/account" title="Your account and API tokens" { (session.user.display_name) }
                            @if session.user.role == Role::Admin { " " span.badge { "admin" } }
                        }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name=(CSRF_FIELD) value=(session.csrf_token);
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                @if let Some(seq) = page.live_seq {
                    div #live-seq data-seq=(seq) hidden {}
                }
                main.container {
                    @if let Some(flash) = &page.flash {
                        p class=(if flash.error { "error" } else { "notice" }) role="status" { (flash.text) }
                    }
                    (content)
                }
                div #panel .panel {}
                div #toasts .toasts aria-live="polite" {}
            }
        }
    }
}

pub fn counters(c: Counters, oob: bool) -> Markup {
    html! {
        div #counters .counters hx-swap-oob=[oob.then_some("true")] {
            span.counter { b { (c.files) } " files" }
            span.counter { b { (c.locked) } " checked out" }
            span.counter { b { (c.files - c.locked.min(c.files)) } " available" }
        }
    }
}

pub struct Dashboard<'a> {
    pub files: &'a [FileRecord],
    pub viewer: &'a Viewer,
    pub filters: &'a Filters,
    pub recent: &'a [Event],
    pub max_upload: u64,
}

pub fn dashboard(d: Dashboard<'_>) -> Markup {
    html! {
        section.toolbar {
            (counters(Counters::of(d.files), false))
            form #filters .filters method="get" action="/" hx-get="/files" hx-target="#file-list" hx-swap="outerHTML"
                hx-trigger="input changed delay:250ms from:input[name=q], change from:select" hx-push-url="true" {
                label.sr-only for="q" { "Search" }
                input #q type="search" name="q" value=(d.filters.q) placeholder="Search files, descriptions, holders…" autocomplete="off";
                label.sr-only for="state" { "State" }
                select #state name="state" {
                    @for (value, label) in [("all", "All files"), ("available", "Available"), ("locked", "Checked out"), ("mine", "Checked out by me")] {
                        option value=(value) selected[d.filters.state == value] { (label) }
                    }
                }
                label.sr-only for="sort" { "Sort" }
                select #sort name="sort" {
                    @for (value, label) in [("path", "Name"), ("modified", "Last change"), ("revision", "Revision"), ("size", "Size")] {
                        option value=(value) selected[d.filters.sort == value] { (label) }
                    }
                }
                noscript { button.btn type="submit" { "Filter" } }
            }
            (upload_popover(d.viewer, d.max_upload))
        }
        div.layout {
            (file_list(d.files, d.viewer, d.filters))
            aside.side {
                h2 { "Recent activity" }
                // live.js trims the list to data-max as events arrive, so a
                // dashboard left open for weeks stays small.
                ol #activity-list .activity data-max=(DASHBOARD_ACTIVITY) {
                    @for event in d.recent { (activity_line(event)) }
                }
                p { a href="/activity" { "All activity →" } }
            }
        }
    }
}

fn upload_popover(viewer: &Viewer, max_upload: u64) -> Markup {
    html! {
        details.popover.upload {
            summary.btn.primary { "Upload file" }
            div.popover-body {
                form.stack method="post" action="/files" enctype="multipart/form-data"
                    hx-post="/files" hx-encoding="multipart/form-data" hx-swap="none" {
                    (csrf_field(viewer))
                    label { "File" input type="file" name="file" required; }
                    label { "Path in the vault"
                        input type="text" name="path" placeholder="parts/1234567.mcam (empty: the file's name)" maxlength="255";
                    }
                    label { "Description" input type="text" name="description" maxlength="2000"; }
                    label { "Initial revision" input type="text" name="revision" value="1.0" pattern="[0-9]+\\.[0-9]+" required; }
                    p.muted { "Up to " (human_size(max_upload)) "." }
                    button.btn.primary type="submit" { "Upload" }
                }
            }
        }
    }
}

/// Cards on one page at most: a list of thousands helps nobody, and the
/// page stays quick to render and to keep live.
pub const MAX_CARDS: usize = 500;

pub fn file_list(files: &[FileRecord], viewer: &Viewer, filters: &Filters) -> Markup {
    let mut shown: Vec<&FileRecord> = files
        .iter()
        .filter(|f| filters.matches(f, viewer))
        .collect();
    let matching = shown.len();
    let groups = filters.arrange(&mut shown, MAX_CARDS);
    html! {
        div #file-list .file-list {
            @if files.is_empty() {
                p.empty { "No files yet. Upload the first one with " b { "Upload file" } "." }
            } @else if groups.is_empty() {
                p.empty { "No file matches these filters." }
            }
            @if matching > MAX_CARDS {
                p.notice.truncated {
                    "Showing the first " (MAX_CARDS) " of " (matching) " matching files. Search or filter to find the rest."
                }
            }
            @for (folder, files) in &groups {
                section.folder data-folder=(folder) {
                    h2.folder-name { @if folder.is_empty() { "/" } @else { (folder) "/" } }
                    div.cards id=(folder_dom_id(folder)) {
                        @for f in files { (card(f, viewer, false)) }
                    }
                }
            }
        }
    }
}

pub fn card(f: &FileRecord, viewer: &Viewer, oob: bool) -> Markup {
    let holder = f.locked_by();
    let mine = holder == Some(viewer.username.as_str());
    let state = if f.lock.is_some() {
        "locked"
    } else {
        "available"
    };
    let (dir, name) = match f.path.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n.to_string()),
        None => (String::new(), f.path.clone()),
    };
    let base = format!("/files/{}", f.id);
    html! {
        article.card.mine[mine] id=(format!("file-{}", f.id)) data-state=(state) data-locked-by=[holder]
            data-path=(f.path) hx-swap-oob=[oob.then_some("true")] {
            header.card-head {
                h3.card-path title=(f.path) { span.dir { (dir) } (name) }
                span.badge.rev title="Revision" { "rev " (f.revision) }
                @if mine {
                    span.badge.state.mine { "Checked out by you" }
                } @else if let Some(h) = holder {
                    span.badge.state.locked { "Checked out by " (h) }
                } @else {
                    span.badge.state.available { "Available" }
                }
            }
            @if !f.description.is_empty() { p.card-desc { (f.description) } }
            dl.card-meta {
                div { dt { "Size" } dd { (human_size(f.size)) } }
                div { dt { "Last change" } dd { (time_ago(f.modified_at)) " by " (f.modified_by) } }
            }
            @if let Some(lock) = &f.lock {
                div.lock-info {
                    "Checked out by " b { @if mine { "you" } @else { (lock.owner) } } " " (time_ago(lock.locked_at))
                    @if let Some(c) = &lock.comment { " — " q.lock-comment { (c) } }
                }
            }
            div.card-actions {
                @if mine {
                    details.popover.checkin {
                        summary.btn.primary { "Check in…" }
                        div.popover-body {
                            form.stack method="post" action=(format!("{base}/checkin")) enctype="multipart/form-data"
                                hx-post=(format!("{base}/checkin")) hx-encoding="multipart/form-data" hx-swap="none" {
                                (csrf_field(viewer))
                                label { "New version" input type="file" name="file" required; }
                                label { "What changed" textarea name="message" rows="3" required maxlength="5000" {} }
                                fieldset.bump {
                                    legend { "Revision" }
                                    // A bump past the revision limit is refused; offer only those that fit.
                                    @let minor = f.revision.bump(crate::domain::Bump::Minor).ok();
                                    @let major = f.revision.bump(crate::domain::Bump::Major).ok();
                                    label { input type="radio" name="bump" value="minor" checked[minor.is_some()] disabled[minor.is_none()]; " Minor → " @if let Some(r) = minor { (r) } @else { "at the limit" } }
                                    label { input type="radio" name="bump" value="major" checked[minor.is_none() && major.is_some()] disabled[major.is_none()]; " Major → " @if let Some(r) = major { (r) } @else { "at the limit" } }
                                }
                                button.btn.primary type="submit" { "Check in" }
                            }
                        }
                    }
                    (action_form(viewer, &format!("{base}/cancel"), "cancel", html! {
                        button.btn type="submit" { "Cancel check-out" }
                    }))
                } @else if holder.is_none() {
                    (action_form(viewer, &format!("{base}/checkout"), "checkout", html! {
                        label.sr-only for=(format!("comment-{}", f.id)) { "Comment" }
                        input.comment id=(format!("comment-{}", f.id)) type="text" name="comment" maxlength="500" placeholder="Comment (optional)";
                        button.btn.primary type="submit" { "Check out" }
                    }))
                }
                @if viewer.admin && holder.is_some() && !mine {
                    details.popover.danger-zone {
                        summary.btn.danger { "Override…" }
                        div.popover-body {
                            p { "Take the lock away from " b { (holder.unwrap_or_default()) } "? Their unsaved work stays on their machine; they will be told." }
                            (action_form(viewer, &format!("{base}/override"), "override", html! {
                                button.btn.danger type="submit" { "Override check-out" }
                            }))
                        }
                    }
                }
                a.btn href=(format!("{base}/download")) download { "Download" }
                a.btn href=(format!("{base}/history")) hx-get=(format!("{base}/history")) hx-target="#panel" hx-swap="innerHTML" { "History" }
                @if viewer.admin && holder.is_none() {
                    details.popover.danger-zone {
                        summary.btn.danger { "Delete…" }
                        div.popover-body {
                            p { "Delete " b { (f.path) } "? Its history stays in Git, but the file leaves the list." }
                            (action_form(viewer, &format!("{base}/delete"), "delete", html! {
                                button.btn.danger type="submit" { "Delete file" }
                            }))
                        }
                    }
                }
            }
        }
    }
}

pub fn toast(kind: &str, text: &str) -> Markup {
    html! {
        div hx-swap-oob="beforeend:#toasts" {
            // A refusal interrupts (alert); news waits its turn (status).
            div class=(format!("toast toast-{kind}")) role=(if kind == "error" { "alert" } else { "status" }) { (text) }
        }
    }
}

pub fn event_sentence(e: &Event) -> String {
    let note = e.note.as_deref().filter(|n| !n.is_empty());
    let rev = e.revision.map(|r| r.to_string()).unwrap_or_default();
    match e.kind {
        EventKind::Created => format!("{} uploaded {} (rev {rev})", e.actor, e.path),
        EventKind::Locked => match note {
            Some(n) => format!("{} checked out {} — {n}", e.actor, e.path),
            None => format!("{} checked out {}", e.actor, e.path),
        },
        EventKind::Unlocked => format!("{} cancelled the check-out of {}", e.actor, e.path),
        EventKind::CheckedIn => match note {
            Some(n) => format!(
                "{} checked in {} rev {rev} — {}",
                e.actor,
                e.path,
                n.lines().next().unwrap_or("")
            ),
            None => format!("{} checked in {} rev {rev}", e.actor, e.path),
        },
        EventKind::Overridden => format!(
            "{} overrode {}'s check-out of {}",
            e.actor,
            e.previous_holder.as_deref().unwrap_or("someone"),
            e.path
        ),
        EventKind::Deleted => format!("{} deleted {}", e.actor, e.path),
    }
}

pub fn activity_line(e: &Event) -> Markup {
    html! {
        li.activity-line data-seq=(e.seq) data-kind=(e.kind.as_str()) {
            (time_ago(e.at)) " "
            span { (event_sentence(e)) }
            @if e.file.is_some() { " " a href=(format!("/files/{}/history", e.file_id)) aria-label="History" { "↗" } }
        }
    }
}

/// The toast a live event brings. The actor's own tab already has the
/// action's reply as a toast; live.js drops this one there (`data-actor`).
fn live_toast(e: &Event, kind: &str) -> Markup {
    html! {
        div hx-swap-oob="beforeend:#toasts" {
            div class=(format!("toast toast-{kind}")) role="status" data-actor=(e.actor) { (event_sentence(e)) }
        }
    }
}

/// The toast everyone but the previous holder gets for an override.
pub fn override_toast(e: &Event) -> String {
    live_toast(e, "info").into_string()
}

/// The live fragment for one event, for one class of viewer.
pub fn event_fragment(e: &Event, viewer: &Viewer, c: Counters) -> String {
    let toast_kind = match e.kind {
        EventKind::Overridden | EventKind::Deleted => "info",
        _ if e.actor == viewer.username => "success",
        _ => "info",
    };
    let markup = html! {
        @match &e.file {
            Some(f) if e.kind == EventKind::Created => {
                div.card-insert hx-swap-oob=(format!("beforeend:#{}", folder_dom_id(folder_of(&f.path)))) { (card(f, viewer, false)) }
            }
            Some(f) => { (card(f, viewer, true)) }
            None => { article id=(format!("file-{}", e.file_id)) hx-swap-oob="delete" {} }
        }
        (live_toast(e, toast_kind))
        ol hx-swap-oob="afterbegin:#activity-list" { (activity_line(e)) }
        (counters(c, true))
        div #live-seq data-seq=(e.seq) hidden hx-swap-oob="true" {}
    };
    markup.into_string()
}

/// The toast the holder of an overridden lock gets on top of the general fragment.
pub fn override_notice(e: &Event) -> String {
    let text = format!(
        "{} overrode your check-out of {}. Your lock is gone; check it out again before checking in.",
        e.actor, e.path
    );
    html! { (toast("error", &text)) }.into_string()
}

/// Sent when a client's resume point is older than the log: a full list.
pub fn resync_fragment(files: &[FileRecord], viewer: &Viewer, seq: u64) -> String {
    let list = file_list(files, viewer, &Filters::default());
    html! {
        div hx-swap-oob="outerHTML:#file-list" { (list) }
        (counters(Counters::of(files), true))
        div #live-seq data-seq=(seq) hidden hx-swap-oob="true" {}
    }
    .into_string()
}

pub fn history(f: &FileRecord, versions: &[Version], as_panel: bool) -> Markup {
    html! {
        section.history {
            header.panel-head {
                h2 { "History of " (f.path) }
                @if as_panel { button.btn.close type="button" data-close-panel aria-label="Close" { "×" } }
            }
            @if versions.is_empty() {
                p.empty { "No versions recorded." }
            } @else {
                table.table {
                    thead { tr { th { "Revision" } th { "Author" } th { "When" } th { "Message" } th {} } }
                    tbody {
                        @for v in versions {
                            tr {
                                td { b { (v.revision) } }
                                td { (v.author) }
                                td { (time_ago(v.at)) }
                                td.message { (v.message) }
                                td { a.btn href=(format!("/files/{}/download?rev={}", f.id, v.commit)) download { "Download" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn activity_page(events: &[Event]) -> Markup {
    html! {
        section {
            h1 { "Activity" }
            @if events.is_empty() { p.empty { "Nothing has happened yet." } }
            @else {
                table.table {
                    thead { tr { th { "#" } th { "When" } th { "Who" } th { "What" } } }
                    tbody {
                        @for e in events {
                            tr data-kind=(e.kind.as_str()) {
                                td.muted { (e.seq) }
                                td { (time_ago(e.at)) }
                                td { (e.actor) }
                                td { (event_sentence(e)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn login_page(error: Option<&str>, username: &str, allow_signup: bool) -> Markup {
    html! {
        section.auth-card {
            h1 { "Sign in to Latch" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/login" {
                label { "Username" input type="text" name="username" value=(username) autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button.btn.primary type="submit" { "Sign in" }
            }
            @if allow_signup {
                details {
                    summary { "New here? Create an account" }
                    form.stack method="post" action="/signup" {
                        label { "Username" input type="text" name="username" autocomplete="username" required; }
                        label { "Display name" input type="text" name="display_name"; }
                        label { "Password" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
                        button.btn type="submit" { "Create account" }
                    }
                }
            }
        }
    }
}

pub fn setup_page(token: &str, error: Option<&str>) -> Markup {
    html! {
        section.auth-card {
            h1 { "Welcome to Latch" }
            p { "Create the first admin account. Everyone else can be added from the Users page." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/setup" {
                input type="hidden" name="token" value=(token);
                label { "Username" input type="text" name="username" value="admin" autocomplete="username" required; }
                label { "Display name" input type="text" name="display_name"; }
                label { "Password" input type="password" name="password" autocomplete="new-password" minlength="8" required; }
                button.btn.primary type="submit" { "Create admin" }
            }
        }
    }
}

pub fn users_page(users: &[UserRecord], viewer: &Viewer) -> Markup {
    html! {
        section {
            h1 { "Users" }
            table.table {
                thead { tr { th { "Username" } th { "Name" } th { "Role" } th { "Status" } th { "Change" } } }
                tbody {
                    @for u in users {
                        tr {
                            td { code { (u.username) } }
                            td { (u.display_name) }
                            td { (u.role.as_str()) }
                            td { @if u.disabled { span.badge.state.locked { "disabled" } } @else { span.badge.state.available { "active" } } }
                            td {
                                form.inline method="post" action=(format!("/admin/users/{}", u.username)) {
                                    (csrf_field(viewer))
                                    select name="role" aria-label="Role" {
                                        option value="user" selected[u.role == Role::User] { "user" }
                                        option value="admin" selected[u.role == Role::Admin] { "admin" }
                                    }
                                    select name="disabled" aria-label="Status" {
                                        option value="false" selected[!u.disabled] { "active" }
                                        option value="true" selected[u.disabled] { "disabled" }
                                    }
                                    input type="password" name="password" placeholder="New password (optional)" autocomplete="new-password";
                                    button.btn type="submit" { "Save" }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Add a user" }
            form.stack.narrow method="post" action="/admin/users" {
                (csrf_field(viewer))
                label { "Username" input type="text" name="username" required pattern="[a-z0-9._\\-]{3,32}"; }
                label { "Display name" input type="text" name="display_name"; }
                label { "Password" input type="password" name="password" minlength="8" required autocomplete="new-password"; }
                label { "Role" select name="role" { option value="user" { "user" } option value="admin" { "admin" } } }
                button.btn.primary type="submit" { "Add user" }
            }
        }
    }
}

pub fn account_page(
    user: &UserRecord,
    tokens: &[TokenRecord],
    viewer: &Viewer,
    new_token: Option<&str>,
) -> Markup {
    html! {
        section {
            h1 { "Your account" }
            p { "Signed in as " code { (user.username) } " (" (user.role.as_str()) ")." }
            h2 { "API tokens" }
            p.muted { "For scripts and " code { "git lfs" } ": send " code { "Authorization: Bearer TOKEN" } ", or use the token as the password with HTTP Basic." }
            @if let Some(t) = new_token {
                p.notice { "Your new token — copy it now, it is shown only once: " br; code.token { (t) } }
            }
            @if !tokens.is_empty() {
                table.table {
                    thead { tr { th { "Name" } th { "Created" } th {} } }
                    tbody {
                        @for t in tokens {
                            tr {
                                td { (t.name) }
                                td { (time_ago(t.created_at)) }
                                td {
                                    form.inline method="post" action=(format!("/account/tokens/{}/revoke", t.id)) {
                                        (csrf_field(viewer))
                                        button.btn.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.inline method="post" action="/account/tokens" {
                (csrf_field(viewer))
                input type="text" name="name" placeholder="Token name, e.g. laptop git-lfs" required maxlength="64";
                button.btn type="submit" { "Create token" }
            }
            h2 { "Change password" }
            form.stack.narrow method="post" action="/account/password" {
                (csrf_field(viewer))
                label { "Current password" input type="password" name="current" required autocomplete="current-password"; }
                label { "New password" input type="password" name="password" required minlength="8" autocomplete="new-password"; }
                button.btn type="submit" { "Change password" }
            }
        }
    }
}

pub fn error_page(status: u16, text: &str) -> Markup {
    html! {
        section.auth-card {
            h1 { (status) }
            p { (text) }
            p { a href="/" { "Back to the files" } }
        }
    }
}
