//! `/api/v1/agents`: list, inspect, deploy, replace, remove and validate
//! agents and tools while the server runs.

use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{ApiError, ApiState};
use crate::agents::{AgentError, DeployedAgent, ManifestReport, PluginKind, parse_with_component};
use crate::toml_check::Problem;

/// `GET /api/v1/agents` query: filters and a page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub capability: Option<String>,
    /// `running` or `degraded` (its last file change was refused).
    pub status: Option<String>,
    /// 1-based.
    #[serde(default = "first_page")]
    pub page: usize,
    #[serde(default = "default_page_size")]
    pub page_size: usize,
}

fn first_page() -> usize {
    1
}

fn default_page_size() -> usize {
    50
}

/// The body of `POST /api/v1/agents` and `PUT /api/v1/agents/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    /// The manifest as TOML text; its `component` key may be left out.
    manifest: String,
    /// The `.wasm` component, base64; absent for a configuration agent
    /// (a manifest with `system_prompt`, run by the built-in prompt agent)
    /// and for a `builtin:NAME` component, which the binary carries.
    #[serde(default)]
    component: Option<String>,
}

fn status_of(state: &ApiState, agent: &DeployedAgent) -> (&'static str, Option<String>) {
    match state.registry.reload_error(&agent.source) {
        Some(error) => ("degraded", Some(error)),
        None => ("running", None),
    }
}

fn summary(state: &ApiState, agent: &DeployedAgent) -> Value {
    let (status, _) = status_of(state, agent);
    let m = &agent.manifest;
    json!({
        "name": m.name,
        "version": m.version.to_string(),
        "kind": "agent",
        "description": m.description,
        "capabilities": m.capabilities,
        "status": status,
    })
}

/// A page of agents with its total, for the pagination headers.
pub fn list(state: &ApiState, query: &ListQuery) -> Result<(Value, usize, usize), ApiError> {
    if query.page == 0 || !(1..=500).contains(&query.page_size) {
        return Err(ApiError::bad_request(
            "page starts at 1 and page_size is 1-500",
        ));
    }
    let matching: Vec<Value> = state
        .registry
        .agents()
        .iter()
        .filter(|a| {
            query
                .capability
                .as_ref()
                .is_none_or(|c| a.manifest.capabilities.contains(c))
        })
        .map(|a| summary(state, a))
        .filter(|s| {
            query
                .status
                .as_ref()
                .is_none_or(|want| s["status"] == *want)
        })
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        // A page far past the end is empty, not an overflow.
        .skip((query.page - 1).saturating_mul(query.page_size))
        .take(query.page_size)
        .collect();
    Ok((
        json!({ "agents": page, "page": query.page }),
        total,
        query.page_size,
    ))
}

/// `GET /api/v1/agents/{name}`: manifest facts, status, queue and counters.
pub fn show(state: &ApiState, name: &str) -> Result<(StatusCode, Value), ApiError> {
    if let Some(agent) = state.registry.agent(name) {
        let (status, reload_error) = status_of(state, &agent);
        let m = &agent.manifest;
        let deployed_at = agent
            .deployed_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        return Ok((
            StatusCode::OK,
            json!({
                "name": m.name,
                "version": m.version.to_string(),
                "kind": "agent",
                "runs": if m.configuration { "configuration" } else { "component" },
                "wit_version": agent.component.wit_version(),
                "description": m.description,
                "capabilities": m.capabilities,
                "tools": m.tools,
                "grants": m.grants,
                "status": status,
                "reload_error": reload_error,
                "source": agent.source,
                "deployed_at_ms": deployed_at,
                "queue": state.messenger.queue(name),
                "counters": state.registry.stats_of(name).snapshot(),
                "priority": m.priority,
                "profile": m.applied_profile,
                "limits": m.limits_json(&state.registry.runtime().default_limits()),
            }),
        ));
    }
    if let Some(tool) = state.registry.tool(name) {
        let m = &tool.manifest;
        return Ok((
            StatusCode::OK,
            json!({
                "name": m.name,
                "version": m.version.to_string(),
                "kind": "tool",
                "description": m.description,
                "source": tool.source,
                "reload_error": state.registry.reload_error(&tool.source),
            }),
        ));
    }
    Err(ApiError::from_agent(&AgentError::NotFound(name.to_owned())))
}

fn problems_json(problems: &[Problem]) -> Value {
    json!(problems)
}

fn invalid(report: &ManifestReport) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_manifest",
        format!(
            "the manifest has {} problem(s): {}",
            report.problems.len(),
            report
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    )
    .with_details(json!({
        "problems": problems_json(&report.problems),
        "warnings": problems_json(&report.warnings),
    }))
}

