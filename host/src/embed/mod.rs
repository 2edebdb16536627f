//! Local sentence embeddings: all-MiniLM-L6-v2 (int8 weights) on tract,
//! batched on dedicated threads, with an LRU cache in front.

mod engine;
mod graph;
pub mod install;
mod int8;
mod model;
mod queue;

use std::path::PathBuf;

pub use engine::{CacheStats, EmbeddingEngine};
pub use model::{Embedded, Encoder, FileSpec, ModelSpec};

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("unknown embedding model {0:?}; models/manifest.toml lists the supported ones")]
    UnknownModel(String),
    #[error(
        "embedding model file {path} is missing ({source}); fetch it with `caxton models fetch`, \
         or set memory.embedding_config.enabled = false"
    )]
    MissingFile {
        path: PathBuf,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error(
        "embedding model file {path} is corrupt (sha256 {actual}, expected {expected}); \
         replace it with `caxton models fetch`"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot load embedding model {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("cannot tokenize: {0}")]
    Tokenize(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("the embedding queue is full; retry shortly")]
    Busy,
    #[error("semantic search is disabled (memory.embedding_config.enabled = false)")]
    Disabled,
    #[error("the embedding engine stopped")]
    Stopped,
}

impl EmbedError {
    /// The model is simply not there (a file not found): the host serves
    /// without it, and `caxton models fetch` is the fix. Any other I/O
    /// failure (a permission, say) is a fault to report as such.
    pub fn is_not_installed(&self) -> bool {
        matches!(self, EmbedError::MissingFile { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound)
    }
}
