//! What every request goes through, in order: a request id, the rate
//! limit, the bearer token, the route (with a deadline), compression, and
//! the request metrics.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use warp::Reply;
use warp::http::{HeaderValue, Request, StatusCode, header};
use warp::reply::Response;

use super::compress;
use super::rate_limit::RateLimiter;
use crate::api::{ApiError, request_id, route_template};
use crate::auth::LiveToken;
use crate::config::HttpServerConfig;
use crate::metrics::metrics;

/// The routes, as a function from request to response.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

pub struct Pipeline {
    routes: Handler,
    /// The bearer token every protected route needs; `None` = auth off.
    token: Option<Arc<LiveToken>>,
    limiter: Option<RateLimiter>,
    settings: HttpServerConfig,
}

/// Routes anyone may call: probes must work without credentials and must
/// not be starved by a client that hit its rate limit.
fn is_exempt(path: &str) -> bool {
    matches!(path, "/api/v1/health" | "/api/v1/ready")
}

impl Pipeline {
    pub fn new(
        routes: Handler,
        token: Option<Arc<LiveToken>>,
        settings: &HttpServerConfig,
    ) -> Self {
        Self {
            routes,
            token,
            limiter: settings
                .rate_limit
                .enabled
                .then(|| RateLimiter::new(settings.rate_limit.clone())),
            settings: settings.clone(),
        }
    }

    pub async fn handle(&self, request: Request<Incoming>, client: IpAddr) -> Response {
        let started = Instant::now();
        let id = request_id::from_headers(request.headers());
        let method = request.method().as_str().to_owned();
        let route = route_template(request.uri().path());
        let gzip = self.settings.compression && compress::accepts_gzip(request.headers());

        let mut response = request_id::scope(id.clone(), self.dispatch(request, client)).await;
        if gzip {
            response = compress::gzip_json(response, self.settings.compression_min_bytes).await;
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(request_id::HEADER, value);
        }

        let status = response.status().as_u16().to_string();
        let labels = [route.as_str(), method.as_str(), status.as_str()];
        let m = metrics();
        m.requests.with_label_values(&labels).inc();
        m.request_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        response
    }

    async fn dispatch(&self, request: Request<Incoming>, client: IpAddr) -> Response {
        if !is_exempt(request.uri().path()) {
            if let Some(limiter) = &self.limiter
                && let Err(wait) = limiter.check(client)
            {
                let mut error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; retry after the number of seconds in Retry-After",
                );
                error.retry_after_secs = Some(wait);
                return error.into_response();
            }
            if let Some(token) = &self.token
                && !bearer(&request).is_some_and(|presented| token.matches(presented))
            {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send `Authorization: Bearer <token>`; the token is in the data dir's auth-token file (`caxton auth token` prints it)",
                )
                .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"caxton\""),
                );
                return response;
            }
        }
        // The route runs as its own task: a timed-out request stops waiting,
        // but the work it started (a store write, a plugin call) finishes
        // cleanly instead of being cut off halfway.
        let id = request_id::current().unwrap_or_default();
        let hang_up = request.extensions().get::<super::HangUp>().cloned();
        let work = tokio::spawn(request_id::scope(id, (self.routes)(request)));
        match tokio::time::timeout(self.settings.request_timeout, work).await {
            Ok(Ok(response)) => response,
            Ok(Err(panic)) => {
                tracing::error!(%panic, "a request handler panicked");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request failed unexpectedly; the server log has details",
                )
                .into_response()
            }
            Err(_) => {
                let mut response = ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request took longer than http_server.request_timeout ({:?})",
                        self.settings.request_timeout
                    ),
                )
                .into_response();
                // The connection may still be mid-body (a client trickling
                // its upload): closing it frees the connection slot and
                // ends the route's read, instead of letting it hold on.
                if let Some(hang_up) = hang_up {
                    hang_up.request();
                }
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer<B>(request: &Request<B>) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
