//! Proof under hostile conditions: plugins trying to leave the sandbox or
//! flood the host, garbage input on every kind of door, slow clients, and
//! the process killed while it acknowledges writes.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::{AgentsDir, Reply, Server, component, manifest};
use base64::Engine;
use serde_json::{Value, json};

fn faults() -> AgentsDir {
    AgentsDir::with_examples().with(
        "fault",
        &manifest(
            "fault",
            "faults",
            "capabilities = [\"faults\"]\n[resource_limits]\nmemory_mb = 64\nexecution_timeout = \"5s\"",
        ),
    )
}

#[tokio::test]
async fn a_plugin_cannot_read_files_environment_or_network() {
    let server = Server::start(&faults());
    let reply = server
        .send("fault", &json!({"content": {"fault": "escape"}}))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = &reply.body["reply"]["content"];
    for door in ["file", "network", "dns"] {
        let outcome = seen[door].as_str().unwrap();
        assert!(outcome.starts_with("denied"), "{door}: {outcome}");
    }
    assert_eq!(seen["env"], json!([]), "{seen}");
    assert_eq!(seen["args"], json!([]), "{seen}");
}

#[tokio::test]
async fn floods_from_a_plugin_end_that_call_only() {
    let server = Server::start(&faults());
    // 1 MiB of stderr is dropped past its tail, not turned into a failure.
    let flood = server
        .send("fault", &json!({"content": {"fault": "flood"}}))
        .await;
    assert_eq!(flood.status, 200, "{:?}", flood.body);
    assert_eq!(flood.body["reply"]["content"], json!({"ok": true}));
    let huge = server
        .send("fault", &json!({"content": {"fault": "huge_reply"}}))
        .await;
    huge.assert_error(422, "plugin_error");
    assert!(
        huge.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_reply_size")
    );
    let echo = server.send("echo", &json!({"content": 1})).await;
    assert_eq!(echo.status, 200);
}

