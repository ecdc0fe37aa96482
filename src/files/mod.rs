//! The operations on files — upload, check out, cancel, check in, override,
//! delete — and the ordering that keeps Git and the database agreeing.
//! Beside them: who may do what (`rules`), whether a new name is free
//! (`names`), what is read without a change (`reads`), and reconciliation
//! after a crash (`reconcile`).
//! Long because the operations that write both Git and redb keep their
//! ordering (below) side by side, where a reader can check each against it.
//!
//! Ordering that keeps Git (content) and redb (state) consistent:
//! 1. an upload is spooled to disk, then written as a loose blob into the
//!    vault's quarantine, before anything else happens; a failure there
//!    leaves no record, no reference and no object;
//! 2. inside one redb write transaction (which also serialises writers) the
//!    rules are checked (the acting user included: still there, enabled,
//!    and with the role the operation needs), the blob is moved from
//!    quarantine into the object store, the Git commit is made and `main`
//!    moved, then the record, the lock and the event are written and
//!    committed. A refusal drops the quarantined blob: only committed
//!    content ever enters the object store;
//! 3. a crash between the Git commit and the redb commit leaves a commit the
//!    database has not recorded; `reconcile` applies it from its trailers at
//!    the next start (or before the next commit), keeping the lock as it was.
//!    So a lock is never released without its commit, and a revision number
//!    is never handed out twice;
//! 4. a crash while `main` is being moved leaves `refs/heads/main.lock`,
//!    which would fail every later commit; `Vault::clear_stale_locks` removes
//!    it at start, once the open database proves no other Latch runs.
//!
//! `tests/it/crash.rs` kills the real binary mid-operation to prove all of this.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Bump, CommitMessage, Description, LockComment, RepoPath, Revision, Role};
use crate::error::{AppError, AppResult};
use crate::store::{
    self, EventDraft, EventKind, FILES, FileRecord, FileSnapshot, LockRecord, META, PATHS,
    RECORDED_HEAD, Store, Tx, get_file, now, put_file,
};
use crate::vault::{Action, Author, Change, CommitId, Spool, Trailers, Vault};

mod aging;
mod content;
mod drive;
mod edits;
mod handoff;
mod names;
mod notices;
mod reads;
mod reconcile;
mod rules;
mod sets;
mod spool;
pub mod versions;

pub use aging::{LockAging, SYSTEM_ACTOR};
pub use content::{Comparison, FolderZip, PREVIEW_BYTES, Preview, Shown, human_size};
pub use drive::{DavLockRecord, DeadProp, create_tables as create_drive_tables};
use names::check_name_free;
pub use notices::{InboxView, Watches};
pub use reads::{Board, Download, Version, download_name};
pub use rules::require_admin;
use rules::{Needs, require_active, require_holder};
pub use sets::{MAX_SET, MAX_UPLOAD_FILES, SetPart, set_of};
pub use spool::SpoolWriter;

/// The signed-in person an operation acts for.
#[derive(Debug, Clone)]
pub struct Actor {
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    fn author(&self) -> Author<'_> {
        Author {
            username: &self.username,
            display_name: &self.display_name,
        }
    }
}

/// A new file's fields, already validated.
pub struct NewFile {
    pub path: RepoPath,
    pub description: Description,
    pub revision: Revision,
}

/// A check-in's fields, already validated.
pub struct NewVersion {
    pub message: CommitMessage,
    pub bump: Bump,
    /// Keep the file checked out after the check-in (a milestone, not the
    /// end of the work): no hand-off, the lock runs on from now.
    pub keep: bool,
}

#[derive(Clone)]
pub struct Files {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    vault: Vault,
    spool_dir: PathBuf,
    /// Holders' drafts saved through the network drive (`drive`).
    drafts_dir: PathBuf,
    /// Keeps draft saves, sweeps and check-ins from crossing (`drive`).
    draft_locks: drive::DraftLocks,
    max_upload: u64,
    /// How long a file stays reserved for the first in line.
    handoff_window: Duration,
    /// Wakes the hand-off clock for a change due before it planned to wake…
    reservations_changed: tokio::sync::Notify,
    /// …which is then (unix seconds), or `i64::MAX` while it is awake.
    clock_wakes_at: std::sync::atomic::AtomicI64,
    aging: LockAging,
}

