//! The operators' guide's review commands over a running server's history
//! (`GET /api/v1/history`, `/api/v1/history/alerts`): `memory stats
//! --last/--trends`, `memory capacity-check`, `memory cache-analysis`,
//! `memory embedding-stats`, `agents performance-report`, `system
//! resources --trends`, `alerts summary` and `check daily`. Each prints a
//! table, or JSON with `--output json`, and exits 5 when what it checks
//! fails (1: the request failed, 2: a usage error, 3: no server, 4: token refused).

use serde_json::{Value, json};

use super::client::{ApiClient, ServerArgs};
use super::output;

/// A check or report found something wrong: exit code 5, after the
/// report (clap takes 2 for usage errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// `--last`, checked here so a typo is refused before any request.
pub fn window(text: &str) -> anyhow::Result<String> {
    crate::history::parse_window(text).map_err(|e| anyhow::anyhow!("--last: {e}"))?;
    Ok(text.to_owned())
}

/// The report of `series` (metric names) over `last`, in `slices` slices.
pub async fn history(
    client: &ApiClient,
    last: &str,
    series: &[&str],
    slices: usize,
) -> anyhow::Result<Value> {
    let path = format!(
        "/api/v1/history?last={}&series={}&slices={slices}",
        window(last)?,
        series.join(",")
    );
    Ok(client.get_json(&path).await?)
}

/// The series named `name` (with `labels` among its labels) in a report.
pub fn series<'a>(report: &'a Value, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Value> {
    report["series"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .collect()
}

fn one<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    series(report, name, &[]).into_iter().next()
}

/// The sum of a counter's increase over the window, across label sets.
fn increase(report: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(report, name, labels)
        .iter()
        .filter_map(|s| s["increase"].as_f64())
        .sum()
}

fn ms(seconds: &Value) -> String {
    match seconds.as_f64() {
        Some(s) => format!("{:.1}ms", s * 1000.0),
        None => "-".into(),
    }
}

fn bytes(value: f64) -> String {
    if value >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}GiB", value / 1024.0 / 1024.0 / 1024.0)
    } else {
        format!("{:.1}MiB", value / 1024.0 / 1024.0)
    }
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Says how much history there is when it is less than asked.
fn note_coverage(report: &Value) {
    if let Some(note) = report["window"]["note"].as_str() {
        eprintln!("note: {note}");
    }
}

/// The embedding cache's hits and misses over the window.
fn cache_lookups(report: &Value) -> (f64, f64) {
    let lookups = |result| {
        increase(
            report,
            "caxton_embedding_cache_lookups_total",
            &[("result", result)],
        )
    };
    (lookups("hit"), lookups("miss"))
}

/// `hits / lookups`, or none before the first lookup.
fn hit_rate(hits: f64, lookups: f64) -> Option<f64> {
    (lookups > 0.0).then(|| hits / lookups)
}

/// The embedding cache's hit rate over the window, from its lookups.
fn cache_hit_rate(report: &Value) -> Option<f64> {
    let (hits, misses) = cache_lookups(report);
    hit_rate(hits, hits + misses)
}

const MEMORY_SERIES: &[&str] = &[
    "caxton_memory_search_latency_seconds",
    "caxton_memory_entities_total",
    "caxton_memory_relations_total",
    "caxton_memory_sqlite_size_bytes",
    "caxton_memory_wal_size_bytes",
    "caxton_embedding_cache_lookups_total",
    "caxton_embedding_batch_duration_seconds",
    "caxton_memory_cleanup_runs_total",
];

