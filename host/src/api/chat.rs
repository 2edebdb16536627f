//! Talking to agents the way chat clients do: the OpenAI-compatible
//! `POST /api/v1/chat/completions` (`model` names an agent; streaming or
//! not), and server-sent events on `POST /api/v1/agents/{name}/messages`
//! for a client that sends `Accept: text/event-stream`. A configuration
//! agent's model text streams as it is generated; any other agent's reply
//! arrives as one piece. Either way the conversation is recorded as usual.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use super::messages::{delivery_result, from_messaging};
use super::{ApiError, ApiState};
use crate::messaging::{Delivery, MessageJson, MessagingError, Target};
use crate::runtime::{Message, Performative};

/// Deltas buffered between the model and a slow client; past this the
/// model's stream waits (backpressure), it does not pile up in memory.
const DELTAS_AHEAD: usize = 64;

/// What an OpenAI client sends; fields Caxton does not use are accepted
/// and ignored, as OpenAI-compatible servers do.
#[derive(Deserialize)]
struct CompletionRequest {
    model: String,
    messages: Vec<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// Continues a Caxton conversation (an extension; clients that do not
    /// know it start a new one each time and send the history instead).
    #[serde(default)]
    conversation_id: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The text and token counts of an agent's reply: a configuration agent's
/// `answer`, or any other agent's content as text.
fn answer_of(reply: &Message) -> (String, Value) {
    match serde_json::from_str::<Value>(&reply.content) {
        Ok(Value::Object(object)) if object.get("answer").is_some_and(Value::is_string) => (
            object["answer"].as_str().unwrap_or_default().to_owned(),
            object.get("usage").cloned().unwrap_or(Value::Null),
        ),
        Ok(Value::String(text)) => (text, Value::Null),
        _ => (reply.content.clone(), Value::Null),
    }
}

fn openai_usage(usage: &Value) -> Value {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let (prompt, completion) = (count("prompt_tokens"), count("completion_tokens"));
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The agent's reply to a delivery, or the error the direct route gives.
fn reply_of(delivery: Delivery) -> Result<Message, ApiError> {
    let agent = delivery.agent.clone();
    let outcome = delivery.outcome.map_err(|e| ApiError::from_agent(&e))?;
    let usage = outcome.usage;
    let reply = outcome
        .result
        .map_err(|e| ApiError::from_runtime(&e, &usage))?
        .map_err(|e| ApiError::from_plugin(&e, &usage))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "no_reply",
                format!("agent {agent:?} handled the message but did not reply"),
            )
        })?;
    if reply.performative == Performative::Failure {
        let (text, _) = answer_of(&reply);
        let reason = serde_json::from_str::<Value>(&reply.content)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "agent_failure",
            format!("agent {agent:?} could not answer: {reason}"),
        ));
    }
    Ok(reply)
}

