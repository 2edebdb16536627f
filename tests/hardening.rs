//! What an outside review found (issue 12), each as the behaviour a user
//! relies on: names with spaces are reachable, strangers cannot grow the
//! server's memory or starve real clients, browsers cannot drive a server
//! whose auth is off, deployments and memory keep what they acknowledged,
//! and one plugin cannot take more than its share.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{AgentsDir, Reply, Server, component, manifest};
use base64::Engine;
use serde_json::{Value, json};

/// Config text: semantic search off, plus `extra`.
fn config(extra: &str) -> String {
    format!("{}{extra}", crate::support::NO_EMBEDDINGS)
}

fn start(agents: &AgentsDir, extra: &str) -> Server {
    Server::start_fresh(agents, Some(&config(extra)))
}

/// The API's address.
fn address(server: &Server) -> SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}

/// A client whose connections come from `local` (another loopback address).
fn client_from(server: &Server, local: IpAddr, token: bool) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", server.token.as_ref().unwrap())
                .parse()
                .unwrap(),
        );
    }
    crate::support::http()
        .local_address(local)
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Whether the server closes a fresh connection from `local` to `to`
/// without a word, within a second (an open one would wait for a request).
async fn is_closed_at_once(local: IpAddr, to: SocketAddr) -> bool {
    let Ok(mut socket) = connect_from(local, to).await else {
        return true;
    };
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    match socket.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A blocking TCP connection from `local` (std cannot bind before
/// connecting; tokio's socket can).
async fn connect_from(local: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    let stream = socket.connect(to).await?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

// 3. Percent-encoded path parameters.

#[tokio::test]
async fn names_with_spaces_can_be_fetched_graphed_and_deleted() {
    let server = start(&AgentsDir::with_examples(), "");
    let created = server
        .post(
            "/api/v1/memory/entities",
            json!({"agent": "echo", "name": "Alice Smith", "entity_type": "person", "observations": ["drinks tea"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);

    let fetched = server
        .get("/api/v1/memory/entities/Alice%20Smith?agent=echo")
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert!(
        fetched.body.to_string().contains("drinks tea"),
        "{}",
        fetched.body
    );
    let graph = server
        .get("/api/v1/memory/graph/Alice%20Smith?agent=echo")
        .await;
    assert_eq!(graph.status, 200, "{}", graph.body);
    assert_eq!(graph.body["entities"][0]["name"], "Alice Smith");

    let deleted = server
        .delete("/api/v1/memory/entities/Alice%20Smith?agent=echo")
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let gone = server
        .get("/api/v1/memory/entities/Alice%20Smith?agent=echo")
        .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

// 4. Metric labels a client chooses.

async fn scrape(server: &Server) -> String {
    reqwest::get(server.metrics_url.as_ref().expect("metrics listener"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn made_up_methods_do_not_add_metric_series() {
    let server = start(&AgentsDir::new(), "");
    let client = crate::support::http().build().unwrap();
    for n in 0..40 {
        let method = reqwest::Method::from_bytes(format!("BREW{n}").as_bytes()).unwrap();
        client
            .request(method, server.url("/api/v1/agents"))
            .send()
            .await
            .unwrap();
    }
    let text = scrape(&server).await;
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("caxton_server_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(!text.contains("BREW"), "{methods:?}");
    assert!(methods.contains("other"), "{methods:?}");
    assert!(methods.len() <= 8, "{methods:?}");
}

// 5. The metrics listener behind the API's front.

#[tokio::test]
async fn the_metrics_listener_limits_connections_and_slow_headers() {
    let server = start(
        &AgentsDir::new(),
        "[http_server]\nheader_read_timeout = \"500ms\"\n",
    );
    let metrics: SocketAddr = server
        .metrics_url
        .as_ref()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    // A header sent slowly is cut off at the header timeout.
    let mut slow = TcpStream::connect(metrics).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a half-sent header held the connection for {:?}",
        started.elapsed()
    );
    // Idle connections from one address stop at its limit.
    // The default limit: 64 per address.
    let held: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(metrics).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert!(is_closed_at_once(loopback, metrics).await);
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        scrape(&server)
            .await
            .contains("caxton_server_uptime_seconds")
    );
}

// 7. Hot reload and API deployments.

fn deploy_body(manifest_text: &str, bytes: &[u8]) -> Value {
    json!({
        "manifest": manifest_text,
        "component": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

fn api_manifest(name: &str, version: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\ncapabilities = [\"echo\"]\ngrants = [\"log\", \"messaging\"]\n"
    )
}

/// Deploys (`replace` = None) or replaces an agent over the API.
async fn upload(
    server: &Server,
    replace: Option<&str>,
    name: &str,
    version: &str,
    bytes: &[u8],
) -> Reply {
    let body = deploy_body(&api_manifest(name, version), bytes);
    match replace {
        None => server.post("/api/v1/agents", body).await,
        Some(path_name) => {
            server
                .put(&format!("/api/v1/agents/{path_name}"), body)
                .await
        }
    }
}

fn deployed_files(server: &Server) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(server.data_dir.join("deployed"))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn touching_an_api_deployed_component_does_not_unload_it() {
    let agents = AgentsDir::with_examples();
    let data = tempfile::tempdir().unwrap();
    let first = Server::start_with(&agents, data.path(), Some(&config("")));
    let echo = std::fs::read(component("echo")).unwrap();
    let deployed = upload(&first, None, "uploaded", "1.0.0", &echo).await;
    assert_eq!(deployed.status, 201, "{}", deployed.body);
    assert!(first.terminate().success());
    // Restored at start, its component's directory is watched.
    let server = Server::start_with(&agents, data.path(), Some(&config("")));
    let files = deployed_files(&server);
    assert_eq!(files.len(), 1, "{files:?}");
    // What a backup tool or `touch` does: same bytes, new mtime.
    std::fs::write(&files[0], &echo).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let reply = server
        .send("uploaded", &json!({"content": {"still": "here"}}))
        .await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
}

// 11. Deployed components on disk.

#[tokio::test]
async fn deployments_validate_first_keep_one_file_each_and_heal_damage() {
    let server = start(&AgentsDir::with_examples(), "");
    let echo = std::fs::read(component("echo")).unwrap();
    let relay = std::fs::read(component("relay")).unwrap();

    // Not a component: refused, and nothing is left on disk.
    let refused = upload(&server, None, "junk", "1.0.0", b"\0asm garbage").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        deployed_files(&server).is_empty(),
        "{:?}",
        deployed_files(&server)
    );

    let first = upload(&server, None, "uploaded", "1.0.0", &echo).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let before = deployed_files(&server);
    assert_eq!(before.len(), 1);

    // A replacement leaves only the new version's file.
    let put = upload(&server, Some("uploaded"), "uploaded", "2.0.0", &relay).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let after = deployed_files(&server);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before);

    // A damaged file is not trusted: deploying the same bytes rewrites it.
    std::fs::write(&after[0], b"bit rot").unwrap();
    let again = upload(&server, Some("uploaded"), "uploaded", "2.0.1", &relay).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(std::fs::read(&after[0]).unwrap(), relay);

    // Removal takes the file with it.
    let removed = server.delete("/api/v1/agents/uploaded").await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(
        deployed_files(&server).is_empty(),
        "{:?}",
        deployed_files(&server)
    );
}

// 20. Concurrent deployments.

#[tokio::test]
async fn concurrent_replacements_leave_the_registry_and_the_store_agreeing() {
    let agents = AgentsDir::with_examples();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(&agents, data.path(), Some(&config("")));
    let echo = std::fs::read(component("echo")).unwrap();
    let relay = std::fs::read(component("relay")).unwrap();
    let first = upload(&server, None, "contested", "0.1.0", &echo).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let puts: Vec<_> = (0..12)
        .map(|n| {
            let bytes = if n % 2 == 0 { &echo } else { &relay };
            let request = server
                .client()
                .put(server.url("/api/v1/agents/contested"))
                .json(&deploy_body(
                    &api_manifest("contested", &format!("1.0.{n}")),
                    bytes,
                ));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for put in puts {
        assert_eq!(put.await.unwrap(), 200);
    }
    let serving = server.get_json("/api/v1/agents/contested").await["version"].clone();
    assert_eq!(
        deployed_files(&server).len(),
        1,
        "{:?}",
        deployed_files(&server)
    );
    assert!(server.terminate().success());

    // After a restart the store's version is the one that was serving.
    let restarted = Server::start_with(&agents, data.path(), Some(&config("")));
    let restored = restarted.get_json("/api/v1/agents/contested").await["version"].clone();
    assert_eq!(restored, serving);
}

// 8. Outgoing messages.

#[tokio::test]
async fn an_agent_cannot_send_a_message_larger_than_replies_may_be() {
    let agents = AgentsDir::with_examples().with(
        "relay",
        &manifest(
            "relay",
            "relay",
            "capabilities = [\"relay\"]\ngrants = [\"log\", \"messaging\"]",
        ),
    );
    let server = start(&agents, "[agents]\nmax_reply_size = 2000\n");
    let blob = "x".repeat(5000);
    for (verb, target) in [("tell", "echo"), ("ask", "echo")] {
        let reply = server
            .send(
                "relay",
                &json!({"content": {verb: target, "content": {"blob": blob}}}),
            )
            .await;
        assert_eq!(reply.status, 422, "{verb}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("max_reply_size"), "{message}");
    }
    let small = server
        .send(
            "relay",
            &json!({"content": {"tell": "echo", "content": {"blob": "ok"}}}),
        )
        .await;
    assert_eq!(small.status, 200, "{}", small.body);
}

// 10. WASI handles.

#[tokio::test]
async fn a_plugin_cannot_hold_a_million_wasi_handles() {
    let agents = AgentsDir::with_examples().with(
        "fault",
        &manifest(
            "fault",
            "faults",
            "capabilities = [\"faults\"]\n[resource_limits]\nfuel = 100_000_000_000\nexecution_timeout = \"60s\"",
        ),
    );
    let server = start(&agents, "");
    // A first call sizes the pool slot and the plugin's own memory.
    let warm = server.send("fault", &json!({"content": {}})).await;
    assert_eq!(warm.status, 200, "{}", warm.body);
    let before = server.peak_rss_bytes();
    let started = Instant::now();
    let reply = server
        .send("fault", &json!({"content": {"fault": "handles"}}))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "plugin_trap"),
        "{}\n{}",
        reply.body,
        server.log()
    );
    let grown_mb = server.peak_rss_bytes().saturating_sub(before) >> 20;
    assert!(
        grown_mb < 10,
        "the host's peak memory grew {grown_mb} MB holding a plugin's handles ({:?})",
        started.elapsed()
    );
    assert_eq!(
        server.send("echo", &json!({"content": "ok"})).await.status,
        200
    );
}

// 12. Strangers and the shared budgets.

#[tokio::test]
async fn unauthenticated_floods_do_not_drain_the_server_budget() {
    let server = start(
        &AgentsDir::with_examples(),
        "[http_server.rate_limit]\nper_client_rps = 1000\nper_client_burst = 1000\nglobal_rps = 1\nglobal_burst = 20\n",
    );
    let stranger = client_from(&server, "127.0.0.2".parse().unwrap(), false);
    for _ in 0..60 {
        let status = stranger
            .get(server.url("/api/v1/agents"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    let reply = server.get("/api/v1/agents").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let server = start(&AgentsDir::with_examples(), "");
    let api = address(&server);
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    // The default limit: 64 per address.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(connect_from(other, api).await.unwrap());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(is_closed_at_once(other, api).await);
    // Everyone else is still served.
    assert_eq!(server.get("/api/v1/agents").await.status, 200);
    drop(held);
}

// 13. Browsers.

#[tokio::test]
async fn a_form_post_is_refused_and_writes_nothing() {
    let server = start(&AgentsDir::with_examples(), "");
    let response = server
        .client()
        .post(server.url("/api/v1/memory/entities"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"agent": "echo", "name": "csrf", "entity_type": "t", "observations": ["x"]}"#)
        .send()
        .await
        .unwrap();
    let reply = Reply::read(response).await;
    reply.assert_error(415, "unsupported_media_type");
    let stats = server.get_json("/api/v1/memory/stats").await;
    assert_eq!(stats["entities"], 0, "{stats}");
}

#[tokio::test]
async fn with_auth_off_only_this_servers_names_are_answered() {
    let server = start(&AgentsDir::with_examples(), "[auth]\nenabled = false\n");
    let port = address(&server).port();
    let client = crate::support::http().build().unwrap();
    let with_host = |host: String| {
        client
            .get(server.url("/api/v1/agents"))
            .header("host", host)
            .send()
    };
    let rebound = Reply::read(with_host(format!("attacker.example:{port}")).await.unwrap()).await;
    rebound.assert_error(421, "misdirected_request");
    for name in ["localhost", "127.0.0.1"] {
        let reply = Reply::read(with_host(format!("{name}:{port}")).await.unwrap()).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    }
    // A form on another site posting to this address: refused by Origin.
    let cross_site = Reply::read(
        client
            .post(server.url("/api/v1/agents/echo/reload"))
            .header("origin", "https://attacker.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    cross_site.assert_error(403, "cross_origin");
    let same_site = client
        .post(server.url("/api/v1/memory/search"))
        .header("origin", format!("http://localhost:{port}"))
        .json(&json!({"query": "x"}))
        .send()
        .await
        .unwrap();
    assert_ne!(same_site.status(), 403);
}

// 14. Import checks and the neighbourhood cap.

async fn import(server: &Server, lines: &[Value]) -> Reply {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Reply::read(
        server
            .client()
            .post(server.url("/api/v1/memory/import"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn imports_are_held_to_the_checks_of_normal_writes() {
    let server = start(&AgentsDir::new(), "");
    let entity = |scope: &str, owner: &str, name: &str, observation: &str| {
        json!({"kind": "entity", "scope": scope, "owner": owner, "name": name,
               "entity_type": "t", "observations": [{"text": observation}]})
    };
    for bad in [
        entity("global", "bob", "x", "fine"),
        entity("agent", "", "x", "fine"),
        entity("workspace", "default", "", "fine"),
        entity("global", "", "x", &"o".repeat(9000)),
        entity("global", "", "x", "   "),
    ] {
        let reply = import(&server, std::slice::from_ref(&bad)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "bad_request"),
            "{bad}: {}",
            reply.body
        );
    }
    let stats = server.get_json("/api/v1/memory/stats").await;
    assert_eq!(stats["entities"], 0, "{stats}");
    let good = import(&server, &[entity("global", "", "x", "fine")]).await;
    assert_eq!(good.status, 200, "{}", good.body);
}

#[tokio::test]
async fn a_hub_with_thousands_of_links_answers_a_bounded_neighbourhood() {
    let server = start(&AgentsDir::new(), "");
    let key = |name: String| json!({"scope": "global", "owner": "", "name": name});
    let mut lines = vec![
        json!({"kind": "entity", "scope": "global", "owner": "", "name": "hub",
                                "entity_type": "t", "observations": []}),
    ];
    for n in 0..1200 {
        lines.push(
            json!({"kind": "entity", "scope": "global", "owner": "", "name": format!("leaf-{n}"),
                          "entity_type": "t", "observations": []}),
        );
        lines.push(
            json!({"kind": "relation", "from": key("hub".into()), "to": key(format!("leaf-{n}")),
                          "relation_type": "links", "strength": 0.5}),
        );
    }
    let imported = import(&server, &lines).await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let graph = server.get("/api/v1/memory/graph/hub").await;
    assert_eq!(graph.status, 200, "{}", graph.body);
    assert_eq!(graph.body["truncated"], true);
    assert!(graph.body["relations"].as_array().unwrap().len() <= 1000);
    assert!(graph.body["entities"].as_array().unwrap().len() <= 1000);

    // The export streams: no length up front, every line there at the end.
    let response = server
        .client()
        .get(server.url("/api/v1/memory/export"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("content-length").is_none());
    let text = response.text().await.unwrap();
    assert_eq!(text.lines().count(), 1 + 1200 + 1200);
}

// 15. Private files.

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_the_store_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // An older install: world-readable directory and store.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let first = Server::start_with(&AgentsDir::new(), &data, Some(&config("")));
    drop(first);
    std::fs::set_permissions(
        data.join("memory.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let server = Server::start_with(&AgentsDir::new(), &data, Some(&config("")));
    let created = server
        .post(
            "/api/v1/memory/entities",
            json!({"scope": "global", "name": "n", "entity_type": "t", "observations": ["o"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mode =
        |path: std::path::PathBuf| std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.clone()), 0o700);
    for file in ["memory.db", "memory.db-wal", "auth-token"] {
        assert_eq!(mode(data.join(file)), 0o600, "{file}");
    }
}

// 16. The entity limit.

fn recall_limited(limit: u64) -> AgentsDir {
    AgentsDir::new().with(
        "recall",
        &manifest(
            "recall",
            "recall",
            &format!(
                "capabilities = [\"memory-recall\"]\ngrants = [\"log\", \"memory\"]\n[resource_limits]\nmax_memory_entities = {limit}"
            ),
        ),
    )
}

async fn tell(server: &Server, about: &str) -> Reply {
    server
        .send(
            "recall",
            &json!({"performative": "inform", "content": {"about": about, "type": "note", "facts": [format!("about {about}")]}}),
        )
        .await
}

#[tokio::test]
async fn the_entity_limit_holds_for_shared_names_and_concurrent_writes() {
    let server = start(&recall_limited(2), "");
    // A name that exists in global memory still makes a new private entity.
    let shared = server
        .post(
            "/api/v1/memory/entities",
            json!({"scope": "global", "name": "shared", "entity_type": "t", "observations": ["o"]}),
        )
        .await;
    assert_eq!(shared.status, 201, "{}", shared.body);
    for about in ["a", "b"] {
        assert_eq!(tell(&server, about).await.status, 200);
    }
    let refused = tell(&server, "shared").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.to_string().contains("max_memory_entities"),
        "{}",
        refused.body
    );

    let racing = start(&recall_limited(3), "");
    let tells: Vec<_> = (0..12)
        .map(|n| {
            let request = racing
                .client()
                .post(racing.url("/api/v1/agents/recall/messages"))
                .json(&json!({"performative": "inform", "content": {"about": format!("n{n}"), "type": "note", "facts": ["f"]}}));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut accepted = 0;
    for tell in tells {
        accepted += usize::from(tell.await.unwrap() == 200);
    }
    assert_eq!(accepted, 3);
}

// 17. A plugin's share of the pool.

#[tokio::test]
async fn nested_requests_cannot_take_the_whole_pool() {
    let agents = AgentsDir::with_examples().with(
        "relay",
        &manifest(
            "relay",
            "relay",
            "capabilities = [\"relay\"]\ngrants = [\"log\", \"messaging\"]",
        ),
    );
    let server = start(&agents, "[wasm_runtime]\npool_size = 8\n");
    let reply = server
        .send("relay", &json!({"content": {"cycle": ["relay"]}}))
        .await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_slots_per_plugin"), "{message}");
    assert_eq!(
        server.send("echo", &json!({"content": "ok"})).await.status,
        200
    );
}

// 18. Token rotation.

#[tokio::test]
async fn a_rotated_token_takes_effect_even_with_the_old_mtime() {
    let server = start(&AgentsDir::new(), "");
    let path = server.data_dir.join("auth-token");
    let old_mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let new_token = format!("caxton_{}", "ab".repeat(32));
    std::fs::write(&path, format!("{new_token}\n")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old_mtime)
        .unwrap();
    let client = crate::support::http().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client
            .get(server.url("/api/v1/agents"))
            .bearer_auth(&new_token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new token was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// 19. Plugin log lines.

#[tokio::test]
async fn a_plugin_cannot_forge_host_log_lines() {
    let server = start(&AgentsDir::with_examples(), "");
    let forged = "id\n2026-01-01T00:00:00.000000Z  INFO caxton::server: FORGED line";
    let reply = server
        .send("echo", &json!({"id": forged, "content": "hi"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let log = server.wait_for_log("FORGED");
    assert!(
        log.contains("FORGED"),
        "the echo log line never came:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|line| line.starts_with("2026-01-01T00:00:00")),
        "a plugin wrote a line of its own:\n{log}"
    );
}

#[tokio::test]
async fn an_export_stops_when_its_client_hangs_up() {
    let server = start(&AgentsDir::new(), "");
    // ~20 MB of export: far more than the socket buffers hold, so the
    // export is still under way when the client goes.
    let vector: Vec<f32> = (0..384).map(|i| (i as f32 * 0.37).sin() / 19.6).collect();
    let lines: Vec<Value> = (0..5000)
        .map(|n| {
            json!({"kind": "entity", "scope": "global", "owner": "", "name": format!("e{n}"),
                   "entity_type": "t", "observations": [{"text": format!("fact {n}"), "embedding": vector}]})
        })
        .collect();
    let imported = import(&server, &lines).await;
    assert_eq!(imported.status, 200, "{}", imported.body);

    // A client that reads the start and hangs up.
    let mut stream = TcpStream::connect(address(&server)).unwrap();
    write!(
        stream,
        "GET /api/v1/memory/export HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token.as_ref().unwrap()
    )
    .unwrap();
    let mut start = [0u8; 4096];
    stream.read_exact(&mut start).unwrap();
    assert!(start.starts_with(b"HTTP/1.1 200"));
    drop(stream);
    let log = server.wait_for_log("memory export stopped");
    assert!(
        log.contains("memory export stopped"),
        "the export ran on:\n{log}"
    );
}

// Found by schemathesis on the way: a page past the end of any list.

#[tokio::test]
async fn a_page_far_past_the_end_is_empty() {
    let server = start(&AgentsDir::with_examples(), "");
    let reply = server
        .get("/api/v1/agents?page=18446744073709551614&page_size=50")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["agents"], json!([]));
}
