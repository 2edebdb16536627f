//! Configuration agents against a scripted OpenAI-compatible provider:
//! the protocol cases (tool-call loops, parallel calls, malformed
//! arguments, retries, a provider that hangs or floods) that a real model
//! cannot be steered into. The real model's end-to-end tests are in
//! `llm_real.rs`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{AgentsDir, Reply, Server, manifest, tool_results};
use caxton::harness::scripted_llm::{Answer, ScriptedLlm};

/// The csv tool and a configuration agent that may call it.
fn agents_with(prompt_agent: &str) -> AgentsDir {
    AgentsDir::new()
        .with(
            "csv_parser",
            &manifest("csv_parser", "csv_parser", "kind = \"tool\""),
        )
        .with("helper", prompt_agent)
}

const HELPER: &str = r#"
name = "helper"
version = "1.0.0"
capabilities = ["data-processing"]
tools = ["csv_parser"]
system_prompt = "You analyse CSV files."

[memory]
enabled = false
"#;

fn answer_of(reply: &Reply) -> &str {
    reply.body["reply"]["content"]["answer"]
        .as_str()
        .unwrap_or_else(|| panic!("no answer in {}", reply.body))
}

/// Asserts `reply` is a plugin error of `kind` whose message contains
/// every one of `words`.
#[track_caller]
fn assert_plugin_error(reply: &Reply, kind: &str, words: &[&str]) {
    reply.assert_error(422, "plugin_error");
    assert_eq!(
        reply.body["error"]["details"]["kind"], kind,
        "{}",
        reply.body
    );
    let message = reply.body["error"]["message"].as_str().unwrap();
    for word in words {
        assert!(message.contains(word), "{word:?} not in: {message}");
    }
}

