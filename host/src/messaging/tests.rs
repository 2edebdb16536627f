//! The messenger with real components: routing by capability, replies the
//! host vouches for, agent-to-agent requests through the wired services,
//! and the depth limit that stops a cycle.

use std::path::Path;
use std::sync::Arc;

use super::{MessagingError, Messenger, Priority, Strategy, Target};
use crate::agents::tests::{manifest_text, message, registry};
use crate::agents::{AgentRegistry, Manifest};
use crate::config::AgentsConfig;
use crate::runtime::{HostServices, Message, PluginError};

async fn deploy(registry: &AgentRegistry, dir: &Path, name: &str, component: &str, extra: &str) {
    let path = dir.join(format!("{name}.toml"));
    let manifest = Manifest::parse(&manifest_text(name, component, extra), &path).unwrap();
    registry.deploy(&path, manifest).await.unwrap();
}

/// Delivers `content` to `agent` and returns its reply (or the plugin's
/// error) and the conversation it went in.
async fn ask(
    messenger: &Messenger,
    agent: &str,
    content: &str,
) -> (Result<Message, PluginError>, String) {
    let (conversation, mut results) = messenger
        .deliver(message(content), vec![agent.into()], Some(Priority::Normal))
        .await
        .unwrap();
    let outcome = results.remove(0).unwrap().outcome.unwrap();
    (outcome.result.unwrap().map(Option::unwrap), conversation)
}

/// A messenger wired as `server` wires it.
fn messenger(registry: &Arc<AgentRegistry>) -> Arc<Messenger> {
    let messenger = Messenger::new(registry.clone(), None, AgentsConfig::default());
    registry.wire(HostServices {
        tools: registry.clone(),
        memory: registry.clone(),
        context: registry.clone(),
        llm: registry.clone(),
        messaging: messenger.clone(),
        conversations: messenger.clone(),
        http: None,
    });
    messenger
}

#[tokio::test]
async fn capabilities_route_in_turn_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("cache"));
    for name in ["echo-a", "echo-b"] {
        deploy(
            &registry,
            dir.path(),
            name,
            "echo",
            "capabilities = [\"echo\"]",
        )
        .await;
    }
    let messenger = messenger(&registry);
    let target = Target::Capability {
        name: "echo".into(),
        strategy: Strategy::RoundRobin,
    };
    let picked: Vec<String> = (0..4)
        .map(|_| messenger.resolve(&target).unwrap().remove(0))
        .collect();
    // Providers take turns, whichever goes first.
    assert_ne!(picked[0], picked[1], "{picked:?}");
    assert_eq!(
        (&picked[0], &picked[1]),
        (&picked[2], &picked[3]),
        "{picked:?}"
    );
    let missing = messenger.resolve(&Target::Capability {
        name: "translation".into(),
        strategy: Strategy::Best,
    });
    assert!(matches!(missing, Err(MessagingError::NoProvider(name)) if name == "translation"));
}

#[tokio::test]
async fn a_reply_comes_back_from_the_agent_in_the_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("cache"));
    deploy(
        &registry,
        dir.path(),
        "echo",
        "echo",
        "capabilities = [\"echo\"]",
    )
    .await;
    let messenger = messenger(&registry);
    let (reply, conversation) = ask(&messenger, "echo", "{\"q\":1}").await;
    let reply = reply.unwrap();
    assert_eq!(reply.sender, "echo");
    assert_eq!(reply.in_reply_to.as_deref(), Some("m-1"));
    assert_eq!(
        reply.conversation_id.as_deref(),
        Some(conversation.as_str())
    );
    assert_eq!(reply.content, "{\"q\":1}");
}

#[tokio::test]
async fn agents_reach_each_other_and_a_cycle_stops_at_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&dir.path().join("cache"));
    deploy(
        &registry,
        dir.path(),
        "echo",
        "echo",
        "capabilities = [\"echo\"]",
    )
    .await;
    let relay = "capabilities = [\"relay\"]\ngrants = [\"log\", \"messaging\"]";
    deploy(&registry, dir.path(), "relay", "relay", relay).await;
    let messenger = messenger(&registry);

    let (reply, _) = ask(
        &messenger,
        "relay",
        r#"{"ask": "echo", "content": {"hello": true}}"#,
    )
    .await;
    let reply = reply.unwrap();
    let content: serde_json::Value = serde_json::from_str(&reply.content).unwrap();
    assert_eq!(content["from"], "echo");
    assert_eq!(content["reply"]["hello"], true);

    let (cycled, _) = ask(&messenger, "relay", r#"{"cycle": ["relay"]}"#).await;
    let error = cycled.unwrap_err();
    assert!(error.to_string().contains("depth limit"), "{error}");
}
