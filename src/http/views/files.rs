//! The dashboard and what is on it: the toolbar, the list of cards (each
//! card is in `card.rs`) by folder or flat, the counters, the upload form,
//! the live fragment of each event, history and activity.

use std::time::Duration;

use maud::{Markup, html};

use super::card::{card, card_seen};
use super::inbox::watch_toggle;
use super::sets::{bulk_upload_form, checkin_set_popover, selection_bar};
use super::{
    Cards, DASHBOARD_ACTIVITY, Filters, ListView, Viewer, csrf_field, folder_dom_id, size_limit,
    time_ago, toast,
};
use crate::accounts::Names;
use crate::files::Version;
use crate::live::Counters;
use crate::presence::Snapshot;
use crate::store::{Event, EventKind, FileRecord, clock_utc};

pub fn counters(c: Counters, oob: bool) -> Markup {
    html! {
        div #counters .counters hx-swap-oob=[oob.then_some("true")] {
            span.counter { b { (c.files) } (if c.files == 1 { " file" } else { " files" }) }
            span.counter { b { (c.locked) } " checked out" }
            @if c.reserved > 0 {
                span.counter { b { (c.reserved) } " reserved" }
            }
            span.counter { b { (c.files.saturating_sub(c.locked + c.reserved)) } " available" }
        }
    }
}

pub struct Dashboard<'a> {
    pub files: &'a [FileRecord],
    pub viewer: &'a Viewer,
    pub filters: &'a Filters,
    pub recent: &'a [Event],
    pub max_upload: u64,
    /// A lock older than this is shown as stale.
    pub stale_after: Duration,
    /// Who views which file, for the cards' "carol is viewing" lines.
    pub presence: &'a Snapshot,
    /// Display names and the upload limit, for the cards.
    pub cards: &'a Cards,
}

pub fn dashboard(d: Dashboard<'_>) -> Markup {
    let held = held_by(d.files, d.viewer);
    html! {
        h1.sr-only { "Files" }
        section.toolbar {
            (counters(Counters::of(d.files), false))
            // What I hold, one click away: a plain link, so it reloads and
            // shares as the page it shows. live.js keeps the count current.
            a #my-checkouts .btn.quiet.my-checkouts href="/?state=mine"
                aria-current=[(d.filters.state == "mine").then_some("page")] {
                "My check-outs " span.my-count { (held) }
            }
            form #filters .filters method="get" action="/" hx-get="/files" hx-target="#file-list" hx-swap="outerHTML"
                hx-trigger="input changed delay:250ms from:input[name=q], change from:select" hx-push-url="true" {
                // The view shown, so a search keeps it (live.js updates it
                // when Cards | Table switches).
                input #view-field type="hidden" name="view" value=(d.filters.view.as_str());
                label.sr-only for="q" { "Search" }
                input #q type="search" name="q" value=(d.filters.q) placeholder="Search files, descriptions, holders…" autocomplete="off";
                label.sr-only for="state" { "State" }
                select #state name="state" {
                    @for (value, label) in [("all", "All files"), ("available", "Available"), ("locked", "Checked out"), ("reserved", "Reserved"), ("stale", "Stale check-outs"), ("mine", "Checked out by me"), ("waiting", "Waiting for")] {
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
            (view_switch(d.viewer, d.filters))
            (checkin_set_popover(d.viewer, d.max_upload))
            (upload_popover(d.viewer, d.max_upload))
            (selection_bar(d.viewer))
            // live.js lists each upload here with its progress.
            div #uploads .uploads aria-live="polite" {}
        }
        div.layout {
            (file_list_seen(d.files, d.viewer, d.filters, d.stale_after, d.presence, d.cards))
            aside.side {
                h2 { "Recent activity" }
                // live.js trims the list to data-max as events arrive, so a
                // dashboard left open for weeks stays small.
                ol #activity-list .activity data-max=(DASHBOARD_ACTIVITY) {
                    @for event in d.recent { (activity_line(event, &d.cards.names)) }
                }
                p { a href="/activity" { "All activity →" } }
            }
        }
    }
}

/// How many files `viewer` holds.
fn held_by(files: &[FileRecord], viewer: &Viewer) -> usize {
    files
        .iter()
        .filter(|f| f.locked_by() == Some(viewer.username.as_str()))
        .count()
}

/// Cards | Table. A form post (the choice is remembered for the person);
/// with htmx it swaps the list and pushes the dashboard's address, with the
/// filters of the form beside it.
fn view_switch(viewer: &Viewer, filters: &Filters) -> Markup {
    html! {
        form #view-switch .view-switch method="post" action="/view" hx-post="/view" hx-include="#filters"
            hx-target="#file-list" hx-swap="outerHTML" {
            (csrf_field(viewer))
            // Without JavaScript the filters ride along here; with it,
            // hx-include takes them from the filter form (noscript content
            // is not part of the form then).
            noscript {
                input type="hidden" name="q" value=(filters.q);
                input type="hidden" name="state" value=(filters.state);
                input type="hidden" name="sort" value=(filters.sort);
            }
            // The group is inside the form: a form may not be a group.
            div.view-switch-buttons role="group" aria-label="List files as" {
                @for (value, label) in [(ListView::Cards, "Cards"), (ListView::Table, "Table")] {
                    button.btn type="submit" name="set_view" value=(value.as_str())
                        aria-pressed=(if filters.view == value { "true" } else { "false" }) { (label) }
                }
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
                    label { "Initial revision" input type="text" name="revision" value="1.0" pattern="[0-9]+\\.[0-9]+" title="A revision is two numbers with a dot, such as 1.0 or 2.3 (MAJOR.MINOR)" required; }
                    (size_limit(max_upload, None))
                    button.btn.primary type="submit" { "Upload" }
                }
                (bulk_upload_form(viewer, max_upload))
            }
        }
    }
}