fn from_deploy(error: AgentError) -> ApiError {
    match &error {
        AgentError::Duplicate { .. } => {
            ApiError::new(StatusCode::CONFLICT, "agent_exists", error.to_string())
        }
        AgentError::Limit { .. } => {
            ApiError::new(StatusCode::CONFLICT, "agent_limit", error.to_string())
        }
        AgentError::NotFound(_) => ApiError::from_agent(&error),
        AgentError::Manifest(_)
        | AgentError::Load { .. }
        | AgentError::UnknownTool { .. }
        | AgentError::UnknownMcpServer { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_agent",
            error.to_string(),
        ),
        AgentError::ReadDir { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "agent_error",
            error.to_string(),
        ),
    }
}

/// `POST /api/v1/agents` (`replace` = None) and `PUT /api/v1/agents/{name}`.
pub async fn deploy(
    state: &ApiState,
    body: &[u8],
    replace: Option<&str>,
) -> Result<(StatusCode, Value), ApiError> {
    let body: DeployBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid body: {e}. Send {{\"manifest\": \"<TOML text>\", \"component\": \"<base64 of the .wasm>\"}}"
        ))
    })?;
    let bytes = body
        .component
        .as_deref()
        .map(|text| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| ApiError::bad_request(format!("component is not base64: {e}")))
        })
        .transpose()?;
    let deployments = state.deployments.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "deployments_unavailable",
            "this host does not accept deployments over the API",
        )
    })?;
    // Validate everything before anything is written: the manifest against
    // the path the component will have, then the component itself, from
    // the uploaded bytes.
    // A configuration agent has no component, and a `builtin:` one is in
    // the binary: both are stored without one.
    let component = bytes
        .as_deref()
        .map(|bytes| deployments.component_path(bytes))
        .unwrap_or_default();
    let report = {
        let (text, component) = (body.manifest.clone(), component.clone());
        // Checking is CPU work proportional to the text: off the async threads.
        tokio::task::spawn_blocking(move || {
            parse_with_component(&text, Path::new("api.toml"), &component)
        })
        .await
        .expect("manifest checking panicked")
    };
    let Some(manifest) = report.manifest.clone() else {
        return Err(invalid(&report));
    };
    // Placed in the text sent (the stored file may be an older version).
    if let Some(problem) = state.registry.profile_problem(&manifest, &body.manifest) {
        let mut report = report;
        report.problems.push(problem);
        return Err(invalid(&report));
    }
    let carried = crate::agents::built_in_component(&manifest.component).is_some();
    if bytes.is_none() != (manifest.configuration || carried) {
        return Err(ApiError::bad_request(if bytes.is_none() {
            "component is missing: send the .wasm as base64 in `component`, or deploy a configuration agent (a manifest with `system_prompt` and no `component`)"
        } else {
            "a configuration agent (`system_prompt`, no `component` in the manifest) takes no uploaded component; remove `component` from the body"
        }));
    }
    let name = manifest.name.clone();
    let _changing = deployments.lock().await;
    let existing = state.registry.source_of(&name);
    match (replace, &existing) {
        (None, Some(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "agent_exists",
                format!("{name:?} is already deployed; PUT /api/v1/agents/{name} replaces it"),
            ));
        }
        (Some(path_name), _) if path_name != name => {
            return Err(ApiError::bad_request(format!(
                "the manifest names {name:?} but the URL names {path_name:?}"
            )));
        }
        (Some(_), None) => {
            return Err(ApiError::from_agent(&AgentError::NotFound(name)));
        }
        (Some(_), Some(source)) if source.starts_with(&state.agents_dir) => {
            return Err(from_file(&name, source));
        }
        _ => {}
    }
    let source = deployments.manifest_path(&name);
    let bytes: Option<std::sync::Arc<[u8]>> = bytes.map(Into::into);
    let prepared = state
        .registry
        .prepare_with(&source, manifest, bytes.clone())
        .await
        .map_err(from_deploy)?;
    if let Some(bytes) = bytes {
        let write = {
            let deployments = deployments.clone();
            tokio::task::spawn_blocking(move || deployments.store_component(&bytes))
        };
        write
            .await
            .expect("writing a component panicked")
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_error",
                    format!("cannot store the component: {e}"),
                )
            })?;
    }
    deployments
        .save(&name, &body.manifest, &component)
        .await
        .map_err(store_error)?;
    state.registry.install(prepared);
    if let Err(error) = deployments.remove_unreferenced().await {
        tracing::warn!(%error, "cannot list deployments to remove unused components");
    }
    let (_, shown) = show(state, &name)?;
    let status = if replace.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        json!({ "agent": shown, "warnings": problems_json(&report.warnings) }),
    ))
}

