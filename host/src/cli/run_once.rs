//! `caxton agents run MANIFEST --message JSON`: loads one plugin in a
//! throwaway host, gives it one message (an agent) or one input (a tool),
//! prints the answer and what the call used, and leaves nothing behind.
//!
//! An agent runs in a real `caxton serve` started from this binary on a
//! free loopback port with a scratch data directory, so it meets the same
//! memory, tools, messaging and language models (from the usual config) as
//! it will when deployed. A tool needs none of that: it is loaded and
//! invoked in this process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::client::{ApiClient, Output, ServerArgs};
use crate::agents::{AgentRegistry, Manifest, PluginKind};

/// How long the throwaway server may take to start (it loads the
/// embedding model, when the config enables it).
const START_TIMEOUT: Duration = Duration::from_secs(120);

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
        let server = ThrowawayServer::start(&scratch.0, self.config)?;
        let args = ServerArgs {
            server: server.url.clone(),
            token: None,
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
            return Ok(json!({
                "answer": { "error": shown },
                "usage": error["details"]["usage"],
                "error": shown,
            }));
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
        Ok(Err(error)) => {
            let error =
                json!({ "code": "plugin_error", "kind": error.kind(), "message": error.text() });
            json!({ "answer": { "error": error }, "usage": usage, "error": error })
        }
        Err(error) => {
            let error = json!({ "code": error.code(), "message": error.to_string() });
            json!({ "answer": { "error": error }, "usage": usage, "error": error })
        }
    })
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

/// `caxton serve` on a free loopback port; killed when dropped (its data
/// is scratch, so there is nothing to shut down gracefully for).
struct ThrowawayServer {
    child: Child,
    url: String,
}

impl ThrowawayServer {
    fn start(scratch: &Path, config: Option<&Path>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let log = std::fs::File::create(scratch.join("server.log"))?;
        let data = scratch.join("data");
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--agents-dir")
            .arg(scratch.join("agents"))
            // Whatever the config file says, nothing of the real host's
            // is touched: its store and its token file stay as they are.
            .env("CAXTON_MEMORY__DATABASE_PATH", data.join("memory.db"))
            .env(
                "CAXTON_AUTH__TOKEN_FILE",
                data.join(crate::auth::TOKEN_FILE),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (found, waiting) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("caxton listening on ") {
                    let _ = found.send(url.trim().to_owned());
                }
            }
        });
        match waiting.recv_timeout(START_TIMEOUT) {
            Ok(url) => Ok(ThrowawayServer { child, url }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(scratch.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                anyhow::bail!(
                    "the throwaway server did not start:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }
}

impl Drop for ThrowawayServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
