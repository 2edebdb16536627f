//! The `caxton` command line.

mod agents;
#[cfg(feature = "benchmark")]
mod benchmark;
pub mod client;
mod cluster;
mod config;
mod mcp;
mod memory;
mod models;
pub mod operator;
mod output;
mod readiness;
mod remote;
mod run_once;
mod service;

pub use agents::AgentsCommand;
#[cfg(feature = "benchmark")]
pub use benchmark::{AgentsBenchArgs, BenchmarkCommand, FaultsBenchArgs, MemoryBenchArgs};
pub use cluster::ClusterCommand;
pub use config::ConfigCommand;
pub use mcp::McpCommand;
pub use memory::MemoryCommand;
pub use models::ModelsCommand;
pub use remote::{ConversationsCommand, SendArgs, SystemCommand, health};
pub use service::ServiceCommand;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "caxton",
    version,
    about = "An agent host for edge and desktop boxes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: load the agents and serve the HTTP API.
    Serve(ServeArgs),
    /// Embed texts locally (no server needed); prints one JSON line per text.
    Embed(EmbedArgs),
    /// Write, show and check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The API token.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// The agents of a running server; `validate` works offline.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Send one message (by capability or to an agent) and print the reply.
    Send(SendArgs),
    /// Conversations recorded by a running server.
    #[command(subcommand)]
    Conversations(ConversationsCommand),
    /// Resource use of a running server.
    #[command(subcommand)]
    System(SystemCommand),
    /// Is the server up? Exits 0 when healthy, 3 when no server answers.
    Health(client::ServerArgs),
    /// The knowledge graph of a running server.
    #[command(subcommand)]
    Memory(MemoryCommand),
    /// The fleet (`[cluster]`): its hosts and their agents.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// MCP: the servers agents use as tools, and a stdio bridge to /mcp.
    #[command(subcommand)]
    Mcp(McpCommand),
    /// The embedding model: fetch it into the data dir, list, verify.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Running as a system service (systemd).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Offline storage commands (work with the server stopped).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// The shipped alert rules over the recorded history.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// The operators' guide's checklists; exit 5 when an item fails.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Measure this machine; results as JSON.
    #[cfg(feature = "benchmark")]
    #[command(subcommand)]
    Benchmark(BenchmarkCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Print the API token (creating it if the server never ran), or
    /// replace it with `--rotate`; a running server picks the new one up
    /// within seconds.
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Replace the token with a new one.
    #[arg(long)]
    pub rotate: bool,
    /// Config file (TOML), for `[auth] token_file`.
    #[arg(long, env = "CAXTON_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's data directory.
    #[arg(long, env = "CAXTON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl TokenArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        let config = config::load_with_data_dir(self.config.as_deref(), self.data_dir.as_deref())?;
        let path = match &config.auth.token_file {
            Some(path) => path.clone(),
            None => config.data_dir()?.join(crate::auth::TOKEN_FILE),
        };
        let value = if self.rotate {
            let value = crate::auth::write_new(&path)?;
            eprintln!("rotated the API token in {}", path.display());
            value
        } else {
            crate::auth::load_or_create(&path)?.value
        };
        println!("{value}");
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The alerts that fired in a window (the rules of
    /// `examples/monitoring/caxton-alerts.yml`, or `[history] alert_rules`);
    /// exits 5 when any did.
    Summary {
        /// The window: 30m, 1h, 7d.
        #[arg(long, default_value = "24h")]
        last: String,
        /// Comma-separated: info, warning, critical. Default: all.
        #[arg(long)]
        severity: Option<String>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

impl AlertsCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        let AlertsCommand::Summary {
            last,
            severity,
            server,
        } = self;
        operator::alerts_summary(server, last, severity.as_deref()).await
    }
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// The daily checklist over the last 24 h: search and API p99, WAL,
    /// cache hit rate, reload time, cleanup runs, limit traps, database
    /// size. Exits 5 naming each failed item and what to do.
    Daily {
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

impl CheckCommand {
    pub async fn run(&self) -> anyhow::Result<()> {
        let CheckCommand::Daily { server } = self;
        operator::check_daily(server).await
    }
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Integrity check, reclaim free pages, refresh statistics, truncate the
    /// WAL (all of it without flags; with flags, the steps named). Exits
    /// non-zero when the integrity check finds problems.
    Maintenance(MaintenanceArgs),
    /// Reclaim, refresh and truncate; `--aggressive` rewrites the file
    /// (VACUUM) and rebuilds every index: stop the server first.
    Optimize(OptimizeArgs),
    /// Size, free pages (fragmentation), rows per table and, from the
    /// recorded history, how fast the database grows. Only reads.
    Analyze(AnalyzeArgs),
}

#[derive(Debug, clap::Args)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Give free pages back to the disk, a few at a time (cheap).
    #[arg(long)]
    pub vacuum_incremental: bool,
    /// Refresh the query planner's statistics.
    #[arg(long)]
    pub analyze_stats: bool,
    /// Rewrite the whole file (VACUUM): needs the server stopped.
    #[arg(long)]
    pub vacuum_full: bool,
    /// Rebuild every index.
    #[arg(long)]
    pub reindex_all: bool,
    /// ANALYZE every table (as --analyze-stats).
    #[arg(long)]
    pub analyze_full: bool,
    /// Run SQLite's integrity check too (always on without flags).
    #[arg(long)]
    pub verify_integrity: bool,
}

#[derive(Debug, clap::Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// VACUUM and REINDEX too (rewrites the file: stop the server first).
    #[arg(long)]
    pub aggressive: bool,
    /// Run SQLite's integrity check first.
    #[arg(long)]
    pub verify_integrity: bool,
}

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Growth per day from the recorded history (`history.db`).
    #[arg(long)]
    pub growth_rate: bool,
    /// Free pages over all pages.
    #[arg(long)]
    pub fragmentation: bool,
    /// The window the growth rate is taken over.
    #[arg(long, default_value = "7d")]
    pub last: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = client::Output::Table)]
    pub output: client::Output,
}

