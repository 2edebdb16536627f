//! The `api`, `system` and `embeddings` suites, and what turns results
//! into a report or a regression check. Every suite's JSON carries a flat
//! `metrics` list (`name`, `value`, `unit`, `better`: `lower`|`higher`) so
//! `report` and `compare` work on any of them.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::percentiles;
use super::served::{Load, echo_manifest, load, load_url, plain_client, serve};
use super::wasmtime_serve::WasmtimeServe;

/// One comparable figure.
pub fn metric(name: &str, value: f64, unit: &str, better: &str) -> Value {
    json!({"name": name, "value": value, "unit": unit, "better": better})
}

fn ms(summary: &Value, key: &str) -> f64 {
    summary[key].as_f64().unwrap_or(f64::NAN)
}

/// Rate limit off, and room for every connection a load run opens (a
/// pooled client at 64 in flight briefly holds more than the default 64
/// per client, and the 65th would be refused).
const QUIET: &str =
    "[http_server]\nmax_connections_per_client = 1024\n[http_server.rate_limit]\nenabled = false\n";

/// What `caxton benchmark api` drives beside Caxton's echo, in the same
/// run and with the same client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiBeside {
    /// Plain `wasmtime serve` answering the same body from a wasi:http
    /// component.
    WasmtimeServe,
    /// The same Caxton with `[history] enabled = false`, while the one
    /// measured samples every second (60 times the default): what the
    /// history sampler costs the message path.
    HistoryOff,
}

impl ApiBeside {
    /// The prefix of its figures and the suffix of the ratios to it.
    fn key(self) -> &'static str {
        match self {
            ApiBeside::WasmtimeServe => "wasmtime_serve",
            ApiBeside::HistoryOff => "history_off",
        }
    }
}

/// A baseline server, kept alive for the run.
enum BesideServer {
    Wasmtime(WasmtimeServe),
    /// Held only to keep the process up; dropping it stops the server.
    Caxton {
        _alive: super::served::Served,
    },
}

