//! The JSON form of the WIT `message`: what clients post and get back.
//! Content is any JSON value here and JSON text across the WIT boundary.

use serde::{Deserialize, Serialize};

use super::{Priority, Strategy};
use crate::runtime::{Message, Performative};

/// A message as JSON. On input, `id` defaults to a fresh UUID,
/// `performative` to `request` and `sender` to `"client"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageJson {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub performative: Performative,
    #[serde(default = "default_sender")]
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// Any JSON value.
    pub content: serde_json::Value,
    /// Queue priority on the way in (default: the receiving agent's own,
    /// from its manifest, profile or `[agents.default_limits]`, else
    /// `normal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// How a capability-addressed message picks providers (default `best`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

fn default_sender() -> String {
    "client".into()
}

impl MessageJson {
    /// The WIT message for delivery to `receiver`, with an id assigned if absent.
    pub fn into_wit(self, receiver: &str) -> Message {
        let mut message = self.into_message();
        message.receiver = Some(receiver.to_owned());
        message
    }

    /// The WIT message as addressed, with an id assigned if absent.
    pub fn into_message(self) -> Message {
        Message {
            id: self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            performative: self.performative,
            sender: self.sender,
            receiver: self.receiver,
            capability: self.capability,
            conversation_id: self.conversation_id,
            reply_with: self.reply_with,
            in_reply_to: self.in_reply_to,
            content: self.content.to_string(),
        }
    }

    /// The JSON form of a reply from agent `from`. The host, not the plugin,
    /// vouches for the sender and assigns an id when the plugin left it empty;
    /// content that is not valid JSON is passed on as a JSON string.
    pub fn from_reply(reply: Message, from: &str) -> Self {
        let content = serde_json::from_str(&reply.content)
            .unwrap_or(serde_json::Value::String(reply.content));
        Self {
            id: Some(if reply.id.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                reply.id
            }),
            performative: reply.performative,
            sender: from.to_owned(),
            receiver: reply.receiver,
            capability: reply.capability,
            conversation_id: reply.conversation_id,
            reply_with: reply.reply_with,
            in_reply_to: reply.in_reply_to,
            content,
            priority: None,
            strategy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_message_gets_defaults_and_an_id() {
        let json: MessageJson = serde_json::from_str(r#"{"content": {"text": "hi"}}"#).unwrap();
        let wit = json.into_wit("echo");
        assert_eq!(wit.performative, Performative::Request);
        assert_eq!(wit.sender, "client");
        assert_eq!(wit.receiver.as_deref(), Some("echo"));
        assert!(uuid::Uuid::parse_str(&wit.id).is_ok());
        assert_eq!(wit.content, r#"{"text":"hi"}"#);
    }

    #[test]
    fn numbers_survive_the_trip_through_the_wit_form() {
        // Found by fuzzing: without serde_json's float_roundtrip the parsed
        // number is an ulp off, and its shortest form reads back as another.
        let json: MessageJson = serde_json::from_str(
            r#"{"content": [0, 2.000001909254536532051739, 1e-320, 0.1, 123456789.987654321]}"#,
        )
        .unwrap();
        let content = json.content.clone();
        let back = MessageJson::from_reply(json.into_message(), "fuzz");
        assert_eq!(back.content, content);
    }

    #[test]
    fn performatives_are_kebab_case_and_checked() {
        let json: MessageJson =
            serde_json::from_str(r#"{"performative": "accept-proposal", "content": 1}"#).unwrap();
        assert_eq!(json.performative, Performative::AcceptProposal);
        let err = serde_json::from_str::<MessageJson>(r#"{"performative": "shout", "content": 1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("shout"), "{err}");
    }

    #[test]
    fn the_host_sets_the_reply_sender_and_keeps_non_json_content() {
        let reply = Message {
            id: String::new(),
            performative: Performative::Inform,
            sender: "someone-else".into(),
            receiver: None,
            capability: None,
            conversation_id: None,
            reply_with: None,
            in_reply_to: Some("m1".into()),
            content: "not json".into(),
        };
        let json = MessageJson::from_reply(reply, "echo");
        assert_eq!(json.sender, "echo");
        assert_eq!(json.content, serde_json::Value::String("not json".into()));
        assert!(json.id.is_some());
    }
}
