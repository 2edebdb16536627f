//! Messaging end to end: capability routing, broadcast, conversations,
//! agent-to-agent request/reply through WIT, cycles, full queues.

use crate::support::{AgentsDir, Reply, Server, manifest};
use serde_json::{Value, json};

fn agents() -> AgentsDir {
    let echo = |name: &str| {
        manifest(
            name,
            "echo",
            "capabilities = [\"echo\"]\ngrants = [\"log\"]",
        )
    };
    let relay = |name: &str| {
        manifest(
            name,
            "relay",
            "capabilities = [\"relay\"]\ngrants = [\"log\", \"messaging\"]",
        )
    };
    AgentsDir::new()
        .with("echo-a", &echo("echo-a"))
        .with("echo-b", &echo("echo-b"))
        .with("relay", &relay("relay"))
        .with("relay-a", &relay("relay-a"))
        .with("relay-b", &relay("relay-b"))
}

#[tokio::test]
async fn capability_routing_spreads_over_providers_and_broadcast_reaches_all() {
    let server = Server::start(&agents());
    for strategy in ["round-robin", "best"] {
        let mut served = std::collections::BTreeSet::new();
        for n in 0..6 {
            let reply = server
                .post(
                    "/api/v1/messages",
                    json!({"capability": "echo", "strategy": strategy, "content": {"n": n}}),
                )
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            assert_eq!(reply.body["reply"]["content"], json!({"n": n}));
            assert_eq!(reply.body["reply"]["sender"], reply.body["agent"]);
            served.insert(reply.body["agent"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            served.into_iter().collect::<Vec<_>>(),
            ["echo-a", "echo-b"],
            "{strategy}"
        );
    }

    let reply = server
        .post(
            "/api/v1/messages",
            json!({"capability": "echo", "strategy": "broadcast", "content": "all"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut senders: Vec<&str> = reply.body["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reply"]["sender"].as_str().unwrap())
        .collect();
    senders.sort();
    assert_eq!(senders, ["echo-a", "echo-b"]);
}

#[tokio::test]
async fn no_provider_is_a_failure_reply_naming_the_capability() {
    let server = Server::start(&agents());
    let reply = server
        .post(
            "/api/v1/messages",
            json!({"capability": "translation", "content": "bonjour"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["reply"]["performative"], "failure");
    assert_eq!(reply.body["reply"]["sender"], "caxton");
    let message = reply.body["reply"]["content"]["message"].as_str().unwrap();
    assert!(message.contains("\"translation\""), "{message}");
}

#[tokio::test]
async fn a_conversation_is_recorded_in_order_with_reply_links() {
    let server = Server::start(&agents());
    let first = server
        .post(
            "/api/v1/messages",
            json!({"receiver": "echo-a", "id": "m-1", "content": {"step": 1}}),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let conversation = first.body["conversation_id"].as_str().unwrap().to_owned();
    let second = server.post("/api/v1/messages",
        json!({"receiver": "echo-b", "id": "m-2", "conversation_id": conversation, "content": {"step": 2}}),
    )
    .await;
    assert_eq!(second.body["conversation_id"], conversation.as_str());
    assert_eq!(
        second.body["reply"]["conversation_id"],
        conversation.as_str()
    );

    let thread = server
        .get_json(&format!("/api/v1/conversations/{conversation}/messages"))
        .await;
    let messages = thread["messages"].as_array().unwrap();
    let summary: Vec<(String, String, Value)> = messages
        .iter()
        .map(|m| {
            (
                m["sender"].as_str().unwrap().to_owned(),
                m["performative"].as_str().unwrap().to_owned(),
                m["in_reply_to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("client".to_owned(), "request".to_owned(), Value::Null),
            ("echo-a".to_owned(), "inform".to_owned(), json!("m-1")),
            ("client".to_owned(), "request".to_owned(), Value::Null),
            ("echo-b".to_owned(), "inform".to_owned(), json!("m-2")),
        ]
    );
    let view = server
        .get_json(&format!("/api/v1/conversations/{conversation}"))
        .await;
    assert_eq!(view["participants"], json!(["client", "echo-a", "echo-b"]));
    assert_eq!(view["messages"], 4);
    let missing = server.get_json("/api/v1/conversations/nope/messages").await;
    assert_eq!(missing["error"]["code"], "conversation_not_found");
}

#[tokio::test]
async fn an_agent_requests_another_and_replies_with_its_answer() {
    let server = Server::start(&agents());
    let reply = server
        .send(
            "relay",
            &json!({"content": {"ask": "echo-a", "content": {"x": 1}}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["reply"]["content"],
        json!({"from": "echo-a", "reply": {"x": 1}})
    );
    // By capability too.
    let reply = server
        .send(
            "relay",
            &json!({"content": {"ask_capability": "echo", "content": "hi"}}),
        )
        .await;
    assert_eq!(
        reply.body["reply"]["content"]["reply"], "hi",
        "{:?}",
        reply.body
    );

    // The inner exchange is part of the same conversation.
    let conversation = reply.body["conversation_id"].as_str().unwrap();
    let thread = server
        .get_json(&format!("/api/v1/conversations/{conversation}/messages"))
        .await;
    let hops: Vec<(&str, &str)> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["sender"].as_str().unwrap(),
                m["receiver"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(hops[0], ("client", "relay"));
    assert_eq!(hops[1].0, "relay");
    assert!(hops[1].1.starts_with("echo-"), "{hops:?}");
    assert_eq!(hops.len(), 4, "{hops:?}");
}

#[tokio::test]
async fn a_cycle_of_agents_ends_at_the_depth_limit() {
    let server = Server::start(&agents());
    for cycle in [json!(["relay"]), json!(["relay-a", "relay-b"])] {
        let started = std::time::Instant::now();
        let reply = server
            .send("relay", &json!({"content": {"cycle": cycle, "hop": 0}}))
            .await;
        assert_eq!(reply.status, 422, "{:?}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("depth limit 8"), "{message}");
        assert!(message.contains("relay → "), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    // The host still serves.
    let reply = server.send("echo-a", &json!({"content": 1})).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_full_queue_answers_429_and_memory_stays_bounded() {
    let agents = AgentsDir::new().with(
        "slow",
        &manifest(
            "slow",
            "faults",
            "capabilities = [\"slow\"]\n[resource_limits]\nfuel = 10_000_000_000_000\nexecution_timeout = \"400ms\"",
        ),
    );
    let config = format!(
        "{}[agents]\nqueue_capacity = 2\nworkers_per_agent = 1\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&agents, Some(&config));
    let url = server.url("/api/v1/messages");
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let request = server
                .client()
                .post(&url)
                .json(&json!({"receiver": "slow", "content": {"fault": "loop"}}));
            tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        let reply = call.await.unwrap();
        if reply.status == 429 {
            assert_eq!(reply.code(), "queue_full");
            assert_eq!(reply.retry_after.as_deref(), Some("1"));
        }
        statuses.push(reply.status);
    }
    statuses.sort();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // One running and two waiting at most: the rest are refused at once.
    assert!(refused >= 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 429 || *s == 504),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn priorities_are_accepted_and_checked() {
    let server = Server::start(&agents());
    let reply = server
        .post(
            "/api/v1/messages",
            json!({"receiver": "echo-a", "priority": "critical", "content": 1}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = server
        .post(
            "/api/v1/messages",
            json!({"receiver": "echo-a", "priority": "urgent", "content": 1}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("urgent")
    );
}

#[tokio::test]
async fn an_agent_reads_its_manifest_parameters() {
    let agents = AgentsDir::new().with(
        "configured",
        &manifest(
            "configured",
            "relay",
            "capabilities = [\"relay\"]\ngrants = [\"log\", \"messaging\"]\n[parameters]\ngreeting = \"hej\"\nretries = 3\n[parameters.limits]\nmax = 1.5\n",
        ),
    );
    let server = Server::start(&agents);
    let reply = server
        .send("configured", &json!({"content": {"show": "parameters"}}))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["reply"]["content"],
        json!({"name": "configured", "parameters": {"greeting": "hej", "retries": 3, "limits": {"max": 1.5}}})
    );
}

#[tokio::test]
async fn max_conversations_is_enforced_per_agent() {
    let agents = AgentsDir::new().with(
        "solo",
        &manifest(
            "solo",
            "echo",
            "capabilities = [\"solo\"]\ngrants = [\"log\"]\n[resource_limits]\nmax_conversations = 2\n",
        ),
    );
    let server = Server::start(&agents);
    let mut conversations = Vec::new();
    for n in 0..2 {
        let reply = server
            .post(
                "/api/v1/messages",
                json!({"receiver": "solo", "content": n}),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        conversations.push(reply.body["conversation_id"].as_str().unwrap().to_owned());
    }
    let third = server
        .post(
            "/api/v1/messages",
            json!({"receiver": "solo", "content": 3}),
        )
        .await;
    assert_eq!(
        (third.status, third.code()),
        (429, "conversation_limit"),
        "{:?}",
        third.body
    );
    assert!(third.retry_after.is_some());
    // An open conversation goes on.
    let more = server
        .post(
            "/api/v1/messages",
            json!({"receiver": "solo", "conversation_id": conversations[0], "content": 4}),
        )
        .await;
    assert_eq!(more.status, 200, "{:?}", more.body);
}
