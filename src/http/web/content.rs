//! Seeing inside a file from a browser: a version's preview, a raster
//! version's own bytes for `<img>`, and two versions compared. Each page
//! also answers htmx as a fragment for the side panel, like history.

use std::collections::HashMap;

use poem::http::{StatusCode, header};
use poem::web::{Data, Path, Query};
use poem::{Request, Response, handler};

use super::{is_htmx, page, parse_id, respond};
use crate::error::AppError;
use crate::files::Files;
use crate::http::error::html;
use crate::http::guards::Guard;
use crate::http::views;

/// `GET /files/:id/preview[?rev=COMMIT]`.
#[handler]
pub(super) async fn preview(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        let id = parse_id(&id)?;
        let p = files
            .preview(id, query.get("rev").map(String::as_str))
            .await?;
        if is_htmx(req) {
            return Ok(html(StatusCode::OK, views::preview(id, &p, true)));
        }
        let title = format!("Preview of {}", p.path);
        Ok(html(
            StatusCode::OK,
            views::layout(
                page(&title, &session, "files", None),
                views::preview(id, &p, false),
            ),
        ))
    })
    .await
}

/// `GET /files/:id/raw[?rev=COMMIT]`: a raster version's bytes for `<img>`,
/// typed by its magic bytes; anything else is 404. Sandboxed and never
/// sniffed, so even a file that fooled the check could not run here.
#[handler]
pub(super) async fn raw(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(req, async {
        guard.signed_in().await?;
        let (kind, d) = files
            .raster(parse_id(&id)?, query.get("rev").map(String::as_str))
            .await?;
        let mut resp = crate::http::downloads::download_response(d);
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(kind.mime()),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            header::HeaderValue::from_static("inline"),
        );
        Ok(resp)
    })
    .await
}

/// `GET /files/:id/diff?from=COMMIT&to=COMMIT`.
#[handler]
pub(super) async fn diff(
    req: &Request,
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        let id = parse_id(&id)?;
        let pick = |k: &str| query.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let (Some(from), Some(to)) = (pick("from"), pick("to")) else {
            return Err(AppError::BadRequest(
                "Name the two versions to compare: ?from=COMMIT&to=COMMIT, commit ids from the file's history.".into(),
            ));
        };
        let c = files.compare(id, from, to).await?;
        if is_htmx(req) {
            return Ok(html(
                StatusCode::OK,
                views::comparison(id, &c, from, to, true),
            ));
        }
        let title = format!("Compare {}", c.path);
        Ok(html(
            StatusCode::OK,
            views::layout(
                page(&title, &session, "files", None),
                views::comparison(id, &c, from, to, false),
            ),
        ))
    })
    .await
}
