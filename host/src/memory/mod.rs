//! Agents' persistent memory: a knowledge graph (entities, observations,
//! relations) in one libsql file, with hybrid search — an in-process vector
//! index over observation embeddings fused with FTS5 keyword matches.

mod backfill;
mod cleanup;
mod edit;
mod graph;
mod index;
mod index_file;
mod scope;
mod subgraph;
mod transfer;

use std::path::PathBuf;

pub use cleanup::CleanupReport;
pub use graph::{
    EntityView, MAX_NEIGHBOURHOOD, Memory, Neighbourhood, RelationView, RememberOutcome, SearchHit,
    SearchOptions, Stats,
};
pub use index::{VectorIndex, quantize};
pub use scope::{Caller, DEFAULT_WORKSPACE, Scope};
pub use subgraph::{Graph, MAX_GRAPH_ENTITIES, MAX_GRAPH_RELATIONS};
pub use transfer::{EntityKey, ExportLine, ImportReport, ObservationLine};

use crate::embed::EmbedError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] libsql::Error),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no entity named {0:?} is visible to the caller")]
    NotFound(String),
    #[error("embedding failed: {0}")]
    Embed(#[from] EmbedError),
}

impl MemoryError {
    /// The store could not grow: the disk (or the file size limit) is full.
    /// Reads still work; writes work again once space is freed.
    pub fn is_disk_full(&self) -> bool {
        match self {
            MemoryError::Store(error) => error.is_disk_full(),
            MemoryError::Sql(error) => StoreError::is_disk_full_sql(error),
            MemoryError::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            _ => false,
        }
    }

    /// The memory primary (`[memory] primary_url`) could not be reached:
    /// nothing was written; reads still work from the replica.
    pub fn is_unavailable(&self) -> bool {
        match self {
            MemoryError::Store(error) => error.is_unavailable(),
            MemoryError::Sql(error) => StoreError::is_unavailable_sql(error),
            _ => false,
        }
    }
}

pub(crate) use crate::store::now_ms;
