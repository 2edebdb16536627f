//! The MCP reference memory server's nine tools, with its exact names,
//! input shapes and answers, backed by Caxton's memory: an assistant set
//! up for `@modelcontextprotocol/server-memory` switches by changing the
//! URL. Differences a client can notice are deliberate: `search_nodes`
//! is the hybrid semantic and keyword search, relations need both ends to
//! exist, scopes decide what a caller sees, and whole-graph reads are
//! bounded (`truncated` says so).

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::memory::{Caller, EntityView, Graph, Memory, MemoryError, RelationView, SearchOptions};

/// Entities, relations or deletions one call may carry.
const MAX_ITEMS: usize = 256;
/// Search results `search_nodes` turns into entities.
const SEARCH_LIMIT: usize = 20;

pub const NAMES: [&str; 9] = [
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
];

fn entity_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "The name of the entity"},
            "entityType": {"type": "string", "description": "The type of the entity"},
            "observations": {"type": "array", "items": {"type": "string"}, "description": "An array of observation contents associated with the entity"}
        },
        "required": ["name", "entityType", "observations"]
    })
}

fn relation_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "from": {"type": "string", "description": "The name of the entity where the relation starts"},
            "to": {"type": "string", "description": "The name of the entity where the relation ends"},
            "relationType": {"type": "string", "description": "The type of the relation"}
        },
        "required": ["from", "to", "relationType"]
    })
}

fn graph_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "entities": {"type": "array", "items": entity_schema()},
            "relations": {"type": "array", "items": relation_schema()},
            "truncated": {"type": "boolean", "description": "More matched than one answer returns"}
        },
        "required": ["entities", "relations"]
    })
}

fn done_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"success": {"type": "boolean"}, "message": {"type": "string"}},
        "required": ["success", "message"]
    })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn as_object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("schemas are objects"),
    }
}

/// The tools as `tools/list` shows them.
pub fn tools() -> Vec<Tool> {
    let array = |items: Value, description: &str| json!({"type": "array", "items": items, "description": description});
    let strings = |description: &str| array(json!({"type": "string"}), description);
    let write = |destructive: bool| {
        ToolAnnotations::from_raw(
            None,
            Some(false),
            Some(destructive),
            Some(destructive),
            Some(false),
        )
    };
    let read = ToolAnnotations::from_raw(None, Some(true), Some(false), Some(true), Some(false));
    let tool = |name: &'static str,
                title: &str,
                description: &'static str,
                input: Value,
                output: Value,
                annotations: ToolAnnotations| {
        Tool::new(name, description, as_object(input))
            .with_title(title)
            .with_raw_output_schema(std::sync::Arc::new(as_object(output)))
            .with_annotations(annotations)
    };
    vec![
        tool(
            "create_entities",
            "Create Entities",
            "Create multiple new entities in the knowledge graph",
            object(
                json!({"entities": array(entity_schema(), "The entities to create")}),
                &["entities"],
            ),
            object(
                json!({"entities": {"type": "array", "items": entity_schema()}}),
                &["entities"],
            ),
            write(false),
        ),
        tool(
            "create_relations",
            "Create Relations",
            "Create multiple new relations between entities in the knowledge graph. Relations should be in active voice",
            object(
                json!({"relations": array(relation_schema(), "The relations to create")}),
                &["relations"],
            ),
            object(
                json!({"relations": {"type": "array", "items": relation_schema()}}),
                &["relations"],
            ),
            write(false),
        ),
        tool(
            "add_observations",
            "Add Observations",
            "Add new observations to existing entities in the knowledge graph",
            object(
                json!({"observations": array(object(json!({
                    "entityName": {"type": "string", "description": "The name of the entity to add the observations to"},
                    "contents": strings("An array of observation contents to add")
                }), &["entityName", "contents"]), "The observations to add")}),
                &["observations"],
            ),
            object(
                json!({"results": {"type": "array", "items": object(json!({
                    "entityName": {"type": "string"},
                    "addedObservations": {"type": "array", "items": {"type": "string"}}
                }), &["entityName", "addedObservations"])}}),
                &["results"],
            ),
            write(false),
        ),
        tool(
            "delete_entities",
            "Delete Entities",
            "Delete multiple entities and their associated relations from the knowledge graph",
            object(
                json!({"entityNames": strings("An array of entity names to delete")}),
                &["entityNames"],
            ),
            done_schema(),
            write(true),
        ),
        tool(
            "delete_observations",
            "Delete Observations",
            "Delete specific observations from entities in the knowledge graph",
            object(
                json!({"deletions": array(object(json!({
                    "entityName": {"type": "string", "description": "The name of the entity containing the observations"},
                    "observations": strings("An array of observations to delete")
                }), &["entityName", "observations"]), "The observations to delete")}),
                &["deletions"],
            ),
            done_schema(),
            write(true),
        ),
        tool(
            "delete_relations",
            "Delete Relations",
            "Delete multiple relations from the knowledge graph",
            object(
                json!({"relations": array(relation_schema(), "An array of relations to delete")}),
                &["relations"],
            ),
            done_schema(),
            write(true),
        ),
        tool(
            "read_graph",
            "Read Graph",
            "Read the entire knowledge graph",
            object(json!({}), &[]),
            graph_schema(),
            read.clone(),
        ),
        tool(
            "search_nodes",
            "Search Nodes",
            "Search for nodes in the knowledge graph by meaning and by keyword (entity names, types and observation content)",
            object(
                json!({"query": {"type": "string", "description": "The search query to match against entity names, types, and observation content"}}),
                &["query"],
            ),
            graph_schema(),
            read.clone(),
        ),
        tool(
            "open_nodes",
            "Open Nodes",
            "Open specific nodes in the knowledge graph by their names",
            object(
                json!({"names": strings("An array of entity names to retrieve")}),
                &["names"],
            ),
            graph_schema(),
            read,
        ),
    ]
}

