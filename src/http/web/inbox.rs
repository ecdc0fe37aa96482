//! The notifications page and what changes it: marking notifications
//! read, watching files and folders, asking a holder to release a file.

use maud::html;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};

use super::{is_htmx, notice, page, parse_id, read_form, respond, set_html_body, take_flash};
use crate::domain::Folder;
use crate::error::{AppError, AppResult};
use crate::files::Files;
use crate::http::error::html;
use crate::http::forms::Fields;
use crate::http::guards::Guard;
use crate::http::views::{self, Viewer};
use crate::inbox::MarkRead;
use crate::live::Hub;

#[handler]
pub(super) async fn notifications(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Data(hub): Data<&Hub>,
) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        let who = &session.user.username;
        let inbox = files.inbox(who, false).await?;
        let watches = files.watches(who).await?;
        let watched: Vec<_> = files
            .list()
            .await?
            .iter()
            .filter(|f| watches.files.contains(&f.id))
            .cloned()
            .collect();
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        // The bell shows the count as read with the page, not a stale one.
        let mut session = session.clone();
        session.unread = inbox.unread;
        let content = views::notifications_page(&inbox, &watches, &watched, &Viewer::of(&session));
        // Live, so the bell stays true while the page is open.
        let mut page = page("Notifications", &session, "notifications", flash);
        page.live_seq = Some(inbox.seq);
        // Live pages show who is online (its updates have a place to land).
        let presence = hub.presence().snapshot();
        page.presence = Some(&presence);
        set_html_body(&mut resp, views::layout(page, content));
        Ok(resp)
    })
    .await
}

/// `on` or `off` from a form's `watch` field (absent: on).
fn watch_switch(fields: &Fields) -> AppResult<bool> {
    match fields.get("watch").unwrap_or("on") {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(AppError::BadRequest(format!(
            "'{other}' is not a watch choice; send watch=on or watch=off."
        ))),
    }
}

#[handler]
pub(super) async fn mark_read(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let which =
            match (fields.get("all"), fields.get("id")) {
                (Some("true"), _) => MarkRead::All,
                (_, Some(id)) => MarkRead::Ids(vec![id.parse().map_err(|_| {
                    AppError::BadRequest(format!("'{id}' is not a notification id."))
                })?]),
                _ => {
                    return Err(AppError::BadRequest(
                        "Say which notifications to mark read: all=true or id=N.".into(),
                    ));
                }
            };
        files.mark_read(&session.user.username, which).await?;
        // The page shows the change; live connections get the bell.
        Ok(notice("/notifications", "Marked read.".to_string()))
    })
    .await
}

#[handler]
pub(super) async fn watch_file(
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
        let on = watch_switch(&fields)?;
        let f = files.watch(&session.actor(), id, on).await?;
        let text = if on {
            format!("You watch {} now.", f.path)
        } else {
            format!("You stopped watching {}.", f.path)
        };
        if is_htmx(req) {
            let watches = files.watches(&session.user.username).await?;
            let viewer = Viewer::of(&session);
            return Ok(html(
                StatusCode::OK,
                html! { (views::watch_toggle(&f, &watches, &viewer)) (views::toast("success", &text)) },
            ));
        }
        let back = match fields.get("back") {
            Some("history") => format!("/files/{id}/history"),
            _ => "/notifications".to_string(),
        };
        Ok(notice(&back, text))
    })
    .await
}

#[handler]
pub(super) async fn watch_folder(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let folder = Folder::parse(fields.text("folder"))?;
        let on = watch_switch(&fields)?;
        let text = if on {
            format!("You watch {folder} now.")
        } else {
            format!("You stopped watching {folder}.")
        };
        files.watch_folder(&session.actor(), folder, on).await?;
        Ok(notice("/notifications", text))
    })
    .await
}
