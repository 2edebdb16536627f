//! Plugins the binary carries and deploys itself at start, before the
//! agents directory, so agents can list them like any tool: the
//! `http_client` tool (`plugins/http-client`, see `build.rs`). The prompt
//! agent that runs configuration agents is carried the same way
//! ([`super::registry::PROMPT_AGENT_WASM`]) but is not a deployed plugin.

use std::path::Path;
use std::sync::Arc;

use super::manifest::Manifest;
use super::registry::{AgentError, AgentRegistry};

/// `plugins/http-client`, built for wasm32-wasip2; empty when the plugins
/// were not built before caxton.
pub const HTTP_CLIENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/http_client.wasm"));

/// Where built-in plugins say they come from, in listings and errors.
pub const HTTP_CLIENT_SOURCE: &str = "<built-in http_client>";

const HTTP_CLIENT_MANIFEST: &str = r#"
name = "http_client"
version = "1.0.0"
kind = "tool"
description = "Fetches http(s) URLs for agents; each agent's [http] allow list decides which hosts it may reach."
component = "<built-in http_client>"
grants = ["http"]
"#;

impl AgentRegistry {
    /// Deploys the built-in tools. A binary built without them logs why
    /// and serves without them.
    pub async fn install_built_ins(&self) -> Result<(), AgentError> {
        if HTTP_CLIENT_WASM.is_empty() {
            tracing::warn!(
                "this caxton binary was built without the http_client tool; build the plugins (./scripts/setup) and rebuild caxton"
            );
            return Ok(());
        }
        let path = Path::new(HTTP_CLIENT_SOURCE);
        let report = Manifest::parse_report(HTTP_CLIENT_MANIFEST, path);
        let manifest = report
            .manifest
            .expect("the built-in http_client manifest is valid");
        let prepared = self
            .prepare_with(path, manifest, Some(Arc::from(HTTP_CLIENT_WASM)))
            .await?;
        self.install(prepared);
        Ok(())
    }
}
