//! `caxton benchmark plugins`: what a plugin costs by the language it is
//! written in. For each language, the template agent of `caxton agents
//! new` is made, built with that language's toolchain, compiled cold and
//! deployed; then every agent and the built-in Rust echo answer the same
//! messages on one server, in alternating order, so the ratio to echo is
//! measured in one run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::percentiles;
use super::served::{echo_manifest, serve};
use super::suite::metric;
use crate::config::WasmRuntimeConfig;
use crate::runtime::{PluginSpec, Runtime};
use crate::scaffold::{Kind, Lang, NewProject};

/// One language's plugin, made and deployed.
struct Made {
    lang: &'static str,
    name: String,
    /// From `caxton agents new` to the first answer from the server.
    new_to_answer: Duration,
    build: Duration,
    size_bytes: u64,
    cold_compile: Duration,
}

pub async fn plugins(work: &Path, langs: &[Lang], requests: usize) -> anyhow::Result<Value> {
    let agents = work.join("agents");
    std::fs::create_dir_all(&agents)?;
    std::fs::write(agents.join("echo.toml"), echo_manifest("echo", "1.0.0"))?;
    let served = serve(
        &agents,
        &work.join("data"),
        "[http_server.rate_limit]\nenabled = false\n[memory.embedding_config]\nenabled = false\n",
    )?;
    let client = &served.client;

    let mut made = Vec::new();
    for &lang in langs {
        let label = lang.as_str();
        let name = format!("bench-{label}");
        let dir = work.join("projects").join(&name);
        let started = Instant::now();
        let project = NewProject {
            name: &name,
            lang,
            kind: Kind::Agent,
            grants: &[],
            dir: &dir,
        };
        project.create()?;
        let building = Instant::now();
        for step in build_steps(lang) {
            run(&dir, &step)?;
        }
        let build = building.elapsed();
        let component = dir.join(project.component_path());
        let size_bytes = std::fs::metadata(&component)?.len();
        let cold_compile = compile_cold(work, &name, &component)?;
        // The cold compile above is this benchmark's own extra: a user's
        // path from `new` to an answer compiles once, at deployment.
        let own_extra = cold_compile;
        eprintln!(
            "plugins: {label}: built in {build:.1?}, {:.1} MB, compiled cold in {cold_compile:.1?}",
            size_bytes as f64 / 1e6
        );

        let manifest = std::fs::read_to_string(dir.join("manifest.toml"))?;
        let body = json!({
            "manifest": manifest,
            "component": base64::engine::general_purpose::STANDARD.encode(std::fs::read(&component)?),
        });
        client
            .post(format!("{}/api/v1/agents", served.base))
            .timeout(Duration::from_secs(600))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        send(client, &served.base, &name, 0).await?;
        made.push(Made {
            lang: label,
            name,
            new_to_answer: started.elapsed() - own_extra,
            build,
            size_bytes,
            cold_compile,
        });
    }

    // Every agent and echo answer the same messages, interleaved.
    for plugin in &made {
        for i in 0..10 {
            send(client, &served.base, &plugin.name, i).await?;
        }
    }
    let mut round_trips: Vec<Vec<Duration>> = vec![Vec::new(); made.len() + 1];
    let mut in_plugin: Vec<Vec<Duration>> = vec![Vec::new(); made.len() + 1];
    let names: Vec<&str> = std::iter::once("echo")
        .chain(made.iter().map(|m| m.name.as_str()))
        .collect();
    for i in 0..requests {
        for offset in 0..names.len() {
            let which = (i + offset) % names.len();
            let (round_trip, call) = send(client, &served.base, names[which], i).await?;
            round_trips[which].push(round_trip);
            in_plugin[which].push(call);
        }
    }
    let summaries: Vec<(Value, Value)> = round_trips
        .into_iter()
        .zip(in_plugin)
        .map(|(round_trip, call)| (percentiles(round_trip), percentiles(call)))
        .collect();
    let value = |summary: &Value, key: &str| summary[key].as_f64().unwrap_or(f64::NAN);
    let (echo_trip, echo_call) = &summaries[0];
    eprintln!("plugins: rust echo round trip {echo_trip}, in the plugin {echo_call}");

    let mut metrics = vec![
        metric(
            "plugins.echo.call_median_ms",
            value(echo_call, "median_ms"),
            "ms",
            "lower",
        ),
        metric(
            "plugins.echo.round_trip_median_ms",
            value(echo_trip, "median_ms"),
            "ms",
            "lower",
        ),
    ];
    let mut runs = json!({"echo": {"round_trip": echo_trip, "call": echo_call}});
    for (plugin, (trip, call)) in made.iter().zip(&summaries[1..]) {
        eprintln!(
            "plugins: {} round trip {trip}, in the plugin {call}",
            plugin.lang
        );
        let lang = plugin.lang;
        metrics.extend([
            metric(
                &format!("plugins.{lang}.component_mb"),
                plugin.size_bytes as f64 / 1e6,
                "MB",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.build_s"),
                plugin.build.as_secs_f64(),
                "s",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.cold_compile_s"),
                plugin.cold_compile.as_secs_f64(),
                "s",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.new_to_answer_s"),
                plugin.new_to_answer.as_secs_f64(),
                "s",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.call_median_ms"),
                value(call, "median_ms"),
                "ms",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.call_p99_ms"),
                value(call, "p99_ms"),
                "ms",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.call_ratio_to_echo_median"),
                value(call, "median_ms") / value(echo_call, "median_ms"),
                "x",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.round_trip_median_ms"),
                value(trip, "median_ms"),
                "ms",
                "lower",
            ),
            metric(
                &format!("plugins.{lang}.round_trip_ratio_to_echo_median"),
                value(trip, "median_ms") / value(echo_trip, "median_ms"),
                "x",
                "lower",
            ),
        ]);
        runs[lang] = json!({"round_trip": trip, "call": call});
    }
    Ok(json!({
        "suite": "plugins",
        "runs": runs,
        "metrics": metrics,
        "note": format!(
            "the template agent of `caxton agents new` per language (its echo branch: no memory call) beside the built-in Rust echo, {requests} messages each, one at a time, interleaved; `call` is the plugin's own wall time (instantiate + handle) from the reply's usage, `round_trip` the HTTP request"
        ),
    }))
}

