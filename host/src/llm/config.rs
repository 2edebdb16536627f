//! `[llm]` in caxton.toml: the named providers configuration agents (and
//! any component granted `llm`) chat through, and the response cache.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{duration_text, optional_duration_text};

/// The provider every box has without configuring one: Ollama's usual
/// address, so a box running Ollama needs only a model name.
pub const BUILT_IN_PROVIDER: &str = "ollama";
const OLLAMA_URL: &str = "http://127.0.0.1:11434/v1";

/// `[llm]`: language-model providers and the response cache.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// The provider an agent uses when its manifest names none.
    /// Default: `"ollama"`.
    pub default_provider: String,
    /// Named providers, each an OpenAI-compatible endpoint:
    /// `[llm.providers.<name>]`. `ollama` exists unless you redefine it.
    /// Default: `{}` (only the built-in `ollama`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Answers kept for agents with `cache_responses = true` (0 turns the
    /// cache off).
    /// Default: `256`.
    pub cache_size: usize,
    /// How long a cached answer is served.
    /// Default: `"10m"`.
    #[serde(with = "duration_text")]
    pub cache_ttl: Duration,
    /// Largest provider response read, in bytes; a bigger one is refused
    /// (a misbehaving server cannot make the host allocate without bound).
    /// Default: `4194304` (4 MiB).
    pub max_response_bytes: usize,
    /// How often the providers are probed for health (`GET /models`).
    /// Default: `"30s"`.
    #[serde(with = "duration_text")]
    pub health_interval: Duration,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            default_provider: BUILT_IN_PROVIDER.into(),
            providers: BTreeMap::new(),
            cache_size: 256,
            cache_ttl: Duration::from_secs(600),
            max_response_bytes: 4 << 20,
            health_interval: Duration::from_secs(30),
        }
    }
}

/// `[llm.providers.<name>]`: one OpenAI-compatible endpoint
/// (`POST {base_url}/chat/completions`): Ollama, llama.cpp's llama-server,
/// vLLM, LM Studio or a hosted API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// The API root, up to and including `/v1`.
    /// Default: `"http://127.0.0.1:11434/v1"` (Ollama).
    pub base_url: String,
    /// The model agents get when their manifest names none.
    /// Default: none (each agent's manifest names its model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The name of an environment variable holding the API key (never the
    /// key itself in this file).
    /// Default: none (no `Authorization` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// A file holding the API key (whitespace trimmed).
    /// Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// One request's limit, from sending to the last byte of the answer.
    /// Default: `"120s"`.
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// Requests in flight to this provider at most; more wait their turn.
    /// Default: `4`.
    pub max_concurrent: usize,
    /// Retries after a 429 or 5xx (honouring `Retry-After`) or a refused
    /// connection, with exponential backoff from `retry_backoff`.
    /// Default: `2`.
    pub max_retries: u32,
    /// The first retry's wait; each next one doubles.
    /// Default: `"500ms"`.
    #[serde(with = "duration_text")]
    pub retry_backoff: Duration,
    /// The longest `Retry-After` honoured; a provider asking for more is
    /// reported as unavailable instead of holding the agent.
    /// Default: `"30s"`.
    #[serde(
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_retry_after: Option<Duration>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            base_url: OLLAMA_URL.into(),
            model: None,
            api_key_env: None,
            api_key_file: None,
            timeout: Duration::from_secs(120),
            max_concurrent: 4,
            max_retries: 2,
            retry_backoff: Duration::from_millis(500),
            max_retry_after: None,
        }
    }
}

impl ProviderConfig {
    /// The longest `Retry-After` waited for.
    pub fn retry_after_cap(&self) -> Duration {
        self.max_retry_after.unwrap_or(Duration::from_secs(30))
    }
}

impl LlmConfig {
    /// Every provider by name, the built-in `ollama` included unless
    /// redefined.
    pub fn all_providers(&self) -> BTreeMap<String, ProviderConfig> {
        let mut all = self.providers.clone();
        all.entry(BUILT_IN_PROVIDER.into()).or_default();
        all
    }

