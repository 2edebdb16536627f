//! `analyst` agent: takes `{"csv": "..."}`, runs it through the `csv_parser`
//! tool and replies with the tool's summary. Shows an agent calling a tool.

wit_bindgen::generate!({ world: "agent", path: "../../wit/v0.2.0" });

use caxton::agent::log::{self, Level};
use caxton::agent::tools;
use caxton::agent::types::Performative;

struct Analyst;

impl Guest for Analyst {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        let request: serde_json::Value = serde_json::from_str(&message.content)
            .map_err(|e| Error::InvalidInput(format!("content is not JSON: {e}")))?;
        let Some(csv) = request.get("csv").and_then(|v| v.as_str()) else {
            return Err(Error::InvalidInput(
                "content must be {\"csv\": \"<csv text>\"}".into(),
            ));
        };
        log::log(
            Level::Info,
            &format!("analysing {} bytes of CSV", csv.len()),
        );
        let input = serde_json::json!({ "csv": csv }).to_string();
        let output = tools::call("csv_parser", &input)?;
        Ok(Some(Message {
            id: String::new(),
            performative: Performative::Inform,
            sender: String::new(),
            receiver: Some(message.sender),
            capability: None,
            conversation_id: message.conversation_id,
            reply_with: None,
            in_reply_to: message.reply_with.or(Some(message.id)),
            content: output,
        }))
    }
}

export!(Analyst);
