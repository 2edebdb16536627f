//! Write Caxton agents and tools in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` against
//! the `caxton:agent` WIT package. This crate carries that package (the
//! version in [`WIT_VERSION`]; it is recorded in every component built with
//! it), generates the bindings, and adds what every plugin would otherwise
//! write by hand:
//!
//! - [`Agent`] and [`export_agent!`]: an agent handles one message per call;
//! - [`Tool`] and [`export_tool!`]: a tool is a function from JSON to JSON,
//!   with its input decoded into your type and its output encoded for you;
//! - [`Message::reply`] and [`Message::reply_json`], which address the reply
//!   to the sender, in the same conversation, answering the message;
//! - [`context::parameters`], the manifest's `[parameters]` as your type;
//! - the host interfaces an agent's manifest can grant: [`memory`],
//!   [`tools`], [`messaging`], [`llm`], and [`log`] (with [`info!`] and
//!   friends).
//!
//! ```ignore
//! use caxton_agent::{Agent, Error, Message};
//!
//! struct Echo;
//!
//! impl Agent for Echo {
//!     fn handle(message: Message) -> Result<Option<Message>, Error> {
//!         Ok(Some(message.reply(message.content.clone())))
//!     }
//! }
//!
//! caxton_agent::export_agent!(Echo);
//! ```

// The generated bindings name this crate by its path, so that the export
// macros, expanded in a plugin's crate, find them; this makes the same
// path work inside the crate.
extern crate self as caxton_agent;

/// The version of the `caxton:agent` WIT package this crate targets. A
/// host refuses a component whose version it does not support, naming it.
pub const WIT_VERSION: &str = "0.2.0";

/// The generated bindings, one module per world. Plugins use the re-exports
/// at the crate root instead.
#[doc(hidden)]
pub mod bindings {
    /// The `agent` world: every host interface, and the `handle` export.
    pub mod agent {
        wit_bindgen::generate!({
            world: "agent",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_agent_world",
            default_bindings_module: "caxton_agent::bindings::agent",
        });
    }

    /// The `tool` world: `log`, and the `describe`/`invoke` exports. Its
    /// types are the agent world's, so a tool and an agent share them.
    pub mod tool {
        wit_bindgen::generate!({
            world: "tool",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_tool_world",
            default_bindings_module: "caxton_agent::bindings::tool",
            with: {
                "caxton:agent/types@0.2.0": caxton_agent::bindings::agent::caxton::agent::types,
                "caxton:agent/log@0.2.0": caxton_agent::bindings::agent::caxton::agent::log,
            },
        });
    }
}

mod message;
#[doc(hidden)]
pub mod tool;

pub mod context;
pub mod logging;

pub use bindings::agent::caxton::agent::{llm, log, memory, messaging, tools, types};
pub use tool::Tool;
pub use types::{Error, Message, Performative, ToolDescription};

/// `serde_json`, re-exported so a plugin's JSON types match the SDK's.
pub use serde_json;

/// An agent: handles one message per call and may reply.
///
/// Return `Ok(Some(reply))` to answer (usually `message.reply(...)`),
/// `Ok(None)` to stay silent, and `Err(error)` to answer the caller with
/// that typed error (`plugin_error`, its kind and text). A panic is a trap: the
/// host answers `plugin_trap` with the panic message and keeps serving.
pub trait Agent {
    fn handle(message: Message) -> Result<Option<Message>, Error>;
}

/// Exports a type implementing [`Agent`] as this component's agent.
/// Use once per crate, with a plain type name.
#[macro_export]
macro_rules! export_agent {
    ($agent:ident) => {
        impl $crate::bindings::agent::Guest for $agent {
            fn handle(
                message: $crate::Message,
            ) -> ::core::result::Result<::core::option::Option<$crate::Message>, $crate::Error>
            {
                <$agent as $crate::Agent>::handle(message)
            }
        }
        $crate::bindings::agent::__export_agent_world!($agent);
    };
}

/// Exports a type implementing [`Tool`] as this component's tool.
/// Use once per crate, with a plain type name.
#[macro_export]
macro_rules! export_tool {
    ($tool:ident) => {
        impl $crate::bindings::tool::Guest for $tool {
            fn describe() -> $crate::ToolDescription {
                $crate::tool::describe::<$tool>()
            }
            fn invoke(
                input: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, $crate::Error> {
                $crate::tool::invoke::<$tool>(&input)
            }
        }
        $crate::bindings::tool::__export_tool_world!($tool);
    };
}

impl Error {
    /// The error's text, whatever its kind.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidInput(m)
            | Error::NotFound(m)
            | Error::Denied(m)
            | Error::Unavailable(m)
            | Error::Timeout(m)
            | Error::Internal(m) => m,
        }
    }
}

/// Malformed JSON is the caller's mistake: `invalid-input`, with serde's
/// line and column.
impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::InvalidInput(error.to_string())
    }
}
