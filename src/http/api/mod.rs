//! The JSON API under `/api`, declared with poem-openapi so its spec is
//! served at `/api/openapi.json` and browsable at `/api/docs`. Same
//! operations and rules as the HTML side; errors are `{"error": "…"}`.
//!
//! The document is the contract: every operation names each status it can
//! answer (tests/it/openapi.rs walks the live document and checks real answers
//! against it), strings are strings, ids are positive, and a known path
//! asked with another method answers 405 with `Allow`.
//!
//! Long because every operation is declared here in the order the document
//! lists them, each a few lines handing a typed request to a service; split
//! by file, the document's order would follow the files, not the work.

mod backup;
mod content;
mod json;
mod me;
mod sets;
mod spec;
mod stream;
pub(crate) mod wire;

use std::time::Duration;

use poem::web::Data;
use poem::{Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, OpenApi, OpenApiService};

use crate::accounts::{Accounts, NewUser, UserPatch};
use crate::domain::{Folder, LockComment, NudgeMessage, Password, Role, Username};
use crate::error::{AppError, AppResult};
use crate::files::Watches;
use crate::files::{Actor, Files};
use crate::http::downloads::{content_disposition, download_response};
use crate::http::forms::{self, new_file_from, new_version_from, parse_token_name};
use crate::http::guards::{Credential, Guard};
use crate::http::views::iso_time;
use crate::inbox::MarkRead;
use crate::live::Hub;
pub use content::zip_by_path;
use json::*;
pub use spec::{endpoint, spec, spec_endpoint};
pub use wire::ErrorBody;
use wire::{
    BODY, Chars, DISPLAY, E400, E403, E404, E409, E422, Form, Id, OptionalJson, READ, Refusal,
    Rule, Text, USERNAME, WRITE,
};

/// The authenticated caller of an API request: a session cookie (writes
/// also carry `X-CSRF-Token`), an API token as Bearer, or HTTP Basic with a
/// password or a token.
pub struct Caller(pub Credential);

impl Caller {
    fn actor(&self) -> Actor {
        self.0.actor()
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
        Ok(Caller(Guard::of(req)?.caller().await?))
    }
}

/// What `T` answers with, or a refusal with one of the statuses in `CODES`.
pub(crate) type Answer<T, const CODES: u16> = Result<T, Refusal<CODES>>;

pub struct Api;

fn require_admin(caller: &Caller, what: &str) -> AppResult<()> {
    crate::files::require_admin(&caller.actor(), what)
}

fn display_name(raw: Option<&Text<Rule<DISPLAY, 0, 64>>>) -> AppResult<Option<String>> {
    Ok(raw
        .map(|t| crate::domain::parse_display_name(t.as_str()))
        .transpose()?)
}

