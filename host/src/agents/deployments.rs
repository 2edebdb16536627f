//! Plugins deployed through the API, kept so they come back after a
//! restart: the manifest text in the store, the component in the data dir
//! by content hash (written first, so a row never names a missing file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::manifest::{Manifest, ManifestReport};
use crate::memory::{Memory, MemoryError};
use crate::toml_check::Problem;

pub struct Deployments {
    memory: Arc<Memory>,
    dir: PathBuf,
}

/// One stored deployment.
pub struct Stored {
    pub name: String,
    pub manifest: String,
    pub component: PathBuf,
}

impl Deployments {
    /// `dir` holds the component files (`<data dir>/deployed`).
    pub fn new(memory: Arc<Memory>, dir: PathBuf) -> Self {
        Self { memory, dir }
    }

    /// Where the manifest of API-deployed `name` is said to live (for
    /// messages and status; the store is the record).
    pub fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Writes the component file (content-addressed, atomically).
    pub fn store_component(&self, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self
            .dir
            .join(format!("{}.wasm", hex::encode(Sha256::digest(bytes))));
        if !path.exists() {
            std::fs::create_dir_all(&self.dir)?;
            let partial = path.with_extension("partial");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, &path)?;
        }
        Ok(path)
    }

    pub async fn save(
        &self,
        name: &str,
        manifest: &str,
        component: &Path,
    ) -> Result<(), MemoryError> {
        let sha = component
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let now = crate::memory::now_ms();
        let writer = self.memory.db().writer().await;
        writer
            .execute(
                "INSERT INTO deployments (name, manifest, component_sha256, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (name) DO UPDATE SET manifest = ?2, component_sha256 = ?3, updated_at = ?4",
                libsql::params![name, manifest, sha, now],
            )
            .await?;
        Ok(())
    }

    /// Forgets `name`; true when it was an API deployment.
    pub async fn remove(&self, name: &str) -> Result<bool, MemoryError> {
        let writer = self.memory.db().writer().await;
        Ok(writer
            .execute("DELETE FROM deployments WHERE name = ?1", [name])
            .await?
            > 0)
    }

    pub async fn list(&self) -> Result<Vec<Stored>, MemoryError> {
        let conn = self.memory.db().reader().await?;
        let mut rows = conn
            .query(
                "SELECT name, manifest, component_sha256 FROM deployments ORDER BY name",
                (),
            )
            .await?;
        let mut stored = Vec::new();
        while let Some(row) = rows.next().await? {
            stored.push(Stored {
                name: row.get(0)?,
                manifest: row.get(1)?,
                component: self.dir.join(format!("{}.wasm", row.get::<String>(2)?)),
            });
        }
        Ok(stored)
    }
}

/// Validates manifest text sent with its component: the component is the
/// uploaded file whatever the text's `component` says (it may leave it out).
pub fn parse_with_component(text: &str, path: &Path, component: &Path) -> ManifestReport {
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
