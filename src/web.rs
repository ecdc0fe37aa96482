//! The HTML side: routes, handlers for pages and htmx fragments, plain-form
//! fallbacks (redirect with a flash message), downloads, and the
//! middleware for security headers and request logs.

use std::time::Instant;

use maud::{Markup, html};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::{Data, Multipart, Path, Query};
use poem::{Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, handler};

use crate::allow::{get, post};

use crate::App;
use crate::auth::{self, CSRF_FIELD, Session};
use crate::domain::{
    Bump, CommitMessage, Description, LockComment, Password, RepoPath, Revision, Role, Username,
};
use crate::error::{AppError, AppResult};
use crate::files::{Actor, Download, NewFile, NewVersion};
use crate::forms::{self, Fields};
use crate::serve;
use crate::store::{FileRecord, Store};
use crate::views::{self, Filters, Flash, Page, Viewer};

pub fn routes() -> Route {
    Route::new()
        .at("/", get(dashboard))
        .at("/login", get(login_form).post(login_submit))
        .at("/logout", post(logout))
        .at("/setup", get(setup_form).post(setup_submit))
        .at("/signup", post(signup))
        .at("/files", get(file_list).post(upload))
        .at("/files/:id", get(file_card).delete(delete_file))
        .at("/files/:id/checkout", post(checkout))
        .at("/files/:id/cancel", post(cancel))
        .at("/files/:id/checkin", post(checkin))
        .at("/files/:id/override", post(override_lock))
        .at("/files/:id/delete", post(delete_file))
        .at("/files/:id/history", get(history))
        .at("/files/:id/download", get(download))
        .at("/activity", get(activity))
        .at("/admin/users", get(users_page).post(add_user))
        .at("/admin/users/:name", post(edit_user))
        .at("/account", get(account))
        .at("/account/tokens", post(create_token))
        .at("/account/tokens/:id/revoke", post(revoke_token))
        .at("/account/password", post(change_password))
        .at("/ws", get(ws_endpoint))
        .at("/events", get(sse_endpoint))
        .at("/healthz", get(healthz))
}

const FLASH_COOKIE: &str = "latch_flash";

fn is_htmx(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// Fills a response that may already carry cookies (a consumed flash) with a page.
fn set_html_body(resp: &mut Response, markup: Markup) {
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
        auth::hex(flash.text.as_bytes())
    );
    let mut resp = redirect(to);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn take_flash(req: &Request, resp: &mut Response) -> Option<Flash> {
    let raw = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| *n == FLASH_COOKIE)
        .map(|(_, v)| v.to_string())?;
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
    err.log();
    let text = err.public_message();
    if matches!(err, AppError::Unauthenticated(_)) {
        return sign_in_redirect(req);
    }
    if is_htmx(req) {
        let mut resp = html_response(err.status(), views::toast("error", &text));
        resp.headers_mut()
            .insert("HX-Reswap", HeaderValue::from_static("none"));
        return resp;
    }
    if let AppError::TooManyRequests {
        retry_after_secs, ..
    } = err
    {
        // A client told to wait must see the status and Retry-After, not a
        // redirect that hides both.
        let mut resp = error_page(err.status(), &text);
        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    if req.method() == Method::POST {
        let back = match req.uri().path() {
            p if p.starts_with("/admin") => "/admin/users",
            p if p.starts_with("/account") => "/account",
            _ => "/",
        };
        return redirect_with_flash(back, &Flash { error: true, text });
    }
    error_page(err.status(), &text)
}

/// Latch's own error page: the status and a sentence.
fn error_page(status: StatusCode, text: &str) -> Response {
    html_response(
        status,
        views::layout(
            Page {
                title: "Error",
                session: None,
                nav: "",
                flash: None,
                live_seq: None,
            },
            views::error_page(status.as_u16(), text),
        ),
    )
}

fn sign_in_redirect(req: &Request) -> Response {
    if is_htmx(req) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("HX-Redirect", "/login")
            .finish();
    }
    redirect("/login")
}

/// Runs a handler body, mapping its error the HTML way.
async fn respond(req: &Request, fut: impl Future<Output = AppResult<Response>>) -> Response {
    match fut.await {
        Ok(resp) => resp,
        Err(err) => html_error(req, err),
    }
}

async fn require_session(app: &App, req: &Request) -> AppResult<Session> {
    auth::request_session(app, req)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("Please sign in.".into()))
}

