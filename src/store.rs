//! The redb database: table definitions, the records kept in them, and the
//! write path that assigns event sequence numbers in the same transaction as
//! the change they record.
//!
//! Invariants:
//! - every state change appends its event inside the transaction that makes it;
//! - committed events leave the store in sequence order (`commit_order`), so
//!   live clients never see a later state overtaken by an earlier one; a
//!   card refreshed without an event (`Store::refresh`) takes its place
//!   among them the same way.
//!
//! Long because the records, the write path and what leaves for the hub
//! share the ordering above; split, each part would have to restate it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::sync::mpsc;

use crate::domain::{EmailAddress, RepoPath, Revision, Role};
use crate::error::{AppError, AppResult};
use crate::inbox::InboxChange;
use crate::vault::{BlobId, CommitId};

pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// SHA-256 of the session token → session.
pub const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
pub const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("api_tokens");
/// SHA-256 of the API token → token id.
pub const TOKEN_HASHES: TableDefinition<&[u8], u64> = TableDefinition::new("api_token_hashes");
pub const FILES: TableDefinition<u64, &[u8]> = TableDefinition::new("files");
pub const PATHS: TableDefinition<&str, u64> = TableDefinition::new("paths");
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// (file id, the version's number for that file, from 1) → one version as
/// history shows it (schema 5; see `files::versions`).
pub const VERSIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("versions");
/// `FILES_GEN` value → the id of the file that change touched: lets a
/// reader of the whole list catch up by re-reading only what changed
/// (`Store::files_now`). Only the newest [`FILES_LOG_KEPT`] are kept; a
/// reader further behind reads the whole list again.
pub const FILES_LOG: TableDefinition<u64, u64> = TableDefinition::new("files_log");
/// A folder made empty through the network drive (`MKCOL`) → who made it
/// and when (schema 6), kept until a file lands in it or it is removed.
pub const KEPT_FOLDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("kept_folders");
/// A WebDAV lock token → the check-out it stands for (schema 6), so a
/// client's `UNLOCK` after a restart still finds its check-out.
pub const DAV_LOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("dav_locks");
/// `file:<id>` or `folder:<path>` → the properties a WebDAV client set on
/// it (`PROPPATCH`, schema 6): a file's follow it by id through moves.
pub const DEAD_PROPS: TableDefinition<&str, &[u8]> = TableDefinition::new("dead_props");

const NEXT_FILE_ID: &str = "next_file_id";
const NEXT_TOKEN_ID: &str = "next_token_id";
const NEXT_SEQ: &str = "next_seq";
/// Counts changes to the file records, so a reader of the whole list knows
/// whether the one it read before is still true (`Store::files_now`).
const FILES_GEN: &str = "files_gen";
/// Changes kept in `FILES_LOG`, and how often the older ones are trimmed.
const FILES_LOG_KEPT: u64 = 4096;
const FILES_LOG_TRIM_EVERY: u64 = 512;
/// The `main` commit the file records reflect; reconciliation starts after it.
pub const RECORDED_HEAD: &str = "recorded_head";

/// redb's page cache. Its default (1 GiB) lets a server that once read a
/// big vault's records and event log whole (a `/api/files`, a long
/// activity page) keep all of it resident; the hot pages of 100,000 files
/// fit in this, and Latch keeps the decoded list itself (`files_now`).
const DB_CACHE: usize = 48 << 20;

/// The event log keeps at least this many of the newest events.
pub const EVENT_RETENTION: u64 = 10_000;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `HH:MM UTC` of a unix second, for sentences and cards.
pub fn clock_utc(at: i64) -> String {
    let secs = at.rem_euclid(86_400);
    format!("{:02}:{:02} UTC", secs / 3600, (secs % 3600) / 60)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    /// Mail settings; left out when unset, so older records store as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "crate::mail::Choices::is_default")]
    pub mail: crate::mail::Choices,
    /// How the dashboard lists files for them; left out while the default.
    #[serde(default, skip_serializing_if = "ListView::is_default")]
    pub view: ListView,
}

/// The dashboard's two ways of showing the same cards: a grid of cards, or
/// one line per file (a CSS layout of the same markup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListView {
    #[default]
    Cards,
    Table,
}

impl ListView {
    pub fn parse(raw: &str) -> Option<ListView> {
        match raw {
            "cards" => Some(ListView::Cards),
            "table" => Some(ListView::Table),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListView::Cards => "cards",
            ListView::Table => "table",
        }
    }

