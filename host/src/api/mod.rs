//! The HTTP API: thin warp routes over the services. Every error leaves in
//! the one shape defined in [`error`].

mod agents;
mod embeddings;
mod error;
mod memory;
mod messages;
pub mod request_id;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

pub use error::{ApiError, recover};

use crate::agents::{AgentRegistry, Deployments};
use crate::embed::{EmbedError, EmbeddingEngine};
use crate::memory::Memory;
use crate::messaging::Messenger;

/// Every route of the API as (method, path template), with `{name}` and
/// `{id}` standing for path segments. A new route must be added here and
/// to `openapi.json` beside this file: `tests/openapi.rs` checks that the
/// two list the same routes and that each one answers on a live server.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/ready"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/agents"),
    ("POST", "/api/v1/agents"),
    ("POST", "/api/v1/agents/validate"),
    ("GET", "/api/v1/agents/{name}"),
    ("PUT", "/api/v1/agents/{name}"),
    ("DELETE", "/api/v1/agents/{name}"),
    ("POST", "/api/v1/agents/{name}/messages"),
    ("POST", "/api/v1/agents/{name}/reload"),
    ("POST", "/api/v1/messages"),
    ("GET", "/api/v1/conversations/{id}"),
    ("GET", "/api/v1/conversations/{id}/messages"),
    ("POST", "/api/v1/embeddings"),
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/models/{model}"),
    ("POST", "/api/v1/memory/entities"),
    ("POST", "/api/v1/memory/observations"),
    ("POST", "/api/v1/memory/relations"),
    ("POST", "/api/v1/memory/search"),
    ("GET", "/api/v1/memory/entities/{name}"),
    ("DELETE", "/api/v1/memory/entities/{name}"),
    ("GET", "/api/v1/memory/graph/{name}"),
    ("GET", "/api/v1/memory/stats"),
    ("GET", "/api/v1/memory/export"),
    ("POST", "/api/v1/memory/import"),
];

/// A path segment, percent-decoded: `Alice%20Smith` names `Alice Smith`.
/// Segments that do not decode to UTF-8 match no route.
pub struct PathParam(pub String);

impl std::str::FromStr for PathParam {
    type Err = std::str::Utf8Error;

    fn from_str(segment: &str) -> Result<Self, Self::Err> {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map(|decoded| Self(decoded.into_owned()))
    }
}

/// The OpenAPI document of [`ROUTES`], served at `GET /api/v1/openapi.json`.
const OPENAPI: &str = include_str!("openapi.json");

/// What the routes need: the services, shared.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Arc<AgentRegistry>,
    pub messenger: Arc<Messenger>,
    /// Where API deployments are kept (None: the API cannot deploy).
    pub deployments: Option<Arc<Deployments>>,
    /// Agents defined by files here are changed through the files.
    pub agents_dir: std::path::PathBuf,
    /// The embedding engine, or why there is none (disabled, model missing).
    pub embeddings: Result<Arc<EmbeddingEngine>, EmbedError>,
    pub memory: Option<Arc<Memory>>,
    pub started: Instant,
    pub max_request_size: u64,
    pub max_import_size: u64,
}

/// The routes as a plain request-to-response function, for the HTTP
/// front's pipeline.
pub fn handler(state: ApiState) -> crate::http::Handler {
    let service = warp::service(routes(state));
    std::sync::Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            match tower_service::Service::call(&mut service, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    })
}

