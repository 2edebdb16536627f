//! `caxton benchmark ...`: the suites that measure this machine, behind
//! the `benchmark` feature (on by default, so the release binary has them;
//! a build that embeds the library can leave them out).

use std::path::PathBuf;

use clap::Subcommand;

use crate::scaffold::Lang;

/// What `caxton benchmark api` measures beside Caxton.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ApiBaseline {
    /// `wasmtime serve` on a wasi:http echo component.
    WasmtimeServe,
    /// The same host with history off, beside one sampling every second:
    /// what the sampler costs, and what history takes on disk.
    HistoryOff,
}

#[derive(Debug, Subcommand)]
pub enum BenchmarkCommand {
    /// API: HTTP echo round trip at concurrency 1, 16 and 64 beside
    /// /health and, with --baseline wasmtime-serve, beside plain `wasmtime
    /// serve` answering the same body.
    Api {
        #[arg(long, default_value_t = 3000)]
        requests: usize,
        /// Also drive `wasmtime serve` on plugins/wasi-http-echo in the
        /// same run (install it with ./scripts/python-env --bench).
        #[arg(long, value_enum)]
        baseline: Option<ApiBaseline>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// System: startup, idle RSS, load at 10x the pool; with
    /// --find-breaking-points a ramp until the SLA breaks.
    System {
        #[arg(long)]
        find_breaking_points: bool,
        /// Also start on a store of this many observations (synthetic,
        /// with vectors): startup peak, steady state, warm start.
        #[arg(long, default_value_t = 0)]
        observations: usize,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Embeddings: per thread count, a short sentence, a 128-token passage
    /// and batch-16 throughput beside ONNX Runtime on as many threads; then
    /// the engine as the server runs it.
    Embeddings {
        #[arg(long, default_value_t = 200)]
        texts: usize,
        /// Cores per inference to measure (each beside ONNX Runtime).
        #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
        threads: Vec<usize>,
        /// The products' precision (`[memory.embedding_config] precision`).
        #[arg(long, default_value = "auto", value_parser = ["auto", "int8", "f32"])]
        precision: String,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// MCP: tools/call search_nodes beside the HTTP search route, and a
    /// tool over MCP beside the same tool called in-process.
    Mcp {
        #[arg(long, default_value_t = 500)]
        requests: usize,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Plugins by language: the `caxton agents new` template agent in each
    /// language (component size, build, cold compile, time from `new` to
    /// an answer) and its calls beside the built-in Rust echo's.
    Plugins {
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Languages to measure (each needs its toolchain: see docs/plugins.md).
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Lang::Rust, Lang::Python, Lang::Js])]
        langs: Vec<Lang>,
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// The fleet (needs ./scripts/fleet-servers install): host A's echo by
    /// name beside host B's through NATS, with NATS's own request/reply as
    /// the floor; the lag from a write on one host to a search hit on
    /// another through sqld; search on an embedded replica beside a local
    /// store of the same observations.
    Fleet {
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Writes whose replication lag is measured.
        #[arg(long, default_value_t = 50)]
        lag_samples: usize,
        /// Observations in the search comparison (0 skips it).
        #[arg(long, default_value_t = 100_000)]
        observations: usize,
        /// The replicas' sync interval in the lag measurement (the
        /// default's, 1s, unless given).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        sync_interval: std::time::Duration,
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
    /// Instead: what the host adds to a configuration agent's turn (and
    /// per tool call, and to a stream) against the same provider request
    /// sent directly.
    #[arg(long)]
    pub llm: bool,
    /// Turns per measurement with `--llm`.
    #[arg(long, default_value_t = 300)]
    pub turns: usize,
    /// With `--llm`: also compare a real model's streamed tokens per
    /// second, straight from this OpenAI-compatible server (its base URL,
    /// up to `/v1`) and through a configuration agent.
    #[arg(long, requires = "llm")]
    pub provider_url: Option<String>,
    /// The model to ask at `--provider-url`.
    #[arg(long, requires = "provider_url", default_value = "default")]
    pub provider_model: String,
    /// Instead: each priority's queue wait (median, p99) against its
    /// latency target while a slow agent is flooded with background
    /// messages, and how many were answered late.
    #[arg(long, conflicts_with = "llm")]
    pub priorities: bool,
    /// With `--priorities`: background messages in flight at once.
    #[arg(long, requires = "priorities", default_value_t = 16)]
    pub flood: usize,
    /// With `--priorities`: milliseconds of work per background message.
    #[arg(long, requires = "priorities", default_value_t = 50)]
    pub work_ms: u64,
    /// With `--priorities`: seconds the flood lasts.
    #[arg(long, requires = "priorities", default_value_t = 10)]
    pub seconds: u64,
    /// Write the JSON results here (also printed).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Fewest messages per path the fleet suite sends (five rounds).
const ROUNDS_MIN: usize = 50;

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
            BenchmarkCommand::Api {
                requests,
                baseline,
                output,
            } => (
                crate::benchmark::api(
                    &work,
                    (*requests).max(100),
                    baseline.map(|b| match b {
                        ApiBaseline::WasmtimeServe => crate::benchmark::ApiBeside::WasmtimeServe,
                        ApiBaseline::HistoryOff => crate::benchmark::ApiBeside::HistoryOff,
                    }),
                )
                .await,
                output,
            ),
            BenchmarkCommand::System {
                find_breaking_points,
                observations,
                output,
            } => (
                crate::benchmark::system(&work, *find_breaking_points, *observations).await,
                output,
            ),
            BenchmarkCommand::Fleet {
                requests,
                lag_samples,
                observations,
                sync_interval,
                output,
            } => (
                crate::benchmark::FleetBenchmark {
                    requests: (*requests).max(ROUNDS_MIN),
                    lag_samples: (*lag_samples).max(1),
                    observations: *observations,
                    sync_interval: *sync_interval,
                }
                .run(&work)
                .await,
                output,
            ),
            BenchmarkCommand::Mcp { requests, output } => (
                crate::benchmark::mcp(&work, (*requests).max(20)).await,
                output,
            ),
            BenchmarkCommand::Plugins {
                requests,
                langs,
                output,
            } => (
                crate::benchmark::plugins(&work, langs, (*requests).max(20)).await,
                output,
            ),
            BenchmarkCommand::Embeddings {
                texts,
                threads,
                precision,
                output,
            } => (
                crate::benchmark::embeddings(
                    (*texts).max(10),
                    threads,
                    match precision.as_str() {
                        "int8" => crate::config::EmbeddingPrecision::Int8,
                        "f32" => crate::config::EmbeddingPrecision::F32,
                        _ => crate::config::EmbeddingPrecision::Auto,
                    },
                )
                .await,
                output,
            ),
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
        if self.priorities {
            let benchmark = crate::benchmark::PrioritiesBenchmark {
                duration: std::time::Duration::from_secs(self.seconds.max(1)),
                flood_concurrency: self.flood.max(1),
                work_ms: self.work_ms,
                work_dir: std::env::temp_dir()
                    .join(format!("caxton-bench-priorities-{}", std::process::id())),
            };
            return emit_results(&benchmark.run().await?, self.output.as_ref());
        }
        if self.llm {
            let benchmark = crate::benchmark::LlmBenchmark {
                turns: self.turns.max(20),
                real_provider: self
                    .provider_url
                    .clone()
                    .map(|url| (url, self.provider_model.clone())),
                stream_pieces: 500,
                work_dir: std::env::temp_dir()
                    .join(format!("caxton-bench-llm-{}", std::process::id())),
            };
            return emit_results(&benchmark.run().await?, self.output.as_ref());
        }
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