/// Cards on one page at most: a list of thousands helps nobody, and the
/// page stays quick to render and to keep live.
pub const MAX_CARDS: usize = 500;

pub fn file_list(
    files: &[FileRecord],
    viewer: &Viewer,
    filters: &Filters,
    stale_after: Duration,
    cards: &Cards,
) -> Markup {
    file_list_seen(
        files,
        viewer,
        filters,
        stale_after,
        &Snapshot::default(),
        cards,
    )
}

/// The list with the viewing lines `presence` gives (a page render; live
/// fragments leave them to presence updates).
pub fn file_list_seen(
    files: &[FileRecord],
    viewer: &Viewer,
    filters: &Filters,
    stale_after: Duration,
    presence: &Snapshot,
    cards: &Cards,
) -> Markup {
    list_markup(files, viewer, filters, stale_after, presence, false, cards)
}

/// The list: by folder (name order; each folder can be collapsed), or one
/// flat list across folders for the other sorts, where each card shows its
/// folder. The table view is the same cards laid out as lines (app.css).
/// `resync` marks a list the live stream sent after a gap, rendered with
/// no filters: live.js fetches it again with the page's own. `files` are
/// in path order, as `Store::files_now` keeps them.
fn list_markup(
    files: &[FileRecord],
    viewer: &Viewer,
    filters: &Filters,
    stale_after: Duration,
    presence: &Snapshot,
    resync: bool,
    cards: &Cards,
) -> Markup {
    // One pass over what may be 100,000 records. In name order the page is
    // the first matching records of a list kept in name order
    // (`Store::files_now`); other orders pick theirs from every match.
    let flat = filters.flat();
    let matches = filters.matcher(viewer, stale_after, &cards.names, crate::store::now());
    let mut shown: Vec<&FileRecord> = Vec::new();
    let (mut matching, mut held) = (0, 0);
    for f in files {
        if f.locked_by() == Some(viewer.username.as_str()) {
            held += 1;
        }
        if matches(f) {
            matching += 1;
            if flat || shown.len() < MAX_CARDS {
                shown.push(f);
            }
        }
    }
    let groups = if flat {
        filters.sort(&mut shown, MAX_CARDS);
        Vec::new()
    } else {
        filters.arrange(&mut shown, MAX_CARDS)
    };
    let table = filters.view == ListView::Table;
    let sort = if flat { filters.sort.as_str() } else { "path" };
    html! {
        div #file-list .file-list.table-view[table] data-view=(filters.view.as_str()) data-sort=(sort)
            data-flat=[flat.then_some("true")] data-held=(held)
            data-resync=[resync.then_some("true")] {
            @if files.is_empty() {
                p.empty { "No files yet. Upload the first one with " b { "Upload file" } "." }
            } @else if shown.is_empty() {
                p.empty { "No file matches these filters." }
            }
            @if matching > MAX_CARDS {
                p.notice.truncated {
                    "Showing the first " (MAX_CARDS) " of " (matching) " matching files. Search or filter to find the rest."
                }
            }
            @if groups.len() > 1 {
                div.list-tools.js-only {
                    button.btn.quiet type="button" data-folders="close" { "Collapse all folders" }
                    button.btn.quiet type="button" data-folders="open" { "Expand all" }
                }
            }
            @if table && !shown.is_empty() {
                // The column names over the lines; each line is an article
                // that names its own parts to a screen reader.
                div.list-head aria-hidden="true" {
                    span {} span { "Name" } span { "Revision" } span { "State" } span { "Last change" } span { "Size" } span { "Actions" }
                }
            }
            @if flat {
                section.flat-list {
                    h2.sr-only { "All folders, by " (sort_words(sort)) }
                    div.cards #all-files {
                        @for f in &shown { (card_seen(f, viewer, false, stale_after, presence.viewers(f.id), cards)) }
                    }
                }
            }
            @for (folder, files) in &groups {
                @let shown_name = if folder.is_empty() { "/".to_string() } else { format!("{folder}/") };
                section.folder data-folder=(folder) {
                    // Collapsed or not: live.js remembers it per folder.
                    details.folder-box open {
                        summary.folder-summary {
                            h2.folder-name { (shown_name) }
                            span.folder-count { (files.len()) (if files.len() == 1 { " file" } else { " files" }) }
                        }
                        div.cards id=(folder_dom_id(folder)) {
                            @for f in files { (card_seen(f, viewer, false, stale_after, presence.viewers(f.id), cards)) }
                        }
                    }
                    div.folder-tools {
                        a.folder-zip href=(folder_zip_url(folder)) download { "Download folder (.zip)" span.sr-only { " " (shown_name) } }
                        button.btn.quiet.select-folder.js-only type="button" data-select-folder=(folder)
                            aria-label=(format!("Select all in {}/", folder)) { "Select all" }
                    }
                }
            }
        }
    }
}

