//! The registry of deployed agents and tools: the map, loading and
//! installing, and lookups. Each entry is an `Arc` swapped whole, so a
//! later hot reload replaces an agent atomically while calls in flight
//! finish on the version they started with. Calls live in `calls.rs`, the
//! counters in `stats.rs`, what plugins' imports reach in `plugin_host.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::manifest::{DEFAULT_RESPONSE_TIMEOUT, Manifest, ManifestError, PluginKind};
use super::stats::AgentStats;
use crate::llm::LlmService;
use crate::memory::Memory;
use crate::profiles::{AgentProfiles, ChoiceError, Resolved};
use crate::runtime::{
    AgentComponent, CallLimits, GRANTABLE_INTERFACES, HostServices, PluginSpec, Runtime,
    RuntimeError, ToolComponent, ToolDescription,
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{path}: {source}")]
    Load { path: PathBuf, source: RuntimeError },
    #[error("{path}: agent {agent} lists tool {tool:?}, which is not deployed")]
    UnknownTool {
        path: PathBuf,
        agent: String,
        tool: String,
    },
    #[error(
        "{path}: agent {agent} lists tool {tool:?}, but no [[mcp.servers]] entry in caxton.toml is named {server:?}"
    )]
    UnknownMcpServer {
        path: PathBuf,
        agent: String,
        tool: String,
        server: String,
    },
    #[error("{path}: a plugin named {name:?} is already deployed from another manifest")]
    Duplicate { path: PathBuf, name: String },
    #[error("no agent named {0:?} is deployed")]
    NotFound(String),
    #[error(
        "{path}: this host already runs {limit} agents and tools ([agents] max_agents); remove one first"
    )]
    Limit { path: PathBuf, limit: usize },
    #[error("cannot read agents directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct DeployedAgent {
    pub manifest: Manifest,
    pub component: AgentComponent,
    /// The manifest file it came from.
    pub source: PathBuf,
    pub deployed_at: std::time::SystemTime,
}

pub struct DeployedTool {
    pub manifest: Manifest,
    pub component: ToolComponent,
    pub source: PathBuf,
    /// What the tool's `describe` said, asked the first time an agent
    /// needs it (offering tools to a model).
    pub description: tokio::sync::OnceCell<ToolDescription>,
}

/// Starts a reload error that changed profiles caused (so a later change
/// of them clears only their own).
const PROFILES_REFUSED: &str = "with caxton.toml's profiles: ";

/// Which deployed version of a plugin: its entry's address.
type Identity = usize;

fn identity<T>(deployed: &Arc<T>) -> Identity {
    Arc::as_ptr(deployed) as usize
}

/// How a configuration agent's component is named in errors and listings.
pub const PROMPT_AGENT_NAME: &str = "<built-in prompt agent>";

/// The prompt agent (`plugins/prompt-agent`), compiled into the binary so
/// an installed caxton runs configuration agents with nothing beside it.
/// Empty when the plugins were not built before caxton (see `build.rs`).
pub const PROMPT_AGENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/prompt_agent.wasm"));

/// A plugin compiled and checked, ready to be installed.
pub struct Prepared {
    path: PathBuf,
    manifest: Manifest,
    loaded: Loaded,
}

impl Prepared {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// What loading a directory did: a broken manifest is reported and skipped,
/// so one bad file does not keep the others from serving.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub agents: usize,
    pub tools: usize,
    pub failures: Vec<AgentError>,
}

pub struct AgentRegistry {
    pub(super) runtime: Arc<Runtime>,
    pub(super) memory: Option<Arc<Memory>>,
    pub(super) agents: RwLock<HashMap<String, Arc<DeployedAgent>>>,
    pub(super) tools: RwLock<HashMap<String, Arc<DeployedTool>>>,
    /// Why the last reload of a manifest file was refused, by file.
    pub(super) reload_errors: RwLock<HashMap<PathBuf, String>>,
    /// Per-agent counters; they survive reloads (same name, same counters).
    pub(super) stats: RwLock<HashMap<String, Arc<AgentStats>>>,
    /// Agents and tools deployed at most.
    pub(super) max_agents: std::sync::atomic::AtomicUsize,
    /// Largest reply content accepted from an agent, in bytes.
    pub(super) max_reply_bytes: std::sync::atomic::AtomicUsize,
    /// What agents' imports reach, wired once by `server`.
    pub(super) services: std::sync::OnceLock<HostServices>,
    /// The language models agents chat with, set once by `server`.
    pub(super) llm: std::sync::OnceLock<Arc<LlmService>>,
    /// The MCP servers whose tools agents call as `<server>/<tool>`.
    pub(super) mcp: std::sync::OnceLock<Arc<crate::mcp_client::McpServers>>,
    /// `[agents.default_limits]` and `[[agents.profiles]]`: applied to each
    /// manifest as it is prepared; swapped whole when caxton.toml changes.
    pub(super) profiles: RwLock<Arc<AgentProfiles>>,
}

