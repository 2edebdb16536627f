//! The HTTP API: thin warp routes over the services. Every error leaves in
//! the one shape defined in [`error`].

mod agents;
mod chat;
mod embeddings;
mod error;
mod fleet;
mod history;
mod memory;
mod messages;
pub mod request_id;
mod routes;
mod status;

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
pub use fleet::{FleetRemote, ServeFleet};
pub use messages::send_to_agent;
pub use routes::{MCP_PATH, ROUTES, Resolved, Route, resolve, route_template};

use crate::agents::{AgentRegistry, Deployments};
use crate::embed::{EmbedError, EmbeddingEngine};
use crate::memory::Memory;
use crate::messaging::Messenger;

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
    /// The fleet this host is part of (`[cluster]`), if any.
    pub fleet: Option<Arc<crate::cluster::Fleet>>,
    pub started: Instant,
    pub max_request_size: u64,
    pub max_import_size: u64,
    /// The host's recorded metrics (`[history]`), when on.
    pub history: Option<Arc<crate::history::History>>,
}

/// Routes as a function from request to response: what the HTTP front
/// runs behind its checks.
pub type Handler = Arc<
    dyn Fn(
            warp::http::Request<hyper::body::Incoming>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>
        + Send
        + Sync,
>;

/// The routes as a plain request-to-response function, for the HTTP
/// front's pipeline.
pub fn handler(state: ApiState) -> Handler {
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

    let send_to_agent =
        warp::path!("api" / "v1" / "agents" / PathParam / "messages")
            .and(warp::post())
            .and(warp::header::optional::<String>("accept"))
            .and(warp::body::content_length_limit(state.max_request_size))
            .and(warp::body::bytes())
            .and(with_state.clone())
            .then(
                |PathParam(agent): PathParam,
                 accept: Option<String>,
                 body: Bytes,
                 state: ApiState| async move {
                    if accept.is_some_and(|a| a.contains("text/event-stream")) {
                        chat::agent_events(&state, &agent, &body).await
                    } else {
                        respond(messages::send_to_agent(&state, &agent, &body).await)
                    }
                },
            );
    let chat_completions = warp::path!("api" / "v1" / "chat" / "completions")
        .and(warp::post())
        .and(warp::body::content_length_limit(state.max_request_size))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(|body: Bytes, state: ApiState| async move { chat::completions(&state, &body).await });
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
    let latest = warp::path!("api" / "v1" / "conversations")
        .and(warp::get())
        .and(warp::query::<messages::LatestQuery>())
        .and(with_state.clone())
        .then(|query: messages::LatestQuery, state: ApiState| async move {
            respond(messages::latest(&state, &query).await)
        });
    let status = warp::path!("api" / "v1" / "status")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: ApiState| async move { respond(status::status(&state).await) });
    let cluster_nodes = warp::path!("api" / "v1" / "cluster" / "nodes")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: ApiState| async move { respond(fleet::nodes(&state).await) });
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
    let history_report = warp::path!("api" / "v1" / "history")
        .and(warp::get())
        .and(warp::query::<history::ReportQuery>())
        .and(with_state.clone())
        .then(|query: history::ReportQuery, state: ApiState| async move {
            respond(history::report(&state, &query).await)
        });
    let history_alerts = warp::path!("api" / "v1" / "history" / "alerts")
        .and(warp::get())
        .and(warp::query::<history::AlertsQuery>())
        .and(with_state.clone())
        .then(|query: history::AlertsQuery, state: ApiState| async move {
            respond(history::alerts(&state, &query).await)
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
        .map(|state: ApiState| warp::reply::json(&chat::models(&state)).into_response());
    let model = warp::path!("api" / "v1" / "models" / PathParam)
        .and(warp::get())
        .and(with_state.clone())
        .map(
            |PathParam(id): PathParam, state: ApiState| match chat::model(&state, &id) {
                Ok(body) => warp::reply::json(&body).into_response(),
                Err(error) => error.into_response(),
            },
        );

    let mcp_servers = warp::path!("api" / "v1" / "mcp" / "servers")
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: ApiState| {
            let servers = state
                .registry
                .mcp_servers()
                .map(|s| s.status())
                .unwrap_or_default();
            warp::reply::json(&serde_json::json!({ "servers": servers })).into_response()
        });

    // Each route is boxed: one flat list of boxed filters keeps warp's
    // nested future types shallow enough for the compiler.
    let routes: Vec<BoxedFilter<(Response,)>> = vec![
        health.boxed(),
        ready.boxed(),
        openapi.boxed(),
        send_to_agent.boxed(),
        chat_completions.boxed(),
        list_agents.boxed(),
        deploy_agent.boxed(),
        validate_agent.boxed(),
        show_agent.boxed(),
        replace_agent.boxed(),
        remove_agent.boxed(),
        reload_agent.boxed(),
        send_message.boxed(),
        latest.boxed(),
        status.boxed(),
        history_report.boxed(),
        history_alerts.boxed(),
        cluster_nodes.boxed(),
        conversation.boxed(),
        thread.boxed(),
        embeddings.boxed(),
        models.boxed(),
        model.boxed(),
        mcp_servers.boxed(),
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

/// Ready once the embedding model is loaded (or semantic search is off):
/// what a load balancer or supervisor should wait for after a start.
fn ready(state: ApiState) -> Response {
    let embeddings = embeddings_state(&state.embeddings);
    if embeddings == "loading" {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "loading",
            "the embedding model is still loading",
        );
        error.retry_after_secs = Some(1);
        return error.into_response();
    }
    // Providers are reported, never waited for: an agent host is ready
    // while its model server is still starting (its agents say so).
    warp::reply::json(&json!({
        "ready": true,
        "embeddings": embeddings,
        "llm_providers": state.registry.llm().map(|llm| llm.statuses()),
    }))
    .into_response()
}

/// What health, ready and status say of the embedding engine.
pub(super) fn embeddings_state(
    embeddings: &Result<Arc<EmbeddingEngine>, EmbedError>,
) -> &'static str {
    match embeddings {
        Ok(engine) if engine.load_time().is_some() => "ready",
        Ok(_) => "loading",
        Err(EmbedError::Disabled) => "disabled",
        Err(error) if error.is_not_installed() => "not_installed",
        Err(_) => "unavailable",
    }
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
        "llm_providers": state.registry.llm().map(|llm| llm.statuses()),
        "resident_memory_bytes": crate::metrics::resident_memory_bytes(),
        "embeddings": embeddings_state(&state.embeddings),
    }))
    .into_response()
}
