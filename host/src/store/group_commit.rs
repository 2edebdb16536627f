//! The store's writer, committing writes in groups. A write that finds
//! others queued behind it leaves the transaction open for them; the last
//! of the group commits for all and answers each. A write says what its
//! acknowledgement promises ([`Durability`]): a synced write is answered
//! only once an fsync covers its group (see [`super::wal_sync`]: one fsync
//! for many groups, outside the writer), a committed one as soon as its
//! group is committed.
//!
//! Each write runs in its own savepoint: one that fails is rolled back
//! alone. A write is acknowledged only once its group committed, and only
//! after its [`AfterCommit`] work ran, so index updates happen in commit
//! order and never for rows that were not committed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard, oneshot};

use super::StoreError;
use super::wal_sync::WalSync;

/// Work to do once a write is committed (and only then).
pub type AfterCommit = Box<dyn FnOnce() + Send>;

/// What answering a write promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On the disk (with `synchronous = FULL`): survives a power cut.
    /// Memory writes and deployments.
    Synced,
    /// Committed: visible to every reader and safe from a crash of the
    /// process; on the disk with the next synced write or checkpoint
    /// (`checkpoint_interval`). Conversation records.
    Committed,
}

/// Why a group's commit failed, for every write in it.
#[derive(Debug, Clone)]
pub struct CommitFailed {
    pub message: String,
    pub disk_full: bool,
    /// The primary of a replica could not be reached.
    pub unavailable: bool,
}

impl From<&StoreError> for CommitFailed {
    fn from(error: &StoreError) -> Self {
        Self {
            message: error.to_string(),
            disk_full: error.is_disk_full(),
            unavailable: error.is_unavailable(),
        }
    }
}

/// Brings a replica up to its own last commit on the primary, so what a
/// write is answered for can be read back here at once.
pub type CatchUp = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), libsql::Error>> + Send>>
        + Send
        + Sync,
>;

/// How often, and after how long, a replica retries catching up with a
/// commit the primary already has (it may be compacting its log).
const CATCH_UP_TRIES: u32 = 5;
const CATCH_UP_PAUSE: Duration = Duration::from_millis(100);

/// Opens a fresh write connection: a replica's, after its primary was
/// unreachable mid-transaction (the old one's idea of the transaction no
/// longer matches the server's).
pub type Reconnect = Arc<dyn Fn() -> Result<libsql::Connection, libsql::Error> + Send + Sync>;

/// Writes in one group at most: a steady stream of writers still gets its
/// commits (and its acknowledgements) regularly.
const MAX_GROUP: usize = 64;

/// How long a write whose group is still open waits before committing the
/// group itself: the writes it left the group open for may have been
/// cancelled before taking the lock.
const COMMIT_PATIENCE: Duration = Duration::from_millis(5);

/// The write connection, shared with the committer a cancelled write
/// leaves behind.
pub struct GroupCommit {
    /// SQLite allows one writer; queueing writers here instead of on the
    /// file lock keeps `database is locked` out of the normal path.
    writer: Mutex<Writer>,
    /// Writes waiting for the writer lock: a write that sees some leaves
    /// its group's transaction open for them to join.
    queued: AtomicUsize,
    /// Syncs the WAL for synced writes when the connection's own commits
    /// do not (`None`: every commit is as durable as the connection makes it).
    wal_sync: Option<Arc<WalSync>>,
    /// A replica's catch-up after each commit (`None` for a local file).
    catch_up: Option<CatchUp>,
}

/// The write connection and the group it has open, if any.
struct Writer {
    conn: libsql::Connection,
    reconnect: Option<Reconnect>,
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
    /// What the writes do once their rows are committed, in commit order.
    after_commit: Vec<AfterCommit>,
    /// Writes that left the group open, waiting to hear how it ended.
    waiting: Vec<(Durability, oneshot::Sender<Result<(), CommitFailed>>)>,
}

