//! The one place an [`AppError`] (or a refusal at the edge) becomes a
//! response: the status, the sentence in the shape of the surface that was
//! asked (JSON for `/api`, `{"message"}` for Git LFS, plain text for Git,
//! live endpoints and scrapers, a toast for htmx, a page otherwise), a
//! `Retry-After` on every 429 and the Basic challenge on a 401 wherever a
//! client can answer one.

use maud::Markup;
use poem::Response;
use poem::http::{HeaderValue, StatusCode, header};

use crate::error::AppError;
use crate::http::views::{self, Page};

/// An error's HTTP status.
pub trait ErrorStatus {
    fn status(&self) -> StatusCode;
}

impl ErrorStatus for AppError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The one spelling of the Basic challenge (Git, Git LFS, scrapers).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"Latch\", charset=\"UTF-8\"";

/// Where a refusal is said, and so in which shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/api`: `{"error": …}`.
    Json,
    /// Git LFS: `{"message": …}` with the challenge Git needs to ask for
    /// credentials (also as `LFS-Authenticate`).
    Lfs,
    /// Git's own requests: a line of text, with the Basic challenge (also
    /// as `LFS-Authenticate`).
    Git,
    /// Plain text: live endpoints.
    Text,
    /// The network drive (`/dav`): plain text, with the Basic challenge a
    /// WebDAV client answers with the user's credentials.
    Dav,
    /// A scraper of `/metrics`: `{"error": …}` with the Basic challenge.
    Scraper,
    /// An htmx request: a toast that swaps nothing else.
    Htmx,
    /// A browser page: Latch's error page.
    Page,
}

/// `status` and `text` said in `surface`'s shape.
pub fn refusal(surface: Surface, status: StatusCode, text: &str) -> Response {
    let json = |key: &str, content_type: &str| {
        Response::builder()
            .status(status)
            .content_type(content_type)
            .body(serde_json::json!({ key: text }).to_string())
    };
    let mut resp = match surface {
        Surface::Json | Surface::Scraper => json("error", "application/json; charset=utf-8"),
        Surface::Lfs => json("message", "application/vnd.git-lfs+json"),
        Surface::Git => Response::builder()
            .status(status)
            .content_type("text/plain; charset=utf-8")
            .body(format!("{text}\n")),
        Surface::Text | Surface::Dav => Response::builder()
            .status(status)
            .content_type("text/plain; charset=utf-8")
            .body(text.to_string()),
        Surface::Htmx => {
            let mut resp = html(status, views::toast("error", text));
            resp.headers_mut()
                .insert("HX-Reswap", HeaderValue::from_static("none"));
            resp
        }
        Surface::Page => error_page(status, text),
    };
    if status == StatusCode::UNAUTHORIZED
        && matches!(
            surface,
            Surface::Lfs | Surface::Git | Surface::Scraper | Surface::Dav
        )
    {
        let challenge = HeaderValue::from_static(BASIC_CHALLENGE);
        let h = resp.headers_mut();
        h.insert(header::WWW_AUTHENTICATE, challenge.clone());
        // Git LFS reads its own header; everything under /vault.git sends
        // it, so a credential helper is asked the same way for both.
        if matches!(surface, Surface::Lfs | Surface::Git) {
            h.insert("lfs-authenticate", challenge);
        }
    }
    resp
}

/// `err` said in `surface`'s shape; server faults are logged here, once.
pub fn said(surface: Surface, err: &AppError) -> Response {
    err.log();
    let mut resp = match err {
        // A change set names every file in its way, for a script to act on.
        AppError::Held { message, held } if surface == Surface::Json => Response::builder()
            .status(err.status())
            .content_type("application/json; charset=utf-8")
            .body(
                serde_json::json!({
                    "error": message,
                    "conflicts": held
                        .iter()
                        .map(|h| serde_json::json!({"id": h.id, "path": h.path, "owner": h.owner}))
                        .collect::<Vec<_>>(),
                })
                .to_string(),
            ),
        _ => refusal(surface, err.status(), &err.public_message()),
    };
    with_retry_after(err, &mut resp);
    resp
}

/// A client told to wait is told for how long.
pub fn with_retry_after(err: &AppError, resp: &mut Response) {
    if let AppError::TooManyRequests {
        retry_after_secs, ..
    } = err
        && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// JSON errors for `/api`: poem-openapi handlers return `poem::Result`.
impl From<AppError> for poem::Error {
    fn from(err: AppError) -> Self {
        poem::Error::from_response(said(Surface::Json, &err))
    }
}

pub fn html(status: StatusCode, markup: Markup) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// Latch's own error page: the status and a sentence.
pub fn error_page(status: StatusCode, text: &str) -> Response {
    html(
        status,
        views::layout(
            Page::signed_out("Error"),
            views::error_page(status.as_u16(), text),
        ),
    )
}
