//! What the network drive (WebDAV under `/dav`) keeps beside the files:
//! drafts (a holder's saves, not yet a version), the WebDAV lock tokens
//! that stand for check-outs, and empty folders made with `MKCOL`.
//!
//! A draft is a file under `<data>/drafts/` named `draft-<id>-<random>`,
//! recorded on the lock it belongs to ([`Draft`] in [`LockRecord`]): the
//! file is written (renamed from the spool) before the record names it, so
//! a crash leaves at worst a file no record names, which
//! [`Files::reconcile_drafts`] removes at start, along with records whose
//! file is gone. Whatever ends the lock (check-in, cancel, override,
//! expiry) drops the record with it; the file goes at the next sweep.

use std::path::{Path, PathBuf};

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::rules::{Needs, require_active, require_holder};
use super::{Actor, Files, NewVersion, not_found};
use crate::domain::{Bump, CommitMessage, RepoPath};
use crate::error::{AppError, AppResult};
use crate::store::{
    self, DAV_LOCKS, DEAD_PROPS, Draft, FILES, FileRecord, KEPT_FOLDERS, PATHS, USERS, get_file,
    now, put_file,
};
use crate::vault::Spool;

/// A WebDAV lock token's check-out: which file, whose, and until when the
/// client's own timeout holds it on the WebDAV side (Latch's lock does not
/// end with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DavLockRecord {
    pub file_id: u64,
    pub path: RepoPath,
    pub username: String,
    /// The client's owner element, as it sent it (shown in `lockdiscovery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_xml: Option<String>,
    pub locked_at: i64,
    /// Unix seconds; `None` for a lock without a timeout.
    pub timeout_at: Option<i64>,
    /// A shared lock: the holder's own programs may each take one.
    #[serde(default)]
    pub shared: bool,
    /// A folder's lock: the files it checked out (and those saved into
    /// the folder since), resolved with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<u64>,
    /// The token joined a check-out made in the browser: closing without
    /// a save leaves that check-out as it was.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub joined: bool,
}

/// What keeps draft saves, sweeps and check-ins from crossing.
pub(super) struct DraftLocks {
    /// Held while a draft is saved or draft files are swept, so a sweep
    /// never removes the file a save in flight is about to name.
    busy: std::sync::Mutex<()>,
    /// Turns between saving a file's draft and checking its draft in
    /// (striped by file id): a save that lands between reading the draft
    /// and the commit that ends the lock would be answered "saved" and lost.
    turns: [tokio::sync::Mutex<()>; 16],
    /// Held while a WebDAV lock is granted, from the look for one in the
    /// way to the token's record: two people locking one free name (or
    /// an empty folder) at the same instant each found none and were
    /// each granted an exclusive lock, so neither could save there.
    granting: tokio::sync::Mutex<()>,
}

impl Default for DraftLocks {
    fn default() -> Self {
        DraftLocks {
            busy: std::sync::Mutex::new(()),
            turns: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            granting: tokio::sync::Mutex::new(()),
        }
    }
}

/// A folder kept empty by `MKCOL`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeptFolder {
    by: String,
    at: i64,
}

/// Creates the tables this module keeps (schema 6).
pub fn create_tables(txn: &redb::WriteTransaction) -> AppResult<()> {
    txn.open_table(KEPT_FOLDERS)?;
    txn.open_table(DAV_LOCKS)?;
    txn.open_table(DEAD_PROPS)?;
    Ok(())
}

/// A property a WebDAV client set (a "dead" property: kept, not read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadProp {
    pub name: String,
    pub prefix: Option<String>,
    pub namespace: Option<String>,
    /// The whole element, as the client sent it.
    pub xml: Option<String>,
}

impl DeadProp {
    fn key(&self) -> (Option<&str>, &str) {
        (self.namespace.as_deref(), self.name.as_str())
    }
}

/// At most this many properties per file or folder, and this many bytes
/// of them in all: metadata, not a second store for content.
pub const MAX_DEAD_PROPS: usize = 64;
pub const MAX_DEAD_PROP_BYTES: usize = 64 * 1024;

