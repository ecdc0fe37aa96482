//! The bell, the notifications page (the inbox and what one watches), and
//! the fragments a person's live connections get when their inbox changes.

use maud::{Markup, PreEscaped, html};

use super::{Viewer, action_form, csrf_field, time_ago, toast};
use crate::files::{InboxView, Watches};
use crate::inbox::{InboxChange, NoticeKind, Notification};
use crate::store::FileRecord;

const BELL_SVG: &str = r#"<svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/></svg>"#;

/// The header's bell: a link to the notifications page with the unread
/// count; `oob` for a live swap.
pub fn bell(unread: u64, oob: bool) -> Markup {
    let label = match unread {
        0 => "Notifications, none unread".to_string(),
        1 => "Notifications, 1 unread".to_string(),
        n => format!("Notifications, {n} unread"),
    };
    html! {
        a id="bell" class="bell" href="/notifications" aria-label=(label) title=(label)
            data-unread=(unread) hx-swap-oob=[oob.then_some("true")] {
            (PreEscaped(BELL_SVG))
            @if unread > 0 {
                span.bell-count aria-hidden="true" { (if unread > 99 { "99+".to_string() } else { unread.to_string() }) }
            }
        }
    }
}

/// Where a notification about `path` leads: the dashboard showing the file.
fn file_link(n: &Notification) -> String {
    let q: String = serde_urlencoded::to_string([("q", n.path.as_str())]).unwrap_or_default();
    format!("/?{q}#file-{}", n.file_id)
}

fn kind_label(kind: NoticeKind) -> &'static str {
    match kind {
        NoticeKind::Reserved => "Yours now",
        NoticeKind::Nudged => "Asked to release",
        NoticeKind::Overridden => "Check-out broken",
        NoticeKind::Watched => "Watched",
        NoticeKind::Expiring => "Expiring",
    }
}

/// What a person's live connections get when their inbox changes: the bell
/// and, for a new notification, a toast and a desktop notification (shown
/// by `live.js` only when they turned those on).
pub fn inbox_fragment(change: &InboxChange) -> String {
    html! {
        (bell(change.unread, true))
        @if let Some(n) = &change.new {
            // A file reserved for you and a broken check-out bring a toast
            // of their own with the card, and a watched change the one
            // everyone gets: only news outside the shared stream toasts.
            @if matches!(n.kind, NoticeKind::Nudged | NoticeKind::Expiring) {
                (toast("success", &n.text))
            }
            div #desktop-notify hidden hx-swap-oob="true" data-id=(n.id)
                data-title=(format!("Latch: {}", kind_label(n.kind))) data-body=(n.text) data-href=(file_link(n)) {}
        }
    }
    .into_string()
}

/// A form on the notifications page: a plain post and a new page, as the
/// page itself changes (an item read, a watch gone).
fn plain_form(viewer: &Viewer, action: &str, class: &str, body: Markup) -> Markup {
    html! {
        form class=(format!("inline {class}")) method="post" action=(action) {
            (csrf_field(viewer))
            (body)
        }
    }
}

