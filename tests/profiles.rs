//! Agent profiles and priorities: `[agents.default_limits]` and
//! `[[agents.profiles]]` reach running agents (a profile's fuel stops a
//! loop, a default memory cap stops an allocation) in the order manifest >
//! profile > defaults, and reload when caxton.toml changes; per-priority
//! queues keep critical messages on time under a flood of slow background
//! ones, and a message past its latency target is answered, not run late.

use std::time::{Duration, Instant};

use crate::support::{AgentsDir, Server, caxton, manifest};
use serde_json::{Value, json};

/// The faults plugin as agent `name`, with extra manifest lines.
fn faults(name: &str, extra: &str) -> String {
    manifest(
        name,
        "faults",
        &format!("capabilities = [\"{name}-work\"]\n{extra}"),
    )
}

const PROFILES: &str = r#"
[agents.default_limits]
memory_mb = 8
max_conversations = 200
tool_call_timeout = "12s"

[[agents.profiles]]
name = "tight"
agent_types = ["runaway"]
[agents.profiles.overrides]
fuel_limit = 5_000_000
max_conversations = 50
tool_call_timeout = "3s"
priority = "high"

[[agents.profiles]]
name = "roomy"
[agents.profiles.overrides]
fuel_limit = 50_000_000
"#;

fn config(extra: &str) -> String {
    format!("{}{PROFILES}{extra}", crate::support::NO_EMBEDDINGS)
}

/// A metric's value in the server's text exposition, 0 when absent.
async fn metric(server: &Server, series: &str) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Asks `agent` (the faults plugin) to spin and checks it is stopped by
/// running out of exactly `fuel`.
async fn assert_loop_stops_at_fuel(server: &Server, agent: &str, fuel: u64) {
    let reply = server
        .send(agent, &json!({"content": {"fault": "loop"}}))
        .await;
    reply.assert_error(422, "out_of_fuel");
    assert_eq!(
        reply.body["error"]["details"]["usage"]["fuel_consumed"].as_u64(),
        Some(fuel)
    );
}

fn limit<'a>(shown: &'a Value, key: &str) -> (&'a Value, &'a str) {
    let limit = &shown["limits"][key];
    (&limit["value"], limit["source"].as_str().unwrap_or("?"))
}

