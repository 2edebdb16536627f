//! On-disk cache of precompiled components, keyed by the wasm's sha256 and
//! the engine's compatibility hash, so a restart compiles nothing and an
//! engine upgrade never loads stale machine code.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::RuntimeError;

/// Where a loaded component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Machine code was read from the cache.
    Hit,
    /// The component was compiled (and the result stored).
    Compiled,
}

pub struct ComponentCache {
    dir: PathBuf,
    engine_hash: String,
    hits: AtomicU64,
    compiled: AtomicU64,
}

impl ComponentCache {
    pub fn open(dir: PathBuf, engine: &Engine) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Cache {
            path: dir.clone(),
            source,
        })?;
        // DefaultHasher is deterministic within one build of the binary,
        // which is exactly the lifetime of compatible machine code.
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
            hits: AtomicU64::new(0),
            compiled: AtomicU64::new(0),
        })
    }

    /// Components compiled since start.
    pub fn compiled_count(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Components loaded from the cache since start.
    pub fn hit_count(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Loads `wasm` (read from `source`) as a component, from the cache when
    /// possible. Compilation runs on the calling thread: call from a
    /// blocking context.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        source: &Path,
    ) -> Result<(Component, CacheOutcome), RuntimeError> {
        let key = hex::encode(Sha256::digest(wasm));
        let path = self.dir.join(format!("{key}-{}.cwasm", self.engine_hash));

        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash, into the host's own
            // data dir, and is read whole before use.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "discarding unreadable cached component; recompiling"
                ),
            }
        }

        let started = std::time::Instant::now();
        let machine_code =
            engine
                .precompile_component(wasm)
                .map_err(|e| RuntimeError::InvalidComponent {
                    path: source.to_owned(),
                    message: format!("{e:#}"),
                })?;
        // SAFETY: the bytes were just produced by this engine.
        let component = unsafe { Component::deserialize(engine, &machine_code) }
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            source = %source.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );
        self.store(&path, &machine_code);
        Ok((component, CacheOutcome::Compiled))
    }

    /// Writes atomically (temp file + rename) so a crash never leaves a torn
    /// entry. A failed write only costs a recompile next start.
    fn store(&self, path: &Path, machine_code: &[u8]) {
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        let result =
            std::fs::write(&temp, machine_code).and_then(|()| std::fs::rename(&temp, path));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp);
            tracing::warn!(path = %path.display(), error = %e, "could not cache compiled component");
        }
    }
}
