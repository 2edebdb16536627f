//! The status page in a real browser: Debian's Chromium, headless, driven
//! by playwright-core (both installed by `scripts/browser install`, which
//! setup runs) through tests/browser/status_page.mjs. Screenshots are kept
//! in target/test-artifacts/status-page/.

use std::process::Command;

use serde_json::json;

use crate::support::{AgentsDir, Server};

#[tokio::test]
async fn the_status_page_lists_agents_searches_memory_and_opens_a_conversation() {
    let checkout = caxton::harness::checkout();
    let driver = checkout.join("target/browser-tests");
    assert!(
        driver.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run ./scripts/setup (scripts/browser install)"
    );

    // With the model: the page's search should find by meaning.
    let server = Server::start_fresh(&AgentsDir::with_examples(), None);
    let created = server
        .post(
            "/api/v1/memory/entities",
            json!({"scope": "global", "name": "kitchen sensor", "entity_type": "device",
                   "observations": ["reports the fridge temperature every minute"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sent = server
        .send(
            "echo",
            &json!({"content": {"text": "hello from the browser test"}}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let conversation = sent.body["conversation_id"].as_str().unwrap().to_owned();

    let artifacts = checkout.join("target/test-artifacts/status-page");
    let output = Command::new("node")
        .arg(checkout.join("tests/browser/status_page.mjs"))
        .env("DRIVER_DIR", &driver)
        .env("CAXTON_URL", &server.base)
        .env("CAXTON_TOKEN", server.token.as_deref().expect("auth is on"))
        .env("EXPECT_AGENTS", "echo,analyst,csv_parser")
        .env("SEARCH_QUERY", "how cold is the refrigerator?")
        .env("EXPECT_HIT", "kitchen sensor")
        .env("CONVERSATION_ID", &conversation)
        .env("EXPECT_IN_THREAD", "hello from the browser test")
        .env("ARTIFACTS", &artifacts)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The timings, for the record (`cargo test -- --nocapture` shows them).
    println!("status page in Chromium: {stdout}");
    for shot in [
        "status-desktop.png",
        "status-search.png",
        "status-conversation.png",
        "status-phone.png",
    ] {
        let size = std::fs::metadata(artifacts.join(shot)).map_or(0, |m| m.len());
        assert!(size > 1000, "{shot} is missing or empty");
    }
}

#[tokio::test]
async fn the_page_loads_without_a_token_and_its_data_needs_one() {
    let server = Server::start(&AgentsDir::new());
    let client = crate::support::http()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/ui/");
    let page = client.get(server.url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    let missing = client
        .get(server.url("/ui/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let status = client
        .get(server.url("/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 401);
}

#[tokio::test]
async fn status_and_recent_conversations_report_what_the_host_did() {
    let server = Server::start(&AgentsDir::with_examples());
    let mut ids = Vec::new();
    for n in 0..3 {
        let sent = server.send("echo", &json!({"content": {"n": n}})).await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        ids.push(sent.body["conversation_id"].as_str().unwrap().to_owned());
    }
    let latest = server.get_json("/api/v1/conversations?limit=2").await;
    let listed: Vec<&str> = latest["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()], "{latest}");
    assert_eq!(latest["conversations"][0]["messages"], 2);
    assert_eq!(
        latest["conversations"][0]["participants"],
        json!(["client", "echo"])
    );
    server
        .get("/api/v1/conversations?limit=0")
        .await
        .assert_error(400, "bad_request");
    // An empty id would start a conversation nobody could open.
    server
        .send("echo", &json!({"conversation_id": " ", "content": "x"}))
        .await
        .assert_error(400, "bad_request");

    let status = server.get_json("/api/v1/status").await;
    let echo = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "echo")
        .expect("echo listed");
    assert_eq!(echo["counters"]["messages"], 3, "{status}");
    assert!(
        status["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "csv_parser" && a["kind"] == "tool"),
        "{status}"
    );
    assert_eq!(status["embeddings"]["state"], "disabled", "{status}");
    assert_eq!(status["pool"]["size"], 50, "{status}");
    assert!(
        status["totals"]["requests"].as_u64().unwrap() >= 4,
        "{status}"
    );
    assert!(
        status["totals"]["messages"].as_u64().unwrap() >= 3,
        "{status}"
    );
}
