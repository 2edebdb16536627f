//! One configured provider: its HTTP client, concurrency limit, key,
//! retries and health. Errors come back as the plugin-facing kinds the
//! `llm` interface documents, each saying what to do.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::config::ProviderConfig;
use super::wire::{self, Answer, StreamAssembler};
use crate::runtime::{DeltaSink, PluginError};

pub struct Provider {
    name: String,
    config: ProviderConfig,
    http: reqwest::Client,
    permits: Semaphore,
    api_key: Option<String>,
    /// What the host last saw: `unknown` (not probed yet), `up` or
    /// `down`. Why it is down goes to the log when it goes down.
    status: Mutex<&'static str>,
}

/// One attempt's failure: retried or final.
enum Attempt {
    Retry { after: Duration, why: String },
    Fail(PluginError),
}

impl Provider {
    /// The provider `name`; a key that cannot be read is an error naming
    /// the config key (at startup, not at the first message).
    pub fn new(name: &str, config: ProviderConfig) -> Result<Self, String> {
        let api_key = match (&config.api_key_env, &config.api_key_file) {
            (Some(variable), _) => Some(std::env::var(variable).map_err(|_| {
                format!(
                    "[llm.providers.{name}] api_key_env: environment variable {variable} is not set; export it or remove the key"
                )
            })?),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!(
                            "[llm.providers.{name}] api_key_file: cannot read {}: {e}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(config.timeout))
            .build()
            .map_err(|e| format!("[llm.providers.{name}]: cannot build an HTTP client: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            permits: Semaphore::new(config.max_concurrent),
            status: Mutex::new("unknown"),
            http,
            api_key,
            config,
        })
    }

    pub fn default_model(&self) -> Option<&str> {
        self.config.model.as_deref()
    }

    pub fn status(&self) -> &'static str {
        *self.status.lock().expect("status lock")
    }

    fn set_health(&self, error: Option<String>) {
        let mut status = self.status.lock().expect("status lock");
        // The public probes show the status alone; the reason is logged
        // once, when the provider goes down.
        match (&error, *status) {
            (Some(error), status) if status != "down" => {
                tracing::warn!(provider = %self.name, url = %self.config.base_url, "language-model provider is down: {error}")
            }
            (None, "down") => {
                tracing::info!(provider = %self.name, "language-model provider is back")
            }
            _ => {}
        }
        *status = if error.is_some() { "down" } else { "up" };
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// Probes `GET /models` (cheap on every server we know) and records
    /// the result; never blocks anything else.
    pub async fn probe(&self) {
        let mut request = self.http.get(self.url("models"));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let result = tokio::time::timeout(Duration::from_secs(5), request.send()).await;
        let error = match result {
            Err(_) => Some("no answer within 5s".to_owned()),
            Ok(Err(e)) => Some(format!(
                "cannot reach {}: {}",
                self.config.base_url,
                root_cause(&e)
            )),
            Ok(Ok(response)) if response.status().is_server_error() => {
                Some(format!("answers {}", response.status()))
            }
            Ok(Ok(_)) => None,
        };
        self.set_health(error);
    }

    /// One chat request (`body` built by [`wire::request_body`]), with
    /// retries; streams text to `deltas` when given.
    pub async fn chat(
        &self,
        body: &Value,
        deltas: Option<&DeltaSink>,
        max_bytes: usize,
    ) -> Result<Answer, PluginError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PluginError::Unavailable("the host is shutting down".into()))?;
        let mut backoff = self.config.retry_backoff;
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let result =
                tokio::time::timeout(self.config.timeout, self.attempt(body, deltas, max_bytes))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Attempt::Fail(PluginError::Timeout(format!(
                            "provider {} did not answer within {:?} ([llm.providers.{}] timeout)",
                            self.name, self.config.timeout, self.name
                        ))))
                    });
            match result {
                Ok(answer) => {
                    self.set_health(None);
                    return Ok(answer);
                }
                Err(Attempt::Retry { after, why }) if attempt < self.config.max_retries => {
                    attempt += 1;
                    let wait = after.max(backoff);
                    tracing::warn!(
                        provider = %self.name,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "{why}; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(Attempt::Retry { why, .. }) => {
                    let error = PluginError::Unavailable(format!(
                        "{why} (after {} retries); check the server at [llm.providers.{}] base_url = {:?}",
                        self.config.max_retries, self.name, self.config.base_url
                    ));
                    self.set_health(Some(error.text().to_owned()));
                    return Err(error);
                }
                Err(Attempt::Fail(error)) => return Err(error),
            }
        }
    }

    async fn attempt(
        &self,
        body: &Value,
        deltas: Option<&DeltaSink>,
        max_bytes: usize,
    ) -> Result<Answer, Attempt> {
        let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
        let mut request = self.http.post(self.url("chat/completions")).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            let why = format!(
                "cannot reach provider {} at {}: {}",
                self.name,
                self.config.base_url,
                root_cause(&e)
            );
            if e.is_connect() {
                Attempt::Retry {
                    after: Duration::ZERO,
                    why,
                }
            } else {
                Attempt::Fail(PluginError::Unavailable(why))
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let after = retry_after(&response);
            let text = read_capped(response, 4096).await.unwrap_or_default();
            let why = format!(
                "provider {} answered {status}: {}",
                self.name,
                provider_message(&text)
            );
            return match after {
                Some(after) if after > self.config.retry_after_cap() => {
                    Err(Attempt::Fail(PluginError::Unavailable(format!(
                        "{why}; it asks to retry after {after:?}, longer than this host waits ({:?})",
                        self.config.retry_after_cap()
                    ))))
                }
                after => Err(Attempt::Retry {
                    after: after.unwrap_or_default(),
                    why,
                }),
            };
        }
        if !status.is_success() {
            let text = read_capped(response, 16 * 1024).await.unwrap_or_default();
            return Err(Attempt::Fail(PluginError::InvalidInput(format!(
                "provider {} refused the request ({status}): {}",
                self.name,
                provider_message(&text)
            ))));
        }
        let too_big = || {
            Attempt::Fail(PluginError::Internal(format!(
                "provider {}'s answer is larger than {max_bytes} bytes ([llm] max_response_bytes); it was dropped",
                self.name
            )))
        };
        if !stream {
            let body = read_capped(response, max_bytes)
                .await
                .map_err(|e| match e {
                    ReadError::TooBig => too_big(),
                    ReadError::Http(e) => Attempt::Fail(PluginError::Unavailable(format!(
                        "provider {} broke off its answer: {}",
                        self.name,
                        root_cause(&e)
                    ))),
                })?;
            return wire::parse_completion(&body).map_err(|e| {
                Attempt::Fail(PluginError::Internal(format!(
                    "provider {} sent an answer Caxton cannot read: {e}",
                    self.name
                )))
            });
        }
        let mut assembler = StreamAssembler::default();
        let mut forward = Forward::new(deltas);
        let mut read = 0usize;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| {
                Attempt::Fail(PluginError::Unavailable(format!(
                    "provider {} broke off its stream: {}",
                    self.name,
                    root_cause(&e)
                )))
            })?;
            read += chunk.len();
            if read > max_bytes {
                return Err(too_big());
            }
            let text = assembler.feed(&chunk).map_err(|e| {
                Attempt::Fail(PluginError::Internal(format!(
                    "provider {}: {e}",
                    self.name
                )))
            })?;
            forward.push(text);
            if assembler.finished() {
                break;
            }
        }
        Ok(assembler.answer())
    }
}

