//! The built-in `http_client` tool: a configuration agent (the model is
//! the scripted provider, so the calls are exact) fetches from an HTTP
//! server this test runs on loopback. Its `[http]` allow list is checked
//! by the host on every request: an allowed host works and redirects
//! within it are followed; an unlisted host, a redirect to one, a name
//! that resolves to a loopback address without being listed as one, and a
//! response over the cap are refused with errors that say why.

use std::net::SocketAddr;

use serde_json::{Value, json};
use warp::Filter;

use crate::support::{AgentsDir, Server, tool_results};
use caxton::harness::scripted_llm::{Answer, ScriptedLlm};

/// Serves the test's pages on 127.0.0.1; the address.
async fn pages() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let port = address.port();
    let hello = warp::path!("hello").map(|| "hello from loopback");
    let inside = warp::path!("redirect-in")
        .map(|| warp::redirect::found(warp::http::Uri::from_static("/hello")));
    let outside = warp::path!("redirect-out").map(move || {
        let target: warp::http::Uri = format!("http://127.0.0.2:{port}/hello").parse().unwrap();
        warp::redirect::found(target)
    });
    let big = warp::path!("big").map(|| "x".repeat(2 << 20));
    let echo = warp::path!("echo")
        .and(warp::post())
        .and(warp::body::bytes())
        .map(|body: bytes::Bytes| format!("got {}", String::from_utf8_lossy(&body)));
    // The Authorization header as this server received it.
    let credentials = warp::path!("credentials")
        .and(warp::header::optional::<String>("authorization"))
        .map(|value: Option<String>| format!("authorization: {}", value.unwrap_or_default()));
    let to_credentials = warp::path!("to-credentials" / u16).map(|port: u16| {
        let target: warp::http::Uri = format!("http://127.0.0.1:{port}/credentials")
            .parse()
            .unwrap();
        warp::redirect::found(target)
    });
    let routes = hello
        .or(inside)
        .or(outside)
        .or(big)
        .or(echo)
        .or(credentials)
        .or(to_credentials);
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    address
}

/// The scripted provider takes `'static` call texts; a test's few are leaked.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// The machine's own name, when it resolves to a loopback address (as
/// /etc/hosts usually makes it): a name that is not an address.
fn loopback_name() -> Option<String> {
    let name = std::fs::read_to_string("/etc/hostname")
        .ok()?
        .trim()
        .to_owned();
    let resolved = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 80)).ok()?;
    resolved
        .into_iter()
        .all(|a| a.ip().is_loopback())
        .then_some(name)
}

