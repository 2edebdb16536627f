//! `caxton:agent@0.2.0` (`wit/v0.2.0/`): 0.1.0 plus `llm`, the
//! conversation's history and the manifest in `context`, and tool
//! descriptions and parallel calls in `tools`.

/// The `agent` world: imports every host interface, exports `handle`.
pub mod agent {
    wasmtime::component::bindgen!({
        path: "wit/v0.2.0",
        world: "caxton:agent/agent",
        imports: { default: async },
        exports: { default: async },
    });
}

/// The `tool` world: imports `log` only, exports `describe` and `invoke`.
pub mod tool {
    wasmtime::component::bindgen!({
        path: "wit/v0.2.0",
        world: "caxton:agent/tool",
        imports: { default: async },
        exports: { default: async },
        with: {
            "caxton:agent/types": super::agent::caxton::agent::types,
            "caxton:agent/log": super::agent::caxton::agent::log,
        },
    });
}

use agent::caxton::agent::{
    context, llm, log as wit_log, memory as wit_memory, messaging as wit_messaging, tools,
    types as wit_types,
};

use crate::runtime::chat;

super::shared::conversions!();
super::shared::unchanged_interfaces!();

impl context::Host for HostState {
    async fn name(&mut self) -> String {
        HostState::name(self)
    }

    async fn parameters(&mut self) -> String {
        HostState::parameters(self)
    }

    async fn manifest(&mut self) -> String {
        HostState::manifest(self)
    }

    async fn history(&mut self, limit: u32) -> Result<Vec<wit_types::Message>, wit_types::Error> {
        let messages = HostState::history(self, limit).await?;
        Ok(messages.into_iter().map(Into::into).collect())
    }
}

impl tools::Host for HostState {
    async fn call(&mut self, name: String, input: String) -> Result<String, wit_types::Error> {
        Ok(self.call_tool(name, input).await?)
    }

    async fn call_parallel(
        &mut self,
        calls: Vec<tools::Invocation>,
    ) -> Vec<Result<String, wit_types::Error>> {
        let calls = calls.into_iter().map(|c| (c.name, c.input)).collect();
        self.call_tools_parallel(calls)
            .await
            .into_iter()
            .map(|result| result.map_err(Into::into))
            .collect()
    }

    async fn available(&mut self) -> Vec<wit_types::ToolDescription> {
        self.available_tools()
            .await
            .into_iter()
            .map(Into::into)
            .collect()
    }
}

impl llm::Host for HostState {
    async fn chat(
        &mut self,
        request: llm::ChatRequest,
    ) -> Result<llm::ChatResponse, wit_types::Error> {
        Ok(HostState::chat(self, request.into()).await?.into())
    }
}

impl From<llm::Role> for chat::ChatRole {
    fn from(role: llm::Role) -> Self {
        match role {
            llm::Role::System => Self::System,
            llm::Role::User => Self::User,
            llm::Role::Assistant => Self::Assistant,
            llm::Role::Tool => Self::Tool,
        }
    }
}

impl From<llm::ToolCall> for chat::ToolCall {
    fn from(call: llm::ToolCall) -> Self {
        Self {
            id: call.id,
            name: call.name,
            arguments: call.arguments,
        }
    }
}

impl From<chat::ToolCall> for llm::ToolCall {
    fn from(call: chat::ToolCall) -> Self {
        Self {
            id: call.id,
            name: call.name,
            arguments: call.arguments,
        }
    }
}

impl From<llm::ChatRequest> for chat::ChatRequest {
    fn from(r: llm::ChatRequest) -> Self {
        Self {
            messages: r
                .messages
                .into_iter()
                .map(|m| chat::ChatMessage {
                    role: m.role.into(),
                    content: m.content,
                    tool_calls: m.tool_calls.into_iter().map(Into::into).collect(),
                    tool_call_id: m.tool_call_id,
                })
                .collect(),
            functions: r
                .functions
                .into_iter()
                .map(|f| chat::FunctionSpec {
                    name: f.name,
                    description: f.description,
                    parameters: f.parameters,
                })
                .collect(),
            tool_choice: r.tool_choice.map(|choice| match choice {
                llm::ToolChoice::Auto => chat::ToolChoice::Auto,
                llm::ToolChoice::None => chat::ToolChoice::None,
                llm::ToolChoice::Required => chat::ToolChoice::Required,
                llm::ToolChoice::Function(name) => chat::ToolChoice::Function(name),
            }),
            parallel_tool_calls: r.parallel_tool_calls,
            response_format: r.response_format.map(|format| match format {
                llm::ResponseFormat::Text => chat::ResponseFormat::Text,
                llm::ResponseFormat::JsonObject => chat::ResponseFormat::JsonObject,
                llm::ResponseFormat::JsonSchema(s) => chat::ResponseFormat::JsonSchema {
                    name: s.name,
                    schema: s.schema,
                    strict: s.strict,
                },
            }),
            max_tokens: r.max_tokens,
            temperature: r.temperature,
            stop: r.stop,
            stream: r.stream,
        }
    }
}

impl From<chat::ChatResponse> for llm::ChatResponse {
    fn from(r: chat::ChatResponse) -> Self {
        Self {
            content: r.content,
            tool_calls: r.tool_calls.into_iter().map(Into::into).collect(),
            finish_reason: match r.finish_reason {
                chat::FinishReason::Stop => llm::FinishReason::Stop,
                chat::FinishReason::Length => llm::FinishReason::Length,
                chat::FinishReason::ToolCalls => llm::FinishReason::ToolCalls,
                chat::FinishReason::ContentFilter => llm::FinishReason::ContentFilter,
                chat::FinishReason::Other => llm::FinishReason::Other,
            },
            usage: llm::Usage {
                prompt_tokens: r.usage.prompt_tokens,
                completion_tokens: r.usage.completion_tokens,
            },
            model: r.model,
        }
    }
}
