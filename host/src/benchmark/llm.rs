//! `caxton benchmark agents --llm`: what the host itself adds to a
//! configuration agent's turn. The provider is the scripted one of the
//! tests, answering at once, so the host's cost is not lost in a model's
//! seconds: a turn without tools against the same provider request sent
//! directly, a turn with one tool call against that, and the text passing
//! through a stream against reading the provider's stream directly. All
//! in one run, against one server.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::percentiles;
use super::served::{Served, plugin_manifest, serve};
use crate::harness::scripted_llm::{Answer, ScriptedLlm};

pub struct LlmBenchmark {
    /// Turns per measurement.
    pub turns: usize,
    /// A real OpenAI-compatible server (base URL up to `/v1`) and model:
    /// when given, tokens per second of a real answer are compared
    /// streamed straight from it and through a configuration agent.
    pub real_provider: Option<(String, String)>,
    /// Pieces in each streamed answer.
    pub stream_pieces: usize,
    pub work_dir: PathBuf,
}

const AGENT: &str = r#"
name = "bench"
version = "1.0.0"
capabilities = ["bench"]
tools = ["csv_parser"]
system_prompt = "You answer questions about CSV data."

[memory]
enabled = false
"#;

impl LlmBenchmark {
    pub async fn run(&self) -> anyhow::Result<Value> {
        let result = self.measure().await;
        let _ = std::fs::remove_dir_all(&self.work_dir);
        result
    }

    async fn measure(&self) -> anyhow::Result<Value> {
        let provider = ScriptedLlm::start(vec![Answer::Text("ok")]).await;
        // Pieces as fast as they can be written: the rate measured is the
        // path's, not the stand-in's pacing.
        provider.set_piece_delay(Duration::ZERO);
        let agents = self.work_dir.join("agents");
        std::fs::create_dir_all(&agents)?;
        std::fs::write(
            agents.join("csv_parser.toml"),
            plugin_manifest("csv_parser", "1.0.0", "csv_parser", "kind = \"tool\""),
        )?;
        std::fs::write(agents.join("bench.toml"), AGENT)?;
        if self.real_provider.is_some() {
            std::fs::write(agents.join("bench-real.toml"), REAL_AGENT)?;
        }
        let served = serve(
            &agents,
            &self.work_dir.join("data"),
            &format!(
                "[memory.embedding_config]\nenabled = false\n[http_server.rate_limit]\nenabled = false\n[llm]\ndefault_provider = \"bench\"\n[llm.providers.bench]\nbase_url = \"{}\"\nmodel = \"instant\"\n{}",
                provider.url,
                self.real_provider
                    .as_ref()
                    .map(|(url, model)| format!(
                        "[llm.providers.real]\nbase_url = \"{url}\"\nmodel = \"{model}\"\n"
                    ))
                    .unwrap_or_default()
            ),
        )?;
        let direct_client = reqwest::Client::new();
        let direct_body = json!({
            "model": "instant",
            "messages": [
                {"role": "system", "content": "You answer questions about CSV data."},
                {"role": "user", "content": "How many rows?"},
            ],
        });
        let turn = |content: &'static str| {
            let served = &served;
            async move { timed_turn(served, content).await }
        };
        // Warm up: the component cache, connections, the tool's description.
        provider.script(vec![Answer::Text("ok")]);
        for _ in 0..20 {
            turn("warm up").await?;
            timed_post(&direct_client, &provider.url, &direct_body).await?;
        }

