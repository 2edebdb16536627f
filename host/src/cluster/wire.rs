//! What hosts send each other over NATS, as JSON: requests with what
//! travels with a message (its conversation, priority, strategy, the chain
//! of agents for the depth limit, the sender's deadline), replies carrying
//! exactly the status and body the serving host's HTTP API would have
//! answered, and heartbeats.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::messaging::MessageJson;

/// A message handed to another host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetRequest {
    /// The host that sent it (broadcasts skip it: it delivered locally).
    pub from_node: String,
    /// The message, with its conversation id already set by the sender so
    /// both hosts record the same conversation.
    pub message: MessageJson,
    /// The content exactly as an agent wrote it, when it is not JSON (the
    /// JSON form would carry it as a string, and the receiver would get it
    /// quoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_text: Option<String>,
    /// Agents the chain went through, outermost first (empty for a message
    /// from a client): the depth limit counts them across hosts.
    #[serde(default)]
    pub chain: Vec<String>,
    /// Only these agents may take it (a configuration agent's `agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_agents: Option<Vec<String>>,
    /// How long the sender waits; the serving host gives up after it.
    pub timeout_ms: u64,
}

/// A host's answer: what its HTTP API would have answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetReply {
    pub node: String,
    pub status: u16,
    pub body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u32>,
    /// The reply's content as the agent wrote it, when it is not JSON
    /// (see [`FleetRequest::content_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_text: Option<String>,
}

/// One agent a host serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub capabilities: Vec<String>,
}

/// A host's heartbeat: who it is and what it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announcement {
    pub node: String,
    pub version: String,
    /// Seconds since the host started.
    pub uptime_secs: u64,
    pub agents: Vec<AgentInfo>,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// The agent of that name, wherever it runs.
    Agent(String),
    /// One host of those offering the capability (a queue group).
    Capability(String),
    /// Every host offering the capability.
    Broadcast(String),
}

/// NATS subjects under a prefix. Names become one subject token each:
/// characters outside `[A-Za-z0-9_-]` (dots, wildcards, spaces) are
/// escaped as `~XX`, so no name can reach another's subject.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn heartbeat(&self) -> String {
        format!("{}.heartbeat", self.prefix)
    }

    pub fn route(&self, route: &Route) -> String {
        match route {
            Route::Agent(name) => format!("{}.agent.{}", self.prefix, token(name)),
            Route::Capability(name) => format!("{}.cap.{}", self.prefix, token(name)),
            Route::Broadcast(name) => format!("{}.all.{}", self.prefix, token(name)),
        }
    }

    /// The queue group of a route: one member answers. Broadcasts have
    /// none: every host answers.
    pub fn queue_group(route: &Route) -> Option<&'static str> {
        match route {
            Route::Agent(_) => Some("agent"),
            Route::Capability(_) => Some("capability"),
            Route::Broadcast(_) => None,
        }
    }
}

fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("~{byte:02X}"));
        }
    }
    if out.is_empty() {
        out.push('~');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_their_subject_token() {
        let subjects = Subjects::new("caxton");
        assert_eq!(
            subjects.route(&Route::Capability("text.summary".into())),
            "caxton.cap.text~2Esummary"
        );
        assert_eq!(
            subjects.route(&Route::Agent("a>*b c".into())),
            "caxton.agent.a~3E~2Ab~20c"
        );
        assert_eq!(
            subjects.route(&Route::Broadcast("echo".into())),
            "caxton.all.echo"
        );
        assert_ne!(token("a.b"), token("a~2Eb"), "the escape itself is escaped");
    }
}
