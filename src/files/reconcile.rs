//! Reconciliation: applying Git commits the database has not recorded,
//! after a crash between the Git commit and the redb commit (step 3 of the
//! ordering in `files`). Each commit's trailers say what it did, so the
//! records are rebuilt from Git alone, and a lock stays as it was.

use super::{Files, set_recorded_head, versions};
use crate::domain::Revision;
use crate::error::{AppError, AppResult};
use crate::store::{
    self, EventDraft, EventKind, FILES, FileRecord, FileSnapshot, META, PATHS, RECORDED_HEAD, Tx,
    get_file, put_file,
};
use crate::vault::{Action, CommitId, CommitInfo, Trailers};

impl Files {
    /// Applies Git commits the database has not recorded (after a crash
    /// between the two commits). Returns how many were applied.
    pub fn reconcile(&self) -> AppResult<usize> {
        self.shared.store.write(|tx| self.reconcile_in(tx))
    }

    pub(super) fn reconcile_in(&self, tx: &mut Tx) -> AppResult<usize> {
        // An index missing (or never finished) is rebuilt from all of
        // `main`, which already holds the commits applied below.
        let rebuilt = !versions::is_complete(&tx.txn)?;
        if rebuilt {
            versions::rebuild(&tx.txn, &self.shared.vault)?;
        }
        let head = self.shared.vault.head()?;
        let recorded = store::meta_get(&tx.txn.open_table(META)?, RECORDED_HEAD)?;
        let recorded = recorded.as_deref().map(stored_commit).transpose()?;
        if head == recorded {
            return Ok(0);
        }
        let mut missed = self.shared.vault.log(recorded, None, usize::MAX)?;
        missed.reverse();
        for commit in &missed {
            self.apply_commit(tx, commit)?;
            if !rebuilt {
                versions::index_commit(&tx.txn, commit)?;
            }
        }
        if let Some(head) = head {
            set_recorded_head(tx, head)?;
        }
        tracing::warn!(
            commits = missed.len(),
            "reconciled Git commits the database had not recorded"
        );
        Ok(missed.len())
    }

    /// Applies what `commit` did to each file it names (a change set names several).
    fn apply_commit(&self, tx: &mut Tx, commit: &CommitInfo) -> AppResult<()> {
        for t in &commit.trailers {
            self.apply_trailers(tx, commit, t)?;
        }
        Ok(())
    }

    fn apply_trailers(&self, tx: &mut Tx, commit: &CommitInfo, t: &Trailers) -> AppResult<()> {
        let mut files = tx.txn.open_table(FILES)?;
        let existing = get_file(&files, t.file_id)?;
        let (kind, snapshot) = match t.action {
            Action::Delete => {
                store::files_changed(&tx.txn, t.file_id)?;
                files.remove(t.file_id)?;
                drop(files);
                tx.txn.open_table(PATHS)?.remove(t.path.as_str())?;
                let snapshot = FileSnapshot::Deleted {
                    id: t.file_id,
                    path: t.path.clone(),
                };
                (EventKind::Deleted, snapshot)
            }
            Action::Move => {
                drop(files);
                let Some(mut rec) = existing else {
                    return Ok(());
                };
                let mut paths = tx.txn.open_table(PATHS)?;
                paths.remove(rec.path.as_str())?;
                drop(paths);
                let from = rec.path.clone();
                rec.path = t.path.clone();
                rec.head = commit.id;
                rec.modified_at = commit.at;
                rec.modified_by = t.user.clone();
                put_file(&tx.txn, &rec)?;
                tx.record(EventDraft {
                    kind: EventKind::Moved,
                    actor: t.user.clone(),
                    note: Some(from.to_string()),
                    previous_holder: None,
                    file: FileSnapshot::Present(Box::new(rec)),
                })?;
                return Ok(());
            }
            Action::Create | Action::CheckIn => {
                drop(files);
                let Some(blob) = self.shared.vault.blob_at(commit.id, &t.path)? else {
                    return Ok(());
                };
                let (size, _) = self.shared.vault.open_blob(blob)?;
                let revision = trailer_revision(t, commit.id, existing.as_ref());
                let rec = match existing {
                    Some(mut rec) => {
                        rec.revision = revision;
                        rec.head = commit.id;
                        rec.blob = blob;
                        rec.size = size;
                        rec.modified_at = commit.at;
                        rec.modified_by = t.user.clone();
                        rec
                    }
                    None => FileRecord {
                        id: t.file_id,
                        path: t.path.clone(),
                        description: commit
                            .message
                            .split_once("\n\n")
                            .map(|(_, d)| d.to_string())
                            .unwrap_or_default(),
                        revision,
                        created_by: t.user.clone(),
                        created_at: commit.at,
                        size,
                        head: commit.id,
                        blob,
                        modified_at: commit.at,
                        modified_by: t.user.clone(),
                        lock: None,
                        queue: Vec::new(),
                        reserved: None,
                    },
                };
                store::reserve_file_id(&tx.txn, t.file_id)?;
                put_file(&tx.txn, &rec)?;
                let kind = if t.action == Action::Create {
                    EventKind::Created
                } else {
                    EventKind::CheckedIn
                };
                (kind, FileSnapshot::Present(Box::new(rec)))
            }
        };
        tx.record(EventDraft {
            kind,
            actor: t.user.clone(),
            note: Some(commit.message.clone()),
            previous_holder: None,
            file: snapshot,
        })?;
        Ok(())
    }
}

/// A commit's `Latch-Revision`, read like any stored value (no edge limits).
/// One that is missing or unreadable keeps the record's revision (a new
/// record starts at 1.0), and says so in the log rather than silently.
fn trailer_revision(t: &Trailers, commit: CommitId, existing: Option<&FileRecord>) -> Revision {
    let kept = existing.map(|r| r.revision).unwrap_or(Revision::FIRST);
    match t.revision.as_deref().map(|r| (r, Revision::from_stored(r))) {
        Some((_, Some(revision))) => revision,
        raw => {
            tracing::warn!(
                %commit,
                file = t.file_id,
                trailer = raw.map(|(r, _)| r).unwrap_or("(none)"),
                kept = %kept,
                "a commit's Latch-Revision is not a revision; keeping the record's"
            );
            kept
        }
    }
}

fn stored_commit(hex: &str) -> AppResult<CommitId> {
    CommitId::from_hex(hex)
        .ok_or_else(|| AppError::Internal(format!("the recorded head '{hex}' is not a commit id")))
}
