//! What agents' imports reach through the registry: tool calls (checked
//! against the agent's allowlist, with its tool deadline), its manifest's
//! parameters, and memory as the agent's own identity (its scope,
//! workspace and entity limit).

use super::calls::record_fault;
use super::registry::{AgentRegistry, DeployedTool};
use crate::llm::AgentChat;
use crate::memory::{Caller, Memory, MemoryError, SearchOptions};
use crate::metrics::metrics;
use crate::runtime::{
    BoxFuture, CallChain, ChatRequest, ChatResponse, ContextHost, LlmHost, MemoryEntity, MemoryHit,
    MemoryHost, PluginError, RuntimeError, ToolDescription, ToolHost,
};

impl AgentRegistry {
    /// The identity agent `name` uses for memory: its manifest's scope and
    /// workspace when it is deployed, agent-private defaults otherwise.
    pub fn memory_caller(&self, name: &str) -> Caller {
        match self.agent(name) {
            Some(agent) => {
                let settings = &agent.manifest.memory;
                Caller::Agent {
                    name: name.to_owned(),
                    workspace: settings.workspace.clone(),
                    default_scope: settings.scope,
                    global_write: agent.manifest.may_write_global(),
                }
            }
            None => Caller::agent(name),
        }
    }

    /// The memory service and the caller identity for plugin `caller`.
    pub(super) fn memory_for(&self, caller: &str) -> Result<(&Memory, Caller), PluginError> {
        let memory = self.memory.as_deref().ok_or_else(|| {
            PluginError::Unavailable("agent memory is not available on this host".into())
        })?;
        if self
            .agent(caller)
            .is_some_and(|a| !a.manifest.memory.enabled)
        {
            return Err(PluginError::Denied(format!(
                "memory is disabled for agent {caller:?} ([memory] enabled = false)"
            )));
        }
        Ok((memory, self.memory_caller(caller)))
    }
}

impl ToolHost for AgentRegistry {
    fn call_tool<'a>(
        &'a self,
        caller: &'a str,
        tool: &'a str,
        input: String,
    ) -> BoxFuture<'a, Result<String, PluginError>> {
        Box::pin(async move {
            let allowed = self
                .agent(caller)
                .is_some_and(|agent| agent.manifest.tools.iter().any(|t| t == tool));
            if !allowed {
                return Err(PluginError::Denied(format!(
                    "tool {tool:?} is not on agent {caller:?}'s allowlist; add it to `tools` in its manifest"
                )));
            }
            let deadline = self
                .agent(caller)
                .and_then(|a| a.manifest.resource_limits.tool_call_timeout);
            if let Some(servers) = self.mcp.get().filter(|s| s.handles(tool)) {
                let started = std::time::Instant::now();
                let outcome = servers.call(tool, &input, deadline).await;
                metrics()
                    .tool_call_duration
                    .with_label_values(&[caller, tool])
                    .observe(started.elapsed().as_secs_f64());
                return outcome;
            }
            if tool.contains('/') {
                return Err(PluginError::NotFound(format!(
                    "no [[mcp.servers]] entry provides {tool:?}; add the server to caxton.toml"
                )));
            }
            let http = self.agent(caller).and_then(|a| a.manifest.http_policy());
            self.run_tool(caller, tool, input, deadline, http).await
        })
    }

    fn available<'a>(&'a self, caller: &'a str) -> BoxFuture<'a, Vec<ToolDescription>> {
        Box::pin(self.tool_descriptions(caller))
    }
}

