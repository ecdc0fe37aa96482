//! Telling people, as operations: asking a holder to release a file,
//! watching files and folders, reading and clearing one's inbox. The
//! notifications themselves are written by `inbox` in the transaction of
//! the change that causes them.

use crate::domain::{Folder, NudgeMessage};
use crate::error::{AppError, AppResult};
use crate::inbox::{self, MarkRead, NoticeKind, Notification, Watched};
use crate::store::{FILES, FileRecord, USERS, get_file, get_user, now};

use super::{Actor, Files, blocking, not_found};

/// What someone watches, split for answers.
#[derive(Debug, Clone, Default)]
pub struct Watches {
    pub files: Vec<u64>,
    pub folders: Vec<Folder>,
}

impl Watches {
    fn of(all: Vec<Watched>) -> Watches {
        let mut w = Watches::default();
        for item in all {
            match item {
                Watched::File(id) => w.files.push(id),
                Watched::Folder(f) => w.folders.push(f),
            }
        }
        w
    }

    /// Whether a change to `f` reaches the person watching these.
    pub fn covers(&self, f: &FileRecord) -> bool {
        self.files.contains(&f.id) || self.folders.iter().any(|d| d.contains(&f.path))
    }
}

/// Someone's inbox as shown: the newest notifications and the unread count.
pub struct InboxView {
    pub notifications: Vec<Notification>,
    pub unread: u64,
    /// The event sequence read before the inbox: a page showing it goes
    /// live from there (its bell).
    pub seq: u64,
}

/// The most notifications one answer lists (an inbox keeps `inbox::KEPT`).
pub const LISTED: usize = inbox::KEPT;

impl Files {
    /// Tells the holder of `id` that `actor` asks them to release it; at
    /// most once an hour per asker and file.
    pub async fn nudge(
        &self,
        actor: &Actor,
        id: u64,
        message: Option<NudgeMessage>,
    ) -> AppResult<()> {
        let store = self.shared.store.clone();
        let actor = actor.clone();
        blocking(move || {
            store.write(|tx| {
                let rec = get_file(&tx.txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                let Some(holder) = rec.locked_by().map(str::to_string) else {
                    return Err(AppError::Conflict(format!(
                        "{} is not checked out; there is nobody to ask.",
                        rec.path
                    )));
                };
                if holder == actor.username {
                    return Err(AppError::Conflict(format!(
                        "You hold {} yourself; check it in or cancel to release it.",
                        rec.path
                    )));
                }
                // Asking a disabled account would reach nobody.
                if get_user(&tx.txn.open_table(USERS)?, &holder)?.is_none_or(|u| u.disabled) {
                    return Err(AppError::Conflict(format!(
                        "{holder}'s account is disabled; ask an admin to override the check-out of {}.",
                        rec.path
                    )));
                }
                if let Err(wait) = inbox::note_nudge(&tx.txn, &actor.username, id, &holder, now())? {
                    let minutes = wait.div_ceil(60);
                    return Err(AppError::TooManyRequests {
                        message: format!(
                            "You asked {holder} about {} less than an hour ago; you can ask again in {minutes} min.",
                            rec.path
                        ),
                        retry_after_secs: wait,
                    });
                }
                let text = match &message {
                    Some(m) => format!(
                        "{} asks you to release {}: “{}”",
                        actor.display_name,
                        rec.path,
                        m.as_str()
                    ),
                    None => format!("{} asks you to release {}.", actor.display_name, rec.path),
                };
                let change = inbox::notify(
                    &tx.txn,
                    &holder,
                    NoticeKind::Nudged,
                    id,
                    &rec.path,
                    &actor.username,
                    text,
                )?;
                tx.tell(change);
                Ok(())
            })
        })
        .await
    }

    /// Starts (`on`) or stops watching a file. Returns the file.
    pub async fn watch(&self, actor: &Actor, id: u64, on: bool) -> AppResult<FileRecord> {
        let store = self.shared.store.clone();
        let who = actor.username.clone();
        blocking(move || {
            store.write(|tx| {
                let rec = get_file(&tx.txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                inbox::set_watch(&tx.txn, &who, &Watched::File(id), on)?;
                Ok(rec)
            })
        })
        .await
    }

    /// Starts (`on`) or stops watching a folder (which need not exist
    /// yet). Returns everything the person watches now.
    pub async fn watch_folder(
        &self,
        actor: &Actor,
        folder: Folder,
        on: bool,
    ) -> AppResult<Watches> {
        let store = self.shared.store.clone();
        let who = actor.username.clone();
        blocking(move || {
            store.write(|tx| {
                inbox::set_watch(&tx.txn, &who, &Watched::Folder(folder), on)?;
                Ok(())
            })?;
            store.read(|txn| Ok(Watches::of(inbox::watches_of(txn, &who)?)))
        })
        .await
    }

    /// Whether `username` hears of changes to `f` (watching it or a folder
    /// it is in): a few point reads, not the whole watch list.
    pub async fn watching(&self, username: &str, f: &FileRecord) -> AppResult<bool> {
        let store = self.shared.store.clone();
        let (who, id, path) = (username.to_string(), f.id, f.path.clone());
        blocking(move || store.read(|txn| inbox::is_watching(txn, &who, id, &path))).await
    }

    /// Everything `username` watches.
    pub async fn watches(&self, username: &str) -> AppResult<Watches> {
        let store = self.shared.store.clone();
        let who = username.to_string();
        blocking(move || store.read(|txn| Ok(Watches::of(inbox::watches_of(txn, &who)?)))).await
    }

    /// `username`'s newest notifications (or only the unread ones).
    pub async fn inbox(&self, username: &str, unread_only: bool) -> AppResult<InboxView> {
        let store = self.shared.store.clone();
        let who = username.to_string();
        blocking(move || {
            let seq = store.last_seq()?;
            store.read(|txn| {
                Ok(InboxView {
                    notifications: inbox::list(txn, &who, unread_only, LISTED)?,
                    unread: inbox::unread(txn, &who)?,
                    seq,
                })
            })
        })
        .await
    }

    /// Marks notifications read; returns how many are still unread.
    pub async fn mark_read(&self, username: &str, which: MarkRead) -> AppResult<u64> {
        let store = self.shared.store.clone();
        let who = username.to_string();
        blocking(move || {
            store.write(|tx| {
                let change = inbox::mark_read(&tx.txn, &who, &which)?;
                let unread = change.unread;
                tx.tell(change);
                Ok(unread)
            })
        })
        .await
    }
}
