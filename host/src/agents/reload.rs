//! Hot reload: watches the agents directory (and the directories of the
//! deployed components) and swaps changed plugins in while serving.
//!
//! A change is validated and compiled before anything is replaced; the
//! swap is one map insert, so calls in flight finish on the old version
//! and new calls get the new one. An invalid change leaves the old version
//! serving and is reported in the log, the metrics and the agent's status.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::manifest::Manifest;
use super::registry::{AgentError, AgentRegistry};
use crate::metrics::metrics;

/// Called with the name of each plugin a reload removed.
pub type OnRemoved = Arc<dyn Fn(&str) + Send + Sync>;

/// Keeps the watch alive; dropping it stops hot reload.
pub struct HotReload {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HotReload {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `dir` for manifest changes.
pub fn watch(
    registry: Arc<AgentRegistry>,
    dir: &Path,
    debounce: Duration,
    on_removed: OnRemoved,
) -> notify::Result<HotReload> {
    let (events, mut changes) = mpsc::unbounded_channel::<(PathBuf, Instant)>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        // Reads and opens change nothing.
        if matches!(
            event.kind,
            EventKind::Access(notify::event::AccessKind::Open(_))
                | EventKind::Access(notify::event::AccessKind::Read)
        ) {
            return;
        }
        let now = Instant::now();
        for path in event.paths {
            let _ = events.send((path, now));
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    for component_dir in registry.component_dirs() {
        if component_dir != dir
            && let Err(error) = watcher.watch(&component_dir, RecursiveMode::NonRecursive)
        {
            tracing::warn!(%error, dir = %component_dir.display(), "cannot watch a component directory; its changes need a restart");
        }
    }
    let dir = dir.to_owned();
    let task = tokio::spawn(async move {
        // What each manifest file and its component were when last
        // installed: a touch or a save without changes swaps nothing.
        let mut installed: HashMap<PathBuf, [u8; 32]> = HashMap::new();
        while let Some((first, since)) = changes.recv().await {
            let mut paths = BTreeSet::from([first]);
            // Editors write a file in several steps: wait for quiet.
            loop {
                match tokio::time::timeout(debounce, changes.recv()).await {
                    Ok(Some((path, _))) => {
                        paths.insert(path);
                    }
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            for manifest in affected_manifests(&registry, &dir, &paths) {
                let current = fingerprint(&manifest);
                if current.is_some()
                    && current == installed.get(&manifest).copied()
                    && registry.reload_error(&manifest).is_none()
                {
                    tracing::debug!(file = %manifest.display(), "unchanged; nothing to reload");
                    continue;
                }
                if reload(&registry, &manifest, since, &on_removed).await {
                    match current {
                        Some(fingerprint) => installed.insert(manifest, fingerprint),
                        None => installed.remove(&manifest),
                    };
                }
            }
        }
    });
    Ok(HotReload {
        _watcher: watcher,
        task,
    })
}

/// Manifests to reload for these changed paths: changed manifests in the
/// agents dir, and the manifests of plugins whose component changed.
fn affected_manifests(
    registry: &AgentRegistry,
    dir: &Path,
    paths: &BTreeSet<PathBuf>,
) -> BTreeSet<PathBuf> {
    let mut manifests = BTreeSet::new();
    for path in paths {
        if path.extension().is_some_and(|e| e == "toml") && path.parent() == Some(dir) {
            manifests.insert(path.clone());
        } else {
            manifests.extend(registry.using_component(path));
        }
    }
    // Only manifests in the agents dir are the directory's to reload: an
    // API deployment's manifest lives in the store (its path is a name,
    // not a file), so reading "its file" would find nothing and unload it.
    manifests.retain(|manifest| manifest.parent() == Some(dir));
    manifests
}

/// Reloads the plugin defined by manifest `path` now (`caxton agents
/// reload`): the same checks and swap as a file change.
pub async fn reload_now(
    registry: &AgentRegistry,
    path: &Path,
    on_removed: &OnRemoved,
) -> Result<Duration, String> {
    let started = Instant::now();
    if reload(registry, path, started, on_removed).await {
        Ok(started.elapsed())
    } else {
        Err(registry
            .reload_error(path)
            .unwrap_or_else(|| "the reload was refused".into()))
    }
}

/// The content of a manifest and of the component it names, hashed.
fn fingerprint(manifest: &Path) -> Option<[u8; 32]> {
    let text = std::fs::read(manifest).ok()?;
    let mut hash = Sha256::new();
    hash.update(&text);
    let named = toml::from_str::<toml::Table>(std::str::from_utf8(&text).ok()?)
        .ok()?
        .get("component")?
        .as_str()?
        .to_owned();
    // A component the binary carries changes only with the binary.
    if super::built_in::built_in_name(Path::new(&named)).is_none() {
        let component = manifest.parent().unwrap_or(Path::new(".")).join(named);
        hash.update(std::fs::read(component).ok()?);
    }
    Some(hash.finalize().into())
}

/// Reloads the plugin(s) of one manifest file; true when the result is
/// installed (or the plugin removed).
async fn reload(
    registry: &AgentRegistry,
    path: &Path,
    since: Instant,
    on_removed: &OnRemoved,
) -> bool {
    let previous = registry.deployed_from(path);
    if !path.exists() {
        for name in previous {
            registry.remove(&name);
            on_removed(&name);
        }
        registry.set_reload_error(path, None);
        return true;
    }
    let loaded = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Manifest::load(&path))
            .await
            .expect("manifest checking panicked")
    };
    let outcome = match loaded {
        Err(error) => Err(AgentError::from(error)),
        Ok(manifest) => match registry.source_of(&manifest.name) {
            Some(other) if other != path => Err(AgentError::Duplicate {
                path: path.to_owned(),
                name: manifest.name.clone(),
            }),
            _ => registry.prepare(path, manifest).await,
        },
    };
    match outcome {
        Ok(prepared) => {
            let name = prepared.name().to_owned();
            registry.install(prepared);
            for old in previous.iter().filter(|old| **old != name) {
                registry.remove(old);
                on_removed(old);
            }
            registry.set_reload_error(path, None);
            let elapsed = since.elapsed();
            metrics()
                .agent_reload_duration
                .observe(elapsed.as_secs_f64());
            tracing::info!(
                agent = %name,
                file = %path.display(),
                reload_ms = elapsed.as_secs_f64() * 1e3,
                "agent reloaded"
            );
            true
        }
        Err(error) => {
            metrics().agent_reload_errors.inc();
            tracing::error!(
                file = %path.display(),
                serving = ?previous,
                "reload refused, the previous version keeps serving: {error}"
            );
            registry.set_reload_error(path, Some(error.to_string()));
            false
        }
    }
}
