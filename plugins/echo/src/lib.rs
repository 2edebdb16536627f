//! `echo` agent: replies `inform` with the request's content, unchanged.
//! The smallest useful agent, and the template for writing a new one.

wit_bindgen::generate!({ world: "agent", path: "../../wit/v0.2.0" });

use caxton::agent::log::{self, Level};
use caxton::agent::types::Performative;

struct Echo;

impl Guest for Echo {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        log::log(Level::Debug, &format!("echoing message {}", message.id));
        Ok(Some(Message {
            id: String::new(), // the host assigns reply ids
            performative: Performative::Inform,
            sender: String::new(), // the host fills in this agent's name
            receiver: Some(message.sender),
            capability: None,
            conversation_id: message.conversation_id,
            reply_with: None,
            in_reply_to: message.reply_with.or(Some(message.id)),
            content: message.content,
        }))
    }
}

export!(Echo);
