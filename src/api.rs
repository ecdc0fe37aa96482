//! The JSON API under `/api`, declared with poem-openapi so its spec is
//! served at `/api/openapi.json` and browsable at `/api/docs`. Same
//! operations and rules as the HTML side; errors are `{"error": "…"}`.

use poem::web::Multipart;
use poem::{Body, Request};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::App;
use crate::auth::{self, Credential};
use crate::domain::{LockComment, Password, Role, Username};
use crate::error::{AppError, AppResult};
use crate::files::Actor;
use crate::forms;
use crate::store::{Event, FileRecord, UserRecord};
use crate::views::iso_time;

/// The authenticated caller of an API request.
pub struct Caller(pub Credential);

impl Caller {
    fn actor(&self) -> Actor {
        auth::actor_of(self.0.user())
    }
}

impl<'a> poem::FromRequest<'a> for Caller {
    async fn from_request(req: &'a Request, _body: &mut poem::RequestBody) -> poem::Result<Self> {
        let app = req
            .data::<App>()
            .ok_or_else(|| AppError::Internal("app state missing".into()))?;
        Ok(Caller(auth::authenticate_api(app, req).await?))
    }
}

fn app_of(req: &Request) -> AppResult<&App> {
    req.data::<App>()
        .ok_or_else(|| AppError::Internal("app state missing".into()))
}

#[derive(Object)]
pub struct LockJson {
    owner: String,
    locked_at: String,
    comment: Option<String>,
}

/// A file as the API shows it.
#[derive(Object)]
pub struct FileJson {
    id: u64,
    path: String,
    size: u64,
    description: String,
    revision: String,
    /// `available` or `locked`.
    state: String,
    lock: Option<LockJson>,
    /// The commit that wrote the current version.
    head: String,
    modified_at: String,
    modified_by: String,
    created_by: String,
}

impl From<&FileRecord> for FileJson {
    fn from(f: &FileRecord) -> Self {
        FileJson {
            id: f.id,
            path: f.path.clone(),
            size: f.size,
            description: f.description.clone(),
            revision: f.revision.to_string(),
            state: if f.lock.is_some() {
                "locked"
            } else {
                "available"
            }
            .into(),
            lock: f.lock.as_ref().map(|l| LockJson {
                owner: l.owner.clone(),
                locked_at: iso_time(l.locked_at),
                comment: l.comment.clone(),
            }),
            head: f.head.clone(),
            modified_at: iso_time(f.modified_at),
            modified_by: f.modified_by.clone(),
            created_by: f.created_by.clone(),
        }
    }
}

#[derive(Object)]
struct FileList {
    files: Vec<FileJson>,
}

#[derive(Object)]
struct VersionJson {
    commit: String,
    revision: String,
    author: String,
    username: String,
    at: String,
    message: String,
}

#[derive(Object)]
struct History {
    versions: Vec<VersionJson>,
}

#[derive(Object)]
struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Object)]
struct LoginResponse {
    username: String,
    role: String,
    csrf_token: String,
}

#[derive(Object)]
struct TokenRequest {
    name: String,
}

#[derive(Object)]
struct NewToken {
    id: u64,
    name: String,
    /// Shown once; only its hash is kept.
    token: String,
}

#[derive(Object)]
struct TokenJson {
    id: u64,
    name: String,
    created_at: String,
}

#[derive(Object)]
struct TokenList {
    tokens: Vec<TokenJson>,
}

#[derive(Object)]
struct EventJson {
    seq: u64,
    kind: String,
    at: String,
    actor: String,
    file_id: u64,
    path: String,
    note: Option<String>,
    revision: Option<String>,
    previous_holder: Option<String>,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            seq: e.seq,
            kind: e.kind.as_str().into(),
            at: iso_time(e.at),
            actor: e.actor.clone(),
            file_id: e.file_id,
            path: e.path.clone(),
            note: e.note.clone(),
            revision: e.revision.map(|r| r.to_string()),
            previous_holder: e.previous_holder.clone(),
        }
    }
}

#[derive(Object)]
struct Activity {
    events: Vec<EventJson>,
    last_seq: u64,
}

#[derive(Object)]
struct UserJson {
    username: String,
    display_name: String,
    role: String,
    disabled: bool,
    created_at: String,
}

impl From<&UserRecord> for UserJson {
    fn from(u: &UserRecord) -> Self {
        UserJson {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str().into(),
            disabled: u.disabled,
            created_at: iso_time(u.created_at),
        }
    }
}