impl MaintenanceArgs {
    pub async fn run(&self) -> anyhow::Result<()> {
        let any = self.vacuum_incremental
            || self.analyze_stats
            || self.vacuum_full
            || self.reindex_all
            || self.analyze_full
            || self.verify_integrity;
        let steps = if any {
            crate::store::Steps {
                integrity_check: self.verify_integrity,
                incremental_vacuum: self.vacuum_incremental,
                full_vacuum: self.vacuum_full,
                reindex: self.reindex_all,
                analyze: self.analyze_stats || self.analyze_full,
            }
        } else {
            crate::store::Steps::DEFAULT
        };
        self.storage.maintain(steps).await
    }
}

impl OptimizeArgs {
    pub async fn run(&self) -> anyhow::Result<()> {
        self.storage
            .maintain(crate::store::Steps {
                integrity_check: self.verify_integrity,
                incremental_vacuum: true,
                full_vacuum: self.aggressive,
                reindex: self.aggressive,
                analyze: true,
            })
            .await
    }
}

impl AnalyzeArgs {
    pub async fn run(&self) -> anyhow::Result<()> {
        let window = operator::window(&self.last)?;
        let config = config::load_with_data_dir(
            self.storage.config.as_deref(),
            self.storage.data_dir.as_deref(),
        )?;
        let database = self.storage.database(&config)?;
        let analysis = crate::store::analyze(&database, &config.memory.sqlite_config).await?;
        let growth = if self.growth_rate || !self.fragmentation {
            Some(growth_per_day(&config.data_dir()?, &window).await?)
        } else {
            None
        };
        let body = serde_json::json!({
            "database": analysis,
            "growth": growth,
        });
        output::print(self.output, &body, |_| {
            let mut rows = vec![
                vec!["file".into(), analysis.path.display().to_string()],
                vec![
                    "size".into(),
                    format!("{:.1} MiB", analysis.file_bytes as f64 / 1048576.0),
                ],
                vec![
                    "wal".into(),
                    format!("{:.1} MiB", analysis.wal_bytes as f64 / 1048576.0),
                ],
                vec!["journal mode".into(), analysis.journal_mode.clone()],
                vec![
                    "fragmentation".into(),
                    format!(
                        "{:.1}% ({} of {} pages free)",
                        analysis.fragmentation * 100.0,
                        analysis.free_pages,
                        analysis.pages
                    ),
                ],
            ];
            for (table, count) in &analysis.tables {
                rows.push(vec![format!("rows in {table}"), count.to_string()]);
            }
            if let Some(growth) = &growth {
                rows.push(vec![
                    "growth".into(),
                    match growth["bytes_per_day"].as_f64() {
                        Some(rate) => format!(
                            "{:.2} MiB/day over {}",
                            rate / 1048576.0,
                            output::plain(&growth["over"])
                        ),
                        None => output::plain(&growth["note"]),
                    },
                ]);
            }
            output::table(&["DATABASE", "VALUE"], &rows);
        });
        Ok(())
    }
}

