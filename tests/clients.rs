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
fn python() -> PathBuf {
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
fn run_script(server: &Server, script: &str) -> (Option<i32>, String) {
    let token = server
        .token
        .clone()
        .expect("the server runs with auth and wrote a token");
    let mut child = Command::new(python())
        .arg(root().join("tests/python").join(script))
        .env("CAXTON_BASE_URL", server.url("/api/v1"))
        .env("CAXTON_TOKEN", token)
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
    let (status, output) = run_script(&server, "openai_client.py");
    println!("{output}");
    assert!(
        status == Some(0),
        "tests/python/openai_client.py failed (exit status {status:?}; None: killed after {SCRIPT_DEADLINE:?}):\n{output}\nthe server's log:\n{}",
        server.log()
    );
}
