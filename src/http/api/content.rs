//! `GET /api/files/{id}/diff` (two versions as `text/x-diff`),
//! `GET /api/files/{id}/preview` (what the preview page shows, as JSON) and
//! `GET /api/folders/zip?path=` (a folder's current versions as one `.zip`).
//!
//! A folder's path has slashes, which an OpenAPI path parameter cannot
//! carry: the document names the query form, and [`zip_by_path`] serves
//! the form `GET /api/folders/{path}/zip` onto the same code.

use poem::web::Data;
use poem::{Body, Request, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use crate::domain::Folder;
use crate::error::{AppError, AppResult};
use crate::files::{Files, Shown};
use crate::http::api::wire::{Chars, E400, E404, E422, Id, LINE, Nullable, READ, Rule, Text};
use crate::http::api::{Answer, Caller};
use crate::http::downloads::zip_response;
use crate::http::error::{Surface, said};
use crate::http::guards::Guard;

/// Joined to the `/api` service.
pub struct ContentApi;

#[derive(ApiResponse)]
enum DiffAnswer {
    /// The unified diff (`---`/`+++` name path@revision); empty when the
    /// contents are equal. `X-Diff-Cut-Short: true` when the comparison
    /// stopped looking for the smallest diff (it is still correct).
    #[oai(status = 200, content_type = "text/x-diff; charset=utf-8")]
    Ok(
        PlainText<String>,
        #[oai(header = "X-Diff-Cut-Short")] String,
    ),
}

#[derive(ApiResponse)]
enum ZipAnswer {
    /// A `.zip` (stored, ZIP64) of the current version of every file under
    /// the folder, named by their paths inside it; streamed as it is made.
    #[oai(status = 200, content_type = "application/zip")]
    Ok(
        Binary<Body>,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "X-Content-Type-Options")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(Enum, Clone, Copy)]
#[oai(rename = "PreviewKind", rename_all = "lowercase")]
enum PreviewKind {
    Text,
    Image,
    Other,
}

/// What a preview shows of a version.
#[derive(Object)]
#[oai(rename = "Preview")]
struct PreviewJson {
    path: String,
    revision: String,
    size: u64,
    kind: PreviewKind,
    /// For `text`: the first 1 MiB at most; otherwise `null`.
    text: Nullable<String>,
    /// For `text`: whether the version is longer than `text`.
    truncated: bool,
    /// For `image`: its type by magic bytes (`image/png`, …); otherwise `null`.
    mime: Nullable<String>,
    /// For `other`: a type guessed from the name, for people; otherwise `null`.
    description: Nullable<String>,
}

#[OpenApi]
impl ContentApi {
    /// Compares two versions of a text file (commit ids from its history)
    /// as a unified diff. 422 when a side is over 4 MiB, over 150,000
    /// lines, or not text.
    #[oai(path = "/files/:id/diff", method = "get", operation_id = "fileDiff")]
    async fn diff(
        &self,
        Data(files): Data<&Files>,
        _caller: Caller,
        id: Path<Id>,
        from: Query<Text<Chars<1, 64>>>,
        to: Query<Text<Chars<1, 64>>>,
    ) -> Answer<DiffAnswer, { READ | E400 | E404 | E422 }> {
        let c = files
            .compare(id.0.0, from.0.as_str(), to.0.as_str())
            .await?;
        Ok(DiffAnswer::Ok(
            PlainText(c.unified),
            c.cut_short.to_string(),
        ))
    }

    /// What the preview page shows of a version (the current one, or the
    /// one written by commit `rev`): text (the first 1 MiB), a raster
    /// image's type, or a type guessed from the name.
    #[oai(path = "/files/:id/preview", method = "get", operation_id = "preview")]
    async fn preview(
        &self,
        Data(files): Data<&Files>,
        _caller: Caller,
        id: Path<Id>,
        rev: Query<Option<Text<Chars<0, 64>>>>,
    ) -> Answer<Json<PreviewJson>, { READ | E400 | E404 }> {
        let p = files
            .preview(id.0.0, rev.0.as_ref().map(Text::as_str))
            .await?;
        let (kind, text, truncated, mime, description) = match p.shown {
            Shown::Text { text, truncated } => {
                (PreviewKind::Text, Some(text), truncated, None, None)
            }
            Shown::Image(r) => (
                PreviewKind::Image,
                None,
                false,
                Some(r.mime().to_string()),
                None,
            ),
            Shown::Other { kind } => (PreviewKind::Other, None, false, None, Some(kind)),
        };
        Ok(Json(PreviewJson {
            path: p.path.to_string(),
            revision: p.revision,
            size: p.size,
            kind,
            text: Nullable(text),
            truncated,
            mime: Nullable(mime),
            description: Nullable(description),
        }))
    }

    /// The current version of every file under folder `path` (`parts/fixtures`;
    /// `/` for the whole vault) as one `.zip`, streamed. Also served as
    /// `GET /api/folders/{path}/zip`.
    #[oai(path = "/folders/zip", method = "get", operation_id = "folderZip")]
    async fn folder_zip(
        &self,
        Data(files): Data<&Files>,
        _caller: Caller,
        path: Query<Text<Rule<LINE, 1, 256>>>,
    ) -> Answer<ZipAnswer, { READ | E400 | E404 | E422 }> {
        let resp = zip_of(files, path.0.as_str()).await?;
        let disposition = resp
            .headers()
            .get(poem::http::header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(ZipAnswer::Ok(
            Binary(resp.into_body()),
            disposition,
            "nosniff".into(),
            "private, no-cache".into(),
        ))
    }
}

async fn zip_of(files: &Files, raw: &str) -> AppResult<Response> {
    let folder = Folder::parse(raw)?;
    let zip = files.folder_zip(&folder).await?;
    Ok(zip_response(zip))
}

/// `GET /api/folders/{path}/zip`, the folder's path with its slashes as
/// they are (`/api/folders/parts/fixtures/zip`): the same answer as
/// `/api/folders/zip?path=parts/fixtures`, with the same credentials.
#[poem::handler]
pub async fn zip_by_path(req: &Request, Data(files): Data<&Files>) -> Response {
    let result = async {
        Guard::of(req)?.caller().await?;
        let raw = req.raw_path_param("path").unwrap_or_default();
        let raw = raw.strip_suffix("/zip").unwrap_or(raw);
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| AppError::Invalid("The folder's name is not UTF-8.".into()))?;
        zip_of(files, &decoded).await
    }
    .await;
    result.unwrap_or_else(|e| said(Surface::Json, &e))
}
