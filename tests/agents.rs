//! Deployment while serving: hot reload from the agents directory under
//! load, refused changes, and the agents API with persistence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{AgentsDir, Reply, Server, caxton, component};
use base64::Engine;
use serde_json::{Value, json};

fn hot_manifest(version: &str, extra: &str) -> String {
    format!(
        "name = \"hot\"\nversion = \"{version}\"\ncapabilities = [\"echo\"]\ncomponent = \"hot.wasm\"\ngrants = [\"log\"]\n{extra}"
    )
}

/// Polls the agent until `check` holds (or 10 s pass); returns the last view.
async fn wait_for(server: &Server, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = server.get_json(&format!("/api/v1/agents/{name}")).await;
        if check(&view) || Instant::now() > deadline {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn hot_reload_swaps_under_load_without_a_failed_request() {
    let agents = AgentsDir::new().with("hot", &hot_manifest("0.1.0", ""));
    std::fs::copy(component("echo"), agents.path().join("hot.wasm")).unwrap();
    // The load below is far above the default per-client rate limit.
    let config = format!(
        "{}[http_server.rate_limit]\nenabled = false\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&agents, Some(&config));

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (server.client(), server.url("/api/v1/agents/hot/messages"));
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let response = client
                        .post(&url)
                        .json(&json!({"content": {"n": 1}}))
                        .send()
                        .await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    match response {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => {
                            let n = failed.fetch_add(1, Ordering::Relaxed);
                            if n < 3 {
                                eprintln!(
                                    "failed: {} {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                );
                            }
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("failed: {e}");
                        }
                    }
                }
            })
        })
        .collect();

    let mut reloads = Vec::new();
    for version in ["0.2.0", "0.3.0", "0.4.0"] {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        std::fs::write(agents.path().join("hot.toml"), hot_manifest(version, "")).unwrap();
        let view = wait_for(&server, "hot", |v| v["version"] == version).await;
        assert_eq!(view["version"], version, "{view}");
        reloads.push(started.elapsed());
    }

    // An invalid change keeps the old version serving and says why.
    std::fs::write(
        agents.path().join("hot.toml"),
        hot_manifest("0.5.0", "").replace("grants", "grantz"),
    )
    .unwrap();
    let view = wait_for(&server, "hot", |v| v["status"] == "degraded").await;
    assert_eq!(
        (view["status"].as_str(), view["version"].as_str()),
        (Some("degraded"), Some("0.4.0")),
        "{view}"
    );
    assert!(
        view["reload_error"]
            .as_str()
            .unwrap()
            .contains("did you mean `grants`?"),
        "{view}"
    );
    // A component that imports what the manifest does not grant is refused too.
    std::fs::write(agents.path().join("hot.toml"), hot_manifest("0.5.0", "")).unwrap();
    wait_for(&server, "hot", |v| {
        v["version"] == "0.5.0" && v["status"] == "running"
    })
    .await;
    std::fs::copy(component("relay"), agents.path().join("hot.wasm")).unwrap();
    let view = wait_for(&server, "hot", |v| v["status"] == "degraded").await;
    assert!(
        view["reload_error"].as_str().unwrap().contains("messaging"),
        "{view}"
    );
    let reply = server
        .send("hot", &json!({"content": {"still": "echo"}}))
        .await;
    assert_eq!(reply.body["reply"]["content"], json!({"still": "echo"}));

    // A valid new component takes over.
    std::fs::copy(component("faults"), agents.path().join("hot.wasm")).unwrap();
    wait_for(&server, "hot", |v| v["status"] == "running").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.send("hot", &json!({"content": {}})).await;
        if reply.body["reply"]["content"] == json!({"ok": true}) {
            break;
        }
        assert!(Instant::now() < deadline, "the new component never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "only {sent} requests were sent");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during reloads"
    );
    assert!(server.log().contains("reload refused"));
    eprintln!("reload latencies (file write to new version visible): {reloads:?}");

    // Saving the same content again swaps nothing.
    let reloads_before = server.log().matches("agent reloaded").count();
    let same = std::fs::read(agents.path().join("hot.toml")).unwrap();
    std::fs::write(agents.path().join("hot.toml"), &same).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reloads_after = server.log().matches("agent reloaded").count();
    assert!(
        reloads_after <= reloads_before + 1,
        "{reloads_before} -> {reloads_after}"
    );
    std::fs::write(agents.path().join("hot.toml"), &same).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.log().matches("agent reloaded").count(),
        reloads_after
    );

    // An explicit reload through the CLI.
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let reloaded = caxton(&[
        "agents",
        "reload",
        "hot",
        "--server",
        &server.base,
        "--data-dir",
        &data_dir,
    ]);
    assert!(
        reloaded.status.success(),
        "{}",
        String::from_utf8_lossy(&reloaded.stderr)
    );
    assert!(String::from_utf8_lossy(&reloaded.stdout).starts_with("reloaded hot in"));

    // Deleting the file removes the agent.
    std::fs::remove_file(agents.path().join("hot.toml")).unwrap();
    let view = wait_for(&server, "hot", |v| v["error"]["code"] == "agent_not_found").await;
    assert_eq!(view["error"]["code"], "agent_not_found");
}