/// `caxton memory stats --detailed --last D` / `--trends`.
pub async fn memory_stats(server: &ServerArgs, last: &str, trends: bool) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let now = client.get_json("/api/v1/memory/stats").await?;
    let slices = if trends { 7 } else { 0 };
    let report = history(&client, last, MEMORY_SERIES, slices).await?;
    let search = one(&report, "caxton_memory_search_latency_seconds");
    let size = one(&report, "caxton_memory_sqlite_size_bytes");
    let entities = one(&report, "caxton_memory_entities_total");
    let summary = json!({
        "now": now,
        "window": report["window"],
        "searches": search.map(|s| s["observations"].clone()),
        "search_p50_seconds": search.map(|s| s["p50"].clone()),
        "search_p99_seconds": search.map(|s| s["p99"].clone()),
        "entities_min": entities.map(|s| s["min"].clone()),
        "entities_max": entities.map(|s| s["max"].clone()),
        "database_bytes_first": size.map(|s| s["first"].clone()),
        "database_bytes_last": size.map(|s| s["last"].clone()),
        "embedding_cache_hit_rate": cache_hit_rate(&report),
        "cleanup_runs": increase(&report, "caxton_memory_cleanup_runs_total", &[]),
        "trends": trends.then(|| trend_rows(&report, MEMORY_SERIES)),
    });
    output::print(server.output, &summary, |_| {
        note_coverage(&report);
        let rows = vec![
            vec!["entities (now)".into(), output::plain(&now["entities"])],
            vec!["relations (now)".into(), output::plain(&now["relations"])],
            vec![
                "database".into(),
                bytes(now["database_bytes"].as_f64().unwrap_or(0.0)),
            ],
            vec![
                "searches".into(),
                search.map_or("0".into(), |s| output::plain(&s["observations"])),
            ],
            vec![
                "search p50 / p99".into(),
                search.map_or("-".into(), |s| {
                    format!("{} / {}", ms(&s["p50"]), ms(&s["p99"]))
                }),
            ],
            vec![
                "embedding cache hit rate".into(),
                percent(cache_hit_rate(&report)),
            ],
            vec![
                "cleanup runs".into(),
                format!(
                    "{}",
                    increase(&report, "caxton_memory_cleanup_runs_total", &[])
                ),
            ],
        ];
        output::table(&[&format!("MEMORY (last {last})"), "VALUE"], &rows);
        if trends {
            println!();
            print_trends(&report, MEMORY_SERIES);
        }
    });
    Ok(())
}

/// Per series, its headline figure in each slice of the window.
fn trend_rows(report: &Value, names: &[&str]) -> Value {
    let mut out = Vec::new();
    for name in names {
        for s in series(report, name, &[]) {
            let values: Vec<Value> = s["trend"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|slice| headline(s["kind"].as_str().unwrap_or(""), slice))
                .collect();
            out.push(json!({
                "name": name,
                "labels": s["labels"],
                "figure": figure_name(s["kind"].as_str().unwrap_or("")),
                "values": values,
            }));
        }
    }
    json!(out)
}

fn figure_name(kind: &str) -> &'static str {
    match kind {
        "histogram" => "p99",
        "counter" => "increase",
        _ => "mean",
    }
}

fn headline(kind: &str, slice: &Value) -> Value {
    slice[figure_name(kind)].clone()
}

fn print_trends(report: &Value, names: &[&str]) {
    let trends = trend_rows(report, names);
    let slices = report["series"]
        .as_array()
        .and_then(|all| all.first())
        .and_then(|s| s["trend"].as_array())
        .map_or(0, Vec::len);
    if slices == 0 {
        println!("no trends: no history in the window");
        return;
    }
    let from = report["window"]["from"].as_i64().unwrap_or(0);
    let to = report["window"]["to"].as_i64().unwrap_or(0);
    let step = (to - from) / slices as i64;
    let mut headers = vec!["SERIES".to_owned(), "FIGURE".to_owned()];
    for i in 0..slices {
        let at = crate::history::report::rfc3339(from + i as i64 * step);
        headers.push(at[5..16].replace('T', " "));
    }
    let rows: Vec<Vec<String>> = trends
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut row = vec![
                label(t["name"].as_str().unwrap_or(""), &t["labels"]),
                output::plain(&t["figure"]),
            ];
            row.extend(t["values"].as_array().into_iter().flatten().map(short));
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    output::table(&headers, &rows);
}

fn label(name: &str, labels: &Value) -> String {
    let name = name.trim_start_matches("caxton_");
    match labels.as_object() {
        Some(map) if !map.is_empty() => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", output::plain(v)))
                .collect();
            format!("{name}{{{}}}", inner.join(","))
        }
        _ => name.to_owned(),
    }
}

