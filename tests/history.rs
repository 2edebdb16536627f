//! The host's history (`[history]`) and the operator commands that read
//! it. Servers sample every second with roll-ups a few seconds apart, so
//! a test sees raw samples, roll-ups and their totals within seconds; the
//! figures are checked against the load the test itself sent.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{AgentsDir, NO_EMBEDDINGS, Server, caxton_command, manifest};

/// One-second samples, rolled up to 2 s after 3 s and to 4 s after 6 s.
const FAST_HISTORY: &str = r#"
[history]
interval = "1s"
raw_for = "3s"
medium_interval = "2s"
medium_for = "6s"
coarse_interval = "4s"
retention = "1h"
"#;

fn config(extra: &str) -> String {
    format!("{NO_EMBEDDINGS}{FAST_HISTORY}{extra}")
}

/// Runs `caxton ARGS` against `server`; its exit code, stdout and stderr.
fn run(server: &Server, args: &[&str]) -> (i32, String, String) {
    let output = caxton_command()
        .args(args)
        .args(["--server", &server.base])
        .env("CAXTON_TOKEN", server_token(server))
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn server_token(server: &Server) -> String {
    server.token.clone().unwrap_or_default()
}

/// Waits until two more samples are recorded: the load sent before the
/// call is then all in history, however late a loaded machine's ticks run.
async fn settle(server: &Server) {
    let ticks = |report: Value| report["series"][0]["readings"].as_f64().unwrap_or(0.0);
    let path = "/api/v1/history?last=1h&series=up";
    let before = ticks(server.get_json(path).await);
    let waited = std::time::Instant::now();
    while ticks(server.get_json(path).await) < before + 2.0 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no history recorded in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn find<'a>(report: &'a Value, name: &str, label: (&str, &str)) -> Option<&'a Value> {
    report["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name && s["labels"][label.0] == label.1)
}

#[tokio::test]
async fn a_known_load_is_reported_from_history_across_roll_ups() {
    let server = Server::start_fresh(&AgentsDir::with_examples(), Some(&config("")));
    for i in 0..20 {
        let reply = server
            .send("echo", &json!({"content": format!("m{i}")}))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    // Wait until the first samples have been rolled up twice (medium
    // after 3 s, coarse after 6 s more); a loaded machine may delay ticks.
    let store =
        caxton::history::store::HistoryStore::open(&server.data_dir.join(caxton::history::FILE))
            .await
            .unwrap();
    let waited = std::time::Instant::now();
    let (now, resolutions, oldest_raw) = loop {
        let now = caxton::history::unix_now();
        let mut resolutions = std::collections::BTreeMap::new();
        let mut oldest_raw = i64::MAX;
        store
            .scan(0, now + 10, &[], |row| {
                *resolutions.entry(row.resolution).or_insert(0) += 1;
                if row.resolution == 1 {
                    oldest_raw = oldest_raw.min(row.ts);
                }
            })
            .await
            .unwrap();
        if resolutions.contains_key(&4) || waited.elapsed() > Duration::from_secs(40) {
            break (now, resolutions, oldest_raw);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The file holds coarse roll-ups, and no raw sample much older than raw_for.
    assert!(
        resolutions.contains_key(&4),
        "no coarse roll-ups after 40 s: {resolutions:?}"
    );
    assert!(
        now - oldest_raw <= 3 + 2 + 4,
        "raw sample {}s old",
        now - oldest_raw
    );

    let report = server
        .get_json("/api/v1/history?last=1h&series=caxton_agent_response_time_seconds")
        .await;
    let echo = find(
        &report,
        "caxton_agent_response_time_seconds",
        ("agent", "echo"),
    )
    .unwrap_or_else(|| panic!("no echo series: {report}"));
    assert_eq!(echo["observations"], json!(20.0), "{echo}");
    let p99 = echo["p99"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 <= 1.0, "echo p99 {p99}");
    assert!(
        report["window"]["covered_seconds"].as_i64().unwrap() >= 5,
        "{report}"
    );

    // The shipped rules all evaluate, and none fires on a healthy box.
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/monitoring/caxton-alerts.yml"),
    )
    .unwrap();
    let alerts = server.get_json("/api/v1/history/alerts?last=1h").await;
    assert_eq!(alerts["not_evaluated"], json!([]), "{alerts}");
    assert_eq!(
        alerts["rules_evaluated"].as_u64().unwrap() as usize,
        shipped.matches("- alert:").count()
    );
    assert_eq!(alerts["firing"], json!([]), "{alerts}");

    // A box younger than the window says how much history it has.
    let week = server.get_json("/api/v1/history?last=7d&series=up").await;
    assert_eq!(week["window"]["complete"], json!(false));
    let note = week["window"]["note"].as_str().unwrap();
    assert!(
        note.contains("of history") && note.contains("asked for 7days"),
        "{note}"
    );

    // A malformed window is refused with the accepted forms.
    let bad = server.get("/api/v1/history?last=7x").await;
    bad.assert_error(400, "bad_request");
    let message = bad.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("30m, 1h, 7d"), "{message}");
    let (code, _, stderr) = run(&server, &["memory", "stats", "--last", "a week"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--last") && stderr.contains("write it like"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_alert_fires_from_a_fault_plugin_run() {
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("rules.yml");
    // The shipped CaxtonAgentTrapsHigh, with a range and `for` of seconds.
    std::fs::write(
        &rules,
        r#"groups:
  - name: test
    rules:
      - alert: AgentsTrapping
        expr: |
          sum by (kind) (rate(caxton_agent_traps_total{job="caxton", kind!="pool_exhausted"}[5s])) > 0.05
        for: 2s
        labels:
          severity: warning
        annotations:
          summary: "Agents are trapping ({{ $labels.kind }})"
      - alert: NeverFires
        expr: caxton_server_memory_used_bytes{job="caxton"} > 400 * 1024 * 1024 * 1024
        labels:
          severity: critical
"#,
    )
    .unwrap();
    let agents = AgentsDir::new().with(
        "spinner",
        &manifest(
            "spinner",
            "faults",
            "capabilities = [\"spin\"]\n[resource_limits]\nfuel = 5_000_000",
        ),
    );
    let server = Server::start_fresh(
        &agents,
        Some(&config(&format!(
            "alert_rules = {:?}\n",
            rules.display().to_string()
        ))),
    );
    for _ in 0..10 {
        let reply = server
            .send("spinner", &json!({"content": {"fault": "loop"}}))
            .await;
        reply.assert_error(422, "out_of_fuel");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    settle(&server).await;

    let (code, stdout, stderr) = run(
        &server,
        &[
            "alerts",
            "summary",
            "--last",
            "1h",
            "--severity",
            "warning",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 5, "{stdout}{stderr}");
    let found: Value = serde_json::from_str(&stdout).unwrap();
    let firing = found["firing"].as_array().unwrap();
    assert!(!firing.is_empty(), "{found}");
    assert!(
        firing.iter().all(|f| f["alert"] == "AgentsTrapping"),
        "{found}"
    );
    assert_eq!(firing[0]["labels"]["kind"], "out_of_fuel");
    assert_eq!(firing[0]["summary"], "Agents are trapping (out_of_fuel)");
    assert!(firing[0]["peak"].as_f64().unwrap() > 0.05);

    // The critical rule did not fire: exit 0 and nothing listed.
    let (code, stdout, _) = run(
        &server,
        &[
            "alerts",
            "summary",
            "--last",
            "1h",
            "--severity",
            "critical",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("no alerts fired (1 rules evaluated)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn check_daily_names_the_failed_item_and_what_to_do() {
    let server = Server::start_fresh(
        &AgentsDir::with_examples(),
        Some(&config("[memory.sqlite_config]\nwal_mode = false\n")),
    );
    for i in 0..5 {
        server
            .send("echo", &json!({"content": format!("m{i}")}))
            .await;
    }
    settle(&server).await;
    let (code, stdout, stderr) = run(&server, &["check", "daily", "--output", "json"]);
    assert_eq!(code, 5, "{stdout}{stderr}");
    assert!(
        stderr.contains("1 daily check(s) failed: SQLite WAL mode on"),
        "{stderr}"
    );
    let checked: Value = serde_json::from_str(&stdout).unwrap();
    let items = checked["items"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    for item in items {
        if item["item"] == "SQLite WAL mode on" {
            assert_eq!(item["status"], "FAIL");
            assert!(item["fix"].as_str().unwrap().contains("wal_mode = true"));
        } else {
            assert!(
                item["status"] == "PASS" || item["status"] == "N/A",
                "{item}"
            );
        }
    }
    let api = items
        .iter()
        .find(|i| i["item"] == "API p99 < 200ms")
        .unwrap();
    assert_eq!(api["status"], "PASS", "requests were made: {api}");
}

#[tokio::test]
async fn the_guides_weekly_review_runs_end_to_end() {
    let server = Server::start_fresh(&AgentsDir::with_examples(), Some(&config("")));
    for i in 0..5 {
        server
            .send("echo", &json!({"content": format!("m{i}")}))
            .await;
    }
    settle(&server).await;
    let binary_dir = crate::support::binary().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/monitoring/weekly-review.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .env("PATH", path)
        .env("CAXTON_SERVER", &server.base)
        .env("CAXTON_TOKEN", server_token(&server))
        .env("CAXTON_DATA_DIR", &server.data_dir)
        .env_remove("CAXTON_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for heading in [
        "ITEM",
        "MEMORY (last 7d)",
        "SERIES",
        "AGENT",
        "RESOURCES (last 7d)",
        "DATABASE",
        "fragmentation",
        "CACHE",
        "no alerts fired",
    ] {
        assert!(stdout.contains(heading), "no {heading:?} in:\n{stdout}");
    }
    assert!(stdout.contains("echo"), "the echo agent's calls: {stdout}");
    for line in stderr.lines() {
        assert!(
            line.starts_with("note: "),
            "unexpected stderr: {line}\n{stderr}"
        );
    }
}

#[tokio::test]
async fn cache_analysis_reports_the_hit_rate_of_a_known_sequence() {
    // The real model: 4 new texts, then the same 4 three times over.
    let server = Server::start_fresh(&AgentsDir::new(), Some(FAST_HISTORY));
    let texts = json!(["a red fox", "a blue whale", "a green frog", "a grey owl"]);
    for _ in 0..4 {
        let reply = server
            .post("/api/v1/embeddings", json!({"input": texts}))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    settle(&server).await;

    let (code, stdout, stderr) = run(
        &server,
        &[
            "memory",
            "cache-analysis",
            "--hit-rates",
            "--efficiency",
            "--last",
            "1h",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let found: Value = serde_json::from_str(&stdout).unwrap();
    let embedding = &found["embedding"];
    assert_eq!(embedding["hits"], json!(12.0), "{found}");
    assert_eq!(embedding["misses"], json!(4.0), "{found}");
    assert_eq!(embedding["hit_rate"], json!(0.75), "{found}");
    assert_eq!(embedding["entries"], json!(4.0), "{found}");

    // Below the guide's 85%: the daily check says so and what to do.
    let (code, _, stderr) = run(&server, &["check", "daily"]);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("embedding cache hit rate > 85%"),
        "{stderr}"
    );
}
