//! Backups: a consistent copy of the data directory (`latch.redb` and
//! `vault.git`) taken while the server runs. `latch backup` asks a running
//! server for one through `POST /api/admin/backup` (redb lets only one
//! process open the database).
//!
//! What keeps the copy consistent:
//! - the database is copied row by row into a fresh `latch.redb` inside one
//!   read transaction, so it is one committed state (copying the file itself
//!   while a writer commits could catch half a commit);
//! - that read transaction begins before the vault's refs are read, so the
//!   copied `main` is the database's recorded head or newer (a commit whose
//!   database transaction was still open), never older; a newer commit is
//!   applied from its trailers when the copy is first started, exactly as
//!   after a crash;
//! - refs are read *before* the objects are copied and written *after*, and
//!   Git objects are only ever added, so every copied ref names objects that
//!   were copied.

use crate::inbox::{NOTIFICATIONS, NUDGES, UNREAD, WATCHES};
use crate::mail::OUTBOX;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use redb::{
    Database, Key, MultimapTableHandle, ReadTransaction, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableError, TableHandle, Value, WriteTransaction,
};

use crate::error::{AppError, AppResult};
use crate::store::{
    self, COUNTERS, DAV_LOCKS, DEAD_PROPS, EVENTS, FILES, FILES_LOG, FileRecord, KEPT_FOLDERS,
    META, PATHS, RECORDED_HEAD, SESSIONS, Store, TOKEN_HASHES, TOKENS, USERS, VERSIONS,
};

/// What a backup holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub dir: PathBuf,
    pub files: u64,
    pub users: u64,
    /// The newest event sequence in the copy.
    pub last_seq: u64,
    /// The `main` commit the copied database records.
    pub head: Option<String>,
    pub rows: u64,
    pub objects: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Writes a backup of the data behind `store` and `vault` into `dir`, which
/// must be new or empty. On failure nothing is left in `dir`. Blocking.
pub fn write(store: &Store, data_dir: &Path, vault: &Path, dir: &Path) -> AppResult<Report> {
    let started = Instant::now();
    let created = prepare_target(dir, data_dir)?;
    let result = store.read(|txn| {
        check_tables_known(txn)?;
        // Read after the snapshot began: see the module comment.
        let refs = Refs::read(vault)?;
        let rows = copy_database(txn, &dir.join("latch.redb"))?;
        let (objects, bytes) = copy_vault(vault, &dir.join("vault.git"), &refs)?;
        copy_drafts(txn, &data_dir.join("drafts"), &dir.join("drafts"))?;
        let head = store::meta_get(&txn.open_table(META)?, RECORDED_HEAD)?;
        let next_seq = txn
            .open_table(COUNTERS)?
            .get("next_seq")?
            .map(|v| v.value())
            .unwrap_or(1);
        Ok(Report {
            dir: dir.to_path_buf(),
            files: txn.open_table(FILES)?.len()?,
            users: txn.open_table(USERS)?.len()?,
            last_seq: next_seq.saturating_sub(1),
            head,
            rows,
            objects,
            bytes,
            seconds: 0.0,
        })
    });
    match result {
        Ok(mut report) => {
            sync_dir(dir);
            report.seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                dir = %dir.display(),
                files = report.files,
                objects = report.objects,
                seconds = report.seconds,
                "backup written"
            );
            Ok(report)
        }
        Err(e) => {
            if created {
                let _ = fs::remove_dir_all(dir);
            } else {
                let _ = fs::remove_file(dir.join("latch.redb"));
                let _ = fs::remove_dir_all(dir.join("vault.git"));
            }
            Err(e)
        }
    }
}

/// The path with `.` and `..` resolved against the deepest part that exists.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = if existing.as_os_str().is_empty() {
        std::env::current_dir()?
    } else {
        existing.canonicalize()?
    };
    for part in rest.iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            _ => out.push(part),
        }
    }
    Ok(out)
}

