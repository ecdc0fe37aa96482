//! Maud templates. Here: the page layout, toasts, the error page and the
//! small pieces every page uses; [`files`] has the dashboard, live
//! fragments, history and activity; [`card`] a file's card; [`people`] the sign-in, set-up, users
//! and account pages; [`locks`] the admins' stale locks; [`sets`] the
//! controls for several files at once. Every user-supplied string goes
//! through maud's escaping.

mod activity;
mod card;
mod content;
mod files;
mod inbox;
mod locks;
mod people;
mod presence;
mod sets;

use std::time::Duration;

use maud::{DOCTYPE, Markup, html};

pub use self::activity::*;
pub use self::card::*;
pub use self::content::*;
pub use self::files::*;
pub use self::inbox::*;
pub use self::locks::*;
pub use self::people::*;
pub use self::presence::*;
use crate::accounts::Session;
use crate::domain::Role;
use crate::http::guards::CSRF_FIELD;
pub use crate::live::{Counters, Viewer};
pub use crate::store::ListView;
use crate::store::{Event, FileRecord, now};

#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub q: String,
    pub state: String,
    pub sort: String,
    /// Cards or table: the address's `view`, else the person's setting.
    pub view: ListView,
}

impl Filters {
    /// Whether `f` passes the filters; a lock older than `stale_after` is stale.
    pub fn matches(
        &self,
        f: &FileRecord,
        viewer: &Viewer,
        stale_after: Duration,
        names: &crate::accounts::Names,
    ) -> bool {
        self.matches_at(f, viewer, stale_after, names, now())
    }

    /// [`Filters::matches`] at the unix second `at`.
    pub fn matches_at(
        &self,
        f: &FileRecord,
        viewer: &Viewer,
        stale_after: Duration,
        names: &crate::accounts::Names,
        at: i64,
    ) -> bool {
        self.matcher(viewer, stale_after, names, at)(f)
    }

    /// [`Filters::matches`] for a whole list: one clock reading (`at`) and
    /// the search folded once, not per file.
    pub fn matcher<'a>(
        &'a self,
        viewer: &'a Viewer,
        stale_after: Duration,
        names: &'a crate::accounts::Names,
        at: i64,
    ) -> impl Fn(&FileRecord) -> bool + 'a {
        let q = self.q.trim().to_lowercase();
        move |f| {
            let state_ok = match self.state.as_str() {
                "available" => f.lock.is_none() && f.reserved_for(at).is_none(),
                "locked" => f.lock.is_some(),
                "stale" => f.lock.as_ref().is_some_and(|l| l.is_stale(stale_after, at)),
                "reserved" => f.lock.is_none() && f.reserved_for(at).is_some(),
                "waiting" => f.is_queued(&viewer.username),
                "mine" => f.locked_by() == Some(viewer.username.as_str()),
                _ => true,
            };
            state_ok
                && (q.is_empty()
                    || contains_folded(f.path.as_str(), &q)
                    || contains_folded(&f.description, &q)
                    || f.locked_by()
                        .is_some_and(|o| o.contains(&q) || names.display_contains(o, &q)))
        }
    }

    /// Whether the list is one across folders: "recently changed", "largest"
    /// mean the whole vault, not each folder. Sorting by name keeps folders.
    pub fn flat(&self) -> bool {
        matches!(self.sort.as_str(), "modified" | "revision" | "size")
    }

    /// Sorts in place and keeps the first `limit`: the first `limit` are
    /// picked out before they are sorted, so a list of 100,000 costs about
    /// one pass, not a sort of the whole (the order breaks every tie by
    /// path, so the page is the same either way).
    pub fn sort(&self, files: &mut Vec<&FileRecord>, limit: usize) {
        let order = |a: &&FileRecord, b: &&FileRecord| match self.sort.as_str() {
            "modified" => b.modified_at.cmp(&a.modified_at).then(a.path.cmp(&b.path)),
            "revision" => b.revision.cmp(&a.revision).then(a.path.cmp(&b.path)),
            "size" => b.size.cmp(&a.size).then(a.path.cmp(&b.path)),
            _ => a.path.cmp(&b.path),
        };
        if files.len() > limit {
            files.select_nth_unstable_by(limit, order);
            files.truncate(limit);
        }
        files.sort_by(order);
    }

    /// Sorts, keeps the first `limit`, and groups by folder in name order.
    pub fn arrange<'a>(
        &self,
        files: &mut Vec<&'a FileRecord>,
        limit: usize,
    ) -> Vec<(String, Vec<&'a FileRecord>)> {
        self.sort(files, limit);
        let mut groups: std::collections::BTreeMap<String, Vec<&FileRecord>> = Default::default();
        for f in files.iter() {
            groups
                .entry(f.path.folder().to_string())
                .or_default()
                .push(f);
        }
        groups.into_iter().collect()
    }

    /// The dashboard's address for these filters (what a reload shows).
    pub fn url(&self) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", self.q.as_str()),
            ("state", self.state.as_str()),
            ("sort", self.sort.as_str()),
        ] {
            if !v.is_empty() {
                pairs.append_pair(k, v);
            }
        }
        pairs.append_pair("view", self.view.as_str());
        format!("/?{}", pairs.finish())
    }
}

