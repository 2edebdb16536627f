//! Syncing the WAL outside the writer.
//!
//! With `synchronous = FULL`, SQLite fsyncs the WAL inside every commit,
//! while the writer is held: every write waits for every other write's
//! fsync, conversation records included, and on a 2-core box the fsync
//! also blocks one of the async runtime's two threads. Instead the writer
//! runs at `NORMAL` (a commit is written to the WAL, visible to readers and
//! safe from a crash of the process, but not yet synced) and a write that
//! promises more — every memory write — waits here, after the writer is
//! free, until an fsync of the WAL covers its commit. One fsync covers
//! every commit made before it starts, so concurrent writers share it.
//! Commits that nobody waits for reach the disk with the next one that
//! does, or the next checkpoint (which syncs the WAL first).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

pub struct WalSync {
    wal: PathBuf,
    /// Commits made so far (numbered from 1), in commit order.
    committed: AtomicU64,
    /// Every commit up to this number is on the disk.
    synced: AtomicU64,
    /// Held while an fsync runs; keeps the WAL's file open between them.
    file: tokio::sync::Mutex<Option<std::fs::File>>,
    /// fsyncs run, for tests.
    syncs: AtomicU64,
}

impl WalSync {
    pub fn new(database: &std::path::Path) -> Arc<Self> {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        Arc::new(Self {
            wal: wal.into(),
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            file: tokio::sync::Mutex::new(None),
            syncs: AtomicU64::new(0),
        })
    }

    /// Counts a commit that has just been written to the WAL (called by
    /// the writer, in commit order); returns its number for [`Self::wait`].
    pub fn committed(&self) -> u64 {
        self.committed.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Returns once commit `number` is on the disk: at once if an fsync
    /// since covered it, else after the next fsync.
    pub async fn wait(&self, number: u64) -> Result<(), StoreError> {
        if self.synced.load(Ordering::Acquire) >= number {
            return Ok(());
        }
        let mut file = self.file.lock().await;
        if self.synced.load(Ordering::Acquire) >= number {
            return Ok(());
        }
        // Everything committed before this point is in the WAL's pages.
        let upto = self.committed.load(Ordering::Acquire);
        let open = match file.take() {
            Some(open) => open,
            None => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.wal)
                .map_err(|source| self.io(source))?,
        };
        let (open, synced) = tokio::task::spawn_blocking(move || {
            let synced = open.sync_data();
            (open, synced)
        })
        .await
        .map_err(|e| self.io(std::io::Error::other(e)))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        synced.map_err(|source| self.io(source))?;
        *file = Some(open);
        self.synced.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.wal.clone(),
            source,
        }
    }

    /// fsyncs run so far.
    #[cfg(test)]
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}
