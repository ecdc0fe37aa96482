//! Old locks. A lock older than `--stale-after` is *stale*: shown as such
//! (a badge, `lock.stale`, the `stale` filter, the admins' list), never
//! acted on. With `--lock-expiry`, a lock that old is released by Latch
//! (event `expired`, then the hand-off as after a cancel), its holder
//! having been warned `expiry_warning` (24 h) before — or half-way, when
//! the expiry is no longer than that. Whether the warning was given
//! is kept on the lock, so it is given once, across restarts.
//!
//! Turning stale is a matter of time, not an event: the hand-off clock
//! wakes when the next lock turns stale and has the hub re-render its card
//! (`Store::refresh`), recording nothing. An expiry that fell due while the
//! server was down is applied at start (`expire_due` in `open`).

use std::time::Duration;

use crate::config::Config;
use crate::error::AppResult;
use crate::store::{EventKind, FileRecord, LockRecord, Tx, put_file};

use super::{Actor, Files, handoff};

// Kept beside the rules that use it; the pages and the API read it too.
impl LockRecord {
    /// When a lock this old counts as stale (`--stale-after`), or is
    /// released (`--lock-expiry`): `locked_at + age`, in unix seconds.
    pub fn aged(&self, age: std::time::Duration) -> i64 {
        self.locked_at
            .saturating_add(age.as_secs().min(i64::MAX as u64) as i64)
    }

    /// Whether the lock is stale at `at` under `stale_after`.
    pub fn is_stale(&self, stale_after: std::time::Duration, at: i64) -> bool {
        self.aged(stale_after) <= at
    }
}

/// The name events carry when Latch itself acted (an expiry).
pub use crate::domain::SYSTEM_ACTOR;

/// How old locks are treated: stale after, released after, warned before.
#[derive(Debug, Clone, Copy)]
pub struct LockAging {
    pub stale_after: Duration,
    pub expiry: Option<Duration>,
    pub warning: Duration,
}

impl LockAging {
    pub fn of(config: &Config) -> LockAging {
        LockAging {
            stale_after: config.stale_after,
            expiry: config.lock_expiry,
            warning: config.expiry_warning,
        }
    }

    /// When `lock` is released, with `--lock-expiry` set.
    pub fn expires_at(&self, lock: &LockRecord) -> Option<i64> {
        self.expiry.map(|e| lock.aged(e))
    }

    /// When the holder of `lock` is to be warned: `warning` before the
    /// expiry — or half-way, for an expiry no longer than the warning, so
    /// a fresh check-out is not warned at once.
    fn warn_at(&self, lock: &LockRecord) -> Option<i64> {
        let warning = match self.expiry {
            Some(e) if self.warning >= e => e / 2,
            _ => self.warning,
        };
        let warning = warning.as_secs().min(i64::MAX as u64) as i64;
        self.expires_at(lock)
            .map(|at| at.saturating_sub(warning).max(lock.locked_at))
    }

    /// The next moment after `seen` at which `files` need the clock: a
    /// lock turning stale (after `seen`, the last look), a warning not yet
    /// given, an expiry.
    pub(super) fn next_wake(&self, files: &[FileRecord], seen: i64) -> Option<i64> {
        files
            .iter()
            .filter_map(|f| f.lock.as_ref())
            .flat_map(|lock| {
                let stale = Some(lock.aged(self.stale_after)).filter(|at| *at > seen);
                let warn = self.warn_at(lock).filter(|_| lock.warned_at.is_none());
                [stale, warn, self.expires_at(lock)]
            })
            .flatten()
            .min()
    }
}

/// Latch itself, as the actor of an expiry.
fn system_actor() -> Actor {
    Actor {
        username: SYSTEM_ACTOR.to_string(),
        display_name: "Latch".to_string(),
        role: crate::domain::Role::Admin,
    }
}

impl Files {
    /// How old a lock must be to count as stale.
    pub fn stale_after(&self) -> Duration {
        self.shared.aging.stale_after
    }

    /// How locks age, for the clock and the pages.
    pub fn aging(&self) -> LockAging {
        self.shared.aging
    }

