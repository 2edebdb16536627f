//! The host's configuration: a TOML file whose every key has a default, so
//! `caxton serve` with no file runs on the embedded defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::toml_check::Problem;

/// Errors reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}, {problem}")]
    Parse { path: PathBuf, problem: Problem },
    #[error("invalid environment override {variable}: {message}")]
    Env { variable: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error(
        "invalid config file {path}:\n{}",
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    )]
    Problems {
        path: PathBuf,
        problems: Vec<Problem>,
    },
    #[error("cannot find a data directory for this user; pass --data-dir or set CAXTON_DATA_DIR")]
    NoDataDir,
    #[error(
        "cannot find a config directory for this user; pass --agents-dir or set CAXTON_AGENTS_DIR"
    )]
    NoAgentsDir,
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The file this was read from (`None`: the built-in defaults): what
    /// the server watches for profile changes.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    pub server: ServerConfig,
    pub memory: MemoryConfig,
    pub wasm_runtime: WasmRuntimeConfig,
    pub http_server: HttpServerConfig,
    pub auth: AuthConfig,
    pub agents: AgentsConfig,
    pub llm: crate::llm::LlmConfig,
    pub mcp: crate::mcp_client::McpConfig,
    pub cluster: crate::cluster::ClusterConfig,
    pub history: crate::history::HistoryConfig,
}

/// `[agents]`: message queues, routing, conversations and hot reload.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Messages waiting per agent at each priority (unless
    /// `[agents.priorities.<priority>] queue_size` says otherwise); a full
    /// queue answers 429 instead of growing memory.
    /// Default: `64`.
    pub queue_capacity: usize,
    /// Messages one agent handles at once from its queue.
    /// Default: `4`.
    pub workers_per_agent: usize,
    /// Longest chain of agent-to-agent messages (a cycle ends here).
    /// Default: `8`.
    pub max_message_depth: u32,
    /// How long an HTTP sender waits for an agent's reply.
    /// Default: `"30s"`.
    #[serde(with = "duration_text")]
    pub reply_timeout: Duration,
    /// A conversation with no message for this long is closed.
    /// Default: `"30m"`.
    #[serde(with = "duration_text")]
    pub conversation_idle_timeout: Duration,
    /// Closed conversations are deleted after this long.
    /// Default: `"7days"`.
    #[serde(with = "duration_text")]
    pub conversation_retention: Duration,
    /// Watch the agents directory and swap changed agents in while serving.
    /// Default: `true`.
    pub hot_reload: bool,
    /// Quiet time after a file event before reloading, so an editor's
    /// several writes make one reload.
    /// Default: `"10ms"`.
    #[serde(with = "duration_text")]
    pub reload_debounce: Duration,
    /// Agents deployed at most (directory and API together).
    /// Default: `200`.
    pub max_agents: usize,
    /// Largest message content an agent may return as a reply or send to
    /// another agent, in bytes; a bigger one fails that call (or that
    /// `send`/`request`) instead of flowing through the host.
    /// Default: `1048576`.
    pub max_reply_size: usize,
    /// `[agents.default_limits]`: limits for every agent whose manifest
    /// and profile leave them out (`max_conversations`,
    /// `max_memory_entities`, `response_timeout`, `tool_call_timeout`,
    /// `memory_search_timeout`, `context_length_limit`, `memory_mb`,
    /// `fuel_limit`, `execution_timeout`, `priority`, `memory_scope`).
    /// Changing them reloads the agents they touch.
    /// Default: none set (the host's built-in defaults apply).
    pub default_limits: crate::profiles::LimitSet,
    /// `[[agents.profiles]]`: named overrides (`name`, the `agents`,
    /// `capabilities` or `agent_types` they apply to, `[overrides]` with
    /// the keys of `default_limits`); a manifest may name one with
    /// `profile = "..."`. Changing them reloads the agents they touch.
    /// Default: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<crate::profiles::ProfileConfig>,
    /// `[agents.priorities.<critical|high|normal|background>]`: each
    /// priority's queue size, latency target and dedicated workers.
    /// Default: the operators' guide's targets (see `priority.rs`).
    pub priorities: crate::priority::PriorityQueues,
}