    fn is_default(&self) -> bool {
        *self == ListView::Cards
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub username: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub hash: Vec<u8>,
    pub created_at: i64,
    pub last_used: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    pub owner: String,
    pub locked_at: i64,
    pub comment: Option<String>,
    /// When the holder was told the lock is about to expire (with
    /// `--lock-expiry`), so they are told once. Left out when unset, so a
    /// record without one is stored as earlier versions wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned_at: Option<i64>,
    /// The holder's newest save through the network drive, not yet a
    /// version (schema 6; see `files::drive`). It belongs to this lock:
    /// whatever ends the lock drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<Draft>,
    /// The WebDAV lock tokens that stand for this check-out (schema 6).
    /// Kept on the lock so that whatever ends it ends them in the same
    /// write: a token must never outlive its check-out and come to stand
    /// for the next one the same person makes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dav_tokens: Vec<String>,
}

/// A save kept beside the vault (`<data>/drafts/<file>`), not committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// Its file's name in the drafts folder (`draft-<id>-<random>`).
    pub file: String,
    pub size: u64,
    pub saved_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub id: u64,
    pub path: RepoPath,
    pub description: String,
    pub revision: Revision,
    pub created_by: String,
    pub created_at: i64,
    pub size: u64,
    /// The file's newest commit: the one that wrote the current version,
    /// or moved it since.
    pub head: CommitId,
    pub blob: BlobId,
    pub modified_at: i64,
    pub modified_by: String,
    pub lock: Option<LockRecord>,
    /// Who waits for the file, first in line first (schema 2). Left out
    /// when empty, so a record without one is stored as schema 1 wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<String>,
    /// For whom the file is held after a lock ended, and until when (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<Reservation>,
}

/// A file held for the first in line after a lock ended: only they may
/// check it out until `until` (unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub username: String,
    pub until: i64,
}

impl FileRecord {
    pub fn locked_by(&self) -> Option<&str> {
        self.lock.as_ref().map(|l| l.owner.as_str())
    }

    /// For whom the file is reserved, if a reservation still runs at `at`.
    pub fn reserved_for(&self, at: i64) -> Option<&Reservation> {
        self.reserved.as_ref().filter(|r| r.until > at)
    }

    /// Whether `username` waits in the file's queue.
    pub fn is_queued(&self, username: &str) -> bool {
        self.queue.iter().any(|q| q == username)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Locked,
    Unlocked,
    CheckedIn,
    Overridden,
    Deleted,
    /// Someone joined the wait-list.
    Queued,
    /// Someone left the wait-list.
    Dequeued,
    /// A lock ended (or a reservation passed on) and the file is held for
    /// the first in line.
    Reserved,
    /// A reservation ended with nobody waiting: the file is available.
    Released,
    /// A lock held longer than `--lock-expiry` was released by Latch.
    Expired,
    /// The file got another path (its note is the path it had).
    Moved,
    /// The file's description changed.
    Edited,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Locked => "locked",
            EventKind::Unlocked => "unlocked",
            EventKind::CheckedIn => "checked_in",
            EventKind::Overridden => "overridden",
            EventKind::Deleted => "deleted",
            EventKind::Queued => "queued",
            EventKind::Dequeued => "dequeued",
            EventKind::Reserved => "reserved",
            EventKind::Released => "released",
            EventKind::Expired => "expired",
            EventKind::Moved => "moved",
            EventKind::Edited => "edited",
        }
    }
}

/// One recorded change: the audit trail and the replay log for live clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub kind: EventKind,
    pub at: i64,
    pub actor: String,
    pub file_id: u64,
    pub path: RepoPath,
    /// Check-out comment, or check-in message.
    pub note: Option<String>,
    pub revision: Option<Revision>,
    /// For `overridden`: whose lock was broken.
    pub previous_holder: Option<String>,
    /// The file as it is after the change; `None` once deleted.
    pub file: Option<FileRecord>,
    /// Whom it notified (written in its transaction, never stored in the
    /// log): for their live connections.
    #[serde(skip)]
    pub notified: Vec<InboxChange>,
    /// One of several events of one change (a change set) that live
    /// clients get as one message with one toast; never stored (a replay
    /// sends each event on its own).
    #[serde(skip)]
    pub grouped: bool,
}

/// An event before the store numbers it.
pub struct EventDraft {
    pub kind: EventKind,
    pub actor: String,
    pub note: Option<String>,
    pub previous_holder: Option<String>,
    pub file: FileSnapshot,
}

pub enum FileSnapshot {
    Present(Box<FileRecord>),
    Deleted { id: u64, path: RepoPath },
}

/// A write transaction that numbers the events it records.
pub struct Tx {
    pub txn: WriteTransaction,
    events: Vec<Arc<Event>>,
    /// Inbox changes made without an event (an ask to release, a warning,
    /// notifications marked read), for live connections after the commit.
    inbox: Vec<InboxChange>,
    /// Set by a change of several files: its events leave as one.
    together: bool,
}

/// What a commit hands the live hub, in commit order.
#[derive(Debug, Clone)]
pub enum Committed {
    Event(Arc<Event>),
    /// The events of one change of several files (a change set), in order:
    /// live clients see them as one message.
    Together(Vec<Arc<Event>>),
    Inbox(InboxChange),
    /// Files whose cards changed with time alone (a lock turned stale), as
    /// they were after event `as_of`: re-rendered, never recorded.
    Refresh {
        as_of: u64,
        files: Vec<FileRecord>,
    },
}

