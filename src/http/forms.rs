//! Reading request bodies at the edge: url-encoded forms and multipart
//! uploads, with duplicate and size checks, shared by the HTML and JSON routes.

use std::collections::HashMap;

use poem::web::Multipart;
use tokio::io::AsyncReadExt;

use crate::domain::{Bump, CommitMessage, Description, RepoPath, Revision};
use crate::error::{AppError, AppResult};
use crate::files::{Actor, Files, MAX_SET, MAX_UPLOAD_FILES, NewFile, NewVersion, SetPart};
use crate::vault::Spool;

/// Text fields by name; a name given twice is refused, since which one
/// counts would be a guess.
#[derive(Debug, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> AppResult<Fields> {
        let mut map = HashMap::new();
        for (name, value) in pairs {
            if map.contains_key(&name) {
                return Err(AppError::BadRequest(format!(
                    "The field '{name}' was sent twice."
                )));
            }
            map.insert(name, value);
        }
        Ok(Fields(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The field, or an empty string when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

/// A multipart upload: its text fields and the spooled file part.
pub struct Upload {
    pub fields: Fields,
    pub file: Option<(String, Spool)>,
}

impl Upload {
    pub fn take_file(&mut self) -> AppResult<(String, Spool)> {
        self.file.take().ok_or_else(|| {
            AppError::Invalid("No file was attached; choose a file to upload.".into())
        })
    }

    /// The file uploaded, if one was.
    pub fn upload(&mut self) -> Option<Spool> {
        self.file.take().map(|(_, spool)| spool)
    }
}

/// A check-in's content: the file uploaded, or else the holder's draft
/// saved through the network drive; refused when there is neither.
pub async fn checkin_upload_or_draft(
    files: &Files,
    actor: &crate::files::Actor,
    id: u64,
    version: crate::files::NewVersion,
    form: &mut Upload,
) -> AppResult<crate::store::FileRecord> {
    files
        .checkin_upload_or_draft(actor, id, version, form.upload())
        .await?
        .ok_or_else(|| AppError::Invalid("No file was attached; choose a file to upload.".into()))
}

/// Largest text field of a multipart form.
pub const MAX_TEXT_FIELD: usize = 64 * 1024;
/// Most text fields in one multipart form.
pub const MAX_TEXT_FIELDS: usize = 32;
/// Most text, all fields together, in one multipart form.
pub const MAX_TEXT_TOTAL: usize = 256 * 1024;

/// Reads a multipart body: text fields into memory, the part named `file`
/// streamed to a spool file under the upload limit. Text is bounded while
/// it streams (each field, their number, their sum) and a repeated name is
/// refused when it arrives, so nothing unbounded is ever buffered; on any
/// refusal the spooled file is dropped, which deletes it.
pub async fn read_upload(files: &Files, multipart: Multipart) -> AppResult<Upload> {
    let (fields, mut parts) =
        read_parts(files, multipart, 1, |name| std::future::ready(Ok(name))).await?;
    Ok(Upload {
        fields,
        file: parts.pop(),
    })
}

/// Reads a multipart body of text fields and up to `max_files` parts named
/// `file` (a change set), each streamed to its own spool file. Before a
/// part's body is read, `check` turns its file name into what the caller
/// needs (or refuses it), so nobody streams a file only to hear no.
/// Bounded as [`read_upload`]; on any refusal every spooled part is removed.
pub async fn read_parts<T, F>(
    files: &Files,
    mut multipart: Multipart,
    max_files: usize,
    check: impl Fn(String) -> F,
) -> AppResult<(Fields, Vec<(T, Spool)>)>
where
    F: std::future::Future<Output = AppResult<T>>,
{
    let malformed = |e: poem::error::ParseMultipartError| {
        AppError::BadRequest(format!("The upload is malformed: {e}"))
    };
    let mut fields = HashMap::new();
    let mut text_total = 0usize;
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            // A file input left empty: a browser still sends its part, with
            // `filename=""` and no content (a form with a second, unused
            // picker — files or a folder — would otherwise be refused).
            if field.file_name() == Some("") {
                continue;
            }
            if parts.len() >= max_files {
                return Err(if max_files == 1 {
                    AppError::BadRequest("The field 'file' was sent twice.".into())
                } else {
                    AppError::Invalid(format!("At most {max_files} files can be sent at once."))
                });
            }
            let file_name = field.file_name().unwrap_or("").to_string();
            let checked = check(file_name).await?;
            let spool = files.spool(field.into_async_read()).await?;
            parts.push((checked, spool));
            continue;
        }
        if fields.contains_key(&name) {
            return Err(AppError::BadRequest(format!(
                "The field '{name}' was sent twice."
            )));
        }
        if fields.len() >= MAX_TEXT_FIELDS {
            return Err(AppError::TooLarge(format!(
                "The form has too many fields; at most {MAX_TEXT_FIELDS} are accepted."
            )));
        }
        let room = MAX_TEXT_FIELD.min(MAX_TEXT_TOTAL - text_total);
        let mut value = Vec::new();
        let mut limited = field.into_async_read().take(room as u64 + 1);
        limited
            .read_to_end(&mut value)
            .await
            .map_err(|e| AppError::BadRequest(format!("The upload was cut off: {e}")))?;
        if value.len() > room {
            return Err(AppError::TooLarge(if room < MAX_TEXT_FIELD {
                format!(
                    "The form's text fields are over {} KiB together.",
                    MAX_TEXT_TOTAL / 1024
                )
            } else {
                format!(
                    "The field '{name}' is too long; at most {} KiB.",
                    MAX_TEXT_FIELD / 1024
                )
            }));
        }
        text_total += value.len();
        let value = String::from_utf8(value).map_err(|_| {
            AppError::BadRequest(format!("The field '{name}' is not valid UTF-8 text."))
        })?;
        fields.insert(name, value);
    }
    Ok((Fields(fields), parts))
}

