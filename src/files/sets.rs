//! Change sets: several files checked out, cancelled, checked in or
//! uploaded as one change — all or none, one redb transaction, and for
//! content one Git commit with a trailer group per file (so reconciliation
//! rebuilds every record from Git alone). Their events reach live clients
//! as one message (`Tx::together`).

use std::collections::HashSet;

use redb::ReadableTable;

use super::rules::{Needs, require_active, require_holder};
use super::{Actor, Files, NewVersion, blocking, handoff, not_found, save_and_record};
use crate::domain::{LockComment, RepoPath, Revision};
use crate::error::{AppError, AppResult, HeldFile};
use crate::store::{self, EventKind, FILES, FileRecord, LockRecord, PATHS, Tx, get_file, now};
use crate::vault::{Action, Change, Spool, Trailers};

/// Most files one change set may name: a fixture set or an assembly is
/// tens of files; thousands in one request is a mistake or an attack.
pub const MAX_SET: usize = 200;

/// Most files one bulk upload may hold. A shop's folder of programs is
/// often a few hundred files (a fixtures folder of 300 was refused at
/// [`MAX_SET`]); the bound is a page's worth of cards ([`MAX_SET`]'s
/// reason, scaled to what a dashboard shows at once), so the one live
/// message announcing the upload is no larger than a page load.
pub const MAX_UPLOAD_FILES: usize = 500;

/// One file of a change set's check-in or of a bulk upload: where it goes
/// (or which file it is) and its spooled content.
pub struct SetPart {
    pub path: RepoPath,
    pub spool: Spool,
}

/// `ids` without repeats, in the order given; refused when empty or too many.
pub fn set_of(ids: &[u64]) -> AppResult<Vec<u64>> {
    let mut seen = HashSet::new();
    let ids: Vec<u64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    if ids.is_empty() {
        return Err(AppError::Invalid(
            "Choose at least one file (ids is empty).".into(),
        ));
    }
    if ids.len() > MAX_SET {
        return Err(AppError::Invalid(format!(
            "A change set has at most {MAX_SET} files; this one has {}.",
            ids.len()
        )));
    }
    Ok(ids)
}

/// Names the files in a sentence: `a, b and 3 more`.
fn listed(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown = &paths[..paths.len().min(SHOWN)];
    let mut text = shown.join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    text
}

impl Files {
    /// Checks out every file in `ids` with one comment, or none: the
    /// refusal names every file that someone holds or that is reserved
    /// for someone else.
    pub async fn checkout_set(
        &self,
        actor: &Actor,
        ids: &[u64],
        comment: Option<LockComment>,
    ) -> AppResult<Vec<FileRecord>> {
        let result = self.checkout_set_inner(actor, ids, comment).await;
        crate::metrics::operation("checkout", result)
    }

