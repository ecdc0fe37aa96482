//! Who is asking, at the edge: the session cookie, API tokens and HTTP
//! Basic, the client's address behind trusted proxies, and the CSRF and
//! Origin checks a browser's writes must pass. Handlers take a [`Guard`]
//! and ask it; the accounts themselves live in [`crate::accounts`].

use std::net::IpAddr;
use std::sync::Arc;

use poem::http::{Method, header};
use poem::web::headers::{
    Authorization, HeaderMapExt, authorization::Basic, authorization::Bearer,
};
use poem::{FromRequest, Request, RequestBody};

use crate::accounts::{Accounts, Session, actor_of};
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::files::Actor;
use crate::http::forms::Fields;
use crate::secret;
use crate::store::UserRecord;

pub const SESSION_COOKIE: &str = "latch_session";
pub const CSRF_HEADER: &str = "X-CSRF-Token";
pub const CSRF_FIELD: &str = "_csrf";

/// A request and the services that say who sent it.
#[derive(Clone, Copy)]
pub struct Guard<'a> {
    pub req: &'a Request,
    pub accounts: &'a Accounts,
    pub config: &'a Config,
}

impl<'a> FromRequest<'a> for Guard<'a> {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Guard::of(req).map_err(poem::Error::from)
    }
}

/// How a script authenticated.
pub enum Credential {
    Session(Session),
    Token(UserRecord),
}

impl Credential {
    pub fn user(&self) -> &UserRecord {
        match self {
            Credential::Session(s) => &s.user,
            Credential::Token(u) => u,
        }
    }

    pub fn actor(&self) -> Actor {
        actor_of(self.user())
    }
}

