//! Messages and conversations over HTTP: `POST /api/v1/messages` (by name
//! or capability), `POST /api/v1/agents/{name}/messages`, and the threads
//! at `/api/v1/conversations/{id}`.

use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{ApiError, ApiState};
use crate::cluster::Route;
use crate::messaging::{Delivery, MessageJson, MessagingError, Priority, Strategy, Target};
use crate::runtime::{CallOutcome, Message, Performative};

pub(super) fn from_messaging(error: MessagingError) -> ApiError {
    let (status, code, retry) = match &error {
        MessagingError::NotFound(_) => (StatusCode::NOT_FOUND, "agent_not_found", None),
        MessagingError::QueueFull(_) => (StatusCode::TOO_MANY_REQUESTS, "queue_full", Some(1)),
        MessagingError::ConversationLimit { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "conversation_limit", Some(5))
        }
        MessagingError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "reply_timeout", None),
        MessagingError::Late { .. } => (StatusCode::GATEWAY_TIMEOUT, "queue_timeout", Some(1)),
        MessagingError::NoAddress | MessagingError::DepthLimit { .. } => {
            (StatusCode::BAD_REQUEST, "bad_request", None)
        }
        MessagingError::NoProvider(_) => (StatusCode::NOT_FOUND, "no_provider", None),
        MessagingError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error", None),
    };
    let mut api = ApiError::new(status, code, error.to_string());
    api.retry_after_secs = retry;
    api
}

fn parse_message(body: &[u8]) -> Result<MessageJson, ApiError> {
    let message: MessageJson = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "body is not a valid message: {e}. Send JSON like {{\"capability\": \"echo\", \"performative\": \"request\", \"content\": {{...}}}}"
        ))
    })?;
    // An empty id would name a conversation no one can open again.
    if message
        .conversation_id
        .as_deref()
        .is_some_and(|id| id.trim().is_empty())
    {
        return Err(ApiError::bad_request(
            "conversation_id is empty; leave it out to start a new conversation, or send the id a reply gave you",
        ));
    }
    Ok(message)
}

/// One agent's answer as JSON: the reply and usage, or the error shape
/// the direct route would have answered with.
pub(super) fn delivery_result(
    delivery: Delivery,
) -> Result<(Option<MessageJson>, Value), ApiError> {
    let agent = delivery.agent.clone();
    let outcome = delivery.outcome.map_err(|e| ApiError::from_agent(&e))?;
    let CallOutcome { result, usage } = outcome;
    let reply = result
        .map_err(|e| ApiError::from_runtime(&e, &usage))?
        .map_err(|e| ApiError::from_plugin(&e, &usage))?;
    Ok((
        reply.map(|r| MessageJson::from_reply(r, &agent)),
        json!(usage),
    ))
}

/// `POST /api/v1/agents/{name}/messages`: the reply and the call's usage.
/// An agent not deployed here is asked on the fleet's hosts, if any.
pub async fn send_to_agent(
    state: &ApiState,
    agent: &str,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let mut json = parse_message(body)?;
    json.receiver = Some(agent.to_owned());
    let priority = json.priority;
    let agents = match state.messenger.resolve(&Target::Agent(agent.to_owned())) {
        Ok(agents) => agents,
        Err(MessagingError::NotFound(_)) if let Some(fleet) = &state.fleet => {
            let json = with_conversation(json);
            return super::fleet::forward(state, fleet, Route::Agent(agent.to_owned()), json).await;
        }
        Err(error) => return Err(from_messaging(error)),
    };
    let (conversation_id, mut results) = state
        .messenger
        .deliver(json.into_wit(agent), agents, priority)
        .await
        .map_err(from_messaging)?;
    let delivery = results.remove(0).map_err(from_messaging)?;
    let (reply, usage) = delivery_result(delivery)?;
    Ok((
        StatusCode::OK,
        json!({ "reply": reply, "usage": usage, "conversation_id": conversation_id }),
    ))
}