/// Whether `hay` in lower case contains `q` (already in lower case):
/// without the copy when both are ASCII (nearly every path and
/// description), where lower case is ASCII lower case; a search runs this
/// on every file.
fn contains_folded(hay: &str, q: &str) -> bool {
    if hay.is_ascii() && q.is_ascii() {
        let (hay, q) = (hay.as_bytes(), q.as_bytes());
        q.is_empty() || hay.windows(q.len()).any(|w| w.eq_ignore_ascii_case(q))
    } else {
        hay.to_lowercase().contains(q)
    }
}

/// How many recent events the dashboard lists (and keeps, as more arrive).
pub const DASHBOARD_ACTIVITY: usize = 20;

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

/// The exact minute, for a person hovering over a relative time.
pub fn exact_time(at: i64) -> String {
    jiff::Timestamp::from_second(at)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A relative time that live.js re-words as the page stays open (from
/// `datetime`, with the same rules as [`ago`]); without JavaScript it reads
/// as of the page's load, the exact time on hover either way.
fn time_ago(at: i64) -> Markup {
    html! { time datetime=(iso_time(at)) title=(exact_time(at)) data-relative { (ago(at)) } }
}

/// The upload limit under a form's file field. live.js checks what is
/// picked against `data-max-upload` before sending and, over it, shows
/// `data-too-large` (the server's own words) instead; without JavaScript
/// the server answers 413 with the same limit. `several`: the most files
/// the form takes (`None`: one); they count together, as the server counts
/// them, and more files than that are refused in the form too
/// (`data-max-files`; `data-too-many` has `{n}` for how many were picked).
fn size_limit(max_upload: u64, several: Option<usize>) -> Markup {
    let size = crate::domain::human_size(max_upload);
    let too_large = if several.is_some() {
        format!(
            "These files are larger than the limit of {size} together; the files of one upload count together. Nothing was sent."
        )
    } else {
        format!("The file is larger than the limit of {size}; nothing was sent.")
    };
    let too_many = several.map(|max| {
        format!("These are {{n}} files; one upload takes at most {max}. Nothing was sent.")
    });
    html! {
        p.muted.size-limit data-max-upload=(max_upload) data-too-large=(too_large)
            data-max-files=[several] data-too-many=[too_many] {
            "Up to " (size) @if let Some(max) = several { " in all, " (max) " files at most" } "."
        }
    }
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
    /// Who is online, for the header (pages that show it).
    pub presence: Option<&'a crate::presence::Snapshot>,
    /// The skip link goes to the file list (the dashboard) rather than
    /// the top of `main`.
    pub skip_to_files: bool,
}

impl<'a> Page<'a> {
    /// A page for someone not signed in: no navigation, no live updates.
    pub fn signed_out(title: &'a str) -> Page<'a> {
        Page {
            title,
            session: None,
            nav: "",
            flash: None,
            live_seq: None,
            presence: None,
            skip_to_files: false,
        }
    }
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
                // First in tab order: past the header to what the page is for.
                @if page.skip_to_files {
                    a.skip-link href="#file-list" { "Skip to files" }
                } @else {
                    a.skip-link href="#main" { "Skip to content" }
                }
                header.topbar {
                    a.brand href="/" { span.brand-mark aria-hidden="true" { "◆" } " Latch" }
                    @if let Some(session) = page.session {
                        nav.nav {
                            a href="/" aria-current=[(page.nav == "files").then_some("page")] { "Files" }
                            a href="/activity" aria-current=[(page.nav == "activity").then_some("page")] { "Activity" }
                            @if session.user.role == Role::Admin {
                                a href="/admin/users" aria-current=[(page.nav == "users").then_some("page")] { "Users" }
                                a href="/admin/locks" aria-current=[(page.nav == "locks").then_some("page")] { "Stale locks" }
                            }
                        }
                        @if page.live_seq.is_some() {
                            // A status region: "Reconnecting…" and "Live" are read out as they change.
                            span #live-status .live-status role="status" data-state="connecting" title="Live updates" { "Connecting…" }
                        }
                        @if let Some(p) = page.presence { (presence_header(p, false)) }
                        (bell(session.unread, false))
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
                main #main .container tabindex="-1" {
                    @if let Some(flash) = &page.flash {
                        p class=(if flash.error { "error" } else { "notice" }) role="status" { (flash.text) }
                    }
                    (content)
                }
                // The drawer (history, preview, compare): a modal dialog named
                // by its heading, whose focus live.js manages. Hidden while empty.
                div #panel .panel role="dialog" aria-modal="true" aria-labelledby="panel-title" {}
                div #toasts .toasts aria-live="polite" {}
                // Filled by a person's live messages; live.js shows it on the desktop.
                div #desktop-notify hidden {}
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

pub fn error_page(status: u16, text: &str) -> Markup {
    html! {
        section.auth-card {
            h1 { (status) }
            p { (text) }
            p { a href="/" { "Back to the files" } }
        }
    }
}

/// The templates the hub renders live events with.
pub struct Fragments {
    /// A lock older than this is shown as stale (`--stale-after`).
    pub stale_after: Duration,
    /// Display names and the upload limit, for cards.
    pub cards: Cards,
}

/// What every card needs beyond its file and viewer, the same for all:
/// display names (`Accounts` keeps them current) and the upload limit the
/// check-in form states and live.js checks before sending.
#[derive(Debug, Clone, Default)]
pub struct Cards {
    pub names: crate::accounts::Names,
    pub max_upload: u64,
}

impl crate::live::Render for Fragments {
    fn event(&self, event: &Event, viewer: &Viewer, counters: Counters) -> String {
        event_fragment(event, viewer, counters, self.stale_after, &self.cards)
    }

    fn override_toast(&self, event: &Event) -> String {
        override_toast(event, &self.cards.names)
    }

    fn override_notice(&self, event: &Event) -> String {
        override_notice(event, &self.cards.names)
    }

    fn resync(&self, files: &[FileRecord], viewer: &Viewer, seq: u64) -> String {
        resync_fragment(files, viewer, seq, self.stale_after, &self.cards)
    }

    fn refresh(&self, file: &FileRecord, viewer: &Viewer) -> String {
        card(file, viewer, true, self.stale_after, &self.cards).into_string()
    }

    fn inbox(&self, change: &crate::inbox::InboxChange) -> String {
        inbox_fragment(change)
    }

    fn presence(&self, snapshot: &crate::presence::Snapshot, files: &[u64]) -> String {
        presence_fragment(snapshot, files)
    }

    fn together_toast(&self, events: &[std::sync::Arc<Event>]) -> String {
        files::together_toast(events, &self.cards.names)
    }
}

#[cfg(test)]
mod tests {
    use super::Filters;
    use crate::domain::{RepoPath, Revision};
    use crate::store::FileRecord;
    use crate::vault::{BlobId, CommitId};

    fn file(i: u64) -> FileRecord {
        FileRecord {
            id: i + 1,
            // Not in id order, and with many ties in every other key.
            path: RepoPath::from_stored(format!(
                "cell-{:02}/op-{:05}.nc",
                i % 13,
                (i * 7919) % 10_007
            )),
            description: String::new(),
            revision: Revision {
                major: 1,
                minor: (i % 4) as u32,
            },
            created_by: "alice".into(),
            created_at: 0,
            size: i % 17,
            head: CommitId::from_hex(&"0".repeat(40)).unwrap(),
            blob: BlobId::from_hex(&"0".repeat(40)).unwrap(),
            modified_at: (i % 29) as i64,
            modified_by: "bob".into(),
            lock: None,
            queue: Vec::new(),
            reserved: None,
        }
    }

    /// The search without copies finds what the one with them does.
    #[test]
    fn folded_search_is_lowercase_contains() {
        let hays = [
            "Part-0123.NC",
            "fixture PLATE",
            "Straße",
            "KELVIN \u{212A}",
            "",
            "ab",
        ];
        let qs = [
            "",
            "part-0123",
            "plate",
            "straße",
            "k",
            "kelvin k",
            "abc",
            "ß",
        ];
        for hay in hays {
            for q in qs {
                assert_eq!(
                    super::contains_folded(hay, q),
                    hay.to_lowercase().contains(q),
                    "{hay:?} / {q:?}"
                );
            }
        }
    }

    /// The first page picked out before sorting is the page a sort of the
    /// whole list gives, for every order and at either side of the limit.
    #[test]
    fn the_first_page_is_the_first_of_the_whole_list_sorted() {
        let files: Vec<FileRecord> = (0..2_000).map(file).collect();
        for sort in ["path", "modified", "revision", "size", ""] {
            let filters = Filters {
                sort: sort.into(),
                ..Filters::default()
            };
            for limit in [0, 1, 500, 1_999, 2_000, 5_000] {
                let mut page: Vec<&FileRecord> = files.iter().collect();
                filters.sort(&mut page, limit);
                let mut whole: Vec<&FileRecord> = files.iter().collect();
                whole.sort_by(|a, b| match sort {
                    "modified" => b.modified_at.cmp(&a.modified_at).then(a.path.cmp(&b.path)),
                    "revision" => b.revision.cmp(&a.revision).then(a.path.cmp(&b.path)),
                    "size" => b.size.cmp(&a.size).then(a.path.cmp(&b.path)),
                    _ => a.path.cmp(&b.path),
                });
                whole.truncate(limit);
                let ids = |v: &[&FileRecord]| v.iter().map(|f| f.id).collect::<Vec<_>>();
                assert_eq!(ids(&page), ids(&whole), "sort {sort:?}, limit {limit}");
            }
        }
    }
}
