//! What every request goes through, in order: a request id, the `Host`
//! check (auth off), the client's rate limit, the bearer token, the
//! server's rate limit, the body's media type, the route (with a
//! deadline), compression, and the request metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use warp::Reply;
use warp::http::{HeaderValue, Method, Request, StatusCode, header};
use warp::reply::Response;

use super::compress;
use super::guard::{self, AllowedHosts};
use super::rate_limit::RateLimiter;
use crate::api::{ApiError, Handler, Resolved, request_id, resolve};
use crate::auth::LiveToken;
use crate::config::HttpServerConfig;
use crate::metrics::metrics;

pub struct Pipeline {
    routes: Handler,
    /// The bearer token every protected route needs; `None` = auth off.
    token: Option<Arc<LiveToken>>,
    limiter: Option<RateLimiter>,
    /// With auth off, the names the `Host` header may give.
    hosts: Option<AllowedHosts>,
    /// The names the `Host` header may give for MCP, auth on or off: the
    /// MCP specification asks servers to check it on every request.
    mcp_hosts: Option<AllowedHosts>,
    settings: HttpServerConfig,
}

impl Pipeline {
    /// `listen` is the API's address: with auth off, requests must name it.
    pub fn new(
        routes: Handler,
        token: Option<Arc<LiveToken>>,
        settings: &HttpServerConfig,
        listen: std::net::SocketAddr,
    ) -> Self {
        Self {
            routes,
            hosts: token
                .is_none()
                .then(|| AllowedHosts::new(listen, &settings.allowed_hosts)),
            mcp_hosts: Some(AllowedHosts::new(listen, &settings.allowed_hosts)),
            token,
            limiter: settings
                .rate_limit
                .enabled
                .then(|| RateLimiter::new(settings.rate_limit.clone())),
            settings: settings.clone(),
        }
    }

    /// The metrics listener's front: limits and timeouts, no token, no
    /// rate limit (scrapers are trusted by address, and are few).
    pub fn metrics(routes: Handler, settings: &HttpServerConfig) -> Self {
        Self {
            routes,
            token: None,
            limiter: None,
            hosts: None,
            mcp_hosts: None,
            settings: settings.clone(),
        }
    }

    pub async fn handle(&self, request: Request<Incoming>, client: IpAddr) -> Response {
        let started = Instant::now();
        let id = request_id::from_headers(request.headers());
        let method = method_label(request.method());
        // The route table is read once per request: the label, the auth
        // exemption and the body's media types all come from this.
        let route = resolve(request.method().as_str(), request.uri().path());
        let gzip = self.settings.compression && compress::accepts_gzip(request.headers());

        let mut response =
            request_id::scope(id.clone(), self.dispatch(request, client, &route)).await;
        if gzip {
            response = compress::gzip_json(response, self.settings.compression_min_bytes).await;
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(request_id::HEADER, value);
        }

        let status = response.status().as_u16().to_string();
        let labels = [route.template.as_str(), method, status.as_str()];
        let m = metrics();
        m.requests.with_label_values(&labels).inc();
        m.request_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        response
    }

    async fn dispatch(
        &self,
        request: Request<Incoming>,
        client: IpAddr,
        route: &Resolved,
    ) -> Response {
        let hosts = match route.template.as_str() {
            crate::api::MCP_PATH => &self.mcp_hosts,
            _ => &self.hosts,
        };
        if let Some(hosts) = hosts
            && !hosts.allows(request.headers())
        {
            return ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                "the Host header does not name this server; with auth off, only its listen address (and localhost on loopback) or [http_server] allowed_hosts are accepted",
            )
            .into_response();
        }
        if let Some(hosts) = &self.hosts
            && !matches!(*request.method(), Method::GET | Method::HEAD)
            && !hosts.allows_origin(request.headers())
        {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "with auth off, only pages served by this host may change it; the request's Origin is another site",
            )
            .into_response();
        }
        if !route.public {
            if let Some(limiter) = &self.limiter
                && let Err(wait) = limiter.check_client(client)
            {
                return rate_limited(wait);
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
            if let Some(limiter) = &self.limiter
                && let Err(wait) = limiter.check_global()
            {
                return rate_limited(wait);
            }
        }
        if let Some(accepted) = route.body
            && !guard::content_type_is(request.headers(), accepted)
        {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the body with Content-Type: {}", accepted.join(" or ")),
            )
            .into_response();
        }
        // The route runs as its own task: a timed-out request stops waiting,
        // but the work it started (a store write, a plugin call) finishes
        // cleanly instead of being cut off halfway.
        let id = request_id::current().unwrap_or_default();
        let hang_up = request.extensions().get::<super::HangUp>().cloned();
        // Reads have nothing to finish: when the client hangs up (hyper
        // drops this future) or the deadline passes, their work stops too.
        let read_only = matches!(*request.method(), Method::GET | Method::HEAD);
        let work = tokio::spawn(request_id::scope(id, (self.routes)(request)));
        let _stop = read_only.then(|| AbortOnDrop(work.abort_handle()));
        let (limit, key) = if route.compiles {
            (self.settings.deploy_timeout, "deploy_timeout")
        } else {
            (self.settings.request_timeout, "request_timeout")
        };
        match tokio::time::timeout(limit, work).await {
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
                    format!("the request took longer than http_server.{key} ({limit:?})"),
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

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn rate_limited(wait: u32) -> Response {
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests; retry after the number of seconds in Retry-After",
    );
    error.retry_after_secs = Some(wait);
    error.into_response()
}

/// The method as a metric label: a fixed set, so made-up methods cannot
/// grow the series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
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
