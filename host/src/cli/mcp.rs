//! `caxton mcp`: the MCP servers agents use (`servers`), and a stdio
//! bridge to a running server's `/mcp` (`stdio`) for MCP clients that can
//! only start servers as programs.

use std::sync::Arc;

use clap::Subcommand;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

use super::client::{ApiClient, ClientError, ServerArgs};
use super::output;

/// Largest answer the bridge passes on from the server.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// The MCP servers agents use as tools ([[mcp.servers]]) and their state.
    Servers {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Serve MCP on stdin/stdout by forwarding to a running server's /mcp
    /// (for clients that only start stdio servers).
    Stdio {
        /// Act as this agent (its memory scopes) instead of the operator.
        #[arg(long)]
        agent: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl McpCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        match self {
            McpCommand::Servers { server } => servers(server).await,
            McpCommand::Stdio { agent, server } => {
                let path = match agent {
                    Some(agent) => format!(
                        "/mcp?agent={}",
                        percent_encoding::utf8_percent_encode(
                            agent,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    ),
                    None => "/mcp".into(),
                };
                bridge(Arc::new(ApiClient::new(server)), path).await
            }
        }
    }
}

async fn servers(server: &ServerArgs) -> anyhow::Result<()> {
    let answer = ApiClient::new(server)
        .get_json("/api/v1/mcp/servers")
        .await?;
    output::print(server.output, &answer, |answer| {
        let rows: Vec<Vec<String>> = answer["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let tools = s["tools"].as_array().map_or(0, Vec::len);
                vec![
                    output::plain(&s["name"]),
                    output::plain(&s["transport"]),
                    output::plain(&s["state"]),
                    tools.to_string(),
                    output::plain(&s["restarts"]),
                    output::plain(&s["since"]),
                    s["error"].as_str().unwrap_or_default().to_owned(),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no MCP servers are configured; add [[mcp.servers]] to caxton.toml");
        } else {
            output::table(
                &[
                    "NAME",
                    "TRANSPORT",
                    "STATE",
                    "TOOLS",
                    "RESTARTS",
                    "SINCE",
                    "ERROR",
                ],
                &rows,
            );
        }
    });
    Ok(())
}

/// What the bridge keeps between messages: the session of a client that
/// began with `initialize`, the protocol version it agreed, and the
/// handshake itself, replayed when the server has ended an idle session.
#[derive(Default)]
struct Session {
    id: Option<String>,
    version: Option<String>,
    initialize: Option<Value>,
    initialized: Option<Value>,
}

/// Reads JSON-RPC messages from stdin, one per line, POSTs each to `path`
/// and writes every message of each answer to stdout, one per line.
/// Requests run concurrently; `initialize` is answered before the next
/// line is read, since what follows needs its session.
async fn bridge(client: Arc<ApiClient>, path: String) -> anyhow::Result<()> {
    let (out, mut outgoing) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = outgoing.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });
    let session = Arc::new(Mutex::new(Session::default()));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(message) => message,
            Err(error) => {
                let _ = out
                    .send(rpc_error(
                        &Value::Null,
                        -32700,
                        &format!("not JSON: {error}"),
                    ))
                    .await;
                continue;
            }
        };
        {
            let mut kept = session.lock().await;
            match message["method"].as_str() {
                Some("initialize") => kept.initialize = Some(message.clone()),
                Some("notifications/initialized") => kept.initialized = Some(message.clone()),
                _ => {}
            }
        }
        let forward = forward(
            client.clone(),
            path.clone(),
            session.clone(),
            message.clone(),
            out.clone(),
        );
        if message["method"] == "initialize" {
            forward.await;
        } else {
            in_flight.spawn(forward);
        }
        // Finished forwards are reaped as we go.
        while in_flight.try_join_next().is_some() {}
    }
    // The client closed stdin: its last requests are answered, then the
    // session ends as the spec asks.
    while in_flight.join_next().await.is_some() {}
    let id = session.lock().await.id.clone();
    if let Some(id) = id {
        let request = client
            .request(Method::DELETE, &path)
            .header("Mcp-Session-Id", id);
        let _ = client.send(request).await;
    }
    drop(out);
    let _ = writer.await;
    Ok(())
}

/// POSTs `message` with the session's headers.
async fn post(
    client: &ApiClient,
    path: &str,
    session: &Mutex<Session>,
    message: &Value,
) -> Result<reqwest::Response, ClientError> {
    let mut request = client
        .request(Method::POST, path)
        .header("Accept", "application/json, text/event-stream")
        .json(message);
    {
        let session = session.lock().await;
        if let Some(session_id) = &session.id {
            request = request.header("Mcp-Session-Id", session_id);
        }
        let version = message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| session.version.clone());
        if let Some(version) = version {
            request = request.header("MCP-Protocol-Version", version);
        }
    }
    // The 2026-07-28 revision routes on headers that repeat the body.
    if let Some(method) = message["method"].as_str() {
        request = request.header("Mcp-Method", method);
        let name = message["params"]["name"]
            .as_str()
            .or(message["params"]["uri"].as_str());
        if let Some(name) = name {
            request = request.header("Mcp-Name", name);
        }
    }
    let response = client.send(request).await?;
    if let Some(id) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        session.lock().await.id = Some(id.to_owned());
    }
    Ok(response)
}

