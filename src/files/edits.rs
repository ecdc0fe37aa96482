//! Changing what a file is called and how it is described, not its
//! content: a move (one Git commit, `Latch-Action: move`, so history and
//! reconciliation follow the file by id) and a description edit (a record
//! change only: the description is Latch's, not a version's).

use super::rules::{Needs, require_active};
use super::{Actor, Files, not_found, save_and_record};
use crate::domain::{Description, RepoPath};
use crate::error::{AppError, AppResult};
use crate::store::{EventKind, FILES, FileRecord, PATHS, get_file, now};
use crate::vault::{Action, Change, Trailers};

/// Who may rename or describe a file: its holder, or an admin — for a
/// move only while nobody holds it (an admin must not pull a file from
/// under someone's work; a description can be corrected any time).
fn may_edit(rec: &FileRecord, actor: &Actor, what: &str, admin_over_lock: bool) -> AppResult<()> {
    match rec.locked_by() {
        Some(holder) if holder == actor.username => Ok(()),
        Some(_) if admin_over_lock && actor.is_admin() => Ok(()),
        Some(holder) => Err(AppError::Conflict(format!(
            "{} is checked out by {holder}; only they can {what} until it is checked in.",
            rec.path
        ))),
        None if actor.is_admin() => Ok(()),
        None => Err(AppError::Forbidden(format!(
            "Check {} out first to {what} (or ask an admin).",
            rec.path
        ))),
    }
}

impl Files {
    /// Gives file `id` the path `to`: one commit that removes the old name
    /// and adds the new one with the same content. The id, revision, lock,
    /// line and history stay with the file.
    pub async fn move_file(&self, actor: &Actor, id: u64, to: RepoPath) -> AppResult<FileRecord> {
        let result = self.move_inner(actor, id, to).await;
        crate::metrics::operation("move", result)
    }

    async fn move_inner(&self, actor: &Actor, id: u64, to: RepoPath) -> AppResult<FileRecord> {
        let this = self.clone();
        let actor = actor.clone();
        super::blocking(move || {
            this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "move files")?;
                this.reconcile_in(tx)?;
                let mut rec =
                    get_file(&tx.txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                may_edit(&rec, &actor, "move or rename it", false)?;
                if rec.path == to {
                    return Err(AppError::Invalid(format!(
                        "{to} is already this file's path; nothing to move."
                    )));
                }
                let from = rec.path.clone();
                {
                    // Its own old name does not count against the new one
                    // (`a` → `a/b` is fine once `a` is gone); the
                    // transaction is dropped whole if the name is refused.
                    let mut paths = tx.txn.open_table(PATHS)?;
                    paths.remove(from.as_str())?;
                    super::check_name_free(&paths, &to)?;
                }
                super::drive::landed(&tx.txn, &to)?;
                let commit_message = format!("Move {from} to {to}");
                let commit = this.commit_in(
                    tx,
                    &[Change::Move {
                        from: &from,
                        to: &to,
                        blob: rec.blob,
                    }],
                    &actor,
                    &commit_message,
                    &[Trailers {
                        action: Action::Move,
                        file_id: id,
                        path: to.clone(),
                        from: Some(from.clone()),
                        revision: Some(rec.revision.to_string()),
                        user: actor.username.clone(),
                    }],
                )?;
                rec.path = to;
                // The file's newest commit, as for every change in Git.
                rec.head = commit;
                rec.modified_at = now();
                rec.modified_by = actor.username.clone();
                save_and_record(
                    tx,
                    rec,
                    EventKind::Moved,
                    &actor,
                    Some(from.to_string()),
                    None,
                )
            })
        })
        .await
    }

    /// Sets file `id`'s description.
    pub async fn describe(
        &self,
        actor: &Actor,
        id: u64,
        description: Description,
    ) -> AppResult<FileRecord> {
        let actor = actor.clone();
        let result = self
            .change(
                id,
                &actor.clone(),
                Needs::Account,
                "edit descriptions",
                move |tx, mut rec| {
                    may_edit(&rec, &actor, "edit its description", true)?;
                    let description = description.into_inner();
                    if rec.description == description {
                        return Ok(rec);
                    }
                    rec.description = description;
                    save_and_record(tx, rec, EventKind::Edited, &actor, None, None)
                },
            )
            .await;
        crate::metrics::operation("edit", result)
    }
}
