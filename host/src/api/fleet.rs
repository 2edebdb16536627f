//! The API's side of the fleet (`cluster`): answering other hosts'
//! requests with this host's agents exactly as the HTTP API would, sending
//! messages no local agent takes to the fleet (from clients, and from
//! agents' own `messaging` imports), and `GET /api/v1/cluster/nodes`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use warp::http::StatusCode;

use super::messages::{delivery_result, from_messaging, no_provider};
use super::{ApiError, ApiState};
use crate::cluster::{
    AgentInfo, ClusterError, Fleet, FleetHandler, FleetReply, FleetRequest, Route,
};
use crate::messaging::{MessageJson, MessagingError, Remote, RemoteCall, Strategy, Target};
use crate::runtime::{BoxFuture, CallOutcome, Message, Performative, PluginError};

/// Serves other hosts' requests with this host's agents only.
pub struct ServeFleet {
    /// The API's state without the fleet: what it serves never travels on.
    state: ApiState,
    node: String,
}

impl ServeFleet {
    pub fn new(mut state: ApiState, node: String) -> Self {
        state.fleet = None;
        Self { state, node }
    }
}

impl FleetHandler for ServeFleet {
    fn local_agents(&self) -> Vec<AgentInfo> {
        self.state
            .registry
            .agents()
            .iter()
            .map(|agent| AgentInfo {
                name: agent.manifest.name.clone(),
                capabilities: agent.manifest.capabilities.clone(),
            })
            .collect()
    }

    fn handle(&self, route: Route, request: FleetRequest) -> BoxFuture<'static, FleetReply> {
        let (state, node) = (self.state.clone(), self.node.clone());
        Box::pin(async move {
            let timeout = Duration::from_millis(request.timeout_ms);
            let answer =
                match tokio::time::timeout(timeout, serve_locally(&state, route, request)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "reply_timeout",
                        format!("no reply on fleet host {node:?} within the sender's {timeout:?}"),
                    )),
                };
            match answer {
                Ok((status, body, reply_text)) => FleetReply {
                    node,
                    status: status.as_u16(),
                    body,
                    retry_after_secs: None,
                    reply_text,
                },
                Err(error) => FleetReply {
                    node,
                    status: error.status.as_u16(),
                    retry_after_secs: error.retry_after_secs,
                    reply_text: None,
                    body: json!({ "error": {
                        "code": error.code,
                        "message": error.message,
                        "details": error.details,
                    }}),
                },
            }
        })
    }
}

/// A request from another host, run here as the HTTP API runs one: the
/// same queues, limits, conversation records and answers; with an agent's
/// reply content that is not JSON, that text as the agent wrote it.
async fn serve_locally(
    state: &ApiState,
    route: Route,
    request: FleetRequest,
) -> Result<(StatusCode, Value, Option<String>), ApiError> {
    let FleetRequest {
        message: json,
        content_text,
        chain,
        only_agents,
        ..
    } = request;
    let allowed = |agent: &String| only_agents.as_ref().is_none_or(|list| list.contains(agent));
    let (agents, broadcast) = match &route {
        Route::Agent(name) => {
            let agents = state
                .messenger
                .resolve(&Target::Agent(name.clone()))
                .map_err(from_messaging)?;
            if !agents.iter().all(allowed) {
                return Err(from_messaging(MessagingError::NotFound(name.clone())));
            }
            (agents, false)
        }
        Route::Capability(capability) | Route::Broadcast(capability) => {
            let broadcast = matches!(route, Route::Broadcast(_));
            let strategy = if broadcast {
                Strategy::Broadcast
            } else {
                json.strategy.unwrap_or_default()
            };
            let mut agents = state
                .messenger
                .resolve(&Target::Capability {
                    name: capability.clone(),
                    strategy,
                })
                .map_err(from_messaging)?;
            agents.retain(allowed);
            if agents.is_empty() {
                return Err(from_messaging(MessagingError::NoProvider(
                    capability.clone(),
                )));
            }
            (agents, broadcast)
        }
    };
    let priority = json.priority;
    // An agent on another host is waiting with a slot held: run now.
    if !chain.is_empty() {
        let agent = agents.into_iter().next().expect("resolved to one or more");
        let conversation_id = json.conversation_id.clone();
        let mut message = json.into_wit(&agent);
        if let Some(text) = content_text {
            message.content = text;
        }
        let delivery = state
            .messenger
            .execute_chained(&agent, message, chain, priority.unwrap_or_default())
            .await
            .map_err(from_messaging)?;
        let reply_text = match &delivery.outcome {
            Ok(CallOutcome {
                result: Ok(Ok(Some(reply))),
                ..
            }) => not_json(&reply.content),
            _ => None,
        };
        let (reply, usage) = delivery_result(delivery)?;
        return Ok((
            StatusCode::OK,
            json!({ "agent": agent, "reply": reply, "usage": usage, "conversation_id": conversation_id }),
            reply_text,
        ));
    }
    let (status, body) =
        super::messages::deliver(state, json.into_message(), agents, priority, broadcast).await?;
    Ok((status, body, None))
}