#[tokio::test]
async fn limits_come_from_the_manifest_then_the_profile_then_the_defaults() {
    let agents = AgentsDir::new()
        .with(
            "spinner",
            &faults(
                "spinner",
                "agent_type = \"runaway\"\n[resource_limits]\nmax_conversations = 7",
            ),
        )
        .with("hog", &faults("hog", ""));
    let server = Server::start_fresh(&agents, Some(&config("")));

    // The profile's fuel stops a loop at exactly its limit.
    assert_loop_stops_at_fuel(&server, "spinner", 5_000_000).await;
    // The defaults' memory cap stops an allocation at 8 MiB.
    let reply = server
        .send("hog", &json!({"content": {"fault": "alloc"}}))
        .await;
    reply.assert_error(422, "memory_limit_exceeded");
    let peak = reply.body["error"]["details"]["usage"]["peak_memory_bytes"]
        .as_u64()
        .unwrap();
    assert!(peak <= 8 << 20, "peak {peak} is over the default 8 MiB cap");

    let shown = server.get_json("/api/v1/agents/spinner").await;
    assert_eq!(shown["profile"], "tight");
    assert_eq!(limit(&shown, "max_conversations"), (&json!(7), "manifest"));
    assert_eq!(
        limit(&shown, "tool_call_timeout"),
        (&json!(3000), "profile tight")
    );
    assert_eq!(
        limit(&shown, "memory_mb"),
        (&json!(8), "[agents.default_limits]")
    );
    assert_eq!(
        limit(&shown, "memory_search_timeout"),
        (&Value::Null, "host default")
    );
    assert_eq!(shown["priority"], "high");
    let hog = server.get_json("/api/v1/agents/hog").await;
    assert_eq!(hog["profile"], Value::Null);
    assert_eq!(
        limit(&hog, "max_conversations"),
        (&json!(200), "[agents.default_limits]")
    );
    assert_eq!(
        limit(&hog, "fuel_limit"),
        (&json!(500_000_000), "host default")
    );

    // A message without a priority takes the agent's (the profile's high).
    let waited = "caxton_message_queue_wait_seconds_count{priority=\"high\"}";
    let before = metric(&server, waited).await;
    let reply = server.send("spinner", &json!({"content": {}})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(metric(&server, waited).await, before + 1.0);

    // The CLI prints each limit with where it came from.
    let printed = server.cli(&["agents", "show", "spinner"]);
    let line = printed
        .lines()
        .find(|l| l.starts_with("tool_call_timeout"))
        .unwrap_or_else(|| panic!("no tool_call_timeout line in:\n{printed}"));
    assert!(
        line.contains("3000ms") && line.contains("profile tight"),
        "{line}"
    );
}

#[tokio::test]
async fn editing_a_profile_in_caxton_toml_reloads_the_agents_it_touches() {
    let agents = AgentsDir::new()
        .with("spinner", &faults("spinner", "agent_type = \"runaway\""))
        .with("bystander", &faults("bystander", "profile = \"roomy\""))
        .with("newcomer", &faults("newcomer", "profile = \"fresh\""));
    let server = Server::start_fresh(&agents, Some(&config("")));
    server.wait_for_log("profile \"fresh\" is not defined");
    let deployed_at = |shown: &Value| shown["deployed_at_ms"].as_u64().unwrap();
    let bystander = deployed_at(&server.get_json("/api/v1/agents/bystander").await);

    let file = server.data_dir.join("caxton-harness.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replace("fuel_limit = 5_000_000", "fuel_limit = 7_000_000")
        + "\n[[agents.profiles]]\nname = \"fresh\"\n[agents.profiles.overrides]\nfuel_limit = 6_000_000\n";
    std::fs::write(&file, edited).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = server.get_json("/api/v1/agents/spinner").await;
        if shown["limits"]["fuel_limit"]["value"] == 7_000_000 || Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        limit(&shown, "fuel_limit"),
        (&json!(7_000_000), "profile tight"),
        "the profile change did not reach the agent"
    );
    assert_loop_stops_at_fuel(&server, "spinner", 7_000_000).await;
    // The manifest refused for naming a profile that did not exist is
    // deployed once it does.
    let newcomer = server.get_json("/api/v1/agents/newcomer").await;
    assert_eq!(newcomer["profile"], "fresh", "{newcomer}");
    assert_loop_stops_at_fuel(&server, "newcomer", 6_000_000).await;
    // An agent the change does not touch was not swapped.
    let after = deployed_at(&server.get_json("/api/v1/agents/bystander").await);
    assert_eq!(after, bystander);

    // A broken edit changes nothing and says why.
    std::fs::write(
        &file,
        format!(
            "{}\n[agents.default_limits]\nfuel = 1\n",
            std::fs::read_to_string(&file).unwrap()
        ),
    )
    .unwrap();
    let log = server.wait_for_log("caxton.toml change refused");
    assert!(log.contains("caxton.toml change refused"), "{log}");
    let shown = server.get_json("/api/v1/agents/spinner").await;
    assert_eq!(shown["limits"]["fuel_limit"]["value"], 7_000_000);
}

#[tokio::test]
async fn an_unknown_or_ambiguous_profile_is_refused_with_its_line() {
    let agents = AgentsDir::new()
        .with("typo", &faults("typo", "profile = \"tigth\""))
        .with("torn", &faults("torn", "agent_type = \"runaway\""))
        .with("fine", &faults("fine", "profile = \"roomy\""));
    // `torn` matches `tight` by type and `wide` by name.
    let extra = "\n[[agents.profiles]]\nname = \"wide\"\nagents = [\"torn\"]\n";
    let server = Server::start_fresh(&agents, Some(&config(extra)));
    let log = server.wait_for_log("did you mean");
    // The manifest's fifth line: name, version, component, capabilities,
    // profile.
    assert!(
        log.contains(
            "line 5, column 1: profile \"tigth\" is not defined in caxton.toml; did you mean \"tight\"?"
        ),
        "{log}"
    );
    assert!(
        log.contains("line 1, column 1: agent \"torn\" matches more than one profile in caxton.toml: \"tight\" (its agent_types list \"runaway\") and \"wide\" (its agents list \"torn\"); an agent takes one profile: add profile = \"tight\""),
        "{log}"
    );
    let listed = server.get_json("/api/v1/agents").await;
    let names: Vec<&str> = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["fine"]);

    // Two profiles claiming one capability: the config file is refused
    // at the second one's key.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("caxton.toml");
    std::fs::write(
        &file,
        "[[agents.profiles]]\nname = \"a\"\ncapabilities = [\"x\"]\n\n[[agents.profiles]]\nname = \"b\"\ncapabilities = [\"x\"]\n",
    )
    .unwrap();
    let checked = caxton(&["config", "validate", file.to_str().unwrap()]);
    assert!(!checked.status.success());
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        stderr
            .contains("line 7, column 1: agents.profiles.1.capabilities: profiles \"b\" and \"a\""),
        "{stderr}"
    );
}

