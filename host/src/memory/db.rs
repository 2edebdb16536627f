//! The libsql file: opening it, the pragmas every connection gets, and the
//! connections themselves (one writer at a time, readers in a small pool).

use std::path::{Path, PathBuf};

use tokio::sync::{Mutex, MutexGuard};

use super::MemoryError;
use super::checkpoint::{Checkpointer, WRITER_FALLBACK_FACTOR};
use crate::config::SqliteConfig;

pub struct Db {
    db: libsql::Database,
    path: PathBuf,
    config: SqliteConfig,
    /// SQLite allows one writer; queueing writers here instead of on the
    /// file lock keeps `database is locked` out of the normal path.
    writer: Mutex<libsql::Connection>,
    readers: std::sync::Mutex<Vec<libsql::Connection>>,
    _checkpointer: Option<Checkpointer>,
}

/// Readers kept open for reuse; more may be opened under load.
const POOLED_READERS: usize = 4;

impl Db {
    pub async fn open(path: &Path, config: &SqliteConfig) -> Result<Self, MemoryError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| MemoryError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .map_err(|e| MemoryError::Open {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let writer = db.connect()?;
        // Only takes effect on a new file (before the first table): lets
        // `caxton storage maintenance` give freed pages back to the disk.
        pragma(&writer, "PRAGMA auto_vacuum = INCREMENTAL").await?;
        apply_pragmas(&writer, config, true).await?;
        super::migrations::migrate(&writer).await?;
        let checkpointer = match (config.wal_mode, config.checkpoint_interval.is_zero()) {
            (true, false) => Some(Checkpointer::start(&db, config.checkpoint_interval)?),
            _ => None,
        };
        Ok(Self {
            db,
            path: path.to_owned(),
            config: config.clone(),
            writer: Mutex::new(writer),
            readers: std::sync::Mutex::default(),
            _checkpointer: checkpointer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write connection; hold it for the whole write transaction.
    pub async fn writer(&self) -> MutexGuard<'_, libsql::Connection> {
        self.writer.lock().await
    }

    /// A read connection from the pool (opened on demand).
    pub async fn reader(&self) -> Result<Reader<'_>, MemoryError> {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = self.db.connect()?;
                apply_pragmas(&conn, &self.config, false).await?;
                conn
            }
        };
        Ok(Reader {
            db: self,
            conn: Some(conn),
        })
    }
}

/// A pooled read connection, returned to the pool on drop.
pub struct Reader<'a> {
    db: &'a Db,
    conn: Option<libsql::Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = libsql::Connection;
    fn deref(&self) -> &libsql::Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let mut pool = self.db.readers.lock().expect("reader pool");
        if pool.len() < POOLED_READERS {
            pool.extend(self.conn.take());
        }
    }
}

/// Pragmas that return a row (journal_mode) must be run as queries: libsql's
/// `execute` refuses statements that return rows.
async fn pragma(conn: &libsql::Connection, sql: &str) -> Result<(), MemoryError> {
    let mut rows = conn.query(sql, ()).await?;
    while rows.next().await?.is_some() {}
    Ok(())
}

async fn apply_pragmas(
    conn: &libsql::Connection,
    config: &SqliteConfig,
    writer: bool,
) -> Result<(), MemoryError> {
    // Wait for a lock instead of failing at once: without this, two writers
    // (say the server and `caxton storage maintenance`) fail immediately.
    conn.busy_timeout(config.busy_timeout)?;
    if writer {
        let mode = if config.wal_mode { "WAL" } else { "DELETE" };
        pragma(conn, &format!("PRAGMA journal_mode = {mode}")).await?;
        // With background checkpoints the writer steps in only far past the
        // threshold: restarting the WAL syncs its header inside a commit,
        // so it should be rare, and by then the background has copied
        // nearly every frame, so the writer's own checkpoint is cheap.
        let autocheckpoint = if config.checkpoint_interval.is_zero() {
            config.wal_autocheckpoint
        } else {
            config
                .wal_autocheckpoint
                .saturating_mul(WRITER_FALLBACK_FACTOR)
                .min(i32::MAX as u64)
        };
        pragma(
            conn,
            &format!("PRAGMA wal_autocheckpoint = {autocheckpoint}"),
        )
        .await?;
        pragma(
            conn,
            &format!(
                "PRAGMA journal_size_limit = {}",
                config.journal_size_limit_mb << 20
            ),
        )
        .await?;
    }
    pragma(
        conn,
        &format!("PRAGMA synchronous = {}", config.synchronous.as_sql()),
    )
    .await?;
    // Negative cache_size is in KiB.
    pragma(
        conn,
        &format!("PRAGMA cache_size = -{}", config.cache_size_mb * 1024),
    )
    .await?;
    pragma(
        conn,
        &format!("PRAGMA mmap_size = {}", config.mmap_size_mb << 20),
    )
    .await?;
    pragma(
        conn,
        &format!("PRAGMA temp_store = {}", config.temp_store.as_sql()),
    )
    .await?;
    pragma(conn, "PRAGMA foreign_keys = ON").await?;
    Ok(())
}
