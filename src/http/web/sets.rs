//! Several files at once from a browser — check out, cancel and check in
//! a selection, upload a folder's worth — and a file moved or described.
//! Plain forms that work without JavaScript (a redirect with a flash);
//! with htmx, the changed cards and one toast.

use maud::html;
use poem::http::StatusCode;
use poem::web::{Data, Multipart, Path};
use poem::{Body, Request, Response, handler};

use super::{file_action, is_htmx, notice, parse_id, respond};
use crate::accounts::Session;
use crate::domain::{Description, LockComment, RepoPath};
use crate::error::{AppError, AppResult};
use crate::files::{Files, MAX_SET};
use crate::http::error::html;
use crate::http::forms::{self, Fields, new_version_from};
use crate::http::guards::Guard;
use crate::http::serve;
use crate::http::views::{self, Viewer};
use crate::store::FileRecord;

/// A selection form: the checked `ids` (a name given once per box) and
/// the other fields, each once.
async fn read_selection(body: Body) -> AppResult<(Vec<u64>, Fields)> {
    let bytes = body
        .into_bytes_limit(serve::MAX_BODY as usize)
        .await
        .map_err(|_| AppError::TooLarge("The form is too large.".into()))?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| AppError::BadRequest("The form is malformed or not valid UTF-8.".into()))?;
    let mut ids = Vec::new();
    let mut rest = Vec::new();
    for (name, value) in pairs {
        if name == "ids" {
            // A repeat counts once (as on /api): stopping at a count of
            // boxes instead silently dropped the files named after it.
            let id = parse_id(value.trim())?;
            if ids.contains(&id) {
                continue;
            }
            if ids.len() == MAX_SET {
                return Err(AppError::Invalid(format!(
                    "Select at most {MAX_SET} files at once; nothing was changed."
                )));
            }
            ids.push(id);
        } else {
            rest.push((name, value));
        }
    }
    if ids.is_empty() {
        return Err(AppError::Invalid(
            "Select at least one file (tick its box) first.".into(),
        ));
    }
    Ok((ids, Fields::from_pairs(rest)?))
}

/// What a change of several files answers: for htmx their cards and one
/// toast; for a plain form, the dashboard with a flash.
fn set_done(
    req: &Request,
    session: &Session,
    files: &[FileRecord],
    message: String,
    stale_after: std::time::Duration,
) -> Response {
    if is_htmx(req) {
        let viewer = Viewer::of(session);
        let cards = super::cards_of(req);
        let markup = html! {
            @for f in files { (views::card(f, &viewer, true, stale_after, &cards)) }
            (views::toast("success", &message))
        };
        return html(StatusCode::OK, markup);
    }
    notice("/", message)
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

#[handler]
pub(super) async fn checkout_set(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    body: Body,
) -> Response {
    respond(req, async {
        let (ids, fields) = read_selection(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let comment = LockComment::parse(fields.text("comment"))?;
        let recs = files.checkout_set(&session.actor(), &ids, comment).await?;
        let message = format!("Checked out {}.", count(recs.len()));
        Ok(set_done(req, &session, &recs, message, files.stale_after()))
    })
    .await
}

#[handler]
pub(super) async fn cancel_set(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    body: Body,
) -> Response {
    respond(req, async {
        let (ids, fields) = read_selection(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let recs = files.cancel_set(&session.actor(), &ids).await?;
        let message = format!("Cancelled the check-out of {}.", count(recs.len()));
        Ok(set_done(req, &session, &recs, message, files.stale_after()))
    })
    .await
}

#[handler]
pub(super) async fn checkin_set(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    multipart: Multipart,
) -> Response {
    respond(req, async {
        guard.same_origin()?;
        let early = guard.signed_in().await?;
        let actor = early.actor();
        let (fields, parts) = forms::read_checkin_set(files, &actor, multipart).await?;
        let session = guard.writer(Some(&fields)).await?;
        let version = new_version_from(&fields)?;
        let recs = files.checkin_set(&session.actor(), parts, version).await?;
        let message = format!("Checked in {} in one commit.", count(recs.len()));
        Ok(set_done(req, &session, &recs, message, files.stale_after()))
    })
    .await
}

#[handler]
pub(super) async fn bulk_upload(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    multipart: Multipart,
) -> Response {
    respond(req, async {
        guard.same_origin()?;
        guard.signed_in().await?;
        let (fields, parts, revision) = forms::read_bulk(files, multipart).await?;
        let session = guard.writer(Some(&fields)).await?;
        let recs = files.upload_set(&session.actor(), parts, revision).await?;
        let message = match recs.as_slice() {
            [one] => format!("Uploaded {}.", one.path),
            _ => {
                // Where they landed, not what was typed: a picked folder
                // keeps its own name ("cam/…") under an empty "Into".
                let common = common_folder(recs.iter().map(|r| r.path.folder()));
                let place = if common.is_empty() {
                    "the top of the vault".to_string()
                } else {
                    format!("{common}/")
                };
                format!(
                    "Uploaded {} in one commit. They are in {place}.",
                    count(recs.len())
                )
            }
        };
        // New cards arrive live, in their folders.
        Ok(set_done(req, &session, &[], message, files.stale_after()))
    })
    .await
}

#[handler]
pub(super) async fn move_file(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    file_action(req, guard, body, &id, |actor, id, fields| async move {
        let to = RepoPath::parse(fields.text("path"))?;
        let f = files.move_file(&actor, id, to).await?;
        // The card moves folders with the live update.
        Ok((None, format!("Moved to {}.", f.path)))
    })
    .await
}

#[handler]
pub(super) async fn describe(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    file_action(req, guard, body, &id, |actor, id, fields| async move {
        let description = Description::parse(fields.text("description"))?;
        let f = files.describe(&actor, id, description).await?;
        Ok((Some(f), "Description saved.".to_string()))
    })
    .await
}

/// The deepest folder that holds every one of `folders` (`""`: the top).
fn common_folder<'a>(mut folders: impl Iterator<Item = &'a str>) -> &'a str {
    let Some(first) = folders.next() else {
        return "";
    };
    folders.fold(first, |common, f| {
        let mut end = 0;
        for (a, b) in common.split('/').zip(f.split('/')) {
            if a != b {
                break;
            }
            end += a.len() + 1;
        }
        &common[..end.saturating_sub(1).min(common.len())]
    })
}

#[cfg(test)]
mod tests {
    use super::common_folder;

    #[test]
    fn the_common_folder_is_the_deepest_one_holding_all() {
        assert_eq!(common_folder(["cam", "cam"].into_iter()), "cam");
        assert_eq!(common_folder(["cam/a", "cam/b"].into_iter()), "cam");
        assert_eq!(common_folder(["cam/a/x", "cam/a"].into_iter()), "cam/a");
        assert_eq!(common_folder(["cam", "camber"].into_iter()), "");
        assert_eq!(common_folder(["", "cam"].into_iter()), "");
        assert_eq!(common_folder(std::iter::empty()), "");
    }
}
