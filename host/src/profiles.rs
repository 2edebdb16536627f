//! Agent profiles: `[agents.default_limits]` and `[[agents.profiles]]` in
//! caxton.toml, and how they combine with a manifest into the limits an
//! agent runs with. An operator with thirty agents changes one timeout in
//! one place instead of thirty files.
//!
//! Precedence, per key: the manifest's own value, then its profile's
//! override, then `default_limits`, then the host's built-in default. An
//! agent takes at most one profile: the one its manifest names
//! (`profile = "realtime"`), else the one whose `agents`, `capabilities` or
//! `agent_types` match it; two matching is an error, not a silent pick.
//!
//! Plain data and pure functions: the config embeds these types, the
//! registry applies them when it prepares an agent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::memory::Scope;
use crate::priority::Priority;

/// Every limit and setting `default_limits` or a profile can give an agent
/// (the manifest keys they stand for are in [`LimitSet::MANIFEST_KEYS`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSet {
    /// Conversations the agent may have open at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_conversations: Option<u32>,
    /// Memory entities the agent may keep in its own scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_entities: Option<u64>,
    /// A configuration agent's whole turn.
    #[serde(
        with = "crate::config::optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_timeout: Option<Duration>,
    /// One tool call made by the agent.
    #[serde(
        with = "crate::config::optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_call_timeout: Option<Duration>,
    /// One memory search made by the agent.
    #[serde(
        with = "crate::config::optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_search_timeout: Option<Duration>,
    /// Tokens of history and memory a configuration agent's prompt keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length_limit: Option<u32>,
    /// A component's linear memory cap per instance, in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// A component's fuel per call (about one unit per wasm instruction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_limit: Option<u64>,
    /// A component's wall-clock limit per call.
    #[serde(
        with = "crate::config::optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub execution_timeout: Option<Duration>,
    /// The priority of messages to the agent whose sender gives none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Where the agent's memory writes go: `agent`, `workspace` or
    /// `global` (a profile granting `global` lets its agents write memory
    /// every agent reads: the operator's decision, made here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_scope: Option<Scope>,
}

/// Where one effective limit came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from", content = "name")]
pub enum Source {
    /// The agent's manifest.
    Manifest,
    /// The named profile's `overrides`.
    Profile(String),
    /// `[agents.default_limits]`.
    DefaultLimits,
    /// Set nowhere: the host's built-in default applies.
    Host,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Manifest => f.write_str("manifest"),
            Source::Profile(name) => write!(f, "profile {name}"),
            Source::DefaultLimits => f.write_str("[agents.default_limits]"),
            Source::Host => f.write_str("host default"),
        }
    }
}

/// Calls `$each!(field)` for every field of [`LimitSet`], in order: one
/// list, so merging, provenance and checks cannot forget a key.
macro_rules! for_each_limit {
    ($each:ident) => {
        $each!(max_conversations);
        $each!(max_memory_entities);
        $each!(response_timeout);
        $each!(tool_call_timeout);
        $each!(memory_search_timeout);
        $each!(context_length_limit);
        $each!(memory_mb);
        $each!(fuel_limit);
        $each!(execution_timeout);
        $each!(priority);
        $each!(memory_scope);
    };
}

impl LimitSet {
    /// Each key and where a manifest sets it.
    pub const MANIFEST_KEYS: [(&'static str, &'static str); 11] = [
        ("max_conversations", "resource_limits.max_conversations"),
        ("max_memory_entities", "resource_limits.max_memory_entities"),
        ("response_timeout", "parameters.response_timeout"),
        ("tool_call_timeout", "resource_limits.tool_call_timeout"),
        (
            "memory_search_timeout",
            "resource_limits.memory_search_timeout",
        ),
        ("context_length_limit", "parameters.max_context_length"),
        ("memory_mb", "resource_limits.memory_mb"),
        ("fuel_limit", "resource_limits.fuel"),
        ("execution_timeout", "resource_limits.execution_timeout"),
        ("priority", "priority"),
        ("memory_scope", "memory.scope"),
    ];

    /// Fills each key `self` lacks from `under`, recording `source` for
    /// the keys it gave.
    fn fill_from(
        &mut self,
        under: &LimitSet,
        source: &Source,
        sources: &mut BTreeMap<&'static str, Source>,
    ) {
        macro_rules! fill {
            ($field:ident) => {
                if self.$field.is_none() && under.$field.is_some() {
                    self.$field = under.$field.clone();
                    sources.insert(stringify!($field), source.clone());
                }
            };
        }
        for_each_limit!(fill);
    }