fn short(value: &Value) -> String {
    match value.as_f64() {
        None => "-".into(),
        Some(v) if v.abs() >= 1e6 => format!("{:.1}M", v / 1e6),
        Some(v) if v.abs() >= 1e3 => format!("{:.1}k", v / 1e3),
        Some(v) if v != 0.0 && v.abs() < 0.1 => format!("{v:.4}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The guide's embedded-backend limits, as `memory migration-readiness`.
const ENTITY_LIMIT: f64 = 100_000.0;
const RELATION_LIMIT: f64 = 500_000.0;
const DATABASE_LIMIT: f64 = 1024.0 * 1024.0 * 1024.0;

/// `caxton memory capacity-check --percentage`.
pub async fn capacity_check(server: &ServerArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let stats = client.get_json("/api/v1/memory/stats").await?;
    let status = client.get_json("/api/v1/status").await?;
    let report = history(&client, "1h", &["caxton_history_size_bytes"], 0)
        .await
        .ok();
    let number = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut items = vec![
        ("entities", number(&stats["entities"]), ENTITY_LIMIT),
        ("relations", number(&stats["relations"]), RELATION_LIMIT),
        (
            "database_bytes",
            number(&stats["database_bytes"]),
            DATABASE_LIMIT,
        ),
        (
            "wasm_pool_slots",
            number(&status["pool"]["in_use"]),
            number(&status["pool"]["size"]).max(1.0),
        ),
    ];
    if let Some(disk) = report.as_ref().map(|r| &r["disk"]) {
        items.push((
            "history_bytes",
            number(&disk["used_bytes"]),
            number(&disk["budget_bytes"]).max(1.0),
        ));
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|(name, value, limit)| {
            let ratio = value / limit;
            json!({
                "item": name,
                "value": value,
                "limit": limit,
                "percent": ratio * 100.0,
                "status": if ratio >= 1.0 { "OVER" } else if ratio >= 0.8 { "WARN" } else { "OK" },
            })
        })
        .collect();
    let over: Vec<String> = items
        .iter()
        .filter(|i| i["status"] == "OVER")
        .map(|i| output::plain(&i["item"]))
        .collect();
    output::print(server.output, &json!({ "items": items }), |_| {
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| {
                vec![
                    output::plain(&i["item"]),
                    format!("{}", number(&i["value"])),
                    format!("{}", number(&i["limit"])),
                    format!("{:.1}%", number(&i["percent"])),
                    output::plain(&i["status"]),
                ]
            })
            .collect();
        output::table(&["ITEM", "VALUE", "LIMIT", "USED", "STATUS"], &rows);
    });
    if !over.is_empty() {
        return Err(CheckFailed(format!("over capacity: {}", over.join(", "))).into());
    }
    Ok(())
}

/// `caxton memory cache-analysis --hit-rates --efficiency`.
pub async fn cache_analysis(server: &ServerArgs, last: &str) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let report = history(
        &client,
        last,
        &[
            "caxton_embedding_cache_lookups_total",
            "caxton_embedding_cache_entries",
            "caxton_llm_cache_total",
            "caxton_embedding_batch_texts",
        ],
        0,
    )
    .await?;
    let (hits, misses) = cache_lookups(&report);
    let llm_hits = increase(&report, "caxton_llm_cache_total", &[("result", "hit")]);
    let llm_all = increase(&report, "caxton_llm_cache_total", &[]);
    let entries = one(&report, "caxton_embedding_cache_entries").map(|s| s["last"].clone());
    let batches = one(&report, "caxton_embedding_batch_texts");
    let body = json!({
        "window": report["window"],
        "embedding": {
            "hits": hits,
            "misses": misses,
            "hit_rate": hit_rate(hits, hits + misses),
            "entries": entries,
            "target": 0.85,
        },
        "llm_responses": {
            "hits": llm_hits,
            "lookups": llm_all,
            "hit_rate": hit_rate(llm_hits, llm_all),
        },
        "embedding_texts_per_inference": batches.map(|b| b["mean"].clone()),
    });
    output::print(server.output, &body, |body| {
        note_coverage(&report);
        let e = &body["embedding"];
        let l = &body["llm_responses"];
        output::table(
            &["CACHE", "HITS", "LOOKUPS", "HIT RATE", "NOTE"],
            &[
                vec![
                    "embedding".into(),
                    format!("{hits}"),
                    format!("{}", hits + misses),
                    percent(e["hit_rate"].as_f64()),
                    format!("{} entries; target > 85%", output::plain(&e["entries"])),
                ],
                vec![
                    "llm responses".into(),
                    format!("{llm_hits}"),
                    format!("{llm_all}"),
                    percent(l["hit_rate"].as_f64()),
                    String::new(),
                ],
            ],
        );
        if let Some(mean) = body["embedding_texts_per_inference"].as_f64() {
            println!("texts per embedding inference (batching efficiency): {mean:.2}");
        }
    });
    Ok(())
}

/// `caxton memory embedding-stats --detailed`: the guide's embedding report.
pub async fn embedding_stats(server: &ServerArgs, last: &str) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let status = client.get_json("/api/v1/status").await?;
    let report = history(
        &client,
        last,
        &[
            "caxton_embedding_cache_lookups_total",
            "caxton_embedding_cache_entries",
            "caxton_embedding_batch_duration_seconds",
            "caxton_embedding_batch_texts",
        ],
        0,
    )
    .await?;
    let embeddings = &status["embeddings"];
    let batch = one(&report, "caxton_embedding_batch_duration_seconds");
    let texts = one(&report, "caxton_embedding_batch_texts");
    let per_text = match (batch, texts) {
        (Some(b), Some(t)) => {
            let seconds =
                b["mean"].as_f64().unwrap_or(0.0) * b["observations"].as_f64().unwrap_or(0.0);
            let count =
                t["mean"].as_f64().unwrap_or(0.0) * t["observations"].as_f64().unwrap_or(0.0);
            (count > 0.0).then(|| seconds / count)
        }
        _ => None,
    };
    let batch_size = embeddings["batch_size"].as_f64();
    let body = json!({
        "window": report["window"],
        "model": embeddings["model"],
        "embeddings": embeddings,
        "cache_entries": one(&report, "caxton_embedding_cache_entries").map(|s| s["last"].clone()),
        "cache_hit_rate": cache_hit_rate(&report),
        "average_generation_seconds_per_text": per_text,
        "inference_p99_seconds": batch.map(|b| b["p99"].clone()),
        "texts_per_inference": texts.map(|t| t["mean"].clone()),
        "batch_efficiency": match (texts.and_then(|t| t["mean"].as_f64()), batch_size) {
            (Some(mean), Some(size)) if size > 0.0 => Some(mean / size),
            _ => None,
        },
        "resident_memory_bytes": status["resident_memory_bytes"],
    });
    output::print(server.output, &body, |body| {
        note_coverage(&report);
        println!("Embedding model: {}", output::plain(&body["model"]));
        println!(
            "Cache size: {} embeddings",
            output::plain(&body["cache_entries"])
        );
        println!(
            "Cache hit rate: {}",
            percent(body["cache_hit_rate"].as_f64())
        );
        println!(
            "Average generation time: {} per text (inference p99 {})",
            ms(&body["average_generation_seconds_per_text"]),
            ms(&body["inference_p99_seconds"])
        );
        println!(
            "Batch processing efficiency: {} ({} texts per inference)",
            percent(body["batch_efficiency"].as_f64()),
            short(&body["texts_per_inference"])
        );
        println!(
            "Memory usage: {} resident (the whole host)",
            bytes(body["resident_memory_bytes"].as_f64().unwrap_or(0.0))
        );
    });
    Ok(())
}

