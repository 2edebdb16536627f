//! Versioned WIT: components built against a supported `caxton:agent`
//! version load and serve; one built against a version the host does not
//! run is refused at load, naming its version and the supported ones.

use base64::Engine;
use serde_json::json;

use crate::support::{AgentsDir, Server, caxton, component, manifest};

#[tokio::test]
async fn a_component_of_an_unsupported_version_is_refused_by_name() {
    let server = Server::start(&AgentsDir::with_examples());
    let probe = std::fs::read(component("version_probe")).unwrap();
    let reply = server
        .post(
            "/api/v1/agents",
            json!({
                "manifest": "name = \"probe\"\nversion = \"0.1.0\"\ncapabilities = [\"probe\"]\n",
                "component": base64::engine::general_purpose::STANDARD.encode(probe),
            }),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("caxton:agent@0.9.0") && message.contains("supports 0.1.0, 0.2.0"),
        "{message}"
    );
    // The supported version's plugins keep serving beside the refusal.
    let echo = server.send("echo", &json!({"content": "still here"})).await;
    assert_eq!(echo.status, 200, "{}", echo.body);
}

#[test]
fn offline_validation_names_the_unsupported_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.toml");
    std::fs::write(
        &path,
        manifest("probe", "version_probe", "capabilities = [\"probe\"]"),
    )
    .unwrap();
    let output = caxton(&["agents", "validate", path.to_str().unwrap()]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("caxton:agent@0.9.0"), "{printed}");
}

/// A component built against 0.1.0 before 0.2.0 existed (the echo agent
/// of that release, kept as a file) serves beside the current echo built
/// against 0.2.0, and each says which version it targets.
#[tokio::test]
async fn a_frozen_0_1_0_component_and_a_current_one_serve_side_by_side() {
    let frozen = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/components/echo-wit-0.1.0.wasm");
    let agents = AgentsDir::new()
        .with(
            "echo",
            &manifest("echo", "echo", "capabilities = [\"echo\"]\ngrants = [\"log\"]"),
        )
        .with(
            "old-echo",
            &format!(
                "name = \"old-echo\"\nversion = \"0.1.0\"\ncomponent = {:?}\ncapabilities = [\"echo\"]\ngrants = [\"log\"]\n",
                frozen.display().to_string()
            ),
        );
    let server = Server::start(&agents);
    for (agent, version) in [("old-echo", "0.1.0"), ("echo", "0.2.0")] {
        let reply = server
            .send(agent, &json!({"content": {"said": agent}}))
            .await;
        assert_eq!(reply.status, 200, "{agent}: {}", reply.body);
        assert_eq!(
            reply.body["reply"]["content"]["said"], agent,
            "{}",
            reply.body
        );
        let shown = server.get_json(&format!("/api/v1/agents/{agent}")).await;
        assert_eq!(shown["wit_version"], version, "{shown}");
    }
}
