//! `/api/v1/memory/...`: the knowledge graph over HTTP. A request acts as
//! the agent it names (`agent` in the body or query) with that agent's
//! scopes, or as the operator when it names none.

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{ApiError, ApiState};
use crate::memory::{Caller, MemoryError, Scope, SearchOptions};

fn from_memory(error: MemoryError) -> ApiError {
    let (status, code) = match &error {
        MemoryError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
        MemoryError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        MemoryError::NotFound(_) => (StatusCode::NOT_FOUND, "entity_not_found"),
        MemoryError::Embed(crate::embed::EmbedError::Busy) => {
            (StatusCode::SERVICE_UNAVAILABLE, "embeddings_busy")
        }
        error if error.is_disk_full() => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
        error if error.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "memory_error"),
    };
    let message = if code == "storage_full" {
        format!(
            "{error}: the disk holding the store is full; reads still work, and writes work again once space is freed"
        )
    } else {
        error.to_string()
    };
    let mut api = ApiError::new(status, code, message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        api.retry_after_secs = Some(if code == "storage_unavailable" { 5 } else { 1 });
    }
    api
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}. Example: {example}")))
}

fn caller(state: &ApiState, agent: Option<&str>) -> Caller {
    match agent {
        Some(name) => state.registry.memory_caller(name),
        None => Caller::Operator,
    }
}

fn memory(state: &ApiState) -> Result<&crate::memory::Memory, ApiError> {
    state.memory.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_unavailable",
            "memory is not available on this host",
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RememberBody {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    scope: Option<Scope>,
    name: String,
    entity_type: String,
    #[serde(default)]
    observations: Vec<String>,
}

/// `POST /api/v1/memory/entities`
pub async fn remember(state: &ApiState, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let body: RememberBody = parse(
        body,
        r#"{"name": "alice", "entity_type": "person", "observations": ["likes tea"]}"#,
    )?;
    let caller = caller(state, body.agent.as_deref());
    let outcome = memory(state)?
        .remember(
            &caller,
            body.scope,
            &body.name,
            &body.entity_type,
            &body.observations,
        )
        .await
        .map_err(from_memory)?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json!(outcome)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservationsBody {
    #[serde(default)]
    agent: Option<String>,
    entity: String,
    observations: Vec<String>,
}

/// `POST /api/v1/memory/observations`: add to an existing entity.
pub async fn add_observations(
    state: &ApiState,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let body: ObservationsBody = parse(
        body,
        r#"{"entity": "alice", "observations": ["moved to Oslo"]}"#,
    )?;
    let caller = caller(state, body.agent.as_deref());
    let outcome = memory(state)?
        .add_observations(&caller, &body.entity, &body.observations)
        .await
        .map_err(from_memory)?;
    Ok((StatusCode::OK, json!(outcome)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelateBody {
    #[serde(default)]
    agent: Option<String>,
    from: String,
    to: String,
    relation_type: String,
    #[serde(default = "full_strength")]
    strength: f64,
}

fn full_strength() -> f64 {
    1.0
}

/// `POST /api/v1/memory/relations`
pub async fn relate(state: &ApiState, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let body: RelateBody = parse(
        body,
        r#"{"from": "alice", "to": "bob", "relation_type": "manages"}"#,
    )?;
    let caller = caller(state, body.agent.as_deref());
    let created = memory(state)?
        .relate(
            &caller,
            &body.from,
            &body.to,
            &body.relation_type,
            body.strength,
        )
        .await
        .map_err(from_memory)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json!({ "created": created })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(default)]
    agent: Option<String>,
    query: String,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    entity_type: Option<String>,
}

/// `POST /api/v1/memory/search`
pub async fn search(state: &ApiState, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let body: SearchBody = parse(body, r#"{"query": "who likes tea?", "limit": 5}"#)?;
    let caller = caller(state, body.agent.as_deref());
    let options = SearchOptions {
        limit: body.limit.unwrap_or(10),
        entity_type: body.entity_type,
    };
    let hits = memory(state)?
        .search(&caller, &body.query, &options)
        .await
        .map_err(from_memory)?;
    Ok((StatusCode::OK, json!({ "hits": hits })))
}

/// Query parameters of the read routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub depth: Option<usize>,
}

/// `GET /api/v1/memory/entities/{name}`
pub async fn open(
    state: &ApiState,
    name: &str,
    query: &ReadQuery,
) -> Result<(StatusCode, Value), ApiError> {
    let caller = caller(state, query.agent.as_deref());
    let mut views = memory(state)?
        .entities(&caller, &[name.to_owned()])
        .await
        .map_err(from_memory)?;
    match views.pop() {
        Some(view) => Ok((StatusCode::OK, json!(view))),
        None => Err(from_memory(MemoryError::NotFound(name.to_owned()))),
    }
}

/// `DELETE /api/v1/memory/entities/{name}`
pub async fn forget(
    state: &ApiState,
    name: &str,
    query: &ReadQuery,
) -> Result<(StatusCode, Value), ApiError> {
    let caller = caller(state, query.agent.as_deref());
    memory(state)?
        .forget(&caller, name)
        .await
        .map_err(from_memory)?;
    Ok((StatusCode::OK, json!({ "forgotten": name })))
}

/// `GET /api/v1/memory/graph/{name}?depth=N`
pub async fn graph(
    state: &ApiState,
    name: &str,
    query: &ReadQuery,
) -> Result<(StatusCode, Value), ApiError> {
    let caller = caller(state, query.agent.as_deref());
    let neighbourhood = memory(state)?
        .neighbours(&caller, name, query.depth.unwrap_or(1))
        .await
        .map_err(from_memory)?;
    Ok((StatusCode::OK, json!(neighbourhood)))
}

/// Query of `GET /api/v1/memory/export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Include stored embeddings (default true); without them an import re-embeds.
    #[serde(default = "yes")]
    pub embeddings: bool,
}

fn yes() -> bool {
    true
}

/// Lines an export runs ahead of a slow client at most.
const EXPORT_AHEAD: usize = 64;

/// `GET /api/v1/memory/export`: the whole graph as JSON lines, streamed as
/// it is read (a large graph is never held in memory whole). The export
/// stops when the client hangs up.
pub async fn export(state: &ApiState, query: &ExportQuery) -> Result<ExportStream, ApiError> {
    memory(state)?;
    let memory = state.memory.clone().expect("checked just above");
    let (lines, receiver) = tokio::sync::mpsc::channel::<String>(EXPORT_AHEAD);
    let (failed, failure) = tokio::sync::oneshot::channel();
    let embeddings = query.embeddings;
    tokio::spawn(async move {
        match memory.export(embeddings, &lines).await {
            Ok(count) => tracing::debug!(lines = count, "memory exported"),
            Err(error) => {
                tracing::warn!(%error, "memory export stopped");
                let _ = failed.send(error.to_string());
            }
        }
    });
    Ok(ExportStream {
        lines: receiver,
        failure,
    })
}

/// The lines of an export in progress, as a response body stream. An
/// export that fails midway ends the body with an error, so the client
/// sees a broken transfer rather than a well-formed, shorter file.
pub struct ExportStream {
    lines: tokio::sync::mpsc::Receiver<String>,
    failure: tokio::sync::oneshot::Receiver<String>,
}

impl warp::Stream for ExportStream {
    type Item = std::io::Result<String>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.lines.poll_recv(cx) {
            Poll::Ready(Some(line)) => Poll::Ready(Some(Ok(line))),
            Poll::Pending => Poll::Pending,
            // The sender is gone: the export ended, well or not.
            Poll::Ready(None) => {
                match std::future::Future::poll(std::pin::Pin::new(&mut self.failure), cx) {
                    Poll::Ready(Ok(error)) => Poll::Ready(Some(Err(std::io::Error::other(error)))),
                    _ => Poll::Ready(None),
                }
            }
        }
    }
}

/// `POST /api/v1/memory/import`: JSON lines as written by export.
pub async fn import(state: &ApiState, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("import body is not UTF-8: {e}")))?;
    let report = memory(state)?
        .import(text.lines().map(str::to_owned))
        .await
        .map_err(from_memory)?;
    Ok((StatusCode::OK, json!(report)))
}

