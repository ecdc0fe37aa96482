//! The HTML side: the routes of pages and htmx fragments, and what every
//! handler shares: plain-form fallbacks (redirect with a one-shot flash
//! message), errors said the HTML way, forms read at the edge. Handlers
//! are grouped by what a person does: [`files`] (the dashboard and file
//! actions), [`sign_in`] (sign-in, set-up, sign-up), [`people`] (users
//! and one's own account).

mod content;
mod files;
mod inbox;
mod people;
mod sets;
mod sign_in;

use std::collections::HashMap;

use maud::html;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Request, Response, Route};

use crate::accounts::Session;
use crate::error::{AppError, AppResult};
use crate::http::allow::{get, post};
use crate::http::error::{Surface, html, said};
use crate::http::forms::{self, Fields};
use crate::http::guards;
use crate::http::live::{sse_endpoint, viewing, ws_endpoint};
use crate::http::serve;
use crate::http::views::{self, Filters, Flash, ListView, Page, Viewer};
use crate::secret;
use crate::store::FileRecord;

// One route per line, as a table: tests/it/security.rs reads them.
#[rustfmt::skip]
pub fn routes() -> Route {
    Route::new()
        .at("/", get(files::dashboard))
        .at("/login", get(sign_in::login_form).post(sign_in::login_submit))
        .at("/logout", post(sign_in::logout))
        .at("/setup", get(sign_in::setup_form).post(sign_in::setup_submit))
        .at("/signup", post(sign_in::signup))
        .at("/files", get(files::file_list).post(files::upload))
        .at("/view", post(files::set_view))
        .at("/files/checkout", post(sets::checkout_set))
        .at("/files/cancel", post(sets::cancel_set))
        .at("/files/checkin", post(sets::checkin_set))
        .at("/files/bulk", post(sets::bulk_upload))
        .at("/files/:id", get(files::file_card).delete(files::delete_file))
        .at("/files/:id/move", post(sets::move_file))
        .at("/files/:id/describe", post(sets::describe))
        .at("/files/:id/checkout", post(files::checkout))
        .at("/files/:id/cancel", post(files::cancel))
        .at("/files/:id/checkin", post(files::checkin))
        .at("/files/:id/override", post(files::override_lock))
        .at("/files/:id/queue", post(files::join_queue))
        .at("/files/:id/queue/leave", post(files::leave_queue))
        .at("/files/:id/decline", post(files::decline))
        .at("/files/:id/nudge", post(files::nudge))
        .at("/files/:id/watch", post(inbox::watch_file))
        .at("/files/:id/delete", post(files::delete_file))
        .at("/files/:id/history", get(files::history))
        .at("/files/:id/download", get(files::download))
        .at("/files/:id/preview", get(content::preview))
        .at("/files/:id/raw", get(content::raw))
        .at("/files/:id/diff", get(content::diff))
        .at("/activity", get(files::activity))
        .at("/notifications", get(inbox::notifications))
        .at("/notifications/read", post(inbox::mark_read))
        .at("/watches", post(inbox::watch_folder))
        .at("/admin/users", get(people::users_page).post(people::add_user))
        .at("/admin/users/:name", post(people::edit_user))
        .at("/admin/locks", get(files::stale_locks))
        .at("/account", get(people::account))
        .at("/account/tokens", post(people::create_token))
        .at("/account/tokens/:id/revoke", post(people::revoke_token))
        .at("/account/password", post(people::change_password))
        .at("/account/mail", post(people::set_mail))
        .at("/ws", get(ws_endpoint))
        .at("/events", get(sse_endpoint))
        .at("/live/viewing", post(viewing))
        .at("/healthz", get(healthz))
}

#[poem::handler]
fn healthz() -> &'static str {
    "ok"
}

const FLASH_COOKIE: &str = "latch_flash";

pub fn is_htmx(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
}

/// Fills a response that may already carry cookies (a consumed flash) with a page.
fn set_html_body(resp: &mut Response, markup: maud::Markup) {
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.set_body(markup.into_string());
}

