//! `relay` agent: asks another agent through the WIT `messaging` interface
//! and replies with what it heard. Shows agent-to-agent request/reply.
//!
//! Content:
//! - `{"ask": "echo", "content": {...}}` requests agent `echo` with `content`;
//! - `{"ask_capability": "echo", "content": {...}}` requests whoever offers it;
//! - `{"ask_text": "echo", "text": "..."}` requests agent `echo` with the
//!   text itself as content (not JSON), and replies with the reply's
//!   content as text;
//! - `{"tell": "echo", "content": {...}}` sends without waiting;
//! - `{"show": "parameters"}` replies with its name and manifest `[parameters]`;
//! - `{"cycle": ["relay-a", "relay-b"], "hop": 0}` forwards to
//!   `cycle[hop % len]` with `hop + 1`, forever: the host's depth limit has
//!   to end it.

use caxton_agent::{Agent, Error, Message, context, messaging};
use serde_json::{Value, json};

struct Relay;

impl Agent for Relay {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        let request: Value = serde_json::from_str(&message.content)
            .map_err(|e| Error::InvalidInput(format!("content is not JSON: {e}")))?;
        let inner = request.get("content").cloned().unwrap_or(Value::Null);
        let heard = if request.get("show").and_then(Value::as_str) == Some("parameters") {
            let parameters: Value = context::parameters().unwrap_or(Value::Null);
            json!({"name": context::name(), "parameters": parameters})
        } else if let Some(target) = request.get("ask").and_then(Value::as_str) {
            let reply = messaging::request(&Message::to_agent(target, inner.to_string()), 5_000)?;
            json!({"from": reply.sender, "reply": serde_json::from_str::<Value>(&reply.content).unwrap_or(Value::Null)})
        } else if let Some(target) = request.get("ask_text").and_then(Value::as_str) {
            let text = request
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let reply = messaging::request(&Message::to_agent(target, text.to_owned()), 5_000)?;
            json!({"from": reply.sender, "reply_text": reply.content})
        } else if let Some(capability) = request.get("ask_capability").and_then(Value::as_str) {
            let reply = messaging::request(
                &Message::to_capability(capability, inner.to_string()),
                5_000,
            )?;
            json!({"from": reply.sender, "reply": serde_json::from_str::<Value>(&reply.content).unwrap_or(Value::Null)})
        } else if let Some(target) = request.get("tell").and_then(Value::as_str) {
            messaging::send(&Message::to_agent(target, inner.to_string()))?;
            json!({"told": target})
        } else if let Some(cycle) = request.get("cycle").and_then(Value::as_array) {
            let hop = request.get("hop").and_then(Value::as_u64).unwrap_or(0);
            let Some(next) = cycle
                .get(hop as usize % cycle.len().max(1))
                .and_then(Value::as_str)
            else {
                return Err(Error::InvalidInput("cycle must list agent names".into()));
            };
            let forward = json!({"cycle": cycle, "hop": hop + 1});
            let reply = messaging::request(&Message::to_agent(next, forward.to_string()), 5_000)?;
            serde_json::from_str(&reply.content).unwrap_or(Value::Null)
        } else {
            return Err(Error::InvalidInput(
                "content must have \"ask\", \"ask_text\", \"ask_capability\", \"tell\" or \"cycle\"".into(),
            ));
        };
        Ok(Some(message.reply(heard.to_string())))
    }
}

caxton_agent::export_agent!(Relay);
