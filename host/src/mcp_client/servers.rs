//! `[[mcp.servers]]`: MCP servers whose tools agents call as
//! `<server>/<tool>`. Each server has a supervisor task that starts the
//! program (stdio) or connects to the URL (Streamable HTTP), lists its
//! tools, and when the connection ends starts over after a back-off that
//! doubles up to `max_restart_backoff`. Calls never wait on a server that
//! is down: they get `unavailable` at once, and a deadline otherwise.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde::Serialize;
use tokio::sync::watch;

use super::config::McpServerConfig;
use crate::metrics::metrics;
use crate::runtime::{PluginError, ToolDescription};

/// The first wait before a restart; it doubles up to the server's
/// `max_restart_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// A connection that stayed up this long restarts its back-off from the
/// first wait: the failure is new, not the same one again.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Largest tool result read from a server (its JSON).
const MAX_RESULT_BYTES: usize = 4 << 20;

/// Where one server's connection stands.
#[derive(Clone)]
enum Connection {
    Starting,
    Ready {
        peer: Peer<RoleClient>,
        tools: Arc<Vec<Tool>>,
    },
    Down {
        error: String,
        retry_at: Instant,
    },
}

struct Supervised {
    config: McpServerConfig,
    state: watch::Sender<Connection>,
    restarts: AtomicU64,
    /// The child's process id while one runs (stdio servers).
    pid: AtomicU64,
    /// The tools it listed when last connected: still offered to agents
    /// while it is down, so their calls get `unavailable` rather than the
    /// tool vanishing from under them.
    known_tools: std::sync::Mutex<Arc<Vec<Tool>>>,
    since: std::sync::Mutex<SystemTime>,
}

/// One server as `caxton mcp servers` and `GET /api/v1/mcp/servers` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` (the host runs it) or `http`.
    pub transport: &'static str,
    /// `starting`, `ready` or `down`.
    pub state: &'static str,
    pub tools: Vec<String>,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Starts or connections after the first.
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// When it entered this state (RFC 3339).
    pub since: String,
}

/// The configured MCP servers, each kept connected by its own task.
pub struct McpServers {
    servers: BTreeMap<String, Arc<Supervised>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl McpServers {
    /// Starts a supervisor per server; nothing waits for them to connect.
    pub fn start(configs: &[McpServerConfig]) -> Arc<Self> {
        let mut servers = BTreeMap::new();
        let mut tasks = Vec::new();
        for config in configs {
            let supervised = Arc::new(Supervised {
                config: config.clone(),
                state: watch::Sender::new(Connection::Starting),
                restarts: AtomicU64::new(0),
                pid: AtomicU64::new(0),
                known_tools: std::sync::Mutex::default(),
                since: std::sync::Mutex::new(SystemTime::now()),
            });
            metrics()
                .mcp_server_up
                .with_label_values(&[config.name.as_str()])
                .set(0);
            tasks.push(tokio::spawn(supervise(supervised.clone())));
            servers.insert(config.name.clone(), supervised);
        }
        Arc::new(Self { servers, tasks })
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Every server's state, by name.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers
            .values()
            .map(|server| {
                let (state, tools, error) = match &*server.state.borrow() {
                    Connection::Starting => ("starting", Vec::new(), None),
                    Connection::Ready { tools, .. } => (
                        "ready",
                        tools.iter().map(|t| t.name.to_string()).collect(),
                        None,
                    ),
                    Connection::Down { error, .. } => ("down", Vec::new(), Some(error.clone())),
                };
                let pid = server.pid.load(Ordering::Relaxed);
                ServerStatus {
                    name: server.config.name.clone(),
                    transport: if server.config.url.is_some() {
                        "http"
                    } else {
                        "stdio"
                    },
                    state,
                    tools,
                    error,
                    restarts: server.restarts.load(Ordering::Relaxed),
                    pid: (pid > 0).then_some(pid as u32),
                    since: humantime::format_rfc3339_seconds(
                        *server.since.lock().expect("since lock"),
                    )
                    .to_string(),
                }
            })
            .collect()
    }

    /// Whether `qualified` (`<server>/<tool>`) names a configured server.
    pub fn handles(&self, qualified: &str) -> bool {
        split(qualified).is_some_and(|(server, _)| self.servers.contains_key(server))
    }

    /// What `<server>/<tool>` says about itself, as the server listed it
    /// when last connected (nothing before it ever connected).
    pub fn describe(&self, qualified: &str) -> Option<ToolDescription> {
        let (server, tool) = split(qualified)?;
        let server = self.servers.get(server)?;
        let tools = server.known_tools.lock().expect("tools lock").clone();
        let found = tools.iter().find(|t| t.name == tool)?;
        Some(ToolDescription {
            name: qualified.to_owned(),
            description: found.description.as_deref().unwrap_or_default().to_owned(),
            input_schema: serde_json::Value::Object((*found.input_schema).clone()).to_string(),
        })
    }

    /// Calls `<server>/<tool>` with `input` (a JSON object) within
    /// `deadline` (the server's `call_timeout` if shorter). The answer is
    /// the tool's `structuredContent` as JSON, or else its text.
    pub async fn call(
        &self,
        qualified: &str,
        input: &str,
        deadline: Option<Duration>,
    ) -> Result<String, PluginError> {
        let (name, tool) = split(qualified).ok_or_else(|| {
            PluginError::NotFound(format!("{qualified:?} is not `<server>/<tool>`"))
        })?;
        let server = self.servers.get(name).ok_or_else(|| {
            PluginError::NotFound(format!("no [[mcp.servers]] entry is named {name:?}"))
        })?;
        let arguments: JsonObject = serde_json::from_str(input).map_err(|e| {
            PluginError::InvalidInput(format!(
                "input to {qualified} must be a JSON object (MCP tool arguments): {e}"
            ))
        })?;
        let limit = deadline.map_or(server.config.call_timeout, |d| {
            d.min(server.config.call_timeout)
        });
        let started = Instant::now();
        let outcome = tokio::time::timeout(limit, server.call(tool, arguments)).await;
        let outcome = outcome.unwrap_or_else(|_| {
            Err(PluginError::Timeout(format!(
                "MCP server {name:?} did not answer {tool} within {limit:?}"
            )))
        });
        let m = metrics();
        m.mcp_tool_call_duration
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        let label = match &outcome {
            Ok(_) => "ok",
            Err(PluginError::InvalidInput(_)) => "tool_error",
            Err(error) => error.kind(),
        };
        m.mcp_tool_calls.with_label_values(&[name, label]).inc();
        outcome
    }

    /// Stops every supervisor; their child processes are killed as the
    /// connections drop.
    pub fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        for server in self.servers.values() {
            server.stop_process_group(libc::SIGTERM);
        }
    }
}