/// The value of the metric line that starts with `series`, 0 if absent.
async fn metric(server: &Server, series: &str) -> f64 {
    let url = server.metrics_url.clone().expect("metrics listener");
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn runaway_plugins_finish_their_calls_at_low_priority_and_healthy_ones_do_not() {
    let agents = AgentsDir::with_examples()
        .with(
            "fault",
            &manifest(
                "fault",
                "faults",
                "capabilities = [\"faults\"]\n[resource_limits]\nexecution_timeout = \"300ms\"\nfuel = 100_000_000_000",
            ),
        )
        .with(
            "chatter",
            &manifest(
                "chatter",
                "chatter",
                "capabilities = [\"chatter\"]\ngrants = [\"log\", \"memory\"]\n[resource_limits]\nexecution_timeout = \"300ms\"\nfuel = 100_000_000_000",
            ),
        );
    let agents = agents.with(
        "loop-a",
        &manifest(
            "loop-a",
            "relay",
            "capabilities = [\"cycle\"]\ngrants = [\"log\", \"messaging\"]",
        ),
    );
    let server = Server::start(&agents);
    let series = |plugin: &str, reason: &str| {
        format!("caxton_wasm_low_priority_calls_total{{plugin=\"{plugin}\",reason=\"{reason}\"}}")
    };
    let echo = server.send("echo", &json!({"content": 1})).await;
    assert_eq!(echo.status, 200);

    let spin = server
        .send("fault", &json!({"content": {"fault": "loop"}}))
        .await;
    spin.assert_error(504, "deadline_exceeded");
    assert_eq!(metric(&server, &series("fault", "long")).await, 1.0);
    // A deadline missed at low priority is no reason for probation (a busy
    // plugin under load would stay there); a trap is.
    let fine = server.send("fault", &json!({"content": {}})).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    assert_eq!(metric(&server, &series("fault", "probation")).await, 0.0);
    let panic = server
        .send("fault", &json!({"content": {"fault": "panic"}}))
        .await;
    assert_eq!(panic.code(), "plugin_trap", "{}", panic.body);
    // Having just faulted, its next call starts at low priority: and still works.
    let fine = server.send("fault", &json!({"content": {}})).await;
    assert_eq!(
        fine.body["reply"]["content"],
        json!({"ok": true}),
        "{}",
        fine.body
    );
    assert_eq!(metric(&server, &series("fault", "probation")).await, 1.0);

    // A plugin hammering log and memory is stopped by its deadline too, and
    // what it wrote is readable memory, not a broken store.
    let chatter = server.send("chatter", &json!({"content": {}})).await;
    assert_eq!(chatter.code(), "deadline_exceeded", "{}", chatter.body);
    assert_eq!(metric(&server, &series("chatter", "long")).await, 1.0);
    let stats = server.get_json("/api/v1/memory/stats").await;
    assert!(stats["observations"].as_u64().unwrap() > 10, "{stats}");

    // An agent caught in a message cycle is put on probation too.
    let cycle = json!({"content": {"cycle": ["loop-a"], "hop": 0}});
    assert_eq!(server.send("loop-a", &cycle).await.status, 422);
    let fine = server
        .send("loop-a", &json!({"content": {"show": "parameters"}}))
        .await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    assert_eq!(metric(&server, &series("loop-a", "probation")).await, 1.0);

    let echo = server.send("echo", &json!({"content": 2})).await;
    assert_eq!(echo.status, 200);
    assert_eq!(metric(&server, &series("echo", "long")).await, 0.0);
    assert_eq!(metric(&server, &series("echo", "probation")).await, 0.0);
}

fn deploy(server: &Server, manifest: &str, bytes: &[u8]) -> reqwest::RequestBuilder {
    server
        .client()
        .post(server.url("/api/v1/agents"))
        .json(&json!({
            "manifest": manifest,
            "component": base64::engine::general_purpose::STANDARD.encode(bytes),
        }))
}

#[tokio::test]
async fn garbage_on_every_door_gets_a_clear_4xx_and_changes_nothing() {
    let server = Server::start(&AgentsDir::with_examples());
    let listed = |server: &Server| {
        let url = server.url("/api/v1/agents");
        let client = server.client();
        async move {
            client.get(url).send().await.unwrap().headers()["x-total-count"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let before = listed(&server).await;
    let agent =
        "name = \"intruder\"\nversion = \"1.0.0\"\ncapabilities = [\"x\"]\ngrants = [\"log\"]\n";
    let tool = "name = \"intruder\"\nversion = \"1.0.0\"\nkind = \"tool\"\n";
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let csv_tool = std::fs::read(component("csv_parser")).unwrap();
    let echo_agent = std::fs::read(component("echo")).unwrap();
    for (what, manifest, bytes, expect) in [
        (
            "garbage bytes",
            agent,
            b"not wasm at all".to_vec(),
            "component",
        ),
        ("a core module", agent, core_module, "component"),
        (
            "a tool component deployed as an agent",
            agent,
            csv_tool,
            "agent",
        ),
        (
            "an agent component deployed as a tool",
            tool,
            echo_agent,
            "tool",
        ),
    ] {
        let reply = Reply::read(deploy(&server, manifest, &bytes).send().await.unwrap()).await;
        assert_eq!(reply.status, 422, "{what}: {:?}", reply.body);
        let message = reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase();
        assert!(message.contains(expect), "{what}: {message}");
    }
    let huge_manifest = format!("{agent}description = \"{}\"\n", "z".repeat(2 << 20));
    let reply = Reply::read(
        server
            .client()
            .post(server.url("/api/v1/agents/validate"))
            .header("content-type", "application/toml")
            .body(huge_manifest)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 413);

    let raw = |body: Vec<u8>| {
        server
            .client()
            .post(server.url("/api/v1/messages"))
            .header("content-type", "application/json")
            .body(body)
    };
    let invalid_utf8 = Reply::read(
        raw(b"{\"receiver\": \"echo\", \"content\": \"\xff\xfe\"}".to_vec())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(invalid_utf8.status, 400, "{:?}", invalid_utf8.body);
    let nested = format!(
        "{{\"receiver\": \"echo\", \"content\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep = Reply::read(raw(nested.into_bytes()).send().await.unwrap()).await;
    assert_eq!(deep.status, 400, "{:?}", deep.body);
    assert!(
        deep.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recursion"),
        "{:?}",
        deep.body
    );

    let toml_garbage = Reply::read(
        server
            .client()
            .post(server.url("/api/v1/agents/validate"))
            .header("content-type", "application/toml")
            .body(vec![0xff, 0x00, 0x12])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(toml_garbage.status, 400);

    assert_eq!(listed(&server).await, before);
    let echo = server.send("echo", &json!({"content": "still here"})).await;
    assert_eq!(echo.status, 200);
}

/// `count` raw connections that each send `start` of a request and stall.
fn stalled_connections(server: &Server, count: usize, start: &str) -> Vec<std::net::TcpStream> {
    let address = server.base.trim_start_matches("http://");
    (0..count)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.write_all(start.as_bytes()).unwrap();
            stream
        })
        .collect()
}

#[tokio::test]
async fn slow_clients_cannot_hold_every_connection() {
    let config = format!(
        "{}[http_server]\nmax_connections = 4\nheader_read_timeout = \"500ms\"\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&AgentsDir::new(), Some(&config));
    // Take every connection and never finish the headers.
    let mut slow = stalled_connections(&server, 4, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n");
    let started = Instant::now();
    let response = crate::support::http()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(server.url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The server hung up on the slow ones.
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = Vec::new();
        let _ = stream.read_to_end(&mut buffer);
        let text = String::from_utf8_lossy(&buffer);
        assert!(buffer.is_empty() || text.contains("408"), "{text}");
    }
}

#[tokio::test]
async fn slow_bodies_are_cut_off_by_the_request_timeout() {
    let config = format!(
        "{}[http_server]\nmax_connections = 4\nrequest_timeout = \"1s\"\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&AgentsDir::new(), Some(&config));
    let token = server.token.clone().expect("auth is on");
    // Every connection sends its headers, then a trickle of a body that
    // would take hours at this rate.
    let head = format!(
        "POST /api/v1/memory/entities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"name\": \""
    );
    let mut slow = stalled_connections(&server, 4, &head);
    let started = Instant::now();
    for stream in &mut slow {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0u8; 4096];
        let read = stream.read(&mut buffer).unwrap_or(0);
        let text = String::from_utf8_lossy(&buffer[..read]);
        assert!(text.starts_with("HTTP/1.1 504"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The connections are free again: a normal client is served.
    let health = server.get_json("/api/v1/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    // Nothing half-sent was stored.
    let stats = server.get_json("/api/v1/memory/stats").await;
    assert_eq!(stats["entities"], 0, "{stats}");
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_every_time() {
    let data = tempfile::tempdir().unwrap();
    let agents = AgentsDir::with_examples();
    let mut acknowledged_entities: Vec<String> = Vec::new();
    let mut acknowledged_conversations: Vec<String> = Vec::new();
    // Checking every acknowledged write is far above the default rate limit.
    let config = format!(
        "{}[http_server.rate_limit]\nenabled = false\n",
        crate::support::NO_EMBEDDINGS
    );
    // What the last round acknowledged is checked after the kill that
    // ended it; the last start checks everything once more.
    let (mut fresh_entities, mut fresh_conversations) = (0, 0);
    for round in 0..=20 {
        let server = Server::start_with(&agents, data.path(), Some(&config));
        let everything = round == 20;
        let entities = if everything { 0 } else { fresh_entities };
        let conversations = if everything { 0 } else { fresh_conversations };
        for name in &acknowledged_entities[entities..] {
            let reply = server
                .get_json(&format!("/api/v1/memory/entities/{name}"))
                .await;
            assert_eq!(reply["name"], name.as_str(), "round {round}: lost {name}");
        }
        for id in &acknowledged_conversations[conversations..] {
            let thread = server
                .get_json(&format!("/api/v1/conversations/{id}/messages"))
                .await;
            assert_eq!(
                thread["messages"].as_array().map(Vec::len),
                Some(2),
                "round {round}: {id}: {thread}"
            );
        }
        if everything {
            break;
        }
        (fresh_entities, fresh_conversations) = (
            acknowledged_entities.len(),
            acknowledged_conversations.len(),
        );
        // Write from several clients, then kill -9 in the middle of it.
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let (client, base) = (server.client(), server.base.clone());
                tokio::spawn(async move {
                    let mut entities = Vec::new();
                    let mut conversations = Vec::new();
                    for n in 0.. {
                        let name = format!("r{round}-w{writer}-n{n}");
                        let body = json!({"name": name, "entity_type": "note", "observations": [format!("fact {n}")]});
                        match client.post(format!("{base}/api/v1/memory/entities")).json(&body).send().await {
                            Ok(r) if r.status() == 201 => entities.push(name),
                            _ => break,
                        }
                        let message = json!({"receiver": "echo", "content": {"n": n}});
                        match client.post(format!("{base}/api/v1/messages")).json(&message).send().await {
                            Ok(r) if r.status() == 200 => match r.json::<Value>().await {
                                Ok(body) => conversations.push(body["conversation_id"].as_str().unwrap().to_owned()),
                                Err(_) => break,
                            },
                            _ => break,
                        }
                    }
                    (entities, conversations)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + round * 10)).await;
        drop(server); // SIGKILL
        for writer in writers {
            let (entities, conversations) = writer.await.unwrap();
            acknowledged_entities.extend(entities);
            acknowledged_conversations.extend(conversations);
        }
    }
    assert!(
        acknowledged_entities.len() > 100,
        "{}",
        acknowledged_entities.len()
    );
    // A last check, offline: the store is intact.
    let output = crate::support::caxton_command()
        .args(["storage", "maintenance", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["integrity"], json!(["ok"]), "{report}");
    eprintln!(
        "{} entities and {} conversations acknowledged across 20 kills; none lost",
        acknowledged_entities.len(),
        acknowledged_conversations.len()
    );
}

#[tokio::test]
async fn healthy_traffic_sees_no_errors_while_every_fault_runs() {
    let limits = "fuel = 2_000_000_000\nmemory_mb = 32\nexecution_timeout = \"1s\"";
    let agents = AgentsDir::with_examples()
        .with(
            "fault",
            &manifest(
                "fault",
                "faults",
                &format!("capabilities = [\"faults\"]\n[resource_limits]\n{limits}"),
            ),
        )
        .with(
            "chatter",
            &manifest(
                "chatter",
                "chatter",
                &format!("capabilities = [\"chatter\"]\ngrants = [\"log\", \"memory\"]\n[resource_limits]\n{limits}"),
            ),
        )
        .with(
            "loop-a",
            &manifest(
                "loop-a",
                "relay",
                "capabilities = [\"cycle\"]\ngrants = [\"log\", \"messaging\"]",
            ),
        );
    let config = format!(
        "{}[http_server.rate_limit]\nenabled = false\n[wasm_runtime]\npool_size = 32\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_fresh(&agents, Some(&config));
    let deadline = Instant::now() + Duration::from_secs(4);
    // Each client repeats its request until the deadline; every answer must
    // be the clear failure its fault deserves, never a 500.
    type Expected = fn(u16) -> bool;
    let clients: Vec<(&str, Value, Expected)> = caxton::benchmark::FAULT_KINDS
        .into_iter()
        .map(|fault| {
            let check: Expected = |status| status != 500;
            ("fault", json!({"fault": fault}), check)
        })
        .chain([
            (
                "chatter",
                json!({}),
                (|status| status == 504) as fn(u16) -> bool,
            ),
            ("loop-a", json!({"cycle": ["loop-a"], "hop": 0}), |status| {
                status == 422
            }),
        ])
        .collect();
    let faults: Vec<_> = clients
        .into_iter()
        .map(|(agent, content, check)| {
            let client = server.client();
            let url = server.url(&format!("/api/v1/agents/{agent}/messages"));
            tokio::spawn(async move {
                let mut answered = 0;
                while Instant::now() < deadline {
                    let body = json!({"content": content});
                    let response = client.post(&url).json(&body).send().await.unwrap();
                    let status = response.status().as_u16();
                    assert!(check(status), "{agent} {content}: {status}");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let mut healthy = Vec::new();
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let reply = server.send("echo", &json!({"content": {"ping": 1}})).await;
        if reply.status == 200 {
            healthy.push(started.elapsed());
        } else {
            failures.push(reply.body);
        }
    }
    for fault in faults {
        assert!(fault.await.unwrap() > 0);
    }
    assert!(
        failures.is_empty(),
        "{} healthy requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(healthy.len() > 50, "{}", healthy.len());
    let health = server.get_json("/api/v1/health").await;
    let rss = health["resident_memory_bytes"].as_u64().unwrap();
    // 32 slots of at most 32 MiB could reach 1 GiB; the host stays far below.
    assert!(rss < 512 << 20, "RSS {rss}");
    healthy.sort();
    eprintln!(
        "healthy echo under faults: {} calls, median {:?}, p99 {:?}, RSS {} MB",
        healthy.len(),
        healthy[healthy.len() / 2],
        healthy[healthy.len() * 99 / 100],
        rss >> 20
    );
}

/// A small tmpfs, unmounted on drop (even when the test fails).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` when this machine does not let us mount (not root).
    fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_keeps_reads_and_recovers() {
    let Some(disk) = SmallDisk::mount(24) else {
        eprintln!("SKIPPED: mounting a tmpfs needs root; the disk-full proof did not run");
        return;
    };
    let data = disk.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = format!(
        "{}[http_server.rate_limit]\nenabled = false\n",
        crate::support::NO_EMBEDDINGS
    );
    let server = Server::start_with(&AgentsDir::with_examples(), &data, Some(&config));
    let client = server.client();
    let write = |n: usize| {
        let body = json!({"name": format!("note-{n}"), "entity_type": "note", "observations": ["x".repeat(8000)]});
        client
            .post(server.url("/api/v1/memory/entities"))
            .json(&body)
            .send()
    };
    let mut written = Vec::new();
    for n in 0..10 {
        assert_eq!(write(n).await.unwrap().status(), 201);
        written.push(n);
    }
    // Fill what is left of the disk with a ballast file we can delete later.
    let ballast = disk.dir.path().join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0u8; 256 << 10];
    while file.write_all(&chunk).is_ok() {}
    drop(file);
    let mut refusal = None;
    for n in 10..2000 {
        let reply = Reply::read(write(n).await.unwrap()).await;
        match reply.status {
            201 => written.push(n),
            _ => {
                refusal = Some(reply);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk never filled");
    assert_eq!(
        (refusal.status, refusal.code()),
        (507, "storage_full"),
        "{:?}",
        refusal.body
    );
    assert!(
        refusal.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("full")
    );

    // Reads keep working, and what was written is there.
    let stats = server.get_json("/api/v1/memory/stats").await;
    assert_eq!(
        stats["entities"].as_u64(),
        Some(written.len() as u64),
        "{stats}"
    );
    if let Some(last) = written.last() {
        let entity = server
            .get_json(&format!("/api/v1/memory/entities/note-{last}"))
            .await;
        assert_eq!(entity["name"], format!("note-{last}"));
    }
    assert_eq!(
        server.send("echo", &json!({"content": 1})).await.status,
        200
    );

    // Space returns: writes succeed again.
    std::fs::remove_file(&ballast).unwrap();
    let again = Reply::read(write(9999).await.unwrap()).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    drop(server);
    let output = crate::support::caxton_command()
        .args(["storage", "maintenance", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "disk full after {} entities; reads kept working; writes recovered",
        written.len()
    );
}
