//! The prompt agent: runs every *configuration agent* (a manifest with a
//! `system_prompt` and no component). Built into the caxton binary and
//! sandboxed like any agent; everything it may do comes from the grants
//! the host derived from the manifest.
//!
//! One turn: system prompt → memory recall (when `[memory] enabled`) →
//! the conversation's history, trimmed to `max_context_length` tokens →
//! the manifest's tools (and agents) offered as functions → `llm.chat` →
//! tool calls run and fed back → repeat until an answer or `max_steps` →
//! reply `inform` with the answer (or `failure` after `max_steps`).

use caxton_agent::llm::{self, ChatMessage, ChatRequest, Function, Role, ToolCall};
use caxton_agent::{Agent, Error, Message, Performative, context, log, memory, messaging, tools};
use serde::Deserialize;
use serde_json::{Value, json};

/// Model calls per turn when the manifest does not say.
const DEFAULT_MAX_STEPS: u32 = 8;
/// Tokens of prompt kept when the manifest does not say.
const DEFAULT_CONTEXT_TOKENS: u32 = 4096;
/// History messages read at most (then trimmed to the token budget).
const HISTORY_MESSAGES: u32 = 64;
/// A tool's output fed back to the model is cut to this many bytes.
const MAX_TOOL_RESULT: usize = 16 * 1024;
/// Functions that ask another agent are named with this prefix.
const ASK_PREFIX: &str = "ask_";
/// What stands for the `/` of an MCP server's tool (`files/read_file`) in
/// a function name: providers allow only letters, digits, `_` and `-`.
const SERVER_SEPARATOR: &str = "__";