impl AgentsConfig {
    /// The defaults and profiles agents are resolved against.
    pub fn agent_profiles(&self) -> crate::profiles::AgentProfiles {
        crate::profiles::AgentProfiles {
            default_limits: self.default_limits.clone(),
            profiles: self.profiles.clone(),
        }
    }
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 64,
            workers_per_agent: 4,
            max_message_depth: 8,
            reply_timeout: Duration::from_secs(30),
            conversation_idle_timeout: Duration::from_secs(30 * 60),
            conversation_retention: Duration::from_secs(7 * 24 * 3600),
            hot_reload: true,
            reload_debounce: Duration::from_millis(10),
            max_agents: 200,
            max_reply_size: 1024 * 1024,
            default_limits: Default::default(),
            profiles: Vec::new(),
            priorities: Default::default(),
        }
    }
}

/// `[auth]`: who may call the API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Require `Authorization: Bearer <token>` on every route but health.
    /// Turning it off is only allowed on a loopback address.
    /// Default: `true`.
    pub enabled: bool,
    /// Where the token lives. Default: `auth-token` in the data dir,
    /// generated (mode 0600) at first start.
    /// Default: `<data dir>/auth-token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_file: None,
        }
    }
}

/// `[http_server]`: connections, timeouts, compression and rate limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Longest a request may take before the server answers 504.
    /// Default: `"30s"`.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Longest a deployment or reload may take (they compile the
    /// component: a Python or JavaScript plugin, which carries its
    /// interpreter, takes ten seconds or more on a small board) before the
    /// server answers 504. The deployment still completes, and the
    /// compiled component is cached.
    /// Default: `"300s"`.
    #[serde(with = "duration_text")]
    pub deploy_timeout: Duration,
    /// Longest a client may take to send a request's headers; slow
    /// clients are disconnected instead of holding a connection.
    /// Default: `"10s"`.
    #[serde(with = "duration_text")]
    pub header_read_timeout: Duration,
    /// Keep idle connections open for further requests.
    /// Default: `true`.
    pub keep_alive: bool,
    /// Open connections at most; further clients wait in the listen backlog.
    /// Default: `256`.
    pub max_connections: usize,
    /// Open connections from one client address at most; past it, a new
    /// connection from that address is closed at once, so one client
    /// cannot hold every slot.
    /// Default: `64`.
    pub max_connections_per_client: usize,
    /// Host names (besides the listen address and, on loopback,
    /// `localhost`) accepted in the `Host` header when auth is off; other
    /// names are refused so a web page cannot reach the API through DNS
    /// rebinding.
    /// Default: `[]`.
    pub allowed_hosts: Vec<String>,
    /// Gzip JSON responses when the client accepts it.
    /// Default: `true`.
    pub compression: bool,
    /// Responses smaller than this are sent as they are.
    /// Default: `2048`.
    pub compression_min_bytes: usize,
    pub rate_limit: RateLimitConfig,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            deploy_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(10),
            keep_alive: true,
            max_connections: 256,
            max_connections_per_client: 64,
            allowed_hosts: Vec::new(),
            compression: true,
            compression_min_bytes: 2048,
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// `[http_server.rate_limit]`: token buckets per client address and for
/// the whole server. Health, readiness and metrics are exempt.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Default: `true`.
    pub enabled: bool,
    /// Sustained requests per second from one client address.
    /// Default: `200`.
    pub per_client_rps: u32,
    /// Requests one client may send at once above the sustained rate.
    /// Default: `400`.
    pub per_client_burst: u32,
    /// Sustained requests per second for all clients together.
    /// Default: `2000`.
    pub global_rps: u32,
    /// Default: `4000`.
    pub global_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_client_rps: 200,
            per_client_burst: 400,
            global_rps: 2000,
            global_burst: 4000,
        }
    }
}

/// `[memory]`: the agents' memory and its embeddings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// The libsql file. Default: `memory.db` in the data dir.
    /// Default: `<data dir>/memory.db`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_path: Option<PathBuf>,
    /// A libsql server (`sqld`) holding the fleet's shared memory
    /// (`http://host:8080`, or `https://`). The knowledge graph then lives
    /// in an embedded replica beside `database_path` (`memory-replica.db`):
    /// reads and search stay local, writes go to the server, and what
    /// other hosts write arrives every `sync_interval`. Conversations and
    /// deployments stay in this host's own file.
    /// Default: none (memory is this host's alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_url: Option<String>,
    /// A file holding the server's auth token (a JWT), read at start.
    /// `CAXTON_PRIMARY_TOKEN` in the environment wins.
    /// Default: none (no token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_token_file: Option<PathBuf>,
    /// How often the replica pulls what other hosts wrote.
    /// Default: `"1s"`.
    #[serde(with = "duration_text")]
    pub sync_interval: Duration,
    pub sqlite_config: SqliteConfig,
    pub embedding_config: EmbeddingConfig,
    pub cleanup: CleanupConfig,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            database_path: None,
            primary_url: None,
            primary_token_file: None,
            sync_interval: Duration::from_secs(1),
            sqlite_config: SqliteConfig::default(),
            embedding_config: EmbeddingConfig::default(),
            cleanup: CleanupConfig::default(),
        }
    }
}

