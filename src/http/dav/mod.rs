//! `/dav`: the vault as a network drive. The WebDAV protocol (XML,
//! `PROPFIND`, `LOCK`, `COPY`/`MOVE`, `If` headers) is `dav-server`'s;
//! behind it, per request, Latch's own file system ([`fs`]) and lock system
//! ([`locks`]) act for the caller through the same operations as the
//! browser, so the same rules, events and live updates follow.
//!
//! Authentication is HTTP Basic only (a password or an API token): a
//! session cookie never counts here, or another site could ride it with a
//! cross-site request. Bodies stream both ways; a `PUT` is spooled with the
//! upload limit like any upload.

mod file;
mod folders;
mod fs;
mod locks;

use std::sync::{Arc, Mutex};

use dav_server::DavHandler;
use poem::http::{StatusCode, header};
use poem::web::headers::{Authorization, HeaderMapExt, authorization::Basic};
use poem::{Body, Endpoint, Request, Response};

use crate::error::AppError;
use crate::files::{Actor, Files};
use crate::http::error::{Surface, said};
use crate::http::guards::Guard;
use crate::store::FileRecord;

/// Who asks, with what program, and the refusal to say if one is made.
pub struct Caller {
    pub actor: Actor,
    /// The client's name, for "opened in …" and "Saved from …".
    pub client: String,
    files: Files,
    refusal: Mutex<Option<(StatusCode, String)>>,
}

impl Caller {
    /// Remembers why an operation was refused, to say it in the answer.
    pub fn refused(&self, err: AppError) {
        err.log();
        let status = StatusCode::from_u16(err.code()).unwrap_or(StatusCode::FORBIDDEN);
        self.say(status, err.public_message());
    }

    /// A refusal because someone holds the file: 423, which WebDAV clients
    /// show as "locked / read-only" (a 409 reads to them as a missing folder).
    pub fn locked(&self, sentence: String) {
        self.say(StatusCode::LOCKED, sentence);
    }

    /// A refusal with a status of WebDAV's own (412 for a copy that may
    /// not overwrite).
    pub fn say_status(&self, status: StatusCode, sentence: String) {
        self.say(status, sentence);
    }

    fn say(&self, status: StatusCode, sentence: String) {
        if let Ok(mut slot) = self.refusal.lock() {
            *slot = Some((status, sentence));
        }
    }

    /// A file saved where the caller held a WebDAV lock on a name with no
    /// file yet: the lock becomes a check-out of the new file.
    pub async fn created(&self, rec: &FileRecord) {
        let Ok(tokens) = self.files.dav_locks().await else {
            return;
        };
        for (token, mut lock) in tokens {
            let mine = lock.username == self.actor.username;
            let exact = lock.file_id == 0 && lock.path == rec.path;
            let in_folder = lock.file_id == 0
                && (lock.path.as_str().is_empty()
                    || rec.path.as_str().starts_with(&format!("{}/", lock.path)));
            if !mine || !(exact || in_folder) {
                continue;
            }
            let comment = crate::domain::LockComment::parse(&format!("opened in {}", self.client))
                .ok()
                .flatten();
            if self
                .files
                .checkout(&self.actor, rec.id, comment)
                .await
                .is_ok()
            {
                if exact {
                    lock.file_id = rec.id;
                } else {
                    lock.files.push(rec.id);
                }
                let _ = self.files.put_dav_lock(token, lock).await;
            }
            return;
        }
    }
}

/// The endpoint nested (unstripped) at `/dav`.
pub struct Dav;

impl Endpoint for Dav {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(match serve(req).await {
            Ok(resp) => resp,
            Err(err) => said(Surface::Dav, &err),
        })
    }
}

/// The client's program, as a short name: "Microsoft Office Word", "davfs2".
fn client_name(req: &Request) -> String {
    let raw = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name: String = raw
        .split_whitespace()
        .next()
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || " ._-".contains(*c))
        .take(60)
        .collect();
    if name.is_empty() {
        "a WebDAV client".to_string()
    } else {
        name
    }
}

async fn serve(req: Request) -> Result<Response, AppError> {
    let guard = Guard::of(&req)?;
    let files = req
        .data::<Files>()
        .cloned()
        .ok_or_else(|| AppError::Internal("the request carries no services".into()))?;
    let Some(basic) = req.headers().typed_get::<Authorization<Basic>>() else {
        return Err(AppError::Unauthenticated(
            "Sign in with your username and a password or API token (HTTP Basic); a browser session does not open the drive."
                .into(),
        ));
    };
    // A browser replays cached Basic credentials on a cross-site request.
    if crate::http::guards::is_unsafe_method(req.method()) {
        guard.same_origin()?;
    }
    let user = guard
        .accounts
        .basic(basic.username(), basic.password(), guard.client_ip())
        .await?;
    let caller = Arc::new(Caller {
        actor: crate::accounts::actor_of(&user),
        client: client_name(&req),
        files: files.clone(),
        refusal: Mutex::new(None),
    });
    let req = xml_bounded(req).await?;
    let fs = fs::LatchFs {
        files: files.clone(),
        caller: caller.clone(),
    };
    if let Some(copied) = copy_of_a_folder(&req, &fs).await {
        return Ok(copied.unwrap_or_else(|| refused(&caller, StatusCode::FORBIDDEN)));
    }
    let handler = DavHandler::builder()
        .strip_prefix("/dav")
        .filesystem(Box::new(fs))
        .locksystem(Box::new(locks::LatchLocks {
            files,
            caller: caller.clone(),
        }))
        .principal(user.username.clone())
        // Each read is one trip to a blocking thread (Git inflates there):
        // large enough that a 200 MiB download is ~800 of them.
        .read_buf_size(256 * 1024)
        .build_handler();
    let http_req: poem::http::Request<_> = req.into();
    let resp = handler.handle(http_req).await;
    let (parts, body) = resp.into_parts();
    if parts.status.is_client_error() || parts.status.is_server_error() {
        let mut resp = refused(&caller, parts.status);
        for (name, value) in parts.headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return Ok(resp);
    }
    let mut resp = Response::builder()
        .status(parts.status)
        .body(Body::from_bytes_stream(body));
    *resp.headers_mut() = parts.headers;
    Ok(resp)
}

