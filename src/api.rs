//! The JSON API under `/api`, declared with poem-openapi so its spec is
//! served at `/api/openapi.json` and browsable at `/api/docs`. Same
//! operations and rules as the HTML side; errors are `{"error": "…"}`.
//!
//! The document is the contract: every operation names each status it can
//! answer (tests/it/openapi.rs walks the live document and checks real answers
//! against it), strings are strings, ids are positive, and a known path
//! asked with another method answers 405 with `Allow`.

pub(crate) mod wire;

use std::sync::Arc;

use poem::http::{Method, StatusCode, header};
use poem::{Body, Endpoint, EndpointExt, IntoEndpoint, Request, RequestBody, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::types::multipart::Upload;
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, Enum, ExtractParamOptions, Multipart, Object,
    OpenApi, OpenApiService,
};
use serde_json::Value;

use crate::App;
use crate::auth::{self, Credential};
use crate::domain::{LockComment, Password, Role, Username};
use crate::error::{AppError, AppResult};
use crate::files::Actor;
use crate::forms;
use crate::store::{Event, EventKind, FileRecord, Store, UserRecord};
use crate::views::iso_time;
pub use wire::ErrorBody;
use wire::{
    BODY, Chars, DISPLAY, E400, E403, E404, E409, E422, Form, Id, LINE, MESSAGE, NAME, Nullable,
    OptionalJson, PATH, READ, REVISION, Refusal, Rule, Shape, TEXT, Text, USERNAME, WRITE,
};

/// The authenticated caller of an API request: a session cookie (writes
/// also carry `X-CSRF-Token`), an API token as Bearer, or HTTP Basic with a
/// password or a token.
pub struct Caller(pub Credential);

impl Caller {
    fn actor(&self) -> Actor {
        auth::actor_of(self.0.user())
    }
}

const SESSION: &str = "session";
const CSRF: &str = "csrf";

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        let scheme = |ty, description, name, key_in, scheme| MetaSecurityScheme {
            ty,
            description: Some(description),
            name,
            key_in,
            scheme,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        };
        registry.create_security_scheme(
            SESSION,
            scheme(
                "apiKey",
                "The session cookie set by POST /login. Writes (any method but GET) also need the csrf scheme.",
                Some("latch_session"),
                Some("cookie"),
                None,
            ),
        );
        registry.create_security_scheme(
            CSRF,
            scheme(
                "apiKey",
                "The csrf_token from POST /login, sent with the session cookie on every write.",
                Some("X-CSRF-Token"),
                Some("header"),
                None,
            ),
        );
        registry.create_security_scheme(
            "bearer",
            scheme(
                "http",
                "An API token from POST /tokens.",
                None,
                None,
                Some("bearer"),
            ),
        );
        registry.create_security_scheme(
            "basic",
            scheme(
                "http",
                "Username with a password or an API token as the password. A password costs an argon2 check: scripts should use tokens.",
                None,
                None,
                Some("basic"),
            ),
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SESSION, "bearer", "basic"]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let app = app_of(req)?;
        Ok(Caller(auth::authenticate_api(app, req).await?))
    }
}

fn app_of(req: &Request) -> AppResult<&App> {
    req.data::<App>()
        .ok_or_else(|| AppError::Internal("app state missing".into()))
}

/// What `T` answers with, or a refusal with one of the statuses in `CODES`.
pub(crate) type Answer<T, const CODES: u16> = Result<T, Refusal<CODES>>;

/// `available` or `locked`.
#[derive(Enum)]
#[oai(rename_all = "lowercase")]
enum FileState {
    Available,
    Locked,
}

#[derive(Enum, Clone, Copy)]
#[oai(rename = "Role", rename_all = "lowercase")]
enum RoleJson {
    Admin,
    User,
}

impl From<Role> for RoleJson {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleJson::Admin,
            Role::User => RoleJson::User,
        }
    }
}

/// How a check-in numbers the new version: `minor` (1.2 → 1.3, the
/// default) or `major` (1.2 → 2.0).
#[derive(Enum)]
#[oai(rename_all = "lowercase")]
enum Bump {
    Minor,
    Major,
}

#[derive(Enum)]
#[oai(rename = "EventKind", rename_all = "snake_case")]
enum EventKindJson {
    Created,
    Locked,
    Unlocked,
    CheckedIn,
    Overridden,
    Deleted,
}

