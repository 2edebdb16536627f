//! Plugin manifests: one TOML file per agent or tool. Parsing reports every
//! problem at once, each with its line, column and a fix, because an
//! operator editing a manifest on a box should not have to redeploy once per
//! mistake. Hints from the operators' guide that the host does not act on
//! are accepted with a warning rather than rejected or silently dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::memory::{DEFAULT_WORKSPACE, Scope};
use crate::priority::Priority;
use crate::profiles::{AgentFacts, LimitSet, Resolved, Source};
use crate::runtime::GRANTABLE_INTERFACES;
use crate::toml_check::{Locator, Problem, closest, is_kebab_case};

/// A manifest that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `problems` are [`Problem`]s as text: "line L, column C: message".
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

/// A validated manifest. Built only by [`Manifest::parse_report`], so every
/// value in it has passed the checks there.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Agents: kebab-case, 3–64 chars. Tools: lowercase with `_` or `-`.
    pub name: String,
    /// Semantic version of the plugin.
    pub version: semver::Version,
    pub kind: PluginKind,
    pub description: String,
    /// What an agent can do; messages are routed by these. Agents need one.
    pub capabilities: Vec<String>,
    /// Tools the agent may call (allowlist by tool name).
    pub tools: Vec<String>,
    /// The `.wasm` component, resolved against the manifest's directory;
    /// empty for a configuration agent (see [`Manifest::configuration`]).
    pub component: PathBuf,
    /// True for a *configuration agent*: `system_prompt` and no
    /// `component`; the built-in prompt agent runs it.
    pub configuration: bool,
    /// Host interfaces the agent may import: `log`, `memory`, `tools`,
    /// `messaging`, `llm` (a configuration agent gets what its manifest uses).
    pub grants: Vec<String>,
    /// Agents a configuration agent may ask (offered to its model as
    /// functions; asking goes through messaging).
    pub agents: Vec<String>,
    /// `[llm]`: the provider, model and options of this agent's chats.
    pub llm: LlmSettings,
    /// `[performance]`: the switches a configuration agent acts on.
    pub performance: PerformanceSettings,
    pub resource_limits: ResourceLimits,
    pub memory: MemorySettings,
    /// What the tools it calls may fetch over HTTP.
    pub http: HttpSettings,
    /// `[parameters]`: free-form settings handed to the plugin as they are;
    /// the host does not interpret them, so it does not check their keys.
    pub parameters: toml::Table,
    /// The `[parameters]` a configuration agent acts on, read once here
    /// (defaults for a component agent, or where a key is absent).
    pub prompt: PromptParameters,
    /// The agent's instructions, for plugins that drive a language model.
    pub system_prompt: Option<String>,
    /// Operator-facing notes (Markdown); the host only stores them.
    pub documentation: Option<String>,
    /// The caxton.toml profile the manifest names (`profile = "realtime"`).
    pub profile: Option<String>,
    /// What profiles' `agent_types` match, e.g. `"monitor"`.
    pub agent_type: Option<String>,
    /// The priority of messages to the agent whose sender gives none, in
    /// effect (manifest, profile, `default_limits`, else normal).
    pub priority: Priority,
    /// The limits as the manifest wrote them: what a profile and
    /// `default_limits` are applied under (again when they change).
    pub written: LimitSet,
    /// Where each limit in effect came from, once the registry applied
    /// the profiles ([`Manifest::with_limits`]); empty before.
    pub limit_sources: BTreeMap<&'static str, Source>,
    /// The profile applied, if any.
    pub applied_profile: Option<String>,
}

/// `[memory]`: how the agent's memory calls are scoped.
///
/// No `deny_unknown_fields` here or in [`ResourceLimits`]: unknown keys are
/// collected (all of them, with their paths) by [`Manifest::parse_report`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
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
    /// Configuration agents: store each exchange as observations.
    pub auto_store: bool,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            scope: Scope::Agent,
            search_limit: 10,
            workspace: DEFAULT_WORKSPACE.into(),
            global_write: false,
            auto_store: false,
        }
    }
}

/// `[http]`: what the tools this agent calls (those granted `http`, such as
/// the built-in `http_client`) may fetch. Nothing without an allow list.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Hosts that may be reached: `"api.example.com"`, `"127.0.0.1:8089"`,
    /// `"https://api.example.com"`, `"*.example.com"`. Private, loopback and
    /// link-local addresses only when listed as addresses (or `localhost`).
    pub allow: Vec<String>,
    /// Longest one request may take, body included.
    #[serde(with = "crate::config::duration_text")]
    pub timeout: Duration,
    /// Largest response body one request may read, in bytes.
    pub max_response_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            timeout: Duration::from_secs(30),
            max_response_bytes: 1 << 20,
        }
    }
}

/// `[resource_limits]`: per-agent limits; unset ones take the host defaults.
/// Durations are human strings such as `"5s"` or `"250ms"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResourceLimits {
    /// Fuel per call (about one unit per wasm instruction).
    pub fuel: Option<u64>,
    /// Linear memory cap per instance, in MiB.
    pub memory_mb: Option<u32>,
    /// Wall-clock limit per call, e.g. `"5s"`.
    #[serde(deserialize_with = "crate::config::optional_duration_text::deserialize")]
    pub execution_timeout: Option<Duration>,
    /// Conversations the agent may have open at once.
    pub max_conversations: Option<u32>,
    /// Memory entities the agent may keep in its own scope.
    pub max_memory_entities: Option<u64>,
    /// Wall-clock limit for one tool call made by the agent.
    #[serde(deserialize_with = "crate::config::optional_duration_text::deserialize")]
    pub tool_call_timeout: Option<Duration>,
    /// Wall-clock limit for one memory search made by the agent.
    #[serde(deserialize_with = "crate::config::optional_duration_text::deserialize")]
    pub memory_search_timeout: Option<Duration>,
}