/// dav-server reads a body of at most this many bytes (and refuses more).
const MAX_XML_BODY: usize = 64 * 1024;
/// How deep a WebDAV XML body may nest. Real ones (`propfind`, `lockinfo`,
/// `propertyupdate` with a property value) are under ten levels deep.
const MAX_XML_DEPTH: usize = 64;

/// Reads the XML body of a `PROPFIND`, `PROPPATCH` or `LOCK` and refuses
/// one nested deeper than [`MAX_XML_DEPTH`]: xmltree, which dav-server
/// parses it with, recurses once per level, and a 64 KiB body of `<a>`s
/// is ten thousand levels, enough to overflow a worker's stack, which
/// aborts the whole server. Other methods pass untouched (a `PUT` streams).
async fn xml_bounded(mut req: Request) -> Result<Request, AppError> {
    if !matches!(req.method().as_str(), "PROPFIND" | "PROPPATCH" | "LOCK") {
        return Ok(req);
    }
    let body = req
        .take_body()
        .into_bytes_limit(MAX_XML_BODY)
        .await
        .map_err(|e| match e {
            poem::error::ReadBodyError::PayloadTooLarge => AppError::TooLarge(format!(
                "A WebDAV request's XML may be at most {}.",
                crate::domain::human_size(MAX_XML_BODY as u64)
            )),
            _ => AppError::BadRequest("The request body could not be read in full.".into()),
        })?;
    if xml_depth_over(&body, MAX_XML_DEPTH) {
        return Err(AppError::BadRequest(format!(
            "The request's XML nests deeper than {MAX_XML_DEPTH} levels; WebDAV needs far fewer."
        )));
    }
    req.set_body(Body::from_bytes(body));
    Ok(req)
}

/// Whether `body` opens more than `max` elements inside one another,
/// counted by a streaming (non-recursive) reader. A malformed body stops
/// the count where it breaks, as it stops dav-server's parse there too.
fn xml_depth_over(body: &[u8], max: usize) -> bool {
    use xml::reader::{EventReader, XmlEvent};
    let mut depth = 0usize;
    for event in EventReader::new(body) {
        match event {
            Ok(XmlEvent::StartElement { .. }) => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            Ok(XmlEvent::EndElement { .. }) => depth = depth.saturating_sub(1),
            Ok(XmlEvent::EndDocument) | Err(_) => return false,
            Ok(_) => {}
        }
    }
    false
}

/// dav-server answers an error with a bare status; this says why, with the
/// status of the refusal the caller's operation made (a 423 stays 423).
fn refused(caller: &Caller, status: StatusCode) -> Response {
    let refusal = caller.refusal.lock().ok().and_then(|mut s| s.take());
    let (said, sentence) = refusal.unwrap_or_else(|| {
        let reason = status.canonical_reason().unwrap_or("Refused").to_string();
        (status, reason)
    });
    let status = if status == StatusCode::LOCKED {
        status
    } else {
        said
    };
    Response::builder()
        .status(status)
        .content_type("text/plain; charset=utf-8")
        .body(format!("{sentence}\n"))
}

/// `COPY` of a folder with files in it: one upload of all of them (one
/// commit, all or none), which dav-server would make file by file.
/// `None` for any other request; `Some(None)` when refused (the refusal
/// is the caller's).
async fn copy_of_a_folder(req: &Request, fs: &fs::LatchFs) -> Option<Option<Response>> {
    if req.method().as_str() != "COPY"
        || req.headers().get("depth").and_then(|d| d.to_str().ok()) == Some("0")
    {
        return None;
    }
    let from = vault_path(req.uri().path())?;
    if !fs.is_folder_of_files(&from).await {
        return None;
    }
    let Some(to) = req
        .headers()
        .get("destination")
        .and_then(|d| d.to_str().ok())
        .and_then(|d| {
            let path = url::Url::parse(d).map(|u| u.path().to_string());
            vault_path(&path.unwrap_or_else(|_| d.to_string()))
        })
    else {
        return Some(Some(
            Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .content_type("text/plain; charset=utf-8")
                .body("A COPY needs a Destination under /dav/.\n"),
        ));
    };
    let overwrite = req
        .headers()
        .get("overwrite")
        .and_then(|o| o.to_str().ok())
        .is_none_or(|o| !o.eq_ignore_ascii_case("F"));
    Some(match fs.copy_folder(&from, &to, overwrite).await {
        Ok(created) => Some(
            Response::builder()
                .status(if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::NO_CONTENT
                })
                .finish(),
        ),
        Err(_) => None,
    })
}

/// The vault path of a `/dav/…` address, %-decoded, without slashes at
/// either end; `None` outside `/dav` or when not UTF-8.
fn vault_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/dav")?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()?;
    Some(decoded.trim_matches('/').to_string())
}
