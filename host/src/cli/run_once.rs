//! `caxton agents run MANIFEST --message JSON`: loads one plugin in a
//! throwaway host, gives it one message (an agent) or one input (a tool),
//! prints the answer and what the call used, and leaves nothing behind.
//!
//! An agent runs in a real `caxton serve` started from this binary by the
//! harness the tests use (a free loopback port, a scratch data directory
//! holding its store and token), so it meets the same memory, tools,
//! messaging and language models (from the config named) as it will when
//! deployed. A tool needs none of that: it is loaded and invoked in this
//! process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::client::{ApiClient, Output, ServerArgs};
use crate::agents::{AgentRegistry, Manifest, PluginKind};
use crate::harness::{ServeOptions, ServerProcess};

pub struct RunOnce<'a> {
    pub manifest: &'a Path,
    pub message: &'a str,
    pub performative: &'a str,
    pub config: Option<&'a Path>,
    pub output: Output,
}

impl RunOnce<'_> {
    pub async fn run(&self) -> anyhow::Result<()> {
        let content: Value = serde_json::from_str(self.message).map_err(|e| {
            anyhow::anyhow!(
                "--message is not JSON ({e}); quote it for the shell, e.g. --message '{{\"text\": \"hi\"}}'"
            )
        })?;
        let text = std::fs::read_to_string(self.manifest)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", self.manifest.display()))?;
        let report = Manifest::parse_report(&text, self.manifest);
        let Some(manifest) = report.manifest else {
            for problem in &report.problems {
                eprintln!("{}: {problem}", self.manifest.display());
            }
            anyhow::bail!(
                "{} problem(s) in {}",
                report.problems.len(),
                self.manifest.display()
            );
        };
        let answer = match manifest.kind {
            PluginKind::Tool => {
                let config = super::config::load(self.config)?;
                invoke_tool(self.manifest, manifest, &config, content).await?
            }
            PluginKind::Agent => self.ask_agent(&manifest.name, content).await?,
        };
        super::output::print(self.output, &answer, |answer| {
            println!(
                "{}",
                serde_json::to_string_pretty(&answer["answer"]).unwrap_or_default()
            );
            let usage = &answer["usage"];
            eprintln!(
                "used {} fuel, {:.1} ms, {:.1} MiB peak memory",
                usage["fuel_consumed"],
                usage["wall_time_us"].as_f64().unwrap_or(0.0) / 1000.0,
                usage["peak_memory_bytes"].as_f64().unwrap_or(0.0) / f64::from(1 << 20)
            );
        });
        if answer["error"].is_object() {
            anyhow::bail!("{} answered with an error", self.manifest.display());
        }
        Ok(())
    }

    async fn ask_agent(&self, name: &str, content: Value) -> anyhow::Result<Value> {
        let scratch = Scratch::new()?;
        let mut options = ServeOptions::new(
            &std::env::current_exe()?,
            &scratch.0.join("data"),
            &scratch.0.join("agents"),
        );
        options.config = self
            .config
            .map(|path| {
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
            })
            .transpose()?;
        options.capture_log = true;
        // Its data is scratch: killed when dropped, nothing to shut down.
        let server = ServerProcess::start(&options)?;
        let args = ServerArgs {
            server: server.base.clone(),
            token: server.token.clone(),
            data_dir: Some(scratch.0.join("data")),
            output: Output::Json,
        };
        super::agents::deploy_quietly(self.manifest, &args).await?;
        let client = ApiClient::new(&args);
        let body = json!({ "performative": self.performative, "content": content });
        // Read whatever comes back: a plugin's error is an answer too, and
        // carries the call's usage like a reply does.
        let response = client
            .send_any(
                client
                    .request(
                        reqwest::Method::POST,
                        &format!("/api/v1/agents/{name}/messages"),
                    )
                    .json(&body),
            )
            .await?;
        let status = response.status();
        let answered: Value = response.json().await?;
        drop(server);
        if status.is_success() {
            let reply = &answered["reply"];
            let failed = reply["performative"] == "failure";
            let answer = if failed {
                json!({ "performative": "failure", "content": reply["content"] })
            } else {
                reply["content"].clone()
            };
            let error = failed.then(|| reply["content"].clone());
            return Ok(json!({ "answer": answer, "usage": answered["usage"], "error": error }));
        }
        let error = &answered["error"];
        if error["details"]["usage"].is_object() {
            let shown = json!({
                "code": error["code"],
                "kind": error["details"]["kind"],
                "message": error["message"],
            });
            return Ok(error_answer(shown, error["details"]["usage"].clone()));
        }
        anyhow::bail!(
            "{} ({status}): {}",
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or_default()
        )
    }
}

/// Loads and invokes a tool in this process, under the config's
/// `[wasm_runtime]` limits. Its `wasi:http` requests are refused: they
/// follow the calling agent's `[http]` allow list, and here there is none.
async fn invoke_tool(
    path: &Path,
    manifest: Manifest,
    config: &crate::config::Config,
    input: Value,
) -> anyhow::Result<Value> {
    let scratch = Scratch::new()?;
    let settings = crate::config::WasmRuntimeConfig {
        pool_size: 2,
        low_priority_threads: 1,
        ..config.wasm_runtime.clone()
    };
    let runtime = Arc::new(crate::runtime::Runtime::new(
        &settings,
        scratch.0.join("cache"),
    )?);
    let registry = AgentRegistry::new(runtime.clone(), None);
    registry.set_profiles(config.agents.agent_profiles());
    let name = manifest.name.clone();
    registry
        .deploy(path, manifest)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tool = registry
        .tool(&name)
        .ok_or_else(|| anyhow::anyhow!("{name} did not load"))?;
    let outcome = runtime
        .invoke_tool(&tool.component, input.to_string(), None)
        .await;
    let usage = json!({
        "fuel_consumed": outcome.usage.fuel_consumed,
        "wall_time_us": outcome.usage.wall_time_us,
        "peak_memory_bytes": outcome.usage.peak_memory_bytes,
    });
    Ok(match outcome.result {
        Ok(Ok(output)) => {
            let answer = serde_json::from_str(&output).unwrap_or(Value::String(output));
            json!({ "answer": answer, "usage": usage, "error": null })
        }
        Ok(Err(error)) => error_answer(
            json!({ "code": "plugin_error", "kind": error.kind(), "message": error.text() }),
            usage,
        ),
        Err(error) => error_answer(
            json!({ "code": error.code(), "message": error.to_string() }),
            usage,
        ),
    })
}

/// What `run` prints for a call that ended in an error: the error as the
/// answer, with the call's usage.
fn error_answer(error: Value, usage: Value) -> Value {
    json!({ "answer": { "error": error }, "usage": usage, "error": error })
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "caxton-run-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(dir.join("agents"))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
