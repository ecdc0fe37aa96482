//! `POST /api/admin/backup`: a consistent copy of the data directory into a
//! directory on the server, while it keeps serving ([`crate::backup`]).

use std::path::PathBuf;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::backup::{Report, write};
use crate::config::Config;
use crate::error::AppError;
use crate::files::require_admin;
use crate::http::api::wire::{BODY, DIR, E409, E422, Nullable, Rule, Text, WRITE};
use crate::http::api::{Answer, Caller};
use crate::store::Store;

/// Joined to the `/api` service.
pub struct BackupApi;

const MAX_DIR_BYTES: usize = 1024;

#[derive(Object)]
struct BackupRequest {
    /// An absolute path on the server's machine (inside the container, when
    /// run in Docker); a new or empty directory; at most 1024 bytes, so
    /// the files inside it stay within the system's path limit.
    dir: Text<Rule<DIR, 1, { MAX_DIR_BYTES }>>,
}

#[derive(Object)]
struct BackupJson {
    dir: String,
    files: u64,
    users: u64,
    last_seq: u64,
    /// The commit `main` pointed at; `null` for an empty vault.
    head: Nullable<String>,
    objects: u64,
    bytes: u64,
    seconds: f64,
}

impl From<Report> for BackupJson {
    fn from(r: Report) -> Self {
        BackupJson {
            dir: r.dir.display().to_string(),
            files: r.files,
            users: r.users,
            last_seq: r.last_seq,
            head: Nullable(r.head),
            objects: r.objects,
            bytes: r.bytes,
            seconds: r.seconds,
        }
    }
}

#[OpenApi]
impl BackupApi {
    /// Admin: write a consistent copy of the data directory (database and
    /// Git vault) into `dir` on the server, while it keeps serving. Start
    /// Latch with `--data` pointing at that directory to restore it.
    #[oai(path = "/admin/backup", method = "post", operation_id = "backup")]
    async fn backup(
        &self,
        caller: Caller,
        Data(store): Data<&Store>,
        Data(config): Data<&Arc<Config>>,
        body: Json<BackupRequest>,
    ) -> Answer<Json<BackupJson>, { WRITE | BODY | E409 | E422 }> {
        require_admin(&caller.0.actor(), "make backups")?;
        let dir = PathBuf::from(body.0.dir.as_str().trim());
        if !dir.is_absolute() {
            return Err(AppError::Invalid(
                "The backup directory must be an absolute path on the server.".into(),
            )
            .into());
        }
        // Longer, and the copy fails deep inside (a 500) on PATH_MAX.
        if dir.as_os_str().len() > MAX_DIR_BYTES {
            return Err(AppError::Invalid(format!(
                "The backup directory may have at most {MAX_DIR_BYTES} bytes."
            ))
            .into());
        }
        let (data_dir, vault) = (config.data_dir.clone(), config.vault_path());
        let report = store
            .blocking(move |store| write(store, &data_dir, &vault, &dir))
            .await?;
        Ok(Json(BackupJson::from(report)))
    }
}