/// `[memory.cleanup]`: a periodic pass that keeps the store within limits,
/// forgetting the least recently updated entities first.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// Default: `true`.
    pub enabled: bool,
    /// Time between passes (the first runs one interval after startup).
    /// Default: `"10m"`.
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// Entities an agent may keep in its own scope (0 = no limit).
    /// Default: `10000`.
    pub max_entities_per_agent: u64,
    /// Entities in the whole store, every scope (0 = no limit).
    /// Default: `0`.
    pub entity_limit: u64,
    /// Relations in the whole store, weakest dropped first (0 = no limit).
    /// Default: `0`.
    pub relation_limit: u64,
    /// Entities not updated for this long are forgotten (absent = kept forever).
    #[serde(
        default,
        with = "optional_duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    /// Default: none (no age limit).
    pub max_age: Option<Duration>,
    /// Remove relations and observations whose entity is gone.
    /// Default: `true`.
    pub orphan_cleanup: bool,
    /// Rows deleted per write transaction: smaller batches keep agents'
    /// writes flowing during a long pass.
    /// Default: `500`.
    pub batch_size: u64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(600),
            max_entities_per_agent: 10_000,
            entity_limit: 0,
            relation_limit: 0,
            max_age: None,
            orphan_cleanup: true,
            batch_size: 500,
        }
    }
}

/// `[memory.sqlite_config]`: pragmas applied to every connection.
/// Defaults suit a 512 MB device: WAL, `full` sync, small caches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Write-ahead logging: readers never block the writer.
    /// Default: `true`.
    pub wal_mode: bool,
    /// `full` (the default) syncs the WAL before a memory write is
    /// acknowledged: an acknowledged memory write survives power loss (conversation records are only
    /// committed; a checkpoint syncs them within `checkpoint_interval`).
    /// Writes arriving together share one sync, so the cost is one per
    /// batch, not per write.
    /// `normal` skips that sync: faster single writes, still safe from
    /// corruption and from a process crash, but the last writes before a
    /// power cut can be lost.
    /// Default: `"full"`.
    pub synchronous: Synchronous,
    /// Page cache per connection, in MiB.
    /// Default: `16`.
    pub cache_size_mb: u64,
    /// Memory-mapped I/O window, in MiB (0 turns it off).
    /// Default: `64`.
    pub mmap_size_mb: u64,
    /// Where temporary tables and indices live.
    /// Default: `"memory"`.
    pub temp_store: TempStore,
    /// WAL pages before an automatic checkpoint.
    /// Default: `1000`.
    pub wal_autocheckpoint: u64,
    /// How often a background thread checkpoints the WAL, so no commit
    /// pays for it (the writer then never checkpoints; past four times
    /// `wal_autocheckpoint` pages the thread restarts the WAL, so the file
    /// can grow that large). "0s" leaves checkpoints to the writer.
    /// Default: `"100ms"`.
    #[serde(with = "duration_text")]
    pub checkpoint_interval: Duration,
    /// Size the WAL is truncated back to after a checkpoint, in MiB.
    /// Default: `64`.
    pub journal_size_limit_mb: u64,
    /// How long a connection waits for a lock before failing.
    /// Default: `"5s"`.
    #[serde(with = "duration_text")]
    pub busy_timeout: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            wal_mode: true,
            synchronous: Synchronous::Full,
            cache_size_mb: 16,
            mmap_size_mb: 64,
            temp_store: TempStore::Memory,
            wal_autocheckpoint: 1000,
            checkpoint_interval: Duration::from_millis(100),
            journal_size_limit_mb: 64,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Off,
    Normal,
    Full,
}

