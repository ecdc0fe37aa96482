//! A file's card: the one element per file the dashboard lists (as a card
//! or a table line) and the live stream swaps, with its state, people and
//! the actions the viewer may take.

use std::time::Duration;

use maud::{Markup, html};

use super::files::span_words;
use super::inbox::nudge_form;
use super::sets::edit_popovers;
use super::{Cards, Viewer, action_form, csrf_field, iso_time, size_limit, time_ago, viewing_line};
use crate::accounts::Names;
use crate::domain::human_size;
use crate::store::{FileRecord, clock_utc, now};

/// A file name's type as the check-in compares it: what follows its last
/// dot, lowercase; none for `Makefile` or `.profile`.
fn extension(name: &str) -> Option<String> {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext.to_lowercase()),
        _ => None,
    }
}

/// How many of a file's line its card names; the rest are counted.
const SHOWN_IN_LINE: usize = 10;

pub fn card(
    f: &FileRecord,
    viewer: &Viewer,
    oob: bool,
    stale_after: Duration,
    cards: &Cards,
) -> Markup {
    card_seen(f, viewer, oob, stale_after, &[], cards)
}

/// A person as a card names them: the display name (as the header and
/// history do); the element around it carries the username as its title.
/// Read from `names`, not the database: the hub renders a card per viewer
/// class for every event.
fn person(names: &Names, username: &str) -> String {
    names.of(username)
}