/// What applying changed profiles did.
#[derive(Debug, Default)]
pub struct ProfilesApplied {
    /// Plugins prepared again and swapped in with their new limits.
    pub reloaded: Vec<String>,
    /// Plugins whose new limits were refused (they keep serving as they
    /// were), with why.
    pub refused: Vec<(String, String)>,
}

impl AgentRegistry {
    pub fn new(runtime: Arc<Runtime>, memory: Option<Arc<Memory>>) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            memory,
            agents: RwLock::default(),
            tools: RwLock::default(),
            reload_errors: RwLock::default(),
            stats: RwLock::default(),
            max_agents: std::sync::atomic::AtomicUsize::new(usize::MAX),
            max_reply_bytes: std::sync::atomic::AtomicUsize::new(usize::MAX),
            services: std::sync::OnceLock::new(),
            llm: std::sync::OnceLock::new(),
            mcp: std::sync::OnceLock::new(),
            profiles: RwLock::default(),
        })
    }

    /// The defaults and profiles manifests are resolved against.
    pub fn profiles(&self) -> Arc<AgentProfiles> {
        self.profiles.read().expect("profiles lock").clone()
    }

    /// Sets the defaults and profiles for plugins prepared from now on
    /// (at start, before the agents directory is loaded).
    pub fn set_profiles(&self, profiles: AgentProfiles) {
        *self.profiles.write().expect("profiles lock") = Arc::new(profiles);
    }

    /// Swaps in changed defaults and profiles, and prepares again every
    /// deployed plugin whose limits they change, swapping each in as a
    /// changed manifest would be. One refused (its manifest names a
    /// profile that is gone, a memory cap above the host's) keeps serving
    /// as it was, with the reason as its reload error.
    pub async fn apply_profiles(&self, profiles: AgentProfiles) -> ProfilesApplied {
        let old = self.profiles();
        if *old == profiles {
            return ProfilesApplied::default();
        }
        self.set_profiles(profiles);
        let new = self.profiles();
        // Each with the identity of the version seen, so one replaced or
        // removed while this one compiles is left as it now is.
        let deployed: Vec<(Manifest, PathBuf, Identity)> = self
            .agents()
            .iter()
            .map(|a| (a.manifest.clone(), a.source.clone(), identity(a)))
            .chain(
                self.tools()
                    .iter()
                    .map(|t| (t.manifest.clone(), t.source.clone(), identity(t))),
            )
            .collect();
        let mut applied = ProfilesApplied::default();
        for (manifest, source, seen) in deployed {
            let resolve = |profiles: &AgentProfiles| -> Result<Resolved, ChoiceError> {
                profiles.resolve(&manifest.written, &manifest.facts())
            };
            if resolve(&old) == resolve(&new) {
                continue;
            }
            let name = manifest.name.clone();
            match self.prepare(&source, manifest).await {
                Ok(prepared) => {
                    if !self.install_over(prepared, seen) {
                        continue;
                    }
                    // Only a refusal of the profiles' own is theirs to clear:
                    // a broken edit of the manifest file still stands.
                    if self
                        .reload_error(&source)
                        .is_some_and(|e| e.starts_with(PROFILES_REFUSED))
                    {
                        self.set_reload_error(&source, None);
                    }
                    applied.reloaded.push(name);
                }
                Err(error) => {
                    let error = format!("{PROFILES_REFUSED}{error}");
                    self.set_reload_error(&source, Some(error.clone()));
                    applied.refused.push((name, error));
                }
            }
        }
        applied
    }

    /// [`Self::install`], only if the plugin of that name is still the
    /// version `seen`; false (nothing installed) when it was replaced or
    /// removed meanwhile.
    fn install_over(&self, prepared: Prepared, seen: Identity) -> bool {
        self.swap_in(prepared, Some(seen))
    }

    /// Where choosing `manifest`'s profile fails, placed in `text` (the
    /// manifest as written): a profile it names that is not defined, or
    /// two that match it.
    pub fn profile_problem(
        &self,
        manifest: &Manifest,
        text: &str,
    ) -> Option<crate::toml_check::Problem> {
        self.profiles()
            .choose(&manifest.facts())
            .err()
            .map(|ChoiceError { key, message }| {
                crate::toml_check::Problem::at(text, &[key], message)
            })
    }

    /// `manifest` with the defaults and its profile applied; a profile it
    /// names that is not defined, or two that match it, is a problem at
    /// the manifest's key.
    fn with_profile(&self, path: &Path, manifest: Manifest) -> Result<Manifest, AgentError> {
        match self
            .profiles()
            .resolve(&manifest.written, &manifest.facts())
        {
            Ok(resolved) => Ok(manifest.with_limits(resolved)),
            Err(ChoiceError { key, message }) => {
                // Placed in the file when it holds this manifest (an API
                // deployment checks the text it was sent before this).
                let text = std::fs::read_to_string(path).unwrap_or_default();
                Err(ManifestError::Invalid {
                    path: path.to_owned(),
                    problems: vec![
                        crate::toml_check::Problem::at(&text, &[key], message).to_string(),
                    ],
                }
                .into())
            }
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Sets the language-model service agents' `llm` imports reach (once,
    /// in `server`); agents are then checked against its providers.
    pub fn set_llm(&self, llm: Arc<LlmService>) {
        if self.llm.set(llm).is_err() {
            tracing::warn!("the agent registry's language models were already set");
        }
    }

    pub fn llm(&self) -> Option<&Arc<LlmService>> {
        self.llm.get()
    }

    /// Sets the MCP servers agents' `<server>/<tool>` calls reach (once, in
    /// `server`).
    pub fn set_mcp_servers(&self, servers: Arc<crate::mcp_client::McpServers>) {
        if self.mcp.set(servers).is_err() {
            tracing::warn!("the agent registry's MCP servers were already set");
        }
    }

    pub fn mcp_servers(&self) -> Option<&Arc<crate::mcp_client::McpServers>> {
        self.mcp.get()
    }

    /// Configuration agents deployed (run by the prompt agent).
    pub fn configuration_agent_count(&self) -> usize {
        self.agents
            .read()
            .expect("agents lock")
            .values()
            .filter(|a| a.manifest.configuration)
            .count()
    }

    pub fn agent_count(&self) -> usize {
        self.agents.read().expect("agents lock").len()
    }

    /// Agents and tools deployed.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.agent_count(),
            self.tools.read().expect("tools lock").len(),
        )
    }

    pub fn agent(&self, name: &str) -> Option<Arc<DeployedAgent>> {
        self.agents.read().expect("agents lock").get(name).cloned()
    }

    pub fn tool(&self, name: &str) -> Option<Arc<DeployedTool>> {
        self.tools.read().expect("tools lock").get(name).cloned()
    }

    /// Loads every `*.toml` manifest in `dir`: tools first, so agents can
    /// be checked against the tools they list.
    pub async fn load_dir(&self, dir: &Path) -> Result<LoadReport, AgentError> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| AgentError::ReadDir {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();

        let mut report = LoadReport::default();
        let mut manifests = Vec::new();
        for path in paths {
            match Manifest::load(&path) {
                Ok(manifest) => manifests.push((path, manifest)),
                Err(e) => report.failures.push(e.into()),
            }
        }
        manifests.sort_by_key(|(_, m)| m.kind != PluginKind::Tool);
        for (path, manifest) in manifests {
            let kind = manifest.kind;
            match self.deploy(&path, manifest).await {
                Ok(()) if kind == PluginKind::Tool => report.tools += 1,
                Ok(()) => report.agents += 1,
                Err(e) => report.failures.push(e),
            }
        }
        Ok(report)
    }

    /// Compiles (or reads from cache), checks and registers one plugin;
    /// a name already deployed is refused.
    pub async fn deploy(&self, path: &Path, manifest: Manifest) -> Result<(), AgentError> {
        let name = manifest.name.clone();
        if self.agent(&name).is_some() || self.tool(&name).is_some() {
            return Err(AgentError::Duplicate {
                path: path.to_owned(),
                name,
            });
        }
        let prepared = self.prepare(path, manifest).await?;
        self.install(prepared);
        Ok(())
    }

    /// Caps the size of a reply's content (`[agents] max_reply_size`).
    pub fn set_max_reply_bytes(&self, limit: usize) {
        self.max_reply_bytes
            .store(limit, std::sync::atomic::Ordering::Relaxed);
    }

    /// The largest message content an agent may reply or send, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_reply_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Caps how many agents and tools may be deployed (`[agents] max_agents`).
    pub fn set_max_agents(&self, limit: usize) {
        self.max_agents
            .store(limit, std::sync::atomic::Ordering::Relaxed);
    }

    /// Compiles (or reads from cache) and checks a plugin without touching
    /// what is deployed: the first half of a hot reload.
    pub async fn prepare(&self, path: &Path, manifest: Manifest) -> Result<Prepared, AgentError> {
        self.prepare_with(path, manifest, None).await
    }

    /// [`Self::prepare`] with the component's bytes in hand (an upload not
    /// yet written): validated before anything reaches the disk.
    pub async fn prepare_with(
        &self,
        path: &Path,
        manifest: Manifest,
        wasm: Option<Arc<[u8]>>,
    ) -> Result<Prepared, AgentError> {
        let manifest = self.with_profile(path, manifest)?;
        let limit = self.max_agents.load(std::sync::atomic::Ordering::Relaxed);
        let (agents, tools) = self.counts();
        let replacing = self.agent(&manifest.name).is_some() || self.tool(&manifest.name).is_some();
        if !replacing && agents + tools >= limit {
            return Err(AgentError::Limit {
                path: path.to_owned(),
                limit,
            });
        }
        // `<server>/<tool>`: the server must be configured; its tools are
        // known once it runs (a call to one it lacks fails then).
        if let Some((tool, server)) = manifest.tools.iter().find_map(|t| {
            let (server, _) = t.split_once('/')?;
            (!self.mcp.get().is_some_and(|s| s.handles(t))).then_some((t, server))
        }) {
            return Err(AgentError::UnknownMcpServer {
                path: path.to_owned(),
                agent: manifest.name.clone(),
                tool: tool.clone(),
                server: server.to_owned(),
            });
        }
        if let Some(tool) = manifest
            .tools
            .iter()
            .find(|t| !t.contains('/') && self.tool(t).is_none())
        {
            return Err(AgentError::UnknownTool {
                path: path.to_owned(),
                agent: manifest.name.clone(),
                tool: tool.clone(),
            });
        }
        if manifest.configuration {
            self.check_configuration_agent(path, &manifest)?;
        }
        let limits = self.limits_for(&manifest, path)?;
        let runtime = self.runtime.clone();
        let load_error = |source| AgentError::Load {
            path: path.to_owned(),
            source,
        };
        // Compiling is CPU-bound: keep it off the async workers.
        let (loaded, manifest) = tokio::task::spawn_blocking(move || {
            // A configuration agent runs on the built-in prompt agent.
            // It imports every interface; what it may use is held by the
            // services instead (memory `enabled`, the tool allowlist, the
            // `agents` list), as for any agent.
            let all_interfaces: Vec<String> =
                GRANTABLE_INTERFACES.iter().map(|g| g.to_string()).collect();
            let (component, wasm, grants) = if manifest.configuration {
                (
                    Path::new(PROMPT_AGENT_NAME),
                    Some(PROMPT_AGENT_WASM),
                    &all_interfaces,
                )
            } else {
                (
                    manifest.component.as_path(),
                    wasm.as_deref()
                        .or_else(|| super::built_in::built_in_component(&manifest.component)),
                    &manifest.grants,
                )
            };
            let spec = PluginSpec {
                name: &manifest.name,
                component,
                wasm,
                grants,
                limits,
            };
            let loaded = match manifest.kind {
                PluginKind::Agent => runtime.load_agent(&spec).map(Loaded::Agent),
                PluginKind::Tool => runtime.load_tool(&spec).map(Loaded::Tool),
            };
            loaded.map(|l| (l, manifest))
        })
        .await
        .expect("component loading panicked")
        .map_err(load_error)?;
        Ok(Prepared {
            path: path.to_owned(),
            manifest,
            loaded,
        })
    }

    /// Puts a prepared plugin in place, replacing any of the same name in
    /// one map insert: calls in flight keep the `Arc` of the old version.
    pub fn install(&self, prepared: Prepared) {
        self.swap_in(prepared, None);
    }

    /// Inserts `prepared`; with `only_over`, only while the entry of that
    /// name is still that version (checked under the same write lock).
    fn swap_in(&self, prepared: Prepared, only_over: Option<Identity>) -> bool {
        let Prepared {
            path,
            manifest,
            loaded,
        } = prepared;
        let name = manifest.name.clone();
        let version = manifest.version.clone();
        match loaded {
            Loaded::Agent(component) => {
                let mut agents = self.agents.write().expect("agents lock");
                if only_over.is_some() && agents.get(&name).map(identity) != only_over {
                    return false;
                }
                tracing::info!(agent = %name, %version, "agent deployed");
                agents.insert(
                    name,
                    Arc::new(DeployedAgent {
                        manifest,
                        component,
                        source: path,
                        deployed_at: std::time::SystemTime::now(),
                    }),
                );
            }
            Loaded::Tool(component) => {
                let mut tools = self.tools.write().expect("tools lock");
                if only_over.is_some() && tools.get(&name).map(identity) != only_over {
                    return false;
                }
                tracing::info!(tool = %name, %version, "tool deployed");
                tools.insert(
                    name,
                    Arc::new(DeployedTool {
                        manifest,
                        component,
                        source: path,
                        description: tokio::sync::OnceCell::new(),
                    }),
                );
            }
        }
        true
    }

    /// Removes the agent or tool `name`; true when something was removed.
    pub fn remove(&self, name: &str) -> bool {
        let agent = self.agents.write().expect("agents lock").remove(name);
        let tool = self.tools.write().expect("tools lock").remove(name);
        if agent.is_some() || tool.is_some() {
            tracing::info!(name, "plugin removed");
        }
        agent.is_some() || tool.is_some()
    }

    /// The manifest file the agent or tool `name` was deployed from.
    pub fn source_of(&self, name: &str) -> Option<PathBuf> {
        self.agent(name)
            .map(|a| a.source.clone())
            .or_else(|| self.tool(name).map(|t| t.source.clone()))
    }

    /// Names of the plugins deployed from manifest `path`.
    pub fn deployed_from(&self, path: &Path) -> Vec<String> {
        let agents = self.agents.read().expect("agents lock");
        let tools = self.tools.read().expect("tools lock");
        agents
            .values()
            .filter(|a| a.source == path)
            .map(|a| a.manifest.name.clone())
            .chain(
                tools
                    .values()
                    .filter(|t| t.source == path)
                    .map(|t| t.manifest.name.clone()),
            )
            .collect()
    }

    /// Manifest files of plugins whose component is `component`.
    pub fn using_component(&self, component: &Path) -> Vec<PathBuf> {
        let agents = self.agents.read().expect("agents lock");
        let tools = self.tools.read().expect("tools lock");
        agents
            .values()
            .filter(|a| a.manifest.component == component)
            .map(|a| a.source.clone())
            .chain(
                tools
                    .values()
                    .filter(|t| t.manifest.component == component)
                    .map(|t| t.source.clone()),
            )
            .collect()
    }

    /// The counters of agent `name`.
    pub fn stats_of(&self, name: &str) -> Arc<AgentStats> {
        if let Some(stats) = self.stats.read().expect("stats lock").get(name) {
            return stats.clone();
        }
        self.stats
            .write()
            .expect("stats lock")
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Every deployed tool, by name.
    pub fn tools(&self) -> Vec<Arc<DeployedTool>> {
        let mut tools: Vec<_> = self
            .tools
            .read()
            .expect("tools lock")
            .values()
            .cloned()
            .collect();
        tools.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        tools
    }

    /// Records (or clears) why reloading `path` was refused.
    pub fn set_reload_error(&self, path: &Path, error: Option<String>) {
        let mut errors = self.reload_errors.write().expect("reload errors lock");
        match error {
            Some(error) => errors.insert(path.to_owned(), error),
            None => errors.remove(path),
        };
    }

    /// Why the last change to `path` was refused, if it was.
    pub fn reload_error(&self, path: &Path) -> Option<String> {
        self.reload_errors
            .read()
            .expect("reload errors lock")
            .get(path)
            .cloned()
    }

    /// Every deployed agent, by name.
    pub fn agents(&self) -> Vec<Arc<DeployedAgent>> {
        let mut agents: Vec<_> = self
            .agents
            .read()
            .expect("agents lock")
            .values()
            .cloned()
            .collect();
        agents.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        agents
    }

    /// Directories holding deployed components (watched for changes).
    pub fn component_dirs(&self) -> Vec<PathBuf> {
        let agents = self.agents.read().expect("agents lock");
        let tools = self.tools.read().expect("tools lock");
        let mut dirs: Vec<PathBuf> = agents
            .values()
            .map(|a| &a.manifest.component)
            .chain(tools.values().map(|t| &t.manifest.component))
            .filter(|c| super::built_in::built_in_name(c).is_none())
            .filter_map(|c| c.parent().map(Path::to_owned))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The manifest's limits over the host defaults, refusing a memory cap
    /// larger than the pool's slots can hold.
    fn limits_for(&self, manifest: &Manifest, path: &Path) -> Result<CallLimits, AgentError> {
        let defaults = self.runtime.default_limits();
        let requested = &manifest.resource_limits;
        let memory_bytes = requested
            .memory_mb
            .map_or(defaults.memory_bytes, |mb| u64::from(mb) << 20);
        if memory_bytes > self.runtime.max_memory_bytes() {
            return Err(ManifestError::Invalid {
                path: path.to_owned(),
                problems: vec![format!(
                    "resource_limits.memory_mb: {} MiB (from the {}) is more than this host's per-instance cap of {} MiB (wasm_runtime.max_memory_per_instance_mb)",
                    memory_bytes >> 20,
                    manifest
                        .limit_sources
                        .get("memory_mb")
                        .map_or_else(|| "manifest".to_owned(), ToString::to_string),
                    self.runtime.max_memory_bytes() >> 20
                )],
            }
            .into());
        }
        // A configuration agent's turn waits on a model: its bound is
        // `response_timeout`, not a component's call deadline.
        let timeout = if manifest.configuration {
            manifest
                .prompt
                .response_timeout
                .or(requested.execution_timeout)
                .unwrap_or(DEFAULT_RESPONSE_TIMEOUT)
        } else {
            requested.execution_timeout.unwrap_or(defaults.timeout)
        };
        Ok(CallLimits {
            fuel: requested.fuel.unwrap_or(defaults.fuel),
            timeout,
            memory_bytes,
        })
    }

    /// What only a configuration agent needs: the prompt agent in this
    /// binary, a provider and a model, and the agents it may ask.
    fn check_configuration_agent(
        &self,
        path: &Path,
        manifest: &Manifest,
    ) -> Result<(), AgentError> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let invalid = |key: &[&str], message: String| -> AgentError {
            ManifestError::Invalid {
                path: path.to_owned(),
                problems: vec![crate::toml_check::Problem::at(&text, key, message).to_string()],
            }
            .into()
        };
        if PROMPT_AGENT_WASM.is_empty() {
            return Err(invalid(
                &["system_prompt"],
                "this caxton binary was built without the prompt agent that runs configuration agents; build the plugins (./scripts/setup) and rebuild caxton".into(),
            ));
        }
        match self.llm.get() {
            None => {
                return Err(invalid(
                    &["system_prompt"],
                    "configuration agents need a language model, and this host has none configured ([llm] in caxton.toml)".into(),
                ));
            }
            Some(llm) => {
                if let Err((key, message)) =
                    llm.check_agent(&super::plugin_host::agent_chat(manifest))
                {
                    return Err(invalid(&["llm", key], message));
                }
            }
        }
        Ok(())
    }

    /// Agents offering `capability`, by name.
    pub fn providers(&self, capability: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .agents
            .read()
            .expect("agents lock")
            .values()
            .filter(|a| a.manifest.capabilities.iter().any(|c| c == capability))
            .map(|a| a.manifest.name.clone())
            .collect();
        names.sort();
        names
    }
}

enum Loaded {
    Agent(AgentComponent),
    Tool(ToolComponent),
}
