//! The `caxton` command line.

mod agents;
pub mod client;
mod config;
mod memory;
mod output;
mod remote;

pub use agents::AgentsCommand;
pub use config::ConfigCommand;
pub use memory::MemoryCommand;
pub use remote::{ConversationsCommand, SendArgs, SystemCommand, health};

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
    /// Offline storage commands (work with the server stopped).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Measure this machine; results as JSON.
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
        let mut config = config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = Some(dir.clone());
        }
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
        let mut config = config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = Some(dir.clone());
        }
        let database = match &config.memory.database_path {
            Some(path) => path.clone(),
            None => config.data_dir()?.join("memory.db"),
        };
        let report = crate::memory::maintain(&database, &config.memory.sqlite_config).await?;
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

#[derive(Debug, Subcommand)]
pub enum BenchmarkCommand {
    /// API: HTTP echo round trip at concurrency 1 and 16 beside /health.
    Api {
        #[arg(long, default_value_t = 3000)]
        requests: usize,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// System: startup, idle RSS, load at 10x the pool; with
    /// --find-breaking-points a ramp until the SLA breaks.
    System {
        #[arg(long)]
        find_breaking_points: bool,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Embeddings: single short sentences and texts sent together.
    Embeddings {
        #[arg(long, default_value_t = 200)]
        texts: usize,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Markdown from benchmark JSON files.
    Report {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Exits 1 when a metric of CURRENT is worse than in the baseline by
    /// more than the threshold (0.1 = 10%).
    Compare {
        #[arg(long)]
        baseline: PathBuf,
        current: PathBuf,
        #[arg(long, default_value_t = 0.1)]
        threshold: f64,
    },
    /// Agents: messages/s and latency through HTTP by capability for 1, 10
    /// and 50 echo agents at concurrency 16 and 64, beside direct sends;
    /// hot-reload latency.
    Agents(AgentsBenchArgs),
    /// Memory: insert rate with embedding, search latency and recall@10 at
    /// each size beside an exact scan, index RAM, disk per observation.
    Memory(MemoryBenchArgs),
    /// Faults: healthy echo latency alone and while runaway plugins run
    /// (each fault alone, then all at once), with the server's RSS.
    Faults(FaultsBenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct FaultsBenchArgs {
    /// Healthy requests per measurement.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Turn the low-priority lane off, to compare.
    #[arg(long)]
    pub no_isolation: bool,
    /// Write the JSON results here (also printed).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

impl FaultsBenchArgs {
    pub async fn run(&self) -> anyhow::Result<()> {
        let benchmark = crate::benchmark::FaultsBenchmark {
            requests: self.requests.max(100),
            isolation: !self.no_isolation,
            work_dir: std::env::temp_dir()
                .join(format!("caxton-bench-faults-{}", std::process::id())),
        };
        emit_results(&benchmark.run().await?, self.output.as_ref())
    }
}

#[derive(Debug, clap::Args)]
pub struct AgentsBenchArgs {
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    pub agents: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub concurrency: Vec<usize>,
    /// Messages per measurement.
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
    /// Manifest rewrites timed for the hot-reload distribution.
    #[arg(long, default_value_t = 50)]
    pub reloads: usize,
    /// Write the JSON results here (also printed).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Prints benchmark results as JSON and writes them to `output` if given.
fn emit_results(results: &serde_json::Value, output: Option<&PathBuf>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(results)?;
    if let Some(path) = output {
        std::fs::write(path, &text)?;
    }
    println!("{text}");
    Ok(())
}

impl BenchmarkCommand {
    /// The suites that are not `memory` or `agents`, plus report and compare.
    pub async fn run_other(&self) -> anyhow::Result<()> {
        let work = std::env::temp_dir().join(format!("caxton-bench-{}", std::process::id()));
        let (results, output) = match self {
            BenchmarkCommand::Api { requests, output } => (
                crate::benchmark::api(&work, (*requests).max(100)).await,
                output,
            ),
            BenchmarkCommand::System {
                find_breaking_points,
                output,
            } => (
                crate::benchmark::system(&work, *find_breaking_points).await,
                output,
            ),
            BenchmarkCommand::Embeddings { texts, output } => {
                (crate::benchmark::embeddings((*texts).max(10)).await, output)
            }
            BenchmarkCommand::Report { files, output } => {
                let markdown = crate::benchmark::report(files)?;
                match output {
                    Some(path) => std::fs::write(path, markdown)?,
                    None => print!("{markdown}"),
                }
                return Ok(());
            }
            BenchmarkCommand::Compare {
                baseline,
                current,
                threshold,
            } => {
                let read = |path: &PathBuf| -> anyhow::Result<serde_json::Value> {
                    Ok(serde_json::from_str(
                        &std::fs::read_to_string(path)
                            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
                    )?)
                };
                let regressions =
                    crate::benchmark::compare(&read(baseline)?, &read(current)?, *threshold);
                for line in &regressions {
                    println!("regression: {line}");
                }
                if !regressions.is_empty() {
                    anyhow::bail!(
                        "{} metric(s) regressed by more than {:.0}%",
                        regressions.len(),
                        threshold * 100.0
                    );
                }
                println!("no regression beyond {:.0}%", threshold * 100.0);
                return Ok(());
            }
            BenchmarkCommand::Memory(_)
            | BenchmarkCommand::Agents(_)
            | BenchmarkCommand::Faults(_) => {
                unreachable!("run by their own args")
            }
        };
        let _ = std::fs::remove_dir_all(&work);
        emit_results(&results?, output.as_ref())
    }
}

impl AgentsBenchArgs {
    pub async fn run(&self) -> anyhow::Result<()> {
        let benchmark = crate::benchmark::AgentsBenchmark {
            agent_counts: self.agents.clone(),
            concurrencies: self.concurrency.clone(),
            messages: self.messages.max(100),
            reloads: self.reloads.max(5),
            work_dir: std::env::temp_dir()
                .join(format!("caxton-bench-agents-{}", std::process::id())),
        };
        emit_results(&benchmark.run().await?, self.output.as_ref())
    }
}

#[derive(Debug, clap::Args)]
pub struct MemoryBenchArgs {
    /// Observation counts to measure at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub observations: Vec<usize>,
    /// Queries per measurement.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Observations inserted with real embeddings, for the insert rate.
    #[arg(long, default_value_t = 300)]
    pub embedded_inserts: usize,
    /// Store writes per configuration in the durability comparison
    /// (synchronous normal vs full, one writer vs sixteen); 0 skips it.
    #[arg(long, default_value_t = 2000)]
    pub durable_writes: usize,
    /// Write the JSON results here (also printed).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

impl MemoryBenchArgs {
    pub async fn run(&self) -> anyhow::Result<()> {
        let mut checkpoints = self.observations.clone();
        checkpoints.sort_unstable();
        let benchmark = crate::benchmark::MemoryBenchmark {
            checkpoints,
            queries: self.queries.max(5),
            embedded_inserts: self.embedded_inserts,
            durable_writes: self.durable_writes,
            work_dir: std::env::temp_dir().join(format!("caxton-bench-{}", std::process::id())),
        };
        emit_results(&benchmark.run().await?, self.output.as_ref())
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
}

impl EmbedArgs {
    /// Embeds with a one-text batch plan (all a CLI call needs) and prints
    /// `{"text", "tokens", "embedding"}` per line.
    pub fn run(&self) -> anyhow::Result<()> {
        use std::io::Write;

        let config = config::load(self.config.as_deref())?;
        let settings = &config.memory.embedding_config;
        let spec = crate::embed::ModelSpec::named(&settings.model)?;
        let encoder = crate::embed::Encoder::load(
            &spec,
            &settings.model_dir(),
            settings.max_sequence_length,
            &[1],
        )?;
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