impl From<EventKind> for EventKindJson {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Created => EventKindJson::Created,
            EventKind::Locked => EventKindJson::Locked,
            EventKind::Unlocked => EventKindJson::Unlocked,
            EventKind::CheckedIn => EventKindJson::CheckedIn,
            EventKind::Overridden => EventKindJson::Overridden,
            EventKind::Deleted => EventKindJson::Deleted,
        }
    }
}

/// A string documented as the enum `$json` but parsed by the domain's own
/// parser, so its refusal is the domain's sentence (422), not a schema error.
macro_rules! enum_shape {
    ($(#[$doc:meta])* $name:ident, $json:ty) => {
        $(#[$doc])*
        struct $name;
        impl Shape for $name {
            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                <$json as poem_openapi::types::Type>::schema_ref()
            }
            fn register(registry: &mut Registry) {
                <$json as poem_openapi::types::Type>::register(registry);
            }
        }
    };
}

enum_shape!(
    /// Strings sent as a role: parsed by `Role::parse`.
    RoleShape,
    RoleJson
);
enum_shape!(
    /// Strings sent as a bump: parsed by `Bump::parse`.
    BumpShape,
    Bump
);

#[derive(Object)]
pub struct LockJson {
    owner: String,
    locked_at: String,
    comment: Nullable<String>,
}

/// A file as the API shows it.
#[derive(Object)]
pub struct FileJson {
    #[oai(validator(minimum(value = "1")))]
    id: u64,
    path: String,
    size: u64,
    description: String,
    revision: String,
    state: FileState,
    lock: Nullable<LockJson>,
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
                FileState::Locked
            } else {
                FileState::Available
            },
            lock: Nullable(f.lock.as_ref().map(|l| LockJson {
                owner: l.owner.clone(),
                locked_at: iso_time(l.locked_at),
                comment: Nullable(l.comment.clone()),
            })),
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
    username: Text<Chars<0, 1024>>,
    password: Text<Chars<0, 1024>>,
}

#[derive(Object)]
struct LoginResponse {
    username: String,
    role: RoleJson,
    csrf_token: String,
}

#[derive(Object)]
struct TokenRequest {
    name: Text<Rule<NAME, 1, 64>>,
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
    kind: EventKindJson,
    at: String,
    actor: String,
    file_id: u64,
    path: String,
    note: Nullable<String>,
    revision: Nullable<String>,
    previous_holder: Nullable<String>,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            seq: e.seq,
            kind: e.kind.into(),
            at: iso_time(e.at),
            actor: e.actor.clone(),
            file_id: e.file_id,
            path: e.path.clone(),
            note: Nullable(e.note.clone()),
            revision: Nullable(e.revision.map(|r| r.to_string())),
            previous_holder: Nullable(e.previous_holder.clone()),
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
    role: RoleJson,
    disabled: bool,
    created_at: String,
}

