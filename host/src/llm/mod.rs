//! Language models for agents: the providers configured in `[llm]`, each
//! an OpenAI-compatible endpoint, behind one service that fills in an
//! agent's defaults, caches, streams, counts tokens and reports health.
//! The registry turns an agent's `llm` import into [`LlmService::chat`].

mod cache;
pub mod config;
mod provider;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Once};
use std::time::Instant;

pub use config::{BUILT_IN_PROVIDER, LlmConfig, ProviderConfig};

use cache::ResponseCache;
use provider::Provider;

use crate::metrics::metrics;
use crate::runtime::{ChatRequest, ChatResponse, DeltaSink, FinishReason, PluginError};

/// Installs rustls's crypto provider (ring) for the process, once: every
/// HTTPS client (providers, the CLI) needs one chosen.
pub fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// What an agent's manifest says about its chats.
#[derive(Debug, Clone, Default)]
pub struct AgentChat {
    /// The agent's name and version (part of the cache key).
    pub agent: String,
    pub version: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Answer identical requests from the cache.
    pub cache: bool,
}

pub struct LlmService {
    config: LlmConfig,
    providers: BTreeMap<String, Arc<Provider>>,
    cache: ResponseCache,
}

impl LlmService {
    /// Every configured provider, ready (nothing is contacted here).
    pub fn new(config: &LlmConfig) -> Result<Self, String> {
        install_tls_provider();
        let providers = config
            .all_providers()
            .into_iter()
            .map(|(name, provider)| Ok((name.clone(), Arc::new(Provider::new(&name, provider)?))))
            .collect::<Result<_, String>>()?;
        Ok(Self {
            cache: ResponseCache::new(config.cache_size, config.cache_ttl),
            config: config.clone(),
            providers,
        })
    }

    /// Why an agent's `[llm]` cannot work here (an unknown provider, no
    /// model anywhere), with the key to fix and a suggestion.
    pub fn check_agent(&self, chat: &AgentChat) -> Result<(), (&'static str, String)> {
        let name = chat
            .provider
            .as_deref()
            .unwrap_or(&self.config.default_provider);
        let Some(provider) = self.providers.get(name) else {
            let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            let hint = known
                .iter()
                .map(|k| (strsim::jaro_winkler(name, k), *k))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!("did you mean {k:?}? "))
                .unwrap_or_default();
            return Err((
                "provider",
                format!(
                    "llm.provider: no provider named {name:?} in caxton.toml; {hint}choose from {known:?} or add [llm.providers.{name}]"
                ),
            ));
        };
        if chat.model.is_none() && provider.default_model().is_none() {
            return Err((
                "model",
                format!(
                    "llm.model: no model is configured for this agent or for provider {name:?}; add model = \"...\" under [llm] here (e.g. model = \"llama3.2\") or under [llm.providers.{name}] in caxton.toml"
                ),
            ));
        }
        Ok(())
    }

    /// Each provider's status alone (`unknown`, `up`, `down`), for the
    /// public probes: addresses and error texts stay in the log.
    pub fn statuses(&self) -> BTreeMap<String, serde_json::Value> {
        self.providers
            .iter()
            .map(|(name, p)| (name.clone(), serde_json::json!({"status": p.status()})))
            .collect()
    }

    /// Probes every provider now and then, in the background: startup
    /// never waits on a model server.
    pub fn spawn_health_checks(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let service = Arc::downgrade(self);
        let every = self.config.health_interval;
        tokio::spawn(async move {
            loop {
                let Some(service) = service.upgrade() else {
                    return;
                };
                let probes = service.providers.values().map(|p| p.probe());
                futures_util::future::join_all(probes).await;
                drop(service);
                tokio::time::sleep(every).await;
            }
        })
    }

    /// One chat for agent `chat`: the manifest's defaults fill what the
    /// request leaves unset, the cache answers a repeat, the text streams
    /// to `deltas` when asked.
    pub async fn chat(
        &self,
        chat: &AgentChat,
        mut request: ChatRequest,
        deltas: Option<&DeltaSink>,
    ) -> Result<ChatResponse, PluginError> {
        let name = chat
            .provider
            .as_deref()
            .unwrap_or(&self.config.default_provider);
        let provider = self.providers.get(name).ok_or_else(|| {
            PluginError::Denied(format!(
                "agent {} names provider {name:?}, which is not configured ([llm.providers])",
                chat.agent
            ))
        })?;
        let model = chat
            .model
            .as_deref()
            .or(provider.default_model())
            .ok_or_else(|| {
                PluginError::Denied(format!(
                    "no model configured for agent {} (its [llm] model) or provider {name:?}",
                    chat.agent
                ))
            })?
            .to_owned();
        request.temperature = request.temperature.or(chat.temperature);
        request.max_tokens = request.max_tokens.or(chat.max_tokens);
        let stream = request.stream && deltas.is_some();
        let mut body = wire::request_body(&model, &request);
        let label = format!("{name}/{model}");
        // Keyed before the stream flag is added: it does not decide the answer.
        let key = chat
            .cache
            .then(|| ResponseCache::key(&[&chat.agent, &chat.version, name, &body.to_string()]));
        if stream {
            wire::stream_body(&mut body);
        }
        if let Some(key) = &key {
            if let Some(answer) = self.cache.get(key) {
                metrics().llm_cache.with_label_values(&["hit"]).inc();
                // Never waiting on the client; the API completes a stream
                // that missed text from the answer itself.
                if let (true, Some(deltas), false) = (stream, deltas, answer.content.is_empty()) {
                    let _ = deltas.try_send(answer.content.clone());
                }
                return Ok(answer);
            }
            metrics().llm_cache.with_label_values(&["miss"]).inc();
        }

        let started = Instant::now();
        let result = provider
            .chat(
                &body,
                deltas.filter(|_| stream),
                self.config.max_response_bytes,
            )
            .await;
        let m = metrics();
        m.llm_request_duration
            .with_label_values(&[name, &model])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        m.llm_requests.with_label_values(&[name, outcome]).inc();
        let answer = result?;
        m.llm_tokens
            .with_label_values(&[name, &model, "prompt"])
            .inc_by(u64::from(answer.usage.prompt_tokens));
        m.llm_tokens
            .with_label_values(&[name, &model, "completion"])
            .inc_by(u64::from(answer.usage.completion_tokens));
        let response = ChatResponse {
            finish_reason: answer
                .finish_reason
                .unwrap_or(if answer.tool_calls.is_empty() {
                    FinishReason::Stop
                } else {
                    FinishReason::ToolCalls
                }),
            content: answer.content,
            tool_calls: answer.tool_calls,
            usage: answer.usage,
            model: label,
        };
        if let Some(key) = key {
            self.cache.put(key, response.clone());
        }
        Ok(response)
    }
}
