//! `caxton benchmark mcp`: what MCP costs over the routes beside it, on
//! one server in one run. `tools/call search_nodes` against `POST
//! /api/v1/memory/search` on the same store with the same queries (taken
//! in alternating order, so neither always finds the query's embedding
//! cached); and `tools/call csv_parser` against the same tool invoked
//! directly on an in-process runtime (no HTTP, no JSON-RPC).

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use super::percentiles;
use super::served::{plugin_component, plugin_manifest, serve};
use super::suite::metric;
use crate::config::WasmRuntimeConfig;
use crate::runtime::{PluginSpec, Runtime};

const QUERIES: &[&str] = &[
    "who maintains the pumps",
    "temperature of the cold room",
    "which supplier delivers flour",
    "when was the last inspection",
    "opening hours of the shop",
    "the forklift battery",
    "customer complaints about delivery",
    "who has the key to the storage",
];

const CSV: &str = "name,age\nann,31\nbob,45\ncid,29\n";

/// One MCP request in the 2026-07-28 revision (stateless: every request
/// stands alone, as a client that discovered the server sends it).
async fn mcp_call(
    client: &reqwest::Client,
    url: &str,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<Value> {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": tool, "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "caxton-benchmark", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    let text = client
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", tool)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data:"))
        .unwrap_or(&text);
    let answer: Value = serde_json::from_str(data.trim())?;
    if answer["result"]["isError"] != json!(false) {
        anyhow::bail!("tools/call {tool} failed: {answer}");
    }
    Ok(answer)
}

pub async fn mcp(work: &Path, requests: usize) -> anyhow::Result<Value> {
    let agents = work.join("agents");
    std::fs::create_dir_all(&agents)?;
    std::fs::write(
        agents.join("csv_parser.toml"),
        plugin_manifest("csv_parser", "1.0.0", "csv_parser", "kind = \"tool\""),
    )?;
    let served = serve(
        &agents,
        &work.join("data"),
        "[http_server.rate_limit]\nenabled = false\n",
    )?;
    let client = &served.client;
    let mcp_url = format!("{}/mcp", served.base);
    let search_url = format!("{}/api/v1/memory/search", served.base);

    // A small store of plain sentences, 3 observations per entity.
    let seeded = Instant::now();
    for i in 0..120 {
        let topic = QUERIES[i % QUERIES.len()];
        client
            .post(format!("{}/api/v1/memory/entities", served.base))
            .json(&json!({
                "name": format!("note {i}"),
                "entity_type": "note",
                "observations": [
                    format!("a note about {topic}, number {i}"),
                    format!("written on day {} of the month", i % 28 + 1),
                    format!("filed under shelf {}", i % 7),
                ],
            }))
            .send()
            .await?
            .error_for_status()?;
    }
    eprintln!("mcp: seeded 120 entities in {:?}", seeded.elapsed());

    // Warm both paths (and every query's embedding) before measuring.
    for query in QUERIES {
        client
            .post(&search_url)
            .json(&json!({"query": query, "limit": 20}))
            .send()
            .await?
            .error_for_status()?;
        mcp_call(client, &mcp_url, "search_nodes", json!({"query": query})).await?;
    }
    let mut http = Vec::with_capacity(requests);
    let mut over_mcp = Vec::with_capacity(requests);
    for i in 0..requests {
        let query = QUERIES[i % QUERIES.len()];
        let time_http = async {
            let sent = Instant::now();
            client
                .post(&search_url)
                .json(&json!({"query": query, "limit": 20}))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            anyhow::Ok(sent.elapsed())
        };
        let time_mcp = async {
            let sent = Instant::now();
            mcp_call(client, &mcp_url, "search_nodes", json!({"query": query})).await?;
            anyhow::Ok(sent.elapsed())
        };
        if i % 2 == 0 {
            http.push(time_http.await?);
            over_mcp.push(time_mcp.await?);
        } else {
            over_mcp.push(time_mcp.await?);
            http.push(time_http.await?);
        }
    }
    let search_http = percentiles(http);
    let search_mcp = percentiles(over_mcp);
    eprintln!("mcp: memory search over HTTP {search_http}, search_nodes over MCP {search_mcp}");

    // The tool: in-process (the baseline) and over MCP, alternating.
    let cache = tempfile_dir(work)?;
    let runtime = Runtime::new(&WasmRuntimeConfig::default(), cache)?;
    let component = plugin_component("csv_parser");
    let tool = runtime.load_tool(&PluginSpec {
        name: "csv_parser",
        component: &component,
        wasm: None,
        grants: &[],
        limits: runtime.default_limits(),
    })?;
    let mut direct = Vec::with_capacity(requests);
    let mut over_mcp = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let outcome = runtime
            .invoke_tool(&tool, json!({"csv": CSV}).to_string(), None)
            .await;
        outcome
            .result
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        direct.push(started.elapsed());
        let started = Instant::now();
        mcp_call(client, &mcp_url, "csv_parser", json!({"csv": CSV})).await?;
        over_mcp.push(started.elapsed());
    }
    let tool_direct = percentiles(direct);
    let tool_mcp = percentiles(over_mcp);
    eprintln!("mcp: csv_parser in-process {tool_direct}, over MCP {tool_mcp}");

    let value = |summary: &Value, key: &str| summary[key].as_f64().unwrap_or(f64::NAN);
    let metrics = vec![
        metric(
            "mcp.search_nodes.median_ms",
            value(&search_mcp, "median_ms"),
            "ms",
            "lower",
        ),
        metric(
            "mcp.search_nodes.p99_ms",
            value(&search_mcp, "p99_ms"),
            "ms",
            "lower",
        ),
        metric(
            "mcp.http_search.median_ms",
            value(&search_http, "median_ms"),
            "ms",
            "lower",
        ),
        metric(
            "mcp.http_search.p99_ms",
            value(&search_http, "p99_ms"),
            "ms",
            "lower",
        ),
        metric(
            "mcp.search_nodes.ratio_to_http_median",
            value(&search_mcp, "median_ms") / value(&search_http, "median_ms"),
            "x",
            "lower",
        ),
        metric(
            "mcp.tool_call.median_ms",
            value(&tool_mcp, "median_ms"),
            "ms",
            "lower",
        ),
        metric(
            "mcp.tool_call.p99_ms",
            value(&tool_mcp, "p99_ms"),
            "ms",
            "lower",
        ),
        metric(
            "mcp.tool_direct.median_ms",
            value(&tool_direct, "median_ms"),
            "ms",
            "lower",
        ),
        metric(
            "mcp.tool_call.overhead_median_ms",
            value(&tool_mcp, "median_ms") - value(&tool_direct, "median_ms"),
            "ms",
            "lower",
        ),
    ];
    Ok(json!({
        "suite": "mcp",
        "runs": {
            "search_http_c1": search_http,
            "search_nodes_mcp_c1": search_mcp,
            "csv_parser_in_process": tool_direct,
            "csv_parser_mcp_c1": tool_mcp,
        },
        "metrics": metrics,
        "note": format!("{requests} requests each, one at a time, alternating; 120 entities x 3 observations"),
    }))
}

/// The compiled-component cache of the in-process runtime.
fn tempfile_dir(work: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = work.join("direct-cache");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
