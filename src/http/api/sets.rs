//! Working with several files at once, and renaming and describing one:
//! change sets (`POST /checkout`, `/cancel`, `/checkin`), a bulk upload
//! (`POST /files/bulk`), a move (`POST /files/{id}/move`) and a
//! description edit (`PATCH /files/{id}`).

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi};

use crate::domain::{LockComment, RepoPath};
use crate::files::Files;
use crate::http::api::json::{BumpShape, FileJson};
use crate::http::api::wire::{
    BODY, E404, E409, E422, Form, Id, LINE, MESSAGE, PATH, REVISION, Rule, TEXT, Text, WRITE,
};
use crate::http::api::{Answer, Caller, file_json};
use crate::http::forms::{self, new_version_from};
use crate::store::FileRecord;

/// Joined to the `/api` service.
pub struct SetsApi;

/// `POST /checkout`: the files to take, all or none.
#[derive(Object)]
struct CheckoutSetRequest {
    /// The files' ids (repeats count once), at most 200.
    ids: Vec<u64>,
    /// One note for all of them.
    #[oai(nullable)]
    comment: Option<Text<Rule<LINE, 0, { LockComment::MAX_CHARS }>>>,
}

/// `POST /cancel`: the check-outs to give back, all or none.
#[derive(Object)]
struct CancelSetRequest {
    ids: Vec<u64>,
}

/// The files a change set changed, as they are after it.
#[derive(Object)]
struct FilesJson {
    files: Vec<FileJson>,
}

/// `POST /checkin`: one `file` part per file, each named (`filename`) by
/// the file's path in Latch — or by its bare name when you hold only one
/// file of that name.
#[derive(Multipart)]
#[allow(dead_code)] // describes the body; forms::read_parts streams it
struct CheckinSetForm {
    /// Required; becomes the one Git commit's message.
    message: Text<Rule<MESSAGE, 1, 5000>>,
    /// `minor` when left out; applies to every file.
    bump: Option<Text<BumpShape>>,
    /// `true`: keep the files checked out after this version.
    keep: Option<bool>,
    file: Vec<Upload>,
}

/// `POST /files/bulk`: files added in one commit under `folder`, each part
/// named (`filename`) by its path inside that folder.
#[derive(Multipart)]
#[allow(dead_code)] // describes the body; forms::read_parts streams it
struct BulkUploadForm {
    /// Where the files go; the vault's top when left out.
    folder: Option<Text<Rule<PATH, 0, 255>>>,
    /// `MAJOR.MINOR` for every file; `1.0` when left out.
    revision: Option<Text<Rule<REVISION, 3, 13>>>,
    file: Vec<Upload>,
}

#[derive(ApiResponse)]
enum CreatedFiles {
    /// Added, in one commit.
    #[oai(status = 201)]
    Created(Json<FilesJson>),
}

#[derive(Object)]
struct MoveRequest {
    /// The new path, `/`-separated, at most 255 bytes in UTF-8.
    path: Text<Rule<PATH, 1, 255>>,
}

/// `PATCH /files/{id}` (declared with the file's other operations: one path, one document entry).
#[derive(Object)]
pub(super) struct EditFileRequest {
    /// The new description (empty removes it).
    pub(super) description: Text<Rule<TEXT, 0, 2000>>,
}

async fn files_json(
    files: &Files,
    caller: &Caller,
    recs: &[FileRecord],
) -> crate::error::AppResult<FilesJson> {
    let mut out = Vec::with_capacity(recs.len());
    for f in recs {
        out.push(file_json(files, caller, f).await?);
    }
    Ok(FilesJson { files: out })
}

// One line per operation attribute: tests/it/security.rs reads path and method from it.
#[rustfmt::skip::attributes(oai)]
#[OpenApi]
impl SetsApi {
    /// Check out several files with one comment: all or none. A 409 lists every file someone else holds (or that is reserved for someone else) in `conflicts`.
    #[oai(path = "/checkout", method = "post", operation_id = "checkOutSet")]
    async fn checkout_set(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        body: Json<CheckoutSetRequest>,
    ) -> Answer<Json<FilesJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let comment = body.comment.as_ref().map_or("", Text::as_str);
        let comment = LockComment::parse(comment)?;
        let recs = files
            .checkout_set(&caller.actor(), &body.ids, comment)
            .await?;
        Ok(Json(files_json(files, &caller, &recs).await?))
    }

    /// Give back several of your check-outs without new versions: all or none.
    #[oai(path = "/cancel", method = "post", operation_id = "cancelSet")]
    async fn cancel_set(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        body: Json<CancelSetRequest>,
    ) -> Answer<Json<FilesJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let recs = files.cancel_set(&caller.actor(), &body.ids).await?;
        Ok(Json(files_json(files, &caller, &recs).await?))
    }

    /// Check in new versions of several files you hold: one message, one bump, one Git commit; all or none.
    #[oai(path = "/checkin", method = "post", operation_id = "checkInSet")]
    async fn checkin_set(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        form: Form<CheckinSetForm>,
    ) -> Answer<Json<FilesJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let actor = caller.actor();
        let (fields, parts) = forms::read_checkin_set(files, &actor, form.0).await?;
        let version = new_version_from(&fields)?;
        let recs = files.checkin_set(&actor, parts, version).await?;
        Ok(Json(files_json(files, &caller, &recs).await?))
    }

    /// Upload several files (a folder's worth, at most 500) in one commit: all or none.
    #[oai(path = "/files/bulk", method = "post", operation_id = "uploadFiles")]
    async fn bulk_upload(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        form: Form<BulkUploadForm>,
    ) -> Answer<CreatedFiles, { WRITE | BODY | E409 | E422 }> {
        let (_, parts, revision) = forms::read_bulk(files, form.0).await?;
        let recs = files.upload_set(&caller.actor(), parts, revision).await?;
        Ok(CreatedFiles::Created(Json(
            files_json(files, &caller, &recs).await?,
        )))
    }

    /// Move or rename a file: by its holder, or by an admin while nobody holds it. One Git commit; the id, lock, line and history follow the file.
    #[oai(path = "/files/:id/move", method = "post", operation_id = "moveFile")]
    async fn move_file(
        &self,
        Data(files): Data<&Files>,
        caller: Caller,
        id: poem_openapi::param::Path<Id>,
        body: Json<MoveRequest>,
    ) -> Answer<Json<FileJson>, { WRITE | BODY | E404 | E409 | E422 }> {
        let to = RepoPath::parse(body.path.as_str())?;
        let f = files.move_file(&caller.actor(), id.0.0, to).await?;
        Ok(Json(file_json(files, &caller, &f).await?))
    }
}