/// A message bound for the fleet gets its conversation id here, so every
/// host records the same conversation.
fn with_conversation(mut json: MessageJson) -> MessageJson {
    if json.conversation_id.is_none() {
        json.conversation_id = Some(uuid::Uuid::now_v7().to_string());
    }
    json
}

/// `POST /api/v1/messages`: to `receiver`, or by `capability` with a
/// `strategy`. Local agents come first; what none here takes goes to the
/// fleet, if any (a broadcast reaches every host). No provider anywhere
/// answers with a `failure` message naming the capability, as a FIPA
/// router would.
pub async fn send(state: &ApiState, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let json = parse_message(body)?;
    let priority = json.priority;
    let strategy = json.strategy.unwrap_or_default();
    let (target, route) = match (&json.receiver, &json.capability) {
        (Some(agent), _) => (Target::Agent(agent.clone()), Route::Agent(agent.clone())),
        (None, Some(capability)) => (
            Target::Capability {
                name: capability.clone(),
                strategy,
            },
            if strategy == Strategy::Broadcast {
                Route::Broadcast(capability.clone())
            } else {
                Route::Capability(capability.clone())
            },
        ),
        (None, None) => return Err(from_messaging(MessagingError::NoAddress)),
    };
    let broadcast = matches!(route, Route::Broadcast(_));
    let json = match &state.fleet {
        Some(_) => with_conversation(json),
        None => json,
    };
    let agents = match state.messenger.resolve(&target) {
        Ok(agents) => agents,
        Err(MessagingError::NotFound(_) | MessagingError::NoProvider(_))
            if let Some(fleet) = &state.fleet =>
        {
            if !broadcast {
                return super::fleet::forward(state, fleet, route, json).await;
            }
            Vec::new()
        }
        Err(MessagingError::NoProvider(capability)) => {
            return Ok((StatusCode::OK, no_provider(&json, &capability)));
        }
        Err(error) => return Err(from_messaging(error)),
    };
    let fleet_replies = async {
        match (&state.fleet, &route) {
            (Some(fleet), Route::Broadcast(capability)) => {
                super::fleet::broadcast(state, fleet, capability, &json).await
            }
            _ => Vec::new(),
        }
    };
    if agents.is_empty() {
        // A broadcast no local agent takes: the fleet's replies alone.
        let replies = fleet_replies.await;
        let capability = json.capability.clone().unwrap_or_default();
        if replies.is_empty() {
            return Ok((StatusCode::OK, no_provider(&json, &capability)));
        }
        return Ok((
            StatusCode::OK,
            json!({ "replies": replies, "conversation_id": json.conversation_id }),
        ));
    }
    let local = deliver(
        state,
        json.clone().into_message(),
        agents,
        priority,
        broadcast,
    );
    let (local, remote) = tokio::join!(local, fleet_replies);
    if !broadcast {
        return local;
    }
    // With a fleet, a broadcast answers with every host's replies, this
    // one's marked with its node, and a local refusal is an entry like any
    // other (on one box it stays the whole answer, as before).
    let (status, mut body) = match (local, &state.fleet) {
        (Ok(answer), _) => answer,
        (Err(error), Some(_)) => (
            StatusCode::OK,
            json!({ "replies": [{ "error": error_json(error) }], "conversation_id": json.conversation_id }),
        ),
        (Err(error), None) => return Err(error),
    };
    if let Some(replies) = body.get_mut("replies").and_then(Value::as_array_mut) {
        if let Some(fleet) = &state.fleet {
            for reply in replies.iter_mut() {
                reply["node"] = json!(fleet.node());
            }
        }
        replies.extend(remote);
    }
    Ok((status, body))
}

