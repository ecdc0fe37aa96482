//! The schema version of `latch.redb` and the migrations that bring a data
//! directory written by an older Latch up to this one.
//!
//! Rules (proven by `tests/it/upgrade.rs` on every fixture under
//! `tests/fixtures/`, and by the tests below):
//! - the version lives in the `meta` table under `schema_version`; Latch
//!   0.1.0 wrote none, and its layout is version 1;
//! - each migration runs in its own write transaction, which also records
//!   the version it reaches: a crash mid-way leaves the previous version and
//!   its data whole, and the next start runs that step again;
//! - a database from a newer Latch is refused before anything is written;
//! - every change to a table or a record's encoding adds a migration here
//!   (and a fixture from the release before it), even when old records
//!   still decode: the version says what a later Latch may assume.

use redb::{Database, ReadableDatabase, TableError, WriteTransaction};

use crate::error::{AppError, AppResult};
use crate::store::META;

/// The schema this Latch writes and reads.
pub const CURRENT: u32 = 6;

const VERSION_KEY: &str = "schema_version";

/// One step from `to - 1` to `to`.
#[derive(Clone, Copy)]
pub struct Migration {
    pub to: u32,
    /// What it does, for the log.
    pub what: &'static str,
    pub run: fn(&WriteTransaction) -> AppResult<()>,
}

/// Every step, oldest first. Append; never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        to: 1,
        what: "record the schema version of a data directory written by Latch 0.1.0 (its tables are version 1's)",
        run: |_| Ok(()),
    },
    Migration {
        to: 2,
        what: "file records may carry a wait-list and a reservation, and events the kinds queued, dequeued, reserved and released; existing records read as they are (an older Latch must not read them and drop the queue)",
        run: |_| Ok(()),
    },
    Migration {
        to: 3,
        what: "each person's inbox (notifications and an unread count), what they watch, and when they last asked a holder to release a file; user records may carry an e-mail address and which notifications to mail, and mail owed waits in an outbox; an older Latch must not open it and leave people's notifications behind",
        run: crate::inbox::create_tables,
    },
    Migration {
        to: 4,
        what: "user records may carry how the person likes the dashboard listed (cards or table); existing records read as cards, and an older Latch must not rewrite them and drop the choice",
        run: |_| Ok(()),
    },
    Migration {
        to: 5,
        what: "each file's versions are indexed (the versions table), so history no longer walks all of main; the table is created here and filled from Git by the reconciliation that runs at every start, which walks main once (an older Latch must not commit without indexing)",
        run: crate::files::versions::create_for_rebuild,
    },
    Migration {
        to: 6,
        what: "the network drive (WebDAV): a lock may carry its holder's draft, folders made empty are kept, and WebDAV lock tokens are kept with the check-out they stand for; an older Latch must not check in or cancel and leave a draft behind",
        run: crate::files::create_drive_tables,
    },
];

/// Why a database cannot be brought to this Latch's schema.
#[derive(Debug)]
pub enum SchemaError {
    /// Written by a newer Latch; nothing was changed.
    Newer {
        found: u32,
        supported: u32,
    },
    Other(AppError),
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaError::Newer { found, supported } => write!(
                f,
                "this data directory was written by a newer Latch (database schema {found}; this Latch reads schema {supported} and older). Nothing was changed: run the newer Latch again, or restore the backup taken before the upgrade."
            ),
            SchemaError::Other(e) => write!(f, "upgrading the database failed: {e}"),
        }
    }
}

impl<E: Into<AppError>> From<E> for SchemaError {
    fn from(e: E) -> Self {
        SchemaError::Other(e.into())
    }
}

/// The database's schema version: `None` for a new, empty database.
pub fn version(db: &Database) -> Result<Option<u32>, SchemaError> {
    let txn = db.begin_read()?;
    match txn.open_table(META) {
        Ok(meta) => match meta.get(VERSION_KEY)? {
            Some(v) => v.value().parse().map(Some).map_err(|_| {
                SchemaError::Other(AppError::Internal(format!(
                    "the stored schema version '{}' is not a number",
                    v.value()
                )))
            }),
            None => Ok(Some(0)),
        },
        // Every Latch creates `meta` on first start: no `meta`, no data.
        Err(TableError::TableDoesNotExist(_)) => {
            let empty = txn.list_tables()?.next().is_none();
            Ok(if empty { None } else { Some(0) })
        }
        Err(e) => Err(e.into()),
    }
}

fn set_version(txn: &WriteTransaction, version: u32) -> AppResult<()> {
    txn.open_table(META)?
        .insert(VERSION_KEY, version.to_string().as_str())?;
    Ok(())
}