/// The memory database's growth per day over `window`, from the history
/// file (read directly: this works with the server stopped too).
async fn growth_per_day(
    data_dir: &std::path::Path,
    window: &str,
) -> anyhow::Result<serde_json::Value> {
    let path = data_dir.join(crate::history::FILE);
    if !path.exists() {
        return Ok(serde_json::json!({
            "bytes_per_day": null,
            "note": format!("no history at {}: the server records it while running ([history])", path.display()),
        }));
    }
    let store = crate::history::store::HistoryStore::open(&path).await?;
    let window = crate::history::parse_window(window).map_err(anyhow::Error::msg)?;
    let to = crate::history::unix_now() + 1;
    let from = to - window.as_secs() as i64;
    let mut first: Option<(i64, f64)> = None;
    let mut last: Option<(i64, f64)> = None;
    store
        .scan(from, to, &["caxton_memory_sqlite_size_bytes"], |row| {
            let at = row.ts + row.resolution;
            first.get_or_insert((at, row.point.mean()));
            last = Some((at, row.point.mean()));
        })
        .await?;
    Ok(match (first, last) {
        (Some((t0, v0)), Some((t1, v1))) if t1 - t0 >= 60 => serde_json::json!({
            "bytes_per_day": (v1 - v0) / (t1 - t0) as f64 * 86_400.0,
            "over": crate::history::report::human(t1 - t0),
            "from_bytes": v0,
            "to_bytes": v1,
        }),
        _ => serde_json::json!({
            "bytes_per_day": null,
            "note": "not enough history yet: it needs two samples a minute apart",
        }),
    })
}

#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Config file (TOML), for `memory.database_path` and pragmas.
    #[arg(long, env = "CAXTON_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's data directory (holds memory.db).
    #[arg(long, env = "CAXTON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl StorageArgs {
    fn database(&self, config: &Config) -> anyhow::Result<PathBuf> {
        Ok(match &config.memory.database_path {
            Some(path) => path.clone(),
            None => config.data_dir()?.join("memory.db"),
        })
    }

    async fn maintain(&self, steps: crate::store::Steps) -> anyhow::Result<()> {
        let config = config::load_with_data_dir(self.config.as_deref(), self.data_dir.as_deref())?;
        let database = self.database(&config)?;
        let report = crate::store::maintain(&database, &config.memory.sqlite_config, steps).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        if !report.healthy() {
            anyhow::bail!(
                "integrity check of {} found problems (above); restore from an export",
                database.display()
            );
        }
        Ok(())
    }
}

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// Texts to embed.
    #[arg(required = true)]
    pub texts: Vec<String>,
    /// Config file (TOML) for `[memory.embedding_config]`.
    #[arg(long, env = "CAXTON_CONFIG")]
    pub config: Option<PathBuf>,
    /// The server's data directory (the model is in its `models/`).
    #[arg(long, env = "CAXTON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl EmbedArgs {
    /// Embeds with a one-text batch plan (all a CLI call needs) and prints
    /// `{"text", "tokens", "embedding"}` per line.
    pub fn run(&self) -> anyhow::Result<()> {
        use std::io::Write;

        let config = config::load_with_data_dir(self.config.as_deref(), self.data_dir.as_deref())?;
        let settings = &config.memory.embedding_config;
        let spec = crate::embed::ModelSpec::named(&settings.model)?;
        let encoder = crate::embed::Encoder::load(
            &spec,
            &config.model_dir()?,
            settings.max_sequence_length,
            &[1],
            settings.precision,
        )?
        .with_inference_threads(settings.inference_threads);
        let mut out = std::io::stdout().lock();
        for text in &self.texts {
            let embedded = encoder.embed(&[text])?.remove(0);
            let line = serde_json::json!({
                "text": text,
                "tokens": embedded.tokens,
                "embedding": embedded.vector,
            });
            writeln!(out, "{line}")?;
        }
        Ok(())
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML); every key is optional.
    #[arg(long, env = "CAXTON_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, env = "CAXTON_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the store, component cache and secrets.
    #[arg(long, env = "CAXTON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of agent and tool manifests to load.
    #[arg(long, env = "CAXTON_AGENTS_DIR")]
    pub agents_dir: Option<PathBuf>,
    /// Address of the Prometheus metrics listener (port 0 picks a free one).
    #[arg(long, env = "CAXTON_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// The config file (or defaults) with flags and env applied on top.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = config::load(self.config.as_deref())?;
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = Some(dir.clone());
        }
        if let Some(dir) = &self.agents_dir {
            config.server.agents_dir = Some(dir.clone());
        }
        if let Some(listen) = self.metrics_listen {
            config.server.metrics_listen = Some(listen);
        }
        config.validate()?;
        Ok(config)
    }
}
