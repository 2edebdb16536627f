//! Plugins the binary carries and deploys itself at start, before the
//! agents directory, so agents can list them like any tool: the
//! `http_client` tool (`plugins/http-client`, see `build.rs`). The prompt
//! agent that runs configuration agents is carried the same way
//! ([`super::registry::PROMPT_AGENT_WASM`]) but is not a deployed plugin.
//!
//! The example plugins are carried too, for manifests to name as
//! `component = "builtin:echo"`: the bundled examples then work wherever
//! the binary is installed, with no build output beside them.

use std::path::Path;
use std::sync::Arc;

use super::manifest::Manifest;
use super::registry::{AgentError, AgentRegistry};

/// `plugins/http-client`, built for wasm32-wasip2; empty when the plugins
/// were not built before caxton.
pub const HTTP_CLIENT_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/http_client.wasm"));

/// Where built-in plugins say they come from, in listings and errors.
pub const HTTP_CLIENT_SOURCE: &str = "<built-in http_client>";

/// How a manifest names a component carried in the binary.
pub const BUILT_IN_PREFIX: &str = "builtin:";

/// The components a manifest may name as `builtin:NAME`.
const BUILT_IN_COMPONENTS: [(&str, &[u8]); 5] = [
    (
        "echo",
        include_bytes!(concat!(env!("OUT_DIR"), "/echo.wasm")),
    ),
    (
        "csv_parser",
        include_bytes!(concat!(env!("OUT_DIR"), "/csv_parser.wasm")),
    ),
    (
        "analyst",
        include_bytes!(concat!(env!("OUT_DIR"), "/analyst.wasm")),
    ),
    (
        "recall",
        include_bytes!(concat!(env!("OUT_DIR"), "/recall.wasm")),
    ),
    ("http_client", HTTP_CLIENT_WASM),
];

/// The name in `builtin:NAME`, when `component` is such a reference.
pub fn built_in_name(component: &Path) -> Option<&str> {
    component.to_str()?.strip_prefix(BUILT_IN_PREFIX)
}

/// The bytes of the built-in component `component` names; `None` when it
/// names none (or this binary was built without it).
pub fn built_in_component(component: &Path) -> Option<&'static [u8]> {
    let name = built_in_name(component)?;
    BUILT_IN_COMPONENTS
        .iter()
        .find(|(known, bytes)| *known == name && !bytes.is_empty())
        .map(|(_, bytes)| *bytes)
}

/// The names `builtin:` accepts, for error messages.
pub fn built_in_names() -> String {
    let names: Vec<&str> = BUILT_IN_COMPONENTS
        .iter()
        .filter(|(_, bytes)| !bytes.is_empty())
        .map(|(name, _)| *name)
        .collect();
    if names.is_empty() {
        return "none in this binary (it was built before the plugins: run ./scripts/setup and rebuild caxton)".into();
    }
    names.join(", ")
}

// `EXAMPLE_AGENTS`: `examples/agents/*.toml` by file name (see build.rs).
include!(concat!(env!("OUT_DIR"), "/example_agents.rs"));

/// Creates the agents dir `dir` with the example manifests in it, when it
/// does not exist yet: a fresh box then serves the examples, and its user
/// finds working manifests to copy where agents go. A dir that exists
/// (even empty: its owner emptied it) is left alone, and so is one whose
/// parent is missing unless `create_parents`. Returns whether it seeded.
pub fn seed_agents_dir(dir: &Path, create_parents: bool) -> std::io::Result<bool> {
    if dir.exists() {
        return Ok(false);
    }
    // Written beside the final name and renamed, so a crash never leaves
    // a half-seeded dir that would stay half-seeded.
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        if !create_parents {
            return Ok(false);
        }
        std::fs::create_dir_all(parent)?;
    }
    let staging = tempfile::Builder::new()
        .prefix(".agents-seed")
        .tempdir_in(parent)?;
    for (name, text) in EXAMPLE_AGENTS {
        std::fs::write(staging.path().join(name), text)?;
    }
    match std::fs::rename(staging.path(), dir) {
        Ok(()) => {
            // The staging dir is now `dir`: nothing left to clean up.
            std::mem::forget(staging);
            Ok(true)
        }
        Err(_) if dir.exists() => Ok(false),
        Err(error) => Err(error),
    }
}

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
