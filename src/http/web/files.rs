//! The dashboard and everything done to files from a browser: list,
//! card, check-out, cancel, override, delete, upload, check-in, history,
//! download, and the activity page.

use std::collections::HashMap;

use maud::html;
use poem::http::{HeaderValue, Method, StatusCode};
use poem::web::{Data, Multipart, Path, Query};
use poem::{Body, Request, Response, handler};

use super::{
    action_done, back_from, file_action, filters_from, is_htmx, notice, page, parse_id, read_form,
    redirect, respond, set_html_body, take_flash,
};
use crate::domain::{LockComment, NudgeMessage};
use crate::error::AppError;
use crate::files::Files;
use crate::http::downloads::download_response;
use crate::http::error::html;
use crate::http::forms::{self, Fields, new_file_from, new_version_from};
use crate::http::guards::Guard;
use crate::http::views::{self, Viewer};
use crate::live::Hub;

#[handler]
pub(super) async fn dashboard(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Data(hub): Data<&Hub>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(req, async {
        let Some(session) = guard.session().await? else {
            if guard.accounts.user_count().await? == 0 {
                return Ok(redirect("/setup"));
            }
            return Ok(redirect("/login"));
        };
        let viewer = Viewer::of(&session);
        let board = files.board(views::DASHBOARD_ACTIVITY).await?;
        let filters = filters_from(&query, session.user.view);
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        let presence = hub.presence().snapshot();
        let content = views::dashboard(views::Dashboard {
            files: &board.files,
            viewer: &viewer,
            filters: &filters,
            recent: &board.recent,
            max_upload: guard.config.max_upload,
            stale_after: files.stale_after(),
            presence: &presence,
            cards: &super::cards_of(req),
        });
        let mut page = page("Files", &session, "files", flash);
        page.live_seq = Some(board.seq);
        page.presence = Some(&presence);
        page.skip_to_files = true;
        set_html_body(&mut resp, views::layout(page, content));
        Ok(resp)
    })
    .await
}

#[handler]
pub(super) async fn file_list(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // The list is a fragment for htmx; the address a person sees, reloads
    // and shares is the dashboard's, with the same filters.
    let page = match req.uri().query().filter(|q| !q.is_empty()) {
        Some(q) => format!("/?{q}"),
        None => "/".to_string(),
    };
    if !is_htmx(req) {
        return redirect(&page);
    }
    respond(req, async {
        let session = guard.signed_in().await?;
        let list = files.list().await?;
        let markup = views::file_list(
            &list,
            &Viewer::of(&session),
            &filters_from(&query, session.user.view),
            files.stale_after(),
            &super::cards_of(req),
        );
        let mut resp = html(StatusCode::OK, markup);
        if let Ok(url) = HeaderValue::from_str(&page) {
            resp.headers_mut().insert("HX-Push-Url", url);
        }
        Ok(resp)
    })
    .await
}

/// The toolbar's Cards | Table: remembers the choice for the person (it
/// follows them to any browser) and shows the list that way, with the
/// filters the form carried. Plain form: back to the dashboard's address;
/// htmx: the list, and that address to push.
#[handler]
pub(super) async fn set_view(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let view = views::ListView::parse(fields.text("set_view"))
            .ok_or_else(|| AppError::BadRequest("Choose a view: cards or table.".to_string()))?;
        guard
            .accounts
            .set_view(&session.user.username, view)
            .await?;
        let query: HashMap<String, String> = ["q", "state", "sort"]
            .into_iter()
            .filter_map(|k| fields.get(k).map(|v| (k.to_string(), v.to_string())))
            .collect();
        let filters = filters_from(&query, view);
        let url = filters.url();
        if !is_htmx(req) {
            return Ok(redirect(&url));
        }
        let list = files.list().await?;
        let markup = views::file_list(
            &list,
            &Viewer::of(&session),
            &filters,
            files.stale_after(),
            &super::cards_of(req),
        );
        let mut resp = html(StatusCode::OK, markup);
        if let Ok(url) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert("HX-Push-Url", url);
        }
        Ok(resp)
    })
    .await
}

