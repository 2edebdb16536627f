//! Agent memory end to end: a real server with the real model and a real
//! libsql file, driven over HTTP and through the `recall` agent's WIT imports.

use crate::support::{AgentsDir, Reply, Server, manifest};
use serde_json::{Value, json};

fn recall_agents() -> AgentsDir {
    let recall = |name: &str| {
        manifest(
            name,
            "recall",
            "capabilities = [\"memory-recall\"]\ngrants = [\"log\", \"memory\"]",
        )
    };
    AgentsDir::new()
        .with("recall-a", &recall("recall-a"))
        .with("recall-b", &recall("recall-b"))
}

fn observations_of(hits: &Value) -> Vec<String> {
    crate::support::hit_fields(hits, "observation")
}

#[tokio::test]
async fn agent_scoped_memory_is_private_over_http() {
    let server = Server::start_fresh(&AgentsDir::new(), None);
    let reply = server.post("/api/v1/memory/entities",
        json!({"agent": "alpha", "name": "vault", "entity_type": "place", "observations": ["the vault code is 4711"]}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["scope"], "agent");

    let search = json!({"query": "vault code", "agent": "beta"});
    let reply = server.post("/api/v1/memory/search", search).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(observations_of(&reply.body).is_empty(), "{}", reply.body);
    let reply = server.get("/api/v1/memory/entities/vault?agent=beta").await;
    reply.assert_error(404, "entity_not_found");
    let reply = server
        .post(
            "/api/v1/memory/relations",
            json!({"agent": "beta", "from": "vault", "to": "vault", "relation_type": "contains"}),
        )
        .await;
    assert_eq!(reply.status, 404);

    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"query": "vault code", "agent": "alpha"}),
        )
        .await;
    assert_eq!(observations_of(&reply.body), vec!["the vault code is 4711"]);
    let reply = server
        .get("/api/v1/memory/entities/vault?agent=alpha")
        .await;
    assert_eq!(
        reply.body["observations"],
        json!(["the vault code is 4711"])
    );

    // Global memory: readable by all, writable only with the grant.
    let reply = server.post("/api/v1/memory/entities",
        json!({"agent": "beta", "scope": "global", "name": "x", "entity_type": "t", "observations": ["y"]}),
    )
    .await;
    reply.assert_error(403, "forbidden");
    let reply = server.post("/api/v1/memory/entities",
        json!({"scope": "global", "name": "office", "entity_type": "place", "observations": ["the office is in Oslo"]}),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = server
        .get("/api/v1/memory/entities/office?agent=beta")
        .await;
    assert_eq!(reply.body["observations"], json!(["the office is in Oslo"]));
}

#[tokio::test]
async fn agent_scoped_memory_is_private_through_wit() {
    let server = Server::start_fresh(&recall_agents(), None);
    let tell = json!({"performative": "inform", "content": {"about": "alice", "type": "person", "facts": ["Alice drinks green tea every morning"]}});
    let reply = server.send("recall-a", &tell).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["reply"]["content"]["remembered"], 1);

    let ask = json!({"performative": "query", "content": {"question": "what does alice drink?"}});
    let reply = server.send("recall-a", &ask).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    let answers = &reply.body["reply"]["content"]["answers"];
    assert_eq!(
        answers[0]["observation"],
        "Alice drinks green tea every morning"
    );

    let reply = server.send("recall-b", &ask).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["reply"]["content"]["answers"], json!([]));
    // And over HTTP as recall-b, nothing either; the operator sees it.
    let reply = server
        .get("/api/v1/memory/entities/alice?agent=recall-b")
        .await;
    assert_eq!(reply.status, 404);
    let reply = server.get("/api/v1/memory/entities/alice").await;
    assert_eq!(reply.body["owner"], "recall-a");
}

