//! `POST /api/v1/embeddings`, in the OpenAI embeddings request and response
//! shape so existing clients work against it unchanged.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::ApiError;
use crate::embed::{EmbedError, EmbeddingEngine};

/// Inputs per request, as OpenAI allows.
const MAX_INPUTS: usize = 2048;

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    input: Input,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    /// Accepted for compatibility; not used.
    #[serde(default, rename = "user")]
    _user: Option<String>,
}

pub async fn embeddings(
    engine: Result<&EmbeddingEngine, &EmbedError>,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    let engine = engine.map_err(from_embed)?;
    let request: EmbeddingsRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "body is not an embeddings request: {e}. Send {{\"input\": \"text\"}} or {{\"input\": [\"a\", \"b\"]}}"
        ))
    })?;
    if let Some(model) = &request.model {
        let served = engine.model_name();
        if model != served && model.rsplit('/').next() != Some(served) {
            return Err(ApiError::bad_request(format!(
                "model {model:?} is not available; this host serves {served:?}"
            )));
        }
    }
    if request
        .encoding_format
        .as_deref()
        .is_some_and(|f| f != "float")
    {
        return Err(ApiError::bad_request(
            "encoding_format: only \"float\" is supported",
        ));
    }
    if request.dimensions.is_some_and(|d| d != engine.dims()) {
        return Err(ApiError::bad_request(format!(
            "dimensions: this model produces {} dimensions",
            engine.dims()
        )));
    }
    let texts = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
    };
    if texts.is_empty() || texts.len() > MAX_INPUTS {
        return Err(ApiError::bad_request(format!(
            "input: send between 1 and {MAX_INPUTS} texts"
        )));
    }

    let embedded = engine.embed(&texts).await.map_err(|e| from_embed(&e))?;
    let tokens: usize = embedded.iter().map(|e| e.tokens).sum();
    let data: Vec<_> = embedded
        .iter()
        .enumerate()
        .map(|(index, e)| json!({"object": "embedding", "index": index, "embedding": e.vector}))
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": engine.model_name(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

fn from_embed(error: &EmbedError) -> ApiError {
    let (status, code) = match error {
        EmbedError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "embeddings_busy"),
        EmbedError::Disabled => (StatusCode::SERVICE_UNAVAILABLE, "embeddings_disabled"),
        EmbedError::Tokenize(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        // The model is not there to use: a host condition, not a fault.
        EmbedError::UnknownModel(_)
        | EmbedError::MissingFile { .. }
        | EmbedError::Checksum { .. }
        | EmbedError::Model { .. } => (StatusCode::SERVICE_UNAVAILABLE, "embeddings_unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "embeddings_failed"),
    };
    let mut api = ApiError::new(status, code, error.to_string());
    if matches!(error, EmbedError::Busy) {
        api.retry_after_secs = Some(1);
    }
    api
}