    /// Tells the holder of `file`'s lock that it will be released at
    /// `expires_at`. Called once per lock, inside the transaction that
    /// records that the warning was given.
    pub fn warn_expiring(&self, tx: &mut Tx, file: &FileRecord, expires_at: i64) -> AppResult<()> {
        let Some(holder) = file.locked_by() else {
            return Ok(());
        };
        // A disabled account hears nothing (the lock is still released).
        let users = tx.txn.open_table(crate::store::USERS)?;
        if crate::store::get_user(&users, holder)?.is_none_or(|u| u.disabled) {
            return Ok(());
        }
        drop(users);
        let text = format!(
            "Your check-out of {} will be released at {} (it is older than the limit); check it in or cancel before then.",
            file.path,
            crate::store::clock_utc(expires_at)
        );
        let change = crate::inbox::notify(
            &tx.txn,
            holder,
            crate::inbox::NoticeKind::Expiring,
            file.id,
            &file.path,
            SYSTEM_ACTOR,
            text,
        )?;
        tx.tell(change);
        Ok(())
    }

    /// Releases every lock past its expiry (the hand-off then applies) and
    /// warns the holders of those within the warning window: at start and
    /// whenever the clock fires. Blocking. Returns how many were released.
    pub fn expire_due(&self) -> AppResult<usize> {
        let aging = self.shared.aging;
        if aging.expiry.is_none() {
            return Ok(0);
        }
        let window = self.shared.handoff_window;
        let due_at = |lock: &LockRecord, at: i64| {
            aging.expires_at(lock).is_some_and(|e| e <= at)
                || (lock.warned_at.is_none() && aging.warn_at(lock).is_some_and(|w| w <= at))
        };
        self.shared.store.write_due(
            |f, at| f.lock.as_ref().is_some_and(|l| due_at(l, at)),
            |tx, due, at| {
                let mut released = 0;
                for mut rec in due {
                    let Some(lock) = rec.lock.as_mut() else {
                        continue;
                    };
                    let Some(expires_at) = aging.expires_at(lock) else {
                        continue;
                    };
                    if expires_at <= at {
                        let owner = lock.owner.clone();
                        let comment = lock.comment.clone();
                        handoff::end_lock(
                            tx,
                            rec,
                            EventKind::Expired,
                            &system_actor(),
                            comment,
                            Some(owner),
                            window,
                        )?;
                        released += 1;
                    } else {
                        lock.warned_at = Some(at);
                        // Bookkeeping, not a change anyone sees: no event.
                        put_file(&tx.txn, &rec)?;
                        self.warn_expiring(tx, &rec, expires_at)?;
                    }
                }
                Ok(released)
            },
        )
    }

    /// Has the hub re-render the cards of locks that turned stale after
    /// `seen` and by `at`. Blocking. Returns how many.
    pub fn refresh_turned_stale(&self, seen: i64, at: i64) -> AppResult<usize> {
        let stale_after = self.shared.aging.stale_after;
        self.shared.store.refresh(|f| {
            f.lock.as_ref().is_some_and(|l| {
                let turned = l.aged(stale_after);
                turned > seen && turned <= at
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_at(at: i64) -> LockRecord {
        LockRecord {
            owner: "bob".into(),
            locked_at: at,
            comment: None,
            warned_at: None,
            draft: None,
            dav_tokens: Vec::new(),
        }
    }

    #[test]
    fn the_holder_is_warned_a_day_before_or_half_way_through_a_short_expiry() {
        let day = Duration::from_secs(24 * 3600);
        let aging = |expiry: u64| LockAging {
            stale_after: day,
            expiry: Some(Duration::from_secs(expiry)),
            warning: day,
        };
        // A month: a day before.
        let month = 30 * 24 * 3600;
        assert_eq!(
            aging(month).warn_at(&lock_at(1000)),
            Some(1000 + month as i64 - 86_400)
        );
        // An hour: half-way, not at once.
        assert_eq!(aging(3600).warn_at(&lock_at(1000)), Some(1000 + 1800));
        // Exactly a day: half-way too.
        assert_eq!(aging(86_400).warn_at(&lock_at(0)), Some(43_200));
    }
}