impl AgentRegistry {
    /// Runs deployed tool `tool` for `caller` (an agent, or `mcp` for the
    /// operator over MCP: the metric's label) within `deadline`, fetching
    /// over HTTP what `http` allows, recording its time and faults. The
    /// caller's allowlist is checked before this.
    pub async fn run_tool(
        &self,
        caller: &str,
        tool: &str,
        input: String,
        deadline: Option<std::time::Duration>,
        http: Option<std::sync::Arc<crate::runtime::HttpPolicy>>,
    ) -> Result<String, PluginError> {
        let deployed = self
            .tool(tool)
            .ok_or_else(|| PluginError::NotFound(format!("no tool named {tool:?} is deployed")))?;
        let call = self.runtime.invoke_tool(&deployed.component, input, http);
        let outcome = match deadline {
            None => call.await,
            Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                PluginError::Timeout(format!(
                    "tool {tool:?} did not answer within {limit:?} (resource_limits.tool_call_timeout)"
                ))
            })?,
        };
        metrics()
            .tool_call_duration
            .with_label_values(&[caller, tool])
            .observe(outcome.usage.wall_time_us as f64 / 1e6);
        if let Err(error) = &outcome.result {
            record_fault(error);
        }
        match outcome.result {
            Ok(result) => result,
            Err(RuntimeError::DeadlineExceeded { timeout }) => Err(PluginError::Timeout(format!(
                "tool {tool:?} did not finish within {timeout:?}"
            ))),
            Err(e) => Err(PluginError::Internal(format!("tool {tool:?} failed: {e}"))),
        }
    }

    /// What a deployed tool says about itself (its `describe`), asked once
    /// per deployed version and kept; named as it is deployed.
    pub async fn describe(&self, tool: &DeployedTool) -> ToolDescription {
        let name = &tool.manifest.name;
        let description = tool
            .description
            .get_or_init(|| async {
                let outcome = self.runtime.describe_tool(&tool.component).await;
                outcome.result.unwrap_or_else(|error| {
                    tracing::warn!(tool = %name, %error, "describe failed; offering the tool with its manifest's description");
                    ToolDescription {
                        name: name.clone(),
                        description: tool.manifest.description.clone(),
                        input_schema: r#"{"type":"object"}"#.into(),
                    }
                })
            })
            .await;
        ToolDescription {
            name: name.clone(),
            ..description.clone()
        }
    }

    /// What each deployed tool on `caller`'s allowlist says about itself,
    /// asked once per deployed tool version and kept.
    async fn tool_descriptions(&self, caller: &str) -> Vec<ToolDescription> {
        let Some(agent) = self.agent(caller) else {
            return Vec::new();
        };
        let mut descriptions = Vec::new();
        for name in &agent.manifest.tools {
            if let Some(servers) = self.mcp.get().filter(|s| s.handles(name)) {
                // A server that is down offers nothing until it is back.
                descriptions.extend(servers.describe(name));
                continue;
            }
            let Some(tool) = self.tool(name) else {
                continue;
            };
            descriptions.push(self.describe(&tool).await);
        }
        descriptions
    }
}

impl ContextHost for AgentRegistry {
    fn parameters(&self, caller: &str) -> String {
        self.agent(caller)
            .and_then(|a| serde_json::to_string(&a.manifest.parameters).ok())
            .unwrap_or_else(|| "{}".into())
    }

    fn manifest(&self, caller: &str) -> String {
        self.agent(caller)
            .map(|a| a.manifest.to_json().to_string())
            .unwrap_or_else(|| "{}".into())
    }
}

impl LlmHost for AgentRegistry {
    fn chat<'a>(
        &'a self,
        caller: &'a str,
        chain: Option<&'a CallChain>,
        request: ChatRequest,
    ) -> BoxFuture<'a, Result<ChatResponse, PluginError>> {
        Box::pin(async move {
            let llm = self.llm.get().ok_or_else(|| {
                PluginError::Unavailable("no language models are configured on this host".into())
            })?;
            let agent = self.agent(caller).ok_or_else(|| {
                PluginError::Denied(format!("{caller:?} is not a deployed agent"))
            })?;
            let manifest = &agent.manifest;
            // Streaming is the client's choice, bounded by the manifest's.
            let deltas = chain
                .and_then(|chain| chain.deltas())
                .filter(|_| manifest.performance.response_streaming);
            llm.chat(&agent_chat(manifest), request, deltas).await
        })
    }
}

