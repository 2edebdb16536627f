//! Replies and requests without filling nine fields by hand.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Message, Performative};

impl Message {
    /// An `inform` answering this message: addressed to its sender, in its
    /// conversation, with `in-reply-to` set to its `reply-with` (or its id).
    /// The host fills in the reply's id and sender.
    pub fn reply(&self, content: impl Into<String>) -> Message {
        self.reply_as(Performative::Inform, content)
    }

    /// [`Message::reply`] with `value` as its JSON content.
    pub fn reply_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Message, Error> {
        let content = serde_json::to_string(value)
            .map_err(|e| Error::Internal(format!("reply is not JSON: {e}")))?;
        Ok(self.reply(content))
    }

    /// A reply performing `performative` (`failure`, `not-understood`,
    /// `propose`, ...) instead of `inform`.
    pub fn reply_as(&self, performative: Performative, content: impl Into<String>) -> Message {
        Message {
            id: String::new(),
            performative,
            sender: String::new(),
            receiver: Some(self.sender.clone()),
            capability: None,
            conversation_id: self.conversation_id.clone(),
            reply_with: None,
            in_reply_to: self.reply_with.clone().or_else(|| Some(self.id.clone())),
            content: content.into(),
        }
    }

    /// The content decoded as `T`; malformed content is `invalid-input`
    /// naming what was wrong and where.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.content)
            .map_err(|e| Error::InvalidInput(format!("content: {e}")))
    }

    /// A new `request` for the agent named `receiver`, for
    /// [`crate::messaging`]. The host assigns its id and sender.
    pub fn to_agent(receiver: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            receiver: Some(receiver.into()),
            ..Message::request(content)
        }
    }

    /// A new `request` for whichever agent offers `capability`.
    pub fn to_capability(capability: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            capability: Some(capability.into()),
            ..Message::request(content)
        }
    }

    fn request(content: impl Into<String>) -> Message {
        Message {
            id: String::new(),
            performative: Performative::Request,
            sender: String::new(),
            receiver: None,
            capability: None,
            conversation_id: None,
            reply_with: None,
            in_reply_to: None,
            content: content.into(),
        }
    }

    /// The same message performing `performative`.
    pub fn with_performative(self, performative: Performative) -> Message {
        Message {
            performative,
            ..self
        }
    }

    /// The same message inside conversation `id`.
    pub fn in_conversation(self, id: impl Into<String>) -> Message {
        Message {
            conversation_id: Some(id.into()),
            ..self
        }
    }
}
