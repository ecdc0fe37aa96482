//! The wait-list and the hand-off. Anyone may wait in line for a file
//! someone holds (or that is reserved for someone else). When the lock ends
//! — check-in, cancel, override, a Git LFS unlock — the file is *reserved*
//! for the first in line for the hand-off window: only they may check it
//! out. Declining, or the window running out, passes it to the next in
//! line; when nobody is left, the file is available again.
//!
//! Every change here is one write transaction with its events, like every
//! other operation, so the line and the reservation survive restarts; a
//! reservation whose window ran out while the server was down is passed on
//! at start (`pass_lapsed`), and any operation on a file settles its lapsed
//! reservation first, so no one can slip in between a deadline and the
//! clock that applies it.

use std::time::Duration;

use crate::error::{AppError, AppResult};
use crate::store::{
    EventDraft, EventKind, FileRecord, FileSnapshot, Reservation, Tx, USERS, clock_utc, get_user,
    now, put_file,
};

use super::rules::Needs;
use super::{Actor, Files, blocking, save_and_record};

/// The sentence for someone who may not check out a reserved file.
pub(super) fn reserved_refusal(rec: &FileRecord, r: &Reservation) -> AppError {
    AppError::Conflict(format!(
        "{} is reserved for {} until {}; wait in line to be next.",
        rec.path,
        r.username,
        clock_utc(r.until)
    ))
}

/// The most people one file's line holds: past it, joining is refused.
/// A line is a handful of colleagues; a longer one only delays hand-offs.
pub const MAX_LINE: usize = 100;

/// Whether `username` may still take a file: an account that exists and
/// is not disabled. A disabled account is passed over, never handed a file.
fn can_take(tx: &Tx, username: &str) -> AppResult<bool> {
    let user = get_user(&tx.txn.open_table(USERS)?, username)?;
    Ok(user.is_some_and(|u| !u.disabled))
}

