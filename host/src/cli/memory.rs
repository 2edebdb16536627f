//! `caxton memory stats|search|export|import`: the knowledge graph of a
//! running server, over its HTTP API.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{ApiClient, ServerArgs};
use super::output;

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Counts, database and index size, embedding cache hit rate; with
    /// `--detailed` or `--last`, search latency and cache figures from the
    /// recorded history, and with `--trends` how they moved.
    Stats {
        /// Add the window's figures from the history (default window 1h).
        #[arg(long)]
        detailed: bool,
        /// The window: 30m, 1h, 7d, 2w.
        #[arg(long)]
        last: Option<String>,
        /// The window in seven slices, per series.
        #[arg(long)]
        trends: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Entities, relations, database, pool and history against their
    /// limits; exits 5 when one is over.
    CapacityCheck {
        /// Show each item as a share of its limit (the default).
        #[arg(long)]
        percentage: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Hit rates of the embedding and LLM response caches over a window.
    CacheAnalysis {
        /// Hit rates per cache (the default).
        #[arg(long)]
        hit_rates: bool,
        /// Texts per embedding inference (batching efficiency).
        #[arg(long)]
        efficiency: bool,
        /// The window: 30m, 1h, 7d.
        #[arg(long, default_value = "24h")]
        last: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The embedding model: cache, hit rate, generation time, batching.
    EmbeddingStats {
        /// Every figure (the default).
        #[arg(long)]
        detailed: bool,
        /// The cache's figures too (kept for the guide's spelling).
        #[arg(long)]
        cache_analysis: bool,
        /// The window: 30m, 1h, 7d.
        #[arg(long, default_value = "24h")]
        last: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The operators' guide's migration readiness report: how near this
    /// box's memory is to the limits where a shared primary is worth it.
    MigrationReadiness {
        /// Every item, with the limits used.
        #[arg(long)]
        detailed: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Hybrid (meaning + keyword) search.
    Search {
        /// What to look for, in plain words.
        query: String,
        /// Search as this agent (its scopes); default: the operator (all).
        #[arg(long)]
        agent: Option<String>,
        /// Most hits to return.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Only entities of this type.
        #[arg(long)]
        entity_type: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write the whole graph as JSON lines (to a file or stdout).
    Export {
        /// Destination file; default: stdout.
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// Leave out the stored embeddings (smaller; an import re-embeds).
        #[arg(long)]
        no_embeddings: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Load a JSON-lines export; existing entities gain what they lack.
    Import {
        /// A file written by `caxton memory export`.
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl MemoryCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        match self {
            MemoryCommand::Stats {
                detailed,
                last,
                trends,
                server,
            } => {
                if *detailed || *trends || last.is_some() {
                    let last = last.as_deref().unwrap_or(if *trends { "7d" } else { "1h" });
                    super::operator::memory_stats(server, last, *trends).await?;
                } else {
                    let stats = ApiClient::new(server)
                        .get_json("/api/v1/memory/stats")
                        .await?;
                    output::print(server.output, &stats, output::fields);
                }
            }
            MemoryCommand::CapacityCheck { server, .. } => {
                super::operator::capacity_check(server).await?;
            }
            MemoryCommand::CacheAnalysis { last, server, .. } => {
                super::operator::cache_analysis(server, last).await?;
            }
            MemoryCommand::EmbeddingStats { last, server, .. } => {
                super::operator::embedding_stats(server, last).await?;
            }
            MemoryCommand::MigrationReadiness { detailed, server } => {
                super::readiness::migration_readiness(server, *detailed).await?;
            }
            MemoryCommand::Search {
                query,
                agent,
                limit,
                entity_type,
                server,
            } => {
                let body = json!({
                    "query": query,
                    "agent": agent,
                    "limit": limit,
                    "entity_type": entity_type,
                });
                let found = ApiClient::new(server)
                    .post_json("/api/v1/memory/search", &body)
                    .await?;
                output::print(server.output, &found, print_hits);
            }
            MemoryCommand::Export {
                file,
                no_embeddings,
                server,
            } => export(server, file.as_ref(), !no_embeddings).await?,
            MemoryCommand::Import { file, server } => {
                let body = std::fs::read(file).map_err(|e| {
                    anyhow::anyhow!("cannot read the export {}: {e}", file.display())
                })?;
                let report = ApiClient::new(server)
                    .post_bytes("/api/v1/memory/import", "application/x-ndjson", body)
                    .await?;
                output::print(server.output, &report, output::fields);
            }
        }
        Ok(())
    }
}

fn print_hits(found: &Value) {
    let rows: Vec<Vec<String>> = found["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|hit| {
            vec![
                format!("{:.4}", hit["score"].as_f64().unwrap_or(0.0)),
                output::plain(&hit["entity"]),
                output::plain(&hit["entity_type"]),
                output::plain(&hit["scope"]),
                output::plain(&hit["observation"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no matches");
        return;
    }
    output::table(&["SCORE", "ENTITY", "TYPE", "SCOPE", "OBSERVATION"], &rows);
}

/// Streams the export to `file` (written beside and renamed into place, so
/// a failed export never leaves a truncated file behind) or to stdout.
async fn export(
    server: &ServerArgs,
    file: Option<&PathBuf>,
    embeddings: bool,
) -> anyhow::Result<()> {
    let mut response = ApiClient::new(server)
        .get_stream(&format!("/api/v1/memory/export?embeddings={embeddings}"))
        .await?;
    let (mut sink, partial): (Box<dyn Write>, Option<PathBuf>) = match file {
        Some(path) => {
            let partial = path.with_extension("partial");
            let created = std::fs::File::create(&partial)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", partial.display()))?;
            (Box::new(std::io::BufWriter::new(created)), Some(partial))
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let mut bytes = 0usize;
    let mut lines = 0usize;
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        sink.write_all(&chunk)?;
    }
    sink.flush()?;
    drop(sink);
    if let (Some(partial), Some(path)) = (partial, file) {
        std::fs::rename(&partial, path)?;
        eprintln!(
            "exported {lines} lines ({:.1} MB) to {}",
            bytes as f64 / 1e6,
            path.display()
        );
    }
    Ok(())
}
