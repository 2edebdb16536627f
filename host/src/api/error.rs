//! The one error shape of the HTTP API:
//! `{"error": {"code", "message", "details", "request_id"}}`, with a fitting
//! status and, for backpressure, a `Retry-After` header.

use std::convert::Infallible;

use serde_json::{Value, json};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::agents::AgentError;
use crate::runtime::{CallUsage, PluginError, RuntimeError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: std::borrow::Cow<'static, str>,
    pub message: String,
    pub details: Value,
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: std::borrow::Cow::Borrowed(code),
            message: message.into(),
            details: Value::Null,
            retry_after_secs: None,
        }
    }

    /// An error another host of the fleet answered, with its own code.
    pub fn remote(status: StatusCode, code: String, message: impl Into<String>) -> Self {
        Self {
            status,
            code: std::borrow::Cow::Owned(code),
            message: message.into(),
            details: Value::Null,
            retry_after_secs: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A runtime fault during a call, with the usage measured up to it.
    pub fn from_runtime(error: &RuntimeError, usage: &CallUsage) -> Self {
        let status = match error {
            RuntimeError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
            RuntimeError::PoolExhausted | RuntimeError::PluginBusy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RuntimeError::OutOfFuel { .. }
            | RuntimeError::MemoryLimit(_)
            | RuntimeError::Trap { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut api = Self::new(status, error.code(), error.to_string())
            .with_details(json!({ "usage": usage }));
        if matches!(
            error,
            RuntimeError::PoolExhausted | RuntimeError::PluginBusy { .. }
        ) {
            api.retry_after_secs = Some(1);
        }
        api
    }

    /// The plugin ran and returned an error value.
    pub fn from_plugin(error: &PluginError, usage: &CallUsage) -> Self {
        let (kind, text) = match error {
            PluginError::InvalidInput(t) => ("invalid-input", t),
            PluginError::NotFound(t) => ("not-found", t),
            PluginError::Denied(t) => ("denied", t),
            PluginError::Unavailable(t) => ("unavailable", t),
            PluginError::Timeout(t) => ("timeout", t),
            PluginError::Internal(t) => ("internal", t),
        };
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin_error",
            format!("the plugin returned an error ({kind}): {text}"),
        )
        .with_details(json!({ "kind": kind, "usage": usage }))
    }

    pub fn from_agent(error: &AgentError) -> Self {
        match error {
            AgentError::NotFound(_) => Self::new(
                StatusCode::NOT_FOUND,
                "agent_not_found",
                format!("{error}; GET /api/v1/health lists how many agents are deployed"),
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "agent_error",
                error.to_string(),
            ),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
                "request_id": super::request_id::current(),
            }
        });
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}

/// Turns warp's own rejections (no route, wrong method, body too large...)
/// into the same error shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{
        InvalidQuery, LengthRequired, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType,
    };

    let error = if rejection.is_not_found() {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route; the API lives under /api/v1",
        )
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than server.max_request_size",
        )
    } else if rejection.find::<LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header with the body",
        )
    } else if rejection.find::<InvalidQuery>().is_some() {
        // Checked before the method: warp also reports the other routes
        // of the path as "wrong method" when the query is what failed.
        ApiError::bad_request(
            "invalid query string: unknown parameter or a value of the wrong type; see /api/v1/openapi.json",
        )
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept that HTTP method",
        )
    } else if rejection.find::<UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        )
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "unexpected error",
        )
    };
    Ok(error.into_response())
}
