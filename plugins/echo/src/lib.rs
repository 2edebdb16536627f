//! `echo` agent: replies `inform` with the request's content, unchanged.
//! The smallest useful agent, written with the guest SDK.

use caxton_agent::{Agent, Error, Message};

struct Echo;

impl Agent for Echo {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        caxton_agent::debug!("echoing message {}", message.id);
        Ok(Some(message.reply(message.content.clone())))
    }
}

caxton_agent::export_agent!(Echo);