/// Every route of the API, with errors recovered into the error shape.
pub fn routes(state: ApiState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };

    let health = warp::path!("api" / "v1" / "health")
        .and(warp::get())
        .and(with_state.clone())
        .map(health);
    let ready = warp::path!("api" / "v1" / "ready")
        .and(warp::get())
        .and(with_state.clone())
        .map(ready);

    let send_to_agent = warp::path!("api" / "v1" / "agents" / PathParam / "messages")
        .and(warp::post())
        .and(warp::body::content_length_limit(state.max_request_size))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(
            |PathParam(agent): PathParam, body: Bytes, state: ApiState| async move {
                respond(messages::send_to_agent(&state, &agent, &body).await)
            },
        );
    let list_agents = warp::path!("api" / "v1" / "agents")
        .and(warp::get())
        .and(warp::query::<agents::ListQuery>())
        .and(with_state.clone())
        .map(
            |query: agents::ListQuery, state: ApiState| match agents::list(&state, &query) {
                Ok((body, total, page_size)) => {
                    let mut response = warp::reply::json(&body).into_response();
                    let headers = response.headers_mut();
                    headers.insert("x-total-count", total.into());
                    headers.insert("x-page-size", page_size.into());
                    response
                }
                Err(error) => error.into_response(),
            },
        );
    let deploy_agent = warp::path!("api" / "v1" / "agents")
        .and(warp::post())
        .and(warp::body::content_length_limit(state.max_import_size))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(|body: Bytes, state: ApiState| async move {
            respond(agents::deploy(&state, &body, None).await)
        });
    let validate_agent = warp::path!("api" / "v1" / "agents" / "validate")
        .and(warp::post())
        .and(warp::body::content_length_limit(state.max_request_size))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(|body: Bytes, state: ApiState| async move {
            respond(agents::validate(&state, &body).await)
        });
    let show_agent = warp::path!("api" / "v1" / "agents" / PathParam)
        .and(warp::get())
        .and(with_state.clone())
        .map(|PathParam(name): PathParam, state: ApiState| respond(agents::show(&state, &name)));
    let replace_agent = warp::path!("api" / "v1" / "agents" / PathParam)
        .and(warp::put())
        .and(warp::body::content_length_limit(state.max_import_size))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(
            |PathParam(name): PathParam, body: Bytes, state: ApiState| async move {
                respond(agents::deploy(&state, &body, Some(&name)).await)
            },
        );
    let reload_agent = warp::path!("api" / "v1" / "agents" / PathParam / "reload")
        .and(warp::post())
        .and(with_state.clone())
        .then(|PathParam(name): PathParam, state: ApiState| async move {
            respond(agents::reload(&state, &name).await)
        });
    let remove_agent = warp::path!("api" / "v1" / "agents" / PathParam)
        .and(warp::delete())
        .and(with_state.clone())
        .then(|PathParam(name): PathParam, state: ApiState| async move {
            respond(agents::remove(&state, &name).await)
        });
    let send_message = warp::path!("api" / "v1" / "messages")
        .and(warp::post())
        .and(warp::body::content_length_limit(state.max_request_size))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(|body: Bytes, state: ApiState| async move {
            respond(messages::send(&state, &body).await)
        });
    let conversation = warp::path!("api" / "v1" / "conversations" / PathParam)
        .and(warp::get())
        .and(with_state.clone())
        .then(|PathParam(id): PathParam, state: ApiState| async move {
            respond(messages::conversation(&state, &id).await)
        });
    let thread = warp::path!("api" / "v1" / "conversations" / PathParam / "messages")
        .and(warp::get())
        .and(with_state.clone())
        .then(|PathParam(id): PathParam, state: ApiState| async move {
            respond(messages::thread(&state, &id).await)
        });

    let openapi = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| {
            warp::reply::with_header(OPENAPI, "content-type", "application/json").into_response()
        });

    let body = warp::body::content_length_limit(state.max_request_size).and(warp::body::bytes());
    let memory_post = |route: &'static str| {
        warp::path("api")
            .and(warp::path("v1"))
            .and(warp::path("memory"))
            .and(warp::path(route))
            .and(warp::path::end())
            .and(warp::post())
            .and(body)
            .and(with_state.clone())
            .then(move |body: Bytes, state: ApiState| async move {
                let result = match route {
                    "entities" => memory::remember(&state, &body).await,
                    "observations" => memory::add_observations(&state, &body).await,
                    "relations" => memory::relate(&state, &body).await,
                    _ => memory::search(&state, &body).await,
                };
                respond(result)
            })
    };
    let memory_writes = memory_post("entities")
        .or(memory_post("observations"))
        .unify()
        .or(memory_post("relations"))
        .unify()
        .or(memory_post("search"))
        .unify();
    let memory_entity = warp::path!("api" / "v1" / "memory" / "entities" / PathParam)
        .and(
            warp::get()
                .map(|| false)
                .or(warp::delete().map(|| true))
                .unify(),
        )
        .and(warp::query::<memory::ReadQuery>())
        .and(with_state.clone())
        .then(
            |PathParam(name): PathParam,
             delete: bool,
             query: memory::ReadQuery,
             state: ApiState| async move {
                if delete {
                    respond(memory::forget(&state, &name, &query).await)
                } else {
                    respond(memory::open(&state, &name, &query).await)
                }
            },
        );
    let memory_graph = warp::path!("api" / "v1" / "memory" / "graph" / PathParam)
        .and(warp::get())
        .and(warp::query::<memory::ReadQuery>())
        .and(with_state.clone())
        .then(
            |PathParam(name): PathParam, query: memory::ReadQuery, state: ApiState| async move {
                respond(memory::graph(&state, &name, &query).await)
            },
        );
    let memory_export = warp::path!("api" / "v1" / "memory" / "export")
        .and(warp::get())
        .and(warp::query::<memory::ExportQuery>())
        .and(with_state.clone())
        .then(|query: memory::ExportQuery, state: ApiState| async move {
            match memory::export(&state, &query).await {
                Ok(lines) => warp::reply::with_header(
                    warp::reply::stream(lines),
                    "content-type",
                    "application/x-ndjson",
                )
                .into_response(),
                Err(error) => error.into_response(),
            }
        });
    let memory_import = warp::path!("api" / "v1" / "memory" / "import")
        .and(warp::post())
        .and(warp::body::content_length_limit(state.max_import_size))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(|body: Bytes, state: ApiState| async move {
            respond(memory::import(&state, &body).await)
        });
    let memory_stats = warp::path!("api" / "v1" / "memory" / "stats")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: ApiState| async move { respond(memory::stats(&state).await) });

    let embeddings = warp::path!("api" / "v1" / "embeddings")
        .and(warp::post())
        .and(body)
        .and(with_state.clone())
        .then(|body: Bytes, state: ApiState| async move {
            let engine = state.embeddings.as_deref();
            match embeddings::embeddings(engine, &body).await {
                Ok(response) => warp::reply::json(&response).into_response(),
                Err(error) => error.into_response(),
            }
        });

    let models = warp::path!("api" / "v1" / "models")
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: ApiState| {
            warp::reply::json(&embeddings::models(state.embeddings.as_deref())).into_response()
        });
    let model = warp::path!("api" / "v1" / "models" / PathParam)
        .and(warp::get())
        .and(with_state.clone())
        .map(|PathParam(id): PathParam, state: ApiState| {
            match embeddings::model(state.embeddings.as_deref(), &id) {
                Ok(body) => warp::reply::json(&body).into_response(),
                Err(error) => error.into_response(),
            }
        });

    // Each route is boxed: one flat list of boxed filters keeps warp's
    // nested future types shallow enough for the compiler.
    let routes: Vec<BoxedFilter<(Response,)>> = vec![
        health.boxed(),
        ready.boxed(),
        openapi.boxed(),
        send_to_agent.boxed(),
        list_agents.boxed(),
        deploy_agent.boxed(),
        validate_agent.boxed(),
        show_agent.boxed(),
        replace_agent.boxed(),
        remove_agent.boxed(),
        reload_agent.boxed(),
        send_message.boxed(),
        conversation.boxed(),
        thread.boxed(),
        embeddings.boxed(),
        models.boxed(),
        model.boxed(),
        memory_writes.boxed(),
        memory_entity.boxed(),
        memory_graph.boxed(),
        memory_stats.boxed(),
        memory_export.boxed(),
        memory_import.boxed(),
    ];
    routes
        .into_iter()
        .reduce(|all, route| all.or(route).unify().boxed())
        .expect("at least one route")
        .recover(error::recover)
        .unify()
        .with(warp::trace::request())
}