impl Tx {
    pub fn record(&mut self, draft: EventDraft) -> AppResult<Arc<Event>> {
        let seq = next_counter(&self.txn, NEXT_SEQ)?;
        let (file_id, path, file) = match draft.file {
            FileSnapshot::Present(rec) => (rec.id, rec.path.clone(), Some(*rec)),
            FileSnapshot::Deleted { id, path } => (id, path, None),
        };
        let event = Event {
            seq,
            kind: draft.kind,
            at: now(),
            actor: draft.actor,
            file_id,
            revision: file.as_ref().map(|f| f.revision),
            path,
            note: draft.note,
            previous_holder: draft.previous_holder,
            file,
            notified: Vec::new(),
            grouped: self.together,
        };
        let notified = crate::inbox::on_event(&self.txn, &event)?;
        let event = Event { notified, ..event };
        {
            let mut events = self.txn.open_table(EVENTS)?;
            events.insert(seq, serde_json::to_vec(&event)?.as_slice())?;
            // Trim in batches so the log stays bounded without work on every write.
            if seq % 1000 == 0 && seq > EVENT_RETENTION + 1000 {
                let cutoff = seq - EVENT_RETENTION;
                events.retain_in(..cutoff, |_, _| false)?;
            }
        }
        let event = Arc::new(event);
        self.events.push(event.clone());
        Ok(event)
    }

    /// Hands an inbox change to live connections once this commits.
    pub fn tell(&mut self, change: InboxChange) {
        self.inbox.push(change);
    }

    /// Marks this transaction as one change of several files: the events
    /// it records from now on reach live clients as one message.
    pub fn together(&mut self) {
        self.together = true;
    }
}

/// Hands out the next value of a named counter (starting at 1).
pub fn next_counter(txn: &WriteTransaction, name: &str) -> AppResult<u64> {
    let mut counters = txn.open_table(COUNTERS)?;
    let next = counters.get(name)?.map(|v| v.value()).unwrap_or(1);
    counters.insert(name, next.checked_add(1).ok_or_else(|| exhausted(name))?)?;
    Ok(next)
}

/// Makes sure a counter will hand out values above `at_least`.
pub fn raise_counter(txn: &WriteTransaction, name: &str, at_least: u64) -> AppResult<()> {
    let mut counters = txn.open_table(COUNTERS)?;
    let next = counters.get(name)?.map(|v| v.value()).unwrap_or(1);
    if next <= at_least {
        // `at_least` may come from a commit trailer anyone with the
        // repository could have written.
        counters.insert(
            name,
            at_least.checked_add(1).ok_or_else(|| exhausted(name))?,
        )?;
    }
    Ok(())
}

fn exhausted(name: &str) -> AppError {
    AppError::Internal(format!("the counter {name} has reached its largest value"))
}

pub fn next_file_id(txn: &WriteTransaction) -> AppResult<u64> {
    next_counter(txn, NEXT_FILE_ID)
}

pub fn reserve_file_id(txn: &WriteTransaction, id: u64) -> AppResult<()> {
    raise_counter(txn, NEXT_FILE_ID, id)
}

