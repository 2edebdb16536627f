//! End-to-end figures for the foundation, printed as a table and written to
//! `target/bench-results/server.json`:
//! - pooled instantiate + call of echo, in process (median, p99);
//! - cold start (empty component cache) and warm start, to a healthy /health;
//! - idle RSS with the default 50 slots;
//! - HTTP echo round trip, sequential (median, p99);
//! - HTTP echo at concurrency 16 (requests/s, median, p99) and peak RSS.
//!
//! Run with `cargo bench --bench server`. Targets from the foundation issue:
//! instantiate+call <= 50 µs median, warm start <= 300 ms, idle RSS <= 40 MB.

#[path = "../tests/support/plugins.rs"]
mod plugins;

use std::path::Path;
use std::time::{Duration, Instant};

use caxton::config::WasmRuntimeConfig;
use caxton::harness::{ServeOptions, ServerProcess};
use caxton::runtime::{Message, Performative, PluginSpec, Runtime};
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summarize(name: &str, mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort();
    let median = percentile(&samples, 0.5);
    let p99 = percentile(&samples, 0.99);
    println!(
        "{name:<44} median {:>9.1} µs   p99 {:>9.1} µs   (n={})",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        samples.len()
    );
    json!({"median_us": median.as_secs_f64() * 1e6, "p99_us": p99.as_secs_f64() * 1e6, "n": samples.len()})
}

async fn in_process_echo() -> serde_json::Value {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(&WasmRuntimeConfig::default(), cache.path().into()).unwrap();
    let grants = vec!["log".to_owned()];
    let path = plugins::component("echo");
    let echo = runtime
        .load_agent(&PluginSpec {
            name: "echo",
            component: &path,
            wasm: None,
            grants: &grants,
            limits: runtime.default_limits(),
        })
        .unwrap();
    let message = Message {
        id: "bench".into(),
        performative: Performative::Request,
        sender: "bench".into(),
        receiver: Some("echo".into()),
        capability: None,
        conversation_id: None,
        reply_with: None,
        in_reply_to: None,
        content: r#"{"text":"hello"}"#.into(),
    };
    let mut samples = Vec::with_capacity(20_000);
    for i in 0..22_000 {
        let started = Instant::now();
        let outcome = runtime
            .call_agent(
                &echo,
                message.clone(),
                &caxton::runtime::HostServices::none(),
                None,
            )
            .await;
        let elapsed = started.elapsed();
        outcome.result.unwrap().unwrap();
        if i >= 2_000 {
            samples.push(elapsed); // the first 2k warm caches and the pool
        }
    }
    summarize("echo instantiate + call (in process)", samples)
}

/// Starts the server (through the harness the tests use) on the bundled
/// example agents, and returns it once /health answers, with the time
/// that took.
async fn start(data_dir: &Path) -> (ServerProcess, Duration) {
    let started = Instant::now();
    let agents = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents");
    let options = ServeOptions::new(Path::new(env!("CARGO_BIN_EXE_caxton")), data_dir, &agents);
    let server = ServerProcess::start(&options).unwrap();
    let client = {
        caxton::llm::install_tls_provider();
        reqwest::Client::new()
    };
    loop {
        let healthy = client
            .get(format!("{}/api/v1/health", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (server, started.elapsed())
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

async fn echo_once(client: &reqwest::Client, url: &str) -> Duration {
    let started = Instant::now();
    let response = client
        .post(url)
        .json(&json!({"content": {"text": "hello"}}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.bytes().await.unwrap();
    started.elapsed()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` probes with --list
    }
    plugins::plugin_dir();
    let mut results = serde_json::Map::new();
    results.insert("echo_in_process".into(), in_process_echo().await);

    let data = tempfile::tempdir().unwrap();
    let (server, cold) = start(data.path()).await;
    drop(server);
    let mut warm_starts = Vec::new();
    for _ in 0..5 {
        let (server, warm) = start(data.path()).await;
        warm_starts.push(warm);
        drop(server);
    }
    println!(
        "{:<44} {:>9.1} ms",
        "cold start to healthy (empty cache)",
        cold.as_secs_f64() * 1e3
    );
    results.insert("cold_start_ms".into(), json!(cold.as_secs_f64() * 1e3));
    let warm = summarize("warm start to healthy (5 runs)", warm_starts);
    results.insert("warm_start".into(), warm);

    let (server, _) = start(data.path()).await;
    let pid = server.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kb(pid, "VmRSS:");
    println!(
        "{:<44} {:>9.1} MB",
        "idle RSS (50 slots)",
        idle_rss as f64 / 1024.0
    );
    results.insert("idle_rss_kb".into(), json!(idle_rss));

    let url = format!("{}/api/v1/agents/echo/messages", server.base);
    let client = {
        caxton::llm::install_tls_provider();
        reqwest::Client::new()
    };
    for _ in 0..200 {
        echo_once(&client, &url).await;
    }
    let mut sequential = Vec::new();
    for _ in 0..3_000 {
        sequential.push(echo_once(&client, &url).await);
    }
    results.insert(
        "http_echo_sequential".into(),
        summarize("HTTP echo round trip (sequential)", sequential),
    );

    let concurrency = 16;
    let per_worker = 1_000;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    samples.push(echo_once(&client, &url).await);
                }
                samples
            })
        })
        .collect();
    let mut concurrent = Vec::new();
    for worker in workers {
        concurrent.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    let rps = concurrent.len() as f64 / elapsed.as_secs_f64();
    let mut summary = summarize("HTTP echo round trip (concurrency 16)", concurrent);
    summary["requests_per_second"] = json!(rps);
    println!(
        "{:<44} {:>9.0} req/s",
        "HTTP echo throughput (concurrency 16)", rps
    );
    results.insert("http_echo_c16".into(), summary);
    let peak_rss = rss_kb(pid, "VmHWM:");
    println!(
        "{:<44} {:>9.1} MB",
        "peak RSS after load",
        peak_rss as f64 / 1024.0
    );
    results.insert("peak_rss_kb".into(), json!(peak_rss));

    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("server.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
}