impl<'a> Guard<'a> {
    /// The guard of a request the app's routes received (they carry the
    /// services as data; see `http::endpoint`).
    pub fn of(req: &'a Request) -> AppResult<Guard<'a>> {
        let missing = || AppError::Internal("the request carries no services".into());
        Ok(Guard {
            req,
            accounts: req.data::<Accounts>().ok_or_else(missing)?,
            config: req.data::<Arc<Config>>().ok_or_else(missing)?,
        })
    }

    /// The session of the request, if it carries a valid one.
    pub async fn session(&self) -> AppResult<Option<Session>> {
        // The first valid one counts, wherever it stands.
        self.accounts.session(session_cookies(self.req)).await
    }

    /// The session, or 401.
    pub async fn signed_in(&self) -> AppResult<Session> {
        self.session()
            .await?
            .ok_or_else(|| AppError::Unauthenticated("Please sign in.".into()))
    }

    /// A state-changing HTML request: a same-origin browser, a session, and
    /// the CSRF token as the `X-CSRF-Token` header or the `_csrf` form field.
    pub async fn writer(&self, form: Option<&Fields>) -> AppResult<Session> {
        self.same_origin()?;
        let session = self.signed_in().await?;
        let presented = csrf_header(self.req)
            .or_else(|| form.and_then(|f| f.get(CSRF_FIELD)).map(str::to_string));
        if !csrf_matches(&session, presented.as_deref()) {
            return Err(AppError::Forbidden(
                "The form had expired or came from another page; reload and try again.".into(),
            ));
        }
        Ok(session)
    }

    /// Authenticates an API (or LFS) request: bearer token, HTTP Basic with
    /// a password or token, or a session cookie plus CSRF header for writes.
    pub async fn caller(&self) -> AppResult<Credential> {
        let req = self.req;
        // Whatever the credential: a browser replays cached Basic credentials
        // on a cross-site form post, so a write that a browser marks as
        // coming from another site is refused before any credential counts.
        // Scripts and Git send neither header.
        if is_unsafe_method(req.method()) {
            self.same_origin()?;
        }
        if let Some(bearer) = req.headers().typed_get::<Authorization<Bearer>>() {
            return self
                .accounts
                .token_user(bearer.token())
                .await?
                .map(Credential::Token)
                .ok_or_else(|| {
                    AppError::Unauthenticated("The API token is unknown or revoked.".into())
                });
        }
        if let Some(basic) = req.headers().typed_get::<Authorization<Basic>>() {
            let user = self
                .accounts
                .basic(basic.username(), basic.password(), self.client_ip())
                .await?;
            return Ok(Credential::Token(user));
        }
        let session = self.session().await?.ok_or_else(|| {
            AppError::Unauthenticated(
                "Sign in first: send a session cookie, an API token (Authorization: Bearer …) or HTTP Basic credentials."
                    .into(),
            )
        })?;
        if is_unsafe_method(req.method()) && !csrf_matches(&session, csrf_header(req).as_deref()) {
            return Err(AppError::Forbidden(
                "The X-CSRF-Token header is missing or wrong; it comes from POST /api/login."
                    .into(),
            ));
        }
        Ok(Credential::Session(session))
    }

    fn via_trusted_proxy(&self) -> bool {
        let peer = self.req.remote_addr().as_socket_addr().map(|a| a.ip());
        peer.is_some_and(|ip| self.config.trusted_proxies.contains(&ip))
    }

    /// The client's address: the peer, or what a trusted proxy says it is.
    pub fn client_ip(&self) -> IpAddr {
        let peer = self
            .req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        if self.via_trusted_proxy()
            && let Some(ip) = forwarded(self.req, "x-forwarded-for").and_then(|v| v.parse().ok())
        {
            return ip;
        }
        peer
    }

    /// Whether browsers reach this server over HTTPS: `--secure-cookies`,
    /// or a trusted proxy says so.
    pub fn is_https(&self) -> bool {
        if self.config.secure_cookies {
            return true;
        }
        self.via_trusted_proxy()
            && forwarded(self.req, "x-forwarded-proto")
                .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    /// The `host[:port]` this server is reached at, as the browser sees it.
    fn own_authority(&self) -> Option<String> {
        if self.via_trusted_proxy()
            && let Some(host) = forwarded(self.req, "x-forwarded-host")
        {
            return Some(host.to_ascii_lowercase());
        }
        self.req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| h.to_ascii_lowercase())
            .or_else(|| {
                self.req
                    .uri()
                    .authority()
                    .map(|a| a.as_str().to_ascii_lowercase())
            })
    }

    /// Refuses requests a browser sent from another site: `Origin` must name
    /// this server when present, and `Sec-Fetch-Site` must not be cross-site.
    pub fn same_origin(&self) -> AppResult<()> {
        let req = self.req;
        let refused =
            || AppError::Forbidden("This request came from another site and was refused.".into());
        if let Some(site) = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            && !matches!(site, "same-origin" | "none")
        {
            return Err(refused());
        }
        let mut origins = req.headers().get_all(header::ORIGIN).iter();
        if let Some(origin) = origins.next() {
            // A browser sends one; two are a forgery that hopes one is ignored.
            if origins.next().is_some() {
                return Err(refused());
            }
            let origin = origin.to_str().map_err(|_| refused())?;
            let (scheme, rest) = origin.split_once("://").ok_or_else(refused)?;
            let authority = rest.trim_end_matches('/').to_ascii_lowercase();
            // One answer for cookies and Origin alike: `--secure-cookies`
            // says the public side is HTTPS even when a proxy behind the TLS
            // terminator forwards `X-Forwarded-Proto: http`.
            let own_scheme = if self.is_https() { "https" } else { "http" };
            if Some(authority) != self.own_authority() || !scheme.eq_ignore_ascii_case(own_scheme) {
                return Err(refused());
            }
        }
        Ok(())
    }

    /// `Set-Cookie` for a new session.
    pub fn session_set_cookie(&self, token: &str) -> String {
        let secure = if self.is_https() { "; Secure" } else { "" };
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            self.accounts.policy().absolute.as_secs()
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn session_clear_cookie(&self) -> String {
        let secure = if self.is_https() { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
    }
}

/// The values of the cookies called `name` (at most a few).
pub fn cookies<'r>(req: &'r Request, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(n, _)| *n == name)
        .map(|(_, value)| value.trim())
        .take(4)
}

/// The value of the first `latch_session` cookie, if any.
pub fn session_cookie(req: &Request) -> Option<String> {
    cookies(req, SESSION_COOKIE).next().map(str::to_string)
}

/// Every `latch_session` cookie sent: a sibling subdomain can plant one of
/// its own beside ours, and the browser may send it first.
fn session_cookies(req: &Request) -> Vec<String> {
    cookies(req, SESSION_COOKIE).map(str::to_string).collect()
}

fn forwarded(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next_back().unwrap_or("").trim().to_string())
        .filter(|v| !v.is_empty())
}

pub fn is_unsafe_method(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares a CSRF token without leaking timing.
pub fn csrf_matches(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| secret::same(session.csrf_token.as_bytes(), p.trim().as_bytes()))
}

pub fn csrf_header(req: &Request) -> Option<String> {
    req.headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