impl From<&UserRecord> for UserJson {
    fn from(u: &UserRecord) -> Self {
        UserJson {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.into(),
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
    username: Text<Rule<USERNAME, 3, 32>>,
    /// 8 characters at least, 1024 bytes at most.
    password: Text<Chars<8, 1024>>,
    /// `user` when left out.
    #[oai(nullable)]
    role: Option<Text<RoleShape>>,
    #[oai(nullable)]
    display_name: Option<Text<Rule<DISPLAY, 0, 64>>>,
}

#[derive(Object)]
struct UserPatchRequest {
    #[oai(nullable)]
    role: Option<Text<RoleShape>>,
    #[oai(nullable)]
    disabled: Option<bool>,
    /// 8 characters at least, 1024 bytes at most.
    #[oai(nullable)]
    password: Option<Text<Chars<8, 1024>>>,
    #[oai(nullable)]
    display_name: Option<Text<Rule<DISPLAY, 0, 64>>>,
}

#[derive(Object)]
struct CheckoutRequest {
    /// A note for others on why it is checked out.
    #[oai(nullable)]
    comment: Option<Text<Rule<LINE, 0, { LockComment::MAX_CHARS }>>>,
}

/// `POST /files`: the new file and what to record about it.
#[derive(Multipart)]
#[allow(dead_code)] // describes the body; forms::read_upload streams it
struct UploadForm {
    /// Where the file goes, `/`-separated, at most 255 bytes in UTF-8; the
    /// uploaded file's name when left out or empty.
    path: Option<Text<Rule<PATH, 0, 255>>>,
    description: Option<Text<Rule<TEXT, 0, 2000>>>,
    /// `MAJOR.MINOR`, each part 0 to 999999; `1.0` when left out.
    revision: Option<Text<Rule<REVISION, 3, 13>>>,
    file: Upload,
}

/// `POST /files/{id}/checkin`: the new content and what changed.
#[derive(Multipart)]
#[allow(dead_code)] // describes the body; forms::read_upload streams it
struct CheckinForm {
    /// Required; becomes the Git commit message. No line may start with `Latch-`.
    message: Text<Rule<MESSAGE, 1, 5000>>,
    /// `minor` when left out.
    bump: Option<Text<BumpShape>>,
    file: Upload,
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

fn require_admin(caller: &Caller, what: &str) -> AppResult<()> {
    crate::files::require_admin(&caller.actor(), what)
}

fn display_name(raw: Option<&Text<Rule<DISPLAY, 0, 64>>>) -> AppResult<Option<String>> {
    Ok(raw
        .map(|t| crate::domain::parse_display_name(t.as_str()))
        .transpose()?)
}

// One line per operation attribute: tests/security.rs reads path and method from it.
#[rustfmt::skip::attributes(oai)]
#[OpenApi]
impl Api {
    /// Sign in with a password; returns the CSRF token for later writes.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        body: Json<LoginRequest>,
    ) -> Answer<LoginResult, { BODY | E403 | wire::E401 | wire::E429 }> {
        let app = app_of(req)?;
        auth::check_same_origin(app, req)?;
        let user = auth::login(
            app,
            body.username.as_str(),
            body.password.as_str(),
            auth::client_ip(app, req),
        )
        .await?;
        let store = app.store.clone();
        let (token, session) =
            tokio::task::spawn_blocking(move || auth::start_session(&store, &user)).await??;
        Ok(LoginResult::Ok(
            Json(LoginResponse {
                username: session.user.username.clone(),
                role: session.user.role.into(),
                csrf_token: session.csrf_token.clone(),
            }),
            auth::session_set_cookie(app, req, &token),
        ))
    }

    /// End this session.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, req: &Request, caller: Caller) -> Answer<NoContent, WRITE> {
        let app = app_of(req)?;
        if let Credential::Session(session) = &caller.0 {
            let store = app.store.clone();
            let hash = session.token_hash.clone();
            tokio::task::spawn_blocking(move || auth::end_session(&store, &hash)).await??;
            app.hub.end_session(&session.token_hash);
        }
        Ok(NoContent::Done)
    }

    /// Create an API token; the token is shown only in this answer.
    #[oai(path = "/tokens", method = "post", operation_id = "createToken")]
    async fn create_token(
        &self,
        req: &Request,
        caller: Caller,
        body: Json<TokenRequest>,
    ) -> Answer<CreatedToken, { WRITE | BODY | E422 }> {
        let app = app_of(req)?;
        let name = crate::web::parse_token_name(body.name.as_str())?;
        let store = app.store.clone();
        let user = caller.0.user().username.clone();
        let (rec, token) =
            tokio::task::spawn_blocking(move || auth::create_token(&store, &user, &name)).await??;
        Ok(CreatedToken::Created(Json(NewToken {
            id: rec.id,
            name: rec.name,
            token,
        })))
    }

    /// Your API tokens (never the tokens themselves).
    #[oai(path = "/tokens", method = "get", operation_id = "listTokens")]
    async fn list_tokens(&self, req: &Request, caller: Caller) -> Answer<Json<TokenList>, READ> {
        let app = app_of(req)?;
        let name = caller.0.user().username.clone();
        let tokens = app
            .store
            .blocking(move |store| auth::list_tokens(store, &name))
            .await?;
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
    #[oai(path = "/tokens/:id", method = "delete", operation_id = "revokeToken")]
    async fn revoke_token(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<NoContent, { WRITE | E400 | E404 }> {
        let app = app_of(req)?;
        let store = app.store.clone();
        let actor = caller.actor();
        tokio::task::spawn_blocking(move || auth::revoke_token(&store, &actor, id.0.0)).await??;
        Ok(NoContent::Done)
    }

    /// All files.
    #[oai(path = "/files", method = "get", operation_id = "listFiles")]
    async fn list_files(&self, req: &Request, _caller: Caller) -> Answer<Json<FileList>, READ> {
        let files = app_of(req)?.files.list().await?;
        Ok(Json(FileList {
            files: files.iter().map(FileJson::from).collect(),
        }))
    }

    /// Upload a new file.
    #[oai(path = "/files", method = "post", operation_id = "uploadFile")]
    async fn upload(
        &self,
        req: &Request,
        caller: Caller,
        form: Form<UploadForm>,
    ) -> Answer<CreatedFile, { WRITE | BODY | E409 | E422 }> {
        let app = app_of(req)?;
        let mut form = forms::read_upload(&app.files, form.0).await?;
        let (file_name, spool) = form.take_file()?;
        let new = crate::web::new_file_from(&form.fields, &file_name)?;
        let f = app.files.upload(&caller.actor(), new, spool).await?;
        Ok(CreatedFile::Created(Json(FileJson::from(&f))))
    }

    /// One file.
    #[oai(path = "/files/:id", method = "get", operation_id = "getFile")]
    async fn get_file(
        &self,
        req: &Request,
        _caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { READ | E400 | E404 }> {
        let f = app_of(req)?.files.get(id.0.0).await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Check a file out (an exclusive lock), with an optional comment. The
    /// body may be left out.
    #[oai(path = "/files/:id/checkout", method = "post", operation_id = "checkOut")]
    async fn checkout(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<Id>,
        body: OptionalJson<CheckoutRequest>,
    ) -> Answer<Json<FileJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let app = app_of(req)?;
        let comment = body
            .0
            .as_ref()
            .and_then(|b| b.comment.as_ref())
            .map_or("", Text::as_str);
        let comment = LockComment::parse(comment)?;
        let f = app.files.checkout(&caller.actor(), id.0.0, comment).await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Give your check-out back without a new version.
    #[oai(path = "/files/:id/cancel", method = "post", operation_id = "cancelCheckOut")]
    async fn cancel(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 | E409 }> {
        let f = app_of(req)?.files.cancel(&caller.actor(), id.0.0).await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Check in a new version of a file you hold; this also ends the check-out.
    #[oai(path = "/files/:id/checkin", method = "post", operation_id = "checkIn")]
    async fn checkin(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<Id>,
        form: Form<CheckinForm>,
    ) -> Answer<Json<FileJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let app = app_of(req)?;
        let id = id.0.0;
        app.files.precheck_checkin(&caller.actor(), id).await?;
        let mut form = forms::read_upload(&app.files, form.0).await?;
        let version = crate::web::new_version_from(&form.fields)?;
        let (_, spool) = form.take_file()?;
        let f = app
            .files
            .checkin(&caller.actor(), id, version, spool)
            .await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Admin: break someone's check-out.
    #[oai(path = "/files/:id/override", method = "post", operation_id = "overrideCheckOut")]
    async fn override_lock(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 | E409 }> {
        let f = app_of(req)?
            .files
            .override_lock(&caller.actor(), id.0.0)
            .await?;
        Ok(Json(FileJson::from(&f)))
    }

    /// Admin: delete a file that is not checked out. Its history stays in Git.
    #[oai(path = "/files/:id", method = "delete", operation_id = "deleteFile")]
    async fn delete_file(
        &self,
        req: &Request,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<NoContent, { WRITE | E400 | E404 | E409 }> {
        app_of(req)?.files.delete(&caller.actor(), id.0.0).await?;
        Ok(NoContent::Done)
    }

    /// The file's versions, newest first.
    #[oai(path = "/files/:id/history", method = "get", operation_id = "fileHistory")]
    async fn history(
        &self,
        req: &Request,
        _caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<History>, { READ | E400 | E404 }> {
        let (_, versions) = app_of(req)?.files.history(id.0.0).await?;
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

    /// The current content, or the version written by commit `rev` (a
    /// commit id from the history; empty means the current one).
    #[oai(path = "/files/:id/content", method = "get", operation_id = "fileContent")]
    async fn content(
        &self,
        req: &Request,
        _caller: Caller,
        id: Path<Id>,
        rev: Query<Option<Text<Chars<0, 64>>>>,
    ) -> Answer<Content, { READ | E400 | E404 }> {
        let d = app_of(req)?
            .files
            .open(id.0.0, rev.0.as_ref().map(Text::as_str))
            .await?;
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

    /// Events after `since` (a sequence number), oldest first; without it,
    /// the latest 100.
    #[oai(path = "/activity", method = "get", operation_id = "activity")]
    async fn activity(
        &self,
        req: &Request,
        _caller: Caller,
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))] since: Query<
            Option<u64>,
        >,
    ) -> Answer<Json<Activity>, { READ | E400 }> {
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
        .await??;
        Ok(Json(Activity {
            events: events.iter().map(EventJson::from).collect(),
            last_seq,
        }))
    }

    /// Who am I.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, caller: Caller) -> Answer<Json<UserJson>, READ> {
        Ok(Json(UserJson::from(caller.0.user())))
    }

    /// Admin: all users.
    #[oai(path = "/users", method = "get", operation_id = "listUsers")]
    async fn list_users(
        &self,
        req: &Request,
        caller: Caller,
    ) -> Answer<Json<UserList>, { READ | E403 }> {
        require_admin(&caller, "list users")?;
        let users = app_of(req)?.store.blocking(Store::all_users).await?;
        Ok(Json(UserList {
            users: users.iter().map(UserJson::from).collect(),
        }))
    }

    /// Admin: add a user.
    #[oai(path = "/users", method = "post", operation_id = "addUser")]
    async fn add_user(
        &self,
        req: &Request,
        caller: Caller,
        body: Json<NewUserRequest>,
    ) -> Answer<CreatedUser, { WRITE | BODY | E409 | E422 }> {
        require_admin(&caller, "add users")?;
        let app = app_of(req)?;
        let new = auth::NewUser {
            username: Username::parse(body.username.as_str())?,
            password: Password::parse(body.password.as_str())?,
            role: Role::parse(body.role.as_ref().map_or("user", Text::as_str))?,
            display_name: display_name(body.display_name.as_ref())?,
        };
        let store = app.store.clone();
        let user = tokio::task::spawn_blocking(move || auth::create_user(&store, new)).await??;
        Ok(CreatedUser::Created(Json(UserJson::from(&user))))
    }

    /// Admin: change a user's role, password, name, or disable them (which ends their sessions).
    #[oai(path = "/users/:username", method = "patch", operation_id = "editUser")]
    async fn edit_user(
        &self,
        req: &Request,
        caller: Caller,
        username: Path<Text<Rule<USERNAME, 3, 32>>>,
        body: Json<UserPatchRequest>,
    ) -> Answer<Json<UserJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        require_admin(&caller, "change users")?;
        let app = app_of(req)?;
        let patch = auth::UserPatch {
            role: body
                .role
                .as_ref()
                .map(|r| Role::parse(r.as_str()))
                .transpose()?,
            disabled: body.disabled,
            password: body
                .password
                .as_ref()
                .map(|p| Password::parse(p.as_str()))
                .transpose()?,
            display_name: display_name(body.display_name.as_ref())?,
        };
        let raw = username.0.as_str();
        let name = Username::parse(raw)
            .map_err(|_| AppError::NotFound(format!("There is no user {raw}.")))?;
        let user = crate::web::apply_user_patch(app, name.as_str().to_string(), patch).await?;
        Ok(Json(UserJson::from(&user)))
    }
}

/// The `/api` service: these operations and the backup one.
pub type Service = OpenApiService<(Api, crate::backup::BackupApi), ()>;

pub fn service() -> Service {
    OpenApiService::new((Api, crate::backup::BackupApi), "Latch", env!("CARGO_PKG_VERSION"))
        .server("/api")
        .description("Check files out and in; see who holds what. Authenticate with a session cookie plus X-CSRF-Token, an API token (Bearer), or HTTP Basic. Every refusal is `{\"error\": \"<a sentence>\"}` with one of the statuses documented for the operation.")
}

/// The document as served, with what poem-openapi cannot say itself added
/// to every operation in one walk.
pub fn spec(service: &Service) -> Value {
    let mut doc: Value = serde_json::from_str(&service.spec()).unwrap_or(Value::Null);
    let ops = doc
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.iter_mut())
        .filter_map(|(method, op)| Some((method.as_str(), op.as_object_mut()?)));
    for (method, op) in ops {
        if method != "get" {
            require_csrf_with_session(op);
        }
        add_edge_refusals(op);
    }
    doc
}

/// poem-openapi lists each security scheme as its own alternative; a
/// session cookie is only enough for reads, so on writes the session
/// alternative also requires the CSRF header.
fn require_csrf_with_session(op: &mut serde_json::Map<String, Value>) {
    let alternatives = op
        .get_mut("security")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut);
    for alternative in alternatives {
        if alternative.contains_key(SESSION) {
            alternative.insert(CSRF.into(), Value::Array(Vec::new()));
        }
    }
}

/// The refusals the edge gives before an operation runs (`serve` and the
/// body limit in `web::with_middleware`): 413 for any body over its limit
/// (even where none is expected), 408 where a body is read and may stall.
fn add_edge_refusals(op: &mut serde_json::Map<String, Value>) {
    let error = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": {"application/json; charset=utf-8": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}
            }}
        })
    };
    let reads_body = op.contains_key("requestBody");
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    responses.entry("413").or_insert_with(|| {
        error("The body is over its limit (64 KiB, or --max-upload for a file); nothing was kept.")
    });
    if reads_body {
        responses.entry("408").or_insert_with(|| {
            error("The body stopped arriving (no byte for --body-stall); nothing was kept.")
        });
    }
}