/// `GET /api/v1/memory/stats`
/// `GET /api/v1/memory/stats`: the counts and sizes, with what a capacity
/// review needs besides (`caxton memory migration-readiness`): the search
/// p99 since start, entities created in the last week, the first entity's
/// age, and the primary the store replicates, if any.
pub async fn stats(state: &ApiState) -> Result<(StatusCode, Value), ApiError> {
    let memory = memory(state)?;
    let stats = memory.stats().await.map_err(from_memory)?;
    let week_ago = crate::memory::now_ms() - 7 * 24 * 3_600_000;
    let created_last_7d = memory
        .entities_created_since(week_ago)
        .await
        .map_err(from_memory)?;
    let first_created = memory.first_created_ms().await.map_err(from_memory)?;
    let mut body = json!(stats);
    body["entities_created_last_7d"] = json!(created_last_7d);
    body["store_age_seconds"] =
        json!(first_created.map(|at| (crate::memory::now_ms() - at).max(0) / 1000));
    body["search_p99_ms_at_most"] = json!(
        crate::metrics::Metrics::quantile_upper_bound(
            &crate::metrics::metrics().memory_search_latency,
            0.99
        )
        .map(|seconds| seconds * 1e3)
    );
    body["primary"] = json!(memory.db().primary().map(crate::cluster::redact));
    body["wal_mode"] = json!(memory.db().wal_mode());
    Ok((StatusCode::OK, body))
}