/// `text` when it is not JSON: the JSON form of a message carries such
/// content as a JSON string, which would reach an agent quoted.
fn not_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .is_err()
        .then(|| text.to_owned())
}

/// A client's message as a fleet request, with the client's reply timeout.
fn client_request(state: &ApiState, fleet: &Fleet, json: &MessageJson) -> (FleetRequest, Duration) {
    let timeout = state.messenger.reply_timeout();
    let request = FleetRequest {
        from_node: fleet.node().to_owned(),
        message: json.clone(),
        content_text: None,
        chain: Vec::new(),
        only_agents: None,
        timeout_ms: timeout.as_millis() as u64,
    };
    (request, timeout)
}

/// What forwarding a client's message to the fleet answers.
pub(super) async fn forward(
    state: &ApiState,
    fleet: &Fleet,
    route: Route,
    json: MessageJson,
) -> Result<(StatusCode, Value), ApiError> {
    let (request, timeout) = client_request(state, fleet, &json);
    let conversation = json.conversation_id.clone().unwrap_or_default();
    match fleet.request(&route, &request, timeout).await {
        Ok(reply) => {
            record(state, &conversation, &json, &reply).await;
            answer(reply)
        }
        Err(ClusterError::NoResponders) => match route {
            Route::Agent(name) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "agent_not_found",
                format!(
                    "no agent named {name:?} is deployed on this host or any host of the fleet; GET /api/v1/cluster/nodes lists the fleet's agents"
                ),
            )),
            Route::Capability(capability) | Route::Broadcast(capability) => {
                Ok((StatusCode::OK, no_provider(&json, &capability)))
            }
        },
        Err(error) => Err(from_cluster(error)),
    }
}

/// The replies of the other hosts offering `capability` to a broadcast,
/// in the broadcast's `replies` shape, each marked with its node.
pub(super) async fn broadcast(
    state: &ApiState,
    fleet: &Fleet,
    capability: &str,
    json: &MessageJson,
) -> Vec<Value> {
    let (request, timeout) = client_request(state, fleet, json);
    let conversation = json.conversation_id.clone().unwrap_or_default();
    match fleet.broadcast(capability, &request, timeout).await {
        Ok(replies) => {
            let mut out = Vec::new();
            for reply in replies {
                record(state, &conversation, json, &reply).await;
                let node = reply.node.clone();
                match reply.body.get("replies").and_then(Value::as_array) {
                    Some(replies) => out.extend(replies.iter().cloned().map(|mut one| {
                        one["node"] = json!(node);
                        one
                    })),
                    None => out.push(json!({ "node": node, "error": reply.body.get("error") })),
                }
            }
            out
        }
        Err(error) => {
            let error = from_cluster(error);
            vec![json!({ "error": { "code": error.code, "message": error.message } })]
        }
    }
}

/// This host's copy of a conversation another host answered: the message
/// and each reply.
async fn record(state: &ApiState, conversation: &str, json: &MessageJson, reply: &FleetReply) {
    // A refusal (not found, queue full, ...) delivered nothing.
    if conversation.is_empty() || !(200..300).contains(&reply.status) {
        return;
    }
    let replies: Vec<&Value> = match reply.body.get("replies").and_then(Value::as_array) {
        Some(replies) => replies.iter().filter_map(|r| r.get("reply")).collect(),
        None => reply.body.get("reply").into_iter().collect(),
    };
    let mut message = json.clone().into_message();
    if message.receiver.is_none() {
        message.receiver = reply
            .body
            .get("agent")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    let replies: Vec<Message> = replies
        .into_iter()
        .filter_map(|r| serde_json::from_value::<MessageJson>(r.clone()).ok())
        .map(MessageJson::into_message)
        .collect();
    state
        .messenger
        .record_exchange(conversation, &message, replies.first())
        .await;
    for more in replies.iter().skip(1) {
        state
            .messenger
            .record_exchange(conversation, more, None)
            .await;
    }
}

/// A fleet host's answer as this host's: the status and body it gave,
/// with the node that gave it.
fn answer(reply: FleetReply) -> Result<(StatusCode, Value), ApiError> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_success() {
        let mut body = reply.body;
        if body.is_object() {
            body["node"] = json!(reply.node);
        }
        return Ok((status, body));
    }
    let error = reply.body.get("error").cloned().unwrap_or(Value::Null);
    let text = |key: &str| {
        error
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut api = ApiError::remote(
        status,
        text("code"),
        format!("{} (on fleet host {:?})", text("message"), reply.node),
    )
    .with_details(error.get("details").cloned().unwrap_or(Value::Null));
    api.retry_after_secs = reply.retry_after_secs;
    Err(api)
}

pub(super) fn from_cluster(error: ClusterError) -> ApiError {
    match error {
        ClusterError::Unavailable { .. } => {
            let mut api = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                error.to_string(),
            );
            api.retry_after_secs = Some(2);
            api
        }
        ClusterError::Timeout(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "reply_timeout",
            error.to_string(),
        ),
        ClusterError::NoResponders => ApiError::new(
            StatusCode::NOT_FOUND,
            "no_provider",
            "no host of the fleet serves this",
        ),
        ClusterError::Protocol(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "cluster_protocol",
            error.to_string(),
        ),
        ClusterError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            error.to_string(),
        ),
    }
}

