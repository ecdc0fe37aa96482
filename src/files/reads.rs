//! What `Files` reads without changing anything: the list, the dashboard,
//! the activity log, a file's history from Git, and a version's bytes.

use super::{Files, blocking, not_found};
use crate::domain::RepoPath;
use crate::error::{AppError, AppResult};
use crate::store::{Event, FILES, FileRecord, PATHS, decode, get_file};
use crate::vault::{Action, CommitId, CommitInfo};

/// One version of a file as history lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub commit: CommitId,
    /// What the commit did to the file: `create`, `checkin`, `move`
    /// (empty for a commit Latch did not make).
    pub action: &'static str,
    pub revision: String,
    pub author: String,
    pub username: String,
    pub at: i64,
    pub message: String,
    /// The file's path after the commit (a move changes it).
    pub path: RepoPath,
}

/// A version opened for download.
pub struct Download {
    /// The file's path at that version (a move changes it).
    pub path: RepoPath,
    pub file_name: String,
    pub size: u64,
    pub reader: Box<dyn std::io::Read + Send>,
}

/// The dashboard's reading of the vault.
pub struct Board {
    pub files: std::sync::Arc<Vec<FileRecord>>,
    pub recent: Vec<Event>,
    /// The newest event the reading includes.
    pub seq: u64,
}

impl Files {
    /// Every file, in path order (shared: see `Store::files_now`).
    pub async fn list(&self) -> AppResult<std::sync::Arc<Vec<FileRecord>>> {
        let store = self.shared.store.clone();
        blocking(move || store.files_now()).await
    }

    /// Up to `limit` files with an id of `from` or more, in id order: a
    /// list read a page at a time, so a long one is never held whole.
    pub async fn page_from(&self, from: u64, limit: usize) -> AppResult<Vec<FileRecord>> {
        let store = self.shared.store.clone();
        blocking(move || {
            store.read(|txn| {
                let table = txn.open_table(FILES)?;
                let mut page = Vec::with_capacity(limit.min(1024));
                for row in table.range(from..)?.take(limit) {
                    page.push(decode(row?.1.value())?);
                }
                Ok(page)
            })
        })
        .await
    }

    /// Checked-out files `keep` picks with an id of `from` or more, in id
    /// order, at most `limit`; and the id the next page starts at, if any.
    /// Stops reading at the first lock past the page.
    pub async fn locked_from(
        &self,
        from: u64,
        limit: usize,
        keep: impl Fn(&FileRecord) -> bool + Send + 'static,
    ) -> AppResult<(Vec<FileRecord>, Option<u64>)> {
        let store = self.shared.store.clone();
        blocking(move || {
            store.read(|txn| {
                let table = txn.open_table(FILES)?;
                let mut locked = Vec::new();
                for row in table.range(from..)? {
                    let rec: FileRecord = decode(row?.1.value())?;
                    if rec.lock.is_none() || !keep(&rec) {
                        continue;
                    }
                    if locked.len() == limit {
                        return Ok((locked, Some(rec.id)));
                    }
                    locked.push(rec);
                }
                Ok((locked, None))
            })
        })
        .await
    }

    /// What the dashboard shows, read together. The sequence is read
    /// first: anything after it is replayed when the page connects.
    pub async fn board(&self, recent: usize) -> AppResult<Board> {
        let store = self.shared.store.clone();
        blocking(move || {
            let seq = store.last_seq()?;
            Ok(Board {
                files: store.files_now()?,
                recent: store.recent_events(recent)?,
                seq,
            })
        })
        .await
    }

    /// Events after `since`, oldest first (at most 1,000); without it, the
    /// latest 100. With the newest sequence number.
    pub async fn activity(&self, since: Option<u64>) -> AppResult<(Vec<Event>, u64)> {
        let store = self.shared.store.clone();
        blocking(move || {
            let last = store.last_seq()?;
            let events = match since {
                Some(s) => store.events_after(s, 1000)?.0,
                None => {
                    let mut recent = store.recent_events(100)?;
                    recent.reverse();
                    recent
                }
            };
            Ok((events, last))
        })
        .await
    }

    /// The id of the file at `path`; 404 naming the path when there is none.
    pub async fn id_at(&self, path: &RepoPath) -> AppResult<u64> {
        let store = self.shared.store.clone();
        let key = path.as_str().to_string();
        let id = blocking(move || {
            store.read(|txn| Ok(txn.open_table(PATHS)?.get(key.as_str())?.map(|v| v.value())))
        })
        .await?;
        id.ok_or_else(|| {
            AppError::NotFound(format!(
                "{path} is not a file in the vault, so it cannot be locked; upload it in Latch first (only existing files can be checked out)."
            ))
        })
    }