    /// The keys set, for provenance of what the manifest wrote.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        macro_rules! collect {
            ($field:ident) => {
                if self.$field.is_some() {
                    keys.push(stringify!($field));
                }
            };
        }
        for_each_limit!(collect);
        keys
    }

    /// Keys set to zero, which would refuse every call.
    pub fn zero_keys(&self) -> Vec<&'static str> {
        let zero_duration = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        [
            ("max_conversations", self.max_conversations == Some(0)),
            ("max_memory_entities", self.max_memory_entities == Some(0)),
            ("response_timeout", zero_duration(self.response_timeout)),
            ("tool_call_timeout", zero_duration(self.tool_call_timeout)),
            (
                "memory_search_timeout",
                zero_duration(self.memory_search_timeout),
            ),
            ("context_length_limit", self.context_length_limit == Some(0)),
            ("memory_mb", self.memory_mb == Some(0)),
            ("fuel_limit", self.fuel_limit == Some(0)),
            ("execution_timeout", zero_duration(self.execution_timeout)),
        ]
        .into_iter()
        .filter_map(|(key, zero)| zero.then_some(key))
        .collect()
    }
}

/// `[[agents.profiles]]`: a named set of overrides and the agents it
/// applies to.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// What manifests name in `profile = "..."`, e.g. `"realtime"`.
    pub name: String,
    /// Agents it applies to by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Agents it applies to by any capability they offer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Agents it applies to by their manifest's `agent_type`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_types: Vec<String>,
    /// What it sets; the manifest's own values still win.
    #[serde(default)]
    pub overrides: LimitSet,
}

/// A profile's name: letters, digits, `_` or `-`, 1-64 characters (the
/// guide's are `quick_response`, `heavy_processor`, `realtime`).
pub fn is_profile_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a profile matches an agent by.
#[derive(Debug, Clone, Copy)]
pub struct AgentFacts<'a> {
    pub name: &'a str,
    pub capabilities: &'a [String],
    pub agent_type: Option<&'a str>,
    /// The profile the manifest names, if it names one.
    pub profile: Option<&'a str>,
}

impl ProfileConfig {
    /// Why this profile applies to the agent, when it does by matching.
    fn matches(&self, agent: &AgentFacts) -> Option<String> {
        if self.agents.iter().any(|a| a == agent.name) {
            return Some(format!("its agents list {:?}", agent.name));
        }
        if let Some(capability) = agent
            .capabilities
            .iter()
            .find(|c| self.capabilities.contains(c))
        {
            return Some(format!("its capabilities list {capability:?}"));
        }
        if let Some(kind) = agent
            .agent_type
            .filter(|t| self.agent_types.iter().any(|a| a == t))
        {
            return Some(format!("its agent_types list {kind:?}"));
        }
        None
    }
}

/// Why an agent's profile could not be chosen; `key` is the manifest key
/// to point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceError {
    pub key: &'static str,
    pub message: String,
}

/// The limits an agent runs with and where each came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub limits: LimitSet,
    pub sources: BTreeMap<&'static str, Source>,
    pub profile: Option<String>,
}

/// `[agents.default_limits]` and `[[agents.profiles]]` together: what the
/// registry resolves agents against (swapped whole when caxton.toml
/// changes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentProfiles {
    pub default_limits: LimitSet,
    pub profiles: Vec<ProfileConfig>,
}

impl AgentProfiles {
    /// The profile for `agent`: the one its manifest names, or the one
    /// that matches it, or none.
    pub fn choose(&self, agent: &AgentFacts) -> Result<Option<&ProfileConfig>, ChoiceError> {
        if let Some(name) = agent.profile {
            return self
                .profiles
                .iter()
                .find(|p| p.name == name)
                .map(Some)
                .ok_or_else(|| ChoiceError {
                    key: "profile",
                    message: self.unknown_profile(name),
                });
        }
        let matching: Vec<(&ProfileConfig, String)> = self
            .profiles
            .iter()
            .filter_map(|p| p.matches(agent).map(|why| (p, why)))
            .collect();
        match matching.as_slice() {
            [] => Ok(None),
            [(profile, _)] => Ok(Some(profile)),
            [(first, why_first), (second, why_second), ..] => Err(ChoiceError {
                key: "name",
                message: format!(
                    "agent {:?} matches more than one profile in caxton.toml: {:?} ({why_first}) and {:?} ({why_second}); an agent takes one profile: add profile = {:?} to this manifest, or change the profiles so only one matches",
                    agent.name, first.name, second.name, first.name
                ),
            }),
        }
    }