/// `[llm]`: which provider and model the agent's chats use, and their
/// options; unset values come from caxton.toml's `[llm]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct LlmSettings {
    /// A provider named in caxton.toml's `[llm.providers]`.
    pub provider: Option<String>,
    /// The model, as the provider names it.
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// `[performance]`: of the guide's switches, the ones a configuration
/// agent acts on; the others are accepted with a warning.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct PerformanceSettings {
    /// Run the tool calls of one model answer at the same time.
    pub parallel_tool_calls: bool,
    /// Stream the answer to clients that ask for a stream.
    pub response_streaming: bool,
}

impl Default for PerformanceSettings {
    fn default() -> Self {
        Self {
            parallel_tool_calls: true,
            response_streaming: true,
        }
    }
}

/// The `[parameters]` a configuration agent acts on (the table stays
/// free-form for component agents). Typed here so that a wrong value is a
/// located problem at deploy time, not a failure at the first message.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PromptParameters {
    /// Bounds a whole turn, e.g. `"15s"`.
    #[serde(deserialize_with = "crate::config::optional_duration_text::deserialize")]
    pub response_timeout: Option<Duration>,
    /// Tokens of history and memory context kept in a turn's prompt.
    pub max_context_length: Option<u32>,
    /// Answer an identical turn from the response cache.
    pub cache_responses: Option<bool>,
    /// Model calls in one turn at most (tool rounds), default 8.
    pub max_steps: Option<u32>,
}

/// The typed view of a `[parameters]` table.
fn prompt_parameters(table: &toml::Table) -> Result<PromptParameters, toml::de::Error> {
    toml::Value::Table(table.clone()).try_into()
}

/// How long a configuration agent's turn may take when its manifest says
/// nothing: a model on a small CPU needs seconds, not the 5 s default of
/// a component agent's call.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

impl Manifest {
    /// What the tools this agent calls may fetch; `None` (every request
    /// refused) without an allow list.
    pub fn http_policy(&self) -> Option<std::sync::Arc<crate::runtime::HttpPolicy>> {
        if self.http.allow.is_empty() {
            return None;
        }
        Some(std::sync::Arc::new(crate::runtime::HttpPolicy {
            agent: self.name.clone(),
            // Validation has refused a manifest whose rules do not parse.
            allow: self
                .http
                .allow
                .iter()
                .filter_map(|rule| crate::runtime::AllowRule::parse(rule).ok())
                .collect(),
            timeout: self.http.timeout,
            max_response_bytes: self.http.max_response_bytes,
        }))
    }

