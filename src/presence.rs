//! Presence: who has a live connection now, and which file's history each
//! browser tab has open. Kept in memory only — never an event, never in
//! redb — and pushed to everyone at most once a [`TICK`].
//!
//! Invariants:
//! - a person is online while at least one of their live connections is
//!   open (a [`Here`] is held for each); two tabs count once;
//! - what a tab views is keyed by (session, tab) and exists only while that
//!   tab has a live connection: the last one ending ends the viewing, so a
//!   tab closed without a word cannot leave "carol is viewing" behind, and
//!   the state is bounded by the open connections (one file per tab);
//! - changes are coalesced: the ticker publishes the difference from what it
//!   last published, never more often than once a [`TICK`], and nothing
//!   when nothing visible changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{AppError, AppResult};

/// The shortest time between two presence updates.
pub const TICK: Duration = Duration::from_secs(1);
/// How often an idle ticker looks whether its hub is still there.
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// A browser tab's own name for itself, chosen by `live.js` at page load.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tab(String);

impl Tab {
    pub fn parse(raw: &str) -> AppResult<Tab> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Tab(raw.to_string()))
        } else {
            Err(AppError::BadRequest(
                "A tab name is 1 to 64 letters, digits, '-' or '_'.".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Someone online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    pub username: String,
    pub display_name: String,
    /// Unix seconds when their first open connection began.
    pub since: i64,
}

/// Presence as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// By display name.
    pub online: Vec<Online>,
    /// File id → usernames viewing it (sorted, each once); no empty lists.
    pub viewing: BTreeMap<u64, Vec<String>>,
}

impl Snapshot {
    pub fn viewers(&self, file: u64) -> &[String] {
        self.viewing.get(&file).map_or(&[], Vec::as_slice)
    }

    /// The files whose viewers differ between `self` and `other`.
    pub fn changed_files(&self, other: &Snapshot) -> Vec<u64> {
        let ids: BTreeSet<u64> = self
            .viewing
            .keys()
            .chain(other.viewing.keys())
            .copied()
            .collect();
        ids.into_iter()
            .filter(|id| self.viewers(*id) != other.viewers(*id))
            .collect()
    }
}

/// What the ticker hands its publisher: the new snapshot and the files whose
/// viewers changed since the last one.
pub type Publish<'a> = Option<(&'a Snapshot, &'a [u64])>;

#[derive(Clone, Default)]
pub struct Presence {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    /// Signalled when `state.dirty` is set.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    users: HashMap<String, User>,
    tabs: HashMap<TabKey, TabState>,
    /// Something visible may have changed since the last publish.
    dirty: bool,
}

struct User {
    display_name: String,
    since: i64,
    connections: usize,
}

/// (session token hash, tab).
type TabKey = (Vec<u8>, Tab);

struct TabState {
    username: String,
    connections: usize,
    viewing: Option<u64>,
}

/// One live connection's presence; dropping it is leaving.
pub struct Here {
    presence: Presence,
    username: String,
    tab: Option<TabKey>,
}

impl Drop for Here {
    fn drop(&mut self) {
        self.presence.leave(&self.username, self.tab.take());
    }
}

impl Presence {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark(&self, state: &mut State) {
        state.dirty = true;
        self.inner.changed.notify_one();
    }

    /// A live connection of `username` opened, from `tab` of the session
    /// whose token hashes to `session` when the page named its tab.
    pub fn arrive(
        &self,
        username: &str,
        display_name: &str,
        session: &[u8],
        tab: Option<Tab>,
    ) -> Here {
        let mut state = self.state();
        let user = state
            .users
            .entry(username.to_string())
            .or_insert_with(|| User {
                display_name: display_name.to_string(),
                since: crate::store::now(),
                connections: 0,
            });
        user.connections += 1;
        if user.connections == 1 {
            self.mark(&mut state);
        }
        let tab = tab.map(|t| (session.to_vec(), t));
        if let Some(key) = &tab {
            state
                .tabs
                .entry(key.clone())
                .or_insert_with(|| TabState {
                    username: username.to_string(),
                    connections: 0,
                    viewing: None,
                })
                .connections += 1;
        }
        Here {
            presence: self.clone(),
            username: username.to_string(),
            tab,
        }
    }

    fn leave(&self, username: &str, tab: Option<TabKey>) {
        let mut state = self.state();
        if let Some(key) = tab
            && let Some(t) = state.tabs.get_mut(&key)
        {
            t.connections = t.connections.saturating_sub(1);
            if t.connections == 0 {
                let viewed = t.viewing.is_some();
                state.tabs.remove(&key);
                if viewed {
                    self.mark(&mut state);
                }
            }
        }
        if let Some(user) = state.users.get_mut(username) {
            user.connections = user.connections.saturating_sub(1);
            if user.connections == 0 {
                state.users.remove(username);
                self.mark(&mut state);
            }
        }
    }

    /// `tab` of this session now shows `file`'s history (None: nothing).
    /// Refused when the tab has no live connection: nothing would end it.
    pub fn view(&self, session: &[u8], tab: &Tab, file: Option<u64>) -> AppResult<()> {
        let mut state = self.state();
        let key = (session.to_vec(), tab.clone());
        let Some(t) = state.tabs.get_mut(&key) else {
            return match file {
                // Closing what is not open: already so.
                None => Ok(()),
                Some(_) => Err(AppError::Conflict(
                    "This tab has no live connection; presence is kept only while one is open."
                        .into(),
                )),
            };
        };
        if t.viewing != file {
            t.viewing = file;
            self.mark(&mut state);
        }
        Ok(())
    }

    /// A file was deleted: nobody views it any more.
    pub fn forget_file(&self, file: u64) {
        let mut state = self.state();
        let mut any = false;
        for t in state.tabs.values_mut() {
            if t.viewing == Some(file) {
                t.viewing = None;
                any = true;
            }
        }
        if any {
            self.mark(&mut state);
        }
    }

    /// Presence now.
    pub fn snapshot(&self) -> Snapshot {
        Self::snapshot_of(&self.state())
    }

    fn snapshot_of(state: &State) -> Snapshot {
        let mut online: Vec<Online> = state
            .users
            .iter()
            .map(|(username, u)| Online {
                username: username.clone(),
                display_name: u.display_name.clone(),
                since: u.since,
            })
            .collect();
        online.sort_by(|a, b| {
            a.display_name
                .to_lowercase()
                .cmp(&b.display_name.to_lowercase())
                .then_with(|| a.username.cmp(&b.username))
        });
        let mut viewing: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for t in state.tabs.values() {
            if let Some(file) = t.viewing {
                viewing.entry(file).or_default().push(t.username.clone());
            }
        }
        for names in viewing.values_mut() {
            names.sort();
            names.dedup();
        }
        Snapshot { online, viewing }
    }

    /// Runs the ticker on a thread of its own. `publish` is given each
    /// change (and `None` now and then, to ask whether to go on); it answers
    /// false once its hub is gone, which ends the thread.
    pub fn start_ticker<F>(&self, tick: Duration, mut publish: F) -> AppResult<()>
    where
        F: FnMut(Publish<'_>) -> bool + Send + 'static,
    {
        let presence = self.clone();
        std::thread::Builder::new()
            .name("latch-presence".into())
            .spawn(move || {
                let mut sent = Snapshot::default();
                let mut last: Option<Instant> = None;
                loop {
                    if !presence.wait_dirty() && !publish(None) {
                        return;
                    }
                    if let Some(at) = last {
                        std::thread::sleep((at + tick).saturating_duration_since(Instant::now()));
                    }
                    let now = {
                        let mut state = presence.state();
                        if !state.dirty {
                            continue;
                        }
                        state.dirty = false;
                        Self::snapshot_of(&state)
                    };
                    let changed = now.changed_files(&sent);
                    if now.online == sent.online && changed.is_empty() {
                        continue;
                    }
                    if !publish(Some((&now, &changed))) {
                        return;
                    }
                    sent = now;
                    last = Some(Instant::now());
                }
            })
            .map_err(|e| AppError::internal("starting the presence ticker", e))?;
        Ok(())
    }

    /// Waits until something changed (true) or a while passed (false).
    fn wait_dirty(&self) -> bool {
        let state = self.state();
        let (state, _) = self
            .inner
            .changed
            .wait_timeout_while(state, IDLE_CHECK, |s| !s.dirty)
            .unwrap_or_else(|p| p.into_inner());
        state.dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(name: &str) -> Tab {
        Tab::parse(name).unwrap()
    }

    #[test]
    fn two_tabs_are_one_person_until_the_last_closes() {
        let p = Presence::default();
        let a = p.arrive("alice", "Alice", b"s1", Some(tab("t1")));
        let b = p.arrive("alice", "Alice", b"s1", Some(tab("t2")));
        assert_eq!(p.snapshot().online.len(), 1);
        drop(a);
        assert_eq!(p.snapshot().online.len(), 1);
        drop(b);
        assert!(p.snapshot().online.is_empty());
    }

    #[test]
    fn viewing_ends_with_the_tabs_last_connection() {
        let p = Presence::default();
        let old = p.arrive("carol", "Carol", b"s", Some(tab("t")));
        p.view(b"s", &tab("t"), Some(7)).unwrap();
        // A reconnect overlaps the old connection: the viewing stays.
        let new = p.arrive("carol", "Carol", b"s", Some(tab("t")));
        drop(old);
        assert_eq!(p.snapshot().viewers(7), ["carol".to_string()]);
        drop(new);
        assert!(p.snapshot().viewing.is_empty());
        // Without a connection, nothing would end it: refused.
        assert!(p.view(b"s", &tab("t"), Some(7)).is_err());
        assert!(p.view(b"s", &tab("t"), None).is_ok());
        // Another session cannot set this session's tab.
        let _here = p.arrive("carol", "Carol", b"s", Some(tab("t")));
        assert!(p.view(b"other", &tab("t"), Some(7)).is_err());
    }

    #[test]
    fn one_file_per_tab_and_each_viewer_once() {
        let p = Presence::default();
        let _a = p.arrive("carol", "Carol", b"s", Some(tab("a")));
        let _b = p.arrive("carol", "Carol", b"s", Some(tab("b")));
        p.view(b"s", &tab("a"), Some(1)).unwrap();
        p.view(b"s", &tab("a"), Some(2)).unwrap();
        p.view(b"s", &tab("b"), Some(2)).unwrap();
        let snap = p.snapshot();
        assert!(snap.viewers(1).is_empty());
        assert_eq!(snap.viewers(2), ["carol".to_string()]);
        p.forget_file(2);
        assert!(p.snapshot().viewing.is_empty());
    }

    #[test]
    fn tab_names_are_checked() {
        for bad in ["", "a b", "x".repeat(65).as_str(), "é", "a&b"] {
            assert!(Tab::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Tab::parse("Ab-9_z").unwrap().as_str(), "Ab-9_z");
    }

    #[test]
    fn changed_files_are_the_difference() {
        let mut a = Snapshot::default();
        a.viewing.insert(1, vec!["x".into()]);
        a.viewing.insert(2, vec!["y".into()]);
        let mut b = Snapshot::default();
        b.viewing.insert(2, vec!["y".into()]);
        b.viewing.insert(3, vec!["z".into()]);
        assert_eq!(a.changed_files(&b), vec![1, 3]);
    }
}