/// `POST /api/v1/chat/completions`.
pub async fn completions(state: &ApiState, body: &[u8]) -> Response {
    match start_completion(state, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn start_completion(state: &ApiState, body: &[u8]) -> Result<Response, ApiError> {
    let request: CompletionRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "body is not a chat completion request: {e}. Send {{\"model\": \"<agent name>\", \"messages\": [{{\"role\": \"user\", \"content\": \"...\"}}]}}"
        ))
    })?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "messages is empty; send at least one {\"role\": \"user\", \"content\": \"...\"}",
        ));
    }
    let agents = state
        .messenger
        .resolve(&Target::Agent(request.model.clone()))
        .map_err(|e| match e {
            MessagingError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!(
                    "no agent named {:?}; `model` names an agent (GET /api/v1/models lists them)",
                    request.model
                ),
            ),
            other => from_messaging(other),
        })?;
    let message = Message {
        id: uuid::Uuid::new_v4().to_string(),
        performative: Performative::Request,
        sender: "client".into(),
        receiver: Some(request.model.clone()),
        capability: None,
        conversation_id: request.conversation_id.clone(),
        reply_with: None,
        in_reply_to: None,
        content: json!({ "messages": request.messages }).to_string(),
    };
    let id = format!("chatcmpl-{}", message.id);
    let model = request.model.clone();
    if !request.stream {
        let (conversation_id, mut results) = state
            .messenger
            .deliver(message, agents, None)
            .await
            .map_err(from_messaging)?;
        let reply = reply_of(results.remove(0).map_err(from_messaging)?)?;
        let (text, usage) = answer_of(&reply);
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": unix_now(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": null,
            }],
            "usage": openai_usage(&usage),
            "conversation_id": conversation_id,
        });
        return Ok(warp::reply::json(&body).into_response());
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": unix_now(),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    };
    let events = stream_delivery(state, message, agents, move |event| match event {
        Event::Start => vec![chunk(json!({"role": "assistant", "content": ""}), None)],
        Event::Delta(text) => vec![chunk(json!({ "content": text }), None)],
        Event::End { reply, forwarded } => {
            let mut out = Vec::new();
            match reply_of(*reply) {
                Ok(reply) => {
                    let (text, usage) = answer_of(&reply);
                    // Whatever of the answer the deltas did not carry: all
                    // of it from an agent that did not stream, the rest
                    // when a slow reader missed pieces, the answer again
                    // after text from earlier steps.
                    let rest = match text.strip_prefix(forwarded.as_str()) {
                        Some(rest) => rest,
                        None => text.as_str(),
                    };
                    if !rest.is_empty() {
                        out.push(chunk(json!({ "content": rest }), None));
                    }
                    out.push(chunk(json!({}), Some("stop")));
                    if include_usage {
                        let mut last = chunk(json!({}), None);
                        last["choices"] = json!([]);
                        last["usage"] = openai_usage(&usage);
                        out.push(last);
                    }
                }
                Err(error) => out.push(error_event(&error)),
            }
            out
        }
        Event::Undelivered(error) => vec![error_event(&from_messaging(error))],
    })
    .await?;
    Ok(sse_response(
        events,
        |data| format!("data: {data}\n\n"),
        "data: [DONE]\n\n",
    ))
}

/// The OpenAI shape of an error inside a stream.
fn error_event(error: &ApiError) -> Value {
    json!({"error": {"message": error.message, "type": error.code, "code": error.status.as_u16()}})
}

/// `POST /api/v1/agents/{name}/messages` with `Accept: text/event-stream`:
/// `delta` events with the model's text, then one `reply` event with what
/// the JSON route would have answered (or one `error` event).
pub async fn agent_events(state: &ApiState, agent: &str, body: &[u8]) -> Response {
    match start_agent_events(state, agent, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn start_agent_events(
    state: &ApiState,
    agent: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let json: MessageJson = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "body is not a valid message: {e}. Send JSON like {{\"content\": \"...\"}}"
        ))
    })?;
    let message = json.into_wit(agent);
    let agents = state
        .messenger
        .resolve(&Target::Agent(agent.to_owned()))
        .map_err(from_messaging)?;
    let events = stream_delivery(state, message, agents, |event| match event {
        Event::Start => Vec::new(),
        Event::Delta(text) => vec![json!({"event": "delta", "data": {"text": text}})],
        Event::End { reply, .. } => {
            let conversation_id = reply_conversation(&reply);
            vec![match delivery_result(*reply) {
                Ok((reply, usage)) => json!({"event": "reply", "data": {
                    "reply": reply, "usage": usage, "conversation_id": conversation_id,
                }}),
                Err(error) => json!({"event": "error", "data": error_event(&error)["error"]}),
            }]
        }
        Event::Undelivered(error) => {
            vec![json!({"event": "error", "data": error_event(&from_messaging(error))["error"]})]
        }
    })
    .await?;
    Ok(sse_response(
        events,
        |event| {
            format!(
                "event: {}\ndata: {}\n\n",
                event["event"].as_str().unwrap_or("message"),
                event["data"]
            )
        },
        "",
    ))
}

fn reply_conversation(delivery: &Delivery) -> Option<String> {
    match &delivery.outcome {
        Ok(outcome) => match &outcome.result {
            Ok(Ok(Some(reply))) => reply.conversation_id.clone(),
            _ => None,
        },
        Err(_) => None,
    }
}

/// What happens during a streamed delivery, in order: `Start`, any
/// number of `Delta`s, then `End` (or `Undelivered` if it never ran).
enum Event {
    Start,
    Delta(String),
    End {
        reply: Box<Delivery>,
        /// The text that went out as deltas, in order.
        forwarded: String,
    },
    Undelivered(MessagingError),
}