fn not_found(id: u64) -> AppError {
    AppError::NotFound(format!(
        "There is no file with id {id}; it may have been deleted."
    ))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(f).await?
}

impl Files {
    pub fn new(
        store: Store,
        vault: Vault,
        spool_dir: PathBuf,
        max_upload: u64,
        handoff_window: Duration,
        aging: LockAging,
    ) -> AppResult<Files> {
        std::fs::create_dir_all(&spool_dir)?;
        // Spooled and quarantined uploads of a crashed process are never resumed.
        if let Ok(entries) = std::fs::read_dir(&spool_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        vault.clear_quarantine()?;
        let drafts_dir = drive::drafts_dir_beside(&spool_dir)?;
        Ok(Files {
            shared: Arc::new(Shared {
                store,
                vault,
                spool_dir,
                drafts_dir,
                draft_locks: drive::DraftLocks::default(),
                max_upload,
                handoff_window,
                reservations_changed: tokio::sync::Notify::new(),
                clock_wakes_at: std::sync::atomic::AtomicI64::new(i64::MAX),
                aging,
            }),
        })
    }

    pub fn vault(&self) -> &Vault {
        &self.shared.vault
    }

    // The operations, each counted in `metrics` by kind and outcome; the
    // `*_inner` methods below hold their rules.

    pub async fn upload(&self, actor: &Actor, new: NewFile, spool: Spool) -> AppResult<FileRecord> {
        let size = spool.size;
        let result = self.upload_inner(actor, new, spool).await;
        if result.is_ok() {
            crate::metrics::uploaded(size);
        }
        crate::metrics::operation("upload", result)
    }

    pub async fn checkout(
        &self,
        actor: &Actor,
        id: u64,
        comment: Option<LockComment>,
    ) -> AppResult<FileRecord> {
        let result = self.checkout_inner(actor, id, comment).await;
        crate::metrics::operation("checkout", result)
    }

    pub async fn cancel(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        crate::metrics::operation("cancel", self.cancel_inner(actor, id, false).await)
    }

    /// Cancels a check-out the caller has just read as the actor's own:
    /// if it changed hands (or ended) since, that is a lost race, 409
    /// naming what happened, not a refusal of a right the actor never had.
    pub async fn cancel_read_as_mine(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        crate::metrics::operation("cancel", self.cancel_inner(actor, id, true).await)
    }

    pub async fn checkin(
        &self,
        actor: &Actor,
        id: u64,
        version: NewVersion,
        spool: Spool,
    ) -> AppResult<FileRecord> {
        let size = spool.size;
        let result = self.checkin_inner(actor, id, version, spool).await;
        if result.is_ok() {
            crate::metrics::checked_in(size);
        }
        crate::metrics::operation("checkin", result)
    }

    pub async fn override_lock(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        let result = self.override_inner(actor, id, None).await;
        crate::metrics::operation("override", result.map(|(rec, _)| rec))
    }

    /// Compare-and-swap override: breaks the check-out only while `holder`
    /// still holds it, and answers 409 naming the current holder otherwise,
    /// so a caller that read the lock first never breaks someone else's.
    /// Returns the file and the lock that was broken (what the event says).
    pub async fn override_lock_held_by(
        &self,
        actor: &Actor,
        id: u64,
        holder: &str,
    ) -> AppResult<(FileRecord, LockRecord)> {
        let result = self
            .override_inner(actor, id, Some(holder.to_string()))
            .await;
        crate::metrics::operation("override", result)
    }

    pub async fn delete(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        crate::metrics::operation("delete", self.delete_inner(actor, id).await)
    }

    async fn upload_inner(
        &self,
        actor: &Actor,
        new: NewFile,
        spool: Spool,
    ) -> AppResult<FileRecord> {
        if spool.size == 0 {
            return Err(AppError::Invalid(
                "The file is empty; choose a file with content.".into(),
            ));
        }
        let this = self.clone();
        let actor = actor.clone();
        blocking(move || {
            let path = new.path;
            // Once before the blob is written, to spare it when refused...
            this.shared
                .store
                .read(|txn| check_name_free(&txn.open_table(PATHS)?, &path))?;
            let quarantined = this
                .shared
                .vault
                .quarantine_blob(&mut spool.reader()?, spool.size)?;
            this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "upload files")?;
                this.reconcile_in(tx)?;
                // ...and where it counts: inside the transaction that adds it.
                check_name_free(&tx.txn.open_table(PATHS)?, &path)?;
                let blob = this.shared.vault.publish(&quarantined)?;
                drive::landed(&tx.txn, &path)?;
                let id = store::next_file_id(&tx.txn)?;
                let description = new.description.into_inner();
                let subject = if description.is_empty() {
                    format!("Add {path}")
                } else {
                    format!("Add {path}\n\n{description}")
                };
                let commit = this.commit_in(
                    tx,
                    &[Change::Put { path: &path, blob }],
                    &actor,
                    &subject,
                    &[Trailers {
                        action: Action::Create,
                        file_id: id,
                        path: path.clone(),
                        from: None,
                        revision: Some(new.revision.to_string()),
                        user: actor.username.clone(),
                    }],
                )?;
                let at = now();
                let rec = FileRecord {
                    id,
                    path: path.clone(),
                    description,
                    revision: new.revision,
                    created_by: actor.username.clone(),
                    created_at: at,
                    size: spool.size,
                    head: commit,
                    blob,
                    modified_at: at,
                    modified_by: actor.username.clone(),
                    lock: None,
                    queue: Vec::new(),
                    reserved: None,
                };
                save_and_record(tx, rec, EventKind::Created, &actor, None, None)
            })
        })
        .await
    }

    async fn checkout_inner(
        &self,
        actor: &Actor,
        id: u64,
        comment: Option<LockComment>,
    ) -> AppResult<FileRecord> {
        let window = self.shared.handoff_window;
        let actor = actor.clone();
        self.change(
            id,
            &actor.clone(),
            Needs::Account,
            "check files out",
            move |tx, mut rec| {
                let at = now();
                handoff::settle(tx, &mut rec, at, window)?;
                if let Some(lock) = &rec.lock {
                    let who = if lock.owner == actor.username {
                        "you".to_string()
                    } else {
                        lock.owner.clone()
                    };
                    return Err(AppError::Conflict(format!(
                        "{} is already checked out by {who}.",
                        rec.path
                    )));
                }
                if let Some(r) = rec.reserved_for(at)
                    && r.username != actor.username
                {
                    return Err(handoff::reserved_refusal(&rec, r));
                }
                // Taking the file ends its reservation and the taker's wait.
                rec.reserved = None;
                rec.queue.retain(|q| *q != actor.username);
                let comment = comment.map(LockComment::into_inner);
                rec.lock = Some(LockRecord {
                    owner: actor.username.clone(),
                    locked_at: at,
                    comment: comment.clone(),
                    warned_at: None,
                    draft: None,
                    dav_tokens: Vec::new(),
                });
                save_and_record(tx, rec, EventKind::Locked, &actor, comment, None)
            },
        )
        .await
        .inspect(|rec| self.noticed(rec)) // it will turn stale, may expire
    }

    async fn cancel_inner(
        &self,
        actor: &Actor,
        id: u64,
        read_as_mine: bool,
    ) -> AppResult<FileRecord> {
        let window = self.shared.handoff_window;
        let actor = actor.clone();
        self.change(
            id,
            &actor.clone(),
            Needs::Account,
            "cancel a check-out",
            move |tx, rec| {
                if read_as_mine && rec.locked_by() != Some(actor.username.as_str()) {
                    return Err(AppError::Conflict(match rec.locked_by() {
                        Some(now) => format!(
                            "{} changed hands while you released it: {now} holds it now.",
                            rec.path
                        ),
                        None => format!("{} was released meanwhile.", rec.path),
                    }));
                }
                require_holder(&rec, &actor, "cancel the check-out")?;
                handoff::end_lock(tx, rec, EventKind::Unlocked, &actor, None, None, window)
            },
        )
        .await
        .inspect(|rec| self.noticed(rec))
    }

    /// Refuses a check-in before its body is read when the lock is not the
    /// actor's, so nobody streams hundreds of megabytes only to hear no.
    /// A refusal here counts as a refused check-in.
    pub async fn precheck_checkin(&self, actor: &Actor, id: u64) -> AppResult<()> {
        match self.check_holder(actor, id).await {
            Ok(()) => Ok(()),
            Err(e) => crate::metrics::operation("checkin", Err(e)),
        }
    }

    async fn check_holder(&self, actor: &Actor, id: u64) -> AppResult<()> {
        require_holder(&self.get(id).await?, actor, "check it in")
    }

    async fn checkin_inner(
        &self,
        actor: &Actor,
        id: u64,
        version: NewVersion,
        spool: Spool,
    ) -> AppResult<FileRecord> {
        if spool.size == 0 {
            return Err(AppError::Invalid(
                "The file is empty; choose the new version to check in.".into(),
            ));
        }
        // Refuse before the blob is written when the lock is not ours.
        self.check_holder(actor, id).await?;
        let window = self.shared.handoff_window;
        let this = self.clone();
        let actor = actor.clone();
        blocking(move || {
            let quarantined = this
                .shared
                .vault
                .quarantine_blob(&mut spool.reader()?, spool.size)?;
            this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "check files in")?;
                // Reconciliation first: it may move this record on.
                this.reconcile_in(tx)?;
                let mut rec =
                    get_file(&tx.txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                require_holder(&rec, &actor, "check it in")?;
                if rec.blob == quarantined.id() {
                    return Err(AppError::Invalid(format!(
                        "This content is identical to revision {} of {}; nothing to check in.",
                        rec.revision, rec.path
                    )));
                }
                // Before the commit: a refused bump leaves Git and the record as they were.
                let revision = rec.revision.bump(version.bump)?;
                let blob = this.shared.vault.publish(&quarantined)?;
                let commit = this.commit_in(
                    tx,
                    &[Change::Put {
                        path: &rec.path,
                        blob,
                    }],
                    &actor,
                    version.message.as_str(),
                    &[Trailers {
                        action: Action::CheckIn,
                        file_id: id,
                        path: rec.path.clone(),
                        from: None,
                        revision: Some(revision.to_string()),
                        user: actor.username.clone(),
                    }],
                )?;
                rec.revision = revision;
                rec.head = commit;
                rec.blob = blob;
                rec.size = spool.size;
                rec.modified_at = now();
                rec.modified_by = actor.username.clone();
                let message = Some(version.message.as_str().to_string());
                if version.keep {
                    let at = rec.modified_at;
                    keep_lock(&mut rec, at);
                    return save_and_record(tx, rec, EventKind::CheckedIn, &actor, message, None);
                }
                handoff::end_lock(tx, rec, EventKind::CheckedIn, &actor, message, None, window)
            })
        })
        .await
        .inspect(|rec| self.noticed(rec))
    }

    async fn override_inner(
        &self,
        actor: &Actor,
        id: u64,
        expected: Option<String>,
    ) -> AppResult<(FileRecord, LockRecord)> {
        require_admin(actor, "override a check-out")?;
        let window = self.shared.handoff_window;
        let actor = actor.clone();
        self.change(id, &actor.clone(), Needs::Admin, "override a check-out", move |tx, mut rec| {
                let Some(lock) = rec.lock.take() else {
                    return Err(AppError::Conflict(format!(
                        "{} is not checked out; there is nothing to override.",
                        rec.path
                    )));
                };
                if let Some(expected) = expected.filter(|e| *e != lock.owner) {
                    return Err(AppError::Conflict(format!(
                        "{} is now checked out by {}, not {expected}; nothing was overridden. Look again before breaking {}'s check-out.",
                        rec.path, lock.owner, lock.owner
                    )));
                }
                let rec = handoff::end_lock(
                    tx,
                    rec,
                    EventKind::Overridden,
                    &actor,
                    lock.comment.clone(),
                    Some(lock.owner.clone()),
                    window,
                )?;
                Ok((rec, lock))
            })
            .await
            .inspect(|(rec, _)| self.noticed(rec))
    }

    async fn delete_inner(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        require_admin(actor, "delete files")?;
        let this = self.clone();
        let actor = actor.clone();
        self.change(id, &actor.clone(), Needs::Admin, "delete files", move |tx, rec| {
            if let Some(lock) = &rec.lock {
                return Err(AppError::Conflict(format!(
                    "{} is checked out by {}; it can be deleted once it is checked in or the check-out is overridden.",
                    rec.path, lock.owner
                )));
            }
            this.reconcile_in(tx)?;
            this.commit_in(
                tx,
                &[Change::Remove { path: &rec.path }],
                &actor,
                &format!("Delete {}", rec.path),
                &[Trailers {
                    action: Action::Delete,
                    file_id: id,
                    path: rec.path.clone(),
                    from: None,
                    revision: None,
                    user: actor.username.clone(),
                }],
            )?;
            store::files_changed(&tx.txn, id)?;
            tx.txn.open_table(FILES)?.remove(id)?;
            tx.txn.open_table(PATHS)?.remove(rec.path.as_str())?;
            tx.record(EventDraft {
                kind: EventKind::Deleted,
                actor: actor.username.clone(),
                note: None,
                previous_holder: None,
                file: FileSnapshot::Deleted {
                    id,
                    path: rec.path.clone(),
                },
            })?;
            Ok(rec)
        })
        .await
    }

    fn commit_in(
        &self,
        tx: &mut Tx,
        changes: &[Change<'_>],
        actor: &Actor,
        message: &str,
        trailers: &[Trailers],
    ) -> AppResult<CommitId> {
        let commit = self
            .shared
            .vault
            .commit(changes, &actor.author(), message, trailers)?;
        set_recorded_head(tx, commit)?;
        // Read back as history will show it (the commit's own time and
        // author), and indexed in the transaction that records the commit.
        let info = self.shared.vault.commit_info(commit)?.ok_or_else(|| {
            AppError::Internal(format!("the commit {commit} just made cannot be read"))
        })?;
        versions::index_commit(&tx.txn, &info)?;
        Ok(commit)
    }

    /// Runs a rule-checked change of one file in one write transaction,
    /// first making sure `actor` may still do `what`.
    async fn change<T: Send + 'static>(
        &self,
        id: u64,
        actor: &Actor,
        needs: Needs,
        what: &'static str,
        f: impl FnOnce(&mut Tx, FileRecord) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let store = self.shared.store.clone();
        let actor = actor.clone();
        blocking(move || {
            store.write(|tx| {
                require_active(tx, &actor, needs, what)?;
                let rec = get_file(&tx.txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                f(tx, rec)
            })
        })
        .await
    }
}

/// Stores the changed record and records its event; returns the record.
fn save_and_record(
    tx: &mut Tx,
    rec: FileRecord,
    kind: EventKind,
    actor: &Actor,
    note: Option<String>,
    previous_holder: Option<String>,
) -> AppResult<FileRecord> {
    put_file(&tx.txn, &rec)?;
    tx.record(EventDraft {
        kind,
        actor: actor.username.clone(),
        note,
        previous_holder,
        file: FileSnapshot::Present(Box::new(rec.clone())),
    })?;
    Ok(rec)
}

/// A lock kept through a check-in runs on from `at`: its age (stale,
/// expiry) counts from the last version, and a warning given is forgotten.
fn keep_lock(rec: &mut FileRecord, at: i64) {
    if let Some(lock) = rec.lock.as_mut() {
        lock.locked_at = at;
        lock.warned_at = None;
    }
}

fn set_recorded_head(tx: &mut Tx, head: CommitId) -> AppResult<()> {
    tx.txn
        .open_table(META)?
        .insert(RECORDED_HEAD, head.to_string().as_str())?;
    Ok(())
}