/// The notifications page: the inbox, then what one watches.
pub fn notifications_page(
    inbox: &InboxView,
    watches: &Watches,
    watched_files: &[FileRecord],
    viewer: &Viewer,
) -> Markup {
    html! {
        section.notifications {
            header.page-head {
                h1 { "Notifications" }
                @if inbox.unread > 0 {
                    (plain_form(viewer, "/notifications/read", "mark-all", html! {
                        input type="hidden" name="all" value="true";
                        button.btn type="submit" { "Mark all read (" (inbox.unread) ")" }
                    }))
                }
            }
            @if inbox.notifications.is_empty() {
                p.empty { "Nothing yet. You are told here when a file you wait for is yours, when someone asks you to release a file, and of every change to what you watch." }
            } @else {
                ol.inbox {
                    @for n in &inbox.notifications {
                        li.inbox-item.unread[!n.read] data-kind=(n.kind.as_str()) {
                            span.badge { (kind_label(n.kind)) }
                            " "
                            a href=(file_link(n)) { (n.text) }
                            " "
                            span.muted { (time_ago(n.at)) }
                            @if !n.read {
                                " "
                                (plain_form(viewer, "/notifications/read", "mark-one", html! {
                                    input type="hidden" name="id" value=(n.id);
                                    button.link type="submit" aria-label=(format!("Mark read: {}", n.text)) { "Mark read" }
                                }))
                            }
                        }
                    }
                }
            }
        }
        section.watching {
            h2 { "Watching" }
            p.muted { "You hear of every change to these files, and to every file in these folders." }
            @if watches.files.is_empty() && watches.folders.is_empty() {
                p.empty { "You watch nothing yet. Open a file's history to watch it, or watch a folder below." }
            } @else {
                ul.watch-list {
                    @for folder in &watches.folders {
                        li {
                            "Folder " b { (folder) }
                            " "
                            (plain_form(viewer, "/watches", "unwatch-folder", html! {
                                input type="hidden" name="folder" value=(if folder.as_str().is_empty() { "/" } else { folder.as_str() });
                                input type="hidden" name="watch" value="off";
                                button.link type="submit" aria-label=(format!("Stop watching {folder}")) { "Stop watching" }
                            }))
                        }
                    }
                    @for f in watched_files {
                        li {
                            "File " a href=(format!("/?{}#file-{}", serde_urlencoded::to_string([("q", f.path.as_str())]).unwrap_or_default(), f.id)) { (f.path) }
                            " "
                            (plain_form(viewer, &format!("/files/{}/watch", f.id), "unwatch-file", html! {
                                input type="hidden" name="watch" value="off";
                                button.link type="submit" aria-label=(format!("Stop watching {}", f.path)) { "Stop watching" }
                            }))
                        }
                    }
                }
            }
            form.inline.watch-folder method="post" action="/watches" {
                (csrf_field(viewer))
                input type="hidden" name="watch" value="on";
                label for="watch-folder" { "Watch a folder" }
                " "
                input #watch-folder type="text" name="folder" required maxlength="255" placeholder="parts/fixtures (or / for everything)";
                " "
                button.btn type="submit" { "Watch" }
            }
        }
    }
}

/// The watch toggle in a file's history drawer (rendered per person): a
/// switch for the file itself, or, when only a folder one watches covers
/// it, that folder (stopping here would change nothing).
pub fn watch_toggle(f: &FileRecord, watches: &Watches, viewer: &Viewer) -> Markup {
    let action = format!("/files/{}/watch", f.id);
    let watching = watches.files.contains(&f.id);
    let through = watches.folders.iter().find(|d| d.contains(&f.path));
    html! {
        @if let Some(folder) = through.filter(|_| !watching) {
            span.watch-toggle.muted {
                "Watching through " a href="/notifications" { (folder) }
            }
        } @else {
            (watch_form(&action, watching, viewer))
        }
    }
}

fn watch_form(action: &str, watching: bool, viewer: &Viewer) -> Markup {
    html! {
        form.inline.watch-toggle method="post" action=(action) hx-post=(action) hx-target="this" hx-swap="outerHTML" {
            (csrf_field(viewer))
            input type="hidden" name="watch" value=(if watching { "off" } else { "on" });
            input type="hidden" name="back" value="history";
            @if watching {
                button.btn type="submit" aria-pressed="true" title="You hear of every change to this file" { "Watching ✓" }
            } @else {
                button.btn type="submit" aria-pressed="false" title="Hear of every change to this file" { "Watch" }
            }
        }
    }
}

/// The "ask to release" form on a card someone else holds.
pub fn nudge_form(f: &FileRecord, holder: &str, viewer: &Viewer) -> Markup {
    let action = format!("/files/{}/nudge", f.id);
    let input = format!("nudge-{}", f.id);
    html! {
        details.popover.nudge {
            summary.btn { "Ask to release…" }
            div.popover-body {
                (action_form(viewer, &action, "nudge", html! {
                    label for=(input) { "Ask " b { (holder) } " to release it" }
                    input id=(input) type="text" name="message" maxlength="500" placeholder="Message (optional)";
                    button.btn.primary type="submit" { "Send" }
                }))
            }
        }
    }
}

/// The account page's desktop notifications switch; `live.js` fills in
/// the state and asks the browser's permission only on a click.
pub fn desktop_notifications_section() -> Markup {
    html! {
        section #desktop-notifications .card-like data-state="unknown" {
            h2 { "Desktop notifications" }
            p #desktop-state role="status" { "Needs JavaScript: without it, the bell in the header shows what is new." }
            button #desktop-enable .btn.primary type="button" hidden { "Enable desktop notifications" }
            button #desktop-disable .btn type="button" hidden { "Turn off" }
        }
    }
}
