//! MCP servers as agents' tools (`[[mcp.servers]]`): the npm reference
//! memory server (`@modelcontextprotocol/server-memory`, installed by
//! `scripts/mcp-servers install`) started by the host over stdio, used by
//! a configuration agent, killed mid-run and restarted; and a server that
//! answers garbage. The model is the scripted provider: a real model
//! cannot be steered into exact tool calls.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{AgentsDir, Server, tool_results};
use caxton::harness::scripted_llm::{Answer, ScriptedLlm};

/// A configuration agent that may call `tools`.
fn keeper(tools: &str) -> String {
    format!(
        "name = \"keeper\"\nversion = \"1.0.0\"\ncapabilities = [\"note-taking\"]\ntools = {tools}\nsystem_prompt = \"You keep notes in a knowledge graph.\"\n\n[memory]\nenabled = false\n"
    )
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `[[mcp.servers]]` for the reference memory server writing `file`.
fn memory_server(file: &Path) -> String {
    let script = root().join("scripts/mcp-servers");
    assert!(
        root()
            .join("tests/mcp-servers/node_modules/@modelcontextprotocol/server-memory")
            .exists(),
        "the reference MCP memory server is not installed: run ./scripts/setup (scripts/mcp-servers install)"
    );
    format!(
        "[[mcp.servers]]\nname = \"memory\"\ncommand = \"{}\"\nargs = [\"memory\"]\nenv = {{ MEMORY_FILE_PATH = \"{}\" }}\ncall_timeout = \"20s\"\nmax_restart_backoff = \"2s\"\n",
        script.display(),
        file.display()
    )
}

/// The state of server `name` in `GET /api/v1/mcp/servers`.
async fn server_state(server: &Server, name: &str) -> Value {
    let list = server.get_json("/api/v1/mcp/servers").await;
    list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no server {name} in {list}"))
}

/// Waits until server `name` is `state` with at least `restarts`.
async fn wait_for(server: &Server, name: &str, state: &str, restarts: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = server_state(server, name).await;
        if status["state"] == state && status["restarts"].as_u64() >= Some(restarts) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "MCP server {name} never became {state} (restarts >= {restarts}): {status}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_agent_uses_the_reference_memory_server_and_survives_its_death() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.jsonl");
    let create = r#"{"entities": [{"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]}"#;
    let open = r#"{"names": ["Ada"]}"#;
    let llm = ScriptedLlm::start(vec![
        Answer::Calls(vec![("c1", "memory__create_entities", create)]),
        Answer::Calls(vec![("c2", "memory__open_nodes", open)]),
        Answer::Text("noted"),
    ])
    .await;
    let config = llm.config(&memory_server(&file));
    let server = Server::start_fresh(
        &AgentsDir::new().with(
            "keeper",
            &keeper(r#"["memory/create_entities", "memory/open_nodes"]"#),
        ),
        Some(&config),
    );
    let ready = wait_for(&server, "memory", "ready", 0).await;
    assert_eq!(ready["transport"], "stdio");
    assert!(
        ready["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("open_nodes")),
        "{ready}"
    );

    let reply = server
        .send("keeper", &json!({"content": "Remember Ada."}))
        .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    assert_eq!(reply.body["reply"]["content"]["answer"], "noted");
    assert_eq!(
        reply.body["reply"]["content"]["tools_used"],
        json!(["memory/create_entities", "memory/open_nodes"])
    );
    let requests = llm.requests();
    // The model was offered the server's tools under function names it
    // accepts, with the server's own schemas.
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, ["memory__create_entities", "memory__open_nodes"]);
    assert!(requests[0]["tools"][1]["function"]["parameters"]["properties"]["names"].is_object());
    assert!(
        tool_results(&requests[1])[0].1.contains("Ada"),
        "{}",
        requests[1]
    );
    assert!(
        tool_results(&requests[2])[1]
            .1
            .contains("wrote the first program"),
        "{}",
        requests[2]
    );
    // The reference server wrote its own file.
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("\"Ada\""), "{written}");

    // Killed mid-run: the next call is a typed error, at once.
    let pid = ready["pid"].as_u64().expect("a stdio server has a pid") as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    llm.clear_requests();
    llm.script(vec![
        Answer::Calls(vec![("c3", "memory__open_nodes", open)]),
        Answer::Text("checked"),
    ]);
    let started = Instant::now();
    let reply = server
        .send("keeper", &json!({"content": "Is Ada there?"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let result = &tool_results(&llm.requests()[1])[0].1;
    assert!(
        // "is down", or "failed the call" when the call raced the exit.
        result.contains("Unavailable") && result.contains("MCP server \\\"memory\\\""),
        "the model is told the server is unavailable: {result}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let metrics = server.metrics().await;
    for line in [
        "caxton_mcp_tool_calls_total{outcome=\"ok\",server=\"memory\"} 2",
        "caxton_mcp_tool_calls_total{outcome=\"unavailable\",server=\"memory\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }

    // Restarted by the host, with what it had written.
    let restarted = wait_for(&server, "memory", "ready", 1).await;
    assert_ne!(restarted["pid"], ready["pid"]);
    llm.clear_requests();
    llm.script(vec![
        Answer::Calls(vec![("c4", "memory__open_nodes", open)]),
        Answer::Text("still there"),
    ]);
    let reply = server.send("keeper", &json!({"content": "And now?"})).await;
    assert_eq!(reply.body["reply"]["content"]["answer"], "still there");
    let result = &tool_results(&llm.requests()[1])[0].1;
    assert!(result.contains("wrote the first program"), "{result}");

    // The CLI shows it.
    let output = crate::support::caxton(&[
        "mcp",
        "servers",
        "--server",
        &server.url(""),
        "--token",
        server.token.as_deref().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("memory") && text.contains("ready"), "{text}");
}

#[tokio::test]
async fn a_server_that_answers_garbage_is_down_with_a_reason_and_calls_fail_fast() {
    let llm = ScriptedLlm::start(vec![
        Answer::Calls(vec![("c1", "broken__anything", "{}")]),
        Answer::Text("gave up"),
    ])
    .await;
    let config = llm.config(
        "[[mcp.servers]]\nname = \"broken\"\ncommand = \"sh\"\nargs = [\"-c\", \"while true; do echo not-json-rpc; sleep 0.2; done\"]\nstart_timeout = \"2s\"\nmax_restart_backoff = \"30s\"\n",
    );
    let server = Server::start_fresh(
        &AgentsDir::new().with("keeper", &keeper(r#"["broken/anything"]"#)),
        Some(&config),
    );
    let down = wait_for(&server, "broken", "down", 0).await;
    assert!(
        down["error"].as_str().unwrap().contains("start_timeout"),
        "{down}"
    );
    let started = Instant::now();
    let reply = server.send("keeper", &json!({"content": "try it"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A server that never listed its tools offers none: the model is told
    // so instead of the call hanging on it.
    let result = &tool_results(&llm.requests()[1])[0].1;
    assert!(
        result.contains("no function named \"broken__anything\""),
        "{result}"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("caxton_mcp_server_up{server=\"broken\"} 0"),
        "{metrics}"
    );
    let status = crate::support::caxton(&[
        "mcp",
        "servers",
        "--output",
        "json",
        "--server",
        &server.url(""),
        "--token",
        server.token.as_deref().unwrap(),
    ]);
    let listed: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(listed["servers"][0]["state"], "down", "{listed}");
}