/// `caxton benchmark api`: the HTTP round trip to echo at concurrency 1,
/// 16 and 64, beside `/api/v1/health` (no plugin call) and, with
/// `beside`, beside a baseline server driven by the same client in the
/// same run. Each concurrency alternates between the two servers in
/// rounds, so noise on this shared machine falls on both.
pub async fn api(work: &Path, requests: usize, beside: Option<ApiBeside>) -> anyhow::Result<Value> {
    let agents = work.join("agents");
    std::fs::create_dir_all(&agents)?;
    std::fs::write(agents.join("echo.toml"), echo_manifest("echo", "1.0.0"))?;
    let config = format!("[memory.embedding_config]\nenabled = false\n{QUIET}");
    let sampled_every_second = beside == Some(ApiBeside::HistoryOff);
    let served = serve(
        &agents,
        &work.join("data"),
        &if sampled_every_second {
            format!("{config}[history]\ninterval = \"1s\"\n")
        } else {
            config.clone()
        },
    )?;
    let body = json!({"content": {"n": 1}});
    let baseline = match beside {
        None => None,
        Some(ApiBeside::WasmtimeServe) => {
            let server = WasmtimeServe::start()?;
            eprintln!("baseline: {} serve on {}", server.version, server.base);
            let url = server.base.clone();
            Some((BesideServer::Wasmtime(server), plain_client()?, url))
        }
        Some(ApiBeside::HistoryOff) => {
            let server = serve(
                &agents,
                &work.join("data-history-off"),
                &format!("{config}[history]\nenabled = false\n"),
            )?;
            eprintln!("baseline: the same host without history on {}", server.base);
            let url = format!("{}/api/v1/agents/echo/messages", server.base);
            let client = server.client.clone();
            Some((BesideServer::Caxton { _alive: server }, client, url))
        }
    };
    let echo_url = format!("{}/api/v1/agents/echo/messages", served.base);
    // Warm both: compiled code, pooled instances, open connections.
    load_url(&served.client, &echo_url, body.clone(), 200, 16).await?;
    if let Some((_, client, url)) = &baseline {
        load_url(client, url, body.clone(), 200, 16).await?;
    }
    let mut metrics = Vec::new();
    let mut runs = serde_json::Map::new();
    const ROUNDS: usize = 3;
    let segment = (requests / ROUNDS).max(1);
    for (label, concurrency) in [("c1", 1), ("c16", 16), ("c64", 64)] {
        let mut echo = Load::default();
        let mut plain = Load::default();
        for _ in 0..ROUNDS {
            if let Some((_, client, url)) = &baseline {
                plain.add(load_url(client, url, body.clone(), segment, concurrency).await?);
            }
            echo.add(
                load_url(
                    &served.client,
                    &echo_url,
                    body.clone(),
                    segment,
                    concurrency,
                )
                .await?,
            );
        }
        let summary = echo.summary();
        eprintln!("api echo {label}: {summary}");
        let figures = |prefix: &str, summary: &Value, metrics: &mut Vec<Value>| {
            let latency = &summary["latency_accepted"];
            for (name, value, unit, better) in [
                ("median_ms", ms(latency, "median_ms"), "ms", "lower"),
                ("p99_ms", ms(latency, "p99_ms"), "ms", "lower"),
                (
                    "per_s",
                    summary["accepted_per_s"].as_f64().unwrap_or(0.0),
                    "req/s",
                    "higher",
                ),
            ] {
                metrics.push(metric(
                    &format!("{prefix}.{label}.{name}"),
                    value,
                    unit,
                    better,
                ));
            }
        };
        figures("api.echo", &summary, &mut metrics);
        if let Some(beside) = beside {
            let key = beside.key();
            let plain = plain.summary();
            eprintln!("{key} {label} (baseline): {plain}");
            figures(&format!("baseline.{key}"), &plain, &mut metrics);
            let rate = |summary: &Value| summary["accepted_per_s"].as_f64().unwrap_or(f64::NAN);
            let per_s = rate(&summary) / rate(&plain);
            let p99 = ms(&summary["latency_accepted"], "p99_ms")
                / ms(&plain["latency_accepted"], "p99_ms");
            eprintln!("ratio to {key} {label}: {per_s:.2}x requests/s, p99 {p99:.2}x");
            metrics.push(metric(
                &format!("api.echo.{label}.per_s_vs_{key}"),
                per_s,
                "ratio",
                "higher",
            ));
            metrics.push(metric(
                &format!("api.echo.{label}.p99_vs_{key}"),
                p99,
                "ratio",
                "lower",
            ));
            runs.insert(format!("{key}_{label}"), plain);
        }
        runs.insert(format!("echo_{label}"), summary);
    }
    match &baseline {
        Some((BesideServer::Wasmtime(server), _, _)) => {
            runs.insert("wasmtime_serve_version".into(), json!(server.version));
        }
        Some((BesideServer::Caxton { .. }, _, _)) => {
            let cost = history_cost(&served, &work.join("data")).await?;
            eprintln!("history: {cost}");
            for (name, unit) in [
                ("rows_per_tick", "rows"),
                ("bytes_per_row", "bytes"),
                ("bytes_per_day_at_default_interval", "bytes"),
                ("tick_mean_ms", "ms"),
                ("sampler_seconds_per_hour_at_default_interval", "s"),
            ] {
                metrics.push(metric(
                    &format!("history.{name}"),
                    cost[name].as_f64().unwrap_or(f64::NAN),
                    unit,
                    "lower",
                ));
            }
            runs.insert("history".into(), cost);
        }
        None => {}
    }
    // Baseline: the same HTTP path without a plugin call.
    let started = Instant::now();
    let mut health = Vec::new();
    for _ in 0..requests.min(2000) {
        let sent = Instant::now();
        served
            .client
            .get(format!("{}/api/v1/health", served.base))
            .send()
            .await?
            .bytes()
            .await?;
        health.push(sent.elapsed());
    }
    let health = percentiles(health);
    eprintln!(
        "api health c1 (baseline): {health} in {:?}",
        started.elapsed()
    );
    metrics.push(metric(
        "api.health.c1.median_ms",
        ms(&health, "median_ms"),
        "ms",
        "lower",
    ));
    runs.insert("health_c1_baseline".into(), health);
    Ok(json!({"suite": "api", "runs": runs, "metrics": metrics}))
}