/// Refreshes the metrics that describe state rather than events and are
/// cheap to read (no store query): at every scrape.
pub fn sample_gauges(state: &ApiState) {
    let m = crate::metrics::metrics();
    m.sample_process();
    m.uptime_seconds.set(state.started.elapsed().as_secs_f64());
    let runtime = state.registry.runtime();
    m.pool_slots_in_use.set(runtime.slots_in_use() as i64);
    let (agents, tools) = state.registry.counts();
    m.agent_config_count.set((agents + tools) as i64);
    m.agent_wasm_count.set((agents + tools) as i64);
    if let Ok(engine) = &state.embeddings
        && let Some(rate) = engine.cache_stats().hit_rate()
    {
        m.memory_cache_hit_rate
            .with_label_values(&["embedding"])
            .set(rate);
    }
}

/// Refreshes the gauges that need store queries (counts, file size).
pub async fn sample_store_gauges(state: &ApiState) {
    let m = crate::metrics::metrics();
    if let Some(memory) = &state.memory {
        match memory.stats().await {
            Ok(stats) => {
                m.memory_entities.set(stats.entities as i64);
                m.memory_relations.set(stats.relations as i64);
                m.memory_sqlite_size_bytes.set(stats.database_bytes as i64);
            }
            Err(error) => tracing::warn!(%error, "reading memory stats for metrics"),
        }
    }
}

