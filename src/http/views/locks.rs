//! The admins' list of stale locks: each with its holder, age and
//! comment, an override and a nudge.

use std::collections::HashMap;
use std::time::Duration;

use maud::{Markup, html};

use super::{Viewer, csrf_field, span_words, time_ago};
use crate::store::{FileRecord, now};

/// A stale lock as the admins' list shows it.
struct StaleLock<'a> {
    pub file: &'a FileRecord,
    /// The holder's display name, when the account still exists.
    pub holder_name: Option<&'a str>,
}

/// The admins' list of stale locks, oldest first, each with the override
/// (the card's own form) and a nudge to its holder. Plain forms: they work
/// without JavaScript, and the answer is a page with a flash.
pub fn stale_locks_page(
    files: &[FileRecord],
    names: &HashMap<String, String>,
    viewer: &Viewer,
    stale_after: Duration,
) -> Markup {
    let at = now();
    let mut stale: Vec<StaleLock<'_>> = files
        .iter()
        .filter(|f| f.lock.as_ref().is_some_and(|l| l.is_stale(stale_after, at)))
        .map(|f| StaleLock {
            file: f,
            holder_name: f.locked_by().and_then(|h| names.get(h)).map(String::as_str),
        })
        .collect();
    stale.sort_by_key(|s| (s.file.lock.as_ref().map(|l| l.locked_at), s.file.id));
    html! {
        section {
            h1 { "Stale locks" }
            p.muted { "Check-outs older than " (span_words(stale_after)) "." }
            @if stale.is_empty() {
                p.empty { "No check-out is stale." }
            } @else {
                table.table #stale-locks {
                    thead { tr { th { "File" } th { "Held by" } th { "Since" } th { "Comment" } th { "Actions" } } }
                    tbody {
                        @for s in &stale {
                            @let f = s.file;
                            @let holder = f.locked_by().unwrap_or_default();
                            @let base = format!("/files/{}", f.id);
                            tr data-file-id=(f.id) {
                                td { a href=(format!("{base}/history")) { (f.path) } }
                                td {
                                    @match s.holder_name.filter(|n| *n != holder) {
                                        Some(name) => { (name) " " span.muted { "(" (holder) ")" } }
                                        None => { (holder) }
                                    }
                                }
                                td { @if let Some(l) = &f.lock { (time_ago(l.locked_at)) } }
                                td { @if let Some(c) = f.lock.as_ref().and_then(|l| l.comment.as_ref()) { q.lock-comment { (c) } } }
                                td.actions {
                                    form.inline.nudge method="post" action=(format!("{base}/nudge")) {
                                        (csrf_field(viewer))
                                        input type="hidden" name="back" value="locks";
                                        label.sr-only for=(format!("nudge-{}", f.id)) { "Message to " (holder) }
                                        input.comment id=(format!("nudge-{}", f.id)) type="text" name="message" maxlength="500" placeholder="Message (optional)";
                                        button.btn type="submit" { "Ask to release" }
                                    }
                                    form.inline.override method="post" action=(format!("{base}/override")) {
                                        (csrf_field(viewer))
                                        // As on the card: only this holder's lock is broken.
                                        input type="hidden" name="holder" value=(holder);
                                        input type="hidden" name="back" value="locks";
                                        button.btn.danger type="submit" { "Override check-out" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
