//! Prometheus metrics under the operators' guide's names. One process-wide
//! registry: every subsystem records into it, and `/metrics` (on its own
//! listener) renders it in the text format.
//!
//! Counters and histograms are recorded where things happen; gauges that
//! describe state are set from samples the server gathers: RSS, pool use
//! and counts at scrape time, the store's counts on a timer.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets from 100 µs to 10 s: fine enough for a 1 ms API.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub request_duration: HistogramVec,
    pub requests: IntCounterVec,
    pub memory_used_bytes: IntGauge,
    pub cpu_usage_percent: Gauge,
    pub active_connections: IntGauge,
    pub uptime_seconds: Gauge,
    pub agent_config_count: IntGauge,
    pub agent_wasm_count: IntGauge,
    pub agent_reload_duration: Histogram,
    pub agent_reload_errors: prometheus::IntCounter,
    pub agent_response_time: HistogramVec,
    pub tool_call_duration: HistogramVec,
    pub fuel_consumed: IntCounterVec,
    pub traps: IntCounterVec,
    pub low_priority_calls: IntCounterVec,
    pub messages_processed: IntCounterVec,
    pub message_queue_depth: IntGaugeVec,
    pub message_queue_wait: HistogramVec,
    pub messages_late: IntCounterVec,
    pub memory_entities: IntGauge,
    pub memory_relations: IntGauge,
    pub memory_search_latency: Histogram,
    pub memory_sqlite_size_bytes: IntGauge,
    pub memory_cache_hit_rate: GaugeVec,
    pub pool_slots_in_use: IntGauge,
    pub llm_request_duration: HistogramVec,
    pub llm_tokens: IntCounterVec,
    pub llm_requests: IntCounterVec,
    pub llm_cache: IntCounterVec,
    pub mcp_server_up: IntGaugeVec,
    pub mcp_server_restarts: IntCounterVec,
    pub mcp_tool_calls: IntCounterVec,
    pub mcp_tool_call_duration: HistogramVec,
    pub cluster_remote_calls: IntCounterVec,
    pub cluster_remote_call_duration: HistogramVec,
    pub cluster_nodes: IntGauge,
    pub cluster_connected: IntGauge,
    pub embedding_batch_duration: Histogram,
    pub embedding_batch_texts: Histogram,
    pub memory_cleanup_runs: IntCounterVec,
    pub history_sample_duration: Histogram,
}

