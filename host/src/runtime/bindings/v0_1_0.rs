//! `caxton:agent@0.1.0` (`wit/v0.1.0/`, frozen): the generated bindings,
//! one module per world, and the conversions to Caxton's own types.

/// The `agent` world: imports every host interface, exports `handle`.
pub mod agent {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "caxton:agent/agent",
        imports: { default: async },
        exports: { default: async },
    });
}

/// The `tool` world: imports `log` only, exports `describe` and `invoke`.
/// Shares the agent world's types so one host implementation serves both.
pub mod tool {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "caxton:agent/tool",
        imports: { default: async },
        exports: { default: async },
        with: {
            "caxton:agent/types": super::agent::caxton::agent::types,
            "caxton:agent/log": super::agent::caxton::agent::log,
        },
    });
}

use agent::caxton::agent::{memory, types};

use crate::runtime::types as own;

impl From<types::Performative> for own::Performative {
    fn from(performative: types::Performative) -> Self {
        use types::Performative as P;
        match performative {
            P::Request => Self::Request,
            P::Inform => Self::Inform,
            P::Query => Self::Query,
            P::Propose => Self::Propose,
            P::AcceptProposal => Self::AcceptProposal,
            P::RejectProposal => Self::RejectProposal,
            P::Failure => Self::Failure,
            P::NotUnderstood => Self::NotUnderstood,
        }
    }
}

impl From<own::Performative> for types::Performative {
    fn from(performative: own::Performative) -> Self {
        use own::Performative as P;
        match performative {
            P::Request => Self::Request,
            P::Inform => Self::Inform,
            P::Query => Self::Query,
            P::Propose => Self::Propose,
            P::AcceptProposal => Self::AcceptProposal,
            P::RejectProposal => Self::RejectProposal,
            P::Failure => Self::Failure,
            P::NotUnderstood => Self::NotUnderstood,
        }
    }
}

impl From<types::Message> for own::Message {
    fn from(m: types::Message) -> Self {
        Self {
            id: m.id,
            performative: m.performative.into(),
            sender: m.sender,
            receiver: m.receiver,
            capability: m.capability,
            conversation_id: m.conversation_id,
            reply_with: m.reply_with,
            in_reply_to: m.in_reply_to,
            content: m.content,
        }
    }
}

impl From<own::Message> for types::Message {
    fn from(m: own::Message) -> Self {
        Self {
            id: m.id,
            performative: m.performative.into(),
            sender: m.sender,
            receiver: m.receiver,
            capability: m.capability,
            conversation_id: m.conversation_id,
            reply_with: m.reply_with,
            in_reply_to: m.in_reply_to,
            content: m.content,
        }
    }
}

impl From<types::Error> for own::PluginError {
    fn from(error: types::Error) -> Self {
        use types::Error as E;
        match error {
            E::InvalidInput(t) => Self::InvalidInput(t),
            E::NotFound(t) => Self::NotFound(t),
            E::Denied(t) => Self::Denied(t),
            E::Unavailable(t) => Self::Unavailable(t),
            E::Timeout(t) => Self::Timeout(t),
            E::Internal(t) => Self::Internal(t),
        }
    }
}

impl From<own::PluginError> for types::Error {
    fn from(error: own::PluginError) -> Self {
        use own::PluginError as E;
        match error {
            E::InvalidInput(t) => Self::InvalidInput(t),
            E::NotFound(t) => Self::NotFound(t),
            E::Denied(t) => Self::Denied(t),
            E::Unavailable(t) => Self::Unavailable(t),
            E::Timeout(t) => Self::Timeout(t),
            E::Internal(t) => Self::Internal(t),
        }
    }
}

impl From<types::ToolDescription> for own::ToolDescription {
    fn from(d: types::ToolDescription) -> Self {
        Self {
            name: d.name,
            description: d.description,
            input_schema: d.input_schema,
        }
    }
}

impl From<own::MemoryEntity> for memory::Entity {
    fn from(e: own::MemoryEntity) -> Self {
        Self {
            name: e.name,
            entity_type: e.entity_type,
            observations: e.observations,
        }
    }
}

impl From<own::MemoryHit> for memory::SearchHit {
    fn from(h: own::MemoryHit) -> Self {
        Self {
            entity: h.entity,
            entity_type: h.entity_type,
            observation: h.observation,
            score: h.score,
        }
    }
}