/// Ready once the embedding model is loaded (or semantic search is off):
/// what a load balancer or supervisor should wait for after a start.
fn ready(state: ApiState) -> Response {
    let embeddings = match &state.embeddings {
        Ok(engine) if engine.load_time().is_none() => {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "loading",
                "the embedding model is still loading",
            );
            error.retry_after_secs = Some(1);
            return error.into_response();
        }
        Ok(_) => "ready",
        Err(EmbedError::Disabled) => "disabled",
        Err(_) => "unavailable",
    };
    warp::reply::json(&json!({ "ready": true, "embeddings": embeddings })).into_response()
}

/// The route a path belongs to, with names replaced by `:placeholders`:
/// bounded label values for metrics, whatever paths clients send.
pub fn route_template(path: &str) -> String {
    const NAMED: &[(&str, &str)] = &[
        ("agents", ":name"),
        ("entities", ":name"),
        ("graph", ":name"),
        ("models", ":model"),
        ("conversations", ":id"),
    ];
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return "other".into();
    };
    let mut template = String::from("/api/v1");
    let mut segments = rest.split('/').filter(|s| !s.is_empty()).peekable();
    let mut depth = 0;
    while let Some(segment) = segments.next() {
        depth += 1;
        if depth > 4
            || !segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
        {
            return "other".into();
        }
        template.push('/');
        template.push_str(segment);
        // `agents/validate` is a route of its own; `agents/validate/...`
        // names an agent called "validate".
        let literal = segment == "agents" && segments.clone().eq(["validate"]);
        if let Some((_, placeholder)) = NAMED.iter().find(|(name, _)| *name == segment)
            && segments.peek().is_some()
            && !literal
        {
            segments.next();
            template.push('/');
            template.push_str(placeholder);
        }
    }
    template
}

/// A handler's result as a response: JSON with its status, or the error shape.
fn respond(result: Result<(StatusCode, serde_json::Value), ApiError>) -> Response {
    match result {
        Ok((status, body)) => {
            warp::reply::with_status(warp::reply::json(&body), status).into_response()
        }
        Err(error) => error.into_response(),
    }
}

fn health(state: ApiState) -> Response {
    warp::reply::json(&json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "agents": state.registry.agent_count(),
        "resident_memory_bytes": crate::metrics::resident_memory_bytes(),
        "embeddings": match &state.embeddings {
            Ok(engine) if engine.load_time().is_some() => "ready",
            Ok(_) => "loading",
            Err(EmbedError::Disabled) => "disabled",
            Err(_) => "unavailable",
        },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::route_template;

    #[test]
    fn route_templates_hide_names() {
        assert_eq!(route_template("/api/v1/health"), "/api/v1/health");
        assert_eq!(
            route_template("/api/v1/agents/echo/messages"),
            "/api/v1/agents/:name/messages"
        );
        assert_eq!(
            route_template("/api/v1/memory/entities/Alice%20Smith"),
            "/api/v1/memory/entities/:name"
        );
        assert_eq!(
            route_template("/api/v1/memory/entities"),
            "/api/v1/memory/entities"
        );
        assert_eq!(
            route_template("/api/v1/agents/validate"),
            "/api/v1/agents/validate"
        );
        assert_eq!(
            route_template("/api/v1/agents/validate/messages"),
            "/api/v1/agents/:name/messages"
        );
        assert_eq!(route_template("/wp-admin/x"), "other");
        assert_eq!(route_template("/api/v1/Random123"), "other");
    }
}
