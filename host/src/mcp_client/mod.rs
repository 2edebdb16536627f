//! MCP servers as tools for Caxton's agents (`[[mcp.servers]]`): each one
//! started (stdio) or reached (Streamable HTTP) and kept connected, its
//! tools called as `<server>/<tool>`. Also `[mcp]` itself, plain data that
//! `config` embeds (the endpoint Caxton serves is the `mcp` module).

pub mod config;
mod servers;

pub use config::{McpConfig, McpServerConfig};
pub use servers::{McpServers, ServerStatus};
