//! WAL checkpoints off the write path.
//!
//! By default SQLite checkpoints inside the commit that crosses
//! `wal_autocheckpoint`: that one commit copies the WAL into the database
//! and syncs it, and whoever was waiting on it (an API call, a message
//! reply) sees milliseconds added. Here a thread of its own runs a passive
//! checkpoint every `checkpoint_interval` (it never blocks the writer or
//! readers), and the writer never checkpoints at all.
//!
//! A passive checkpoint copies the frames committed before it started; the
//! next writer restarts the WAL from its beginning only if nothing was
//! committed meanwhile, which under a steady stream of writes is never. So
//! once the WAL is past its threshold (`wal_autocheckpoint` pages times
//! [`RESTART_FACTOR`]) this thread asks for a restart checkpoint: it waits
//! for the writer's current group, copies the few frames the passive pass
//! left, and the WAL starts over. Measured (`caxton benchmark api`, c16 on
//! ext4): with the writer checkpointing past four times the threshold
//! itself, the WAL never restarted under load and every fourth second a
//! commit fsynced the database on an async thread (echo p99 ~23 ms). The
//! writer's one remaining fsync is the header of the restarted WAL.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::config::SqliteConfig;

/// How many times `wal_autocheckpoint` pages the WAL may hold before a
/// checkpoint restarts it.
pub const RESTART_FACTOR: u64 = 4;

/// How long a restart checkpoint waits for the write lock and readers.
const RESTART_PATIENCE: Duration = Duration::from_millis(100);

/// Runs until dropped.
pub struct Checkpointer {
    /// Dropping the sender wakes and ends the thread.
    _stop: Sender<()>,
}

impl Checkpointer {
    pub fn start(db: &libsql::Database, config: &SqliteConfig) -> Result<Self, libsql::Error> {
        let conn = db.connect()?;
        // A restart checkpoint waits for the writer's group to end, and
        // meanwhile holds off new writes: it gives up soon (and tries again
        // next interval) rather than stall every writer behind a slow reader.
        conn.busy_timeout(config.busy_timeout.min(RESTART_PATIENCE))?;
        let (stop, stopped) = std::sync::mpsc::channel();
        let interval = config.checkpoint_interval;
        let restart_at = config
            .wal_autocheckpoint
            .max(1)
            .saturating_mul(RESTART_FACTOR);
        // Its checkpoints are the syncs that make committed (not synced)
        // writes durable, and the database file safe to restart the WAL
        // over: said here, not left to the library's compiled default.
        let synchronous = format!("PRAGMA synchronous = {}", config.synchronous.as_sql());
        std::thread::Builder::new()
            .name("caxton-checkpoint".into())
            .spawn(move || run(conn, &synchronous, interval, restart_at, stopped))
            .map_err(|e| libsql::Error::ConnectionFailed(e.to_string()))?;
        Ok(Self { _stop: stop })
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`; returns the WAL's size in frames.
async fn checkpoint(conn: &libsql::Connection, mode: &str) -> Result<u64, libsql::Error> {
    let mut rows = conn
        .query(&format!("PRAGMA wal_checkpoint({mode})"), ())
        .await?;
    let mut frames = 0;
    // (busy, frames in the WAL, frames checkpointed)
    if let Some(row) = rows.next().await? {
        frames = row.get::<i64>(1).unwrap_or(0).max(0) as u64;
    }
    while rows.next().await?.is_some() {}
    Ok(frames)
}

fn run(
    conn: libsql::Connection,
    synchronous: &str,
    interval: Duration,
    restart_at: u64,
    stopped: Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "background checkpoints are off");
            return;
        }
    };
    if let Err(error) = runtime.block_on(conn.execute(synchronous, ())) {
        tracing::error!(%error, "background checkpoints are off");
        return;
    }
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        let outcome = runtime.block_on(async {
            let frames = checkpoint(&conn, "PASSIVE").await?;
            if frames >= restart_at {
                checkpoint(&conn, "RESTART").await?;
            }
            Ok::<_, libsql::Error>(())
        });
        if let Err(error) = outcome {
            tracing::warn!(%error, "background WAL checkpoint failed; retrying next interval");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::config::SqliteConfig;
    use crate::store::Db;

    /// Size of the main database file after ~400 KB of committed writes,
    /// `wait` later, with the writer's own checkpoints out of reach.
    async fn main_file_growth(interval: &str, wait: std::time::Duration) -> (u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.db");
        let config: SqliteConfig = toml::from_str(&format!(
            "wal_autocheckpoint = 100000\ncheckpoint_interval = \"{interval}\""
        ))
        .unwrap();
        let db = Db::open(&path, &config).await.unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        {
            let writer = db.writer().await;
            writer
                .execute("CREATE TABLE ballast (blob BLOB)", ())
                .await
                .unwrap();
            for _ in 0..100 {
                writer
                    .execute("INSERT INTO ballast VALUES (zeroblob(4096))", ())
                    .await
                    .unwrap();
            }
        }
        let deadline = Instant::now() + wait;
        // Until the pages are all there (a checkpoint may land mid-way).
        let grown = || std::fs::metadata(&path).unwrap().len() >= before + 400_000;
        while Instant::now() < deadline && !grown() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        (before, std::fs::metadata(&path).unwrap().len())
    }

    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_a_writer_checkpoint() {
        let (before, after) = main_file_growth("50ms", std::time::Duration::from_secs(10)).await;
        assert!(after >= before + 400_000, "{before} -> {after}");
        // The control: with background checkpoints off the pages stay in
        // the WAL (the writer's threshold is far away).
        let (before, after) = main_file_growth("0s", std::time::Duration::from_millis(500)).await;
        assert_eq!(before, after);
    }
}
