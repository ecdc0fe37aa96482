//! Git's own view of the vault, under `/vault.git`:
//! - the Git LFS File Locking API (`info/lfs/locks…`), so `git lfs lock`,
//!   `locks`, `unlock` work against Latch. A Git LFS lock *is* a Latch
//!   check-out: creating one calls [`Files::checkout`](crate::files::Files::checkout),
//!   releasing one calls `cancel` (or `override_lock` when an admin forces it),
//!   so the same rules apply and the same events reach every browser. A lock's
//!   id is its file's id;
//! - a read-only clone over Git's smart HTTP protocol v2 (in
//!   [`git`](crate::http::git): `info/refs` asked with `Git-Protocol:
//!   version=2`, and `git-upload-pack`), and for older clients the "dumb"
//!   protocol: generated `info/refs` and `objects/info/packs`, `HEAD`,
//!   loose objects and packs. Pushing is refused (403): content changes
//!   only by check-in.
//!
//! Every request is authenticated like the JSON API (HTTP Basic with a
//! password or an API token, a bearer token, or a session); a 401 carries
//! `WWW-Authenticate: Basic` so Git asks its credential helper. Only files
//! matching the fixed shapes of object, pack and `HEAD` names are served, so
//! no request can reach outside the repository's object store.

use std::path::Path;

use poem::http::{Method, StatusCode, header};
use poem::web::{Data, Path as PathParam};
use poem::{Body, Response, Route, handler};
use serde::{Deserialize, Serialize};

use crate::domain::{LockComment, RepoPath};
use crate::error::{AppError, AppResult};
use crate::files::{Actor, Files};
use crate::http::allow::{get, post};
use crate::http::error::{Surface, refusal, said};
use crate::http::guards::Guard;
use crate::http::views::iso_time;
use crate::store::FileRecord;

/// Content type of every LFS request and response.
pub const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// The comment a check-out taken by `git lfs lock` carries in the web UI.
pub const LFS_LOCK_COMMENT: &str = "locked with git lfs";
/// Locks per page when the client names no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Routes to nest at `/vault.git`.
pub fn routes() -> Route {
    Route::new()
        .at("/info/lfs/locks", get(list).post(create))
        .at("/info/lfs/locks/verify", post(verify))
        .at("/info/lfs/locks/:id/unlock", post(unlock))
        .at("/git-upload-pack", post(crate::http::git::upload_pack))
        .at("/", repository)
        .at("/*path", repository)
}

// ---------------------------------------------------------------- LFS locks

/// A lock as the LFS API shows it.
#[derive(Debug, Serialize)]
struct LockJson {
    id: String,
    path: RepoPath,
    locked_at: String,
    owner: Owner,
}

#[derive(Debug, Serialize)]
struct Owner {
    name: String,
}

fn lock_of(rec: &FileRecord) -> Option<LockJson> {
    rec.lock.as_ref().map(|lock| LockJson {
        id: rec.id.to_string(),
        path: rec.path.clone(),
        locked_at: iso_time(lock.locked_at),
        owner: Owner {
            name: lock.owner.clone(),
        },
    })
}

#[derive(Deserialize)]
struct CreateRequest {
    path: String,
}

#[derive(Deserialize, Default)]
struct VerifyRequest {
    cursor: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize, Default)]