/// `caxton agents performance-report --last D --include-slowest`.
pub async fn agents_report(
    server: &ServerArgs,
    last: &str,
    slowest: Option<usize>,
) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let report = history(
        &client,
        last,
        &[
            "caxton_agent_response_time_seconds",
            "caxton_agent_traps_total",
            "caxton_agent_fuel_consumed_total",
        ],
        0,
    )
    .await?;
    let mut agents: Vec<Value> = series(&report, "caxton_agent_response_time_seconds", &[])
        .into_iter()
        .map(|s| {
            let agent = s["labels"]["agent"].as_str().unwrap_or("").to_owned();
            json!({
                "agent": agent,
                "calls": s["observations"],
                "p50_seconds": s["p50"],
                "p99_seconds": s["p99"],
                "mean_seconds": s["mean"],
                "fuel": increase(&report, "caxton_agent_fuel_consumed_total", &[("agent", &agent)]),
            })
        })
        .collect();
    agents.sort_by(|a, b| {
        let p = |v: &Value| v["p99_seconds"].as_f64().unwrap_or(0.0);
        p(b).total_cmp(&p(a))
    });
    let traps: Vec<Value> = series(&report, "caxton_agent_traps_total", &[])
        .into_iter()
        .map(|s| json!({ "kind": s["labels"]["kind"], "count": s["increase"] }))
        .collect();
    let slowest_list: Vec<Value> = slowest
        .map(|n| agents.iter().take(n).cloned().collect())
        .unwrap_or_default();
    let body = json!({
        "window": report["window"],
        "agents": agents,
        "traps": traps,
        "slowest": slowest.map(|_| slowest_list.clone()),
    });
    output::print(server.output, &body, |_| {
        note_coverage(&report);
        let rows: Vec<Vec<String>> = agents
            .iter()
            .map(|a| {
                vec![
                    output::plain(&a["agent"]),
                    output::plain(&a["calls"]),
                    ms(&a["p50_seconds"]),
                    ms(&a["p99_seconds"]),
                    short(&a["fuel"]),
                ]
            })
            .collect();
        if rows.is_empty() {
            println!("no agent calls in the last {last}");
        } else {
            output::table(&["AGENT", "CALLS", "P50", "P99", "FUEL"], &rows);
        }
        for trap in &traps {
            println!(
                "traps {}: {}",
                output::plain(&trap["kind"]),
                output::plain(&trap["count"])
            );
        }
        if slowest.is_some() && !slowest_list.is_empty() {
            let names: Vec<String> = slowest_list
                .iter()
                .map(|a| format!("{} ({})", output::plain(&a["agent"]), ms(&a["p99_seconds"])))
                .collect();
            println!("slowest by p99: {}", names.join(", "));
        }
    });
    Ok(())
}