impl Synchronous {
    pub fn as_sql(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TempStore {
    Default,
    File,
    Memory,
}

impl TempStore {
    pub fn as_sql(self) -> &'static str {
        match self {
            TempStore::Default => "DEFAULT",
            TempStore::File => "FILE",
            TempStore::Memory => "MEMORY",
        }
    }
}

/// `[memory.embedding_config]`: the local embedding model and its workers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingConfig {
    /// Semantic search on or off; off, the server starts without a model.
    /// Default: `true`.
    pub enabled: bool,
    /// Model name from `models/manifest.toml`.
    /// Default: `"all-MiniLM-L6-v2"`.
    pub model: String,
    /// Directory holding `model.onnx` and `tokenizer.json`.
    /// Default: `models/<model>` in the source tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_path: Option<PathBuf>,
    /// Embeddings kept in the LRU cache (0 disables it); ~1.6 KB each.
    /// Default: `10000`.
    pub cache_size: usize,
    /// Most texts run as one inference. Above 1, a second plan is compiled
    /// for this many rows: ~54 MB more RSS for ~35% more throughput.
    /// Default: `1`.
    pub batch_size: usize,
    /// How long a worker waits for more texts to fill a batch. Zero (the
    /// default) batches only what is already queued: no added latency.
    /// Default: `"0s"`.
    #[serde(with = "duration_text")]
    pub batch_window: Duration,
    /// Inference workers, each running whole batches (texts waiting while
    /// one runs go to the next).
    /// Default: `1`.
    pub thread_count: usize,
    /// Cores embedding runs on: several texts are shared out, one
    /// inference per core; with f32 products one text has its matrix
    /// products split across them (int8 runs it on one core). `0` uses
    /// every core this process may run on.
    /// Default: `0`.
    pub inference_threads: usize,
    /// Tokens per text; longer texts are truncated (the model was trained on 256).
    /// Default: `256`.
    pub max_sequence_length: usize,
    /// How the model's matrix products run. `"int8"`: each token's
    /// activations are quantised to 8 bits and multiplied with the int8
    /// weights as stored (~26 MB less RSS; vectors within cosine 0.997 of
    /// f32's); fast on CPUs with int8 dot products (x86 VNNI), about half
    /// as fast as f32 without. `"f32"`: the weights are expanded to f32, as
    /// the model file computes. `"auto"`: int8 on x86 with VNNI, else f32.
    /// Default: `"auto"`.
    pub precision: EmbeddingPrecision,
}

/// `[memory.embedding_config] precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingPrecision {
    Auto,
    Int8,
    F32,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model: "all-MiniLM-L6-v2".into(),
            model_path: None,
            cache_size: 10_000,
            batch_size: 1,
            batch_window: Duration::ZERO,
            thread_count: 1,
            inference_threads: 0,
            max_sequence_length: 256,
            precision: EmbeddingPrecision::Auto,
        }
    }
}

impl EmbeddingConfig {
    /// Where the model files live: configured, or `models/<model>` in the
    /// data dir (where `caxton models fetch` puts them).
    pub fn model_dir(&self, data_dir: &Path) -> PathBuf {
        self.model_path
            .clone()
            .unwrap_or_else(|| data_dir.join("models").join(&self.model))
    }
}

/// `[server]`: where the host listens and keeps its files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP API. Loopback by default; another address
    /// needs `[auth] enabled = true` (the default).
    /// Default: `"127.0.0.1:8080"`.
    pub listen: SocketAddr,
    /// Replaces the port of `listen` (handy as `CAXTON_SERVER__PORT`).
    /// Default: the port of `listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Async worker threads (default: one per core).
    /// Default: one per core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// Threads for blocking work (store queries, index scans, file I/O).
    /// Default: `32`.
    pub max_blocking_threads: usize,
    /// Where the store, the component cache and secrets live.
    /// Default: the platform data dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Directory of agent and tool manifests loaded at startup. Created on
    /// first start (when missing) with the bundled example manifests.
    /// Default: `agents` in the platform config dir (`~/.config/caxton/agents`
    /// on Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents_dir: Option<PathBuf>,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    /// Default: `1048576`.
    pub max_request_size: u64,
    /// Largest memory import (`POST /api/v1/memory/import`), in bytes.
    /// Default: `67108864`.
    pub max_import_size: u64,
    /// Address of the Prometheus `/metrics` listener, apart from the API so
    /// it can be firewalled separately. Absent: no metrics listener.
    /// Default: `"127.0.0.1:9090"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            port: None,
            worker_threads: None,
            max_blocking_threads: 32,
            data_dir: None,
            agents_dir: None,
            max_request_size: 1024 * 1024,
            max_import_size: 64 * 1024 * 1024,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
        }
    }
}