    /// The newest `limit` events, newest first.
    pub async fn recent_events(&self, limit: usize) -> AppResult<Vec<Event>> {
        let store = self.shared.store.clone();
        blocking(move || store.recent_events(limit)).await
    }

    pub async fn get(&self, id: u64) -> AppResult<FileRecord> {
        let store = self.shared.store.clone();
        blocking(move || store.file(id)?.ok_or_else(|| not_found(id))).await
    }

    /// The file's newest 10,000 versions, newest first, from the index
    /// (`versions`): O(the file's versions), whatever the vault's age.
    pub async fn history(&self, id: u64) -> AppResult<(FileRecord, Vec<Version>)> {
        let store = self.shared.store.clone();
        blocking(move || {
            store.read(|txn| {
                let rec = get_file(&txn.open_table(FILES)?, id)?.ok_or_else(|| not_found(id))?;
                Ok((rec, super::versions::read(txn, id, HISTORY_LIMIT)?))
            })
        })
        .await
    }

    /// The same history read by walking every commit on `main`, as Latch
    /// did before the index: what the index must always equal (tests and
    /// the `vault_ops` bench compare them).
    pub async fn history_walked(&self, id: u64) -> AppResult<Vec<Version>> {
        let vault = self.shared.vault.clone();
        let commits = blocking(move || vault.log(None, Some(id), HISTORY_LIMIT)).await?;
        Ok(commits.into_iter().map(|c| version_of(c, id)).collect())
    }

    /// Opens the current version, or the one written by commit `rev`.
    pub async fn open(&self, id: u64, rev: Option<&str>) -> AppResult<Download> {
        let rec = self.get(id).await?;
        let rev = rev
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| r.to_string());
        let vault = self.shared.vault.clone();
        blocking(move || {
            let (blob, revision, path) = match rev {
                None => (rec.blob, rec.revision.to_string(), rec.path.clone()),
                Some(rev) => {
                    let unknown =
                        || AppError::NotFound(format!("{} has no version {rev}.", rec.path));
                    let commit = CommitId::from_hex(&rev).ok_or_else(unknown)?;
                    let info = vault.commit_info(commit)?.ok_or_else(unknown)?;
                    // Found at the path the file had then: a move changes it.
                    let trailers = info.of_file(id).filter(|t| t.action != Action::Delete);
                    let trailers = trailers.ok_or_else(unknown)?;
                    let blob = vault.blob_at(commit, &trailers.path)?.ok_or_else(unknown)?;
                    let revision = trailers.revision.clone().unwrap_or_default();
                    (blob, revision, trailers.path.clone())
                }
            };
            let (size, reader) = vault.open_blob(blob)?;
            Ok(Download {
                file_name: download_name(&path, &revision),
                path,
                size,
                reader,
            })
        })
        .await
    }
}

/// History lists at most this many versions, the newest.
const HISTORY_LIMIT: usize = 10_000;

/// Commit `c` as a version of file `id`.
fn version_of(c: CommitInfo, id: u64) -> Version {
    let (action, revision, username, path) = c
        .of_file(id)
        .map(|t| {
            let revision = t.revision.clone().unwrap_or_default();
            (t.action.as_str(), revision, t.user.clone(), t.path.clone())
        })
        .unwrap_or_else(|| ("", String::new(), String::new(), RepoPath::from_stored("")));
    Version {
        commit: c.id,
        action,
        revision,
        author: c.author_name,
        username,
        at: c.at,
        message: c.message,
        path,
    }
}

/// `parts/1234567.mcam` at 1.2 downloads as `1234567_rev1.2.mcam`.
pub fn download_name(path: &RepoPath, revision: &str) -> String {
    let name = match path.file_name() {
        "" => "file".to_string(),
        name => name.to_string(),
    };
    if revision.is_empty() {
        return name;
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}_rev{revision}.{ext}"),
        _ => format!("{name}_rev{revision}"),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::RepoPath;

    #[test]
    fn download_names_carry_the_revision() {
        let name = |path: &str, rev| super::download_name(&RepoPath::parse(path).unwrap(), rev);
        assert_eq!(name("parts/1234567.mcam", "1.2"), "1234567_rev1.2.mcam");
        assert_eq!(name("README", "2.0"), "README_rev2.0");
        assert_eq!(name(".env", "1.0"), ".env_rev1.0");
    }
}