    fn unknown_profile(&self, name: &str) -> String {
        let known: Vec<&str> = self.profiles.iter().map(|p| p.name.as_str()).collect();
        if known.is_empty() {
            return format!(
                "profile {name:?}: caxton.toml defines no profiles; add an [[agents.profiles]] entry named {name:?}, or remove this key"
            );
        }
        let suggestion = crate::toml_check::closest(name, &known)
            .map(|s| format!("did you mean {s:?}? "))
            .unwrap_or_default();
        format!(
            "profile {name:?} is not defined in caxton.toml; {suggestion}the profiles are {known:?}"
        )
    }

    /// The limits for an agent whose manifest wrote `written`.
    pub fn resolve(&self, written: &LimitSet, agent: &AgentFacts) -> Result<Resolved, ChoiceError> {
        let profile = self.choose(agent)?;
        let mut limits = written.clone();
        let mut sources: BTreeMap<&'static str, Source> = written
            .set_keys()
            .into_iter()
            .map(|key| (key, Source::Manifest))
            .collect();
        if let Some(profile) = profile {
            limits.fill_from(
                &profile.overrides,
                &Source::Profile(profile.name.clone()),
                &mut sources,
            );
        }
        limits.fill_from(&self.default_limits, &Source::DefaultLimits, &mut sources);
        for (key, _) in LimitSet::MANIFEST_KEYS {
            sources.entry(key).or_insert(Source::Host);
        }
        Ok(Resolved {
            limits,
            sources,
            profile: profile.map(|p| p.name.clone()),
        })
    }