    /// What a profile matches this plugin by.
    pub fn facts(&self) -> AgentFacts<'_> {
        AgentFacts {
            name: &self.name,
            capabilities: &self.capabilities,
            agent_type: self.agent_type.as_deref(),
            profile: self.profile.as_deref(),
        }
    }

    /// This manifest with `resolved`'s limits in effect where it wrote
    /// none. Starts from [`Manifest::written`], so applying new profiles
    /// to an applied manifest gives what applying them to the file would.
    pub fn with_limits(&self, resolved: Resolved) -> Manifest {
        let mut manifest = self.clone();
        let limits = &resolved.limits;
        manifest.resource_limits = ResourceLimits {
            fuel: limits.fuel_limit,
            memory_mb: limits.memory_mb,
            execution_timeout: limits.execution_timeout,
            max_conversations: limits.max_conversations,
            max_memory_entities: limits.max_memory_entities,
            tool_call_timeout: limits.tool_call_timeout,
            memory_search_timeout: limits.memory_search_timeout,
        };
        manifest.prompt.response_timeout = limits.response_timeout;
        manifest.prompt.max_context_length = limits.context_length_limit;
        manifest.priority = limits.priority.unwrap_or_default();
        if self.written.memory_scope.is_none() {
            manifest.memory.scope = limits
                .memory_scope
                .unwrap_or(MemorySettings::default().scope);
        }
        manifest.limit_sources = resolved.sources;
        manifest.applied_profile = resolved.profile;
        manifest
    }

    /// May write `global` memory: the manifest says so, or caxton.toml
    /// gave it the `global` scope (the operator letting it write there).
    pub fn may_write_global(&self) -> bool {
        self.memory.global_write
            || (self.memory.scope == Scope::Global
                && self.limit_sources.get("memory_scope") != Some(&Source::Manifest))
    }

    /// The limits in effect as JSON, each with its value (durations in
    /// milliseconds; null for no limit), where it came from and the
    /// manifest key that sets it: what `caxton agents show` prints.
    /// `host` is the runtime's defaults, the value of a call limit set
    /// nowhere.
    pub fn limits_json(&self, host: &crate::runtime::CallLimits) -> serde_json::Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let limits = &self.resource_limits;
        let response_timeout = self
            .prompt
            .response_timeout
            .or(self.configuration.then_some(DEFAULT_RESPONSE_TIMEOUT));
        let values = [
            (
                "max_conversations",
                serde_json::json!(limits.max_conversations),
            ),
            (
                "max_memory_entities",
                serde_json::json!(limits.max_memory_entities),
            ),
            ("response_timeout", serde_json::json!(ms(response_timeout))),
            (
                "tool_call_timeout",
                serde_json::json!(ms(limits.tool_call_timeout)),
            ),
            (
                "memory_search_timeout",
                serde_json::json!(ms(limits.memory_search_timeout)),
            ),
            (
                "context_length_limit",
                serde_json::json!(self.prompt.max_context_length),
            ),
            (
                "memory_mb",
                serde_json::json!(limits.memory_mb.unwrap_or((host.memory_bytes >> 20) as u32)),
            ),
            (
                "fuel_limit",
                serde_json::json!(limits.fuel.unwrap_or(host.fuel)),
            ),
            (
                "execution_timeout",
                serde_json::json!(ms(limits.execution_timeout.or(Some(host.timeout)))),
            ),
            ("priority", serde_json::json!(self.priority)),
            ("memory_scope", serde_json::json!(self.memory.scope)),
        ];
        let entries = values.into_iter().map(|(key, value)| {
            let source = self
                .limit_sources
                .get(key)
                .map_or_else(|| "manifest".to_owned(), ToString::to_string);
            let manifest_key = LimitSet::MANIFEST_KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(key, |(_, m)| *m);
            (
                key.to_owned(),
                serde_json::json!({
                    "value": value,
                    "source": source,
                    "manifest_key": manifest_key,
                }),
            )
        });
        serde_json::Value::Object(entries.collect())
    }

    /// The manifest as the `context.manifest` import shows it to the
    /// agent: its own keys, durations as `*_ms`.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let limits = &self.resource_limits;
        // The limits in effect, where the prompt agent reads them.
        let mut parameters = self.parameters.clone();
        if let Some(tokens) = self.prompt.max_context_length {
            parameters.insert("max_context_length".into(), i64::from(tokens).into());
        }
        serde_json::json!({
            "name": self.name,
            "version": self.version.to_string(),
            "description": self.description,
            "capabilities": self.capabilities,
            "tools": self.tools,
            "agents": self.agents,
            "system_prompt": self.system_prompt,
            "memory": {
                "enabled": self.memory.enabled && self.grants.iter().any(|g| g == "memory"),
                "scope": self.memory.scope,
                "search_limit": self.memory.search_limit,
                "auto_store": self.memory.auto_store,
            },
            "parameters": parameters,
            "performance": self.performance,
            "priority": self.priority,
            "profile": self.applied_profile,
            "llm": self.llm,
            "resource_limits": {
                "execution_timeout_ms": ms(limits.execution_timeout),
                "tool_call_timeout_ms": ms(limits.tool_call_timeout),
                "memory_search_timeout_ms": ms(limits.memory_search_timeout),
                "max_conversations": limits.max_conversations,
            },
        })
    }
}

/// Everything parsing found: the manifest when there were no problems, every
/// problem (each stops deployment) and every warning (accepted keys the host
/// does not act on).
#[derive(Debug, Default)]
pub struct ManifestReport {
    pub manifest: Option<Manifest>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// The file as written. Required fields are optional and `version` is text
/// so that a missing or malformed one becomes one problem among the others
/// instead of the only error serde reports.
#[derive(Deserialize)]
struct RawManifest {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    kind: PluginKind,
    #[serde(default)]
    description: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    tools: Vec<String>,
    component: Option<PathBuf>,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    agents: Vec<String>,
    #[serde(default)]
    llm: LlmSettings,
    #[serde(default)]
    performance: PerformanceSettings,
    #[serde(default)]
    resource_limits: ResourceLimits,
    #[serde(default)]
    memory: MemorySettings,
    #[serde(default)]
    http: HttpSettings,
    #[serde(default)]
    parameters: toml::Table,
    system_prompt: Option<String>,
    documentation: Option<String>,
    profile: Option<String>,
    agent_type: Option<String>,
    priority: Option<Priority>,
}

/// Keys of [`RawManifest`], [`MemorySettings`] and [`ResourceLimits`], for
/// "did you mean" suggestions; a test keeps them in step with the structs.
const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "version",
    "kind",
    "description",
    "capabilities",
    "tools",
    "component",
    "grants",
    "agents",
    "llm",
    "performance",
    "resource_limits",
    "memory",
    "http",
    "parameters",
    "system_prompt",
    "documentation",
    "profile",
    "agent_type",
    "priority",
];
const HTTP_KEYS: &[&str] = &["allow", "timeout", "max_response_bytes"];
const MEMORY_KEYS: &[&str] = &[
    "enabled",
    "scope",
    "search_limit",
    "workspace",
    "global_write",
    "auto_store",
];
const LLM_KEYS: &[&str] = &["provider", "model", "temperature", "max_tokens"];
const PERFORMANCE_KEYS: &[&str] = &["parallel_tool_calls", "response_streaming"];
const RESOURCE_LIMIT_KEYS: &[&str] = &[
    "fuel",
    "memory_mb",
    "execution_timeout",
    "max_conversations",
    "max_memory_entities",
    "tool_call_timeout",
    "memory_search_timeout",
];

/// A key the operators' guide shows that this host accepts but does not act
/// on. Rejecting them would break manifests written from the guide; ignoring
/// them silently would let operators believe they took effect.
struct Hint {
    path: &'static [&'static str],
    /// Why the host does not act on it, shown in the warning.
    reason: &'static str,
}