/// Brings `db` to `current` with `migrations`; returns the versions it
/// went through (empty when there was nothing to do).
pub fn migrate(
    db: &Database,
    migrations: &[Migration],
    current: u32,
) -> Result<Vec<u32>, SchemaError> {
    let Some(mut version) = version(db)? else {
        let txn = db.begin_write()?;
        set_version(&txn, current)?;
        txn.commit()?;
        return Ok(Vec::new());
    };
    if version > current {
        return Err(SchemaError::Newer {
            found: version,
            supported: current,
        });
    }
    let mut done = Vec::new();
    let from = version;
    for step in migrations.iter().filter(|m| m.to > from && m.to <= current) {
        if step.to != version + 1 {
            return Err(SchemaError::Other(AppError::Internal(format!(
                "no migration from schema {version} to {}",
                version + 1
            ))));
        }
        let txn = db.begin_write()?;
        (step.run)(&txn)?;
        set_version(&txn, step.to)?;
        txn.commit()?;
        tracing::info!(
            from = version,
            to = step.to,
            what = step.what,
            "migrated the database"
        );
        version = step.to;
        done.push(version);
    }
    if version != current {
        return Err(SchemaError::Other(AppError::Internal(format!(
            "no migration from schema {version} to {current}"
        ))));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    use super::*;

    const ROWS: TableDefinition<&str, u64> = TableDefinition::new("rows");

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("latch.redb")).unwrap();
        (dir, db)
    }

    fn put(db: &Database, key: &str, value: u64) {
        let txn = db.begin_write().unwrap();
        txn.open_table(ROWS).unwrap().insert(key, value).unwrap();
        txn.commit().unwrap();
    }

    fn get(db: &Database, key: &str) -> Option<u64> {
        let txn = db.begin_read().unwrap();
        let rows = txn.open_table(ROWS).unwrap();
        rows.get(key).unwrap().map(|v| v.value())
    }

    const DOUBLE: Migration = Migration {
        to: 2,
        what: "double every row",
        run: |txn| {
            let mut rows = txn.open_table(ROWS)?;
            let all: Vec<(String, u64)> = rows
                .iter()?
                .map(|r| r.map(|(k, v)| (k.value().to_string(), v.value())))
                .collect::<Result<_, _>>()?;
            for (k, v) in all {
                rows.insert(k.as_str(), v * 2)?;
            }
            Ok(())
        },
    };

    const FAIL_HALFWAY: Migration = Migration {
        to: 3,
        what: "write, then fail",
        run: |txn| {
            txn.open_table(ROWS)?.insert("half", 1)?;
            Err(AppError::Internal("disk full".into()))
        },
    };

    #[test]
    fn a_new_database_starts_at_the_current_version() {
        let (_dir, db) = db();
        assert_eq!(version(&db).unwrap(), None);
        assert!(migrate(&db, MIGRATIONS, CURRENT).unwrap().is_empty());
        assert_eq!(version(&db).unwrap(), Some(CURRENT));
    }

    #[test]
    fn an_unversioned_database_with_data_is_from_0_1_0() {
        let (_dir, db) = db();
        put(&db, "a", 1);
        assert_eq!(version(&db).unwrap(), Some(0));
        let steps = [MIGRATIONS[0], DOUBLE];
        assert_eq!(migrate(&db, &steps, 2).unwrap(), vec![1, 2]);
        assert_eq!(get(&db, "a"), Some(2));
        // Idempotent: a second start has nothing to do and changes nothing.
        assert!(migrate(&db, &steps, 2).unwrap().is_empty());
        assert_eq!(get(&db, "a"), Some(2));
    }

    #[test]
    fn a_failed_migration_leaves_the_previous_version_whole() {
        let (_dir, db) = db();
        put(&db, "a", 1);
        let steps = [MIGRATIONS[0], DOUBLE, FAIL_HALFWAY];
        assert!(matches!(
            migrate(&db, &steps, 3),
            Err(SchemaError::Other(_))
        ));
        assert_eq!(version(&db).unwrap(), Some(2));
        assert_eq!(get(&db, "a"), Some(2));
        assert_eq!(get(&db, "half"), None);
    }

    #[test]
    fn a_newer_database_is_refused_untouched() {
        let (_dir, db) = db();
        put(&db, "a", 1);
        migrate(&db, &[MIGRATIONS[0], DOUBLE], 2).unwrap();
        let err = migrate(&db, MIGRATIONS, 1).unwrap_err();
        assert!(matches!(
            err,
            SchemaError::Newer {
                found: 2,
                supported: 1
            }
        ));
        assert!(err.to_string().contains("newer Latch"), "{err}");
        assert_eq!(version(&db).unwrap(), Some(2));
        assert_eq!(get(&db, "a"), Some(2));
    }

    #[test]
    fn a_gap_in_the_migrations_is_an_error_not_a_skip() {
        let (_dir, db) = db();
        put(&db, "a", 1);
        assert!(migrate(&db, &[DOUBLE], 2).is_err());
        assert_eq!(get(&db, "a"), Some(1));
    }

    #[test]
    fn the_shipped_migrations_are_numbered_one_by_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.to, i as u32 + 1, "{}", m.what);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.to), Some(CURRENT));
    }
}