const RESOURCE_SERIES: &[&str] = &[
    "caxton_server_memory_used_bytes",
    "caxton_process_cpu_seconds_total",
    "caxton_memory_sqlite_size_bytes",
    "caxton_memory_wal_size_bytes",
    "caxton_history_size_bytes",
    "caxton_wasm_pool_slots_in_use",
    "caxton_server_active_connections",
    "caxton_server_request_duration_seconds",
];

/// `caxton system resources [--trends --last D] [--breakdown] [--alerts]`.
pub async fn system_resources(
    server: &ServerArgs,
    last: &str,
    trends: bool,
    breakdown: bool,
    alerts: bool,
) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let status = client.get_json("/api/v1/status").await?;
    let memory = client.get_json("/api/v1/memory/stats").await?;
    let report = history(&client, last, RESOURCE_SERIES, if trends { 7 } else { 0 }).await?;
    let rss = one(&report, "caxton_server_memory_used_bytes");
    let covered = report["window"]["covered_seconds"].as_f64().unwrap_or(0.0);
    let cpu = increase(&report, "caxton_process_cpu_seconds_total", &[]);
    let firing = if alerts {
        let found = client
            .get_json(&format!("/api/v1/history/alerts?last={}", window(last)?))
            .await?;
        Some(found)
    } else {
        None
    };
    let body = json!({
        "window": report["window"],
        "resident_memory_bytes": status["resident_memory_bytes"],
        "rss_bytes_mean": rss.map(|s| s["mean"].clone()),
        "rss_bytes_max": rss.map(|s| s["max"].clone()),
        "cpu_percent_mean": (covered > 0.0).then(|| 100.0 * cpu / covered),
        "breakdown": breakdown.then(|| json!({
            "database_bytes": memory["database_bytes"],
            "vector_index_bytes": memory["index_bytes"],
            "history": report["disk"],
            "pool": status["pool"],
        })),
        "trends": trends.then(|| trend_rows(&report, RESOURCE_SERIES)),
        "alerts": firing.as_ref().map(|f| f["firing"].clone()),
    });
    output::print(server.output, &body, |body| {
        note_coverage(&report);
        let rows = vec![
            vec![
                "rss now".into(),
                bytes(body["resident_memory_bytes"].as_f64().unwrap_or(0.0)),
            ],
            vec![
                "rss mean / max".into(),
                format!(
                    "{} / {}",
                    bytes(body["rss_bytes_mean"].as_f64().unwrap_or(0.0)),
                    bytes(body["rss_bytes_max"].as_f64().unwrap_or(0.0))
                ),
            ],
            vec![
                "cpu mean".into(),
                format!("{:.1}%", body["cpu_percent_mean"].as_f64().unwrap_or(0.0)),
            ],
        ];
        output::table(&[&format!("RESOURCES (last {last})"), "VALUE"], &rows);
        if breakdown {
            println!();
            let b = &body["breakdown"];
            output::table(
                &["PART", "SIZE"],
                &[
                    vec![
                        "memory database".into(),
                        bytes(b["database_bytes"].as_f64().unwrap_or(0.0)),
                    ],
                    vec![
                        "vector index".into(),
                        bytes(b["vector_index_bytes"].as_f64().unwrap_or(0.0)),
                    ],
                    vec![
                        "history file".into(),
                        bytes(b["history"]["file_bytes"].as_f64().unwrap_or(0.0)),
                    ],
                    vec![
                        "pool slots".into(),
                        format!(
                            "{} of {}",
                            output::plain(&b["pool"]["in_use"]),
                            output::plain(&b["pool"]["size"])
                        ),
                    ],
                ],
            );
        }
        if trends {
            println!();
            print_trends(&report, RESOURCE_SERIES);
        }
        if let Some(found) = &firing {
            println!();
            print_firings(found);
        }
    });
    Ok(())
}