/// Why a memory tool call did not complete.
pub enum Failure {
    /// The arguments do not have the tool's shape (JSON-RPC `-32602`).
    InvalidParams(String),
    /// The tool ran and failed; the caller reads why (`isError: true`).
    Tool(String),
}

impl From<MemoryError> for Failure {
    fn from(error: MemoryError) -> Self {
        Failure::Tool(match &error {
            MemoryError::NotFound(name) => {
                format!("Entity with name {name} not found; create it first with create_entities")
            }
            _ => error.to_string(),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntityIn {
    name: String,
    entity_type: String,
    #[serde(default)]
    observations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RelationIn {
    from: String,
    to: String,
    relation_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObservationsIn {
    entity_name: String,
    contents: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletionIn {
    entity_name: String,
    observations: Vec<String>,
}

fn field<T: DeserializeOwned>(arguments: &JsonObject, name: &str) -> Result<T, Failure> {
    let value = arguments
        .get(name)
        .ok_or_else(|| Failure::InvalidParams(format!("missing argument `{name}`")))?;
    serde_json::from_value(value.clone())
        .map_err(|e| Failure::InvalidParams(format!("argument `{name}`: {e}")))
}

fn items<T: DeserializeOwned>(arguments: &JsonObject, name: &str) -> Result<Vec<T>, Failure> {
    let items: Vec<T> = field(arguments, name)?;
    if items.len() > MAX_ITEMS {
        return Err(Failure::InvalidParams(format!(
            "argument `{name}`: at most {MAX_ITEMS} items per call; split the call"
        )));
    }
    Ok(items)
}

fn entity_json(entity: &EntityView) -> Value {
    json!({"name": entity.name, "entityType": entity.entity_type, "observations": entity.observations})
}

fn relation_json(relation: &RelationView) -> Value {
    json!({"from": relation.from, "to": relation.to, "relationType": relation.relation_type})
}

fn graph_json(graph: &Graph) -> Value {
    json!({
        "entities": graph.entities.iter().map(entity_json).collect::<Vec<_>>(),
        "relations": graph.relations.iter().map(relation_json).collect::<Vec<_>>(),
        "truncated": graph.truncated,
    })
}

/// A result as the reference server gives it: the payload as JSON text
/// and as `structuredContent`.
fn answer(text: String, structured: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    result
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn done(message: &str) -> CallToolResult {
    answer(message.into(), json!({"success": true, "message": message}))
}

/// Runs memory tool `name`, or `None` when `name` is not one of them.
pub async fn call(
    memory: &Memory,
    caller: &Caller,
    name: &str,
    arguments: &JsonObject,
) -> Option<Result<CallToolResult, Failure>> {
    Some(match name {
        "create_entities" => create_entities(memory, caller, arguments).await,
        "create_relations" => create_relations(memory, caller, arguments).await,
        "add_observations" => add_observations(memory, caller, arguments).await,
        "delete_entities" => delete_entities(memory, caller, arguments).await,
        "delete_observations" => delete_observations(memory, caller, arguments).await,
        "delete_relations" => delete_relations(memory, caller, arguments).await,
        "read_graph" => read_graph(memory, caller).await,
        "search_nodes" => search_nodes(memory, caller, arguments).await,
        "open_nodes" => open_nodes(memory, caller, arguments).await,
        _ => return None,
    })
}

/// Creates the entities whose names are new; those that exist are left
/// as they are and not returned, as the reference server does.
async fn create_entities(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let entities: Vec<EntityIn> = items(arguments, "entities")?;
    let mut created = Vec::new();
    for entity in entities {
        if !memory
            .entities(caller, std::slice::from_ref(&entity.name))
            .await?
            .is_empty()
        {
            continue;
        }
        let outcome = memory
            .remember(
                caller,
                None,
                &entity.name,
                &entity.entity_type,
                &entity.observations,
            )
            .await?;
        if outcome.created {
            created.push(json!({
                "name": entity.name,
                "entityType": entity.entity_type,
                "observations": entity.observations,
            }));
        }
    }
    let created = Value::Array(created);
    Ok(answer(pretty(&created), json!({"entities": created})))
}

async fn create_relations(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let relations: Vec<RelationIn> = items(arguments, "relations")?;
    let mut created = Vec::new();
    for relation in relations {
        if memory
            .relate(
                caller,
                &relation.from,
                &relation.to,
                &relation.relation_type,
                1.0,
            )
            .await?
        {
            created.push(json!({
                "from": relation.from,
                "to": relation.to,
                "relationType": relation.relation_type,
            }));
        }
    }
    let created = Value::Array(created);
    Ok(answer(pretty(&created), json!({"relations": created})))
}

async fn add_observations(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let additions: Vec<ObservationsIn> = items(arguments, "observations")?;
    let mut results = Vec::new();
    for addition in additions {
        let before = memory
            .entities(caller, std::slice::from_ref(&addition.entity_name))
            .await?;
        let Some(before) = before.first() else {
            return Err(MemoryError::NotFound(addition.entity_name).into());
        };
        let mut added: Vec<&String> = Vec::new();
        for text in &addition.contents {
            if !before.observations.contains(text) && !added.contains(&text) {
                added.push(text);
            }
        }
        memory
            .add_observations(caller, &addition.entity_name, &addition.contents)
            .await?;
        results.push(json!({"entityName": addition.entity_name, "addedObservations": added}));
    }
    let results = Value::Array(results);
    Ok(answer(pretty(&results), json!({"results": results})))
}

/// Names that do not exist are skipped, as the reference server does.
async fn delete_entities(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let names: Vec<String> = items(arguments, "entityNames")?;
    for name in names {
        match memory.forget(caller, &name).await {
            Ok(()) | Err(MemoryError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(done("Entities deleted successfully"))
}

async fn delete_observations(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let deletions: Vec<DeletionIn> = items(arguments, "deletions")?;
    for deletion in deletions {
        match memory
            .delete_observations(caller, &deletion.entity_name, &deletion.observations)
            .await
        {
            Ok(_) | Err(MemoryError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(done("Observations deleted successfully"))
}

async fn delete_relations(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let relations: Vec<RelationIn> = items(arguments, "relations")?;
    for relation in relations {
        match memory
            .unrelate(
                caller,
                &relation.from,
                &relation.to,
                &relation.relation_type,
            )
            .await
        {
            Ok(_) | Err(MemoryError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(done("Relations deleted successfully"))
}

async fn read_graph(memory: &Memory, caller: &Caller) -> Result<CallToolResult, Failure> {
    let graph = graph_json(&memory.graph(caller).await?);
    Ok(answer(pretty(&graph), graph))
}

/// The entities of the best search hits, best first, with their relations.
async fn search_nodes(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let query: String = field(arguments, "query")?;
    let options = SearchOptions {
        limit: SEARCH_LIMIT,
        entity_type: None,
    };
    // Names and types first (what the reference server matches), then
    // what the observations say, by meaning and by keyword.
    let mut names = memory
        .names_containing(caller, &query, SEARCH_LIMIT)
        .await?;
    let hits = memory.search(caller, &query, &options).await?;
    for hit in hits {
        if !names.contains(&hit.entity) {
            names.push(hit.entity);
        }
    }
    let graph = graph_json(&memory.subgraph(caller, &names).await?);
    Ok(answer(pretty(&graph), graph))
}

async fn open_nodes(
    memory: &Memory,
    caller: &Caller,
    arguments: &JsonObject,
) -> Result<CallToolResult, Failure> {
    let names: Vec<String> = items(arguments, "names")?;
    let graph = graph_json(&memory.subgraph(caller, &names).await?);
    Ok(answer(pretty(&graph), graph))
}

/// The whole graph as the `memory://knowledge-graph` resource.
pub async fn graph_resource(memory: &Memory, caller: &Caller) -> Result<String, MemoryError> {
    Ok(pretty(&graph_json(&memory.graph(caller).await?)))
}