/// A state-changing HTML request: a session, a same-origin browser, and the
/// CSRF token as the `X-CSRF-Token` header or the `_csrf` form field.
async fn require_write_session(
    app: &App,
    req: &Request,
    form: Option<&Fields>,
) -> AppResult<Session> {
    auth::check_same_origin(app, req)?;
    let session = require_session(app, req).await?;
    let presented =
        auth::csrf_header(req).or_else(|| form.and_then(|f| f.get(CSRF_FIELD)).map(str::to_string));
    if !auth::csrf_matches(&session, presented.as_deref()) {
        return Err(AppError::Forbidden(
            "The form had expired or came from another page; reload and try again.".into(),
        ));
    }
    Ok(session)
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
    }
}

fn filters_from(query: &std::collections::HashMap<String, String>) -> Filters {
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
    }
}

#[handler]
async fn dashboard(
    Data(app): Data<&App>,
    req: &Request,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    respond(req, async {
        let Some(session) = auth::request_session(app, req).await? else {
            if app.store.blocking(Store::user_count).await? == 0 {
                return Ok(redirect("/setup"));
            }
            return Ok(redirect("/login"));
        };
        let viewer = Viewer::of(&session);
        let store = app.store.clone();
        let (files, recent, seq) = tokio::task::spawn_blocking(move || -> AppResult<_> {
            // The sequence is read first: anything after it is replayed on connect.
            let seq = store.last_seq()?;
            Ok((
                store.all_files()?,
                store.recent_events(views::DASHBOARD_ACTIVITY)?,
                seq,
            ))
        })
        .await??;
        let filters = filters_from(&query);
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        let content = views::dashboard(views::Dashboard {
            files: &files,
            viewer: &viewer,
            filters: &filters,
            recent: &recent,
            max_upload: app.config.max_upload,
        });
        let mut page = page("Files", &session, "files", flash);
        page.live_seq = Some(seq);
        set_html_body(&mut resp, views::layout(page, content));
        Ok(resp)
    })
    .await
}

#[handler]
async fn file_list(
    Data(app): Data<&App>,
    req: &Request,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    respond(req, async {
        let session = require_session(app, req).await?;
        let files = app.files.list().await?;
        let markup = views::file_list(&files, &Viewer::of(&session), &filters_from(&query));
        Ok(html_response(StatusCode::OK, markup))
    })
    .await
}

#[handler]
async fn file_card(Data(app): Data<&App>, req: &Request, Path(id): Path<String>) -> Response {
    respond(req, async {
        let session = require_session(app, req).await?;
        let file = app.files.get(parse_id(&id)?).await?;
        Ok(html_response(
            StatusCode::OK,
            views::card(&file, &Viewer::of(&session), false),
        ))
    })
    .await
}

pub fn parse_id(raw: &str) -> AppResult<u64> {
    raw.parse().map_err(|_| {
        AppError::NotFound(format!(
            "'{raw}' is not a file id; file ids are whole numbers."
        ))
    })
}

/// What an action answers: for htmx, the card and a toast as OOB swaps; for a
/// plain form, a redirect to the dashboard with a flash message.
fn action_done(
    req: &Request,
    session: &Session,
    file: Option<&FileRecord>,
    message: String,
) -> Response {
    if is_htmx(req) {
        let viewer = Viewer::of(session);
        let markup = html! {
            @if let Some(f) = file { (views::card(f, &viewer, true)) }
            (views::toast("success", &message))
        };
        return html_response(StatusCode::OK, markup);
    }
    redirect_with_flash(
        "/",
        &Flash {
            error: false,
            text: message,
        },
    )
}

/// Runs a simple form action on one file.
async fn file_action<F, Fut>(app: &App, req: &Request, body: Body, id: &str, op: F) -> Response
where
    F: FnOnce(Actor, u64, Fields) -> Fut,
    Fut: Future<Output = AppResult<(Option<FileRecord>, String)>>,
{
    respond(req, async {
        let fields = read_form(body).await?;
        let session = require_write_session(app, req, Some(&fields)).await?;
        let id = parse_id(id)?;
        let (file, message) = op(session.actor(), id, fields).await?;
        Ok(action_done(req, &session, file.as_ref(), message))
    })
    .await
}

#[handler]
async fn checkout(
    Data(app): Data<&App>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    file_action(app, req, body, &id, |actor, id, fields| async move {
        let comment = LockComment::parse(fields.text("comment"))?;
        let f = app.files.checkout(&actor, id, comment).await?;
        Ok((Some(f.clone()), format!("You checked out {}.", f.path)))
    })
    .await
}