/// Kept to what the guide's agent template shows; anything else unknown is
/// a problem, since it is far more often a typo than a hint.
const HINTS: &[Hint] = &[
    Hint {
        path: &["performance", "lazy_tool_loading"],
        reason: "tools are always loaded at deploy time (they are checked then)",
    },
    Hint {
        path: &["performance", "optimize_prompts"],
        reason: "the host sends the system prompt as written",
    },
    Hint {
        path: &["performance", "preload_memory"],
        reason: "memory is searched per message, within memory_search_timeout",
    },
    Hint {
        path: &["resource_limits", "context_switch_limit"],
        reason: "the host has no context switches to limit; each message runs on a fresh instance",
    },
];

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

    /// Parses manifest text; `path` names it in errors and anchors
    /// `component`. Warnings are logged; any problem fails the whole manifest.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let report = Self::parse_report(text, path);
        for warning in &report.warnings {
            tracing::warn!(manifest = %path.display(), "{warning}");
        }
        match report.manifest {
            Some(manifest) if report.problems.is_empty() => Ok(manifest),
            _ => Err(ManifestError::Invalid {
                path: path.to_owned(),
                problems: report.problems.iter().map(ToString::to_string).collect(),
            }),
        }
    }

    /// Parses and checks manifest text, collecting every problem and warning
    /// instead of stopping at the first. `manifest` is set only when there
    /// are no problems. A TOML syntax or type error is reported alone (with
    /// any unknown keys seen before it): past it there is nothing to check.
    pub fn parse_report(text: &str, path: &Path) -> ManifestReport {
        let mut report = ManifestReport::default();
        let mut unknown = Vec::new();
        let raw = toml::Deserializer::parse(text).and_then(|document| {
            serde_ignored::deserialize::<_, _, RawManifest>(document, |key| {
                unknown.push(key_path(&key));
            })
        });
        let locator = Locator::new(text);
        for keys in &unknown {
            report.classify_unknown(&locator, keys);
        }
        let raw: RawManifest = match raw {
            Ok(raw) => raw,
            Err(error) => {
                report.problems.push(Problem::from_toml(text, &error));
                report.sort();
                return report;
            }
        };
        let mut checker = Checker {
            locator: &locator,
            problems: Vec::new(),
        };
        let version = checker.required(&raw);
        match raw.kind {
            PluginKind::Agent => checker.agent(&raw),
            PluginKind::Tool => checker.tool(&raw),
        }
        checker.memory(&raw.memory);
        checker.limits(&raw.resource_limits);
        checker.profile(&raw);
        if raw.kind == PluginKind::Agent && raw.component.is_none() {
            checker.configuration(&raw);
        }
        report.problems.extend(checker.problems);
        report.sort();
        if report.problems.is_empty() {
            let scope_written = locator.locate(&["memory", "scope"]).is_some();
            report.manifest = raw.into_manifest(version, path, scope_written);
        }
        report
    }
}

impl ManifestReport {
    /// Turns a key the structs did not take into a warning (a known hint)
    /// or a problem (anything else, with the closest known key).
    fn classify_unknown(&mut self, locator: &Locator, keys: &[String]) {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let Some((key, table)) = keys.split_last() else {
            return;
        };
        if let Some(hint) = HINTS.iter().find(|hint| hint.path == keys.as_slice()) {
            let message = format!(
                "`{}` is accepted but not acted on: {}",
                keys.join("."),
                hint.reason
            );
            self.warnings.push(locator.problem(&keys, message));
            self.warnings.extend(top_level_keys_inside(locator, &keys));
        } else {
            let message = unknown_field_message(table, key);
            self.problems.push(locator.problem(&keys, message));
        }
    }

    /// File order reads best; unplaced problems (missing keys) go last.
    /// Past [`MAX_REPORTED`], the rest are counted, not listed: a document
    /// with thousands of mistakes gets a readable report of bounded size.
    fn sort(&mut self) {
        for list in [&mut self.problems, &mut self.warnings] {
            list.sort_by_key(|p| (p.line == 0, p.line, p.column));
            if list.len() > MAX_REPORTED {
                let more = list.len() - MAX_REPORTED;
                list.truncate(MAX_REPORTED);
                list.push(Problem {
                    line: 0,
                    column: 0,
                    message: format!("... and {more} more like these; fix the ones above first"),
                });
            }
        }
    }
}