#[tokio::test]
async fn observations_and_relations_are_stored_once() {
    let server = Server::start_fresh(&AgentsDir::new(), None);
    let alice = json!({"agent": "a", "name": "alice", "entity_type": "person", "observations": ["likes tea", "likes tea"]});
    let reply = server.post("/api/v1/memory/entities", alice.clone()).await;
    assert_eq!((reply.status, &reply.body["added"]), (201, &json!(1)));
    let reply = server.post("/api/v1/memory/entities", alice).await;
    assert_eq!((reply.status, &reply.body["added"]), (200, &json!(0)));
    let bob = json!({"agent": "a", "name": "bob", "entity_type": "person", "observations": []});
    server.post("/api/v1/memory/entities", bob).await;

    let manages = json!({"agent": "a", "from": "alice", "to": "bob", "relation_type": "manages"});
    let reply = server
        .post("/api/v1/memory/relations", manages.clone())
        .await;
    assert_eq!((reply.status, &reply.body["created"]), (201, &json!(true)));
    let reply = server.post("/api/v1/memory/relations", manages).await;
    assert_eq!((reply.status, &reply.body["created"]), (200, &json!(false)));

    let stats = server.get("/api/v1/memory/stats").await.body;
    assert_eq!(
        (stats["entities"].as_u64(), stats["observations"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(stats["relations"], 1);
    assert_eq!(stats["index_entries"], 1);
}

#[tokio::test]
async fn a_paraphrase_ranks_above_unrelated_text() {
    let server = Server::start_fresh(&AgentsDir::new(), None);
    for (name, fact) in [
        ("alice", "Alice drinks green tea every morning"),
        ("server-room", "The server room is on the third floor"),
        ("bob", "Bob repairs bicycles on weekends"),
        ("budget", "The quarterly budget was approved in March"),
    ] {
        let body =
            json!({"agent": "a", "name": name, "entity_type": "note", "observations": [fact]});
        assert_eq!(
            server.post("/api/v1/memory/entities", body).await.status,
            201
        );
    }
    // No word in common with the stored sentence but meaning.
    let reply = server.post("/api/v1/memory/search",
        json!({"agent": "a", "query": "which person enjoys a hot beverage at breakfast?", "limit": 4}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let hits = reply.body["hits"].as_array().unwrap();
    assert_eq!(hits[0]["entity"], "alice", "{}", reply.body);
    assert!(hits[0]["similarity"].as_f64().unwrap() > hits[1]["similarity"].as_f64().unwrap());

    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "a", "query": "bicycle", "limit": 1, "entity_type": "note"}),
        )
        .await;
    assert_eq!(reply.body["hits"][0]["entity"], "bob");
}

#[tokio::test]
async fn memory_survives_a_restart_and_forget_cascades() {
    let agents = AgentsDir::new();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(&agents, data.path(), None);
    for (name, fact) in [
        ("alice", "Alice drinks green tea"),
        ("bob", "Bob fixes bicycles"),
    ] {
        let body =
            json!({"agent": "a", "name": name, "entity_type": "person", "observations": [fact]});
        server.post("/api/v1/memory/entities", body).await;
    }
    let knows = json!({"agent": "a", "from": "alice", "to": "bob", "relation_type": "knows"});
    server.post("/api/v1/memory/relations", knows).await;
    assert!(server.terminate().success());

    let server = Server::start_with(&agents, data.path(), None);
    let reply = server
        .get("/api/v1/memory/graph/alice?agent=a&depth=2")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["entities"].as_array().unwrap().len(), 2);
    assert_eq!(reply.body["relations"][0]["relation_type"], "knows");
    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "a", "query": "tea drinker"}),
        )
        .await;
    assert_eq!(
        reply.body["hits"][0]["entity"], "alice",
        "index reloaded: {}",
        reply.body
    );

    let reply = server
        .client()
        .delete(server.url("/api/v1/memory/entities/alice?agent=a"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let stats = server.get("/api/v1/memory/stats").await.body;
    assert_eq!(
        (stats["entities"].as_u64(), stats["relations"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(stats["observations"], 1);
    assert_eq!(stats["index_entries"], 1);
    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "a", "query": "green tea"}),
        )
        .await;
    assert!(
        observations_of(&reply.body)
            .iter()
            .all(|o| !o.contains("tea")),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn concurrent_writers_lose_nothing() {
    let server = Server::start_fresh(&AgentsDir::new(), Some(crate::support::NO_EMBEDDINGS));
    let url = server.url("/api/v1/memory/entities");
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let url = url.clone();
            let client = server.client();
            tokio::spawn(async move {
                for n in 0..25 {
                    let body = json!({
                        "agent": format!("w{writer}"),
                        "name": format!("entity-{n}"),
                        "entity_type": "item",
                        "observations": [format!("writer {writer} item {n}")]
                    });
                    let response = client.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(response.status(), 201);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stats = server.get("/api/v1/memory/stats").await.body;
    assert_eq!(
        (stats["entities"].as_u64(), stats["observations"].as_u64()),
        (Some(200), Some(200))
    );
    // Without a model, search is keyword-only and still scoped.
    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "w3", "query": "item 7"}),
        )
        .await;
    let found = observations_of(&reply.body);
    assert!(found.contains(&"writer 3 item 7".to_owned()), "{found:?}");
    assert!(
        found.iter().all(|o| o.starts_with("writer 3 ")),
        "{found:?}"
    );
}

async fn export(server: &Server, embeddings: bool) -> String {
    let response = server
        .client()
        .get(server.url(&format!("/api/v1/memory/export?embeddings={embeddings}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn import(server: &Server, body: String) -> Reply {
    let response = server
        .client()
        .post(server.url("/api/v1/memory/import"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

#[tokio::test]
async fn import_of_an_export_reproduces_the_graph() {
    let source = Server::start_fresh(&AgentsDir::new(), None);
    for body in [
        json!({"agent": "a", "name": "alice", "entity_type": "person", "observations": ["Alice drinks green tea", "Alice lives in Oslo"]}),
        json!({"agent": "a", "scope": "workspace", "name": "bob", "entity_type": "person", "observations": ["Bob fixes bicycles"]}),
        json!({"scope": "global", "name": "office", "entity_type": "place", "observations": ["The office has a garden"]}),
    ] {
        assert_eq!(
            source.post("/api/v1/memory/entities", body).await.status,
            201
        );
    }
    let knows = json!({"agent": "a", "from": "alice", "to": "bob", "relation_type": "knows", "strength": 0.5});
    assert_eq!(
        source.post("/api/v1/memory/relations", knows).await.status,
        201
    );
    let more = json!({"agent": "a", "entity": "alice", "observations": ["Alice plays chess"]});
    let reply = source.post("/api/v1/memory/observations", more).await;
    assert_eq!((reply.status, &reply.body["added"]), (200, &json!(1)));

    let without_vectors = export(&source, false).await;
    assert_eq!(without_vectors.lines().count(), 4, "{without_vectors}");
    let with_vectors = export(&source, true).await;

    // Without vectors: the target embeds every observation itself.
    let target = Server::start_fresh(&AgentsDir::new(), None);
    let reply = import(&target, without_vectors.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({"entities": 3, "observations_added": 5, "observations_embedded": 5, "relations": 1})
    );
    assert_eq!(export(&target, false).await, without_vectors);
    let reply = target
        .post(
            "/api/v1/memory/search",
            json!({"agent": "a", "query": "board games"}),
        )
        .await;
    assert_eq!(
        reply.body["hits"][0]["observation"], "Alice plays chess",
        "{}",
        reply.body
    );

    // Again, with vectors: nothing new is stored and nothing is embedded.
    let reply = import(&target, with_vectors).await;
    assert_eq!(
        reply.body,
        json!({"entities": 3, "observations_added": 0, "observations_embedded": 0, "relations": 1})
    );

    // A bad line is reported with its number.
    let reply = import(&target, "{\"kind\": \"entity\"}\n".to_owned()).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );
}

#[tokio::test]
async fn the_operator_means_the_shared_entity_and_types_follow_updates() {
    let server = Server::start_fresh(&AgentsDir::new(), None);
    let private = json!({"agent": "a", "name": "alice", "entity_type": "person", "observations": ["private note about alice"]});
    assert_eq!(
        server.post("/api/v1/memory/entities", private).await.status,
        201
    );
    let shared = json!({"scope": "global", "name": "alice", "entity_type": "person", "observations": ["alice is on the team page"]});
    assert_eq!(
        server.post("/api/v1/memory/entities", shared).await.status,
        201
    );

    let reply = server.get("/api/v1/memory/entities/alice").await;
    assert_eq!(reply.body["scope"], "global", "{}", reply.body);
    let response = server
        .client()
        .delete(server.url("/api/v1/memory/entities/alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply = server.get("/api/v1/memory/entities/alice?agent=a").await;
    assert_eq!(
        reply.body["observations"],
        json!(["private note about alice"])
    );

    // Re-typing an entity right away moves its observations to the new type.
    let retyped =
        json!({"agent": "a", "name": "alice", "entity_type": "robot", "observations": []});
    assert_eq!(
        server.post("/api/v1/memory/entities", retyped).await.status,
        200
    );
    let search = |entity_type: &str| json!({"agent": "a", "query": "note about alice", "entity_type": entity_type});
    let reply = server.post("/api/v1/memory/search", search("robot")).await;
    assert_eq!(
        observations_of(&reply.body),
        vec!["private note about alice"]
    );
    for nothing in ["person", "never-seen-type"] {
        let reply = server.post("/api/v1/memory/search", search(nothing)).await;
        assert!(
            observations_of(&reply.body).is_empty(),
            "{nothing}: {}",
            reply.body
        );
    }
}

/// Polls the stats until `entities` reaches `want` or 10 s pass.
async fn wait_for_entities(server: &Server, want: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stats = server.get("/api/v1/memory/stats").await.body;
        if stats["entities"].as_u64() == Some(want) || std::time::Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn cleanup_keeps_each_agent_within_its_limit_dropping_the_stalest() {
    let config = format!(
        "{}[memory.cleanup]\ninterval = \"1500ms\"\nmax_entities_per_agent = 3\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&AgentsDir::new(), Some(&config));
    let remember = |agent: &str, name: String| json!({"agent": agent, "name": name, "entity_type": "note", "observations": [format!("{agent} wrote {name}")]});
    for n in 0..5 {
        let reply = server
            .post(
                "/api/v1/memory/entities",
                remember("alpha", format!("n{n}")),
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Touching the oldest makes it the freshest: n1 and n2 are now stalest.
    let reply = server
        .post(
            "/api/v1/memory/observations",
            json!({"agent": "alpha", "entity": "n0", "observations": ["alpha touched n0"]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    for n in 0..2 {
        server
            .post("/api/v1/memory/entities", remember("beta", format!("b{n}")))
            .await;
    }
    // Shared entities are not any agent's own and are not counted.
    server.post("/api/v1/memory/entities",
        json!({"name": "shared", "entity_type": "note", "observations": ["everyone reads this"]}),
    )
    .await;

    let stats = wait_for_entities(&server, 6).await;
    assert_eq!(stats["entities"].as_u64(), Some(6), "{stats}");
    let mut kept = Vec::new();
    for n in 0..5 {
        let reply = server
            .get(&format!("/api/v1/memory/entities/n{n}?agent=alpha"))
            .await;
        if reply.status == 200 {
            kept.push(format!("n{n}"));
        }
    }
    assert_eq!(kept, ["n0", "n3", "n4"]);
    assert!(server.log().contains("memory cleanup removed rows"));
}

#[tokio::test]
async fn cleanup_forgets_entities_older_than_max_age() {
    let config = format!(
        "{}[memory.cleanup]\ninterval = \"500ms\"\nmax_age = \"1s\"\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&AgentsDir::new(), Some(&config));
    let reply = server.post("/api/v1/memory/entities",
        json!({"agent": "alpha", "name": "fleeting", "entity_type": "note", "observations": ["gone soon"]}),
    )
    .await;
    assert_eq!(reply.status, 201);
    let stats = wait_for_entities(&server, 0).await;
    assert_eq!(stats["observations"].as_u64(), Some(0), "{stats}");
    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "alpha", "query": "gone soon"}),
        )
        .await;
    assert!(observations_of(&reply.body).is_empty(), "{:?}", reply.body);
}