#[handler]
async fn cancel(
    Data(app): Data<&App>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    file_action(app, req, body, &id, |actor, id, _| async move {
        let f = app.files.cancel(&actor, id).await?;
        Ok((
            Some(f.clone()),
            format!("Check-out of {} cancelled.", f.path),
        ))
    })
    .await
}

#[handler]
async fn override_lock(
    Data(app): Data<&App>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    file_action(app, req, body, &id, |actor, id, _| async move {
        let f = app.files.override_lock(&actor, id).await?;
        Ok((
            Some(f.clone()),
            format!("The check-out of {} was overridden.", f.path),
        ))
    })
    .await
}

#[handler]
async fn delete_file(
    Data(app): Data<&App>,
    req: &Request,
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
        let session = require_write_session(app, req, Some(&fields)).await?;
        let f = app.files.delete(&session.actor(), parse_id(&id)?).await?;
        let message = format!("{} was deleted.", f.path);
        if is_htmx(req) {
            let markup = html! {
                article id=(format!("file-{}", f.id)) hx-swap-oob="delete" {}
                (views::toast("success", &message))
            };
            return Ok(html_response(StatusCode::OK, markup));
        }
        if is_delete_verb {
            return Ok(Response::builder().status(StatusCode::NO_CONTENT).finish());
        }
        Ok(redirect_with_flash(
            "/",
            &Flash {
                error: false,
                text: message,
            },
        ))
    })
    .await
}

#[handler]
async fn upload(Data(app): Data<&App>, req: &Request, multipart: Multipart) -> Response {
    respond(req, async {
        // Check the session before reading a possibly large body.
        auth::check_same_origin(app, req)?;
        require_session(app, req).await?;
        let mut form = forms::read_upload(&app.files, multipart).await?;
        let session = require_write_session(app, req, Some(&form.fields)).await?;
        let (file_name, spool) = form.take_file()?;
        let new = new_file_from(&form.fields, &file_name)?;
        let f = app.files.upload(&session.actor(), new, spool).await?;
        let message = format!("{} uploaded as revision {}.", f.path, f.revision);
        // The card itself arrives through the live stream, in its folder.
        if is_htmx(req) {
            return Ok(html_response(
                StatusCode::OK,
                views::toast("success", &message),
            ));
        }
        Ok(redirect_with_flash(
            "/",
            &Flash {
                error: false,
                text: message,
            },
        ))
    })
    .await
}

/// Validates the fields of a new file; the path defaults to the uploaded file's name.
pub fn new_file_from(fields: &Fields, file_name: &str) -> AppResult<NewFile> {
    let raw_path = match fields.get("path").map(str::trim) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => file_name.to_string(),
    };
    let revision = match fields.get("revision").map(str::trim) {
        Some(r) if !r.is_empty() => Revision::parse(r)?,
        _ => Revision::FIRST,
    };
    Ok(NewFile {
        path: RepoPath::parse(&raw_path)?,
        description: Description::parse(fields.text("description"))?,
        revision,
    })
}

pub fn new_version_from(fields: &Fields) -> AppResult<NewVersion> {
    Ok(NewVersion {
        message: CommitMessage::parse(fields.text("message"))?,
        bump: Bump::parse(fields.text("bump"))?,
    })
}

#[handler]
async fn checkin(
    Data(app): Data<&App>,
    req: &Request,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    respond(req, async {
        auth::check_same_origin(app, req)?;
        let early = require_session(app, req).await?;
        let id = parse_id(&id)?;
        app.files.precheck_checkin(&early.actor(), id).await?;
        let mut form = forms::read_upload(&app.files, multipart).await?;
        let session = require_write_session(app, req, Some(&form.fields)).await?;
        let version = new_version_from(&form.fields)?;
        let (_, spool) = form.take_file()?;
        let f = app
            .files
            .checkin(&session.actor(), id, version, spool)
            .await?;
        let message = format!("{} checked in as revision {}.", f.path, f.revision);
        Ok(action_done(req, &session, Some(&f), message))
    })
    .await
}

