//! The libsql file: opening it, the pragmas every connection gets, and the
//! connections themselves (one writer at a time, readers in a small pool).
//!
//! Writes go through [`Db::write`], which commits them in groups: a write
//! that finds others queued behind it leaves the transaction open for
//! them, and the last of the group commits for all. With `synchronous =
//! FULL` every commit is an fsync, so under load the cost of durability is
//! one sync per group, not per write.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard, watch};

use super::MemoryError;
use super::checkpoint::{Checkpointer, WRITER_FALLBACK_FACTOR};
use crate::config::SqliteConfig;

pub struct Db {
    db: libsql::Database,
    path: PathBuf,
    config: SqliteConfig,
    /// SQLite allows one writer; queueing writers here instead of on the
    /// file lock keeps `database is locked` out of the normal path.
    writer: Mutex<Writer>,
    /// Writes waiting for the writer lock: a write that sees some leaves
    /// its group's transaction open for them to join.
    queued: AtomicUsize,
    /// Which groups have ended, and how.
    ended: watch::Sender<Ended>,
    readers: std::sync::Mutex<Vec<libsql::Connection>>,
    _checkpointer: Option<Checkpointer>,
}

/// The write connection and the group it has open, if any.
struct Writer {
    conn: libsql::Connection,
    group: Option<Group>,
    /// The number the next group gets.
    next_group: u64,
    /// A write was cancelled inside its savepoint: undo it before the next.
    savepoint_open: bool,
}

/// Writes sharing one transaction.
struct Group {
    number: u64,
    writes: usize,
    /// What the writes do once their rows are committed (index updates),
    /// in commit order.
    after_commit: Vec<AfterCommit>,
}

/// Work to do once a write is committed (and only then).
pub type AfterCommit = Box<dyn FnOnce() + Send>;

/// The groups that have ended: every number up to `last`, the recent
/// failures among them (any not listed committed).
#[derive(Default)]
struct Ended {
    last: u64,
    failures: std::collections::VecDeque<(u64, CommitFailed)>,
}

/// Failed groups remembered; a waiting write is told within milliseconds,
/// long before this many more groups could fail.
const FAILURES_KEPT: usize = 64;

impl Ended {
    fn outcome(&self, group: u64) -> Option<Result<(), CommitFailed>> {
        if group > self.last {
            return None;
        }
        Some(match self.failures.iter().find(|(n, _)| *n == group) {
            Some((_, failed)) => Err(failed.clone()),
            None => Ok(()),
        })
    }

    fn record(&mut self, group: u64, result: Result<(), CommitFailed>) {
        self.last = self.last.max(group);
        if let Err(failed) = result {
            if self.failures.len() == FAILURES_KEPT {
                self.failures.pop_front();
            }
            self.failures.push_back((group, failed));
        }
    }
}

/// Why a group's commit failed, for every write in it.
#[derive(Debug, Clone)]
pub struct CommitFailed {
    pub message: String,
    pub disk_full: bool,
}

/// Writes in one group at most: a steady stream of writers still gets its
/// commits (and its acknowledgements) regularly.
const MAX_GROUP: usize = 64;

