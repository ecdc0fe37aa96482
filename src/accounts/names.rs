//! Who is who, for templates: username → display name, kept in memory by
//! `Accounts` (filled at start, updated when a user is added or renamed),
//! so a card rendered for every viewer class reads no database.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::store::UserRecord;

/// A shared directory of display names; cheap to clone. A name it does not
/// know (a user removed since, an event from before) shows as the username.
#[derive(Clone, Default, Debug)]
pub struct Names(Arc<RwLock<HashMap<String, String>>>);

impl Names {
    /// The display name of `username`, or the username itself.
    pub fn of(&self, username: &str) -> String {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(username)
            .cloned()
            .unwrap_or_else(|| username.to_string())
    }

    /// Whether `username`'s display name contains `needle` (lowercase).
    pub fn display_contains(&self, username: &str, needle: &str) -> bool {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(username)
            .is_some_and(|d| d.to_lowercase().contains(needle))
    }

    pub fn set(&self, user: &UserRecord) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.insert(user.username.clone(), user.display_name.clone());
    }

    pub fn fill(&self, users: &[UserRecord]) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        for u in users {
            map.insert(u.username.clone(), u.display_name.clone());
        }
    }
}
