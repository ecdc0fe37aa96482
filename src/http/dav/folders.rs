//! A folder copied on the drive: one upload of every file in it (one
//! commit, all or none, as a bulk upload is), where dav-server would copy
//! file by file.

use dav_server::fs::FsError;
use poem::http::StatusCode;

use super::file::Source;
use super::fs::{LatchFs, Node, within};
use crate::domain::Revision;
use crate::error::AppError;
use crate::files::SetPart;
use crate::store::FileRecord;

impl LatchFs {
    /// Whether `rel` is a folder with files in it (its copy is one upload).
    pub(super) async fn is_folder_of_files(&self, rel: &str) -> bool {
        let under = format!("{rel}/");
        matches!(self.node(rel).await, Ok(Node::Folder { .. }))
            && self.files.list().await.is_ok_and(|l| {
                l.iter()
                    .any(|f| rel.is_empty() || f.path.as_str().starts_with(&under))
            })
    }

    /// Copies folder `from` to `to` as one upload of every file in it (one
    /// commit, all or none), with the empty folders inside kept. Returns
    /// whether `to` is new (201) rather than replaced (204).
    pub(super) async fn copy_folder(
        &self,
        from: &str,
        to: &str,
        overwrite: bool,
    ) -> Result<bool, FsError> {
        let me = &self.caller.actor;
        let dest = self.new_path(to)?;
        if within(to, from) {
            return Err(self.refuse(AppError::Invalid(format!(
                "{from} cannot be copied into itself."
            ))));
        }
        self.require_parent(&dest).await?;
        let exists = self.node(to).await.is_ok();
        if exists && !overwrite {
            self.caller.say_status(
                StatusCode::PRECONDITION_FAILED,
                format!("{to} exists, and the request says not to overwrite it."),
            );
            return Err(FsError::Exists);
        }
        let list = self.files.list().await.map_err(|e| self.refuse(e))?;
        let under = format!("{from}/");
        if exists {
            // Replaced: each file there is deleted as the delete operation
            // (admins, nobody holding it); a refusal keeps everything.
            let there = format!("{to}/");
            let old: Vec<&FileRecord> = list
                .iter()
                .filter(|f| f.path.as_str() == to || f.path.as_str().starts_with(&there))
                .collect();
            if let Some(f) = old.iter().find(|f| f.lock.is_some() || !me.is_admin()) {
                return Err(self.refuse(AppError::Conflict(format!(
                    "{to} exists and cannot be replaced: deleting {} needs an admin and nobody holding it; nothing was copied.",
                    f.path
                ))));
            }
            for f in old {
                self.files
                    .delete(me, f.id)
                    .await
                    .map_err(|e| self.refuse(e))?;
            }
            let _ = self.files.drop_folder(me, to.to_string()).await;
        }
        let mut parts = Vec::new();
        for f in list.iter().filter(|f| f.path.as_str().starts_with(&under)) {
            let source = match self.files.draft_of(me, f) {
                Some((draft, _)) => Source::Draft(draft),
                None => Source::Blob(f.blob),
            };
            let spool = self
                .copy_to_spool(source)
                .await
                .map_err(|e| self.refuse(e))?;
            let rest = &f.path.as_str()[under.len()..];
            parts.push(SetPart {
                path: self.new_path(&format!("{to}/{rest}"))?,
                spool,
            });
        }
        let mut kept = self
            .files
            .kept_folders()
            .await
            .map_err(|e| self.refuse(e))?;
        kept.retain(|k| k.starts_with(&under));
        kept.sort();
        if !parts.is_empty() {
            let revision = Revision::parse("1.0").map_err(|e| self.refuse(e.into()))?;
            self.files
                .upload_set(me, parts, revision)
                .await
                .map_err(|e| self.refuse(e))?;
        }
        for folder in std::iter::once(to.to_string())
            .chain(kept.iter().map(|k| format!("{to}/{}", &k[under.len()..])))
        {
            if let Err(FsError::NotFound) = self.node(&folder).await {
                let path = self.new_path(&folder)?;
                let _ = self.files.keep_folder(me, path).await;
            }
        }
        Ok(!exists)
    }
}
