//! Agents and tools: their manifests and the registry of what is deployed.

mod built_in;
mod calls;
mod config_reload;
mod deployments;
mod manifest;
mod plugin_host;
mod registry;
mod reload;
mod stats;
#[cfg(test)]
pub(crate) mod tests;

pub use built_in::{
    BUILT_IN_PREFIX, EXAMPLE_AGENTS, HTTP_CLIENT_SOURCE, HTTP_CLIENT_WASM, built_in_component,
    built_in_name, seed_agents_dir,
};
pub use config_reload::watch_config;
pub use deployments::{Deployments, Stored, parse_with_component};
pub use manifest::{
    DEFAULT_RESPONSE_TIMEOUT, LlmSettings, Manifest, ManifestError, ManifestReport, MemorySettings,
    PerformanceSettings, PluginKind, PromptParameters, ResourceLimits, is_agent_name, is_tool_name,
};
pub use plugin_host::agent_chat;
pub use registry::{
    AgentError, AgentRegistry, DeployedAgent, DeployedTool, LoadReport, PROMPT_AGENT_NAME,
    PROMPT_AGENT_WASM, Prepared, ProfilesApplied,
};
pub use reload::{HotReload, OnRemoved, reload_now, watch};
pub use stats::AgentStats;
