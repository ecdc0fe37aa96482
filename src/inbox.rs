//! Each person's inbox — a file reserved for them, a request to release a
//! file they hold, an override of their lock, a change under something they
//! watch, a lock about to expire — and what they watch, and when they last
//! asked a holder to release a file.
//!
//! Invariants:
//! - a notification is written in the transaction of the change that
//!   causes it (`Tx::record` asks [`on_event`]), so it exists exactly when
//!   the change does, across crashes;
//! - the unread count is kept beside the inbox in the same transactions,
//!   so the bell is one read, not a scan;
//! - an inbox keeps its newest [`KEPT`] notifications; the actor of a
//!   change is never told of their own change;
//! - the live hub gets each recipient's new count (an [`InboxChange`]) after
//!   the commit, with the event or on its own.

use std::collections::BTreeMap;

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::domain::{Folder, RepoPath};
use crate::error::{AppError, AppResult};
use crate::store::{self, Event, EventKind, USERS, clock_utc, decode, encode, next_counter};

/// (username, notification id) → [`Notification`].
pub const NOTIFICATIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("notifications");
/// username → how many of their notifications are unread.
pub const UNREAD: TableDefinition<&str, u64> = TableDefinition::new("unread");
/// (what, username) → since (unix seconds); what is `f:<file id>` or
/// `d:<folder>` (`d:` alone: the whole vault).
pub const WATCHES: TableDefinition<(&str, &str), i64> = TableDefinition::new("watches");
/// (asker, file id, holder) → when the asker last asked that holder to
/// release that file.
pub const NUDGES: TableDefinition<(&str, u64, &str), i64> = TableDefinition::new("nudges");

/// The most notifications one inbox keeps; older ones go.
pub const KEPT: usize = 200;
/// The most files and folders one person watches: past it, a folder serves.
pub const MAX_WATCHES: usize = 500;
/// One ask to release per asker per file in this many seconds.
pub const NUDGE_EVERY: i64 = 3600;

const NEXT_NOTIFICATION: &str = "next_notification";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A file is reserved for you now.
    Reserved,
    /// Someone asks you to release a file you hold.
    Nudged,
    /// An admin broke your check-out.
    Overridden,
    /// Something changed under what you watch.
    Watched,
    /// Your check-out will be released soon.
    Expiring,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 5] = [
        NoticeKind::Reserved,
        NoticeKind::Nudged,
        NoticeKind::Overridden,
        NoticeKind::Watched,
        NoticeKind::Expiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Reserved => "reserved",
            NoticeKind::Nudged => "nudged",
            NoticeKind::Overridden => "overridden",
            NoticeKind::Watched => "watched",
            NoticeKind::Expiring => "expiring",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: u64,
    pub kind: NoticeKind,
    pub file_id: u64,
    pub path: RepoPath,
    /// Who caused it (`latch` for the server's own clock).
    pub actor: String,
    pub at: i64,
    /// A sentence a person understands, as shown in the list and the mail.
    pub text: String,
    pub read: bool,
}

/// A change to someone's inbox, for their live connections: their unread
/// count now and, when a notification arrived, that notification.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxChange {
    pub username: String,
    pub unread: u64,
    pub new: Option<Notification>,
}

/// What someone watches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watched {
    File(u64),
    Folder(Folder),
}

impl Watched {
    fn key(&self) -> String {
        match self {
            Watched::File(id) => format!("f:{id}"),
            Watched::Folder(folder) => format!("d:{}", folder.as_str()),
        }
    }

    fn from_key(key: &str) -> Option<Watched> {
        if let Some(id) = key.strip_prefix("f:") {
            return id.parse().ok().map(Watched::File);
        }
        key.strip_prefix("d:")
            .map(|f| Watched::Folder(Folder::from_stored(f)))
    }
}

