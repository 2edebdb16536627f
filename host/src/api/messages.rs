//! Messages and conversations over HTTP: `POST /api/v1/messages` (by name
//! or capability), `POST /api/v1/agents/{name}/messages`, and the threads
//! at `/api/v1/conversations/{id}`.

use serde_json::{Value, json};
use warp::http::StatusCode;

use super::{ApiError, ApiState};
use crate::messaging::{Delivery, MessageJson, MessagingError, Strategy, Target};
use crate::runtime::{CallOutcome, Message, Performative};

pub(super) fn from_messaging(error: MessagingError) -> ApiError {
    let (status, code, retry) = match &error {
        MessagingError::NotFound(_) => (StatusCode::NOT_FOUND, "agent_not_found", None),
        MessagingError::QueueFull(_) => (StatusCode::TOO_MANY_REQUESTS, "queue_full", Some(1)),
        MessagingError::ConversationLimit { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, "conversation_limit", Some(5))
        }
        MessagingError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "reply_timeout", None),
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
pub async fn send_to_agent(
    state: &ApiState,
    agent: &str,
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let json = parse_message(body)?;
    let priority = json.priority.unwrap_or_default();
    let message = json.into_wit(agent);
    let agents = state
        .messenger
        .resolve(&Target::Agent(agent.to_owned()))
        .map_err(from_messaging)?;
    let (conversation_id, mut results) = state
        .messenger
        .deliver(message, agents, priority)
        .await
        .map_err(from_messaging)?;
    let delivery = results.remove(0).map_err(from_messaging)?;
    let (reply, usage) = delivery_result(delivery)?;
    Ok((
        StatusCode::OK,
        json!({ "reply": reply, "usage": usage, "conversation_id": conversation_id }),
    ))
}

/// `POST /api/v1/messages`: to `receiver`, or by `capability` with a
/// `strategy`. No provider answers with a `failure` message naming the
/// capability, as a FIPA router would.
pub async fn send(state: &ApiState, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let json = parse_message(body)?;
    let priority = json.priority.unwrap_or_default();
    let strategy = json.strategy.unwrap_or_default();
    let target = match (&json.receiver, &json.capability) {
        (Some(agent), _) => Target::Agent(agent.clone()),
        (None, Some(capability)) => Target::Capability {
            name: capability.clone(),
            strategy,
        },
        (None, None) => return Err(from_messaging(MessagingError::NoAddress)),
    };
    let agents = match state.messenger.resolve(&target) {
        Ok(agents) => agents,
        Err(MessagingError::NoProvider(capability)) => {
            return Ok((StatusCode::OK, no_provider(&json, &capability)));
        }
        Err(error) => return Err(from_messaging(error)),
    };
    let message = json.into_message();
    let (conversation_id, results) = state
        .messenger
        .deliver(message, agents, priority)
        .await
        .map_err(from_messaging)?;

    if strategy != Strategy::Broadcast || matches!(target, Target::Agent(_)) {
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
fn no_provider(request: &MessageJson, capability: &str) -> Value {
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