/// The state the gauges show, as the server last saw it.
#[derive(Debug, Clone, Default)]
pub struct StateSample {
    pub uptime_seconds: f64,
    pub pool_slots_in_use: usize,
    /// Configuration agents (run by the built-in prompt agent).
    pub configuration_agents: usize,
    /// Agents and tools that are components of their own.
    pub component_plugins: usize,
    pub embedding_cache_hit_rate: Option<f64>,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

fn histogram(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric.expect("metric definition");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("metric registered once");
                metric
            }};
        }
        Self {
            request_duration: register!(HistogramVec::new(
                histogram(
                    "caxton_server_request_duration_seconds",
                    "HTTP request latency, by route template, method and status"
                ),
                &["route", "method", "status"]
            )),
            requests: register!(IntCounterVec::new(
                Opts::new("caxton_server_requests_total", "HTTP requests answered"),
                &["route", "method", "status"]
            )),
            memory_used_bytes: register!(IntGauge::new(
                "caxton_server_memory_used_bytes",
                "Resident set size of the server process"
            )),
            cpu_usage_percent: register!(Gauge::new(
                "caxton_server_cpu_usage_percent",
                "CPU used by the process since the previous scrape, percent of one core"
            )),
            active_connections: register!(IntGauge::new(
                "caxton_server_active_connections",
                "Open HTTP connections"
            )),
            uptime_seconds: register!(Gauge::new(
                "caxton_server_uptime_seconds",
                "Seconds since the server started"
            )),
            agent_config_count: register!(IntGauge::new(
                "caxton_agent_config_count",
                "Configuration agents deployed (a manifest with a system prompt, run by the built-in prompt agent)"
            )),
            agent_wasm_count: register!(IntGauge::new(
                "caxton_agent_wasm_count",
                "Component agents and tools deployed (each its own WebAssembly component)"
            )),
            agent_reload_duration: register!(Histogram::with_opts(histogram(
                "caxton_agent_reload_duration_seconds",
                "From a changed agent file to the new version serving"
            ))),
            agent_reload_errors: register!(prometheus::IntCounter::new(
                "caxton_agent_reload_errors_total",
                "Changed agent files refused by validation (the old version kept serving)"
            )),
            agent_response_time: register!(HistogramVec::new(
                histogram(
                    "caxton_agent_response_time_seconds",
                    "Time for an agent to handle one message"
                ),
                &["agent"]
            )),
            tool_call_duration: register!(HistogramVec::new(
                histogram(
                    "caxton_agent_tool_call_duration_seconds",
                    "Time for one tool invocation from an agent"
                ),
                &["agent", "tool"]
            )),
            fuel_consumed: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_agent_fuel_consumed_total",
                    "Fuel (roughly, wasm instructions) spent by each agent"
                ),
                &["agent"]
            )),
            traps: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_agent_traps_total",
                    "Plugin calls stopped by a fault, by kind"
                ),
                &["kind"]
            )),
            low_priority_calls: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_wasm_low_priority_calls_total",
                    "Plugin calls run on the low-priority threads, by plugin and why (long: ran past long_call_after; probation: the plugin faulted recently)"
                ),
                &["plugin", "reason"]
            )),
            messages_processed: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_messages_processed_total",
                    "Messages delivered to agents, by outcome"
                ),
                &["outcome"]
            )),
            message_queue_depth: register!(IntGaugeVec::new(
                Opts::new(
                    "caxton_message_queue_depth",
                    "Messages waiting in agents' mailboxes, by priority"
                ),
                &["priority"]
            )),
            message_queue_wait: register!(HistogramVec::new(
                histogram(
                    "caxton_message_queue_wait_seconds",
                    "Time messages waited in an agent's mailbox before a worker took them, by priority"
                ),
                &["priority"]
            )),
            messages_late: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_messages_late_total",
                    "Messages answered with queue_timeout because they waited past their priority's latency target, by priority"
                ),
                &["priority"]
            )),
            memory_entities: register!(IntGauge::new(
                "caxton_memory_entities_total",
                "Entities in the knowledge graph"
            )),
            memory_relations: register!(IntGauge::new(
                "caxton_memory_relations_total",
                "Relations in the knowledge graph"
            )),
            memory_search_latency: register!(Histogram::with_opts(histogram(
                "caxton_memory_search_latency_seconds",
                "Memory search latency, including the query's embedding"
            ))),
            memory_sqlite_size_bytes: register!(IntGauge::new(
                "caxton_memory_sqlite_size_bytes",
                "Size of the memory database with its WAL"
            )),
            memory_cache_hit_rate: register!(GaugeVec::new(
                Opts::new(
                    "caxton_memory_cache_hit_rate",
                    "Hit rate of the memory caches since start, by cache"
                ),
                &["type"]
            )),
            pool_slots_in_use: register!(IntGauge::new(
                "caxton_wasm_pool_slots_in_use",
                "Component instance slots running a call"
            )),
            llm_request_duration: register!(HistogramVec::new(
                histogram(
                    "caxton_llm_request_duration_seconds",
                    "Time for one language-model request, retries included"
                ),
                &["provider", "model"]
            )),
            llm_tokens: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_llm_tokens_total",
                    "Tokens language models read (prompt) and wrote (completion), as they counted them"
                ),
                &["provider", "model", "kind"]
            )),
            llm_requests: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_llm_requests_total",
                    "Language-model requests by outcome (ok, or the error kind)"
                ),
                &["provider", "outcome"]
            )),
            llm_cache: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_llm_cache_total",
                    "Configuration agents' response-cache lookups (hit or miss)"
                ),
                &["result"]
            )),
            mcp_server_up: register!(IntGaugeVec::new(
                Opts::new(
                    "caxton_mcp_server_up",
                    "Whether each [[mcp.servers]] entry is connected with its tools listed (1) or not (0)"
                ),
                &["server"]
            )),
            mcp_server_restarts: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_mcp_server_restarts_total",
                    "Times an MCP server was started or reconnected after the first"
                ),
                &["server"]
            )),
            mcp_tool_calls: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_mcp_tool_calls_total",
                    "Agents' calls to MCP servers' tools by outcome (ok, tool_error, or the error kind)"
                ),
                &["server", "outcome"]
            )),
            mcp_tool_call_duration: register!(HistogramVec::new(
                histogram(
                    "caxton_mcp_tool_call_duration_seconds",
                    "Time for one call to an MCP server's tool"
                ),
                &["server"]
            )),
            cluster_remote_calls: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_cluster_remote_calls_total",
                    "Messages this host sent to other hosts of the fleet, by the node that answered (\"none\" when none did) and outcome (ok, error, no_responders, timeout, unavailable)"
                ),
                &["node", "outcome"]
            )),
            cluster_remote_call_duration: register!(HistogramVec::new(
                histogram(
                    "caxton_cluster_remote_call_duration_seconds",
                    "Time from sending a message to another host to its answer"
                ),
                &["node"]
            )),
            cluster_nodes: register!(IntGauge::new(
                "caxton_cluster_nodes",
                "Hosts of the fleet this host sees, itself included (0 without [cluster])"
            )),
            cluster_connected: register!(IntGauge::new(
                "caxton_cluster_connected",
                "1 while this host is connected to the fleet's NATS server"
            )),
            embedding_batch_duration: register!(Histogram::with_opts(histogram(
                "caxton_embedding_batch_duration_seconds",
                "Time one inference of the embedding model took (a batch of texts)"
            ))),
            embedding_batch_texts: register!(Histogram::with_opts(
                HistogramOpts::new(
                    "caxton_embedding_batch_texts",
                    "Texts embedded together in one inference"
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0])
            )),
            memory_cleanup_runs: register!(IntCounterVec::new(
                Opts::new(
                    "caxton_memory_cleanup_runs_total",
                    "Passes of the periodic memory cleanup, by outcome (ok, failed)"
                ),
                &["outcome"]
            )),
            history_sample_duration: register!(Histogram::with_opts(histogram(
                "caxton_history_sample_duration_seconds",
                "Time one history sample took: gathering, writing and rolling up"
            ))),
            registry,
        }
    }

    /// The registry's current values (what `/metrics` renders and the
    /// history sampler records).
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// An upper bound of the `q` quantile (0-1) of a histogram's samples
    /// since start, in its own unit: the upper edge of the bucket where the
    /// quantile falls (`None` with no samples, or past the last bucket).
    pub fn quantile_upper_bound(histogram: &Histogram, q: f64) -> Option<f64> {
        use prometheus::core::Metric;
        let metric = histogram.metric();
        let data = metric.get_histogram();
        let total = data.get_sample_count();
        if total == 0 {
            return None;
        }
        let wanted = (total as f64 * q).ceil() as u64;
        data.get_bucket()
            .iter()
            .find(|bucket| bucket.cumulative_count() >= wanted)
            .map(|bucket| bucket.upper_bound())
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("text format is UTF-8")
    }

    /// Sets the gauges that describe the server's state; the server
    /// gathers the sample from its services (this module knows none).
    pub fn record_state(&self, state: &StateSample) {
        self.sample_process();
        self.uptime_seconds.set(state.uptime_seconds);
        self.pool_slots_in_use.set(state.pool_slots_in_use as i64);
        self.agent_config_count
            .set(state.configuration_agents as i64);
        self.agent_wasm_count.set(state.component_plugins as i64);
        if let Some(rate) = state.embedding_cache_hit_rate {
            self.memory_cache_hit_rate
                .with_label_values(&["embedding"])
                .set(rate);
        }
    }

    /// Sets the gauges read from the store (a query each: sampled on a
    /// timer, never per scrape).
    pub fn record_store(&self, entities: u64, relations: u64, database_bytes: u64) {
        self.memory_entities.set(entities as i64);
        self.memory_relations.set(relations as i64);
        self.memory_sqlite_size_bytes.set(database_bytes as i64);
    }

    /// Refreshes the process gauges (RSS, CPU) from `/proc`.
    pub fn sample_process(&self) {
        if let Some(rss) = process::rss_bytes() {
            self.memory_used_bytes.set(rss as i64);
        }
        if let Some(percent) = process::cpu_percent_since_last() {
            self.cpu_usage_percent.set(percent);
        }
    }
}