#[handler]
async fn history(Data(app): Data<&App>, req: &Request, Path(id): Path<String>) -> Response {
    respond(req, async {
        let session = require_session(app, req).await?;
        let (file, versions) = app.files.history(parse_id(&id)?).await?;
        if is_htmx(req) {
            return Ok(html_response(
                StatusCode::OK,
                views::history(&file, &versions, true),
            ));
        }
        let title = format!("History of {}", file.path);
        Ok(html_response(
            StatusCode::OK,
            views::layout(
                page(&title, &session, "files", None),
                views::history(&file, &versions, false),
            ),
        ))
    })
    .await
}

#[handler]
async fn download(
    Data(app): Data<&App>,
    req: &Request,
    Path(id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    respond(req, async {
        require_session(app, req).await?;
        let d = app
            .files
            .open(parse_id(&id)?, query.get("rev").map(String::as_str))
            .await?;
        Ok(download_response(d))
    })
    .await
}

/// Streams a version as an attachment that a browser never renders inline.
pub fn download_response(d: Download) -> Response {
    let Download {
        file_name,
        size,
        mut reader,
    } = d;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = async_stream::stream! {
        while let Some(chunk) = rx.recv().await {
            yield chunk;
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/octet-stream")
        .header(header::CONTENT_DISPOSITION, content_disposition(&file_name))
        .header(header::CONTENT_LENGTH, size.to_string())
        .header("X-Content-Type-Options", "nosniff")
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header("Content-Security-Policy", "default-src 'none'; sandbox")
        .body(Body::from_bytes_stream(stream))
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[handler]
async fn activity(Data(app): Data<&App>, req: &Request) -> Response {
    respond(req, async {
        let session = require_session(app, req).await?;
        let store = app.store.clone();
        let events = tokio::task::spawn_blocking(move || store.recent_events(500)).await??;
        Ok(html_response(
            StatusCode::OK,
            views::layout(
                page("Activity", &session, "activity", None),
                views::activity_page(&events),
            ),
        ))
    })
    .await
}

#[handler]
async fn login_form(Data(app): Data<&App>, req: &Request) -> Response {
    respond(req, async {
        if app.store.blocking(Store::user_count).await? == 0 {
            return Ok(redirect("/setup"));
        }
        if auth::request_session(app, req).await?.is_some() {
            return Ok(redirect("/"));
        }
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        let error = flash.as_ref().filter(|f| f.error).map(|f| f.text.as_str());
        let markup = views::layout(
            Page {
                title: "Sign in",
                session: None,
                nav: "",
                flash: flash.clone().filter(|f| !f.error),
                live_seq: None,
            },
            views::login_page(error, "", app.config.allow_signup),
        );
        set_html_body(&mut resp, markup);
        Ok(resp)
    })
    .await
}

fn signed_in(app: &App, req: &Request, token: &str) -> Response {
    let mut resp = redirect("/");
    if let Ok(v) = HeaderValue::from_str(&auth::session_set_cookie(app, req, token)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[handler]
async fn login_submit(Data(app): Data<&App>, req: &Request, body: Body) -> Response {
    let fields = match read_form(body).await {
        Ok(f) => f,
        Err(e) => return html_error(req, e),
    };
    let username = fields.text("username").to_string();
    let result = async {
        auth::check_same_origin(app, req)?;
        let user = auth::login(
            app,
            &username,
            fields.text("password"),
            auth::client_ip(app, req),
        )
        .await?;
        let store = app.store.clone();
        let (token, _) =
            tokio::task::spawn_blocking(move || auth::start_session(&store, &user)).await??;
        tracing::info!(user = %username, "signed in");
        Ok::<_, AppError>(signed_in(app, req, &token))
    }
    .await;
    match result {
        Ok(resp) => resp,
        Err(err) => {
            err.log();
            let markup = views::layout(
                Page {
                    title: "Sign in",
                    session: None,
                    nav: "",
                    flash: None,
                    live_seq: None,
                },
                views::login_page(
                    Some(&err.public_message()),
                    &username,
                    app.config.allow_signup,
                ),
            );
            let mut resp = html_response(err.status(), markup);
            if let AppError::TooManyRequests {
                retry_after_secs, ..
            } = err
                && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
    }
}

#[handler]
async fn logout(Data(app): Data<&App>, req: &Request, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = require_write_session(app, req, Some(&fields)).await?;
        let store = app.store.clone();
        let hash = session.token_hash.clone();
        tokio::task::spawn_blocking(move || auth::end_session(&store, &hash)).await??;
        app.hub.end_session(&session.token_hash);
        let mut resp = redirect("/login");
        if let Ok(v) = HeaderValue::from_str(&auth::session_clear_cookie(app, req)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(resp)
    })
    .await
}

fn setup_token_ok(app: &App, presented: &str) -> bool {
    let guard = app.setup_token.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_deref().is_some_and(|t| {
        t.len() == presented.len()
            && t.bytes()
                .zip(presented.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    })
}

#[handler]
async fn setup_form(
    Data(app): Data<&App>,
    req: &Request,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    respond(req, async {
        if app.store.blocking(Store::user_count).await? > 0 {
            return Ok(redirect("/login"));
        }
        let token = query.get("token").cloned().unwrap_or_default();
        let error = (!setup_token_ok(app, &token)).then_some(
            "Open the one-time setup link printed in the server's log to create the first admin.",
        );
        Ok(html_response(
            if error.is_some() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::OK
            },
            views::layout(
                Page {
                    title: "Set up",
                    session: None,
                    nav: "",
                    flash: None,
                    live_seq: None,
                },
                views::setup_page(&token, error),
            ),
        ))
    })
    .await
}

#[handler]
async fn setup_submit(Data(app): Data<&App>, req: &Request, body: Body) -> Response {
    let fields = match read_form(body).await {
        Ok(f) => f,
        Err(e) => return html_error(req, e),
    };
    let presented = fields.text("token").to_string();
    let result = async {
        auth::check_same_origin(app, req)?;
        if app.store.blocking(Store::user_count).await? > 0 {
            return Err(AppError::Conflict(
                "Latch is already set up; sign in instead.".into(),
            ));
        }
        if !setup_token_ok(app, &presented) {
            return Err(AppError::Forbidden(
                "The setup link is not valid; use the one printed in the server's log.".into(),
            ));
        }
        let new = auth::NewUser {
            username: Username::parse(fields.text("username"))?,
            password: Password::parse(fields.text("password"))?,
            role: Role::Admin,
            display_name: Some(crate::domain::parse_display_name(
                fields.text("display_name"),
            )?),
        };
        let store = app.store.clone();
        let (token, _) = tokio::task::spawn_blocking(move || {
            let user = auth::create_first_user(&store, new)?;
            auth::start_session(&store, &user)
        })
        .await??;
        *app.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(signed_in(app, req, &token))
    }
    .await;
    // A refusal is shown on the setup form itself, not as a flash: the
    // dashboard a flash would wait for is not reachable yet, and after a
    // later successful setup a stale "not valid" would greet the new admin.
    match result {
        Ok(resp) => resp,
        Err(err @ AppError::Conflict(_)) => redirect_with_flash(
            "/login",
            &Flash {
                error: true,
                text: err.public_message(),
            },
        ),
        Err(err) => {
            err.log();
            html_response(
                err.status(),
                views::layout(
                    Page {
                        title: "Set up",
                        session: None,
                        nav: "",
                        flash: None,
                        live_seq: None,
                    },
                    views::setup_page(&presented, Some(&err.public_message())),
                ),
            )
        }
    }
}

#[handler]
async fn signup(Data(app): Data<&App>, req: &Request, body: Body) -> Response {
    respond(req, async {
        auth::check_same_origin(app, req)?;
        if !app.config.allow_signup {
            return Err(AppError::Forbidden(
                "Sign-up is closed; ask an admin for an account.".into(),
            ));
        }
        let fields = read_form(body).await?;
        let new = auth::NewUser {
            username: Username::parse(fields.text("username"))?,
            password: Password::parse(fields.text("password"))?,
            role: Role::User,
            display_name: Some(crate::domain::parse_display_name(
                fields.text("display_name"),
            )?),
        };
        // Each sign-up costs an argon2 hash and leaves an account: a few
        // per address an hour, counted once the form is valid.
        if let Err(wait) = app.throttle.signup(auth::client_ip(app, req)) {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            return Err(AppError::TooManyRequests {
                message: match minutes {
                    1 => "Too many sign-ups from your address; try again in a minute.".into(),
                    n => format!("Too many sign-ups from your address; try again in {n} minutes."),
                },
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        let store = app.store.clone();
        let (token, _) = tokio::task::spawn_blocking(move || {
            let user = auth::create_user(&store, new)?;
            auth::start_session(&store, &user)
        })
        .await??;
        Ok(signed_in(app, req, &token))
    })
    .await
}

#[handler]
async fn users_page(Data(app): Data<&App>, req: &Request) -> Response {
    respond(req, async {
        let session = require_session(app, req).await?;
        crate::files::require_admin(&session.actor(), "manage users")?;
        let users = app.store.blocking(Store::all_users).await?;
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        let markup = views::layout(
            page("Users", &session, "users", flash),
            views::users_page(&users, &Viewer::of(&session)),
        );
        set_html_body(&mut resp, markup);
        Ok(resp)
    })
    .await
}

#[handler]
async fn add_user(Data(app): Data<&App>, req: &Request, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = require_write_session(app, req, Some(&fields)).await?;
        crate::files::require_admin(&session.actor(), "add users")?;
        let new = auth::NewUser {
            username: Username::parse(fields.text("username"))?,
            password: Password::parse(fields.text("password"))?,
            role: Role::parse(fields.get("role").unwrap_or("user"))?,
            display_name: Some(crate::domain::parse_display_name(
                fields.text("display_name"),
            )?),
        };
        let store = app.store.clone();
        let user = tokio::task::spawn_blocking(move || auth::create_user(&store, new)).await??;
        Ok(redirect_with_flash(
            "/admin/users",
            &Flash {
                error: false,
                text: format!("Added {} ({}).", user.username, user.role.as_str()),
            },
        ))
    })
    .await
}

#[handler]
async fn edit_user(
    Data(app): Data<&App>,
    req: &Request,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = require_write_session(app, req, Some(&fields)).await?;
        crate::files::require_admin(&session.actor(), "change users")?;
        let patch = auth::UserPatch {
            role: fields.get("role").map(Role::parse).transpose()?,
            disabled: match fields.get("disabled") {
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(other) => {
                    return Err(AppError::Invalid(format!(
                        "'{other}' is not true or false."
                    )));
                }
                None => None,
            },
            password: fields
                .get("password")
                .filter(|p| !p.is_empty())
                .map(Password::parse)
                .transpose()?,
            display_name: fields
                .get("display_name")
                .map(crate::domain::parse_display_name)
                .transpose()?,
        };
        let user = apply_user_patch(app, name, patch).await?;
        Ok(redirect_with_flash(
            "/admin/users",
            &Flash {
                error: false,
                text: format!("Saved {}.", user.username),
            },
        ))
    })
    .await
}

/// Applies a change to an account and closes the live connections of
/// sessions it ended.
pub async fn apply_user_patch(
    app: &App,
    name: String,
    patch: auth::UserPatch,
) -> AppResult<crate::store::UserRecord> {
    let store = app.store.clone();
    let (user, ended) =
        tokio::task::spawn_blocking(move || auth::update_user(&store, &name, patch)).await??;
    if ended {
        app.hub.end_user(&user.username);
    }
    Ok(user)
}

async fn account_view(
    app: &App,
    req: &Request,
    session: &Session,
    new_token: Option<&str>,
) -> AppResult<Response> {
    let store = app.store.clone();
    let name = session.user.username.clone();
    let tokens = tokio::task::spawn_blocking(move || auth::list_tokens(&store, &name)).await??;
    let mut resp = Response::default();
    let flash = take_flash(req, &mut resp);
    let markup = views::layout(
        page("Account", session, "account", flash),
        views::account_page(&session.user, &tokens, &Viewer::of(session), new_token),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    set_html_body(&mut resp, markup);
    Ok(resp)
}

#[handler]
async fn account(Data(app): Data<&App>, req: &Request) -> Response {
    respond(req, async {
        let session = require_session(app, req).await?;
        account_view(app, req, &session, None).await
    })
    .await
}

pub fn parse_token_name(raw: &str) -> AppResult<String> {
    let name = raw.trim();
    if name.chars().any(char::is_control) {
        return Err(AppError::Invalid(
            "A token name cannot contain control characters (such as a line break or a tab)."
                .into(),
        ));
    }
    if name.is_empty() || name.chars().count() > 64 {
        return Err(AppError::Invalid(
            "A token name has 1 to 64 characters.".into(),
        ));
    }
    crate::domain::check_hidden(name, crate::domain::TextKind::OneLine, "token name")?;
    Ok(name.to_string())
}

#[handler]
async fn create_token(Data(app): Data<&App>, req: &Request, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = require_write_session(app, req, Some(&fields)).await?;
        let name = parse_token_name(fields.text("name"))?;
        let store = app.store.clone();
        let user = session.user.username.clone();
        let (_, token) =
            tokio::task::spawn_blocking(move || auth::create_token(&store, &user, &name)).await??;
        account_view(app, req, &session, Some(&token)).await
    })
    .await
}

#[handler]
async fn revoke_token(
    Data(app): Data<&App>,
    req: &Request,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = require_write_session(app, req, Some(&fields)).await?;
        let id: u64 = id
            .parse()
            .map_err(|_| AppError::NotFound("No such token.".into()))?;
        let store = app.store.clone();
        let actor = session.actor();
        tokio::task::spawn_blocking(move || auth::revoke_token(&store, &actor, id)).await??;
        Ok(redirect_with_flash(
            "/account",
            &Flash {
                error: false,
                text: "Token revoked.".into(),
            },
        ))
    })
    .await
}

#[handler]
async fn change_password(Data(app): Data<&App>, req: &Request, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = require_write_session(app, req, Some(&fields)).await?;
        let password = Password::parse(fields.text("password"))?;
        auth::login(
            app,
            &session.user.username,
            fields.text("current"),
            auth::client_ip(app, req),
        )
        .await
        .map_err(|_| AppError::Forbidden("The current password is wrong.".into()))?;
        let patch = auth::UserPatch {
            password: Some(password),
            ..Default::default()
        };
        let user = apply_user_patch(app, session.user.username.clone(), patch).await?;
        // Every session ended, this one included; sign this browser in afresh.
        let store = app.store.clone();
        let (token, _) =
            tokio::task::spawn_blocking(move || auth::start_session(&store, &user)).await??;
        let mut resp = redirect_with_flash(
            "/account",
            &Flash {
                error: false,
                text: "Password changed; other sessions were signed out.".into(),
            },
        );
        if let Ok(v) = HeaderValue::from_str(&auth::session_set_cookie(app, req, &token)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(resp)
    })
    .await
}

#[handler]
async fn ws_endpoint(
    Data(app): Data<&App>,
    req: &Request,
    ws: Option<poem::web::websocket::WebSocket>,
) -> Response {
    match ws {
        Some(ws) => crate::live::websocket(app, req, ws).await,
        None => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body("This endpoint speaks WebSocket; no Upgrade header arrived (a proxy may have removed it)."),
    }
}

#[handler]
async fn sse_endpoint(Data(app): Data<&App>, req: &Request) -> Response {
    crate::live::sse(app, req).await
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Security headers on every response, one log line per request, and the
/// body limits of [`crate::serve`] on every route: no body but a multipart
/// upload may pass [`serve::MAX_BODY`] (a declared length over it is
/// refused before a byte is read, a longer chunked body is cut off there),
/// and none may stall. Either way the handler only saw an error, so
/// nothing was kept; the refusal is decided here, whatever the handler
/// made of that error.
pub fn with_middleware(
    ep: impl Endpoint + 'static,
    limits: serve::Limits,
) -> impl Endpoint<Output = Response> {
    ep.around(move |ep, mut req| async move {
        let started = Instant::now();
        let method = req.method().clone();
        // HEAD is answered wherever GET is, by the GET handler: hyper sends
        // the head of its answer and never the body.
        if method == Method::HEAD {
            req.set_method(Method::GET);
        }
        // The query is left out: it may carry the one-time setup token.
        let path = req.uri().path().to_string();
        let refuse = EdgeRefusal {
            json: path == "/api"
                || path.starts_with("/api/")
                || path == "/vault.git"
                || path.starts_with("/vault.git/"),
            lfs: path.starts_with("/vault.git/info/lfs/"),
            git: path == "/vault.git" || path.starts_with("/vault.git/"),
            htmx: is_htmx(&req),
        };
        let multipart = is_multipart(&req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut resp = if !multipart && declared.is_some_and(|n| n > serve::MAX_BODY) {
            refuse.reply(StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE)
        } else {
            let limit = if multipart {
                limits.multipart_body
            } else {
                serve::MAX_BODY
            };
            let boundary = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(serve::multipart_boundary);
            let (body, watch) = serve::guard_body(
                req.take_body(),
                limit,
                limits.body_stall,
                boundary.as_deref(),
            );
            req.set_body(body);
            let result = ep.call(req).await;
            if watch.over_limit() {
                refuse.reply(StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE)
            } else if watch.part_head_too_large() {
                refuse.reply(StatusCode::PAYLOAD_TOO_LARGE, PART_HEAD_TOO_LARGE)
            } else if watch.stalled() {
                refuse.reply(StatusCode::REQUEST_TIMEOUT, BODY_STALLED)
            } else {
                let mut resp =
                    said_as(&refuse, &path, &method, result.map(IntoResponse::into_response));
                if !watch.done() && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            }
        };
        let h = resp.headers_mut();
        let csp = if path == "/api/docs" || path.starts_with("/api/docs/") {
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
        } else {
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
        };
        if !h.contains_key("content-security-policy") {
            h.insert("content-security-policy", HeaderValue::from_static(csp));
        }
        // Pages and API answers are per user and may carry secrets (a new
        // token, a CSRF token): never kept by a cache or the back/forward
        // cache. Assets and Git objects may be; downloads set their own.
        if !path.starts_with("/assets/")
            && !path.starts_with("/vault.git/")
            && !h.contains_key(header::CACHE_CONTROL)
        {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        crate::metrics::request(started.elapsed(), resp.status());
        tracing::info!(
            %method,
            path,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        Ok(resp)
    })
}

const BODY_TOO_LARGE: &str =
    "The request body is larger than 64 KiB; only file uploads may be larger.";
const PART_HEAD_TOO_LARGE: &str = "A part of the form has headers over 16 KiB.";
const BODY_STALLED: &str = "The request body stopped arriving; nothing was kept. Try again.";

fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// The handler's answer, with the refusals poem makes by itself (no route,
/// a method the route does not take, an address that does not decode) said
/// as sentences in the surface's own shape, like Latch's own refusals.
fn said_as(
    refuse: &EdgeRefusal,
    path: &str,
    method: &Method,
    result: poem::Result<Response>,
) -> Response {
    let (status, allow) = match result {
        Ok(resp) => {
            let plain = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.starts_with("text/plain"));
            // Only a 405 of `allow::Methods` reaches here as plain text;
            // Git's own plain-text refusals are sentences already.
            if resp.status() != StatusCode::METHOD_NOT_ALLOWED
                || !plain
                || refuse.git && !refuse.lfs
            {
                return resp;
            }
            let allow = resp.headers().get(header::ALLOW).cloned();
            (resp.status(), allow)
        }
        Err(err) => {
            if err.is::<poem::error::MethodNotAllowedError>() {
                (StatusCode::METHOD_NOT_ALLOWED, None)
            } else if err.is::<poem::error::NotFoundError>()
                || err.is::<poem::error::ParsePathError>()
            {
                (err.status(), None)
            } else {
                return err.into_response();
            }
        }
    };
    let text = match status {
        StatusCode::NOT_FOUND => format!("There is nothing at {path}."),
        StatusCode::BAD_REQUEST => {
            "The address is not valid: a %-escape in it is not UTF-8 text.".to_string()
        }
        _ => match allow.as_ref().and_then(|a| a.to_str().ok()) {
            Some(allow) => format!("{path} does not take {method}; it takes {allow}."),
            None => format!("{path} does not take {method}."),
        },
    };
    let mut resp = refuse.say(status, &text);
    if let Some(allow) = allow {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    resp
}

/// How a refusal at the edge is said: JSON for `/api` (`error`) and Git
/// LFS (`message`), plain text for Git, a toast for htmx, a page
/// otherwise. The rest of the body is never read, so the connection closes.
struct EdgeRefusal {
    json: bool,
    lfs: bool,
    git: bool,
    htmx: bool,
}

impl EdgeRefusal {
    fn reply(&self, status: StatusCode, text: &str) -> Response {
        let mut resp = self.say(status, text);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }

    /// A refusal in this surface's shape.
    fn say(&self, status: StatusCode, text: &str) -> Response {
        if self.lfs {
            Response::builder()
                .status(status)
                .content_type("application/vnd.git-lfs+json")
                .body(serde_json::json!({ "message": text }).to_string())
        } else if self.git {
            Response::builder()
                .status(status)
                .content_type("text/plain; charset=utf-8")
                .body(format!("{text}\n"))
        } else if self.json {
            Response::builder()
                .status(status)
                .content_type("application/json; charset=utf-8")
                .body(serde_json::json!({ "error": text }).to_string())
        } else if self.htmx {
            let mut resp = html_response(status, views::toast("error", text));
            resp.headers_mut()
                .insert("HX-Reswap", HeaderValue::from_static("none"));
            resp
        } else {
            error_page(status, text)
        }
    }
}