/// Reserves `rec` for the first in line who can still take it (passing
/// over disabled or removed accounts); the lock or the previous
/// reservation has just ended. Returns whether it did.
pub(super) fn reserve_next(
    tx: &Tx,
    rec: &mut FileRecord,
    window: Duration,
    at: i64,
) -> AppResult<bool> {
    rec.reserved = None;
    while !rec.queue.is_empty() {
        let next = rec.queue.remove(0);
        if can_take(tx, &next)? {
            rec.reserved = Some(Reservation {
                username: next,
                until: at.saturating_add(window.as_secs().min(i64::MAX as u64) as i64),
            });
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records the `reserved` event for the reservation `rec` now has.
fn record_reserved(tx: &mut Tx, rec: &FileRecord, actor: &str) -> AppResult<()> {
    tx.record(EventDraft {
        kind: EventKind::Reserved,
        actor: actor.to_string(),
        // Whom the file went to, for readers of the log.
        note: rec.reserved.as_ref().map(|r| r.username.clone()),
        previous_holder: None,
        file: FileSnapshot::Present(Box::new(rec.clone())),
    })?;
    Ok(())
}

/// Ends the lock of `rec` with the event `kind`, then hands the file to the
/// first in line (a `reserved` event after it). Returns the record.
pub(super) fn end_lock(
    tx: &mut Tx,
    mut rec: FileRecord,
    kind: EventKind,
    actor: &Actor,
    note: Option<String>,
    previous_holder: Option<String>,
    window: Duration,
) -> AppResult<FileRecord> {
    rec.lock = None;
    let reserved = reserve_next(tx, &mut rec, window, now())?;
    let rec = save_and_record(tx, rec, kind, actor, note, previous_holder)?;
    if reserved {
        record_reserved(tx, &rec, &actor.username)?;
    }
    Ok(rec)
}

/// Passes on a reservation whose window has run out by `at` (and the next,
/// should that one have run out too), recording each step. Returns whether
/// anything changed; `rec` is saved when it did.
pub(super) fn settle(
    tx: &mut Tx,
    rec: &mut FileRecord,
    at: i64,
    window: Duration,
) -> AppResult<bool> {
    let mut changed = false;
    while let Some(r) = rec.reserved.clone() {
        // Run out, or held by an account that was disabled meanwhile.
        if r.until > at && can_take(tx, &r.username)? {
            break;
        }
        changed = true;
        pass_on(tx, rec, &r.username, window, at)?;
    }
    Ok(changed)
}

/// The reservation of `from` ends (declined or run out): the next in line
/// gets it, or the file is available. Saves `rec` and records the event.
fn pass_on(
    tx: &mut Tx,
    rec: &mut FileRecord,
    from: &str,
    window: Duration,
    at: i64,
) -> AppResult<()> {
    if reserve_next(tx, rec, window, at)? {
        put_file(&tx.txn, rec)?;
        record_reserved(tx, rec, from)
    } else {
        put_file(&tx.txn, rec)?;
        tx.record(EventDraft {
            kind: EventKind::Released,
            actor: from.to_string(),
            note: None,
            previous_holder: None,
            file: FileSnapshot::Present(Box::new(rec.clone())),
        })?;
        Ok(())
    }
}

impl Files {
    /// Joins the line for a file someone else holds or that is reserved
    /// for someone else. 409 when the caller holds it, it is theirs, they
    /// already wait, or it is free to check out.
    pub async fn join_queue(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        self.settled_change(
            id,
            actor,
            "wait for files",
            move |tx, mut rec, actor, at| {
                let me = actor.username.as_str();
                if rec.locked_by() == Some(me) {
                    return Err(AppError::Conflict(format!(
                        "You hold {}; there is nothing to wait for.",
                        rec.path
                    )));
                }
                match rec.reserved_for(at) {
                    Some(r) if r.username == me => {
                        return Err(AppError::Conflict(format!(
                            "{} is reserved for you; check it out.",
                            rec.path
                        )));
                    }
                    None if rec.lock.is_none() => {
                        return Err(AppError::Conflict(format!(
                            "{} is available; check it out instead of waiting.",
                            rec.path
                        )));
                    }
                    _ => {}
                }
                if rec.is_queued(me) {
                    return Err(AppError::Conflict(format!(
                        "You are already waiting for {}.",
                        rec.path
                    )));
                }
                if rec.queue.len() >= MAX_LINE {
                    return Err(AppError::Conflict(format!(
                        "The line for {} is full ({MAX_LINE} waiting); try again later.",
                        rec.path
                    )));
                }
                rec.queue.push(me.to_string());
                save_and_record(tx, rec, EventKind::Queued, actor, None, None)
            },
        )
        .await
    }

    /// Leaves the line. 409 when the caller is not in it.
    pub async fn leave_queue(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        self.settled_change(id, actor, "wait for files", move |tx, mut rec, actor, _| {
            if !rec.is_queued(&actor.username) {
                let hint = match rec.reserved_for(now()) {
                    Some(r) if r.username == actor.username => {
                        "; it is reserved for you: decline to pass it on"
                    }
                    _ => "",
                };
                return Err(AppError::Conflict(format!(
                    "You are not waiting for {}{hint}.",
                    rec.path
                )));
            }
            rec.queue.retain(|q| *q != actor.username);
            save_and_record(tx, rec, EventKind::Dequeued, actor, None, None)
        })
        .await
    }

    /// Declines a reservation: the next in line gets the file, or it is
    /// available. 409 when the file is not reserved for the caller (an
    /// admin may pass on anyone's).
    pub async fn decline(&self, actor: &Actor, id: u64) -> AppResult<FileRecord> {
        let window = self.shared.handoff_window;
        self.settled_change(
            id,
            actor,
            "decline a reservation",
            move |tx, mut rec, actor, at| {
                // The one it is reserved for declines; an admin may pass on
                // anyone's (someone away, a line that must move).
                match rec.reserved_for(at) {
                    Some(r) if r.username == actor.username || actor.is_admin() => {}
                    _ => {
                        return Err(AppError::Conflict(format!(
                            "{} is not reserved for you; there is nothing to decline.",
                            rec.path
                        )));
                    }
                }
                pass_on(tx, &mut rec, &actor.username, window, at)?;
                Ok(rec)
            },
        )
        .await
    }

    /// A change of one file by `actor` (any signed-in user), after its
    /// lapsed reservation, if any, is passed on; `f` gets the time it ran at.
    async fn settled_change(
        &self,
        id: u64,
        actor: &Actor,
        what: &'static str,
        f: impl FnOnce(&mut Tx, FileRecord, &Actor, i64) -> AppResult<FileRecord> + Send + 'static,
    ) -> AppResult<FileRecord> {
        let window = self.shared.handoff_window;
        let who = actor.clone();
        self.change(id, actor, Needs::Account, what, move |tx, mut rec| {
            let at = now();
            settle(tx, &mut rec, at, window)?;
            f(tx, rec, &who, at)
        })
        .await
        // Settling, or the change itself, may have handed the file on.
        .inspect(|rec| self.noticed(rec))
    }

    /// Tells the hand-off clock about `rec`'s reservation, or its lock
    /// (which will turn stale, and may expire), when the clock would
    /// otherwise wake too late for it. Only then: a check-out need not
    /// cost the clock a look at every file.
    pub(super) fn noticed(&self, rec: &FileRecord) {
        self.forget_draft_if_unheld(rec);
        let at = now();
        let due = rec
            .reserved
            .as_ref()
            .map(|r| r.until)
            .into_iter()
            .chain(self.shared.aging.next_wake(std::slice::from_ref(rec), at))
            .min();
        let planned = self
            .shared
            .clock_wakes_at
            .load(std::sync::atomic::Ordering::SeqCst);
        if due.is_some_and(|due| due < planned) {
            self.shared.reservations_changed.notify_one();
        }
    }

    /// Passes on every reservation whose window has run out: at start (a
    /// deadline may have passed while the server was down) and whenever
    /// the hand-off clock fires. Blocking. Returns how many files changed.
    pub fn pass_lapsed(&self) -> AppResult<usize> {
        let window = self.shared.handoff_window;
        self.shared.store.write_due(
            |f, at| f.reserved.as_ref().is_some_and(|r| r.until <= at),
            |tx, lapsed, at| {
                let count = lapsed.len();
                for mut rec in lapsed {
                    settle(tx, &mut rec, at, window)?;
                }
                Ok(count)
            },
        )
    }

    /// When the clock must look next: the earliest running reservation
    /// deadline, or a lock turning stale after `seen`, due a warning, or
    /// expiring. Blocking.
    fn next_deadline(&self, seen: i64) -> AppResult<Option<i64>> {
        let files = self.shared.store.files_now()?;
        let reservation = files
            .iter()
            .filter_map(|f| f.reserved.as_ref().map(|r| r.until))
            .min();
        let aging = self.shared.aging.next_wake(&files, seen);
        Ok(reservation.into_iter().chain(aging).min())
    }

    /// The hand-off clock: passes reservations on as their windows run
    /// out, releases expired locks (warning their holders first), and has
    /// the cards of locks turning stale re-rendered. Wakes at the earliest
    /// of those moments, and when a reservation or a lock is made
    /// (`reservations_changed`); returns once `stop` fires, never in the
    /// middle of a write (the caller then reopens the database safely).
    pub async fn hand_off_clock(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        // Locks that turned stale before this are shown so by every render;
        // only those turning stale from now on need their cards pushed.
        let mut seen = now();
        loop {
            // Awake: every change is told (see `Files::noticed`).
            let wakes_at = &self.shared.clock_wakes_at;
            wakes_at.store(i64::MAX, std::sync::atomic::Ordering::SeqCst);
            let this = self.clone();
            let next = blocking(move || this.next_deadline(seen))
                .await
                .unwrap_or_else(|e| {
                    e.log();
                    None
                });
            // At most a minute between looks, so a missed wake-up costs little.
            let wait = next
                .map(|at| (at - now()).max(0) as u64)
                .unwrap_or(60)
                .min(60);
            // A change made since the look above found the clock awake and
            // left a permit: `changed` then fires at once and it looks again.
            wakes_at.store(
                now().saturating_add(wait as i64),
                std::sync::atomic::Ordering::SeqCst,
            );
            let changed = self.shared.reservations_changed.notified();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = changed => continue,
                _ = &mut stop => return,
            }
            let this = self.clone();
            let looked = blocking(move || {
                this.pass_lapsed()?;
                this.expire_due()?;
                let at = now();
                this.refresh_turned_stale(seen, at)?;
                Ok(at)
            })
            .await;
            match looked {
                Ok(at) => seen = at,
                Err(e) => {
                    e.log();
                    // Whatever failed is still due: not again at once.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
