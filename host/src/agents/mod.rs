//! Agents and tools: their manifests and the registry of what is deployed.

mod manifest;
mod registry;
mod reload;

pub use manifest::{
    Manifest, ManifestError, ManifestReport, MemorySettings, PluginKind, ResourceLimits,
};
pub use registry::{AgentError, AgentRegistry, DeployedAgent, DeployedTool, LoadReport, Prepared};
pub use reload::{HotReload, OnRemoved, watch};
