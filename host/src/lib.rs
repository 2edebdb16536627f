//! Caxton: an agent host that runs agents and tools as sandboxed
//! WebAssembly components. `DESIGN.md` maps the modules; dependencies
//! point down: cli/api -> agents/messaging -> runtime -> config.

pub mod agents;
pub mod api;
pub mod auth;
#[cfg(feature = "benchmark")]
pub mod benchmark;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod embed;
pub mod harness;
pub mod heap;
pub mod history;
pub mod http;
pub mod llm;
pub mod mcp;
pub mod mcp_client;
pub mod memory;
pub mod messaging;
pub mod metrics;
pub mod priority;
pub mod private_files;
pub mod profiles;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod store;
pub mod toml_check;
pub mod ui;
