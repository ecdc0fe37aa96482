//! Who is who, for templates: username → display name, kept in memory by
//! `Accounts` (filled at start, updated when a user is added or renamed),
//! so a card rendered for every viewer class reads no database.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use crate::store::UserRecord;

/// A shared directory of display names; cheap to clone. A name it does not
/// know (a user removed since, an event from before) shows as the username.
#[derive(Clone, Default, Debug)]
pub struct Names(Arc<RwLock<Directory>>);

#[derive(Default, Debug)]
struct Directory {
    names: HashMap<String, String>,
    /// Usernames whose display name could be taken for someone else's:
    /// two people called "Alice", or a display name that is another
    /// person's username. A card names them with their username too.
    ambiguous: HashSet<String>,
}

impl Directory {
    /// Recomputed on every change: changes are rare (an add, a rename),
    /// reads happen for every card of every event.
    fn recount(&mut self) {
        let key = |s: &str| s.trim().to_lowercase();
        let mut holders: HashMap<String, usize> = HashMap::new();
        for display in self.names.values() {
            *holders.entry(key(display)).or_default() += 1;
        }
        let usernames: HashSet<String> = self.names.keys().map(|u| key(u)).collect();
        self.ambiguous = self
            .names
            .iter()
            .filter(|(user, display)| {
                let d = key(display);
                holders.get(&d).copied().unwrap_or(0) > 1
                    || (d != key(user) && usernames.contains(&d))
            })
            .map(|(user, _)| user.clone())
            .collect();
    }
}

impl Names {
    /// How a card names `username`: the display name, with the username
    /// beside it when the display name alone could mean someone else; the
    /// username itself for a name it does not know.
    pub fn of(&self, username: &str) -> String {
        let dir = self.0.read().unwrap_or_else(|p| p.into_inner());
        match dir.names.get(username) {
            Some(d) if dir.ambiguous.contains(username) => format!("{d} ({username})"),
            Some(d) => d.clone(),
            None => username.to_string(),
        }
    }

    /// Whether `username`'s display name contains `needle` (lowercase).
    pub fn display_contains(&self, username: &str, needle: &str) -> bool {
        let dir = self.0.read().unwrap_or_else(|p| p.into_inner());
        dir.names
            .get(username)
            .is_some_and(|d| d.to_lowercase().contains(needle))
    }

    pub fn set(&self, user: &UserRecord) {
        let mut dir = self.0.write().unwrap_or_else(|p| p.into_inner());
        dir.names
            .insert(user.username.clone(), user.display_name.clone());
        dir.recount();
    }

    pub fn fill(&self, users: &[UserRecord]) {
        let mut dir = self.0.write().unwrap_or_else(|p| p.into_inner());
        for u in users {
            dir.names.insert(u.username.clone(), u.display_name.clone());
        }
        dir.recount();
    }
}