impl RawManifest {
    /// The validated manifest; `None` if a required field is absent (which
    /// the checks have already reported).
    fn into_manifest(
        self,
        version: Option<semver::Version>,
        path: &Path,
        scope_written: bool,
    ) -> Option<Manifest> {
        let configuration = self.component.is_none() && self.system_prompt.is_some();
        let mut component = if configuration {
            PathBuf::new()
        } else {
            self.component?
        };
        if component.is_relative()
            && !configuration
            && super::built_in::built_in_name(&component).is_none()
        {
            let base = path.parent().unwrap_or(Path::new("."));
            component = base.join(component);
        }
        let mut grants = self.grants;
        if configuration {
            // What the prompt agent needs for what the manifest uses, and
            // nothing more: the grants still bound what the model can do.
            let uses = [
                ("log", true),
                ("llm", true),
                ("memory", self.memory.enabled),
                ("tools", !self.tools.is_empty()),
                ("messaging", !self.agents.is_empty()),
            ];
            for (grant, used) in uses {
                if used && !grants.iter().any(|g| g == grant) {
                    grants.push(grant.to_owned());
                }
            }
        }
        // Validation has reported a table that does not parse.
        let prompt = prompt_parameters(&self.parameters).unwrap_or_default();
        let limits = &self.resource_limits;
        let written = LimitSet {
            max_conversations: limits.max_conversations,
            max_memory_entities: limits.max_memory_entities,
            // A configuration agent's turn is bound by `execution_timeout`
            // when it sets no `response_timeout`: its own value still wins
            // over a profile's or the defaults' `response_timeout`.
            response_timeout: prompt
                .response_timeout
                .or(limits.execution_timeout.filter(|_| configuration)),
            tool_call_timeout: limits.tool_call_timeout,
            memory_search_timeout: limits.memory_search_timeout,
            context_length_limit: prompt.max_context_length,
            memory_mb: limits.memory_mb,
            fuel_limit: limits.fuel,
            execution_timeout: limits.execution_timeout,
            priority: self.priority,
            memory_scope: scope_written.then_some(self.memory.scope),
        };
        Some(Manifest {
            name: self.name?,
            version: version?,
            kind: self.kind,
            description: self.description,
            capabilities: self.capabilities,
            tools: self.tools,
            component,
            configuration,
            grants,
            agents: self.agents,
            llm: self.llm,
            performance: self.performance,
            resource_limits: self.resource_limits,
            memory: self.memory,
            http: self.http,
            prompt,
            parameters: self.parameters,
            system_prompt: self.system_prompt,
            documentation: self.documentation,
            profile: self.profile,
            agent_type: self.agent_type,
            priority: self.priority.unwrap_or_default(),
            written,
            limit_sources: BTreeMap::new(),
            applied_profile: None,
        })
    }
}

/// Problems and warnings listed at most, each; the rest are counted.
const MAX_REPORTED: usize = 100;

