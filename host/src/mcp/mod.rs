//! The Model Context Protocol, both ways: Caxton as an MCP server at
//! `/mcp` (its memory, tools and agents for any MCP client), and MCP
//! servers as tools for Caxton's agents (`[[mcp.servers]]`).

pub mod config;
mod endpoint;
mod memory_tools;
mod server;
mod servers;

pub use config::{McpConfig, McpServerConfig};
pub use endpoint::{MCP_PATH, McpEndpoint, mount};
pub use server::{ASK_PREFIX, CaxtonMcp, GRAPH_URI};
pub use servers::{McpServers, ServerStatus};