    async fn checkout_set_inner(
        &self,
        actor: &Actor,
        ids: &[u64],
        comment: Option<LockComment>,
    ) -> AppResult<Vec<FileRecord>> {
        let ids = set_of(ids)?;
        let window = self.shared.handoff_window;
        let this = self.clone();
        let actor = actor.clone();
        let recs = blocking(move || {
            this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "check files out")?;
                tx.together();
                let at = now();
                let mut recs = Vec::with_capacity(ids.len());
                let mut held = Vec::new();
                for &id in &ids {
                    let mut rec =
                        get_file(&tx.txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                    handoff::settle(tx, &mut rec, at, window)?;
                    let in_the_way = match (&rec.lock, rec.reserved_for(at)) {
                        (Some(lock), _) => Some(lock.owner.clone()),
                        (None, Some(r)) if r.username != actor.username => Some(r.username.clone()),
                        _ => None,
                    };
                    if let Some(owner) = in_the_way {
                        held.push(HeldFile {
                            id,
                            path: rec.path.to_string(),
                            owner,
                        });
                    }
                    recs.push(rec);
                }
                if !held.is_empty() {
                    let names: Vec<String> = held
                        .iter()
                        .map(|h| {
                            let who = if h.owner == actor.username {
                                "you"
                            } else {
                                h.owner.as_str()
                            };
                            format!("{} ({who})", h.path)
                        })
                        .collect();
                    return Err(AppError::Held {
                        message: format!(
                            "Nothing was checked out: {} of the {} files {} taken — {}.",
                            held.len(),
                            recs.len(),
                            if held.len() == 1 { "is" } else { "are" },
                            listed(&names)
                        ),
                        held,
                    });
                }
                let comment = comment.map(LockComment::into_inner);
                let mut out = Vec::with_capacity(recs.len());
                for mut rec in recs {
                    rec.reserved = None;
                    rec.queue.retain(|q| *q != actor.username);
                    rec.lock = Some(LockRecord {
                        owner: actor.username.clone(),
                        locked_at: at,
                        comment: comment.clone(),
                        warned_at: None,
                        draft: None,
                        dav_tokens: Vec::new(),
                    });
                    out.push(save_and_record(
                        tx,
                        rec,
                        EventKind::Locked,
                        &actor,
                        comment.clone(),
                        None,
                    )?);
                }
                Ok(out)
            })
        })
        .await?;
        for rec in &recs {
            self.noticed(rec);
        }
        Ok(recs)
    }

    /// Cancels the actor's check-out of every file in `ids`, or of none.
    pub async fn cancel_set(&self, actor: &Actor, ids: &[u64]) -> AppResult<Vec<FileRecord>> {
        let result = self.cancel_set_inner(actor, ids).await;
        crate::metrics::operation("cancel", result)
    }

    async fn cancel_set_inner(&self, actor: &Actor, ids: &[u64]) -> AppResult<Vec<FileRecord>> {
        let ids = set_of(ids)?;
        let window = self.shared.handoff_window;
        let this = self.clone();
        let actor = actor.clone();
        let recs = blocking(move || {
            this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "cancel a check-out")?;
                tx.together();
                let recs = held_by_actor(tx, &actor, &ids, "cancel the check-out")?;
                recs.into_iter()
                    .map(|rec| {
                        handoff::end_lock(tx, rec, EventKind::Unlocked, &actor, None, None, window)
                    })
                    .collect()
            })
        })
        .await?;
        for rec in &recs {
            self.noticed(rec);
        }
        Ok(recs)
    }

    /// The files `actor` holds, by id and path: what a change set's parts
    /// named by a bare file name are matched against (read once per request).
    pub async fn held_by(&self, actor: &Actor) -> AppResult<Vec<(u64, RepoPath)>> {
        let store = self.shared.store.clone();
        let username = actor.username.clone();
        blocking(move || {
            store.read(|txn| {
                let mut held = Vec::new();
                for row in txn.open_table(FILES)?.iter()? {
                    let (_, value) = row?;
                    let rec: FileRecord = store::decode(value.value())?;
                    if rec.locked_by() == Some(username.as_str()) {
                        held.push((rec.id, rec.path));
                    }
                }
                Ok(held)
            })
        })
        .await
    }

    /// Which file a change set's part names: its path in the vault, or, for
    /// a bare file name (what a browser sends for a file picked from disk),
    /// the one file of that name among `held` (see [`Files::held_by`]).
    /// Checked before the part's body is read, so nobody streams a file
    /// only to hear no.
    pub async fn resolve_set_part(
        &self,
        actor: &Actor,
        name: &str,
        held: &[(u64, RepoPath)],
    ) -> AppResult<u64> {
        let path = RepoPath::parse(name)?;
        let by_name: Vec<u64> = held
            .iter()
            .filter(|(_, p)| path.folder().is_empty() && p.file_name() == path.as_str())
            .map(|(id, _)| *id)
            .collect();
        let store = self.shared.store.clone();
        let actor = actor.clone();
        let name = name.to_string();
        blocking(move || {
            store.read(|txn| {
                let id = match txn.open_table(PATHS)?.get(path.as_str())?.map(|v| v.value()) {
                    Some(id) => id,
                    None => match by_name.as_slice() {
                        [id] => *id,
                        [] if path.folder().is_empty() => {
                            return Err(AppError::NotFound(format!(
                                "{name} is not a file in the vault, nor the name of one you have checked out."
                            )));
                        }
                        [] => {
                            return Err(AppError::NotFound(format!(
                                "{name} is not a file in the vault."
                            )));
                        }
                        _ => {
                            return Err(AppError::Invalid(format!(
                                "You have several files named {name} checked out; name the part by its path in the vault."
                            )));
                        }
                    },
                };
                let rec = get_file(&txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                require_holder(&rec, &actor, "check it in")?;
                Ok(id)
            })
        })
        .await
        .or_else(|e| crate::metrics::operation("checkin", Err(e)))
    }

    /// Checks in a new version of every file in `parts` (each one the actor
    /// holds, named by `resolve_set_part`'s id) with one message and one
    /// bump: one Git commit, each revision bumped, each lock ended.
    pub async fn checkin_set(
        &self,
        actor: &Actor,
        parts: Vec<(u64, Spool)>,
        version: NewVersion,
    ) -> AppResult<Vec<FileRecord>> {
        let size: u64 = parts.iter().map(|(_, s)| s.size).sum();
        let result = self.checkin_set_inner(actor, parts, version).await;
        if result.is_ok() {
            crate::metrics::checked_in(size);
        }
        crate::metrics::operation("checkin", result)
    }

    async fn checkin_set_inner(
        &self,
        actor: &Actor,
        parts: Vec<(u64, Spool)>,
        version: NewVersion,
    ) -> AppResult<Vec<FileRecord>> {
        let ids: Vec<u64> = parts.iter().map(|(id, _)| *id).collect();
        if set_of(&ids)?.len() != ids.len() {
            return Err(AppError::Invalid(
                "A file is in this check-in twice; send each file once.".into(),
            ));
        }
        if parts.iter().any(|(_, s)| s.size == 0) {
            return Err(AppError::Invalid(
                "A file in this check-in is empty; choose the new versions to check in.".into(),
            ));
        }
        let window = self.shared.handoff_window;
        let this = self.clone();
        let actor = actor.clone();
        let recs = blocking(move || {
            let mut quarantined = Vec::with_capacity(parts.len());
            for (id, spool) in &parts {
                let blob = this
                    .shared
                    .vault
                    .quarantine_blob(&mut spool.reader()?, spool.size)?;
                quarantined.push((*id, spool.size, blob));
            }
            this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "check files in")?;
                this.reconcile_in(tx)?;
                tx.together();
                let recs = held_by_actor(tx, &actor, &ids, "check it in")?;
                let mut bumped = Vec::with_capacity(recs.len());
                for (rec, (_, size, blob)) in recs.into_iter().zip(&quarantined) {
                    if rec.blob == blob.id() {
                        return Err(AppError::Invalid(format!(
                            "The new {} is identical to its revision {}; leave it out of the check-in (or cancel its check-out). Nothing was checked in.",
                            rec.path, rec.revision
                        )));
                    }
                    let revision = rec.revision.bump(version.bump)?;
                    bumped.push((rec, revision, *size));
                }
                let mut blobs = Vec::with_capacity(bumped.len());
                for (_, _, blob) in &quarantined {
                    blobs.push(this.shared.vault.publish(blob)?);
                }
                let changes: Vec<Change<'_>> = bumped
                    .iter()
                    .zip(&blobs)
                    .map(|((rec, _, _), blob)| Change::Put {
                        path: &rec.path,
                        blob: *blob,
                    })
                    .collect();
                let trailers: Vec<Trailers> = bumped
                    .iter()
                    .map(|(rec, revision, _)| Trailers {
                        action: Action::CheckIn,
                        file_id: rec.id,
                        path: rec.path.clone(),
                        from: None,
                        revision: Some(revision.to_string()),
                        user: actor.username.clone(),
                    })
                    .collect();
                let commit = this.commit_in(
                    tx,
                    &changes,
                    &actor,
                    version.message.as_str(),
                    &trailers,
                )?;
                drop(changes);
                let at = now();
                let mut out = Vec::with_capacity(bumped.len());
                for ((mut rec, revision, size), blob) in bumped.into_iter().zip(blobs) {
                    rec.revision = revision;
                    rec.head = commit;
                    rec.blob = blob;
                    rec.size = size;
                    rec.modified_at = at;
                    rec.modified_by = actor.username.clone();
                    let message = Some(version.message.as_str().to_string());
                    out.push(if version.keep {
                        super::keep_lock(&mut rec, at);
                        save_and_record(tx, rec, EventKind::CheckedIn, &actor, message, None)?
                    } else {
                        handoff::end_lock(tx, rec, EventKind::CheckedIn, &actor, message, None, window)?
                    });
                }
                Ok(out)
            })
        })
        .await?;
        for rec in &recs {
            self.noticed(rec);
        }
        Ok(recs)
    }

    /// Adds every file in `parts` (paths already under their folder) at
    /// `revision`: one Git commit, all or none. Names must be free and
    /// must not clash with each other either.
    pub async fn upload_set(
        &self,
        actor: &Actor,
        parts: Vec<SetPart>,
        revision: Revision,
    ) -> AppResult<Vec<FileRecord>> {
        let size: u64 = parts.iter().map(|p| p.spool.size).sum();
        let result = self.upload_set_inner(actor, parts, revision).await;
        if result.is_ok() {
            crate::metrics::uploaded(size);
        }
        crate::metrics::operation("upload", result)
    }

    async fn upload_set_inner(
        &self,
        actor: &Actor,
        parts: Vec<SetPart>,
        revision: Revision,
    ) -> AppResult<Vec<FileRecord>> {
        if parts.is_empty() {
            return Err(AppError::Invalid(
                "No file was attached; choose the files to upload.".into(),
            ));
        }
        if parts.len() > MAX_UPLOAD_FILES {
            return Err(AppError::Invalid(format!(
                "At most {MAX_UPLOAD_FILES} files can be uploaded at once; this upload has {}.",
                parts.len()
            )));
        }
        if let Some(p) = parts.iter().find(|p| p.spool.size == 0) {
            return Err(AppError::Invalid(format!(
                "{} is empty; choose files with content. Nothing was uploaded.",
                p.path
            )));
        }
        let this = self.clone();
        let actor = actor.clone();
        blocking(move || {
            let mut quarantined = Vec::with_capacity(parts.len());
            for p in &parts {
                quarantined.push(
                    this.shared
                        .vault
                        .quarantine_blob(&mut p.spool.reader()?, p.spool.size)?,
                );
            }
            this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "upload files")?;
                this.reconcile_in(tx)?;
                tx.together();
                let at = now();
                let mut added = Vec::with_capacity(parts.len());
                for (p, blob) in parts.iter().zip(&quarantined) {
                    // Each name against the vault and the ones before it in
                    // this upload (already in PATHS: the transaction sees them).
                    let mut paths = tx.txn.open_table(PATHS)?;
                    super::check_name_free(&paths, &p.path)?;
                    super::drive::landed(&tx.txn, &p.path)?;
                    let id = store::next_file_id(&tx.txn)?;
                    paths.insert(p.path.as_str(), id)?;
                    added.push((id, p, blob.id()));
                }
                for blob in &quarantined {
                    this.shared.vault.publish(blob)?;
                }
                let changes: Vec<Change<'_>> = added
                    .iter()
                    .map(|(_, p, blob)| Change::Put {
                        path: &p.path,
                        blob: *blob,
                    })
                    .collect();
                let trailers: Vec<Trailers> = added
                    .iter()
                    .map(|(id, p, _)| Trailers {
                        action: Action::Create,
                        file_id: *id,
                        path: p.path.clone(),
                        from: None,
                        revision: Some(revision.to_string()),
                        user: actor.username.clone(),
                    })
                    .collect();
                // No body: reconciliation reads a created file's description from it.
                let subject = format!("Add {} files", added.len());
                let commit = this.commit_in(tx, &changes, &actor, &subject, &trailers)?;
                drop(changes);
                added
                    .into_iter()
                    .map(|(id, p, blob)| {
                        let rec = FileRecord {
                            id,
                            path: p.path.clone(),
                            description: String::new(),
                            revision,
                            created_by: actor.username.clone(),
                            created_at: at,
                            size: p.spool.size,
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
                    .collect()
            })
        })
        .await
    }
}

/// The records of `ids`, in that order, each checked out by `actor`; the
/// first that is not refuses the whole set (with `require_holder`'s sentence).
fn held_by_actor(tx: &Tx, actor: &Actor, ids: &[u64], what: &str) -> AppResult<Vec<FileRecord>> {
    let files = tx.txn.open_table(FILES)?;
    let mut recs = Vec::with_capacity(ids.len());
    for &id in ids {
        let rec = get_file(&files, id)?.ok_or_else(|| not_found(id))?;
        require_holder(&rec, actor, what)?;
        recs.push(rec);
    }
    Ok(recs)
}
