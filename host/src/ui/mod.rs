//! The status page: three static files carried in the binary, served at
//! `/ui/` (and `/` redirects there). No token is needed to load them (they
//! hold no data); the page asks for the token and sends it on every API
//! call it makes. Nothing is loaded from elsewhere: the content security
//! policy allows this host only.

use std::sync::Arc;

use warp::Reply;
use warp::http::{HeaderValue, Method, StatusCode, header};

use crate::api::Handler;

/// Where the page lives.
pub const UI_PREFIX: &str = "/ui/";

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Whether `path` is one of the page's paths (`/` included): public, and
/// answered here rather than by the API routes.
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with(UI_PREFIX)
}

/// `routes` with the page in front.
pub fn mount(routes: Handler) -> Handler {
    Arc::new(move |request| {
        let path = request.uri().path();
        if !is_ui_path(path) {
            return routes(request);
        }
        let response = page(request.method(), path);
        Box::pin(async move { response })
    })
}

fn page(method: &Method, path: &str) -> warp::reply::Response {
    if method != Method::GET && method != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the status page is read with GET",
        );
    }
    let (body, media_type) = match path {
        "/" | "/ui" => {
            return warp::reply::with_header(
                warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER),
                header::LOCATION,
                UI_PREFIX,
            )
            .into_response();
        }
        "/ui/" | "/ui/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/ui/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/ui/app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => {
            return plain(
                StatusCode::NOT_FOUND,
                "no such page; the status page is at /ui/",
            );
        }
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change only with the binary; a restart to a new version
    // must not leave an old script running against a new API.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> warp::reply::Response {
    warp::reply::with_status(text, status).into_response()
}
