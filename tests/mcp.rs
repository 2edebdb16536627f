//! Caxton as an MCP server: the official Python SDK (`mcp`, pinned in
//! tests/python/requirements.txt) against a real server in both spec
//! revisions, the same store seen through MCP and the HTTP API, and the
//! endpoint's refusals (token, origin, host, size, protocol errors).

use serde_json::{Value, json};

use crate::clients::{python, run_script};
use crate::support::{AgentsDir, Server, http};

fn entities_of(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["entity"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_official_mcp_client_uses_memory_tools_and_agents_in_both_revisions() {
    python();
    let server = Server::start_fresh(&AgentsDir::with_examples(), None);
    let reply = server
        .post(
            "/api/v1/memory/entities",
            json!({"name": "Grace Hopper", "entity_type": "person", "observations": ["Wrote the first compiler"]}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let mut server = server;
    for (mode, prefix) in [("auto", "modern"), ("legacy", "handshake")] {
        let url = server.url("/mcp");
        server = run_python(
            server,
            "mcp_client.py",
            vec![
                ("CAXTON_MCP_URL", url),
                ("CAXTON_MCP_MODE", mode.into()),
                ("CAXTON_MCP_PREFIX", prefix.into()),
                ("CAXTON_HTTP_ENTITY", "Grace Hopper".into()),
            ],
        )
        .await;
        // What MCP wrote, the HTTP API finds.
        let reply = server
            .post(
                "/api/v1/memory/search",
                json!({"query": "Bernoulli numbers on the Analytical Engine"}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(
            entities_of(&reply.body).contains(&format!("{prefix} Ada Lovelace")),
            "{}",
            reply.body
        );
    }
}

/// One JSON-RPC request to `/mcp` the way a 2026-07-28 client sends it.
pub(crate) fn rpc(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

#[tokio::test]
async fn the_mcp_endpoint_refuses_what_it_must() {
    let server = Server::start_fresh(&AgentsDir::new(), None);
    let client = http().build().unwrap();
    let token = server.token.clone().unwrap();
    let url = server.url("/mcp");
    let post = |body: Value| mcp_request(&client, &url, &body);
    let list = rpc("tools/list", json!({}));

    // No token: the API's 401, before anything of MCP runs.
    let response = post(list.clone()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));

    // A browser page of another site, with the token.
    let response = post(list.clone())
        .bearer_auth(&token)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "{:?}", response.text().await);

    // A name that is not this server's (DNS rebinding), with the token.
    let response = post(list.clone())
        .bearer_auth(&token)
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);

    // A body past [server] max_request_size.
    let big = "x".repeat(2 * 1024 * 1024);
    let response = post(rpc(
        "tools/call",
        json!({"name": "read_graph", "arguments": {"pad": big}}),
    ))
    .bearer_auth(&token)
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 413);

    // Protocol mistakes are JSON-RPC errors with the spec's codes.
    let response = post(rpc("no/such/method", json!({})))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = rpc_answer(response).await;
    assert_eq!(body["error"]["code"], -32601, "{body}");
    let response = post(rpc(
        "tools/call",
        json!({"name": "create_entities", "arguments": {"entities": "not a list"}}),
    ))
    .bearer_auth(&token)
    .send()
    .await
    .unwrap();
    let body = rpc_answer(response).await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entities"),
        "{body}"
    );
    let response = post(rpc("tools/call", json!({"name": "no_such_tool"})))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = rpc_answer(response).await;
    assert_eq!(body["error"]["code"], -32602, "{body}");

    // And a good request works, with the request metrics labelled /mcp.
    let response = post(list).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = rpc_answer(response).await;
    let tools = body["result"]["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "search_nodes"), "{body}");
    let metrics = server.metrics().await;
    assert!(metrics.contains("route=\"/mcp\""), "{metrics}");
}

/// Posts one 2026-07-28 request to `url` and returns its JSON-RPC answer.
pub(crate) async fn call(client: &reqwest::Client, url: &str, token: &str, body: Value) -> Value {
    let response = mcp_request(client, url, &body)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    rpc_answer(response).await
}

/// A POST of `body` to `url` with the headers a 2026-07-28 client sends.
fn mcp_request(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::RequestBuilder {
    let mut request = client
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", body["method"].as_str().unwrap());
    if let Some(name) = body["params"]["name"].as_str() {
        request = request.header("Mcp-Name", name);
    }
    request.json(body)
}

/// The JSON-RPC message of an answer: a JSON body, or the data line of a
/// one-event SSE stream.
async fn rpc_answer(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    let json = text
        .lines()
        .find_map(|line| line.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn an_mcp_client_acting_as_an_agent_has_that_agents_scopes() {
    let echo = |name: &str| {
        crate::support::manifest(
            name,
            "echo",
            "capabilities = [\"echo\"]\ngrants = [\"log\"]",
        )
    };
    let agents = AgentsDir::with_examples()
        .with("alpha", &echo("alpha"))
        .with("beta", &echo("beta"));
    let server = Server::start_fresh(&agents, None);
    let client = http().build().unwrap();
    let token = server.token.clone().unwrap();
    let as_alpha = server.url("/mcp?agent=alpha");
    let as_beta = server.url("/mcp?agent=beta");

    // Only a deployed agent can be acted as; its tools are its allow list.
    let list = rpc("tools/list", json!({}));
    let body = call(
        &client,
        &server.url("/mcp?agent=ghost"),
        &token,
        list.clone(),
    )
    .await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    let names = |body: &Value| -> Vec<String> {
        body["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let body = call(
        &client,
        &server.url("/mcp?agent=analyst"),
        &token,
        list.clone(),
    )
    .await;
    assert!(names(&body).contains(&"csv_parser".to_owned()), "{body}");
    let body = call(&client, &as_alpha, &token, list.clone()).await;
    assert!(!names(&body).contains(&"csv_parser".to_owned()), "{body}");
    let parse = rpc(
        "tools/call",
        json!({"name": "csv_parser", "arguments": {"csv": "a\n1"}}),
    );
    let body = call(&client, &as_alpha, &token, parse).await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    assert!(body.to_string().contains("allowlist"), "{body}");

    let create = rpc(
        "tools/call",
        json!({"name": "create_entities", "arguments": {"entities": [
            {"name": "vault", "entityType": "place", "observations": ["the vault code is 4711"]}
        ]}}),
    );
    let body = call(&client, &as_alpha, &token, create).await;
    assert_eq!(body["result"]["isError"], false, "{body}");

    // Another agent sees nothing of it, by name, search or whole graph.
    let read = |name: &str, arguments: Value| {
        rpc("tools/call", json!({"name": name, "arguments": arguments}))
    };
    for request in [
        read("open_nodes", json!({"names": ["vault"]})),
        read("search_nodes", json!({"query": "vault code"})),
        read("read_graph", json!({})),
    ] {
        let body = call(&client, &as_beta, &token, request.clone()).await;
        assert_eq!(
            body["result"]["structuredContent"]["entities"],
            json!([]),
            "{request} as beta: {body}"
        );
        let body = call(&client, &as_alpha, &token, request.clone()).await;
        assert_eq!(
            body["result"]["structuredContent"]["entities"][0]["name"], "vault",
            "{request} as alpha: {body}"
        );
    }
    let body = call(
        &client,
        &as_beta,
        &token,
        read("delete_entities", json!({"entityNames": ["vault"]})),
    )
    .await;
    assert_eq!(body["result"]["isError"], false, "{body}");
    // The HTTP API, as alpha, still has it: beta could not delete it.
    let reply = server
        .get("/api/v1/memory/entities/vault?agent=alpha")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn stdio_only_clients_reach_the_server_through_caxton_mcp_stdio() {
    python();
    let mut server = Server::start_fresh(&AgentsDir::new(), None);
    let bin = crate::support::binary().display().to_string();
    for mode in ["auto", "legacy"] {
        let base = server.url("");
        server = run_python(
            server,
            "mcp_stdio.py",
            vec![
                ("CAXTON_BIN", bin.clone()),
                ("CAXTON_SERVER", base),
                ("CAXTON_MCP_MODE", mode.into()),
            ],
        )
        .await;
    }
}

/// Runs a client script against `server` off the async runtime and
/// asserts it passed; gives the server back.
async fn run_python(
    server: Server,
    script: &'static str,
    env: Vec<(&'static str, String)>,
) -> Server {
    let (status, output, server) = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, output) = run_script(&server, script, &env);
        (status, output, server)
    })
    .await
    .unwrap();
    println!("{output}");
    assert!(
        status == Some(0),
        "tests/python/{script} failed (exit status {status:?}):\n{output}\nthe server's log:\n{}",
        server.log()
    );
    server
}
