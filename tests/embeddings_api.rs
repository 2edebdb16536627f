//! The embeddings surfaces: the OpenAI-shaped HTTP route on a real server,
//! and `caxton embed` on the command line.

use base64::Engine;

use crate::support::{AgentsDir, Reply, Server};
use serde_json::{Value, json};

fn reference(index: usize) -> (String, Vec<f32>) {
    let line = include_str!("data/minilm-int8-ort.jsonl")
        .lines()
        .nth(index)
        .unwrap();
    let value: Value = serde_json::from_str(line).unwrap();
    let vector = value["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    (value["text"].as_str().unwrap().to_owned(), vector)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// How close a served vector is to ONNX Runtime's: the server's default
/// precision is `auto`, int8 on some CPUs, whose vectors are within 0.995
/// of the f32 ones (tests/embeddings.rs measures both).
const AGREEMENT: f32 = 0.995;

fn vector(item: &Value) -> Vec<f32> {
    item["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

async fn post(server: &Server, body: Value) -> Reply {
    let response = server
        .client()
        .post(server.url("/api/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

#[tokio::test]
async fn the_embeddings_route_speaks_the_openai_shape() {
    let server = Server::start_fresh(&AgentsDir::new(), None);
    let (first_text, first_vector) = reference(0);
    let (second_text, second_vector) = reference(1);

    let reply = post(&server, json!({"input": first_text})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["object"], "list");
    assert_eq!(reply.body["model"], "all-MiniLM-L6-v2");
    let data = reply.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[0]["index"], 0);
    assert!(cosine(&vector(&data[0]), &first_vector) >= AGREEMENT);

    let reply = post(
        &server,
        json!({"input": [second_text, first_text], "model": "sentence-transformers/all-MiniLM-L6-v2"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = reply.body["data"].as_array().unwrap();
    assert_eq!(data[1]["index"], 1);
    assert!(cosine(&vector(&data[0]), &second_vector) >= AGREEMENT);
    assert!(cosine(&vector(&data[1]), &first_vector) >= AGREEMENT);
    let tokens = reply.body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 4, "{}", reply.body["usage"]);
    assert_eq!(reply.body["usage"]["total_tokens"], tokens);

    // OpenAI's base64 form: the same vector as little-endian float32 bytes.
    let reply = post(
        &server,
        json!({"input": [first_text, second_text], "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let encoded = reply.body["data"][1]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded.len(), 384);
    assert!(cosine(&decoded, &second_vector) >= AGREEMENT);

    for bad in [
        json!({"input": "x", "model": "text-embedding-3-small"}),
        json!({"input": []}),
        json!({"input": "x", "encoding_format": "int8"}),
        json!({"input": "x", "dimensions": 1536}),
        json!({"text": "x"}),
    ] {
        let reply = post(&server, bad.clone()).await;
        assert_eq!((reply.status, reply.code()), (400, "bad_request"), "{bad}");
    }

    let health = server.get_json("/api/v1/health").await;
    assert_eq!(health["embeddings"], "ready");
}

#[tokio::test]
async fn with_semantic_search_disabled_the_route_says_so() {
    let server = Server::start(&AgentsDir::new());
    let reply = post(&server, json!({"input": "hello"})).await;
    reply.assert_error(503, "embeddings_disabled");
}

#[tokio::test]
async fn a_server_without_its_model_serves_keyword_search_and_says_how_to_fetch_it() {
    let empty = tempfile::tempdir().unwrap();
    let config = format!(
        "[memory.embedding_config]\nmodel_path = {:?}\n",
        empty.path().display().to_string()
    );
    let data = tempfile::tempdir().unwrap();
    let agents = AgentsDir::new();
    let server = Server::start_with(&agents, data.path(), Some(&config));
    let health = server.get_json("/api/v1/health").await;
    assert_eq!(health["embeddings"], "not_installed", "{health}");
    let log = server.wait_for_log("caxton models fetch");
    assert!(log.contains("caxton models fetch"), "{log}");

    let reply = post(&server, json!({"input": "hello"})).await;
    reply.assert_error(503, "embeddings_unavailable");
    assert!(
        reply.body.to_string().contains("caxton models fetch"),
        "{}",
        reply.body
    );

    // Memory still works, by keywords.
    let created = server
        .post(
            "/api/v1/memory/entities",
            json!({"scope": "global", "name": "kitchen sensor", "entity_type": "device",
                   "observations": ["reports the fridge temperature every minute"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let found = server
        .post(
            "/api/v1/memory/search",
            json!({"query": "fridge temperature"}),
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let hits = found.body["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{}", found.body);
    assert_eq!(hits[0]["entity"], "kitchen sensor");
    assert!(hits[0]["similarity"].is_null(), "{}", found.body);

    // Once the model is in place, a restart embeds what was stored
    // without it, and the same memory is found by meaning.
    server.terminate();
    let server = Server::start_with(&agents, data.path(), None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stats = server.get_json("/api/v1/memory/stats").await;
        if stats["observations_without_embedding"] == 0 && stats["index_entries"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never embedded: {stats}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let found = server
        .post(
            "/api/v1/memory/search",
            json!({"query": "how cold is the refrigerator?"}),
        )
        .await;
    let hits = found.body["hits"].as_array().unwrap();
    assert_eq!(hits[0]["entity"], "kitchen sensor", "{}", found.body);
    assert!(
        hits[0]["similarity"].as_f64().unwrap() > 0.3,
        "{}",
        found.body
    );
}

#[test]
fn a_server_with_a_corrupt_model_refuses_to_start_and_says_how_to_replace_it() {
    let data = tempfile::tempdir().unwrap();
    let model = data.path().join("models/all-MiniLM-L6-v2");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.onnx"), b"not a model").unwrap();
    std::fs::write(model.join("tokenizer.json"), b"{}").unwrap();
    let output = crate::support::caxton_command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--agents-dir")
        .arg(data.path().join("agents"))
        .env("XDG_CONFIG_HOME", data.path().join("config"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is corrupt"), "{stderr}");
    assert!(stderr.contains("caxton models fetch"), "{stderr}");
}

#[test]
fn caxton_embed_prints_one_json_line_per_text() {
    let (text, expected) = reference(2);
    let output = crate::support::caxton_command()
        .args(["embed", &text, "second text"])
        .env_remove("CAXTON_CONFIG")
        .env(
            "CAXTON_MEMORY__EMBEDDING_CONFIG__MODEL_PATH",
            caxton::harness::model_dir(),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], text);
    assert!(cosine(&vector(&lines[0]), &expected) >= AGREEMENT);
    assert_eq!(lines[1]["embedding"].as_array().unwrap().len(), 384);
}