/// A group's commit, for the write that made it: the WAL sync its
/// answer waits for, if it is synced and the commit did not sync itself.
struct Committed {
    sync: Option<(Arc<WalSync>, u64)>,
}

impl Committed {
    async fn wait(self, durability: Durability) -> Result<(), StoreError> {
        match (durability, self.sync) {
            (Durability::Synced, Some((sync, number))) => sync.wait(number).await,
            _ => Ok(()),
        }
    }
}

impl GroupCommit {
    pub fn new(
        conn: libsql::Connection,
        wal_sync: Option<Arc<WalSync>>,
        replica: Option<(Reconnect, CatchUp)>,
    ) -> Arc<Self> {
        let (reconnect, catch_up) = replica.unzip();
        Arc::new(Self {
            writer: Mutex::new(Writer {
                conn,
                reconnect,
                group: None,
                next_group: 1,
                savepoint_open: false,
            }),
            queued: AtomicUsize::new(0),
            wal_sync,
            catch_up,
        })
    }

    /// The write connection, alone: any open group is committed first.
    /// For work that must not share a transaction (checkpoints,
    /// maintenance, batched deletes); each statement commits on its own.
    pub async fn writer(&self) -> MappedMutexGuard<'_, libsql::Connection> {
        let mut writer = self.lock().await;
        if let Err(error) = self.commit(&mut writer).await {
            tracing::error!(%error, "committing the open write group failed");
        }
        MutexGuard::map(writer, |writer| &mut writer.conn)
    }

    /// Runs `work` as one write, atomically (its own savepoint), committed
    /// with whatever other writes arrive meanwhile. Returns once the write
    /// is as durable as `durability` says, after its `AfterCommit` ran; a
    /// failed write is rolled back alone. A write cancelled before it
    /// returns may still be committed with its group.
    pub async fn write<T, E, F, Fut>(
        self: &Arc<Self>,
        durability: Durability,
        work: F,
    ) -> Result<T, E>
    where
        E: From<StoreError> + std::fmt::Display,
        F: FnOnce(libsql::Connection) -> Fut,
        Fut: Future<Output = Result<(T, Option<AfterCommit>), E>>,
    {
        let mut writer = self.lock().await;
        let group = match begin_write(&mut writer).await {
            Ok(group) => group,
            Err(error) => {
                fail_group(&mut writer, &error).await;
                return Err(error.into());
            }
        };
        // From here until this write has its answer, a cancellation must
        // not leave the group open with nobody to commit it.
        let mut guard = CommitIfAbandoned {
            writes: Some(self.clone()),
            group,
        };
        writer.savepoint_open = true;
        let outcome = work(writer.conn.clone()).await;
        let ended = match &outcome {
            Ok(_) => execute(&writer.conn, "RELEASE write").await,
            Err(_) => undo_savepoint(&writer.conn).await,
        };
        writer.savepoint_open = false;
        if let Err(error) = ended {
            // The transaction itself is gone (SQLite rolls back on some
            // errors, a full disk among them): the whole group failed.
            fail_group(&mut writer, &error).await;
            guard.disarm();
            return Err(outcome.err().unwrap_or_else(|| error.into()));
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
            guard.disarm();
            // The sync, if any, runs with the writer free for others.
            drop(writer);
            return match (value, committed) {
                (Ok(value), Ok(committed)) => match committed.wait(durability).await {
                    Ok(()) => Ok(value),
                    Err(error) => Err(error.into()),
                },
                (Err(error), _) => Err(error),
                (Ok(_), Err(error)) => Err(error.into()),
            };
        }
        // Others are queued: they join this group, and the last commits.
        let value = match value {
            Ok(value) => value,
            Err(error) => {
                drop(writer);
                guard.disarm();
                return Err(error);
            }
        };
        let (answer, mut answered) = oneshot::channel();
        writer
            .group
            .as_mut()
            .expect("a write runs in a group")
            .waiting
            .push((durability, answer));
        drop(writer);
        // Once the group is committed, its answer only waits for the WAL
        // sync: no more turns at the writer lock (each would count as a
        // queued write and hold other groups open for it).
        let mut committed = false;
        loop {
            let waited = if committed {
                Ok((&mut answered).await)
            } else {
                tokio::time::timeout(COMMIT_PATIENCE, &mut answered).await
            };
            match waited {
                Ok(result) => {
                    guard.disarm();
                    let result = result.unwrap_or_else(|_| {
                        Err(CommitFailed {
                            message: "the write group ended without an answer".into(),
                            disk_full: false,
                            unavailable: false,
                        })
                    });
                    return result
                        .map(|()| value)
                        .map_err(|failed| StoreError::from(failed).into());
                }
                // Nobody took the group over: commit it here (and hear
                // the answer on the next turn of the loop).
                Err(_) => {
                    let mut writer = self.lock().await;
                    if writer.group.as_ref().is_some_and(|g| g.number == group) {
                        let _ = self.commit(&mut writer).await;
                    }
                    committed = true;
                }
            }
        }
    }

    /// The writer lock, counted as queued while waiting for it; undoes a
    /// write that was cancelled inside its savepoint.
    async fn lock(&self) -> MutexGuard<'_, Writer> {
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
            writer.savepoint_open = false;
            if let Err(error) = undo_savepoint(&writer.conn).await {
                fail_group(&mut writer, &error).await;
            }
        }
        writer
    }

    /// Commits the open group, if any: runs its after-commit work in order
    /// and answers the writes waiting on it (synced ones once the WAL sync
    /// covers the group, from a task of their own).
    async fn commit(&self, writer: &mut Writer) -> Result<Committed, StoreError> {
        let Some(group) = writer.group.take() else {
            return Ok(Committed { sync: None });
        };
        match execute(&writer.conn, "COMMIT").await {
            Ok(()) => {
                if let Some(catch_up) = &self.catch_up {
                    catch_up_with(catch_up).await;
                }
                for work in group.after_commit {
                    // An index update that panics must not strand the
                    // group's other writes without an answer.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
                        tracing::error!("work after a commit panicked; the rows are committed");
                    }
                }
                let sync = self
                    .wal_sync
                    .as_ref()
                    .map(|sync| (sync.clone(), sync.committed()));
                let mut synced = Vec::new();
                for (durability, waiting) in group.waiting {
                    match (&sync, durability) {
                        (Some(_), Durability::Synced) => synced.push(waiting),
                        _ => {
                            let _ = waiting.send(Ok(()));
                        }
                    }
                }
                if let (Some((sync, number)), false) = (&sync, synced.is_empty()) {
                    let (sync, number) = (sync.clone(), *number);
                    tokio::spawn(async move {
                        let outcome = sync.wait(number).await;
                        let outcome = outcome.as_ref().map_err(CommitFailed::from);
                        for waiting in synced {
                            let _ = waiting.send(outcome.clone().map(|_| ()));
                        }
                    });
                }
                Ok(Committed { sync })
            }
            Err(error) => {
                let _ = execute(&writer.conn, "ROLLBACK").await;
                start_over_if_cut_off(writer, &error);
                answer_failed(group, &error);
                Err(error)
            }
        }
    }
}

