//! Caxton as an MCP server at `/mcp`: its memory (the reference memory
//! server's tools), its deployed tools and its agents, for any MCP client.
//! MCP servers used as tools by Caxton's agents are `mcp_client`.

mod endpoint;
mod memory_tools;
mod server;

pub use endpoint::{McpEndpoint, mount};
pub use server::{ASK_PREFIX, CaxtonMcp, GRAPH_URI};
