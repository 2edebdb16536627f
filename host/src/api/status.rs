//! `GET /api/v1/status`: one snapshot of what the host is doing, for the
//! status page (and scripts): agents with their queues and counters, the
//! instance pool, memory, embedding and language-model health, and the
//! running totals the page draws its sparklines from.

use prometheus::core::Collector;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{ApiError, ApiState};
use crate::metrics::metrics;

pub async fn status(state: &ApiState) -> Result<(StatusCode, Value), ApiError> {
    // Read, not sampled: sampling would reset the CPU window the
    // Prometheus gauge reports.
    let m = metrics();
    let registry = &state.registry;
    let runtime = registry.runtime();

    let mut plugins = Vec::new();
    for agent in registry.agents() {
        if let Ok((_, shown)) = super::agents::show(state, &agent.manifest.name) {
            plugins.push(shown);
        }
    }
    for tool in registry.tools() {
        if let Ok((_, shown)) = super::agents::show(state, &tool.manifest.name) {
            plugins.push(shown);
        }
    }

    let memory = match &state.memory {
        Some(memory) => match memory.stats().await {
            Ok(stats) => json!(stats),
            Err(error) => json!({ "error": error.to_string() }),
        },
        None => Value::Null,
    };

    Ok((
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": state.started.elapsed().as_secs(),
            "resident_memory_bytes": crate::metrics::resident_memory_bytes(),
            "cpu_seconds_total": crate::metrics::cpu_seconds_total(),
            "embeddings": embeddings(state),
            "llm_providers": registry.llm().map(|llm| llm.statuses()),
            "pool": {
                "size": runtime.pool_size(),
                "in_use": runtime.slots_in_use(),
                "compiled": runtime.compiled_count(),
                "from_cache": runtime.cache_hit_count(),
            },
            "agents": plugins,
            "memory": memory,
            "totals": {
                "requests": total(&m.requests),
                "messages": total(&m.messages_processed),
                "traps": total(&m.traps),
                "llm_requests": total(&m.llm_requests),
            },
        }),
    ))
}

/// The engine's state, with the reason and the fix when it is not ready.
fn embeddings(state: &ApiState) -> Value {
    let status = super::embeddings_state(&state.embeddings);
    match &state.embeddings {
        Ok(engine) => json!({
            "state": status,
            "model": engine.model_name(),
            "cache_hit_rate": engine.cache_stats().hit_rate(),
        }),
        Err(error) => json!({ "state": status, "detail": error.to_string() }),
    }
}

/// The sum of a counter over all its labels.
fn total(counter: &prometheus::IntCounterVec) -> u64 {
    counter
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|metric| metric.get_counter().get_value() as u64)
        .sum()
}