/// Checks that `dir` is new or empty and not inside what Latch manages;
/// creates it. Returns whether it was created.
fn prepare_target(dir: &Path, data_dir: &Path) -> AppResult<bool> {
    let shown = dir.display();
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(AppError::Invalid(format!(
            "{shown} contains '..'; give the backup directory plainly."
        )));
    }
    if dir.exists() {
        if !dir.is_dir() {
            return Err(AppError::Conflict(format!(
                "{shown} exists and is not a directory; choose a new or empty directory."
            )));
        }
        if fs::read_dir(dir)?.next().is_some() {
            return Err(AppError::Conflict(format!(
                "{shown} is not empty; choose a new or empty directory for the backup."
            )));
        }
    }
    let target = resolve(dir)?;
    let data = resolve(data_dir)?;
    if target == data
        || target.starts_with(data.join("vault.git"))
        || target.starts_with(data.join("spool"))
        || target.starts_with(data.join("drafts"))
    {
        return Err(AppError::Invalid(format!(
            "{shown} is part of the data directory itself; choose a directory outside it (or a new folder beside vault.git)."
        )));
    }
    let created = !dir.exists();
    fs::create_dir_all(dir).map_err(|e| {
        AppError::Invalid(format!("Cannot create the backup directory {shown}: {e}."))
    })?;
    Ok(created)
}

/// The tables the backup copies: every table of `store`.
fn table_names() -> [&'static str; 19] {
    [
        USERS.name(),
        SESSIONS.name(),
        TOKENS.name(),
        TOKEN_HASHES.name(),
        FILES.name(),
        PATHS.name(),
        EVENTS.name(),
        COUNTERS.name(),
        META.name(),
        VERSIONS.name(),
        FILES_LOG.name(),
        NOTIFICATIONS.name(),
        UNREAD.name(),
        WATCHES.name(),
        NUDGES.name(),
        OUTBOX.name(),
        KEPT_FOLDERS.name(),
        DAV_LOCKS.name(),
        DEAD_PROPS.name(),
    ]
}