/// Opens a group if none is open and a savepoint for one write in it;
/// returns the group's number.
async fn begin_write(writer: &mut Writer) -> Result<u64, StoreError> {
    if writer.reconnect.is_some() && writer.group.is_none() {
        // A replica's group starts by telling the primary's side of the
        // connection to cascade deletes as one box does: every time, as a
        // primary restarted behind a live connection forgets the setting.
        execute(&writer.conn, "PRAGMA foreign_keys = ON").await?;
    }
    if writer.group.is_none() {
        execute(&writer.conn, "BEGIN IMMEDIATE").await?;
        writer.group = Some(Group {
            number: writer.next_group,
            writes: 0,
            after_commit: Vec::new(),
            waiting: Vec::new(),
        });
        writer.next_group += 1;
    }
    execute(&writer.conn, "SAVEPOINT write").await?;
    Ok(writer.group.as_ref().expect("just opened").number)
}

/// Brings a replica up to the commit just made, retrying while the primary
/// cannot serve it yet. The commit stands either way: when the replica
/// still lags, the write is answered (the primary has it) and shows here
/// with the next sync.
async fn catch_up_with(catch_up: &CatchUp) {
    for attempt in 1..=CATCH_UP_TRIES {
        match catch_up().await {
            Ok(()) => return,
            Err(error) if attempt == CATCH_UP_TRIES => tracing::warn!(
                %error,
                "a write is committed on the memory primary but not yet in this replica; it shows after the next sync"
            ),
            Err(_) => tokio::time::sleep(CATCH_UP_PAUSE * attempt).await,
        }
    }
}

