//! Test support: a real `caxton serve` process on a random loopback port
//! (started by the library's harness, as the benchmark and the benches
//! start it), with its own data dir and agents dir, and its log captured;
//! requests, error assertions and a `caxton` command builder.

pub mod cgroup;
pub mod fleet;
pub mod plugins;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caxton::harness::{ServeOptions, ServerProcess};
use serde_json::Value;

pub use plugins::component;

/// A manifest for `component` (a plugin name), with extra TOML lines.
pub fn manifest(name: &str, component_name: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\ncomponent = {:?}\n{extra}\n",
        component(component_name).display().to_string()
    )
}

/// Config text that turns semantic search off.
pub const NO_EMBEDDINGS: &str = "[memory.embedding_config]\nenabled = false\n";

/// A directory of manifests for one server. Clones share the directory,
/// which lives until the last clone (the server keeps one: with hot
/// reload, a vanished directory would unload every agent).
#[derive(Clone)]
pub struct AgentsDir {
    pub dir: Arc<tempfile::TempDir>,
}

impl AgentsDir {
    pub fn new() -> Self {
        Self {
            dir: Arc::new(tempfile::tempdir().unwrap()),
        }
    }

    /// The echo agent, the csv tool and the analyst agent, as bundled.
    pub fn with_examples() -> Self {
        Self::new()
            .with(
                "echo",
                &manifest("echo", "echo", "capabilities = [\"echo\"]\ngrants = [\"log\"]"),
            )
            .with(
                "csv_parser",
                &manifest("csv_parser", "csv_parser", "kind = \"tool\""),
            )
            .with(
                "analyst",
                &manifest(
                    "analyst",
                    "analyst",
                    "capabilities = [\"data-processing\"]\ntools = [\"csv_parser\"]\ngrants = [\"log\", \"tools\"]",
                ),
            )
    }

    pub fn with(self, file_stem: &str, text: &str) -> Self {
        std::fs::write(self.dir.path().join(format!("{file_stem}.toml")), text).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A running server (the library's harness, as the benchmark and the
/// benches start it), with the test helpers. Killed on drop.
pub struct Server {
    process: ServerProcess,
    pub base: String,
    pub data_dir: PathBuf,
    /// The API token the server generated (None when auth is off).
    pub token: Option<String>,
    _agents: AgentsDir,
    /// `http://ADDR/metrics`, when the metrics listener is on.
    pub metrics_url: Option<String>,
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server on a fresh data dir, without the embedding model
    /// (tests that need it say so: loading it costs CPU the others need).
    pub fn start(agents: &AgentsDir) -> Self {
        Self::start_fresh(agents, Some(NO_EMBEDDINGS))
    }

    /// Starts a server on a fresh data dir with the config file's text.
    pub fn start_fresh(agents: &AgentsDir, config: Option<&str>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut server = Self::start_with(agents, data.path(), config);
        server._data = Some(data);
        server
    }

    /// Starts a server on `data_dir`, optionally with a config file's text.
    pub fn start_with(agents: &AgentsDir, data_dir: &Path, config: Option<&str>) -> Self {
        Self::start_in(agents, data_dir, config, None)
    }

    /// [`Self::start_with`], with the server in the cgroup whose
    /// `cgroup.procs` is `cgroup_procs` from its first instruction.
    pub fn start_in(
        agents: &AgentsDir,
        data_dir: &Path,
        config: Option<&str>,
        cgroup_procs: Option<&Path>,
    ) -> Self {
        plugins::plugin_dir();
        let mut options = ServeOptions::new(&binary(), data_dir, agents.path());
        options.config = config.map(str::to_owned);
        options.cgroup_procs = cgroup_procs.map(Path::to_owned);
        options.log_filter = "info,plugin=debug".into();
        options.capture_log = true;
        let process = ServerProcess::start(&options).unwrap_or_else(|error| panic!("{error}"));
        wait_until_ready(&process.base, &process);
        Self {
            base: process.base.clone(),
            token: process.token.clone(),
            metrics_url: process.metrics_url.clone(),
            data_dir: data_dir.to_owned(),
            process,
            _agents: agents.clone(),
            _data: None,
        }
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The most resident memory the server has used so far (Linux's
    /// `VmHWM`), in bytes: a peak, which a sample of RSS can miss.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading the server's /proc status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc status");
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    /// A client that sends this server's token on every request.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        http()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Waits until the log contains `needle` (logs arrive asynchronously).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `caxton ARGS --server <this server>` with its token; returns
    /// stdout, asserting the command succeeded.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = caxton_command()
            .args(args)
            .args(["--server", &self.base])
            .env("CAXTON_TOKEN", self.token.as_deref().unwrap_or_default())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "caxton {args:?} failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    }

    /// Kills the server with SIGKILL (no shutdown of any kind) and waits.
    pub fn kill(mut self) {
        let child = self.process.child_mut();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.process
            .terminate()
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// GETs `path` and parses the JSON body (any status).
    pub async fn get_json(&self, path: &str) -> Value {
        self.client()
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
            .json()
            .await
            .expect("JSON body")
    }

    /// POSTs JSON to `path`; the status, Retry-After and body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        Reply::of(self.client().post(self.url(path)).json(&body)).await
    }

    /// PUTs JSON to `path`; the status, Retry-After and body.
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        Reply::of(self.client().put(self.url(path)).json(&body)).await
    }

    /// DELETEs `path`; the status, Retry-After and body.
    pub async fn delete(&self, path: &str) -> Reply {
        Reply::of(self.client().delete(self.url(path))).await
    }

    /// The Prometheus text of the server's metrics listener.
    pub async fn metrics(&self) -> String {
        let url = self.metrics_url.as_ref().expect("metrics listener");
        reqwest::get(url)
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics text")
    }

    /// GETs `path`; the status, Retry-After and body.
    pub async fn get(&self, path: &str) -> Reply {
        Reply::of(self.client().get(self.url(path))).await
    }

    /// POSTs a message to an agent; returns status, headers' Retry-After and body.
    pub async fn send(&self, agent: &str, body: &Value) -> Reply {
        let url = self.url(&format!("/api/v1/agents/{agent}/messages"));
        Reply::of(self.client().post(url).json(body)).await
    }
}

pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Reply {
    /// Sends `request` and reads its answer.
    pub async fn of(request: reqwest::RequestBuilder) -> Self {
        Self::read(request.send().await.expect("request failed")).await
    }

    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
        Self {
            status,
            retry_after,
            body,
        }
    }

    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the answer is the error shape with `status` and `code`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "expected {status} {code}, got: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"].is_string(),
            "no message in the error shape: {}",
            self.body
        );
    }
}