struct UnlockRequest {
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    path: Option<String>,
    id: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

fn lfs_json(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type(LFS_JSON)
        .body(body.to_string())
}

/// An error in the LFS API's shape: `{"message": …}`, 401 with the
/// challenge Git needs to ask for credentials.
fn lfs_error(err: &AppError) -> Response {
    said(Surface::Lfs, err)
}

async fn actor(guard: Guard<'_>) -> AppResult<Actor> {
    Ok(guard.caller().await?.actor())
}

/// Reads a JSON request body. Only JSON content types are taken: a browser
/// form cannot send one cross-site, so cached Basic credentials cannot be
/// ridden by another site (and `Origin`, when sent, must be ours).
async fn read_json<T: serde::de::DeserializeOwned + Default>(
    guard: Guard<'_>,
    body: Body,
) -> AppResult<T> {
    guard.same_origin()?;
    let req = guard.req;
    let content_type = crate::http::forms::request_media_type(req);
    let essence = content_type.as_str();
    if essence != LFS_JSON && essence != "application/json" {
        return Err(AppError::BadRequest(format!(
            "Send the request as {LFS_JSON} (got '{content_type}')."
        )));
    }
    let bytes = body
        .into_bytes_limit(crate::http::serve::MAX_BODY as usize)
        .await
        .map_err(|e| AppError::BadRequest(format!("The request body could not be read: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        AppError::BadRequest(format!("The request body is not the JSON expected: {e}"))
    })
}

/// `limit` as asked, bounded; 0 or none means the default.
fn page_size(limit: Option<usize>) -> usize {
    match limit {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => n.min(MAX_LIMIT),
    }
}

/// A cursor is the id of the first lock of the next page.
fn parse_cursor(cursor: Option<&str>) -> AppResult<u64> {
    match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        None => Ok(0),
        Some(c) => c.parse().map_err(|_| {
            AppError::Invalid(format!(
                "'{c}' is not a cursor this server gave out; start again without one."
            ))
        }),
    }
}

/// Every current lock, by id, from `cursor` on: at most `limit` of them,
/// and the cursor of what follows.
async fn locked_files(
    files: &Files,
    cursor: u64,
    limit: usize,
    keep: impl Fn(&FileRecord) -> bool + Send + 'static,
) -> AppResult<(Vec<FileRecord>, Option<String>)> {
    let (locked, next) = files.locked_from(cursor, limit, keep).await?;
    Ok((locked, next.map(|id| id.to_string())))
}

/// `GET /locks` lists.
#[handler]
async fn list(guard: Guard<'_>, Data(files): Data<&Files>) -> Response {
    list_locks(guard, files)
        .await
        .unwrap_or_else(|e| lfs_error(&e))
}

/// `POST /locks` creates.
#[handler]
async fn create(guard: Guard<'_>, Data(files): Data<&Files>, body: Body) -> Response {
    create_lock(guard, files, body)
        .await
        .unwrap_or_else(|e| lfs_error(&e))
}

async fn list_locks(guard: Guard<'_>, files: &Files) -> AppResult<Response> {
    actor(guard).await?;
    let query: ListQuery = guard.req.params().unwrap_or_default();
    let limit =
        match query
            .limit
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            None => None,
            Some(l) => Some(l.parse::<usize>().map_err(|_| {
                AppError::Invalid(format!("The limit '{l}' is not a whole number."))
            })?),
        };
    let cursor = parse_cursor(query.cursor.as_deref())?;
    // A path or id that cannot name a file matches no lock.
    let path = query
        .path
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(|p| RepoPath::parse(p).ok());
    let id = query
        .id
        .as_deref()
        .filter(|i| !i.trim().is_empty())
        .map(|i| i.trim().parse::<u64>().ok());
    let (locked, next) = locked_files(files, cursor, page_size(limit), move |f| {
        path.as_ref().is_none_or(|p| p.as_ref() == Some(&f.path))
            && id.is_none_or(|i| i == Some(f.id))
    })
    .await?;
    let found: Vec<LockJson> = locked.iter().filter_map(lock_of).collect();
    let mut body = serde_json::json!({ "locks": found });
    if let Some(next) = next {
        body["next_cursor"] = next.into();
    }
    Ok(lfs_json(StatusCode::OK, body))
}

async fn create_lock(guard: Guard<'_>, files: &Files, body: Body) -> AppResult<Response> {
    let actor = actor(guard).await?;
    let request: Option<CreateRequest> = read_json(guard, body).await?;
    let raw = request.map(|r| r.path).unwrap_or_default();
    let path = RepoPath::parse(&raw)?;
    let id = files.id_at(&path).await?;
    let comment = LockComment::parse(LFS_LOCK_COMMENT)?;
    match files.checkout(&actor, id, comment).await {
        Ok(rec) => Ok(lfs_json(
            StatusCode::CREATED,
            serde_json::json!({ "lock": lock_of(&rec) }),
        )),
        Err(AppError::Conflict(message)) => {
            let existing = files.get(id).await.ok().and_then(|f| lock_of(&f));
            let mut body = serde_json::json!({ "message": message });
            if let Some(lock) = existing {
                body["lock"] = serde_json::to_value(lock)?;
            }
            Ok(lfs_json(StatusCode::CONFLICT, body))
        }
        Err(e) => Err(e),
    }
}

/// `POST /locks/verify`: current locks split into ours and theirs.
#[handler]
async fn verify(guard: Guard<'_>, Data(files): Data<&Files>, body: Body) -> Response {
    verify_locks(guard, files, body)
        .await
        .unwrap_or_else(|e| lfs_error(&e))
}

async fn verify_locks(guard: Guard<'_>, files: &Files, body: Body) -> AppResult<Response> {
    let actor = actor(guard).await?;
    let request: VerifyRequest = read_json(guard, body).await?;
    let cursor = parse_cursor(request.cursor.as_deref())?;
    let (locked, next) = locked_files(files, cursor, page_size(request.limit), |_| true).await?;
    let (ours, theirs): (Vec<&FileRecord>, Vec<&FileRecord>) = locked
        .iter()
        .partition(|f| f.locked_by() == Some(actor.username.as_str()));
    let ours: Vec<LockJson> = ours.into_iter().filter_map(lock_of).collect();
    let theirs: Vec<LockJson> = theirs.into_iter().filter_map(lock_of).collect();
    let mut body = serde_json::json!({ "ours": ours, "theirs": theirs });
    if let Some(next) = next {
        body["next_cursor"] = next.into();
    }
    Ok(lfs_json(StatusCode::OK, body))
}