/// What an agent's manifest says about its chats.
pub fn agent_chat(manifest: &super::Manifest) -> AgentChat {
    AgentChat {
        agent: manifest.name.clone(),
        version: manifest.version.to_string(),
        provider: manifest.llm.provider.clone(),
        model: manifest.llm.model.clone(),
        temperature: manifest.llm.temperature,
        max_tokens: manifest.llm.max_tokens,
        cache: manifest.prompt.cache_responses == Some(true),
    }
}

impl MemoryHost for AgentRegistry {
    fn remember<'a>(
        &'a self,
        caller: &'a str,
        name: String,
        entity_type: String,
        observations: Vec<String>,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let (memory, identity) = self.memory_for(caller)?;
            let limit = self
                .agent(caller)
                .and_then(|a| a.manifest.resource_limits.max_memory_entities);
            memory
                .remember_within(&identity, None, &name, &entity_type, &observations, limit)
                .await
                .map(|_| ())
                .map_err(to_wit)
        })
    }

    fn relate<'a>(
        &'a self,
        caller: &'a str,
        from: String,
        to: String,
        relation_type: String,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let (memory, identity) = self.memory_for(caller)?;
            memory
                .relate(&identity, &from, &to, &relation_type, 1.0)
                .await
                .map(|_| ())
                .map_err(to_wit)
        })
    }

    fn search<'a>(
        &'a self,
        caller: &'a str,
        query: String,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, PluginError>> {
        Box::pin(async move {
            let (memory, identity) = self.memory_for(caller)?;
            let cap = self
                .agent(caller)
                .map_or(10, |a| a.manifest.memory.search_limit);
            let options = SearchOptions {
                limit: limit.min(cap) as usize,
                entity_type: None,
            };
            let deadline = self
                .agent(caller)
                .and_then(|a| a.manifest.resource_limits.memory_search_timeout);
            let search = memory.search(&identity, &query, &options);
            let hits = match deadline {
                None => search.await,
                Some(limit) => tokio::time::timeout(limit, search).await.map_err(|_| {
                    PluginError::Timeout(format!(
                        "memory search did not finish within {limit:?} (resource_limits.memory_search_timeout)"
                    ))
                })?,
            }
            .map_err(to_wit)?;
            Ok(hits
                .into_iter()
                .map(|hit| MemoryHit {
                    entity: hit.entity,
                    entity_type: hit.entity_type,
                    observation: hit.observation,
                    score: hit.score,
                })
                .collect())
        })
    }

    fn open<'a>(
        &'a self,
        caller: &'a str,
        names: Vec<String>,
    ) -> BoxFuture<'a, Result<Vec<MemoryEntity>, PluginError>> {
        Box::pin(async move {
            let (memory, identity) = self.memory_for(caller)?;
            let views = memory.entities(&identity, &names).await.map_err(to_wit)?;
            Ok(views
                .into_iter()
                .map(|view| MemoryEntity {
                    name: view.name,
                    entity_type: view.entity_type,
                    observations: view.observations,
                })
                .collect())
        })
    }

    fn forget<'a>(
        &'a self,
        caller: &'a str,
        name: String,
    ) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let (memory, identity) = self.memory_for(caller)?;
            memory.forget(&identity, &name).await.map_err(to_wit)
        })
    }
}

fn to_wit(error: MemoryError) -> PluginError {
    match error {
        MemoryError::Denied(text) => PluginError::Denied(text),
        MemoryError::Invalid(text) => PluginError::InvalidInput(text),
        MemoryError::NotFound(name) => PluginError::NotFound(format!("no entity named {name:?}")),
        MemoryError::Embed(crate::embed::EmbedError::Busy) => {
            PluginError::Unavailable("the embedding queue is full; retry shortly".into())
        }
        other if other.is_unavailable() => PluginError::Unavailable(other.to_string()),
        other => PluginError::Internal(other.to_string()),
    }
}