/// Drops kept folders a new file at `path` lands in: they need no keeping.
/// Refuses (409) a file named as a kept folder, or as one's ancestor.
pub fn landed(txn: &redb::WriteTransaction, path: &RepoPath) -> AppResult<()> {
    let mut table = txn.open_table(KEPT_FOLDERS)?;
    let under = format!("{path}/");
    let clash = match table.range(path.as_str()..)?.next() {
        Some(row) => {
            let name = row?.0.value().to_string();
            (name == path.as_str() || name.starts_with(&under)).then_some(name)
        }
        None => None,
    };
    if let Some(folder) = clash {
        return Err(AppError::Conflict(format!(
            "{path} cannot be a file: {folder} is a folder."
        )));
    }
    for folder in path.folders() {
        table.remove(folder)?;
    }
    Ok(())
}

/// `<data>/drafts`, beside the spool; made if missing.
pub(super) fn drafts_dir_beside(spool_dir: &Path) -> AppResult<PathBuf> {
    let dir = spool_dir
        .parent()
        .map(|data| data.join("drafts"))
        .unwrap_or_else(|| PathBuf::from("drafts"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn draft_prefix(id: u64) -> String {
    format!("draft-{id}-")
}

impl Files {
    pub fn drafts_dir(&self) -> &Path {
        &self.shared.drafts_dir
    }

    /// Keeps `spool` as the holder's draft of file `id`, replacing an
    /// earlier one. Not a version: no commit, no event; the file's card is
    /// re-rendered for everyone ("draft saved …").
    pub async fn save_draft(&self, actor: &Actor, id: u64, spool: Spool) -> AppResult<FileRecord> {
        let _turn = self.draft_turn(id).await;
        let this = self.clone();
        let actor = actor.clone();
        let rec = super::blocking(move || {
            let name = format!("{}{}", draft_prefix(id), crate::secret::random_hex(8));
            let path = this.shared.drafts_dir.join(&name);
            let busy = this
                .shared
                .draft_locks
                .busy
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            std::fs::rename(&spool.path, &path)?;
            let size = spool.size;
            drop(spool);
            let saved = this.shared.store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "save a draft")?;
                let mut rec =
                    get_file(&tx.txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                require_holder(&rec, &actor, "save a draft of it")?;
                if let Some(lock) = rec.lock.as_mut() {
                    lock.draft = Some(Draft {
                        file: name.clone(),
                        size,
                        saved_at: now(),
                    });
                }
                put_file(&tx.txn, &rec)?;
                Ok(rec)
            });
            drop(busy);
            if saved.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            let rec = saved?;
            this.sweep_drafts_of(id);
            this.shared.store.refresh(|r| r.id == id)?;
            Ok(rec)
        })
        .await?;
        Ok(rec)
    }

    /// The draft `actor` holds of `rec`, if any: its path and size.
    pub fn draft_of(&self, actor: &Actor, rec: &FileRecord) -> Option<(PathBuf, u64)> {
        let lock = rec.lock.as_ref().filter(|l| l.owner == actor.username)?;
        let draft = lock.draft.as_ref()?;
        Some((self.shared.drafts_dir.join(&draft.file), draft.size))
    }

    /// A spool of the draft `actor` holds of file `id` (a second name for
    /// it: the check-in's spool is removed when it is done, the draft only
    /// once the lock is gone), or `None` without one.
    pub async fn draft_spool(&self, actor: &Actor, id: u64) -> AppResult<Option<Spool>> {
        let rec = self.get(id).await?;
        let Some((draft, size)) = self.draft_of(actor, &rec) else {
            return Ok(None);
        };
        let spool = Spool {
            path: self
                .shared
                .spool_dir
                .join(format!("draft-{}", crate::secret::random_hex(12))),
            size,
        };
        std::fs::hard_link(&draft, &spool.path).map_err(|e| {
            AppError::Internal(format!("the draft {} cannot be read: {e}", draft.display()))
        })?;
        Ok(Some(spool))
    }

    /// The turn to grant a WebDAV lock: one at a time (see `granting`).
    pub async fn dav_lock_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.shared.draft_locks.granting.lock().await
    }

    /// This file's turn between draft saves and draft check-ins.
    async fn draft_turn(&self, id: u64) -> tokio::sync::MutexGuard<'_, ()> {
        let turns = &self.shared.draft_locks.turns;
        turns[(id % turns.len() as u64) as usize].lock().await
    }

    /// Checks the holder's draft in as the next minor revision. `None`
    /// when there is no draft to check in.
    pub async fn checkin_draft(
        &self,
        actor: &Actor,
        id: u64,
        message: CommitMessage,
    ) -> AppResult<Option<FileRecord>> {
        let version = NewVersion {
            message,
            bump: Bump::Minor,
            keep: false,
        };
        self.checkin_upload_or_draft(actor, id, version, None).await
    }

    /// Checks in `upload`, or without one the holder's draft, in the
    /// file's draft turn: no save lands between reading the draft and the
    /// commit. `None` when there is neither.
    pub async fn checkin_upload_or_draft(
        &self,
        actor: &Actor,
        id: u64,
        version: NewVersion,
        upload: Option<Spool>,
    ) -> AppResult<Option<FileRecord>> {
        if let Some(spool) = upload {
            return self.checkin(actor, id, version, spool).await.map(Some);
        }
        let _turn = self.draft_turn(id).await;
        let rec = self.get(id).await?;
        require_holder(&rec, actor, "check it in")?;
        let Some(spool) = self.draft_spool(actor, id).await? else {
            return Ok(None);
        };
        let rec = self.checkin(actor, id, version, spool).await?;
        self.sweep_drafts_of(id);
        Ok(Some(rec))
    }

    /// Removes the draft files of file `id` but the one its record names
    /// (as it is once no save is in flight).
    pub(super) fn sweep_drafts_of(&self, id: u64) {
        let _busy = self
            .shared
            .draft_locks
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let keep = match self
            .shared
            .store
            .read(|txn| get_file(&txn.open_table(FILES)?, id))
        {
            Ok(rec) => rec
                .and_then(|r| r.lock)
                .and_then(|l| l.draft)
                .map(|d| d.file),
            // Unreadable now: keep everything; the start-up sweep tidies.
            Err(_) => return,
        };
        let prefix = draft_prefix(id);
        let Ok(entries) = std::fs::read_dir(&self.shared.drafts_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && keep.as_deref() != Some(name.as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes the draft of a lock that has ended (a cancel, override or
    /// check-in not made through the drive).
    pub fn forget_draft_if_unheld(&self, rec: &FileRecord) {
        if rec.lock.as_ref().is_none_or(|l| l.draft.is_none()) {
            self.sweep_drafts_of(rec.id);
        }
    }

    /// At start: draft files no record names are removed, and records whose
    /// file is gone are dropped. Returns how many of each. Blocking.
    pub fn reconcile_drafts(&self) -> AppResult<(usize, usize)> {
        std::fs::create_dir_all(&self.shared.drafts_dir)?;
        let named: std::collections::HashSet<String> = self
            .shared
            .store
            .all_files()?
            .into_iter()
            .filter_map(|r| r.lock.and_then(|l| l.draft).map(|d| d.file))
            .collect();
        let mut orphans = 0;
        for entry in std::fs::read_dir(&self.shared.drafts_dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !named.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
                orphans += 1;
            }
        }
        let dir = self.shared.drafts_dir.clone();
        let dropped = self.shared.store.write(|tx| {
            let mut fixed = Vec::new();
            for row in tx.txn.open_table(FILES)?.iter()? {
                let (_, value) = row?;
                let mut rec: FileRecord = store::decode(value.value())?;
                if let Some(lock) = rec.lock.as_mut()
                    && let Some(draft) = &lock.draft
                    && !dir.join(&draft.file).is_file()
                {
                    lock.draft = None;
                    fixed.push(rec);
                }
            }
            let n = fixed.len();
            for rec in fixed {
                put_file(&tx.txn, &rec)?;
            }
            Ok(n)
        })?;
        Ok((orphans, dropped))
    }

    // ------------------------------------------------------------ folders

    /// The folders kept empty, as stored (no leading or trailing `/`).
    pub async fn kept_folders(&self) -> AppResult<Vec<String>> {
        self.shared
            .store
            .blocking(|store| {
                store.read(|txn| {
                    let mut out = Vec::new();
                    for row in txn.open_table(KEPT_FOLDERS)?.iter()? {
                        out.push(row?.0.value().to_string());
                    }
                    Ok(out)
                })
            })
            .await
    }

    /// Keeps the empty folder `path`. Its parent must be a folder already
    /// (the vault's top, a folder of files, or a kept one); refused when a
    /// file or folder has that name.
    pub async fn keep_folder(&self, actor: &Actor, path: RepoPath) -> AppResult<()> {
        let store = self.shared.store.clone();
        let actor = actor.clone();
        super::blocking(move || {
            store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "make folders")?;
                let paths = tx.txn.open_table(PATHS)?;
                let mut kept = tx.txn.open_table(KEPT_FOLDERS)?;
                let name = path.as_str();
                let is_folder = |p: &str| -> AppResult<bool> {
                    let under = format!("{p}/");
                    let mut range = paths.range(under.as_str()..)?;
                    let has_file = match range.next() {
                        Some(row) => row?.0.value().starts_with(&under),
                        None => false,
                    };
                    Ok(has_file || kept.get(p)?.is_some())
                };
                if paths.get(name)?.is_some() || is_folder(name)? {
                    return Err(AppError::Conflict(format!("{name} already exists.")));
                }
                let parent = path.folder();
                if !parent.is_empty() && !is_folder(parent)? {
                    return Err(AppError::NotFound(format!(
                        "The folder {parent} does not exist; make it first."
                    )));
                }
                let record = store::encode(&KeptFolder {
                    by: actor.username.clone(),
                    at: now(),
                })?;
                kept.insert(name, record.as_slice())?;
                Ok(())
            })
        })
        .await
    }

    /// Stops keeping the empty folder `path` (and those kept under it).
    /// Returns whether there was one.
    pub async fn drop_folder(&self, actor: &Actor, path: String) -> AppResult<bool> {
        let store = self.shared.store.clone();
        let actor = actor.clone();
        super::blocking(move || {
            store.write(|tx| {
                require_active(tx, &actor, Needs::Account, "remove folders")?;
                let mut kept = tx.txn.open_table(KEPT_FOLDERS)?;
                let under = format!("{path}/");
                let found = kept.remove(path.as_str())?.is_some();
                let mut inner = false;
                kept.retain(|k, _| {
                    let hit = k.starts_with(&under);
                    inner |= hit;
                    !hit
                })?;
                Ok(found || inner)
            })
        })
        .await
    }

    // ------------------------------------------------------- dead properties

    pub async fn dead_props(&self, key: String) -> AppResult<Vec<DeadProp>> {
        self.shared
            .store
            .blocking(move |store| {
                store.read(|txn| {
                    let table = txn.open_table(DEAD_PROPS)?;
                    let found = table.get(key.as_str())?;
                    found.map(|v| store::decode(v.value())).transpose()
                })
            })
            .await
            .map(Option::unwrap_or_default)
    }

    /// Sets (`true`) and removes (`false`) properties of `key`, all or none.
    pub async fn patch_dead_props(
        &self,
        actor: &Actor,
        key: String,
        patch: Vec<(bool, DeadProp)>,
    ) -> AppResult<()> {
        let actor = actor.clone();
        self.shared
            .store
            .blocking(move |store| {
                store.write(|tx| {
                    require_active(tx, &actor, Needs::Account, "set properties")?;
                    let mut table = tx.txn.open_table(DEAD_PROPS)?;
                    let mut props: Vec<DeadProp> = match table.get(key.as_str())? {
                        Some(v) => store::decode(v.value())?,
                        None => Vec::new(),
                    };
                    for (set, prop) in patch {
                        props.retain(|p| p.key() != prop.key());
                        if set {
                            props.push(prop);
                        }
                    }
                    let bytes = store::encode(&props)?;
                    if props.len() > MAX_DEAD_PROPS || bytes.len() > MAX_DEAD_PROP_BYTES {
                        return Err(AppError::TooLarge(format!(
                            "At most {MAX_DEAD_PROPS} properties of {} in all are kept per file or folder.",
                            crate::domain::human_size(MAX_DEAD_PROP_BYTES as u64)
                        )));
                    }
                    if props.is_empty() {
                        table.remove(key.as_str())?;
                    } else {
                        table.insert(key.as_str(), bytes.as_slice())?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Forgets the properties of `key` (a deleted file or folder), and
    /// with `moved_to`, gives them to another key (a moved folder).
    pub async fn move_dead_props(&self, key: String, moved_to: Option<String>) -> AppResult<()> {
        self.shared
            .store
            .blocking(move |store| {
                store.write(|tx| {
                    let mut table = tx.txn.open_table(DEAD_PROPS)?;
                    let old = table.remove(key.as_str())?.map(|v| v.value().to_vec());
                    if let (Some(old), Some(to)) = (old, moved_to) {
                        table.insert(to.as_str(), old.as_slice())?;
                    }
                    Ok(())
                })
            })
            .await
    }

    // ---------------------------------------------------- WebDAV lock tokens

    /// The WebDAV lock tokens of accounts that can sign in. A disabled
    /// (or removed) account's tokens hold nothing: it can no longer
    /// `UNLOCK` them and nobody else may, so a folder or a free name it
    /// had locked stayed closed to everyone, admins included, until the
    /// client's timeout (up to a week). Its Latch check-outs stay, as
    /// disabling leaves them (an admin overrides those); re-enabled, the
    /// tokens not yet timed out hold again, like those check-outs.
    pub async fn dav_locks(&self) -> AppResult<Vec<(String, DavLockRecord)>> {
        self.shared
            .store
            .blocking(|store| {
                store.read(|txn| {
                    let users = txn.open_table(USERS)?;
                    let mut active: std::collections::HashMap<String, bool> = Default::default();
                    let mut out = Vec::new();
                    for row in txn.open_table(DAV_LOCKS)?.iter()? {
                        let (k, v) = row?;
                        let rec: DavLockRecord = store::decode(v.value())?;
                        let can_sign_in = match active.get(&rec.username) {
                            Some(known) => *known,
                            None => {
                                let user = store::get_user(&users, &rec.username)?;
                                let ok = user.is_some_and(|u| !u.disabled);
                                active.insert(rec.username.clone(), ok);
                                ok
                            }
                        };
                        if can_sign_in {
                            out.push((k.value().to_string(), rec));
                        }
                    }
                    Ok(out)
                })
            })
            .await
    }

    /// Records a WebDAV lock token, and puts it on the check-out(s) it
    /// stands for in the same write: refused (409) when the caller no
    /// longer holds one of them (a cancel or an override came between).
    pub async fn put_dav_lock(&self, token: String, rec: DavLockRecord) -> AppResult<()> {
        self.shared
            .store
            .blocking(move |store| {
                store.write(|tx| {
                    let ids = (rec.file_id != 0).then_some(rec.file_id);
                    for id in ids.into_iter().chain(rec.files.iter().copied()) {
                        let mut file = get_file(&tx.txn.open_table(FILES)?, id)?
                            .ok_or_else(|| not_found(id))?;
                        match file.lock.as_mut() {
                            Some(lock) if lock.owner == rec.username => {
                                lock.dav_tokens.push(token.clone());
                            }
                            _ => {
                                return Err(AppError::Conflict(format!(
                                    "{} is no longer checked out to you: it was checked in, cancelled or overridden as it was being opened.",
                                    file.path
                                )));
                            }
                        }
                        put_file(&tx.txn, &file)?;
                    }
                    tx.txn
                        .open_table(DAV_LOCKS)?
                        .insert(token.as_str(), store::encode(&rec)?.as_slice())?;
                    Ok(())
                })
            })
            .await
    }

    /// Forgets a WebDAV lock token, on its check-outs too when they still
    /// carry it.
    pub async fn remove_dav_lock(&self, token: String) -> AppResult<Option<DavLockRecord>> {
        self.shared
            .store
            .blocking(move |store| {
                store.write(|tx| {
                    let rec: DavLockRecord = {
                        let mut tokens = tx.txn.open_table(DAV_LOCKS)?;
                        let Some(old) = tokens.remove(token.as_str())? else {
                            return Ok(None);
                        };
                        store::decode(old.value())?
                    };
                    let ids = (rec.file_id != 0).then_some(rec.file_id);
                    for id in ids.into_iter().chain(rec.files.iter().copied()) {
                        let Some(mut file) = get_file(&tx.txn.open_table(FILES)?, id)? else {
                            continue;
                        };
                        if let Some(lock) = file.lock.as_mut()
                            && lock.dav_tokens.contains(&token)
                        {
                            lock.dav_tokens.retain(|t| *t != token);
                            put_file(&tx.txn, &file)?;
                        }
                    }
                    Ok(Some(rec))
                })
            })
            .await
    }
}