fn print_firings(found: &Value) {
    let firing = found["firing"].as_array().cloned().unwrap_or_default();
    if firing.is_empty() {
        println!(
            "no alerts fired ({} rules evaluated)",
            output::plain(&found["rules_evaluated"])
        );
    } else {
        let rows: Vec<Vec<String>> = firing
            .iter()
            .map(|f| {
                vec![
                    output::plain(&f["alert"]),
                    output::plain(&f["severity"]),
                    output::plain(&f["started_at"]),
                    crate::history::report::human(f["firing_seconds"].as_i64().unwrap_or(0)),
                    output::plain(&f["summary"]),
                ]
            })
            .collect();
        output::table(&["ALERT", "SEVERITY", "FIRED", "FOR", "SUMMARY"], &rows);
    }
    for skipped in found["not_evaluated"].as_array().into_iter().flatten() {
        println!(
            "not evaluated: {}: {}",
            output::plain(&skipped["alert"]),
            output::plain(&skipped["reason"])
        );
    }
}

/// `caxton alerts summary --last D --severity warning,critical`: exits 5
/// when an alert fired in the window.
pub async fn alerts_summary(
    server: &ServerArgs,
    last: &str,
    severity: Option<&str>,
) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let mut path = format!("/api/v1/history/alerts?last={}", window(last)?);
    if let Some(severity) = severity {
        path.push_str(&format!("&severity={severity}"));
    }
    let found = client.get_json(&path).await?;
    output::print(server.output, &found, |found| {
        note_coverage(found);
        print_firings(found);
    });
    let fired = found["firing"].as_array().map_or(0, Vec::len);
    if fired > 0 {
        return Err(CheckFailed(format!("{fired} alert firing(s) in the last {last}")).into());
    }
    Ok(())
}

/// One item of the daily checklist.
struct Item {
    name: &'static str,
    /// `PASS`, `FAIL`, or `N/A` (nothing to judge yet).
    status: &'static str,
    value: String,
    fix: &'static str,
}

