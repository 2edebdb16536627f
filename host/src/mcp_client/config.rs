//! `[mcp]` in caxton.toml: the MCP endpoint, and the MCP servers whose
//! tools agents may call (`[[mcp.servers]]`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration_text;

/// `[mcp]`: the endpoint at `/mcp` and the servers agents may use.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// Serve MCP at `/mcp` (same token as the API).
    /// Default: `true`.
    pub enabled: bool,
    /// Browser origins allowed to call `/mcp` (`"https://app.example.com:443"`,
    /// `"http://localhost:*"`); a request carrying any other `Origin` is
    /// refused. Clients that are not browsers send no `Origin`.
    /// Default: `[]` (no browser page may call).
    pub allowed_origins: Vec<String>,
    /// MCP servers whose tools agents may call as `<server>/<tool>`:
    /// `[[mcp.servers]]`.
    /// Default: `[]`.
    pub servers: Vec<McpServerConfig>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_origins: Vec::new(),
            servers: Vec::new(),
        }
    }
}

/// `[[mcp.servers]]`: one MCP server, started by the host (`command`) or
/// reached over Streamable HTTP (`url`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// What agents call its tools by: `<name>/<tool>` in their `tools`.
    /// Letters, digits, `-` and `_`.
    pub name: String,
    /// The program to start (stdio transport), found on `PATH` unless a path.
    /// Default: none (set `command` or `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments.
    /// Default: `[]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables set for it (the host's own are passed on too).
    /// Default: `{}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The directory it starts in.
    /// Default: the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// A Streamable HTTP endpoint (`http://host:port/mcp`) instead of a command.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name of an environment variable holding the bearer token for `url`.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// A file holding the bearer token for `url` (whitespace trimmed).
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// How long one tool call may take before the agent gets a timeout
    /// (an agent's own `tool_call_timeout` can only shorten it).
    /// Default: `"30s"`.
    #[serde(default = "default_call_timeout", with = "duration_text")]
    pub call_timeout: Duration,
    /// How long starting (or reaching) the server and listing its tools may take.
    /// Default: `"30s"`.
    #[serde(default = "default_call_timeout", with = "duration_text")]
    pub start_timeout: Duration,
    /// Longest wait between restarts of a server that keeps failing (the
    /// wait doubles from 1 s up to this).
    /// Default: `"60s"`.
    #[serde(default = "default_max_backoff", with = "duration_text")]
    pub max_restart_backoff: Duration,
}

fn default_call_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

impl McpConfig {
    /// Mistakes, each at its key (`mcp.servers.<i>.<field>`).
    pub fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, server) in self.servers.iter().enumerate() {
            let at = |field: &str| -> Vec<String> {
                vec!["mcp".into(), "servers".into(), i.to_string(), field.into()]
            };
            let name_ok = !server.name.is_empty()
                && server.name.len() <= 64
                && server
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !name_ok {
                problems.push((
                    at("name"),
                    format!(
                        "{:?} is not a server name: use 1-64 letters, digits, '-' or '_' (agents call its tools as \"<name>/<tool>\")",
                        server.name
                    ),
                ));
            } else if !seen.insert(server.name.clone()) {
                problems.push((
                    at("name"),
                    format!("another [[mcp.servers]] is already named {:?}", server.name),
                ));
            }
            match (&server.command, &server.url) {
                (Some(_), Some(_)) => problems.push((
                    at("url"),
                    "set command (a program the host starts) or url (a server it calls), not both".into(),
                )),
                (None, None) => problems.push((
                    at("name"),
                    format!(
                        "server {:?} needs command = \"...\" (with args) or url = \"http://...\"",
                        server.name
                    ),
                )),
                (Some(command), None) if command.trim().is_empty() => {
                    problems.push((at("command"), "must name a program".into()))
                }
                (None, Some(url)) => match reqwest::Url::parse(url) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    _ => problems.push((
                        at("url"),
                        format!("{url:?} is not an http(s) URL; write e.g. url = \"http://127.0.0.1:8000/mcp\""),
                    )),
                },
                _ => {}
            }
            if server.token_env.is_some() && server.token_file.is_some() {
                problems.push((
                    at("token_file"),
                    "set token_env or token_file, not both".into(),
                ));
            }
            if server.command.is_some()
                && (server.token_env.is_some() || server.token_file.is_some())
            {
                problems.push((
                    at("token_env"),
                    "a token is sent only to a url server; pass a command's credentials in env"
                        .into(),
                ));
            }
            for (field, value) in [
                ("call_timeout", server.call_timeout),
                ("start_timeout", server.start_timeout),
                ("max_restart_backoff", server.max_restart_backoff),
            ] {
                if value.is_zero() {
                    problems.push((at(field), "must be above zero".into()));
                }
            }
        }
        problems
    }
}
