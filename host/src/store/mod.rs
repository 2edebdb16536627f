//! The store: the one libsql file under memory, messaging and agents. It
//! owns the file, its pragmas, migrations, the group-committing writer,
//! the reader pool, WAL checkpoints and offline maintenance. What lives in
//! its tables belongs to the modules above (the knowledge graph to
//! `memory`, conversations to `messaging`, deployments to `agents`), each
//! through its own small type over [`Db`].

mod checkpoint;
mod db;
mod group_commit;
mod maintenance;
mod migrations;
mod wal_sync;

use std::path::PathBuf;

pub use db::{Db, Reader};

/// The WAL file SQLite keeps beside `database` (`<file>-wal`).
pub fn wal_path(database: &std::path::Path) -> std::path::PathBuf {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}
pub use group_commit::{AfterCommit, CatchUp, CommitFailed, Reconnect};
pub use maintenance::{Analysis, MaintenanceReport, Steps, analyze, maintain};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database was written by a newer Caxton (schema version {found}, this build knows up to {supported}); upgrade Caxton or point memory.database_path at another file"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error(
        "migration {name} differs from the one this database recorded; migrations must never be edited once shipped"
    )]
    MigrationChanged { name: String },
    #[error("database error: {0}")]
    Sql(#[from] libsql::Error),
    #[error("the write was not committed: {}", .0.message)]
    Commit(CommitFailed),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the memory primary is unreachable ({0}); reads still work from the local replica, retry the write shortly"
    )]
    Unavailable(String),
}

impl From<CommitFailed> for StoreError {
    fn from(failed: CommitFailed) -> Self {
        StoreError::Commit(failed)
    }
}

impl StoreError {
    /// The store could not grow: the disk (or the file size limit) is full.
    /// Reads still work; writes work again once space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sql(error) => Self::is_disk_full_sql(error),
            StoreError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            StoreError::Commit(failed) => failed.disk_full,
            _ => false,
        }
    }
}

impl StoreError {
    /// The write could not reach the primary this store replicates (its
    /// server is down or unreachable): nothing was committed, and reads
    /// still work from the replica.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Sql(error) => Self::is_unavailable_sql(error),
            StoreError::Commit(failed) => failed.unavailable,
            _ => false,
        }
    }

    /// Whether a libsql error says the primary could not be reached.
    pub fn is_unavailable_sql(error: &libsql::Error) -> bool {
        matches!(
            error,
            libsql::Error::WriteDelegation(_)
                | libsql::Error::Replication(_)
                | libsql::Error::ConnectionFailed(_)
                | libsql::Error::Sync(_)
        )
    }

    /// Whether a libsql error says the disk is full.
    pub fn is_disk_full_sql(error: &libsql::Error) -> bool {
        const SQLITE_FULL: i32 = 13;
        match error {
            libsql::Error::SqliteFailure(code, message) => {
                code & 0xff == SQLITE_FULL || message.contains("disk is full")
            }
            other => other.to_string().contains("disk is full"),
        }
    }
}

/// Unix time in milliseconds, as stored in the tables.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
