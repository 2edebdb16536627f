//! The libsql file: opening it, the pragmas every connection gets, and the
//! connections themselves (one writer, committing in groups — see
//! [`super::group_commit`] — and readers in a small pool).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::MappedMutexGuard;

use super::StoreError;
use super::checkpoint::Checkpointer;
use super::group_commit::{AfterCommit, Durability, GroupCommit};
use super::wal_sync::WalSync;
use crate::config::{SqliteConfig, Synchronous};

pub struct Db {
    db: Arc<libsql::Database>,
    path: PathBuf,
    config: SqliteConfig,
    /// The primary this file is an embedded replica of, if it is one.
    primary: Option<String>,
    writes: Arc<GroupCommit>,
    readers: std::sync::Mutex<Vec<libsql::Connection>>,
    _checkpointer: Option<Checkpointer>,
}

/// Readers kept open for reuse; more may be opened under load.
const POOLED_READERS: usize = 4;

impl Db {
    pub async fn open(path: &Path, config: &SqliteConfig) -> Result<Self, StoreError> {
        create_parent(path)?;
        // Agents' memories are private to the user running the server,
        // whatever the umask made of an older file.
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            if let Err(error) = crate::private_files::private_file(Path::new(&file)) {
                tracing::warn!(%error, file = ?file, "cannot make the memory file private");
            }
        }
        let db = libsql::Builder::new_local(path)
            .build()
            .await
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let writer = db.connect()?;
        // Before the first statement: another process closing the file
        // (checkpointing its WAL as the last connection out) holds a lock
        // for a moment, and a start must wait for it, not fail.
        writer.busy_timeout(config.busy_timeout)?;
        // Only takes effect on a new file (before the first table): lets
        // `caxton storage maintenance` give freed pages back to the disk.
        pragma(&writer, "PRAGMA auto_vacuum = INCREMENTAL").await?;
        apply_pragmas(&writer, config, true).await?;
        super::migrations::migrate(&writer, None).await?;
        // FULL in WAL mode: the writer's commits stop at the WAL (NORMAL)
        // and synced writes sync it themselves, outside the writer. NORMAL,
        // not OFF: SQLite must still sync a restarted WAL's header before
        // the frames that overwrite the old ones (or a power cut could
        // replay stale frames over newer pages), and any checkpoint this
        // connection runs (`caxton storage maintenance`, the last close)
        // must sync. With background checkpoints that header is the
        // writer's only fsync, once per restart of the WAL.
        let wal_sync = (config.wal_mode && config.synchronous == Synchronous::Full)
            .then(|| WalSync::new(path));
        if wal_sync.is_some() {
            pragma(&writer, "PRAGMA synchronous = NORMAL").await?;
        }
        let checkpointer = match (config.wal_mode, config.checkpoint_interval.is_zero()) {
            (true, false) => Some(Checkpointer::start(&db, config)?),
            _ => None,
        };
        Ok(Self {
            db: Arc::new(db),
            path: path.to_owned(),
            config: config.clone(),
            primary: None,
            writes: GroupCommit::new(writer, wal_sync, None),
            readers: std::sync::Mutex::default(),
            _checkpointer: checkpointer,
        })
    }

    /// Opens `path` as an embedded replica of the libsql server at `url`
    /// (sqld): reads are served from the file, writes are delegated to
    /// the server, and a write is answered once the server committed it
    /// and the file has caught up with that commit (read-your-writes, done
    /// once per commit by the writer rather than by libsql after every
    /// statement, so a failed catch-up never turns a commit into an
    /// error). The file is the replicator's:
    /// no pragmas of ours, no checkpoints, no WAL syncs. The first start
    /// needs the server (to copy what it holds); later ones start from
    /// the file while it is down.
    pub async fn open_replica(
        path: &Path,
        url: &str,
        token: &str,
        config: &SqliteConfig,
    ) -> Result<Self, StoreError> {
        create_parent(path)?;
        let existed = path.exists();
        let db = libsql::Builder::new_remote_replica(path, url.to_owned(), token.to_owned())
            .read_your_writes(false)
            .build()
            .await
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                message: format!("as a replica of {url}: {e}"),
            })?;
        let db = Arc::new(db);
        match db.sync().await {
            Ok(_) => {}
            Err(error) if existed => tracing::warn!(
                %error,
                primary = url,
                "the memory primary is unreachable: serving reads from the local replica; writes fail until it is back"
            ),
            Err(error) => {
                return Err(StoreError::Open {
                    path: path.to_owned(),
                    message: format!(
                        "cannot make the first copy from the memory primary {url}: {error}; start the server there (or fix [memory] primary_url) and retry"
                    ),
                });
            }
        }
        let writer = db.connect()?;
        writer.busy_timeout(config.busy_timeout)?;
        let reconnect: super::Reconnect = {
            let db = db.clone();
            Arc::new(move || db.connect())
        };
        let catch_up: super::CatchUp = {
            let db = db.clone();
            Arc::new(move || {
                let db = db.clone();
                Box::pin(async move {
                    match db.max_write_replication_index() {
                        Some(index) => db.sync_until(index).await.map(|_| ()),
                        None => Ok(()),
                    }
                })
            })
        };
        super::migrations::migrate(&writer, Some(&catch_up)).await?;
        Ok(Self {
            db,
            path: path.to_owned(),
            config: config.clone(),
            primary: Some(url.to_owned()),
            writes: GroupCommit::new(writer, None, Some((reconnect, catch_up))),
            readers: std::sync::Mutex::default(),
            _checkpointer: None,
        })
    }

    /// Whether the file runs in WAL mode (`[memory.sqlite_config] wal_mode`).
    pub fn wal_mode(&self) -> bool {
        self.config.wal_mode
    }

    /// The primary this store replicates, if it is a replica.
    pub fn primary(&self) -> Option<&str> {
        self.primary.as_deref()
    }

    /// Pulls what the primary has that this replica lacks; returns the
    /// replica's position in the primary's log afterwards (it moves with
    /// every commit that reached the file, whoever pulled it: a write's
    /// read-your-writes sync brings other hosts' frames too). `None` for a
    /// local store.
    pub async fn sync(&self) -> Result<Option<u64>, StoreError> {
        if self.primary.is_none() {
            return Ok(None);
        }
        let replicated = self
            .db
            .sync()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(replicated.frame_no())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write connection, alone: any open write group is committed
    /// first. For work that must not share a transaction (checkpoints,
    /// maintenance, batched deletes); each statement commits on its own.
    pub async fn writer(&self) -> MappedMutexGuard<'_, libsql::Connection> {
        self.writes.writer().await
    }

    /// Runs `work` as one write, committed with the writes that arrive
    /// meanwhile, and returns once it is on the disk; see
    /// [`GroupCommit::write`].
    pub async fn write<T, E, F, Fut>(&self, work: F) -> Result<T, E>
    where
        E: From<StoreError> + std::fmt::Display,
        F: FnOnce(libsql::Connection) -> Fut,
        Fut: Future<Output = Result<(T, Option<AfterCommit>), E>>,
    {
        self.writes.write(Durability::Synced, work).await
    }

    /// Like [`Self::write`], but returns once the write is committed
    /// (visible to readers, safe from a crash of the process), not
    /// waiting for the disk: for records whose writer must not wait on
    /// fsyncs (conversations). They reach the disk with the next synced
    /// write or checkpoint.
    pub async fn write_committed<T, E, F, Fut>(&self, work: F) -> Result<T, E>
    where
        E: From<StoreError> + std::fmt::Display,
        F: FnOnce(libsql::Connection) -> Fut,
        Fut: Future<Output = Result<(T, Option<AfterCommit>), E>>,
    {
        self.writes.write(Durability::Committed, work).await
    }

    /// Empties the pooled readers' page caches (each holds up to
    /// `cache_size_mb`): after a scan of the whole store, such as building
    /// the vector index, they would otherwise keep it resident. Best
    /// effort; a replica's connections take no pragmas (libsql would send
    /// them to the primary), so there it does nothing.
    pub async fn release_read_caches(&self) {
        if self.primary.is_some() {
            return;
        }
        let pooled: Vec<libsql::Connection> =
            std::mem::take(&mut *self.readers.lock().expect("reader pool"));
        for conn in &pooled {
            if let Err(error) = pragma(conn, "PRAGMA shrink_memory").await {
                tracing::debug!(%error, "cannot empty a reader's page cache");
            }
        }
        let mut pool = self.readers.lock().expect("reader pool");
        pool.extend(pooled);
        pool.truncate(POOLED_READERS);
    }

    /// A read connection from the pool (opened on demand).
    pub async fn reader(&self) -> Result<Reader<'_>, StoreError> {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = self.db.connect()?;
                if self.primary.is_some() {
                    // A replica's reads are local; a pragma would be sent
                    // to the primary as a write.
                    conn.busy_timeout(self.config.busy_timeout)?;
                } else {
                    apply_pragmas(&conn, &self.config, false).await?;
                }
                conn
            }
        };
        Ok(Reader {
            db: self,
            conn: Some(conn),
        })
    }
}

