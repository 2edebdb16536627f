//! Clients nobody here wrote, against a real server: the official `openai`
//! Python package, in its default configuration, embeds texts (asking for
//! base64 and decoding it itself) and lists and retrieves models
//! (`tests/python/openai_client.py`). Its pinned environment is built by
//! `./scripts/setup` (`scripts/python-env`, target/pyenv); without it this
//! test fails and says so instead of skipping.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{AgentsDir, Server};

/// Longest the client script may run: a few requests, each well under a
/// second on an idle machine, and the client's own retries on a busy one.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned Python of the client tests.
pub(crate) fn python() -> PathBuf {
    let python = root().join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/setup (it builds the pinned Python environment of the client tests with scripts/python-env)",
        python.display()
    );
    python
}

/// Runs `script` with the server's address and token; its exit status and
/// everything it printed. Killed past [`SCRIPT_DEADLINE`].
pub(crate) fn run_script(
    server: &Server,
    script: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let token = server
        .token
        .clone()
        .expect("the server runs with auth and wrote a token");
    let mut child = Command::new(python())
        .arg(root().join("tests/python").join(script))
        .env("CAXTON_BASE_URL", server.url("/api/v1"))
        .env("CAXTON_TOKEN", token)
        .envs(env.iter().copied())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        // Loopback only: no proxy, and none of the developer's OpenAI settings.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_ORG_ID")
        .env_remove("OPENAI_PROJECT_ID")
        .env_remove("OPENAI_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting target/pyenv/bin/python");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "--- stdout\n{}--- stderr\n{}",
        stdout.join().unwrap(),
        stderr.join().unwrap()
    );
    (status, output)
}

#[test]
fn the_official_openai_client_embeds_and_lists_models_unmodified() {
    // Checked before starting a server: a missing environment fails fast.
    python();
    let server = Server::start_fresh(&AgentsDir::new(), None);
    let (status, output) = run_script(&server, "openai_client.py", &[]);
    println!("{output}");
    assert!(
        status == Some(0),
        "tests/python/openai_client.py failed (exit status {status:?}; None: killed after {SCRIPT_DEADLINE:?}):\n{output}\nthe server's log:\n{}",
        server.log()
    );
}

/// The small real model of the tests (SmolLM2-135M-Instruct) served over
/// an OpenAI-compatible API on loopback by `scripts/llm-server run`
/// (installed by `./scripts/setup`). Killed on drop.
struct RealModel {
    child: std::process::Child,
    url: String,
}

impl RealModel {
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = Command::new(root().join("scripts/llm-server"))
            // One thread: steadier on a 2-core box that is also running
            // the host and the tests.
            .args(["run", "--port", "0", "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting scripts/llm-server run (run ./scripts/setup first)");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = sender.send(url.to_owned());
                }
            }
        });
        let url = receiver
            .recv_timeout(Duration::from_secs(120))
            .expect("the model server did not say it was listening within 120 s; run ./scripts/setup (scripts/llm-server install)");
        Self { child, url }
    }

    /// caxton.toml text making this the default provider.
    fn config(&self) -> String {
        format!(
            "[memory.embedding_config]\nenabled = false\n[llm]\ndefault_provider = \"local\"\n[llm.providers.local]\nbase_url = \"{}/v1\"\nmodel = \"SmolLM2-135M-Instruct\"\ntimeout = \"120s\"\n",
            self.url
        )
    }
}

impl Drop for RealModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ASSISTANT: &str = r#"
name = "assistant"
version = "1.0.0"
capabilities = ["question-answering"]
system_prompt = "You are a helpful assistant. Answer briefly."

[llm]
max_tokens = 48

[memory]
enabled = false
"#;

#[tokio::test]
async fn a_configuration_agent_answers_through_a_real_model() {
    python();
    let model = RealModel::start();
    let agents = AgentsDir::new().with("assistant", ASSISTANT);
    let server = Server::start_fresh(&agents, Some(&model.config()));
    // The agent route: the reply carries the model's answer.
    let reply = server
        .send(
            "assistant",
            &serde_json::json!({"content": "What is the capital of France? Answer in one word."}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.body["reply"]["content"]["answer"].as_str().unwrap();
    assert!(answer.to_lowercase().contains("paris"), "{}", reply.body);
    assert_eq!(
        reply.body["reply"]["content"]["model"],
        "local/SmolLM2-135M-Instruct"
    );
    // The official client through the OpenAI-compatible front, whole and
    // streamed.
    let (status, output) = tokio::task::spawn_blocking(move || {
        let result = run_script(&server, "openai_chat.py", &[("CAXTON_AGENT", "assistant")]);
        (result, server)
    })
    .await
    .map(|((status, output), server)| {
        if status != Some(0) {
            println!("the server's log:\n{}", server.log());
        }
        (status, output)
    })
    .unwrap();
    println!("{output}");
    assert!(
        status == Some(0),
        "tests/python/openai_chat.py failed (exit status {status:?}):\n{output}"
    );
}