/// A new notification for `to`; returns the change for their live connections.
pub fn notify(
    txn: &WriteTransaction,
    to: &str,
    kind: NoticeKind,
    file_id: u64,
    path: &RepoPath,
    actor: &str,
    text: String,
) -> AppResult<InboxChange> {
    let id = next_counter(txn, NEXT_NOTIFICATION)?;
    let notification = Notification {
        id,
        kind,
        file_id,
        path: path.clone(),
        actor: actor.to_string(),
        at: store::now(),
        text,
        read: false,
    };
    let mut unread_gone = 0;
    {
        let mut inbox = txn.open_table(NOTIFICATIONS)?;
        inbox.insert((to, id), encode(&notification)?.as_slice())?;
        // Past the limit the oldest go (a handful at most: one per insert).
        let kept = inbox.range((to, 0)..=(to, u64::MAX))?.count();
        if kept > KEPT {
            let oldest: Vec<(u64, bool)> = inbox
                .range((to, 0)..=(to, u64::MAX))?
                .take(kept - KEPT)
                .map(|row| {
                    let (k, v) = row?;
                    let n: Notification = decode(v.value())?;
                    Ok((k.value().1, n.read))
                })
                .collect::<AppResult<_>>()?;
            for (old, read) in oldest {
                inbox.remove((to, old))?;
                unread_gone += u64::from(!read);
            }
        }
    }
    let unread = add_unread(txn, to, 1, unread_gone)?;
    Ok(InboxChange {
        username: to.to_string(),
        unread,
        new: Some(notification),
    })
}

fn add_unread(txn: &WriteTransaction, who: &str, more: u64, fewer: u64) -> AppResult<u64> {
    let mut counts = txn.open_table(UNREAD)?;
    let now = counts.get(who)?.map(|v| v.value()).unwrap_or(0);
    let next = now.saturating_add(more).saturating_sub(fewer);
    if next == 0 {
        counts.remove(who)?;
    } else {
        counts.insert(who, next)?;
    }
    Ok(next)
}