/// `caxton check daily`: the guide's daily checklist over the last 24 h;
/// exits 5 naming each failed item and what to do.
pub async fn check_daily(server: &ServerArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(server);
    let memory = client.get_json("/api/v1/memory/stats").await?;
    let report = history(
        &client,
        "24h",
        &[
            "caxton_memory_search_latency_seconds",
            "caxton_embedding_cache_lookups_total",
            "caxton_agent_reload_duration_seconds",
            "caxton_memory_cleanup_runs_total",
            "caxton_agent_traps_total",
            "caxton_server_request_duration_seconds",
        ],
        0,
    )
    .await?;
    let covered = report["window"]["covered_seconds"].as_f64().unwrap_or(0.0);
    let p99 = |name: &str| one(&report, name).and_then(|s| s["p99"].as_f64());
    let judge = |value: Option<f64>, limit: f64, shown: &dyn Fn(f64) -> String| match value {
        None => ("N/A", "no samples yet".to_owned()),
        Some(v) if v < limit => ("PASS", shown(v)),
        Some(v) => ("FAIL", shown(v)),
    };
    let in_ms = |v: f64| format!("p99 {:.1}ms", v * 1000.0);
    let mut items = Vec::new();
    let (status, value) = judge(p99("caxton_memory_search_latency_seconds"), 0.05, &in_ms);
    items.push(Item {
        name: "memory search p99 < 50ms",
        status,
        value,
        fix: "check the embedding cache and the database size; run `caxton storage optimize`",
    });
    let wal = memory["wal_mode"].as_bool();
    items.push(Item {
        name: "SQLite WAL mode on",
        status: match wal {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "N/A",
        },
        value: format!("wal_mode = {}", output::plain(&memory["wal_mode"])),
        fix: "set [memory.sqlite_config] wal_mode = true and restart",
    });
    let rate = cache_hit_rate(&report);
    let (status, value) = match rate {
        None => ("N/A", "no lookups yet".to_owned()),
        Some(r) if r > 0.85 => ("PASS", percent(Some(r))),
        Some(r) => ("FAIL", percent(Some(r))),
    };
    items.push(Item {
        name: "embedding cache hit rate > 85%",
        status,
        value,
        fix: "raise [memory.embedding_config] cache_size",
    });
    let (status, value) = judge(p99("caxton_agent_reload_duration_seconds"), 0.2, &in_ms);
    items.push(Item {
        name: "agent config reload p99 < 200ms",
        status,
        value,
        fix: "look for large components or a slow disk under the agents directory",
    });
    let runs = increase(
        &report,
        "caxton_memory_cleanup_runs_total",
        &[("outcome", "ok")],
    );
    let failed_runs = increase(
        &report,
        "caxton_memory_cleanup_runs_total",
        &[("outcome", "failed")],
    );
    let (status, value) = if failed_runs > 0.0 {
        (
            "FAIL",
            format!("{failed_runs} failed of {}", runs + failed_runs),
        )
    } else if runs > 0.0 {
        let gap = covered / runs;
        let shown = format!("{runs} runs, one every {:.1} min", gap / 60.0);
        (if gap <= 11.0 * 60.0 { "PASS" } else { "FAIL" }, shown)
    } else if covered < 20.0 * 60.0 {
        (
            "N/A",
            format!("{:.0} min of history: too short to judge", covered / 60.0),
        )
    } else {
        ("FAIL", "no cleanup pass recorded".to_owned())
    };
    items.push(Item {
        name: "memory cleanup every 5-10 min",
        status,
        value,
        fix: "set [memory.cleanup] enabled = true and interval between \"5m\" and \"10m\"; see the logs for failed passes",
    });
    let traps: f64 = ["out_of_fuel", "memory_limit_exceeded", "deadline_exceeded"]
        .iter()
        .map(|kind| increase(&report, "caxton_agent_traps_total", &[("kind", kind)]))
        .sum();
    items.push(Item {
        name: "no agent over its memory/CPU limits",
        status: if traps == 0.0 { "PASS" } else { "FAIL" },
        value: format!("{traps} limit traps"),
        fix: "`caxton agents performance-report --last 24h` names the agent; raise its limits or fix its loop",
    });
    let db = memory["database_bytes"].as_f64().unwrap_or(0.0);
    items.push(Item {
        name: "database < 1GB",
        status: if db < DATABASE_LIMIT { "PASS" } else { "FAIL" },
        value: bytes(db),
        fix: "tighten [memory.cleanup] limits, or plan a move to a memory primary (`caxton memory migration-readiness`)",
    });
    let (status, value) = judge(p99("caxton_server_request_duration_seconds"), 0.2, &in_ms);
    items.push(Item {
        name: "API p99 < 200ms",
        status,
        value,
        fix: "`caxton agents performance-report` and `caxton system resources --breakdown` show where the time goes",
    });
    let failed: Vec<&Item> = items.iter().filter(|i| i.status == "FAIL").collect();
    let body = json!({
        "window": report["window"],
        "items": items.iter().map(|i| json!({
            "item": i.name, "status": i.status, "value": i.value,
            "fix": (i.status == "FAIL").then_some(i.fix),
        })).collect::<Vec<_>>(),
        "passed": failed.is_empty(),
    });
    output::print(server.output, &body, |_| {
        note_coverage(&report);
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| {
                vec![
                    i.status.to_owned(),
                    i.name.to_owned(),
                    i.value.clone(),
                    if i.status == "FAIL" {
                        i.fix.to_owned()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        output::table(&["STATUS", "CHECK", "VALUE", "WHAT TO DO"], &rows);
    });
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|i| i.name).collect();
        return Err(CheckFailed(format!(
            "{} daily check(s) failed: {}",
            failed.len(),
            names.join("; ")
        ))
        .into());
    }
    Ok(())
}