fn sort_words(sort: &str) -> &'static str {
    match sort {
        "modified" => "last change",
        "revision" => "revision",
        "size" => "size",
        _ => "name",
    }
}

/// What happened, in words, naming people by their display names (as
/// cards and the header do; the username is in the line's `data-actor`).
pub fn event_sentence(e: &Event, names: &Names) -> String {
    let actor = names.of(&e.actor);
    let note = e.note.as_deref().filter(|n| !n.is_empty());
    let rev = e.revision.map(|r| r.to_string()).unwrap_or_default();
    match e.kind {
        EventKind::Created => format!("{} uploaded {} (rev {rev})", actor, e.path),
        EventKind::Locked => match note {
            Some(n) => format!("{} checked out {} — {n}", actor, e.path),
            None => format!("{} checked out {}", actor, e.path),
        },
        EventKind::Unlocked => format!("{} cancelled the check-out of {}", actor, e.path),
        EventKind::CheckedIn => match note {
            Some(n) => format!(
                "{} checked in {} rev {rev} — {}",
                actor,
                e.path,
                n.lines().next().unwrap_or("")
            ),
            None => format!("{} checked in {} rev {rev}", actor, e.path),
        },
        EventKind::Overridden => format!(
            "{} overrode {}'s check-out of {}",
            actor,
            e.previous_holder
                .as_deref()
                .map_or("someone".to_string(), |h| names.of(h)),
            e.path
        ),
        EventKind::Deleted => format!("{} deleted {}", actor, e.path),
        EventKind::Queued => format!("{} is waiting for {}", actor, e.path),
        EventKind::Dequeued => format!("{} stopped waiting for {}", actor, e.path),
        EventKind::Reserved => match e.file.as_ref().and_then(|f| f.reserved.as_ref()) {
            Some(r) => format!("{} is reserved for {}", e.path, names.of(&r.username)),
            None => format!("{} is reserved", e.path),
        },
        EventKind::Released => format!("{} is available again", e.path),
        EventKind::Expired => format!(
            "{}'s check-out of {} expired; Latch released it",
            e.previous_holder
                .as_deref()
                .map_or("someone".to_string(), |h| names.of(h)),
            e.path
        ),
        EventKind::Moved => match note {
            Some(from) => format!("{} moved {from} to {}", actor, e.path),
            None => format!("{} moved {}", actor, e.path),
        },
        EventKind::Edited => format!("{} edited the description of {}", actor, e.path),
    }
}