#[tokio::test]
async fn a_configuration_agent_calls_its_tool_and_answers_with_the_result() {
    let llm = ScriptedLlm::start(vec![
        Answer::Calls(vec![(
            "call-1",
            "csv_parser",
            r#"{"csv": "city,people\nOslo,700\nBergen,290"}"#,
        )]),
        Answer::Text("Two cities; Oslo is the larger."),
    ])
    .await;
    let server = Server::start_fresh(&agents_with(HELPER), Some(&llm.config("")));
    let reply = server
        .send("helper", &json!({"content": "Which city is larger?"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(answer_of(&reply), "Two cities; Oslo is the larger.");
    assert_eq!(
        reply.body["reply"]["content"]["tools_used"],
        json!(["csv_parser"])
    );
    assert_eq!(reply.body["reply"]["performative"], "inform");

    let requests = llm.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    // The first request: the system prompt, the question, the tool offered
    // with the schema its `describe` gives, under the configured model.
    let first = &requests[0];
    assert_eq!(first["model"], "scripted-model");
    assert_eq!(first["messages"][0]["role"], "system");
    assert_eq!(first["messages"][0]["content"], "You analyse CSV files.");
    assert_eq!(
        first["messages"].as_array().unwrap().last().unwrap()["content"],
        "Which city is larger?"
    );
    let tool = &first["tools"][0]["function"];
    assert_eq!(tool["name"], "csv_parser");
    assert!(
        tool["parameters"]["properties"]["csv"].is_object(),
        "{tool}"
    );
    // The second carries the tool's real output, answering the call's id.
    let results = tool_results(&requests[1]);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, "call-1");
    let output: Value = serde_json::from_str(&results[0].1).unwrap();
    assert_eq!(output["rows"][0]["city"], "Oslo", "{output}");

    // Operators see the kind of agent, the tokens and the tool timing.
    let shown = server.get_json("/api/v1/agents/helper").await;
    assert_eq!(shown["runs"], "configuration", "{shown}");
    let metrics = server.metrics().await;
    assert!(metrics.contains("caxton_agent_config_count 1"), "{metrics}");
    // The csv tool and the built-in http_client.
    assert!(metrics.contains("caxton_agent_wasm_count 2"), "{metrics}");
    assert!(
        metrics.contains(r#"caxton_llm_tokens_total{kind="completion",model="scripted-model",provider="scripted"} 10"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"caxton_agent_tool_call_duration_seconds_count{agent="helper",tool="csv_parser"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn parallel_calls_bad_arguments_and_unknown_tools_come_back_as_tool_results() {
    let llm = ScriptedLlm::start(vec![
        Answer::Calls(vec![
            ("a", "csv_parser", r#"{"csv": "x\n1"}"#),
            ("b", "csv_parser", r#"{"csv": "y\n2"}"#),
            ("c", "csv_parser", "not json at all"),
            ("d", "rm_rf", "{}"),
        ]),
        Answer::Text("done"),
    ])
    .await;
    let server = Server::start_fresh(&agents_with(HELPER), Some(&llm.config("")));
    let reply = server.send("helper", &json!({"content": "go"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(answer_of(&reply), "done");
    let results = tool_results(&llm.requests()[1]);
    let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"], "one result per call, in order");
    assert!(results[0].1.contains("\"x\""), "{}", results[0].1);
    assert!(results[1].1.contains("\"y\""), "{}", results[1].1);
    assert!(
        results[2].1.contains("not a JSON object"),
        "{}",
        results[2].1
    );
    // The model's words never widen the allowlist.
    assert!(
        results[3].1.contains("no function named \"rm_rf\""),
        "{}",
        results[3].1
    );
}

#[tokio::test]
async fn a_model_that_never_stops_calling_tools_ends_in_a_failure_reply() {
    let llm = ScriptedLlm::start(vec![Answer::Calls(vec![(
        "loop",
        "csv_parser",
        r#"{"csv": "a\n1"}"#,
    )])])
    .await;
    let agent = HELPER.replace("[memory]", "[parameters]\nmax_steps = 3\n\n[memory]");
    let server = Server::start_fresh(&agents_with(&agent), Some(&llm.config("")));
    let reply = server.send("helper", &json!({"content": "go"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["reply"]["performative"], "failure");
    let error = reply.body["reply"]["content"]["error"].as_str().unwrap();
    assert!(error.contains("after 3 model calls"), "{error}");
    assert_eq!(llm.requests().len(), 3);
    // Through the OpenAI-compatible front the same turn is an error.
    let front = server
        .post(
            "/api/v1/chat/completions",
            json!({"model": "helper", "messages": [{"role": "user", "content": "go"}]}),
        )
        .await;
    front.assert_error(422, "agent_failure");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let llm = ScriptedLlm::start(vec![
        Answer::Status(429, r#"{"error": {"message": "slow down"}}"#, Some(1)),
        Answer::Status(503, "overloaded", None),
        Answer::Text("after the retries"),
    ])
    .await;
    let server = Server::start_fresh(&agents_with(HELPER), Some(&llm.config("")));
    let started = Instant::now();
    let reply = server.send("helper", &json!({"content": "hi"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(answer_of(&reply), "after the retries");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not waited for ({:?})",
        started.elapsed()
    );
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test]
async fn provider_failures_are_typed_and_say_what_to_do() {
    // A server that keeps failing: unavailable, after the retries.
    let failing = ScriptedLlm::start(vec![Answer::Status(500, "boom", None)]).await;
    let server = Server::start_fresh(&agents_with(HELPER), Some(&failing.config("")));
    let reply = server.send("helper", &json!({"content": "hi"})).await;
    assert_plugin_error(
        &reply,
        "unavailable",
        &["500", "[llm.providers.scripted] base_url"],
    );
    assert_eq!(failing.requests().len(), 3, "one try and two retries");

    // A 4xx is the request's fault: not retried, the provider's words kept.
    let refusing = ScriptedLlm::start(vec![Answer::Status(
        400,
        r#"{"error": {"message": "model 'scripted-model' not found"}}"#,
        None,
    )])
    .await;
    let server = Server::start_fresh(&agents_with(HELPER), Some(&refusing.config("")));
    let reply = server.send("helper", &json!({"content": "hi"})).await;
    assert_plugin_error(
        &reply,
        "invalid-input",
        &["model 'scripted-model' not found"],
    );
    assert_eq!(refusing.requests().len(), 1);

    // A server that hangs: a timeout naming the key that sets it.
    let hanging = ScriptedLlm::start(vec![Answer::Hang]).await;
    let server = Server::start_fresh(
        &agents_with(HELPER),
        Some(&hanging.config("timeout = \"1s\"\nmax_retries = 0")),
    );
    let started = Instant::now();
    let reply = server.send("helper", &json!({"content": "hi"})).await;
    assert_plugin_error(&reply, "timeout", &["[llm.providers.scripted] timeout"]);
    assert!(started.elapsed() < Duration::from_secs(10));

    // A 10 MB answer is refused without being held.
    let flooding = ScriptedLlm::start(vec![Answer::Huge(10 << 20)]).await;
    let server = Server::start_fresh(&agents_with(HELPER), Some(&flooding.config("")));
    let reply = server.send("helper", &json!({"content": "hi"})).await;
    assert_plugin_error(&reply, "internal", &["max_response_bytes"]);
    assert!(server.peak_rss_bytes() < 400 << 20);

    // Nothing listening: unavailable, naming the URL and the config key.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = format!(
        "[memory.embedding_config]\nenabled = false\n[llm]\ndefault_provider = \"gone\"\n[llm.providers.gone]\nbase_url = \"http://{closed}/v1\"\nmodel = \"m\"\nmax_retries = 0\n"
    );
    let server = Server::start_fresh(&agents_with(HELPER), Some(&config));
    let reply = server.send("helper", &json!({"content": "hi"})).await;
    assert_plugin_error(
        &reply,
        "unavailable",
        &[&closed.to_string(), "[llm.providers.gone] base_url"],
    );
    // Health and readiness report the provider's state; neither waits
    // for it (the host is ready with its model server down).
    let ready = server.get_json("/api/v1/ready").await;
    assert_eq!(ready["ready"], true, "{ready}");
    // The public probes give the status, not the address or the error
    // (those are in the log).
    let gone = &ready["llm_providers"]["gone"];
    assert!(
        gone["status"].is_string() && gone.get("base_url").is_none(),
        "{ready}"
    );
    let health = server.get_json("/api/v1/health").await;
    assert!(
        health["llm_providers"]["gone"]["status"].is_string(),
        "{health}"
    );
}

#[tokio::test]
async fn an_unknown_provider_or_a_missing_model_is_refused_at_deploy_with_its_place() {
    let llm = ScriptedLlm::start(vec![Answer::Text("unused")]).await;
    let typo = HELPER.replace("[memory]", "[llm]\nprovider = \"scriptd\"\n\n[memory]");
    let server = Server::start_fresh(&agents_with(HELPER), Some(&llm.config("")));
    let reply = server
        .post("/api/v1/agents/validate", json!({"manifest": typo}))
        .await;
    assert_eq!(reply.body["valid"], false, "{}", reply.body);
    let problem = &reply.body["problems"][0];
    assert_eq!(problem["line"], 9, "{problem}");
    let message = problem["message"].as_str().unwrap();
    assert!(message.contains("did you mean \"scripted\"?"), "{message}");

    // No model in the manifest nor in the provider's config: the agent
    // is not loaded, and the log says why and where.
    let config = llm.config("").replace("model = \"scripted-model\"\n", "");
    let server = Server::start_fresh(&agents_with(HELPER), Some(&config));
    server
        .send("helper", &json!({"content": "hi"}))
        .await
        .assert_error(404, "agent_not_found");
    let log = server.wait_for_log("llm.model: no model is configured");
    assert!(log.contains("helper"), "{log}");
}

#[tokio::test]
async fn the_conversation_is_the_agents_history_and_identical_turns_can_be_cached() {
    let llm = ScriptedLlm::start(vec![
        Answer::Text("Nice to meet you, Ada."),
        Answer::Text("Your name is Ada."),
        Answer::Text("cached answer"),
    ])
    .await;
    let agent = HELPER.replace("tools = [\"csv_parser\"]\n", "").replace(
        "[memory]",
        "[parameters]\ncache_responses = true\n\n[memory]",
    );
    let server = Server::start_fresh(&agents_with(&agent), Some(&llm.config("")));
    let first = server
        .send("helper", &json!({"content": "I am Ada."}))
        .await;
    let conversation = first.body["conversation_id"].as_str().unwrap().to_owned();
    let second = server
        .send(
            "helper",
            &json!({"content": "What is my name?", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(answer_of(&second), "Your name is Ada.");
    let messages = &llm.requests()[1]["messages"];
    let said: Vec<(&str, &str)> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said[1..],
        [
            ("user", "I am Ada."),
            ("assistant", "Nice to meet you, Ada."),
            ("user", "What is my name?"),
        ],
        "{said:?}"
    );

    // A new conversation asking the first question again: the same turn,
    // answered from the cache without asking the provider.
    let again = server
        .send("helper", &json!({"content": "I am Ada."}))
        .await;
    assert_eq!(answer_of(&again), "Nice to meet you, Ada.");
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test]
async fn streams_reach_http_clients_as_the_model_writes() {
    let llm = ScriptedLlm::start(vec![Answer::Pieces(vec!["Hel", "lo ", "there"])]).await;
    let agent = HELPER.replace("tools = [\"csv_parser\"]\n", "");
    let server = Server::start_fresh(&agents_with(&agent), Some(&llm.config("")));
    // Server-sent events on the agent route.
    let response = server
        .client()
        .post(server.url("/api/v1/agents/helper/messages"))
        .header("accept", "text/event-stream")
        .json(&json!({"content": "greet me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let deltas: Vec<String> = text
        .split("\n\n")
        .filter(|e| e.starts_with("event: delta"))
        .map(|e| {
            let data: Value = serde_json::from_str(e.split_once("data: ").unwrap().1).unwrap();
            data["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(deltas, ["Hel", "lo ", "there"], "{text}");
    let reply = text
        .split("\n\n")
        .find(|e| e.starts_with("event: reply"))
        .unwrap();
    let reply: Value = serde_json::from_str(reply.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(reply["reply"]["content"]["answer"], "Hello there");
    // The final message is recorded as usual.
    let id = reply["conversation_id"].as_str().unwrap();
    let thread = server
        .get_json(&format!("/api/v1/conversations/{id}/messages"))
        .await;
    assert_eq!(
        thread["messages"][1]["content"]["answer"], "Hello there",
        "{thread}"
    );
    assert!(llm.requests()[0]["stream"] == true);
}

#[tokio::test]
async fn the_key_comes_from_the_environment_agents_are_asked_and_exchanges_are_stored() {
    let llm = ScriptedLlm::start(vec![
        Answer::Calls(vec![("ask", "ask_echo", r#"{"message": "ping"}"#)]),
        Answer::Text("echo said ping"),
    ])
    .await;
    let agent = r#"
name = "coordinator"
version = "1.0.0"
capabilities = ["coordination"]
agents = ["echo"]
system_prompt = "You coordinate."

[memory]
auto_store = true
"#;
    let agents = AgentsDir::new()
        .with(
            "echo",
            &manifest(
                "echo",
                "echo",
                "capabilities = [\"echo\"]\ngrants = [\"log\"]",
            ),
        )
        .with("coordinator", agent);
    // The key is named in the file, never written there.
    let config = llm.config("api_key_env = \"CAXTON_TEST_LLM_KEY\"");
    let server = {
        // SAFETY: set before the server process is spawned, which inherits
        // it; no other thread of this test reads the environment meanwhile.
        unsafe { std::env::set_var("CAXTON_TEST_LLM_KEY", "sk-test-123") };
        Server::start_fresh(&agents, Some(&config))
    };
    let reply = server
        .send("coordinator", &json!({"content": "Ask echo to ping."}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(answer_of(&reply), "echo said ping");
    let requests = llm.requests();
    assert_eq!(requests[0]["_authorization"], "Bearer sk-test-123");
    assert_eq!(requests[0]["tools"][0]["function"]["name"], "ask_echo");
    // The other agent was asked through messaging and its reply fed back.
    let results = tool_results(&requests[1]);
    assert!(results[0].1.contains("ping"), "{results:?}");
    let conversation = reply.body["conversation_id"].as_str().unwrap();
    let thread = server
        .get_json(&format!("/api/v1/conversations/{conversation}/messages"))
        .await;
    let senders: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"].as_str().unwrap())
        .collect();
    assert!(senders.contains(&"echo"), "{thread}");
    // auto_store: the exchange is in the agent's memory.
    let stored = server
        .get_json(&format!(
            "/api/v1/memory/entities/conversation-{conversation}?agent=coordinator"
        ))
        .await;
    let observations = stored["observations"].to_string();
    assert!(
        observations.contains("Ask echo to ping.") && observations.contains("echo said ping"),
        "{stored}"
    );
}

#[tokio::test]
async fn a_configuration_agent_is_deployed_over_the_api_without_a_component_and_survives_a_restart()
{
    let llm = ScriptedLlm::start(vec![Answer::Text("deployed and answering")]).await;
    let agents = AgentsDir::new();
    let data = tempfile::tempdir().unwrap();
    let config = llm.config("");
    let server = Server::start_with(&agents, data.path(), Some(&config));
    let agent = HELPER.replace("tools = [\"csv_parser\"]\n", "");
    let deployed = server
        .post("/api/v1/agents", json!({ "manifest": agent }))
        .await;
    assert_eq!(deployed.status, 201, "{}", deployed.body);
    // A component agent still needs its component.
    let missing = server
        .post(
            "/api/v1/agents",
            json!({"manifest": "name = \"needs-wasm\"\nversion = \"1.0.0\"\ncapabilities = [\"x\"]\ncomponent = \"x.wasm\"\n"}),
        )
        .await;
    missing.assert_error(400, "bad_request");
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("component is missing")
    );
    drop(server);

    let server = Server::start_with(&agents, data.path(), Some(&config));
    let reply = server
        .send("helper", &json!({"content": "still there?"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(answer_of(&reply), "deployed and answering");
    let shown = server.get_json("/api/v1/agents/helper").await;
    assert_eq!(shown["runs"], "configuration", "{shown}");
}

#[tokio::test]
async fn response_timeout_bounds_the_whole_turn_and_capabilities_reach_configuration_agents() {
    let llm = ScriptedLlm::start(vec![Answer::Text("by capability"), Answer::Hang]).await;
    let agent = HELPER.replace("tools = [\"csv_parser\"]\n", "").replace(
        "[memory]",
        "[parameters]\nresponse_timeout = \"2s\"\n\n[memory]",
    );
    let server = Server::start_fresh(&agents_with(&agent), Some(&llm.config("")));
    // The existing routes reach configuration agents unchanged.
    let reply = server
        .post(
            "/api/v1/messages",
            json!({"capability": "data-processing", "content": "hello"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["agent"], "helper");
    assert_eq!(answer_of(&reply), "by capability");
    // A provider that hangs (its own timeout is 120 s) cannot hold the
    // turn past the agent's response_timeout.
    let started = Instant::now();
    let reply = server.send("helper", &json!({"content": "hang"})).await;
    reply.assert_error(504, "deadline_exceeded");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_agent_asked_by_another_reads_only_its_own_exchange_and_components_stream_whole() {
    let llm = ScriptedLlm::start(vec![
        Answer::Calls(vec![("q", "ask_helper", r#"{"message": "What is 2+2?"}"#)]),
        Answer::Text("4"),
        Answer::Text("The helper says 4."),
    ])
    .await;
    let coordinator = r#"
name = "coordinator"
version = "1.0.0"
capabilities = ["coordination"]
agents = ["helper"]
system_prompt = "You coordinate."

[memory]
enabled = false
"#;
    let helper = HELPER.replace("tools = [\"csv_parser\"]\n", "");
    let agents = agents_with(&helper).with("coordinator", coordinator).with(
        "echo",
        &manifest(
            "echo",
            "echo",
            "capabilities = [\"echo\"]\ngrants = [\"log\"]",
        ),
    );
    let server = Server::start_fresh(&agents, Some(&llm.config("")));
    let reply = server
        .send("coordinator", &json!({"content": "my secret question"}))
        .await;
    assert_eq!(answer_of(&reply), "The helper says 4.", "{}", reply.body);
    // The helper's request: its own system prompt and the question it was
    // asked; nothing of the client's exchange with the coordinator.
    let asked = llm.requests()[1]["messages"].to_string();
    assert!(asked.contains("What is 2+2?"), "{asked}");
    assert!(!asked.contains("my secret question"), "{asked}");

    // A component agent does not stream: its reply arrives whole as the
    // stream's content.
    let response = server
        .client()
        .post(server.url("/api/v1/chat/completions"))
        .json(&json!({"model": "echo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(content.contains("\"messages\""), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}