/// `POST /locks/:id/unlock`: the holder cancels their check-out; with
/// `force`, an admin overrides someone else's.
#[handler]
async fn unlock(
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    PathParam(id): PathParam<String>,
    body: Body,
) -> Response {
    unlock_lock(guard, files, &id, body)
        .await
        .unwrap_or_else(|e| lfs_error(&e))
}

async fn unlock_lock(
    guard: Guard<'_>,
    files: &Files,
    raw_id: &str,
    body: Body,
) -> AppResult<Response> {
    let actor = actor(guard).await?;
    let request: UnlockRequest = read_json(guard, body).await?;
    let no_lock = || AppError::NotFound(format!("There is no lock with id {raw_id}."));
    let id: u64 = raw_id.parse().map_err(|_| no_lock())?;
    let rec = files.get(id).await.map_err(|_| no_lock())?;
    let Some(lock) = lock_of(&rec) else {
        return Err(AppError::NotFound(format!(
            "There is no lock with id {id}: {} is not checked out.",
            rec.path
        )));
    };
    let lock = if lock.owner.name == actor.username {
        // The lock was read as ours; if it changed hands since, say so (409).
        files.cancel_read_as_mine(&actor, id).await?;
        lock
    } else if !request.force {
        return Err(AppError::Forbidden(format!(
            "{} is locked by {}; only they can unlock it (an admin can break the lock with git lfs unlock --force).",
            rec.path, lock.owner.name
        )));
    } else if !actor.is_admin() {
        return Err(AppError::Forbidden(format!(
            "{} is locked by {}; only an admin can break someone else's lock.",
            rec.path, lock.owner.name
        )));
    } else {
        // Compare-and-swap on the holder read above: if the file changed
        // hands since, this is a 409 naming the new holder, never a break
        // of their lock in the old holder's name. The reply shows the lock
        // the override broke, which is what the `overridden` event records.
        let (rec, broken) = files
            .override_lock_held_by(&actor, id, &lock.owner.name)
            .await?;
        LockJson {
            id: rec.id.to_string(),
            path: rec.path,
            locked_at: iso_time(broken.locked_at),
            owner: Owner { name: broken.owner },
        }
    };
    Ok(lfs_json(
        StatusCode::OK,
        serde_json::json!({ "lock": lock }),
    ))
}

// ---------------------------------------------------- dumb HTTP, read-only

/// What a path under `/vault.git` names, if it is something Git may read.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    InfoRefs,
    Packs,
    /// A file inside the repository, by its relative path, and its type.
    File(String, &'static str),
}

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The fixed set of names the dumb protocol reads. Names are matched
/// against exact shapes (hex object ids), so nothing else in the
/// repository — config, hooks, refs — is served, and `..` never matches.
fn classify(path: &str) -> Option<Served> {
    const LOOSE: &str = "application/x-git-loose-object";
    match path {
        "info/refs" => return Some(Served::InfoRefs),
        "objects/info/packs" => return Some(Served::Packs),
        "HEAD" => return Some(Served::File("HEAD".into(), "text/plain; charset=utf-8")),
        _ => {}
    }
    let rest = path.strip_prefix("objects/")?;
    if let Some(name) = rest.strip_prefix("pack/pack-") {
        let (hash, ext) = name.split_once('.')?;
        let kind = match ext {
            "pack" => "application/x-git-packed-objects",
            "idx" => "application/x-git-packed-objects-toc",
            _ => return None,
        };
        return is_hex(hash, &[40, 64]).then(|| Served::File(path.into(), kind));
    }
    let (dir, file) = rest.split_once('/')?;
    (is_hex(dir, &[2]) && is_hex(file, &[38, 62])).then(|| Served::File(path.into(), LOOSE))
}

/// Everything under `/vault.git` but the lock API: reads for `git clone`
/// and `git fetch`, and a clear refusal for anything that would write.
#[handler]
async fn repository(
    guard: Guard<'_>,
    Data(files): Data<&Files>,
    path: Option<PathParam<String>>,
) -> Response {
    let req = guard.req;
    let path = path.map(|p| p.0).unwrap_or_default();
    let path = path.trim_start_matches('/');
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    let service = req
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|q| q.into_iter().find(|(k, _)| k == "service").map(|(_, v)| v));
    if !reads || service.as_deref() == Some("git-receive-pack") {
        return refuse_write(guard, path);
    }
    let err = match actor(guard).await {
        // A client speaking protocol v2 gets the smart protocol; others
        // (v0, v1) read the repository file by file as before.
        Ok(_)
            if path == "info/refs"
                && service.as_deref() == Some("git-upload-pack")
                && crate::http::git::wants_v2(req) =>
        {
            return crate::http::git::advertisement();
        }
        Ok(_) => match serve(files, path).await {
            Ok(resp) => return resp,
            Err(e) => e,
        },
        Err(e) => e,
    };
    said(Surface::Git, &err)
}

