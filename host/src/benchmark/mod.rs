//! `caxton benchmark ...`: end-to-end measurements on this machine, each
//! beside a baseline measured in the same run.

mod agents;
mod faults;
mod fleet;
mod footprint;
mod llm;
mod mcp;
mod memory;
mod plugins;
mod priorities;
mod served;
mod suite;
mod wasmtime_serve;

pub use agents::AgentsBenchmark;
pub use faults::{FAULT_KINDS, FaultsBenchmark};
pub use fleet::FleetBenchmark;
pub use llm::LlmBenchmark;
pub use mcp::mcp;
pub use memory::MemoryBenchmark;
pub use plugins::plugins;
pub use priorities::PrioritiesBenchmark;
pub use suite::{
    ApiBeside, PASSAGE_SENTENCE, SHORT, api, compare, embeddings, encoder_latency,
    encoder_throughput, metric, ort_baseline, report, system,
};

use std::time::Duration;

use serde_json::{Value, json};

/// Median, p99 and count of `samples`, in milliseconds.
pub(crate) fn percentiles(mut samples: Vec<Duration>) -> Value {
    if samples.is_empty() {
        return json!({"median_ms": null, "p99_ms": null, "n": 0});
    }
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    json!({"median_ms": at(0.5), "p99_ms": at(0.99), "n": samples.len()})
}