/// Collects located problems while checking a [`RawManifest`].
struct Checker<'a> {
    locator: &'a Locator<'a>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// A problem at the key `path`, or unplaced if the key is absent.
    fn flag(&mut self, path: &[&str], message: impl Into<String>) {
        self.problems.push(self.locator.problem(path, message));
    }

    /// Checks that `name`, `version` and `component` are there, returning
    /// the version when it is valid semver.
    fn required(&mut self, raw: &RawManifest) -> Option<semver::Version> {
        if raw.name.is_none() {
            let example = match raw.kind {
                PluginKind::Agent => "name = \"data-analyst\" (kebab-case, 3-64 characters)",
                PluginKind::Tool => "name = \"csv_parser\"",
            };
            self.flag(
                &["name"],
                format!("missing field `name`; add e.g. {example}"),
            );
        }
        if raw.component.is_none() && (raw.kind == PluginKind::Tool || raw.system_prompt.is_none())
        {
            let stem = raw
                .name
                .as_deref()
                .filter(|n| is_agent_name(n) || (raw.kind == PluginKind::Tool && is_tool_name(n)))
                .unwrap_or("my-agent");
            self.flag(
                &["component"],
                match raw.kind {
                    PluginKind::Tool => format!(
                        "missing field `component`; add the path to the .wasm, relative to this file, e.g. component = \"{stem}.wasm\""
                    ),
                    PluginKind::Agent => format!(
                        "missing field `component` or `system_prompt`; add component = \"{stem}.wasm\" (a WebAssembly agent) or system_prompt = \"You are ...\" (a configuration agent run by a language model)"
                    ),
                },
            );
        }
        if let Some(component) = &raw.component
            && super::built_in::built_in_name(component).is_some()
            && super::built_in::built_in_component(component).is_none()
        {
            self.flag(
                &["component"],
                format!(
                    "{} is not a plugin this binary carries; the built-ins are {}",
                    component.display(),
                    super::built_in::built_in_names()
                ),
            );
        }
        let Some(text) = &raw.version else {
            self.flag(
                &["version"],
                "missing field `version`; add e.g. version = \"0.1.0\"",
            );
            return None;
        };
        semver::Version::parse(text)
            .map_err(|e| {
                self.flag(
                    &["version"],
                    format!(
                        "version {text:?} is not a semantic version ({e}); write all three parts, e.g. version = \"1.0.0\""
                    ),
                );
            })
            .ok()
    }

    /// An agent's name, capabilities, grants and tools.
    fn agent(&mut self, raw: &RawManifest) {
        if let Some(name) = raw.name.as_deref().filter(|n| !is_agent_name(n)) {
            let example = Some(to_kebab_case(name))
                .filter(|n| is_agent_name(n))
                .unwrap_or_else(|| "data-analyst".into());
            self.flag(
                &["name"],
                format!(
                    "name {name:?}: agent names are kebab-case, 3-64 characters; e.g. name = \"{example}\""
                ),
            );
        }
        if raw.capabilities.is_empty() {
            self.flag(
                &["capabilities"],
                "capabilities: an agent needs at least one, e.g. capabilities = [\"data-processing\"]",
            );
        }
        for capability in raw.capabilities.iter().filter(|c| !is_kebab_case(c)) {
            self.flag(
                &["capabilities"],
                format!(
                    "capabilities: {capability:?} must be kebab-case (e.g. \"data-processing\")"
                ),
            );
        }
        for grant in raw
            .grants
            .iter()
            .filter(|g| !GRANTABLE_INTERFACES.contains(&g.as_str()))
        {
            self.flag(
                &["grants"],
                format!(
                    "grants: unknown interface {grant:?}; choose from {GRANTABLE_INTERFACES:?}"
                ),
            );
        }
        for tool in raw
            .tools
            .iter()
            .filter(|t| !is_tool_name(t) && !is_mcp_tool_name(t))
        {
            self.flag(
                &["tools"],
                format!("tools: {tool:?} is not a tool name: a deployed tool (lowercase letters, digits, `_` or `-`, 2-64 characters) or an MCP server's tool as \"<server>/<tool>\""),
            );
        }
        for rule in &raw.http.allow {
            if let Err(error) = crate::runtime::AllowRule::parse(rule) {
                self.flag(&["http", "allow"], format!("http.allow: {error}"));
            }
        }
        if raw.http.timeout.is_zero() {
            self.flag(
                &["http", "timeout"],
                "http.timeout: must be above zero, e.g. \"10s\"",
            );
        }
        let configuration = raw.component.is_none() && raw.system_prompt.is_some();
        if !configuration && !raw.tools.is_empty() && !raw.grants.iter().any(|g| g == "tools") {
            self.flag(
                &["tools"],
                "tools: listing tools needs the \"tools\" grant; add it to `grants`, e.g. grants = [\"log\", \"tools\"]",
            );
        }
    }

    /// A tool's name; tools may only log, so they take no capabilities,
    /// tools or grants.
    fn tool(&mut self, raw: &RawManifest) {
        if let Some(name) = raw.name.as_deref().filter(|n| !is_tool_name(n)) {
            self.flag(
                &["name"],
                format!(
                    "name {name:?}: tool names are lowercase letters, digits, `_` or `-`, 2-64 characters (e.g. \"csv_parser\")"
                ),
            );
        }
        for (field, empty) in [
            ("capabilities", raw.capabilities.is_empty()),
            ("tools", raw.tools.is_empty()),
        ] {
            if !empty {
                self.flag(
                    &[field],
                    format!(
                        "{field}: tools cannot have {field}; remove the field (tools may only log, and fetch over HTTP when granted \"http\")"
                    ),
                );
            }
        }
        for grant in raw.grants.iter().filter(|g| *g != "http") {
            self.flag(
                &["grants"],
                format!(
                    "grants: tools cannot be granted {grant:?}; a tool may only log, and fetch over HTTP with grants = [\"http\"] (its calling agent's [http] allow list decides where)"
                ),
            );
        }
    }

    /// A configuration agent's own settings: the `[parameters]` it acts
    /// on, the agents it may ask, and its `[llm]` options.
    fn configuration(&mut self, raw: &RawManifest) {
        if raw
            .system_prompt
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            self.flag(
                &["system_prompt"],
                "system_prompt: empty; say what the agent is for, e.g. system_prompt = \"You answer questions about the shop's stock.\"",
            );
        }
        match prompt_parameters(&raw.parameters) {
            Err(error) => self.flag(
                &["parameters"],
                format!(
                    "parameters: {}; e.g. response_timeout = \"15s\", max_context_length = 6000, cache_responses = true, max_steps = 8",
                    error.message()
                ),
            ),
            Ok(typed) => self.prompt_parameters(&typed),
        }
        for agent in raw.agents.iter().filter(|a| !is_agent_name(a)) {
            self.flag(
                &["agents"],
                format!("agents: {agent:?} is not an agent name (kebab-case, 3-64 characters)"),
            );
        }
        // Offered to the model as `ask_<name>`, and function names end at
        // 64 characters in the OpenAI format.
        for agent in raw
            .agents
            .iter()
            .filter(|a| is_agent_name(a) && a.len() > 60)
        {
            self.flag(
                &["agents"],
                format!("agents: {agent:?} is longer than 60 characters, too long to offer to a model as a function (ask_{agent})"),
            );
        }
        if raw
            .llm
            .temperature
            .is_some_and(|t| !(0.0..=2.0).contains(&t))
        {
            self.flag(
                &["llm", "temperature"],
                "llm.temperature: between 0.0 and 2.0",
            );
        }
        if raw.llm.max_tokens == Some(0) {
            self.flag(
                &["llm", "max_tokens"],
                "llm.max_tokens: must be above zero; remove it to let the model decide",
            );
        }
    }

    /// Values of the typed `[parameters]` that parse but cannot work.
    fn prompt_parameters(&mut self, typed: &PromptParameters) {
        if typed.max_steps.is_some_and(|n| n == 0 || n > 64) {
            self.flag(
                &["parameters", "max_steps"],
                "parameters.max_steps: between 1 and 64 model calls per turn",
            );
        }
        if typed.max_context_length == Some(0) {
            self.flag(
                &["parameters", "max_context_length"],
                "parameters.max_context_length: must be above zero (tokens)",
            );
        }
        if typed.response_timeout.is_some_and(|d| d.is_zero()) {
            self.flag(
                &["parameters", "response_timeout"],
                "parameters.response_timeout: must be above zero, e.g. \"15s\"",
            );
        }
    }

    fn memory(&mut self, memory: &MemorySettings) {
        if memory.scope == Scope::Global && !memory.global_write {
            self.flag(
                &["memory", "scope"],
                "memory.scope: \"global\" needs memory.global_write = true (every agent reads global memory)",
            );
        }
        if memory.search_limit == 0 {
            self.flag(
                &["memory", "search_limit"],
                "memory.search_limit: must be above zero (a search could never return anything)",
            );
        }
    }

    /// The profile it names and the type profiles match it by.
    fn profile(&mut self, raw: &RawManifest) {
        if let Some(name) = raw
            .profile
            .as_deref()
            .filter(|n| !crate::profiles::is_profile_name(n))
        {
            self.flag(
                &["profile"],
                format!("profile {name:?}: profile names are letters, digits, `_` or `-`, 1-64 characters, as in caxton.toml's [[agents.profiles]], e.g. profile = \"realtime\""),
            );
        }
        if let Some(kind) = raw.agent_type.as_deref().filter(|t| !is_kebab_case(t)) {
            self.flag(
                &["agent_type"],
                format!("agent_type {kind:?}: kebab-case, as profiles' agent_types list it, e.g. agent_type = \"monitor\""),
            );
        }
    }

    /// A zero limit would refuse every call; leaving it out takes the default.
    fn limits(&mut self, limits: &ResourceLimits) {
        let zero_duration = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        for (key, zero) in [
            ("fuel", limits.fuel == Some(0)),
            ("memory_mb", limits.memory_mb == Some(0)),
            ("execution_timeout", zero_duration(limits.execution_timeout)),
            ("max_conversations", limits.max_conversations == Some(0)),
            ("max_memory_entities", limits.max_memory_entities == Some(0)),
            ("tool_call_timeout", zero_duration(limits.tool_call_timeout)),
            (
                "memory_search_timeout",
                zero_duration(limits.memory_search_timeout),
            ),
        ] {
            if zero {
                self.flag(
                    &["resource_limits", key],
                    format!("resource_limits.{key}: must be above zero; remove it to take the host default"),
                );
            }
        }
    }
}