#[handler]
pub(super) async fn file_card(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        let file = files.get(parse_id(&id)?).await?;
        Ok(html(
            StatusCode::OK,
            views::card(
                &file,
                &Viewer::of(&session),
                false,
                files.stale_after(),
                &super::cards_of(req),
            ),
        ))
    })
    .await
}
/// A form action on one file: the handler reads the form, checks the
/// writer (session, origin, CSRF), runs `$op` with `(files, actor, id,
/// fields)` and answers with the card and a toast (htmx) or a flash.
macro_rules! file_action_handler {
    ($(#[$doc:meta])* $name:ident, |$files:ident, $actor:ident, $id:ident, $fields:pat_param| $op:expr) => {
        $(#[$doc])*
        #[handler]
        pub(super) async fn $name(
            req: &Request,
            guard: Guard<'_>,
            Data($files): Data<&Files>,
            Path(id): Path<String>,
            body: Body,
        ) -> Response {
            file_action(req, guard, body, &id, |$actor, $id, $fields| async move { $op }).await
        }
    };
}

/// Check out, and with `then=download` (the card's *Check out & download*)
/// go on to download the version just taken: the browser saves it and
/// stays on the page, whose card turns live.
#[handler]
pub(super) async fn checkout(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let id = parse_id(&id)?;
        let comment = LockComment::parse(fields.text("comment"))?;
        let f = files.checkout(&session.actor(), id, comment).await?;
        let message = format!("You checked out {}.", f.path);
        let then_download = fields.get("then") == Some("download");
        let download_url = format!("/files/{id}/download");
        if then_download && !is_htmx(req) {
            return Ok(redirect(&download_url));
        }
        let back = back_from(&fields);
        let mut resp = action_done(req, &session, Some(&f), message, files.stale_after(), back);
        if then_download && let Ok(to) = HeaderValue::from_str(&download_url) {
            resp.headers_mut().insert("HX-Redirect", to);
        }
        Ok(resp)
    })
    .await
}

file_action_handler!(cancel, |files, actor, id, _| {
    let f = files.cancel(&actor, id).await?;
    let message = format!("Check-out of {} cancelled.", f.path);
    Ok((Some(f), message))
});

file_action_handler!(join_queue, |files, actor, id, _| {
    let f = files.join_queue(&actor, id).await?;
    let message = format!("You are number {} in line for {}.", f.queue.len(), f.path);
    Ok((Some(f), message))
});

file_action_handler!(leave_queue, |files, actor, id, _| {
    let f = files.leave_queue(&actor, id).await?;
    let message = format!("You left the line for {}.", f.path);
    Ok((Some(f), message))
});

file_action_handler!(decline, |files, actor, id, _| {
    let f = files.decline(&actor, id).await?;
    let next = match &f.reserved {
        Some(r) => format!("it is reserved for {} now", r.username),
        None => "it is available".to_string(),
    };
    let message = format!("You declined {}; {next}.", f.path);
    Ok((Some(f), message))
});

file_action_handler!(nudge, |files, actor, id, fields| {
    let message = NudgeMessage::parse(fields.text("message"))?;
    let f = files.get(id).await?;
    files.nudge(&actor, id, message).await?;
    let holder = f.locked_by().unwrap_or("the holder");
    Ok((None, format!("You asked {holder} to release {}.", f.path)))
});

file_action_handler!(
    /// A form names the holder it showed (compare-and-swap); a bare
    /// request overrides whoever holds the file.
    override_lock,
    |files, actor, id, fields| {
        let f = match fields.get("holder").filter(|h| !h.is_empty()) {
            Some(holder) => files.override_lock_held_by(&actor, id, holder).await?.0,
            None => files.override_lock(&actor, id).await?,
        };
        let message = format!("The check-out of {} was overridden.", f.path);
        Ok((Some(f), message))
    }
);

#[handler]
pub(super) async fn delete_file(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let is_delete_verb = req.method() == Method::DELETE;
    respond(req, async {
        let fields = if is_delete_verb {
            Fields::default()
        } else {
            read_form(body).await?
        };
        let session = guard.writer(Some(&fields)).await?;
        let f = files.delete(&session.actor(), parse_id(&id)?).await?;
        let message = format!("{} was deleted.", f.path);
        if is_htmx(req) {
            let markup = html! {
                article id=(format!("file-{}", f.id)) hx-swap-oob="delete" {}
                (views::toast("success", &message))
            };
            return Ok(html(StatusCode::OK, markup));
        }
        if is_delete_verb {
            return Ok(Response::builder().status(StatusCode::NO_CONTENT).finish());
        }
        Ok(notice("/", message))
    })
    .await
}

