//! Profile changes while serving: watches caxton.toml and, when its
//! `[agents.default_limits]` or `[[agents.profiles]]` change, reloads the
//! agents they touch (as a manifest change reloads its agent). The file is
//! read and checked whole first: a broken edit changes nothing and says
//! why. Other sections take effect at the next start, and the log says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::registry::AgentRegistry;
use super::reload::{OnRemoved, reload_now};
use crate::config::Config;
use crate::metrics::metrics;

/// How often a config file that shares the data directory is checked.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Keeps the watch alive; dropping it stops it.
pub struct ConfigReload {
    _watcher: Box<dyn Watcher + Send>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigReload {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `file` (the config the server started with).
/// `started` is that config (as a fallback to tell which sections an edit
/// changed); manifests in `agents_dir` that were refused are tried again
/// when the profiles change (they may name a profile just added).
pub fn watch_config(
    registry: Arc<AgentRegistry>,
    file: &Path,
    started: Config,
    debounce: Duration,
    agents_dir: &Path,
    on_removed: OnRemoved,
) -> notify::Result<ConfigReload> {
    let file = file.canonicalize().unwrap_or_else(|_| file.to_owned());
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let in_data_dir = started
        .data_dir()
        .ok()
        .and_then(|data| data.canonicalize().ok())
        .is_some_and(|data| data == dir);
    let agents_dir = agents_dir.to_owned();
    // The file as read, without the command line's overrides (which a
    // re-read does not see either), so only real edits count as changes.
    let started = Config::resolve(Some(&file), std::env::vars()).unwrap_or(started);
    let (events, mut changes) = mpsc::unbounded_channel::<()>();
    let watched = file.clone();
    let on_event = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|p| p == &watched) {
            let _ = events.send(());
        }
    };
    let watcher: Box<dyn Watcher + Send> = if in_data_dir {
        // The store writes beside it (every message's record): a watch on
        // the directory would wake for each of those writes. The file
        // alone is polled instead, a stat every CONFIG_POLL.
        let config = notify::Config::default().with_poll_interval(CONFIG_POLL);
        let mut watcher = notify::PollWatcher::new(on_event, config)?;
        watcher.watch(&file, RecursiveMode::NonRecursive)?;
        Box::new(watcher)
    } else {
        // Editors replace the file: watch its directory, keep its events.
        let mut watcher = notify::recommended_watcher(on_event)?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Box::new(watcher)
    };
    let task = tokio::spawn(async move {
        let mut current = started;
        while changes.recv().await.is_some() {
            // An editor's several writes make one reload.
            while let Ok(Some(())) = tokio::time::timeout(debounce, changes.recv()).await {}
            if let Some(next) = reread(&file).await {
                if apply(&registry, &current, &next).await {
                    retry_refused(&registry, &agents_dir, &on_removed).await;
                }
                current = next;
            }
        }
    });
    Ok(ConfigReload {
        _watcher: watcher,
        task,
    })
}

/// The file as the server would read it now (with the same `CAXTON_*`
/// overrides), or `None` with the reason logged.
async fn reread(file: &Path) -> Option<Config> {
    let path = file.to_owned();
    let read = tokio::task::spawn_blocking(move || Config::resolve(Some(&path), std::env::vars()))
        .await
        .expect("config reading panicked");
    match read {
        Ok(config) => Some(config),
        // Removed or mid-rename: the next event brings it back.
        Err(_) if !file.exists() => None,
        Err(error) => {
            metrics().agent_reload_errors.inc();
            tracing::error!(
                file = %file.display(),
                "caxton.toml change refused, agents keep their limits: {error}"
            );
            None
        }
    }
}

/// Manifests in the agents directory that are not deployed (refused at
/// start or at their last change), tried again.
async fn retry_refused(registry: &AgentRegistry, agents_dir: &Path, on_removed: &OnRemoved) {
    let Ok(entries) = std::fs::read_dir(agents_dir) else {
        return;
    };
    let mut refused: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter(|path| registry.deployed_from(path).is_empty())
        .collect();
    refused.sort();
    for path in refused {
        if reload_now(registry, &path, on_removed).await.is_ok() {
            tracing::info!(file = %path.display(), "deployed now that the profiles changed");
        }
    }
}

/// Reloads the agents whose limits `next`'s profiles change; true when
/// the profiles changed.
async fn apply(registry: &AgentRegistry, current: &Config, next: &Config) -> bool {
    let (before, after) = (
        current.agents.agent_profiles(),
        next.agents.agent_profiles(),
    );
    let changed = before != after;
    if changed {
        let applied = registry.apply_profiles(after).await;
        for (agent, error) in &applied.refused {
            metrics().agent_reload_errors.inc();
            tracing::error!(
                agent,
                "new profile limits refused, the previous version keeps serving: {error}"
            );
        }
        tracing::info!(
            reloaded = ?applied.reloaded,
            refused = applied.refused.len(),
            "agent profiles changed in caxton.toml"
        );
    }
    // Everything else in the file is read once, at start.
    let strip = |config: &Config| {
        let mut config = config.clone();
        config.agents.default_limits = Default::default();
        config.agents.profiles = Vec::new();
        toml::to_string(&config).unwrap_or_default()
    };
    if strip(current) != strip(next) {
        tracing::warn!(
            "caxton.toml changed outside [agents.default_limits] and [[agents.profiles]]; those changes take effect when caxton restarts"
        );
    }
    changed
}