/// The function name the model calls tool `tool` by: what providers
/// accept (`^[A-Za-z0-9_-]{1,64}$`), `/` written `__`, a long name cut
/// with a hash of the whole so that two long names stay apart.
fn function_name(tool: &str) -> String {
    let name: String = tool
        .replace('/', SERVER_SEPARATOR)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.len() <= 64 {
        return name;
    }
    // FNV-1a: stable across builds, unlike the std hasher.
    let hash = tool.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}_{:08x}", &name[..55], hash as u32)
}
/// Calls run from one model answer at most; the rest are answered with an
/// error (a model asking for hundreds would drain the instance pool).
const MAX_CALLS_PER_STEP: usize = 16;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Manifest {
    name: String,
    system_prompt: Option<String>,
    tools: Vec<String>,
    agents: Vec<String>,
    memory: MemorySettings,
    parameters: Parameters,
    performance: Performance,
    resource_limits: Limits,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemorySettings {
    enabled: bool,
    search_limit: u32,
    auto_store: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Parameters {
    max_context_length: Option<u32>,
    max_steps: Option<u32>,
}

#[derive(Deserialize)]
#[serde(default)]
struct Performance {
    parallel_tool_calls: bool,
    response_streaming: bool,
}

impl Default for Performance {
    fn default() -> Self {
        Self {
            parallel_tool_calls: true,
            response_streaming: true,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Limits {
    tool_call_timeout_ms: Option<u32>,
}

/// What the sender asked: text, or (from the OpenAI-compatible front) a
/// whole chat the client keeps itself.
enum Input {
    Text(String),
    Chat(Vec<ChatMessage>),
}

/// The user's text in a message's content: a JSON string, or an object's
/// `text` / `question` / `prompt` / `content`, or the JSON as written.
fn text_of(content: &str) -> String {
    match serde_json::from_str::<Value>(content) {
        Ok(Value::String(text)) => text,
        Ok(Value::Object(object)) => ["text", "question", "prompt", "content", "answer", "message"]
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| content.to_owned()),
        _ => content.to_owned(),
    }
}

fn input_of(content: &str) -> Input {
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(content)
        && let Some(Value::Array(messages)) = object.get("messages")
    {
        let chat = messages
            .iter()
            .filter_map(|m| {
                let role = match m.get("role")?.as_str()? {
                    "system" | "developer" => Role::System,
                    "assistant" => Role::Assistant,
                    "user" => Role::User,
                    _ => return None,
                };
                let content = match m.get("content")? {
                    Value::String(text) => text.clone(),
                    // Content parts: keep the text ones.
                    Value::Array(parts) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => return None,
                };
                Some(text_message(role, content))
            })
            .collect();
        return Input::Chat(chat);
    }
    Input::Text(text_of(content))
}

fn text_message(role: Role, content: String) -> ChatMessage {
    ChatMessage {
        role,
        content,
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

/// A rough token count (four characters a token, as English runs): the
/// host does not ship the model's tokenizer, and the budget is a guard,
/// not an exact fit.
fn tokens(text: &str) -> u32 {
    (text.len() as u32).div_ceil(4) + 4
}

/// The function an agent in `agents = [...]` is offered as.
fn ask_function(agent: &str) -> Function {
    Function {
        name: format!("{ASK_PREFIX}{}", agent.replace('-', "_")),
        description: format!("Ask the agent {agent} and get its answer."),
        parameters: json!({
            "type": "object",
            "properties": {"message": {"type": "string", "description": "What to ask"}},
            "required": ["message"]
        })
        .to_string(),
    }
}

struct Turn {
    manifest: Manifest,
    functions: Vec<Function>,
    /// The tools offered, by the function name the model calls them by.
    tool_names: Vec<(String, String)>,
    tools_used: Vec<String>,
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl Turn {
    /// The system prompt, with what memory knows about the question.
    fn system(&self, question: &str) -> String {
        let mut system = self.manifest.system_prompt.clone().unwrap_or_default();
        if self.manifest.memory.enabled && !question.is_empty() {
            let limit = self.manifest.memory.search_limit.clamp(1, 50);
            match memory::search(question, limit) {
                Ok(hits) if !hits.is_empty() => {
                    system.push_str("\n\nRelevant facts from memory:");
                    for hit in hits {
                        system.push_str(&format!(
                            "\n- {} ({}): {}",
                            hit.entity, hit.entity_type, hit.observation
                        ));
                    }
                }
                Ok(_) => {}
                // Recall is help, not a requirement: answer without it.
                Err(error) => log::log(
                    log::Level::Warn,
                    &format!("memory recall skipped: {error:?}"),
                ),
            }
        }
        system
    }

    /// The earlier messages of this conversation as chat, newest kept
    /// within `budget` tokens.
    fn history(&self, budget: u32) -> Vec<ChatMessage> {
        let earlier = match context::history(HISTORY_MESSAGES) {
            Ok(messages) => messages,
            Err(error) => {
                log::log(log::Level::Warn, &format!("history unavailable: {error:?}"));
                return Vec::new();
            }
        };
        let mut kept = Vec::new();
        let mut used = 0;
        for message in earlier.iter().rev() {
            if matches!(
                message.performative,
                Performative::Failure | Performative::NotUnderstood
            ) {
                continue;
            }
            let (role, text) = if message.sender == self.manifest.name {
                (Role::Assistant, text_of(&message.content))
            } else {
                (Role::User, text_of(&message.content))
            };
            used += tokens(&text);
            if used > budget {
                break;
            }
            kept.push(text_message(role, text));
        }
        kept.reverse();
        kept
    }

    /// Runs the model's calls and returns one `tool` message per call.
    fn run_calls(&mut self, calls: &[ToolCall]) -> Vec<ChatMessage> {
        let mut results: Vec<Option<String>> = vec![None; calls.len()];
        let mut batch = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            if index >= MAX_CALLS_PER_STEP {
                results[index] = Some(format!(
                    "error: at most {MAX_CALLS_PER_STEP} calls run per answer; call {} again in the next one",
                    call.name
                ));
                continue;
            }
            let input = match serde_json::from_str::<Value>(&call.arguments) {
                Ok(value @ Value::Object(_)) => value,
                Ok(Value::Null) if call.arguments.trim() == "null" => json!({}),
                _ if call.arguments.trim().is_empty() => json!({}),
                Ok(_) | Err(_) => {
                    results[index] = Some(format!(
                        "error: the arguments of {} are not a JSON object: {}. Call it again with a JSON object matching its parameters.",
                        call.name, call.arguments
                    ));
                    continue;
                }
            };
            if let Some(agent) = self.agent_of(&call.name) {
                self.tools_used.push(call.name.clone());
                results[index] = Some(self.ask(&agent, &input));
            } else if let Some((_, tool)) = self.tool_names.iter().find(|(f, _)| *f == call.name) {
                self.tools_used.push(tool.clone());
                batch.push((index, tool.clone(), input.to_string()));
            } else {
                let known: Vec<&str> = self.functions.iter().map(|f| f.name.as_str()).collect();
                results[index] = Some(format!(
                    "error: there is no function named {:?}; the functions are {known:?}",
                    call.name
                ));
            }
        }
        let outputs: Vec<Result<String, _>> =
            if self.manifest.performance.parallel_tool_calls && batch.len() > 1 {
                let invocations: Vec<tools::Invocation> = batch
                    .iter()
                    .map(|(_, name, input)| tools::Invocation {
                        name: name.clone(),
                        input: input.clone(),
                    })
                    .collect();
                tools::call_parallel(&invocations)
            } else {
                batch
                    .iter()
                    .map(|(_, name, input)| tools::call(name, input))
                    .collect()
            };
        for ((index, name, _), output) in batch.iter().zip(outputs) {
            results[*index] = Some(match output {
                Ok(output) => output,
                Err(error) => format!("error: tool {name} failed: {error:?}"),
            });
        }
        calls
            .iter()
            .zip(results)
            .map(|(call, result)| {
                let mut content = result.unwrap_or_default();
                if content.len() > MAX_TOOL_RESULT {
                    let mut cut = MAX_TOOL_RESULT;
                    while !content.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    content.truncate(cut);
                    content.push_str(" …(cut)");
                }
                ChatMessage {
                    role: Role::Tool,
                    content,
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id.clone()),
                }
            })
            .collect()
    }

    /// The agent a function name asks, if it is one of `agents`.
    fn agent_of(&self, function: &str) -> Option<String> {
        let wanted = function.strip_prefix(ASK_PREFIX)?;
        self.manifest
            .agents
            .iter()
            .find(|a| a.replace('-', "_") == wanted)
            .cloned()
    }

    fn ask(&self, agent: &str, input: &Value) -> String {
        let question = input
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| input.to_string());
        let message = Message::to_agent(agent, Value::String(question).to_string());
        let timeout = self
            .manifest
            .resource_limits
            .tool_call_timeout_ms
            .unwrap_or(30_000);
        match messaging::request(&message, timeout) {
            Ok(answer) => text_of(&answer.content),
            Err(error) => format!("error: agent {agent} did not answer: {error:?}"),
        }
    }
}

struct PromptAgent;

impl Agent for PromptAgent {
    fn handle(message: Message) -> Result<Option<Message>, Error> {
        let manifest: Manifest = serde_json::from_value(context::manifest()?)
            .map_err(|e| Error::Internal(format!("the host's manifest JSON: {e}")))?;
        let budget = manifest
            .parameters
            .max_context_length
            .unwrap_or(DEFAULT_CONTEXT_TOKENS);
        let max_steps = manifest.parameters.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
        let stream = manifest.performance.response_streaming;
        let tool_descriptions = if manifest.tools.is_empty() {
            Vec::new()
        } else {
            tools::available()
        };
        // One function name per tool: two tools that write the same name
        // (`a__b/c`, `a/b__c`) are told apart by a suffix.
        let mut tool_names: Vec<(String, String)> = Vec::new();
        for tool in &tool_descriptions {
            let base = function_name(&tool.name);
            let mut name = base.clone();
            let mut n = 2;
            while tool_names.iter().any(|(f, _)| *f == name) {
                name = format!("{}_{n}", &base[..base.len().min(60)]);
                n += 1;
            }
            tool_names.push((name, tool.name.clone()));
        }
        let mut turn = Turn {
            functions: tool_descriptions
                .iter()
                .zip(&tool_names)
                .map(|(t, (name, _))| Function {
                    name: name.clone(),
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                })
                .chain(manifest.agents.iter().map(|a| ask_function(a)))
                .collect(),
            tool_names,
            tools_used: Vec::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            manifest,
        };

        let input = input_of(&message.content);
        let question = match &input {
            Input::Text(text) => text.clone(),
            Input::Chat(chat) => chat
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.clone())
                .unwrap_or_default(),
        };
        let system = turn.system(&question);
        let mut messages = vec![text_message(Role::System, system.clone())];
        match input {
            Input::Text(text) => {
                let left = budget.saturating_sub(tokens(&system) + tokens(&text));
                messages.extend(turn.history(left));
                messages.push(text_message(Role::User, text));
            }
            // The client keeps this chat's history; its own system
            // messages come after the agent's.
            Input::Chat(chat) => messages.extend(chat),
        }

        for step in 1..=max_steps {
            let answer = llm::chat(&ChatRequest {
                messages: messages.clone(),
                functions: turn.functions.clone(),
                tool_choice: None,
                parallel_tool_calls: (!turn.functions.is_empty())
                    .then_some(turn.manifest.performance.parallel_tool_calls),
                response_format: None,
                max_tokens: None,
                temperature: None,
                stop: Vec::new(),
                stream,
            })?;
            turn.prompt_tokens = turn
                .prompt_tokens
                .saturating_add(answer.usage.prompt_tokens);
            turn.completion_tokens = turn
                .completion_tokens
                .saturating_add(answer.usage.completion_tokens);
            if answer.tool_calls.is_empty() {
                if turn.manifest.memory.auto_store && turn.manifest.memory.enabled {
                    let entity = format!(
                        "conversation-{}",
                        message.conversation_id.as_deref().unwrap_or("none")
                    );
                    let observations = [
                        format!("{} asked: {question}", message.sender),
                        format!("{} answered: {}", turn.manifest.name, answer.content),
                    ];
                    if let Err(error) = memory::remember(&entity, "conversation", &observations) {
                        log::log(log::Level::Warn, &format!("auto_store failed: {error:?}"));
                    }
                }
                return Ok(Some(
                    message.reply_as(
                        Performative::Inform,
                        json!({
                            "answer": answer.content,
                            "model": answer.model,
                            "steps": step,
                            "tools_used": turn.tools_used,
                            "usage": {
                                "prompt_tokens": turn.prompt_tokens,
                                "completion_tokens": turn.completion_tokens,
                            },
                        })
                        .to_string(),
                    ),
                ));
            }
            messages.push(ChatMessage {
                role: Role::Assistant,
                content: answer.content.clone(),
                tool_calls: answer.tool_calls.clone(),
                tool_call_id: None,
            });
            let results = turn.run_calls(&answer.tool_calls);
            messages.extend(results);
        }
        Ok(Some(message.reply_as(
            Performative::Failure,
            json!({
                "error": format!(
                    "no answer after {max_steps} model calls (parameters.max_steps); the model kept calling tools"
                ),
                "tools_used": turn.tools_used,
            })
            .to_string(),
        )))
    }
}

caxton_agent::export_agent!(PromptAgent);