/// Makes the directory a store file goes in.
fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        }),
        None => Ok(()),
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
        // A connection left inside a transaction (its user was cancelled
        // between BEGIN and the end) would pin an old snapshot: close it.
        let Some(conn) = self.conn.take().filter(|conn| conn.is_autocommit()) else {
            return;
        };
        let mut pool = self.db.readers.lock().expect("reader pool");
        if pool.len() < POOLED_READERS {
            pool.push(conn);
        }
    }
}

/// Pragmas that return a row (journal_mode) must be run as queries: libsql's
/// `execute` refuses statements that return rows.
async fn pragma(conn: &libsql::Connection, sql: &str) -> Result<(), StoreError> {
    let mut rows = conn.query(sql, ()).await?;
    while rows.next().await?.is_some() {}
    Ok(())
}

async fn apply_pragmas(
    conn: &libsql::Connection,
    config: &SqliteConfig,
    writer: bool,
) -> Result<(), StoreError> {
    // Wait for a lock instead of failing at once: without this, two writers
    // (say the server and `caxton storage maintenance`) fail immediately.
    conn.busy_timeout(config.busy_timeout)?;
    if writer {
        let mode = if config.wal_mode { "WAL" } else { "DELETE" };
        pragma(conn, &format!("PRAGMA journal_mode = {mode}")).await?;
        // With background checkpoints the writer never checkpoints: they
        // also restart the WAL once it is past its threshold (see
        // super::checkpoint), so no commit waits on copying or syncing.
        let autocheckpoint = if config.checkpoint_interval.is_zero() {
            config.wal_autocheckpoint
        } else {
            0
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn open() -> (tempfile::TempDir, Arc<Db>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("memory.db"), &SqliteConfig::default())
            .await
            .unwrap();
        db.writer()
            .await
            .execute("CREATE TABLE facts (n INTEGER PRIMARY KEY)", ())
            .await
            .unwrap();
        (dir, Arc::new(db))
    }

    async fn count(db: &Db) -> i64 {
        let reader = db.reader().await.unwrap();
        let mut rows = reader
            .query("SELECT count(*) FROM facts", ())
            .await
            .unwrap();
        rows.next().await.unwrap().unwrap().get(0).unwrap()
    }

    async fn insert(db: &Db, n: i64) -> Result<(), StoreError> {
        db.write(|tx| async move {
            tx.execute("INSERT INTO facts (n) VALUES (?1)", [n]).await?;
            Ok(((), None))
        })
        .await
    }

    async fn insert_committed(db: &Db, n: i64) -> Result<(), StoreError> {
        db.write_committed(|tx| async move {
            tx.execute("INSERT INTO facts (n) VALUES (?1)", [n]).await?;
            Ok(((), None))
        })
        .await
    }

    #[tokio::test]
    async fn synced_writes_wait_for_a_wal_sync_and_committed_ones_do_not() {
        let (_dir, db) = open().await;
        // The writer's own commits stop at the WAL (1 = NORMAL) ...
        let mode = {
            let writer = db.writer().await;
            let mut rows = writer.query("PRAGMA synchronous", ()).await.unwrap();
            rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
        };
        assert_eq!(mode, 1);
        // ... so a synced write is answered after an fsync of its own,
        insert(&db, 1).await.unwrap();
        assert_eq!(db.writes.wal_syncs(), 1);
        // a committed one without any, yet visible at once.
        insert_committed(&db, 2).await.unwrap();
        assert_eq!(db.writes.wal_syncs(), 1);
        assert_eq!(count(&db).await, 2);
        insert(&db, 3).await.unwrap();
        assert_eq!(db.writes.wal_syncs(), 2);
    }

    #[tokio::test]
    async fn with_synchronous_normal_nothing_waits_for_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig {
            synchronous: Synchronous::Normal,
            ..SqliteConfig::default()
        };
        let db = Db::open(&dir.path().join("memory.db"), &config)
            .await
            .unwrap();
        db.writer()
            .await
            .execute("CREATE TABLE facts (n INTEGER PRIMARY KEY)", ())
            .await
            .unwrap();
        insert(&db, 1).await.unwrap();
        assert_eq!(db.writes.wal_syncs(), 0);
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_synced_writes_share_fsyncs() {
        let (_dir, db) = open().await;
        let writes: Vec<_> = (0..64)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move { insert(&db, n).await })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert_eq!(count(&db).await, 64);
        let syncs = db.writes.wal_syncs();
        assert!(
            (1..64).contains(&syncs),
            "64 concurrent writes took {syncs} fsyncs"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_each_committed_when_acknowledged() {
        let (_dir, db) = open().await;
        let writes: Vec<_> = (0..64)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    insert(&db, n).await.unwrap();
                    // Acknowledged means visible to a fresh reader.
                    let reader = db.reader().await.unwrap();
                    let mut rows = reader
                        .query("SELECT count(*) FROM facts WHERE n = ?1", [n])
                        .await
                        .unwrap();
                    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
                })
            })
            .collect();
        for write in writes {
            assert_eq!(write.await.unwrap(), 1);
        }
        assert_eq!(count(&db).await, 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_is_rolled_back_alone() {
        let (_dir, db) = open().await;
        insert(&db, 1).await.unwrap();
        let writes: Vec<_> = (0..16)
            .map(|n| {
                let db = db.clone();
                // n = 1 again: a primary key conflict, only for that write.
                tokio::spawn(async move { insert(&db, if n == 7 { 1 } else { 100 + n }).await })
            })
            .collect();
        let mut failed = 0;
        for write in writes {
            failed += usize::from(write.await.unwrap().is_err());
        }
        assert_eq!(failed, 1);
        assert_eq!(count(&db).await, 16);
    }

    #[tokio::test]
    async fn a_write_cancelled_halfway_leaves_nothing_behind() {
        let (_dir, db) = open().await;
        let stalled = tokio::time::timeout(
            Duration::from_millis(50),
            db.write(|tx| async move {
                // A write that never finishes, cut off by its caller.
                tx.execute("INSERT INTO facts (n) VALUES (1)", ()).await?;
                std::future::pending::<()>().await;
                Ok::<_, StoreError>(((), None))
            }),
        )
        .await;
        assert!(stalled.is_err());
        insert(&db, 2).await.unwrap();
        let reader = db.reader().await.unwrap();
        let mut rows = reader.query("SELECT n FROM facts", ()).await.unwrap();
        let only = rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap();
        assert_eq!(only, 2);
        assert!(rows.next().await.unwrap().is_none());
    }
}