/// Resident set size of this process, where the platform tells.
pub fn resident_memory_bytes() -> Option<u64> {
    process::rss_bytes()
}

/// CPU time this process has used since it started (user + system).
pub fn cpu_seconds_total() -> Option<f64> {
    process::cpu_seconds()
}

/// The process's own resource use, read from `/proc/self` (Linux; other
/// systems report nothing rather than something wrong).
mod process {
    use std::sync::Mutex;
    use std::time::Instant;

    pub fn rss_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// CPU seconds (user + system) the process has used.
    pub fn cpu_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which may contain spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user: f64 = fields.get(11)?.parse().ok()?;
        let system: f64 = fields.get(12)?.parse().ok()?;
        // SAFETY: sysconf only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (ticks > 0).then(|| (user + system) / ticks as f64)
    }

    pub fn cpu_percent_since_last() -> Option<f64> {
        static LAST: Mutex<Option<(Instant, f64)>> = Mutex::new(None);
        let now = (Instant::now(), cpu_seconds()?);
        let mut last = LAST.lock().ok()?;
        let previous = last.replace(now);
        let (then, used) = previous?;
        let wall = now.0.duration_since(then).as_secs_f64();
        (wall > 0.0).then(|| 100.0 * (now.1 - used) / wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_guides_names() {
        let metrics = metrics();
        metrics.traps.with_label_values(&["out_of_fuel"]).inc();
        metrics.sample_process();
        let text = metrics.render();
        assert!(text.contains("caxton_agent_traps_total{kind=\"out_of_fuel\"}"));
        assert!(text.contains("caxton_server_memory_used_bytes"));
        assert!(metrics.memory_used_bytes.get() > 1_000_000);
    }
}
