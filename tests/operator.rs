//! The operator surface of a real server: auth, rate limits, request ids,
//! compression, Prometheus metrics, and the CLI talking to it.

use std::io::Read;

use crate::support::{AgentsDir, Reply, Server, caxton};
use serde_json::{Value, json};

#[tokio::test]
async fn every_route_but_health_needs_the_token() {
    let server = Server::start(&AgentsDir::with_examples());
    let token = server.token.clone().expect("a token was generated");
    let stranger = crate::support::http().build().unwrap();

    let health = stranger
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    for (method, path) in [
        ("GET", "/api/v1/memory/stats"),
        ("POST", "/api/v1/agents/echo/messages"),
        ("POST", "/api/v1/memory/search"),
        ("GET", "/api/v1/no-such-route"),
    ] {
        let request = |auth: Option<&str>| {
            let builder = stranger.request(method.parse().unwrap(), server.url(path));
            match auth {
                Some(value) => builder.header("authorization", value),
                None => builder,
            }
        };
        // No header, a wrong token, and the right token without its scheme.
        for auth in [
            None,
            Some("Bearer caxton_wrong".to_owned()),
            Some(token.clone()),
        ] {
            let response = request(auth.as_deref()).send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {auth:?}");
            assert!(response.headers().contains_key("www-authenticate"));
            let reply = Reply::read(response).await;
            assert_eq!(reply.code(), "unauthorized");
        }
    }
    let right = server
        .client()
        .get(server.url("/api/v1/memory/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn a_rotated_token_takes_effect_without_a_restart() {
    let server = Server::start(&AgentsDir::new());
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let shown = caxton(&["auth", "token", "--data-dir", &data_dir]);
    assert!(shown.status.success());
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).trim(),
        server.token.as_deref().unwrap()
    );
    let rotated = caxton(&["auth", "token", "--rotate", "--data-dir", &data_dir]);
    let new_token = String::from_utf8_lossy(&rotated.stdout).trim().to_owned();
    assert_ne!(Some(new_token.as_str()), server.token.as_deref());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = |token: String| {
        let url = server.url("/api/v1/memory/stats");
        async move {
            crate::support::http()
                .build()
                .unwrap()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    while status(new_token.clone()).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "new token never accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(status(server.token.clone().unwrap()).await, 401);
}

#[tokio::test]
async fn auth_cannot_be_off_on_a_public_address() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("c.toml");
    std::fs::write(
        &config,
        "[auth]\nenabled = false\n[server]\nlisten = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    let output = caxton(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth disabled"), "{stderr}");
}