        let (mut direct, mut plain, mut with_tool) = (Vec::new(), Vec::new(), Vec::new());
        // Interleaved, so drift on a noisy machine hits each alike.
        for _ in 0..self.turns {
            provider.script(vec![Answer::Text("ok")]);
            direct.push(timed_post(&direct_client, &provider.url, &direct_body).await?);
            plain.push(turn("How many rows?").await?);
            provider.script(vec![
                Answer::Calls(vec![("c1", "csv_parser", r#"{"csv": "a,b\n1,2"}"#)]),
                Answer::Text("one row"),
            ]);
            with_tool.push(turn("Parse and count.").await?);
        }
        let (direct, plain, with_tool) = (
            percentiles(direct),
            percentiles(plain),
            percentiles(with_tool),
        );
        let at = |summary: &Value, key: &str| summary[key].as_f64().unwrap_or(f64::NAN);
        let added_per_turn = json!({
            "median_ms": at(&plain, "median_ms") - at(&direct, "median_ms"),
            "p99_ms": at(&plain, "p99_ms") - at(&direct, "p99_ms"),
        });
        // A tool turn makes two provider requests: one more than a plain turn.
        let added_per_tool_call = json!({
            "median_ms": at(&with_tool, "median_ms") - at(&plain, "median_ms") - at(&direct, "median_ms"),
            "p99_ms": at(&with_tool, "p99_ms") - at(&plain, "p99_ms") - at(&direct, "p99_ms"),
        });

        // Streaming: pieces per second read straight from the provider and
        // through the OpenAI-compatible front.
        let pieces: Vec<&'static str> = (0..self.stream_pieces).map(|_| "tok ").collect();
        provider.script(vec![Answer::Pieces(pieces.clone())]);
        let direct_stream = stream_rate(
            &direct_client,
            &format!("{}/chat/completions", provider.url),
            {
                let mut body = direct_body.clone();
                body["stream"] = json!(true);
                body
            },
        )
        .await?;
        provider.script(vec![Answer::Pieces(pieces)]);
        let through_stream = stream_rate(
            &served.client,
            &format!("{}/api/v1/chat/completions", served.base),
            json!({"model": "bench", "stream": true, "messages": [{"role": "user", "content": "stream"}]}),
        )
        .await?;

        let real_stream = match &self.real_provider {
            Some((url, model)) => real_stream_rates(&served, &direct_client, url, model).await?,
            None => Value::Null,
        };

        let health: Value = served
            .client
            .get(format!("{}/api/v1/health", served.base))
            .send()
            .await?
            .json()
            .await?;
        let rss = health["resident_memory_bytes"].as_u64().unwrap_or(0);
        let metrics = vec![
            super::metric(
                "llm.turn_added.median_ms",
                added_per_turn["median_ms"].as_f64().unwrap_or(f64::NAN),
                "ms",
                "lower",
            ),
            super::metric(
                "llm.tool_call_added.median_ms",
                added_per_tool_call["median_ms"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                "ms",
                "lower",
            ),
            super::metric(
                "llm.stream_through.pieces_per_s",
                through_stream["pieces_per_s"].as_f64().unwrap_or(0.0),
                "pieces/s",
                "higher",
            ),
        ];
        Ok(json!({
            "suite": "agents --llm",
            "provider": "scripted, answers at once (a stand-in: a real model's seconds would hide the host's cost)",
            "direct_provider_request": direct,
            "turn_without_tools": plain,
            "turn_with_one_tool_call": with_tool,
            "host_added_per_turn": added_per_turn,
            "host_added_per_tool_call": added_per_tool_call,
            "stream_direct": direct_stream,
            "stream_through_caxton": through_stream,
            "real_model_stream": real_stream,
            "rss_bytes_with_prompt_agent": rss,
            "metrics": metrics,
        }))
    }
}

/// The agent of the real-model comparison: no tools, no memory.
const REAL_AGENT: &str = r#"
name = "bench-real"
version = "1.0.0"
capabilities = ["bench-real"]
system_prompt = "You are a helpful assistant."

[llm]
provider = "real"
max_tokens = 64
temperature = 0.0

[memory]
enabled = false
"#;

/// The same question streamed from the real provider and through the
/// configuration agent, alternately, five times each: tokens per second
/// and time to the first piece, medians.
async fn real_stream_rates(
    served: &Served,
    client: &reqwest::Client,
    url: &str,
    model: &str,
) -> anyhow::Result<Value> {
    let question = "Write three sentences about the sea.";
    let direct_body = json!({
        "model": model,
        "stream": true,
        "max_tokens": 64,
        "temperature": 0.0,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question},
        ],
    });
    let through_body = json!({
        "model": "bench-real",
        "stream": true,
        "messages": [{"role": "user", "content": question}],
    });
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        direct.push(
            stream_rate(
                client,
                &format!("{url}/chat/completions"),
                direct_body.clone(),
            )
            .await?,
        );
        through.push(
            stream_rate(
                &served.client,
                &format!("{}/api/v1/chat/completions", served.base),
                through_body.clone(),
            )
            .await?,
        );
    }
    let median = |runs: &[Value], key: &str| {
        let mut values: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied()
    };
    let summary = |runs: &[Value]| {
        json!({
            "pieces_per_s": median(runs, "pieces_per_s"),
            "first_piece_ms": median(runs, "first_piece_ms"),
            "pieces": median(runs, "pieces"),
        })
    };
    Ok(json!({"model": model, "direct": summary(&direct), "through_caxton": summary(&through)}))
}

async fn timed_turn(served: &Served, content: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = served
        .client
        .post(format!("{}/api/v1/agents/bench/messages", served.base))
        .json(&json!({ "content": content }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    let elapsed = started.elapsed();
    if !status.is_success() || body["reply"]["performative"] != "inform" {
        anyhow::bail!("a turn failed ({status}): {body}");
    }
    Ok(elapsed)
}

async fn timed_post(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/chat/completions"))
        .json(body)
        .send()
        .await?;
    let status = response.status();
    response.bytes().await?;
    if !status.is_success() {
        anyhow::bail!("the provider answered {status}");
    }
    Ok(started.elapsed())
}

/// Reads an event stream to its end: pieces of text, seconds, rate.
async fn stream_rate(client: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<Value> {
    let started = Instant::now();
    let response = client.post(url).json(&body).send().await?;
    if !response.status().is_success() {
        anyhow::bail!("{url} answered {}", response.status());
    }
    let mut assembler = crate::llm::wire::StreamAssembler::default();
    let mut pieces = 0usize;
    let mut first_piece = None;
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        if !assembler
            .feed(&chunk?)
            .map_err(anyhow::Error::msg)?
            .is_empty()
        {
            pieces += 1;
            first_piece.get_or_insert_with(|| started.elapsed());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "pieces": pieces,
        "seconds": seconds,
        "pieces_per_s": pieces as f64 / seconds,
        "first_piece_ms": first_piece.map(|d| d.as_secs_f64() * 1e3),
    }))
}
