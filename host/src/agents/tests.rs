//! The registry with real components (the plugins `./scripts/setup`
//! builds): loading a directory, swapping a version under a call in
//! flight, the agent limit, per-call checks and counters.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{AgentError, AgentRegistry, Manifest};
use crate::config::WasmRuntimeConfig;
use crate::runtime::{Message, Performative, PluginError, Runtime, ToolHost};

/// A built plugin component; run `./scripts/setup` first.
pub(crate) fn plugin(name: &str) -> PathBuf {
    let path = crate::harness::plugin_component(name);
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/setup",
        path.display()
    );
    path
}

/// A manifest for a built plugin; an agent is granted `log` unless
/// `extra` says otherwise (tools take no grants).
pub(crate) fn manifest_text(name: &str, component: &str, extra: &str) -> String {
    let grants = if extra.contains("grants") || extra.contains("kind = \"tool\"") {
        ""
    } else {
        "grants = [\"log\"]\n"
    };
    format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\ncomponent = {:?}\n{grants}{extra}\n",
        plugin(component).display().to_string()
    )
}

pub(crate) fn registry(cache: &Path) -> Arc<AgentRegistry> {
    let runtime = Runtime::new(&WasmRuntimeConfig::default(), cache.to_owned()).unwrap();
    AgentRegistry::new(Arc::new(runtime), None)
}

pub(crate) fn message(content: &str) -> Message {
    Message {
        id: "m-1".into(),
        performative: Performative::Request,
        sender: "test".into(),
        receiver: None,
        capability: None,
        conversation_id: None,
        reply_with: None,
        in_reply_to: None,
        content: content.into(),
    }
}

#[tokio::test]
async fn a_directory_loads_tools_first_and_skips_a_broken_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    // "a" sorts before "csv": the agent is read first but needs the tool.
    std::fs::write(
        agents.join("a-analyst.toml"),
        manifest_text(
            "analyst",
            "analyst",
            "capabilities = [\"data\"]\ntools = [\"csv_parser\"]\ngrants = [\"log\", \"tools\"]",
        ),
    )
    .unwrap();
    std::fs::write(
        agents.join("csv.toml"),
        manifest_text("csv_parser", "csv_parser", "kind = \"tool\""),
    )
    .unwrap();
    std::fs::write(agents.join("broken.toml"), "name = ").unwrap();
    let registry = registry(&dir.path().join("cache"));
    let report = registry.load_dir(&agents).await.unwrap();
    assert_eq!((report.agents, report.tools), (1, 1));
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(registry.providers("data"), ["analyst"]);
}

#[tokio::test]
async fn a_replacement_leaves_calls_in_flight_on_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("cache"));
    let path = dir.path().join("echo.toml");
    let first = Manifest::parse(
        &manifest_text("echo", "echo", "capabilities = [\"echo\"]"),
        &path,
    )
    .unwrap();
    registry.deploy(&path, first).await.unwrap();
    let held = registry.agent("echo").unwrap();

    let second = Manifest::parse(
        &manifest_text("echo", "echo", "capabilities = [\"echo\", \"second\"]"),
        &path,
    )
    .unwrap();
    let prepared = registry.prepare(&path, second).await.unwrap();
    registry.install(prepared);
    assert_eq!(held.manifest.capabilities, ["echo"]);
    assert_eq!(
        registry.agent("echo").unwrap().manifest.capabilities,
        ["echo", "second"]
    );
    assert_eq!(registry.providers("second"), ["echo"]);
}

#[tokio::test]
async fn the_agent_limit_refuses_one_more_but_not_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("cache"));
    registry.set_max_agents(1);
    let one = dir.path().join("one.toml");
    let manifest = |name: &str| {
        Manifest::parse(
            &manifest_text(name, "echo", "capabilities = [\"echo\"]"),
            &one,
        )
        .unwrap()
    };
    registry.deploy(&one, manifest("one")).await.unwrap();
    let refused = registry
        .deploy(&dir.path().join("two.toml"), manifest("two"))
        .await;
    assert!(
        matches!(refused, Err(AgentError::Limit { limit: 1, .. })),
        "{refused:?}"
    );
    assert!(registry.prepare(&one, manifest("one")).await.is_ok());
}

#[tokio::test]
async fn a_call_counts_and_an_oversized_reply_is_the_plugins_error() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("cache"));
    let path = dir.path().join("echo.toml");
    let echo = Manifest::parse(
        &manifest_text("echo", "echo", "capabilities = [\"echo\"]"),
        &path,
    )
    .unwrap();
    registry.deploy(&path, echo).await.unwrap();

    let outcome = registry
        .call("echo", message("{\"hi\":1}"), None)
        .await
        .unwrap();
    let reply = outcome.result.unwrap().unwrap().unwrap();
    assert_eq!(reply.content, "{\"hi\":1}");
    assert_eq!(reply.in_reply_to.as_deref(), Some("m-1"));

    registry.set_max_reply_bytes(16);
    let outcome = registry
        .call("echo", message(&format!("\"{}\"", "x".repeat(100))), None)
        .await
        .unwrap();
    assert!(
        matches!(&outcome.result, Ok(Err(PluginError::InvalidInput(text))) if text.contains("max_reply_size")),
        "{:?}",
        outcome.result
    );
    let counters = registry.stats_of("echo").snapshot();
    assert_eq!(counters["messages"], 2);
    assert_eq!(counters["failures"], 1);
    assert!(matches!(
        registry.call("nobody", message("{}"), None).await,
        Err(AgentError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_tool_is_called_only_from_the_agents_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("cache"));
    let tool = dir.path().join("csv.toml");
    registry
        .deploy(
            &tool,
            Manifest::parse(
                &manifest_text("csv_parser", "csv_parser", "kind = \"tool\""),
                &tool,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    for (name, tools) in [("allowed", "[\"csv_parser\"]"), ("other", "[]")] {
        let path = dir.path().join(format!("{name}.toml"));
        let text = manifest_text(
            name,
            "echo",
            &format!("capabilities = [\"x\"]\ntools = {tools}\ngrants = [\"log\", \"tools\"]"),
        );
        registry
            .deploy(&path, Manifest::parse(&text, &path).unwrap())
            .await
            .unwrap();
    }
    let input = r#"{"csv": "a,b\n1,2\n"}"#.to_owned();
    let parsed = registry
        .call_tool("allowed", "csv_parser", input.clone())
        .await
        .unwrap();
    assert!(parsed.contains("\"a\""), "{parsed}");
    let refused = registry.call_tool("other", "csv_parser", input).await;
    assert!(
        matches!(refused, Err(PluginError::Denied(_))),
        "{refused:?}"
    );
}