    /// The provider `name`, built-in included.
    pub fn provider(&self, name: &str) -> Option<ProviderConfig> {
        match self.providers.get(name) {
            Some(provider) => Some(provider.clone()),
            None if name == BUILT_IN_PROVIDER => Some(ProviderConfig::default()),
            None => None,
        }
    }

    /// The provider names, for "choose from" messages.
    pub fn provider_names(&self) -> Vec<String> {
        self.all_providers().into_keys().collect()
    }

    /// Values that parse but cannot work, each with its key path.
    pub fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut problems = Vec::new();
        let key = |parts: &[&str]| -> Vec<String> {
            ["llm"].iter().chain(parts).map(|s| s.to_string()).collect()
        };
        if self.provider(&self.default_provider).is_none() {
            problems.push((
                key(&["default_provider"]),
                format!(
                    "no provider named {:?}; choose from {:?} or add [llm.providers.{}]",
                    self.default_provider,
                    self.provider_names(),
                    self.default_provider
                ),
            ));
        }
        if self.max_response_bytes < 1024 {
            problems.push((
                key(&["max_response_bytes"]),
                "must be at least 1024 bytes".into(),
            ));
        }
        if self.health_interval.is_zero() {
            problems.push((key(&["health_interval"]), "must be above zero".into()));
        }
        for (name, provider) in &self.providers {
            let at = |field: &str| key(&["providers", name, field]);
            match reqwest::Url::parse(&provider.base_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => problems.push((
                    at("base_url"),
                    format!(
                        "{:?} is not an http(s) URL; write e.g. base_url = \"http://127.0.0.1:11434/v1\"",
                        provider.base_url
                    ),
                )),
            }
            if provider.api_key_env.is_some() && provider.api_key_file.is_some() {
                problems.push((
                    at("api_key_file"),
                    "set api_key_env or api_key_file, not both".into(),
                ));
            }
            if provider.max_concurrent == 0 {
                problems.push((at("max_concurrent"), "must be at least 1".into()));
            }
            if provider.timeout.is_zero() {
                problems.push((at("timeout"), "must be above zero".into()));
            }
            if provider
                .model
                .as_deref()
                .is_some_and(|m| m.trim().is_empty())
            {
                problems.push((at("model"), "empty; name a model or remove the key".into()));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    fn problems_of(text: &str) -> String {
        let config: Config = toml::from_str(text).unwrap();
        match config.validate_text(text, Path::new("caxton.toml")) {
            Err(ConfigError::Problems { problems, .. }) => problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn the_built_in_provider_needs_no_config_and_is_redefinable() {
        let config: Config = toml::from_str("").unwrap();
        assert!(config.validate().is_ok());
        let ollama = config.llm.provider("ollama").unwrap();
        assert_eq!(ollama.base_url, "http://127.0.0.1:11434/v1");
        let config: Config = toml::from_str(
            "[llm.providers.ollama]\nbase_url = \"http://10.0.0.2:11434/v1\"\nmodel = \"m\"\n",
        )
        .unwrap();
        assert_eq!(
            config.llm.provider("ollama").unwrap().base_url,
            "http://10.0.0.2:11434/v1"
        );
    }

    #[test]
    fn provider_mistakes_are_placed_at_their_keys() {
        let text = "[llm]\ndefault_provider = \"local\"\n\n[llm.providers.other]\nbase_url = \"ftp://x\"\napi_key_env = \"K\"\napi_key_file = \"/k\"\nmax_concurrent = 0\n";
        let problems = problems_of(text);
        assert!(
            problems
                .contains("line 2, column 1: llm.default_provider: no provider named \"local\""),
            "{problems}"
        );
        assert!(
            problems.contains(
                "line 5, column 1: llm.providers.other.base_url: \"ftp://x\" is not an http(s) URL"
            ),
            "{problems}"
        );
        assert!(problems.contains("line 7, column 1: llm.providers.other.api_key_file: set api_key_env or api_key_file, not both"), "{problems}");
        assert!(
            problems.contains(
                "line 8, column 1: llm.providers.other.max_concurrent: must be at least 1"
            ),
            "{problems}"
        );
    }
}
