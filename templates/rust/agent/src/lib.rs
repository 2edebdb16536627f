//! `{{name}}`: a Caxton agent written with the `caxton-agent` SDK.
//!
//! It keeps notes in its memory (the manifest grants `memory`):
//! - `{"remember": "text"}` stores the text as an observation of `notes`;
//! - `{"recall": "question", "limit": 5}` replies with the closest notes;
//! - anything else is echoed back as `{"echo": ...}`.

use caxton_agent::{Agent, Error, Message, memory};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(untagged)]
enum Request {
    Remember { remember: String },
    Recall {
        recall: String,
        #[serde(default = "default_limit")]
        limit: u32,
    },
    Other(Value),
}

fn default_limit() -> u32 {
    5
}

struct Notes;

impl Agent for Notes {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        let reply = match message.json::<Request>()? {
            Request::Remember { remember } => {
                memory::remember("notes", "note", &[remember.clone()])?;
                caxton_agent::info!("stored a note of {} characters", remember.chars().count());
                json!({ "stored": remember })
            }
            Request::Recall { recall, limit } => {
                let hits = memory::search(&recall, limit)?;
                let notes: Vec<&str> = hits.iter().map(|h| h.observation.as_str()).collect();
                json!({ "notes": notes })
            }
            Request::Other(content) => json!({ "echo": content }),
        };
        Ok(Some(message.reply_json(&reply)?))
    }
}

caxton_agent::export_agent!(Notes);
