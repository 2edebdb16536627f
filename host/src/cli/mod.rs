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
pub enum StorageCommand {
    /// Integrity check, reclaim free pages, refresh statistics, truncate the
    /// WAL. Exits non-zero when the integrity check finds problems.
    Maintenance(StorageArgs),
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
    pub async fn maintenance(&self) -> anyhow::Result<()> {
        let config = config::load_with_data_dir(self.config.as_deref(), self.data_dir.as_deref())?;
        let database = match &config.memory.database_path {
            Some(path) => path.clone(),
            None => config.data_dir()?.join("memory.db"),
        };
        let report = crate::store::maintain(&database, &config.memory.sqlite_config).await?;
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
