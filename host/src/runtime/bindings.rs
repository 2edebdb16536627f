//! Host-side bindings generated from `wit/`, one module per world. When the
//! WIT package gets a new version, its bindings go in a sibling module so
//! plugins built against the old one keep loading.

/// The `agent` world: imports every host interface, exports `handle`.
pub mod agent {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "caxton:agent/agent",
        imports: { default: async },
        exports: { default: async },
    });
}

/// The `tool` world: imports `log` only, exports `describe` and `invoke`.
/// Shares the agent world's types so one host implementation serves both.
pub mod tool {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "caxton:agent/tool",
        imports: { default: async },
        exports: { default: async },
        with: {
            "caxton:agent/types": super::agent::caxton::agent::types,
            "caxton:agent/log": super::agent::caxton::agent::log,
        },
    });
}

pub use agent::caxton::agent::memory::{Entity as WitEntity, SearchHit as WitSearchHit};
pub use agent::caxton::agent::types::{Error as WitError, Message, Performative, ToolDescription};

/// The WIT package name every host interface lives under.
pub const PACKAGE: &str = "caxton:agent";

/// Host interfaces a plugin can be granted, as named in manifests.
pub const GRANTABLE_INTERFACES: [&str; 4] = ["log", "memory", "tools", "messaging"];