/// Delivers `message` with a stream attached and turns what happens into
/// JSON events with `render`, in a channel the response body reads.
async fn stream_delivery(
    state: &ApiState,
    message: Message,
    agents: Vec<String>,
    render: impl Fn(Event) -> Vec<Value> + Send + 'static,
) -> Result<mpsc::Receiver<Value>, ApiError> {
    let (events, receiver) = mpsc::channel::<Value>(DELTAS_AHEAD);
    let (deltas, mut delta_receiver) = mpsc::channel::<String>(DELTAS_AHEAD);
    let messenger = state.messenger.clone();
    let mut delivery = tokio::spawn(async move {
        messenger
            .deliver_streaming(message, agents, None, Some(deltas))
            .await
    });
    tokio::spawn(async move {
        let send_all = |values: Vec<Value>| {
            let events = events.clone();
            async move {
                for value in values {
                    // A client that went away: the delivery still runs to
                    // its end and is recorded; only the events are dropped.
                    let _ = events.send(value).await;
                }
            }
        };
        send_all(render(Event::Start)).await;
        let mut forwarded = String::new();
        let finished = loop {
            tokio::select! {
                Some(text) = delta_receiver.recv() => {
                    forwarded.push_str(&text);
                    send_all(render(Event::Delta(text))).await;
                }
                finished = &mut delivery => break finished,
            }
        };
        while let Ok(text) = delta_receiver.try_recv() {
            forwarded.push_str(&text);
            send_all(render(Event::Delta(text))).await;
        }
        let event = match finished {
            Ok(Ok((_, mut results))) => match results.remove(0) {
                Ok(reply) => Event::End {
                    reply: Box::new(reply),
                    forwarded,
                },
                Err(error) => Event::Undelivered(error),
            },
            Ok(Err(error)) => Event::Undelivered(error),
            Err(_) => Event::Undelivered(MessagingError::NotFound(
                "the delivery stopped unexpectedly".into(),
            )),
        };
        send_all(render(event)).await;
    });
    Ok(receiver)
}

/// A `text/event-stream` response of `events`, each written by `frame`,
/// then `last` (OpenAI's `[DONE]`).
fn sse_response(
    events: mpsc::Receiver<Value>,
    frame: impl Fn(&Value) -> String + Send + Sync + 'static,
    last: &'static str,
) -> Response {
    let frame = std::sync::Arc::new(frame);
    let stream = futures_util::stream::unfold((events, false), move |(mut events, done)| {
        let frame = frame.clone();
        async move {
            if done {
                return None;
            }
            match events.recv().await {
                Some(event) => Some((Ok::<_, Infallible>(frame(&event)), (events, false))),
                None if last.is_empty() => None,
                None => Some((Ok(last.to_owned()), (events, true))),
            }
        }
    });
    let mut response = warp::reply::stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        warp::http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-cache"),
    );
    response
}

/// An agent as an OpenAI model object: chat clients list these and pick
/// one as `model`.
fn agent_model(agent: &crate::agents::DeployedAgent) -> Value {
    let created = agent
        .deployed_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "id": agent.manifest.name,
        "object": "model",
        "created": created,
        "owned_by": if agent.manifest.configuration { "caxton-configuration-agent" } else { "caxton-agent" },
    })
}

/// `GET /api/v1/models`: the embedding model, then every agent (each a
/// `model` for `/api/v1/chat/completions`).
pub fn models(state: &ApiState) -> Value {
    let mut list = super::embeddings::models(state.embeddings.as_deref());
    let mut agents = state.registry.agents();
    agents.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    if let Some(data) = list["data"].as_array_mut() {
        data.extend(agents.iter().map(|a| agent_model(a)));
    }
    list
}

/// `GET /api/v1/models/{model}`: an agent by name, or the embedding model.
pub fn model(state: &ApiState, id: &str) -> Result<Value, ApiError> {
    match state.registry.agent(id) {
        Some(agent) => Ok(agent_model(&agent)),
        None => super::embeddings::model(state.embeddings.as_deref(), id),
    }
}