impl Drop for McpServers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn split(qualified: &str) -> Option<(&str, &str)> {
    qualified
        .split_once('/')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
}

impl Supervised {
    /// Signals a stdio server's process group (the server and whatever it
    /// started), once.
    fn stop_process_group(&self, signal: i32) {
        let pid = self.pid.swap(0, Ordering::Relaxed);
        #[cfg(unix)]
        if let Ok(pid) = i32::try_from(pid)
            && pid > 0
        {
            // SAFETY: kill(2) with a negative pid signals that process group.
            unsafe { libc::kill(-pid, signal) };
        }
        #[cfg(not(unix))]
        let _ = (pid, signal);
    }

    fn set(&self, connection: Connection) {
        let up = matches!(connection, Connection::Ready { .. });
        if let Connection::Ready { tools, .. } = &connection {
            *self.known_tools.lock().expect("tools lock") = tools.clone();
        }
        metrics()
            .mcp_server_up
            .with_label_values(&[self.config.name.as_str()])
            .set(i64::from(up));
        *self.since.lock().expect("since lock") = SystemTime::now();
        self.state.send_replace(connection);
    }

    async fn call(&self, tool: &str, arguments: JsonObject) -> Result<String, PluginError> {
        let name = &self.config.name;
        // A server still starting is waited for (within the caller's
        // deadline); one that is down answers at once.
        let mut state = self.state.subscribe();
        let connection = state
            .wait_for(|c| !matches!(c, Connection::Starting))
            .await
            .map_err(|_| PluginError::Unavailable(format!("MCP server {name:?} was stopped")))?
            .clone();
        let (peer, tools) = match connection {
            Connection::Ready { peer, tools } => (peer, tools),
            Connection::Down { error, retry_at } => {
                let wait = retry_at.saturating_duration_since(Instant::now());
                return Err(PluginError::Unavailable(format!(
                    "MCP server {name:?} is down ({error}); the host restarts it in {:.1}s",
                    wait.as_secs_f64()
                )));
            }
            Connection::Starting => unreachable!("waited for"),
        };
        if !tools.iter().any(|t| t.name == tool) {
            let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
            return Err(PluginError::NotFound(format!(
                "MCP server {name:?} has no tool {tool:?}; it has {names:?}"
            )));
        }
        let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let result = peer.call_tool(request).await.map_err(|error| {
            PluginError::Unavailable(format!(
                "MCP server {name:?} failed the call to {tool}: {error}"
            ))
        })?;
        answer(name, tool, result)
    }
}

