//! A version's preview (text with line numbers, a raster image from the raw
//! route, or its type and size) and two versions compared, each as a page or
//! as a fragment for the side panel.

use maud::{Markup, html};

use crate::files::{Comparison, Preview, Shown, human_size};

/// Where a version of file `id` is reached: `?rev=COMMIT`, or nothing for
/// the current one.
fn rev_query(rev: Option<&str>) -> String {
    rev.map(|r| format!("?rev={r}")).unwrap_or_default()
}

fn panel_head(title: Markup, as_panel: bool) -> Markup {
    html! {
        header.panel-head {
            // In the drawer, the dialog's name (`aria-labelledby` on #panel);
            // on a page of its own, the page's one level-one heading.
            @if as_panel { h2 #panel-title tabindex="-1" { (title) } } @else { h1 { (title) } }
            @if as_panel { button.btn.close type="button" data-close-panel aria-label="Close" { "×" } }
        }
    }
}

pub fn preview(id: u64, p: &Preview, as_panel: bool) -> Markup {
    let q = rev_query(p.rev.as_deref());
    let base = format!("/files/{id}");
    let rev = if p.revision.is_empty() {
        String::new()
    } else {
        format!(" at {}", p.revision)
    };
    html! {
        section.preview data-viewing-file=[as_panel.then_some(id)] {
            (panel_head(html! { "Preview of " (p.path) (rev) }, as_panel))
            p.actions {
                a.btn href=(format!("{base}/download{q}")) download { "Download" }
                " "
                a.btn href=(format!("{base}/history")) hx-get=(format!("{base}/history")) hx-target="#panel" hx-swap="innerHTML" { "History" }
            }
            @match &p.shown {
                Shown::Text { text, truncated } => {
                    @if *truncated {
                        p.notice.truncated {
                            "Showing the first " (human_size(crate::files::PREVIEW_BYTES)) " of " (human_size(p.size)) "; download the file to see all of it."
                        }
                    }
                    @if text.is_empty() {
                        p.empty { "This version is empty." }
                    } @else {
                        ol.lines aria-label="Lines" {
                            @for line in text.lines() { li { (line) } }
                        }
                    }
                }
                Shown::Image(kind) => {
                    figure.image-preview {
                        img src=(format!("{base}/raw{q}")) alt=(format!("{} ({})", p.path, kind.mime()));
                        figcaption.muted { (kind.mime()) ", " (human_size(p.size)) }
                    }
                }
                Shown::Other { kind } => {
                    dl.file-facts {
                        dt { "Type" } dd { (kind) }
                        dt { "Size" } dd { (human_size(p.size)) }
                    }
                    p.muted { "This type is not shown in the browser; download it to open it." }
                }
            }
        }
    }
}

/// The most rows of a comparison a page shows, and the most of the diff's
/// text they may carry: each row is ~90 bytes of markup around its line,
/// so a page of every row of a 4 MiB comparison was 180-250 MB built in
/// memory. The rest is one click away as the `.diff`.
const SHOWN_ROWS: usize = 5_000;
const SHOWN_BYTES: usize = 1024 * 1024;

/// One line of a unified diff, as a person reads it.
enum Line<'a> {
    Hunk(&'a str),
    Added(&'a str),
    Removed(&'a str),
    Same(&'a str),
    Note(&'a str),
}

pub fn comparison(id: u64, c: &Comparison, from: &str, to: &str, as_panel: bool) -> Markup {
    let base = format!("/files/{id}");
    let lines = c
        .unified
        .lines()
        .filter(|l| !l.starts_with("--- ") && !l.starts_with("+++ "))
        .map(|l| match l.as_bytes().first() {
            Some(b'@') => Line::Hunk(l),
            Some(b'+') => Line::Added(&l[1..]),
            Some(b'-') => Line::Removed(&l[1..]),
            Some(b' ') => Line::Same(&l[1..]),
            _ => Line::Note(l),
        });
    let mut budget = SHOWN_BYTES;
    let shown: Vec<Line<'_>> = lines
        .take(SHOWN_ROWS)
        .take_while(|l| {
            let len = match l {
                Line::Hunk(t)
                | Line::Added(t)
                | Line::Removed(t)
                | Line::Same(t)
                | Line::Note(t) => t.len(),
            };
            let fits = len <= budget;
            budget = budget.saturating_sub(len);
            fits
        })
        .collect();
    let rows = c
        .unified
        .lines()
        .filter(|l| !l.starts_with("--- ") && !l.starts_with("+++ "))
        .count();
    let (added, removed) = c.unified.lines().fold((0, 0), |(a, r), l| {
        match (
            l.starts_with('+') && !l.starts_with("+++ "),
            l.starts_with('-') && !l.starts_with("--- "),
        ) {
            (true, _) => (a + 1, r),
            (_, true) => (a, r + 1),
            _ => (a, r),
        }
    });
    html! {
        section.comparison data-viewing-file=[as_panel.then_some(id)] {
            (panel_head(html! { "Compare " (c.path) ": " (c.from_revision) " → " (c.to_revision) }, as_panel))
            p.actions {
                @for (rev, label) in [(from, &c.from_revision), (to, &c.to_revision)] {
                    @let href = format!("{base}/preview?rev={rev}");
                    a.btn href=(href) hx-get=(href) hx-target="#panel" hx-swap="innerHTML" { "Preview " (label) }
                    " "
                }
                " "
                a.btn href=(format!("/api{base}/diff?from={from}&to={to}")) download=(format!("{}.diff", c.path.file_name())) { "Download .diff" }
                " "
                a.btn href=(format!("{base}/history")) hx-get=(format!("{base}/history")) hx-target="#panel" hx-swap="innerHTML" { "History" }
            }
            @if c.cut_short {
                p.notice.truncated { "The comparison was cut short: the changes shown are correct, but may be more than the smallest set of changes." }
            }
            @if c.unified.is_empty() {
                p.empty { "The two versions have the same content." }
            } @else {
                p.diff-summary { (count_lines(added)) " added (+), " (count_lines(removed)) " removed (−)." }
                table.diff {
                    caption.sr-only { "Changes from " (c.from_revision) " to " (c.to_revision) "; + marks an added line, − a removed one." }
                    tbody {
                        @for line in shown.iter() {
                            @match line {
                                Line::Hunk(h) => tr.hunk { td.sign {} td { (h) } }
                                Line::Added(t) => tr.added { td.sign aria-label="added" { "+" } td { ins { (t) } } }
                                Line::Removed(t) => tr.removed { td.sign aria-label="removed" { "−" } td { del { (t) } } }
                                Line::Same(t) => tr { td.sign {} td { (t) } }
                                Line::Note(t) => tr.note { td.sign {} td { (t) } }
                            }
                        }
                    }
                }
                @if shown.len() < rows {
                    p.notice.truncated {
                        (count_lines(rows - shown.len())) " of this comparison are not shown here; "
                        a href=(format!("/api{base}/diff?from={from}&to={to}")) download=(format!("{}.diff", c.path.file_name())) { "download the .diff" }
                        " to see all of it."
                    }
                }
            }
        }
    }
}

/// `1 line`, `3 lines`.
fn count_lines(n: usize) -> String {
    if n == 1 {
        "1 line".into()
    } else {
        format!("{n} lines")
    }
}
