//! The registry of deployed agents and tools. Each entry is an `Arc`
//! swapped whole, so a later hot reload replaces an agent atomically while
//! calls in flight finish on the version they started with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::manifest::{Manifest, ManifestError, PluginKind};
use crate::runtime::{
    AgentComponent, BoxFuture, CallLimits, CallOutcome, HostServices, Message, PluginSpec, Runtime,
    RuntimeError, ToolComponent, WitError,
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
    #[error("{path}: a plugin named {name:?} is already deployed from another manifest")]
    Duplicate { path: PathBuf, name: String },
    #[error("no agent named {0:?} is deployed")]
    NotFound(String),
    #[error("cannot read agents directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct DeployedAgent {
    pub manifest: Manifest,
    pub component: AgentComponent,
}

pub struct DeployedTool {
    pub manifest: Manifest,
    pub component: ToolComponent,
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
    runtime: Arc<Runtime>,
    agents: RwLock<HashMap<String, Arc<DeployedAgent>>>,
    tools: RwLock<HashMap<String, Arc<DeployedTool>>>,
}

impl AgentRegistry {
    pub fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        Arc::new(Self {
            runtime,
            agents: RwLock::default(),
            tools: RwLock::default(),
        })
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn agent_count(&self) -> usize {
        self.agents.read().expect("agents lock").len()
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

    /// Compiles (or reads from cache), checks and registers one plugin.
    pub async fn deploy(&self, path: &Path, manifest: Manifest) -> Result<(), AgentError> {
        let name = manifest.name.clone();
        if self.agent(&name).is_some() || self.tool(&name).is_some() {
            return Err(AgentError::Duplicate {
                path: path.to_owned(),
                name,
            });
        }
        if let Some(tool) = manifest.tools.iter().find(|t| self.tool(t).is_none()) {
            return Err(AgentError::UnknownTool {
                path: path.to_owned(),
                agent: name,
                tool: tool.clone(),
            });
        }
        let limits = self.limits_for(&manifest, path)?;
        let runtime = self.runtime.clone();
        let load_error = |source| AgentError::Load {
            path: path.to_owned(),
            source,
        };
        // Compiling is CPU-bound: keep it off the async workers.
        let loaded = tokio::task::spawn_blocking(move || {
            let spec = PluginSpec {
                name: &manifest.name,
                component: &manifest.component,
                grants: &manifest.grants,
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

        match loaded {
            (Loaded::Agent(component), manifest) => {
                tracing::info!(agent = %name, version = %manifest.version, "agent deployed");
                self.agents.write().expect("agents lock").insert(
                    name,
                    Arc::new(DeployedAgent {
                        manifest,
                        component,
                    }),
                );
            }
            (Loaded::Tool(component), manifest) => {
                tracing::info!(tool = %name, version = %manifest.version, "tool deployed");
                self.tools.write().expect("tools lock").insert(
                    name,
                    Arc::new(DeployedTool {
                        manifest,
                        component,
                    }),
                );
            }
        }
        Ok(())
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
                    "resource_limits.memory_mb: {} MiB is more than this host's per-instance cap of {} MiB (wasm_runtime.max_memory_per_instance_mb)",
                    memory_bytes >> 20,
                    self.runtime.max_memory_bytes() >> 20
                )],
            }
            .into());
        }
        Ok(CallLimits {
            fuel: requested.fuel.unwrap_or(defaults.fuel),
            timeout: requested.execution_timeout.unwrap_or(defaults.timeout),
            memory_bytes,
        })
    }

    /// Delivers a message to the named agent on a fresh instance.
    pub async fn call(
        self: &Arc<Self>,
        agent: &str,
        message: Message,
    ) -> Result<CallOutcome<Result<Option<Message>, WitError>>, AgentError> {
        let deployed = self
            .agent(agent)
            .ok_or_else(|| AgentError::NotFound(agent.to_owned()))?;
        let services: Arc<dyn HostServices> = self.clone();
        Ok(self
            .runtime
            .call_agent(&deployed.component, message, services)
            .await)
    }
}

enum Loaded {
    Agent(AgentComponent),
    Tool(ToolComponent),
}

impl HostServices for AgentRegistry {
    fn call_tool<'a>(
        &'a self,
        caller: &'a str,
        tool: &'a str,
        input: String,
    ) -> BoxFuture<'a, Result<String, WitError>> {
        Box::pin(async move {
            let allowed = self
                .agent(caller)
                .is_some_and(|agent| agent.manifest.tools.iter().any(|t| t == tool));
            if !allowed {
                return Err(WitError::Denied(format!(
                    "tool {tool:?} is not on agent {caller:?}'s allowlist; add it to `tools` in its manifest"
                )));
            }
            let deployed = self
                .tool(tool)
                .ok_or_else(|| WitError::NotFound(format!("no tool named {tool:?} is deployed")))?;
            let outcome = self.runtime.invoke_tool(&deployed.component, input).await;
            match outcome.result {
                Ok(result) => result,
                Err(RuntimeError::DeadlineExceeded { timeout }) => Err(WitError::Timeout(format!(
                    "tool {tool:?} did not finish within {timeout:?}"
                ))),
                Err(e) => Err(WitError::Internal(format!("tool {tool:?} failed: {e}"))),
            }
        })
    }
}