/// Starts a new session with the client's own handshake, when the server
/// has ended the old one (it does after minutes of quiet). Its answers are
/// not passed on: the client already has them.
async fn reinitialize(client: &ApiClient, path: &str, session: &Mutex<Session>) -> bool {
    let (initialize, initialized) = {
        let mut kept = session.lock().await;
        kept.id = None;
        (kept.initialize.clone(), kept.initialized.clone())
    };
    let Some(initialize) = initialize else {
        return false;
    };
    let Ok(response) = post(client, path, session, &initialize).await else {
        return false;
    };
    let _ = response.bytes().await;
    if let Some(initialized) = initialized {
        let _ = post(client, path, session, &initialized).await;
    }
    tracing::info!("the server had ended the MCP session; started a new one");
    true
}

/// POSTs one message and passes its answer on; a request always gets an
/// answer, the server's or an error.
async fn forward(
    client: Arc<ApiClient>,
    path: String,
    session: Arc<Mutex<Session>>,
    message: Value,
    out: mpsc::Sender<String>,
) {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let is_request = message.get("id").is_some() && message.get("method").is_some();
    let mut sent = post(&client, &path, &session, &message).await;
    let expired = matches!(&sent, Err(ClientError::Api { status: 404, .. }))
        && session.lock().await.id.is_some()
        && message["method"] != "initialize";
    if expired && reinitialize(&client, &path, &session).await {
        sent = post(&client, &path, &session, &message).await;
    }
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            if is_request {
                let code = match error {
                    ClientError::Unreachable { .. } => -32000,
                    _ => -32603,
                };
                let _ = out.send(rpc_error(&id, code, &error.to_string())).await;
            } else {
                tracing::warn!(%error, "the server refused a notification");
            }
            return;
        }
    };
    let event_stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut answered = false;
    let mut failure = None;
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                failure = Some(format!("the server's answer broke off: {error}"));
                break;
            }
        };
        buffer.extend_from_slice(&chunk);
        if buffer.len() > MAX_MESSAGE_BYTES {
            failure = Some("the server's answer is larger than 16 MiB".into());
            break;
        }
        if event_stream {
            while let Some(end) = event_end(&buffer) {
                let event: Vec<u8> = buffer.drain(..end.1).take(end.0).collect();
                if let Some(data) = event_data(&event) {
                    note_version(&session, &message, &data).await;
                    answered |= answers(&data, &id);
                    let _ = out.send(data).await;
                }
            }
        }
    }
    if failure.is_none() && !event_stream && !buffer.is_empty() {
        let text = String::from_utf8_lossy(&buffer).trim().to_owned();
        note_version(&session, &message, &text).await;
        answered |= answers(&text, &id);
        let _ = out.send(text).await;
    }
    if is_request && !answered {
        let reason = failure.unwrap_or_else(|| "the server ended its answer without one".into());
        let _ = out.send(rpc_error(&id, -32603, &reason)).await;
    }
}

/// Whether `text` is the response to request `id`.
fn answers(text: &str, id: &Value) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|message| {
        message.get("id") == Some(id)
            && (message.get("result").is_some() || message.get("error").is_some())
    })
}

/// Where the first complete SSE event in `buffer` ends: (its length, the
/// length with its blank-line terminator).
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| (at, at + 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, at + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The `data:` lines of one SSE event, joined; `None` for events that
/// carry none (keep-alives, priming events).
fn event_data(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    let data = data.join("\n");
    (!data.trim().is_empty()).then_some(data)
}

/// Keeps the protocol version an `initialize` answer agreed.
async fn note_version(session: &Mutex<Session>, message: &Value, answer: &str) {
    if message["method"] != "initialize" {
        return;
    }
    if let Ok(answer) = serde_json::from_str::<Value>(answer)
        && let Some(version) = answer["result"]["protocolVersion"].as_str()
    {
        session.lock().await.version = Some(version.to_owned());
    }
}

fn rpc_error(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_at_blank_lines_and_keep_only_their_data() {
        let stream = b"id: 0\nretry: 3000\ndata:\n\nevent: message\ndata: {\"a\":1}\n\n: ping\n\n";
        let mut buffer = stream.to_vec();
        let mut events = Vec::new();
        while let Some(end) = event_end(&buffer) {
            let event: Vec<u8> = buffer.drain(..end.1).take(end.0).collect();
            events.push(event_data(&event));
        }
        assert_eq!(events, vec![None, Some("{\"a\":1}".to_owned()), None]);
        assert!(buffer.is_empty());
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some((7, 11)));
    }
}