/// `[wasm_runtime]`: the wasmtime engine and its instance pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmRuntimeConfig {
    /// Component instances that can run at once (pool slots). A call that
    /// finds every slot busy is refused with 503 instead of queueing forever.
    /// Default: `50`.
    pub pool_size: u32,
    /// Slots one plugin may hold at once (its own calls, nested requests
    /// and tool calls included); 0 = half the pool. Past it, that plugin's
    /// calls get 503 while the others keep their slots.
    /// Default: `0`.
    pub max_slots_per_plugin: u32,
    /// Hard cap on one instance's linear memory, in MiB; per-agent
    /// `memory_mb` must be at most this. Also the per-slot address-space
    /// reservation, so small caps keep virtual memory small too.
    /// Default: `64`.
    pub max_memory_per_instance_mb: u32,
    /// Fuel (roughly, wasm instructions) per call when a manifest sets none.
    /// Default: `500000000`.
    pub default_fuel: u64,
    /// Wall-clock limit per call when a manifest sets none.
    /// Default: `"5s"`.
    #[serde(with = "duration_text")]
    pub default_execution_timeout: Duration,
    /// Resolution of deadlines: the epoch ticker's period.
    /// Default: `"5ms"`.
    #[serde(with = "duration_text")]
    pub epoch_tick: Duration,
    /// Fuel between forced yields to the async runtime, so a busy plugin
    /// cannot starve the server's other tasks.
    /// Default: `100000`.
    pub fuel_yield_interval: u64,
    /// Wasm stack limit per instance, in KiB (deeper recursion traps).
    /// Default: `512`.
    pub max_wasm_stack_kb: u32,
    /// A call whose wasm has run this long continues on the low-priority
    /// threads, so that short calls and the API keep their latency while a
    /// plugin burns its fuel.
    /// Default: `"10ms"`.
    #[serde(with = "duration_text")]
    pub long_call_after: Duration,
    /// Threads of the low-priority lane (nice 19); 0 = one per core.
    /// Default: `0`.
    pub low_priority_threads: u32,
    /// After a fault (trap, fuel, memory cap, or a deadline missed at
    /// normal priority) a plugin's calls start on the low-priority threads
    /// for this long.
    /// Default: `"10s"`.
    #[serde(with = "duration_text")]
    pub fault_probation: Duration,
}

impl Default for WasmRuntimeConfig {
    fn default() -> Self {
        Self {
            pool_size: 50,
            max_slots_per_plugin: 0,
            max_memory_per_instance_mb: 64,
            default_fuel: 500_000_000,
            default_execution_timeout: Duration::from_secs(5),
            epoch_tick: Duration::from_millis(5),
            fuel_yield_interval: 100_000,
            max_wasm_stack_kb: 512,
            long_call_after: Duration::from_millis(10),
            low_priority_threads: 0,
            fault_probation: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Reads a config file; every missing key takes its default.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text, path)?;
        config.validate_text(&text, path)?;
        Ok(config)
    }

