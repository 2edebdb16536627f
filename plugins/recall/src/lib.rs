//! `recall` agent: remembers what it is told and answers from memory.
//!
//! - `inform` with `{"about": "alice", "type": "person", "facts": ["..."]}`
//!   stores the facts as observations of that entity;
//! - `query` with `{"question": "...", "limit": 5}` searches memory and
//!   replies with the hits, best first.

use caxton_agent::{Agent, Error, Message, Performative, memory};
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

fn parse<'a, T: Deserialize<'a>>(content: &'a str, expected: &str) -> Result<T, Error> {
    serde_json::from_str(content)
        .map_err(|e| Error::InvalidInput(format!("expected {expected}: {e}")))
}

struct Recall;

impl Agent for Recall {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        match message.performative {
            Performative::Inform => {
                let facts: Facts = parse(&message.content, r#"{"about", "type", "facts"}"#)?;
                memory::remember(&facts.about, &facts.entity_type, &facts.facts)?;
                Ok(Some(message.reply_json(
                    &json!({"remembered": facts.facts.len(), "about": facts.about}),
                )?))
            }
            Performative::Query | Performative::Request => {
                let question: Question = parse(&message.content, r#"{"question", "limit"}"#)?;
                let hits = memory::search(&question.question, question.limit)?;
                let answers: Vec<_> = hits
                    .iter()
                    .map(|h| json!({"entity": h.entity, "type": h.entity_type, "observation": h.observation, "score": h.score}))
                    .collect();
                Ok(Some(message.reply_json(&json!({ "answers": answers }))?))
            }
            _ => Err(Error::InvalidInput(
                "send `inform` to store facts or `query` to ask".into(),
            )),
        }
    }
}

caxton_agent::export_agent!(Recall);
