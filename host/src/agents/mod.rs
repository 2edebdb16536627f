//! Agents and tools: their manifests and the registry of what is deployed.

mod manifest;
mod registry;

pub use manifest::{Manifest, ManifestError, MemorySettings, PluginKind, ResourceLimits};
pub use registry::{AgentError, AgentRegistry, DeployedAgent, DeployedTool, LoadReport};