#[tokio::test]
async fn http_client_fetches_what_the_agents_allow_list_allows_and_nothing_else() {
    let address = pages().await;
    let base = format!("http://{address}");
    let port = address.port();
    // Another allowed origin: same address, another port.
    let other = pages().await.port();
    let name = loopback_name();
    let call = |id: &'static str, input: Value| (id, "http_client", leak(input.to_string()));
    let mut calls = vec![
        call("allowed", json!({"url": format!("{base}/hello")})),
        call(
            "posted",
            json!({"url": format!("{base}/echo"), "method": "POST", "body": "ping"}),
        ),
        call("followed", json!({"url": format!("{base}/redirect-in")})),
        call(
            "unlisted",
            json!({"url": format!("http://127.0.0.2:{port}/hello")}),
        ),
        call(
            "redirected-out",
            json!({"url": format!("{base}/redirect-out")}),
        ),
        // Asking for more than the agent's cap: the host stops the body.
        call(
            "too-big",
            json!({"url": format!("{base}/big"), "max_bytes": 4 << 20}),
        ),
        call(
            "cut",
            json!({"url": format!("{base}/hello"), "max_bytes": 5}),
        ),
        call(
            "same-origin",
            json!({"url": format!("{base}/to-credentials/{port}"), "headers": {"authorization": "Bearer secret"}}),
        ),
        call(
            "cross-origin",
            json!({"url": format!("{base}/to-credentials/{other}"), "headers": {"authorization": "Bearer secret"}}),
        ),
    ];
    if let Some(name) = &name {
        calls.push(call(
            "rebound",
            json!({"url": format!("http://{name}:{port}/hello")}),
        ));
    }
    let llm = ScriptedLlm::start(vec![Answer::Calls(calls.clone()), Answer::Text("fetched")]).await;
    let mut allow = vec![
        format!("\"127.0.0.1:{port}\""),
        format!("\"127.0.0.1:{other}\""),
    ];
    if let Some(name) = &name {
        allow.push(format!("\"{name}:{port}\""));
    }
    let fetcher = format!(
        "name = \"fetcher\"\nversion = \"1.0.0\"\ncapabilities = [\"web\"]\ntools = [\"http_client\"]\nsystem_prompt = \"You fetch pages.\"\n\n[memory]\nenabled = false\n\n[http]\nallow = [{}]\ntimeout = \"10s\"\nmax_response_bytes = 1048576\n",
        allow.join(", ")
    );
    let server = Server::start_fresh(
        &AgentsDir::new().with("fetcher", &fetcher),
        Some(&llm.config("")),
    );
    let reply = server.send("fetcher", &json!({"content": "fetch"})).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    assert_eq!(reply.body["reply"]["content"]["answer"], "fetched");
    let results: std::collections::BTreeMap<String, String> =
        tool_results(&llm.requests()[1]).into_iter().collect();
    let json_of = |id: &str| -> Value {
        let text = results
            .get(id)
            .unwrap_or_else(|| panic!("no result for {id} in {results:?}"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{id}: {e}: {text}"))
    };

    let allowed = json_of("allowed");
    assert_eq!(allowed["status"], 200, "{allowed}");
    assert_eq!(allowed["body"], "hello from loopback");
    assert_eq!(allowed["truncated"], false);
    assert_eq!(json_of("posted")["body"], "got ping");
    let followed = json_of("followed");
    assert_eq!(followed["body"], "hello from loopback", "{followed}");
    assert_eq!(followed["redirects"], json!([format!("{base}/hello")]));
    // Credentials stay with their origin across redirects.
    assert_eq!(
        json_of("same-origin")["body"],
        "authorization: Bearer secret"
    );
    assert_eq!(json_of("cross-origin")["body"], "authorization: ");
    let cut = json_of("cut");
    assert_eq!(
        (cut["body"].as_str(), cut["truncated"].as_bool()),
        (Some("hello"), Some(true))
    );

    let refused = |id: &str, words: &[&str]| {
        let text = &results[id];
        let shown: String = text.chars().take(400).collect();
        assert!(text.starts_with("error"), "{id}: {shown}");
        for word in words {
            assert!(text.contains(word), "{id}: {word:?} not in {shown}");
        }
    };
    refused("unlisted", &["Denied", "127.0.0.2", "allow list"]);
    refused("redirected-out", &["Denied", "127.0.0.2", "allow list"]);
    refused("too-big", &["exceeds", "1048576"]);
    match &name {
        Some(_) => refused("rebound", &["Denied", "private, loopback or link-local"]),
        None => eprintln!(
            "skipped the resolved-address check: this machine's name does not resolve to loopback"
        ),
    }
}

#[tokio::test]
async fn an_agent_without_an_allow_list_reaches_nothing() {
    let address = pages().await;
    let llm = ScriptedLlm::start(vec![
        Answer::Calls(vec![(
            "a",
            "http_client",
            leak(json!({"url": format!("http://{address}/hello")}).to_string()),
        )]),
        Answer::Text("no"),
    ])
    .await;
    let agent = "name = \"fetcher\"\nversion = \"1.0.0\"\ncapabilities = [\"web\"]\ntools = [\"http_client\"]\nsystem_prompt = \"You fetch pages.\"\n\n[memory]\nenabled = false\n";
    let server = Server::start_fresh(
        &AgentsDir::new().with("fetcher", agent),
        Some(&llm.config("")),
    );
    let reply = server.send("fetcher", &json!({"content": "fetch"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let results: std::collections::BTreeMap<String, String> =
        tool_results(&llm.requests()[1]).into_iter().collect();
    assert!(results["a"].contains("Denied"), "{}", results["a"]);
}
