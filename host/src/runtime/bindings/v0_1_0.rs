//! `caxton:agent@0.1.0` (`wit/v0.1.0/`, frozen): the generated bindings,
//! one module per world, the conversions to Caxton's own types, and the
//! host side of its imports.

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

use agent::caxton::agent::{
    context, log as wit_log, memory as wit_memory, messaging as wit_messaging, tools,
    types as wit_types,
};

super::shared::conversions!();
super::shared::unchanged_interfaces!();

impl context::Host for HostState {
    async fn name(&mut self) -> String {
        HostState::name(self)
    }

    async fn parameters(&mut self) -> String {
        HostState::parameters(self)
    }
}

impl tools::Host for HostState {
    async fn call(&mut self, name: String, input: String) -> Result<String, wit_types::Error> {
        Ok(self.call_tool(name, input).await?)
    }
}
