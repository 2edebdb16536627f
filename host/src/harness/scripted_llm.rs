//! A scripted OpenAI-compatible provider on loopback, for the protocol
//! cases a real model cannot be steered into: tool-call loops, parallel
//! calls, malformed arguments, 429 with Retry-After, 500s, a server that
//! hangs, one that answers 10 MB. Each `POST /v1/chat/completions` takes
//! the next scripted answer (the last one repeats) and every request body
//! is kept for the test to inspect. This is a stand-in, not a model: the
//! end-to-end tests with a real model are in `tests/clients.rs`. The
//! benchmark uses it too, as an instant provider, to measure the host's
//! own cost per turn.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A `chat.completion` with this text.
    Text(&'static str),
    /// A `chat.completion` whose message calls tools: (id, name, arguments).
    Calls(Vec<(&'static str, &'static str, &'static str)>),
    /// A status with a body and optional `Retry-After` seconds.
    Status(u16, &'static str, Option<u32>),
    /// Never answers (the connection stays open).
    Hang,
    /// A 200 whose body is this many bytes of JSON-ish padding.
    Huge(usize),
    /// A streamed answer of these text pieces (when the request streams;
    /// otherwise their concatenation as one completion).
    Pieces(Vec<&'static str>),
}

struct Script {
    answers: VecDeque<Answer>,
    last: Option<Answer>,
    requests: Vec<Value>,
    /// Between the pieces of a streamed answer.
    piece_delay: Duration,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            answers: VecDeque::new(),
            last: None,
            requests: Vec::new(),
            // Apart in time, so a client sees them arrive one by one.
            piece_delay: Duration::from_millis(30),
        }
    }
}

pub struct ScriptedLlm {
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedLlm {
    /// Starts the provider with `answers` (the last repeats forever).
    pub async fn start(answers: Vec<Answer>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            ..Script::default()
        }));
        let shared = script.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                // Small writes go out at once: with Nagle's algorithm a
                // reply's second write waits on the client's delayed ACK.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Self { url, script, task }
    }

    /// Replaces what is left of the script.
    pub fn script(&self, answers: Vec<Answer>) {
        let mut script = self.script.lock().unwrap();
        script.answers = answers.into();
        script.last = None;
    }

    /// Sets the pause between the pieces of a streamed answer.
    pub fn set_piece_delay(&self, delay: Duration) {
        self.script.lock().unwrap().piece_delay = delay;
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.script.lock().unwrap().requests.clear();
    }

    /// The chat request bodies received so far, in order; the request's
    /// `Authorization` header, if any, is added as `_authorization`.
    pub fn requests(&self) -> Vec<Value> {
        self.script.lock().unwrap().requests.clone()
    }

    /// `[llm]` config text making this the default provider with `model`.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[memory.embedding_config]\nenabled = false\n[llm]\ndefault_provider = \"scripted\"\n[llm.providers.scripted]\nbase_url = \"{}\"\nmodel = \"scripted-model\"\nretry_backoff = \"50ms\"\n{extra}\n",
            self.url
        )
    }
}

async fn serve(mut stream: TcpStream, script: Arc<Mutex<Script>>) {
    loop {
        let Some((path, authorization, body)) = read_request(&mut stream).await else {
            return;
        };
        if path.ends_with("/models") {
            let models =
                json!({"object": "list", "data": [{"id": "scripted-model", "object": "model"}]});
            if respond(&mut stream, 200, &models.to_string(), None)
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let streaming = request["stream"] == true;
        // Kept beside the body for tests of the key: not a wire field.
        if let (Some(authorization), Value::Object(fields)) = (authorization, &mut request) {
            fields.insert("_authorization".into(), Value::String(authorization));
        }
        let (answer, piece_delay) = {
            let mut script = script.lock().unwrap();
            script.requests.push(request);
            let next = script.answers.pop_front();
            if let Some(answer) = &next {
                script.last = Some(answer.clone());
            }
            let answer = next
                .or_else(|| script.last.clone())
                .unwrap_or(Answer::Text("(script empty)"));
            (answer, script.piece_delay)
        };
        let sent = match answer {
            Answer::Text(text) => respond(&mut stream, 200, &completion(text, &[]), None).await,
            Answer::Calls(calls) => respond(&mut stream, 200, &completion("", &calls), None).await,
            Answer::Status(status, body, retry) => respond(&mut stream, status, body, retry).await,
            Answer::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Answer::Huge(bytes) => {
                let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes));
                respond(&mut stream, 200, &body, None).await
            }
            Answer::Pieces(pieces) if streaming => {
                stream_pieces(&mut stream, &pieces, piece_delay).await
            }
            Answer::Pieces(pieces) => {
                respond(&mut stream, 200, &completion(&pieces.concat(), &[]), None).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn completion(text: &str, calls: &[(&str, &str, &str)]) -> String {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": text});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
        message["content"] = Value::Null;
    }
    json!({
        "id": "scripted",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message,
            "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
    })
    .to_string()
}

async fn stream_pieces(
    stream: &mut TcpStream,
    pieces: &[&str],
    delay: Duration,
) -> std::io::Result<()> {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    let mut events: Vec<String> = pieces
        .iter()
        .map(|p| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})
            )
        })
        .collect();
    events.push(format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    events.push(format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": pieces.len()}})
    ));
    for event in events {
        stream
            .write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
            .await?;
        stream.flush().await?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    stream.write_all(b"0\r\n\r\n").await
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    retry_after: Option<u32>,
) -> std::io::Result<()> {
    let retry = retry_after
        .map(|s| format!("retry-after: {s}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}\r\n",
        body.len()
    );
    // One write: head and body in one segment when they fit.
    stream.write_all(format!("{head}{body}").as_bytes()).await
}

/// Reads one request: its path, its `Authorization` header and its body
/// (Content-Length bodies only, as reqwest sends them).
async fn read_request(stream: &mut TcpStream) -> Option<(String, Option<String>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let header = |wanted: &str| {
        head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let authorization = header("authorization");
    let mut body = buffer[header_end..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some((path, authorization, body))
}
