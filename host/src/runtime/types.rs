//! Caxton's own types for what crosses the plugin boundary: the message,
//! its performative, the error a call returns, and what memory and tools
//! hand back. Each WIT version's bindings convert to and from these, so
//! the host speaks one language whatever version a plugin was built for.

use std::fmt;

/// The FIPA communicative act a message performs, spelled in JSON as
/// the WIT spells it (`accept-proposal`, ...).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Performative {
    #[default]
    Request,
    Inform,
    Query,
    Propose,
    AcceptProposal,
    RejectProposal,
    Failure,
    NotUnderstood,
}

/// One message between agents, addressed by `receiver` or `capability`;
/// `content` is JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub performative: Performative,
    pub sender: String,
    pub receiver: Option<String>,
    pub capability: Option<String>,
    pub conversation_id: Option<String>,
    pub reply_with: Option<String>,
    pub in_reply_to: Option<String>,
    pub content: String,
}

/// Why a plugin call, or a host call a plugin made, failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The input was malformed or failed validation.
    InvalidInput(String),
    /// The named thing (agent, tool, entity) does not exist.
    NotFound(String),
    /// The caller may not do this (a missing grant or allowlist entry).
    Denied(String),
    /// The service is not available on this host.
    Unavailable(String),
    /// The operation did not finish before its deadline.
    Timeout(String),
    /// Anything else.
    Internal(String),
}

impl PluginError {
    /// The kind, as the WIT names it (`invalid-input`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::InvalidInput(_) => "invalid-input",
            PluginError::NotFound(_) => "not-found",
            PluginError::Denied(_) => "denied",
            PluginError::Unavailable(_) => "unavailable",
            PluginError::Timeout(_) => "timeout",
            PluginError::Internal(_) => "internal",
        }
    }

    /// The explanation every case carries.
    pub fn text(&self) -> &str {
        match self {
            PluginError::InvalidInput(text)
            | PluginError::NotFound(text)
            | PluginError::Denied(text)
            | PluginError::Unavailable(text)
            | PluginError::Timeout(text)
            | PluginError::Internal(text) => text,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.text())
    }
}

impl std::error::Error for PluginError {}

/// What a tool says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDescription {
    pub name: String,
    pub description: String,
    /// JSON Schema (as JSON text) of the input the tool accepts.
    pub input_schema: String,
}

/// An entity with its observations, as a plugin reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEntity {
    pub name: String,
    pub entity_type: String,
    pub observations: Vec<String>,
}

/// One search result, as a plugin reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    pub entity: String,
    pub entity_type: String,
    pub observation: String,
    pub score: f32,
}

/// Severity of a plugin's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}