fn redirect(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to)
        .finish()
}

/// Redirect carrying a one-shot message for the next page.
fn redirect_with_flash(to: &str, flash: &Flash) -> Response {
    let value = format!(
        "{}{}",
        if flash.error { "e" } else { "n" },
        secret::hex(flash.text.as_bytes())
    );
    let mut resp = redirect(to);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Redirect to `to` with a one-shot notice (not an error).
fn notice(to: &str, text: String) -> Response {
    redirect_with_flash(to, &Flash { error: false, text })
}

fn take_flash(req: &Request, resp: &mut Response) -> Option<Flash> {
    let raw = guards::cookies(req, FLASH_COOKIE).next()?.to_string();
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("latch_flash=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    let (kind, hex) = raw.split_at_checked(1)?;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    Some(Flash {
        error: kind == "e",
        text: text.chars().take(500).collect(),
    })
}

/// Turns an error into what an HTML client should see: a toast for htmx,
/// a flash and redirect for a plain form, a page otherwise.
fn html_error(req: &Request, err: AppError) -> Response {
    if matches!(err, AppError::Unauthenticated(_)) {
        err.log();
        return sign_in_redirect(req);
    }
    if is_htmx(req) {
        return said(Surface::Htmx, &err);
    }
    // A client told to wait must see the status and Retry-After, not a
    // redirect that hides both; an upload over the limit is answered 413
    // with its page (issue 12), which says what was refused and links back.
    if req.method() != Method::POST
        || matches!(
            err,
            AppError::TooManyRequests { .. } | AppError::TooLarge(_)
        )
    {
        return said(Surface::Page, &err);
    }
    err.log();
    let text = err.public_message();
    {
        let back = match req.uri().path() {
            p if p.starts_with("/admin") => "/admin/users",
            p if p.starts_with("/account") => "/account",
            p if p.starts_with("/notifications") || p.starts_with("/watches") => "/notifications",
            _ => "/",
        };
        redirect_with_flash(back, &Flash { error: true, text })
    }
}

/// To the sign-in page, which says why when a session was there and has
/// ended, and goes back afterwards to the page the person was on: the
/// page itself for a GET, the page a form or htmx request came from.
fn sign_in_redirect(req: &Request) -> Response {
    let ended = guards::cookies(req, guards::SESSION_COOKIE)
        .next()
        .is_some();
    let from = if is_htmx(req) {
        req.headers()
            .get("hx-current-url")
            .and_then(|v| v.to_str().ok())
            .map(path_of_url)
    } else if req.method() == Method::GET {
        req.uri().path_and_query().map(|p| p.as_str().to_string())
    } else {
        req.headers()
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .map(path_of_url)
    };
    let mut to = String::from("/login");
    let mut params = Vec::new();
    if ended {
        params.push(("ended", "1".to_string()));
    }
    if let Some(next) = from.as_deref().and_then(local_next).filter(|n| n != "/") {
        params.push(("next", next));
    }
    if let Ok(query) = serde_urlencoded::to_string(&params)
        && !query.is_empty()
    {
        to = format!("/login?{query}");
    }
    if is_htmx(req) {
        return match HeaderValue::from_str(&to) {
            Ok(v) => Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("HX-Redirect", v)
                .finish(),
            Err(_) => Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("HX-Redirect", "/login")
                .finish(),
        };
    }
    redirect(&to)
}

/// The path and query of an absolute URL (`https://host/a?b` → `/a?b`);
/// what is not a URL is taken as a path and checked by `local_next`.
fn path_of_url(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        },
        None => url.to_string(),
    }
}

/// A page on this server a sign-in may go back to: a path (`/…`, not
/// `//…` or `/\…`, which browsers take for another host), printable, at
/// most 1 KiB, and a page (not the sign-in pages, the API or a live stream).
pub(super) fn local_next(raw: &str) -> Option<String> {
    let ok = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.contains('\\')
        && raw.len() <= 1024
        && raw.chars().all(|c| !c.is_control() && !c.is_whitespace())
        && ![
            "/login",
            "/logout",
            "/setup",
            "/signup",
            "/api",
            "/ws",
            "/events",
            "/live",
            "/vault.git",
            "/metrics",
        ]
        .iter()
        .any(|p| {
            raw == *p || raw.starts_with(&format!("{p}/")) || raw.starts_with(&format!("{p}?"))
        });
    ok.then(|| raw.to_string())
}