/// `GET /api/openapi.json`.
pub fn spec_endpoint(service: &Service) -> impl Endpoint + 'static {
    let body = serde_json::to_string_pretty(&spec(service)).unwrap_or_default();
    crate::allow::get(poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(body.clone())
    }))
}

/// A documented path, split at `/`; `None` stands for a `{parameter}`.
type PathPattern = Vec<Option<String>>;

/// Which methods each documented path takes, for `Allow` on a 405.
fn allow_table(doc: &Value) -> Vec<(PathPattern, String)> {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    paths
        .iter()
        .map(|(path, ops)| {
            let pattern = path
                .split('/')
                .map(|seg| (!seg.starts_with('{')).then(|| seg.to_string()))
                .collect();
            let methods: Vec<Method> = ops
                .as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                .collect();
            (pattern, crate::allow::allow_value(&methods))
        })
        .collect()
}

fn allowed<'t>(table: &'t [(PathPattern, String)], path: &str) -> Option<&'t str> {
    let segs: Vec<&str> = path.split('/').collect();
    table
        .iter()
        .filter(|(pattern, _)| pattern.len() == segs.len())
        .find(|(pattern, _)| {
            pattern
                .iter()
                .zip(&segs)
                .all(|(p, s)| p.as_deref().is_none_or(|p| p == *s))
        })
        .map(|(_, allow)| allow.as_str())
}

