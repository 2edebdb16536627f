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
    /// An fsync failed: the kernel may have dropped the pages it could not
    /// write, so a later fsync's success proves nothing about them. Every
    /// synced write fails from then on, until a restart recovers the WAL.
    failed: std::sync::atomic::AtomicBool,
}

impl WalSync {
    pub fn new(database: &std::path::Path) -> Arc<Self> {
        Arc::new(Self {
            wal: super::wal_path(database),
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            file: tokio::sync::Mutex::new(None),
            syncs: AtomicU64::new(0),
            failed: std::sync::atomic::AtomicBool::new(false),
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
        if self.failed.load(Ordering::Acquire) {
            return Err(self.io(std::io::Error::other(
                "an earlier fsync of the WAL failed; restart Caxton once the disk is healthy",
            )));
        }
        // Everything committed before this point is in the WAL's pages.
        let upto = self.committed.load(Ordering::Acquire);
        let (open, first) = match file.take() {
            Some(open) => (open, false),
            None => (
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.wal)
                    .map_err(|source| self.io(source))?,
                true,
            ),
        };
        let directory = self.wal.parent().map(std::path::Path::to_owned);
        let (open, synced) = tokio::task::spawn_blocking(move || {
            let mut synced = open.sync_data();
            // The first time, the WAL's directory entry too (SQLite's own
            // first sync of a new WAL does the same).
            if first
                && synced.is_ok()
                && let Some(directory) = directory.filter(|d| !d.as_os_str().is_empty())
            {
                synced = std::fs::File::open(&directory).and_then(|d| d.sync_all());
            }
            (open, synced)
        })
        .await
        .map_err(|e| self.io(std::io::Error::other(e)))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(source) = synced {
            self.failed.store(true, Ordering::Release);
            tracing::error!(error = %source, wal = %self.wal.display(), "fsync of the WAL failed; synced writes fail until restart");
            return Err(self.io(source));
        }
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
