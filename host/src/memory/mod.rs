//! Agents' persistent memory: a knowledge graph (entities, observations,
//! relations) in one libsql file, with hybrid search — an in-process vector
//! index over observation embeddings fused with FTS5 keyword matches.

mod checkpoint;
mod cleanup;
mod db;
mod graph;
mod group_commit;
mod index;
mod maintenance;
mod migrations;
mod scope;
mod transfer;

use std::path::PathBuf;

pub use cleanup::CleanupReport;
pub use db::Db;
pub use graph::{
    EntityView, MAX_NEIGHBOURHOOD, Memory, Neighbourhood, RelationView, RememberOutcome, SearchHit,
    SearchOptions, Stats,
};
pub use group_commit::{AfterCommit, CommitFailed};
pub use index::{VectorIndex, quantize};
pub use maintenance::{MaintenanceReport, maintain};
pub use scope::{Caller, DEFAULT_WORKSPACE, Scope};
pub use transfer::{EntityKey, ExportLine, ImportReport, ObservationLine};

use crate::embed::EmbedError;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot open the memory database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the memory database was written by a newer Caxton (schema version {found}, this build knows up to {supported}); upgrade Caxton or point memory.database_path at another file"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error(
        "migration {name} differs from the one this database recorded; migrations must never be edited once shipped"
    )]
    MigrationChanged { name: String },
    #[error("database error: {0}")]
    Sql(#[from] libsql::Error),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no entity named {0:?} is visible to the caller")]
    NotFound(String),
    #[error("embedding failed: {0}")]
    Embed(#[from] EmbedError),
    #[error("the write was not committed: {}", .0.message)]
    Commit(CommitFailed),
}

impl From<CommitFailed> for MemoryError {
    fn from(failed: CommitFailed) -> Self {
        MemoryError::Commit(failed)
    }
}

impl MemoryError {
    /// The store could not grow: the disk (or the file size limit) is full.
    /// Reads still work; writes work again once space is freed.
    pub fn is_disk_full(&self) -> bool {
        const SQLITE_FULL: i32 = 13;
        match self {
            MemoryError::Sql(libsql::Error::SqliteFailure(code, message)) => {
                code & 0xff == SQLITE_FULL || message.contains("disk is full")
            }
            MemoryError::Sql(other) => other.to_string().contains("disk is full"),
            MemoryError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            MemoryError::Commit(failed) => failed.disk_full,
            _ => false,
        }
    }
}

/// Unix time in milliseconds, as stored in the tables.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
