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
use crate::runtime::ToolHost;

/// The knowledge graph's resource URI (the reference server's).
pub const GRAPH_URI: &str = "memory://knowledge-graph";
/// Agents are offered as tools named `ask_<agent>`.
pub const ASK_PREFIX: &str = "ask_";

/// Who an MCP request acts as.
enum Acting {
    /// The token's holder, with the operator's view of memory; tools run
    /// with no HTTP access.
    Operator,
    /// A deployed agent: its memory scopes, its `tools` allow list, its
    /// `[http]` policy.
    Agent(String),
}

#[derive(Clone)]
pub struct CaxtonMcp {
    state: ApiState,
}

impl CaxtonMcp {
    pub fn new(state: ApiState) -> Self {
        Self { state }
    }

    /// Who the request acts as: the agent named by `?agent=NAME` in the
    /// endpoint's URL (which must be deployed), or the operator.
    fn acting(&self, extensions: &rmcp::model::Extensions) -> Result<Acting, ErrorData> {
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
            None => Ok(Acting::Operator),
            Some(name) if self.state.registry.agent(&name).is_some() => Ok(Acting::Agent(name)),
            Some(name) => Err(ErrorData::invalid_params(
                format!(
                    "no agent named {name:?} is deployed; /mcp?agent=NAME acts as a deployed agent (its memory scopes, its tools)"
                ),
                None,
            )),
        }
    }

    /// The memory identity of `acting`, or why it has none.
    fn memory_caller(&self, acting: &Acting) -> Result<Caller, String> {
        match acting {
            Acting::Operator => Ok(Caller::Operator),
            Acting::Agent(name) => {
                let enabled = self
                    .state
                    .registry
                    .agent(name)
                    .is_some_and(|a| a.manifest.memory.enabled);
                if !enabled {
                    return Err(format!(
                        "memory is disabled for agent {name:?} ([memory] enabled = false)"
                    ));
                }
                Ok(self.state.registry.memory_caller(name))
            }
        }
    }

    async fn component_tools(&self, acting: &Acting) -> Vec<Tool> {
        let allowed: Option<Vec<String>> = match acting {
            Acting::Operator => None,
            Acting::Agent(name) => Some(
                self.state
                    .registry
                    .agent(name)
                    .map(|a| a.manifest.tools.clone())
                    .unwrap_or_default(),
            ),
        };
        let mut tools = Vec::new();
        for tool in self.state.registry.tools() {
            let name = tool.manifest.name.clone();
            if allowed.as_ref().is_some_and(|a| !a.contains(&name)) {
                continue;
            }
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
        acting: &Acting,
        name: &str,
        arguments: JsonObject,
    ) -> CallToolResult {
        let input = Value::Object(arguments).to_string();
        let registry = &self.state.registry;
        let outcome = match acting {
            Acting::Operator => registry.run_tool("mcp", name, input, None, None).await,
            // As the agent's own tool call: its allow list, deadline and
            // `[http]` policy.
            Acting::Agent(agent) => ToolHost::call_tool(&**registry, agent, name, input).await,
        };
        match outcome {
            Ok(output) => {
                let structured = match serde_json::from_str::<Value>(&output) {
                    Ok(value @ Value::Object(_)) => Some(value),
                    _ => None,
                };
                let mut result = CallToolResult::success(vec![ContentBlock::text(output)]);
                result.structured_content = structured;
                result
            }
            Err(error) => tool_error(&error.to_string()),
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
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let acting = self.acting(&context.extensions)?;
        let mut tools = if self.state.memory.is_some() {
            memory_tools::tools()
        } else {
            Vec::new()
        };
        tools.extend(self.component_tools(&acting).await);
        tools.extend(self.agent_tools());
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let acting = self.acting(&context.extensions)?;
        let name = request.name.as_ref();
        let arguments = request.arguments.unwrap_or_default();
        if let Some(memory) = self.state.memory.as_deref()
            && memory_tools::NAMES.contains(&name)
        {
            let caller = match self.memory_caller(&acting) {
                Ok(caller) => caller,
                Err(reason) => return Ok(tool_error(&reason).into()),
            };
            let outcome = memory_tools::call(memory, &caller, name, &arguments)
                .await
                .expect("a memory tool's name");
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
            return Ok(self.call_component(&acting, name, arguments).await.into());
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
        let caller = self
            .memory_caller(&self.acting(&context.extensions)?)
            .map_err(|reason| ErrorData::invalid_params(reason, None))?;
        let text = memory_tools::graph_resource(memory, &caller)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, GRAPH_URI).with_mime_type("application/json"),
        ])
        .into())
    }
}