/// A file's card, with its "… is viewing" line naming `viewers`. A lock
/// older than `stale_after` is marked stale: in words (a badge), not by
/// colour alone, with when it turned stale.
pub fn card_seen(
    f: &FileRecord,
    viewer: &Viewer,
    oob: bool,
    stale_after: Duration,
    viewers: &[String],
    cards: &Cards,
) -> Markup {
    let holder = f.locked_by();
    let viewers: Vec<String> = viewers.iter().map(|v| cards.names.of(v)).collect();
    let mine = holder == Some(viewer.username.as_str());
    let at = now();
    let stale_since = f
        .lock
        .as_ref()
        .filter(|l| l.is_stale(stale_after, at))
        .map(|l| l.aged(stale_after));
    let reserved = f.reserved_for(at);
    let reserved_for_me = reserved.is_some_and(|r| r.username == viewer.username);
    let waiting = f.is_queued(&viewer.username);
    let state = if f.lock.is_some() {
        "locked"
    } else if reserved.is_some() {
        "reserved"
    } else {
        "available"
    };
    let dir = match f.path.folder() {
        "" => String::new(),
        folder => format!("{folder}/"),
    };
    let name = f.path.file_name();
    let ext = extension(name);
    let base = format!("/files/{}", f.id);
    html! {
        article.card.mine[mine] id=(format!("file-{}", f.id)) data-state=(state) data-locked-by=[holder]
            data-modified=(f.modified_at)
            data-stale=[stale_since.map(|_| "true")] data-path=(f.path) hx-swap-oob=[oob.then_some("true")] {
            header.card-head {
                // In the toolbar's selection form wherever the card is.
                label.card-select title="Select" {
                    input type="checkbox" name="ids" value=(f.id) form="selection";
                    span.sr-only { "Select " (f.path) }
                }
                h3.card-path title=(f.path) { span.dir { (dir) } (name) }
                span.badge.rev title="Revision" { "rev " (f.revision) }
                @if mine {
                    span.badge.state.mine { "Checked out by you" }
                } @else if let Some(h) = holder {
                    // A table's narrow State column cuts a long name short
                    // (an ellipsis on the inner span); the whole of it, and
                    // the username, on hover.
                    @let who = person(&cards.names, h);
                    span.badge.state.locked title=(format!("Checked out by {who} ({h})")) { span.badge-text { "Checked out by " (who) } }
                } @else if reserved_for_me {
                    span.badge.state.mine { "Reserved for you" }
                } @else if let Some(r) = reserved {
                    @let who = person(&cards.names, &r.username);
                    span.badge.state.locked title=(format!("Reserved for {who} ({})", r.username)) { span.badge-text { "Reserved for " (who) } }
                } @else {
                    span.badge.state.available { "Available" }
                }
                @if let (Some(since), Some(lock)) = (stale_since, &f.lock) {
                    span.badge.stale title=(format!(
                        "Stale since {}: checked out since {}, longer than {}",
                        iso_time(since), iso_time(lock.locked_at), span_words(stale_after)
                    )) { "Stale" }
                }
            }
            @if !f.description.is_empty() { p.card-desc { (f.description) } }
            dl.card-meta {
                div { dt { "Size" } dd { (human_size(f.size)) } }
                div { dt { "Last change" } dd { (time_ago(f.modified_at)) " by " span title=(f.modified_by) { (person(&cards.names, &f.modified_by)) } } }
            }
            @if let Some(lock) = &f.lock {
                div.lock-info {
                    "Checked out by " b title=[(!mine).then_some(&lock.owner)] { @if mine { "you" } @else { (person(&cards.names, &lock.owner)) } } " " (time_ago(lock.locked_at))
                    @if let Some(c) = &lock.comment { " — " q.lock-comment { (c) } }
                    // Saves through the network drive, not yet a version.
                    @if let Some(d) = &lock.draft {
                        span.draft-info data-draft-saved=(d.saved_at) { " · draft saved " (time_ago(d.saved_at)) " (" (human_size(d.size)) ")" }
                    }
                }
            }
            @if let Some(r) = reserved {
                div.lock-info.reserve-info {
                    "Reserved for " b title=[(!reserved_for_me).then_some(&r.username)] { @if reserved_for_me { "you" } @else { (person(&cards.names, &r.username)) } }
                    " until " time datetime=(iso_time(r.until)) { (clock_utc(r.until)) }
                    @if reserved_for_me { ": check it out, or decline to pass it on." }
                }
            }
            @if !f.queue.is_empty() {
                div.queue-info {
                    span { "Waiting: " }
                    ol.queue {
                        // The same for everyone in line: the live card is
                        // rendered once for all of them, however long the line.
                        @for who in f.queue.iter().take(SHOWN_IN_LINE) {
                            li title=(who) { (person(&cards.names, who)) }
                        }
                        @if f.queue.len() > SHOWN_IN_LINE {
                            li.more { "and " (f.queue.len() - SHOWN_IN_LINE) " more" }
                        }
                    }
                }
            }
            (viewing_line(f.id, &viewers, false))
            div.card-actions {
                @if mine {
                    details.popover.checkin {
                        summary.btn.primary { "Check in…" }
                        div.popover-body {
                            // data-name / data-ext: live.js asks before checking in a
                            // file of another type (issue 12); `accept` has the picker
                            // offer this type first.
                            form.stack method="post" action=(format!("{base}/checkin")) enctype="multipart/form-data"
                                hx-post=(format!("{base}/checkin")) hx-encoding="multipart/form-data" hx-swap="none"
                                data-name=(name) data-ext=[ext.as_deref()] {
                                (csrf_field(viewer))
                                label { "New version" input type="file" name="file" accept=[ext.as_ref().map(|e| format!(".{e}"))] required; }
                                (size_limit(cards.max_upload, None))
                                label { "What changed" textarea name="message" rows="3" required maxlength="5000" {} }
                                fieldset.bump {
                                    legend { "Revision" }
                                    // A bump past the revision limit is refused; offer only those that fit.
                                    @let minor = f.revision.bump(crate::domain::Bump::Minor).ok();
                                    @let major = f.revision.bump(crate::domain::Bump::Major).ok();
                                    label { input type="radio" name="bump" value="minor" checked[minor.is_some()] disabled[minor.is_none()]; " Minor → " @if let Some(r) = minor { (r) } @else { "at the limit" } }
                                    label { input type="radio" name="bump" value="major" checked[minor.is_none() && major.is_some()] disabled[major.is_none()]; " Major → " @if let Some(r) = major { (r) } @else { "at the limit" } }
                                }
                                label.check { input type="checkbox" name="keep" value="on"; " Keep it checked out (a milestone, not the end)" }
                                button.btn.primary type="submit" { "Check in" }
                            }
                        }
                    }
                    (action_form(viewer, &format!("{base}/cancel"), "cancel", html! {
                        button.btn type="submit" { "Cancel check-out" }
                    }))
                } @else if holder.is_none() && (reserved.is_none() || reserved_for_me) {
                    (action_form(viewer, &format!("{base}/checkout"), "checkout", html! {
                        label.sr-only for=(format!("comment-{}", f.id)) { "Comment" }
                        input.comment id=(format!("comment-{}", f.id)) type="text" name="comment" maxlength="500" placeholder="Comment (optional)";
                        button.btn.primary type="submit" { "Check out" }
                        button.btn type="submit" name="then" value="download" title="Check out, then download this version" { "Check out & download" }
                    }))
                    @if reserved_for_me {
                        (action_form(viewer, &format!("{base}/decline"), "decline", html! {
                            button.btn type="submit" { "Decline" }
                        }))
                    }
                } @else if waiting {
                    (action_form(viewer, &format!("{base}/queue/leave"), "leave-queue", html! {
                        button.btn type="submit" { "Leave the line" }
                    }))
                } @else {
                    (action_form(viewer, &format!("{base}/queue"), "join-queue", html! {
                        button.btn type="submit" { "Wait in line" }
                    }))
                }
                @if let Some(h) = holder.filter(|_| !mine) {
                    (nudge_form(f, &cards.names.of(h), viewer))
                }
                @if viewer.admin && holder.is_some() && !mine {
                    details.popover.danger-zone {
                        summary.btn.danger { "Override…" }
                        div.popover-body {
                            p { "Take the lock away from " b title=(holder.unwrap_or_default()) { (person(&cards.names, holder.unwrap_or_default())) } "? Their unsaved work stays on their machine; they will be told." }
                            (action_form(viewer, &format!("{base}/override"), "override", html! {
                                // The holder this dialog named: if the file changed hands
                                // since, the override is refused instead of breaking theirs.
                                input type="hidden" name="holder" value=(holder.unwrap_or_default());
                                button.btn.danger type="submit" { "Override check-out" }
                            }))
                        }
                    }
                }
                (edit_popovers(f, viewer))
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