pub fn next_token_id(txn: &WriteTransaction) -> AppResult<u64> {
    next_counter(txn, NEXT_TOKEN_ID)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> AppResult<T> {
    Ok(serde_json::from_slice(bytes)?)
}

pub fn encode<T: Serialize>(value: &T) -> AppResult<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

pub fn get_file(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> AppResult<Option<FileRecord>> {
    table.get(id)?.map(|v| decode(v.value())).transpose()
}

pub fn get_user(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> AppResult<Option<UserRecord>> {
    table.get(name)?.map(|v| decode(v.value())).transpose()
}

/// Marks file `id`'s record changed in `txn`; every write to `FILES` calls
/// it (`put_file` does), or `Store::files_now` would answer an older list.
pub fn files_changed(txn: &WriteTransaction, id: u64) -> AppResult<()> {
    let generation = next_counter(txn, FILES_GEN)?;
    let mut log = txn.open_table(FILES_LOG)?;
    log.insert(generation, id)?;
    if generation % FILES_LOG_TRIM_EVERY == 0 {
        let cut = generation.saturating_sub(FILES_LOG_KEPT);
        log.retain_in(..cut, |_, _| false)?;
    }
    Ok(())
}

pub fn put_file(txn: &WriteTransaction, rec: &FileRecord) -> AppResult<()> {
    files_changed(txn, rec.id)?;
    txn.open_table(FILES)?
        .insert(rec.id, encode(rec)?.as_slice())?;
    txn.open_table(PATHS)?.insert(rec.path.as_str(), rec.id)?;
    Ok(())
}

/// Brings `list` (in path order) up to date: `changed` are the ids
/// written since, `fresh` their records now (an id without one was
/// deleted). A record still at its path is replaced where it stands (a
/// check-out, a check-in: the common case, no shifting); the rest are
/// taken out in one pass and put back in order.
fn patch_in_path_order(
    list: &mut Vec<FileRecord>,
    mut changed: std::collections::BTreeSet<u64>,
    fresh: Vec<FileRecord>,
) {
    let mut moved = Vec::new();
    for rec in fresh {
        match list.binary_search_by(|f| f.path.cmp(&rec.path)) {
            Ok(at) if list[at].id == rec.id => {
                changed.remove(&rec.id);
                list[at] = rec;
            }
            _ => moved.push(rec),
        }
    }
    if !changed.is_empty() {
        list.retain(|f| !changed.contains(&f.id));
    }
    if moved.len() <= 16 {
        for rec in moved {
            let at = list.partition_point(|f| f.path < rec.path);
            list.insert(at, rec);
        }
    } else {
        moved.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        let old = std::mem::take(list);
        list.reserve(old.len() + moved.len());
        let mut old = old.into_iter().peekable();
        let mut moved = moved.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), moved.peek()) {
                (Some(a), Some(b)) => a.path < b.path,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            list.extend(if take_old { old.next() } else { moved.next() });
        }
    }
}

pub fn put_user(txn: &WriteTransaction, rec: &UserRecord) -> AppResult<()> {
    txn.open_table(USERS)?
        .insert(rec.username.as_str(), encode(rec)?.as_slice())?;
    Ok(())
}

pub fn meta_get(
    table: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> AppResult<Option<String>> {
    Ok(table.get(key)?.map(|v| v.value().to_string()))
}

/// Cheap-to-clone handle on the database.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    db: Database,
    /// Held from commit until the commit's events are handed on, so events
    /// leave in the order of their sequence numbers.
    commit_order: Mutex<()>,
    /// Committed events, in order, for the live hub. Unbounded so a writer
    /// never waits on readers; the hub drains it continuously.
    sink: Mutex<Option<mpsc::UnboundedSender<Committed>>>,
    /// Set when this server sends mail: wakes the mailer (see `mail`).
    mail: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    /// Every file record as of a `FILES_GEN`: the dashboard reads the
    /// whole list on each request, and decoding 100,000 records each time
    /// would cost it hundreds of milliseconds.
    files: Mutex<Option<(u64, Arc<Vec<FileRecord>>)>>,
    /// How often `files` was read whole rather than caught up.
    whole_list_reads: std::sync::atomic::AtomicU64,
}

pub enum OpenError {
    /// Another process (usually a running server) holds the database.
    InUse,
    Other(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::InUse => f.write_str("the database is held by another process (is a Latch server running on this data directory?)"),
            OpenError::Other(m) => f.write_str(m),
        }
    }
}

impl Store {
    /// Opens the database, bringing an older one up to this Latch's schema.
    pub fn open(path: &Path) -> Result<Store, OpenError> {
        Self::open_with(path, true)
    }