#[derive(Object)]
struct UserList {
    users: Vec<UserJson>,
}

#[derive(Object)]
struct NewUserRequest {
    username: String,
    password: String,
    role: Option<String>,
    display_name: Option<String>,
}

#[derive(Object)]
struct UserPatchRequest {
    role: Option<String>,
    disabled: Option<bool>,
    password: Option<String>,
    display_name: Option<String>,
}

#[derive(ApiResponse)]
enum LoginResult {
    /// Signed in; the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<LoginResponse>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum CreatedFile {
    #[oai(status = 201)]
    Created(Json<FileJson>),
}

#[derive(ApiResponse)]
enum CreatedToken {
    #[oai(status = 201)]
    Created(Json<NewToken>),
}

#[derive(ApiResponse)]
enum CreatedUser {
    #[oai(status = 201)]
    Created(Json<UserJson>),
}

#[derive(ApiResponse)]
enum NoContent {
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum Content {
    /// The file's bytes, as an attachment.
    #[oai(status = 200)]
    Ok(
        Binary<Body>,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "X-Content-Type-Options")] String,
        #[oai(header = "Content-Security-Policy")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

pub struct Api;

type Res<T> = poem::Result<T>;

fn require_admin(caller: &Caller, what: &str) -> AppResult<()> {
    crate::files::require_admin(&caller.actor(), what)
}

/// A JSON body that may be absent (`{}` and no body mean the same).
async fn optional_json<T: serde::de::DeserializeOwned + Default>(body: Body) -> AppResult<T> {
    let bytes = body
        .into_bytes_limit(64 * 1024)
        .await
        .map_err(|_| AppError::TooLarge("The request body is too large.".into()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| AppError::BadRequest(format!("The JSON body is malformed: {e}")))
}

#[derive(serde::Deserialize, Default)]
struct CheckoutBody {
    comment: Option<String>,
}

#[OpenApi]
impl Api {
    /// Sign in with a password; returns the CSRF token for later writes.
    #[oai(path = "/login", method = "post")]
    async fn login(&self, req: &Request, body: Json<LoginRequest>) -> Res<LoginResult> {
        let app = app_of(req)?;
        auth::check_same_origin(app, req)?;
        let user = auth::login(
            app,
            &body.username,
            &body.password,
            auth::client_ip(app, req),
        )
        .await?;
        let store = app.store.clone();
        let (token, session) =
            tokio::task::spawn_blocking(move || auth::start_session(&store, &user))
                .await
                .map_err(AppError::from)??;
        Ok(LoginResult::Ok(
            Json(LoginResponse {
                username: session.user.username.clone(),
                role: session.user.role.as_str().into(),
                csrf_token: session.csrf_token.clone(),
            }),
            auth::session_set_cookie(app, req, &token),
        ))
    }

    /// End this session.
    #[oai(path = "/logout", method = "post")]
    async fn logout(&self, req: &Request, caller: Caller) -> Res<NoContent> {
        let app = app_of(req)?;
        if let Credential::Session(session) = &caller.0 {
            let store = app.store.clone();
            let hash = session.token_hash.clone();
            tokio::task::spawn_blocking(move || auth::end_session(&store, &hash))
                .await
                .map_err(AppError::from)??;
            app.hub.end_session(&session.token_hash);
        }
        Ok(NoContent::Done)
    }

    /// Create an API token; the token is shown only in this answer.
    #[oai(path = "/tokens", method = "post")]
    async fn create_token(
        &self,
        req: &Request,
        caller: Caller,
        body: Json<TokenRequest>,
    ) -> Res<CreatedToken> {
        let app = app_of(req)?;
        let name = crate::web::parse_token_name(&body.name)?;
        let store = app.store.clone();
        let user = caller.0.user().username.clone();
        let (rec, token) =
            tokio::task::spawn_blocking(move || auth::create_token(&store, &user, &name))
                .await
                .map_err(AppError::from)??;
        Ok(CreatedToken::Created(Json(NewToken {
            id: rec.id,
            name: rec.name,
            token,
        })))
    }

    /// Your API tokens (never the tokens themselves).
    #[oai(path = "/tokens", method = "get")]
    async fn list_tokens(&self, req: &Request, caller: Caller) -> Res<Json<TokenList>> {
        let app = app_of(req)?;
        let tokens = auth::list_tokens(&app.store, &caller.0.user().username)?;
        Ok(Json(TokenList {
            tokens: tokens
                .iter()
                .map(|t| TokenJson {
                    id: t.id,
                    name: t.name.clone(),
                    created_at: iso_time(t.created_at),
                })
                .collect(),
        }))
    }

    /// Revoke one of your tokens.
    #[oai(path = "/tokens/:id", method = "delete")]
    async fn revoke_token(&self, req: &Request, caller: Caller, id: Path<u64>) -> Res<NoContent> {
        let app = app_of(req)?;
        let store = app.store.clone();
        let actor = caller.actor();
        tokio::task::spawn_blocking(move || auth::revoke_token(&store, &actor, id.0))
            .await
            .map_err(AppError::from)??;
        Ok(NoContent::Done)
    }

    /// All files.
    #[oai(path = "/files", method = "get")]
    async fn list_files(&self, req: &Request, _caller: Caller) -> Res<Json<FileList>> {
        let files = app_of(req)?.files.list().await?;
        Ok(Json(FileList {
            files: files.iter().map(FileJson::from).collect(),
        }))
    }

    /// Upload a new file: multipart fields `path`, `description`, `revision` (default 1.0) and `file`.
    #[oai(path = "/files", method = "post")]
    async fn upload(
        &self,
        req: &Request,
        caller: Caller,
        multipart: Multipart,
    ) -> Res<CreatedFile> {
        let app = app_of(req)?;
        let mut form = forms::read_upload(&app.files, multipart).await?;
        let (file_name, spool) = form.take_file()?;
        let new = crate::web::new_file_from(&form.fields, &file_name)?;
        let f = app.files.upload(&caller.actor(), new, spool).await?;
        Ok(CreatedFile::Created(Json(FileJson::from(&f))))
    }

    /// One file.
    #[oai(path = "/files/:id", method = "get")]
    async fn get_file(&self, req: &Request, _caller: Caller, id: Path<u64>) -> Res<Json<FileJson>> {
        let f = app_of(req)?.files.get(id.0).await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Check a file out (an exclusive lock), with an optional `comment`.
    #[oai(path = "/files/:id/checkout", method = "post")]
    async fn checkout(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<u64>,
        body: Body,
    ) -> Res<Json<FileJson>> {
        let app = app_of(req)?;
        let body: CheckoutBody = optional_json(body).await?;
        let comment = LockComment::parse(body.comment.as_deref().unwrap_or(""))?;
        let f = app.files.checkout(&caller.actor(), id.0, comment).await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Give your check-out back without a new version.
    #[oai(path = "/files/:id/cancel", method = "post")]
    async fn cancel(&self, req: &Request, caller: Caller, id: Path<u64>) -> Res<Json<FileJson>> {
        let f = app_of(req)?.files.cancel(&caller.actor(), id.0).await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Check in a new version: multipart `file`, `message`, `bump` (`minor` or `major`).
    #[oai(path = "/files/:id/checkin", method = "post")]
    async fn checkin(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<u64>,
        multipart: Multipart,
    ) -> Res<Json<FileJson>> {
        let app = app_of(req)?;
        app.files.precheck_checkin(&caller.actor(), id.0).await?;
        let mut form = forms::read_upload(&app.files, multipart).await?;
        let version = crate::web::new_version_from(&form.fields)?;
        let (_, spool) = form.take_file()?;
        let f = app
            .files
            .checkin(&caller.actor(), id.0, version, spool)
            .await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Admin: break someone's check-out.
    #[oai(path = "/files/:id/override", method = "post")]
    async fn override_lock(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<u64>,
    ) -> Res<Json<FileJson>> {
        let f = app_of(req)?
            .files
            .override_lock(&caller.actor(), id.0)
            .await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Admin: delete a file that is not checked out. Its history stays in Git.
    #[oai(path = "/files/:id", method = "delete")]
    async fn delete_file(&self, req: &Request, caller: Caller, id: Path<u64>) -> Res<NoContent> {
        app_of(req)?.files.delete(&caller.actor(), id.0).await?;
        Ok(NoContent::Done)
    }

    /// The file's versions, newest first.
    #[oai(path = "/files/:id/history", method = "get")]
    async fn history(&self, req: &Request, _caller: Caller, id: Path<u64>) -> Res<Json<History>> {
        let (_, versions) = app_of(req)?.files.history(id.0).await?;
        Ok(Json(History {
            versions: versions
                .into_iter()
                .map(|v| VersionJson {
                    commit: v.commit,
                    revision: v.revision,
                    author: v.author,
                    username: v.username,
                    at: iso_time(v.at),
                    message: v.message,
                })
                .collect(),
        }))
    }

    /// The current content, or the version written by commit `rev`.
    #[oai(path = "/files/:id/content", method = "get")]
    async fn content(
        &self,
        req: &Request,
        _caller: Caller,
        id: Path<u64>,
        rev: Query<Option<String>>,
    ) -> Res<Content> {
        let d = app_of(req)?.files.open(id.0, rev.0.as_deref()).await?;
        let disposition = crate::web::content_disposition(&d.file_name);
        let resp = crate::web::download_response(d);
        Ok(Content::Ok(
            Binary(resp.into_body()),
            disposition,
            "nosniff".into(),
            // As for the HTML download: never rendered, never cached shared.
            "default-src 'none'; sandbox".into(),
            "private, no-cache".into(),
        ))
    }

    /// Events after `since` (a sequence number), oldest first.
    #[oai(path = "/activity", method = "get")]
    async fn activity(
        &self,
        req: &Request,
        _caller: Caller,
        since: Query<Option<u64>>,
    ) -> Res<Json<Activity>> {
        let store = app_of(req)?.store.clone();
        let since = since.0;
        let (events, last_seq) = tokio::task::spawn_blocking(move || -> AppResult<_> {
            let last = store.last_seq()?;
            let events = match since {
                Some(s) => store.events_after(s, 1000)?.0,
                None => {
                    let mut recent = store.recent_events(100)?;
                    recent.reverse();
                    recent
                }
            };
            Ok((events, last))
        })
        .await
        .map_err(AppError::from)??;
        Ok(Json(Activity {
            events: events.iter().map(EventJson::from).collect(),
            last_seq,
        }))
    }

    /// Who am I.
    #[oai(path = "/me", method = "get")]
    async fn me(&self, caller: Caller) -> Res<Json<UserJson>> {
        Ok(Json(UserJson::from(caller.0.user())))
    }

    /// Admin: all users.
    #[oai(path = "/users", method = "get")]
    async fn list_users(&self, req: &Request, caller: Caller) -> Res<Json<UserList>> {
        require_admin(&caller, "list users")?;
        let users = app_of(req)?.store.all_users()?;
        Ok(Json(UserList {
            users: users.iter().map(UserJson::from).collect(),
        }))
    }

    /// Admin: add a user.
    #[oai(path = "/users", method = "post")]
    async fn add_user(
        &self,
        req: &Request,
        caller: Caller,
        body: Json<NewUserRequest>,
    ) -> Res<CreatedUser> {
        require_admin(&caller, "add users")?;
        let app = app_of(req)?;
        let new = auth::NewUser {
            username: Username::parse(&body.username)?,
            password: Password::parse(&body.password)?,
            role: Role::parse(body.role.as_deref().unwrap_or("user"))?,
            display_name: body
                .display_name
                .as_deref()
                .map(crate::domain::parse_display_name)
                .transpose()?,
        };
        let store = app.store.clone();
        let user = tokio::task::spawn_blocking(move || auth::create_user(&store, new))
            .await
            .map_err(AppError::from)??;
        Ok(CreatedUser::Created(Json(UserJson::from(&user))))
    }

    /// Admin: change a user's role, password, name, or disable them (which ends their sessions).
    #[oai(path = "/users/:username", method = "patch")]
    async fn edit_user(
        &self,
        req: &Request,
        caller: Caller,
        username: Path<String>,
        body: Json<UserPatchRequest>,
    ) -> Res<Json<UserJson>> {
        require_admin(&caller, "change users")?;
        let app = app_of(req)?;
        let patch = auth::UserPatch {
            role: body.role.as_deref().map(Role::parse).transpose()?,
            disabled: body.disabled,
            password: body.password.as_deref().map(Password::parse).transpose()?,
            display_name: body
                .display_name
                .as_deref()
                .map(crate::domain::parse_display_name)
                .transpose()?,
        };
        let name = Username::parse(&username.0)
            .map_err(|_| AppError::NotFound(format!("There is no user {}.", username.0)))?;
        let user = crate::web::apply_user_patch(app, name.as_str().to_string(), patch).await?;
        Ok(Json(UserJson::from(&user)))
    }
}

/// Gives every `/api` error the `{"error": "…"}` shape, including the ones
/// poem-openapi raises itself for malformed JSON or parameters.
pub async fn json_error(err: poem::Error) -> poem::Response {
    let status = err.status();
    let resp = err.into_response();
    let is_json = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let text = resp.into_body().into_string().await.unwrap_or_default();
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    poem::Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(serde_json::json!({ "error": message }).to_string())
}
