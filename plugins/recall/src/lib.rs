//! `recall` agent: remembers what it is told and answers from memory.
//!
//! - `inform` with `{"about": "alice", "type": "person", "facts": ["..."]}`
//!   stores the facts as observations of that entity;
//! - `query` with `{"question": "...", "limit": 5}` searches memory and
//!   replies with the hits, best first.

wit_bindgen::generate!({ world: "agent", path: "../../wit/v0.2.0" });

use caxton::agent::memory;
use caxton::agent::types::Performative;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Facts {
    about: String,
    #[serde(rename = "type", default = "default_type")]
    entity_type: String,
    facts: Vec<String>,
}

fn default_type() -> String {
    "thing".into()
}

#[derive(Deserialize)]
struct Question {
    question: String,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    5
}

fn reply(to: &Message, content: serde_json::Value) -> Message {
    Message {
        id: String::new(),
        performative: Performative::Inform,
        sender: String::new(),
        receiver: Some(to.sender.clone()),
        capability: None,
        conversation_id: to.conversation_id.clone(),
        reply_with: None,
        in_reply_to: to.reply_with.clone().or(Some(to.id.clone())),
        content: content.to_string(),
    }
}

fn parse<'a, T: Deserialize<'a>>(content: &'a str, expected: &str) -> Result<T, Error> {
    serde_json::from_str(content)
        .map_err(|e| Error::InvalidInput(format!("expected {expected}: {e}")))
}

struct Recall;

impl Guest for Recall {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        match message.performative {
            Performative::Inform => {
                let facts: Facts = parse(&message.content, r#"{"about", "type", "facts"}"#)?;
                memory::remember(&facts.about, &facts.entity_type, &facts.facts)?;
                Ok(Some(reply(
                    &message,
                    json!({"remembered": facts.facts.len(), "about": facts.about}),
                )))
            }
            Performative::Query | Performative::Request => {
                let question: Question = parse(&message.content, r#"{"question", "limit"}"#)?;
                let hits = memory::search(&question.question, question.limit)?;
                let answers: Vec<_> = hits
                    .iter()
                    .map(|h| json!({"entity": h.entity, "type": h.entity_type, "observation": h.observation, "score": h.score}))
                    .collect();
                Ok(Some(reply(&message, json!({ "answers": answers }))))
            }
            _ => Err(Error::InvalidInput(
                "send `inform` to store facts or `query` to ask".into(),
            )),
        }
    }
}

export!(Recall);
