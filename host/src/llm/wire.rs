//! The OpenAI-compatible wire format of `POST /chat/completions`: the
//! request body built from Caxton's [`ChatRequest`], and the answer read
//! back, whole or as a stream of server-sent-event chunks.

use serde_json::{Map, Value, json};

use crate::runtime::{
    ChatMessage, ChatRequest, ChatRole, FinishReason, ResponseFormat, TokenUsage, ToolCall,
    ToolChoice,
};

/// The request body for `model`, with the agent's defaults already filled
/// into `request`; [`stream_body`] turns it into a streamed request.
pub fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "messages".into(),
        Value::Array(request.messages.iter().map(message_json).collect()),
    );
    if !request.functions.is_empty() {
        let tools: Vec<Value> = request
            .functions
            .iter()
            .map(|f| {
                json!({
                    "type": "function",
                    "function": {
                        "name": f.name,
                        "description": f.description,
                        "parameters": serde_json::from_str::<Value>(&f.parameters)
                            .unwrap_or_else(|_| json!({"type": "object"})),
                    }
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(parallel) = request.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
    if let Some(choice) = &request.tool_choice {
        body.insert(
            "tool_choice".into(),
            match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => {
                    json!({"type": "function", "function": {"name": name}})
                }
            },
        );
    }
    if let Some(format) = &request.response_format {
        body.insert(
            "response_format".into(),
            match format {
                ResponseFormat::Text => json!({"type": "text"}),
                ResponseFormat::JsonObject => json!({"type": "json_object"}),
                ResponseFormat::JsonSchema {
                    name,
                    schema,
                    strict,
                } => json!({
                    "type": "json_schema",
                    "json_schema": {
                        "name": name,
                        "schema": serde_json::from_str::<Value>(schema).unwrap_or(json!({})),
                        "strict": strict,
                    }
                }),
            },
        );
    }
    if let Some(max_tokens) = request.max_tokens {
        body.insert("max_tokens".into(), json!(max_tokens));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    Value::Object(body)
}

/// Asks for the answer as a stream of chunks, with usage at the end.
pub fn stream_body(body: &mut Value) {
    if let Value::Object(fields) = body {
        fields.insert("stream".into(), json!(true));
        fields.insert("stream_options".into(), json!({"include_usage": true}));
    }
}

fn message_json(message: &ChatMessage) -> Value {
    let role = match message.role {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
        ChatRole::Tool => "tool",
    };
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    if message.role == ChatRole::Assistant
        && !message.tool_calls.is_empty()
        && message.content.is_empty()
    {
        out.insert("content".into(), Value::Null);
    } else {
        out.insert("content".into(), json!(message.content));
    }
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &message.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
    }
    Value::Object(out)
}

/// Tool calls read from one answer at most.
const MAX_TOOL_CALLS: usize = 256;

/// An answer as the provider gave it (the model name is added later).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<FinishReason>,
    pub usage: TokenUsage,
}

/// Reads a non-streaming `chat.completion` body.
pub fn parse_completion(body: &[u8]) -> Result<Answer, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not JSON ({e}): {}", preview(body)))?;
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| format!("the answer has no choices: {}", preview(body)))?;
    let message = choice
        .get("message")
        .ok_or_else(|| format!("the answer's choice has no message: {}", preview(body)))?;
    let content = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            // As many as a stream may carry: a model cannot make the host
            // allocate without bound by the count.
            calls
                .iter()
                .take(MAX_TOOL_CALLS)
                .enumerate()
                .map(|(i, c)| tool_call(c, i))
                .collect()
        })
        .unwrap_or_default();
    Ok(Answer {
        content,
        tool_calls,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(FinishReason::from_wire),
        usage: usage(&value),
    })
}

fn tool_call(call: &Value, index: usize) -> ToolCall {
    let function = call.get("function");
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let arguments = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(s)) => s.clone(),
        // Some servers send the arguments as an object, not as text.
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let id = text(call.get("id"));
    ToolCall {
        id: if id.is_empty() {
            format!("call_{index}")
        } else {
            id
        },
        name: text(function.and_then(|f| f.get("name"))),
        arguments,
    }
}