fn store_error(error: crate::store::StoreError) -> ApiError {
    if error.is_disk_full() {
        return ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_full",
            format!("the disk is full: {error}"),
        );
    }
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_error",
        error.to_string(),
    )
}

fn from_file(name: &str, source: &Path) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "defined_by_file",
        format!(
            "{name:?} comes from {}; change or delete that file instead (hot reload applies it)",
            source.display()
        ),
    )
}

/// `DELETE /api/v1/agents/{name}`
pub async fn remove(state: &ApiState, name: &str) -> Result<(StatusCode, Value), ApiError> {
    let source = state
        .registry
        .source_of(name)
        .ok_or_else(|| ApiError::from_agent(&AgentError::NotFound(name.to_owned())))?;
    if source.starts_with(&state.agents_dir) {
        return Err(from_file(name, &source));
    }
    if let Some(deployments) = &state.deployments {
        let _changing = deployments.lock().await;
        deployments.remove(name).await.map_err(store_error)?;
        state.registry.remove(name);
        state.messenger.remove(name);
        if let Err(error) = deployments.remove_unreferenced().await {
            tracing::warn!(%error, "cannot list deployments to remove unused components");
        }
    } else {
        state.registry.remove(name);
        state.messenger.remove(name);
    }
    Ok((StatusCode::OK, json!({ "removed": name })))
}

/// `POST /api/v1/agents/validate`: the manifest (JSON `{"manifest"}` or
/// raw TOML) checked as a deployment would, without deploying.
pub async fn validate(state: &ApiState, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => match fields.get("manifest") {
            Some(Value::String(text)) => text.clone(),
            _ => {
                return Err(ApiError::bad_request(
                    "send {\"manifest\": \"<TOML text>\"} or the TOML itself",
                ));
            }
        },
        // Not a JSON object: the body is the TOML text.
        _ => String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::bad_request("the manifest must be UTF-8 text"))?,
    };
    let (mut report, text) = {
        let path = state.agents_dir.join("validate.toml");
        tokio::task::spawn_blocking(move || {
            (crate::agents::Manifest::parse_report(&text, &path), text)
        })
        .await
        .expect("manifest checking panicked")
    };
    if let Some(manifest) = &report.manifest {
        report
            .problems
            .extend(state.registry.profile_problem(manifest, &text));
        for tool in manifest
            .tools
            .iter()
            .filter(|t| state.registry.tool(t).is_none())
        {
            report.problems.push(Problem::at(
                &text,
                &["tools"],
                format!(
                    "tool {tool:?} is not deployed here; deploy it first or remove it from `tools`"
                ),
            ));
        }
        if manifest.configuration
            && let Some(llm) = state.registry.llm()
            && let Err((key, message)) = llm.check_agent(&crate::agents::agent_chat(manifest))
        {
            report
                .problems
                .push(Problem::at(&text, &["llm", key], message));
        }
        if manifest.kind == PluginKind::Agent
            && !manifest.configuration
            && !manifest.component.exists()
            && crate::agents::built_in_component(&manifest.component).is_none()
            && toml::from_str::<toml::Table>(&text).is_ok_and(|t| t.contains_key("component"))
        {
            report.warnings.push(Problem::at(
                &text,
                &["component"],
                format!(
                    "{} does not exist on the server; fine if you upload the component with the deployment",
                    manifest.component.display()
                ),
            ));
        }
    }
    Ok((
        StatusCode::OK,
        json!({
            "valid": report.problems.is_empty(),
            "problems": problems_json(&report.problems),
            "warnings": problems_json(&report.warnings),
        }),
    ))
}

/// `POST /api/v1/agents/{name}/reload`: re-read the agent's manifest file
/// and component now, as a file change would.
pub async fn reload(state: &ApiState, name: &str) -> Result<(StatusCode, Value), ApiError> {
    let source = state
        .registry
        .source_of(name)
        .ok_or_else(|| ApiError::from_agent(&AgentError::NotFound(name.to_owned())))?;
    if !source.starts_with(&state.agents_dir) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "deployed_by_api",
            format!("{name:?} was deployed through the API; PUT /api/v1/agents/{name} replaces it"),
        ));
    }
    let on_removed: crate::agents::OnRemoved = {
        let messenger = state.messenger.clone();
        std::sync::Arc::new(move |removed: &str| messenger.remove(removed))
    };
    match crate::agents::reload_now(&state.registry, &source, &on_removed).await {
        Ok(took) => Ok((
            StatusCode::OK,
            json!({ "reloaded": name, "reload_ms": took.as_secs_f64() * 1e3 }),
        )),
        Err(error) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_refused",
            format!("the previous version keeps serving: {error}"),
        )),
    }
}
