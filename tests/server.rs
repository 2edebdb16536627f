//! End-to-end: a real `caxton serve` on loopback running real components
//! built from `plugins/`.

use crate::support::{AgentsDir, Server, manifest};
use serde_json::{Value, json};

fn fault_agents() -> AgentsDir {
    let faults = |name: &str, limits: &str| {
        manifest(
            name,
            "faults",
            &format!("capabilities = [\"faults\"]\n[resource_limits]\n{limits}"),
        )
    };
    AgentsDir::with_examples()
        .with(
            "fault-fuel",
            &faults(
                "fault-fuel",
                "fuel = 5_000_000\nexecution_timeout = \"20s\"",
            ),
        )
        .with(
            "fault-deadline",
            &faults(
                "fault-deadline",
                "fuel = 10_000_000_000_000\nexecution_timeout = \"300ms\"",
            ),
        )
        .with(
            "fault-memory",
            &faults(
                "fault-memory",
                "memory_mb = 8\nfuel = 10_000_000_000\nexecution_timeout = \"20s\"",
            ),
        )
        .with("fault-trap", &faults("fault-trap", ""))
}

async fn assert_echo_works(server: &Server) {
    let reply = server
        .send("echo", &json!({"content": "still alive"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["reply"]["content"], "still alive");
}

#[tokio::test]
async fn echo_round_trip_returns_the_content_and_the_usage() {
    let server = Server::start(&AgentsDir::with_examples());
    let request = json!({
        "id": "m-1",
        "performative": "request",
        "sender": "tester",
        "conversation_id": "c-9",
        "content": {"text": "hello", "n": [1, 2, 3]}
    });
    let reply = server.send("echo", &request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message = &reply.body["reply"];
    assert_eq!(message["performative"], "inform");
    assert_eq!(message["sender"], "echo");
    assert_eq!(message["receiver"], "tester");
    assert_eq!(message["in_reply_to"], "m-1");
    assert_eq!(message["conversation_id"], "c-9");
    assert_eq!(message["content"], request["content"]);
    let usage = &reply.body["usage"];
    assert!(usage["fuel_consumed"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["peak_memory_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["wall_time_us"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        server
            .wait_for_log("echoing message m-1")
            .contains("plugin=\"echo\"")
    );
}

#[tokio::test]
async fn the_analyst_agent_calls_the_csv_tool() {
    let server = Server::start(&AgentsDir::with_examples());
    let csv = "name,age,city\nann,31,Oslo\nbob,45,\ncid,29,Lima\n";
    let reply = server
        .send("analyst", &json!({"content": {"csv": csv}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let summary = &reply.body["reply"]["content"];
    assert_eq!(summary["columns"], json!(["name", "age", "city"]));
    assert_eq!(summary["row_count"], 3);
    assert_eq!(
        summary["rows"][1],
        json!({"name": "bob", "age": 45.0, "city": null})
    );
    let age = &summary["stats"]["age"];
    assert_eq!(age["min"], 29.0);
    assert_eq!(age["max"], 45.0);
    assert_eq!(age["mean"], 35.0);
    assert_eq!(summary["stats"]["city"]["empty"], 1);

    // A tool error comes back as the agent's error, with the tool's reason.
    let reply = server
        .send("analyst", &json!({"content": {"csv": "a,b\n1,2,3\n"}}))
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.code(), "plugin_error");
    assert_eq!(reply.body["error"]["details"]["kind"], "invalid-input");
}

#[tokio::test]
async fn runaway_plugins_are_stopped_with_distinct_errors_and_the_host_keeps_serving() {
    let server = Server::start(&fault_agents());

    let reply = server
        .send("fault-fuel", &json!({"content": {"fault": "loop"}}))
        .await;
    reply.assert_error(422, "out_of_fuel");
    let fuel = reply.body["error"]["details"]["usage"]["fuel_consumed"].as_u64();
    assert_eq!(fuel, Some(5_000_000));
    assert_echo_works(&server).await;

    let reply = server
        .send("fault-deadline", &json!({"content": {"fault": "loop"}}))
        .await;
    reply.assert_error(504, "deadline_exceeded");
    let wall_us = reply.body["error"]["details"]["usage"]["wall_time_us"]
        .as_u64()
        .unwrap();
    assert!(
        (300_000..3_000_000).contains(&wall_us),
        "stopped after {wall_us} µs"
    );
    assert_echo_works(&server).await;

    let reply = server
        .send("fault-memory", &json!({"content": {"fault": "alloc"}}))
        .await;
    reply.assert_error(422, "memory_limit_exceeded");
    let peak = reply.body["error"]["details"]["usage"]["peak_memory_bytes"]
        .as_u64()
        .unwrap();
    assert!(peak <= 8 << 20, "peak {peak} is over the 8 MiB cap");
    assert_echo_works(&server).await;

    let reply = server
        .send("fault-trap", &json!({"content": {"fault": "panic"}}))
        .await;
    reply.assert_error(422, "plugin_trap");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("fault plugin asked to panic"), "{message}");
    assert_echo_works(&server).await;

    let reply = server
        .send("fault-trap", &json!({"content": {"fault": "recurse"}}))
        .await;
    reply.assert_error(422, "plugin_trap");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("stack overflow"), "{message}");
    assert_echo_works(&server).await;

    // The same faulty agent answers normally when asked nicely.
    let reply = server.send("fault-trap", &json!({"content": {}})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn a_full_pool_answers_503_with_retry_after() {
    let agents = fault_agents();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &agents,
        data.path(),
        Some(&format!(
            "{}[wasm_runtime]\npool_size = 2\nmax_slots_per_plugin = 4\n",
            crate::support::NO_EMBEDDINGS
        )),
    );
    let url = server.url("/api/v1/agents/fault-deadline/messages");
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let request = server
                .client()
                .post(&url)
                .json(&json!({"content": {"fault": "loop"}}));
            tokio::spawn(
                async move { crate::support::Reply::read(request.send().await.unwrap()).await },
            )
        })
        .collect();
    let mut replies = Vec::new();
    for call in calls {
        replies.push(call.await.unwrap());
    }
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "4 calls on 2 slots: expected some 503s");
    for reply in &busy {
        assert_eq!(reply.code(), "pool_exhausted");
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }
    assert!(replies.iter().all(|r| r.status == 503 || r.status == 504));
    // Slots come back once the calls end.
    assert_echo_works(&server).await;
}

#[tokio::test]
async fn a_second_start_compiles_nothing() {
    let agents = AgentsDir::with_examples();
    let data = tempfile::tempdir().unwrap();

    let first = Server::start_with(&agents, data.path(), Some(crate::support::NO_EMBEDDINGS));
    let log = first.wait_for_log("plugins loaded");
    // The three examples and the built-in http_client.
    assert!(log.contains("compiled=4 from_cache=0"), "{log}");
    assert!(first.terminate().success());

    let second = Server::start_with(&agents, data.path(), Some(crate::support::NO_EMBEDDINGS));
    let log = second.wait_for_log("plugins loaded");
    assert!(log.contains("compiled=0 from_cache=4"), "{log}");
    assert_echo_works(&second).await;
}

#[tokio::test]
async fn an_ungranted_import_is_refused_at_load_naming_the_interface() {
    // The analyst imports `tools`; this manifest only grants `log`.
    let agents = AgentsDir::with_examples().with(
        "sneaky",
        &manifest(
            "sneaky",
            "analyst",
            "capabilities = [\"data-processing\"]\ngrants = [\"log\"]",
        ),
    );
    let server = Server::start(&agents);
    let log = server.wait_for_log("sneaky");
    assert!(
        log.contains("imports `caxton:agent/tools@0.2.0`, which its manifest does not grant"),
        "{log}"
    );
    let reply = server.send("sneaky", &json!({"content": {}})).await;
    reply.assert_error(404, "agent_not_found");
    // The valid agents still serve.
    let health = server.get_json("/api/v1/health").await;
    assert_eq!(health["agents"], 2);
    assert_echo_works(&server).await;
}

#[tokio::test]
async fn health_reports_status_version_and_agents() {
    let server = Server::start(&AgentsDir::with_examples());
    let response = server
        .client()
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["agents"], 2);
    assert!(health["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn bad_requests_get_the_error_shape_with_fitting_statuses() {
    let server = Server::start(&AgentsDir::with_examples());
    let client = server.client();
    let post = |path: &str, body: Vec<u8>| {
        client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let reply = crate::support::Reply::read(
        post("/api/v1/agents/echo/messages", b"{not json".to_vec())
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(400, "bad_request");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );

    let body = br#"{"performative": "shout", "content": 1}"#.to_vec();
    let reply =
        crate::support::Reply::read(post("/api/v1/agents/echo/messages", body).await.unwrap())
            .await;
    reply.assert_error(400, "bad_request");

    let reply = crate::support::Reply::read(
        post(
            "/api/v1/agents/nobody/messages",
            b"{\"content\":1}".to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    reply.assert_error(404, "agent_not_found");

    let reply = crate::support::Reply::read(
        client
            .get(server.url("/api/v1/nothing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(404, "route_not_found");

    // Last on this client: the server closes a connection whose oversized
    // body it refused, so a pooled connection must not be reused after it.
    let huge = vec![b' '; 2 * 1024 * 1024];
    let reply =
        crate::support::Reply::read(post("/api/v1/agents/echo/messages", huge).await.unwrap())
            .await;
    reply.assert_error(413, "payload_too_large");

    assert_echo_works(&server).await;
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let server = Server::start(&AgentsDir::with_examples());
    assert_echo_works(&server).await;
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
}