/// A slow agent: the faults plugin sleeping on request.
fn slow_agents() -> AgentsDir {
    AgentsDir::new().with(
        "slow",
        &faults("slow", "[resource_limits]\nexecution_timeout = \"20s\""),
    )
}

#[tokio::test]
async fn a_flood_of_slow_background_messages_does_not_delay_critical_ones() {
    let config = format!(
        "{}[agents]\nworkers_per_agent = 2\nreply_timeout = \"60s\"\n[agents.priorities.background]\nlatency_target = \"60s\"\n[http_server.rate_limit]\nenabled = false\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&slow_agents(), Some(&config));
    // Each takes 1.5 s; two workers take 4.5 s for the six. Without a
    // worker of their own, critical messages would wait up to 1.5 s for
    // one: past their 100 ms target.
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let (client, url) = (server.client(), server.url("/api/v1/agents/slow/messages"));
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"priority": "background", "content": {"fault": "sleep", "ms": 1500}}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get_json("/api/v1/agents/slow").await["queue"]["by_priority"]["background"] == 0 {
        assert!(Instant::now() < deadline, "the flood never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let reply = server
            .send("slow", &json!({"priority": "critical", "content": {}}))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        slowest = slowest.max(started.elapsed());
    }
    // The target is 100 ms; the bound is wide for a busy machine, and
    // still well under the 1.5 s a shared worker would make it wait.
    assert!(
        slowest < Duration::from_millis(750),
        "slowest critical round trip {slowest:?}"
    );
    for status in futures_util::future::join_all(flood).await {
        assert_eq!(status.unwrap(), 200, "a background message was dropped");
    }
    assert_eq!(
        metric(&server, "caxton_messages_late_total{priority=\"critical\"}").await,
        0.0
    );
    assert!(
        metric(
            &server,
            "caxton_message_queue_wait_seconds_count{priority=\"critical\"}"
        )
        .await
            >= 5.0
    );
}

#[tokio::test]
async fn a_message_past_its_latency_target_is_answered_with_a_typed_timeout_not_run() {
    let config = format!(
        "{}[agents]\nworkers_per_agent = 1\n[agents.priorities.normal]\nlatency_target = \"200ms\"\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&slow_agents(), Some(&config));
    let busy = {
        let (client, url) = (server.client(), server.url("/api/v1/agents/slow/messages"));
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"content": {"fault": "sleep", "ms": 2000}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get_json("/api/v1/agents/slow").await["queue"]["load"] == 0 {
        assert!(Instant::now() < deadline, "the first message never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let reply = server.send("slow", &json!({"content": {}})).await;
    let answered = started.elapsed();
    reply.assert_error(504, "queue_timeout");
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("latency target of 200ms"), "{message}");
    // Answered at its target, not when the worker came free at 2 s.
    assert!(
        answered < Duration::from_millis(1500),
        "answered after {answered:?}"
    );
    assert_eq!(busy.await.unwrap(), 200);
    assert_eq!(
        metric(&server, "caxton_messages_late_total{priority=\"normal\"}").await,
        1.0
    );
    // Only the first message ran.
    let shown = server.get_json("/api/v1/agents/slow").await;
    assert_eq!(shown["counters"]["messages"], 1, "{shown}");
}

#[test]
fn offline_validation_checks_the_profile_against_the_config_in_effect() {
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join("caxton");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("caxton.toml"), PROFILES).unwrap();
    let manifest = home.path().join("typo.toml");
    std::fs::write(&manifest, faults("typo", "profile = \"tigth\"")).unwrap();
    let checked = crate::support::caxton_command()
        .args(["agents", "validate", manifest.to_str().unwrap()])
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        stderr.contains("line 5, column 1: profile \"tigth\" is not defined in caxton.toml; did you mean \"tight\"?"),
        "{stderr}"
    );
}