    /// Opens the database to copy it as it is: an older one is neither
    /// migrated nor given new tables (a backup never changes its source),
    /// a newer one is refused.
    pub fn open_to_copy(path: &Path) -> Result<Store, OpenError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, migrate: bool) -> Result<Store, OpenError> {
        let db = Database::builder()
            .set_cache_size(DB_CACHE)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse,
                redb::DatabaseError::Storage(redb::StorageError::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock =>
                {
                    OpenError::InUse
                }
                other => OpenError::Other(format!("cannot open {}: {other}", path.display())),
            })?;
        // Before any table is touched, so a newer Latch's database is left as it was.
        let refused =
            |e: crate::schema::SchemaError| OpenError::Other(format!("{}: {e}", path.display()));
        if migrate {
            crate::schema::migrate(&db, crate::schema::MIGRATIONS, crate::schema::CURRENT)
                .map_err(refused)?;
        } else if let Some(found) = crate::schema::version(&db).map_err(refused)?
            && found > crate::schema::CURRENT
        {
            return Err(refused(crate::schema::SchemaError::Newer {
                found,
                supported: crate::schema::CURRENT,
            }));
        }
        let store = Store {
            shared: Arc::new(Shared {
                db,
                commit_order: Mutex::new(()),
                sink: Mutex::new(None),
                mail: std::sync::OnceLock::new(),
                files: Mutex::new(None),
                whole_list_reads: Default::default(),
            }),
        };
        if migrate {
            store
                .create_tables()
                .map_err(|e| OpenError::Other(e.to_string()))?;
        }
        Ok(store)
    }

    fn create_tables(&self) -> AppResult<()> {
        let txn = self.shared.db.begin_write()?;
        txn.open_table(USERS)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(TOKENS)?;
        txn.open_table(TOKEN_HASHES)?;
        txn.open_table(FILES)?;
        txn.open_table(PATHS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(COUNTERS)?;
        txn.open_table(META)?;
        txn.open_table(VERSIONS)?;
        txn.open_table(FILES_LOG)?;
        txn.open_table(KEPT_FOLDERS)?;
        txn.open_table(DAV_LOCKS)?;
        txn.open_table(DEAD_PROPS)?;
        crate::inbox::create_tables(&txn)?;
        txn.commit()?;
        Ok(())
    }

    /// Writes queue the mail their notifications owe from now on; returns the mailer's wake.
    pub fn send_mail(&self) -> Arc<tokio::sync::Notify> {
        self.shared.mail.get_or_init(Default::default).clone()
    }

    pub fn set_event_sink(&self, sink: mpsc::UnboundedSender<Committed>) {
        if let Ok(mut slot) = self.shared.sink.lock() {
            *slot = Some(sink);
        }
    }

    /// Runs `f` in one durable write transaction. Nothing is kept if it fails;
    /// the events it recorded are handed to the live hub only after commit.
    /// Blocking: call from `spawn_blocking`.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx) -> AppResult<T>) -> AppResult<T> {
        self.write_with(Durability::Immediate, f)
    }

    /// For bookkeeping a crash may lose (a session's last-seen time).
    pub fn write_lazily<T>(&self, f: impl FnOnce(&mut Tx) -> AppResult<T>) -> AppResult<T> {
        self.write_with(Durability::None, f)
    }

    fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&mut Tx) -> AppResult<T>,
    ) -> AppResult<T> {
        let mut txn = self.shared.db.begin_write()?;
        txn.set_durability(durability)
            .map_err(|e| AppError::internal("database durability", e))?;
        let mut tx = Tx {
            txn,
            events: Vec::new(),
            inbox: Vec::new(),
            together: false,
        };
        let value = f(&mut tx)?;
        let Tx {
            txn,
            events,
            inbox,
            together,
        } = tx;
        // The mail a notification owes is queued with it (see `mail`).
        let notified = events.iter().flat_map(|e| e.notified.iter()).chain(&inbox);
        let mailed = self.shared.mail.get().is_some() && crate::mail::enqueue(&txn, notified)? > 0;
        // Poisoning only means another writer panicked; ordering still holds.
        let _order = self
            .shared
            .commit_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        txn.commit()?;
        if mailed && let Some(wake) = self.shared.mail.get() {
            wake.notify_one();
        }
        if !(events.is_empty() && inbox.is_empty())
            && let Ok(sink) = self.shared.sink.lock()
            && let Some(sink) = sink.as_ref()
        {
            if together && events.len() > 1 {
                let _ = sink.send(Committed::Together(events));
            } else {
                for event in events {
                    let _ = sink.send(Committed::Event(event));
                }
            }
            for change in inbox {
                let _ = sink.send(Committed::Inbox(change));
            }
        }
        Ok(value)
    }

    /// Hands the live hub the files `pick` chooses, as they are now, to
    /// re-render without an event (their cards changed with time alone).
    /// Read between commits, so the refresh sits in its place among the
    /// events: none it does not reflect comes before it, none it already
    /// reflects after. Returns how many files it handed on. Blocking.
    pub fn refresh(&self, pick: impl Fn(&FileRecord) -> bool) -> AppResult<usize> {
        let _order = self
            .shared
            .commit_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (as_of, files) = self.read(|txn| {
            let as_of = txn
                .open_table(COUNTERS)?
                .get(NEXT_SEQ)?
                .map(|v| v.value())
                .unwrap_or(1)
                - 1;
            let table = txn.open_table(FILES)?;
            let mut files = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                let rec: FileRecord = decode(value.value())?;
                if pick(&rec) {
                    files.push(rec);
                }
            }
            Ok((as_of, files))
        })?;
        let count = files.len();
        if count > 0
            && let Ok(sink) = self.shared.sink.lock()
            && let Some(sink) = sink.as_ref()
        {
            let _ = sink.send(Committed::Refresh { as_of, files });
        }
        Ok(count)
    }

    /// Runs blocking store calls off the async runtime's workers: redb
    /// reads wait on the disk, and a handler must never hold a worker.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await?
    }

    /// Blocking: call from `spawn_blocking` on hot paths.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> AppResult<T>) -> AppResult<T> {
        let txn = self.shared.db.begin_read()?;
        f(&txn)
    }

    pub fn file(&self, id: u64) -> AppResult<Option<FileRecord>> {
        self.read(|txn| get_file(&txn.open_table(FILES)?, id))
    }

    pub fn all_files(&self) -> AppResult<Vec<FileRecord>> {
        self.read(|txn| {
            let table = txn.open_table(FILES)?;
            let mut files = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                files.push(decode(value.value())?);
            }
            Ok(files)
        })
    }

    /// Runs `change` in one write on the file records `due` picks at the
    /// write's moment (passed as `at`), or writes nothing and answers
    /// `T::default()` when the kept list shows none due: a start or a clock
    /// tick with nothing due then writes nothing and, with 100,000 files,
    /// decodes nothing. Blocking.
    pub fn write_due<T: Default>(
        &self,
        due: impl Fn(&FileRecord, i64) -> bool,
        change: impl FnOnce(&mut Tx, Vec<FileRecord>, i64) -> AppResult<T>,
    ) -> AppResult<T> {
        let at = now();
        if !self.files_now()?.iter().any(|f| due(f, at)) {
            return Ok(T::default());
        }
        self.write(|tx| {
            let at = now();
            let mut picked = Vec::new();
            {
                let files = tx.txn.open_table(FILES)?;
                for row in files.iter()? {
                    let (_, value) = row?;
                    let rec: FileRecord = decode(value.value())?;
                    if due(&rec, at) {
                        picked.push(rec);
                    }
                }
            }
            change(tx, picked, at)
        })
    }

    /// Every file record, in path order, as of one moment. Kept between
    /// calls: when writes changed records since the last reading, only
    /// those are read again (from `FILES_LOG`), so a change costs the next
    /// reader its own records, not the whole list; and the dashboard's
    /// first page in name order is its first matching records, with no
    /// sort of 100,000 paths. Blocking.
    pub fn files_now(&self) -> AppResult<Arc<Vec<FileRecord>>> {
        let txn = self.shared.db.begin_read()?;
        // The counter holds the next generation to hand out: changes since
        // a reading at `seen` are those logged at `seen..generation`.
        let generation = txn
            .open_table(COUNTERS)?
            .get(FILES_GEN)?
            .map_or(1, |v| v.value());
        let mut cache = self.shared.files.lock().unwrap_or_else(|p| p.into_inner());
        let files = match cache.take() {
            Some((seen, files)) if seen == generation => files,
            // A reader that began after this one updated it first: a
            // newer list is as good (callers read it after their moment).
            Some((seen, files)) if seen > generation => {
                *cache = Some((seen, files.clone()));
                return Ok(files);
            }
            Some((seen, mut files)) => match Self::changed_since(&txn, seen, generation)? {
                Some(ids) => {
                    let table = txn.open_table(FILES)?;
                    let mut fresh = Vec::with_capacity(ids.len());
                    for &id in &ids {
                        fresh.extend(get_file(&table, id)?);
                    }
                    patch_in_path_order(Arc::make_mut(&mut files), ids, fresh);
                    files
                }
                None => Arc::new(self.read_all_files(&txn)?),
            },
            None => Arc::new(self.read_all_files(&txn)?),
        };
        *cache = Some((generation, files.clone()));
        Ok(files)
    }

    /// How many times the kept list was read whole (at start, or when the
    /// change log no longer reached back far enough).
    pub fn whole_list_reads(&self) -> u64 {
        self.shared
            .whole_list_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The ids changed at generations `seen..now`, each once, if the log
    /// still holds them all. A change is logged under the counter value it
    /// took (`next_counter` hands out the value, then stores the one after).
    fn changed_since(
        txn: &ReadTransaction,
        seen: u64,
        now: u64,
    ) -> AppResult<Option<std::collections::BTreeSet<u64>>> {
        let log = match txn.open_table(FILES_LOG) {
            Ok(log) => log,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut ids = std::collections::BTreeSet::new();
        let mut expected = seen;
        for row in log.range(seen..now)? {
            let (generation, id) = row?;
            if generation.value() != expected {
                return Ok(None);
            }
            expected += 1;
            ids.insert(id.value());
        }
        Ok((expected == now).then_some(ids))
    }

    /// Every record, in path order.
    fn read_all_files(&self, txn: &ReadTransaction) -> AppResult<Vec<FileRecord>> {
        self.shared
            .whole_list_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let table = txn.open_table(FILES)?;
        let mut files: Vec<FileRecord> = Vec::new();
        for row in table.iter()? {
            files.push(decode(row?.1.value())?);
        }
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    pub fn user(&self, name: &str) -> AppResult<Option<UserRecord>> {
        self.read(|txn| get_user(&txn.open_table(USERS)?, name))
    }

    pub fn all_users(&self) -> AppResult<Vec<UserRecord>> {
        self.read(|txn| {
            let table = txn.open_table(USERS)?;
            let mut users = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                users.push(decode(value.value())?);
            }
            Ok(users)
        })
    }

    pub fn user_count(&self) -> AppResult<u64> {
        use redb::ReadableTableMetadata;
        self.read(|txn| Ok(txn.open_table(USERS)?.len()?))
    }

    /// The newest sequence number handed out, 0 when none.
    pub fn last_seq(&self) -> AppResult<u64> {
        self.read(|txn| {
            let counters = txn.open_table(COUNTERS)?;
            Ok(counters.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1) - 1)
        })
    }

    /// Events with a sequence above `after`, oldest first, at most `limit`.
    /// Also says whether the log still reaches back to `after + 1`.
    pub fn events_after(&self, after: u64, limit: usize) -> AppResult<(Vec<Event>, bool)> {
        // `after` is a client's word: past the last sequence there is nothing.
        let Some(first) = after.checked_add(1) else {
            return Ok((Vec::new(), true));
        };
        self.read(|txn| {
            let table = txn.open_table(EVENTS)?;
            let oldest = table.first()?.map(|(k, _)| k.value());
            let complete = match oldest {
                Some(oldest) => oldest <= first,
                None => true,
            };
            let mut events = Vec::new();
            for row in table.range(first..)?.take(limit) {
                let (_, value) = row?;
                events.push(decode(value.value())?);
            }
            Ok((events, complete))
        })
    }

    /// The newest events, newest first.
    pub fn recent_events(&self, limit: usize) -> AppResult<Vec<Event>> {
        self.read(|txn| {
            let table = txn.open_table(EVENTS)?;
            let mut events = Vec::new();
            for row in table.iter()?.rev().take(limit) {
                let (_, value) = row?;
                events.push(decode(value.value())?);
            }
            Ok(events)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Event, FileRecord, decode, encode};

    /// A record and an event exactly as Latch 0.1.0 wrote them (field order,
    /// plain-string paths, hex ids). The path `parts/CON.txt` is one the
    /// edge refuses today, so reading must trust what was stored.
    const FILE: &str = r#"{"id":7,"path":"parts/CON.txt","description":"Main housing","revision":"1.3","created_by":"alice","created_at":1700000000,"size":5,"head":"4b825dc642cb6eb9a060e54bf8d69288fbee4904","blob":"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391","modified_at":1700000100,"modified_by":"bob","lock":{"owner":"bob","locked_at":1700000200,"comment":"fixing the post"}}"#;

    #[test]
    fn a_stored_file_record_reads_and_writes_back_byte_for_byte() {
        let rec: FileRecord = decode(FILE.as_bytes()).unwrap();
        assert_eq!(encode(&rec).unwrap(), FILE.as_bytes());
    }

    #[test]
    fn a_warned_lock_reads_and_writes_back_byte_for_byte() {
        let warned = FILE.replace(
            r#""comment":"fixing the post"}"#,
            r#""comment":"fixing the post","warned_at":1700000300}"#,
        );
        let rec: FileRecord = decode(warned.as_bytes()).unwrap();
        assert_eq!(rec.lock.as_ref().unwrap().warned_at, Some(1700000300));
        assert_eq!(encode(&rec).unwrap(), warned.as_bytes());
    }

    #[test]
    fn stored_events_read_and_write_back_byte_for_byte() {
        let present = format!(
            r#"{{"seq":12,"kind":"checked_in","at":1700000300,"actor":"bob","file_id":7,"path":"parts/CON.txt","note":"Fix","revision":"1.3","previous_holder":null,"file":{FILE}}}"#
        );
        let deleted = r#"{"seq":13,"kind":"deleted","at":1700000400,"actor":"admin","file_id":7,"path":"parts/CON.txt","note":null,"revision":null,"previous_holder":null,"file":null}"#;
        for stored in [present.as_str(), deleted] {
            let event: Event = decode(stored.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(encode(&event).unwrap()).unwrap(), stored);
        }
    }
}

#[cfg(test)]
mod list_cache {
    use proptest::prelude::*;

    use super::{FILES, FileRecord, Store, decode, files_changed, put_file};

    fn record(id: u64, n: u32) -> FileRecord {
        let json = format!(
            r#"{{"id":{id},"path":"p{}/f{id}.nc","description":"d{n}","revision":"1.{n}","created_by":"a","created_at":1,"size":{n},"head":"4b825dc642cb6eb9a060e54bf8d69288fbee4904","blob":"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391","modified_at":{n},"modified_by":"b","lock":null}}"#,
            n % 3
        );
        decode(json.as_bytes()).unwrap()
    }

    /// A new store in a temporary directory (kept alive with it).
    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let Ok(store) = Store::open(&dir.path().join("t.redb")) else {
            panic!("open")
        };
        (dir, store)
    }

    /// The kept list and the table in path order, each record as JSON.
    fn kept_and_table(store: &Store) -> (Vec<String>, Vec<String>) {
        let kept = store
            .files_now()
            .unwrap()
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        let mut table = store.all_files().unwrap();
        table.sort_by(|a, b| a.path.cmp(&b.path));
        (
            kept,
            table
                .iter()
                .map(|f| serde_json::to_string(f).unwrap())
                .collect(),
        )
    }

    /// A write: put (a new, changed or moved record) or remove, by id.
    fn change() -> impl Strategy<Value = (u64, Option<u32>)> {
        (1u64..=40, proptest::option::weighted(0.8, 0u32..50))
    }

    /// A reader one change behind catches up from the log: the ids it
    /// names, not a reading of the whole table (which is what the kept
    /// list exists to avoid).
    #[test]
    fn a_reader_behind_catches_up_from_the_log() {
        let (_dir, store) = temp_store();
        for id in 1..=3 {
            store.write(|tx| put_file(&tx.txn, &record(id, 1))).unwrap();
        }
        let generation = |store: &Store| {
            store
                .read(|txn| {
                    Ok(txn
                        .open_table(super::COUNTERS)?
                        .get(super::FILES_GEN)?
                        .map_or(0, |v| v.value()))
                })
                .unwrap()
        };
        let seen = generation(&store);
        store.write(|tx| put_file(&tx.txn, &record(2, 2))).unwrap();
        store.write(|tx| put_file(&tx.txn, &record(3, 2))).unwrap();
        let now = generation(&store);
        let txn = redb::ReadableDatabase::begin_read(&store.shared.db).unwrap();
        let ids = Store::changed_since(&txn, seen, now).unwrap();
        assert_eq!(ids, Some([2, 3].into_iter().collect()));
        assert_eq!(
            Store::changed_since(&txn, now, now).unwrap(),
            Some(Default::default())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Names swapped, moved to names that sort oddly byte-wise
        /// (`a-b` < `a.b` < `a/b` < `a0`, case and accents), deleted and
        /// made again, several in one write: the kept list, caught up from
        /// the log, is the table in path order, each path once.
        #[test]
        fn the_kept_list_follows_swaps_and_odd_names(
            rounds in proptest::collection::vec(proptest::collection::vec((0u8..4, 1u64..=12, 1u64..=12, 0usize..14), 1..8), 1..16),
        ) {
            const NAMES: [&str; 14] = ["a-b", "a.b", "a/b", "a0", "A/b", "a/b/c", "a/b-c", "é", "e\u{301}", "Z", "a b", "ab", "a", "b/a"];
            let (_dir, store) = temp_store();
            let mut paths: std::collections::BTreeMap<u64, usize> = Default::default();
            let mut version = 0u32;
            let put = |tx: &mut super::Tx, id: u64, name: usize, n: u32| {
                let mut rec = record(id, n);
                rec.path = crate::domain::RepoPath::parse(NAMES[name]).unwrap();
                put_file(&tx.txn, &rec)
            };
            for writes in &rounds {
                store.write(|tx| {
                    for &(op, a, b, name) in writes {
                        version += 1;
                        let taken = paths.values().any(|&p| p == name);
                        match (op, paths.get(&a).copied(), paths.get(&b).copied()) {
                            // Two files swap names in one change.
                            (0, Some(pa), Some(pb)) if a != b => {
                                put(tx, a, pb, version)?;
                                put(tx, b, pa, version)?;
                                paths.insert(a, pb);
                                paths.insert(b, pa);
                            }
                            (1, Some(_), _) => {
                                files_changed(&tx.txn, a)?;
                                tx.txn.open_table(FILES)?.remove(a)?;
                                paths.remove(&a);
                            }
                            // Made, or moved to a free name, or changed where it is.
                            (_, Some(pa), _) if taken => put(tx, a, pa, version)?,
                            (_, _, _) if !taken => {
                                put(tx, a, name, version)?;
                                paths.insert(a, name);
                            }
                            _ => {}
                        }
                    }
                    Ok(())
                }).unwrap();
                let (kept, table) = kept_and_table(&store);
                prop_assert_eq!(kept, table);
            }
        }

        /// The kept list, caught up from the change log (or read whole when
        /// the log no longer reaches back), always equals the table.
        #[test]
        fn the_kept_list_equals_the_table_after_any_writes(
            rounds in proptest::collection::vec(proptest::collection::vec(change(), 0..40), 1..12),
            trim in proptest::collection::vec(any::<bool>(), 12),
        ) {
            let (_dir, store) = temp_store();
            for (round, writes) in rounds.iter().enumerate() {
                store.write(|tx| {
                    for &(id, n) in writes {
                        match n {
                            Some(n) => put_file(&tx.txn, &record(id, n))?,
                            None => {
                                files_changed(&tx.txn, id)?;
                                tx.txn.open_table(FILES)?.remove(id)?;
                            }
                        }
                    }
                    // Some rounds lose the log, as trimming does to a
                    // reader far behind.
                    if trim[round] {
                        tx.txn.open_table(super::FILES_LOG)?.retain(|_, _| false)?;
                    }
                    Ok(())
                }).unwrap();
                let whole_before = store.whole_list_reads();
                let (kept, table) = kept_and_table(&store);
                prop_assert_eq!(kept, table);
                // Caught up from the log unless it was lost (or this is
                // the first reading).
                let whole = store.whole_list_reads() - whole_before;
                prop_assert_eq!(whole, u64::from(round == 0 || (trim[round] && !writes.is_empty())));
            }
        }
    }
}