/// What the history of `served` (sampling every second through the load)
/// costs: rows a tick writes, bytes a row takes in the file, what a day at
/// the default one-minute interval adds before roll-ups, and the sampler's
/// time per tick (wall time of gathering, writing and maintaining, from
/// its own `caxton_history_sample_duration_seconds`).
async fn history_cost(served: &super::served::Served, data: &Path) -> anyhow::Result<Value> {
    let report: Value = served
        .client
        .get(format!(
            "{}/api/v1/history?last=1h&series=caxton_history_sample_duration_seconds",
            served.base
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ticks = &report["series"][0];
    let tick_mean_ms = ticks["mean"].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let store = crate::history::store::HistoryStore::open(&data.join(crate::history::FILE)).await?;
    let (mut rows, mut stamps) = (0u64, std::collections::BTreeSet::new());
    store
        .scan(0, crate::history::unix_now() + 10, &[], |row| {
            rows += 1;
            stamps.insert(row.ts);
        })
        .await?;
    let used = store.used_bytes().await? as f64;
    let rows_per_tick = rows as f64 / stamps.len().max(1) as f64;
    let bytes_per_row = used / rows.max(1) as f64;
    Ok(json!({
        "ticks": stamps.len(),
        "rows": rows,
        "used_bytes": used,
        "rows_per_tick": rows_per_tick,
        "bytes_per_row": bytes_per_row,
        "bytes_per_day_at_default_interval": rows_per_tick * bytes_per_row * 1440.0,
        "tick_mean_ms": tick_mean_ms,
        "tick_p99_ms": ticks["p99"].as_f64().map(|s| s * 1000.0),
        "sampler_seconds_per_hour_at_default_interval": tick_mean_ms / 1000.0 * 60.0,
    }))
}

/// `caxton benchmark system`: startup, idle memory, a loopback load at 10x
/// the instance pool (only 2xx, or 429/503 with Retry-After, may come
/// back), and with `find_breaking_points` a concurrency ramp until the
/// SLA (p99 ≤ 200 ms, errors ≤ 1%) breaks.
pub async fn system(
    work: &Path,
    find_breaking_points: bool,
    observations: usize,
) -> anyhow::Result<Value> {
    let agents = work.join("agents");
    std::fs::create_dir_all(&agents)?;
    std::fs::write(agents.join("echo.toml"), echo_manifest("echo", "1.0.0"))?;
    let mut metrics = Vec::new();
    let mut report = serde_json::Map::new();

    // Cold start compiles the component; warm start reads the cache.
    let cold = serve(&agents, &work.join("data"), QUIET)?;
    let cold_ms = cold.startup.as_secs_f64() * 1e3;
    drop(cold);
    let served = serve(&agents, &work.join("data"), QUIET)?;
    let warm_ms = served.startup.as_secs_f64() * 1e3;
    // Idle memory once the model has loaded.
    served.wait_ready(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health: Value = served
        .client
        .get(format!("{}/api/v1/health", served.base))
        .send()
        .await?
        .json()
        .await?;
    let idle_rss = health["resident_memory_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6;
    // The peak so far is the start's: the model's optimiser and the index.
    let startup_peak = served.proc_status_mb("VmHWM").unwrap_or(f64::NAN);
    let idle_anon = served.proc_status_mb("RssAnon").unwrap_or(f64::NAN);
    let (binary_mb, stripped_mb) = binary_sizes();
    eprintln!(
        "startup cold {cold_ms:.0} ms, warm {warm_ms:.0} ms; idle RSS {idle_rss:.1} MB \
         ({idle_anon:.1} MB anonymous), startup peak {startup_peak:.1} MB; binary {binary_mb:.1} MB \
         ({stripped_mb:.1} MB stripped)"
    );
    metrics.push(metric("system.startup.cold_ms", cold_ms, "ms", "lower"));
    metrics.push(metric("system.startup.warm_ms", warm_ms, "ms", "lower"));
    metrics.push(metric("system.idle_rss_mb", idle_rss, "MB", "lower"));
    metrics.push(metric("system.idle_anon_mb", idle_anon, "MB", "lower"));
    metrics.push(metric(
        "system.startup_peak_mb",
        startup_peak,
        "MB",
        "lower",
    ));
    metrics.push(metric("system.binary_mb", binary_mb, "MB", "lower"));
    metrics.push(metric(
        "system.binary_stripped_mb",
        stripped_mb,
        "MB",
        "lower",
    ));
    report.insert(
        "startup".into(),
        json!({"cold_ms": cold_ms, "warm_ms": warm_ms, "idle_rss_mb": idle_rss, "idle_anon_mb": idle_anon,
               "startup_peak_mb": startup_peak, "binary_mb": binary_mb, "binary_stripped_mb": stripped_mb}),
    );
    drop(served);

    if observations > 0 {
        use super::footprint::{at_scale, start_measured};
        // Warm starts (the first of each compiles the components, whose
        // garbage would count as the model's or the host's).
        let no_model_config = format!("{QUIET}[memory.embedding_config]\nenabled = false\n");
        let mut baselines = Vec::new();
        for (dir, config) in [("data-empty", QUIET), ("data-no-model", &no_model_config)] {
            drop(start_measured(&agents, &work.join(dir), config).await?);
            let (server, figures) = start_measured(&agents, &work.join(dir), config).await?;
            drop(server);
            baselines.push(figures);
        }
        let [empty, no_model] =
            <[_; 2]>::try_from(baselines).map_err(|_| anyhow::anyhow!("two baselines"))?;
        let (scale, rows) = at_scale(work, &agents, QUIET, observations, &empty, &no_model).await?;
        metrics.extend(rows);
        report.insert("at_scale".into(), scale);
    }

    // 10x the pool, with short queues, so refusals must happen.
    let pool = 4;
    let overload = serve(
        &agents,
        &work.join("data-overload"),
        &format!(
            "{QUIET}[wasm_runtime]\npool_size = {pool}\n[agents]\nqueue_capacity = 8\nworkers_per_agent = {pool}\n"
        ),
    )?;
    let run = load(
        &overload,
        "/api/v1/agents/echo/messages",
        json!({"content": {"n": 1}}),
        20_000,
        pool * 10,
    )
    .await?;
    let health: Value = overload
        .client
        .get(format!("{}/api/v1/health", overload.base))
        .send()
        .await?
        .json()
        .await?;
    let peak_rss = health["resident_memory_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6;
    let unexpected: usize = run
        .statuses
        .iter()
        .filter(|(status, _)| !((200..300).contains(*status) || matches!(status, 429 | 503)))
        .map(|(_, n)| n)
        .sum();
    let summary = run.summary();
    eprintln!(
        "load at 10x the pool ({} clients): {summary}; RSS after {peak_rss:.1} MB",
        pool * 10
    );
    if unexpected > 0 || run.refusals_without_retry_after > 0 {
        anyhow::bail!("the overload answered outside 2xx/429/503-with-Retry-After: {summary}");
    }
    let latency = &summary["latency_accepted"];
    metrics.push(metric(
        "system.overload.accepted_p99_ms",
        ms(latency, "p99_ms"),
        "ms",
        "lower",
    ));
    metrics.push(metric(
        "system.overload.accepted_per_s",
        summary["accepted_per_s"].as_f64().unwrap_or(0.0),
        "req/s",
        "higher",
    ));
    metrics.push(metric("system.overload.rss_mb", peak_rss, "MB", "lower"));
    report.insert(
        "overload_10x_pool".into(),
        json!({"clients": pool * 10, "load": summary, "rss_mb": peak_rss}),
    );
    drop(overload);

    if find_breaking_points {
        let served = serve(
            &agents,
            &work.join("data"),
            &format!(
                "{QUIET}[wasm_runtime]\npool_size = 64\n[agents]\nqueue_capacity = 4096\nworkers_per_agent = 16\n"
            ),
        )?;
        let mut ramp = Vec::new();
        let mut breaking = Value::Null;
        let mut concurrency = 1;
        while concurrency <= 1024 {
            let run = load(
                &served,
                "/api/v1/agents/echo/messages",
                json!({"content": 1}),
                (concurrency * 50).max(500),
                concurrency,
            )
            .await?;
            let summary = run.summary();
            let p99 = ms(&summary["latency_accepted"], "p99_ms");
            let errors = summary["error_rate"].as_f64().unwrap_or(1.0);
            eprintln!(
                "ramp c{concurrency}: p99 {p99:.1} ms, errors {:.2}%, {:.0} req/s",
                errors * 100.0,
                summary["accepted_per_s"].as_f64().unwrap_or(0.0)
            );
            ramp.push(json!({"concurrency": concurrency, "load": summary}));
            if p99 > 200.0 || errors > 0.01 {
                let reason = if errors > 0.01 {
                    "errors above 1%"
                } else {
                    "p99 above 200 ms"
                };
                breaking = json!({"concurrency": concurrency, "reason": reason});
                break;
            }
            concurrency *= 2;
        }
        eprintln!("breaking point: {breaking}");
        if let Some(at) = breaking["concurrency"].as_f64() {
            metrics.push(metric(
                "system.breaking_point.concurrency",
                at,
                "clients",
                "higher",
            ));
        }
        report.insert("ramp".into(), json!({"sla": {"p99_ms": 200, "error_rate": 0.01}, "steps": ramp, "breaking_point": breaking}));
    }
    Ok(json!({"suite": "system", "results": report, "metrics": metrics}))
}

/// The texts `caxton benchmark embeddings` and `benches/embeddings.rs` time.
pub const SHORT: &str = "The quick brown fox jumps over the lazy dog.";
pub const PASSAGE_SENTENCE: &str =
    "Edge devices run agents locally, keeping data private and latency low.";

/// This binary's size, and its size stripped of symbols (by `strip`, when
/// installed; NaN otherwise), in MB.
fn binary_sizes() -> (f64, f64) {
    let Ok(exe) = std::env::current_exe() else {
        return (f64::NAN, f64::NAN);
    };
    let size = |path: &Path| std::fs::metadata(path).map_or(f64::NAN, |m| m.len() as f64 / 1e6);
    let stripped = std::env::temp_dir().join(format!("caxton-stripped-{}", std::process::id()));
    let ran = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&exe)
        .status()
        .is_ok_and(|s| s.success());
    let stripped_mb = if ran { size(&stripped) } else { f64::NAN };
    let _ = std::fs::remove_file(&stripped);
    (size(&exe), stripped_mb)
}

/// `caxton benchmark embeddings`: per thread count, one short sentence and
/// one 128-token passage at a time (median, p99) and batch-16 throughput,
/// each beside ONNX Runtime on the same model file and thread count in the
/// same run (benches/embeddings_ort.py in target/bench-env, from
/// `scripts/python-env --bench`); then the engine's cache-miss and
/// cache-hit path.
pub async fn embeddings(
    texts: usize,
    threads: &[usize],
    precision: crate::config::EmbeddingPrecision,
) -> anyhow::Result<Value> {
    let config = crate::config::EmbeddingConfig {
        precision,
        ..Default::default()
    };
    let spec = crate::embed::ModelSpec::named(&config.model)?;
    let dir = crate::harness::model_dir();
    let passage = [PASSAGE_SENTENCE; 9].join(" ");
    let mut metrics = Vec::new();
    let mut by_threads = serde_json::Map::new();
    for &n in threads {
        // As the server loads it with `batch_size = 16` and `inference_threads = n`.
        let plans = crate::embed::Encoder::plan_batch_sizes(16, n);
        let encoder = crate::embed::Encoder::load(
            &spec,
            &dir,
            config.max_sequence_length,
            &plans,
            precision,
        )?
        .with_inference_threads(n);
        let resolved = encoder.precision();
        let tokens = encoder.token_ids(&passage)?.len();
        let short = encoder_latency(&encoder, SHORT, 300)?;
        let long = encoder_latency(&encoder, &passage, 100)?;
        let batch16 = encoder_throughput(&encoder, 16)?;
        drop(encoder);
        eprintln!(
            "embeddings, {n} thread(s), {resolved}: short {short}, {tokens}-token passage {long}, batch 16 {batch16:.0}/s"
        );
        let ort = ort_baseline(&dir, n, &passage);
        let mut figures = json!({"precision": resolved, "short": short, "passage": long, "passage_tokens": tokens, "batch16_per_s": batch16});
        for (name, value, unit, better) in [
            ("short.median_ms", ms(&short, "median_ms"), "ms", "lower"),
            ("short.p99_ms", ms(&short, "p99_ms"), "ms", "lower"),
            ("passage.median_ms", ms(&long, "median_ms"), "ms", "lower"),
            ("passage.p99_ms", ms(&long, "p99_ms"), "ms", "lower"),
            ("batch16.per_s", batch16, "texts/s", "higher"),
        ] {
            metrics.push(metric(
                &format!("embeddings.t{n}.{name}"),
                value,
                unit,
                better,
            ));
        }
        match ort {
            Ok(ort) => {
                let short_ratio = ms(&short, "median_ms") / ms(&ort["short"], "median_ms");
                let passage_ratio = ms(&long, "median_ms") / ms(&ort["passage"], "median_ms");
                let batch_ratio = batch16 / ort["throughput"]["16"].as_f64().unwrap_or(f64::NAN);
                eprintln!(
                    "ONNX Runtime, {n} thread(s) (baseline): short {}, passage {}, batch 16 {:.0}/s; \
                     ratio: short {short_ratio:.2}x, passage {passage_ratio:.2}x, batch 16 {batch_ratio:.2}x",
                    ort["short"],
                    ort["passage"],
                    ort["throughput"]["16"].as_f64().unwrap_or(f64::NAN)
                );
                for (name, value, better) in [
                    ("short.median_vs_ort", short_ratio, "lower"),
                    ("passage.median_vs_ort", passage_ratio, "lower"),
                    ("batch16.per_s_vs_ort", batch_ratio, "higher"),
                ] {
                    metrics.push(metric(
                        &format!("embeddings.t{n}.{name}"),
                        value,
                        "ratio",
                        better,
                    ));
                }
                figures["onnx_runtime"] = ort;
            }
            Err(error) => eprintln!("ONNX Runtime baseline skipped: {error}"),
        }
        by_threads.insert(n.to_string(), figures);
    }

    // The engine as the server runs it: queue, cache, default threads.
    let engine = crate::embed::EmbeddingEngine::start(&config, &crate::harness::model_dir())?;
    engine.embed(&["warm up".to_owned()]).await?;
    let load_ms = engine
        .load_time()
        .map_or(f64::NAN, |t| t.as_secs_f64() * 1e3);
    let mut single = Vec::new();
    for n in 0..texts {
        let text = format!("The quick brown fox number {n} jumps over the lazy dog.");
        let sent = Instant::now();
        engine.embed(&[text]).await?;
        single.push(sent.elapsed());
    }
    let single = percentiles(single);
    engine.embed(&[SHORT.to_owned()]).await?;
    let hit = Instant::now();
    engine.embed(&[SHORT.to_owned()]).await?;
    let hit_us = hit.elapsed().as_secs_f64() * 1e6;
    eprintln!(
        "engine (default config): load {load_ms:.0} ms, single {single}, cache hit {hit_us:.1} µs"
    );
    metrics.push(metric(
        "embeddings.single.median_ms",
        ms(&single, "median_ms"),
        "ms",
        "lower",
    ));
    metrics.push(metric(
        "embeddings.single.p99_ms",
        ms(&single, "p99_ms"),
        "ms",
        "lower",
    ));
    metrics.push(metric("embeddings.load_ms", load_ms, "ms", "lower"));
    Ok(json!({
        "suite": "embeddings",
        "results": {"by_threads": by_threads, "engine": {"load_ms": load_ms, "single_short_sentence": single, "cache_hit_us": hit_us}},
        "metrics": metrics,
    }))
}

/// `text` embedded `runs` times after a warm-up, one at a time: median and p99.
pub fn encoder_latency(
    encoder: &crate::embed::Encoder,
    text: &str,
    runs: usize,
) -> anyhow::Result<Value> {
    for _ in 0..10 {
        encoder.embed(&[text])?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        encoder.embed(&[text])?;
        samples.push(started.elapsed());
    }
    Ok(percentiles(samples))
}

/// Texts per second, `batch` at a time, over two seconds.
pub fn encoder_throughput(encoder: &crate::embed::Encoder, batch: usize) -> anyhow::Result<f64> {
    let sentences: Vec<String> = (0..batch).map(|i| format!("{SHORT} ({i})")).collect();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    encoder.embed(&texts)?;
    let started = Instant::now();
    let mut total = 0;
    while started.elapsed() < Duration::from_secs(2) {
        encoder.embed(&texts)?;
        total += batch;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// ONNX Runtime's figures on `threads` threads (benches/embeddings_ort.py).
pub fn ort_baseline(model_dir: &Path, threads: usize, passage: &str) -> anyhow::Result<Value> {
    let root = crate::harness::checkout();
    let python = root.join("target/bench-env/bin/python");
    if !python.exists() {
        anyhow::bail!("ONNX Runtime is not installed: run ./scripts/python-env --bench");
    }
    let output = std::process::Command::new(python)
        .arg(root.join("benches/embeddings_ort.py"))
        .arg(model_dir)
        .arg(threads.to_string())
        .args([SHORT, passage])
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "benches/embeddings_ort.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Markdown of one or more result files.
pub fn report(files: &[std::path::PathBuf]) -> anyhow::Result<String> {
    let mut out = String::from("# Caxton benchmark report\n");
    for file in files {
        let results: Value = serde_json::from_str(&std::fs::read_to_string(file)?)
            .map_err(|e| anyhow::anyhow!("{}: not benchmark JSON: {e}", file.display()))?;
        let suite = results["suite"].as_str().unwrap_or("unknown");
        out.push_str(&format!(
            "\n## {suite} ({})\n\n| metric | value | unit | better |\n|---|---|---|---|\n",
            file.display()
        ));
        for m in results["metrics"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "| {} | {:.3} | {} | {} |\n",
                m["name"].as_str().unwrap_or("?"),
                m["value"].as_f64().unwrap_or(f64::NAN),
                m["unit"].as_str().unwrap_or(""),
                m["better"].as_str().unwrap_or("")
            ));
        }
    }
    Ok(out)
}

/// Regressions of `current` against `baseline` beyond `threshold`
/// (0.1 = 10%), as lines; metrics missing on either side are skipped.
pub fn compare(baseline: &Value, current: &Value, threshold: f64) -> Vec<String> {
    let by_name = |results: &Value| -> std::collections::HashMap<String, (f64, String)> {
        results["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some((
                    m["name"].as_str()?.to_owned(),
                    (
                        m["value"].as_f64()?,
                        m["better"].as_str().unwrap_or("lower").to_owned(),
                    ),
                ))
            })
            .collect()
    };
    let (before, after) = (by_name(baseline), by_name(current));
    let mut regressions = Vec::new();
    let mut names: Vec<&String> = after.keys().collect();
    names.sort();
    for name in names {
        let (Some((old, better)), Some((new, _))) = (before.get(name), after.get(name)) else {
            continue;
        };
        let worse = match better.as_str() {
            "higher" => *new < old * (1.0 - threshold),
            _ => *new > old * (1.0 + threshold),
        };
        if worse {
            regressions.push(format!(
                "{name}: {old:.3} -> {new:.3} ({:+.1}%, {better} is better)",
                (new - old) / old * 100.0
            ));
        }
    }
    regressions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_flags_only_changes_beyond_the_threshold_in_the_bad_direction() {
        let baseline = json!({"metrics": [
            metric("latency", 10.0, "ms", "lower"),
            metric("rate", 100.0, "req/s", "higher"),
            metric("stable", 5.0, "ms", "lower"),
        ]});
        let current = json!({"metrics": [
            metric("latency", 11.5, "ms", "lower"),
            metric("rate", 120.0, "req/s", "higher"),
            metric("stable", 5.4, "ms", "lower"),
            metric("new", 1.0, "ms", "lower"),
        ]});
        let regressions = compare(&baseline, &current, 0.1);
        assert_eq!(regressions.len(), 1, "{regressions:?}");
        assert!(regressions[0].starts_with("latency: 10.000 -> 11.500"));
        let slower = json!({"metrics": [metric("rate", 85.0, "req/s", "higher")]});
        assert_eq!(compare(&baseline, &slower, 0.1).len(), 1);
    }
}