/// Delivers `message` to local `agents` and answers as `POST
/// /api/v1/messages` does: one reply, or every reply of a broadcast.
pub(super) async fn deliver(
    state: &ApiState,
    message: Message,
    agents: Vec<String>,
    priority: Option<Priority>,
    broadcast: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let (conversation_id, results) = state
        .messenger
        .deliver(message, agents, priority)
        .await
        .map_err(from_messaging)?;
    if !broadcast {
        let delivery = results
            .into_iter()
            .next()
            .expect("one agent")
            .map_err(from_messaging)?;
        let agent = delivery.agent.clone();
        let (reply, usage) = delivery_result(delivery)?;
        return Ok((
            StatusCode::OK,
            json!({ "agent": agent, "reply": reply, "usage": usage, "conversation_id": conversation_id }),
        ));
    }
    let replies: Vec<Value> = results
        .into_iter()
        .map(|result| match result {
            Err(error) => json!({ "error": error_json(from_messaging(error)) }),
            Ok(delivery) => {
                let agent = delivery.agent.clone();
                match delivery_result(delivery) {
                    Ok((reply, usage)) => json!({ "agent": agent, "reply": reply, "usage": usage }),
                    Err(error) => json!({ "agent": agent, "error": error_json(error) }),
                }
            }
        })
        .collect();
    Ok((
        StatusCode::OK,
        json!({ "replies": replies, "conversation_id": conversation_id }),
    ))
}

fn error_json(error: ApiError) -> Value {
    json!({ "code": error.code, "message": error.message })
}

/// The router's `failure` reply when nobody offers a capability.
pub(super) fn no_provider(request: &MessageJson, capability: &str) -> Value {
    let reply = MessageJson::from_reply(
        Message {
            id: uuid::Uuid::new_v4().to_string(),
            performative: Performative::Failure,
            sender: String::new(),
            receiver: Some(request.sender.clone()),
            capability: Some(capability.to_owned()),
            conversation_id: request.conversation_id.clone(),
            reply_with: None,
            in_reply_to: request.reply_with.clone().or(request.id.clone()),
            content: json!({
                "error": "no_provider",
                "message": format!("no agent offers capability {capability:?}; GET /api/v1/agents?capability={capability} lists providers"),
                "capability": capability,
            })
            .to_string(),
        },
        "caxton",
    );
    debug_assert_eq!(reply.performative, Performative::Failure);
    json!({ "agent": null, "reply": reply, "usage": null, "conversation_id": request.conversation_id })
}

/// `GET /api/v1/conversations?limit=N`: those with the newest messages.
pub async fn latest(
    state: &ApiState,
    query: &LatestQuery,
) -> Result<(StatusCode, Value), ApiError> {
    if !(1..=100).contains(&query.limit) {
        return Err(ApiError::bad_request("limit is 1-100"));
    }
    let conversations = conversations(state)?;
    match conversations.latest(query.limit).await {
        Ok(views) => Ok((StatusCode::OK, json!({ "conversations": views }))),
        Err(error) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            error.to_string(),
        )),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestQuery {
    #[serde(default = "default_latest")]
    pub limit: u32,
}

fn default_latest() -> u32 {
    20
}

/// `GET /api/v1/conversations/{id}`
pub async fn conversation(state: &ApiState, id: &str) -> Result<(StatusCode, Value), ApiError> {
    let conversations = conversations(state)?;
    match conversations.get(id).await {
        Ok(Some(view)) => Ok((StatusCode::OK, json!(view))),
        Ok(None) => Err(not_found(id)),
        Err(error) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            error.to_string(),
        )),
    }
}

/// `GET /api/v1/conversations/{id}/messages`: the thread in order.
pub async fn thread(state: &ApiState, id: &str) -> Result<(StatusCode, Value), ApiError> {
    let conversations = conversations(state)?;
    match conversations.messages(id).await {
        Ok(Some(messages)) => Ok((
            StatusCode::OK,
            json!({ "conversation_id": id, "messages": messages }),
        )),
        Ok(None) => Err(not_found(id)),
        Err(error) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            error.to_string(),
        )),
    }
}

fn conversations(state: &ApiState) -> Result<&crate::messaging::Conversations, ApiError> {
    state.messenger.conversations().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "conversations_unavailable",
            "conversations are not recorded on this host",
        )
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "conversation_not_found",
        format!("no conversation {id:?}; ids come back in every message response"),
    )
}