    /// Problems in the config's profiles, each at its key (paths into the
    /// `[agents]` table): zero limits, unnamed or repeated profiles, and
    /// two profiles matching the same name, capability or type.
    pub fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut problems = Vec::new();
        let at = |parts: &[&str]| -> Vec<String> {
            ["agents"]
                .iter()
                .chain(parts)
                .map(|s| s.to_string())
                .collect()
        };
        for key in self.default_limits.zero_keys() {
            problems.push((
                at(&["default_limits", key]),
                "must be above zero; remove it to take the host default".to_owned(),
            ));
        }
        for (i, profile) in self.profiles.iter().enumerate() {
            let index = i.to_string();
            if !is_profile_name(&profile.name) {
                problems.push((
                    at(&["profiles", &index, "name"]),
                    format!(
                        "profile name {:?}: letters, digits, `_` or `-`, 1-64 characters, e.g. \"realtime\"",
                        profile.name
                    ),
                ));
            }
            if let Some(first) = self.profiles[..i]
                .iter()
                .position(|p| p.name == profile.name)
            {
                problems.push((
                    at(&["profiles", &index, "name"]),
                    format!(
                        "profile {:?} is defined twice (profiles {first} and {i}); rename or merge one",
                        profile.name
                    ),
                ));
            }
            for kind in profile
                .agent_types
                .iter()
                .filter(|t| !crate::toml_check::is_kebab_case(t))
            {
                problems.push((
                    at(&["profiles", &index, "agent_types"]),
                    format!(
                        "agent type {kind:?}: kebab-case, as manifests write agent_type, e.g. \"data-analyzer\""
                    ),
                ));
            }
            for key in profile.overrides.zero_keys() {
                problems.push((
                    at(&["profiles", &index, "overrides", key]),
                    "must be above zero; remove it to take the default".to_owned(),
                ));
            }
            for (earlier, other) in self.profiles[..i].iter().enumerate() {
                let lists = [
                    ("agents", &profile.agents, &other.agents, "agent"),
                    (
                        "capabilities",
                        &profile.capabilities,
                        &other.capabilities,
                        "capability",
                    ),
                    (
                        "agent_types",
                        &profile.agent_types,
                        &other.agent_types,
                        "agent type",
                    ),
                ];
                for (key, mine, theirs, what) in lists {
                    if let Some(shared) = mine.iter().find(|m| theirs.contains(m)) {
                        problems.push((
                            at(&["profiles", &index, key]),
                            format!(
                                "profiles {:?} and {:?} (profile {earlier}) both match {what} {shared:?}; an agent takes one profile: remove it from one list (a manifest can still choose with profile = \"...\")",
                                profile.name, other.name
                            ),
                        ));
                    }
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(text: &str) -> AgentProfiles {
        #[derive(Deserialize)]
        struct Agents {
            #[serde(default)]
            default_limits: LimitSet,
            #[serde(default)]
            profiles: Vec<ProfileConfig>,
        }
        let agents: Agents = toml::from_str(text).unwrap();
        AgentProfiles {
            default_limits: agents.default_limits,
            profiles: agents.profiles,
        }
    }

    const CONFIG: &str = r#"
[default_limits]
max_conversations = 200
tool_call_timeout = "12s"
fuel_limit = 1000

[[profiles]]
name = "realtime"
agent_types = ["monitor"]
[profiles.overrides]
tool_call_timeout = "5s"
max_conversations = 1000
priority = "high"

[[profiles]]
name = "heavy"
capabilities = ["reporting"]
[profiles.overrides]
fuel_limit = 99
"#;

    fn agent<'a>(capabilities: &'a [String], kind: Option<&'a str>) -> AgentFacts<'a> {
        AgentFacts {
            name: "watcher",
            capabilities,
            agent_type: kind,
            profile: None,
        }
    }

    #[test]
    fn the_manifest_wins_over_the_profile_which_wins_over_the_defaults() {
        let profiles = profiles(CONFIG);
        let written = LimitSet {
            max_conversations: Some(7),
            ..Default::default()
        };
        let resolved = profiles
            .resolve(&written, &agent(&[], Some("monitor")))
            .unwrap();
        assert_eq!(resolved.profile.as_deref(), Some("realtime"));
        assert_eq!(resolved.limits.max_conversations, Some(7));
        assert_eq!(resolved.sources["max_conversations"], Source::Manifest);
        assert_eq!(
            resolved.limits.tool_call_timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            resolved.sources["tool_call_timeout"],
            Source::Profile("realtime".into())
        );
        assert_eq!(resolved.limits.fuel_limit, Some(1000));
        assert_eq!(resolved.sources["fuel_limit"], Source::DefaultLimits);
        assert_eq!(resolved.limits.memory_mb, None);
        assert_eq!(resolved.sources["memory_mb"], Source::Host);
        assert_eq!(resolved.sources.len(), LimitSet::MANIFEST_KEYS.len());
    }

    #[test]
    fn a_named_profile_is_taken_over_matches_and_an_unknown_one_is_suggested() {
        let profiles = profiles(CONFIG);
        let capabilities = vec!["reporting".to_owned()];
        let mut facts = agent(&capabilities, Some("monitor"));
        // Matching both by type and by capability is ambiguous...
        let error = profiles.choose(&facts).unwrap_err();
        assert_eq!(error.key, "name");
        assert!(error.message.contains("\"realtime\""), "{}", error.message);
        assert!(error.message.contains("\"heavy\""), "{}", error.message);
        // ...until the manifest names one.
        facts.profile = Some("heavy");
        assert_eq!(profiles.choose(&facts).unwrap().unwrap().name, "heavy");
        facts.profile = Some("realtme");
        let error = profiles.choose(&facts).unwrap_err();
        assert_eq!(error.key, "profile");
        assert!(
            error.message.contains("did you mean \"realtime\""),
            "{}",
            error.message
        );
    }

    #[test]
    fn overlapping_and_repeated_profiles_are_problems_at_their_keys() {
        let profiles = profiles(
            r#"
[[profiles]]
name = "a"
capabilities = ["x", "y"]
[[profiles]]
name = "b"
capabilities = ["y"]
[[profiles]]
name = "a"
[profiles.overrides]
fuel_limit = 0
"#,
        );
        let problems = profiles.problems();
        let keys: Vec<String> = problems.iter().map(|(k, _)| k.join(".")).collect();
        assert_eq!(
            keys,
            [
                "agents.profiles.1.capabilities",
                "agents.profiles.2.name",
                "agents.profiles.2.overrides.fuel_limit"
            ],
            "{problems:?}"
        );
        assert!(problems[0].1.contains("capability \"y\""), "{problems:?}");
    }
}