/// Text on its way to a streaming client, which never holds up the
/// model: what does not fit in the channel now goes with the next piece,
/// and a client that went away is simply no longer fed. The answer itself
/// is assembled apart from this, whole, and the API sends whatever the
/// stream missed at the end.
struct Forward<'a> {
    deltas: Option<&'a DeltaSink>,
    pending: String,
}

impl<'a> Forward<'a> {
    fn new(deltas: Option<&'a DeltaSink>) -> Self {
        Self {
            deltas,
            pending: String::new(),
        }
    }

    fn push(&mut self, text: String) {
        let Some(deltas) = self.deltas else {
            return;
        };
        self.pending.push_str(&text);
        if self.pending.is_empty() {
            return;
        }
        match deltas.try_send(std::mem::take(&mut self.pending)) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(text)) => self.pending = text,
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => self.deltas = None,
        }
    }
}

enum ReadError {
    TooBig,
    Http(reqwest::Error),
}

/// Reads a body, refusing one over `limit` bytes without buffering it.
async fn read_capped(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|n| n as usize > limit)
    {
        return Err(ReadError::TooBig);
    }
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(ReadError::Http)?;
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooBig);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and is
/// treated as absent: the backoff applies).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    // A value past what a Duration holds (`1e20`) is "very long", which
    // the cap then refuses; it must not panic.
    Duration::try_from_secs_f64(seconds)
        .ok()
        .or((seconds > 0.0).then_some(Duration::MAX))
}

/// The provider's own explanation: OpenAI's `{"error": {"message": ...}}`,
/// or the start of the body.
fn provider_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| error.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| wire::preview(body))
}

/// The innermost error's text: "connection refused", not reqwest's wrapper.
fn root_cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}
