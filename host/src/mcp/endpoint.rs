//! `/mcp`: rmcp's Streamable HTTP service mounted in front of the API's
//! routes. It serves the `2026-07-28` revision statelessly and the
//! earlier ones (`2025-11-25`: `initialize`, `Mcp-Session-Id`) with
//! sessions. The token, rate limits, `Host` check and request metrics are
//! the front's (`http::Pipeline`); the `Origin` check and the body cap
//! are rmcp's, configured here.

use std::sync::Arc;

use http_body_util::BodyDataStream;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use warp::Reply;
use warp::http::Request;
use warp::reply::Response;

use super::server::CaxtonMcp;
use crate::api::{ApiState, Handler, MCP_PATH};
use crate::mcp_client::McpConfig;

pub struct McpEndpoint {
    service: StreamableHttpService<CaxtonMcp, LocalSessionManager>,
    /// Ends every session and open event stream (at shutdown).
    stop: tokio_util::sync::CancellationToken,
}

impl McpEndpoint {
    pub fn new(state: ApiState, config: &McpConfig) -> Arc<Self> {
        let max_body = usize::try_from(state.max_request_size).unwrap_or(usize::MAX);
        let stop = tokio_util::sync::CancellationToken::new();
        let settings = StreamableHttpServerConfig::default()
            .with_cancellation_token(stop.clone())
            // The front checks `Host` against the listen address and
            // [http_server] allowed_hosts, for every route alike.
            .disable_allowed_hosts()
            // A browser page may call only from the origins listed; with an
            // empty list any request carrying `Origin` is refused.
            .with_allowed_origins(config.allowed_origins.clone())
            .enforce_origin_validation()
            .with_max_request_body_bytes(max_body);
        let server = CaxtonMcp::new(state);
        let service = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            settings,
        );
        Arc::new(Self { service, stop })
    }

    /// Ends the sessions and their event streams: a client's open stream
    /// would otherwise keep the server's graceful shutdown waiting.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    pub async fn handle(&self, request: Request<hyper::body::Incoming>) -> Response {
        let response = self.service.handle(request).await;
        let (parts, body) = response.into_parts();
        let mut reply = warp::reply::stream(BodyDataStream::new(body)).into_response();
        *reply.status_mut() = parts.status;
        *reply.headers_mut() = parts.headers;
        reply
    }
}

/// `routes` with the MCP endpoint answering at [`MCP_PATH`].
pub fn mount(routes: Handler, endpoint: Arc<McpEndpoint>) -> Handler {
    Arc::new(move |request| {
        if request.uri().path() == MCP_PATH {
            let endpoint = endpoint.clone();
            Box::pin(async move { endpoint.handle(request).await })
        } else {
            routes(request)
        }
    })
}
