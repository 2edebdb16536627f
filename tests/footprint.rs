//! The vector index across restarts (saved at a clean stop, caught up with
//! the store at the next start, rebuilt after a crash or from a damaged
//! file), and a large store on a box with 512 MB.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::cgroup::MemoryCgroup;
use crate::support::{AgentsDir, Server};

fn index_file(data: &Path) -> std::path::PathBuf {
    data.join("memory.db.index")
}

fn entities_of(hits: &Value) -> Vec<String> {
    crate::support::hit_fields(hits, "entity")
}

async fn remember(server: &Server, name: &str, fact: &str) {
    let body = json!({"agent": "a", "name": name, "entity_type": "person", "observations": [fact]});
    let reply = server.post("/api/v1/memory/entities", body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

async fn search(server: &Server, query: &str) -> Vec<String> {
    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "a", "query": query, "limit": 3}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    entities_of(&reply.body)
}

async fn index_entries(server: &Server) -> u64 {
    server.get_json("/api/v1/memory/stats").await["index_entries"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn the_index_comes_back_from_its_file_and_a_crash_rebuilds_it() {
    let agents = AgentsDir::new();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(&agents, data.path(), None);
    remember(&server, "alice", "Alice drinks green tea every morning").await;
    remember(&server, "bob", "Bob repairs bicycles in his garage").await;
    remember(&server, "carol", "Carol plays the piano at concerts").await;
    assert!(server.terminate().success());
    assert!(
        index_file(data.path()).exists(),
        "a clean stop saves the index"
    );

    // Changed while the host was down: bob is deleted and carol re-typed
    // behind its back.
    {
        let db = libsql::Builder::new_local(data.path().join("memory.db"))
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        conn.execute("PRAGMA foreign_keys = ON", ()).await.unwrap();
        let deleted = conn
            .execute("DELETE FROM entities WHERE name = 'bob'", ())
            .await
            .unwrap();
        assert_eq!(deleted, 1);
        conn.execute(
            "UPDATE entities SET entity_type = 'musician' WHERE name = 'carol'",
            (),
        )
        .await
        .unwrap();
    }

    let server = Server::start_with(&agents, data.path(), None);
    let log = server.wait_for_log("memory index loaded");
    assert!(log.contains(r#"from="file""#), "{log}");
    assert!(
        !index_file(data.path()).exists(),
        "the file is consumed as it is read"
    );
    assert_eq!(
        index_entries(&server).await,
        2,
        "the deletion was caught up"
    );
    assert_eq!(search(&server, "someone who drinks tea").await[0], "alice");
    assert!(
        !search(&server, "fixing a bike")
            .await
            .contains(&"bob".to_owned())
    );
    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "a", "query": "plays an instrument", "entity_type": "musician"}),
        )
        .await;
    assert_eq!(
        entities_of(&reply.body),
        ["carol"],
        "the re-typing was caught up"
    );

    // Written after the file was read, then a crash: no file, a rebuild.
    remember(&server, "dave", "Dave grows tomatoes on his balcony").await;
    server.kill();
    assert!(!index_file(data.path()).exists());
    let server = Server::start_with(&agents, data.path(), None);
    let log = server.wait_for_log("memory index loaded");
    assert!(log.contains(r#"from="store""#), "{log}");
    assert_eq!(index_entries(&server).await, 3);
    assert_eq!(search(&server, "vegetable gardening").await[0], "dave");

    // A damaged file is reported and rebuilt from the store.
    assert!(server.terminate().success());
    let file = index_file(data.path());
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let server = Server::start_with(&agents, data.path(), None);
    let log = server.wait_for_log("memory index loaded");
    assert!(
        log.contains("cannot use the saved memory index") && log.contains("checksum"),
        "{log}"
    );
    assert!(log.contains(r#"from="store""#), "{log}");
    assert_eq!(index_entries(&server).await, 3);
    assert_eq!(search(&server, "music performance").await[0], "carol");
}

/// Observations in the large store: the scale the resource-constrained
/// profile is promised for.
const LARGE_STORE: usize = 100_000;

/// Fills the store at `database` with `observations` observations (10 per
/// entity, 1,000 entities per agent: the resource-constrained profile's
/// per-agent limit) with random unit vectors, straight through SQL: the
/// test is about the host's memory with such a store, not how it was filled.
async fn fill_store(database: &Path, observations: usize) {
    let db = caxton::store::Db::open(database, &caxton::config::SqliteConfig::default())
        .await
        .unwrap();
    let conn = db.writer().await;
    conn.execute("BEGIN", ()).await.unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let words = ["river", "invoice", "garden", "sensor", "ticket", "kitchen"];
    for entity in 0..observations / 10 {
        conn.execute(
            "INSERT INTO entities (scope, owner, name, entity_type, created_at, updated_at)
             VALUES ('agent', ?1, ?2, 'bulk', 0, 0)",
            [
                format!("bulk-{}", entity / 1000),
                format!("entity-{entity}"),
            ],
        )
        .await
        .unwrap();
        let id = conn.last_insert_rowid();
        for i in 0..10 {
            let vector: Vec<f32> = (0..384).map(|_| next()).collect();
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            let blob: Vec<u8> = vector
                .iter()
                .flat_map(|v| (v / norm).to_le_bytes())
                .collect();
            let text = format!(
                "Entry {entity}.{i}: the {} by the {} was logged.",
                words[(entity + i) % words.len()],
                words[(entity * 7 + i) % words.len()]
            );
            conn.execute(
                "INSERT INTO observations (entity_id, text, embedding, created_at)
                 VALUES (?1, ?2, ?3, 0)",
                libsql::params![id, text, blob],
            )
            .await
            .unwrap();
        }
    }
    conn.execute("COMMIT", ()).await.unwrap();
}

/// Searches and writes from `clients` tasks for `duration`; every answer
/// must be a success.
async fn load(server: &Server, clients: usize, duration: Duration) -> usize {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let http = server.client();
            let base = server.base.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while Instant::now() < deadline {
                    let (path, body) = if done % 4 == 0 {
                        (
                            "/api/v1/memory/entities",
                            json!({"agent": "writer", "name": format!("load-{client}-{done}"),
                                   "entity_type": "note",
                                   "observations": [format!("note {done} from client {client} about the garden")]}),
                        )
                    } else {
                        (
                            "/api/v1/memory/search",
                            json!({"agent": format!("bulk-{}", client % 10), "query": format!("what was logged by the river {done}"), "limit": 10}),
                        )
                    };
                    let reply = http
                        .post(format!("{base}{path}"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = reply.status();
                    assert!(
                        status.is_success(),
                        "{path}: {status} {}",
                        reply.text().await.unwrap_or_default()
                    );
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

#[tokio::test]
async fn a_store_of_100k_observations_runs_in_512_mb() {
    let cgroup = match MemoryCgroup::create(512 << 20) {
        Ok(cgroup) => cgroup,
        Err(why) => {
            eprintln!("skipped: cannot limit a server's memory here ({why})");
            return;
        }
    };
    let agents = AgentsDir::new();
    let data = tempfile::tempdir().unwrap();
    fill_store(&data.path().join("memory.db"), LARGE_STORE).await;
    let profile = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config/resource-constrained.toml"),
    )
    .unwrap();
    // The profile's per-client rate limit is for a box's many clients;
    // the load here comes from one address.
    let header = "[http_server.rate_limit]\n";
    assert!(profile.contains(header));
    let profile = profile.replace(header, &format!("{header}enabled = false\n"));
    let profile = Some(profile.as_str());

    // First start: the index is built from the store, under the limit.
    let procs = cgroup.procs();
    let server = Server::start_in(&agents, data.path(), profile, Some(&procs));
    assert_eq!(index_entries(&server).await, LARGE_STORE as u64);
    // A debug build scans the index slowly: the load is about surviving
    // under the limit, its speed is the benchmark's.
    let requests = load(&server, 8, Duration::from_secs(5)).await;
    assert!(requests >= 8, "only {requests} requests in 5 s");
    let reply = server
        .post(
            "/api/v1/memory/search",
            json!({"agent": "bulk-4", "query": "logged by the river"}),
        )
        .await;
    assert!(!entities_of(&reply.body).is_empty(), "{}", reply.body);
    // The start that built the index from the store peaked at 413 MB
    // before it was built in batches.
    let peak = server.peak_rss_bytes();
    assert!(
        peak < 384 << 20,
        "building the index: peak RSS {} MB",
        peak >> 20
    );
    assert!(server.terminate().success(), "a clean stop under the limit");

    // Warm start from the saved index, then the same load again.
    let server = Server::start_in(&agents, data.path(), profile, Some(&procs));
    let log = server.wait_for_log("memory index loaded");
    assert!(log.contains(r#"from="file""#), "{log}");
    let indexed = index_entries(&server).await;
    assert!(
        indexed > LARGE_STORE as u64,
        "the load's writes were indexed too: {indexed}"
    );
    load(&server, 8, Duration::from_secs(5)).await;
    assert_eq!(cgroup.oom_kills(), 0, "the OOM killer ran in the cgroup");
    assert_eq!(server.get("/api/v1/health").await.status, 200);
    // Within the limit is not enough: a box also runs its OS and agents.
    // The server keeps to three quarters of it.
    let peak = server.peak_rss_bytes();
    eprintln!(
        "100k observations under 512 MB: server VmHWM {} MB, cgroup peak {:?} MB",
        peak >> 20,
        cgroup.peak_bytes().map(|b| b >> 20)
    );
    assert!(peak < 384 << 20, "peak RSS {} MB", peak >> 20);
}
