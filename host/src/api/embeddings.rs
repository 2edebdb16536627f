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
    if let Some(model) = &request.model
        && !serves(engine, model)
    {
        return Err(ApiError::bad_request(format!(
            "model {model:?} is not available; this host serves {:?}",
            engine.model_name()
        )));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format {other:?} is not supported; send \"float\" (the default) or \"base64\""
            )));
        }
    };
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

    // API clients share one turn: agents' own work is not queued behind them.
    let embedded = engine
        .embed_as("api", &texts)
        .await
        .map_err(|e| from_embed(&e))?;
    let tokens: usize = embedded.iter().map(|e| e.tokens).sum();
    let data: Vec<_> = embedded
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if base64 {
                json!(encode_base64(&e.vector))
            } else {
                json!(e.vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": engine.model_name(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

/// The vector as OpenAI's `base64` encoding has it: the little-endian
/// float32 bytes, base64 (standard alphabet, padded).
fn encode_base64(vector: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `GET /api/v1/models`: OpenAI's model list, so clients and UIs that ask
/// which models a server has find the embedding model.
pub fn models(engine: Result<&EmbeddingEngine, &EmbedError>) -> serde_json::Value {
    let data: Vec<_> = engine.ok().map(model_object).into_iter().collect();
    json!({"object": "list", "data": data})
}

/// `GET /api/v1/models/{model}`.
pub fn model(
    engine: Result<&EmbeddingEngine, &EmbedError>,
    id: &str,
) -> Result<serde_json::Value, ApiError> {
    match engine {
        Ok(engine) if serves(engine, id) => Ok(model_object(engine)),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("no model {id:?} here; GET /api/v1/models lists the models this host serves"),
        )),
    }
}

fn model_object(engine: &EmbeddingEngine) -> serde_json::Value {
    json!({
        "id": engine.model_name(),
        "object": "model",
        // The model ships with the binary: its creation is this build's.
        "created": 0,
        "owned_by": "caxton",
    })
}

/// Whether `model` names the served model, bare or with an organisation
/// prefix (`sentence-transformers/all-MiniLM-L6-v2`).
fn serves(engine: &EmbeddingEngine, model: &str) -> bool {
    let served = engine.model_name();
    model == served || model.rsplit('/').next() == Some(served)
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