/// The operations, to nest at `/api`: refusals in the `{"error"}` shape,
/// and 405 with `Allow` for a documented path asked with another method.
pub fn endpoint(service: Service) -> impl Endpoint + 'static {
    let table = Arc::new(allow_table(&spec(&service)));
    service
        .into_endpoint()
        .catch_all_error(json_error)
        .around(move |ep, req| {
            let table = table.clone();
            async move {
                let path = req.uri().path().to_string();
                let shown = req.original_uri().path().to_string();
                let method = req.method().clone();
                let mut resp = ep.call(req).await?;
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allow) = allowed(&table, &path)
                {
                    let message = format!("{shown} does not take {method}; it takes {allow}.");
                    resp = error_response(StatusCode::METHOD_NOT_ALLOWED, &message);
                    crate::allow::add_allow(&mut resp, allow);
                }
                Ok(resp)
            }
        })
}

fn error_response(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(serde_json::json!({ "error": message }).to_string())
}

/// Gives every `/api` error the `{"error": "…"}` shape, including the ones
/// poem-openapi raises itself for malformed JSON or parameters, said as
/// sentences.
pub async fn json_error(err: poem::Error) -> Response {
    use poem_openapi::error::{
        ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    let status = err.status();
    let said = if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        Some(format!("The request body is not valid: {}", e.reason))
    } else if let Some(e) = err.downcast_ref::<ParseParamError>() {
        Some(format!(
            "The parameter '{}' is not valid: {}",
            e.name, e.reason
        ))
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        // Its name is poem's internal one (`param0`); the reason names it.
        let reason = match e.reason.split_once("\": ") {
            Some((head, rest)) if head.starts_with("failed to parse") => rest,
            _ => e.reason.as_str(),
        };
        Some(format!("The path is not valid: {reason}"))
    } else if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        Some(match e {
            ContentTypeError::NotSupported { content_type } => {
                format!("Send this body as application/json, not {content_type}.")
            }
            _ => "Send this body as application/json, with a Content-Type header.".to_string(),
        })
    } else if err.is::<poem::error::NotFoundError>() {
        Some("There is no such API route; see /api/openapi.json.".to_string())
    } else {
        None
    };
    if let Some(message) = said {
        return error_response(status, &message);
    }
    let resp = err.into_response();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
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
    error_response(status, &message)
}
