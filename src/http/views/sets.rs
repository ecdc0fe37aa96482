//! The controls for several files at once and for a file's name and
//! description: the toolbar's selection bar (the cards' tick boxes belong
//! to its form), the check-in of several files, the bulk upload form, and
//! a card's Move… and Describe… popovers.

use maud::{Markup, html};

use super::{Viewer, csrf_field, size_limit};
use crate::store::FileRecord;

/// New versions of several held files in one commit: each file is
/// matched by its name (the server says which it could not place).
pub(super) fn checkin_set_popover(viewer: &Viewer, max_upload: u64) -> Markup {
    html! {
        details.popover.checkin-set {
            summary.btn { "Check in several…" }
            div.popover-body {
                form.stack.drop-target method="post" action="/files/checkin" enctype="multipart/form-data"
                    hx-post="/files/checkin" hx-encoding="multipart/form-data" hx-swap="none" {
                    (csrf_field(viewer))
                    label { "New versions"
                        input type="file" name="file" multiple required;
                    }
                    p.muted.hint { "Pick or drop the files you have checked out; each is matched by its name. One commit for all." }
                    (size_limit(max_upload, Some(crate::files::MAX_SET)))
                    label { "What changed" textarea name="message" rows="3" required maxlength="5000" {} }
                    fieldset.bump {
                        legend { "Revision" }
                        label { input type="radio" name="bump" value="minor" checked; " Minor" }
                        label { input type="radio" name="bump" value="major"; " Major" }
                    }
                    label.check { input type="checkbox" name="keep" value="on"; " Keep them checked out" }
                    button.btn.primary type="submit" { "Check in all" }
                }
            }
        }
    }
}

/// The files ticked on their cards (`form="selection"`), acted on
/// together. A plain form without JavaScript; with it, live.js counts the
/// ticks and shows the bar only while something is ticked.
pub(super) fn selection_bar(viewer: &Viewer) -> Markup {
    html! {
        form #selection .selection method="post" action="/files/checkout" hx-post="/files/checkout" hx-swap="none"
            data-count="0" aria-label="Selected files" {
            (csrf_field(viewer))
            span.selection-count.js-only role="status" { "0 selected" }
            span.selection-lead.nojs-only { "Ticked files:" }
            label.sr-only for="selection-comment" { "Comment for the check-out" }
            input #selection-comment .comment type="text" name="comment" maxlength="500" placeholder="Comment (optional)";
            button.btn.primary type="submit" { "Check out selected" }
            // "Cancel selected" read as "unselect them" (that is Clear).
            button.btn type="submit" formaction="/files/cancel" { "Cancel their check-outs" }
            button.btn.quiet.js-only type="button" data-clear-selection { "Clear" }
        }
    }
}

/// The bulk upload, folded inside the upload popover.
pub(super) fn bulk_upload_form(viewer: &Viewer, max_upload: u64) -> Markup {
    html! {
        // Folded away: most uploads are one file. Without JavaScript a
        // plain multipart post; with it, live.js sends each file under
        // its path in the folder, with progress.
        details.more.bulk-more {
            summary { "Upload several files or a folder…" }
            form.stack.bulk method="post" action="/files/bulk" enctype="multipart/form-data" data-bulk {
                (csrf_field(viewer))
                label { "Files" input type="file" name="file" multiple; }
                label { "Or a whole folder" input type="file" name="file" webkitdirectory; }
                label { "Into the folder"
                    input type="text" name="folder" placeholder="fixtures (empty: the top)" maxlength="255";
                }
                label { "Initial revision" input type="text" name="revision" value="1.0" pattern="[0-9]+\\.[0-9]+" title="A revision is two numbers with a dot, such as 1.0 or 2.3 (MAJOR.MINOR)" required; }
                p.muted { "One commit for all of them. You can also drop files or a folder anywhere on the list." }
                (size_limit(max_upload, Some(crate::files::MAX_UPLOAD_FILES)))
                button.btn.primary type="submit" { "Upload all" }
            }
        }
    }
}

/// A card's Move… (its holder, or an admin while nobody holds it) and
/// Describe… (its holder or an admin), as the server allows them.
pub(super) fn edit_popovers(f: &FileRecord, viewer: &Viewer) -> Markup {
    let mine = f.locked_by() == Some(viewer.username.as_str());
    let base = format!("/files/{}", f.id);
    html! {
        @if mine || (viewer.admin && f.lock.is_none()) {
            details.popover.quiet.move {
                summary.btn { "Move…" }
                div.popover-body {
                    form.stack method="post" action=(format!("{base}/move")) hx-post=(format!("{base}/move")) hx-swap="none" {
                        (csrf_field(viewer))
                        label { "New path" input type="text" name="path" value=(f.path) required maxlength="255"; }
                        p.muted { "Rename it, or move it to another folder (made if new). Its history, check-out and waiting line go with it." }
                        button.btn.primary type="submit" { "Move" }
                    }
                }
            }
        }
        @if mine || viewer.admin {
            details.popover.quiet.describe {
                summary.btn { "Describe…" }
                div.popover-body {
                    form.stack method="post" action=(format!("{base}/describe")) hx-post=(format!("{base}/describe")) hx-swap="none" {
                        (csrf_field(viewer))
                        label { "Description" textarea name="description" rows="3" maxlength="2000" { (f.description) } }
                        button.btn.primary type="submit" { "Save description" }
                    }
                }
            }
        }
    }
}