#[handler]
pub(super) async fn upload(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    multipart: Multipart,
) -> Response {
    respond(req, async {
        // Check the session before reading a possibly large body.
        guard.same_origin()?;
        guard.signed_in().await?;
        let mut form = forms::read_upload(files, multipart).await?;
        let session = guard.writer(Some(&form.fields)).await?;
        let (file_name, spool) = form.take_file()?;
        let new = new_file_from(&form.fields, &file_name)?;
        let f = files.upload(&session.actor(), new, spool).await?;
        let message = format!("{} uploaded as revision {}.", f.path, f.revision);
        // The card itself arrives through the live stream, in its folder.
        if is_htmx(req) {
            return Ok(html(StatusCode::OK, views::toast("success", &message)));
        }
        Ok(notice("/", message))
    })
    .await
}

#[handler]
pub(super) async fn checkin(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    respond(req, async {
        guard.same_origin()?;
        let early = guard.signed_in().await?;
        let id = parse_id(&id)?;
        files.precheck_checkin(&early.actor(), id).await?;
        let mut form = forms::read_upload(files, multipart).await?;
        let session = guard.writer(Some(&form.fields)).await?;
        let version = new_version_from(&form.fields)?;
        let f =
            forms::checkin_upload_or_draft(files, &session.actor(), id, version, &mut form).await?;
        let message = format!("{} checked in as revision {}.", f.path, f.revision);
        Ok(action_done(
            req,
            &session,
            Some(&f),
            message,
            files.stale_after(),
            "/",
        ))
    })
    .await
}

#[handler]
pub(super) async fn history(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        let (file, versions) = files.history(parse_id(&id)?).await?;
        let watches = files.watches(&session.user.username).await?;
        let viewer = Viewer::of(&session);
        if is_htmx(req) {
            return Ok(html(
                StatusCode::OK,
                views::history(&file, &versions, true, &watches, &viewer),
            ));
        }
        let title = format!("History of {}", file.path);
        Ok(html(
            StatusCode::OK,
            views::layout(
                page(&title, &session, "files", None),
                views::history(&file, &versions, false, &watches, &viewer),
            ),
        ))
    })
    .await
}

#[handler]
pub(super) async fn download(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(req, async {
        guard.signed_in().await?;
        let d = files
            .open(parse_id(&id)?, query.get("rev").map(String::as_str))
            .await?;
        Ok(download_response(d))
    })
    .await
}

#[handler]
pub(super) async fn activity(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        let pick = |k: &str| {
            query
                .get(k)
                .map(|v| v.trim().chars().take(255).collect::<String>())
                .unwrap_or_default()
        };
        let filter = views::ActivityFilter {
            kind: views::ActivityFilter::kind_named(&pick("kind")).map_err(AppError::BadRequest)?,
            who: pick("who").to_lowercase(),
            q: pick("q"),
        };
        // Unfiltered, the newest 500; filtered, what matches among the
        // whole log (it keeps the newest 10,000), at most 500 of it.
        let scanned = if filter.is_empty() {
            SHOWN_EVENTS
        } else {
            crate::store::EVENT_RETENTION as usize
        };
        let events = files.recent_events(scanned).await?;
        // The page is live from the newest event it read: anything after
        // is replayed when it connects.
        let seq = events.first().map_or(0, |e| e.seq);
        let scanned = events.len();
        let shown: Vec<_> = events
            .into_iter()
            .filter(|e| filter.matches(e))
            .take(SHOWN_EVENTS)
            .collect();
        let present = files.list().await?.iter().map(|f| f.id).collect();
        let mut page = page("Activity", &session, "activity", None);
        page.live_seq = Some(seq);
        Ok(html(
            StatusCode::OK,
            views::layout(
                page,
                views::activity_page(
                    &shown,
                    scanned,
                    &filter,
                    &present,
                    &super::cards_of(req).names,
                ),
            ),
        ))
    })
    .await
}

/// Most lines the Activity page shows.
const SHOWN_EVENTS: usize = 500;

/// The admins' list of stale locks, with override and nudge.
#[handler]
pub(super) async fn stale_locks(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        crate::files::require_admin(&session.actor(), "see the stale locks")?;
        let list = files.list().await?;
        let names: HashMap<String, String> = guard
            .accounts
            .users()
            .await?
            .into_iter()
            .map(|u| (u.username, u.display_name))
            .collect();
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        let markup = views::layout(
            page("Stale locks", &session, "locks", flash),
            views::stale_locks_page(&list, &names, &Viewer::of(&session), files.stale_after()),
        );
        set_html_body(&mut resp, markup);
        Ok(resp)
    })
    .await
}