/// Sends message `i` to `agent`; the round trip and the call's own time.
async fn send(
    client: &reqwest::Client,
    base: &str,
    agent: &str,
    i: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let sent = Instant::now();
    let answer: Value = client
        .post(format!("{base}/api/v1/agents/{agent}/messages"))
        .json(&json!({"content": {"ping": i}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let round_trip = sent.elapsed();
    let call = answer["usage"]["wall_time_us"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("{agent} answered without usage: {answer}"))?;
    Ok((round_trip, Duration::from_micros(call)))
}

/// The commands that build a project, in its directory.
fn build_steps(lang: Lang) -> Vec<Vec<&'static str>> {
    match lang {
        Lang::Rust | Lang::Python => vec![vec!["./build.sh"]],
        Lang::Js => vec![
            vec!["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"],
            vec!["npm", "run", "build"],
        ],
    }
}

/// Runs one build step; componentize-py is found in this checkout's
/// Python environment (`scripts/python-env`) when it is not on PATH.
fn run(dir: &Path, step: &[&str]) -> anyhow::Result<()> {
    let pyenv = crate::harness::checkout().join("target/pyenv/bin");
    let path = format!(
        "{}:{}",
        pyenv.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(step[0])
        .args(&step[1..])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .map_err(|e| anyhow::anyhow!("{}: {e}", step[0]))?;
    if !output.status.success() {
        anyhow::bail!(
            "{} failed in {}:\n{}{}",
            step.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Compiles the component with an empty cache, as a first deployment does.
fn compile_cold(work: &Path, name: &str, component: &Path) -> anyhow::Result<Duration> {
    let cache = work.join("cold-cache").join(name);
    std::fs::create_dir_all(&cache)?;
    let runtime = Runtime::new(&WasmRuntimeConfig::default(), cache)?;
    let grants: Vec<String> = ["log", "memory"].iter().map(|g| g.to_string()).collect();
    let started = Instant::now();
    runtime.load_agent(&PluginSpec {
        name,
        component,
        wasm: None,
        grants: &grants,
        limits: runtime.default_limits(),
    })?;
    Ok(started.elapsed())
}
