//! People: the admin's users page (add, change role, disable, reset a
//! password) and one's own account (API tokens, password).

use poem::http::{HeaderValue, header};
use poem::web::Path;
use poem::{Body, Request, Response, handler};

use super::{is_htmx, notice, page, read_form, respond, set_html_body, take_flash};
use crate::accounts::{NewUser, Session, UserPatch};
use crate::domain::{EmailAddress, Password, Role, Username, parse_display_name};
use crate::error::{AppError, AppResult};
use crate::files::require_admin;
use crate::http::error::ErrorStatus;
use crate::http::forms::parse_token_name;
use crate::http::guards::Guard;
use crate::http::views::{self, Viewer};
use crate::inbox::NoticeKind;
use crate::mail::MailPatch;

#[handler]
pub(super) async fn users_page(req: &Request, guard: Guard<'_>) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        require_admin(&session.actor(), "manage users")?;
        let users = guard.accounts.users().await?;
        let mut resp = Response::default();
        let flash = take_flash(req, &mut resp);
        let markup = views::layout(
            page("Users", &session, "users", flash),
            views::users_page(&users, &Viewer::of(&session), None),
        );
        set_html_body(&mut resp, markup);
        Ok(resp)
    })
    .await
}

#[handler]
pub(super) async fn add_user(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        require_admin(&session.actor(), "add users")?;
        let added = async {
            let new = NewUser {
                username: Username::parse(fields.text("username"))?,
                password: Password::parse(fields.text("password"))?,
                role: Role::parse(fields.get("role").unwrap_or("user"))?,
                display_name: Some(parse_display_name(fields.text("display_name"))?),
            };
            guard.accounts.create_user(new).await
        }
        .await;
        let err = match added {
            Ok(user) => {
                return Ok(notice(
                    "/admin/users",
                    format!("Added {} ({}).", user.username, user.role.as_str()),
                ));
            }
            // htmx and server faults are answered as everywhere else.
            Err(e) if is_htmx(req) || matches!(e, AppError::Internal(_)) => return Err(e),
            Err(e) => e,
        };
        // The form again with what was typed, so a taken name costs one edit.
        let draft = views::UserDraft {
            username: fields.text("username").trim().to_string(),
            display_name: fields.text("display_name").to_string(),
            admin: fields.get("role") == Some("admin"),
            error: err.public_message(),
        };
        let users = guard.accounts.users().await?;
        let markup = views::layout(
            page("Users", &session, "users", None),
            views::users_page(&users, &Viewer::of(&session), Some(&draft)),
        );
        Ok(crate::http::error::html(err.status(), markup))
    })
    .await
}

#[handler]
pub(super) async fn edit_user(
    req: &Request,
    guard: Guard<'_>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        require_admin(&session.actor(), "change users")?;
        let patch = UserPatch {
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
                .map(parse_display_name)
                .transpose()?,
        };
        let user = guard.accounts.update_user(name, patch).await?;
        Ok(notice("/admin/users", format!("Saved {}.", user.username)))
    })
    .await
}

async fn account_view(
    req: &Request,
    guard: Guard<'_>,
    session: &Session,
    new_token: Option<&str>,
) -> AppResult<Response> {
    let tokens = guard.accounts.tokens(&session.user.username).await?;
    let mut resp = Response::default();
    let flash = take_flash(req, &mut resp);
    let markup = views::layout(
        page("Account", session, "account", flash),
        views::account_page(
            &session.user,
            &tokens,
            &Viewer::of(session),
            new_token,
            guard.config.mail.is_some(),
        ),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    set_html_body(&mut resp, markup);
    Ok(resp)
}

#[handler]
pub(super) async fn account(req: &Request, guard: Guard<'_>) -> Response {
    respond(req, async {
        let session = guard.signed_in().await?;
        account_view(req, guard, &session, None).await
    })
    .await
}

#[handler]
pub(super) async fn create_token(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let name = parse_token_name(fields.text("name"))?;
        let (_, token) = guard
            .accounts
            .create_token(&session.user.username, &name)
            .await?;
        account_view(req, guard, &session, Some(&token)).await
    })
    .await
}

#[handler]
pub(super) async fn revoke_token(
    req: &Request,
    guard: Guard<'_>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let id: u64 = id
            .parse()
            .map_err(|_| AppError::NotFound("No such token.".into()))?;
        guard.accounts.revoke_token(&session.actor(), id).await?;
        Ok(notice("/account", "Token revoked.".into()))
    })
    .await
}

/// The account page's mail form: the address (empty: none) and one
/// checkbox per kind of notification (unticked: not mailed).
#[handler]
pub(super) async fn set_mail(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let raw = fields.text("email").trim();
        let email = if raw.is_empty() {
            None
        } else {
            Some(EmailAddress::parse(raw)?)
        };
        let patch = MailPatch {
            kinds: NoticeKind::ALL
                .into_iter()
                .map(|kind| (kind, fields.get(kind.as_str()) == Some("on")))
                .collect(),
            email: Some(email),
        };
        let user = guard
            .accounts
            .set_mail(&session.user.username, patch)
            .await?;
        let said = match &user.email {
            Some(to) if guard.config.mail.is_some() => {
                format!("Mail settings saved; notifications you chose go to {to}.")
            }
            Some(_) => "Mail settings saved; this server does not send mail yet.".to_string(),
            None => "Mail settings saved; you get no mail.".to_string(),
        };
        Ok(notice("/account", said))
    })
    .await
}

#[handler]
pub(super) async fn change_password(req: &Request, guard: Guard<'_>, body: Body) -> Response {
    respond(req, async {
        let fields = read_form(body).await?;
        let session = guard.writer(Some(&fields)).await?;
        let password = Password::parse(fields.text("password"))?;
        // Every session ends, this one included; this browser is signed in afresh.
        let (token, _) = guard
            .accounts
            .change_password(
                &session,
                fields.text("current"),
                password,
                guard.client_ip(),
            )
            .await?;
        let mut resp = notice(
            "/account",
            "Password changed; other sessions were signed out.".into(),
        );
        if let Ok(v) = HeaderValue::from_str(&guard.session_set_cookie(&token)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        Ok(resp)
    })
    .await
}