/// The keys from the document root down to an ignored key.
fn key_path(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path as P;
    match path {
        P::Root => Vec::new(),
        P::Map { parent, key } => {
            let mut keys = key_path(parent);
            keys.push(key.clone());
            keys
        }
        P::Seq { parent, index } => {
            let mut keys = key_path(parent);
            keys.push(index.to_string());
            keys
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            key_path(parent)
        }
    }
}

/// "unknown field" with the fix: a top-level key written under a table
/// header, the closest known key, or the keys allowed there.
fn unknown_field_message(table: &[&str], key: &str) -> String {
    let place = if table.is_empty() {
        String::new()
    } else {
        format!(" in [{}]", table.join("."))
    };
    let known = known_keys(table);
    let fix = if !table.is_empty() && TOP_LEVEL_KEYS.contains(&key) {
        format!("`{key}` is a top-level field: move it above the first [table] header")
    } else if let Some(suggestion) = closest(key, &known) {
        format!("did you mean `{suggestion}`?")
    } else {
        let known: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        format!("remove it; the fields here are {}", known.join(", "))
    };
    format!("unknown field `{key}`{place}; {fix}")
}

/// The keys the host knows in `table` (the root when empty), hints included
/// so that a misspelt hint is suggested too.
fn known_keys(table: &[&str]) -> Vec<&'static str> {
    let fields: &[&str] = match table {
        [] => TOP_LEVEL_KEYS,
        ["memory"] => MEMORY_KEYS,
        ["llm"] => LLM_KEYS,
        ["performance"] => PERFORMANCE_KEYS,
        ["resource_limits"] => RESOURCE_LIMIT_KEYS,
        ["http"] => HTTP_KEYS,
        _ => &[],
    };
    let hints = HINTS
        .iter()
        .filter_map(|hint| hint.path.split_last())
        .filter(|(_, parent)| *parent == table)
        .map(|(key, _)| *key);
    fields.iter().copied().chain(hints).collect()
}

/// Top-level keys written after a hint table's header land inside that
/// table, where the host never looks; the guide's own template does this
/// with `system_prompt` and `documentation` under `[performance]`.
fn top_level_keys_inside(locator: &Locator, table: &[&str]) -> Vec<Problem> {
    TOP_LEVEL_KEYS
        .iter()
        .filter_map(|key| {
            let path: Vec<&str> = table.iter().copied().chain([*key]).collect();
            locator.locate(&path)?;
            let message = format!(
                "`{key}` is inside [{}] because it comes after that header, so the host does not see it; move it above the first [table] header",
                table.join(".")
            );
            Some(locator.problem(&path, message))
        })
        .collect()
}

/// An agent's name: kebab-case, 3-64 characters.
pub fn is_agent_name(s: &str) -> bool {
    is_kebab_case(s) && (3..=64).contains(&s.len())
}