/// The one toast of a change of several files: what was done, to how many,
/// and (for a check-in) the message.
pub fn together_toast(events: &[std::sync::Arc<Event>], names: &Names) -> String {
    let Some(first) = events.first() else {
        return String::new();
    };
    // A change set's own events share the first one's kind; the hand-offs
    // it caused (a file reserved for the next in line) are told apart.
    let count = events.iter().filter(|e| e.kind == first.kind).count();
    let what = match first.kind {
        EventKind::Locked => "checked out",
        EventKind::Unlocked => "cancelled the check-out of",
        EventKind::CheckedIn => "checked in",
        EventKind::Created => "uploaded",
        _ => return live_toast(first, "info", names).into_string(),
    };
    let note = first
        .note
        .as_deref()
        .and_then(|n| n.lines().next())
        .filter(|n| !n.is_empty());
    let text = match note {
        Some(n) => format!("{} {what} {count} files — {n}", names.of(&first.actor)),
        None => format!("{} {what} {count} files", names.of(&first.actor)),
    };
    html! {
        div hx-swap-oob="beforeend:#toasts" {
            div.toast.toast-info role="status" data-actor=(first.actor) data-actor-name=(names.of(&first.actor)) { (text) }
        }
    }
    .into_string()
}

/// A duration in the words a person would use: `7 days`, `36 h`, `2 s`.
pub fn span_words(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 && s % 86_400 == 0 => (s / 86_400, "days"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "h"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "min"),
        s => (s, "s"),
    };
    format!("{n} {unit}")
}

pub fn activity_line(e: &Event, names: &Names) -> Markup {
    activity_line_linked(e, e.file.is_some(), names)
}

/// A line of the dashboard's feed and of the Activity page, linking to its
/// file's history when `linked` (the file is still there). `data-*` carry
/// what the Activity page's filters match, for its live lines.
pub fn activity_line_linked(e: &Event, linked: bool, names: &Names) -> Markup {
    html! {
        li.activity-line data-seq=(e.seq) data-kind=(e.kind.as_str()) data-actor=(e.actor) data-path=(e.path) {
            (time_ago(e.at)) " "
            span { (event_sentence(e, names)) }
            @if linked { " " a href=(format!("/files/{}/history", e.file_id)) aria-label=(format!("History of {}", e.path)) { "↗" } }
        }
    }
}

/// The toast a live event brings. The actor's own tab already has the
/// action's reply as a toast; live.js drops this one there (`data-actor`).
fn live_toast(e: &Event, kind: &str, names: &Names) -> Markup {
    html! {
        div hx-swap-oob="beforeend:#toasts" {
            div class=(format!("toast toast-{kind}")) role="status" data-actor=(e.actor) data-actor-name=(names.of(&e.actor)) { (event_sentence(e, names)) }
        }
    }
}

/// The toast everyone but the previous holder gets for an override.
pub fn override_toast(e: &Event, names: &Names) -> String {
    live_toast(e, "info", names).into_string()
}

/// The live fragment for one event, for one class of viewer.
pub fn event_fragment(
    e: &Event,
    viewer: &Viewer,
    c: Counters,
    stale_after: Duration,
    cards: &Cards,
) -> String {
    let toast_kind = match e.kind {
        EventKind::Overridden | EventKind::Deleted | EventKind::Expired => "info",
        _ if e.actor == viewer.username => "success",
        _ => "info",
    };
    let markup = html! {
        @match &e.file {
            Some(f) if e.kind == EventKind::Created => {
                div.card-insert hx-swap-oob=(format!("beforeend:#{}", folder_dom_id(f.path.folder()))) { (card(f, viewer, false, stale_after, cards)) }
            }
            Some(f) if e.kind == EventKind::Moved => {
                // Out of its old folder, into its new one.
                article id=(format!("file-{}", e.file_id)) hx-swap-oob="delete" {}
                div.card-insert hx-swap-oob=(format!("beforeend:#{}", folder_dom_id(f.path.folder()))) { (card(f, viewer, false, stale_after, cards)) }
            }
            Some(f) => { (card(f, viewer, true, stale_after, cards)) }
            None => { article id=(format!("file-{}", e.file_id)) hx-swap-oob="delete" {} }
        }
        @match reserved_for_viewer(e, viewer) {
            Some(until) => {
                div hx-swap-oob="beforeend:#toasts" {
                    div.toast.toast-success role="alert" {
                        (e.path) " is yours to take until " (clock_utc(until)) ": check it out, or decline to pass it on."
                    }
                }
            }
            // A change of several files has one toast for all (`together_toast`).
            None if e.grouped => {}
            None => { (live_toast(e, toast_kind, &cards.names)) }
        }
        ol hx-swap-oob="afterbegin:#activity-list" { (activity_line(e, &cards.names)) }
        (counters(c, true))
        div #live-seq data-seq=(e.seq) hidden hx-swap-oob="true" {}
    };
    markup.into_string()
}