/// A change set's check-in: its text fields and, for each `file` part,
/// the file it names (see `Files::resolve_set_part`, checked before the
/// part's body streams) and its spooled content. At least one part.
pub async fn read_checkin_set(
    files: &Files,
    actor: &Actor,
    multipart: Multipart,
) -> AppResult<(Fields, Vec<(u64, Spool)>)> {
    let held = std::sync::Arc::new(files.held_by(actor).await?);
    let (fields, parts) = read_parts(files, multipart, MAX_SET, |name| {
        let (files, actor, held) = (files.clone(), actor.clone(), held.clone());
        async move { files.resolve_set_part(&actor, &name, &held).await }
    })
    .await?;
    if parts.is_empty() {
        return Err(AppError::Invalid(
            "No file was attached; send each new version (a part named file).".into(),
        ));
    }
    Ok((fields, parts))
}

/// A bulk upload: its text fields, each part placed under `folder` (its
/// name checked before its body streams), and the revision they start at.
pub async fn read_bulk(
    files: &Files,
    multipart: Multipart,
) -> AppResult<(Fields, Vec<SetPart>, Revision)> {
    let (fields, parts) = read_parts(files, multipart, MAX_UPLOAD_FILES, |name| {
        let checked = RepoPath::parse(name.trim().trim_start_matches('/'))
            .map(|_| name)
            .map_err(AppError::from);
        std::future::ready(checked)
    })
    .await?;
    let revision = revision_or_first(&fields)?;
    let folder = fields.text("folder");
    let parts = parts
        .into_iter()
        .map(|(name, spool)| {
            Ok(SetPart {
                path: bulk_path(folder, &name)?,
                spool,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok((fields, parts, revision))
}

/// The `revision` field, `1.0` when absent or empty.
fn revision_or_first(fields: &Fields) -> AppResult<Revision> {
    Ok(match fields.get("revision").map(str::trim) {
        Some(r) if !r.is_empty() => Revision::parse(r)?,
        _ => Revision::FIRST,
    })
}

/// The path a bulk upload's part goes to: its name (a browser sends a
/// folder's files with their path inside it) under `folder`.
pub fn bulk_path(folder: &str, name: &str) -> AppResult<RepoPath> {
    let folder = folder.trim().trim_matches('/');
    let name = name.trim().trim_start_matches('/');
    if name.is_empty() {
        return Err(AppError::Invalid(
            "A file in the upload has no name; every file needs one.".into(),
        ));
    }
    let joined = if folder.is_empty() {
        name.to_string()
    } else {
        format!("{folder}/{name}")
    };
    Ok(RepoPath::parse(&joined)?)
}

/// Parses an `application/x-www-form-urlencoded` body.
pub fn parse_urlencoded(body: &[u8]) -> AppResult<Fields> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| AppError::BadRequest("The form is malformed or not valid UTF-8.".into()))?;
    Fields::from_pairs(pairs)
}

/// Validates the fields of a new file; the path defaults to the uploaded file's name.
pub fn new_file_from(fields: &Fields, file_name: &str) -> AppResult<NewFile> {
    let raw_path = match fields.get("path").map(str::trim) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => file_name.to_string(),
    };
    let revision = revision_or_first(fields)?;
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
        keep: flag(fields.text("keep"), "keep")?,
    })
}

/// A yes/no field: a ticked box (`on`) or `true`/`1`; absent, empty,
/// `false` or `0` is no.
pub fn flag(raw: &str, name: &str) -> AppResult<bool> {
    match raw.trim() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "" | "off" | "false" | "0" | "no" => Ok(false),
        other => Err(AppError::Invalid(format!(
            "The field '{name}' is yes or no (true or false), not '{other}'."
        ))),
    }
}

/// An API token's name: one line of 1 to 64 characters.
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

/// A `Content-Type`'s media type, without parameters, in lower case
/// (`Application/JSON; charset=utf-8` → `application/json`).
/// The media type a request's `Content-Type` names (`""` without one).
pub fn request_media_type(req: &poem::Request) -> String {
    media_type(
        req.headers()
            .get(poem::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}