    /// Parses config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            problem: Problem::from_toml(text, &e),
        })
    }

    /// The config file (or the defaults) with `CAXTON_<SECTION>__<KEY>`
    /// environment overrides applied, checked. `__` separates levels, so
    /// `CAXTON_MEMORY__SQLITE_CONFIG__CACHE_SIZE_MB=32` sets
    /// `memory.sqlite_config.cache_size_mb`.
    pub fn resolve(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::load(path)?,
            None => Self::default(),
        };
        let overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with("CAXTON_") && name.contains("__"))
            .collect();
        if !overrides.is_empty() {
            let mut tree =
                toml::Table::try_from(&config).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            for (variable, value) in &overrides {
                apply_override(&mut tree, variable, value)?;
            }
            config = tree
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Env {
                    variable: overrides
                        .iter()
                        .map(|(name, _)| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    message: e.message().to_owned(),
                })?;
        }
        config.file = file.map(Path::to_owned);
        if let Some(port) = config.server.port {
            config.server.listen.set_port(port);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Invalid(
            problems
                .iter()
                .map(|(key, message)| format!("{}: {message}", key.join(".")))
                .collect::<Vec<_>>()
                .join("; "),
        ))
    }

    /// [`Self::validate`] for a config read from `text`: every problem,
    /// each placed at its key's line and column, as manifests report them.
    pub fn validate_text(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        let locator = crate::toml_check::Locator::new(text);
        Err(ConfigError::Problems {
            path: path.to_owned(),
            problems: problems
                .into_iter()
                .map(|(key, message)| {
                    let path: Vec<&str> = key.iter().map(String::as_str).collect();
                    locator.problem(&path, format!("{}: {message}", key.join(".")))
                })
                .collect(),
        })
    }

    /// Every value out of its range, with the key it is at.
    fn problems(&self) -> Vec<(Vec<String>, String)> {
        let mut problems = self
            .fixed_problems()
            .into_iter()
            .map(|(key, message)| (key.into_iter().map(str::to_owned).collect(), message))
            .collect::<Vec<_>>();
        problems.extend(self.agents.agent_profiles().problems());
        // A memory cap above the pool's slots would refuse every agent it
        // reaches (the built-in tools too, so the server would not start).
        let cap = self.wasm_runtime.max_memory_per_instance_mb;
        let too_big = |mb: Option<u32>| mb.is_some_and(|mb| mb > cap);
        let message = |mb: Option<u32>| {
            format!(
                "{} MiB is more than wasm_runtime.max_memory_per_instance_mb ({cap}); lower it or raise the cap",
                mb.unwrap_or_default()
            )
        };
        if too_big(self.agents.default_limits.memory_mb) {
            problems.push((
                ["agents", "default_limits", "memory_mb"]
                    .map(String::from)
                    .to_vec(),
                message(self.agents.default_limits.memory_mb),
            ));
        }
        for (i, profile) in self.agents.profiles.iter().enumerate() {
            if too_big(profile.overrides.memory_mb) {
                problems.push((
                    vec![
                        "agents".into(),
                        "profiles".into(),
                        i.to_string(),
                        "overrides".into(),
                        "memory_mb".into(),
                    ],
                    message(profile.overrides.memory_mb),
                ));
            }
        }
        problems.extend(self.llm.problems());
        problems.extend(self.mcp.problems());
        problems.extend(self.history.problems());
        problems
    }

    /// [`Self::problems`] at keys known in advance.
    fn fixed_problems(&self) -> Vec<(Vec<&'static str>, String)> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &[&'static str], message: &str| {
            if !ok {
                problems.push((key.to_vec(), message.to_owned()));
            }
        };
        let rt = &self.wasm_runtime;
        check(
            rt.pool_size > 0,
            &["wasm_runtime", "pool_size"],
            "must be at least 1",
        );
        check(
            (1..=4096).contains(&rt.max_memory_per_instance_mb),
            &["wasm_runtime", "max_memory_per_instance_mb"],
            "must be between 1 and 4096",
        );
        check(
            !rt.epoch_tick.is_zero(),
            &["wasm_runtime", "epoch_tick"],
            "must be above zero",
        );
        check(
            !rt.default_execution_timeout.is_zero(),
            &["wasm_runtime", "default_execution_timeout"],
            "must be above zero",
        );
        check(
            rt.default_fuel > 0,
            &["wasm_runtime", "default_fuel"],
            "must be above zero",
        );
        check(
            rt.fuel_yield_interval > 0,
            &["wasm_runtime", "fuel_yield_interval"],
            "must be above zero",
        );
        check(
            !self.memory.sync_interval.is_zero(),
            &["memory", "sync_interval"],
            "must be above zero",
        );
        check(
            self.memory.primary_url.as_deref().is_none_or(|url| {
                ["http://", "https://", "libsql://"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme))
            }),
            &["memory", "primary_url"],
            "must be the libsql server's http://, https:// or libsql:// URL (sqld's --http-listen-addr)",
        );
        let cluster = &self.cluster;
        check(
            !cluster.heartbeat_interval.is_zero(),
            &["cluster", "heartbeat_interval"],
            "must be above zero",
        );
        check(
            cluster.missed_heartbeats > 0,
            &["cluster", "missed_heartbeats"],
            "must be at least 1",
        );
        check(
            cluster.max_inflight > 0,
            &["cluster", "max_inflight"],
            "must be at least 1",
        );
        check(
            !cluster.subject_prefix.is_empty()
                && cluster.subject_prefix.split('.').all(|token| {
                    !token.is_empty()
                        && token
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                }),
            &["cluster", "subject_prefix"],
            "must be NATS subject tokens (letters, digits, _ and -) separated by dots",
        );
        check(
            cluster
                .node_name
                .as_deref()
                .is_none_or(|name| !name.trim().is_empty()),
            &["cluster", "node_name"],
            "must not be empty; leave it out to use the host name",
        );
        let embedding = &self.memory.embedding_config;
        check(
            embedding.batch_size > 0,
            &["memory", "embedding_config", "batch_size"],
            "must be at least 1",
        );
        check(
            embedding.thread_count > 0,
            &["memory", "embedding_config", "thread_count"],
            "must be at least 1",
        );
        check(
            (2..=512).contains(&embedding.max_sequence_length),
            &["memory", "embedding_config", "max_sequence_length"],
            "must be between 2 and 512 (the model's position table)",
        );
        check(
            self.auth.enabled || self.server.listen.ip().is_loopback(),
            &["auth", "enabled"],
            &format!(
                "refusing to serve {} with auth disabled: anyone on the network could run agents. Set [auth] enabled = true or listen on 127.0.0.1",
                self.server.listen
            ),
        );
        let limits = &self.http_server.rate_limit;
        for (key, value) in [
            ("per_client_rps", limits.per_client_rps),
            ("per_client_burst", limits.per_client_burst),
            ("global_rps", limits.global_rps),
            ("global_burst", limits.global_burst),
        ] {
            check(
                !limits.enabled || value > 0,
                &["http_server", "rate_limit", key],
                "must be above zero (or set enabled = false)",
            );
        }
        let agents = &self.agents;
        for (key, value) in [
            ("queue_capacity", agents.queue_capacity),
            ("workers_per_agent", agents.workers_per_agent),
            ("max_message_depth", agents.max_message_depth as usize),
        ] {
            check(value > 0, &["agents", key], "must be at least 1");
        }
        for priority in crate::priority::Priority::ALL {
            let queue = agents.priorities.get(priority);
            let name = priority.as_str();
            check(
                queue.queue_size != Some(0),
                &["agents", "priorities", name, "queue_size"],
                "must be at least 1",
            );
            check(
                queue.latency_target.is_none_or(|d| !d.is_zero()),
                &["agents", "priorities", name, "latency_target"],
                "must be above zero",
            );
            check(
                queue.dedicated_workers.is_none_or(|n| n <= 64),
                &["agents", "priorities", name, "dedicated_workers"],
                "at most 64 per agent",
            );
        }
        check(
            self.server.worker_threads != Some(0),
            &["server", "worker_threads"],
            "must be at least 1",
        );
        check(
            self.server.max_blocking_threads > 0,
            &["server", "max_blocking_threads"],
            "must be at least 1",
        );
        let http = &self.http_server;
        check(
            http.max_connections > 0,
            &["http_server", "max_connections"],
            "must be above zero",
        );
        check(
            http.max_connections_per_client > 0,
            &["http_server", "max_connections_per_client"],
            "must be above zero",
        );
        check(
            !http.request_timeout.is_zero(),
            &["http_server", "request_timeout"],
            "must be above zero",
        );
        check(
            !http.deploy_timeout.is_zero(),
            &["http_server", "deploy_timeout"],
            "must be above zero",
        );
        let cleanup = &self.memory.cleanup;
        check(
            !cleanup.enabled || !cleanup.interval.is_zero(),
            &["memory", "cleanup", "interval"],
            "must be above zero (or set enabled = false)",
        );
        check(
            !cleanup.enabled || cleanup.batch_size > 0,
            &["memory", "cleanup", "batch_size"],
            "must be above zero (or set enabled = false)",
        );
        problems
    }

    /// The data dir: configured, or the platform's per-user data dir.
    pub fn data_dir(&self) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = &self.server.data_dir {
            return Ok(dir.clone());
        }
        project_dirs()
            .map(|dirs| dirs.data_dir().to_owned())
            .ok_or(ConfigError::NoDataDir)
    }

    /// The agents dir: configured, or `agents` in the platform config dir.
    pub fn agents_dir(&self) -> Result<PathBuf, ConfigError> {
        if let Some(dir) = &self.server.agents_dir {
            return Ok(dir.clone());
        }
        default_agents_dir().ok_or(ConfigError::NoAgentsDir)
    }

    /// Where the embedding model's files are looked for.
    pub fn model_dir(&self) -> Result<PathBuf, ConfigError> {
        Ok(self.memory.embedding_config.model_dir(&self.data_dir()?))
    }
}

