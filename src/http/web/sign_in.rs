//! Signing in and out, the one-time set-up of the first admin, and
//! self-service sign-up.

use std::collections::HashMap;

use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Query;
use poem::{Body, Request, Response, handler};

use super::{
    html_error, local_next, read_form, redirect, redirect_with_flash, respond, set_html_body,
    take_flash,
};
use crate::accounts::NewUser;
use crate::domain::{Password, Role, Username, parse_display_name};
use crate::error::AppError;
use crate::http::error::{ErrorStatus, html, with_retry_after};
use crate::http::guards::Guard;
use crate::http::views::{self, Flash, Page, SignInReturn};

#[handler]
pub(super) async fn login_form(
    req: &Request,
    guard: Guard<'_>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let back = SignInReturn {
        next: query.get("next").and_then(|n| local_next(n)),
        ended: query.get("ended").is_some_and(|v| v == "1"),
    };
    respond(req, async {
        if guard.accounts.user_count().await? == 0 {
            return Ok(redirect("/setup"));
        }
        if guard.session().await?.is_some() {
            return Ok(redirect(back.next.as_deref().unwrap_or("/")));
        }
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        let error = flash.as_ref().filter(|f| f.error).map(|f| f.text.as_str());
        let markup = views::layout(
            Page {
                flash: flash.clone().filter(|f| !f.error),
                ..Page::signed_out("Sign in")
            },
            views::login_page(error, "", guard.config.allow_signup, &back),
        );
        set_html_body(&mut resp, markup);
        Ok(resp)
    })
    .await
}

fn signed_in(guard: Guard<'_>, token: &str, next: Option<&str>) -> Response {
    let mut resp = redirect(next.unwrap_or("/"));
    if let Ok(v) = HeaderValue::from_str(&guard.session_set_cookie(token)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[handler]
pub(super) async fn login_submit(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    let fields = match read_form(body).await {
        Ok(f) => f,
        Err(e) => return html_error(req, e),
    };
    let username = fields.text("username").to_string();
    let back = SignInReturn {
        next: local_next(fields.text("next")),
        ended: false,
    };
    let result = async {
        guard.same_origin()?;
        let user = guard
            .accounts
            .login(&username, fields.text("password"), guard.client_ip())
            .await?;
        let (token, _) = guard.accounts.start_session(&user).await?;
        tracing::info!(user = %username, "signed in");
        Ok::<_, AppError>(signed_in(guard, &token, back.next.as_deref()))
    }
    .await;
    match result {
        Ok(resp) => resp,
        Err(err) => {
            err.log();
            let markup = views::layout(
                Page::signed_out("Sign in"),
                views::login_page(
                    Some(&err.public_message()),
                    &username,
                    guard.config.allow_signup,
                    &back,
                ),
            );
            let mut resp = html(err.status(), markup);
            with_retry_after(&err, &mut resp);
            resp
        }
    }
}

#[handler]
pub(super) async fn logout(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        guard.accounts.end_session(&session).await?;
        let mut resp = redirect("/login");
        if let Ok(v) = HeaderValue::from_str(&guard.session_clear_cookie()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(resp)
    })
    .await
}

#[handler]
pub(super) async fn setup_form(
    req: &Request,
    guard: Guard<'_>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(req, async {
        if guard.accounts.user_count().await? > 0 {
            return Ok(redirect("/login"));
        }
        let token = query.get("token").cloned().unwrap_or_default();
        let error = (!guard.accounts.setup_token_ok(&token)).then_some(
            "Open the one-time setup link printed in the server's log to create the first admin.",
        );
        Ok(html(
            if error.is_some() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::OK
            },
            views::layout(Page::signed_out("Set up"), views::setup_page(&token, error)),
        ))
    })
    .await
}

#[handler]
pub(super) async fn setup_submit(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    let fields = match read_form(body).await {
        Ok(f) => f,
        Err(e) => return html_error(req, e),
    };
    let presented = fields.text("token").to_string();
    let result = async {
        guard.same_origin()?;
        guard.accounts.may_set_up(&presented).await?;
        let new = NewUser {
            username: Username::parse(fields.text("username"))?,
            password: Password::parse(fields.text("password"))?,
            role: Role::Admin,
            display_name: Some(parse_display_name(fields.text("display_name"))?),
        };
        let (token, _) = guard.accounts.set_up(&presented, new).await?;
        Ok(signed_in(guard, &token, None))
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
            html(
                err.status(),
                views::layout(
                    Page::signed_out("Set up"),
                    views::setup_page(&presented, Some(&err.public_message())),
                ),
            )
        }
    }
}

#[handler]
pub(super) async fn signup(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    respond(req, async {
        guard.same_origin()?;
        if !guard.config.allow_signup {
            return Err(AppError::Forbidden(
                "Sign-up is closed; ask an admin for an account.".into(),
            ));
        }
        let fields = read_form(body).await?;
        let new = NewUser {
            username: Username::parse(fields.text("username"))?,
            password: Password::parse(fields.text("password"))?,
            role: Role::User,
            display_name: Some(parse_display_name(fields.text("display_name"))?),
        };
        // Counted once the form is valid.
        let (token, _) = guard.accounts.sign_up(new, guard.client_ip()).await?;
        Ok(signed_in(guard, &token, None))
    })
    .await
}