fn usage(value: &Value) -> TokenUsage {
    let count = |key: &str| {
        value
            .get("usage")
            .and_then(|u| u.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32
    };
    TokenUsage {
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    }
}

/// The start of a body, for error messages.
pub fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.chars().filter(|c| !c.is_control()).collect()
}

/// An answer assembled from `chat.completion.chunk` events.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    answer: Answer,
    /// Tool calls by their index in the stream.
    calls: Vec<ToolCall>,
    buffer: Vec<u8>,
    done: bool,
}

impl StreamAssembler {
    /// Feeds raw bytes of the event stream; returns the new text, if any.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<String, String> {
        self.buffer.extend_from_slice(bytes);
        let mut text = String::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let Some(data) = line.strip_prefix("data:") else {
                continue; // comments, event names, blank separators
            };
            let data = data.trim();
            if data == "[DONE]" {
                self.done = true;
                continue;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).map_err(|e| {
                format!(
                    "a stream event is not JSON ({e}): {}",
                    preview(data.as_bytes())
                )
            })?;
            if let Some(error) = chunk.get("error") {
                return Err(format!(
                    "the provider reported an error mid-stream: {error}"
                ));
            }
            text.push_str(&self.chunk(&chunk));
        }
        Ok(text)
    }

    fn chunk(&mut self, chunk: &Value) -> String {
        if chunk.get("usage").is_some_and(|u| !u.is_null()) {
            self.answer.usage = usage(chunk);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return String::new();
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.answer.finish_reason = Some(FinishReason::from_wire(reason));
        }
        let Some(delta) = choice.get("delta") else {
            return String::new();
        };
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            // A model cannot make the host allocate without bound by index.
            if index >= MAX_TOOL_CALLS {
                continue;
            }
            while self.calls.len() <= index {
                self.calls.push(ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
            }
            let slot = &mut self.calls[index];
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                slot.id = id.to_owned();
            }
            if let Some(function) = call.get("function") {
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    slot.name.push_str(name);
                }
                if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
                    slot.arguments.push_str(arguments);
                }
            }
        }
        let text = delta
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.answer.content.push_str(text);
        text.to_owned()
    }

    /// Whether `[DONE]` arrived.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// The whole answer.
    pub fn answer(mut self) -> Answer {
        for (index, call) in self.calls.iter_mut().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{index}");
            }
        }
        // A gap in the stream's indices leaves nameless calls: not calls.
        self.answer.tool_calls = self
            .calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .collect();
        self.answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_answer_is_assembled_from_split_chunks() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"csv\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut assembler = StreamAssembler::default();
        let mut text = String::new();
        // Byte by byte: events split anywhere still parse.
        for byte in stream.as_bytes() {
            text.push_str(&assembler.feed(&[*byte]).unwrap());
        }
        assert_eq!(text, "Hello");
        assert!(assembler.finished());
        let answer = assembler.answer();
        assert_eq!(answer.content, "Hello");
        assert_eq!(answer.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(
            answer.tool_calls,
            vec![ToolCall {
                id: "c1".into(),
                name: "csv".into(),
                arguments: "{\"a\":1}".into()
            }]
        );
        assert_eq!(answer.usage.prompt_tokens, 7);
        assert_eq!(answer.usage.completion_tokens, 3);
    }

    #[test]
    fn a_completion_with_object_arguments_keeps_them_as_text() {
        let body = br#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"x","function":{"name":"f","arguments":{"q":1}}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let answer = parse_completion(body).unwrap();
        assert_eq!(answer.tool_calls[0].arguments, r#"{"q":1}"#);
        assert_eq!(answer.content, "");
        assert!(
            parse_completion(b"<html>")
                .unwrap_err()
                .contains("not JSON")
        );
    }
}