/// How long a write whose group is still open waits before committing the
/// group itself: the writes it left the group open for may have been
/// cancelled before taking the lock.
const COMMIT_PATIENCE: Duration = Duration::from_millis(5);

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
            writer: Mutex::new(Writer {
                conn: writer,
                group: None,
                next_group: 1,
                savepoint_open: false,
            }),
            queued: AtomicUsize::new(0),
            ended: watch::channel(Ended::default()).0,
            readers: std::sync::Mutex::default(),
            _checkpointer: checkpointer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write connection, alone: any open group is committed first.
    /// For work that must not share a transaction (checkpoints,
    /// maintenance, batched deletes); each statement commits on its own.
    pub async fn writer(&self) -> MappedMutexGuard<'_, libsql::Connection> {
        let mut writer = self.lock_writer().await;
        if let Err(error) = self.settle(&mut writer).await {
            tracing::error!(%error, "committing the open write group failed");
        }
        MutexGuard::map(writer, |writer| &mut writer.conn)
    }

    /// Runs `work` as one write, atomically (its own savepoint), committed
    /// with whatever other writes arrive meanwhile. Returns once the write
    /// is committed (durable, with `synchronous = FULL`), after its
    /// `AfterCommit` ran; a failed write is rolled back alone.
    pub async fn write<T, F, Fut>(&self, work: F) -> Result<T, MemoryError>
    where
        F: FnOnce(libsql::Connection) -> Fut,
        Fut: Future<Output = Result<(T, Option<AfterCommit>), MemoryError>>,
    {
        let mut writer = self.lock_writer().await;
        let group = match self.begin_write(&mut writer).await {
            Ok(group) => group,
            Err(error) => {
                self.fail_group(&mut writer, &error).await;
                return Err(error);
            }
        };
        writer.savepoint_open = true;
        let outcome = work(writer.conn.clone()).await;
        let ended = match &outcome {
            Ok(_) => execute(&writer.conn, "RELEASE write").await,
            Err(_) => match execute(&writer.conn, "ROLLBACK TO write").await {
                Ok(()) => execute(&writer.conn, "RELEASE write").await,
                Err(error) => Err(error),
            },
        };
        writer.savepoint_open = false;
        if let Err(error) = ended {
            // The transaction itself is gone (SQLite rolls back on some
            // errors, a full disk among them): the whole group failed.
            self.fail_group(&mut writer, &error).await;
            return Err(outcome.err().unwrap_or(error));
        }
        let value = match outcome {
            Ok((value, after_commit)) => {
                let open = writer.group.as_mut().expect("a write runs in a group");
                open.writes += 1;
                open.after_commit.extend(after_commit);
                Ok(value)
            }
            Err(error) => Err(error),
        };
        let full = writer.group.as_ref().is_some_and(|g| g.writes >= MAX_GROUP);
        if full || self.queued.load(Ordering::Acquire) == 0 {
            let committed = self.commit(&mut writer).await;
            return match (value, committed) {
                (Ok(value), Ok(())) => Ok(value),
                (Err(error), _) | (Ok(_), Err(error)) => Err(error),
            };
        }
        // Others are queued: they join this group, and the last commits.
        let mut ended = self.ended.subscribe();
        drop(writer);
        let value = value?;
        loop {
            let outcome = ended.borrow_and_update().outcome(group);
            if let Some(result) = outcome {
                return result.map(|()| value).map_err(MemoryError::from);
            }
            if tokio::time::timeout(COMMIT_PATIENCE, ended.changed())
                .await
                .is_err()
            {
                // Nobody took the group over: commit it here.
                let mut writer = self.lock_writer().await;
                if writer.group.as_ref().is_some_and(|g| g.number == group) {
                    let committed = self.commit(&mut writer).await;
                    return committed.map(|()| value);
                }
            }
        }
    }

    /// The writer lock, counted as queued while waiting for it.
    async fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(&self.queued);
        let mut writer = self.writer.lock().await;
        if writer.savepoint_open {
            // A write was cancelled halfway: undo what it did.
            writer.savepoint_open = false;
            let undone = match execute(&writer.conn, "ROLLBACK TO write").await {
                Ok(()) => execute(&writer.conn, "RELEASE write").await,
                Err(error) => Err(error),
            };
            if let Err(error) = undone {
                self.fail_group(&mut writer, &error).await;
            }
        }
        writer
    }

    /// Opens a group if none is open and a savepoint for one write in it;
    /// returns the group's number.
    async fn begin_write(&self, writer: &mut Writer) -> Result<u64, MemoryError> {
        if writer.group.is_none() {
            execute(&writer.conn, "BEGIN IMMEDIATE").await?;
            writer.group = Some(Group {
                number: writer.next_group,
                writes: 0,
                after_commit: Vec::new(),
            });
            writer.next_group += 1;
        }
        execute(&writer.conn, "SAVEPOINT write").await?;
        Ok(writer.group.as_ref().expect("just opened").number)
    }

    /// Commits the open group, if any, and tells its writes.
    async fn settle(&self, writer: &mut Writer) -> Result<(), MemoryError> {
        if writer.group.is_some() {
            self.commit(writer).await
        } else {
            Ok(())
        }
    }

    /// Commits the open group: runs its after-commit work in order and
    /// tells the writes waiting on it.
    async fn commit(&self, writer: &mut Writer) -> Result<(), MemoryError> {
        let Some(group) = writer.group.take() else {
            return Ok(());
        };
        match execute(&writer.conn, "COMMIT").await {
            Ok(()) => {
                for work in group.after_commit {
                    work();
                }
                self.ended
                    .send_modify(|ended| ended.record(group.number, Ok(())));
                Ok(())
            }
            Err(error) => {
                let failed = CommitFailed::from(&error);
                let _ = execute(&writer.conn, "ROLLBACK").await;
                self.ended
                    .send_modify(|ended| ended.record(group.number, Err(failed)));
                Err(error)
            }
        }
    }

    /// Rolls back the open group after `error` and tells its writes.
    async fn fail_group(&self, writer: &mut Writer, error: &MemoryError) {
        writer.savepoint_open = false;
        let Some(group) = writer.group.take() else {
            return;
        };
        tracing::error!(%error, writes = group.writes, "a write group failed and was rolled back");
        // The transaction may already be gone; then ROLLBACK fails, harmlessly.
        let _ = execute(&writer.conn, "ROLLBACK").await;
        let failed = CommitFailed::from(error);
        self.ended
            .send_modify(|ended| ended.record(group.number, Err(failed)));
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

async fn execute(conn: &libsql::Connection, sql: &str) -> Result<(), MemoryError> {
    conn.execute(sql, ()).await?;
    Ok(())
}

impl From<&MemoryError> for CommitFailed {
    fn from(error: &MemoryError) -> Self {
        Self {
            message: error.to_string(),
            disk_full: error.is_disk_full(),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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

    async fn insert(db: &Db, n: i64) -> Result<(), MemoryError> {
        db.write(|tx| async move {
            tx.execute("INSERT INTO facts (n) VALUES (?1)", [n]).await?;
            Ok(((), None))
        })
        .await
    }

    #[tokio::test]
    async fn the_default_syncs_every_commit() {
        let (_dir, db) = open().await;
        let writer = db.writer().await;
        let mut rows = writer.query("PRAGMA synchronous", ()).await.unwrap();
        // 2 = FULL: an acknowledged commit is on the disk.
        assert_eq!(
            rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap(),
            2
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_each_is_committed_when_acknowledged() {
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
        let groups = db.writer.lock().await.next_group - 1;
        assert!(groups < 64, "64 concurrent writes took {groups} commits");
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
                tx.execute("INSERT INTO facts (n) VALUES (1)", ()).await?;
                std::future::pending::<()>().await;
                Ok(((), None))
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