/// Runs a handler body, mapping its error the HTML way.
async fn respond(req: &Request, fut: impl Future<Output = AppResult<Response>>) -> Response {
    match fut.await {
        Ok(resp) => resp,
        Err(err) => html_error(req, err),
    }
}

async fn read_form(body: Body) -> AppResult<Fields> {
    let bytes = body
        .into_bytes_limit(serve::MAX_BODY as usize)
        .await
        .map_err(|_| AppError::TooLarge("The form is too large.".into()))?;
    forms::parse_urlencoded(&bytes)
}

fn page<'a>(title: &'a str, session: &'a Session, nav: &'a str, flash: Option<Flash>) -> Page<'a> {
    Page {
        title,
        session: Some(session),
        nav,
        flash,
        live_seq: None,
        presence: None,
        skip_to_files: false,
    }
}

/// The filters an address (or form) names; `view` falls back to `usual`,
/// the person's own setting, when absent or not one Latch knows.
fn filters_from(query: &HashMap<String, String>, usual: ListView) -> Filters {
    let pick = |k: &str| {
        query
            .get(k)
            .map(|v| v.chars().take(200).collect())
            .unwrap_or_default()
    };
    Filters {
        q: pick("q"),
        state: pick("state"),
        sort: pick("sort"),
        view: query
            .get("view")
            .and_then(|v| ListView::parse(v))
            .unwrap_or(usual),
    }
}

pub fn parse_id(raw: &str) -> AppResult<u64> {
    raw.parse().map_err(|_| {
        AppError::NotFound(format!(
            "'{raw}' is not a file id; file ids are whole numbers."
        ))
    })
}

/// What an action answers: for htmx, the card and a toast as OOB swaps; for a
/// plain form, a redirect to the dashboard (or the stale-lock list it came
/// from) with a flash message.
fn action_done(
    req: &Request,
    session: &Session,
    file: Option<&FileRecord>,
    message: String,
    stale_after: std::time::Duration,
    back: &str,
) -> Response {
    if is_htmx(req) {
        let viewer = Viewer::of(session);
        let markup = html! {
            @if let Some(f) = file { (views::card(f, &viewer, true, stale_after, &cards_of(req))) }
            (views::toast("success", &message))
        };
        return html(StatusCode::OK, markup);
    }
    notice(back, message)
}

/// What cards show besides the file: display names (usernames, should the
/// service be missing) and the upload limit.
pub(super) fn cards_of(req: &Request) -> views::Cards {
    views::Cards {
        names: req
            .data::<crate::accounts::Accounts>()
            .map(|a| a.names().clone())
            .unwrap_or_default(),
        max_upload: req
            .data::<std::sync::Arc<crate::config::Config>>()
            .map_or(0, |c| c.max_upload),
    }
}

/// Where a plain form goes back to: the page it names (`back`), if known.
fn back_from(fields: &Fields) -> &'static str {
    match fields.get("back") {
        Some("locks") => "/admin/locks",
        _ => "/",
    }
}

/// Runs a simple form action on one file.
async fn file_action<F, Fut>(
    req: &Request,
    guard: guards::Guard<'_>,
    body: Body,
    id: &str,
    op: F,
) -> Response
where
    F: FnOnce(crate::files::Actor, u64, Fields) -> Fut,
    Fut: Future<Output = AppResult<(Option<FileRecord>, String)>>,
{
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let id = parse_id(id)?;
        let back = back_from(&fields);
        let (file, message) = op(session.actor(), id, fields).await?;
        Ok(action_done(
            req,
            &session,
            file.as_ref(),
            message,
            guard.config.stale_after,
            back,
        ))
    })
    .await
}
