//! Embedding engine figures, side by side with ONNX Runtime on the same
//! model file and thread count, in the same run:
//! model load time, RSS added by the model, latency of a short sentence and
//! of a 128-token passage (median, p99), throughput at batch 1/16/32/64, and
//! the cache-hit path. Results go to `target/bench-results/embeddings.json`.
//!
//! Run with `cargo bench --bench embeddings`. The baseline needs the
//! benchmarks' Python environment (`./scripts/python-env --bench`); without
//! it only Caxton's figures are printed. The timing helpers are those of
//! `caxton benchmark embeddings`, which also measures several thread counts.

use std::path::Path;
use std::time::{Duration, Instant};

use caxton::benchmark::{
    PASSAGE_SENTENCE, SHORT, encoder_latency, encoder_throughput, ort_baseline,
};
use caxton::config::EmbeddingConfig;
use caxton::embed::{EmbeddingEngine, Encoder, ModelSpec};
use serde_json::json;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Median and p99 of `text` one at a time, in milliseconds.
fn latency(encoder: &Encoder, text: &str, runs: usize) -> (f64, f64) {
    let summary = encoder_latency(encoder, text, runs).unwrap();
    (
        summary["median_ms"].as_f64().unwrap(),
        summary["p99_ms"].as_f64().unwrap(),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let config = EmbeddingConfig::default();
    let spec = ModelSpec::named(&config.model).unwrap();
    let dir = caxton::harness::model_dir();
    let passage = [PASSAGE_SENTENCE; 9].join(" ");

    // Load and RSS with the default plans (batch sizes up to batch_size).
    let rss_before = rss_kb();
    let started = Instant::now();
    // The default config's plan (one row), as a device would load it.
    let default_plans = [1];
    let encoder = Encoder::load(
        &spec,
        &dir,
        config.max_sequence_length,
        &default_plans,
        config.precision,
    )
    .unwrap();
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    encoder.embed(&[SHORT]).unwrap();
    let rss_added_mb = (rss_kb() - rss_before) as f64 / 1024.0;
    assert_eq!(encoder.token_ids(&passage).unwrap().len(), 128);

    let short = latency(&encoder, SHORT, 300);
    let long = latency(&encoder, &passage, 100);
    drop(encoder);

    let mut rates = serde_json::Map::new();
    for batch in [1, 16, 32, 64] {
        // As configured with `batch_size = batch`: plans for 1 and `batch` rows.
        let plans = if batch == 1 { vec![1] } else { vec![1, batch] };
        let encoder = Encoder::load(
            &spec,
            &dir,
            config.max_sequence_length,
            &plans,
            config.precision,
        )
        .unwrap();
        rates.insert(
            batch.to_string(),
            json!(encoder_throughput(&encoder, batch).unwrap()),
        );
    }

    let engine = EmbeddingEngine::start(&config, &caxton::harness::model_dir()).unwrap();
    let cached = vec![SHORT.to_owned()];
    engine.embed(&cached).await.unwrap();
    let mut hits: Vec<Duration> = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let started = Instant::now();
        engine.embed(&cached).await.unwrap();
        hits.push(started.elapsed());
    }
    hits.sort();
    let hit_us = (
        hits[hits.len() / 2].as_secs_f64() * 1e6,
        hits[hits.len() * 99 / 100].as_secs_f64() * 1e6,
    );

    let ort = ort_baseline(&dir, 1, &passage)
        .map_err(|error| eprintln!("ONNX Runtime baseline unavailable: {error}"))
        .ok();
    let ratio = |ours: f64, path: &[&str]| {
        let mut value = ort.as_ref()?;
        for key in path {
            value = value.get(*key)?;
        }
        Some(ours / value.as_f64()?)
    };

    println!("model load (plans {default_plans:?})        {load_ms:>8.1} ms");
    println!("RSS added by the model                      {rss_added_mb:>8.1} MB");
    println!(
        "short sentence (11 tokens)   median {:>7.2} ms  p99 {:>7.2} ms  ratio to ORT {:?}",
        short.0,
        short.1,
        ratio(short.0, &["short", "median_ms"])
    );
    println!(
        "128-token passage            median {:>7.2} ms  p99 {:>7.2} ms  ratio to ORT {:?}",
        long.0,
        long.1,
        ratio(long.0, &["passage", "median_ms"])
    );
    for (batch, rate) in &rates {
        println!(
            "throughput batch {batch:>2}          {:>8.1} sentences/s   ORT {:?}",
            rate.as_f64().unwrap(),
            ort.as_ref().and_then(|o| o["throughput"][batch].as_f64())
        );
    }
    println!(
        "cache hit                    median {:>7.2} µs  p99 {:>7.2} µs",
        hit_us.0, hit_us.1
    );
    if let Some(ort) = &ort {
        println!("ONNX Runtime (1 thread): {ort}");
    }

    let results = json!({
        "load_ms": load_ms,
        "rss_added_mb": rss_added_mb,
        "short": {"median_ms": short.0, "p99_ms": short.1, "ratio_to_ort": ratio(short.0, &["short", "median_ms"])},
        "passage": {"median_ms": long.0, "p99_ms": long.1, "ratio_to_ort": ratio(long.0, &["passage", "median_ms"])},
        "throughput": rates,
        "cache_hit_us": {"median": hit_us.0, "p99": hit_us.1},
        "onnx_runtime": ort,
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("embeddings.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
}