/// The `caxton` binary under test: this build's, or the one `CAXTON_BIN`
/// names (to show that a test fails on a build without its fix, say).
/// `field` of every hit in a memory search's answer, in rank order.
pub fn hit_fields(hits: &Value, field: &str) -> Vec<String> {
    hits["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {hits}"))
        .iter()
        .map(|h| h[field].as_str().unwrap().to_owned())
        .collect()
}

pub fn binary() -> PathBuf {
    std::env::var_os("CAXTON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_caxton")))
}

/// The `caxton` binary under test as a command, ignoring any token,
/// server or config the environment names.
pub fn caxton_command() -> Command {
    let mut command = Command::new(binary());
    command
        .env_remove("CAXTON_TOKEN")
        .env_remove("CAXTON_SERVER")
        .env_remove("CAXTON_CONFIG");
    command
}

/// Runs `caxton` with `args` and returns what it printed.
pub fn caxton(args: &[&str]) -> std::process::Output {
    caxton_command()
        .args(args)
        .output()
        .expect("running caxton")
}

/// Polls `/api/v1/ready` (no token needed) until the server answers 200:
/// with the model on, it loads in the background after "listening", and a
/// test that embeds before then would time out on a busy machine.
fn wait_until_ready(base: &str, process: &ServerProcess) {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = std::net::TcpStream::connect(address).is_ok_and(|mut stream| {
            let request = format!(
                "GET /api/v1/ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server never became ready; its log:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP client builder (the TLS provider installed first: reqwest's
/// rustls needs one chosen, as the server's own clients do).
pub fn http() -> reqwest::ClientBuilder {
    caxton::llm::install_tls_provider();
    reqwest::Client::builder()
}

/// The `tool` messages of a chat request a provider received, as (call id,
/// content), in order: what a configuration agent told the model its tool
/// calls returned.
pub fn tool_results(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .expect("a chat request has messages")
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