#[tokio::test]
async fn the_rate_limit_answers_429_then_recovers() {
    let server = Server::start_fresh(
        &AgentsDir::new(),
        Some(&format!(
            // One token a second: eight quick requests cannot earn a refill
            // even on a busy machine.
            "{}[http_server.rate_limit]\nper_client_rps = 1\nper_client_burst = 5\n",
            crate::support::NO_EMBEDDINGS
        )),
    );
    let client = server.client();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let response = client
            .get(server.url("/api/v1/memory/stats"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
            assert_eq!(Reply::read(response).await.code(), "rate_limited");
        }
    }
    assert_eq!(&statuses[..5], [200; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(retry_after.unwrap(), "1");
    // Health stays reachable while limited.
    let health = client
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = client
        .get(server.url("/api/v1/memory/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn request_ids_are_echoed_and_named_in_errors() {
    let server = Server::start(&AgentsDir::new());
    let client = server.client();
    let response = client
        .get(server.url("/api/v1/memory/entities/nobody"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");
    let reply = Reply::read(response).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["error"]["request_id"], "trace-abc.123");

    let response = client
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 32, "{generated}");
}

#[tokio::test]
async fn large_json_is_gzipped_for_clients_that_accept_it() {
    let server = Server::start(&AgentsDir::new());
    let client = server.client();
    for n in 0..20 {
        let body = json!({"name": format!("entity-{n}"), "entity_type": "note",
            "observations": [format!("observation number {n} with some padding text to grow the export")]});
        let response = client
            .post(server.url("/api/v1/memory/entities"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let plain = client
        .get(server.url("/api/v1/memory/export"))
        .send()
        .await
        .unwrap();
    assert!(!plain.headers().contains_key("content-encoding"));
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 2048, "export is {} bytes", plain.len());

    let zipped = client
        .get(server.url("/api/v1/memory/export"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let compressed = zipped.bytes().await.unwrap();
    assert!(compressed.len() < plain.len() / 2);
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);

    // Small bodies are not worth compressing.
    let small = client
        .get(server.url("/api/v1/memory/stats"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(!small.headers().contains_key("content-encoding"));
}

#[tokio::test]
async fn metrics_parse_and_carry_the_guides_names_after_traffic() {
    let server = Server::start(&AgentsDir::with_examples());
    let echo = server
        .send(
            "echo",
            &json!({"performative": "request", "content": {"hi": 1}}),
        )
        .await;
    assert_eq!(echo.status, 200, "{:?}", echo.body);
    let fault = server.send("no-such-agent", &json!({"content": {}})).await;
    assert_eq!(fault.status, 404);
    server
        .client()
        .post(server.url("/api/v1/memory/search"))
        .json(&json!({"query": "anything"}))
        .send()
        .await
        .unwrap();

    let url = server.metrics_url.clone().expect("metrics listener");
    // Metrics need no token: they are on their own (firewallable) listener.
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    let names: std::collections::HashSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for name in [
        "caxton_server_request_duration_seconds",
        "caxton_server_requests_total",
        "caxton_server_memory_used_bytes",
        "caxton_server_cpu_usage_percent",
        "caxton_server_active_connections",
        "caxton_server_uptime_seconds",
        "caxton_agent_config_count",
        "caxton_agent_wasm_count",
        "caxton_agent_response_time_seconds",
        "caxton_agent_fuel_consumed_total",
        "caxton_messages_processed_total",
        "caxton_memory_entities_total",
        "caxton_memory_relations_total",
        "caxton_memory_search_latency_seconds",
        "caxton_memory_sqlite_size_bytes",
        "caxton_wasm_pool_slots_in_use",
    ] {
        assert!(names.contains(name), "{name} missing from:\n{text}");
    }
    let requests = |route: &str, status: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == "caxton_server_requests_total"
                    && s.labels.get("route") == Some(route)
                    && s.labels.get("status") == Some(status)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let counted: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("caxton_server_requests_total"))
        .collect();
    assert_eq!(
        requests("/api/v1/agents/:name/messages", "200"),
        1.0,
        "{counted:#?}"
    );
    assert_eq!(requests("/api/v1/agents/:name/messages", "404"), 1.0);
    let rss = scrape
        .samples
        .iter()
        .find(|s| s.metric == "caxton_server_memory_used_bytes")
        .unwrap();
    assert!(matches!(rss.value, prometheus_parse::Value::Gauge(v) if v > 1e6));
}

#[tokio::test]
async fn the_cli_reads_memory_through_the_api_with_the_saved_token() {
    let server = Server::start(&AgentsDir::new());
    let reply = server
        .client()
        .post(server.url("/api/v1/memory/entities"))
        .json(
            &json!({"name": "oslo", "entity_type": "city", "observations": ["capital of norway"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let common = [
        "--server",
        server.base.as_str(),
        "--data-dir",
        data_dir.as_str(),
    ];

    let stats = caxton(&[&["memory", "stats", "--output", "json"][..], &common].concat());
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["entities"], 1);

    let found = caxton(&[&["memory", "search", "norway capital"][..], &common].concat());
    let table = String::from_utf8_lossy(&found.stdout);
    assert!(table.starts_with("SCORE"), "{table}");
    assert!(
        table.contains("oslo") && table.contains("capital of norway"),
        "{table}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.jsonl");
    let file = file.to_str().unwrap();
    let export = caxton(&[&["memory", "export", "--file", file][..], &common].concat());
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert!(
        std::fs::read_to_string(file)
            .unwrap()
            .contains("capital of norway")
    );
    let import = caxton(&[&["memory", "import", file, "--output", "json"][..], &common].concat());
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );

    // Without the token: exit code 4 and a hint.
    let denied = caxton(&[
        "memory",
        "stats",
        "--server",
        &server.base,
        "--data-dir",
        "/nonexistent",
    ]);
    assert_eq!(denied.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("caxton auth token"));
}

#[test]
fn the_cli_says_when_no_server_is_running() {
    let output = caxton(&["memory", "stats", "--server", "http://127.0.0.1:9"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no Caxton server answers at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(stderr.contains("caxton serve"), "{stderr}");
}

#[tokio::test]
async fn each_profile_starts_a_server_that_serves() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let mut started = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let server = Server::start_fresh(&AgentsDir::with_examples(), Some(&text));
        let reply = server
            .send(
                "echo",
                &json!({"performative": "request", "content": {"n": 1}}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}: {:?}", path.display(), reply.body);
        started += 1;
    }
    assert_eq!(started, 3);
}

#[test]
fn config_init_show_and_validate_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("caxton.toml");
    let file = file.to_str().unwrap();
    let init = caxton(&[
        "config",
        "init",
        "--profile",
        "resource-constrained",
        "--output",
        file,
    ]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    // Never overwritten by accident.
    let again = caxton(&["config", "init", "--output", file]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let valid = caxton(&["config", "validate", file]);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );

    let shown = crate::support::caxton_command()
        .args(["config", "show", "--effective", "--config", file])
        .env("CAXTON_WASM_RUNTIME__POOL_SIZE", "7")
        .output()
        .unwrap();
    let effective: toml::Table = toml::from_str(&String::from_utf8_lossy(&shown.stdout)).unwrap();
    assert_eq!(effective["wasm_runtime"]["pool_size"].as_integer(), Some(7));
    assert_eq!(
        effective["memory"]["cleanup"]["entity_limit"].as_integer(),
        Some(10000)
    );
    // Defaults the profile does not mention are shown too.
    assert!(
        effective["memory"]["sqlite_config"]
            .get("busy_timeout")
            .is_some()
    );

    std::fs::write(file, "[wasm_runtime]\npool_sise = 3\n").unwrap();
    let invalid = caxton(&["config", "validate", file]);
    assert_eq!(invalid.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(stderr.contains("line 2, column 1"), "{stderr}");
    assert!(stderr.contains("did you mean `pool_size`?"), "{stderr}");
}

#[tokio::test]
async fn readiness_needs_no_token_and_bad_queries_are_400() {
    let server = Server::start(&AgentsDir::new());
    let ready = reqwest::get(server.url("/api/v1/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["embeddings"], "disabled");
    let health = server.get_json("/api/v1/health").await;
    assert!(health["resident_memory_bytes"].as_u64().unwrap() > 1_000_000);
    for path in [
        "/api/v1/agents?foo=1",
        "/api/v1/agents?page=abc",
        "/api/v1/memory/export?embeddings=maybe",
    ] {
        let reply = Reply::read(server.client().get(server.url(path)).send().await.unwrap()).await;
        assert_eq!((reply.status, reply.code()), (400, "bad_request"), "{path}");
    }
}

#[test]
fn benchmark_results_render_and_regressions_fail_the_compare() {
    crate::support::plugins::plugin_dir();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("api.json");
    let results = results.to_str().unwrap();
    let run = caxton(&["benchmark", "api", "--requests", "100", "--output", results]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = caxton(&["benchmark", "report", results]);
    let markdown = String::from_utf8_lossy(&report.stdout);
    assert!(
        markdown.contains("## api") && markdown.contains("| api.echo.c16.p99_ms |"),
        "{markdown}"
    );

    let same = caxton(&["benchmark", "compare", "--baseline", results, results]);
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    // A baseline twice as fast makes the current run a regression.
    let mut faster: Value =
        serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
    for metric in faster["metrics"].as_array_mut().unwrap() {
        let value = metric["value"].as_f64().unwrap();
        metric["value"] = json!(if metric["better"] == "lower" {
            value / 2.0
        } else {
            value * 2.0
        });
    }
    let baseline = dir.path().join("baseline.json");
    std::fs::write(&baseline, faster.to_string()).unwrap();
    let worse = caxton(&[
        "benchmark",
        "compare",
        "--baseline",
        baseline.to_str().unwrap(),
        results,
    ]);
    assert_eq!(worse.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&worse.stdout).contains("regression: api.echo.c1.median_ms"));
}