// One line per operation attribute: tests/it/security.rs reads path and method from it.
#[rustfmt::skip::attributes(oai)]
#[OpenApi]
impl Api {
    /// Sign in with a password; returns the CSRF token for later writes.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        guard: Guard<'_>,
        body: Json<LoginRequest>,
    ) -> Answer<LoginResult, { BODY | E403 | wire::E401 | wire::E429 }> {
        guard.same_origin()?;
        let user = guard
            .accounts
            .login(
                body.username.as_str(),
                body.password.as_str(),
                guard.client_ip(),
            )
            .await?;
        let (token, session) = guard.accounts.start_session(&user).await?;
        Ok(LoginResult::Ok(
            Json(LoginResponse {
                username: session.user.username.clone(),
                role: session.user.role.into(),
                csrf_token: session.csrf_token.clone(),
            }),
            guard.session_set_cookie(&token),
        ))
    }

    /// End this session.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        Data(accounts): Data<&Accounts>,
        caller: Caller,
    ) -> Answer<NoContent, WRITE> {
        if let Credential::Session(session) = &caller.0 {
            accounts.end_session(session).await?;
        }
        Ok(NoContent::Done)
    }

    /// Create an API token; the token is shown only in this answer.
    #[oai(path = "/tokens", method = "post", operation_id = "createToken")]
    async fn create_token(
        &self,
        Data(accounts): Data<&Accounts>,
        caller: Caller,
        body: Json<TokenRequest>,
    ) -> Answer<CreatedToken, { WRITE | BODY | E422 }> {
        let name = parse_token_name(body.name.as_str())?;
        let (rec, token) = accounts
            .create_token(&caller.0.user().username, &name)
            .await?;
        Ok(CreatedToken::Created(Json(NewToken {
            id: rec.id,
            name: rec.name,
            token,
        })))
    }

    /// Your API tokens (never the tokens themselves).
    #[oai(path = "/tokens", method = "get", operation_id = "listTokens")]
    async fn list_tokens(
        &self,
        Data(accounts): Data<&Accounts>,
        caller: Caller,
    ) -> Answer<Json<TokenList>, READ> {
        let tokens = accounts.tokens(&caller.0.user().username).await?;
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
        Data(accounts): Data<&Accounts>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<NoContent, { WRITE | E400 | E404 }> {
        accounts.revoke_token(&caller.actor(), id.0.0).await?;
        Ok(NoContent::Done)
    }

    /// All files, in id order.
    #[oai(path = "/files", method = "get", operation_id = "listFiles")]
    async fn list_files(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
    ) -> Answer<stream::JsonStream<FileList>, READ> {
        let watches = files.watches(&caller.actor().username).await?;
        Ok(stream::JsonStream::new(files_json(files.clone(), watches)))
    }

    /// Upload a new file.
    #[oai(path = "/files", method = "post", operation_id = "uploadFile")]
    async fn upload(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        form: Form<UploadForm>,
    ) -> Answer<CreatedFile, { WRITE | BODY | E409 | E422 }> {
        let mut form = forms::read_upload(files, form.0).await?;
        let (file_name, spool) = form.take_file()?;
        let new = new_file_from(&form.fields, &file_name)?;
        let f = files.upload(&caller.actor(), new, spool).await?;
        Ok(CreatedFile::Created(Json(
            file_json(files, &caller, &f).await?,
        )))
    }

    /// One file.
    #[oai(path = "/files/:id", method = "get", operation_id = "getFile")]
    async fn get_file(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { READ | E400 | E404 }> {
        let f = files.get(id.0.0).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Check a file out (an exclusive lock), with an optional comment. The
    /// body may be left out.
    #[oai(path = "/files/:id/checkout", method = "post", operation_id = "checkOut")]
    async fn checkout(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
        body: OptionalJson<CheckoutRequest>,
    ) -> Answer<Json<FileJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let comment = body
            .0
            .as_ref()
            .and_then(|b| b.comment.as_ref())
            .map_or("", Text::as_str);
        let comment = LockComment::parse(comment)?;
        let f = files.checkout(&caller.actor(), id.0.0, comment).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Give your check-out back without a new version.
    #[oai(path = "/files/:id/cancel", method = "post", operation_id = "cancelCheckOut")]
    async fn cancel(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 | E409 }> {
        let f = files.cancel(&caller.actor(), id.0.0).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Check in a new version of a file you hold; this also ends the check-out.
    #[oai(path = "/files/:id/checkin", method = "post", operation_id = "checkIn")]
    async fn checkin(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
        form: Form<CheckinForm>,
    ) -> Answer<Json<FileJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let id = id.0.0;
        files.precheck_checkin(&caller.actor(), id).await?;
        let mut form = forms::read_upload(files, form.0).await?;
        let version = new_version_from(&form.fields)?;
        let f =
            forms::checkin_upload_or_draft(files, &caller.actor(), id, version, &mut form).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Wait in line for a file someone else holds (or that is reserved
    /// for someone else). When the check-out ends, the file is reserved for
    /// the first in line for the hand-off window.
    #[oai(path = "/files/:id/queue", method = "post", operation_id = "joinQueue")]
    async fn join_queue(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 | E409 }> {
        let f = files.join_queue(&caller.actor(), id.0.0).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Leave the line for a file.
    #[oai(path = "/files/:id/queue", method = "delete", operation_id = "leaveQueue")]
    async fn leave_queue(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 | E409 }> {
        let f = files.leave_queue(&caller.actor(), id.0.0).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Pass a file reserved for you to the next in line (or make it available).
    #[oai(path = "/files/:id/decline", method = "post", operation_id = "declineReservation")]
    async fn decline(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 | E409 }> {
        let f = files.decline(&caller.actor(), id.0.0).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Ask the holder of a file to release it, with an optional message.
    /// At most once an hour per file (429 with Retry-After).
    #[oai(path = "/files/:id/nudge", method = "post", operation_id = "askToRelease")]
    async fn nudge(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
        body: OptionalJson<NudgeRequest>,
    ) -> Answer<NoContent, { WRITE | BODY | E404 | E409 | E422 }> {
        let message = body
            .0
            .as_ref()
            .and_then(|b| b.message.as_ref())
            .map_or("", Text::as_str);
        let message = NudgeMessage::parse(message)?;
        files.nudge(&caller.actor(), id.0.0, message).await?;
        Ok(NoContent::Done)
    }

    /// Hear of every change to a file.
    #[oai(path = "/files/:id/watch", method = "post", operation_id = "watchFile")]
    async fn watch_file(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 }> {
        Ok(watch_file(files, &caller, id.0.0, true).await?)
    }

    /// Stop hearing of changes to a file (a folder you watch still tells you).
    #[oai(path = "/files/:id/watch", method = "delete", operation_id = "unwatchFile")]
    async fn unwatch_file(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 }> {
        Ok(watch_file(files, &caller, id.0.0, false).await?)
    }

    /// What you watch.
    #[oai(path = "/watches", method = "get", operation_id = "listWatches")]
    async fn watches(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
    ) -> Answer<Json<WatchesJson>, READ> {
        let w = files.watches(&caller.actor().username).await?;
        Ok(Json(WatchesJson::from(&w)))
    }

    /// Hear of every change to the files in a folder (and its folders),
    /// including files added later. `/` is the whole vault.
    #[oai(path = "/watches", method = "post", operation_id = "watchFolder")]
    async fn watch_folder(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        body: Json<FolderRequest>,
    ) -> Answer<Json<WatchesJson>, { WRITE | BODY | E422 }> {
        Ok(watch_folder(files, &caller, &body.0, true).await?)
    }

    /// Stop watching a folder.
    #[oai(path = "/watches", method = "delete", operation_id = "unwatchFolder")]
    async fn unwatch_folder(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        body: Json<FolderRequest>,
    ) -> Answer<Json<WatchesJson>, { WRITE | BODY | E422 }> {
        Ok(watch_folder(files, &caller, &body.0, false).await?)
    }

    /// Your notifications, newest first (an inbox keeps the newest 200).
    #[oai(path = "/notifications", method = "get", operation_id = "listNotifications")]
    async fn notifications(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        /// Only the unread ones.
        unread: Query<Option<bool>>,
    ) -> Answer<Json<NotificationsJson>, { READ | E400 }> {
        let inbox = files
            .inbox(&caller.actor().username, unread.0.unwrap_or(false))
            .await?;
        Ok(Json(NotificationsJson {
            notifications: inbox
                .notifications
                .iter()
                .map(NotificationJson::from)
                .collect(),
            unread: inbox.unread,
        }))
    }

    /// Mark notifications read: `{"ids":[…]}` or `{"all":true}`. Ids that
    /// are not yours are ignored.
    #[oai(path = "/notifications/read", method = "post", operation_id = "markNotificationsRead")]
    async fn mark_read(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        body: Json<MarkReadRequest>,
    ) -> Answer<NoContent, { WRITE | BODY | E422 }> {
        let which = match (body.0.all, body.0.ids) {
            (Some(true), None) => MarkRead::All,
            (None | Some(false), Some(ids)) => MarkRead::Ids(ids),
            _ => {
                return Err(AppError::Invalid(
                    "Say which notifications to mark read: {\"ids\":[…]} or {\"all\":true}.".into(),
                )
                .into());
            }
        };
        files.mark_read(&caller.actor().username, which).await?;
        Ok(NoContent::Done)
    }

    /// Admin: break someone's check-out.
    #[oai(path = "/files/:id/override", method = "post", operation_id = "overrideCheckOut")]
    async fn override_lock(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<FileJson>, { WRITE | E400 | E404 | E409 }> {
        let f = files.override_lock(&caller.actor(), id.0.0).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Change a file's description: by its holder or an admin.
    #[oai(path = "/files/:id", method = "patch", operation_id = "editFile")]
    async fn edit_file(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
        body: Json<sets::EditFileRequest>,
    ) -> Answer<Json<FileJson>, { WRITE | BODY | E400 | E404 | E409 | E422 }> {
        let description = crate::domain::Description::parse(body.description.as_str())?;
        let f = files.describe(&caller.actor(), id.0.0, description).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }

    /// Admin: delete a file that is not checked out. Its history stays in Git.
    #[oai(path = "/files/:id", method = "delete", operation_id = "deleteFile")]
    async fn delete_file(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: Path<Id>,
    ) -> Answer<NoContent, { WRITE | E400 | E404 | E409 }> {
        files.delete(&caller.actor(), id.0.0).await?;
        Ok(NoContent::Done)
    }

    /// The file's versions, newest first.
    #[oai(path = "/files/:id/history", method = "get", operation_id = "fileHistory")]
    async fn history(
        &self,
        Data(files): Data<&Files>,
        _caller: Caller,
        id: Path<Id>,
    ) -> Answer<Json<History>, { READ | E400 | E404 }> {
        let (_, versions) = files.history(id.0.0).await?;
        Ok(Json(History {
            versions: versions
                .into_iter()
                .map(|v| VersionJson {
                    commit: v.commit.to_string(),
                    action: v.action.to_string(),
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
        Data(files): Data<&Files>,
        _caller: Caller,
        id: Path<Id>,
        rev: Query<Option<Text<Chars<0, 64>>>>,
    ) -> Answer<Content, { READ | E400 | E404 }> {
        let d = files.open(id.0.0, rev.0.as_ref().map(Text::as_str)).await?;
        let disposition = content_disposition(&d.file_name);
        let resp = download_response(d);
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
        Data(files): Data<&Files>,
        _caller: Caller,
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))] since: Query<
            Option<u64>,
        >,
    ) -> Answer<Json<Activity>, { READ | E400 }> {
        let (events, last_seq) = files.activity(since.0).await?;
        Ok(Json(Activity {
            events: events.iter().map(EventJson::from).collect(),
            last_seq,
        }))
    }

    /// Who has a live connection now, and who has which file's history
    /// open (file id → usernames). Kept in memory only, never in the
    /// activity log.
    #[oai(path = "/presence", method = "get", operation_id = "presence")]
    async fn presence(
        &self,
        Data(hub): Data<&Hub>,
        _caller: Caller,
    ) -> Answer<Json<PresenceJson>, READ> {
        Ok(Json(PresenceJson::from(&hub.presence().snapshot())))
    }

    /// Admin: all users.
    #[oai(path = "/users", method = "get", operation_id = "listUsers")]
    async fn list_users(
        &self,
        Data(accounts): Data<&Accounts>,
        caller: Caller,
    ) -> Answer<Json<UserList>, { READ | E403 }> {
        require_admin(&caller, "list users")?;
        let users = accounts.users().await?;
        Ok(Json(UserList {
            users: users.iter().map(UserJson::from).collect(),
        }))
    }

    /// Admin: add a user.
    #[oai(path = "/users", method = "post", operation_id = "addUser")]
    async fn add_user(
        &self,
        Data(accounts): Data<&Accounts>,
        caller: Caller,
        body: Json<NewUserRequest>,
    ) -> Answer<CreatedUser, { WRITE | BODY | E409 | E422 }> {
        require_admin(&caller, "add users")?;
        let new = NewUser {
            username: Username::parse(body.username.as_str())?,
            password: Password::parse(body.password.as_str())?,
            role: Role::parse(body.role.as_ref().map_or("user", Text::as_str))?,
            display_name: display_name(body.display_name.as_ref())?,
        };
        let user = accounts.create_user(new).await?;
        Ok(CreatedUser::Created(Json(UserJson::from(&user))))
    }

    /// Admin: change a user's role, password, name, or disable them (which ends their sessions).
    #[oai(path = "/users/:username", method = "patch", operation_id = "editUser")]
    async fn edit_user(
        &self,
        Data(accounts): Data<&Accounts>,
        caller: Caller,
        username: Path<Text<Rule<USERNAME, 3, 32>>>,
        body: Json<UserPatchRequest>,
    ) -> Answer<Json<UserJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        require_admin(&caller, "change users")?;
        let patch = UserPatch {
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
        let user = accounts
            .update_user(name.as_str().to_string(), patch)
            .await?;
        Ok(Json(UserJson::from(&user)))
    }
}

/// The `/api` service: these operations, `/me` and the backup one.
pub type Service = OpenApiService<
    (
        Api,
        me::MeApi,
        sets::SetsApi,
        backup::BackupApi,
        content::ContentApi,
    ),
    (),
>;

pub fn service() -> Service {
    OpenApiService::new((Api, me::MeApi, sets::SetsApi, backup::BackupApi, content::ContentApi), "Latch", env!("CARGO_PKG_VERSION"))
        .server("/api")
        .description("Check files out and in; see who holds what. Authenticate with a session cookie plus X-CSRF-Token, an API token (Bearer), or HTTP Basic. Every refusal is `{\"error\": \"<a sentence>\"}` with one of the statuses documented for the operation.")
}

/// A file's JSON as the caller sees it (`watching`).
async fn file_json(
    files: &Files,
    caller: &Caller,
    f: &crate::store::FileRecord,
) -> AppResult<FileJson> {
    let watching = files.watching(&caller.actor().username, f).await?;
    Ok(FileJson {
        watching: Some(watching),
        ..FileJson::of(f, files.stale_after())
    })
}

/// A file's JSON with `watching` for the caller who watches `watches`.
/// Files read per page of `/api/files`: what the server holds of the list.
const FILES_PAGE: usize = 1000;

/// `{"files": [...]}` as `Json<FileList>` writes it, read and sent a page
/// at a time as the client takes it, so a vault of any size costs one page
/// of memory. A failed read past the first byte ends the body short (the
/// status has left): the client sees JSON cut off, never a wrong list.
fn files_json(files: Files, watches: Watches) -> poem::Body {
    use poem_openapi::types::ToJSON;
    let stale_after = files.stale_after();
    let pages = async_stream::stream! {
        yield Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"files\":["));
        let mut from = 0u64;
        let mut first = true;
        loop {
            let page = match files.page_from(from, FILES_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "listing files stopped part way");
                    yield Err(std::io::Error::other(e.to_string()));
                    return;
                }
            };
            let mut out = Vec::with_capacity(page.len() * 512);
            for f in &page {
                if !first {
                    out.push(b',');
                }
                first = false;
                if let Err(e) = serde_json::to_writer(&mut out, &watched(f, &watches, stale_after).to_json()) {
                    yield Err(std::io::Error::other(e));
                    return;
                }
            }
            yield Ok(bytes::Bytes::from(out));
            match page.last().and_then(|f| f.id.checked_add(1)) {
                Some(next) if page.len() == FILES_PAGE => from = next,
                _ => break,
            }
        }
        yield Ok(bytes::Bytes::from_static(b"]}"));
    };
    poem::Body::from_bytes_stream(pages)
}

fn watched(f: &crate::store::FileRecord, watches: &Watches, stale_after: Duration) -> FileJson {
    FileJson {
        watching: Some(watches.covers(f)),
        ..FileJson::of(f, stale_after)
    }
}

/// Starts or stops the caller watching file `id`; answers the file.
async fn watch_file(
    files: &Files,
    caller: &Caller,
    id: u64,
    on: bool,
) -> AppResult<Json<FileJson>> {
    let f = files.watch(&caller.actor(), id, on).await?;
    Ok(Json(file_json(files, caller, &f).await?))
}

/// Starts or stops the caller watching a folder; answers all they watch.
async fn watch_folder(
    files: &Files,
    caller: &Caller,
    body: &FolderRequest,
    on: bool,
) -> AppResult<Json<WatchesJson>> {
    let folder = Folder::parse(body.folder.as_str())?;
    let w = files.watch_folder(&caller.actor(), folder, on).await?;
    Ok(Json(WatchesJson::from(&w)))
}
