//! The index of each file's versions (the `versions` table), so a file's
//! history is read in O(its versions) rather than by walking all of `main`.
//!
//! Git stays the truth: every entry is what `describe` reads from a commit,
//! written in the write transaction that records the commit (`commit_in`,
//! and reconciliation for a commit the database missed). Whether the table
//! covers every commit up to the recorded head is the `versions_indexed`
//! key in `meta`; without it (a database from before schema 5, or one made
//! afresh beside an existing vault) reconciliation rebuilds the table by
//! walking `main` once.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::reads::Version;
use crate::domain::RepoPath;
use crate::error::{AppError, AppResult};
use crate::store::{self, META, VERSIONS};
use crate::vault::{Action, CommitId, CommitInfo, Vault};

/// Set in `meta` while the index holds every commit up to the recorded head.
pub const INDEXED: &str = "versions_indexed";

/// One version as stored: what history shows, with the path it had then.
#[derive(Serialize, Deserialize)]
struct Stored {
    commit: CommitId,
    action: String,
    revision: String,
    author: String,
    username: String,
    at: i64,
    message: String,
    path: RepoPath,
}

impl Stored {
    fn into_version(self) -> Version {
        Version {
            commit: self.commit,
            // Anything else was never written: kept readable, shown as foreign.
            action: Action::parse(&self.action).map_or("", Action::as_str),
            revision: self.revision,
            author: self.author,
            username: self.username,
            at: self.at,
            message: self.message,
            path: self.path,
        }
    }
}

/// Adds what `commit` did to each file it names. A commit already the
/// file's newest entry is not added twice (a reconcile after a rebuild).
pub fn index_commit(txn: &WriteTransaction, commit: &CommitInfo) -> AppResult<()> {
    let mut table = txn.open_table(VERSIONS)?;
    for t in &commit.trailers {
        let last = table
            .range((t.file_id, 0)..=(t.file_id, u64::MAX))?
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.value().1, store::decode::<Stored>(v.value())))
            .map(|(n, stored)| stored.map(|s| (n, s.commit)))
            .transpose()?;
        if last.is_some_and(|(_, c)| c == commit.id) {
            continue;
        }
        let number = last.map_or(1, |(n, _)| n.saturating_add(1));
        let stored = Stored {
            commit: commit.id,
            action: t.action.as_str().to_string(),
            revision: t.revision.clone().unwrap_or_default(),
            author: commit.author_name.clone(),
            username: t.user.clone(),
            at: commit.at,
            message: commit.message.clone(),
            path: t.path.clone(),
        };
        table.insert((t.file_id, number), store::encode(&stored)?.as_slice())?;
    }
    Ok(())
}

/// Whether the index covers every recorded commit.
pub fn is_complete(txn: &WriteTransaction) -> AppResult<bool> {
    Ok(store::meta_get(&txn.open_table(META)?, INDEXED)?.is_some())
}

/// Empties the index and fills it from every commit on `main`, oldest
/// first; marks it complete. Returns how many commits it read.
pub fn rebuild(txn: &WriteTransaction, vault: &Vault) -> AppResult<usize> {
    txn.open_table(VERSIONS)?.retain(|_, _| false)?;
    let mut commits = vault.log(None, None, usize::MAX)?;
    commits.reverse();
    for commit in &commits {
        index_commit(txn, commit)?;
    }
    txn.open_table(META)?.insert(INDEXED, "1")?;
    tracing::info!(
        commits = commits.len(),
        "built the index of file versions from Git"
    );
    Ok(commits.len())
}

/// File `id`'s newest `limit` versions, newest first.
pub fn read(txn: &ReadTransaction, id: u64, limit: usize) -> AppResult<Vec<Version>> {
    let table = txn.open_table(VERSIONS)?;
    let mut out = Vec::new();
    for row in table.range((id, 0)..=(id, u64::MAX))?.rev().take(limit) {
        let (_, value) = row?;
        out.push(store::decode::<Stored>(value.value())?.into_version());
    }
    Ok(out)
}

/// Marks the index incomplete, for the migration that adds it: the next
/// reconciliation (at start-up) builds it from Git.
pub fn create_for_rebuild(txn: &WriteTransaction) -> AppResult<()> {
    txn.open_table(VERSIONS)?;
    txn.open_table(META)?
        .remove(INDEXED)
        .map_err(AppError::from)?;
    Ok(())
}