/// When `e` hands the file to `viewer`: until when it is theirs.
fn reserved_for_viewer(e: &Event, viewer: &Viewer) -> Option<i64> {
    let r = e.file.as_ref()?.reserved.as_ref()?;
    (e.kind == EventKind::Reserved && r.username == viewer.username).then_some(r.until)
}

/// The toast the holder of an overridden lock gets on top of the general fragment.
pub fn override_notice(e: &Event, names: &Names) -> String {
    let text = format!(
        "{} overrode your check-out of {}. Your lock is gone; check it out again before checking in.",
        names.of(&e.actor),
        e.path
    );
    html! { (toast("error", &text)) }.into_string()
}

/// Sent when a client's resume point is older than the log: a full list.
pub fn resync_fragment(
    files: &[FileRecord],
    viewer: &Viewer,
    seq: u64,
    stale_after: Duration,
    cards: &Cards,
) -> String {
    let list = list_markup(
        files,
        viewer,
        &Filters::default(),
        stale_after,
        &Snapshot::default(),
        true,
        cards,
    );
    html! {
        div hx-swap-oob="outerHTML:#file-list" { (list) }
        (counters(Counters::of(files), true))
        div #live-seq data-seq=(seq) hidden hx-swap-oob="true" {}
    }
    .into_string()
}

pub fn history(
    f: &FileRecord,
    versions: &[Version],
    as_panel: bool,
    watches: &crate::files::Watches,
    viewer: &Viewer,
) -> Markup {
    html! {
        section.history data-viewing-file=[as_panel.then_some(f.id)] {
            header.panel-head {
                @if as_panel { h2 #panel-title tabindex="-1" { "History of " (f.path) } } @else { h1 { "History of " (f.path) } }
                (watch_toggle(f, watches, viewer))
                @if as_panel { button.btn.close type="button" data-close-panel aria-label="Close" { "×" } }
            }
            @if versions.is_empty() {
                p.empty { "No versions recorded." }
            } @else {
                table.table {
                    thead { tr { th { "Revision" } th { "Author" } th { "When" } th { "Message" } th { span.sr-only { "Actions" } } } }
                    tbody {
                        @for (i, v) in versions.iter().enumerate() {
                            @let base = format!("/files/{}", f.id);
                            @let preview = format!("{base}/preview?rev={}", v.commit);
                            // data-label: a phone shows each row as a block of labelled lines.
                            tr {
                                td data-label="Revision" { b { (v.revision) } }
                                td data-label="Author" { (v.author) }
                                td data-label="When" { (time_ago(v.at)) }
                                td.message data-label="Message" { (v.message) }
                                td.actions { div.row-actions {
                                    a.btn href=(preview) hx-get=(preview) hx-target="#panel" hx-swap="innerHTML" aria-label=(format!("Preview {}", v.revision)) { "Preview" }
                                    " "
                                    // The version before it in content: a move changes none.
                                    @if let Some(prev) = versions[i + 1..].iter().find(|p| p.action != "move").filter(|_| v.action != "move") {
                                        @let diff = format!("{base}/diff?from={}&to={}", prev.commit, v.commit);
                                        a.btn href=(diff) hx-get=(diff) hx-target="#panel" hx-swap="innerHTML" aria-label=(format!("Compare with previous: {} against {}", v.revision, prev.revision)) { "Compare with previous" }
                                        " "
                                    }
                                    a.btn href=(format!("{base}/download?rev={}", v.commit)) download aria-label=(format!("Download {}", v.revision)) { "Download" }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The dashboard's link to a folder's `.zip` (`/` for files at the top).
fn folder_zip_url(folder: &str) -> String {
    let path = if folder.is_empty() { "/" } else { folder };
    let encoded: String =
        percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC).collect();
    format!("/api/folders/zip?path={encoded}")
}