/// 403 for pushes and any other write. Git prints a `text/plain` body
/// line by line as `remote: …`; the LFS endpoints get their JSON shape.
fn refuse_write(guard: Guard<'_>, path: &str) -> Response {
    let req = guard.req;
    let scheme = if guard.is_https() { "https" } else { "http" };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("this server");
    let message = format!(
        "This vault is read-only over Git: changes go through check-in at {scheme}://{host}/ (check the file out, then check in the new version), not git push."
    );
    if path.starts_with("info/lfs") {
        return lfs_error(&AppError::Forbidden(message));
    }
    refusal(Surface::Git, StatusCode::FORBIDDEN, &message)
}

async fn serve(files: &Files, path: &str) -> AppResult<Response> {
    let not_found = || AppError::NotFound(format!("{path} is not in this repository."));
    let Some(what) = classify(path) else {
        return Err(not_found());
    };
    let vault = files.vault().clone();
    let repo = vault.path().to_path_buf();
    let no_cache = "no-cache, max-age=0, must-revalidate";
    let body = match what {
        Served::InfoRefs => tokio::task::spawn_blocking(move || vault.info_refs()).await??,
        Served::Packs => {
            let is_pack = |name: &str| classify(&format!("objects/pack/{name}")).is_some();
            tokio::task::spawn_blocking(move || vault.info_packs(is_pack)).await??
        }
        Served::File(relative, kind) => {
            let full = repo.join(&relative);
            let file = open_regular(&full).await?.ok_or_else(not_found)?;
            let size = file.metadata().await?.len();
            let cache = if relative == "HEAD" {
                no_cache
            } else {
                // Objects and packs never change under their names.
                "private, max-age=31536000, immutable"
            };
            return Ok(Response::builder()
                .content_type(kind)
                .header(header::CONTENT_LENGTH, size)
                .header(header::CACHE_CONTROL, cache)
                .body(Body::from_async_read(file)));
        }
    };
    Ok(Response::builder()
        .content_type("text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, no_cache)
        .body(body))
}

/// Opens `path` only if it is a regular file (not a link, not a folder).
async fn open_regular(path: &Path) -> AppResult<Option<tokio::fs::File>> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.is_file() => Ok(Some(tokio::fs::File::open(path).await?)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dumb_protocol_names_are_served() {
        let oid = "0123456789abcdef0123456789abcdef01234567";
        let cases: &[(&str, bool, &str)] = &[
            ("info/refs", true, "generated ref list"),
            ("objects/info/packs", true, "generated pack list"),
            ("HEAD", true, "default branch"),
            (
                "objects/01/23456789abcdef0123456789abcdef01234567",
                true,
                "loose object",
            ),
            (&format!("objects/pack/pack-{oid}.pack"), true, "pack"),
            (&format!("objects/pack/pack-{oid}.idx"), true, "pack index"),
            ("config", false, "repository config"),
            ("hooks/pre-receive.sample", false, "hooks"),
            ("refs/heads/main", false, "refs come from info/refs"),
            ("objects/../config", false, "escape by .."),
            (
                "objects/01/../../config",
                false,
                "escape by .. in a loose name",
            ),
            (
                "objects/0g/23456789abcdef0123456789abcdef01234567",
                false,
                "not hex",
            ),
            (
                "objects/01/23456789ABCDEF0123456789abcdef01234567",
                false,
                "upper case",
            ),
            ("objects/01/2345", false, "short"),
            (&format!("objects/pack/pack-{oid}.keep"), false, "keep file"),
            (
                &format!("objects/pack/pack-{oid}.pack/x"),
                false,
                "below a pack",
            ),
            (
                "objects/info/alternates",
                false,
                "alternates point elsewhere",
            ),
            (
                "objects/info/http-alternates",
                false,
                "alternates point elsewhere",
            ),
            ("", false, "the folder"),
        ];
        for (path, ok, why) in cases {
            assert_eq!(classify(path).is_some(), *ok, "{path}: {why}");
        }
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None), DEFAULT_LIMIT);
        assert_eq!(page_size(Some(0)), DEFAULT_LIMIT);
        assert_eq!(page_size(Some(3)), 3);
        assert_eq!(page_size(Some(1_000_000)), MAX_LIMIT);
        assert_eq!(parse_cursor(Some("12")).unwrap(), 12);
        assert_eq!(parse_cursor(None).unwrap(), 0);
        assert!(parse_cursor(Some("abc")).is_err());
    }
}