/// Rolls back the open group after `error` and answers its writes.
async fn fail_group(writer: &mut Writer, error: &StoreError) {
    writer.savepoint_open = false;
    let group = writer.group.take();
    if let Some(group) = &group {
        tracing::error!(%error, writes = group.writes, "a write group failed and was rolled back");
    }
    // The transaction may already be gone; then ROLLBACK fails, harmlessly.
    let _ = execute(&writer.conn, "ROLLBACK").await;
    start_over_if_cut_off(writer, error);
    if let Some(group) = group {
        answer_failed(group, error);
    }
}

/// A replica's writer that lost its primary mid-transaction gets a fresh
/// connection: the old one's idea of the transaction (libsql tracks it on
/// the client) no longer matches the server's, and would refuse the next
/// BEGIN.
fn start_over_if_cut_off(writer: &mut Writer, error: &StoreError) {
    let cut_off = error.is_unavailable()
        || matches!(error, StoreError::Sql(libsql::Error::InvalidParserState(_)));
    if let (true, Some(reconnect)) = (cut_off, &writer.reconnect) {
        match reconnect() {
            Ok(conn) => writer.conn = conn,
            Err(error) => tracing::warn!(%error, "cannot open a new write connection"),
        }
    }
}

fn answer_failed(group: Group, error: &StoreError) {
    let failed = CommitFailed::from(error);
    for (_, waiting) in group.waiting {
        let _ = waiting.send(Err(failed.clone()));
    }
}

async fn undo_savepoint(conn: &libsql::Connection) -> Result<(), StoreError> {
    execute(conn, "ROLLBACK TO write").await?;
    execute(conn, "RELEASE write").await
}

async fn execute(conn: &libsql::Connection, sql: &str) -> Result<(), StoreError> {
    conn.execute(sql, ()).await?;
    Ok(())
}

/// Left behind by a write that is cancelled (its caller hit a deadline)
/// while its group is open: commits the group a moment later, unless
/// someone else has, so the transaction does not stay open until the next
/// write happens to come.
struct CommitIfAbandoned {
    writes: Option<Arc<GroupCommit>>,
    group: u64,
}

impl CommitIfAbandoned {
    fn disarm(&mut self) {
        self.writes = None;
    }
}

impl Drop for CommitIfAbandoned {
    fn drop(&mut self) {
        let Some(writes) = self.writes.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let group = self.group;
        runtime.spawn(async move {
            tokio::time::sleep(COMMIT_PATIENCE).await;
            let mut writer = writes.lock().await;
            if writer.group.as_ref().is_some_and(|g| g.number == group)
                && let Err(error) = writes.commit(&mut writer).await
            {
                tracing::error!(%error, "committing an abandoned write group failed");
            }
        });
    }
}

#[cfg(test)]
impl GroupCommit {
    /// WAL fsyncs run for synced writes so far.
    pub fn wal_syncs(&self) -> u64 {
        self.wal_sync.as_ref().map_or(0, |sync| sync.syncs())
    }
}
