//! The Activity page: the event log, newest first, filtered by what
//! happened, who did it and which file, each line linking to its file.

use std::collections::HashSet;

use maud::{Markup, html};

use super::activity_line_linked;
use crate::store::{Event, EventKind};

/// Every kind of event, as the filter offers them.
const KINDS: [(EventKind, &str); 13] = [
    (EventKind::Created, "Uploaded"),
    (EventKind::Locked, "Checked out"),
    (EventKind::CheckedIn, "Checked in"),
    (EventKind::Unlocked, "Check-out cancelled"),
    (EventKind::Overridden, "Overridden"),
    (EventKind::Deleted, "Deleted"),
    (EventKind::Moved, "Moved"),
    (EventKind::Edited, "Description edited"),
    (EventKind::Queued, "Waiting in line"),
    (EventKind::Dequeued, "Left the line"),
    (EventKind::Reserved, "Reserved"),
    (EventKind::Released, "Available again"),
    (EventKind::Expired, "Expired"),
];

/// What the Activity page is narrowed to; empty fields narrow nothing.
#[derive(Debug, Default, Clone)]
pub struct ActivityFilter {
    /// One kind of event, or none for all.
    pub kind: Option<EventKind>,
    /// A username, exactly.
    pub who: String,
    /// Part of a file's path, any case.
    pub q: String,
}

impl ActivityFilter {
    /// The kind the filter's `kind` value names (`checked_in`): empty is
    /// every kind; anything else is refused with the list's own words.
    pub fn kind_named(value: &str) -> Result<Option<EventKind>, String> {
        if value.is_empty() {
            return Ok(None);
        }
        KINDS
            .iter()
            .find(|(k, _)| k.as_str() == value)
            .map(|(k, _)| Some(*k))
            .ok_or_else(|| {
                "There is no such kind of event to filter by; choose one from the list.".to_string()
            })
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.kind.is_none_or(|k| e.kind == k)
            && (self.who.is_empty() || e.actor == self.who)
            && (self.q.is_empty()
                || e.path
                    .as_str()
                    .to_lowercase()
                    .contains(&self.q.to_lowercase()))
    }

    pub fn is_empty(&self) -> bool {
        self.kind.is_none() && self.who.is_empty() && self.q.is_empty()
    }
}

/// `events` (newest first, already filtered) out of the `scanned` newest;
/// a line's file links to its history while the file is still there.
pub fn activity_page(
    events: &[Event],
    scanned: usize,
    filter: &ActivityFilter,
    present: &HashSet<u64>,
    names: &crate::accounts::Names,
) -> Markup {
    html! {
        section {
            h1 { "Activity" }
            form.inline.filters method="get" action="/activity" {
                label.sr-only for="activity-kind" { "What happened" }
                select #activity-kind name="kind" {
                    option value="" selected[filter.kind.is_none()] { "Everything" }
                    @for (kind, label) in KINDS {
                        option value=(kind.as_str()) selected[filter.kind == Some(kind)] { (label) }
                    }
                }
                label.sr-only for="activity-who" { "Who (username)" }
                input #activity-who type="text" name="who" value=(filter.who) placeholder="Who (username)" maxlength="32";
                label.sr-only for="activity-q" { "File" }
                input #activity-q type="search" name="q" value=(filter.q) placeholder="File name or folder" maxlength="255";
                button.btn type="submit" { "Filter" }
                @if !filter.is_empty() { a.btn href="/activity" { "Show everything" } }
            }
            @if events.is_empty() {
                p.empty.activity-empty {
                    @if filter.is_empty() { "Nothing has happened yet." }
                    @else { "Nothing in the newest " (scanned) " events matches these filters." }
                }
            } @else if !filter.is_empty() {
                p.muted { (events.len()) " of the newest " (scanned) " events match." }
            }
            // Always there, empty or not: each live event's fragment puts its
            // line at the top (`activity_line`, the dashboard's feed, the same
            // target id). live.js adds only lines that pass the filters, read
            // from these data attributes, and keeps at most data-max.
            ol #activity-list .activity.activity-log data-max=(LIVE_LINES)
                data-kind=(filter.kind.map(EventKind::as_str).unwrap_or_default()) data-who=(filter.who) data-q=(filter.q) {
                @for e in events { (activity_line_linked(e, present.contains(&e.file_id), names)) }
            }
        }
    }
}

/// Most lines the page keeps as live ones arrive: as many as it shows.
const LIVE_LINES: usize = 500;