/// How many of `who`'s notifications are unread.
pub fn unread(txn: &ReadTransaction, who: &str) -> AppResult<u64> {
    Ok(txn
        .open_table(UNREAD)?
        .get(who)?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// `who`'s notifications, newest first, at most `limit`.
pub fn list(
    txn: &ReadTransaction,
    who: &str,
    unread_only: bool,
    limit: usize,
) -> AppResult<Vec<Notification>> {
    let inbox = txn.open_table(NOTIFICATIONS)?;
    let mut out = Vec::new();
    for row in inbox.range((who, 0)..=(who, u64::MAX))?.rev() {
        let (_, v) = row?;
        let n: Notification = decode(v.value())?;
        if unread_only && n.read {
            continue;
        }
        out.push(n);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Which notifications to mark read.
#[derive(Debug, Clone)]
pub enum MarkRead {
    All,
    Ids(Vec<u64>),
}

/// Marks `who`'s notifications read; ids that are not theirs (or gone) are
/// ignored. Returns the change for their live connections.
pub fn mark_read(txn: &WriteTransaction, who: &str, which: &MarkRead) -> AppResult<InboxChange> {
    let mut inbox = txn.open_table(NOTIFICATIONS)?;
    let ids: Vec<u64> = match which {
        MarkRead::All => inbox
            .range((who, 0)..=(who, u64::MAX))?
            .map(|row| Ok(row?.0.value().1))
            .collect::<AppResult<_>>()?,
        MarkRead::Ids(ids) => ids.clone(),
    };
    let mut newly_read = 0;
    for id in ids {
        let Some(found) = inbox.get((who, id))?.map(|v| v.value().to_vec()) else {
            continue;
        };
        let mut n: Notification = decode(&found)?;
        if !n.read {
            n.read = true;
            newly_read += 1;
            inbox.insert((who, id), encode(&n)?.as_slice())?;
        }
    }
    drop(inbox);
    let unread = add_unread(txn, who, 0, newly_read)?;
    Ok(InboxChange {
        username: who.to_string(),
        unread,
        new: None,
    })
}

/// Starts or stops `who` watching `what`. Returns whether anything changed.
/// A person watches at most [`MAX_WATCHES`] files and folders.
pub fn set_watch(txn: &WriteTransaction, who: &str, what: &Watched, on: bool) -> AppResult<bool> {
    let key = what.key();
    let mut watches = txn.open_table(WATCHES)?;
    if !on {
        return Ok(watches.remove((key.as_str(), who))?.is_some());
    }
    if watches.get((key.as_str(), who))?.is_some() {
        return Ok(false);
    }
    let mut held = 0;
    for row in watches.iter()? {
        if row?.0.value().1 == who {
            held += 1;
        }
    }
    if held >= MAX_WATCHES {
        return Err(AppError::Conflict(format!(
            "You watch {held} files and folders, the most one person may; stop watching some first (or watch their folder)."
        )));
    }
    watches.insert((key.as_str(), who), store::now())?;
    Ok(true)
}

/// Everything `who` watches.
pub fn watches_of(txn: &ReadTransaction, who: &str) -> AppResult<Vec<Watched>> {
    let watches = txn.open_table(WATCHES)?;
    let mut out = Vec::new();
    for row in watches.iter()? {
        let (k, _) = row?;
        let (what, user) = k.value();
        if user == who
            && let Some(w) = Watched::from_key(what)
        {
            out.push(w);
        }
    }
    out.sort();
    Ok(out)
}

/// The keys of everything whose watchers hear of a change to this file.
fn keys_covering(file_id: u64, path: &RepoPath) -> Vec<String> {
    let mut keys = vec![format!("f:{file_id}"), "d:".to_string()];
    keys.extend(path.folders().map(|f| format!("d:{f}")));
    keys
}

fn watchers_of_key(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    key: &str,
    into: &mut Vec<String>,
) -> AppResult<()> {
    for row in table.range((key, "")..)? {
        let (k, _) = row?;
        let (what, user) = k.value();
        if what != key {
            break;
        }
        into.push(user.to_string());
    }
    Ok(())
}

/// Whether `who` hears of changes to this file (watching it or a folder it is in).
pub fn is_watching(
    txn: &ReadTransaction,
    who: &str,
    file_id: u64,
    path: &RepoPath,
) -> AppResult<bool> {
    let watches = txn.open_table(WATCHES)?;
    for key in keys_covering(file_id, path) {
        if watches.get((key.as_str(), who))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records that `asker` asks `holder` to release `file_id` at `at`;
/// `Err(seconds)` says how long until they may ask that holder again (a
/// new holder may be asked at once).
pub fn note_nudge(
    txn: &WriteTransaction,
    asker: &str,
    file_id: u64,
    holder: &str,
    at: i64,
) -> AppResult<Result<(), u64>> {
    let mut nudges = txn.open_table(NUDGES)?;
    if let Some(last) = nudges.get((asker, file_id, holder))?.map(|v| v.value()) {
        let wait = last.saturating_add(NUDGE_EVERY).saturating_sub(at);
        if wait > 0 {
            return Ok(Err(wait as u64));
        }
    }
    nudges.insert((asker, file_id, holder), at)?;
    // Asks older than the hour go once the table grows, so it stays small.
    if nudges.len()? > 4096 {
        nudges.retain(|_, last| last.saturating_add(NUDGE_EVERY) > at)?;
    }
    Ok(Ok(()))
}

/// What a watcher is told of an event.
fn watched_text(event: &Event) -> String {
    let (actor, path) = (&event.actor, &event.path);
    match event.kind {
        EventKind::Created => format!("{actor} added {path}."),
        EventKind::Locked => match &event.note {
            Some(comment) => format!("{actor} checked out {path}: {comment}"),
            None => format!("{actor} checked out {path}."),
        },
        EventKind::Unlocked => format!("{actor} cancelled their check-out of {path}."),
        EventKind::CheckedIn => match &event.revision {
            Some(rev) => format!("{actor} checked in {path} as revision {rev}."),
            None => format!("{actor} checked in {path}."),
        },
        EventKind::Overridden => match &event.previous_holder {
            Some(prev) => format!("{actor} broke {prev}'s check-out of {path}."),
            None => format!("{actor} broke the check-out of {path}."),
        },
        EventKind::Deleted => format!("{actor} deleted {path}."),
        EventKind::Queued => format!("{actor} is waiting in line for {path}."),
        EventKind::Dequeued => format!("{actor} left the line for {path}."),
        EventKind::Reserved => match &event.note {
            Some(who) => format!("{path} is reserved for {who}."),
            None => format!("{path} is reserved for the next in line."),
        },
        EventKind::Released => format!("{path} is available again."),
        EventKind::Expired => match &event.previous_holder {
            Some(prev) => format!("{prev}'s check-out of {path} ran out and was released."),
            None => format!("The check-out of {path} ran out and was released."),
        },
        EventKind::Moved => match &event.note {
            Some(from) => format!("{actor} moved {from} to {path}."),
            None => format!("{actor} moved {path}."),
        },
        EventKind::Edited => format!("{actor} edited the description of {path}."),
    }
}

/// The notifications an event causes, written in its transaction: the one
/// it reserves a file for, the holder whose lock it broke, and everyone
/// watching the file or a folder it lies in (but never its actor, and
/// nobody twice).
pub fn on_event(txn: &WriteTransaction, event: &Event) -> AppResult<Vec<InboxChange>> {
    // Recipient → (kind, text); BTreeMap for a stable order.
    let mut told: BTreeMap<String, (NoticeKind, String)> = BTreeMap::new();
    match (&event.kind, &event.note, &event.previous_holder) {
        (EventKind::Reserved, Some(to), _) => {
            let until = event
                .file
                .as_ref()
                .and_then(|f| f.reserved.as_ref())
                .map(|r| format!(" until {}", clock_utc(r.until)))
                .unwrap_or_default();
            told.insert(
                to.clone(),
                (
                    NoticeKind::Reserved,
                    format!("{} is yours to check out{until}.", event.path),
                ),
            );
        }
        (EventKind::Expired, _, Some(prev)) => {
            told.insert(
                prev.clone(),
                (
                    NoticeKind::Expiring,
                    format!(
                        "Your check-out of {} ran out and was released; check it out again to go on.",
                        event.path
                    ),
                ),
            );
        }
        (EventKind::Overridden, _, Some(prev)) => {
            told.insert(
                prev.clone(),
                (
                    NoticeKind::Overridden,
                    format!("{} broke your check-out of {}.", event.actor, event.path),
                ),
            );
        }
        _ => {}
    }
    {
        let watches = txn.open_table(WATCHES)?;
        let mut watchers = Vec::new();
        for key in keys_covering(event.file_id, &event.path) {
            watchers_of_key(&watches, &key, &mut watchers)?;
        }
        for who in watchers {
            told.entry(who)
                .or_insert_with(|| (NoticeKind::Watched, watched_text(event)));
        }
    }
    told.remove(&event.actor);
    if event.kind == EventKind::Deleted {
        forget_file(txn, event.file_id)?;
    }
    let users = txn.open_table(USERS)?;
    let mut changes = Vec::with_capacity(told.len() + 1);
    // Taking or declining a file reserved for you answers its notification.
    if matches!(
        event.kind,
        EventKind::Locked | EventKind::Reserved | EventKind::Released
    ) && let Some(change) = settle_reserved(txn, &event.actor, event.file_id)?
    {
        changes.push(change);
    }
    for (who, (kind, text)) in told {
        // Nobody is told in an account that is gone or disabled.
        if store::get_user(&users, &who)?.is_none_or(|u| u.disabled) {
            continue;
        }
        changes.push(notify(
            txn,
            &who,
            kind,
            event.file_id,
            &event.path,
            &event.actor,
            text,
        )?);
    }
    Ok(changes)
}

/// Marks read `who`'s unread "reserved for you" notifications about
/// `file_id`: they took the file or passed it on, so there is nothing left
/// to do about them. Returns the change when there was one.
fn settle_reserved(
    txn: &WriteTransaction,
    who: &str,
    file_id: u64,
) -> AppResult<Option<InboxChange>> {
    let mut inbox = txn.open_table(NOTIFICATIONS)?;
    let mut answered = Vec::new();
    for row in inbox.range((who, 0)..=(who, u64::MAX))? {
        let (k, v) = row?;
        let n: Notification = decode(v.value())?;
        if !n.read && n.kind == NoticeKind::Reserved && n.file_id == file_id {
            answered.push((k.value().1, n));
        }
    }
    if answered.is_empty() {
        return Ok(None);
    }
    let count = answered.len() as u64;
    for (id, mut n) in answered {
        n.read = true;
        inbox.insert((who, id), encode(&n)?.as_slice())?;
    }
    drop(inbox);
    let unread = add_unread(txn, who, 0, count)?;
    Ok(Some(InboxChange {
        username: who.to_string(),
        unread,
        new: None,
    }))
}

/// A deleted file's watchers stop watching it (its id is never reused).
fn forget_file(txn: &WriteTransaction, file_id: u64) -> AppResult<()> {
    let key = format!("f:{file_id}");
    let mut watches = txn.open_table(WATCHES)?;
    let mut who = Vec::new();
    watchers_of_key(&watches, &key, &mut who)?;
    for user in who {
        watches.remove((key.as_str(), user.as_str()))?;
    }
    Ok(())
}

/// Opens the tables, so reads never meet a missing one.
pub fn create_tables(txn: &WriteTransaction) -> AppResult<()> {
    txn.open_table(NOTIFICATIONS)?;
    txn.open_table(UNREAD)?;
    txn.open_table(WATCHES)?;
    txn.open_table(NUDGES)?;
    crate::mail::create_tables(txn)
}
