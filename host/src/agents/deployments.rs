//! Plugins deployed through the API, kept so they come back after a
//! restart: the manifest text in the store, the component in the data dir
//! by content hash. An upload is validated before it is written; the file
//! is synced before the row that names it is committed (so a row never
//! names a missing file, even after power loss), and files no row names
//! are removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestReport};
use crate::store::{Db, StoreError};
use crate::toml_check::Problem;

pub struct Deployments {
    db: Arc<Db>,
    dir: PathBuf,
    /// One deployment change at a time: the check, the install and the row
    /// must not interleave with another's, or the registry and the store
    /// could end up naming different versions.
    changing: tokio::sync::Mutex<()>,
}

/// One stored deployment.
pub struct Stored {
    pub name: String,
    pub manifest: String,
    /// Empty for a configuration agent (it runs on the built-in prompt
    /// agent) and for a `builtin:` component (the binary carries it).
    pub component: PathBuf,
}

impl Deployments {
    /// `dir` holds the component files (`<data dir>/deployed`).
    pub fn new(db: Arc<Db>, dir: PathBuf) -> Self {
        Self {
            db,
            dir,
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// Held for the whole of a deploy, replace or removal.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changing.lock().await
    }

    /// Where the component with these bytes is (or will be) kept.
    pub fn component_path(&self, bytes: &[u8]) -> PathBuf {
        self.dir
            .join(format!("{}.wasm", hex::encode(Sha256::digest(bytes))))
    }

    /// Where the manifest of API-deployed `name` is said to live (for
    /// messages and status; the store is the record).
    pub fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Writes the component file (content-addressed, atomically, synced
    /// with its directory entry). A file already there is used only if its
    /// content still hashes to its name; a damaged one is replaced.
    pub fn store_component(&self, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.component_path(bytes);
        if let Ok(existing) = std::fs::read(&path) {
            if existing == bytes {
                return Ok(path);
            }
            tracing::warn!(file = %path.display(), "a stored component no longer matches its hash; rewriting it");
        }
        std::fs::create_dir_all(&self.dir)?;
        let partial = path.with_extension("partial");
        let mut file = std::fs::File::create(&partial)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&partial, &path)?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Removes component files that no stored deployment names (replaced
    /// or removed versions, uploads cut off halfway). Call under
    /// [`Self::lock`].
    pub async fn remove_unreferenced(&self) -> Result<usize, StoreError> {
        let referenced: std::collections::HashSet<PathBuf> = self
            .list()
            .await?
            .into_iter()
            .map(|s| s.component)
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        let mut removed = 0;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let ours = path
                .extension()
                .is_some_and(|e| e == "wasm" || e == "partial");
            if ours && !referenced.contains(&path) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(error) => {
                        tracing::warn!(%error, file = %path.display(), "cannot remove an unused component")
                    }
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %self.dir.display(), "removed unused components");
        }
        Ok(removed)
    }

    pub async fn save(
        &self,
        name: &str,
        manifest: &str,
        component: &Path,
    ) -> Result<(), StoreError> {
        let sha = component
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let now = crate::store::now_ms();
        self.db
            .write(|tx| async move {
                tx.execute(
                    "INSERT INTO deployments (name, manifest, component_sha256, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (name) DO UPDATE SET manifest = ?2, component_sha256 = ?3, updated_at = ?4",
                    libsql::params![name, manifest, sha, now],
                )
                .await?;
                Ok(((), None))
            })
            .await
    }

    /// Forgets `name`; true when it was an API deployment.
    pub async fn remove(&self, name: &str) -> Result<bool, StoreError> {
        self.db
            .write(|tx| async move {
                let removed = tx
                    .execute("DELETE FROM deployments WHERE name = ?1", [name])
                    .await?;
                Ok((removed > 0, None))
            })
            .await
    }

    pub async fn list(&self) -> Result<Vec<Stored>, StoreError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT name, manifest, component_sha256 FROM deployments ORDER BY name",
                (),
            )
            .await?;
        let mut stored = Vec::new();
        while let Some(row) = rows.next().await? {
            let sha: String = row.get(2)?;
            stored.push(Stored {
                name: row.get(0)?,
                manifest: row.get(1)?,
                component: if sha.is_empty() {
                    PathBuf::new()
                } else {
                    self.dir.join(format!("{sha}.wasm"))
                },
            });
        }
        Ok(stored)
    }
}

/// Makes a rename in `dir` durable (the new name survives power loss).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Validates manifest text sent with its component: the component is the
/// uploaded file whatever the text's `component` says (it may leave it out).
/// An empty `component` (a configuration agent's, or a `builtin:` one's):
/// the text as it is.
pub fn parse_with_component(text: &str, path: &Path, component: &Path) -> ManifestReport {
    if component.as_os_str().is_empty() {
        return Manifest::parse_report(text, path);
    }
    let names_component = toml::from_str::<toml::Table>(text)
        .map(|t| t.contains_key("component"))
        .unwrap_or(true);
    if names_component {
        let mut report = Manifest::parse_report(text, path);
        if let Some(manifest) = &mut report.manifest {
            manifest.component = component.to_owned();
        }
        return report;
    }
    // Supply the key on a line of its own above the text, then move every
    // problem back up a line so they point into what the client sent.
    let supplied = format!("component = {:?}\n{text}", component.display().to_string());
    let mut report = Manifest::parse_report(&supplied, path);
    let shift = |problem: &mut Problem| {
        if problem.line > 1 {
            problem.line -= 1;
        }
    };
    report.problems.iter_mut().for_each(shift);
    report.warnings.iter_mut().for_each(shift);
    report
}
