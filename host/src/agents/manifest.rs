//! Plugin manifests: one TOML file per agent or tool. Parsing reports every
//! problem at once, each saying where and how to fix it; the schema grows
//! with the agents issue, so every section is its own struct.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::memory::{DEFAULT_WORKSPACE, Scope};
use crate::runtime::GRANTABLE_INTERFACES;

/// A manifest that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}:\n{problems}", problems = .problems.join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// Whether the component is an agent (handles messages) or a tool
/// (a function agents call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    #[default]
    Agent,
    Tool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Agents: kebab-case, 3–64 chars. Tools: lowercase with `_` or `-`.
    pub name: String,
    /// Semantic version of the plugin.
    pub version: semver::Version,
    #[serde(default)]
    pub kind: PluginKind,
    #[serde(default)]
    pub description: String,
    /// What an agent can do; messages are routed by these. Agents need one.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Tools the agent may call (allowlist by tool name).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Path to the `.wasm` component, relative to the manifest's directory.
    pub component: PathBuf,
    /// Host interfaces the agent may import: `log`, `memory`, `tools`, `messaging`.
    #[serde(default)]
    pub grants: Vec<String>,
    #[serde(default)]
    pub resource_limits: ResourceLimits,
    #[serde(default)]
    pub memory: MemorySettings,
}

/// `[memory]`: how the agent's memory calls are scoped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemorySettings {
    /// Memory calls are refused when false (the `memory` grant is also needed).
    pub enabled: bool,
    /// Scope `remember` writes to: `agent`, `workspace` or `global`.
    pub scope: Scope,
    /// Most hits a `search` returns, whatever the plugin asks for.
    pub search_limit: u32,
    /// The workspace the agent belongs to (shares `workspace`-scoped memory).
    pub workspace: String,
    /// May write `global` memory (every agent reads it).
    pub global_write: bool,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            scope: Scope::Agent,
            search_limit: 10,
            workspace: DEFAULT_WORKSPACE.into(),
            global_write: false,
        }
    }
}

/// `[resource_limits]`: per-call limits; unset ones take the host defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// Fuel per call (about one unit per wasm instruction).
    pub fuel: Option<u64>,
    /// Linear memory cap per instance, in MiB.
    pub memory_mb: Option<u32>,
    /// Wall-clock limit per call, e.g. `"5s"`.
    #[serde(default, with = "optional_duration")]
    pub execution_timeout: Option<Duration>,
}

impl Manifest {
    /// Reads and validates a manifest; `component` comes back resolved
    /// against the manifest's directory.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` names it in errors and anchors `component`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let invalid = |problems| ManifestError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let mut manifest: Manifest =
            toml::from_str(text).map_err(|e| invalid(vec![e.to_string().trim().to_owned()]))?;
        let problems = manifest.problems();
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        if manifest.component.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            manifest.component = base.join(&manifest.component);
        }
        Ok(manifest)
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.kind {
            PluginKind::Agent => {
                if !is_kebab_case(&self.name) || !(3..=64).contains(&self.name.len()) {
                    problems.push(format!(
                        "name {:?}: agent names are kebab-case, 3-64 characters (e.g. \"data-analyst\")",
                        self.name
                    ));
                }
                if self.capabilities.is_empty() {
                    problems.push(
                        "capabilities: an agent needs at least one, e.g. capabilities = [\"echo\"]"
                            .into(),
                    );
                }
                for capability in &self.capabilities {
                    if !is_kebab_case(capability) {
                        problems.push(format!(
                            "capabilities: {capability:?} must be kebab-case (e.g. \"data-processing\")"
                        ));
                    }
                }
                for grant in &self.grants {
                    if !GRANTABLE_INTERFACES.contains(&grant.as_str()) {
                        problems.push(format!(
                            "grants: unknown interface {grant:?}; choose from {GRANTABLE_INTERFACES:?}"
                        ));
                    }
                }
                if !self.tools.is_empty() && !self.grants.iter().any(|g| g == "tools") {
                    problems.push(
                        "tools: listing tools needs the \"tools\" grant; add it to `grants`".into(),
                    );
                }
            }
            PluginKind::Tool => {
                if !is_tool_name(&self.name) {
                    problems.push(format!(
                        "name {:?}: tool names are lowercase letters, digits, `_` or `-`, 2-64 characters (e.g. \"csv_parser\")",
                        self.name
                    ));
                }
                for (field, empty) in [
                    ("capabilities", self.capabilities.is_empty()),
                    ("tools", self.tools.is_empty()),
                    ("grants", self.grants.is_empty()),
                ] {
                    if !empty {
                        problems.push(format!(
                            "{field}: tools cannot have {field}; remove the field (tools may only log)"
                        ));
                    }
                }
            }
        }
        if self.memory.scope == Scope::Global && !self.memory.global_write {
            problems.push(
                "memory.scope: \"global\" needs memory.global_write = true (every agent reads global memory)"
                    .into(),
            );
        }
        let limits = &self.resource_limits;
        if limits.fuel == Some(0) {
            problems.push("resource_limits.fuel: must be above zero".into());
        }
        if limits.memory_mb == Some(0) {
            problems.push("resource_limits.memory_mb: must be above zero".into());
        }
        if limits.execution_timeout.is_some_and(|t| t.is_zero()) {
            problems.push("resource_limits.execution_timeout: must be above zero".into());
        }
        problems
    }
}

fn is_kebab_case(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_tool_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

mod optional_duration {
    use std::time::Duration;

    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        crate::config::duration_text::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: &str = r#"
name = "echo"
version = "0.1.0"
capabilities = ["echo"]
component = "echo.wasm"
grants = ["log"]

[resource_limits]
fuel = 1000
execution_timeout = "250ms"
"#;

    fn problems_of(text: &str) -> String {
        Manifest::parse(text, Path::new("/agents/x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_valid_agent_resolves_its_component_next_to_the_manifest() {
        let manifest = Manifest::parse(ECHO, Path::new("/agents/echo.toml")).unwrap();
        assert_eq!(manifest.kind, PluginKind::Agent);
        assert_eq!(manifest.component, Path::new("/agents/echo.wasm"));
        assert_eq!(
            manifest.resource_limits.execution_timeout,
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
name = "Echo_Agent"
version = "0.1.0"
component = "echo.wasm"
grants = ["filesystem"]
"#;
        let message = problems_of(text);
        assert!(message.contains("kebab-case"), "{message}");
        assert!(message.contains("at least one"), "{message}");
        assert!(message.contains("\"filesystem\""), "{message}");
    }

    #[test]
    fn unknown_fields_and_bad_versions_say_where() {
        let message = problems_of(&ECHO.replace("grants", "grant"));
        assert!(message.contains("unknown field `grant`"), "{message}");
        assert!(message.contains("line"), "{message}");
        let message = problems_of(&ECHO.replace("0.1.0", "one"));
        assert!(message.contains("version"), "{message}");
    }

    #[test]
    fn tools_cannot_be_granted_host_interfaces() {
        let text = r#"
kind = "tool"
name = "csv_parser"
version = "1.0.0"
component = "csv.wasm"
grants = ["memory"]
"#;
        assert!(problems_of(text).contains("grants: tools cannot"));
    }
}