/// Copies the drafts the copied records name. One replaced since the
/// snapshot is gone already; the copy's start drops its record then.
fn copy_drafts(txn: &ReadTransaction, from: &Path, to: &Path) -> AppResult<()> {
    fs::create_dir_all(to)?;
    for row in txn.open_table(FILES)?.iter()? {
        let (_, value) = row?;
        let rec: FileRecord = store::decode(value.value())?;
        if let Some(draft) = rec.lock.and_then(|l| l.draft) {
            match copy_file(&from.join(&draft.file), &to.join(&draft.file)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Refuses to make a backup that would silently leave a table out: a table
/// added to `store` must be added to `copy_database` too.
fn check_tables_known(txn: &ReadTransaction) -> AppResult<()> {
    let known = table_names();
    for table in txn.list_tables()? {
        if !known.contains(&table.name()) {
            return Err(AppError::Internal(format!(
                "the database has a table '{}' that the backup does not copy (src/backup.rs)",
                table.name()
            )));
        }
    }
    if let Some(table) = txn.list_multimap_tables()?.next() {
        return Err(AppError::Internal(format!(
            "the database has a multimap table '{}' that the backup does not copy",
            table.name()
        )));
    }
    Ok(())
}

fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> AppResult<u64> {
    let source = match from.open_table(table) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut target = to.open_table(table)?;
    let mut rows = 0;
    for row in source.iter()? {
        let (k, v) = row?;
        target.insert(k.value(), v.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// Copies every row seen by `txn` into a new database at `path`.
fn copy_database(txn: &ReadTransaction, path: &Path) -> AppResult<u64> {
    let db = Database::create(path)?;
    let w = db.begin_write()?;
    let mut rows = 0;
    rows += copy_table(txn, &w, USERS)?;
    rows += copy_table(txn, &w, SESSIONS)?;
    rows += copy_table(txn, &w, TOKENS)?;
    rows += copy_table(txn, &w, TOKEN_HASHES)?;
    rows += copy_table(txn, &w, FILES)?;
    rows += copy_table(txn, &w, PATHS)?;
    rows += copy_table(txn, &w, EVENTS)?;
    rows += copy_table(txn, &w, COUNTERS)?;
    rows += copy_table(txn, &w, META)?;
    rows += copy_table(txn, &w, VERSIONS)?;
    rows += copy_table(txn, &w, FILES_LOG)?;
    rows += copy_table(txn, &w, NOTIFICATIONS)?;
    rows += copy_table(txn, &w, UNREAD)?;
    rows += copy_table(txn, &w, WATCHES)?;
    rows += copy_table(txn, &w, NUDGES)?;
    rows += copy_table(txn, &w, OUTBOX)?;
    rows += copy_table(txn, &w, KEPT_FOLDERS)?;
    rows += copy_table(txn, &w, DAV_LOCKS)?;
    rows += copy_table(txn, &w, DEAD_PROPS)?;
    w.commit()?;
    Ok(rows)
}

/// The vault's refs at one moment: `HEAD`, `packed-refs` and `refs/**`.
struct Refs {
    head: Vec<u8>,
    packed: Option<Vec<u8>>,
    loose: Vec<(PathBuf, Vec<u8>)>,
}

impl Refs {
    fn read(vault: &Path) -> AppResult<Refs> {
        let head = fs::read(vault.join("HEAD"))?;
        let packed = match fs::read(vault.join("packed-refs")) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let mut loose = Vec::new();
        let refs = vault.join("refs");
        let mut files = Vec::new();
        walk(&refs, &mut files)?;
        for path in files {
            if is_lock_or_temp(&path) {
                continue;
            }
            match fs::read(&path) {
                Ok(bytes) => loose.push((rel(&refs, &path), bytes)),
                // Deleted (packed) between listing and reading.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Refs {
            head,
            packed,
            loose,
        })
    }
}

fn rel(base: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(base).unwrap_or(path).to_path_buf()
}

fn is_lock_or_temp(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // gix and git write objects and packs under temporary names first.
    name.ends_with(".lock") || name.starts_with(".tmp") || name.starts_with("tmp_")
}

/// Every regular file under `dir` (none when it does not exist).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Copies one file and makes it durable; returns its size.
fn copy_file(from: &Path, to: &Path) -> io::Result<u64> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    let size = fs::copy(from, to)?;
    fs::File::open(to)?.sync_all()?;
    Ok(size)
}

fn write_file(to: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(to, bytes)?;
    fs::File::open(to)?.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Copies the bare repository: its small files, then the objects, then the
/// refs as `refs` recorded them. Returns (objects copied, bytes copied).
fn copy_vault(src: &Path, dst: &Path, refs: &Refs) -> AppResult<(u64, u64)> {
    fs::create_dir_all(dst)?;
    let mut bytes = 0;
    // Config, description, info/, hooks/ …: everything but objects and refs.
    let mut files = Vec::new();
    walk(src, &mut files)?;
    let skip_top = ["objects", "refs", "packed-refs", "HEAD", "logs"];
    for path in &files {
        let relative = rel(src, path);
        let top = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        if skip_top.contains(&top.as_str()) || is_lock_or_temp(path) {
            continue;
        }
        bytes += copy_file(path, &dst.join(&relative))?;
    }
    // Objects, after the refs were read.
    let objects_dir = src.join("objects");
    let mut objects = Vec::new();
    walk(&objects_dir, &mut objects)?;
    let mut count = 0;
    for path in &objects {
        if is_lock_or_temp(path) {
            continue;
        }
        let relative = rel(&objects_dir, path);
        match copy_file(path, &dst.join("objects").join(&relative)) {
            Ok(n) => bytes += n,
            // A loose object packed away meanwhile (a manual `git gc`) is
            // in a pack that this walk either copied or will copy.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
        if relative.components().count() == 2
            && relative.parent().is_some_and(|p| p.as_os_str().len() == 2)
        {
            count += 1;
        }
    }
    for sub in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        fs::create_dir_all(dst.join(sub))?;
    }
    // Refs last, HEAD very last: a ref never names an object not yet copied.
    for (relative, content) in &refs.loose {
        write_file(&dst.join("refs").join(relative), content)?;
    }
    if let Some(packed) = &refs.packed {
        write_file(&dst.join("packed-refs"), packed)?;
    }
    write_file(&dst.join("HEAD"), &refs.head)?;
    sync_dir(dst);
    Ok((count, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_table_without_a_copy_step_fails_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("latch.redb"))
            .ok()
            .expect("open");
        store.read(check_tables_known).expect("all tables known");
        const EXTRA: TableDefinition<u64, u64> = TableDefinition::new("extra");
        store
            .write(|tx| {
                tx.txn.open_table(EXTRA)?;
                Ok(())
            })
            .unwrap();
        let err = store.read(check_tables_known).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn refuses_a_directory_with_files_in_it_or_inside_the_vault() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("vault.git")).unwrap();
        fs::write(data.join("latch.redb"), b"x").unwrap();
        assert!(prepare_target(&data, &data).is_err());
        assert!(prepare_target(&data.join("vault.git/objects/x"), &data).is_err());
        assert!(prepare_target(&data.join("backups/../vault.git/y"), &data).is_err());
        assert!(prepare_target(&data.join("backups/one"), &data).unwrap());
        assert!(!prepare_target(&data.join("backups/one"), &data).unwrap());
    }
}