/// The platform's per-user places for Caxton (XDG on Linux, the native
/// ones on macOS and Windows); `None` where there is no home directory.
fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "caxton", "caxton")
}

/// `agents` in the platform config dir: where a user's manifests go when
/// the config names no agents dir.
pub fn default_agents_dir() -> Option<PathBuf> {
    project_dirs().map(|dirs| dirs.config_dir().join("agents"))
}

/// `caxton.toml` in the platform config dir, read when no `--config` is
/// given and the file exists.
pub fn default_config_file() -> Option<PathBuf> {
    project_dirs().map(|dirs| dirs.config_dir().join("caxton.toml"))
}

/// Sets the key named by `CAXTON_A__B__C` in `tree`. The value is read as
/// TOML when it parses (numbers, booleans, arrays) and as a string otherwise.
fn apply_override(tree: &mut toml::Table, variable: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = variable["CAXTON_".len()..]
        .split("__")
        .map(str::to_lowercase)
        .collect();
    let invalid = |message: String| ConfigError::Env {
        variable: variable.to_owned(),
        message,
    };
    let (key, sections) = path.split_last().expect("split yields one part");
    let mut table = tree;
    for section in sections {
        table = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| invalid(format!("`{section}` is a value, not a section")))?;
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    table.insert(key.clone(), parsed);
    Ok(())
}

