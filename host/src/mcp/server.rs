//! The MCP server behind `/mcp`: the memory tools, every deployed tool
//! component (its `describe` is the input schema), every agent as an
//! `ask_<agent>` tool, and the knowledge graph as a resource. A client
//! acts as the operator, or as the agent named by `?agent=` in the URL
//! (that agent's memory scopes then apply).

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::memory_tools::{self, Failure};
use crate::api::ApiState;
use crate::memory::Caller;
use crate::runtime::PluginError;

/// The knowledge graph's resource URI (the reference server's).
pub const GRAPH_URI: &str = "memory://knowledge-graph";
/// Agents are offered as tools named `ask_<agent>`.
pub const ASK_PREFIX: &str = "ask_";

#[derive(Clone)]
pub struct CaxtonMcp {
    state: ApiState,
}

impl CaxtonMcp {
    pub fn new(state: ApiState) -> Self {
        Self { state }
    }

    /// Who the request acts as: `?agent=NAME` in the endpoint's URL, or
    /// the operator.
    fn caller(&self, extensions: &rmcp::model::Extensions) -> (Caller, String) {
        let agent = extensions
            .get::<warp::http::request::Parts>()
            .and_then(|parts| parts.uri.query())
            .and_then(|query| {
                query.split('&').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    (key == "agent").then(|| {
                        percent_encoding::percent_decode_str(value)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                })
            });
        match agent {
            Some(name) => (self.state.registry.memory_caller(&name), name),
            None => (Caller::Operator, "mcp".into()),
        }
    }

    async fn component_tools(&self) -> Vec<Tool> {
        let mut tools = Vec::new();
        for tool in self.state.registry.tools() {
            let name = tool.manifest.name.clone();
            if memory_tools::NAMES.contains(&name.as_str()) {
                tracing::warn!(tool = %name, "a deployed tool has a memory tool's name; MCP clients see the memory tool");
                continue;
            }
            let description = self.state.registry.describe(&tool).await;
            let schema = match serde_json::from_str::<Value>(&description.input_schema) {
                Ok(Value::Object(schema)) if schema.get("type") == Some(&json!("object")) => schema,
                // MCP requires an object schema; a tool that takes anything
                // else is offered as taking any object.
                _ => json!({"type": "object"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            };
            tools.push(Tool::new(name, description.description, schema));
        }
        tools
    }

    fn agent_tools(&self) -> Vec<Tool> {
        let schema = json!({
            "type": "object",
            "properties": {
                "message": {"description": "What to send the agent: text or any JSON value"},
                "conversation_id": {"type": "string", "description": "Continue this conversation (from an earlier answer's structuredContent)"}
            },
            "required": ["message"]
        });
        self.state
            .registry
            .agents()
            .into_iter()
            .map(|agent| {
                let manifest = &agent.manifest;
                let mut description = format!("Ask agent {:?}", manifest.name);
                if !manifest.description.is_empty() {
                    description.push_str(": ");
                    description.push_str(&manifest.description);
                }
                if !manifest.capabilities.is_empty() {
                    description.push_str(&format!(
                        " (capabilities: {})",
                        manifest.capabilities.join(", ")
                    ));
                }
                Tool::new(
                    format!("{ASK_PREFIX}{}", manifest.name),
                    description,
                    schema.as_object().cloned().unwrap_or_default(),
                )
                .with_annotations(ToolAnnotations::from_raw(
                    None,
                    Some(false),
                    Some(false),
                    Some(false),
                    Some(true),
                ))
            })
            .collect()
    }

    async fn call_component(
        &self,
        caller: &str,
        name: &str,
        arguments: JsonObject,
    ) -> CallToolResult {
        let input = Value::Object(arguments).to_string();
        match self
            .state
            .registry
            .run_tool(caller, name, input, None)
            .await
        {
            Ok(output) => {
                let structured = match serde_json::from_str::<Value>(&output) {
                    Ok(value @ Value::Object(_)) => Some(value),
                    _ => None,
                };
                let mut result = CallToolResult::success(vec![ContentBlock::text(output)]);
                result.structured_content = structured;
                result
            }
            Err(error) => tool_error(&plugin_message(&error)),
        }
    }

    async fn ask_agent(&self, agent: &str, arguments: JsonObject) -> CallToolResult {
        let Some(message) = arguments.get("message") else {
            return tool_error("missing argument `message`: what to send the agent");
        };
        let mut body = json!({"performative": "request", "sender": "mcp", "content": message});
        if let Some(conversation) = arguments.get("conversation_id") {
            body["conversation_id"] = conversation.clone();
        }
        let bytes = body.to_string().into_bytes();
        match crate::api::send_to_agent(&self.state, agent, &bytes).await {
            Ok((_, answer)) => {
                let content = &answer["reply"]["content"];
                let text = match content {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                result.structured_content = Some(json!({
                    "reply": content,
                    "conversation_id": answer["conversation_id"],
                }));
                result
            }
            Err(error) => tool_error(&format!("{}: {}", error.code, error.message)),
        }
    }
}

fn tool_error(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn plugin_message(error: &PluginError) -> String {
    error.to_string()
}

impl ServerHandler for CaxtonMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("caxton", env!("CARGO_PKG_VERSION"))
                .with_title("Caxton agent host"),
        )
        .with_instructions(
            "Caxton's knowledge-graph memory (the reference memory server's tools; search_nodes searches by meaning and keyword), its deployed tools, and its agents (ask_<agent>).",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = if self.state.memory.is_some() {
            memory_tools::tools()
        } else {
            Vec::new()
        };
        tools.extend(self.component_tools().await);
        tools.extend(self.agent_tools());
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (caller, label) = self.caller(&context.extensions);
        let name = request.name.as_ref();
        let arguments = request.arguments.unwrap_or_default();
        if let Some(memory) = self.state.memory.as_deref()
            && let Some(outcome) = memory_tools::call(memory, &caller, name, &arguments).await
        {
            return match outcome {
                Ok(result) => Ok(result.into()),
                Err(Failure::InvalidParams(message)) => Err(ErrorData::invalid_params(
                    format!("{name}: {message}"),
                    None,
                )),
                Err(Failure::Tool(message)) => Ok(tool_error(&message).into()),
            };
        }
        if self.state.registry.tool(name).is_some() {
            return Ok(self.call_component(&label, name, arguments).await.into());
        }
        if let Some(agent) = name.strip_prefix(ASK_PREFIX)
            && self.state.registry.agent(agent).is_some()
        {
            return Ok(self.ask_agent(agent, arguments).await.into());
        }
        Err(ErrorData::invalid_params(
            format!("no tool named {name:?}; tools/list shows what this server has"),
            None,
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = if self.state.memory.is_some() {
            vec![
                Resource::new(GRAPH_URI, "knowledge-graph")
                    .with_title("Knowledge graph")
                    .with_description("The entities and relations this client can read, as JSON")
                    .with_mime_type("application/json"),
            ]
        } else {
            Vec::new()
        };
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let memory = self
            .state
            .memory
            .as_deref()
            .filter(|_| request.uri == GRAPH_URI);
        let Some(memory) = memory else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {:?}; this server has {GRAPH_URI}", request.uri),
                None,
            ));
        };
        let (caller, _) = self.caller(&context.extensions);
        let text = memory_tools::graph_resource(memory, &caller)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, GRAPH_URI).with_mime_type("application/json"),
        ])
        .into())
    }
}