/// Agents' messages to the fleet (their `messaging` imports), answered
/// with the reply or the same typed error a local agent would give.
pub struct FleetRemote {
    fleet: Weak<Fleet>,
}

impl FleetRemote {
    pub fn new(fleet: &Arc<Fleet>) -> Self {
        Self {
            fleet: Arc::downgrade(fleet),
        }
    }
}

impl Remote for FleetRemote {
    fn request(&self, call: RemoteCall) -> BoxFuture<'static, Result<Message, PluginError>> {
        let fleet = self.fleet.clone();
        Box::pin(async move {
            let fleet = fleet
                .upgrade()
                .ok_or_else(|| PluginError::Unavailable("this host has left the fleet".into()))?;
            let (route, wanted) = match &call.target {
                Target::Agent(name) => (Route::Agent(name.clone()), format!("agent {name:?}")),
                Target::Capability { name, .. } => (
                    Route::Capability(name.clone()),
                    format!("capability {name:?}"),
                ),
            };
            let caller = call.message.sender.clone();
            let conversation = call.message.conversation_id.clone();
            let content_text = not_json(&call.message.content);
            let mut json = MessageJson::from_reply(call.message, &caller);
            json.priority = Some(call.priority);
            let request = FleetRequest {
                from_node: fleet.node().to_owned(),
                message: json,
                content_text,
                chain: call.chain,
                only_agents: call.only_agents,
                timeout_ms: call.timeout.as_millis() as u64,
            };
            let reply = match fleet.request(&route, &request, call.timeout).await {
                Ok(reply) => reply,
                Err(ClusterError::NoResponders) => {
                    return Err(PluginError::NotFound(format!(
                        "no agent offers {wanted} on this host or any host of the fleet"
                    )));
                }
                Err(ClusterError::Timeout(timeout)) => {
                    return Err(PluginError::Timeout(format!(
                        "no reply from {wanted} in the fleet within {timeout:?}"
                    )));
                }
                Err(error @ ClusterError::Unavailable { .. }) => {
                    return Err(PluginError::Unavailable(error.to_string()));
                }
                Err(error @ ClusterError::TooLarge) => {
                    return Err(PluginError::InvalidInput(error.to_string()));
                }
                Err(error) => return Err(PluginError::Internal(error.to_string())),
            };
            if (200..300).contains(&reply.status) {
                let agent = reply.body["agent"].as_str().unwrap_or_default().to_owned();
                return Ok(match reply.body.get("reply") {
                    Some(Value::Null) | None => Message {
                        id: uuid::Uuid::new_v4().to_string(),
                        performative: Performative::Inform,
                        sender: agent,
                        receiver: Some(caller),
                        capability: None,
                        conversation_id: conversation,
                        reply_with: None,
                        in_reply_to: None,
                        content: "null".into(),
                    },
                    Some(body) => {
                        let mut message = serde_json::from_value::<MessageJson>(body.clone())
                            .map_err(|e| PluginError::Internal(format!("a fleet reply: {e}")))?
                            .into_message();
                        if let Some(text) = reply.reply_text {
                            message.content = text;
                        }
                        message
                    }
                });
            }
            Err(plugin_error(&reply))
        })
    }
}

/// The error a local call would have given, from a fleet host's answer.
fn plugin_error(reply: &FleetReply) -> PluginError {
    let error = &reply.body["error"];
    let code = error["code"].as_str().unwrap_or_default();
    let message = format!(
        "{} (on fleet host {:?})",
        error["message"].as_str().unwrap_or_default(),
        reply.node
    );
    match code {
        // The callee's own error passes through as it was.
        "plugin_error" => match error["details"]["kind"].as_str().unwrap_or_default() {
            "invalid-input" => PluginError::InvalidInput(message),
            "not-found" => PluginError::NotFound(message),
            "denied" => PluginError::Denied(message),
            "unavailable" => PluginError::Unavailable(message),
            "timeout" => PluginError::Timeout(message),
            _ => PluginError::Internal(message),
        },
        "agent_not_found" | "no_provider" => PluginError::NotFound(message),
        "reply_timeout" => PluginError::Timeout(message),
        "queue_full" | "conversation_limit" | "pool_exhausted" | "plugin_busy" => {
            PluginError::Unavailable(message)
        }
        "bad_request" if message.starts_with("message depth limit") => PluginError::Denied(message),
        _ => PluginError::Internal(message),
    }
}

/// `GET /api/v1/cluster/nodes`: the fleet as this host sees it.
pub async fn nodes(state: &ApiState) -> Result<(StatusCode, Value), ApiError> {
    let Some(fleet) = &state.fleet else {
        return Ok((
            StatusCode::OK,
            json!({ "enabled": false, "node": null, "connected": false, "nodes": [] }),
        ));
    };
    Ok((
        StatusCode::OK,
        json!({
            "enabled": true,
            "node": fleet.node(),
            "connected": fleet.is_connected(),
            "nats_url": fleet.url(),
            "nodes": fleet.nodes(),
        }),
    ))
}