/// A tool result as the agent reads it.
fn answer(server: &str, tool: &str, result: CallToolResult) -> Result<String, PluginError> {
    let text: String = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    if result.is_error == Some(true) {
        // The tool ran and said no: the agent's input is the usual cause.
        return Err(PluginError::InvalidInput(format!(
            "{server}/{tool}: {text}"
        )));
    }
    let output = match result.structured_content {
        Some(structured) => structured.to_string(),
        None => text,
    };
    if output.len() > MAX_RESULT_BYTES {
        return Err(PluginError::Internal(format!(
            "{server}/{tool} answered {} bytes; at most {MAX_RESULT_BYTES} are passed to agents",
            output.len()
        )));
    }
    Ok(output)
}

/// Keeps one server connected for as long as the host runs.
async fn supervise(server: Arc<Supervised>) {
    let name = server.config.name.clone();
    let mut backoff = FIRST_BACKOFF;
    let mut first = true;
    loop {
        if !first {
            server.restarts.fetch_add(1, Ordering::Relaxed);
            metrics()
                .mcp_server_restarts
                .with_label_values(&[name.as_str()])
                .inc();
        }
        first = false;
        server.set(Connection::Starting);
        let connected = tokio::time::timeout(server.config.start_timeout, connect(&server)).await;
        let error = match connected {
            Ok(Ok((running, tools))) => {
                tracing::info!(server = %name, tools = tools.len(), "MCP server ready");
                let up_since = Instant::now();
                server.set(Connection::Ready {
                    peer: running.peer().clone(),
                    tools: Arc::new(tools),
                });
                let reason = running.waiting().await;
                // The server is gone; anything it started goes too.
                server.stop_process_group(libc::SIGKILL);
                if up_since.elapsed() > STABLE_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                format!("the connection ended ({reason:?})")
            }
            Ok(Err(error)) => error,
            Err(_) => format!(
                "it did not start and list its tools within {:?} (start_timeout)",
                server.config.start_timeout
            ),
        };
        server.stop_process_group(libc::SIGKILL);
        tracing::warn!(server = %name, %error, retry_in = ?backoff, "MCP server is down");
        server.set(Connection::Down {
            error,
            retry_at: Instant::now() + backoff,
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(server.config.max_restart_backoff);
    }
}

/// Starts or reaches the server and lists its tools.
async fn connect(
    server: &Supervised,
) -> Result<(RunningService<RoleClient, ()>, Vec<Tool>), String> {
    let config = &server.config;
    let running = if let Some(url) = &config.url {
        let mut transport = StreamableHttpClientTransportConfig::with_uri(url.as_str())
            .max_json_response_size(MAX_RESULT_BYTES);
        if let Some(token) = token(config)? {
            transport = transport.auth_header(token);
        }
        crate::llm::install_tls_provider();
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        ().serve(StreamableHttpClientTransport::with_client(
            client, transport,
        ))
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?
    } else {
        let program = config.command.as_deref().unwrap_or_default();
        let mut command = tokio::process::Command::new(program);
        command
            .args(&config.args)
            .envs(&config.env)
            .kill_on_drop(true);
        // Its own process group, so that what it starts (`npx` starts
        // `node`) is stopped with it.
        #[cfg(unix)]
        command.process_group(0);
        if let Some(dir) = &config.cwd {
            command.current_dir(dir);
        }
        let (child, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {program:?}: {e}"))?;
        if let Some(pid) = child.id() {
            server.pid.store(u64::from(pid), Ordering::Relaxed);
        }
        if let Some(stderr) = stderr {
            tokio::spawn(log_stderr(config.name.clone(), stderr));
        }
        ().serve(child)
            .await
            .map_err(|e| format!("{program:?} did not complete the MCP handshake: {e}"))?
    };
    let tools = running
        .peer()
        .list_all_tools()
        .await
        .map_err(|e| format!("listing its tools failed: {e}"))?;
    Ok((running, tools))
}

/// The bearer token for a URL server, from its configured source.
fn token(config: &McpServerConfig) -> Result<Option<String>, String> {
    if let Some(variable) = &config.token_env {
        return std::env::var(variable)
            .map(Some)
            .map_err(|_| format!("token_env names {variable}, which is not set"));
    }
    if let Some(path) = &config.token_file {
        return std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| format!("cannot read token_file {}: {e}", path.display()));
    }
    Ok(None)
}

/// A stdio server's stderr, line by line into the host's log.
async fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(server = %server, "{}", line.chars().take(2000).collect::<String>());
    }
}