/// A tool's name: 2-64 lowercase letters, digits, `_` or `-`.
pub fn is_tool_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `<server>/<tool>`: a tool of an `[[mcp.servers]]` entry. MCP tool names
/// are 1-128 of letters, digits, `_`, `-` and `.`.
fn is_mcp_tool_name(s: &str) -> bool {
    let Some((server, tool)) = s.split_once('/') else {
        return false;
    };
    (1..=64).contains(&server.len())
        && server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && (1..=128).contains(&tool.len())
        && tool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A kebab-case spelling of `name` ("OptimizedDataProcessor" →
/// "optimized-data-processor"), offered as the fix for a bad agent name.
fn to_kebab_case(name: &str) -> String {
    let mut kebab = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower {
                kebab.push('-');
            }
            kebab.push(c.to_ascii_lowercase());
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else if !kebab.ends_with('-') {
            kebab.push('-');
            previous_lower = false;
        }
    }
    kebab.trim_matches('-').to_owned()
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
    fn thousands_of_mistakes_make_a_bounded_report() {
        let mut text = String::from(ECHO);
        for n in 0..4000 {
            text.push_str(&format!("unknown_key_{n} = {n}\n"));
        }
        let report = Manifest::parse_report(&text, Path::new("/agents/x.toml"));
        assert_eq!(report.problems.len(), MAX_REPORTED + 1);
        assert!(report.problems[0].line > 0, "{:?}", report.problems[0]);
        let last = &report.problems[MAX_REPORTED].message;
        assert!(last.contains("3900 more"), "{last}");
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
        assert!(message.contains("name = \"echo-agent\""), "{message}");
        assert!(message.contains("at least one"), "{message}");
        assert!(message.contains("\"filesystem\""), "{message}");
    }

    #[test]
    fn unknown_fields_and_bad_versions_say_where() {
        let message = problems_of(&ECHO.replace("grants", "grant"));
        assert!(
            message.contains("line 6, column 1: unknown field `grant`; did you mean `grants`?"),
            "{message}"
        );
        let message = problems_of(&ECHO.replace("0.1.0", "one"));
        assert!(
            message.contains("line 3, column 1: version \"one\" is not a semantic version"),
            "{message}"
        );
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

    #[test]
    fn every_key_the_lists_name_is_one_the_structs_take() {
        let text = r#"
name = "full"
version = "1.0.0"
kind = "agent"
description = "d"
capabilities = ["c"]
tools = ["tt"]
component = "c.wasm"
grants = ["tools"]
system_prompt = "p"
documentation = "d"
agents = ["other-agent"]
profile = "realtime"
agent_type = "monitor"
priority = "high"
[parameters]
anything = 1
[llm]
provider = "p"
model = "m"
temperature = 0.5
max_tokens = 10
[performance]
parallel_tool_calls = false
response_streaming = false
[memory]
enabled = true
scope = "workspace"
search_limit = 5
workspace = "w"
global_write = false
auto_store = true
[resource_limits]
fuel = 1
memory_mb = 1
execution_timeout = "1s"
max_conversations = 1
max_memory_entities = 1
tool_call_timeout = "1s"
memory_search_timeout = "1ms"
[http]
allow = ["example.com"]
timeout = "5s"
max_response_bytes = 1024
"#;
        let report = Manifest::parse_report(text, Path::new("full.toml"));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        let written = text.parse::<toml::Table>().unwrap();
        let mut keys: Vec<&str> = written.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut listed = TOP_LEVEL_KEYS.to_vec();
        listed.sort_unstable();
        assert_eq!(keys, listed);
        for (table, listed) in [
            ("memory", MEMORY_KEYS),
            ("resource_limits", RESOURCE_LIMIT_KEYS),
            ("llm", LLM_KEYS),
            ("performance", PERFORMANCE_KEYS),
            ("http", HTTP_KEYS),
        ] {
            let written: Vec<&str> = written[table]
                .as_table()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(written.len(), listed.len(), "{table}");
            assert!(listed.iter().all(|k| written.contains(k)), "{table}");
        }
        let manifest = report.manifest.unwrap();
        assert_eq!(manifest.parameters["anything"].as_integer(), Some(1));
        assert_eq!(
            manifest.resource_limits.memory_search_timeout,
            Some(Duration::from_millis(1))
        );
        assert_eq!(manifest.system_prompt.as_deref(), Some("p"));
    }

    #[test]
    fn kebab_case_suggestions_follow_word_boundaries() {
        assert_eq!(
            to_kebab_case("OptimizedDataProcessor"),
            "optimized-data-processor"
        );
        assert_eq!(to_kebab_case("Echo_Agent v2"), "echo-agent-v2");
        assert_eq!(to_kebab_case("CSVParser"), "csvparser");
    }

    #[test]
    fn the_example_agents_parse_without_problems_or_warnings() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let report = Manifest::parse_report(&text, &path);
                assert!(
                    report.problems.is_empty() && report.warnings.is_empty(),
                    "{}: {report:?}",
                    path.display()
                );
            }
        }
    }

    /// Each fixture states what the report must contain: `# expect: <text>`
    /// lines are found in the problems (or `# expect: valid` means it
    /// parses), `# warn: <text>` lines in the warnings; a fixture without
    /// `# warn:` must have no warnings.
    #[test]
    fn fixtures_report_what_their_comments_expect() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        paths.sort();
        assert!(paths.len() >= 9, "fixtures missing in {}", dir.display());
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            let report = Manifest::parse_report(&text, &path);
            let join = |list: &[Problem]| {
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let (problems, warnings) = (join(&report.problems), join(&report.warnings));
            let context = format!(
                "{}:\nproblems:\n{problems}\nwarnings:\n{warnings}",
                path.display()
            );
            let expects: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# expect: "))
                .collect();
            let warns: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# warn: "))
                .collect();
            assert!(!expects.is_empty(), "{context}\nhas no `# expect:` line");
            if expects == ["valid"] {
                assert!(
                    report.problems.is_empty() && report.manifest.is_some(),
                    "{context}"
                );
            } else {
                assert!(report.manifest.is_none(), "{context}");
                for expected in expects {
                    assert!(problems.contains(expected), "{context}\nlacks: {expected}");
                }
            }
            for expected in &warns {
                assert!(
                    warnings.contains(expected),
                    "{context}\nlacks warning: {expected}"
                );
            }
            assert!(
                !warns.is_empty() || warnings.is_empty(),
                "{context}\nunexpected warnings"
            );
        }
    }
}