/// Durations in config files are human strings such as `"5s"` or `"250ms"`.
pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"5s\" or \"250ms\""
            ))
        })
    }
}

/// `Option<Duration>` as a human string; absent means `None`.
pub(crate) mod optional_duration_text {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::duration_text::serialize(duration, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration_text::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.wasm_runtime.pool_size, 50);
        config.validate().unwrap();
    }

    #[test]
    fn environment_overrides_reach_nested_keys_and_the_port() {
        let env = [
            ("CAXTON_SERVER__PORT", "9191"),
            ("CAXTON_MEMORY__SQLITE_CONFIG__CACHE_SIZE_MB", "32"),
            ("CAXTON_MEMORY__CLEANUP__INTERVAL", "2m"),
            ("CAXTON_DATA_DIR", "/not/an/override"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = Config::resolve(None, env).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:9191");
        assert_eq!(config.memory.sqlite_config.cache_size_mb, 32);
        assert_eq!(config.memory.cleanup.interval, Duration::from_secs(120));
        assert_eq!(config.server.data_dir, None);

        let bad = [("CAXTON_SERVER__LISTEN_ADDR".to_owned(), "x".to_owned())];
        let error = Config::resolve(None, bad).unwrap_err().to_string();
        assert!(error.contains("CAXTON_SERVER__LISTEN_ADDR"), "{error}");
        assert!(
            error.contains("did you mean") || error.contains("listen_addr"),
            "{error}"
        );
    }

    #[test]
    fn a_misspelt_key_gets_its_line_and_a_suggestion() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\nmax_request_sise = 10\n";
        let error = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 3, column 1"), "{error}");
        assert!(
            error.contains("did you mean `max_request_size`?"),
            "{error}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = toml::from_str::<Config>("[server]\nlisten_addr = \"x\"").unwrap_err();
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn durations_are_human_strings() {
        let config: Config =
            toml::from_str("[wasm_runtime]\ndefault_execution_timeout = \"250ms\"").unwrap();
        assert_eq!(
            config.wasm_runtime.default_execution_timeout,
            Duration::from_millis(250)
        );
        let err = toml::from_str::<Config>("[wasm_runtime]\nepoch_tick = \"soon\"").unwrap_err();
        assert!(err.to_string().contains("250ms"), "{err}");
    }

    #[test]
    fn a_profile_memory_cap_above_the_pool_slots_is_refused_at_its_line() {
        let text = "[wasm_runtime]\nmax_memory_per_instance_mb = 32\n\n[[agents.profiles]]\nname = \"big\"\n[agents.profiles.overrides]\nmemory_mb = 64\n";
        let config = Config::parse(text, Path::new("c.toml")).unwrap();
        let error = config
            .validate_text(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 7, column 1: agents.profiles.0.overrides.memory_mb: 64 MiB is more than wasm_runtime.max_memory_per_instance_mb (32)"),
            "{error}"
        );
    }

    #[test]
    fn zero_pool_is_refused() {
        let config: Config = toml::from_str("[wasm_runtime]\npool_size = 0").unwrap();
        assert!(config.validate().is_err());
    }

    #[test]
    fn every_out_of_range_value_is_reported_at_its_line() {
        let text = "[wasm_runtime]\npool_size = 0\n\n[agents]\nqueue_capacity = 0\n\n[memory.embedding_config]\nmax_sequence_length = 1000\n";
        let config = Config::parse(text, Path::new("caxton.toml")).unwrap();
        let Err(ConfigError::Problems { problems, .. }) =
            config.validate_text(text, Path::new("caxton.toml"))
        else {
            panic!("three problems expected");
        };
        let placed: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.message.split(':').next().unwrap()))
            .collect();
        assert_eq!(
            placed,
            [
                (2, "wasm_runtime.pool_size"),
                (8, "memory.embedding_config.max_sequence_length"),
                (5, "agents.queue_capacity"),
            ]
        );
    }
}