fn deploy_body(manifest: &str, plugin: &str) -> Value {
    let bytes = std::fs::read(component(plugin)).unwrap();
    json!({
        "manifest": manifest,
        "component": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

#[tokio::test]
async fn the_agents_api_deploys_lists_replaces_and_removes_and_deployments_persist() {
    let data = tempfile::tempdir().unwrap();
    let agents = AgentsDir::with_examples();
    let config = Some(crate::support::NO_EMBEDDINGS);
    let server = Server::start_with(&agents, data.path(), config);
    let client = server.client();
    let manifest = "name = \"greeter\"\nversion = \"1.0.0\"\ncapabilities = [\"greeting\", \"echo\"]\ngrants = [\"log\"]\n";

    let created = Reply::read(
        client
            .post(server.url("/api/v1/agents"))
            .json(&deploy_body(manifest, "echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["agent"]["version"], "1.0.0");
    let again = Reply::read(
        client
            .post(server.url("/api/v1/agents"))
            .json(&deploy_body(manifest, "echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    again.assert_error(409, "agent_exists");

    let reply = server.send("greeter", &json!({"content": "hello"})).await;
    assert_eq!(reply.body["reply"]["content"], "hello");

    // Filters and pagination.
    let response = client
        .get(server.url("/api/v1/agents?capability=echo&page_size=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "2");
    assert_eq!(response.headers()["x-page-size"], "1");
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["agents"].as_array().unwrap().len(), 1);
    let page2 = server
        .get_json("/api/v1/agents?capability=echo&page_size=1&page=2")
        .await;
    let names: Vec<&str> = [&page, &page2]
        .iter()
        .map(|p| p["agents"][0]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "greeter"]);

    // Replace with a new version and another component.
    let replaced = Reply::read(
        client
            .put(server.url("/api/v1/agents/greeter"))
            .json(&deploy_body(&manifest.replace("1.0.0", "1.1.0"), "faults"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(replaced.status, 200, "{:?}", replaced.body);
    let reply = server.send("greeter", &json!({"content": {}})).await;
    assert_eq!(reply.body["reply"]["content"], json!({"ok": true}));
    let shown = server.get_json("/api/v1/agents/greeter").await;
    assert_eq!(shown["version"], "1.1.0");
    assert!(
        shown["counters"]["messages"].as_u64().unwrap() >= 2,
        "{shown}"
    );

    // Agents from files are changed through their files.
    let refused = Reply::read(
        client
            .delete(server.url("/api/v1/agents/echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    refused.assert_error(409, "defined_by_file");

    // Broken manifests are refused with located problems, nothing changes.
    let broken = Reply::read(
        client
            .put(server.url("/api/v1/agents/greeter"))
            .json(&deploy_body(
                "name = \"greeter\"\nversion = \"x\"\ncapabilities = [\"greeting\"]\n",
                "echo",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(broken.status, 422, "{:?}", broken.body);
    assert_eq!(broken.body["error"]["details"]["problems"][0]["line"], 2);

    // Restart: the API deployment comes back from the store.
    drop(server);
    let server = Server::start_with(&agents, data.path(), config);
    let shown = server.get_json("/api/v1/agents/greeter").await;
    assert_eq!(shown["version"], "1.1.0", "{shown}");
    let removed = Reply::read(
        server
            .client()
            .delete(server.url("/api/v1/agents/greeter"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(removed.status, 200);
    drop(server);
    let server = Server::start_with(&agents, data.path(), config);
    let gone = server.get_json("/api/v1/agents/greeter").await;
    assert_eq!(gone["error"]["code"], "agent_not_found");
}

#[tokio::test]
async fn validation_reports_every_problem_with_its_place() {
    let server = Server::start(&AgentsDir::with_examples());
    let text = "name = \"Bad_Name\"\nversion = \"one\"\ncapabilities = [\"x\"]\ntools = [\"no_such_tool\"]\ngrants = [\"log\", \"tools\"]\ncomponent = \"x.wasm\"\ntimeout = 3\n[performance]\nlazy_tool_loading = true\n";
    let reply = Reply::read(
        server
            .client()
            .post(server.url("/api/v1/agents/validate"))
            .header("content-type", "application/toml")
            .body(text)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["valid"], false);
    let problems: Vec<String> = reply.body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}:{} {}", p["line"], p["column"], p["message"]))
        .collect();
    let all = problems.join("\n");
    assert!(all.contains("1:1"), "{all}");
    assert!(all.contains("2:1"), "{all}");
    assert!(all.contains("7:1"), "{all}");
    assert!(
        reply.body["warnings"].to_string().contains("performance"),
        "{}",
        reply.body
    );

    let good = "name = \"fine-agent\"\nversion = \"1.0.0\"\ncapabilities = [\"x\"]\n";
    let reply = Reply::read(
        server
            .client()
            .post(server.url("/api/v1/agents/validate"))
            .json(&json!({"manifest": good}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // No component named: valid as far as the manifest goes; the upload supplies it.
    assert!(
        reply.body["problems"].to_string().contains("component"),
        "{}",
        reply.body
    );
}

#[test]
fn agents_validate_works_offline_and_locates_problems() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifests");
    let broken = caxton(&[
        "agents",
        "validate",
        fixtures.join("several-problems.toml").to_str().unwrap(),
    ]);
    assert_eq!(broken.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(stderr.contains("several-problems.toml: line "), "{stderr}");

    // A real manifest with its real component, compiled and checked.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("ok.toml");
    std::fs::write(
        &manifest,
        crate::support::manifest(
            "ok-agent",
            "echo",
            "capabilities = [\"echo\"]\ngrants = [\"log\"]",
        ),
    )
    .unwrap();
    let ok = caxton(&["agents", "validate", manifest.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The relay component imports messaging, which this manifest does not grant.
    std::fs::write(
        &manifest,
        crate::support::manifest(
            "ok-agent",
            "relay",
            "capabilities = [\"echo\"]\ngrants = [\"log\"]",
        ),
    )
    .unwrap();
    let refused = caxton(&["agents", "validate", manifest.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("messaging"));
}

#[tokio::test]
async fn the_cli_deploys_sends_and_reads_conversations() {
    let server = Server::start(&AgentsDir::with_examples());
    let data_dir = server.data_dir.to_str().unwrap().to_owned();
    let common = [
        "--server",
        server.base.as_str(),
        "--data-dir",
        data_dir.as_str(),
    ];
    let run = |args: &[&str]| caxton(&[args, &common[..]].concat());

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("shouter.toml");
    std::fs::write(
        &manifest,
        crate::support::manifest(
            "shouter",
            "echo",
            "capabilities = [\"shout\"]\ngrants = [\"log\"]",
        ),
    )
    .unwrap();
    let deployed = run(&["agents", "deploy", manifest.to_str().unwrap()]);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert!(String::from_utf8_lossy(&deployed.stdout).contains("deployed shouter 0.1.0"));

    let listed = run(&["agents", "list", "--capability", "shout"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("shouter") && !table.contains("analyst"),
        "{table}"
    );
    let status = run(&["agents", "status", "shouter"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("shouter 0.1.0 running"));

    let sent = run(&[
        "send",
        "--capability",
        "shout",
        "--content",
        "{\"hey\": 1}",
        "--output",
        "json",
    ]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let answer: Value = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(answer["reply"]["content"], json!({"hey": 1}));
    let conversation = answer["conversation_id"].as_str().unwrap();
    let thread = run(&["conversations", "show", conversation]);
    let text = String::from_utf8_lossy(&thread.stdout);
    assert!(
        text.contains("client → shouter") && text.contains("shouter → client"),
        "{text}"
    );

    let summary = run(&["agents", "performance-summary", "--show-slowest", "2"]);
    assert!(String::from_utf8_lossy(&summary.stdout).starts_with("AGENT"));
    let health = run(&["health"]);
    assert!(String::from_utf8_lossy(&health.stdout).starts_with("ok"));
    let removed = run(&["agents", "remove", "shouter"]);
    assert!(removed.status.success());
    let missing = run(&["agents", "show", "shouter"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("agent_not_found"));
}

#[tokio::test]
async fn max_agents_is_enforced_for_api_deployments() {
    let config = format!(
        "{}[agents]\nmax_agents = 3\n",
        crate::support::NO_EMBEDDINGS
    );
    // echo, csv_parser and analyst fill the three places.
    let server = Server::start_fresh(&AgentsDir::with_examples(), Some(&config));
    let manifest =
        "name = \"one-more\"\nversion = \"1.0.0\"\ncapabilities = [\"x\"]\ngrants = [\"log\"]\n";
    let refused = Reply::read(
        server
            .client()
            .post(server.url("/api/v1/agents"))
            .json(&deploy_body(manifest, "echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "agent_limit"),
        "{:?}",
        refused.body
    );
}
